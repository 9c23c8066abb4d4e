//! `kern_return_t` values (GNU Mach `mach/kern_return.h`) and the MIG error values
//! (`mach/mig_errors.h`).

/// A Mach return code with GNU Mach's numbers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(i32)]
pub enum KernReturn {
    Success = 0,
    InvalidAddress = 1,
    ProtectionFailure = 2,
    NoSpace = 3,
    InvalidArgument = 4,
    Failure = 5,
    ResourceShortage = 6,
    NotReceiver = 7,
    NoAccess = 8,
    MemoryFailure = 9,
    MemoryError = 10,
    NotInSet = 12,
    NameExists = 13,
    Aborted = 14,
    InvalidName = 15,
    InvalidTask = 16,
    InvalidRight = 17,
    InvalidValue = 18,
    UrefsOverflow = 19,
    InvalidCapability = 20,
    RightExists = 21,
    InvalidHost = 22,
    MemoryPresent = 23,
    WriteProtectionFailure = 24,
    Terminated = 26,
    TimedOut = 27,
    Interrupted = 28,
}

impl KernReturn {
    pub const fn code(self) -> i32 {
        self as i32
    }

    /// The code as a trap returns it in `x0`.
    pub const fn as_reg(self) -> u64 {
        self as i32 as u32 as u64
    }

    /// The return code for a raw value, if it is one.
    pub fn from_code(code: i32) -> Option<Self> {
        use KernReturn::*;
        const ALL: [KernReturn; 27] = [
            Success,
            InvalidAddress,
            ProtectionFailure,
            NoSpace,
            InvalidArgument,
            Failure,
            ResourceShortage,
            NotReceiver,
            NoAccess,
            MemoryFailure,
            MemoryError,
            NotInSet,
            NameExists,
            Aborted,
            InvalidName,
            InvalidTask,
            InvalidRight,
            InvalidValue,
            UrefsOverflow,
            InvalidCapability,
            RightExists,
            InvalidHost,
            MemoryPresent,
            WriteProtectionFailure,
            Terminated,
            TimedOut,
            Interrupted,
        ];
        ALL.into_iter().find(|k| k.code() == code)
    }
}

/// MIG errors (`mach/mig_errors.h`).
pub mod mig {
    pub const TYPE_ERROR: i32 = -300;
    pub const REPLY_MISMATCH: i32 = -301;
    pub const REMOTE_ERROR: i32 = -302;
    pub const BAD_ID: i32 = -303;
    pub const BAD_ARGUMENTS: i32 = -304;
    pub const NO_REPLY: i32 = -305;
    pub const EXCEPTION: i32 = -306;
    pub const ARRAY_TOO_LARGE: i32 = -307;
    pub const SERVER_DIED: i32 = -308;
    pub const DESTROY_REQUEST: i32 = -309;
}
