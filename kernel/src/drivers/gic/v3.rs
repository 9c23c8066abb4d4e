//! GICv3 (Arm IHI 0069): memory-mapped distributor and redistributors, system-register
//! CPU interface. Interrupts are group 1 (non-secure), routed by affinity.

use super::{DEFAULT_PRIORITY, PRIORITY_MASK, SgiTarget};
use crate::arch::sysreg::{
    ICC_IGRPEN1_EL1, ICC_PMR_EL1, ICC_SGI1R_EL1, ICC_SRE_EL1, IccBpr1El1, IccEoir1El1, IccIar1El1,
    IccIgrpen1El1, IccPmrEl1, IccSgi1rEl1, IccSreEl1,
};
use arrayvec::ArrayVec;
use tock_registers::interfaces::{ReadWriteable, Readable, Writeable};
use tock_registers::register_bitfields;
use tock_registers::register_structs;
use tock_registers::registers::{ReadOnly, ReadWrite};

register_bitfields! {u32,
    GICD_CTLR [
        RWP OFFSET(31) NUMBITS(1) [],
        ARE OFFSET(4) NUMBITS(1) [],
        ENABLE_GRP1 OFFSET(1) NUMBITS(1) [],
        ENABLE_GRP0 OFFSET(0) NUMBITS(1) []
    ],
    GICD_TYPER [
        IT_LINES_NUMBER OFFSET(0) NUMBITS(5) []
    ],
    GICR_WAKER [
        CHILDREN_ASLEEP OFFSET(2) NUMBITS(1) [],
        PROCESSOR_SLEEP OFFSET(1) NUMBITS(1) []
    ]
}

register_bitfields! {u64,
    GICR_TYPER [
        AFFINITY OFFSET(32) NUMBITS(32) [],
        LAST OFFSET(4) NUMBITS(1) [],
        VLPIS OFFSET(1) NUMBITS(1) []
    ]
}

register_structs! {
    #[allow(non_snake_case)]
    pub DistributorRegs {
        (0x0000 => CTLR: ReadWrite<u32, GICD_CTLR::Register>),
        (0x0004 => TYPER: ReadOnly<u32, GICD_TYPER::Register>),
        (0x0008 => _reserved0),
        (0x0080 => IGROUPR: [ReadWrite<u32>; 32]),
        (0x0100 => ISENABLER: [ReadWrite<u32>; 32]),
        (0x0180 => ICENABLER: [ReadWrite<u32>; 32]),
        (0x0200 => _reserved1),
        (0x0400 => IPRIORITYR: [ReadWrite<u32>; 255]),
        (0x07fc => _reserved2),
        (0x6100 => IROUTER: [ReadWrite<u64>; 988]),
        (0x7fe0 => @END),
    }
}

register_structs! {
    #[allow(non_snake_case)]
    pub RedistributorRegs {
        (0x0000 => CTLR: ReadWrite<u32>),
        (0x0004 => IIDR: ReadOnly<u32>),
        (0x0008 => TYPER: ReadOnly<u64, GICR_TYPER::Register>),
        (0x0010 => _reserved0),
        (0x0014 => WAKER: ReadWrite<u32, GICR_WAKER::Register>),
        (0x0018 => @END),
    }
}

register_structs! {
    #[allow(non_snake_case)]
    pub SgiRegs {
        (0x0000 => _reserved0),
        (0x0080 => IGROUPR0: ReadWrite<u32>),
        (0x0084 => _reserved1),
        (0x0100 => ISENABLER0: ReadWrite<u32>),
        (0x0104 => _reserved2),
        (0x0180 => ICENABLER0: ReadWrite<u32>),
        (0x0184 => _reserved3),
        (0x0400 => IPRIORITYR: [ReadWrite<u32>; 8]),
        (0x0420 => @END),
    }
}

/// Each redistributor is an RD frame and an SGI frame of 64 KiB each, plus two more with
/// virtual LPIs (GICv4).
const FRAME: usize = 0x1_0000;

/// Most redistributor regions we accept (matches the device-tree layer).
pub const MAX_REDIST_REGIONS: usize = 8;

pub struct GicV3 {
    gicd: *const DistributorRegs,
    /// Mapped redistributor regions (virtual base, size).
    redist: ArrayVec<(usize, usize), MAX_REDIST_REGIONS>,
}

// SAFETY: MMIO; the distributor is written only by the boot CPU, each redistributor only by
// its own CPU.
unsafe impl Sync for GicV3 {}
// SAFETY: as above.
unsafe impl Send for GicV3 {}

impl GicV3 {
    /// # Safety
    /// `gicd` and every region in `redist` must map GIC registers for the kernel's life.
    pub unsafe fn new(gicd: usize, redist: ArrayVec<(usize, usize), MAX_REDIST_REGIONS>) -> Self {
        GicV3 {
            gicd: gicd as *const _,
            redist,
        }
    }

    fn gicd(&self) -> &DistributorRegs {
        // SAFETY: `new`'s contract.
        unsafe { &*self.gicd }
    }

    fn wait_for_rwp(&self) {
        while self.gicd().CTLR.is_set(GICD_CTLR::RWP) {
            core::hint::spin_loop();
        }
    }

    pub fn init_distributor(&self) {
        let d = self.gicd();
        d.CTLR.set(0);
        self.wait_for_rwp();
        let words =
            (((d.TYPER.read(GICD_TYPER::IT_LINES_NUMBER) as usize) + 1) * 32).min(1020) / 32;
        let priority = u32::from_ne_bytes([DEFAULT_PRIORITY; 4]);
        for i in 1..words {
            d.ICENABLER[i].set(u32::MAX);
            d.IGROUPR[i].set(u32::MAX);
        }
        for i in 8..words * 8 {
            d.IPRIORITYR[i].set(priority);
        }
        self.wait_for_rwp();
        d.CTLR
            .write(GICD_CTLR::ARE::SET + GICD_CTLR::ENABLE_GRP1::SET);
        self.wait_for_rwp();
    }

    /// The redistributor whose affinity is `mpidr`: (RD frame, SGI frame).
    fn find_redistributor(&self, mpidr: u64) -> Option<(&RedistributorRegs, &SgiRegs)> {
        let want = ((mpidr >> 32) & 0xff) << 24 | (mpidr & 0xff_ffff);
        for &(base, size) in &self.redist {
            let mut offset = 0;
            while offset + 2 * FRAME <= size {
                // SAFETY: `offset` is inside a mapped redistributor region (`new`).
                let rd = unsafe { &*((base + offset) as *const RedistributorRegs) };
                let typer = rd.TYPER.extract();
                if typer.read(GICR_TYPER::AFFINITY) == want {
                    // SAFETY: the SGI frame follows the RD frame in the same region.
                    let sgi = unsafe { &*((base + offset + FRAME) as *const SgiRegs) };
                    return Some((rd, sgi));
                }
                if typer.is_set(GICR_TYPER::LAST) {
                    break;
                }
                offset += if typer.is_set(GICR_TYPER::VLPIS) {
                    4 * FRAME
                } else {
                    2 * FRAME
                };
            }
        }
        None
    }

    pub fn init_cpu(&self, mpidr: u64) -> Option<SgiTarget> {
        let (rd, sgi) = self.find_redistributor(mpidr)?;
        rd.WAKER.modify(GICR_WAKER::PROCESSOR_SLEEP::CLEAR);
        while rd.WAKER.is_set(GICR_WAKER::CHILDREN_ASLEEP) {
            core::hint::spin_loop();
        }
        sgi.ICENABLER0.set(u32::MAX);
        sgi.IGROUPR0.set(u32::MAX);
        let priority = u32::from_ne_bytes([DEFAULT_PRIORITY; 4]);
        for reg in &sgi.IPRIORITYR {
            reg.set(priority);
        }
        IccSreEl1.write(ICC_SRE_EL1::SRE::SET + ICC_SRE_EL1::DFB::SET + ICC_SRE_EL1::DIB::SET);
        aarch64_cpu::asm::barrier::isb(aarch64_cpu::asm::barrier::SY);
        IccPmrEl1.write(ICC_PMR_EL1::PRIORITY.val(PRIORITY_MASK as u64));
        IccBpr1El1.set(0);
        IccIgrpen1El1.write(ICC_IGRPEN1_EL1::ENABLE::SET);
        aarch64_cpu::asm::barrier::isb(aarch64_cpu::asm::barrier::SY);
        Some(SgiTarget {
            interface_mask: 0,
            mpidr,
        })
    }

    pub fn enable_private(&self, mpidr: u64, intid: u32) {
        if let Some((_, sgi)) = self.find_redistributor(mpidr) {
            sgi.ISENABLER0.set(1 << (intid % 32));
        }
    }

    /// Enable shared interrupt `intid` (32 and up), routed to the CPU whose affinity is
    /// `mpidr` (GICD_IROUTER<n>, IHI 0069 12.9.23; the array starts at IROUTER<32>).
    pub fn enable_shared(&self, intid: u32, mpidr: u64) {
        let d = self.gicd();
        let affinity = mpidr & 0xff_00ff_ffff;
        if let Some(route) = (intid as usize)
            .checked_sub(32)
            .and_then(|i| d.IROUTER.get(i))
        {
            route.set(affinity);
        }
        if let Some(reg) = d.ISENABLER.get((intid / 32) as usize) {
            reg.set(1 << (intid % 32));
        }
        self.wait_for_rwp();
    }

    pub fn acknowledge() -> u32 {
        let intid = IccIar1El1.get() as u32;
        aarch64_cpu::asm::barrier::dsb(aarch64_cpu::asm::barrier::SY);
        intid
    }

    pub fn end_of_interrupt(intid: u32) {
        IccEoir1El1.set(intid as u64);
        aarch64_cpu::asm::barrier::isb(aarch64_cpu::asm::barrier::SY);
    }

    pub fn send_sgi(sgi: u32, mpidr: u64) {
        let aff0 = mpidr & 0xff;
        IccSgi1rEl1.write(
            ICC_SGI1R_EL1::AFF3.val((mpidr >> 32) & 0xff)
                + ICC_SGI1R_EL1::AFF2.val((mpidr >> 16) & 0xff)
                + ICC_SGI1R_EL1::AFF1.val((mpidr >> 8) & 0xff)
                + ICC_SGI1R_EL1::RS.val(aff0 / 16)
                + ICC_SGI1R_EL1::TARGETLIST.val(1 << (aff0 % 16))
                + ICC_SGI1R_EL1::INTID.val(sgi as u64),
        );
        aarch64_cpu::asm::barrier::isb(aarch64_cpu::asm::barrier::SY);
    }
}
