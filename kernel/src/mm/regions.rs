//! The regions of a user address space: which ranges are allocated and with what
//! protection (current and maximum, GNU Mach's `vm_prot_t`). Pure bookkeeping, tested on
//! the host; `mm::vm` keeps the page tables in step with it.

extern crate alloc;

use alloc::collections::BTreeMap;
use alloc::vec::Vec;
use mach_abi::KernReturn;

/// `vm_prot_t` bits (`mach/vm_prot.h`).
pub type VmProt = u32;
pub const VM_PROT_READ: VmProt = 1;
pub const VM_PROT_WRITE: VmProt = 2;
pub const VM_PROT_EXECUTE: VmProt = 4;
pub const VM_PROT_DEFAULT: VmProt = VM_PROT_READ | VM_PROT_WRITE;
pub const VM_PROT_ALL: VmProt = VM_PROT_READ | VM_PROT_WRITE | VM_PROT_EXECUTE;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Region {
    pub end: u64,
    pub prot: VmProt,
    pub max_prot: VmProt,
}

/// Allocated ranges, keyed by start; ranges never overlap.
#[derive(Default, Debug)]
pub struct Regions {
    map: BTreeMap<u64, Region>,
}

impl Regions {
    pub fn new() -> Self {
        Regions {
            map: BTreeMap::new(),
        }
    }

    /// The region containing `addr`, as (start, region).
    pub fn lookup(&self, addr: u64) -> Option<(u64, Region)> {
        let (&start, &region) = self.map.range(..=addr).next_back()?;
        (addr < region.end).then_some((start, region))
    }

    fn overlaps(&self, start: u64, end: u64) -> bool {
        if let Some((_, r)) = self.map.range(..start).next_back()
            && r.end > start
        {
            return true;
        }
        self.map.range(start..end).next().is_some()
    }

    /// Record `[start, end)`; `KERN_NO_SPACE` if any of it is taken.
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
        self.map.insert(
            start,
            Region {
                end,
                prot,
                max_prot,
            },
        );
        Ok(())
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

    /// Split the region containing `addr` (strictly inside it) in two at `addr`.
    fn split_at(&mut self, addr: u64) {
        if let Some((start, r)) = self.lookup(addr)
            && start < addr
        {
            self.map.insert(start, Region { end: addr, ..r });
            self.map.insert(addr, r);
        }
    }

    fn starts_in(&self, start: u64, end: u64) -> Vec<u64> {
        self.map.range(start..end).map(|(&s, _)| s).collect()
    }

    /// Cut `[start, end)` out of every region; returns the ranges that were allocated.
    pub fn remove(&mut self, start: u64, end: u64) -> Vec<(u64, u64)> {
        if start >= end {
            return Vec::new();
        }
        self.split_at(start);
        self.split_at(end);
        let mut removed = Vec::new();
        for s in self.starts_in(start, end) {
            if let Some(r) = self.map.remove(&s) {
                removed.push((s, r.end));
            }
        }
        removed
    }

    /// Set the protection (or, with `set_max`, the maximum) of `[start, end)`, all of
    /// which must be allocated (`KERN_INVALID_ADDRESS` otherwise). Raising the current
    /// protection above the maximum is `KERN_PROTECTION_FAILURE`; lowering the maximum
    /// lowers the current protection with it (GNU Mach `vm_map_protect`). Returns the
    /// ranges changed with their new protection.
    pub fn protect(
        &mut self,
        start: u64,
        end: u64,
        prot: VmProt,
        set_max: bool,
    ) -> Result<Vec<(u64, u64, VmProt)>, KernReturn> {
        // Check everything first, so that a failure changes nothing.
        let mut at = start;
        while at < end {
            let (_, r) = self.lookup(at).ok_or(KernReturn::InvalidAddress)?;
            if !set_max && prot & !r.max_prot != 0 {
                return Err(KernReturn::ProtectionFailure);
            }
            at = r.end;
        }
        self.split_at(start);
        self.split_at(end);
        let mut changed = Vec::new();
        for s in self.starts_in(start, end) {
            if let Some(r) = self.map.get_mut(&s) {
                if set_max {
                    r.max_prot = prot;
                    r.prot &= prot;
                } else {
                    r.prot = prot;
                }
                changed.push((s, r.end, r.prot));
            }
        }
        Ok(changed)
    }

    /// Every region, in address order.
    pub fn iter(&self) -> impl Iterator<Item = (u64, Region)> + '_ {
        self.map.iter().map(|(&s, &r)| (s, r))
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

    const P: u64 = 0x1000;

    #[test]
    fn insert_refuses_overlap_and_lookup_finds() {
        let mut r = Regions::new();
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
        let mut r = Regions::new();
        assert_eq!(r.find_space(P, 0x10 * P, 0x100 * P), Some(0x10 * P));
        r.insert(0x10 * P, 0x12 * P, 3, 7).unwrap();
        r.insert(0x13 * P, 0x20 * P, 3, 7).unwrap();
        assert_eq!(r.find_space(P, 0x10 * P, 0x100 * P), Some(0x12 * P));
        assert_eq!(r.find_space(2 * P, 0x10 * P, 0x100 * P), Some(0x20 * P));
        assert_eq!(r.find_space(0x100 * P, 0x10 * P, 0x100 * P), None);
        assert_eq!(r.find_space(u64::MAX, 0x10 * P, u64::MAX), None);
    }

    #[test]
    fn remove_splits_and_reports() {
        let mut r = Regions::new();
        r.insert(0x10 * P, 0x20 * P, 3, 7).unwrap();
        r.insert(0x30 * P, 0x40 * P, 3, 7).unwrap();
        let removed = r.remove(0x18 * P, 0x38 * P);
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
        assert!(r.remove(0x50 * P, 0x60 * P).is_empty());
    }

    #[test]
    fn protect_checks_coverage_and_maximum() {
        let mut r = Regions::new();
        r.insert(0x10 * P, 0x20 * P, VM_PROT_DEFAULT, VM_PROT_DEFAULT)
            .unwrap();
        assert_eq!(
            r.protect(0x10 * P, 0x21 * P, VM_PROT_READ, false),
            Err(KernReturn::InvalidAddress)
        );
        assert_eq!(
            r.protect(0x10 * P, 0x11 * P, VM_PROT_ALL, false),
            Err(KernReturn::ProtectionFailure)
        );
        let changed = r.protect(0x12 * P, 0x14 * P, VM_PROT_READ, false).unwrap();
        assert_eq!(changed, vec![(0x12 * P, 0x14 * P, VM_PROT_READ)]);
        assert_eq!(r.lookup(0x11 * P).unwrap().1.prot, VM_PROT_DEFAULT);
        assert_eq!(r.lookup(0x13 * P).unwrap().1.prot, VM_PROT_READ);
        r.protect(0x10 * P, 0x20 * P, VM_PROT_READ, true).unwrap();
        assert_eq!(r.lookup(0x11 * P).unwrap().1.prot, VM_PROT_READ);
        assert_eq!(
            r.protect(0x10 * P, 0x20 * P, VM_PROT_DEFAULT, false),
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
}
