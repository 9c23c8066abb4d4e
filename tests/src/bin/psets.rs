//! `psets`: processor sets through the `mach_host` routines over IPC (the stubs mig-rs
//! generates). A set is made with `processor_set_create` (a control and a name port);
//! worker threads assigned to it while it is empty stop running until a processor is
//! assigned to it; then they run only on that processor (seen through
//! `thread_info(THREAD_SCHED_INFO).last_processor`) while the main thread, in the default set, never runs there, and
//! `thread_get_assignment`, `processor_get_assignment`, `processor_info` and
//! `processor_set_info` agree; a handoff to one of them (`thread_switch` with its port as
//! the hint) does not run it elsewhere; moved back they run again; destroying a set
//! returns its processor and threads to the default set (a waiting thread runs again) and
//! kills its ports; a processor alone in a set without threads counts idle time while it
//! idles; `task_assign` puts the task's new threads in its set. On one CPU the
//! parts that need a second processor are skipped.

#![no_std]
#![no_main]

extern crate alloc;

use alloc::vec::Vec;
use armach_tests::host::{lend, processors};
use armach_tests::{Checks, cpu_bit, cpu_list, sleep_ms};
use core::hint::black_box;
use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use libmach::abi::traps::SWITCH_OPTION_NONE;
use libmach::ipc::{self, Client, SendRight, Trap};
use libmach::mig::mach_host;
use libmach::{Args, KernReturn, PortName, kern, thread};

libmach::main!(main);

const WORKERS: usize = 3;
/// Phases the main thread sets; workers record the CPUs they run on in `IN_SET`.
const RUN: u32 = 0;
const IN_SET: u32 = 1;
const STOP: u32 = 2;

const PROCESSOR_BASIC_INFO: i32 = 1;
const PROCESSOR_SET_BASIC_INFO: i32 = 1;

static PHASE: AtomicU32 = AtomicU32::new(RUN);
static COUNTS: [AtomicU64; WORKERS + 1] = [const { AtomicU64::new(0) }; WORKERS + 1];
static SEEN_IN_SET: [AtomicU64; WORKERS + 1] = [const { AtomicU64::new(0) }; WORKERS + 1];
/// Each worker's thread port (`mach_thread_self`), once it runs.
static PORTS: [AtomicU32; WORKERS + 1] = [const { AtomicU32::new(0) }; WORKERS + 1];

fn work(index: usize) {
    PORTS[index].store(libmach::traps::mach_thread_self().0, Ordering::Release);
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

/// The set (its name port's name) thread `thread` is assigned to.
fn thread_set(t: &mut Client<Trap>, thread: PortName) -> Result<PortName, KernReturn> {
    mach_host::thread_get_assignment(t, &lend(thread)).map(|o| o.assigned_set.name())
}

fn processor_set(t: &mut Client<Trap>, processor: &SendRight) -> Result<PortName, KernReturn> {
    mach_host::processor_get_assignment(t, processor).map(|o| o.assigned_set.name())
}

/// `processor_set_info(PROCESSOR_SET_BASIC_INFO)`: processors, tasks, threads.
fn set_counts(t: &mut Client<Trap>, set: &SendRight) -> Result<[i32; 3], KernReturn> {
    let mut info = [0i32; 5];
    mach_host::processor_set_info(t, set, PROCESSOR_SET_BASIC_INFO, &mut info)
        .map(|_| [info[0], info[1], info[2]])
}

/// `processor_info(PROCESSOR_BASIC_INFO)`: running, slot, master.
fn processor_facts(t: &mut Client<Trap>, p: &SendRight) -> Result<[i32; 3], KernReturn> {
    let mut info = [0i32; 5];
    mach_host::processor_info(t, p, PROCESSOR_BASIC_INFO, &mut info)
        .map(|_| [info[2], info[3], info[4]])
}

fn main(args: &Args) -> i32 {
    let mut c = Checks::new("psets");
    let mut t = ipc::transport();
    let host = ipc::host_self();
    let Some(priv_name) = args.host_priv_port() else {
        c.check(
            false,
            "argv[1] names the host-privileged port",
            format_args!("{:?}", args.str(1)),
        );
        return c.finish();
    };
    let host_priv = lend(priv_name);
    let task = ipc::task_self();
    let me = ipc::thread_self();

    // The processors, by slot, and the default set's two ports.
    let processors = match processors(&mut t, &host_priv) {
        Ok(v) => v,
        Err(kr) => {
            c.check(false, "host_processors", format_args!("{kr}"));
            return c.finish();
        }
    };
    let online = processors.len() as u32;
    c.note(format_args!("{online} processors"));
    let default = match mach_host::processor_set_default(&mut t, &host) {
        Ok(o) => o.default_set,
        Err(kr) => {
            c.check(false, "processor_set_default", format_args!("{kr}"));
            return c.finish();
        }
    };
    let default_name = default.name();
    let default_control = match mach_host::host_processor_set_priv(&mut t, &host_priv, &default) {
        Ok(o) => o.set,
        Err(kr) => {
            c.check(
                false,
                "host_processor_set_priv(default)",
                format_args!("{kr}"),
            );
            return c.finish();
        }
    };
    let master = processors
        .iter()
        .position(|p| processor_facts(&mut t, p).is_ok_and(|f| f[2] == 1));
    c.check_eq("the master processor is slot 0", master, Some(0));

    // GNU Mach's refusals.
    let inval = Err(KernReturn::InvalidArgument);
    c.check_eq(
        "processor_assign(boot processor)",
        mach_host::processor_assign(&mut t, &processors[0], &default_control, false),
        inval,
    );
    c.check_eq(
        "processor_set_destroy(default)",
        mach_host::processor_set_destroy(&mut t, &default_control),
        inval,
    );
    c.check_eq(
        "processor_get_assignment(boot)",
        processor_set(&mut t, &processors[0]),
        Ok(default_name),
    );
    c.check_eq(
        "thread_get_assignment(self)",
        thread_set(&mut t, me.name()),
        Ok(default_name),
    );

    let mut handles = Vec::new();
    for index in 0..WORKERS {
        match thread::spawn(move || work(index)) {
            Ok(h) => handles.push(h),
            Err(kr) => c.note(format_args!("spawn failed: {kr}")),
        }
    }
    c.check_eq("workers spawned", handles.len(), WORKERS);
    let all: Vec<usize> = (0..handles.len()).collect();
    let started = armach_tests::poll_sleeping(2000, || {
        all.iter().all(|&i| PORTS[i].load(Ordering::Acquire) != 0)
    });
    c.check(
        started,
        "workers know their thread ports",
        format_args!("{:?}", PORTS),
    );
    let ports: Vec<PortName> = all
        .iter()
        .map(|&i| PortName(PORTS[i].load(Ordering::Acquire)))
        .collect();
    c.check(
        running(&all),
        "workers run in the default set",
        format_args!("{:?}", counts(&all)),
    );

    // An empty set keeps its threads waiting.
    let (set, set_name) = match mach_host::processor_set_create(&mut t, &host_priv) {
        Ok(o) => (o.new_set, o.new_name),
        Err(kr) => {
            c.check(false, "processor_set_create", format_args!("{kr}"));
            PHASE.store(STOP, Ordering::Release);
            return c.finish();
        }
    };
    c.check(
        set_name.name() != default_name && set.name() != set_name.name(),
        "a new set has its own name and control ports",
        format_args!("{:?} {:?}", set.name(), set_name.name()),
    );
    c.check_eq(
        "a new set is empty",
        set_counts(&mut t, &set_name),
        Ok([0, 0, 0]),
    );
    for &p in &ports {
        c.check_eq(
            "thread_assign(worker, set)",
            mach_host::thread_assign(&mut t, &lend(p), &set),
            Ok(()),
        );
    }
    c.check_eq(
        "thread_assign(worker, set name port) is refused",
        mach_host::thread_assign(&mut t, &lend(ports[0]), &set_name),
        inval,
    );
    c.check_eq(
        "thread_get_assignment(worker)",
        thread_set(&mut t, ports[0]),
        Ok(set_name.name()),
    );
    c.check_eq(
        "threads counted in the set",
        set_counts(&mut t, &set_name).map(|n| n[2]),
        Ok(WORKERS as i32),
    );
    match mach_host::processor_set_threads(&mut t, &set) {
        Ok(out) => {
            let mut names: Vec<PortName> = out.thread_list.names().collect();
            names.sort_by_key(|n| n.0);
            let mut want = ports.clone();
            want.sort_by_key(|n| n.0);
            c.check_eq("processor_set_threads(set) lists the workers", names, want);
        }
        Err(kr) => {
            c.check(false, "processor_set_threads(set)", format_args!("{kr}"));
        }
    }
    c.check(
        stopped(&all),
        "workers in an empty set do not run",
        format_args!("{:?}", counts(&all)),
    );

    if online >= 2 {
        // A processor arrives: the workers run there, and only there.
        let target = online - 1;
        let cpu = &processors[target as usize];
        PHASE.store(IN_SET, Ordering::Release);
        c.check_eq(
            "processor_assign(cpu, set)",
            mach_host::processor_assign(&mut t, cpu, &set, true),
            Ok(()),
        );
        c.check_eq(
            "processor_get_assignment(cpu)",
            processor_set(&mut t, cpu),
            Ok(set_name.name()),
        );
        c.check_eq(
            "processor_info(cpu): running, its slot, not the master",
            processor_facts(&mut t, cpu),
            Ok([1, target as i32, 0]),
        );
        c.check_eq(
            "processors counted in the set",
            set_counts(&mut t, &set_name).map(|n| n[0]),
            Ok(1),
        );
        match mach_host::processor_set_processors(&mut t, &set_name) {
            Ok(out) => {
                let names: Vec<PortName> = out.processors_list.names().collect();
                c.check_eq(
                    "processor_set_processors(set) lists the processor",
                    names,
                    alloc::vec![cpu.name()],
                );
            }
            Err(kr) => {
                c.check(false, "processor_set_processors", format_args!("{kr}"));
            }
        }
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
            let hint = ports[round % ports.len()];
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
            mach_host::processor_assign(&mut t, cpu, &default_control, false),
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
    for &p in &ports {
        c.check_eq(
            "thread_assign_default(worker)",
            mach_host::thread_assign_default(&mut t, &lend(p)),
            Ok(()),
        );
    }
    c.check_eq(
        "thread_get_assignment(worker) after the move back",
        thread_set(&mut t, ports[0]),
        Ok(default_name),
    );
    c.check(
        running(&all),
        "workers run again in the default set",
        format_args!("{:?}", counts(&all)),
    );
    c.check_eq(
        "processor_set_destroy(name port) is refused",
        mach_host::processor_set_destroy(&mut t, &set_name),
        inval,
    );
    c.check_eq(
        "processor_set_destroy(set)",
        mach_host::processor_set_destroy(&mut t, &set),
        Ok(()),
    );
    c.check_eq(
        "processor_set_destroy(set) again: its port is dead",
        mach_host::processor_set_destroy(&mut t, &set),
        Err(KernReturn::SendInvalidDest),
    );
    c.check_eq(
        "processor_set_info(destroyed set)",
        set_counts(&mut t, &set_name),
        Err(KernReturn::SendInvalidDest),
    );
    drop((set, set_name));

    // A processor alone in a set with no threads runs only its idle thread: its idle time
    // (`PROCESSOR_SCHED_INFO`) grows while it stays idle, the stretch in progress counted
    // (a count made only when idling ends would stand still here).
    if online >= 2
        && let Ok(o) = mach_host::processor_set_create(&mut t, &host_priv)
    {
        let idle_set = o.new_set;
        let cpu = &processors[online as usize - 1];
        c.check_eq(
            "processor_assign(cpu, empty set)",
            mach_host::processor_assign(&mut t, cpu, &idle_set, true),
            Ok(()),
        );
        sleep_ms(20);
        let first = kern::processor_sched_info(cpu).map(|i| i.idle_ns);
        sleep_ms(50);
        let second = kern::processor_sched_info(cpu).map(|i| i.idle_ns);
        c.check(
            matches!((first, second), (Ok(a), Ok(b)) if b > a),
            "an idle processor's idle_ns grows while it stays idle",
            format_args!("{first:?} then {second:?}"),
        );
        c.check_eq(
            "processor_set_destroy(set of an idle processor)",
            mach_host::processor_set_destroy(&mut t, &idle_set),
            Ok(()),
        );
    }

    // Destroying a set returns its threads (one waiting, one running) and its processor.
    if let Ok(o) = mach_host::processor_set_create(&mut t, &host_priv) {
        let (set2, name2) = (o.new_set, o.new_name);
        let _ = mach_host::thread_assign(&mut t, &lend(ports[0]), &set2);
        if online >= 2 {
            let _ =
                mach_host::processor_assign(&mut t, &processors[online as usize - 1], &set2, false);
            let _ = mach_host::thread_assign(&mut t, &lend(ports[1]), &set2);
        }
        c.check_eq(
            "processor_set_destroy(set with threads)",
            mach_host::processor_set_destroy(&mut t, &set2),
            Ok(()),
        );
        c.check_eq(
            "a destroyed set's thread is in the default set",
            thread_set(&mut t, ports[0]),
            Ok(default_name),
        );
        if online >= 2 {
            c.check_eq(
                "a destroyed set's processor is in the default set",
                processor_set(&mut t, &processors[online as usize - 1]),
                Ok(default_name),
            );
        }
        c.check(
            running(&all),
            "a destroyed set's threads run",
            format_args!("{:?}", counts(&all)),
        );
        drop((set2, name2));
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
        && let Ok(o) = mach_host::processor_set_create(&mut t, &host_priv)
    {
        let set4 = o.new_set;
        let mut failures = 0u32;
        for round in 0..300u32 {
            let cpu = &processors[(1 + round % (online - 1)) as usize];
            let worker = lend(ports[round as usize % ports.len()]);
            let back = if round % 3 == 0 {
                &set4
            } else {
                &default_control
            };
            let steps = [
                mach_host::processor_assign(&mut t, cpu, &set4, false),
                mach_host::thread_assign(&mut t, &worker, &set4),
                mach_host::processor_assign(&mut t, cpu, &default_control, false),
                mach_host::thread_assign(&mut t, &worker, back),
            ];
            failures += steps.iter().filter(|r| r.is_err()).count() as u32;
            if round % 16 == 0 {
                libmach::yield_now();
            }
        }
        c.check_eq("moves refused during the churn", failures, 0);
        c.check_eq(
            "processor_set_destroy after the churn",
            mach_host::processor_set_destroy(&mut t, &set4),
            Ok(()),
        );
        c.check(
            running(&all),
            "every worker runs after the churn",
            format_args!("{:?}", counts(&all)),
        );
    }

    // task_assign: the task's new threads are created in its set.
    if let Ok(o) = mach_host::processor_set_create(&mut t, &host_priv) {
        let (set3, name3) = (o.new_set, o.new_name);
        c.check_eq(
            "task_assign(set, no threads)",
            mach_host::task_assign(&mut t, &task, &set3, false),
            Ok(()),
        );
        c.check_eq(
            "processor_set_tasks(set) lists this task",
            mach_host::processor_set_tasks(&mut t, &set3)
                .map(|o| o.task_list.names().collect::<Vec<_>>()),
            Ok(alloc::vec![task.name()]),
        );
        c.check_eq(
            "task_get_assignment(self)",
            mach_host::task_get_assignment(&mut t, &task).map(|o| o.assigned_set.name()),
            Ok(name3.name()),
        );
        c.check_eq(
            "the caller stays where it was",
            thread_set(&mut t, me.name()),
            Ok(default_name),
        );
        match thread::spawn(|| work(WORKERS)) {
            Ok(h) => {
                // It cannot run to say its port: find it as the set's only thread.
                c.check_eq(
                    "a new thread is counted in the task's set",
                    set_counts(&mut t, &name3).map(|n| n[2]),
                    Ok(1),
                );
                c.check(
                    stopped(&[WORKERS]),
                    "a new thread of an empty set does not run",
                    format_args!("{}", COUNTS[WORKERS].load(Ordering::Relaxed)),
                );
                c.check_eq(
                    "task_assign_default(threads)",
                    mach_host::task_assign_default(&mut t, &task, true),
                    Ok(()),
                );
                c.check_eq(
                    "the new thread follows its task",
                    set_counts(&mut t, &name3).map(|n| n[2]),
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
            mach_host::processor_set_destroy(&mut t, &set3),
            Ok(()),
        );
        drop((set3, name3));
    } else {
        c.check(
            false,
            "processor_set_create (third)",
            format_args!("refused"),
        );
    }

    c.check_eq(
        "every processor is back in the default set",
        set_counts(&mut t, &default).map(|n| n[0]),
        Ok(online as i32),
    );
    PHASE.store(STOP, Ordering::Release);
    for h in handles {
        h.join();
    }
    for port in &PORTS {
        let name = port.load(Ordering::Acquire);
        if name != 0 {
            drop(SendRight::from_name(PortName(name)));
        }
    }
    drop(default_control);
    c.finish()
}
