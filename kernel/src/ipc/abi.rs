//! GNU Mach's IPC numbers that `mach-abi` does not have yet: port names, rights and type
//! bits (`mach/port.h`), message dispositions and header bits (`mach/message.h`),
//! notification ids (`mach/notify.h`) and `mach_msg` return codes. Kept apart so that they
//! can move into `mach-abi` in one piece when its types are reworked; nothing here has
//! behaviour.

use core::fmt;

/// `mach_port_name_t`: a task's name for a right (32 bits, even on LP64).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
#[repr(transparent)]
pub struct PortName(pub u32);

impl PortName {
    /// `MACH_PORT_NULL`.
    pub const NULL: PortName = PortName(0);
    /// `MACH_PORT_DEAD`.
    pub const DEAD: PortName = PortName(!0);

    /// `MACH_PORT_NAME_VALID`: neither null nor dead.
    pub const fn is_valid(self) -> bool {
        self.0 != 0 && self.0 != !0
    }
}

impl fmt::Debug for PortName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            PortName::NULL => write!(f, "MACH_PORT_NULL"),
            PortName::DEAD => write!(f, "MACH_PORT_DEAD"),
            PortName(n) => write!(f, "{n:#x}"),
        }
    }
}

/// `mach_port_right_t` values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum PortRight {
    Send = 0,
    Receive = 1,
    SendOnce = 2,
    PortSet = 3,
    DeadName = 4,
}

impl PortRight {
    /// `MACH_PORT_RIGHT_NUMBER`: rights are below this.
    pub const NUMBER: u32 = 5;

    pub fn from_u32(v: u32) -> Option<Self> {
        Some(match v {
            0 => PortRight::Send,
            1 => PortRight::Receive,
            2 => PortRight::SendOnce,
            3 => PortRight::PortSet,
            4 => PortRight::DeadName,
            _ => return None,
        })
    }

    /// `MACH_PORT_TYPE(right)`.
    pub const fn type_bit(self) -> u32 {
        1 << (self as u32 + 16)
    }
}

/// `mach_port_type_t` bits.
pub mod port_type {
    pub const NONE: u32 = 0;
    pub const SEND: u32 = 1 << 16;
    pub const RECEIVE: u32 = 1 << 17;
    pub const SEND_ONCE: u32 = 1 << 18;
    pub const PORT_SET: u32 = 1 << 19;
    pub const DEAD_NAME: u32 = 1 << 20;
    pub const SEND_RECEIVE: u32 = SEND | RECEIVE;
    pub const SEND_RIGHTS: u32 = SEND | SEND_ONCE;
    pub const PORT_RIGHTS: u32 = SEND_RIGHTS | RECEIVE;
    pub const PORT_OR_DEAD: u32 = PORT_RIGHTS | DEAD_NAME;
    pub const ALL_RIGHTS: u32 = PORT_OR_DEAD | PORT_SET;
    /// Pseudo-bit: a dead-name notification is requested for the name.
    pub const DNREQUEST: u32 = 0x8000_0000;
}

/// `MACH_PORT_UREFS_MAX`: user references are 16 bits.
pub const MACH_PORT_UREFS_MAX: u32 = (1 << 16) - 1;
/// `MACH_PORT_QLIMIT_DEFAULT` and `MACH_PORT_QLIMIT_MAX`.
pub const MACH_PORT_QLIMIT_DEFAULT: u32 = 5;
pub const MACH_PORT_QLIMIT_MAX: u32 = 16;

/// `mach_msg_type_name_t` values for port rights in messages: what a sender writes (a
/// disposition) and what a receiver sees (`MACH_MSG_TYPE_PORT_*`).
pub mod msg_type {
    pub const MOVE_RECEIVE: u32 = 16;
    pub const MOVE_SEND: u32 = 17;
    pub const MOVE_SEND_ONCE: u32 = 18;
    pub const COPY_SEND: u32 = 19;
    pub const MAKE_SEND: u32 = 20;
    pub const MAKE_SEND_ONCE: u32 = 21;
    pub const PORT_RECEIVE: u32 = MOVE_RECEIVE;
    pub const PORT_SEND: u32 = MOVE_SEND;
    pub const PORT_SEND_ONCE: u32 = MOVE_SEND_ONCE;
    pub const PORT_NAME: u32 = 15;
    pub const INTEGER_32: u32 = 2;
}

/// How a sender transfers a right (`MACH_MSG_TYPE_MOVE_RECEIVE` … `MAKE_SEND_ONCE`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum Disposition {
    MoveReceive = 16,
    MoveSend = 17,
    MoveSendOnce = 18,
    CopySend = 19,
    MakeSend = 20,
    MakeSendOnce = 21,
}

impl Disposition {
    pub fn from_u32(v: u32) -> Option<Self> {
        Some(match v {
            16 => Disposition::MoveReceive,
            17 => Disposition::MoveSend,
            18 => Disposition::MoveSendOnce,
            19 => Disposition::CopySend,
            20 => Disposition::MakeSend,
            21 => Disposition::MakeSendOnce,
            _ => return None,
        })
    }

    /// `MACH_MSG_TYPE_PORT_ANY_SEND`: a disposition allowed in a header port field.
    pub const fn is_any_send(self) -> bool {
        !matches!(self, Disposition::MoveReceive)
    }

    /// `MACH_MSG_TYPE_PORT_ANY_RIGHT`: a received right's type (`insert_right` takes these).
    pub const fn is_any_right(self) -> bool {
        matches!(
            self,
            Disposition::MoveReceive | Disposition::MoveSend | Disposition::MoveSendOnce
        )
    }
}

/// `mach_msg_bits_t` fields of the header.
pub mod msgh_bits {
    pub const REMOTE_MASK: u32 = 0x0000_00ff;
    pub const LOCAL_MASK: u32 = 0x0000_ff00;
    pub const COMPLEX: u32 = 0x8000_0000;
    /// Internal: the message would close a loop of receive rights in transit.
    pub const CIRCULAR: u32 = 0x4000_0000;

    /// `MACH_MSGH_BITS(remote, local)`.
    pub const fn make(remote: u32, local: u32) -> u32 {
        remote | (local << 8)
    }
    pub const fn remote(bits: u32) -> u32 {
        bits & REMOTE_MASK
    }
    pub const fn local(bits: u32) -> u32 {
        (bits & LOCAL_MASK) >> 8
    }
    /// `MACH_MSGH_BITS_OTHER`: everything but the two port fields.
    pub const fn other(bits: u32) -> u32 {
        bits & !(REMOTE_MASK | LOCAL_MASK)
    }
}

/// Notification message ids (`mach/notify.h`, `MACH_NOTIFY_FIRST` = 0100).
pub mod notify {
    pub const PORT_DELETED: i32 = 0o101;
    pub const MSG_ACCEPTED: i32 = 0o102;
    pub const PORT_DESTROYED: i32 = 0o105;
    pub const NO_SENDERS: i32 = 0o106;
    pub const SEND_ONCE: i32 = 0o107;
    pub const DEAD_NAME: i32 = 0o110;
}

/// `mach_msg_return_t` values (`mach/message.h`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(transparent)]
pub struct MsgReturn(pub u32);

impl MsgReturn {
    pub const SUCCESS: MsgReturn = MsgReturn(0);
    pub const SEND_INVALID_DATA: MsgReturn = MsgReturn(0x1000_0002);
    pub const SEND_INVALID_DEST: MsgReturn = MsgReturn(0x1000_0003);
    pub const SEND_TIMED_OUT: MsgReturn = MsgReturn(0x1000_0004);
    pub const SEND_WILL_NOTIFY: MsgReturn = MsgReturn(0x1000_0005);
    pub const SEND_NOTIFY_IN_PROGRESS: MsgReturn = MsgReturn(0x1000_0006);
    pub const SEND_INTERRUPTED: MsgReturn = MsgReturn(0x1000_0007);
    pub const SEND_MSG_TOO_SMALL: MsgReturn = MsgReturn(0x1000_0008);
    pub const SEND_INVALID_REPLY: MsgReturn = MsgReturn(0x1000_0009);
    pub const SEND_INVALID_RIGHT: MsgReturn = MsgReturn(0x1000_000a);
    pub const SEND_INVALID_NOTIFY: MsgReturn = MsgReturn(0x1000_000b);
    pub const SEND_INVALID_MEMORY: MsgReturn = MsgReturn(0x1000_000c);
    pub const SEND_NO_BUFFER: MsgReturn = MsgReturn(0x1000_000d);
    pub const SEND_NO_NOTIFY: MsgReturn = MsgReturn(0x1000_000e);
    pub const SEND_INVALID_TYPE: MsgReturn = MsgReturn(0x1000_000f);
    pub const SEND_INVALID_HEADER: MsgReturn = MsgReturn(0x1000_0010);
    pub const RCV_INVALID_NAME: MsgReturn = MsgReturn(0x1000_4002);
    pub const RCV_TIMED_OUT: MsgReturn = MsgReturn(0x1000_4003);
    pub const RCV_TOO_LARGE: MsgReturn = MsgReturn(0x1000_4004);
    pub const RCV_INTERRUPTED: MsgReturn = MsgReturn(0x1000_4005);
    pub const RCV_PORT_CHANGED: MsgReturn = MsgReturn(0x1000_4006);
    pub const RCV_INVALID_NOTIFY: MsgReturn = MsgReturn(0x1000_4007);
    pub const RCV_INVALID_DATA: MsgReturn = MsgReturn(0x1000_4008);
    pub const RCV_PORT_DIED: MsgReturn = MsgReturn(0x1000_4009);
    pub const RCV_IN_SET: MsgReturn = MsgReturn(0x1000_400a);
    pub const RCV_HEADER_ERROR: MsgReturn = MsgReturn(0x1000_400b);
    pub const RCV_BODY_ERROR: MsgReturn = MsgReturn(0x1000_400c);

    /// Extra bits on a receive error: no room for a name in the space.
    pub const IPC_SPACE: u32 = 0x0000_2000;
    /// Extra bits on a receive error: kernel resource shortage handling a right.
    pub const IPC_KERNEL: u32 = 0x0000_0800;

    /// This return with extra `bits` or'ed in.
    pub const fn with(self, bits: u32) -> MsgReturn {
        MsgReturn(self.0 | bits)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_agree_with_gnu_mach() {
        assert_eq!(PortRight::Send.type_bit(), port_type::SEND);
        assert_eq!(PortRight::Receive.type_bit(), port_type::RECEIVE);
        assert_eq!(PortRight::SendOnce.type_bit(), port_type::SEND_ONCE);
        assert_eq!(PortRight::PortSet.type_bit(), port_type::PORT_SET);
        assert_eq!(PortRight::DeadName.type_bit(), port_type::DEAD_NAME);
        assert_eq!(port_type::DEAD_NAME, 0x0010_0000);
        assert_eq!(PortRight::from_u32(PortRight::NUMBER), None);
        assert_eq!(msgh_bits::make(19, 21), 0x1513);
        assert_eq!(msgh_bits::local(0x8000_1513), 21);
        assert_eq!(msgh_bits::other(0x8000_1513), 0x8000_0000);
        assert_eq!(
            (
                notify::PORT_DELETED,
                notify::MSG_ACCEPTED,
                notify::NO_SENDERS,
                notify::DEAD_NAME
            ),
            (65, 66, 70, 72)
        );
        assert_eq!(
            MsgReturn::RCV_HEADER_ERROR.with(MsgReturn::IPC_SPACE).0,
            0x1000_600b
        );
        for d in 16..=21 {
            assert_eq!(Disposition::from_u32(d).map(|d| d as u32), Some(d));
        }
        assert_eq!(Disposition::from_u32(15), None);
        assert_eq!(Disposition::from_u32(22), None);
        assert!(!PortName::NULL.is_valid() && !PortName::DEAD.is_valid());
        assert_eq!(format!("{:?}", PortName(0x103)), "0x103");
    }

    #[test]
    fn a_notification_descriptor_is_gnu_machs() {
        // REFERENCE.md: one inline 32-bit integer is 0x0000_0001_2000_2002.
        assert_eq!(
            crate::ipc::right::inline_descriptor(msg_type::INTEGER_32, 32),
            0x0000_0001_2000_2002
        );
    }
}
