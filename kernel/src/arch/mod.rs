//! The architecture layer. Only AArch64 exists; on the host (unit tests) this module is
//! empty, and code that needs the hardware is compiled for the target only.

#[cfg(all(target_arch = "aarch64", target_os = "none"))]
pub mod aarch64;
#[cfg(all(target_arch = "aarch64", target_os = "none"))]
pub use aarch64::*;
