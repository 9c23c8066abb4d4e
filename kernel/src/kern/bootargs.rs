//! The kernel command line (`/chosen/bootargs`): space-separated `key=value` words and bare
//! flags, then optionally a lone `--` after which every word belongs to the `init=` programs
//! (their `argv[3..]`, as Linux hands words after `--` to init). Parsing only; each subsystem asks for its own keys. A value the kernel cannot use
//! is never dropped silently: [`bad_values`] names each such word and the value used instead,
//! and the boot sequence prints them on the console.

use crate::kern::sched::stats::BalanceParams;
use arrayvec::ArrayVec;
use core::fmt;

/// A parsed view of the command line.
#[derive(Clone, Copy, Debug)]
pub struct BootArgs<'a>(&'a str);

impl<'a> BootArgs<'a> {
    pub fn new(line: &'a str) -> Self {
        BootArgs(line)
    }

    /// The kernel's own words: those before a lone `--`.
    fn words(&self) -> impl Iterator<Item = &'a str> + 'a {
        self.0.split_ascii_whitespace().take_while(|w| *w != "--")
    }

    /// The words after the first lone `--`, for the `init=` programs (none without `--`).
    pub fn init_args(&self) -> impl Iterator<Item = &'a str> + 'a {
        self.0
            .split_ascii_whitespace()
            .skip_while(|w| *w != "--")
            .skip(1)
    }

    /// The value of the last `key=value` word for `key`.
    pub fn get(&self, key: &str) -> Option<&'a str> {
        self.words()
            .filter_map(|word| word.split_once('='))
            .filter(|(k, _)| *k == key)
            .map(|(_, v)| v)
            .last()
    }

    /// Whether the bare word `flag` (or `flag=…`) appears.
    pub fn has(&self, flag: &str) -> bool {
        self.words()
            .any(|word| word == flag || word.split_once('=').is_some_and(|(k, _)| k == flag))
    }

    /// The value of `key` as an integer, if present and well formed.
    pub fn get_u64(&self, key: &str) -> Option<u64> {
        parse_u64(self.get(key)?)
    }

    /// The whole line.
    pub fn as_str(&self) -> &'a str {
        self.0
    }
}

/// A decimal or `0x` hexadecimal number.
fn parse_u64(v: &str) -> Option<u64> {
    match v.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => v.parse().ok(),
    }
}

/// What is wrong with a value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Problem {
    /// Not a decimal or `0x` number.
    NotANumber,
    /// A number outside `min..=max`.
    OutOfRange { min: u64, max: u64 },
    /// None of the words the key takes (listed).
    Unknown(&'static str),
    /// A list with nothing in it.
    Empty,
}

/// What the kernel does instead.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Used {
    Number(u64),
    Word(&'static str),
    /// The word is ignored (the feature stays off).
    Ignored,
}

/// A `key=value` word whose value the kernel cannot use as given.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BadValue<'a> {
    pub key: &'static str,
    pub value: &'a str,
    pub problem: Problem,
    pub used: Used,
}

impl fmt::Display for BadValue<'_> {
    /// `bootargs: hz=0 out of range 10-1000; using 10`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "bootargs: {}={} ", self.key, self.value)?;
        match self.problem {
            Problem::NotANumber => write!(f, "is not a number")?,
            Problem::OutOfRange { min, max } => write!(f, "out of range {min}-{max}")?,
            Problem::Unknown(accepted) => write!(f, "is not one of {accepted}")?,
            Problem::Empty => write!(f, "names no program")?,
        }
        match self.used {
            Used::Number(n) => write!(f, "; using {n}"),
            Used::Word(w) => write!(f, "; using {w}"),
            Used::Ignored => write!(f, "; ignoring it"),
        }
    }
}

const LOG_LEVELS: &str = "off, error, warn, info, debug, trace, 0-5";
const DEFAULT_LOG_LEVEL: (log::LevelFilter, &str) = (log::LevelFilter::Info, "info");

fn log_level_checked<'a>(args: &BootArgs<'a>) -> (log::LevelFilter, Option<BadValue<'a>>) {
    let level = match args.get("loglevel") {
        None => return (DEFAULT_LOG_LEVEL.0, None),
        Some(v) => (
            v,
            match v {
                "off" | "0" => Some(log::LevelFilter::Off),
                "error" | "1" => Some(log::LevelFilter::Error),
                "warn" | "2" => Some(log::LevelFilter::Warn),
                "info" | "3" => Some(log::LevelFilter::Info),
                "debug" | "4" => Some(log::LevelFilter::Debug),
                "trace" | "5" => Some(log::LevelFilter::Trace),
                _ => None,
            },
        ),
    };
    match level {
        (_, Some(level)) => (level, None),
        (value, None) => (
            DEFAULT_LOG_LEVEL.0,
            Some(BadValue {
                key: "loglevel",
                value,
                problem: Problem::Unknown(LOG_LEVELS),
                used: Used::Word(DEFAULT_LOG_LEVEL.1),
            }),
        ),
    }
}

/// Verbosity of the kernel log, from `loglevel=` (a name or 0-5; default info).
pub fn log_level(args: &BootArgs<'_>) -> log::LevelFilter {
    log_level_checked(args).0
}

pub const HZ_DEFAULT: u64 = 100;
pub const HZ_MIN: u64 = 10;
pub const HZ_MAX: u64 = 1000;

fn hz_checked<'a>(args: &BootArgs<'a>) -> (u64, Option<BadValue<'a>>) {
    let Some(value) = args.get("hz") else {
        return (HZ_DEFAULT, None);
    };
    let bad = |problem, used| BadValue {
        key: "hz",
        value,
        problem,
        used: Used::Number(used),
    };
    match parse_u64(value) {
        None => (HZ_DEFAULT, Some(bad(Problem::NotANumber, HZ_DEFAULT))),
        Some(n) if (HZ_MIN..=HZ_MAX).contains(&n) => (n, None),
        Some(n) => {
            let used = n.clamp(HZ_MIN, HZ_MAX);
            let range = Problem::OutOfRange {
                min: HZ_MIN,
                max: HZ_MAX,
            };
            (used, Some(bad(range, used)))
        }
    }
}

/// Timer ticks per second, from `hz=` (default 100; out of 10-1000 clamped into it).
pub fn hz(args: &BootArgs<'_>) -> u64 {
    hz_checked(args).0
}

fn kmem_task_limit_checked<'a>(args: &BootArgs<'a>) -> (Option<usize>, Option<BadValue<'a>>) {
    let Some(value) = args.get("kmem-task-limit") else {
        return (None, None);
    };
    match crate::mm::kmem::parse_size(value) {
        Some(limit) => (Some(limit), None),
        None => (
            None,
            Some(BadValue {
                key: "kmem-task-limit",
                value,
                problem: Problem::NotANumber,
                used: Used::Word("the default"),
            }),
        ),
    }
}

/// The kernel memory each task may use, from `kmem-task-limit=` (bytes, or with a K/M
/// suffix); `None`: the default (`mm::kmem`).
pub fn kmem_task_limit(args: &BootArgs<'_>) -> Option<usize> {
    kmem_task_limit_checked(args).0
}

/// `asid-bits=N`: the ASID width to use, from `min` (what the CPU count needs, at least 2)
/// up to `max` (the hardware's width, the default), so that tests can force rollovers.
/// A value outside that range is clamped into it, a word that is not a number ignored;
/// either is named.
pub fn asid_bits<'a>(args: &BootArgs<'a>, min: u32, max: u32) -> (u32, Option<BadValue<'a>>) {
    let Some(value) = args.get("asid-bits") else {
        return (max, None);
    };
    let bad = |problem, used: u32| BadValue {
        key: "asid-bits",
        value,
        problem,
        used: Used::Number(u64::from(used)),
    };
    match parse_u64(value) {
        None => (max, Some(bad(Problem::NotANumber, max))),
        Some(n) if (u64::from(min)..=u64::from(max)).contains(&n) => (n as u32, None),
        Some(n) => {
            let used = n.clamp(u64::from(min), u64::from(max)) as u32;
            let range = Problem::OutOfRange {
                min: u64::from(min),
                max: u64::from(max),
            };
            (used, Some(bad(range, used)))
        }
    }
}

/// `balance_interval=`, `balance_threshold=`, `warmth_tolerance=` (numbers within
/// `BalanceParams`' bounds: one outside is clamped into them, a word that is not a number
/// gives the default) and `idle_balance=0|1`, `periodic_balance=0|1` (anything else gives
/// the default): the default balancing parameters of every processor set, with each value
/// that was not used as given.
pub fn balance_params_checked<'a>(
    args: &BootArgs<'a>,
) -> (BalanceParams, ArrayVec<BadValue<'a>, 5>) {
    let d = BalanceParams::DEFAULT;
    let mut bad = ArrayVec::new();
    let mut number = |key: &'static str, default: u32, min: u32, max: u32| -> u32 {
        let Some(value) = args.get(key) else {
            return default;
        };
        let (used, problem) = match parse_u64(value) {
            None => (default, Problem::NotANumber),
            Some(n) if (u64::from(min)..=u64::from(max)).contains(&n) => return n as u32,
            Some(n) => (
                n.clamp(u64::from(min), u64::from(max)) as u32,
                Problem::OutOfRange {
                    min: u64::from(min),
                    max: u64::from(max),
                },
            ),
        };
        bad.push(BadValue {
            key,
            value,
            problem,
            used: Used::Number(u64::from(used)),
        });
        used
    };
    let interval_ticks = number(
        "balance_interval",
        d.interval_ticks,
        1,
        BalanceParams::MAX_INTERVAL,
    );
    let threshold = number(
        "balance_threshold",
        d.threshold,
        2,
        BalanceParams::MAX_THRESHOLD,
    );
    let warmth_tolerance = number(
        "warmth_tolerance",
        d.warmth_tolerance,
        0,
        BalanceParams::MAX_TOLERANCE,
    );
    let mut switch = |key: &'static str, default: bool| -> bool {
        match args.get(key) {
            None => default,
            Some("1") => true,
            Some("0") => false,
            Some(value) => {
                bad.push(BadValue {
                    key,
                    value,
                    problem: Problem::Unknown("0, 1"),
                    used: Used::Number(u64::from(default)),
                });
                default
            }
        }
    };
    let idle_balance = switch("idle_balance", d.idle_balance);
    let periodic_balance = switch("periodic_balance", d.periodic_balance);
    let params = BalanceParams {
        interval_ticks,
        threshold,
        warmth_tolerance,
        idle_balance,
        periodic_balance,
    };
    debug_assert!(params.is_valid());
    (params, bad)
}

/// The default balancing parameters of every processor set, from the command line (see
/// [`balance_params_checked`]; the values it could not use are in [`bad_values`]).
pub fn balance_params(args: &BootArgs<'_>) -> BalanceParams {
    balance_params_checked(args).0
}

/// `trace=0|1`: whether the scheduler trace records from boot on (default off); another
/// value leaves it off, and is the [`BadValue`] returned.
pub fn trace_checked<'a>(args: &BootArgs<'a>) -> (bool, Option<BadValue<'a>>) {
    match args.get("trace") {
        None | Some("0") => (false, None),
        Some("1") => (true, None),
        Some(value) => (
            false,
            Some(BadValue {
                key: "trace",
                value,
                problem: Problem::Unknown("0, 1"),
                used: Used::Number(0),
            }),
        ),
    }
}

/// The programs `init=a,b,c` names, in order (empty names skipped); `None` without `init=`.
pub fn init_programs<'a>(args: &BootArgs<'a>) -> Option<impl Iterator<Item = &'a str> + 'a> {
    args.get("init")
        .map(|list| list.split(',').filter(|name| !name.is_empty()))
}

/// Keys whose only accepted values are a few words (anything else is ignored):
/// `halt-after=boot`, `exit=semihosting`,
/// `crash=panic|stack-overflow|secondary-stack-overflow|null|write-text-alias`,
/// `checks=0|1`, `checks-inject=runqueue`.
const WORD_KEYS: [(&str, &[&str], &str); 5] = [
    ("halt-after", &["boot"], "boot"),
    ("exit", &["semihosting"], "semihosting"),
    (
        "crash",
        &[
            "panic",
            "stack-overflow",
            "secondary-stack-overflow",
            "null",
            "write-text-alias",
        ],
        "panic, stack-overflow, secondary-stack-overflow, null, write-text-alias",
    ),
    ("checks", &["0", "1"], "0, 1"),
    ("checks-inject", &["runqueue"], "runqueue"),
];

/// What `checks` asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Checks {
    /// The kernel's self-checks (`kern::checks`): on with the bare word `checks` or
    /// `checks=1`; off by default, with `checks=0`, or with any other value (named).
    pub on: bool,
    /// `checks-inject=runqueue`: make one run queue's count wrong once, for a test that the
    /// checks report it (only with the checks on).
    pub inject_runqueue: bool,
}

pub fn checks(args: &BootArgs<'_>) -> Checks {
    let on = match args.get("checks") {
        Some(value) => value == "1",
        None => args.has("checks"),
    };
    Checks {
        on,
        inject_runqueue: on && args.get("checks-inject") == Some("runqueue"),
    }
}

/// Every word of the command line with a value the kernel does not use as given, with what
/// it uses instead, in a fixed order (`loglevel`, `hz`, `kmem-task-limit`, `init`, the one-word
/// keys, then the balancing parameters).
pub fn bad_values<'a>(args: &BootArgs<'a>) -> impl Iterator<Item = BadValue<'a>> + 'a {
    let args = *args;
    let init = match args.get("init") {
        Some(v) if init_programs(&args).is_some_and(|mut names| names.next().is_none()) => {
            Some(BadValue {
                key: "init",
                value: v,
                problem: Problem::Empty,
                used: Used::Word("the RAM disk's first program"),
            })
        }
        _ => None,
    };
    let words = WORD_KEYS.iter().filter_map(move |&(key, accepted, list)| {
        let value = args.get(key)?;
        (!accepted.contains(&value)).then_some(BadValue {
            key,
            value,
            problem: Problem::Unknown(list),
            used: Used::Ignored,
        })
    });
    log_level_checked(&args)
        .1
        .into_iter()
        .chain(hz_checked(&args).1)
        .chain(kmem_task_limit_checked(&args).1)
        .chain(init)
        .chain(words)
        .chain(balance_params_checked(&args).1)
        .chain(trace_checked(&args).1)
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use std::string::ToString;
    use std::vec::Vec;

    #[test]
    fn checks_word_and_values() {
        let c = |line| checks(&BootArgs::new(line));
        let on = |inject_runqueue| Checks {
            on: true,
            inject_runqueue,
        };
        let off = Checks {
            on: false,
            inject_runqueue: false,
        };
        assert_eq!(c("init=x"), off);
        assert_eq!(c("checks"), on(false));
        assert_eq!(c("checks=1 hz=100"), on(false));
        assert_eq!(c("checks=0"), off);
        assert_eq!(c("checks=yes"), off);
        assert_eq!(c("checks-inject=runqueue"), off);
        assert_eq!(c("checks checks-inject=runqueue"), on(true));
        assert_eq!(c("checks=1 checks-inject=other"), on(false));
        assert_eq!(c("init=x -- checks"), off);
        assert_eq!(
            complaints("checks=yes checks-inject=all"),
            [
                "bootargs: checks=yes is not one of 0, 1; ignoring it",
                "bootargs: checks-inject=all is not one of runqueue; ignoring it"
            ]
        );
        assert!(complaints("checks checks=1 checks-inject=runqueue").is_empty());
    }

    fn complaints(line: &str) -> Vec<std::string::String> {
        bad_values(&BootArgs::new(line))
            .map(|b| b.to_string())
            .collect()
    }

    #[test]
    fn finds_keys_and_flags() {
        let a = BootArgs::new("exit=semihosting  loglevel=debug halt-after=boot quiet hz=250");
        assert_eq!(a.get("exit"), Some("semihosting"));
        assert_eq!(a.get("halt-after"), Some("boot"));
        assert!(a.has("quiet"));
        assert!(a.has("hz"));
        assert!(!a.has("loud"));
        assert_eq!(log_level(&a), log::LevelFilter::Debug);
        assert_eq!(hz(&a), 250);
        assert_eq!(bad_values(&a).count(), 0);
    }

    #[test]
    fn words_after_a_lone_double_dash_belong_to_init() {
        let a = BootArgs::new("init=bench loglevel=warn -- profile null-rpc hz=5 --");
        assert_eq!(a.get("init"), Some("bench"));
        assert_eq!(a.get("hz"), None);
        assert!(!a.has("profile"));
        let args: Vec<&str> = a.init_args().collect();
        assert_eq!(args, ["profile", "null-rpc", "hz=5", "--"]);
        assert_eq!(BootArgs::new("init=x --x y").init_args().count(), 0);
        assert_eq!(BootArgs::new("init=x --x y").get("init"), Some("x"));
        assert_eq!(BootArgs::new("--").init_args().count(), 0);
    }

    #[test]
    fn last_value_wins_and_numbers_parse() {
        let a = BootArgs::new("hz=50 hz=0x64 x=");
        assert_eq!(a.get_u64("hz"), Some(100));
        assert_eq!(a.get("x"), Some(""));
        assert_eq!(a.get_u64("x"), None);
        assert_eq!(hz(&a), 100);
    }

    #[test]
    fn defaults_and_clamps() {
        let a = BootArgs::new("");
        assert_eq!(log_level(&a), log::LevelFilter::Info);
        assert_eq!(hz(&a), 100);
        assert_eq!(hz(&BootArgs::new("hz=1")), 10);
        assert_eq!(hz(&BootArgs::new("hz=100000")), 1000);
        assert_eq!(hz(&BootArgs::new("hz=abc")), 100);
        assert_eq!(
            log_level(&BootArgs::new("loglevel=nonsense")),
            log::LevelFilter::Info
        );
    }

    #[test]
    fn bad_values_are_named_with_the_value_used() {
        assert_eq!(
            complaints("hz=0 loglevel=foo"),
            [
                "bootargs: loglevel=foo is not one of off, error, warn, info, debug, trace, 0-5; using info",
                "bootargs: hz=0 out of range 10-1000; using 10",
            ]
        );
        assert_eq!(
            complaints("hz=abc loglevel=7"),
            [
                "bootargs: loglevel=7 is not one of off, error, warn, info, debug, trace, 0-5; using info",
                "bootargs: hz=abc is not a number; using 100",
            ]
        );
        assert_eq!(
            complaints("hz=5000"),
            ["bootargs: hz=5000 out of range 10-1000; using 1000"]
        );
        assert_eq!(
            complaints("halt-after=login exit=psci crash=maybe"),
            [
                "bootargs: halt-after=login is not one of boot; ignoring it",
                "bootargs: exit=psci is not one of semihosting; ignoring it",
                "bootargs: crash=maybe is not one of panic, stack-overflow, secondary-stack-overflow, null, write-text-alias; ignoring it",
            ]
        );
        assert_eq!(
            complaints("init=,"),
            ["bootargs: init=, names no program; using the RAM disk's first program"]
        );
        // Only the last value counts, as for the setting itself.
        assert!(complaints("hz=0 hz=250 loglevel=x loglevel=trace").is_empty());
        // Keys the kernel does not know (the Pi firmware adds its own) are not its business.
        assert!(complaints("console=ttyS0 8250.nr_uarts=1").is_empty());
    }

    #[test]
    fn asid_bits_between_the_cpus_need_and_the_hardware() {
        let bits = |line, min, max| {
            let (n, bad) = asid_bits(&BootArgs::new(line), min, max);
            (n, bad.map(|b| b.to_string()))
        };
        assert_eq!(bits("", 2, 8), (8, None));
        assert_eq!(bits("asid-bits=2", 2, 16), (2, None));
        assert_eq!(bits("asid-bits=0x4", 2, 8), (4, None));
        assert_eq!(
            bits("asid-bits=1", 2, 8),
            (
                2,
                Some("bootargs: asid-bits=1 out of range 2-8; using 2".to_owned())
            )
        );
        assert_eq!(
            bits("asid-bits=2", 4, 8),
            (
                4,
                Some("bootargs: asid-bits=2 out of range 4-8; using 4".to_owned())
            )
        );
        assert_eq!(
            bits("asid-bits=16", 2, 8),
            (
                8,
                Some("bootargs: asid-bits=16 out of range 2-8; using 8".to_owned())
            )
        );
        assert_eq!(
            bits("asid-bits=wide", 2, 16),
            (
                16,
                Some("bootargs: asid-bits=wide is not a number; using 16".to_owned())
            )
        );
    }

    #[test]
    fn init_lists() {
        let names =
            |line| init_programs(&BootArgs::new(line)).map(|names| names.collect::<Vec<_>>());
        assert_eq!(names(""), None);
        assert_eq!(names("init=hello"), Some(vec!["hello"]));
        assert_eq!(
            names("init=isolation,isolation,hello"),
            Some(vec!["isolation", "isolation", "hello"])
        );
        assert_eq!(names("init=a,,b,"), Some(vec!["a", "b"]));
        assert_eq!(names("init="), Some(vec![]));
    }

    #[test]
    fn trace_from_the_command_line() {
        let on = |line| trace_checked(&BootArgs::new(line)).0;
        assert!(!on(""));
        assert!(!on("trace=0"));
        assert!(on("hz=100 trace=1"));
        assert!(!on("trace=yes"));
        assert_eq!(
            bad_values(&BootArgs::new("trace=yes"))
                .map(|b| b.key)
                .collect::<std::vec::Vec<_>>(),
            ["trace"]
        );
    }

    #[test]
    fn balance_params_from_the_command_line() {
        let p = |line| balance_params(&BootArgs::new(line));
        assert_eq!(p(""), BalanceParams::DEFAULT);
        assert_eq!(
            p(
                "balance_interval=8 balance_threshold=3 warmth_tolerance=0 idle_balance=0 periodic_balance=1"
            ),
            BalanceParams {
                interval_ticks: 8,
                threshold: 3,
                warmth_tolerance: 0,
                idle_balance: false,
                periodic_balance: true,
            }
        );
        assert_eq!(
            p("periodic_balance=0 balance_interval=0x10").interval_ticks,
            16
        );
        assert!(!p("periodic_balance=0").periodic_balance);
        // Out of bounds: clamped; not a number or not 0/1: the default. Always valid.
        let q = p("balance_interval=0 balance_threshold=1 warmth_tolerance=1000 idle_balance=yes");
        assert_eq!(
            q,
            BalanceParams {
                interval_ticks: 1,
                threshold: 2,
                warmth_tolerance: BalanceParams::MAX_TOLERANCE,
                idle_balance: true,
                ..BalanceParams::DEFAULT
            }
        );
        assert!(q.is_valid());
        assert_eq!(
            p("balance_interval=5000").interval_ticks,
            BalanceParams::MAX_INTERVAL
        );
        assert_eq!(p("balance_interval=soon").interval_ticks, 4);
        assert!(complaints("balance_interval=8 idle_balance=1 periodic_balance=0").is_empty());
        assert_eq!(
            complaints(
                "balance_interval=0 balance_threshold=x warmth_tolerance=65 idle_balance=on periodic_balance=2"
            ),
            [
                "bootargs: balance_interval=0 out of range 1-1000; using 1",
                "bootargs: balance_threshold=x is not a number; using 2",
                "bootargs: warmth_tolerance=65 out of range 0-64; using 64",
                "bootargs: idle_balance=on is not one of 0, 1; using 1",
                "bootargs: periodic_balance=2 is not one of 0, 1; using 1",
            ]
        );
        assert_eq!(
            complaints("balance_threshold=1"),
            ["bootargs: balance_threshold=1 out of range 2-64; using 2"]
        );
    }
}
