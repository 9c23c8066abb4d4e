//! Mach exception types (`mach/exception.h`) and the AArch64 codes
//! (`mach/aarch64/exception.h`).

pub const EXC_BAD_ACCESS: u32 = 1;
pub const EXC_BAD_INSTRUCTION: u32 = 2;
pub const EXC_ARITHMETIC: u32 = 3;
pub const EXC_EMULATION: u32 = 4;
pub const EXC_SOFTWARE: u32 = 5;
pub const EXC_BREAKPOINT: u32 = 6;

/// EXC_BAD_INSTRUCTION codes.
pub const EXC_AARCH64_UNK: u32 = 1;
pub const EXC_AARCH64_IL: u32 = 2;
/// EXC_SOFTWARE code: an `svc` that is not a valid trap; the subcode is its immediate.
pub const EXC_AARCH64_SVC: u32 = 1;
/// EXC_BAD_ACCESS codes beyond `kern_return_t` values.
pub const EXC_AARCH64_AL: u32 = 100;
pub const EXC_AARCH64_AL_PC: u32 = 101;
pub const EXC_AARCH64_AL_SP: u32 = 102;
pub const EXC_AARCH64_PAC: u32 = 103;
pub const EXC_AARCH64_BTI: u32 = 104;
/// EXC_BREAKPOINT codes.
pub const EXC_AARCH64_BRK: u32 = 1;
pub const EXC_AARCH64_SS: u32 = 2;

/// A name for an exception type.
pub fn name(exception: u32) -> &'static str {
    match exception {
        EXC_BAD_ACCESS => "EXC_BAD_ACCESS",
        EXC_BAD_INSTRUCTION => "EXC_BAD_INSTRUCTION",
        EXC_ARITHMETIC => "EXC_ARITHMETIC",
        EXC_EMULATION => "EXC_EMULATION",
        EXC_SOFTWARE => "EXC_SOFTWARE",
        EXC_BREAKPOINT => "EXC_BREAKPOINT",
        _ => "EXC_?",
    }
}
