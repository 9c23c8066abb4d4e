//! `cargo xtask fuzz`: longer runs of the user-mode fuzzer (`tests/src/bin/fuzz.rs`) than the
//! short one `cargo xtask test` makes. Each round boots the kernel (with its lock-order check)
//! with its self-checks on and `init=fuzz -- seed=S ops=K`, under a deadline, and is judged as
//! a test run is: the success line, no failure line (nor `checks: FAILED`), no panic, the leak
//! check. The operations of the rounds that passed are summed for the last line. Rounds go on with a fresh seed
//! until the given seconds have passed; a failed round prints its seed and the operation
//! counts the console shows, with the command that replays it (`--seed S --ops K`), and the
//! console's tail. Not a coverage-guided fuzzer: the program draws its own operations.

use std::time::{Duration, Instant};

use crate::qemu::{Board, Gic, MachineOptions};
use crate::test::{self, QemuTest};
use crate::{Result, kernel, prereq};

/// Operations per fuzzing thread in a round, unless `--ops` says otherwise.
pub const DEFAULT_OPS: u64 = 1000;
/// How long the harness waits for its workers' reports (guest seconds) before it calls a
/// worker hung and says what it was doing; well within the round's deadline.
const HARNESS_DEADLINE_SECS: u64 = 180;
/// A round's deadline.
const ROUND_TIMEOUT: Duration = Duration::from_secs(240);

/// What `cargo xtask fuzz` was asked.
#[derive(Clone, Debug)]
pub struct Plan {
    pub seconds: u64,
    pub seed: Option<u64>,
    pub ops: Option<u64>,
    pub smp: u32,
    pub board: Board,
}

/// The run of one round: its name, machine and words.
pub fn round(plan: &Plan, seed: u64, ops: u64, initrd: &std::path::Path) -> QemuTest {
    let options = MachineOptions {
        smp: Some(plan.smp),
        gic: Some(if plan.board == Board::Rpi4 {
            Gic::V2
        } else {
            Gic::V3
        }),
        ..MachineOptions::default()
    };
    let boot = test::boot_run(plan.board, options);
    QemuTest {
        name: format!("fuzz-seed{seed}-{}", boot.name),
        bootargs: bootargs(seed, ops),
        initrd: Some(initrd.to_path_buf()),
        expect: Vec::new(),
        expect_text: Vec::new(),
        expect_counts: vec![(test::USER_PASS_MARKER.to_owned(), 1)],
        fail_on: vec![
            test::USER_FAIL_MARKER.to_owned(),
            test::CHECKS_FAILED.to_owned(),
        ],
        timeout: Some(ROUND_TIMEOUT),
        ..boot
    }
}

/// The kernel command line of a round.
pub fn bootargs(seed: u64, ops: u64) -> String {
    format!("checks=1 init=fuzz -- seed={seed} ops={ops} deadline={HARNESS_DEADLINE_SECS}")
}

/// The operation count of a round's `fuzz: total: seed S: N ops: ...` line.
pub fn total_ops(summary: &str) -> Option<u64> {
    let rest = summary.split("fuzz: total: seed ").nth(1)?;
    let (_, rest) = rest.split_once(": ")?;
    rest.split_once(" ops")?.0.trim().parse().ok()
}

/// The self-checks' tally of a round (`checks: N passes ..., M inconsistencies`), if printed.
fn checks_line(console: &str) -> Option<&str> {
    console
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with("checks: ") && l.contains("passes"))
}

/// The seed of round `n` after `first`: a splitmix step, so rounds do not overlap streams.
pub fn next_seed(first: u64, n: u64) -> u64 {
    if n == 0 {
        return first;
    }
    let mut z = first.wrapping_add(n.wrapping_mul(0x9e37_79b9_7f4a_7c15));
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    (z ^ (z >> 31)) % 1_000_000_000
}

/// The operation counts a console shows: each fuzzing thread's last progress line and every
/// unexpected answer (with its op number).
pub fn op_lines(console: &str) -> Vec<String> {
    let mut last: Vec<(String, String)> = Vec::new();
    let mut out = Vec::new();
    for line in console.lines() {
        if let Some((who, _)) = line
            .split("fuzz: worker ")
            .nth(1)
            .and_then(|rest| rest.split_once(':'))
        {
            last.retain(|(w, _)| w != who);
            last.push((who.to_owned(), line.trim().to_owned()));
        }
        if line.contains("fuzz: UNEXPECTED") || line.contains("fuzz: total: ") {
            out.push(line.trim().to_owned());
        }
    }
    out.extend(last.into_iter().map(|(_, l)| l));
    out
}

pub fn run(plan: &Plan) -> Result<u8> {
    prereq::ensure_rust_targets()?;
    prereq::ensure_qemu()?;
    let image = kernel::build_with(&["lockcheck"])?;
    let initrd = kernel::initrd()?;
    let pi4 = if plan.board == Board::Rpi4 {
        prereq::ensure_pi4_dtb(&prereq::dtb_cache_dir()).map_err(|e| e.to_string())
    } else {
        Err(String::new())
    };
    let first = plan.seed.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_secs() % 1_000_000)
    });
    let ops = plan.ops.unwrap_or(DEFAULT_OPS);
    let start = Instant::now();
    let mut rounds = 0u64;
    let mut total = 0u64;
    let mut seeds = Vec::new();
    loop {
        let seed = next_seed(first, rounds);
        let t = round(plan, seed, ops, &initrd);
        rounds += 1;
        match test::run_one_console(&t, &image, &pi4, ROUND_TIMEOUT) {
            Ok((secs, console)) => {
                let summary = op_lines(&console)
                    .into_iter()
                    .find(|l| l.contains("fuzz: total: "))
                    .unwrap_or_default();
                total += total_ops(&summary).unwrap_or(0);
                seeds.push(seed);
                println!("PASS round {rounds} seed {seed} ({secs:.1}s): {summary}");
                if let Some(l) = checks_line(&console) {
                    println!("    {l}");
                }
            }
            Err((reason, console, tail)) => {
                println!("FAIL round {rounds} seed {seed}: {reason}");
                println!(
                    "    before it: {} rounds passed, {total} operations",
                    rounds - 1
                );
                for l in op_lines(&console) {
                    println!("    ops: {l}");
                }
                println!(
                    "    replay: cargo xtask fuzz --seed {seed} --ops {ops} --smp {}{}",
                    plan.smp,
                    if plan.board == Board::Rpi4 {
                        " --board rpi4"
                    } else {
                        ""
                    }
                );
                for l in tail {
                    println!("    | {l}");
                }
                return Ok(1);
            }
        }
        if plan.seed.is_some() && plan.seconds == 0 {
            break;
        }
        if start.elapsed().as_secs() >= plan.seconds {
            break;
        }
    }
    let list: Vec<String> = seeds.iter().map(u64::to_string).collect();
    println!("fuzz: seeds {}", list.join(" "));
    println!(
        "fuzz: {rounds} rounds in {:.0} s, {total} operations, first seed {first}, all passed",
        start.elapsed().as_secs_f64()
    );
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeds_and_words() {
        assert_eq!(next_seed(7, 0), 7);
        assert_ne!(next_seed(7, 1), next_seed(7, 2));
        assert_eq!(
            bootargs(5, 10),
            "checks=1 init=fuzz -- seed=5 ops=10 deadline=180"
        );
    }

    #[test]
    fn total_ops_reads_the_summary() {
        let l = "fuzz: total: seed 42: 8000 ops: 2400 traps, 2000 mach_msg";
        assert_eq!(total_ops(l), Some(8000));
        assert_eq!(total_ops("fuzz: worker 0.1: 100 ops"), None);
        assert_eq!(total_ops(""), None);
    }

    #[test]
    fn op_lines_keep_each_threads_last_count() {
        let c = "fuzz: worker 0.1: 500 ops\nfuzz: worker 0.1: 1000 ops\n\
                 fuzz: UNEXPECTED worker 1.0 op 7: trap returned 0x5, not a Mach code\n\
                 fuzz: worker 1.0: 500 ops\n";
        assert_eq!(
            op_lines(c),
            [
                "fuzz: UNEXPECTED worker 1.0 op 7: trap returned 0x5, not a Mach code",
                "fuzz: worker 0.1: 1000 ops",
                "fuzz: worker 1.0: 500 ops"
            ]
        );
    }
}
