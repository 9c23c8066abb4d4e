//! What the migration and load-balancing machinery reports and what tunes it (DESIGN.md 6),
//! as plain data: the kernel fills these from its per-thread and per-processor counters
//! (`sched::migrate`), the kernel server turns them into the new `thread_info` and
//! `processor_info` flavors and the balancing routines, and host tests build them directly.

/// Per-set balancing parameters (`processor_set_balance_get`/`_set`). Defaults come from
/// the kernel command line (`balance_interval=`, `balance_threshold=`, `warmth_tolerance=`,
/// `idle_balance=0|1`, `periodic_balance=0|1`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BalanceParams {
    /// Timer ticks between periodic balance passes of the set (at least 1).
    pub interval_ticks: u32,
    /// The smallest difference in runnable threads between two processors that moves
    /// anything (at least 2: a difference of 1 never moves a thread).
    pub threshold: u32,
    /// Extra runnable threads a warm thread's last processor may carry and still get it
    /// back at wake-up (the seed's +2).
    pub warmth_tolerance: u32,
    /// An idle processor pulls a thread at once from a processor of its set with 2 or more
    /// runnable.
    pub idle_balance: bool,
    /// Balance every `interval_ticks`.
    pub periodic_balance: bool,
}

impl BalanceParams {
    pub const DEFAULT: BalanceParams = BalanceParams {
        interval_ticks: 4,
        threshold: 2,
        warmth_tolerance: 2,
        idle_balance: true,
        periodic_balance: true,
    };
    /// Bounds a caller may set (larger intervals or tolerances make no sense on a 100 Hz
    /// tick and would only hide imbalance).
    pub const MAX_INTERVAL: u32 = 1000;
    pub const MAX_THRESHOLD: u32 = 64;
    pub const MAX_TOLERANCE: u32 = 64;

    /// Whether every field is within its bounds.
    pub fn is_valid(&self) -> bool {
        (1..=Self::MAX_INTERVAL).contains(&self.interval_ticks)
            && (2..=Self::MAX_THRESHOLD).contains(&self.threshold)
            && self.warmth_tolerance <= Self::MAX_TOLERANCE
    }
}

impl Default for BalanceParams {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// One thread's migration state (`THREAD_MIGRATION_INFO`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ThreadMigration {
    /// Times the thread started running on a processor other than the one it last ran on.
    pub migration_count: u32,
    /// 0 (cold) to 255 (very warm), cooled to now.
    pub cache_warmth: u8,
    /// The processor it last ran on (`None` before it first ran).
    pub last_processor: Option<u32>,
    /// The processor it is bound to, if any.
    pub bound_processor: Option<u32>,
    /// Its processor set's slot.
    pub processor_set: u32,
    /// Nanoseconds since it last left a processor (0 while it runs).
    pub since_last_run_ns: u64,
    /// Nanoseconds its last stretch on a processor lasted.
    pub last_run_ns: u64,
}

/// One processor's scheduling counters (`PROCESSOR_SCHED_INFO`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ProcessorSched {
    /// Decayed run-queue length (queued plus running), `LOAD_SCALE` 1000 per thread.
    pub load_average: u32,
    /// Runnable threads now: queued plus the one running (not counting the idle thread).
    pub runnable: u32,
    /// Threads on its run queue now.
    pub queued: u32,
    /// Threads that started running here having last run elsewhere, and threads that last
    /// ran here and then started running elsewhere.
    pub migration_in: u64,
    pub migration_out: u64,
    /// Of `migration_in`: from a processor of another cluster.
    pub migration_in_cross_cluster: u64,
    /// Timer ticks this processor has taken, and the tick count of its set's clock at its
    /// set's last balance pass.
    pub ticks: u64,
    pub last_balance_tick: u64,
    pub context_switches: u64,
    /// Nanoseconds spent in the idle thread, the stretch in progress included.
    pub idle_ns: u64,
    /// Balance passes this processor ran (periodic) and attempts it made to pull (idle),
    /// those that moved at least one thread, and those that found work to move but could
    /// not move it (every candidate bound, running or gone).
    pub balance_attempts: u64,
    pub balance_successes: u64,
    pub balance_failures: u64,
    /// Threads this processor's periodic passes moved, and threads its idle pulls took.
    pub balance_moved: u64,
    pub idle_pulls: u64,
    /// Times this processor stayed idle for a whole balance interval while another
    /// processor of its set had 2 or more runnable threads, one of which it could run.
    pub invariant_violations: u64,
    /// Nanoseconds (counter time) this processor spent in periodic balance passes: under
    /// `-icount shift=0` with the other CPUs idle, instructions.
    pub balance_ns: u64,
    /// Periodic balance passes this processor ran, and the instructions its PMU counted
    /// during them (0 where none counts, as under QEMU without `-icount`; under QEMU with
    /// `-icount` the event follows the global instruction count, other CPUs included).
    pub balance_passes: u64,
    pub balance_insns: u64,
    /// Threads woken (made runnable after a wait) whose placement was decided while this
    /// processor was their last one, and how many of those were placed back on it.
    pub wakeups: u64,
    pub wakeups_on_last: u64,
    /// Its cluster (from `/cpus/cpu-map`; 0 without one).
    pub cluster: u32,
    /// Its processor set's slot.
    pub processor_set: u32,
}
