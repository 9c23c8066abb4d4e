//! The kernel heap (`alloc` for kernel objects: tasks, threads, maps, queues). It is one
//! fixed block of frames taken at boot (sized from RAM, `kern::boot`), so the heap never
//! moves frames in or out while tasks run and the free-frame count stays an exact leak
//! check; the bytes in use are a second one. What user tasks can make the kernel allocate
//! is charged against half of it first (`mm::kmem`), so the allocator's failure path (a
//! null pointer, which `alloc` turns into a panic) is never reached from user input.

use crate::mm::frame;
use crate::mm::layout::PAGE_SIZE;
use crate::sync::{IrqSpinLock, LockLevel};
use buddy_system_allocator::Heap;
use core::alloc::{GlobalAlloc, Layout};
use core::ptr::NonNull;

pub struct KernelHeap(IrqSpinLock<Heap<32>>);

#[global_allocator]
static HEAP: KernelHeap = KernelHeap(IrqSpinLock::new(LockLevel::Heap, Heap::empty()));

/// Take `bytes` (rounded to pages) of frames for the heap. Once, at boot.
pub fn init(bytes: u64) -> bool {
    let pages = bytes.div_ceil(PAGE_SIZE) as usize;
    let Some(pa) = frame::alloc(pages) else {
        return false;
    };
    let start = pa.to_linear().as_u64() as usize;
    // SAFETY: the frames were just allocated for the heap alone and are mapped read-write
    // in the linear map.
    unsafe {
        HEAP.0
            .lock()
            .add_to_heap(start, start + pages * PAGE_SIZE as usize)
    };
    true
}

/// (bytes in use, as the allocator rounds blocks, and bytes in total).
pub fn usage() -> (usize, usize) {
    let heap = HEAP.0.lock();
    (heap.stats_alloc_actual(), heap.stats_total_bytes())
}

// SAFETY: the buddy heap returns blocks that fit the layout and are not otherwise in use;
// the lock serialises every access, with interrupts masked.
unsafe impl GlobalAlloc for KernelHeap {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        self.0
            .lock()
            .alloc(layout)
            .map_or(core::ptr::null_mut(), NonNull::as_ptr)
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if let Some(ptr) = NonNull::new(ptr) {
            self.0.lock().dealloc(ptr, layout);
        }
    }
}
