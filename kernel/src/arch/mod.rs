//! The architecture layer: the names generic code calls, and nothing else. Only AArch64
//! exists; on the host (unit tests) this module holds only the parts that are plain Rust
//! over memory (the translation-table walker), and code that needs the hardware is
//! compiled for the target only.
//!
//! - `boot`: the secondary-CPU entry point and its start slot;
//! - `context`: kernel contexts, FP state, the switch;
//! - `cpu`: this CPU (identity, interrupt masking, caches, TLS, halting);
//! - `exception`: the trap frame and the decoded causes of exceptions;
//! - `mmu`: kernel mappings (linear map, devices, stacks, the image's protection);
//! - `pagetable`: the translation-table format and its one walker;
//! - `uspace`: user translation tables, address spaces and their activation;
//! - `timer`: the counter and the tick;
//! - `psci`, `semihosting`: firmware calls (CPU start, power off) and the test exit;
//! - `sysreg`: typed system-register access, for the GICv3 driver's CPU interface.

#[cfg(all(target_arch = "aarch64", target_os = "none"))]
mod aarch64;
#[cfg(all(target_arch = "aarch64", target_os = "none"))]
pub use aarch64::{
    boot, context, cpu, exception, mmu, pagetable, psci, semihosting, sysreg, timer, uspace,
};

// The table format and walker have no hardware access: the host tests run them too.
#[cfg(test)]
#[path = "aarch64/pagetable.rs"]
pub mod pagetable;
