//! Return codes with GNU Mach's numbers, as one enum: `kern_return_t` (`mach/kern_return.h`),
//! the MIG errors (`mach/mig_errors.h`) and the `mach_msg` results (`mach/message.h`). A code
//! that none of them names (a user server's own error, say) is kept in
//! [`KernReturn::Other`], so any reply's code survives a round trip.
//!
//! Equality and hashing go by number, so `KernReturn::Other(4) == KernReturn::InvalidArgument`;
//! build values from numbers with [`KernReturn::from`], which never makes such an `Other`.

use core::fmt;
use core::hash::{Hash, Hasher};

macro_rules! codes {
    ($( $(#[$doc:meta])* $variant:ident = $value:literal, $cname:literal; )*) => {
        /// A Mach return code with GNU Mach's numbering.
        #[derive(Clone, Copy)]
        pub enum KernReturn {
            $( $(#[$doc])* $variant, )*
            /// A code no other variant names (never one of theirs: [`KernReturn::from`]
            /// picks the named variant).
            Other(i32),
        }

        impl KernReturn {
            /// The number.
            pub const fn code(self) -> i32 {
                match self {
                    $( Self::$variant => $value, )*
                    Self::Other(code) => code,
                }
            }

            /// The named code with this number, if there is one.
            pub const fn from_code(code: i32) -> Option<Self> {
                match code {
                    $( $value => Some(Self::$variant), )*
                    _ => None,
                }
            }

            /// GNU Mach's name for the code (`KERN_INVALID_ARGUMENT`, `MIG_BAD_ID`,
            /// `MACH_SEND_INVALID_DEST`, ...), or `"?"` for an unnamed one.
            pub const fn name(self) -> &'static str {
                match self {
                    $( Self::$variant => $cname, )*
                    Self::Other(_) => "?",
                }
            }

            /// Every named code, in numeric order within each family.
            pub const ALL: &'static [KernReturn] = &[ $( Self::$variant, )* ];
        }
    };
}

codes! {
    /// `KERN_SUCCESS` (also `MACH_MSG_SUCCESS`).
    Success = 0, "KERN_SUCCESS";
    InvalidAddress = 1, "KERN_INVALID_ADDRESS";
    ProtectionFailure = 2, "KERN_PROTECTION_FAILURE";
    NoSpace = 3, "KERN_NO_SPACE";
    InvalidArgument = 4, "KERN_INVALID_ARGUMENT";
    Failure = 5, "KERN_FAILURE";
    ResourceShortage = 6, "KERN_RESOURCE_SHORTAGE";
    NotReceiver = 7, "KERN_NOT_RECEIVER";
    NoAccess = 8, "KERN_NO_ACCESS";
    MemoryFailure = 9, "KERN_MEMORY_FAILURE";
    MemoryError = 10, "KERN_MEMORY_ERROR";
    NotInSet = 12, "KERN_NOT_IN_SET";
    NameExists = 13, "KERN_NAME_EXISTS";
    Aborted = 14, "KERN_ABORTED";
    InvalidName = 15, "KERN_INVALID_NAME";
    InvalidTask = 16, "KERN_INVALID_TASK";
    InvalidRight = 17, "KERN_INVALID_RIGHT";
    InvalidValue = 18, "KERN_INVALID_VALUE";
    UrefsOverflow = 19, "KERN_UREFS_OVERFLOW";
    InvalidCapability = 20, "KERN_INVALID_CAPABILITY";
    RightExists = 21, "KERN_RIGHT_EXISTS";
    InvalidHost = 22, "KERN_INVALID_HOST";
    MemoryPresent = 23, "KERN_MEMORY_PRESENT";
    WriteProtectionFailure = 24, "KERN_WRITE_PROTECTION_FAILURE";
    Terminated = 26, "KERN_TERMINATED";
    TimedOut = 27, "KERN_TIMEDOUT";
    Interrupted = 28, "KERN_INTERRUPTED";

    /// A client stub found the reply's types or size wrong.
    MigTypeError = -300, "MIG_TYPE_ERROR";
    /// The reply's id does not answer the request.
    MigReplyMismatch = -301, "MIG_REPLY_MISMATCH";
    MigRemoteError = -302, "MIG_REMOTE_ERROR";
    /// The server does not know the request's id (or leaves the routine unimplemented).
    MigBadId = -303, "MIG_BAD_ID";
    /// A server stub found the request's types or size wrong.
    MigBadArguments = -304, "MIG_BAD_ARGUMENTS";
    /// The server routine will reply later, or never: send nothing now.
    MigNoReply = -305, "MIG_NO_REPLY";
    MigException = -306, "MIG_EXCEPTION";
    /// An array does not fit the caller's buffer or the message.
    MigArrayTooLarge = -307, "MIG_ARRAY_TOO_LARGE";
    /// A send-once notification came back instead of the reply.
    MigServerDied = -308, "MIG_SERVER_DIED";
    MigDestroyRequest = -309, "MIG_DESTROY_REQUEST";

    /// Device return codes (`io_return_t`, `device/device_types.h`).
    DIoError = 2500, "D_IO_ERROR";
    DWouldBlock = 2501, "D_WOULD_BLOCK";
    DNoSuchDevice = 2502, "D_NO_SUCH_DEVICE";
    DAlreadyOpen = 2503, "D_ALREADY_OPEN";
    DDeviceDown = 2504, "D_DEVICE_DOWN";
    DInvalidOperation = 2505, "D_INVALID_OPERATION";
    DInvalidRecnum = 2506, "D_INVALID_RECNUM";
    DInvalidSize = 2507, "D_INVALID_SIZE";
    DNoMemory = 2508, "D_NO_MEMORY";
    DReadOnly = 2509, "D_READ_ONLY";

    SendInProgress = 0x1000_0001, "MACH_SEND_IN_PROGRESS";
    SendInvalidData = 0x1000_0002, "MACH_SEND_INVALID_DATA";
    SendInvalidDest = 0x1000_0003, "MACH_SEND_INVALID_DEST";
    SendTimedOut = 0x1000_0004, "MACH_SEND_TIMED_OUT";
    SendWillNotify = 0x1000_0005, "MACH_SEND_WILL_NOTIFY";
    SendNotifyInProgress = 0x1000_0006, "MACH_SEND_NOTIFY_IN_PROGRESS";
    SendInterrupted = 0x1000_0007, "MACH_SEND_INTERRUPTED";
    SendMsgTooSmall = 0x1000_0008, "MACH_SEND_MSG_TOO_SMALL";
    SendInvalidReply = 0x1000_0009, "MACH_SEND_INVALID_REPLY";
    SendInvalidRight = 0x1000_000a, "MACH_SEND_INVALID_RIGHT";
    SendInvalidNotify = 0x1000_000b, "MACH_SEND_INVALID_NOTIFY";
    SendInvalidMemory = 0x1000_000c, "MACH_SEND_INVALID_MEMORY";
    SendNoBuffer = 0x1000_000d, "MACH_SEND_NO_BUFFER";
    SendNoNotify = 0x1000_000e, "MACH_SEND_NO_NOTIFY";
    SendInvalidType = 0x1000_000f, "MACH_SEND_INVALID_TYPE";
    SendInvalidHeader = 0x1000_0010, "MACH_SEND_INVALID_HEADER";

    RcvInProgress = 0x1000_4001, "MACH_RCV_IN_PROGRESS";
    RcvInvalidName = 0x1000_4002, "MACH_RCV_INVALID_NAME";
    RcvTimedOut = 0x1000_4003, "MACH_RCV_TIMED_OUT";
    RcvTooLarge = 0x1000_4004, "MACH_RCV_TOO_LARGE";
    RcvInterrupted = 0x1000_4005, "MACH_RCV_INTERRUPTED";
    RcvPortChanged = 0x1000_4006, "MACH_RCV_PORT_CHANGED";
    RcvInvalidNotify = 0x1000_4007, "MACH_RCV_INVALID_NOTIFY";
    RcvInvalidData = 0x1000_4008, "MACH_RCV_INVALID_DATA";
    RcvPortDied = 0x1000_4009, "MACH_RCV_PORT_DIED";
    RcvInSet = 0x1000_400a, "MACH_RCV_IN_SET";
    RcvHeaderError = 0x1000_400b, "MACH_RCV_HEADER_ERROR";
    RcvBodyError = 0x1000_400c, "MACH_RCV_BODY_ERROR";
}

impl KernReturn {
    /// The code as a trap returns it in `x0` (the 32-bit value, zero-extended).
    pub const fn as_reg(self) -> u64 {
        self.code() as u32 as u64
    }

    /// The code in the low 32 bits of `x0`.
    pub const fn from_reg(x0: u64) -> Self {
        Self::from_i32(x0 as u32 as i32)
    }

    /// The code with this number: a named variant if there is one, else `Other`.
    pub const fn from_i32(code: i32) -> Self {
        match Self::from_code(code) {
            Some(k) => k,
            None => Self::Other(code),
        }
    }

    /// True for `KERN_SUCCESS`.
    pub const fn is_success(self) -> bool {
        self.code() == 0
    }

    /// `Ok(())` for success, the code otherwise.
    pub const fn result(self) -> Result<(), KernReturn> {
        if self.is_success() { Ok(()) } else { Err(self) }
    }

    /// True for the `mach_msg` send errors (`MACH_SEND_*`).
    pub const fn is_send_error(self) -> bool {
        self.code() & !0x3fff == 0x1000_0000
    }

    /// True for the `mach_msg` receive errors (`MACH_RCV_*`).
    pub const fn is_receive_error(self) -> bool {
        self.code() & !0x3fff == 0x1000_4000
    }
}

impl From<i32> for KernReturn {
    fn from(code: i32) -> Self {
        Self::from_i32(code)
    }
}

impl From<KernReturn> for i32 {
    fn from(k: KernReturn) -> Self {
        k.code()
    }
}

impl PartialEq for KernReturn {
    fn eq(&self, other: &Self) -> bool {
        self.code() == other.code()
    }
}

impl Eq for KernReturn {}

impl Hash for KernReturn {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.code().hash(state);
    }
}

impl fmt::Display for KernReturn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({:#x})", self.name(), self.code())
    }
}

impl fmt::Debug for KernReturn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_match_gnu_mach() {
        assert_eq!(KernReturn::InvalidArgument.code(), 4);
        assert_eq!(KernReturn::Interrupted.code(), 28);
        assert_eq!(KernReturn::MigBadId.code(), -303);
        assert_eq!(KernReturn::MigDestroyRequest.code(), -309);
        assert_eq!(KernReturn::SendInvalidDest.code(), 0x1000_0003);
        assert_eq!(KernReturn::RcvTimedOut.code(), 0x1000_4003);
        assert_eq!(KernReturn::RcvBodyError.code(), 0x1000_400c);
        assert_eq!(
            KernReturn::from_code(11),
            None,
            "11 is unassigned in GNU Mach"
        );
        assert_eq!(
            KernReturn::from_code(25),
            None,
            "25 is unassigned in GNU Mach"
        );
    }

    #[test]
    fn every_code_round_trips_and_names_are_unique() {
        for (i, k) in KernReturn::ALL.iter().enumerate() {
            assert_eq!(KernReturn::from(k.code()).name(), k.name());
            assert_eq!(KernReturn::from_reg(k.as_reg()), *k);
            for other in &KernReturn::ALL[i + 1..] {
                assert_ne!(k.code(), other.code());
                assert_ne!(k.name(), other.name());
            }
        }
        let odd = KernReturn::from(2600);
        assert!(matches!(odd, KernReturn::Other(2600)));
        assert_eq!(odd.name(), "?");
        assert_eq!(KernReturn::Other(4), KernReturn::InvalidArgument);
        assert_eq!(
            KernReturn::from_reg(u64::from(-303i32 as u32)),
            KernReturn::MigBadId
        );
    }

    #[test]
    fn families() {
        assert!(KernReturn::SendInvalidHeader.is_send_error());
        assert!(!KernReturn::SendInvalidHeader.is_receive_error());
        assert!(KernReturn::RcvTooLarge.is_receive_error());
        assert!(!KernReturn::Failure.is_send_error());
        assert_eq!(KernReturn::Success.result(), Ok(()));
        assert_eq!(KernReturn::Aborted.result(), Err(KernReturn::Aborted));
    }
}
