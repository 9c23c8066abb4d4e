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
/// default balance intervals): a step reaches half its height in 6 ticks and 95 % in 22,
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

/// `cpu_usage` (`THREAD_BASIC_INFO`) is a share of one processor on GNU Mach's scale
/// (`TH_USAGE_SCALE`, 1000 = always running), averaged with exponential decay as GNU Mach's
/// `cpu_usage` is (it decays by 5/8 each second there; here by 1/64 per tick, a time constant
/// of 64 ticks, 0.64 s at 100 Hz). Kept in fixed point, [`USAGE_ONE`] per 1000th, so that
/// small values still decay.
pub const USAGE_SCALE: u32 = 1000;
pub const USAGE_ONE: u32 = 1 << 10;
const USAGE_DECAY_SHIFT: u32 = 6;

/// Usage (fixed point) after `ticks` ticks in which the thread did not run.
pub fn usage_decayed(usage: u32, ticks: u64) -> u32 {
    // (63/64)^ticks: after 64 * 16 ticks even the maximum is gone.
    if ticks >= 64 * 16 {
        return 0;
    }
    let mut u = usage;
    for _ in 0..ticks {
        if u == 0 {
            break;
        }
        u -= u.div_ceil(1 << USAGE_DECAY_SHIFT);
    }
    u
}

/// Usage (fixed point) after the thread ran `ran_ns` without a break, in ticks of
/// `tick_ns`: each whole tick counts in full, the rest as that share of one tick (a tick
/// interrupt that came late, as under a loaded host, loses nothing).
pub fn usage_tick(usage: u32, ran_ns: u64, tick_ns: u64) -> u32 {
    let full = USAGE_SCALE * USAGE_ONE;
    let tick_ns = tick_ns.max(1);
    let step = |u: u32, share: u32| {
        let u = u.min(full);
        (u - u / (1 << USAGE_DECAY_SHIFT) + share / (1 << USAGE_DECAY_SHIFT)).min(full)
    };
    let mut u = usage;
    // After 64 * 16 whole ticks any start has reached the top.
    for _ in 0..(ran_ns / tick_ns).min(64 * 16) {
        u = step(u, full);
    }
    let rest = ran_ns % tick_ns;
    if rest == 0 {
        return u.min(full);
    }
    step(
        u,
        (u128::from(rest) * u128::from(full) / u128::from(tick_ns)) as u32,
    )
}

/// The reported `cpu_usage` (0 to `USAGE_SCALE`) of a fixed-point usage.
pub fn usage_reported(usage: u32) -> u32 {
    (usage / USAGE_ONE).min(USAGE_SCALE)
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
    /// Index of the source processor in the slice given to [`next_move`].
    pub from: usize,
    /// Index of the destination processor.
    pub to: usize,
    /// Threads to move: at least 1, at most the source's `movable`.
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
/// surplus and the destination's deficit: at least 1, at most `movable`, at most half the
/// difference rounded up (so the two never cross). Moving many at once is what spreads 16
/// threads on one processor of four to 4/4/4/4 in one pass (the seed moved one thread per
/// interval and needed 12).
///
/// Why targets rather than "half the difference between busiest and idlest": halving
/// moves threads twice. From 16/0/0/0 it moves 8 to the second processor and then 4 of
/// those on to the fourth (16 migrations for 12 threads out of place); from 10/3/0 it
/// moves 5 then 1 where 5 suffice. Heading for targets, each thread moves at most once
/// and a pass moves exactly the fewest threads that reach a balanced state (a host test
/// checks this against a brute-force search).
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
    /// Its cache warmth, cooled to now (`warmth_cooled`).
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

/// The positions of the `k` coldest movable candidates, coldest first (ties: the earlier
/// position), at most `N` of them, looking at the first [`COLDEST_WINDOW`] candidates only
/// (a pass moves a few threads from a queue; scanning a very long one in full for each
/// would cost more than the choice is worth). One scan for all `k`, where calling
/// [`coldest`] `k` times would scan `k` times.
pub const COLDEST_WINDOW: usize = 64;
pub fn coldest_k<const N: usize>(
    candidates: impl Iterator<Item = Candidate>,
    k: usize,
) -> arrayvec::ArrayVec<usize, N> {
    let mut seen: arrayvec::ArrayVec<(u8, usize), COLDEST_WINDOW> = arrayvec::ArrayVec::new();
    for (i, c) in candidates.take(COLDEST_WINDOW).enumerate() {
        if c.movable {
            seen.push((c.warmth, i));
        }
    }
    // (warmth, position) orders coldest first, then the earlier position. A pass takes a
    // few: selecting them one by one over the small array beats sorting it.
    let mut out = arrayvec::ArrayVec::new();
    for _ in 0..k.min(N).min(seen.len()) {
        let Some((at, &(_, i))) = seen.iter().enumerate().min_by_key(|&(_, &key)| key) else {
            break;
        };
        out.push(i);
        seen.swap_remove(at);
    }
    out
}

#[cfg(test)]
mod coldest_k_tests {
    use super::*;
    extern crate std;
    use proptest::prelude::*;
    use std::vec::Vec;

    proptest! {
        /// The same threads, in the same order, as taking the coldest one at a time.
        #[test]
        fn same_as_coldest_one_at_a_time(
            c in proptest::collection::vec((any::<u8>(), any::<bool>()), 0..40),
            k in 0usize..12,
        ) {
            let cands: Vec<Candidate> =
                c.iter().map(|&(warmth, movable)| Candidate { warmth, movable }).collect();
            let fast: arrayvec::ArrayVec<usize, 8> = coldest_k(cands.iter().copied(), k);
            // The slow way: pick, then mark it taken (not movable), k times.
            let mut left = cands.clone();
            let mut slow = Vec::new();
            for _ in 0..k.min(8) {
                match coldest(left.iter().copied()) {
                    Some(i) => {
                        slow.push(i);
                        left[i].movable = false;
                    }
                    None => break,
                }
            }
            prop_assert_eq!(fast.to_vec(), slow);
        }
    }
}

#[cfg(test)]
mod usage_tests {
    use super::*;

    #[test]
    fn a_thread_always_running_approaches_full_usage_and_one_that_stops_decays() {
        let tick = 10_000_000;
        let mut u = 0;
        for _ in 0..64 {
            u = usage_tick(u, tick, tick);
        }
        // One time constant: about 1 - 1/e of the way.
        let r = usage_reported(u);
        assert!((600..=660).contains(&r), "{r}");
        for _ in 0..1000 {
            u = usage_tick(u, tick, tick);
        }
        assert!(usage_reported(u) >= 990);
        // Half the time running: about half.
        let mut h = 0;
        for _ in 0..2000 {
            h = usage_tick(h, tick / 2, tick);
        }
        assert!(
            (480..=510).contains(&usage_reported(h)),
            "{}",
            usage_reported(h)
        );
        // Stopped: one time constant leaves about 1/e, and long enough leaves nothing.
        let d = usage_reported(usage_decayed(u, 64));
        assert!((350..=380).contains(&d), "{d}");
        assert_eq!(usage_decayed(u, 64 * 16), 0);
        assert_eq!(usage_decayed(u, 0), u);
        // Small values decay too (fixed point), and nothing exceeds the scale.
        assert_eq!(usage_decayed(1, 1), 0);
        assert_eq!(
            usage_reported(usage_tick(u32::MAX, u64::MAX, 1)),
            USAGE_SCALE
        );
        // A late tick loses nothing: three ticks' running at once is three ticks.
        let three = (0..3).fold(1000, |u, _| usage_tick(u, tick, tick));
        assert_eq!(usage_tick(1000, 3 * tick, tick), three);
        assert_eq!(usage_tick(0, 0, tick), 0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    extern crate std;
    use crate::kern::sched::policy::WARM_THRESHOLD;
    use proptest::prelude::*;
    use std::vec::Vec;

    const MS: u64 = 1_000_000;
    const P: BalanceParams = BalanceParams::DEFAULT;

    // ---- load average ----

    #[test]
    fn the_load_average_reaches_a_constant_input_exactly() {
        for (start, runnable) in [(0, 1), (0, 16), (16_000, 0), (3_999, 4), (4_001, 4), (7, 0)] {
            let mut avg = start;
            let mut ticks = 0;
            while avg != runnable * LOAD_SCALE {
                let next = load_average_tick(avg, runnable);
                // Strictly closer, never past the target.
                assert!(next.abs_diff(runnable * LOAD_SCALE) < avg.abs_diff(runnable * LOAD_SCALE));
                avg = next;
                ticks += 1;
                assert!(ticks <= 120, "{start} -> {runnable}: stuck at {avg}");
            }
            assert_eq!(load_average_tick(avg, runnable), avg, "stays there");
        }
        // The time constant the docs claim: one thread from 0 passes half in 6 ticks and
        // 95 % in 22.
        let series: Vec<u32> = (0..30)
            .scan(0, |a, _| {
                *a = load_average_tick(*a, 1);
                Some(*a)
            })
            .collect();
        assert!(series[4] < 500 && series[5] >= 500, "{series:?}");
        assert!(series[20] < 950 && series[21] >= 950, "{series:?}");
    }

    #[test]
    fn the_load_average_saturates() {
        assert_eq!(load_average_tick(u32::MAX, u32::MAX), u32::MAX);
        let big = load_average_tick(0, u32::MAX);
        assert_eq!(big, u32::MAX.div_ceil(8));
        assert_eq!(
            load_average_tick(u32::MAX, 0),
            u32::MAX - u32::MAX.div_ceil(8)
        );
        assert_eq!(load_average_tick(0, 0), 0);
    }

    // ---- warmth ----

    #[test]
    fn warmth_grows_while_running_and_caps() {
        assert!(warmth_after_running(0, 10 * MS) >= WARM_THRESHOLD);
        assert_eq!(warmth_after_running(0, 10 * MS), 200);
        assert_eq!(warmth_after_running(200, 10 * MS), 255);
        assert_eq!(warmth_after_running(255, u64::MAX), 255);
        assert_eq!(warmth_after_running(0, u64::MAX), 255);
        assert_eq!(warmth_after_running(10, WARMTH_GROWTH_NS - 1), 10);
        assert_eq!(warmth_after_running(10, 0), 10);
    }

    #[test]
    fn warmth_cools_off_the_processor() {
        for w in 0..=255u8 {
            assert_eq!(warmth_cooled(w, 0), w);
            // A few microseconds (an RPC): unchanged.
            assert_eq!(warmth_cooled(w, 5_000), w);
            assert!(warmth_cooled(w, MS) + 5 >= w);
            assert!(warmth_cooled(w, 50 * MS) < WARM_THRESHOLD);
            assert_eq!(warmth_cooled(w, 200 * MS), 0);
            assert_eq!(warmth_cooled(w, u64::MAX), 0);
        }
        assert_eq!(warmth_cooled(255, 50 * MS), 63);
        // One tick asleep after a tick of running: still warm.
        assert!(warmth_cooled(warmth_after_running(0, 10 * MS), 10 * MS) >= WARM_THRESHOLD);
    }

    proptest! {
        #[test]
        fn warmth_is_monotone(w in any::<u8>(), a in any::<u64>(), b in any::<u64>()) {
            let (lo, hi) = (a.min(b), a.max(b));
            prop_assert!(warmth_cooled(w, hi) <= warmth_cooled(w, lo));
            prop_assert!(warmth_cooled(w, lo) <= w);
            prop_assert!(warmth_after_running(w, hi) >= warmth_after_running(w, lo));
            prop_assert!(warmth_after_running(w, lo) >= w);
            if w < 255 {
                prop_assert!(warmth_cooled(w, lo) <= warmth_cooled(w + 1, lo));
            }
        }

        #[test]
        fn the_load_average_moves_towards_its_input(avg in any::<u32>(), runnable in any::<u32>()) {
            let target = runnable.saturating_mul(LOAD_SCALE);
            let next = load_average_tick(avg, runnable);
            prop_assert!(next.abs_diff(target) <= avg.abs_diff(target));
            prop_assert!((avg == target) == (next == avg));
            prop_assert!(next.min(avg) <= target.max(avg) && next >= avg.min(target) && next <= avg.max(target));
        }
    }

    // ---- next_move ----

    fn cpu(runnable: u32, movable: u32) -> CpuState {
        CpuState {
            eligible: true,
            runnable,
            movable,
            cluster: 0,
        }
    }

    /// The mechanism as the kernel runs it: carry out each move (`moved` says how many of
    /// the asked it really moves), update the states, call again. Returns the moves, or
    /// fails past the termination bound.
    fn pass(
        cpus: &mut [CpuState],
        params: &BalanceParams,
        moved: impl FnMut(&Move) -> u32,
    ) -> Vec<Move> {
        pass_counting(cpus, params, moved, true)
    }

    /// As `pass`; `arrivals_movable` says whether the mechanism counts the threads it
    /// brought to a processor as movable there (the termination argument needs neither).
    fn pass_counting(
        cpus: &mut [CpuState],
        params: &BalanceParams,
        mut moved: impl FnMut(&Move) -> u32,
        arrivals_movable: bool,
    ) -> Vec<Move> {
        let squares: u64 = cpus
            .iter()
            .filter(|c| c.eligible)
            .map(|c| u64::from(c.runnable).pow(2))
            .sum();
        // Real moves lower the sum of squares by 2 or more; between two, at most one empty
        // move per processor.
        let bound = (squares / 2 + 1).saturating_mul(cpus.len() as u64 + 1);
        let mut moves = Vec::new();
        let mut calls = 0u64;
        while let Some(m) = next_move(cpus, params) {
            calls += 1;
            assert!(calls <= bound, "no end after {calls} calls: {cpus:?}");
            let (f, t) = (cpus[m.from], cpus[m.to]);
            assert!(m.count >= 1 && m.from != m.to, "{m:?}");
            assert!(f.eligible && t.eligible, "{m:?} {cpus:?}");
            assert!(m.count <= f.movable.min(f.runnable), "{m:?} {cpus:?}");
            assert!(
                f.runnable - t.runnable >= params.threshold.max(2),
                "{m:?} {cpus:?}"
            );
            // Never past each other (what the termination argument needs).
            assert!(m.count < f.runnable - t.runnable, "{m:?} {cpus:?}");
            let k = moved(&m).min(m.count);
            if k == 0 {
                cpus[m.from].movable = 0;
            } else {
                cpus[m.from].runnable -= k;
                cpus[m.from].movable -= k;
                cpus[m.to].runnable += k;
                if arrivals_movable {
                    cpus[m.to].movable += k;
                }
            }
            moves.push(Move { count: k, ..m });
        }
        moves
    }

    fn total(moves: &[Move]) -> u32 {
        moves.iter().map(|m| m.count).sum()
    }

    /// With threshold `thr`, no processor holding a movable thread has `thr` or more
    /// runnable than another eligible one.
    fn balanced(cpus: &[CpuState], thr: u32) -> bool {
        let e = || cpus.iter().filter(|c| c.eligible);
        e().all(|a| a.movable == 0 || e().all(|b| a.runnable < b.runnable + thr.max(2)))
    }

    #[test]
    fn nothing_to_balance() {
        assert_eq!(next_move(&[], &P), None);
        let off = CpuState {
            eligible: false,
            ..cpu(9, 9)
        };
        assert_eq!(next_move(&[off, off], &P), None);
        assert_eq!(next_move(&[cpu(9, 8)], &P), None);
        // An ineligible idle processor is not a destination.
        assert_eq!(next_move(&[cpu(9, 8), off], &P), None);
        // A difference of 1, whatever the threshold says.
        for threshold in [0, 1, 2] {
            let p = BalanceParams { threshold, ..P };
            assert_eq!(next_move(&[cpu(2, 1), cpu(1, 0)], &p), None);
            assert_eq!(next_move(&[cpu(1, 1), cpu(0, 0)], &p), None);
            assert_eq!(next_move(&[cpu(5, 4), cpu(4, 3), cpu(5, 4)], &p), None);
        }
        // Threshold 3: a difference of 2 stays.
        let p3 = BalanceParams { threshold: 3, ..P };
        assert_eq!(next_move(&[cpu(3, 2), cpu(1, 0)], &p3), None);
        assert!(next_move(&[cpu(4, 3), cpu(1, 0)], &p3).is_some());
        // Nothing movable: bound or still running.
        assert_eq!(next_move(&[cpu(16, 0), cpu(0, 0)], &P), None);
        assert_eq!(next_move(&[cpu(1, 0), cpu(0, 0)], &P), None);
    }

    #[test]
    fn sixteen_on_one_of_four_spread_in_one_pass() {
        let mut cpus = [cpu(16, 15), cpu(0, 0), cpu(0, 0), cpu(0, 0)];
        let moves = pass(&mut cpus, &P, |m| m.count);
        assert!(cpus.iter().all(|c| c.runnable == 4), "{cpus:?}");
        assert_eq!(total(&moves), 12);
        assert_eq!(moves.len(), 3, "{moves:?}");
        // And of eight.
        let mut cpus = [cpu(0, 0); 8];
        cpus[0] = cpu(16, 15);
        let moves = pass(&mut cpus, &P, |m| m.count);
        assert!(cpus.iter().all(|c| c.runnable == 2), "{cpus:?}");
        assert_eq!(total(&moves), 14);
    }

    #[test]
    fn the_fewest_moves_even_where_halving_would_overshoot() {
        // Halving busiest and idlest would move 5 then 1 more; 5 is enough.
        let mut cpus = [cpu(10, 9), cpu(3, 2), cpu(0, 0)];
        let moves = pass(&mut cpus, &P, |m| m.count);
        assert_eq!(total(&moves), 5, "{moves:?}");
        let mut r: Vec<u32> = cpus.iter().map(|c| c.runnable).collect();
        r.sort_unstable();
        assert_eq!(r, [4, 4, 5]);
        // (2, 2, 0) needs one move, though no processor is above the ceiling of the mean
        // (4/3 -> 2): "at most sum(max(0, runnable - ceil(mean)))" cannot hold here.
        let mut cpus = [cpu(2, 1), cpu(2, 1), cpu(0, 0)];
        assert_eq!(total(&pass(&mut cpus, &P, |m| m.count)), 1);
    }

    #[test]
    fn bound_threads_stay_and_the_rest_fill_around_them() {
        // 10 bound on 0; 6 on 1 (one running); 2 and 3 empty: the 5 queued on 1 go to
        // 2 and 3 until 1, 2, 3 are within one.
        let mut cpus = [cpu(10, 0), cpu(6, 5), cpu(0, 0), cpu(0, 0)];
        let moves = pass(&mut cpus, &P, |m| m.count);
        assert!(moves.iter().all(|m| m.from == 1), "{moves:?}");
        let r: Vec<u32> = cpus.iter().map(|c| c.runnable).collect();
        assert_eq!(r, [10, 2, 2, 2]);
        assert!(balanced(&cpus, 2));
    }

    #[test]
    fn ineligible_processors_are_never_touched() {
        let off = CpuState {
            eligible: false,
            ..cpu(0, 0)
        };
        let busy_off = CpuState {
            eligible: false,
            ..cpu(20, 19)
        };
        let mut cpus = [off, cpu(8, 7), busy_off, cpu(0, 0)];
        let moves = pass(&mut cpus, &P, |m| m.count);
        assert_eq!(
            moves,
            [Move {
                from: 1,
                to: 3,
                count: 4
            }]
        );
        assert_eq!(cpus[0], off);
        assert_eq!(cpus[2], busy_off);
    }

    #[test]
    fn counts_at_the_top_of_u32() {
        let mut cpus = [cpu(u32::MAX, u32::MAX), cpu(0, 0)];
        let m = next_move(&cpus, &P).unwrap();
        assert_eq!((m.from, m.to), (0, 1));
        assert_eq!(m.count, u32::MAX / 2);
        let moves = pass(&mut cpus, &P, |m| m.count);
        assert_eq!(moves.len(), 1);
        assert_eq!(cpus[0].runnable.abs_diff(cpus[1].runnable), 1);
        // movable above runnable is read as runnable.
        let m = next_move(&[cpu(4, u32::MAX), cpu(0, 0)], &P).unwrap();
        assert_eq!(m.count, 2);
    }

    #[test]
    fn a_mechanism_that_moves_less_still_ends() {
        let mut cpus = [cpu(16, 15), cpu(0, 0), cpu(0, 0), cpu(0, 0)];
        // Moves nothing: every source's movable is cleared, then it stops.
        let moves = pass(&mut cpus, &P, |_| 0);
        assert_eq!(total(&moves), 0);
        assert_eq!(moves.len(), 1);
        let mut cpus = [cpu(16, 15), cpu(0, 0), cpu(0, 0), cpu(0, 0)];
        // One at a time: still balanced at the end.
        pass(&mut cpus, &P, |_| 1);
        assert!(cpus.iter().all(|c| c.runnable == 4), "{cpus:?}");
    }

    fn clustered(cluster: u32, runnable: u32) -> CpuState {
        CpuState {
            cluster,
            ..cpu(runnable, runnable.saturating_sub(1))
        }
    }

    #[test]
    fn within_a_cluster_first() {
        // Cluster 0 = {0, 1}, cluster 1 = {2, 3}: 0's surplus fills 1 before crossing.
        let mut cpus = [
            clustered(0, 6),
            clustered(0, 0),
            clustered(1, 0),
            clustered(1, 2),
        ];
        let moves = pass(&mut cpus, &P, |m| m.count);
        assert_eq!(
            moves[0],
            Move {
                from: 0,
                to: 1,
                count: 2
            }
        );
        let cross: u32 = moves
            .iter()
            .filter(|m| crosses_cluster(&cpus, m))
            .map(|m| m.count)
            .sum();
        // Cluster 0 holds 6 for 4 slots of 2: exactly 2 threads must cross.
        assert_eq!(cross, 2, "{moves:?}");
        assert!(cpus.iter().all(|c| c.runnable == 2), "{cpus:?}");
        // Interleaved clusters: still in-cluster first.
        let mut cpus = [
            clustered(0, 8),
            clustered(1, 4),
            clustered(0, 0),
            clustered(1, 4),
        ];
        let moves = pass(&mut cpus, &P, |m| m.count);
        assert_eq!(
            moves,
            [Move {
                from: 0,
                to: 2,
                count: 4
            }]
        );
        assert!(!crosses_cluster(&cpus, &moves[0]));
    }

    #[test]
    fn crosses_cluster_edges() {
        let cpus = [clustered(0, 0), clustered(1, 0), clustered(0, 0)];
        assert!(crosses_cluster(
            &cpus,
            &Move {
                from: 0,
                to: 1,
                count: 1
            }
        ));
        assert!(!crosses_cluster(
            &cpus,
            &Move {
                from: 0,
                to: 2,
                count: 1
            }
        ));
        assert!(!crosses_cluster(
            &cpus,
            &Move {
                from: 0,
                to: 3,
                count: 1
            }
        ));
        assert!(!crosses_cluster(
            &[],
            &Move {
                from: 0,
                to: 1,
                count: 1
            }
        ));
    }

    /// The fewest threads to move from `cpus` to a balanced state (threshold 2), by brute
    /// force over every end state: each processor keeps its fixed threads, the threads
    /// that arrive are movable again, and no processor with a movable thread is 2 above
    /// another. Small inputs only.
    fn fewest_moves(cpus: &[CpuState]) -> u32 {
        let e: Vec<&CpuState> = cpus.iter().filter(|c| c.eligible).collect();
        let fixed: Vec<u32> = e
            .iter()
            .map(|c| c.runnable - c.movable.min(c.runnable))
            .collect();
        let total: u32 = e.iter().map(|c| c.runnable).sum();
        let mut best = u32::MAX;
        let mut end = fixed.clone();
        fn walk(
            i: usize,
            left: u32,
            end: &mut Vec<u32>,
            e: &[&CpuState],
            fixed: &[u32],
            best: &mut u32,
        ) {
            if i == end.len() {
                if left != 0 {
                    return;
                }
                let ok = (0..end.len())
                    .all(|a| end[a] == fixed[a] || (0..end.len()).all(|b| end[a] <= end[b] + 1));
                if ok {
                    let cost = (0..end.len())
                        .map(|a| e[a].runnable.saturating_sub(end[a]))
                        .sum();
                    *best = (*best).min(cost);
                }
                return;
            }
            for extra in 0..=left {
                end[i] = fixed[i] + extra;
                walk(i + 1, left - extra, end, e, fixed, best);
            }
        }
        let spare = total - fixed.iter().sum::<u32>();
        walk(0, spare, &mut end, &e, &fixed, &mut best);
        best
    }

    fn states(
        max_cpus: usize,
        max_runnable: u32,
        clusters: u32,
    ) -> impl Strategy<Value = Vec<CpuState>> {
        proptest::collection::vec(
            (
                any::<bool>(),
                0..=max_runnable,
                0..=max_runnable + 1,
                0..clusters.max(1),
            ),
            0..=max_cpus,
        )
        .prop_map(|v| {
            v.into_iter()
                .map(|(off, runnable, movable, cluster)| CpuState {
                    // Mostly eligible.
                    eligible: !off || runnable % 3 != 0,
                    runnable,
                    movable: movable.min(runnable),
                    cluster,
                })
                .collect()
        })
    }

    proptest! {
        #[test]
        fn every_pass_ends_balanced(
            mut cpus in states(8, 40, 3),
            threshold in 0u32..6,
            fails in proptest::collection::vec(0u32..4, 64),
            arrivals_movable in any::<bool>(),
        ) {
            let params = BalanceParams { threshold, ..P };
            let mut i = 0;
            // A mechanism that sometimes moves fewer than asked, or none.
            let moves = pass_counting(&mut cpus, &params, |m| {
                i += 1;
                match fails[i % fails.len()] {
                    0 => 0,
                    1 => 1,
                    _ => m.count,
                }
            }, arrivals_movable);
            prop_assert!(balanced(&cpus, threshold), "{:?} after {:?}", cpus, moves);
        }

        #[test]
        fn a_pass_moves_the_fewest_threads(cpus in states(4, 5, 1)) {
            let mut after = cpus.clone();
            let moved = total(&pass(&mut after, &P, |m| m.count));
            prop_assert!(balanced(&after, 2));
            prop_assert_eq!(moved, fewest_moves(&cpus), "{:?} -> {:?}", cpus, after);
        }

        #[test]
        fn clusters_cost_no_extra_moves(cpus in states(4, 5, 2)) {
            let mut after = cpus.clone();
            let moved = total(&pass(&mut after, &P, |m| m.count));
            prop_assert_eq!(moved, fewest_moves(&cpus), "{:?} -> {:?}", cpus, after);
        }
    }

    // ---- idle pull and coldest ----

    #[test]
    fn idle_pull_takes_from_the_busiest_own_cluster_first() {
        assert_eq!(idle_pull_source(0, &[]), None);
        assert_eq!(idle_pull_source(3, &[cpu(0, 0)]), None);
        let cpus = [cpu(0, 0), cpu(3, 2), cpu(5, 4), cpu(2, 1)];
        assert_eq!(idle_pull_source(0, &cpus), Some(2));
        // Not idle, or not eligible: no pull.
        assert_eq!(idle_pull_source(1, &cpus), None);
        let mut off = cpus;
        off[0].eligible = false;
        assert_eq!(idle_pull_source(0, &off), None);
        // Needs 2 runnable and 1 movable.
        assert_eq!(
            idle_pull_source(0, &[cpu(0, 0), cpu(1, 1), cpu(5, 0)]),
            None
        );
        assert_eq!(idle_pull_source(0, &[cpu(0, 0), cpu(2, 1)]), Some(1));
        // An ineligible busy processor is not a source.
        let mut src_off = cpus;
        src_off[2].eligible = false;
        assert_eq!(idle_pull_source(0, &src_off), Some(1));
        // Own cluster first, even if less busy; ties: the lower index.
        let c = [
            clustered(0, 0),
            clustered(1, 9),
            clustered(0, 3),
            clustered(0, 3),
        ];
        assert_eq!(idle_pull_source(0, &c), Some(2));
        let c = [clustered(0, 0), clustered(1, 9), clustered(0, 1)];
        assert_eq!(idle_pull_source(0, &c), Some(1));
    }

    #[test]
    fn coldest_movable_first_queued_on_ties() {
        let c = |warmth, movable| Candidate { warmth, movable };
        assert_eq!(coldest([].into_iter()), None);
        assert_eq!(coldest([c(0, false), c(0, false)].into_iter()), None);
        assert_eq!(
            coldest([c(9, true), c(0, false), c(3, true), c(3, true)].into_iter()),
            Some(2)
        );
        assert_eq!(coldest([c(255, true), c(255, true)].into_iter()), Some(0));
        assert_eq!(coldest([c(255, false), c(255, true)].into_iter()), Some(1));
    }
}
