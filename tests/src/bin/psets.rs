//! `psets`: processor sets through the temporary traps 1020-1027 (stand-ins for the
//! `mach_host` routines). Worker threads moved into an empty set stop running until a
//! processor is assigned to it; then they run only on that processor (seen through the
//! temporary `CURRENT_CPU`) while the main thread, in the default set, never runs there;
//! a handoff to one of them (`thread_switch` with a hint) does not run it elsewhere; moved
//! back they run again; destroying a set returns its processor and threads to the
//! default set (a waiting thread runs again); `task_assign` puts the task's new threads in
//! its set; GNU Mach's refusals (the boot processor, the default set's destruction, unknown
//! sets, threads and processors) give `KERN_INVALID_ARGUMENT`. On one CPU the parts that
//! need a second processor are skipped.

#![no_std]
#![no_main]

extern crate alloc;

use alloc::vec::Vec;
use armach_tests::{Checks, cpu_bit, cpu_list, sleep_ms};
use core::hint::black_box;
use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use libmach::abi::traps::SWITCH_OPTION_NONE;
use libmach::traps::{
    processor_assign, processor_get_assignment, processor_set_counts, processor_set_create,
    processor_set_destroy, task_assign, thread_assign, thread_get_assignment,
};
use libmach::{Args, KernReturn, thread};

libmach::main!(main);

const WORKERS: usize = 3;
/// A thread's name for `thread_switch`'s hint: this plus its id (the kernel's placeholder
/// names until threads have ports).
const THREAD_NAME_BASE: u32 = 0x1000;
/// Phases the main thread sets; workers record the CPUs they run on in `IN_SET`.
const RUN: u32 = 0;
const IN_SET: u32 = 1;
const STOP: u32 = 2;

static PHASE: AtomicU32 = AtomicU32::new(RUN);
static COUNTS: [AtomicU64; WORKERS + 1] = [const { AtomicU64::new(0) }; WORKERS + 1];
static SEEN_IN_SET: [AtomicU64; WORKERS + 1] = [const { AtomicU64::new(0) }; WORKERS + 1];

fn work(index: usize) {
    loop {
        let phase = PHASE.load(Ordering::Acquire);
        if phase == STOP {
            break;
        }
        COUNTS[index].fetch_add(1, Ordering::Relaxed);
        if phase == IN_SET {
            SEEN_IN_SET[index].fetch_or(cpu_bit(libmach::cpu()), Ordering::Relaxed);
        }
        let mut x = 0u64;
        for i in 0..2000u64 {
            x = x.wrapping_add(black_box(i));
        }
        black_box(x);
    }
}

fn counts(of: &[usize]) -> Vec<u64> {
    of.iter()
        .map(|&i| COUNTS[i].load(Ordering::Relaxed))
        .collect()
}

/// Whether the workers `of` are stopped: their counts do not move over 100 ms (after 30 ms
/// for the last to leave its CPU).
fn stopped(of: &[usize]) -> bool {
    sleep_ms(30);
    let before = counts(of);
    sleep_ms(100);
    counts(of) == before
}

/// Whether every worker of `of` makes progress within 2 s.
fn running(of: &[usize]) -> bool {
    let before = counts(of);
    armach_tests::poll_sleeping(2000, || {
        counts(of).iter().zip(&before).all(|(now, then)| now > then)
    })
}

fn main(_args: &Args) -> i32 {
    let mut c = Checks::new("psets");
    let online = libmach::cpu_count();
    c.note(format_args!("{online} CPUs online"));
    let boot = 0;

    // GNU Mach's refusals.
    let inval = Err(KernReturn::InvalidArgument);
    c.check_eq(
        "processor_assign(boot processor)",
        processor_assign(boot, 0),
        inval,
    );
    c.check_eq(
        "processor_assign(no such cpu)",
        processor_assign(4096, 0),
        inval,
    );
    c.check_eq(
        "processor_set_destroy(default)",
        processor_set_destroy(0),
        inval,
    );
    c.check_eq(
        "processor_set_destroy(unknown)",
        processor_set_destroy(77),
        inval,
    );
    c.check_eq(
        "thread_assign(no such thread)",
        thread_assign(0xdead_beef, 0),
        inval,
    );
    c.check_eq("thread_assign(unknown set)", thread_assign(0, 12345), inval);
    c.check_eq(
        "processor_get_assignment(boot)",
        processor_get_assignment(boot),
        Ok(0),
    );
    c.check_eq(
        "thread_get_assignment(self)",
        thread_get_assignment(0),
        Ok(0),
    );

    let mut handles = Vec::new();
    for index in 0..WORKERS {
        match thread::spawn(move || work(index)) {
            Ok(h) => handles.push(h),
            Err(kr) => c.note(format_args!("spawn failed: {kr}")),
        }
    }
    c.check_eq("workers spawned", handles.len(), WORKERS);
    let ids: Vec<u64> = handles.iter().map(|h| u64::from(h.port().0)).collect();
    let all: Vec<usize> = (0..handles.len()).collect();
    c.check(
        running(&all),
        "workers run in the default set",
        format_args!("{:?}", counts(&all)),
    );

    // An empty set keeps its threads waiting.
    let set = match processor_set_create() {
        Ok(set) => set,
        Err(kr) => {
            c.check(false, "processor_set_create", format_args!("{kr}"));
            PHASE.store(STOP, Ordering::Release);
            return c.finish();
        }
    };
    c.check(
        set != 0,
        "a new set is not the default set",
        format_args!("{set}"),
    );
    let empty = processor_set_counts(set).map(|n| (n.processors, n.threads));
    c.check_eq("a new set is empty", empty, Ok((0, 0)));
    for &id in &ids {
        c.check_eq("thread_assign(worker, set)", thread_assign(id, set), Ok(()));
    }
    c.check_eq(
        "thread_get_assignment(worker)",
        thread_get_assignment(ids[0]),
        Ok(set),
    );
    let n = processor_set_counts(set).map(|n| n.threads);
    c.check_eq("threads counted in the set", n, Ok(WORKERS as u64));
    c.check(
        stopped(&all),
        "workers in an empty set do not run",
        format_args!("{:?}", counts(&all)),
    );

    if online >= 2 {
        // A processor arrives: the workers run there, and only there.
        let target = online - 1;
        PHASE.store(IN_SET, Ordering::Release);
        c.check_eq(
            "processor_assign(cpu, set)",
            processor_assign(target, set),
            Ok(()),
        );
        c.check_eq(
            "processor_get_assignment(cpu)",
            processor_get_assignment(target),
            Ok(set),
        );
        let n = processor_set_counts(set).map(|n| n.processors);
        c.check_eq("processors counted in the set", n, Ok(1));
        c.check(
            running(&all),
            "workers run once the set has a processor",
            format_args!("{:?}", counts(&all)),
        );
        let mut main_seen = 0u64;
        for round in 0..10 {
            sleep_ms(10);
            main_seen |= cpu_bit(libmach::cpu());
            // A handoff (`thread_switch` with a hint) to a worker must not run it here.
            let hint = libmach::PortName(THREAD_NAME_BASE + ids[round % ids.len()] as u32);
            let _ = libmach::traps::thread_switch(hint, SWITCH_OPTION_NONE, 0);
            main_seen |= cpu_bit(libmach::cpu());
        }
        let mut seen = 0u64;
        for s in &SEEN_IN_SET[..WORKERS] {
            seen |= s.load(Ordering::Relaxed);
        }
        c.check(
            seen == cpu_bit(target),
            "the workers ran only on their set's processor",
            format_args!("{} (set's: cpu{target})", cpu_list(seen)),
        );
        c.check(
            main_seen & cpu_bit(target) == 0,
            "the main thread never ran on the set's processor",
            format_args!("{}", cpu_list(main_seen)),
        );
        // The processor goes back: its threads wait again.
        c.check_eq(
            "processor_assign(cpu, default)",
            processor_assign(target, 0),
            Ok(()),
        );
        c.check(
            stopped(&all),
            "workers wait again once their processor leaves",
            format_args!("{:?}", counts(&all)),
        );
        PHASE.store(RUN, Ordering::Release);
    }

    // Back to the default set: they run again.
    for &id in &ids {
        c.check_eq(
            "thread_assign(worker, default)",
            thread_assign(id, 0),
            Ok(()),
        );
    }
    c.check(
        running(&all),
        "workers run again in the default set",
        format_args!("{:?}", counts(&all)),
    );
    c.check_eq(
        "processor_set_destroy(set)",
        processor_set_destroy(set),
        Ok(()),
    );
    c.check_eq(
        "processor_set_destroy(set) again",
        processor_set_destroy(set),
        inval,
    );
    c.check_eq(
        "processor_set_info(destroyed set)",
        processor_set_counts(set).map(|n| n.threads),
        Err(KernReturn::InvalidArgument),
    );

    // Destroying a set returns its threads (one waiting, one running) and its processor.
    if let Ok(set2) = processor_set_create() {
        c.check(
            set2 != set,
            "a new set gets a new id",
            format_args!("{set2}"),
        );
        let _ = thread_assign(ids[0], set2);
        if online >= 2 {
            let _ = processor_assign(online - 1, set2);
            let _ = thread_assign(ids[1], set2);
        }
        c.check_eq(
            "processor_set_destroy(set with threads)",
            processor_set_destroy(set2),
            Ok(()),
        );
        c.check_eq(
            "a destroyed set's thread is in the default set",
            thread_get_assignment(ids[0]),
            Ok(0),
        );
        if online >= 2 {
            c.check_eq(
                "a destroyed set's processor is in the default set",
                processor_get_assignment(online - 1),
                Ok(0),
            );
        }
        c.check(
            running(&all),
            "a destroyed set's threads run",
            format_args!("{:?}", counts(&all)),
        );
    } else {
        c.check(
            false,
            "processor_set_create (second)",
            format_args!("refused"),
        );
    }

    // Churn: processors and threads moved in and out of a set over and over while the
    // workers run (the races between placement, the switch and the moves); nothing is lost
    // and, once all are back, every worker runs.
    if online >= 2
        && let Ok(set4) = processor_set_create()
    {
        let mut failures = 0u32;
        for round in 0..300u32 {
            let cpu = 1 + round % (online - 1);
            let worker = ids[round as usize % ids.len()];
            let steps = [
                processor_assign(cpu, set4),
                thread_assign(worker, set4),
                processor_assign(cpu, 0),
                thread_assign(worker, if round % 3 == 0 { set4 } else { 0 }),
            ];
            failures += steps.iter().filter(|r| r.is_err()).count() as u32;
            if round % 16 == 0 {
                libmach::yield_now();
            }
        }
        c.check_eq("moves refused during the churn", failures, 0);
        c.check_eq(
            "processor_set_destroy after the churn",
            processor_set_destroy(set4),
            Ok(()),
        );
        c.check(
            running(&all),
            "every worker runs after the churn",
            format_args!("{:?}", counts(&all)),
        );
    }

    // task_assign: the task's new threads are created in its set.
    if let Ok(set3) = processor_set_create() {
        c.check_eq(
            "task_assign(set, no threads)",
            task_assign(set3, false),
            Ok(()),
        );
        c.check_eq(
            "the caller stays where it was",
            thread_get_assignment(0),
            Ok(0),
        );
        match thread::spawn(|| work(WORKERS)) {
            Ok(h) => {
                c.check_eq(
                    "a new thread is in the task's set",
                    thread_get_assignment(u64::from(h.port().0)),
                    Ok(set3),
                );
                c.check(
                    stopped(&[WORKERS]),
                    "a new thread of an empty set does not run",
                    format_args!("{}", COUNTS[WORKERS].load(Ordering::Relaxed)),
                );
                c.check_eq(
                    "task_assign(default, threads)",
                    task_assign(0, true),
                    Ok(()),
                );
                c.check_eq(
                    "the new thread follows its task",
                    thread_get_assignment(u64::from(h.port().0)),
                    Ok(0),
                );
                c.check(
                    running(&[WORKERS]),
                    "the new thread runs",
                    format_args!("{}", COUNTS[WORKERS].load(Ordering::Relaxed)),
                );
                handles.push(h);
            }
            Err(kr) => {
                c.check(false, "spawn in a set", format_args!("{kr}"));
            }
        }
        c.check_eq(
            "processor_set_destroy(set3)",
            processor_set_destroy(set3),
            Ok(()),
        );
    } else {
        c.check(
            false,
            "processor_set_create (third)",
            format_args!("refused"),
        );
    }

    let n = processor_set_counts(0).map(|n| n.processors);
    c.check_eq(
        "every processor is back in the default set",
        n,
        Ok(online as u64),
    );
    PHASE.store(STOP, Ordering::Release);
    for h in handles {
        h.join();
    }
    c.finish()
}
