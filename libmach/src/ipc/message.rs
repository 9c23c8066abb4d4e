//! Hand-written messages: [`MessageBuilder`] lays items out in GNU Mach's LP64 typed format
//! (descriptor, data, 8-byte padding; long form where GNU MIG would use it) and sets the
//! complex bit when a port right or out-of-line data goes in; [`MessageReader`] walks a
//! received message item by item. For messages no `.defs` file describes (tests, notifications,
//! quick tools); generated stubs do not use them.

use core::ffi::CStr;

use mach_abi::message::{
    Element, HEADER_SIZE, Header, Items, MACH_MSG_TYPE_BOOLEAN, MACH_MSG_TYPE_BYTE,
    MACH_MSG_TYPE_INTEGER_32, MACH_MSG_TYPE_INTEGER_64, MACH_MSG_TYPE_PORT_NAME,
    MACH_MSG_TYPE_STRING, MACH_MSGH_BITS_COMPLEX, TypeDesc, is_port_right, msgh_bits,
};
use mach_abi::mig::{Encoder, KernReturn, PortName, PortSlot};

/// Builds a message in a caller's buffer.
#[derive(Debug)]
pub struct MessageBuilder<'a> {
    enc: Encoder<'a>,
    complex: bool,
}

/// The descriptor GNU MIG would write for `number` inline elements of `bits` bits.
fn inline_desc(name: u8, bits: u16, number: u32) -> TypeDesc {
    TypeDesc {
        name,
        size: bits,
        number,
        inline: true,
        longform: bits >= 256 || number >= 4096,
        deallocate: false,
    }
}

impl<'a> MessageBuilder<'a> {
    /// An empty message in `buf`.
    pub fn new(buf: &'a mut [u8]) -> Self {
        Self {
            enc: Encoder::new(buf),
            complex: false,
        }
    }

    /// Any item: a descriptor and its elements, written as they are.
    pub fn item<E: Element>(&mut self, desc: TypeDesc, data: &[E]) -> &mut Self {
        if is_port_right(desc.name) || !desc.inline {
            self.complex = true;
        }
        self.enc.item(desc);
        self.enc.put_slice(data);
        self
    }

    /// One 32-bit integer.
    pub fn int32(&mut self, v: i32) -> &mut Self {
        self.item(inline_desc(MACH_MSG_TYPE_INTEGER_32, 32, 1), &[v])
    }

    /// 32-bit integers.
    pub fn int32s(&mut self, v: &[i32]) -> &mut Self {
        self.item(inline_desc(MACH_MSG_TYPE_INTEGER_32, 32, v.len() as u32), v)
    }

    /// One 64-bit integer.
    pub fn int64(&mut self, v: i64) -> &mut Self {
        self.item(inline_desc(MACH_MSG_TYPE_INTEGER_64, 64, 1), &[v])
    }

    /// A `boolean_t`.
    pub fn boolean(&mut self, v: bool) -> &mut Self {
        self.item(inline_desc(MACH_MSG_TYPE_BOOLEAN, 32, 1), &[v])
    }

    /// Bytes, inline.
    pub fn bytes(&mut self, v: &[u8]) -> &mut Self {
        self.item(inline_desc(MACH_MSG_TYPE_BYTE, 8, v.len() as u32), v)
    }

    /// A C string, inline, with its NUL.
    pub fn c_str(&mut self, s: &CStr) -> &mut Self {
        let b = s.to_bytes_with_nul();
        self.item(inline_desc(MACH_MSG_TYPE_STRING, 8, b.len() as u32), b)
    }

    /// A bare port name (`MACH_MSG_TYPE_PORT_NAME`, no right).
    pub fn port_name(&mut self, name: PortName) -> &mut Self {
        self.item(inline_desc(MACH_MSG_TYPE_PORT_NAME, 32, 1), &[name])
    }

    /// A port right with a disposition (`MACH_MSG_TYPE_COPY_SEND` and the like), in its
    /// 64-bit slot.
    pub fn port(&mut self, name: PortName, disposition: u8) -> &mut Self {
        self.item(inline_desc(disposition, 64, 1), &[PortSlot::from(name)])
    }

    /// Out-of-line bytes at `address` (`len` of them); `deallocate` gives the region away.
    pub fn ool(&mut self, address: u64, len: u32, deallocate: bool) -> &mut Self {
        let d = TypeDesc {
            name: MACH_MSG_TYPE_BYTE,
            size: 8,
            number: len,
            inline: false,
            longform: true,
            deallocate,
        };
        self.item(d, &[address])
    }

    /// An out-of-line array of `count` 32-bit port names at `address`, each carrying a right
    /// with `disposition`.
    pub fn ool_ports(
        &mut self,
        address: u64,
        count: u32,
        disposition: u8,
        deallocate: bool,
    ) -> &mut Self {
        let d = TypeDesc {
            name: disposition,
            size: 32,
            number: count,
            inline: false,
            longform: true,
            deallocate,
        };
        self.item(d, &[address])
    }

    /// Where the next byte goes.
    pub fn len(&self) -> usize {
        self.enc.pos()
    }

    /// True before the first item.
    pub fn is_empty(&self) -> bool {
        self.enc.pos() == HEADER_SIZE
    }

    /// Writes the header (to `dest` with `dest_disposition`, replies to `reply` with
    /// `reply_disposition`, id `id`) and returns the message's size;
    /// `MIG_ARRAY_TOO_LARGE` if it did not fit the buffer.
    pub fn finish(
        self,
        dest: PortName,
        dest_disposition: u8,
        reply: PortName,
        reply_disposition: u8,
        id: i32,
    ) -> Result<usize, KernReturn> {
        let complex = if self.complex {
            MACH_MSGH_BITS_COMPLEX
        } else {
            0
        };
        self.enc.finish(Header {
            bits: msgh_bits(dest_disposition, reply_disposition) | complex,
            size: 0,
            remote_port: dest.into(),
            local_port: reply.into(),
            seqno: 0,
            id,
        })
    }
}

/// One item of a received message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Item<'a> {
    /// Its descriptor.
    pub desc: TypeDesc,
    /// Its inline data (unpadded), or the 8-byte address of out-of-line data.
    pub data: &'a [u8],
}

impl Item<'_> {
    /// The first element, read as `E`.
    pub fn get<E: Element>(&self) -> Option<E> {
        self.data.get(..E::SIZE).map(E::load)
    }

    /// Element `i`, read as `E`.
    pub fn at<E: Element>(&self, i: usize) -> Option<E> {
        let start = i.checked_mul(E::SIZE)?;
        self.data
            .get(start..start.checked_add(E::SIZE)?)
            .map(E::load)
    }

    /// The name in an inline port slot (`None` if the slot is not a user-space name).
    pub fn port(&self) -> Option<PortName> {
        self.get::<PortSlot>()?.name()
    }

    /// The address of out-of-line data.
    pub fn address(&self) -> Option<u64> {
        if self.desc.inline {
            None
        } else {
            self.get::<u64>()
        }
    }

    /// The string an inline C string item holds (up to its NUL).
    pub fn c_str(&self) -> Option<&CStr> {
        CStr::from_bytes_until_nul(self.data).ok()
    }
}

/// Reads a received message: its header, then its items in order.
#[derive(Clone, Debug)]
pub struct MessageReader<'a> {
    header: Header,
    msg: &'a [u8],
    items: Items<'a>,
}

impl<'a> MessageReader<'a> {
    /// A reader of `msg` (up to its `msgh_size`); `MIG_TYPE_ERROR` if the header is short or
    /// the size impossible.
    pub fn new(msg: &'a [u8]) -> Result<Self, KernReturn> {
        let header = Header::read(msg).ok_or(KernReturn::MigTypeError)?;
        let size = header.size as usize;
        if size < HEADER_SIZE || size > msg.len() {
            return Err(KernReturn::MigTypeError);
        }
        Ok(Self {
            header,
            msg,
            items: mach_abi::message::items(msg),
        })
    }

    /// The header.
    pub fn header(&self) -> &Header {
        &self.header
    }
}

/// The items in order; `MIG_TYPE_ERROR` for a malformed one, after which there are none.
impl<'a> Iterator for MessageReader<'a> {
    type Item = Result<Item<'a>, KernReturn>;

    fn next(&mut self) -> Option<Self::Item> {
        let info = match self.items.next()? {
            Ok(i) => i,
            Err(_) => return Some(Err(KernReturn::MigTypeError)),
        };
        let len = if info.desc.inline {
            info.desc.data_bytes().unwrap_or(0)
        } else {
            8
        };
        let data = self
            .msg
            .get(info.data_offset..info.data_offset + len)
            .unwrap_or(&[]);
        Some(Ok(Item {
            desc: info.desc,
            data,
        }))
    }
}
