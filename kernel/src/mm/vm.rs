//! A task's address space: its regions (`mm::regions`) kept in step with its page tables
//! (`arch::uspace`). Pages are allocated zeroed on first touch (or when wired): the map's
//! own frames, or for shared memory its memory object's (`mm::object`). Placement, the size
//! limits and wiring follow GNU Mach's `vm_map`. This is also where the kernel reads and
//! writes user memory: `copyin`/`copyout` translate in software and never fault, so a bad
//! user pointer is an error value, never a kernel exception.

extern crate alloc;

use crate::arch::uspace::{AddressSpace, UserPageTable, UserPerm};
use crate::mm::PAGE_SIZE;
use crate::mm::kmem::Ledger;
use crate::mm::object::MemObject;
use crate::mm::regions::{
    self, ObjectRef, Region, Regions, VM_PROT_ALL, VM_PROT_DEFAULT, VM_PROT_EXECUTE, VM_PROT_NONE,
    VM_PROT_READ, VM_PROT_WRITE, VmProt,
};
use crate::mm::{PhysAddr, align_down, align_up, frame};
use alloc::sync::Arc;
use arrayvec::ArrayVec;
use mach_abi::KernReturn;
use mach_abi::traps::{VM_MAX_USER_ADDRESS, VM_MIN_USER_ADDRESS};

/// What a user access wants of a page.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    Read,
    Write,
    Execute,
}

impl Access {
    /// The protection that allows the access. Reading is allowed wherever anything is,
    /// as the MMU allows it to the program itself (`perm`: no AArch64 EL0 mapping is
    /// writable or executable without being readable), so a kernel copy sees what the
    /// program sees.
    fn needs(self) -> VmProt {
        match self {
            Access::Read => VM_PROT_READ | VM_PROT_WRITE | VM_PROT_EXECUTE,
            Access::Write => VM_PROT_WRITE,
            Access::Execute => VM_PROT_EXECUTE,
        }
    }
}

fn perm(prot: VmProt) -> UserPerm {
    UserPerm {
        read: prot & (VM_PROT_READ | VM_PROT_WRITE | VM_PROT_EXECUTE) != 0,
        write: prot & VM_PROT_WRITE != 0,
        execute: prot & VM_PROT_EXECUTE != 0,
    }
}

/// W^X: no user mapping is writable and executable at once.
fn writable_and_executable(prot: VmProt) -> bool {
    prot & VM_PROT_WRITE != 0 && prot & VM_PROT_EXECUTE != 0
}

/// `[addr, addr + size)` widened to whole pages, as GNU Mach's VM calls take it;
/// `KERN_INVALID_ADDRESS` past the user address space.
fn page_span(addr: u64, size: u64) -> Result<(u64, u64), KernReturn> {
    let start = align_down(addr, PAGE_SIZE);
    let end = addr
        .checked_add(size)
        .map(|e| align_up(e, PAGE_SIZE))
        .ok_or(KernReturn::InvalidAddress)?;
    if end > VM_MAX_USER_ADDRESS {
        return Err(KernReturn::InvalidAddress);
    }
    Ok((start, end))
}

/// Borrowed ranges a map can hold (`vm_map` of device memory beyond that: `KERN_NO_SPACE`).
pub const MAX_BORROWED: usize = 8;

/// A range of a map backed by a device's frames: `pages` pages from `va`, the frames from
/// `frame` on. Never freed with the map.
#[derive(Clone, Copy, Debug)]
struct BorrowedRange {
    va: u64,
    frame: PhysAddr,
    pages: u64,
}

impl BorrowedRange {
    fn holds_frame(&self, pa: PhysAddr) -> bool {
        pa.0 >= self.frame.0 && pa.0 - self.frame.0 < self.pages * PAGE_SIZE
    }
}

/// What a task may have wired without the host-privileged port (GNU Mach `vm_wire`'s
/// 8 MiB, counted over everything the map has wired).
pub const UNPRIVILEGED_WIRE_MAX: u64 = 8 << 20;

/// `vm_wire_all`'s flags (`mach/vm_wire.h`).
pub const VM_WIRE_NONE: u32 = 0;
pub const VM_WIRE_CURRENT: u32 = 1;
pub const VM_WIRE_FUTURE: u32 = 2;
pub const VM_WIRE_ALL: u32 = VM_WIRE_CURRENT | VM_WIRE_FUTURE;

/// A new map's size limits (GNU Mach: the machine's memory size, `vm_page_mem_size`,
/// all of RAM; before the RAM is known, as in host tests, the frames the allocator has).
fn default_size_limit() -> u64 {
    match frame::ram_size() {
        0 => frame::counts().1 * PAGE_SIZE,
        ram => ram,
    }
}

/// Give a frame of a memory object back (its last reference gone).
fn free_frame(pa: PhysAddr) {
    frame::free(pa, 1);
}

pub use crate::mm::regions::Backing;

pub struct VmMap {
    regions: Regions,
    /// The task's ledger, for the memory objects its regions become (`share_region`).
    ledger: Arc<Ledger>,
    /// `vm_set_size_limit`'s limits: what the accessible regions may add up to, and how
    /// high an unprivileged caller may set that.
    size_cur_limit: u64,
    size_max_limit: u64,
    /// `VM_WIRE_FUTURE`: new mappings are wired (GNU Mach `wiring_required`).
    wiring_required: bool,
    pt: UserPageTable,
    /// Ranges mapped from frames the map does not own (`vm_map` of a device's memory
    /// object: the mapped-time page, the RAM disk): never freed with the map.
    borrowed: ArrayVec<BorrowedRange, MAX_BORROWED>,
    /// Pages with a frame behind them.
    resident: u64,
    /// Faults taken from user mode, and pages zero-filled (GNU Mach's task events).
    pub faults: u64,
    pub zero_fills: u64,
}

impl VmMap {
    /// An empty address space whose entries are charged to `ledger`; `None` when out of
    /// memory.
    pub fn new(ledger: &Arc<Ledger>) -> Option<Self> {
        let limit = default_size_limit();
        Some(VmMap {
            regions: Regions::new(ledger).ok()?,
            ledger: ledger.clone(),
            size_cur_limit: limit,
            size_max_limit: limit,
            wiring_required: false,
            pt: UserPageTable::new()?,
            borrowed: ArrayVec::new(),
            resident: 0,
            faults: 0,
            zero_fills: 0,
        })
    }

    /// What a CPU loads to run this address space (the task keeps a reference for the
    /// context switch).
    pub fn space(&self) -> &Arc<AddressSpace> {
        self.pt.space()
    }

    /// Bytes the map's regions cover (`virtual_size`).
    pub fn virtual_size(&self) -> u64 {
        self.regions.sizes().total
    }

    pub fn resident_pages(&self) -> u64 {
        self.resident
    }

    /// `vm_allocate` (GNU Mach `vm/vm_user.c`): size 0 succeeds at address 0; otherwise
    /// the range is page-rounded, found (`anywhere`: the lowest free range, first fit) or
    /// taken as given, checked against the size limit (`KERN_NO_SPACE`), and recorded
    /// read-write with every maximum access; wired at once if the map wires new mappings.
    pub fn allocate(&mut self, addr: u64, size: u64, anywhere: bool) -> Result<u64, KernReturn> {
        let start = self.allocate_unwired(addr, size, anywhere)?;
        if start != 0 {
            self.wire_new(
                start,
                start + regions::allocate_size(size, PAGE_SIZE)?,
                VM_PROT_DEFAULT,
            );
        }
        Ok(start)
    }

    fn allocate_unwired(
        &mut self,
        addr: u64,
        size: u64,
        anywhere: bool,
    ) -> Result<u64, KernReturn> {
        if size == 0 {
            return Ok(0);
        }
        let size = regions::allocate_size(size, PAGE_SIZE)?;
        let (start, end) = if anywhere {
            if size > VM_MAX_USER_ADDRESS - VM_MIN_USER_ADDRESS {
                return Err(KernReturn::NoSpace);
            }
            let start = self
                .regions
                .find_space(size, VM_MIN_USER_ADDRESS, VM_MAX_USER_ADDRESS)
                .ok_or(KernReturn::NoSpace)?;
            (start, start + size)
        } else {
            regions::fixed_range(
                addr,
                size,
                PAGE_SIZE,
                VM_MIN_USER_ADDRESS,
                VM_MAX_USER_ADDRESS,
            )?
        };
        regions::enforce_limit(self.regions.sizes(), size, self.size_cur_limit)?;
        self.regions
            .insert(start, end, VM_PROT_DEFAULT, VM_PROT_ALL)?;
        Ok(start)
    }

    /// A new mapping `[start, end)` with protection `prot` in a map that wires new mappings
    /// (`VM_WIRE_FUTURE`): wired, its pages made present. As GNU Mach's `vm_map_enter`,
    /// a failure here does not undo the mapping (its pages then come at first touch).
    fn wire_new(&mut self, start: u64, end: u64, prot: VmProt) {
        if self.wiring_required && self.regions.pageable(start, end, prot, false).is_ok() {
            let _ = self.commit_wired(start, end);
        }
    }

    /// Make every page of the wired regions in `[start, end)` present: wired memory never
    /// faults. `KERN_RESOURCE_SHORTAGE` when memory runs out (the pages made present
    /// stay).
    fn commit_wired(&mut self, start: u64, end: u64) -> Result<(), KernReturn> {
        let mut at = start;
        while at < end {
            let Some((s, e, _)) = self.regions.wired_in(at, end).next() else {
                return Ok(());
            };
            let mut page = align_down(s, PAGE_SIZE);
            while page < e {
                let (region_start, region) = self
                    .regions
                    .lookup(page)
                    .ok_or(KernReturn::InvalidAddress)?;
                self.present(page, region_start, &region)?;
                page += PAGE_SIZE;
            }
            at = e;
        }
        Ok(())
    }

    /// `vm_wire` once the host port is checked (GNU Mach `vm/vm_user.c`): unprivileged,
    /// wiring may not take the map's wired total past `UNPRIVILEGED_WIRE_MAX`
    /// (`KERN_NO_ACCESS`); then `[addr, addr + size)` on whole pages, cut at the top of
    /// user space (`VM_MAP_RANGE_CHECK`), must start in a region and run on without a
    /// hole through regions that allow `access` (`KERN_NO_SPACE`). `access` not
    /// `VM_PROT_NONE` wires it (every page made present), `VM_PROT_NONE` unwires it.
    pub fn wire(
        &mut self,
        addr: u64,
        size: u64,
        access: VmProt,
        privileged: bool,
    ) -> Result<(), KernReturn> {
        if !privileged
            && access != VM_PROT_NONE
            && self.regions.sizes().wired.saturating_add(size) > UNPRIVILEGED_WIRE_MAX
        {
            return Err(KernReturn::NoAccess);
        }
        let start = align_down(addr, PAGE_SIZE).max(VM_MIN_USER_ADDRESS);
        let end = addr.wrapping_add(size).wrapping_add(PAGE_SIZE - 1) & !(PAGE_SIZE - 1);
        let end = end.min(VM_MAX_USER_ADDRESS);
        let start = start.min(end);
        self.regions.pageable(start, end, access, true)?;
        self.commit_wired(start, end)
    }

    /// `vm_wire_all` once the host port is checked (GNU Mach `vm_map_pageable_all`):
    /// `VM_WIRE_NONE` unwires everything and stops wiring new mappings; `VM_WIRE_FUTURE`
    /// wires new mappings; `VM_WIRE_CURRENT` wires every accessible region now (for reading
    /// and writing, unchecked against the regions' protections), its pages made present.
    /// Other bits: `KERN_INVALID_ARGUMENT`.
    pub fn wire_all(&mut self, flags: u32) -> Result<(), KernReturn> {
        if flags & !VM_WIRE_ALL != 0 {
            return Err(KernReturn::InvalidArgument);
        }
        let bounds = self.regions.bounds();
        if flags == VM_WIRE_NONE {
            self.wiring_required = false;
            if let Some((lo, hi)) = bounds {
                self.regions.pageable(lo, hi, VM_PROT_NONE, false)?;
            }
            return Ok(());
        }
        let was = self.wiring_required;
        if flags & VM_WIRE_FUTURE != 0 {
            self.wiring_required = true;
        }
        if flags & VM_WIRE_CURRENT != 0
            && let Some((lo, hi)) = bounds
        {
            let wired = self
                .regions
                .pageable(lo, hi, VM_PROT_READ | VM_PROT_WRITE, false)
                .and_then(|()| self.commit_wired(lo, hi));
            if let Err(e) = wired {
                self.wiring_required = was;
                return Err(e);
            }
        }
        Ok(())
    }

    /// `vm_get_size_limit`: (current, maximum).
    pub fn size_limits(&self) -> (u64, u64) {
        (self.size_cur_limit, self.size_max_limit)
    }

    /// `vm_set_size_limit` once its arguments are checked (GNU Mach `vm/vm_user.c`): a
    /// maximum above the present one needs the host-privileged port (`KERN_NO_ACCESS`).
    /// The limit applies to later allocations; what the map holds stays.
    pub fn set_size_limits(
        &mut self,
        current: u64,
        max: u64,
        privileged: bool,
    ) -> Result<(), KernReturn> {
        if current > max {
            return Err(KernReturn::InvalidArgument);
        }
        if max > self.size_max_limit && !privileged {
            return Err(KernReturn::NoAccess);
        }
        self.size_cur_limit = current;
        self.size_max_limit = max;
        Ok(())
    }

    /// A new read-write region of `pages` pages anywhere, backed from the start by frames
    /// `take(0)`, `take(1)`, ... (each called once the page tables for its page exist, so
    /// a frame taken is always mapped; the region owns it from then on and frees it when
    /// deallocated). On an error the region is gone again, with the frames already taken;
    /// the others stay with the caller. This is how out-of-line memory in a message
    /// reaches its receiver without a second copy.
    pub fn allocate_with_frames(
        &mut self,
        pages: usize,
        take: &mut dyn FnMut(usize) -> Option<PhysAddr>,
    ) -> Result<u64, KernReturn> {
        let size = (pages as u64)
            .checked_mul(PAGE_SIZE)
            .ok_or(KernReturn::NoSpace)?;
        let start = self.allocate_unwired(0, size, true)?;
        for i in 0..pages {
            let va = start + i as u64 * PAGE_SIZE;
            match self.pt.find_or_map(va, perm(VM_PROT_DEFAULT), || take(i)) {
                Ok((_, new)) => self.resident += u64::from(new),
                Err(e) => {
                    let _ = self.deallocate(start, size);
                    return Err(e);
                }
            }
        }
        self.wire_new(start, start + size, VM_PROT_DEFAULT);
        Ok(start)
    }

    /// `vm_map` (GNU Mach `vm/vm_user.c`, `vm_map_enter`) once the arguments are checked:
    /// `size` bytes (page-rounded, not 0) at `addr` (page-truncated) or, `anywhere`, at
    /// the lowest free address with `addr & mask == 0`, protections `prot`/`max_prot`
    /// (`prot` limited to `max_prot`), `inheritance`, backed by `backing`. Borrowed
    /// frames back the whole range, one after the other, and are mapped at once.
    #[allow(clippy::too_many_arguments)] // vm_map's own arguments, one by one.
    pub fn map(
        &mut self,
        addr: u64,
        size: u64,
        mask: u64,
        anywhere: bool,
        backing: Backing,
        prot: VmProt,
        max_prot: VmProt,
        inheritance: u32,
    ) -> Result<u64, KernReturn> {
        let size = regions::allocate_size(size, PAGE_SIZE)?;
        let prot = prot & max_prot;
        if writable_and_executable(prot) {
            return Err(KernReturn::ProtectionFailure);
        }
        match &backing {
            Backing::Borrowed(_) => {
                if self.borrowed.is_full() {
                    return Err(KernReturn::NoSpace);
                }
            }
            Backing::Object(o) | Backing::Copy(o) => {
                // The range must lie in the object, on whole pages of it.
                let inside = o
                    .offset
                    .checked_add(size)
                    .is_some_and(|e| e <= o.object.size());
                if !inside || !o.offset.is_multiple_of(PAGE_SIZE) {
                    return Err(KernReturn::InvalidArgument);
                }
            }
            Backing::Anonymous => {}
        }
        let (start, end) = if anywhere {
            let room = size.checked_add(mask).ok_or(KernReturn::NoSpace)?;
            let found = self
                .regions
                .find_space(room, VM_MIN_USER_ADDRESS, VM_MAX_USER_ADDRESS)
                .ok_or(KernReturn::NoSpace)?;
            // Clearing the mask's bits takes off at most `mask`: still inside the room.
            let start = (found + mask) & !mask;
            (start, start + size)
        } else {
            regions::fixed_range(
                align_down(addr, PAGE_SIZE),
                size,
                PAGE_SIZE,
                VM_MIN_USER_ADDRESS,
                VM_MAX_USER_ADDRESS,
            )?
        };
        // Mappings that can never be accessed do not count (GNU Mach `vm_map_enter`).
        if max_prot != VM_PROT_NONE {
            regions::enforce_limit(self.regions.sizes(), size, self.size_cur_limit)?;
        }
        self.regions.insert(start, end, prot, max_prot)?;
        if let Err(e) = self.regions.inherit(start, end, inheritance) {
            let _ = self.regions.remove(start, end, &mut |_, _, _| {});
            return Err(e);
        }
        match backing {
            Backing::Borrowed(frame) => {
                let mut va = start;
                while va < end {
                    let pa = PhysAddr(frame.0 + (va - start));
                    if let Err(e) = self.pt.find_or_map(va, perm(prot), || Some(pa)) {
                        // Unmapped again, never freed: the frames are the device's.
                        self.pt.unmap_range(start, va, &mut |_| {});
                        let _ = self.regions.remove(start, end, &mut |_, _, _| {});
                        return Err(e);
                    }
                    va += PAGE_SIZE;
                }
                self.borrowed.push(BorrowedRange {
                    va: start,
                    frame,
                    pages: (end - start) / PAGE_SIZE,
                });
            }
            Backing::Object(o) => self.regions.set_object(start, o),
            Backing::Copy(o) => {
                if let Err(e) = self.copy_object(start, end, &o, prot) {
                    let _ = self.deallocate(start, end - start);
                    return Err(e);
                }
            }
            Backing::Anonymous => {}
        }
        self.wire_new(start, end, prot);
        Ok(start)
    }

    /// Fill the new private range `[start, end)` with a copy of the pages `o` has from its
    /// offset on (the others stay zero-fill): each into a frame of the map's own.
    fn copy_object(
        &mut self,
        start: u64,
        end: u64,
        o: &ObjectRef,
        prot: VmProt,
    ) -> Result<(), KernReturn> {
        let first = o.offset / PAGE_SIZE;
        let last = first + (end - start) / PAGE_SIZE;
        let mut index = first;
        // Only the pages the object has: a huge sparse object costs its pages.
        while let Some((at, src)) = o.object.next_page(index, last) {
            let page = start + (at - first) * PAGE_SIZE;
            index = at + 1;
            let fill = || {
                let pa = frame::alloc(1)?;
                // SAFETY: both frames are whole pages through the linear map: `src` is the
                // object's (alive through `o`), `pa` is new and ours alone.
                unsafe {
                    core::ptr::copy_nonoverlapping(
                        src.to_linear().as_mut_ptr::<u8>(),
                        pa.to_linear().as_mut_ptr::<u8>(),
                        PAGE_SIZE as usize,
                    )
                };
                if prot & VM_PROT_EXECUTE != 0 {
                    crate::arch::cpu::sync_icache(pa.to_linear().as_u64(), PAGE_SIZE);
                }
                Some(pa)
            };
            let (_, new) = self.pt.find_or_map(page, perm(prot), fill)?;
            self.resident += u64::from(new);
        }
        Ok(())
    }

    /// The first page at or above `va` and below `end`, in the region that holds `va`,
    /// that has a frame (in this map, or in the memory object the region maps), without
    /// faulting anything in; the time taken follows the pages and tables that exist.
    pub fn next_resident(&mut self, va: u64, end: u64) -> Option<u64> {
        let page = align_down(va, PAGE_SIZE);
        let (start, region) = self.regions.lookup(page)?;
        let end = end.min(region.end);
        let mut found = None;
        self.pt.for_each_mapped(page, end, &mut |at, _| {
            found = Some(at);
            false
        });
        if let Some(o) = &region.object {
            let first = (o.offset + (page - start)) / PAGE_SIZE;
            let last = (o.offset + (end - start)) / PAGE_SIZE;
            if let Some((index, _)) = o.object.next_page(first, last) {
                let at = start + index * PAGE_SIZE - o.offset;
                found = Some(found.map_or(at, |f: u64| f.min(at)));
            }
        }
        found
    }

    /// Record `[start, end)` with protection `prot` (program loading).
    pub fn allocate_fixed(&mut self, start: u64, end: u64, prot: VmProt) -> Result<(), KernReturn> {
        if writable_and_executable(prot) {
            return Err(KernReturn::ProtectionFailure);
        }
        if start < VM_MIN_USER_ADDRESS || end > VM_MAX_USER_ADDRESS {
            return Err(KernReturn::InvalidAddress);
        }
        self.regions.insert(start, end, prot, VM_PROT_ALL)
    }

    /// `vm_deallocate`: everything in the page-rounded range goes; nothing there is fine.
    /// A hole inside one region needs one more entry: `KERN_RESOURCE_SHORTAGE`, nothing
    /// freed, when the task is at its kernel-memory limit (`mm::kmem`).
    pub fn deallocate(&mut self, addr: u64, size: u64) -> Result<(), KernReturn> {
        if size == 0 {
            return Ok(());
        }
        let (start, end) = regions::deallocate_range(
            addr,
            size,
            PAGE_SIZE,
            VM_MIN_USER_ADDRESS,
            VM_MAX_USER_ADDRESS,
        );
        let mut unmapped = 0;
        let pt = &mut self.pt;
        let borrowed = &self.borrowed;
        let r = self.regions.remove(start, end, &mut |s, e, region| {
            let shared = region.object.is_some();
            pt.unmap_range(s, e, &mut |pa| {
                // A borrowed frame is the device's: unmapped, never freed. A shared
                // region's frames are its object's, freed with the object's last
                // reference (which the region drops only after this).
                if borrowed.iter().any(|b| b.holds_frame(pa)) {
                    return;
                }
                if !shared {
                    frame::free(pa, 1);
                }
                unmapped += 1;
            });
        });
        if r.is_ok() {
            // A range is forgotten once one deallocation covers it whole; one taken away
            // piece by piece keeps its slot (of `MAX_BORROWED`) until the map goes. The
            // frames it names are the device's either way, so keeping it is safe.
            self.borrowed
                .retain(|b| b.va < start || b.va + b.pages * PAGE_SIZE > end);
        }
        self.resident -= unmapped;
        r
    }

    /// `vm_protect`. Writable-and-executable is refused (W^X).
    pub fn protect(
        &mut self,
        addr: u64,
        size: u64,
        set_max: bool,
        prot: VmProt,
    ) -> Result<(), KernReturn> {
        if prot & !VM_PROT_ALL != 0 {
            return Err(KernReturn::InvalidArgument);
        }
        if !set_max && writable_and_executable(prot) {
            return Err(KernReturn::ProtectionFailure);
        }
        let (start, end) = page_span(addr, size)?;
        let pt = &mut self.pt;
        self.regions
            .protect(start, end, prot, set_max, &mut |s, e, new| {
                pt.protect_range(s, e, perm(new))
            })?;
        // Wiring follows the new protection (GNU Mach `vm_map_protect`); as there, a
        // failure to make pages present is not the caller's error.
        self.regions.rewire(start, end, self.wiring_required);
        let _ = self.commit_wired(start, end);
        Ok(())
    }

    /// Make page `va` present for `access`: the frame behind it, or why not
    /// (`KERN_INVALID_ADDRESS` outside every region, `KERN_PROTECTION_FAILURE` when the
    /// region's protection forbids the access).
    pub fn fault(&mut self, va: u64, access: Access) -> Result<PhysAddr, KernReturn> {
        if va >= VM_MAX_USER_ADDRESS {
            return Err(KernReturn::InvalidAddress);
        }
        // The MMU's answer where it has one: a page it lets EL0 read (write) lies in a
        // region whose protection allows it (`perm`, `Access::needs`), already mapped.
        if access != Access::Execute
            && let Some(pa) = self.pt.translate_if_current(va, access == Access::Write)
        {
            return Ok(pa);
        }
        self.faults += 1;
        let (start, region) = self.regions.lookup(va).ok_or(KernReturn::InvalidAddress)?;
        if region.prot & access.needs() == 0 {
            return Err(KernReturn::ProtectionFailure);
        }
        self.present(va, start, &region)
    }

    /// The frame behind page `va` of `region` (which starts at `start`), a zeroed one
    /// mapped now if there was none: the map's own, or for shared memory the object's
    /// (a new one made the object's).
    fn present(&mut self, va: u64, start: u64, region: &Region) -> Result<PhysAddr, KernReturn> {
        let page = align_down(va, PAGE_SIZE);
        let prot = region.prot;
        let zeroed = || {
            let pa = frame::alloc_zeroed(1)?;
            if prot & VM_PROT_EXECUTE != 0 {
                // The frame may have held code before: its zeroes must reach the
                // instruction side before it is mapped executable.
                crate::arch::cpu::sync_icache(pa.to_linear().as_u64(), PAGE_SIZE);
            }
            Some(pa)
        };
        if let Some(o) = &region.object {
            if let Some((pa, _)) = self.pt.lookup(page) {
                return Ok(pa);
            }
            let index = (o.offset + (page - start)) / PAGE_SIZE;
            let (pa, filled) = o.object.page_or_fill(index, zeroed)?;
            if !filled && prot & VM_PROT_EXECUTE != 0 {
                // Another map may have written code into the page: it must reach the
                // instruction side before this map can run it.
                crate::arch::cpu::sync_icache(pa.to_linear().as_u64(), PAGE_SIZE);
            }
            let (pa, new) = self.pt.find_or_map(page, perm(prot), || Some(pa))?;
            self.resident += u64::from(new);
            self.zero_fills += u64::from(filled);
            return Ok(pa);
        }
        // `zeroed` runs last in the walk, once the tables are there: on an error no frame
        // was taken.
        let (pa, new) = self.pt.find_or_map(page, perm(prot), zeroed)?;
        self.resident += u64::from(new);
        self.zero_fills += u64::from(new);
        Ok(pa)
    }

    /// Run `f` over the user range `[uaddr, uaddr + len)` page piece by page piece, each
    /// piece given as (offset in the range, kernel pointer, length).
    fn for_each_piece(
        &mut self,
        uaddr: u64,
        len: usize,
        access: Option<Access>,
        f: &mut dyn FnMut(usize, *mut u8, usize),
    ) -> Result<(), KernReturn> {
        let end = uaddr
            .checked_add(len as u64)
            .ok_or(KernReturn::InvalidAddress)?;
        if end > VM_MAX_USER_ADDRESS {
            return Err(KernReturn::InvalidAddress);
        }
        let mut at = uaddr;
        while at < end {
            let page_end = align_down(at, PAGE_SIZE) + PAGE_SIZE;
            let n = (page_end.min(end) - at) as usize;
            let pa = match access {
                Some(access) => self.fault(at, access)?,
                None => self.fault_any(at)?,
            };
            let ptr = PhysAddr(pa.as_u64() + (at % PAGE_SIZE))
                .to_linear()
                .as_mut_ptr::<u8>();
            f((at - uaddr) as usize, ptr, n);
            at += n as u64;
        }
        Ok(())
    }

    /// Like `fault`, ignoring protection (the kernel filling a program's pages).
    fn fault_any(&mut self, va: u64) -> Result<PhysAddr, KernReturn> {
        let (start, region) = self.regions.lookup(va).ok_or(KernReturn::InvalidAddress)?;
        self.present(va, start, &region)
    }

    /// Check that `[addr, addr + size)` is covered by regions that allow `access`
    /// (`KERN_INVALID_ADDRESS` for a hole, `KERN_PROTECTION_FAILURE` for a region that
    /// forbids it), touching nothing.
    pub fn check_range(&self, addr: u64, size: u64, access: Access) -> Result<(), KernReturn> {
        let end = addr.checked_add(size).ok_or(KernReturn::InvalidAddress)?;
        if end > VM_MAX_USER_ADDRESS {
            return Err(KernReturn::InvalidAddress);
        }
        let mut at = addr;
        while at < end {
            let (_, region) = self
                .regions
                .lookup_ref(at)
                .ok_or(KernReturn::InvalidAddress)?;
            if region.prot & access.needs() == 0 {
                return Err(KernReturn::ProtectionFailure);
            }
            at = region.end;
        }
        Ok(())
    }

    /// `vm_copy` within this map: `size` bytes from `src` to `dst`, as if through a buffer
    /// (overlapping ranges copy right); nothing is written unless the source is all
    /// readable and the destination all writable. As GNU Mach (`vm_map_copyin`, then
    /// `vm_map_copy_overwrite`): the source is checked first, then the source, size and
    /// destination must be page-aligned (`KERN_INVALID_ARGUMENT`), then the destination.
    pub fn copy_within(&mut self, src: u64, size: u64, dst: u64) -> Result<(), KernReturn> {
        self.check_range(src, size, Access::Read)?;
        if !(src.is_multiple_of(PAGE_SIZE)
            && size.is_multiple_of(PAGE_SIZE)
            && dst.is_multiple_of(PAGE_SIZE))
        {
            return Err(KernReturn::InvalidArgument);
        }
        if size == 0 {
            return Ok(());
        }
        self.check_range(dst, size, Access::Write)?;
        let mut buf = [0u8; 512];
        let backwards = dst > src && dst < src + size;
        let mut done = 0;
        while done < size {
            let n = (size - done).min(buf.len() as u64);
            let off = if backwards { size - done - n } else { done };
            self.copyin(src + off, &mut buf[..n as usize])?;
            self.copyout(dst + off, &buf[..n as usize])?;
            done += n;
        }
        Ok(())
    }

    /// A region inherited from a parent map (`task_create` with `inherit_memory`): the
    /// range, its protections and its inheritance as the parent has them, no page yet;
    /// with the parent's memory object if it is shared (`VM_INHERIT_SHARE`).
    pub fn insert_inherited(&mut self, start: u64, region: &Region) -> Result<(), KernReturn> {
        self.regions
            .insert(start, region.end, region.prot, region.max_prot)?;
        if let Some(o) = &region.object {
            self.regions.set_object(start, o.clone());
        }
        if region.shared {
            self.regions.set_shared(start);
        }
        self.regions.inherit(start, region.end, region.inheritance)
    }

    /// Make the region that starts at `start` shared memory, if it is not yet: a memory
    /// object takes over the frames the map has for it (they stay mapped), and later
    /// pages come from the object. The object, for another map to map.
    /// `KERN_INVALID_ARGUMENT` for a region of device memory (a borrowed page), and
    /// `KERN_RESOURCE_SHORTAGE` (nothing changed) if the task cannot pay for the object.
    pub fn share_region(&mut self, start: u64) -> Result<ObjectRef, KernReturn> {
        self.make_object(start)
    }

    /// As [`share_region`](Self::share_region), for another map that gets the region by
    /// inheritance: both maps' regions are then marked shared (`vm_region`'s `is_shared`).
    pub fn share_region_inherited(&mut self, start: u64) -> Result<ObjectRef, KernReturn> {
        let object = self.make_object(start)?;
        self.regions.set_shared(start);
        Ok(object)
    }

    fn make_object(&mut self, start: u64) -> Result<ObjectRef, KernReturn> {
        let (s, region) = self
            .regions
            .lookup(start)
            .filter(|&(s, _)| s == start)
            .ok_or(KernReturn::InvalidAddress)?;
        if let Some(o) = region.object {
            return Ok(o);
        }
        if self.borrowed.iter().any(|b| b.va >= s && b.va < region.end) {
            return Err(KernReturn::InvalidArgument);
        }
        let object = MemObject::new(region.end - s, &self.ledger, free_frame)?;
        // Only the pages the map has: a huge sparse region costs its tables, not its size.
        let mut adopted = Ok(());
        self.pt.for_each_mapped(s, region.end, &mut |va, pa| {
            adopted = object.adopt((va - s) / PAGE_SIZE, pa);
            adopted.is_ok()
        });
        if let Err(e) = adopted {
            // The frames stay the map's: the object lets them go unfreed.
            object.disown();
            return Err(e);
        }
        let shared = ObjectRef { object, offset: 0 };
        self.regions.set_object(s, shared.clone());
        Ok(shared)
    }

    /// Copy `buf.len()` bytes at `va` (within one page) into `buf` if that page has a frame
    /// (in this map, or in the memory object the region maps); `false` (nothing read,
    /// nothing faulted in) if it has none.
    pub fn read_resident(&mut self, va: u64, buf: &mut [u8]) -> bool {
        let page = align_down(va, PAGE_SIZE);
        let pa = match self.pt.lookup(page) {
            Some((pa, _)) => pa,
            None => {
                let Some((start, region)) = self.regions.lookup_ref(page) else {
                    return false;
                };
                let Some(o) = &region.object else {
                    return false;
                };
                match o.object.page((o.offset + (page - start)) / PAGE_SIZE) {
                    Some(pa) => pa,
                    None => return false,
                }
            }
        };
        debug_assert!(va % PAGE_SIZE + buf.len() as u64 <= PAGE_SIZE);
        let src = PhysAddr(pa.as_u64() + va % PAGE_SIZE)
            .to_linear()
            .as_mut_ptr::<u8>();
        // SAFETY: `src` maps `buf.len()` bytes of a frame of this map or of an object it
        // maps (kept alive by the region, the map locked by our caller), within its page;
        // `buf` is ours.
        unsafe { core::ptr::copy_nonoverlapping(src, buf.as_mut_ptr(), buf.len()) };
        true
    }

    /// `vm_inherit` on `[addr, addr + size)`, widened to whole pages.
    pub fn inherit(&mut self, addr: u64, size: u64, inheritance: u32) -> Result<(), KernReturn> {
        let (start, end) = page_span(addr, size)?;
        self.regions.inherit(start, end, inheritance)
    }

    /// The region that holds `addr` or, if none does, the first one above it (`vm_region`).
    pub fn region_from(&self, addr: u64) -> Option<(u64, Region)> {
        self.regions.next_from(addr)
    }

    /// Copy from user memory into `buf`.
    pub fn copyin(&mut self, uaddr: u64, buf: &mut [u8]) -> Result<(), KernReturn> {
        let dst = buf.as_mut_ptr();
        self.for_each_piece(uaddr, buf.len(), Some(Access::Read), &mut |off, src, n| {
            // SAFETY: `src` maps `n` bytes of a frame of this map (the map is locked by
            // our caller), `dst + off` is inside `buf`; the two never overlap.
            unsafe { core::ptr::copy_nonoverlapping(src, dst.add(off), n) }
        })
    }

    /// Copy `data` out to user memory.
    pub fn copyout(&mut self, uaddr: u64, data: &[u8]) -> Result<(), KernReturn> {
        let src = data.as_ptr();
        self.for_each_piece(
            uaddr,
            data.len(),
            Some(Access::Write),
            &mut |off, dst, n| {
                // SAFETY: as in `copyin`, the other way round.
                unsafe { core::ptr::copy_nonoverlapping(src.add(off), dst, n) }
            },
        )
    }

    /// Write `data` at `uaddr` whatever the protection (loading a program). Code written
    /// into an executable region is made visible to instruction fetch.
    pub fn kernel_write(&mut self, uaddr: u64, data: &[u8]) -> Result<(), KernReturn> {
        let src = data.as_ptr();
        let executable = self
            .regions
            .lookup_ref(uaddr)
            .is_some_and(|(_, r)| r.prot & VM_PROT_EXECUTE != 0);
        self.for_each_piece(uaddr, data.len(), None, &mut |off, dst, n| {
            // SAFETY: as in `copyout`.
            unsafe { core::ptr::copy_nonoverlapping(src.add(off), dst, n) };
            if executable {
                crate::arch::cpu::sync_icache(dst as u64, n as u64);
            }
        })
    }

    /// Read a NUL-terminated string of at most `buf.len()` bytes (NUL included) from
    /// `uaddr` into `buf`; returns its length without the NUL. `KERN_INVALID_ADDRESS` if it
    /// runs into unreadable memory first, `KERN_INVALID_ARGUMENT` if there is no NUL
    /// within `buf.len()` bytes. Allocates nothing.
    pub fn copyin_cstr(&mut self, uaddr: u64, buf: &mut [u8]) -> Result<usize, KernReturn> {
        let mut len = 0;
        let mut at = uaddr;
        while len < buf.len() {
            if at >= VM_MAX_USER_ADDRESS {
                return Err(KernReturn::InvalidAddress);
            }
            let page_end = align_down(at, PAGE_SIZE) + PAGE_SIZE;
            let n = ((page_end - at) as usize).min(buf.len() - len);
            let piece = &mut buf[len..len + n];
            self.copyin(at, piece)?;
            if let Some(nul) = piece.iter().position(|&b| b == 0) {
                return Ok(len + nul);
            }
            len += n;
            at += n as u64;
        }
        Err(KernReturn::InvalidArgument)
    }
}

impl Drop for VmMap {
    fn drop(&mut self) {
        let _ = self.deallocate(0, VM_MAX_USER_ADDRESS);
    }
}
