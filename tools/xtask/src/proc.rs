//! Running other programs: cargo from the workspace root, system tools, and printing each
//! command exactly as a person could paste it into a shell. Not for QEMU, whose runs need
//! timeouts and console capture ([`crate::qemu`]).

use std::ffi::OsStr;
use std::process::{Command, Output, Stdio};

use crate::{Error, Result, workspace_root};

/// `cargo` with the workspace root as its directory and the workspace's own `target/`
/// (a `CARGO_TARGET_DIR` in the caller's environment is dropped so paths stay predictable).
/// The `cargo` on `PATH` (rustup's proxy, which honours `rust-toolchain.toml`) is preferred,
/// so the printed command is the one a person types; `$CARGO` when there is none.
pub fn cargo() -> Command {
    let on_path = std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join("cargo").is_file()));
    let program = match std::env::var_os("CARGO") {
        Some(cargo) if !on_path => cargo,
        _ => "cargo".into(),
    };
    let mut cmd = Command::new(program);
    cmd.current_dir(workspace_root())
        .env_remove("CARGO_TARGET_DIR");
    cmd
}

/// Quotes one word for a POSIX shell, only when it needs it.
pub fn shell_quote(word: &str) -> String {
    let plain = !word.is_empty()
        && word
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./:=,+@%".contains(&b));
    if plain {
        word.to_owned()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

/// A program and its arguments as one shell line.
pub fn shell_words<S: AsRef<str>>(program: &str, args: &[S]) -> String {
    let mut line = shell_quote(program);
    for arg in args {
        line.push(' ');
        line.push_str(&shell_quote(arg.as_ref()));
    }
    line
}

/// The command as a shell line (lossy for non-UTF-8 arguments, which we never pass).
pub fn display(cmd: &Command) -> String {
    let args: Vec<String> = cmd
        .get_args()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    shell_words(&cmd.get_program().to_string_lossy(), &args)
}

/// Runs the command with inherited stdio after printing it; `Ok(true)` if it succeeded.
pub fn run_status(cmd: &mut Command) -> Result<bool> {
    println!("xtask: $ {}", display(cmd));
    let status = cmd
        .status()
        .map_err(|e| Error::io(format_args!("cannot start `{}`", display(cmd)), e))?;
    Ok(status.success())
}

/// Runs the command after printing it, failing unless it succeeds.
pub fn run_checked(cmd: &mut Command) -> Result<()> {
    if run_status(cmd)? {
        Ok(())
    } else {
        Err(Error::new(format!("`{}` failed", display(cmd))))
    }
}

/// Runs a query command quietly and returns its output (`None` if it cannot be started).
pub fn query<I, S>(program: &str, args: I) -> Option<Output>
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .ok()
}

/// Stdout of a successful query, as text.
pub fn query_stdout<I, S>(program: &str, args: I) -> Option<String>
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    query(program, args)
        .filter(|out| out.status.success())
        .map(|out| String::from_utf8_lossy(&out.stdout).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_only_what_needs_it() {
        assert_eq!(shell_quote("-M"), "-M");
        assert_eq!(shell_quote("virt,gic-version=3"), "virt,gic-version=3");
        assert_eq!(
            shell_quote("exit=semihosting halt-after=boot"),
            "'exit=semihosting halt-after=boot'"
        );
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
        assert_eq!(shell_quote(""), "''");
        assert_eq!(
            shell_words("gdb", &["-ex", "target remote :1234"]),
            "gdb -ex 'target remote :1234'"
        );
    }
}
