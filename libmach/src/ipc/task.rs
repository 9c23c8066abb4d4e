//! The calling task's side of IPC on armach: [`Trap`], `mach_msg` as trap 25 with the
//! thread's reply port kept in `TPIDR_EL0` (libmach has no thread-local storage yet; the
//! kernel saves the register per thread and starts every thread with 0), and [`TaskSpace`],
//! which releases owned rights and memory into the task with the port and VM traps.

use core::arch::asm;
use core::mem::ManuallyDrop;

use mach_abi::message::option;
use mach_abi::mig::{self, CallOptions, KernReturn, PortName, PortRight, Space, Transport};

use super::{Client, MachMsg};
use crate::traps;

/// A send right of the calling task, released with `mach_port_deallocate` when dropped.
pub type SendRight = mig::SendRight<TaskSpace>;
/// A send-once right of the calling task.
pub type SendOnceRight = mig::SendOnceRight<TaskSpace>;
/// A receive right of the calling task, destroyed when dropped.
pub type ReceiveRight = mig::ReceiveRight<TaskSpace>;
/// Out-of-line memory received into the calling task, unmapped when dropped.
pub type OolData<E> = mig::OolData<TaskSpace, E>;
/// An out-of-line array of rights received into the calling task.
pub type OolPorts = mig::OolPorts<TaskSpace>;

/// The calling task's IPC and address spaces.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TaskSpace;

impl Space for TaskSpace {
    fn release(name: PortName, right: PortRight) {
        let task = traps::mach_task_self();
        // A failure leaves a right behind in the task: a leak, not a fault.
        let _ = match right {
            PortRight::Send | PortRight::SendOnce | PortRight::DeadName => {
                traps::mach_port_deallocate(task, name)
            }
            PortRight::Receive | PortRight::PortSet => crate::mig::mach_port::mach_port_mod_refs(
                &mut transport(),
                &task_self(),
                name,
                right as u32,
                -1,
            ),
        };
    }

    fn deallocate(address: u64, size: u64) {
        // SAFETY: only owned regions (`OolData`, `OolPorts`) are released here, when they are
        // dropped: nothing uses the memory afterwards.
        let _ = unsafe { traps::vm_deallocate(traps::mach_task_self(), address, size) };
    }
}

/// The calling task's port, as a right stubs can borrow (never released: the task keeps it).
pub fn task_self() -> ManuallyDrop<SendRight> {
    ManuallyDrop::new(SendRight::from_name(traps::mach_task_self()))
}

/// The calling thread's port.
pub fn thread_self() -> ManuallyDrop<SendRight> {
    ManuallyDrop::new(SendRight::from_name(traps::mach_thread_self()))
}

/// The host port.
pub fn host_self() -> ManuallyDrop<SendRight> {
    ManuallyDrop::new(SendRight::from_name(traps::mach_host_self()))
}

/// The transport generated stubs take on armach.
pub fn transport() -> Client<Trap> {
    Client::new(Trap)
}

/// `mach_msg` as trap 25, with the calling thread's reply port.
#[derive(Clone, Copy, Debug, Default)]
pub struct Trap;

fn reply_slot() -> u64 {
    let v: u64;
    // SAFETY: reads the thread's own TPIDR_EL0, which EL0 may read; no memory is touched.
    unsafe { asm!("mrs {}, tpidr_el0", out(reg) v, options(nomem, nostack, preserves_flags)) };
    v
}

fn set_reply_slot(v: u64) {
    // SAFETY: writes the thread's own TPIDR_EL0, which EL0 may write and which nothing else
    // in libmach uses; no memory is touched.
    unsafe { asm!("msr tpidr_el0, {}", in(reg) v, options(nomem, nostack, preserves_flags)) };
}

impl MachMsg for Trap {
    type Space = TaskSpace;

    unsafe fn mach_msg(
        &mut self,
        msg: &mut [u8],
        option: u32,
        send_size: usize,
        rcv_name: PortName,
        timeout: u32,
        notify: PortName,
    ) -> KernReturn {
        let (Ok(send), Ok(rcv)) = (u32::try_from(send_size), u32::try_from(msg.len())) else {
            return KernReturn::SendMsgTooSmall;
        };
        if send_size > msg.len() {
            return KernReturn::SendMsgTooSmall;
        }
        // SAFETY: `msg` is valid for reads of `send_size` (checked) and writes of its whole
        // length; the caller vouches for the regions the message names (`MachMsg::mach_msg`).
        unsafe {
            traps::mach_msg(
                msg.as_mut_ptr(),
                option,
                send,
                rcv,
                rcv_name,
                timeout,
                notify,
            )
        }
    }

    fn reply_port(&mut self) -> PortName {
        match reply_slot() {
            0 => {
                let port = traps::mach_reply_port();
                set_reply_slot(u64::from(port.0));
                port
            }
            v => PortName(v as u32),
        }
    }

    fn discard_reply_port(&mut self) {
        let v = reply_slot();
        if v != 0 {
            // Forget it first: destroying it is itself a call that needs a reply port.
            set_reply_slot(0);
            drop(ReceiveRight::from_name(PortName(v as u32)));
        }
    }
}

/// Destroys the calling thread's reply port for good (at the thread's end): the destroying
/// call names the port itself as its reply port, so no new port is made for it. The kernel
/// destroys the port while serving the call; the reply then has nowhere to go and the receive
/// fails (`MACH_RCV_INVALID_NAME`), which is expected.
pub(crate) fn release_reply_port_at_exit() {
    let v = reply_slot();
    if v == 0 {
        return;
    }
    set_reply_slot(0);
    let mut t = LastCall(PortName(v as u32));
    let _ = crate::mig::mach_port::mach_port_mod_refs(
        &mut t,
        &task_self(),
        PortName(v as u32),
        PortRight::Receive as u32,
        -1,
    );
}

/// The transport of [`release_reply_port_at_exit`]: replies to the port being destroyed and
/// never makes or discards a reply port.
struct LastCall(PortName);

// SAFETY: replies come from `mach_msg` (the kernel's delivery).
unsafe impl Transport for LastCall {
    type Space = TaskSpace;

    fn reply_port(&mut self) -> PortName {
        self.0
    }

    unsafe fn rpc(
        &mut self,
        msg: &mut [u8],
        send_size: usize,
        reply_port: PortName,
        _: CallOptions,
    ) -> Result<(), KernReturn> {
        let bits = option::SEND_MSG | option::RCV_MSG;
        // SAFETY: the caller's guarantee about the message's regions (`Transport::rpc`).
        unsafe { Trap.mach_msg(msg, bits, send_size, reply_port, 0, PortName::NULL) }.result()
    }

    unsafe fn send(
        &mut self,
        msg: &mut [u8],
        send_size: usize,
        _: CallOptions,
    ) -> Result<(), KernReturn> {
        // SAFETY: as for `rpc`.
        unsafe {
            Trap.mach_msg(
                msg,
                option::SEND_MSG,
                send_size,
                PortName::NULL,
                0,
                PortName::NULL,
            )
        }
        .result()
    }
}
