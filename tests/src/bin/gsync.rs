//! `gsync`: the routines of GNU Mach's `gnumach.defs` that armach serves (in the spirit of
//! GNU Mach's `tests/test-gsync.c`, with more of each):
//!
//! - `gsync_wait` on a word: `KERN_TIMEDOUT` with `GSYNC_TIMED` (0 ms too), the value check
//!   (`KERN_INVALID_ARGUMENT` at once when it differs; with `GSYNC_QUAD` both words),
//!   unknown flag bits ignored, bad addresses (`KERN_INVALID_ADDRESS`: unaligned, null,
//!   beyond user space, unmapped, a `GSYNC_QUAD` pair running into an unmapped page), no
//!   kernel memory kept by waits that ended;
//! - across threads: a wake with `GSYNC_MUTATE` stores before waking; without
//!   `GSYNC_BROADCAST` one waiter wakes, with it all; a wake nobody waits for is not kept;
//!   `GSYNC_SHARED` waits meet shared wakes only; `thread_abort` gives `KERN_INTERRUPTED`;
//!   `gsync_requeue` wakes one and moves one (all with `GSYNC_BROADCAST`), and a wake of the
//!   old word no longer reaches the moved ones; a `GSYNC_MUTATE` on a read-only page
//!   changes nothing;
//! - on another task's memory (a task made by `task_create`): value check, timeout and
//!   `GSYNC_MUTATE`;
//! - names: `thread_get_name` gives the task's name at the thread's creation, or the one
//!   `thread_set_name` gave (cut to 31 bytes); `task_set_name`; a thread port only; and a
//!   named thread of a named task that faults on purpose (in a task of its own), whose
//!   report the harness looks for on the console: `(gsync-faulter) of task`, `(gsync-child)`.
//!
//! Waiters are known to be blocked by their run state (`thread_info`: waiting), never by
//! sleeping a while.

#![no_std]
#![no_main]

extern crate alloc;

use alloc::vec::Vec;
use armach_tests::{Checks, poll_sleeping, wait_thread_terminated};
use core::sync::atomic::{AtomicU32, Ordering};
use libmach::abi::gnumach::{GSYNC_BROADCAST, GSYNC_MUTATE, GSYNC_QUAD, GSYNC_SHARED, GSYNC_TIMED};
use libmach::abi::info::TH_STATE_WAITING;
use libmach::abi::traps::PAGE_SIZE;
use libmach::ipc::{self, SendRight};
use libmach::kern::{
    gsync_requeue, gsync_wait, gsync_wake, task_set_name, thread_get_name, thread_set_name,
};
use libmach::mig::mach;
use libmach::{Args, KernReturn, kern, thread, traps};

libmach::main!(main);

/// How long a wait that must time out waits.
const SHORT_MS: u32 = 20;
/// How long to wait for other threads to reach a state before calling it a failure.
const PATIENCE_MS: u64 = 10_000;

/// Two adjacent words, for `GSYNC_QUAD`.
#[repr(C, align(8))]
struct Quad([AtomicU32; 2]);

static WORD: AtomicU32 = AtomicU32::new(0);
static OTHER: AtomicU32 = AtomicU32::new(0);
static QUAD: Quad = Quad([AtomicU32::new(0), AtomicU32::new(0)]);
/// Waiters that have returned.
static RETURNED: AtomicU32 = AtomicU32::new(0);

fn addr(word: &AtomicU32) -> usize {
    word as *const AtomicU32 as usize
}

fn me() -> SendRight {
    SendRight::from_name(traps::mach_thread_self())
}

/// Whether `thread` is blocked in a wait.
fn is_waiting(thread: &SendRight) -> bool {
    kern::thread_basic_info(thread).is_ok_and(|b| b.run_state == TH_STATE_WAITING)
}

/// Start a thread that waits on `word` for `val` with `flags` (no timeout) and counts its
/// return; `None` if it could not be started.
fn waiter(word: usize, val: u32, flags: i32) -> Option<thread::JoinHandle<Result<(), KernReturn>>> {
    thread::spawn(move || {
        let r = gsync_wait(&ipc::task_self(), word, val, 0, 0, flags);
        RETURNED.fetch_add(1, Ordering::SeqCst);
        r
    })
    .ok()
}

fn main(_args: &Args) -> i32 {
    let mut c = Checks::new("gsync");
    single(&mut c);
    bad_addresses(&mut c);
    wake_from_another_thread(&mut c);
    one_or_all(&mut c);
    shared_and_interrupted(&mut c);
    requeue(&mut c);
    read_only(&mut c);
    names(&mut c);
    other_task(&mut c);
    c.finish()
}

/// One thread: timeouts, the value check, flags.
fn single(c: &mut Checks) {
    let task = ipc::task_self();
    let w = addr(&WORD);
    WORD.store(0, Ordering::SeqCst);
    c.check_eq(
        "gsync_wait on a matching value times out",
        gsync_wait(&task, w, 0, 0, SHORT_MS, GSYNC_TIMED),
        Err(KernReturn::TimedOut),
    );
    c.check_eq(
        "gsync_wait with GSYNC_TIMED and 0 ms times out",
        gsync_wait(&task, w, 0, 0, 0, GSYNC_TIMED),
        Err(KernReturn::TimedOut),
    );
    WORD.store(1, Ordering::SeqCst);
    c.check_eq(
        "gsync_wait on a different value returns at once (no timeout asked)",
        gsync_wait(&task, w, 0, 0, 0, 0),
        Err(KernReturn::InvalidArgument),
    );
    c.check_eq(
        "unknown flag bits are ignored (GSYNC_TIMED | 0x100)",
        gsync_wait(&task, w, 1, 0, SHORT_MS, GSYNC_TIMED | 0x100),
        Err(KernReturn::TimedOut),
    );
    let q = addr(&QUAD.0[0]);
    QUAD.0[0].store(1, Ordering::SeqCst);
    QUAD.0[1].store(2, Ordering::SeqCst);
    c.check_eq(
        "GSYNC_QUAD: both words differ",
        gsync_wait(&task, q, 99, 88, SHORT_MS, GSYNC_TIMED | GSYNC_QUAD),
        Err(KernReturn::InvalidArgument),
    );
    c.check_eq(
        "GSYNC_QUAD: the second word differs",
        gsync_wait(&task, q, 1, 88, SHORT_MS, GSYNC_TIMED | GSYNC_QUAD),
        Err(KernReturn::InvalidArgument),
    );
    c.check_eq(
        "GSYNC_QUAD: both match, times out",
        gsync_wait(&task, q, 1, 2, SHORT_MS, GSYNC_TIMED | GSYNC_QUAD),
        Err(KernReturn::TimedOut),
    );
    c.check_eq(
        "without GSYNC_QUAD the second word is not compared",
        gsync_wait(&task, q, 1, 88, SHORT_MS, GSYNC_TIMED),
        Err(KernReturn::TimedOut),
    );
    c.check_eq(
        "every flag bit set (-1): a QUAD timed wait",
        gsync_wait(&task, q, 1, 2, SHORT_MS, -1),
        Err(KernReturn::TimedOut),
    );
    // A wake nobody waits for is not kept for a later wait.
    let sent = gsync_wake(&task, w, 0, GSYNC_BROADCAST);
    c.check_eq("gsync_wake with nobody waiting is sent", sent, Ok(()));
    c.check_eq(
        "a later wait is not ended by that wake",
        gsync_wait(&task, w, 1, 0, SHORT_MS, GSYNC_TIMED),
        Err(KernReturn::TimedOut),
    );
    let _ = gsync_wake(&task, w, 2, GSYNC_MUTATE);
    c.check_eq(
        "GSYNC_MUTATE stores with nobody waiting",
        WORD.load(Ordering::SeqCst),
        2,
    );
    // Waits that ended keep no kernel memory.
    let before = traps::kmem_counts().task_charged;
    for i in 0..40 {
        let _ = gsync_wait(&task, w, i % 3, 0, 0, GSYNC_TIMED);
    }
    c.check_eq(
        "kernel memory charged to the task after 40 waits",
        traps::kmem_counts().task_charged,
        before,
    );
}

fn bad_addresses(c: &mut Checks) {
    let task = ipc::task_self();
    let w = addr(&WORD);
    for (what, a) in [
        ("an unaligned address", w + 2),
        ("address 0", 0),
        ("an address beyond user space", 0x0001_0000_0000_0000),
        ("the last word of the address space", usize::MAX - 3),
    ] {
        c.check_eq(
            what,
            gsync_wait(&task, a, 0, 0, SHORT_MS, GSYNC_TIMED),
            Err(KernReturn::InvalidAddress),
        );
    }
    // Two pages, the second given back: a page that was mapped, and a QUAD pair whose
    // second word is on it.
    let Ok(base) = traps::vm_allocate(traps::mach_task_self(), 0, 2 * PAGE_SIZE, true) else {
        c.check(false, "vm_allocate of two pages", format_args!("refused"));
        return;
    };
    // SAFETY: the page is ours and nothing in this program refers to it.
    let freed =
        unsafe { traps::vm_deallocate(traps::mach_task_self(), base + PAGE_SIZE, PAGE_SIZE) };
    c.check_eq("vm_deallocate of the second page", freed, Ok(()));
    let second = (base + PAGE_SIZE) as usize;
    c.check_eq(
        "a page given back",
        gsync_wait(&task, second, 0, 0, SHORT_MS, GSYNC_TIMED),
        Err(KernReturn::InvalidAddress),
    );
    c.check_eq(
        "the last word of a page, alone",
        gsync_wait(&task, second - 4, 0, 0, SHORT_MS, GSYNC_TIMED),
        Err(KernReturn::TimedOut),
    );
    c.check_eq(
        "a GSYNC_QUAD pair running into the page given back",
        gsync_wait(&task, second - 4, 0, 0, SHORT_MS, GSYNC_TIMED | GSYNC_QUAD),
        Err(KernReturn::InvalidAddress),
    );
    c.check_eq(
        "a GSYNC_SHARED wait on the page given back",
        gsync_wait(&task, second, 0, 0, SHORT_MS, GSYNC_TIMED | GSYNC_SHARED),
        Err(KernReturn::InvalidAddress),
    );
    // Wakes and requeues of bad addresses are refused quietly (simple routines).
    c.check_eq(
        "gsync_wake of a page given back (sent)",
        gsync_wake(&task, second, 5, GSYNC_MUTATE),
        Ok(()),
    );
    c.check_eq(
        "gsync_requeue of an unaligned address (sent)",
        gsync_requeue(&task, w + 1, w, true, 0),
        Ok(()),
    );
    // SAFETY: as above.
    let _ = unsafe { traps::vm_deallocate(traps::mach_task_self(), base, PAGE_SIZE) };
}

/// GNU Mach's `test_single_from_thread`, without its sleep: the other thread wakes once
/// this one is seen blocked.
fn wake_from_another_thread(c: &mut Checks) {
    let w = addr(&WORD);
    WORD.store(10, Ordering::SeqCst);
    let main = me();
    let main_name = main.name();
    let helper = thread::spawn(move || {
        let main = core::mem::ManuallyDrop::new(SendRight::from_name(main_name));
        if !poll_sleeping(PATIENCE_MS, || is_waiting(&main)) {
            return Err(KernReturn::Failure);
        }
        gsync_wake(&ipc::task_self(), w, 11, GSYNC_MUTATE)
    });
    let r = gsync_wait(&ipc::task_self(), w, 10, 0, 0, 0);
    c.check_eq("a wait without timeout, woken by another thread", r, Ok(()));
    c.check_eq(
        "the waker's GSYNC_MUTATE stored before the wake",
        WORD.load(Ordering::SeqCst),
        11,
    );
    match helper {
        Ok(h) => c.check_eq("the waker saw the waiter blocked", h.join(), Ok(())),
        Err(e) => c.check(false, "spawn the waker", format_args!("{e:?}")),
    };
}

/// Three waiters: a plain wake ends one wait, a broadcast the others.
fn one_or_all(c: &mut Checks) {
    let w = addr(&WORD);
    WORD.store(0, Ordering::SeqCst);
    RETURNED.store(0, Ordering::SeqCst);
    let waiters: Vec<_> = (0..3).filter_map(|_| waiter(w, 0, 0)).collect();
    let all_waiting = poll_sleeping(PATIENCE_MS, || {
        waiters.iter().all(|h| is_waiting(h.thread()))
    });
    c.check(
        waiters.len() == 3 && all_waiting,
        "three threads blocked in gsync_wait",
        format_args!("{} started", waiters.len()),
    );
    let _ = gsync_wake(&ipc::task_self(), w, 0, 0);
    let one = poll_sleeping(PATIENCE_MS, || RETURNED.load(Ordering::SeqCst) >= 1);
    let still = waiters.iter().filter(|h| is_waiting(h.thread())).count();
    c.check(
        one && RETURNED.load(Ordering::SeqCst) == 1 && still == 2,
        "a wake without GSYNC_BROADCAST ends exactly one wait",
        format_args!(
            "{} returned, {still} still waiting",
            RETURNED.load(Ordering::SeqCst)
        ),
    );
    let _ = gsync_wake(&ipc::task_self(), w, 0, GSYNC_BROADCAST);
    let results: Vec<_> = waiters.into_iter().map(|h| h.join()).collect();
    c.check(
        results.iter().all(|r| *r == Ok(())) && RETURNED.load(Ordering::SeqCst) == 3,
        "GSYNC_BROADCAST ends the other two",
        format_args!("{results:?}"),
    );
}

/// Shared keys meet shared wakes only; `thread_abort` interrupts a wait.
fn shared_and_interrupted(c: &mut Checks) {
    let w = addr(&OTHER);
    OTHER.store(3, Ordering::SeqCst);
    RETURNED.store(0, Ordering::SeqCst);
    let Some(h) = waiter(w, 3, GSYNC_SHARED) else {
        c.check(false, "spawn a shared waiter", format_args!("refused"));
        return;
    };
    c.check(
        poll_sleeping(PATIENCE_MS, || is_waiting(h.thread())),
        "a GSYNC_SHARED waiter blocks",
        format_args!(""),
    );
    let _ = gsync_wake(&ipc::task_self(), w, 0, GSYNC_BROADCAST);
    c.check(
        is_waiting(h.thread()) && RETURNED.load(Ordering::SeqCst) == 0,
        "a task-local wake does not reach a shared waiter",
        format_args!("returned {}", RETURNED.load(Ordering::SeqCst)),
    );
    let _ = gsync_wake(&ipc::task_self(), w, 0, GSYNC_SHARED);
    c.check_eq("a shared wake ends the shared wait", h.join(), Ok(()));

    RETURNED.store(0, Ordering::SeqCst);
    let Some(h) = waiter(w, 3, 0) else {
        c.check(false, "spawn a waiter", format_args!("refused"));
        return;
    };
    c.check(
        poll_sleeping(PATIENCE_MS, || is_waiting(h.thread())),
        "a waiter blocks",
        format_args!(""),
    );
    c.check_eq(
        "thread_abort of the waiter",
        mach::thread_abort(&mut ipc::transport(), h.thread()),
        Ok(()),
    );
    c.check_eq(
        "an aborted wait returns KERN_INTERRUPTED",
        h.join(),
        Err(KernReturn::Interrupted),
    );
}

/// `gsync_requeue`: wake one and move one; with GSYNC_BROADCAST move them all.
fn requeue(c: &mut Checks) {
    let task = ipc::task_self();
    let (a, b) = (addr(&WORD), addr(&OTHER));
    WORD.store(0, Ordering::SeqCst);
    OTHER.store(0, Ordering::SeqCst);
    RETURNED.store(0, Ordering::SeqCst);
    // The first waiter is blocked before the second starts: it is the longest waiting.
    let first = waiter(a, 0, 0);
    let first_waits = first
        .as_ref()
        .is_some_and(|h| poll_sleeping(PATIENCE_MS, || is_waiting(h.thread())));
    let second = waiter(a, 0, 0);
    let second_waits = second
        .as_ref()
        .is_some_and(|h| poll_sleeping(PATIENCE_MS, || is_waiting(h.thread())));
    let (Some(first), Some(second)) = (first, second) else {
        c.check(false, "spawn two waiters", format_args!("refused"));
        return;
    };
    c.check(
        first_waits && second_waits,
        "two threads blocked on the first word",
        format_args!(""),
    );
    let _ = gsync_requeue(&task, a, b, true, 0);
    let one = poll_sleeping(PATIENCE_MS, || RETURNED.load(Ordering::SeqCst) >= 1);
    c.check(
        one && !is_waiting(first.thread()) && is_waiting(second.thread()),
        "gsync_requeue with wake_one wakes the longest waiter",
        format_args!("returned {}", RETURNED.load(Ordering::SeqCst)),
    );
    let _ = gsync_wake(&task, a, 0, GSYNC_BROADCAST);
    c.check(
        is_waiting(second.thread()) && RETURNED.load(Ordering::SeqCst) == 1,
        "the other one moved: a wake of the first word no longer reaches it",
        format_args!("returned {}", RETURNED.load(Ordering::SeqCst)),
    );
    let _ = gsync_wake(&task, b, 0, 0);
    c.check_eq("the woken one's wait succeeded", first.join(), Ok(()));
    c.check_eq(
        "a wake of the second word ends the moved wait",
        second.join(),
        Ok(()),
    );

    RETURNED.store(0, Ordering::SeqCst);
    let waiters: Vec<_> = (0..3).filter_map(|_| waiter(a, 0, 0)).collect();
    let all = poll_sleeping(PATIENCE_MS, || {
        waiters.iter().all(|h| is_waiting(h.thread()))
    });
    c.check(
        waiters.len() == 3 && all,
        "three threads blocked on the first word",
        format_args!("{} started", waiters.len()),
    );
    let _ = gsync_requeue(&task, a, b, false, GSYNC_BROADCAST);
    let _ = gsync_wake(&task, a, 0, GSYNC_BROADCAST);
    let still = waiters.iter().filter(|h| is_waiting(h.thread())).count();
    c.check(
        still == 3 && RETURNED.load(Ordering::SeqCst) == 0,
        "gsync_requeue with GSYNC_BROADCAST moves all, waking none",
        format_args!(
            "{still} waiting, {} returned",
            RETURNED.load(Ordering::SeqCst)
        ),
    );
    let _ = gsync_wake(&task, b, 0, GSYNC_BROADCAST);
    let results: Vec<_> = waiters.into_iter().map(|h| h.join()).collect();
    c.check(
        results.iter().all(|r| *r == Ok(())),
        "a broadcast on the second word ends all three",
        format_args!("{results:?}"),
    );
}

/// `GSYNC_MUTATE` on a page the task may not write changes nothing.
fn read_only(c: &mut Checks) {
    let task = ipc::task_self();
    let Ok(page) = traps::vm_allocate(traps::mach_task_self(), 0, PAGE_SIZE, true) else {
        c.check(false, "vm_allocate", format_args!("refused"));
        return;
    };
    // SAFETY: a page of our own, mapped read-write until the vm_protect below.
    unsafe { core::ptr::write_volatile(page as *mut u32, 5) };
    let _ = kern::vm_protect(page, PAGE_SIZE, false, 1);
    let _ = gsync_wake(&task, page as usize, 9, GSYNC_MUTATE);
    // SAFETY: the page is still mapped readable.
    let seen = unsafe { core::ptr::read_volatile(page as *const u32) };
    c.check_eq("GSYNC_MUTATE on a read-only page stores nothing", seen, 5);
    c.check_eq(
        "a wait on a read-only page reads it",
        gsync_wait(&task, page as usize, 5, 0, SHORT_MS, GSYNC_TIMED),
        Err(KernReturn::TimedOut),
    );
    // SAFETY: the page is ours and no longer used.
    let _ = unsafe { traps::vm_deallocate(traps::mach_task_self(), page, PAGE_SIZE) };
}

fn names(c: &mut Checks) {
    let name = |t: &SendRight| {
        thread_get_name(t)
            .map(|n| alloc::string::String::from_utf8_lossy(n.as_bytes()).into_owned())
    };
    let main = me();
    c.check_eq(
        "a thread starts with its task's name (the program's)",
        name(&main).as_deref(),
        Ok("gsync"),
    );
    c.check_eq(
        "task_set_name",
        task_set_name(&ipc::task_self(), c"gsync-renamed"),
        Ok(()),
    );
    c.check_eq(
        "an existing thread keeps its name",
        name(&main).as_deref(),
        Ok("gsync"),
    );
    // A thread made afterwards, kept alive (waiting on OTHER) until it has been asked.
    OTHER.store(42, Ordering::SeqCst);
    let later = thread::spawn(|| gsync_wait(&ipc::task_self(), addr(&OTHER), 42, 0, 0, 0));
    if let Ok(h) = later {
        c.check_eq(
            "a thread made afterwards has the task's new name",
            name(h.thread()).as_deref(),
            Ok("gsync-renamed"),
        );
        let _ = gsync_wake(&ipc::task_self(), addr(&OTHER), 0, GSYNC_MUTATE);
        let _ = h.join();
    }
    c.check_eq(
        "thread_set_name",
        thread_set_name(&main, c"main-thread"),
        Ok(()),
    );
    c.check_eq(
        "thread_get_name reads it back",
        name(&main).as_deref(),
        Ok("main-thread"),
    );
    let long = c"a-name-of-sixty-bytes-much-longer-than-the-kernel-keeps-12345";
    c.check_eq(
        "thread_set_name of 61 bytes",
        thread_set_name(&main, long),
        Ok(()),
    );
    c.check_eq(
        "a long name is cut to 31 bytes",
        name(&main).as_deref(),
        Ok("a-name-of-sixty-bytes-much-long"),
    );
    let too_long = c"this-name-has-sixty-four-bytes-or-more-which-kernel_debug_name_t-refuses";
    c.check_eq(
        "a name of 64 bytes or more is refused by the stub",
        thread_set_name(&main, too_long),
        Err(KernReturn::MigArrayTooLarge),
    );
    c.check_eq(
        "thread_get_name on a task port",
        thread_get_name(&ipc::task_self()).map(|_| ()),
        Err(KernReturn::InvalidArgument),
    );
    let _ = thread_set_name(&main, c"gsync-main");
    fault_report(c);
}

/// A named thread of a named task faults: the kernel's report names both (checked by the
/// harness on the console). The thread is alone in a task of its own, so whatever a fault
/// does to its task leaves this one alone.
fn fault_report(c: &mut Checks) {
    let t = || ipc::transport();
    let Ok(child) = mach::task_create(&mut t(), &ipc::task_self(), false).map(|o| o.child_task)
    else {
        c.check(false, "task_create", format_args!("refused"));
        return;
    };
    c.check_eq(
        "task_set_name of the child",
        task_set_name(&child, c"gsync-child"),
        Ok(()),
    );
    match mach::thread_create(&mut t(), &child).map(|o| o.child_thread) {
        Ok(th) => {
            c.check_eq(
                "the child's thread has the child's name",
                thread_get_name(&th).map(|n| n.as_bytes() == b"gsync-child"),
                Ok(true),
            );
            let _ = thread_set_name(&th, c"gsync-faulter");
            // Its state is all zeroes: it starts at address 0, where nothing is mapped.
            c.check_eq(
                "thread_resume of the faulter",
                mach::thread_resume(&mut t(), &th),
                Ok(()),
            );
            c.check_eq(
                "the faulter is gone after its fault",
                wait_thread_terminated(th.name()),
                Ok(()),
            );
        }
        Err(e) => {
            c.check(false, "thread_create in the child", format_args!("{e:?}"));
        }
    }
    let _ = mach::task_terminate(&mut t(), &child);
}

/// gsync on another task's memory: the word is read and written in that task.
fn other_task(c: &mut Checks) {
    let t = || ipc::transport();
    let Ok(child) = mach::task_create(&mut t(), &ipc::task_self(), false).map(|o| o.child_task)
    else {
        c.check(false, "task_create", format_args!("refused"));
        return;
    };
    let mut address = 0u64;
    match mach::vm_allocate(&mut t(), &child, &mut address, PAGE_SIZE, true) {
        Ok(()) => {
            let a = address as usize;
            // The page after the child's only one: mapped in neither task, or only here.
            let unmapped = a + PAGE_SIZE as usize;
            c.check_eq(
                "a wait on the other task's fresh page (0) times out",
                gsync_wait(&child, a, 0, 0, SHORT_MS, GSYNC_TIMED),
                Err(KernReturn::TimedOut),
            );
            let _ = gsync_wake(&child, a, 77, GSYNC_MUTATE);
            c.check_eq(
                "GSYNC_MUTATE stored 77 in the other task: a wait for 0 fails",
                gsync_wait(&child, a, 0, 0, SHORT_MS, GSYNC_TIMED),
                Err(KernReturn::InvalidArgument),
            );
            c.check_eq(
                "and a wait for 77 times out",
                gsync_wait(&child, a, 77, 0, SHORT_MS, GSYNC_TIMED),
                Err(KernReturn::TimedOut),
            );
            c.check_eq(
                "an address the other task has not mapped",
                gsync_wait(&child, unmapped, 0, 0, SHORT_MS, GSYNC_TIMED),
                Err(KernReturn::InvalidAddress),
            );
        }
        Err(e) => {
            c.check(false, "vm_allocate in the child", format_args!("{e:?}"));
        }
    }
    let _ = mach::task_terminate(&mut t(), &child);
}
