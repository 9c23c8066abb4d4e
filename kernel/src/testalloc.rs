//! Host tests only: a global allocator that counts, per test thread and only while asked
//! to, the heap blocks allocated and freed, so tests can check what kernel data
//! structures really take from the heap (`mm::kmem`, `mm::regions`, the run queue).

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

struct Counting;

thread_local! {
    static TRACKING: Cell<bool> = const { Cell::new(false) };
    static LIVE: Cell<isize> = const { Cell::new(0) };
    static LARGEST: Cell<usize> = const { Cell::new(0) };
    static ALLOCS: Cell<usize> = const { Cell::new(0) };
}

// SAFETY: every call is passed on to the system allocator unchanged; the counters are
// thread-local cells that never allocate.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note_alloc(layout);
        // SAFETY: as the caller's contract.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if TRACKING.with(Cell::get) {
            LIVE.with(|l| l.set(l.get() - 1));
        }
        // SAFETY: as the caller's contract.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if TRACKING.with(Cell::get) {
            // A move to a new block, as the kernel's buddy heap would do it.
            LIVE.with(|l| l.set(l.get() - 1));
            if let Ok(new) = Layout::from_size_align(new_size, layout.align()) {
                note_alloc(new);
            }
        }
        // SAFETY: as the caller's contract.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

fn note_alloc(layout: Layout) {
    if TRACKING.with(Cell::get) {
        LIVE.with(|l| l.set(l.get() + 1));
        ALLOCS.with(|a| a.set(a.get() + 1));
        let block = crate::mm::kmem::block_size(layout.size(), layout.align());
        LARGEST.with(|m| m.set(m.get().max(block)));
    }
}

#[global_allocator]
static COUNTING: Counting = Counting;

/// Counts the blocks allocated and freed by the closures given to [`Tracker::run`] on this
/// thread (only there: the test's own allocations in between are not counted).
pub struct Tracker(());

impl Tracker {
    pub fn new() -> Self {
        LIVE.with(|l| l.set(0));
        LARGEST.with(|m| m.set(0));
        ALLOCS.with(|a| a.set(0));
        Tracker(())
    }

    pub fn run<T>(&mut self, f: impl FnOnce() -> T) -> T {
        TRACKING.with(|t| t.set(true));
        let r = f();
        TRACKING.with(|t| t.set(false));
        r
    }

    /// Blocks allocated minus blocks freed inside `run`.
    pub fn live_blocks(&self) -> usize {
        LIVE.with(Cell::get).max(0) as usize
    }

    /// Allocations made inside `run`.
    pub fn allocations(&self) -> usize {
        ALLOCS.with(Cell::get)
    }

    /// The largest block (as the kernel's buddy heap rounds it) allocated inside `run`.
    pub fn largest_block(&self) -> usize {
        LARGEST.with(Cell::get)
    }
}
