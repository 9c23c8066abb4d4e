//! The GNU Mach ABI as armach implements it, shared by the kernel, user programs, mig-rs's
//! generated code and host tests: return codes, port names and slots, the typed message
//! format, trap numbers, exception codes and thread-state layouts (facts from GNU Mach's
//! public headers; see ../shared/REFERENCE.md), plus the small amount of behaviour every side
//! needs to read and write messages the same way:
//!
//! ```text
//!   mig         runtime of mig-rs's generated stubs and servers (codecs, checks, Transport)
//!   rights      owned rights and out-of-line regions for user code (release on drop)
//!   message     header, type descriptors, type names, options, item walker
//!   port        PortName (32-bit names), PortSlot (64-bit message slots), PortRight
//!   kern_return KernReturn: kern_return_t, MIG and mach_msg codes in one enum
//!   traps, exception, thread_state   numbers and layouts
//!   info        thread_info, task_info and vm_statistics flavors as typed structs
//!   gnumach     gsync flags, debugging-name sizes, gnumach.defs ids
//!   sched       armach's own: THREAD_MIGRATION_INFO, PROCESSOR_SCHED_INFO, balancing
//! ```
//!
//! `no_std`, no allocation, no dependencies; nothing panics on any input.

#![no_std]

#[cfg(test)]
extern crate std;

pub mod device;
pub mod exception;
pub mod gnumach;
pub mod info;
pub mod kern_return;
pub mod message;
pub mod mig;
pub mod port;
pub mod rights;
pub mod sched;
pub mod thread_state;
pub mod trace;
pub mod traps;

pub use kern_return::KernReturn;
pub use port::{PortName, PortRight, PortSlot};
