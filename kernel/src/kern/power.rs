//! Ending a run: stopping the other CPUs, then semihosting exit (when the bootarg
//! `exit=semihosting` asks), else PSCI `SYSTEM_OFF`, else parking every CPU in `wfi`.
//! Exit statuses are DESIGN.md section 4's.

use crate::arch::{cpu, psci, semihosting};
use crate::devtree::PsciConduit;
use crate::kern::irq;
use crate::percpu;
use core::sync::atomic::{AtomicBool, AtomicU8, Ordering};

/// The status a run ends with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum ExitStatus {
    Success = 0,
    /// A kernel panic or an unexpected kernel exception.
    Panic = 2,
    /// A CPU of the device tree did not start.
    CpuFailed = 3,
    /// A test reported failure.
    TestFailed = 4,
}

static SEMIHOSTING: AtomicBool = AtomicBool::new(false);
/// 0: no PSCI, 1: hvc, 2: smc.
static PSCI: AtomicU8 = AtomicU8::new(0);

/// Record how this machine can be powered off.
pub fn init(semihosting_exit: bool, psci: Option<PsciConduit>) {
    SEMIHOSTING.store(semihosting_exit, Ordering::Relaxed);
    let code = match psci {
        None => 0,
        Some(PsciConduit::Hvc) => 1,
        Some(PsciConduit::Smc) => 2,
    };
    PSCI.store(code, Ordering::Relaxed);
}

pub fn psci_conduit() -> Option<PsciConduit> {
    match PSCI.load(Ordering::Relaxed) {
        1 => Some(PsciConduit::Hvc),
        2 => Some(PsciConduit::Smc),
        _ => None,
    }
}

/// Stop every other CPU, then end the run with `status`.
pub fn power_off(status: ExitStatus) -> ! {
    power_off_with(status as u32)
}

/// Stop every other CPU, then end the run with exit code `code` (`host_reboot` passes
/// the status a program asks for).
pub fn power_off_with(code: u32) -> ! {
    // An inconsistency the self-checks found fails a run that would have succeeded.
    let code = if code == 0 && crate::kern::checks::failures() != 0 {
        ExitStatus::TestFailed as u32
    } else {
        code
    };
    cpu::irq_disable();
    irq::stop_other_cpus();
    if SEMIHOSTING.load(Ordering::Relaxed) {
        semihosting::exit(code);
    }
    if let Some(conduit) = psci_conduit() {
        psci::system_off(conduit);
    }
    crate::kern::console::print_emergency(format_args!(
        "armach: halted with status {code} (cpu{}); no way to power off\n",
        percpu::current_cpu()
    ));
    cpu::halt()
}
