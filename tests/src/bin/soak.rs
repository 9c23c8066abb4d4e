//! `soak`: everything at once for a while (issue 14). Started as the first task
//! (`init=soak -- seconds=S`), it starts one partner task per CPU (this same program from the
//! RAM disk, `soak partner I`), each an echo server on a port of its own, and until `S`
//! seconds have passed on the counter it runs together: one pinger thread per partner
//! (numbered messages with a checksum, each answer checked: its number, its partner and its
//! checksum; a lost message is a receive timeout), thread churn (threads made, run, joined),
//! task churn (tasks with a thread made and terminated), migrations of the pingers' and the
//! partners' threads between processors, processor-set changes (a set made, a processor
//! and a partner's thread assigned to it, then back, the set destroyed) and memory
//! (`vm_allocate`, every page touched and read back, `vm_deallocate`). At the end each
//! partner says how many messages it saw (which must be how many were sent to it) and
//! exits; the program then compares what it can see with what it saw after a first warm-up
//! round: free frames (`vm_statistics`), the kernel heap in use and its own account
//! (`KMEM_COUNTS`), its port names (`mach_port_names`), its threads and the tasks of the
//! default processor set, and prints one summary line. The kernel's leak check and its
//! self-checks (`checks=1`) judge the rest.

#![no_std]
#![no_main]

extern crate alloc;

use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use armach_tests::host::lend;
use armach_tests::msg::Msg;
use armach_tests::{Checks, println};
use libmach::abi::message::{
    MACH_MSG_TYPE_COPY_SEND, MACH_MSG_TYPE_INTEGER_64, MACH_MSG_TYPE_MAKE_SEND,
    MACH_MSG_TYPE_MAKE_SEND_ONCE, MACH_MSG_TYPE_MOVE_SEND_ONCE, TypeDesc, msgh_bits, option,
};
use libmach::abi::mig::ReceivedPort;
use libmach::ipc::{self, ReceiveRight, SendRight};
use libmach::mig::{mach, mach_host, mach_port};
use libmach::{Args, KernReturn, PortName, kmem_counts, thread, traps};

libmach::main!(main);

/// A partner's port, sent to the harness in the reply slot of this message.
const HELLO: i32 = 0x534f_4100;
const PING: i32 = 0x534f_4101;
const STOP: i32 = 0x534f_4109;
/// An answer's id: the request's plus this.
const REPLY: i32 = 100;
/// Words of a ping's body: number, partner, payload, checksum.
const WORDS: usize = 4;
/// A message: header (32), type (8), the words.
const SIZE: u32 = 40 + 8 * WORDS as u32;
/// How long a pinger waits for an answer before it calls the message lost (ms).
const ANSWER_TIMEOUT_MS: u32 = 20_000;

fn t() -> ipc::Client<ipc::Trap> {
    ipc::transport()
}

/// The checksum of a message's words (seen by where each word is).
fn checksum(words: &[u64]) -> u64 {
    words
        .iter()
        .enumerate()
        .fold(0xcbf2_9ce4_8422_2325, |h, (i, &w)| {
            (h ^ w.rotate_left(i as u32 * 13)).wrapping_mul(0x0000_0100_0000_01b3)
        })
}

fn ints() -> TypeDesc {
    TypeDesc {
        name: MACH_MSG_TYPE_INTEGER_64,
        size: 64,
        number: WORDS as u32,
        inline: true,
        longform: false,
        deallocate: false,
    }
}

/// A message to `dest` carrying `words` (and their checksum as the last).
fn fill(m: &mut Msg, bits: u32, dest: PortName, reply: PortName, id: i32, words: [u64; 3]) {
    *m = Msg::new();
    m.header(bits, dest, reply, id);
    m.desc(32, ints());
    for (i, w) in words.iter().enumerate() {
        m.put64(40 + 8 * i, *w);
    }
    m.put64(40 + 8 * 3, checksum(&words));
}

/// The words of a received message, if its size, type and checksum are right.
fn words_of(m: &Msg) -> Option<[u64; 3]> {
    let w = [m.get64(40), m.get64(48), m.get64(56)];
    (m.size() == SIZE
        && m.get32(32) == ints().word()
        && m.get32(36) == WORDS as u32
        && m.get64(64) == checksum(&w))
    .then_some(w)
}

/// The answer's payload for a ping's.
fn answer(seq: u64, payload: u64) -> u64 {
    payload.rotate_left(17) ^ seq.wrapping_mul(0x9e37_79b9_7f4a_7c15)
}

fn main(args: &Args) -> i32 {
    if args.str(3) == Some("partner") {
        return partner(args);
    }
    harness(args)
}

// ---------------------------------------------------------------- a partner

/// An echo server: says hello to the harness (its port in the reply slot), then answers
/// every ping (numbers in order, right checksum) until told to stop, then says how many it
/// answered and how many were wrong, and exits.
fn partner(args: &Args) -> i32 {
    let index: u64 = args.str(4).and_then(|s| s.parse().ok()).unwrap_or(0);
    let Some(harness) = args.device_port() else {
        println!("soak: partner {index}: no harness port");
        return 1;
    };
    let me = traps::mach_task_self();
    let port = traps::mach_reply_port();
    let _ = traps::mach_port_insert_right(me, port, port, MACH_MSG_TYPE_MAKE_SEND);
    let mut m = Msg::new();
    fill(
        &mut m,
        msgh_bits(MACH_MSG_TYPE_COPY_SEND, MACH_MSG_TYPE_MAKE_SEND),
        harness,
        port,
        HELLO,
        [index, 0, 0],
    );
    if armach_tests::msg::mach_msg(&mut m, option::SEND_MSG, SIZE, 0, PortName(0), 0)
        != KernReturn::Success
    {
        println!("soak: partner {index}: hello not sent");
        return 1;
    }
    let (mut answered, mut wrong, mut next) = (0u64, 0u64, 0u64);
    loop {
        let r = armach_tests::msg::mach_msg(&mut m, option::RCV_MSG, 0, 128, port, 0);
        if r != KernReturn::Success {
            println!("soak: partner {index}: receive: {r:?}");
            return 1;
        }
        let id = m.id();
        let reply = m.remote_name();
        let got = words_of(&m);
        let mut out = [0u64; 3];
        match (id, got) {
            (PING, Some([seq, who, payload])) if seq == next && who == index => {
                next += 1;
                answered += 1;
                out = [seq, index, answer(seq, payload)];
            }
            (STOP, Some(_)) => out = [answered, wrong, next],
            _ => {
                wrong += 1;
                println!(
                    "soak: partner {index}: wrong message id {id:#x}, words {got:?}, expected number {next}"
                );
            }
        }
        if reply != PortName(0) {
            let ok = out != [0; 3] || id == STOP;
            fill(
                &mut m,
                msgh_bits(MACH_MSG_TYPE_MOVE_SEND_ONCE, 0),
                reply,
                PortName(0),
                if ok { id + REPLY } else { id },
                out,
            );
            let _ = armach_tests::msg::mach_msg(&mut m, option::SEND_MSG, SIZE, 0, PortName(0), 0);
        }
        if id == STOP {
            return 0;
        }
    }
}

// ---------------------------------------------------------------- the harness

static STOP_ALL: AtomicBool = AtomicBool::new(false);
/// Round trips answered right (two messages each).
static MESSAGES: AtomicU64 = AtomicU64::new(0);
static LOST: AtomicU64 = AtomicU64::new(0);
static CORRUPT: AtomicU64 = AtomicU64::new(0);
static MIGRATIONS: AtomicU64 = AtomicU64::new(0);
static SET_CHANGES: AtomicU64 = AtomicU64::new(0);
static TASKS_MADE: AtomicU64 = AtomicU64::new(0);
static THREADS_MADE: AtomicU64 = AtomicU64::new(0);
static VM_ROUNDS: AtomicU64 = AtomicU64::new(0);
static VM_BAD: AtomicU64 = AtomicU64::new(0);

/// What the harness can count through Mach interfaces.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Counts {
    free_frames: u64,
    kernel_heap: u64,
    charged: u64,
    names: usize,
    threads: usize,
    tasks: usize,
}

fn counts(set: &SendRight) -> Counts {
    let k = kmem_counts();
    let names = mach_port::mach_port_names(&mut t(), &ipc::task_self())
        .map_or(usize::MAX, |o| o.names.len() as usize);
    let mut threads = 0;
    if let Ok(o) = mach::task_threads(&mut t(), &ipc::task_self()) {
        o.thread_list.take_all(|_| threads += 1);
    }
    Counts {
        free_frames: libmach::kern::frame_counts().free,
        kernel_heap: k.heap_in_use,
        charged: k.task_charged,
        names,
        threads,
        tasks: tasks_of(set).len(),
    }
}

fn tasks_of(set: &SendRight) -> Vec<SendRight> {
    let mut tasks = Vec::new();
    if let Ok(o) = mach_host::processor_set_tasks(&mut t(), set) {
        o.task_list.take_all(|r| {
            if let ReceivedPort::Send(s) = r {
                tasks.push(s);
            }
        });
    }
    tasks
}

/// A small generator (xorshift), for choices that need not be reproducible.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        if n == 0 { 0 } else { self.0 % n }
    }
}

fn harness(args: &Args) -> i32 {
    let mut c = Checks::new("soak");
    let seconds = args.number("seconds").unwrap_or(10);
    let cpus = libmach::kern::cpu_count().max(1);
    let partners = u64::from(cpus.max(2));
    c.note(format_args!(
        "{seconds} s, {partners} partners on {cpus} CPUs"
    ));
    let (Some(host_priv), Some(device)) = (args.host_priv_port(), args.device_port()) else {
        c.check(
            false,
            "argv names host_priv and device ports",
            format_args!("no"),
        );
        return c.finish();
    };
    let Some(image) = armach_tests::program_image(&mut c, device, "soak") else {
        return c.finish();
    };
    let hp = lend(host_priv);
    let Some(default_set) = mach_host::processor_set_default(&mut t(), &ipc::host_self())
        .ok()
        .and_then(|o| mach_host::host_processor_set_priv(&mut t(), &hp, &o.default_set).ok())
        .map(|o| o.set)
    else {
        c.check(
            false,
            "the default set's control port",
            format_args!("none"),
        );
        return c.finish();
    };
    let procs = armach_tests::host::processors(&mut t(), &hp).unwrap_or_default();

    // A warm-up round of everything but the partners, so that what grows once (the heap,
    // the threads' reply ports) has grown before the counts are taken.
    churn_once(&mut Rng(7), &default_set);
    set_change(&procs, &default_set, &hp, None);
    memory_once(&mut Rng(9));
    let before = counts(&default_set);
    c.note(format_args!("before: {before:?}"));

    // The partners, each saying hello with its port.
    let me = traps::mach_task_self();
    let hello = traps::mach_reply_port();
    let _ = traps::mach_port_insert_right(me, hello, hello, MACH_MSG_TYPE_MAKE_SEND);
    let mut kids: Vec<SendRight> = Vec::new();
    for i in 0..partners {
        let idx = alloc::format!("{i}");
        let ports = libmach::loader::StartPorts {
            host_priv: PortName::NULL,
            device: hello,
            bootstrap: PortName::NULL,
        };
        match libmach::loader::spawn("soak-partner", image, &["partner", &idx], &ports) {
            Ok(child) => kids.push(child.task),
            Err(e) => {
                c.check(false, "start a partner", format_args!("{e:?}"));
            }
        }
    }
    let mut ports: Vec<Option<PortName>> = (0..kids.len()).map(|_| None).collect();
    let mut m = Msg::new();
    for _ in 0..kids.len() {
        let r = armach_tests::msg::mach_msg(
            &mut m,
            option::RCV_MSG | option::RCV_TIMEOUT,
            0,
            128,
            hello,
            ANSWER_TIMEOUT_MS,
        );
        match (r, m.id(), words_of(&m)) {
            (KernReturn::Success, HELLO, Some([i, 0, 0])) if (i as usize) < ports.len() => {
                ports[i as usize] = Some(m.remote_name());
            }
            other => {
                c.check(false, "a partner's hello", format_args!("{other:?}"));
            }
        }
    }
    // The receive right, then the send right left as a dead name under the same name.
    drop(ReceiveRight::from_name(hello));
    let _ = traps::mach_port_deallocate(me, hello);
    let ports: Vec<PortName> = ports.into_iter().flatten().collect();
    c.check_eq("every partner said hello", ports.len(), kids.len());

    let freq = armach_tests::counter_frequency();
    let deadline = armach_tests::counter() + seconds * freq;
    let mut pingers = Vec::new();
    for (i, &p) in ports.iter().enumerate() {
        match thread::spawn(move || pinger(i as u64, p, deadline)) {
            Ok(h) => pingers.push(h),
            Err(e) => {
                c.check(false, "start a pinger", format_args!("{e:?}"));
            }
        }
    }
    let ds = default_set.name();
    let hpn = host_priv;
    let mover = thread::spawn(move || mover(hpn, ds, deadline));
    let churner = thread::spawn(move || churner(ds, deadline));
    // The main thread: memory, and a progress line every 30 s.
    let mut r = Rng(0x50a_c0de);
    let mut next_note = armach_tests::counter() + 30 * freq;
    while armach_tests::counter() < deadline {
        memory_once(&mut r);
        if armach_tests::counter() >= next_note {
            next_note += 30 * freq;
            println!(
                "soak: progress: {} round trips, {} migrations, {} set changes, {} tasks, {} threads, {} vm rounds",
                MESSAGES.load(Ordering::Relaxed),
                MIGRATIONS.load(Ordering::Relaxed),
                SET_CHANGES.load(Ordering::Relaxed),
                TASKS_MADE.load(Ordering::Relaxed),
                THREADS_MADE.load(Ordering::Relaxed),
                VM_ROUNDS.load(Ordering::Relaxed),
            );
        }
        armach_tests::sleep_ms(1);
    }
    STOP_ALL.store(true, Ordering::Relaxed);
    let mut sent = Vec::new();
    for h in pingers {
        sent.push(h.join());
    }
    for h in [mover, churner].into_iter().flatten() {
        h.join();
    }
    // Every partner must have answered exactly what it was sent, and nothing wrong.
    let reply = traps::mach_reply_port();
    for (i, &p) in ports.iter().enumerate() {
        fill(
            &mut m,
            msgh_bits(MACH_MSG_TYPE_COPY_SEND, MACH_MSG_TYPE_MAKE_SEND_ONCE),
            p,
            reply,
            STOP,
            [0, 0, 0],
        );
        let r = armach_tests::msg::mach_msg(
            &mut m,
            option::SEND_MSG | option::RCV_MSG | option::RCV_TIMEOUT,
            SIZE,
            128,
            reply,
            ANSWER_TIMEOUT_MS,
        );
        let got = (r == KernReturn::Success && m.id() == STOP + REPLY)
            .then(|| words_of(&m))
            .flatten();
        let expect = sent.get(i).copied().unwrap_or(0);
        c.check(
            got == Some([expect, 0, expect]),
            "a partner answered every message sent to it, none wrong",
            format_args!("partner {i}: {got:?} (answered, wrong, next), {expect} sent"),
        );
        let _ = traps::mach_port_deallocate(me, p);
    }
    drop(ReceiveRight::from_name(reply));
    c.check_eq("lost messages", LOST.load(Ordering::Relaxed), 0);
    c.check_eq("corrupted answers", CORRUPT.load(Ordering::Relaxed), 0);
    c.check_eq("memory read back wrong", VM_BAD.load(Ordering::Relaxed), 0);

    // The partners exit; wait for the task count to come back, then compare.
    armach_tests::poll_sleeping(10_000, || tasks_of(&default_set).len() <= before.tasks);
    // Partners that did not exit are ended here (and the task count below fails), so that
    // the run still ends with the kernel's leak check.
    let left = tasks_of(&default_set).len();
    if left > before.tasks {
        for k in &kids {
            let _ = mach::task_terminate(&mut t(), k);
        }
    }
    drop(kids);
    // Dead names of the partners' ports, if any were left.
    let mut after = counts(&default_set);
    armach_tests::poll_sleeping(5_000, || {
        after = counts(&default_set);
        after == before
    });
    c.note(format_args!("after:  {after:?}"));
    c.check_eq(
        "free frames as before",
        after.free_frames,
        before.free_frames,
    );
    // Heap and charge may end below the baseline (something of the warm-up, a message or
    // a churned thread not yet reaped, was still charged when it was read: seen once in a
    // 10-minute run), never above it; the kernel's own check at the end of the run is exact.
    c.check(
        after.kernel_heap <= before.kernel_heap,
        "kernel heap in use no more than before",
        format_args!("{} after, {} before", after.kernel_heap, before.kernel_heap),
    );
    c.check(
        after.charged <= before.charged,
        "own kernel-memory account no more than before",
        format_args!("{} after, {} before", after.charged, before.charged),
    );
    c.check_eq("port names as before", after.names, before.names);
    c.check_eq("threads as before", after.threads, before.threads);
    c.check_eq("tasks as before", left, before.tasks);
    println!(
        "soak: total: {seconds} s: {} messages ({} round trips), {} migrations, {} set changes, {} tasks, {} threads, {} vm rounds, {} lost, {} corrupted",
        2 * MESSAGES.load(Ordering::Relaxed),
        MESSAGES.load(Ordering::Relaxed),
        MIGRATIONS.load(Ordering::Relaxed),
        SET_CHANGES.load(Ordering::Relaxed),
        TASKS_MADE.load(Ordering::Relaxed),
        THREADS_MADE.load(Ordering::Relaxed),
        VM_ROUNDS.load(Ordering::Relaxed),
        LOST.load(Ordering::Relaxed),
        CORRUPT.load(Ordering::Relaxed),
    );
    c.finish()
}

/// Pings partner `index` at `port` until the deadline; how many messages it answered right.
fn pinger(index: u64, port: PortName, deadline: u64) -> u64 {
    let reply = traps::mach_reply_port();
    let mut m = Msg::new();
    let mut seq = 0u64;
    let mut payload = 0x1234_5678_9abc_def0u64 ^ index;
    while armach_tests::counter() < deadline && !STOP_ALL.load(Ordering::Relaxed) {
        payload = payload.rotate_left(5).wrapping_add(seq);
        fill(
            &mut m,
            msgh_bits(MACH_MSG_TYPE_COPY_SEND, MACH_MSG_TYPE_MAKE_SEND_ONCE),
            port,
            reply,
            PING,
            [seq, index, payload],
        );
        let r = armach_tests::msg::mach_msg(
            &mut m,
            option::SEND_MSG | option::RCV_MSG | option::RCV_TIMEOUT,
            SIZE,
            128,
            reply,
            ANSWER_TIMEOUT_MS,
        );
        if r != KernReturn::Success {
            println!("soak: pinger {index}: message {seq}: {r:?}");
            LOST.fetch_add(1, Ordering::Relaxed);
            break;
        }
        if m.id() != PING + REPLY || words_of(&m) != Some([seq, index, answer(seq, payload)]) {
            println!(
                "soak: pinger {index}: message {seq}: wrong answer id {:#x}, words {:?}",
                m.id(),
                words_of(&m)
            );
            CORRUPT.fetch_add(1, Ordering::Relaxed);
            seq += 1;
            break;
        }
        seq += 1;
        MESSAGES.fetch_add(1, Ordering::Relaxed);
    }
    drop(ReceiveRight::from_name(reply));
    seq
}

/// Every thread of every task in `set` (the harness's own too).
fn threads_in(set: &SendRight) -> Vec<SendRight> {
    let mut threads = Vec::new();
    for task in tasks_of(set) {
        if let Ok(o) = mach::task_threads(&mut t(), &task) {
            o.thread_list.take_all(|r| {
                if let ReceivedPort::Send(s) = r {
                    threads.push(s);
                }
            });
        }
    }
    threads
}

/// Migrations of random threads to random processors, and processor-set changes, until the
/// deadline.
fn mover(host_priv: PortName, default_set: PortName, deadline: u64) {
    let hp = lend(host_priv);
    let set = lend(default_set);
    let procs = armach_tests::host::processors(&mut t(), &hp).unwrap_or_default();
    let mut r = Rng(0xfeed_beef);
    let mut n = 0u64;
    while armach_tests::counter() < deadline && !STOP_ALL.load(Ordering::Relaxed) {
        n += 1;
        if n.is_multiple_of(20) {
            let threads = threads_in(&set);
            let th = threads.get(r.below(threads.len() as u64) as usize);
            set_change(&procs, &set, &hp, th);
        } else if !procs.is_empty() {
            let threads = threads_in(&set);
            if let Some(th) = threads.get(r.below(threads.len() as u64) as usize) {
                let p = &procs[r.below(procs.len() as u64) as usize];
                if libmach::kern::thread_migrate(th, p).is_ok() {
                    MIGRATIONS.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        armach_tests::sleep_ms(1 + r.below(3));
    }
}

/// A processor set made; on more than one CPU the last processor assigned to it, `thread`
/// (if any) assigned to it and back, the processor back; the set destroyed.
fn set_change(
    procs: &[SendRight],
    default_set: &SendRight,
    hp: &SendRight,
    thread: Option<&SendRight>,
) {
    let Ok(o) = mach_host::processor_set_create(&mut t(), hp) else {
        return;
    };
    SET_CHANGES.fetch_add(1, Ordering::Relaxed);
    if procs.len() > 1 {
        let p = &procs[procs.len() - 1];
        if mach_host::processor_assign(&mut t(), p, &o.new_set, true).is_ok() {
            SET_CHANGES.fetch_add(1, Ordering::Relaxed);
            if let Some(th) = thread
                && mach_host::thread_assign(&mut t(), th, &o.new_set).is_ok()
            {
                SET_CHANGES.fetch_add(1, Ordering::Relaxed);
                armach_tests::sleep_ms(2);
                let _ = mach_host::thread_assign(&mut t(), th, default_set);
            }
            let _ = mach_host::processor_assign(&mut t(), p, default_set, true);
        }
    }
    let _ = mach_host::processor_set_destroy(&mut t(), &o.new_set);
}

/// Thread and task churn until the deadline.
fn churner(default_set: PortName, deadline: u64) {
    let set = lend(default_set);
    let mut r = Rng(0xc4u64 << 32 | 0x77);
    while armach_tests::counter() < deadline && !STOP_ALL.load(Ordering::Relaxed) {
        churn_once(&mut r, &set);
        armach_tests::sleep_ms(1 + r.below(4));
    }
}

/// A few threads made, run and joined; a task with a thread made and terminated.
fn churn_once(r: &mut Rng, _set: &SendRight) {
    let n = 1 + r.below(4);
    let mut hs = Vec::new();
    for k in 0..n {
        if let Ok(h) = thread::spawn(move || {
            let mut x = k;
            for i in 0..1000 {
                x = x.wrapping_mul(31).wrapping_add(i);
            }
            x
        }) {
            THREADS_MADE.fetch_add(1, Ordering::Relaxed);
            hs.push(h);
        }
    }
    for h in hs {
        h.join();
    }
    if let Ok(o) = mach::task_create(&mut t(), &ipc::task_self(), false) {
        TASKS_MADE.fetch_add(1, Ordering::Relaxed);
        if mach::thread_create(&mut t(), &o.child_task).is_ok() {
            THREADS_MADE.fetch_add(1, Ordering::Relaxed);
        }
        let _ = mach::task_terminate(&mut t(), &o.child_task);
    }
}

/// A region of 1 to 64 pages allocated, every page written and read back, deallocated.
fn memory_once(r: &mut Rng) {
    let me = traps::mach_task_self();
    let pages = 1 + r.below(64);
    let len = pages * 4096;
    let Ok(addr) = traps::vm_allocate(me, 0, len, true) else {
        return;
    };
    let tag = r.below(u64::MAX);
    for p in 0..pages {
        // SAFETY: the page is part of the region just allocated to this task, 8-aligned.
        unsafe { core::ptr::write_volatile((addr + p * 4096) as *mut u64, tag ^ p) };
    }
    for p in 0..pages {
        // SAFETY: as above.
        let v = unsafe { core::ptr::read_volatile((addr + p * 4096) as *const u64) };
        if v != tag ^ p {
            VM_BAD.fetch_add(1, Ordering::Relaxed);
        }
    }
    // SAFETY: the region is this task's, allocated above, and nothing refers to it now.
    let _ = unsafe { traps::vm_deallocate(me, addr, len) };
    VM_ROUNDS.fetch_add(1, Ordering::Relaxed);
}
