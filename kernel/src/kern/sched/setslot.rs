//! The ids of processor sets: which slot of the table a new set takes, the id it gets, and
//! what destroying a set does to its slot so that no id is ever handed out twice (a task
//! or thread still naming a destroyed set must not find itself in a later one). Pure and
//! host-tested; `pset` keeps one [`SetSlot`] per slot of its table, under the table's lock.

use crate::ids::ProcessorSetId;

/// One slot of the processor-set table: whether a set holds it and the generation the
/// next set in it gets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SetSlot {
    in_use: bool,
    generation: u32,
}

impl Default for SetSlot {
    fn default() -> Self {
        Self::new()
    }
}

impl SetSlot {
    /// A slot never used.
    pub const fn new() -> Self {
        SetSlot {
            in_use: false,
            generation: 0,
        }
    }

    /// A slot holding no set whose next set gets `generation` (for tests of exhaustion).
    #[cfg(test)]
    pub const fn at_generation(generation: u32) -> Self {
        SetSlot {
            in_use: false,
            generation,
        }
    }

    /// A set holds the slot (live, or being destroyed).
    pub fn in_use(&self) -> bool {
        self.in_use
    }

    /// Whether a new set may take the slot: no set holds it and it has a generation left
    /// that an id can carry. A slot whose generations are spent stays unused for ever.
    pub fn is_free(&self) -> bool {
        !self.in_use && self.generation <= ProcessorSetId::MAX_GENERATION
    }

    /// A new set takes slot number `slot` (which must be [`Self::is_free`]): its id.
    pub fn claim(&mut self, slot: usize) -> ProcessorSetId {
        debug_assert!(self.is_free());
        self.in_use = true;
        ProcessorSetId::new(slot, self.generation)
    }

    /// The set in the slot is being destroyed: its id names nothing from now on. The slot
    /// stays in use until [`Self::release`].
    pub fn retire(&mut self) {
        self.generation = self
            .generation
            .saturating_add(1)
            .min(ProcessorSetId::MAX_GENERATION + 1);
    }

    /// The destroyed set has left the slot.
    pub fn release(&mut self) {
        self.in_use = false;
    }
}

/// The slot a new set takes: the first free one after the default set's (slot 0).
pub fn free_slot<'a>(slots: impl IntoIterator<Item = &'a SetSlot>) -> Option<usize> {
    slots
        .into_iter()
        .enumerate()
        .skip(1)
        .find(|(_, s)| s.is_free())
        .map(|(i, _)| i)
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use proptest::prelude::*;
    use std::collections::{BTreeMap, BTreeSet};
    use std::vec::Vec;

    const SLOTS: usize = 16;

    #[derive(Clone, Debug)]
    enum Op {
        Create,
        /// Destroy the `n`th live set (modulo their number).
        Destroy(usize),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            3 => Just(Op::Create),
            2 => any::<usize>().prop_map(Op::Destroy),
        ]
    }

    /// Slots whose generations start near the end (`near_end[i]` generations left), so
    /// that a short sequence of operations reaches exhaustion.
    fn table(near_end: &[u32]) -> Vec<SetSlot> {
        (0..SLOTS)
            .map(|i| match near_end.get(i) {
                Some(&left) => SetSlot::at_generation(ProcessorSetId::MAX_GENERATION - left),
                None => SetSlot::new(),
            })
            .collect()
    }

    proptest! {
        /// Against a model of live sets and of every id ever issued: a set is created
        /// exactly when some slot after the default's is unused with a generation left;
        /// its id names its slot and that slot's generation, is live, and was never issued
        /// before (each slot's generations only grow); destroying frees the slot.
        #[test]
        fn ids_are_never_issued_twice(
            near_end in proptest::collection::vec(0u32..4, 0..SLOTS),
            ops in proptest::collection::vec(op(), 0..300),
        ) {
            let mut slots = table(&near_end);
            let mut live: BTreeMap<ProcessorSetId, usize> = BTreeMap::new();
            let mut issued: BTreeSet<ProcessorSetId> = BTreeSet::new();
            let mut last_generation: BTreeMap<usize, u32> = BTreeMap::new();
            for op in ops {
                match op {
                    Op::Create => {
                        let expected = (1..SLOTS).find(|&i| {
                            !live.values().any(|&s| s == i)
                                && near_end.get(i).is_none_or(|&left| {
                                    let used = last_generation.get(&i).map_or(0, |&g| {
                                        g - (ProcessorSetId::MAX_GENERATION - left) + 1
                                    });
                                    used <= left
                                })
                        });
                        let got = free_slot(&slots);
                        prop_assert_eq!(got, expected);
                        let Some(slot) = got else { continue };
                        let id = slots[slot].claim(slot);
                        prop_assert_eq!(id.slot(), slot);
                        prop_assert!(issued.insert(id), "{:?} issued twice", id);
                        if let Some(&before) = last_generation.get(&slot) {
                            prop_assert!(id.generation() > before, "generation went back");
                        }
                        last_generation.insert(slot, id.generation());
                        live.insert(id, slot);
                    }
                    Op::Destroy(n) => {
                        if live.is_empty() {
                            continue;
                        }
                        let (&id, &slot) = live.iter().nth(n % live.len()).unwrap();
                        live.remove(&id);
                        slots[slot].retire();
                        prop_assert!(slots[slot].in_use());
                        slots[slot].release();
                    }
                }
            }
        }

        /// Every generation a slot can give is carried by its id intact.
        #[test]
        fn ids_carry_slot_and_generation(slot in 0usize..SLOTS, generation in 0..=ProcessorSetId::MAX_GENERATION) {
            let id = ProcessorSetId::new(slot, generation);
            prop_assert_eq!((id.slot(), id.generation()), (slot, generation));
        }
    }

    /// A slot whose last generation has been used is never taken again: the set created
    /// after it goes to the next slot, and with every slot spent there is none.
    #[test]
    fn a_spent_slot_is_skipped() {
        let mut slots = [
            SetSlot::new(),
            SetSlot::at_generation(ProcessorSetId::MAX_GENERATION),
        ];
        assert_eq!(free_slot(&slots), Some(1));
        let id = slots[1].claim(1);
        assert_eq!(id.generation(), ProcessorSetId::MAX_GENERATION);
        slots[1].retire();
        slots[1].release();
        assert_eq!(free_slot(&slots), None);
        assert!(!slots[1].in_use());
    }
}
