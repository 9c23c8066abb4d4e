//! The first user tasks and the end of a run: start the programs `init=` names from the
//! initial RAM disk, and once every task has gone, check that every frame and every byte
//! of kernel heap came back (the leak check the test suite relies on), then power off.

extern crate alloc;

use crate::arch::timer;
use crate::devtree::PhysRange;
use crate::ipc::{Port, PortName};
use crate::kern::bootargs::{self, BootArgs};
use crate::kern::power::{ExitStatus, power_off};
use crate::kern::task::{self, Task};
use crate::kern::{cpio, host, loader, sched, thread};
use crate::mm::{PhysAddr, frame, heap, kmem};
use crate::percpu;
use alloc::string::String;
use alloc::sync::Arc;
use arrayvec::ArrayVec;
use core::sync::atomic::{AtomicU64, Ordering};

/// Free frames and kernel heap bytes in use when the first user task was created (the
/// leak check's reference).
static FRAMES_BEFORE: AtomicU64 = AtomicU64::new(0);
static HEAP_BEFORE: AtomicU64 = AtomicU64::new(0);

/// Most programs `init=` may start together.
const MAX_INIT_PROGRAMS: usize = 16;

/// Start the bootstrap programs from the RAM disk (`init=a,b,c`, each its own task, in that
/// order; else the RAM disk's first file), each with the command line's words after `--`
/// as `argv[3..]`, then become the boot CPU's idle thread. Every
/// program is loaded before any runs, so the run cannot end while one is still to start.
/// When every task has gone, check that every frame came back and power off.
pub fn start_init(initrd: PhysRange, args: &BootArgs<'_>) -> ! {
    // SAFETY: the RAM disk is RAM the frame allocator left out; it is never written.
    let archive = unsafe {
        core::slice::from_raw_parts(
            PhysAddr(initrd.base).to_linear().as_ptr::<u8>(),
            initrd.size as usize,
        )
    };
    let entries = || cpio::entries(archive).filter_map(Result::ok);
    for e in cpio::entries(archive) {
        if let Err(err) = e {
            log::error!("initrd: {err}");
        }
    }
    let mut wanted: ArrayVec<Option<&str>, MAX_INIT_PROGRAMS> = ArrayVec::new();
    match bootargs::init_programs(args) {
        Some(names) => {
            for name in names {
                if wanted.try_push(Some(name)).is_err() {
                    crate::println!(
                        "gnumach-test-failure: init= names more than {MAX_INIT_PROGRAMS} programs"
                    );
                    power_off(ExitStatus::TestFailed)
                }
            }
        }
        None => wanted.push(None),
    }
    if wanted.is_empty() {
        wanted.push(None); // `init=` with no names: said at boot; the first program.
    }
    let mut programs: ArrayVec<cpio::Entry<'_>, MAX_INIT_PROGRAMS> = ArrayVec::new();
    for name in &wanted {
        match entries().find(|e| name.is_none_or(|name| e.name == name)) {
            Some(entry) => programs.push(entry),
            None => {
                crate::println!(
                    "gnumach-test-failure: no program {:?} in the initial RAM disk",
                    name.unwrap_or("(first)")
                );
                power_off(ExitStatus::TestFailed)
            }
        }
    }
    // The host ports live for the whole run: made before the leak check's reference.
    host::init(Some(initrd));
    crate::kern::ipc_traps::init();
    FRAMES_BEFORE.store(frame::counts().0, Ordering::Relaxed);
    HEAP_BEFORE.store(heap::usage().0 as u64, Ordering::Relaxed);
    super::checks::note_start();
    let mut loaded = ArrayVec::<_, MAX_INIT_PROGRAMS>::new();
    for entry in &programs {
        // argv[1] and argv[2]: send rights to the host-privileged and device ports, named
        // in the new task's space (GNU Mach's bootstrap arguments).
        let argv = |task: &Task| {
            let name = |port: Option<&Arc<Port>>| {
                task.ipc
                    .as_ref()
                    .map_or(PortName::NULL, |space| task::copyout_send(port, space))
            };
            let ports = host::ports();
            let mut argv = alloc::vec![
                String::from(entry.name),
                alloc::format!("{}", name(ports.map(|p| &p.host_priv)).0),
                alloc::format!("{}", name(ports.map(|p| &p.device)).0),
            ];
            argv.extend(args.init_args().map(String::from));
            argv
        };
        match loader::load_program(entry.name, entry.data, &argv) {
            Ok((task, thread)) => {
                log::info!("starting {} as task {}", entry.name, task.id);
                loaded.push(thread);
            }
            Err(e) => {
                crate::println!("gnumach-test-failure: cannot start {e}");
                power_off(ExitStatus::TestFailed)
            }
        }
    }
    for thread in loaded {
        loader::start(thread);
    }
    sched::idle_loop(check_when_tasks_gone)
}

/// When the boot CPU first saw every user task gone (timer counter), 0 before.
static GONE_AT: AtomicU64 = AtomicU64::new(0);

/// The boot CPU's idle hook: once every user task has gone, compare the free frames and
/// the kernel heap bytes in use with their values before the first task and power off.
/// The last task is reported gone from its own destructor, while another CPU may still be
/// finishing the frees (the task's fields, its last thread); so a difference is only a
/// leak if it is still there a second later.
fn check_when_tasks_gone() {
    if percpu::current_cpu() != super::boot::boot_cpu() || !sched::tasks_gone() {
        return;
    }
    let now = timer::counter();
    let gone_at = match GONE_AT.load(Ordering::Relaxed) {
        0 => {
            GONE_AT.store(now, Ordering::Relaxed);
            now
        }
        t => t,
    };
    let before = FRAMES_BEFORE.load(Ordering::Relaxed);
    let heap_before = HEAP_BEFORE.load(Ordering::Relaxed);
    thread::purge_dead_stacks();
    let (after, total) = frame::counts();
    crate::ipc::kmsg::release_spare();
    let heap_after = heap::usage().0 as u64;
    let charged = kmem::BUDGET.charged();
    let clean = after == before && heap_after == heap_before && charged == 0;
    if !clean && now < gone_at + timer::frequency() {
        return;
    }
    let checked = super::checks::at_end();
    crate::println!(
        "kernel: all tasks exited; free frames {after} of {total}, {before} before the first task; \
         kernel heap {heap_after} bytes in use, {heap_before} before"
    );
    if after != before {
        crate::println!(
            "gnumach-test-failure: frames leaked: {} frames not returned",
            before as i64 - after as i64
        );
    }
    if heap_after != heap_before || charged != 0 {
        crate::println!(
            "gnumach-test-failure: kernel heap leaked: {} bytes not returned, {charged} bytes still charged to tasks",
            heap_after as i64 - heap_before as i64
        );
    }
    if !clean || !checked {
        power_off(ExitStatus::TestFailed);
    }
    power_off(ExitStatus::Success)
}
