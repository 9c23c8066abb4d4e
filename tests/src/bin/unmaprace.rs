//! `unmaprace`: a page leaves a map only once no CPU can still write it. Owner threads
//! (half the CPUs, at least one) each allocate a fresh run of pages at an address never used
//! before, check it reads all zero, publish it, let the writers hammer it, and deallocate it
//! while it is still published, over and over; writer threads (the other CPUs) keep storing
//! a tag into the first word of every page of every published run, so some of their stores
//! race each `vm_deallocate` on other CPUs. A store either lands in the run it was meant for
//! or faults (`EXC_BAD_ACCESS`, which the writers take through the temporary
//! `EXCEPTION_RESUME` trap and carry on). A kernel that frees a frame before every CPU's
//! TLB has let go of it lets such a store land in a free frame (where the frame allocator
//! keeps its links: the kernel crashes) or in a frame handed out again (a fresh page that is
//! not zero, which the owners check). The run ends after about two seconds; every frame
//! must come back (counted while every thread still exists, so that their stacks do not
//! count).

#![no_std]
#![no_main]

extern crate alloc;

use alloc::vec::Vec;
use armach_tests::{Checks, counter, counter_frequency};
use core::sync::atomic::{AtomicU64, Ordering};
use libmach::abi::traps::PAGE_SIZE;
use libmach::{Args, frame_counts, thread, traps};

libmach::main!(main);

/// Pages in one run (a deallocation walks them all before its TLB invalidation).
const PAGES: u64 = 16;
const RUN_BYTES: u64 = PAGES * PAGE_SIZE;
/// Runs of one owner follow each other at this distance, each at an address not used before.
const RUN_STRIDE: u64 = 2 * RUN_BYTES;
/// Owner `k`'s runs start at `BASE + k * OWNER_SPAN`.
const BASE: u64 = 0x0000_6000_0000_0000;
const OWNER_SPAN: u64 = 1 << 36;
const MAX_OWNERS: usize = 8;
const WORDS_PER_PAGE: u64 = PAGE_SIZE / 8;
const RUN_SECS: u64 = 2;
const MIN_ROUNDS: u64 = 20;
const MAX_ROUNDS: u64 = 100_000;
/// What the writers store: never a kernel address, never zero.
const TAG: u64 = 0x5a5a_0000_0000_0000;

/// What writers read (`write_loop` takes its layout from the offsets below).
#[repr(C)]
struct Control {
    /// Non-zero: writers return.
    stop: AtomicU64,
    /// How many of `runs` are in use.
    owners: AtomicU64,
    /// Each owner's published run (0: none).
    runs: [AtomicU64; MAX_OWNERS],
}

static CONTROL: Control = Control {
    stop: AtomicU64::new(0),
    owners: AtomicU64::new(0),
    runs: [const { AtomicU64::new(0) }; MAX_OWNERS],
};

/// Threads ready to start, and owners done with their runs.
static READY: AtomicU64 = AtomicU64::new(0);
static DONE: AtomicU64 = AtomicU64::new(0);
/// Owners start when set (to the counter value at which runs end), and leave when
/// `CONTROL.stop` is.
static DEADLINE: AtomicU64 = AtomicU64::new(0);

// The writers' loop, in assembly so that the kernel can resume it after a fault (at
// `unmaprace_resume`, with x0-x2 overwritten): its state lives in x3-x5 and x9-x16.
//
// unmaprace_write_loop(x0 = &CONTROL, x1 = tag, x2 = out: [writes, faults])
core::arch::global_asm!(
    ".global unmaprace_write_loop",
    ".global unmaprace_resume",
    "unmaprace_write_loop:",
    "    mov x3, x0",
    "    mov x4, x1",
    "    mov x5, x2",
    "    mov x9, #0",                    // stores made
    "    mov x10, #0",                   // faults taken
    "    mov x11, #0",                   // the run looked at last
    "1:  ldr x12, [x3, #{STOP}]",
    "    cbnz x12, 3f",
    "    ldr x13, [x3, #{OWNERS}]",
    "    add x11, x11, #1",
    "    cmp x11, x13",
    "    csel x11, xzr, x11, hs",
    "    add x14, x3, #{RUNS}",
    "    ldr x15, [x14, x11, lsl #3]",
    "    cbz x15, 1b",
    "    mov x16, #{PAGES}",
    "2:  str x4, [x15]",                 // the store that races vm_deallocate
    "    add x9, x9, #1",
    "    add x15, x15, #{PAGE}",
    "    subs x16, x16, #1",
    "    b.ne 2b",
    "    b 1b",
    "unmaprace_resume:",
    "    add x10, x10, #1",
    "    b 1b",
    "3:  stp x9, x10, [x5]",
    "    ret",
    STOP = const core::mem::offset_of!(Control, stop),
    OWNERS = const core::mem::offset_of!(Control, owners),
    RUNS = const core::mem::offset_of!(Control, runs),
    PAGES = const PAGES,
    PAGE = const PAGE_SIZE,
);

unsafe extern "C" {
    /// Store `tag` into every page of every published run until `control.stop`; returns
    /// the stores made and the faults taken in `out`.
    fn unmaprace_write_loop(control: *const Control, tag: u64, out: *mut [u64; 2]);
    /// Where the kernel resumes a writer after a fault.
    static unmaprace_resume: u8;
}

/// A writer: (stores, faults).
fn writer(index: u64) -> Result<[u64; 2], libmach::KernReturn> {
    let resume = &raw const unmaprace_resume as u64;
    // SAFETY: `unmaprace_resume` is the loop's own resume point, which expects the kernel's
    // x0-x2 and keeps its state elsewhere; it is only entered from inside the loop's
    // stores, the only instructions of this thread that can fault while it is set.
    unsafe { traps::set_exception_resume(resume) }?;
    READY.fetch_add(1, Ordering::AcqRel);
    let mut out = [0u64; 2];
    // SAFETY: the loop reads `CONTROL` and stores into pages the owners published (or
    // faults, and resumes); it writes `out`, a local, once at the end.
    unsafe { unmaprace_write_loop(&CONTROL, TAG | index << 32, &mut out) };
    // SAFETY: 0 restores the default (a fault stops the thread).
    unsafe { traps::set_exception_resume(0) }?;
    Ok(out)
}

/// What one owner saw.
#[derive(Default)]
struct Owned {
    rounds: u64,
    /// Words of fresh runs that were not zero, and the first (address, value).
    dirty: u64,
    first_dirty: Option<(u64, u64)>,
    /// A `vm_allocate` or `vm_deallocate` that failed: (round, code).
    failed: Option<(u64, libmach::KernReturn)>,
}

fn run_address(k: usize, round: u64) -> u64 {
    BASE + k as u64 * OWNER_SPAN + round * RUN_STRIDE
}

/// Owner `k`'s runs, between the start and end handshakes with `main` (which counts
/// frames while every thread exists).
fn owner_thread(k: usize) -> Owned {
    READY.fetch_add(1, Ordering::AcqRel);
    let deadline = loop {
        match DEADLINE.load(Ordering::Acquire) {
            0 => armach_tests::sleep_ms(1),
            d => break d,
        }
    };
    let out = owner(k, deadline);
    DONE.fetch_add(1, Ordering::AcqRel);
    while CONTROL.stop.load(Ordering::Acquire) == 0 {
        armach_tests::sleep_ms(1);
    }
    out
}

fn owner(k: usize, deadline: u64) -> Owned {
    let task = traps::mach_task_self();
    let freq = counter_frequency();
    let mut out = Owned::default();
    while out.rounds < MAX_ROUNDS && (out.rounds < MIN_ROUNDS || counter() < deadline) {
        let addr = run_address(k, out.rounds);
        if let Err(code) = traps::vm_allocate(task, addr, RUN_BYTES, false) {
            out.failed = Some((out.rounds, code));
            break;
        }
        // Touch every page (each gets a zeroed frame, maybe one another run just freed):
        // no writer knows this address yet, so any non-zero word came in through a stale
        // translation of a freed frame.
        for i in 0..PAGES * WORDS_PER_PAGE {
            // SAFETY: the run was just allocated; only this thread knows of it.
            let v = unsafe { core::ptr::read_volatile((addr + i * 8) as *const u64) };
            if v != 0 {
                out.dirty += 1;
                out.first_dirty.get_or_insert((addr + i * 8, v));
            }
        }
        CONTROL.runs[k].store(addr, Ordering::Release);
        // Let the writers at it: a little while here, and a turn for them on this CPU.
        let until = counter() + freq / 5000;
        while counter() < until {
            core::hint::spin_loop();
        }
        traps::swtch();
        // Deallocated while still published: writers' stores race it.
        // SAFETY: only the writers' stores use the run, and they survive its going (a
        // store after it faults and the writer resumes).
        if let Err(code) = unsafe { traps::vm_deallocate(task, addr, RUN_BYTES) } {
            out.failed = Some((out.rounds, code));
            break;
        }
        out.rounds += 1;
    }
    CONTROL.runs[k].store(0, Ordering::Release);
    out
}

fn main(_args: &Args) -> i32 {
    let mut c = Checks::new("unmaprace");
    let online = libmach::cpu_count().max(1) as usize;
    let owners = (online / 2).clamp(1, MAX_OWNERS);
    let writers = online.saturating_sub(owners).max(1);
    c.note(format_args!(
        "{owners} owners of {PAGES}-page runs, {writers} writers, {online} CPUs online"
    ));
    CONTROL.owners.store(owners as u64, Ordering::Relaxed);
    let mut writer_handles = Vec::with_capacity(writers);
    let mut owner_handles = Vec::with_capacity(owners);
    let mut results = Vec::with_capacity(owners);
    for w in 0..writers {
        match thread::spawn(move || writer(w as u64)) {
            Ok(h) => writer_handles.push(h),
            Err(code) => c.note(format_args!("spawn of writer {w} failed: {code}")),
        }
    }
    for k in 1..owners {
        match thread::spawn(move || owner_thread(k)) {
            Ok(h) => owner_handles.push(h),
            Err(code) => c.note(format_args!("spawn of owner {k} failed: {code}")),
        }
    }
    let started = writer_handles.len() + owner_handles.len();
    c.check_eq("threads started", started + 1, writers + owners);
    armach_tests::poll_sleeping(10_000, || READY.load(Ordering::Acquire) == started as u64);
    let frames_before = frame_counts().free;
    // Runs end two seconds after the owners start.
    let deadline = counter() + RUN_SECS * counter_frequency();
    DEADLINE.store(deadline, Ordering::Release);
    results.push(owner(0, deadline));
    armach_tests::poll_sleeping(10_000, || {
        DONE.load(Ordering::Acquire) == owner_handles.len() as u64
    });
    // Every run is gone and every thread still exists: the frames must all be back.
    let frames_after = frame_counts().free;
    CONTROL.stop.store(1, Ordering::Release);
    results.extend(owner_handles.into_iter().map(|h| h.join()));
    let (mut stores, mut faults, mut refused) = (0, 0, None);
    for h in writer_handles {
        match h.join() {
            Ok([s, f]) => {
                stores += s;
                faults += f;
            }
            Err(code) => refused = Some(code),
        }
    }

    let rounds: u64 = results.iter().map(|o| o.rounds).sum();
    let dirty: u64 = results.iter().map(|o| o.dirty).sum();
    let first_dirty = results.iter().find_map(|o| o.first_dirty);
    let failed = results.iter().find_map(|o| o.failed);
    c.note(format_args!(
        "{rounds} runs allocated, written and deallocated; writers made {stores} stores and \
         took {faults} faults"
    ));
    c.check(
        refused.is_none(),
        "EXCEPTION_RESUME taken for the writers",
        format_args!("{refused:?}"),
    );
    c.check(
        failed.is_none(),
        "every vm_allocate and vm_deallocate of a run succeeded",
        format_args!("{failed:?}"),
    );
    c.check(
        rounds >= MIN_ROUNDS * owners as u64,
        "each owner went through its runs",
        format_args!(
            "{rounds} runs, at least {} wanted",
            MIN_ROUNDS * owners as u64
        ),
    );
    c.check(
        stores > 0,
        "the writers stored into published runs",
        format_args!("{stores} stores"),
    );
    c.check(
        dirty == 0,
        "fresh pages were all zero (no store through a stale translation)",
        format_args!("{dirty} words not zero, first {first_dirty:x?}"),
    );
    c.check_eq(
        "every frame back once the runs are gone (free frames)",
        frames_after,
        frames_before,
    );
    c.finish()
}
