//! Which programs bootstrap starts. From its arguments (`argv[3..]`, the kernel command
//! line's words after `--`): each word a program to run, or `-f FILE` to read FILE from
//! the RAM disk; with no words, `bootstrap.conf` from the RAM disk. A configuration file
//! has one program per line, `#` to the end of a line is a comment:
//!
//! ```text
//! run     NAME ARGS...   start it; bootstrap waits for it to end
//! server  NAME ARGS...   start it; not waited for, ended when bootstrap ends
//! restart NAME ARGS...   a server started again when it dies, at most MAX_RESTARTS times
//! ```

use alloc::string::String;
use alloc::vec::Vec;

/// The configuration file read when bootstrap gets no words.
pub const DEFAULT_FILE: &str = "bootstrap.conf";
/// How many times a `restart` server is started again after it died.
pub const MAX_RESTARTS: u32 = 3;
/// Most programs one configuration starts.
pub const MAX_PROGRAMS: usize = 32;

/// How a program is supervised.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Waited for: bootstrap ends once every such program has ended.
    Run,
    /// Serves the others: not waited for, terminated when bootstrap ends.
    Server,
    /// A server started again when it dies (at most `MAX_RESTARTS` times).
    Restart,
}

/// One program to start.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Program {
    pub kind: Kind,
    pub name: String,
    pub args: Vec<String>,
}

/// Where the configuration comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    /// The programs named on the command line, each `run` with no arguments.
    Words(Vec<Program>),
    /// A file of the RAM disk.
    File(String),
}

/// A configuration that cannot be used: the line (1-based; 0 for the arguments) and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    pub line: usize,
    pub what: String,
}

impl core::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        if self.line == 0 {
            write!(f, "arguments: {}", self.what)
        } else {
            write!(f, "line {}: {}", self.line, self.what)
        }
    }
}

fn error(line: usize, what: impl Into<String>) -> ConfigError {
    ConfigError {
        line,
        what: what.into(),
    }
}

/// What bootstrap's arguments (`argv[3..]`) ask for.
pub fn from_args(words: &[&str]) -> Result<Source, ConfigError> {
    match words {
        [] => Ok(Source::File(String::from(DEFAULT_FILE))),
        ["-f", file] => Ok(Source::File(String::from(*file))),
        ["-f", ..] => Err(error(0, "-f takes one file name")),
        names => {
            if names.len() > MAX_PROGRAMS {
                return Err(error(
                    0,
                    alloc::format!("more than {MAX_PROGRAMS} programs"),
                ));
            }
            Ok(Source::Words(
                names
                    .iter()
                    .map(|n| Program {
                        kind: Kind::Run,
                        name: String::from(*n),
                        args: Vec::new(),
                    })
                    .collect(),
            ))
        }
    }
}

/// The programs a configuration file lists, in order.
pub fn parse(text: &str) -> Result<Vec<Program>, ConfigError> {
    let mut programs = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line_no = i + 1;
        let line = line.split('#').next().unwrap_or("");
        let mut words = line.split_ascii_whitespace();
        let Some(kind) = words.next() else {
            continue;
        };
        let kind = match kind {
            "run" => Kind::Run,
            "server" => Kind::Server,
            "restart" => Kind::Restart,
            other => {
                return Err(error(
                    line_no,
                    alloc::format!("`{other}` is not run, server or restart"),
                ));
            }
        };
        let name = words
            .next()
            .ok_or_else(|| error(line_no, "no program named"))?;
        if programs.len() == MAX_PROGRAMS {
            return Err(error(
                line_no,
                alloc::format!("more than {MAX_PROGRAMS} programs"),
            ));
        }
        programs.push(Program {
            kind,
            name: String::from(name),
            args: words.map(String::from).collect(),
        });
    }
    Ok(programs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::vec;

    fn p(kind: Kind, name: &str, args: &[&str]) -> Program {
        Program {
            kind,
            name: name.into(),
            args: args.iter().map(|a| String::from(*a)).collect(),
        }
    }

    #[test]
    fn files_list_programs_with_kinds_and_arguments() {
        let text = "# servers first\nrestart  srv  a b  # a comment\n\n  server log\nrun names x\n";
        assert_eq!(
            parse(text),
            Ok(vec![
                p(Kind::Restart, "srv", &["a", "b"]),
                p(Kind::Server, "log", &[]),
                p(Kind::Run, "names", &["x"]),
            ])
        );
        assert_eq!(parse(""), Ok(vec![]));
    }

    #[test]
    fn bad_lines_are_named() {
        assert_eq!(
            parse("run a\nstart b\n"),
            Err(error(2, "`start` is not run, server or restart"))
        );
        assert_eq!(parse("run\n"), Err(error(1, "no program named")));
        let many: String = (0..=MAX_PROGRAMS)
            .map(|i| std::format!("run p{i}\n"))
            .collect();
        assert_eq!(parse(&many).unwrap_err().line, MAX_PROGRAMS + 1);
        assert_eq!(
            std::format!("{}", error(3, "x")),
            "line 3: x",
            "errors say where"
        );
    }

    #[test]
    fn arguments_name_programs_or_a_file() {
        assert_eq!(from_args(&[]), Ok(Source::File("bootstrap.conf".into())));
        assert_eq!(
            from_args(&["-f", "names.conf"]),
            Ok(Source::File("names.conf".into()))
        );
        assert!(from_args(&["-f"]).is_err());
        assert!(from_args(&["-f", "a", "b"]).is_err());
        assert_eq!(
            from_args(&["hello", "threads"]),
            Ok(Source::Words(vec![
                p(Kind::Run, "hello", &[]),
                p(Kind::Run, "threads", &[])
            ]))
        );
    }
}
