//! `exhaust`: a task that asks for more than the kernel has must get errors, never break
//! the kernel. It creates sleeping threads until the kernel refuses one (the thread limit
//! or memory for kernel stacks: `KERN_RESOURCE_SHORTAGE`), reserves a terabyte of address
//! space that is never touched, then ends with all of it outstanding: `task_terminate` must
//! wake the sleepers and free every thread, page and table (the kernel's leak check).

#![no_std]
#![no_main]

extern crate alloc;

use alloc::boxed::Box;
use alloc::vec::Vec;
use armach_tests::{Checks, counter, counter_frequency};
use core::sync::atomic::{AtomicUsize, Ordering};
use libmach::{Args, KernReturn, PortName, thread};
use mach_abi::traps::SWITCH_OPTION_WAIT;

libmach::main!(main);

/// More threads than the kernel allows (it stops at 4096, or earlier when memory runs out).
const ATTEMPTS: usize = 5000;

fn main(_args: &Args) -> i32 {
    let mut c = Checks::new("exhaust");
    let before = libmach::frame_counts();
    // Each thread counts itself just before it goes to sleep, so that the frame counts
    // below are taken once every thread has touched all the memory it will.
    let asleep: &'static AtomicUsize = Box::leak(Box::new(AtomicUsize::new(0)));
    let mut handles = Vec::new();
    let mut refusal = None;
    for _ in 0..ATTEMPTS {
        // A small stack: the point is kernel resources, not user memory.
        match thread::Builder::new().stack_size(8192).spawn(move || {
            asleep.fetch_add(1, Ordering::SeqCst);
            // Sleeps for a minute; the task's end wakes it early.
            let _ = libmach::traps::thread_switch(PortName(0), SWITCH_OPTION_WAIT, 60_000);
        }) {
            Ok(h) => handles.push(h),
            Err(code) => {
                refusal = Some(code);
                break;
            }
        }
    }
    c.note(format_args!(
        "{} sleeping threads created before a refusal",
        handles.len()
    ));
    c.check(
        refusal.is_some_and(|code| code == KernReturn::ResourceShortage),
        "THREAD_CREATE is refused with KERN_RESOURCE_SHORTAGE, not a crash",
        format_args!("{refusal:?} after {} threads", handles.len()),
    );
    c.check(
        handles.len() >= 100,
        "at least 100 threads fit",
        format_args!("{}", handles.len()),
    );
    let during = libmach::frame_counts();
    c.check(
        during.free < before.free,
        "the threads hold kernel memory (free frames went down)",
        format_args!("{} before, {} now", before.free, during.free),
    );

    // The reservation is measured in a quiet task: every thread has counted itself on its
    // way to sleep, then the free-frame count must hold still over a few sleeps of the main
    // thread (a thread between its count and its sleep may still touch its stack). Nothing
    // else in the task runs, and `FRAME_COUNTS` returns dead kernel stacks first, so the
    // difference around the `vm_allocate` is the reservation's alone.
    let created = handles.len();
    let quiet_deadline = counter() + 20 * counter_frequency();
    while asleep.load(Ordering::SeqCst) < created && counter() < quiet_deadline {
        let _ = libmach::traps::thread_switch(PortName(0), SWITCH_OPTION_WAIT, 5);
    }
    c.check_eq(
        "every thread reached its sleep",
        asleep.load(Ordering::SeqCst),
        created,
    );
    let mut stable = 0;
    let mut last = libmach::frame_counts().free;
    while stable < 3 && counter() < quiet_deadline {
        let _ = libmach::traps::thread_switch(PortName(0), SWITCH_OPTION_WAIT, 10);
        let now = libmach::frame_counts().free;
        stable = if now == last { stable + 1 } else { 0 };
        last = now;
    }
    c.check(
        stable >= 3,
        "the free-frame count holds still once every thread sleeps",
        format_args!("{stable} unchanged 10 ms sleeps in a row, {last} free"),
    );

    let task = libmach::traps::mach_task_self();
    let before_reserve = libmach::frame_counts();
    let huge = libmach::traps::vm_allocate(task, 0, 1 << 40, true);
    let after_reserve = libmach::frame_counts();
    c.check(
        huge.is_ok(),
        "vm_allocate(1 TiB, anywhere) reserves without backing",
        format_args!("{huge:?}"),
    );
    c.check(
        before_reserve.free == after_reserve.free,
        "reserving 1 TiB takes no frames",
        format_args!(
            "{} before, {} after",
            before_reserve.free, after_reserve.free
        ),
    );
    // Leave the threads sleeping and the terabyte allocated: the task's end must free them.
    core::mem::forget(handles);
    c.finish()
}
