//! Port rights held by no space (GNU Mach's "naked" rights: in a message, or in the
//! kernel's hands), and what happens when one is destroyed: the counts on its port go
//! down, the last send right triggers a no-senders notification, a send-once right
//! becomes a send-once notification, a receive right destroys its port (or goes to the
//! port-destroyed notification's receiver), and a dead port's queued messages, dead-name
//! requests and requests are cleaned up (GNU Mach `ipc_object_destroy`,
//! `ipc_port_destroy`, `ipc_notify_*`, `ipc_kmsg_destroy`).
//!
//! Destruction cascades (a destroyed port's queue holds messages holding receive rights
//! of ports with queues …). The [`Reaper`] turns that recursion into a loop: a dying
//! port's whole queue is appended to the reaper's list (relinked, not copied) and taken
//! apart one message at a time, so the kernel stack stays bounded whatever a user built.
//! A reaper runs with no IPC lock held; code that holds one collects its work in a
//! [`Deferred`] and hands it over after unlocking.

extern crate alloc;

use super::abi::{PortName, msg_type, msgh_bits, notify};
use super::kmsg::{HEADER_SIZE, Kmsg, KmsgQueue, KmsgShape};
use super::ledger::Charge;
use super::mqueue::{self, SendResult};
use super::port::{Port, Receiver};
use super::pset::move_messages;
use alloc::sync::Arc;
use arrayvec::ArrayVec;

/// The three kinds of port right.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RightKind {
    Send,
    SendOnce,
    Receive,
}

/// One port right outside any space. Dropping it destroys it (with the notifications
/// that causes); do that with no IPC lock held.
pub struct Right {
    /// `Some` for the right's whole life; taken only as it is consumed.
    port: Option<Arc<Port>>,
    kind: RightKind,
    /// A send-once right's prepaid message (see `ledger`).
    prepaid: Option<Charge>,
}

impl Right {
    pub(crate) fn new(port: Arc<Port>, kind: RightKind, prepaid: Option<Charge>) -> Right {
        Right {
            port: Some(port),
            kind,
            prepaid,
        }
    }

    pub fn kind(&self) -> RightKind {
        self.kind
    }

    pub fn port(&self) -> &Arc<Port> {
        // Only `into_parts` and `drop` take the port, and both consume the right.
        self.port
            .as_ref()
            .expect("a right holds its port until consumed")
    }

    /// The type a receiver sees for this right (`MACH_MSG_TYPE_PORT_*`).
    pub fn msg_type(&self) -> u32 {
        match self.kind {
            RightKind::Send => msg_type::PORT_SEND,
            RightKind::SendOnce => msg_type::PORT_SEND_ONCE,
            RightKind::Receive => msg_type::PORT_RECEIVE,
        }
    }

    /// Granules prepaid for the message a send-once right will carry (0 for others).
    pub fn prepaid_blocks(&self) -> usize {
        self.prepaid.as_ref().map_or(0, Charge::blocks)
    }

    /// Take the prepaid charge of a send-once right, to pay for the message it is about
    /// to carry (a kernel server's reply, `server::kobject`).
    pub(crate) fn take_prepaid(&mut self) -> Option<Charge> {
        self.prepaid.take()
    }

    pub(crate) fn into_parts(mut self) -> (Arc<Port>, RightKind, Option<Charge>) {
        let port = self
            .port
            .take()
            .expect("a right holds its port until consumed");
        (port, self.kind, self.prepaid.take())
    }

    /// Another send right to the same port (GNU Mach `ipc_port_copy_send`): dead if the
    /// port is. Only for send rights.
    pub fn copy_send(&self) -> MsgPort {
        debug_assert_eq!(self.kind, RightKind::Send);
        let port = self.port();
        let mut st = port.lock();
        if !st.active {
            return MsgPort::Dead;
        }
        st.srights += 1;
        drop(st);
        MsgPort::Right(Right::new(port.clone(), RightKind::Send, None))
    }
}

impl Drop for Right {
    fn drop(&mut self) {
        if let Some(port) = self.port.take() {
            let mut reaper = Reaper::new();
            reaper.release_parts(port, self.kind, self.prepaid.take());
            reaper.run();
        }
    }
}

impl core::fmt::Debug for Right {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{:?}({:?})", self.kind, self.port)
    }
}

/// What a port field or port slot of a message holds.
#[derive(Debug, Default)]
pub enum MsgPort {
    /// `MACH_PORT_NULL`.
    #[default]
    Null,
    /// `MACH_PORT_DEAD`: the sender named a dead name.
    Dead,
    Right(Right),
}

impl MsgPort {
    /// Take the value out, leaving `Null`.
    pub fn take(&mut self) -> MsgPort {
        core::mem::take(self)
    }

    /// The received type of a right (`None` for null and dead).
    pub fn msg_type(&self) -> Option<u32> {
        match self {
            MsgPort::Right(r) => Some(r.msg_type()),
            _ => None,
        }
    }

    pub fn right(&self) -> Option<&Right> {
        match self {
            MsgPort::Right(r) => Some(r),
            _ => None,
        }
    }

    pub fn into_right(self) -> Option<Right> {
        match self {
            MsgPort::Right(r) => Some(r),
            _ => None,
        }
    }
}

/// A notification (GNU Mach `ipc_notify_*`), sent through a send-once right.
pub(crate) enum Notification {
    PortDeleted(PortName),
    /// A message forced onto a full queue with `MACH_SEND_NOTIFY` left it; the sender's
    /// name for the port (null if the sender no longer has one).
    MsgAccepted(PortName),
    PortDestroyed(Right),
    NoSenders(u32),
    SendOnce,
    DeadName(PortName),
}

/// Work found while holding a lock, done after letting go of it.
pub(crate) enum Work {
    Release(Right),
    /// A port whose receive right was destroyed (already taken from its holder).
    DestroyPort(Arc<Port>),
    Notify(Right, Notification),
}

/// At most this much work comes out of one locked step (an entry's rights and requests,
/// or a message header's two rights and their requests).
const DEFERRED_MAX: usize = 8;

#[derive(Default)]
pub(crate) struct Deferred {
    work: ArrayVec<Work, DEFERRED_MAX>,
}

impl Deferred {
    pub fn new() -> Self {
        Deferred {
            work: ArrayVec::new_const(),
        }
    }

    /// Queue `w`. The bound is structural (see `DEFERRED_MAX`); past it the work is done
    /// at once, which can only be reached by a kernel bug, never by user input.
    pub fn push(&mut self, w: Work) {
        if let Err(e) = self.work.try_push(w) {
            debug_assert!(false, "deferred IPC work overflowed");
            let mut r = Reaper::new();
            r.work(e.element());
            r.run();
        }
    }

    pub fn release(&mut self, right: Option<Right>) {
        if let Some(r) = right {
            self.push(Work::Release(r));
        }
    }

    pub fn notify(&mut self, soright: Option<Right>, n: Notification) {
        if let Some(r) = soright {
            self.push(Work::Notify(r, n));
        }
    }

    /// Take out the port-deleted notification for `name` that would go to `port`, if one
    /// was queued (`MACH_SEND_CANCEL`): its send-once right.
    pub fn take_port_deleted(&mut self, name: PortName, port: &Arc<Port>) -> Option<Right> {
        let i = self.work.iter().position(|w| {
            matches!(w, Work::Notify(r, Notification::PortDeleted(n))
                if *n == name && Arc::ptr_eq(r.port(), port))
        })?;
        match self.work.remove(i) {
            Work::Notify(r, _) => Some(r),
            other => {
                self.push(other);
                None
            }
        }
    }

    /// Do it all (no IPC lock may be held). Takes `&mut self`: a by-value call would copy
    /// the whole list (most often empty) on every message.
    pub fn run(&mut self) {
        if self.work.is_empty() {
            return;
        }
        let mut r = Reaper::new();
        for w in self.work.drain(..) {
            r.work(w);
        }
        r.run();
    }
}

/// Destroys rights, ports and messages without recursion (see the module comment).
pub(crate) struct Reaper {
    /// Messages of dead ports, to be taken apart. Their destination rights die quietly.
    msgs: KmsgQueue,
}

impl Reaper {
    pub fn new() -> Self {
        Reaper {
            msgs: KmsgQueue::new(),
        }
    }

    pub fn work(&mut self, w: Work) {
        match w {
            Work::Release(r) => self.release(r),
            Work::DestroyPort(p) => self.destroy_port(p),
            Work::Notify(r, n) => self.notify(r, n),
        }
    }

    /// Destroy a right (GNU Mach `ipc_object_destroy`).
    pub fn release(&mut self, right: Right) {
        let (port, kind, prepaid) = right.into_parts();
        self.release_parts(port, kind, prepaid);
    }

    fn release_parts(&mut self, port: Arc<Port>, kind: RightKind, prepaid: Option<Charge>) {
        match kind {
            RightKind::Send => {
                let (nsrequest, watched) = {
                    let mut st = port.lock();
                    st.srights = st.srights.saturating_sub(1);
                    let watched = st.active && st.watch_senders && st.srights <= 1;
                    let nsrequest = if st.srights == 0 && st.active {
                        let mscount = st.mscount;
                        st.nsrequest.take().map(|r| (r, mscount))
                    } else {
                        None
                    };
                    (nsrequest, watched)
                };
                if watched {
                    super::port::senders_hook(&port);
                }
                drop(port);
                if let Some((r, mscount)) = nsrequest {
                    self.notify(r, Notification::NoSenders(mscount));
                }
            }
            RightKind::SendOnce => {
                let soright = Right::new(port, RightKind::SendOnce, prepaid);
                self.notify(soright, Notification::SendOnce);
            }
            RightKind::Receive => {
                // A naked receive right (in limbo or in transit): nobody else holds it.
                port.lock().receiver = Receiver::Limbo;
                self.destroy_port(port);
            }
        }
    }

    /// Consume a message's destination right with no notification (the message could not
    /// be delivered because the port died, or it was received).
    pub fn consume_quietly(&mut self, right: Right) {
        let (port, kind, prepaid) = right.into_parts();
        match kind {
            RightKind::Send => {
                let mut st = port.lock();
                st.srights = st.srights.saturating_sub(1);
            }
            RightKind::SendOnce => {
                let mut st = port.lock();
                st.sorights = st.sorights.saturating_sub(1);
            }
            RightKind::Receive => return self.release_parts(port, kind, prepaid),
        }
        drop(prepaid);
        drop(port);
    }

    /// Destroy a port whose receive right has been taken from its holder (GNU Mach
    /// `ipc_port_destroy`): unless a port-destroyed notification takes the receive right
    /// elsewhere, the port dies, its senders and receivers are woken, its queue is
    /// destroyed and its dead-name requests are notified.
    pub fn destroy_port(&mut self, port: Arc<Port>) {
        let mut st = port.lock();
        if !st.active {
            return;
        }
        if let Some(pd) = st.pdrequest.take() {
            st.receiver = Receiver::Limbo;
            drop(st);
            let right = Right::new(port, RightKind::Receive, None);
            self.notify(pd, Notification::PortDestroyed(right));
            return;
        }
        st.active = false;
        st.receiver = Receiver::Limbo;
        mqueue::wake_port_all(&port, &mut st);
        let nsrequest = st.nsrequest.take();
        let mut queue = core::mem::take(&mut st.queue);
        let dnrequests = core::mem::take(&mut st.dnrequests);
        let dn_root = st.dn_root.take();
        let kobject = st.kobject.take();
        let pset = st.pset.take();
        if let Some(set) = &pset {
            let mut ss = set.lock();
            move_messages(&mut ss.queue, &mut queue, &port);
            ss.members = ss.members.saturating_sub(1);
        }
        st.msgcount = 0;
        drop(st);
        drop(pset);
        drop(kobject);
        if let Some(r) = nsrequest {
            self.notify(r, Notification::SendOnce);
        }
        self.msgs.append(&mut queue);
        for ((_, name), request) in dnrequests {
            let super::port::DnRequest { soright, _charge } = request;
            self.notify(soright, Notification::DeadName(PortName(name)));
        }
        drop(dn_root);
    }

    /// Take a message apart: its rights are released (the destination quietly if
    /// `quiet_dest`), its regions dropped. The emptied message is left to its owner.
    pub fn destroy_msg(&mut self, kmsg: &mut Kmsg, quiet_dest: bool) {
        if let Some(request) = kmsg.take_marequest() {
            self.msg_accepted(request);
        }
        if let Some(dest) = kmsg.take_remote() {
            if quiet_dest {
                self.consume_quietly(dest);
            } else {
                self.release(dest);
            }
        }
        if let MsgPort::Right(r) = kmsg.take_local() {
            self.release(r);
        }
        while let Some(p) = kmsg.pop_port() {
            if let MsgPort::Right(r) = p {
                self.release(r);
            }
        }
        while kmsg.take_ool().is_some() {}
    }

    /// Send notification `n` through `soright` (which pays for it): queued on its port
    /// whatever the queue limit, or destroyed if the port is dead. Never inlined: the
    /// message is built on the stack (up to a granule, moved a few times), and inlined into
    /// each of its callers' several call sites it made their frames kilobytes deep, enough
    /// for a port destroyed from the kernel's object server to overflow a kernel stack.
    #[inline(never)]
    pub fn notify(&mut self, soright: Right, n: Notification) {
        if let Some(kmsg) = self.notification(soright, n) {
            match mqueue::deliver(kmsg, true, |_| false, self) {
                SendResult::Queued | SendResult::Destroyed => {}
                // Notifications ignore the queue limit.
                SendResult::Full(k) => self.destroy_dead_letter(k),
            }
        }
    }

    /// A msg-accepted request ends (its message was received or destroyed): the sender's
    /// entry is unmarked and the notification sent with the sender's name for the port,
    /// or null if it has none now (GNU Mach `ipc_marequest_destroy`).
    pub fn msg_accepted(&mut self, request: super::kmsg::MaRequest) {
        let super::kmsg::MaRequest {
            space,
            port,
            soright,
        } = request;
        let name = space
            .upgrade()
            .map_or(PortName::NULL, |s| s.marequest_done(&port));
        drop(port);
        self.notify(soright, Notification::MsgAccepted(name));
    }

    fn destroy_dead_letter(&mut self, mut kmsg: Kmsg) {
        self.destroy_msg(&mut kmsg, true);
    }

    /// Finish everything (with no IPC lock held).
    pub fn run(&mut self) {
        while let Some(mut m) = self.msgs.pop_front() {
            self.destroy_msg(&mut m, true);
        }
    }
}

impl Drop for Reaper {
    fn drop(&mut self) {
        self.run();
    }
}

impl Reaper {
    /// Build a notification message (GNU Mach's templates in `ipc/ipc_notify.c`, LP64):
    /// the header, then for all but send-once one inline type descriptor and its 8-byte
    /// slot. Its body and right fit in the message itself, so building it allocates
    /// nothing; `None` (the rights consumed quietly) cannot happen.
    fn notification(&mut self, soright: Right, n: Notification) -> Option<Kmsg> {
        let (port, kind, prepaid) = soright.into_parts();
        let dest = Right::new(port, kind, None);
        let (id, descriptor, value, right): (i32, u64, u64, Option<Right>) = match n {
            Notification::PortDeleted(name) => (
                notify::PORT_DELETED,
                inline_descriptor(msg_type::PORT_NAME, 32),
                u64::from(name.0),
                None,
            ),
            Notification::MsgAccepted(name) => (
                notify::MSG_ACCEPTED,
                inline_descriptor(msg_type::PORT_NAME, 32),
                u64::from(name.0),
                None,
            ),
            Notification::DeadName(name) => (
                notify::DEAD_NAME,
                inline_descriptor(msg_type::PORT_NAME, 32),
                u64::from(name.0),
                None,
            ),
            Notification::NoSenders(mscount) => (
                notify::NO_SENDERS,
                inline_descriptor(msg_type::INTEGER_32, 32),
                u64::from(mscount),
                None,
            ),
            Notification::PortDestroyed(r) => (
                notify::PORT_DESTROYED,
                inline_descriptor(msg_type::PORT_RECEIVE, 64),
                0,
                Some(r),
            ),
            Notification::SendOnce => (notify::SEND_ONCE, 0, 0, None),
        };
        let body_len = if id == notify::SEND_ONCE { 0 } else { 16 };
        let shape = KmsgShape {
            body_len,
            ports: usize::from(right.is_some()),
            ool: 0,
        };
        // The prepaid granule pays; a notification is one granule (see `kmsg`).
        let Some(mut kmsg) = Kmsg::with_charge(shape, prepaid) else {
            self.consume_quietly(dest);
            if let Some(r) = right {
                self.release(r);
            }
            return None;
        };
        kmsg.id = id;
        kmsg.size = (HEADER_SIZE + body_len) as u32;
        if body_len != 0 {
            let mut body = [0u8; 16];
            body[..8].copy_from_slice(&descriptor.to_le_bytes());
            body[8..].copy_from_slice(&value.to_le_bytes());
            kmsg.body.extend_from_slice(&body);
        }
        kmsg.set_ports(dest, MsgPort::Null, 0);
        if let Some(r) = right {
            kmsg.bits |= msgh_bits::COMPLEX;
            // Room for one was reserved above.
            let _ = kmsg.push_port((HEADER_SIZE + 8) as u64, MsgPort::Right(r));
        }
        Some(kmsg)
    }
}

/// A short-form inline type descriptor (`mach_msg_type_t`, LP64) for one item.
pub(crate) const fn inline_descriptor(name: u32, size_bits: u32) -> u64 {
    let word = name | (size_bits << 8) | (1 << 29);
    (word as u64) | (1u64 << 32)
}
