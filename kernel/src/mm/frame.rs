//! Physical page frames: a buddy allocator (`buddy_system_allocator`'s intrusive `Heap`,
//! which keeps its free lists inside the free frames, so it needs no heap of its own) over
//! the RAM the device tree describes, minus everything reserved. It works on linear-map
//! addresses; callers see physical ones. Free and total counts are kept for tests.

use crate::mm::PhysAddr;
use crate::mm::layout::{LINEAR_BASE, PAGE_SHIFT, PAGE_SIZE};
use crate::sync::{IrqSpinLock, LockLevel};
use buddy_system_allocator::Heap;
use core::alloc::Layout;
use core::ptr::NonNull;
use core::sync::atomic::{AtomicU64, Ordering};

/// Largest block: 2^(ORDER-1) frames.
const ORDER: usize = 32;

static FRAMES: IrqSpinLock<Heap<ORDER>> = IrqSpinLock::new(LockLevel::Frames, Heap::empty());
static TOTAL: AtomicU64 = AtomicU64::new(0);
static FREE: AtomicU64 = AtomicU64::new(0);
/// The machine's RAM in bytes, as the device tree gives it: the frames above plus what the
/// kernel image, the device tree and the firmware hold.
static RAM: AtomicU64 = AtomicU64::new(0);

/// Record the machine's RAM (boot, once the device tree is read).
pub fn set_ram_size(bytes: u64) {
    RAM.store(bytes, Ordering::Relaxed);
}

/// The machine's RAM in bytes (GNU Mach's `vm_page_mem_size`, which counts every page of
/// its physical segments, the kernel's own among them).
pub fn ram_size() -> u64 {
    RAM.load(Ordering::Relaxed)
}

fn layout(count: usize) -> Option<Layout> {
    Layout::from_size_align(count.checked_mul(PAGE_SIZE as usize)?, PAGE_SIZE as usize).ok()
}

/// Hand the frames of `[base, base + size)` (page-aligned RAM, mapped in the linear map
/// and used by nothing else) to the allocator.
pub fn add_region(base: PhysAddr, size: u64) {
    let count = size >> PAGE_SHIFT;
    if count == 0 {
        return;
    }
    let start = base.to_linear().as_u64() as usize;
    let mut frames = FRAMES.lock();
    // SAFETY: the caller hands over unused RAM that the linear map covers read-write.
    unsafe { frames.add_to_heap(start, start + (count << PAGE_SHIFT) as usize) };
    TOTAL.fetch_add(count, Ordering::Relaxed);
    FREE.fetch_add(count, Ordering::Relaxed);
}

/// `count` contiguous frames, aligned to the next power of two of `count` pages.
pub fn alloc(count: usize) -> Option<PhysAddr> {
    let mut frames = FRAMES.lock();
    let ptr = frames.alloc(layout(count)?).ok()?;
    // Under the lock, so that the count always agrees with the allocator (`check`).
    FREE.fetch_sub(count as u64, Ordering::Relaxed);
    drop(frames);
    Some(PhysAddr(ptr.as_ptr() as u64 - LINEAR_BASE))
}

/// As `alloc`, with the frames zeroed.
pub fn alloc_zeroed(count: usize) -> Option<PhysAddr> {
    let pa = alloc(count)?;
    // SAFETY: the frames were just allocated, so nothing else refers to them, and RAM is
    // mapped read-write in the linear map.
    unsafe {
        core::ptr::write_bytes(
            pa.to_linear().as_mut_ptr::<u8>(),
            0,
            count * PAGE_SIZE as usize,
        )
    };
    Some(pa)
}

/// Give back `count` frames from `alloc` at `pa`.
pub fn free(pa: PhysAddr, count: usize) {
    let (Some(layout), Some(ptr)) = (
        layout(count),
        NonNull::new(pa.to_linear().as_mut_ptr::<u8>()),
    ) else {
        return;
    };
    let mut frames = FRAMES.lock();
    frames.dealloc(ptr, layout);
    FREE.fetch_add(count as u64, Ordering::Relaxed);
}

/// (free, total) frame counts.
pub fn counts() -> (u64, u64) {
    (FREE.load(Ordering::Relaxed), TOTAL.load(Ordering::Relaxed))
}

/// The counts against the allocator's own books (`checks=`), under its lock: `Err((free
/// frames by the allocator, free frames by the count, total by the allocator, total by
/// the count))` when they differ. The allocator's free frames are its bytes less those
/// handed out (as asked for, before its rounding up).
pub fn check() -> Result<(), (u64, u64, u64, u64)> {
    let frames = FRAMES.lock();
    let page = PAGE_SIZE;
    let total = frames.stats_total_bytes() as u64 / page;
    let free = (frames.stats_total_bytes() - frames.stats_alloc_user()) as u64 / page;
    let (counted_free, counted_total) = counts();
    if free == counted_free && total == counted_total {
        Ok(())
    } else {
        Err((free, counted_free, total, counted_total))
    }
}
