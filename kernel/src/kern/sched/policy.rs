//! Where a runnable thread goes (`thread_select_best_processor`): pure rules over a
//! snapshot of the processors, tested on the host. The scheduler gathers the snapshot
//! under its locks and acts on the answer.
//!
//! Rules (DESIGN.md 6): a bound thread goes to its processor; otherwise an idle processor
//! of its set, its last processor first; otherwise the least loaded one, except that the
//! last processor keeps the thread while its cache is warm (`WARM_THRESHOLD`) and its load
//! is within the thread's `tolerance` (the set's `BalanceParams::warmth_tolerance`, by
//! default `WARM_TOLERANCE`) runnable threads of the least loaded.
//!
//! Processor sets bound the choice: a processor is eligible for a thread only while it is
//! online and in the thread's set ([`may_run`]); a bound thread ignores sets, as in GNU
//! Mach. When no processor is eligible the thread waits on its set's queue until one is
//! assigned to the set (the mechanism, `sched::pset`, does that).

/// What the placement needs to know of one processor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProcessorLoad {
    /// Online and in the thread's processor set.
    pub eligible: bool,
    /// Running its idle thread with nothing queued.
    pub idle: bool,
    /// Runnable threads: queued plus the one running (if not idle).
    pub load: usize,
}

/// What the placement needs to know of the thread.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ThreadHints {
    pub bound: Option<usize>,
    pub last_processor: Option<usize>,
    /// 0 (cold) to 255 (very warm), cooled to now (`balance::warmth_cooled`).
    pub cache_warmth: u8,
    /// Extra runnable threads the warm last processor may carry, beyond the least loaded,
    /// and still get the thread (`BalanceParams::warmth_tolerance` of its set).
    pub tolerance: usize,
}

impl Default for ThreadHints {
    /// Unbound, never ran, cold, and the default tolerance.
    fn default() -> Self {
        ThreadHints {
            bound: None,
            last_processor: None,
            cache_warmth: 0,
            tolerance: WARM_TOLERANCE,
        }
    }
}

/// The default [`ThreadHints::tolerance`] (the seed's +2; `BalanceParams::DEFAULT` agrees).
pub const WARM_TOLERANCE: usize = 2;
/// Warmth at or above which the last processor is preferred: a quarter of the scale, which
/// a third of a 10 ms tick of running reaches and 50 ms of sleep undoes
/// (`balance::warmth_after_running`, `balance::warmth_cooled`).
pub const WARM_THRESHOLD: u8 = 64;

/// Whether a processor in set `processor_set` may run a thread of set `thread_set` bound
/// to `bound` (if any) when the processor is `cpu`: a bound thread only on its processor,
/// whatever its set; any other only on processors of its own set.
#[inline]
pub fn may_run(processor_set: u32, thread_set: u32, bound: Option<usize>, cpu: usize) -> bool {
    match bound {
        Some(b) => b == cpu,
        None => processor_set == thread_set,
    }
}

/// The processor index for the thread, or `None` if no processor is eligible (the
/// thread then waits for a processor on its set's queue).
pub fn select_processor(cpus: &[ProcessorLoad], thread: ThreadHints) -> Option<usize> {
    select_processor_by(cpus.len(), |i| cpus[i], thread)
}

/// As [`select_processor`], over `count` processors whose loads `load` reads on demand:
/// the kernel's way, with no snapshot array on the stack (one per possible CPU would not
/// fit a kernel stack).
pub fn select_processor_by(
    count: usize,
    load: impl Fn(usize) -> ProcessorLoad,
    thread: ThreadHints,
) -> Option<usize> {
    if let Some(bound) = thread.bound {
        return (bound < count && load(bound).eligible).then_some(bound);
    }
    let last = thread
        .last_processor
        .filter(|&i| i < count && load(i).eligible);
    if let Some(i) = last
        && load(i).idle
    {
        return Some(i);
    }
    let mut least: Option<(usize, usize)> = None;
    for i in 0..count {
        let p = load(i);
        if !p.eligible {
            continue;
        }
        if p.idle {
            return Some(i);
        }
        if least.is_none_or(|(_, min)| p.load < min) {
            least = Some((i, p.load));
        }
    }
    let (least, min_load) = least?;
    if let Some(i) = last {
        let tolerance = if thread.cache_warmth >= WARM_THRESHOLD {
            thread.tolerance
        } else {
            0
        };
        if load(i).load <= min_load.saturating_add(tolerance) {
            return Some(i);
        }
    }
    Some(least)
}

#[cfg(test)]
mod tests {
    use super::*;
    extern crate std;
    use proptest::prelude::*;
    use std::vec::Vec;

    fn busy(load: usize) -> ProcessorLoad {
        ProcessorLoad {
            eligible: true,
            idle: false,
            load,
        }
    }
    const IDLE: ProcessorLoad = ProcessorLoad {
        eligible: true,
        idle: true,
        load: 0,
    };
    const OFF: ProcessorLoad = ProcessorLoad {
        eligible: false,
        idle: true,
        load: 0,
    };

    #[test]
    fn bound_threads_go_to_their_processor_only() {
        let cpus = [IDLE, busy(5), OFF];
        let hints = ThreadHints {
            bound: Some(1),
            ..Default::default()
        };
        assert_eq!(select_processor(&cpus, hints), Some(1));
        let hints = ThreadHints {
            bound: Some(2),
            ..Default::default()
        };
        assert_eq!(select_processor(&cpus, hints), None);
    }

    #[test]
    fn idle_first_preferring_the_last_processor() {
        let cpus = [busy(1), IDLE, IDLE];
        assert_eq!(select_processor(&cpus, ThreadHints::default()), Some(1));
        let hints = ThreadHints {
            last_processor: Some(2),
            ..Default::default()
        };
        assert_eq!(select_processor(&cpus, hints), Some(2));
    }

    #[test]
    fn least_loaded_unless_warm_and_close() {
        let cpus = [busy(3), busy(1), busy(4)];
        let cold = ThreadHints {
            last_processor: Some(0),
            cache_warmth: 0,
            bound: None,
            tolerance: WARM_TOLERANCE,
        };
        assert_eq!(select_processor(&cpus, cold), Some(1));
        let warm = ThreadHints {
            cache_warmth: 200,
            ..cold
        };
        assert_eq!(select_processor(&cpus, warm), Some(0));
        let too_far = ThreadHints {
            last_processor: Some(2),
            ..warm
        };
        assert_eq!(select_processor(&cpus, too_far), Some(1));
    }

    #[test]
    fn the_tolerance_is_the_threads_and_only_counts_while_warm() {
        let cpus = [busy(5), busy(1), busy(4)];
        let warm = |tolerance| ThreadHints {
            last_processor: Some(0),
            cache_warmth: WARM_THRESHOLD,
            bound: None,
            tolerance,
        };
        // 5 is 4 above the least loaded (1): kept with a tolerance of 4 or more only.
        assert_eq!(select_processor(&cpus, warm(4)), Some(0));
        assert_eq!(select_processor(&cpus, warm(3)), Some(1));
        assert_eq!(select_processor(&cpus, warm(0)), Some(1));
        assert_eq!(select_processor(&cpus, warm(usize::MAX)), Some(0));
        // Just below the threshold the thread is cold: no tolerance at all.
        let cool = ThreadHints {
            cache_warmth: WARM_THRESHOLD - 1,
            ..warm(usize::MAX)
        };
        assert_eq!(select_processor(&cpus, cool), Some(1));
        // Equal loads: a cold thread still stays (the least loaded is the first found,
        // but the last processor ties with it).
        let tie = [busy(2), busy(2)];
        let cold_last_1 = ThreadHints {
            last_processor: Some(1),
            cache_warmth: 0,
            ..ThreadHints::default()
        };
        assert_eq!(select_processor(&tie, cold_last_1), Some(1));
        assert_eq!(ThreadHints::default().tolerance, WARM_TOLERANCE);
        assert_eq!(
            WARM_TOLERANCE,
            super::super::stats::BalanceParams::DEFAULT.warmth_tolerance as usize
        );
    }

    #[test]
    fn ineligible_processors_are_never_chosen() {
        let cpus = [OFF, busy(9), OFF];
        let hints = ThreadHints {
            last_processor: Some(0),
            cache_warmth: 255,
            bound: None,
            tolerance: WARM_TOLERANCE,
        };
        assert_eq!(select_processor(&cpus, hints), Some(1));
        assert_eq!(select_processor(&[OFF, OFF], ThreadHints::default()), None);
        assert_eq!(select_processor(&[], ThreadHints::default()), None);
    }

    #[test]
    fn sets_bound_eligibility_and_bound_threads_ignore_them() {
        assert!(may_run(2, 2, None, 5));
        assert!(!may_run(0, 2, None, 5));
        assert!(may_run(0, 2, Some(5), 5));
        assert!(!may_run(2, 2, Some(4), 5));
    }

    /// A model of the mechanism: processors with a set each and a run queue each, and per
    /// set a queue of threads waiting for a processor. Threads are placed as `setrun`
    /// places them; a processor leaving its set sends its queued threads through the
    /// placement again, and one arriving takes its new set's waiting threads.
    struct Model {
        online: Vec<bool>,
        set_of: Vec<u32>,
        /// Per processor: (thread id, thread set).
        queues: Vec<Vec<(usize, u32)>>,
        /// Per set: waiting thread ids.
        waiting: Vec<Vec<usize>>,
    }

    impl Model {
        fn loads(&self, thread_set: u32) -> Vec<ProcessorLoad> {
            (0..self.online.len())
                .map(|i| ProcessorLoad {
                    eligible: self.online[i] && may_run(self.set_of[i], thread_set, None, i),
                    idle: self.queues[i].is_empty(),
                    load: self.queues[i].len(),
                })
                .collect()
        }

        fn setrun(&mut self, thread: usize, set: u32) {
            match select_processor(&self.loads(set), ThreadHints::default()) {
                Some(cpu) => self.queues[cpu].push((thread, set)),
                None => self.waiting[set as usize].push(thread),
            }
        }

        fn assign(&mut self, cpu: usize, set: u32) {
            self.set_of[cpu] = set;
            let (stay, leave): (Vec<_>, Vec<_>) = core::mem::take(&mut self.queues[cpu])
                .into_iter()
                .partition(|&(_, s)| s == set);
            self.queues[cpu] = stay;
            for (t, s) in leave {
                self.setrun(t, s);
            }
            let waiting = core::mem::take(&mut self.waiting[set as usize]);
            for t in waiting {
                self.setrun(t, set);
            }
        }

        /// Every queued thread is on an online processor of its set, and a set's threads
        /// wait only while it has no online processor.
        fn check(&self) {
            for (cpu, q) in self.queues.iter().enumerate() {
                for &(_, s) in q {
                    assert!(self.online[cpu] && self.set_of[cpu] == s);
                }
            }
            for (set, w) in self.waiting.iter().enumerate() {
                let has =
                    (0..self.online.len()).any(|i| self.online[i] && self.set_of[i] == set as u32);
                assert!(w.is_empty() || !has, "set {set} waits with processors");
            }
        }
    }

    #[test]
    fn an_empty_set_keeps_its_threads_waiting_until_a_processor_arrives() {
        let mut m = Model {
            online: std::vec![true; 3],
            set_of: std::vec![0; 3],
            queues: std::vec![Vec::new(); 3],
            waiting: std::vec![Vec::new(); 2],
        };
        m.setrun(1, 1);
        m.setrun(2, 1);
        assert_eq!(m.waiting[1], [1, 2]);
        m.assign(2, 1);
        assert!(m.waiting[1].is_empty());
        assert_eq!(m.queues[2].len(), 2);
        m.check();
        // Leaving the set again: back to waiting, the set has no other processor.
        m.assign(2, 0);
        assert_eq!(m.waiting[1].len(), 2);
        m.check();
    }

    proptest! {
        #[test]
        fn placement_respects_sets_through_any_reassignment(
            cpus in 1usize..9,
            threads in proptest::collection::vec(0u32..3, 0..40),
            moves in proptest::collection::vec((0usize..8, 0u32..3), 0..20),
            offline in proptest::collection::vec(any::<bool>(), 8),
        ) {
            let mut m = Model {
                // The boot processor (0) is always online and never leaves the default set.
                online: (0..cpus).map(|i| i == 0 || !offline[i]).collect(),
                set_of: std::vec![0; cpus],
                queues: std::vec![Vec::new(); cpus],
                waiting: std::vec![Vec::new(); 3],
            };
            for (t, &s) in threads.iter().enumerate() {
                m.setrun(t, s);
                m.check();
            }
            for &(cpu, set) in &moves {
                if cpu == 0 || cpu >= cpus {
                    continue;
                }
                m.assign(cpu, set);
                m.check();
            }
            // Nothing is lost: every thread is queued or waiting exactly once.
            let mut seen: Vec<usize> = m.queues.iter().flatten().map(|&(t, _)| t)
                .chain(m.waiting.iter().flatten().copied()).collect();
            seen.sort_unstable();
            prop_assert_eq!(seen, (0..threads.len()).collect::<Vec<_>>());
            // The default set always has the boot processor, so its threads never wait.
            prop_assert!(m.waiting[0].is_empty());
        }

        #[test]
        fn the_choice_is_always_eligible(
            loads in proptest::collection::vec((any::<bool>(), any::<bool>(), 0usize..6), 0..9),
            last in proptest::option::of(0usize..10),
            bound in proptest::option::of(0usize..10),
            warmth in any::<u8>(),
            tolerance in prop_oneof![0usize..8, Just(usize::MAX)],
        ) {
            let cpus: Vec<ProcessorLoad> = loads.iter()
                .map(|&(eligible, idle, load)| ProcessorLoad { eligible, idle, load })
                .collect();
            let hints = ThreadHints { bound, last_processor: last, cache_warmth: warmth, tolerance };
            match select_processor(&cpus, hints) {
                Some(i) => {
                    prop_assert!(cpus[i].eligible);
                    if let Some(b) = bound { prop_assert_eq!(i, b); }
                }
                None => match bound {
                    Some(b) => prop_assert!(cpus.get(b).is_none_or(|p| !p.eligible)),
                    None => prop_assert!(cpus.iter().all(|p| !p.eligible)),
                },
            }
        }
    }
}
