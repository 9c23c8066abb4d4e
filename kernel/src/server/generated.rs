//! Server-side code mig-rs generates at build time (`kernel/build.rs`, with `KERNEL_SERVER`,
//! into `OUT_DIR`; nothing generated is committed): per subsystem, a trait with one method per
//! routine and one hook per translation function, a `<subsystem>_server` demux function, and
//! a `<subsystem>_unimplemented!` macro for routines the kernel does not serve yet.
//!
//! A kernel server implements the trait with its objects as the associated types (`Task`,
//! `Thread`, `Host`, `Processor`, `ProcessorSet`, ...). The translation hooks get the port's
//! 64-bit slot exactly as the kernel's IPC left it in the message (a reference to the port,
//! never cut to 32 bits) and the request id; the routines get `&Task` and the like.

/// `mach` (2000): tasks, threads, virtual memory, memory objects.
pub mod mach {
    include!(concat!(env!("OUT_DIR"), "/mach_server.rs"));
}

/// `mach_host` (2600): the host, processors and processor sets.
pub mod mach_host {
    include!(concat!(env!("OUT_DIR"), "/mach_host_server.rs"));
}

/// `mach_port` (3200): a task's port name space.
pub mod mach_port {
    include!(concat!(env!("OUT_DIR"), "/mach_port_server.rs"));
}

/// `mach_debug` (3000): debugging and statistics.
pub mod mach_debug {
    include!(concat!(env!("OUT_DIR"), "/mach_debug_server.rs"));
}

/// `gnumach` (4200): GNU Mach's additions (names, gsync).
pub mod gnumach {
    include!(concat!(env!("OUT_DIR"), "/gnumach_server.rs"));
}

/// `mach4` (4000): proxies of memory (`vm_region_create_proxy`).
pub mod mach4 {
    include!(concat!(env!("OUT_DIR"), "/mach4_server.rs"));
}

/// `device` (2800): devices opened on the device master port.
pub mod device {
    include!(concat!(env!("OUT_DIR"), "/device_server.rs"));
}

/// `armach_sched` (5000): armach's own migration and balancing control.
pub mod armach_sched {
    include!(concat!(env!("OUT_DIR"), "/armach_sched_server.rs"));
}

/// `armach_trace` (5200): armach's scheduler trace.
pub mod armach_trace {
    include!(concat!(env!("OUT_DIR"), "/armach_trace_server.rs"));
}
