//! `tracew`: runs scheduler workloads with the kernel's scheduler trace on
//! (`armach_trace`), then prints every CPU's events on the console, one line each, with
//! what the kernel's counters say of the same stretch, for `cargo xtask trace` to turn into
//! a Chrome trace and an SVG timeline, and for `cargo xtask test` to check. Started as two
//! tasks, `init=tracew,tracew`: the first to publish its port in rendezvous slot 2 is the
//! peer, which only answers `pingpong`'s RPCs; the other is the driver. The words after
//! `--` on the kernel command line pick the workloads (default: all):
//! - `spread`: 16 CPU-bound threads bound to CPU 0, started, then unbound, so that the
//!   balancer spreads them; each, when told to stop, reads its own migration count and
//!   last processor (`THREAD_MIGRATION_INFO`) between two counter reads, and ends;
//! - `pingpong`: 200 null RPCs to the peer task (a send and receive in one `mach_msg`
//!   each way: IPC handoff).
//!
//! Output, per workload (every line but the `ev` ones starts with `trace-`):
//! ```text
//! trace-begin WORKLOAD cpus=N frequency=HZ capacity=EVENTS
//! trace-thread TID NAME                       (the threads this program knows)
//! ev CPU TIME KIND ARGS...                    (mach_abi::trace::Event's text form)
//! trace-cpu CPU events=N lost=N migration_in=N migration_out=N
//! trace-check TID migrations=N last=CPU t0=TIME t1=TIME
//! trace-end WORKLOAD
//! ```
//! `migration_in`/`_out` are the differences of the processor's `PROCESSOR_SCHED_INFO`
//! counters from just before recording was turned on to just after it was turned off;
//! `trace-check` is a worker's own `THREAD_MIGRATION_INFO`, read between counter values
//! `t0` and `t1`. The program checks only that the interface works (the host-privileged
//! port required, the status, a CPU that does not exist, a port that is no thread's, every
//! ring read); the cross-checks are the harness's.

#![no_std]
#![no_main]

extern crate alloc;

use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use armach_tests::host::{host_priv, processors};
use armach_tests::msg::mach_msg_small as mach_msg;
use armach_tests::{Checks, counter, msleep};
use core::hint::black_box;
use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use libmach::abi::message::{
    MACH_MSG_TYPE_COPY_SEND, MACH_MSG_TYPE_MAKE_SEND_ONCE, MACH_MSG_TYPE_MOVE_SEND_ONCE, msgh_bits,
    option,
};
use libmach::abi::sched::ProcessorSchedInfo;
use libmach::ipc::{self, SendRight};
use libmach::kern::{
    processor_sched_info, thread_bind, thread_migration_info, trace_enable, trace_read,
    trace_reset, trace_status, trace_thread_id, with_thread_self,
};
use libmach::mig::mach_host;
use libmach::{Args, KernReturn, PortName, println, thread, traps};

libmach::main!(main);

/// The rendezvous slot the peer publishes its port in.
const SLOT: u32 = 2;
/// Threads of `spread`.
const SPREAD: usize = 16;
/// Ticks (10 ms polls) `spread` runs for once its threads are unbound.
const SPREAD_POLLS: u32 = 30;
/// Round trips of `pingpong`.
const PINGS: u32 = 200;
/// The workers' priority: worse than the main thread's `BASEPRI_USER` (25).
const WORKER_PRIORITY: i32 = 30;
/// Request ids to the peer.
const PING: u32 = 1;
const STOP: u32 = 2;

fn main(args: &Args) -> i32 {
    let me = traps::mach_reply_port();
    let made = traps::mach_port_insert_right(
        traps::mach_task_self(),
        me,
        me,
        libmach::abi::message::MACH_MSG_TYPE_MAKE_SEND,
    );
    if made.is_ok() && traps::rendezvous_publish(SLOT, me).is_ok() {
        return peer(me);
    }
    driver(args)
}

/// The peer: answer each `PING` with a header-only reply whose id is this thread's trace
/// id, until `STOP`.
fn peer(service: PortName) -> i32 {
    let mut c = Checks::new("tracew-peer");
    let tid = with_thread_self(trace_thread_id);
    c.check(
        tid.is_ok(),
        "trace_thread_id of itself",
        format_args!("{tid:?}"),
    );
    let tid = tid.unwrap_or(0);
    let mut buf = [0u64; 8];
    let mut r = mach_msg(&mut buf, option::RCV_MSG, 0, 64, service);
    let mut served = 0u32;
    loop {
        if r != KernReturn::Success {
            c.check(false, "receive a request", format_args!("{r}"));
            break;
        }
        let id = (buf[3] >> 32) as u32;
        if id == STOP {
            break;
        }
        served += 1;
        buf[0] = u64::from(msgh_bits(MACH_MSG_TYPE_MOVE_SEND_ONCE, 0)) | 32 << 32;
        buf[2] = 0;
        buf[3] = u64::from(tid) << 32;
        r = mach_msg(
            &mut buf,
            option::SEND_MSG | option::RCV_MSG,
            32,
            64,
            service,
        );
    }
    c.note(format_args!("served {served} RPCs"));
    c.finish()
}

/// A worker of `spread`.
struct Ctl {
    go: AtomicBool,
    stop: AtomicBool,
    progress: AtomicU64,
    /// What it read of itself when told to stop: migrations, last processor, between
    /// counter values `t0` and `t1`.
    migrations: AtomicU32,
    last: AtomicU32,
    t0: AtomicU64,
    t1: AtomicU64,
}

fn spin(ctl: &Ctl) {
    while !ctl.go.load(Ordering::Acquire) {
        let _ = msleep(10);
    }
    while !ctl.stop.load(Ordering::Acquire) {
        ctl.progress.fetch_add(1, Ordering::Relaxed);
        let mut x = 0u64;
        for i in 0..1000u64 {
            x = x.wrapping_add(black_box(i));
        }
        black_box(x);
    }
    let t0 = counter();
    let info = with_thread_self(thread_migration_info);
    let t1 = counter();
    if let Ok(m) = info {
        ctl.migrations.store(m.migration_count, Ordering::Relaxed);
        ctl.last
            .store(m.last_processor.unwrap_or(u32::MAX), Ordering::Relaxed);
    }
    ctl.t0.store(t0, Ordering::Relaxed);
    ctl.t1.store(t1, Ordering::Release);
}

struct Driver {
    c: Checks,
    hp: core::mem::ManuallyDrop<SendRight>,
    cpus: Vec<SendRight>,
}

impl Driver {
    fn snapshot(&self) -> Vec<ProcessorSchedInfo> {
        self.cpus
            .iter()
            .filter_map(|p| processor_sched_info(p).ok())
            .collect()
    }

    /// Turn recording on from a clean slate; the counters as they were just before.
    fn begin(&mut self, workload: &str) -> Vec<ProcessorSchedInfo> {
        let status = trace_status(&self.hp);
        let Ok(status) = status else {
            self.c
                .check(false, "trace_status", format_args!("{status:?}"));
            return Vec::new();
        };
        println!(
            "trace-begin {workload} cpus={} frequency={} capacity={}",
            status.cpus, status.frequency, status.capacity
        );
        let before = self.snapshot();
        let r = trace_reset(&self.hp).and_then(|()| trace_enable(&self.hp, true));
        self.c.check_eq("trace_reset, trace_enable", r, Ok(()));
        if let Ok(tid) = with_thread_self(trace_thread_id) {
            println!("trace-thread {tid} main");
        }
        before
    }

    /// Turn recording off and print every CPU's events and counters.
    fn end(&mut self, workload: &str, before: &[ProcessorSchedInfo]) {
        let r = trace_enable(&self.hp, false);
        self.c.check_eq("trace_enable(false)", r, Ok(()));
        let after = self.snapshot();
        let mut total = 0usize;
        for cpu in 0..self.cpus.len() as u32 {
            let (mut since, mut events, mut lost) = (0u64, 0usize, 0u64);
            loop {
                match trace_read(&self.hp, cpu, since) {
                    Ok(r) => {
                        for e in &r.events {
                            println!("{e}");
                        }
                        events += r.events.len();
                        lost += r.lost;
                        let done = r.next == since || r.events.is_empty();
                        since = r.next;
                        if done {
                            break;
                        }
                    }
                    Err(kr) => {
                        self.c
                            .check(false, "trace_read", format_args!("cpu {cpu}: {kr}"));
                        break;
                    }
                }
            }
            total += events;
            let (b, a) = (before.get(cpu as usize), after.get(cpu as usize));
            let delta = |f: fn(&ProcessorSchedInfo) -> u64| match (b, a) {
                (Some(b), Some(a)) => f(a).wrapping_sub(f(b)),
                _ => 0,
            };
            println!(
                "trace-cpu {cpu} events={events} lost={lost} migration_in={} migration_out={}",
                delta(|i| i.migration_in),
                delta(|i| i.migration_out)
            );
        }
        self.c.check(
            total > 0,
            "every CPU's ring read",
            format_args!("{workload}: {total} events"),
        );
    }

    fn spread(&mut self) {
        let before = self.begin("spread");
        let mut workers = Vec::new();
        for i in 0..SPREAD {
            let ctl = Arc::new(Ctl {
                go: AtomicBool::new(false),
                stop: AtomicBool::new(false),
                progress: AtomicU64::new(0),
                migrations: AtomicU32::new(0),
                last: AtomicU32::new(u32::MAX),
                t0: AtomicU64::new(0),
                t1: AtomicU64::new(0),
            });
            let theirs = ctl.clone();
            match thread::spawn(move || spin(&theirs)) {
                Ok(h) => workers.push((i, ctl, h)),
                Err(kr) => {
                    self.c.check(false, "spawn a worker", format_args!("{kr}"));
                    break;
                }
            }
        }
        let mut t = ipc::transport();
        let mut tids = Vec::new();
        for (i, _, h) in &workers {
            let _ = mach_host::thread_priority(&mut t, h.thread(), WORKER_PRIORITY, false);
            let r = thread_bind(h.thread(), self.cpus.first());
            self.c
                .check_eq("thread_bind(worker, cpu 0)", r.is_ok(), true);
            let tid = trace_thread_id(h.thread()).unwrap_or(0);
            println!("trace-thread {tid} spin{i}");
            tids.push(tid);
        }
        for (_, ctl, _) in &workers {
            ctl.go.store(true, Ordering::Release);
        }
        // All running on CPU 0 (each has run there since it was bound); then free to move.
        let on_cpu0 = |w: &[(usize, Arc<Ctl>, thread::JoinHandle<()>)]| {
            w.iter().all(|(_, ctl, h)| {
                let progress = ctl.progress.load(Ordering::Relaxed);
                progress > 0
                    && thread_migration_info(h.thread()).is_ok_and(|m| m.last_processor == Some(0))
            })
        };
        let mut polls = 0;
        while !on_cpu0(&workers) && polls < 200 {
            let _ = msleep(10);
            polls += 1;
        }
        self.c.check(
            on_cpu0(&workers),
            "every worker runs on CPU 0 before it is unbound",
            format_args!("after {polls} polls"),
        );
        for (_, _, h) in &workers {
            let _ = thread_bind(h.thread(), None);
        }
        for _ in 0..SPREAD_POLLS {
            let _ = msleep(10);
        }
        for (_, ctl, _) in &workers {
            ctl.stop.store(true, Ordering::Release);
        }
        let mut checks = String::new();
        for ((_, ctl, h), tid) in workers.into_iter().zip(tids) {
            h.join();
            use core::fmt::Write;
            let _ = writeln!(
                checks,
                "trace-check {tid} migrations={} last={} t0={} t1={}",
                ctl.migrations.load(Ordering::Relaxed),
                ctl.last.load(Ordering::Relaxed),
                ctl.t0.load(Ordering::Relaxed),
                ctl.t1.load(Ordering::Acquire),
            );
        }
        self.end("spread", &before);
        libmach::print!("{checks}");
        println!("trace-end spread");
    }

    fn pingpong(&mut self, server: Option<PortName>) {
        let Some(service) = server else {
            self.c.check(
                false,
                "pingpong needs the peer task",
                format_args!("start as init=tracew,tracew"),
            );
            return;
        };
        let before = self.begin("pingpong");
        let reply = traps::mach_reply_port();
        let mut buf = [0u64; 8];
        let mut ok = 0u32;
        let mut peer_tid = None;
        for _ in 0..PINGS {
            buf[0] = u64::from(msgh_bits(
                MACH_MSG_TYPE_COPY_SEND,
                MACH_MSG_TYPE_MAKE_SEND_ONCE,
            )) | 32 << 32;
            buf[1] = u64::from(service.0);
            buf[2] = u64::from(reply.0);
            buf[3] = u64::from(PING) << 32;
            if mach_msg(&mut buf, option::SEND_MSG | option::RCV_MSG, 32, 64, reply)
                == KernReturn::Success
            {
                ok += 1;
                peer_tid = Some((buf[3] >> 32) as u32);
            }
        }
        self.c.check_eq("pingpong round trips", ok, PINGS);
        if let Some(tid) = peer_tid {
            println!("trace-thread {tid} pong");
        }
        if let Ok(tid) = with_thread_self(trace_thread_id) {
            println!("trace-thread {tid} ping");
        }
        self.end("pingpong", &before);
        println!("trace-end pingpong");
    }
}

fn driver(args: &Args) -> i32 {
    let mut c = Checks::new("tracew");
    let Some(hp) = host_priv(args) else {
        c.check(
            false,
            "the host-privileged port in argv[1]",
            format_args!("none"),
        );
        return c.finish();
    };
    let mut t = ipc::transport();
    let cpus = match processors(&mut t, &hp) {
        Ok(v) => v,
        Err(kr) => {
            c.check(false, "host_processors", format_args!("{kr}"));
            return c.finish();
        }
    };
    // The interface wants the host-privileged port.
    let host = ipc::host_self();
    c.check_eq(
        "trace_status on the host (not privileged) port",
        trace_status(&host).err(),
        Some(KernReturn::InvalidArgument),
    );
    match trace_status(&hp) {
        Ok(st) => {
            c.check(
                st.cpus as usize == cpus.len()
                    && st.capacity > 0
                    && st.frequency == armach_tests::counter_frequency(),
                "trace_status: a ring per CPU, the counter's frequency",
                format_args!("{st:?} for {} CPUs", cpus.len()),
            );
        }
        Err(kr) => {
            c.check(false, "trace_status", format_args!("{kr}"));
        }
    }
    c.check_eq(
        "trace_read of a CPU that does not exist",
        trace_read(&hp, cpus.len() as u32, 0).err(),
        Some(KernReturn::InvalidArgument),
    );
    c.check_eq(
        "trace_thread_id of the host port",
        trace_thread_id(&host).err(),
        Some(KernReturn::InvalidArgument),
    );
    let words: Vec<&str> = (3..args.len())
        .filter_map(|i| args.get(i).and_then(|s| s.to_str().ok()))
        .collect();
    let wants = |w: &str| words.is_empty() || words.contains(&w);
    // The peer, if started with us (it publishes at once; give it a moment).
    let mut server = None;
    for _ in 0..100 {
        let p = traps::rendezvous_lookup(SLOT);
        if p != PortName::NULL {
            server = Some(p);
            break;
        }
        let _ = msleep(10);
    }
    let mut d = Driver { c, hp, cpus };
    if wants("spread") {
        d.spread();
    }
    if wants("pingpong") {
        d.pingpong(server);
    }
    if let Some(service) = server {
        let mut buf = [0u64; 8];
        buf[0] = u64::from(msgh_bits(MACH_MSG_TYPE_COPY_SEND, 0)) | 32 << 32;
        buf[1] = u64::from(service.0);
        buf[3] = u64::from(STOP) << 32;
        let r = mach_msg(&mut buf, option::SEND_MSG, 32, 0, PortName(0));
        d.c.check_eq("stop the peer", r, KernReturn::Success);
    }
    d.c.finish()
}
