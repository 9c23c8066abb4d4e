//! `cargo xtask soak`: the soak program (`tests/src/bin/soak.rs`) for a given number of
//! minutes, with the kernel built with its lock-order check (`lockcheck`) and booted with its
//! self-checks on (`checks=1`). The program runs IPC ping-pong between tasks (every message's
//! number and checksum checked), thread and task churn, migrations, processor-set changes and
//! memory together until its deadline, then compares what it can count through Mach
//! interfaces with the start. The run is judged as a test run is (the success line once, no
//! failure line, `checks` with no inconsistency and no `checks: FAILED` line, exit status 0,
//! which a kernel panic or a leak at the end of the run does not give, and a deadline of the
//! minutes plus a margin); the command prints the program's figures and the kernel's, and
//! exits non-zero on any failure. `cargo xtask test` runs a short one ([`test_run`]).

use std::path::Path;
use std::time::Duration;

use crate::qemu::{Board, Gic, MachineOptions};
use crate::test::{self, QemuTest};
use crate::{Result, kernel, prereq};

/// The program's name in the RAM disk.
pub const PROGRAM: &str = "soak";
/// Time beyond the soak itself for boot, the end of the run (partners stopping, the counts
/// waited for) and a slow host.
const MARGIN: Duration = Duration::from_secs(180);
/// How long the soak in `cargo xtask test` runs (seconds).
pub const TEST_SECONDS: u64 = 20;

/// The kernel command line of a soak of `seconds`.
pub fn bootargs(seconds: u64) -> String {
    format!("checks=1 init={PROGRAM} -- seconds={seconds}")
}

/// A soak run of `seconds` on `smp` CPUs (virt, GICv3), named `name-MACHINE`.
pub fn soak_run(name: &str, seconds: u64, smp: u32, initrd: &Path) -> QemuTest {
    let boot = test::boot_run(
        Board::Virt,
        MachineOptions {
            smp: Some(smp),
            gic: Some(Gic::V3),
            ..MachineOptions::default()
        },
    );
    QemuTest {
        name: format!("{name}-{}", boot.name),
        bootargs: bootargs(seconds),
        initrd: Some(initrd.to_path_buf()),
        expect: Vec::new(),
        expect_text: vec![
            "soak: total: ".to_owned(),
            " 0 lost, 0 corrupted".to_owned(),
            "checks: on: ".to_owned(),
            "lock order checked at every acquisition".to_owned(),
            test::CHECKS_CLEAN.to_owned(),
        ],
        expect_counts: vec![(test::USER_PASS_MARKER.to_owned(), 1)],
        fail_on: vec![
            test::USER_FAIL_MARKER.to_owned(),
            test::CHECKS_FAILED.to_owned(),
        ],
        timeout: Some(Duration::from_secs(seconds) + MARGIN),
        ..boot
    }
}

/// The short soak of `cargo xtask test`, on 4 CPUs.
pub fn test_run(initrd: &Path) -> QemuTest {
    soak_run("soak", TEST_SECONDS, 4, initrd)
}

/// The lines of a console worth showing: the program's totals, its counts before and after,
/// its failures, the kernel's self-check tally and its leak check.
pub fn figures(console: &str) -> Vec<String> {
    console
        .lines()
        .filter(|l| {
            l.starts_with("soak: total: ")
                || l.starts_with("soak: before: ")
                || l.starts_with("soak: after: ")
                || l.starts_with("soak: FAILED")
                || l.starts_with("soak: pinger ")
                || l.starts_with("soak: partner ")
                || l.starts_with("checks: ")
                || l.starts_with("kernel: ")
        })
        .map(|l| l.trim().to_owned())
        .collect()
}

pub fn run(minutes: u64, smp: u32) -> Result<u8> {
    prereq::ensure_rust_targets()?;
    prereq::ensure_qemu()?;
    let image = kernel::build_with(&["lockcheck"])?;
    let initrd = kernel::initrd()?;
    let seconds = minutes * 60;
    let t = soak_run(&format!("soak-{minutes}min"), seconds, smp, &initrd);
    let deadline = t.timeout.unwrap_or(MARGIN);
    println!(
        "xtask: soak of {minutes} min on {smp} CPUs (deadline {} s): {}",
        deadline.as_secs(),
        t.bootargs
    );
    match test::run_one_console(&t, &image, &Err(String::new()), deadline) {
        Ok((secs, console)) => {
            for l in figures(&console) {
                println!("    {l}");
            }
            println!("PASS soak of {minutes} min on {smp} CPUs ({secs:.0} s)");
            Ok(0)
        }
        Err((reason, console, tail)) => {
            for l in figures(&console) {
                println!("    {l}");
            }
            println!("FAIL soak of {minutes} min on {smp} CPUs: {reason}");
            for l in tail {
                println!("    | {l}");
            }
            Ok(1)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_and_deadline() {
        assert_eq!(bootargs(20), "checks=1 init=soak -- seconds=20");
        let t = soak_run("soak", 300, 4, Path::new("x.cpio"));
        assert_eq!(t.name, "soak-virt-gicv3-smp4");
        assert_eq!(t.timeout, Some(Duration::from_secs(300) + MARGIN));
        assert!(t.fail_on.iter().any(|f| f == test::CHECKS_FAILED));
    }

    #[test]
    fn figures_keep_the_totals_and_the_kernels_lines() {
        let c = "boot noise\nsoak: total: 5 s: 10 messages\nsoak: ok: x\n\
                 checks: 3 passes, 0 inconsistencies\nkernel: all tasks exited\n";
        assert_eq!(
            figures(c),
            [
                "soak: total: 5 s: 10 messages",
                "checks: 3 passes, 0 inconsistencies",
                "kernel: all tasks exited"
            ]
        );
    }
}
