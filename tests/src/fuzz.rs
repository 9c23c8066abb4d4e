//! Pieces of the `fuzz` program (`src/bin/fuzz.rs`, issue 14 "hostile input"): a small
//! deterministic generator ([`Rng`], splitmix64), the hostile values it draws (pointers that
//! are unmapped, the kernel's, misaligned or read-only; sizes; port names), the check that a
//! kernel answer is a Mach code, and [`Mutator`], a transport for the generated MIG stubs that
//! alters the valid request a stub built before sending it. Nothing here decides what the
//! program fuzzes; that is in the program.

use libmach::KernReturn;
use libmach::abi::message::option;
use libmach::abi::mig::{CallOptions, PortName, Transport};
use libmach::ipc::{MachMsg, TaskSpace, Trap};

/// splitmix64: one `u64` of state, every seed a full-period stream.
#[derive(Clone, Debug)]
pub struct Rng(pub u64);

impl Rng {
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    /// A value in `0..n` (0 for `n == 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 { 0 } else { self.next_u64() % n }
    }
    /// True `pct` times in 100.
    pub fn chance(&mut self, pct: u64) -> bool {
        self.below(100) < pct
    }
    pub fn pick<T: Copy>(&mut self, from: &[T]) -> T {
        from[self.below(from.len() as u64) as usize]
    }
    /// An integer the kernel may find interesting: 0, 1, -1, limits, small, random.
    pub fn int(&mut self) -> u64 {
        match self.below(10) {
            0 => 0,
            1 => 1,
            2 => u64::MAX,
            3 => u64::from(u32::MAX),
            4 => 0x7fff_ffff,
            5 => 0x8000_0000,
            6 => self.below(16),
            7 => self.below(4096),
            8 => 1 << self.below(64),
            _ => self.next_u64(),
        }
    }
    /// A size: 0, a few bytes, a page or a few, huge.
    pub fn size(&mut self) -> u64 {
        match self.below(8) {
            0 => 0,
            1 => self.below(64),
            2 => 4096,
            3 => 4096 * (1 + self.below(8)),
            4 => self.below(1 << 20),
            5 => u64::MAX - self.below(8192),
            6 => 1 << self.below(64),
            _ => self.int(),
        }
    }
}

/// The seed of one stream of a run: worker `worker`, thread `thread` of seed `seed`.
pub fn stream_seed(seed: u64, worker: u64, thread: u64) -> u64 {
    let mut r = Rng(seed ^ (worker << 40) ^ (thread << 20));
    r.next_u64()
}

/// Where the program is linked (`user.ld`): mapped read-only and executable.
pub const TEXT: u64 = 0x40_0000;
/// A user address far from anything the program maps (its heap and thread stacks are low,
/// the first stack just below 0x7fff_ffff_0000).
pub const FAR: u64 = 0x4000_0000_0000;
/// The start of the kernel's half.
pub const KERNEL: u64 = 0xffff_0000_0000_0000;

/// The scratch region of a fuzzing thread: the only memory of its own it lets the kernel
/// write, unmap or protect.
#[derive(Clone, Copy, Debug)]
pub struct Scratch {
    pub base: u64,
    pub size: u64,
}

impl Scratch {
    pub fn contains(&self, addr: u64, len: u64) -> bool {
        addr >= self.base
            && addr
                .checked_add(len)
                .is_some_and(|end| end <= self.base + self.size)
    }
    /// An address inside (any alignment) and how many bytes remain after it.
    pub fn inside(&self, r: &mut Rng) -> (u64, u64) {
        let off = r.below(self.size);
        (self.base + off, self.size - off)
    }
}

/// A pointer the kernel must refuse or may use without harm to the program: null, low,
/// kernel, non-canonical, far unmapped, misaligned or plain in the scratch region, or
/// read-only text (a write there must fail). Never the program's data, heap or stacks.
pub fn pointer(r: &mut Rng, s: &Scratch) -> u64 {
    match r.below(11) {
        0 => 0,
        1 => r.below(0x1_0000),
        2 => KERNEL + (r.next_u64() & 0xffff_ffff_fff8),
        3 => 0x0001_0000_0000_0000 + r.below(1 << 40),
        4 => FAR + (r.below(1 << 30) << 12) + r.below(8),
        5 => TEXT + r.below(0x4000),
        6 => u64::MAX - r.below(64),
        7 => s.base + s.size - r.below(16),
        _ => s.inside(r).0 & !7,
    }
}

/// Whether a 32-bit result is a Mach code: `KERN_*`, `MACH_SEND_*`/`MACH_RCV_*`, MIG's or
/// the device codes (the names mach-abi knows). The kernel writes a code as a 32-bit value,
/// zero- or sign-extended.
pub fn is_code(x0: u64) -> bool {
    let low = x0 as u32 as i32;
    let upper = x0 >> 32;
    (upper == 0 || upper == 0xffff_ffff) && KernReturn::from_code(low).is_some()
}

/// Whether a stub's answer is a Mach code (a success value always is).
pub fn result_ok<T>(r: &Result<T, KernReturn>) -> Result<(), i32> {
    match r {
        Ok(_) => Ok(()),
        Err(KernReturn::Other(c)) => Err(*c),
        Err(_) => Ok(()),
    }
}

/// How many mutations a [`Mutator`] made, for the op counts.
#[derive(Clone, Copy, Debug, Default)]
pub struct MutStats {
    pub sent: u64,
    pub mutated: u64,
}

/// A stub transport that sends the stub's request, changed by up to three mutations (header
/// bits, size, ports, id, a descriptor or a data word, the send size), always with short
/// send and receive timeouts. Names in `protected` are never written into a request, and a
/// request to one of them (the program's own task and threads) has its header kept and its
/// body left alone, so that it cannot become another routine or act on other memory. An
/// out-of-line region is never newly marked `deallocate`: the kernel would unmap the
/// program's own memory.
pub struct Mutator<'a> {
    pub rng: &'a mut Rng,
    pub protected: &'a [PortName],
    /// Percent of requests mutated.
    pub rate: u64,
    pub stats: MutStats,
}

impl Mutator<'_> {
    fn is_protected(&self, v: u32) -> bool {
        v != 0 && (self.protected.iter().any(|p| p.0 == v) || v == Trap.reply_port().0)
    }

    fn word(msg: &[u8], at: usize) -> u32 {
        u32::from_le_bytes([msg[at], msg[at + 1], msg[at + 2], msg[at + 3]])
    }

    fn put(msg: &mut [u8], at: usize, v: u32) {
        msg[at..at + 4].copy_from_slice(&v.to_le_bytes());
    }

    /// Mutates `msg[..*send]` in place.
    fn mutate(&mut self, msg: &mut [u8], send: &mut usize) {
        if *send < 32 || msg.len() < 32 {
            return;
        }
        let dest = Self::word(msg, 8);
        let own = self.is_protected(dest);
        let len = *send;
        let mut original = [0u8; 512];
        let keep = len.min(original.len());
        original[..keep].copy_from_slice(&msg[..keep]);
        for _ in 0..1 + self.rng.below(3) {
            let r = &mut *self.rng;
            match r.below(if own { 4 } else { 9 }) {
                0 => {
                    let bits = Self::word(msg, 0);
                    let v = match r.below(3) {
                        0 => bits ^ (1 << r.below(32)),
                        1 => (bits & 0xffff_0000) | (r.below(24) as u32) << 8 | r.below(24) as u32,
                        _ => r.next_u64() as u32,
                    };
                    Self::put(msg, 0, v);
                }
                1 => {
                    let v = match r.below(3) {
                        0 => len as u32 ^ (1 << r.below(12)),
                        1 => r.below(len as u64 + 64) as u32,
                        _ => r.next_u64() as u32,
                    };
                    Self::put(msg, 4, v);
                }
                2 => {
                    let v = if r.chance(50) {
                        r.below(64) as u32
                    } else {
                        r.next_u64() as u32
                    };
                    Self::put(msg, 16, v);
                }
                3 => {
                    // The send size handed to mach_msg: shorter, longer (within the buffer),
                    // unaligned.
                    *send = match r.below(3) {
                        0 => r.below(len as u64) as usize,
                        1 => (len + r.below(64) as usize).min(msg.len()),
                        _ => (len & !7) + r.below(8) as usize,
                    }
                    .min(msg.len());
                }
                4 => {
                    let v = if r.chance(50) {
                        r.below(64) as u32
                    } else {
                        r.next_u64() as u32
                    };
                    Self::put(msg, 8, v);
                }
                5 => {
                    let id = Self::word(msg, 28) as i32;
                    let v = match r.below(3) {
                        0 => id.wrapping_add(r.below(21) as i32 - 10),
                        1 => id.wrapping_add(100),
                        _ => r.next_u64() as i32,
                    };
                    Self::put(msg, 28, v as u32);
                }
                _ if len > 32 => {
                    // A word of the body: a descriptor's fields or a datum.
                    let at = 32 + 4 * r.below(((len - 32) / 4) as u64) as usize;
                    let w = Self::word(msg, at);
                    let v = match r.below(5) {
                        0 => w ^ (1 << r.below(32)),
                        1 => w.wrapping_add(r.below(9) as u32).wrapping_sub(4),
                        2 => r.int() as u32,
                        3 => w & 0x1fff_ffff,
                        _ => r.next_u64() as u32,
                    };
                    Self::put(msg, at, v);
                }
                _ => {}
            }
        }
        // Undo what may not be: a protected name written anywhere, a new deallocate bit, a
        // request to our own task or thread turned into another one.
        for at in (0..keep & !3).step_by(4) {
            let new = Self::word(msg, at);
            let old = Self::word(&original, at);
            if new == old {
                continue;
            }
            let dealloc_bit = at >= 32 && new & (1 << 31) != 0 && old & (1 << 31) == 0;
            if self.is_protected(new) || dealloc_bit || (own && (at >= 28 || at == 8)) {
                Self::put(msg, at, old);
            }
        }
        // Beyond the stub's request the buffer holds what an earlier reply left; a longer send
        // size sends that too, with no deallocate bits.
        let mut at = keep & !3;
        while at + 4 <= *send && at + 4 <= msg.len() {
            let w = Self::word(msg, at);
            if w & (1 << 31) != 0 || self.is_protected(w) {
                Self::put(msg, at, 0);
            }
            at += 4;
        }
    }
}

// SAFETY: replies come from `mach_msg` on the calling thread's reply port, which no fuzzed
// operation names (it is protected), so they are the kernel's delivery.
unsafe impl Transport for Mutator<'_> {
    type Space = TaskSpace;

    fn reply_port(&mut self) -> PortName {
        Trap.reply_port()
    }

    unsafe fn rpc(
        &mut self,
        msg: &mut [u8],
        send_size: usize,
        reply_port: PortName,
        _options: CallOptions,
    ) -> Result<(), KernReturn> {
        let mut send = send_size;
        self.stats.sent += 1;
        if self.rng.chance(self.rate) {
            self.stats.mutated += 1;
            self.mutate(msg, &mut send);
        }
        let timeout = self.rng.below(3) as u32;
        // SAFETY: `msg` is ours; the mutation only marks regions `deallocate` that the stub
        // did (see `mutate`); every other region is only read by the kernel, and a bad
        // address is an error, not a fault.
        unsafe { timed_rpc(msg, send, reply_port, timeout) }
    }

    unsafe fn send(
        &mut self,
        msg: &mut [u8],
        send_size: usize,
        _options: CallOptions,
    ) -> Result<(), KernReturn> {
        let mut send = send_size;
        if self.rng.chance(self.rate) {
            self.mutate(msg, &mut send);
        }
        // SAFETY: as for `rpc`.
        unsafe { timed_send(msg, send, 1) }
    }
}

/// `mach_msg` sending `msg[..send]` and receiving the reply on `reply_port`, both within
/// `timeout_ms`. A failed call gives up the thread's reply port, so that a late reply is not
/// taken for the next call's.
///
/// # Safety
///
/// As `MachMsg::mach_msg`: the regions the message names are the caller's to send.
unsafe fn timed_rpc(
    msg: &mut [u8],
    send: usize,
    reply_port: PortName,
    timeout_ms: u32,
) -> Result<(), KernReturn> {
    let bits = option::SEND_MSG | option::RCV_MSG | option::SEND_TIMEOUT | option::RCV_TIMEOUT;
    // SAFETY: the caller's.
    let r = unsafe { Trap.mach_msg(msg, bits, send, reply_port, timeout_ms, PortName::NULL) };
    if r.is_success() {
        Ok(())
    } else {
        if reply_port == Trap.reply_port() {
            Trap.discard_reply_port();
        }
        Err(r)
    }
}

/// `mach_msg` sending `msg[..send]` within `timeout_ms`.
///
/// # Safety
///
/// As for [`timed_rpc`].
unsafe fn timed_send(msg: &mut [u8], send: usize, timeout_ms: u32) -> Result<(), KernReturn> {
    let bits = option::SEND_MSG | option::SEND_TIMEOUT;
    // SAFETY: the caller's.
    unsafe { Trap.mach_msg(msg, bits, send, PortName::NULL, timeout_ms, PortName::NULL) }.result()
}

/// A transport for the fuzzer's own calls on names the fuzzing may have changed meanwhile (a
/// victim's thread name, destroyed and made again for a port the program receives on, say):
/// the stub's request as it is, with send and receive timeouts, so that a request that reaches
/// no server fails instead of waiting for ever for its reply.
pub struct Patient {
    pub timeout_ms: u32,
}

// SAFETY: as for `Mutator`: replies come from `mach_msg` on the calling thread's reply port.
unsafe impl Transport for Patient {
    type Space = TaskSpace;

    fn reply_port(&mut self) -> PortName {
        Trap.reply_port()
    }

    unsafe fn rpc(
        &mut self,
        msg: &mut [u8],
        send_size: usize,
        reply_port: PortName,
        _options: CallOptions,
    ) -> Result<(), KernReturn> {
        // SAFETY: the stub's own request, unchanged.
        unsafe { timed_rpc(msg, send_size, reply_port, self.timeout_ms) }
    }

    unsafe fn send(
        &mut self,
        msg: &mut [u8],
        send_size: usize,
        _options: CallOptions,
    ) -> Result<(), KernReturn> {
        // SAFETY: as for `rpc`.
        unsafe { timed_send(msg, send_size, self.timeout_ms) }
    }
}
