//! The GNU Mach ABI as armach implements it, shared by the kernel, user programs and host
//! tests: return codes, trap numbers, exception codes, thread-state layouts. Numbers only;
//! no behaviour lives here. Sources of the facts: GNU Mach's public headers (see
//! ../shared/REFERENCE.md).

#![no_std]

pub mod exception;
pub mod kern_return;
pub mod thread_state;
pub mod traps;

pub use kern_return::KernReturn;
