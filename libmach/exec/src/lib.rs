//! `armach-exec`: how a program is read and laid out to start, as plain code with no
//! system calls, shared by the kernel (which starts the `init=` programs) and libmach
//! (whose loader starts programs from user space, for the bootstrap server and the shell):
//!
//! ```text
//!   cpio   the initial RAM disk (newc): files by name
//!   elf    a static AArch64 executable: entry and loadable segments, checked
//!   image  the pages to map with their protections, and the start-up stack (argc, argv,
//!          NULL, empty envp, NULL, strings: the contract of DESIGN.md 5)
//! ```
//!
//! Each reader checks its input against its bounds and never panics on damaged input
//! (property-tested on the host). Mapping and writing the pages is the caller's business.

#![no_std]

extern crate alloc;
#[cfg(test)]
extern crate std;

pub mod cpio;
pub mod elf;
pub mod image;
