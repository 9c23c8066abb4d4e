//! `cargo xtask lint`: clippy with `-D warnings` on the host crates, on every
//! cross-compiled crate for its own target and on the host fuzz targets (`fuzz/`), then
//! `cargo fmt --check` on both workspaces. The cross crates are a
//! table so user-side crates join by adding a row.

use crate::{Error, KERNEL_TARGET, Result, USER_TARGET, prereq, proc};

/// Cross-compiled crates and the target each is linted for.
pub const CROSS_CRATES: &[(&str, &str)] = &[
    ("armach-kernel", KERNEL_TARGET),
    ("libmach", USER_TARGET),
    ("armach-tests", USER_TARGET),
    ("armach-bootstrap", USER_TARGET),
    ("armach-msh", USER_TARGET),
];

/// Runs every check (all of them, even after a failure) and reports which failed.
pub fn run() -> Result<u8> {
    prereq::ensure_rust_targets()?;
    let mut checks: Vec<(String, Vec<String>)> = vec![(
        "clippy (host crates)".to_owned(),
        // The default members are the host crates; `--workspace` would take the
        // user-mode crates too, which only build for their own target.
        words(&["clippy", "--all-targets", "--", "-D", "warnings"]),
    )];
    for (krate, target) in CROSS_CRATES {
        checks.push((
            format!("clippy {krate} ({target})"),
            words(&[
                "clippy", "-p", krate, "--target", target, "--", "-D", "warnings",
            ]),
        ));
    }
    // The kernel as `cargo xtask test` builds it, with the lock-order check compiled in.
    checks.push((
        format!("clippy armach-kernel --features lockcheck ({KERNEL_TARGET})"),
        words(&[
            "clippy",
            "-p",
            "armach-kernel",
            "--features",
            "lockcheck",
            "--target",
            KERNEL_TARGET,
            "--",
            "-D",
            "warnings",
        ]),
    ));
    // The host fuzz targets: a workspace of their own (`fuzz/`), built here as plain
    // binaries (clippy needs no honggfuzz tooling).
    checks.push((
        "clippy fuzz/ (host fuzz targets)".to_owned(),
        words(&[
            "clippy",
            "--manifest-path",
            "fuzz/Cargo.toml",
            "--all-targets",
            "--",
            "-D",
            "warnings",
        ]),
    ));
    checks.push((
        "rustfmt".to_owned(),
        words(&["fmt", "--all", "--", "--check"]),
    ));
    checks.push((
        "rustfmt fuzz/".to_owned(),
        words(&[
            "fmt",
            "--manifest-path",
            "fuzz/Cargo.toml",
            "--all",
            "--",
            "--check",
        ]),
    ));

    let mut failed = Vec::new();
    for (name, args) in &checks {
        let mut cmd = proc::cargo();
        cmd.args(args);
        if !proc::run_status(&mut cmd)? {
            failed.push(name.as_str());
        }
    }
    if failed.is_empty() {
        println!("xtask: lint clean ({} checks)", checks.len());
        Ok(0)
    } else {
        Err(Error::new(format!("lint failed: {}", failed.join(", "))))
    }
}

fn words(list: &[&str]) -> Vec<String> {
    list.iter().map(|w| (*w).to_owned()).collect()
}
