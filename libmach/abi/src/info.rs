//! Info flavors of `thread_info`, `task_info` and `vm_statistics` (GNU Mach
//! `mach/thread_info.h`, `mach/task_info.h`, `mach/vm_statistics.h`), as arrays of 32-bit
//! words in the LP64 layout: typed structs that both the kernel (which fills them) and user
//! code (which reads them) use, with their word encodings. Counts are in 32-bit words.

/// `time_value_t` on LP64: `long seconds`, `int microseconds`, padded to 16 bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TimeValue {
    pub seconds: i64,
    pub microseconds: i32,
}

impl TimeValue {
    /// From nanoseconds (microseconds truncated).
    pub const fn from_ns(ns: u64) -> Self {
        Self {
            seconds: (ns / 1_000_000_000) as i64,
            microseconds: ((ns % 1_000_000_000) / 1000) as i32,
        }
    }

    /// In microseconds.
    pub const fn as_us(&self) -> u64 {
        self.seconds as u64 * 1_000_000 + self.microseconds as u64
    }

    fn put(&self, w: &mut [i32]) {
        put64(w, 0, self.seconds);
        w[2] = self.microseconds;
        w[3] = 0;
    }

    fn get(w: &[i32]) -> Self {
        Self {
            seconds: get64(w, 0),
            microseconds: w[2],
        }
    }
}

/// `time_value64_t`: `int64 seconds`, `int64 nanoseconds`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TimeValue64 {
    pub seconds: i64,
    pub nanoseconds: i64,
}

impl TimeValue64 {
    pub const fn from_ns(ns: u64) -> Self {
        Self {
            seconds: (ns / 1_000_000_000) as i64,
            nanoseconds: (ns % 1_000_000_000) as i64,
        }
    }

    fn put(&self, w: &mut [i32]) {
        put64(w, 0, self.seconds);
        put64(w, 2, self.nanoseconds);
    }

    fn get(w: &[i32]) -> Self {
        Self {
            seconds: get64(w, 0),
            nanoseconds: get64(w, 2),
        }
    }
}

fn put64(w: &mut [i32], at: usize, v: i64) {
    w[at] = v as i32;
    w[at + 1] = (v >> 32) as i32;
}

fn get64(w: &[i32], at: usize) -> i64 {
    (w[at] as u32 as i64) | ((w[at + 1] as i64) << 32)
}

/// `THREAD_BASIC_INFO`.
pub const THREAD_BASIC_INFO: i32 = 1;
/// Its count on LP64, with the 64-bit times.
pub const THREAD_BASIC_INFO_COUNT: usize = 32;
/// The count before the 64-bit times were added; still accepted (no 64-bit times).
pub const THREAD_BASIC_INFO_OLD_COUNT: usize = 20;
/// `THREAD_SCHED_INFO`.
pub const THREAD_SCHED_INFO: i32 = 2;
pub const THREAD_SCHED_INFO_COUNT: usize = 8;
/// Its count before `last_processor`; still accepted.
pub const THREAD_SCHED_INFO_OLD_COUNT: usize = 7;

/// `run_state` values.
pub const TH_STATE_RUNNING: i32 = 1;
pub const TH_STATE_STOPPED: i32 = 2;
pub const TH_STATE_WAITING: i32 = 3;
pub const TH_STATE_UNINTERRUPTIBLE: i32 = 4;
pub const TH_STATE_HALTED: i32 = 5;
/// `flags` bits.
pub const TH_FLAGS_SWAPPED: i32 = 1;
pub const TH_FLAGS_IDLE: i32 = 2;
/// `cpu_usage` is in thousandths.
pub const TH_USAGE_SCALE: i32 = 1000;
/// `policy` of a time-sharing thread.
pub const POLICY_TIMESHARE: i32 = 1;

/// `struct thread_basic_info` (LP64).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ThreadBasicInfo {
    pub user_time: TimeValue,
    pub system_time: TimeValue,
    pub cpu_usage: i32,
    pub base_priority: i32,
    pub cur_priority: i32,
    pub run_state: i32,
    pub flags: i32,
    pub suspend_count: i32,
    pub sleep_time: i32,
    pub creation_time: TimeValue,
    pub user_time64: TimeValue64,
    pub system_time64: TimeValue64,
    pub creation_time64: TimeValue64,
}

impl ThreadBasicInfo {
    /// The words, `THREAD_BASIC_INFO_COUNT` of them (a caller with the old count takes the
    /// first 20).
    pub fn to_words(&self) -> [i32; THREAD_BASIC_INFO_COUNT] {
        let mut w = [0; THREAD_BASIC_INFO_COUNT];
        self.user_time.put(&mut w[0..4]);
        self.system_time.put(&mut w[4..8]);
        w[8] = self.cpu_usage;
        w[9] = self.base_priority;
        w[10] = self.cur_priority;
        w[11] = self.run_state;
        w[12] = self.flags;
        w[13] = self.suspend_count;
        w[14] = self.sleep_time;
        // w[15]: padding before the 8-byte aligned creation_time.
        self.creation_time.put(&mut w[16..20]);
        self.user_time64.put(&mut w[20..24]);
        self.system_time64.put(&mut w[24..28]);
        self.creation_time64.put(&mut w[28..32]);
        w
    }

    /// Reads `words` (at least the old count; the 64-bit times only if all are there).
    pub fn from_words(words: &[i32]) -> Option<Self> {
        if words.len() < THREAD_BASIC_INFO_OLD_COUNT {
            return None;
        }
        let full = words.len() >= THREAD_BASIC_INFO_COUNT;
        let t64 = |at: usize| {
            if full {
                TimeValue64::get(&words[at..at + 4])
            } else {
                TimeValue64::default()
            }
        };
        Some(Self {
            user_time: TimeValue::get(&words[0..4]),
            system_time: TimeValue::get(&words[4..8]),
            cpu_usage: words[8],
            base_priority: words[9],
            cur_priority: words[10],
            run_state: words[11],
            flags: words[12],
            suspend_count: words[13],
            sleep_time: words[14],
            creation_time: TimeValue::get(&words[16..20]),
            user_time64: t64(20),
            system_time64: t64(24),
            creation_time64: t64(28),
        })
    }
}

/// `struct thread_sched_info`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ThreadSchedInfo {
    pub policy: i32,
    pub data: i32,
    pub base_priority: i32,
    pub max_priority: i32,
    pub cur_priority: i32,
    pub depressed: i32,
    pub depress_priority: i32,
    pub last_processor: i32,
}

impl ThreadSchedInfo {
    pub fn to_words(&self) -> [i32; THREAD_SCHED_INFO_COUNT] {
        [
            self.policy,
            self.data,
            self.base_priority,
            self.max_priority,
            self.cur_priority,
            self.depressed,
            self.depress_priority,
            self.last_processor,
        ]
    }

    /// Reads `words` (at least the old count; `last_processor` -1 if absent).
    pub fn from_words(w: &[i32]) -> Option<Self> {
        if w.len() < THREAD_SCHED_INFO_OLD_COUNT {
            return None;
        }
        Some(Self {
            policy: w[0],
            data: w[1],
            base_priority: w[2],
            max_priority: w[3],
            cur_priority: w[4],
            depressed: w[5],
            depress_priority: w[6],
            last_processor: w.get(7).copied().unwrap_or(-1),
        })
    }
}

/// `task_info` flavors and counts.
pub const TASK_BASIC_INFO: i32 = 1;
/// `suspend_count`, `base_priority`, `virtual_size`, `resident_size` (8 bytes each on
/// LP64), `user_time`, `system_time`, `creation_time`, then the 64-bit `user_time64`,
/// `system_time64`, `creation_time64`.
pub const TASK_BASIC_INFO_COUNT: usize = 30;
/// The count before the 64-bit times were added; still accepted (GNU Mach `task_info`).
pub const TASK_BASIC_INFO_OLD_COUNT: usize = 18;
pub const TASK_EVENTS_INFO: i32 = 2;
/// Seven `rpc_long_natural_t` counters, 8 bytes each on LP64.
pub const TASK_EVENTS_INFO_COUNT: usize = 14;
pub const TASK_THREAD_TIMES_INFO: i32 = 3;
/// `user_time`, `system_time`, then the 64-bit `user_time64`, `system_time64`.
pub const TASK_THREAD_TIMES_INFO_COUNT: usize = 16;
/// The count before the 64-bit times were added; still accepted (GNU Mach `task_info`).
pub const TASK_THREAD_TIMES_INFO_OLD_COUNT: usize = 8;

/// `struct task_basic_info` (LP64).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TaskBasicInfo {
    pub suspend_count: i32,
    pub base_priority: i32,
    pub virtual_size: u64,
    pub resident_size: u64,
    pub user_time: TimeValue,
    pub system_time: TimeValue,
    pub creation_time: TimeValue,
    pub user_time64: TimeValue64,
    pub system_time64: TimeValue64,
    pub creation_time64: TimeValue64,
}

impl TaskBasicInfo {
    /// The words, `TASK_BASIC_INFO_COUNT` of them (a caller with the old count takes the
    /// first 18).
    pub fn to_words(&self) -> [i32; TASK_BASIC_INFO_COUNT] {
        let mut w = [0; TASK_BASIC_INFO_COUNT];
        w[0] = self.suspend_count;
        w[1] = self.base_priority;
        put64(&mut w, 2, self.virtual_size as i64);
        put64(&mut w, 4, self.resident_size as i64);
        self.user_time.put(&mut w[6..10]);
        self.system_time.put(&mut w[10..14]);
        self.creation_time.put(&mut w[14..18]);
        self.user_time64.put(&mut w[18..22]);
        self.system_time64.put(&mut w[22..26]);
        self.creation_time64.put(&mut w[26..30]);
        w
    }

    /// Reads `w` (at least the old count; the 64-bit times zero if absent).
    pub fn from_words(w: &[i32]) -> Option<Self> {
        if w.len() < TASK_BASIC_INFO_OLD_COUNT {
            return None;
        }
        let full = w.len() >= TASK_BASIC_INFO_COUNT;
        let t64 = |at: usize| {
            if full {
                TimeValue64::get(&w[at..at + 4])
            } else {
                TimeValue64::default()
            }
        };
        Some(Self {
            suspend_count: w[0],
            base_priority: w[1],
            virtual_size: get64(w, 2) as u64,
            resident_size: get64(w, 4) as u64,
            user_time: TimeValue::get(&w[6..10]),
            system_time: TimeValue::get(&w[10..14]),
            creation_time: TimeValue::get(&w[14..18]),
            user_time64: t64(18),
            system_time64: t64(22),
            creation_time64: t64(26),
        })
    }
}

/// `struct task_events_info`: seven 64-bit counters on LP64.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TaskEventsInfo {
    pub faults: u64,
    pub zero_fills: u64,
    pub reactivations: u64,
    pub pageins: u64,
    pub cow_faults: u64,
    pub messages_sent: u64,
    pub messages_received: u64,
}

impl TaskEventsInfo {
    fn fields(&self) -> [u64; 7] {
        [
            self.faults,
            self.zero_fills,
            self.reactivations,
            self.pageins,
            self.cow_faults,
            self.messages_sent,
            self.messages_received,
        ]
    }

    pub fn to_words(&self) -> [i32; TASK_EVENTS_INFO_COUNT] {
        let mut w = [0; TASK_EVENTS_INFO_COUNT];
        for (i, v) in self.fields().into_iter().enumerate() {
            put64(&mut w, 2 * i, v as i64);
        }
        w
    }

    pub fn from_words(w: &[i32]) -> Option<Self> {
        if w.len() < TASK_EVENTS_INFO_COUNT {
            return None;
        }
        let v = |i: usize| get64(w, 2 * i) as u64;
        Some(Self {
            faults: v(0),
            zero_fills: v(1),
            reactivations: v(2),
            pageins: v(3),
            cow_faults: v(4),
            messages_sent: v(5),
            messages_received: v(6),
        })
    }
}

/// `struct task_thread_times_info`: the live threads' `user_time` and `system_time`, then
/// the same as `time_value64_t`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TaskThreadTimesInfo {
    pub user_time: TimeValue,
    pub system_time: TimeValue,
    pub user_time64: TimeValue64,
    pub system_time64: TimeValue64,
}

impl TaskThreadTimesInfo {
    /// The words, `TASK_THREAD_TIMES_INFO_COUNT` of them (a caller with the old count takes
    /// the first 8).
    pub fn to_words(&self) -> [i32; TASK_THREAD_TIMES_INFO_COUNT] {
        let mut w = [0; TASK_THREAD_TIMES_INFO_COUNT];
        self.user_time.put(&mut w[0..4]);
        self.system_time.put(&mut w[4..8]);
        self.user_time64.put(&mut w[8..12]);
        self.system_time64.put(&mut w[12..16]);
        w
    }

    /// Reads `w` (at least the old count; the 64-bit times zero if absent).
    pub fn from_words(w: &[i32]) -> Option<Self> {
        if w.len() < TASK_THREAD_TIMES_INFO_OLD_COUNT {
            return None;
        }
        let full = w.len() >= TASK_THREAD_TIMES_INFO_COUNT;
        Some(Self {
            user_time: TimeValue::get(&w[0..4]),
            system_time: TimeValue::get(&w[4..8]),
            user_time64: if full {
                TimeValue64::get(&w[8..12])
            } else {
                TimeValue64::default()
            },
            system_time64: if full {
                TimeValue64::get(&w[12..16])
            } else {
                TimeValue64::default()
            },
        })
    }
}

/// `struct vm_statistics`, 13 `integer_t`s in this order.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VmStatistics {
    pub pagesize: i32,
    pub free_count: i32,
    pub active_count: i32,
    pub inactive_count: i32,
    pub wire_count: i32,
    pub zero_fill_count: i32,
    pub reactivations: i32,
    pub pageouts: i32,
    pub pageins: i32,
    pub faults: i32,
    pub cow_faults: i32,
    pub lookups: i32,
    pub hits: i32,
}

impl VmStatistics {
    pub fn to_words(&self) -> [i32; 13] {
        [
            self.pagesize,
            self.free_count,
            self.active_count,
            self.inactive_count,
            self.wire_count,
            self.zero_fill_count,
            self.reactivations,
            self.pageouts,
            self.pageins,
            self.faults,
            self.cow_faults,
            self.lookups,
            self.hits,
        ]
    }

    pub fn from_words(w: &[i32; 13]) -> Self {
        Self {
            pagesize: w[0],
            free_count: w[1],
            active_count: w[2],
            inactive_count: w[3],
            wire_count: w[4],
            zero_fill_count: w[5],
            reactivations: w[6],
            pageouts: w[7],
            pageins: w[8],
            faults: w[9],
            cow_faults: w[10],
            lookups: w[11],
            hits: w[12],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thread_basic_info_round_trips_and_keeps_gnu_mach_offsets() {
        let info = ThreadBasicInfo {
            user_time: TimeValue::from_ns(3_200_000_999),
            system_time: TimeValue {
                seconds: -2,
                microseconds: 7,
            },
            cpu_usage: 5,
            base_priority: 25,
            cur_priority: 26,
            run_state: TH_STATE_WAITING,
            flags: 0,
            suspend_count: 2,
            sleep_time: 9,
            creation_time: TimeValue::from_ns(1_000_001_000),
            user_time64: TimeValue64::from_ns(3_200_000_999),
            system_time64: TimeValue64::from_ns(1),
            creation_time64: TimeValue64::from_ns(5),
        };
        let w = info.to_words();
        assert_eq!(w[0..4], [3, 0, 200_000, 0]);
        assert_eq!(w[11], TH_STATE_WAITING);
        assert_eq!(w[16..20], [1, 0, 1, 0]);
        assert_eq!(w[20..24], [3, 0, 200_000_999, 0]);
        assert_eq!(ThreadBasicInfo::from_words(&w), Some(info));
        let old = ThreadBasicInfo::from_words(&w[..THREAD_BASIC_INFO_OLD_COUNT]).unwrap();
        assert_eq!(old.user_time64, TimeValue64::default());
        assert_eq!(old.suspend_count, 2);
        assert_eq!(ThreadBasicInfo::from_words(&w[..19]), None);
    }

    #[test]
    fn sched_and_task_infos_round_trip() {
        let s = ThreadSchedInfo {
            last_processor: 3,
            base_priority: 25,
            ..Default::default()
        };
        assert_eq!(ThreadSchedInfo::from_words(&s.to_words()), Some(s));
        assert_eq!(
            ThreadSchedInfo::from_words(&s.to_words()[..7]).map(|s| s.last_processor),
            Some(-1)
        );
        let t = TaskBasicInfo {
            virtual_size: 0x1_0000_2000,
            resident_size: 3 << 12,
            ..Default::default()
        };
        assert_eq!(t.to_words()[2..4], [0x2000, 1]);
        assert_eq!(TaskBasicInfo::from_words(&t.to_words()), Some(t));
        let t = TaskBasicInfo {
            user_time64: TimeValue64::from_ns(5_000_000_007),
            creation_time64: TimeValue64::from_ns(9),
            ..t
        };
        assert_eq!(t.to_words()[18..20], [5, 0]);
        assert_eq!(t.to_words()[20..22], [7, 0]);
        assert_eq!(TaskBasicInfo::from_words(&t.to_words()), Some(t));
        let old = TaskBasicInfo::from_words(&t.to_words()[..TASK_BASIC_INFO_OLD_COUNT]);
        assert_eq!(old.map(|o| o.user_time64), Some(TimeValue64::default()));
        assert_eq!(TaskBasicInfo::from_words(&t.to_words()[..17]), None);
        let e = TaskEventsInfo {
            faults: 0x1_0000_0003,
            messages_received: 7,
            ..Default::default()
        };
        assert_eq!(e.to_words()[0..2], [3, 1]);
        assert_eq!(e.to_words()[12..14], [7, 0]);
        assert_eq!(TaskEventsInfo::from_words(&e.to_words()), Some(e));
        assert_eq!(TaskEventsInfo::from_words(&e.to_words()[..13]), None);
        let tt = TaskThreadTimesInfo {
            system_time: TimeValue::from_ns(3_000_000),
            system_time64: TimeValue64::from_ns(3_000_000),
            ..Default::default()
        };
        assert_eq!(tt.to_words()[12..16], [0, 0, 3_000_000, 0]);
        assert_eq!(TaskThreadTimesInfo::from_words(&tt.to_words()), Some(tt));
        let old = TaskThreadTimesInfo::from_words(&tt.to_words()[..8]);
        assert_eq!(old.map(|o| o.system_time64), Some(TimeValue64::default()));
        assert_eq!(TimeValue::from_ns(2_000_003_000).as_us(), 2_000_003);
    }
}
