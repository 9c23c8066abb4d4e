//! `libmach`: the user-side runtime for programs that run on armach. It turns a static
//! AArch64 executable into a small Rust program: start-up, typed trap wrappers, IPC with
//! generated MIG client stubs, console output, a heap and threads. It is not a C library and
//! has no files or clocks.
//!
//! ```text
//!  program: libmach::main!(main); fn main(args: &Args) -> i32
//!  ─────────────────────────────────────────────────────────────────────────
//!  start   (_start: argc/argv from sp, bss, main, task_terminate)
//!  print   (print!/println! over mach_print)     panic (report, terminate)
//!  heap    (global allocator, grows by vm_allocate)  thread (spawn/join)
//!  kern    (typed task/thread/VM/host calls over the generated stubs)
//!  loader  (the RAM disk mapped, programs started as new tasks; bootstrap port)
//!  sync    (spin lock that yields)
//!  mig     (generated client stubs)   ipc (transport, rights, messages, server loop)
//!  traps   (one `svc #0` primitive + typed wrappers, mach_msg)
//!  ─────────────────────────────────────────────────────────────────────────
//!  kernel  (svc #0, negated trap number in w8; mach-abi has the numbers)
//! ```
//!
//! Only `ipc` and `mig` build for the host too (without the trap and the task's space), so
//! that `cargo test` checks the message and transport code against fakes.
//!
//! Programs link with `user.ld` beside this crate (`-T<path>`), which places them at
//! 0x40_0000 in three W^X segments; see README.md.

#![no_std]

#[cfg(test)]
extern crate std;

#[cfg(target_os = "none")]
extern crate alloc;

#[cfg(target_os = "none")]
mod heap;
pub mod ipc;
#[cfg(target_os = "none")]
pub mod kern;
#[cfg(target_os = "none")]
pub mod loader;
pub mod mig;
#[cfg(target_os = "none")]
mod panic;
#[cfg(target_os = "none")]
pub mod print;
#[cfg(target_os = "none")]
pub mod start;
#[cfg(target_os = "none")]
pub mod sync;
#[cfg(target_os = "none")]
pub mod thread;
#[cfg(target_os = "none")]
pub mod traps;

pub use armach_exec as exec;
#[cfg(target_os = "none")]
pub use kern::{cpu_count, current_cpu, frame_counts};
pub use mach_abi as abi;
pub use mach_abi::{KernReturn, PortName};
#[cfg(target_os = "none")]
pub use start::Args;
#[cfg(target_os = "none")]
pub use traps::{kmem_counts, mach_host_self, mach_task_self, mach_thread_self};

/// The CPU the calling thread runs on (`thread_info(THREAD_SCHED_INFO).last_processor`).
#[cfg(target_os = "none")]
pub fn cpu() -> u32 {
    kern::current_cpu()
}

/// Gives the processor to another thread if one is ready (`swtch`).
#[cfg(target_os = "none")]
pub fn yield_now() {
    traps::swtch();
}
