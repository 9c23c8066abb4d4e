//! `isolation`: address spaces are separate. Meant to be started as several instances at
//! once (`init=isolation,isolation,isolation`), each its own task. Every instance maps the
//! same fixed user address with `vm_allocate`, checks it arrives zero-filled (not holding
//! another instance's data), fills it with a pattern of its own (keyed by its main thread's
//! id, which no other task has), then runs one thread per online CPU plus one for a while:
//! each rewrites its own page every round, yields or sleeps so that the CPUs keep switching
//! between the tasks, and checks after every switch that its page and the shared pages still
//! hold this instance's pattern. The threads go on until they have been seen on every online
//! CPU and a second has passed (at most 20 s), so each CPU switches between the instances'
//! address spaces many times. Run alone it still checks fixed placement and the patterns;
//! the test matrix counts one success line per instance.

#![no_std]
#![no_main]

extern crate alloc;

use alloc::vec::Vec;
use armach_tests::{Checks, counter, counter_frequency, cpu_bit, cpu_list, cpu_mask};
use core::sync::atomic::{AtomicU64, Ordering};
use libmach::abi::traps::{PAGE_SIZE, SWITCH_OPTION_NONE, SWITCH_OPTION_WAIT};
use libmach::{Args, PortName, thread, traps};

libmach::main!(main);

/// The fixed address every instance maps (inside user space, away from the program, its
/// heap and stacks, which `vm_allocate(anywhere)` places low).
const BASE: u64 = 0x0000_5a00_0000_0000;
/// Pages at `BASE`: the first `MAX_WORKERS` are one per worker, the rest shared.
const PAGES: u64 = 32;
const MAX_WORKERS: u64 = 16;
const WORDS_PER_PAGE: u64 = PAGE_SIZE / 8;
const MIN_SECS: u64 = 1;
const MAX_SECS: u64 = 20;

/// CPUs this instance's threads have been seen on (each task has its own `.data`).
static SEEN: AtomicU64 = AtomicU64::new(0);

/// The word at `index` for instance `id` in `round` (round 0: the initial fill).
fn pattern(id: u64, round: u64, index: u64) -> u64 {
    (id << 48) ^ (round << 32) ^ (index.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 16)
}

fn word(index: u64) -> *mut u64 {
    (BASE + index * 8) as *mut u64
}

fn read(index: u64) -> u64 {
    // SAFETY: `index` is below PAGES * WORDS_PER_PAGE, in the mapping made by `main` and
    // kept until every worker has been joined.
    unsafe { word(index).read_volatile() }
}

fn write(index: u64, value: u64) {
    // SAFETY: as for `read`; each worker writes only its own page.
    unsafe { word(index).write_volatile(value) }
}

/// What one worker found.
struct Outcome {
    rounds: u64,
    switches: u64,
    bad_words: u64,
    /// The first wrong word: (address, seen, expected).
    first_bad: Option<(u64, u64, u64)>,
}

fn worker(id: u64, k: u64, all: u64, start: u64) -> Outcome {
    let freq = counter_frequency();
    let (min_end, max_end) = (start + MIN_SECS * freq, start + MAX_SECS * freq);
    let mut out = Outcome {
        rounds: 0,
        switches: 0,
        bad_words: 0,
        first_bad: None,
    };
    let note = |index: u64, seen: u64, expected: u64, out: &mut Outcome| {
        out.bad_words += 1;
        out.first_bad
            .get_or_insert((BASE + index * 8, seen, expected));
    };
    let own = k * WORDS_PER_PAGE..(k + 1) * WORDS_PER_PAGE;
    let shared = MAX_WORKERS * WORDS_PER_PAGE..PAGES * WORDS_PER_PAGE;
    let mut cpu = libmach::cpu();
    loop {
        let round = out.rounds + 1;
        for i in own.clone() {
            write(i, pattern(id, round, i));
        }
        // Let the other instances run here, on this CPU or another.
        let _ = if round.is_multiple_of(8) {
            traps::thread_switch(PortName(0), SWITCH_OPTION_WAIT, 1)
        } else {
            traps::thread_switch(PortName(0), SWITCH_OPTION_NONE, 0)
        };
        let now = libmach::cpu();
        if now != cpu {
            out.switches += 1;
            cpu = now;
        }
        SEEN.fetch_or(cpu_bit(now), Ordering::Relaxed);
        for i in own.clone() {
            let (seen, expected) = (read(i), pattern(id, round, i));
            if seen != expected {
                note(i, seen, expected, &mut out);
            }
        }
        for i in shared.clone() {
            let (seen, expected) = (read(i), pattern(id, 0, i));
            if seen != expected {
                note(i, seen, expected, &mut out);
            }
        }
        out.rounds = round;
        let t = counter();
        let covered = SEEN.load(Ordering::Relaxed) & all == all;
        if (covered && t >= min_end) || t >= max_end {
            return out;
        }
    }
}

fn main(_args: &Args) -> i32 {
    let mut c = Checks::new("isolation");
    // Thread ids are kernel-wide, so the main thread's name tells the instances apart.
    let id = u64::from(traps::mach_thread_self().0) & 0xffff;
    let online = libmach::cpu_count();
    let all = cpu_mask(online);
    let workers = (u64::from(online) + 1).clamp(2, MAX_WORKERS);
    c.note(format_args!(
        "instance {id:#x}: {PAGES} pages at {BASE:#x}, {workers} threads, {online} CPUs online"
    ));

    let task = traps::mach_task_self();
    let placed = traps::vm_allocate(task, BASE, PAGES * PAGE_SIZE, false);
    if !c.check(
        placed == Ok(BASE),
        "vm_allocate(fixed) at the address every instance uses",
        format_args!("{id:#x}: {placed:x?}"),
    ) {
        return c.finish();
    }
    let words = PAGES * WORDS_PER_PAGE;
    let nonzero = (0..words).filter(|&i| read(i) != 0).count();
    c.check_eq(
        "the fresh pages are zero (no other instance's data)",
        nonzero,
        0,
    );
    for i in 0..words {
        write(i, pattern(id, 0, i));
    }

    let start = counter();
    let mut handles = Vec::new();
    for k in 0..workers {
        match thread::spawn(move || worker(id, k, all, start)) {
            Ok(h) => handles.push(h),
            Err(code) => c.note(format_args!("spawn of thread {k} failed: {code}")),
        }
    }
    c.check_eq("threads started", handles.len() as u64, workers);
    let (mut rounds, mut switches, mut bad) = (0, 0, 0);
    let mut first_bad = None;
    for h in handles {
        let o = h.join();
        rounds += o.rounds;
        switches += o.switches;
        bad += o.bad_words;
        first_bad = first_bad.or(o.first_bad);
    }
    let secs = (counter() - start) as f64 / counter_frequency() as f64;
    c.note(format_args!(
        "instance {id:#x}: {rounds} rounds in {secs:.1} s, {switches} CPU changes"
    ));
    c.check(
        bad == 0,
        "words read back after switches held our pattern",
        format_args!("{id:#x}: {bad} wrong, first {first_bad:x?}"),
    );
    let shared_bad = (MAX_WORKERS * WORDS_PER_PAGE..words)
        .filter(|&i| read(i) != pattern(id, 0, i))
        .count();
    c.check_eq("shared pages intact at the end", shared_bad, 0);
    let seen = SEEN.load(Ordering::Relaxed);
    c.check(
        seen & all == all,
        "our threads ran on every online CPU",
        format_args!("{id:#x}: {} of {}", cpu_list(seen), cpu_list(all)),
    );
    // SAFETY: every worker has been joined; nothing refers into the range any more.
    let freed = unsafe { traps::vm_deallocate(task, BASE, PAGES * PAGE_SIZE) };
    c.check(
        freed.is_ok(),
        "vm_deallocate of the fixed range",
        format_args!("{freed:?}"),
    );
    c.finish()
}
