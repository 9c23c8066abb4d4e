//! The current CPU: its identity (MPIDR), its per-CPU pointer (TPIDR_EL1), interrupt
//! masking, and waiting. Scheduling decisions are not made here.

use aarch64_cpu::asm;
use aarch64_cpu::registers::{
    CPACR_EL1, ID_AA64MMFR1_EL1, MPIDR_EL1, SCTLR_EL1, TPIDR_EL0, TPIDR_EL1,
};
use core::sync::atomic::{AtomicU64, Ordering};
use tock_registers::interfaces::{Readable, Writeable};

/// The affinity fields of MPIDR_EL1 (Aff3 at 39:32, Aff2-Aff0 at 23:0), as the device
/// tree's cpu `reg` gives them.
pub const MPIDR_AFFINITY_MASK: u64 = 0xff_00ff_ffff;

/// This CPU's affinity.
pub fn mpidr() -> u64 {
    MPIDR_EL1.get() & MPIDR_AFFINITY_MASK
}

/// Point TPIDR_EL1 at this CPU's per-CPU data.
pub fn set_local(ptr: *const ()) {
    TPIDR_EL1.set(ptr as u64);
}

/// This CPU's per-CPU data (0 before `set_local`).
pub fn local() -> *const () {
    TPIDR_EL1.get() as *const ()
}

// The four interrupt-mask calls below are compiler barriers (their `asm!` may touch
// memory): the compiler must not move loads or stores of data a lock protects out of the
// interrupt-masked stretch that a spinlock (`sync`) opens and closes with them.

/// Mask IRQs on this CPU; returns the previous mask state for `irq_restore`.
#[inline]
pub fn irq_save() -> u64 {
    let daif: u64;
    // SAFETY: reading DAIF and masking IRQs on the local CPU is always allowed.
    unsafe { core::arch::asm!("mrs {}, daif", "msr daifset, #2", out(reg) daif, options(nostack)) };
    daif
}

/// Restore the mask state returned by `irq_save`.
#[inline]
pub fn irq_restore(saved: u64) {
    // SAFETY: restores a mask state this CPU had before.
    unsafe { core::arch::asm!("msr daif, {}", in(reg) saved, options(nostack)) };
}

/// Unmask IRQs on this CPU.
#[inline]
pub fn irq_enable() {
    // SAFETY: the vector table is installed before any caller enables interrupts.
    unsafe { core::arch::asm!("msr daifclr, #2", options(nostack)) };
}

/// Mask IRQs on this CPU.
#[inline]
pub fn irq_disable() {
    // SAFETY: masking IRQs on the local CPU is always allowed.
    unsafe { core::arch::asm!("msr daifset, #2", options(nostack)) };
}

/// The running thread's user TLS register (TPIDR_EL0).
#[inline]
pub fn user_tls() -> u64 {
    TPIDR_EL0.get()
}

/// Load the user TLS register of the thread about to run.
#[inline]
pub fn set_user_tls(value: u64) {
    TPIDR_EL0.set(value);
}

/// Sleep until an interrupt arrives.
#[inline]
pub fn wait_for_interrupt() {
    asm::wfi();
}

/// Sleep until an event or interrupt.
#[inline]
pub fn wait_for_event() {
    asm::wfe();
}

/// Wake CPUs waiting in `wait_for_event`.
#[inline]
pub fn send_event() {
    asm::barrier::dsb(asm::barrier::ISH);
    asm::sev();
}

/// Park this CPU for good, interrupts masked.
pub fn halt() -> ! {
    irq_disable();
    loop {
        asm::wfi();
    }
}

/// The smallest data-cache line of any CPU seen so far, in bytes (0 before the first).
static DCACHE_LINE: AtomicU64 = AtomicU64::new(0);

/// This CPU's smallest data-cache line: CTR_EL0.DminLine (bits 19:16) is log2 of it in
/// words. `aarch64-cpu` does not define CTR_EL0.
fn read_dcache_line() -> u64 {
    let ctr: u64;
    // SAFETY: reading the cache type register has no side effect.
    unsafe { core::arch::asm!("mrs {}, ctr_el0", out(reg) ctr, options(nomem, nostack)) };
    4 << ((ctr >> 16) & 0xf)
}

/// Record this CPU's data-cache line size; every CPU calls it as it starts, so that cache
/// maintenance by line steps by the smallest line of the system (CPUs may differ).
pub fn note_cache_line() {
    let line = read_dcache_line();
    let _ = DCACHE_LINE.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |old| {
        (old == 0 || line < old).then_some(line)
    });
}

/// The data-cache line size cache maintenance by address steps by.
fn dcache_line() -> u64 {
    match DCACHE_LINE.load(Ordering::Relaxed) {
        0 => read_dcache_line(),
        line => line,
    }
}

/// Clean and invalidate the data cache lines covering `[addr, addr + len)` to the point of
/// coherency, so that a CPU running with its MMU off sees the data (spin-table release).
pub fn clean_dcache_to_poc(addr: u64, len: u64) {
    let step = dcache_line();
    let mut line = addr & !(step - 1);
    while line < addr + len {
        // SAFETY: cleaning a cache line does not change memory contents.
        unsafe { core::arch::asm!("dc civac, {}", in(reg) line, options(nostack)) };
        line += step;
    }
    asm::barrier::dsb(asm::barrier::SY);
}

/// Let user mode (and the context-switch code) use FP/SIMD without trapping.
pub fn enable_fp() {
    CPACR_EL1.write(CPACR_EL1::FPEN::TrapNothing);
    asm::barrier::isb(asm::barrier::SY);
}

/// Turn Privileged Access Never on where the CPU has it: the kernel never touches user
/// memory through user addresses (it translates in software), so any such access is a bug
/// and faults. Returns whether PAN is on.
pub fn enable_pan() -> bool {
    if ID_AA64MMFR1_EL1.read(ID_AA64MMFR1_EL1::PAN) == 0 {
        return false;
    }
    // SPAN = 0: PSTATE.PAN is set on every exception taken to EL1.
    const SPAN: u64 = 1 << 23;
    SCTLR_EL1.set(SCTLR_EL1.get() & !SPAN);
    // SAFETY: writes PSTATE.PAN (the `PAN` special register, encoded S3_0_C4_C2_3).
    unsafe {
        core::arch::asm!("msr S3_0_C4_C2_3, {}", in(reg) 1u64 << 22, options(nomem, nostack))
    };
    asm::barrier::isb(asm::barrier::SY);
    true
}

/// Make code written through the data side at `[addr, addr + len)` visible to instruction
/// fetch on every CPU (Arm ARM B2.4.4): clean the data cache to the point of unification,
/// then invalidate all instruction caches of the inner-shareable domain.
pub fn sync_icache(addr: u64, len: u64) {
    let line = dcache_line();
    let mut at = addr & !(line - 1);
    while at < addr + len {
        // SAFETY: cleaning a cache line does not change memory contents.
        unsafe { core::arch::asm!("dc cvau, {}", in(reg) at, options(nostack)) };
        at += line;
    }
    // SAFETY: barriers and an instruction-cache invalidation have no other effect.
    unsafe { core::arch::asm!("dsb ish", "ic ialluis", "dsb ish", "isb", options(nostack)) };
}

/// Count the instructions this CPU retires in PMU event counter 0 (event `INST_RETIRED`,
/// 0x08, at EL0 and EL1), if it has a PMU: for the kernel's own measurements (the balance
/// passes). Under QEMU the event counts only with `-icount`, and then follows QEMU's global
/// instruction count (every CPU's, not this one's alone); without it, or without a PMU,
/// [`instructions`] stays 0. EL2 entry leaves every counter to EL1 (`boot.s`, MDCR_EL2).
pub fn enable_instruction_counter() {
    use aarch64_cpu::registers::ID_AA64DFR0_EL1;
    let version = ID_AA64DFR0_EL1.read(ID_AA64DFR0_EL1::PMUVer);
    if version == 0 || version == 0xf {
        return;
    }
    // SAFETY: PMU configuration registers of this CPU, present per ID_AA64DFR0_EL1; user
    // access stays off (PMUSERENR_EL0 untouched, 0 at reset).
    unsafe {
        let pmcr: u64;
        core::arch::asm!("mrs {}, pmcr_el0", out(reg) pmcr, options(nomem, nostack));
        if (pmcr >> 11) & 0x1f == 0 {
            return;
        }
        core::arch::asm!(
            "msr pmevtyper0_el0, {ty}",
            "msr pmcntenset_el0, {en}",
            "msr pmcr_el0, {cr}",
            "isb",
            ty = in(reg) 0x08u64,
            en = in(reg) 1u64,
            cr = in(reg) pmcr | 1,
            options(nomem, nostack)
        );
    }
    INSTRUCTION_COUNTER.store(true, Ordering::Relaxed);
}

/// Event counter 0 is set up (every CPU of a machine is the same kind).
static INSTRUCTION_COUNTER: core::sync::atomic::AtomicBool =
    core::sync::atomic::AtomicBool::new(false);

/// Instructions retired on this CPU so far, as counted by [`enable_instruction_counter`]
/// (32 bits: take differences with `wrapping_sub`; 0 without a counting PMU).
pub fn instructions() -> u32 {
    if !INSTRUCTION_COUNTER.load(Ordering::Relaxed) {
        return 0;
    }
    let value: u64;
    // SAFETY: reads this CPU's event counter 0, set up by `enable_instruction_counter`.
    unsafe {
        core::arch::asm!("isb", "mrs {}, pmevcntr0_el0", out(reg) value, options(nomem, nostack))
    };
    value as u32
}
