//! Return codes exactly as a trap hands them back: a `kern_return_t` or a
//! `mach_msg_return_t`. GNU Mach's traps that take a task port answer a bad name with a
//! message error (`MACH_SEND_INTERRUPTED`), which no `KernReturn` variant holds, so the
//! wrappers return this newtype and tests compare it with `KernReturn` or the constants
//! here. Only the message codes the traps return today are named; the full set belongs in
//! `mach-abi` when IPC arrives.

use core::fmt;

use mach_abi::KernReturn;

/// A raw return code (`kern_return_t`, `mach_msg_return_t` or a MIG error).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct ReturnCode(pub i32);

impl ReturnCode {
    pub const SUCCESS: Self = Self(0);
    /// `MACH_SEND_INVALID_DEST` (`mach/message.h`).
    pub const MACH_SEND_INVALID_DEST: Self = Self(0x1000_0003);
    /// `MACH_SEND_INTERRUPTED`: what a trap on a task port answers for a bad task name.
    pub const MACH_SEND_INTERRUPTED: Self = Self(0x1000_0007);

    /// The code from the low 32 bits of `x0`.
    pub const fn from_reg(x0: u64) -> Self {
        Self(x0 as u32 as i32)
    }

    pub const fn is_success(self) -> bool {
        self.0 == 0
    }

    /// `Ok(())` for success, the code otherwise.
    pub const fn result(self) -> Result<(), ReturnCode> {
        if self.is_success() { Ok(()) } else { Err(self) }
    }

    /// The `KernReturn` with this number, if it is one.
    pub fn kern_return(self) -> Option<KernReturn> {
        KernReturn::from_code(self.0)
    }

    /// GNU Mach's name for the code, or `"?"`.
    pub fn name(self) -> &'static str {
        if self == Self::MACH_SEND_INVALID_DEST {
            return "MACH_SEND_INVALID_DEST";
        }
        if self == Self::MACH_SEND_INTERRUPTED {
            return "MACH_SEND_INTERRUPTED";
        }
        match self.kern_return() {
            Some(k) => kern_return_name(k),
            None => "?",
        }
    }
}

impl From<KernReturn> for ReturnCode {
    fn from(k: KernReturn) -> Self {
        Self(k.code())
    }
}

impl PartialEq<KernReturn> for ReturnCode {
    fn eq(&self, other: &KernReturn) -> bool {
        self.0 == other.code()
    }
}

impl fmt::Display for ReturnCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({:#x})", self.name(), self.0)
    }
}

impl fmt::Debug for ReturnCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// `KERN_*` name of a return code, as `mach/kern_return.h` spells it.
pub fn kern_return_name(k: KernReturn) -> &'static str {
    use KernReturn::*;
    match k {
        Success => "KERN_SUCCESS",
        InvalidAddress => "KERN_INVALID_ADDRESS",
        ProtectionFailure => "KERN_PROTECTION_FAILURE",
        NoSpace => "KERN_NO_SPACE",
        InvalidArgument => "KERN_INVALID_ARGUMENT",
        Failure => "KERN_FAILURE",
        ResourceShortage => "KERN_RESOURCE_SHORTAGE",
        NotReceiver => "KERN_NOT_RECEIVER",
        NoAccess => "KERN_NO_ACCESS",
        MemoryFailure => "KERN_MEMORY_FAILURE",
        MemoryError => "KERN_MEMORY_ERROR",
        NotInSet => "KERN_NOT_IN_SET",
        NameExists => "KERN_NAME_EXISTS",
        Aborted => "KERN_ABORTED",
        InvalidName => "KERN_INVALID_NAME",
        InvalidTask => "KERN_INVALID_TASK",
        InvalidRight => "KERN_INVALID_RIGHT",
        InvalidValue => "KERN_INVALID_VALUE",
        UrefsOverflow => "KERN_UREFS_OVERFLOW",
        InvalidCapability => "KERN_INVALID_CAPABILITY",
        RightExists => "KERN_RIGHT_EXISTS",
        InvalidHost => "KERN_INVALID_HOST",
        MemoryPresent => "KERN_MEMORY_PRESENT",
        WriteProtectionFailure => "KERN_WRITE_PROTECTION_FAILURE",
        Terminated => "KERN_TERMINATED",
        TimedOut => "KERN_TIMED_OUT",
        Interrupted => "KERN_INTERRUPTED",
    }
}
