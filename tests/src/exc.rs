//! Serving `exception_raise` requests in a test program: a message buffer, one receive, and
//! one request answered through the generated `exc_server` (the reply sent back on the
//! request's reply right). The programs decide what to do with each exception; this is only
//! the plumbing they share.

use libmach::abi::message::option;
use libmach::mig::exc_server::{ExcServer, exc_server};
use libmach::{KernReturn, PortName, traps};

/// A message buffer, 8-aligned as the kernel wants.
#[repr(C, align(8))]
pub struct Buf(pub [u8; 256]);

impl Buf {
    pub const fn new() -> Self {
        Buf([0; 256])
    }

    /// The 32-bit word at byte `at`.
    pub fn word32(&self, at: usize) -> u32 {
        u32::from_le_bytes([self.0[at], self.0[at + 1], self.0[at + 2], self.0[at + 3]])
    }

    /// The message's size as its header says, at most the buffer's.
    pub fn size(&self) -> usize {
        (self.word32(4) as usize).min(self.0.len())
    }
}

impl Default for Buf {
    fn default() -> Self {
        Self::new()
    }
}

/// Receive one message on `port` into `buf`, waiting at most `timeout_ms` (`None`: for
/// ever).
pub fn receive(buf: &mut Buf, port: PortName, timeout_ms: Option<u32>) -> KernReturn {
    let options = option::RCV_MSG | timeout_ms.map_or(0, |_| option::RCV_TIMEOUT);
    // SAFETY: a receive into our own 256-byte buffer.
    unsafe {
        traps::mach_msg(
            buf.0.as_mut_ptr(),
            options,
            0,
            256,
            port,
            timeout_ms.unwrap_or(0),
            PortName::NULL,
        )
    }
}

/// Serve the request in `req` with `handler` and send its reply from `reply`, waiting at most
/// `timeout_ms` to send (`None`: no timeout): the send's result, or `None` when the request
/// needs no reply.
pub fn answer(
    handler: &mut impl ExcServer,
    req: &Buf,
    reply: &mut Buf,
    timeout_ms: Option<u32>,
) -> Option<KernReturn> {
    let served = exc_server(handler, &req.0[..req.size()], &mut reply.0);
    if served.reply_size == 0 {
        return None;
    }
    let options = option::SEND_MSG | timeout_ms.map_or(0, |_| option::SEND_TIMEOUT);
    // SAFETY: sends our own buffer's first `reply_size` bytes, which `exc_server` wrote.
    Some(unsafe {
        traps::mach_msg(
            reply.0.as_mut_ptr(),
            options,
            served.reply_size as u32,
            0,
            PortName::NULL,
            timeout_ms.unwrap_or(0),
            PortName::NULL,
        )
    })
}
