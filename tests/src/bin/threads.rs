//! `threads`: 64 threads in one task, each doing a few million iterations of a checksum it
//! verifies against a closed form, plus a heap block of its own, sampling the CPU it runs on
//! as it goes. The main thread joins them all, checks every result, and checks that the
//! threads ran on every online CPU: a thread that finishes its work before every CPU has
//! been seen keeps computing (and sampling) until all have, or until 20 s after the start,
//! so a kernel that leaves a CPU without user work fails however the timing falls, and a
//! right one passes without depending on it.

#![no_std]
#![no_main]

extern crate alloc;

use alloc::vec::Vec;
use armach_tests::Checks;
use armach_tests::{counter, counter_frequency, cpu_bit, cpu_list, cpu_mask};
use core::hint::black_box;
use core::sync::atomic::{AtomicU64, Ordering};
use libmach::{Args, thread};

libmach::main!(main);

const THREADS: u64 = 64;
const ITERATIONS: u64 = 2_000_000;
/// Iterations between CPU samples (a power of two).
const SAMPLE_EVERY: u64 = 1 << 15;
/// Longest time the threads keep working while a CPU has not been seen, in seconds.
const COVER_SECS: u64 = 20;

/// CPUs any thread has been seen on.
static SEEN: AtomicU64 = AtomicU64::new(0);

/// What one thread found.
struct Outcome {
    checksum: u64,
    expected: u64,
    heap_ok: bool,
    cpus: u64,
    cpu_changes: u32,
}

/// Sum of k² for k in 0..m, exactly.
fn sum_of_squares_below(m: u64) -> u128 {
    let m = m as u128;
    if m == 0 {
        return 0;
    }
    (m - 1) * m * (2 * m - 1) / 6
}

fn work(index: u64, all: u64, deadline: u64) -> Outcome {
    let start = index * 1_000_003;
    let mut cpu = libmach::cpu();
    let mut cpus = cpu_bit(cpu);
    let mut cpu_changes = 0;
    let mut sum = 0u64;
    for i in 0..ITERATIONS {
        let k = black_box(start + i);
        sum = sum.wrapping_add(k.wrapping_mul(k));
        if i & (SAMPLE_EVERY - 1) == 0 {
            let now = libmach::cpu();
            if now != cpu {
                cpu_changes += 1;
                cpu = now;
            }
            cpus |= cpu_bit(now);
            SEEN.fetch_or(cpu_bit(now), Ordering::Relaxed);
        }
    }
    // Keep a CPU busy until every online CPU has run one of us (or the deadline passes).
    let mut spare = 0u64;
    while SEEN.load(Ordering::Relaxed) & all != all && counter() < deadline {
        for i in 0..SAMPLE_EVERY {
            spare = spare.wrapping_add(black_box(i));
        }
        let now = libmach::cpu();
        if now != cpu {
            cpu_changes += 1;
            cpu = now;
        }
        cpus |= cpu_bit(now);
        SEEN.fetch_or(cpu_bit(now), Ordering::Relaxed);
    }
    black_box(spare);
    let expected = (sum_of_squares_below(start + ITERATIONS) - sum_of_squares_below(start)) as u64;

    // The allocator under contention: a block of our own, filled and read back.
    let len = 1000 + index as usize * 37;
    let block: Vec<u64> = (0..len as u64).map(|j| j ^ (index << 32)).collect();
    let heap_ok = block
        .iter()
        .enumerate()
        .all(|(j, &v)| v == (j as u64) ^ (index << 32));

    Outcome {
        checksum: sum,
        expected,
        heap_ok,
        cpus,
        cpu_changes,
    }
}

fn main(_args: &Args) -> i32 {
    let mut c = Checks::new("threads");
    let online = libmach::cpu_count();
    c.note(format_args!(
        "{} threads x {} iterations, {} CPUs online",
        THREADS, ITERATIONS, online
    ));

    let all = cpu_mask(online);
    let deadline = counter() + COVER_SECS * counter_frequency();
    let mut handles = Vec::new();
    let mut spawn_failures = 0;
    for index in 0..THREADS {
        match thread::spawn(move || work(index, all, deadline)) {
            Ok(h) => handles.push((index, h)),
            Err(code) => {
                spawn_failures += 1;
                c.note(format_args!("spawn of thread {} failed: {}", index, code));
            }
        }
    }
    c.check_eq("threads spawned", handles.len() as u64, THREADS);
    c.check_eq("spawn failures", spawn_failures, 0);

    let mut all_cpus = 0u64;
    let mut changes = 0u64;
    let mut bad_sums = 0;
    let mut bad_heaps = 0;
    let mut bad_cpus = 0;
    for (index, h) in handles {
        let o = h.join();
        all_cpus |= o.cpus;
        changes += o.cpu_changes as u64;
        if o.checksum != o.expected {
            bad_sums += 1;
            c.note(format_args!(
                "thread {}: checksum {:#x}, expected {:#x}",
                index, o.checksum, o.expected
            ));
        }
        if !o.heap_ok {
            bad_heaps += 1;
            c.note(format_args!("thread {}: heap block corrupted", index));
        }
        if online > 0 && o.cpus >> online.min(63) != 0 {
            bad_cpus += 1;
            c.note(format_args!(
                "thread {}: CPU mask {:#x} beyond {} CPUs",
                index, o.cpus, online
            ));
        }
    }
    c.check_eq("threads with a wrong checksum", bad_sums, 0);
    c.check_eq("threads with a corrupted heap block", bad_heaps, 0);
    c.check_eq("threads that saw a CPU index >= CPU_COUNT", bad_cpus, 0);

    c.note(format_args!(
        "CPUs used: {} ({} of {}); {} CPU changes seen while working",
        cpu_list(all_cpus),
        all_cpus.count_ones(),
        online,
        changes
    ));
    c.check(
        online > 0 && all_cpus & all == all,
        "the threads ran on every online CPU",
        format_args!("used {}, online {}", cpu_list(all_cpus), cpu_list(all)),
    );
    c.finish()
}
