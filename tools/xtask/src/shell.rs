//! Scripts that drive msh, the shell, through QEMU's serial input: the console test of
//! every command (bad arguments too) and the demo tour of `cargo xtask run --demo`. Each
//! is a list of [`Exchange`]s (a line typed, the texts its answer must show, in order)
//! that [`console_input`] turns into the harness's expect-style steps. The machines and
//! the judging are [`crate::test`]'s; typing and waiting are [`crate::qemu`]'s.

use std::time::Duration;

use crate::qemu::{ConsoleInput, Step};

/// The shell's prompt (`servers/msh/src/shell.rs`).
pub const PROMPT: &str = "msh> ";
/// How long one step may wait for its text (a `sleep 2` or two `top` refreshes included,
/// on a loaded host).
pub const STEP_WITHIN: Duration = Duration::from_secs(60);
/// The last words msh prints before `host_reboot`.
pub const HALTING: &str = "msh: halting";

/// One line typed and what must follow it.
#[derive(Clone, Copy, Debug)]
pub struct Exchange {
    /// The bytes typed (a command line ends in `\n`; `top` ends at any key).
    pub typed: &'static str,
    /// Texts the console must show after it, in this order.
    pub expect: &'static [&'static str],
    /// Whether to wait for the prompt before typing (not for the key that ends `top`).
    pub after_prompt: bool,
}

const fn line(typed: &'static str, expect: &'static [&'static str]) -> Exchange {
    Exchange {
        typed,
        expect,
        after_prompt: true,
    }
}

/// The steps that type each exchange after the prompt (when it says so) and wait for its
/// texts, each step at most [`STEP_WITHIN`].
pub fn console_input(exchanges: &[Exchange]) -> ConsoleInput {
    let step = |wait_for: &str, then_type: &str| Step {
        wait_for: wait_for.to_owned(),
        then_type: then_type.as_bytes().to_vec(),
        within: Some(STEP_WITHIN),
    };
    let mut steps = Vec::new();
    for e in exchanges {
        if e.after_prompt {
            steps.push(step(PROMPT, e.typed));
        } else {
            // Typed as soon as the previous exchange's last text is there.
            match steps.last_mut() {
                Some(last) => last.then_type.extend_from_slice(e.typed.as_bytes()),
                None => steps.push(step("", e.typed)),
            }
        }
        for text in e.expect {
            steps.push(step(text, ""));
        }
    }
    ConsoleInput { steps }
}

/// What the spawned `hello` of [`shell_test`] prints, somewhere on the console: it runs
/// beside the shell, so its lines may come before or after msh's next prompt.
pub const SPAWNED_HELLO: &str = "hello: argv[4] = \"b\"";

/// The console test: every command, with bad arguments, on a 4-CPU machine; ends with
/// `halt` (status 0). Numbers are msh's: thread 1 is its main thread, 2 bootstrap's
/// (listed by the first `ps`), 3-5 the first burn's threads; task 1 is msh, 2 bootstrap,
/// 3 the spawned `hello`.
pub fn shell_test() -> Vec<Exchange> {
    vec![
        line(
            "help\n",
            &["commands (THREAD", "halt                        power off"],
        ),
        line(
            "frobnicate\n",
            &["msh: unknown command `frobnicate` (try `help`)"],
        ),
        // Line editing: a typo erased with DEL and with BS, a line killed with Ctrl-U.
        line(
            "cpz\x7fus\n",
            &["cpus: 4 CPUs", "CPU  SET  LOAD  RUN  QUEUE  MIG-IN"],
        ),
        line(
            "xyz\x15p\x08ps\n",
            &["ps: 2 tasks, 2 threads", "STATE  CPU  BOUND", "bootstrap"],
        ),
        line("cpus now\n", &["msh: cpus: unexpected `now` (try `help`)"]),
        line("psets\n", &["psets: 1 processor sets", "  0  0,1,2,3"]),
        line(
            "burn 0\n",
            &["msh: burn: N must be a number from 1 to 64, not `0`"],
        ),
        line("burn 2 5 9\n", &["msh: no CPU 9 (CPUs are 0 to 3)"]),
        line("burn 2 zero\n", &["msh: burn: CPU `zero` is not a number"]),
        line(
            "burn 3 120 1\n",
            &["burn: 3 threads (3 4 5) spinning for 120 s, queued on cpu 1"],
        ),
        line("bind 3 3\n", &["bind: thread 3 runs only on cpu 3"]),
        line("bind 99 1\n", &["msh: no thread 99 (see `ps`)"]),
        line("bind 3 x\n", &["msh: bind: CPU `x` is not a number"]),
        line("bind 3 7\n", &["msh: no CPU 7 (CPUs are 0 to 3)"]),
        line("migrate 4 2\n", &["migrate: thread 4 moved to cpu 2"]),
        line("migrate 3 1\n", &["msh: thread_migrate: KERN_FAILURE"]),
        line("migrate 3\n", &["msh: migrate: CPU missing (try `help`)"]),
        line("ps\n", &["ps: 2 tasks, 6 threads", "burn-1", "burn-3"]),
        line("bind 3 none\n", &["bind: thread 3 is unbound"]),
        line(
            "balance\n",
            &["balance: set 0: interval 4 ticks, threshold 2, tolerance 2, idle on, periodic on"],
        ),
        line(
            "balance set interval 0\n",
            &["msh: balance set: interval must be a number from 1 to 1000, not `0`"],
        ),
        line(
            "balance set idle maybe\n",
            &["msh: balance set: idle takes on or off, not `maybe`"],
        ),
        line(
            "balance set periodic off threshold 3\n",
            &["balance: set 0: interval 4 ticks, threshold 3, tolerance 2, idle on, periodic off"],
        ),
        line(
            "balance set threshold 2 periodic on\n",
            &["balance: set 0: interval 4 ticks, threshold 2, tolerance 2, idle on, periodic on"],
        ),
        line("balance 7\n", &["msh: no processor set 7 (see `psets`)"]),
        line("pset create\n", &["pset: created set 1"]),
        line("pset assign 1 cpu 3\n", &["pset: cpu 3 is in set 1"]),
        line("pset assign 1 thread 4\n", &["pset: thread 4 is in set 1"]),
        line(
            "pset assign 1 cpu 0\n",
            &["msh: processor_assign: KERN_INVALID_ARGUMENT"],
        ),
        line(
            "pset assign 5 cpu 1\n",
            &["msh: no processor set 5 (see `psets`)"],
        ),
        line("pset assign 1 task 9\n", &["msh: no task 9 (see `ps`)"]),
        line(
            "pset assign 1 disk 2\n",
            &["msh: pset assign: `disk` is not cpu, thread or task"],
        ),
        line("psets\n", &["psets: 2 processor sets", "  1  3 "]),
        line("balance get 1\n", &["balance: set 1: interval 4 ticks"]),
        line(
            "pset destroy 0\n",
            &["msh: processor_set_destroy: KERN_INVALID_ARGUMENT"],
        ),
        line("pset destroy 1\n", &["pset: destroyed set 1"]),
        line(
            "pset destroy 1\n",
            &["msh: no processor set 1 (see `psets`)"],
        ),
        line(
            "pset grow\n",
            &["msh: pset: `grow` is not create, assign or destroy"],
        ),
        line("top\n", &["cpu0  [", "busiest threads", "top: refresh 2,"]),
        Exchange {
            typed: "q",
            expect: &["top: ended after "],
            after_prompt: false,
        },
        line("burn stop\n", &["burn: stopped 3 threads"]),
        line("spawn hello a b\n", &["spawn: started hello as task 3"]),
        line(
            "spawn nosuch\n",
            &["msh: bootstrap_spawn: KERN_INVALID_NAME"],
        ),
        line(
            "sleep x\n",
            &["msh: sleep: SECONDS must be a number from 1 to 600, not `x`"],
        ),
        line("sleep 1\n", &[]),
        line("halt\n", &[HALTING]),
    ]
}

/// The demo tour: four threads queued on one CPU with balancing off, then balancing on
/// and the load spread (`cpus` before and after), a bind, a migration, a processor set
/// that takes a CPU and two threads, `top` for two seconds, and `halt`.
pub fn demo() -> Vec<Exchange> {
    vec![
        line("cpus\n", &["cpus: 4 CPUs"]),
        line(
            "balance set periodic off idle off\n",
            &["idle off, periodic off"],
        ),
        line("burn 4 60 1\n", &["burn: 4 threads (2 3 4 5)"]),
        line("cpus\n", &["cpus: 4 CPUs"]),
        line(
            "balance set periodic on idle on\n",
            &["idle on, periodic on"],
        ),
        line("sleep 2\n", &[]),
        line("cpus\n", &["cpus: 4 CPUs"]),
        line("ps\n", &["ps: 2 tasks, 7 threads"]),
        line("bind 2 0\n", &["bind: thread 2 runs only on cpu 0"]),
        line("migrate 3 2\n", &["migrate: thread 3 moved to cpu 2"]),
        line("pset create\n", &["pset: created set 1"]),
        line("pset assign 1 cpu 3\n", &["pset: cpu 3 is in set 1"]),
        line("pset assign 1 thread 4\n", &["pset: thread 4 is in set 1"]),
        line("pset assign 1 thread 5\n", &["pset: thread 5 is in set 1"]),
        line("sleep 1\n", &[]),
        line("psets\n", &["psets: 2 processor sets"]),
        line("ps\n", &["ps: 2 tasks, 7 threads"]),
        line("cpus\n", &["cpus: 4 CPUs"]),
        line("top\n", &["top: refresh 2,"]),
        Exchange {
            typed: "q",
            expect: &["top: ended after "],
            after_prompt: false,
        },
        line("pset destroy 1\n", &["pset: destroyed set 1"]),
        line("burn stop\n", &["burn: stopped 4 threads"]),
        line("halt\n", &[HALTING]),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use msh::command::{Command, parse};

    /// Every line a script types that msh's parser refuses is expected to be refused with
    /// the parser's own words; every line it accepts is not expected to be refused so.
    fn check_against_parser(script: &[Exchange]) -> Vec<Command> {
        let mut parsed = Vec::new();
        for e in script.iter().filter(|e| e.after_prompt) {
            // What the line editor leaves of the typed bytes.
            let mut editor = msh::line::LineEditor::new();
            let (_, lines) = editor.feed_all(e.typed.as_bytes());
            assert_eq!(lines.len(), 1, "{:?}", e.typed);
            match parse(&lines[0]) {
                Ok(cmd) => parsed.push(cmd),
                Err(message) => assert!(
                    e.expect.contains(&format!("msh: {message}").as_str()),
                    "{:?}: parser says {message:?}, script expects {:?}",
                    e.typed,
                    e.expect
                ),
            }
        }
        parsed
    }

    #[test]
    fn the_console_test_covers_every_command() {
        let parsed = check_against_parser(&shell_test());
        let has = |f: fn(&Command) -> bool| parsed.iter().any(f);
        assert!(has(|c| matches!(c, Command::Help)));
        assert!(has(|c| matches!(c, Command::Ps)));
        assert!(has(|c| matches!(c, Command::Cpus)));
        assert!(has(|c| matches!(c, Command::Psets)));
        assert!(has(|c| matches!(c, Command::PsetCreate)));
        assert!(has(|c| matches!(c, Command::PsetAssign { .. })));
        assert!(has(|c| matches!(c, Command::PsetDestroy { .. })));
        assert!(has(|c| matches!(c, Command::Burn { .. })));
        assert!(has(|c| matches!(c, Command::BurnStop)));
        assert!(has(|c| matches!(c, Command::Bind { cpu: Some(_), .. })));
        assert!(has(|c| matches!(c, Command::Bind { cpu: None, .. })));
        assert!(has(|c| matches!(c, Command::Migrate { .. })));
        assert!(has(|c| matches!(c, Command::BalanceGet { .. })));
        assert!(has(|c| matches!(c, Command::BalanceSet { .. })));
        assert!(has(|c| matches!(c, Command::Top)));
        assert!(has(|c| matches!(c, Command::Sleep { .. })));
        assert!(has(|c| matches!(c, Command::Spawn { .. })));
        assert!(has(|c| matches!(c, Command::Halt)));
        // Line editing is exercised: DEL, BS and Ctrl-U.
        let typed: String = shell_test().iter().map(|e| e.typed).collect();
        for key in ['\x7f', '\x08', '\x15'] {
            assert!(typed.contains(key), "{key:?}");
        }
    }

    #[test]
    fn the_demo_parses_and_ends_with_halt() {
        let parsed = check_against_parser(&demo());
        assert_eq!(parsed.last(), Some(&Command::Halt));
        assert!(
            parsed
                .iter()
                .any(|c| matches!(c, Command::Burn { cpu: Some(1), .. }))
        );
    }

    #[test]
    fn steps_wait_for_the_prompt_then_for_each_text() {
        let input = console_input(&[
            line("ps\n", &["ps: 1 tasks"]),
            line("top\n", &["refresh 2"]),
            Exchange {
                typed: "q",
                expect: &["ended"],
                after_prompt: false,
            },
            line("halt\n", &[HALTING]),
        ]);
        let steps: Vec<(&str, &[u8])> = input
            .steps
            .iter()
            .map(|s| (s.wait_for.as_str(), s.then_type.as_slice()))
            .collect();
        assert_eq!(
            steps,
            [
                (PROMPT, &b"ps\n"[..]),
                ("ps: 1 tasks", b""),
                (PROMPT, b"top\n"),
                ("refresh 2", b"q"),
                ("ended", b""),
                (PROMPT, b"halt\n"),
                (HALTING, b""),
            ]
        );
        assert!(input.steps.iter().all(|s| s.within == Some(STEP_WITHIN)));
    }
}
