//! Synchronous exceptions. In the kernel every one is a bug: it is reported with the
//! decoded syndrome and registers and the machine stops with the panic status. From user
//! mode: a trap (`svc`), a page to bring in, or a fault that becomes a Mach exception,
//! sent to the thread's or the task's exception port (`kern::exception`). With no handler,
//! or when every handler refuses, the fault is reported on the console and the faulting
//! task terminated (GNU Mach); every other task goes on.

extern crate alloc;

use crate::arch::exception::{AbortKind, FaultAccess, TrapFrame, UserException, VectorKind};
use crate::kern::console::print_emergency;
use crate::kern::exception::Outcome;
use crate::kern::power::{ExitStatus, power_off};
use crate::kern::syscall;
use crate::kern::thread::Thread;
use crate::mm::vm::Access;
use crate::percpu;
use alloc::sync::Arc;
use mach_abi::KernReturn;
use mach_abi::exception::*;

/// An exception the kernel did not expect, taken at EL1 (or an FIQ/SError anywhere).
pub fn kernel_exception(frame: &mut TrapFrame, kind: VectorKind) -> ! {
    print_emergency(format_args!(
        "\nkernel: unexpected {} exception from {} on cpu{}: {}\n{}",
        kind.describe(),
        kind.origin(),
        percpu::current_cpu(),
        frame.cause_name(),
        frame
    ));
    power_off(ExitStatus::Panic)
}

/// ` (into the guard of stack slot N)` in a report.
struct StackSlot(u64);

impl core::fmt::Display for StackSlot {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, " (into the guard of stack slot {})", self.0)
    }
}

/// A synchronous exception taken at EL1 (reported from the emergency stack): always a bug.
/// A data abort whose address is just below the stack pointer of the time is named as a
/// kernel stack overflow.
pub fn kernel_sync_exception(frame: &mut TrapFrame, old_sp: u64) -> ! {
    // In the guard gap of a stack slot, or within 64 KiB below to 4 KiB above the stack
    // pointer (a boot stack's guard page): a push into the guard.
    let far = frame.kernel_data_abort_address();
    let guard_slot = far.and_then(crate::mm::layout::stack_guard_slot);
    let overflow = guard_slot.is_some()
        || far.is_some_and(|far| far.wrapping_sub(old_sp).wrapping_add(64 * 1024) < 68 * 1024);
    let slot = guard_slot.map(StackSlot);
    print_emergency(format_args!(
        "\nkernel: {} on cpu{}{}: {} (sp {:#x})\n{}",
        if overflow {
            "kernel stack overflow"
        } else {
            "unexpected synchronous exception"
        },
        percpu::current_cpu(),
        slot.as_ref().map_or(&"" as &dyn core::fmt::Display, |s| s
            as &dyn core::fmt::Display),
        frame.cause_name(),
        old_sp,
        frame
    ));
    power_off(ExitStatus::Panic)
}

/// A synchronous exception from user mode: a trap (the hot path, kept apart from the
/// fault handling so that it pays for none of its stack frame) or a fault.
pub fn user_exception(frame: &mut TrapFrame, _kind: VectorKind, thread: &Arc<Thread>) {
    if frame.is_trap() {
        syscall::handle_svc(frame, thread);
    } else {
        user_fault(frame, thread);
    }
}

/// A synchronous exception from user mode other than a trap: a page for the VM system to
/// bring in, or a Mach exception (GNU Mach's AArch64 codes).
#[inline(never)]
fn user_fault(frame: &mut TrapFrame, thread: &Arc<Thread>) {
    let (exception, code, subcode) = match frame.decode_user() {
        UserException::Trap { .. } => return syscall::handle_svc(frame, thread),
        UserException::Abort {
            address,
            access,
            kind,
        } => match kind {
            AbortKind::Alignment => (EXC_BAD_ACCESS, EXC_AARCH64_AL as u64, address),
            AbortKind::Other => (
                EXC_BAD_ACCESS,
                KernReturn::MemoryError.code() as u64,
                address,
            ),
            AbortKind::Translation => {
                let access = match access {
                    FaultAccess::Read => Access::Read,
                    FaultAccess::Write => Access::Write,
                    FaultAccess::Execute => Access::Execute,
                };
                let resolved = match thread.task.map.as_ref() {
                    Some(map) => map.lock().fault(address, access).map(|_| ()),
                    None => Err(KernReturn::InvalidAddress),
                };
                match resolved {
                    Ok(()) => return,
                    Err(kr) => (EXC_BAD_ACCESS, kr.code() as u64, address),
                }
            }
        },
        UserException::PcAlignment { address } => {
            (EXC_BAD_ACCESS, EXC_AARCH64_AL_PC as u64, address)
        }
        UserException::SpAlignment { sp } => (EXC_BAD_ACCESS, EXC_AARCH64_AL_SP as u64, sp),
        UserException::Undefined => (EXC_BAD_INSTRUCTION, EXC_AARCH64_UNK as u64, 0),
        UserException::IllegalState => (EXC_BAD_INSTRUCTION, EXC_AARCH64_IL as u64, 0),
        UserException::FloatingPoint { flags } => (EXC_ARITHMETIC, flags, 0),
        UserException::Breakpoint { comment } => (EXC_BREAKPOINT, EXC_AARCH64_BRK as u64, comment),
        UserException::Other => (EXC_BAD_INSTRUCTION, 0, 0),
    };
    user_exception_raise(frame, thread, exception, code, subcode);
}

/// Raise Mach exception `exception` (`code`, `subcode`) for the running user thread: send
/// it to a handler (`kern::exception::raise`) and wait for the answer. A handler that
/// answers `KERN_SUCCESS` resumes the thread from its trap frame as the handler left it
/// (`thread_set_state`); a thread terminated while it waits goes on to its end. With no
/// handler, or when every handler refuses, the exception is reported here and the task is
/// terminated (GNU Mach `exception_no_server`): its threads stop at their return to user
/// mode (`sched::ast_check`); the kernel and other tasks go on. The exception: a thread
/// that named a resume address for `EXC_BAD_ACCESS` (temporary `EXCEPTION_RESUME`) and has
/// no handler continues there, told the exception in `x0`-`x2`, and nothing is printed.
pub fn user_exception_raise(
    frame: &mut TrapFrame,
    thread: &Arc<Thread>,
    exception: u32,
    code: u64,
    subcode: u64,
) {
    // Not a reference to the frame across the wait: a handler may rewrite it meanwhile.
    let frame: *mut TrapFrame = frame;
    let outcome = crate::kern::exception::raise(thread, exception, code, subcode);
    let refused = match outcome {
        Outcome::Resume | Outcome::Interrupted => return,
        Outcome::NoHandler => None,
        Outcome::Refused(kr) => Some(kr),
    };
    // SAFETY: the thread's own trap frame, which it reads and writes while it runs in the
    // kernel; the handler's wait is over, so nobody else writes it now.
    let frame = unsafe { &mut *frame };
    if exception == EXC_BAD_ACCESS && refused.is_none() {
        let resume = thread
            .exception_resume
            .load(core::sync::atomic::Ordering::Relaxed);
        if resume != 0 {
            frame.resume_at(resume, [u64::from(exception), code, subcode]);
            return;
        }
    }
    let code_name = KernReturn::from_code(code as i32)
        .filter(|_| exception == EXC_BAD_ACCESS && code < 100)
        .map(|k| k_name(k))
        .unwrap_or("");
    let refused_note = RefusedNote(refused);
    crate::println!(
        "user exception: thread {} ({}) of task {} ({}) on cpu{}: {} code {}{}{} subcode {:#x};{} {}",
        thread.id,
        thread.name,
        thread.task.id,
        thread.task.name,
        percpu::current_cpu(),
        name(exception),
        code,
        if code_name.is_empty() { "" } else { " " },
        code_name,
        subcode,
        refused_note,
        frame.summary()
    );
    thread.task.terminate();
}

/// What the report says of the handlers: nothing when there was none.
struct RefusedNote(Option<Option<KernReturn>>);

impl core::fmt::Display for RefusedNote {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self.0 {
            None => Ok(()),
            Some(Some(kr)) => write!(f, " the handler answered {};", kr.code()),
            Some(None) => write!(f, " the handler sent no valid reply;"),
        }
    }
}

fn k_name(k: KernReturn) -> &'static str {
    match k {
        KernReturn::InvalidAddress => "(KERN_INVALID_ADDRESS)",
        KernReturn::ProtectionFailure => "(KERN_PROTECTION_FAILURE)",
        KernReturn::MemoryError => "(KERN_MEMORY_ERROR)",
        KernReturn::ResourceShortage => "(KERN_RESOURCE_SHORTAGE)",
        _ => "",
    }
}
