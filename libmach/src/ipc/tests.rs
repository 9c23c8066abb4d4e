//! Host tests of the IPC layer against a fake `mach_msg`: message building and reading byte
//! for byte, the client transport's options and reply-port handling, generated stubs through
//! it, and the server loop's handling of replies, failures and dead clients.

use std::boxed::Box;
use std::cell::RefCell;
use std::collections::{BTreeMap, VecDeque};
use std::vec::Vec;

use mach_abi::message::{
    self, Header, MACH_MSG_TYPE_COPY_SEND, MACH_MSG_TYPE_MAKE_SEND, MACH_MSG_TYPE_MAKE_SEND_ONCE,
    MACH_MSG_TYPE_MOVE_SEND, MACH_MSG_TYPE_PORT_SEND_ONCE, option,
};
use mach_abi::mig::{
    self, CallOptions, KernReturn, PortName, PortRight, PortSlot, Served, Space, Transport,
};

use super::{Client, MachMsg, MessageBuilder, MessageReader, serve};

std::thread_local! {
    static RELEASED: RefCell<Vec<(PortName, PortRight)>> = const { RefCell::new(Vec::new()) };
}

fn released() -> Vec<(PortName, PortRight)> {
    RELEASED.with(|r| core::mem::take(&mut *r.borrow_mut()))
}

/// Records releases; the tests send no out-of-line memory.
struct Rec;

impl Space for Rec {
    fn release(name: PortName, right: PortRight) {
        RELEASED.with(|r| r.borrow_mut().push((name, right)));
    }
    fn deallocate(_: u64, _: u64) {}
}

type ObjectFn = Box<dyn FnMut(&[u8], &mut [u8]) -> Served>;

/// A fake `mach_msg`: a queue per port, and optionally a port served at once (as the kernel
/// serves its own objects). Names are shared by everyone.
#[derive(Default)]
struct Loop {
    queues: BTreeMap<u32, VecDeque<Vec<u8>>>,
    object: Option<(PortName, ObjectFn)>,
    dead: Vec<PortName>,
    reply: Option<PortName>,
    next_reply: u32,
    discarded: Vec<PortName>,
    calls: Vec<(u32, usize, PortName, u32)>,
    fail_next: Option<KernReturn>,
}

/// What the kernel does to a header on delivery.
fn deliver(msg: &[u8]) -> Vec<u8> {
    let mut m = msg.to_vec();
    let h = Header::read(msg).expect("header");
    let remote = message::msgh_bits_remote(h.bits);
    let local = message::msgh_bits_local(h.bits);
    Header {
        bits: message::msgh_bits(
            message::received_right(local),
            message::received_right(remote),
        ) | (h.bits & message::MACH_MSGH_BITS_COMPLEX),
        remote_port: h.local_port,
        local_port: h.remote_port,
        ..h
    }
    .write(&mut m);
    for it in message::items(&m.clone()) {
        let it = it.expect("well-formed");
        let mut d = it.desc;
        d.name = message::received_right(d.name);
        d.write(&mut m, it.desc_offset);
    }
    m
}

impl Loop {
    fn queue(&mut self, port: PortName) -> &mut VecDeque<Vec<u8>> {
        self.queues.entry(port.0).or_default()
    }
}

impl MachMsg for Loop {
    type Space = Rec;

    unsafe fn mach_msg(
        &mut self,
        msg: &mut [u8],
        option: u32,
        send_size: usize,
        rcv_name: PortName,
        timeout: u32,
        _: PortName,
    ) -> KernReturn {
        self.calls.push((option, send_size, rcv_name, timeout));
        if let Some(e) = self.fail_next.take() {
            return e;
        }
        if option & option::SEND_MSG != 0 {
            let sent = &msg[..send_size];
            let h = Header::read(sent).expect("header");
            let dest = h.remote_port.name().expect("a name");
            if self.dead.contains(&dest) {
                return KernReturn::SendInvalidDest;
            }
            let request = deliver(sent);
            match &mut self.object {
                Some((port, serve)) if *port == dest => {
                    let mut reply = std::vec![0u8; 4096];
                    let served = serve(&request, &mut reply);
                    if served.reply_size > 0 {
                        let reply = deliver(&reply[..served.reply_size]);
                        let to = Header::read(&reply).expect("h").local_port;
                        self.queue(to.name().expect("name")).push_back(reply);
                    }
                }
                _ => self.queue(dest).push_back(request),
            }
        }
        if option & option::RCV_MSG != 0 {
            let Some(m) = self.queue(rcv_name).pop_front() else {
                return KernReturn::RcvTimedOut;
            };
            if m.len() > msg.len() {
                return KernReturn::RcvTooLarge;
            }
            msg[..m.len()].copy_from_slice(&m);
        }
        KernReturn::Success
    }

    fn reply_port(&mut self) -> PortName {
        *self.reply.get_or_insert_with(|| {
            self.next_reply += 1;
            PortName(0x900 + self.next_reply)
        })
    }

    fn discard_reply_port(&mut self) {
        if let Some(p) = self.reply.take() {
            self.discarded.push(p);
        }
    }
}

#[test]
fn builder_lays_items_out_as_gnu_mach() {
    let mut buf = [0u8; 256];
    let mut b = MessageBuilder::new(&mut buf);
    b.int32(7)
        .boolean(true)
        .c_str(c"hi")
        .port(PortName(5), MACH_MSG_TYPE_MAKE_SEND)
        .int64(-1);
    let size = b
        .finish(PortName(3), MACH_MSG_TYPE_COPY_SEND, PortName(4), 21, 1234)
        .expect("fits");
    assert_eq!(size, 32 + 5 * 16);
    let h = Header::read(&buf).expect("h");
    assert_eq!(
        (h.bits, h.size, h.remote_port, h.local_port, h.id),
        (
            19 | 21 << 8 | message::MACH_MSGH_BITS_COMPLEX,
            112,
            PortSlot(3),
            PortSlot(4),
            1234
        )
    );
    assert_eq!(&buf[32..40], &0x0000_0001_2000_2002u64.to_le_bytes());
    assert_eq!(&buf[40..44], &7i32.to_le_bytes());
    assert_eq!(&buf[64..72], &(0x0000_0003_2000_080cu64).to_le_bytes());
    assert_eq!(&buf[72..75], b"hi\0");
    let mut r = MessageReader::new(&buf).expect("reader");
    assert_eq!(r.header().id, 1234);
    assert_eq!(r.next().expect("1").expect("ok").get::<i32>(), Some(7));
    assert_eq!(r.next().expect("2").expect("ok").get::<bool>(), Some(true));
    assert_eq!(r.next().expect("3").expect("ok").c_str(), Some(c"hi"));
    let p = r.next().expect("4").expect("ok");
    assert_eq!((p.desc.name, p.port()), (20, Some(PortName(5))));
    assert_eq!(r.next().expect("5").expect("ok").get::<i64>(), Some(-1));
    assert!(r.next().is_none());
    // A message too big for its buffer is refused, not truncated.
    let mut small = [0u8; 40];
    let mut b = MessageBuilder::new(&mut small);
    b.int64(1);
    assert_eq!(
        b.finish(PortName(1), 19, PortName::NULL, 0, 1),
        Err(KernReturn::MigArrayTooLarge)
    );
}

#[test]
fn reader_refuses_bad_messages() {
    assert!(MessageReader::new(&[0u8; 16]).is_err());
    let mut buf = [0u8; 48];
    let mut b = MessageBuilder::new(&mut buf);
    b.int32(1);
    b.finish(PortName(1), 19, PortName::NULL, 0, 1)
        .expect("fits");
    buf[36] = 0xff; // the descriptor now claims far more data than the message has
    let mut r = MessageReader::new(&buf).expect("header is fine");
    assert_eq!(r.next(), Some(Err(KernReturn::MigTypeError)));
    assert_eq!(r.next(), None);
}

/// A hand-written kernel object answering `mach_port_allocate` (the name it returns is
/// 0x40 + the right asked for), built with the reader and the builder.
fn port_server(request: &[u8], reply: &mut [u8]) -> Served {
    let mut r = MessageReader::new(request).expect("request");
    let h = *r.header();
    let right = r
        .next()
        .expect("right")
        .expect("ok")
        .get::<u32>()
        .expect("u32");
    let mut b = MessageBuilder::new(reply);
    b.int32(0).port_name(PortName(0x40 + right));
    let size = b
        .finish(
            h.remote_port.name().expect("reply port"),
            message::msgh_bits_remote(h.bits),
            PortName::NULL,
            0,
            h.id + 100,
        )
        .expect("fits");
    Served {
        handled: true,
        reply_size: size,
        code: KernReturn::Success,
    }
}

#[test]
fn generated_stubs_run_over_the_client_transport() {
    let mut t = Client::new(Loop {
        object: Some((PortName(0x10), Box::new(port_server))),
        ..Loop::default()
    });
    let task = mig::SendRight::<Rec>::from_name(PortName(0x10));
    let out = crate::mig::mach_port::mach_port_allocate(&mut t, &task, 1).expect("rpc");
    assert_eq!(out.name, PortName(0x41));
    let (option, send_size, rcv, timeout) = t.mach.calls[0];
    assert_eq!(option, option::SEND_MSG | option::RCV_MSG);
    assert_eq!(send_size, 48);
    assert_eq!(rcv, PortName(0x901), "the thread's reply port");
    assert_eq!(timeout, 0);
    core::mem::forget(task);
}

#[test]
fn timeouts_become_rcv_timeout_and_failures_discard_the_reply_port() {
    let mut t = Client::new(Loop::default());
    let reply = t.reply_port();
    let mut buf = [0u8; 64];
    let mut b = MessageBuilder::new(&mut buf);
    b.int32(1);
    let size = b
        .finish(
            PortName(0x20),
            MACH_MSG_TYPE_COPY_SEND,
            reply,
            MACH_MSG_TYPE_MAKE_SEND_ONCE,
            1,
        )
        .expect("fits");
    let options = CallOptions {
        option: option::SEND_TIMEOUT,
        timeout: Some(25),
    };
    // Nobody answers: the receive times out, and the reply port is thrown away.
    // SAFETY: the message names no out-of-line memory.
    let r = unsafe { t.rpc(&mut buf, size, reply, options) };
    assert_eq!(r, Err(KernReturn::RcvTimedOut));
    let (option, _, rcv, timeout) = t.mach.calls[0];
    assert_eq!(
        option,
        option::SEND_MSG | option::RCV_MSG | option::SEND_TIMEOUT | option::RCV_TIMEOUT
    );
    assert_eq!((rcv, timeout), (reply, 25));
    assert_eq!(t.mach.discarded, [reply]);
    assert_ne!(t.reply_port(), reply, "the next call gets a new one");
    // A caller's own reply port is left alone.
    t.mach.fail_next = Some(KernReturn::RcvInterrupted);
    // SAFETY: as above.
    let r = unsafe { t.rpc(&mut buf, size, PortName(0x55), CallOptions::default()) };
    assert_eq!(r, Err(KernReturn::RcvInterrupted));
    assert_eq!(t.mach.discarded.len(), 1);
    // A one-way send.
    // SAFETY: as above.
    let r = unsafe { t.send(&mut buf, size, CallOptions::default()) };
    assert_eq!(r, Ok(()));
    assert_eq!(t.mach.calls.last().map(|c| c.0), Some(option::SEND_MSG));
}

/// Builds a request to the server port `0x30` with a reply port, `id` and one port right.
fn request(id: i32, reply: PortName, carried: PortName) -> Vec<u8> {
    let mut buf = std::vec![0u8; 64];
    let mut b = MessageBuilder::new(&mut buf);
    b.int32(id).port(carried, MACH_MSG_TYPE_MOVE_SEND);
    let size = b
        .finish(
            PortName(0x30),
            MACH_MSG_TYPE_COPY_SEND,
            reply,
            MACH_MSG_TYPE_MAKE_SEND_ONCE,
            id,
        )
        .expect("fits");
    buf.truncate(size);
    buf
}

/// A server for the loop: 1 echoes, 2 fails, 3 answers later (MIG_NO_REPLY), 4 replies with a
/// moved right.
fn demux(request: &[u8], reply: &mut [u8]) -> Served {
    let h = Header::read(request).expect("h");
    let code = match h.id {
        1 => KernReturn::Success,
        2 => KernReturn::Failure,
        3 => {
            return Served {
                handled: true,
                reply_size: 0,
                code: KernReturn::MigNoReply,
            };
        }
        4 => KernReturn::Success,
        _ => KernReturn::MigBadId,
    };
    if !code.is_success() {
        return mig::finish_served(&h, Err(code), false, reply);
    }
    let mut b = MessageBuilder::new(reply);
    b.int32(0);
    if h.id == 4 {
        b.port(PortName(0x77), MACH_MSG_TYPE_MOVE_SEND);
    } else {
        b.int32(h.id);
    }
    let size = b
        .finish(
            h.remote_port.name().expect("name"),
            message::msgh_bits_remote(h.bits),
            PortName::NULL,
            0,
            h.id + 100,
        )
        .expect("fits");
    Served {
        handled: true,
        reply_size: size,
        code: KernReturn::Success,
    }
}

#[test]
fn the_server_loop_replies_destroys_and_survives_dead_clients() {
    released();
    let mut mach = Loop::default();
    let server = PortName(0x30);
    for (id, reply) in [(1, 0x51), (2, 0x52), (3, 0x53), (1, 0x54), (4, 0x55)] {
        mach.queue(server).push_back(deliver(&request(
            id,
            PortName(reply),
            PortName(0x60 + id as u32),
        )));
    }
    mach.dead.push(PortName(0x54));
    mach.dead.push(PortName(0x55));
    let (mut a, mut b) = ([0u8; 256], [0u8; 256]);
    // SAFETY: the demux gives no memory away.
    let end = unsafe { serve(&mut mach, server, &mut a, &mut b, demux) };
    assert_eq!(
        end,
        KernReturn::RcvTimedOut,
        "the loop ends when receiving fails"
    );
    // 1: echoed to its reply port, as a reply (id + 100) with the send-once right.
    let r = mach.queue(PortName(0x51)).pop_front().expect("reply");
    let mut reader = MessageReader::new(&r).expect("r");
    assert_eq!(reader.header().id, 101);
    assert_eq!(
        message::msgh_bits_local(reader.header().bits),
        MACH_MSG_TYPE_PORT_SEND_ONCE
    );
    assert_eq!(
        reader.nth(1).expect("id").expect("ok").get::<i32>(),
        Some(1)
    );
    // 2: the error reply, and the request's right was destroyed (the server took nothing).
    let r = mach.queue(PortName(0x52)).pop_front().expect("error reply");
    assert_eq!((r.len(), &r[40..44]), (48, &5i32.to_le_bytes()[..]));
    // 3: no reply, nothing destroyed (the server keeps the request).
    assert!(mach.queue(PortName(0x53)).is_empty());
    // 4 and 5: their clients died; the loop went on, and each unsent reply was destroyed:
    // its (dead) send-once right and the right the last reply moved.
    assert_eq!(
        released(),
        [
            (PortName(0x62), PortRight::Send),
            (PortName(0x54), PortRight::SendOnce),
            (PortName(0x55), PortRight::SendOnce),
            (PortName(0x77), PortRight::Send)
        ]
    );
}
