//! armach's own scheduling additions (not in GNU Mach): the `thread_info` flavor
//! `THREAD_MIGRATION_INFO`, the `processor_info` flavor `PROCESSOR_SCHED_INFO`, and the
//! balancing parameters of the `armach_sched` subsystem (`libmach/defs/armach/sched.defs`),
//! as typed structs with their word encodings. The kernel fills them, user code reads them.
//!
//! Flavor numbers: both are 100, far above GNU Mach's (`thread_info` uses 1 and 2,
//! `processor_info` 1), so an older or newer GNU Mach flavor can never be mistaken for
//! ours. Layouts are arrays of 32-bit words, like every Mach info flavor: a 32-bit field
//! is one word; a 64-bit value is two words, low word first, at an even word offset (so
//! that the words read as a naturally aligned little-endian `u64`); "none" is -1. Counts
//! are in words; a caller passing fewer than the count gets an error (no older counts
//! exist for these flavors).

/// `thread_info` flavor: a thread's migration state ([`ThreadMigrationInfo`]).
pub const THREAD_MIGRATION_INFO: i32 = 100;
/// Its count in 32-bit words.
pub const THREAD_MIGRATION_INFO_COUNT: usize = 10;

/// `processor_info` flavor: a processor's scheduling counters ([`ProcessorSchedInfo`]).
pub const PROCESSOR_SCHED_INFO: i32 = 100;
/// Its count in 32-bit words.
pub const PROCESSOR_SCHED_INFO_COUNT: usize = 42;

/// `cache_warmth`'s maximum.
pub const CACHE_WARMTH_MAX: u8 = 255;
/// `load_average`'s scale: 1000 is one runnable thread.
pub const LOAD_SCALE: u32 = 1000;

fn put64(w: &mut [i32], at: usize, v: u64) {
    w[at] = v as u32 as i32;
    w[at + 1] = (v >> 32) as u32 as i32;
}

fn get64(w: &[i32], at: usize) -> u64 {
    u64::from(w[at] as u32) | (u64::from(w[at + 1] as u32) << 32)
}

fn put_opt(v: Option<u32>) -> i32 {
    v.map_or(-1, |v| v as i32)
}

fn get_opt(v: i32) -> Option<u32> {
    (v >= 0).then_some(v as u32)
}

/// `THREAD_MIGRATION_INFO`, word by word:
///
/// | words | field |
/// |---|---|
/// | 0 | `migration_count` |
/// | 1 | `cache_warmth` (0 cold .. 255) |
/// | 2 | `last_processor` (slot, -1 before it first ran) |
/// | 3 | `bound_processor` (slot, -1 when unbound) |
/// | 4 | `processor_set` (the set's slot) |
/// | 5 | reserved, 0 |
/// | 6-7 | `since_last_run_ns` (0 while it runs) |
/// | 8-9 | `last_run_ns` (its last stretch on a processor) |
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ThreadMigrationInfo {
    pub migration_count: u32,
    pub cache_warmth: u8,
    pub last_processor: Option<u32>,
    pub bound_processor: Option<u32>,
    pub processor_set: u32,
    pub since_last_run_ns: u64,
    pub last_run_ns: u64,
}

impl ThreadMigrationInfo {
    pub fn to_words(&self) -> [i32; THREAD_MIGRATION_INFO_COUNT] {
        let mut w = [0; THREAD_MIGRATION_INFO_COUNT];
        w[0] = self.migration_count as i32;
        w[1] = i32::from(self.cache_warmth);
        w[2] = put_opt(self.last_processor);
        w[3] = put_opt(self.bound_processor);
        w[4] = self.processor_set as i32;
        put64(&mut w, 6, self.since_last_run_ns);
        put64(&mut w, 8, self.last_run_ns);
        w
    }

    /// Reads `w` (`None` if shorter than the count).
    pub fn from_words(w: &[i32]) -> Option<Self> {
        if w.len() < THREAD_MIGRATION_INFO_COUNT {
            return None;
        }
        Some(Self {
            migration_count: w[0] as u32,
            cache_warmth: w[1].clamp(0, 255) as u8,
            last_processor: get_opt(w[2]),
            bound_processor: get_opt(w[3]),
            processor_set: w[4] as u32,
            since_last_run_ns: get64(w, 6),
            last_run_ns: get64(w, 8),
        })
    }
}

/// `PROCESSOR_SCHED_INFO`, word by word: five 32-bit fields, a reserved word, then
/// eighteen 64-bit counters (two words each, low first):
///
/// | words | field |
/// |---|---|
/// | 0 | `load_average` (`LOAD_SCALE` per runnable thread, decayed) |
/// | 1 | `runnable` (queued plus running, idle thread not counted) |
/// | 2 | `queued` |
/// | 3 | `cluster` (from `/cpus/cpu-map`, 0 without one) |
/// | 4 | `processor_set` (its set's slot) |
/// | 5 | reserved, 0 |
/// | 6-7, 8-9, 10-11 | `migration_in`, `migration_out`, `migration_in_cross_cluster` |
/// | 12-13, 14-15 | `ticks`, `last_balance_tick` |
/// | 16-17, 18-19 | `context_switches`, `idle_ns` |
/// | 20-21, 22-23, 24-25 | `balance_attempts`, `balance_successes`, `balance_failures` |
/// | 26-27, 28-29 | `balance_moved`, `idle_pulls` |
/// | 30-31 | `invariant_violations` |
/// | 32-33 | `balance_ns` (under `-icount shift=0`: instructions) |
/// | 34-35, 36-37 | `wakeups`, `wakeups_on_last` |
/// | 38-39, 40-41 | `balance_passes`, `balance_insns` (periodic passes, and the instructions the PMU counted in them: 0 where it counts none) |
///
/// The kernel's documentation of each counter is `kern::sched::stats::ProcessorSched`'s.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ProcessorSchedInfo {
    pub load_average: u32,
    pub runnable: u32,
    pub queued: u32,
    pub cluster: u32,
    pub processor_set: u32,
    pub migration_in: u64,
    pub migration_out: u64,
    pub migration_in_cross_cluster: u64,
    pub ticks: u64,
    pub last_balance_tick: u64,
    pub context_switches: u64,
    pub idle_ns: u64,
    pub balance_attempts: u64,
    pub balance_successes: u64,
    pub balance_failures: u64,
    pub balance_moved: u64,
    pub idle_pulls: u64,
    pub invariant_violations: u64,
    pub balance_ns: u64,
    pub wakeups: u64,
    pub wakeups_on_last: u64,
    pub balance_passes: u64,
    pub balance_insns: u64,
}

impl ProcessorSchedInfo {
    /// The 64-bit counters in word order (from word 6).
    fn counters(&self) -> [u64; 18] {
        [
            self.migration_in,
            self.migration_out,
            self.migration_in_cross_cluster,
            self.ticks,
            self.last_balance_tick,
            self.context_switches,
            self.idle_ns,
            self.balance_attempts,
            self.balance_successes,
            self.balance_failures,
            self.balance_moved,
            self.idle_pulls,
            self.invariant_violations,
            self.balance_ns,
            self.wakeups,
            self.wakeups_on_last,
            self.balance_passes,
            self.balance_insns,
        ]
    }

    pub fn to_words(&self) -> [i32; PROCESSOR_SCHED_INFO_COUNT] {
        let mut w = [0; PROCESSOR_SCHED_INFO_COUNT];
        w[0] = self.load_average as i32;
        w[1] = self.runnable as i32;
        w[2] = self.queued as i32;
        w[3] = self.cluster as i32;
        w[4] = self.processor_set as i32;
        for (i, v) in self.counters().into_iter().enumerate() {
            put64(&mut w, 6 + 2 * i, v);
        }
        w
    }

    /// Reads `w` (`None` if shorter than the count).
    pub fn from_words(w: &[i32]) -> Option<Self> {
        if w.len() < PROCESSOR_SCHED_INFO_COUNT {
            return None;
        }
        let c = |i: usize| get64(w, 6 + 2 * i);
        Some(Self {
            load_average: w[0] as u32,
            runnable: w[1] as u32,
            queued: w[2] as u32,
            cluster: w[3] as u32,
            processor_set: w[4] as u32,
            migration_in: c(0),
            migration_out: c(1),
            migration_in_cross_cluster: c(2),
            ticks: c(3),
            last_balance_tick: c(4),
            context_switches: c(5),
            idle_ns: c(6),
            balance_attempts: c(7),
            balance_successes: c(8),
            balance_failures: c(9),
            balance_moved: c(10),
            idle_pulls: c(11),
            invariant_violations: c(12),
            balance_ns: c(13),
            wakeups: c(14),
            wakeups_on_last: c(15),
            balance_passes: c(16),
            balance_insns: c(17),
        })
    }
}

/// A processor set's balancing parameters, as `processor_set_balance_get` returns them and
/// `processor_set_balance_set` takes them (five separate message items, in this order).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Balance {
    /// Timer ticks between periodic balance passes, `1..=MAX_INTERVAL`.
    pub interval_ticks: u32,
    /// The smallest difference in runnable threads that moves one, `2..=MAX_THRESHOLD`.
    pub threshold: u32,
    /// Extra runnable threads a warm thread's last processor may carry and still get it
    /// back at wake-up, `0..=MAX_TOLERANCE`.
    pub warmth_tolerance: u32,
    /// An idle processor pulls work at once.
    pub idle_balance: bool,
    /// Balance every `interval_ticks`.
    pub periodic_balance: bool,
}

impl Balance {
    /// The kernel's defaults (before any `balance_*=` boot argument).
    pub const DEFAULT: Balance = Balance {
        interval_ticks: 4,
        threshold: 2,
        warmth_tolerance: 2,
        idle_balance: true,
        periodic_balance: true,
    };
    /// Bounds `processor_set_balance_set` accepts (`KERN_INVALID_ARGUMENT` outside).
    pub const MAX_INTERVAL: u32 = 1000;
    pub const MIN_THRESHOLD: u32 = 2;
    pub const MAX_THRESHOLD: u32 = 64;
    pub const MAX_TOLERANCE: u32 = 64;

    /// Whether every field is within its bounds.
    pub fn is_valid(&self) -> bool {
        (1..=Self::MAX_INTERVAL).contains(&self.interval_ticks)
            && (Self::MIN_THRESHOLD..=Self::MAX_THRESHOLD).contains(&self.threshold)
            && self.warmth_tolerance <= Self::MAX_TOLERANCE
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thread_migration_info_round_trips_with_its_layout() {
        let t = ThreadMigrationInfo {
            migration_count: 7,
            cache_warmth: 255,
            last_processor: Some(3),
            bound_processor: None,
            processor_set: 1,
            since_last_run_ns: 0x1_0000_0002,
            last_run_ns: 5,
        };
        let w = t.to_words();
        assert_eq!(w, [7, 255, 3, -1, 1, 0, 2, 1, 5, 0]);
        assert_eq!(ThreadMigrationInfo::from_words(&w), Some(t));
        assert_eq!(ThreadMigrationInfo::from_words(&w[..9]), None);
        let never = ThreadMigrationInfo::default().to_words();
        assert_eq!(
            ThreadMigrationInfo::from_words(&never)
                .unwrap()
                .last_processor,
            None
        );
        assert_eq!(never[2..4], [-1, -1]);
    }

    #[test]
    fn processor_sched_info_round_trips_with_its_layout() {
        let p = ProcessorSchedInfo {
            load_average: 2500,
            runnable: 3,
            queued: 2,
            cluster: 1,
            processor_set: 4,
            migration_in: 1,
            migration_out: 2,
            migration_in_cross_cluster: 3,
            ticks: 0xffff_ffff_ffff,
            last_balance_tick: 5,
            context_switches: 6,
            idle_ns: 7,
            balance_attempts: 8,
            balance_successes: 9,
            balance_failures: 10,
            balance_moved: 11,
            idle_pulls: 12,
            invariant_violations: 13,
            balance_ns: 14,
            wakeups: 15,
            wakeups_on_last: 16,
            balance_passes: 17,
            balance_insns: 0x1_0000_0012,
        };
        let w = p.to_words();
        assert_eq!(w[..6], [2500, 3, 2, 1, 4, 0]);
        assert_eq!(w[6..8], [1, 0]);
        assert_eq!(w[12..14], [-1, 0xffff]);
        assert_eq!(w[30..32], [13, 0]);
        assert_eq!(w[36..38], [16, 0]);
        assert_eq!(w[38..40], [17, 0]);
        assert_eq!(w[40..42], [0x12, 1]);
        assert_eq!(ProcessorSchedInfo::from_words(&w), Some(p));
        assert_eq!(ProcessorSchedInfo::from_words(&w[..41]), None);
    }

    #[test]
    fn balance_bounds() {
        assert!(Balance::DEFAULT.is_valid());
        let b = |interval_ticks, threshold, warmth_tolerance| Balance {
            interval_ticks,
            threshold,
            warmth_tolerance,
            ..Balance::DEFAULT
        };
        assert!(!b(0, 2, 2).is_valid());
        assert!(!b(1001, 2, 2).is_valid());
        assert!(!b(4, 1, 2).is_valid());
        assert!(!b(4, 65, 2).is_valid());
        assert!(!b(4, 2, 65).is_valid());
        assert!(b(1000, 64, 64).is_valid());
        assert!(b(1, 2, 0).is_valid());
    }
}
