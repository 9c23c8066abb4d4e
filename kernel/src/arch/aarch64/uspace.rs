//! User translation tables (TTBR0, 4 KiB pages, 48-bit) and ASIDs. Mappings are always
//! non-global, never executable at EL1 (PXN), and never writable and executable at once.
//! Which pages exist is decided by `mm::vm`; this file only writes descriptors.

extern crate alloc;

use super::mmu::MemAttr;
use super::mmu::desc;
use crate::mm::{PhysAddr, frame};
use crate::sync::{IrqSpinLock, LockLevel};
use aarch64_cpu::registers::ID_AA64MMFR0_EL1;
use mach_abi::KernReturn;
use tock_registers::interfaces::Readable;

/// Access a user page allows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct UserPerm {
    pub read: bool,
    pub write: bool,
    pub execute: bool,
}

/// AP[2:1] = 0b01: EL1 and EL0 read-write; 0b11: both read-only (Arm ARM D8.4.1).
const AP_USER_RW: u64 = 0b01 << 6;
const AP_USER_RO: u64 = 0b11 << 6;
const NG: u64 = 1 << 11;

fn leaf_bits(perm: UserPerm) -> u64 {
    let ap = if perm.write { AP_USER_RW } else { AP_USER_RO };
    let uxn = if perm.execute && !perm.write {
        0
    } else {
        desc::UXN
    };
    desc::PAGE
        | ((MemAttr::Normal as u64) << desc::ATTR_INDEX_SHIFT)
        | desc::SH_INNER
        | desc::AF
        | NG
        | desc::PXN
        | uxn
        | ap
}

fn perm_of(entry: u64) -> UserPerm {
    UserPerm {
        read: true,
        write: entry & (0b11 << 6) == AP_USER_RW,
        execute: entry & desc::UXN == 0,
    }
}

type Table = [u64; 512];

fn table(pa: u64) -> *mut Table {
    PhysAddr(pa).to_linear().as_mut_ptr()
}

const SHIFTS: [u32; 4] = [39, 30, 21, 12];

/// One task's user page tables.
pub struct UserPageTable {
    root: PhysAddr,
    asid: u16,
}

impl UserPageTable {
    /// A new empty table with its own ASID; `None` when out of memory or ASIDs.
    pub fn new() -> Option<Self> {
        let asid = alloc_asid()?;
        let Some(root) = frame::alloc_zeroed(1) else {
            free_asid(asid);
            return None;
        };
        Some(UserPageTable { root, asid })
    }

    /// The TTBR0_EL1 value for this table.
    pub fn ttbr0(&self) -> u64 {
        (self.asid as u64) << 48 | self.root.as_u64()
    }

    /// The leaf entry for `va`, optionally creating the tables on the way.
    fn leaf(&mut self, va: u64, create: bool) -> Option<*mut u64> {
        let mut t = self.root.as_u64();
        for &shift in &SHIFTS[..3] {
            let index = ((va >> shift) & 511) as usize;
            // SAFETY: `t` is one of this map's tables (reached from its root), reached
            // through the linear map; the map's lock is held by the caller (`&mut self`).
            let entry = unsafe { &mut (*table(t))[index] };
            if *entry & desc::VALID == 0 {
                if !create {
                    return None;
                }
                let new = frame::alloc_zeroed(1)?.as_u64();
                *entry = new | desc::TABLE;
            }
            t = *entry & desc::ADDR_MASK;
        }
        let index = ((va >> 12) & 511) as usize;
        // SAFETY: as above.
        Some(unsafe { &mut (*table(t))[index] as *mut u64 })
    }

    /// Map page `va` to frame `pa`. Fails with `KERN_RESOURCE_SHORTAGE` if out of memory for
    /// a table.
    pub fn map(&mut self, va: u64, pa: PhysAddr, perm: UserPerm) -> Result<(), KernReturn> {
        let leaf = self.leaf(va, true).ok_or(KernReturn::ResourceShortage)?;
        // SAFETY: `leaf` points into this map's last-level table (see `leaf`).
        unsafe { leaf.write_volatile(pa.as_u64() | leaf_bits(perm)) };
        barrier();
        Ok(())
    }

    /// The frame and access of page `va`, if mapped.
    pub fn lookup(&mut self, va: u64) -> Option<(PhysAddr, UserPerm)> {
        let leaf = self.leaf(va, false)?;
        // SAFETY: as in `map`.
        let entry = unsafe { leaf.read_volatile() };
        (entry & desc::VALID != 0).then(|| (PhysAddr(entry & desc::ADDR_MASK), perm_of(entry)))
    }

    /// Unmap page `va`; returns its frame. The TLB entry is invalidated on every CPU.
    pub fn unmap(&mut self, va: u64) -> Option<PhysAddr> {
        let leaf = self.leaf(va, false)?;
        // SAFETY: as in `map`.
        let entry = unsafe { leaf.read_volatile() };
        if entry & desc::VALID == 0 {
            return None;
        }
        // SAFETY: as in `map`.
        unsafe { leaf.write_volatile(0) };
        self.flush_page(va);
        Some(PhysAddr(entry & desc::ADDR_MASK))
    }

    /// Change the access of page `va` if it is mapped.
    pub fn protect(&mut self, va: u64, perm: UserPerm) {
        let Some(leaf) = self.leaf(va, false) else {
            return;
        };
        // SAFETY: as in `map`.
        let entry = unsafe { leaf.read_volatile() };
        if entry & desc::VALID == 0 {
            return;
        }
        // Break before make (Arm ARM D8.16.1): invalid, flush, then the new entry.
        // SAFETY: as in `map`.
        unsafe { leaf.write_volatile(0) };
        self.flush_page(va);
        // SAFETY: as in `map`.
        unsafe { leaf.write_volatile((entry & desc::ADDR_MASK) | leaf_bits(perm)) };
        barrier();
    }

    /// Apply `f` to every valid leaf entry in `[start, end)`, skipping empty subtrees, so
    /// that a sparse range costs what is mapped in it, not its size.
    fn for_each_leaf(&mut self, start: u64, end: u64, f: &mut dyn FnMut(u64, &mut u64)) {
        walk(self.root.as_u64(), 0, 0, start, end, f);
    }

    /// Unmap every page in `[start, end)`, handing each frame to `free`.
    pub fn unmap_range(&mut self, start: u64, end: u64, free: &mut dyn FnMut(PhysAddr)) {
        let mut any = false;
        self.for_each_leaf(start, end, &mut |_, entry| {
            free(PhysAddr(*entry & desc::ADDR_MASK));
            *entry = 0;
            any = true;
        });
        if any {
            self.flush_all();
        }
    }

    /// Change the access of every mapped page in `[start, end)`.
    pub fn protect_range(&mut self, start: u64, end: u64, perm: UserPerm) {
        let mut any = false;
        // Break before make for the whole range: clear, flush, then write the new entries.
        let mut pages: alloc::vec::Vec<(u64, u64)> = alloc::vec::Vec::new();
        self.for_each_leaf(start, end, &mut |va, entry| {
            pages.push((va, *entry & desc::ADDR_MASK));
            *entry = 0;
            any = true;
        });
        if any {
            self.flush_all();
            if perm.execute {
                // Code the task wrote while the pages were writable must reach the
                // instruction side before it may run.
                for &(_, pa) in &pages {
                    super::cpu::sync_icache(
                        PhysAddr(pa).to_linear().as_u64(),
                        crate::mm::layout::PAGE_SIZE as u64,
                    );
                }
            }
            for (va, pa) in pages {
                if let Some(leaf) = self.leaf(va, false) {
                    // SAFETY: as in `map`.
                    unsafe { leaf.write_volatile(pa | leaf_bits(perm)) };
                }
            }
            barrier();
        }
    }

    fn flush_all(&self) {
        // SAFETY: TLB invalidation by ASID only drops cached translations.
        unsafe {
            core::arch::asm!("dsb ishst", "tlbi aside1is, {}", "dsb ish", "isb",
                in(reg) (self.asid as u64) << 48, options(nostack))
        };
    }

    fn flush_page(&self, va: u64) {
        let operand = (self.asid as u64) << 48 | (va >> 12) & ((1 << 44) - 1);
        // SAFETY: TLB invalidation by VA and ASID only drops cached translations.
        unsafe {
            core::arch::asm!("dsb ishst", "tlbi vae1is, {}", "dsb ish", "isb", in(reg) operand, options(nostack))
        };
    }
}

impl Drop for UserPageTable {
    /// Free every table of this map. Leaf frames must have been unmapped and freed by the
    /// owner (`mm::vm`), which knows which frames are its own.
    fn drop(&mut self) {
        free_tables(self.root.as_u64(), 0);
        self.flush_all();
        free_asid(self.asid);
    }
}

/// Visit the valid leaves of table `t` (at `level`, covering addresses from `base`) that
/// fall in `[start, end)`.
fn walk(t: u64, level: usize, base: u64, start: u64, end: u64, f: &mut dyn FnMut(u64, &mut u64)) {
    let shift = SHIFTS[level];
    let span = 1u64 << shift;
    for i in 0..512u64 {
        let va = base + i * span;
        if va >= end {
            break;
        }
        if va + span <= start {
            continue;
        }
        // SAFETY: `t` is a table of the map being walked (exclusive access through `&mut`).
        let entry = unsafe { &mut (*table(t))[i as usize] };
        if *entry & desc::VALID == 0 {
            continue;
        }
        if level == 3 {
            f(va, entry);
        } else {
            walk(*entry & desc::ADDR_MASK, level + 1, va, start, end, f);
        }
    }
}

fn free_tables(t: u64, level: usize) {
    if level < 3 {
        for i in 0..512 {
            // SAFETY: `t` is a table of a map being dropped; nothing else uses it.
            let entry = unsafe { (*table(t))[i] };
            if entry & desc::VALID != 0 {
                free_tables(entry & desc::ADDR_MASK, level + 1);
            }
        }
    }
    frame::free(PhysAddr(t), 1);
}

fn barrier() {
    // SAFETY: orders the descriptor write before later table walks.
    unsafe { core::arch::asm!("dsb ishst", "isb", options(nostack)) };
}

/// An empty TTBR0 root for threads without user space (ASID 0 is never handed out).
#[repr(C, align(4096))]
struct EmptyRoot(Table);
static EMPTY_ROOT: EmptyRoot = EmptyRoot([0; 512]);

/// Make `ttbr0` the user address space of this CPU (`None`: no user space).
pub fn activate(ttbr0: Option<u64>) {
    let value = ttbr0.unwrap_or_else(|| {
        let va = &raw const EMPTY_ROOT as u64;
        let (load, _) = super::mmu::image_phys_range();
        va - crate::mm::layout::KIMAGE_VA + load.as_u64()
    });
    // SAFETY: the value names a valid root (a live map's, or the empty one) and ASID.
    unsafe { core::arch::asm!("msr ttbr0_el1, {}", "isb", in(reg) value, options(nostack)) };
}

/// ASID allocator: a bitmap over the width the CPU reports (8 or 16 bits); 0 is reserved.
struct Asids {
    bits: [u64; 1024],
    limit: u32,
    next: u32,
}

static ASIDS: IrqSpinLock<Asids> = IrqSpinLock::new(
    LockLevel::Asids,
    Asids {
        bits: [0; 1024],
        limit: 0,
        next: 1,
    },
);

fn alloc_asid() -> Option<u16> {
    let mut a = ASIDS.lock();
    if a.limit == 0 {
        a.limit = if ID_AA64MMFR0_EL1.read(ID_AA64MMFR0_EL1::ASIDBits) == 0b0010 {
            1 << 16
        } else {
            1 << 8
        };
    }
    for _ in 1..a.limit {
        let n = a.next;
        a.next = if n + 1 >= a.limit { 1 } else { n + 1 };
        let (word, bit) = ((n / 64) as usize, n % 64);
        if a.bits[word] & (1 << bit) == 0 {
            a.bits[word] |= 1 << bit;
            return Some(n as u16);
        }
    }
    None
}

fn free_asid(asid: u16) {
    let mut a = ASIDS.lock();
    a.bits[(asid / 64) as usize] &= !(1 << (asid % 64));
}
