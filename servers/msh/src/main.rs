//! msh: a shell on armach's console device. It reads lines from "console"
//! (`device_read_inband`), answers on it (`device_write_inband`) and does everything else
//! through the kernel's Mach interfaces with libmach's generated stubs: `mach_host.defs` for
//! processors, sets and the host, `mach.defs` for tasks and threads, armach's
//! `sched.defs` for migration, binding and balancing. Started as an init program
//! (`init=msh`), it takes the host-privileged port from `argv[1]` and the device master
//! port from `argv[2]`.
//!
//! ```text
//!  shell    the loop: prompt, line editor (lib), parse (lib), run
//!  views    ps, cpus, psets, top: read-only, tables and bars (lib)
//!  actions  pset, burn, bind, migrate, balance, sleep, halt, spawn
//!  registry msh's small numbers for threads, tasks and sets (the ports it keeps)
//!  console  the console device
//! ```
//!
//! On the host (where the library's tests run) the program is only a note saying so.

#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(target_os = "none")]
extern crate alloc;

#[cfg(target_os = "none")]
mod actions;
#[cfg(target_os = "none")]
mod console;
#[cfg(target_os = "none")]
mod registry;
#[cfg(target_os = "none")]
mod shell;
#[cfg(target_os = "none")]
mod views;

#[cfg(target_os = "none")]
libmach::main!(shell::main);

#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!("msh runs on armach, not on this host: `cargo xtask run` boots into it");
    std::process::exit(1);
}
