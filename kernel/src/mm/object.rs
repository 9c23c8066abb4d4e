//! Memory shared between address spaces: a memory object (GNU Mach's internal `vm_object`
//! of anonymous memory) owns the frames of its pages, zero-filled on first touch, and is
//! referenced by every region that maps it (`mm::regions::ObjectRef`), in one task or
//! several. A region that `task_create` shares with a child (`VM_INHERIT_SHARE`), or that
//! `vm_region_create_proxy` hands out, becomes backed by one; its frames go back to the
//! frame allocator only when the last reference is dropped, which each map does only
//! after clearing its entries and invalidating the TLBs (DESIGN.md 5). Not for private
//! memory: a region nobody shares keeps its frames in its own map (`mm::vm`).
//!
//! The object's page index is charged to the kernel-memory ledger of the task that made
//! the object (`mm::kmem`): one granule per page entry, as `mm::regions` charges its
//! entries, so a page the ledger cannot pay for is `KERN_RESOURCE_SHORTAGE`.

extern crate alloc;

use crate::mm::PhysAddr;
use crate::mm::kmem::{BTREE_BLOCKS_PER_ENTRY, Charge, Ledger};
use crate::sync::{IrqSpinLock, LockLevel};
use alloc::collections::BTreeMap;
use alloc::sync::Arc;
use mach_abi::KernReturn;

const _: () = assert!(crate::mm::kmem::fits_granule(
    crate::mm::regions::btree_node_bound(
        core::mem::size_of::<u64>(),
        core::mem::size_of::<PhysAddr>()
    ),
    8
));

struct Pages {
    /// Page index within the object -> its frame.
    frames: BTreeMap<u64, PhysAddr>,
    /// One granule for the root, one per entry.
    charge: Charge,
}

/// An anonymous memory object of `size` bytes.
pub struct MemObject {
    size: u64,
    pages: IrqSpinLock<Pages>,
    /// What to do with a frame when the object goes (the frame allocator's `free` in the
    /// kernel; host tests count).
    release: fn(PhysAddr),
}

impl MemObject {
    /// An empty object of `size` bytes (a multiple of the page size), charged to `ledger`.
    pub fn new(
        size: u64,
        ledger: &Arc<Ledger>,
        release: fn(PhysAddr),
    ) -> Result<Arc<MemObject>, KernReturn> {
        let charge = ledger.charge(1)?;
        Ok(Arc::new(MemObject {
            size,
            pages: IrqSpinLock::new(
                LockLevel::VmObject,
                Pages {
                    frames: BTreeMap::new(),
                    charge,
                },
            ),
            release,
        }))
    }

    pub fn size(&self) -> u64 {
        self.size
    }

    /// The frame of page `index`, if it has one.
    pub fn page(&self, index: u64) -> Option<PhysAddr> {
        self.pages.lock().frames.get(&index).copied()
    }

    /// The frame of page `index`, and whether it is new: if the page has none, the one
    /// `fill` gives becomes the object's. `KERN_RESOURCE_SHORTAGE` if the ledger cannot pay
    /// for the entry or `fill` gives nothing; `KERN_INVALID_ADDRESS` past the object's end.
    pub fn page_or_fill(
        &self,
        index: u64,
        fill: impl FnOnce() -> Option<PhysAddr>,
    ) -> Result<(PhysAddr, bool), KernReturn> {
        if index >= self.size / crate::mm::PAGE_SIZE {
            return Err(KernReturn::InvalidAddress);
        }
        let mut pages = self.pages.lock();
        if let Some(&pa) = pages.frames.get(&index) {
            return Ok((pa, false));
        }
        pages.charge.grow(BTREE_BLOCKS_PER_ENTRY)?;
        let Some(pa) = fill() else {
            let held = pages.charge.blocks();
            let _ = pages.charge.set(held - BTREE_BLOCKS_PER_ENTRY);
            return Err(KernReturn::ResourceShortage);
        };
        pages.frames.insert(index, pa);
        Ok((pa, true))
    }

    /// Give page `index` the frame `pa`, which the object owns from now on (a private
    /// region's resident page, when the region becomes shared). `KERN_RESOURCE_SHORTAGE`
    /// (and the frame still the caller's) if the ledger cannot pay for the entry.
    pub fn adopt(&self, index: u64, pa: PhysAddr) -> Result<(), KernReturn> {
        let mut pages = self.pages.lock();
        debug_assert!(!pages.frames.contains_key(&index));
        pages.charge.grow(BTREE_BLOCKS_PER_ENTRY)?;
        pages.frames.insert(index, pa);
        Ok(())
    }

    /// Forget every page without freeing its frame (they were adopted from a map that
    /// keeps them after all), giving their charge back.
    pub fn disown(&self) {
        let mut pages = self.pages.lock();
        pages.frames.clear();
        let _ = pages.charge.set(1);
    }

    /// The first page in `[from, to)` that has a frame, and its frame.
    pub fn next_page(&self, from: u64, to: u64) -> Option<(u64, PhysAddr)> {
        if from >= to {
            return None;
        }
        let pages = self.pages.lock();
        pages.frames.range(from..to).next().map(|(&i, &pa)| (i, pa))
    }

    /// Pages with a frame.
    pub fn resident_pages(&self) -> usize {
        self.pages.lock().frames.len()
    }
}

impl Drop for MemObject {
    fn drop(&mut self) {
        // The last reference is gone: every map that held one has already unmapped its
        // pages and invalidated its TLB entries, so no CPU can reach these frames.
        let pages = self.pages.get_mut();
        for (_, pa) in core::mem::take(&mut pages.frames) {
            (self.release)(pa);
        }
    }
}

/// A proxy of memory (GNU Mach's `memory_object_proxy`): `len` bytes of `object` from
/// `start`, mapped with at most `max_protection`. The kernel object behind a
/// `KObjectKind::PagerProxy` port, which keeps the object alive as long as the port lives.
#[derive(Debug)]
pub struct Proxy {
    pub object: Arc<MemObject>,
    pub start: u64,
    pub len: u64,
    pub max_protection: u32,
}

impl core::fmt::Debug for MemObject {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "MemObject({:#x} bytes)", self.size)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mm::kmem::{Budget, GRANULE};
    use alloc::boxed::Box;
    use core::sync::atomic::{AtomicU64, Ordering};

    static RELEASED: AtomicU64 = AtomicU64::new(0);
    fn count(_: PhysAddr) {
        RELEASED.fetch_add(1, Ordering::SeqCst);
    }

    #[test]
    fn pages_are_filled_once_charged_and_released_with_the_last_reference() {
        let budget = Box::leak(Box::new(Budget::new(usize::MAX)));
        let ledger = Arc::new(Ledger::new(budget, 3 * GRANULE));
        let object = MemObject::new(4 * 0x1000, &ledger, count).unwrap();
        let other = object.clone();
        assert_eq!(
            object.page_or_fill(0, || Some(PhysAddr(0x5000))),
            Ok((PhysAddr(0x5000), true))
        );
        // The second reference sees the same frame; no second fill.
        assert_eq!(
            other.page_or_fill(0, || panic!("filled twice")),
            Ok((PhysAddr(0x5000), false))
        );
        object.adopt(1, PhysAddr(0x7000)).unwrap();
        // Root + 2 entries: the ledger is full.
        assert_eq!(
            object.page_or_fill(2, || Some(PhysAddr(0x9000))),
            Err(KernReturn::ResourceShortage)
        );
        assert_eq!(
            object.page_or_fill(4, || Some(PhysAddr(0x9000))),
            Err(KernReturn::InvalidAddress)
        );
        assert_eq!(object.resident_pages(), 2);
        assert_eq!(object.next_page(0, 4), Some((0, PhysAddr(0x5000))));
        assert_eq!(object.next_page(1, 4), Some((1, PhysAddr(0x7000))));
        assert_eq!(object.next_page(2, 4), None);
        assert_eq!(object.next_page(1, 1), None);
        assert_eq!(ledger.charged(), 3 * GRANULE);
        let before = RELEASED.load(Ordering::SeqCst);
        drop(object);
        assert_eq!(RELEASED.load(Ordering::SeqCst), before);
        drop(other);
        assert_eq!(RELEASED.load(Ordering::SeqCst), before + 2);
        assert_eq!(ledger.charged(), 0);
    }
}
