//! Kernel messages (GNU Mach `ipc/ipc_kmsg.c`'s `ipc_kmsg`): a header whose port fields
//! hold rights instead of names, the body bytes (typed data in GNU Mach's LP64 format, as
//! the sender wrote it), the port rights the body carries with where each goes, and its
//! out-of-line regions as opaque handles. What the message takes from the heap is charged
//! to the sender until it is received or destroyed.
//!
//! Parsing the body's type descriptors is not done here: `mach_msg` reads them, copies
//! in each right (`Space::copyin_body_right`) and records it with [`Kmsg::push_port`]; at
//! receive it writes the names `Space::copyout_*` gives back into the body at each slot's
//! offset.
//!
//! A message dropped with rights in it releases them (`right::Reaper`), so a message lost
//! on any path leaks nothing; do not drop one while holding an IPC lock.
//!
//! A [`Kmsg`] is one pointer: its data lives in one heap block from creation to
//! destruction, which is also its queue node ([`KmsgQueue`] links messages through it).
//! Moving a message from the sender to a queue and out to the receiver moves that pointer,
//! never the data, and queueing allocates nothing.

extern crate alloc;

use super::abi::{MsgReturn, msg_type, msgh_bits};
use super::chunk::Chunked;
use super::ledger::{Charge, Kind, Ledger};
use super::port::Port;
use super::right::{MsgPort, Reaper, Right, RightKind};
use crate::mm::kmem;
use alloc::boxed::Box;
use alloc::sync::Arc;
use core::mem::ManuallyDrop;
use core::ptr;
use core::sync::atomic::{AtomicPtr, Ordering};

/// One spare message block, kept when a small message dies and reused by the next (GNU
/// Mach's `ikm_cache`): most messages are small, and this saves building and freeing a
/// block for each. A block is kept emptied, its variable parts back in place.
/// Null or a pointer from `Box::into_raw`, owned by whoever swaps it out. Host tests keep
/// one per thread, so that each test's heap counts are its own.
#[cfg(not(test))]
static SPARE: AtomicPtr<KmsgData> = AtomicPtr::new(ptr::null_mut());

#[cfg(test)]
std::thread_local! {
    static SPARE: AtomicPtr<KmsgData> = const { AtomicPtr::new(ptr::null_mut()) };
}

fn with_spare<R>(f: impl FnOnce(&AtomicPtr<KmsgData>) -> R) -> R {
    #[cfg(not(test))]
    return f(&SPARE);
    #[cfg(test)]
    return SPARE.with(f);
}

/// Take the spare block, if there is one.
fn take_spare() -> Option<Box<KmsgData>> {
    let p = with_spare(|s| s.swap(ptr::null_mut(), Ordering::Acquire));
    // SAFETY: a non-null spare came from `Box::into_raw` (`keep_spare`), and the swap
    // made this caller its only owner.
    (!p.is_null()).then(|| unsafe { Box::from_raw(p) })
}

/// Keep `data` (emptied) as the spare block, or free it if there is one already.
fn keep_spare(data: Box<KmsgData>) {
    let p = Box::into_raw(data);
    let kept = with_spare(|s| {
        s.compare_exchange(ptr::null_mut(), p, Ordering::Release, Ordering::Relaxed)
            .is_ok()
    });
    if !kept {
        // SAFETY: `p` came from `Box::into_raw` just above and was not published.
        drop(unsafe { Box::from_raw(p) });
    }
}

/// Free the spare block, so that heap counts show only live messages (leak checks).
pub fn release_spare() {
    drop(take_spare());
}

/// Size of the LP64 message header (`mach_msg_header_t`).
pub const HEADER_SIZE: usize = 32;
/// Body bytes kept inside the message itself (enough for notifications and short
/// replies); longer bodies go in chunks.
pub const BODY_INLINE: usize = 64;
/// Port slots kept inside the message itself.
pub const PORTS_INLINE: usize = 2;

pub type Body = Chunked<u8, BODY_INLINE>;

/// A right the body carries, and where its name goes at receive: `at` is the byte offset
/// of its slot from the start of the message for an inline right; `mach_msg` chooses the
/// encoding for rights in out-of-line arrays.
pub struct PortSlot {
    pub at: u64,
    pub port: MsgPort,
}

/// An out-of-line region in flight (GNU Mach's `vm_map_copy_t`). The VM code decides what
/// it is; IPC only carries it and drops it if the message is destroyed.
pub trait OolMemory: Send {
    /// Bytes in the region.
    fn size(&self) -> u64;
    /// The region as its concrete type, for the VM code that made it.
    fn as_any(&self) -> &dyn core::any::Any;
    /// The same, to take what it holds (frames handed to a receiver's map).
    fn as_any_mut(&mut self) -> &mut dyn core::any::Any;
}

/// Port slots of rights in an out-of-line array are marked with this bit; the rest of `at`
/// is the array's slot in the message (bits 24-62) and the element's index (bits 0-23).
pub const OOL_PORT: u64 = 1 << 63;

/// The port slot `at` of element `index` of the out-of-line array of rights whose
/// descriptor's data is at byte `slot` of the message.
pub fn ool_port_at(slot: usize, index: usize) -> u64 {
    OOL_PORT | ((slot as u64) << 24) | index as u64
}

/// An out-of-line array of rights in flight: the rights are port slots of the message
/// (marked [`OOL_PORT`]); this records the array's length (32-bit names at receive).
pub struct OolPorts {
    count: u32,
    _charge: Charge,
}

impl OolPorts {
    /// An array of `count` rights; `charge` pays for the box the message holds it in.
    pub fn new(count: u32, charge: Charge) -> OolPorts {
        OolPorts {
            count,
            _charge: charge,
        }
    }

    pub fn count(&self) -> u32 {
        self.count
    }
}

impl OolMemory for OolPorts {
    fn size(&self) -> u64 {
        u64::from(self.count) * 4
    }
    fn as_any(&self) -> &dyn core::any::Any {
        self
    }
    fn as_any_mut(&mut self) -> &mut dyn core::any::Any {
        self
    }
}

pub struct OolSlot {
    pub at: u64,
    pub memory: Box<dyn OolMemory>,
}

/// A msg-accepted request (GNU Mach `ipc_marequest`): who forced a message onto a full
/// queue with `MACH_SEND_NOTIFY`, and the send-once right (made from the sender's notify
/// port, prepaid) the notification goes through. The sender's entry for the port is
/// marked while it lasts (`Space::marequest_create`), so a second forced message from the
/// same space gets `MACH_SEND_NOTIFY_IN_PROGRESS`.
pub struct MaRequest {
    pub(crate) space: alloc::sync::Weak<super::space::Space>,
    pub(crate) port: Arc<Port>,
    pub(crate) soright: Right,
}

/// A kernel message: an owning pointer to its data (see the module comment). The box is
/// taken out only in `drop`, to be freed or kept as the spare block.
pub struct Kmsg(ManuallyDrop<Box<KmsgData>>);

impl core::ops::Deref for Kmsg {
    type Target = KmsgData;
    fn deref(&self) -> &KmsgData {
        &self.0
    }
}

impl core::ops::DerefMut for Kmsg {
    fn deref_mut(&mut self) -> &mut KmsgData {
        &mut self.0
    }
}

pub struct KmsgData {
    /// `msgh_bits`: after copyin the two port fields hold the rights' received types
    /// (`MACH_MSG_TYPE_PORT_*`), as in GNU Mach.
    pub bits: u32,
    /// `msgh_size` as sent (header included).
    pub size: u32,
    pub id: i32,
    /// Set at receive.
    pub seqno: u32,
    /// The destination right (send or send-once); `None` once consumed.
    remote: Option<Right>,
    /// The reply right.
    local: MsgPort,
    pub body: Body,
    ports: Chunked<PortSlot, PORTS_INLINE>,
    ool: Chunked<OolSlot, 1>,
    /// A msg-accepted request (`MACH_SEND_NOTIFY` on a full queue): notified when the
    /// message leaves its queue, received or destroyed.
    marequest: Option<MaRequest>,
    /// What the message's heap blocks are charged (the sender's ledger, or a send-once
    /// right's prepaid granule for a notification), given back when it is dropped.
    _charge: Option<Charge>,
    /// The next message in the queue holding this one ([`KmsgQueue`]).
    next: Option<Kmsg>,
}

// A message's own block (its data and queue link) fits a granule: a notification, whose
// body and one right are in place, is one granule.
const _: () = assert!(kmem::fits_granule(
    core::mem::size_of::<KmsgData>(),
    core::mem::align_of::<KmsgData>()
));

/// Sizes of the variable parts of a message about to be built.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KmsgShape {
    pub body_len: usize,
    pub ports: usize,
    pub ool: usize,
}

impl KmsgShape {
    /// Heap granules a message of this shape takes (its own block and its chunks), or
    /// `None` if it is too large to hold.
    pub fn blocks(&self) -> Option<usize> {
        Some(
            1 + Body::blocks_for(self.body_len)?
                + Chunked::<PortSlot, PORTS_INLINE>::blocks_for(self.ports)?
                + Chunked::<OolSlot, 1>::blocks_for(self.ool)?,
        )
    }
}

impl Kmsg {
    /// An empty message of `shape`, charged to `ledger`: `MACH_SEND_NO_BUFFER` if the
    /// ledger refuses or the message is larger than a message can be (GNU Mach's code
    /// when it cannot allocate the message).
    pub fn new(ledger: &Arc<dyn Ledger>, shape: KmsgShape) -> Result<Kmsg, MsgReturn> {
        Self::new_as(ledger, shape, Kind::Message)
    }

    /// [`Kmsg::new`], charged as `kind` (`Kind::KernelRequest` for a request to a kernel
    /// object its sender could not pay for as a message).
    pub fn new_as(
        ledger: &Arc<dyn Ledger>,
        shape: KmsgShape,
        kind: Kind,
    ) -> Result<Kmsg, MsgReturn> {
        let blocks = shape.blocks().ok_or(MsgReturn::SEND_NO_BUFFER)?;
        let charge = Charge::new(ledger, kind, blocks).map_err(|_| MsgReturn::SEND_NO_BUFFER)?;
        Self::with_charge(shape, Some(charge)).ok_or(MsgReturn::SEND_NO_BUFFER)
    }

    pub(crate) fn with_charge(shape: KmsgShape, charge: Option<Charge>) -> Option<Kmsg> {
        // The spare block if there is one (emptied when it was kept, its variable parts in
        // place), else a new empty one; then room outside it for what does not fit.
        let mut data = take_spare().unwrap_or_else(|| {
            Box::new(KmsgData {
                bits: 0,
                size: 0,
                id: 0,
                seqno: 0,
                remote: None,
                local: MsgPort::Null,
                body: Body::new(),
                ports: Chunked::new(),
                ool: Chunked::new(),
                marequest: None,
                _charge: None,
                next: None,
            })
        });
        data.bits = 0;
        data.size = 0;
        data.id = 0;
        data.seqno = 0;
        data._charge = charge;
        if shape.body_len > data.body.capacity() {
            data.body = Body::with_capacity(shape.body_len).ok()?;
        }
        if shape.ports > data.ports.capacity() {
            data.ports = Chunked::with_capacity(shape.ports).ok()?;
        }
        if shape.ool > data.ool.capacity() {
            data.ool = Chunked::with_capacity(shape.ool).ok()?;
        }
        Some(Kmsg(ManuallyDrop::new(data)))
    }

    /// Set the header's rights: the destination and the reply (after `copyin_header`).
    /// The bits' port fields become the rights' received types.
    pub fn set_ports(&mut self, remote: Right, local: MsgPort, local_type: u32) {
        self.bits = msgh_bits::other(self.bits)
            | msgh_bits::make(remote.msg_type(), local.msg_type().unwrap_or(local_type));
        self.remote = Some(remote);
        self.local = local;
    }

    /// Add a right carried in the body; hands it back if the message has no room left
    /// (the shape said fewer).
    pub fn push_port(&mut self, at: u64, port: MsgPort) -> Result<(), MsgPort> {
        self.ports
            .push(PortSlot { at, port })
            .map_err(|slot| slot.port)
    }

    /// Add an out-of-line region; handed back if there is no room.
    pub fn push_ool(
        &mut self,
        at: u64,
        memory: Box<dyn OolMemory>,
    ) -> Result<(), Box<dyn OolMemory>> {
        self.ool
            .push(OolSlot { at, memory })
            .map_err(|slot| slot.memory)
    }

    pub fn remote(&self) -> Option<&Right> {
        self.remote.as_ref()
    }

    pub fn local(&self) -> &MsgPort {
        &self.local
    }

    /// Whether `port` is this message's destination.
    pub fn is_for(&self, port: &Port) -> bool {
        self.remote
            .as_ref()
            .is_some_and(|r| core::ptr::eq(Arc::as_ptr(r.port()), port))
    }

    pub(crate) fn dest_port(&self) -> Option<&Arc<Port>> {
        self.remote.as_ref().map(Right::port)
    }

    pub(crate) fn take_remote(&mut self) -> Option<Right> {
        self.remote.take()
    }

    pub(crate) fn take_local(&mut self) -> MsgPort {
        core::mem::replace(&mut self.local, MsgPort::Null)
    }

    /// The body's rights, for copyout (each taken out with `MsgPort::take`).
    pub fn ports_mut(&mut self) -> impl Iterator<Item = &mut PortSlot> {
        self.ports.iter_mut()
    }

    pub fn ports(&self) -> impl Iterator<Item = &PortSlot> {
        self.ports.iter()
    }

    pub fn ool_mut(&mut self) -> impl Iterator<Item = &mut OolSlot> {
        self.ool.iter_mut()
    }

    /// Take the out-of-line regions out (at receive, to map them into the receiver).
    pub fn take_ool(&mut self) -> Option<OolSlot> {
        self.ool.pop()
    }

    pub(crate) fn pop_port(&mut self) -> Option<MsgPort> {
        self.ports.pop().map(|s| s.port)
    }

    /// Whether any receive right rides in the body (such a message must pass the
    /// circularity check when sent).
    pub(crate) fn carries_receive(&self) -> bool {
        self.ports
            .iter()
            .any(|s| matches!(&s.port, MsgPort::Right(r) if r.kind() == RightKind::Receive))
    }

    pub(crate) fn receive_rights(&self) -> impl Iterator<Item = &Arc<Port>> {
        self.ports.iter().filter_map(|s| match &s.port {
            MsgPort::Right(r) if r.kind() == RightKind::Receive => Some(r.port()),
            _ => None,
        })
    }

    /// Whether the message was sent to a send-once right (such messages ignore the
    /// queue limit).
    pub(crate) fn to_send_once(&self) -> bool {
        msgh_bits::remote(self.bits) == msg_type::PORT_SEND_ONCE
    }

    /// Attach a msg-accepted request (GNU Mach's `ikm_marequest`).
    pub fn set_marequest(&mut self, request: MaRequest) {
        self.marequest = Some(request);
    }

    pub(crate) fn take_marequest(&mut self) -> Option<MaRequest> {
        self.marequest.take()
    }

    /// The message has left its queue for a receiver: a msg-accepted request it carries
    /// is notified now (GNU Mach `ipc_marequest_destroy` at dequeue). Call with no IPC
    /// lock held.
    pub fn accepted(&mut self) {
        if let Some(request) = self.marequest.take() {
            let mut reaper = Reaper::new();
            reaper.msg_accepted(request);
            reaper.run();
        }
    }

    /// Whether anything in it needs releasing.
    fn holds_anything(&self) -> bool {
        self.marequest.is_some()
            || self.remote.is_some()
            || matches!(self.local, MsgPort::Right(_))
            || !self.ports.is_empty()
            || !self.ool.is_empty()
    }

    pub(crate) fn restore_local(&mut self, local: MsgPort) {
        self.local = local;
    }

    /// Destroy the message (GNU Mach `ipc_kmsg_destroy`): its rights are released (with
    /// the notifications that causes), its regions dropped.
    pub fn destroy(self) {
        drop(self);
    }
}

impl Drop for Kmsg {
    fn drop(&mut self) {
        if self.holds_anything() {
            let mut reaper = Reaper::new();
            reaper.destroy_msg(self, false);
            reaper.run();
        }
        // SAFETY: `drop` runs once and nothing uses the box after this.
        let mut data = unsafe { ManuallyDrop::take(&mut self.0) };
        debug_assert!(data.next.is_none());
        // Kept as the spare with its variable parts back in place: chunks are freed.
        data._charge = None;
        data.marequest = None;
        if data.body.in_place() {
            data.body.clear();
        } else {
            data.body = Body::new();
        }
        if !data.ports.in_place() {
            data.ports = Chunked::new();
        }
        if !data.ool.in_place() {
            data.ool = Chunked::new();
        }
        keep_spare(data);
    }
}

impl core::fmt::Debug for Kmsg {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "Kmsg(id {}, size {}, bits {:#x}, {} ports)",
            self.id,
            self.size,
            self.bits,
            self.ports.len()
        )
    }
}

/// A FIFO of messages linked through their own blocks (GNU Mach's `ipc_kmsg_queue`):
/// pushing and popping allocate nothing and move one pointer.
pub struct KmsgQueue {
    head: Option<Kmsg>,
    /// The last message's data (inside the chain `head` owns), or null when empty.
    tail: *mut KmsgData,
    len: usize,
}

// SAFETY: `tail` only ever points into a block the queue owns through `head`; the queue
// is moved and shared only as a whole (under its port's or set's lock), like the boxes.
unsafe impl Send for KmsgQueue {}
// SAFETY: as above; `&KmsgQueue` reads through `head` only.
unsafe impl Sync for KmsgQueue {}

impl Default for KmsgQueue {
    fn default() -> Self {
        Self::new()
    }
}

impl KmsgQueue {
    pub const fn new() -> Self {
        KmsgQueue {
            head: None,
            tail: core::ptr::null_mut(),
            len: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.head.is_none()
    }

    pub fn front(&self) -> Option<&Kmsg> {
        self.head.as_ref()
    }

    pub fn push_back(&mut self, mut kmsg: Kmsg) {
        debug_assert!(kmsg.next.is_none());
        kmsg.next = None;
        let data: *mut KmsgData = &mut **kmsg.0;
        if self.tail.is_null() {
            self.head = Some(kmsg);
        } else {
            // SAFETY: `tail` points at the last block of the chain `head` owns (see the
            // field), which is alive and not otherwise borrowed while `self` is `&mut`.
            unsafe { (*self.tail).next = Some(kmsg) };
        }
        self.tail = data;
        self.len += 1;
    }

    pub fn pop_front(&mut self) -> Option<Kmsg> {
        let mut kmsg = self.head.take()?;
        self.head = kmsg.next.take();
        if self.head.is_none() {
            self.tail = core::ptr::null_mut();
        }
        self.len -= 1;
        Some(kmsg)
    }

    /// Move every message of `other` to the end of this queue, in order.
    pub fn append(&mut self, other: &mut KmsgQueue) {
        while let Some(k) = other.pop_front() {
            self.push_back(k);
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = &Kmsg> {
        core::iter::successors(self.head.as_ref(), |k| k.next.as_ref())
    }
}

impl Drop for KmsgQueue {
    /// Messages go one at a time (a chain dropped whole would recurse through `next`).
    fn drop(&mut self) {
        while self.pop_front().is_some() {}
    }
}

impl<'a> IntoIterator for &'a KmsgQueue {
    type Item = &'a Kmsg;
    type IntoIter = core::iter::Successors<&'a Kmsg, fn(&&'a Kmsg) -> Option<&'a Kmsg>>;
    fn into_iter(self) -> Self::IntoIter {
        core::iter::successors(self.head.as_ref(), |k| k.next.as_ref())
    }
}

#[cfg(test)]
impl Kmsg {
    /// Every right the message holds.
    pub(crate) fn debug_rights(&self, each: &mut dyn FnMut(&Right)) {
        if let Some(r) = &self.remote {
            each(r);
        }
        if let MsgPort::Right(r) = &self.local {
            each(r);
        }
        for s in self.ports.iter() {
            if let MsgPort::Right(r) = &s.port {
                each(r);
            }
        }
    }
}
