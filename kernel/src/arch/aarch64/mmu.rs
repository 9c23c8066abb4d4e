//! Kernel translation tables (TTBR1): the linear map of RAM, the device window, kernel
//! stacks and W^X for the image, which holds in the linear map too (the image's own pages
//! there are mapped with its permissions, never writable where the image is not). The boot
//! tables from `boot.s` are the starting point; this code extends them with the common
//! walker (`pagetable`). User address spaces (TTBR0) are not handled here.
//!
//! Descriptor formats: Arm ARM D8.3 (VMSAv8-64 translation table descriptors).

use super::boot::{BOOT_STACK, BOOT_TABLES};
use super::pagetable::{self, Slot, Step, Table, Tables, Visitor, desc, span};
use crate::mm::layout::{self, KIMAGE_VA};
use crate::mm::{PAGE_SIZE, PhysAddr, VirtAddr, align_down, align_up};
use crate::sync::{IrqSpinLock, IrqSpinLockGuard, LockLevel};
use core::sync::atomic::{AtomicU64, Ordering};

/// The descriptors the boot assembly writes: the image and the identity map, normal
/// memory, EL1 read-write-execute until `protect_image`.
pub mod boot_desc {
    use super::{MemAttr, desc};
    const NORMAL: u64 = desc::attr_index(MemAttr::Normal as u64) | desc::SH_INNER | desc::AF;
    pub const BLOCK: u64 = desc::BLOCK | NORMAL | desc::UXN;
    pub const PAGE: u64 = desc::PAGE | NORMAL | desc::UXN;
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
            KernelPerm::ReadOnly => desc::AP_RO_EL1 | desc::PXN,
            KernelPerm::ReadWrite => desc::AP_RW_EL1 | desc::PXN,
            KernelPerm::ReadExecute => desc::AP_RO_EL1,
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

/// The image's parts with their permissions: (link address range, permission).
fn image_sections() -> [(u64, u64, KernelPerm); 3] {
    unsafe extern "C" {
        static __text_end: u8;
        static __rodata_end: u8;
    }
    let text_end = &raw const __text_end as u64;
    let rodata_end = &raw const __rodata_end as u64;
    [
        (KIMAGE_VA, text_end, KernelPerm::ReadExecute),
        (text_end, rodata_end, KernelPerm::ReadOnly),
        (rodata_end, KIMAGE_VA + image_size(), KernelPerm::ReadWrite),
    ]
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

/// Order this CPU's earlier stores (the zeroes of a new table) before any later store that
/// publishes the table to the table walkers of every CPU (DESIGN.md 5).
pub fn publish_barrier() {
    // SAFETY: a barrier only orders this CPU's memory accesses.
    unsafe { core::arch::asm!("dsb ishst", options(nostack, preserves_flags)) };
}

/// A zeroed frame for a translation table, ready to be linked into a live tree: the one
/// way new tables are made, kernel and user alike.
pub fn new_table_frame() -> Option<PhysAddr> {
    let pa = crate::mm::frame::alloc_zeroed(1)?;
    publish_barrier();
    Some(pa)
}

fn alloc_table() -> Option<u64> {
    if TABLE_SOURCE.load(Ordering::Acquire) != 0 {
        return new_table_frame().map(PhysAddr::as_u64);
    }
    let i = EARLY_USED.fetch_add(1, Ordering::Relaxed) as usize;
    if i >= EARLY_TABLES {
        return None;
    }
    // SAFETY: each index of the pool is handed out once (the counter above), so no other
    // reference to this table exists; only its address is taken here.
    let va = unsafe { (&raw mut EARLY_POOL.0[i]) as u64 };
    // Zero since boot (.bss); the barrier orders that like any other new table.
    publish_barrier();
    Some(image_va_to_pa(va))
}

fn kernel_root_pa() -> u64 {
    // SAFETY: only the address of the static is taken.
    let va = unsafe { (&raw const BOOT_TABLES.k_l0) as u64 };
    image_va_to_pa(va)
}

/// The kernel's tree, borrowed under the kernel-table lock.
struct KernelTables<'a> {
    _locked: IrqSpinLockGuard<'a, ()>,
}

impl KernelTables<'_> {
    fn lock() -> Self {
        KernelTables {
            _locked: KERNEL_TABLES.lock(),
        }
    }
}

// SAFETY: the root and every table linked from it are the boot tables, early-pool tables
// (in the image) or frames from `new_table_frame`, all reached through `table_va`; the
// kernel-table lock (held for the borrow's life) keeps every other writer out.
unsafe impl Tables for KernelTables<'_> {
    fn root(&self) -> u64 {
        kernel_root_pa()
    }
    fn table(&self, pa: u64) -> *mut Table {
        table_va(pa)
    }
    fn new_table(&mut self) -> Option<u64> {
        alloc_table()
    }
}

/// Maps `[va0, ...)` to `[pa0, ...)` with the largest blocks that fit.
struct MapRange {
    va0: u64,
    pa0: u64,
    attrs: u64,
}

impl MapRange {
    fn pa(&self, va: u64) -> u64 {
        self.pa0.wrapping_add(va.wrapping_sub(self.va0))
    }
}

impl Visitor for MapRange {
    type Error = MapError;
    fn step(&mut self, level: usize, va: u64, inside: bool, entry: u64) -> Step {
        if level == pagetable::LAST_LEVEL {
            return Step::Leaf;
        }
        if entry & desc::VALID != 0 {
            // A table: go in. A block: `leaf` accepts it only if it is the same mapping.
            return if desc::is_table_or_page(entry) {
                Step::Descend
            } else {
                Step::Leaf
            };
        }
        // Nothing there yet: a block where one fits, else a table to go on in.
        let block = level >= 1 && inside && self.pa(va).is_multiple_of(span(level));
        if block { Step::Leaf } else { Step::Descend }
    }
    fn leaf(&mut self, level: usize, va: u64, entry: &mut Slot<'_>) -> Result<(), MapError> {
        let kind = if level == pagetable::LAST_LEVEL {
            desc::PAGE
        } else {
            desc::BLOCK
        };
        let new = (self.pa(va) & desc::ADDR_MASK) | self.attrs | kind;
        let old = entry.get();
        if old & desc::VALID != 0 && old != new {
            return Err(MapError::Overlap);
        }
        entry.set(new);
        Ok(())
    }
    fn no_table(&mut self) -> MapError {
        MapError::NoTables
    }
}

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
    let attrs = desc::attr_index(attr as u64)
        | perm.bits()
        | desc::AF
        | desc::UXN
        | if attr == MemAttr::Device {
            0
        } else {
            desc::SH_INNER
        };
    let mut tables = KernelTables::lock();
    let mut visitor = MapRange {
        va0: va.0,
        pa0: pa.0,
        attrs,
    };
    let r = pagetable::walk(&mut tables, va.0, size, &mut visitor);
    barrier_after_map();
    r
}

/// Makes the tables down to the last level, maps nothing.
struct MakeTables;

impl Visitor for MakeTables {
    type Error = MapError;
    fn step(&mut self, level: usize, _: u64, _: bool, entry: u64) -> Step {
        let block = entry & desc::VALID != 0 && !desc::is_table_or_page(entry);
        if level == pagetable::LAST_LEVEL || block {
            Step::Skip
        } else {
            Step::Descend
        }
    }
    fn leaf(&mut self, _: usize, _: u64, _: &mut Slot<'_>) -> Result<(), MapError> {
        Ok(())
    }
    fn no_table(&mut self) -> MapError {
        MapError::NoTables
    }
}

/// Create the translation tables for `[va, va + size)` without mapping anything, so that
/// later mappings there (kernel stacks) never allocate tables: a run of tasks then leaves
/// the free-frame count exactly as it found it.
pub fn prepare_tables(va: VirtAddr, size: u64) -> Result<(), MapError> {
    let mut tables = KernelTables::lock();
    // One page per last-level table is enough to make it (and it visits one entry there).
    let last = span(pagetable::LAST_LEVEL - 1);
    let mut at = align_down(va.0, last);
    while at < va.0 + size {
        pagetable::walk(&mut tables, at, PAGE_SIZE, &mut MakeTables)?;
        at += last;
    }
    barrier_after_map();
    Ok(())
}

/// The walk of a visitor that works on 4 KiB pages only: down through tables to the
/// pages, past blocks and empty entries.
fn pages_only(level: usize, entry: u64) -> Step {
    match (
        desc::is_table_or_page(entry),
        level == pagetable::LAST_LEVEL,
    ) {
        (false, _) => Step::Skip,
        (true, false) => Step::Descend,
        (true, true) => Step::Leaf,
    }
}

/// Clears the pages it visits (blocks are left alone).
struct ClearPages;

impl Visitor for ClearPages {
    type Error = core::convert::Infallible;
    fn step(&mut self, level: usize, _: u64, _: bool, entry: u64) -> Step {
        pages_only(level, entry)
    }
    fn leaf(&mut self, _: usize, _: u64, entry: &mut Slot<'_>) -> Result<(), Self::Error> {
        entry.set(0);
        Ok(())
    }
    fn no_table(&mut self) -> Self::Error {
        unreachable!("clearing makes no tables")
    }
}

/// Unmap the pages of `[va, va + size)` (mapped with pages, not blocks) without flushing
/// the TLBs: the caller must `flush_kernel_tlb` before the frames or the range are reused.
/// Lets a batch of unmappings share one broadcast invalidation.
pub fn unmap_deferred(va: VirtAddr, size: u64) {
    let mut tables = KernelTables::lock();
    let Ok(()) = pagetable::walk(&mut tables, va.0, size, &mut ClearPages);
}

/// Counts the valid pages and blocks it visits; makes no tables and changes nothing.
struct CountMapped(usize);

impl Visitor for CountMapped {
    type Error = core::convert::Infallible;
    fn step(&mut self, level: usize, _: u64, _: bool, entry: u64) -> Step {
        if entry & desc::VALID == 0 {
            Step::Skip
        } else if desc::is_table_or_page(entry) && level != pagetable::LAST_LEVEL {
            Step::Descend
        } else {
            Step::Leaf
        }
    }
    fn leaf(&mut self, _: usize, _: u64, _: &mut Slot<'_>) -> Result<(), Self::Error> {
        self.0 += 1;
        Ok(())
    }
    fn no_table(&mut self) -> Self::Error {
        unreachable!("counting makes no tables")
    }
}

/// How many pages or blocks of the kernel tables translate some of `[va, va + size)`:
/// 0 when none of it is mapped (the self-checks' test of a stack's guard gap).
pub fn mapped_entries(va: VirtAddr, size: u64) -> usize {
    let mut tables = KernelTables::lock();
    let mut count = CountMapped(0);
    let Ok(()) = pagetable::walk(&mut tables, va.0, size, &mut count);
    count.0
}

/// Invalidate every kernel translation on every CPU (completes `unmap_deferred`).
pub fn flush_kernel_tlb() {
    flush_tlb_all();
}

fn barrier_after_map() {
    // SAFETY: barriers only order this CPU's table writes before later translations.
    unsafe { core::arch::asm!("dsb ishst", "isb", options(nostack)) };
}

/// Invalidate all EL1 TLB entries (every ASID, global ones too) on every CPU of the
/// inner-shareable domain, and wait for it.
pub fn flush_tlb_all() {
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

/// Invalidate all EL1 TLB entries of this CPU only.
pub fn flush_tlb_local() {
    // SAFETY: as above, for this CPU's TLBs.
    unsafe {
        core::arch::asm!(
            "dsb nshst",
            "tlbi vmalle1",
            "dsb nsh",
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
    let base = align_down(pa.0, PAGE_SIZE);
    let end = align_up(pa.0 + size, PAGE_SIZE);
    let len = end - base;
    // Keep blocks usable: align the window address like the physical one, up to 2 MiB.
    let block = span(pagetable::LAST_LEVEL - 1);
    let align = if len >= block && base.is_multiple_of(block) {
        block
    } else {
        PAGE_SIZE
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

/// Map a RAM region into the linear map, never executable: read-write, except where the
/// kernel image lies, whose pages get the image's own permissions (text and rodata
/// read-only), so that the linear map is no writable alias of the kernel's code.
pub fn map_linear(pa: PhysAddr, size: u64) -> Result<(), MapError> {
    let (start, end) = (pa.0, pa.0 + size);
    let (image, image_size) = image_phys_range();
    let (image_start, image_end) = (image.0, image.0 + image_size);
    let mut pieces = [(0, 0, KernelPerm::ReadWrite); 5];
    pieces[0] = (start, end.min(image_start), KernelPerm::ReadWrite);
    for (i, (va_start, va_end, perm)) in image_sections().into_iter().enumerate() {
        let (s, e) = (image_va_to_pa(va_start), image_va_to_pa(va_end));
        pieces[1 + i] = (s.max(start), e.min(end), perm);
    }
    pieces[4] = (start.max(image_end), end, KernelPerm::ReadWrite);
    for (s, e, perm) in pieces {
        if s < e {
            // The linear map is never executable: text is only readable there.
            let perm = if perm == KernelPerm::ReadExecute {
                KernelPerm::ReadOnly
            } else {
                perm
            };
            map(
                PhysAddr(s).to_linear(),
                PhysAddr(s),
                e - s,
                MemAttr::Normal,
                perm,
            )?;
        }
    }
    Ok(())
}

/// Rewrites the image's pages with their final permissions and unmaps the guard page.
struct ProtectImage {
    sections: [(u64, u64, KernelPerm); 3],
    guard: u64,
}

impl Visitor for ProtectImage {
    type Error = core::convert::Infallible;
    fn step(&mut self, level: usize, _: u64, _: bool, entry: u64) -> Step {
        pages_only(level, entry)
    }
    fn leaf(&mut self, _: usize, va: u64, entry: &mut Slot<'_>) -> Result<(), Self::Error> {
        if va == self.guard {
            entry.set(0);
            return Ok(());
        }
        let perm = self
            .sections
            .iter()
            .find(|&&(s, e, _)| va >= s && va < e)
            .map_or(KernelPerm::ReadWrite, |&(_, _, p)| p);
        // The same frame, so only the permissions change.
        entry.set((entry.get() & desc::ADDR_MASK) | boot_desc::PAGE | perm.bits());
        Ok(())
    }
    fn no_table(&mut self) -> Self::Error {
        unreachable!("the image is mapped")
    }
}

/// Give the image its final permissions: text read-execute, rodata read-only, data and bss
/// read-write and never executable, and unmap the boot stack's guard page.
pub fn protect_image() {
    // SAFETY: only the address of the guard page is taken.
    let guard = unsafe { (&raw const BOOT_STACK.guard) as u64 };
    let mut visitor = ProtectImage {
        sections: image_sections(),
        guard,
    };
    let mut tables = KernelTables::lock();
    let Ok(()) = pagetable::walk(&mut tables, KIMAGE_VA, image_size(), &mut visitor);
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

/// The linear-map address of a word of the kernel's text (for `crash=write-text-alias`,
/// which writes there to show that the alias is not writable).
pub fn text_linear_alias(va: u64) -> VirtAddr {
    PhysAddr(image_va_to_pa(va)).to_linear()
}
