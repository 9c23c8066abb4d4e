//! GICv2 and GIC-400 (Arm IHI 0048B): memory-mapped distributor and CPU interface.
//!
//! Without the Security Extensions (QEMU `virt` without EL3) all interrupts are put in
//! group 0, which the CPU interface signals as IRQ. With them (the Raspberry Pi 4, where
//! the kernel runs non-secure) the firmware has put everything in group 1 and the
//! non-secure view of the enable bits is the group 1 one: bit 0 in both cases.

use super::{DEFAULT_PRIORITY, PRIORITY_MASK, SgiTarget};
use tock_registers::interfaces::{Readable, Writeable};
use tock_registers::register_bitfields;
use tock_registers::register_structs;
use tock_registers::registers::{ReadOnly, ReadWrite, WriteOnly};

register_bitfields! {u32,
    GICD_TYPER [
        /// Security Extensions implemented.
        SECURITY_EXTN OFFSET(10) NUMBITS(1) [],
        /// Number of implemented interrupt lines, in units of 32, minus 1.
        IT_LINES_NUMBER OFFSET(0) NUMBITS(5) []
    ],
    GICD_SGIR [
        TARGET_LIST_FILTER OFFSET(24) NUMBITS(2) [
            List = 0b00,
            OnlySelf = 0b10
        ],
        CPU_TARGET_LIST OFFSET(16) NUMBITS(8) [],
        SGI_INTID OFFSET(0) NUMBITS(4) []
    ],
    GICC_IAR [
        INTERRUPT_ID OFFSET(0) NUMBITS(10) [],
        CPUID OFFSET(10) NUMBITS(3) []
    ]
}

register_structs! {
    #[allow(non_snake_case)]
    pub DistributorRegs {
        (0x000 => CTLR: ReadWrite<u32>),
        (0x004 => TYPER: ReadOnly<u32, GICD_TYPER::Register>),
        (0x008 => _reserved0),
        (0x080 => IGROUPR: [ReadWrite<u32>; 32]),
        (0x100 => ISENABLER: [ReadWrite<u32>; 32]),
        (0x180 => ICENABLER: [ReadWrite<u32>; 32]),
        (0x200 => _reserved1),
        (0x400 => IPRIORITYR: [ReadWrite<u32>; 255]),
        (0x7fc => _reserved2),
        (0x800 => ITARGETSR: [ReadWrite<u32>; 255]),
        (0xbfc => _reserved3),
        (0xf00 => SGIR: WriteOnly<u32, GICD_SGIR::Register>),
        (0xf04 => @END),
    }
}

register_structs! {
    #[allow(non_snake_case)]
    pub CpuInterfaceRegs {
        (0x00 => CTLR: ReadWrite<u32>),
        (0x04 => PMR: ReadWrite<u32>),
        (0x08 => BPR: ReadWrite<u32>),
        (0x0c => IAR: ReadOnly<u32, GICC_IAR::Register>),
        (0x10 => EOIR: WriteOnly<u32>),
        (0x14 => @END),
    }
}

pub struct GicV2 {
    gicd: *const DistributorRegs,
    gicc: *const CpuInterfaceRegs,
}

// SAFETY: MMIO; the distributor is written only by the boot CPU during init, and banked
// or write-only-to-self registers by each CPU for itself.
unsafe impl Sync for GicV2 {}
// SAFETY: as above.
unsafe impl Send for GicV2 {}

const ENABLE: u32 = 1;

impl GicV2 {
    /// # Safety
    /// `gicd` and `gicc` must map the distributor and CPU interface for the kernel's life.
    pub unsafe fn new(gicd: usize, gicc: usize) -> Self {
        GicV2 {
            gicd: gicd as *const _,
            gicc: gicc as *const _,
        }
    }

    fn gicd(&self) -> &DistributorRegs {
        // SAFETY: `new`'s contract.
        unsafe { &*self.gicd }
    }

    fn gicc(&self) -> &CpuInterfaceRegs {
        // SAFETY: `new`'s contract.
        unsafe { &*self.gicc }
    }

    fn lines(&self) -> usize {
        ((self.gicd().TYPER.read(GICD_TYPER::IT_LINES_NUMBER) as usize) + 1) * 32
    }

    fn has_security_extensions(&self) -> bool {
        self.gicd().TYPER.is_set(GICD_TYPER::SECURITY_EXTN)
    }

    pub fn init_distributor(&self) {
        let d = self.gicd();
        d.CTLR.set(0);
        let words = self.lines().min(1020) / 32;
        let priority = u32::from_ne_bytes([DEFAULT_PRIORITY; 4]);
        for i in 1..words {
            d.ICENABLER[i].set(u32::MAX);
            if !self.has_security_extensions() {
                d.IGROUPR[i].set(0);
            }
        }
        for i in 8..words * 8 {
            d.IPRIORITYR[i].set(priority);
        }
        d.CTLR.set(ENABLE);
    }

    pub fn init_cpu(&self, mpidr: u64) -> SgiTarget {
        let d = self.gicd();
        // Banked per CPU: SGIs and PPIs.
        d.ICENABLER[0].set(u32::MAX);
        if !self.has_security_extensions() {
            d.IGROUPR[0].set(0);
        }
        let priority = u32::from_ne_bytes([DEFAULT_PRIORITY; 4]);
        for i in 0..8 {
            d.IPRIORITYR[i].set(priority);
        }
        let c = self.gicc();
        c.PMR.set(PRIORITY_MASK as u32);
        c.BPR.set(0);
        c.CTLR.set(ENABLE);
        // ITARGETSR0-7 read back this CPU's own interface bit (IHI 0048B 4.3.12).
        let mask = (d.ITARGETSR[0].get() & 0xff) as u8;
        SgiTarget {
            interface_mask: mask,
            mpidr,
        }
    }

    pub fn enable_private(&self, intid: u32) {
        self.gicd().ISENABLER[0].set(1 << (intid % 32));
    }

    /// Enable shared interrupt `intid` (32 and up), delivered to the CPU interfaces in
    /// `interface_mask` (GICD_ITARGETSR, IHI 0048B 4.3.12; a uniprocessor GIC ignores it).
    pub fn enable_shared(&self, intid: u32, interface_mask: u8) {
        let d = self.gicd();
        let (word, byte) = ((intid / 4) as usize, (intid % 4) * 8);
        if word < d.ITARGETSR.len() {
            let targets = d.ITARGETSR[word].get() & !(0xff << byte);
            d.ITARGETSR[word].set(targets | u32::from(interface_mask) << byte);
        }
        if let Some(reg) = d.ISENABLER.get((intid / 32) as usize) {
            reg.set(1 << (intid % 32));
        }
    }

    pub fn acknowledge(&self) -> u32 {
        self.gicc().IAR.get()
    }

    pub fn end_of_interrupt(&self, iar: u32) {
        self.gicc().EOIR.set(iar);
    }

    pub fn send_sgi(&self, sgi: u32, interface_mask: u8) {
        // A uniprocessor GIC reads ITARGETSR as zero (IHI 0048B 4.3.12): the only CPU
        // there is is this one.
        let filter = if interface_mask == 0 {
            GICD_SGIR::TARGET_LIST_FILTER::OnlySelf
        } else {
            GICD_SGIR::TARGET_LIST_FILTER::List
        };
        self.gicd().SGIR.write(
            filter
                + GICD_SGIR::CPU_TARGET_LIST.val(interface_mask as u32)
                + GICD_SGIR::SGI_INTID.val(sgi),
        );
    }
}
