//! AArch64: boot, exception vectors, translation tables, the current CPU, the generic
//! timer, PSCI and semihosting. Generic code reaches the hardware only through the names
//! this module exports.

pub mod boot;
pub mod context;
pub mod cpu;
pub mod exception;
mod mem;
pub mod mmu;
pub mod pagetable;
pub mod psci;
pub mod semihosting;
pub mod sysreg;
pub mod timer;
pub mod uspace;
