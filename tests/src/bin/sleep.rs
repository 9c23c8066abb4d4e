//! `sleep`: blocking and wake-up in the kernel (GNU Mach's "threads" test covers the same
//! ground with `mach_msg` timeouts). Ten threads each sleep five times with
//! `thread_switch(SWITCH_OPTION_WAIT, 20 ms)`; each sleep must last at least its 20 ms on
//! the virtual counter (a lower bound only: the kernel may wake a thread up to a tick late
//! and the host may be slow), and the ten together must take at least the five rounds.
//! The counter is read at EL0 (`CNTVCT_EL0`, which the kernel opens to user mode).

#![no_std]
#![no_main]

use armach_tests::Checks;
use core::sync::atomic::{AtomicU32, Ordering};
use libmach::{Args, PortName, thread};
use mach_abi::traps::SWITCH_OPTION_WAIT;

libmach::main!(main);

const SLEEPERS: usize = 10;
const ROUNDS: u64 = 5;
const SLEEP_MS: u64 = 20;

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

fn main(_args: &Args) -> i32 {
    let mut c = Checks::new("sleep");
    let freq = frequency();
    c.check(
        freq > 0,
        "the counter frequency is readable at EL0",
        format_args!("{freq} Hz"),
    );
    let min_ticks = SLEEP_MS * freq / 1000;
    let errors = alloc_counter();
    let mut handles = alloc::vec::Vec::new();
    for _ in 0..SLEEPERS {
        handles.push(thread::spawn(move || {
            let mut shortest = u64::MAX;
            for _ in 0..ROUNDS {
                let before = counter();
                if libmach::traps::thread_switch(PortName(0), SWITCH_OPTION_WAIT, SLEEP_MS).is_err()
                {
                    errors.fetch_add(1, Ordering::Relaxed);
                }
                shortest = shortest.min(counter() - before);
            }
            shortest
        }));
    }
    let start = counter();
    let shortest: alloc::vec::Vec<u64> = handles
        .into_iter()
        .map(|h| h.map(|h| h.join()).unwrap_or(0))
        .collect();
    let elapsed = counter() - start;
    c.check_eq(
        "thread_switch(WAIT) errors",
        errors.load(Ordering::Relaxed),
        0,
    );
    let too_short = shortest.iter().filter(|&&t| t < min_ticks).count();
    c.check(
        too_short == 0,
        "every sleep lasted at least 20 ms",
        format_args!(
            "{too_short} threads slept less; shortest {} us",
            shortest.iter().min().copied().unwrap_or(0) * 1_000_000 / freq.max(1)
        ),
    );
    c.check(
        elapsed >= ROUNDS * min_ticks,
        "the sleepers together took at least 5 x 20 ms",
        format_args!("{} ms", elapsed * 1000 / freq.max(1)),
    );

    // The test library's GNU Mach-style helpers: `msleep` (a receive that times out) and
    // `wait_thread_terminated` (a dead-name notification on the thread's port).
    let before = counter();
    let slept = armach_tests::msleep(SLEEP_MS as u32);
    let took = counter() - before;
    c.check(
        slept.is_ok() && took >= min_ticks,
        "msleep(20) ends with MACH_RCV_TIMED_OUT after at least 20 ms",
        format_args!("{slept:?} after {} us", took * 1_000_000 / freq.max(1)),
    );
    static ENDED: AtomicU32 = AtomicU32::new(0);
    let waited = thread::spawn(|| {
        let _ = armach_tests::msleep(SLEEP_MS as u32);
        ENDED.store(1, Ordering::SeqCst);
    });
    match waited {
        Ok(h) => {
            let name = h.port();
            let r = armach_tests::wait_thread_terminated(name);
            c.check(
                r.is_ok() && ENDED.load(Ordering::SeqCst) == 1,
                "wait_thread_terminated returns once the thread has ended",
                format_args!("{r:?}, ended {}", ENDED.load(Ordering::SeqCst)),
            );
            let again = armach_tests::wait_thread_terminated(name);
            c.check_eq(
                "wait_thread_terminated on a thread already gone returns at once",
                again,
                Ok(()),
            );
            h.join();
        }
        Err(e) => {
            c.check(false, "a thread to wait for", format_args!("{e:?}"));
        }
    }
    c.finish()
}

/// A counter shared by the threads (leaked: it lives as long as the task).
fn alloc_counter() -> &'static AtomicU32 {
    alloc::boxed::Box::leak(alloc::boxed::Box::new(AtomicU32::new(0)))
}

extern crate alloc;
