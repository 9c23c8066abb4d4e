//! The regions of a user address space: which ranges are allocated and with what
//! protection (current and maximum, GNU Mach's `vm_prot_t`). Pure bookkeeping, tested on
//! the host; `mm::vm` keeps the page tables in step with it.
//!
//! The map's heap nodes are charged to the task (`mm::kmem`): one granule per entry plus
//! one for the root, charged before any change that can add an entry (an insert, or a
//! split when a range ends inside a region), so a task that reaches its limit gets
//! `KERN_RESOURCE_SHORTAGE` and the map is unchanged. No operation allocates anything
//! else.

extern crate alloc;

use crate::mm::kmem::{self, BTREE_BLOCKS_PER_ENTRY, Charge, Ledger};
use crate::mm::object::MemObject;
use alloc::collections::BTreeMap;
use alloc::sync::Arc;
use mach_abi::KernReturn;

/// `vm_prot_t` bits (`mach/vm_prot.h`).
pub type VmProt = u32;
pub const VM_PROT_READ: VmProt = 1;
pub const VM_PROT_WRITE: VmProt = 2;
pub const VM_PROT_EXECUTE: VmProt = 4;
pub const VM_PROT_DEFAULT: VmProt = VM_PROT_READ | VM_PROT_WRITE;
pub const VM_PROT_ALL: VmProt = VM_PROT_READ | VM_PROT_WRITE | VM_PROT_EXECUTE;

/// `vm_inherit_t` values (`mach/vm_inherit.h`): what a child task made with inherited
/// memory gets of a region (`kern::task::Task::inherit_memory_from`): the same memory,
/// a copy, or nothing.
pub type VmInherit = u32;
pub const VM_INHERIT_SHARE: VmInherit = 0;
pub const VM_INHERIT_COPY: VmInherit = 1;
pub const VM_INHERIT_NONE: VmInherit = 2;
/// What a new region gets.
pub const VM_INHERIT_DEFAULT: VmInherit = VM_INHERIT_COPY;

/// What `vm_map` puts in the new range: zero-fill memory, a device's pages, or a
/// memory object's pages from an offset on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Backing {
    Anonymous,
    /// The contiguous frames from this one, as many as the range has pages, shared with
    /// the device and every other task that maps them (the caller checked that they are
    /// all the device's: `kern::device::DeviceMemory::frames_at`).
    Borrowed(crate::mm::PhysAddr),
    /// Shared memory: the object's pages, the range's first at `offset`.
    Object(ObjectRef),
    /// A private copy of the object's pages from `offset` on, made at once (`vm_map`
    /// with `copy`; GNU Mach copies on write).
    Copy(ObjectRef),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Region {
    pub end: u64,
    pub prot: VmProt,
    pub max_prot: VmProt,
    pub inheritance: VmInherit,
    /// The access `vm_wire` or `vm_wire_all` asked to be kept from faulting (GNU Mach's
    /// `wired_access`); `VM_PROT_NONE`: pageable.
    pub wired_access: VmProt,
    /// Wired now (GNU Mach's `wired_count != 0`): wiring asked for and the region
    /// accessible. Its pages are all present (`mm::vm`) and it counts in `size_wired`.
    pub wired: bool,
    /// The memory object the region maps, if it is shared memory (`mm::object`); `None`
    /// for the map's own anonymous memory.
    pub object: Option<ObjectRef>,
    /// Shared with another map by `task_create` (`VM_INHERIT_SHARE`): GNU Mach's
    /// `is_shared`, which `vm_region` reports.
    pub shared: bool,
}

/// A region's view of a memory object: the object, and the offset in it of the region's
/// first byte.
#[derive(Clone, Debug)]
pub struct ObjectRef {
    pub object: Arc<MemObject>,
    pub offset: u64,
}

impl PartialEq for ObjectRef {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.object, &other.object) && self.offset == other.offset
    }
}

impl Eq for ObjectRef {}

impl Region {
    /// The part of this region (which starts at `start`) from `at` on: the same
    /// attributes, the object's offset moved along.
    fn tail(&self, start: u64, at: u64) -> Region {
        let mut tail = self.clone();
        if let Some(o) = &mut tail.object {
            o.offset += at - start;
        }
        tail
    }

    /// GNU Mach's `vm_map_pageable_scan` rule: wired when wiring is asked for and the
    /// region can be accessed.
    fn rescan_wiring(&mut self) {
        self.wired = self.wired_access != VM_PROT_NONE && self.prot != VM_PROT_NONE;
    }
}

/// Bytes of a map's regions, as GNU Mach counts them for its limits (`vm_map`'s `size`,
/// `size_none`, `size_wired`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Sizes {
    /// Every region.
    pub total: u64,
    /// Regions whose maximum protection is `VM_PROT_NONE`: never accessible, not counted
    /// against the size limit.
    pub none: u64,
    /// Wired regions.
    pub wired: u64,
}

/// GNU Mach's `vm_map_enforce_limit`: whether `size` more bytes fit under `limit` beside
/// what the map holds (its accessible regions); `KERN_NO_SPACE` if not,
/// `KERN_INVALID_ARGUMENT` if the sum overflows.
pub fn enforce_limit(sizes: Sizes, size: u64, limit: u64) -> Result<(), KernReturn> {
    let counted = sizes.total - sizes.none;
    let new = counted
        .checked_add(size)
        .ok_or(KernReturn::InvalidArgument)?;
    if new > limit {
        return Err(KernReturn::NoSpace);
    }
    Ok(())
}

/// `VM_PROT_NONE`.
pub const VM_PROT_NONE: VmProt = 0;

/// An upper bound on a `BTreeMap` node's size for keys of `k` and values of `v` bytes
/// (parent pointer and indices, 11 keys and values, 12 edges for an internal node); the
/// host test `region_nodes_fit_a_granule` measures the real nodes.
pub const fn btree_node_bound(k: usize, v: usize) -> usize {
    16 + 11 * (k + v) + 12 * core::mem::size_of::<usize>()
}

const _: () = assert!(kmem::fits_granule(
    btree_node_bound(core::mem::size_of::<u64>(), core::mem::size_of::<Region>()),
    8
));

/// Allocated ranges, keyed by start; ranges never overlap.
pub struct Regions {
    map: BTreeMap<u64, Region>,
    /// `len + 1` granules (`BTREE_BLOCKS_PER_ENTRY` each), more during a change.
    charge: Charge,
}

impl Regions {
    /// An empty map charged to `ledger` (one granule, for the root node).
    pub fn new(ledger: &Arc<Ledger>) -> Result<Self, KernReturn> {
        Ok(Regions {
            map: BTreeMap::new(),
            charge: ledger.charge(1)?,
        })
    }

    /// Regions recorded.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Granules charged for the map now.
    pub fn charged_blocks(&self) -> usize {
        self.charge.blocks()
    }

    /// The region containing `addr`, as (start, region).
    pub fn lookup(&self, addr: u64) -> Option<(u64, Region)> {
        self.lookup_ref(addr).map(|(s, r)| (s, r.clone()))
    }

    /// As [`lookup`](Self::lookup), borrowed.
    pub fn lookup_ref(&self, addr: u64) -> Option<(u64, &Region)> {
        let (&start, region) = self.map.range(..=addr).next_back()?;
        (addr < region.end).then_some((start, region))
    }

    /// The region holding `addr` or, if none does, the first one above it.
    pub fn next_from(&self, addr: u64) -> Option<(u64, Region)> {
        self.lookup(addr)
            .or_else(|| self.map.range(addr..).next().map(|(&s, r)| (s, r.clone())))
    }

    /// Whether `[start, end)` may be wired for `access` (GNU Mach `vm_map_pageable` with
    /// its range check): `start` lies in a region, the regions run on without a hole to
    /// `end`, and each allows `access`; `KERN_NO_SPACE` otherwise.
    pub fn check_wire(&self, start: u64, end: u64, access: VmProt) -> Result<(), KernReturn> {
        let (_, mut region) = self.lookup_ref(start).ok_or(KernReturn::NoSpace)?;
        loop {
            if region.prot & access != access {
                return Err(KernReturn::NoSpace);
            }
            if region.end >= end {
                return Ok(());
            }
            match self.map.get(&region.end) {
                Some(next) => region = next,
                None => return Err(KernReturn::NoSpace),
            }
        }
    }

    fn overlaps(&self, start: u64, end: u64) -> bool {
        if let Some((_, r)) = self.map.range(..start).next_back()
            && r.end > start
        {
            return true;
        }
        self.map.range(start..end).next().is_some()
    }

    /// Record `[start, end)`; `KERN_NO_SPACE` if any of it is taken,
    /// `KERN_RESOURCE_SHORTAGE` if the task cannot pay for another entry.
    pub fn insert(
        &mut self,
        start: u64,
        end: u64,
        prot: VmProt,
        max_prot: VmProt,
    ) -> Result<(), KernReturn> {
        if start >= end {
            return Err(KernReturn::InvalidArgument);
        }
        if self.overlaps(start, end) {
            return Err(KernReturn::NoSpace);
        }
        self.charge.grow(BTREE_BLOCKS_PER_ENTRY)?;
        self.map.insert(
            start,
            Region {
                end,
                prot,
                max_prot,
                inheritance: VM_INHERIT_DEFAULT,
                wired_access: VM_PROT_NONE,
                wired: false,
                object: None,
                shared: false,
            },
        );
        Ok(())
    }

    /// Make the region that starts at `start` map `object` (its start at the object's
    /// `offset`).
    pub fn set_object(&mut self, start: u64, object: ObjectRef) {
        if let Some(r) = self.map.get_mut(&start) {
            r.object = Some(object);
        }
    }

    /// Mark the region that starts at `start` as shared with another map.
    pub fn set_shared(&mut self, start: u64) {
        if let Some(r) = self.map.get_mut(&start) {
            r.shared = true;
        }
    }

    /// The bytes of the map's regions, for the limits (`Sizes`).
    pub fn sizes(&self) -> Sizes {
        let mut sizes = Sizes::default();
        for (&start, r) in &self.map {
            let len = r.end - start;
            sizes.total += len;
            if r.max_prot == VM_PROT_NONE {
                sizes.none += len;
            }
            if r.wired {
                sizes.wired += len;
            }
        }
        sizes
    }

    /// GNU Mach's `vm_map_pageable`: ask that `[start, end)` not fault for `access`
    /// (`VM_PROT_NONE`: make it pageable again). `start` must lie in a region
    /// (`KERN_NO_SPACE`); with `check_range`, the regions must also run on without a hole
    /// to `end` and each allow `access` (`KERN_NO_SPACE`). The regions are cut at `start`
    /// and `end` (`KERN_RESOURCE_SHORTAGE` if the task cannot pay for that), and each
    /// accessible one is wired when `access` is not `VM_PROT_NONE`, unwired otherwise.
    pub fn pageable(
        &mut self,
        start: u64,
        end: u64,
        access: VmProt,
        check_range: bool,
    ) -> Result<(), KernReturn> {
        if check_range {
            self.check_wire(start, end, access)?;
        } else if self.lookup_ref(start).is_none() {
            return Err(KernReturn::NoSpace);
        }
        if start >= end {
            return Ok(());
        }
        self.charge_splits(start, end)?;
        self.split_at(start);
        self.split_at(end);
        for (_, r) in self.map.range_mut(start..end) {
            r.wired_access = access;
            r.rescan_wiring();
        }
        Ok(())
    }

    /// After a protection change over `[start, end)` (GNU Mach `vm_map_protect`): a region
    /// that is to be wired (or every region, when the map wires new mappings) wants its new
    /// protection wired, and one made inaccessible is unwired.
    pub fn rewire(&mut self, start: u64, end: u64, wiring_required: bool) {
        for (_, r) in self.map.range_mut(start..end) {
            if r.prot != VM_PROT_NONE && (r.wired_access != VM_PROT_NONE || wiring_required) {
                r.wired_access = r.prot;
            }
            r.rescan_wiring();
        }
    }

    /// The first and last addresses the map's regions cover, if it has any.
    pub fn bounds(&self) -> Option<(u64, u64)> {
        let (&first, _) = self.map.iter().next()?;
        let (_, last) = self.map.iter().next_back()?;
        Some((first, last.end))
    }

    /// The wired regions in `[start, end)`, clipped to it, as (start, end, protection).
    pub fn wired_in(&self, start: u64, end: u64) -> impl Iterator<Item = (u64, u64, VmProt)> + '_ {
        let first = self.lookup_ref(start).map_or(start, |(s, _)| s);
        self.map
            .range(first..end)
            .filter(|(_, r)| r.wired)
            .map(move |(&s, r)| (s.max(start), r.end.min(end), r.prot))
    }

    /// The lowest address at or above `min` where `size` bytes fit below `max`.
    pub fn find_space(&self, size: u64, min: u64, max: u64) -> Option<u64> {
        let mut candidate = min;
        for (&start, region) in self.map.range(..) {
            if region.end <= candidate {
                continue;
            }
            if start >= candidate && start - candidate >= size {
                break;
            }
            candidate = candidate.max(region.end);
        }
        let end = candidate.checked_add(size)?;
        (end <= max).then_some(candidate)
    }

    /// Whether `addr` lies strictly inside a region (a split there adds an entry).
    fn splits_at(&self, addr: u64) -> bool {
        self.lookup(addr).is_some_and(|(start, _)| start < addr)
    }

    /// Charge for the entries that splitting at `start` and `end` will add.
    fn charge_splits(&mut self, start: u64, end: u64) -> Result<(), KernReturn> {
        let splits = usize::from(self.splits_at(start)) + usize::from(self.splits_at(end));
        self.charge.grow(splits * BTREE_BLOCKS_PER_ENTRY)
    }

    /// Split the region containing `addr` (strictly inside it) in two at `addr`.
    fn split_at(&mut self, addr: u64) {
        if let Some((start, r)) = self.lookup(addr)
            && start < addr
        {
            let tail = r.tail(start, addr);
            self.map.insert(start, Region { end: addr, ..r });
            self.map.insert(addr, tail);
        }
    }

    /// Charge exactly what the map holds now (after entries went).
    fn settle(&mut self) {
        // Never more than is held (callers only remove entries since the last charge), so
        // this only gives back and cannot fail.
        let _ = self.charge.set(self.map.len() * BTREE_BLOCKS_PER_ENTRY + 1);
    }

    /// Cut `[start, end)` out of every region, calling `removed` with each range that was
    /// allocated. A hole inside one region adds an entry: `KERN_RESOURCE_SHORTAGE` (and
    /// nothing changed) if the task cannot pay for it. Nothing else needs a new entry.
    pub fn remove(
        &mut self,
        start: u64,
        end: u64,
        removed: &mut dyn FnMut(u64, u64, &Region),
    ) -> Result<(), KernReturn> {
        if start >= end {
            return Ok(());
        }
        // A region that starts below `start` keeps its head (the same entry, shortened).
        if let Some((s, r)) = self.lookup(start)
            && s < start
        {
            if r.end > end {
                self.charge.grow(BTREE_BLOCKS_PER_ENTRY)?;
            }
            self.map.insert(
                s,
                Region {
                    end: start,
                    ..r.clone()
                },
            );
            removed(start, r.end.min(end), &r);
            if r.end > end {
                self.map.insert(end, r.tail(s, end));
                return Ok(());
            }
        }
        // Regions that start inside go; the tail of one reaching past `end` moves (an
        // entry removed before one is added: never more entries than were charged). A
        // region's object reference goes only after `removed` has run.
        while let Some((&s, _)) = self.map.range(start..end).next() {
            let Some(r) = self.map.remove(&s) else { break };
            if r.end > end {
                removed(s, end, &r);
                self.map.insert(end, r.tail(s, end));
            } else {
                removed(s, r.end, &r);
            }
        }
        self.settle();
        Ok(())
    }

    /// Set the protection (or, with `set_max`, the maximum) of `[start, end)`, all of
    /// which must be allocated (`KERN_INVALID_ADDRESS` otherwise). Asking for more than
    /// the maximum, current or maximum protection alike, is `KERN_PROTECTION_FAILURE`: a
    /// maximum is never raised; lowering it lowers the current protection with it (GNU
    /// Mach `vm_map_protect`). Calls `changed` with each range changed and its new
    /// protection.
    pub fn protect(
        &mut self,
        start: u64,
        end: u64,
        prot: VmProt,
        set_max: bool,
        changed: &mut dyn FnMut(u64, u64, VmProt),
    ) -> Result<(), KernReturn> {
        // Check everything first, so that a failure changes nothing.
        let mut at = start;
        while at < end {
            let (_, r) = self.lookup_ref(at).ok_or(KernReturn::InvalidAddress)?;
            if prot & !r.max_prot != 0 {
                return Err(KernReturn::ProtectionFailure);
            }
            at = r.end;
        }
        if start >= end {
            return Ok(());
        }
        self.charge_splits(start, end)?;
        self.split_at(start);
        self.split_at(end);
        for (&s, r) in self.map.range_mut(start..end) {
            if set_max {
                r.max_prot = prot;
                r.prot &= prot;
            } else {
                r.prot = prot;
            }
            changed(s, r.end, r.prot);
        }
        Ok(())
    }

    /// Set the inheritance of the allocated parts of `[start, end)` (GNU Mach
    /// `vm_map_inherit`: holes are passed over); an unknown value is
    /// `KERN_INVALID_ARGUMENT`, and a split the task cannot pay for
    /// `KERN_RESOURCE_SHORTAGE`, with nothing changed.
    pub fn inherit(
        &mut self,
        start: u64,
        end: u64,
        inheritance: VmInherit,
    ) -> Result<(), KernReturn> {
        if !matches!(
            inheritance,
            VM_INHERIT_SHARE | VM_INHERIT_COPY | VM_INHERIT_NONE
        ) {
            return Err(KernReturn::InvalidArgument);
        }
        if start >= end {
            return Ok(());
        }
        self.charge_splits(start, end)?;
        self.split_at(start);
        self.split_at(end);
        for (_, r) in self.map.range_mut(start..end) {
            r.inheritance = inheritance;
        }
        Ok(())
    }

    /// Every region, in address order.
    pub fn iter(&self) -> impl Iterator<Item = (u64, &Region)> + '_ {
        self.map.iter().map(|(&s, r)| (s, r))
    }
}

/// `vm_allocate`'s size, rounded up to whole pages as GNU Mach does (`round_page`). A size
/// within a page of 2^64 wraps to 0 there, which `vm_map_enter` refuses:
/// `KERN_INVALID_ARGUMENT`. `size` is not 0 (that succeeds before any rounding).
pub fn allocate_size(size: u64, page: u64) -> Result<u64, KernReturn> {
    size.checked_next_multiple_of(page)
        .ok_or(KernReturn::InvalidArgument)
}

/// `vm_allocate` at a fixed address: `[start, end)` from the page-truncated address, or
/// `KERN_INVALID_ADDRESS` when it leaves `[min, max)` or wraps (GNU Mach `vm_map_enter`).
pub fn fixed_range(
    addr: u64,
    size: u64,
    page: u64,
    min: u64,
    max: u64,
) -> Result<(u64, u64), KernReturn> {
    let start = addr & !(page - 1);
    match start.checked_add(size) {
        Some(end) if start >= min && end <= max => Ok((start, end)),
        _ => Err(KernReturn::InvalidAddress),
    }
}

/// The range `vm_deallocate(addr, size)` removes: page-rounded with wrapping arithmetic, then
/// clipped to the map's `[min, max)` (GNU Mach `vm_deallocate` and `VM_MAP_RANGE_CHECK`).
/// Nothing outside the user range is an error: the part inside goes, possibly none.
pub fn deallocate_range(addr: u64, size: u64, page: u64, min: u64, max: u64) -> (u64, u64) {
    let mut start = addr & !(page - 1);
    let mut end = addr.wrapping_add(size).wrapping_add(page - 1) & !(page - 1);
    start = start.max(min);
    end = end.min(max);
    if start > end {
        start = end;
    }
    (start, end)
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::mm::kmem::{Budget, GRANULE};
    use alloc::boxed::Box;
    use alloc::vec::Vec;

    const P: u64 = 0x1000;

    fn ledger(limit_blocks: usize) -> Arc<Ledger> {
        let budget = Box::leak(Box::new(Budget::new(usize::MAX)));
        Arc::new(Ledger::new(budget, limit_blocks * GRANULE))
    }

    fn regions() -> Regions {
        Regions::new(&ledger(usize::MAX / GRANULE)).unwrap()
    }

    fn remove(r: &mut Regions, start: u64, end: u64) -> Result<Vec<(u64, u64)>, KernReturn> {
        let mut out = Vec::new();
        r.remove(start, end, &mut |s, e, _| out.push((s, e)))?;
        Ok(out)
    }

    fn protect(
        r: &mut Regions,
        start: u64,
        end: u64,
        prot: VmProt,
        set_max: bool,
    ) -> Result<Vec<(u64, u64, VmProt)>, KernReturn> {
        let mut out = Vec::new();
        r.protect(start, end, prot, set_max, &mut |s, e, p| {
            out.push((s, e, p))
        })?;
        Ok(out)
    }

    #[test]
    fn wiring_needs_contiguous_regions_that_allow_the_access() {
        let mut r = regions();
        r.insert(0x10 * P, 0x20 * P, VM_PROT_DEFAULT, VM_PROT_ALL)
            .unwrap();
        r.insert(0x20 * P, 0x30 * P, VM_PROT_READ, VM_PROT_ALL)
            .unwrap();
        r.insert(0x40 * P, 0x50 * P, VM_PROT_DEFAULT, VM_PROT_ALL)
            .unwrap();
        assert_eq!(r.check_wire(0x10 * P, 0x30 * P, VM_PROT_READ), Ok(()));
        assert_eq!(r.check_wire(0x18 * P, 0x18 * P, VM_PROT_READ), Ok(()));
        // Write is not allowed in the second region.
        assert_eq!(
            r.check_wire(0x10 * P, 0x21 * P, VM_PROT_WRITE),
            Err(KernReturn::NoSpace)
        );
        assert_eq!(r.check_wire(0x10 * P, 0x20 * P, VM_PROT_WRITE), Ok(()));
        // A hole, a start outside any region.
        assert_eq!(
            r.check_wire(0x10 * P, 0x41 * P, VM_PROT_READ),
            Err(KernReturn::NoSpace)
        );
        assert_eq!(
            r.check_wire(0x30 * P, 0x31 * P, 0),
            Err(KernReturn::NoSpace)
        );
    }

    #[test]
    fn sizes_and_the_limit_leave_out_inaccessible_regions() {
        let mut r = regions();
        r.insert(0x10 * P, 0x20 * P, VM_PROT_DEFAULT, VM_PROT_ALL)
            .unwrap();
        r.insert(0x20 * P, 0x30 * P, VM_PROT_NONE, VM_PROT_NONE)
            .unwrap();
        let sizes = r.sizes();
        assert_eq!(sizes.total, 0x20 * P);
        assert_eq!(sizes.none, 0x10 * P);
        // 0x10 pages count; 0x10 more fit under a limit of 0x20, 0x11 do not.
        assert_eq!(enforce_limit(sizes, 0x10 * P, 0x20 * P), Ok(()));
        assert_eq!(
            enforce_limit(sizes, 0x11 * P, 0x20 * P),
            Err(KernReturn::NoSpace)
        );
        assert_eq!(
            enforce_limit(sizes, u64::MAX, u64::MAX),
            Err(KernReturn::InvalidArgument)
        );
        // A maximum lowered to nothing stops counting (GNU Mach's `size_none`), from the
        // split point on.
        protect(&mut r, 0x18 * P, 0x20 * P, VM_PROT_NONE, true).unwrap();
        assert_eq!(r.sizes().none, 0x18 * P);
        // Lowering only the current protection changes nothing.
        protect(&mut r, 0x10 * P, 0x18 * P, VM_PROT_NONE, false).unwrap();
        assert_eq!(r.sizes().none, 0x18 * P);
        remove(&mut r, 0x20 * P, 0x30 * P).unwrap();
        assert_eq!(
            r.sizes(),
            Sizes {
                total: 0x10 * P,
                none: 0x8 * P,
                wired: 0
            }
        );
    }

    #[test]
    fn pageable_wires_accessible_regions_and_counts_them() {
        let mut r = regions();
        r.insert(0x10 * P, 0x20 * P, VM_PROT_DEFAULT, VM_PROT_ALL)
            .unwrap();
        r.insert(0x20 * P, 0x28 * P, VM_PROT_NONE, VM_PROT_ALL)
            .unwrap();
        r.insert(0x40 * P, 0x48 * P, VM_PROT_READ, VM_PROT_ALL)
            .unwrap();
        // A start in no region, a hole, an access refused: KERN_NO_SPACE, nothing wired.
        assert_eq!(
            r.pageable(0x30 * P, 0x41 * P, VM_PROT_READ, true),
            Err(KernReturn::NoSpace)
        );
        assert_eq!(
            r.pageable(0x10 * P, 0x41 * P, VM_PROT_NONE, true),
            Err(KernReturn::NoSpace)
        );
        assert_eq!(
            r.pageable(0x40 * P, 0x41 * P, VM_PROT_WRITE, true),
            Err(KernReturn::NoSpace)
        );
        assert_eq!(r.sizes().wired, 0);
        // Part of a region: cut there.
        r.pageable(0x12 * P, 0x14 * P, VM_PROT_READ, true).unwrap();
        assert_eq!(r.sizes().wired, 2 * P);
        assert_eq!(
            r.wired_in(0, u64::MAX).collect::<Vec<_>>(),
            vec![(0x12 * P, 0x14 * P, VM_PROT_DEFAULT)]
        );
        // Everything, unchecked (vm_wire_all): the inaccessible region stays unwired.
        let (lo, hi) = r.bounds().unwrap();
        assert_eq!((lo, hi), (0x10 * P, 0x48 * P));
        r.pageable(lo, hi, VM_PROT_DEFAULT, false).unwrap();
        assert_eq!(r.sizes().wired, 0x18 * P);
        // Made accessible while wiring is asked for: wired with its new protection.
        protect(&mut r, 0x20 * P, 0x28 * P, VM_PROT_READ, false).unwrap();
        r.rewire(0x20 * P, 0x28 * P, false);
        assert_eq!(r.sizes().wired, 0x20 * P);
        assert_eq!(r.lookup(0x21 * P).unwrap().1.wired_access, VM_PROT_READ);
        // Made inaccessible: unwired.
        protect(&mut r, 0x40 * P, 0x48 * P, VM_PROT_NONE, false).unwrap();
        r.rewire(0x40 * P, 0x48 * P, false);
        assert_eq!(r.sizes().wired, 0x18 * P);
        // Unwiring everything.
        r.pageable(lo, hi, VM_PROT_NONE, false).unwrap();
        assert_eq!(r.sizes().wired, 0);
        assert!(r.wired_in(0, u64::MAX).next().is_none());
        // A new protection does not wire a region nobody asked to wire, unless the map
        // wires everything new (VM_WIRE_FUTURE).
        protect(&mut r, 0x10 * P, 0x20 * P, VM_PROT_READ, false).unwrap();
        r.rewire(0x10 * P, 0x20 * P, false);
        assert_eq!(r.sizes().wired, 0);
        r.rewire(0x10 * P, 0x20 * P, true);
        assert_eq!(r.sizes().wired, 0x10 * P);
    }

    #[test]
    fn splits_keep_the_object_offsets_in_step() {
        use crate::mm::PhysAddr;
        let mut r = regions();
        let object = MemObject::new(0x40 * P, &ledger(100), |_: PhysAddr| {}).unwrap();
        r.insert(0x10 * P, 0x20 * P, VM_PROT_DEFAULT, VM_PROT_ALL)
            .unwrap();
        r.set_object(
            0x10 * P,
            ObjectRef {
                object: object.clone(),
                offset: 0x8 * P,
            },
        );
        let offset = |r: &Regions, at: u64| r.lookup(at).unwrap().1.object.unwrap().offset;
        protect(&mut r, 0x14 * P, 0x16 * P, VM_PROT_READ, false).unwrap();
        assert_eq!(offset(&r, 0x10 * P), 0x8 * P);
        assert_eq!(offset(&r, 0x15 * P), 0xc * P);
        assert_eq!(offset(&r, 0x17 * P), 0xe * P);
        remove(&mut r, 0x17 * P, 0x18 * P).unwrap();
        assert_eq!(offset(&r, 0x18 * P), 0x10 * P);
        // Every reference goes with its region.
        assert_eq!(Arc::strong_count(&object), 5);
        remove(&mut r, 0, 1 << 40).unwrap();
        assert_eq!(Arc::strong_count(&object), 1);
    }

    #[test]
    fn insert_refuses_overlap_and_lookup_finds() {
        let mut r = regions();
        r.insert(0x10 * P, 0x20 * P, VM_PROT_DEFAULT, VM_PROT_ALL)
            .unwrap();
        assert_eq!(r.insert(0x1f * P, 0x30 * P, 1, 7), Err(KernReturn::NoSpace));
        assert_eq!(r.insert(0, 0x11 * P, 1, 7), Err(KernReturn::NoSpace));
        assert_eq!(r.insert(0x12 * P, 0x13 * P, 1, 7), Err(KernReturn::NoSpace));
        r.insert(0x20 * P, 0x21 * P, 1, 7).unwrap();
        assert_eq!(r.lookup(0x1f * P + 5).map(|(s, _)| s), Some(0x10 * P));
        assert_eq!(r.lookup(0x21 * P), None);
        assert_eq!(r.lookup(0xf * P), None);
    }

    #[test]
    fn find_space_first_fit() {
        let mut r = regions();
        assert_eq!(r.find_space(P, 0x10 * P, 0x100 * P), Some(0x10 * P));
        r.insert(0x10 * P, 0x12 * P, 3, 7).unwrap();
        r.insert(0x13 * P, 0x20 * P, 3, 7).unwrap();
        assert_eq!(r.find_space(P, 0x10 * P, 0x100 * P), Some(0x12 * P));
        assert_eq!(r.find_space(2 * P, 0x10 * P, 0x100 * P), Some(0x20 * P));
        assert_eq!(r.find_space(0x100 * P, 0x10 * P, 0x100 * P), None);
        assert_eq!(r.find_space(u64::MAX, 0x10 * P, u64::MAX), None);
    }

    #[test]
    fn freed_ranges_are_found_first_and_can_be_taken_again_at_their_address() {
        let mut r = regions();
        let min = 0x10 * P;
        let mut at = Vec::new();
        for _ in 0..4 {
            let s = r.find_space(2 * P, min, 0x100 * P).unwrap();
            r.insert(s, s + 2 * P, VM_PROT_DEFAULT, VM_PROT_ALL)
                .unwrap();
            at.push(s);
        }
        assert_eq!(at, vec![0x10 * P, 0x12 * P, 0x14 * P, 0x16 * P]);
        // Free the second and third: the hole is the lowest fit for up to 4 pages.
        remove(&mut r, 0x12 * P, 0x16 * P).unwrap();
        assert_eq!(r.find_space(P, min, 0x100 * P), Some(0x12 * P));
        assert_eq!(r.find_space(4 * P, min, 0x100 * P), Some(0x12 * P));
        assert_eq!(r.find_space(5 * P, min, 0x100 * P), Some(0x18 * P));
        // A fixed range over just-freed pages goes in; one page more overlaps.
        assert_eq!(
            r.insert(0x13 * P, 0x17 * P, VM_PROT_DEFAULT, VM_PROT_ALL),
            Err(KernReturn::NoSpace)
        );
        r.insert(0x13 * P, 0x16 * P, VM_PROT_DEFAULT, VM_PROT_ALL)
            .unwrap();
        assert_eq!(r.find_space(P, min, 0x100 * P), Some(0x12 * P));
        assert_eq!(r.find_space(2 * P, min, 0x100 * P), Some(0x18 * P));
    }

    #[test]
    fn remove_splits_and_reports() {
        let mut r = regions();
        r.insert(0x10 * P, 0x20 * P, 3, 7).unwrap();
        r.insert(0x30 * P, 0x40 * P, 3, 7).unwrap();
        let removed = remove(&mut r, 0x18 * P, 0x38 * P).unwrap();
        assert_eq!(removed, vec![(0x18 * P, 0x20 * P), (0x30 * P, 0x38 * P)]);
        assert_eq!(
            r.lookup(0x17 * P).map(|(s, x)| (s, x.end)),
            Some((0x10 * P, 0x18 * P))
        );
        assert_eq!(
            r.lookup(0x38 * P).map(|(s, x)| (s, x.end)),
            Some((0x38 * P, 0x40 * P))
        );
        assert_eq!(r.lookup(0x19 * P), None);
        assert!(remove(&mut r, 0x50 * P, 0x60 * P).unwrap().is_empty());
    }

    #[test]
    fn inherit_splits_passes_holes_and_refuses_unknown_values() {
        let mut r = regions();
        r.insert(0x10 * P, 0x20 * P, VM_PROT_DEFAULT, VM_PROT_ALL)
            .unwrap();
        r.insert(0x30 * P, 0x40 * P, VM_PROT_DEFAULT, VM_PROT_ALL)
            .unwrap();
        assert_eq!(r.lookup(0x11 * P).unwrap().1.inheritance, VM_INHERIT_COPY);
        assert_eq!(
            r.inherit(0x10 * P, 0x20 * P, 3),
            Err(KernReturn::InvalidArgument)
        );
        // Across the hole: both regions' parts change, the hole stays one.
        r.inherit(0x18 * P, 0x38 * P, VM_INHERIT_NONE).unwrap();
        assert_eq!(r.lookup(0x17 * P).unwrap().1.inheritance, VM_INHERIT_COPY);
        assert_eq!(
            r.lookup(0x18 * P).unwrap(),
            (
                0x18 * P,
                Region {
                    end: 0x20 * P,
                    prot: VM_PROT_DEFAULT,
                    max_prot: VM_PROT_ALL,
                    inheritance: VM_INHERIT_NONE,
                    wired_access: VM_PROT_NONE,
                    wired: false,
                    object: None,
                    shared: false,
                }
            )
        );
        assert_eq!(r.lookup(0x25 * P), None);
        assert_eq!(r.lookup(0x30 * P).unwrap().1.inheritance, VM_INHERIT_NONE);
        assert_eq!(r.lookup(0x38 * P).unwrap().1.inheritance, VM_INHERIT_COPY);
        assert_eq!(r.len(), 4);
    }

    #[test]
    fn protect_checks_coverage_and_maximum() {
        let mut r = regions();
        r.insert(0x10 * P, 0x20 * P, VM_PROT_DEFAULT, VM_PROT_DEFAULT)
            .unwrap();
        assert_eq!(
            protect(&mut r, 0x10 * P, 0x21 * P, VM_PROT_READ, false),
            Err(KernReturn::InvalidAddress)
        );
        assert_eq!(
            protect(&mut r, 0x10 * P, 0x11 * P, VM_PROT_ALL, false),
            Err(KernReturn::ProtectionFailure)
        );
        let changed = protect(&mut r, 0x12 * P, 0x14 * P, VM_PROT_READ, false).unwrap();
        assert_eq!(changed, vec![(0x12 * P, 0x14 * P, VM_PROT_READ)]);
        assert_eq!(r.lookup(0x11 * P).unwrap().1.prot, VM_PROT_DEFAULT);
        assert_eq!(r.lookup(0x13 * P).unwrap().1.prot, VM_PROT_READ);
        protect(&mut r, 0x10 * P, 0x20 * P, VM_PROT_READ, true).unwrap();
        assert_eq!(r.lookup(0x11 * P).unwrap().1.prot, VM_PROT_READ);
        assert_eq!(
            protect(&mut r, 0x10 * P, 0x20 * P, VM_PROT_DEFAULT, false),
            Err(KernReturn::ProtectionFailure)
        );
        // The maximum is never raised again (a read-only mapping of shared or device
        // memory stays read-only).
        assert_eq!(
            protect(&mut r, 0x10 * P, 0x20 * P, VM_PROT_DEFAULT, true),
            Err(KernReturn::ProtectionFailure)
        );
    }

    #[test]
    fn gnu_mach_range_rules() {
        const MIN: u64 = 0x1_0000;
        const MAX: u64 = 1 << 48;
        assert_eq!(allocate_size(1, P), Ok(P));
        assert_eq!(allocate_size(MAX, P), Ok(MAX));
        assert_eq!(
            allocate_size(u64::MAX - 100, P),
            Err(KernReturn::InvalidArgument)
        );
        assert_eq!(allocate_size(u64::MAX - P + 1, P), Ok(u64::MAX - P + 1));
        assert_eq!(fixed_range(0x12345, P, P, MIN, MAX), Ok((0x12000, 0x13000)));
        assert_eq!(
            fixed_range(0, P, P, MIN, MAX),
            Err(KernReturn::InvalidAddress)
        );
        assert_eq!(
            fixed_range(MAX - P, 2 * P, P, MIN, MAX),
            Err(KernReturn::InvalidAddress)
        );
        assert_eq!(fixed_range(MAX - P, P, P, MIN, MAX), Ok((MAX - P, MAX)));
        assert_eq!(
            fixed_range(u64::MAX - P + 1, 2 * P, P, MIN, MAX),
            Err(KernReturn::InvalidAddress)
        );
        // Kernel half: clipped to nothing.
        let (s, e) = deallocate_range(0xffff_8000_0000_0000, P, P, MIN, MAX);
        assert_eq!(s, e);
        // Straddling the bottom and the top: only the user part.
        assert_eq!(deallocate_range(0, 0x2_0000, P, MIN, MAX), (MIN, 0x2_0000));
        assert_eq!(
            deallocate_range(MAX - P, 2 * P, P, MIN, MAX),
            (MAX - P, MAX)
        );
        // A size that wraps around 2^64: GNU Mach's arithmetic gives an empty range.
        let (s, e) = deallocate_range(0x2_0000, u64::MAX, P, MIN, MAX);
        assert_eq!(s, e);
        assert_eq!(
            deallocate_range(0x2_0010, 10, P, MIN, MAX),
            (0x2_0000, 0x2_1000)
        );
    }

    #[test]
    fn the_charge_follows_the_entries() {
        let mut r = regions();
        assert_eq!(r.charged_blocks(), 1);
        for i in 0..10 {
            r.insert((0x10 + 2 * i) * P, (0x11 + 2 * i) * P, 3, 7)
                .unwrap();
        }
        assert_eq!(r.charged_blocks(), 11);
        // A hole in the middle of a region: one more entry.
        r.insert(0x100 * P, 0x110 * P, 3, 7).unwrap();
        remove(&mut r, 0x104 * P, 0x105 * P).unwrap();
        assert_eq!((r.len(), r.charged_blocks()), (12, 13));
        // Protecting the inside of a region splits it in three.
        protect(&mut r, 0x101 * P, 0x102 * P, 1, false).unwrap();
        assert_eq!((r.len(), r.charged_blocks()), (14, 15));
        remove(&mut r, 0, 1 << 40).unwrap();
        assert_eq!((r.len(), r.charged_blocks()), (0, 1));
    }

    #[test]
    fn at_the_limit_nothing_changes_and_everything_can_go() {
        let l = ledger(4);
        let mut r = Regions::new(&l).unwrap();
        r.insert(0x10 * P, 0x20 * P, 3, 7).unwrap();
        r.insert(0x30 * P, 0x31 * P, 3, 7).unwrap();
        r.insert(0x40 * P, 0x41 * P, 3, 7).unwrap();
        assert_eq!(l.charged(), 4 * GRANULE);
        assert_eq!(
            r.insert(0x50 * P, 0x51 * P, 3, 7),
            Err(KernReturn::ResourceShortage)
        );
        // Punching a hole needs an entry the task cannot pay for: refused, map unchanged.
        assert_eq!(
            remove(&mut r, 0x14 * P, 0x15 * P),
            Err(KernReturn::ResourceShortage)
        );
        assert_eq!(
            protect(&mut r, 0x14 * P, 0x15 * P, 1, false),
            Err(KernReturn::ResourceShortage)
        );
        assert_eq!(
            r.lookup(0x14 * P).map(|(s, x)| (s, x.end, x.prot)),
            Some((0x10 * P, 0x20 * P, 3))
        );
        assert_eq!(r.len(), 3);
        // Cutting at a region's end needs no new entry.
        assert_eq!(
            remove(&mut r, 0x10 * P, 0x14 * P).unwrap(),
            vec![(0x10 * P, 0x14 * P)]
        );
        remove(&mut r, 0x30 * P, 0x31 * P).unwrap();
        assert_eq!(l.charged(), 3 * GRANULE);
        remove(&mut r, 0x16 * P, 0x17 * P).unwrap();
        assert_eq!(l.charged(), 4 * GRANULE);
        drop(r);
        assert_eq!(l.charged(), 0);
    }

    /// What the map takes from the heap, measured: never more blocks than it is charged
    /// for, each within a granule, and nothing besides the map's nodes.
    #[test]
    fn region_nodes_fit_a_granule() {
        use crate::testalloc::Tracker;
        let mut r = regions();
        let mut t = Tracker::new();
        let mut x: u64 = 99;
        for round in 0..20_000u64 {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let page = (x >> 33) % 4000;
            let len = 1 + (x >> 20) % 4;
            let (s, e) = ((0x100 + page) * P, (0x100 + page + len) * P);
            let _ = t.run(|| match round % 4 {
                0 | 1 => r.insert(s, e, 3, 7),
                2 => r.remove(s, e, &mut |_, _, _| {}),
                _ => r.protect(s, e, 1, false, &mut |_, _, _| {}),
            });
            assert!(t.live_blocks() <= r.charged_blocks(), "round {round}");
            assert!(t.largest_block() <= GRANULE);
        }
        assert!(
            r.len() > 500 && t.live_blocks() > 50,
            "{} {}",
            r.len(),
            t.live_blocks()
        );
        t.run(|| r.remove(0, 1 << 40, &mut |_, _, _| {})).unwrap();
        assert_eq!(r.charged_blocks(), 1);
        assert!(t.live_blocks() <= 1);
    }
}
