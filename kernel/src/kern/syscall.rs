//! The trap table: GNU Mach's trap numbers (`svc #0`, negated number in `w8`, arguments in
//! `x0`-`x7`, result in `x0`; a trap with more than eight arguments finds the rest on the
//! user stack, the ninth at `sp`) and, marked as such, temporary traps numbered from 1000
//! that stand in for IPC interfaces not written yet. Every pointer from user space goes
//! through `copyin`/`copyout`; a bad one is an error code (or, for the stacked arguments,
//! `EXC_BAD_ACCESS`), never a kernel fault.

extern crate alloc;

use crate::arch::context::FpState;
use crate::arch::exception::TrapFrame;
use crate::kern::sched;
use crate::kern::sched::waitq::Event;
use crate::kern::task::{self, Task};
use crate::kern::thread::Thread;
use crate::kern::{ipc_traps, trap};
use alloc::sync::Arc;
use core::sync::atomic::Ordering;
use mach_abi::KernReturn;
use mach_abi::exception::{EXC_AARCH64_SVC, EXC_SOFTWARE};
use mach_abi::thread_state::{
    AARCH64_FLOAT_STATE, AARCH64_FLOAT_STATE_COUNT, AARCH64_THREAD_STATE, Aarch64FloatState,
    Aarch64ThreadState,
};
use mach_abi::traps::{self, MACH_PRINT_MAX, VM_MAX_USER_ADDRESS, temporary};

/// `MACH_SEND_INTERRUPTED`: what GNU Mach's VM traps return for a name that is not a task,
/// so that the library falls back to the RPC.
const MACH_SEND_INTERRUPTED: u64 = 0x1000_0007;

fn ret(frame: &mut TrapFrame, kr: KernReturn) {
    frame.set_result(0, kr.as_reg());
}

fn result(frame: &mut TrapFrame, r: Result<(), KernReturn>) {
    ret(frame, r.err().unwrap_or(KernReturn::Success));
}

/// Handle an `svc` from user mode.
pub fn handle_svc(frame: &mut TrapFrame, thread: &Arc<Thread>) {
    let immediate = frame.trap_immediate();
    let number = frame.trap_number();
    if immediate != 0 || number < 0 {
        return trap::user_exception_raise(
            frame,
            thread,
            EXC_SOFTWARE,
            EXC_AARCH64_SVC as u64,
            u64::from(immediate),
        );
    }
    let a = frame.trap_args();
    match number as u32 {
        traps::MACH_TASK_SELF => frame.set_result(0, self_name(thread, SelfPort::Task)),
        traps::MACH_HOST_SELF => frame.set_result(0, self_name(thread, SelfPort::Host)),
        traps::MACH_THREAD_SELF => frame.set_result(0, self_name(thread, SelfPort::Thread)),
        traps::MACH_MSG_TRAP => {
            let r = ipc_traps::mach_msg(thread, a[0], a[1], a[2], a[3], a[4], a[5], a[6]);
            frame.set_result(0, r);
        }
        traps::MACH_REPLY_PORT => frame.set_result(0, ipc_traps::mach_reply_port(thread)),
        traps::MACH_PORT_ALLOCATE => {
            frame.set_result(0, ipc_traps::mach_port_allocate(thread, a[0], a[1], a[2]))
        }
        traps::MACH_PORT_DEALLOCATE => {
            frame.set_result(0, ipc_traps::mach_port_deallocate(thread, a[0], a[1]))
        }
        traps::MACH_PORT_INSERT_RIGHT => frame.set_result(
            0,
            ipc_traps::mach_port_insert_right(thread, a[0], a[1], a[2], a[3]),
        ),
        traps::MACH_PORT_ALLOCATE_NAME => frame.set_result(
            0,
            ipc_traps::mach_port_allocate_name(thread, a[0], a[1], a[2]),
        ),
        traps::MACH_PRINT => result(frame, mach_print(thread, a[0])),
        traps::SWTCH_PRI | traps::SWTCH => frame.set_result(0, u64::from(sched::yield_now())),
        traps::THREAD_SWITCH => {
            let r = thread_switch(thread, a[0] as u32, a[1], a[2] & 0xffff_ffff);
            result(frame, r);
        }
        traps::VM_MAP => {
            let Some(rest) = stack_args::<{ traps::VM_MAP_ARGS - 8 }>(frame, thread) else {
                return;
            };
            frame.set_result(0, vm_map(thread, a, rest));
        }
        traps::VM_ALLOCATE => frame.set_result(0, vm_allocate(thread, a[0], a[1], a[2], a[3] != 0)),
        traps::VM_DEALLOCATE => {
            let Some(task) = ipc_traps::task_of(thread, a[0]) else {
                frame.set_result(0, MACH_SEND_INTERRUPTED);
                return;
            };
            result(
                frame,
                with_task_map(&task, |map| map.deallocate(a[1], a[2])),
            );
        }
        traps::TASK_TERMINATE => {
            let Some(task) = ipc_traps::task_of(thread, a[0]) else {
                frame.set_result(0, MACH_SEND_INTERRUPTED);
                return;
            };
            task.terminate();
            ret(frame, KernReturn::Success);
        }
        traps::THREAD_SET_SELF_STATE => thread_set_self_state(frame, thread, a[0], a[1], a[2]),
        temporary::EVENT_WAIT => {
            let event = user_event(thread, a[0]);
            let timeout = (a[1] != 0).then_some(a[1]);
            frame.set_result(0, sched::wait_event(event, timeout) as u64);
        }
        temporary::EVENT_WAKE => {
            frame.set_result(
                0,
                sched::thread_wakeup(user_event(thread, a[0]), a[1] != 0) as u64,
            );
        }
        temporary::THREAD_TIMES => {
            // The stretch since entering the kernel is not charged yet: it is this trap's.
            frame.set_result(
                0,
                sched::ticks_to_ns(thread.user_time.load(Ordering::Relaxed)),
            );
            frame.set_result(
                1,
                sched::ticks_to_ns(thread.system_time.load(Ordering::Relaxed)),
            );
        }
        temporary::KMEM_COUNTS => {
            crate::ipc::kmsg::release_spare();
            let (in_use, total) = crate::mm::heap::usage();
            frame.set_result(0, in_use as u64);
            frame.set_result(1, total as u64);
            frame.set_result(2, thread.task.kmem.charged() as u64);
            frame.set_result(3, thread.task.kmem.limit() as u64);
        }
        temporary::EXCEPTION_RESUME => {
            let pc = a[0];
            if pc != 0 && (pc >= VM_MAX_USER_ADDRESS || !pc.is_multiple_of(4)) {
                return ret(frame, KernReturn::InvalidArgument);
            }
            thread.exception_resume.store(pc, Ordering::Relaxed);
            ret(frame, KernReturn::Success);
        }
        temporary::RENDEZVOUS_PUBLISH => {
            frame.set_result(0, ipc_traps::rendezvous_publish(thread, a[0], a[1]))
        }
        temporary::RENDEZVOUS_LOOKUP => {
            frame.set_result(0, ipc_traps::rendezvous_lookup(thread, a[0]))
        }
        _ => trap::user_exception_raise(
            frame,
            thread,
            EXC_SOFTWARE,
            EXC_AARCH64_SVC as u64,
            u64::from(immediate),
        ),
    }
}

/// The arguments of a trap past the eighth (`N` of them), from the user stack as GNU
/// Mach's AArch64 trap entry reads them: the ninth at `sp`, each next one 8 bytes above
/// (where AAPCS64 puts a call's stacked arguments; the trap stub leaves `sp` alone). As
/// there, the words are read in pairs (`N` rounded up to even), from the top pair down,
/// high word first, after a check that the top lies in the user half; the first word that
/// cannot be read, or the top if it is out of range, raises `EXC_BAD_ACCESS` with the
/// copy's code (`KERN_INVALID_ADDRESS` for no memory) and that address, as a fault would,
/// and gives `None`: the trap is not made, and a handler that resumes the thread resumes
/// it after the `svc`, its `x0` as the handler left it.
fn stack_args<const N: usize>(frame: &mut TrapFrame, thread: &Arc<Thread>) -> Option<[u64; N]> {
    let sp = frame.user_sp();
    let words = N.next_multiple_of(2);
    let mut args = [0u64; N];
    let top = sp.checked_add(8 * words as u64);
    let mut failed = match top {
        Some(top) if top < VM_MAX_USER_ADDRESS => None,
        _ => Some((
            KernReturn::InvalidAddress,
            sp.wrapping_add(8 * words as u64),
        )),
    };
    for i in (0..words).rev() {
        if failed.is_some() {
            break;
        }
        let address = sp + 8 * i as u64;
        let mut word = [0u8; 8];
        match with_map(thread, |map| map.copyin(address, &mut word)) {
            Ok(()) => {
                if let Some(arg) = args.get_mut(i) {
                    *arg = u64::from_le_bytes(word);
                }
            }
            Err(kr) => failed = Some((kr, address)),
        }
    }
    if let Some((kr, address)) = failed {
        trap::user_exception_raise(
            frame,
            thread,
            mach_abi::exception::EXC_BAD_ACCESS,
            kr.code() as u64,
            address,
        );
        return None;
    }
    Some(args)
}

/// The event a user address names within the caller's task.
fn user_event(thread: &Thread, address: u64) -> Event {
    Event {
        object: Arc::as_ptr(&thread.task) as u64,
        key: address,
    }
}

/// GNU Mach `thread_switch(thread, option, time)`: hand the CPU to the hinted thread of
/// the caller's task if it waits on a run queue, else yield; `SWITCH_OPTION_DEPRESS`
/// first depresses the caller's priority (for `time` ms at most; it ends when the caller
/// runs again), `SWITCH_OPTION_WAIT` first starts a wait of `time` ms.
fn thread_switch(
    thread: &Arc<Thread>,
    hint: u32,
    option: u64,
    time_ms: u64,
) -> Result<(), KernReturn> {
    if !matches!(
        option,
        traps::SWITCH_OPTION_NONE | traps::SWITCH_OPTION_DEPRESS | traps::SWITCH_OPTION_WAIT
    ) {
        return Err(KernReturn::InvalidArgument);
    }
    let deadline = crate::arch::timer::counter().saturating_add(sched::ms_to_ticks(time_ms));
    let target = ipc_traps::thread_of(thread, u64::from(hint))
        .filter(|t| Arc::ptr_eq(&t.task, &thread.task))
        .filter(|t| !Arc::ptr_eq(t, thread));
    match option {
        traps::SWITCH_OPTION_WAIT => {
            if sched::assert_wait(None, Some(deadline), true).is_err() {
                return Err(KernReturn::Failure);
            }
            // With a hint, the caller blocks and the hinted thread gets the CPU.
            let handed = target.is_some_and(|t| sched::switch_to_thread(&t, sched::Switch::Block));
            if !handed {
                sched::thread_block();
            }
        }
        _ => {
            if option == traps::SWITCH_OPTION_DEPRESS {
                sched::depress_begin(deadline);
            }
            let handed = target.is_some_and(|t| sched::switch_to_thread(&t, sched::Switch::Yield));
            if !handed {
                sched::yield_now();
            }
            if option == traps::SWITCH_OPTION_DEPRESS {
                sched::depress_abort(thread);
            }
        }
    }
    Ok(())
}

/// Run `f` on the thread's address space.
fn with_map<T>(
    thread: &Thread,
    f: impl FnOnce(&mut crate::mm::vm::VmMap) -> Result<T, KernReturn>,
) -> Result<T, KernReturn> {
    with_task_map(&thread.task, f)
}

/// Run `f` on the task's address space.
fn with_task_map<T>(
    task: &Task,
    f: impl FnOnce(&mut crate::mm::vm::VmMap) -> Result<T, KernReturn>,
) -> Result<T, KernReturn> {
    let map = task.map.as_ref().ok_or(KernReturn::InvalidTask)?;
    f(&mut map.lock())
}

/// Which port a self trap names.
enum SelfPort {
    Task,
    Thread,
    Host,
}

/// `mach_task_self`, `mach_thread_self`, `mach_host_self`: a new send right (one more user
/// reference) in the caller's space, `MACH_PORT_NULL` if it cannot be made.
fn self_name(thread: &Thread, which: SelfPort) -> u64 {
    let Some(space) = thread.task.ipc.as_ref() else {
        return 0;
    };
    let port = match which {
        SelfPort::Task => thread.task.self_port.get(),
        SelfPort::Thread => thread.self_port.get(),
        SelfPort::Host => crate::kern::host::ports().map(|p| &p.host),
    };
    u64::from(task::copyout_send(port, space).0)
}

/// `mach_print(string)`: copied into a buffer on the kernel stack (its own frame, not
/// the trap handler's), so printing allocates nothing.
#[inline(never)]
fn mach_print(thread: &Thread, string: u64) -> Result<(), KernReturn> {
    let mut buf = [0u8; MACH_PRINT_MAX];
    let len = with_map(thread, |map| map.copyin_cstr(string, &mut buf))?;
    crate::kern::console::print_bytes(&buf[..len]);
    Ok(())
}

/// `syscall_vm_map(target_task, *address, size, mask, anywhere, memory_object, offset,
/// copy, cur_protection, max_protection, inheritance)` (64): the RPC's routine
/// (`server::mach::vm_map`) on the named task, the address word read from and written to
/// the caller's memory as `vm_allocate`'s. The memory object is a name in the caller's
/// space (a copy of its send right is taken: `KERN_INVALID_NAME` and the like as for any
/// copy-in); a null or dead name is zero-fill memory. Arguments 9-11 (the protections and
/// the inheritance) come from the stack.
fn vm_map(thread: &Thread, a: [u64; 8], stacked: [u64; 3]) -> u64 {
    use crate::ipc::abi::Disposition;
    use crate::server::mach::{MemoryObject, VmMapArgs};
    let Some(task) = ipc_traps::task_of(thread, a[0]) else {
        return MACH_SEND_INTERRUPTED;
    };
    let Some(space) = thread.task.ipc.as_ref() else {
        return KernReturn::InvalidTask.as_reg();
    };
    let object_name = a[5] as u32;
    // GNU Mach's `MACH_PORT_NAME_VALID`: neither null nor dead.
    let object = if object_name == 0 || object_name == u32::MAX {
        MemoryObject::Null
    } else {
        match space.copyin(crate::ipc::PortName(object_name), Disposition::CopySend) {
            // A dead name stands for a dead port: zero-fill memory, as for the RPC.
            Ok(crate::ipc::MsgPort::Right(right)) => {
                let port = right.port();
                let kobject = if port.is_kernel() {
                    port.kobject()
                } else {
                    None
                };
                drop(right);
                MemoryObject::Port(kobject)
            }
            Ok(_) => MemoryObject::Null,
            Err(kr) => return kr.as_reg(),
        }
    };
    let mut word = [0u8; 8];
    if with_map(thread, |map| map.copyin(a[1], &mut word)).is_err() {
        return KernReturn::InvalidAddress.as_reg();
    }
    let args = VmMapArgs {
        address: u64::from_le_bytes(word),
        size: a[2],
        mask: a[3],
        anywhere: a[4] as u32 != 0,
        object,
        offset: a[6],
        copy: a[7] as u32 != 0,
        cur_protection: stacked[0] as i32,
        max_protection: stacked[1] as i32,
        inheritance: stacked[2] as i32,
    };
    let size = args.size;
    let start = match crate::server::mach::vm_map(&*task, args) {
        Ok(start) => start,
        Err(kr) => return kr.as_reg(),
    };
    if with_map(thread, |map| map.copyout(a[1], &start.to_le_bytes())).is_err() {
        let _ = with_task_map(&task, |map| map.deallocate(start, size));
        return KernReturn::InvalidAddress.as_reg();
    }
    KernReturn::Success.as_reg()
}

/// `syscall_vm_allocate(target_task, *address, size, anywhere)`.
fn vm_allocate(thread: &Thread, task: u64, address: u64, size: u64, anywhere: bool) -> u64 {
    let Some(task) = ipc_traps::task_of(thread, task) else {
        return MACH_SEND_INTERRUPTED;
    };
    // The address word is the caller's; the region is the named task's.
    let mut word = [0u8; 8];
    if with_map(thread, |map| map.copyin(address, &mut word)).is_err() {
        return KernReturn::InvalidAddress.as_reg();
    }
    let r = with_task_map(&task, |map| {
        map.allocate(u64::from_le_bytes(word), size, anywhere)
    });
    let start = match r {
        Ok(start) => start,
        Err(kr) => return kr.as_reg(),
    };
    if with_map(thread, |map| map.copyout(address, &start.to_le_bytes())).is_err() {
        let _ = with_task_map(&task, |map| map.deallocate(start, size));
        return KernReturn::InvalidAddress.as_reg();
    }
    KernReturn::Success.as_reg()
}

/// Most 32-bit words `thread_set_self_state` takes (GNU Mach's bound).
const SELF_STATE_MAX_WORDS: u64 = 1024;

/// `thread_set_self_state(flavor, state, count)` (77, GNU Mach `kern/ipc_mig.c`): set the
/// caller's own state as `thread_set_state` would another's. `count` is in 32-bit words,
/// 1 to 1024, else `KERN_INVALID_ARGUMENT`, as is state it cannot read. With
/// `AARCH64_THREAD_STATE` the trap does not return: the thread goes on from the new
/// registers (`x0` included). With `AARCH64_FLOAT_STATE` the FP/SIMD registers are loaded
/// and the trap returns `KERN_SUCCESS`. Another flavor, a short count or a `cpsr` that is
/// not EL0's: `KERN_INVALID_ARGUMENT`, nothing changed.
fn thread_set_self_state(
    frame: &mut TrapFrame,
    thread: &Thread,
    flavor: u64,
    state: u64,
    count: u64,
) {
    if count == 0 || count > SELF_STATE_MAX_WORDS {
        return ret(frame, KernReturn::InvalidArgument);
    }
    let mut words = [0u32; AARCH64_FLOAT_STATE_COUNT as usize];
    let n = (count as usize).min(words.len());
    let mut bytes = [0u8; AARCH64_FLOAT_STATE_COUNT as usize * 4];
    // The whole count is the caller's to have readable, as GNU Mach copies it all in.
    let readable = with_map(thread, |map| {
        let mut rest = [0u8; 64];
        let mut at = n as u64 * 4;
        while at < count * 4 {
            let len = (count * 4 - at).min(rest.len() as u64) as usize;
            map.copyin(state.wrapping_add(at), &mut rest[..len])?;
            at += len as u64;
        }
        map.copyin(state, &mut bytes[..n * 4])
    });
    if readable.is_err() {
        return ret(frame, KernReturn::InvalidArgument);
    }
    for (w, b) in words.iter_mut().zip(bytes.chunks_exact(4)) {
        *w = u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
    }
    let words = &words[..n];
    match flavor as u32 {
        AARCH64_THREAD_STATE => {
            let Some(s) = Aarch64ThreadState::from_words(words).filter(|s| s.cpsr & 0x1f == 0)
            else {
                return ret(frame, KernReturn::InvalidArgument);
            };
            frame.set_user_registers(&s.x, s.sp, s.pc, s.cpsr);
            // The caller runs on this CPU: its TLS register is live now.
            crate::arch::cpu::set_user_tls(s.tpidr_el0);
        }
        AARCH64_FLOAT_STATE => {
            let Some(s) = Aarch64FloatState::from_words(words) else {
                return ret(frame, KernReturn::InvalidArgument);
            };
            let fp = FpState {
                v: s.v,
                fpsr: s.fpsr,
                fpcr: s.fpcr,
            };
            // SAFETY: the caller's FP/SIMD registers are live on this CPU while it runs
            // (they are switched eagerly, `kern::sched`), and the kernel is not preempted
            // before it returns to user mode, so loading them is setting them; FP access
            // is enabled at EL1 for the switch code's use; `fp` is a valid local.
            unsafe { crate::arch::context::restore_fp(&fp) };
            ret(frame, KernReturn::Success);
        }
        _ => ret(frame, KernReturn::InvalidArgument),
    }
}
