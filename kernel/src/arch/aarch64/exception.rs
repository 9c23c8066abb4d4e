//! Exception entry: the trap frame, the vector table, and the decoding of ESR_EL1 for the
//! reports printed when something unexpected happens. What an exception *means* (a fault
//! to report, an interrupt to dispatch) is decided by the generic handlers it calls.

use aarch64_cpu::registers::VBAR_EL1;
use core::fmt;
use tock_registers::interfaces::Writeable;

/// Everything the vectors save, in this order (`vectors.s`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct TrapFrame {
    pub x: [u64; 31],
    pub sp_el0: u64,
    pub elr: u64,
    pub spsr: u64,
    pub esr: u64,
    pub far: u64,
}

/// Which vector was taken (the index in the table).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(transparent)]
pub struct VectorKind(pub u64);

impl VectorKind {
    pub fn describe(self) -> &'static str {
        const NAMES: [&str; 4] = ["synchronous", "IRQ", "FIQ", "SError"];
        NAMES[(self.0 % 4) as usize]
    }
    pub fn origin(self) -> &'static str {
        const FROM: [&str; 4] = ["EL1 on SP_EL0", "EL1", "EL0 (AArch64)", "EL0 (AArch32)"];
        FROM[((self.0 / 4) % 4) as usize]
    }
}

/// The exception class field of ESR_EL1 (Arm ARM D19.2.40).
fn esr_class(esr: u64) -> u8 {
    ((esr >> 26) & 0x3f) as u8
}

// ESR_EL1 exception classes (Arm ARM D19.2.40) the decoding below names.
const EC_UNKNOWN: u8 = 0x00;
const EC_ILLEGAL_STATE: u8 = 0x0e;
const EC_SVC64: u8 = 0x15;
const EC_SYSREG: u8 = 0x18;
const EC_IABT_LOWER: u8 = 0x20;
const EC_PC_ALIGN: u8 = 0x22;
const EC_DABT_LOWER: u8 = 0x24;
const EC_DABT_SAME: u8 = 0x25;
const EC_SP_ALIGN: u8 = 0x26;
const EC_FP_EXC64: u8 = 0x2c;
const EC_BRK64: u8 = 0x3c;

/// The instruction-specific syndrome (ISS) of an ESR value.
const ISS_MASK: u64 = 0x1ff_ffff;
/// Data aborts: the access was a write (WnR).
const ISS_DABT_WNR: u64 = 1 << 6;
/// Aborts: the fault status code, whose bits 5:2 give the kind of fault.
const ISS_FSC_MASK: u64 = 0x3f;
const FSC_ALIGNMENT: u64 = 0b10_0001;

/// The access that faulted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FaultAccess {
    Read,
    Write,
    Execute,
}

/// What kind of abort a memory access took.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AbortKind {
    /// No translation, or one that does not allow the access: the VM system may resolve
    /// it.
    Translation,
    /// A misaligned access where alignment is required.
    Alignment,
    /// Anything else (external abort, parity, TLB conflict): not the VM system's.
    Other,
}

/// A synchronous exception from user mode, decoded: what generic code needs to act on it
/// without knowing the syndrome's layout.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UserException {
    /// A trap instruction (`svc`) with this immediate (GNU Mach's traps use 0).
    Trap { immediate: u16 },
    /// A memory access to `address` aborted.
    Abort {
        address: u64,
        access: FaultAccess,
        kind: AbortKind,
    },
    /// The program counter was misaligned (`address` is it).
    PcAlignment { address: u64 },
    /// The stack pointer was misaligned.
    SpAlignment { sp: u64 },
    /// An undefined instruction, or a system register user mode may not access.
    Undefined,
    /// The processor state was illegal on return (a corrupted saved state).
    IllegalState,
    /// A trapped floating-point exception; `flags` are its cumulative flags.
    FloatingPoint { flags: u64 },
    /// A breakpoint instruction (`brk`) with this comment.
    Breakpoint { comment: u64 },
    /// Anything else.
    Other,
}

impl TrapFrame {
    /// Whether this synchronous exception is a trap instruction (the hot path: tested
    /// before any other decoding).
    #[inline(always)]
    pub fn is_trap(&self) -> bool {
        esr_class(self.esr) == EC_SVC64
    }

    /// The trap's immediate operand (`svc #imm`).
    #[inline(always)]
    pub fn trap_immediate(&self) -> u16 {
        (self.esr & 0xffff) as u16
    }

    /// The GNU Mach trap number: the negated value in `w8`.
    #[inline(always)]
    pub fn trap_number(&self) -> i32 {
        (self.x[8] as u32 as i32).wrapping_neg()
    }

    /// The trap's arguments (`x0`-`x7`).
    #[inline(always)]
    pub fn trap_args(&self) -> [u64; 8] {
        let mut a = [0; 8];
        a.copy_from_slice(&self.x[..8]);
        a
    }

    /// The user stack pointer at the exception (`sp_el0`).
    #[inline(always)]
    pub fn user_sp(&self) -> u64 {
        self.sp_el0
    }

    /// Set the trap's result register `index` (`x0`, `x1`, ...) for the return to user.
    #[inline(always)]
    pub fn set_result(&mut self, index: usize, value: u64) {
        self.x[index] = value;
    }

    /// Continue user mode at `pc` with `args` in the first argument registers (a handler
    /// called by the kernel).
    pub fn resume_at(&mut self, pc: u64, args: [u64; 3]) {
        self.elr = pc;
        self.x[..3].copy_from_slice(&args);
    }

    /// Replace the user registers (the thread-state flavor's order: `x0`-`x30`, `sp`,
    /// `pc`); only the condition flags of `cpsr` are taken, mode and masks stay EL0t.
    pub fn set_user_registers(&mut self, x: &[u64; 31], sp: u64, pc: u64, cpsr: u64) {
        self.x = *x;
        self.sp_el0 = sp;
        self.elr = pc;
        self.spsr = cpsr & 0xf000_0000;
    }

    /// Decode a synchronous exception taken from user mode.
    pub fn decode_user(&self) -> UserException {
        let class = esr_class(self.esr);
        let iss = self.esr & ISS_MASK;
        match class {
            EC_SVC64 => UserException::Trap {
                immediate: self.trap_immediate(),
            },
            EC_DABT_LOWER | EC_IABT_LOWER => {
                let access = if class == EC_IABT_LOWER {
                    FaultAccess::Execute
                } else if iss & ISS_DABT_WNR != 0 {
                    FaultAccess::Write
                } else {
                    FaultAccess::Read
                };
                let fsc = iss & ISS_FSC_MASK;
                let kind = if fsc == FSC_ALIGNMENT {
                    AbortKind::Alignment
                } else if matches!(fsc >> 2, 0b0001..=0b0011) {
                    // Translation, access flag or permission fault, any level.
                    AbortKind::Translation
                } else {
                    AbortKind::Other
                };
                UserException::Abort {
                    address: self.far,
                    access,
                    kind,
                }
            }
            EC_PC_ALIGN => UserException::PcAlignment { address: self.far },
            EC_SP_ALIGN => UserException::SpAlignment { sp: self.sp_el0 },
            EC_UNKNOWN | EC_SYSREG => UserException::Undefined,
            EC_ILLEGAL_STATE => UserException::IllegalState,
            EC_FP_EXC64 => UserException::FloatingPoint { flags: iss & 0xff },
            EC_BRK64 => UserException::Breakpoint {
                comment: iss & 0xffff,
            },
            _ => UserException::Other,
        }
    }

    /// A data abort taken in the kernel, with its address: the case a kernel stack
    /// overflow shows as.
    pub fn kernel_data_abort_address(&self) -> Option<u64> {
        (esr_class(self.esr) == EC_DABT_SAME).then_some(self.far)
    }

    /// A name for what caused the exception.
    pub fn cause_name(&self) -> &'static str {
        esr_class_name(esr_class(self.esr))
    }

    /// One line on the exception for a report: its cause, syndrome, address and PC.
    pub fn summary(&self) -> impl fmt::Display + '_ {
        struct Summary<'a>(&'a TrapFrame);
        impl fmt::Display for Summary<'_> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(
                    f,
                    "{} (ESR {:#x}), FAR {:#x}, PC {:#x}",
                    self.0.cause_name(),
                    self.0.esr,
                    self.0.far,
                    self.0.elr
                )
            }
        }
        Summary(self)
    }
}

/// A name for an exception class.
fn esr_class_name(class: u8) -> &'static str {
    match class {
        0x00 => "unknown reason",
        0x01 => "WFI/WFE",
        0x07 => "FP/SIMD access",
        0x0e => "illegal execution state",
        0x15 => "SVC from AArch64",
        0x16 => "HVC from AArch64",
        0x17 => "SMC from AArch64",
        0x18 => "system register access",
        0x19 => "SVE access",
        0x20 => "instruction abort from EL0",
        0x21 => "instruction abort from EL1",
        0x22 => "PC alignment fault",
        0x24 => "data abort from EL0",
        0x25 => "data abort from EL1",
        0x26 => "SP alignment fault",
        0x2c => "floating-point exception",
        0x2f => "SError",
        0x30 | 0x31 => "breakpoint",
        0x32 | 0x33 => "software step",
        0x34 | 0x35 => "watchpoint",
        0x3c => "BRK instruction",
        _ => "other",
    }
}

/// What an abort's syndrome says (instruction and data aborts; Arm ARM D19.2.40, the
/// ISS encoding for aborts): the fault status code's kind and level, and for a data abort
/// whether it was a write.
pub struct AbortDetail(u64);

/// The abort details of `esr`, if it is an abort.
pub fn abort_detail(esr: u64) -> Option<AbortDetail> {
    matches!(esr_class(esr), 0x20 | 0x21 | 0x24 | 0x25).then_some(AbortDetail(esr))
}

impl fmt::Display for AbortDetail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let fsc = self.0 & 0x3f;
        let level = fsc & 0b11;
        match fsc >> 2 {
            0b0000 => write!(f, "address size fault at level {level}")?,
            0b0001 => write!(f, "translation fault at level {level}")?,
            0b0010 => write!(f, "access flag fault at level {level}")?,
            0b0011 => write!(f, "permission fault at level {level}")?,
            _ if fsc == 0b10_0001 => write!(f, "alignment fault")?,
            _ => write!(f, "fault status {fsc:#04x}")?,
        }
        if matches!(esr_class(self.0), 0x24 | 0x25) {
            // ISS.WnR, bit 6.
            let access = if self.0 & (1 << 6) != 0 {
                "write"
            } else {
                "read"
            };
            write!(f, ", on a {access}")?;
        }
        Ok(())
    }
}

impl fmt::Display for TrapFrame {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let class = esr_class(self.esr);
        writeln!(
            f,
            "  ESR {:#018x} (class {:#04x}: {})\n  FAR {:#018x}  ELR {:#018x}  SPSR {:#018x}",
            self.esr,
            class,
            esr_class_name(class),
            self.far,
            self.elr,
            self.spsr
        )?;
        if let Some(detail) = abort_detail(self.esr) {
            writeln!(f, "  {detail}")?;
        }
        for row in 0..8 {
            write!(f, " ")?;
            for col in 0..4 {
                let i = row * 4 + col;
                if i < 31 {
                    write!(f, " x{:<2} {:#018x}", i, self.x[i])?;
                } else {
                    write!(f, " sp_el0 {:#018x}", self.sp_el0)?;
                }
            }
            writeln!(f)?;
        }
        Ok(())
    }
}

/// Install the vector table on this CPU.
pub fn install_vectors() {
    unsafe extern "C" {
        static exception_vectors: u8;
    }
    VBAR_EL1.set(&raw const exception_vectors as u64);
    aarch64_cpu::asm::barrier::isb(aarch64_cpu::asm::barrier::SY);
}

/// A synchronous exception at EL1, on the emergency stack; `old_sp` is the stack pointer
/// when it happened.
extern "C" fn el1_sync(frame: &mut TrapFrame, old_sp: u64) {
    crate::kern::trap::kernel_sync_exception(frame, old_sp);
}

extern "C" fn el0_sync(frame: &mut TrapFrame, kind: VectorKind) {
    let thread = crate::kern::sched::enter_from_user();
    crate::kern::trap::user_exception(frame, kind, &thread);
    crate::kern::sched::return_to_user(&thread);
}

extern "C" fn irq(_frame: &mut TrapFrame, kind: VectorKind) {
    if kind.0 >= 8 {
        let thread = crate::kern::sched::enter_from_user();
        crate::kern::irq::handle();
        crate::kern::sched::return_to_user(&thread);
    } else {
        crate::kern::irq::handle();
    }
}

extern "C" fn unexpected(frame: &mut TrapFrame, kind: VectorKind) {
    crate::kern::trap::kernel_exception(frame, kind);
}

core::arch::global_asm!(
    include_str!("vectors.s"),
    FRAME_SIZE = const core::mem::size_of::<TrapFrame>(),
    OFF_X30 = const core::mem::offset_of!(TrapFrame, x) + 30 * 8,
    OFF_ELR = const core::mem::offset_of!(TrapFrame, elr),
    OFF_ESR = const core::mem::offset_of!(TrapFrame, esr),
    EL1_SYNC = sym el1_sync,
    EL0_SYNC = sym el0_sync,
    IRQ = sym irq,
    UNEXPECTED = sym unexpected,
    PERCPU_EMERGENCY_SP = const core::mem::offset_of!(crate::percpu::PerCpu, emergency_sp),
);
