//! `machhost`: every served routine of `mach_host.defs` called over IPC through the stubs
//! mig-rs generates, in the spirit of GNU Mach's `tests/test-mach_host.c`: good arguments
//! get true answers (processor facts per slot, set counts, time that moves), and bad ones
//! get GNU Mach's code: the wrong port type (a task for a thread, the name port of a set for
//! its control port, the host for the privileged host), null and dead ports, short counts
//! and unknown flavors. Routines the kernel does not serve answer `MIG_BAD_ID`.
//!
//! Priorities as GNU Mach master (its `test-task.c`'s priority part): processor sets and
//! their ceiling at `BASEPRI_SYSTEM`, a first task and its threads at `BASEPRI_USER`,
//! children inheriting both; `task_max_priority` (2649) through the host port only
//! downwards, through the host-privileged one either way, its threads' maxima within
//! their set's; `task_priority` not above the task's maximum; `thread_assign` never
//! raising a thread's maximum.

#![no_std]
#![no_main]

extern crate alloc;

use alloc::vec::Vec;
use armach_tests::Checks;
use armach_tests::host::{host_priv, lend, processors};
use core::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use libmach::abi::info::{TASK_BASIC_INFO, THREAD_SCHED_INFO, TaskBasicInfo, ThreadSchedInfo};
use libmach::ipc::{self, SendRight};
use libmach::mig::{mach, mach_host};
use libmach::{Args, KernReturn, PortName, thread};

libmach::main!(main);

const HOST_BASIC_INFO: i32 = 1;
const PROCESSOR_BASIC_INFO: i32 = 1;
const PROCESSOR_SET_BASIC_INFO: i32 = 1;
const PROCESSOR_SET_SCHED_INFO: i32 = 2;
const CPU_TYPE_ARM64: i32 = 22;
const POLICY_TIMESHARE: i32 = 1;
const BASEPRI_USER: i32 = 25;
const BASEPRI_SYSTEM: i32 = 6;
const VM_PROT_READ: i32 = 1;

const INVAL: KernReturn = KernReturn::InvalidArgument;
const DEAD: KernReturn = KernReturn::SendInvalidDest;

static STOP: AtomicBool = AtomicBool::new(false);
static OTHER: AtomicU32 = AtomicU32::new(0);

fn main(args: &Args) -> i32 {
    let mut c = Checks::new("machhost");
    let mut t = ipc::transport();
    let host = ipc::host_self();
    let task = ipc::task_self();
    let me = ipc::thread_self();
    let Some(hp) = host_priv(args) else {
        c.check(
            false,
            "argv[1] is the host-privileged port",
            format_args!("{:?}", args.str(1)),
        );
        return c.finish();
    };
    let null = lend(PortName::NULL);
    task_priorities(&mut c, &hp);

    // --- The host: version, info, time. ---
    let version = mach_host::host_get_kernel_version(&mut t, &host);
    c.check(
        version.as_ref().is_ok_and(|v| {
            v.kernel_version
                .to_str()
                .is_some_and(|s| s.starts_with("armach "))
        }),
        "host_get_kernel_version",
        format_args!("{:?}", version.as_ref().map(|v| v.kernel_version.to_str())),
    );
    let mut info = [0i32; 6];
    let basic = mach_host::host_info(&mut t, &host, HOST_BASIC_INFO, &mut info);
    c.check_eq(
        "host_info(HOST_BASIC_INFO)",
        basic.map(|o| o.host_info_out_count),
        Ok(6),
    );
    let max_cpus = info[0] as usize;
    let up1 = mach_host::host_get_uptime64(&mut t, &host).map(|o| o.uptime);
    let time = mach_host::host_get_time(&mut t, &host).map(|o| o.current_time);
    let time64 = mach_host::host_get_time64(&mut t, &host).map(|o| o.current_time);
    armach_tests::sleep_ms(20);
    let time64b = mach_host::host_get_time64(&mut t, &host).map(|o| o.current_time);
    let ns = |v: [i64; 2]| v[0] as i128 * 1_000_000_000 + v[1] as i128;
    c.check(
        matches!((time, time64), (Ok(a), Ok(b)) if a[1] < 1_000_000 && b[1] < 1_000_000_000
            && (b[0] - a[0]) <= 1 && b[0] >= a[0]),
        "host_get_time (s, us) and host_get_time64 (s, ns) agree",
        format_args!("{time:?} {time64:?}"),
    );
    c.check(
        matches!((up1, time64, time64b), (Ok(u), Ok(a), Ok(b))
            if ns(b) - ns(a) >= 20_000_000 && ns(a) >= ns(u)),
        "host time moves (20 ms apart) and counts at least the uptime",
        format_args!("{up1:?} {time64:?} {time64b:?}"),
    );
    c.check_eq(
        "host_get_time on a task port",
        mach_host::host_get_time(&mut t, &task).err(),
        Some(KernReturn::InvalidHost),
    );
    c.check_eq(
        "host_get_time64 on a null port",
        mach_host::host_get_time64(&mut t, &null).err(),
        Some(DEAD),
    );
    c.check_eq(
        "host_reboot on the unprivileged host port",
        mach_host::host_reboot(&mut t, &host, 0),
        Err(KernReturn::InvalidHost),
    );
    c.check_eq(
        "host_reboot on a task port",
        mach_host::host_reboot(&mut t, &task, 0),
        Err(KernReturn::InvalidHost),
    );

    // --- Processors. ---
    c.check_eq(
        "host_processors on the unprivileged host port",
        mach_host::host_processors(&mut t, &host).err(),
        Some(INVAL),
    );
    let cpus = match processors(&mut t, &hp) {
        Ok(v) => v,
        Err(kr) => {
            c.check(false, "host_processors", format_args!("{kr}"));
            return c.finish();
        }
    };
    c.check_eq("host_processors: one per CPU", cpus.len(), max_cpus);
    for (slot, p) in cpus.iter().enumerate() {
        let mut pi = [0i32; 5];
        let r = mach_host::processor_info(&mut t, p, PROCESSOR_BASIC_INFO, &mut pi);
        c.check_eq(
            "processor_info(PROCESSOR_BASIC_INFO): count and host",
            r.as_ref()
                .map(|o| (o.processor_info_out_count, o.host.name() == host.name())),
            Ok((5, true)),
        );
        c.check_eq(
            "processor_info: cpu_type, running, slot_num, is_master",
            (pi[0], pi[2], pi[3], pi[4]),
            (CPU_TYPE_ARM64, 1, slot as i32, i32::from(slot == 0)),
        );
    }
    let p0 = &cpus[0];
    let mut pi = [0i32; 8];
    c.check_eq(
        "processor_info with a short count",
        mach_host::processor_info(&mut t, p0, PROCESSOR_BASIC_INFO, &mut pi[..4]).err(),
        Some(KernReturn::Failure),
    );
    c.check_eq(
        "processor_info with an unknown flavor",
        mach_host::processor_info(&mut t, p0, 2, &mut pi).err(),
        Some(KernReturn::Failure),
    );
    c.check_eq(
        "processor_info on the host port",
        mach_host::processor_info(&mut t, &host, PROCESSOR_BASIC_INFO, &mut pi).err(),
        Some(INVAL),
    );
    c.check_eq(
        "processor_info on a null port",
        mach_host::processor_info(&mut t, &null, PROCESSOR_BASIC_INFO, &mut pi).err(),
        Some(DEAD),
    );
    for p in [p0, cpus.last().unwrap_or(p0)] {
        c.check_eq(
            "processor_start (already running)",
            mach_host::processor_start(&mut t, p),
            Err(KernReturn::Failure),
        );
        c.check_eq(
            "processor_exit (processors stay on line)",
            mach_host::processor_exit(&mut t, p),
            Err(KernReturn::Failure),
        );
        c.check_eq(
            "processor_control (no control on this machine)",
            mach_host::processor_control(&mut t, p, &[0, 1]),
            Err(KernReturn::Failure),
        );
    }
    c.check_eq(
        "processor_start on a task port",
        mach_host::processor_start(&mut t, &task),
        Err(INVAL),
    );

    // --- Sets. ---
    let default = match mach_host::processor_set_default(&mut t, &host) {
        Ok(o) => o.default_set,
        Err(kr) => {
            c.check(false, "processor_set_default", format_args!("{kr}"));
            return c.finish();
        }
    };
    c.check_eq(
        "processor_set_default on a processor port",
        mach_host::processor_set_default(&mut t, p0).err(),
        Some(INVAL),
    );
    let default_control = match mach_host::host_processor_set_priv(&mut t, &hp, &default) {
        Ok(o) => o.set,
        Err(kr) => {
            c.check(
                false,
                "host_processor_set_priv(default)",
                format_args!("{kr}"),
            );
            return c.finish();
        }
    };
    c.check(
        default_control.name() != default.name(),
        "the default set's control port is not its name port",
        format_args!("{:?} {:?}", default_control.name(), default.name()),
    );
    c.check_eq(
        "host_processor_set_priv on the unprivileged host port",
        mach_host::host_processor_set_priv(&mut t, &host, &default).err(),
        Some(INVAL),
    );
    c.check_eq(
        "host_processor_set_priv of a processor port",
        mach_host::host_processor_set_priv(&mut t, &hp, p0).err(),
        Some(INVAL),
    );
    match mach_host::host_processor_sets(&mut t, &host) {
        Ok(out) => {
            let names: Vec<PortName> = out.processor_sets.names().collect();
            c.check(
                names.contains(&default.name()) && !names.contains(&default_control.name()),
                "host_processor_sets lists the default set's name port",
                format_args!("{names:?}"),
            );
        }
        Err(kr) => {
            c.check(false, "host_processor_sets", format_args!("{kr}"));
        }
    }
    let mut si = [0i32; 5];
    let r = mach_host::processor_set_info(&mut t, &default, PROCESSOR_SET_BASIC_INFO, &mut si);
    c.check_eq(
        "processor_set_info(BASIC) on the name port",
        r.map(|o| o.info_out_count),
        Ok(5),
    );
    c.check(
        si[0] as usize == max_cpus && si[1] >= 1 && si[2] >= 1,
        "the default set holds every processor, this task, its thread",
        format_args!("{si:?}"),
    );
    let r =
        mach_host::processor_set_info(&mut t, &default_control, PROCESSOR_SET_SCHED_INFO, &mut si);
    c.check_eq(
        "processor_set_info(SCHED) on the control port",
        r.map(|o| o.info_out_count).ok().map(|n| (n, si[0], si[1])),
        Some((2, POLICY_TIMESHARE, BASEPRI_SYSTEM)),
    );
    c.check_eq(
        "processor_set_info(BASIC) with a short count",
        mach_host::processor_set_info(&mut t, &default, PROCESSOR_SET_BASIC_INFO, &mut si[..4])
            .err(),
        Some(KernReturn::Failure),
    );
    c.check_eq(
        "processor_set_info(SCHED) with a short count",
        mach_host::processor_set_info(&mut t, &default, PROCESSOR_SET_SCHED_INFO, &mut si[..1])
            .err(),
        Some(KernReturn::Failure),
    );
    c.check_eq(
        "processor_set_info with an unknown flavor",
        mach_host::processor_set_info(&mut t, &default, 3, &mut si).err(),
        Some(INVAL),
    );
    c.check_eq(
        "processor_set_info on the host port",
        mach_host::processor_set_info(&mut t, &host, PROCESSOR_SET_BASIC_INFO, &mut si).err(),
        Some(INVAL),
    );
    match mach_host::processor_set_processors(&mut t, &default) {
        Ok(out) => {
            let names: Vec<PortName> = out.processors_list.names().collect();
            let want: Vec<PortName> = cpus.iter().map(|p| p.name()).collect();
            c.check_eq("processor_set_processors(default)", names, want);
        }
        Err(kr) => {
            c.check(false, "processor_set_processors", format_args!("{kr}"));
        }
    }
    match mach_host::processor_set_tasks(&mut t, &default_control) {
        Ok(out) => {
            let names: Vec<PortName> = out.task_list.names().collect();
            c.check(
                names.contains(&task.name()),
                "processor_set_tasks(default) lists this task's port",
                format_args!("{names:?} (task {:?})", task.name()),
            );
        }
        Err(kr) => {
            c.check(false, "processor_set_tasks", format_args!("{kr}"));
        }
    }
    match mach_host::processor_set_threads(&mut t, &default_control) {
        Ok(out) => {
            let names: Vec<PortName> = out.thread_list.names().collect();
            c.check(
                names.contains(&me.name()),
                "processor_set_threads(default) lists this thread's port",
                format_args!("{names:?} (thread {:?})", me.name()),
            );
        }
        Err(kr) => {
            c.check(false, "processor_set_threads", format_args!("{kr}"));
        }
    }
    c.check_eq(
        "processor_set_tasks on the name port",
        mach_host::processor_set_tasks(&mut t, &default).err(),
        Some(INVAL),
    );
    c.check_eq(
        "processor_set_threads on the name port",
        mach_host::processor_set_threads(&mut t, &default).err(),
        Some(INVAL),
    );
    c.check_eq(
        "processor_set_create on the unprivileged host port",
        mach_host::processor_set_create(&mut t, &host).err(),
        Some(INVAL),
    );
    c.check_eq(
        "processor_set_destroy(default)",
        mach_host::processor_set_destroy(&mut t, &default_control),
        Err(INVAL),
    );
    let (set, name) = match mach_host::processor_set_create(&mut t, &hp) {
        Ok(o) => (o.new_set, o.new_name),
        Err(kr) => {
            c.check(false, "processor_set_create", format_args!("{kr}"));
            return c.finish();
        }
    };
    c.check_eq(
        "processor_set_max_priority on the name port",
        mach_host::processor_set_max_priority(&mut t, &name, 30, false),
        Err(INVAL),
    );
    c.check_eq(
        "processor_set_max_priority(70)",
        mach_host::processor_set_max_priority(&mut t, &set, 70, false),
        Err(INVAL),
    );
    c.check_eq(
        "processor_set_max_priority(30)",
        mach_host::processor_set_max_priority(&mut t, &set, 30, false),
        Ok(()),
    );
    let r = mach_host::processor_set_info(&mut t, &name, PROCESSOR_SET_SCHED_INFO, &mut si);
    c.check_eq(
        "processor_set_info(SCHED) shows the new maximum",
        r.ok().map(|_| si[1]),
        Some(30),
    );

    // --- Assignment. ---
    c.check_eq(
        "processor_assign(boot processor)",
        mach_host::processor_assign(&mut t, p0, &set, false),
        Err(INVAL),
    );
    c.check_eq(
        "processor_get_assignment on the host port",
        mach_host::processor_get_assignment(&mut t, &host).err(),
        Some(INVAL),
    );
    if cpus.len() >= 2 {
        let last = &cpus[cpus.len() - 1];
        c.check_eq(
            "processor_assign with the set's name port",
            mach_host::processor_assign(&mut t, last, &name, false),
            Err(INVAL),
        );
        c.check_eq(
            "processor_assign(last, set)",
            mach_host::processor_assign(&mut t, last, &set, true),
            Ok(()),
        );
        c.check_eq(
            "processor_get_assignment(last)",
            mach_host::processor_get_assignment(&mut t, last).map(|o| o.assigned_set.name()),
            Ok(name.name()),
        );
        c.check_eq(
            "processor_assign(last, default)",
            mach_host::processor_assign(&mut t, last, &default_control, false),
            Ok(()),
        );
    }
    c.check_eq(
        "thread_get_assignment(self)",
        mach_host::thread_get_assignment(&mut t, &me).map(|o| o.assigned_set.name()),
        Ok(default.name()),
    );
    c.check_eq(
        "thread_get_assignment on the task port",
        mach_host::thread_get_assignment(&mut t, &task).err(),
        Some(INVAL),
    );
    c.check_eq(
        "task_get_assignment on a thread port",
        mach_host::task_get_assignment(&mut t, &me).err(),
        Some(INVAL),
    );
    c.check_eq(
        "thread_assign on the task port",
        mach_host::thread_assign(&mut t, &task, &set),
        Err(INVAL),
    );
    c.check_eq(
        "task_assign on a thread port",
        mach_host::task_assign(&mut t, &me, &set, false),
        Err(INVAL),
    );
    c.check_eq(
        "task_assign with the set's name port",
        mach_host::task_assign(&mut t, &task, &name, false),
        Err(INVAL),
    );
    c.check_eq(
        "task_assign(self, set)",
        mach_host::task_assign(&mut t, &task, &set, false),
        Ok(()),
    );
    c.check_eq(
        "task_get_assignment(self)",
        mach_host::task_get_assignment(&mut t, &task).map(|o| o.assigned_set.name()),
        Ok(name.name()),
    );
    c.check_eq(
        "task_assign_default(self)",
        mach_host::task_assign_default(&mut t, &task, false),
        Ok(()),
    );
    c.check_eq(
        "thread_assign_default(self)",
        mach_host::thread_assign_default(&mut t, &me),
        Ok(()),
    );

    // --- Priorities. ---
    c.check_eq(
        "thread_priority(-1)",
        mach_host::thread_priority(&mut t, &me, -1, false),
        Err(INVAL),
    );
    c.check_eq(
        "thread_priority(65)",
        mach_host::thread_priority(&mut t, &me, 65, false),
        Err(INVAL),
    );
    c.check_eq(
        "thread_priority above the thread's maximum",
        mach_host::thread_priority(&mut t, &me, 10, false),
        Err(KernReturn::Failure),
    );
    c.check_eq(
        "thread_priority(26, set max)",
        mach_host::thread_priority(&mut t, &me, 26, true),
        Ok(()),
    );
    c.check_eq(
        "thread_priority(25) above the new maximum",
        mach_host::thread_priority(&mut t, &me, 25, false),
        Err(KernReturn::Failure),
    );
    c.check_eq(
        "thread_priority on the task port",
        mach_host::thread_priority(&mut t, &task, 30, false),
        Err(INVAL),
    );
    c.check_eq(
        "thread_max_priority with a name port",
        mach_host::thread_max_priority(&mut t, &me, &default, 27),
        Err(INVAL),
    );
    c.check_eq(
        "thread_max_priority with another set",
        mach_host::thread_max_priority(&mut t, &me, &set, 27),
        Err(KernReturn::Failure),
    );
    c.check_eq(
        "thread_max_priority(70)",
        mach_host::thread_max_priority(&mut t, &me, &default_control, 70),
        Err(INVAL),
    );
    c.check_eq(
        "thread_max_priority(27)",
        mach_host::thread_max_priority(&mut t, &me, &default_control, 27),
        Ok(()),
    );
    c.check_eq(
        "task_priority(99)",
        mach_host::task_priority(&mut t, &task, 99, false),
        Err(INVAL),
    );
    c.check_eq(
        "task_priority on a thread port",
        mach_host::task_priority(&mut t, &me, 30, false),
        Err(INVAL),
    );
    c.check_eq(
        "task_priority(26, change threads) above a thread's maximum (27)",
        mach_host::task_priority(&mut t, &task, 26, true),
        Err(KernReturn::Failure),
    );
    c.check_eq(
        "task_priority(28, change threads)",
        mach_host::task_priority(&mut t, &task, 28, true),
        Ok(()),
    );
    c.check_eq(
        "thread_depress_abort(self)",
        mach_host::thread_depress_abort(&mut t, &me),
        Ok(()),
    );
    c.check_eq(
        "thread_depress_abort on the task port",
        mach_host::thread_depress_abort(&mut t, &task),
        Err(INVAL),
    );
    c.check_eq(
        "thread_depress_abort on a null port",
        mach_host::thread_depress_abort(&mut t, &null),
        Err(DEAD),
    );

    // --- Wiring. ---
    const MIB: u64 = 1 << 20;
    let region = libmach::traps::vm_allocate(libmach::traps::mach_task_self(), 0, MIB, true);
    c.check(
        region.is_ok(),
        "vm_allocate 1 MiB to wire",
        format_args!("{region:?}"),
    );
    let page = region.unwrap_or(0);
    c.check_eq(
        "vm_wire(host, task, a page, read)",
        mach_host::vm_wire(&mut t, &host, &task, page, 4096, VM_PROT_READ),
        Ok(()),
    );
    c.check_eq(
        "vm_wire with a bad protection",
        mach_host::vm_wire(&mut t, &host, &task, page, 4096, 8),
        Err(INVAL),
    );
    c.check_eq(
        "vm_wire of 9 MiB without privilege (GNU Mach's limit: 8 MiB wired)",
        mach_host::vm_wire(&mut t, &host, &task, page, 9 * MIB, VM_PROT_READ),
        Err(KernReturn::NoAccess),
    );
    c.check_eq(
        "vm_wire of 1 MiB with privilege",
        mach_host::vm_wire(&mut t, &hp, &task, page, 1 << 20, VM_PROT_READ),
        Ok(()),
    );
    c.check_eq(
        "vm_wire past the region (a hole)",
        mach_host::vm_wire(&mut t, &hp, &task, page, 2 * MIB, VM_PROT_READ),
        Err(KernReturn::NoSpace),
    );
    // SAFETY: the region was allocated above and nothing refers to it.
    let _ = unsafe { libmach::traps::vm_deallocate(libmach::traps::mach_task_self(), page, MIB) };
    c.check_eq(
        "vm_wire of memory no longer allocated",
        mach_host::vm_wire(&mut t, &hp, &task, page, 4096, VM_PROT_READ),
        Err(KernReturn::NoSpace),
    );
    c.check_eq(
        "vm_wire with no host",
        mach_host::vm_wire(&mut t, &task, &task, page, 4096, VM_PROT_READ),
        Err(KernReturn::InvalidHost),
    );
    c.check_eq(
        "vm_wire of a map that is no task",
        mach_host::vm_wire(&mut t, &host, &me, page, 4096, VM_PROT_READ),
        Err(KernReturn::InvalidTask),
    );
    let other = thread::spawn(|| {
        OTHER.store(libmach::traps::mach_thread_self().0, Ordering::Release);
        while !STOP.load(Ordering::Acquire) {
            armach_tests::sleep_ms(5);
        }
    });
    let started = armach_tests::poll_sleeping(2000, || OTHER.load(Ordering::Acquire) != 0);
    c.check(started, "a second thread runs", format_args!(""));
    c.check_eq(
        "thread_wire(host_priv, self)",
        mach_host::thread_wire(&mut t, &hp, &me, true),
        Ok(()),
    );
    c.check_eq(
        "thread_wire of another thread",
        mach_host::thread_wire(
            &mut t,
            &hp,
            &lend(PortName(OTHER.load(Ordering::Acquire))),
            true,
        ),
        Err(INVAL),
    );
    c.check_eq(
        "thread_wire on the unprivileged host port",
        mach_host::thread_wire(&mut t, &host, &me, true),
        Err(KernReturn::InvalidHost),
    );
    // A set's new maximum with change_threads lowers its threads' maxima.
    let other_port = lend(PortName(OTHER.load(Ordering::Acquire)));
    c.check_eq(
        "thread_assign(other thread, set)",
        mach_host::thread_assign(&mut t, &other_port, &set),
        Ok(()),
    );
    c.check_eq(
        "processor_set_max_priority(40, change threads)",
        mach_host::processor_set_max_priority(&mut t, &set, 40, true),
        Ok(()),
    );
    c.check_eq(
        "thread_priority(35) above the thread's lowered maximum",
        mach_host::thread_priority(&mut t, &other_port, 35, false),
        Err(KernReturn::Failure),
    );
    c.check_eq(
        "thread_priority(45) within it",
        mach_host::thread_priority(&mut t, &other_port, 45, false),
        Ok(()),
    );
    c.check_eq(
        "thread_assign_default(other thread)",
        mach_host::thread_assign_default(&mut t, &other_port),
        Ok(()),
    );
    // Back in the default set its maximum stays 40 (GNU Mach's `thread_assign` only ever
    // lowers one); thread_max_priority with the default set's control port raises it, so
    // that it may run at BASEPRI_USER (above this thread's 28, so that it gets the CPU to
    // finish on one CPU).
    c.check_eq(
        "thread_priority(BASEPRI_USER) in the default set, above its kept maximum",
        mach_host::thread_priority(&mut t, &other_port, BASEPRI_USER, false),
        Err(KernReturn::Failure),
    );
    c.check_eq(
        "thread_max_priority(BASEPRI_USER) with the default set's control port",
        mach_host::thread_max_priority(&mut t, &other_port, &default_control, BASEPRI_USER),
        Ok(()),
    );
    c.check_eq(
        "thread_priority(BASEPRI_USER) in the default set",
        mach_host::thread_priority(&mut t, &other_port, BASEPRI_USER, false),
        Ok(()),
    );
    STOP.store(true, Ordering::Release);
    if let Ok(h) = other {
        h.join();
    }
    drop(SendRight::from_name(PortName(
        OTHER.load(Ordering::Acquire),
    )));

    // --- Not served. ---
    c.check_eq(
        "thread_policy (not served)",
        mach_host::thread_policy(&mut t, &me, 1, 0),
        Err(KernReturn::MigBadId),
    );
    c.check_eq(
        "host_set_time (not served)",
        mach_host::host_set_time(&mut t, &hp, &[0, 0]),
        Err(KernReturn::MigBadId),
    );

    // --- A destroyed set: its ports are dead. ---
    c.check_eq(
        "processor_set_destroy with the name port",
        mach_host::processor_set_destroy(&mut t, &name),
        Err(INVAL),
    );
    c.check_eq(
        "processor_set_destroy(set)",
        mach_host::processor_set_destroy(&mut t, &set),
        Ok(()),
    );
    c.check_eq(
        "processor_set_destroy on the dead control port",
        mach_host::processor_set_destroy(&mut t, &set),
        Err(DEAD),
    );
    c.check_eq(
        "processor_set_info on the dead name port",
        mach_host::processor_set_info(&mut t, &name, PROCESSOR_SET_BASIC_INFO, &mut si).err(),
        Some(DEAD),
    );
    c.check_eq(
        "thread_assign to a dead set",
        mach_host::thread_assign(&mut t, &me, &set),
        Err(INVAL),
    );
    drop((set, name, default_control, default, cpus));
    c.finish()
}

/// A thread's `THREAD_SCHED_INFO` (base, max), or the error.
fn sched_of(thread: &SendRight) -> Result<(i32, i32), KernReturn> {
    let mut w = [0i32; 8];
    mach::thread_info(&mut ipc::transport(), thread, THREAD_SCHED_INFO, &mut w)?;
    let i = ThreadSchedInfo::from_words(&w).ok_or(KernReturn::Failure)?;
    Ok((i.base_priority, i.max_priority))
}

/// A task's `TASK_BASIC_INFO.base_priority`, or the error.
fn task_priority_of(task: &SendRight) -> Result<i32, KernReturn> {
    let mut w = [0i32; 32];
    mach::task_info(&mut ipc::transport(), task, TASK_BASIC_INFO, &mut w)?;
    Ok(TaskBasicInfo::from_words(&w)
        .ok_or(KernReturn::Failure)?
        .base_priority)
}

/// A new thread in `task` and its `(base, max)`. The thread is never started; it is
/// left to the task's `task_terminate` (armach ends a task with its last thread), except
/// in this task (`mine`), where it is terminated at once.
fn new_thread_sched(task: &SendRight, mine: bool) -> Result<(i32, i32), KernReturn> {
    let th = mach::thread_create(&mut ipc::transport(), task)?.child_thread;
    let r = sched_of(&th);
    if mine {
        let _ = mach::thread_terminate(&mut ipc::transport(), &th);
    }
    r
}

/// GNU Mach master's priority defaults and `task_max_priority`, in children of this task
/// (see the module comment). Runs first, while this task has its first priorities.
fn task_priorities(c: &mut Checks, hp: &SendRight) {
    let mut t = ipc::transport();
    let host = ipc::host_self();
    let me = ipc::task_self();
    c.check_eq(
        "this task's priority: BASEPRI_USER",
        task_priority_of(&me),
        Ok(BASEPRI_USER),
    );
    c.check_eq(
        "a new thread here: BASEPRI_USER, maximum BASEPRI_USER",
        new_thread_sched(&me, true),
        Ok((BASEPRI_USER, BASEPRI_USER)),
    );
    let child = || mach::task_create(&mut ipc::transport(), &me, false).map(|o| o.child_task);
    let end = |task: SendRight| {
        let _ = mach::task_terminate(&mut ipc::transport(), &task);
    };
    // Lowered through the host port: its threads and its children follow.
    {
        let Ok(a) = child() else {
            c.check(false, "task_create", format_args!("refused"));
            return;
        };
        c.check_eq(
            "task_max_priority(host, child, BASEPRI_USER + 5, set priority)",
            mach_host::task_max_priority(&mut t, &host, &a, BASEPRI_USER + 5, true, false),
            Ok(()),
        );
        c.check_eq(
            "its new thread: BASEPRI_USER + 5 both",
            new_thread_sched(&a, false),
            Ok((BASEPRI_USER + 5, BASEPRI_USER + 5)),
        );
        match mach::task_create(&mut t, &a, false).map(|o| o.child_task) {
            Ok(grandchild) => {
                c.check_eq(
                    "its child inherits the priority",
                    task_priority_of(&grandchild),
                    Ok(BASEPRI_USER + 5),
                );
                c.check_eq(
                    "and the maximum (its new thread)",
                    new_thread_sched(&grandchild, false),
                    Ok((BASEPRI_USER + 5, BASEPRI_USER + 5)),
                );
                end(grandchild);
            }
            Err(e) => {
                c.check(false, "task_create of a grandchild", format_args!("{e:?}"));
            }
        }
        end(a);
    }
    // Raising needs the privileged port; the priority stays under the maximum.
    {
        let Ok(b) = child() else {
            c.check(false, "task_create", format_args!("refused"));
            return;
        };
        c.check_eq(
            "task_priority(child, BASEPRI_USER - 5) above its maximum",
            mach_host::task_priority(&mut t, &b, BASEPRI_USER - 5, false),
            Err(KernReturn::NoAccess),
        );
        c.check_eq(
            "task_max_priority(host, child, BASEPRI_USER - 10) upwards",
            mach_host::task_max_priority(&mut t, &host, &b, BASEPRI_USER - 10, true, false),
            Err(KernReturn::NoAccess),
        );
        c.check_eq(
            "task_max_priority on a task port instead of a host's",
            mach_host::task_max_priority(&mut t, &me, &b, BASEPRI_USER, false, false),
            Err(INVAL),
        );
        c.check_eq(
            "task_max_priority(65)",
            mach_host::task_max_priority(&mut t, hp, &b, 65, false, false),
            Err(INVAL),
        );
        c.check_eq(
            "task_max_priority(host-priv, child, BASEPRI_USER - 10)",
            mach_host::task_max_priority(&mut t, hp, &b, BASEPRI_USER - 10, false, false),
            Ok(()),
        );
        c.check_eq(
            "task_priority(child, BASEPRI_USER - 5) within it now",
            mach_host::task_priority(&mut t, &b, BASEPRI_USER - 5, false),
            Ok(()),
        );
        c.check_eq(
            "its new thread: priority BASEPRI_USER - 5, maximum BASEPRI_USER - 10",
            new_thread_sched(&b, false),
            Ok((BASEPRI_USER - 5, BASEPRI_USER - 10)),
        );
        // Above the set's maximum: its threads stop at the set's, BASEPRI_SYSTEM.
        c.check_eq(
            "task_max_priority(host-priv, child, BASEPRI_SYSTEM - 1, set priority)",
            mach_host::task_max_priority(&mut t, hp, &b, BASEPRI_SYSTEM - 1, true, false),
            Ok(()),
        );
        c.check_eq(
            "its new thread: the set's ceiling, BASEPRI_SYSTEM both",
            new_thread_sched(&b, false),
            Ok((BASEPRI_SYSTEM, BASEPRI_SYSTEM)),
        );
        end(b);
    }
    // change_threads: the task's threads get the new values.
    {
        let Ok(d) = child() else {
            c.check(false, "task_create", format_args!("refused"));
            return;
        };
        let threads = (
            mach::thread_create(&mut t, &d).map(|o| o.child_thread),
            mach::thread_create(&mut t, &d).map(|o| o.child_thread),
        );
        if let (Ok(t1), Ok(t2)) = threads {
            c.check_eq(
                "task_priority(child, BASEPRI_USER + 5, change threads)",
                mach_host::task_priority(&mut t, &d, BASEPRI_USER + 5, true),
                Ok(()),
            );
            c.check_eq(
                "its threads: BASEPRI_USER + 5, maximum BASEPRI_USER",
                (sched_of(&t1), sched_of(&t2)),
                (
                    Ok((BASEPRI_USER + 5, BASEPRI_USER)),
                    Ok((BASEPRI_USER + 5, BASEPRI_USER)),
                ),
            );
            c.check_eq(
                "task_max_priority(host-priv, child, BASEPRI_USER - 5, set, change threads)",
                mach_host::task_max_priority(&mut t, hp, &d, BASEPRI_USER - 5, true, true),
                Ok(()),
            );
            c.check_eq(
                "its threads: BASEPRI_USER - 5 both",
                (sched_of(&t1), sched_of(&t2)),
                (
                    Ok((BASEPRI_USER - 5, BASEPRI_USER - 5)),
                    Ok((BASEPRI_USER - 5, BASEPRI_USER - 5)),
                ),
            );
        } else {
            c.check(
                false,
                "thread_create in a child",
                format_args!("{threads:?}"),
            );
        }
        end(d);
    }
}
