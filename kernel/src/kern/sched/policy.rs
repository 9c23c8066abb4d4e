//! Where a runnable thread goes (`thread_select_best_processor`): pure rules over a
//! snapshot of the processors, tested on the host. The scheduler gathers the snapshot
//! under its locks and acts on the answer.
//!
//! Rules (DESIGN.md 6): a bound thread goes to its processor; otherwise an idle processor
//! of its set, its last processor first; otherwise the least loaded one, except that the
//! last processor keeps the thread while its cache is warm and its load is within
//! `WARM_TOLERANCE` runnable threads of the least loaded.

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
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct ThreadHints {
    pub bound: Option<usize>,
    pub last_processor: Option<usize>,
    /// 0 (cold) to 255 (very warm).
    pub cache_warmth: u8,
}

/// Extra runnable threads a warm last processor may carry and still keep its thread.
pub const WARM_TOLERANCE: usize = 2;
/// Warmth at or above which the last processor is preferred.
pub const WARM_THRESHOLD: u8 = 64;

/// The processor index for the thread, or `None` if no processor is eligible.
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
            WARM_TOLERANCE
        } else {
            0
        };
        if load(i).load <= min_load + tolerance {
            return Some(i);
        }
    }
    Some(least)
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn ineligible_processors_are_never_chosen() {
        let cpus = [OFF, busy(9), OFF];
        let hints = ThreadHints {
            last_processor: Some(0),
            cache_warmth: 255,
            bound: None,
        };
        assert_eq!(select_processor(&cpus, hints), Some(1));
        assert_eq!(select_processor(&[OFF, OFF], ThreadHints::default()), None);
        assert_eq!(select_processor(&[], ThreadHints::default()), None);
    }
}
