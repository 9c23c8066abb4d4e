//! Which processor is in which processor set: the bookkeeping `pset` does under its table's
//! lock, as plain functions over [`Members`] so that host tests can drive them against a
//! model. A processor names one set; each slot of the table counts the processors naming its
//! set; a slot is live while it holds its set's id. Every transition here keeps the three in
//! agreement within one call, so that whoever takes the table's lock next (the self-checks
//! included) finds a processor in exactly one live set. Placing threads after a move is not
//! bookkeeping and stays in `pset`.

use crate::ids::{CpuId, ProcessorSetId};

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
