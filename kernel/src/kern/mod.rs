//! The generic kernel: boot sequence, CPUs, interrupts, traps, console, power.
//! Scheduling, tasks and IPC join here as they arrive.

pub mod bootargs;
pub mod device;
pub mod exception;
pub mod gsync;
pub mod lifetime;
pub mod name;
pub mod sched;

#[cfg(target_os = "none")]
pub mod boot;
#[cfg(target_os = "none")]
pub mod bootstrap;
#[cfg(target_os = "none")]
pub mod checks;
#[cfg(target_os = "none")]
pub mod console;
#[cfg(target_os = "none")]
pub mod host;
#[cfg(target_os = "none")]
pub mod ipc_traps;
#[cfg(target_os = "none")]
pub mod irq;
#[cfg(target_os = "none")]
pub mod loader;
#[cfg(target_os = "none")]
pub mod power;
#[cfg(target_os = "none")]
pub mod selftest;
#[cfg(target_os = "none")]
pub mod smp;
#[cfg(target_os = "none")]
pub mod syscall;
#[cfg(target_os = "none")]
pub mod task;
#[cfg(target_os = "none")]
pub mod thread;
#[cfg(target_os = "none")]
pub mod trap;

/// The RAM disk's archive and the ELF reader, shared with libmach's loader.
pub use armach_exec::{cpio, elf};
