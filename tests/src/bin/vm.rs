//! `vm`: virtual memory through `vm_allocate`/`vm_deallocate`, measured with the temporary
//! `FRAME_COUNTS` trap. 4 MiB anywhere is filled and verified; touching it takes at least one
//! frame per page and deallocating gives them all back (strictly on a second, warm round at
//! the same address, where page tables already exist); fixed allocations land where asked;
//! a large heap block goes back to the kernel when freed. Nothing here allocates on the heap
//! between two frame counts.

#![no_std]
#![no_main]

extern crate alloc;

use alloc::vec::Vec;
use armach_tests::Checks;
use core::hint::black_box;
use libmach::abi::traps::{PAGE_SIZE, VM_MAX_USER_ADDRESS};
use libmach::{Args, KernReturn};
use libmach::{frame_counts, traps};

libmach::main!(main);

const REGION: u64 = 4 << 20;
const PAGES: u64 = REGION / PAGE_SIZE;
/// Page-table frames a kernel may keep after the first unmapping of a fresh range.
const KEPT_TABLES_MAX: u64 = 8;
/// A fixed address far from anything the kernel hands out by itself.
const FIXED: u64 = 0x10_0000_0000;

/// Free-frame counts around one allocate/touch/deallocate round.
struct Round {
    address: u64,
    before: u64,
    after_allocate: u64,
    after_touch: u64,
    after_deallocate: u64,
    verified: bool,
}

/// Touches the stack deeper than anything below goes, so stack growth does not show up in
/// the frame counts.
#[inline(never)]
fn prefault_stack() {
    let mut buf = [0u8; 32 << 10];
    for i in (0..buf.len()).step_by(PAGE_SIZE as usize) {
        buf[i] = 1;
    }
    black_box(&mut buf);
}

/// Writes a pattern to every `u64` and reads it back.
fn fill_and_verify(addr: u64, size: u64, seed: u64) -> bool {
    let words = (size / 8) as usize;
    // SAFETY: `[addr, addr + size)` is a mapping of ours nothing else refers to.
    let mem = unsafe { core::slice::from_raw_parts_mut(addr as *mut u64, words) };
    for (i, w) in mem.iter_mut().enumerate() {
        *w = (i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ seed;
    }
    mem.iter()
        .enumerate()
        .all(|(i, &w)| w == (i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ seed)
}

fn is_zero(addr: u64, size: u64) -> bool {
    // SAFETY: callers pass a fresh mapping of ours.
    unsafe { core::slice::from_raw_parts(addr as *const u64, (size / 8) as usize) }
        .iter()
        .all(|&w| w == 0)
}

/// One round: allocate (anywhere, or at `fixed`), touch, verify, deallocate.
fn round(fixed: Option<u64>) -> Result<Round, KernReturn> {
    let task = traps::mach_task_self();
    let before = frame_counts().free;
    let address = traps::vm_allocate(task, fixed.unwrap_or(0), REGION, fixed.is_none())?;
    let after_allocate = frame_counts().free;
    let verified = is_zero(address, REGION) && fill_and_verify(address, REGION, before);
    let after_touch = frame_counts().free;
    // SAFETY: the range is ours and nothing refers into it any more.
    unsafe { traps::vm_deallocate(task, address, REGION)? };
    let after_deallocate = frame_counts().free;
    Ok(Round {
        address,
        before,
        after_allocate,
        after_touch,
        after_deallocate,
        verified,
    })
}

fn report(c: &mut Checks, name: &str, r: &Round, strict: bool) {
    c.note(format_args!(
        "{} round at {:#x}: free frames {} before, {} allocated, {} touched, {} deallocated",
        name, r.address, r.before, r.after_allocate, r.after_touch, r.after_deallocate
    ));
    let what = alloc::format!(
        "{} round: 4 MiB zero-filled, then holds what was written",
        name
    );
    c.check(r.verified, &what, format_args!("at {:#x}", r.address));
    let used = r.before.saturating_sub(r.after_touch);
    let what = alloc::format!(
        "{} round: touching 4 MiB takes at least {} frames",
        name,
        PAGES
    );
    c.check(used >= PAGES, &what, format_args!("{} frames", used));
    if strict {
        let what = alloc::format!("{} round: free frames after vm_deallocate == before", name);
        c.check_eq(&what, r.after_deallocate, r.before);
    } else {
        let kept = r.before.saturating_sub(r.after_deallocate);
        let what = alloc::format!(
            "{} round: vm_deallocate gives back all but at most {} (page-table) frames",
            name,
            KEPT_TABLES_MAX
        );
        c.check(
            kept <= KEPT_TABLES_MAX && r.after_deallocate <= r.before,
            &what,
            format_args!("{} before, {} after", r.before, r.after_deallocate),
        );
    }
}

fn fixed_checks(c: &mut Checks) {
    let task = traps::mach_task_self();
    let size = 16 * PAGE_SIZE;
    for wanted in [FIXED, VM_MAX_USER_ADDRESS - size] {
        match traps::vm_allocate(task, wanted, size, false) {
            Ok(addr) => {
                let ok =
                    addr == wanted && is_zero(addr, size) && fill_and_verify(addr, size, wanted);
                c.check(
                    ok,
                    "vm_allocate(fixed) lands where asked, zeroed, usable",
                    format_args!("asked {:#x}, got {:#x}", wanted, addr),
                );
                let seen = traps::vm_allocate(task, wanted + PAGE_SIZE, PAGE_SIZE, false);
                c.check(
                    seen == Err(KernReturn::NoSpace),
                    "vm_allocate(fixed) inside it fails with KERN_NO_SPACE",
                    format_args!("{:?}", seen),
                );
                // SAFETY: our mapping, no longer used.
                let freed = unsafe { traps::vm_deallocate(task, addr, size) };
                c.check_eq("vm_deallocate(fixed range)", freed, Ok(()));
            }
            Err(code) => {
                c.check(
                    false,
                    "vm_allocate(fixed)",
                    format_args!("at {:#x}: {}", wanted, code),
                );
            }
        }
    }
}

fn heap_checks(c: &mut Checks) {
    // Many small blocks through the buddy heap.
    let mut boxes: Vec<Vec<u32>> = Vec::new();
    for i in 0..2000u32 {
        boxes.push((0..(i % 67)).map(|j| j * i).collect());
    }
    let ok = boxes
        .iter()
        .enumerate()
        .all(|(i, v)| v.iter().enumerate().all(|(j, &x)| x == j as u32 * i as u32));
    drop(boxes);
    c.check(
        ok,
        "2000 small heap blocks hold what was written",
        format_args!("sizes 0..67 words"),
    );

    // A large block has pages of its own, which go back to the kernel when it is freed.
    let before = frame_counts().free;
    let mut big: Vec<u8> = Vec::with_capacity(3 << 20);
    big.resize(3 << 20, 0xab);
    let during = frame_counts().free;
    let ok = big.iter().all(|&b| b == 0xab);
    drop(big);
    let after = frame_counts().free;
    c.note(format_args!(
        "3 MiB heap block: free frames {} before, {} in use, {} after",
        before, during, after
    ));
    c.check(
        ok,
        "3 MiB heap block holds what was written",
        format_args!("{} bytes", 3 << 20),
    );
    c.check(
        before.saturating_sub(during) >= 768 && after == before,
        "3 MiB heap block takes >= 768 frames and gives them all back",
        format_args!("{} before, {} during, {} after", before, during, after),
    );
}

fn main(_args: &Args) -> i32 {
    let mut c = Checks::new("vm");
    prefault_stack();
    let counts = frame_counts();
    c.note(format_args!(
        "{} of {} frames free",
        counts.free, counts.total
    ));
    c.check(
        counts.free > 0 && counts.free <= counts.total,
        "FRAME_COUNTS is sane",
        format_args!("{} free of {}", counts.free, counts.total),
    );

    match round(None) {
        Ok(cold) => {
            report(&mut c, "cold", &cold, false);
            match round(Some(cold.address)) {
                Ok(warm) => report(&mut c, "warm", &warm, true),
                Err(code) => {
                    c.check(
                        false,
                        "warm round: vm_allocate/vm_deallocate at the same address",
                        format_args!("{}", code),
                    );
                }
            }
        }
        Err(code) => {
            c.check(
                false,
                "cold round: vm_allocate/vm_deallocate of 4 MiB",
                format_args!("{}", code),
            );
        }
    }
    fixed_checks(&mut c);
    heap_checks(&mut c);
    c.check_eq("total frames unchanged", frame_counts().total, counts.total);
    c.finish()
}
