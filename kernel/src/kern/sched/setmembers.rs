//! Which processor is in which processor set: the bookkeeping `pset` does under its table's
//! lock, as plain functions over [`Members`] so that host tests can drive them against a
//! model. A processor names one set; each slot of the table counts the processors naming its
//! set; a slot is live while it holds its set's id. Every transition here keeps the three in
//! agreement within one call, so that whoever takes the table's lock next (the self-checks
//! included) finds a processor in exactly one live set. Placing threads after a move is not
//! bookkeeping and stays in `pset`.

use crate::ids::{CpuId, ProcessorSetId};
use core::sync::atomic::{AtomicU64, Ordering};

/// A count of what is assigned to the set in one slot of the table (its tasks, or its
/// threads), kept without a lock and tagged with the set's id in the same word:
/// `id << 32 | count`. Each change names the set it means and applies only while the slot
/// still holds that set; a destroyed set's count goes to the default set in one swap
/// ([`Self::reset`]), and a change that comes later for the dead set (a thread that read its
/// set just before the destroy, and goes away just after) is made on the default set's
/// count instead, as the thing counted is now the default set's. Without the tag, such a
/// late change hit the emptied (or reused) slot and left the default set's count too high
/// for ever.
pub struct TaggedCount(AtomicU64);

impl TaggedCount {
    /// The count of set `id`, 0.
    pub const fn new(id: u32) -> Self {
        TaggedCount(AtomicU64::new((id as u64) << 32))
    }

    /// The set this count now belongs to, and the count.
    pub fn get(&self) -> (ProcessorSetId, u32) {
        let w = self.0.load(Ordering::Acquire);
        (ProcessorSetId((w >> 32) as u32), w as u32)
    }

    /// Apply `f` to the count if it is `set`'s (saturating at both ends): whether it was.
    pub fn change(&self, set: ProcessorSetId, f: impl Fn(u32) -> u32) -> bool {
        self.0
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |w| {
                ((w >> 32) as u32 == set.0).then(|| (w & !0xffff_ffff) | u64::from(f(w as u32)))
            })
            .is_ok()
    }

    /// The slot now counts for set `id`, from 0: the previous count.
    pub fn reset(&self, id: u32) -> u32 {
        self.0.swap((id as u64) << 32, Ordering::AcqRel) as u32
    }
}

/// Add `n` to `set`'s count in `counts` (indexed by slot), or to the default set's (slot 0,
/// which always holds it) if `set` is no longer in its slot.
pub fn count_add(counts: &[TaggedCount], set: ProcessorSetId, n: u32) {
    let f = |c: u32| c.saturating_add(n);
    if !counts.get(set.slot()).is_some_and(|c| c.change(set, f)) {
        counts[0].change(ProcessorSetId::DEFAULT, f);
    }
}

/// Take one from `set`'s count, as [`count_add`] adds.
pub fn count_sub(counts: &[TaggedCount], set: ProcessorSetId) {
    let f = |c: u32| c.saturating_sub(1);
    if !counts.get(set.slot()).is_some_and(|c| c.change(set, f)) {
        counts[0].change(ProcessorSetId::DEFAULT, f);
    }
}

/// `set` is destroyed: its slot counts for nothing (`free`) and its count is the default
/// set's.
pub fn move_count_to_default(counts: &[TaggedCount], set: ProcessorSetId, free: u32) {
    let n = counts[set.slot()].reset(free);
    count_add(counts, ProcessorSetId::DEFAULT, n);
}

/// What the bookkeeping reads and writes: `pset`'s table, `LIVE` ids and the processors'
/// `pset` fields in the kernel, plain arrays in the tests. The kernel calls every method
/// with the table's lock held.
pub trait Members {
    /// The processors there are (online or not).
    fn cpus(&self) -> usize;
    /// Whether processor `cpu` is online (only online processors are counted).
    fn online(&self, cpu: CpuId) -> bool;
    fn set_online(&mut self, cpu: CpuId);
    /// The set processor `cpu` names.
    fn set_of(&self, cpu: CpuId) -> ProcessorSetId;
    fn put(&mut self, cpu: CpuId, set: ProcessorSetId);
    /// The id live in slot `slot`, if any.
    fn live(&self, slot: usize) -> Option<ProcessorSetId>;
    /// The processor count of slot `slot`.
    fn count(&mut self, slot: usize) -> &mut u32;
    fn count_of(&self, slot: usize) -> u32;
    /// The table's slots.
    fn slots(&self) -> usize;
}

/// Whether `set` is the set live in its slot.
pub fn is_live(m: &impl Members, set: ProcessorSetId) -> bool {
    set.slot() < m.slots() && m.live(set.slot()) == Some(set)
}

/// `cpu` leaves `old` for `new` if it still names `old` (the counts follow): whether it
/// moved. The caller has checked that `new` is live.
pub fn switch_set(
    m: &mut impl Members,
    cpu: CpuId,
    old: ProcessorSetId,
    new: ProcessorSetId,
) -> bool {
    if m.set_of(cpu) != old {
        return false;
    }
    let from = m.count(old.slot());
    *from = from.saturating_sub(1);
    *m.count(new.slot()) += 1;
    m.put(cpu, new);
    true
}

/// A processor comes online: it is in the default set and counted there, in one step.
pub fn bring_up(m: &mut impl Members, cpu: CpuId) {
    m.put(cpu, ProcessorSetId::DEFAULT);
    *m.count(ProcessorSetId::DEFAULT.slot()) += 1;
    m.set_online(cpu);
}

/// `processor_assign`'s bookkeeping: online processor `cpu` goes to `new` if `new` is live;
/// whether it moved (not if it was there already).
pub fn assign(m: &mut impl Members, cpu: CpuId, new: ProcessorSetId) -> bool {
    let old = m.set_of(cpu);
    m.online(cpu) && old != new && is_live(m, new) && switch_set(m, cpu, old, new)
}

/// The processors of `set`, which has just stopped being live, go to the default set, in the
/// same step: bit `i` of the answer says processor `i` moved (their threads are to be placed
/// again).
pub fn evacuate(m: &mut impl Members, set: ProcessorSetId) -> u64 {
    let mut moved = 0;
    for cpu in CpuId::first(m.cpus().min(64)) {
        if switch_set(m, cpu, set, ProcessorSetId::DEFAULT) {
            moved |= 1 << cpu.index();
        }
    }
    moved
}

/// What [`check`] finds wrong.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Wrong {
    /// An online processor names a set that is not live: it is in no set.
    InNoSet { cpu: CpuId, set: ProcessorSetId },
    /// The live set counts `says` processors; `counted` online processors name it.
    Count {
        set: ProcessorSetId,
        counted: u32,
        says: u32,
    },
}

/// Every online processor in a live set, and each live set's count equal to the online
/// processors naming it.
pub fn check(m: &impl Members, report: &mut dyn FnMut(Wrong)) {
    let online = || CpuId::first(m.cpus()).filter(|&c| m.online(c));
    for cpu in online() {
        let set = m.set_of(cpu);
        if !is_live(m, set) {
            report(Wrong::InNoSet { cpu, set });
        }
    }
    for slot in 0..m.slots() {
        let Some(set) = m.live(slot) else { continue };
        let counted = online().filter(|&c| m.set_of(c) == set).count() as u32;
        let says = m.count_of(slot);
        if counted != says {
            report(Wrong::Count { set, counted, says });
        }
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use crate::kern::sched::setslot::{SetSlot, free_slot};
    use proptest::prelude::*;
    use std::collections::BTreeMap;
    use std::vec::Vec;

    const SLOTS: usize = 4;
    const CPUS: usize = 6;

    /// The table as the kernel holds it, in arrays.
    struct Table {
        sets: [ProcessorSetId; CPUS],
        online: [bool; CPUS],
        live: [Option<ProcessorSetId>; SLOTS],
        counts: [u32; SLOTS],
        slots: [SetSlot; SLOTS],
    }

    impl Members for Table {
        fn cpus(&self) -> usize {
            CPUS
        }
        fn online(&self, cpu: CpuId) -> bool {
            self.online[cpu.index()]
        }
        fn set_online(&mut self, cpu: CpuId) {
            self.online[cpu.index()] = true;
        }
        fn set_of(&self, cpu: CpuId) -> ProcessorSetId {
            self.sets[cpu.index()]
        }
        fn put(&mut self, cpu: CpuId, set: ProcessorSetId) {
            self.sets[cpu.index()] = set;
        }
        fn live(&self, slot: usize) -> Option<ProcessorSetId> {
            self.live[slot]
        }
        fn count(&mut self, slot: usize) -> &mut u32 {
            &mut self.counts[slot]
        }
        fn count_of(&self, slot: usize) -> u32 {
            self.counts[slot]
        }
        fn slots(&self) -> usize {
            SLOTS
        }
    }

    impl Table {
        /// At boot: the boot processor online in the default set, the others not yet.
        fn boot() -> Self {
            let mut slots = [SetSlot::new(); SLOTS];
            let default = slots[0].claim(0);
            let mut live = [None; SLOTS];
            live[0] = Some(default);
            let mut online = [false; CPUS];
            online[0] = true;
            let mut counts = [0; SLOTS];
            counts[0] = 1;
            Table {
                sets: [default; CPUS],
                online,
                live,
                counts,
                slots,
            }
        }

        /// `processor_set_create` as `pset` does it.
        fn create(&mut self) -> Option<ProcessorSetId> {
            let slot = free_slot(self.slots.iter())?;
            let id = self.slots[slot].claim(slot);
            self.counts[slot] = 0;
            self.live[slot] = Some(id);
            Some(id)
        }

        /// `processor_set_destroy` as `pset` does it (one critical section).
        fn destroy(&mut self, set: ProcessorSetId) -> Option<u64> {
            if set == ProcessorSetId::DEFAULT || !is_live(self, set) {
                return None;
            }
            self.live[set.slot()] = None;
            self.slots[set.slot()].retire();
            let moved = evacuate(self, set);
            self.slots[set.slot()].release();
            self.counts[set.slot()] = 0;
            Some(moved)
        }
    }

    #[derive(Clone, Debug)]
    enum Op {
        Create,
        Destroy(usize),
        /// Processor, then the set: one of those the model knows (live or dead), by index.
        Assign(usize, usize),
        /// A processor comes online (once; again is no change).
        BringUp(usize),
        /// A made-up id: never live.
        AssignBogus(usize, u32),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            2 => Just(Op::Create),
            2 => (0usize..8).prop_map(Op::Destroy),
            5 => (0..CPUS, 0usize..8).prop_map(|(c, s)| Op::Assign(c, s)),
            1 => (1..CPUS).prop_map(Op::BringUp),
            1 => (0..CPUS, any::<u32>()).prop_map(|(c, s)| Op::AssignBogus(c, s)),
        ]
    }

    proptest! {
        /// Random creates, destroys and assignments against a model (which processor is in
        /// which live set): after every step the table agrees with the model and
        /// [`check`] finds nothing.
        #[test]
        fn membership_matches_a_model(ops in proptest::collection::vec(op(), 0..200)) {
            let mut t = Table::boot();
            let default = ProcessorSetId::DEFAULT;
            // The model: processor -> set, and every id ever made.
            let mut model: BTreeMap<usize, ProcessorSetId> = BTreeMap::new();
            model.insert(0, default);
            let mut known: Vec<ProcessorSetId> = std::vec![default];
            let mut live: Vec<ProcessorSetId> = std::vec![default];
            for op in ops {
                match op {
                    Op::Create => {
                        let made = t.create();
                        prop_assert_eq!(made.is_some(), live.len() < SLOTS);
                        if let Some(id) = made {
                            prop_assert!(!known.contains(&id), "id {} handed out twice", id);
                            known.push(id);
                            live.push(id);
                        }
                    }
                    Op::Destroy(k) => {
                        let set = known[k % known.len()];
                        let was_live = live.contains(&set) && set != default;
                        let moved = t.destroy(set);
                        prop_assert_eq!(moved.is_some(), was_live);
                        if let Some(moved) = moved {
                            live.retain(|&s| s != set);
                            for cpu in 0..CPUS {
                                let named = model.get(&cpu) == Some(&set);
                                prop_assert_eq!(moved >> cpu & 1 == 1, named);
                                if named {
                                    model.insert(cpu, default);
                                }
                            }
                        }
                    }
                    Op::Assign(cpu, k) => {
                        let set = known[k % known.len()];
                        let moved = assign(&mut t, CpuId::new(cpu), set);
                        let should = model.get(&cpu).is_some_and(|&s| s != set) && live.contains(&set);
                        prop_assert_eq!(moved, should);
                        if should {
                            model.insert(cpu, set);
                        }
                    }
                    Op::AssignBogus(cpu, raw) => {
                        let set = ProcessorSetId(raw);
                        let moved = assign(&mut t, CpuId::new(cpu), set);
                        let should = model.get(&cpu).is_some_and(|&s| s != set) && live.contains(&set);
                        prop_assert_eq!(moved, should);
                        if should {
                            model.insert(cpu, set);
                        }
                    }
                    Op::BringUp(cpu) => {
                        if !t.online[cpu] {
                            bring_up(&mut t, CpuId::new(cpu));
                            model.insert(cpu, default);
                        }
                    }
                }
                for cpu in 0..CPUS {
                    prop_assert_eq!(t.online[cpu], model.contains_key(&cpu));
                    if let Some(set) = model.get(&cpu) {
                        prop_assert_eq!(t.sets[cpu], *set);
                    }
                }
                let mut wrong = Vec::new();
                check(&t, &mut |w| wrong.push(w));
                prop_assert!(wrong.is_empty(), "{:?}", wrong);
            }
        }
    }

    /// The destroy `pset` once did: the set stopped being live in one critical section and
    /// its processors moved in later ones. Between the two, [`check`] sees a processor in
    /// no set (what the fuzzer's self-checks found).
    #[test]
    fn a_destroy_split_in_two_steps_is_seen() {
        let mut t = Table::boot();
        bring_up(&mut t, CpuId::new(2));
        let set = t.create().unwrap();
        assert!(assign(&mut t, CpuId::new(2), set));
        t.live[set.slot()] = None;
        t.slots[set.slot()].retire();
        let mut wrong = Vec::new();
        check(&t, &mut |w| wrong.push(w));
        assert_eq!(
            wrong,
            [Wrong::InNoSet {
                cpu: CpuId::new(2),
                set
            }]
        );
        assert_eq!(evacuate(&mut t, set), 1 << 2);
        t.slots[set.slot()].release();
        t.counts[set.slot()] = 0;
        wrong.clear();
        check(&t, &mut |w| wrong.push(w));
        assert!(wrong.is_empty(), "{wrong:?}");
    }

    /// The race a plain count lost: a thread that read its set before the set was destroyed
    /// goes away after; its decrement must come off the default set's count, where the
    /// destroy moved it, and not off the emptied slot (nor a set that reused it).
    #[test]
    fn a_late_change_for_a_destroyed_set_goes_to_the_default_set() {
        const FREE: u32 = u32::MAX;
        let counts = [TaggedCount::new(0), TaggedCount::new(FREE)];
        let set = ProcessorSetId::new(1, 0);
        counts[1].reset(set.0);
        count_add(&counts, ProcessorSetId::DEFAULT, 2);
        count_add(&counts, set, 3);
        move_count_to_default(&counts, set, FREE);
        assert_eq!(counts[0].get(), (ProcessorSetId::DEFAULT, 5));
        // The slot is reused by a later set.
        let next = ProcessorSetId::new(1, 1);
        counts[1].reset(next.0);
        count_add(&counts, next, 1);
        count_sub(&counts, set);
        assert_eq!(counts[0].get(), (ProcessorSetId::DEFAULT, 4));
        assert_eq!(counts[1].get(), (next, 1));
        // A set id past the table is no slot: the default set's too.
        count_sub(&counts, ProcessorSetId::new(7, 0));
        assert_eq!(counts[0].get().1, 3);
    }

    /// Threads adding and taking away on a set while another destroys and recreates it in
    /// the same slot: the grand total always comes back to what was added and not taken.
    #[test]
    fn counts_survive_destroys_racing_with_changes() {
        use std::sync::atomic::{AtomicBool, AtomicU32};
        use std::thread;
        const FREE: u32 = u32::MAX;
        let counts: &'static [TaggedCount; 2] = std::boxed::Box::leak(std::boxed::Box::new([
            TaggedCount::new(0),
            TaggedCount::new(FREE),
        ]));
        let live: &'static AtomicU32 =
            std::boxed::Box::leak(std::boxed::Box::new(AtomicU32::new(FREE)));
        let stop: &'static AtomicBool =
            std::boxed::Box::leak(std::boxed::Box::new(AtomicBool::new(false)));
        let workers: Vec<_> = (0..3)
            .map(|_| {
                thread::spawn(move || {
                    // What this worker counted, each under the set it was counted in:
                    // a decrement names the set its thing was counted in, as a thread's
                    // does.
                    let mut held: Vec<ProcessorSetId> = Vec::new();
                    for i in 0..20_000u32 {
                        if i % 3 == 2
                            && let Some(set) = held.pop()
                        {
                            count_sub(counts, set);
                        } else {
                            let id = live.load(Ordering::Acquire);
                            let set = if id == FREE {
                                ProcessorSetId::DEFAULT
                            } else {
                                ProcessorSetId(id)
                            };
                            count_add(counts, set, 1);
                            held.push(set);
                        }
                    }
                    held.len() as i64
                })
            })
            .collect();
        let destroyer = thread::spawn(move || {
            let mut generation = 0;
            while !stop.load(Ordering::Relaxed) {
                let set = ProcessorSetId::new(1, generation);
                counts[1].reset(set.0);
                live.store(set.0, Ordering::Release);
                thread::yield_now();
                live.store(FREE, Ordering::Release);
                move_count_to_default(counts, set, FREE);
                generation += 1;
            }
        });
        let net: i64 = workers.into_iter().map(|w| w.join().unwrap()).sum();
        stop.store(true, Ordering::Relaxed);
        destroyer.join().unwrap();
        let total = i64::from(counts[0].get().1)
            + i64::from(counts[1].get().1 * u32::from(counts[1].get().0.0 != FREE));
        assert_eq!(total, net);
    }

    #[test]
    fn a_count_off_by_one_is_seen() {
        let mut t = Table::boot();
        t.counts[0] += 1;
        let mut wrong = Vec::new();
        check(&t, &mut |w| wrong.push(w));
        assert_eq!(
            wrong,
            [Wrong::Count {
                set: ProcessorSetId::DEFAULT,
                counted: 1,
                says: 2
            }]
        );
    }
}
