//! QEMU: which machines we boot, the exact command line for each, and running it with a
//! deadline while the console streams to the terminal or into a log. Pure command-line
//! construction is separate from running so the tests can check it; deciding whether a run
//! passed belongs to [`crate::test`].

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::{Error, Result};

/// The QEMU binary.
pub const QEMU: &str = "qemu-system-aarch64";
/// Exit status reported when QEMU is stopped at its deadline (as timeout(1) does).
pub const STATUS_TIMEOUT: i32 = 124;
/// The Pi 4 device tree's file name.
pub const PI4_DTB: &str = "bcm2711-rpi-4-b.dtb";

/// A board the kernel boots on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Board {
    /// QEMU's `virt` machine.
    Virt,
    /// Raspberry Pi 4 Model B (QEMU `raspi4b`).
    Rpi4,
}

/// The interrupt controller's architecture version.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Gic {
    /// GICv2 (the Pi 4's GIC-400; `virt` up to 8 CPUs).
    V2,
    /// GICv3 (`virt` up to 512 CPUs).
    V3,
}

/// What a user asked for; unset fields take the board's default.
#[derive(Clone, Debug, Default)]
pub struct MachineOptions {
    pub smp: Option<u32>,
    pub gic: Option<Gic>,
    pub el2: bool,
    pub cpu: Option<String>,
    pub mem: Option<String>,
    pub icount: bool,
    /// virt: split the CPUs into this many clusters (`-smp N,clusters=C`), which QEMU
    /// describes in the device tree's `/cpus/cpu-map`.
    pub clusters: Option<u32>,
}

/// A fully decided machine.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Machine {
    pub board: Board,
    pub smp: u32,
    pub gic: Gic,
    pub el2: bool,
    pub cpu: String,
    pub mem: String,
    pub icount: bool,
    /// virt: `clusters=` of `-smp` (a divisor of `smp`); `None`: QEMU's default, one.
    pub clusters: Option<u32>,
}

/// CPU models of QEMU's `virt` that implement AArch64 (what `-cpu help` lists, less the
/// 32-bit-only cores such as `cortex-a7`, `cortex-a15` and the `arm*`, `cortex-m*`,
/// `cortex-r*` families, on which an AArch64 kernel never starts). `host` needs KVM on an
/// arm64 host.
pub const AARCH64_CPUS: &[&str] = &[
    "cortex-a35",
    "cortex-a53",
    "cortex-a55",
    "cortex-a57",
    "cortex-a72",
    "cortex-a76",
    "cortex-a710",
    "neoverse-n1",
    "neoverse-n2",
    "neoverse-v1",
    "a64fx",
    "max",
    "host",
];

/// Refuses a CPU model that cannot run an AArch64 kernel, saying which can.
pub fn check_cpu(cpu: &str) -> Result<()> {
    if AARCH64_CPUS.contains(&cpu) {
        return Ok(());
    }
    Err(Error::new(format!(
        "--cpu {cpu}: not a 64-bit (AArch64) CPU model, so it cannot run the armach kernel \
         (QEMU would start it and it would never print anything); use one of: {}",
        AARCH64_CPUS.join(", ")
    )))
}

/// The Pi 4's fixed facts, as QEMU's `raspi4b` models them.
const RPI4_CPUS: u32 = 4;
/// virt's CPU unless `--cpu` says otherwise.
pub const DEFAULT_CPU: &str = "cortex-a72";
/// virt's RAM unless `--mem` says otherwise.
pub const DEFAULT_MEM: &str = "512M";
const RPI4_CPU: &str = "cortex-a72";
const RPI4_MEM: &str = "2G";

impl Machine {
    /// Applies the board's defaults and refuses what the board cannot do.
    pub fn resolve(board: Board, opts: MachineOptions) -> Result<Self> {
        match board {
            Board::Virt => {
                let gic = opts.gic.unwrap_or(Gic::V3);
                let smp = opts.smp.unwrap_or(4);
                let max = if gic == Gic::V2 { 8 } else { 512 };
                if smp == 0 || smp > max {
                    return Err(Error::new(format!(
                        "virt with {gic:?} takes 1 to {max} CPUs, not {smp}"
                    )));
                }
                if let Some(clusters) = opts.clusters
                    && (clusters == 0 || !smp.is_multiple_of(clusters))
                {
                    return Err(Error::new(format!(
                        "--clusters {clusters} does not divide the {smp} CPUs into equal clusters"
                    )));
                }
                let cpu = opts.cpu.unwrap_or_else(|| DEFAULT_CPU.to_owned());
                check_cpu(&cpu)?;
                Ok(Self {
                    board,
                    smp,
                    gic,
                    el2: opts.el2,
                    cpu,
                    mem: opts.mem.unwrap_or_else(|| DEFAULT_MEM.to_owned()),
                    icount: opts.icount,
                    clusters: opts.clusters,
                })
            }
            Board::Rpi4 => {
                if let Some(smp) = opts.smp.filter(|&n| n != RPI4_CPUS) {
                    return Err(Error::new(format!(
                        "raspi4b has exactly {RPI4_CPUS} CPUs, not {smp}"
                    )));
                }
                if opts.gic == Some(Gic::V3) {
                    return Err(Error::new(
                        "the Pi 4's interrupt controller is a GIC-400 (GICv2)",
                    ));
                }
                if opts.el2 {
                    return Err(Error::new(
                        "raspi4b always enters at EL2; --el2 is for virt",
                    ));
                }
                if opts.clusters.is_some() {
                    return Err(Error::new(
                        "raspi4b's four CPUs are one cluster; --clusters is for virt",
                    ));
                }
                if let Some(cpu) = opts.cpu.filter(|c| c != RPI4_CPU) {
                    check_cpu(&cpu)?;
                    return Err(Error::new(format!(
                        "raspi4b's CPU is a {RPI4_CPU}, not {cpu}"
                    )));
                }
                if let Some(mem) = opts.mem.filter(|m| m != RPI4_MEM && m != "2048M") {
                    return Err(Error::new(format!(
                        "raspi4b has {RPI4_MEM} of RAM, not {mem}"
                    )));
                }
                Ok(Self {
                    board,
                    smp: RPI4_CPUS,
                    gic: Gic::V2,
                    el2: true,
                    cpu: RPI4_CPU.to_owned(),
                    mem: RPI4_MEM.to_owned(),
                    icount: opts.icount,
                    clusters: None,
                })
            }
        }
    }
}

/// What to boot on the machine.
#[derive(Clone, Debug)]
pub struct Boot {
    /// The flat arm64 `Image`.
    pub kernel: PathBuf,
    pub initrd: Option<PathBuf>,
    /// Device tree (rpi4; `virt` makes its own).
    pub dtb: Option<PathBuf>,
    /// Command line after `exit=semihosting`.
    pub bootargs: String,
    /// Wait for gdb on :1234 (`-s -S`).
    pub gdb: bool,
}

/// The exact QEMU arguments (without the program name).
pub fn command_line(machine: &Machine, boot: &Boot) -> Vec<String> {
    let mut args: Vec<String> = Vec::new();
    let mut push = |words: &[&str]| args.extend(words.iter().map(|w| (*w).to_owned()));
    match machine.board {
        Board::Virt => {
            let mut m = format!(
                "virt,gic-version={}",
                if machine.gic == Gic::V2 { 2 } else { 3 }
            );
            if machine.el2 {
                m.push_str(",virtualization=on");
            }
            if machine.icount {
                m.push_str(",dtb-randomness=off");
            }
            let smp = match machine.clusters {
                Some(clusters) => format!("{},clusters={clusters}", machine.smp),
                None => machine.smp.to_string(),
            };
            push(&[
                "-M",
                &m,
                "-cpu",
                &machine.cpu,
                "-smp",
                &smp,
                "-m",
                &machine.mem,
                "-nographic",
                // No network: the kernel has no driver for one, and virt's default
                // virtio NIC needs a boot ROM that a QEMU installed without
                // recommended packages does not have.
                "-nic",
                "none",
            ]);
            if let Some(dtb) = &boot.dtb {
                push(&["-dtb", &dtb.display().to_string()]);
            }
        }
        Board::Rpi4 => {
            // The tree's console (serial1) is the mini UART: QEMU's second serial port.
            push(&[
                "-M",
                "raspi4b",
                "-display",
                "none",
                "-serial",
                "null",
                "-serial",
                "mon:stdio",
            ]);
            if let Some(dtb) = &boot.dtb {
                push(&["-dtb", &dtb.display().to_string()]);
            }
        }
    }
    if machine.icount {
        push(&["-icount", "shift=0,align=off,sleep=off"]);
    }
    push(&["-semihosting-config", "enable=on,target=native"]);
    push(&["-kernel", &boot.kernel.display().to_string()]);
    if let Some(initrd) = &boot.initrd {
        push(&["-initrd", &initrd.display().to_string()]);
    }
    let append = match boot.bootargs.trim() {
        "" => "exit=semihosting".to_owned(),
        extra => format!("exit=semihosting {extra}"),
    };
    push(&["-append", &append]);
    if boot.gdb {
        push(&["-s", "-S"]);
    }
    args
}

/// A few words for a guest exit status.
pub fn describe_status(status: i32) -> &'static str {
    match status {
        0 => "success",
        1 => "QEMU error",
        2 => "kernel panic or unexpected exception",
        3 => "a CPU failed to start",
        4 => "a test failed",
        STATUS_TIMEOUT => "timed out",
        _ => "unknown status",
    }
}

/// Where the guest console goes.
pub enum Console {
    /// Straight to this terminal, keyboard included (`cargo xtask run`).
    Terminal,
    /// Captured and also written to this log file (and, with `echo`, to this terminal);
    /// stdin is null, or a pipe that types `input`'s steps into the guest's console.
    Capture {
        log: PathBuf,
        input: Option<ConsoleInput>,
        echo: bool,
    },
}

/// One step of typing into the guest's serial console, expect style: wait until
/// `wait_for` appears on the console (after the text the previous step matched), at most
/// `within` (the run's own deadline otherwise), then type `then_type` (possibly nothing).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Step {
    pub wait_for: String,
    pub then_type: Vec<u8>,
    pub within: Option<Duration>,
}

/// Keys typed into the guest's serial console during a captured run: steps in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConsoleInput {
    pub steps: Vec<Step>,
}

impl ConsoleInput {
    /// Types `bytes` once the console shows `after` (the guest says it is ready to read).
    pub fn once(after: &str, bytes: &[u8]) -> Self {
        Self {
            steps: vec![Step {
                wait_for: after.to_owned(),
                then_type: bytes.to_vec(),
                within: None,
            }],
        }
    }
}

/// Where a console script is: the next step, where its text is looked for from, and since
/// when it waits.
struct Script {
    steps: Vec<Step>,
    next: usize,
    search_from: usize,
    since: Instant,
}

impl Script {
    /// Acts on the console text so far: types what matched steps say. `Err` with a
    /// description when the waiting step has waited longer than it may.
    fn advance(
        &mut self,
        console: &[u8],
        pipe: &mut impl Write,
        now: Instant,
    ) -> std::result::Result<(), String> {
        while let Some(step) = self.steps.get(self.next) {
            let rest = console.get(self.search_from..).unwrap_or_default();
            match find(rest, step.wait_for.as_bytes()) {
                Some(at) => {
                    self.search_from += at + step.wait_for.len();
                    if !step.then_type.is_empty() {
                        // A guest that stopped reading must not stop the run: errors are
                        // ignored (the next step then waits in vain and says so).
                        let _ = pipe.write_all(&step.then_type).and_then(|()| pipe.flush());
                    }
                    self.next += 1;
                    self.since = now;
                }
                None => {
                    if step
                        .within
                        .is_some_and(|w| now.duration_since(self.since) > w)
                    {
                        return Err(self.stuck(" within its time"));
                    }
                    return Ok(());
                }
            }
        }
        Ok(())
    }

    fn done(&self) -> bool {
        self.next >= self.steps.len()
    }

    /// Which step is waiting, for what, after which typing.
    fn stuck(&self, how: &str) -> String {
        let Some(step) = self.steps.get(self.next) else {
            return String::new();
        };
        let typed = self.steps[..self.next]
            .iter()
            .rev()
            .find(|s| !s.then_type.is_empty())
            .map(|s| {
                String::from_utf8_lossy(&s.then_type)
                    .escape_debug()
                    .to_string()
            });
        format!(
            "console step {} of {}: `{}` did not appear{how}{}",
            self.next + 1,
            self.steps.len(),
            step.wait_for.escape_debug(),
            match (typed, step.within) {
                (Some(t), Some(w)) => format!(" ({} s after typing \"{t}\")", w.as_secs()),
                (Some(t), None) => format!(" (after typing \"{t}\")"),
                (None, _) => String::new(),
            }
        )
    }
}

/// How a QEMU run ended.
#[derive(Debug)]
pub struct Outcome {
    /// QEMU's exit status (the guest's semihosting status); 124 on timeout.
    pub status: i32,
    pub timed_out: bool,
    /// Console text (and QEMU's stderr) when captured; empty on the terminal.
    pub console: String,
    pub elapsed: Duration,
    /// A console script that did not get to its end: which step waited for what.
    pub script_unfinished: Option<String>,
}

impl Outcome {
    /// The status as a process exit code.
    pub fn exit_code(&self) -> u8 {
        u8::try_from(self.status).unwrap_or(1)
    }
}

/// Runs QEMU with these arguments, stopping it at the deadline.
pub fn run(args: &[String], timeout: Option<Duration>, console: Console) -> Result<Outcome> {
    let mut cmd = Command::new(QEMU);
    cmd.args(args);
    let captured: Arc<Mutex<Vec<u8>>> = Arc::default();
    let mut readers = Vec::new();
    let log = match &console {
        Console::Terminal => None,
        Console::Capture { log, input, .. } => {
            if let Some(dir) = log.parent() {
                std::fs::create_dir_all(dir)
                    .map_err(|e| Error::io(format_args!("creating {}", dir.display()), e))?;
            }
            let file = std::fs::File::create(log)
                .map_err(|e| Error::io(format_args!("creating {}", log.display()), e))?;
            cmd.stdin(if input.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
            Some(Arc::new(Mutex::new(file)))
        }
    };
    let start = Instant::now();
    let mut child = cmd
        .spawn()
        .map_err(|e| Error::io(format_args!("cannot start {QEMU}"), e))?;
    let echo = matches!(console, Console::Capture { echo: true, .. });
    if let Some(log) = &log {
        let pipes: [Option<Box<dyn Read + Send>>; 2] = [
            child
                .stdout
                .take()
                .map(|p| Box::new(p) as Box<dyn Read + Send>),
            child
                .stderr
                .take()
                .map(|p| Box::new(p) as Box<dyn Read + Send>),
        ];
        for mut pipe in pipes.into_iter().flatten() {
            let (log, captured) = (Arc::clone(log), Arc::clone(&captured));
            readers.push(std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                while let Ok(n @ 1..) = pipe.read(&mut buf) {
                    if let Ok(mut file) = log.lock() {
                        // A log write failure must not stop the console capture.
                        let _ = file.write_all(&buf[..n]);
                    }
                    if let Ok(mut text) = captured.lock() {
                        text.extend_from_slice(&buf[..n]);
                    }
                    if echo {
                        let mut out = std::io::stdout().lock();
                        let _ = out.write_all(&buf[..n]).and_then(|()| out.flush());
                    }
                }
            }));
        }
    }
    let deadline = timeout.map(|t| start + t);
    let mut timed_out = false;
    // Kept open until QEMU ends: an end of file on its stdin is not input.
    let mut stdin = child.stdin.take();
    let mut script = match &console {
        Console::Capture {
            input: Some(input), ..
        } => Some(Script {
            steps: input.steps.clone(),
            next: 0,
            search_from: 0,
            since: start,
        }),
        _ => None,
    };
    let mut stuck = None;
    let status = loop {
        if let (Some(s), Some(pipe)) = (script.as_mut(), stdin.as_mut()) {
            let text = captured.lock().map(|t| t.clone()).unwrap_or_default();
            if let Err(why) = s.advance(&text, pipe, Instant::now()) {
                // Nothing more will happen that the script waits for: stop now.
                stuck = Some(why);
                break stop(&mut child)?;
            }
        }
        if let Some(status) = child
            .try_wait()
            .map_err(|e| Error::io("waiting for QEMU", e))?
        {
            break status;
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            timed_out = true;
            break stop(&mut child)?;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let elapsed = start.elapsed();
    drop(stdin);
    for reader in readers {
        // A panicked reader only loses console text; the status still stands.
        let _ = reader.join();
    }
    let bytes = captured.lock().map(|c| c.clone()).unwrap_or_default();
    // The last look: what arrived after the last poll may finish the script.
    if let (None, Some(s)) = (&stuck, script.as_mut()) {
        let _ = s.advance(&bytes, &mut std::io::sink(), Instant::now());
        if !s.done() {
            stuck = Some(s.stuck(" before QEMU ended"));
        }
    }
    let console = String::from_utf8_lossy(&bytes).into_owned();
    let status = if timed_out {
        STATUS_TIMEOUT
    } else {
        use std::os::unix::process::ExitStatusExt;
        status
            .code()
            .unwrap_or_else(|| 128 + status.signal().unwrap_or(0))
    };
    Ok(Outcome {
        status,
        timed_out,
        console,
        elapsed,
        script_unfinished: stuck,
    })
}

/// Where `needle` first occurs in `haystack` (at 0 for an empty needle).
fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() {
        return Some(0);
    }
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Stops QEMU: SIGTERM first (it then restores the terminal), SIGKILL if it lingers.
fn stop(child: &mut std::process::Child) -> Result<std::process::ExitStatus> {
    let pid = child.id().to_string();
    let _ = Command::new("kill").args(["-TERM", &pid]).status();
    let grace = Instant::now() + Duration::from_secs(3);
    while Instant::now() < grace {
        if let Some(status) = child
            .try_wait()
            .map_err(|e| Error::io("waiting for QEMU", e))?
        {
            return Ok(status);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    // Already exited between the checks is fine; wait() below reaps it either way.
    let _ = child.kill();
    child.wait().map_err(|e| Error::io("waiting for QEMU", e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn boot() -> Boot {
        Boot {
            kernel: PathBuf::from("/w/Image"),
            initrd: None,
            dtb: None,
            bootargs: String::new(),
            gdb: false,
        }
    }

    #[test]
    fn virt_defaults() {
        let m = Machine::resolve(Board::Virt, MachineOptions::default()).unwrap();
        assert_eq!(
            command_line(&m, &boot()).join(" "),
            "-M virt,gic-version=3 -cpu cortex-a72 -smp 4 -m 512M -nographic -nic none \
             -semihosting-config enable=on,target=native -kernel /w/Image -append exit=semihosting"
        );
    }

    #[test]
    fn virt_el2_icount_initrd_gdb() {
        let opts = MachineOptions {
            smp: Some(2),
            gic: Some(Gic::V2),
            el2: true,
            icount: true,
            ..Default::default()
        };
        let m = Machine::resolve(Board::Virt, opts).unwrap();
        let b = Boot {
            initrd: Some("/w/initrd.cpio".into()),
            bootargs: "halt-after=boot".into(),
            gdb: true,
            ..boot()
        };
        let args = command_line(&m, &b);
        assert_eq!(
            args[1],
            "virt,gic-version=2,virtualization=on,dtb-randomness=off"
        );
        let line = args.join(" ");
        assert!(line.contains("-icount shift=0,align=off,sleep=off"));
        assert!(line.contains("-initrd /w/initrd.cpio"));
        assert!(
            line.ends_with("-append exit=semihosting halt-after=boot -s -S"),
            "{line}"
        );
    }

    #[test]
    fn virt_limits() {
        let too_many = MachineOptions {
            smp: Some(9),
            gic: Some(Gic::V2),
            ..Default::default()
        };
        assert!(Machine::resolve(Board::Virt, too_many).is_err());
        let sixteen = MachineOptions {
            smp: Some(16),
            ..Default::default()
        };
        assert_eq!(Machine::resolve(Board::Virt, sixteen).unwrap().smp, 16);
    }

    #[test]
    fn virt_clusters() {
        let opts = |smp, clusters| MachineOptions {
            smp: Some(smp),
            clusters: Some(clusters),
            ..Default::default()
        };
        let m = Machine::resolve(Board::Virt, opts(8, 2)).unwrap();
        let line = command_line(&m, &boot()).join(" ");
        assert!(line.contains(" -smp 8,clusters=2 "), "{line}");
        for (smp, clusters) in [(8, 3), (8, 0), (2, 4)] {
            let err = Machine::resolve(Board::Virt, opts(smp, clusters))
                .unwrap_err()
                .to_string();
            assert!(err.contains("does not divide"), "{err}");
        }
        let err = Machine::resolve(Board::Rpi4, opts(4, 2))
            .unwrap_err()
            .to_string();
        assert!(err.contains("--clusters is for virt"), "{err}");
    }

    #[test]
    fn rpi4_command_line() {
        let m = Machine::resolve(Board::Rpi4, MachineOptions::default()).unwrap();
        let b = Boot {
            dtb: Some("/c/bcm2711-rpi-4-b.dtb".into()),
            ..boot()
        };
        assert_eq!(
            command_line(&m, &b).join(" "),
            "-M raspi4b -display none -serial null -serial mon:stdio -dtb /c/bcm2711-rpi-4-b.dtb \
             -semihosting-config enable=on,target=native -kernel /w/Image -append exit=semihosting"
        );
    }

    #[test]
    fn rpi4_refuses_what_it_is_not() {
        for opts in [
            MachineOptions {
                smp: Some(2),
                ..Default::default()
            },
            MachineOptions {
                gic: Some(Gic::V3),
                ..Default::default()
            },
            MachineOptions {
                el2: true,
                ..Default::default()
            },
            MachineOptions {
                cpu: Some("cortex-a53".into()),
                ..Default::default()
            },
            MachineOptions {
                mem: Some("1G".into()),
                ..Default::default()
            },
        ] {
            assert!(Machine::resolve(Board::Rpi4, opts).is_err());
        }
        let four = MachineOptions {
            smp: Some(4),
            gic: Some(Gic::V2),
            ..Default::default()
        };
        assert!(Machine::resolve(Board::Rpi4, four).is_ok());
    }

    #[test]
    fn refuses_32_bit_cpus() {
        for cpu in [
            "cortex-a15",
            "cortex-a7",
            "cortex-a8",
            "cortex-a9",
            "arm926",
            "cortex-m3",
            "cortex-r5",
            "nonsense",
        ] {
            let opts = MachineOptions {
                cpu: Some(cpu.into()),
                ..Default::default()
            };
            let err = Machine::resolve(Board::Virt, opts.clone())
                .unwrap_err()
                .to_string();
            assert!(
                err.contains(cpu) && err.contains("AArch64") && err.contains("cortex-a53"),
                "{err}"
            );
            let err = Machine::resolve(Board::Rpi4, opts).unwrap_err().to_string();
            assert!(err.contains("AArch64"), "{err}");
        }
        for cpu in [
            "cortex-a53",
            "cortex-a57",
            "cortex-a76",
            "neoverse-n1",
            "max",
        ] {
            let opts = MachineOptions {
                cpu: Some(cpu.into()),
                ..Default::default()
            };
            assert_eq!(Machine::resolve(Board::Virt, opts).unwrap().cpu, cpu);
        }
    }

    fn script(steps: &[(&str, &str, Option<u64>)]) -> Script {
        Script {
            steps: steps
                .iter()
                .map(|(w, t, within)| Step {
                    wait_for: (*w).to_owned(),
                    then_type: t.as_bytes().to_vec(),
                    within: within.map(Duration::from_secs),
                })
                .collect(),
            next: 0,
            search_from: 0,
            since: Instant::now(),
        }
    }

    #[test]
    fn scripts_type_after_their_text_and_look_past_the_last_match() {
        let mut s = script(&[
            ("> ", "ps\n", None),
            ("tasks", "", None),
            ("> ", "halt\n", None),
        ]);
        let mut typed = Vec::new();
        let now = Instant::now();
        s.advance(b"boot\n", &mut typed, now).unwrap();
        assert!(typed.is_empty() && !s.done());
        s.advance(b"boot\n> ", &mut typed, now).unwrap();
        assert_eq!(typed, b"ps\n");
        // The first prompt does not count again for the third step.
        s.advance(b"boot\n> ps\n", &mut typed, now).unwrap();
        assert_eq!(typed, b"ps\n");
        s.advance(b"boot\n> ps\n2 tasks\n> ", &mut typed, now)
            .unwrap();
        assert_eq!(typed, b"ps\nhalt\n");
        assert!(s.done());
    }

    #[test]
    fn a_step_that_waits_too_long_says_which_and_after_what() {
        let mut s = script(&[("> ", "cpus\n", Some(5)), ("cpus: 4", "", Some(5))]);
        let start = s.since;
        let mut typed = Vec::new();
        s.advance(b"> ", &mut typed, start).unwrap();
        assert!(
            s.advance(b"> cpus\n", &mut typed, start + Duration::from_secs(3))
                .is_ok()
        );
        let err = s
            .advance(b"> cpus\n", &mut typed, start + Duration::from_secs(6))
            .unwrap_err();
        assert!(
            err.contains("step 2 of 2: `cpus: 4` did not appear"),
            "{err}"
        );
        assert!(err.contains("after typing \"cpus\\n\""), "{err}");
        // A step with no limit waits for the run's deadline.
        let mut s = script(&[("never", "", None)]);
        assert!(
            s.advance(b"", &mut typed, s.since + Duration::from_secs(1000))
                .is_ok()
        );
    }
}
