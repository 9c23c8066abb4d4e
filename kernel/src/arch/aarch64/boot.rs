//! Boot glue between `boot.s` and Rust: the numbers the assembly uses (register values,
//! table offsets, descriptor bits), the boot page tables and stack, and the start slot
//! through which a secondary CPU learns its stack and index.
//!
//! This file does not decide what runs on each CPU: `kern::boot` does.

use super::mmu::boot_desc;
use super::pagetable::desc;
use crate::mm::layout::{KIMAGE_VA, PAGE_SIZE};
use aarch64_cpu::registers::{
    CNTHCTL_EL2, HCR_EL2, ICC_SRE_EL2, MAIR_EL1, SCTLR_EL1, SPSR_EL2, TCR_EL1,
};
use core::sync::atomic::{AtomicU64, Ordering};
use tock_registers::register_bitfields;

/// Page tables of 2 MiB each that map the image at boot; the linker script checks the fit.
pub const BOOT_L3_TABLES: usize = 4;

/// Size of the boot CPU's stack (in .bss, a guard page below it): large, because the
/// device-tree configuration (512 CPU slots) is built on it.
pub const BOOT_STACK_SIZE: usize = 256 * 1024;

type Table = [u64; 512];

/// The page tables built by `boot.s` with the MMU off. The kernel keeps using `k_l0` as its
/// TTBR1 root; `id_*` go once every CPU is up.
#[repr(C, align(4096))]
pub struct BootTables {
    pub id_l0: Table,
    pub id_l1: Table,
    pub k_l0: Table,
    pub k_l1: Table,
    pub k_l2: Table,
    pub k_l3: [Table; BOOT_L3_TABLES],
}

#[unsafe(no_mangle)]
pub static mut BOOT_TABLES: BootTables = BootTables {
    id_l0: [0; 512],
    id_l1: [0; 512],
    k_l0: [0; 512],
    k_l1: [0; 512],
    k_l2: [0; 512],
    k_l3: [[0; 512]; BOOT_L3_TABLES],
};

/// The boot stack with an unmapped guard page below it (unmapped by `mmu::protect_image`).
#[repr(C, align(4096))]
pub struct BootStack {
    pub guard: [u8; PAGE_SIZE as usize],
    pub stack: [u8; BOOT_STACK_SIZE],
}

pub static mut BOOT_STACK: BootStack = BootStack {
    guard: [0; PAGE_SIZE as usize],
    stack: [0; BOOT_STACK_SIZE],
};

/// Where the next secondary CPU finds its identity. The boot CPU fills it before starting
/// that one CPU and waits for it to come online before reusing it.
#[repr(C)]
struct StartSlot {
    mpidr: AtomicU64,
    sp: AtomicU64,
    cpu: AtomicU64,
}

static START_SLOT: StartSlot = StartSlot {
    mpidr: AtomicU64::new(u64::MAX),
    sp: AtomicU64::new(0),
    cpu: AtomicU64::new(0),
};

/// Prepare the start of the CPU with affinity `mpidr` as CPU `index`, on the kernel stack
/// whose top is `sp`. The caller starts it (PSCI or spin table) at `secondary_entry_pa`
/// and waits for it to come online before preparing another.
pub fn prepare_secondary(mpidr: u64, sp: u64, index: usize) {
    START_SLOT.sp.store(sp, Ordering::Relaxed);
    START_SLOT.cpu.store(index as u64, Ordering::Relaxed);
    START_SLOT.mpidr.store(mpidr, Ordering::Release);
}

/// The physical entry point of secondary CPUs, given the image's load address.
pub fn secondary_entry_pa(load_pa: u64) -> u64 {
    unsafe extern "C" {
        fn secondary_entry();
    }
    secondary_entry as *const () as u64 - KIMAGE_VA + load_pa
}

// The values the boot assembly writes to system registers.

register_bitfields! {u64,
    /// CPTR_EL2 with HCR_EL2.E2H = 0 (Arm ARM D19.2.31): the aarch64-cpu crate names only
    /// some of its fields.
    CPTR_EL2_NVHE [
        /// RES1.
        RES1_LOW OFFSET(0) NUMBITS(8) [],
        /// Trap SVE (RES1 where SVE is not implemented).
        TZ OFFSET(8) NUMBITS(1) [],
        /// RES1.
        RES1_9 OFFSET(9) NUMBITS(1) [],
        /// Trap FP/SIMD.
        TFP OFFSET(10) NUMBITS(1) [],
        /// RES1.
        RES1_HIGH OFFSET(12) NUMBITS(2) []
    ],
    /// SCTLR_EL1 bits the aarch64-cpu crate does not name (Arm ARM D19.2.118): RES1 in
    /// Armv8.0, controls of later features that we keep at their Armv8.0 behaviour.
    SCTLR_EL1_MORE [
        /// Exception exit is context synchronizing.
        EOS OFFSET(11) NUMBITS(1) [],
        /// EL0 access to SCXTNUM_EL0 is not trapped.
        TSCXT OFFSET(20) NUMBITS(1) [],
        /// Exception entry is context synchronizing.
        EIS OFFSET(22) NUMBITS(1) [],
        /// PSTATE.PAN is left alone on exception entry.
        SPAN OFFSET(23) NUMBITS(1) [],
        /// No trap of LD64B/ST64B-type accesses to device memory.
        NTLSMD OFFSET(28) NUMBITS(1) [],
        /// Load/store multiple keep Armv8.0 ordering.
        LSMAOE OFFSET(29) NUMBITS(1) []
    ]
}

// The values the boot assembly writes to system registers.

/// HCR_EL2: EL1 is AArch64; nothing else trapped or virtualised.
const HCR_EL2_VALUE: u64 = HCR_EL2::RW::EL1IsAarch64.value;
/// CPTR_EL2: the RES1 bits, SVE trapped, FP/SIMD not (TFP = 0).
const CPTR_EL2_VALUE: u64 = CPTR_EL2_NVHE::RES1_LOW.val(0xff).value
    | CPTR_EL2_NVHE::TZ::SET.value
    | CPTR_EL2_NVHE::RES1_9::SET.value
    | CPTR_EL2_NVHE::RES1_HIGH.val(0b11).value;
/// CNTHCTL_EL2: EL1 may use the physical counter and timer.
const CNTHCTL_EL1_ACCESS: u64 = CNTHCTL_EL2::EL1PCTEN::SET.value | CNTHCTL_EL2::EL1PCEN::SET.value;
/// ICC_SRE_EL2: EL1 may use the GICv3 system registers (Enable), which are on (SRE), with
/// FIQ and IRQ bypass disabled (DFB, DIB).
const ICC_SRE_EL2_BITS: u64 = ICC_SRE_EL2::ENABLE::SET.value
    | ICC_SRE_EL2::DIB::SET.value
    | ICC_SRE_EL2::DFB::SET.value
    | ICC_SRE_EL2::SRE::SET.value;
/// SPSR for the `eret` to EL1: EL1h with D, A, I, F masked.
const SPSR_EL1H_MASKED: u64 = SPSR_EL2::M::EL1h.value
    | SPSR_EL2::D::Masked.value
    | SPSR_EL2::A::Masked.value
    | SPSR_EL2::I::Masked.value
    | SPSR_EL2::F::Masked.value;
/// SCTLR_EL1's RES1 bits (of Armv8.0).
const SCTLR_EL1_RES1: u64 = SCTLR_EL1_MORE::EOS::SET.value
    | SCTLR_EL1_MORE::TSCXT::SET.value
    | SCTLR_EL1_MORE::EIS::SET.value
    | SCTLR_EL1_MORE::SPAN::SET.value
    | SCTLR_EL1_MORE::NTLSMD::SET.value
    | SCTLR_EL1_MORE::LSMAOE::SET.value;
/// SCTLR_EL1 with the MMU and caches off.
const SCTLR_EL1_OFF: u64 = SCTLR_EL1_RES1;
/// SCTLR_EL1 once on: MMU, data and instruction caches, stack alignment checks at EL1 and
/// EL0; WFI/WFE from EL0 trap (nTWI = nTWE = 0).
const SCTLR_EL1_ON: u64 = SCTLR_EL1_RES1
    | SCTLR_EL1::M::Enable.value
    | SCTLR_EL1::C::Cacheable.value
    | SCTLR_EL1::SA::Enable.value
    | SCTLR_EL1::SA0::Enable.value
    | SCTLR_EL1::I::Cacheable.value;

/// MAIR_EL1 (see `mmu::MemAttr` for the index of each).
const MAIR: u64 = MAIR_EL1::Attr0_Device::nonGathering_nonReordering_EarlyWriteAck.value
    | MAIR_EL1::Attr1_Normal_Outer::WriteBack_NonTransient_ReadWriteAlloc.value
    | MAIR_EL1::Attr1_Normal_Inner::WriteBack_NonTransient_ReadWriteAlloc.value
    | MAIR_EL1::Attr2_Normal_Outer::NonCacheable.value
    | MAIR_EL1::Attr2_Normal_Inner::NonCacheable.value;

/// TCR_EL1 without IPS and AS, which `enable_mmu` takes from ID_AA64MMFR0_EL1: 48-bit
/// virtual addresses in both halves, 4 KiB granules, inner-shareable write-back walks.
const TCR: u64 = TCR_EL1::T0SZ.val(16).value
    | TCR_EL1::T1SZ.val(16).value
    | TCR_EL1::TG0::KiB_4.value
    | TCR_EL1::TG1::KiB_4.value
    | TCR_EL1::SH0::Inner.value
    | TCR_EL1::SH1::Inner.value
    | TCR_EL1::IRGN0::WriteBack_ReadAlloc_WriteAlloc_Cacheable.value
    | TCR_EL1::ORGN0::WriteBack_ReadAlloc_WriteAlloc_Cacheable.value
    | TCR_EL1::IRGN1::WriteBack_ReadAlloc_WriteAlloc_Cacheable.value
    | TCR_EL1::ORGN1::WriteBack_ReadAlloc_WriteAlloc_Cacheable.value;
const TCR_IPS_SHIFT: u64 = 32;
const TCR_AS: u64 = 1 << 36;
const PARANGE_48: u64 = 5;

/// Linux Image header flags: little-endian (bit 0 clear), 4 KiB pages (bits 1-2 = 1),
/// placeable anywhere in RAM (bit 3).
const IMAGE_FLAGS: u64 = (1 << 1) | (1 << 3);

core::arch::global_asm!(
    include_str!("boot.s"),
    IMAGE_FLAGS = const IMAGE_FLAGS,
    HCR_EL2 = const HCR_EL2_VALUE,
    CNTHCTL_EL1_ACCESS = const CNTHCTL_EL1_ACCESS,
    CPTR_EL2 = const CPTR_EL2_VALUE,
    ICC_SRE_EL2_BITS = const ICC_SRE_EL2_BITS,
    SCTLR_EL1_OFF = const SCTLR_EL1_OFF,
    SCTLR_EL1_ON = const SCTLR_EL1_ON,
    SPSR_EL1H_MASKED = const SPSR_EL1H_MASKED,
    MAIR = const MAIR,
    TCR = const TCR,
    TCR_IPS_SHIFT = const TCR_IPS_SHIFT,
    TCR_AS = const TCR_AS,
    PARANGE_48 = const PARANGE_48,
    BOOT_TABLES = sym BOOT_TABLES,
    TABLES_SIZE = const core::mem::size_of::<BootTables>(),
    ID_L0 = const core::mem::offset_of!(BootTables, id_l0),
    ID_L1 = const core::mem::offset_of!(BootTables, id_l1),
    K_L0 = const core::mem::offset_of!(BootTables, k_l0),
    K_L1 = const core::mem::offset_of!(BootTables, k_l1),
    K_L2 = const core::mem::offset_of!(BootTables, k_l2),
    K_L3 = const core::mem::offset_of!(BootTables, k_l3),
    K_L0_INDEX = const (KIMAGE_VA >> 39) & 511,
    K_L1_INDEX = const (KIMAGE_VA >> 30) & 511,
    BOOT_L3_TABLES = const BOOT_L3_TABLES,
    DESC_TABLE = const desc::TABLE,
    BLOCK_NORMAL_RWX = const boot_desc::BLOCK,
    PAGE_NORMAL_RWX = const boot_desc::PAGE,
    BOOT_STACK = sym BOOT_STACK,
    BOOT_STACK_SIZE = const core::mem::size_of::<BootStack>(),
    KERNEL_MAIN = sym crate::kern::boot::kernel_main,
    SECONDARY_MAIN = sym crate::kern::boot::secondary_main,
    START_SLOT = sym START_SLOT,
    SLOT_MPIDR = const core::mem::offset_of!(StartSlot, mpidr),
    SLOT_SP = const core::mem::offset_of!(StartSlot, sp),
    SLOT_CPU = const core::mem::offset_of!(StartSlot, cpu),
    MPIDR_AFF_MASK = const super::cpu::MPIDR_AFFINITY_MASK,
);
