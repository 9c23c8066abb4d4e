//! The scheduler trace: each CPU writes the scheduler events it sees (switches, wake-ups,
//! migrations, balance passes, idle sleeps, IPC handoffs; `mach_abi::trace`) into a ring
//! of its own, which `armach_trace` (`server::trace_server`) reads out from any CPU while
//! the owner goes on writing. Off by default (`trace=1` on the command line, or
//! `trace_enable`, turns it on); off, each place that records costs one load and a branch.
//!
//! The ring ([`Ring`]) is plain Rust, tested on the host: one writer (the CPU that owns
//! it, interrupts masked), any number of readers, no lock. Each slot carries a sequence
//! word, the event's index + 1 once written and 0 while being written, so a reader that
//! copies a slot the writer is overwriting sees the sequence change and drops the copy
//! (a seqlock per slot). A full ring overwrites its oldest events; a reader learns how
//! many it missed. Not here: the hooks, which sit in the scheduler and IPC code they trace.

use core::sync::atomic::{AtomicU64, Ordering, fence};
use mach_abi::trace::Event;

/// One slot: the event's index + 1 when complete (0 while written, or never written), and
/// the event's three words. The first slot of a ring's memory is its header instead: the
/// count of events ever written (`seq`) and the reset floor (`words[0]`).
#[repr(C)]
#[derive(Default)]
pub struct Slot {
    seq: AtomicU64,
    words: [AtomicU64; 3],
}

impl Slot {
    pub const fn new() -> Slot {
        Slot {
            seq: AtomicU64::new(0),
            words: [const { AtomicU64::new(0) }; 3],
        }
    }
}

/// Bytes of a slot.
pub const SLOT_SIZE: usize = core::mem::size_of::<Slot>();

/// A ring over `slots` (the header, then the events' slots).
pub struct Ring<'a> {
    slots: &'a [Slot],
}

/// What a read found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Read {
    /// The index to read from next time (one past the last event handed over, or the
    /// count written when all were).
    pub next: u64,
    /// Events asked for (at or after `since` and the reset floor) that were gone:
    /// overwritten before or while they were read.
    pub lost: u64,
}

impl<'a> Ring<'a> {
    /// A ring over `slots`, which must hold the header and at least one event slot.
    pub fn new(slots: &'a [Slot]) -> Option<Ring<'a>> {
        (slots.len() >= 2).then_some(Ring { slots })
    }

    /// Events it holds at most.
    pub fn capacity(&self) -> u64 {
        self.slots.len() as u64 - 1
    }

    fn head(&self) -> &AtomicU64 {
        &self.slots[0].seq
    }

    fn floor(&self) -> &AtomicU64 {
        &self.slots[0].words[0]
    }

    fn slot(&self, index: u64) -> &Slot {
        &self.slots[1 + (index % self.capacity()) as usize]
    }

    /// Events ever written.
    pub fn written(&self) -> u64 {
        self.head().load(Ordering::Acquire)
    }

    /// Append `event`, overwriting the oldest when full. Only the ring's one writer may
    /// call this, never two at once (the kernel: its own CPU, interrupts masked).
    pub fn push(&self, event: &Event) {
        let index = self.head().load(Ordering::Relaxed);
        let slot = self.slot(index);
        // Mark the slot as being written before any of its words change.
        slot.seq.store(0, Ordering::Relaxed);
        fence(Ordering::Release);
        for (w, v) in slot.words.iter().zip(event.to_words()) {
            w.store(v, Ordering::Relaxed);
        }
        slot.seq.store(index + 1, Ordering::Release);
        self.head().store(index + 1, Ordering::Release);
    }

    /// Forget what was written so far: reads start from now on. Any CPU may call it.
    pub fn reset(&self) {
        let now = self.written();
        self.floor().fetch_max(now, Ordering::AcqRel);
    }

    /// Hand `out` the events from index `since` on (but none before the reset floor),
    /// oldest first, with each one's index, while `out` takes them (it returns false when
    /// it has no room for this one). Events overwritten meanwhile are skipped and counted.
    pub fn read(&self, since: u64, mut out: impl FnMut(u64, Event) -> bool) -> Read {
        let head = self.written();
        let from = since.max(self.floor().load(Ordering::Acquire)).min(head);
        let start = from.max(head.saturating_sub(self.capacity()));
        let mut lost = start - from;
        for index in start..head {
            let slot = self.slot(index);
            let before = slot.seq.load(Ordering::Acquire);
            let words = [
                slot.words[0].load(Ordering::Relaxed),
                slot.words[1].load(Ordering::Relaxed),
                slot.words[2].load(Ordering::Relaxed),
            ];
            fence(Ordering::Acquire);
            let after = slot.seq.load(Ordering::Relaxed);
            if before != index + 1 || after != index + 1 {
                // Overwritten by a newer event: gone.
                lost += 1;
                continue;
            }
            if !out(index, Event::from_words(words)) {
                return Read { next: index, lost };
            }
        }
        Read { next: head, lost }
    }
}

#[cfg(target_os = "none")]
pub use kernel::*;

/// The per-CPU rings in kernel memory and the switch that turns recording on.
#[cfg(target_os = "none")]
mod kernel {
    use super::{Ring, SLOT_SIZE, Slot};
    use crate::devtree::MAX_CPUS;
    use crate::ids::CpuId;
    use crate::kern::sched::Switch;
    use crate::kern::thread::{NO_PROCESSOR, Thread};
    use crate::mm::frame;
    use crate::mm::layout::PAGE_SIZE;
    use core::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use mach_abi::trace::{Event, Kind, Reason, SWITCH_BLOCK, SWITCH_EXIT, SWITCH_YIELD};

    /// Pages of one CPU's ring (a power of two: the frame allocator rounds up to one):
    /// 128 KiB, the header and 4095 events.
    const RING_PAGES: usize = 32;
    const RING_SLOTS: usize = RING_PAGES * PAGE_SIZE as usize / SLOT_SIZE;

    static ON: AtomicBool = AtomicBool::new(false);
    /// Each CPU's ring, by its address in the linear map (0: none).
    static RINGS: [AtomicUsize; MAX_CPUS] = [const { AtomicUsize::new(0) }; MAX_CPUS];

    /// Whether events are being recorded: the one load every traced place pays when off.
    #[inline(always)]
    pub fn on() -> bool {
        ON.load(Ordering::Relaxed)
    }

    /// Turn recording on or off (`trace=1`, `trace_enable`).
    pub fn set_enabled(on: bool) {
        ON.store(on, Ordering::Release);
    }

    /// Give `cpu` its ring (at its start, before it runs any thread). Without memory for
    /// it the CPU records nothing, and says so.
    pub fn init_cpu(cpu: CpuId) {
        let Some(slot) = RINGS.get(cpu.index()) else {
            return;
        };
        if slot.load(Ordering::Relaxed) != 0 {
            return;
        }
        match frame::alloc_zeroed(RING_PAGES) {
            Some(pa) => slot.store(pa.to_linear().as_u64() as usize, Ordering::Release),
            None => log::warn!("trace: no memory for the ring of cpu{}", cpu.index()),
        }
    }

    /// `cpu`'s ring, if it has one.
    pub fn ring(cpu: CpuId) -> Option<Ring<'static>> {
        let addr = RINGS.get(cpu.index())?.load(Ordering::Acquire);
        if addr == 0 {
            return None;
        }
        // SAFETY: `init_cpu` stored the linear-map address of RING_PAGES zeroed frames
        // that are never freed; all-zero bytes are valid `Slot`s (atomics), which are
        // only ever accessed atomically, so shared references from any CPU are sound.
        let slots = unsafe { core::slice::from_raw_parts(addr as *const Slot, RING_SLOTS) };
        Ring::new(slots)
    }

    /// Events a ring holds at most.
    pub fn capacity() -> u64 {
        RING_SLOTS as u64 - 1
    }

    /// Record an event on this CPU's ring, stamped now. Call only when [`on`].
    #[cold]
    #[inline(never)]
    pub fn record(kind: Kind, detail: u8, a: u32, b: u32, c: u32) {
        record_at(crate::arch::timer::counter(), kind, detail, a, b, c);
    }

    /// Record an event stamped `time` on this CPU's ring. Call only when [`on`].
    #[cold]
    #[inline(never)]
    pub fn record_at(time: u64, kind: Kind, detail: u8, a: u32, b: u32, c: u32) {
        // The ring has one writer: this CPU, with nothing (an interrupt) in between.
        let saved = crate::arch::cpu::irq_save();
        let cpu = crate::percpu::current_cpu();
        if let Some(ring) = ring(cpu) {
            ring.push(&Event {
                time,
                kind: kind as u8,
                detail,
                cpu: cpu.index() as u16,
                a,
                b,
                c,
            });
        }
        crate::arch::cpu::irq_restore(saved);
    }

    /// A thread's name in events: its id, cut to 32 bits.
    #[inline(always)]
    pub fn tid(thread: &Thread) -> u32 {
        thread.id.0 as u32
    }

    /// Note why `thread` is being moved to another processor (overriding any earlier
    /// reason: the last mover's counts). Call only when [`on`].
    #[inline]
    pub fn note_move(thread: &Thread, reason: Reason) {
        thread.migrate_reason.store(reason as u8, Ordering::Relaxed);
    }

    /// [`note_move`] unless a reason is already noted (a placement that may be the end of
    /// a move someone else began: `thread_migrate`, a set change).
    #[inline]
    pub fn note_move_if_unset(thread: &Thread, reason: Reason) {
        let _ = thread.migrate_reason.compare_exchange(
            0,
            reason as u8,
            Ordering::Relaxed,
            Ordering::Relaxed,
        );
    }

    /// At the switch on `cpu` from `prev` to `next` at `now`, before `next`'s last
    /// processor is updated (`scheduler::switch_to`): the switch, and the migration if
    /// `next` last ran elsewhere (exactly the migrations `migrate::note_switch` counts),
    /// with the reason its mover noted. Call only when [`on`].
    #[cold]
    #[inline(never)]
    pub fn switch(cpu: u32, how: Switch, prev: &Thread, next: &Thread, now: u64) {
        let how = match how {
            Switch::Yield => SWITCH_YIELD,
            Switch::Block => SWITCH_BLOCK,
            Switch::Exit => SWITCH_EXIT,
        };
        record_at(now, Kind::Switch, how, tid(prev), tid(next), 0);
        if next.is_idle {
            return;
        }
        let reason = next.migrate_reason.swap(0, Ordering::Relaxed);
        let last = next.last_processor.load(Ordering::Relaxed);
        if last != cpu && last != NO_PROCESSOR {
            record_at(now, Kind::Migrate, reason, tid(next), last, cpu);
        }
    }

    /// `thread`, which last ran on `last`, made runnable on `target` by this CPU
    /// (`scheduler::setrun`); `woke` when it was waiting. Call only when [`on`].
    #[cold]
    #[inline(never)]
    pub fn placed(thread: &Thread, target: CpuId, woke: bool) {
        let last = thread.last_processor.load(Ordering::Relaxed);
        if last != NO_PROCESSOR && last as usize != target.index() {
            note_move_if_unset(thread, Reason::WakePlacement);
        }
        record(
            Kind::Wake,
            u8::from(woke),
            tid(thread),
            target.index() as u32,
            0,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mach_abi::trace::Kind;
    use std::sync::Arc;
    use std::sync::atomic::AtomicBool;
    use std::vec::Vec;

    fn event(i: u64) -> Event {
        Event {
            time: i,
            kind: Kind::Switch as u8,
            detail: (i % 3) as u8,
            cpu: 1,
            a: i as u32,
            b: (i * 7) as u32,
            c: !(i as u32),
        }
    }

    fn slots(capacity: usize) -> Vec<Slot> {
        (0..capacity + 1).map(|_| Slot::default()).collect()
    }

    fn all(ring: &Ring<'_>, since: u64) -> (Vec<(u64, Event)>, Read) {
        let mut got = Vec::new();
        let r = ring.read(since, |i, e| {
            got.push((i, e));
            true
        });
        (got, r)
    }

    #[test]
    fn reads_what_was_written_in_order() {
        let mem = slots(8);
        let ring = Ring::new(&mem).unwrap();
        assert_eq!(ring.capacity(), 8);
        assert_eq!(all(&ring, 0), (Vec::new(), Read { next: 0, lost: 0 }));
        for i in 0..5 {
            ring.push(&event(i));
        }
        let (got, r) = all(&ring, 0);
        assert_eq!(got, (0..5).map(|i| (i, event(i))).collect::<Vec<_>>());
        assert_eq!(r, Read { next: 5, lost: 0 });
        // From where the last read ended: nothing new, then only what is new.
        assert_eq!(all(&ring, 5).0, Vec::new());
        ring.push(&event(5));
        assert_eq!(
            all(&ring, 5),
            (vec![(5, event(5))], Read { next: 6, lost: 0 })
        );
    }

    #[test]
    fn wraps_around_overwriting_the_oldest() {
        let mem = slots(4);
        let ring = Ring::new(&mem).unwrap();
        for i in 0..10 {
            ring.push(&event(i));
        }
        assert_eq!(ring.written(), 10);
        let (got, r) = all(&ring, 0);
        // The newest four survive; the six before them are reported lost.
        assert_eq!(got, (6..10).map(|i| (i, event(i))).collect::<Vec<_>>());
        assert_eq!(r, Read { next: 10, lost: 6 });
        // A reader that had read up to 7 lost nothing.
        assert_eq!(all(&ring, 7).1, Read { next: 10, lost: 0 });
        // A reader that stopped at 3 lost 3, 4 and 5.
        assert_eq!(all(&ring, 3).1.lost, 3);
        // Wrapping many times over keeps the same shape.
        for i in 10..1003 {
            ring.push(&event(i));
        }
        let (got, r) = all(&ring, 1000);
        assert_eq!(got, (1000..1003).map(|i| (i, event(i))).collect::<Vec<_>>());
        assert_eq!(r.lost, 0);
    }

    #[test]
    fn a_reader_with_no_room_resumes_where_it_stopped() {
        let mem = slots(16);
        let ring = Ring::new(&mem).unwrap();
        for i in 0..10 {
            ring.push(&event(i));
        }
        let mut got = Vec::new();
        let r = ring.read(0, |i, e| {
            if got.len() == 4 {
                return false;
            }
            got.push((i, e));
            true
        });
        assert_eq!(r, Read { next: 4, lost: 0 });
        assert_eq!(all(&ring, r.next).0.len(), 6);
    }

    #[test]
    fn reset_hides_what_came_before() {
        let mem = slots(8);
        let ring = Ring::new(&mem).unwrap();
        for i in 0..6 {
            ring.push(&event(i));
        }
        ring.reset();
        assert_eq!(all(&ring, 0), (Vec::new(), Read { next: 6, lost: 0 }));
        ring.push(&event(6));
        assert_eq!(all(&ring, 0).0, vec![(6, event(6))]);
    }

    #[test]
    fn too_small_a_ring_is_refused() {
        assert!(Ring::new(&slots(0)).is_none());
        assert!(Ring::new(&slots(1)).is_some());
    }

    /// A reader racing the writer gets only whole events, in order, each the one written
    /// at its index; what it misses is counted, and it misses nothing once the writer
    /// stops.
    #[test]
    fn reading_while_writing_gives_whole_events_only() {
        const TOTAL: u64 = 200_000;
        let mem: Arc<Vec<Slot>> = Arc::new(slots(64));
        let done = Arc::new(AtomicBool::new(false));
        let writer = {
            let (mem, done) = (mem.clone(), done.clone());
            std::thread::spawn(move || {
                let ring = Ring::new(&mem).unwrap();
                for i in 0..TOTAL {
                    ring.push(&event(i));
                }
                done.store(true, Ordering::Release);
            })
        };
        let ring = Ring::new(&mem).unwrap();
        let (mut since, mut seen, mut lost) = (0u64, 0u64, 0u64);
        loop {
            let finished = done.load(Ordering::Acquire);
            let mut last = None;
            let r = ring.read(since, |i, e| {
                assert_eq!(e, event(i), "a torn or misplaced event at {i}");
                assert!(last.is_none_or(|l| i > l), "out of order at {i}");
                assert!(i >= since);
                last = Some(i);
                seen += 1;
                true
            });
            lost += r.lost;
            since = r.next;
            if finished {
                break;
            }
        }
        writer.join().unwrap();
        assert_eq!(since, TOTAL);
        // Every event was either handed over or counted lost, exactly once.
        assert_eq!(seen + lost, TOTAL);
    }
}
