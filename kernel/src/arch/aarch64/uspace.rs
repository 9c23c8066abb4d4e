//! User translation tables (TTBR0, 4 KiB pages, 48-bit) and the switch between user
//! address spaces. Mappings are always non-global, never executable at EL1 (PXN), and
//! never writable and executable at once. Which pages exist is decided by `mm::vm`; this
//! file writes descriptors (with the common walker, `pagetable`), keeps the TLBs right and
//! loads TTBR0 with the ASID `mm::asid` gives.
//!
//! Taking frames out of a map follows one order (DESIGN.md 5): clear the entries, `dsb ish`,
//! invalidate the TLB entries on every CPU (`tlbi … is`, `dsb ish`, `isb`), and only then
//! free the frames, tables included: until the invalidation is complete another CPU may
//! still write through a cached translation, and a free frame holds the frame allocator's
//! links. The frames wait in a small fixed batch (no heap on this path).

extern crate alloc;

use super::mmu::{self, MemAttr};
use super::pagetable::{self, LAST_LEVEL, Slot, Step, Table, Tables, Visitor, desc};
use crate::devtree::MAX_CPUS;
use crate::mm::asid::{AsidAllocator, AsidId};
use crate::mm::{PAGE_SIZE, PhysAddr, frame};
use crate::percpu;
use aarch64_cpu::registers::ID_AA64MMFR0_EL1;
use alloc::sync::Arc;
use arrayvec::ArrayVec;
use core::convert::Infallible;
use core::marker::PhantomData;
use mach_abi::KernReturn;
use tock_registers::interfaces::Readable;

/// Access a user page allows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct UserPerm {
    pub read: bool,
    pub write: bool,
    pub execute: bool,
}

fn leaf_bits(perm: UserPerm) -> u64 {
    let ap = if perm.write {
        desc::AP_RW_EL0
    } else {
        desc::AP_RO_EL0
    };
    let uxn = if perm.execute && !perm.write {
        0
    } else {
        desc::UXN
    };
    desc::PAGE
        | desc::attr_index(MemAttr::Normal as u64)
        | desc::SH_INNER
        | desc::AF
        | desc::NG
        | desc::PXN
        | uxn
        | ap
}

fn perm_of(entry: u64) -> UserPerm {
    UserPerm {
        read: true,
        write: entry & desc::AP_MASK == desc::AP_RW_EL0,
        execute: entry & desc::UXN == 0,
    }
}

/// What a CPU loads to run an address space: its top-level table and its ASID. Shared by
/// the task (for the context switch, which takes no lock) and its page table.
pub struct AddressSpace {
    root: PhysAddr,
    asid: AsidId,
}

/// One task's user page tables.
pub struct UserPageTable {
    space: Arc<AddressSpace>,
}

/// The tree of a map, borrowed for one walk through `&mut UserPageTable`.
struct UserTables<'a> {
    root: u64,
    _map: PhantomData<&'a mut UserPageTable>,
}

// SAFETY: the root and every table linked from it are frames from `new_table_frame` that
// only this map uses, reached through the linear map; `&mut UserPageTable` (held for the
// borrow's life, under the task's map lock) keeps every other writer out.
unsafe impl Tables for UserTables<'_> {
    fn root(&self) -> u64 {
        self.root
    }
    fn table(&self, pa: u64) -> *mut Table {
        PhysAddr(pa).to_linear().as_mut_ptr()
    }
    fn new_table(&mut self) -> Option<u64> {
        mmu::new_table_frame().map(PhysAddr::as_u64)
    }
}

/// Finds one page's frame, or maps one from `fill` (making tables on the way).
struct FindOrMap<F> {
    bits: u64,
    fill: Option<F>,
    found: Option<(PhysAddr, bool)>,
}

impl<F: FnOnce() -> Option<PhysAddr>> Visitor for FindOrMap<F> {
    type Error = KernReturn;
    fn step(&mut self, level: usize, _: u64, _: bool, _: u64) -> Step {
        if level == LAST_LEVEL {
            Step::Leaf
        } else {
            Step::Descend
        }
    }
    fn leaf(&mut self, _: usize, _: u64, entry: &mut Slot<'_>) -> Result<(), KernReturn> {
        let old = entry.get();
        if old & desc::VALID != 0 {
            self.found = Some((PhysAddr(old & desc::ADDR_MASK), false));
            return Ok(());
        }
        let fill = self.fill.take().ok_or(KernReturn::ResourceShortage)?;
        let pa = fill().ok_or(KernReturn::ResourceShortage)?;
        entry.set(pa.as_u64() | self.bits);
        self.found = Some((pa, true));
        Ok(())
    }
    fn no_table(&mut self) -> KernReturn {
        KernReturn::ResourceShortage
    }
}

/// Steps to the valid last-level entries of a range, skipping empty subtrees, so that a
/// sparse range costs what is mapped in it, not its size.
fn to_valid_pages(level: usize, entry: u64) -> Step {
    match (entry & desc::VALID != 0, level == LAST_LEVEL) {
        (false, _) => Step::Skip,
        (true, false) => Step::Descend,
        (true, true) => Step::Leaf,
    }
}

/// Reads one page's entry.
struct Lookup(Option<u64>);

impl Visitor for Lookup {
    type Error = Infallible;
    fn step(&mut self, level: usize, _: u64, _: bool, entry: u64) -> Step {
        to_valid_pages(level, entry)
    }
    fn leaf(&mut self, _: usize, _: u64, entry: &mut Slot<'_>) -> Result<(), Infallible> {
        self.0 = Some(entry.get());
        Ok(())
    }
    fn no_table(&mut self) -> Infallible {
        unreachable!("a lookup makes no tables")
    }
}

/// Hands the mapped pages of a range to a function, passing over absent tables whole,
/// until the function says it has had enough (`false`).
struct EachMapped<'f> {
    f: &'f mut dyn FnMut(u64, PhysAddr) -> bool,
    done: bool,
}

impl Visitor for EachMapped<'_> {
    type Error = Infallible;
    fn step(&mut self, level: usize, _: u64, _: bool, entry: u64) -> Step {
        if self.done {
            return Step::Skip;
        }
        to_valid_pages(level, entry)
    }
    fn leaf(&mut self, _: usize, va: u64, entry: &mut Slot<'_>) -> Result<(), Infallible> {
        self.done = !(self.f)(va, PhysAddr(entry.get() & desc::ADDR_MASK));
        Ok(())
    }
    fn no_table(&mut self) -> Infallible {
        unreachable!("a read-only walk makes no tables")
    }
}

/// Frames unlinked from a map, held until the TLB invalidation that lets them go.
const BATCH: usize = 32;

#[derive(Clone, Copy)]
enum Unlinked {
    /// A page the map's owner gets back (it knows whose frame it is).
    Page { va: u64, pa: PhysAddr },
    /// A translation table left empty, freed here.
    Table(PhysAddr),
}

/// Clears pages (and, with `tables`, unlinks tables it leaves empty), and hands the frames
/// back in batches, each after its TLB invalidation.
struct Unmap<'a, 'f> {
    space: &'a AddressSpace,
    batch: ArrayVec<Unlinked, BATCH>,
    give_back: &'f mut dyn FnMut(PhysAddr),
    tables: bool,
    /// Entries cleared so far, and the count when the walk went down at each level: a
    /// table is looked at for emptiness only if something below it went.
    cleared: u64,
    cleared_at: [u64; LAST_LEVEL],
}

impl Unmap<'_, '_> {
    fn push(&mut self, item: Unlinked) {
        if self.batch.is_full() {
            self.release();
        }
        self.batch.push(item);
    }

    /// Invalidate the batch's translations on every CPU, then free its frames.
    fn release(&mut self) {
        if self.batch.is_empty() {
            return;
        }
        let pages_only = self
            .batch
            .iter()
            .all(|u| matches!(u, Unlinked::Page { .. }));
        if pages_only {
            invalidate_pages(
                self.space,
                self.batch.iter().filter_map(|u| match u {
                    Unlinked::Page { va, .. } => Some(*va),
                    Unlinked::Table(_) => None,
                }),
            );
        } else {
            // A freed table may sit in walk caches for any address it spans.
            invalidate_space(self.space);
        }
        for u in self.batch.drain(..) {
            match u {
                Unlinked::Page { pa, .. } => (self.give_back)(pa),
                Unlinked::Table(pa) => frame::free(pa, 1),
            }
        }
    }
}

impl Visitor for Unmap<'_, '_> {
    type Error = Infallible;
    fn step(&mut self, level: usize, _: u64, _: bool, entry: u64) -> Step {
        let step = to_valid_pages(level, entry);
        if step == Step::Descend {
            self.cleared_at[level] = self.cleared;
        }
        step
    }
    fn leaf(&mut self, _: usize, va: u64, entry: &mut Slot<'_>) -> Result<(), Infallible> {
        let pa = PhysAddr(entry.get() & desc::ADDR_MASK);
        entry.set(0);
        self.cleared += 1;
        self.push(Unlinked::Page { va, pa });
        Ok(())
    }
    fn left_table(&mut self, level: usize, _: u64, entry: &mut Slot<'_>, table: &Table) {
        if self.tables && self.cleared != self.cleared_at[level] && pagetable::is_empty(table) {
            let pa = PhysAddr(entry.get() & desc::ADDR_MASK);
            entry.set(0);
            self.cleared += 1;
            self.push(Unlinked::Table(pa));
        }
    }
    fn no_table(&mut self) -> Infallible {
        unreachable!("unmapping makes no tables")
    }
}

/// First pass of a protection change: makes each page invalid, keeping its address and a
/// mark (break before make, so that no CPU writes a page while it turns executable).
struct Break(u64);

impl Visitor for Break {
    type Error = Infallible;
    fn step(&mut self, level: usize, _: u64, _: bool, entry: u64) -> Step {
        to_valid_pages(level, entry)
    }
    fn leaf(&mut self, _: usize, _: u64, entry: &mut Slot<'_>) -> Result<(), Infallible> {
        entry.set((entry.get() & desc::ADDR_MASK) | desc::SW_REMAP);
        self.0 += 1;
        Ok(())
    }
    fn no_table(&mut self) -> Infallible {
        unreachable!("a protection change makes no tables")
    }
}

/// Second pass: the marked pages become valid again with the new access.
struct Make(UserPerm);

impl Visitor for Make {
    type Error = Infallible;
    fn step(&mut self, level: usize, _: u64, _: bool, entry: u64) -> Step {
        match (level == LAST_LEVEL, entry & desc::VALID != 0) {
            (false, true) => Step::Descend,
            (true, false) if entry & desc::SW_REMAP != 0 => Step::Leaf,
            _ => Step::Skip,
        }
    }
    fn leaf(&mut self, _: usize, _: u64, entry: &mut Slot<'_>) -> Result<(), Infallible> {
        let pa = entry.get() & desc::ADDR_MASK;
        if self.0.execute {
            // Code the task wrote while the page was writable must reach the instruction
            // side before it may run.
            super::cpu::sync_icache(PhysAddr(pa).to_linear().as_u64(), PAGE_SIZE);
        }
        entry.set(pa | leaf_bits(self.0));
        Ok(())
    }
    fn no_table(&mut self) -> Infallible {
        unreachable!("a protection change makes no tables")
    }
}

impl UserPageTable {
    /// A new empty table; `None` when out of memory. Its ASID comes when it first runs.
    pub fn new() -> Option<Self> {
        let root = mmu::new_table_frame()?;
        Some(UserPageTable {
            space: Arc::new(AddressSpace {
                root,
                asid: AsidId::new(),
            }),
        })
    }

    /// What the context switch loads for this map.
    pub fn space(&self) -> &Arc<AddressSpace> {
        &self.space
    }

    fn tables(&mut self) -> UserTables<'_> {
        UserTables {
            root: self.space.root.as_u64(),
            _map: PhantomData,
        }
    }

    /// The frame of user page `va` as the MMU translates it for EL0 (read, or write if
    /// `write`), if this table is the one this CPU runs (`TTBR0_EL1`) and the
    /// translation succeeds; `None` otherwise (not current, unmapped, or not permitted).
    /// A few instructions instead of a table walk in software. The caller holds the map's
    /// lock, which keeps the entries still; no entry is left in the TLB past its unmapping
    /// (see `unmap`), so the answer is the table's.
    pub fn translate_if_current(&self, va: u64, write: bool) -> Option<PhysAddr> {
        /// `TTBR0_EL1.BADDR`: the table's address (bits 47:1; bit 0 is CnP).
        const BADDR: u64 = 0x0000_ffff_ffff_fffe;
        /// `PAR_EL1.PA`, bits 47:12.
        const PA: u64 = 0x0000_ffff_ffff_f000;
        let ttbr0: u64;
        // SAFETY: reading TTBR0_EL1 has no side effect.
        unsafe { core::arch::asm!("mrs {}, ttbr0_el1", out(reg) ttbr0, options(nomem, nostack)) };
        if ttbr0 & BADDR != self.space.root.as_u64() {
            return None;
        }
        let par: u64;
        // SAFETY: address translation instructions only write PAR_EL1 (read back at once;
        // the map lock masks interrupts, so no handler runs in between). They never fault.
        unsafe {
            if write {
                core::arch::asm!("at s1e0w, {va}", "isb", "mrs {par}, par_el1",
                    va = in(reg) va, par = out(reg) par, options(nostack));
            } else {
                core::arch::asm!("at s1e0r, {va}", "isb", "mrs {par}, par_el1",
                    va = in(reg) va, par = out(reg) par, options(nostack));
            }
        }
        // PAR_EL1.F (bit 0) set: the translation faulted.
        (par & 1 == 0).then_some(PhysAddr(par & PA))
    }

    /// The frame of page `va`, and whether it was mapped just now: if no page is mapped
    /// there, the one `fill` gives (a frame it made ready) is mapped with `perm`, in the
    /// same walk. `KERN_RESOURCE_SHORTAGE` if `fill` or a table allocation fails (tables
    /// made on the way stay, empty, until an unmapping or the map's end frees them).
    pub fn find_or_map(
        &mut self,
        va: u64,
        perm: UserPerm,
        fill: impl FnOnce() -> Option<PhysAddr>,
    ) -> Result<(PhysAddr, bool), KernReturn> {
        let mut visitor = FindOrMap {
            bits: leaf_bits(perm),
            fill: Some(fill),
            found: None,
        };
        pagetable::walk(&mut self.tables(), va, PAGE_SIZE, &mut visitor)?;
        let found = visitor.found.ok_or(KernReturn::ResourceShortage)?;
        if found.1 {
            // An invalid entry is never cached, so a new one needs no TLB maintenance:
            // only its store must be visible to walks before the task touches the page.
            barrier();
        }
        Ok(found)
    }

    /// The frame and access of page `va`, if mapped.
    pub fn lookup(&mut self, va: u64) -> Option<(PhysAddr, UserPerm)> {
        let mut visitor = Lookup(None);
        let Ok(()) = pagetable::walk(&mut self.tables(), va, PAGE_SIZE, &mut visitor);
        visitor
            .0
            .map(|e| (PhysAddr(e & desc::ADDR_MASK), perm_of(e)))
    }

    /// Call `f` with the address and frame of each mapped page in `[start, end)`, in
    /// address order, until it answers `false`; the time taken follows the tables that
    /// exist, not the range's size.
    pub fn for_each_mapped(
        &mut self,
        start: u64,
        end: u64,
        f: &mut dyn FnMut(u64, PhysAddr) -> bool,
    ) {
        let len = end.saturating_sub(start);
        let mut visitor = EachMapped { f, done: false };
        let Ok(()) = pagetable::walk(&mut self.tables(), start, len, &mut visitor);
    }

    /// Unmap every page in `[start, end)` and free the tables left empty; each page's
    /// frame goes to `free`, only once no CPU can reach it through a TLB.
    pub fn unmap_range(&mut self, start: u64, end: u64, free: &mut dyn FnMut(PhysAddr)) {
        let space = self.space.clone();
        let mut visitor = Unmap {
            space: &space,
            batch: ArrayVec::new(),
            give_back: free,
            tables: true,
            cleared: 0,
            cleared_at: [0; LAST_LEVEL],
        };
        let len = end.saturating_sub(start);
        let Ok(()) = pagetable::walk(&mut self.tables(), start, len, &mut visitor);
        visitor.release();
    }

    /// Change the access of every mapped page in `[start, end)`: each is made invalid, the
    /// TLBs are invalidated, and then it is made valid with the new access (so code written
    /// while a page was writable is synchronised before it can run).
    pub fn protect_range(&mut self, start: u64, end: u64, perm: UserPerm) {
        let len = end.saturating_sub(start);
        let mut broken = Break(0);
        let Ok(()) = pagetable::walk(&mut self.tables(), start, len, &mut broken);
        if broken.0 == 0 {
            return;
        }
        invalidate_space(&self.space);
        let Ok(()) = pagetable::walk(&mut self.tables(), start, len, &mut Make(perm));
        barrier();
    }
}

impl Drop for UserPageTable {
    /// Free every table of this map (after the TLB invalidation), then the root. Leaf
    /// frames must have been unmapped and freed by the owner (`mm::vm`), which knows which
    /// frames are its own; any still mapped are left to it (and counted as a leak).
    fn drop(&mut self) {
        let mut left = 0u64;
        let mut count = |_| left += 1;
        self.unmap_range(0, pagetable::TREE_SPAN, &mut count);
        if left != 0 {
            log::error!("a user page table dropped with {left} pages still mapped");
        }
        // `unmap_range` invalidated what it unlinked; this also drops walk-cache entries
        // read from the root itself before the root goes.
        invalidate_space(&self.space);
        frame::free(self.space.root, 1);
    }
}

fn barrier() {
    // SAFETY: orders the descriptor write before later table walks.
    unsafe { core::arch::asm!("dsb ishst", "isb", options(nostack)) };
}

/// The ASID of `space` for a TLB invalidation, read once the cleared entries are visible to
/// every CPU. The full barrier also orders this read after those stores: a CPU that gives
/// the space a new ASID stores it, `dsb ish`, and only then walks the tables (`activate`),
/// so either this read sees the new ASID or that CPU's walks see the cleared entries.
fn asid_after_clearing(space: &AddressSpace) -> u64 {
    // SAFETY: a barrier only orders this CPU's memory accesses.
    unsafe { core::arch::asm!("dsb ish", options(nostack, preserves_flags)) };
    u64::from(space.asid.number()) << 48
}

/// Invalidate the translations of the pages at `vas` of `space` on every CPU (walk-cache
/// entries for those addresses included) and wait for it.
fn invalidate_pages(space: &AddressSpace, vas: impl Iterator<Item = u64>) {
    let asid = asid_after_clearing(space);
    for va in vas {
        let operand = asid | ((va >> 12) & ((1 << 44) - 1));
        // SAFETY: TLB invalidation by VA and ASID only drops cached translations.
        unsafe { core::arch::asm!("tlbi vae1is, {}", in(reg) operand, options(nostack)) };
    }
    // SAFETY: barriers only wait for the invalidations above.
    unsafe { core::arch::asm!("dsb ish", "isb", options(nostack)) };
}

/// Invalidate every translation of `space` on every CPU and wait for it.
fn invalidate_space(space: &AddressSpace) {
    let asid = asid_after_clearing(space);
    // SAFETY: TLB invalidation by ASID only drops cached translations.
    unsafe {
        core::arch::asm!("tlbi aside1is, {}", "dsb ish", "isb", in(reg) asid, options(nostack))
    };
}

/// An empty TTBR0 root for threads without user space (ASID 0 is never handed out).
#[repr(C, align(4096))]
struct EmptyRoot(Table);
static EMPTY_ROOT: EmptyRoot = EmptyRoot([0; 512]);

/// The ASIDs of every user address space.
static ASIDS: AsidAllocator<MAX_CPUS> = AsidAllocator::new();

/// The ASID width the CPU implements (ID_AA64MMFR0_EL1.ASIDBits; `boot.s` sets TCR_EL1.AS
/// to match).
pub fn hardware_asid_bits() -> u32 {
    if ID_AA64MMFR0_EL1.read(ID_AA64MMFR0_EL1::ASIDBits) == 0b0010 {
        16
    } else {
        8
    }
}

/// Use `bits`-wide ASIDs on `cpus` CPUs (at most the hardware's width, at least what the
/// CPU count needs); returns the width used. Before the first user task runs.
pub fn init_asids(bits: u32, cpus: usize) -> u32 {
    ASIDS.init(bits.min(hardware_asid_bits()), cpus)
}

/// Make `space` the user address space of this CPU (`None`: no user space). Interrupts
/// must be masked (the context switch).
pub fn activate(space: Option<&AddressSpace>) {
    let value = match space {
        Some(space) => {
            let cpu = percpu::current_cpu().index();
            let switched = ASIDS.switch_in(cpu, &space.asid, mmu::flush_tlb_all);
            if switched.slow {
                new_asid_barriers(switched);
            }
            u64::from(switched.asid) << 48 | space.root.as_u64()
        }
        None => {
            let va = &raw const EMPTY_ROOT as u64;
            let (load, _) = mmu::image_phys_range();
            va - crate::mm::layout::KIMAGE_VA + load.as_u64()
        }
    };
    // SAFETY: the value names a valid root (a live map's, or the empty one) and ASID.
    unsafe { core::arch::asm!("msr ttbr0_el1, {}", "isb", in(reg) value, options(nostack)) };
}

/// After the allocator's slow path: this CPU's TLB invalidation if a rollover asked for
/// one, and a full barrier between the new id's store and the table walks under it (see
/// `asid_after_clearing`).
#[inline(never)]
fn new_asid_barriers(switched: crate::mm::asid::Switched) {
    if switched.flush_local {
        mmu::flush_tlb_local();
    }
    // SAFETY: a barrier only orders this CPU's memory accesses.
    unsafe { core::arch::asm!("dsb ish", options(nostack, preserves_flags)) };
    if let Some(generation) = switched.rollover
        && generation.is_power_of_two()
    {
        // Logged at generations 2, 4, 8, ...: seen, without flooding the console.
        log::info!(
            "asid: rollover to generation {generation} ({}-bit ASIDs)",
            ASIDS.bits()
        );
    }
}
