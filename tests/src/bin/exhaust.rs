//! `exhaust`: a task that asks for more than the kernel has must get errors, never break
//! the kernel. It reserves a terabyte of address space that is never touched (past the
//! default size limit, which it raises on the privileged host port), creates
//! sleeping threads until the kernel refuses one (`KERN_RESOURCE_SHORTAGE`, at the task's
//! kernel-memory limit, `mm::kmem`), then ends with all of it outstanding: `task_terminate`
//! must wake the sleepers and free every thread, page, table and kernel heap block (the
//! kernel's leak check).

#![no_std]
#![no_main]

extern crate alloc;

use alloc::boxed::Box;
use alloc::vec::Vec;
use armach_tests::Checks;
use core::sync::atomic::{AtomicUsize, Ordering};
use libmach::{Args, KernReturn, PortName, thread};
use mach_abi::traps::SWITCH_OPTION_WAIT;

libmach::main!(main);

/// More threads than the kernel allows (it stops at 4096, or earlier at the task's
/// kernel-memory limit or when memory runs out).
const ATTEMPTS: usize = 5000;

fn main(args: &Args) -> i32 {
    let mut c = Checks::new("exhaust");
    // First the terabyte: once the threads have used up the task's kernel-memory limit,
    // even the one address-space entry it needs would be refused.
    let task = libmach::traps::mach_task_self();
    // A task's size limit is the machine's memory (GNU Mach): raised on the privileged
    // host port first.
    c.check_eq(
        "vm_allocate(1 TiB) past the default size limit",
        libmach::traps::vm_allocate(task, 0, 1 << 40, true),
        Err(KernReturn::NoSpace),
    );
    let raised = armach_tests::host::host_priv(args).map(|hp| {
        libmach::mig::gnumach::vm_set_size_limit(
            &mut libmach::ipc::transport(),
            &hp,
            &libmach::ipc::task_self(),
            2 << 40,
            2 << 40,
        )
    });
    c.check_eq("vm_set_size_limit to 2 TiB", raised, Some(Ok(())));
    // Counted right before and after, with nothing in between that could touch memory.
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
    let before = libmach::frame_counts();
    // Each thread counts itself just before it goes to sleep, so that the frame counts
    // below are taken once every thread has touched all the memory it will.
    let asleep: &'static AtomicUsize = Box::leak(Box::new(AtomicUsize::new(0)));
    // Room for every handle now: growing the user heap later needs address-space entries
    // the task may no longer be able to pay for.
    let mut handles = Vec::with_capacity(ATTEMPTS);
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
        "spawning is refused with KERN_RESOURCE_SHORTAGE, not a crash",
        format_args!("{refusal:?} after {} threads", handles.len()),
    );
    let kmem = libmach::kmem_counts();
    // A spawn costs its stack's address-space entries (the guard page splits the region),
    // 2 KiB for the thread, 1 KiB for its kernel port, names and a notification port and
    // request; each of its calls is charged the largest kernel reply first, about 13 KiB,
    // so the refusal comes with less than that and a thread left.
    c.check(
        kmem.task_limit - kmem.task_charged < 16 * 1024,
        "the refusal comes at the task's kernel-memory limit",
        format_args!("{} of {} bytes charged", kmem.task_charged, kmem.task_limit),
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

    // Leave the threads sleeping and the terabyte allocated: the task's end must free them.
    core::mem::forget(handles);
    c.finish()
}
