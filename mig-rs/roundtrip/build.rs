//! Generates, into `OUT_DIR`, the code the tests run: both sides of mig-rs's own fixtures
//! (`../tests/defs`) and of libmach's interfaces (`../../libmach/defs`), the kernel's
//! servers with `KERNEL_SERVER` as the kernel builds them. mig-rs is a build dependency like
//! for any other crate: what is tested is what ships.

use mig_rs::Build;

fn main() {
    let fixtures = "../tests/defs";
    let defs = "../../libmach/defs";
    let fixture = Build::new()
        .include_dir(fixtures)
        .user(format!("{fixtures}/roundtrip.defs"), "roundtrip_user.rs")
        .server(format!("{fixtures}/roundtrip.defs"), "roundtrip_server.rs")
        .server(format!("{fixtures}/kobject.defs"), "kobject_server.rs")
        .user(format!("{fixtures}/kobject.defs"), "kobject_user.rs");
    let mut user = Build::new().include_dir(defs);
    let mut kernel = Build::new().include_dir(defs).define("KERNEL_SERVER", "1");
    for file in [
        "mach/mach",
        "mach/mach_host",
        "mach/mach_port",
        "mach_debug/mach_debug",
    ] {
        let name = file.rsplit('/').next().unwrap_or(file);
        let path = format!("{defs}/{file}.defs");
        user = user.user(&path, &format!("{name}_user.rs"));
        kernel = kernel.server(&path, &format!("{name}_server.rs"));
    }
    // The default pager is a user task: its server is generated without KERNEL_SERVER.
    let pager = format!("{defs}/mach/default_pager.defs");
    user = user
        .user(&pager, "default_pager_user.rs")
        .server(&pager, "default_pager_server.rs");
    for build in [fixture, user, kernel] {
        if let Err(e) = build.run() {
            // A build script reports failure by panicking; the message is the .defs error.
            panic!("{e}");
        }
    }
    println!("cargo:rerun-if-changed=build.rs");
}
