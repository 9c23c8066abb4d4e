//! msh's pure parts, plain Rust tested on the host: the line editor that turns console bytes
//! into lines and echo ([`line`]), the command language ([`command`]: parsing and the
//! messages for bad input), and text output ([`table`]: aligned tables and load bars).
//! Nothing here talks to the kernel; the program (`main.rs`) does that through libmach's
//! generated stubs.

#![no_std]

extern crate alloc;
#[cfg(test)]
extern crate std;

pub mod command;
pub mod line;
pub mod table;
