//! The VMSAv8-64 translation-table format (4 KiB granule, 48-bit addresses, four levels;
//! Arm ARM D8.2 and D8.3) and the one walker over it: the kernel's tables (`mmu`) and the
//! users' (`uspace`) both walk with [`walk`], each saying what happens at an entry with a
//! [`Visitor`]. Plain Rust over memory, with no barriers and no TLB maintenance: making a
//! new table visible before it is linked in is [`Tables::new_table`]'s job, invalidating
//! TLBs the caller's. The host tests run this file too.

use tock_registers::register_bitfields;

register_bitfields! {u64,
    /// A stage 1 descriptor: table (levels 0-2), block (levels 1-2) or page (level 3)
    /// (Arm ARM D8.3.1, D8.3.2). The attribute fields apply to blocks and pages.
    pub DESC [
        VALID OFFSET(0) NUMBITS(1) [],
        /// At levels 0-2 a table or a block, at level 3 a page (a block encoding there is
        /// invalid).
        TYPE OFFSET(1) NUMBITS(1) [
            Block = 0,
            TableOrPage = 1
        ],
        /// Index into MAIR_EL1 (`mmu::MemAttr`).
        ATTR_INDX OFFSET(2) NUMBITS(3) [],
        /// Access permissions AP[2:1] (Arm ARM D8.4.1).
        AP OFFSET(6) NUMBITS(2) [
            ReadWriteEl1 = 0b00,
            ReadWriteEl1El0 = 0b01,
            ReadOnlyEl1 = 0b10,
            ReadOnlyEl1El0 = 0b11
        ],
        /// Shareability.
        SH OFFSET(8) NUMBITS(2) [
            NonShareable = 0b00,
            OuterShareable = 0b10,
            InnerShareable = 0b11
        ],
        /// Access flag: clear, the first access faults.
        AF OFFSET(10) NUMBITS(1) [],
        /// Not global: the translation belongs to one ASID.
        NG OFFSET(11) NUMBITS(1) [],
        /// The next table's or the output's physical address, bits 47:12.
        OUTPUT_ADDR OFFSET(12) NUMBITS(36) [],
        /// Never executable at EL1.
        PXN OFFSET(53) NUMBITS(1) [],
        /// Never executable at EL0.
        UXN OFFSET(54) NUMBITS(1) [],
        /// Software use (ignored by the walk): an entry made invalid by a break-before-make
        /// change that is to become valid again with its address kept (`uspace`).
        SW_REMAP OFFSET(55) NUMBITS(1) []
    ]
}

/// The descriptor fields as plain numbers, for building descriptors in `const`s and from
/// the boot assembly.
pub mod desc {
    use super::DESC;

    pub const VALID: u64 = DESC::VALID::SET.value;
    /// The two low bits, which tell tables (and pages) from blocks.
    pub const KIND_MASK: u64 = DESC::VALID::SET.value | DESC::TYPE::TableOrPage.value;
    /// A table descriptor (levels 0-2).
    pub const TABLE: u64 = DESC::VALID::SET.value | DESC::TYPE::TableOrPage.value;
    /// A page descriptor (level 3): the same encoding as a table one level up.
    pub const PAGE: u64 = TABLE;
    /// A block descriptor (levels 1-2).
    pub const BLOCK: u64 = DESC::VALID::SET.value | DESC::TYPE::Block.value;
    pub const ADDR_MASK: u64 = DESC::OUTPUT_ADDR.mask << DESC::OUTPUT_ADDR.shift;
    pub const AF: u64 = DESC::AF::SET.value;
    pub const NG: u64 = DESC::NG::SET.value;
    pub const PXN: u64 = DESC::PXN::SET.value;
    pub const UXN: u64 = DESC::UXN::SET.value;
    pub const SH_INNER: u64 = DESC::SH::InnerShareable.value;
    pub const AP_MASK: u64 = DESC::AP.mask << DESC::AP.shift;
    /// EL1 read-write, EL0 no access.
    pub const AP_RW_EL1: u64 = DESC::AP::ReadWriteEl1.value;
    /// EL1 read-only, EL0 no access.
    pub const AP_RO_EL1: u64 = DESC::AP::ReadOnlyEl1.value;
    /// EL1 and EL0 read-write.
    pub const AP_RW_EL0: u64 = DESC::AP::ReadWriteEl1El0.value;
    /// EL1 and EL0 read-only.
    pub const AP_RO_EL0: u64 = DESC::AP::ReadOnlyEl1El0.value;
    pub const SW_REMAP: u64 = DESC::SW_REMAP::SET.value;

    /// The attribute-index field for MAIR_EL1 slot `index`.
    pub const fn attr_index(index: u64) -> u64 {
        DESC::ATTR_INDX.val(index).value
    }

    /// Whether `entry` is valid and points to a table (at levels 0-2) or a page (level 3).
    pub const fn is_table_or_page(entry: u64) -> bool {
        entry & KIND_MASK == TABLE
    }
}

/// Entries in a table.
pub const ENTRIES: usize = 512;
/// One translation table (one 4 KiB frame).
pub type Table = [u64; ENTRIES];
/// The last level, where entries are pages.
pub const LAST_LEVEL: usize = 3;
/// log2 of the bytes one entry spans, per level.
pub const LEVEL_SHIFT: [u32; LAST_LEVEL + 1] = [39, 30, 21, 12];
/// Bytes one tree translates (48-bit addresses; the TTBR1 tree's start at
/// 0xFFFF_0000_0000_0000).
pub const TREE_SPAN: u64 = 1 << 48;

/// Bytes one entry at `level` spans.
pub const fn span(level: usize) -> u64 {
    1 << LEVEL_SHIFT[level]
}

/// A tree of tables a walk may read, write and grow.
///
/// # Safety
///
/// `root` and every table reached from it through valid table descriptors must be live
/// translation tables that `table` gives a pointer to, valid for reads and writes, that
/// no other code reads or writes (bar the hardware's table walks) while the implementor is
/// borrowed mutably; `new_table` must return frames with the same property, zeroed.
pub unsafe trait Tables {
    /// The physical address of the top-level table.
    fn root(&self) -> u64;
    /// Where the table at physical `pa` is read and written.
    fn table(&self, pa: u64) -> *mut Table;
    /// A new zeroed table, its zeroes visible to table walks before any later store (so
    /// that it may be linked in at once), or `None` when out of memory.
    fn new_table(&mut self) -> Option<u64>;
}

/// What a walk does with an entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// Nothing, and nothing below it.
    Skip,
    /// Go down into the table the entry points to, making one first if the entry is
    /// invalid. A page or a block is handed to [`Visitor::leaf`] instead.
    Descend,
    /// Hand the entry to [`Visitor::leaf`] (a page, a block, or an invalid entry where the
    /// visitor will put one).
    Leaf,
}

/// One descriptor in a table, read and written with single volatile accesses (the
/// hardware walks tables concurrently).
pub struct Slot<'a>(&'a mut u64);

impl Slot<'_> {
    pub fn get(&self) -> u64 {
        // SAFETY: a reference to an aligned `u64` is valid for a volatile read.
        unsafe { core::ptr::read_volatile(&raw const *self.0) }
    }
    pub fn set(&mut self, value: u64) {
        // SAFETY: as above, for a write.
        unsafe { core::ptr::write_volatile(&raw mut *self.0, value) }
    }
}

/// What happens at each entry of a walk.
pub trait Visitor {
    type Error;
    /// What to do with `entry` (its value), the entry at `level` that translates
    /// `[va, va + span(level))`; `inside` says whether that span lies wholly inside the
    /// walked range (a walk visits every entry that overlaps it).
    fn step(&mut self, level: usize, va: u64, inside: bool, entry: u64) -> Step;
    /// Act on an entry `step` handed over.
    fn leaf(&mut self, level: usize, va: u64, entry: &mut Slot<'_>) -> Result<(), Self::Error>;
    /// After the walk has been through `table`, the table `entry` (at `level`, spanning
    /// from `va`) points to: for instance to unlink it when it is left empty.
    fn left_table(&mut self, _level: usize, _va: u64, _entry: &mut Slot<'_>, _table: &Table) {}
    /// The error for a table that could not be made.
    fn no_table(&mut self) -> Self::Error;
}

/// Walk the entries of `tables` that translate `[start, start + len)` (cut at the end of
/// the tree `start` lies in), in address order, doing what `visitor` says at each.
pub fn walk<T: Tables, V: Visitor>(
    tables: &mut T,
    start: u64,
    len: u64,
    visitor: &mut V,
) -> Result<(), V::Error> {
    let base = start & !(TREE_SPAN - 1);
    let from = start - base;
    let to = from.saturating_add(len).min(TREE_SPAN);
    if from >= to {
        return Ok(());
    }
    let root = tables.root();
    walk_table::<Level0, T, V>(tables, root, base, 0, from, to, visitor)
}

/// A level of the tree as a type, so that each level's walk is its own function with its
/// shift known at compile time and the recursion unrolls into straight calls the compiler
/// can inline (a single-page walk then costs about what hand-written descent code does).
trait Level {
    const N: usize;
    /// The level below (the last level names itself; it never descends).
    type Next: Level;
}
struct Level0;
struct Level1;
struct Level2;
struct Level3;
impl Level for Level0 {
    const N: usize = 0;
    type Next = Level1;
}
impl Level for Level1 {
    const N: usize = 1;
    type Next = Level2;
}
impl Level for Level2 {
    const N: usize = 2;
    type Next = Level3;
}
impl Level for Level3 {
    const N: usize = LAST_LEVEL;
    type Next = Level3;
}

/// Offsets (`from`, `to`, `first`) are from `base`, the tree's first address; `first` is
/// where the table at `pa` (at level `L`) starts.
#[inline]
fn walk_table<L: Level, T: Tables, V: Visitor>(
    tables: &mut T,
    pa: u64,
    base: u64,
    first: u64,
    from: u64,
    to: u64,
    visitor: &mut V,
) -> Result<(), V::Error> {
    let level = L::N;
    let shift = LEVEL_SHIFT[level];
    let span = span(level);
    let table = tables.table(pa);
    let mut index = (from.max(first) - first) >> shift;
    while index < ENTRIES as u64 {
        let at = first + index * span;
        if at >= to {
            break;
        }
        let inside = at >= from && at + span <= to;
        // SAFETY: `table` is a live table of the tree (the `Tables` contract) and the walk
        // has exclusive use of it through `tables`; no other reference to this entry lives.
        let mut slot = Slot(unsafe { &mut (*table)[index as usize] });
        let entry = slot.get();
        let va = base + at;
        match visitor.step(level, va, inside, entry) {
            Step::Skip => {}
            Step::Leaf => visitor.leaf(level, va, &mut slot)?,
            Step::Descend
                if level == LAST_LEVEL
                    || (entry & desc::VALID != 0 && !desc::is_table_or_page(entry)) =>
            {
                visitor.leaf(level, va, &mut slot)?
            }
            Step::Descend => {
                let child = if entry & desc::VALID == 0 {
                    let new = tables.new_table().ok_or_else(|| visitor.no_table())?;
                    slot.set(new | desc::TABLE);
                    new
                } else {
                    entry & desc::ADDR_MASK
                };
                walk_table::<L::Next, T, V>(tables, child, base, at, from, to, visitor)?;
                // SAFETY: as above, for the child table, which the recursion no longer uses.
                let child_table = unsafe { &*tables.table(child) };
                visitor.left_table(level, va, &mut slot, child_table);
            }
        }
        index += 1;
    }
    Ok(())
}

/// Whether a table holds no entry at all (invalid entries kept for a remap count).
pub fn is_empty(table: &Table) -> bool {
    table.iter().all(|&e| e == 0)
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use std::boxed::Box;
    use std::vec::Vec;

    /// Tables on the host heap; a table's "physical address" is its index times the page
    /// size, plus one page (0 stays unused).
    struct HostTables {
        tables: Vec<Box<Table>>,
        free: Vec<u64>,
        limit: usize,
    }

    impl HostTables {
        fn new() -> Self {
            HostTables {
                tables: std::vec![Box::new([0; ENTRIES])],
                free: Vec::new(),
                limit: usize::MAX,
            }
        }
        fn live(&self) -> usize {
            self.tables.len() - self.free.len()
        }
        fn release(&mut self, pa: u64) {
            let i = (pa / 4096 - 1) as usize;
            assert!(
                is_empty(&self.tables[i]),
                "table {pa:#x} freed while in use"
            );
            self.free.push(pa);
        }
    }

    // SAFETY: every table is a boxed array owned by `self.tables`, which lives as long as
    // the walk's borrow; the tests are single-threaded.
    unsafe impl Tables for HostTables {
        fn root(&self) -> u64 {
            4096
        }
        fn table(&self, pa: u64) -> *mut Table {
            let i = (pa / 4096 - 1) as usize;
            &*self.tables[i] as *const Table as *mut Table
        }
        fn new_table(&mut self) -> Option<u64> {
            if self.live() >= self.limit {
                return None;
            }
            if let Some(pa) = self.free.pop() {
                return Some(pa);
            }
            self.tables.push(Box::new([0; ENTRIES]));
            Some(self.tables.len() as u64 * 4096)
        }
    }

    /// Maps pages to `pa_of(va)` (creating tables), at level 3 only.
    struct MapPages;
    impl Visitor for MapPages {
        type Error = ();
        fn step(&mut self, level: usize, _: u64, _: bool, _: u64) -> Step {
            if level == LAST_LEVEL {
                Step::Leaf
            } else {
                Step::Descend
            }
        }
        fn leaf(&mut self, _: usize, va: u64, entry: &mut Slot<'_>) -> Result<(), ()> {
            entry.set((va & 0xffff_ffff_f000) | desc::PAGE);
            Ok(())
        }
        fn no_table(&mut self) {}
    }

    /// Clears pages and unlinks tables left empty, collecting both.
    #[derive(Default)]
    struct Unmap {
        pages: Vec<u64>,
        tables: Vec<u64>,
    }
    impl Visitor for Unmap {
        type Error = ();
        fn step(&mut self, level: usize, _: u64, _: bool, entry: u64) -> Step {
            match (entry & desc::VALID != 0, level == LAST_LEVEL) {
                (false, _) => Step::Skip,
                (true, false) => Step::Descend,
                (true, true) => Step::Leaf,
            }
        }
        fn leaf(&mut self, _: usize, va: u64, entry: &mut Slot<'_>) -> Result<(), ()> {
            self.pages.push(va);
            entry.set(0);
            Ok(())
        }
        fn left_table(&mut self, _: usize, _: u64, entry: &mut Slot<'_>, table: &Table) {
            if is_empty(table) {
                self.tables.push(entry.get() & desc::ADDR_MASK);
                entry.set(0);
            }
        }
        fn no_table(&mut self) {}
    }

    /// Every page address the tree maps.
    fn mapped(t: &mut HostTables) -> Vec<u64> {
        let mut v = Unmap::default();
        struct Collect<'a>(&'a mut Vec<u64>);
        impl Visitor for Collect<'_> {
            type Error = ();
            fn step(&mut self, level: usize, _: u64, _: bool, entry: u64) -> Step {
                match (entry & desc::VALID != 0, level == LAST_LEVEL) {
                    (false, _) => Step::Skip,
                    (true, false) => Step::Descend,
                    (true, true) => Step::Leaf,
                }
            }
            fn leaf(&mut self, _: usize, va: u64, _: &mut Slot<'_>) -> Result<(), ()> {
                self.0.push(va);
                Ok(())
            }
            fn no_table(&mut self) {}
        }
        walk(t, 0, TREE_SPAN, &mut Collect(&mut v.pages)).unwrap();
        v.pages
    }

    #[test]
    fn descriptor_fields_have_the_architected_positions() {
        assert_eq!(desc::ADDR_MASK, 0x0000_ffff_ffff_f000);
        assert_eq!(desc::TABLE, 0b11);
        assert_eq!(desc::BLOCK, 0b01);
        assert_eq!(desc::AF, 1 << 10);
        assert_eq!(desc::NG, 1 << 11);
        assert_eq!(desc::SH_INNER, 0b11 << 8);
        assert_eq!(desc::AP_RW_EL0, 0b01 << 6);
        assert_eq!(desc::AP_RO_EL0, 0b11 << 6);
        assert_eq!(desc::AP_RO_EL1, 0b10 << 6);
        assert_eq!(desc::PXN, 1 << 53);
        assert_eq!(desc::UXN, 1 << 54);
        assert_eq!(desc::attr_index(2), 2 << 2);
    }

    #[test]
    fn maps_visit_and_unmap_a_range_across_tables() {
        let mut t = HostTables::new();
        // 3 pages before a 2 MiB boundary and 2 after, in the second 512 GiB.
        let start = (1 << 39) + 0x20_0000 - 3 * 4096;
        walk(&mut t, start, 5 * 4096, &mut MapPages).unwrap();
        // Root, one L1, one L2, two L3.
        assert_eq!(t.live(), 5);
        let pages = mapped(&mut t);
        assert_eq!(pages, (0..5).map(|i| start + i * 4096).collect::<Vec<_>>());

        // A partial unmap leaves the tables that still hold pages.
        let mut u = Unmap::default();
        walk(&mut t, start, 2 * 4096, &mut u).unwrap();
        assert_eq!(u.pages, [start, start + 4096]);
        assert!(u.tables.is_empty());
        // The rest: every table but the root is left empty, deepest first.
        let mut u = Unmap::default();
        walk(&mut t, 0, TREE_SPAN, &mut u).unwrap();
        assert_eq!(u.pages.len(), 3);
        assert_eq!(u.tables.len(), 4);
        for pa in u.tables {
            t.release(pa);
        }
        assert_eq!(t.live(), 1);
        assert!(mapped(&mut t).is_empty());
    }

    #[test]
    fn high_half_addresses_and_the_end_of_the_tree() {
        let mut t = HostTables::new();
        let top = 0xffff_ffff_ffff_f000;
        walk(&mut t, top - 4096, u64::MAX, &mut MapPages).unwrap();
        let pages = mapped(&mut t);
        // `mapped` walks the low tree; the entries are the same, offsets from the base.
        assert_eq!(pages, [TREE_SPAN - 2 * 4096, TREE_SPAN - 4096]);
    }

    #[test]
    fn out_of_tables_is_an_error_and_keeps_what_was_made() {
        let mut t = HostTables::new();
        t.limit = 3;
        assert_eq!(walk(&mut t, 0x40_0000, 4096, &mut MapPages), Err(()));
        assert_eq!(t.live(), 3);
        t.limit = usize::MAX;
        walk(&mut t, 0x40_0000, 4096, &mut MapPages).unwrap();
        assert_eq!(mapped(&mut t), [0x40_0000]);
    }

    #[test]
    fn an_empty_range_visits_nothing() {
        let mut t = HostTables::new();
        walk(&mut t, 0x1000, 0, &mut MapPages).unwrap();
        assert_eq!(t.live(), 1);
    }
}
