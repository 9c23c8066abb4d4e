//! The read-only commands: `ps` (tasks and threads), `cpus` (per processor), `psets`
//! (processor sets) and `top` (a live view), each gathered through `mach_host.defs`,
//! `mach.defs` and armach's info flavors and laid out with the library's tables and bars.
//! Also the look-ups other commands share: the live sets and their control ports, the
//! threads, the uptime.

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt::Write;
use core::mem::ManuallyDrop;

use libmach::abi::device::IO_INBAND_MAX;
use libmach::abi::info::{
    TH_STATE_HALTED, TH_STATE_RUNNING, TH_STATE_STOPPED, TH_STATE_UNINTERRUPTIBLE,
    TH_STATE_WAITING, TimeValue64,
};
use libmach::abi::mig::ReceivedPort;
use libmach::abi::sched::LOAD_SCALE;
use libmach::ipc::{self, SendRight};
use libmach::mig::{mach, mach_host};
use libmach::{KernReturn, PortName, kern};
use msh::table::{Align, Table, bar, fixed2, percent, seconds3};

use crate::shell::Shell;

const PROCESSOR_SET_BASIC_INFO: i32 = 1;
const PROCESSOR_SET_BASIC_INFO_COUNT: usize = 5;
/// Threads `top` lists.
const TOP_THREADS: usize = 8;
/// Width of `top`'s bars.
const BAR_WIDTH: usize = 30;

/// A right the task holds, lent to a stub without giving up the reference.
pub fn lend(name: PortName) -> ManuallyDrop<SendRight> {
    ManuallyDrop::new(SendRight::from_name(name))
}

/// A kernel error as a message for `what`.
pub fn failed(what: &str, kr: KernReturn) -> String {
    format!("{what}: {kr}")
}

/// Time since boot (`host_get_uptime64`), in nanoseconds.
pub fn uptime_ns() -> u64 {
    mach_host::host_get_uptime64(&mut ipc::transport(), &ipc::host_self())
        .map_or(0, |o| ns_of(o.uptime[0], o.uptime[1]))
}

fn ns_of(seconds: i64, nanoseconds: i64) -> u64 {
    (seconds.max(0) as u64)
        .saturating_mul(1_000_000_000)
        .saturating_add(nanoseconds.max(0) as u64)
}

fn ns64(t: &TimeValue64) -> u64 {
    ns_of(t.seconds, t.nanoseconds)
}

/// The live processor sets (`host_processor_sets`), by msh's numbers, in the kernel's
/// order; forgets the destroyed ones.
pub fn refresh_sets(shell: &mut Shell) -> Result<Vec<u32>, String> {
    let out = mach_host::host_processor_sets(&mut ipc::transport(), &ipc::host_self())
        .map_err(|kr| failed("host_processor_sets", kr))?;
    let mut ids = Vec::new();
    let sets = &mut shell.sets;
    out.processor_sets.take_all(|r| {
        if let ReceivedPort::Send(right) = r {
            ids.push(sets.adopt(right));
        }
    });
    shell.sets.retain(&ids);
    shell.set_controls.retain(|(id, _)| ids.contains(id));
    Ok(ids)
}

/// The name port of set `id`, lent.
pub fn set_name(shell: &Shell, id: u32) -> Result<ManuallyDrop<SendRight>, String> {
    shell
        .sets
        .get(id)
        .map(|r| lend(r.name()))
        .ok_or_else(|| format!("no processor set {id} (see `psets`)"))
}

/// The control port of set `id` (`host_processor_set_priv` the first time), lent.
pub fn set_control(shell: &mut Shell, id: u32) -> Result<ManuallyDrop<SendRight>, String> {
    if let Some((_, control)) = shell.set_controls.iter().find(|(s, _)| *s == id) {
        return Ok(lend(control.name()));
    }
    let name = set_name(shell, id)?;
    let control =
        mach_host::host_processor_set_priv(&mut ipc::transport(), &shell.host_priv, &name)
            .map_err(|kr| failed("host_processor_set_priv", kr))?
            .set;
    let lent = lend(control.name());
    shell.set_controls.push((id, control));
    Ok(lent)
}

/// What `ps` and `top` show of a thread.
pub struct ThreadRow {
    pub id: u32,
    pub task: u32,
    pub name: String,
    pub state: &'static str,
    pub cpu: Option<u32>,
    pub bound: Option<u32>,
    pub priority: i32,
    pub set: Option<u32>,
    pub migrations: u32,
    pub warmth: u8,
    pub time_ns: u64,
}

fn state_name(run_state: i32, suspended: bool) -> &'static str {
    match (run_state, suspended) {
        (_, true) => "susp",
        (TH_STATE_RUNNING, _) => "run",
        (TH_STATE_STOPPED, _) => "stop",
        (TH_STATE_WAITING, _) => "wait",
        (TH_STATE_UNINTERRUPTIBLE, _) => "uwait",
        (TH_STATE_HALTED, _) => "halt",
        _ => "?",
    }
}

/// Every task of every set (`processor_set_tasks`) and its threads (`task_threads`), with
/// their info; forgets tasks and threads that are gone.
pub fn threads(shell: &mut Shell) -> Result<Vec<ThreadRow>, String> {
    let sets = refresh_sets(shell)?;
    let mut tasks = Vec::new();
    for set in sets {
        let control = set_control(shell, set)?;
        let out = mach_host::processor_set_tasks(&mut ipc::transport(), &control)
            .map_err(|kr| failed("processor_set_tasks", kr))?;
        let registry = &mut shell.tasks;
        out.task_list.take_all(|r| {
            if let ReceivedPort::Send(right) = r {
                let id = registry.adopt(right);
                if !tasks.contains(&id) {
                    tasks.push(id);
                }
            }
        });
    }
    shell.tasks.retain(&tasks);
    let mut rows = Vec::new();
    let mut seen = Vec::new();
    for &task in &tasks {
        let Some(port) = shell.tasks.get(task).map(|r| lend(r.name())) else {
            continue;
        };
        // A task that ended since the list was made has no threads to show.
        let Ok(out) = mach::task_threads(&mut ipc::transport(), &port) else {
            continue;
        };
        let mut ids = Vec::new();
        let registry = &mut shell.threads;
        out.thread_list.take_all(|r| {
            if let ReceivedPort::Send(right) = r {
                ids.push(registry.adopt(right));
            }
        });
        for id in ids {
            seen.push(id);
            if let Some(row) = thread_row(shell, id, task) {
                rows.push(row);
            }
        }
    }
    shell.threads.retain(&seen);
    rows.sort_by_key(|r| (r.task, r.id));
    Ok(rows)
}

fn thread_row(shell: &mut Shell, id: u32, task: u32) -> Option<ThreadRow> {
    let thread = lend(shell.threads.get(id)?.name());
    let basic = kern::thread_basic_info(&thread).ok()?;
    let sched = kern::thread_sched_info(&thread).ok();
    let migration = kern::thread_migration_info(&thread).ok();
    let name = kern::thread_get_name(&thread)
        .ok()
        .and_then(|n| n.as_c_str().to_str().ok().map(ToString::to_string))
        .unwrap_or_default();
    let set = mach_host::thread_get_assignment(&mut ipc::transport(), &thread)
        .ok()
        .map(|o| shell.sets.adopt(o.assigned_set));
    Some(ThreadRow {
        id,
        task,
        name,
        state: state_name(basic.run_state, basic.suspend_count > 0),
        cpu: migration.and_then(|m| m.last_processor),
        bound: migration.and_then(|m| m.bound_processor),
        priority: sched.map_or(basic.cur_priority, |s| s.cur_priority),
        set,
        migrations: migration.map_or(0, |m| m.migration_count),
        warmth: migration.map_or(0, |m| m.cache_warmth),
        time_ns: ns64(&basic.user_time64).saturating_add(ns64(&basic.system_time64)),
    })
}

fn opt(v: Option<u32>) -> String {
    v.map_or_else(|| "-".to_string(), |v| v.to_string())
}

pub fn ps(shell: &mut Shell) -> Result<(), String> {
    let rows = threads(shell)?;
    let mut t = Table::new(&[
        ("ID", Align::Right),
        ("TASK", Align::Right),
        ("NAME", Align::Left),
        ("STATE", Align::Left),
        ("CPU", Align::Right),
        ("BOUND", Align::Right),
        ("PRI", Align::Right),
        ("SET", Align::Right),
        ("MIGR", Align::Right),
        ("WARM", Align::Right),
        ("TIME", Align::Right),
    ]);
    let mut tasks: Vec<u32> = rows.iter().map(|r| r.task).collect();
    tasks.dedup();
    for r in &rows {
        t.row(alloc::vec![
            r.id.to_string(),
            r.task.to_string(),
            r.name.clone(),
            r.state.to_string(),
            opt(r.cpu),
            opt(r.bound),
            r.priority.to_string(),
            opt(r.set),
            r.migrations.to_string(),
            r.warmth.to_string(),
            seconds3(r.time_ns),
        ]);
    }
    let _ = writeln!(
        shell.out,
        "ps: {} tasks, {} threads (CPU: last processor; WARM: cache warmth 0-255; TIME: user+system s)",
        tasks.len(),
        rows.len()
    );
    shell.out.push_str(&t.render());
    Ok(())
}

/// Per-CPU idle time at an instant, for idle percentages between two samples.
#[derive(Clone, Debug)]
pub struct CpuSample {
    pub uptime_ns: u64,
    pub idle_ns: Vec<u64>,
}

pub fn cpus(shell: &mut Shell) -> Result<(), String> {
    refresh_sets(shell)?;
    let now = uptime_ns();
    let mut t = Table::new(&[
        ("CPU", Align::Right),
        ("SET", Align::Right),
        ("LOAD", Align::Right),
        ("RUN", Align::Right),
        ("QUEUE", Align::Right),
        ("MIG-IN", Align::Right),
        ("MIG-OUT", Align::Right),
        ("IDLE%", Align::Right),
        ("SWITCHES", Align::Right),
        ("BAL-MOVED", Align::Right),
        ("IDLE-PULLS", Align::Right),
    ]);
    let (since, since_ns) = match &shell.last_cpus {
        Some(s) if s.idle_ns.len() == shell.processors.len() && now > s.uptime_ns => {
            ("the previous `cpus`", now - s.uptime_ns)
        }
        _ => ("boot", now),
    };
    let mut idle = Vec::new();
    for slot in 0..shell.processors.len() {
        let p = lend(shell.processors[slot].name());
        let info = kern::processor_sched_info(&p)
            .map_err(|kr| failed(&format!("processor_info(cpu{slot})"), kr))?;
        let set = mach_host::processor_get_assignment(&mut ipc::transport(), &p)
            .ok()
            .map(|o| shell.sets.adopt(o.assigned_set));
        let before = match &shell.last_cpus {
            Some(s) if since_ns != now => s.idle_ns.get(slot).copied().unwrap_or(0),
            _ => 0,
        };
        t.row(alloc::vec![
            slot.to_string(),
            opt(set),
            fixed2(u64::from(info.load_average), u64::from(LOAD_SCALE)),
            info.runnable.to_string(),
            info.queued.to_string(),
            info.migration_in.to_string(),
            info.migration_out.to_string(),
            percent(info.idle_ns.saturating_sub(before), since_ns).to_string(),
            info.context_switches.to_string(),
            info.balance_moved.to_string(),
            info.idle_pulls.to_string(),
        ]);
        idle.push(info.idle_ns);
    }
    let _ = writeln!(
        shell.out,
        "cpus: {} CPUs (LOAD: runnable threads, decayed; RUN: running+queued; IDLE% since {since}, {} s)",
        shell.processors.len(),
        seconds3(since_ns)
    );
    shell.out.push_str(&t.render());
    shell.last_cpus = Some(CpuSample {
        uptime_ns: now,
        idle_ns: idle,
    });
    Ok(())
}

/// The slots of the processors in set `id` (`processor_set_processors`).
fn set_cpus(shell: &Shell, id: u32) -> Result<Vec<usize>, String> {
    let name = set_name(shell, id)?;
    let out = mach_host::processor_set_processors(&mut ipc::transport(), &name)
        .map_err(|kr| failed("processor_set_processors", kr))?;
    let mut slots: Vec<usize> = out
        .processors_list
        .names()
        .filter_map(|n| shell.processors.iter().position(|p| p.name() == n))
        .collect();
    slots.sort_unstable();
    Ok(slots)
}

pub fn psets(shell: &mut Shell) -> Result<(), String> {
    let ids = refresh_sets(shell)?;
    let mut t = Table::new(&[
        ("SET", Align::Right),
        ("CPUS", Align::Left),
        ("TASKS", Align::Right),
        ("THREADS", Align::Right),
        ("INTERVAL", Align::Right),
        ("THRESHOLD", Align::Right),
        ("TOLERANCE", Align::Right),
        ("IDLE", Align::Left),
        ("PERIODIC", Align::Left),
    ]);
    for &id in &ids {
        let name = set_name(shell, id)?;
        let mut info = [0i32; PROCESSOR_SET_BASIC_INFO_COUNT];
        mach_host::processor_set_info(
            &mut ipc::transport(),
            &name,
            PROCESSOR_SET_BASIC_INFO,
            &mut info,
        )
        .map_err(|kr| failed("processor_set_info", kr))?;
        let b = kern::balance_get(&name).map_err(|kr| failed("processor_set_balance_get", kr))?;
        let cpus = set_cpus(shell, id)?;
        let cpus = if cpus.is_empty() {
            "-".to_string()
        } else {
            cpus.iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(",")
        };
        let on = |b: bool| if b { "on" } else { "off" }.to_string();
        t.row(alloc::vec![
            id.to_string(),
            cpus,
            info[1].to_string(),
            info[2].to_string(),
            b.interval_ticks.to_string(),
            b.threshold.to_string(),
            b.warmth_tolerance.to_string(),
            on(b.idle_balance),
            on(b.periodic_balance),
        ]);
    }
    let _ = writeln!(
        shell.out,
        "psets: {} processor sets (INTERVAL in ticks between balance passes)",
        ids.len()
    );
    shell.out.push_str(&t.render());
    Ok(())
}

/// Waits `ms` milliseconds or until a key arrives (which is consumed): whether one did.
pub fn wait_for_key(shell: &Shell, ms: u64) -> bool {
    let mut buf = [0u8; IO_INBAND_MAX];
    let end = uptime_ns().saturating_add(ms * 1_000_000);
    loop {
        if shell.console.poll(&mut buf).is_ok_and(|n| n > 0) {
            return true;
        }
        let now = uptime_ns();
        if now >= end {
            return false;
        }
        let step = ((end - now) / 1_000_000).clamp(1, 50);
        crate::actions::nap_ms(step);
    }
}

/// The live view: every second, a bar per CPU (busy time since the last frame) and the
/// threads that ran most, until a key is pressed.
pub fn top(shell: &mut Shell) -> Result<(), String> {
    let mut before_time = uptime_ns();
    let mut before_idle = idle_times(shell)?;
    let mut before_threads: Vec<(u32, u64)> =
        threads(shell)?.iter().map(|r| (r.id, r.time_ns)).collect();
    let mut frame = 0u32;
    loop {
        if wait_for_key(shell, 1000) {
            let _ = writeln!(shell.out, "top: ended after {frame} refreshes");
            return Ok(());
        }
        frame += 1;
        let now = uptime_ns();
        let wall = now.saturating_sub(before_time).max(1);
        let idle = idle_times(shell)?;
        let rows = threads(shell)?;
        let mut screen = String::from("\x1b[H\x1b[J");
        let _ = writeln!(
            screen,
            "top: refresh {frame}, every 1 s; press any key to quit"
        );
        for (slot, (now_idle, then)) in idle.iter().zip(&before_idle).enumerate() {
            let busy = wall.saturating_sub(now_idle.saturating_sub(*then));
            let _ = writeln!(
                screen,
                "cpu{slot:<3}{} {:>3}% busy",
                bar(busy, wall, BAR_WIDTH),
                percent(busy, wall)
            );
        }
        let mut ran: Vec<(u64, &ThreadRow)> = rows
            .iter()
            .map(|r| {
                let then = before_threads
                    .iter()
                    .find(|(id, _)| *id == r.id)
                    .map_or(0, |(_, t)| *t);
                (r.time_ns.saturating_sub(then), r)
            })
            .collect();
        ran.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.id.cmp(&b.1.id)));
        let mut t = Table::new(&[
            ("ID", Align::Right),
            ("TASK", Align::Right),
            ("NAME", Align::Left),
            ("STATE", Align::Left),
            ("CPU", Align::Right),
            ("MIGR", Align::Right),
            ("%CPU", Align::Right),
        ]);
        for (delta, r) in ran.iter().take(TOP_THREADS) {
            t.row(alloc::vec![
                r.id.to_string(),
                r.task.to_string(),
                r.name.clone(),
                r.state.to_string(),
                opt(r.cpu),
                r.migrations.to_string(),
                percent(*delta, wall).to_string(),
            ]);
        }
        screen.push_str("busiest threads over the last second:\n");
        screen.push_str(&t.render());
        shell.console.write_str(&screen);
        before_time = now;
        before_idle = idle;
        before_threads = rows.iter().map(|r| (r.id, r.time_ns)).collect();
    }
}

fn idle_times(shell: &Shell) -> Result<Vec<u64>, String> {
    shell
        .processors
        .iter()
        .enumerate()
        .map(|(slot, p)| {
            kern::processor_sched_info(p)
                .map(|i| i.idle_ns)
                .map_err(|kr| failed(&format!("processor_info(cpu{slot})"), kr))
        })
        .collect()
}
