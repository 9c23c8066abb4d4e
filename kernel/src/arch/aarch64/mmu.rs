//! Kernel translation tables (TTBR1): the linear map of RAM, the device window, kernel
//! stacks and W^X for the image. The boot tables from `boot.s` are the starting point;
//! this code extends them. User address spaces (TTBR0) are not handled here.
//!
//! Descriptor formats: Arm ARM D8.3 (VMSAv8-64 translation table descriptors).

use super::boot::{BOOT_STACK, BOOT_TABLES};
use crate::mm::layout::{self, KIMAGE_VA, PAGE_SIZE};
use crate::mm::{PhysAddr, VirtAddr, align_down, align_up};
use crate::sync::{IrqSpinLock, LockLevel};
use core::sync::atomic::{AtomicU64, Ordering};

/// Descriptor bits (Arm ARM D8.3.1 and D8.3.2).
pub mod desc {
    pub const VALID: u64 = 1 << 0;
    /// Table descriptor at levels 0-2, page descriptor at level 3.
    pub const TABLE: u64 = 0b11;
    pub const PAGE: u64 = 0b11;
    pub const BLOCK: u64 = 0b01;
    pub const ATTR_INDEX_SHIFT: u64 = 2;
    /// AP[2:1]: 0b00 EL1 read-write, 0b10 EL1 read-only (EL0 no access).
    pub const AP_EL1_RO: u64 = 0b10 << 6;
    pub const SH_INNER: u64 = 0b11 << 8;
    pub const AF: u64 = 1 << 10;
    pub const PXN: u64 = 1 << 53;
    pub const UXN: u64 = 1 << 54;
    pub const ADDR_MASK: u64 = 0x0000_FFFF_FFFF_F000;

    const NORMAL: u64 = (super::MemAttr::Normal as u64) << ATTR_INDEX_SHIFT;
    /// The boot mapping of RAM blocks and image pages: normal memory, EL1 read-write-execute.
    pub const BOOT_BLOCK: u64 = BLOCK | NORMAL | SH_INNER | AF | UXN;
    pub const BOOT_PAGE: u64 = PAGE | NORMAL | SH_INNER | AF | UXN;
}

/// Memory attribute indexes into MAIR_EL1 (values set in boot.rs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MemAttr {
    Device = 0,
    Normal = 1,
    NormalNonCacheable = 2,
}

/// What the kernel may do with a mapping.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KernelPerm {
    ReadOnly,
    ReadWrite,
    ReadExecute,
}

impl KernelPerm {
    fn bits(self) -> u64 {
        match self {
            KernelPerm::ReadOnly => desc::AP_EL1_RO | desc::PXN,
            KernelPerm::ReadWrite => desc::PXN,
            KernelPerm::ReadExecute => desc::AP_EL1_RO,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MapError {
    /// No memory for a translation table.
    NoTables,
    /// Part of the range is already mapped differently.
    Overlap,
    /// The device window is full.
    WindowFull,
}

type Table = [u64; 512];

/// Where the loader put the image; set once by `init`.
static LOAD_PA: AtomicU64 = AtomicU64::new(0);

/// Tables for mappings made before the frame allocator exists.
const EARLY_TABLES: usize = 24;
#[repr(C, align(4096))]
struct EarlyPool([Table; EARLY_TABLES]);
static mut EARLY_POOL: EarlyPool = EarlyPool([[0; 512]; EARLY_TABLES]);
static EARLY_USED: AtomicU64 = AtomicU64::new(0);

/// Source of frames for tables once the frame allocator runs (set by `use_frame_allocator`).
static TABLE_SOURCE: AtomicU64 = AtomicU64::new(0);

/// Serialises changes to the kernel tables.
static KERNEL_TABLES: IrqSpinLock<()> = IrqSpinLock::new(LockLevel::KernelTables, ());

/// Next free address in the device window.
static DEVICE_NEXT: AtomicU64 = AtomicU64::new(layout::DEVICE_BASE);

/// Record the image's physical address. Called once, first thing, on the boot CPU.
pub fn init(load_pa: u64) {
    LOAD_PA.store(load_pa, Ordering::Relaxed);
}

pub fn image_phys_range() -> (PhysAddr, u64) {
    (PhysAddr(LOAD_PA.load(Ordering::Relaxed)), image_size())
}

fn image_size() -> u64 {
    unsafe extern "C" {
        static __image_start: u8;
        static __image_end: u8;
    }
    (&raw const __image_end) as u64 - (&raw const __image_start) as u64
}

/// The kernel virtual address of physical `pa` holding a table: in the image if it is
/// one of the boot or early tables, else through the linear map.
fn table_va(pa: u64) -> *mut Table {
    let load = LOAD_PA.load(Ordering::Relaxed);
    if pa >= load && pa < load + image_size() {
        (KIMAGE_VA + (pa - load)) as *mut Table
    } else {
        PhysAddr(pa).to_linear().as_mut_ptr()
    }
}

fn image_va_to_pa(va: u64) -> u64 {
    va - KIMAGE_VA + LOAD_PA.load(Ordering::Relaxed)
}

/// Let table allocation use the frame allocator from now on.
pub fn use_frame_allocator() {
    TABLE_SOURCE.store(1, Ordering::Release);
}

fn alloc_table() -> Option<u64> {
    if TABLE_SOURCE.load(Ordering::Acquire) != 0 {
        let pa = crate::mm::frame::alloc_zeroed(1)?;
        return Some(pa.as_u64());
    }
    let i = EARLY_USED.fetch_add(1, Ordering::Relaxed) as usize;
    if i >= EARLY_TABLES {
        return None;
    }
    // SAFETY: each index of the pool is handed out once (the counter above), so no other
    // reference to this table exists; only its address is taken here.
    let va = unsafe { (&raw mut EARLY_POOL.0[i]) as u64 };
    Some(image_va_to_pa(va))
}

fn kernel_root_pa() -> u64 {
    // SAFETY: only the address of the static is taken.
    let va = unsafe { (&raw const BOOT_TABLES.k_l0) as u64 };
    image_va_to_pa(va)
}

const LEVEL_SHIFT: [u32; 4] = [39, 30, 21, 12];

/// Map `[va, va + size)` to `[pa, pa + size)` in the kernel tables with the largest blocks
/// that fit. All three must be page-aligned. Mapping a page that is already mapped to the
/// same frame with the same attributes is allowed; anything else is `Overlap`.
pub fn map(
    va: VirtAddr,
    pa: PhysAddr,
    size: u64,
    attr: MemAttr,
    perm: KernelPerm,
) -> Result<(), MapError> {
    let _guard = KERNEL_TABLES.lock();
    let attrs = ((attr as u64) << desc::ATTR_INDEX_SHIFT)
        | perm.bits()
        | desc::AF
        | desc::UXN
        | if attr == MemAttr::Device {
            0
        } else {
            desc::SH_INNER
        };
    let mut off = 0;
    while off < size {
        let (v, p) = (va.0 + off, pa.0 + off);
        let step = map_one(kernel_root_pa(), v, p, size - off, attrs)?;
        off += step;
    }
    barrier_after_map();
    Ok(())
}

/// Map one block or page at `v`; returns its size.
fn map_one(root: u64, v: u64, p: u64, remaining: u64, attrs: u64) -> Result<u64, MapError> {
    let mut table = root;
    for (level, &shift) in LEVEL_SHIFT.iter().enumerate() {
        let index = ((v >> shift) & 511) as usize;
        let block = 1u64 << shift;
        let can_block =
            level >= 1 && v.is_multiple_of(block) && p.is_multiple_of(block) && remaining >= block;
        let t = table_va(table);
        // SAFETY: `t` is a live translation table of the kernel (root or reached from it)
        // and the kernel-table lock is held.
        let entry = unsafe { (*t)[index] };
        if level == 3 || can_block {
            let kind = if level == 3 { desc::PAGE } else { desc::BLOCK };
            let new = (p & desc::ADDR_MASK) | attrs | kind;
            if entry & desc::VALID != 0 && entry != new {
                return Err(MapError::Overlap);
            }
            // SAFETY: as above.
            unsafe { (*t)[index] = new };
            return Ok(block);
        }
        if entry & desc::VALID == 0 {
            let new_table = alloc_table().ok_or(MapError::NoTables)?;
            // SAFETY: as above.
            unsafe { (*t)[index] = new_table | desc::TABLE };
            table = new_table;
        } else if entry & 0b11 == desc::TABLE {
            table = entry & desc::ADDR_MASK;
        } else {
            return Err(MapError::Overlap);
        }
    }
    Err(MapError::Overlap)
}

/// The last-level entry for `va` in the kernel tables, creating tables on the way when
/// `create`. `None` if a block mapping covers `va` or tables are missing (or out of memory).
fn kernel_leaf(va: u64, create: bool) -> Option<*mut u64> {
    let mut table = kernel_root_pa();
    for &shift in &LEVEL_SHIFT[..3] {
        let index = ((va >> shift) & 511) as usize;
        let t = table_va(table);
        // SAFETY: `t` is a live kernel table; the kernel-table lock is held by the caller.
        let entry = unsafe { (*t)[index] };
        if entry & desc::VALID == 0 {
            if !create {
                return None;
            }
            let new_table = alloc_table()?;
            // SAFETY: as above.
            unsafe { (*t)[index] = new_table | desc::TABLE };
            table = new_table;
        } else if entry & 0b11 == desc::TABLE {
            table = entry & desc::ADDR_MASK;
        } else {
            return None;
        }
    }
    let index = ((va >> 12) & 511) as usize;
    // SAFETY: as above.
    Some(unsafe { &mut (*table_va(table))[index] as *mut u64 })
}

/// Create the translation tables for `[va, va + size)` without mapping anything, so that
/// later mappings there (kernel stacks) never allocate tables: a run of tasks then leaves
/// the free-frame count exactly as it found it.
pub fn prepare_tables(va: VirtAddr, size: u64) -> Result<(), MapError> {
    let _guard = KERNEL_TABLES.lock();
    let mut at = align_down(va.0, 0x20_0000);
    while at < va.0 + size {
        kernel_leaf(at, true).ok_or(MapError::NoTables)?;
        at += 0x20_0000;
    }
    barrier_after_map();
    Ok(())
}

/// Unmap the pages of `[va, va + size)` (mapped with pages, not blocks) without flushing
/// the TLBs: the caller must `flush_kernel_tlb` before the frames or the range are reused.
/// Lets a batch of unmappings share one broadcast invalidation.
pub fn unmap_deferred(va: VirtAddr, size: u64) {
    let _guard = KERNEL_TABLES.lock();
    let mut at = va.0;
    while at < va.0 + size {
        if let Some(leaf) = kernel_leaf(at, false) {
            // SAFETY: `leaf` is a kernel last-level entry and the lock is held.
            unsafe { leaf.write_volatile(0) };
        }
        at += PAGE_SIZE as u64;
    }
}

/// Invalidate every kernel translation on every CPU (completes `unmap_deferred`).
pub fn flush_kernel_tlb() {
    flush_tlb_all();
}

fn barrier_after_map() {
    // SAFETY: barriers only order this CPU's table writes before later translations.
    unsafe { core::arch::asm!("dsb ishst", "isb", options(nostack)) };
}

/// Invalidate all kernel TLB entries on every CPU of the inner-shareable domain.
fn flush_tlb_all() {
    // SAFETY: TLB invalidation has no effect beyond dropping cached translations.
    unsafe {
        core::arch::asm!(
            "dsb ishst",
            "tlbi vmalle1is",
            "dsb ish",
            "isb",
            options(nostack)
        )
    };
}

/// Map `size` bytes of MMIO at `pa` into the device window; returns the address of `pa`.
pub fn map_device(pa: PhysAddr, size: u64) -> Result<VirtAddr, MapError> {
    map_window(pa, size, MemAttr::Device, KernelPerm::ReadWrite)
}

/// Map `size` bytes of RAM at `pa` read-only into the device window (used for the device
/// tree before the linear map exists).
pub fn map_readonly(pa: PhysAddr, size: u64) -> Result<VirtAddr, MapError> {
    map_window(pa, size, MemAttr::Normal, KernelPerm::ReadOnly)
}

fn map_window(
    pa: PhysAddr,
    size: u64,
    attr: MemAttr,
    perm: KernelPerm,
) -> Result<VirtAddr, MapError> {
    let base = align_down(pa.0, PAGE_SIZE as u64);
    let end = align_up(pa.0 + size, PAGE_SIZE as u64);
    let len = end - base;
    // Keep blocks usable: align the window address like the physical one, up to 2 MiB.
    let align = if len >= 0x20_0000 && base.is_multiple_of(0x20_0000) {
        0x20_0000
    } else {
        PAGE_SIZE as u64
    };
    let mut va = 0;
    DEVICE_NEXT
        .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |next| {
            let start = align_up(next, align);
            va = start;
            (start + len <= layout::DEVICE_END).then_some(start + len)
        })
        .map_err(|_| MapError::WindowFull)?;
    map(VirtAddr(va), PhysAddr(base), len, attr, perm)?;
    Ok(VirtAddr(va + (pa.0 - base)))
}

/// Map a RAM region into the linear map (read-write, never executable).
pub fn map_linear(pa: PhysAddr, size: u64) -> Result<(), MapError> {
    map(
        pa.to_linear(),
        pa,
        size,
        MemAttr::Normal,
        KernelPerm::ReadWrite,
    )
}

/// Give the image its final permissions: text read-execute, rodata read-only, data and bss
/// read-write and never executable, and unmap the boot stack's guard page.
pub fn protect_image() {
    unsafe extern "C" {
        static __text_end: u8;
        static __rodata_end: u8;
    }
    let text_end = &raw const __text_end as u64;
    let rodata_end = &raw const __rodata_end as u64;
    // SAFETY: only the address of the guard page is taken.
    let guard = unsafe { (&raw const BOOT_STACK.guard) as u64 };
    let _guard = KERNEL_TABLES.lock();
    let pages = image_size() / PAGE_SIZE as u64;
    for i in 0..pages {
        let va = KIMAGE_VA + i * PAGE_SIZE as u64;
        let perm = if va < text_end {
            KernelPerm::ReadExecute
        } else if va < rodata_end {
            KernelPerm::ReadOnly
        } else {
            KernelPerm::ReadWrite
        };
        let table = (i / 512) as usize;
        let index = (i % 512) as usize;
        // SAFETY: the boot L3 tables map the image (boot.s); the kernel-table lock is held
        // and the entries are rewritten with the same frames, so nothing else changes.
        unsafe {
            let entry = &mut BOOT_TABLES.k_l3[table][index];
            *entry = if va == guard {
                0
            } else {
                (*entry & desc::ADDR_MASK) | desc::BOOT_PAGE | perm.bits()
            };
        }
    }
    flush_tlb_all();
}

/// Remove the identity map used while turning the MMU on (TTBR0 is for user space): every
/// CPU shares the boot tables, so clearing the entries and a broadcast TLB flush suffice.
pub fn drop_identity_map() {
    let _guard = KERNEL_TABLES.lock();
    // SAFETY: every CPU has left the identity-mapped boot code (they are all online), and
    // the kernel-table lock is held.
    unsafe {
        BOOT_TABLES.id_l0 = [0; 512];
        BOOT_TABLES.id_l1 = [0; 512];
    }
    flush_tlb_all();
}
