//! Load-balancing decisions: pure functions over plain data, tested on the host (with a
//! simulator of processors and threads over ticks, `sim`, that drives the same functions
//! the kernel calls). The mechanism that locks run queues, moves threads and counts is
//! `sched::migrate`; placement of a single runnable thread is `sched::policy`.
//!
//! What is decided here (DESIGN.md 6, issue 11):
//! - the decayed run-queue length of a processor ([`load_average_tick`]);
//! - a thread's cache warmth, grown while it runs ([`warmth_after_running`]) and cooled
//!   while it is off the processor ([`warmth_cooled`]);
//! - what a periodic pass moves ([`next_move`]), where an idle processor pulls from
//!   ([`idle_pull_source`]) and which queued thread goes ([`coldest`]).
//!
//! Nothing here allocates, locks or reads a clock: callers pass nanoseconds and snapshots.

use super::stats::BalanceParams;

/// One runnable thread in [`load_average_tick`]'s fixed point (`ProcessorSched::load_average`).
pub const LOAD_SCALE: u32 = 1000;

/// Each tick the load average moves `1 / 2^LOAD_DECAY_SHIFT` of the way to the current
/// run-queue length. At 100 Hz, 3 gives a time constant of about 8 ticks (80 ms, two
/// default balance intervals): a step reaches half its height in 6 ticks and 95 % in 23,
/// smooth enough to ignore one quantum's bursts, quick enough to show a balance pass.
pub const LOAD_DECAY_SHIFT: u32 = 3;

/// One tick of the decayed run-queue length: `runnable` = queued + running (not the idle
/// thread). Exponential decay, integer only: the step is the remaining distance divided by
/// `2^LOAD_DECAY_SHIFT`, rounded away from zero, so a constant input reaches exactly
/// `runnable * LOAD_SCALE` (the last few units are covered one per tick) and never
/// overshoots it. The target saturates at `u32::MAX`.
pub fn load_average_tick(avg: u32, runnable: u32) -> u32 {
    let target = runnable.saturating_mul(LOAD_SCALE);
    let divisor = 1u32 << LOAD_DECAY_SHIFT;
    if avg < target {
        avg + (target - avg).div_ceil(divisor)
    } else {
        avg - (avg - target).div_ceil(divisor)
    }
}

/// Nanoseconds of running on one processor that add one point of warmth: 50 µs, so one
/// full 10 ms tick adds 200 (clearly warm, well above `policy::WARM_THRESHOLD` = 64, which
/// takes 3.2 ms) and 12.75 ms reaches the cap of 255. Stretches shorter than 50 µs add
/// nothing: a thread that only ever runs a few microseconds leaves little in the cache.
pub const WARMTH_GROWTH_NS: u64 = 50_000;

/// Warmth halves for every `WARMTH_HALF_LIFE_NS` off the processor (linearly in between):
/// 25 ms, so 50 ms off takes even 255 down to 63, below `policy::WARM_THRESHOLD`, and 200 ms
/// (8 half-lives) to 0; a few microseconds off (an RPC round trip) changes nothing, 1 ms
/// takes at most 5 points.
pub const WARMTH_HALF_LIFE_NS: u64 = 25_000_000;

/// Warmth (0..=255) after the thread ran `ran_ns` more nanoseconds on the same processor:
/// grows by one point per [`WARMTH_GROWTH_NS`], capped at 255.
pub fn warmth_after_running(warmth: u8, ran_ns: u64) -> u8 {
    let grown = u64::from(warmth).saturating_add(ran_ns / WARMTH_GROWTH_NS);
    u8::try_from(grown).unwrap_or(u8::MAX)
}

/// Warmth after `off_ns` nanoseconds off the processor: halved per
/// [`WARMTH_HALF_LIFE_NS`], linear within a half-life (so it never increases with
/// `off_ns`), 0 from eight half-lives on.
pub fn warmth_cooled(warmth: u8, off_ns: u64) -> u8 {
    let halvings = off_ns / WARMTH_HALF_LIFE_NS;
    if halvings >= u64::from(u8::BITS) {
        return 0;
    }
    let w = warmth >> halvings;
    let into = off_ns % WARMTH_HALF_LIFE_NS;
    // Less than w / 2: the drop within a half-life stops short of the next halving.
    let drop = u64::from(w) * into / (2 * WARMTH_HALF_LIFE_NS);
    w - drop as u8
}

/// One processor as the balancer sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct CpuState {
    /// Online and in the set being balanced.
    pub eligible: bool,
    /// Queued plus running (not the idle thread).
    pub runnable: u32,
    /// Queued threads that could move to another processor of the set (unbound, not still
    /// on a processor). More than `runnable` is read as `runnable`.
    pub movable: u32,
    /// Its cluster (`/cpus/cpu-map`; 0 without one).
    pub cluster: u32,
}

/// A periodic pass's instruction: move `count` threads (the coldest movable ones) from
/// processor `from` to processor `to`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Move {
    pub from: usize,
    pub to: usize,
    pub count: u32,
}

/// Where a pass is heading: the balanced state that needs the fewest moves, given what
/// cannot move. Each eligible processor keeps its fixed threads (`runnable - movable`);
/// the movable ones are poured over the set like water: every processor whose fixed
/// threads are below `level` is filled to `level`, and the rest (fewer than the processors
/// at `level`) give `level + 1` to the processors at `level` that hold the most now (ties:
/// lower index), so that as few threads as possible move. For a set with nothing bound
/// this is every processor at the floor or the ceiling of the mean, the ceilings going to
/// the busiest.
#[derive(Clone, Copy, Debug)]
struct Plan {
    level: u64,
    /// Processors at `level` with more runnable than `theta` get `level + 1`, and so do
    /// the first `at_theta` (by index) of those with exactly `theta`.
    theta: u64,
    at_theta: u64,
}

fn movable_of(c: &CpuState) -> u64 {
    u64::from(c.movable.min(c.runnable))
}

fn fixed_of(c: &CpuState) -> u64 {
    u64::from(c.runnable) - movable_of(c)
}

impl Plan {
    fn new(cpus: &[CpuState]) -> Plan {
        let eligible = || cpus.iter().filter(|c| c.eligible);
        let total: u64 = eligible().map(movable_of).sum();
        let max_fixed = eligible().map(fixed_of).max().unwrap_or(0);
        let need =
            |level: u64| -> u64 { eligible().map(|c| level.saturating_sub(fixed_of(c))).sum() };
        // need(lo) <= total < need(hi): `hi` is infeasible because the processor with the
        // most fixed threads alone would need total + 1 (with no eligible processor the
        // plan is never used).
        let (mut lo, mut hi) = (0u64, max_fixed + total + 1);
        while hi - lo > 1 {
            let mid = lo + (hi - lo) / 2;
            if need(mid) <= total {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        let level = lo;
        let rest = total - need(level);
        // The `rest`-th largest runnable among processors at `level`.
        let at_level = || eligible().filter(|c| fixed_of(c) <= level);
        let above = |x: u64| at_level().filter(|c| u64::from(c.runnable) > x).count() as u64;
        let (theta, at_theta) = if rest == 0 {
            (u64::MAX, 0)
        } else {
            let max_runnable = at_level().map(|c| u64::from(c.runnable)).max().unwrap_or(0);
            let (mut lo, mut hi) = (0u64, max_runnable + 1);
            // Smallest theta with above(theta) < rest.
            if above(0) < rest {
                hi = 0;
            } else {
                while hi - lo > 1 {
                    let mid = lo + (hi - lo) / 2;
                    if above(mid) < rest {
                        hi = mid;
                    } else {
                        lo = mid;
                    }
                }
            }
            (hi, rest - above(hi))
        };
        Plan {
            level,
            theta,
            at_theta,
        }
    }

    /// Each eligible processor's index, runnable count and surplus over its target
    /// (negative: a deficit), in index order.
    fn surpluses<'a>(&self, cpus: &'a [CpuState]) -> impl Iterator<Item = (usize, u64, i64)> + 'a {
        let plan = *self;
        let mut ties = 0u64;
        cpus.iter()
            .enumerate()
            .filter(|(_, c)| c.eligible)
            .map(move |(i, c)| {
                let r = u64::from(c.runnable);
                let fixed = fixed_of(c);
                let mut target = fixed.max(plan.level);
                if fixed <= plan.level {
                    if r > plan.theta {
                        target += 1;
                    } else if r == plan.theta && ties < plan.at_theta {
                        ties += 1;
                        target += 1;
                    }
                }
                (i, r, r as i64 - target as i64)
            })
    }

    /// The move between the busiest processor above its target and the idlest below its
    /// target among those `within` accepts, if they differ by `threshold` or more.
    fn best_move(
        &self,
        cpus: &[CpuState],
        within: impl Fn(&CpuState) -> bool,
        threshold: u64,
    ) -> Option<Move> {
        let mut from: Option<(usize, u64, i64)> = None;
        let mut to: Option<(usize, u64, i64)> = None;
        for (i, r, s) in self.surpluses(cpus) {
            if !within(&cpus[i]) {
                continue;
            }
            if s > 0 && from.is_none_or(|(_, fr, _)| r > fr) {
                from = Some((i, r, s));
            }
            if s < 0 && to.is_none_or(|(_, tr, _)| r < tr) {
                to = Some((i, r, s));
            }
        }
        let ((from, fr, surplus), (to, tr, deficit)) = (from?, to?);
        (fr - tr >= threshold).then(|| Move {
            from,
            to,
            // Both at most u32::MAX: a surplus is at most `movable`, a deficit at most
            // the level, itself at most the busiest runnable count.
            count: surplus.min(-deficit) as u32,
        })
    }
}

/// The next move of a periodic pass, or `None` when the set is balanced.
///
/// The pass heads for the balanced state that needs the fewest moves (`Plan`: with nothing
/// bound, every processor at the floor or ceiling of the mean). Each move goes from the
/// busiest eligible processor above its target to the idlest below its target, within a
/// cluster first (the first cluster, by processor index, that has such a pair), then
/// across clusters; only when the two differ by at least `params.threshold` (and never by
/// less than 2, whatever the threshold says); `count` is the smaller of the source's
/// surplus and the destination's deficit, at most `movable`, at least 1, and it leaves the
/// two within one of each other (it is half the difference, rounded down or, when the
/// destination's target is the higher, up). Moving the whole way at once is what spreads
/// 16 threads on one processor of four to 4/4/4/4 in one pass (the seed moved one thread
/// per interval and needed 12).
///
/// The mechanism carries the move out, updates the states (subtracting what it really
/// moved from the source's `runnable` and `movable`, adding it to the destination's, and
/// clearing the source's `movable` if it moved nothing) and calls again. That terminates:
/// every real move of `k >= 1` threads across a difference `d >= 2` with `k < d` lowers
/// the sum of the squares of the runnable counts by `2k(d - k) >= 2`, and between two real
/// moves there are at most as many empty ones as processors (each clears a `movable`).
///
/// When this returns `None` with threshold 2, no processor holding a movable thread has 2
/// or more runnable than any other eligible processor.
pub fn next_move(cpus: &[CpuState], params: &BalanceParams) -> Option<Move> {
    if !cpus.iter().any(|c| c.eligible) {
        return None;
    }
    let threshold = u64::from(params.threshold.max(2));
    let plan = Plan::new(cpus);
    // Within each cluster, taking the clusters in the order their first eligible
    // processor appears.
    for (i, leader) in cpus.iter().enumerate() {
        let first_of_cluster = leader.eligible
            && !cpus[..i]
                .iter()
                .any(|c| c.eligible && c.cluster == leader.cluster);
        if !first_of_cluster {
            continue;
        }
        if let Some(m) = plan.best_move(cpus, |c| c.cluster == leader.cluster, threshold) {
            return Some(m);
        }
    }
    plan.best_move(cpus, |_| true, threshold)
}

/// Whether a move between these two processors crosses clusters (for the counters);
/// `false` for an index out of range.
pub fn crosses_cluster(cpus: &[CpuState], m: &Move) -> bool {
    match (cpus.get(m.from), cpus.get(m.to)) {
        (Some(a), Some(b)) => a.cluster != b.cluster,
        _ => false,
    }
}

/// For an idle processor `me` (eligible, runnable 0): where to pull one thread from, or
/// `None`. The busiest other eligible processor with `runnable >= 2` and `movable >= 1`
/// (ties: the lower index), looked for in `me`'s own cluster first, then anywhere.
pub fn idle_pull_source(me: usize, cpus: &[CpuState]) -> Option<usize> {
    let mine = cpus.get(me).filter(|c| c.eligible && c.runnable == 0)?;
    let busiest = |same_cluster: bool| {
        let mut best: Option<(usize, u32)> = None;
        for (i, c) in cpus.iter().enumerate() {
            let fits = i != me
                && c.eligible
                && c.runnable >= 2
                && c.movable >= 1
                && (!same_cluster || c.cluster == mine.cluster);
            if fits && best.is_none_or(|(_, r)| c.runnable > r) {
                best = Some((i, c.runnable));
            }
        }
        best.map(|(i, _)| i)
    };
    busiest(true).or_else(|| busiest(false))
}

/// A queued thread as a candidate to move.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Candidate {
    pub warmth: u8,
    /// Unbound and not on a processor.
    pub movable: bool,
}

/// Index of the coldest movable candidate (ties: the first, i.e. the longest queued), or
/// `None` when none is movable.
pub fn coldest(candidates: impl Iterator<Item = Candidate>) -> Option<usize> {
    let mut best: Option<(usize, u8)> = None;
    for (i, c) in candidates.enumerate() {
        if c.movable && best.is_none_or(|(_, w)| c.warmth < w) {
            best = Some((i, c.warmth));
        }
    }
    best.map(|(i, _)| i)
}
