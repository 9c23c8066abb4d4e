//! Memory shared between address spaces: a memory object (GNU Mach's internal `vm_object`
//! of anonymous memory) owns the frames of its pages, zero-filled on first touch, and is
//! referenced by every region that maps it (`mm::regions::ObjectRef`), in one task or
//! several. A region that `task_create` shares with a child (`VM_INHERIT_SHARE`), or that
//! `vm_region_create_proxy` hands out, becomes backed by one; its frames go back to the
//! frame allocator only when the last reference is dropped, which each map does only
//! after clearing its entries and invalidating the TLBs (DESIGN.md 5). Not for private
//! memory: a region nobody shares keeps its frames in its own map (`mm::vm`).
//!
//! The object's page index is a B-tree of leaves of `LEAF_PAGES` frame addresses each (one
//! granule a leaf), charged to the kernel-memory ledger of the task that made the object
//! (`mm::kmem`): a granule per leaf and per tree node, about 1% of the memory it indexes,
//! so a page the ledger cannot pay for is `KERN_RESOURCE_SHORTAGE`.

extern crate alloc;

use crate::mm::PhysAddr;
use crate::mm::kmem::{Charge, Ledger, btree_nodes};
use crate::sync::{IrqSpinLock, LockLevel};
use alloc::boxed::Box;
use alloc::collections::BTreeMap;
use alloc::sync::Arc;
use mach_abi::KernReturn;

/// Pages a leaf indexes.
const LEAF_PAGES: u64 = 128;

/// A leaf: for each of its pages the frame's address with bit 0 set, or 0 for none
/// (frames are page-aligned, so bit 0 is free; frame 0 is a frame like any other).
type Leaf = [u64; LEAF_PAGES as usize];

const _: () = assert!(crate::mm::kmem::fits_granule(
    core::mem::size_of::<Leaf>(),
    core::mem::align_of::<Leaf>()
));
const _: () = assert!(crate::mm::kmem::fits_granule(
    crate::mm::regions::btree_node_bound(
        core::mem::size_of::<u64>(),
        core::mem::size_of::<Box<Leaf>>()
    ),
    8
));

struct Pages {
    /// Leaf index (page index / `LEAF_PAGES`) -> its leaf.
    leaves: BTreeMap<u64, Box<Leaf>>,
    /// Pages with a frame.
    count: usize,
    /// One granule for the root, one per node besides it (an upper bound), one per leaf.
    charge: Charge,
}

impl Pages {
    /// Granules an object with `leaves` leaves needs: the object itself, the tree's root,
    /// its other nodes, the leaves.
    fn blocks(leaves: usize) -> usize {
        2 + btree_nodes(leaves) + leaves
    }

    fn get(&self, index: u64) -> Option<PhysAddr> {
        let leaf = self.leaves.get(&(index / LEAF_PAGES))?;
        let e = leaf[(index % LEAF_PAGES) as usize];
        (e != 0).then_some(PhysAddr(e & !1))
    }

    /// The slot of page `index`, its leaf made (and charged) if need be.
    fn slot(&mut self, index: u64) -> Result<&mut u64, KernReturn> {
        let key = index / LEAF_PAGES;
        if !self.leaves.contains_key(&key) {
            self.charge.set(Self::blocks(self.leaves.len() + 1))?;
            self.leaves.insert(key, Box::new([0; LEAF_PAGES as usize]));
        }
        let leaf = self
            .leaves
            .get_mut(&key)
            .ok_or(KernReturn::ResourceShortage)?;
        Ok(&mut leaf[(index % LEAF_PAGES) as usize])
    }

    /// Every page with a frame in `[from, to)`, in order, until `f` says stop (`false`).
    fn each(&self, from: u64, to: u64, f: &mut dyn FnMut(u64, PhysAddr) -> bool) {
        if from >= to {
            return;
        }
        for (&key, leaf) in self.leaves.range(from / LEAF_PAGES..=(to - 1) / LEAF_PAGES) {
            for (i, &e) in leaf.iter().enumerate() {
                let index = key * LEAF_PAGES + i as u64;
                if e != 0 && (from..to).contains(&index) && !f(index, PhysAddr(e & !1)) {
                    return;
                }
            }
        }
    }
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
        let charge = ledger.charge(Pages::blocks(0))?;
        Ok(Arc::new(MemObject {
            size,
            pages: IrqSpinLock::new(
                LockLevel::VmObject,
                Pages {
                    leaves: BTreeMap::new(),
                    count: 0,
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
        self.pages.lock().get(index)
    }

    /// The frame of page `index`, and whether it is new: if the page has none, the one
    /// `fill` gives becomes the object's. `KERN_RESOURCE_SHORTAGE` if the ledger cannot pay
    /// for the index or `fill` gives nothing; `KERN_INVALID_ADDRESS` past the object's end.
    pub fn page_or_fill(
        &self,
        index: u64,
        fill: impl FnOnce() -> Option<PhysAddr>,
    ) -> Result<(PhysAddr, bool), KernReturn> {
        if index >= self.size / crate::mm::PAGE_SIZE {
            return Err(KernReturn::InvalidAddress);
        }
        let mut pages = self.pages.lock();
        if let Some(pa) = pages.get(index) {
            return Ok((pa, false));
        }
        let slot = pages.slot(index)?;
        let pa = fill().ok_or(KernReturn::ResourceShortage)?;
        *slot = pa.as_u64() | 1;
        pages.count += 1;
        Ok((pa, true))
    }

    /// Give page `index` the frame `pa`, which the object owns from now on (a private
    /// region's resident page, when the region becomes shared). `KERN_RESOURCE_SHORTAGE`
    /// (and the frame still the caller's) if the ledger cannot pay for the index.
    pub fn adopt(&self, index: u64, pa: PhysAddr) -> Result<(), KernReturn> {
        let mut pages = self.pages.lock();
        let slot = pages.slot(index)?;
        debug_assert_eq!(*slot, 0);
        *slot = pa.as_u64() | 1;
        pages.count += 1;
        Ok(())
    }

    /// Forget every page without freeing its frame (they were adopted from a map that
    /// keeps them after all), giving their charge back.
    pub fn disown(&self) {
        let mut pages = self.pages.lock();
        pages.leaves.clear();
        pages.count = 0;
        let _ = pages.charge.set(Pages::blocks(0));
    }

    /// The first page in `[from, to)` that has a frame, and its frame.
    pub fn next_page(&self, from: u64, to: u64) -> Option<(u64, PhysAddr)> {
        let mut found = None;
        self.pages.lock().each(from, to, &mut |i, pa| {
            found = Some((i, pa));
            false
        });
        found
    }

    /// Pages with a frame.
    pub fn resident_pages(&self) -> usize {
        self.pages.lock().count
    }
}

impl Drop for MemObject {
    fn drop(&mut self) {
        // The last reference is gone: every map that held one has already unmapped its
        // pages and invalidated its TLB entries, so no CPU can reach these frames.
        let release = self.release;
        let pages = self.pages.get_mut();
        pages.each(0, u64::MAX, &mut |_, pa| {
            release(pa);
            true
        });
        pages.leaves.clear();
    }
}

/// A proxy of memory (GNU Mach's `memory_object_proxy`): `len` bytes of `object` from
/// `start`, mapped with at most `max_protection`. The kernel object behind a
/// `KObjectKind::PagerProxy` port, which keeps the object alive as long as the port lives;
/// charged a granule to the task it was made for.
pub struct Proxy {
    pub object: Arc<MemObject>,
    pub start: u64,
    pub len: u64,
    pub max_protection: u32,
    pub charge: Charge,
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
    fn pages_are_filled_once_charged_by_leaf_and_released_with_the_last_reference() {
        let budget = Box::leak(Box::new(Budget::new(usize::MAX)));
        // The object, the root, one node, one leaf.
        let ledger = Arc::new(Ledger::new(budget, 4 * GRANULE));
        let object = MemObject::new(400 * 0x1000, &ledger, count).unwrap();
        assert_eq!(ledger.charged(), 2 * GRANULE);
        let other = object.clone();
        assert_eq!(
            object.page_or_fill(0, || Some(PhysAddr(0))),
            Ok((PhysAddr(0), true))
        );
        // The second reference sees the same frame (frame 0 too); no second fill.
        assert_eq!(
            other.page_or_fill(0, || panic!("filled twice")),
            Ok((PhysAddr(0), false))
        );
        // The same leaf: nothing more to pay.
        object.adopt(127, PhysAddr(0x7000)).unwrap();
        assert_eq!(ledger.charged(), 4 * GRANULE);
        // Another leaf: the ledger is full, and the fill is not asked for.
        assert_eq!(
            object.page_or_fill(128, || panic!("filled without room")),
            Err(KernReturn::ResourceShortage)
        );
        assert_eq!(
            object.page_or_fill(400, || Some(PhysAddr(0x9000))),
            Err(KernReturn::InvalidAddress)
        );
        assert_eq!(object.resident_pages(), 2);
        assert_eq!(object.next_page(0, 400), Some((0, PhysAddr(0))));
        assert_eq!(object.next_page(1, 400), Some((127, PhysAddr(0x7000))));
        assert_eq!(object.next_page(1, 127), None);
        assert_eq!(object.next_page(128, 400), None);
        assert_eq!(object.next_page(5, 5), None);
        let before = RELEASED.load(Ordering::SeqCst);
        drop(object);
        assert_eq!(RELEASED.load(Ordering::SeqCst), before);
        drop(other);
        assert_eq!(RELEASED.load(Ordering::SeqCst), before + 2);
        assert_eq!(ledger.charged(), 0);
    }

    #[test]
    fn a_gibibyte_of_pages_costs_about_one_percent() {
        let budget = Box::leak(Box::new(Budget::new(usize::MAX)));
        let ledger = Arc::new(Ledger::new(budget, usize::MAX / 2));
        let pages = (1u64 << 30) / 0x1000;
        let object = MemObject::new(pages * 0x1000, &ledger, count).unwrap();
        for i in 0..pages {
            object.adopt(i, PhysAddr((i + 1) << 12)).unwrap();
        }
        assert_eq!(object.resident_pages(), pages as usize);
        // 2048 leaves and at most 410 nodes besides the root: under 2.5 MiB for 1 GiB.
        assert!(ledger.charged() <= (2 + 2048 + 410) * GRANULE);
        object.disown();
        assert_eq!(ledger.charged(), 2 * GRANULE);
        assert_eq!(object.next_page(0, pages), None);
    }
}
