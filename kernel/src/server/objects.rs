//! The state one kernel-server call runs with ([`Kernel`]): the request's handle table,
//! who pays for what the reply carries, and the translation of a request's destination
//! port into the object the routines get (GNU Mach `kern/ipc_tt.c`, `ipc_host.c`:
//! `convert_port_to_task`, `convert_port_to_space`, `convert_port_to_host`, ...).
//!
//! A hook that finds no object of the right kind answers what GNU Mach's routine answers
//! for a null object: `KERN_INVALID_TASK` for a space, `KERN_INVALID_HOST` for the host in
//! the routines that say so (time, reboot, wiring), `KERN_INVALID_ARGUMENT` otherwise.

extern crate alloc;

use super::host::Host;
use super::processor::{Processor, ProcessorSet};
use super::slots::Slots;
use crate::ids::ProcessorSetId;
use crate::ipc::{KObject, KObjectKind, Ledger, MsgPort, Space};
use alloc::sync::Arc;
use core::any::Any;
#[cfg(target_os = "none")]
use core::sync::atomic::Ordering;
use mach_abi::KernReturn;
use mach_abi::mig::PortSlot;

/// What the object server needs of a thread: the kernel object behind a thread port is
/// an `Arc<T::Thread>` tagged `KObjectKind::Thread`.
pub trait ThreadIpc: Any + Send + Sync {
    /// The thread's processor set (`thread_get_assignment`).
    fn processor_set(&self) -> ProcessorSetId;
    /// Move the thread to `set` (`thread_assign`; the scheduler's refusals).
    fn assign(self: &Arc<Self>, set: ProcessorSetId) -> Result<(), KernReturn>;
    /// Its base priority and its maximum (GNU Mach's `priority`, `max_priority`).
    fn base_priority(&self) -> u32;
    fn max_priority(&self) -> u32;
    /// Set its base priority (while depressed: the one restored at the end).
    fn set_priority(self: &Arc<Self>, priority: u32);
    fn set_max_priority(&self, max_priority: u32);
    /// End a priority depression now, if one is in progress.
    fn depress_abort(self: &Arc<Self>);
    /// Whether it is the thread the request came from.
    fn is_current(&self) -> bool;
    /// Its kernel port.
    fn self_port(&self) -> Option<Arc<crate::ipc::Port>>;
}

/// What the object server needs of a task: the kernel object behind a task port is an
/// `Arc<T>` tagged `KObjectKind::Task` (GNU Mach's `ip_kobject` of an `IKOT_TASK` port).
pub trait TaskIpc: Any + Send + Sync {
    /// The type of the task's threads.
    type Thread: ThreadIpc;
    /// The task's processor set (`task_get_assignment`).
    fn processor_set(&self) -> ProcessorSetId;
    /// Move the task (and with `threads` its threads) to `set` (`task_assign`).
    fn assign(self: &Arc<Self>, set: ProcessorSetId, threads: bool) -> Result<(), KernReturn>;
    /// Set the priority its new threads get (`task->priority`).
    fn set_priority(&self, priority: u32);
    /// Call `f` on each of its threads.
    fn for_each_thread(&self, f: &mut dyn FnMut(&Arc<Self::Thread>));
    /// `vm_wire`'s range check of its map (`KERN_NO_SPACE` for a hole or a protection
    /// that refuses `access`).
    fn wire(&self, address: u64, size: u64, access: u32) -> Result<(), KernReturn>;
    /// The task's IPC space (`task->itk_space`), or `None` once the task is going.
    fn ipc_space(&self) -> Option<Arc<Space>>;
    /// A copy of the send right in special-port slot `which` (`TASK_KERNEL_PORT`: the
    /// task's own port, `itk_sself`; `TASK_EXCEPTION_PORT`; `TASK_BOOTSTRAP_PORT`), or
    /// null if the slot holds none (GNU Mach `ipc_port_copy_send`).
    fn special_port(&self, which: i32) -> MsgPort;
}

/// `task_get_special_port`'s slots (`mach/task_special_ports.h`).
pub mod special {
    pub const TASK_KERNEL_PORT: i32 = 1;
    pub const TASK_EXCEPTION_PORT: i32 = 3;
    pub const TASK_BOOTSTRAP_PORT: i32 = 4;
}

#[cfg(target_os = "none")]
/// The kernel's threads: the scheduler's (`kern::sched`, `pset`).
impl ThreadIpc for crate::kern::thread::Thread {
    fn processor_set(&self) -> ProcessorSetId {
        crate::kern::sched::pset::thread_get_assignment(self)
    }
    fn assign(self: &Arc<Self>, set: ProcessorSetId) -> Result<(), KernReturn> {
        crate::kern::sched::pset::thread_assign(self, set)
    }
    fn base_priority(&self) -> u32 {
        u32::from(self.base_priority.load(Ordering::Relaxed))
    }
    fn max_priority(&self) -> u32 {
        u32::from(self.max_priority.load(Ordering::Relaxed))
    }
    fn set_priority(self: &Arc<Self>, priority: u32) {
        crate::kern::sched::set_priority(self, priority as u8);
    }
    fn set_max_priority(&self, max_priority: u32) {
        self.max_priority
            .store(max_priority as u8, Ordering::Relaxed);
    }
    fn depress_abort(self: &Arc<Self>) {
        crate::kern::sched::depress_abort(self);
    }
    fn is_current(&self) -> bool {
        core::ptr::eq(&*crate::kern::sched::current_thread(), self)
    }
    fn self_port(&self) -> Option<Arc<crate::ipc::Port>> {
        self.self_port.get().cloned()
    }
}

#[cfg(target_os = "none")]
/// The kernel's tasks: their IPC space, and their own kernel port as the kernel special
/// port (exception and bootstrap ports do not exist yet: null).
impl TaskIpc for crate::kern::task::Task {
    type Thread = crate::kern::thread::Thread;
    fn processor_set(&self) -> ProcessorSetId {
        crate::kern::sched::pset::task_get_assignment(self)
    }
    fn assign(self: &Arc<Self>, set: ProcessorSetId, threads: bool) -> Result<(), KernReturn> {
        crate::kern::sched::pset::task_assign(self, set, threads)
    }
    fn set_priority(&self, priority: u32) {
        self.priority.store(priority as u8, Ordering::Relaxed);
    }
    fn wire(&self, address: u64, size: u64, access: u32) -> Result<(), KernReturn> {
        match &self.map {
            Some(map) => map.lock().wire(address, size, access),
            None => Err(KernReturn::InvalidTask),
        }
    }
    fn for_each_thread(&self, f: &mut dyn FnMut(&Arc<Self::Thread>)) {
        // In batches, so that no lock is held while `f` runs and nothing allocates.
        let mut after = crate::ids::ThreadId(0);
        loop {
            let batch: arrayvec::ArrayVec<Arc<Self::Thread>, 32> = self
                .threads
                .lock()
                .range(after..)
                .filter_map(|(_, t)| t.upgrade())
                .take(32)
                .collect();
            let Some(last) = batch.last() else { break };
            after = crate::ids::ThreadId(last.id.0 + 1);
            for t in &batch {
                f(t);
            }
        }
    }
    fn ipc_space(&self) -> Option<Arc<Space>> {
        self.ipc.clone()
    }
    fn special_port(&self, which: i32) -> MsgPort {
        match which {
            special::TASK_KERNEL_PORT => self
                .self_port
                .get()
                .and_then(|port| port.make_send())
                .map_or(MsgPort::Null, MsgPort::Right),
            _ => MsgPort::Null,
        }
    }
}

/// One call of the kernel's servers.
pub struct Kernel<'a, T: TaskIpc> {
    pub slots: &'a mut Slots,
    /// Pays for out-of-line data in the reply (the task the reply is for).
    pub ledger: &'a Arc<dyn Ledger>,
    pub _task: core::marker::PhantomData<fn() -> T>,
}

/// Ids whose null host is `KERN_INVALID_HOST` in GNU Mach (`host_set_time`,
/// `host_adjust_time`, `host_get_time`, `host_reboot`, `vm_wire`, `thread_wire`, and the
/// 64-bit time calls and `host_get_uptime64`).
fn invalid_host_ids(id: i32) -> bool {
    matches!(id, 2632..=2637 | 2643..=2645 | 2647 | 3223) || (3000..3100).contains(&id)
}

impl<T: TaskIpc> Kernel<'_, T> {
    /// The destination's kernel object if it is of `kind`.
    fn object(&self, port: PortSlot, kind: KObjectKind) -> Option<KObject> {
        self.slots.kobject(port).filter(|k| k.kind() == kind)
    }

    /// `convert_port_to_thread`.
    pub fn thread(&self, port: PortSlot) -> Result<Arc<T::Thread>, KernReturn> {
        self.object(port, KObjectKind::Thread)
            .and_then(|k| k.get::<T::Thread>(KObjectKind::Thread))
            .ok_or(KernReturn::InvalidArgument)
    }

    /// `convert_port_to_processor`.
    pub fn processor(&self, port: PortSlot) -> Result<Arc<Processor>, KernReturn> {
        self.object(port, KObjectKind::Processor)
            .and_then(|k| k.get::<Processor>(KObjectKind::Processor))
            .ok_or(KernReturn::InvalidArgument)
    }

    /// `convert_port_to_pset`: the control port only.
    pub fn pset(&self, port: PortSlot) -> Result<Arc<ProcessorSet>, KernReturn> {
        self.object(port, KObjectKind::ProcessorSet)
            .and_then(|k| k.get::<ProcessorSet>(KObjectKind::ProcessorSet))
            .ok_or(KernReturn::InvalidArgument)
    }

    /// `convert_port_to_pset_name`: the name port, or the control port.
    pub fn pset_name(&self, port: PortSlot) -> Result<Arc<ProcessorSet>, KernReturn> {
        self.slots
            .kobject(port)
            .and_then(|k| {
                k.get::<ProcessorSet>(KObjectKind::ProcessorSetName)
                    .or_else(|| k.get::<ProcessorSet>(KObjectKind::ProcessorSet))
            })
            .ok_or(KernReturn::InvalidArgument)
    }

    pub fn task(&self, port: PortSlot) -> Result<Arc<T>, KernReturn> {
        self.object(port, KObjectKind::Task)
            .and_then(|k| k.get::<T>(KObjectKind::Task))
            .ok_or(KernReturn::InvalidArgument)
    }

    /// `convert_port_to_space`: the space of the task the port stands for.
    pub fn space(&self, port: PortSlot) -> Result<Arc<Space>, KernReturn> {
        self.task(port)
            .ok()
            .and_then(|t| t.ipc_space())
            .ok_or(KernReturn::InvalidTask)
    }

    /// `convert_port_to_host`: the host or host-privileged port.
    pub fn host(&self, port: PortSlot, msg_id: i32) -> Result<Arc<Host>, KernReturn> {
        self.slots
            .kobject(port)
            .and_then(|k| {
                k.get::<Host>(KObjectKind::Host)
                    .or_else(|| k.get::<Host>(KObjectKind::HostPriv))
            })
            .ok_or_else(|| null_host(msg_id))
    }

    /// `convert_port_to_host_priv`: the host-privileged port only.
    pub fn host_priv(&self, port: PortSlot, msg_id: i32) -> Result<Arc<Host>, KernReturn> {
        self.slots
            .kobject(port)
            .and_then(|k| k.get::<Host>(KObjectKind::HostPriv))
            .ok_or_else(|| null_host(msg_id))
    }

    /// The destination's kernel object of `kind`, for the hooks of routines not served
    /// yet (`mach`'s threads, sets and memory objects).
    pub fn other(&self, port: PortSlot, kind: KObjectKind) -> Result<KObject, KernReturn> {
        self.object(port, kind).ok_or(KernReturn::InvalidArgument)
    }

    /// A send right to `port`'s object, for the reply (an `outtran`).
    pub fn send_right(&mut self, port: Option<&Arc<crate::ipc::Port>>) -> PortSlot {
        let Some(right) = port.and_then(|p| p.make_send()) else {
            return PortSlot::NULL;
        };
        self.put(MsgPort::Right(right))
    }

    /// Put a right in the reply's table. The table has room for every right a served
    /// routine returns; were it full, the right is released and the reply carries null.
    pub fn put(&mut self, port: MsgPort) -> PortSlot {
        match self.slots.put(port) {
            Ok(slot) => slot,
            Err(port) => {
                debug_assert!(false, "kernel server reply table full");
                drop(port);
                PortSlot::NULL
            }
        }
    }
}

fn null_host(msg_id: i32) -> KernReturn {
    if invalid_host_ids(msg_id) {
        KernReturn::InvalidHost
    } else {
        KernReturn::InvalidArgument
    }
}
