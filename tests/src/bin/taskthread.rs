//! `taskthread`: the task, thread and VM routines of `mach.defs` served by the kernel over
//! `mach_msg` (in the spirit of GNU Mach's `tests/test-task.c`, `test-threads.c` and
//! `test-thread-state.c`), each with good and bad arguments: wrong port types, null and dead
//! ports, short counts, unknown flavors.
//!
//! - `thread_create` makes a suspended thread; `thread_get_state`/`thread_set_state` read
//!   and write its registers before `thread_resume` starts it where the state says.
//! - `thread_suspend` stops a spinning thread (its counter stays put, its state reads the
//!   same twice); `thread_resume` lets it go on; `thread_terminate` ends it, and once it
//!   returns `task_threads` no longer lists the thread.
//! - `thread_abort` of a thread blocked in `mach_msg` makes the call return
//!   `MACH_RCV_INTERRUPTED` (or `MACH_SEND_INTERRUPTED` for a send to a full queue); a
//!   value written into `x0` while the aborted thread is suspended becomes the result.
//! - `thread_info`: a thread that spins for 200 ms of wall time alone on its CPU reports
//!   about 200 ms of user time, one that sleeps as long almost none; `last_processor` is a
//!   CPU that is online.
//! - `task_set_special_port`/`task_get_special_port` of the bootstrap port,
//!   `task_create` (an empty task), `task_suspend`/`task_resume`/`task_terminate` of it,
//!   `task_info` (basic, events, thread times), `vm_statistics`,
//!   `vm_allocate`/`vm_deallocate`/`vm_protect`/`vm_inherit`/`vm_read`/`vm_write`/`vm_copy`/
//!   `vm_region` over IPC.

#![no_std]
#![no_main]

extern crate alloc;

use armach_tests::msg::{Msg, int_desc};
use armach_tests::{Checks, counter, counter_frequency};
use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use libmach::abi::info::{
    TASK_BASIC_INFO, TASK_EVENTS_INFO, TASK_THREAD_TIMES_INFO, TH_STATE_STOPPED, TH_STATE_WAITING,
    THREAD_BASIC_INFO, THREAD_SCHED_INFO, TaskBasicInfo, TaskEventsInfo, TaskThreadTimesInfo,
    ThreadBasicInfo,
};
use libmach::abi::message::{MACH_MSG_TYPE_COPY_SEND, MACH_MSG_TYPE_MAKE_SEND, option};
use libmach::abi::thread_state::{
    AARCH64_FLOAT_STATE, AARCH64_FLOAT_STATE_COUNT, AARCH64_THREAD_STATE,
    AARCH64_THREAD_STATE_COUNT, Aarch64ThreadState,
};
use libmach::ipc::{self, SendRight};
use libmach::mig::mach;
use libmach::{Args, KernReturn, PortName, kern, thread, traps};

libmach::main!(main);

const MS: u64 = 1_000_000;
/// `MACH_PORT_RIGHT_RECEIVE`.
const RIGHT_RECEIVE: libmach::abi::PortRight = libmach::abi::PortRight::Receive;
/// `VM_PROT_READ | VM_PROT_WRITE`, and a bit no protection has.
const VM_PROT_DEFAULT: i32 = 3;
const VM_PROT_BAD: i32 = 0x10;
/// `THREAD_KERNEL_PORT`, `THREAD_EXCEPTION_PORT`, `TASK_BOOTSTRAP_PORT`.
const THREAD_KERNEL_PORT: i32 = 1;
const THREAD_EXCEPTION_PORT: i32 = 3;
const TASK_BOOTSTRAP_PORT: i32 = 4;

fn t() -> ipc::Client<ipc::Trap> {
    ipc::transport()
}

/// A transport that only sends (no reply port, nothing received).
struct OneWay;

// SAFETY: it never hands a reply to a stub (every call fails after the send).
unsafe impl libmach::abi::mig::Transport for OneWay {
    type Space = ipc::TaskSpace;

    fn reply_port(&mut self) -> PortName {
        PortName::NULL
    }

    unsafe fn rpc(
        &mut self,
        msg: &mut [u8],
        send_size: usize,
        _: PortName,
        options: libmach::abi::mig::CallOptions,
    ) -> Result<(), KernReturn> {
        // SAFETY: the caller's guarantee (`Transport::rpc`).
        unsafe { self.send(msg, send_size, options) }?;
        Err(KernReturn::MigNoReply)
    }

    unsafe fn send(
        &mut self,
        msg: &mut [u8],
        send_size: usize,
        _: libmach::abi::mig::CallOptions,
    ) -> Result<(), KernReturn> {
        let size = u32::try_from(send_size).map_err(|_| KernReturn::SendMsgTooSmall)?;
        // SAFETY: `msg` holds `send_size` bytes of a simple request.
        unsafe {
            traps::mach_msg(
                msg.as_mut_ptr(),
                option::SEND_MSG,
                size,
                0,
                PortName::NULL,
                0,
                PortName::NULL,
            )
        }
        .result()
    }
}

fn basic(thread: &SendRight) -> Result<ThreadBasicInfo, KernReturn> {
    kern::thread_basic_info(thread)
}

fn main(_args: &Args) -> i32 {
    let mut c = Checks::new("taskthread");
    c.note(format_args!("{} CPUs online", libmach::cpu_count()));
    create_and_state(&mut c);
    bad_arguments(&mut c);
    suspend_and_resume(&mut c);
    abort_in_mach_msg(&mut c);
    set_state_of_aborted(&mut c);
    times(&mut c);
    task_routines(&mut c);
    vm_routines(&mut c);
    c.finish()
}

// --- thread_create, thread_get_state, thread_set_state, thread_resume -------------------

static STARTED_WITH: AtomicU64 = AtomicU64::new(0);

/// Where the hand-made thread starts: records its argument and ends itself.
extern "C" fn entry(arg: u64) -> ! {
    STARTED_WITH.store(arg, Ordering::SeqCst);
    // SAFETY: nothing refers to this thread's stack.
    unsafe { kern::thread_terminate_self() }
}

fn create_and_state(c: &mut Checks) {
    let task = ipc::task_self();
    let made = mach::thread_create(&mut t(), &task);
    let Ok(made) = made else {
        c.check(false, "thread_create", format_args!("{made:?}"));
        return;
    };
    let th = made.child_thread;
    let info = basic(&th);
    c.check(
        info.is_ok_and(|i| i.suspend_count == 1 && i.run_state == TH_STATE_STOPPED),
        "a new thread is suspended once and stopped",
        format_args!("{info:?}"),
    );
    // task_threads: this thread and the new one, under the names this task already has for
    // them (the list's rights merge into those names; they are released with the list, so
    // a name first made by the list would be gone after it).
    let me = traps::mach_thread_self();
    let listed = mach::task_threads(&mut t(), &task)
        .map(|o| o.thread_list.names().collect::<alloc::vec::Vec<_>>());
    c.check(
        listed
            .as_ref()
            .is_ok_and(|l| l.contains(&th.name()) && l.contains(&me)),
        "task_threads lists this thread and the new one",
        format_args!("{listed:?} (new {:?}, this {me:?})", th.name()),
    );
    let wrong = mach::task_threads(&mut t(), &ipc::host_self()).map(|_| ());
    c.check_eq(
        "task_threads on the host port",
        wrong,
        Err(KernReturn::InvalidArgument),
    );
    let mut words = [0u32; AARCH64_THREAD_STATE_COUNT as usize];
    let got = mach::thread_get_state(&mut t(), &th, AARCH64_THREAD_STATE as i32, &mut words);
    c.check(
        got.as_ref()
            .is_ok_and(|o| o.old_state_count == AARCH64_THREAD_STATE_COUNT)
            && words.iter().all(|&w| w == 0),
        "thread_get_state of a new thread: 70 words, all zero",
        format_args!("{got:?}"),
    );
    let mut fwords = [0u32; AARCH64_FLOAT_STATE_COUNT as usize];
    let got = mach::thread_get_state(&mut t(), &th, AARCH64_FLOAT_STATE as i32, &mut fwords);
    c.check_eq(
        "thread_get_state(AARCH64_FLOAT_STATE) count",
        got.map(|o| o.old_state_count),
        Ok(AARCH64_FLOAT_STATE_COUNT),
    );
    let mut list = [0u32; 2];
    let got = mach::thread_get_state(&mut t(), &th, 0, &mut list);
    c.check_eq(
        "thread_get_state(THREAD_STATE_FLAVOR_LIST)",
        got.map(|o| (o.old_state_count, list)),
        Ok((2, [AARCH64_THREAD_STATE, AARCH64_FLOAT_STATE])),
    );

    // A stack for it: its own region, freed once it is gone.
    let size = 16 * 4096;
    let stack = traps::vm_allocate(traps::mach_task_self(), 0, size, true).unwrap_or(0);
    let mut x = [0; 31];
    x[0] = 0xfeed_0042;
    let state = Aarch64ThreadState {
        x,
        pc: entry as extern "C" fn(u64) -> ! as usize as u64,
        sp: stack + size,
        ..Aarch64ThreadState::default()
    };
    let set = mach::thread_set_state(
        &mut t(),
        &th,
        AARCH64_THREAD_STATE as i32,
        &state.to_words(),
    );
    c.check_eq("thread_set_state of the suspended thread", set, Ok(()));
    let got = mach::thread_get_state(&mut t(), &th, AARCH64_THREAD_STATE as i32, &mut words);
    c.check(
        got.is_ok() && Aarch64ThreadState::from_words(&words) == Some(state),
        "thread_get_state reads back what was set",
        format_args!(
            "{:?}",
            Aarch64ThreadState::from_words(&words).map(|s| (s.pc, s.sp, s.x[0]))
        ),
    );
    // A state that asks for EL1: refused, nothing changed.
    let mut el1 = state;
    el1.cpsr = 0x5;
    c.check_eq(
        "thread_set_state with cpsr naming EL1",
        mach::thread_set_state(&mut t(), &th, AARCH64_THREAD_STATE as i32, &el1.to_words()),
        Err(KernReturn::InvalidArgument),
    );
    let notify = NotifyOnDeath::new(&th);
    c.check_eq(
        "thread_resume starts it",
        mach::thread_resume(&mut t(), &th),
        Ok(()),
    );
    let died = notify.map(|n| n.wait());
    c.check_eq(
        "it ran from the state set: x0 as given",
        (died, STARTED_WITH.load(Ordering::SeqCst)),
        (Some(()), 0xfeed_0042),
    );
    // Its port is dead now: calls on it do not reach the kernel's server.
    c.check_eq(
        "thread_info on the ended thread's (dead) name",
        basic(&th).err(),
        Some(KernReturn::SendInvalidDest),
    );
    // SAFETY: the thread is gone.
    let _ = unsafe { traps::vm_deallocate(traps::mach_task_self(), stack, size) };
}

/// A dead-name request on a thread's port, to wait for the thread's end.
struct NotifyOnDeath(libmach::ipc::ReceiveRight);

impl NotifyOnDeath {
    fn new(th: &SendRight) -> Option<Self> {
        let port = traps::mach_port_allocate(traps::mach_task_self(), RIGHT_RECEIVE).ok()?;
        let port = libmach::ipc::ReceiveRight::from_name(port);
        let r = libmach::mig::mach_port::mach_port_request_notification(
            &mut t(),
            &ipc::task_self(),
            th.name(),
            0o110,
            0,
            libmach::abi::mig::PortArg::MakeSendOnce(&port),
        );
        r.ok().map(|_| Self(port))
    }

    fn wait(self) {
        let mut m = Msg::new();
        let _ = armach_tests::msg::mach_msg(&mut m, option::RCV_MSG, 0, 128, self.0.name(), 0);
    }
}

fn bad_arguments(c: &mut Checks) {
    let task = ipc::task_self();
    let host = ipc::host_self();
    let me = SendRight::from_name(traps::mach_thread_self());
    let mut words = [0u32; 70];
    let mut info = [0i32; 32];

    // Wrong port types.
    c.check_eq(
        "thread_create on the host port",
        mach::thread_create(&mut t(), &host).err(),
        Some(KernReturn::InvalidArgument),
    );
    c.check_eq(
        "thread_info on the task port",
        mach::thread_info(&mut t(), &task, THREAD_BASIC_INFO, &mut info).err(),
        Some(KernReturn::InvalidArgument),
    );
    c.check_eq(
        "thread_suspend on the host port",
        mach::thread_suspend(&mut t(), &host).err(),
        Some(KernReturn::InvalidArgument),
    );
    c.check_eq(
        "task_info on a thread port",
        mach::task_info(&mut t(), &me, TASK_BASIC_INFO, &mut info).err(),
        Some(KernReturn::InvalidArgument),
    );
    // Null and bogus names: mach_msg refuses before any server sees them.
    let null = core::mem::ManuallyDrop::new(SendRight::from_name(PortName::NULL));
    c.check_eq(
        "thread_info on MACH_PORT_NULL",
        mach::thread_info(&mut t(), &null, THREAD_BASIC_INFO, &mut info).err(),
        Some(KernReturn::SendInvalidDest),
    );
    let bogus = core::mem::ManuallyDrop::new(SendRight::from_name(PortName(0x7777)));
    c.check_eq(
        "thread_resume on a name the task does not have",
        mach::thread_resume(&mut t(), &bogus).err(),
        Some(KernReturn::SendInvalidDest),
    );

    // Short counts and unknown flavors.
    c.check_eq(
        "thread_info(BASIC) with 19 words",
        mach::thread_info(&mut t(), &me, THREAD_BASIC_INFO, &mut info[..19]).err(),
        Some(KernReturn::InvalidArgument),
    );
    c.check_eq(
        "thread_info(BASIC) with the old count 20",
        mach::thread_info(&mut t(), &me, THREAD_BASIC_INFO, &mut info[..20])
            .map(|o| o.thread_info_out_count),
        Ok(20),
    );
    c.check_eq(
        "thread_info(BASIC) with 32 words",
        mach::thread_info(&mut t(), &me, THREAD_BASIC_INFO, &mut info)
            .map(|o| o.thread_info_out_count),
        Ok(32),
    );
    c.check_eq(
        "thread_info(SCHED) with the old count 7",
        mach::thread_info(&mut t(), &me, THREAD_SCHED_INFO, &mut info[..7])
            .map(|o| o.thread_info_out_count),
        Ok(7),
    );
    c.check_eq(
        "thread_info(SCHED) with 6 words",
        mach::thread_info(&mut t(), &me, THREAD_SCHED_INFO, &mut info[..6]).err(),
        Some(KernReturn::InvalidArgument),
    );
    c.check_eq(
        "thread_info with flavor 99",
        mach::thread_info(&mut t(), &me, 99, &mut info).err(),
        Some(KernReturn::InvalidArgument),
    );
    let sched = kern::with_thread_self(kern::thread_sched_info);
    c.check(
        sched.is_ok_and(|s| (s.last_processor as u32) < libmach::cpu_count()),
        "THREAD_SCHED_INFO.last_processor is an online CPU",
        format_args!("{sched:?}"),
    );

    // What a thread may not do to itself.
    c.check_eq(
        "thread_get_state of the caller itself",
        mach::thread_get_state(&mut t(), &me, AARCH64_THREAD_STATE as i32, &mut words).err(),
        Some(KernReturn::InvalidArgument),
    );
    c.check_eq(
        "thread_abort of the caller itself",
        mach::thread_abort(&mut t(), &me).err(),
        Some(KernReturn::InvalidArgument),
    );
    c.check_eq(
        "thread_resume of a thread not suspended",
        mach::thread_resume(&mut t(), &me).err(),
        Some(KernReturn::Failure),
    );

    // Special ports.
    let port = mach::thread_get_special_port(&mut t(), &me, THREAD_KERNEL_PORT);
    c.check_eq(
        "thread_get_special_port(THREAD_KERNEL_PORT) names the thread itself",
        port.as_ref().map(|p| p.special_port.name()).ok(),
        Some(me.name()),
    );
    drop(port);
    c.check_eq(
        "thread_get_special_port(2)",
        mach::thread_get_special_port(&mut t(), &me, 2).err(),
        Some(KernReturn::InvalidArgument),
    );
    // The thread's exception port: set to a port of ours, read back, cleared; the kernel
    // port is not replaceable.
    if let Ok(name) = traps::mach_port_allocate(traps::mach_task_self(), RIGHT_RECEIVE) {
        let _ = traps::mach_port_insert_right(
            traps::mach_task_self(),
            name,
            name,
            MACH_MSG_TYPE_MAKE_SEND,
        );
        let right = SendRight::from_name(name);
        c.check_eq(
            "thread_set_special_port(THREAD_EXCEPTION_PORT)",
            mach::thread_set_special_port(&mut t(), &me, THREAD_EXCEPTION_PORT, &right),
            Ok(()),
        );
        let got = mach::thread_get_special_port(&mut t(), &me, THREAD_EXCEPTION_PORT);
        c.check_eq(
            "thread_get_special_port(THREAD_EXCEPTION_PORT) gives it back",
            got.as_ref().map(|o| o.special_port.name()).ok(),
            Some(name),
        );
        drop(got);
        c.check_eq(
            "thread_set_special_port(THREAD_KERNEL_PORT)",
            mach::thread_set_special_port(&mut t(), &me, THREAD_KERNEL_PORT, &right).err(),
            Some(KernReturn::InvalidArgument),
        );
        c.check_eq(
            "thread_set_special_port(7)",
            mach::thread_set_special_port(&mut t(), &me, 7, &right).err(),
            Some(KernReturn::InvalidArgument),
        );
        let null = core::mem::ManuallyDrop::new(SendRight::from_name(PortName::NULL));
        c.check_eq(
            "thread_set_special_port(THREAD_EXCEPTION_PORT, null)",
            mach::thread_set_special_port(&mut t(), &me, THREAD_EXCEPTION_PORT, &null),
            Ok(()),
        );
        let got = mach::thread_get_special_port(&mut t(), &me, THREAD_EXCEPTION_PORT);
        c.check_eq(
            "the thread's exception port now reads null",
            got.as_ref().map(|o| o.special_port.name()).ok(),
            Some(PortName::NULL),
        );
        drop(got);
        // Only our own right is left: the kernel released the one it held.
        c.check_eq(
            "the kernel kept no send right after the slot was cleared",
            libmach::mig::mach_port::mach_port_get_refs(&mut t(), &ipc::task_self(), name, 0)
                .map(|r| r.refs),
            Ok(1),
        );
        drop(right);
        let _ = libmach::mig::mach_port::mach_port_destroy(&mut t(), &ipc::task_self(), name);
    }

    // State counts and flavors, on a suspended thread of ours.
    let Ok(made) = mach::thread_create(&mut t(), &task) else {
        c.check(false, "thread_create", format_args!("refused"));
        return;
    };
    let th = made.child_thread;
    c.check_eq(
        "thread_get_state(THREAD_STATE) with 69 words",
        mach::thread_get_state(&mut t(), &th, AARCH64_THREAD_STATE as i32, &mut words[..69]).err(),
        Some(KernReturn::InvalidArgument),
    );
    c.check_eq(
        "thread_get_state(FLOAT_STATE) with 70 words",
        mach::thread_get_state(&mut t(), &th, AARCH64_FLOAT_STATE as i32, &mut words).err(),
        Some(KernReturn::InvalidArgument),
    );
    c.check_eq(
        "thread_get_state with flavor 7",
        mach::thread_get_state(&mut t(), &th, 7, &mut words).err(),
        Some(KernReturn::InvalidArgument),
    );
    c.check_eq(
        "thread_set_state(THREAD_STATE) with 69 words",
        mach::thread_set_state(&mut t(), &th, AARCH64_THREAD_STATE as i32, &words[..69]).err(),
        Some(KernReturn::InvalidArgument),
    );
    c.check_eq(
        "thread_set_state with flavor 7",
        mach::thread_set_state(&mut t(), &th, 7, &words).err(),
        Some(KernReturn::InvalidArgument),
    );
    // A thread that never ran ends when terminated.
    let notify = NotifyOnDeath::new(&th);
    c.check_eq(
        "thread_terminate of a thread that never ran",
        mach::thread_terminate(&mut t(), &th),
        Ok(()),
    );
    c.check_eq("it is gone", notify.map(|n| n.wait()), Some(()));
}

// --- thread_suspend, thread_resume, thread_terminate ---------------------------------------

static SPINS: AtomicU64 = AtomicU64::new(0);
static STOP: AtomicU32 = AtomicU32::new(0);

fn suspend_and_resume(c: &mut Checks) {
    SPINS.store(0, Ordering::SeqCst);
    STOP.store(0, Ordering::SeqCst);
    let h = thread::spawn(|| {
        while STOP.load(Ordering::Relaxed) == 0 {
            SPINS.fetch_add(1, Ordering::Relaxed);
        }
    });
    let Ok(h) = h else {
        c.check(false, "spawn", format_args!("refused"));
        return;
    };
    armach_tests::poll_sleeping(5_000, || SPINS.load(Ordering::Relaxed) > 1000);
    c.check_eq(
        "thread_suspend",
        mach::thread_suspend(&mut t(), h.thread()),
        Ok(()),
    );
    let info = basic(h.thread());
    c.check(
        info.is_ok_and(|i| i.suspend_count == 1 && i.run_state == TH_STATE_STOPPED),
        "a suspended thread: suspend_count 1, stopped",
        format_args!("{info:?}"),
    );
    c.check_eq(
        "thread_suspend again",
        mach::thread_suspend(&mut t(), h.thread()),
        Ok(()),
    );
    let before = SPINS.load(Ordering::SeqCst);
    armach_tests::sleep_ms(50);
    let after = SPINS.load(Ordering::SeqCst);
    c.check_eq("a suspended thread makes no progress", after, before);
    let mut a = [0u32; 70];
    let mut b = [0u32; 70];
    let ra = mach::thread_get_state(&mut t(), h.thread(), 1, &mut a);
    armach_tests::sleep_ms(10);
    let rb = mach::thread_get_state(&mut t(), h.thread(), 1, &mut b);
    let pc = Aarch64ThreadState::from_words(&a).map_or(0, |s| s.pc);
    c.check(
        ra.is_ok() && rb.is_ok() && a == b && pc >= 0x40_0000,
        "its state reads the same twice, pc in the program",
        format_args!("pc {pc:#x}, same {}", a == b),
    );
    c.check_eq(
        "thread_resume",
        mach::thread_resume(&mut t(), h.thread()),
        Ok(()),
    );
    armach_tests::sleep_ms(20);
    c.check_eq(
        "still held by the second suspension",
        SPINS.load(Ordering::SeqCst),
        after,
    );
    c.check_eq(
        "thread_resume again",
        mach::thread_resume(&mut t(), h.thread()),
        Ok(()),
    );
    let moved = armach_tests::poll_sleeping(5_000, || SPINS.load(Ordering::Relaxed) > after);
    c.check(
        moved,
        "resumed, it spins again",
        format_args!("{}", SPINS.load(Ordering::SeqCst)),
    );
    c.check_eq(
        "a third thread_resume",
        mach::thread_resume(&mut t(), h.thread()).err(),
        Some(KernReturn::Failure),
    );
    STOP.store(1, Ordering::SeqCst);
    h.join();

    // thread_terminate of a suspended thread ends it.
    STOP.store(0, Ordering::SeqCst);
    let h = thread::spawn(|| {
        loop {
            SPINS.fetch_add(1, Ordering::Relaxed);
        }
    });
    if let Ok(h) = h {
        let _ = mach::thread_suspend(&mut t(), h.thread());
        // The closure never returns: wait for the death, not for a result.
        let notify = NotifyOnDeath::new(h.thread());
        c.check_eq(
            "thread_terminate of a suspended thread",
            mach::thread_terminate(&mut t(), h.thread()),
            Ok(()),
        );
        c.check_eq("it is gone", notify.map(|n| n.wait()), Some(()));
        core::mem::forget(h);
    }

    // thread_terminate returns once the thread has left the task (GNU Mach halts its victim
    // before it returns): task_threads, asked at once, lists neither a running thread nor a
    // suspended one just terminated (GNU Mach's test-task.c counts the threads right after
    // terminating two).
    let start = SPINS.load(Ordering::SeqCst);
    let spin = || {
        thread::spawn(|| {
            loop {
                SPINS.fetch_add(1, Ordering::Relaxed);
            }
        })
    };
    if let (Ok(running), Ok(suspended)) = (spin(), spin()) {
        armach_tests::poll_sleeping(5_000, || SPINS.load(Ordering::Relaxed) > start + 1000);
        let _ = mach::thread_suspend(&mut t(), suspended.thread());
        let names = [running.thread().name(), suspended.thread().name()];
        for (h, what) in [
            (&running, "thread_terminate of a running thread"),
            (
                &suspended,
                "thread_terminate of a suspended thread, with another one just before",
            ),
        ] {
            c.check_eq(what, mach::thread_terminate(&mut t(), h.thread()), Ok(()));
        }
        let listed = mach::task_threads(&mut t(), &ipc::task_self())
            .map(|o| o.thread_list.names().collect::<alloc::vec::Vec<_>>());
        c.check(
            listed
                .as_ref()
                .is_ok_and(|l| !names.iter().any(|n| l.contains(n))),
            "once thread_terminate returns, task_threads no longer lists the thread",
            format_args!("{listed:?} (terminated {names:?})"),
        );
        // The closures never return: nothing to join.
        core::mem::forget(running);
        core::mem::forget(suspended);
    }
}

// --- thread_abort --------------------------------------------------------------------------

static RESULT: AtomicU32 = AtomicU32::new(0);

/// A receive on `port` with no timeout; its result into `RESULT`.
fn blocked_receive(port: PortName) {
    let mut m = Msg::new();
    let r = armach_tests::msg::mach_msg(&mut m, option::RCV_MSG, 0, 128, port, 0);
    RESULT.store(r.code() as u32, Ordering::SeqCst);
}

fn wait_until_waiting(th: &SendRight) -> bool {
    armach_tests::poll_sleeping(5_000, || {
        basic(th).is_ok_and(|i| i.run_state == TH_STATE_WAITING)
    })
}

fn abort_in_mach_msg(c: &mut Checks) {
    let task = traps::mach_task_self();
    let Ok(port) = traps::mach_port_allocate(task, RIGHT_RECEIVE) else {
        c.check(false, "a port", format_args!("refused"));
        return;
    };
    RESULT.store(0, Ordering::SeqCst);
    if let Ok(h) = thread::spawn(move || blocked_receive(port)) {
        let waiting = wait_until_waiting(h.thread());
        c.check(
            waiting,
            "the receiver blocks in mach_msg",
            format_args!("{waiting}"),
        );
        c.check_eq(
            "thread_abort",
            mach::thread_abort(&mut t(), h.thread()),
            Ok(()),
        );
        h.join();
        c.check_eq(
            "its mach_msg returns MACH_RCV_INTERRUPTED",
            KernReturn::from_i32(RESULT.load(Ordering::SeqCst) as i32),
            KernReturn::RcvInterrupted,
        );
    }

    // A sender blocked on a full queue (the default limit is 5 messages).
    let _ = traps::mach_port_insert_right(task, port, port, MACH_MSG_TYPE_MAKE_SEND);
    RESULT.store(0, Ordering::SeqCst);
    let send = move || {
        let mut r = KernReturn::Success;
        for i in 0..6 {
            let mut m = Msg::new();
            m.header(
                u32::from(MACH_MSG_TYPE_COPY_SEND),
                port,
                PortName::NULL,
                100 + i,
            );
            m.desc(32, int_desc());
            m.put32(40, i as u32);
            r = armach_tests::msg::mach_msg(&mut m, option::SEND_MSG, 48, 0, PortName::NULL, 0);
            if r != KernReturn::Success {
                break;
            }
        }
        RESULT.store(r.code() as u32, Ordering::SeqCst);
    };
    if let Ok(h) = thread::spawn(send) {
        let waiting = wait_until_waiting(h.thread());
        c.check(
            waiting,
            "the sender blocks on the full queue",
            format_args!("{waiting}"),
        );
        c.check_eq(
            "thread_abort",
            mach::thread_abort(&mut t(), h.thread()),
            Ok(()),
        );
        h.join();
        c.check_eq(
            "its mach_msg returns MACH_SEND_INTERRUPTED",
            KernReturn::from_i32(RESULT.load(Ordering::SeqCst) as i32),
            KernReturn::SendInterrupted,
        );
    }
    let _ = libmach::mig::mach_port::mach_port_destroy(&mut t(), &ipc::task_self(), port);
}

/// Suspend a thread blocked in `mach_msg`, abort it, read `x0` (the interrupted call's
/// result), write another value there, resume: the call returns that value.
fn set_state_of_aborted(c: &mut Checks) {
    let task = traps::mach_task_self();
    let Ok(port) = traps::mach_port_allocate(task, RIGHT_RECEIVE) else {
        return;
    };
    RESULT.store(0, Ordering::SeqCst);
    let Ok(h) = thread::spawn(move || blocked_receive(port)) else {
        return;
    };
    wait_until_waiting(h.thread());
    c.check_eq(
        "thread_suspend of the blocked receiver",
        mach::thread_suspend(&mut t(), h.thread()),
        Ok(()),
    );
    c.check_eq(
        "thread_abort of it",
        mach::thread_abort(&mut t(), h.thread()),
        Ok(()),
    );
    let mut words = [0u32; 70];
    let got = mach::thread_get_state(&mut t(), h.thread(), 1, &mut words);
    let mut state = Aarch64ThreadState::from_words(&words).unwrap_or_default();
    c.check_eq(
        "x0 holds the interrupted call's result",
        (got.is_ok(), state.x[0] as u32 as i32),
        (true, KernReturn::RcvInterrupted.code()),
    );
    state.x[0] = 0x1234;
    c.check_eq(
        "thread_set_state of x0 while suspended",
        mach::thread_set_state(&mut t(), h.thread(), 1, &state.to_words()),
        Ok(()),
    );
    c.check_eq(
        "thread_resume",
        mach::thread_resume(&mut t(), h.thread()),
        Ok(()),
    );
    h.join();
    c.check_eq(
        "mach_msg returned the value set",
        RESULT.load(Ordering::SeqCst),
        0x1234,
    );
    let _ = libmach::mig::mach_port::mach_port_destroy(&mut t(), &ipc::task_self(), port);
}

// --- times ---------------------------------------------------------------------------------

fn ns(t: &libmach::abi::info::TimeValue64) -> u64 {
    t.seconds as u64 * 1_000_000_000 + t.nanoseconds as u64
}

/// The calling thread's own basic info.
fn own() -> ThreadBasicInfo {
    kern::with_thread_self(basic).unwrap_or_default()
}

fn times(c: &mut Checks) {
    // Spin for 200 ms of the counter, alone on a CPU (the main thread waits in `join`).
    // The counter is also read just before the first and just after the second
    // `thread_info`: the thread's time between them can be no more than that stretch.
    let spin = thread::spawn(|| {
        let before = counter();
        let start = own();
        let end = counter() + 200 * counter_frequency() / 1000;
        while counter() < end {
            core::hint::spin_loop();
        }
        let finish = own();
        let after = counter();
        (
            start,
            finish,
            (after - before) * 1_000_000_000 / counter_frequency(),
        )
    });
    if let Ok(h) = spin {
        let (a, b, stretch) = h.join();
        let user = ns(&b.user_time64) - ns(&a.user_time64);
        let system = ns(&b.system_time64) - ns(&a.system_time64);
        // Its 200 ms are its own CPU time, nearly all in user mode: at least 190 ms, and no
        // more than the counter's stretch around the two calls plus a tick's rounding. A
        // loaded host (QEMU without -icount) can keep a virtual CPU away for a while, and
        // that time is the thread's as it is the counter's, so the stretch, not 200 ms,
        // bounds it; the timer interrupts it takes count as system time, so user time is
        // checked to be at least 150 ms of it.
        c.check(
            user + system >= 190 * MS && user + system <= stretch + 10 * MS && user >= 150 * MS,
            "a thread that spins 200 ms reports about 200 ms of its own time, nearly all user",
            format_args!(
                "{} us user, {} us system, {} us between the calls",
                user / 1000,
                system / 1000,
                stretch / 1000
            ),
        );
        c.check(
            b.user_time.as_us() / 1000 == ns(&b.user_time64) / MS,
            "user_time and user_time64 agree to the millisecond",
            format_args!("{:?} {:?}", b.user_time, b.user_time64),
        );
        // `cpu_usage` decays as GNU Mach's does (here with a time constant of 64 ticks):
        // 20 ticks of running from nothing give about 1 - (63/64)^20 of TH_USAGE_SCALE,
        // some 270; a lifetime average would say 1000.
        c.check(
            (150..=450).contains(&b.cpu_usage) && a.cpu_usage < 50,
            "the spinning thread's cpu_usage grew from about 0 to about 270 of 1000",
            format_args!("{} then {}", a.cpu_usage, b.cpu_usage),
        );
    }
    let sleep = thread::spawn(|| {
        let start = own();
        armach_tests::sleep_ms(200);
        (start, own())
    });
    if let Ok(h) = sleep {
        let (a, b) = h.join();
        let user = ns(&b.user_time64) - ns(&a.user_time64);
        let system = ns(&b.system_time64) - ns(&a.system_time64);
        c.check(
            user < 10 * MS && system < 10 * MS,
            "a thread that sleeps 200 ms reports almost no time",
            format_args!("{} us user, {} us system", user / 1000, system / 1000),
        );
        c.check(
            b.cpu_usage <= 20,
            "the sleeping thread's cpu_usage is about 0",
            format_args!("{}", b.cpu_usage),
        );
    }
}

// --- task routines ---------------------------------------------------------------------------

fn task_routines(c: &mut Checks) {
    let task = ipc::task_self();
    registered_ports(c, &task);
    let mut w = [0i32; 32];
    let r = mach::task_info(&mut t(), &task, TASK_BASIC_INFO, &mut w);
    let b = TaskBasicInfo::from_words(&w);
    c.check(
        r.is_ok_and(|o| o.task_info_out_count == 30)
            && b.is_some_and(|b| {
                b.virtual_size > 0
                    && b.resident_size > 0
                    && b.suspend_count == 0
                    && b.creation_time64.seconds == b.creation_time.seconds
            }),
        "task_info(TASK_BASIC_INFO)",
        format_args!("{b:?}"),
    );
    // The spinner above ended: its time is the task's ended threads' time.
    c.check(
        b.is_some_and(|b| b.user_time.as_us() >= 190_000),
        "TASK_BASIC_INFO counts the ended threads' user time",
        format_args!("{:?}", b.map(|b| b.user_time)),
    );
    c.check(
        b.is_some_and(|b| {
            b.user_time64.seconds == b.user_time.seconds
                && b.user_time64.nanoseconds / 1000 == i64::from(b.user_time.microseconds)
        }),
        "TASK_BASIC_INFO's 64-bit user time agrees with the old one",
        format_args!("{b:?}"),
    );
    let r = mach::task_info(&mut t(), &task, TASK_BASIC_INFO, &mut w[..18]);
    c.check(
        r.is_ok_and(|o| o.task_info_out_count == 18),
        "task_info(TASK_BASIC_INFO) with the old count, 18 words",
        format_args!("{r:?}"),
    );
    c.check_eq(
        "task_info(TASK_BASIC_INFO) with 17 words",
        mach::task_info(&mut t(), &task, TASK_BASIC_INFO, &mut w[..17]).err(),
        Some(KernReturn::InvalidArgument),
    );
    let r = mach::task_info(&mut t(), &task, TASK_EVENTS_INFO, &mut w);
    let e = TaskEventsInfo::from_words(&w[..14]);
    c.check(
        r.is_ok_and(|o| o.task_info_out_count == 14)
            && e.is_some_and(|e| e.faults > 0 && e.messages_sent > 0 && e.messages_received > 0),
        "task_info(TASK_EVENTS_INFO): 64-bit faults, messages sent and received",
        format_args!("{e:?}"),
    );
    c.check_eq(
        "task_info(TASK_EVENTS_INFO) with 13 words",
        mach::task_info(&mut t(), &task, TASK_EVENTS_INFO, &mut w[..13]).err(),
        Some(KernReturn::InvalidArgument),
    );
    let r = mach::task_info(&mut t(), &task, TASK_THREAD_TIMES_INFO, &mut w);
    let tt = TaskThreadTimesInfo::from_words(&w[..16]);
    c.check(
        r.is_ok_and(|o| o.task_info_out_count == 16)
            && tt.is_some_and(|t| {
                t.user_time.as_us() + t.system_time.as_us() > 0
                    && t.system_time64.seconds == t.system_time.seconds
                    && t.system_time64.nanoseconds / 1000 == i64::from(t.system_time.microseconds)
            }),
        "task_info(TASK_THREAD_TIMES_INFO) of the live threads, with the 64-bit times",
        format_args!("{tt:?}"),
    );
    let r = mach::task_info(&mut t(), &task, TASK_THREAD_TIMES_INFO, &mut w[..8]);
    c.check(
        r.is_ok_and(|o| o.task_info_out_count == 8),
        "task_info(TASK_THREAD_TIMES_INFO) with the old count, 8 words",
        format_args!("{r:?}"),
    );
    c.check_eq(
        "task_info with flavor 99",
        mach::task_info(&mut t(), &task, 99, &mut w).err(),
        Some(KernReturn::InvalidArgument),
    );
    c.check_eq(
        "task_resume of a task not suspended",
        mach::task_resume(&mut t(), &task).err(),
        Some(KernReturn::Failure),
    );
    // The bootstrap special port: set to a port of ours, read back, cleared.
    if let Ok(name) = traps::mach_port_allocate(traps::mach_task_self(), RIGHT_RECEIVE) {
        let _ = traps::mach_port_insert_right(
            traps::mach_task_self(),
            name,
            name,
            MACH_MSG_TYPE_MAKE_SEND,
        );
        let right = SendRight::from_name(name);
        c.check_eq(
            "task_set_special_port(TASK_BOOTSTRAP_PORT)",
            mach::task_set_special_port(&mut t(), &task, TASK_BOOTSTRAP_PORT, &right),
            Ok(()),
        );
        let got = mach::task_get_special_port(&mut t(), &task, TASK_BOOTSTRAP_PORT);
        c.check_eq(
            "task_get_special_port(TASK_BOOTSTRAP_PORT) gives it back",
            got.as_ref().map(|o| o.special_port.name()).ok(),
            Some(name),
        );
        drop(got);
        c.check_eq(
            "task_set_special_port(99)",
            mach::task_set_special_port(&mut t(), &task, 99, &right).err(),
            Some(KernReturn::InvalidArgument),
        );
        let null = core::mem::ManuallyDrop::new(SendRight::from_name(PortName::NULL));
        c.check_eq(
            "task_set_special_port(TASK_BOOTSTRAP_PORT, null)",
            mach::task_set_special_port(&mut t(), &task, TASK_BOOTSTRAP_PORT, &null),
            Ok(()),
        );
        let got = mach::task_get_special_port(&mut t(), &task, TASK_BOOTSTRAP_PORT);
        c.check_eq(
            "now it reads null",
            got.as_ref().map(|o| o.special_port.name()).ok(),
            Some(PortName::NULL),
        );
        drop(got);
        drop(right);
        let _ = libmach::mig::mach_port::mach_port_destroy(&mut t(), &ipc::task_self(), name);
    }

    // A child task: empty, suspendable, with a thread that never runs, then terminated.
    match mach::task_create(&mut t(), &task, false) {
        Ok(out) => {
            let child = out.child_task;
            let r = mach::task_info(&mut t(), &child, TASK_BASIC_INFO, &mut w);
            let b = TaskBasicInfo::from_words(&w);
            c.check(
                r.is_ok() && b.is_some_and(|b| b.virtual_size == 0 && b.resident_size == 0),
                "task_create makes a task with an empty address space",
                format_args!("{b:?}"),
            );
            c.check_eq(
                "task_suspend of the child",
                mach::task_suspend(&mut t(), &child),
                Ok(()),
            );
            let th = mach::thread_create(&mut t(), &child).map(|o| o.child_thread);
            c.check(
                th.is_ok(),
                "thread_create in the child",
                format_args!("{:?}", th.as_ref().err()),
            );
            let r = mach::task_info(&mut t(), &child, TASK_BASIC_INFO, &mut w);
            c.check_eq(
                "the child's suspend_count",
                r.ok()
                    .and(TaskBasicInfo::from_words(&w))
                    .map(|b| b.suspend_count),
                Some(1),
            );
            c.check_eq(
                "task_resume of the child",
                mach::task_resume(&mut t(), &child),
                Ok(()),
            );
            c.check_eq(
                "task_resume of the child again",
                mach::task_resume(&mut t(), &child).err(),
                Some(KernReturn::Failure),
            );
            c.check_eq(
                "task_terminate of the child",
                mach::task_terminate(&mut t(), &child),
                Ok(()),
            );
            let gone = armach_tests::poll_sleeping(5_000, || {
                mach::task_info(&mut t(), &child, TASK_BASIC_INFO, &mut w).err()
                    == Some(KernReturn::SendInvalidDest)
            });
            c.check(gone, "the child's port is dead", format_args!("{gone}"));
            drop(th);
        }
        Err(code) => {
            c.check(false, "task_create", format_args!("{code:?}"));
        }
    }
    // Children until the kernel refuses: each costs its parent kernel memory.
    let mut children = alloc::vec::Vec::new();
    let refusal = loop {
        match mach::task_create(&mut t(), &task, false) {
            Ok(out) if children.len() < 5_000 => children.push(out.child_task),
            Ok(out) => {
                children.push(out.child_task);
                break None;
            }
            Err(code) => break Some(code),
        }
    };
    c.check(
        refusal == Some(KernReturn::ResourceShortage) && children.len() >= 100,
        "task_create until refused: KERN_RESOURCE_SHORTAGE at the task's limit",
        format_args!("{refusal:?} after {} tasks", children.len()),
    );
    // At the limit a call with a reply cannot be paid for: the first terminations go
    // without one.
    for child in children.iter().take(8) {
        let _ = mach::task_terminate(&mut OneWay, child);
    }
    let mut failed = 0;
    for child in children.iter().skip(8) {
        if mach::task_terminate(&mut t(), child).is_err() {
            failed += 1;
        }
    }
    c.check_eq("every child terminated", failed, 0);
    drop(children);
    c.check_eq(
        "task_create on the host port",
        mach::task_create(&mut t(), &ipc::host_self(), false).err(),
        Some(KernReturn::InvalidArgument),
    );
    c.check_eq(
        "task_terminate on the host port",
        mach::task_terminate(&mut t(), &ipc::host_self()).err(),
        Some(KernReturn::InvalidArgument),
    );
}

// --- VM routines -----------------------------------------------------------------------------

fn vm_routines(c: &mut Checks) {
    let task = ipc::task_self();
    let s = kern::vm_statistics();
    c.check(
        s.is_ok_and(|s| s.pagesize == 4096 && s.free_count > 0 && s.active_count > 0),
        "vm_statistics",
        format_args!("{s:?}"),
    );
    let mut at = 0;
    let r = mach::vm_allocate(&mut t(), &task, &mut at, 3 * 4096, true).map(|()| at);
    c.check(
        r.is_ok_and(|a| a != 0),
        "vm_allocate(anywhere) over IPC",
        format_args!("{r:?}"),
    );
    if at != 0 {
        // SAFETY: the region was just allocated for this.
        unsafe { core::ptr::write_volatile(at as *mut u64, 7) };
        c.check_eq(
            "vm_protect(read-write)",
            mach::vm_protect(&mut t(), &task, at, 4096, false, VM_PROT_DEFAULT),
            Ok(()),
        );
        c.check_eq(
            "vm_protect with an unknown protection bit",
            mach::vm_protect(&mut t(), &task, at, 4096, false, VM_PROT_BAD).err(),
            Some(KernReturn::InvalidArgument),
        );
        // vm_read, vm_copy and vm_region on it.
        // SAFETY: the region is ours and 3 pages long.
        unsafe {
            for i in 0..64u64 {
                core::ptr::write_volatile((at + 8 * i) as *mut u64, 0x1111 * (i + 1));
            }
        }
        let read = mach::vm_read(&mut t(), &task, at + 8, 40);
        let expect: alloc::vec::Vec<u8> = (1..6u64)
            .flat_map(|i| (0x1111 * (i + 1)).to_le_bytes())
            .collect();
        c.check(
            read.as_ref()
                .is_ok_and(|r| r.data.as_bytes() == expect.as_slice()),
            "vm_read returns the bytes out of line",
            format_args!("{:?}", read.as_ref().map(|r| r.data.byte_len())),
        );
        drop(read);
        c.check_eq(
            "vm_read of an unallocated page",
            mach::vm_read(&mut t(), &task, 0x1000, 16).err(),
            Some(KernReturn::InvalidAddress),
        );
        c.check_eq(
            "vm_copy of a page onto the next page",
            mach::vm_copy(&mut t(), &task, at, 4096, at + 4096),
            Ok(()),
        );
        // SAFETY: as above.
        let copied = unsafe { core::ptr::read_volatile((at + 4096 + 8) as *const u64) };
        c.check_eq("vm_copy copied", copied, 0x2222);
        c.check_eq(
            "vm_copy of 16 bytes (not whole pages)",
            mach::vm_copy(&mut t(), &task, at, 16, at + 4096).err(),
            Some(KernReturn::InvalidArgument),
        );
        c.check_eq(
            "vm_copy from an unallocated page",
            mach::vm_copy(&mut t(), &task, 0x1000, 4096, at).err(),
            Some(KernReturn::InvalidAddress),
        );
        c.check_eq(
            "vm_copy into an unallocated page",
            mach::vm_copy(&mut t(), &task, at, 4096, 0x1000).err(),
            Some(KernReturn::InvalidAddress),
        );
        let mut addr = at + 100;
        let region = mach::vm_region(&mut t(), &task, &mut addr);
        c.check(
            region
                .as_ref()
                .is_ok_and(|r| r.size == 4096 && r.protection == VM_PROT_DEFAULT)
                && addr == at,
            "vm_region of an address in the first page (its own entry since vm_protect)",
            format_args!(
                "{addr:#x} {:?}",
                region.as_ref().map(|r| (r.size, r.protection))
            ),
        );
        let page: alloc::vec::Vec<u8> = (0..4096u32).map(|i| (i * 7) as u8).collect();
        c.check_eq(
            "vm_write of a page (out of line)",
            mach::vm_write(&mut t(), &task, at + 2 * 4096, &page),
            Ok(()),
        );
        // SAFETY: as above.
        let written = unsafe { core::ptr::read_volatile((at + 2 * 4096 + 100) as *const u8) };
        c.check_eq("vm_write wrote", written, 700u32 as u8);
        c.check_eq(
            "vm_write of 16 bytes (not whole pages)",
            mach::vm_write(&mut t(), &task, at + 2 * 4096, &page[..16]).err(),
            Some(KernReturn::InvalidArgument),
        );
        c.check_eq(
            "vm_write to an unallocated page",
            mach::vm_write(&mut t(), &task, 0x1000, &page).err(),
            Some(KernReturn::InvalidAddress),
        );
        c.check_eq(
            "vm_inherit(VM_INHERIT_NONE) of the second page",
            mach::vm_inherit(&mut t(), &task, at + 4096, 4096, 2),
            Ok(()),
        );
        let mut second = at + 4096;
        let region = mach::vm_region(&mut t(), &task, &mut second);
        c.check_eq(
            "vm_region reports it",
            region
                .as_ref()
                .map(|r| (second, r.size, r.inheritance))
                .ok(),
            Some((at + 4096, 4096, 2)),
        );
        c.check_eq(
            "vm_inherit with an unknown value",
            mach::vm_inherit(&mut t(), &task, at, 4096, 7).err(),
            Some(KernReturn::InvalidArgument),
        );
        // task_create with inherit_memory: the child gets a copy of what it may inherit.
        match mach::task_create(&mut t(), &task, true) {
            Ok(out) => {
                let child = out.child_task;
                let read = mach::vm_read(&mut t(), &child, at + 8, 40);
                c.check(
                    read.as_ref()
                        .is_ok_and(|r| r.data.as_bytes() == expect.as_slice()),
                    "task_create(inherit_memory): the child has a copy of the parent's bytes",
                    format_args!("{:?}", read.as_ref().map(|r| r.data.byte_len())),
                );
                drop(read);
                c.check_eq(
                    "the VM_INHERIT_NONE page is not in the child",
                    mach::vm_read(&mut t(), &child, at + 4096, 16).err(),
                    Some(KernReturn::InvalidAddress),
                );
                // A copy, not a share: the parent writes, the child keeps the old bytes.
                // SAFETY: the region is ours.
                unsafe { core::ptr::write_volatile((at + 8) as *mut u64, 0xdead) };
                let read = mach::vm_read(&mut t(), &child, at + 8, 8);
                c.check(
                    read.as_ref()
                        .is_ok_and(|r| r.data.as_bytes() == expect[..8].to_vec().as_slice()),
                    "the child's copy does not see the parent's later writes",
                    format_args!("{:?}", read.as_ref().map(|r| r.data.byte_len())),
                );
                drop(read);
                let mut pw = [0i32; 32];
                let mut cw = [0i32; 32];
                let pr = mach::task_info(&mut t(), &task, TASK_BASIC_INFO, &mut pw);
                let cr = mach::task_info(&mut t(), &child, TASK_BASIC_INFO, &mut cw);
                let (p, ch) = (
                    TaskBasicInfo::from_words(&pw),
                    TaskBasicInfo::from_words(&cw),
                );
                c.check(
                    pr.is_ok()
                        && cr.is_ok()
                        && matches!((p, ch), (Some(p), Some(ch))
                            if ch.virtual_size + 4096 == p.virtual_size
                                && ch.resident_size > 0
                                && ch.resident_size <= p.resident_size),
                    "the child's map is the parent's less the one page, pages untouched by the parent not copied",
                    format_args!("parent {p:?}, child {ch:?}"),
                );
                c.check_eq(
                    "task_terminate of the inheriting child",
                    mach::task_terminate(&mut t(), &child),
                    Ok(()),
                );
            }
            Err(kr) => {
                c.check(false, "task_create(inherit_memory)", format_args!("{kr:?}"));
            }
        }
        let mut top = 0xffff_ffff_0000;
        c.check_eq(
            "vm_region above every region",
            mach::vm_region(&mut t(), &task, &mut top).err(),
            Some(KernReturn::NoSpace),
        );
        c.check_eq(
            "vm_deallocate over IPC",
            mach::vm_deallocate(&mut t(), &task, at, 3 * 4096),
            Ok(()),
        );
    }
    c.check_eq(
        "vm_allocate on the host port",
        mach::vm_allocate(&mut t(), &ipc::host_self(), &mut 0, 4096, true).err(),
        Some(KernReturn::InvalidArgument),
    );
}

/// `mach_ports_register` / `mach_ports_lookup`: up to three send rights kept for the task
/// (null-padded), more refused, and only on a task port.
fn registered_ports(c: &mut Checks, task: &SendRight) {
    let me = traps::mach_task_self();
    let port = traps::mach_port_allocate(me, libmach::abi::mig::PortRight::Receive);
    let Ok(port) = port else {
        c.check(false, "a port to register", format_args!("{port:?}"));
        return;
    };
    let _ = traps::mach_port_insert_right(me, port, port, MACH_MSG_TYPE_MAKE_SEND);
    let lookup = |c: &mut Checks, what: &str, want: [PortName; 3]| {
        let got = mach::mach_ports_lookup(&mut t(), task)
            .map(|o| o.init_port_set.names().collect::<alloc::vec::Vec<_>>());
        c.check_eq(what, got, Ok(want.to_vec()));
    };
    lookup(
        c,
        "mach_ports_lookup before any register: three nulls",
        [PortName::NULL; 3],
    );
    c.check_eq(
        "mach_ports_register(two rights)",
        mach::mach_ports_register(&mut t(), task, &[port, me]),
        Ok(()),
    );
    lookup(
        c,
        "mach_ports_lookup gives them back under this task's names, then a null",
        [port, me, PortName::NULL],
    );
    c.check_eq(
        "mach_ports_register(four rights) is refused",
        mach::mach_ports_register(&mut t(), task, &[port, port, port, port]),
        Err(KernReturn::InvalidArgument),
    );
    c.check_eq(
        "mach_ports_register on the host port",
        mach::mach_ports_register(&mut t(), &ipc::host_self(), &[port]),
        Err(KernReturn::InvalidArgument),
    );
    c.check_eq(
        "mach_ports_register(none) clears them",
        mach::mach_ports_register(&mut t(), task, &[]),
        Ok(()),
    );
    lookup(
        c,
        "mach_ports_lookup after clearing: three nulls",
        [PortName::NULL; 3],
    );
    let _ = libmach::mig::mach_port::mach_port_destroy(&mut t(), task, port);
}
