//! Links the bare-metal kernel with its linker script (host builds, for unit tests, link
//! normally), and generates the kernel's MIG servers from `libmach/defs` with mig-rs, with
//! `KERNEL_SERVER` defined, into `OUT_DIR` (`src/server/generated.rs` includes them).

fn main() {
    let dir = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    let script = format!("{dir}/src/arch/aarch64/kernel.ld");
    println!("cargo:rerun-if-changed={script}");
    println!("cargo:rerun-if-changed=build.rs");
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("none") {
        println!("cargo:rustc-link-arg-bins=-T{script}");
    }

    let defs = format!("{dir}/../libmach/defs");
    let mut build = mig_rs::Build::new()
        .include_dir(&defs)
        .define("KERNEL_SERVER", "1");
    for (file, out) in [
        ("mach/mach.defs", "mach_server.rs"),
        ("mach/mach_host.defs", "mach_host_server.rs"),
        ("mach/mach_port.defs", "mach_port_server.rs"),
        ("mach_debug/mach_debug.defs", "mach_debug_server.rs"),
        ("mach/gnumach.defs", "gnumach_server.rs"),
        ("mach/mach4.defs", "mach4_server.rs"),
        ("device/device.defs", "device_server.rs"),
        ("armach/sched.defs", "armach_sched_server.rs"),
        ("armach/trace.defs", "armach_trace_server.rs"),
    ] {
        build = build.server(format!("{defs}/{file}"), out);
    }
    if let Err(e) = build.run() {
        // A build script reports failure by panicking; the message is the .defs error.
        panic!("{e}");
    }
}
