//! msh's command language: one line in, a [`Command`] or a message saying what was wrong
//! (an unknown command, a missing or bad argument, a value out of range) out. Numbers name
//! things as msh lists them: a thread or task by the number in `ps`'s ID and TASK
//! columns, a processor set by `psets`'s SET column, a CPU by its slot. Not the place
//! where anything is looked up or done (`main.rs` and its modules do that).

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use mach_abi::sched::Balance;

/// Most threads one `burn` starts.
pub const MAX_BURN_THREADS: u32 = 64;
/// Longest a `burn` lasts, and its default.
pub const MAX_BURN_SECONDS: u32 = 3600;
pub const DEFAULT_BURN_SECONDS: u32 = 30;
/// Longest `sleep`.
pub const MAX_SLEEP_SECONDS: u32 = 600;

/// What `pset assign` moves into a set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Assignee {
    Cpu(u32),
    Thread(u32),
    Task(u32),
}

/// The balancing parameters a `balance set` changes (the others keep their values).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BalanceChanges {
    pub interval: Option<u32>,
    pub threshold: Option<u32>,
    pub tolerance: Option<u32>,
    pub idle: Option<bool>,
    pub periodic: Option<bool>,
}

impl BalanceChanges {
    /// `old` with the changes applied.
    pub fn apply(&self, old: &Balance) -> Balance {
        Balance {
            interval_ticks: self.interval.unwrap_or(old.interval_ticks),
            threshold: self.threshold.unwrap_or(old.threshold),
            warmth_tolerance: self.tolerance.unwrap_or(old.warmth_tolerance),
            idle_balance: self.idle.unwrap_or(old.idle_balance),
            periodic_balance: self.periodic.unwrap_or(old.periodic_balance),
        }
    }
}

/// One parsed line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    /// An empty line.
    Nothing,
    Help,
    Ps,
    Cpus,
    Psets,
    PsetCreate,
    PsetDestroy {
        set: u32,
    },
    PsetAssign {
        set: u32,
        what: Assignee,
    },
    /// `threads` CPU-bound threads for `seconds`, queued on `cpu` when given.
    Burn {
        threads: u32,
        seconds: u32,
        cpu: Option<u32>,
    },
    BurnStop,
    /// Bind to `cpu`, or unbind (`None`).
    Bind {
        thread: u32,
        cpu: Option<u32>,
    },
    Migrate {
        thread: u32,
        cpu: u32,
    },
    BalanceGet {
        set: Option<u32>,
    },
    BalanceSet {
        set: Option<u32>,
        changes: BalanceChanges,
    },
    Top,
    Sleep {
        seconds: u32,
    },
    Spawn {
        program: String,
        args: Vec<String>,
    },
    Halt,
}

/// The `help` text: every command, one line each.
pub const HELP: &str = "\
commands (THREAD and TASK as in ps, SET as in psets, CPU a processor slot):
  ps                          tasks and threads: state, CPU, priority, set, migrations, warmth
  cpus                        per CPU: load, queue, migrations in/out, idle %, context switches
  psets                       processor sets: CPUs, tasks, threads, balancing
  pset create                 make an empty processor set
  pset assign SET cpu CPU     move a CPU (or: thread THREAD, task TASK) into SET
  pset destroy SET            destroy SET (its CPUs and threads go back to set 0)
  burn N [SECONDS] [CPU]      N CPU-bound threads in msh's task (default 30 s), queued on CPU
  burn stop                   end every burn now
  bind THREAD CPU|none        bind THREAD to CPU (thread_bind), or unbind it
  migrate THREAD CPU          move THREAD to CPU now (thread_migrate)
  balance [get] [SET]         SET's balancing parameters (default set 0)
  balance set [SET] KEY VALUE...  interval 1-1000, threshold 2-64, tolerance 0-64,
                              idle on|off, periodic on|off
  top                         live view every second until a key is pressed
  sleep SECONDS               wait (for scripts)
  spawn PROGRAM [ARGS]        start a program of the RAM disk (through bootstrap)
  help                        this text
  halt                        power off (host_reboot)";

/// Parses one line.
pub fn parse(line: &str) -> Result<Command, String> {
    let words: Vec<&str> = line.split_whitespace().collect();
    let Some((&name, rest)) = words.split_first() else {
        return Ok(Command::Nothing);
    };
    let mut args = Args {
        command: name,
        words: rest,
        at: 0,
    };
    let command = match name {
        "help" | "?" => Command::Help,
        "ps" => Command::Ps,
        "cpus" => Command::Cpus,
        "psets" => Command::Psets,
        "top" => Command::Top,
        "halt" => Command::Halt,
        "pset" => return pset(&mut args),
        "burn" => return burn(&mut args),
        "bind" => {
            let thread = args.number("THREAD", 0, u32::MAX)?;
            let cpu = match args.word("CPU|none")? {
                "none" => None,
                word => Some(number(name, "CPU", word, 0, u32::MAX)?),
            };
            Command::Bind { thread, cpu }
        }
        "migrate" => Command::Migrate {
            thread: args.number("THREAD", 0, u32::MAX)?,
            cpu: args.number("CPU", 0, u32::MAX)?,
        },
        "balance" => return balance(&mut args),
        "sleep" => Command::Sleep {
            seconds: args.number("SECONDS", 1, MAX_SLEEP_SECONDS)?,
        },
        "spawn" => {
            let program = args.word("PROGRAM")?.to_string();
            let rest = args.rest().iter().map(|w| (*w).to_string()).collect();
            return Ok(Command::Spawn {
                program,
                args: rest,
            });
        }
        other => return Err(format!("unknown command `{other}` (try `help`)")),
    };
    args.end()?;
    Ok(command)
}

/// The words after the command name, read left to right.
struct Args<'a> {
    command: &'a str,
    words: &'a [&'a str],
    at: usize,
}

impl<'a> Args<'a> {
    fn peek(&self) -> Option<&'a str> {
        self.words.get(self.at).copied()
    }

    fn word(&mut self, what: &str) -> Result<&'a str, String> {
        let word = self
            .peek()
            .ok_or_else(|| format!("{}: {what} missing (try `help`)", self.command))?;
        self.at += 1;
        Ok(word)
    }

    fn number(&mut self, what: &str, min: u32, max: u32) -> Result<u32, String> {
        let word = self.word(what)?;
        number(self.command, what, word, min, max)
    }

    /// A number if the next word is one (an optional argument).
    fn optional_number(&mut self, what: &str, min: u32, max: u32) -> Result<Option<u32>, String> {
        match self.peek() {
            Some(w) if w.bytes().all(|b| b.is_ascii_digit()) => {
                self.at += 1;
                number(self.command, what, w, min, max).map(Some)
            }
            _ => Ok(None),
        }
    }

    fn rest(&mut self) -> &'a [&'a str] {
        let rest = &self.words[self.at..];
        self.at = self.words.len();
        rest
    }

    fn end(&self) -> Result<(), String> {
        match self.peek() {
            None => Ok(()),
            Some(extra) => Err(format!(
                "{}: unexpected `{extra}` (try `help`)",
                self.command
            )),
        }
    }
}

/// A decimal number within `min..=max`, or a message naming the argument.
fn number(command: &str, what: &str, word: &str, min: u32, max: u32) -> Result<u32, String> {
    let value = if word.bytes().all(|b| b.is_ascii_digit()) {
        word.parse::<u32>().ok()
    } else {
        None
    };
    match value {
        Some(v) if (min..=max).contains(&v) => Ok(v),
        Some(_) | None if max == u32::MAX && min == 0 => {
            Err(format!("{command}: {what} `{word}` is not a number"))
        }
        _ => Err(format!(
            "{command}: {what} must be a number from {min} to {max}, not `{word}`"
        )),
    }
}

fn pset(args: &mut Args<'_>) -> Result<Command, String> {
    let command = match args.word("create|assign|destroy")? {
        "create" => Command::PsetCreate,
        "destroy" => Command::PsetDestroy {
            set: args.number("SET", 0, u32::MAX)?,
        },
        "assign" => {
            let set = args.number("SET", 0, u32::MAX)?;
            let what = match args.word("cpu|thread|task")? {
                "cpu" => Assignee::Cpu(args.number("CPU", 0, u32::MAX)?),
                "thread" => Assignee::Thread(args.number("THREAD", 0, u32::MAX)?),
                "task" => Assignee::Task(args.number("TASK", 0, u32::MAX)?),
                other => {
                    return Err(format!("pset assign: `{other}` is not cpu, thread or task"));
                }
            };
            Command::PsetAssign { set, what }
        }
        other => {
            return Err(format!("pset: `{other}` is not create, assign or destroy"));
        }
    };
    args.end()?;
    Ok(command)
}

fn burn(args: &mut Args<'_>) -> Result<Command, String> {
    if args.peek() == Some("stop") {
        args.at += 1;
        args.end()?;
        return Ok(Command::BurnStop);
    }
    let threads = args.number("N", 1, MAX_BURN_THREADS)?;
    let seconds = args
        .optional_number("SECONDS", 1, MAX_BURN_SECONDS)?
        .unwrap_or(DEFAULT_BURN_SECONDS);
    let cpu = match args.peek() {
        Some(_) => Some(args.number("CPU", 0, u32::MAX)?),
        None => None,
    };
    args.end()?;
    Ok(Command::Burn {
        threads,
        seconds,
        cpu,
    })
}

fn on_off(word: &str, key: &str) -> Result<bool, String> {
    match word {
        "on" | "1" => Ok(true),
        "off" | "0" => Ok(false),
        _ => Err(format!("balance set: {key} takes on or off, not `{word}`")),
    }
}

fn balance(args: &mut Args<'_>) -> Result<Command, String> {
    match args.peek() {
        None => return Ok(Command::BalanceGet { set: None }),
        Some("get") => {
            args.at += 1;
            let set = args.optional_number("SET", 0, u32::MAX)?;
            args.end()?;
            return Ok(Command::BalanceGet { set });
        }
        Some("set") => args.at += 1,
        Some(_) => {
            let set = args.optional_number("SET", 0, u32::MAX)?;
            if set.is_some() {
                args.end()?;
                return Ok(Command::BalanceGet { set });
            }
            let other = args.peek().unwrap_or_default();
            return Err(format!("balance: `{other}` is not get, set or a SET"));
        }
    }
    let set = args.optional_number("SET", 0, u32::MAX)?;
    let mut changes = BalanceChanges::default();
    let mut any = false;
    while let Some(key) = args.peek() {
        args.at += 1;
        let value = args.word(&format!("a value for {key}"))?;
        let num = |min, max| number("balance set", key, value, min, max);
        match key {
            "interval" => changes.interval = Some(num(1, Balance::MAX_INTERVAL)?),
            "threshold" => {
                changes.threshold = Some(num(Balance::MIN_THRESHOLD, Balance::MAX_THRESHOLD)?)
            }
            "tolerance" => changes.tolerance = Some(num(0, Balance::MAX_TOLERANCE)?),
            "idle" => changes.idle = Some(on_off(value, key)?),
            "periodic" => changes.periodic = Some(on_off(value, key)?),
            other => {
                return Err(format!(
                    "balance set: unknown parameter `{other}` (interval, threshold, \
                     tolerance, idle, periodic)"
                ));
            }
        }
        any = true;
    }
    if !any {
        return Err("balance set: nothing to set (try `help`)".to_string());
    }
    Ok(Command::BalanceSet { set, changes })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(line: &str) -> Command {
        parse(line).unwrap_or_else(|e| panic!("{line}: {e}"))
    }

    fn err(line: &str) -> String {
        parse(line).expect_err(line)
    }

    #[test]
    fn simple_commands() {
        assert_eq!(ok(""), Command::Nothing);
        assert_eq!(ok("   "), Command::Nothing);
        assert_eq!(ok("ps"), Command::Ps);
        assert_eq!(ok("  cpus  "), Command::Cpus);
        assert_eq!(ok("psets"), Command::Psets);
        assert_eq!(ok("help"), Command::Help);
        assert_eq!(ok("top"), Command::Top);
        assert_eq!(ok("halt"), Command::Halt);
        assert_eq!(ok("sleep 2"), Command::Sleep { seconds: 2 });
    }

    #[test]
    fn unknown_commands_and_extra_words() {
        assert_eq!(
            err("frobnicate"),
            "unknown command `frobnicate` (try `help`)"
        );
        assert_eq!(err("ps aux"), "ps: unexpected `aux` (try `help`)");
        assert_eq!(err("halt now"), "halt: unexpected `now` (try `help`)");
    }

    #[test]
    fn burn() {
        assert_eq!(
            ok("burn 4"),
            Command::Burn {
                threads: 4,
                seconds: DEFAULT_BURN_SECONDS,
                cpu: None
            }
        );
        assert_eq!(
            ok("burn 3 10 1"),
            Command::Burn {
                threads: 3,
                seconds: 10,
                cpu: Some(1)
            }
        );
        assert_eq!(ok("burn stop"), Command::BurnStop);
        assert_eq!(err("burn"), "burn: N missing (try `help`)");
        assert_eq!(
            err("burn 0"),
            "burn: N must be a number from 1 to 64, not `0`"
        );
        assert_eq!(
            err("burn many"),
            "burn: N must be a number from 1 to 64, not `many`"
        );
        assert_eq!(
            err("burn 2 0"),
            "burn: SECONDS must be a number from 1 to 3600, not `0`"
        );
        assert_eq!(err("burn 2 5 x"), "burn: CPU `x` is not a number");
        assert_eq!(err("burn 2 5 1 9"), "burn: unexpected `9` (try `help`)");
        assert_eq!(err("burn stop now"), "burn: unexpected `now` (try `help`)");
    }

    #[test]
    fn bind_and_migrate() {
        assert_eq!(
            ok("bind 3 1"),
            Command::Bind {
                thread: 3,
                cpu: Some(1)
            }
        );
        assert_eq!(
            ok("bind 3 none"),
            Command::Bind {
                thread: 3,
                cpu: None
            }
        );
        assert_eq!(ok("migrate 2 0"), Command::Migrate { thread: 2, cpu: 0 });
        assert_eq!(err("bind"), "bind: THREAD missing (try `help`)");
        assert_eq!(err("bind 3"), "bind: CPU|none missing (try `help`)");
        assert_eq!(err("bind x 1"), "bind: THREAD `x` is not a number");
        assert_eq!(err("bind 3 -1"), "bind: CPU `-1` is not a number");
        assert_eq!(err("migrate 2"), "migrate: CPU missing (try `help`)");
        assert_eq!(
            err("migrate 99999999999 1"),
            "migrate: THREAD `99999999999` is not a number"
        );
    }

    #[test]
    fn pset() {
        assert_eq!(ok("pset create"), Command::PsetCreate);
        assert_eq!(ok("pset destroy 1"), Command::PsetDestroy { set: 1 });
        assert_eq!(
            ok("pset assign 1 cpu 3"),
            Command::PsetAssign {
                set: 1,
                what: Assignee::Cpu(3)
            }
        );
        assert_eq!(
            ok("pset assign 1 thread 7"),
            Command::PsetAssign {
                set: 1,
                what: Assignee::Thread(7)
            }
        );
        assert_eq!(
            ok("pset assign 2 task 1"),
            Command::PsetAssign {
                set: 2,
                what: Assignee::Task(1)
            }
        );
        assert_eq!(
            err("pset"),
            "pset: create|assign|destroy missing (try `help`)"
        );
        assert_eq!(
            err("pset make"),
            "pset: `make` is not create, assign or destroy"
        );
        assert_eq!(
            err("pset assign 1 disk 2"),
            "pset assign: `disk` is not cpu, thread or task"
        );
        assert_eq!(err("pset assign 1 cpu"), "pset: CPU missing (try `help`)");
        assert_eq!(err("pset destroy"), "pset: SET missing (try `help`)");
        assert_eq!(err("pset create 2"), "pset: unexpected `2` (try `help`)");
    }

    #[test]
    fn balance() {
        assert_eq!(ok("balance"), Command::BalanceGet { set: None });
        assert_eq!(ok("balance get"), Command::BalanceGet { set: None });
        assert_eq!(ok("balance get 1"), Command::BalanceGet { set: Some(1) });
        assert_eq!(ok("balance 1"), Command::BalanceGet { set: Some(1) });
        assert_eq!(
            ok("balance set periodic off idle off"),
            Command::BalanceSet {
                set: None,
                changes: BalanceChanges {
                    idle: Some(false),
                    periodic: Some(false),
                    ..Default::default()
                }
            }
        );
        assert_eq!(
            ok("balance set 1 interval 8 threshold 3 tolerance 0"),
            Command::BalanceSet {
                set: Some(1),
                changes: BalanceChanges {
                    interval: Some(8),
                    threshold: Some(3),
                    tolerance: Some(0),
                    ..Default::default()
                }
            }
        );
        assert_eq!(
            err("balance set"),
            "balance set: nothing to set (try `help`)"
        );
        assert_eq!(
            err("balance set interval 0"),
            "balance set: interval must be a number from 1 to 1000, not `0`"
        );
        assert_eq!(
            err("balance set threshold 1"),
            "balance set: threshold must be a number from 2 to 64, not `1`"
        );
        assert_eq!(
            err("balance set idle maybe"),
            "balance set: idle takes on or off, not `maybe`"
        );
        assert_eq!(
            err("balance set speed 3"),
            "balance set: unknown parameter `speed` (interval, threshold, tolerance, idle, periodic)"
        );
        assert_eq!(
            err("balance set interval"),
            "balance: a value for interval missing (try `help`)"
        );
        assert_eq!(err("balance up"), "balance: `up` is not get, set or a SET");
    }

    #[test]
    fn balance_changes_apply_only_what_they_name() {
        let changes = BalanceChanges {
            threshold: Some(5),
            periodic: Some(false),
            ..Default::default()
        };
        let b = changes.apply(&Balance::DEFAULT);
        assert_eq!(b.threshold, 5);
        assert!(!b.periodic_balance);
        assert_eq!(b.interval_ticks, Balance::DEFAULT.interval_ticks);
        assert!(b.idle_balance);
        assert!(b.is_valid());
    }

    #[test]
    fn spawn_and_sleep() {
        assert_eq!(
            ok("spawn hello a b"),
            Command::Spawn {
                program: "hello".into(),
                args: alloc::vec!["a".into(), "b".into()]
            }
        );
        assert_eq!(err("spawn"), "spawn: PROGRAM missing (try `help`)");
        assert_eq!(
            err("sleep 0"),
            "sleep: SECONDS must be a number from 1 to 600, not `0`"
        );
    }

    #[test]
    fn help_names_every_command() {
        for name in [
            "ps",
            "cpus",
            "psets",
            "pset create",
            "pset assign",
            "pset destroy",
            "burn",
            "bind",
            "migrate",
            "balance",
            "top",
            "spawn",
            "help",
            "halt",
            "sleep",
        ] {
            assert!(HELP.contains(&format!("\n  {name}")), "{name}");
        }
    }
}
