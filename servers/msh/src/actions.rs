//! The commands that change something: processor sets (`processor_set_create`,
//! `processor_assign`, `thread_assign`, `task_assign`, `processor_set_destroy`), CPU-bound
//! `burn` threads in msh's own task, `thread_bind` and `thread_migrate`, the balancing
//! parameters (`processor_set_balance_get`/`_set`), `sleep` and `halt` (`host_reboot`).
//! Each says what it did in one line, or returns the kernel's refusal by name.

use alloc::format;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::fmt::Write;
use core::hint::black_box;
use core::mem::ManuallyDrop;
use core::sync::atomic::{AtomicBool, Ordering};

use libmach::abi::traps::SWITCH_OPTION_WAIT;
use libmach::ipc::{self, SendRight};
use libmach::mig::mach_host;
use libmach::thread::{self, JoinHandle};
use libmach::{PortName, kern, traps};
use msh::command::{Assignee, BalanceChanges};

use crate::shell::Shell;
use crate::views::{failed, lend, refresh_sets, set_control, set_name, uptime_ns};

/// `RB_HALT` (`sys/reboot.h`): power off, status 0.
const RB_HALT: i32 = 0x8;
/// Priority of burn threads: a little below msh's own (GNU Mach's scale, 0 highest, user
/// threads at 25), so that the shell answers while they spin.
const BURN_PRIORITY: i32 = 28;

/// Sleeps `ms` milliseconds (`thread_switch` with `SWITCH_OPTION_WAIT`).
pub fn nap_ms(ms: u64) {
    let _ = traps::thread_switch(PortName::NULL, SWITCH_OPTION_WAIT, ms);
}

/// `sleep SECONDS`.
pub fn sleep(seconds: u32) {
    let end = uptime_ns().saturating_add(u64::from(seconds) * 1_000_000_000);
    loop {
        let now = uptime_ns();
        if now >= end {
            return;
        }
        nap_ms(((end - now) / 1_000_000).clamp(1, 200));
    }
}

/// The port of thread `id` (msh's number), lent.
fn thread_port(shell: &Shell, id: u32) -> Result<ManuallyDrop<SendRight>, String> {
    shell
        .threads
        .get(id)
        .map(|r| lend(r.name()))
        .ok_or_else(|| format!("no thread {id} (see `ps`)"))
}

pub fn pset_create(shell: &mut Shell) -> Result<(), String> {
    let out = mach_host::processor_set_create(&mut ipc::transport(), &shell.host_priv)
        .map_err(|kr| failed("processor_set_create", kr))?;
    let id = shell.sets.adopt(out.new_name);
    shell.set_controls.push((id, out.new_set));
    let _ = writeln!(
        shell.out,
        "pset: created set {id} (no CPUs yet: `pset assign {id} cpu N`)"
    );
    Ok(())
}

pub fn pset_destroy(shell: &mut Shell, set: u32) -> Result<(), String> {
    refresh_sets(shell)?;
    let control = set_control(shell, set)?;
    mach_host::processor_set_destroy(&mut ipc::transport(), &control)
        .map_err(|kr| failed("processor_set_destroy", kr))?;
    shell.sets.forget(set);
    shell.set_controls.retain(|(id, _)| *id != set);
    let _ = writeln!(
        shell.out,
        "pset: destroyed set {set} (its CPUs and threads are back in set 0)"
    );
    Ok(())
}

pub fn pset_assign(shell: &mut Shell, set: u32, what: Assignee) -> Result<(), String> {
    refresh_sets(shell)?;
    let control = set_control(shell, set)?;
    let t = &mut ipc::transport();
    match what {
        Assignee::Cpu(cpu) => {
            let p = lend(shell.processor(cpu)?.name());
            mach_host::processor_assign(t, &p, &control, true)
                .map_err(|kr| failed("processor_assign", kr))?;
            let _ = writeln!(shell.out, "pset: cpu {cpu} is in set {set}");
        }
        Assignee::Thread(id) => {
            let thread = thread_port(shell, id)?;
            mach_host::thread_assign(t, &thread, &control)
                .map_err(|kr| failed("thread_assign", kr))?;
            let _ = writeln!(shell.out, "pset: thread {id} is in set {set}");
        }
        Assignee::Task(id) => {
            let task = shell
                .tasks
                .get(id)
                .map(|r| lend(r.name()))
                .ok_or_else(|| format!("no task {id} (see `ps`)"))?;
            mach_host::task_assign(t, &task, &control, true)
                .map_err(|kr| failed("task_assign", kr))?;
            let _ = writeln!(
                shell.out,
                "pset: task {id} and its threads are in set {set}"
            );
        }
    }
    Ok(())
}

/// One `burn`: its threads and the flag that ends them.
struct Burn {
    stop: Arc<AtomicBool>,
    handles: Vec<JoinHandle<()>>,
    watcher: Option<JoinHandle<()>>,
}

/// The burns still running.
#[derive(Default)]
pub struct Burns {
    running: Vec<Burn>,
    /// Burn threads started so far (for their names).
    started: u32,
}

impl Burns {
    /// Joins the burns whose threads have all ended.
    pub fn reap(&mut self) {
        let (done, running): (Vec<Burn>, Vec<Burn>) = core::mem::take(&mut self.running)
            .into_iter()
            .partition(|b| {
                b.handles.iter().all(JoinHandle::is_finished)
                    && b.watcher.as_ref().is_none_or(JoinHandle::is_finished)
            });
        self.running = running;
        for burn in done {
            for h in burn.handles {
                h.join();
            }
            if let Some(w) = burn.watcher {
                w.join();
            }
        }
    }

    /// Stops every burn and waits for its threads; how many threads there were.
    fn stop_all(&mut self) -> usize {
        let mut n = 0;
        for burn in core::mem::take(&mut self.running) {
            burn.stop.store(true, Ordering::Release);
            n += burn.handles.len();
            for h in burn.handles {
                h.join();
            }
            if let Some(w) = burn.watcher {
                w.join();
            }
        }
        n
    }
}

/// A burn thread: spins until told to stop.
fn spin(stop: &AtomicBool) {
    while !stop.load(Ordering::Acquire) {
        let mut x = 0u64;
        for i in 0..20_000u64 {
            x = x.wrapping_mul(31).wrapping_add(black_box(i));
        }
        black_box(x);
    }
}

pub fn burn(shell: &mut Shell, threads: u32, seconds: u32, cpu: Option<u32>) -> Result<(), String> {
    let target = match cpu {
        Some(c) => Some(lend(shell.processor(c)?.name())),
        None => None,
    };
    let stop = Arc::new(AtomicBool::new(false));
    let mut handles = Vec::new();
    let mut ids = Vec::new();
    let mut problems = String::new();
    for _ in 0..threads {
        let flag = Arc::clone(&stop);
        let handle = match thread::spawn(move || spin(&flag)) {
            Ok(h) => h,
            Err(kr) => {
                let _ = write!(problems, " thread creation: {kr};");
                break;
            }
        };
        shell.burns.started += 1;
        let name = format!("burn-{}\0", shell.burns.started);
        if let Ok(name) = core::ffi::CStr::from_bytes_with_nul(name.as_bytes()) {
            let _ = kern::thread_set_name(handle.thread(), name);
        }
        let _ = mach_host::thread_priority(
            &mut ipc::transport(),
            handle.thread(),
            BURN_PRIORITY,
            false,
        );
        if let Some(p) = &target
            && let Err(kr) = kern::thread_migrate(handle.thread(), p)
        {
            let _ = write!(problems, " thread_migrate: {kr};");
        }
        if let Some(id) = shell.threads.adopt_name(handle.port()) {
            ids.push(id);
        }
        handles.push(handle);
    }
    if handles.is_empty() {
        return Err(format!("burn: no thread started:{problems}"));
    }
    let flag = Arc::clone(&stop);
    let end = uptime_ns().saturating_add(u64::from(seconds) * 1_000_000_000);
    let watcher = thread::spawn(move || {
        let _ = kern::with_thread_self(|me| kern::thread_set_name(me, c"burn-timer"));
        while !flag.load(Ordering::Acquire) && uptime_ns() < end {
            nap_ms(100);
        }
        flag.store(true, Ordering::Release);
    });
    let watcher = match watcher {
        Ok(w) => Some(w),
        Err(kr) => {
            // Without a timer the burn would never end: end it now.
            stop.store(true, Ordering::Release);
            let _ = write!(problems, " timer thread: {kr};");
            None
        }
    };
    let ids: Vec<String> = ids.iter().map(|i| format!("{i}")).collect();
    let _ = writeln!(
        shell.out,
        "burn: {} threads ({}) spinning for {seconds} s{}{}",
        handles.len(),
        ids.join(" "),
        match cpu {
            Some(c) => format!(", queued on cpu {c}"),
            None => String::new(),
        },
        if problems.is_empty() {
            String::new()
        } else {
            format!("; problems:{problems}")
        }
    );
    shell.burns.running.push(Burn {
        stop,
        handles,
        watcher,
    });
    Ok(())
}

pub fn burn_stop(shell: &mut Shell) -> Result<(), String> {
    let n = shell.burns.stop_all();
    let _ = writeln!(shell.out, "burn: stopped {n} threads");
    Ok(())
}

pub fn bind(shell: &mut Shell, thread: u32, cpu: Option<u32>) -> Result<(), String> {
    let t = thread_port(shell, thread)?;
    match cpu {
        Some(c) => {
            let p = lend(shell.processor(c)?.name());
            kern::thread_bind(&t, Some(&p)).map_err(|kr| failed("thread_bind", kr))?;
            let _ = writeln!(shell.out, "bind: thread {thread} runs only on cpu {c}");
        }
        None => {
            kern::thread_bind(&t, None).map_err(|kr| failed("thread_bind", kr))?;
            let _ = writeln!(shell.out, "bind: thread {thread} is unbound");
        }
    }
    Ok(())
}

pub fn migrate(shell: &mut Shell, thread: u32, cpu: u32) -> Result<(), String> {
    let t = thread_port(shell, thread)?;
    let p = lend(shell.processor(cpu)?.name());
    kern::thread_migrate(&t, &p).map_err(|kr| failed("thread_migrate", kr))?;
    let _ = writeln!(shell.out, "migrate: thread {thread} moved to cpu {cpu}");
    Ok(())
}

fn write_balance(shell: &mut Shell, set: u32, b: &libmach::abi::sched::Balance) {
    let on = |v: bool| if v { "on" } else { "off" };
    let _ = writeln!(
        shell.out,
        "balance: set {set}: interval {} ticks, threshold {}, tolerance {}, idle {}, periodic {}",
        b.interval_ticks,
        b.threshold,
        b.warmth_tolerance,
        on(b.idle_balance),
        on(b.periodic_balance)
    );
}

pub fn balance_get(shell: &mut Shell, set: u32) -> Result<(), String> {
    refresh_sets(shell)?;
    let name = set_name(shell, set)?;
    let b = kern::balance_get(&name).map_err(|kr| failed("processor_set_balance_get", kr))?;
    write_balance(shell, set, &b);
    Ok(())
}

pub fn balance_set(shell: &mut Shell, set: u32, changes: &BalanceChanges) -> Result<(), String> {
    refresh_sets(shell)?;
    let name = set_name(shell, set)?;
    let old = kern::balance_get(&name).map_err(|kr| failed("processor_set_balance_get", kr))?;
    let new = changes.apply(&old);
    let control = set_control(shell, set)?;
    kern::balance_set(&control, &new).map_err(|kr| failed("processor_set_balance_set", kr))?;
    write_balance(shell, set, &new);
    Ok(())
}

pub fn halt(shell: &mut Shell) -> Result<(), String> {
    shell.burns.stop_all();
    shell.out.push_str("msh: halting\n");
    shell.flush();
    mach_host::host_reboot(&mut ipc::transport(), &shell.host_priv, RB_HALT)
        .map_err(|kr| failed("host_reboot", kr))
}

/// `spawn PROGRAM [ARGS]`: asks the bootstrap server (the task's bootstrap port) to start
/// PROGRAM from the RAM disk with ARGS (`bootstrap_spawn`); the new task gets msh's number
/// for it (the TASK column of `ps`). Without a bootstrap port (msh started by the kernel
/// with `init=msh`) there is nobody to ask.
pub fn spawn(shell: &mut Shell, program: &str, args: &[String]) -> Result<(), String> {
    use libmach::mig::armach_bootstrap as bs;
    let Some(bootstrap) = libmach::loader::bootstrap_port() else {
        return Err(
            "spawn: no bootstrap port (msh was started by the kernel, not by servers/bootstrap)"
                .into(),
        );
    };
    let name = alloc::ffi::CString::new(program)
        .map_err(|_| format!("spawn: `{program}` is no program name"))?;
    let mut words = Vec::new();
    for arg in args {
        words.extend_from_slice(arg.as_bytes());
        words.push(0);
    }
    let task = bs::bootstrap_spawn(&mut ipc::transport(), &bootstrap, &name, &words)
        .map_err(|kr| failed("bootstrap_spawn", kr))?
        .task;
    let id = shell.tasks.adopt(task);
    let _ = writeln!(shell.out, "spawn: started {program} as task {id}");
    Ok(())
}
