//! Thread context on AArch64: the callee-saved registers a kernel context switch keeps,
//! the FP/SIMD state saved and restored eagerly at each switch between user threads
//! (DESIGN.md 5), the first entry of a new user thread, and the user trap frame it starts
//! from. Which thread runs next is the scheduler's business.

use super::exception::TrapFrame;
use core::sync::atomic::AtomicBool;

/// What `switch_context` saves: x19-x29, the link register and the stack pointer.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct Context {
    pub x19_x29: [u64; 11],
    pub lr: u64,
    pub sp: u64,
}

/// User FP/SIMD state: v0-v31, FPSR, FPCR (AARCH64_FLOAT_STATE's first fields).
#[repr(C, align(16))]
#[derive(Clone, Copy, Debug, Default)]
pub struct FpState {
    pub v: [u128; 32],
    pub fpsr: u64,
    pub fpcr: u64,
}

unsafe extern "C" {
    /// Save the running context into `prev`, mark `prev` off-CPU by clearing `*prev_on_cpu`
    /// (release), and continue in `next`.
    fn switch_context(prev: *mut Context, next: *const Context, prev_on_cpu: *const AtomicBool);
    fn fp_save(state: *mut FpState);
    fn fp_restore(state: *const FpState);
    fn user_thread_start();
}

/// Switch from the running context to `next`.
///
/// # Safety
/// `prev` must be the running thread's context, `next` a context saved by an earlier switch
/// or made by `new_user_context`, whose thread is not running anywhere; interrupts masked.
pub unsafe fn switch(prev: *mut Context, next: *const Context, prev_on_cpu: &AtomicBool) {
    // SAFETY: the caller's contract.
    unsafe { switch_context(prev, next, prev_on_cpu) }
}

/// Save this CPU's FP/SIMD registers.
///
/// # Safety
/// `state` must be valid for writes; FP access must be enabled at EL1 (CPACR_EL1.FPEN).
pub unsafe fn save_fp(state: *mut FpState) {
    // SAFETY: the caller's contract.
    unsafe { fp_save(state) }
}

/// Load this CPU's FP/SIMD registers.
///
/// # Safety
/// As `save_fp`, with `state` valid for reads.
pub unsafe fn restore_fp(state: *const FpState) {
    // SAFETY: the caller's contract.
    unsafe { fp_restore(state) }
}

/// A context that, when switched to, finishes the switch and enters user mode from the
/// trap frame at `frame` (on the new thread's kernel stack).
pub fn new_user_context(frame: *mut TrapFrame) -> Context {
    Context {
        x19_x29: [0; 11],
        lr: user_thread_start as *const () as u64,
        sp: frame as u64,
    }
}

/// The trap frame for a thread's first entry to user mode at `pc`, stack `sp`, `x0 = arg`.
pub fn initial_user_frame(pc: u64, sp: u64, arg: u64) -> TrapFrame {
    let mut frame = TrapFrame {
        elr: pc,
        sp_el0: sp,
        spsr: SPSR_EL0T,
        ..TrapFrame::default()
    };
    frame.x[0] = arg;
    frame
}

/// SPSR for user mode: EL0t, all interrupts unmasked.
const SPSR_EL0T: u64 = 0;

core::arch::global_asm!(
    r#"
.section .text.context, "ax"
.global switch_context
switch_context:
    stp     x19, x20, [x0, #0]
    stp     x21, x22, [x0, #16]
    stp     x23, x24, [x0, #32]
    stp     x25, x26, [x0, #48]
    stp     x27, x28, [x0, #64]
    stp     x29, x30, [x0, #80]
    mov     x9, sp
    str     x9, [x0, #96]
    stlrb   wzr, [x2]
    ldp     x19, x20, [x1, #0]
    ldp     x21, x22, [x1, #16]
    ldp     x23, x24, [x1, #32]
    ldp     x25, x26, [x1, #48]
    ldp     x27, x28, [x1, #64]
    ldp     x29, x30, [x1, #80]
    ldr     x9, [x1, #96]
    mov     sp, x9
    ret

.global user_thread_start
user_thread_start:
    bl      {FINISH_SWITCH}
    b       exception_return

.arch_extension fp
.arch_extension simd
.global fp_save
fp_save:
    stp     q0, q1, [x0, #32 * 0]
    stp     q2, q3, [x0, #32 * 1]
    stp     q4, q5, [x0, #32 * 2]
    stp     q6, q7, [x0, #32 * 3]
    stp     q8, q9, [x0, #32 * 4]
    stp     q10, q11, [x0, #32 * 5]
    stp     q12, q13, [x0, #32 * 6]
    stp     q14, q15, [x0, #32 * 7]
    stp     q16, q17, [x0, #32 * 8]
    stp     q18, q19, [x0, #32 * 9]
    stp     q20, q21, [x0, #32 * 10]
    stp     q22, q23, [x0, #32 * 11]
    stp     q24, q25, [x0, #32 * 12]
    stp     q26, q27, [x0, #32 * 13]
    stp     q28, q29, [x0, #32 * 14]
    stp     q30, q31, [x0, #32 * 15]
    mrs     x9, fpsr
    mrs     x10, fpcr
    add     x11, x0, #512
    stp     x9, x10, [x11]
    ret

.global fp_restore
fp_restore:
    ldp     q0, q1, [x0, #32 * 0]
    ldp     q2, q3, [x0, #32 * 1]
    ldp     q4, q5, [x0, #32 * 2]
    ldp     q6, q7, [x0, #32 * 3]
    ldp     q8, q9, [x0, #32 * 4]
    ldp     q10, q11, [x0, #32 * 5]
    ldp     q12, q13, [x0, #32 * 6]
    ldp     q14, q15, [x0, #32 * 7]
    ldp     q16, q17, [x0, #32 * 8]
    ldp     q18, q19, [x0, #32 * 9]
    ldp     q20, q21, [x0, #32 * 10]
    ldp     q22, q23, [x0, #32 * 11]
    ldp     q24, q25, [x0, #32 * 12]
    ldp     q26, q27, [x0, #32 * 13]
    ldp     q28, q29, [x0, #32 * 14]
    ldp     q30, q31, [x0, #32 * 15]
    add     x11, x0, #512
    ldp     x9, x10, [x11]
    msr     fpsr, x9
    msr     fpcr, x10
    ret
"#,
    FINISH_SWITCH = sym crate::kern::sched::thread_first_run,
);

const _: () = assert!(core::mem::offset_of!(FpState, fpsr) == 512);
const _: () = assert!(core::mem::size_of::<Context>() == 13 * 8);
