//! GICv3 CPU-interface system registers that `aarch64-cpu` does not provide, with the same
//! `tock-registers` interface (Arm IHI 0069, chapter 12). Nothing else belongs here.

use tock_registers::interfaces::{Readable, Writeable};
use tock_registers::register_bitfields;

register_bitfields! {u64,
    /// Interrupt acknowledge / end of interrupt, group 1 (IHI 0069 12.2.13, 12.2.9).
    pub ICC_INTID [
        INTID OFFSET(0) NUMBITS(24) []
    ],
    /// Software generated interrupt, group 1 (IHI 0069 12.2.22).
    pub ICC_SGI1R_EL1 [
        TARGETLIST OFFSET(0) NUMBITS(16) [],
        AFF1 OFFSET(16) NUMBITS(8) [],
        INTID OFFSET(24) NUMBITS(4) [],
        AFF2 OFFSET(32) NUMBITS(8) [],
        IRM OFFSET(40) NUMBITS(1) [],
        AFF3 OFFSET(48) NUMBITS(8) [],
        RS OFFSET(44) NUMBITS(4) []
    ],
    /// System register enable, EL1 (IHI 0069 12.2.21).
    pub ICC_SRE_EL1 [
        SRE OFFSET(0) NUMBITS(1) [],
        DFB OFFSET(1) NUMBITS(1) [],
        DIB OFFSET(2) NUMBITS(1) []
    ],
    /// Priority mask (IHI 0069 12.2.19).
    pub ICC_PMR_EL1 [
        PRIORITY OFFSET(0) NUMBITS(8) []
    ],
    /// Group 1 interrupt enable (IHI 0069 12.2.15).
    pub ICC_IGRPEN1_EL1 [
        ENABLE OFFSET(0) NUMBITS(1) []
    ],
    /// Binary point, group 1 (IHI 0069 12.2.5).
    pub ICC_BPR1_EL1 [
        BINARYPOINT OFFSET(0) NUMBITS(3) []
    ]
}

/// Defines a unit struct for a system register with `Readable` and/or `Writeable`.
macro_rules! sysreg {
    (@read $name:ident, $reg:literal, $fields:ident) => {
        impl Readable for $name {
            type T = u64;
            type R = $fields::Register;
            #[inline]
            fn get(&self) -> u64 {
                let value;
                // SAFETY: reading a GIC CPU-interface register has no side effect beyond the
                // GIC's documented one (acknowledging reads are made only by the interrupt
                // handler).
                unsafe { core::arch::asm!(concat!("mrs {}, ", $reg), out(reg) value, options(nomem, nostack)) };
                value
            }
        }
    };
    (@write $name:ident, $reg:literal, $fields:ident) => {
        impl Writeable for $name {
            type T = u64;
            type R = $fields::Register;
            #[inline]
            fn set(&self, value: u64) {
                // SAFETY: the register is a GIC CPU-interface control; the callers in
                // drivers::gic::v3 write only documented values.
                unsafe { core::arch::asm!(concat!("msr ", $reg, ", {}"), in(reg) value, options(nomem, nostack)) };
            }
        }
    };
    ($name:ident, $reg:literal, $fields:ident, $($access:ident),+) => {
        pub struct $name;
        $(sysreg!(@$access $name, $reg, $fields);)+
    };
}

sysreg!(IccIar1El1, "icc_iar1_el1", ICC_INTID, read);
sysreg!(IccEoir1El1, "icc_eoir1_el1", ICC_INTID, write);
sysreg!(IccSgi1rEl1, "icc_sgi1r_el1", ICC_SGI1R_EL1, write);
sysreg!(IccSreEl1, "icc_sre_el1", ICC_SRE_EL1, read, write);
sysreg!(IccPmrEl1, "icc_pmr_el1", ICC_PMR_EL1, write);
sysreg!(IccIgrpen1El1, "icc_igrpen1_el1", ICC_IGRPEN1_EL1, write);
sysreg!(IccBpr1El1, "icc_bpr1_el1", ICC_BPR1_EL1, write);
