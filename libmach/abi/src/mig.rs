//! The run-time support of the code mig-rs generates (its "runtime"): bounds-checked encoding
//! and decoding of message bodies, the checks GNU MIG's stubs make on requests and replies,
//! array views and output buffers for servers, fixed-size C strings, the [`Transport`] trait
//! client stubs send through, and re-exports of every ABI type generated code names, so that
//! generated code needs only `use mach_abi::mig as mig_rt;`.
//!
//! Nothing here panics on any input: every read and write is checked, and failures are
//! [`KernReturn`] codes (`MIG_BAD_ARGUMENTS` in servers, `MIG_TYPE_ERROR` in client stubs).
//! It is `no_std` and allocation-free, for the kernel as much as for user code.

use core::ffi::CStr;
use core::fmt;
use core::marker::PhantomData;

pub use crate::kern_return::KernReturn;
pub use crate::message::*;
pub use crate::port::{PortName, PortRight, PortSlot};
pub use crate::rights::*;

/// A region of out-of-line data as server code sees it: an address (in a user server, in its
/// address space; in the kernel, whatever handle the kernel's IPC puts there) and a number of
/// elements (of the size the descriptor gives; port names are 32-bit).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Ool {
    /// Address (or kernel handle) of the first element.
    pub address: u64,
    /// Number of elements.
    pub count: u32,
}

/// An indefinite array (`array[] of`) as a server receives it: inline in the message, or
/// out-of-line when the sender had more than fits inline. An out-of-line region belongs to
/// the server routine from then on.
#[derive(Clone, Copy, Debug)]
pub enum Indefinite<'a, E: Element> {
    /// The elements are in the message.
    Inline(ArrayRef<'a, E>),
    /// The elements are out-of-line.
    OutOfLine(Ool),
}

/// An indefinite array as a client stub received it: copied into the caller's buffer, or
/// out-of-line (owned, unmapped when dropped).
#[derive(Debug, PartialEq, Eq)]
pub enum Received<S: Space, E: Element> {
    /// This many elements were copied into the caller's buffer.
    Inline(u32),
    /// The elements are out-of-line.
    OutOfLine(OolData<S, E>),
}

/// An indefinite array of port rights as a client stub received it: names copied into the
/// caller's buffer (the caller now owns the rights they carry), or an out-of-line array.
#[derive(Debug, PartialEq, Eq)]
pub enum ReceivedPorts<S: Space> {
    /// This many names were copied into the caller's buffer.
    Inline(u32),
    /// The names are out-of-line.
    OutOfLine(OolPorts<S>),
}

/// Out-of-line data or an indefinite array as a client stub read it from a reply, before it
/// takes ownership of anything (which it does only once the whole reply checked out).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RawItem {
    /// The elements were inline (copied to the caller's buffer).
    pub inline: bool,
    /// Address of out-of-line data.
    pub address: u64,
    /// Number of elements.
    pub count: u32,
    /// The type name received.
    pub name: u8,
}

/// A fixed-size buffer holding a C string (`c_string[N]`, `(MACH_MSG_TYPE_STRING, N*8)`):
/// at most `N - 1` bytes and a NUL.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct CStrBuf<const N: usize>([u8; N]);

impl<const N: usize> CStrBuf<N> {
    /// The empty string.
    pub const fn new() -> Self {
        Self([0; N])
    }

    /// A copy of `bytes` (no NUL among them); `MIG_ARRAY_TOO_LARGE` if they do not fit with
    /// the NUL, `MIG_BAD_ARGUMENTS` if they hold a NUL.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, KernReturn> {
        if bytes.contains(&0) {
            return Err(KernReturn::MigBadArguments);
        }
        if bytes.len() >= N {
            return Err(KernReturn::MigArrayTooLarge);
        }
        let mut out = [0; N];
        out[..bytes.len()].copy_from_slice(bytes);
        Ok(Self(out))
    }

    /// A copy of `s`; `MIG_ARRAY_TOO_LARGE` if it does not fit with its NUL.
    pub fn from_c_str(s: &CStr) -> Result<Self, KernReturn> {
        Self::from_bytes(s.to_bytes())
    }

    /// A copy of `s`; errors as [`from_bytes`](Self::from_bytes).
    #[allow(clippy::should_implement_trait)] // Fallible with a Mach code, unlike FromStr.
    pub fn from_str(s: &str) -> Result<Self, KernReturn> {
        Self::from_bytes(s.as_bytes())
    }

    /// Builds the string from message bytes: up to `N` bytes, stopping at the first NUL; the
    /// last byte is always made a NUL (as GNU MIG's servers do).
    pub fn from_message(bytes: &[u8]) -> Self {
        let mut out = [0; N];
        let n = bytes.len().min(N.saturating_sub(1));
        out[..n].copy_from_slice(&bytes[..n]);
        if let Some(end) = out.iter().position(|&b| b == 0) {
            out[end..].fill(0);
        }
        Self(out)
    }

    /// The string.
    pub fn as_c_str(&self) -> &CStr {
        CStr::from_bytes_until_nul(&self.0).unwrap_or(c"")
    }

    /// The bytes before the NUL.
    pub fn as_bytes(&self) -> &[u8] {
        self.as_c_str().to_bytes()
    }

    /// The string, if it is UTF-8.
    pub fn to_str(&self) -> Option<&str> {
        self.as_c_str().to_str().ok()
    }

    /// All `N` bytes, as they travel.
    pub fn raw(&self) -> &[u8; N] {
        &self.0
    }
}

impl<const N: usize> Default for CStrBuf<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> fmt::Debug for CStrBuf<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_c_str(), f)
    }
}

/// Bytes a string takes in a message: the string and its NUL, `MIG_ARRAY_TOO_LARGE` if more
/// than `max`.
pub fn c_str_len(s: &CStr, max: usize) -> Result<usize, KernReturn> {
    let n = s.to_bytes().len() + 1;
    if n > max {
        Err(KernReturn::MigArrayTooLarge)
    } else {
        Ok(n)
    }
}

/// A read-only view of an array inside a received message.
#[derive(Clone, Copy)]
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

impl<E: Element + fmt::Debug> fmt::Debug for ArrayRef<'_, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

/// A server's output array, written straight into the reply message; its length when the
/// server routine returns is the count sent.
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
    pub fn push(&mut self, v: E) -> Result<(), KernReturn> {
        if self.len >= self.cap {
            return Err(KernReturn::MigArrayTooLarge);
        }
        let start = self.len * E::SIZE;
        match self.bytes.get_mut(start..start + E::SIZE) {
            Some(slot) => {
                v.store(slot);
                self.len += 1;
                Ok(())
            }
            None => Err(KernReturn::MigArrayTooLarge),
        }
    }

    /// Appends all of `values`, or none of them if they do not fit.
    pub fn extend_from_slice(&mut self, values: &[E]) -> Result<(), KernReturn> {
        if values.len() > self.cap - self.len {
            return Err(KernReturn::MigArrayTooLarge);
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

/// A server's output for an indefinite array (`array[] of`): elements written inline into the
/// reply (up to the inline limit and the caller's count), or a region the server hands over
/// with [`set_out_of_line`](Self::set_out_of_line), sent out-of-line as GNU MIG does when a
/// server returns more than fits inline.
#[derive(Debug)]
pub struct IndefiniteOut<'a, E: Element> {
    inline: ArrayOut<'a, E>,
    ool: Option<Ool>,
}

impl<'a, E: Element> IndefiniteOut<'a, E> {
    /// An empty output of at most `cap` inline elements stored in `bytes`.
    pub fn new(bytes: &'a mut [u8], cap: usize) -> Self {
        Self {
            inline: ArrayOut::new(bytes, cap),
            ool: None,
        }
    }

    /// How many elements fit inline.
    pub fn capacity(&self) -> usize {
        self.inline.capacity()
    }

    /// Elements stored inline, or in the out-of-line region if one was set.
    pub fn len(&self) -> usize {
        match self.ool {
            Some(o) => o.count as usize,
            None => self.inline.len(),
        }
    }

    /// True if there are no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Appends `v` inline; `MIG_ARRAY_TOO_LARGE` if the inline part is full.
    pub fn push(&mut self, v: E) -> Result<(), KernReturn> {
        self.inline.push(v)
    }

    /// Appends `values` inline, all or none.
    pub fn extend_from_slice(&mut self, values: &[E]) -> Result<(), KernReturn> {
        self.inline.extend_from_slice(values)
    }

    /// Sends `region` out-of-line instead of the inline elements. The region is the server's
    /// to give: the reply's `deallocate` bit follows the argument's `Dealloc` flag.
    pub fn set_out_of_line(&mut self, region: Ool) {
        self.ool = Some(region);
    }

    /// The out-of-line region, if one was set.
    pub fn out_of_line(&self) -> Option<Ool> {
        self.ool
    }

    /// The inline elements.
    pub fn inline(&self) -> &ArrayOut<'a, E> {
        &self.inline
    }

    /// The inline elements, to change.
    pub fn inline_mut(&mut self) -> &mut ArrayOut<'a, E> {
        &mut self.inline
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

    fn write(&mut self, len: usize, f: impl FnOnce(&mut [u8])) {
        match self
            .pos
            .checked_add(len)
            .and_then(|end| self.buf.get_mut(self.pos..end))
        {
            Some(out) => {
                f(out);
                self.pos += len;
            }
            None => self.overflow = true,
        }
    }

    /// Zero-fills up to the next multiple of 8.
    pub fn end_item(&mut self) {
        let pad = self.pos.next_multiple_of(ALIGN) - self.pos;
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

    /// Writes raw bytes.
    pub fn put_bytes(&mut self, bytes: &[u8]) {
        self.write(bytes.len(), |o| o.copy_from_slice(bytes));
    }

    /// Writes `n` zero bytes.
    pub fn put_zeros(&mut self, n: usize) {
        self.write(n, |o| o.fill(0));
    }

    /// Writes the bytes of `s` and zeros up to `n` bytes in all (`s` must be shorter).
    pub fn put_c_str(&mut self, s: &[u8], n: usize) {
        match n.checked_sub(s.len()) {
            Some(rest) => {
                self.put_bytes(s);
                self.put_zeros(rest);
            }
            None => self.overflow = true,
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

    /// Pads the last item, writes `header` with the final size and returns that size
    /// (`MIG_ARRAY_TOO_LARGE` if the message did not fit).
    pub fn finish(mut self, mut header: Header) -> Result<usize, KernReturn> {
        self.end_item();
        header.size = u32::try_from(self.pos).map_err(|_| KernReturn::MigArrayTooLarge)?;
        if self.overflow || !header.write(self.buf) {
            return Err(KernReturn::MigArrayTooLarge);
        }
        Ok(self.pos)
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
    /// `msgt_size` when inline.
    pub size: u16,
    /// `msgt_size` when out-of-line (32 for arrays of port rights, whose names are 32-bit).
    pub ool_size: u16,
    /// `msgt_number` (checked for inline data only).
    pub count: Count,
    /// `msgt_inline`, unless it may be either.
    pub inline: Option<bool>,
    /// `msgt_longform`.
    pub longform: bool,
}

impl Expect {
    /// True if `d` matches.
    pub fn check(&self, d: &TypeDesc) -> bool {
        let size = if d.inline { self.size } else { self.ool_size };
        self.name.is_none_or(|n| n == d.name)
            && size == d.size
            && self.inline.is_none_or(|i| i == d.inline)
            && self.longform == d.longform
            && (!d.inline
                || match self.count {
                    Count::Exactly(n) => d.number == n,
                    Count::AtMost(n) => d.number <= n,
                })
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
    ool_size: 32,
    count: Count::Exactly(1),
    inline: Some(true),
    longform: false,
};

/// Reads a received message body item by item; every failure is the error code given at
/// creation (`MIG_BAD_ARGUMENTS` in servers, `MIG_TYPE_ERROR` in client stubs).
#[derive(Clone, Debug)]
pub struct Decoder<'a> {
    msg: &'a [u8],
    pos: usize,
    err: KernReturn,
    complex: bool,
}

impl<'a> Decoder<'a> {
    /// A decoder for the first `size` bytes of `msg`, starting after the header. Unless
    /// `complex` (the header's complex bit) is set, an item that carries port rights or
    /// out-of-line data is an error: a simple message carries neither.
    pub fn new(
        msg: &'a [u8],
        size: usize,
        complex: bool,
        err: KernReturn,
    ) -> Result<Self, KernReturn> {
        if size < HEADER_SIZE {
            return Err(err);
        }
        let msg = msg.get(..size).ok_or(err)?;
        Ok(Decoder {
            msg,
            pos: HEADER_SIZE,
            err,
            complex,
        })
    }

    /// The error this decoder reports.
    pub fn error(&self) -> KernReturn {
        self.err
    }

    /// Skips the padding after an item.
    pub fn end_item(&mut self) -> Result<(), KernReturn> {
        let next = self.pos.next_multiple_of(ALIGN);
        if next > self.msg.len() {
            return Err(self.err);
        }
        self.pos = next;
        Ok(())
    }

    /// Reads and checks the next descriptor; also checks that its data fits the message.
    pub fn item(&mut self, expect: &Expect) -> Result<TypeDesc, KernReturn> {
        self.end_item()?;
        let d = TypeDesc::read(self.msg, self.pos).ok_or(self.err)?;
        if !expect.check(&d) || (!self.complex && (!d.inline || is_port_right(d.name))) {
            return Err(self.err);
        }
        self.pos += DESC_SIZE;
        let len = d.data_len().ok_or(self.err)?;
        if len > self.msg.len() - self.pos {
            return Err(self.err);
        }
        Ok(d)
    }

    fn take(&mut self, len: usize) -> Result<&'a [u8], KernReturn> {
        let end = self.pos.checked_add(len).ok_or(self.err)?;
        let b = self.msg.get(self.pos..end).ok_or(self.err)?;
        self.pos = end;
        Ok(b)
    }

    /// Reads one element.
    pub fn get<E: Element>(&mut self) -> Result<E, KernReturn> {
        Ok(E::load(self.take(E::SIZE)?))
    }

    /// Reads a port slot that must hold a user-space name (the high half zero).
    pub fn name_slot(&mut self) -> Result<PortName, KernReturn> {
        self.get::<PortSlot>()?.name().ok_or(self.err)
    }

    /// A view of the next `n` elements.
    pub fn array<E: Element>(&mut self, n: usize) -> Result<ArrayRef<'a, E>, KernReturn> {
        let len = n.checked_mul(E::SIZE).ok_or(self.err)?;
        Ok(ArrayRef::new(self.take(len)?))
    }

    /// The next `n` bytes.
    pub fn bytes(&mut self, n: usize) -> Result<&'a [u8], KernReturn> {
        self.take(n)
    }

    /// Reads `out.len()` elements into `out`.
    pub fn read_into<E: Element>(&mut self, out: &mut [E]) -> Result<(), KernReturn> {
        let a = self.array::<E>(out.len())?;
        a.copy_to(out);
        Ok(())
    }

    /// Reads `n` inline port slots as names into `out` (which must hold them).
    pub fn names_into(&mut self, n: usize, out: &mut [PortName]) -> Result<(), KernReturn> {
        let slots = self.array::<PortSlot>(n)?;
        let out = out.get_mut(..n).ok_or(KernReturn::MigArrayTooLarge)?;
        for (o, s) in out.iter_mut().zip(slots.iter()) {
            *o = s.name().ok_or(self.err)?;
        }
        Ok(())
    }

    /// Checks that the whole message was read.
    pub fn finish(mut self) -> Result<(), KernReturn> {
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
) -> Result<Decoder<'_>, KernReturn> {
    let h = Header::read(buf).ok_or(KernReturn::MigTypeError)?;
    if h.id != reply_id {
        return Err(if h.id == notify::SEND_ONCE {
            KernReturn::MigServerDied
        } else {
            KernReturn::MigReplyMismatch
        });
    }
    let size = h.size as usize;
    let mut d = Decoder::new(buf, size, h.is_complex(), KernReturn::MigTypeError)?;
    d.item(&INT32_EXPECT)?;
    let code: i32 = d.get()?;
    d.end_item()?;
    let shape_ok =
        (min_size..=max_size).contains(&size) && complex.is_none_or(|c| c == h.is_complex());
    let error_reply = size == ERROR_REPLY_SIZE && !h.is_complex() && code != 0;
    if !(shape_ok || error_reply) {
        return Err(KernReturn::MigTypeError);
    }
    if code != 0 {
        return Err(KernReturn::from(code));
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
) -> Result<Decoder<'a>, KernReturn> {
    let size = h.size as usize;
    if !(min_size..=max_size).contains(&size) || complex.is_some_and(|c| c != h.is_complex()) {
        return Err(KernReturn::MigBadArguments);
    }
    Decoder::new(msg, size, h.is_complex(), KernReturn::MigBadArguments)
}

/// The header of the reply to `request`: back to its reply port (all 64 bits of the slot),
/// id + 100, the reply right's disposition taken from the request.
pub fn reply_header(request: &Header, complex: bool) -> Header {
    Header {
        bits: msgh_bits(msgh_bits_remote(request.bits), 0)
            | if complex { MACH_MSGH_BITS_COMPLEX } else { 0 },
        size: 0,
        remote_port: request.remote_port,
        local_port: PortSlot::NULL,
        seqno: 0,
        id: request.id.wrapping_add(100),
    }
}

/// Writes the 48-byte reply that carries only `code`; returns its size (0 if `reply` is too
/// small).
pub fn error_reply(request: &Header, code: KernReturn, reply: &mut [u8]) -> usize {
    let mut e = Encoder::new(reply);
    e.item(INT32_DESC);
    e.put(code.code());
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
    /// The routine's return code (`KERN_SUCCESS`, `MIG_NO_REPLY`, or an error). On an error
    /// the server took nothing from the request: whoever received it destroys it (its rights
    /// and out-of-line memory), as `mach_msg_server` does.
    pub code: KernReturn,
}

/// Turns a server stub's result into what to send: the reply, an error reply with the code,
/// or nothing (`MIG_NO_REPLY`, a simpleroutine, or no reply port to send to).
pub fn finish_served(
    request: &Header,
    result: Result<usize, KernReturn>,
    oneway: bool,
    reply: &mut [u8],
) -> Served {
    let (reply_size, code) = match result {
        Ok(_) if oneway => (0, KernReturn::Success),
        Ok(size) => (size, KernReturn::Success),
        Err(KernReturn::MigNoReply) => (0, KernReturn::MigNoReply),
        Err(code) if oneway || !request.remote_port.is_valid() => (0, code),
        Err(code) => (error_reply(request, code, reply), code),
    };
    Served {
        handled: true,
        reply_size,
        code,
    }
}

/// The answer to a request whose id no routine of the subsystem has.
pub fn bad_id(request: &Header, reply: &mut [u8]) -> Served {
    let reply_size = if request.remote_port.is_valid() {
        error_reply(request, KernReturn::MigBadId, reply)
    } else {
        0
    };
    Served {
        handled: false,
        reply_size,
        code: KernReturn::MigBadId,
    }
}

/// What an explicitly unimplemented server routine answers: `MIG_BAD_ID`, as GNU Mach answers
/// a request no routine serves.
pub fn not_implemented<T>() -> Result<T, KernReturn> {
    Err(KernReturn::MigBadId)
}

/// Options of one call: extra `mach_msg` option bits and the receive timeout.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CallOptions {
    /// Extra `mach_msg` options (`msgoption`).
    pub option: u32,
    /// Receive timeout in milliseconds (`waittime`), if any.
    pub timeout: Option<u32>,
}

/// How client stubs reach a server: `mach_msg` in libmach, an in-process fake in tests.
///
/// # Safety
///
/// A reply the transport leaves in the buffer must be what the kernel would deliver to the
/// caller: every out-of-line address in it is readable memory newly mapped into the caller's
/// address space, and every port right in it is the caller's. Client stubs take ownership of
/// both (through [`Transport::Space`]), read the memory and release it when dropped.
pub unsafe trait Transport {
    /// Where rights and memory the stubs return release themselves.
    type Space: Space;

    /// The reply port for the next call (GNU MIG's `mig_get_reply_port`).
    fn reply_port(&mut self) -> PortName;

    /// Sends the request in `msg[..send_size]`, then receives the reply on `reply_port` into
    /// `msg` (whose length is the receive limit). The reply's size is in its header.
    ///
    /// # Safety
    ///
    /// Every out-of-line region the request marks `deallocate` must be the caller's to give
    /// away (nothing uses it afterwards); every other region it names must be readable.
    unsafe fn rpc(
        &mut self,
        msg: &mut [u8],
        send_size: usize,
        reply_port: PortName,
        options: CallOptions,
    ) -> Result<(), KernReturn>;

    /// Sends the message in `msg[..send_size]`, which has no reply (a simpleroutine's).
    ///
    /// # Safety
    ///
    /// As for [`rpc`](Self::rpc).
    unsafe fn send(
        &mut self,
        msg: &mut [u8],
        send_size: usize,
        options: CallOptions,
    ) -> Result<(), KernReturn>;
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

/// The buffer a client stub needs (`max(request, reply)` bytes), or `MIG_ARRAY_TOO_LARGE` if
/// the caller's is smaller.
pub fn need_buffer(buf: &mut [u8], size: usize) -> Result<&mut [u8], KernReturn> {
    buf.get_mut(..size).ok_or(KernReturn::MigArrayTooLarge)
}

/// Destroys a message the caller received (GNU's `mach_msg_destroy`): releases the reply
/// right in its header and every port right and out-of-line region in its body, through `S`.
/// Stops at the first malformed item (what comes after it cannot be found).
///
/// # Safety
///
/// The message must be one the kernel delivered to the caller (or a faithful fake): its
/// out-of-line addresses are regions of the caller's address space it may read and unmap, and
/// the names in it denote rights the caller holds.
pub unsafe fn destroy_received<S: Space>(msg: &[u8]) {
    // SAFETY: the caller's guarantee, for a received message.
    unsafe { destroy::<S>(msg, false) }
}

/// Destroys a message the caller built but could not send: releases the rights it moves
/// (`MOVE_*` dispositions) and unmaps the regions it gives away (`deallocate` set); copied
/// and made rights and lent regions stay where they are.
///
/// # Safety
///
/// The rights the message moves must be the caller's, and every region it marks `deallocate`
/// the caller's to unmap (as they had to be for sending it).
pub unsafe fn destroy_unsent<S: Space>(msg: &[u8]) {
    // SAFETY: the caller's guarantee, for an unsent message.
    unsafe { destroy::<S>(msg, true) }
}

/// The right a name of type `type_name` holds in a message the caller owns: only
/// `MOVE_*`/`PORT_*` types carry one (copies and makes leave the caller's right alone).
fn owned_right(type_name: u8) -> bool {
    matches!(
        type_name,
        MACH_MSG_TYPE_MOVE_RECEIVE | MACH_MSG_TYPE_MOVE_SEND | MACH_MSG_TYPE_MOVE_SEND_ONCE
    )
}

/// # Safety
///
/// As for [`destroy_received`] or [`destroy_unsent`], by `unsent`.
unsafe fn destroy<S: Space>(msg: &[u8], unsent: bool) {
    let Some(h) = Header::read(msg) else {
        return;
    };
    let remote = msgh_bits_remote(h.bits);
    if owned_right(remote)
        && let Some(name) = h.remote_port.name()
        && name.is_valid()
    {
        release_received::<S>(name, remote);
    }
    if !h.is_complex() {
        return;
    }
    for item in items(msg) {
        let Ok(it) = item else { return };
        let d = it.desc;
        match (owned_right(d.name), d.inline) {
            (true, true) => {
                let slots = msg.get(it.data_offset..it.data_offset + it.data_len);
                for slot in slots.unwrap_or(&[]).chunks_exact(8).take(d.number as usize) {
                    if let Some(name) = PortSlot::load(slot).name()
                        && name.is_valid()
                    {
                        release_received::<S>(name, d.name);
                    }
                }
            }
            (true, false) if !unsent || d.deallocate => {
                let address = u64_at(msg, it.data_offset).unwrap_or(0);
                // SAFETY: the caller guarantees the array and the rights in it are ours to
                // release; it holds `number` 32-bit names.
                drop(unsafe { OolPorts::<S>::from_raw(address, d.number, d.name) });
            }
            (true, false) => {
                // Rights moved in a lent array: release them, keep the array.
                let address = u64_at(msg, it.data_offset).unwrap_or(0);
                let len = (d.number as usize).saturating_mul(4);
                // SAFETY: the caller lent the array for the send: it is readable.
                let names = unsafe { crate::rights::region(address, len) };
                for n in names.chunks_exact(4).map(PortName::load) {
                    if n.is_valid() {
                        release_received::<S>(n, d.name);
                    }
                }
            }
            (false, false) if !unsent || d.deallocate => {
                let address = u64_at(msg, it.data_offset).unwrap_or(0);
                let size = d.data_bytes().unwrap_or(0) as u64;
                if address != 0 && size != 0 {
                    S::deallocate(address, size);
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let mut d = Decoder::new(&buf, size, false, KernReturn::MigBadArguments).expect("size");
        d.item(&INT32_EXPECT).expect("int");
        assert_eq!(d.get::<i32>(), Ok(-7));
        let t = d
            .item(&Expect {
                name: Some(MACH_MSG_TYPE_BYTE),
                size: 8,
                ool_size: 8,
                count: Count::AtMost(8),
                inline: Some(true),
                longform: false,
            })
            .expect("bytes");
        let a = d.array::<u8>(t.number as usize).expect("array");
        assert_eq!(a.as_bytes(), &[1, 2, 3]);
        assert_eq!(d.finish(), Ok(()));
        let mut found = [0usize; 2];
        for (slot, it) in found.iter_mut().zip(items(&buf)) {
            *slot = it.expect("item").desc_offset;
        }
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
            Err(KernReturn::MigArrayTooLarge)
        );
        assert!(Decoder::new(&[0u8; 8], 32, false, KernReturn::MigTypeError).is_err());
        assert!(check_reply(&[1, 2, 3], 100, 48, 48, None).is_err());
        let mut out = [0u8; 16];
        let mut w = ArrayOut::<u32>::new(&mut out, 10);
        assert_eq!(w.capacity(), 4);
        assert_eq!(
            w.extend_from_slice(&[1, 2, 3, 4, 5]),
            Err(KernReturn::MigArrayTooLarge)
        );
        assert_eq!(w.extend_from_slice(&[1, 2, 3, 4]), Ok(()));
        assert_eq!(w.push(9), Err(KernReturn::MigArrayTooLarge));
        let mut region_buf = [0u8; 32];
        let [a, b] = split_regions(&mut region_buf, [(4, 4), (16, 8)]).expect("split");
        assert_eq!((a.len(), b.len()), (4, 8));
        assert!(split_regions(&mut [0u8; 8], [(4, 8)]).is_none());
    }

    #[test]
    fn expect_uses_the_out_of_line_size_for_out_of_line_data() {
        let e = Expect {
            name: Some(MACH_MSG_TYPE_MOVE_SEND),
            size: 64,
            ool_size: 32,
            count: Count::AtMost(256),
            inline: None,
            longform: true,
        };
        let inline = TypeDesc {
            name: MACH_MSG_TYPE_MOVE_SEND,
            size: 64,
            number: 3,
            inline: true,
            longform: true,
            deallocate: false,
        };
        assert!(e.check(&inline));
        assert!(!e.check(&TypeDesc {
            number: 257,
            ..inline
        }));
        let ool = TypeDesc {
            size: 32,
            number: 5000,
            inline: false,
            deallocate: true,
            ..inline
        };
        assert!(e.check(&ool), "out-of-line counts are not limited");
        assert!(!e.check(&TypeDesc { size: 64, ..ool }));
    }

    #[test]
    fn c_strings() {
        let s = CStrBuf::<8>::from_str("mach").expect("fits");
        assert_eq!(s.to_str(), Some("mach"));
        assert_eq!(s.raw(), b"mach\0\0\0\0");
        assert_eq!(
            CStrBuf::<4>::from_str("mach"),
            Err(KernReturn::MigArrayTooLarge)
        );
        assert_eq!(
            CStrBuf::<8>::from_bytes(b"a\0b"),
            Err(KernReturn::MigBadArguments)
        );
        let unterminated = CStrBuf::<4>::from_message(b"abcdefg");
        assert_eq!(
            unterminated.as_bytes(),
            b"abc",
            "the last byte becomes a NUL"
        );
        let short = CStrBuf::<8>::from_message(b"ab\0zz");
        assert_eq!(short.raw(), b"ab\0\0\0\0\0\0");
        assert_eq!(c_str_len(c"abc", 4), Ok(4));
        assert_eq!(c_str_len(c"abcd", 4), Err(KernReturn::MigArrayTooLarge));
    }

    #[test]
    fn served_replies() {
        let request = Header {
            bits: msgh_bits(MACH_MSG_TYPE_PORT_SEND_ONCE, 0),
            remote_port: PortSlot(0xffff_0000_0000_0042),
            id: 2638,
            ..Header::default()
        };
        let mut reply = [0u8; 64];
        let s = finish_served(&request, Err(KernReturn::Failure), false, &mut reply);
        assert_eq!(
            (s.handled, s.reply_size, s.code),
            (true, 48, KernReturn::Failure)
        );
        let h = Header::read(&reply).expect("header");
        assert_eq!(h.remote_port, PortSlot(0xffff_0000_0000_0042));
        assert_eq!((h.id, h.bits), (2738, 18));
        let s = finish_served(&request, Err(KernReturn::MigNoReply), false, &mut reply);
        assert_eq!(s.reply_size, 0);
        let s = bad_id(&request, &mut reply);
        assert_eq!((s.handled, s.reply_size), (false, 48));
        let no_reply_port = Header {
            remote_port: PortSlot::NULL,
            ..request
        };
        assert_eq!(bad_id(&no_reply_port, &mut reply).reply_size, 0);
    }
}
