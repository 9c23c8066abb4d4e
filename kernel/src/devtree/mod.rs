//! The device tree, validated: what the firmware or QEMU says about the machine, turned
//! into a [`MachineConfig`] of CPU physical addresses, or into a [`DtError`] that says what
//! was wrong and where.
//!
//! The device tree is input the kernel does not control, so nothing here may panic on it:
//! [`parse`] checks the blob's structure once (`blob`), reads values with their lengths and
//! cell counts checked (`props`), translates every `reg` through the parents' `ranges`, and
//! picks out what the kernel needs (`machine`): memory and reserved memory, CPUs, how to
//! start them and which cluster each is in (`topology`), PSCI, the GIC, the generic timer's
//! interrupts, the console UART, the command line and the initial RAM disk. It is plain `no_std` Rust without heap or `unsafe`, tested
//! and fuzzed on the host. It does not touch hardware and does not decide policy: which
//! drivers to start with this configuration is the kernel's business.

mod blob;
mod error;
mod machine;
mod memory;
mod props;
mod topology;

use crate::mm::PAGE_SIZE;
use arrayvec::ArrayVec;

pub use error::{DtError, DtErrorKind};

/// The most CPUs a configuration describes (GICv3's limit on QEMU `virt`).
pub const MAX_CPUS: usize = 512;
/// The most memory regions, and separately the most reserved regions, a configuration holds.
pub const MAX_MEM_REGIONS: usize = 32;
/// How many GICv3 redistributor regions a configuration holds.
pub const MAX_REDIST_REGIONS: usize = 8;
/// A range of CPU physical addresses: `size` bytes from `base`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PhysRange {
    pub base: u64,
    pub size: u64,
}

impl PhysRange {
    /// The range, or `None` if it would run past the end of the 64-bit address space.
    pub fn new(base: u64, size: u64) -> Option<Self> {
        base.checked_add(size).map(|_| Self { base, size })
    }

    /// The first address after the range (saturating at `u64::MAX`).
    pub fn end(&self) -> u64 {
        self.base.saturating_add(self.size)
    }

    /// Whether `address` is inside the range.
    pub fn contains(&self, address: u64) -> bool {
        address
            .checked_sub(self.base)
            .is_some_and(|offset| offset < self.size)
    }

    /// Whether the two ranges share at least one address.
    pub fn overlaps(&self, other: &PhysRange) -> bool {
        (self.size != 0 && self.contains(other.base))
            || (other.size != 0 && other.contains(self.base))
    }
}

/// How a secondary CPU is started (its `enable-method`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EnableMethod {
    /// PSCI `CPU_ON`, through the conduit in [`MachineConfig::psci`].
    Psci,
    /// Write the entry point to `release_addr`, clean it to the point of coherency, `sev`.
    SpinTable { release_addr: u64 },
    /// The node names no method: usually the boot CPU, which needs none. Such a CPU
    /// cannot be started by the kernel.
    Unspecified,
}

/// One CPU the tree describes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CpuInfo {
    /// Affinity fields of the CPU's MPIDR_EL1 (Aff3 in bits 32..40), from its `reg`.
    pub mpidr: u64,
    pub enable: EnableMethod,
    /// The index of the CPU's innermost `clusterN` node in `/cpus/cpu-map`, counting the
    /// map's cluster nodes in document order from 0; 0 without a (usable) map or when the
    /// map leaves the CPU out. A hint for the scheduler: CPUs of one cluster share caches.
    pub cluster: u32,
}

/// The instruction that carries PSCI calls to the firmware.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PsciConduit {
    Hvc,
    Smc,
}

/// The interrupt controller and its register frames.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GicInfo {
    /// GICv2 (GIC-400 and the Cortex-A15/A9/A7 GICs): distributor and CPU interface.
    V2 { dist: PhysRange, cpu: PhysRange },
    /// GICv3: distributor and the redistributor regions.
    V3 {
        dist: PhysRange,
        redist: ArrayVec<PhysRange, MAX_REDIST_REGIONS>,
    },
}

/// The generic timer's interrupts, as GIC INTIDs (PPI n is INTID 16 + n).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TimerInfo {
    /// The virtual timer (EL1), from the third `interrupts` entry.
    pub virt_intid: u32,
    /// The non-secure physical timer (EL1), from the second `interrupts` entry.
    pub phys_intid: u32,
}

/// The kinds of UART the kernel drives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UartKind {
    /// Arm PrimeCell PL011 (`arm,pl011`).
    Pl011,
    /// The BCM2835 auxiliary mini UART (`brcm,bcm2835-aux-uart`).
    MiniUart,
}

/// The console UART.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UartInfo {
    pub kind: UartKind,
    /// The register block, CPU physical.
    pub regs: PhysRange,
    /// The UART's reference clock, when the tree gives it (own `clock-frequency`, or a
    /// `fixed-clock` named by its first `clocks` entry).
    pub clock_hz: Option<u32>,
    /// Its interrupt as a GIC INTID, when the tree routes one to the GIC as an SPI.
    pub irq: Option<u32>,
}

/// What the device tree says about the machine, validated; all addresses CPU physical.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MachineConfig<'a> {
    /// The root's `model`, or "" when it has none.
    pub model: &'a str,
    /// Every `reg` entry of every enabled `/memory` node (`device_type = "memory"`), in tree
    /// order, empty entries dropped; never empty, never overlapping.
    pub memory: ArrayVec<PhysRange, MAX_MEM_REGIONS>,
    /// `/memreserve/` entries, then the `reg` entries of enabled `/reserved-memory`
    /// children (dynamic ones, with `size` instead of `reg`, are left to whoever uses them).
    pub reserved: ArrayVec<PhysRange, MAX_MEM_REGIONS>,
    /// Enabled `/cpus` nodes with `device_type = "cpu"`, in tree order (index 0 = first).
    pub cpus: ArrayVec<CpuInfo, MAX_CPUS>,
    /// Why `/cpus/cpu-map` was ignored, when it is malformed (every CPU is then in
    /// cluster 0). Topology is only a hint, so a bad map does not fail the parse; the
    /// kernel shows this as a warning.
    pub cpu_map_error: Option<DtError>,
    /// The PSCI conduit, when an enabled PSCI node exists.
    pub psci: Option<PsciConduit>,
    pub gic: GicInfo,
    pub timer: TimerInfo,
    /// The UART `/chosen` `stdout-path` names (through `/aliases` when it is an alias), or
    /// without `stdout-path` the first enabled PL011. `None` when that UART is of a kind
    /// the kernel does not drive, or there is none.
    pub console: Option<UartInfo>,
    /// `/chosen` `bootargs`, or "".
    pub bootargs: &'a str,
    /// `/chosen` `linux,initrd-start` to `linux,initrd-end`, when both are there and the
    /// range is not empty.
    pub initrd: Option<PhysRange>,
}

impl MachineConfig<'_> {
    /// The index in [`Self::cpus`] of the CPU with this MPIDR (only affinity bits compared).
    pub fn cpu_index_of_mpidr(&self, mpidr: u64) -> Option<usize> {
        let affinity = mpidr & machine::MPIDR_AFFINITY_MASK;
        self.cpus.iter().position(|cpu| cpu.mpidr == affinity)
    }

    /// How many clusters the CPUs are in: the number of distinct [`CpuInfo::cluster`]
    /// values (1 without a map).
    pub fn cluster_count(&self) -> usize {
        self.cpus
            .iter()
            .enumerate()
            .filter(|&(index, cpu)| {
                self.cpus
                    .iter()
                    .take(index)
                    .all(|earlier| earlier.cluster != cpu.cluster)
            })
            .count()
    }

    /// Memory the kernel may allocate: [`Self::memory`] minus [`Self::reserved`] and
    /// [`Self::initrd`], shrunk to whole pages, sorted by address.
    ///
    /// The kernel image and the device tree blob are not in the tree; pass them to
    /// [`Self::usable_memory_excluding`].
    pub fn usable_memory<const N: usize>(
        &self,
        out: &mut ArrayVec<PhysRange, N>,
    ) -> Result<(), DtError> {
        self.usable_memory_excluding(&[], out)
    }

    /// [`Self::usable_memory`], also leaving out the `extra` ranges (each widened to whole
    /// pages). Fails only when the result does not fit in `out`.
    pub fn usable_memory_excluding<const N: usize>(
        &self,
        extra: &[PhysRange],
        out: &mut ArrayVec<PhysRange, N>,
    ) -> Result<(), DtError> {
        let excluded = self
            .reserved
            .iter()
            .chain(self.initrd.iter())
            .chain(extra.iter());
        memory::subtract(&self.memory, excluded, PAGE_SIZE, out)
    }
}

/// The `totalsize` of the device tree whose header starts `header` (at least 40 bytes),
/// so that a boot path that only has a pointer knows how much to map or copy.
pub fn total_size(header: &[u8]) -> Result<usize, DtError> {
    blob::Header::read(header).map(|header| header.total_size)
}

/// Validates the device tree blob and extracts the machine configuration from it.
/// The console the tree names, read without validating the rest: for reporting why
/// `parse` failed on the console the tree meant.
pub fn console_only(dtb: &[u8]) -> Option<UartInfo> {
    machine::console_only(dtb)
}

pub fn parse(dtb: &[u8]) -> Result<MachineConfig<'_>, DtError> {
    machine::parse(dtb)
}
