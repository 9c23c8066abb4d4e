//! Typed identifiers for what crosses module boundaries: a CPU, a thread, a task. Each is
//! its own type, so a thread id cannot be passed where a CPU is meant; each prints as its
//! plain number.

use core::fmt;

/// A CPU: its index in the device tree's list (the same index in per-CPU data, the
/// scheduler's processors and the interrupt controller's targets).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct CpuId(u32);

impl CpuId {
    /// The CPU at `index` of the device tree's list.
    pub const fn new(index: usize) -> Self {
        CpuId(index as u32)
    }

    /// Its index, for per-CPU arrays.
    pub const fn index(self) -> usize {
        self.0 as usize
    }

    /// The first `count` CPUs.
    pub fn first(count: usize) -> impl Iterator<Item = CpuId> {
        (0..count).map(CpuId::new)
    }
}

/// A thread, unique for the life of the kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct ThreadId(pub u64);

/// A task, unique for the life of the kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct TaskId(pub u64);

/// A processor set: its slot in the scheduler's table (low 8 bits) and the slot's
/// generation above them, so an id of a destroyed set never names a later one. The default
/// set is slot 0, generation 0, and is never destroyed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct ProcessorSetId(pub u32);

impl ProcessorSetId {
    /// The default set: every processor at boot.
    pub const DEFAULT: ProcessorSetId = ProcessorSetId(0);
    const SLOT_BITS: u32 = 8;
    /// The last generation an id can carry (a slot whose generations are spent is not
    /// used again: `kern::sched::setslot`).
    pub const MAX_GENERATION: u32 = u32::MAX >> Self::SLOT_BITS;

    /// The id of generation `generation` of slot `slot`.
    pub const fn new(slot: usize, generation: u32) -> Self {
        ProcessorSetId(generation << Self::SLOT_BITS | (slot as u32 & 0xff))
    }

    /// Its slot in the table.
    pub const fn slot(self) -> usize {
        (self.0 & 0xff) as usize
    }

    /// Its slot's generation.
    pub const fn generation(self) -> u32 {
        self.0 >> Self::SLOT_BITS
    }
}

macro_rules! display_as_number {
    ($($t:ty),*) => {$(
        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0, f)
            }
        }
    )*};
}
display_as_number!(CpuId, ThreadId, TaskId, ProcessorSetId);

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use std::format;
    use std::vec::Vec;

    #[test]
    fn ids_print_as_numbers_and_cpus_index_arrays() {
        assert_eq!(format!("cpu{}", CpuId::new(3)), "cpu3");
        assert_eq!(format!("{}", ThreadId(42)), "42");
        assert_eq!(CpuId::new(7).index(), 7);
        let all: Vec<usize> = CpuId::first(3).map(CpuId::index).collect();
        assert_eq!(all, [0, 1, 2]);
    }

    #[test]
    fn processor_set_ids_keep_slot_and_generation_apart() {
        let id = ProcessorSetId::new(5, 3);
        assert_eq!((id.slot(), id.generation()), (5, 3));
        assert_ne!(id, ProcessorSetId::new(5, 4));
        assert_eq!(ProcessorSetId::new(0, 0), ProcessorSetId::DEFAULT);
    }
}
