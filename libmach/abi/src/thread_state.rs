//! Thread-state flavors (`mach/aarch64/thread_status.h`).

/// `AARCH64_THREAD_STATE`: general registers.
pub const AARCH64_THREAD_STATE: u32 = 1;
/// `AARCH64_FLOAT_STATE`: FP/SIMD registers.
pub const AARCH64_FLOAT_STATE: u32 = 2;

/// `struct aarch64_thread_state`: `x[31], sp, pc, tpidr_el0, cpsr` (64-bit words; `cpsr`
/// is padded to 8 bytes).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Aarch64ThreadState {
    pub x: [u64; 31],
    pub sp: u64,
    pub pc: u64,
    pub tpidr_el0: u64,
    pub cpsr: u64,
}

/// Its size in 32-bit words (`AARCH64_THREAD_STATE_COUNT`).
pub const AARCH64_THREAD_STATE_COUNT: u32 = (core::mem::size_of::<Aarch64ThreadState>() / 4) as u32;
