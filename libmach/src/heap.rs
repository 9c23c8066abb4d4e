//! The global allocator: a buddy heap (`buddy_system_allocator::Heap`) behind a [`SpinLock`]
//! that grows by 1 MiB chunks of `vm_allocate(anywhere)` memory, and never shrinks. Blocks of
//! [`LARGE`] bytes or more (page-aligned at most) bypass it and map their own pages with
//! `vm_allocate`, so freeing them gives the frames back to the kernel at once. Not a
//! general-purpose allocator: no per-thread caches, no trimming of the buddy heap.

use core::alloc::{GlobalAlloc, Layout};
use core::ptr::{self, NonNull};

use buddy_system_allocator::Heap;
use mach_abi::traps::PAGE_SIZE;

use crate::sync::SpinLock;
use crate::traps;

/// Block-size orders of the buddy heap: blocks up to 2^31 bytes.
const ORDER: usize = 32;
/// Bytes the buddy heap grows by (at least).
const GROW: usize = 1 << 20;
/// Size from which a block gets pages of its own.
const LARGE: usize = 64 << 10;

struct MachHeap {
    buddy: SpinLock<Heap<ORDER>>,
}

#[global_allocator]
static HEAP: MachHeap = MachHeap {
    buddy: SpinLock::new(Heap::new()),
};

fn is_large(layout: Layout) -> bool {
    layout.size() >= LARGE && layout.align() as u64 <= PAGE_SIZE
}

fn round_to_page(size: usize) -> u64 {
    (size as u64).div_ceil(PAGE_SIZE) * PAGE_SIZE
}

// SAFETY: blocks come either from the buddy heap, which hands each block out once and only
// over memory the task owns (added from vm_allocate), or from vm_allocate itself; every
// block is at least `layout.size()` bytes and aligned to `layout.align()` (buddy blocks are
// naturally aligned powers of two no smaller than the alignment; vm_allocate memory is
// page-aligned and large blocks ask for at most page alignment).
unsafe impl GlobalAlloc for MachHeap {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if is_large(layout) {
            return match traps::vm_allocate(
                traps::mach_task_self(),
                0,
                round_to_page(layout.size()),
                true,
            ) {
                Ok(addr) => addr as *mut u8,
                Err(_) => ptr::null_mut(),
            };
        }
        let mut heap = self.buddy.lock();
        if let Ok(block) = heap.alloc(layout) {
            return block.as_ptr();
        }
        // Grow by a chunk that surely holds a naturally aligned block of the size needed:
        // any span of twice a power of two contains an aligned block of that power.
        let need = layout.size().next_power_of_two().max(layout.align());
        let chunk = GROW.max(2 * need);
        let Ok(addr) = traps::vm_allocate(traps::mach_task_self(), 0, chunk as u64, true) else {
            return ptr::null_mut();
        };
        let start = addr as usize;
        // SAFETY: `[start, start + chunk)` was just mapped for this task and nothing else
        // uses it; it stays mapped for the life of the task.
        unsafe { heap.add_to_heap(start, start + chunk) };
        heap.alloc(layout)
            .map_or(ptr::null_mut(), |block| block.as_ptr())
    }

    unsafe fn dealloc(&self, block: *mut u8, layout: Layout) {
        if is_large(layout) {
            // SAFETY: the caller gives back a block of its own from `alloc` with this layout,
            // so it is a whole vm_allocate region that nothing uses any more.
            let result = unsafe {
                traps::vm_deallocate(
                    traps::mach_task_self(),
                    block as u64,
                    round_to_page(layout.size()),
                )
            };
            // A refusal leaves the pages mapped: a leak, not a fault.
            let _ = result;
            return;
        }
        if let Some(block) = NonNull::new(block) {
            self.buddy.lock().dealloc(block, layout);
        }
    }
}
