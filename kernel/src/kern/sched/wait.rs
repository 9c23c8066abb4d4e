//! The wait/wake state of one thread, in Mach's shape (`assert_wait`, `thread_block`,
//! `clear_wait`): pure rules over two flags, kept under the thread's own lock by the
//! mechanism in `waitq.rs`, and tested here on the host over random interleavings.
//!
//! `waiting` is GNU Mach's `TH_WAIT`: the thread has asserted a wait that has not ended.
//! `running` is `TH_RUN`: the thread is on a CPU, on a run queue, or promised to one. A
//! wait ends exactly once (the first `clear` that finds it wins; later ones find nothing),
//! and whoever ends it learns from the answer whether it must put the thread on a run queue:
//! only when the thread had already committed to blocking. A thread woken between its
//! `assert_wait` and its `thread_block` does not block at all.

/// Why a wait ended (GNU Mach `kern/sched_prim.h` values).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum WaitResult {
    Awakened = 0,
    TimedOut = 1,
    Interrupted = 2,
    Restart = 3,
}

/// What the ender of a wait must do next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Wake {
    /// The wait had already ended (or it was another wait): nothing happened.
    Nothing,
    /// The wait ended; the thread had not blocked yet and goes on running by itself.
    StillRunning,
    /// The wait ended and the thread is blocked: the caller must make it runnable
    /// (`setrun`), once the CPU that switched it out has let go of it.
    Enqueue,
}

/// `assert_wait` on a thread that already waits or does not run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NotRunnable;

/// Identifies one wait of a thread, so that a late timeout cannot end a later wait.
pub type WaitSeq = u32;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WaitState<E> {
    pub waiting: bool,
    pub running: bool,
    pub interruptible: bool,
    /// What the current wait is on (`None` for a timeout-only wait or no wait).
    pub event: Option<E>,
    pub seq: WaitSeq,
    /// How the last wait ended.
    pub result: WaitResult,
}

impl<E: Copy + PartialEq> WaitState<E> {
    /// A thread that has never run (created stopped: neither running nor waiting).
    pub const fn new_stopped() -> Self {
        WaitState {
            waiting: false,
            running: false,
            interruptible: true,
            event: None,
            seq: 0,
            result: WaitResult::Awakened,
        }
    }

    /// A thread that is running now (idle threads).
    pub const fn new_running() -> Self {
        WaitState {
            running: true,
            ..Self::new_stopped()
        }
    }

    /// Start a wait on `event` (the thread runs). Returns the wait's sequence number.
    /// A thread waits on one thing at a time: `Err` if a wait is already asserted.
    pub fn assert_wait(
        &mut self,
        event: Option<E>,
        interruptible: bool,
    ) -> Result<WaitSeq, NotRunnable> {
        if self.waiting || !self.running {
            return Err(NotRunnable);
        }
        self.waiting = true;
        self.interruptible = interruptible;
        self.event = event;
        self.seq = self.seq.wrapping_add(1);
        self.result = WaitResult::Awakened;
        Ok(self.seq)
    }

    /// The thread is about to switch away to block: it blocks (`true`, and it is no longer
    /// running) if its wait is still on, or carries on (`false`) if it already ended.
    pub fn commit_block(&mut self) -> bool {
        if self.waiting {
            self.running = false;
            true
        } else {
            false
        }
    }

    /// End the wait numbered `seq` (any current wait if `None`) with `result`. An
    /// interruption does not end an uninterruptible wait.
    pub fn clear(&mut self, seq: Option<WaitSeq>, result: WaitResult) -> Wake {
        if !self.waiting || seq.is_some_and(|s| s != self.seq) {
            return Wake::Nothing;
        }
        if result == WaitResult::Interrupted && !self.interruptible {
            return Wake::Nothing;
        }
        self.waiting = false;
        self.event = None;
        self.result = result;
        if self.running {
            Wake::StillRunning
        } else {
            self.running = true;
            Wake::Enqueue
        }
    }

    /// Start a stopped (new or suspended) thread: `true` if the caller must enqueue it.
    pub fn start(&mut self) -> bool {
        if self.running || self.waiting {
            return false;
        }
        self.running = true;
        true
    }

    /// The thread is leaving for good.
    pub fn exit(&mut self) {
        self.waiting = false;
        self.running = false;
        self.event = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    type S = WaitState<u32>;

    #[test]
    fn wake_after_block_enqueues_once() {
        let mut s = S::new_running();
        let seq = s.assert_wait(Some(7), true).unwrap();
        assert!(s.commit_block());
        assert!(!s.running);
        assert_eq!(s.clear(Some(seq), WaitResult::Awakened), Wake::Enqueue);
        assert_eq!(s.clear(Some(seq), WaitResult::TimedOut), Wake::Nothing);
        assert_eq!(s.clear(None, WaitResult::Awakened), Wake::Nothing);
        assert_eq!(s.result, WaitResult::Awakened);
        assert!(s.running && !s.waiting);
    }

    #[test]
    fn wake_before_block_means_no_block() {
        let mut s = S::new_running();
        s.assert_wait(Some(1), true).unwrap();
        assert_eq!(s.clear(None, WaitResult::TimedOut), Wake::StillRunning);
        assert!(!s.commit_block());
        assert!(s.running);
        assert_eq!(s.result, WaitResult::TimedOut);
    }

    #[test]
    fn a_stale_timeout_does_not_end_the_next_wait() {
        let mut s = S::new_running();
        let first = s.assert_wait(None, true).unwrap();
        assert_eq!(
            s.clear(Some(first), WaitResult::Awakened),
            Wake::StillRunning
        );
        let second = s.assert_wait(Some(3), true).unwrap();
        assert_ne!(first, second);
        assert_eq!(s.clear(Some(first), WaitResult::TimedOut), Wake::Nothing);
        assert!(s.waiting);
    }

    #[test]
    fn uninterruptible_waits_ignore_interrupts() {
        let mut s = S::new_running();
        s.assert_wait(Some(1), false).unwrap();
        assert_eq!(s.clear(None, WaitResult::Interrupted), Wake::Nothing);
        assert_eq!(s.clear(None, WaitResult::Awakened), Wake::StillRunning);
    }

    #[test]
    fn one_wait_at_a_time_and_only_while_running() {
        let mut s = S::new_running();
        s.assert_wait(Some(1), true).unwrap();
        assert!(s.assert_wait(Some(2), true).is_err());
        let mut stopped = S::new_stopped();
        assert!(stopped.assert_wait(None, true).is_err());
        assert!(stopped.start());
        assert!(!stopped.start());
    }

    /// One step of a model run: the thread itself acts (wait, block, get scheduled), or
    /// someone else ends its wait (wake by event, timeout of a given wait, interrupt).
    #[derive(Clone, Copy, Debug)]
    enum Op {
        Wait {
            event: Option<u32>,
            timeout: bool,
        },
        Block,
        /// The scheduler picks the thread from its run queue (if it is on one).
        Dispatch,
        WakeEvent(u32),
        /// The timer of wait number `back` waits ago fires.
        Timeout {
            back: u32,
        },
        Interrupt,
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (proptest::option::of(0u32..3), any::<bool>())
                .prop_map(|(event, timeout)| Op::Wait { event, timeout }),
            Just(Op::Block),
            Just(Op::Dispatch),
            (0u32..3).prop_map(Op::WakeEvent),
            (0u32..3).prop_map(|back| Op::Timeout { back }),
            Just(Op::Interrupt),
        ]
    }

    /// The model around the state: where the thread is (on a CPU, blocked, queued), the
    /// timers still armed, and how many times each wait ended.
    #[derive(Debug, Default)]
    struct World {
        on_cpu: bool,
        queued: u32,
        armed: Vec<WaitSeq>,
        ended: std::collections::HashMap<WaitSeq, u32>,
        asserted: Vec<WaitSeq>,
    }

    proptest! {
        /// Over any interleaving: every wait ends at most once, the thread is never both on
        /// a CPU and queued, it is queued at most once, it never runs while waiting, and a
        /// wait that ended while the thread was blocked put it on a run queue.
        #[test]
        fn exactly_once_over_random_interleavings(ops in proptest::collection::vec(op(), 1..200)) {
            let mut s = S::new_running();
            let mut w = World { on_cpu: true, ..World::default() };
            for op in ops {
                let end = |s: &mut S, w: &mut World, seq: Option<WaitSeq>, r: WaitResult| {
                    let current = s.seq;
                    match s.clear(seq, r) {
                        Wake::Nothing => {}
                        Wake::StillRunning => {
                            prop_assert!(w.on_cpu, "still running but not on a CPU");
                            *w.ended.entry(current).or_default() += 1;
                        }
                        Wake::Enqueue => {
                            prop_assert!(!w.on_cpu, "enqueued while on a CPU");
                            w.queued += 1;
                            *w.ended.entry(current).or_default() += 1;
                        }
                    }
                    w.armed.retain(|&a| a != current);
                    Ok(())
                };
                match op {
                    Op::Wait { event, timeout } => {
                        if w.on_cpu && !s.waiting {
                            let seq = s.assert_wait(event, true).unwrap();
                            w.asserted.push(seq);
                            if timeout {
                                w.armed.push(seq);
                            }
                        }
                    }
                    Op::Block => {
                        if w.on_cpu && s.commit_block() {
                            w.on_cpu = false;
                        }
                    }
                    Op::Dispatch => {
                        if w.queued > 0 {
                            w.queued -= 1;
                            w.on_cpu = true;
                        }
                    }
                    Op::WakeEvent(e) => {
                        if s.waiting && s.event == Some(e) {
                            end(&mut s, &mut w, None, WaitResult::Awakened)?;
                        }
                    }
                    Op::Timeout { back } => {
                        let idx = w.asserted.len().checked_sub(1 + back as usize);
                        if let Some(seq) = idx.map(|i| w.asserted[i]) {
                            // A timer that was cancelled may still fire late (it was already
                            // taken off its queue): the sequence number must stop it.
                            end(&mut s, &mut w, Some(seq), WaitResult::TimedOut)?;
                        }
                    }
                    Op::Interrupt => end(&mut s, &mut w, None, WaitResult::Interrupted)?,
                }
                prop_assert!(w.queued <= 1, "queued twice");
                prop_assert!(!(w.on_cpu && w.queued > 0), "on a CPU and queued");
                prop_assert_eq!(s.running, w.on_cpu || w.queued > 0);
                prop_assert!(!(s.waiting && !s.running && w.on_cpu));
                prop_assert!(w.ended.values().all(|&n| n == 1), "a wait ended twice");
            }
            // Every wait but the current one has ended, exactly once.
            for seq in &w.asserted {
                let current = s.waiting && *seq == s.seq;
                prop_assert_eq!(w.ended.get(seq).copied().unwrap_or(0), u32::from(!current));
            }
        }
    }
}
