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

extern crate alloc;

use super::abi::{MsgReturn, msg_type, msgh_bits};
use super::chunk::Chunked;
use super::ledger::{Charge, Kind, Ledger};
use super::port::Port;
use super::right::{MsgPort, Reaper, Right, RightKind};
use crate::mm::kmem;
use alloc::boxed::Box;
use alloc::sync::Arc;

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
}

pub struct OolSlot {
    pub at: u64,
    pub memory: Box<dyn OolMemory>,
}

pub struct Kmsg {
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
    /// What the message's heap blocks are charged (the sender's ledger, or a send-once
    /// right's prepaid granule for a notification), given back when it is dropped.
    _charge: Option<Charge>,
}

// The queue node holding a message (two links and the message) fits a granule: a
// notification, whose body and one right are in place, is one granule.
const _: () = assert!(kmem::fits_granule(
    core::mem::size_of::<Kmsg>() + 2 * core::mem::size_of::<usize>(),
    core::mem::align_of::<Kmsg>()
));

/// Sizes of the variable parts of a message about to be built.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KmsgShape {
    pub body_len: usize,
    pub ports: usize,
    pub ool: usize,
}

impl KmsgShape {
    /// Heap granules a message of this shape takes (its queue node and its chunks), or
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
        let blocks = shape.blocks().ok_or(MsgReturn::SEND_NO_BUFFER)?;
        let charge =
            Charge::new(ledger, Kind::Message, blocks).map_err(|_| MsgReturn::SEND_NO_BUFFER)?;
        Self::with_charge(shape, Some(charge)).ok_or(MsgReturn::SEND_NO_BUFFER)
    }

    pub(crate) fn with_charge(shape: KmsgShape, charge: Option<Charge>) -> Option<Kmsg> {
        Some(Kmsg {
            bits: 0,
            size: 0,
            id: 0,
            seqno: 0,
            remote: None,
            local: MsgPort::Null,
            body: Body::with_capacity(shape.body_len).ok()?,
            ports: Chunked::with_capacity(shape.ports).ok()?,
            ool: Chunked::with_capacity(shape.ool).ok()?,
            _charge: charge,
        })
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

    /// Whether anything in it needs releasing.
    fn holds_anything(&self) -> bool {
        self.remote.is_some()
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
