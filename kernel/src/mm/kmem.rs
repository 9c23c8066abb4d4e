//! Kernel memory as a quota (DESIGN.md 5): every kernel heap block a user task can cause is
//! charged to that task's [`Ledger`] before it is allocated, and to the kernel-wide
//! [`Budget`]; a charge that does not fit is `KERN_RESOURCE_SHORTAGE`, never an allocation
//! that fails.
//!
//! Why a charged allocation cannot fail. The kernel heap is a buddy allocator: it rounds a
//! request up to a power of two and merges free buddies eagerly, so a [`GRANULE`]-aligned
//! block of the heap that holds no live allocation is one free block of at least
//! `GRANULE` bytes. Every user-caused heap block is at most `GRANULE` bytes (checked where
//! each kind is charged), so each one "spoils" at most one such aligned block, and each is
//! charged a whole granule. While the granules charged plus those the kernel's own
//! allocations spoil stay below the heap's granule count, an aligned free granule exists
//! and every request of at most `GRANULE` bytes succeeds, however fragmented the heap is.
//! The budget is half the heap; the other half is the kernel's own reserve.
//!
//! Plain Rust, tested on the host.

extern crate alloc;

use alloc::sync::Arc;
use core::sync::atomic::{AtomicUsize, Ordering};
use mach_abi::KernReturn;

/// The unit of charge: the largest heap block a user task can cause, and what each such
/// block is charged.
pub const GRANULE: usize = 1024;

/// The block the buddy heap takes for a request of `size` bytes aligned to `align`
/// (`buddy_system_allocator::Heap::alloc`).
pub const fn block_size(size: usize, align: usize) -> usize {
    let pow = size.next_power_of_two();
    let min = if align > core::mem::size_of::<usize>() {
        align
    } else {
        core::mem::size_of::<usize>()
    };
    if pow > min { pow } else { min }
}

/// Whether a heap object of `size` bytes aligned to `align` fits one granule (what every
/// user-caused allocation must).
pub const fn fits_granule(size: usize, align: usize) -> bool {
    block_size(size, align) <= GRANULE
}

/// Heap bytes a `BTreeMap` may hold per entry: every node of a B-tree holds at least one
/// key, so a map of `n` entries has at most `n + 1` nodes (the `+ 1` an empty root). Each
/// node is charged a granule; `mm::regions` and the host tests below check that a node
/// fits one.
pub const BTREE_BLOCKS_PER_ENTRY: usize = 1;

/// Fewest keys a node of the standard `BTreeMap` other than its root holds (its `MIN_LEN`,
/// `B - 1` with `B = 6`): an insert that splits a full node of 11 leaves at least 5 on
/// each side, and a remove that leaves a node with fewer takes keys from a sibling or
/// merges with it, up to the root. Values live in every node, so a map of `n` entries has
/// at most `1 + (n - 1) / 5` nodes. Host tests measure real maps against [`btree_nodes`].
pub const BTREE_MIN_KEYS: usize = 5;

/// Nodes a `BTreeMap` of `n` entries may hold besides its root (an upper bound, from
/// [`BTREE_MIN_KEYS`]): what a map charged per node is charged beyond its root's granule.
pub const fn btree_nodes(n: usize) -> usize {
    n.div_ceil(BTREE_MIN_KEYS)
}

/// Granules a task's requests to kernel objects may take beyond its limit (and all
/// tasks' beyond the budget) when it cannot pay for them (`ipc::Kind::KernelRequest`):
/// each is one granule, served and freed before its trap returns, so no more are
/// outstanding than CPUs serve kernel requests at once (`server::kobject`'s pool).
pub const KERNEL_REQUEST_OVERDRAFT: usize = 8;

/// The kernel-wide limit on what all tasks together may have charged.
pub struct Budget {
    /// Bytes that may be charged.
    limit: AtomicUsize,
    /// Bytes charged now.
    charged: AtomicUsize,
}

impl Budget {
    pub const fn new(limit: usize) -> Self {
        Budget {
            limit: AtomicUsize::new(limit),
            charged: AtomicUsize::new(0),
        }
    }

    /// Set the limit (once, at boot, before any charge).
    pub fn set_limit(&self, bytes: usize) {
        self.limit.store(bytes, Ordering::Release);
    }

    pub fn limit(&self) -> usize {
        self.limit.load(Ordering::Acquire)
    }

    pub fn charged(&self) -> usize {
        self.charged.load(Ordering::Acquire)
    }

    fn take(&self, bytes: usize, over: usize) -> bool {
        take(&self.charged, self.limit().saturating_add(over), bytes)
    }

    fn give(&self, bytes: usize) {
        self.charged.fetch_sub(bytes, Ordering::AcqRel);
    }
}

/// Add `bytes` to `counter` unless that passes `limit` (nothing always fits, even past
/// the limit, where an overdraft may have taken the counter).
fn take(counter: &AtomicUsize, limit: usize, bytes: usize) -> bool {
    if bytes == 0 {
        return true;
    }
    counter
        .fetch_update(Ordering::AcqRel, Ordering::Acquire, |now| {
            now.checked_add(bytes).filter(|&sum| sum <= limit)
        })
        .is_ok()
}

/// One task's account: what it has charged, and its limit.
pub struct Ledger {
    budget: &'static Budget,
    limit: usize,
    charged: AtomicUsize,
}

impl Ledger {
    pub fn new(budget: &'static Budget, limit: usize) -> Self {
        Ledger {
            budget,
            limit,
            charged: AtomicUsize::new(0),
        }
    }

    /// Bytes charged now.
    pub fn charged(&self) -> usize {
        self.charged.load(Ordering::Acquire)
    }

    pub fn limit(&self) -> usize {
        self.limit
    }

    /// Charge `blocks` granules: to this ledger, then to the budget. Nothing is charged if
    /// either refuses.
    pub fn charge(self: &Arc<Self>, blocks: usize) -> Result<Charge, KernReturn> {
        let mut charge = Charge {
            ledger: self.clone(),
            bytes: 0,
        };
        charge.grow(blocks)?;
        Ok(charge)
    }

    /// Charge `blocks` granules with no [`Charge`] to hold them (for callers that keep
    /// their own record, as `ipc::ledger` does); give them back with [`give_blocks`].
    ///
    /// [`give_blocks`]: Ledger::give_blocks
    pub fn take_blocks(&self, blocks: usize) -> Result<(), KernReturn> {
        self.take_blocks_over(blocks, 0)
    }

    /// [`take_blocks`](Ledger::take_blocks), allowed to pass the task's limit (and the
    /// budget's) by up to `over` granules: for what is freed before the task's trap
    /// returns (`ipc::Kind::KernelRequest`), so that the excess is bounded by the CPUs
    /// that can be in such a trap at once.
    pub fn take_blocks_over(&self, blocks: usize, over: usize) -> Result<(), KernReturn> {
        let bytes = blocks
            .checked_mul(GRANULE)
            .ok_or(KernReturn::ResourceShortage)?;
        self.take(bytes, over.saturating_mul(GRANULE))
    }

    /// Give back granules charged by [`take_blocks`](Ledger::take_blocks).
    pub fn give_blocks(&self, blocks: usize) {
        self.give(blocks * GRANULE);
    }

    fn take(&self, bytes: usize, over: usize) -> Result<(), KernReturn> {
        if !take(&self.charged, self.limit.saturating_add(over), bytes) {
            return Err(KernReturn::ResourceShortage);
        }
        if !self.budget.take(bytes, over) {
            self.charged.fetch_sub(bytes, Ordering::AcqRel);
            return Err(KernReturn::ResourceShortage);
        }
        Ok(())
    }

    fn give(&self, bytes: usize) {
        self.charged.fetch_sub(bytes, Ordering::AcqRel);
        self.budget.give(bytes);
    }
}

/// Granules charged for something that exists; given back when dropped.
pub struct Charge {
    ledger: Arc<Ledger>,
    bytes: usize,
}

impl Charge {
    /// Granules held.
    pub fn blocks(&self) -> usize {
        self.bytes / GRANULE
    }

    /// Charge `blocks` more granules, or nothing and `KERN_RESOURCE_SHORTAGE`.
    pub fn grow(&mut self, blocks: usize) -> Result<(), KernReturn> {
        let bytes = blocks
            .checked_mul(GRANULE)
            .ok_or(KernReturn::ResourceShortage)?;
        self.ledger.take(bytes, 0)?;
        self.bytes += bytes;
        Ok(())
    }

    /// Hold exactly `blocks` granules: give back the excess, or charge what is missing.
    pub fn set(&mut self, blocks: usize) -> Result<(), KernReturn> {
        let held = self.blocks();
        if blocks >= held {
            return self.grow(blocks - held);
        }
        let excess = (held - blocks) * GRANULE;
        self.ledger.give(excess);
        self.bytes -= excess;
        Ok(())
    }

    pub fn ledger(&self) -> &Arc<Ledger> {
        &self.ledger
    }
}

impl Drop for Charge {
    fn drop(&mut self) {
        if self.bytes != 0 {
            self.ledger.give(self.bytes);
        }
    }
}

/// The kernel-wide budget, set at boot from the heap's size ([`init`]).
pub static BUDGET: Budget = Budget::new(0);
static TASK_LIMIT: AtomicUsize = AtomicUsize::new(0);

/// Set the budget and the per-task limit for a heap of `heap_bytes` (see [`limits`]);
/// returns them.
pub fn init(heap_bytes: usize, task_limit: Option<usize>) -> (usize, usize) {
    let (budget, task) = limits(heap_bytes, task_limit);
    BUDGET.set_limit(budget);
    TASK_LIMIT.store(task, Ordering::Release);
    (budget, task)
}

/// The ledger of a new user task, with the boot-time per-task limit.
pub fn task_ledger() -> Arc<Ledger> {
    Arc::new(Ledger::new(&BUDGET, TASK_LIMIT.load(Ordering::Acquire)))
}

/// Parse a size from the command line: a number (decimal or `0x` hex) with an optional
/// `K`, `M` or `G` suffix (binary units).
pub fn parse_size(s: &str) -> Option<usize> {
    let (digits, shift) = match s.as_bytes().last()? {
        b'K' | b'k' => (&s[..s.len() - 1], 10),
        b'M' | b'm' => (&s[..s.len() - 1], 20),
        b'G' | b'g' => (&s[..s.len() - 1], 30),
        _ => (s, 0),
    };
    let n = match digits.strip_prefix("0x") {
        Some(hex) => usize::from_str_radix(hex, 16).ok()?,
        None => digits.parse().ok()?,
    };
    n.checked_mul(1 << shift)
}

/// The budget and default per-task limit for a kernel heap of `heap_bytes`: half the heap
/// for all tasks together (the other half is the kernel's reserve), and for one task a
/// quarter of that budget, at most 4 MiB, unless `task_limit` (the `kmem-task-limit=`
/// boot argument) says otherwise (it is capped at the budget).
pub fn limits(heap_bytes: usize, task_limit: Option<usize>) -> (usize, usize) {
    let budget = (heap_bytes / 2) / GRANULE * GRANULE;
    let task = task_limit.unwrap_or((budget / 4).min(4 << 20)).min(budget) / GRANULE * GRANULE;
    (budget, task)
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::boxed::Box;

    fn budget(limit: usize) -> &'static Budget {
        Box::leak(Box::new(Budget::new(limit)))
    }

    #[test]
    fn charge_refuse_at_the_limit_and_release() {
        let b = budget(100 * GRANULE);
        let task = Arc::new(Ledger::new(b, 10 * GRANULE));
        let mut held = alloc::vec::Vec::new();
        for _ in 0..10 {
            held.push(task.charge(1).unwrap());
        }
        assert_eq!(task.charged(), 10 * GRANULE);
        assert_eq!(task.charge(1).err(), Some(KernReturn::ResourceShortage));
        assert_eq!(task.charged(), 10 * GRANULE, "a refusal charges nothing");
        held.pop();
        assert_eq!(task.charged(), 9 * GRANULE);
        assert!(task.charge(1).is_ok());
        drop(held);
        assert_eq!(task.charged(), 0);
        assert_eq!(b.charged(), 0);
    }

    #[test]
    fn kernel_requests_may_pass_the_limit_by_the_overdraft_only() {
        use crate::ipc::Kind;
        let b = budget(100 * GRANULE);
        let task = Arc::new(Ledger::new(b, 4 * GRANULE));
        let full = task.charge(4).unwrap();
        assert!(crate::ipc::Ledger::take(&*task, Kind::Message, 1).is_err());
        // Nothing always fits, even at (or past) the limit.
        assert!(task.charge(0).is_ok());
        for _ in 0..KERNEL_REQUEST_OVERDRAFT {
            crate::ipc::Ledger::take(&*task, Kind::KernelRequest, 1).unwrap();
        }
        assert_eq!(
            crate::ipc::Ledger::take(&*task, Kind::KernelRequest, 1).err(),
            Some(KernReturn::ResourceShortage),
            "no further than the overdraft"
        );
        assert!(task.charge(0).is_ok());
        for _ in 0..KERNEL_REQUEST_OVERDRAFT {
            crate::ipc::Ledger::give(&*task, Kind::KernelRequest, 1);
        }
        drop(full);
        assert_eq!((task.charged(), b.charged()), (0, 0));
    }

    #[test]
    fn the_global_budget_binds_every_task() {
        let b = budget(5 * GRANULE);
        let one = Arc::new(Ledger::new(b, 4 * GRANULE));
        let two = Arc::new(Ledger::new(b, 4 * GRANULE));
        let a = one.charge(3).unwrap();
        let _c = two.charge(2).unwrap();
        assert_eq!(b.charged(), 5 * GRANULE);
        assert_eq!(two.charge(1).err(), Some(KernReturn::ResourceShortage));
        assert_eq!(two.charged(), 2 * GRANULE, "the ledger is rolled back");
        drop(a);
        assert!(two.charge(2).is_ok());
    }

    #[test]
    fn grow_and_set_move_the_charge() {
        let b = budget(100 * GRANULE);
        let task = Arc::new(Ledger::new(b, 8 * GRANULE));
        let mut c = task.charge(1).unwrap();
        c.grow(3).unwrap();
        assert_eq!(c.blocks(), 4);
        assert_eq!(c.grow(5).err(), Some(KernReturn::ResourceShortage));
        assert_eq!(c.blocks(), 4);
        c.set(2).unwrap();
        assert_eq!((c.blocks(), task.charged()), (2, 2 * GRANULE));
        c.set(8).unwrap();
        assert_eq!(c.set(9).err(), Some(KernReturn::ResourceShortage));
        assert_eq!(c.grow(usize::MAX).err(), Some(KernReturn::ResourceShortage));
        drop(c);
        assert_eq!((task.charged(), b.charged()), (0, 0));
    }

    #[test]
    fn block_sizes_round_as_the_buddy_heap_does() {
        assert_eq!(block_size(1, 1), 8);
        assert_eq!(block_size(280, 8), 512);
        assert_eq!(block_size(512, 8), 512);
        assert_eq!(block_size(513, 8), 1024);
        assert_eq!(block_size(24, 64), 64);
        assert!(fits_granule(1024, 16));
        assert!(!fits_granule(1025, 16));
        assert!(!fits_granule(8, 2048));
    }

    #[test]
    fn sizes_and_limits() {
        assert_eq!(parse_size("4096"), Some(4096));
        assert_eq!(parse_size("64K"), Some(64 << 10));
        assert_eq!(parse_size("2M"), Some(2 << 20));
        assert_eq!(parse_size("0x100k"), Some(256 << 10));
        assert_eq!(parse_size("M"), None);
        assert_eq!(parse_size("x"), None);
        assert_eq!(parse_size("99999999999G"), None);
        assert_eq!(limits(32 << 20, None), (16 << 20, 4 << 20));
        assert_eq!(limits(4 << 20, None), (2 << 20, 512 << 10));
        assert_eq!(limits(32 << 20, Some(100 << 20)), (16 << 20, 16 << 20));
        assert_eq!(limits(32 << 20, Some(1500)), (16 << 20, 1024));
    }

    /// The heap blocks a `BTreeMap` holds never outnumber its entries plus one, and each
    /// fits a granule: the bound `BTREE_BLOCKS_PER_ENTRY` relies on, measured with the
    /// counting allocator of the host tests.
    #[test]
    fn btree_nodes_are_bounded_by_entries() {
        use crate::testalloc::Tracker;
        use alloc::collections::BTreeMap;
        #[derive(Clone, Copy)]
        #[allow(dead_code)]
        struct V(u64, u32, u32);
        let mut map: BTreeMap<u64, V> = BTreeMap::new();
        let mut t = Tracker::new();
        let mut x: u64 = 12345;
        for round in 0..20_000u64 {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let key = (x >> 33) % 5000;
            if round % 3 == 2 {
                t.run(|| map.remove(&key));
            } else {
                t.run(|| map.insert(key, V(key, 1, 2)));
            }
            assert!(t.live_blocks() <= map.len() * BTREE_BLOCKS_PER_ENTRY + 1);
            assert!(t.largest_block() <= GRANULE);
        }
        // The counter sees the nodes (a full map of this size has well over 100).
        assert!(
            map.len() > 1000 && t.live_blocks() > 100,
            "{}",
            t.live_blocks()
        );
        let keys: alloc::vec::Vec<u64> = map.keys().copied().collect();
        for k in keys {
            t.run(|| map.remove(&k));
            assert!(t.live_blocks() <= map.len() + 1);
        }
    }
}
