//! Tests of generated code, compiled from `.defs` by `build.rs`: the round trip in which
//! client stubs call the server through an in-process transport that moves port rights and
//! out-of-line memory as the kernel does, byte-level checks of GNU Mach messages, and
//! property tests that no byte sequence makes a server or a stub panic.

// The generated modules define more than each test uses.
#![allow(dead_code)]

mod mig_rt {
    include!(concat!(env!("OUT_DIR"), "/mig_rt.rs"));
}
mod user {
    include!(concat!(env!("OUT_DIR"), "/roundtrip_user.rs"));
}
mod server {
    include!(concat!(env!("OUT_DIR"), "/roundtrip_server.rs"));
}
mod mach_user {
    include!(concat!(env!("OUT_DIR"), "/mach_user.rs"));
}
mod mach_server {
    include!(concat!(env!("OUT_DIR"), "/mach_server.rs"));
}
mod mach_host_user {
    include!(concat!(env!("OUT_DIR"), "/mach_host_user.rs"));
}
mod mach_host_server {
    include!(concat!(env!("OUT_DIR"), "/mach_host_server.rs"));
}
mod mach_port_user {
    include!(concat!(env!("OUT_DIR"), "/mach_port_user.rs"));
}
mod mach_port_server {
    include!(concat!(env!("OUT_DIR"), "/mach_port_server.rs"));
}

use mig_rt::{
    ArrayOut, ArrayRef, CallOptions, Header, Indefinite, Ool, PortName, Received, ReturnCode,
    Transport, TypeDesc,
};
use proptest::prelude::*;
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;

const MACH_RCV_TIMED_OUT: ReturnCode = ReturnCode(0x1000_4003);
const MACH_RCV_TOO_LARGE: ReturnCode = ReturnCode(0x1000_4004);
const MACH_SEND_INVALID_MEMORY: ReturnCode = ReturnCode(0x1000_000c);
const KERN_INVALID_ARGUMENT: ReturnCode = ReturnCode(4);
const SERVER_PORT: PortName = PortName(0x51);
const REPLY_PORT: PortName = PortName(0x77);

/// A fake address space: out-of-line regions by address.
#[derive(Default)]
struct Memory {
    regions: BTreeMap<u64, Vec<u8>>,
    next: u64,
}

impl Memory {
    fn alloc(&mut self, data: Vec<u8>) -> u64 {
        self.next += 0x1_0000;
        let addr = self.next;
        self.regions.insert(addr, data);
        addr
    }

    fn bytes(&self, ool: Ool, elem_size: usize) -> Vec<u8> {
        let len = ool.count as usize * elem_size;
        self.regions.get(&ool.address).map_or_else(Vec::new, |r| {
            r.get(..len).map_or_else(Vec::new, <[u8]>::to_vec)
        })
    }
}

type Shared = Rc<RefCell<Memory>>;

/// What the kernel does to a message between send and receive: swap the header's ports and
/// turn dispositions into rights, and copy out-of-line regions into new ones.
fn deliver(mem: &Shared, msg: &[u8], seqno: u32) -> Result<Vec<u8>, ReturnCode> {
    let mut m = msg.to_vec();
    let h = Header::read(&m).ok_or(ReturnCode::MIG_TYPE_ERROR)?;
    if h.size as usize != m.len() {
        return Err(ReturnCode::MIG_TYPE_ERROR);
    }
    let remote = mig_rt::msgh_bits_remote(h.bits);
    let local = mig_rt::msgh_bits_local(h.bits);
    let complex = h.bits & mig_rt::MACH_MSGH_BITS_COMPLEX;
    let received = Header {
        bits: mig_rt::msgh_bits(
            mig_rt::received_right(local),
            mig_rt::received_right(remote),
        ) | complex,
        size: h.size,
        remote_port: h.local_port,
        local_port: h.remote_port,
        seqno,
        id: h.id,
    };
    received.write(&mut m);
    let items: Vec<mig_rt::ItemInfo> = mig_rt::items(&m).collect::<Result<_, _>>()?;
    for it in items {
        let mut d = it.desc;
        if mig_rt::is_port_right(d.name) {
            assert!(complex != 0, "port rights in a message not marked complex");
            d.name = mig_rt::received_right(d.name);
        }
        if !d.inline {
            assert!(
                complex != 0,
                "out-of-line data in a message not marked complex"
            );
            let off = it.data_offset;
            let addr = u64::from_le_bytes(m[off..off + 8].try_into().expect("8 bytes"));
            let len = d.number as usize * d.size as usize / 8;
            let mut mem = mem.borrow_mut();
            let data = if d.deallocate {
                mem.regions.remove(&addr)
            } else {
                mem.regions.get(&addr).cloned()
            };
            let data = data.ok_or(MACH_SEND_INVALID_MEMORY)?;
            let data = data.get(..len).ok_or(MACH_SEND_INVALID_MEMORY)?.to_vec();
            let new = mem.alloc(data);
            m[off..off + 8].copy_from_slice(&new.to_le_bytes());
            d.deallocate = false;
        }
        m[it.desc_offset..it.desc_offset + 4].copy_from_slice(&d.word().to_le_bytes());
    }
    Ok(m)
}

/// The in-process transport: delivers the request to the server's demux function and the
/// reply back, as `mach_msg` would.
struct Fake<S> {
    server: S,
    mem: Shared,
    seqno: u32,
    options: Vec<CallOptions>,
    reply_ports: Vec<PortName>,
    requests: Vec<Vec<u8>>,
}

impl<S: server::RoundtripServer> Fake<S> {
    fn serve(&mut self, msg: &[u8]) -> Result<Vec<u8>, ReturnCode> {
        self.seqno += 1;
        let request = deliver(&self.mem, msg, self.seqno)?;
        self.requests.push(request.clone());
        let mut reply = vec![0u8; server::MAX_REPLY_SIZE];
        let served = server::roundtrip_server(&mut self.server, &request, &mut reply);
        assert!(served.handled);
        reply.truncate(served.reply_size);
        Ok(reply)
    }
}

impl<S: server::RoundtripServer> Transport for Fake<S> {
    fn reply_port(&mut self) -> PortName {
        REPLY_PORT
    }

    fn rpc(
        &mut self,
        msg: &mut [u8],
        send_size: usize,
        reply_port: PortName,
        options: CallOptions,
    ) -> Result<(), ReturnCode> {
        self.options.push(options);
        self.reply_ports.push(reply_port);
        let request = msg
            .get(..send_size)
            .ok_or(ReturnCode::MIG_TYPE_ERROR)?
            .to_vec();
        let reply = self.serve(&request)?;
        if reply.is_empty() {
            return Err(MACH_RCV_TIMED_OUT);
        }
        let reply = deliver(&self.mem, &reply, 0)?;
        let dst = msg.get_mut(..reply.len()).ok_or(MACH_RCV_TOO_LARGE)?;
        dst.copy_from_slice(&reply);
        Ok(())
    }

    fn send(&mut self, msg: &[u8], options: CallOptions) -> Result<(), ReturnCode> {
        self.options.push(options);
        let reply = self.serve(msg)?;
        assert!(reply.is_empty(), "a simpleroutine got a reply");
        Ok(())
    }
}

/// The server side of the test subsystem.
struct Impl {
    mem: Shared,
    notified: Vec<i32>,
    seen_ports: Vec<(PortName, u8)>,
}

impl server::RoundtripServer for Impl {
    fn scalars(
        &mut self,
        server: PortName,
        a: i32,
        b: u64,
        c: i16,
    ) -> Result<server::ScalarsOut, ReturnCode> {
        assert_eq!(server, SERVER_PORT);
        Ok(server::ScalarsOut {
            sum: i64::from(a) + b as i64 + i64::from(c),
            neg: -a,
        })
    }

    fn inout_scalars(&mut self, _: PortName, x: &mut i32, y: &mut u64) -> Result<(), ReturnCode> {
        *x *= 2;
        *y += 1;
        Ok(())
    }

    fn fixed_arrays(
        &mut self,
        _: PortName,
        v: &[i32; 4],
        s: &[i64; 3],
    ) -> Result<server::FixedArraysOut, ReturnCode> {
        Ok(server::FixedArraysOut {
            doubled: v.map(|x| x * 2),
            tv: [s[0] + s[1], s[2]],
        })
    }

    fn var_arrays(
        &mut self,
        _: PortName,
        input: ArrayRef<'_, i32>,
        output: &mut ArrayOut<'_, i32>,
    ) -> Result<(), ReturnCode> {
        let v: Vec<i32> = input.iter().collect();
        for x in v.iter().rev() {
            output.push(*x)?;
        }
        Ok(())
    }

    fn count_in_out(
        &mut self,
        _: PortName,
        n: i32,
        data: &mut ArrayOut<'_, i32>,
    ) -> Result<(), ReturnCode> {
        if data.capacity() < n as usize {
            return Err(KERN_INVALID_ARGUMENT);
        }
        for i in 0..n {
            data.push(i * 10)?;
        }
        Ok(())
    }

    fn strings(
        &mut self,
        _: PortName,
        name: &[u8; 32],
        vname: ArrayRef<'_, u8>,
        vupper: &mut ArrayOut<'_, u8>,
    ) -> Result<server::StringsOut, ReturnCode> {
        vupper.extend_from_slice(&vname.as_bytes().to_ascii_uppercase())?;
        Ok(server::StringsOut {
            upper: name.map(|c| c.to_ascii_uppercase()),
        })
    }

    fn ool_data(&mut self, _: PortName, data: Ool) -> Result<server::OolDataOut, ReturnCode> {
        let mut bytes = self.mem.borrow().bytes(data, 1);
        bytes.reverse();
        let count = bytes.len() as u32;
        let address = self.mem.borrow_mut().alloc(bytes);
        Ok(server::OolDataOut {
            reversed: Ool { address, count },
        })
    }

    fn ool_maybe(&mut self, _: PortName, data: Ool) -> Result<server::OolMaybeOut, ReturnCode> {
        let bytes = self.mem.borrow().bytes(data, 1);
        let count = bytes.len() as u32;
        let address = self.mem.borrow_mut().alloc(bytes);
        Ok(server::OolMaybeOut {
            copy: Ool { address, count },
            copy_dealloc: true,
        })
    }

    fn ports(
        &mut self,
        _: PortName,
        p: PortName,
        name: u32,
    ) -> Result<server::PortsOut, ReturnCode> {
        let names: Vec<u8> = [p.0, name, 3]
            .iter()
            .flat_map(|n| n.to_le_bytes())
            .collect();
        let address = self.mem.borrow_mut().alloc(names);
        Ok(server::PortsOut {
            q: PortName(p.0 + 1),
            list: Ool { address, count: 3 },
        })
    }

    fn poly_ports(
        &mut self,
        _: PortName,
        p: PortName,
        p_poly: u8,
    ) -> Result<server::PolyPortsOut, ReturnCode> {
        self.seen_ports.push((p, p_poly));
        Ok(server::PolyPortsOut {
            q: p,
            q_poly: mig_rt::MACH_MSG_TYPE_MAKE_SEND_ONCE,
        })
    }

    fn indefinite(
        &mut self,
        _: PortName,
        data: Indefinite<'_, i32>,
        back: &mut ArrayOut<'_, i32>,
    ) -> Result<(), ReturnCode> {
        let Indefinite::Inline(values) = data else {
            return Err(KERN_INVALID_ARGUMENT);
        };
        for v in values.iter() {
            back.push(v * 3)?;
        }
        Ok(())
    }

    fn notify(&mut self, _: PortName, code: i32) -> Result<(), ReturnCode> {
        self.notified.push(code);
        Ok(())
    }

    fn headers(
        &mut self,
        _: PortName,
        reply_to: PortName,
        seq: u32,
    ) -> Result<server::HeadersOut, ReturnCode> {
        assert_eq!(reply_to, REPLY_PORT);
        Ok(server::HeadersOut { seen: seq })
    }

    fn explicit_reply(&mut self, _: PortName) -> Result<server::ExplicitReplyOut, ReturnCode> {
        Ok(server::ExplicitReplyOut { v: 5 })
    }

    fn fails(&mut self, _: PortName, code: i32) -> Result<server::FailsOut, ReturnCode> {
        if code == 0 {
            Ok(server::FailsOut { never: 1 })
        } else {
            Err(ReturnCode(code))
        }
    }

    fn inout_ool(&mut self, _: PortName, region: &mut Ool) -> Result<(), ReturnCode> {
        let mut bytes = self.mem.borrow().bytes(*region, 1);
        bytes.push(b'!');
        region.count = bytes.len() as u32;
        region.address = self.mem.borrow_mut().alloc(bytes);
        Ok(())
    }

    fn two_arrays(
        &mut self,
        _: PortName,
        n: i32,
        first: &mut ArrayOut<'_, i32>,
        tag: i32,
        second: &mut ArrayOut<'_, i16>,
    ) -> Result<server::TwoArraysOut, ReturnCode> {
        for i in 0..n {
            first.push(i + 1)?;
        }
        second.extend_from_slice(&[7, 8, 9])?;
        Ok(server::TwoArraysOut { mid: tag, last: -1 })
    }

    fn inline_type(&mut self, _: PortName, flag: i32) -> Result<server::InlineTypeOut, ReturnCode> {
        let address = self.mem.borrow_mut().alloc(flag.to_le_bytes().to_vec());
        Ok(server::InlineTypeOut {
            names: Ool { address, count: 1 },
        })
    }
}

fn fake() -> Fake<Impl> {
    let mem: Shared = Rc::default();
    Fake {
        server: Impl {
            mem: mem.clone(),
            notified: Vec::new(),
            seen_ports: Vec::new(),
        },
        mem,
        seqno: 0,
        options: Vec::new(),
        reply_ports: Vec::new(),
        requests: Vec::new(),
    }
}

#[test]
fn scalars_in_and_out() {
    let mut t = fake();
    let out = user::scalars(&mut t, SERVER_PORT, 40, 2, -5).expect("rpc");
    assert_eq!(out, user::ScalarsOut { sum: 37, neg: -40 });
    // The request as GNU MIG lays it out: three short-form items.
    let req = &t.requests[0];
    assert_eq!(req.len(), 32 + 3 * 16);
    assert_eq!(&req[32..40], &0x0000_0001_2000_2002u64.to_le_bytes());
    assert_eq!(&req[48..56], &0x0000_0001_2000_400bu64.to_le_bytes());
}

#[test]
fn inout_scalars() {
    let mut t = fake();
    let (mut x, mut y) = (21, u64::MAX - 1);
    user::inout_scalars(&mut t, SERVER_PORT, &mut x, &mut y).expect("rpc");
    assert_eq!((x, y), (42, u64::MAX));
}

#[test]
fn fixed_arrays_and_structs() {
    let mut t = fake();
    let out = user::fixed_arrays(&mut t, SERVER_PORT, &[1, 2, 3, 4], &[10, 20, 30]).expect("rpc");
    assert_eq!(out.doubled, [2, 4, 6, 8]);
    assert_eq!(out.tv, [30, 30]);
}

#[test]
fn variable_arrays() {
    let mut t = fake();
    let mut buf = [0i32; 16];
    let out = user::var_arrays(&mut t, SERVER_PORT, &[1, 2, 3], &mut buf).expect("rpc");
    assert_eq!(out.output_count, 3);
    assert_eq!(&buf[..3], &[3, 2, 1]);
    // Too many elements for the type: refused before sending.
    assert_eq!(
        user::var_arrays(&mut t, SERVER_PORT, &[0; 17], &mut buf),
        Err(ReturnCode::MIG_ARRAY_TOO_LARGE)
    );
    // A reply larger than the caller's buffer.
    let mut small = [0i32; 2];
    assert_eq!(
        user::var_arrays(&mut t, SERVER_PORT, &[1, 2, 3], &mut small),
        Err(ReturnCode::MIG_ARRAY_TOO_LARGE)
    );
    // Empty arrays work too.
    let out = user::var_arrays(&mut t, SERVER_PORT, &[], &mut buf).expect("rpc");
    assert_eq!(out.output_count, 0);
}

#[test]
fn count_in_out_sends_the_buffer_size() {
    let mut t = fake();
    let mut buf = [0i32; 5];
    let out = user::count_in_out(&mut t, SERVER_PORT, 4, &mut buf).expect("rpc");
    assert_eq!(out.data_count, 4);
    assert_eq!(buf, [0, 10, 20, 30, 0]);
    // The server sees the caller's capacity (5) and refuses 6.
    assert_eq!(
        user::count_in_out(&mut t, SERVER_PORT, 6, &mut buf),
        Err(KERN_INVALID_ARGUMENT)
    );
}

#[test]
fn strings_fixed_and_variable() {
    let mut t = fake();
    let mut name = [0u8; 32];
    name[..5].copy_from_slice(b"hello");
    let mut vbuf = [0u8; 32];
    let out = user::strings(&mut t, SERVER_PORT, &name, b"mach\0", &mut vbuf).expect("rpc");
    assert_eq!(&out.upper[..6], b"HELLO\0");
    assert_eq!(out.vupper_count, 5);
    assert_eq!(&vbuf[..5], b"MACH\0");
}

#[test]
fn out_of_line_data_moves_between_spaces() {
    let mut t = fake();
    let address = t.mem.borrow_mut().alloc(b"abcdef".to_vec());
    let out = user::ool_data(&mut t, SERVER_PORT, Ool { address, count: 6 }).expect("rpc");
    assert_eq!(t.mem.borrow().bytes(out.reversed, 1), b"fedcba");
    assert_ne!(out.reversed.address, address);
    // The sender's region is still there (no Dealloc on the request).
    assert!(t.mem.borrow().regions.contains_key(&address));

    // Dealloc[] chosen by the caller: the kernel takes the region away.
    let out = user::ool_maybe(&mut t, SERVER_PORT, Ool { address, count: 3 }, true).expect("rpc");
    assert_eq!(t.mem.borrow().bytes(out.copy, 1), b"abc");
    assert!(!t.mem.borrow().regions.contains_key(&address));

    // inout out-of-line.
    let address = t.mem.borrow_mut().alloc(b"hi".to_vec());
    let mut region = Ool { address, count: 2 };
    user::inout_ool(&mut t, SERVER_PORT, &mut region).expect("rpc");
    assert_eq!(t.mem.borrow().bytes(region, 1), b"hi!");

    // An address that is not mapped is the kernel's error, passed through.
    assert_eq!(
        user::ool_data(
            &mut t,
            SERVER_PORT,
            Ool {
                address: 1,
                count: 1
            }
        ),
        Err(MACH_SEND_INVALID_MEMORY)
    );
}

#[test]
fn port_rights_inline_and_out_of_line() {
    let mut t = fake();
    let out = user::ports(&mut t, SERVER_PORT, PortName(0x10), 0x20).expect("rpc");
    assert_eq!(out.q, PortName(0x11));
    assert_eq!(out.list.count, 3);
    let names = t.mem.borrow().bytes(out.list, 4);
    assert_eq!(
        names,
        [0x10u32, 0x20, 3]
            .iter()
            .flat_map(|n| n.to_le_bytes())
            .collect::<Vec<_>>()
    );
    // The request carried a MAKE_SEND right in an 8-byte slot; the server saw PORT_SEND.
    let req = &t.requests[0];
    let d = TypeDesc::read(req, 32).expect("desc");
    assert_eq!(
        (d.name, d.size, d.number),
        (mig_rt::MACH_MSG_TYPE_MOVE_SEND, 64, 1)
    );
    assert_ne!(
        Header::read(req).expect("header").bits & mig_rt::MACH_MSGH_BITS_COMPLEX,
        0
    );
}

#[test]
fn polymorphic_rights() {
    let mut t = fake();
    let out = user::poly_ports(
        &mut t,
        SERVER_PORT,
        PortName(9),
        mig_rt::MACH_MSG_TYPE_COPY_SEND,
    )
    .expect("rpc");
    assert_eq!(
        t.server.seen_ports,
        [(PortName(9), mig_rt::MACH_MSG_TYPE_MOVE_SEND)]
    );
    assert_eq!(out.q, PortName(9));
    assert_eq!(out.q_poly, mig_rt::MACH_MSG_TYPE_MOVE_SEND_ONCE);
    // A non-port poly value makes a simple message.
    user::poly_ports(
        &mut t,
        SERVER_PORT,
        PortName(3),
        mig_rt::MACH_MSG_TYPE_PORT_NAME,
    )
    .expect("rpc");
    let h = Header::read(&t.requests[1]).expect("header");
    assert_eq!(h.bits & mig_rt::MACH_MSGH_BITS_COMPLEX, 0);
}

#[test]
fn indefinite_arrays_inline() {
    let mut t = fake();
    let mut buf = [0i32; 8];
    let out = user::indefinite(&mut t, SERVER_PORT, &[1, 2], &mut buf).expect("rpc");
    assert_eq!(out.back, Received::Inline(2));
    assert_eq!(&buf[..2], &[3, 6]);
    // Indefinite arrays use the long form even inline.
    let d = TypeDesc::read(&t.requests[0], 32).expect("desc");
    assert!(d.longform && d.inline);
}

#[test]
fn simpleroutine_sends_without_reply() {
    let mut t = fake();
    user::notify(&mut t, SERVER_PORT, 99).expect("send");
    assert_eq!(t.server.notified, [99]);
    let h = Header::read(&t.requests[0]).expect("header");
    assert_eq!((h.remote_port, h.id), (0, 5011));
}

#[test]
fn header_arguments_and_options() {
    let mut t = fake();
    let out = user::headers(&mut t, SERVER_PORT, 250, 0x40).expect("rpc");
    assert_eq!(out.seen, 1, "the server saw the message's sequence number");
    assert_eq!(
        t.options[0],
        CallOptions {
            option: 0x40,
            timeout: Some(250)
        }
    );
    assert_eq!(user::HEADERS_ID, 5013);
    let out = user::explicit_reply(&mut t, SERVER_PORT, PortName(0x99)).expect("rpc");
    assert_eq!(out.v, 5);
    assert_eq!(t.reply_ports[1], PortName(0x99));
    assert_eq!(user::EXPLICIT_REPLY_ID, 5016);
}

#[test]
fn errors_come_back_as_short_replies() {
    let mut t = fake();
    assert_eq!(user::fails(&mut t, SERVER_PORT, 0).map(|o| o.never), Ok(1));
    assert_eq!(
        user::fails(&mut t, SERVER_PORT, 4),
        Err(KERN_INVALID_ARGUMENT)
    );
    // MIG_NO_REPLY from the server: nothing is sent back.
    assert_eq!(
        user::fails(&mut t, SERVER_PORT, ReturnCode::MIG_NO_REPLY.0),
        Err(MACH_RCV_TIMED_OUT)
    );
}

#[test]
fn arrays_before_and_after_other_items() {
    let mut t = fake();
    let mut first = [0i32; 16];
    let mut second = [0i16; 5];
    let out = user::two_arrays(&mut t, SERVER_PORT, 3, &mut first, 77, &mut second).expect("rpc");
    assert_eq!(
        (out.first_count, out.mid, out.second_count, out.last),
        (3, 77, 3, -1)
    );
    assert_eq!(&first[..3], &[1, 2, 3]);
    assert_eq!(&second[..3], &[7, 8, 9]);
}

#[test]
fn inline_argument_types() {
    let mut t = fake();
    let out = user::inline_type(&mut t, SERVER_PORT, 0x1234).expect("rpc");
    assert_eq!(t.mem.borrow().bytes(out.names, 4), 0x1234i32.to_le_bytes());
}

/// A transport that records the request and answers with a fixed reply.
struct Canned {
    reply: Vec<u8>,
    sent: Vec<u8>,
}

impl Transport for Canned {
    fn reply_port(&mut self) -> PortName {
        REPLY_PORT
    }

    fn rpc(
        &mut self,
        msg: &mut [u8],
        send_size: usize,
        _: PortName,
        _: CallOptions,
    ) -> Result<(), ReturnCode> {
        self.sent = msg[..send_size].to_vec();
        let n = self.reply.len().min(msg.len());
        msg[..n].copy_from_slice(&self.reply[..n]);
        Ok(())
    }

    fn send(&mut self, msg: &[u8], _: CallOptions) -> Result<(), ReturnCode> {
        self.sent = msg.to_vec();
        Ok(())
    }
}

fn reply_with(id: i32, code: i32) -> Vec<u8> {
    let mut buf = vec![0u8; 48];
    let h = Header {
        id,
        ..Header::default()
    };
    let mut e = mig_rt::Encoder::new(&mut buf);
    e.item(mig_rt::INT32_DESC);
    e.put(code);
    e.finish(h).expect("fits");
    buf
}

#[test]
fn host_info_request_bytes_match_gnu_mach() {
    let mut t = Canned {
        reply: reply_with(2738, 5),
        sent: Vec::new(),
    };
    let mut buf = [0i32; 12];
    let r = mach_host_user::host_info(&mut t, PortName(3), 1, &mut buf);
    assert_eq!(r, Err(ReturnCode::KERN_FAILURE));
    let s = &t.sent;
    assert_eq!(s.len(), 64);
    let h = Header::read(s).expect("header");
    assert_eq!((h.size, h.id, h.bits), (64, 2638, 19 | 21 << 8));
    assert_eq!((h.remote_port, h.local_port), (3, u64::from(REPLY_PORT.0)));
    assert_eq!(&s[32..40], &0x0000_0001_2000_2002u64.to_le_bytes());
    assert_eq!(&s[40..44], &1i32.to_le_bytes());
    assert_eq!(&s[48..56], &0x0000_0001_2000_2002u64.to_le_bytes());
    assert_eq!(&s[56..60], &12u32.to_le_bytes());
}

#[test]
fn reply_checks_follow_gnu_mig() {
    let mut buf = [0i32; 4];
    let mut t = Canned {
        reply: reply_with(2737, 0),
        sent: Vec::new(),
    };
    assert_eq!(
        mach_host_user::host_info(&mut t, PortName(3), 1, &mut buf),
        Err(ReturnCode::MIG_REPLY_MISMATCH)
    );
    t.reply = reply_with(mig_rt::MACH_NOTIFY_SEND_ONCE, 0);
    assert_eq!(
        mach_host_user::host_info(&mut t, PortName(3), 1, &mut buf),
        Err(ReturnCode::MIG_SERVER_DIED)
    );
    // Success claimed, but the reply lacks the array: a type error.
    t.reply = reply_with(2738, 0);
    assert_eq!(
        mach_host_user::host_info(&mut t, PortName(3), 1, &mut buf),
        Err(ReturnCode::MIG_TYPE_ERROR)
    );
}

/// A kernel-side host server for the demux checks.
struct Host;

impl mach_host_server::MachHostServer for Host {
    fn host_info(
        &mut self,
        _: PortName,
        flavor: i32,
        out: &mut ArrayOut<'_, i32>,
    ) -> Result<(), ReturnCode> {
        if flavor != 1 {
            return Err(KERN_INVALID_ARGUMENT);
        }
        out.extend_from_slice(&[4, 4, 0, 1 << 30, 22, 0])
    }

    fn processor_info(
        &mut self,
        _: PortName,
        _: i32,
        out: &mut ArrayOut<'_, i32>,
    ) -> Result<mach_host_server::ProcessorInfoOut, ReturnCode> {
        out.extend_from_slice(&[22, 0, 1, 0, 1])?;
        Ok(mach_host_server::ProcessorInfoOut { host: PortName(8) })
    }
}

fn host_info_request(count: u32) -> Vec<u8> {
    let mut buf = vec![0u8; 64];
    let mut e = mig_rt::Encoder::new(&mut buf);
    e.item(mig_rt::INT32_DESC);
    e.put(1i32);
    e.item(mig_rt::INT32_DESC);
    e.put(count);
    e.finish(Header {
        bits: mig_rt::msgh_bits(18, 17),
        remote_port: 0x77,
        local_port: 3,
        id: 2638,
        ..Header::default()
    })
    .expect("fits");
    buf
}

#[test]
fn host_info_reply_bytes_match_gnu_mach() {
    let mut reply = vec![0u8; mach_host_server::MAX_REPLY_SIZE];
    let served = mach_host_server::mach_host_server(&mut Host, &host_info_request(6), &mut reply);
    assert!(served.handled);
    assert_eq!(served.reply_size, 56 + 24);
    let h = Header::read(&reply).expect("header");
    assert_eq!((h.id, h.size, h.remote_port, h.bits), (2738, 80, 0x77, 18));
    let d = TypeDesc::read(&reply, 48).expect("desc");
    assert_eq!(
        (d.name, d.size, d.number, d.inline, d.longform),
        (2, 32, 6, true, false)
    );
    assert_eq!(&reply[56..60], &4i32.to_le_bytes());
    // A count too small for what the server writes: its error, in a 48-byte reply.
    let served = mach_host_server::mach_host_server(&mut Host, &host_info_request(2), &mut reply);
    assert_eq!(served.reply_size, 48);
    assert_eq!(
        &reply[40..44],
        &ReturnCode::MIG_ARRAY_TOO_LARGE.0.to_le_bytes()
    );
}

#[test]
fn processor_info_reply_carries_the_host_right() {
    let mut req = host_info_request(5);
    req[28..32].copy_from_slice(&2639i32.to_le_bytes());
    let mut reply = vec![0u8; mach_host_server::MAX_REPLY_SIZE];
    let served = mach_host_server::mach_host_server(&mut Host, &req, &mut reply);
    assert_eq!(served.reply_size, 72 + 24);
    let h = Header::read(&reply).expect("header");
    assert_ne!(h.bits & mig_rt::MACH_MSGH_BITS_COMPLEX, 0);
    // Kernel server: the right goes out as MOVE_SEND (17), 64 bits, in an 8-byte slot.
    let d = TypeDesc::read(&reply, 48).expect("desc");
    assert_eq!((d.name, d.size, d.number), (17, 64, 1));
    assert_eq!(&reply[56..64], &8u64.to_le_bytes());
    let d = TypeDesc::read(&reply, 64).expect("desc");
    assert_eq!((d.number, d.size), (5, 32));
}

#[test]
fn demux_rejects_bad_requests() {
    let mut reply = vec![0u8; mach_host_server::MAX_REPLY_SIZE];
    let code_of = |reply: &[u8]| i32::from_le_bytes(reply[40..44].try_into().expect("4"));
    // Unknown id: not handled, MIG_BAD_ID prepared.
    let mut req = host_info_request(6);
    req[28..32].copy_from_slice(&2700i32.to_le_bytes());
    let served = mach_host_server::mach_host_server(&mut Host, &req, &mut reply);
    assert_eq!((served.handled, served.reply_size), (false, 48));
    assert_eq!(code_of(&reply), ReturnCode::MIG_BAD_ID.0);
    // Wrong size, wrong descriptor, truncated buffer: MIG_BAD_ARGUMENTS.
    let mut bad = host_info_request(6);
    bad[4..8].copy_from_slice(&56u32.to_le_bytes());
    let served = mach_host_server::mach_host_server(&mut Host, &bad, &mut reply);
    assert_eq!(
        (served.handled, code_of(&reply)),
        (true, ReturnCode::MIG_BAD_ARGUMENTS.0)
    );
    let mut bad = host_info_request(6);
    bad[32] = 11;
    mach_host_server::mach_host_server(&mut Host, &bad, &mut reply);
    assert_eq!(code_of(&reply), ReturnCode::MIG_BAD_ARGUMENTS.0);
    let req = host_info_request(6);
    mach_host_server::mach_host_server(&mut Host, &req[..60], &mut reply);
    assert_eq!(code_of(&reply), ReturnCode::MIG_BAD_ARGUMENTS.0);
    // An unimplemented routine answers MIG_BAD_ID.
    let mut req = host_info_request(6);
    req[28..32].copy_from_slice(&2640i32.to_le_bytes());
    let served = mach_host_server::mach_host_server(&mut Host, &req, &mut reply);
    assert!(served.handled);
    assert_eq!(code_of(&reply), ReturnCode::MIG_BAD_ID.0);
}

struct Nothing;
impl mach_server::MachServer for Nothing {}
impl mach_port_server::MachPortServer for Nothing {}
impl server::RoundtripServer for Nothing {}

fn any_request() -> impl Strategy<Value = Vec<u8>> {
    let ids = prop_oneof![
        2000i32..2101,
        2600i32..2650,
        3200i32..3224,
        5000i32..5025,
        any::<i32>()
    ];
    (
        ids,
        proptest::collection::vec(any::<u8>(), 0..600),
        any::<u32>(),
    )
        .prop_map(|(id, body, size)| {
            let mut m = vec![0u8; 32];
            let len = (32 + body.len()) as u32;
            let size = if size % 4 == 0 { len } else { size % 700 };
            m[4..8].copy_from_slice(&size.to_le_bytes());
            m[28..32].copy_from_slice(&id.to_le_bytes());
            m.extend(body);
            m
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn demux_never_panics(req in any_request(), reply_len in 0usize..5000) {
        let mut reply = vec![0u8; reply_len];
        let _ = mach_server::mach_server(&mut Nothing, &req, &mut reply);
        let _ = mach_port_server::mach_port_server(&mut Nothing, &req, &mut reply);
        let _ = mach_host_server::mach_host_server(&mut Host, &req, &mut reply);
        let _ = server::roundtrip_server(&mut Nothing, &req, &mut reply);
        let _ = server::roundtrip_server(&mut fake().server, &req, &mut reply);
    }

    #[test]
    fn mutated_requests_never_panic(flips in proptest::collection::vec((0usize..200, any::<u8>()), 1..8)) {
        // Capture real requests, then damage them.
        let mut t = fake();
        let mut buf = [0i32; 16];
        let _ = user::two_arrays(&mut t, SERVER_PORT, 3, &mut buf, 1, &mut [0i16; 5]);
        let _ = user::ports(&mut t, SERVER_PORT, PortName(1), 2);
        let _ = user::strings(&mut t, SERVER_PORT, &[b'a'; 32], b"x", &mut [0u8; 32]);
        for req in t.requests.clone() {
            let mut m = req.clone();
            for (at, v) in &flips {
                if let Some(b) = m.get_mut(*at) {
                    *b = *v;
                }
            }
            let mut reply = vec![0u8; server::MAX_REPLY_SIZE];
            let _ = server::roundtrip_server(&mut fake().server, &m, &mut reply);
        }
    }

    #[test]
    fn stubs_never_panic_on_any_reply(reply in proptest::collection::vec(any::<u8>(), 0..300), id in prop_oneof![Just(2738), Just(5106), Just(5114), any::<i32>()]) {
        let mut reply = reply;
        if reply.len() >= 32 {
            let n = reply.len() as u32;
            reply[4..8].copy_from_slice(&n.to_le_bytes());
            reply[28..32].copy_from_slice(&id.to_le_bytes());
        }
        let mut t = Canned { reply, sent: Vec::new() };
        let _ = mach_host_user::host_info(&mut t, PortName(1), 1, &mut [0; 8]);
        let _ = user::two_arrays(&mut t, SERVER_PORT, 1, &mut [0; 16], 0, &mut [0; 5]);
        let _ = user::indefinite(&mut t, SERVER_PORT, &[1], &mut [0; 2]);
        let _ = user::ports(&mut t, SERVER_PORT, PortName(1), 1);
    }
}
