//! What bootstrap does when a task it started ends, and when it is itself done: the
//! started tasks by their task port's name in bootstrap's space, each with its program's
//! index in the configuration (or none for a task started by `bootstrap_spawn`, which is
//! waited for like a `run` program).
//!
//! The rule for the end: bootstrap is done once no waited-for task is left (every `run`
//! program and every spawned task has ended); it then terminates the servers still running
//! and exits, so that the run ends (and the kernel's leak check runs).

use alloc::vec::Vec;

use crate::config::{Kind, MAX_RESTARTS};

/// One started task.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Started {
    task: u32,
    program: Option<usize>,
}

/// What to do about a task that ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ended {
    /// Not one of ours.
    Unknown,
    /// Nothing to do (a `run` program, a spawned task, a plain server).
    Gone,
    /// Start program `program` again (its restart number, from 1).
    Restart { program: usize, restart: u32 },
    /// Program `program` died once more than it may be restarted.
    GaveUp { program: usize, deaths: u32 },
}

/// The started tasks and the restarts so far.
#[derive(Debug)]
pub struct Supervisor {
    kinds: Vec<Kind>,
    deaths: Vec<u32>,
    started: Vec<Started>,
}

impl Supervisor {
    /// A supervisor of programs of these kinds (the configuration's order).
    pub fn new(kinds: Vec<Kind>) -> Self {
        let deaths = alloc::vec![0; kinds.len()];
        Supervisor {
            kinds,
            deaths,
            started: Vec::new(),
        }
    }

    /// Task `task` runs program `program` (`None`: spawned on request).
    pub fn started(&mut self, task: u32, program: Option<usize>) {
        self.started.push(Started { task, program });
    }

    fn waited(&self, s: &Started) -> bool {
        s.program
            .is_none_or(|p| self.kinds.get(p).is_none_or(|&k| k == Kind::Run))
    }

    /// Task `task` ended (its port died).
    pub fn ended(&mut self, task: u32) -> Ended {
        let Some(i) = self.started.iter().position(|s| s.task == task) else {
            return Ended::Unknown;
        };
        let s = self.started.swap_remove(i);
        let Some(program) = s.program else {
            return Ended::Gone;
        };
        if self.kinds.get(program) != Some(&Kind::Restart) {
            return Ended::Gone;
        }
        self.deaths[program] += 1;
        let deaths = self.deaths[program];
        if deaths > MAX_RESTARTS {
            Ended::GaveUp { program, deaths }
        } else {
            Ended::Restart {
                program,
                restart: deaths,
            }
        }
    }

    /// Whether bootstrap is done: no waited-for task is left.
    pub fn done(&self) -> bool {
        !self.started.iter().any(|s| self.waited(s))
    }

    /// The tasks still running that are not waited for (to terminate at the end).
    pub fn servers(&self) -> impl Iterator<Item = u32> + '_ {
        self.started
            .iter()
            .filter(|s| !self.waited(s))
            .map(|s| s.task)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::vec;
    use std::vec::Vec;

    #[test]
    fn done_when_every_waited_task_ended() {
        let mut s = Supervisor::new(vec![Kind::Server, Kind::Run, Kind::Run]);
        s.started(10, Some(0));
        s.started(11, Some(1));
        s.started(12, Some(2));
        assert!(!s.done());
        assert_eq!(s.ended(11), Ended::Gone);
        assert!(!s.done());
        s.started(20, None);
        assert_eq!(s.ended(12), Ended::Gone);
        assert!(!s.done(), "a spawned task is waited for");
        assert_eq!(s.ended(20), Ended::Gone);
        assert!(s.done());
        assert_eq!(s.servers().collect::<Vec<_>>(), [10]);
        assert_eq!(s.ended(99), Ended::Unknown);
        assert_eq!(s.ended(11), Ended::Unknown, "once only");
    }

    #[test]
    fn restart_servers_come_back_a_bounded_number_of_times() {
        let mut s = Supervisor::new(vec![Kind::Restart, Kind::Run]);
        s.started(1, Some(1));
        let mut task = 100;
        s.started(task, Some(0));
        for restart in 1..=MAX_RESTARTS {
            assert_eq!(
                s.ended(task),
                Ended::Restart {
                    program: 0,
                    restart
                }
            );
            task += 1;
            s.started(task, Some(0));
            assert!(!s.done());
        }
        assert_eq!(
            s.ended(task),
            Ended::GaveUp {
                program: 0,
                deaths: MAX_RESTARTS + 1
            }
        );
        assert_eq!(s.servers().count(), 0);
        assert_eq!(s.ended(1), Ended::Gone);
        assert!(s.done());
    }

    #[test]
    fn nothing_waited_for_is_done_at_once() {
        let mut s = Supervisor::new(vec![Kind::Server]);
        s.started(5, Some(0));
        assert!(s.done());
        assert_eq!(s.servers().collect::<Vec<_>>(), [5]);
    }
}
