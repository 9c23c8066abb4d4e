//! The kernel binary: everything is in the library; the linker script's `ENTRY(_start)`
//! (arch/aarch64/boot.s) is where execution begins.

#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(target_os = "none")]
use armach_kernel as _;

#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!("the kernel runs on the machine, not the host: use `cargo xtask run`");
}
