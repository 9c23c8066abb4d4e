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

macro_rules! display_as_number {
    ($($t:ty),*) => {$(
        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0, f)
            }
        }
    )*};
}
display_as_number!(CpuId, ThreadId, TaskId);

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
}
