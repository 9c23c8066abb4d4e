//! A processor's run queue: 65 FIFO levels on GNU Mach's scale (0 most urgent, 64 idle)
//! with a bitmap of non-empty levels. Generic over the queued item so the host tests
//! need no threads. Locking is the caller's business.

extern crate alloc;

use alloc::collections::VecDeque;

/// Run-queue levels (GNU Mach NRQS).
pub const NRQS: usize = 65;
/// The idle level.
pub const IDLE_PRI: u8 = 64;
/// Base priority of kernel threads and of user threads (GNU Mach).
pub const BASEPRI_SYSTEM: u8 = 6;
pub const BASEPRI_USER: u8 = 25;

pub struct RunQueue<T> {
    levels: [VecDeque<T>; NRQS],
    /// Bit `p` set when level `p` is non-empty.
    bitmap: u128,
    count: usize,
}

impl<T> Default for RunQueue<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> RunQueue<T> {
    pub const fn new() -> Self {
        RunQueue {
            levels: [const { VecDeque::new() }; NRQS],
            bitmap: 0,
            count: 0,
        }
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
        (self.bitmap != 0).then(|| self.bitmap.trailing_zeros() as u8)
    }

    /// Queue `item` at the tail of level `pri` (clamped to the idle level).
    pub fn enqueue(&mut self, item: T, pri: u8) {
        let pri = pri.min(IDLE_PRI) as usize;
        self.levels[pri].push_back(item);
        self.bitmap |= 1 << pri;
        self.count += 1;
    }

    /// Take the head of the most urgent level.
    pub fn dequeue(&mut self) -> Option<T> {
        let pri = self.highest()? as usize;
        let item = self.levels[pri].pop_front();
        self.note_removed(pri);
        item
    }

    /// Take the head of the most urgent level if that level is `limit` or more urgent.
    pub fn dequeue_at_or_above(&mut self, limit: u8) -> Option<T> {
        let pri = self.highest()?;
        if pri > limit {
            return None;
        }
        let item = self.levels[pri as usize].pop_front();
        self.note_removed(pri as usize);
        item
    }

    /// Remove and return the first item (most urgent first) that `pick` accepts.
    pub fn remove_first(&mut self, mut pick: impl FnMut(&T) -> bool) -> Option<T> {
        for pri in 0..NRQS {
            if self.bitmap & (1 << pri) == 0 {
                continue;
            }
            if let Some(i) = self.levels[pri].iter().position(&mut pick) {
                let item = self.levels[pri].remove(i);
                self.note_removed(pri);
                return item;
            }
        }
        None
    }

    /// Items from least to most urgent (the order a balancer looks for one to move).
    pub fn iter_least_urgent(&self) -> impl Iterator<Item = &T> {
        self.levels
            .iter()
            .rev()
            .flat_map(|level| level.iter().rev())
    }

    fn note_removed(&mut self, pri: usize) {
        self.count -= 1;
        if self.levels[pri].is_empty() {
            self.bitmap &= !(1 << pri);
        }
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
}
