//! The shell's loop and state: the banner, the prompt, bytes from the console through the
//! line editor, each line parsed and run, its output (or its error) written back. The
//! state is what commands share: the console, the host-privileged port, the processors,
//! msh's numbers for threads, tasks and sets, the running burns and the last `cpus`
//! sample. What each command does is in `views` and `actions`.

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt::Write;
use core::mem::ManuallyDrop;

use libmach::abi::device::IO_INBAND_MAX;
use libmach::abi::mig::ReceivedPort;
use libmach::ipc::{self, SendRight};
use libmach::mig::mach_host;
use libmach::{Args, KernReturn};
use msh::command::{self, Command};
use msh::line::LineEditor;

use crate::actions::Burns;
use crate::console::Console;
use crate::registry::Registry;
use crate::views::CpuSample;

/// What the shell prints before its first prompt.
pub const BANNER: &str = "\
msh: the armach shell on the console device. Try `cpus`, `ps`, `burn 4 10` then `cpus` \
again, `top` (any key ends it), `help` for every command; `halt` powers off.\n";
/// The prompt.
pub const PROMPT: &str = "msh> ";

/// Everything commands share.
pub struct Shell {
    pub console: Console,
    pub host_priv: ManuallyDrop<SendRight>,
    /// Processor ports, by slot.
    pub processors: Vec<SendRight>,
    pub threads: Registry,
    pub tasks: Registry,
    /// Sets by their name ports (set 0 is the default set).
    pub sets: Registry,
    /// Control ports of the sets msh has them for, by set number.
    pub set_controls: Vec<(u32, SendRight)>,
    pub burns: Burns,
    /// The last `cpus` sample, for idle time since then.
    pub last_cpus: Option<CpuSample>,
    /// Text waiting to be written.
    pub out: String,
}

impl Shell {
    /// Writes the buffered text to the console.
    pub fn flush(&mut self) {
        if !self.out.is_empty() {
            self.console.write_str(&self.out);
            self.out.clear();
        }
    }

    /// The processor in slot `cpu`, or a message.
    pub fn processor(&self, cpu: u32) -> Result<&SendRight, String> {
        self.processors.get(cpu as usize).ok_or_else(|| {
            alloc::format!(
                "no CPU {cpu} (CPUs are 0 to {})",
                self.processors.len().saturating_sub(1)
            )
        })
    }
}

pub fn main(args: &Args) -> i32 {
    let (Some(host_priv), Some(master)) = (args.host_priv_port(), args.device_port()) else {
        libmach::println!(
            "msh: argv[1] and argv[2] must name the host-privileged and device ports"
        );
        return 1;
    };
    let master = ManuallyDrop::new(SendRight::from_name(master));
    let console = match Console::open(&master) {
        Ok(c) => c,
        Err(kr) => {
            libmach::println!("msh: device_open(\"console\"): {kr}");
            return 1;
        }
    };
    let host_priv = ManuallyDrop::new(SendRight::from_name(host_priv));
    let processors = match processors(&host_priv) {
        Ok(p) => p,
        Err(kr) => {
            console.write_str(&alloc::format!("msh: host_processors: {kr}\n"));
            return 1;
        }
    };
    let mut shell = Shell {
        console,
        host_priv,
        processors,
        threads: Registry::new(1),
        tasks: Registry::new(1),
        sets: Registry::new(0),
        set_controls: Vec::new(),
        burns: Burns::default(),
        last_cpus: None,
        out: String::new(),
    };
    // The default set is set 0, msh's task and first thread are 1.
    if let Ok(o) = mach_host::processor_set_default(&mut ipc::transport(), &ipc::host_self()) {
        shell.sets.adopt(o.default_set);
    }
    let _ = shell.tasks.adopt_name(libmach::mach_task_self());
    let _ = shell.threads.adopt_name(ipc::thread_self().name());
    let _ = libmach::kern::with_thread_self(|me| libmach::kern::thread_set_name(me, c"msh"));
    shell.console.write_str(BANNER);
    run(&mut shell);
    0
}

/// `host_processors`: the processors' ports, by slot.
fn processors(host_priv: &SendRight) -> Result<Vec<SendRight>, KernReturn> {
    let out = mach_host::host_processors(&mut ipc::transport(), host_priv)?;
    let mut v = Vec::new();
    out.processor_list.take_all(|r| {
        if let ReceivedPort::Send(right) = r {
            v.push(right);
        }
    });
    Ok(v)
}

/// Prompt, read, run, until `halt` (which does not return) or the console fails.
fn run(shell: &mut Shell) {
    let mut editor = LineEditor::new();
    let mut buf = [0u8; IO_INBAND_MAX];
    shell.console.write_str(PROMPT);
    loop {
        let n = match shell.console.read(&mut buf) {
            Ok(n) => n,
            Err(kr) => {
                libmach::println!("msh: device_read_inband: {kr}");
                return;
            }
        };
        for &byte in &buf[..n] {
            let fed = editor.feed(byte);
            shell.console.write(&fed.echo);
            if let Some(line) = fed.line {
                execute(shell, &line);
                shell.flush();
                shell.console.write_str(PROMPT);
            }
        }
    }
}

/// Runs one line; errors are written as `msh: ...`.
pub fn execute(shell: &mut Shell, line: &str) {
    shell.burns.reap();
    let result = match command::parse(line) {
        Ok(cmd) => dispatch(shell, cmd),
        Err(message) => Err(message),
    };
    if let Err(message) = result {
        let _ = writeln!(shell.out, "msh: {message}");
    }
}

fn dispatch(shell: &mut Shell, cmd: Command) -> Result<(), String> {
    use crate::{actions, views};
    match cmd {
        Command::Nothing => Ok(()),
        Command::Help => {
            shell.out.push_str(command::HELP);
            shell.out.push('\n');
            Ok(())
        }
        Command::Ps => views::ps(shell),
        Command::Cpus => views::cpus(shell),
        Command::Psets => views::psets(shell),
        Command::Top => views::top(shell),
        Command::PsetCreate => actions::pset_create(shell),
        Command::PsetDestroy { set } => actions::pset_destroy(shell, set),
        Command::PsetAssign { set, what } => actions::pset_assign(shell, set, what),
        Command::Burn {
            threads,
            seconds,
            cpu,
        } => actions::burn(shell, threads, seconds, cpu),
        Command::BurnStop => actions::burn_stop(shell),
        Command::Bind { thread, cpu } => actions::bind(shell, thread, cpu),
        Command::Migrate { thread, cpu } => actions::migrate(shell, thread, cpu),
        Command::BalanceGet { set } => actions::balance_get(shell, set.unwrap_or(0)),
        Command::BalanceSet { set, changes } => {
            actions::balance_set(shell, set.unwrap_or(0), &changes)
        }
        Command::Sleep { seconds } => {
            actions::sleep(seconds);
            Ok(())
        }
        Command::Spawn { program, args } => actions::spawn(shell, &program, &args),
        Command::Halt => actions::halt(shell),
    }
}
