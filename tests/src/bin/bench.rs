//! `bench`: what common kernel operations cost, in guest instructions. Not a test (it checks
//! nothing and is not in the test matrix); `cargo xtask bench` runs it under QEMU's
//! `-icount shift=0`, where the virtual counter advances by one nanosecond per instruction
//! executed, so counter ticks convert to instruction counts, deterministically. Each line
//! reads `bench: NAME: N instructions per OP (ITERATIONS iterations)`.
//!
//! `bench balance` (after `--` on the kernel command line; on 4 and 8 CPUs) measures thread
//! migration and load balancing instead: see [`balance`].

#![no_std]
#![no_main]

extern crate alloc;

use armach_tests::msg::mach_msg_small as mach_msg;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use libmach::traps;
use libmach::{Args, KernReturn, PortName, println, thread};

libmach::main!(main);

fn counter() -> u64 {
    let value: u64;
    // SAFETY: reading the virtual counter has no side effect; the kernel allows it at EL0.
    unsafe {
        core::arch::asm!("isb", "mrs {}, cntvct_el0", out(reg) value, options(nomem, nostack))
    };
    value
}

fn frequency() -> u64 {
    let value: u64;
    // SAFETY: reading the counter frequency has no side effect.
    unsafe { core::arch::asm!("mrs {}, cntfrq_el0", out(reg) value, options(nomem, nostack)) };
    value
}

/// Nanoseconds of virtual time (instructions under `-icount shift=0`) per iteration.
fn per_op(ticks: u64, iterations: u64) -> u64 {
    let ns = ticks as u128 * 1_000_000_000 / frequency().max(1) as u128;
    (ns / iterations as u128) as u64
}

/// Whether this run is the profiled one (`bench_profile_mark` around the measured part).
static PROFILING: AtomicBool = AtomicBool::new(false);

fn report(name: &str, op: &str, iterations: u64, f: impl FnOnce()) {
    let profiling = PROFILING.load(Ordering::Relaxed);
    if profiling {
        bench_profile_mark();
    }
    let start = counter();
    f();
    let ticks = counter() - start;
    if profiling {
        bench_profile_mark();
    }
    println!(
        "bench: {name}: {} instructions per {op} ({iterations} iterations)",
        per_op(ticks, iterations)
    );
}

/// Two threads waking each other through the temporary event traps (`EVENT_WAKE` retried
/// until the other is waiting, then `EVENT_WAIT`): instructions per round trip, two
/// wake-ups and two waits. On more than one CPU the two usually run on different CPUs, so
/// each wake-up crosses CPUs (an IPI to an idle one).
fn wakeup_round_trip() {
    let rounds = iterations(2_000);
    static PING: u64 = 0;
    static PONG: u64 = 0;
    let ping = &PING as *const u64 as usize;
    let pong = &PONG as *const u64 as usize;
    fn wake(event: usize) {
        while traps::event_wake(event, false) == 0 {
            traps::swtch();
        }
    }
    report(
        "wakeup-round-trip",
        "round trip of two wake-ups",
        rounds,
        || {
            let other = thread::spawn(move || {
                for _ in 0..rounds {
                    traps::event_wait(ping, 0);
                    wake(pong);
                }
            });
            for _ in 0..rounds {
                wake(ping);
                traps::event_wait(pong, 0);
            }
            if let Ok(h) = other {
                h.join();
            }
        },
    );
}

/// A null RPC between two threads of this task on one CPU (no cross-task rendezvous is
/// needed): the client sends a header-only request with a send-once reply right and waits
/// for the reply in the same `mach_msg`; the server answers and waits for the next request
/// in one `mach_msg`, as `mach_msg_server` does. Instructions per round trip.
fn null_rpc() {
    use libmach::abi::message::{
        MACH_MSG_TYPE_MAKE_SEND, MACH_MSG_TYPE_MAKE_SEND_ONCE, MACH_MSG_TYPE_MOVE_SEND_ONCE,
        msgh_bits, option,
    };
    let rpcs = iterations(5_000);
    let service = traps::mach_reply_port();
    let reply = traps::mach_reply_port();
    let server = thread::spawn(move || {
        let mut buf = [0u64; 8];
        let mut r = mach_msg(&mut buf, option::RCV_MSG, 0, 64, service);
        for _ in 0..rpcs {
            if r != KernReturn::Success {
                return;
            }
            // The reply goes to the send-once right the request carried (its remote port).
            buf[0] = u64::from(msgh_bits(MACH_MSG_TYPE_MOVE_SEND_ONCE, 0));
            buf[2] = 0;
            r = mach_msg(
                &mut buf,
                option::SEND_MSG | option::RCV_MSG,
                32,
                64,
                service,
            );
        }
    });
    report(
        "null-rpc-same-cpu",
        "null RPC (request and reply)",
        rpcs,
        || {
            let mut buf = [0u64; 8];
            for _ in 0..rpcs {
                buf[0] = u64::from(msgh_bits(
                    MACH_MSG_TYPE_MAKE_SEND,
                    MACH_MSG_TYPE_MAKE_SEND_ONCE,
                ));
                buf[1] = u64::from(service.0);
                buf[2] = u64::from(reply.0);
                buf[3] = 0;
                mach_msg(&mut buf, option::SEND_MSG | option::RCV_MSG, 32, 64, reply);
            }
        },
    );
    // The server is left waiting for one more request; the task's end interrupts it.
    core::mem::forget(server);
}

/// A null RPC to another task on another CPU: `benchsrv` (started with this program as
/// `init=bench,benchsrv`) publishes its port in rendezvous slot 1; a `SETUP` request has it
/// take CPU 1 in a processor set of its own, leaving CPU 0 to this task, so every request
/// and every reply crosses CPUs (the receiver, blocked on an idle CPU, is woken with an
/// IPI; nothing spins). Header-only requests with a send-once reply right, each sent and
/// its reply received in one `mach_msg`, as in `null_rpc`. Skipped if no server is found
/// within a second (`init=bench` alone).
fn null_rpc_cross_cpu() {
    use libmach::abi::message::{
        MACH_MSG_TYPE_COPY_SEND, MACH_MSG_TYPE_MAKE_SEND_ONCE, msgh_bits, option,
    };
    let rpcs = iterations(5_000);
    const SETUP: u64 = 1;
    const STOP: u64 = 2;
    let mut service = PortName(0);
    for _ in 0..100 {
        service = traps::rendezvous_lookup(1);
        if service.0 != 0 {
            break;
        }
        let _ = traps::thread_switch(PortName(0), libmach::abi::traps::SWITCH_OPTION_WAIT, 10);
    }
    if service.0 == 0 {
        println!("bench: null-rpc-cross-cpu: no server (start as init=bench,benchsrv)");
        return;
    }
    let reply = traps::mach_reply_port();
    let request = |buf: &mut [u64; 8], id: u64| {
        buf[0] = u64::from(msgh_bits(
            MACH_MSG_TYPE_COPY_SEND,
            MACH_MSG_TYPE_MAKE_SEND_ONCE,
        ));
        buf[1] = u64::from(service.0);
        buf[2] = u64::from(reply.0);
        buf[3] = id << 32;
        mach_msg(buf, option::SEND_MSG | option::RCV_MSG, 32, 64, reply)
    };
    let mut buf = [0u64; 8];
    let r = request(&mut buf, SETUP);
    let server_cpu = (buf[3] >> 32) as u32;
    // This thread is in the default set, which now holds CPU 0 only.
    while libmach::kern::current_cpu() != 0 {
        traps::swtch();
    }
    let client_cpu = libmach::kern::current_cpu();
    if r != KernReturn::Success || server_cpu == client_cpu {
        println!(
            "bench: null-rpc-cross-cpu: setup failed ({r:?}, server on CPU {server_cpu}, client on CPU {client_cpu})"
        );
        return;
    }
    let mut failed = 0u64;
    report(
        "null-rpc-cross-cpu",
        "null RPC to another task on another CPU (request and reply)",
        rpcs,
        || {
            for _ in 0..rpcs {
                if request(&mut buf, 0) != KernReturn::Success {
                    failed += 1;
                }
            }
        },
    );
    println!(
        "bench: null-rpc-cross-cpu-placement: client on CPU {client_cpu}, server task on CPU {server_cpu}, {failed} failed"
    );
    buf[0] = u64::from(msgh_bits(MACH_MSG_TYPE_COPY_SEND, 0));
    buf[1] = u64::from(service.0);
    buf[2] = 0;
    buf[3] = STOP << 32;
    let _ = mach_msg(&mut buf, option::SEND_MSG, 32, 0, PortName(0));
}

/// `processor_info(PROCESSOR_BASIC_INFO)` on the boot processor's port, through the
/// generated stub over `mach_msg` (request, served in the kernel, reply received): the
/// round trip in instructions. The stub's message buffer is reused (no 4 KiB clearing per
/// call); the host right each reply carries is kept, its references released at the end.
fn processor_info_rpc() {
    let args = libmach::start::args();
    use libmach::ipc;
    use libmach::mig::mach_host;
    let rpcs = iterations(2_000);
    let Some(host_priv) = args.host_priv_port() else {
        println!("bench: processor-info-rpc: n/a (no host-privileged port)");
        return;
    };
    let mut t = ipc::transport();
    let host_priv = core::mem::ManuallyDrop::new(ipc::SendRight::from_name(host_priv));
    let Ok(out) = mach_host::host_processors(&mut t, &host_priv) else {
        println!("bench: processor-info-rpc: n/a (host_processors failed)");
        return;
    };
    let Some(cpu0) = out.processor_list.name(0) else {
        return;
    };
    let cpu0 = core::mem::ManuallyDrop::new(ipc::SendRight::from_name(cpu0));
    let mut buf = alloc::vec![0u8; mach_host::MAX_REPLY_SIZE];
    let mut info = [0i32; 5];
    let mut host = PortName::NULL;
    let mut failed = 0u64;
    report(
        "processor-info-rpc",
        "processor_info round trip",
        rpcs,
        || {
            for _ in 0..rpcs {
                match mach_host::processor_info_with(&mut t, &mut buf, &cpu0, 1, &mut info) {
                    Ok(o) => host = o.host.into_name(),
                    Err(_) => failed += 1,
                }
            }
        },
    );
    if failed != 0 || info[3] != 0 {
        println!(
            "bench: processor-info-rpc: {failed} calls failed, slot {}",
            info[3]
        );
    }
    // The host right's references, one per reply.
    let task = traps::mach_task_self();
    for _ in 0..(rpcs - failed) {
        let _ = traps::mach_port_deallocate(task, host);
    }
    drop(out);
}

/// Iterations for a benchmark: `normal`, or the profile's count in profile mode.
fn iterations(normal: u64) -> u64 {
    match PROFILE_ITERATIONS.load(Ordering::Relaxed) {
        0 => normal,
        n => n,
    }
}

/// Iterations of a profiled benchmark (0: not profiling).
static PROFILE_ITERATIONS: AtomicU64 = AtomicU64::new(0);

/// Where `cargo xtask bench --profile` opens and closes its window: the instructions between
/// the first two executions of this function are the profile. Not inlined, and exported
/// under this name so that the xtask finds it in the program's symbols.
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn bench_profile_mark() {
    core::hint::black_box(());
}

fn null_trap() {
    let n = iterations(20_000);
    report("null-trap", "mach_task_self", n, || {
        for _ in 0..n {
            core::hint::black_box(traps::mach_task_self());
        }
    });
}

fn yield_alone() {
    let n = iterations(20_000);
    report("yield-alone", "swtch with nothing else to run", n, || {
        for _ in 0..n {
            core::hint::black_box(traps::swtch());
        }
    });
}

/// Two threads taking turns on one CPU: every swtch is a switch to the other thread. The
/// other thread is made before the measured part and joined after it (making and joining a
/// thread is `thread-create-join`'s figure, not this one's).
fn context_switch() {
    let n = iterations(5_000);
    let other = thread::spawn(move || {
        for _ in 0..n {
            traps::swtch();
        }
    });
    report(
        "context-switch",
        "switch (half a swtch round trip)",
        2 * n,
        || {
            for _ in 0..n {
                traps::swtch();
            }
        },
    );
    if let Ok(h) = other {
        h.join();
    }
}

fn page_fault() {
    let task = traps::mach_task_self();
    let pages = iterations(1024);
    let mut region = 0;
    report(
        "page-fault",
        "first touch of a page (zero fill)",
        pages,
        || {
            if let Ok(addr) = traps::vm_allocate(task, 0, pages * 4096, true) {
                region = addr;
                for i in 0..pages {
                    // SAFETY: the page was just allocated for this loop.
                    unsafe { core::ptr::write_volatile((addr + i * 4096) as *mut u8, 1) };
                }
            }
        },
    );
    // SAFETY: the region was allocated above and nothing refers to it any more.
    let _ = unsafe { traps::vm_deallocate(task, region, pages * 4096) };
}

fn vm_allocate_deallocate() {
    let task = traps::mach_task_self();
    let n = iterations(2_000);
    report(
        "vm-allocate-deallocate",
        "pair of one page, untouched",
        n,
        || {
            for _ in 0..n {
                if let Ok(addr) = traps::vm_allocate(task, 0, 4096, true) {
                    // SAFETY: the page was just allocated and is not used.
                    let _ = unsafe { traps::vm_deallocate(task, addr, 4096) };
                }
            }
        },
    );
}

fn thread_create_join() {
    let n = iterations(200);
    report(
        "thread-create-join",
        "spawn, run an empty closure, join",
        n,
        || {
            for _ in 0..n {
                if let Ok(h) = thread::spawn(|| {}) {
                    h.join();
                }
            }
        },
    );
}

/// `thread_info(THREAD_BASIC_INFO)` of the calling thread through the generated stub and
/// `mach_msg`, served by the kernel in the caller's context: instructions per round trip
/// (request, kernel server, reply). The stub's message buffer is reused, not zeroed for
/// each call.
fn thread_info_rpc() {
    use libmach::abi::info::{THREAD_BASIC_INFO, THREAD_BASIC_INFO_COUNT};
    use libmach::ipc::{self, SendRight};
    use libmach::mig::mach;
    let rpcs = iterations(2_000);
    let me = SendRight::from_name(traps::mach_thread_self());
    let mut transport = ipc::transport();
    let mut buf = alloc::vec![0u8; 4152];
    let mut info = [0i32; THREAD_BASIC_INFO_COUNT];
    // The first call makes the thread's reply port.
    let _ = mach::thread_info(&mut transport, &me, THREAD_BASIC_INFO, &mut info);
    report(
        "thread-info-rpc",
        "thread_info(THREAD_BASIC_INFO) RPC",
        rpcs,
        || {
            for _ in 0..rpcs {
                let r = mach::thread_info_with(
                    &mut transport,
                    &mut buf,
                    &me,
                    THREAD_BASIC_INFO,
                    &mut info,
                );
                core::hint::black_box(r.is_ok());
            }
        },
    );
}

/// The benchmarks of a one-CPU run, in order, by the names they print.
const BENCHMARKS: &[(&str, fn())] = &[
    ("null-trap", null_trap),
    ("yield-alone", yield_alone),
    ("context-switch", context_switch),
    ("page-fault", page_fault),
    ("vm-allocate-deallocate", vm_allocate_deallocate),
    ("thread-create-join", thread_create_join),
    ("null-rpc-same-cpu", null_rpc),
    ("processor-info-rpc", processor_info_rpc),
    ("thread-info-rpc", thread_info_rpc),
    ("wakeup-round-trip", wakeup_round_trip),
];

/// `bench profile NAME [N]` (arguments after `--` on the kernel command line): run only
/// NAME, first 5 times to warm it up, then N times (default 20) between two calls of
/// [`bench_profile_mark`].
fn profile(args: &Args) -> i32 {
    let name = args.get(4).and_then(|n| n.to_str().ok()).unwrap_or("");
    let count = args
        .get(5)
        .and_then(|n| n.to_str().ok())
        .and_then(|n| n.parse().ok())
        .unwrap_or(20u64)
        .max(1);
    let Some((_, run)) = BENCHMARKS.iter().find(|(n, _)| *n == name) else {
        println!("bench: no benchmark {name:?}");
        return 1;
    };
    PROFILE_ITERATIONS.store(5, Ordering::Relaxed);
    run();
    PROFILE_ITERATIONS.store(count, Ordering::Relaxed);
    PROFILING.store(true, Ordering::Relaxed);
    run();
    println!("bench: done");
    0
}

fn main(args: &Args) -> i32 {
    if args.get(3).is_some_and(|a| a.to_bytes() == b"profile") {
        return profile(args);
    }
    if args.get(3).is_some_and(|a| a.to_bytes() == b"balance") {
        balance::run(args);
        println!("bench: done");
        return 0;
    }
    if libmach::kern::cpu_count() > 1 {
        // `cargo xtask bench` boots more CPUs for the wake-up path and (on 2, with
        // `benchsrv`) the cross-CPU null RPC.
        wakeup_round_trip();
        null_rpc_cross_cpu();
        println!("bench: done");
        return 0;
    }
    println!(
        "bench: start: {} instructions from reset to main",
        per_op(counter(), 1)
    );
    for (_, run) in BENCHMARKS {
        run();
    }
    println!("bench: done");
    0
}

/// `bench balance`: migration and balancing figures on the CPUs the run has (DESIGN.md 8),
/// each line `bench: NAME: VALUE UNIT ...`, or `bench: NAME: n/a (why)` when the kernel
/// refuses what it needs (the xtask then leaves the metric out):
/// - `thread-migrate`: instructions per `thread_migrate` round trip, moving a waiting
///   thread between two CPUs (every other CPU idle);
/// - `balance-ticks-16`: timer ticks until 16 CPU-bound threads, bound to one CPU then
///   unbound, hold 16/N +- 1 per CPU;
/// - `balance-pass`: instructions per periodic balance pass during that spread
///   (`balance_insns / balance_passes`, summed over the processors: the PMU's instruction
///   event read by the CPU running each pass; under QEMU that event follows the global
///   instruction count of every CPU, so this is an upper bound that varies between runs);
/// - `steady-migrations`: migrations per second over 20 intervals once balanced (no two
///   CPUs differing by 2, and 5 intervals more for the moved threads to have run);
/// - `utilization-16`: percent of CPU time busy (from `idle_ns`) while 16 threads each run
///   a fixed computation, from the first one's creation to the last one's end;
/// - `wake-on-last`: percent of wake-ups placed on the thread's last processor
///   (`wakeups_on_last / wakeups`) while 2N threads compute and sleep in turn.
mod balance {
    use super::{counter, frequency, per_op};
    use alloc::sync::Arc;
    use alloc::vec::Vec;
    use core::hint::black_box;
    use core::mem::ManuallyDrop;
    use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    use libmach::abi::sched::{Balance, ProcessorSchedInfo};
    use libmach::ipc::{self, SendRight};
    use libmach::kern::{balance_get, processor_sched_info, thread_bind, thread_migrate};
    use libmach::mig::mach_host;
    use libmach::sync::SpinLock;
    use libmach::{Args, println, thread};

    /// A receive with a timeout on a fresh port (GNU Mach's `msleep`).
    fn msleep(ms: u32) {
        use libmach::abi::message::option;
        use libmach::ipc::{MachMsg, ReceiveRight, Trap};
        let task = libmach::traps::mach_task_self();
        let Ok(name) =
            libmach::traps::mach_port_allocate(task, libmach::abi::mig::PortRight::Receive)
        else {
            return;
        };
        let port = ReceiveRight::from_name(name);
        let mut buf = [0u8; 64];
        // SAFETY: a receive into our own buffer.
        let _ = unsafe {
            Trap.mach_msg(
                &mut buf,
                option::RCV_MSG | option::RCV_TIMEOUT,
                0,
                port.name(),
                ms,
                libmach::PortName::NULL,
            )
        };
    }

    fn burn(n: u64) {
        let mut x = 0u64;
        for i in 0..n {
            x = x.wrapping_add(black_box(i));
        }
        black_box(x);
    }

    fn infos(cpus: &[SendRight]) -> Option<Vec<ProcessorSchedInfo>> {
        cpus.iter()
            .map(processor_sched_info)
            .collect::<Result<Vec<_>, _>>()
            .ok()
    }

    fn clock(cpus: &[SendRight]) -> u64 {
        infos(cpus).map_or(0, |i| i.iter().map(|p| p.ticks).max().unwrap_or(0))
    }

    /// Threads on each CPU, the calling thread (on `cpu 0`) left out.
    fn on_each(i: &[ProcessorSchedInfo]) -> Vec<u32> {
        i.iter()
            .enumerate()
            .map(|(c, p)| p.runnable.saturating_sub(u32::from(c == 0)))
            .collect()
    }

    fn spread(i: &[ProcessorSchedInfo], total: u32) -> bool {
        let on = on_each(i);
        let n = on.len() as i64;
        on.iter().sum::<u32>() == total
            && on
                .iter()
                .all(|&k| (n * i64::from(k) - i64::from(total)).abs() <= n)
    }

    fn delta(
        a: &[ProcessorSchedInfo],
        b: &[ProcessorSchedInfo],
        f: fn(&ProcessorSchedInfo) -> u64,
    ) -> u64 {
        a.iter()
            .zip(b)
            .map(|(x, y)| f(y).saturating_sub(f(x)))
            .sum()
    }

    struct Flags {
        go: AtomicBool,
        stop: AtomicBool,
        /// Threads that have started their work.
        started: AtomicU64,
    }

    pub fn run(args: &Args) {
        let mut t = ipc::transport();
        let Some(hp) = args.host_priv_port() else {
            println!("bench: balance: n/a (no host-privileged port)");
            return;
        };
        let hp = ManuallyDrop::new(SendRight::from_name(hp));
        let Ok(out) = mach_host::host_processors(&mut t, &hp) else {
            println!("bench: balance: n/a (host_processors failed)");
            return;
        };
        let mut cpus = Vec::new();
        out.processor_list.take_all(|r| {
            if let libmach::abi::mig::ReceivedPort::Send(right) = r {
                cpus.push(right);
            }
        });
        let n = cpus.len();
        let me = ipc::thread_self();
        if n < 2 || thread_bind(&me, Some(&cpus[0])).is_err() || infos(&cpus).is_none() {
            println!("bench: balance: n/a (needs 2 CPUs, thread_bind and PROCESSOR_SCHED_INFO)");
            return;
        }
        let interval = match mach_host::processor_set_default(&mut t, &ipc::host_self())
            .ok()
            .and_then(|o| balance_get(&o.default_set).ok())
        {
            Some(b) => u64::from(b.interval_ticks),
            None => u64::from(Balance::DEFAULT.interval_ticks),
        };
        migrate_rpc(&cpus);
        spread_16(&cpus, interval);
        if n == 4 {
            utilization_16(&cpus);
            wake_on_last(&cpus, interval);
        }
        let _ = thread_bind(&me, None);
    }

    /// `thread_migrate` of a waiting thread between CPUs 1 and the last, round trips.
    fn migrate_rpc(cpus: &[SendRight]) {
        let rpcs = 2_000u64;
        let flags = Arc::new(Flags {
            go: AtomicBool::new(false),
            stop: AtomicBool::new(false),
            started: AtomicU64::new(0),
        });
        let theirs = flags.clone();
        let Ok(sleeper) = thread::spawn(move || {
            while !theirs.stop.load(Ordering::Acquire) {
                msleep(100_000);
            }
        }) else {
            println!("bench: thread-migrate: n/a (spawn failed)");
            return;
        };
        msleep(20);
        let (a, b) = (&cpus[1], &cpus[cpus.len() - 1]);
        let mut failed = 0u64;
        let start = counter();
        for i in 0..rpcs {
            let to = if i % 2 == 0 { a } else { b };
            if thread_migrate(sleeper.thread(), to).is_err() {
                failed += 1;
            }
        }
        let ticks = counter() - start;
        if failed == 0 {
            println!(
                "bench: thread-migrate: {} instructions per thread_migrate round trip ({rpcs} iterations)",
                per_op(ticks, rpcs)
            );
        } else {
            println!("bench: thread-migrate: n/a ({failed} of {rpcs} calls failed)");
        }
        flags.stop.store(true, Ordering::Release);
        let _ = libmach::mig::mach::thread_abort(&mut ipc::transport(), sleeper.thread());
        sleeper.join();
    }

    /// 16 spinners bound to the last CPU, unbound: ticks to spread, balance pass cost,
    /// then migrations in the 20 intervals after.
    fn spread_16(cpus: &[SendRight], interval: u64) {
        let n = cpus.len();
        let flags = Arc::new(Flags {
            go: AtomicBool::new(false),
            stop: AtomicBool::new(false),
            started: AtomicU64::new(0),
        });
        let mut spinners = Vec::new();
        for _ in 0..16 {
            let theirs = flags.clone();
            match thread::spawn(move || {
                while !theirs.go.load(Ordering::Acquire) {
                    msleep(10);
                }
                theirs.started.fetch_add(1, Ordering::AcqRel);
                while !theirs.stop.load(Ordering::Acquire) {
                    burn(1000);
                }
            }) {
                Ok(h) => spinners.push(h),
                Err(_) => break,
            }
        }
        let mut t = ipc::transport();
        let mut ok = spinners.len() == 16;
        for h in &spinners {
            ok &= mach_host::thread_priority(&mut t, h.thread(), 30, false).is_ok();
            ok &= thread_bind(h.thread(), Some(&cpus[n - 1])).is_ok();
        }
        flags.go.store(true, Ordering::Release);
        let mut crowded = false;
        for _ in 0..400 {
            // All 16 on the last CPU, and each has run there.
            if flags.started.load(Ordering::Acquire) == 16
                && infos(cpus).is_some_and(|i| i[n - 1].runnable >= 16)
            {
                crowded = true;
                break;
            }
            msleep(10);
        }
        let Some(before) = infos(cpus).filter(|_| ok && crowded) else {
            println!("bench: balance-ticks-16: n/a (16 threads could not be bound to one CPU)");
            flags.stop.store(true, Ordering::Release);
            spinners.into_iter().for_each(|h| h.join());
            return;
        };
        let start = before.iter().map(|p| p.ticks).max().unwrap_or(0);
        for h in &spinners {
            let _ = thread_bind(h.thread(), None);
        }
        let mut balanced = None;
        for _ in 0..2000 {
            if let Some(i) = infos(cpus) {
                if spread(&i, 16) {
                    balanced = Some(i);
                    break;
                }
                if i.iter().map(|p| p.ticks).max().unwrap_or(0) > start + 100 * interval {
                    break;
                }
            }
            msleep(10);
        }
        match &balanced {
            Some(i) => {
                let ticks = i.iter().map(|p| p.ticks).max().unwrap_or(0) - start;
                println!(
                    "bench: balance-ticks-16: {ticks} ticks until 16 threads from one CPU are 16/{n} +- 1 per CPU (interval {interval})"
                );
                // Instructions retired by the CPU running each pass (its PMU; 0 where no
                // PMU counts, as under QEMU without -icount).
                let insns = delta(&before, i, |p| p.balance_insns);
                let passes = delta(&before, i, |p| p.balance_passes);
                match insns.checked_div(passes).filter(|&per| per > 0) {
                    Some(per) => println!(
                        "bench: balance-pass: {per} instructions per periodic balance pass ({passes} passes)"
                    ),
                    None => println!(
                        "bench: balance-pass: n/a (no pass counted, or no PMU counting instructions)"
                    ),
                }
            }
            None => println!("bench: balance-ticks-16: n/a (not balanced within 100 intervals)"),
        }
        if balanced.is_some() {
            // Steady: once no two CPUs differ by 2, and 5 intervals more for every moved
            // thread to have run where it went (a migration is counted then).
            for _ in 0..2000 {
                if infos(cpus).is_some_and(|i| {
                    let on = on_each(&i);
                    on.iter().max().unwrap_or(&0) - on.iter().min().unwrap_or(&0) <= 1
                }) {
                    break;
                }
                msleep(10);
            }
            let t = clock(cpus);
            while clock(cpus) < t + 5 * interval {
                msleep(10);
            }
            let a = infos(cpus);
            let c0 = counter();
            let t0 = clock(cpus);
            while clock(cpus) < t0 + 20 * interval {
                msleep(10);
            }
            let c1 = counter();
            if let (Some(a), Some(b)) = (a, infos(cpus)) {
                let moved = delta(&a, &b, |p| p.migration_in);
                let per_s =
                    (moved as u128 * frequency() as u128 * 10 / (c1 - c0).max(1) as u128 + 5) / 10;
                println!(
                    "bench: steady-migrations: {per_s} migrations per second once balanced ({moved} in 20 intervals)"
                );
            }
        }
        flags.stop.store(true, Ordering::Release);
        spinners.into_iter().for_each(|h| h.join());
    }

    /// 16 threads, each a fixed computation: percent of CPU time busy from the first
    /// one's creation to the last one's end (the last to end takes the closing snapshot).
    fn utilization_16(cpus: &[SendRight]) {
        let n = cpus.len() as u128;
        let done = Arc::new(AtomicU64::new(0));
        type Closing = Option<(u64, Option<Vec<ProcessorSchedInfo>>)>;
        let closing: Arc<SpinLock<Closing>> = Arc::new(SpinLock::new(None));
        let names: Arc<Vec<libmach::PortName>> = Arc::new(cpus.iter().map(|c| c.name()).collect());
        let Some(before) = infos(cpus) else { return };
        let c0 = counter();
        let mut handles = Vec::new();
        for _ in 0..16 {
            let (done, closing, names) = (done.clone(), closing.clone(), names.clone());
            match thread::spawn(move || {
                burn(20_000_000);
                if done.fetch_add(1, Ordering::AcqRel) == 15 {
                    let end = counter();
                    let lent: Vec<_> = names
                        .iter()
                        .map(|&p| ManuallyDrop::new(SendRight::from_name(p)))
                        .collect();
                    let i: Option<Vec<ProcessorSchedInfo>> =
                        lent.iter().map(|c| processor_sched_info(c).ok()).collect();
                    *closing.lock() = Some((end, i));
                }
            }) {
                Ok(h) => handles.push(h),
                Err(_) => break,
            }
        }
        let all = handles.len() == 16;
        handles.into_iter().for_each(|h| h.join());
        let closing = closing.lock().take();
        match closing {
            Some((end, Some(after))) if all => {
                let idle = delta(&before, &after, |p| p.idle_ns) as u128;
                let elapsed_ns = (end - c0) as u128 * 1_000_000_000 / frequency().max(1) as u128;
                let total = n * elapsed_ns;
                let busy_permille = (total.saturating_sub(idle) * 1000 / total.max(1)) as u64;
                println!(
                    "bench: utilization-16: {}.{} percent busy while 16 threads run on {n} CPUs",
                    busy_permille / 10,
                    busy_permille % 10
                );
            }
            _ => println!("bench: utilization-16: n/a (no closing snapshot)"),
        }
    }

    /// 2N threads computing and sleeping in turn for 20 intervals: the share of wake-ups
    /// placed on the thread's last processor.
    fn wake_on_last(cpus: &[SendRight], interval: u64) {
        let flags = Arc::new(Flags {
            go: AtomicBool::new(true),
            stop: AtomicBool::new(false),
            started: AtomicU64::new(0),
        });
        let mut handles = Vec::new();
        for _ in 0..2 * cpus.len() {
            let theirs = flags.clone();
            if let Ok(h) = thread::spawn(move || {
                while !theirs.stop.load(Ordering::Acquire) {
                    burn(50_000);
                    msleep(10);
                }
            }) {
                handles.push(h);
            }
        }
        let before = infos(cpus);
        let t0 = clock(cpus);
        while clock(cpus) < t0 + 20 * interval {
            msleep(10);
        }
        let after = infos(cpus);
        flags.stop.store(true, Ordering::Release);
        handles.into_iter().for_each(|h| h.join());
        match (before, after) {
            (Some(a), Some(b)) => {
                let wakeups = delta(&a, &b, |p| p.wakeups);
                let on_last = delta(&a, &b, |p| p.wakeups_on_last);
                match (on_last * 1000).checked_div(wakeups) {
                    Some(permille) => println!(
                        "bench: wake-on-last: {}.{} percent of {wakeups} wake-ups placed on the last processor",
                        permille / 10,
                        permille % 10
                    ),
                    None => println!("bench: wake-on-last: n/a (no wake-up counted)"),
                }
            }
            _ => println!("bench: wake-on-last: n/a (PROCESSOR_SCHED_INFO refused)"),
        }
    }
}
