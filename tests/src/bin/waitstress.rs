//! `waitstress`: the kernel's wait/wake protocol under load on every CPU. Waiter threads
//! wait again and again on a few events, some waits with a timeout and some without, while
//! waker threads wake those events (one waiter or all) as fast as they can. Some waits are
//! on an event nobody wakes, so they must time out.
//!
//! What must hold, counted exactly: every wait a waker reports ending is seen as
//! `AWAKENED` by exactly one waiter (the sums match: no wake-up lost or delivered twice);
//! every wait on the silent event ends `TIMED_OUT`, after at least its timeout; no wait
//! without a timeout ends `TIMED_OUT` (a stale timer never ends a later wait); nothing is
//! interrupted; and every waiter finishes (no thread is lost). The waits use the temporary
//! `EVENT_WAIT`/`EVENT_WAKE` traps, which stand in for gsync.

#![no_std]
#![no_main]

extern crate alloc;

use alloc::vec::Vec;
use armach_tests::Checks;
use core::sync::atomic::{AtomicU64, Ordering};
use libmach::traps::{WaitResult, event_wait, event_wake};
use libmach::{Args, thread};

libmach::main!(main);

const WAITERS: usize = 24;
const WAKERS: usize = 4;
const ROUNDS: u64 = 120;
/// Events the wakers wake.
const EVENTS: usize = 4;
/// Timeout of the waits that have one, in ms.
const TIMEOUT_MS: u64 = 3;

/// The events are the addresses of these words (their contents do not matter).
static EVENT_WORDS: [AtomicU64; EVENTS + 1] = [const { AtomicU64::new(0) }; EVENTS + 1];
/// Nobody wakes this one.
const SILENT: usize = EVENTS;

fn event(i: usize) -> usize {
    &EVENT_WORDS[i] as *const AtomicU64 as usize
}

static WOKEN_BY_WAKERS: AtomicU64 = AtomicU64::new(0);
static WAITERS_DONE: AtomicU64 = AtomicU64::new(0);

fn counter() -> u64 {
    let value: u64;
    // SAFETY: reading the virtual counter has no side effect; the kernel allows it at EL0.
    unsafe { core::arch::asm!("mrs {}, cntvct_el0", out(reg) value, options(nomem, nostack)) };
    value
}

fn frequency() -> u64 {
    let value: u64;
    // SAFETY: reading the counter frequency has no side effect.
    unsafe { core::arch::asm!("mrs {}, cntfrq_el0", out(reg) value, options(nomem, nostack)) };
    value
}

/// What one waiter saw.
#[derive(Default, Clone, Copy)]
struct Seen {
    awakened: u64,
    timed_out: u64,
    silent_waits: u64,
    silent_timed_out: u64,
    silent_too_short: u64,
    untimed_timed_out: u64,
    interrupted: u64,
    other: u64,
}

fn waiter(index: usize, min_ticks: u64) -> Seen {
    let mut seen = Seen::default();
    for round in 0..ROUNDS {
        let n = index as u64 * 7 + round;
        if n.is_multiple_of(5) {
            seen.silent_waits += 1;
            let before = counter();
            let r = event_wait(event(SILENT), TIMEOUT_MS);
            if r == WaitResult::TimedOut {
                seen.silent_timed_out += 1;
                if counter() - before < min_ticks {
                    seen.silent_too_short += 1;
                }
            }
            count(&mut seen, r);
            continue;
        }
        let timed = n.is_multiple_of(2);
        let r = event_wait(
            event(n as usize % EVENTS),
            if timed { TIMEOUT_MS } else { 0 },
        );
        if !timed && r == WaitResult::TimedOut {
            seen.untimed_timed_out += 1;
        }
        count(&mut seen, r);
    }
    WAITERS_DONE.fetch_add(1, Ordering::AcqRel);
    seen
}

fn count(seen: &mut Seen, r: WaitResult) {
    match r {
        WaitResult::Awakened => seen.awakened += 1,
        WaitResult::TimedOut => seen.timed_out += 1,
        WaitResult::Interrupted => seen.interrupted += 1,
        WaitResult::Other(_) => seen.other += 1,
    }
}

fn waker(index: usize) -> u64 {
    let mut calls = 0u64;
    let mut i = index;
    while WAITERS_DONE.load(Ordering::Acquire) < WAITERS as u64 {
        let all = i.is_multiple_of(3);
        let woken = event_wake(event(i % EVENTS), all);
        WOKEN_BY_WAKERS.fetch_add(woken, Ordering::AcqRel);
        calls += 1;
        i += 1;
        if i.is_multiple_of(8) {
            libmach::traps::swtch();
        }
    }
    calls
}

fn main(_args: &Args) -> i32 {
    let mut c = Checks::new("waitstress");
    let cpus = libmach::cpu_count();
    let min_ticks = TIMEOUT_MS * frequency() / 1000;
    c.note(format_args!(
        "{WAITERS} waiters x {ROUNDS} waits on {EVENTS} events (+1 silent), {WAKERS} wakers, {cpus} CPUs"
    ));
    let mut waiters = Vec::new();
    for i in 0..WAITERS {
        waiters.push(thread::spawn(move || waiter(i, min_ticks)));
    }
    let mut wakers = Vec::new();
    for i in 0..WAKERS {
        wakers.push(thread::spawn(move || waker(i)));
    }
    let spawned =
        waiters.iter().filter(|h| h.is_ok()).count() + wakers.iter().filter(|h| h.is_ok()).count();
    c.check_eq("threads started", spawned, WAITERS + WAKERS);

    let mut total = Seen::default();
    let mut finished = 0;
    for h in waiters.into_iter().flatten() {
        let s = h.join();
        finished += 1;
        total.awakened += s.awakened;
        total.timed_out += s.timed_out;
        total.silent_waits += s.silent_waits;
        total.silent_timed_out += s.silent_timed_out;
        total.silent_too_short += s.silent_too_short;
        total.untimed_timed_out += s.untimed_timed_out;
        total.interrupted += s.interrupted;
        total.other += s.other;
    }
    let wake_calls: u64 = wakers.into_iter().flatten().map(|h| h.join()).sum();
    let woken = WOKEN_BY_WAKERS.load(Ordering::Acquire);
    c.note(format_args!(
        "{wake_calls} wake calls ended {woken} waits; waiters saw {} awakened, {} timed out ({} on the silent event)",
        total.awakened, total.timed_out, total.silent_timed_out
    ));
    c.check_eq("waiters that finished (none lost)", finished, WAITERS);
    c.check_eq(
        "waits the wakers ended = waits that ended AWAKENED (each wake-up delivered once)",
        total.awakened,
        woken,
    );
    c.check_eq(
        "every wait ended exactly once",
        total.awakened + total.timed_out + total.interrupted + total.other,
        WAITERS as u64 * ROUNDS,
    );
    c.check_eq(
        "waits on the silent event that timed out",
        total.silent_timed_out,
        total.silent_waits,
    );
    c.check_eq(
        "timeouts shorter than 3 ms on the counter",
        total.silent_too_short,
        0,
    );
    c.check_eq(
        "waits without a timeout that ended TIMED_OUT",
        total.untimed_timed_out,
        0,
    );
    c.check_eq(
        "interrupted or unknown results",
        total.interrupted + total.other,
        0,
    );
    c.check(
        total.awakened > 0,
        "some waits were ended by wakers",
        format_args!("{}", total.awakened),
    );
    c.finish()
}
