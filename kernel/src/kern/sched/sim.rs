//! A host simulator of N processors and M threads over timer ticks, driving the very
//! policy functions the kernel calls (`balance::*`, `policy::select_processor_by`): its
//! tests are the evidence that the policy spreads, settles and keeps caches warm. It is
//! not a model of the kernel's locking or timing; a tick is the unit of time and a thread
//! is only its pattern, binding and warmth.
//!
//! Each tick, in order:
//! 1. every running thread runs one tick (`warmth_after_running`), and a sleeper whose
//!    burst is done goes to sleep;
//! 2. a thread that used its quantum (2 ticks) goes to the back of its queue if another
//!    waits (round robin);
//! 3. sleepers due wake and are placed by `select_processor_by`, their warmth cooled
//!    (`warmth_cooled`);
//! 4. processors with nothing running take their queue's head;
//! 5. idle processors pull (`idle_pull_source`, then `coldest`) if idle balance is on;
//! 6. every `interval_ticks`, a periodic pass: `next_move` until `None`, each move carried
//!    out with `coldest`;
//! 7. load averages advance (`load_average_tick`).
//!
//! The invariant (no processor idle a whole interval while another could give it work) is
//! checked at the start of each tick.

extern crate std;

use super::balance::{
    Candidate, CpuState, Move, coldest, crosses_cluster, idle_pull_source, load_average_tick,
    next_move, warmth_after_running, warmth_cooled,
};
use super::policy::{ProcessorLoad, ThreadHints, select_processor_by};
use super::stats::BalanceParams;
use std::collections::VecDeque;
use std::vec::Vec;

/// Nanoseconds per tick (100 Hz).
const TICK_NS: u64 = 10_000_000;
/// Ticks a thread runs before another thread of its queue gets the processor.
const QUANTUM_TICKS: u32 = 2;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Pattern {
    /// Always runnable.
    CpuBound,
    /// Runs `run` ticks, then sleeps `sleep` ticks, forever.
    Periodic { run: u32, sleep: u32 },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Queued,
    Running,
    Sleeping { until: u64 },
}

#[derive(Clone, Debug)]
struct Thread {
    pattern: Pattern,
    bound: Option<usize>,
    state: State,
    /// The processor whose queue holds it, or that runs it, or that it last ran on.
    cpu: usize,
    last_cpu: Option<usize>,
    /// As of `off_since` when it is off the processor.
    warmth: u8,
    off_since: u64,
    burst: u32,
    /// Times it started running on another processor than the one it last ran on.
    migrations: u32,
}

#[derive(Clone, Debug, Default)]
struct Cpu {
    eligible: bool,
    cluster: u32,
    queue: VecDeque<usize>,
    running: Option<usize>,
    quantum: u32,
    load_average: u32,
    /// Ticks in a row it has been idle while another processor had 2 or more runnable and
    /// a queued thread it could run.
    starved_streak: u64,
}

/// One periodic pass: the states it started from and the moves it made.
#[derive(Clone, Debug)]
struct Pass {
    before: Vec<CpuState>,
    moves: Vec<Move>,
    /// Threads moved, in order.
    threads: Vec<usize>,
}

/// One wake-up: the thread, its last processor, its cooled warmth, where it went.
#[derive(Clone, Copy, Debug)]
struct Wake {
    thread: usize,
    last: Option<usize>,
    warmth: u8,
    to: usize,
}

struct Sim {
    params: BalanceParams,
    /// At most this many threads per pass, one per move (the seed's policy), or no limit.
    seed_limit: Option<u32>,
    cpus: Vec<Cpu>,
    threads: Vec<Thread>,
    tick: u64,
    /// Threads moved by the balancer (periodic passes and idle pulls), and of those across
    /// clusters.
    moved: u64,
    moved_cross: u64,
    idle_pulls: u64,
    passes: Vec<Pass>,
    wakes: Vec<Wake>,
    violations: u64,
}

impl Sim {
    /// `clusters[i]` is processor i's cluster; every processor is eligible.
    fn new(clusters: &[u32], params: BalanceParams) -> Sim {
        Sim {
            params,
            seed_limit: None,
            cpus: clusters
                .iter()
                .map(|&cluster| Cpu {
                    eligible: true,
                    cluster,
                    ..Cpu::default()
                })
                .collect(),
            threads: Vec::new(),
            tick: 0,
            moved: 0,
            moved_cross: 0,
            idle_pulls: 0,
            passes: Vec::new(),
            wakes: Vec::new(),
            violations: 0,
        }
    }

    fn flat(n: usize) -> Sim {
        Sim::new(&std::vec![0; n], BalanceParams::DEFAULT)
    }

    /// A new thread queued on `cpu` (its bound processor if bound), cold, never run.
    fn spawn(&mut self, pattern: Pattern, bound: Option<usize>, cpu: usize) -> usize {
        let cpu = bound.unwrap_or(cpu);
        let id = self.threads.len();
        self.threads.push(Thread {
            pattern,
            bound,
            state: State::Queued,
            cpu,
            last_cpu: None,
            warmth: 0,
            off_since: self.tick,
            burst: 0,
            migrations: 0,
        });
        self.cpus[cpu].queue.push_back(id);
        self.dispatch();
        id
    }

    fn runnable(&self, cpu: usize) -> u32 {
        let c = &self.cpus[cpu];
        (c.queue.len() + usize::from(c.running.is_some())) as u32
    }

    fn is_idle(&self, cpu: usize) -> bool {
        self.runnable(cpu) == 0
    }

    /// What the kernel hands the policy: per processor, runnable and queued unbound.
    fn states(&self) -> Vec<CpuState> {
        (0..self.cpus.len())
            .map(|i| CpuState {
                eligible: self.cpus[i].eligible,
                runnable: self.runnable(i),
                movable: self.cpus[i]
                    .queue
                    .iter()
                    .filter(|&&t| self.threads[t].bound.is_none())
                    .count() as u32,
                cluster: self.cpus[i].cluster,
            })
            .collect()
    }

    fn warmth_now(&self, t: usize) -> u8 {
        let th = &self.threads[t];
        match th.state {
            State::Running => th.warmth,
            _ => warmth_cooled(th.warmth, (self.tick - th.off_since) * TICK_NS),
        }
    }

    /// Moves the coldest movable queued thread of `from` to the back of `to`'s queue;
    /// false if none is movable.
    fn move_coldest(&mut self, from: usize, to: usize) -> Option<usize> {
        let candidates: Vec<Candidate> = self.cpus[from]
            .queue
            .iter()
            .map(|&t| Candidate {
                warmth: self.warmth_now(t),
                movable: self.threads[t].bound.is_none(),
            })
            .collect();
        let at = coldest(candidates.into_iter())?;
        let t = self.cpus[from].queue.remove(at)?;
        // Its cache stays behind.
        self.threads[t].warmth = 0;
        self.threads[t].off_since = self.tick;
        self.threads[t].cpu = to;
        self.cpus[to].queue.push_back(t);
        self.moved += 1;
        if self.cpus[from].cluster != self.cpus[to].cluster {
            self.moved_cross += 1;
        }
        Some(t)
    }

    /// Every processor with nothing running takes its queue's head.
    fn dispatch(&mut self) {
        for c in 0..self.cpus.len() {
            if self.cpus[c].running.is_some() {
                continue;
            }
            let Some(t) = self.cpus[c].queue.pop_front() else {
                continue;
            };
            let warmth = self.warmth_now(t);
            let th = &mut self.threads[t];
            th.warmth = warmth;
            if th.last_cpu.is_some_and(|l| l != c) {
                th.migrations += 1;
                th.warmth = 0;
            }
            th.last_cpu = Some(c);
            th.state = State::Running;
            th.cpu = c;
            self.cpus[c].running = Some(t);
            self.cpus[c].quantum = 0;
        }
    }

    fn wake(&mut self, t: usize) {
        let warmth = self.warmth_now(t);
        let th = &self.threads[t];
        let hints = ThreadHints {
            bound: th.bound,
            last_processor: th.last_cpu,
            cache_warmth: warmth,
            tolerance: self.params.warmth_tolerance as usize,
        };
        let load = |i: usize| ProcessorLoad {
            eligible: self.cpus[i].eligible,
            idle: self.is_idle(i),
            load: self.runnable(i) as usize,
        };
        let to = select_processor_by(self.cpus.len(), load, hints)
            .expect("the simulated set always has an eligible processor");
        self.wakes.push(Wake {
            thread: t,
            last: th.last_cpu,
            warmth,
            to,
        });
        let th = &mut self.threads[t];
        th.warmth = warmth;
        th.off_since = self.tick;
        th.state = State::Queued;
        th.cpu = to;
        th.burst = 0;
        self.cpus[to].queue.push_back(t);
    }

    fn idle_balance(&mut self) {
        for me in 0..self.cpus.len() {
            if !self.cpus[me].eligible || !self.is_idle(me) {
                continue;
            }
            if let Some(src) = idle_pull_source(me, &self.states()) {
                let pulled = self.move_coldest(src, me);
                assert!(pulled.is_some(), "a source without a movable thread");
                self.idle_pulls += 1;
                self.dispatch();
            }
        }
    }

    fn periodic_balance(&mut self) {
        let before = self.states();
        let mut pass = Pass {
            before: before.clone(),
            moves: Vec::new(),
            threads: Vec::new(),
        };
        // The termination bound of `next_move`'s docs (every move is carried out in full
        // here, so no empty moves).
        let bound: u64 = before
            .iter()
            .map(|c| u64::from(c.runnable).pow(2))
            .sum::<u64>()
            / 2
            + 1;
        let mut moved_this_pass = 0;
        while let Some(m) = next_move(&self.states(), &self.params) {
            assert!(
                (pass.moves.len() as u64) < bound,
                "next_move does not end: {:?}",
                self.states()
            );
            let count = match self.seed_limit {
                Some(limit) if moved_this_pass >= limit => break,
                Some(_) => 1,
                None => m.count,
            };
            for _ in 0..count {
                let t = self.move_coldest(m.from, m.to);
                pass.threads
                    .push(t.expect("next_move asked for more than movable"));
            }
            moved_this_pass += count;
            pass.moves.push(Move { count, ..m });
        }
        self.passes.push(pass);
    }

    fn step(&mut self) {
        // Whether each processor runs nothing during this tick.
        self.check_invariant();
        self.tick += 1;
        let now = self.tick;
        // Run one tick.
        for c in 0..self.cpus.len() {
            let Some(t) = self.cpus[c].running else {
                continue;
            };
            self.cpus[c].quantum += 1;
            let th = &mut self.threads[t];
            th.warmth = warmth_after_running(th.warmth, TICK_NS);
            th.burst += 1;
            if let Pattern::Periodic { run, sleep } = th.pattern
                && th.burst >= run
            {
                th.state = State::Sleeping {
                    until: now + u64::from(sleep),
                };
                th.off_since = now;
                th.burst = 0;
                self.cpus[c].running = None;
            } else if self.cpus[c].quantum >= QUANTUM_TICKS && !self.cpus[c].queue.is_empty() {
                th.state = State::Queued;
                th.off_since = now;
                self.cpus[c].running = None;
                self.cpus[c].queue.push_back(t);
            }
        }
        // Wake-ups, in thread order.
        for t in 0..self.threads.len() {
            if let State::Sleeping { until } = self.threads[t].state
                && until <= now
            {
                self.wake(t);
            }
        }
        self.dispatch();
        if self.params.idle_balance {
            self.idle_balance();
        }
        if self.params.periodic_balance && now.is_multiple_of(u64::from(self.params.interval_ticks))
        {
            self.periodic_balance();
            self.dispatch();
        }
        for c in 0..self.cpus.len() {
            let r = self.runnable(c);
            self.cpus[c].load_average = load_average_tick(self.cpus[c].load_average, r);
        }
    }

    /// Counts the processors that stay idle for a whole interval while, all along, another
    /// processor of the set has 2 or more runnable and a queued thread this one could run
    /// (the kernel's `invariant_violations`). Called at the start of each tick: a
    /// processor idle then runs nothing during the tick.
    fn check_invariant(&mut self) {
        let states = self.states();
        let interval = u64::from(self.params.interval_ticks);
        for me in 0..self.cpus.len() {
            let work_elsewhere = states
                .iter()
                .enumerate()
                .any(|(i, c)| i != me && c.eligible && c.runnable >= 2 && c.movable >= 1);
            let starved = self.cpus[me].eligible && self.is_idle(me) && work_elsewhere;
            let cpu = &mut self.cpus[me];
            cpu.starved_streak = if starved { cpu.starved_streak + 1 } else { 0 };
            if cpu.starved_streak >= interval {
                self.violations += 1;
                cpu.starved_streak = 0;
            }
        }
    }

    fn run(&mut self, ticks: u64) {
        for _ in 0..ticks {
            self.step();
        }
    }

    fn interval(&self) -> u64 {
        u64::from(self.params.interval_ticks)
    }

    fn loads(&self) -> Vec<u32> {
        (0..self.cpus.len()).map(|c| self.runnable(c)).collect()
    }

    /// The convergence criterion, exactly: every processor that holds an unbound thread
    /// (running or queued) has at most one runnable more than any other processor of the
    /// set. With nothing bound this is every processor at floor(M/N) or ceil(M/N) of the M
    /// threads. With bound threads it is the water level: each processor holds its bound
    /// threads and is filled with unbound ones up to a common level L or L + 1 (processors
    /// whose bound threads alone exceed the level hold no unbound thread). A processor
    /// with more bound threads than the level cannot be helped, and "floor or ceil of the
    /// unbound share plus its bound threads" would demand moving unbound threads onto it,
    /// making the busiest processor busier.
    fn balanced(&self) -> bool {
        let loads = self.loads();
        let min = (0..self.cpus.len())
            .filter(|&c| self.cpus[c].eligible)
            .map(|c| loads[c])
            .min()
            .unwrap_or(0);
        (0..self.cpus.len()).all(|c| {
            let unbound = self.cpus[c]
                .queue
                .iter()
                .chain(self.cpus[c].running.iter())
                .any(|&t| self.threads[t].bound.is_none());
            !self.cpus[c].eligible || !unbound || loads[c] <= min + 1
        })
    }

    /// Ticks until `balanced`, at most `limit`.
    fn ticks_to_balance(&mut self, limit: u64) -> Option<u64> {
        let start = self.tick;
        while !self.balanced() {
            if self.tick - start >= limit {
                return None;
            }
            self.step();
        }
        Some(self.tick - start)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kern::sched::policy::WARM_THRESHOLD;
    use proptest::prelude::*;

    fn sixteen_on_cpu0(n: usize) -> Sim {
        let mut sim = Sim::flat(n);
        for _ in 0..16 {
            sim.spawn(Pattern::CpuBound, None, 0);
        }
        sim
    }

    #[test]
    fn sixteen_on_one_processor_spread_within_one_interval() {
        for n in [4usize, 8] {
            let mut sim = sixteen_on_cpu0(n);
            let ticks = sim.ticks_to_balance(100).unwrap();
            assert!(ticks <= sim.interval(), "{n} processors: {ticks} ticks");
            assert!(
                sim.loads().iter().all(|&l| l == 16 / n as u32),
                "{:?}",
                sim.loads()
            );
            // Every thread moved at most once, and exactly the 16 - 16/N that had to.
            assert_eq!(sim.moved, 16 - 16 / n as u64);
            assert!(sim.threads.iter().all(|t| t.migrations <= 1));
            std::println!(
                "16 on 1 of {n}: balanced after {ticks} ticks, {} moved",
                sim.moved
            );
        }
    }

    #[test]
    fn the_seeds_one_move_per_interval_needs_twelve() {
        // The same simulator with the seed's policy: no idle pull, one thread per pass.
        let mut sim = sixteen_on_cpu0(4);
        sim.params.idle_balance = false;
        sim.seed_limit = Some(1);
        let ticks = sim.ticks_to_balance(1000).unwrap();
        assert_eq!(ticks, 12 * sim.interval());
    }

    #[test]
    fn once_balanced_nothing_moves() {
        for n in [2usize, 3, 4, 8] {
            let mut sim = sixteen_on_cpu0(n);
            sim.ticks_to_balance(2 * sim.interval()).unwrap();
            let moved = sim.moved;
            sim.run(20 * sim.interval());
            assert_eq!(sim.moved, moved, "{n} processors");
            // A moved thread counts a migration when it first runs on its new processor
            // if it had run before (some still queued at balance time count later): at
            // most one each, never more than were moved.
            let migrations: u32 = sim.threads.iter().map(|t| t.migrations).sum();
            assert!(u64::from(migrations) <= moved, "{n} processors");
            assert!(sim.threads.iter().all(|t| t.migrations <= 1));
            assert!(sim.balanced());
        }
    }

    #[test]
    fn a_difference_of_one_never_moves_anything() {
        // 5 on 4 (2/1/1/1) and 7 on 4 (2/2/2/1), placed so from the start.
        for placement in [&[0usize, 0, 1, 2, 3][..], &[0, 0, 1, 1, 2, 2, 3]] {
            let mut sim = Sim::flat(4);
            for &c in placement {
                sim.spawn(Pattern::CpuBound, None, c);
            }
            sim.run(20 * sim.interval());
            assert_eq!(sim.moved, 0, "{placement:?}");
            assert!(sim.passes.iter().all(|p| p.moves.is_empty()));
        }
    }

    /// Spawns `threads` (placement, bound) CPU-bound threads on `n` processors.
    fn populated(n: usize, threads: &[(usize, bool)]) -> Sim {
        let mut sim = Sim::flat(n);
        for &(c, bound) in threads {
            let c = c % n;
            sim.spawn(Pattern::CpuBound, bound.then_some(c), c);
        }
        sim
    }

    /// Minimal moves to balance (nothing bound, everything movable): the ceilings go to
    /// the busiest processors.
    fn fewest_unbound(loads: &[u32]) -> u32 {
        let n = loads.len() as u32;
        let total: u32 = loads.iter().sum();
        let (floor, extra) = (total / n, (total % n) as usize);
        let mut sorted = loads.to_vec();
        sorted.sort_unstable_by(|a, b| b.cmp(a));
        sorted
            .iter()
            .enumerate()
            .map(|(i, &r)| r.saturating_sub(floor + u32::from(i < extra)))
            .sum()
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

        /// From any start, balanced within 2 intervals (the `balanced` criterion), and
        /// then 20 intervals without a move.
        #[test]
        fn converges_within_two_intervals_and_stays(
            n in 2usize..=8,
            threads in proptest::collection::vec((0usize..8, proptest::bool::weighted(0.2)), 0..=32),
            clusters in 1u32..=2,
        ) {
            let mut sim = populated(n, &threads);
            for (i, c) in sim.cpus.iter_mut().enumerate() {
                c.cluster = i as u32 * clusters / n as u32;
            }
            sim.run(2 * sim.interval());
            prop_assert!(sim.balanced(), "{:?} from {:?}", sim.loads(), threads);
            if threads.iter().all(|&(_, b)| !b) {
                let m = threads.len() as u32;
                let (lo, hi) = (m / n as u32, m.div_ceil(n as u32));
                prop_assert!(sim.loads().iter().all(|&l| l == lo || l == hi), "{:?}", sim.loads());
            }
            let moved = sim.moved;
            sim.run(20 * sim.interval());
            prop_assert_eq!(sim.moved, moved, "moves after balance");
            prop_assert_eq!(sim.violations, 0);
        }

        /// A pass moves no thread twice, no processor both gives and takes, and with
        /// nothing bound it moves exactly the fewest threads that balance the set (more
        /// than sum(max(0, runnable - ceil(mean))), which is only a lower bound: 2/2/0
        /// needs one move and has no processor above the ceiling).
        #[test]
        fn a_pass_moves_no_more_than_needed(
            n in 2usize..=8,
            threads in proptest::collection::vec((0usize..8, proptest::bool::weighted(0.2)), 0..=32),
            idle_balance in any::<bool>(),
        ) {
            let mut sim = populated(n, &threads);
            sim.params.idle_balance = idle_balance;
            sim.run(3 * sim.interval());
            let nothing_bound = threads.iter().all(|&(_, b)| !b);
            for pass in &sim.passes {
                let mut ids = pass.threads.clone();
                ids.sort_unstable();
                ids.dedup();
                prop_assert_eq!(ids.len(), pass.threads.len(), "a thread moved twice");
                for m in &pass.moves {
                    prop_assert!(pass.moves.iter().all(|o| o.to != m.from && o.from != m.to));
                }
                let moved: u32 = pass.moves.iter().map(|m| m.count).sum();
                let loads: Vec<u32> = pass.before.iter().map(|c| c.runnable).collect();
                let total: u32 = loads.iter().sum();
                let ceil = total.div_ceil(n as u32);
                let lower: u32 = loads.iter().map(|&r| r.saturating_sub(ceil)).sum();
                if nothing_bound {
                    // Everything but the running threads is movable, and the fewest moves
                    // never need to empty a processor that runs one (the ceilings go to
                    // the busiest), so the count ignores them.
                    prop_assert!(moved >= lower, "{:?} moved {}", loads, moved);
                    prop_assert_eq!(moved, fewest_unbound(&loads), "{:?}", loads);
                }
            }
        }

        /// With idle balance on, no processor ever idles a whole interval while another
        /// has 2 or more runnable with one it could run; sleepers and bound threads mixed.
        #[test]
        fn the_invariant_holds(
            n in 2usize..=8,
            threads in proptest::collection::vec(
                (0usize..8, proptest::bool::weighted(0.2), proptest::option::of((1u32..6, 1u32..12))),
                0..=24,
            ),
            periodic in any::<bool>(),
            clusters in 1u32..3,
        ) {
            let cl: Vec<u32> = (0..n as u32).map(|i| i * clusters / n as u32).collect();
            let mut sim = Sim::new(&cl, BalanceParams { periodic_balance: periodic, ..BalanceParams::DEFAULT });
            for &(c, bound, sleeper) in &threads {
                let c = c % n;
                let pattern = match sleeper {
                    None => Pattern::CpuBound,
                    Some((run, sleep)) => Pattern::Periodic { run, sleep },
                };
                sim.spawn(pattern, bound.then_some(c), c);
            }
            sim.run(30 * sim.interval());
            prop_assert_eq!(sim.violations, 0);
        }
    }

    #[test]
    fn the_invariant_check_can_fail() {
        // Balancing off: the second processor idles while the first has 4.
        let mut sim = sixteen_on_cpu0(2);
        sim.params.idle_balance = false;
        sim.params.periodic_balance = false;
        sim.run(3 * sim.interval());
        assert_eq!(sim.violations, 3);
        // Periodic only: the first interval passes idle, then the pass fixes it.
        let mut sim = sixteen_on_cpu0(2);
        sim.params.idle_balance = false;
        sim.run(3 * sim.interval());
        assert_eq!(sim.violations, 1);
        assert!(sim.balanced());
    }

    fn two_clusters_of_four() -> Sim {
        Sim::new(&[0, 0, 0, 0, 1, 1, 1, 1], BalanceParams::DEFAULT)
    }

    #[test]
    fn clusters_fix_their_own_imbalance_first() {
        // Cluster 0 holds 8 on its first processor, cluster 1 is already 2/2/2/2: nothing
        // need cross.
        let mut sim = two_clusters_of_four();
        for _ in 0..8 {
            sim.spawn(Pattern::CpuBound, None, 0);
        }
        for c in 4..8 {
            sim.spawn(Pattern::CpuBound, None, c);
            sim.spawn(Pattern::CpuBound, None, c);
        }
        sim.ticks_to_balance(2 * sim.interval()).unwrap();
        assert_eq!(sim.moved_cross, 0);
        assert!(sim.loads().iter().all(|&l| l == 2));

        // All 16 on processor 0: 8 must cross, and no more do; within each pass the moves
        // inside a cluster come first.
        let mut sim = two_clusters_of_four();
        for _ in 0..16 {
            sim.spawn(Pattern::CpuBound, None, 0);
        }
        sim.ticks_to_balance(2 * sim.interval()).unwrap();
        assert!(sim.loads().iter().all(|&l| l == 2));
        assert_eq!(sim.moved_cross, 8);
        assert_eq!(sim.moved, 14);
        for pass in &sim.passes {
            let cross: Vec<bool> = pass
                .moves
                .iter()
                .map(|m| crosses_cluster(&pass.before, m))
                .collect();
            assert!(cross.windows(2).all(|w| w[0] <= w[1]), "{:?}", pass.moves);
        }
        std::println!(
            "16 on 1 of 2x4: {} moved, {} across clusters",
            sim.moved,
            sim.moved_cross
        );
    }

    #[test]
    fn warmth_grows_and_resets_on_migration_and_the_coldest_moves() {
        let mut sim = Sim::flat(2);
        let a = sim.spawn(Pattern::CpuBound, None, 0);
        sim.run(1);
        assert!(sim.threads[a].warmth >= WARM_THRESHOLD);
        sim.run(1);
        assert_eq!(sim.threads[a].warmth, 255);
        // Two cold threads join on 0. Next tick `a` is preempted (quantum), `b` runs, and
        // the idle processor 1 pulls the coldest queued one: `c`, not the warm `a`.
        let b = sim.spawn(Pattern::CpuBound, None, 0);
        let c = sim.spawn(Pattern::CpuBound, None, 0);
        sim.run(1);
        assert_eq!(sim.threads[b].cpu, 0);
        assert_eq!(sim.threads[c].cpu, 1);
        assert_eq!((sim.threads[a].cpu, sim.threads[a].migrations), (0, 0));
        assert_eq!(sim.threads[a].warmth, 255);
        assert_eq!(
            sim.threads[c].migrations, 0,
            "never ran before: not a migration"
        );

        // Alone with one other thread, the warm one is the one that moves, and goes cold.
        let mut sim = Sim::flat(2);
        let a = sim.spawn(Pattern::CpuBound, None, 0);
        sim.run(2);
        sim.spawn(Pattern::CpuBound, None, 0);
        sim.run(1);
        assert_eq!(sim.threads[a].cpu, 1);
        assert_eq!(sim.threads[a].migrations, 1);
        assert_eq!(sim.threads[a].warmth, 0);
        sim.run(1);
        assert_eq!(sim.threads[a].warmth, warmth_after_running(0, TICK_NS));
    }

    /// Processor 0 runs two CPU-bound threads and a sleeper; processor 1 runs one. Each
    /// time the sleeper wakes, 0 has 2 runnable and 1 has 1.
    fn sleeper_beside(sleep: u32, tolerance: u32) -> (Sim, usize) {
        let params = BalanceParams {
            warmth_tolerance: tolerance,
            idle_balance: false,
            periodic_balance: false,
            ..BalanceParams::DEFAULT
        };
        let mut sim = Sim::new(&[0, 0], params);
        let s = sim.spawn(Pattern::Periodic { run: 2, sleep }, None, 0);
        sim.spawn(Pattern::CpuBound, None, 0);
        sim.spawn(Pattern::CpuBound, None, 0);
        sim.spawn(Pattern::CpuBound, None, 1);
        sim.run(u64::from(sleep) + 3);
        (sim, s)
    }

    #[test]
    fn a_warm_thread_wakes_on_its_last_processor_within_tolerance() {
        // Slept one tick: warm, 0 is within the tolerance of 2: back to 0.
        let (sim, s) = sleeper_beside(1, 2);
        let w = sim.wakes.iter().find(|w| w.thread == s).unwrap();
        assert_eq!(w.last, Some(0));
        assert!(w.warmth >= WARM_THRESHOLD);
        assert_eq!(w.to, 0);
        // No tolerance: the least loaded.
        let (sim, s) = sleeper_beside(1, 0);
        assert_eq!(sim.wakes.iter().find(|w| w.thread == s).unwrap().to, 1);
        // Slept 5 ticks (50 ms): cold, the least loaded.
        let (sim, s) = sleeper_beside(5, 2);
        let w = sim.wakes.iter().find(|w| w.thread == s).unwrap();
        assert!(w.warmth < WARM_THRESHOLD, "{w:?}");
        assert_eq!(w.to, 1);
    }

    #[test]
    fn load_averages_follow_the_queues() {
        let mut sim = sixteen_on_cpu0(4);
        sim.run(200);
        // 4 runnable each for long enough: exactly 4 * LOAD_SCALE.
        assert!(
            sim.cpus.iter().all(|c| c.load_average == 4000),
            "{:?}",
            sim.cpus.iter().map(|c| c.load_average).collect::<Vec<_>>()
        );
    }
}
