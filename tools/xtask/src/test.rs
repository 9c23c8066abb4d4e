//! `cargo xtask test`: the host tests (`cargo test --workspace`), then the QEMU matrix, each
//! run under a deadline with its console saved to `target/test-logs/<name>.log`, judged by
//! exit status and console markers, ending with one `N passed, M failed` line. The matrix is
//! a table of [`QemuTest`]s so the user-mode suites join as rows.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use crate::qemu::{
    self, Board, Boot, Console, ConsoleInput, Gic, Machine, MachineOptions, Outcome,
};
use crate::{Error, Result, kernel, prereq, proc, target_dir};

/// Deadline per QEMU run unless `ARMACH_TEST_TIMEOUT` (seconds) says otherwise.
const DEFAULT_TIMEOUT_SECS: u64 = 60;
/// A user-mode test program's success line (as GNU Mach's tests print it).
pub const USER_PASS_MARKER: &str = "gnumach-test-success-and-reboot";
/// A user-mode test program's failure line.
pub const USER_FAIL_MARKER: &str = "gnumach-test-failure";
/// Console lines shown after a failed run.
const TAIL_LINES: usize = 20;

/// One QEMU run of the matrix: a machine, what to tell the kernel, what the console must show.
#[derive(Clone, Debug)]
pub struct QemuTest {
    pub name: String,
    pub board: Board,
    pub options: MachineOptions,
    pub bootargs: String,
    /// User programs to boot with (the user-mode suites); `None` for the bare boot runs.
    pub initrd: Option<PathBuf>,
    /// Lines the console must contain.
    pub expect: Vec<String>,
    /// Text the console must contain somewhere.
    pub expect_text: Vec<String>,
    /// Lines that must appear exactly this many times (one success line per program).
    pub expect_counts: Vec<(String, usize)>,
    /// Lines that fail the run wherever they appear.
    pub fail_on: Vec<String>,
    /// The exit status the run must end with (0, or 2 for the kernel's own failure reports).
    pub status: i32,
    /// virt: a device tree to boot with instead of QEMU's own.
    pub dtb: Option<PathBuf>,
    /// Its own deadline, when it needs longer than the matrix's (`-icount` runs).
    pub timeout: Option<Duration>,
    /// Keys to type into the guest's serial console, and when.
    pub console_input: Option<ConsoleInput>,
    /// The console holds scheduler traces (`tracew`): convert them and check the result
    /// (`trace::check`).
    pub trace_check: bool,
}

impl QemuTest {
    /// A boot-only run: the kernel brings every CPU up, reports it, and exits 0.
    fn boot(board: Board, smp: u32, gic: Gic, el2: bool) -> Self {
        Self::boot_on(
            board,
            MachineOptions {
                smp: Some(smp),
                gic: Some(gic),
                el2,
                ..MachineOptions::default()
            },
        )
    }

    /// A boot-only run on a machine given by options (named after the machine they make).
    fn boot_on(board: Board, options: MachineOptions) -> Self {
        let (name, smp) = match Machine::resolve(board, options.clone()) {
            Ok(m) => (machine_name(&m), m.smp),
            // Refused again, with the reason, when the run starts.
            Err(_) => (
                format!("{board:?}").to_lowercase(),
                options.smp.unwrap_or(0),
            ),
        };
        Self {
            name,
            board,
            options,
            bootargs: "halt-after=boot".to_owned(),
            initrd: None,
            expect: vec![cpus_online(smp)],
            expect_text: Vec::new(),
            expect_counts: Vec::new(),
            fail_on: vec![USER_FAIL_MARKER.to_owned()],
            status: 0,
            dtb: None,
            timeout: None,
            console_input: None,
            trace_check: false,
        }
    }
}

/// A machine's part of a test name: `virt-gicv3-el2-smp4`, `raspi4b-smp4`, with the CPU
/// model and RAM added when they are not the defaults (`virt-gicv3-smp2-cortex-a53-1G`).
pub fn machine_name(m: &Machine) -> String {
    match m.board {
        Board::Rpi4 => format!("raspi4b-smp{}", m.smp),
        Board::Virt => {
            let mut name = format!(
                "virt-gicv{}{}-smp{}",
                if m.gic == Gic::V2 { 2 } else { 3 },
                if m.el2 { "-el2" } else { "" },
                m.smp
            );
            if let Some(clusters) = m.clusters {
                name.push_str(&format!("-clusters{clusters}"));
            }
            if m.cpu != qemu::DEFAULT_CPU {
                name.push('-');
                name.push_str(&m.cpu);
            }
            if m.mem != qemu::DEFAULT_MEM {
                name.push('-');
                name.push_str(&m.mem);
            }
            name
        }
    }
}

/// Whether a test name is selected: no filters, or it contains any of them.
pub fn selected(name: &str, filters: &[String]) -> bool {
    filters.is_empty() || filters.iter().any(|f| name.contains(f.as_str()))
}

/// The line the kernel prints once every CPU has started.
pub fn cpus_online(n: u32) -> String {
    format!("boot: {n} of {n} CPUs online")
}

/// The boot matrix: GIC versions, CPU counts, EL1 and EL2 entry, and the Pi 4.
pub fn boot_matrix() -> Vec<QemuTest> {
    let mut runs = Vec::new();
    for smp in [1, 2, 4, 8] {
        runs.push(QemuTest::boot(Board::Virt, smp, Gic::V2, false));
    }
    for smp in [4, 16] {
        runs.push(QemuTest::boot(Board::Virt, smp, Gic::V3, false));
    }
    runs.push(QemuTest::boot(Board::Virt, 4, Gic::V2, true));
    runs.push(QemuTest::boot(Board::Virt, 4, Gic::V3, true));
    runs.push(QemuTest::boot(Board::Rpi4, 4, Gic::V2, false));
    runs
}

/// The kernel failing on purpose (`crash=`): each must be reported, and end with status 2.
/// `write-text-alias` writes the kernel's text through the linear map, which must be a
/// permission fault (the image's alias there is not writable).
pub fn crash_matrix() -> Vec<QemuTest> {
    const DATA_ABORT: &str =
        "kernel: unexpected synchronous exception on cpu0: data abort from EL1";
    [
        ("panic", &["kernel panic on cpu0: panicked at"][..]),
        ("stack-overflow", &["kernel: kernel stack overflow on cpu0"]),
        // CPU 1's idle stack is in a kernel stack slot: the fault is in its guard gap.
        (
            "secondary-stack-overflow",
            &["kernel: kernel stack overflow on cpu1 (into the guard of stack slot 1)"],
        ),
        ("null", &[DATA_ABORT, "translation fault at level"]),
        (
            "write-text-alias",
            &[DATA_ABORT, "permission fault at level 3, on a write"],
        ),
    ]
    .into_iter()
    .map(|(how, report)| {
        let boot = QemuTest::boot(Board::Virt, 2, Gic::V3, false);
        QemuTest {
            name: format!("crash-{how}-{}", boot.name),
            bootargs: format!("crash={how}"),
            expect: Vec::new(),
            expect_text: report.iter().map(|s| (*s).to_owned()).collect(),
            status: 2,
            ..boot
        }
    })
    .collect()
}

/// ASIDs narrowed to 2 bits (`asid-bits=2`: three numbers) on 2 CPUs, so that the
/// generation rolls over again and again: six `hello` tasks, and four `isolation` tasks
/// (each sees only its own data at the address they all map). The kernel must log a
/// rollover.
pub fn asid_matrix(initrd: &Path) -> Vec<QemuTest> {
    [("hello", 6), (ISOLATION_PROGRAM, 4)]
        .into_iter()
        .map(|(program, instances)| {
            let boot = QemuTest::boot(Board::Virt, 2, Gic::V3, false);
            QemuTest {
                name: format!("asid-rollover-{program}-{}", boot.name),
                bootargs: format!("asid-bits=2 init={}", vec![program; instances].join(",")),
                initrd: Some(initrd.to_path_buf()),
                expect: Vec::new(),
                expect_text: vec![
                    "asid: 2-bit ASIDs".to_owned(),
                    "asid: rollover to generation 2 (2-bit ASIDs)".to_owned(),
                ],
                expect_counts: vec![(USER_PASS_MARKER.to_owned(), instances)],
                ..boot
            }
        })
        .collect()
}

/// Clustered machines (`-smp N,clusters=C`, which QEMU describes in `/cpus/cpu-map`) and
/// the concurrency program run on each: the kernel must report the clusters in its first
/// log line and the program must pass with the CPUs so grouped.
const CLUSTER_MACHINES: &[(u32, u32, &str)] = &[(8, 2, "psets")];

pub fn cluster_matrix(initrd: &Path, programs: &[String]) -> Vec<QemuTest> {
    let mut runs = Vec::new();
    for &(smp, clusters, program) in CLUSTER_MACHINES {
        if !programs.iter().any(|p| p == program) {
            continue;
        }
        let boot = QemuTest::boot_on(
            Board::Virt,
            MachineOptions {
                smp: Some(smp),
                gic: Some(Gic::V3),
                clusters: Some(clusters),
                ..MachineOptions::default()
            },
        );
        for mut run in user_suite(&boot, initrd, &[program.to_owned()]) {
            run.expect_text
                .push(format!("({smp} CPUs in {clusters} clusters, "));
            run.fail_on.push("CPU topology ignored".to_owned());
            runs.push(run);
        }
    }
    runs
}

/// The kernel's self-checks (`checks`): the line the kernel prints when they fail, and the
/// tally it prints at the end of a run with them on.
pub const CHECKS_FAILED: &str = "checks: FAILED";
pub const CHECKS_CLEAN: &str = " at the end), 0 inconsistencies";

/// Busy programs run with the kernel's self-checks on (`checks=1`: run queues, processor
/// sets, frame counts, stack guard gaps, port names, kernel-memory bounds, every 10 ticks,
/// at each task's exit and at the end), which must find nothing; and one run that makes a
/// run queue's count wrong on purpose (`checks-inject=runqueue`), which must be reported
/// and end the run with the test-failure status 4. The test build has the lock-order
/// check compiled in, so these runs check the lock order too.
pub fn checks_matrix(initrd: &Path) -> Vec<QemuTest> {
    let run = |program: &str, gic: Gic, smp: u32| {
        let boot = QemuTest::boot(Board::Virt, smp, gic, false);
        let (words, instances) = init_words(program);
        QemuTest {
            name: format!("checks-{program}-{}", boot.name),
            bootargs: format!("checks=1 {words}"),
            initrd: Some(initrd.to_path_buf()),
            expect: Vec::new(),
            expect_text: vec![
                "checks: on: ".to_owned(),
                "lock order checked at every acquisition".to_owned(),
                CHECKS_CLEAN.to_owned(),
            ],
            expect_counts: vec![(USER_PASS_MARKER.to_owned(), instances)],
            fail_on: vec![USER_FAIL_MARKER.to_owned(), CHECKS_FAILED.to_owned()],
            ..boot
        }
    };
    let mut runs = vec![
        run("psets", Gic::V3, 4),
        run(IPC_TASKS_PROGRAM, Gic::V2, 4),
        run(ISOLATION_PROGRAM, Gic::V3, 8),
    ];
    let boot = QemuTest::boot(Board::Virt, 2, Gic::V3, false);
    runs.push(QemuTest {
        name: format!("checks-inject-runqueue-{}", boot.name),
        bootargs: "checks checks-inject=runqueue init=hello".to_owned(),
        initrd: Some(initrd.to_path_buf()),
        expect: Vec::new(),
        expect_text: vec![
            // How many threads are queued then depends on timing; the count is one more.
            "checks: FAILED run queue of cpu0 has ".to_owned(),
            ", nr_queued says ".to_owned(),
            " at the end), 1 inconsistencies".to_owned(),
        ],
        expect_counts: vec![(USER_PASS_MARKER.to_owned(), 1)],
        status: 4,
        ..boot
    });
    runs
}

/// The short soak ([`crate::soak`]): 20 s of everything at once on 4 CPUs, self-checks on.
pub fn soak_matrix(initrd: &Path, programs: &[String]) -> Vec<QemuTest> {
    if programs.iter().any(|p| p == crate::soak::PROGRAM) {
        vec![crate::soak::test_run(initrd)]
    } else {
        Vec::new()
    }
}

/// Words after a lone `--` on the command line reach the `init=` program as `argv[3..]`
/// (what `--init-args` uses), and the kernel does not read them as its own (`hz=5` there
/// would be out of range for the kernel).
pub fn init_args_matrix(initrd: &Path) -> Vec<QemuTest> {
    let boot = QemuTest::boot(Board::Virt, 1, Gic::V3, false);
    vec![QemuTest {
        name: format!("init-args-hello-{}", boot.name),
        bootargs: "init=hello -- alpha hz=5".to_owned(),
        initrd: Some(initrd.to_path_buf()),
        expect: Vec::new(),
        expect_text: vec![
            "hello: argc = 5".to_owned(),
            "hello: argv[3] = \"alpha\"".to_owned(),
            "hello: argv[4] = \"hz=5\"".to_owned(),
        ],
        expect_counts: vec![(USER_PASS_MARKER.to_owned(), 1)],
        fail_on: vec![USER_FAIL_MARKER.to_owned(), "bootargs: hz=".to_owned()],
        ..boot
    }]
}

/// Seeds of the user-mode fuzzer (`tests/src/bin/fuzz.rs`) that once failed, replayed on
/// 4 CPUs with the operation count that showed it: (seed, operations per thread, what it
/// was). Each must now pass as any user run does.
const FUZZ_REPLAYS: &[(u64, u32, &str)] = &[
    // `task_create(inherit_memory)` of a task holding a huge, mostly empty region walked
    // every page of it with the CPU's interrupts masked: the machine hung (seen on the
    // fuzz branch before the copy learned to visit only the pages that exist).
    (52146427, 400, "inherit-huge"),
    // A kernel reply addressed to another kernel object's port was queued where nothing
    // receives (a leak; `kreply` is its own regression test).
    (468706648, 400, "kreply"),
    // A request to the worker's own thread, its destination's disposition mutated to
    // MOVE_SEND, took the worker's one reference to its thread's name; the thread's next
    // exception came under a new name, the handler took it for a spare thread and ended it,
    // and the worker never reported (worker 1.0 at op 744). Protected names now hold a stock
    // of references.
    (418595236, 800, "lost-thread-name"),
    // A victim thread's name, destroyed by the fuzzing and made again for a port the worker
    // receives on: the worker's own `thread_resume` on it (no timeout) queued the request on
    // its own port and waited for ever (worker 0.0 at op 2428). The worker's calls on such
    // names now have timeouts (`fuzz::Patient`).
    (665335487, 2500, "own-port-as-victim"),
    // The same with the `task_terminate` of the oldest victim when a new one is made (worker
    // 1.1 at op 805): every call of `new_victim` now has timeouts too.
    (110396834, 1000, "own-port-as-old-victim"),
];

/// The [`FUZZ_REPLAYS`] runs.
pub fn fuzz_replay_matrix(initrd: &Path) -> Vec<QemuTest> {
    let boot = QemuTest::boot(Board::Virt, 4, Gic::V3, false);
    FUZZ_REPLAYS
        .iter()
        .map(|&(seed, ops, what)| QemuTest {
            name: format!("fuzz-replay-{what}-{}", boot.name),
            bootargs: format!("checks=1 init=fuzz -- seed={seed} ops={ops}"),
            initrd: Some(initrd.to_path_buf()),
            expect: Vec::new(),
            expect_text: vec![format!("fuzz: total: seed {seed}:")],
            expect_counts: vec![(USER_PASS_MARKER.to_owned(), 1)],
            fail_on: vec![USER_FAIL_MARKER.to_owned(), CHECKS_FAILED.to_owned()],
            ..boot.clone()
        })
        .collect()
}

/// servers/bootstrap as the first task, starting other programs from user space: the
/// programs named after `--` (each waited for), a configuration file of the RAM disk
/// (`-f hello.conf`; the default `bootstrap.conf`, which starts the shell, is what the
/// shell's runs boot), and a configuration file the RAM disk lacks (bootstrap says so and exits,
/// and the run still ends with the leak check). The `names` program's runs are in the user
/// matrix (`BOOTSTRAP_PROGRAMS`).
pub fn bootstrap_matrix(initrd: &Path) -> Vec<QemuTest> {
    let boot = QemuTest::boot(Board::Virt, 2, Gic::V3, false);
    let run = |what: &str, bootargs: &str, successes: usize, text: &[&str]| QemuTest {
        name: format!("bootstrap-{what}-{}", boot.name),
        bootargs: bootargs.to_owned(),
        initrd: Some(initrd.to_path_buf()),
        expect: Vec::new(),
        expect_text: text.iter().map(|t| (*t).to_owned()).collect(),
        expect_counts: vec![(USER_PASS_MARKER.to_owned(), successes)],
        fail_on: vec![USER_FAIL_MARKER.to_owned()],
        ..boot.clone()
    };
    vec![
        run(
            "words",
            "init=bootstrap -- hello threads",
            2,
            &[
                "bootstrap: RAM disk of",
                "starting 2 programs",
                "bootstrap: every program ended; 0 servers terminated",
            ],
        ),
        run(
            "conf",
            "init=bootstrap -- -f hello.conf",
            1,
            &[
                "starting 1 programs",
                "bootstrap: every program ended; 0 servers terminated",
            ],
        ),
        run(
            "no-conf",
            "init=bootstrap -- -f nothere.conf",
            0,
            &["bootstrap: no nothere.conf in the RAM disk"],
        ),
    ]
}

/// Kernel command-line values the kernel cannot use as given: it must name each on the
/// console with the value it uses instead, and still boot (with that value).
pub fn bad_bootargs_matrix() -> Vec<QemuTest> {
    let levels = "off, error, warn, info, debug, trace, 0-5";
    [
        (
            "range",
            "hz=0 loglevel=foo",
            vec![
                "bootargs: hz=0 out of range 10-1000; using 10".to_owned(),
                format!("bootargs: loglevel=foo is not one of {levels}; using info"),
            ],
            "10 Hz tick",
        ),
        (
            "words",
            "hz=abc loglevel=7 kmem-task-limit=lots crash=maybe asid-bits=wide",
            vec![
                "bootargs: hz=abc is not a number; using 100".to_owned(),
                format!("bootargs: loglevel=7 is not one of {levels}; using info"),
                "bootargs: kmem-task-limit=lots is not a number; using the default".to_owned(),
                "bootargs: crash=maybe is not one of panic, stack-overflow, \
                 secondary-stack-overflow, null, write-text-alias; ignoring it"
                    .to_owned(),
                // QEMU's cortex-a72 has 16-bit ASIDs.
                "bootargs: asid-bits=wide is not a number; using 16".to_owned(),
            ],
            "100 Hz tick",
        ),
    ]
    .into_iter()
    .map(|(what, words, lines, tick)| {
        let boot = QemuTest::boot(Board::Virt, 2, Gic::V3, false);
        let mut expect = lines;
        expect.extend(boot.expect.iter().cloned());
        QemuTest {
            name: format!("bootargs-bad-{what}-{}", boot.name),
            bootargs: format!("halt-after=boot {words}"),
            expect,
            expect_text: vec![tick.to_owned()],
            ..boot
        }
    })
    .collect()
}

/// The name of [`failed_cpu_test`].
pub const FAILED_CPU_TEST: &str = "cpu-fails-virt-gicv3-smp2";

/// A CPU that cannot start: QEMU's virt tree for 2 CPUs with the second CPU's MPIDR changed
/// to 0x7, which no CPU has, so PSCI `CPU_ON` refuses it. The kernel must name it and end
/// with status 3.
pub fn failed_cpu_test() -> Result<QemuTest> {
    let dir = target_dir().join("test-dtb");
    std::fs::create_dir_all(&dir)
        .map_err(|e| Error::io(format_args!("creating {}", dir.display()), e))?;
    let path = dir.join("virt-gicv3-smp2-bad-cpu1.dtb");
    let dump = std::process::Command::new(qemu::QEMU)
        .args([
            "-M",
            &format!("virt,gic-version=3,dumpdtb={}", path.display()),
        ])
        .args([
            "-cpu",
            "cortex-a72",
            "-smp",
            "2",
            "-m",
            "512M",
            "-nographic",
            // As every run: no NIC, so no NIC option ROM is needed (Debian ships those in
            // a package QEMU only recommends).
            "-nic",
            "none",
        ])
        .stdin(Stdio::null())
        .output()
        .map_err(|e| Error::io("running QEMU to dump its device tree", e))?;
    let mut dtb = std::fs::read(&path).map_err(|e| {
        Error::new(format!(
            "QEMU wrote no device tree ({e}): {}",
            String::from_utf8_lossy(&dump.stderr)
        ))
    })?;
    crate::dtbpatch::set_u32_property(&mut dtb, "cpu@1", "reg", 7).map_err(Error::new)?;
    std::fs::write(&path, &dtb)
        .map_err(|e| Error::io(format_args!("writing {}", path.display()), e))?;
    let boot = QemuTest::boot(Board::Virt, 2, Gic::V3, false);
    Ok(QemuTest {
        name: FAILED_CPU_TEST.to_owned(),
        expect: vec![
            "boot: 1 of 2 CPUs online".to_owned(),
            "boot: CPU with MPIDR 0x7 did not start".to_owned(),
        ],
        status: 3,
        dtb: Some(path),
        ..boot
    })
}

/// Machines the user-mode suite runs on: 1, 2 and 4 CPUs on both GIC versions, and the Pi 4.
const USER_MACHINES: &[(Board, u32, Gic, bool)] = &[
    (Board::Virt, 1, Gic::V2, false),
    (Board::Virt, 1, Gic::V3, false),
    (Board::Virt, 2, Gic::V2, false),
    (Board::Virt, 2, Gic::V3, false),
    (Board::Virt, 4, Gic::V2, false),
    (Board::Virt, 4, Gic::V3, false),
    (Board::Virt, 4, Gic::V3, true),
    (Board::Rpi4, 4, Gic::V2, false),
];

/// Machines only the concurrency programs (`MANY_CPU_PROGRAMS`) run on besides those:
/// 8 CPUs, GICv2's limit (the whole suite there would double the run time on a 2-core
/// host).
const MANY_CPU_MACHINES: &[(Board, u32, Gic, bool)] = &[(Board::Virt, 8, Gic::V2, false)];

/// Programs whose point is concurrency across CPUs, run on `MANY_CPU_MACHINES` too.
const MANY_CPU_PROGRAMS: &[&str] = &[
    ISOLATION_PROGRAM,
    "waitstress",
    "unmaprace",
    "machmsg",
    IPC_TASKS_PROGRAM,
    "psets",
    "portsets",
    "machhost",
    "taskthread",
    "notify",
    "kobject",
];

/// The migration suite: balancing and idle pull are timing-dependent, so it runs only under
/// `-icount` (deterministic), on its own machines, with its own deadline.
pub const MIGRATION_PROGRAM: &str = "migration";
/// Its deadline per run (at least; `ARMACH_TEST_TIMEOUT` may give more): under `-icount`
/// QEMU runs one vCPU at a time, and the suite keeps up to 17 threads busy for a few
/// hundred ticks per section.
const MIGRATION_TIMEOUT_SECS: u64 = 300;

/// Machines the migration suite runs on: 2, 4 and 8 CPUs on both GIC versions, the Pi 4,
/// and 8 CPUs in two clusters (QEMU describes them in `/cpus/cpu-map`).
const MIGRATION_MACHINES: &[(Board, u32, Gic, Option<u32>)] = &[
    (Board::Virt, 2, Gic::V2, None),
    (Board::Virt, 2, Gic::V3, None),
    (Board::Virt, 4, Gic::V2, None),
    (Board::Virt, 4, Gic::V3, None),
    (Board::Virt, 8, Gic::V2, None),
    (Board::Virt, 8, Gic::V3, Some(2)),
    (Board::Rpi4, 4, Gic::V2, None),
];

/// The migration suite's runs, each under `-icount` (if the program is in `programs`).
pub fn migration_matrix(initrd: &Path, programs: &[String]) -> Vec<QemuTest> {
    let mut runs = Vec::new();
    if !programs.iter().any(|p| p == MIGRATION_PROGRAM) {
        return runs;
    }
    for &(board, smp, gic, clusters) in MIGRATION_MACHINES {
        let boot = QemuTest::boot_on(
            board,
            MachineOptions {
                smp: Some(smp),
                gic: Some(gic),
                clusters,
                ..MachineOptions::default()
            },
        );
        for mut run in user_suite(&boot, initrd, &[MIGRATION_PROGRAM.to_owned()]) {
            if let Some(c) = clusters {
                // As the cluster runs: the kernel must have read the topology.
                run.expect_text
                    .push(format!("({smp} CPUs in {c} clusters, "));
                run.fail_on.push("CPU topology ignored".to_owned());
            }
            runs.push(run);
        }
    }
    runs
}

/// The scheduler-trace run: `tracew` (driver and peer) on 4 CPUs under `-icount`, its
/// traces converted and checked (`trace::check`).
pub fn trace_matrix(initrd: &Path, programs: &[String]) -> Vec<QemuTest> {
    if !programs.iter().any(|p| p == crate::trace::PROGRAM) {
        return Vec::new();
    }
    let boot = QemuTest::boot_on(
        Board::Virt,
        MachineOptions {
            smp: Some(4),
            gic: Some(Gic::V3),
            icount: true,
            ..MachineOptions::default()
        },
    );
    user_suite(&boot, initrd, &[crate::trace::PROGRAM.to_owned()])
        .into_iter()
        .map(|run| QemuTest {
            timeout: Some(Duration::from_secs(MIGRATION_TIMEOUT_SECS)),
            trace_check: true,
            ..run
        })
        .collect()
}

/// The program started as several tasks at once, and how many.
pub const ISOLATION_PROGRAM: &str = "isolation";
pub const ISOLATION_INSTANCES: usize = 3;

/// The program that runs as two tasks talking through Mach IPC (one server, one client).
pub const IPC_TASKS_PROGRAM: &str = "ipctasks";

/// The program that reads the console device: the harness types [`DEVICE_INPUT`] once it
/// prints [`DEVICE_PROMPT`] (its reader is then blocked).
pub const DEVICE_PROGRAM: &str = "device";
pub const DEVICE_PROMPT: &str = "device: waiting for console input";
pub const DEVICE_INPUT: &str = "armach console input: 42 keys\n";

/// What a program's run types into the console.
fn console_input(program: &str) -> Option<ConsoleInput> {
    (program == DEVICE_PROGRAM).then(|| ConsoleInput::once(DEVICE_PROMPT, DEVICE_INPUT.as_bytes()))
}

/// The program started by servers/bootstrap rather than by the kernel, and the
/// configuration file of the RAM disk bootstrap reads for it.
const BOOTSTRAP_PROGRAMS: &[(&str, &str)] = &[("names", "names.conf")];

/// How a program is started: its `init=` list, and so how many success lines it prints.
fn init_words(program: &str) -> (String, usize) {
    if let Some((_, conf)) = BOOTSTRAP_PROGRAMS.iter().find(|(p, _)| *p == program) {
        return (format!("init=bootstrap -- -f {conf}"), 1);
    }
    let instances = match program {
        ISOLATION_PROGRAM => ISOLATION_INSTANCES,
        IPC_TASKS_PROGRAM => 2,
        crate::trace::PROGRAM => 2,
        _ => 1,
    };
    let list = vec![program; instances].join(",");
    (format!("init={list}"), instances)
}

/// Console text a program's run must show besides its success line: the kernel's reports
/// of the faults `faults`, `exc` and `gsync` cause on purpose.
fn expected_reports(program: &str) -> Vec<String> {
    match program {
        "faults" => [
            "EXC_BAD_ACCESS code 1 (KERN_INVALID_ADDRESS) subcode 0x8",
            "EXC_BAD_ACCESS code 2 (KERN_PROTECTION_FAILURE)",
            "instruction abort from EL0",
            "EXC_SOFTWARE code 1 subcode 0x0",
            "EXC_BAD_INSTRUCTION code 1",
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect(),
        // Children of faultiso that fault with no handler: a stack overflow (below its stack at
        // 0x40_0000_0000), a read of 0x8, a misaligned `ldar` (EXC_AARCH64_AL), `udf`, an
        // unknown trap.
        "faultiso" => [
            "EXC_BAD_ACCESS code 1 (KERN_INVALID_ADDRESS) subcode 0x3ffffffff0",
            "EXC_BAD_ACCESS code 1 (KERN_INVALID_ADDRESS) subcode 0x8",
            "EXC_BAD_ACCESS code 100 subcode 0x",
            "EXC_BAD_INSTRUCTION code 1",
            "EXC_SOFTWARE code 1 subcode 0x0; SVC from AArch64",
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect(),
        // bootstrap restarted the dying server as often as it may, and then no more.
        "names" => vec![
            "bootstrap: names serve restarter died; restart 1 of 3".to_owned(),
            "bootstrap: names serve restarter died; restart 3 of 3".to_owned(),
            "bootstrap: names serve restarter died 4 times; not restarted again".to_owned(),
            "bootstrap: every program ended; 1 servers terminated".to_owned(),
        ],
        // What it wrote through device_write_inband.
        DEVICE_PROGRAM => vec!["device: written with device_write_inband".to_owned()],
        // Handlers that refuse, a bad reply, no handler, a dead exception port, a kernel
        // object's port as the exception port.
        "exc" => [
            "EXC_BREAKPOINT code 1 subcode 0x77; the handler answered 5; BRK",
            "EXC_BREAKPOINT code 1 subcode 0x78; the handler sent no valid reply; BRK",
            "EXC_BREAKPOINT code 1 subcode 0x79; BRK",
            "EXC_BREAKPOINT code 1 subcode 0x7a; BRK",
            "EXC_BREAKPOINT code 1 subcode 0x7c; the handler answered -303; BRK",
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect(),
        // A trap whose stacked arguments are unreadable, with no handler.
        "traps" => vec![
            "EXC_BAD_ACCESS code 1 (KERN_INVALID_ADDRESS) subcode 0x30; SVC from AArch64"
                .to_owned(),
        ],
        // A named thread of a named task faults on purpose: the report names both.
        "gsync" => vec![
            "(gsync-faulter) of task".to_owned(),
            "(gsync-child) on cpu".to_owned(),
        ],
        _ => Vec::new(),
    }
}

/// The user-mode suite: each test program of the RAM disk booted as the first task
/// (`init=NAME`; `isolation` as three tasks at once) on each machine. A run passes when each
/// task printed its success line (counted: one per task, so one task's success cannot hide
/// another's silence) and nobody printed a failure line, the kernel found every frame back
/// once all tasks had exited (else it prints the failure marker and exits 4) and powered off
/// with status 0.
pub fn user_matrix(initrd: &Path, programs: &[String]) -> Vec<QemuTest> {
    let mut runs = Vec::new();
    // The migration suite, the trace and the soak have their own machines
    // (`migration_matrix`, `trace_matrix`, `soak_matrix`).
    let programs: Vec<String> = programs
        .iter()
        .filter(|p| {
            *p != MIGRATION_PROGRAM && *p != crate::trace::PROGRAM && *p != crate::soak::PROGRAM
        })
        .cloned()
        .collect();
    let programs = &programs[..];
    for &(board, smp, gic, el2) in USER_MACHINES {
        let boot = QemuTest::boot(board, smp, gic, el2);
        runs.extend(user_suite(&boot, initrd, programs));
    }
    let many: Vec<String> = programs
        .iter()
        .filter(|p| MANY_CPU_PROGRAMS.contains(&p.as_str()))
        .cloned()
        .collect();
    if !many.is_empty() {
        for &(board, smp, gic, el2) in MANY_CPU_MACHINES {
            let boot = QemuTest::boot(board, smp, gic, el2);
            runs.extend(user_suite(&boot, initrd, &many));
        }
    }
    runs
}

/// The user-mode suite once on the machine of `boot` (a boot run of that machine). The
/// migration suite always runs under `-icount`, with its own deadline.
pub fn user_suite(boot: &QemuTest, initrd: &Path, programs: &[String]) -> Vec<QemuTest> {
    programs
        .iter()
        .map(|program| {
            let (bootargs, instances) = init_words(program);
            let migration = program == MIGRATION_PROGRAM;
            QemuTest {
                name: format!("{program}-{}", boot.name),
                bootargs,
                initrd: Some(initrd.to_path_buf()),
                expect: Vec::new(),
                expect_text: expected_reports(program),
                expect_counts: vec![(USER_PASS_MARKER.to_owned(), instances)],
                options: MachineOptions {
                    icount: boot.options.icount || migration,
                    ..boot.options.clone()
                },
                timeout: migration
                    .then_some(Duration::from_secs(MIGRATION_TIMEOUT_SECS))
                    .or(boot.timeout),
                console_input: console_input(program),
                ..boot.clone()
            }
        })
        .collect()
}

/// msh, the shell (`servers/msh`), is no test program: its runs type its commands into the
/// console ([`crate::shell`]'s scripts) and pass when every answer appeared and `halt`
/// powered the machine off with status 0.
pub const SHELL_PROGRAM: &str = "msh";
/// How the shell is booted: servers/bootstrap first, which starts msh from its default
/// configuration (`servers/bootstrap/conf/bootstrap.conf`), so that msh has a bootstrap
/// port (its `spawn` asks bootstrap).
pub const SHELL_BOOTARGS: &str = "init=bootstrap";
/// Machines the shell's console test runs on (its script needs 4 CPUs): virt, and the Pi,
/// whose mini UART must take the input.
const SHELL_MACHINES: &[(Board, u32, Gic)] =
    &[(Board::Virt, 4, Gic::V3), (Board::Rpi4, 4, Gic::V2)];
/// A shell run's deadline (at least): its steps each wait at most `shell::STEP_WITHIN`,
/// and `burn` keeps CPUs busy that QEMU runs on a host's few cores.
const SHELL_TIMEOUT_SECS: u64 = 300;
/// The machine of the demo tour (`cargo xtask run --demo`), as a test.
pub const DEMO_TEST: &str = "demo-virt-gicv3-smp4";

/// A run of msh (started by bootstrap, [`SHELL_BOOTARGS`]) driven by `exchanges`.
fn shell_run(
    boot: &QemuTest,
    name: String,
    initrd: &Path,
    exchanges: &[crate::shell::Exchange],
) -> QemuTest {
    QemuTest {
        name,
        bootargs: SHELL_BOOTARGS.to_owned(),
        initrd: Some(initrd.to_path_buf()),
        expect: Vec::new(),
        expect_text: vec![crate::shell::HALTING.to_owned()],
        expect_counts: Vec::new(),
        timeout: Some(Duration::from_secs(SHELL_TIMEOUT_SECS)),
        console_input: Some(crate::shell::console_input(exchanges)),
        ..boot.clone()
    }
}

/// The shell's console test on each of [`SHELL_MACHINES`], and the demo tour.
pub fn shell_matrix(initrd: &Path) -> Vec<QemuTest> {
    let mut runs: Vec<QemuTest> = SHELL_MACHINES
        .iter()
        .map(|&(board, smp, gic)| {
            let boot = QemuTest::boot(board, smp, gic, false);
            let name = format!("{SHELL_PROGRAM}-{}", boot.name);
            let mut run = shell_run(&boot, name, initrd, &crate::shell::shell_test());
            run.expect_text.push(crate::shell::SPAWNED_HELLO.to_owned());
            run
        })
        .collect();
    runs.push(demo_test(initrd));
    runs
}

/// The demo tour as a test: it must reach its end and power off with status 0.
pub fn demo_test(initrd: &Path) -> QemuTest {
    let boot = QemuTest::boot(Board::Virt, 4, Gic::V3, false);
    shell_run(&boot, DEMO_TEST.to_owned(), initrd, &crate::shell::demo())
}

/// The C program of `tests/foreign`, built by GCC and booted as `--init` boots a file.
pub const FOREIGN_TEST: &str = "foreign-contract-virt-gicv3-smp2";

/// The one run of `cargo xtask test --init FILE`: the program alone as the first task,
/// passing when it prints GNU Mach's success line once and the machine exits with 0.
fn foreign_run(boot: &QemuTest, f: &crate::foreign::Foreign, machine: &Machine) -> QemuTest {
    QemuTest {
        name: format!("{}-{}", f.name, machine_name(machine)),
        bootargs: crate::foreign::bootargs(&f.name, "", &f.args),
        initrd: Some(f.initrd.clone()),
        expect: Vec::new(),
        expect_text: Vec::new(),
        expect_counts: vec![(USER_PASS_MARKER.to_owned(), 1)],
        ..boot.clone()
    }
}

/// Totals of passed and failed tests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Totals {
    pub passed: u64,
    pub failed: u64,
}

/// Sums libtest's `test result: ok. 3 passed; 1 failed; ...` lines.
pub fn parse_test_results(output: &str) -> Totals {
    let mut totals = Totals::default();
    for line in output.lines() {
        let Some(rest) = line.trim().strip_prefix("test result: ") else {
            continue;
        };
        for field in rest.split(';') {
            let mut words = field.split_whitespace().rev();
            let (Some(what), Some(count)) = (words.next(), words.next()) else {
                continue;
            };
            let Ok(count) = count.parse::<u64>() else {
                continue;
            };
            match what {
                "passed" => totals.passed += count,
                "failed" => totals.failed += count,
                _ => {}
            }
        }
    }
    totals
}

/// The `failures:` sections of libtest output (what failed and its captured output).
pub fn failure_sections(output: &str) -> String {
    let mut out = String::new();
    let mut inside = false;
    for line in output.lines() {
        if line == "failures:" {
            inside = true;
        }
        if inside {
            out.push_str(line);
            out.push('\n');
        }
        if line.starts_with("test result: ") {
            inside = false;
        }
    }
    out
}

/// Whether a console line (escape sequences and prefixes such as a log level aside) ends
/// with `marker`.
pub fn console_has_line(console: &str, marker: &str) -> bool {
    console.lines().map(strip_escapes).any(|line| {
        let line = line.trim_end();
        line.strip_suffix(marker)
            .is_some_and(|before| !before.ends_with(|c: char| c.is_ascii_alphanumeric()))
    })
}

/// How many console lines end with `marker` (as [`console_has_line`] matches them).
pub fn count_lines(console: &str, marker: &str) -> usize {
    console
        .lines()
        .filter(|line| console_has_line(line, marker))
        .count()
}

/// The first console line mentioning `marker` anywhere.
fn line_with<'a>(console: &'a str, marker: &str) -> Option<&'a str> {
    console.lines().find(|l| l.contains(marker))
}

/// Drops ANSI CSI sequences (`ESC [ ... letter`) and carriage returns.
fn strip_escapes(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\x1b' => {
                if chars.next() == Some('[') {
                    for c in chars.by_ref() {
                        if c.is_ascii_alphabetic() {
                            break;
                        }
                    }
                }
            }
            '\r' => {}
            c => out.push(c),
        }
    }
    out
}

/// Decides a run: `Ok` when it passed, else why not.
pub fn judge(
    test: &QemuTest,
    outcome: &Outcome,
    timeout: Duration,
) -> std::result::Result<(), String> {
    if let Some(step) = &outcome.script_unfinished {
        return Err(step.clone());
    }
    if outcome.timed_out {
        return Err(format!("timed out after {} s", timeout.as_secs()));
    }
    for marker in &test.fail_on {
        if let Some(line) = line_with(&outcome.console, marker) {
            return Err(format!(
                "exit status {}, console: {}",
                outcome.status,
                line.trim()
            ));
        }
    }
    if outcome.status != test.status {
        return Err(format!(
            "exit status {} ({}), expected {}",
            outcome.status,
            qemu::describe_status(outcome.status),
            test.status
        ));
    }
    let missing: Vec<&str> = test
        .expect
        .iter()
        .filter(|m| !console_has_line(&outcome.console, m))
        .chain(
            test.expect_text
                .iter()
                .filter(|t| !outcome.console.contains(t.as_str())),
        )
        .map(String::as_str)
        .collect();
    if !missing.is_empty() {
        return Err(format!("console lacks `{}`", missing.join("`, `")));
    }
    for (marker, times) in &test.expect_counts {
        let seen = count_lines(&outcome.console, marker);
        if seen != *times {
            return Err(format!(
                "console has `{marker}` {seen} times, expected {times} (one per task)"
            ));
        }
    }
    Ok(())
}

/// What `cargo xtask test` was asked to do.
#[derive(Clone, Debug, Default)]
pub struct Plan {
    /// `Some`: only the user-mode suite, once, on this machine (no host tests, no matrix).
    pub machine: Option<(Board, MachineOptions)>,
    /// Only tests whose name contains one of these (all when empty).
    pub filters: Vec<String>,
    /// Print the selected names instead of running them.
    pub list: bool,
    /// `Some`: only this foreign program, once, on `machine` (`--init`).
    pub foreign: Option<crate::foreign::Foreign>,
}

/// The user programs that are tests (from `tests/src/bin`, less the benchmark).
fn user_programs() -> Result<Vec<String>> {
    let mut programs =
        crate::userland::test_program_names(&crate::workspace_root()).map_err(Error::new)?;
    // The bench programs measure, they check nothing: `cargo xtask bench` runs them.
    programs.retain(|p| p != crate::bench::PROGRAM && p != crate::bench::SERVER);
    Ok(programs)
}

/// The QEMU runs a plan selects (the CPU-failure run, whose device tree is made by QEMU,
/// stands for itself as `None` and is prepared only when selected). `initrd` only names the
/// RAM disk in the runs.
pub fn qemu_selection(
    plan: &Plan,
    initrd: &Path,
    programs: &[String],
) -> Result<(Vec<QemuTest>, bool)> {
    let (mut runs, failed_cpu) = match &plan.machine {
        Some((board, options)) if plan.foreign.is_some() => {
            let machine = Machine::resolve(*board, options.clone())?;
            let boot = QemuTest::boot_on(*board, options.clone());
            let f = plan
                .foreign
                .as_ref()
                .map(|f| foreign_run(&boot, f, &machine));
            (f.into_iter().collect(), false)
        }
        Some((board, options)) => {
            // Refuse a machine that cannot be (say, a 32-bit --cpu) before anything runs.
            let machine = Machine::resolve(*board, options.clone())?;
            let resolved = MachineOptions {
                smp: Some(machine.smp),
                gic: Some(machine.gic),
                el2: machine.el2 && *board == Board::Virt,
                cpu: Some(machine.cpu),
                mem: Some(machine.mem),
                icount: false,
                clusters: machine.clusters,
            };
            let boot = QemuTest::boot_on(*board, resolved);
            (user_suite(&boot, initrd, programs), false)
        }
        None => {
            let mut runs = boot_matrix();
            runs.extend(crash_matrix());
            runs.extend(bad_bootargs_matrix());
            runs.extend(user_matrix(initrd, programs));
            runs.extend(migration_matrix(initrd, programs));
            runs.extend(trace_matrix(initrd, programs));
            runs.extend(asid_matrix(initrd));
            runs.extend(cluster_matrix(initrd, programs));
            runs.extend(init_args_matrix(initrd));
            runs.extend(fuzz_replay_matrix(initrd));
            runs.extend(bootstrap_matrix(initrd));
            runs.extend(shell_matrix(initrd));
            runs.extend(checks_matrix(initrd));
            runs.extend(soak_matrix(initrd, programs));
            (runs, selected(FAILED_CPU_TEST, &plan.filters))
        }
    };
    runs.retain(|t| selected(&t.name, &plan.filters));
    Ok((runs, failed_cpu))
}

/// Runs the host tests and the QEMU matrix as the plan says; exit code 0 only if everything
/// selected passed and something was.
pub fn run_all(plan: &Plan) -> Result<u8> {
    let timeout = Duration::from_secs(match std::env::var("ARMACH_TEST_TIMEOUT") {
        Ok(v) => v.trim().parse().map_err(|_| {
            Error::new(format!(
                "ARMACH_TEST_TIMEOUT must be a number of seconds, not `{v}`"
            ))
        })?,
        Err(_) => DEFAULT_TIMEOUT_SECS,
    });
    let jobs = match std::env::var("ARMACH_TEST_JOBS")
        .ok()
        .and_then(|v| v.trim().parse().ok())
    {
        Some(2..) => 2,
        _ => 1,
    };
    let programs = user_programs()?;
    let placeholder = target_dir().join("initrd.cpio");
    // Before anything else, so that a machine that cannot be is refused at once.
    let (selection, failed_cpu) = qemu_selection(plan, &placeholder, &programs)?;
    if plan.list {
        if plan.machine.is_none() {
            for name in host_test_names(&plan.filters)? {
                println!("{name}");
            }
        }
        for t in &selection {
            println!("{}", t.name);
        }
        if failed_cpu {
            println!("{FAILED_CPU_TEST}");
        }
        if plan.foreign.is_none() && plan.machine.is_none() && selected(FOREIGN_TEST, &plan.filters)
        {
            println!("{FOREIGN_TEST}");
        }
        return Ok(0);
    }
    // Prerequisites first: the host tests read the Pi 4 device tree from the cache (and
    // QEMU dumps its own version of it), so fetch it before they run. A failure here is
    // reported again by the QEMU runs that need it.
    if let Err(e) = prereq::ensure_rust_targets()
        .and_then(|()| prereq::ensure_qemu())
        .and_then(|()| prereq::ensure_pi4_dtb(&prereq::dtb_cache_dir()).map(drop))
    {
        println!("xtask: prerequisites: {e}");
    }
    let mut totals = match plan.machine {
        Some(_) => Totals::default(),
        None => host_tests(&plan.filters)?,
    };
    let mut matrix = Vec::new();
    if failed_cpu {
        match failed_cpu_test() {
            Ok(test) => matrix.push(test),
            Err(e) => {
                println!("FAIL {FAILED_CPU_TEST}: cannot prepare its device tree: {e}");
                totals.failed += 1;
            }
        }
    }
    if plan.foreign.is_none() && plan.machine.is_none() && selected(FOREIGN_TEST, &plan.filters) {
        match crate::foreign::build_contract() {
            Ok(f) => {
                let boot = QemuTest::boot(Board::Virt, 2, Gic::V3, false);
                if let Ok(machine) = Machine::resolve(boot.board, boot.options.clone()) {
                    matrix.push(QemuTest {
                        name: FOREIGN_TEST.to_owned(),
                        ..foreign_run(&boot, &f, &machine)
                    });
                }
            }
            Err(e) => {
                println!("FAIL {FOREIGN_TEST}: {e}");
                totals.failed += 1;
            }
        }
    }
    if plan.foreign.is_some() {
        matrix.extend(selection);
    } else if selection.iter().any(|t| t.initrd.is_some()) {
        match kernel::initrd() {
            Ok(initrd) => matrix.extend(selection.into_iter().map(|t| QemuTest {
                initrd: t.initrd.as_ref().map(|_| initrd.clone()),
                ..t
            })),
            Err(e) => {
                println!("FAIL user programs: {e}");
                totals.failed += 1;
                matrix.extend(selection.into_iter().filter(|t| t.initrd.is_none()));
            }
        }
    } else {
        matrix.extend(selection);
    }
    if !matrix.is_empty() {
        println!(
            "xtask: {} QEMU runs; each is named in its PASS/FAIL line (`--filter NAME` selects by name, `--list` lists them)",
            matrix.len()
        );
        let qemu_totals = qemu_matrix(&matrix, timeout, jobs);
        totals.passed += qemu_totals.passed;
        totals.failed += qemu_totals.failed;
    }
    let nothing = totals.passed + totals.failed == 0;
    if nothing {
        println!(
            "xtask: no test name contains {} (`cargo xtask test --list` shows the names)",
            plan.filters
                .iter()
                .map(|f| format!("`{f}`"))
                .collect::<Vec<_>>()
                .join(" or ")
        );
    }
    println!("{} passed, {} failed", totals.passed, totals.failed);
    Ok(u8::from(totals.failed > 0 || nothing))
}

/// `cargo test` on the default members (the host crates), counted test by test; with
/// filters, only the tests whose names contain one (libtest's own filter).
fn host_tests(filters: &[String]) -> Result<Totals> {
    let mut cmd = proc::cargo();
    cmd.args(["test"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped());
    if !filters.is_empty() {
        cmd.arg("--").args(filters);
    }
    println!("xtask: $ {}", proc::display(&cmd));
    let child = cmd
        .spawn()
        .map_err(|e| Error::io("cannot start cargo test", e))?;
    let out = child
        .wait_with_output()
        .map_err(|e| Error::io("waiting for cargo test", e))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let mut totals = parse_test_results(&stdout);
    if !out.status.success() && totals.failed == 0 {
        // It did not get as far as failing a test: a build error (shown above) or a crash.
        totals.failed = 1;
    }
    if totals.failed > 0 {
        print!("{}", failure_sections(&stdout));
        println!(
            "FAIL host tests: {} passed, {} failed",
            totals.passed, totals.failed
        );
    } else if totals.passed > 0 {
        println!("PASS host tests ({} passed)", totals.passed);
    }
    Ok(totals)
}

/// The host tests' names (`cargo test -- --list`), filtered.
fn host_test_names(filters: &[String]) -> Result<Vec<String>> {
    let mut cmd = proc::cargo();
    cmd.args(["test", "-q", "--", "--list"])
        .args(filters)
        .stdin(Stdio::null())
        .stderr(Stdio::null());
    let out = cmd
        .output()
        .map_err(|e| Error::io("cannot start cargo test -- --list", e))?;
    if !out.status.success() {
        return Err(Error::new(format!(
            "`{}` failed (run `cargo test` to see why)",
            proc::display(&cmd)
        )));
    }
    Ok(parse_test_list(&String::from_utf8_lossy(&out.stdout)))
}

/// Test names from libtest's `--list` output (`name: test` lines).
pub fn parse_test_list(output: &str) -> Vec<String> {
    output
        .lines()
        .filter_map(|l| l.strip_suffix(": test"))
        .map(str::to_owned)
        .collect()
}

/// Builds the kernel once and runs the matrix, at most `jobs` QEMUs at a time.
fn qemu_matrix(tests: &[QemuTest], timeout: Duration, jobs: usize) -> Totals {
    let setup = prereq::ensure_rust_targets()
        .and_then(|()| prereq::ensure_qemu())
        .and_then(|()| kernel::build_with(&["lockcheck"]));
    let image = match setup {
        Ok(image) => image,
        Err(e) => {
            for t in tests {
                println!("FAIL {}: {e}", t.name);
            }
            return Totals {
                passed: 0,
                failed: tests.len() as u64,
            };
        }
    };
    let pi4_dtb = if tests.iter().any(|t| t.board == Board::Rpi4) {
        prereq::ensure_pi4_dtb(&prereq::dtb_cache_dir()).map_err(|e| e.to_string())
    } else {
        Err(String::new())
    };
    let next = AtomicUsize::new(0);
    let totals = Mutex::new(Totals::default());
    let worker = || {
        while let Some(test) = tests.get(next.fetch_add(1, Ordering::Relaxed)) {
            let verdict = run_one(test, &image, &pi4_dtb, timeout);
            let mut totals = totals
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            match verdict {
                Ok(secs) => {
                    totals.passed += 1;
                    println!("PASS {} ({secs:.1}s)", test.name);
                }
                Err((reason, tail)) => {
                    totals.failed += 1;
                    println!("FAIL {}: {reason}", test.name);
                    for line in tail {
                        println!("    | {line}");
                    }
                }
            }
        }
    };
    std::thread::scope(|s| {
        for _ in 1..jobs {
            s.spawn(worker);
        }
        worker();
    });
    totals
        .into_inner()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// One run: `Ok(seconds)` or `Err((reason, last console lines))`.
fn run_one(
    test: &QemuTest,
    image: &Path,
    pi4_dtb: &std::result::Result<PathBuf, String>,
    timeout: Duration,
) -> std::result::Result<f64, (String, Vec<String>)> {
    run_one_console(test, image, pi4_dtb, timeout)
        .map(|(secs, _)| secs)
        .map_err(|(reason, _, tail)| (reason, tail))
}

/// A boot run of a machine given by options, for other commands' runs to start from.
pub fn boot_run(board: Board, options: MachineOptions) -> QemuTest {
    QemuTest::boot_on(board, options)
}

/// One run, with its console: `Ok((seconds, console))` or `Err((reason, console, last
/// console lines))`.
pub fn run_one_console(
    test: &QemuTest,
    image: &Path,
    pi4_dtb: &std::result::Result<PathBuf, String>,
    timeout: Duration,
) -> std::result::Result<(f64, String), (String, String, Vec<String>)> {
    let no_tail = |e: String| (e, String::new(), Vec::new());
    let machine =
        Machine::resolve(test.board, test.options.clone()).map_err(|e| no_tail(e.to_string()))?;
    let dtb = match test.board {
        Board::Rpi4 => Some(
            pi4_dtb
                .clone()
                .map_err(|e| no_tail(format!("no Pi 4 device tree: {e}")))?,
        ),
        Board::Virt => test.dtb.clone(),
    };
    let boot = Boot {
        kernel: image.to_path_buf(),
        initrd: test.initrd.clone(),
        dtb,
        bootargs: test.bootargs.clone(),
        gdb: false,
    };
    let args = qemu::command_line(&machine, &boot);
    let log = target_dir()
        .join("test-logs")
        .join(format!("{}.log", test.name));
    let timeout = test.timeout.map_or(timeout, |own| own.max(timeout));
    let outcome = qemu::run(
        &args,
        Some(timeout),
        Console::Capture {
            log: log.clone(),
            input: test.console_input.clone(),
            echo: false,
        },
    )
    .map_err(|e| no_tail(e.to_string()))?;
    let judged = judge(test, &outcome, timeout).and_then(|()| {
        if test.trace_check {
            crate::trace::check_console(&outcome.console)
                .map(|summary| println!("xtask: {}: trace checked: {summary}", test.name))
        } else {
            Ok(())
        }
    });
    if let Err(reason) = judged {
        let lines: Vec<&str> = outcome.console.lines().collect();
        let mut tail: Vec<String> = lines[lines.len().saturating_sub(TAIL_LINES)..]
            .iter()
            .map(|l| strip_escapes(l))
            .collect();
        tail.push(format!(
            "(full log: {}; command: {})",
            log.display(),
            proc::shell_words(qemu::QEMU, &args)
        ));
        return Err((reason, outcome.console, tail));
    }
    Ok((outcome.elapsed.as_secs_f64(), outcome.console))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcome(status: i32, console: &str) -> Outcome {
        Outcome {
            status,
            timed_out: false,
            console: console.to_owned(),
            elapsed: Duration::ZERO,
            script_unfinished: None,
        }
    }

    #[test]
    fn sums_libtest_results() {
        let out = "running 3 tests\n...\ntest result: ok. 3 passed; 0 failed; 1 ignored; 0 measured; 0 filtered out; finished in 0.01s\n\
                   \nrunning 2 tests\ntest result: FAILED. 1 passed; 1 failed; 0 ignored; 0 measured; 0 filtered out; finished in 0.00s\n\
                   test result: ok. 0 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out; finished in 0.00s\n";
        assert_eq!(
            parse_test_results(out),
            Totals {
                passed: 4,
                failed: 1
            }
        );
        assert_eq!(
            parse_test_results("error[E0308]: mismatched types\n"),
            Totals::default()
        );
    }

    #[test]
    fn extracts_failure_sections() {
        let out = "test a ... ok\ntest b ... FAILED\n\nfailures:\n\n---- b stdout ----\npanicked at x\n\nfailures:\n    b\n\n\
                   test result: FAILED. 1 passed; 1 failed; 0 ignored\nrunning 1 test\ntest c ... ok\n";
        let sections = failure_sections(out);
        assert!(sections.contains("panicked at x"));
        assert!(!sections.contains("test c"));
    }

    #[test]
    fn matrix_shape() {
        let m = boot_matrix();
        let names: Vec<&str> = m.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "virt-gicv2-smp1",
                "virt-gicv2-smp2",
                "virt-gicv2-smp4",
                "virt-gicv2-smp8",
                "virt-gicv3-smp4",
                "virt-gicv3-smp16",
                "virt-gicv2-el2-smp4",
                "virt-gicv3-el2-smp4",
                "raspi4b-smp4",
            ]
        );
        for t in &m {
            let machine = Machine::resolve(t.board, t.options.clone()).unwrap();
            assert_eq!(t.expect, [cpus_online(machine.smp)]);
            assert_eq!(t.bootargs, "halt-after=boot");
        }
        let rpi = m.last().unwrap();
        assert_eq!(rpi.expect, ["boot: 4 of 4 CPUs online"]);
        let programs = ["hello".to_owned(), "faults".to_owned()];
        assert!(user_matrix(Path::new("/i.cpio"), &[]).is_empty());
        let user = user_matrix(Path::new("/i.cpio"), &programs);
        assert_eq!(user.len(), 2 * USER_MACHINES.len());
        assert!(user.iter().all(|t| t.expect.is_empty()
            && t.expect_counts == [(USER_PASS_MARKER.to_owned(), 1)]
            && t.fail_on == [USER_FAIL_MARKER]));
        assert_eq!(user[0].name, "hello-virt-gicv2-smp1");
        assert_eq!(user[0].bootargs, "init=hello");
        assert!(user[0].expect_text.is_empty());
        assert!(
            user[1]
                .expect_text
                .iter()
                .any(|t| t.contains("EXC_SOFTWARE"))
        );
    }

    #[test]
    fn the_trace_runs_once_on_4_cpus_under_icount_as_two_tasks_and_is_checked() {
        let programs = ["hello".to_owned(), crate::trace::PROGRAM.to_owned()];
        let runs = trace_matrix(Path::new("/i.cpio"), &programs);
        assert_eq!(runs.len(), 1);
        let t = &runs[0];
        assert_eq!(t.name, "tracew-virt-gicv3-smp4");
        assert_eq!(t.bootargs, "init=tracew,tracew");
        assert_eq!(t.expect_counts, [(USER_PASS_MARKER.to_owned(), 2)]);
        assert!(t.options.icount && t.trace_check);
        assert!(trace_matrix(Path::new("/i.cpio"), &programs[..1]).is_empty());
        // Not in the user matrix.
        let user = user_matrix(Path::new("/i.cpio"), &programs);
        assert!(user.iter().all(|t| !t.name.starts_with("tracew")));
    }

    #[test]
    fn migration_runs_under_icount_on_their_own_machines() {
        let programs = ["hello".to_owned(), MIGRATION_PROGRAM.to_owned()];
        let user = user_matrix(Path::new("/i.cpio"), &programs);
        assert!(user.iter().all(|t| !t.name.starts_with("migration")));
        assert!(migration_matrix(Path::new("/i.cpio"), &["hello".to_owned()]).is_empty());
        let runs = migration_matrix(Path::new("/i.cpio"), &programs);
        let names: Vec<&str> = runs.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "migration-virt-gicv2-smp2",
                "migration-virt-gicv3-smp2",
                "migration-virt-gicv2-smp4",
                "migration-virt-gicv3-smp4",
                "migration-virt-gicv2-smp8",
                "migration-virt-gicv3-smp8-clusters2",
                "migration-raspi4b-smp4",
            ]
        );
        for t in &runs {
            assert!(t.options.icount, "{}", t.name);
            assert_eq!(t.bootargs, "init=migration");
            assert_eq!(t.timeout, Some(Duration::from_secs(MIGRATION_TIMEOUT_SECS)));
            let m = Machine::resolve(t.board, t.options.clone()).unwrap();
            let args = qemu::command_line(
                &m,
                &qemu::Boot {
                    kernel: "/k".into(),
                    initrd: None,
                    dtb: None,
                    bootargs: String::new(),
                    gdb: false,
                },
            );
            assert!(args.windows(2).any(|w| w[0] == "-icount"), "{}", t.name);
        }
        assert_eq!(runs[5].options.clusters, Some(2));
        // Asked for on one machine, it still runs under -icount.
        let boot = QemuTest::boot(Board::Virt, 2, Gic::V3, false);
        let one = user_suite(&boot, Path::new("/i.cpio"), &programs);
        assert!(!one[0].options.icount && one[0].timeout.is_none());
        assert!(one[1].options.icount && one[1].timeout.is_some());
    }

    #[test]
    fn markers_match_whole_lines_ends() {
        let console = "\x1b[32mINFO\x1b[0m boot: 4 of 4 CPUs online\r\nbye\n";
        assert!(console_has_line(console, "boot: 4 of 4 CPUs online"));
        assert!(!console_has_line(
            "boot: 4 of 14 CPUs online\n",
            "boot: 4 of 4 CPUs online"
        ));
        assert!(!console_has_line(
            "boot: 14 of 14 CPUs online\n",
            "boot: 4 of 4 CPUs online"
        ));
        assert!(!console_has_line(
            "boot: 4 of 4 CPUs online, 1 late\n",
            "boot: 4 of 4 CPUs online"
        ));
    }

    #[test]
    fn judging() {
        let t = QemuTest::boot(Board::Virt, 2, Gic::V2, false);
        let timeout = Duration::from_secs(60);
        assert!(judge(&t, &outcome(0, "boot: 2 of 2 CPUs online\n"), timeout).is_ok());
        let err = judge(&t, &outcome(0, "boot: 1 of 2 CPUs online\n"), timeout).unwrap_err();
        assert!(err.contains("lacks"), "{err}");
        let err = judge(&t, &outcome(3, "boot: 1 of 2 CPUs online\n"), timeout).unwrap_err();
        assert!(err.contains("a CPU failed to start"), "{err}");
        let err = judge(
            &t,
            &outcome(4, "gnumach-test-failure: x == 3, saw 4\n"),
            timeout,
        )
        .unwrap_err();
        assert!(err.contains("x == 3"), "{err}");
        let timed_out = Outcome {
            timed_out: true,
            ..outcome(124, "")
        };
        assert!(
            judge(&t, &timed_out, timeout)
                .unwrap_err()
                .contains("timed out after 60 s")
        );
    }

    #[test]
    fn isolation_runs_as_several_tasks_on_every_cpu_count() {
        let programs = ["isolation".to_owned()];
        let runs = user_matrix(Path::new("/i.cpio"), &programs);
        let names: Vec<&str> = runs.iter().map(|t| t.name.as_str()).collect();
        for smp in ["smp1", "smp2", "smp4", "smp8"] {
            assert!(names.iter().any(|n| n.ends_with(smp)), "{smp}: {names:?}");
        }
        assert!(names.contains(&"isolation-raspi4b-smp4"));
        for t in &runs {
            assert_eq!(t.bootargs, "init=isolation,isolation,isolation");
            assert_eq!(t.expect_counts, [(USER_PASS_MARKER.to_owned(), 3)]);
        }
        // No 8-CPU runs for the other programs.
        let hello = user_matrix(Path::new("/i.cpio"), &["hello".to_owned()]);
        assert!(hello.iter().all(|t| !t.name.ends_with("smp8")));
    }

    #[test]
    fn names_runs_through_bootstrap_on_every_user_machine() {
        let runs = user_matrix(Path::new("/i.cpio"), &["names".to_owned()]);
        assert_eq!(runs.len(), USER_MACHINES.len());
        for t in &runs {
            assert_eq!(t.bootargs, "init=bootstrap -- -f names.conf");
            assert_eq!(t.expect_counts, [(USER_PASS_MARKER.to_owned(), 1)]);
            assert!(
                t.expect_text
                    .iter()
                    .any(|l| l.contains("not restarted again"))
            );
        }
        assert!(runs.iter().any(|t| t.name == "names-raspi4b-smp4"));
        let b = bootstrap_matrix(Path::new("/i.cpio"));
        assert_eq!(
            b.iter().map(|t| t.name.as_str()).collect::<Vec<_>>(),
            [
                "bootstrap-words-virt-gicv3-smp2",
                "bootstrap-conf-virt-gicv3-smp2",
                "bootstrap-no-conf-virt-gicv3-smp2"
            ]
        );
    }

    #[test]
    fn success_lines_are_counted_per_task() {
        let t = user_matrix(Path::new("/i.cpio"), &["isolation".to_owned()]).remove(0);
        let timeout = Duration::from_secs(60);
        let pass = format!("{USER_PASS_MARKER}\n");
        let three = pass.repeat(3);
        assert!(judge(&t, &outcome(0, &three), timeout).is_ok());
        // One instance silent (it panicked, say): the other two cannot hide it.
        let err = judge(&t, &outcome(0, &pass.repeat(2)), timeout).unwrap_err();
        assert!(err.contains("2 times, expected 3"), "{err}");
        // One instance failed: fails whatever the others printed.
        let failed = format!("{three}gnumach-test-failure: isolation: 1 of 7 checks failed\n");
        assert!(judge(&t, &outcome(0, &failed), timeout).is_err());
        assert_eq!(
            count_lines(
                "x gnumach-test-success-and-reboot\nnotgnumach-test-success-and-reboot\n",
                USER_PASS_MARKER
            ),
            1
        );
    }

    #[test]
    fn checks_runs() {
        let runs = checks_matrix(Path::new("/i.cpio"));
        let names: Vec<&str> = runs.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "checks-psets-virt-gicv3-smp4",
                "checks-ipctasks-virt-gicv2-smp4",
                "checks-isolation-virt-gicv3-smp8",
                "checks-inject-runqueue-virt-gicv3-smp2"
            ]
        );
        for t in &runs[..3] {
            assert!(t.bootargs.starts_with("checks=1 init="));
            assert_eq!(t.status, 0);
            assert!(t.fail_on.iter().any(|l| l == CHECKS_FAILED));
            assert!(t.expect_text.iter().any(|l| l == CHECKS_CLEAN));
        }
        assert_eq!(runs[1].expect_counts[0].1, 2);
        let inject = &runs[3];
        assert_eq!(inject.status, 4);
        assert!(inject.bootargs.contains("checks-inject=runqueue"));
        assert!(!inject.fail_on.iter().any(|l| l == CHECKS_FAILED));
        assert!(
            inject
                .expect_text
                .iter()
                .any(|l| l.starts_with(CHECKS_FAILED))
        );
    }

    #[test]
    fn asid_and_crash_runs() {
        let runs = asid_matrix(Path::new("/i.cpio"));
        let names: Vec<&str> = runs.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "asid-rollover-hello-virt-gicv3-smp2",
                "asid-rollover-isolation-virt-gicv3-smp2"
            ]
        );
        assert!(runs[1].bootargs.starts_with("asid-bits=2 init=isolation,"));
        assert_eq!(runs[1].expect_counts[0].1, 4);
        assert!(runs.iter().all(|t| t.initrd.is_some()
            && t.expect_text.iter().any(|l| l.contains("rollover"))));
        let crash = crash_matrix();
        let alias = crash
            .iter()
            .find(|t| t.bootargs == "crash=write-text-alias")
            .unwrap();
        assert_eq!(alias.status, 2);
        assert!(
            alias
                .expect_text
                .iter()
                .any(|t| t.contains("permission fault"))
        );
    }

    #[test]
    fn bad_bootargs_runs() {
        let runs = bad_bootargs_matrix();
        assert_eq!(runs.len(), 2);
        for t in &runs {
            assert!(t.bootargs.starts_with("halt-after=boot "));
            assert!(t.expect.iter().any(|l| l.starts_with("bootargs: hz=")));
            assert!(
                t.expect
                    .iter()
                    .any(|l| l.starts_with("bootargs: loglevel="))
            );
            assert!(t.expect.contains(&cpus_online(2)));
        }
        assert_eq!(runs[0].name, "bootargs-bad-range-virt-gicv3-smp2");
    }

    #[test]
    fn filters_and_one_machine() {
        let programs = ["hello".to_owned(), "isolation".to_owned()];
        let initrd = Path::new("/i.cpio");
        let plan = |machine, filters: &[&str]| Plan {
            machine,
            filters: filters.iter().map(|f| (*f).to_owned()).collect(),
            list: false,
            foreign: None,
        };
        // Everything: boot, crash, bootargs and user runs, and the CPU-failure run.
        let (all, failed_cpu) = qemu_selection(&plan(None, &[]), initrd, &programs).unwrap();
        assert!(failed_cpu);
        assert!(all.len() > 2 * USER_MACHINES.len());
        // A filter picks by substring, any of several.
        let (some, failed_cpu) = qemu_selection(
            &plan(None, &["hello-virt-gicv2", "crash-panic"]),
            initrd,
            &programs,
        )
        .unwrap();
        assert!(!failed_cpu);
        let names: Vec<&str> = some.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "crash-panic-virt-gicv3-smp2",
                "hello-virt-gicv2-smp1",
                "hello-virt-gicv2-smp2",
                "hello-virt-gicv2-smp4",
            ]
        );
        // Machine options: the user-mode suite once on that machine, filter still applies.
        let rpi = Some((Board::Rpi4, MachineOptions::default()));
        let (runs, failed_cpu) = qemu_selection(&plan(rpi, &[]), initrd, &programs).unwrap();
        assert!(!failed_cpu);
        let names: Vec<&str> = runs.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, ["hello-raspi4b-smp4", "isolation-raspi4b-smp4"]);
        assert_eq!(runs[1].expect_counts[0].1, ISOLATION_INSTANCES);
        let a53 = Some((
            Board::Virt,
            MachineOptions {
                smp: Some(2),
                cpu: Some("cortex-a53".into()),
                mem: Some("1G".into()),
                ..MachineOptions::default()
            },
        ));
        let (runs, _) = qemu_selection(&plan(a53, &["iso"]), initrd, &programs).unwrap();
        assert_eq!(runs.len(), 1);
        assert_eq!(runs[0].name, "isolation-virt-gicv3-smp2-cortex-a53-1G");
        let m = Machine::resolve(runs[0].board, runs[0].options.clone()).unwrap();
        assert_eq!(
            (m.smp, m.cpu.as_str(), m.mem.as_str()),
            (2, "cortex-a53", "1G")
        );
        // A 32-bit CPU is refused before anything runs.
        let a15 = Some((
            Board::Virt,
            MachineOptions {
                cpu: Some("cortex-a15".into()),
                ..MachineOptions::default()
            },
        ));
        let err = qemu_selection(&plan(a15, &[]), initrd, &programs).unwrap_err();
        assert!(err.to_string().contains("AArch64"), "{err}");
        assert!(selected("x", &[]));
        assert!(!selected("x", &["y".to_owned()]));
    }

    #[test]
    fn lists_libtest_names() {
        let out = "test::tests::judging: test\nqemu::tests::virt_defaults: test\n\n2 tests, 0 benchmarks\n";
        assert_eq!(
            parse_test_list(out),
            ["test::tests::judging", "qemu::tests::virt_defaults"]
        );
    }

    #[test]
    fn cluster_run_boots_clusters_and_checks_the_log() {
        let initrd = Path::new("/t/initrd.cpio");
        let programs = vec!["psets".to_owned(), "hello".to_owned()];
        let runs = cluster_matrix(initrd, &programs);
        let names: Vec<&str> = runs.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, ["psets-virt-gicv3-smp8-clusters2"]);
        let machine = Machine::resolve(runs[0].board, runs[0].options.clone()).unwrap();
        assert_eq!((machine.smp, machine.clusters), (8, Some(2)));
        assert!(
            runs[0]
                .expect_text
                .contains(&"(8 CPUs in 2 clusters, ".to_owned())
        );
        assert!(cluster_matrix(initrd, &["hello".to_owned()]).is_empty());
    }

    #[test]
    fn device_runs_type_the_input_the_program_expects() {
        let programs = ["hello".to_owned(), DEVICE_PROGRAM.to_owned()];
        let user = user_matrix(Path::new("/i.cpio"), &programs);
        let device: Vec<&QemuTest> = user
            .iter()
            .filter(|t| t.name.starts_with("device-"))
            .collect();
        assert_eq!(device.len(), USER_MACHINES.len());
        assert!(device.iter().any(|t| t.name == "device-raspi4b-smp4"));
        for t in &device {
            let input = t.console_input.as_ref().unwrap();
            assert_eq!(input.steps.len(), 1);
            assert_eq!(input.steps[0].wait_for, DEVICE_PROMPT);
            assert_eq!(input.steps[0].then_type, DEVICE_INPUT.as_bytes());
            assert_eq!(t.expect_text, ["device: written with device_write_inband"]);
        }
        assert!(
            user.iter()
                .filter(|t| t.name.starts_with("hello-"))
                .all(|t| t.console_input.is_none())
        );
        // The program prints the same prompt and expects the same bytes.
        let source = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/src/bin/device.rs"),
        )
        .unwrap();
        assert!(source.contains(&format!("const PROMPT: &str = \"{DEVICE_PROMPT}\";")));
        let escaped = DEVICE_INPUT.replace('\n', "\\n");
        assert!(source.contains(&format!("const INPUT: &[u8] = b\"{escaped}\";")));
    }

    #[test]
    fn shell_runs_type_their_scripts_on_virt_and_the_pi() {
        let runs = shell_matrix(Path::new("/i.cpio"));
        let names: Vec<&str> = runs.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(
            names,
            ["msh-virt-gicv3-smp4", "msh-raspi4b-smp4", DEMO_TEST]
        );
        for t in &runs {
            assert_eq!(t.bootargs, SHELL_BOOTARGS);
            assert_eq!(t.status, 0);
            assert!(t.expect_counts.is_empty());
            assert_eq!(t.expect_text[0], crate::shell::HALTING);
            let steps = &t.console_input.as_ref().unwrap().steps;
            assert_eq!(steps[0].wait_for, crate::shell::PROMPT);
            assert!(steps.iter().all(|s| s.within.is_some()));
            let m = Machine::resolve(t.board, t.options.clone()).unwrap();
            assert_eq!(m.smp, 4);
        }
        let timeout = Duration::from_secs(60);
        let stuck = Outcome {
            script_unfinished: Some("console step 3 of 9: `x` did not appear".into()),
            ..outcome(0, "msh: halting\n")
        };
        assert!(
            judge(&runs[0], &stuck, timeout)
                .unwrap_err()
                .contains("step 3")
        );
        let full = format!("{}\nmsh: halting\n", crate::shell::SPAWNED_HELLO);
        assert!(judge(&runs[0], &outcome(0, &full), timeout).is_ok());
        // The spawned program's line is needed too.
        assert!(judge(&runs[0], &outcome(0, "msh: halting\n"), timeout).is_err());
        assert!(judge(&runs[0], &outcome(0, "msh> "), timeout).is_err());
    }
}
