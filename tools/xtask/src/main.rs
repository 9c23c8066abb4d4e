//! `cargo xtask`: the one entry point for building, booting, testing, linting and imaging
//! armach. This file holds the command line (clap) and hands each command to its module;
//! it does no work of its own beyond locating the workspace.
//!
//! - `run`   build the kernel, turn it into an `Image`, boot it under QEMU ([`qemu`]);
//!   with `--demo`, type the shell's tour into it ([`shell`])
//! - `test`  host tests, then the QEMU boot matrix ([`test`])
//! - `lint`  clippy for every crate on its own target, then rustfmt ([`lint`])
//! - `image` a Raspberry Pi 4 SD-card folder ([`image`])
//! - `trace` the scheduler trace of a workload as Chrome JSON and SVG ([`trace`])
//! - `fuzz`  rounds of the user-mode fuzzer, each a boot with a fresh seed ([`fuzz`])
//! - `soak`  the soak program for N minutes, lock order and self-checks on ([`soak`])
//! - `setup` check and install the prerequisites only ([`prereq`])
//! - `hostfuzz` coverage-guided fuzzing of the host-side input readers ([`hostfuzz`])

mod bench;
mod dtbpatch;
mod error;
mod foreign;
mod fuzz;
mod hostfuzz;
mod image;
mod kernel;
mod lint;
mod prereq;
mod proc;
mod profile;
mod qemu;
mod shell;
mod soak;
mod test;
mod trace;
mod userland;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

pub use error::{Error, Result};
use qemu::{Board, Gic};

/// The kernel's target: no FP/SIMD in the kernel.
pub const KERNEL_TARGET: &str = "aarch64-unknown-none-softfloat";
/// The target of user programs (libmach, tests, servers).
pub const USER_TARGET: &str = "aarch64-unknown-none";

#[derive(Parser)]
#[command(
    name = "cargo xtask",
    about = "Build, boot, test, lint and image armach"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Build the kernel and boot it under QEMU, exiting with the guest's status.
    Run(RunArgs),
    /// Run the host tests, then boot the kernel across the QEMU machine matrix (or, with
    /// machine options, the user-mode suite once on that machine).
    Test(TestArgs),
    /// Clippy (-D warnings) on every crate for its own target, then rustfmt --check.
    Lint,
    /// Measure kernel operations in guest instructions (QEMU -icount), and the host wall-clock.
    Bench(BenchArgs),
    /// Write a Raspberry Pi 4 SD-card folder (kernel8.img, config.txt, cmdline.txt, README).
    Image(ImageArgs),
    /// Boot the user-mode fuzzer round after round (a fresh seed each) for SECONDS, stopping
    /// at the first failure with its seed and operation counts.
    Fuzz(FuzzArgs),
    /// Boot the soak program (IPC, churn, migrations, set changes, memory together) for
    /// MINUTES with the lock-order check and the kernel's self-checks on; print its figures.
    Soak(SoakArgs),
    /// Check the prerequisites (Rust targets, QEMU, Pi 4 device tree), installing what is missing.
    Setup,
    /// Fuzz the readers of hostile input on the host (mig-rs, the generated kernel demuxes,
    /// the device-tree, ELF and cpio readers) with honggfuzz, installing it if missing.
    Hostfuzz(HostfuzzArgs),
    /// Boot the `tracew` workloads with the scheduler trace on; write the events as Chrome
    /// trace-event JSON (Perfetto, chrome://tracing) and optionally an SVG timeline.
    Trace(TraceArgs),
}

#[derive(Args)]
struct TraceArgs {
    #[command(flatten)]
    machine: MachineArgs,
    /// Deterministic instruction counting (-icount shift=0,align=off,sleep=off).
    #[arg(long)]
    icount: bool,
    /// The workload to trace (spread, pingpong); default both.
    #[arg(long, value_name = "NAME")]
    workload: Option<String>,
    /// Where to write the Chrome trace-event JSON.
    #[arg(long, value_name = "FILE")]
    out: PathBuf,
    /// Also draw an SVG per-CPU timeline into FILE.
    #[arg(long, value_name = "FILE")]
    svg: Option<PathBuf>,
    /// Kill QEMU after this many seconds.
    #[arg(long, default_value_t = 300)]
    timeout: u64,
    /// Convert this saved console log (say, target/trace.log) instead of booting.
    #[arg(long, value_name = "FILE")]
    log: Option<PathBuf>,
}

#[derive(Args)]
struct HostfuzzArgs {
    /// Only this target (repeat for several): mig_defs, kernel_demux, devtree, elf, cpio.
    #[arg(long, value_name = "NAME")]
    target: Vec<String>,
    /// How long to fuzz each target, one after the other.
    #[arg(long, default_value_t = 60, value_name = "N")]
    seconds: u64,
}

#[derive(Args)]
struct FuzzArgs {
    /// Go on with fresh seeds until this many seconds have passed (0: one round).
    #[arg(long, default_value_t = 0)]
    seconds: u64,
    /// The first round's seed (default: from the clock); with --seconds 0, replays it.
    #[arg(long)]
    seed: Option<u64>,
    /// Operations per fuzzing thread (each worker task runs two).
    #[arg(long)]
    ops: Option<u64>,
    /// Number of CPUs.
    #[arg(long, default_value_t = 4)]
    smp: u32,
    /// Machine to boot (default virt).
    #[arg(long, value_enum, default_value_t = Board::Virt)]
    board: Board,
}

#[derive(Args)]
struct SoakArgs {
    /// How long the program runs.
    #[arg(long, default_value_t = 5)]
    minutes: u64,
    /// Number of CPUs.
    #[arg(long, default_value_t = 4)]
    smp: u32,
}

#[derive(Args)]
struct BenchArgs {
    /// Also write the figures as JSON (`{"METRIC": {"value": N, "unit": U, "machine": M}}`,
    /// metric names of DESIGN.md 8) to FILE.
    #[arg(long, value_name = "FILE")]
    json: Option<std::path::PathBuf>,
    /// Instead of the figures: where one benchmark's instructions go, per function (kernel
    /// and program symbols), from a QEMU trace of every instruction (e.g. null-rpc-same-cpu).
    #[arg(long, value_name = "BENCHMARK")]
    profile: Option<String>,
    /// Iterations of the profiled benchmark.
    #[arg(long, default_value_t = 20, requires = "profile")]
    iterations: u64,
    /// Functions listed in the profile.
    #[arg(long, default_value_t = 40, requires = "profile")]
    top: usize,
    /// Boot the 8-CPU run with its CPUs in C clusters (-smp 8,clusters=C); C must divide 8.
    #[arg(long, value_name = "C", conflicts_with = "profile")]
    clusters: Option<u32>,
}

/// The machine options `run` and `test` share; unset ones take the board's default.
#[derive(Args, Clone, Debug, Default)]
struct MachineArgs {
    /// Machine to boot (default virt).
    #[arg(long, value_enum)]
    board: Option<Board>,
    /// Number of CPUs (virt: default 4; rpi4: exactly 4).
    #[arg(long)]
    smp: Option<u32>,
    /// GIC version (virt: default 3; rpi4: the GIC-400 is version 2).
    #[arg(long, value_parser = clap::value_parser!(u8).range(2..=3))]
    gic: Option<u8>,
    /// Enter the kernel at EL2 (virt: adds virtualization=on).
    #[arg(long)]
    el2: bool,
    /// CPU model, a 64-bit one (virt: default cortex-a72; rpi4 is always cortex-a72).
    #[arg(long)]
    cpu: Option<String>,
    /// RAM size (virt: default 512M; rpi4 is always 2G).
    #[arg(long)]
    mem: Option<String>,
    /// virt: split the CPUs into C clusters of equal size (-smp N,clusters=C, which QEMU
    /// describes in the device tree's cpu-map); C must divide N.
    #[arg(long, value_name = "C")]
    clusters: Option<u32>,
}

impl MachineArgs {
    /// Whether any machine option was given.
    fn given(&self) -> bool {
        self.board.is_some()
            || self.smp.is_some()
            || self.gic.is_some()
            || self.el2
            || self.cpu.is_some()
            || self.mem.is_some()
            || self.clusters.is_some()
    }

    fn board(&self) -> Board {
        self.board.unwrap_or(Board::Virt)
    }

    fn options(&self, icount: bool) -> qemu::MachineOptions {
        qemu::MachineOptions {
            smp: self.smp,
            gic: self.gic.map(|g| if g == 2 { Gic::V2 } else { Gic::V3 }),
            el2: self.el2,
            cpu: self.cpu.clone(),
            mem: self.mem.clone(),
            icount,
            clusters: self.clusters,
        }
    }
}

#[derive(Args)]
struct RunArgs {
    #[command(flatten)]
    machine: MachineArgs,
    /// Deterministic instruction counting (-icount shift=0,align=off,sleep=off).
    #[arg(long)]
    icount: bool,
    /// Extra kernel command line, after `exit=semihosting`.
    #[arg(long)]
    bootargs: Option<String>,
    /// Kill QEMU after this many seconds and exit with 124 (default: no limit).
    #[arg(long)]
    timeout: Option<u64>,
    /// Wait for gdb on :1234 before the first instruction (-s -S).
    #[arg(long)]
    gdb: bool,
    /// rpi4 only: boot the files of a folder made by `cargo xtask image` instead of building.
    #[arg(long, value_name = "DIR")]
    image: Option<PathBuf>,
    /// Boot the shell and type a scripted tour into it (burn, cpus, bind, migrate, a
    /// processor set, top), then halt: exits with the guest's status (0 when the tour
    /// reached its end). Needs at least 4 CPUs.
    #[arg(long, conflicts_with_all = ["image", "init", "gdb"])]
    demo: bool,
    #[command(flatten)]
    init: InitArgs,
}

/// A foreign first program (see `foreign.rs` and the README's start-up contract).
#[derive(Args, Clone, Debug, Default)]
struct InitArgs {
    /// Boot this static AArch64 ELF program (any toolchain) as the first task, alone,
    /// instead of the test programs; the run's status is the one it gives `host_reboot`.
    #[arg(long, value_name = "FILE")]
    init: Option<PathBuf>,
    /// Words the --init program gets as argv[3..] (after its name and the host-privileged
    /// and device port names).
    #[arg(long, value_name = "WORDS", requires = "init")]
    init_args: Option<String>,
}

impl InitArgs {
    fn prepare(&self) -> Result<Option<foreign::Foreign>> {
        self.init
            .as_deref()
            .map(|file| foreign::prepare(file, self.init_args.as_deref()))
            .transpose()
    }
}

#[derive(Args)]
struct TestArgs {
    /// Only the user-mode suite, once, on this machine (any machine option selects it).
    #[command(flatten)]
    machine: MachineArgs,
    /// Only tests whose name contains NAME (host tests and QEMU runs; repeat for several).
    #[arg(long, value_name = "NAME")]
    filter: Vec<String>,
    /// Print the names of the tests that would run (what --filter matches), run nothing.
    #[arg(long)]
    list: bool,
    /// Instead of the suite: one run of a foreign program on the machine options given
    /// (default virt), passing if it prints GNU Mach's success line and exits with 0.
    #[command(flatten)]
    init: InitArgs,
}

#[derive(Args)]
struct ImageArgs {
    /// Board to make the image for (only rpi4 boots from an SD card).
    #[arg(long, value_enum)]
    board: Board,
    /// Folder to write (created if missing).
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// Kernel command line for cmdline.txt (default `loglevel=info`).
    #[arg(long)]
    bootargs: Option<String>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run(args) => cmd_run(args),
        Command::Test(args) => args.init.prepare().and_then(|foreign| {
            test::run_all(&test::Plan {
                machine: (args.machine.given() || foreign.is_some())
                    .then(|| (args.machine.board(), args.machine.options(false))),
                filters: args.filter,
                list: args.list,
                foreign,
            })
        }),
        Command::Lint => lint::run(),
        Command::Bench(args) => match &args.profile {
            Some(name) => profile::run(name, args.iterations.max(1), args.top),
            None => bench::run(args.json.as_deref(), args.clusters),
        },
        Command::Image(args) => cmd_image(args),
        Command::Fuzz(args) => fuzz::run(&fuzz::Plan {
            seconds: args.seconds,
            seed: args.seed,
            ops: args.ops,
            smp: args.smp,
            board: args.board,
        }),
        Command::Soak(args) => soak::run(args.minutes, args.smp),
        Command::Setup => cmd_setup(),
        Command::Trace(args) => match &args.log {
            Some(log) => trace::convert_log(log, &args.out, args.svg.as_deref()),
            None => trace::run(
                &args.machine,
                args.workload.as_deref(),
                &args.out,
                args.svg.as_deref(),
                args.icount,
                args.timeout,
            ),
        },
        Command::Hostfuzz(args) => hostfuzz::run(&args.target, args.seconds),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(err) => {
            eprintln!("xtask: error: {err}");
            ExitCode::from(1)
        }
    }
}

/// The workspace root: this crate lives in `tools/xtask`.
pub fn workspace_root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest
        .parent()
        .and_then(Path::parent)
        .map_or_else(|| manifest.to_path_buf(), Path::to_path_buf)
}

/// The workspace's own `target/` directory, whatever `CARGO_TARGET_DIR` says.
pub fn target_dir() -> PathBuf {
    workspace_root().join("target")
}

/// `run --demo`'s deadline unless `--timeout` says otherwise.
const DEMO_TIMEOUT_SECS: u64 = 300;

fn cmd_run(args: RunArgs) -> Result<u8> {
    let machine = qemu::Machine::resolve(args.machine.board(), args.machine.options(args.icount))?;
    if args.demo && machine.smp < 4 {
        return Err(Error::new(format!(
            "--demo uses CPUs 0 to 3; this machine has {}",
            machine.smp
        )));
    }
    prereq::ensure_qemu()?;
    let dtb = match machine.board {
        Board::Rpi4 => Some(prereq::ensure_pi4_dtb(&prereq::dtb_cache_dir())?),
        Board::Virt => None,
    };
    let elf = kernel::elf_path();
    let (kernel_image, initrd, bootargs) = match &args.image {
        Some(dir) => {
            if machine.board != Board::Rpi4 {
                return Err(Error::new(
                    "--image boots an SD-card folder: use --board rpi4",
                ));
            }
            let files = image::read_image_dir(dir)?;
            let bootargs = args.bootargs.clone().unwrap_or(files.cmdline);
            (files.kernel, files.initrd, bootargs)
        }
        None => {
            prereq::ensure_rust_targets()?;
            let image = kernel::build()?;
            let mut extra = args.bootargs.clone().unwrap_or_default();
            if args.demo {
                extra = format!("{extra} {}", test::SHELL_BOOTARGS)
                    .trim()
                    .to_owned();
            }
            match args.init.prepare()? {
                Some(f) => (
                    image,
                    Some(f.initrd),
                    foreign::bootargs(&f.name, &extra, &f.args),
                ),
                None => (image, Some(kernel::initrd()?), extra),
            }
        }
    };
    let boot = qemu::Boot {
        kernel: kernel_image,
        initrd,
        dtb,
        bootargs,
        gdb: args.gdb,
    };
    let qemu_args = qemu::command_line(&machine, &boot);
    println!("xtask: {}", proc::shell_words(qemu::QEMU, &qemu_args));
    if args.gdb {
        println!(
            "xtask: QEMU waits for gdb; attach with:\n  gdb-multiarch {} -ex 'target remote :1234'",
            proc::shell_quote(&elf.display().to_string())
        );
    }
    // A demo without a person stops by itself at the latest after this.
    let timeout = args
        .timeout
        .or(args.demo.then_some(DEMO_TIMEOUT_SECS))
        .map(Duration::from_secs);
    let console = if args.demo {
        qemu::Console::Capture {
            log: target_dir().join("demo.log"),
            input: Some(shell::console_input(&shell::demo())),
            echo: true,
        }
    } else {
        qemu::Console::Terminal
    };
    let outcome = qemu::run(&qemu_args, timeout, console)?;
    if let Some(step) = &outcome.script_unfinished {
        eprintln!("\nxtask: the demo did not reach its end: {step}");
        return Ok(outcome.exit_code().max(1));
    }
    if outcome.timed_out {
        eprintln!(
            "xtask: QEMU timed out after {} s and was stopped",
            timeout.map_or(0, |t| t.as_secs())
        );
    } else if outcome.status != 0 {
        eprintln!(
            "xtask: guest exited with status {} ({})",
            outcome.status,
            qemu::describe_status(outcome.status)
        );
    }
    Ok(outcome.exit_code())
}

fn cmd_image(args: ImageArgs) -> Result<u8> {
    if args.board != Board::Rpi4 {
        return Err(Error::new("only --board rpi4 boots from an SD-card folder"));
    }
    prereq::ensure_rust_targets()?;
    let image = kernel::build()?;
    let bootargs = args
        .bootargs
        .unwrap_or_else(|| image::DEFAULT_CMDLINE.to_owned());
    let initrd = kernel::initrd()?;
    image::write_image_dir(&args.out, &image, Some(&initrd), &bootargs)?;
    println!(
        "xtask: wrote {} (see README.txt there for the firmware files and serial console)",
        args.out.display()
    );
    Ok(0)
}

fn cmd_setup() -> Result<u8> {
    prereq::ensure_rust_targets()?;
    prereq::ensure_qemu()?;
    let dtb = prereq::ensure_pi4_dtb(&prereq::dtb_cache_dir())?;
    println!(
        "xtask: prerequisites present (Pi 4 device tree: {})",
        dtb.display()
    );
    Ok(0)
}
