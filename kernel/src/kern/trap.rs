//! Synchronous exceptions. In the kernel every one is a bug: it is reported with the
//! decoded syndrome and registers and the machine stops with the panic status. From user
//! space (a later issue) a fault stops the thread and becomes a Mach exception.

use crate::arch::exception::{TrapFrame, VectorKind, esr_class, esr_class_name};
use crate::kern::console::print_emergency;
use crate::kern::percpu;
use crate::kern::power::{ExitStatus, power_off};

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

/// A synchronous exception from EL0. No user space runs yet, so this cannot happen.
pub fn user_exception(frame: &mut TrapFrame, kind: VectorKind) -> ! {
    kernel_exception(frame, kind)
}
