//! A 128-byte message buffer for the IPC test programs, written and read by byte offset in
//! GNU Mach's LP64 layout (header of 32 bytes: bits, size, remote and local port slots of 8
//! bytes, seqno, id), and `mach_msg` on it.

use libmach::abi::message::{MACH_MSG_TYPE_INTEGER_32, TypeDesc};
use libmach::{KernReturn, PortName, traps};

/// A message buffer, 8-aligned; the words are public for tests that place 64-bit items.
#[derive(Clone)]
pub struct Msg {
    pub words: [u64; 16],
}

impl Default for Msg {
    fn default() -> Self {
        Self::new()
    }
}

impl Msg {
    pub fn new() -> Self {
        Msg { words: [0; 16] }
    }
    pub fn put32(&mut self, at: usize, v: u32) {
        let w = &mut self.words[at / 8];
        let shift = (at % 8) * 8;
        *w = (*w & !(0xffff_ffffu64 << shift)) | (u64::from(v) << shift);
    }
    pub fn get32(&self, at: usize) -> u32 {
        (self.words[at / 8] >> ((at % 8) * 8)) as u32
    }
    /// `at` must be 8-aligned.
    pub fn put64(&mut self, at: usize, v: u64) {
        self.words[at / 8] = v;
    }
    /// `at` must be 8-aligned.
    pub fn get64(&self, at: usize) -> u64 {
        self.words[at / 8]
    }
    /// The header: bits, size 0, remote, local, seqno 0, id.
    pub fn header(&mut self, bits: u32, dest: PortName, reply: PortName, id: i32) {
        self.put32(0, bits);
        self.put32(4, 0);
        self.put64(8, u64::from(dest.0));
        self.put64(16, u64::from(reply.0));
        self.put32(24, 0);
        self.put32(28, id as u32);
    }
    /// A short-form type descriptor at `at`.
    pub fn desc(&mut self, at: usize, d: TypeDesc) {
        self.put32(at, d.word());
        self.put32(at + 4, d.number);
    }
    pub fn bits(&self) -> u32 {
        self.get32(0)
    }
    pub fn size(&self) -> u32 {
        self.get32(4)
    }
    /// The remote port slot as received (all 64 bits).
    pub fn remote(&self) -> u64 {
        self.get64(8)
    }
    /// The remote port slot as a name.
    pub fn remote_name(&self) -> PortName {
        PortName(self.remote() as u32)
    }
    pub fn local(&self) -> u64 {
        self.get64(16)
    }
    pub fn id(&self) -> i32 {
        self.get32(28) as i32
    }
    pub fn ptr(&mut self) -> *mut u8 {
        self.words.as_mut_ptr() as *mut u8
    }
}

/// One inline 32-bit integer.
pub fn int_desc() -> TypeDesc {
    TypeDesc {
        name: MACH_MSG_TYPE_INTEGER_32,
        size: 32,
        number: 1,
        inline: true,
        longform: false,
        deallocate: false,
    }
}

/// `number` inline port rights moved with `disposition`.
pub fn port_desc(disposition: u8, number: u32) -> TypeDesc {
    TypeDesc {
        name: disposition,
        size: 64,
        number,
        inline: true,
        longform: false,
        deallocate: false,
    }
}

/// `mach_msg` on a buffer.
///
/// The buffer is 128 bytes, so `send` and `rcv` must be at most that (a test that wants a
/// bigger size calls `traps::mach_msg` itself); out-of-line regions a message names must be
/// the caller's (and its own to give away if marked deallocate).
pub fn mach_msg(
    m: &mut Msg,
    option: u32,
    send: u32,
    rcv: u32,
    name: PortName,
    timeout: u32,
) -> KernReturn {
    assert!(
        send <= 128 && rcv <= 128,
        "sizes beyond the 128-byte buffer"
    );
    // SAFETY: the sizes are within the buffer's 128 bytes (checked); what out-of-line
    // memory a message names is the caller's business (see above).
    unsafe { traps::mach_msg(m.ptr(), option, send, rcv, name, timeout, PortName(0)) }
}

/// `mach_msg` on an 8-word buffer, with no timeout: the benchmarks' and the trace workloads'
/// header-only and small messages.
pub fn mach_msg_small(
    buf: &mut [u64; 8],
    option: u32,
    send: u32,
    rcv: u32,
    name: PortName,
) -> KernReturn {
    assert!(send <= 64 && rcv <= 64, "sizes beyond the 64-byte buffer");
    // SAFETY: the sizes are within the buffer's 64 bytes (checked); the messages these
    // programs send are simple (no out-of-line memory).
    unsafe {
        traps::mach_msg(
            buf.as_mut_ptr().cast(),
            option,
            send,
            rcv,
            name,
            0,
            PortName(0),
        )
    }
}
