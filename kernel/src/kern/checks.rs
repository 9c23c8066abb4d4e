//! The kernel's self-checks (`checks` on the command line): while a run goes on, compare
//! what the kernel's structures say about each other and report every disagreement on the
//! console as `checks: FAILED what`, which makes the run end with the test-failure status.
//! What is checked, when, and why the lock order is not among them at run time, is in
//! [`periodic`], [`at_task_exit`] and [`at_end`]; the checking logic itself lives with the
//! data it reads (`RunQueue::check`, `Space::check`, `pset::check`, `frame::check`,
//! `thread::check_stack_guards`), pure where it can be and host-tested there. Off (the
//! default), nothing here runs and nothing else changes.
//!
//! Every check takes the locks of what it reads in the documented order (`sync::LockLevel`)
//! and one processor's run queue at a time, so it cannot deadlock with the kernel's own
//! paths, and it takes only spinlocks that mask interrupts, so [`periodic`] may run from
//! the timer interrupt. Counts that are kept with atomics outside any lock (a task's
//! kernel-memory charge against the global one, the number of tasks) are compared only
//! where nothing can move them: at the end of the run; while it runs, only their bounds.

use crate::ids::CpuId;
use crate::kern::bootargs::{self, BootArgs, Checks};
use crate::kern::sched::{self, pset};
use crate::kern::task;
use crate::kern::thread::{self, NO_PROCESSOR, RunState};
use crate::mm::{frame, kmem};
use crate::percpu;
use core::fmt;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// Ticks of the boot CPU between two periodic checks (a tenth of a second at the default
/// 100 Hz).
pub const INTERVAL_TICKS: u64 = 10;

static ENABLED: AtomicBool = AtomicBool::new(false);
/// `checks-inject=runqueue`, not yet done.
static INJECT_RUNQUEUE: AtomicBool = AtomicBool::new(false);
/// Passes made: periodic, at task exits (the one at the end is not counted here).
static PERIODIC: AtomicU64 = AtomicU64::new(0);
static AT_EXIT: AtomicU64 = AtomicU64::new(0);
static AT_SET_DESTROY: AtomicU64 = AtomicU64::new(0);
/// Ports that existed before the first task (the host's, the devices', the processors').
static PORTS_BEFORE: AtomicU64 = AtomicU64::new(0);

/// Before the first task (with the leak check's references): what must be back at the end.
pub fn note_start() {
    PORTS_BEFORE.store(crate::ipc::port::live_ports() as u64, Ordering::Relaxed);
}
static FAILURES: AtomicU64 = AtomicU64::new(0);

/// Read `checks` and `checks-inject=` from the command line (at boot, before any task).
pub fn init(args: &BootArgs<'_>) {
    let Checks {
        on,
        inject_runqueue,
    } = bootargs::checks(args);
    ENABLED.store(on, Ordering::Relaxed);
    INJECT_RUNQUEUE.store(on && inject_runqueue, Ordering::Relaxed);
    if on {
        crate::println!(
            "checks: on: every {INTERVAL_TICKS} ticks of the boot CPU, at each task's exit and at \
             the end of the run; lock order {}",
            if cfg!(feature = "lockcheck") {
                "checked at every acquisition (lockcheck build)"
            } else {
                "not checked (a build without the lockcheck feature)"
            }
        );
    }
}

/// Whether the checks are on.
#[inline]
pub fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

/// Inconsistencies found so far (the run's exit status is then the test-failure one,
/// `power::power_off`).
pub fn failures() -> u64 {
    FAILURES.load(Ordering::Relaxed)
}

/// Say what is inconsistent.
fn fail(what: fmt::Arguments<'_>) {
    FAILURES.fetch_add(1, Ordering::Relaxed);
    crate::println!("checks: FAILED {what}");
}

/// From the timer interrupt of every CPU: every [`INTERVAL_TICKS`] ticks of the boot CPU,
/// the checks that take only interrupt-masking locks and drop no object ([`locked`]).
pub fn on_tick(ticks: u64) {
    if enabled()
        && ticks.is_multiple_of(INTERVAL_TICKS)
        && percpu::current_cpu() == crate::kern::boot::boot_cpu()
    {
        periodic();
    }
}

/// The periodic checks (see [`locked`]).
pub fn periodic() {
    locked();
    PERIODIC.fetch_add(1, Ordering::Relaxed);
}

/// A task's last thread has taken it out of the IPC world (`Thread::detach_from_task`),
/// in thread context with no lock held: the periodic checks, then every task's port names
/// and kernel-memory bounds.
pub fn at_task_exit() {
    if !enabled() {
        return;
    }
    locked();
    tasks();
    AT_EXIT.fetch_add(1, Ordering::Relaxed);
}

/// A processor set was just destroyed (its processors moved to the default set under the
/// table's lock; the threads they concern not yet placed again): the periodic checks. This
/// is the moment a destroy that let a processor name a dead set showed it (a fuzz run's
/// `cpu2 is in no processor set`), every time, not only when a tick fell into it.
pub fn at_set_destroy() {
    if !enabled() {
        return;
    }
    locked();
    AT_SET_DESTROY.fetch_add(1, Ordering::Relaxed);
}

/// Every user task has gone and its frees are done (the leak check's moment): everything,
/// then the counts that only hold at rest. Prints the tally; returns whether all held.
pub fn at_end() -> bool {
    if !enabled() {
        return true;
    }
    locked();
    tasks();
    let charged = kmem::BUDGET.charged();
    if charged != 0 {
        fail(format_args!(
            "kernel memory: no task is left but {charged} bytes are still charged to tasks"
        ));
    }
    let (tasks, listed) = (task::user_task_count(), task::listed_task_count());
    if tasks != 0 || listed != 0 {
        fail(format_args!(
            "tasks: every task has gone but {tasks} are counted and {listed} listed"
        ));
    }
    pset::nonzero_counts(&mut |set, tasks, threads| {
        fail(format_args!(
            "processor set {set}: every task has gone but it counts {tasks} tasks and {threads} \
             threads"
        ))
    });
    let (ports, ports_before) = (
        crate::ipc::port::live_ports() as u64,
        PORTS_BEFORE.load(Ordering::Relaxed),
    );
    if ports != ports_before {
        fail(format_args!(
            "ports: every task has gone but {ports} ports exist, {ports_before} before the \
             first task"
        ));
    }
    let stacks = thread::stack_slots_in_use();
    if stacks != 0 {
        fail(format_args!(
            "threads: no user thread is left but {stacks} kernel stacks are still handed out"
        ));
    }
    let (periodic, at_exit, at_set) = (
        PERIODIC.load(Ordering::Relaxed),
        AT_EXIT.load(Ordering::Relaxed),
        AT_SET_DESTROY.load(Ordering::Relaxed),
    );
    let failures = failures();
    crate::println!(
        "checks: {} passes ({periodic} periodic, {at_exit} at task exits, {at_set} at set \
         destroys, 1 at the end), {failures} inconsistencies",
        periodic + at_exit + at_set + 1
    );
    failures == 0
}

/// The checks of structures under interrupt-masking locks: run queues, processor sets,
/// the frame allocator's counts, the kernel stacks' guard gaps.
fn locked() {
    run_queues();
    pset::check(&mut |p| fail(format_args!("{p}")));
    if let Err((free, counted_free, total, counted_total)) = frame::check() {
        fail(format_args!(
            "frames: the allocator has {free} of {total} free, the counts say {counted_free} \
             of {counted_total}"
        ));
    }
    thread::check_stack_guards(&mut |slot, entries| {
        fail(format_args!(
            "the guard gap below kernel stack slot {slot} has {entries} mapped entries"
        ))
    });
}

/// Each online processor's run queue, one lock at a time: its own links and bitmap, its
/// mirrored length (`nr_queued`), and each queued thread: not an idle thread, runnable,
/// and saying it is queued there (`queued_on`). With `checks-inject=runqueue`, the first
/// pass makes the boot processor's `nr_queued` wrong under the lock, checks, and puts it
/// right before letting go (the one way to see the check fail in a real run).
fn run_queues() {
    let boot = crate::kern::boot::boot_cpu();
    for cpu in CpuId::first(percpu::cpu_count()) {
        let p = sched::processor(cpu);
        if !p.online.load(Ordering::Acquire) {
            continue;
        }
        let rq = p.runq.lock();
        let injected = cpu == boot && INJECT_RUNQUEUE.swap(false, Ordering::Relaxed);
        if injected {
            crate::println!("checks: checks-inject=runqueue: nr_queued of cpu{cpu} made wrong");
            p.nr_queued.store(rq.len() as u32 + 1, Ordering::Relaxed);
        }
        let nr_queued = p.nr_queued.load(Ordering::Relaxed);
        if injected {
            p.nr_queued.store(rq.len() as u32, Ordering::Relaxed);
        }
        if let Err(broken) = rq.check() {
            fail(format_args!("run queue of cpu{cpu}: {broken}"));
            continue;
        }
        if nr_queued as usize != rq.len() {
            let n = rq.len();
            fail(format_args!(
                "run queue of cpu{cpu} has {n} thread{}, nr_queued says {nr_queued}",
                if n == 1 { "" } else { "s" }
            ));
        }
        for t in rq.iter_least_urgent() {
            let queued_on = t.queued_on.load(Ordering::Relaxed);
            if queued_on != cpu.index() as u32 {
                let on = if queued_on == NO_PROCESSOR {
                    "no processor"
                } else {
                    "another"
                };
                fail(format_args!(
                    "thread {} is on the run queue of cpu{cpu} but its queued_on is \
                     {queued_on:#x} ({on})",
                    t.id
                ));
            }
            if t.is_idle {
                fail(format_args!(
                    "idle thread {} is on the run queue of cpu{cpu}",
                    t.id
                ));
            }
            let state = t.state();
            if state != RunState::Running {
                fail(format_args!(
                    "thread {} is on the run queue of cpu{cpu} in state {state:?}",
                    t.id
                ));
            }
        }
    }
}

/// Every task: its port names against their ports (`Space::check`), its kernel-memory
/// charge within its limit, and the global charge within the budget.
fn tasks() {
    task::each_task(|t| {
        if let Some(space) = &t.ipc {
            space.check(&mut |p| fail(format_args!("task {}: {p}", t.id)));
        }
        let (charged, limit) = (t.kmem.charged(), t.kmem.limit());
        if charged > limit {
            fail(format_args!(
                "task {}: {charged} bytes of kernel memory charged, over its limit of {limit}",
                t.id
            ));
        }
    });
    let (charged, limit) = (kmem::BUDGET.charged(), kmem::BUDGET.limit());
    if charged > limit {
        fail(format_args!(
            "kernel memory: {charged} bytes charged to tasks, over the budget of {limit}"
        ));
    }
}
