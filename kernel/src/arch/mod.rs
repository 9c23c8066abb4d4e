//! The architecture layer. Only AArch64 exists; on the host (unit tests) this module holds
//! only the parts that are plain Rust over memory (the translation-table walker), and code
//! that needs the hardware is compiled for the target only.

#[cfg(all(target_arch = "aarch64", target_os = "none"))]
pub mod aarch64;
#[cfg(all(target_arch = "aarch64", target_os = "none"))]
pub use aarch64::*;

// The table format and walker have no hardware access: the host tests run them too.
#[cfg(test)]
#[path = "aarch64/pagetable.rs"]
pub mod pagetable;
