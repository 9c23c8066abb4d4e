//! Ports (GNU Mach `ipc/ipc_port.c`): the counts of the rights that exist for a port, who
//! holds its receive right, its message queue and limits, its port-set membership, the
//! notifications requested on it, and the kernel object it stands for, if any.
//!
//! Everything mutable is under the port's own lock (`LockLevel::IpcPort`); no code holds
//! two port locks at once. The sequence number is an atomic because it is advanced under
//! whichever lock guards the queue holding the port's messages (the port's own, or its
//! set's while it is a member). Sending and receiving are in `mqueue`; destruction and
//! the notifications it causes are in `right`.

extern crate alloc;

use super::abi::{MACH_PORT_QLIMIT_DEFAULT, PortName};
use super::kmsg::KmsgQueue;
use super::ledger::{Charge, Kind, Ledger};
use super::pset::PortSet;
use super::right::{Right, RightKind};
use crate::mm::kmem;
use crate::sync::{IrqSpinLock, IrqSpinLockGuard, LockLevel};
use alloc::collections::BTreeMap;
use alloc::sync::{Arc, Weak};
use core::any::Any;
use core::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
use mach_abi::KernReturn;

/// Ids for ports, port sets and spaces: unique for the life of the kernel.
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

pub(crate) fn next_id() -> u64 {
    NEXT_ID.fetch_add(1, Ordering::Relaxed)
}

/// The kinds of kernel object a port can stand for (GNU Mach's `IKOT_*` numbers).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum KObjectKind {
    Thread = 1,
    Task = 2,
    Host = 3,
    HostPriv = 4,
    Processor = 5,
    ProcessorSet = 6,
    ProcessorSetName = 7,
    /// A device's memory object (`device_map`'s answer, for `vm_map`).
    Pager = 8,
    Device = 10,
    MasterDevice = 19,
    /// A proxy of memory (`vm_region_create_proxy`'s answer, for `vm_map`).
    PagerProxy = 27,
}

/// A typed reference from a kernel port to the object it stands for (GNU Mach's
/// `ip_kobject`): the kind, and the object behind a checked downcast, so that a server
/// gets `&Task` only from a port tagged `Task`. The kernel decides what the handle is
/// (`Arc<Task>`, or a weak wrapper where the object also holds the port).
#[derive(Clone)]
pub struct KObject {
    kind: KObjectKind,
    object: Arc<dyn Any + Send + Sync>,
}

impl KObject {
    pub fn new<T: Any + Send + Sync>(kind: KObjectKind, object: Arc<T>) -> KObject {
        KObject { kind, object }
    }

    pub fn kind(&self) -> KObjectKind {
        self.kind
    }

    /// The object, if it is of kind `kind` and type `T`.
    pub fn get<T: Any + Send + Sync>(&self, kind: KObjectKind) -> Option<Arc<T>> {
        if self.kind != kind {
            return None;
        }
        self.object.clone().downcast::<T>().ok()
    }
}

impl core::fmt::Debug for KObject {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "KObject({:?})", self.kind)
    }
}

/// Who holds a port's receive right.
pub(crate) enum Receiver {
    /// A space, under this name.
    Space { space: u64, name: PortName },
    /// In a message queued on (or being sent to) this port.
    Transit(Weak<Port>),
    /// Held by nobody in particular: being moved, or held naked by the kernel code.
    Limbo,
    /// The kernel: a kernel object's port.
    Kernel,
    /// The kernel, as the client of an RPC it made (GNU Mach's `ipc_space_reply`): the
    /// reply port of a thread's `exception_raise`. Messages to it are queued, not served;
    /// the kernel takes them with `mqueue::receive_reply`.
    Reply,
    /// A reply port the kernel stopped waiting on while the send-once right to it was
    /// still out ([`Port::abandon_reply`]): the one message that right brings (the reply,
    /// or the send-once notification of its destruction) is destroyed with the port.
    Abandoned,
}

/// A dead-name request: the send-once right to notify with, paid for by the requester.
pub(crate) struct DnRequest {
    pub soright: Right,
    pub _charge: Charge,
}

pub(crate) struct PortState {
    pub active: bool,
    pub receiver: Receiver,
    /// Make-send count, send rights, send-once rights.
    pub mscount: u32,
    pub srights: u32,
    pub sorights: u32,
    pub qlimit: u32,
    /// Messages queued for this port (in its queue or its set's).
    pub msgcount: u32,
    /// The port's messages while it is in no set.
    pub queue: KmsgQueue,
    pub pset: Option<Arc<PortSet>>,
    pub kobject: Option<KObject>,
    /// No-senders and port-destroyed requests (send-once rights).
    pub nsrequest: Option<Right>,
    pub pdrequest: Option<Right>,
    /// Dead-name requests by (space id, name).
    pub dnrequests: BTreeMap<(u64, u32), DnRequest>,
    /// The dead-name map's root node, while it has one.
    pub dn_root: Option<Charge>,
    /// A receiver / a sender asked to be woken (see `mqueue`).
    pub receivers_waiting: bool,
    pub senders_waiting: bool,
    /// The kernel watches this kernel port's senders ([`Port::watch_senders`]).
    pub watch_senders: bool,
}

pub struct Port {
    id: u64,
    pub(crate) seqno: AtomicU32,
    pub(crate) state: IrqSpinLock<PortState>,
    _charge: Charge,
    _counted: Counted,
}

/// Ports that exist (made and not yet freed), for the self-checks (`checks::at_end`).
static LIVE_PORTS: AtomicUsize = AtomicUsize::new(0);

/// How many ports exist now.
pub fn live_ports() -> usize {
    LIVE_PORTS.load(Ordering::Relaxed)
}

/// A port's place in [`LIVE_PORTS`]: counted when made, uncounted when freed.
struct Counted;

impl Counted {
    fn new() -> Self {
        LIVE_PORTS.fetch_add(1, Ordering::Relaxed);
        Counted
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        LIVE_PORTS.fetch_sub(1, Ordering::Relaxed);
    }
}

// A port is one heap block, charged one granule.
const _: () = assert!(kmem::fits_granule(
    core::mem::size_of::<Port>() + 2 * core::mem::size_of::<usize>(),
    core::mem::align_of::<Port>()
));

// A node of the dead-name request map fits the granule each request is charged.
const _: () = assert!(kmem::fits_granule(
    crate::mm::regions::btree_node_bound(
        core::mem::size_of::<(u64, u32)>(),
        core::mem::size_of::<DnRequest>()
    ),
    8
));

/// What the kernel is told when a watched kernel port is down to one send right or none
/// ([`set_senders_hook`]).
static SENDERS_HOOK: spin::Once<fn(&Arc<Port>)> = spin::Once::new();

/// Set what is called when a send right to a watched kernel port is released and at most
/// one is left (once, at boot). It is called with no IPC lock held, from wherever the
/// right died (a space's destruction among them), so it must only take note and leave
/// the work (which may release more rights) for later; GNU Mach's no-senders
/// notification to a kernel object (`ipc_kobject_notify`) plays this part there.
pub fn set_senders_hook(f: fn(&Arc<Port>)) {
    SENDERS_HOOK.call_once(|| f);
}

pub(crate) fn senders_hook(port: &Arc<Port>) {
    if let Some(f) = SENDERS_HOOK.get() {
        f(port);
    }
}

/// Granules a port is charged.
pub const PORT_BLOCKS: usize = 1;

impl Port {
    /// A new, active port whose receive right is held by `receiver`.
    pub(crate) fn alloc(
        ledger: &Arc<dyn Ledger>,
        receiver: Receiver,
    ) -> Result<Arc<Port>, KernReturn> {
        let charge = Charge::new(ledger, Kind::Port, PORT_BLOCKS)?;
        // Charged: the kernel heap has the block (`mm::kmem`).
        Ok(Arc::new(Port {
            id: next_id(),
            seqno: AtomicU32::new(0),
            state: IrqSpinLock::new(
                LockLevel::IpcPort,
                PortState {
                    active: true,
                    receiver,
                    mscount: 0,
                    srights: 0,
                    sorights: 0,
                    qlimit: MACH_PORT_QLIMIT_DEFAULT,
                    msgcount: 0,
                    queue: KmsgQueue::new(),
                    pset: None,
                    kobject: None,
                    nsrequest: None,
                    pdrequest: None,
                    dnrequests: BTreeMap::new(),
                    dn_root: None,
                    receivers_waiting: false,
                    senders_waiting: false,
                    watch_senders: false,
                },
            ),
            _charge: charge,
            _counted: Counted::new(),
        }))
    }

    /// A port whose receive right the kernel holds, standing for `kobject` (GNU Mach
    /// `ipc_port_alloc_kernel` + `ipc_kobject_set`). Rights to it are made with
    /// [`Port::make_send`] and given to tasks with `Space::copyout`.
    pub fn alloc_kernel(
        ledger: &Arc<dyn Ledger>,
        kobject: Option<KObject>,
    ) -> Result<Arc<Port>, KernReturn> {
        let port = Port::alloc(ledger, Receiver::Kernel)?;
        port.lock().kobject = kobject;
        Ok(port)
    }

    /// Destroy a port whose receive right the kernel holds (GNU Mach
    /// `ipc_port_dealloc_kernel`, at the death of the object it stands for): rights to it
    /// become dead names, its queue is destroyed, dead-name notifications go out. Call
    /// with no IPC lock held; does nothing to a port the kernel does not hold.
    pub fn dealloc_kernel(port: Arc<Port>) {
        {
            let mut st = port.lock();
            if !matches!(st.receiver, Receiver::Kernel) {
                return;
            }
            st.receiver = Receiver::Limbo;
        }
        let mut reaper = super::right::Reaper::new();
        reaper.destroy_port(port);
        reaper.run();
    }

    /// A port whose receive right the kernel keeps to receive the reply of an RPC it
    /// makes (`Receiver::Reply`). Destroy it with [`Port::dealloc_reply`].
    pub fn alloc_reply(ledger: &Arc<dyn Ledger>) -> Result<Arc<Port>, KernReturn> {
        Port::alloc(ledger, Receiver::Reply)
    }

    /// Destroy a reply port from [`Port::alloc_reply`]: its queue is destroyed and the
    /// send-once right to it, if still out, becomes a dead name. Call with no IPC lock
    /// held; does nothing to another kind of port.
    pub fn dealloc_reply(port: Arc<Port>) {
        {
            let mut st = port.lock();
            if !matches!(st.receiver, Receiver::Reply) {
                return;
            }
            st.receiver = Receiver::Limbo;
        }
        let mut reaper = super::right::Reaper::new();
        reaper.destroy_port(port);
        reaper.run();
    }

    /// Give up a reply port from [`Port::alloc_reply`] whose answer the kernel no longer
    /// waits for (its thread is terminating). GNU Mach keeps a thread's reply port
    /// (`ith_rpc_reply`) past `thread_terminate`, so a handler that terminates the thread
    /// and then answers sends its reply (`MACH_MSG_SUCCESS`) rather than finding a dead
    /// name (`MACH_SEND_INVALID_DEST`). Likewise here: while the send-once right is still
    /// out and nothing is queued, the port lives on, [`Receiver::Abandoned`], until the
    /// one message that right will bring, which destroys the port and itself; otherwise
    /// the port is destroyed now, as by [`Port::dealloc_reply`]. Call with no IPC lock
    /// held; does nothing to another kind of port.
    pub fn abandon_reply(port: Arc<Port>) {
        {
            let mut st = port.lock();
            if !matches!(st.receiver, Receiver::Reply) {
                return;
            }
            if st.active && st.sorights > 0 && st.msgcount == 0 {
                st.receiver = Receiver::Abandoned;
                return;
            }
            st.receiver = Receiver::Limbo;
        }
        let mut reaper = super::right::Reaper::new();
        reaper.destroy_port(port);
        reaper.run();
    }

    /// A new port whose receive right is handed to the caller, naked (for the kernel to
    /// place in a space or a message).
    pub fn alloc_receive(ledger: &Arc<dyn Ledger>) -> Result<Right, KernReturn> {
        let port = Port::alloc(ledger, Receiver::Limbo)?;
        Ok(Right::new(port, RightKind::Receive, None))
    }

    pub fn id(&self) -> u64 {
        self.id
    }

    #[inline]
    pub(crate) fn lock(&self) -> IrqSpinLockGuard<'_, PortState> {
        self.state.lock()
    }

    /// Whether the port is alive.
    #[inline]
    pub fn is_active(&self) -> bool {
        self.lock().active
    }

    /// Whether the kernel holds the receive right (messages to it are served by the kernel).
    pub fn is_kernel(&self) -> bool {
        let st = self.lock();
        st.active && matches!(st.receiver, Receiver::Kernel)
    }

    pub fn kobject(&self) -> Option<KObject> {
        self.lock().kobject.clone()
    }

    /// Set or clear the kernel object (GNU Mach `ipc_kobject_set`); returns the old one,
    /// to be dropped by the caller with no IPC lock held.
    pub fn set_kobject(&self, kobject: Option<KObject>) -> Option<KObject> {
        core::mem::replace(&mut self.lock().kobject, kobject)
    }

    /// Ask for the senders hook ([`set_senders_hook`]) whenever a send right to this
    /// port is released and at most one is left (a task's port: `kern::task`).
    pub fn watch_senders(&self) {
        self.lock().watch_senders = true;
    }

    /// A naked send right made from the receive right (GNU Mach `ipc_port_make_send`):
    /// the make-send count goes up. `None` if the port is dead.
    pub fn make_send(self: &Arc<Self>) -> Option<Right> {
        let mut st = self.lock();
        if !st.active {
            return None;
        }
        st.mscount = st.mscount.wrapping_add(1);
        st.srights += 1;
        drop(st);
        Some(Right::new(self.clone(), RightKind::Send, None))
    }

    /// A naked send-once right, its message paid for by `ledger` (GNU Mach
    /// `ipc_port_make_sonce`).
    pub fn make_send_once(self: &Arc<Self>, ledger: &Arc<dyn Ledger>) -> Result<Right, KernReturn> {
        let prepaid = Charge::new(ledger, Kind::SendOnce, 1)?;
        let mut st = self.lock();
        if !st.active {
            return Err(KernReturn::InvalidCapability);
        }
        st.sorights += 1;
        drop(st);
        Ok(Right::new(self.clone(), RightKind::SendOnce, Some(prepaid)))
    }

    /// A snapshot of the counts, for tests and `mach_port_get_receive_status`.
    pub fn status(&self) -> PortStatus {
        let st = self.lock();
        PortStatus {
            active: st.active,
            mscount: st.mscount,
            srights: st.srights,
            sorights: st.sorights,
            qlimit: st.qlimit,
            msgcount: st.msgcount,
            seqno: self.seqno.load(Ordering::Relaxed),
            in_set: st.pset.is_some(),
            nsrequest: st.nsrequest.is_some(),
            pdrequest: st.pdrequest.is_some(),
            dnrequests: st.dnrequests.len(),
        }
    }

    /// The address that names this port's queue or senders for waiting (see `mqueue`).
    pub(crate) fn addr(&self) -> usize {
        self as *const Port as usize
    }
}

/// Counts of a port at one moment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PortStatus {
    pub active: bool,
    pub mscount: u32,
    pub srights: u32,
    pub sorights: u32,
    pub qlimit: u32,
    pub msgcount: u32,
    pub seqno: u32,
    pub in_set: bool,
    pub nsrequest: bool,
    pub pdrequest: bool,
    pub dnrequests: usize,
}

impl core::fmt::Debug for Port {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "Port({})", self.id)
    }
}

/// Host tests: the rights a port holds (in its queue and its requests).
#[cfg(test)]
impl Port {
    pub(crate) fn debug_held_rights(&self, each: &mut dyn FnMut(&Right)) {
        let st = self.lock();
        for m in &st.queue {
            m.debug_rights(each);
        }
        for r in [&st.nsrequest, &st.pdrequest].into_iter().flatten() {
            each(r);
        }
        for req in st.dnrequests.values() {
            each(&req.soright);
        }
    }

    /// The (space id, name) of each dead-name request.
    pub(crate) fn debug_dnrequests(&self) -> alloc::vec::Vec<(u64, u32)> {
        self.lock().dnrequests.keys().copied().collect()
    }

    pub(crate) fn debug_receiver(&self) -> &'static str {
        match self.lock().receiver {
            Receiver::Space { .. } => "space",
            Receiver::Transit(_) => "transit",
            Receiver::Limbo => "limbo",
            Receiver::Kernel => "kernel",
            Receiver::Reply => "reply",
            Receiver::Abandoned => "abandoned",
        }
    }
}
