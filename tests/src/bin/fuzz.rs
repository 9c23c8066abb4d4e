//! `fuzz`: hostile input from user mode (issue 14). Started as the first task (`init=fuzz`,
//! words after `--`: `seed=S`, `ops=K` operations per fuzzing thread), it is the harness: it
//! starts one worker task per CPU (this same program from the RAM disk, `fuzz worker ...`),
//! and while they run, moves their threads between processors and processor sets, creates
//! and destroys sets and empty tasks. Each worker runs two fuzzing threads, each with its own
//! stream of the seed, doing traps with random numbers and arguments, raw `mach_msg` calls
//! with random headers, descriptors, sizes, names, options and short timeouts, and requests
//! to the kernel's servers built by the generated stubs and then mutated ([`Mutator`]).
//! Every kernel answer must be a Mach code; anything else is printed with the op number and
//! fails the run. Workers create victim tasks and threads to act on; their own memory is
//! touched by the kernel only in a scratch region, and their own task and threads are never
//! terminated, suspended or rewritten by what they fuzz. At the end the harness terminates
//! every task but itself, so the kernel's leak check (every frame and heap byte back) judges
//! the run. Not a fuzzer of the harness's own IPC: reports are checked, not trusted.

#![no_std]
#![no_main]

extern crate alloc;

use alloc::vec::Vec;
use core::ffi::CStr;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use armach_tests::exc;
use armach_tests::fuzz::{self as fz, MutStats, Mutator, Rng, Scratch};
use armach_tests::host::lend;
use armach_tests::{Checks, println};
use libmach::abi::message::{
    MACH_MSG_TYPE_COPY_SEND, MACH_MSG_TYPE_INTEGER_32, MACH_MSG_TYPE_INTEGER_64,
    MACH_MSG_TYPE_MAKE_SEND, MACH_MSG_TYPE_MAKE_SEND_ONCE, MACH_MSG_TYPE_MOVE_SEND_ONCE, TypeDesc,
    notify, option,
};
use libmach::abi::mig::{PortArg, PortRight, ReceivedPort};
use libmach::abi::traps as tn;
use libmach::ipc::{self, ReceiveRight, SendRight};
use libmach::mig::exc_server::ExcServer;
use libmach::mig::{armach_sched, gnumach, mach, mach_host, mach_port};
use libmach::{Args, KernReturn, PortName, thread, traps};

libmach::main!(main);

const REPORT_ID: i32 = 0x4655_5a00;
const FUZZ_THREADS: u64 = 2;
const SCRATCH: u64 = 16 * 4096;
/// Where the fuzzing threads' scratch regions are, one every [`SCRATCH_STRIDE`] bytes.
const SCRATCH_BASE: u64 = 0x6000_0000_0000;
const SCRATCH_STRIDE: u64 = 1 << 24;
/// `TASK_EXCEPTION_PORT` (`mach/task_special_ports.h`).
const TASK_EXCEPTION_PORT: i32 = 3;
/// `EXC_SOFTWARE`, `EXC_AARCH64_SVC`.
const EXC_SOFTWARE: i32 = 5;

fn t() -> ipc::Client<ipc::Trap> {
    ipc::transport()
}

/// For calls on names the fuzzing may have changed (`fz::Patient`).
fn patient() -> fz::Patient {
    fz::Patient { timeout_ms: 2000 }
}

fn main(args: &Args) -> i32 {
    if args.str(3) == Some("worker") {
        return worker(args);
    }
    harness(args)
}

// ---------------------------------------------------------------- the worker

/// What the worker's threads share: counts and the names they must never hurt.
struct Shared {
    ops: AtomicU64,
    traps: AtomicU64,
    msgs: AtomicU64,
    migs: AtomicU64,
    mutated: AtomicU64,
    churn: AtomicU64,
    exceptions: AtomicU64,
    unexpected: AtomicU64,
    stop: AtomicBool,
}

static SHARED: Shared = Shared {
    ops: AtomicU64::new(0),
    traps: AtomicU64::new(0),
    msgs: AtomicU64::new(0),
    migs: AtomicU64::new(0),
    mutated: AtomicU64::new(0),
    churn: AtomicU64::new(0),
    exceptions: AtomicU64::new(0),
    unexpected: AtomicU64::new(0),
    stop: AtomicBool::new(false),
};

/// Protected names (own task, own threads, report and exception ports), filled before the
/// fuzzing threads start and read-only afterwards.
static PROTECTED: [AtomicU64; 8] = [const { AtomicU64::new(0) }; 8];
/// How many processor ports the harness gives the worker, under names from [`PROC_NAME`].
static NPROCS: AtomicU64 = AtomicU64::new(0);
const PROC_NAME: u32 = 0x200;

/// Fuzzing threads that have finished, and whether the exception handler has.
static FINISHED: AtomicU64 = AtomicU64::new(0);
static HANDLER_DONE: AtomicBool = AtomicBool::new(false);

/// What each fuzzing thread is doing: its op number, the kind (0 trap, 1 mach_msg, 2 MIG,
/// 3 churn) and the trap number or routine; the harness reads it from a worker that hangs.
static CURRENT: [[AtomicU64; 3]; 2] = [const { [const { AtomicU64::new(0) }; 3] }; 2];

/// Print every op from this op number on (`trace=N`; 0: none).
static TRACE_FROM: AtomicU64 = AtomicU64::new(0);

fn doing(k: u64, op: u64, kind: u64, what: u64) {
    let from = TRACE_FROM.load(Ordering::Relaxed);
    if from != 0 && op >= from {
        println!("fuzz: trace thread {k} op {op} kind {kind} what {what}");
    }
    let c = &CURRENT[k as usize % 2];
    c[0].store(op, Ordering::Relaxed);
    c[1].store(kind, Ordering::Relaxed);
    c[2].store(what, Ordering::Relaxed);
}

/// The worker's own threads' names (a subset of [`PROTECTED`]).
static OWN_THREADS: [AtomicU64; 4] = [const { AtomicU64::new(0) }; 4];

fn own_thread(name: PortName) {
    protect(name);
    for p in &OWN_THREADS {
        if p.compare_exchange(0, u64::from(name.0), Ordering::SeqCst, Ordering::SeqCst)
            .is_ok()
        {
            return;
        }
    }
}

fn protected() -> [PortName; 8] {
    core::array::from_fn(|i| PortName(PROTECTED[i].load(Ordering::Relaxed) as u32))
}

/// Never named by the fuzzing, but a request may still carry a protected name with its
/// disposition mutated to `MOVE_SEND` (the name as the destination of a request to our own
/// task or thread, or as a descriptor): each such message takes one user reference. A stock
/// of them keeps the name ours, so that the exception handler still knows our threads by
/// name (a fuzzing thread that lost its name was taken for a spare one and ended).
const PROTECTED_REFS: i32 = 20_000;

fn protect(name: PortName) {
    let _ = mach_port::mach_port_mod_refs(
        &mut t(),
        &ipc::task_self(),
        name,
        PortRight::Send as u32,
        PROTECTED_REFS,
    );
    for p in &PROTECTED {
        if p.compare_exchange(0, u64::from(name.0), Ordering::SeqCst, Ordering::SeqCst)
            .is_ok()
        {
            return;
        }
    }
}

struct ExcHandler;

impl ExcServer for ExcHandler {
    fn exception_raise(
        &mut self,
        _port: PortName,
        thread: PortName,
        task: PortName,
        exception: i32,
        code: i32,
        subcode: i64,
    ) -> Result<(), KernReturn> {
        let own = OWN_THREADS
            .iter()
            .any(|p| p.load(Ordering::Relaxed) == u64::from(thread.0));
        if !own {
            // A spare thread (made suspended, with no stack) that the fuzzing gave a random
            // state and resumed: it faulted at once, as it should. It goes.
            let _ = mach::thread_terminate(&mut patient(), &lend(thread));
        }
        let _ = traps::mach_port_deallocate(traps::mach_task_self(), thread);
        let _ = traps::mach_port_deallocate(traps::mach_task_self(), task);
        if !own {
            SHARED.exceptions.fetch_add(1, Ordering::Relaxed);
            return Ok(());
        }
        if exception == EXC_SOFTWARE && code == 1 {
            // An `svc` that is no trap: go on after it.
            SHARED.exceptions.fetch_add(1, Ordering::Relaxed);
            return Ok(());
        }
        println!(
            "fuzz: UNEXPECTED exception {} code {} subcode {:#x} in a worker",
            exception, code, subcode
        );
        SHARED.unexpected.fetch_add(1, Ordering::Relaxed);
        Err(KernReturn::Failure)
    }
}

fn serve_exceptions(port: PortName) {
    let mut req = exc::Buf::new();
    let mut reply = exc::Buf::new();
    while !SHARED.stop.load(Ordering::Relaxed) {
        if exc::receive(&mut req, port, Some(20)) == KernReturn::Success {
            let _ = exc::answer(&mut ExcHandler, &req, &mut reply, Some(10));
        }
    }
}

fn worker(args: &Args) -> i32 {
    let seed = args.str(4).and_then(|s| s.parse().ok()).unwrap_or(1u64);
    let ops = args.str(5).and_then(|s| s.parse().ok()).unwrap_or(1000u64);
    let index = args.str(6).and_then(|s| s.parse().ok()).unwrap_or(0u64);
    TRACE_FROM.store(
        args.str(8).and_then(|s| s.parse().ok()).unwrap_or(0u64),
        Ordering::Relaxed,
    );
    NPROCS.store(
        args.str(7).and_then(|s| s.parse().ok()).unwrap_or(0u64),
        Ordering::Relaxed,
    );
    let report = args.device_port().unwrap_or(PortName::NULL);
    let me = traps::mach_task_self();
    protect(me);
    protect(report);
    own_thread(traps::mach_thread_self());
    let Ok(exc) = traps::mach_port_allocate(me, PortRight::Receive) else {
        return 1;
    };
    let _ = traps::mach_port_insert_right(me, exc, exc, MACH_MSG_TYPE_MAKE_SEND);
    protect(exc);
    let _ =
        mach::task_set_special_port(&mut t(), &ipc::task_self(), TASK_EXCEPTION_PORT, &lend(exc));
    let handler = thread::spawn(move || {
        serve_exceptions(exc);
        HANDLER_DONE.store(true, Ordering::Release);
    })
    .ok();
    if let Some(h) = &handler {
        own_thread(h.port());
    }
    let mut threads = Vec::new();
    // Both threads' names are protected before either starts fuzzing.
    let start = &*alloc::boxed::Box::leak(alloc::boxed::Box::new(AtomicBool::new(false)));
    for k in 0..FUZZ_THREADS {
        let s = fz::stream_seed(seed, index, k);
        // The stubs' message buffers of every routine share one frame: a big stack.
        if let Ok(h) = thread::Builder::new().stack_size(1 << 20).spawn(move || {
            while !start.load(Ordering::Acquire) {
                libmach::yield_now();
            }
            fuzz_thread(s, ops, index, k);
            FINISHED.fetch_add(1, Ordering::Release);
        }) {
            own_thread(h.port());
            threads.push(h);
        }
    }
    start.store(true, Ordering::Release);
    // Not `join`: its dead-name notification port is a name of ours the fuzzing may destroy
    // (a join would then see the thread as gone too early); the threads count themselves.
    while FINISHED.load(Ordering::Acquire) < threads.len() as u64 {
        armach_tests::sleep_ms(10);
    }
    SHARED.stop.store(true, Ordering::Relaxed);
    while handler.is_some() && !HANDLER_DONE.load(Ordering::Acquire) {
        armach_tests::sleep_ms(10);
    }
    // Detached: the task's end reclaims their stacks.
    drop(threads);
    drop(handler);
    send_report(report, index);
    0
}

fn send_report(report: PortName, index: u64) {
    let s = &SHARED;
    let words = [
        index,
        s.ops.load(Ordering::Relaxed),
        s.traps.load(Ordering::Relaxed),
        s.msgs.load(Ordering::Relaxed),
        s.migs.load(Ordering::Relaxed),
        s.mutated.load(Ordering::Relaxed),
        s.churn.load(Ordering::Relaxed),
        s.exceptions.load(Ordering::Relaxed),
        s.unexpected.load(Ordering::Relaxed),
    ];
    let mut m = [0u64; 16];
    m[0] = u64::from(libmach::abi::message::msgh_bits(MACH_MSG_TYPE_COPY_SEND, 0)) | (120 << 32);
    m[1] = u64::from(report.0);
    m[3] = (REPORT_ID as u32 as u64) << 32;
    let d = TypeDesc {
        name: MACH_MSG_TYPE_INTEGER_64,
        size: 64,
        number: words.len() as u32,
        inline: true,
        longform: false,
        deallocate: false,
    };
    m[4] = u64::from(d.word()) | (u64::from(d.number) << 32);
    m[5..5 + words.len()].copy_from_slice(&words);
    // SAFETY: sends our own 120-byte buffer.
    let _ = unsafe {
        traps::mach_msg(
            m.as_mut_ptr().cast(),
            option::SEND_MSG | option::SEND_TIMEOUT,
            120,
            0,
            PortName::NULL,
            5000,
            PortName::NULL,
        )
    };
}

/// One fuzzing thread's state.
struct Fuzzer {
    rng: Rng,
    scratch: Scratch,
    /// Names it may hand to anything: victims, its ports, kernel objects, dead names.
    names: Vec<PortName>,
    victims: Vec<(SendRight, SendRight)>,
    /// Threads it made in its own task (suspended, never run).
    spare: Vec<SendRight>,
    ports: Vec<PortName>,
    host: PortName,
    sets: Vec<PortName>,
    id: (u64, u64),
    op: u64,
}

/// Known trap numbers (`mach-abi`'s `traps`), the ones that return a code.
const CODE_TRAPS: &[u32] = &[
    tn::MACH_MSG_TRAP,
    tn::MACH_PRINT,
    tn::THREAD_SWITCH,
    tn::VM_ALLOCATE,
    tn::VM_DEALLOCATE,
    tn::TASK_TERMINATE,
    tn::MACH_PORT_ALLOCATE,
    tn::MACH_PORT_DEALLOCATE,
    tn::MACH_PORT_INSERT_RIGHT,
    tn::MACH_PORT_ALLOCATE_NAME,
    tn::THREAD_SET_SELF_STATE,
    tn::temporary::EXCEPTION_RESUME,
];
const VALUE_TRAPS: &[u32] = &[
    tn::MACH_REPLY_PORT,
    tn::MACH_THREAD_SELF,
    tn::MACH_TASK_SELF,
    tn::MACH_HOST_SELF,
    tn::SWTCH_PRI,
    tn::SWTCH,
    tn::temporary::EVENT_WAIT,
    tn::temporary::EVENT_WAKE,
    tn::temporary::THREAD_TIMES,
    tn::temporary::KMEM_COUNTS,
    tn::temporary::RENDEZVOUS_LOOKUP,
];

/// Scratch region number `n`: far above anything placed anywhere (the kernel fills the
/// lowest free range first), so that a part of it the fuzzing unmaps stays a hole, never the
/// heap, a stack or received out-of-line data that the next write into scratch would
/// corrupt. (Placed anywhere, as it first was, it let long runs kill a worker with a data
/// abort on its own memory; [`scratch_holes_stay_holes`] replays that.)
fn scratch_region(n: u64) -> Result<u64, KernReturn> {
    traps::vm_allocate(
        traps::mach_task_self(),
        SCRATCH_BASE + n * SCRATCH_STRIDE,
        SCRATCH,
        false,
    )
}

/// A page unmapped inside a scratch region is not where the next allocation anywhere goes.
fn scratch_holes_stay_holes(c: &mut Checks) {
    let me = traps::mach_task_self();
    let Ok(base) = scratch_region(63) else {
        c.check(false, "a scratch region", format_args!("refused"));
        return;
    };
    let hole = base + 4096;
    // SAFETY: the region was just made here and nothing refers to it.
    let _ = unsafe { traps::vm_deallocate(me, hole, 4096) };
    let got = traps::vm_allocate(me, 0, 4096, true);
    c.check(
        got.is_ok_and(|a| !(base..base + SCRATCH).contains(&a)),
        "an allocation anywhere stays out of a hole in scratch",
        format_args!("{got:x?} (scratch {base:#x}, hole {hole:#x})"),
    );
    // SAFETY: both are this function's own fresh regions, referred to by nothing.
    unsafe {
        if let Ok(a) = got {
            let _ = traps::vm_deallocate(me, a, 4096);
        }
        let _ = traps::vm_deallocate(me, base, SCRATCH);
    }
}

fn fuzz_thread(seed: u64, ops: u64, index: u64, k: u64) {
    let Ok(base) = scratch_region(index * FUZZ_THREADS + k) else {
        println!("fuzz: worker {index}.{k}: no scratch region");
        SHARED.unexpected.fetch_add(1, Ordering::Relaxed);
        return;
    };
    let mut f = Fuzzer {
        rng: Rng(seed),
        scratch: Scratch {
            base,
            size: SCRATCH,
        },
        names: Vec::new(),
        victims: Vec::new(),
        spare: Vec::new(),
        ports: Vec::new(),
        host: traps::mach_host_self(),
        sets: Vec::new(),
        id: (index, k),
        op: 0,
    };
    f.names.push(f.host);
    if let Ok(out) = mach_host::host_processor_sets(&mut t(), &lend(f.host)) {
        out.processor_sets.take_all(|r| {
            if let ReceivedPort::Send(s) = r {
                f.sets.push(s.into_name());
            }
        });
    }
    let sets = f.sets.clone();
    f.names.extend(sets);
    for _ in 0..2 {
        f.new_victim();
        f.new_port();
    }
    let mut spent = [0u64; 4];
    while f.op < ops {
        f.op += 1;
        SHARED.ops.fetch_add(1, Ordering::Relaxed);
        let kind = f.rng.below(20);
        let t0 = armach_tests::counter();
        let slot = match kind {
            0..=5 => {
                doing(k, f.op, 0, 0);
                f.trap_op();
                0
            }
            6..=10 => {
                doing(k, f.op, 1, 0);
                f.msg_op();
                1
            }
            11..=18 => {
                doing(k, f.op, 2, 0);
                f.mig_op();
                2
            }
            _ => {
                doing(k, f.op, 3, 0);
                f.churn_op();
                3
            }
        };
        spent[slot] += armach_tests::counter() - t0;
        if f.op.is_multiple_of(100) {
            println!("fuzz: worker {index}.{k}: {} ops", f.op);
        }
    }
    let us = armach_tests::counter_frequency() / 1_000_000;
    println!(
        "fuzz: worker {index}.{k}: done; us in traps {}, mach_msg {}, MIG {}, churn {}",
        spent[0] / us.max(1),
        spent[1] / us.max(1),
        spent[2] / us.max(1),
        spent[3] / us.max(1)
    );
    for (task, _) in f.victims.drain(..) {
        let _ = mach::task_terminate(&mut patient(), &task);
    }
    for th in f.spare.drain(..) {
        let _ = mach::thread_terminate(&mut patient(), &th);
    }
}

impl Fuzzer {
    fn unexpected(&mut self, what: &str, value: u64) {
        SHARED.unexpected.fetch_add(1, Ordering::Relaxed);
        println!(
            "fuzz: UNEXPECTED worker {}.{} op {}: {} returned {:#x}, not a Mach code",
            self.id.0, self.id.1, self.op, what, value
        );
    }

    fn check_code(&mut self, what: &str, x0: u64) {
        if !fz::is_code(x0) {
            self.unexpected(what, x0);
        }
    }

    fn check<T>(&mut self, what: &str, r: Result<T, KernReturn>) -> Option<T> {
        if let Err(c) = fz::result_ok(&r) {
            self.unexpected(what, c as u32 as u64);
        }
        r.ok()
    }

    fn is_protected(&self, n: u32) -> bool {
        n != 0 && protected().iter().any(|p| p.0 == n)
    }

    /// A name for anything: one we hold, a small number, a random one; never protected.
    fn name(&mut self) -> PortName {
        loop {
            let procs = NPROCS.load(Ordering::Relaxed);
            let n = match self.rng.below(7) {
                0..=2 if !self.names.is_empty() => self.rng.pick(&self.names).0,
                6 if procs > 0 => PROC_NAME + self.rng.below(procs) as u32,
                3 => self.rng.below(64) as u32,
                4 => self.rng.int() as u32,
                _ => self.rng.next_u64() as u32,
            };
            if !self.is_protected(n) {
                return PortName(n);
            }
        }
    }

    fn victim_task(&mut self) -> Option<PortName> {
        (!self.victims.is_empty()).then(|| {
            let i = self.rng.below(self.victims.len() as u64) as usize;
            self.victims[i].0.name()
        })
    }

    fn victim_thread(&mut self) -> Option<PortName> {
        (!self.victims.is_empty()).then(|| {
            let i = self.rng.below(self.victims.len() as u64) as usize;
            self.victims[i].1.name()
        })
    }

    fn new_victim(&mut self) {
        // Every name here may be changed by the other fuzzing thread meanwhile, the oldest
        // victim's above all: calls with timeouts (`fz::Patient`).
        let mut tr = patient();
        let Some(out) = self.check(
            "task_create",
            mach::task_create(&mut tr, &ipc::task_self(), false),
        ) else {
            return;
        };
        let task = out.child_task;
        let mut at = 0u64;
        let _ = mach::vm_allocate(&mut tr, &task, &mut at, 4 * 4096, true);
        let _ = mach::vm_write(&mut tr, &task, at, &[0x5au8; 4096]);
        let Ok(th) = mach::thread_create(&mut tr, &task) else {
            let _ = mach::task_terminate(&mut tr, &task);
            return;
        };
        let th = th.child_thread;
        self.names.push(task.name());
        self.names.push(th.name());
        self.victims.push((task, th));
        if self.victims.len() > 3 {
            let (task, _) = self.victims.remove(0);
            let _ = mach::task_terminate(&mut tr, &task);
        }
        if self.names.len() > 64 {
            self.names.drain(..16);
        }
    }

    fn new_port(&mut self) {
        let me = traps::mach_task_self();
        let right = if self.rng.chance(20) {
            PortRight::PortSet
        } else {
            PortRight::Receive
        };
        if let Ok(p) = traps::mach_port_allocate(me, right) {
            if right == PortRight::Receive {
                let _ = traps::mach_port_insert_right(me, p, p, MACH_MSG_TYPE_MAKE_SEND);
            }
            self.ports.push(p);
            self.names.push(p);
        }
        if self.ports.len() > 6 {
            let p = self.ports.remove(0);
            let _ = mach_port::mach_port_destroy(&mut t(), &ipc::task_self(), p);
        }
    }

    /// A task to act on: a victim, or (rarely, for routines that cannot hurt) our own.
    fn task(&mut self, own_ok: bool) -> (PortName, bool) {
        if own_ok && self.rng.chance(25) {
            return (traps::mach_task_self(), true);
        }
        match self.rng.below(5) {
            0 => (self.name(), false),
            _ => (self.victim_task().unwrap_or(PortName(0)), false),
        }
    }

    fn thread(&mut self, own_ok: bool) -> (PortName, bool) {
        if own_ok && self.rng.chance(25) {
            let own = OWN_THREADS[self.rng.below(4) as usize].load(Ordering::Relaxed) as u32;
            if own != 0 {
                return (PortName(own), true);
            }
        }
        match self.rng.below(5) {
            0 => (self.name(), false),
            _ => (self.victim_thread().unwrap_or(PortName(0)), false),
        }
    }

    fn ptr(&mut self) -> u64 {
        fz::pointer(&mut self.rng, &self.scratch)
    }

    /// A pointer the kernel may write `len` bytes through: inside scratch, or bad.
    fn out_ptr(&mut self, len: u64) -> u64 {
        loop {
            let p = self.ptr();
            if self.scratch.contains(p, len.max(1)) || !self.maybe_ours(p) {
                return p;
            }
        }
    }

    /// Whether `p` could be the program's own writable memory (anything below FAR that is
    /// not text or scratch).
    fn maybe_ours(&self, p: u64) -> bool {
        (0x1_0000..fz::FAR).contains(&p) && !(fz::TEXT..fz::TEXT + 0x4000).contains(&p)
            || (SCRATCH_BASE..SCRATCH_BASE + (1 << 32)).contains(&p)
            || (0x7fff_0000_0000..0x8000_0000_0000).contains(&p)
    }

    // ------------------------------------------------------------ traps

    fn trap_op(&mut self) {
        SHARED.traps.fetch_add(1, Ordering::Relaxed);
        let r = &mut self.rng;
        let number: u32 = match r.below(10) {
            0..=4 => r.pick(CODE_TRAPS),
            5..=6 => r.pick(VALUE_TRAPS),
            7 => r.below(2048) as u32,
            8 => (r.below(64) as u32).wrapping_neg(),
            _ => r.next_u64() as u32,
        };
        let mut a = [0u64; 6];
        for v in &mut a {
            *v = match self.rng.below(4) {
                0 => u64::from(self.name().0),
                1 => self.ptr(),
                2 => self.rng.size(),
                _ => self.rng.int(),
            };
        }
        // No random value may be a protected name (the arguments set below for particular
        // traps are set on purpose).
        for v in a.iter_mut() {
            if self.is_protected(*v as u32) && *v >> 32 == 0 {
                *v = 0;
            }
        }
        let me = u64::from(traps::mach_task_self().0);
        let checked = CODE_TRAPS.contains(&number);
        match number {
            tn::MACH_MSG_TRAP => return self.msg_op(),
            tn::MACH_PRINT => {
                // Bad pointers only (text or scratch would print garbage).
                a[0] = match self.rng.below(4) {
                    0 => 0,
                    1 => fz::KERNEL + self.rng.below(1 << 30),
                    2 => fz::FAR + self.rng.below(1 << 30),
                    _ => u64::MAX - self.rng.below(64),
                };
            }
            tn::THREAD_SWITCH => {
                a[1] = self.rng.below(4);
                a[2] = self.rng.below(3);
            }
            tn::VM_ALLOCATE => {
                if self.rng.chance(50) {
                    a[0] = me;
                }
                a[1] = self.out_ptr(8);
            }
            // Our own task only with a range of scratch.
            tn::VM_DEALLOCATE if self.rng.chance(40) || a[0] == me => {
                a[0] = me;
                let (p, rest) = self.scratch.inside(&mut self.rng);
                a[1] = p;
                a[2] = self.rng.below(rest + 1);
            }
            tn::TASK_TERMINATE => {
                a[0] = u64::from(self.victim_task().unwrap_or(PortName(0)).0);
                if self.rng.chance(30) {
                    a[0] = u64::from(self.name().0);
                }
            }
            tn::MACH_PORT_ALLOCATE | tn::MACH_PORT_ALLOCATE_NAME => {
                a[2] = self.out_ptr(4);
                if tn::MACH_PORT_ALLOCATE_NAME == number {
                    a[2] = u64::from(self.name().0);
                }
                if self.rng.chance(60) {
                    a[0] = me;
                }
            }
            tn::MACH_PORT_DEALLOCATE | tn::MACH_PORT_INSERT_RIGHT if self.rng.chance(60) => {
                a[0] = me;
            }
            // A state the kernel could read would become ours: the registers (flavor 1) or
            // the FP/SIMD registers (2) only from a pointer the kernel cannot read.
            tn::THREAD_SET_SELF_STATE if a[0] < 16 => {
                a[1] = fz::KERNEL + self.rng.below(1 << 20);
            }
            tn::temporary::EXCEPTION_RESUME => {
                a[0] = if self.rng.chance(50) { 0 } else { a[0] | 1 };
            }
            tn::temporary::EVENT_WAIT => a[1] = 1 + self.rng.below(2),
            tn::MACH_REPLY_PORT => {
                // A receive right we would never destroy: give it back at once.
                // SAFETY: takes no argument.
                let n = unsafe { traps::syscall(number, a) }.x0;
                let _ = mach_port_destroy_raw(PortName(n as u32));
                return;
            }
            tn::MACH_THREAD_SELF | tn::MACH_TASK_SELF | tn::MACH_HOST_SELF => {
                // One more reference on a name we hold; drop it again.
                // SAFETY: takes no argument.
                let n = unsafe { traps::syscall(number, a) }.x0;
                let _ = traps::mach_port_deallocate(traps::mach_task_self(), PortName(n as u32));
                return;
            }
            _ => {}
        }
        if number == tn::MACH_PORT_DEALLOCATE && self.is_protected(a[1] as u32) {
            return;
        }
        // Every pointer argument the kernel may write through is scratch or no memory of ours
        // (`out_ptr`), our own task is only given to traps that cannot hurt it with the
        // arguments set above, and a number that is no trap raises EXC_SOFTWARE, which our
        // handler answers so that we go on after the `svc`.
        doing(self.id.1, self.op, 0, u64::from(number));
        // SAFETY: see above.
        let x0 = unsafe { traps::syscall(number, a) }.x0;
        if checked {
            self.check_code("trap", x0);
        }
    }

    // ------------------------------------------------------------ mach_msg

    fn msg_op(&mut self) {
        SHARED.msgs.fetch_add(1, Ordering::Relaxed);
        let mut buf = [0u64; 64];
        let r = &mut self.rng;
        let disp = |r: &mut Rng| -> u32 {
            match r.below(4) {
                0 => 0,
                1 => r.below(32) as u32,
                _ => r.pick(&[17u32, 18, 19, 20, 21]),
            }
        };
        let remote = disp(r);
        let local = disp(r);
        let complex = if r.chance(50) { 0x8000_0000 } else { 0 };
        let bits = if r.chance(10) {
            r.next_u64() as u32
        } else {
            complex | remote | local << 8
        };
        let dest = self.name();
        let reply = self.name();
        let id = if self.rng.chance(50) {
            self.rng.below(6000) as u32
        } else {
            self.rng.next_u64() as u32
        };
        // The body: a few items.
        let mut at = 4usize; // in words
        let items = self.rng.below(5);
        for _ in 0..items {
            if at + 6 > buf.len() {
                break;
            }
            let kind = self.rng.below(4);
            let mut d = TypeDesc {
                name: MACH_MSG_TYPE_INTEGER_32,
                size: 32,
                number: 1 + self.rng.below(4) as u32,
                inline: true,
                longform: false,
                deallocate: false,
            };
            match kind {
                0 => {}
                1 => {
                    d.name = self.rng.pick(&[16u8, 17, 18, 19, 20, 21, 15, 3]);
                    d.size = if self.rng.chance(80) {
                        64
                    } else {
                        self.rng.below(256) as u16
                    };
                    d.number = 1 + self.rng.below(2) as u32;
                }
                2 => {
                    d.inline = false;
                    d.name = if self.rng.chance(70) {
                        9
                    } else {
                        self.rng.pick(&[17u8, 19, 20])
                    };
                    d.size = if d.name == 9 { 8 } else { 64 };
                    d.number = self.rng.size() as u32;
                }
                _ => {
                    let w = self.rng.next_u64() as u32 & !(1 << 31);
                    d = TypeDesc::from_words(w, self.rng.int() as u32);
                    d.deallocate = false;
                }
            }
            buf[at] = u64::from(d.word()) | (u64::from(d.number) << 32);
            at += 1;
            if d.inline {
                for _ in 0..2 {
                    buf[at] = if libmach::abi::message::is_port_right(d.name) {
                        u64::from(self.name().0)
                    } else {
                        self.rng.int()
                    };
                    at += 1;
                }
            } else {
                buf[at] = self.ptr();
                at += 1;
            }
        }
        let mut size = (at * 8) as u32;
        if self.rng.chance(15) {
            size = self.rng.below(600) as u32;
        }
        buf[0] = u64::from(bits) | (u64::from(size) << 32);
        buf[1] = u64::from(dest.0);
        buf[2] = u64::from(reply.0);
        buf[3] = u64::from(id) << 32;
        let mut opt = match self.rng.below(4) {
            0 => option::SEND_MSG,
            1 => option::RCV_MSG,
            _ => option::SEND_MSG | option::RCV_MSG,
        };
        for extra in [
            option::SEND_NOTIFY,
            option::SEND_CANCEL,
            option::RCV_NOTIFY,
            option::RCV_LARGE,
            option::SEND_INTERRUPT,
            option::RCV_INTERRUPT,
        ] {
            if self.rng.chance(8) {
                opt |= extra;
            }
        }
        if self.rng.chance(5) {
            opt |= (self.rng.next_u64() as u32) & !0xfff;
        }
        opt |= option::SEND_TIMEOUT | option::RCV_TIMEOUT;
        let timeout = self.rng.below(3) as u32;
        let rcv_name = match self.rng.below(3) {
            0 if !self.ports.is_empty() => self.rng.pick(&self.ports),
            _ => self.name(),
        };
        let notify = self.name();
        let (ptr, rcv_size) = if self.rng.chance(70) {
            (buf.as_mut_ptr() as u64, self.rng.below(513) as u32)
        } else {
            let len = self.rng.size();
            let p = self.out_ptr(len);
            let len = if self.scratch.contains(p, 1) {
                self.rng
                    .below(self.scratch.base + self.scratch.size - p + 1)
            } else {
                len
            };
            (p, len as u32)
        };
        let send_size = if self.rng.chance(80) {
            size.min(512)
        } else {
            self.rng.below(600) as u32
        };
        // The send half reads from our buffer (or bad memory): only the buffer is ours.
        let (send_ptr, send_size) = if ptr == buf.as_mut_ptr() as u64 {
            (ptr, send_size.min(512))
        } else {
            (ptr, send_size)
        };
        if TRACE_FROM.load(Ordering::Relaxed) != 0 && self.op >= TRACE_FROM.load(Ordering::Relaxed)
        {
            println!(
                "fuzz: trace msg opt {opt:#x} send {send_size} rcv {rcv_size} rcv_name {:#x} notify {:#x} ptr ours {} words {:x?}",
                rcv_name.0,
                notify.0,
                send_ptr == buf.as_ptr() as u64,
                &buf[..at.min(12)]
            );
        }
        // SAFETY: the receive writes at most `rcv_size` bytes at `ptr`: our 512-byte buffer
        // (bounded above), scratch (bounded), or memory that is not ours. Out-of-line regions
        // named are read, never deallocated (the bit is never set).
        let r = unsafe {
            traps::mach_msg(
                send_ptr as *mut u8,
                opt,
                send_size,
                rcv_size,
                rcv_name,
                timeout,
                notify,
            )
        };
        if let KernReturn::Other(c) = r {
            self.unexpected("mach_msg", c as u32 as u64);
        }
    }

    // ------------------------------------------------------------ MIG

    fn mig_op(&mut self) {
        SHARED.migs.fetch_add(1, Ordering::Relaxed);
        let protected = protected();
        let routine = self.rng.below(44);
        doing(self.id.1, self.op, 2, routine);
        let trace = TRACE_FROM.load(Ordering::Relaxed);
        let (task, own_task) = self.task(true);
        let (thread, own_thread) = self.thread(true);
        let name = self.name();
        let other = self.name();
        let i1 = self.rng.int();
        let i2 = self.rng.int();
        let scratch = self.scratch;
        let (sp, srest) = scratch.inside(&mut self.rng);
        let ptr = self.ptr();
        let mut seed = Rng(self.rng.next_u64());
        let mut m = Mutator {
            rng: &mut seed,
            protected: &protected,
            rate: 50,
            stats: MutStats::default(),
        };
        if trace != 0 && self.op >= trace {
            println!(
                "fuzz: trace MIG {routine}: task {:#x} (own {own_task}), thread {:#x} (own {own_thread}), name {:#x}, other {:#x}, i1 {i1:#x}, i2 {i2:#x}",
                task.0, thread.0, name.0, other.0
            );
        }
        let tk = lend(task);
        let th = lend(thread);
        let nm = lend(name);
        let ot = lend(other);
        let host = lend(self.host);
        let mut info = [0i32; 64];
        let flavor = (i1 % 8) as i32 + if i2.is_multiple_of(5) { 100 } else { 0 };
        let cnt = (i2 % 70) as usize;
        // Own-task VM routines act on scratch only.
        let (addr, size) = if own_task {
            (sp, i2 % (srest + 1))
        } else {
            (ptr, i2)
        };
        macro_rules! call {
            ($what:literal, $e:expr) => {{
                let bad = fz::result_ok(&$e).err();
                if let Some(c) = bad {
                    self.unexpected($what, c as u32 as u64);
                }
            }};
        }
        match routine {
            0 => call!(
                "task_info",
                mach::task_info(&mut m, &tk, flavor, &mut info[..cnt.min(64)])
            ),
            1 => call!("task_threads", mach::task_threads(&mut m, &tk)),
            2 => call!(
                "thread_info",
                mach::thread_info(&mut m, &th, flavor, &mut info[..cnt.min(64)])
            ),
            3 => {
                let mut st = [0u32; 64];
                call!(
                    "thread_get_state",
                    mach::thread_get_state(&mut m, &th, flavor, &mut st[..cnt.min(64)])
                )
            }
            4 if !own_thread => {
                let st = [self.rng.int() as u32; 64];
                call!(
                    "thread_set_state",
                    mach::thread_set_state(&mut m, &th, flavor, &st[..cnt.min(64)])
                )
            }
            5 => {
                let mut a = addr;
                call!(
                    "vm_allocate",
                    mach::vm_allocate(&mut m, &tk, &mut a, size, i1 & 1 == 0 || own_task)
                )
            }
            6 => call!(
                "vm_deallocate",
                mach::vm_deallocate(&mut m, &tk, addr, size)
            ),
            7 => call!(
                "vm_protect",
                mach::vm_protect(&mut m, &tk, addr, size, i1 & 1 == 0, (i1 >> 1) as i32 & 7)
            ),
            8 => call!(
                "vm_inherit",
                mach::vm_inherit(&mut m, &tk, addr, size, (i1 % 4) as i32)
            ),
            9 => call!("vm_read", mach::vm_read(&mut m, &tk, ptr, i2 % (1 << 20))),
            10 => {
                let data = [0xa5u8; 4096];
                let len = (i1 % 4097) as usize;
                call!("vm_write", mach::vm_write(&mut m, &tk, addr, &data[..len]))
            }
            11 => call!("vm_copy", mach::vm_copy(&mut m, &tk, ptr, size, addr)),
            12 => {
                let mut a = ptr;
                call!("vm_region", mach::vm_region(&mut m, &tk, &mut a))
            }
            13 => call!("vm_statistics", mach::vm_statistics(&mut m, &tk)),
            14 if !own_task => call!("task_suspend", mach::task_suspend(&mut m, &tk)),
            15 => call!("task_resume", mach::task_resume(&mut m, &tk)),
            16 if !own_task => call!("task_terminate", mach::task_terminate(&mut m, &tk)),
            17 => call!("task_create", {
                let r = mach::task_create(&mut m, &tk, i1 & 1 == 0);
                if let Ok(out) = &r {
                    let _ = mach::task_terminate(&mut patient(), &out.child_task);
                }
                r
            }),
            18 if !own_task => call!("thread_create", {
                let r = mach::thread_create(&mut m, &tk);
                if let Ok(out) = &r {
                    let _ = mach::thread_terminate(&mut patient(), &out.child_thread);
                }
                r
            }),
            19 if !own_thread => call!("thread_suspend", mach::thread_suspend(&mut m, &th)),
            20 => call!("thread_resume", mach::thread_resume(&mut m, &th)),
            21 => call!("thread_abort", mach::thread_abort(&mut m, &th)),
            22 if !own_thread => call!("thread_terminate", mach::thread_terminate(&mut m, &th)),
            23 => call!(
                "task_get_special_port",
                mach::task_get_special_port(&mut m, &tk, (i1 % 6) as i32)
            ),
            24 if !own_task => call!(
                "task_set_special_port",
                mach::task_set_special_port(&mut m, &tk, (i1 % 6) as i32, &nm)
            ),
            25 => call!("mach_ports_lookup", mach::mach_ports_lookup(&mut m, &tk)),
            26 if !own_task => call!(
                "mach_ports_register",
                mach::mach_ports_register(
                    &mut m,
                    &tk,
                    &[name, other, PortName((i1 as u32) | 1)][..(i2 % 5) as usize % 4]
                )
            ),
            27 => call!("mach_port_names", mach_port::mach_port_names(&mut m, &tk)),
            28 => call!(
                "mach_port_type",
                mach_port::mach_port_type(&mut m, &tk, name)
            ),
            29 => call!(
                "mach_port_allocate",
                mach_port::mach_port_allocate(&mut m, &tk, (i1 % 6) as u32)
            ),
            30 => call!(
                "mach_port_destroy",
                mach_port::mach_port_destroy(&mut m, &tk, name)
            ),
            31 => call!(
                "mach_port_mod_refs",
                mach_port::mach_port_mod_refs(&mut m, &tk, name, (i1 % 6) as u32, (i2 as i32) % 4)
            ),
            32 => call!(
                "mach_port_get_refs",
                mach_port::mach_port_get_refs(&mut m, &tk, name, (i1 % 6) as u32)
            ),
            33 => call!(
                "mach_port_rename",
                mach_port::mach_port_rename(&mut m, &tk, name, other)
            ),
            34 => call!(
                "mach_port_move_member",
                mach_port::mach_port_move_member(&mut m, &tk, name, other)
            ),
            35 => call!(
                "mach_port_request_notification",
                mach_port::mach_port_request_notification(
                    &mut m,
                    &tk,
                    name,
                    (i1 % 80) as i32,
                    (i2 % 3) as u32,
                    PortArg::Raw(
                        other,
                        self.rng.pick(&[
                            0u8,
                            MACH_MSG_TYPE_MAKE_SEND_ONCE,
                            MACH_MSG_TYPE_MOVE_SEND_ONCE,
                            19,
                            20,
                            17
                        ])
                    )
                )
            ),
            36 => call!(
                "mach_port_insert_right",
                mach_port::mach_port_insert_right(
                    &mut m,
                    &tk,
                    name,
                    PortArg::Raw(other, self.rng.pick(&[16u8, 17, 18, 19, 20, 21, 0]))
                )
            ),
            37 => call!(
                "mach_port_extract_right",
                mach_port::mach_port_extract_right(&mut m, &tk, name, (16 + i1 % 7) as u32)
            ),
            38 => call!(
                "mach_port_set_qlimit",
                mach_port::mach_port_set_qlimit(&mut m, &tk, name, (i1 % 20) as u32)
            ),
            39 => {
                let proc_name = self.name();
                let pr = lend(proc_name);
                match i1 % 14 {
                    0 => call!(
                        "host_info",
                        mach_host::host_info(&mut m, &host, flavor, &mut info[..cnt.min(64)])
                    ),
                    1 => call!(
                        "processor_set_info",
                        mach_host::processor_set_info(
                            &mut m,
                            &nm,
                            flavor,
                            &mut info[..cnt.min(64)]
                        )
                    ),
                    2 => call!(
                        "processor_info",
                        mach_host::processor_info(&mut m, &pr, flavor, &mut info[..cnt.min(64)])
                    ),
                    3 => call!(
                        "processor_set_default",
                        mach_host::processor_set_default(&mut m, &host)
                    ),
                    4 => call!("thread_assign", mach_host::thread_assign(&mut m, &th, &nm)),
                    5 => call!(
                        "thread_assign_default",
                        mach_host::thread_assign_default(&mut m, &th)
                    ),
                    6 => call!(
                        "task_assign",
                        mach_host::task_assign(&mut m, &tk, &nm, i2 & 1 == 0)
                    ),
                    7 => call!(
                        "thread_priority",
                        mach_host::thread_priority(&mut m, &th, (i2 % 70) as i32, i2 & 1 == 0)
                    ),
                    8 => call!(
                        "task_priority",
                        mach_host::task_priority(&mut m, &tk, (i2 % 70) as i32, i2 & 1 == 0)
                    ),
                    9 => call!(
                        "processor_set_tasks",
                        mach_host::processor_set_tasks(&mut m, &nm)
                    ),
                    10 => call!(
                        "processor_set_threads",
                        mach_host::processor_set_threads(&mut m, &nm)
                    ),
                    11 => call!(
                        "processor_set_processors",
                        mach_host::processor_set_processors(&mut m, &nm)
                    ),
                    12 => call!("host_get_time", mach_host::host_get_time(&mut m, &host)),
                    _ => call!(
                        "processor_set_max_priority",
                        mach_host::processor_set_max_priority(
                            &mut m,
                            &nm,
                            (i2 % 70) as i32,
                            i1 & 2 == 0
                        )
                    ),
                }
            }
            40 => {
                let pr = lend(self.name());
                match i1 % 4 {
                    0 => call!(
                        "thread_migrate",
                        armach_sched::thread_migrate(&mut m, &th, &pr)
                    ),
                    1 => call!("thread_bind", armach_sched::thread_bind(&mut m, &th, &pr)),
                    2 => call!(
                        "balance_get",
                        armach_sched::processor_set_balance_get(&mut m, &nm)
                    ),
                    _ => call!(
                        "balance_set",
                        armach_sched::processor_set_balance_set(
                            &mut m,
                            &nm,
                            (i2 % 2000) as u32,
                            (i2 % 80) as u32,
                            (i1 % 80) as u32,
                            i2 & 1 == 0,
                            i2 & 2 == 0
                        )
                    ),
                }
            }
            41 => {
                // Gsync on scratch or on a victim's memory: always timed, never mutated (a
                // wait whose timeout a mutation removed would never end).
                m.rate = 0;
                let a = if own_task { sp & !3 } else { ptr };
                match i1 % 3 {
                    0 => call!(
                        "gsync_wait",
                        gnumach::gsync_wait(
                            &mut m,
                            &tk,
                            a,
                            i2 as u32 & 1,
                            0,
                            1 + (i2 % 2) as u32,
                            0x04 | (i1 as i32 & 0x3)
                        )
                    ),
                    1 => call!(
                        "gsync_wake",
                        gnumach::gsync_wake(&mut m, &tk, a, i2 as u32, (i1 as i32 >> 2) & 0xb)
                    ),
                    _ => call!(
                        "gsync_requeue",
                        gnumach::gsync_requeue(
                            &mut m,
                            &tk,
                            a,
                            ptr,
                            i2 & 1 == 0,
                            (i1 as i32 >> 2) & 0x3
                        )
                    ),
                }
            }
            42 => {
                let s: &CStr = c"fuzz-victim-name";
                match i1 % 3 {
                    0 => call!("task_set_name", gnumach::task_set_name(&mut m, &tk, s)),
                    1 if !own_thread => {
                        call!("thread_set_name", gnumach::thread_set_name(&mut m, &th, s))
                    }
                    _ => call!("thread_get_name", gnumach::thread_get_name(&mut m, &th)),
                }
            }
            _ => {
                // The device server, through ports that are no device master.
                call!(
                    "device_open",
                    libmach::mig::device::device_open(&mut m, &ot, (i1 % 4) as u32, c"console")
                )
            }
        }
        let _ = (nm, ot, host);
        SHARED.mutated.fetch_add(m.stats.mutated, Ordering::Relaxed);
    }

    // ------------------------------------------------------------ churn

    fn churn_op(&mut self) {
        SHARED.churn.fetch_add(1, Ordering::Relaxed);
        let which = self.rng.below(5);
        if TRACE_FROM.load(Ordering::Relaxed) != 0 && self.op >= TRACE_FROM.load(Ordering::Relaxed)
        {
            println!("fuzz: trace churn {which}");
        }
        match which {
            0 => self.new_victim(),
            1 => self.new_port(),
            2 => {
                if let Ok(out) = mach::thread_create(&mut t(), &ipc::task_self()) {
                    self.spare.push(out.child_thread);
                }
                if self.spare.len() > 3 {
                    let th = self.spare.remove(0);
                    let _ = mach::thread_terminate(&mut patient(), &th);
                }
            }
            3 => {
                // A victim's thread run from nowhere: it faults and its task ends.
                if let Some(th) = self.victim_thread() {
                    let _ = mach::thread_resume(&mut patient(), &lend(th));
                }
            }
            _ => {
                if !self.ports.is_empty() && !self.sets_of_ports().is_empty() {
                    let p = self.rng.pick(&self.ports);
                    let s = self.rng.pick(&self.sets_of_ports());
                    let _ = mach_port::mach_port_move_member(&mut t(), &ipc::task_self(), p, s);
                }
            }
        }
    }

    fn sets_of_ports(&self) -> Vec<PortName> {
        self.ports
            .iter()
            .copied()
            .filter(|p| {
                mach_port::mach_port_type(&mut t(), &ipc::task_self(), *p)
                    .is_ok_and(|o| o.ptype & (1 << (16 + 3)) != 0)
            })
            .collect()
    }
}

fn mach_port_destroy_raw(name: PortName) -> Result<(), KernReturn> {
    mach_port::mach_port_destroy(&mut t(), &ipc::task_self(), name)
}

// ---------------------------------------------------------------- the harness

struct Totals {
    ops: u64,
    traps: u64,
    msgs: u64,
    migs: u64,
    mutated: u64,
    churn: u64,
    exceptions: u64,
    unexpected: u64,
}

static HARNESS_STOP: AtomicBool = AtomicBool::new(false);
static HARNESS_CHURN: AtomicU64 = AtomicU64::new(0);
/// Whether the harness binds threads to processors too (`bind=0`: it does not).
static BIND: AtomicBool = AtomicBool::new(false);

fn harness(args: &Args) -> i32 {
    let mut c = Checks::new("fuzz");
    let seed = args.number("seed").unwrap_or(1);
    let ops = args.number("ops").unwrap_or(200);
    let deadline_s = args.number("deadline").unwrap_or(50);
    let cpus = libmach::kern::cpu_count().max(1);
    let workers = args.number("workers").unwrap_or(u64::from(cpus.max(2)));
    c.note(format_args!(
        "seed {seed}, {ops} ops per thread, {workers} workers of {FUZZ_THREADS} threads on {cpus} CPUs"
    ));
    scratch_holes_stay_holes(&mut c);
    let (Some(host_priv), Some(device)) = (args.host_priv_port(), args.device_port()) else {
        c.check(
            false,
            "argv names host_priv and device ports",
            format_args!("no"),
        );
        return c.finish();
    };
    let Some(image) = armach_tests::program_image(&mut c, device, "fuzz") else {
        return c.finish();
    };
    let me = traps::mach_task_self();
    let report = ReceiveRight::from_name(
        traps::mach_port_allocate(me, PortRight::Receive).unwrap_or(PortName(0)),
    );
    let _ =
        traps::mach_port_insert_right(me, report.name(), report.name(), MACH_MSG_TYPE_MAKE_SEND);
    let host = traps::mach_host_self();
    let procs = armach_tests::host::processors(&mut t(), &lend(host_priv)).unwrap_or_default();
    let nprocs = alloc::format!("{}", procs.len());
    let mut kids: Vec<(u64, SendRight)> = Vec::new();
    let only = args.number("only");
    let trace = alloc::format!("{}", args.number("trace").unwrap_or(0));
    for i in (0..workers).filter(|i| only.is_none_or(|o| o == *i)) {
        let seed_s = alloc::format!("{seed}");
        let ops_s = alloc::format!("{ops}");
        let idx = alloc::format!("{i}");
        let ports = libmach::loader::StartPorts {
            host_priv: host,
            device: report.name(),
            bootstrap: PortName::NULL,
        };
        match libmach::loader::spawn(
            "fuzz-worker",
            image,
            &["worker", &seed_s, &ops_s, &idx, &nprocs, &trace],
            &ports,
        ) {
            Ok(child) => {
                let _ = mach_port::mach_port_request_notification(
                    &mut t(),
                    &ipc::task_self(),
                    child.task.name(),
                    notify::DEAD_NAME,
                    0,
                    PortArg::MakeSendOnce(&report),
                );
                // The processors' ports, under names the worker knows (it may use a name
                // before it is there: an invalid name is fuzz too).
                for (k, p) in procs.iter().enumerate() {
                    let _ = mach_port::mach_port_insert_right(
                        &mut t(),
                        &child.task,
                        PortName(PROC_NAME + k as u32),
                        PortArg::CopySend(p),
                    );
                }
                kids.push((i, child.task));
            }
            Err(e) => {
                c.check(false, "start a worker", format_args!("{e:?}"));
            }
        }
    }
    let hp = host_priv;
    BIND.store(args.number("bind") != Some(0), Ordering::Relaxed);
    let churn = (args.number("churn") != Some(0))
        .then(|| thread::spawn(move || harness_churn(seed, hp)).ok())
        .flatten();

    // Reports and dead-name notifications until every worker reported and ended, or the
    // deadline (no report is a hang).
    let mut totals = Totals {
        ops: 0,
        traps: 0,
        msgs: 0,
        migs: 0,
        mutated: 0,
        churn: 0,
        exceptions: 0,
        unexpected: 0,
    };
    let mut reported = Vec::new();
    let mut ended = 0usize;
    let deadline = armach_tests::counter() + deadline_s * armach_tests::counter_frequency();
    while (reported.len() < kids.len() || ended < kids.len()) && armach_tests::counter() < deadline
    {
        let mut m = [0u64; 32];
        // SAFETY: a receive into our own 256-byte buffer.
        let r = unsafe {
            traps::mach_msg(
                m.as_mut_ptr().cast(),
                option::RCV_MSG | option::RCV_TIMEOUT,
                0,
                256,
                report.name(),
                200,
                PortName::NULL,
            )
        };
        if r != KernReturn::Success {
            continue;
        }
        let id = (m[3] >> 32) as i32;
        if id == REPORT_ID && (m[0] >> 32) == 120 {
            let w = &m[5..14];
            if reported.contains(&w[0]) || w[0] >= workers {
                c.check(
                    false,
                    "one report per worker",
                    format_args!("worker {}", w[0]),
                );
                continue;
            }
            reported.push(w[0]);
            c.note(format_args!(
                "worker {}: {} ops ({} traps, {} mach_msg, {} MIG of which {} mutated, {} churn), {} exceptions handled, {} unexpected",
                w[0], w[1], w[2], w[3], w[4], w[5], w[6], w[7], w[8]
            ));
            totals.ops += w[1];
            totals.traps += w[2];
            totals.msgs += w[3];
            totals.migs += w[4];
            totals.mutated += w[5];
            totals.churn += w[6];
            totals.exceptions += w[7];
            totals.unexpected += w[8];
        } else if id == notify::DEAD_NAME {
            ended += 1;
            let name = m[5] as u32;
            let _ = traps::mach_port_deallocate(me, PortName(name));
        } else {
            c.check(
                false,
                "only reports and notifications on the report port",
                format_args!("id {id:#x}"),
            );
        }
    }
    for (i, task) in &kids {
        if !reported.contains(i) {
            print_current(*i, task);
        }
    }
    HARNESS_STOP.store(true, Ordering::Relaxed);
    if let Some(h) = churn {
        h.join();
    }
    c.check(
        reported.len() == kids.len(),
        "every worker reported",
        format_args!("{} of {}", reported.len(), kids.len()),
    );
    c.check(
        ended == kids.len(),
        "every worker ended",
        format_args!("{} of {}", ended, kids.len()),
    );
    c.check_eq("unexpected answers", totals.unexpected, 0);
    c.check(
        totals.ops == kids.len() as u64 * FUZZ_THREADS * ops,
        "every thread did its ops",
        format_args!(
            "{} of {}",
            totals.ops,
            kids.len() as u64 * FUZZ_THREADS * ops
        ),
    );
    let left = end_other_tasks(host_priv);
    c.check_eq("tasks left after the harness terminated them", left, 0);
    println!(
        "fuzz: total: seed {seed}: {} ops: {} traps, {} mach_msg, {} MIG ({} mutated), {} worker churn, {} harness churn, {} exceptions handled, {} unexpected",
        totals.ops,
        totals.traps,
        totals.msgs,
        totals.migs,
        totals.mutated,
        totals.churn,
        HARNESS_CHURN.load(Ordering::Relaxed),
        totals.exceptions,
        totals.unexpected
    );
    drop(report);
    c.finish()
}

/// What the fuzzing threads of a worker that did not report were doing (read from its
/// memory: the same program, so the same address).
fn print_current(index: u64, task: &SendRight) {
    let at = core::ptr::addr_of!(CURRENT) as u64;
    let page = at & !4095;
    let len = (at + 48 - page).next_multiple_of(4096);
    let Ok(o) = mach::vm_read(&mut t(), task, page, len) else {
        println!("fuzz: worker {index} did not report; its memory cannot be read");
        return;
    };
    let b = o.data.as_bytes();
    let word = |i: usize| {
        let off = (at - page) as usize + 8 * i;
        b.get(off..off + 8)
            .map_or(0, |w| u64::from_le_bytes(w.try_into().unwrap_or([0; 8])))
    };
    for k in 0..2 {
        println!(
            "fuzz: worker {index}.{k} did not report: at op {}, kind {} (0 trap, 1 mach_msg, 2 MIG, 3 churn), trap or routine {}",
            word(3 * k),
            word(3 * k + 1),
            word(3 * k + 2)
        );
    }
    // And what the kernel says of each of its threads.
    if let Ok(o) = mach::task_threads(&mut t(), task) {
        o.thread_list.take_all(|r| {
            let ReceivedPort::Send(th) = r else { return };
            let basic = libmach::kern::thread_basic_info(&th);
            let place = libmach::kern::thread_migration_info(&th);
            match (basic, place) {
                (Ok(b), Ok(m)) => println!(
                    "fuzz: worker {index} thread {:#x}: run state {}, flags {:#x}, suspend count {}, set {:#x}, last processor {:?}, bound {:?}, {} ns since it last ran",
                    th.name().0,
                    b.run_state,
                    b.flags,
                    b.suspend_count,
                    m.processor_set,
                    m.last_processor,
                    m.bound_processor,
                    m.since_last_run_ns
                ),
                (b, m) => println!(
                    "fuzz: worker {index} thread {:#x}: {:?} {:?}",
                    th.name().0,
                    b.err(),
                    m.err()
                ),
            }
        });
    }
}

/// The harness's churn: processor sets made and destroyed, processors and the workers'
/// threads and tasks moved between them, threads migrated and bound, empty tasks made and
/// ended. Processor 0 stays in the default set, where the harness runs.
fn harness_churn(seed: u64, host_priv: PortName) {
    let mut r = Rng(seed ^ 0xc4_a5e);
    let hp = lend(host_priv);
    let procs = armach_tests::host::processors(&mut t(), &hp).unwrap_or_default();
    let default_set = mach_host::processor_set_default(&mut t(), &ipc::host_self())
        .ok()
        .and_then(|o| mach_host::host_processor_set_priv(&mut t(), &hp, &o.default_set).ok())
        .map(|o| o.set);
    let default_name = mach_host::processor_set_default(&mut t(), &ipc::host_self())
        .ok()
        .map(|o| o.default_set);
    let mut sets: Vec<(SendRight, SendRight)> = Vec::new();
    let mut threads = Vec::new();
    while !HARNESS_STOP.load(Ordering::Relaxed) {
        let n = HARNESS_CHURN.fetch_add(1, Ordering::Relaxed);
        if n.is_multiple_of(16) {
            threads = all_worker_threads(default_set.as_ref(), &sets);
        }
        match r.below(8) {
            0 if sets.len() < 3 => {
                if let Ok(o) = mach_host::processor_set_create(&mut t(), &hp) {
                    sets.push((o.new_set, o.new_name));
                }
            }
            1 if !sets.is_empty() => {
                let (set, _) = sets.remove(r.below(sets.len() as u64) as usize);
                let _ = mach_host::processor_set_destroy(&mut t(), &set);
            }
            // A processor of the default set (never processor 0) to a created set: no set
            // that has threads is ever left without processors.
            2 if !sets.is_empty() && procs.len() > 1 => {
                let p = &procs[1 + r.below(procs.len() as u64 - 1) as usize];
                let s = &sets[r.below(sets.len() as u64) as usize].0;
                if in_default(p, default_name.as_ref()) {
                    let _ = mach_host::processor_assign(&mut t(), p, s, false);
                }
            }
            // A created set's processors back to the default set, its threads first.
            3 if !sets.is_empty() => {
                if let Some(d) = &default_set {
                    let (set, name) = &sets[r.below(sets.len() as u64) as usize];
                    evacuate(set);
                    if let Ok(o) = mach_host::processor_set_processors(&mut t(), name) {
                        o.processors_list.take_all(|rp| {
                            if let ReceivedPort::Send(p) = rp {
                                let _ = mach_host::processor_assign(&mut t(), &p, d, false);
                            }
                        });
                    }
                }
            }
            4 | 5 if !threads.is_empty() && !procs.is_empty() => {
                let th = &threads[r.below(threads.len() as u64) as usize];
                let p = &procs[r.below(procs.len() as u64) as usize];
                if !BIND.load(Ordering::Relaxed) || r.chance(70) {
                    let _ = libmach::kern::thread_migrate(th, p);
                } else {
                    let _ = libmach::kern::thread_bind(th, r.chance(50).then_some(p));
                }
            }
            6 if !threads.is_empty() => {
                let th = &threads[r.below(threads.len() as u64) as usize];
                if !sets.is_empty() && r.chance(60) {
                    let (s, name) = &sets[r.below(sets.len() as u64) as usize];
                    if has_processors(name) {
                        let _ = mach_host::thread_assign(&mut t(), th, s);
                    }
                } else {
                    let _ = mach_host::thread_assign_default(&mut t(), th);
                }
            }
            _ => {
                if let Ok(o) = mach::task_create(&mut t(), &ipc::task_self(), false) {
                    let _ = mach::thread_create(&mut t(), &o.child_task);
                    let _ = mach::task_terminate(&mut t(), &o.child_task);
                }
            }
        }
        armach_tests::sleep_ms(2 + r.below(8));
    }
    for (set, _) in sets {
        let _ = mach_host::processor_set_destroy(&mut t(), &set);
    }
    if let Some(d) = &default_set {
        for p in &procs {
            let _ = mach_host::processor_assign(&mut t(), p, d, false);
        }
    }
}

/// Whether processor `p` is in the default set (`default_name` its name port).
fn in_default(p: &SendRight, default_name: Option<&SendRight>) -> bool {
    let Some(d) = default_name else {
        return false;
    };
    mach_host::processor_get_assignment(&mut t(), p)
        .is_ok_and(|o| o.assigned_set.name() == d.name())
}

/// Whether the set (its name port) has a processor.
fn has_processors(name: &SendRight) -> bool {
    mach_host::processor_set_processors(&mut t(), name).is_ok_and(|o| {
        let mut n = 0;
        o.processors_list.take_all(|_| n += 1);
        n > 0
    })
}

/// Every thread of the set to the default set.
fn evacuate(set: &SendRight) {
    if let Ok(o) = mach_host::processor_set_threads(&mut t(), set) {
        o.thread_list.take_all(|r| {
            if let ReceivedPort::Send(th) = r {
                let _ = mach_host::thread_assign_default(&mut t(), &th);
            }
        });
    }
}

/// The threads of every task in the default set and in `sets`, but the harness's own.
fn all_worker_threads(
    default_set: Option<&SendRight>,
    sets: &[(SendRight, SendRight)],
) -> Vec<SendRight> {
    let me = traps::mach_task_self();
    let mut threads = Vec::new();
    let mut tasks = Vec::new();
    for set in default_set.into_iter().chain(sets.iter().map(|s| &s.0)) {
        if let Ok(o) = mach_host::processor_set_tasks(&mut t(), set) {
            o.task_list.take_all(|r| {
                if let ReceivedPort::Send(s) = r {
                    tasks.push(s);
                }
            });
        }
    }
    for task in tasks.iter().filter(|t| t.name() != me) {
        if let Ok(o) = mach::task_threads(&mut t(), task) {
            o.thread_list.take_all(|r| {
                if let ReceivedPort::Send(s) = r {
                    threads.push(s);
                }
            });
        }
        if threads.len() > 32 {
            break;
        }
    }
    threads
}

/// Terminates every task but this one (workers that did not end, victims left behind);
/// how many remain afterwards.
fn end_other_tasks(host_priv: PortName) -> usize {
    let me = traps::mach_task_self();
    let hp = lend(host_priv);
    let Some(set) = mach_host::processor_set_default(&mut t(), &ipc::host_self())
        .ok()
        .and_then(|o| mach_host::host_processor_set_priv(&mut t(), &hp, &o.default_set).ok())
        .map(|o| o.set)
    else {
        return usize::MAX;
    };
    let mut left = 0;
    for _ in 0..5 {
        let mut tasks = Vec::new();
        if let Ok(o) = mach_host::processor_set_tasks(&mut t(), &set) {
            o.task_list.take_all(|r| {
                if let ReceivedPort::Send(s) = r {
                    tasks.push(s);
                }
            });
        }
        tasks.retain(|t| t.name() != me);
        left = tasks.len();
        if left == 0 {
            break;
        }
        for task in &tasks {
            let _ = mach::task_terminate(&mut t(), task);
        }
        armach_tests::sleep_ms(20);
    }
    left
}
