//! Generates the server side of `armach_bootstrap` (`libmach/defs/armach/bootstrap.defs`)
//! into `OUT_DIR` with mig-rs, and links the program with libmach's `user.ld` (static, at
//! 0x40_0000, W^X segments) when built for the user target.

use std::path::PathBuf;

fn main() {
    let manifest = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let defs = manifest.join("../../libmach/defs");
    let result = mig_rs::Build::new()
        .include_dir(&defs)
        .server(defs.join("armach/bootstrap.defs"), "bootstrap_server.rs")
        .run();
    if let Err(e) = result {
        // A build script reports failure by panicking; the message is the .defs error.
        panic!("{e}");
    }
    let script = manifest.join("../../libmach/user.ld");
    let script = script.canonicalize().unwrap_or(script);
    println!("cargo:rerun-if-changed={}", script.display());
    println!("cargo:rerun-if-changed=build.rs");
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("none") {
        println!("cargo:rustc-link-arg-bins=-T{}", script.display());
        println!("cargo:rustc-link-arg-bins=-zmax-page-size=4096");
    }
}
