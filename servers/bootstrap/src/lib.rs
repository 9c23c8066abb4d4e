//! The rules of servers/bootstrap, in plain Rust that the host tests run: the name table
//! ([`names`]), the configuration ([`config`]: which programs to start and how) and the
//! supervisor ([`supervisor`]: which started task is which, what to do when one ends,
//! when bootstrap itself is done). The server loop, the IPC and the loading of programs
//! are `main.rs`'s, for the target only.

#![no_std]

extern crate alloc;
#[cfg(test)]
extern crate std;

pub mod config;
pub mod names;
pub mod supervisor;
