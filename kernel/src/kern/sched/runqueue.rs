//! A processor's run queue: 65 FIFO levels on GNU Mach's scale (0 most urgent, 64 idle)
//! with a bitmap of non-empty levels. Generic over the queued item so the host tests
//! need no threads. Locking is the caller's business.
//!
//! The levels are doubly linked lists through one table of nodes, reserved once
//! ([`RunQueue::reserve`], at boot, for every thread there can be), so queueing a thread
//! never allocates: a task creating threads cannot make the scheduler allocate.

extern crate alloc;

use alloc::collections::TryReserveError;
use alloc::vec::Vec;

/// Run-queue levels (GNU Mach NRQS).
pub const NRQS: usize = 65;
/// The idle level.
pub const IDLE_PRI: u8 = 64;
/// Base priority of kernel threads and of user threads (GNU Mach).
pub const BASEPRI_SYSTEM: u8 = 6;
pub const BASEPRI_USER: u8 = 25;

const NIL: u32 = u32::MAX;

struct Node<T> {
    item: Option<T>,
    prev: u32,
    next: u32,
}

/// What [`RunQueue::check`] found wrong.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Broken {
    /// A level's links do not run from its head to its tail, both ways.
    BadLink { level: u8 },
    /// A linked node holds no item.
    EmptyNode { level: u8 },
    /// The bitmap (or the idle flag) disagrees with the level.
    Bitmap {
        level: u8,
        items: usize,
        marked: bool,
    },
    /// The levels hold `linked` items, the count says `count`.
    Count { linked: usize, count: usize },
}

impl core::fmt::Display for Broken {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match *self {
            Broken::BadLink { level } => write!(f, "level {level} has broken links"),
            Broken::EmptyNode { level } => write!(f, "level {level} links a node with no thread"),
            Broken::Bitmap {
                level,
                items,
                marked,
            } => write!(
                f,
                "level {level} holds {items} threads but its bitmap bit is {}",
                if marked { "set" } else { "clear" }
            ),
            Broken::Count { linked, count } => {
                write!(f, "{linked} threads linked, its count says {count}")
            }
        }
    }
}

pub struct RunQueue<T> {
    /// Queued items and free nodes (the free ones linked through `next` from `free`).
    nodes: Vec<Node<T>>,
    free: u32,
    head: [u32; NRQS],
    tail: [u32; NRQS],
    /// Bit `p` set when level `p` (below the idle level) is non-empty: one word, so that
    /// marking and finding levels costs single instructions on the switch path.
    bitmap: u64,
    /// The idle level is non-empty.
    idle_level: bool,
    count: usize,
}

impl<T> Default for RunQueue<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> RunQueue<T> {
    /// Heap bytes one reserved item takes (for charging a reservation, `mm::kmem`).
    pub const NODE_BYTES: usize = core::mem::size_of::<Node<T>>();

    pub const fn new() -> Self {
        RunQueue {
            nodes: Vec::new(),
            free: NIL,
            head: [NIL; NRQS],
            tail: [NIL; NRQS],
            bitmap: 0,
            idle_level: false,
            count: 0,
        }
    }

    /// Make room for `items` queued at once; queueing up to that many never allocates.
    pub fn reserve(&mut self, items: usize) -> Result<(), TryReserveError> {
        self.nodes
            .try_reserve_exact(items.saturating_sub(self.nodes.len()))
    }

    /// Runnable items queued.
    pub fn len(&self) -> usize {
        self.count
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The most urgent queued priority.
    pub fn highest(&self) -> Option<u8> {
        if self.bitmap != 0 {
            Some(self.bitmap.trailing_zeros() as u8)
        } else if self.idle_level {
            Some(IDLE_PRI)
        } else {
            None
        }
    }

    /// Queue `item` at the tail of level `pri` (clamped to the idle level).
    #[inline]
    pub fn enqueue(&mut self, item: T, pri: u8) {
        let pri = pri.min(IDLE_PRI) as usize;
        let prev = self.tail[pri];
        // A free node if there is one (`NIL` is past the end of the table).
        let i = if let Some(node) = self.nodes.get_mut(self.free as usize) {
            let i = self.free;
            self.free = node.next;
            // A free node holds no item, so there is nothing to drop (and no drop code on
            // this path).
            core::mem::forget(node.item.replace(item));
            node.prev = prev;
            node.next = NIL;
            i
        } else {
            self.push_node(item, prev)
        };
        match prev {
            NIL => self.head[pri] = i,
            t => self.nodes[t as usize].next = i,
        }
        self.tail[pri] = i;
        if pri < IDLE_PRI as usize {
            self.bitmap |= 1 << pri;
        } else {
            self.idle_level = true;
        }
        self.count += 1;
    }

    /// A new node at the end of the table: beyond the reservation only (never in the
    /// kernel, which reserves for every thread).
    #[cold]
    #[inline(never)]
    fn push_node(&mut self, item: T, prev: u32) -> u32 {
        self.nodes.push(Node {
            item: Some(item),
            prev,
            next: NIL,
        });
        (self.nodes.len() - 1) as u32
    }

    /// Take the head of the most urgent level.
    pub fn dequeue(&mut self) -> Option<T> {
        let pri = self.highest()? as usize;
        Some(self.unlink(pri, self.head[pri]))
    }

    /// Take the head of the most urgent level if that level is `limit` or more urgent.
    pub fn dequeue_at_or_above(&mut self, limit: u8) -> Option<T> {
        let pri = self.highest()?;
        if pri > limit {
            return None;
        }
        Some(self.unlink(pri as usize, self.head[pri as usize]))
    }

    /// Remove and return the first item (most urgent first) that `pick` accepts.
    pub fn remove_first(&mut self, mut pick: impl FnMut(&T) -> bool) -> Option<T> {
        for pri in 0..NRQS {
            if self.head[pri] == NIL {
                continue;
            }
            let mut at = self.head[pri];
            while at != NIL {
                let node = &self.nodes[at as usize];
                if node.item.as_ref().is_some_and(&mut pick) {
                    return Some(self.unlink(pri, at));
                }
                at = node.next;
            }
        }
        None
    }

    /// Items from least to most urgent (the order a balancer looks for one to move).
    pub fn iter_least_urgent(&self) -> impl Iterator<Item = &T> {
        (0..NRQS).rev().flat_map(move |pri| {
            let mut at = self.tail[pri];
            core::iter::from_fn(move || {
                let node = self.nodes.get(at as usize)?;
                at = node.prev;
                node.item.as_ref()
            })
        })
    }

    /// Remove and return the item at position `n` of [`Self::iter_least_urgent`]'s order.
    pub fn remove_nth_least_urgent(&mut self, n: usize) -> Option<T> {
        let mut seen = 0;
        for pri in (0..NRQS).rev() {
            let mut at = self.tail[pri];
            while at != NIL {
                if seen == n {
                    return Some(self.unlink(pri, at));
                }
                seen += 1;
                at = self.nodes[at as usize].prev;
            }
        }
        None
    }

    /// Check the queue's own bookkeeping (`checks=`): every level's links run both ways
    /// from its head to its tail through nodes holding items, the levels together hold
    /// `len()` items, and the bitmap and idle flag say which levels are non-empty. Reads
    /// only; the first inconsistency found.
    pub fn check(&self) -> Result<(), Broken> {
        let mut total = 0;
        for pri in 0..NRQS {
            let mut at = self.head[pri];
            let mut prev = NIL;
            let mut on_level = 0;
            while at != NIL {
                let level = pri as u8;
                let Some(node) = self.nodes.get(at as usize) else {
                    return Err(Broken::BadLink { level });
                };
                if node.prev != prev {
                    return Err(Broken::BadLink { level });
                }
                if node.item.is_none() {
                    return Err(Broken::EmptyNode { level });
                }
                on_level += 1;
                // More nodes than the table holds: the links loop.
                if on_level > self.nodes.len() {
                    return Err(Broken::BadLink { level });
                }
                prev = at;
                at = node.next;
            }
            if self.tail[pri] != prev {
                return Err(Broken::BadLink { level: pri as u8 });
            }
            let marked = if pri < IDLE_PRI as usize {
                self.bitmap & (1 << pri) != 0
            } else {
                self.idle_level
            };
            if marked != (on_level != 0) {
                return Err(Broken::Bitmap {
                    level: pri as u8,
                    items: on_level,
                    marked,
                });
            }
            total += on_level;
        }
        if total != self.count {
            return Err(Broken::Count {
                linked: total,
                count: self.count,
            });
        }
        Ok(())
    }

    /// Unlink node `i` (queued at level `pri`) and return its item.
    #[inline]
    fn unlink(&mut self, pri: usize, i: u32) -> T {
        let node = &mut self.nodes[i as usize];
        let (prev, next) = (node.prev, node.next);
        let item = node.item.take().expect("queued nodes hold an item");
        node.next = self.free;
        self.free = i;
        match prev {
            NIL => self.head[pri] = next,
            p => self.nodes[p as usize].next = next,
        }
        match next {
            NIL => self.tail[pri] = prev,
            n => self.nodes[n as usize].prev = prev,
        }
        self.count -= 1;
        if self.head[pri] == NIL {
            if pri < IDLE_PRI as usize {
                self.bitmap &= !(1 << pri);
            } else {
                self.idle_level = false;
            }
        }
        item
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn most_urgent_first_fifo_within_a_level() {
        let mut q = RunQueue::new();
        q.enqueue("user-a", BASEPRI_USER);
        q.enqueue("sys", BASEPRI_SYSTEM);
        q.enqueue("user-b", BASEPRI_USER);
        q.enqueue("idle", IDLE_PRI);
        assert_eq!(q.len(), 4);
        assert_eq!(q.highest(), Some(BASEPRI_SYSTEM));
        assert_eq!(q.dequeue(), Some("sys"));
        assert_eq!(q.dequeue(), Some("user-a"));
        assert_eq!(q.dequeue(), Some("user-b"));
        assert_eq!(q.dequeue(), Some("idle"));
        assert_eq!(q.dequeue(), None);
        assert!(q.is_empty());
        assert_eq!(q.highest(), None);
    }

    #[test]
    fn the_nth_least_urgent_is_removed() {
        let mut q = RunQueue::new();
        q.enqueue("sys", BASEPRI_SYSTEM);
        q.enqueue("user-a", BASEPRI_USER);
        q.enqueue("user-b", BASEPRI_USER);
        let order: std::vec::Vec<_> = q.iter_least_urgent().copied().collect();
        assert_eq!(order, ["user-b", "user-a", "sys"]);
        assert_eq!(q.remove_nth_least_urgent(1), Some("user-a"));
        assert_eq!(q.remove_nth_least_urgent(5), None);
        assert_eq!(q.len(), 2);
        assert_eq!(q.dequeue(), Some("sys"));
        assert_eq!(q.dequeue(), Some("user-b"));
        assert_eq!(q.highest(), None);
    }

    #[test]
    fn priorities_beyond_idle_are_clamped() {
        let mut q = RunQueue::new();
        q.enqueue(1, 200);
        assert_eq!(q.highest(), Some(IDLE_PRI));
    }

    #[test]
    fn remove_first_keeps_the_bitmap_right() {
        let mut q = RunQueue::new();
        q.enqueue(1, 10);
        q.enqueue(2, 10);
        q.enqueue(3, 30);
        assert_eq!(q.remove_first(|&x| x == 2), Some(2));
        assert_eq!(q.remove_first(|&x| x == 1), Some(1));
        assert_eq!(q.highest(), Some(30));
        assert_eq!(q.remove_first(|&x| x == 9), None);
        assert_eq!(q.iter_least_urgent().copied().collect::<Vec<_>>(), vec![3]);
    }

    #[test]
    fn fifo_order_survives_removal_from_the_middle() {
        let mut q = RunQueue::new();
        for i in 0..6 {
            q.enqueue(i, 25);
        }
        assert_eq!(q.remove_first(|&x| x == 0), Some(0));
        assert_eq!(q.remove_first(|&x| x == 3), Some(3));
        assert_eq!(q.remove_first(|&x| x == 5), Some(5));
        q.enqueue(6, 25);
        assert_eq!(
            q.iter_least_urgent().copied().collect::<Vec<_>>(),
            vec![6, 4, 2, 1]
        );
        assert_eq!(
            core::iter::from_fn(|| q.dequeue()).collect::<Vec<_>>(),
            vec![1, 2, 4, 6]
        );
        assert!(q.is_empty());
    }

    /// Once reserved, queueing never allocates (the count of heap blocks is measured).
    #[test]
    fn a_reserved_queue_never_allocates() {
        use crate::testalloc::Tracker;
        let mut q = RunQueue::new();
        q.reserve(100).unwrap();
        let mut t = Tracker::new();
        let mut x: u64 = 7;
        let mut queued = 0;
        for round in 0..10_000u64 {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let pri = ((x >> 40) % 70) as u8;
            t.run(|| {
                if queued < 100 && !(x >> 20).is_multiple_of(3) {
                    q.enqueue(round, pri);
                    queued += 1;
                } else if (x >> 10).is_multiple_of(2) {
                    queued -= usize::from(q.dequeue().is_some());
                } else {
                    queued -= usize::from(q.remove_first(|&v| v.is_multiple_of(2)).is_some());
                }
            });
            assert_eq!(q.len(), queued);
        }
        assert_eq!(t.allocations(), 0);
    }

    #[test]
    fn check_passes_through_random_use() {
        let mut q = RunQueue::new();
        let mut x: u64 = 11;
        for round in 0..2_000u64 {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            match (x >> 33) % 4 {
                0 | 1 => q.enqueue(round, ((x >> 40) % 70) as u8),
                2 => {
                    let _ = q.dequeue();
                }
                _ => {
                    let _ = q.remove_first(|&v| v % 3 == round % 3);
                }
            }
            assert_eq!(q.check(), Ok(()), "after round {round}");
        }
    }

    #[test]
    fn check_finds_each_kind_of_damage() {
        let fresh = || {
            let mut q = RunQueue::new();
            q.enqueue(1, 10);
            q.enqueue(2, 10);
            q.enqueue(3, IDLE_PRI);
            q
        };
        let mut q = fresh();
        q.count += 1;
        assert_eq!(
            q.check(),
            Err(Broken::Count {
                linked: 3,
                count: 4
            })
        );
        let mut q = fresh();
        q.bitmap |= 1 << 20;
        assert_eq!(
            q.check(),
            Err(Broken::Bitmap {
                level: 20,
                items: 0,
                marked: true
            })
        );
        let mut q = fresh();
        q.idle_level = false;
        assert_eq!(
            q.check(),
            Err(Broken::Bitmap {
                level: IDLE_PRI,
                items: 1,
                marked: false
            })
        );
        let mut q = fresh();
        q.tail[10] = q.head[10];
        assert_eq!(q.check(), Err(Broken::BadLink { level: 10 }));
        let mut q = fresh();
        let second = q.nodes[q.head[10] as usize].next;
        q.nodes[second as usize].next = q.head[10];
        assert_eq!(q.check(), Err(Broken::BadLink { level: 10 }));
        let mut q = fresh();
        let head = q.head[10] as usize;
        q.nodes[head].item = None;
        assert_eq!(q.check(), Err(Broken::EmptyNode { level: 10 }));
        assert_eq!(
            Broken::Count {
                linked: 3,
                count: 4
            }
            .to_string(),
            "3 threads linked, its count says 4"
        );
    }

    #[test]
    fn dequeue_at_or_above_respects_the_limit() {
        let mut q = RunQueue::new();
        q.enqueue("user", BASEPRI_USER);
        assert_eq!(q.dequeue_at_or_above(BASEPRI_USER - 1), None);
        assert_eq!(q.len(), 1);
        assert_eq!(q.dequeue_at_or_above(BASEPRI_USER), Some("user"));
        assert_eq!(q.dequeue_at_or_above(IDLE_PRI), None);
    }

    /// What a run queue is meant to be: one FIFO per level, levels above idle clamped.
    #[derive(Default)]
    struct Model {
        levels: std::vec::Vec<std::collections::VecDeque<u32>>,
    }

    impl Model {
        fn new() -> Self {
            Model {
                levels: (0..NRQS).map(|_| Default::default()).collect(),
            }
        }
        fn highest(&self) -> Option<u8> {
            self.levels
                .iter()
                .position(|l| !l.is_empty())
                .map(|p| p as u8)
        }
        fn len(&self) -> usize {
            self.levels.iter().map(|l| l.len()).sum()
        }
        fn least_urgent(&self) -> std::vec::Vec<u32> {
            self.levels
                .iter()
                .rev()
                .flat_map(|l| l.iter().rev().copied())
                .collect()
        }
        fn remove_first(&mut self, pick: impl Fn(u32) -> bool) -> Option<u32> {
            for level in &mut self.levels {
                if let Some(at) = level.iter().position(|&v| pick(v)) {
                    return level.remove(at);
                }
            }
            None
        }
    }

    #[derive(Clone, Debug)]
    enum Op {
        Enqueue(u8),
        Dequeue,
        DequeueAtOrAbove(u8),
        /// Remove the first item whose value modulo 5 is this.
        RemoveFirst(u32),
        RemoveNthLeastUrgent(usize),
        Reserve(usize),
    }

    fn op() -> impl proptest::strategy::Strategy<Value = Op> {
        use proptest::prelude::*;
        prop_oneof![
            4 => prop_oneof![0u8..8, 20u8..30, 60u8..70, any::<u8>()].prop_map(Op::Enqueue),
            2 => Just(Op::Dequeue),
            1 => any::<u8>().prop_map(Op::DequeueAtOrAbove),
            1 => (0u32..5).prop_map(Op::RemoveFirst),
            1 => (0usize..40).prop_map(Op::RemoveNthLeastUrgent),
            1 => (0usize..64).prop_map(Op::Reserve),
        ]
    }

    proptest::proptest! {
        /// Any sequence of operations leaves the queue as the model: same count, same most
        /// urgent level, same items in the same order, and each removal takes the same item.
        #[test]
        fn behaves_as_its_model(ops in proptest::collection::vec(op(), 0..200)) {
            let mut q = RunQueue::new();
            let mut m = Model::new();
            for (next, op) in ops.into_iter().enumerate() {
                let next = next as u32;
                match op {
                    Op::Enqueue(pri) => {
                        q.enqueue(next, pri);
                        m.levels[pri.min(IDLE_PRI) as usize].push_back(next);
                    }
                    Op::Dequeue => {
                        let want = m.highest().and_then(|p| m.levels[p as usize].pop_front());
                        proptest::prop_assert_eq!(q.dequeue(), want);
                    }
                    Op::DequeueAtOrAbove(limit) => {
                        let want = m
                            .highest()
                            .filter(|&p| p <= limit)
                            .and_then(|p| m.levels[p as usize].pop_front());
                        proptest::prop_assert_eq!(q.dequeue_at_or_above(limit), want);
                    }
                    Op::RemoveFirst(r) => {
                        let want = m.remove_first(|v| v % 5 == r);
                        proptest::prop_assert_eq!(q.remove_first(|&v| v % 5 == r), want);
                    }
                    Op::RemoveNthLeastUrgent(n) => {
                        let want = m.least_urgent().get(n).copied();
                        if let Some(v) = want {
                            m.remove_first(|x| x == v);
                        }
                        proptest::prop_assert_eq!(q.remove_nth_least_urgent(n), want);
                    }
                    Op::Reserve(n) => {
                        proptest::prop_assert!(q.reserve(n).is_ok());
                    }
                }
                proptest::prop_assert_eq!(q.len(), m.len());
                proptest::prop_assert_eq!(q.is_empty(), m.len() == 0);
                proptest::prop_assert_eq!(q.highest(), m.highest());
                let order: std::vec::Vec<u32> = q.iter_least_urgent().copied().collect();
                proptest::prop_assert_eq!(order, m.least_urgent());
            }
        }
    }
}
