//! The run-time support of the code mig-rs generates: message header and type descriptors of
//! GNU Mach's LP64 typed IPC, bounds-checked little-endian encoding and decoding of message
//! buffers, array views for server code, the [`Transport`] trait client stubs send through, and
//! the return codes with GNU Mach's numbers.
//!
//! It depends on `core` only and has no `unsafe`: the same text is compiled here (and tested)
//! and emitted by `mig_rs::generate_runtime()` for `no_std` crates to `include!` once, as the
//! module the generated stubs and servers name. It never panics on any input: every read and
//! write is checked and failures are return codes.

use core::marker::PhantomData;

/// A Mach return code (`kern_return_t`, `mach_msg_return_t` or a MIG error), with GNU Mach's
/// numbering.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ReturnCode(pub i32);

impl ReturnCode {
    /// `KERN_SUCCESS`.
    pub const SUCCESS: ReturnCode = ReturnCode(0);
    /// `KERN_INVALID_ARGUMENT`.
    pub const KERN_INVALID_ARGUMENT: ReturnCode = ReturnCode(4);
    /// `KERN_FAILURE`.
    pub const KERN_FAILURE: ReturnCode = ReturnCode(5);
    /// `MIG_TYPE_ERROR`: a reply's types or size are wrong.
    pub const MIG_TYPE_ERROR: ReturnCode = ReturnCode(-300);
    /// `MIG_REPLY_MISMATCH`: the reply's id does not match the request.
    pub const MIG_REPLY_MISMATCH: ReturnCode = ReturnCode(-301);
    /// `MIG_REMOTE_ERROR`.
    pub const MIG_REMOTE_ERROR: ReturnCode = ReturnCode(-302);
    /// `MIG_BAD_ID`: the server does not know the request's id.
    pub const MIG_BAD_ID: ReturnCode = ReturnCode(-303);
    /// `MIG_BAD_ARGUMENTS`: the request's types or size are wrong.
    pub const MIG_BAD_ARGUMENTS: ReturnCode = ReturnCode(-304);
    /// `MIG_NO_REPLY`: the server function will reply later (or never).
    pub const MIG_NO_REPLY: ReturnCode = ReturnCode(-305);
    /// `MIG_EXCEPTION`.
    pub const MIG_EXCEPTION: ReturnCode = ReturnCode(-306);
    /// `MIG_ARRAY_TOO_LARGE`: an array does not fit the caller's buffer or the message.
    pub const MIG_ARRAY_TOO_LARGE: ReturnCode = ReturnCode(-307);
    /// `MIG_SERVER_DIED`: a send-once notification came back instead of the reply.
    pub const MIG_SERVER_DIED: ReturnCode = ReturnCode(-308);
    /// `MIG_DESTROY_REQUEST`.
    pub const MIG_DESTROY_REQUEST: ReturnCode = ReturnCode(-309);
}

/// A port name in a task's name space (or, for code that gives it that meaning, another
/// 32-bit handle for a port right). Inline port rights occupy an 8-byte slot in LP64
/// messages; the name is its low 32 bits.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PortName(pub u32);

impl PortName {
    /// `MACH_PORT_NULL`.
    pub const NULL: PortName = PortName(0);
}

/// A region of out-of-line data: its address in the sender's or receiver's address space and
/// its number of elements (of the size the type descriptor gives; port names are 32-bit).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Ool {
    /// Address of the first element.
    pub address: u64,
    /// Number of elements.
    pub count: u32,
}

/// An indefinite array (`array[] of`) as a server receives it: inline in the message, or
/// out-of-line when the sender had more than fits inline.
#[derive(Clone, Copy, Debug)]
pub enum Indefinite<'a, E: Element> {
    /// The elements are in the message.
    Inline(ArrayRef<'a, E>),
    /// The elements are out-of-line.
    OutOfLine(Ool),
}

/// An indefinite array as a client stub received it: copied into the caller's buffer, or
/// out-of-line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Received {
    /// This many elements were copied into the caller's buffer.
    Inline(u32),
    /// The elements are out-of-line.
    OutOfLine(Ool),
}

/// `MACH_MSG_TYPE_BOOLEAN`.
pub const MACH_MSG_TYPE_BOOLEAN: u8 = 0;
/// `MACH_MSG_TYPE_INTEGER_16`.
pub const MACH_MSG_TYPE_INTEGER_16: u8 = 1;
/// `MACH_MSG_TYPE_INTEGER_32`.
pub const MACH_MSG_TYPE_INTEGER_32: u8 = 2;
/// `MACH_MSG_TYPE_CHAR`.
pub const MACH_MSG_TYPE_CHAR: u8 = 8;
/// `MACH_MSG_TYPE_BYTE`.
pub const MACH_MSG_TYPE_BYTE: u8 = 9;
/// `MACH_MSG_TYPE_INTEGER_64`.
pub const MACH_MSG_TYPE_INTEGER_64: u8 = 11;
/// `MACH_MSG_TYPE_STRING`.
pub const MACH_MSG_TYPE_STRING: u8 = 12;
/// `MACH_MSG_TYPE_PORT_NAME`.
pub const MACH_MSG_TYPE_PORT_NAME: u8 = 15;
/// `MACH_MSG_TYPE_MOVE_RECEIVE` (also `PORT_RECEIVE` as received).
pub const MACH_MSG_TYPE_MOVE_RECEIVE: u8 = 16;
/// `MACH_MSG_TYPE_MOVE_SEND` (also `PORT_SEND` as received).
pub const MACH_MSG_TYPE_MOVE_SEND: u8 = 17;
/// `MACH_MSG_TYPE_MOVE_SEND_ONCE` (also `PORT_SEND_ONCE` as received).
pub const MACH_MSG_TYPE_MOVE_SEND_ONCE: u8 = 18;
/// `MACH_MSG_TYPE_COPY_SEND`.
pub const MACH_MSG_TYPE_COPY_SEND: u8 = 19;
/// `MACH_MSG_TYPE_MAKE_SEND`.
pub const MACH_MSG_TYPE_MAKE_SEND: u8 = 20;
/// `MACH_MSG_TYPE_MAKE_SEND_ONCE`.
pub const MACH_MSG_TYPE_MAKE_SEND_ONCE: u8 = 21;

/// True for the type names of port rights (16 to 21).
pub const fn is_port_right(name: u8) -> bool {
    name >= MACH_MSG_TYPE_MOVE_RECEIVE && name <= MACH_MSG_TYPE_MAKE_SEND_ONCE
}

/// The right a receiver gets for a right sent with disposition `name` (`COPY_SEND` and
/// `MAKE_SEND` arrive as `PORT_SEND`, `MAKE_SEND_ONCE` as `PORT_SEND_ONCE`).
pub const fn received_right(name: u8) -> u8 {
    match name {
        MACH_MSG_TYPE_COPY_SEND | MACH_MSG_TYPE_MAKE_SEND => MACH_MSG_TYPE_MOVE_SEND,
        MACH_MSG_TYPE_MAKE_SEND_ONCE => MACH_MSG_TYPE_MOVE_SEND_ONCE,
        other => other,
    }
}

/// The "complex" bit of `msgh_bits`: the body carries port rights or out-of-line data.
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

/// `MACH_NOTIFY_SEND_ONCE`: what arrives instead of a reply when the server died.
pub const MACH_NOTIFY_SEND_ONCE: i32 = 71;

/// Size of `mach_msg_header_t`.
pub const HEADER_SIZE: usize = 32;
/// Size of a type descriptor (short and long form alike on LP64).
pub const DESC_SIZE: usize = 8;
/// Size of a reply that carries only a return code.
pub const ERROR_REPLY_SIZE: usize = 48;

/// Rounds `n` up to a multiple of 8, or `None` on overflow.
pub const fn round8(n: usize) -> Option<usize> {
    match n.checked_add(7) {
        Some(m) => Some(m & !7),
        None => None,
    }
}

/// A message header (`mach_msg_header_t`, LP64: port fields are 8-byte slots).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Header {
    /// `msgh_bits`.
    pub bits: u32,
    /// `msgh_size`.
    pub size: u32,
    /// `msgh_remote_port`: the destination when sending, the reply port when received.
    pub remote_port: u64,
    /// `msgh_local_port`: the reply port when sending, the destination when received.
    pub local_port: u64,
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
            remote_port: u64_at(msg, 8)?,
            local_port: u64_at(msg, 16)?,
            seqno: u32_at(msg, 24)?,
            id: i32::from_le_bytes(u32_at(msg, 28)?.to_le_bytes()),
        })
    }

    /// Writes the header at the start of `msg`; false if `msg` is too short.
    pub fn write(&self, msg: &mut [u8]) -> bool {
        let Some(out) = msg.get_mut(..HEADER_SIZE) else {
            return false;
        };
        out[0..4].copy_from_slice(&self.bits.to_le_bytes());
        out[4..8].copy_from_slice(&self.size.to_le_bytes());
        out[8..16].copy_from_slice(&self.remote_port.to_le_bytes());
        out[16..24].copy_from_slice(&self.local_port.to_le_bytes());
        out[24..28].copy_from_slice(&self.seqno.to_le_bytes());
        out[28..32].copy_from_slice(&self.id.to_le_bytes());
        true
    }

    /// The port a received message was sent to (`msgh_local_port` after receipt).
    pub fn request_port(&self) -> PortName {
        PortName(self.local_port as u32)
    }

    /// The reply port of a received message (`msgh_remote_port` after receipt).
    pub fn reply_port(&self) -> PortName {
        PortName(self.remote_port as u32)
    }
}

fn u32_at(msg: &[u8], at: usize) -> Option<u32> {
    let b = msg.get(at..at.checked_add(4)?)?;
    Some(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
}

fn u64_at(msg: &[u8], at: usize) -> Option<u64> {
    let lo = u32_at(msg, at)?;
    let hi = u32_at(msg, at.checked_add(4)?)?;
    Some(u64::from(lo) | u64::from(hi) << 32)
}

/// A type descriptor (`mach_msg_type_t`, LP64): first word `name:8 size:16 unused:5 inline:1
/// longform:1 deallocate:1`, second word `number`.
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

    /// Bytes the data takes in the message, padding included: the data rounded up to 8 bytes
    /// when inline, an 8-byte pointer when out-of-line. `None` if absurdly large.
    pub fn data_len(&self) -> Option<usize> {
        if self.inline {
            let bits = (self.number as usize).checked_mul(self.size as usize)?;
            round8(bits.div_ceil(8))
        } else {
            Some(8)
        }
    }
}

/// The element count a received descriptor must have.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Count {
    /// Exactly this many (fixed-size data).
    Exactly(u32),
    /// At most this many (variable arrays).
    AtMost(u32),
}

/// What a received descriptor must look like; the deallocate bit is never checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Expect {
    /// `msgt_name`, unless polymorphic.
    pub name: Option<u8>,
    /// `msgt_size`.
    pub size: u16,
    /// `msgt_number`.
    pub count: Count,
    /// `msgt_inline`, unless it may be either.
    pub inline: Option<bool>,
    /// `msgt_longform`.
    pub longform: bool,
}

impl Expect {
    /// True if `d` matches.
    pub fn check(&self, d: &TypeDesc) -> bool {
        self.name.is_none_or(|n| n == d.name)
            && self.size == d.size
            && self.inline.is_none_or(|i| i == d.inline)
            && self.longform == d.longform
            && match self.count {
                Count::Exactly(n) => d.number == n,
                Count::AtMost(n) => d.number <= n,
            }
    }
}

/// The descriptor of a return code or count: one inline 32-bit integer.
pub const INT32_DESC: TypeDesc = TypeDesc {
    name: MACH_MSG_TYPE_INTEGER_32,
    size: 32,
    number: 1,
    inline: true,
    longform: false,
    deallocate: false,
};

/// What the descriptor of a return code or count must look like.
pub const INT32_EXPECT: Expect = Expect {
    name: Some(MACH_MSG_TYPE_INTEGER_32),
    size: 32,
    count: Count::Exactly(1),
    inline: Some(true),
    longform: false,
};

/// A value that travels in messages, little-endian, in `SIZE` bytes.
pub trait Element: Copy + Default + 'static {
    /// Bytes per element in the message.
    const SIZE: usize;
    /// Reads from `bytes` (`SIZE` bytes; anything shorter reads as the default value).
    fn load(bytes: &[u8]) -> Self;
    /// Writes into `out` (`SIZE` bytes; anything shorter is left alone).
    fn store(self, out: &mut [u8]);
}

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
    )*};
}

element_int!(u8, i8, u16, i16, u32, i32, u64, i64);

impl Element for PortName {
    const SIZE: usize = 8;
    fn load(bytes: &[u8]) -> Self {
        PortName(u64::load(bytes) as u32)
    }
    fn store(self, out: &mut [u8]) {
        u64::from(self.0).store(out);
    }
}

/// A read-only view of an array inside a received message.
#[derive(Clone, Copy, Debug)]
pub struct ArrayRef<'a, E: Element> {
    bytes: &'a [u8],
    _element: PhantomData<E>,
}

impl<'a, E: Element> ArrayRef<'a, E> {
    /// A view of `bytes` as elements (a trailing partial element is ignored).
    pub fn new(bytes: &'a [u8]) -> Self {
        let whole = bytes.len() - bytes.len() % E::SIZE.max(1);
        ArrayRef {
            bytes: bytes.get(..whole).unwrap_or(&[]),
            _element: PhantomData,
        }
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        self.bytes.len() / E::SIZE.max(1)
    }

    /// True if there are none.
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// Element `i`.
    pub fn get(&self, i: usize) -> Option<E> {
        let start = i.checked_mul(E::SIZE)?;
        let b = self.bytes.get(start..start.checked_add(E::SIZE)?)?;
        Some(E::load(b))
    }

    /// The elements in order.
    pub fn iter(&self) -> impl Iterator<Item = E> + 'a {
        self.bytes.chunks_exact(E::SIZE.max(1)).map(E::load)
    }

    /// Copies as many elements as fit into `out`; returns how many.
    pub fn copy_to(&self, out: &mut [E]) -> usize {
        let mut n = 0;
        for (slot, v) in out.iter_mut().zip(self.iter()) {
            *slot = v;
            n += 1;
        }
        n
    }

    /// The raw bytes (for byte arrays and strings).
    pub fn as_bytes(&self) -> &'a [u8] {
        self.bytes
    }
}

/// A server's output array, written straight into the reply message; its length when the
/// server function returns is the count sent.
#[derive(Debug)]
pub struct ArrayOut<'a, E: Element> {
    bytes: &'a mut [u8],
    len: usize,
    cap: usize,
    _element: PhantomData<E>,
}

impl<'a, E: Element> ArrayOut<'a, E> {
    /// An empty array of at most `cap` elements stored in `bytes`.
    pub fn new(bytes: &'a mut [u8], cap: usize) -> Self {
        let cap = cap.min(bytes.len() / E::SIZE.max(1));
        ArrayOut {
            bytes,
            len: 0,
            cap,
            _element: PhantomData,
        }
    }

    /// How many elements fit (the caller's buffer size, for `CountInOut` arrays).
    pub fn capacity(&self) -> usize {
        self.cap
    }

    /// How many elements are stored.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True if none are.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Appends `v`; `MIG_ARRAY_TOO_LARGE` if full.
    pub fn push(&mut self, v: E) -> Result<(), ReturnCode> {
        if self.len >= self.cap {
            return Err(ReturnCode::MIG_ARRAY_TOO_LARGE);
        }
        let start = self.len * E::SIZE;
        match self.bytes.get_mut(start..start + E::SIZE) {
            Some(slot) => {
                v.store(slot);
                self.len += 1;
                Ok(())
            }
            None => Err(ReturnCode::MIG_ARRAY_TOO_LARGE),
        }
    }

    /// Appends all of `values`, or none of them if they do not fit.
    pub fn extend_from_slice(&mut self, values: &[E]) -> Result<(), ReturnCode> {
        if values.len() > self.cap - self.len {
            return Err(ReturnCode::MIG_ARRAY_TOO_LARGE);
        }
        for v in values {
            self.push(*v)?;
        }
        Ok(())
    }

    /// Element `i`, if stored.
    pub fn get(&self, i: usize) -> Option<E> {
        if i >= self.len {
            return None;
        }
        self.bytes.get(i * E::SIZE..(i + 1) * E::SIZE).map(E::load)
    }

    /// Removes every element.
    pub fn clear(&mut self) {
        self.len = 0;
    }
}

/// Splits `buf` into the disjoint regions `spans` (offset, length), given in increasing order.
pub fn split_regions<const K: usize>(
    buf: &mut [u8],
    spans: [(usize, usize); K],
) -> Option<[&mut [u8]; K]> {
    let mut out: [&mut [u8]; K] = core::array::from_fn(|_| Default::default());
    let mut rest = buf;
    let mut base = 0usize;
    for (slot, (offset, len)) in out.iter_mut().zip(spans) {
        let (_, tail) = rest.split_at_mut_checked(offset.checked_sub(base)?)?;
        let (region, tail) = tail.split_at_mut_checked(len)?;
        *slot = region;
        rest = tail;
        base = offset.checked_add(len)?;
    }
    Some(out)
}

/// Writes a message body item by item; the header is written last by [`Encoder::finish`].
/// Writing past the end of the buffer is remembered and reported by `finish`.
#[derive(Debug)]
pub struct Encoder<'a> {
    buf: &'a mut [u8],
    pos: usize,
    overflow: bool,
}

impl<'a> Encoder<'a> {
    /// An encoder whose first item goes right after the header.
    pub fn new(buf: &'a mut [u8]) -> Self {
        Encoder {
            buf,
            pos: HEADER_SIZE,
            overflow: false,
        }
    }

    /// Where the next byte goes.
    pub fn pos(&self) -> usize {
        self.pos
    }

    fn write(&mut self, bytes_len: usize, f: impl FnOnce(&mut [u8])) {
        match self
            .pos
            .checked_add(bytes_len)
            .and_then(|end| self.buf.get_mut(self.pos..end))
        {
            Some(out) => {
                f(out);
                self.pos += bytes_len;
            }
            None => self.overflow = true,
        }
    }

    /// Zero-fills up to the next multiple of 8.
    pub fn end_item(&mut self) {
        let pad = self.pos.next_multiple_of(8) - self.pos;
        self.write(pad, |o| o.fill(0));
    }

    /// Starts an item: aligns and writes its descriptor.
    pub fn item(&mut self, d: TypeDesc) {
        self.end_item();
        let (w, n) = (d.word(), d.number);
        self.write(DESC_SIZE, |o| {
            w.store(o);
            n.store(&mut o[4..]);
        });
    }

    /// Writes one element.
    pub fn put<E: Element>(&mut self, v: E) {
        self.write(E::SIZE, |o| v.store(o));
    }

    /// Writes elements.
    pub fn put_slice<E: Element>(&mut self, values: &[E]) {
        for v in values {
            self.put(*v);
        }
    }

    /// Moves `len` bytes already in the buffer at `from` (not before the current position) to
    /// the current position: how servers' output arrays reach their final place.
    pub fn put_moved(&mut self, from: usize, len: usize) {
        let ok = from >= self.pos
            && from
                .checked_add(len)
                .is_some_and(|end| end <= self.buf.len());
        if ok {
            self.buf.copy_within(from..from + len, self.pos);
            self.pos += len;
        } else {
            self.overflow = true;
        }
    }

    /// Pads the last item, writes `header` with the final size and returns that size.
    pub fn finish(mut self, mut header: Header) -> Result<usize, ReturnCode> {
        self.end_item();
        header.size = u32::try_from(self.pos).map_err(|_| ReturnCode::MIG_ARRAY_TOO_LARGE)?;
        if self.overflow || !header.write(self.buf) {
            return Err(ReturnCode::MIG_ARRAY_TOO_LARGE);
        }
        Ok(self.pos)
    }
}

/// Reads a received message body item by item; every failure is the error code given at
/// creation (`MIG_BAD_ARGUMENTS` in servers, `MIG_TYPE_ERROR` in client stubs).
#[derive(Clone, Debug)]
pub struct Decoder<'a> {
    msg: &'a [u8],
    pos: usize,
    err: ReturnCode,
}

impl<'a> Decoder<'a> {
    /// A decoder for the first `size` bytes of `msg`, starting after the header.
    pub fn new(msg: &'a [u8], size: usize, err: ReturnCode) -> Result<Self, ReturnCode> {
        if size < HEADER_SIZE {
            return Err(err);
        }
        let msg = msg.get(..size).ok_or(err)?;
        Ok(Decoder {
            msg,
            pos: HEADER_SIZE,
            err,
        })
    }

    /// Skips the padding after an item.
    pub fn end_item(&mut self) -> Result<(), ReturnCode> {
        let next = self.pos.next_multiple_of(8);
        if next > self.msg.len() {
            return Err(self.err);
        }
        self.pos = next;
        Ok(())
    }

    /// Reads and checks the next descriptor; also checks that its data fits the message.
    pub fn item(&mut self, expect: &Expect) -> Result<TypeDesc, ReturnCode> {
        self.end_item()?;
        let d = TypeDesc::read(self.msg, self.pos).ok_or(self.err)?;
        if !expect.check(&d) {
            return Err(self.err);
        }
        self.pos += DESC_SIZE;
        let len = d.data_len().ok_or(self.err)?;
        if len > self.msg.len() - self.pos {
            return Err(self.err);
        }
        Ok(d)
    }

    fn take(&mut self, len: usize) -> Result<&'a [u8], ReturnCode> {
        let end = self.pos.checked_add(len).ok_or(self.err)?;
        let b = self.msg.get(self.pos..end).ok_or(self.err)?;
        self.pos = end;
        Ok(b)
    }

    /// Reads one element.
    pub fn get<E: Element>(&mut self) -> Result<E, ReturnCode> {
        Ok(E::load(self.take(E::SIZE)?))
    }

    /// A view of the next `n` elements.
    pub fn array<E: Element>(&mut self, n: usize) -> Result<ArrayRef<'a, E>, ReturnCode> {
        let len = n.checked_mul(E::SIZE).ok_or(self.err)?;
        Ok(ArrayRef::new(self.take(len)?))
    }

    /// Reads `out.len()` elements into `out`.
    pub fn read_into<E: Element>(&mut self, out: &mut [E]) -> Result<(), ReturnCode> {
        let a = self.array::<E>(out.len())?;
        a.copy_to(out);
        Ok(())
    }

    /// Checks that the whole message was read.
    pub fn finish(mut self) -> Result<(), ReturnCode> {
        self.end_item()?;
        if self.pos == self.msg.len() {
            Ok(())
        } else {
            Err(self.err)
        }
    }
}

/// Checks a reply's header, size and return code (as GNU MIG's client stubs do) and returns a
/// decoder positioned after the return code. A short reply carrying only an error code
/// returns that code. `complex` is the complex bit the reply must have, if fixed.
pub fn check_reply(
    buf: &[u8],
    reply_id: i32,
    min_size: usize,
    max_size: usize,
    complex: Option<bool>,
) -> Result<Decoder<'_>, ReturnCode> {
    let h = Header::read(buf).ok_or(ReturnCode::MIG_TYPE_ERROR)?;
    if h.id != reply_id {
        return Err(if h.id == MACH_NOTIFY_SEND_ONCE {
            ReturnCode::MIG_SERVER_DIED
        } else {
            ReturnCode::MIG_REPLY_MISMATCH
        });
    }
    let size = h.size as usize;
    let mut d = Decoder::new(buf, size, ReturnCode::MIG_TYPE_ERROR)?;
    d.item(&INT32_EXPECT)?;
    let code: i32 = d.get()?;
    d.end_item()?;
    let is_complex = h.bits & MACH_MSGH_BITS_COMPLEX != 0;
    let shape_ok = (min_size..=max_size).contains(&size) && complex.is_none_or(|c| c == is_complex);
    let error_reply = size == ERROR_REPLY_SIZE && !is_complex && code != 0;
    if !(shape_ok || error_reply) {
        return Err(ReturnCode::MIG_TYPE_ERROR);
    }
    if code != 0 {
        return Err(ReturnCode(code));
    }
    Ok(d)
}

/// Checks a request's size and complex bit (as GNU MIG's server stubs do) and returns a
/// decoder positioned at its first item.
pub fn check_request<'a>(
    msg: &'a [u8],
    h: &Header,
    min_size: usize,
    max_size: usize,
    complex: Option<bool>,
) -> Result<Decoder<'a>, ReturnCode> {
    let size = h.size as usize;
    let is_complex = h.bits & MACH_MSGH_BITS_COMPLEX != 0;
    if !(min_size..=max_size).contains(&size) || complex.is_some_and(|c| c != is_complex) {
        return Err(ReturnCode::MIG_BAD_ARGUMENTS);
    }
    Decoder::new(msg, size, ReturnCode::MIG_BAD_ARGUMENTS)
}

/// The header of the reply to `request`: back to its reply port, id + 100.
pub fn reply_header(request: &Header, complex: bool) -> Header {
    Header {
        bits: msgh_bits(msgh_bits_remote(request.bits), 0)
            | if complex { MACH_MSGH_BITS_COMPLEX } else { 0 },
        size: 0,
        remote_port: request.remote_port,
        local_port: 0,
        seqno: 0,
        id: request.id.wrapping_add(100),
    }
}

/// Writes the 48-byte reply that carries only `code`; returns its size (0 if `reply` is too
/// small).
pub fn error_reply(request: &Header, code: ReturnCode, reply: &mut [u8]) -> usize {
    let mut e = Encoder::new(reply);
    e.item(INT32_DESC);
    e.put(code.0);
    e.finish(reply_header(request, false)).unwrap_or(0)
}

/// What a server demux function did with a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Served {
    /// The id belongs to this subsystem (else a `MIG_BAD_ID` reply was prepared, so another
    /// demux function may be tried).
    pub handled: bool,
    /// Bytes of reply to send from the reply buffer; 0 means send nothing.
    pub reply_size: usize,
}

/// Turns a server stub's result into what to send: the reply, an error reply with the code,
/// or nothing (`MIG_NO_REPLY`, a simpleroutine, or no reply port to send to).
pub fn finish_served(
    request: &Header,
    result: Result<usize, ReturnCode>,
    oneway: bool,
    reply: &mut [u8],
) -> Served {
    let reply_size = match result {
        Ok(_) if oneway => 0,
        Ok(size) => size,
        Err(ReturnCode::MIG_NO_REPLY) => 0,
        Err(_) if request.remote_port == 0 => 0,
        Err(code) => error_reply(request, code, reply),
    };
    Served {
        handled: true,
        reply_size,
    }
}

/// The answer to a request whose id no routine of the subsystem has.
pub fn bad_id(request: &Header, reply: &mut [u8]) -> Served {
    let reply_size = if request.remote_port == 0 {
        0
    } else {
        error_reply(request, ReturnCode::MIG_BAD_ID, reply)
    };
    Served {
        handled: false,
        reply_size,
    }
}

/// Options of one call: `mach_msg` option bits and the receive timeout.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CallOptions {
    /// Extra `mach_msg` options (`msgoption`).
    pub option: i32,
    /// Receive timeout in milliseconds (`waittime`), if any.
    pub timeout: Option<u32>,
}

/// How client stubs reach a server: `mach_msg` traps in libmach, an in-process fake in tests.
pub trait Transport {
    /// The reply port to use for the next call (GNU MIG's `mig_get_reply_port`).
    fn reply_port(&mut self) -> PortName;

    /// Sends the request in `msg[..send_size]`, then receives the reply on `reply_port` into
    /// `msg` (whose length is the receive limit). The reply's size is in its header.
    fn rpc(
        &mut self,
        msg: &mut [u8],
        send_size: usize,
        reply_port: PortName,
        options: CallOptions,
    ) -> Result<(), ReturnCode>;

    /// Sends a message that has no reply (a simpleroutine's request).
    fn send(&mut self, msg: &[u8], options: CallOptions) -> Result<(), ReturnCode>;
}

/// A message buffer aligned for the kernel, `N` bytes long.
#[derive(Clone, Debug)]
#[repr(C, align(8))]
pub struct MsgBuf<const N: usize> {
    /// The bytes.
    pub bytes: [u8; N],
}

impl<const N: usize> MsgBuf<N> {
    /// A zeroed buffer.
    pub const fn new() -> Self {
        MsgBuf { bytes: [0; N] }
    }
}

impl<const N: usize> Default for MsgBuf<N> {
    fn default() -> Self {
        Self::new()
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

/// Walks the items of a typed message (for IPC code that must find port rights and
/// out-of-line regions). Stops at `msgh_size`; yields `MIG_TYPE_ERROR` once for a malformed
/// body and then ends.
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
    type Item = Result<ItemInfo, ReturnCode>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            self.failed = false;
            self.pos = usize::MAX;
            return Some(Err(ReturnCode::MIG_TYPE_ERROR));
        }
        if self.pos >= self.msg.len() {
            return None;
        }
        let parsed = TypeDesc::read(self.msg, self.pos).and_then(|desc| {
            let data_offset = self.pos + DESC_SIZE;
            let data_len = desc.data_len()?;
            let end = data_offset.checked_add(data_len)?;
            (end <= self.msg.len()).then_some((
                ItemInfo {
                    desc_offset: self.pos,
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
                Some(Err(ReturnCode::MIG_TYPE_ERROR))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn descriptor_words_match_gnu_mach() {
        let d = INT32_DESC;
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
    }

    #[test]
    fn encoder_and_decoder_round_trip() {
        let mut buf = [0xaau8; 80];
        let mut e = Encoder::new(&mut buf);
        e.item(INT32_DESC);
        e.put(-7i32);
        e.item(TypeDesc {
            name: MACH_MSG_TYPE_BYTE,
            size: 8,
            number: 3,
            inline: true,
            longform: false,
            deallocate: false,
        });
        e.put_slice(&[1u8, 2, 3]);
        let size = e
            .finish(Header {
                id: 5,
                ..Header::default()
            })
            .expect("fits");
        assert_eq!(size, 64);
        assert_eq!(&buf[44..48], &[0, 0, 0, 0], "padding is zeroed");
        let h = Header::read(&buf).expect("header");
        assert_eq!((h.size, h.id), (64, 5));
        let mut d = Decoder::new(&buf, size, ReturnCode::MIG_BAD_ARGUMENTS).expect("size");
        d.item(&INT32_EXPECT).expect("int");
        assert_eq!(d.get::<i32>(), Ok(-7));
        let t = d
            .item(&Expect {
                name: Some(MACH_MSG_TYPE_BYTE),
                size: 8,
                count: Count::AtMost(8),
                inline: Some(true),
                longform: false,
            })
            .expect("bytes");
        let a = d.array::<u8>(t.number as usize).expect("array");
        assert_eq!(a.as_bytes(), &[1, 2, 3]);
        assert_eq!(d.finish(), Ok(()));
        let found: Vec<usize> = items(&buf).map(|i| i.expect("item").desc_offset).collect();
        assert_eq!(found, [32, 48]);
    }

    #[test]
    fn overflow_and_short_input_are_errors() {
        let mut small = [0u8; 40];
        let mut e = Encoder::new(&mut small);
        e.item(INT32_DESC);
        e.put(1i32);
        assert_eq!(
            e.finish(Header::default()),
            Err(ReturnCode::MIG_ARRAY_TOO_LARGE)
        );
        assert!(Decoder::new(&[0u8; 8], 32, ReturnCode::MIG_TYPE_ERROR).is_err());
        assert!(check_reply(&[1, 2, 3], 100, 48, 48, None).is_err());
        let mut out = [0u8; 16];
        let mut w = ArrayOut::<u32>::new(&mut out, 10);
        assert_eq!(w.capacity(), 4);
        assert_eq!(
            w.extend_from_slice(&[1, 2, 3, 4, 5]),
            Err(ReturnCode::MIG_ARRAY_TOO_LARGE)
        );
        assert_eq!(w.extend_from_slice(&[1, 2, 3, 4]), Ok(()));
        assert_eq!(w.push(9), Err(ReturnCode::MIG_ARRAY_TOO_LARGE));
        let mut region_buf = [0u8; 32];
        let [a, b] = split_regions(&mut region_buf, [(4, 4), (16, 8)]).expect("split");
        assert_eq!((a.len(), b.len()), (4, 8));
        assert!(split_regions(&mut [0u8; 8], [(4, 8)]).is_none());
    }
}
