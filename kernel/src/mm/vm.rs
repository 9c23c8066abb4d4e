//! A task's address space: its regions (`mm::regions`) kept in step with its page tables
//! (`arch::uspace`). Pages are allocated zeroed on first touch. This is also where the
//! kernel reads and writes user memory: `copyin`/`copyout` translate in software and never
//! fault, so a bad user pointer is an error value, never a kernel exception.

extern crate alloc;

use crate::arch::uspace::{AddressSpace, UserPageTable, UserPerm};
use crate::mm::PAGE_SIZE;
use crate::mm::kmem::Ledger;
use crate::mm::regions::{
    self, Regions, VM_PROT_ALL, VM_PROT_DEFAULT, VM_PROT_EXECUTE, VM_PROT_READ, VM_PROT_WRITE,
    VmProt,
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

pub use crate::mm::regions::Backing;

pub struct VmMap {
    regions: Regions,
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
        Some(VmMap {
            regions: Regions::new(ledger).ok()?,
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
        self.regions.iter().map(|(start, r)| r.end - start).sum()
    }

    pub fn resident_pages(&self) -> u64 {
        self.resident
    }

    /// `vm_allocate` (GNU Mach `vm/vm_user.c`): size 0 succeeds at address 0; otherwise
    /// the range is page-rounded, found (`anywhere`) or taken as given, and recorded
    /// read-write with every maximum access.
    pub fn allocate(&mut self, addr: u64, size: u64, anywhere: bool) -> Result<u64, KernReturn> {
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
        self.regions
            .insert(start, end, VM_PROT_DEFAULT, VM_PROT_ALL)?;
        Ok(start)
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
        let start = self.allocate(0, size, true)?;
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
        if let Backing::Borrowed(_) = backing
            && self.borrowed.is_full()
        {
            return Err(KernReturn::NoSpace);
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
        self.regions.insert(start, end, prot, max_prot)?;
        if let Err(e) = self.regions.inherit(start, end, inheritance) {
            let _ = self.regions.remove(start, end, &mut |_, _| {});
            return Err(e);
        }
        if let Backing::Borrowed(frame) = backing {
            let mut va = start;
            while va < end {
                let pa = PhysAddr(frame.0 + (va - start));
                if let Err(e) = self.pt.find_or_map(va, perm(prot), || Some(pa)) {
                    // Unmapped again, never freed: the frames are the device's.
                    self.pt.unmap_range(start, va, &mut |_| {});
                    let _ = self.regions.remove(start, end, &mut |_, _| {});
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
        Ok(start)
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
    /// `vm_wire`'s check of `[addr, addr + size)` for `access` (`Regions::check_wire`,
    /// on whole pages, cut at the top of user space as GNU Mach's `VM_MAP_RANGE_CHECK`
    /// does). Nothing more is done: no page of a task is ever paged out.
    pub fn wire(&self, addr: u64, size: u64, access: VmProt) -> Result<(), KernReturn> {
        let start = addr & !(PAGE_SIZE - 1);
        let end = addr.saturating_add(size).saturating_add(PAGE_SIZE - 1) & !(PAGE_SIZE - 1);
        let end = end.min(VM_MAX_USER_ADDRESS);
        self.regions.check_wire(start, end.max(start), access)
    }

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
        let mut freed = 0;
        let pt = &mut self.pt;
        let borrowed = &self.borrowed;
        let r = self.regions.remove(start, end, &mut |s, e| {
            pt.unmap_range(s, e, &mut |pa| {
                // A borrowed frame is the device's: unmapped, never freed.
                if !borrowed.iter().any(|b| b.holds_frame(pa)) {
                    frame::free(pa, 1);
                    freed += 1;
                }
            });
        });
        if r.is_ok() {
            // A range is forgotten once one deallocation covers it whole; one taken away
            // piece by piece keeps its slot (of `MAX_BORROWED`) until the map goes. The
            // frames it names are the device's either way, so keeping it is safe.
            self.borrowed
                .retain(|b| b.va < start || b.va + b.pages * PAGE_SIZE > end);
        }
        self.resident -= freed;
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
            })
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
        let (_, region) = self.regions.lookup(va).ok_or(KernReturn::InvalidAddress)?;
        if region.prot & access.needs() == 0 {
            return Err(KernReturn::ProtectionFailure);
        }
        self.present(va, region.prot)
    }

    /// The frame behind page `va` of a region with protection `prot`, a zeroed one mapped
    /// now if there was none.
    fn present(&mut self, va: u64, prot: VmProt) -> Result<PhysAddr, KernReturn> {
        let page = align_down(va, PAGE_SIZE);
        let fill = || {
            let pa = frame::alloc_zeroed(1)?;
            if prot & VM_PROT_EXECUTE != 0 {
                // The frame may have held code before: its zeroes must reach the
                // instruction side before it is mapped executable.
                crate::arch::cpu::sync_icache(pa.to_linear().as_u64(), PAGE_SIZE);
            }
            Some(pa)
        };
        // `fill` runs last in the walk, once the tables are there: on an error no frame
        // was taken.
        let (pa, new) = self.pt.find_or_map(page, perm(prot), fill)?;
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
        let (_, region) = self.regions.lookup(va).ok_or(KernReturn::InvalidAddress)?;
        self.present(va, region.prot)
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
            let (_, region) = self.regions.lookup(at).ok_or(KernReturn::InvalidAddress)?;
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
    /// range, its protections and its inheritance as the parent has them, no page yet.
    pub fn insert_inherited(
        &mut self,
        start: u64,
        region: &crate::mm::regions::Region,
    ) -> Result<(), KernReturn> {
        self.regions
            .insert(start, region.end, region.prot, region.max_prot)?;
        self.regions.inherit(start, region.end, region.inheritance)
    }

    /// Copy `buf.len()` bytes at `va` (within one page) into `buf` if that page has a frame;
    /// `false` (nothing read, nothing faulted in) if it has none.
    pub fn read_resident(&mut self, va: u64, buf: &mut [u8]) -> bool {
        let Some((pa, _)) = self.pt.lookup(align_down(va, PAGE_SIZE)) else {
            return false;
        };
        debug_assert!(va % PAGE_SIZE + buf.len() as u64 <= PAGE_SIZE);
        let src = PhysAddr(pa.as_u64() + va % PAGE_SIZE)
            .to_linear()
            .as_mut_ptr::<u8>();
        // SAFETY: `src` maps `buf.len()` bytes of a frame of this map, within its page (the
        // map is locked by our caller); `buf` is ours.
        unsafe { core::ptr::copy_nonoverlapping(src, buf.as_mut_ptr(), buf.len()) };
        true
    }

    /// `vm_inherit` on `[addr, addr + size)`, widened to whole pages.
    pub fn inherit(&mut self, addr: u64, size: u64, inheritance: u32) -> Result<(), KernReturn> {
        let (start, end) = page_span(addr, size)?;
        self.regions.inherit(start, end, inheritance)
    }

    /// The region that holds `addr` or, if none does, the first one above it (`vm_region`).
    pub fn region_from(&self, addr: u64) -> Option<(u64, crate::mm::regions::Region)> {
        self.regions
            .lookup(addr)
            .or_else(|| self.regions.iter().find(|&(start, _)| start >= addr))
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
            .lookup(uaddr)
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
