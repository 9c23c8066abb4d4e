//! The EL1 virtual timer (CNTV) and the system counter: one periodic tick per CPU.

use aarch64_cpu::registers::{CNTFRQ_EL0, CNTV_CTL_EL0, CNTV_TVAL_EL0, CNTVCT_EL0};
use tock_registers::interfaces::{Readable, Writeable};

/// The counter frequency in Hz as the firmware set it (never assumed).
pub fn frequency() -> u64 {
    CNTFRQ_EL0.get()
}

/// The virtual counter.
pub fn counter() -> u64 {
    CNTVCT_EL0.get()
}

/// Fire the virtual timer `ticks` counter ticks from now, interrupt unmasked.
pub fn arm(ticks: u64) {
    CNTV_TVAL_EL0.set(ticks.min(u32::MAX as u64));
    CNTV_CTL_EL0.write(CNTV_CTL_EL0::ENABLE::SET + CNTV_CTL_EL0::IMASK::CLEAR);
}

/// Let user mode read the virtual counter (`CNTVCT_EL0`) and its frequency, as Linux does:
/// programs measure time without a trap. The timers themselves stay the kernel's.
pub fn allow_user_counter() {
    use aarch64_cpu::registers::CNTKCTL_EL1;
    CNTKCTL_EL1.write(CNTKCTL_EL1::EL0VCTEN::SET);
}
