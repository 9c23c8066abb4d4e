//! `switch`: `thread_switch` honours its thread hint and its priority depression. On one
//! CPU the order in which threads run is determined, so the checks are exact there: a
//! hinted thread runs before an older queued one; a thread that depresses its priority
//! does not run again until the other CPU-bound thread is done (a plain yield would be
//! back after one quantum); a depression that times out lets the thread back while the
//! other still runs. With more CPUs the threads run in parallel and only the calls'
//! results are checked.

#![no_std]
#![no_main]

use armach_tests::Checks;
use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use libmach::cpu_count;
use libmach::traps::thread_switch;
use libmach::{Args, PortName, thread};
use mach_abi::traps::{SWITCH_OPTION_DEPRESS, SWITCH_OPTION_NONE};

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

/// Spin in user mode for `ms` milliseconds of counter time.
fn spin_ms(ms: u64) {
    let end = counter() + ms * frequency() / 1000;
    while counter() < end {
        core::hint::spin_loop();
    }
}

static ORDER: AtomicU64 = AtomicU64::new(0);
static NEXT: AtomicU32 = AtomicU32::new(0);

fn record(tag: u64) {
    let slot = NEXT.fetch_add(1, Ordering::AcqRel);
    ORDER.fetch_or(tag << (8 * slot), Ordering::AcqRel);
}

fn main(_args: &Args) -> i32 {
    let mut c = Checks::new("switch");
    let one_cpu = cpu_count() == 1;
    if !one_cpu {
        c.note(format_args!(
            "{} CPUs: run order is not determined, only results are checked",
            cpu_count()
        ));
    }

    // The hint: B is queued first, then C; a switch hinted at C runs C first. Each first
    // waits on GO (B before C), so that both become runnable together, in that order, when
    // the main thread wakes them, just before its switch (a spawn is several calls now: a
    // timer tick during them could run a thread spawned earlier).
    static GO: AtomicU32 = AtomicU32::new(0);
    let go = &GO as *const AtomicU32 as usize;
    let gated = move |tag| {
        while GO.load(Ordering::Acquire) == 0 {
            libmach::traps::event_wait(go, 0);
        }
        record(tag)
    };
    let b = thread::spawn(move || gated(0xb));
    let waiting = |h: &thread::JoinHandle<()>| {
        armach_tests::poll_sleeping(5_000, || {
            libmach::kern::thread_basic_info(h.thread())
                .is_ok_and(|i| i.run_state == libmach::abi::info::TH_STATE_WAITING)
        })
    };
    let b_waits = b.as_ref().is_ok_and(waiting);
    let cc = thread::spawn(move || gated(0xc));
    let c_waits = cc.as_ref().is_ok_and(waiting);
    c.check(
        b_waits && c_waits,
        "B, then C, wait to be released",
        format_args!("{b_waits} {c_waits}"),
    );
    let (Ok(b), Ok(cc)) = (b, cc) else {
        c.check(false, "threads start", format_args!("spawn failed"));
        return c.finish();
    };
    GO.store(1, Ordering::Release);
    libmach::traps::event_wake(go, true);
    let r = thread_switch(cc.port(), SWITCH_OPTION_NONE, 0);
    c.check_eq("thread_switch(hint C, NONE)", r, Ok(()));
    b.join();
    cc.join();
    let order = ORDER.load(Ordering::Acquire);
    if one_cpu {
        c.check_eq("run order after the hint (C then B)", order, 0xb0c);
    }

    // Depression: the main thread depresses itself for up to 2 s while D computes for
    // 150 ms; on one CPU it runs again only once D is done.
    static D_DONE: AtomicU32 = AtomicU32::new(0);
    let d = thread::spawn(|| {
        spin_ms(150);
        D_DONE.store(1, Ordering::Release);
    });
    let start = counter();
    let r = thread_switch(PortName::NULL, SWITCH_OPTION_DEPRESS, 2000);
    let back_ms = (counter() - start) * 1000 / frequency();
    c.check_eq("thread_switch(DEPRESS, 2000 ms)", r, Ok(()));
    if one_cpu {
        c.check_eq(
            "the depressed thread ran again only after the other finished",
            D_DONE.load(Ordering::Acquire),
            1,
        );
        c.check(
            back_ms < 1500,
            "the depression ended when the thread ran again, not at its timeout",
            format_args!("back after {back_ms} ms"),
        );
    }
    if let Ok(d) = d {
        d.join();
    }

    // A depression that times out: E computes for 400 ms; the main thread is back after
    // its 40 ms depression plus at most a quantum or two, while E still runs.
    static E_DONE: AtomicU32 = AtomicU32::new(0);
    let e = thread::spawn(|| {
        spin_ms(400);
        E_DONE.store(1, Ordering::Release);
    });
    let start = counter();
    let r = thread_switch(PortName::NULL, SWITCH_OPTION_DEPRESS, 40);
    let back_ms = (counter() - start) * 1000 / frequency();
    c.check_eq("thread_switch(DEPRESS, 40 ms)", r, Ok(()));
    if one_cpu {
        c.check(
            back_ms >= 40 && E_DONE.load(Ordering::Acquire) == 0,
            "after a 40 ms depression the thread is back while the other still runs",
            format_args!(
                "back after {back_ms} ms, other done: {}",
                E_DONE.load(Ordering::Acquire)
            ),
        );
    }
    if let Ok(e) = e {
        e.join();
    }
    let r = thread_switch(PortName::NULL, 7, 0);
    c.check(
        r.is_err(),
        "an unknown option is refused",
        format_args!("{r:?}"),
    );
    c.finish()
}
