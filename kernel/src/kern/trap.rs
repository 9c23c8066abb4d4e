//! Synchronous exceptions. In the kernel every one is a bug: it is reported with the
//! decoded syndrome and registers and the machine stops with the panic status. From user
//! mode: a trap (`svc`), a page to bring in, or a fault that becomes a Mach exception.
//! Until exception ports exist the faulting thread is stopped and the fault reported on
//! the console; its task and every other go on.

extern crate alloc;

use crate::arch::exception::{TrapFrame, VectorKind, esr_class, esr_class_name};
use crate::kern::console::print_emergency;
use crate::kern::power::{ExitStatus, power_off};
use crate::kern::thread::Thread;
use crate::kern::{percpu, syscall};
use crate::mm::vm::Access;
use alloc::sync::Arc;
use mach_abi::KernReturn;
use mach_abi::exception::*;

/// An exception the kernel did not expect, taken at EL1 (or an FIQ/SError anywhere).
pub fn kernel_exception(frame: &mut TrapFrame, kind: VectorKind) -> ! {
    let class = esr_class(frame.esr);
    print_emergency(format_args!(
        "\nkernel: unexpected {} exception from {} on cpu{}: {}\n{}",
        kind.describe(),
        kind.origin(),
        percpu::current_index(),
        esr_class_name(class),
        frame
    ));
    power_off(ExitStatus::Panic)
}

/// A synchronous exception taken at EL1 (reported from the emergency stack): always a bug.
/// A data abort whose address is just below the stack pointer of the time is named as a
/// kernel stack overflow.
pub fn kernel_sync_exception(frame: &mut TrapFrame, old_sp: u64) -> ! {
    let class = esr_class(frame.esr);
    // Within 64 KiB below to 4 KiB above the stack pointer: a push into the guard page.
    let overflow =
        class == 0x25 && frame.far.wrapping_sub(old_sp).wrapping_add(64 * 1024) < 68 * 1024;
    print_emergency(format_args!(
        "\nkernel: {} on cpu{}: {} (sp {:#x})\n{}",
        if overflow {
            "kernel stack overflow"
        } else {
            "unexpected synchronous exception"
        },
        percpu::current_index(),
        esr_class_name(class),
        old_sp,
        frame
    ));
    power_off(ExitStatus::Panic)
}

// ESR_EL1 exception classes (Arm ARM D19.2.40) that user mode can cause.
const EC_UNKNOWN: u8 = 0x00;
const EC_ILLEGAL_STATE: u8 = 0x0e;
const EC_SVC64: u8 = 0x15;
const EC_SYSREG: u8 = 0x18;
const EC_IABT_LOWER: u8 = 0x20;
const EC_PC_ALIGN: u8 = 0x22;
const EC_DABT_LOWER: u8 = 0x24;
const EC_SP_ALIGN: u8 = 0x26;
const EC_FP_EXC64: u8 = 0x2c;
const EC_BRK64: u8 = 0x3c;

/// Fault status codes (ISS bits 5:0) of aborts: the kind is in bits 5:2.
fn is_translation_or_permission(iss: u64) -> bool {
    matches!((iss & 0x3f) >> 2, 0b0001..=0b0011)
}
const FSC_ALIGNMENT: u64 = 0b10_0001;

/// A synchronous exception from user mode: a trap (the hot path, kept apart from the
/// fault handling so that it pays for none of its stack frame) or a fault.
pub fn user_exception(frame: &mut TrapFrame, _kind: VectorKind, thread: &Arc<Thread>) {
    if esr_class(frame.esr) == EC_SVC64 {
        syscall::handle_svc(frame, thread);
    } else {
        user_fault(frame, thread);
    }
}

/// A synchronous exception from user mode other than a trap.
#[inline(never)]
fn user_fault(frame: &mut TrapFrame, thread: &Arc<Thread>) {
    let class = esr_class(frame.esr);
    let iss = frame.esr & 0x1ff_ffff;
    match class {
        EC_DABT_LOWER | EC_IABT_LOWER => {
            let access = if class == EC_IABT_LOWER {
                Access::Execute
            } else if iss & (1 << 6) != 0 {
                Access::Write
            } else {
                Access::Read
            };
            if iss & 0x3f == FSC_ALIGNMENT {
                return user_exception_raise(
                    frame,
                    thread,
                    EXC_BAD_ACCESS,
                    EXC_AARCH64_AL as u64,
                    frame.far,
                );
            }
            if !is_translation_or_permission(iss) {
                return user_exception_raise(
                    frame,
                    thread,
                    EXC_BAD_ACCESS,
                    KernReturn::MemoryError.code() as u64,
                    frame.far,
                );
            }
            let resolved = match thread.task.map.as_ref() {
                Some(map) => map.lock().fault(frame.far, access).map(|_| ()),
                None => Err(KernReturn::InvalidAddress),
            };
            if let Err(kr) = resolved {
                user_exception_raise(frame, thread, EXC_BAD_ACCESS, kr.code() as u64, frame.far);
            }
        }
        EC_PC_ALIGN => user_exception_raise(
            frame,
            thread,
            EXC_BAD_ACCESS,
            EXC_AARCH64_AL_PC as u64,
            frame.far,
        ),
        EC_SP_ALIGN => user_exception_raise(
            frame,
            thread,
            EXC_BAD_ACCESS,
            EXC_AARCH64_AL_SP as u64,
            frame.sp_el0,
        ),
        EC_UNKNOWN | EC_SYSREG => user_exception_raise(
            frame,
            thread,
            EXC_BAD_INSTRUCTION,
            EXC_AARCH64_UNK as u64,
            0,
        ),
        EC_ILLEGAL_STATE => {
            user_exception_raise(frame, thread, EXC_BAD_INSTRUCTION, EXC_AARCH64_IL as u64, 0)
        }
        EC_FP_EXC64 => user_exception_raise(frame, thread, EXC_ARITHMETIC, iss & 0xff, 0),
        EC_BRK64 => user_exception_raise(
            frame,
            thread,
            EXC_BREAKPOINT,
            EXC_AARCH64_BRK as u64,
            iss & 0xffff,
        ),
        _ => user_exception_raise(frame, thread, EXC_BAD_INSTRUCTION, 0, 0),
    }
}

/// Raise Mach exception `exception` (`code`, `subcode`) for the running user thread.
/// Exception ports come with IPC; until then the exception is reported here and the thread
/// stops at the return to user mode (`sched::ast_check`), which never comes back to it,
/// unless it named a resume address for `EXC_BAD_ACCESS` (temporary `EXCEPTION_RESUME`):
/// then it continues there, told the exception in `x0`-`x2`, and nothing is printed.
pub fn user_exception_raise(
    frame: &mut TrapFrame,
    thread: &Arc<Thread>,
    exception: u32,
    code: u64,
    subcode: u64,
) {
    if exception == EXC_BAD_ACCESS {
        let resume = thread
            .exception_resume
            .load(core::sync::atomic::Ordering::Relaxed);
        if resume != 0 {
            frame.elr = resume;
            frame.x[0] = u64::from(exception);
            frame.x[1] = code;
            frame.x[2] = subcode;
            return;
        }
    }
    let code_name = KernReturn::from_code(code as i32)
        .filter(|_| exception == EXC_BAD_ACCESS && code < 100)
        .map(|k| k_name(k))
        .unwrap_or("");
    crate::println!(
        "user exception: thread {} of task {} ({}) on cpu{}: {} code {}{}{} subcode {:#x}; {} (ESR {:#x}), FAR {:#x}, PC {:#x}",
        thread.id,
        thread.task.id,
        thread.task.name,
        percpu::current_index(),
        name(exception),
        code,
        if code_name.is_empty() { "" } else { " " },
        code_name,
        subcode,
        esr_class_name(esr_class(frame.esr)),
        frame.esr,
        frame.far,
        frame.elr
    );
    thread.request_termination();
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
