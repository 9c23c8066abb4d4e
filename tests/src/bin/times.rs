//! `times`: user and system time of a thread, as the kernel charges them from the counter
//! at every kernel entry, exit and switch (the temporary `THREAD_TIMES` trap stands in for
//! `thread_info`). Three phases, each measured against the counter read at EL0:
//! computing in user mode (charged as user time), making traps that work in the kernel
//! (system time grows), and sleeping (charged as neither). Interrupts are masked in the
//! kernel, so a tick-based account would show no system time at all.

#![no_std]
#![no_main]

use armach_tests::Checks;
use core::hint::black_box;
use libmach::traps::{thread_switch, thread_times};
use libmach::{Args, PortName};
use mach_abi::traps::SWITCH_OPTION_WAIT;

libmach::main!(main);

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

fn ns(ticks: u64, freq: u64) -> u64 {
    (ticks as u128 * 1_000_000_000 / freq as u128) as u64
}

/// Elapsed counter time (ns) and the (user, system) time added by `f`. The counter is
/// read outside the two `thread_times` calls, so everything charged between them lies
/// within the elapsed time, however long the calls themselves take on a loaded host.
fn measure(freq: u64, f: impl FnOnce()) -> (u64, u64, u64) {
    let t0 = counter();
    let (u0, s0) = thread_times();
    f();
    let (u1, s1) = thread_times();
    let t1 = counter();
    (ns(t1 - t0, freq), u1 - u0, s1 - s0)
}

fn main(_args: &Args) -> i32 {
    let mut c = Checks::new("times");
    let freq = frequency();
    const MS: u64 = 1_000_000;
    // Rounding: each figure is a whole number of nanoseconds.
    const US: u64 = 1_000;

    // 1. 60 ms of computing in user mode.
    let (elapsed, user, system) = measure(freq, || {
        let end = counter() + 60 * freq / 1000;
        let mut x = 1u64;
        while counter() < end {
            x = black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
        }
    });
    c.note(format_args!(
        "computing: {} us elapsed, {} us user, {} us system",
        elapsed / 1000,
        user / 1000,
        system / 1000
    ));
    c.check(
        user >= elapsed / 2,
        "computing is charged as user time (at least half the elapsed time)",
        format_args!("user {user} ns of {elapsed} ns"),
    );
    c.check(
        user + system <= elapsed + US,
        "no more time is charged than passed",
        format_args!("user + system {} ns, elapsed {elapsed} ns", user + system),
    );

    // 2. Traps that do work in the kernel: allocate and free a page, many times.
    let (elapsed, user, system) = measure(freq, || {
        for _ in 0..4000 {
            let task = libmach::traps::mach_task_self();
            if let Ok(addr) = libmach::traps::vm_allocate(task, 0, 4096, true) {
                // SAFETY: the page was just allocated and nothing refers to it.
                let _ = unsafe { libmach::traps::vm_deallocate(task, addr, 4096) };
            }
        }
    });
    c.note(format_args!(
        "traps: {} us elapsed, {} us user, {} us system",
        elapsed / 1000,
        user / 1000,
        system / 1000
    ));
    c.check(
        system >= elapsed / 10,
        "work in traps is charged as system time (at least a tenth of the elapsed time)",
        format_args!("system {system} ns of {elapsed} ns"),
    );
    c.check(
        user + system <= elapsed + US,
        "no more time is charged than passed",
        format_args!("user + system {} ns, elapsed {elapsed} ns", user + system),
    );

    // 3. Sleeping 50 ms is charged as neither. Three sleeps, judged by the least charged:
    // entering the wait and leaving it are kernel time, and a loaded host can hold the
    // virtual CPU away for milliseconds in either, but hardly in all three. Billing the
    // sleep itself would show as 50 ms or more in every one.
    let mut least = u64::MAX;
    let mut shortest = u64::MAX;
    for _ in 0..3 {
        let (elapsed, user, system) = measure(freq, || {
            let _ = thread_switch(PortName(0), SWITCH_OPTION_WAIT, 50);
        });
        c.note(format_args!(
            "sleeping: {} us elapsed, {} us user, {} us system",
            elapsed / 1000,
            user / 1000,
            system / 1000
        ));
        least = least.min(user + system);
        shortest = shortest.min(elapsed);
    }
    c.check(
        shortest >= 50 * MS,
        "every sleep lasted 50 ms",
        format_args!("shortest {shortest} ns"),
    );
    c.check(
        least < 10 * MS,
        "a sleeping thread is charged (almost) nothing (under a fifth of the sleep)",
        format_args!("least user + system of three sleeps {least} ns"),
    );
    c.finish()
}
