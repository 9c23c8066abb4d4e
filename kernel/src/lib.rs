//! armach: a Mach kernel for 64-bit Arm.
//!
//! ```text
//! kern/     boot sequence, CPUs, interrupts, traps, console, power   (generic)
//! ipc/      ports, rights, spaces, port sets, message queues          (generic, host-tested)
//! mm/       virtual layout, physical frames                          (generic)
//! devtree/  the validating device-tree layer                          (generic, host-tested)
//! drivers/  GICv2/v3, PL011, BCM2835 mini UART                        (found via the tree)
//! arch/     aarch64: boot.s, vectors, MMU, timer, PSCI, semihosting   (the only arch)
//! sync      spinlocks and the lock order                              (the bottom)
//! percpu    per-CPU data, reached through the architecture's pointer  (the bottom)
//! ```
//!
//! `sync` and `percpu` sit below both `arch/` and the generic modules, so each can use
//! them without reaching into the other.
//!
//! Generic code calls `arch::*` and never names the architecture. Modules that touch
//! hardware are compiled for the bare-metal target only; everything else is unit-tested on
//! the host with `cargo test`.

#![cfg_attr(not(test), no_std)]

pub mod arch;
pub mod devtree;
#[cfg(target_os = "none")]
pub mod drivers;
pub mod ipc;
pub mod kern;
pub mod mm;
#[cfg(target_os = "none")]
pub mod percpu;
pub mod sync;
#[cfg(test)]
mod testalloc;

#[cfg(all(target_os = "none", not(test)))]
#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    use core::sync::atomic::{AtomicBool, Ordering};
    static PANICKING: AtomicBool = AtomicBool::new(false);
    if PANICKING.swap(true, Ordering::AcqRel) {
        // Another CPU is already reporting; let it finish.
        arch::cpu::halt();
    }
    kern::console::print_emergency(format_args!(
        "\nkernel panic on cpu{}: {info}\n",
        percpu::current_index()
    ));
    kern::power::power_off(kern::power::ExitStatus::Panic)
}
