//! `libmach`: the user-side runtime for programs that run on armach. It turns a static
//! AArch64 executable into a small Rust program: start-up, typed trap wrappers, console
//! output, a heap and threads. It is not a C library and has no files, clocks or IPC yet
//! (message calls and MIG stubs come with the kernel's IPC).
//!
//! ```text
//!  program: libmach::main!(main); fn main(args: &Args) -> i32
//!  ─────────────────────────────────────────────────────────────────────────
//!  start   (_start: argc/argv from sp, bss, main, task_terminate)
//!  print   (print!/println! over mach_print)     panic (report, terminate)
//!  heap    (global allocator, grows by vm_allocate)  thread (spawn/join)
//!  sync    (spin lock that yields)
//!  traps   (one `svc #0` primitive + typed wrappers)  code (return codes)
//!  ─────────────────────────────────────────────────────────────────────────
//!  kernel  (svc #0, negated trap number in w8; mach-abi has the numbers)
//! ```
//!
//! Programs link with `user.ld` beside this crate (`-T<path>`), which places them at
//! 0x40_0000 in three W^X segments; see README.md.

#![no_std]

extern crate alloc;

pub mod code;
mod heap;
mod panic;
pub mod print;
pub mod start;
pub mod sync;
pub mod thread;
pub mod traps;

pub use code::ReturnCode;
pub use mach_abi as abi;
pub use mach_abi::KernReturn;
pub use start::Args;
pub use traps::{
    PortName, cpu_count, current_cpu, frame_counts, kmem_counts, mach_host_self, mach_task_self,
    mach_thread_self,
};

/// The CPU the calling thread runs on (a temporary trap; `thread_info` replaces it).
pub fn cpu() -> u32 {
    traps::current_cpu()
}

/// Gives the processor to another thread if one is ready (`swtch`).
pub fn yield_now() {
    traps::swtch();
}
