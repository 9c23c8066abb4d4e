//! `cargo xtask lint`: clippy with `-D warnings` on the host crates and on every
//! cross-compiled crate for its own target, then `cargo fmt --check`. The cross crates are a
//! table so user-side crates join by adding a row.

use crate::{Error, KERNEL_TARGET, Result, prereq, proc};

/// Cross-compiled crates and the target each is linted for.
/// Later: libmach, the user tests and servers, for `USER_TARGET`.
pub const CROSS_CRATES: &[(&str, &str)] = &[("armach-kernel", KERNEL_TARGET)];

/// Runs every check (all of them, even after a failure) and reports which failed.
pub fn run() -> Result<u8> {
    prereq::ensure_rust_targets()?;
    let mut checks: Vec<(String, Vec<String>)> = vec![(
        "clippy (host crates)".to_owned(),
        words(&[
            "clippy",
            "--workspace",
            "--all-targets",
            "--",
            "-D",
            "warnings",
        ]),
    )];
    for (krate, target) in CROSS_CRATES {
        checks.push((
            format!("clippy {krate} ({target})"),
            words(&[
                "clippy", "-p", krate, "--target", target, "--", "-D", "warnings",
            ]),
        ));
    }
    checks.push((
        "rustfmt".to_owned(),
        words(&["fmt", "--all", "--", "--check"]),
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
