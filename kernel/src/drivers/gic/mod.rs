//! The Arm Generic Interrupt Controller, version 2 (GIC-400) or 3, whichever the device
//! tree names. Both are driven the same way from generic code: one distributor set up by
//! the boot CPU, a CPU interface set up by each CPU, SGIs as IPIs, PPIs for the timer.

pub mod v2;
pub mod v3;

/// Interrupt ids at or above this are special (1020-1023: spurious and friends).
pub const SPECIAL_INTID: u32 = 1020;
/// SGIs are INTIDs 0-15.
pub const SGI_COUNT: u32 = 16;

/// The priority every interrupt gets (all equal: the kernel does not nest interrupts).
const DEFAULT_PRIORITY: u8 = 0xa0;
/// The CPU interface's mask: everything more urgent than this is signalled.
const PRIORITY_MASK: u8 = 0xf0;

/// How an SGI finds one CPU: GICv2 by CPU-interface bit, GICv3 by affinity.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SgiTarget {
    /// GICv2: the CPU interface mask read from ITARGETSR0 on that CPU.
    pub interface_mask: u8,
    /// GICv3: the CPU's MPIDR affinity.
    pub mpidr: u64,
}

/// An acknowledged interrupt: its id, and the raw value to hand back at its end (GICv2
/// adds the sending CPU to an SGI's id).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ack {
    pub intid: u32,
    raw: u32,
}

pub enum Gic {
    V2(v2::GicV2),
    V3(v3::GicV3),
}

impl Gic {
    /// Set up the distributor; once, on the boot CPU.
    pub fn init_distributor(&self) {
        match self {
            Gic::V2(g) => g.init_distributor(),
            Gic::V3(g) => g.init_distributor(),
        }
    }

    /// Set up this CPU's interface (and redistributor); returns how SGIs reach it, or
    /// `None` if no redistributor matches this CPU.
    pub fn init_cpu(&self, mpidr: u64) -> Option<SgiTarget> {
        match self {
            Gic::V2(g) => Some(g.init_cpu(mpidr)),
            Gic::V3(g) => g.init_cpu(mpidr),
        }
    }

    /// Enable private interrupt `intid` (16-31) on this CPU.
    pub fn enable_ppi(&self, mpidr: u64, intid: u32) {
        match self {
            Gic::V2(g) => g.enable_private(intid),
            Gic::V3(g) => g.enable_private(mpidr, intid),
        }
    }

    /// Enable shared peripheral interrupt `intid` (32-1019), delivered to the CPU `target`
    /// names (the boot CPU, for the console's receive interrupt).
    pub fn enable_spi(&self, intid: u32, target: SgiTarget) {
        if !(32..SPECIAL_INTID).contains(&intid) {
            return;
        }
        match self {
            Gic::V2(g) => g.enable_shared(intid, target.interface_mask),
            Gic::V3(g) => g.enable_shared(intid, target.mpidr),
        }
    }

    /// Acknowledge the highest-priority pending interrupt, if any.
    pub fn acknowledge(&self) -> Option<Ack> {
        let raw = match self {
            Gic::V2(g) => g.acknowledge(),
            Gic::V3(_) => v3::GicV3::acknowledge(),
        };
        let intid = raw & 0x3ff;
        (intid < SPECIAL_INTID).then_some(Ack { intid, raw })
    }

    /// Signal the end of handling an acknowledged interrupt.
    pub fn end_of_interrupt(&self, ack: Ack) {
        match self {
            Gic::V2(g) => g.end_of_interrupt(ack.raw),
            Gic::V3(_) => v3::GicV3::end_of_interrupt(ack.raw),
        }
    }

    /// Send SGI `sgi` to one CPU.
    pub fn send_sgi(&self, sgi: u32, target: SgiTarget) {
        // Make this CPU's earlier writes visible before the target runs its handler.
        aarch64_cpu::asm::barrier::dsb(aarch64_cpu::asm::barrier::ISHST);
        match self {
            Gic::V2(g) => g.send_sgi(sgi, target.interface_mask),
            Gic::V3(_) => v3::GicV3::send_sgi(sgi, target.mpidr),
        }
    }

    pub fn version(&self) -> u32 {
        match self {
            Gic::V2(_) => 2,
            Gic::V3(_) => 3,
        }
    }
}
