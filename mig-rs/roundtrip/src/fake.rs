//! A fake kernel for the tests: it moves messages between a client stub and a server the way
//! GNU Mach's `mach_msg` does (header ports swapped, dispositions turned into received rights,
//! out-of-line regions copied into fresh memory of the receiver), and keeps a log of every
//! right and region released through [`TestSpace`], so tests can see that owned values
//! release what they hold exactly once.
//!
//! Both tasks share one name space here (a name means the same port on both sides). For
//! kernel servers the fake also does what the kernel's IPC does to a message it serves:
//! every port slot becomes a 64-bit kernel handle on the way in, and back on the way out.
//! Regions are real memory of this process, so the stubs' `OolData` can read them.

use mach_abi::mig::{
    self, CallOptions, Header, KernReturn, PortName, PortRight, PortSlot, Served, Space, Transport,
};
use std::cell::RefCell;
use std::collections::BTreeMap;

/// The high bits that make a name a kernel handle in a message the kernel holds.
pub const KERNEL_HANDLE: u64 = 0xffff_8000_0000_0000;

/// The kernel handle for `name`.
pub fn handle(name: PortName) -> PortSlot {
    if name == PortName::NULL {
        PortSlot::NULL
    } else {
        PortSlot(KERNEL_HANDLE | u64::from(name.0))
    }
}

std::thread_local! {
    static MEMORY: RefCell<BTreeMap<u64, Box<[u8]>>> = const { RefCell::new(BTreeMap::new()) };
    static RELEASED: RefCell<Vec<(PortName, PortRight)>> = const { RefCell::new(Vec::new()) };
    static UNMAPPED: RefCell<Vec<(u64, u64)>> = const { RefCell::new(Vec::new()) };
    /// Unmapped regions, kept allocated until `reset` so that no later region of the test
    /// gets the same address (a reused address would make an unmapped region look mapped
    /// again).
    static RETIRED: RefCell<Vec<Box<[u8]>>> = const { RefCell::new(Vec::new()) };
}

/// The address space and name space of the tests' tasks: releases are logged, regions the
/// fake kernel mapped are freed.
#[derive(Debug, PartialEq, Eq)]
pub struct TestSpace;

impl Space for TestSpace {
    fn release(name: PortName, right: PortRight) {
        RELEASED.with(|r| r.borrow_mut().push((name, right)));
    }

    fn deallocate(address: u64, size: u64) {
        UNMAPPED.with(|u| u.borrow_mut().push((address, size)));
        if let Some(region) = MEMORY.with(|m| m.borrow_mut().remove(&address)) {
            RETIRED.with(|r| r.borrow_mut().push(region));
        }
    }
}

/// Maps a copy of `bytes` as if the kernel had put it into the task; returns its address.
pub fn map(bytes: &[u8]) -> u64 {
    // At least one byte, so that every region has an address of its own.
    let mut region = vec![0u8; bytes.len().max(1)].into_boxed_slice();
    region[..bytes.len()].copy_from_slice(bytes);
    let address = region.as_ptr() as usize as u64;
    MEMORY.with(|m| m.borrow_mut().insert(address, region));
    address
}

/// True if the fake kernel mapped a region at `address` that is still there.
pub fn is_mapped(address: u64) -> bool {
    MEMORY.with(|m| m.borrow().contains_key(&address))
}

/// Number of regions still mapped.
pub fn mapped() -> usize {
    MEMORY.with(|m| m.borrow().len())
}

/// The bytes of a mapped region (empty if there is none).
pub fn region(address: u64, len: usize) -> Vec<u8> {
    MEMORY.with(|m| {
        m.borrow()
            .get(&address)
            .and_then(|r| r.get(..len))
            .map_or_else(Vec::new, <[u8]>::to_vec)
    })
}

/// The releases logged since the last call.
pub fn released() -> Vec<(PortName, PortRight)> {
    RELEASED.with(|r| std::mem::take(&mut *r.borrow_mut()))
}

/// The unmappings logged since the last call.
pub fn unmapped() -> Vec<(u64, u64)> {
    UNMAPPED.with(|u| std::mem::take(&mut *u.borrow_mut()))
}

/// Clears the logs and unmaps every region (at the start of a test).
pub fn reset() {
    released();
    unmapped();
    MEMORY.with(|m| m.borrow_mut().clear());
    RETIRED.with(|r| r.borrow_mut().clear());
}

/// Reads `len` bytes of the sender's region at `address`.
///
/// # Safety
///
/// `address` must be a region the fake mapped or memory the sender lent for the call (a slice
/// a stub put in the message), readable for `len` bytes.
unsafe fn read_sender(address: u64, len: usize) -> Vec<u8> {
    if len == 0 {
        return Vec::new();
    }
    // SAFETY: the caller guarantees the range is readable.
    unsafe { std::slice::from_raw_parts(address as usize as *const u8, len) }.to_vec()
}

/// Which way a message goes through the fake.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Route {
    /// From a task to a task: names stay names.
    Task,
    /// From a task to the kernel's own server: ports become kernel handles.
    IntoKernel,
    /// From the kernel's server back to a task: handles become names again.
    OutOfKernel,
}

fn convert(slot: PortSlot, route: Route) -> Result<PortSlot, KernReturn> {
    match route {
        Route::Task => Ok(slot),
        Route::IntoKernel => slot.name().map(handle).ok_or(KernReturn::SendInvalidHeader),
        Route::OutOfKernel if slot.0 & KERNEL_HANDLE == KERNEL_HANDLE => {
            Ok(PortSlot(slot.0 & 0xffff_ffff))
        }
        Route::OutOfKernel if slot == PortSlot::NULL => Ok(slot),
        Route::OutOfKernel => Err(KernReturn::SendInvalidRight),
    }
}

/// What the kernel does to a message between send and receive: swap the header's ports and
/// turn dispositions into rights, copy out-of-line regions into new ones (taking the
/// sender's away if `deallocate` is set), and convert port slots for `route`.
///
/// # Safety
///
/// The message's out-of-line addresses must be regions the fake mapped or memory lent for
/// the call (messages written by generated stubs or by the tests).
pub unsafe fn deliver(msg: &[u8], seqno: u32, route: Route) -> Result<Vec<u8>, KernReturn> {
    let h = Header::read(msg).ok_or(KernReturn::SendMsgTooSmall)?;
    if h.size as usize != msg.len() || h.size % 8 != 0 {
        return Err(KernReturn::SendInvalidHeader);
    }
    let mut m = msg.to_vec();
    let remote = mig::msgh_bits_remote(h.bits);
    let local = mig::msgh_bits_local(h.bits);
    let complex = h.bits & mig::MACH_MSGH_BITS_COMPLEX;
    let received = Header {
        bits: mig::msgh_bits(mig::received_right(local), mig::received_right(remote)) | complex,
        size: h.size,
        remote_port: convert(h.local_port, route)?,
        local_port: convert(h.remote_port, route)?,
        seqno,
        id: h.id,
    };
    received.write(&mut m);
    let items: Vec<mig::ItemInfo> = mig::items(&m)
        .collect::<Result<_, _>>()
        .map_err(|_| KernReturn::SendInvalidType)?;
    for it in items {
        let mut d = it.desc;
        if mig::is_port_right(d.name) || !d.inline {
            assert!(
                complex != 0,
                "rights or memory in a message not marked complex"
            );
        }
        if mig::is_port_right(d.name) {
            d.name = mig::received_right(d.name);
            if d.inline {
                for i in 0..d.number as usize {
                    let at = it.data_offset + 8 * i;
                    let slot = PortSlot(u64::from_le_bytes(
                        m[at..at + 8].try_into().expect("8 bytes"),
                    ));
                    m[at..at + 8].copy_from_slice(&convert(slot, route)?.0.to_le_bytes());
                }
            }
        }
        if !d.inline {
            let off = it.data_offset;
            let address = u64::from_le_bytes(m[off..off + 8].try_into().expect("8 bytes"));
            let len = d.data_bytes().ok_or(KernReturn::SendInvalidMemory)?;
            if len != 0 && address == 0 {
                return Err(KernReturn::SendInvalidMemory);
            }
            // SAFETY: the caller guarantees the address is mapped or lent.
            let data = unsafe { read_sender(address, len) };
            if d.deallocate && len != 0 {
                if !is_mapped(address) {
                    return Err(KernReturn::SendInvalidMemory);
                }
                TestSpace::deallocate(address, len as u64);
            }
            let new = if len == 0 { 0 } else { map(&data) };
            m[off..off + 8].copy_from_slice(&new.to_le_bytes());
            d.deallocate = false;
        }
        d.write(&mut m, it.desc_offset);
    }
    Ok(m)
}

/// A server the fake kernel hands requests to (a generated demux function and an
/// implementation of its trait).
pub trait Serve {
    /// Serves one request, writing the reply into `reply`.
    fn serve(&mut self, request: &[u8], reply: &mut [u8]) -> Served;
    /// True for the kernel's own servers (ports travel as kernel handles).
    fn in_kernel(&self) -> bool {
        false
    }
}

/// The in-process transport: delivers each request to the server and the reply back, as
/// `mach_msg` would, and records what it saw.
pub struct Fake<S> {
    /// The server.
    pub server: S,
    /// Sequence number of the last request.
    pub seqno: u32,
    /// The options of each call.
    pub options: Vec<CallOptions>,
    /// The reply port of each call.
    pub reply_ports: Vec<PortName>,
    /// Each request as the server received it.
    pub requests: Vec<Vec<u8>>,
    /// Each reply as the client received it.
    pub replies: Vec<Vec<u8>>,
    /// What each call's server returned.
    pub served: Vec<Served>,
}

/// The reply port the fake hands out.
pub const REPLY_PORT: PortName = PortName(0x77);

impl<S: Serve> Fake<S> {
    /// A transport to `server`.
    pub fn new(server: S) -> Self {
        Fake {
            server,
            seqno: 0,
            options: Vec::new(),
            reply_ports: Vec::new(),
            requests: Vec::new(),
            replies: Vec::new(),
            served: Vec::new(),
        }
    }

    fn serve(&mut self, msg: &[u8]) -> Result<Vec<u8>, KernReturn> {
        self.seqno += 1;
        let route = if self.server.in_kernel() {
            Route::IntoKernel
        } else {
            Route::Task
        };
        // SAFETY: the request was written by a generated stub: its regions are slices the
        // caller lent for the call or regions the fake mapped.
        let request = unsafe { deliver(msg, self.seqno, route)? };
        self.requests.push(request.clone());
        let mut reply = vec![0u8; 65536];
        let served = self.server.serve(&request, &mut reply);
        assert!(served.handled, "request id {} not handled", self.seqno);
        self.served.push(served);
        reply.truncate(served.reply_size);
        Ok(reply)
    }
}

// SAFETY: replies reach the stubs through `deliver`, which maps a fresh copy of every
// out-of-line region into the (shared) task and delivers rights as received rights, as the
// kernel does.
unsafe impl<S: Serve> Transport for Fake<S> {
    type Space = TestSpace;

    fn reply_port(&mut self) -> PortName {
        REPLY_PORT
    }

    unsafe fn rpc(
        &mut self,
        msg: &mut [u8],
        send_size: usize,
        reply_port: PortName,
        options: CallOptions,
    ) -> Result<(), KernReturn> {
        self.options.push(options);
        self.reply_ports.push(reply_port);
        let request = msg
            .get(..send_size)
            .ok_or(KernReturn::SendMsgTooSmall)?
            .to_vec();
        let reply = self.serve(&request)?;
        if reply.is_empty() {
            return Err(KernReturn::RcvTimedOut);
        }
        let route = if self.server.in_kernel() {
            Route::OutOfKernel
        } else {
            Route::Task
        };
        // SAFETY: the reply was written by a generated server, whose regions are ones the
        // fake mapped (the servers in the tests map what they return).
        let reply = unsafe { deliver(&reply, 0, route)? };
        self.replies.push(reply.clone());
        let dst = msg.get_mut(..reply.len()).ok_or(KernReturn::RcvTooLarge)?;
        dst.copy_from_slice(&reply);
        Ok(())
    }

    unsafe fn send(
        &mut self,
        msg: &mut [u8],
        send_size: usize,
        options: CallOptions,
    ) -> Result<(), KernReturn> {
        self.options.push(options);
        let request = msg
            .get(..send_size)
            .ok_or(KernReturn::SendMsgTooSmall)?
            .to_vec();
        let reply = self.serve(&request)?;
        assert!(reply.is_empty(), "a simpleroutine got a reply");
        Ok(())
    }
}

/// A transport that records the request and answers with fixed bytes, for checks of exact
/// bytes and of stubs against malformed replies. It clears the reply's complex bit, so the
/// stubs never take rights or memory from it (a simple message carries neither), which keeps
/// `Transport`'s promise whatever the bytes.
pub struct Canned {
    /// The reply to give.
    pub reply: Vec<u8>,
    /// The last request.
    pub sent: Vec<u8>,
}

// SAFETY: the reply is made simple (complex bit cleared), so it carries no rights or regions
// a stub could take ownership of.
unsafe impl Transport for Canned {
    type Space = TestSpace;

    fn reply_port(&mut self) -> PortName {
        REPLY_PORT
    }

    unsafe fn rpc(
        &mut self,
        msg: &mut [u8],
        send_size: usize,
        _: PortName,
        _: CallOptions,
    ) -> Result<(), KernReturn> {
        self.sent = msg.get(..send_size).unwrap_or(&[]).to_vec();
        let n = self.reply.len().min(msg.len());
        msg[..n].copy_from_slice(&self.reply[..n]);
        if let Some(bits) = msg.get_mut(3) {
            *bits &= 0x7f;
        }
        Ok(())
    }

    unsafe fn send(
        &mut self,
        msg: &mut [u8],
        send_size: usize,
        _: CallOptions,
    ) -> Result<(), KernReturn> {
        self.sent = msg.get(..send_size).unwrap_or(&[]).to_vec();
        Ok(())
    }
}

/// A reply that carries only `code`, with reply id `id`.
pub fn error_reply(id: i32, code: i32) -> Vec<u8> {
    let mut buf = vec![0u8; 48];
    let mut e = mig::Encoder::new(&mut buf);
    e.item(mig::INT32_DESC);
    e.put(code);
    e.finish(Header {
        id,
        ..Header::default()
    })
    .expect("fits");
    buf
}
