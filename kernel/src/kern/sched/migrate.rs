//! Thread migration and load balancing: the mechanism (DESIGN.md 6). Every decision is a
//! pure function of `sched::balance` (load average, warmth, what to move and where),
//! tested on the host and driven there by a simulator; this module gathers their inputs
//! from the per-processor atomics and run queues and carries out their answers.
//!
//! - A **migration** is a thread starting to run on a processor other than the one it last
//!   ran on, however it got there (placement at wake-up, a balance pass, an idle pull,
//!   `thread_migrate`): counted at the switch ([`note_switch`]) on the thread
//!   (`migration_count`), on the processor it arrives at (`migration_in`) and on the one it
//!   left (`migration_out`), so the totals agree by construction and the counts describe
//!   where threads really ran.
//! - **Periodic balancing**: every `interval_ticks` of the global tick clock (the counter
//!   divided by the tick period, the same on every CPU), the first CPU of a set whose tick
//!   sees the interval over runs one pass for the whole set ([`on_tick`]); a pass moves
//!   queued threads, the coldest first, until no two processors differ by the threshold.
//! - **Idle balance**: an idle processor, each time it wakes (at least once a tick) and
//!   before it sleeps, pulls one queued thread from the busiest processor of its set that
//!   has 2 or more runnable ([`idle_balance`]).
//! - **The invariant** (no processor idle a whole interval while another of its set has 2
//!   or more runnable, one of which it could run) is checked at each tick of an idle
//!   processor while balancing is on, and each breach counted.
//!
//! Two run queues are held at once only here ([`move_threads`]), and always the lower CPU
//! index first (`LockLevel::RunQueue`).

extern crate alloc;

use super::balance::{self, Candidate, CpuState};
use super::scheduler::{Processor, kick, processor, this_processor};
use super::stats::{BalanceParams, ProcessorSched, ThreadMigration};
use super::trace;
use crate::ids::{CpuId, ProcessorSetId};
use crate::kern::thread::{NO_PROCESSOR, Thread};
use crate::percpu;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use mach_abi::KernReturn;
use mach_abi::trace::{Kind, Reason};

/// A processor's migration and balancing counters (`PROCESSOR_SCHED_INFO`). Most are
/// written only by their own CPU (plain load and store); `migration_out` by whichever CPU
/// the thread arrives at, `wakeups` and `wakeups_on_last` by whichever CPU wakes it
/// (atomic additions).
pub struct Counters {
    load_average: AtomicU32,
    migration_in: AtomicU64,
    migration_out: AtomicU64,
    migration_in_cross: AtomicU64,
    ticks: AtomicU64,
    last_balance_tick: AtomicU64,
    balance_attempts: AtomicU64,
    balance_successes: AtomicU64,
    balance_failures: AtomicU64,
    balance_moved: AtomicU64,
    idle_pulls: AtomicU64,
    invariant_violations: AtomicU64,
    balance_ns: AtomicU64,
    balance_passes: AtomicU64,
    balance_insns: AtomicU64,
    wakeups: AtomicU64,
    wakeups_on_last: AtomicU64,
    /// The global tick since which the processor has been idle while another of its set had
    /// work it could take (`BUSY`: not so at its last tick, or not idle).
    breach_since: AtomicU64,
    /// A breach of the invariant was counted for the current idle stretch.
    breach_noted: AtomicBool,
    /// Counter value at its last tick (warmth grows by the time run since then).
    last_tick_at: AtomicU64,
    /// The balancer's view of every processor, sized at boot (`init_this_cpu`); used only
    /// by this CPU with interrupts masked.
    scratch: super::scheduler::CpuLocal<Vec<CpuState>>,
}

const BUSY: u64 = u64::MAX;

impl Counters {
    pub const fn new() -> Self {
        Counters {
            load_average: AtomicU32::new(0),
            migration_in: AtomicU64::new(0),
            migration_out: AtomicU64::new(0),
            migration_in_cross: AtomicU64::new(0),
            ticks: AtomicU64::new(0),
            last_balance_tick: AtomicU64::new(0),
            balance_attempts: AtomicU64::new(0),
            balance_successes: AtomicU64::new(0),
            balance_failures: AtomicU64::new(0),
            balance_moved: AtomicU64::new(0),
            idle_pulls: AtomicU64::new(0),
            invariant_violations: AtomicU64::new(0),
            balance_ns: AtomicU64::new(0),
            balance_passes: AtomicU64::new(0),
            balance_insns: AtomicU64::new(0),
            wakeups: AtomicU64::new(0),
            wakeups_on_last: AtomicU64::new(0),
            breach_since: AtomicU64::new(BUSY),
            breach_noted: AtomicBool::new(false),
            last_tick_at: AtomicU64::new(0),
            scratch: super::scheduler::CpuLocal::new(Vec::new()),
        }
    }
}

impl Default for Counters {
    fn default() -> Self {
        Self::new()
    }
}

/// Add to a counter only this CPU writes.
#[inline]
fn add(counter: &AtomicU64, amount: u64) {
    counter.store(
        counter.load(Ordering::Relaxed).wrapping_add(amount),
        Ordering::Relaxed,
    );
}

/// Per set: its balancing parameters and the global tick of its last periodic pass.
struct SetBalance {
    interval: AtomicU32,
    threshold: AtomicU32,
    tolerance: AtomicU32,
    idle: AtomicBool,
    periodic: AtomicBool,
    last_pass: AtomicU64,
}

impl SetBalance {
    const fn new(p: BalanceParams) -> Self {
        SetBalance {
            interval: AtomicU32::new(p.interval_ticks),
            threshold: AtomicU32::new(p.threshold),
            tolerance: AtomicU32::new(p.warmth_tolerance),
            idle: AtomicBool::new(p.idle_balance),
            periodic: AtomicBool::new(p.periodic_balance),
            last_pass: AtomicU64::new(0),
        }
    }

    fn get(&self) -> BalanceParams {
        BalanceParams {
            interval_ticks: self.interval.load(Ordering::Relaxed),
            threshold: self.threshold.load(Ordering::Relaxed),
            warmth_tolerance: self.tolerance.load(Ordering::Relaxed),
            idle_balance: self.idle.load(Ordering::Relaxed),
            periodic_balance: self.periodic.load(Ordering::Relaxed),
        }
    }

    fn set(&self, p: BalanceParams) {
        self.interval.store(p.interval_ticks, Ordering::Relaxed);
        self.threshold.store(p.threshold, Ordering::Relaxed);
        self.tolerance.store(p.warmth_tolerance, Ordering::Relaxed);
        self.idle.store(p.idle_balance, Ordering::Relaxed);
        self.periodic.store(p.periodic_balance, Ordering::Relaxed);
    }
}

static SETS: [SetBalance; super::pset::MAX_SETS] =
    [const { SetBalance::new(BalanceParams::DEFAULT) }; super::pset::MAX_SETS];

/// What a new set starts with: `BalanceParams::DEFAULT` or the kernel command line's.
static DEFAULTS: spin::Once<BalanceParams> = spin::Once::new();

fn set_of(raw: u32) -> &'static SetBalance {
    &SETS[ProcessorSetId(raw).slot() % super::pset::MAX_SETS]
}

/// Counter ticks to nanoseconds without a division: `ns = ticks * NS_MUL >> 32`.
static NS_MUL: AtomicU64 = AtomicU64::new(0);
/// Counter ticks per timer tick (the global tick clock's unit), and a tick in ns.
static TICK_COUNTER: AtomicU64 = AtomicU64::new(1);
static TICK_NS: AtomicU64 = AtomicU64::new(10_000_000);

#[inline]
fn ns(ticks: u64) -> u64 {
    ((ticks as u128 * NS_MUL.load(Ordering::Relaxed) as u128) >> 32) as u64
}

/// The global tick clock: timer periods since the counter started, the same on every CPU.
#[inline]
fn global_tick(counter: u64) -> u64 {
    counter / TICK_COUNTER.load(Ordering::Relaxed)
}

/// Once, at boot (before any other CPU starts): the clock conversions, and the default
/// parameters every set starts with.
pub fn init(defaults: BalanceParams, tick_counter: u64) {
    let freq = crate::arch::timer::frequency().max(1);
    NS_MUL.store(
        ((1_000_000_000u128 << 32) / freq as u128) as u64,
        Ordering::Relaxed,
    );
    TICK_COUNTER.store(tick_counter.max(1), Ordering::Relaxed);
    TICK_NS.store(ns(tick_counter.max(1)), Ordering::Relaxed);
    let defaults = *DEFAULTS.call_once(|| defaults);
    for set in &SETS {
        set.set(defaults);
    }
    log::info!(
        "balancing: every {} ticks, threshold {}, warmth tolerance {}, idle balance {}, periodic {}",
        defaults.interval_ticks,
        defaults.threshold,
        defaults.warmth_tolerance,
        if defaults.idle_balance { "on" } else { "off" },
        if defaults.periodic_balance {
            "on"
        } else {
            "off"
        },
    );
}

/// Size this CPU's balancer view (from `init_this_cpu`, interrupts masked).
pub(super) fn init_processor(me: &Processor) {
    crate::arch::cpu::enable_instruction_counter();
    // SAFETY: our own processor, interrupts masked (the caller's contract).
    let scratch = unsafe { me.counters.scratch.get() };
    let n = percpu::cpu_count();
    if scratch.try_reserve_exact(n).is_err() {
        panic!("no memory for the balancer of cpu{}", me.id());
    }
    scratch.resize(n, CpuState::default());
}

/// A set was made in slot `set`: it starts with the default parameters.
pub fn set_created(set: ProcessorSetId) {
    let s = set_of(set.0);
    s.set(DEFAULTS.get().copied().unwrap_or(BalanceParams::DEFAULT));
    s.last_pass.store(0, Ordering::Relaxed);
}

/// A thread's warmth now: as stored (grown at each tick it ran, cooled when it last woke),
/// cooled by the time since it left its processor if it is not running.
fn warmth_now(thread: &Thread, now: u64) -> u8 {
    let stored = thread.cache_warmth.load(Ordering::Relaxed);
    if thread.on_cpu.load(Ordering::Relaxed) {
        return stored;
    }
    let since = thread
        .off_since
        .load(Ordering::Relaxed)
        .max(thread.warmth_stamp.load(Ordering::Relaxed));
    balance::warmth_cooled(stored, ns(now.saturating_sub(since)))
}

/// The placement's view of `thread`'s cache (it is off every CPU, about to be placed):
/// its warmth cooled to now (and stored so, since it now starts a new stretch) and the
/// tolerance of its set.
pub(super) fn warmth_hint(thread: &Thread, now: u64) -> (u8, usize) {
    let set = set_of(thread.processor_set.load(Ordering::Relaxed));
    let warmth = warmth_now(thread, now);
    thread.cache_warmth.store(warmth, Ordering::Relaxed);
    thread.warmth_stamp.store(now, Ordering::Relaxed);
    (warmth, set.tolerance.load(Ordering::Relaxed) as usize)
}

/// A placement decided for a thread that was waiting and last ran on `last`: counted on
/// that processor (its `wakeups`, and `wakeups_on_last` if `target` is it), for
/// `wake_on_last_processor`. Another CPU may write them: atomic additions.
#[inline]
pub(super) fn note_wakeup(last: u32, target: CpuId) {
    if last == NO_PROCESSOR || last as usize >= crate::devtree::MAX_CPUS {
        return;
    }
    let c = &processor(CpuId::new(last as usize)).counters;
    c.wakeups.fetch_add(1, Ordering::Relaxed);
    if last as usize == target.index() {
        c.wakeups_on_last.fetch_add(1, Ordering::Relaxed);
    }
}

/// At the switch on processor `me` (interrupts masked) from `prev` to `next` at counter
/// `now`, before `next.last_processor` is set: stamp `prev`'s stretch, and count a
/// migration if `next` last ran elsewhere (its warmth then starts again at 0). Warmth grows
/// at the tick ([`on_tick`]) and cools at wake-up (`setrun`, [`warmth_hint`]), not here:
/// the switch path stays a few loads and stores longer than without migration.
#[inline]
pub(super) fn note_switch(me: &Processor, cpu: u32, prev: &Thread, next: &Thread, now: u64) {
    if !prev.is_idle {
        prev.off_since.store(now, Ordering::Relaxed);
        prev.last_run.store(
            now.wrapping_sub(prev.run_start.load(Ordering::Relaxed)),
            Ordering::Relaxed,
        );
    }
    if next.is_idle {
        me.counters.breach_noted.store(false, Ordering::Relaxed);
        return;
    }
    me.counters.breach_since.store(BUSY, Ordering::Relaxed);
    next.run_start.store(now, Ordering::Relaxed);
    let last = next.last_processor.load(Ordering::Relaxed);
    if last != cpu && last != NO_PROCESSOR {
        arrived(me, cpu, next, last);
    }
    if next.migrate_to.load(Ordering::Relaxed) == cpu {
        next.migrate_to.store(NO_PROCESSOR, Ordering::Relaxed);
    }
}

/// `next` starts on `cpu` having last run on `last`: a migration.
#[cold]
fn arrived(me: &Processor, cpu: u32, next: &Thread, last: u32) {
    // Only the CPU running a thread writes its count.
    let count = next.migration_count.load(Ordering::Relaxed);
    next.migration_count
        .store(count.wrapping_add(1), Ordering::Relaxed);
    next.cache_warmth.store(0, Ordering::Relaxed);
    add(&me.counters.migration_in, 1);
    let from = CpuId::new(last as usize);
    processor(from)
        .counters
        .migration_out
        .fetch_add(1, Ordering::Relaxed);
    if percpu::cluster(from) != percpu::cluster(CpuId::new(cpu as usize)) {
        add(&me.counters.migration_in_cross, 1);
    }
}

/// The timer tick's share, on processor `me` with `current` running (interrupts masked):
/// the load average, the invariant check of an idle processor, and the periodic pass of
/// its set when the interval is over.
pub(super) fn on_tick(me: &'static Processor, current: &Thread) {
    let c = &me.counters;
    add(&c.ticks, 1);
    let counter = crate::arch::timer::counter();
    let last_tick = c.last_tick_at.swap(counter, Ordering::Relaxed);
    if !current.is_idle {
        // The time it ran since it got the processor or since the last tick, whichever
        // is later.
        let ran = counter.saturating_sub(last_tick.max(current.run_start.load(Ordering::Relaxed)));
        let w = current.cache_warmth.load(Ordering::Relaxed);
        current
            .cache_warmth
            .store(balance::warmth_after_running(w, ns(ran)), Ordering::Relaxed);
        // Its usage: decayed over the ticks it missed, then this tick's share.
        let tick = global_tick(counter);
        let ran_ticks = ran.div_ceil(TICK_COUNTER.load(Ordering::Relaxed));
        let missed = tick
            .saturating_sub(current.usage_tick.load(Ordering::Relaxed))
            .saturating_sub(ran_ticks);
        let u = balance::usage_decayed(current.usage.load(Ordering::Relaxed), missed);
        current.usage.store(
            balance::usage_tick(u, ns(ran), TICK_NS.load(Ordering::Relaxed)),
            Ordering::Relaxed,
        );
        current.usage_tick.store(tick, Ordering::Relaxed);
    }
    let queued = me.nr_queued.load(Ordering::Relaxed);
    let runnable = queued + u32::from(!current.is_idle);
    c.load_average.store(
        balance::load_average_tick(c.load_average.load(Ordering::Relaxed), runnable),
        Ordering::Relaxed,
    );
    let set_raw = me.pset.load(Ordering::Relaxed);
    let set = set_of(set_raw);
    let params = set.get();
    let now = global_tick(counter);
    if current.is_idle && (params.idle_balance || params.periodic_balance) {
        check_invariant(me, set_raw, &params, now);
    }
    if !params.periodic_balance {
        return;
    }
    let last = set.last_pass.load(Ordering::Relaxed);
    if now < last.saturating_add(params.interval_ticks as u64) {
        return;
    }
    // One CPU of the set runs the pass: the first whose tick sees the interval over.
    if set
        .last_pass
        .compare_exchange(last, now, Ordering::AcqRel, Ordering::Relaxed)
        .is_ok()
    {
        balance_pass(me, set_raw, &params, now);
    }
}

/// Whether `thread`, queued on another processor, may be moved to `to` by the balancer: a
/// user thread of set `set`, unbound, not still being saved by its CPU, not on its way
/// somewhere by `thread_migrate`.
fn movable(thread: &Thread, set: u32, to: usize) -> bool {
    !thread.is_idle
        && !thread.on_cpu.load(Ordering::Acquire)
        && thread.bound_processor.load(Ordering::Relaxed) == NO_PROCESSOR
        && thread.migrate_to.load(Ordering::Relaxed) == NO_PROCESSOR
        && thread.processor_set.load(Ordering::Relaxed) == set
        && processor(CpuId::new(to)).pset.load(Ordering::Relaxed) == set
}

/// Fill `view` with every processor as the balancer of set `set` sees it: eligible when
/// online and in the set; its runnable threads; its queued ones as the movable estimate
/// (the move finds out which really are).
fn gather(view: &mut [CpuState], set: u32) {
    for (i, state) in view.iter_mut().enumerate() {
        let cpu = CpuId::new(i);
        let p = processor(cpu);
        let queued = p.nr_queued.load(Ordering::Relaxed);
        *state = CpuState {
            eligible: p.online.load(Ordering::Acquire) && p.pset.load(Ordering::Relaxed) == set,
            runnable: queued + u32::from(!p.running_idle.load(Ordering::Acquire)),
            movable: queued,
            cluster: percpu::cluster(cpu),
        };
    }
}

/// One periodic pass over set `set`, run by `me` (interrupts masked).
fn balance_pass(me: &Processor, set: u32, params: &BalanceParams, now_tick: u64) {
    let start = crate::arch::timer::counter();
    let start_insns = crate::arch::cpu::instructions();
    // SAFETY: our own processor, interrupts masked (called from the tick).
    let view = unsafe { me.counters.scratch.get() };
    gather(view, set);
    let c = &me.counters;
    add(&c.balance_attempts, 1);
    let mut moved_total = 0u64;
    let mut fell_short = false;
    // Each call moves at least one thread or clears a processor's `movable`, so the loop
    // ends; the bound only guards against a policy bug.
    for _ in 0..4 * view.len().max(1) {
        let Some(m) = balance::next_move(view, params) else {
            break;
        };
        // One move takes at most `MAX_MOVE`; the next call asks for the rest.
        let asked = m.count.min(MAX_MOVE as u32);
        let moved = move_threads(m.from, m.to, asked, set, Reason::PeriodicBalance);
        view[m.from].runnable -= moved.min(view[m.from].runnable);
        view[m.to].runnable += moved;
        if moved < asked {
            fell_short = true;
            view[m.from].movable = 0;
        } else {
            view[m.from].movable -= moved.min(view[m.from].movable);
        }
        moved_total += moved as u64;
    }
    if trace::on() {
        trace::record(Kind::Balance, 0, moved_total as u32, set, 0);
    }
    if moved_total > 0 {
        add(&c.balance_successes, 1);
        add(&c.balance_moved, moved_total);
    } else if fell_short {
        add(&c.balance_failures, 1);
    }
    for (i, state) in view.iter().enumerate() {
        if state.eligible {
            processor(CpuId::new(i))
                .counters
                .last_balance_tick
                .store(now_tick, Ordering::Relaxed);
        }
    }
    add(
        &c.balance_ns,
        ns(crate::arch::timer::counter().saturating_sub(start)),
    );
    add(&c.balance_passes, 1);
    add(
        &c.balance_insns,
        u64::from(crate::arch::cpu::instructions().wrapping_sub(start_insns)),
    );
}

/// Threads one move takes at most (a pass asks again for the rest).
const MAX_MOVE: usize = 32;

/// Move up to `count` threads of set `set` queued on processor `from` to processor `to`,
/// the coldest first (at most `MAX_MOVE`); returns how many moved. `reason` is what the
/// trace says moved them.
fn move_threads(from: usize, to: usize, count: u32, set: u32, reason: Reason) -> u32 {
    if count == 0 {
        return 0;
    }
    between(from, to, |src, dst| {
        let now = crate::arch::timer::counter();
        // One scan picks them all; removed from the highest position down, so that each
        // removal leaves the positions still to take where they were.
        let mut picks: arrayvec::ArrayVec<usize, MAX_MOVE> = balance::coldest_k(
            src.iter_least_urgent().map(|t| Candidate {
                warmth: warmth_now(t, now),
                movable: movable(t, set, to),
            }),
            count as usize,
        );
        picks.sort_unstable_by(|a, b| b.cmp(a));
        let mut moved = 0;
        for i in picks {
            let Some(thread) = src.remove_nth_least_urgent(i) else {
                break;
            };
            if trace::on() {
                trace::note_move(&thread, reason);
            }
            requeue(dst, thread, to);
            moved += 1;
        }
        moved
    })
}

type Queue = super::runqueue::RunQueue<Arc<Thread>>;

/// Put `thread`, taken off another run queue, on `dst`, processor `to`'s.
fn requeue(dst: &mut Queue, thread: Arc<Thread>, to: usize) {
    thread.queued_on.store(to as u32, Ordering::Relaxed);
    let priority = thread.sched_priority.load(Ordering::Relaxed);
    dst.enqueue(thread, priority);
}

/// Run `shift` on the run queues of processors `from` (source) and `to` (destination),
/// both held, the lower CPU index first (the one place two are held at once); then
/// mirror their lengths and wake `to` if what it was given should run now. `shift`
/// returns how many threads it moved.
fn between(from: usize, to: usize, shift: impl FnOnce(&mut Queue, &mut Queue) -> u32) -> u32 {
    if from == to {
        return 0;
    }
    let (pf, pt) = (processor(CpuId::new(from)), processor(CpuId::new(to)));
    let (mut lo, mut hi) = if from < to {
        let lo = pf.runq.lock();
        (lo, pt.runq.lock())
    } else {
        let lo = pt.runq.lock();
        (lo, pf.runq.lock())
    };
    let (src, dst) = if from < to {
        (&mut *lo, &mut *hi)
    } else {
        (&mut *hi, &mut *lo)
    };
    let moved = shift(src, dst);
    pf.nr_queued.store(src.len() as u32, Ordering::Relaxed);
    pt.nr_queued.store(dst.len() as u32, Ordering::Relaxed);
    let best = dst.highest();
    drop((lo, hi));
    if moved > 0 {
        // As in `setrun`: either this sees the processor idle, or its idle loop sees the
        // threads queued.
        core::sync::atomic::fence(Ordering::SeqCst);
        if pt.running_idle.load(Ordering::Acquire)
            || best.is_some_and(|b| b < pt.current_priority.load(Ordering::Acquire))
        {
            kick(CpuId::new(to));
        }
    }
    moved
}

/// Idle balance, from the idle loop of this CPU before it sleeps (interrupts masked):
/// pull one thread from the busiest processor of the set with 2 or more runnable. Returns
/// whether one was pulled (it is on this processor's run queue).
pub fn idle_balance() -> bool {
    let me = this_processor();
    let set_raw = me.pset.load(Ordering::Relaxed);
    if !set_of(set_raw).idle.load(Ordering::Relaxed) {
        return false;
    }
    let mine = me.id().index();
    // No processor has 2 runnable (the usual case of a quiet machine, or a thread just
    // placed on an idle processor): no need to look closer.
    let n = percpu::cpu_count();
    let busy = |i: usize| {
        let p = processor(CpuId::new(i));
        p.nr_queued.load(Ordering::Relaxed) + u32::from(!p.running_idle.load(Ordering::Relaxed))
            >= 2
    };
    if !(0..n).any(|i| i != mine && busy(i)) {
        return false;
    }
    // SAFETY: our own processor, interrupts masked (the caller's contract).
    let view = unsafe { me.counters.scratch.get() };
    gather(view, set_raw);
    let Some(source) = balance::idle_pull_source(mine, view) else {
        return false;
    };
    let c = &me.counters;
    add(&c.balance_attempts, 1);
    if move_threads(source, mine, 1, set_raw, Reason::IdlePull) == 1 {
        add(&c.balance_successes, 1);
        add(&c.idle_pulls, 1);
        true
    } else {
        add(&c.balance_failures, 1);
        false
    }
}

/// At a tick of idle processor `me`: count a breach of the invariant once it has been
/// idle for a whole interval while, at each of its ticks, another processor of its set had
/// 2 or more runnable, one of which it could run. At most one per idle stretch.
fn check_invariant(me: &Processor, set: u32, params: &BalanceParams, now_tick: u64) {
    let c = &me.counters;
    if c.breach_noted.load(Ordering::Relaxed) {
        return;
    }
    let mine = me.id().index();
    let work_for_me = (0..percpu::cpu_count()).filter(|&i| i != mine).any(|i| {
        let p = processor(CpuId::new(i));
        let queued = p.nr_queued.load(Ordering::Relaxed);
        if !p.online.load(Ordering::Acquire)
            || p.pset.load(Ordering::Relaxed) != set
            || queued + u32::from(!p.running_idle.load(Ordering::Relaxed)) < 2
        {
            return false;
        }
        p.runq
            .lock()
            .iter_least_urgent()
            .any(|t| movable(t, set, mine))
    });
    if !work_for_me {
        c.breach_since.store(BUSY, Ordering::Relaxed);
        return;
    }
    let since = c.breach_since.load(Ordering::Relaxed);
    if since == BUSY {
        c.breach_since.store(now_tick, Ordering::Relaxed);
    } else if now_tick >= since.saturating_add(params.interval_ticks as u64) {
        add(&c.invariant_violations, 1);
        c.breach_noted.store(true, Ordering::Relaxed);
    }
}

/// `thread`'s `cpu_usage` now (0 to `TH_USAGE_SCALE`): its decayed usage, decayed further
/// over the ticks since it was last updated (but the current one, if it runs).
pub fn cpu_usage(thread: &Thread) -> u32 {
    let tick = global_tick(crate::arch::timer::counter());
    let mut since = tick.saturating_sub(thread.usage_tick.load(Ordering::Relaxed));
    if thread.on_cpu.load(Ordering::Relaxed) {
        since = since.saturating_sub(1);
    }
    balance::usage_reported(balance::usage_decayed(
        thread.usage.load(Ordering::Relaxed),
        since,
    ))
}

/// `THREAD_MIGRATION_INFO`'s values for `thread`.
pub fn thread_migration(thread: &Thread) -> ThreadMigration {
    let now = crate::arch::timer::counter();
    let raw = |v: u32| (v != NO_PROCESSOR).then_some(v);
    let running = thread.on_cpu.load(Ordering::Relaxed);
    let last = raw(thread.last_processor.load(Ordering::Relaxed));
    ThreadMigration {
        migration_count: thread.migration_count.load(Ordering::Relaxed),
        cache_warmth: warmth_now(thread, now),
        last_processor: last,
        bound_processor: raw(thread.bound_processor.load(Ordering::Relaxed)),
        processor_set: ProcessorSetId(thread.processor_set.load(Ordering::Relaxed)).slot() as u32,
        since_last_run_ns: if running || last.is_none() {
            0
        } else {
            ns(now.saturating_sub(thread.off_since.load(Ordering::Relaxed)))
        },
        last_run_ns: ns(thread.last_run.load(Ordering::Relaxed)),
    }
}

/// `PROCESSOR_SCHED_INFO`'s values for `cpu`, or `None` if there is no such processor.
pub fn processor_sched(cpu: CpuId) -> Option<ProcessorSched> {
    if cpu.index() >= percpu::cpu_count() {
        return None;
    }
    let p = processor(cpu);
    let c = &p.counters;
    let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
    let queued = p.nr_queued.load(Ordering::Relaxed);
    // Idle time includes the idle stretch in progress (else a processor idle since boot
    // would report none until it first ran something).
    let idle_now = if p.running_idle.load(Ordering::Acquire) {
        crate::arch::timer::counter().saturating_sub(p.idle_since.load(Ordering::Relaxed))
    } else {
        0
    };
    Some(ProcessorSched {
        load_average: c.load_average.load(Ordering::Relaxed),
        runnable: queued + u32::from(!p.running_idle.load(Ordering::Relaxed)),
        queued,
        migration_in: get(&c.migration_in),
        migration_out: get(&c.migration_out),
        migration_in_cross_cluster: get(&c.migration_in_cross),
        ticks: get(&c.ticks),
        last_balance_tick: get(&c.last_balance_tick),
        context_switches: get(&p.context_switches),
        idle_ns: ns(get(&p.idle_time).saturating_add(idle_now)),
        balance_attempts: get(&c.balance_attempts),
        balance_successes: get(&c.balance_successes),
        balance_failures: get(&c.balance_failures),
        balance_moved: get(&c.balance_moved),
        idle_pulls: get(&c.idle_pulls),
        invariant_violations: get(&c.invariant_violations),
        balance_ns: get(&c.balance_ns),
        balance_passes: get(&c.balance_passes),
        balance_insns: get(&c.balance_insns),
        wakeups: get(&c.wakeups),
        wakeups_on_last: get(&c.wakeups_on_last),
        cluster: percpu::cluster(cpu),
        processor_set: ProcessorSetId(p.pset.load(Ordering::Relaxed)).slot() as u32,
    })
}

/// Move `thread` to run on `target` now: a queued thread moves between run queues, a
/// running one is preempted and continues on `target`, a waiting one runs there when it
/// wakes. Errors: `KERN_INVALID_ARGUMENT` when `target` is offline or outside the
/// thread's processor set, `KERN_FAILURE` when the thread is bound to another processor,
/// `KERN_TERMINATED` when it has ended.
pub fn thread_migrate(thread: &Arc<Thread>, target: CpuId) -> Result<(), KernReturn> {
    let to = target.index();
    if to >= percpu::cpu_count() || !processor(target).online.load(Ordering::Acquire) {
        return Err(KernReturn::InvalidArgument);
    }
    if thread.is_idle || thread.should_terminate() {
        return Err(KernReturn::Terminated);
    }
    let bound = thread.bound_processor.load(Ordering::Relaxed);
    if bound != NO_PROCESSOR && bound as usize != to {
        return Err(KernReturn::Failure);
    }
    if bound == NO_PROCESSOR
        && processor(target).pset.load(Ordering::Relaxed)
            != thread.processor_set.load(Ordering::Relaxed)
    {
        return Err(KernReturn::InvalidArgument);
    }
    send_to(thread, to, Reason::ThreadMigrate);
    Ok(())
}

/// Send `thread` (allowed on processor `to`) there: noted for whoever places it next,
/// moved now if it is queued, preempted if it runs; `reason` for the trace.
fn send_to(thread: &Arc<Thread>, to: usize, reason: Reason) {
    let here = to as u32;
    if thread.queued_on.load(Ordering::SeqCst) == here
        || (thread.on_cpu.load(Ordering::SeqCst)
            && thread.last_processor.load(Ordering::Relaxed) == here)
    {
        // Already there: nothing moves, and its cache stays warm.
        return;
    }
    if trace::on() {
        trace::note_move(thread, reason);
    }
    // Its cache is on the processor it leaves: cold from now.
    thread.cache_warmth.store(0, Ordering::Relaxed);
    thread
        .warmth_stamp
        .store(crate::arch::timer::counter(), Ordering::Relaxed);
    // Noted first: a placement racing with the look below sees it (`setrun`), and the look
    // sees a thread queued before.
    thread.migrate_to.store(to as u32, Ordering::SeqCst);
    let queued = thread.queued_on.load(Ordering::SeqCst);
    if queued != NO_PROCESSOR && (queued as usize) < crate::devtree::MAX_CPUS {
        let from = queued as usize;
        if from == to || take_queued(thread, from, to) {
            thread.migrate_to.store(NO_PROCESSOR, Ordering::Relaxed);
            return;
        }
    }
    // Running (or being switched): preempt it where it runs; it leaves at its next
    // return to user mode and is placed on `to` (`scheduler::must_leave`).
    if thread.on_cpu.load(Ordering::SeqCst) {
        let cpu = thread.last_processor.load(Ordering::Relaxed);
        if cpu != NO_PROCESSOR && cpu as usize != to {
            kick(CpuId::new(cpu as usize));
        } else if cpu as usize == to {
            thread.migrate_to.store(NO_PROCESSOR, Ordering::Relaxed);
        }
    }
}

/// Move `thread`, if still queued on `from` and saved, to `to`'s run queue.
fn take_queued(thread: &Arc<Thread>, from: usize, to: usize) -> bool {
    between(from, to, |src, dst| {
        match src.remove_first(|t| Arc::ptr_eq(t, thread) && !t.on_cpu.load(Ordering::Acquire)) {
            Some(t) => {
                requeue(dst, t, to);
                1
            }
            None => 0,
        }
    }) == 1
}

/// Bind `thread` to `target` (it then runs only there, whatever its set, and balancing
/// never moves it), or unbind it (`None`). Binding moves it there as `thread_migrate`
/// does. `KERN_INVALID_ARGUMENT` for an offline processor.
pub fn thread_bind(thread: &Arc<Thread>, target: Option<CpuId>) -> Result<(), KernReturn> {
    if thread.is_idle || thread.should_terminate() {
        return Err(KernReturn::Terminated);
    }
    let Some(target) = target else {
        thread.bound_processor.store(NO_PROCESSOR, Ordering::SeqCst);
        return Ok(());
    };
    let to = target.index();
    if to >= percpu::cpu_count() || !processor(target).online.load(Ordering::Acquire) {
        return Err(KernReturn::InvalidArgument);
    }
    thread.bound_processor.store(to as u32, Ordering::SeqCst);
    send_to(thread, to, Reason::Bind);
    Ok(())
}

/// The balancing parameters of `set`; `KERN_INVALID_ARGUMENT` for a destroyed set.
pub fn balance_params(set: ProcessorSetId) -> Result<BalanceParams, KernReturn> {
    if !super::pset::is_live(set) {
        return Err(KernReturn::InvalidArgument);
    }
    Ok(set_of(set.0).get())
}

/// Set the balancing parameters of `set`: `KERN_INVALID_ARGUMENT` for a destroyed set or a
/// value out of bounds (`BalanceParams::is_valid`).
pub fn set_balance_params(set: ProcessorSetId, params: BalanceParams) -> Result<(), KernReturn> {
    if !super::pset::is_live(set) || !params.is_valid() {
        return Err(KernReturn::InvalidArgument);
    }
    set_of(set.0).set(params);
    Ok(())
}
