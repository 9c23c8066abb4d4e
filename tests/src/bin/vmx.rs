//! `vmx`: the rest of what GNU Mach programs rely on in virtual memory, checked mostly on
//! fresh child tasks (`task_create`, no threads) whose maps hold only what the test puts
//! there, so addresses and page counts are exact:
//!
//! - placement: `vm_allocate` anywhere is first fit from the bottom of user space, reuses
//!   a freed hole, and a fixed allocation over just-freed pages succeeds;
//! - lazy commit: 1 GiB allocated takes no frame (free frames and `resident_size` before
//!   and after), a touched page takes one;
//! - `vm_wire` (its pages made present; GNU Mach's 8 MiB unprivileged limit) and
//!   `vm_wire_all` (`VM_WIRE_CURRENT`, `VM_WIRE_FUTURE`, `VM_WIRE_NONE`, the host-privileged
//!   port only);
//! - `vm_set_size_limit`/`vm_get_size_limit`: the default (the machine's memory), the copy
//!   a child gets, `KERN_NO_SPACE` past the limit, `VM_PROT_NONE` mappings not counted,
//!   `KERN_NO_ACCESS` when raising the maximum without the privileged port;
//! - a 1 TiB inaccessible mapping inherited by copy and made shared memory at once; 32 MiB
//!   of touched memory made shared within the task's kernel-memory limit;
//! - `vm_machine_attribute`: GNU Mach's answers;
//! - shared memory: a `VM_INHERIT_SHARE` region is the same memory in parent and child
//!   (a child thread's store is seen by the parent), `vm_region_create_proxy` + `vm_map`
//!   map the same pages into another task and into the same task twice (a read-only proxy
//!   for good; with `copy`, a private copy), the pages outlive
//!   the region that made them until the last mapping goes, and gsync across the two tasks
//!   (a `GSYNC_SHARED` wait in the parent ended by a wake made through the child's map);
//! - every frame comes back once the children and mappings are gone.

#![no_std]
#![no_main]

extern crate alloc;

use alloc::string::String;
use alloc::vec;
use armach_tests::child::insn;
use armach_tests::host::host_priv;
use armach_tests::{Checks, poll_sleeping};
use core::mem::ManuallyDrop;
use libmach::abi::gnumach::{GSYNC_MUTATE, GSYNC_SHARED};
use libmach::abi::info::{TASK_BASIC_INFO, TH_STATE_WAITING, TaskBasicInfo};
use libmach::abi::thread_state::{AARCH64_THREAD_STATE, Aarch64ThreadState};
use libmach::abi::traps::{PAGE_SIZE, VM_MIN_USER_ADDRESS};
use libmach::ipc::{self, SendRight};
use libmach::mig::{gnumach, mach, mach_host, mach4};
use libmach::{Args, KernReturn, PortName, frame_counts, kern, thread, traps};

libmach::main!(main);

const P: u64 = PAGE_SIZE;
const GIB: u64 = 1 << 30;
const PROT_NONE: i32 = 0;
const PROT_R: i32 = 1;
const PROT_RW: i32 = 3;
const PROT_RX: i32 = 5;
const VM_INHERIT_SHARE: i32 = 0;
const VM_INHERIT_COPY: i32 = 1;
const VM_WIRE_NONE: i32 = 0;
const VM_WIRE_CURRENT: i32 = 1;
const VM_WIRE_FUTURE: i32 = 2;
/// `MATTR_CACHE`, `MATTR_VAL_CACHE_FLUSH` (`mach/vm_attributes.h`).
const MATTR_CACHE: i32 = 1;
const MATTR_VAL_CACHE_FLUSH: i32 = 6;
/// How long to wait for another thread to reach a state before calling it a failure.
const PATIENCE_MS: u64 = 10_000;

fn t() -> ipc::Client<ipc::Trap> {
    ipc::transport()
}

/// A task with an empty map (its size limits copied from ours).
fn empty_task() -> Result<SendRight, KernReturn> {
    Ok(mach::task_create(&mut t(), &ipc::task_self(), false)?.child_task)
}

fn basic_info(task: &SendRight) -> Option<TaskBasicInfo> {
    let mut w = [0i32; 32];
    mach::task_info(&mut t(), task, TASK_BASIC_INFO, &mut w).ok()?;
    TaskBasicInfo::from_words(&w)
}

fn resident_pages(task: &SendRight) -> u64 {
    basic_info(task).map_or(u64::MAX, |b| b.resident_size / P)
}

fn allocate(task: &SendRight, at: u64, size: u64, anywhere: bool) -> Result<u64, KernReturn> {
    let mut addr = at;
    mach::vm_allocate(&mut t(), task, &mut addr, size, anywhere)?;
    Ok(addr)
}

fn null_port() -> ManuallyDrop<SendRight> {
    ManuallyDrop::new(SendRight::from_name(PortName::NULL))
}

/// `vm_map` of `object` (null: zero-fill) anywhere in `task`.
fn map(
    task: &SendRight,
    size: u64,
    object: &SendRight,
    offset: u64,
    prot: i32,
    max: i32,
) -> Result<u64, KernReturn> {
    let mut addr = 0;
    mach::vm_map(
        &mut t(),
        task,
        &mut addr,
        size,
        0,
        true,
        object,
        offset,
        false,
        prot,
        max,
        VM_INHERIT_COPY,
    )?;
    Ok(addr)
}

fn read_u64(task: &SendRight, at: u64) -> Option<u64> {
    let r = mach::vm_read(&mut t(), task, at, P).ok()?;
    let bytes = r.data.as_bytes();
    Some(u64::from_le_bytes(bytes.get(..8)?.try_into().ok()?))
}

fn write_u64(task: &SendRight, at: u64, value: u64) -> Result<(), KernReturn> {
    let mut page = vec![0u8; P as usize];
    page[..8].copy_from_slice(&value.to_le_bytes());
    mach::vm_write(&mut t(), task, at, &page)
}

fn placement(c: &mut Checks) {
    let task = match empty_task() {
        Ok(task) => task,
        Err(e) => {
            c.check(false, "task_create", format_args!("{e:?}"));
            return;
        }
    };
    let a: alloc::vec::Vec<_> = (0..3).map(|_| allocate(&task, 0, P, true)).collect();
    let base = VM_MIN_USER_ADDRESS;
    c.check(
        a == [Ok(base), Ok(base + P), Ok(base + 2 * P)],
        "vm_allocate anywhere in an empty map: first fit from the bottom of user space",
        format_args!("{a:x?}"),
    );
    let _ = mach::vm_deallocate(&mut t(), &task, base + P, P);
    c.check_eq(
        "a one-page hole is filled by the next one-page allocation",
        allocate(&task, 0, P, true),
        Ok(base + P),
    );
    let _ = mach::vm_deallocate(&mut t(), &task, base + P, P);
    c.check_eq(
        "two pages do not fit the hole: placed after the last region",
        allocate(&task, 0, 2 * P, true),
        Ok(base + 3 * P),
    );
    // Fixed over just-freed pages.
    c.check_eq(
        "vm_deallocate of the first five pages",
        mach::vm_deallocate(&mut t(), &task, base, 5 * P),
        Ok(()),
    );
    c.check_eq(
        "vm_allocate fixed over just-freed pages lands where asked",
        allocate(&task, base + P, 3 * P, false),
        Ok(base + P),
    );
    c.check_eq(
        "vm_allocate fixed over an allocated page: KERN_NO_SPACE",
        allocate(&task, base + 3 * P, 2 * P, false),
        Err(KernReturn::NoSpace),
    );
    c.check_eq(
        "the freed page below it is found first",
        allocate(&task, 0, P, true),
        Ok(base),
    );
    // The same in our own map: a freed region's range is reused at once.
    let me = ipc::task_self();
    if let Ok(x) = allocate(&me, 0, 64 * P, true) {
        // SAFETY: our mapping, unused.
        let _ = unsafe { traps::vm_deallocate(traps::mach_task_self(), x, 64 * P) };
        c.check_eq(
            "our own map: 64 pages freed are where the next 64 go",
            allocate(&me, 0, 64 * P, true),
            Ok(x),
        );
        // SAFETY: as above.
        let _ = unsafe { traps::vm_deallocate(traps::mach_task_self(), x, 64 * P) };
    }
    end(task);
}

/// Terminate `task` and wait until it is gone.
fn end(task: SendRight) {
    let _ = mach::task_terminate(&mut t(), &task);
    let _ = armach_tests::wait_thread_terminated(task.name());
}

fn lazy_commit(c: &mut Checks, priv_host: &SendRight) {
    // Before the task exists: its own translation table root is freed with it.
    let at_start = frame_counts().free;
    let Ok(task) = empty_task() else {
        c.check(false, "task_create", format_args!(""));
        return;
    };
    // The default limit is the machine's memory: room for 1 GiB first.
    c.check_eq(
        "vm_set_size_limit to 4 GiB on the privileged port",
        gnumach::vm_set_size_limit(&mut t(), priv_host, &task, 4 * GIB, 4 * GIB),
        Ok(()),
    );
    let before = frame_counts().free;
    let at = allocate(&task, 0, GIB, true);
    let after = frame_counts().free;
    let info = basic_info(&task);
    c.note(format_args!(
        "1 GiB allocated: free frames {before} before, {after} after; {info:?}"
    ));
    c.check(at.is_ok(), "vm_allocate of 1 GiB", format_args!("{at:?}"));
    c.check_eq("1 GiB allocated takes no frame", after, before);
    c.check(
        info.is_some_and(|i| i.virtual_size == GIB && i.resident_size == 0),
        "task_info: 1 GiB virtual, nothing resident",
        format_args!("{info:?}"),
    );
    if let Ok(at) = at {
        let touched = write_u64(&task, at + GIB / 2, 0x1234);
        c.check(
            touched.is_ok() && resident_pages(&task) == 1,
            "a page written in the middle of it is the one page resident",
            format_args!("{touched:?}, {} pages", resident_pages(&task)),
        );
        c.check_eq(
            "it holds what was written",
            read_u64(&task, at + GIB / 2),
            Some(0x1234),
        );
    }
    end(task);
    c.check_eq(
        "every frame back once the task is gone",
        frame_counts().free,
        at_start,
    );
}

fn wiring(c: &mut Checks, priv_host: &SendRight) {
    let Ok(task) = empty_task() else {
        c.check(false, "task_create", format_args!(""));
        return;
    };
    let host = ipc::host_self();
    let Ok(at) = allocate(&task, 0, 16 * P, true) else {
        c.check(false, "vm_allocate 16 pages", format_args!(""));
        return;
    };
    c.check_eq("nothing resident before wiring", resident_pages(&task), 0);
    c.check_eq(
        "vm_wire of 16 pages on the privileged port",
        mach_host::vm_wire(&mut t(), priv_host, &task, at, 16 * P, PROT_RW),
        Ok(()),
    );
    c.check_eq("wired pages are resident", resident_pages(&task), 16);
    c.check_eq(
        "vm_wire of a hole: KERN_NO_SPACE",
        mach_host::vm_wire(&mut t(), priv_host, &task, at + 16 * P, P, PROT_R),
        Err(KernReturn::NoSpace),
    );
    let Ok(big) = allocate(&task, 0, 4 << 20, true) else {
        c.check(false, "vm_allocate 4 MiB", format_args!(""));
        return;
    };
    c.check_eq(
        "unprivileged vm_wire of 4 MiB (under GNU Mach's 8 MiB)",
        mach_host::vm_wire(&mut t(), &host, &task, big, 4 << 20, PROT_R),
        Ok(()),
    );
    c.check_eq(
        "unprivileged vm_wire past 8 MiB with what is wired: KERN_NO_ACCESS",
        mach_host::vm_wire(&mut t(), &host, &task, big, 4 << 20, PROT_R),
        Err(KernReturn::NoAccess),
    );
    c.check_eq(
        "unwiring needs no privilege",
        mach_host::vm_wire(&mut t(), &host, &task, big, 4 << 20, PROT_NONE),
        Ok(()),
    );
    // vm_wire_all.
    c.check_eq(
        "vm_wire_all on the unprivileged host port: KERN_INVALID_HOST",
        gnumach::vm_wire_all(&mut t(), &host, &task, VM_WIRE_FUTURE),
        Err(KernReturn::InvalidHost),
    );
    c.check_eq(
        "vm_wire_all with an unknown flag: KERN_INVALID_ARGUMENT",
        gnumach::vm_wire_all(&mut t(), priv_host, &task, 4),
        Err(KernReturn::InvalidArgument),
    );
    c.check_eq(
        "vm_wire_all(VM_WIRE_FUTURE)",
        gnumach::vm_wire_all(&mut t(), priv_host, &task, VM_WIRE_FUTURE),
        Ok(()),
    );
    let before = resident_pages(&task);
    let new = allocate(&task, 0, 8 * P, true);
    c.check(
        new.is_ok() && resident_pages(&task) == before + 8,
        "with VM_WIRE_FUTURE a new allocation is resident at once",
        format_args!("{new:?}: {before} then {} pages", resident_pages(&task)),
    );
    let none = map(&task, 4 * P, &null_port(), 0, PROT_NONE, PROT_RW);
    c.check(
        none.is_ok() && resident_pages(&task) == before + 8,
        "an inaccessible mapping is not wired",
        format_args!("{none:?}: {} pages", resident_pages(&task)),
    );
    c.check_eq(
        "vm_wire_all(VM_WIRE_NONE)",
        gnumach::vm_wire_all(&mut t(), priv_host, &task, VM_WIRE_NONE),
        Ok(()),
    );
    let before = resident_pages(&task);
    let lazy = allocate(&task, 0, 8 * P, true);
    c.check(
        lazy.is_ok() && resident_pages(&task) == before,
        "after VM_WIRE_NONE new allocations are lazy again",
        format_args!("{lazy:?}: {before} then {} pages", resident_pages(&task)),
    );
    c.check_eq(
        "vm_wire_all(VM_WIRE_CURRENT)",
        gnumach::vm_wire_all(&mut t(), priv_host, &task, VM_WIRE_CURRENT),
        Ok(()),
    );
    // 16 + 1024 (4 MiB) + 8 + 8 accessible pages; the inaccessible 4 stay out.
    c.check_eq(
        "VM_WIRE_CURRENT makes every accessible page resident",
        resident_pages(&task),
        16 + 1024 + 8 + 8,
    );
    if let Ok(none) = none {
        let _ = mach::vm_protect(&mut t(), &task, none, 4 * P, false, PROT_R);
        c.check_eq(
            "a wired-for region made accessible is wired",
            resident_pages(&task),
            16 + 1024 + 8 + 8 + 4,
        );
    }
    end(task);
}

fn limits(c: &mut Checks, priv_host: &SendRight) {
    let host = ipc::host_self();
    let total = libmach::kern::memory_size();
    let me = ipc::task_self();
    c.check(
        total >= frame_counts().total * P,
        "the machine's memory (host_info) holds at least the frames the kernel has",
        format_args!("{total}"),
    );
    c.check_eq(
        "a task's default limits: the machine's memory (host_info's memory_size)",
        gnumach::vm_get_size_limit(&mut t(), &me).map(|o| (o.current_limit, o.max_limit)),
        Ok((total, total)),
    );
    let Ok(task) = empty_task() else {
        c.check(false, "task_create", format_args!(""));
        return;
    };
    let limit = |task: &SendRight| {
        gnumach::vm_get_size_limit(&mut t(), task).map(|o| (o.current_limit, o.max_limit))
    };
    c.check_eq(
        "current above maximum: KERN_INVALID_ARGUMENT",
        gnumach::vm_set_size_limit(&mut t(), &host, &task, 2 << 20, 1 << 20),
        Err(KernReturn::InvalidArgument),
    );
    c.check_eq(
        "lowering both on the unprivileged host port",
        gnumach::vm_set_size_limit(&mut t(), &host, &task, 1 << 20, 2 << 20),
        Ok(()),
    );
    c.check_eq("vm_get_size_limit", limit(&task), Ok((1 << 20, 2 << 20)));
    c.check_eq(
        "raising the maximum without the privileged port: KERN_NO_ACCESS",
        gnumach::vm_set_size_limit(&mut t(), &host, &task, 1 << 20, 3 << 20),
        Err(KernReturn::NoAccess),
    );
    c.check_eq(
        "the limits did not change",
        limit(&task),
        Ok((1 << 20, 2 << 20)),
    );
    c.check_eq(
        "raising the current limit up to the maximum needs no privilege",
        gnumach::vm_set_size_limit(&mut t(), &host, &task, 2 << 20, 2 << 20),
        Ok(()),
    );
    c.check_eq(
        "and back to 1 MiB",
        gnumach::vm_set_size_limit(&mut t(), &host, &task, 1 << 20, 2 << 20),
        Ok(()),
    );
    let first = allocate(&task, 0, 1 << 20, true);
    c.check(
        first.is_ok(),
        "1 MiB fits a 1 MiB limit",
        format_args!("{first:?}"),
    );
    c.check_eq(
        "one page more: KERN_NO_SPACE",
        allocate(&task, 0, P, true),
        Err(KernReturn::NoSpace),
    );
    c.check_eq(
        "vm_map past the limit: KERN_NO_SPACE",
        map(&task, P, &null_port(), 0, PROT_RW, PROT_RW),
        Err(KernReturn::NoSpace),
    );
    let none = map(&task, 4 << 20, &null_port(), 0, PROT_NONE, PROT_NONE);
    c.check(
        none.is_ok(),
        "a mapping with maximum protection VM_PROT_NONE is not counted",
        format_args!("{none:?}"),
    );
    if let Ok(first) = first {
        c.check_eq(
            "vm_protect(set_maximum, VM_PROT_NONE) of half the first MiB",
            mach::vm_protect(&mut t(), &task, first, 512 << 10, true, PROT_NONE),
            Ok(()),
        );
        c.check(
            allocate(&task, 0, 512 << 10, true).is_ok(),
            "the half made inaccessible no longer counts: 512 KiB fit again",
            format_args!(""),
        );
    }
    // A child made without inherit_memory gets its parent's limits; with it, the defaults.
    let grand = mach::task_create(&mut t(), &task, false).map(|o| o.child_task);
    c.check_eq(
        "task_create copies the parent's limits",
        grand.as_ref().map(limit).ok(),
        Some(Ok((1 << 20, 2 << 20))),
    );
    let forked = mach::task_create(&mut t(), &task, true).map(|o| o.child_task);
    c.check_eq(
        "task_create(inherit_memory) gives the default limits (GNU Mach's vm_map_fork)",
        forked.as_ref().map(limit).ok(),
        Some(Ok((total, total))),
    );
    c.check_eq(
        "raising the maximum on the privileged port",
        gnumach::vm_set_size_limit(&mut t(), priv_host, &task, 8 << 20, 8 << 20),
        Ok(()),
    );
    c.check(
        allocate(&task, 0, 4 << 20, true).is_ok(),
        "4 MiB more fit under 8 MiB",
        format_args!(""),
    );
    for task in [grand.ok(), forked.ok(), Some(task)].into_iter().flatten() {
        end(task);
    }
}

/// A huge inaccessible mapping (not counted against the size limit) costs the kernel what
/// it holds, not its size: inheriting it by copy or sharing it finishes at once.
fn sparse(c: &mut Checks) {
    let Ok(task) = empty_task() else {
        c.check(false, "task_create", format_args!(""));
        return;
    };
    let tib = 1u64 << 40;
    let at = map(&task, tib, &null_port(), 0, PROT_NONE, PROT_NONE);
    c.check(
        at.is_ok(),
        "vm_map of 1 TiB with maximum protection VM_PROT_NONE (not counted)",
        format_args!("{at:?}"),
    );
    let copied = mach::task_create(&mut t(), &task, true).map(|o| o.child_task);
    c.check(
        copied.is_ok(),
        "task_create(inherit_memory) copies it (nothing to copy)",
        format_args!("{:?}", copied.as_ref().err()),
    );
    let proxy = at.map(|at| mach4::vm_region_create_proxy(&mut t(), &task, at, PROT_NONE, tib));
    c.check(
        matches!(proxy, Ok(Ok(_))),
        "vm_region_create_proxy makes it shared memory",
        format_args!("{:?}", proxy.as_ref().map(|p| p.as_ref().err())),
    );
    drop(proxy);
    if let Ok(copied) = copied {
        end(copied);
    }
    end(task);
}

/// 32 MiB of touched memory made shared: its index costs the task's kernel memory about
/// 1% of it, well within a task's limit.
fn big_share(c: &mut Checks) {
    const SIZE: u64 = 32 << 20;
    let me = ipc::task_self();
    let Ok(at) = allocate(&me, 0, SIZE, true) else {
        c.check(false, "vm_allocate 32 MiB", format_args!(""));
        return;
    };
    for page in (at..at + SIZE).step_by(P as usize) {
        // SAFETY: our fresh mapping.
        unsafe { (page as *mut u64).write_volatile(page) };
    }
    let proxy = mach4::vm_region_create_proxy(&mut t(), &me, at, PROT_R, SIZE);
    c.check(
        proxy.is_ok(),
        "vm_region_create_proxy of 32 MiB, every page touched",
        format_args!("{:?}", proxy.as_ref().err()),
    );
    if let (Ok(proxy), Ok(other)) = (proxy, empty_task()) {
        let there = map(&other, SIZE, &proxy.proxy, 0, PROT_R, PROT_R);
        let last = there.ok().and_then(|t| read_u64(&other, t + SIZE - P));
        c.check_eq(
            "another task maps it and reads its last page",
            last,
            Some(at + SIZE - P),
        );
        end(other);
    }
    // SAFETY: ours, no longer used.
    let _ = unsafe { traps::vm_deallocate(traps::mach_task_self(), at, SIZE) };
}

fn machine_attribute(c: &mut Checks) {
    let me = ipc::task_self();
    let Ok(at) = allocate(&me, 0, P, true) else {
        return;
    };
    let mut value = MATTR_VAL_CACHE_FLUSH;
    c.check_eq(
        "vm_machine_attribute(MATTR_CACHE) on our memory: KERN_INVALID_ADDRESS, as GNU Mach's pmap",
        mach::vm_machine_attribute(&mut t(), &me, at, P, MATTR_CACHE, &mut value),
        Err(KernReturn::InvalidAddress),
    );
    c.check_eq(
        "vm_machine_attribute below user space: KERN_INVALID_ARGUMENT",
        mach::vm_machine_attribute(&mut t(), &me, 0, P, MATTR_CACHE, &mut value),
        Err(KernReturn::InvalidArgument),
    );
    c.check_eq(
        "vm_machine_attribute on the host port: KERN_INVALID_ARGUMENT",
        mach::vm_machine_attribute(&mut t(), &ipc::host_self(), at, P, 1, &mut value),
        Err(KernReturn::InvalidArgument),
    );
    // SAFETY: our mapping, unused.
    let _ = unsafe { traps::vm_deallocate(traps::mach_task_self(), at, P) };
}

/// Start a thread in `task` that stores `value` (32 bits) at `word` and then spins:
/// `str w1, [x0]; b .`, in a code page of its own.
fn start_storer(task: &SendRight, word: u64, value: u32) -> Result<SendRight, KernReturn> {
    let code = allocate(task, 0, 2 * P, true)?;
    let mut page = vec![0u8; P as usize];
    // `str w1, [x0]`.
    page[0..4].copy_from_slice(&0xb900_0001u32.to_le_bytes());
    page[4..8].copy_from_slice(&insn::B_SELF.to_le_bytes());
    mach::vm_write(&mut t(), task, code, &page)?;
    mach::vm_protect(&mut t(), task, code, P, false, PROT_RX)?;
    let thread = mach::thread_create(&mut t(), task)?.child_thread;
    let mut state = Aarch64ThreadState {
        pc: code,
        sp: code + 2 * P,
        ..Aarch64ThreadState::default()
    };
    state.x[0] = word;
    state.x[1] = u64::from(value);
    mach::thread_set_state(
        &mut t(),
        &thread,
        AARCH64_THREAD_STATE as i32,
        &state.to_words(),
    )?;
    mach::thread_resume(&mut t(), &thread)?;
    Ok(thread)
}

/// The shared-memory checks, one round (`round` names it); the free frames before and
/// after.
fn shared(c: &mut Checks, round: &str) -> Option<(u64, u64)> {
    let free_before = frame_counts().free;
    let me = ipc::task_self();
    let (Ok(sh), Ok(cp)) = (allocate(&me, 0, 4 * P, true), allocate(&me, 0, P, true)) else {
        c.check(false, &lbl(round, "vm_allocate"), format_args!(""));
        return None;
    };
    let word = |at: u64| at as *mut u64;
    // SAFETY: our mappings, used only here and by the kernel on our behalf.
    unsafe {
        word(sh).write_volatile(0x5a5a);
        word(cp).write_volatile(0xc0c0);
    }
    let _ = mach::vm_inherit(&mut t(), &me, sh, 4 * P, VM_INHERIT_SHARE);
    let child = match mach::task_create(&mut t(), &me, true) {
        Ok(o) => o.child_task,
        Err(e) => {
            c.check(
                false,
                &lbl(round, "task_create(inherit_memory)"),
                format_args!("{e:?}"),
            );
            return None;
        }
    };
    let shared_flag = |task: &SendRight| {
        let mut at = sh;
        mach::vm_region(&mut t(), task, &mut at).map(|r| (at, r.is_shared))
    };
    c.check_eq(
        &lbl(
            round,
            "vm_region: the region is shared, in the parent and in the child",
        ),
        (shared_flag(&me), shared_flag(&child)),
        (Ok((sh, true)), Ok((sh, true))),
    );
    c.check_eq(
        &lbl(
            round,
            "VM_INHERIT_SHARE: the child sees what the parent wrote before",
        ),
        read_u64(&child, sh),
        Some(0x5a5a),
    );
    // SAFETY: as above.
    unsafe {
        word(sh + P).write_volatile(0x1111);
        word(cp).write_volatile(0xc1c1);
    }
    c.check_eq(
        &lbl(
            round,
            "a page the parent touches after task_create is the child's too",
        ),
        read_u64(&child, sh + P),
        Some(0x1111),
    );
    c.check_eq(
        &lbl(
            round,
            "a VM_INHERIT_COPY region is a copy: the parent's later write is not seen",
        ),
        read_u64(&child, cp),
        Some(0xc0c0),
    );
    let _ = write_u64(&child, sh + 2 * P, 0x2222);
    // SAFETY: as above.
    let seen = unsafe { word(sh + 2 * P).read_volatile() };
    c.check_eq(
        &lbl(
            round,
            "vm_write into the child's shared page is seen by the parent",
        ),
        seen,
        0x2222,
    );
    // A thread of the child stores; the parent sees it.
    let flag = sh + 3 * P;
    let mut storer = None;
    match start_storer(&child, flag, 77) {
        Ok(thread) => {
            storer = Some(thread);
            let ok = poll_sleeping(PATIENCE_MS, || {
                // SAFETY: as above.
                unsafe { (flag as *const u32).read_volatile() == 77 }
            });
            c.check(
                ok,
                &lbl(
                    round,
                    "a store by a thread of the child is seen by the parent",
                ),
                format_args!(""),
            );
        }
        Err(e) => {
            c.check(
                false,
                &lbl(round, "start a thread in the child"),
                format_args!("{e:?}"),
            );
        }
    }
    // gsync across the two tasks: the parent waits (GSYNC_SHARED) on a word of the shared
    // region; a helper wakes it through the child's map.
    let gword = sh + 3 * P + 64;
    let main = SendRight::from_name(traps::mach_thread_self());
    let main_name = main.name();
    let child_name = child.name();
    let helper = thread::spawn(move || {
        let main = ManuallyDrop::new(SendRight::from_name(main_name));
        let child = ManuallyDrop::new(SendRight::from_name(child_name));
        if !poll_sleeping(PATIENCE_MS, || {
            kern::thread_basic_info(&main).is_ok_and(|b| b.run_state == TH_STATE_WAITING)
        }) {
            return Err(KernReturn::Failure);
        }
        kern::gsync_wake(&child, gword as usize, 9, GSYNC_SHARED | GSYNC_MUTATE)
    });
    let r = kern::gsync_wait(&me, gword as usize, 0, 0, 0, GSYNC_SHARED);
    c.check_eq(
        &lbl(
            round,
            "a GSYNC_SHARED wait is ended by a shared wake made through the other task's map",
        ),
        r,
        Ok(()),
    );
    // SAFETY: as above.
    let stored = unsafe { (gword as *const u32).read_volatile() };
    c.check_eq(
        &lbl(
            round,
            "the wake's GSYNC_MUTATE, through the child, stored first",
        ),
        stored,
        9,
    );
    match helper {
        Ok(h) => c.check_eq(
            &lbl(round, "the waker saw the waiter blocked"),
            h.join(),
            Ok(()),
        ),
        Err(e) => c.check(false, &lbl(round, "spawn the waker"), format_args!("{e:?}")),
    };
    drop(main);

    // vm_region_create_proxy + vm_map: the same pages in another task, and twice in ours.
    let proxy = match mach4::vm_region_create_proxy(&mut t(), &me, sh, PROT_RW, 4 * P) {
        Ok(o) => o.proxy,
        Err(e) => {
            c.check(
                false,
                &lbl(round, "vm_region_create_proxy"),
                format_args!("{e:?}"),
            );
            return None;
        }
    };
    let Ok(other) = empty_task() else {
        return None;
    };
    let there = map(&other, 4 * P, &proxy, 0, PROT_RW, PROT_RW);
    c.check(
        there.is_ok(),
        &lbl(round, "vm_map of the proxy into another task"),
        format_args!("{there:?}"),
    );
    let there = there.unwrap_or(0);
    c.check_eq(
        &lbl(round, "the other task sees the region's pages"),
        read_u64(&other, there + P),
        Some(0x1111),
    );
    let _ = write_u64(&other, there, 0x3333);
    // SAFETY: as above.
    c.check_eq(
        &lbl(round, "its write is seen by the region's owner"),
        unsafe { word(sh).read_volatile() },
        0x3333,
    );
    c.check_eq(
        &lbl(round, "and by the child that shares the region"),
        read_u64(&child, sh),
        Some(0x3333),
    );
    let alias = map(&me, 2 * P, &proxy, P, PROT_RW, PROT_RW);
    if let Ok(alias) = alias {
        let mut at = alias;
        let region = mach::vm_region(&mut t(), &me, &mut at).map(|r| (r.offset, r.is_shared));
        c.check_eq(
            &lbl(
                round,
                "vm_region of the alias: its offset in the memory, not shared by inheritance",
            ),
            region,
            Ok((P, false)),
        );
        // SAFETY: our mapping of our own memory.
        unsafe { word(alias + P).write_volatile(0x4444) };
        // SAFETY: as above.
        let seen = unsafe { word(sh + 2 * P).read_volatile() };
        c.check_eq(
            &lbl(
                round,
                "vm_map at an offset into our own map: an alias of the same pages",
            ),
            seen,
            0x4444,
        );
        // SAFETY: our alias, no longer used.
        let _ = unsafe { traps::vm_deallocate(traps::mach_task_self(), alias, 2 * P) };
    } else {
        c.check(
            false,
            &lbl(round, "vm_map of the proxy into our own map"),
            format_args!("{alias:?}"),
        );
    }
    c.check_eq(
        &lbl(
            round,
            "vm_map past the proxy's range: KERN_INVALID_ARGUMENT",
        ),
        map(&me, 2 * P, &proxy, 3 * P, PROT_RW, PROT_RW),
        Err(KernReturn::InvalidArgument),
    );
    // A read-only proxy limits the mapping's protections.
    if let Ok(ro) = mach4::vm_region_create_proxy(&mut t(), &me, sh, PROT_R, 4 * P) {
        let ro_at = map(&other, P, &ro.proxy, 0, PROT_RW, PROT_RW);
        let region = ro_at.ok().map(|mut at| {
            mach::vm_region(&mut t(), &other, &mut at).map(|r| (r.protection, r.max_protection))
        });
        c.check_eq(
            &lbl(round, "a read-only proxy maps read-only"),
            region,
            Some(Ok((PROT_R, PROT_R))),
        );
        if let Ok(ro_at) = ro_at {
            c.check_eq(
                &lbl(
                    round,
                    "its maximum cannot be raised: KERN_PROTECTION_FAILURE",
                ),
                mach::vm_protect(&mut t(), &other, ro_at, P, true, PROT_RW),
                Err(KernReturn::ProtectionFailure),
            );
            c.check_eq(
                &lbl(round, "nor its protection: KERN_PROTECTION_FAILURE"),
                mach::vm_protect(&mut t(), &other, ro_at, P, false, PROT_RW),
                Err(KernReturn::ProtectionFailure),
            );
        }
        // With `copy`, a private copy, writable whatever the proxy allows.
        let mut copy_at = 0;
        let copied = mach::vm_map(
            &mut t(),
            &other,
            &mut copy_at,
            2 * P,
            0,
            true,
            &ro.proxy,
            0,
            true,
            PROT_RW,
            PROT_RW,
            VM_INHERIT_COPY,
        );
        c.check_eq(
            &lbl(round, "vm_map(copy) of a read-only proxy"),
            copied,
            Ok(()),
        );
        let _ = write_u64(&other, copy_at + P, 0x6666);
        // SAFETY: as above.
        let original = unsafe { word(sh + P).read_volatile() };
        c.check(
            read_u64(&other, copy_at) == Some(0x3333)
                && read_u64(&other, copy_at + P) == Some(0x6666)
                && original == 0x1111,
            &lbl(
                round,
                "the copy holds the pages' bytes, and a write to it stays in it",
            ),
            format_args!("original {original:#x}"),
        );
    }
    c.check_eq(
        &lbl(
            round,
            "a proxy bigger than the region: KERN_INVALID_ARGUMENT",
        ),
        mach4::vm_region_create_proxy(&mut t(), &me, sh, PROT_RW, 5 * P).map(|_| ()),
        Err(KernReturn::InvalidArgument),
    );
    // The owner lets go of the region: the pages live on in the others' maps.
    // SAFETY: the region is ours and no longer used.
    let _ = unsafe { traps::vm_deallocate(traps::mach_task_self(), sh, 4 * P) };
    drop(proxy);
    c.check_eq(
        &lbl(
            round,
            "pages outlive the region that made them while another map holds them",
        ),
        read_u64(&other, there),
        Some(0x3333),
    );
    end(child);
    end(other);
    // The child's map (and its reference to the shared memory) goes with its last thread,
    // which may still be ending on another CPU.
    if let Some(storer) = storer {
        let _ = armach_tests::wait_thread_terminated(storer.name());
    }
    // SAFETY: ours, unused.
    let _ = unsafe { traps::vm_deallocate(traps::mach_task_self(), cp, P) };
    // A thread's kernel stack is freed a little after its end: wait for the count to come
    // back (or give up and report what it is).
    poll_sleeping(PATIENCE_MS, || frame_counts().free >= free_before);
    let free_after = frame_counts().free;
    c.note(format_args!(
        "{round} round of shared memory: free frames {free_before} before, {free_after} after"
    ));
    Some((free_before, free_after))
}

fn lbl(round: &str, what: &str) -> String {
    alloc::format!("{round} round: {what}")
}

fn main(args: &Args) -> i32 {
    let mut c = Checks::new("vmx");
    let Some(priv_host) = host_priv(args) else {
        c.check(
            false,
            "the host-privileged port in argv[1]",
            format_args!(""),
        );
        return c.finish();
    };
    placement(&mut c);
    lazy_commit(&mut c, &priv_host);
    wiring(&mut c, &priv_host);
    limits(&mut c, &priv_host);
    sparse(&mut c);
    big_share(&mut c);
    machine_attribute(&mut c);
    // The first round leaves page tables in our own map; the second finds them there, so
    // every frame it takes must come back.
    if let (Some(_), Some((before, after))) = (shared(&mut c, "cold"), shared(&mut c, "warm")) {
        c.check_eq(
            "warm round: every frame of shared memory freed with its last mapping",
            after,
            before,
        );
    }
    c.finish()
}
