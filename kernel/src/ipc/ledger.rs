//! What IPC objects cost and who pays (DESIGN.md 5): every heap block a task makes the IPC
//! code allocate is first charged, in granules (`mm::kmem::GRANULE`), to a [`Ledger`]; a
//! refused charge is `KERN_RESOURCE_SHORTAGE` and nothing is allocated. The kernel plugs in
//! `mm::kmem::Ledger` (one per task); host tests use a ledger that counts by [`Kind`] and
//! refuses at a limit, to check that everything is given back.
//!
//! A [`Charge`] lives inside the object it pays for (a port, an entry, a queued message),
//! so freeing the object gives the granules back. Who pays:
//! - ports and port sets: the task whose space created them, for their whole life;
//! - names (entries, reverse entries, the maps' roots): the space's task;
//! - messages: the sender, until the message is received or destroyed;
//! - each send-once right: its maker, one granule paid in advance for the one message the
//!   right will carry (a reply, or the send-once / dead-name / port-deleted / no-senders /
//!   port-destroyed notification it may become), so notifications never fail for lack of
//!   memory and are never dropped;
//! - dead-name requests: the requesting space's task.

extern crate alloc;

use alloc::sync::Arc;
use mach_abi::KernReturn;

/// What a charge pays for (counted separately by the host tests' ledger).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Kind {
    Port = 0,
    PortSet = 1,
    /// A name in a space, or its reverse entry, or a map root.
    Entry = 2,
    /// A message (its queue node, body chunks and right slots).
    Message = 3,
    /// The message a send-once right will carry, paid in advance.
    SendOnce = 4,
    /// A dead-name request registered on a port.
    Request = 5,
    /// A small request to a kernel object's port that its sender could not pay for: it is
    /// served and freed before the sender's trap returns, so a task's ledger may let a few
    /// pass its limit (`mm::kmem::KERNEL_REQUEST_OVERDRAFT`). It lets a task at its limit
    /// still ask the kernel to free what it holds.
    KernelRequest = 6,
}

impl Kind {
    pub const COUNT: usize = 7;
}

/// An account that IPC objects are charged to, in granules. Called with IPC locks held:
/// an implementation takes no lock (atomic counters, as `mm::kmem`'s).
pub trait Ledger: Send + Sync {
    /// Take `blocks` granules for `kind`, or refuse with `KERN_RESOURCE_SHORTAGE` having
    /// taken nothing.
    fn take(&self, kind: Kind, blocks: usize) -> Result<(), KernReturn>;
    /// Give back granules taken earlier.
    fn give(&self, kind: Kind, blocks: usize);
}

/// A task's kernel-memory ledger pays for its IPC objects.
impl Ledger for crate::mm::kmem::Ledger {
    fn take(&self, kind: Kind, blocks: usize) -> Result<(), KernReturn> {
        if kind == Kind::KernelRequest {
            return self.take_blocks_over(blocks, crate::mm::kmem::KERNEL_REQUEST_OVERDRAFT);
        }
        self.take_blocks(blocks)
    }
    fn give(&self, _: Kind, blocks: usize) {
        self.give_blocks(blocks)
    }
}

/// The account of the kernel's own objects (the host, processor and processor-set ports):
/// counted by nobody, never refused. Never for anything a task can make more of.
pub struct Unmetered;

impl Ledger for Unmetered {
    fn take(&self, _: Kind, _: usize) -> Result<(), KernReturn> {
        Ok(())
    }
    fn give(&self, _: Kind, _: usize) {}
}

/// Granules held for something that exists; given back when dropped.
pub struct Charge {
    ledger: Arc<dyn Ledger>,
    blocks: u32,
    kind: Kind,
}

impl Charge {
    /// Charge `blocks` granules of `kind` to `ledger`.
    pub fn new(ledger: &Arc<dyn Ledger>, kind: Kind, blocks: usize) -> Result<Charge, KernReturn> {
        let mut c = Charge {
            ledger: ledger.clone(),
            blocks: 0,
            kind,
        };
        c.grow(blocks)?;
        Ok(c)
    }

    pub fn blocks(&self) -> usize {
        self.blocks as usize
    }

    pub fn kind(&self) -> Kind {
        self.kind
    }

    pub fn ledger(&self) -> &Arc<dyn Ledger> {
        &self.ledger
    }

    /// Charge `blocks` more, or nothing and `KERN_RESOURCE_SHORTAGE`.
    pub fn grow(&mut self, blocks: usize) -> Result<(), KernReturn> {
        let total = u32::try_from(blocks)
            .ok()
            .and_then(|b| self.blocks.checked_add(b))
            .ok_or(KernReturn::ResourceShortage)?;
        self.ledger.take(self.kind, blocks)?;
        self.blocks = total;
        Ok(())
    }

    /// Give back all but `blocks` (nothing if it holds no more than that).
    pub fn shrink_to(&mut self, blocks: usize) {
        if let Ok(b) = u32::try_from(blocks)
            && b < self.blocks
        {
            self.ledger.give(self.kind, (self.blocks - b) as usize);
            self.blocks = b;
        }
    }
}

impl Drop for Charge {
    fn drop(&mut self) {
        if self.blocks != 0 {
            self.ledger.give(self.kind, self.blocks as usize);
        }
    }
}

impl core::fmt::Debug for Charge {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "Charge({:?}, {})", self.kind, self.blocks)
    }
}

/// Host tests: a ledger that counts granules by kind and refuses past a limit.
#[cfg(test)]
pub mod counting {
    use super::*;
    use core::sync::atomic::{AtomicUsize, Ordering};

    pub struct CountingLedger {
        limit: AtomicUsize,
        total: AtomicUsize,
        by_kind: [AtomicUsize; Kind::COUNT],
    }

    impl CountingLedger {
        pub fn new(limit: usize) -> Arc<CountingLedger> {
            Arc::new(CountingLedger {
                limit: AtomicUsize::new(limit),
                total: AtomicUsize::new(0),
                by_kind: [const { AtomicUsize::new(0) }; Kind::COUNT],
            })
        }

        pub fn unlimited() -> Arc<CountingLedger> {
            Self::new(usize::MAX)
        }

        pub fn total(&self) -> usize {
            self.total.load(Ordering::SeqCst)
        }

        pub fn of(&self, kind: Kind) -> usize {
            self.by_kind[kind as usize].load(Ordering::SeqCst)
        }

        pub fn set_limit(&self, limit: usize) {
            self.limit.store(limit, Ordering::SeqCst);
        }
    }

    impl Ledger for CountingLedger {
        fn take(&self, kind: Kind, blocks: usize) -> Result<(), KernReturn> {
            let limit = self.limit.load(Ordering::SeqCst);
            self.total
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |t| {
                    t.checked_add(blocks).filter(|&n| n <= limit)
                })
                .map_err(|_| KernReturn::ResourceShortage)?;
            self.by_kind[kind as usize].fetch_add(blocks, Ordering::SeqCst);
            Ok(())
        }

        fn give(&self, kind: Kind, blocks: usize) {
            let before = self.by_kind[kind as usize].fetch_sub(blocks, Ordering::SeqCst);
            assert!(before >= blocks, "{kind:?}: gave back more than taken");
            self.total.fetch_sub(blocks, Ordering::SeqCst);
        }
    }

    /// The ledger as the trait object IPC objects hold.
    pub fn dyn_ledger(l: &Arc<CountingLedger>) -> Arc<dyn Ledger> {
        l.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::counting::*;
    use super::*;

    #[test]
    fn charges_are_given_back_and_refused_at_the_limit() {
        let l = CountingLedger::new(3);
        let d = dyn_ledger(&l);
        let a = Charge::new(&d, Kind::Port, 2).unwrap();
        assert_eq!(
            Charge::new(&d, Kind::Entry, 2).err(),
            Some(KernReturn::ResourceShortage)
        );
        let mut b = Charge::new(&d, Kind::Entry, 1).unwrap();
        assert_eq!((l.total(), l.of(Kind::Port), l.of(Kind::Entry)), (3, 2, 1));
        assert_eq!(b.grow(1), Err(KernReturn::ResourceShortage));
        assert_eq!(b.grow(usize::MAX), Err(KernReturn::ResourceShortage));
        drop(a);
        b.grow(2).unwrap();
        assert_eq!(b.blocks(), 3);
        b.shrink_to(5);
        b.shrink_to(1);
        assert_eq!((b.blocks(), l.of(Kind::Entry)), (1, 1));
        drop(b);
        assert_eq!(l.total(), 0);
    }

    #[test]
    fn kmem_ledgers_pay_for_ipc() {
        use crate::mm::kmem::{self, Budget, GRANULE};
        let budget: &'static Budget =
            alloc::boxed::Box::leak(alloc::boxed::Box::new(Budget::new(10 * GRANULE)));
        let task = Arc::new(kmem::Ledger::new(budget, 4 * GRANULE));
        let d: Arc<dyn Ledger> = task.clone();
        let c = Charge::new(&d, Kind::Message, 3).unwrap();
        assert_eq!(task.charged(), 3 * GRANULE);
        assert!(Charge::new(&d, Kind::Message, 2).is_err());
        drop(c);
        assert_eq!((task.charged(), budget.charged()), (0, 0));
    }
}
