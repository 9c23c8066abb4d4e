//! `cargo xtask bench`: the cost of common kernel operations in guest instructions. Boots the
//! `bench` program (tests/src/bin/bench.rs) on one CPU under `-icount shift=0`, where the
//! virtual counter advances one nanosecond per instruction, so the figures are instruction
//! counts and repeat to the unit; then on 2 and 8 CPUs, where the program measures the
//! wake-up path (two threads waking each other), to show that a wake-up does not cost more
//! with more CPUs, and on 2 CPUs, started with `benchsrv` (`init=bench,benchsrv`), the null
//! RPC to a task on the other CPU (`null_rpc_cross_cpu`); then boots it again without `-icount` for the host wall-clock time of the
//! whole run (MTTCG, the default mode), reported separately. Then `bench balance` on 4 and 8
//! CPUs under `-icount`: thread migration and load balancing (ticks to spread 16 threads,
//! a balance pass, migrations once balanced, utilization, wake-ups on the last processor,
//! a `thread_migrate` round trip). `--json FILE` writes the figures under DESIGN.md 8's
//! metric names; a figure the program could not measure (`n/a`) is left out, never 0.
//! `--clusters C` boots the 8-CPU runs as `-smp 8,clusters=C` (their figures are then
//! labelled `virt-smp8-clustersC`).

use std::time::Duration;

use crate::qemu::{self, Board, Boot, Console, Machine, MachineOptions};
use crate::{Error, Result, kernel, prereq, target_dir};

/// The program that measures, and the line prefix of its figures.
pub const PROGRAM: &str = "bench";
/// The server task of its cross-CPU null RPC, started with it on 2 CPUs.
pub const SERVER: &str = "benchsrv";
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

/// The `init=` list of a bench run on `smp` CPUs: on 2, the server of the cross-CPU null
/// RPC too.
fn init_list(smp: u32) -> String {
    if smp == 2 {
        format!("{PROGRAM},{SERVER}")
    } else {
        PROGRAM.to_owned()
    }
}

/// The machine a figure was measured on, as the JSON and the log names give it.
fn machine_label(smp: u32, clusters: Option<u32>) -> String {
    match clusters {
        Some(clusters) => format!("virt-smp{smp}-clusters{clusters}"),
        None => format!("virt-smp{smp}"),
    }
}

fn boot_bench(
    icount: bool,
    smp: u32,
    clusters: Option<u32>,
    mode: Option<&str>,
    initrd: &std::path::Path,
    image: &std::path::Path,
) -> Result<qemu::Outcome> {
    let machine = Machine::resolve(
        Board::Virt,
        MachineOptions {
            smp: Some(smp),
            // GICv2 takes up to 8 CPUs; the figures do not depend on the GIC.
            gic: Some(qemu::Gic::V2),
            icount,
            clusters,
            ..MachineOptions::default()
        },
    )?;
    let boot = Boot {
        kernel: image.to_path_buf(),
        initrd: Some(initrd.to_path_buf()),
        dtb: None,
        bootargs: match mode {
            Some(mode) => format!("init={PROGRAM} loglevel=warn -- {mode}"),
            None => format!("init={} loglevel=warn", init_list(smp)),
        },
        gdb: false,
    };
    let args = qemu::command_line(&machine, &boot);
    let log = target_dir().join("test-logs").join(format!(
        "bench{}{}-{}.log",
        mode.map(|m| format!("-{m}")).unwrap_or_default(),
        if icount { "-icount" } else { "-wallclock" },
        machine_label(smp, clusters).trim_start_matches("virt-")
    ));
    println!("xtask: {}", crate::proc::shell_words(qemu::QEMU, &args));
    let outcome = qemu::run(
        &args,
        Some(Duration::from_secs(300)),
        Console::Capture {
            log,
            input: None,
            echo: false,
        },
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

/// The leading number of a figure's text (`"182 instructions per ..."`, `"97.5 percent"`);
/// `None` for `n/a`.
fn leading_number(text: &str) -> Option<f64> {
    text.split_whitespace().next()?.parse().ok()
}

/// DESIGN.md 8's name and unit for a figure of `bench balance` on `smp` CPUs, where one is
/// defined (the per-run figures come from the 4-CPU run only).
fn balance_metric(figure: &str, smp: u32) -> Option<(String, &'static str)> {
    let m = |name: &str, unit| Some((name.to_owned(), unit));
    match (figure, smp) {
        ("balance-ticks-16", 4 | 8) => m(&format!("balance_ticks_16_on_{smp}"), "ticks"),
        ("thread-migrate", 4) => m("thread_migrate", "instructions"),
        ("balance-pass", 4) => m("balance_pass", "instructions"),
        ("steady-migrations", 4) => m("steady_migrations_per_s", "migrations per second"),
        ("utilization-16", 4) => m("utilization_16_on_4", "percent"),
        ("wake-on-last", 4) => m("wake_on_last_processor", "percent"),
        _ => None,
    }
}

/// DESIGN.md 8's name for a figure of the bench program, where one is defined.
fn metric_name(figure: &str) -> Option<&'static str> {
    match figure {
        "null-trap" => Some("null_trap"),
        "context-switch" => Some("context_switch"),
        "page-fault" => Some("page_fault"),
        "null-rpc-same-cpu" => Some("null_rpc_same_cpu"),
        "null-rpc-cross-cpu" => Some("null_rpc_cross_cpu"),
        "processor-info-rpc" => Some("processor_info_rpc"),
        "thread-info-rpc" => Some("thread_info_rpc"),
        _ => None,
    }
}

/// One JSON object of metrics: name -> (value, unit, machine). Names and units are ours
/// (no quoting needed); machines are plain words.
fn to_json(metrics: &[(String, f64, &str, String)]) -> String {
    let body: Vec<String> = metrics
        .iter()
        .map(|(name, value, unit, machine)| {
            format!("  \"{name}\": {{\"value\": {value}, \"unit\": \"{unit}\", \"machine\": \"{machine}\"}}")
        })
        .collect();
    format!("{{\n{}\n}}\n", body.join(",\n"))
}

pub fn run(json: Option<&std::path::Path>, clusters: Option<u32>) -> Result<u8> {
    // Refuse a split of the 8 CPUs that cannot be before building anything.
    let eight_cpus = |smp: u32| if smp == 8 { clusters } else { None };
    Machine::resolve(
        Board::Virt,
        MachineOptions {
            smp: Some(8),
            gic: Some(qemu::Gic::V2),
            clusters,
            ..MachineOptions::default()
        },
    )?;
    prereq::ensure_rust_targets()?;
    prereq::ensure_qemu()?;
    let image = kernel::build()?;
    let initrd = kernel::initrd()?;
    let counted = boot_bench(true, 1, None, None, &initrd, &image)?;
    let first = figures(&counted.console);
    if !first.iter().any(|(name, _)| name == "done") {
        return Err(Error::new(
            "the bench program did not finish (see target/test-logs/bench-icount-smp1.log)",
        ));
    }
    let mut metrics = Vec::new();
    println!("\nGuest instructions (QEMU -icount shift=0, virt, 1 CPU; deterministic):");
    for (name, value) in first.iter().filter(|(name, _)| name != "done") {
        println!("  {name:<24} {value}");
        if let (Some(metric), Some(n)) = (metric_name(name), leading_number(value)) {
            metrics.push((metric.to_owned(), n, "instructions", "virt-smp1".to_owned()));
        }
    }
    println!(
        "\nThe wake-up path on more CPUs (same program, only its wake-up figure), and on 2 CPUs the null RPC to a task on the other CPU:"
    );
    for smp in [2, 8] {
        let label = machine_label(smp, eight_cpus(smp));
        let run = boot_bench(true, smp, eight_cpus(smp), None, &initrd, &image)?;
        let wake = figures(&run.console);
        for (name, value) in wake.iter().filter(|(name, _)| name.starts_with("null-rpc")) {
            println!("  {:<24} {value}", format!("{name} ({label})"));
            if let (Some(metric), Some(n)) = (metric_name(name), leading_number(value)) {
                metrics.push((metric.to_owned(), n, "instructions", label.clone()));
            }
        }
        let Some((name, value)) = wake.iter().find(|(name, _)| name.starts_with("wakeup")) else {
            return Err(Error::new(format!(
                "the bench program printed no wake-up figure on {label} (see target/test-logs/bench-icount-{}.log)",
                label.trim_start_matches("virt-")
            )));
        };
        println!("  {:<24} {value}", format!("{name} ({label})"));
        if let Some(n) = leading_number(value) {
            metrics.push((
                format!("wakeup_round_trip_{smp}_cpus"),
                n,
                "instructions",
                label.clone(),
            ));
        }
    }
    println!("\nMigration and load balancing (bench balance, -icount; ticks of the 100 Hz timer):");
    for smp in [4, 8] {
        let label = machine_label(smp, eight_cpus(smp));
        let run = boot_bench(true, smp, eight_cpus(smp), Some("balance"), &initrd, &image)?;
        for (name, value) in figures(&run.console).iter().filter(|(n, _)| n != "done") {
            println!("  {:<24} {value}", format!("{name} ({label})"));
            if let (Some((metric, unit)), Some(v)) =
                (balance_metric(name, smp), leading_number(value))
            {
                metrics.push((metric, v, unit, label.clone()));
            }
        }
    }
    let timed = boot_bench(false, 1, None, None, &initrd, &image)?;
    println!(
        "\nHost wall-clock of the whole boot-and-bench run without -icount (MTTCG): {:.2} s",
        timed.elapsed.as_secs_f64()
    );
    if let Some(path) = json {
        std::fs::write(path, to_json(&metrics))
            .map_err(|e| Error::io(format_args!("writing {}", path.display()), e))?;
        println!(
            "xtask: wrote {} metrics to {}",
            metrics.len(),
            path.display()
        );
    }
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

    #[test]
    fn metrics_and_json() {
        assert_eq!(metric_name("null-trap"), Some("null_trap"));
        assert_eq!(metric_name("thread-info-rpc"), Some("thread_info_rpc"));
        assert_eq!(metric_name("yield-alone"), None);
        assert_eq!(
            metric_name("null-rpc-cross-cpu"),
            Some("null_rpc_cross_cpu")
        );
        assert_eq!(
            metric_name("processor-info-rpc"),
            Some("processor_info_rpc")
        );
        assert_eq!(init_list(2), "bench,benchsrv");
        assert_eq!(init_list(8), "bench");
        assert_eq!(leading_number("182 instructions per x"), Some(182.0));
        assert_eq!(leading_number("97.5 percent busy"), Some(97.5));
        assert_eq!(machine_label(8, None), "virt-smp8");
        assert_eq!(machine_label(8, Some(2)), "virt-smp8-clusters2");
        assert_eq!(leading_number("n/a"), None);
        let json = to_json(&[
            (
                "null_trap".into(),
                162.0,
                "instructions",
                "virt-smp1".into(),
            ),
            (
                "utilization_16_on_4".into(),
                97.5,
                "percent",
                "virt-smp4".into(),
            ),
        ]);
        assert_eq!(
            json,
            "{\n  \"null_trap\": {\"value\": 162, \"unit\": \"instructions\", \"machine\": \"virt-smp1\"},\n  \"utilization_16_on_4\": {\"value\": 97.5, \"unit\": \"percent\", \"machine\": \"virt-smp4\"}\n}\n"
        );
        assert_eq!(
            balance_metric("balance-ticks-16", 8),
            Some(("balance_ticks_16_on_8".to_owned(), "ticks"))
        );
        assert_eq!(
            balance_metric("utilization-16", 4),
            Some(("utilization_16_on_4".to_owned(), "percent"))
        );
        assert_eq!(balance_metric("utilization-16", 8), None);
        assert_eq!(balance_metric("done", 4), None);
    }
}
