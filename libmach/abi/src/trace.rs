//! armach's scheduler trace (not in GNU Mach): the record the kernel writes into each CPU's
//! ring of scheduler events and hands out through `armach_trace` (`libmach/defs/armach/
//! trace.defs`), with its encoding. The kernel fills records, user code decodes them; the
//! xtask's converter reads the text form [`Event::fmt`] prints.
//!
//! A record is 24 bytes, three little-endian 64-bit words:
//! - word 0: the time, the generic timer's virtual count (`CNTVCT_EL0`) when it happened;
//! - word 1: bits 0-7 the kind ([`Kind`]), 8-15 a detail (a migration's [`Reason`], a
//!   switch's way out, a wake's cause), 16-31 the CPU whose ring it is (the CPU it
//!   happened on), 32-63 argument `a`;
//! - word 2: bits 0-31 argument `b`, 32-63 argument `c`.
//!
//! Threads are named by the kernel's thread id cut to 32 bits (`trace_thread_id` gives a
//! thread's); the idle thread of a CPU is a thread like any other here.

/// Bytes of one record.
pub const EVENT_SIZE: usize = 24;

/// What happened.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Kind {
    /// A context switch: from thread `a` to thread `b`; detail: how `a` left
    /// ([`SWITCH_YIELD`], [`SWITCH_BLOCK`], [`SWITCH_EXIT`]).
    Switch = 1,
    /// Thread `a` made runnable and placed on CPU `b` (by this CPU); detail: 1 when it
    /// was waiting (a wake-up), 0 when it was started or placed again.
    Wake = 2,
    /// Thread `a`, last run on CPU `b`, starts on CPU `c` (this one): a migration as the
    /// kernel counts it; detail: its [`Reason`].
    Migrate = 3,
    /// A periodic balance pass of set `b` by this CPU moved `a` threads.
    Balance = 4,
    /// This CPU's idle thread is about to sleep in `wfi`.
    IdleEnter = 5,
    /// This CPU's idle thread woke from `wfi`.
    IdleExit = 6,
    /// IPC handoff: thread `a`, sending, hands this CPU straight to thread `b`, its
    /// receiver.
    Handoff = 7,
}

impl Kind {
    pub fn from_u8(v: u8) -> Option<Kind> {
        Some(match v {
            1 => Kind::Switch,
            2 => Kind::Wake,
            3 => Kind::Migrate,
            4 => Kind::Balance,
            5 => Kind::IdleEnter,
            6 => Kind::IdleExit,
            7 => Kind::Handoff,
            _ => return None,
        })
    }

    /// The word the text form uses.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Switch => "switch",
            Kind::Wake => "wake",
            Kind::Migrate => "migrate",
            Kind::Balance => "balance",
            Kind::IdleEnter => "idle-enter",
            Kind::IdleExit => "idle-exit",
            Kind::Handoff => "handoff",
        }
    }
}

/// A switch's detail: the thread left still runnable.
pub const SWITCH_YIELD: u8 = 0;
/// A switch's detail: the thread left to wait.
pub const SWITCH_BLOCK: u8 = 1;
/// A switch's detail: the thread ended.
pub const SWITCH_EXIT: u8 = 2;

/// Why a thread moved to another CPU (a migration's detail): who moved it last before it
/// started there.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Reason {
    /// None of the below noted it (should not be seen).
    Other = 0,
    /// A periodic balance pass moved it between run queues.
    PeriodicBalance = 1,
    /// An idle processor pulled it.
    IdlePull = 2,
    /// `thread_migrate`.
    ThreadMigrate = 3,
    /// `thread_bind`.
    Bind = 4,
    /// Its processor set changed (or its processor's did) and it was placed again.
    SetChange = 5,
    /// Placed on another processor when it was made runnable (woken or started).
    WakePlacement = 6,
    /// Handed a CPU by an IPC handoff or `thread_switch` (`thread_invoke`).
    Handoff = 7,
}

impl Reason {
    pub fn from_u8(v: u8) -> Reason {
        match v {
            1 => Reason::PeriodicBalance,
            2 => Reason::IdlePull,
            3 => Reason::ThreadMigrate,
            4 => Reason::Bind,
            5 => Reason::SetChange,
            6 => Reason::WakePlacement,
            7 => Reason::Handoff,
            _ => Reason::Other,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Reason::Other => "other",
            Reason::PeriodicBalance => "balance",
            Reason::IdlePull => "idle-pull",
            Reason::ThreadMigrate => "thread-migrate",
            Reason::Bind => "bind",
            Reason::SetChange => "set-change",
            Reason::WakePlacement => "wake-placement",
            Reason::Handoff => "handoff",
        }
    }

    pub fn from_name(s: &str) -> Option<Reason> {
        (0..=7).map(Reason::from_u8).find(|r| r.name() == s)
    }
}

/// One record, decoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Event {
    pub time: u64,
    /// The kind as written; [`Kind::from_u8`] names it.
    pub kind: u8,
    pub detail: u8,
    pub cpu: u16,
    pub a: u32,
    pub b: u32,
    pub c: u32,
}

impl Event {
    /// The record's three words.
    pub fn to_words(&self) -> [u64; 3] {
        [
            self.time,
            u64::from(self.kind)
                | u64::from(self.detail) << 8
                | u64::from(self.cpu) << 16
                | u64::from(self.a) << 32,
            u64::from(self.b) | u64::from(self.c) << 32,
        ]
    }

    pub fn from_words(w: [u64; 3]) -> Event {
        Event {
            time: w[0],
            kind: w[1] as u8,
            detail: (w[1] >> 8) as u8,
            cpu: (w[1] >> 16) as u16,
            a: (w[1] >> 32) as u32,
            b: w[2] as u32,
            c: (w[2] >> 32) as u32,
        }
    }

    /// The record as bytes (what `trace_read` returns, one after another).
    pub fn to_bytes(&self) -> [u8; EVENT_SIZE] {
        let mut out = [0u8; EVENT_SIZE];
        for (i, w) in self.to_words().iter().enumerate() {
            out[8 * i..8 * i + 8].copy_from_slice(&w.to_le_bytes());
        }
        out
    }

    /// A record from its bytes; `None` if `b` is not [`EVENT_SIZE`] long.
    pub fn from_bytes(b: &[u8]) -> Option<Event> {
        if b.len() != EVENT_SIZE {
            return None;
        }
        let word = |i: usize| {
            let mut w = [0u8; 8];
            w.copy_from_slice(&b[8 * i..8 * i + 8]);
            u64::from_le_bytes(w)
        };
        Some(Event::from_words([word(0), word(1), word(2)]))
    }
}

/// The text form, one line per record (what `tracew` prints and `cargo xtask trace`
/// parses): `ev CPU TIME KIND` followed by the kind's arguments as `name=value`:
/// `switch from= to= how=`, `wake thread= cpu= woke=`, `migrate thread= from= to= why=`,
/// `balance moved= set=`, `idle-enter`, `idle-exit`, `handoff from= to=`; an unknown kind
/// as `kind=N a= b= c= detail=`.
impl core::fmt::Display for Event {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "ev {} {} ", self.cpu, self.time)?;
        let Some(kind) = Kind::from_u8(self.kind) else {
            return write!(
                f,
                "kind={} a={} b={} c={} detail={}",
                self.kind, self.a, self.b, self.c, self.detail
            );
        };
        f.write_str(kind.name())?;
        match kind {
            Kind::Switch => write!(f, " from={} to={} how={}", self.a, self.b, self.detail),
            Kind::Wake => write!(f, " thread={} cpu={} woke={}", self.a, self.b, self.detail),
            Kind::Migrate => write!(
                f,
                " thread={} from={} to={} why={}",
                self.a,
                self.b,
                self.c,
                Reason::from_u8(self.detail).name()
            ),
            Kind::Balance => write!(f, " moved={} set={}", self.a, self.b),
            Kind::IdleEnter | Kind::IdleExit => Ok(()),
            Kind::Handoff => write!(f, " from={} to={}", self.a, self.b),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::format;

    #[test]
    fn records_round_trip_through_words_and_bytes() {
        let e = Event {
            time: 0x0123_4567_89ab_cdef,
            kind: Kind::Migrate as u8,
            detail: Reason::IdlePull as u8,
            cpu: 511,
            a: 0xdead_beef,
            b: 3,
            c: 0xffff_ffff,
        };
        assert_eq!(Event::from_words(e.to_words()), e);
        assert_eq!(Event::from_bytes(&e.to_bytes()), Some(e));
        assert_eq!(Event::from_bytes(&[0; 23]), None);
        // The layout the module doc gives.
        let w = e.to_words();
        assert_eq!(w[1] & 0xff, 3);
        assert_eq!((w[1] >> 8) & 0xff, 2);
        assert_eq!((w[1] >> 16) & 0xffff, 511);
    }

    #[test]
    fn text_form() {
        let e = |kind: Kind, detail, a, b, c| Event {
            time: 77,
            kind: kind as u8,
            detail,
            cpu: 2,
            a,
            b,
            c,
        };
        assert_eq!(
            format!("{}", e(Kind::Switch, SWITCH_BLOCK, 5, 9, 0)),
            "ev 2 77 switch from=5 to=9 how=1"
        );
        assert_eq!(
            format!(
                "{}",
                e(Kind::Migrate, Reason::PeriodicBalance as u8, 5, 0, 2)
            ),
            "ev 2 77 migrate thread=5 from=0 to=2 why=balance"
        );
        assert_eq!(
            format!("{}", e(Kind::IdleEnter, 0, 0, 0, 0)),
            "ev 2 77 idle-enter"
        );
        for r in 0..=7 {
            let reason = Reason::from_u8(r);
            assert_eq!(Reason::from_name(reason.name()), Some(reason));
        }
    }
}
