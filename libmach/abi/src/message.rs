//! GNU Mach's typed message format, LP64 variant (`mach/message.h`): the 32-byte header with
//! 64-bit port slots, the 8-byte type descriptor before every item, the type names and
//! dispositions, `mach_msg` options, and a walker over a message's items. Every read and
//! write is bounds-checked; nothing here panics on any bytes.
//!
//! Layout: header `bits u32 @0, size u32 @4, remote_port slot @8, local_port slot @16,
//! seqno u32 @24, id i32 @28`; then items, each a descriptor (`name:8 size:16 unused:5
//! inline:1 longform:1 deallocate:1`, then `number: u32`) and its data, padded to 8 bytes.
//! Out-of-line data is an 8-byte address in place of the data.

use crate::port::{PortName, PortSlot};

/// `MACH_MSG_TYPE_BOOLEAN` (also `UNSTRUCTURED`, `BIT`).
pub const MACH_MSG_TYPE_BOOLEAN: u8 = 0;
/// `MACH_MSG_TYPE_INTEGER_16`.
pub const MACH_MSG_TYPE_INTEGER_16: u8 = 1;
/// `MACH_MSG_TYPE_INTEGER_32`.
pub const MACH_MSG_TYPE_INTEGER_32: u8 = 2;
/// `MACH_MSG_TYPE_CHAR`.
pub const MACH_MSG_TYPE_CHAR: u8 = 8;
/// `MACH_MSG_TYPE_BYTE` (also `INTEGER_8`).
pub const MACH_MSG_TYPE_BYTE: u8 = 9;
/// `MACH_MSG_TYPE_REAL`.
pub const MACH_MSG_TYPE_REAL: u8 = 10;
/// `MACH_MSG_TYPE_INTEGER_64`.
pub const MACH_MSG_TYPE_INTEGER_64: u8 = 11;
/// `MACH_MSG_TYPE_STRING` (also `STRING_C`).
pub const MACH_MSG_TYPE_STRING: u8 = 12;
/// `MACH_MSG_TYPE_PORT_NAME`: a bare name, no right attached (32 bits).
pub const MACH_MSG_TYPE_PORT_NAME: u8 = 15;
/// `MACH_MSG_TYPE_MOVE_RECEIVE`; as received, `PORT_RECEIVE`.
pub const MACH_MSG_TYPE_MOVE_RECEIVE: u8 = 16;
/// `MACH_MSG_TYPE_MOVE_SEND`; as received, `PORT_SEND`.
pub const MACH_MSG_TYPE_MOVE_SEND: u8 = 17;
/// `MACH_MSG_TYPE_MOVE_SEND_ONCE`; as received, `PORT_SEND_ONCE`.
pub const MACH_MSG_TYPE_MOVE_SEND_ONCE: u8 = 18;
/// `MACH_MSG_TYPE_COPY_SEND`.
pub const MACH_MSG_TYPE_COPY_SEND: u8 = 19;
/// `MACH_MSG_TYPE_MAKE_SEND`.
pub const MACH_MSG_TYPE_MAKE_SEND: u8 = 20;
/// `MACH_MSG_TYPE_MAKE_SEND_ONCE`.
pub const MACH_MSG_TYPE_MAKE_SEND_ONCE: u8 = 21;
/// `MACH_MSG_TYPE_PORT_RECEIVE`: a receive right as the receiver sees it.
pub const MACH_MSG_TYPE_PORT_RECEIVE: u8 = MACH_MSG_TYPE_MOVE_RECEIVE;
/// `MACH_MSG_TYPE_PORT_SEND`: a send right as the receiver sees it.
pub const MACH_MSG_TYPE_PORT_SEND: u8 = MACH_MSG_TYPE_MOVE_SEND;
/// `MACH_MSG_TYPE_PORT_SEND_ONCE`: a send-once right as the receiver sees it.
pub const MACH_MSG_TYPE_PORT_SEND_ONCE: u8 = MACH_MSG_TYPE_MOVE_SEND_ONCE;

/// True for the type names of port rights, dispositions and received rights alike
/// (`MACH_MSG_TYPE_PORT_ANY`: 16 to 21).
pub const fn is_port_right(name: u8) -> bool {
    name >= MACH_MSG_TYPE_MOVE_RECEIVE && name <= MACH_MSG_TYPE_MAKE_SEND_ONCE
}

/// The right a receiver gets for a right sent with disposition `name` (`COPY_SEND` and
/// `MAKE_SEND` arrive as `PORT_SEND`, `MAKE_SEND_ONCE` as `PORT_SEND_ONCE`); other names are
/// unchanged.
pub const fn received_right(name: u8) -> u8 {
    match name {
        MACH_MSG_TYPE_COPY_SEND | MACH_MSG_TYPE_MAKE_SEND => MACH_MSG_TYPE_PORT_SEND,
        MACH_MSG_TYPE_MAKE_SEND_ONCE => MACH_MSG_TYPE_PORT_SEND_ONCE,
        other => other,
    }
}

/// `MACH_MSGH_BITS_COMPLEX`: the body carries port rights or out-of-line data.
pub const MACH_MSGH_BITS_COMPLEX: u32 = 0x8000_0000;

/// `MACH_MSGH_BITS(remote, local)`.
pub const fn msgh_bits(remote: u8, local: u8) -> u32 {
    remote as u32 | (local as u32) << 8
}

/// `MACH_MSGH_BITS_REMOTE(bits)`.
pub const fn msgh_bits_remote(bits: u32) -> u8 {
    (bits & 0xff) as u8
}

/// `MACH_MSGH_BITS_LOCAL(bits)`.
pub const fn msgh_bits_local(bits: u32) -> u8 {
    ((bits >> 8) & 0xff) as u8
}

/// `mach_msg` options (`mach_msg_option_t`).
pub mod option {
    /// `MACH_MSG_OPTION_NONE`.
    pub const NONE: u32 = 0;
    /// `MACH_SEND_MSG`.
    pub const SEND_MSG: u32 = 0x1;
    /// `MACH_RCV_MSG`.
    pub const RCV_MSG: u32 = 0x2;
    /// `MACH_SEND_TIMEOUT`.
    pub const SEND_TIMEOUT: u32 = 0x10;
    /// `MACH_SEND_NOTIFY`.
    pub const SEND_NOTIFY: u32 = 0x20;
    /// `MACH_SEND_INTERRUPT`.
    pub const SEND_INTERRUPT: u32 = 0x40;
    /// `MACH_SEND_CANCEL`.
    pub const SEND_CANCEL: u32 = 0x80;
    /// `MACH_RCV_TIMEOUT`.
    pub const RCV_TIMEOUT: u32 = 0x100;
    /// `MACH_RCV_NOTIFY`.
    pub const RCV_NOTIFY: u32 = 0x200;
    /// `MACH_RCV_INTERRUPT`.
    pub const RCV_INTERRUPT: u32 = 0x400;
    /// `MACH_RCV_LARGE`.
    pub const RCV_LARGE: u32 = 0x800;
}

/// `MACH_MSG_TIMEOUT_NONE`.
pub const MACH_MSG_TIMEOUT_NONE: u32 = 0;

/// Notification message ids (`mach/notify.h`, base 64).
pub mod notify {
    /// `MACH_NOTIFY_PORT_DELETED`.
    pub const PORT_DELETED: i32 = 0o101;
    /// `MACH_NOTIFY_MSG_ACCEPTED`.
    pub const MSG_ACCEPTED: i32 = 0o102;
    /// `MACH_NOTIFY_PORT_DESTROYED`.
    pub const PORT_DESTROYED: i32 = 0o105;
    /// `MACH_NOTIFY_NO_SENDERS`.
    pub const NO_SENDERS: i32 = 0o106;
    /// `MACH_NOTIFY_SEND_ONCE`: what arrives instead of a reply when the server died.
    pub const SEND_ONCE: i32 = 0o107;
    /// `MACH_NOTIFY_DEAD_NAME`.
    pub const DEAD_NAME: i32 = 0o110;
}

/// Size of `mach_msg_header_t`.
pub const HEADER_SIZE: usize = 32;
/// Size of a type descriptor (short and long form alike on LP64).
pub const DESC_SIZE: usize = 8;
/// Size of a reply that carries only a return code.
pub const ERROR_REPLY_SIZE: usize = 48;
/// Alignment of every item (`MACH_MSG_USER_ALIGNMENT` on LP64).
pub const ALIGN: usize = 8;

/// Rounds `n` up to a multiple of 8, or `None` on overflow.
pub const fn round8(n: usize) -> Option<usize> {
    match n.checked_add(ALIGN - 1) {
        Some(m) => Some(m & !(ALIGN - 1)),
        None => None,
    }
}

pub(crate) fn u32_at(msg: &[u8], at: usize) -> Option<u32> {
    let b = msg.get(at..at.checked_add(4)?)?;
    Some(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
}

pub(crate) fn u64_at(msg: &[u8], at: usize) -> Option<u64> {
    let lo = u32_at(msg, at)?;
    let hi = u32_at(msg, at.checked_add(4)?)?;
    Some(u64::from(lo) | u64::from(hi) << 32)
}

/// A message header (`mach_msg_header_t`, LP64: the two ports are 64-bit slots).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Header {
    /// `msgh_bits`.
    pub bits: u32,
    /// `msgh_size`.
    pub size: u32,
    /// `msgh_remote_port`: the destination when sending, the reply port when received.
    pub remote_port: PortSlot,
    /// `msgh_local_port`: the reply port when sending, the destination when received.
    pub local_port: PortSlot,
    /// `msgh_seqno`.
    pub seqno: u32,
    /// `msgh_id`.
    pub id: i32,
}

impl Header {
    /// Reads a header from the start of `msg`.
    pub fn read(msg: &[u8]) -> Option<Header> {
        Some(Header {
            bits: u32_at(msg, 0)?,
            size: u32_at(msg, 4)?,
            remote_port: PortSlot(u64_at(msg, 8)?),
            local_port: PortSlot(u64_at(msg, 16)?),
            seqno: u32_at(msg, 24)?,
            id: u32_at(msg, 28)? as i32,
        })
    }

    /// Writes the header at the start of `msg`; false if `msg` is too short.
    pub fn write(&self, msg: &mut [u8]) -> bool {
        let Some(out) = msg.get_mut(..HEADER_SIZE) else {
            return false;
        };
        out[0..4].copy_from_slice(&self.bits.to_le_bytes());
        out[4..8].copy_from_slice(&self.size.to_le_bytes());
        out[8..16].copy_from_slice(&self.remote_port.0.to_le_bytes());
        out[16..24].copy_from_slice(&self.local_port.0.to_le_bytes());
        out[24..28].copy_from_slice(&self.seqno.to_le_bytes());
        out[28..32].copy_from_slice(&self.id.to_le_bytes());
        true
    }

    /// The port a received message was sent to (`msgh_local_port` after receipt), all 64
    /// bits of the slot.
    pub fn request_port(&self) -> PortSlot {
        self.local_port
    }

    /// The reply port of a received message (`msgh_remote_port` after receipt), all 64 bits
    /// of the slot.
    pub fn reply_port(&self) -> PortSlot {
        self.remote_port
    }

    /// True if the complex bit is set.
    pub fn is_complex(&self) -> bool {
        self.bits & MACH_MSGH_BITS_COMPLEX != 0
    }
}

/// A type descriptor (`mach_msg_type_t` / `mach_msg_type_long_t`, LP64: both are 8 bytes):
/// first word `name:8 size:16 unused:5 inline:1 longform:1 deallocate:1`, second word
/// `number`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TypeDesc {
    /// `msgt_name`.
    pub name: u8,
    /// `msgt_size`, bits per element.
    pub size: u16,
    /// `msgt_number`, number of elements.
    pub number: u32,
    /// `msgt_inline`.
    pub inline: bool,
    /// `msgt_longform`.
    pub longform: bool,
    /// `msgt_deallocate`.
    pub deallocate: bool,
}

impl TypeDesc {
    /// The first word.
    pub const fn word(&self) -> u32 {
        self.name as u32
            | (self.size as u32) << 8
            | (self.inline as u32) << 29
            | (self.longform as u32) << 30
            | (self.deallocate as u32) << 31
    }

    /// Decodes the two words.
    pub const fn from_words(word: u32, number: u32) -> TypeDesc {
        TypeDesc {
            name: (word & 0xff) as u8,
            size: ((word >> 8) & 0xffff) as u16,
            number,
            inline: word & 1 << 29 != 0,
            longform: word & 1 << 30 != 0,
            deallocate: word & 1 << 31 != 0,
        }
    }

    /// Reads a descriptor at `at` in `msg`.
    pub fn read(msg: &[u8], at: usize) -> Option<TypeDesc> {
        Some(TypeDesc::from_words(
            u32_at(msg, at)?,
            u32_at(msg, at.checked_add(4)?)?,
        ))
    }

    /// Writes the descriptor at `at` in `msg`; false if it does not fit.
    pub fn write(&self, msg: &mut [u8], at: usize) -> bool {
        let Some(out) = at
            .checked_add(DESC_SIZE)
            .and_then(|end| msg.get_mut(at..end))
        else {
            return false;
        };
        out[..4].copy_from_slice(&self.word().to_le_bytes());
        out[4..].copy_from_slice(&self.number.to_le_bytes());
        true
    }

    /// Bytes of data (unpadded): `number * size` bits rounded up to bytes when inline, `None`
    /// if absurdly large. For out-of-line data this is the size of the region.
    pub fn data_bytes(&self) -> Option<usize> {
        let bits = (self.number as usize).checked_mul(self.size as usize)?;
        Some(bits.div_ceil(8))
    }

    /// Bytes the data takes in the message, padding included: the data rounded up to 8 bytes
    /// when inline, an 8-byte address when out-of-line.
    pub fn data_len(&self) -> Option<usize> {
        if self.inline {
            round8(self.data_bytes()?)
        } else {
            Some(8)
        }
    }
}

/// A value that travels in messages, little-endian, in `SIZE` bytes.
pub trait Element: Copy + Default + 'static {
    /// Bytes per element in the message.
    const SIZE: usize;
    /// Reads from `bytes` (`SIZE` bytes; anything shorter reads as the default value).
    fn load(bytes: &[u8]) -> Self;
    /// Writes into `out` (`SIZE` bytes; anything shorter is left alone).
    fn store(self, out: &mut [u8]);
}

/// An [`Element`] whose bytes in memory are exactly its bytes in a message on this machine
/// (little-endian integers, port names): a slice of them can be sent out-of-line as it is.
///
/// # Safety
///
/// `size_of::<Self>() == Self::SIZE`, the type has no padding and no invalid bit patterns, and
/// `load`/`store` agree with the in-memory representation.
pub unsafe trait Plain: Element {}

macro_rules! element_int {
    ($($t:ty),*) => {$(
        impl Element for $t {
            const SIZE: usize = core::mem::size_of::<$t>();
            fn load(bytes: &[u8]) -> Self {
                match bytes.get(..Self::SIZE).and_then(|b| b.try_into().ok()) {
                    Some(b) => <$t>::from_le_bytes(b),
                    None => 0,
                }
            }
            fn store(self, out: &mut [u8]) {
                if let Some(o) = out.get_mut(..Self::SIZE) {
                    o.copy_from_slice(&self.to_le_bytes());
                }
            }
        }
        // SAFETY: a primitive integer is its little-endian bytes on the little-endian
        // machines Mach runs on (AArch64, and the x86-64 hosts that run the tests), with no
        // padding and no invalid values.
        #[cfg(target_endian = "little")]
        unsafe impl Plain for $t {}
    )*};
}

element_int!(u8, i8, u16, i16, u32, i32, u64, i64);

/// `boolean_t`: 32 bits on the wire, anything but 0 reads as true.
impl Element for bool {
    const SIZE: usize = 4;
    fn load(bytes: &[u8]) -> Self {
        u32::load(bytes) != 0
    }
    fn store(self, out: &mut [u8]) {
        u32::from(self).store(out);
    }
}

/// `MACH_MSG_TYPE_PORT_NAME`: 32 bits.
impl Element for PortName {
    const SIZE: usize = 4;
    fn load(bytes: &[u8]) -> Self {
        PortName(u32::load(bytes))
    }
    fn store(self, out: &mut [u8]) {
        self.0.store(out);
    }
}

// SAFETY: `PortName` is `repr(transparent)` over `u32`, which is `Plain`.
#[cfg(target_endian = "little")]
unsafe impl Plain for PortName {}

/// An inline port right: a 64-bit slot.
impl Element for PortSlot {
    const SIZE: usize = 8;
    fn load(bytes: &[u8]) -> Self {
        PortSlot(u64::load(bytes))
    }
    fn store(self, out: &mut [u8]) {
        self.0.store(out);
    }
}

/// One item of a message body, as found by [`items`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ItemInfo {
    /// Offset of the descriptor.
    pub desc_offset: usize,
    /// The descriptor.
    pub desc: TypeDesc,
    /// Offset of the data.
    pub data_offset: usize,
    /// Bytes of data in the message, padding included (8 for out-of-line data).
    pub data_len: usize,
}

/// Why [`items`] stopped early: the body does not parse as items up to `msgh_size`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Malformed {
    /// Offset of the item that does not fit (or of the header, if the size is bad).
    pub at: usize,
}

/// Walks the items of a typed message (for code that must find port rights and out-of-line
/// regions). Stops at `msgh_size`; yields one `Err` for a malformed body and then ends.
pub fn items(msg: &[u8]) -> Items<'_> {
    let size = Header::read(msg).map_or(0, |h| h.size as usize);
    Items {
        msg: msg.get(..size).unwrap_or(&[]),
        pos: HEADER_SIZE,
        failed: size < HEADER_SIZE || size > msg.len(),
    }
}

/// Iterator returned by [`items`].
#[derive(Clone, Debug)]
pub struct Items<'a> {
    msg: &'a [u8],
    pos: usize,
    failed: bool,
}

impl Iterator for Items<'_> {
    type Item = Result<ItemInfo, Malformed>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            self.failed = false;
            self.pos = usize::MAX;
            return Some(Err(Malformed { at: 0 }));
        }
        if self.pos >= self.msg.len() {
            return None;
        }
        let at = self.pos;
        let parsed = TypeDesc::read(self.msg, at).and_then(|desc| {
            let data_offset = at.checked_add(DESC_SIZE)?;
            let data_len = desc.data_len()?;
            let end = data_offset.checked_add(data_len)?;
            (end <= self.msg.len()).then_some((
                ItemInfo {
                    desc_offset: at,
                    desc,
                    data_offset,
                    data_len,
                },
                end,
            ))
        });
        match parsed {
            Some((info, end)) => {
                self.pos = end;
                Some(Ok(info))
            }
            None => {
                self.pos = usize::MAX;
                Some(Err(Malformed { at }))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::vec::Vec;

    #[test]
    fn descriptor_words_match_gnu_mach() {
        let d = TypeDesc {
            name: MACH_MSG_TYPE_INTEGER_32,
            size: 32,
            number: 1,
            inline: true,
            longform: false,
            deallocate: false,
        };
        assert_eq!(
            u64::from(d.word()) | u64::from(d.number) << 32,
            0x0000_0001_2000_2002
        );
        assert_eq!(TypeDesc::from_words(d.word(), 1), d);
        let ool_ports = TypeDesc {
            name: MACH_MSG_TYPE_COPY_SEND,
            size: 32,
            number: 3,
            inline: false,
            longform: true,
            deallocate: true,
        };
        assert_eq!(ool_ports.word(), 19 | 32 << 8 | 1 << 30 | 1 << 31);
        assert_eq!(ool_ports.data_len(), Some(8));
        assert_eq!(ool_ports.data_bytes(), Some(12));
    }

    #[test]
    fn header_keeps_all_64_bits_of_its_slots() {
        let h = Header {
            bits: msgh_bits(MACH_MSG_TYPE_COPY_SEND, MACH_MSG_TYPE_MAKE_SEND_ONCE)
                | MACH_MSGH_BITS_COMPLEX,
            size: 32,
            remote_port: PortSlot(0xffff_8000_dead_beef),
            local_port: PortSlot(0x1_0000_0007),
            seqno: 9,
            id: -5,
        };
        let mut buf = [0u8; 32];
        assert!(h.write(&mut buf));
        assert_eq!(&buf[8..16], &0xffff_8000_dead_beefu64.to_le_bytes());
        let back = Header::read(&buf).expect("header");
        assert_eq!(back, h);
        assert_eq!(back.request_port(), PortSlot(0x1_0000_0007));
        assert_eq!(back.reply_port(), PortSlot(0xffff_8000_dead_beef));
        assert!(back.is_complex());
        assert_eq!(msgh_bits_local(back.bits), 21);
        assert!(Header::read(&buf[..31]).is_none());
        assert!(!h.write(&mut [0u8; 31]));
    }

    #[test]
    fn elements() {
        let mut b = [0u8; 8];
        PortSlot(0x0102_0304_0506_0708).store(&mut b);
        assert_eq!(PortSlot::load(&b), PortSlot(0x0102_0304_0506_0708));
        true.store(&mut b);
        assert_eq!(&b[..4], &[1, 0, 0, 0]);
        assert!(bool::load(&[0, 0, 1, 0]));
        assert_eq!(PortName::load(&[7, 0, 0, 0, 0xff]), PortName(7));
        assert_eq!(u64::load(&[1, 2]), 0, "short input reads as the default");
    }

    #[test]
    fn items_stop_at_malformed_bodies() {
        let mut m = [0u8; 64];
        let h = Header {
            size: 64,
            ..Header::default()
        };
        h.write(&mut m);
        let int = TypeDesc {
            name: 2,
            size: 32,
            number: 1,
            inline: true,
            ..TypeDesc::default()
        };
        int.write(&mut m, 32);
        let big = TypeDesc { number: 3, ..int };
        big.write(&mut m, 48);
        let found: Vec<_> = items(&m).collect();
        assert_eq!(found.len(), 2);
        assert!(found[0].is_ok());
        assert_eq!(found[1], Err(Malformed { at: 48 }));
        assert_eq!(items(&m[..40]).next(), Some(Err(Malformed { at: 0 })));
    }
}
