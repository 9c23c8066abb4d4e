//! `cargo xtask bench`: the cost of common kernel operations in guest instructions. Boots the
//! `bench` program (tests/src/bin/bench.rs) on one CPU under `-icount shift=0`, where the
//! virtual counter advances one nanosecond per instruction, so the figures are instruction
//! counts and repeat to the unit; then boots it again without `-icount` for the host
//! wall-clock time of the whole run (MTTCG, the default mode), reported separately.

use std::time::Duration;

use crate::qemu::{self, Board, Boot, Console, Machine, MachineOptions};
use crate::{Error, Result, kernel, prereq, target_dir};

/// The program that measures, and the line prefix of its figures.
pub const PROGRAM: &str = "bench";
const PREFIX: &str = "bench: ";

/// The figures a run printed: (name, rest of the line).
pub fn figures(console: &str) -> Vec<(String, String)> {
    console
        .lines()
        .filter_map(|line| line.trim_end().split_once(PREFIX).map(|(_, rest)| rest))
        .map(|rest| rest.split_once(": ").unwrap_or((rest, "")))
        .map(|(name, value)| (name.to_owned(), value.to_owned()))
        .collect()
}

fn boot_bench(
    icount: bool,
    initrd: &std::path::Path,
    image: &std::path::Path,
) -> Result<qemu::Outcome> {
    let machine = Machine::resolve(
        Board::Virt,
        MachineOptions {
            smp: Some(1),
            icount,
            ..MachineOptions::default()
        },
    )?;
    let boot = Boot {
        kernel: image.to_path_buf(),
        initrd: Some(initrd.to_path_buf()),
        dtb: None,
        bootargs: format!("init={PROGRAM} loglevel=warn"),
        gdb: false,
    };
    let args = qemu::command_line(&machine, &boot);
    let log = target_dir().join("test-logs").join(format!(
        "bench{}.log",
        if icount { "-icount" } else { "-wallclock" }
    ));
    println!("xtask: {}", crate::proc::shell_words(qemu::QEMU, &args));
    let outcome = qemu::run(
        &args,
        Some(Duration::from_secs(300)),
        Console::Capture { log },
    )?;
    if outcome.status != 0 {
        return Err(Error::new(format!(
            "the bench run ended with status {} ({})",
            outcome.status,
            qemu::describe_status(outcome.status)
        )));
    }
    Ok(outcome)
}

pub fn run() -> Result<u8> {
    prereq::ensure_rust_targets()?;
    prereq::ensure_qemu()?;
    let image = kernel::build()?;
    let initrd = kernel::initrd()?;
    let counted = boot_bench(true, &initrd, &image)?;
    let figures = figures(&counted.console);
    if !figures.iter().any(|(name, _)| name == "done") {
        return Err(Error::new(
            "the bench program did not finish (see target/test-logs/bench-icount.log)",
        ));
    }
    println!("\nGuest instructions (QEMU -icount shift=0, virt, 1 CPU; deterministic):");
    for (name, value) in figures.iter().filter(|(name, _)| name != "done") {
        println!("  {name:<24} {value}");
    }
    let timed = boot_bench(false, &initrd, &image)?;
    println!(
        "\nHost wall-clock of the whole boot-and-bench run without -icount (MTTCG): {:.2} s",
        timed.elapsed.as_secs_f64()
    );
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_figures_from_the_console() {
        let console = "[ 0.1] cpu0 INFO x\r\nbench: null-trap: 182 instructions per mach_task_self (20000 iterations)\nbench: done\n";
        let f = figures(console);
        assert_eq!(f.len(), 2);
        assert_eq!(f[0].0, "null-trap");
        assert!(f[0].1.starts_with("182 instructions"));
        assert_eq!(f[1].0, "done");
    }
}
