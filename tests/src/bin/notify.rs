//! `notify`: the notifications of `notify.defs` (base 64) seen from user space. Each is
//! requested with `mach_port_request_notification` (served by the kernel) or arises by
//! itself (send-once), and is received with `mach_msg`; the checks are the message id, the
//! name or count in the body, and the counts the kernel keeps (user references, send-once
//! rights, requests) before and after.
//!
//! Then `mach_msg`'s notify options, as GNU Mach has them (`ipc/mach_msg.c`,
//! `ipc/ipc_kmsg.c`): `MACH_SEND_CANCEL` (moving the last send right of a name with a
//! dead-name request sends no port-deleted notification to the notify port),
//! `MACH_RCV_NOTIFY` (a reply right received under a new name gets a dead-name request for
//! the notify port) and `MACH_SEND_NOTIFY` (a message for a full queue is queued anyway and
//! `MACH_SEND_WILL_NOTIFY` returned; a msg-accepted notification follows when it leaves
//! the queue).
//!
//! A task holds its send and receive rights for a port under one name, so to see a dead
//! name or a deleted one in a single task the receive right is first moved into a message
//! queued on another port: the task keeps only the send right, and destroying the other
//! port destroys the message and so the receive right.

#![no_std]
#![no_main]

use armach_tests::Checks;
use armach_tests::msg::{Msg, mach_msg, port_desc};
use libmach::abi::message::{
    MACH_MSG_TYPE_MAKE_SEND, MACH_MSG_TYPE_MAKE_SEND_ONCE, MACH_MSG_TYPE_MOVE_RECEIVE,
    MACH_MSG_TYPE_MOVE_SEND, MACH_MSG_TYPE_PORT_RECEIVE, MACH_MSG_TYPE_PORT_SEND_ONCE,
    MACH_MSGH_BITS_COMPLEX, msgh_bits, option,
};
use libmach::abi::mig::PortArg;
use libmach::ipc;
use libmach::mig::mach_port;
use libmach::{Args, KernReturn, PortName, traps};

libmach::main!(main);

/// `notify.defs` message ids (`mach/notify.h`).
const PORT_DELETED: i32 = 65;
const MSG_ACCEPTED: i32 = 66;
const PORT_DESTROYED: i32 = 69;
const NO_SENDERS: i32 = 70;
const SEND_ONCE: i32 = 71;
const DEAD_NAME: i32 = 72;

/// `MACH_PORT_RIGHT_*` for `mach_port_get_refs`.
const RIGHT_SEND: u32 = 0;
const RIGHT_RECEIVE: u32 = 1;
const RIGHT_SEND_ONCE: u32 = 2;
const RIGHT_DEAD_NAME: u32 = 4;
/// `MACH_PORT_TYPE_*` bits.
const TYPE_SEND: u32 = 1 << 16;
const TYPE_RECEIVE: u32 = 1 << 17;
const TYPE_DEAD_NAME: u32 = 1 << 20;
const TYPE_DNREQUEST: u32 = 0x8000_0000;

/// Indices in `mach_port_status_t` (`mach_port_get_receive_status`).
const STATUS_MSCOUNT: usize = 2;
const STATUS_MSGCOUNT: usize = 4;
const STATUS_SORIGHTS: usize = 5;
const STATUS_PDREQUEST: usize = 7;
const STATUS_NSREQUEST: usize = 8;

/// How long a receive waits for a notification that must already be queued.
const WAIT_MS: u32 = 2000;

/// The test's checks, and helpers over the `mach_port` stubs and `mach_msg`.
struct T {
    c: Checks,
}

impl T {
    fn task(&self) -> PortName {
        traps::mach_task_self()
    }

    fn port(&mut self) -> PortName {
        let p = traps::mach_reply_port();
        self.c
            .check(p.0 != 0, "a receive right", format_args!("{p:?}"));
        p
    }

    /// `mach_port_request_notification(name, id, sync, MAKE_SEND_ONCE(notify))`: the
    /// result and the name of the previous right (0 if none).
    fn request(
        &self,
        name: PortName,
        id: i32,
        sync: u32,
        notify: PortName,
    ) -> Result<PortName, KernReturn> {
        let task = ipc::task_self();
        // A null name cancels (it travels as a null send-once right).
        let arg = PortArg::Raw(notify, MACH_MSG_TYPE_MAKE_SEND_ONCE);
        mach_port::mach_port_request_notification(&mut ipc::transport(), &task, name, id, sync, arg)
            .map(|out| out.previous.into_name())
    }

    fn refs(&self, name: PortName, right: u32) -> Option<u32> {
        let task = ipc::task_self();
        mach_port::mach_port_get_refs(&mut ipc::transport(), &task, name, right)
            .ok()
            .map(|o| o.refs)
    }

    fn ptype(&self, name: PortName) -> Result<u32, KernReturn> {
        let task = ipc::task_self();
        mach_port::mach_port_type(&mut ipc::transport(), &task, name).map(|o| o.ptype)
    }

    fn status(&self, name: PortName) -> [i32; 9] {
        let task = ipc::task_self();
        mach_port::mach_port_get_receive_status(&mut ipc::transport(), &task, name)
            .map(|o| o.status)
            .unwrap_or([-1; 9])
    }

    fn destroy(&self, name: PortName) -> Result<(), KernReturn> {
        let task = ipc::task_self();
        mach_port::mach_port_destroy(&mut ipc::transport(), &task, name)
    }

    /// Move the receive right `p` into a message queued on `q` (the task keeps its send
    /// rights for `p`, if any).
    fn park_receive(&mut self, p: PortName, q: PortName) {
        let mut m = Msg::new();
        m.header(
            msgh_bits(MACH_MSG_TYPE_MAKE_SEND, 0) | MACH_MSGH_BITS_COMPLEX,
            q,
            PortName(0),
            900,
        );
        m.desc(32, port_desc(MACH_MSG_TYPE_MOVE_RECEIVE, 1));
        m.put64(40, u64::from(p.0));
        let r = mach_msg(&mut m, option::SEND_MSG, 48, 0, PortName(0), 0);
        self.c.check_eq(
            "the receive right leaves in a message",
            r,
            KernReturn::Success,
        );
    }

    /// `mach_msg` with `notify`: a header-only message (`bits`, `dest`, `reply`, `id`)
    /// sent with `opt`.
    fn send_with(
        &mut self,
        opt: u32,
        bits: u32,
        dest: PortName,
        reply: PortName,
        id: i32,
        notify: PortName,
    ) -> KernReturn {
        let mut m = Msg::new();
        m.header(bits, dest, reply, id);
        // SAFETY: a 32-byte message in the 128-byte buffer.
        unsafe { traps::mach_msg(m.ptr(), opt, 32, 0, PortName(0), 0, notify) }
    }

    /// Receive on `name` with `MACH_RCV_NOTIFY` and `notify`, not waiting.
    fn receive_notify(&mut self, name: PortName, notify: PortName) -> (KernReturn, Msg) {
        let mut m = Msg::new();
        // SAFETY: receives at most 128 bytes into the 128-byte buffer.
        let r = unsafe {
            traps::mach_msg(
                m.ptr(),
                option::RCV_MSG | option::RCV_TIMEOUT | option::RCV_NOTIFY,
                0,
                128,
                name,
                0,
                notify,
            )
        };
        (r, m)
    }

    fn qlimit(&self, name: PortName, limit: u32) -> Result<(), KernReturn> {
        let task = ipc::task_self();
        mach_port::mach_port_set_qlimit(&mut ipc::transport(), &task, name, limit)
    }

    /// Receive on `n`, waiting up to `ms`.
    fn receive(&mut self, n: PortName, ms: u32) -> (KernReturn, Msg) {
        let mut m = Msg::new();
        let r = mach_msg(&mut m, option::RCV_MSG | option::RCV_TIMEOUT, 0, 128, n, ms);
        (r, m)
    }

    /// Receive a notification on `n` and check its id, size and header.
    fn notification(&mut self, n: PortName, what: &str, id: i32, size: u32) -> Msg {
        let (r, m) = self.receive(n, WAIT_MS);
        self.c.check_eq(what, r, KernReturn::Success);
        self.c.check_eq("  its id", m.id(), id);
        self.c.check_eq("  its size", m.size(), size);
        self.c
            .check_eq("  it came to the notify port", m.local(), u64::from(n.0));
        self.c.check_eq("  no reply port", m.remote(), 0);
        m
    }

    /// Nothing queued on `n`.
    fn nothing(&mut self, n: PortName, what: &str) {
        let (r, m) = self.receive(n, 0);
        self.c.check(
            r == KernReturn::RcvTimedOut,
            what,
            format_args!("{r:?}, id {}", m.id()),
        );
    }
}

fn main(_args: &Args) -> i32 {
    let mut t = T {
        c: Checks::new("notify"),
    };
    dead_name(&mut t);
    port_deleted(&mut t);
    no_senders(&mut t);
    send_once(&mut t);
    port_destroyed(&mut t);
    send_cancel(&mut t);
    rcv_notify(&mut t);
    send_notify(&mut t);
    t.c.finish()
}

/// A send right whose port dies becomes a dead name; the requester hears of it.
fn dead_name(t: &mut T) {
    let n = t.port();
    let p = t.port();
    let task = t.task();
    let r = traps::mach_port_insert_right(task, p, p, MACH_MSG_TYPE_MAKE_SEND);
    t.c.check_eq("dead-name: a send right", r, Ok(()));
    let q = t.port();
    t.park_receive(p, q);
    t.c.check_eq(
        "  the name holds the send right only",
        t.ptype(p),
        Ok(TYPE_SEND),
    );
    let prev = t.request(p, DEAD_NAME, 0, n);
    t.c.check_eq("  request a dead-name notification", prev, Ok(PortName(0)));
    t.c.check_eq(
        "  the name shows the request",
        t.ptype(p),
        Ok(TYPE_SEND | TYPE_DNREQUEST),
    );
    t.c.check_eq(
        "  the notify port has one send-once right out",
        t.status(n)[STATUS_SORIGHTS],
        1,
    );
    t.nothing(n, "  no notification yet");
    // Destroying q destroys the message holding p's receive right: p dies.
    t.c.check_eq(
        "  destroy the port holding the receive right",
        t.destroy(q),
        Ok(()),
    );
    let m = t.notification(n, "dead-name notification", DEAD_NAME, 48);
    t.c.check_eq("  it names the dead name", m.get32(40), p.0);
    t.c.check_eq(
        "  header bits",
        m.bits(),
        msgh_bits(0, MACH_MSG_TYPE_PORT_SEND_ONCE),
    );
    t.c.check_eq("  the name is a dead name", t.ptype(p), Ok(TYPE_DEAD_NAME));
    // GNU Mach: the send right's reference plus one for the notification.
    t.c.check_eq(
        "  two dead-name references",
        t.refs(p, RIGHT_DEAD_NAME),
        Some(2),
    );
    t.c.check_eq(
        "  the notify port's send-once right was used",
        t.status(n)[STATUS_SORIGHTS],
        0,
    );
    let task = t.task();
    t.c.check_eq(
        "  deallocate the dead name twice",
        (
            traps::mach_port_deallocate(task, p),
            traps::mach_port_deallocate(task, p),
        ),
        (Ok(()), Ok(())),
    );
    t.c.check_eq(
        "  then it is gone",
        t.ptype(p),
        Err(KernReturn::InvalidName),
    );
    t.nothing(n, "  one notification only");
    let _ = t.destroy(n);
}

/// A send right with a dead-name request deallocated while its port lives: port-deleted.
fn port_deleted(t: &mut T) {
    let n = t.port();
    let p = t.port();
    let task = t.task();
    let _ = traps::mach_port_insert_right(task, p, p, MACH_MSG_TYPE_MAKE_SEND);
    let q = t.port();
    t.park_receive(p, q);
    let prev = t.request(p, DEAD_NAME, 0, n);
    t.c.check_eq(
        "port-deleted: request on the send right",
        prev,
        Ok(PortName(0)),
    );
    let r = traps::mach_port_deallocate(task, p);
    t.c.check_eq("  deallocate the send right", r, Ok(()));
    let m = t.notification(n, "port-deleted notification", PORT_DELETED, 48);
    t.c.check_eq("  it names the deleted name", m.get32(40), p.0);
    t.c.check_eq(
        "  the name is gone",
        t.ptype(p),
        Err(KernReturn::InvalidName),
    );
    t.c.check_eq(
        "  no send-once right left out",
        t.status(n)[STATUS_SORIGHTS],
        0,
    );
    // The port dies now, but nobody asks about it any more.
    let _ = t.destroy(q);
    t.nothing(n, "  no dead-name notification after");
    let _ = t.destroy(n);
}

/// The last send right goes: no-senders, with the make-send count.
fn no_senders(t: &mut T) {
    let n = t.port();
    let p = t.port();
    // No send rights and sync 0 <= mscount 0: armed and fired at once.
    let prev = t.request(p, NO_SENDERS, 0, n);
    t.c.check_eq("no-senders: request with no senders", prev, Ok(PortName(0)));
    let m = t.notification(n, "  fired at once", NO_SENDERS, 48);
    t.c.check_eq("  make-send count 0", m.get32(40), 0);
    t.c.check_eq("  the request is used", t.status(p)[STATUS_NSREQUEST], 0);
    // Two send rights made: mscount 2.
    let task = t.task();
    for _ in 0..2 {
        let r = traps::mach_port_insert_right(task, p, p, MACH_MSG_TYPE_MAKE_SEND);
        t.c.check_eq("  make a send right", r, Ok(()));
    }
    t.c.check_eq("  make-send count", t.status(p)[STATUS_MSCOUNT], 2);
    t.c.check_eq("  two user references", t.refs(p, RIGHT_SEND), Some(2));
    let prev = t.request(p, NO_SENDERS, 2, n);
    t.c.check_eq("  request with senders", prev, Ok(PortName(0)));
    t.c.check_eq("  the request is held", t.status(p)[STATUS_NSREQUEST], 1);
    t.nothing(n, "  nothing while senders remain");
    let _ = traps::mach_port_deallocate(task, p);
    t.nothing(n, "  nothing after the first of two references");
    let _ = traps::mach_port_deallocate(task, p);
    let m = t.notification(n, "  no-senders after the last", NO_SENDERS, 48);
    t.c.check_eq("  make-send count 2", m.get32(40), 2);
    t.c.check_eq("  the request is used", t.status(p)[STATUS_NSREQUEST], 0);
    t.c.check_eq("  the receive right stays", t.ptype(p), Ok(TYPE_RECEIVE));
    let _ = t.destroy(p);
    let _ = t.destroy(n);
}

/// A send-once right destroyed unused: its port gets a send-once notification. Requests
/// replaced or cancelled give back the send-once right registered before, and that right
/// destroyed is such a notification too.
fn send_once(t: &mut T) {
    let p = t.port();
    let task = t.task();
    let so = PortName(0x5e0);
    let r = traps::mach_port_insert_right(task, so, p, MACH_MSG_TYPE_MAKE_SEND_ONCE);
    t.c.check_eq("send-once: make a send-once right", r, Ok(()));
    t.c.check_eq("  one send-once right out", t.status(p)[STATUS_SORIGHTS], 1);
    t.c.check_eq("  one reference", t.refs(so, RIGHT_SEND_ONCE), Some(1));
    let r = traps::mach_port_deallocate(task, so);
    t.c.check_eq("  deallocate it unused", r, Ok(()));
    let m = t.notification(p, "send-once notification", SEND_ONCE, 32);
    t.c.check_eq(
        "  header bits",
        m.bits(),
        msgh_bits(0, MACH_MSG_TYPE_PORT_SEND_ONCE),
    );
    t.c.check_eq("  no send-once right out", t.status(p)[STATUS_SORIGHTS], 0);

    // A request replaced: the previous right comes back.
    let n = t.port();
    let first = t.request(p, DEAD_NAME, 0, n);
    t.c.check_eq(
        "  a dead-name request on a receive right",
        first,
        Ok(PortName(0)),
    );
    let again = t.request(p, DEAD_NAME, 0, n);
    let prev = again.unwrap_or(PortName(0));
    t.c.check(
        prev.0 != 0,
        "  replacing it gives back the previous send-once right",
        format_args!("{again:?}"),
    );
    t.c.check_eq(
        "  two send-once rights out",
        t.status(n)[STATUS_SORIGHTS],
        2,
    );
    let r = traps::mach_port_deallocate(task, prev);
    t.c.check_eq("  deallocate the returned right", r, Ok(()));
    t.notification(n, "  its send-once notification", SEND_ONCE, 32);
    let cancelled = t.request(p, DEAD_NAME, 0, PortName(0));
    let prev = cancelled.unwrap_or(PortName(0));
    t.c.check(
        prev.0 != 0,
        "  cancelling gives back the registered right",
        format_args!("{cancelled:?}"),
    );
    t.c.check_eq("  no request shown", t.ptype(p), Ok(TYPE_RECEIVE));
    let r = traps::mach_port_deallocate(task, prev);
    t.c.check_eq("  deallocate it", r, Ok(()));
    t.notification(n, "  its send-once notification", SEND_ONCE, 32);
    t.c.check_eq("  no send-once right out", t.status(n)[STATUS_SORIGHTS], 0);
    let _ = t.destroy(p);
    t.nothing(n, "  no notification when the port dies unrequested");
    let _ = t.destroy(n);
}

/// A receive right with a port-destroyed request is not destroyed: it comes to the
/// requester in the notification, messages and all.
fn port_destroyed(t: &mut T) {
    let n = t.port();
    let p = t.port();
    let mut m = Msg::new();
    m.header(msgh_bits(MACH_MSG_TYPE_MAKE_SEND, 0), p, PortName(0), 4242);
    let r = mach_msg(&mut m, option::SEND_MSG, 32, 0, PortName(0), 0);
    t.c.check_eq("port-destroyed: a message queued", r, KernReturn::Success);
    let prev = t.request(p, PORT_DESTROYED, 0, n);
    t.c.check_eq(
        "  request a port-destroyed notification",
        prev,
        Ok(PortName(0)),
    );
    t.c.check_eq("  the request is held", t.status(p)[STATUS_PDREQUEST], 1);
    let bad = t.request(p, PORT_DESTROYED, 1, n);
    t.c.check_eq(
        "  a non-zero sync is refused",
        bad,
        Err(KernReturn::InvalidValue),
    );
    // The refused request's send-once right is destroyed with it (GNU Mach's server).
    t.notification(
        n,
        "  its right comes back as a send-once notification",
        SEND_ONCE,
        32,
    );
    t.c.check_eq("  one send-once right out", t.status(n)[STATUS_SORIGHTS], 1);
    t.c.check_eq("  destroy the receive right", t.destroy(p), Ok(()));
    t.c.check_eq(
        "  the name is gone",
        t.ptype(p),
        Err(KernReturn::InvalidName),
    );
    let m = t.notification(n, "port-destroyed notification", PORT_DESTROYED, 48);
    t.c.check_eq(
        "  header bits",
        m.bits(),
        MACH_MSGH_BITS_COMPLEX | msgh_bits(0, MACH_MSG_TYPE_PORT_SEND_ONCE),
    );
    let desc = libmach::abi::message::TypeDesc::from_words(m.get32(32), m.get32(36));
    t.c.check_eq(
        "  it carries a receive right",
        desc.name,
        MACH_MSG_TYPE_PORT_RECEIVE,
    );
    let r = PortName(m.get64(40) as u32);
    t.c.check_eq("  the right is ours", t.ptype(r), Ok(TYPE_RECEIVE));
    t.c.check_eq("  with its message", t.status(r)[STATUS_MSGCOUNT], 1);
    t.c.check_eq(
        "  and no request any more",
        t.status(r)[STATUS_PDREQUEST],
        0,
    );
    let (got, m) = t.receive(r, 0);
    t.c.check_eq(
        "  the message is still there",
        (got, m.id()),
        (KernReturn::Success, 4242),
    );
    t.c.check_eq("  receive right refs", t.refs(r, RIGHT_RECEIVE), Some(1));
    let _ = t.destroy(r);
    t.nothing(n, "  destroyed for good this time: no notification");
    let _ = t.destroy(n);
}

/// `MACH_SEND_CANCEL`: the port-deleted notification the destination's copyin would send
/// to the notify port is not sent.
fn send_cancel(t: &mut T) {
    let task = t.task();
    let n = t.port();
    let p = t.port();
    let _ = traps::mach_port_insert_right(task, p, p, MACH_MSG_TYPE_MAKE_SEND);
    let q = t.port();
    t.park_receive(p, q);
    let _ = t.request(p, DEAD_NAME, 0, n);
    let send_cancel = option::SEND_MSG | option::SEND_CANCEL;
    let move_send = msgh_bits(MACH_MSG_TYPE_MOVE_SEND, 0);
    let r = t.send_with(send_cancel, move_send, p, PortName(0), 1, PortName(0));
    t.c.check_eq(
        "SEND_CANCEL without a notify port",
        r,
        KernReturn::SendInvalidNotify,
    );
    let r = t.send_with(send_cancel, move_send, p, PortName(0), 1, p);
    t.c.check_eq(
        "SEND_CANCEL with a notify name that is no receive right",
        r,
        KernReturn::SendInvalidNotify,
    );
    t.c.check_eq(
        "  the send right is still there",
        t.ptype(p),
        Ok(TYPE_SEND | TYPE_DNREQUEST),
    );
    let r = t.send_with(send_cancel, move_send, p, PortName(0), 1, n);
    t.c.check_eq(
        "SEND_CANCEL moving the last send right",
        r,
        KernReturn::Success,
    );
    t.c.check_eq(
        "  the name is gone",
        t.ptype(p),
        Err(KernReturn::InvalidName),
    );
    t.nothing(n, "  no port-deleted notification");
    t.c.check_eq(
        "  the request's send-once right died quietly",
        t.status(n)[STATUS_SORIGHTS],
        0,
    );

    // The same with a notify port the request does not go to: the notification comes.
    let p2 = t.port();
    let _ = traps::mach_port_insert_right(task, p2, p2, MACH_MSG_TYPE_MAKE_SEND);
    t.park_receive(p2, q);
    let _ = t.request(p2, DEAD_NAME, 0, n);
    let other = t.port();
    let r = t.send_with(send_cancel, move_send, p2, PortName(0), 2, other);
    t.c.check_eq(
        "SEND_CANCEL naming another notify port",
        r,
        KernReturn::Success,
    );
    let m = t.notification(
        n,
        "  the port-deleted notification is sent",
        PORT_DELETED,
        48,
    );
    t.c.check_eq("  it names the name", m.get32(40), p2.0);
    for name in [q, n, other] {
        let _ = t.destroy(name);
    }
}

/// `MACH_RCV_NOTIFY`: a reply right received under a new name comes with a dead-name
/// request for the notify port.
fn rcv_notify(t: &mut T) {
    let n = t.port();
    let s = t.port();
    let r = t.port();
    let request = msgh_bits(MACH_MSG_TYPE_MAKE_SEND, MACH_MSG_TYPE_MAKE_SEND_ONCE);
    let sent = t.send_with(option::SEND_MSG, request, s, r, 10, PortName(0));
    t.c.check_eq(
        "RCV_NOTIFY: a request with a reply port",
        sent,
        KernReturn::Success,
    );
    let (got, m) = t.receive_notify(s, n);
    t.c.check_eq(
        "  received with RCV_NOTIFY",
        (got, m.id()),
        (KernReturn::Success, 10),
    );
    let so = m.remote_name();
    t.c.check_eq(
        "  the reply right has a dead-name request",
        t.ptype(so),
        Ok((1 << 18) | TYPE_DNREQUEST),
    );
    t.c.check_eq(
        "  made from the notify port",
        t.status(n)[STATUS_SORIGHTS],
        1,
    );
    t.c.check_eq("  destroy the reply port", t.destroy(r), Ok(()));
    let m = t.notification(n, "  dead-name notification", DEAD_NAME, 48);
    t.c.check_eq("  it names the reply right", m.get32(40), so.0);
    let task = t.task();
    let _ = traps::mach_port_deallocate(task, so);
    let _ = traps::mach_port_deallocate(task, so);

    // A send right for a port the space already names: no new name, no request.
    let sent = t.send_with(
        option::SEND_MSG,
        msgh_bits(MACH_MSG_TYPE_MAKE_SEND, MACH_MSG_TYPE_MAKE_SEND),
        s,
        s,
        11,
        PortName(0),
    );
    t.c.check_eq(
        "a request whose reply is a send right to s",
        sent,
        KernReturn::Success,
    );
    let (got, m) = t.receive_notify(s, n);
    t.c.check_eq(
        "  received with RCV_NOTIFY",
        (got, m.id()),
        (KernReturn::Success, 11),
    );
    t.c.check_eq("  under s's own name", m.remote_name(), s);
    t.c.check_eq(
        "  no request on it",
        t.ptype(s),
        Ok(TYPE_RECEIVE | TYPE_SEND),
    );
    t.c.check_eq("  no send-once right made", t.status(n)[STATUS_SORIGHTS], 0);
    let _ = traps::mach_port_deallocate(task, s);

    // No notify port, or one that is no receive right: the message is taken and its
    // rights destroyed (the reply's send-once right notifies its port).
    for (notify, what) in [(PortName(0), "null"), (so, "not a receive right")] {
        let r2 = t.port();
        let _ = t.send_with(option::SEND_MSG, request, s, r2, 12, PortName(0));
        let (got, _) = t.receive_notify(s, notify);
        t.c.check(
            got == KernReturn::RcvInvalidNotify,
            "RCV_NOTIFY with a bad notify name",
            format_args!("{what}: {got:?}"),
        );
        t.nothing(s, "  the message was taken");
        t.notification(r2, "  its reply right was destroyed", SEND_ONCE, 32);
        let _ = t.destroy(r2);
    }
    let _ = t.destroy(s);
    let _ = t.destroy(n);
}

/// `MACH_SEND_NOTIFY`: a message for a full queue is queued anyway with a msg-accepted
/// request; the notification comes when it leaves the queue.
fn send_notify(t: &mut T) {
    let n = t.port();
    let q = t.port();
    t.c.check_eq("SEND_NOTIFY: queue limit 1", t.qlimit(q, 1), Ok(()));
    let bits = msgh_bits(MACH_MSG_TYPE_MAKE_SEND, 0);
    let send_notify = option::SEND_MSG | option::SEND_NOTIFY;
    let r = t.send_with(send_notify, bits, q, PortName(0), 1, n);
    t.c.check_eq("  with room: sent as usual", r, KernReturn::Success);
    t.nothing(n, "  no notification for it");
    let r = t.send_with(send_notify, bits, q, PortName(0), 2, PortName(0));
    t.c.check_eq("  full, no notify port", r, KernReturn::SendInvalidNotify);
    let r = t.send_with(send_notify, bits, q, PortName(0), 2, n);
    t.c.check_eq("  full: queued anyway", r, KernReturn::SendWillNotify);
    t.c.check_eq("  two messages queued", t.status(q)[STATUS_MSGCOUNT], 2);
    let r = t.send_with(send_notify, bits, q, PortName(0), 3, n);
    t.c.check_eq(
        "  a second forced message",
        r,
        KernReturn::SendNotifyInProgress,
    );
    let r = t.send_with(
        option::SEND_MSG | option::SEND_TIMEOUT,
        bits,
        q,
        PortName(0),
        3,
        n,
    );
    t.c.check_eq(
        "  without SEND_NOTIFY the queue is full",
        r,
        KernReturn::SendTimedOut,
    );
    let (r, m) = t.receive(q, 0);
    t.c.check_eq("  receive the first", (r, m.id()), (KernReturn::Success, 1));
    t.nothing(n, "  no notification yet");
    let (r, m) = t.receive(q, 0);
    t.c.check_eq(
        "  receive the forced one",
        (r, m.id()),
        (KernReturn::Success, 2),
    );
    let m = t.notification(n, "msg-accepted notification", MSG_ACCEPTED, 48);
    t.c.check_eq("  it names the port", m.get32(40), q.0);
    t.c.check_eq(
        "  its send-once right used",
        t.status(n)[STATUS_SORIGHTS],
        0,
    );

    // Forced again, then the port destroyed with it queued: notified, with no name.
    let _ = t.send_with(option::SEND_MSG, bits, q, PortName(0), 4, PortName(0));
    let r = t.send_with(send_notify, bits, q, PortName(0), 5, n);
    t.c.check_eq("  forced again", r, KernReturn::SendWillNotify);
    t.c.check_eq("  destroy the port", t.destroy(q), Ok(()));
    let m = t.notification(n, "msg-accepted for a destroyed message", MSG_ACCEPTED, 48);
    t.c.check_eq("  no name (the entry is gone)", m.get32(40), 0);
    t.nothing(n, "  one notification only");
    let _ = t.destroy(n);
}
