//! Generates the client stubs of libmach's interfaces (`defs/`), and the server side of
//! `exc.defs` (the kernel calls, user tasks serve), into `OUT_DIR` with mig-rs, which
//! `src/mig.rs` includes. mig-rs reruns this when any `.defs` file it read changes.

fn main() {
    let result = mig_rs::Build::new()
        .include_dir("defs")
        .user("defs/mach/mach.defs", "mach_user.rs")
        .user("defs/mach/mach_host.defs", "mach_host_user.rs")
        .user("defs/mach/mach_port.defs", "mach_port_user.rs")
        .user("defs/mach/gnumach.defs", "gnumach_user.rs")
        .user("defs/mach/mach4.defs", "mach4_user.rs")
        .user("defs/device/device.defs", "device_user.rs")
        .user("defs/armach/sched.defs", "armach_sched_user.rs")
        .user("defs/armach/bootstrap.defs", "armach_bootstrap_user.rs")
        .user("defs/armach/trace.defs", "armach_trace_user.rs")
        .server("defs/mach/exc.defs", "exc_server.rs")
        .run();
    if let Err(e) = result {
        // A build script reports failure by panicking; the message is the .defs error.
        panic!("{e}");
    }
    println!("cargo:rerun-if-changed=build.rs");
}
