//! Host tests of the IPC core: every `mach_port_*` call with good and bad arguments and
//! GNU Mach's codes, rights carried in messages with every disposition, queues, sets,
//! notifications, accounting; and a property test of random operations across spaces
//! that checks the counts against what exists and that everything is given back.

use super::abi::{
    Disposition, MACH_PORT_QLIMIT_MAX, MACH_PORT_UREFS_MAX, MsgReturn, PortName, msgh_bits,
    notify as nid, port_type as pt,
};
use super::ledger::Kind;
use super::ledger::counting::{CountingLedger, dyn_ledger};
use super::*;
use mach_abi::KernReturn as K;
use std::cell::RefCell;
use std::sync::Arc;
use std::vec::Vec;

const R_SEND: u32 = 0;
const R_RECV: u32 = 1;
const R_SO: u32 = 2;
const R_PSET: u32 = 3;
const R_DEAD: u32 = 4;

use Disposition::{CopySend, MakeSend, MakeSendOnce, MoveReceive, MoveSend, MoveSendOnce};

fn ledger() -> Arc<CountingLedger> {
    CountingLedger::unlimited()
}

fn space(l: &Arc<CountingLedger>) -> Arc<Space> {
    Space::new(&dyn_ledger(l)).unwrap()
}

/// A name chosen by a test, far from those the kernel hands out.
fn n(v: u32) -> PortName {
    PortName(0x5000_0000 | v)
}

std::thread_local! {
    static WOKEN: RefCell<Vec<WaitKey>> = const { RefCell::new(Vec::new()) };
}

fn record_wakeup(key: WaitKey) {
    WOKEN.with(|w| w.borrow_mut().push(key));
}

/// Wake-ups seen on this test thread since the last call.
fn woken() -> Vec<WaitKey> {
    mqueue::set_wakeup(record_wakeup);
    WOKEN.with(|w| core::mem::take(&mut *w.borrow_mut()))
}

/// Send a message from `s`: destination and reply as in a header, then body rights.
fn send(
    s: &Space,
    dest: PortName,
    dest_d: Disposition,
    reply: PortName,
    reply_d: Option<Disposition>,
    body: &[(PortName, Disposition)],
) -> Result<SendResult, MsgReturn> {
    send_with(s, dest, dest_d, reply, reply_d, body, false)
}

fn send_with(
    s: &Space,
    dest: PortName,
    dest_d: Disposition,
    reply: PortName,
    reply_d: Option<Disposition>,
    body: &[(PortName, Disposition)],
    always: bool,
) -> Result<SendResult, MsgReturn> {
    let complex = if body.is_empty() {
        0
    } else {
        msgh_bits::COMPLEX
    };
    let bits = msgh_bits::make(dest_d as u32, reply_d.map_or(0, |d| d as u32)) | complex;
    let h = s.copyin_header(bits, dest, reply)?;
    let body_len = 16 * body.len();
    let mut k = Kmsg::new(
        s.ledger(),
        KmsgShape {
            body_len,
            ports: body.len(),
            ool: 0,
        },
    )?;
    k.id = 1000;
    k.size = (kmsg::HEADER_SIZE + body_len) as u32;
    k.bits = msgh_bits::other(h.bits);
    let local_type = msgh_bits::local(h.bits);
    k.set_ports(h.dest, h.reply, local_type);
    k.body.extend_from_slice(&vec![0; body_len]);
    for (i, &(name, d)) in body.iter().enumerate() {
        let p = s
            .copyin_body_right(name, d)
            .map_err(|_| MsgReturn::SEND_INVALID_RIGHT)?;
        k.push_port((kmsg::HEADER_SIZE + 16 * i + 8) as u64, p)
            .map_err(|_| MsgReturn::SEND_INVALID_RIGHT)?;
    }
    Ok(mqueue::send(k, always, |_| false))
}

/// A message as a receiver sees it.
#[derive(Debug)]
struct Got {
    hdr: ReceivedHeader,
    id: i32,
    size: u32,
    seqno: u32,
    ports: Vec<PortName>,
    errors: u32,
    body: Vec<u8>,
}

impl Got {
    /// The 32-bit value in a notification's slot.
    fn value(&self) -> u32 {
        u32::from_le_bytes(self.body[8..12].try_into().unwrap())
    }
}

fn recv(s: &Space, name: PortName) -> Result<Option<Got>, MsgReturn> {
    let src = s.mqueue_copyin(name)?;
    match src.receive(None, |_| false) {
        RecvResult::Message(mut k) => {
            let hdr = s.copyout_header(&mut k)?;
            let mut ports = Vec::new();
            let mut errors = 0;
            for slot in k.ports_mut() {
                let (name, e) = s.copyout_right(slot.port.take());
                ports.push(name);
                errors |= e;
            }
            let mut body = vec![0; k.body.len()];
            k.body.read(0, &mut body);
            Ok(Some(Got {
                hdr,
                id: k.id,
                size: k.size,
                seqno: k.seqno,
                ports,
                errors,
                body,
            }))
        }
        RecvResult::Empty => Ok(None),
        other => panic!("receive on {name:?}: {other:?}"),
    }
}

fn recv_one(s: &Space, name: PortName) -> Got {
    recv(s, name).unwrap().expect("a message")
}

/// Give `to` a send right (made from `from`'s receive right `r`) under `name`.
fn give_send(from: &Space, r: PortName, to: &Space, name: PortName) {
    let right = from.extract_right(r, MakeSend as u32).unwrap();
    to.insert_right(name, right).unwrap();
}

fn give_send_once(from: &Space, r: PortName, to: &Space, name: PortName) {
    let right = from.extract_right(r, MakeSendOnce as u32).unwrap();
    to.insert_right(name, right).unwrap();
}

/// A send-once right to `r` in `s`, for a notification request.
fn notify_right(s: &Space, r: PortName) -> MsgPort {
    s.extract_right(r, MakeSendOnce as u32).unwrap()
}

fn port_of(s: &Space, name: PortName) -> Arc<Port> {
    s.debug_entries()
        .into_iter()
        .find(|e| e.0 == name)
        .and_then(|e| e.3)
        .expect("a port under the name")
}

fn refs(s: &Space, name: PortName, right: u32) -> u32 {
    s.get_refs(name, right).unwrap()
}

// ---------------------------------------------------------------- allocation and names

#[test]
fn allocate_each_kind_and_refuse_others() {
    let l = ledger();
    let s = space(&l);
    let r = s.allocate(R_RECV).unwrap();
    let p = s.allocate(R_PSET).unwrap();
    let d = s.allocate(R_DEAD).unwrap();
    assert_eq!(s.port_type(r), Ok(pt::RECEIVE));
    assert_eq!(s.port_type(p), Ok(pt::PORT_SET));
    assert_eq!(s.port_type(d), Ok(pt::DEAD_NAME));
    assert_eq!(refs(&s, d, R_DEAD), 1);
    assert!(r != p && p != d && r != d && r.is_valid());
    for bad in [R_SEND, R_SO, 5, 99, u32::MAX] {
        assert_eq!(s.allocate(bad), Err(K::InvalidValue), "right {bad}");
    }
    let st = port_of(&s, r).status();
    assert_eq!(
        (st.qlimit, st.mscount, st.srights, st.sorights),
        (5, 0, 0, 0)
    );
    s.destroy();
    assert_eq!(s.allocate(R_RECV), Err(K::InvalidTask));
    assert_eq!(s.port_type(r), Err(K::InvalidTask));
    drop(s);
    assert_eq!(l.total(), 0);
}

#[test]
fn copyout_send_existing_adds_a_uref_only_where_a_send_right_is() {
    let l = ledger();
    let s = space(&l);
    let c = space(&l);
    let r = s.allocate(R_RECV).unwrap();
    let port = port_of(&s, r);
    // No send right in either space yet: the caller must make one.
    assert_eq!(c.copyout_send_existing(&port), None);
    assert_eq!(s.copyout_send_existing(&port), None);
    let name = c.copyout(port.make_send().unwrap(), true).unwrap();
    assert_eq!(port.status().srights, 1);
    assert_eq!(c.copyout_send_existing(&port), Some(name));
    assert_eq!(c.copyout_send_existing(&port), Some(name));
    // Same as copying out two more rights: three user references, still one right.
    assert_eq!(refs(&c, name, R_SEND), 3);
    assert_eq!(port.status().srights, 1);
    // Saturates like a copyout with overflow.
    c.mod_refs(name, R_SEND, (MACH_PORT_UREFS_MAX - 4) as i32)
        .unwrap();
    assert_eq!(refs(&c, name, R_SEND), MACH_PORT_UREFS_MAX - 1);
    assert_eq!(c.copyout_send_existing(&port), Some(name));
    assert_eq!(refs(&c, name, R_SEND), MACH_PORT_UREFS_MAX - 1);
    // A dead port or a dead space: nothing.
    s.destroy_name(r).unwrap();
    assert_eq!(c.copyout_send_existing(&port), None);
    c.destroy();
    assert_eq!(c.copyout_send_existing(&port), None);
    s.destroy();
    drop((s, c, port));
    assert_eq!(l.total(), 0);
}

#[test]
fn allocate_name_checks_name_then_right_then_use() {
    let l = ledger();
    let s = space(&l);
    assert_eq!(
        s.allocate_name(R_RECV, PortName::NULL),
        Err(K::InvalidValue)
    );
    assert_eq!(
        s.allocate_name(R_RECV, PortName::DEAD),
        Err(K::InvalidValue)
    );
    assert_eq!(s.allocate_name(99, PortName::NULL), Err(K::InvalidValue));
    assert_eq!(s.allocate_name(R_SEND, n(0x1234)), Err(K::InvalidValue));
    s.allocate_name(R_RECV, n(0x1234)).unwrap();
    assert_eq!(s.allocate_name(R_RECV, n(0x1234)), Err(K::NameExists));
    assert_eq!(s.allocate_name(R_PSET, n(0x1234)), Err(K::NameExists));
    assert_eq!(s.allocate_name(R_DEAD, n(0x1234)), Err(K::NameExists));
    s.allocate_name(R_DEAD, n(3)).unwrap();
    s.allocate_name(R_PSET, n(0xffff_fffe)).unwrap();
    for _ in 0..8 {
        let got = s.allocate(R_DEAD).unwrap();
        assert!(got != n(3) && got != n(0x1234));
    }
    assert_eq!(s.port_type(n(0xffff_fffe)), Ok(pt::PORT_SET));
    s.destroy();
    assert_eq!(s.allocate_name(R_RECV, n(7)), Err(K::InvalidTask));
}

#[test]
fn thousands_of_names_stay_distinct_and_are_not_reused() {
    let l = ledger();
    let s = space(&l);
    let mut seen = std::collections::HashSet::new();
    let mut live = Vec::new();
    for _ in 0..10_000 {
        let r = s.allocate(R_RECV).unwrap();
        assert!(seen.insert(r), "{r:?} handed out twice");
        live.push(r);
    }
    for r in live.iter().step_by(2) {
        s.destroy_name(*r).unwrap();
    }
    for _ in 0..5_000 {
        let r = s.allocate(R_DEAD).unwrap();
        assert!(seen.insert(r), "{r:?} reused");
    }
    assert_eq!(s.entry_count(), 10_000);
    for r in live.iter().skip(1).step_by(2) {
        assert_eq!(s.port_type(*r), Ok(pt::RECEIVE));
    }
    assert_eq!(s.port_type(live[0]), Err(K::InvalidName));
    s.debug_check().unwrap();
    drop(s);
    assert_eq!(l.total(), 0);
}

#[test]
fn names_lists_every_right_with_its_type() {
    let l = ledger();
    let s = space(&l);
    let r = s.allocate(R_RECV).unwrap();
    let p = s.allocate(R_PSET).unwrap();
    let d = s.allocate(R_DEAD).unwrap();
    give_send(&s, r, &s, r);
    let mut got = Vec::new();
    s.names(|name, ty| got.push((name, ty))).unwrap();
    got.sort();
    let mut want = vec![(r, pt::SEND_RECEIVE), (p, pt::PORT_SET), (d, pt::DEAD_NAME)];
    want.sort();
    assert_eq!(got, want);
    s.destroy();
    assert_eq!(s.names(|_, _| {}), Err(K::InvalidTask));
}

// ---------------------------------------------------------------- deallocate, destroy

#[test]
fn deallocate_releases_one_reference_of_send_rights_and_dead_names() {
    let l = ledger();
    let s = space(&l);
    let s2 = space(&l);
    let r = s.allocate(R_RECV).unwrap();
    give_send(&s, r, &s2, n(100));
    give_send(&s, r, &s2, n(100));
    assert_eq!(refs(&s2, n(100), R_SEND), 2);
    assert_eq!(port_of(&s, r).status().srights, 1);
    assert_eq!(port_of(&s, r).status().mscount, 2);
    s2.deallocate(n(100)).unwrap();
    assert_eq!(refs(&s2, n(100), R_SEND), 1);
    s2.deallocate(n(100)).unwrap();
    assert_eq!(s2.port_type(n(100)), Err(K::InvalidName));
    assert_eq!(port_of(&s, r).status().srights, 0);

    // Receive rights and port sets are not deallocated this way.
    assert_eq!(s.deallocate(r), Err(K::InvalidRight));
    let p = s.allocate(R_PSET).unwrap();
    assert_eq!(s.deallocate(p), Err(K::InvalidRight));
    assert_eq!(s.deallocate(n(0x7777)), Err(K::InvalidName));
    assert_eq!(s.deallocate(PortName::NULL), Err(K::InvalidName));

    // Send and receive under one name: the send right goes, the receive right stays.
    give_send(&s, r, &s, r);
    give_send(&s, r, &s, r);
    assert_eq!(s.port_type(r), Ok(pt::SEND_RECEIVE));
    s.deallocate(r).unwrap();
    s.deallocate(r).unwrap();
    assert_eq!(s.port_type(r), Ok(pt::RECEIVE));
    assert_eq!(s.deallocate(r), Err(K::InvalidRight));

    // Dead names count down.
    let d = s.allocate(R_DEAD).unwrap();
    s.mod_refs(d, R_DEAD, 1).unwrap();
    s.deallocate(d).unwrap();
    assert_eq!(refs(&s, d, R_DEAD), 1);
    s.deallocate(d).unwrap();
    assert_eq!(s.port_type(d), Err(K::InvalidName));

    s.destroy();
    assert_eq!(s.deallocate(r), Err(K::InvalidTask));
}

#[test]
fn deallocating_a_send_once_right_sends_a_send_once_notification() {
    let l = ledger();
    let s = space(&l);
    let s2 = space(&l);
    let r = s.allocate(R_RECV).unwrap();
    give_send_once(&s, r, &s2, n(200));
    assert_eq!(s2.port_type(n(200)), Ok(pt::SEND_ONCE));
    assert_eq!(port_of(&s, r).status().sorights, 1);
    assert_eq!(l.of(Kind::SendOnce), 1);
    s2.deallocate(n(200)).unwrap();
    let got = recv_one(&s, r);
    assert_eq!(got.id, nid::SEND_ONCE);
    assert_eq!((got.hdr.local, got.hdr.remote), (r, PortName::NULL));
    assert_eq!(port_of(&s, r).status().sorights, 0);
    assert_eq!(l.of(Kind::SendOnce) + l.of(Kind::Message), 0);
}

#[test]
fn destroying_a_receive_right_turns_send_rights_into_dead_names() {
    let l = ledger();
    let s = space(&l);
    let s2 = space(&l);
    let r = s.allocate(R_RECV).unwrap();
    give_send(&s, r, &s2, n(100));
    s2.mod_refs(n(100), R_SEND, 2).unwrap();
    // A dead-name request from s2, to its own port.
    let q = s2.allocate(R_RECV).unwrap();
    let prev = s2
        .request_notification(n(100), nid::DEAD_NAME, 0, notify_right(&s2, q))
        .unwrap();
    assert!(matches!(prev, MsgPort::Null));
    assert_eq!(s2.port_type(n(100)), Ok(pt::SEND | pt::DNREQUEST));

    s.destroy_name(r).unwrap();
    assert_eq!(s.port_type(r), Err(K::InvalidName));
    let got = recv_one(&s2, q);
    assert_eq!(got.id, nid::DEAD_NAME);
    assert_eq!(got.value(), n(100).0);
    // GNU Mach's LP64 layout: 48 bytes, a port-name descriptor, the name.
    assert_eq!((got.size, got.body.len()), (48, 16));
    assert_eq!(got.body[..8], 0x0000_0001_2000_200f_u64.to_le_bytes());
    assert_eq!(got.hdr.bits, msgh_bits::make(0, 18));
    assert_eq!(got.hdr.local, q);
    // Three references, and one more for the notification.
    assert_eq!(s2.port_type(n(100)), Ok(pt::DEAD_NAME));
    assert_eq!(refs(&s2, n(100), R_DEAD), 4);
    assert_eq!(refs(&s2, n(100), R_SEND), 0);
    s2.debug_check().unwrap();
    drop((s, s2));
    assert_eq!(l.total(), 0);
}

#[test]
fn destroy_name_of_each_kind() {
    let l = ledger();
    let s = space(&l);
    let s2 = space(&l);
    let r = s.allocate(R_RECV).unwrap();
    let p = s.allocate(R_PSET).unwrap();
    let d = s.allocate(R_DEAD).unwrap();
    s.mod_refs(d, R_DEAD, 5).unwrap();
    give_send(&s, r, &s2, n(1));
    give_send_once(&s, r, &s2, n(2));
    s2.destroy_name(n(1)).unwrap();
    assert_eq!(port_of(&s, r).status().srights, 0);
    s2.destroy_name(n(2)).unwrap();
    assert_eq!(recv_one(&s, r).id, nid::SEND_ONCE);
    s.destroy_name(d).unwrap();
    s.destroy_name(p).unwrap();
    assert_eq!(s.destroy_name(p), Err(K::InvalidName));
    assert_eq!(s.destroy_name(PortName::DEAD), Err(K::InvalidName));
    let port = port_of(&s, r);
    s.destroy_name(r).unwrap();
    assert!(!port.is_active());
    drop(port);
    assert_eq!(s.entry_count(), 0);
    s.destroy();
    assert_eq!(s.destroy_name(r), Err(K::InvalidTask));
}

// ---------------------------------------------------------------- mod_refs, get_refs

#[test]
fn mod_refs_follows_gnu_mach_for_each_right() {
    let l = ledger();
    let s = space(&l);
    let s2 = space(&l);
    let r = s.allocate(R_RECV).unwrap();
    let p = s.allocate(R_PSET).unwrap();
    let d = s.allocate(R_DEAD).unwrap();

    assert_eq!(s.mod_refs(n(0x999), 5, 1), Err(K::InvalidValue));
    assert_eq!(s.mod_refs(n(0x999), R_SEND, 1), Err(K::InvalidName));

    // Port sets: 0 or -1.
    assert_eq!(s.mod_refs(p, R_PSET, 0), Ok(()));
    assert_eq!(s.mod_refs(p, R_PSET, 1), Err(K::InvalidValue));
    assert_eq!(s.mod_refs(p, R_PSET, -2), Err(K::InvalidValue));
    assert_eq!(s.mod_refs(r, R_PSET, -1), Err(K::InvalidRight));

    // Receive rights: 0 or -1.
    assert_eq!(s.mod_refs(r, R_RECV, 0), Ok(()));
    assert_eq!(s.mod_refs(r, R_RECV, 1), Err(K::InvalidValue));
    assert_eq!(s.mod_refs(p, R_RECV, -1), Err(K::InvalidRight));

    // Send rights: up to MACH_PORT_UREFS_MAX - 1 references.
    give_send(&s, r, &s2, n(10));
    assert_eq!(s2.mod_refs(n(10), R_SEND, -2), Err(K::InvalidValue));
    assert_eq!(
        s2.mod_refs(n(10), R_SEND, (MACH_PORT_UREFS_MAX - 1) as i32),
        Err(K::UrefsOverflow)
    );
    s2.mod_refs(n(10), R_SEND, (MACH_PORT_UREFS_MAX - 2) as i32)
        .unwrap();
    assert_eq!(refs(&s2, n(10), R_SEND), MACH_PORT_UREFS_MAX - 1);
    assert_eq!(s2.mod_refs(n(10), R_SEND, 1), Err(K::UrefsOverflow));
    assert_eq!(s2.mod_refs(n(10), R_SEND, i32::MIN), Err(K::InvalidValue));
    assert_eq!(
        s2.mod_refs(n(10), R_SEND_ONCE_ALIAS, 0),
        Err(K::InvalidRight)
    );
    assert_eq!(s2.mod_refs(n(10), R_DEAD, 1), Err(K::InvalidRight));
    s2.mod_refs(n(10), R_SEND, -((MACH_PORT_UREFS_MAX - 1) as i32))
        .unwrap();
    assert_eq!(s2.port_type(n(10)), Err(K::InvalidName));
    assert_eq!(port_of(&s, r).status().srights, 0);

    // Dead names: up to MACH_PORT_UREFS_MAX.
    assert_eq!(s.mod_refs(d, R_DEAD, -2), Err(K::InvalidValue));
    s.mod_refs(d, R_DEAD, (MACH_PORT_UREFS_MAX - 1) as i32)
        .unwrap();
    assert_eq!(s.mod_refs(d, R_DEAD, 1), Err(K::UrefsOverflow));
    assert_eq!(s.mod_refs(d, R_SEND, 1), Err(K::InvalidRight));
    s.mod_refs(d, R_DEAD, -(MACH_PORT_UREFS_MAX as i32))
        .unwrap();
    assert_eq!(s.port_type(d), Err(K::InvalidName));

    // Send-once rights: 0 or -1; -1 sends the send-once notification.
    give_send_once(&s, r, &s2, n(20));
    assert_eq!(s2.mod_refs(n(20), R_SO, 1), Err(K::InvalidValue));
    assert_eq!(s2.mod_refs(n(20), R_SO, -2), Err(K::InvalidValue));
    assert_eq!(s2.mod_refs(n(20), R_SO, 0), Ok(()));
    s2.mod_refs(n(20), R_SO, -1).unwrap();
    assert_eq!(recv_one(&s, r).id, nid::SEND_ONCE);

    // Receive -1 with a send right under the same name: a dead name remains.
    give_send(&s, r, &s, r);
    s.mod_refs(r, R_SEND, 2).unwrap();
    s.mod_refs(r, R_RECV, -1).unwrap();
    assert_eq!(s.port_type(r), Ok(pt::DEAD_NAME));
    assert_eq!(refs(&s, r, R_DEAD), 3);
    s.debug_check().unwrap();

    // A send right to a dead port: -1 as a dead name works, as a send right it does not.
    let r2 = s.allocate(R_RECV).unwrap();
    give_send(&s, r2, &s2, n(30));
    s.destroy_name(r2).unwrap();
    assert_eq!(s2.mod_refs(n(30), R_SEND, -1), Err(K::InvalidRight));
    assert_eq!(s2.port_type(n(30)), Ok(pt::DEAD_NAME));
    s2.mod_refs(n(30), R_DEAD, -1).unwrap();
    assert_eq!(s2.port_type(n(30)), Err(K::InvalidName));
    drop((s, s2));
    assert_eq!(l.total(), 0);
}

const R_SEND_ONCE_ALIAS: u32 = R_SO;

#[test]
fn get_refs_counts_the_asked_right_only() {
    let l = ledger();
    let s = space(&l);
    let r = s.allocate(R_RECV).unwrap();
    let p = s.allocate(R_PSET).unwrap();
    assert_eq!(s.get_refs(r, 5), Err(K::InvalidValue));
    assert_eq!(s.get_refs(n(0x4444), R_RECV), Err(K::InvalidName));
    assert_eq!(refs(&s, r, R_RECV), 1);
    assert_eq!(refs(&s, r, R_SEND), 0);
    assert_eq!(refs(&s, r, R_DEAD), 0);
    assert_eq!(refs(&s, p, R_PSET), 1);
    give_send(&s, r, &s, r);
    give_send(&s, r, &s, r);
    assert_eq!(refs(&s, r, R_SEND), 2);
    give_send_once(&s, r, &s, n(50));
    assert_eq!(refs(&s, n(50), R_SO), 1);
    assert_eq!(refs(&s, n(50), R_SEND), 0);
}

// ---------------------------------------------------------------- rename

#[test]
fn rename_moves_every_kind_of_right() {
    let l = ledger();
    let s = space(&l);
    let s2 = space(&l);
    let r = s.allocate(R_RECV).unwrap();
    let p = s.allocate(R_PSET).unwrap();
    assert_eq!(s.rename(r, PortName::NULL), Err(K::InvalidValue));
    assert_eq!(s.rename(r, PortName::DEAD), Err(K::InvalidValue));
    assert_eq!(s.rename(r, p), Err(K::NameExists));
    assert_eq!(s.rename(r, r), Err(K::NameExists));
    assert_eq!(s.rename(n(0x5555), n(0x6666)), Err(K::InvalidName));

    s.move_member(r, p).unwrap();
    s.rename(r, n(0x100)).unwrap();
    s.rename(p, n(0x200)).unwrap();
    assert_eq!(s.port_type(r), Err(K::InvalidName));
    let status = s.get_receive_status(n(0x100)).unwrap();
    assert_eq!(status.pset, n(0x200));
    s.move_member(n(0x100), PortName::NULL).unwrap();

    // Messages to the renamed port arrive under the new name.
    give_send(&s, n(0x100), &s2, n(7));
    send(&s2, n(7), CopySend, PortName::NULL, None, &[]).unwrap();
    assert_eq!(recv_one(&s, n(0x100)).hdr.local, n(0x100));

    // A dead-name request follows its name.
    let q = s2.allocate(R_RECV).unwrap();
    s2.request_notification(n(7), nid::DEAD_NAME, 0, notify_right(&s2, q))
        .unwrap();
    s2.rename(n(7), n(8)).unwrap();
    assert_eq!(s2.port_type(n(8)), Ok(pt::SEND | pt::DNREQUEST));
    s.destroy_name(n(0x100)).unwrap();
    assert_eq!(recv_one(&s2, q).value(), n(8).0);
    // A dead name renames too.
    s2.rename(n(8), n(9)).unwrap();
    assert_eq!(s2.port_type(n(9)), Ok(pt::DEAD_NAME));
    s.debug_check().unwrap();
    s2.debug_check().unwrap();
    s.destroy();
    assert_eq!(s.rename(n(0x200), n(0x300)), Err(K::InvalidTask));
}

// ---------------------------------------------------------------- port sets

#[test]
fn move_member_errors_and_moves() {
    let l = ledger();
    let s = space(&l);
    let a = s.allocate(R_RECV).unwrap();
    let b = s.allocate(R_RECV).unwrap();
    let p = s.allocate(R_PSET).unwrap();
    let p2 = s.allocate(R_PSET).unwrap();
    assert_eq!(s.move_member(n(0x999), p), Err(K::InvalidName));
    assert_eq!(s.move_member(p, p2), Err(K::InvalidRight));
    assert_eq!(s.move_member(a, b), Err(K::InvalidRight));
    assert_eq!(s.move_member(a, n(0x999)), Err(K::InvalidName));
    assert_eq!(s.move_member(a, PortName::DEAD), Err(K::InvalidName));
    assert_eq!(s.move_member(a, PortName::NULL), Err(K::NotInSet));
    s.move_member(a, p).unwrap();
    s.move_member(a, p).unwrap();
    s.move_member(b, p).unwrap();
    let mut members = Vec::new();
    s.get_set_status(p, |m| members.push(m)).unwrap();
    members.sort();
    assert_eq!(members, vec![a, b]);
    assert_eq!(s.get_set_status(a, |_| {}), Err(K::InvalidRight));
    assert_eq!(s.get_set_status(n(0x999), |_| {}), Err(K::InvalidName));
    s.move_member(a, p2).unwrap();
    assert_eq!(s.get_receive_status(a).unwrap().pset, p2);
    s.move_member(a, PortName::NULL).unwrap();
    assert_eq!(s.move_member(a, PortName::NULL), Err(K::NotInSet));
    assert_eq!(s.get_receive_status(a).unwrap().pset, PortName::NULL);
    assert_eq!(s.mqueue_copyin(b).err(), Some(MsgReturn::RCV_IN_SET));
    s.destroy();
    assert_eq!(s.move_member(a, p), Err(K::InvalidTask));
}

#[test]
fn a_set_receives_from_all_members_in_arrival_order() {
    let l = ledger();
    let s = space(&l);
    let c = space(&l);
    let a = s.allocate(R_RECV).unwrap();
    let b = s.allocate(R_RECV).unwrap();
    let p = s.allocate(R_PSET).unwrap();
    give_send(&s, a, &c, n(1));
    give_send(&s, b, &c, n(2));
    // One message waits in a before it joins.
    send(&c, n(1), CopySend, PortName::NULL, None, &[]).unwrap();
    s.move_member(a, p).unwrap();
    s.move_member(b, p).unwrap();
    send(&c, n(2), CopySend, PortName::NULL, None, &[]).unwrap();
    send(&c, n(1), CopySend, PortName::NULL, None, &[]).unwrap();
    let got: Vec<_> = (0..3).map(|_| recv_one(&s, p)).collect();
    let order: Vec<_> = got.iter().map(|g| (g.hdr.local, g.seqno)).collect();
    assert_eq!(order, vec![(a, 0), (b, 0), (a, 1)]);
    assert!(recv(&s, p).unwrap().is_none());

    // Messages queued while in the set go back to the port when it leaves.
    send(&c, n(1), CopySend, PortName::NULL, None, &[]).unwrap();
    send(&c, n(2), CopySend, PortName::NULL, None, &[]).unwrap();
    s.move_member(a, PortName::NULL).unwrap();
    assert_eq!(recv_one(&s, a).seqno, 2);
    assert_eq!(recv_one(&s, p).hdr.local, b);

    // A set that dies lets its members go, with their messages.
    send(&c, n(2), CopySend, PortName::NULL, None, &[]).unwrap();
    s.destroy_name(p).unwrap();
    assert_eq!(s.get_receive_status(b).unwrap().pset, PortName::NULL);
    assert_eq!(recv_one(&s, b).hdr.local, b);
    drop((s, c));
    assert_eq!(l.total(), 0);
}

#[test]
fn receivers_of_a_port_that_joins_a_set_are_told() {
    let l = ledger();
    let s = space(&l);
    let a = s.allocate(R_RECV).unwrap();
    let p = s.allocate(R_PSET).unwrap();
    let src = s.mqueue_copyin(a).unwrap();
    woken();
    assert!(matches!(src.receive(None, |_| true), RecvResult::Empty));
    s.move_member(a, p).unwrap();
    let port = port_of(&s, a);
    assert_eq!(
        woken(),
        vec![WaitKey {
            object: Arc::as_ptr(&port) as usize,
            on: WaitOn::Message
        }]
    );
    assert!(matches!(src.receive(None, |_| false), RecvResult::Changed));
    s.move_member(a, PortName::NULL).unwrap();
    // Its receive right moving away: receivers find it gone.
    let other = space(&l);
    other
        .insert_right(n(5), s.extract_right(a, MoveReceive as u32).unwrap())
        .unwrap();
    assert!(matches!(src.receive(None, |_| false), RecvResult::Died));
}

// ---------------------------------------------------------------- attributes, queues

#[test]
fn qlimit_seqno_mscount_and_status() {
    let l = ledger();
    let s = space(&l);
    let c = space(&l);
    let r = s.allocate(R_RECV).unwrap();
    assert_eq!(
        s.set_qlimit(r, MACH_PORT_QLIMIT_MAX + 1),
        Err(K::InvalidValue)
    );
    assert_eq!(s.set_qlimit(n(0x999), 1), Err(K::InvalidName));
    let d = s.allocate(R_DEAD).unwrap();
    assert_eq!(s.set_qlimit(d, 1), Err(K::InvalidRight));
    assert_eq!(s.set_seqno(d, 1), Err(K::InvalidRight));
    assert_eq!(s.set_mscount(d, 1), Err(K::InvalidRight));
    assert_eq!(s.get_receive_status(d), Err(K::InvalidRight));
    s.set_qlimit(r, MACH_PORT_QLIMIT_MAX).unwrap();
    s.set_qlimit(r, 2).unwrap();
    give_send(&s, r, &c, n(1));
    give_send_once(&s, r, &c, n(2));
    let status = s.get_receive_status(r).unwrap();
    assert_eq!(
        status,
        ReceiveStatus {
            pset: PortName::NULL,
            seqno: 0,
            mscount: 1,
            qlimit: 2,
            msgcount: 0,
            sorights: 1,
            srights: true,
            pdrequest: false,
            nsrequest: false,
        }
    );
    assert!(matches!(
        send(&c, n(1), CopySend, PortName::NULL, None, &[]),
        Ok(SendResult::Queued)
    ));
    assert!(matches!(
        send(&c, n(1), CopySend, PortName::NULL, None, &[]),
        Ok(SendResult::Queued)
    ));
    // Full: the message comes back, and the closure is asked whether to wait.
    let h = c
        .copyin_header(msgh_bits::make(CopySend as u32, 0), n(1), PortName::NULL)
        .unwrap();
    let mut k = Kmsg::new(c.ledger(), KmsgShape::default()).unwrap();
    k.set_ports(h.dest, h.reply, 0);
    let port = port_of(&s, r);
    let mut asked = None;
    let full = mqueue::send(k, false, |key| {
        asked = Some(key);
        true
    });
    let SendResult::Full(k) = full else {
        panic!("not full: {full:?}")
    };
    let room = WaitKey {
        object: Arc::as_ptr(&port) as usize,
        on: WaitOn::Room,
    };
    assert_eq!(asked, Some(room));
    // A message to a send-once right ignores the limit.
    assert!(matches!(
        send(&c, n(2), MoveSendOnce, PortName::NULL, None, &[]),
        Ok(SendResult::Queued)
    ));
    assert_eq!(s.get_receive_status(r).unwrap().msgcount, 3);
    // Receiving one makes room for nobody yet (3 > 2), the second wakes the sender.
    woken();
    recv_one(&s, r);
    assert!(woken().is_empty());
    s.set_seqno(r, 100).unwrap();
    assert_eq!(recv_one(&s, r).seqno, 100);
    assert_eq!(woken(), vec![room]);
    assert!(matches!(
        mqueue::send(k, false, |_| false),
        SendResult::Queued
    ));
    assert_eq!(recv_one(&s, r).seqno, 101);
    assert_eq!(recv_one(&s, r).seqno, 102);
    s.set_mscount(r, 40).unwrap();
    assert_eq!(s.get_receive_status(r).unwrap().mscount, 40);
    // Raising the limit wakes waiting senders.
    s.set_qlimit(r, 0).unwrap();
    let full = send(&c, n(1), CopySend, PortName::NULL, None, &[]).unwrap();
    let SendResult::Full(k) = full else {
        panic!("limit 0 accepted a message")
    };
    drop(k);
    assert!(matches!(
        send_with(&c, n(1), CopySend, PortName::NULL, None, &[], true),
        Ok(SendResult::Queued)
    ));
    drop(port);
    drop((s, c));
    assert_eq!(l.total(), 0, "{:?}", kinds(&l));
}

#[test]
fn receive_too_large_leaves_the_message_and_empty_asks_to_wait() {
    let l = ledger();
    let s = space(&l);
    let r = s.allocate(R_RECV).unwrap();
    give_send(&s, r, &s, r);
    let src = s.mqueue_copyin(r).unwrap();
    let mut asked = None;
    assert!(matches!(
        src.receive(None, |k| {
            asked = Some(k);
            true
        }),
        RecvResult::Empty
    ));
    assert_eq!(asked.map(|k| k.on), Some(WaitOn::Message));
    woken();
    send(&s, r, CopySend, PortName::NULL, None, &[(r, CopySend)]).unwrap();
    assert_eq!(woken().len(), 1, "the waiting receiver is woken");
    assert!(matches!(
        src.receive(Some(40), |_| false),
        RecvResult::TooLarge(48)
    ));
    assert!(matches!(
        src.receive(Some(48), |_| false),
        RecvResult::Message(_)
    ));
    assert_eq!(
        s.mqueue_copyin(n(0x999)).err(),
        Some(MsgReturn::RCV_INVALID_NAME)
    );
    let d = s.allocate(R_DEAD).unwrap();
    assert_eq!(s.mqueue_copyin(d).err(), Some(MsgReturn::RCV_INVALID_NAME));
    s.destroy_name(r).unwrap();
    assert!(matches!(src.receive(None, |_| false), RecvResult::Died));
}

// ---------------------------------------------------------------- notifications

#[test]
fn no_senders_when_the_last_send_right_goes() {
    let l = ledger();
    let s = space(&l);
    let c = space(&l);
    let r = s.allocate(R_RECV).unwrap();
    let q = s.allocate(R_RECV).unwrap();
    give_send(&s, r, &c, n(1));
    give_send(&s, r, &c, n(1));
    assert_eq!(
        s.request_notification(r, nid::NO_SENDERS, 0, MsgPort::Dead)
            .err(),
        Some(K::InvalidCapability)
    );
    let prev = s
        .request_notification(r, nid::NO_SENDERS, 0, notify_right(&s, q))
        .unwrap();
    assert!(matches!(prev, MsgPort::Null));
    assert!(s.get_receive_status(r).unwrap().nsrequest);
    // A send right in a queued message still counts.
    send(
        &c,
        n(1),
        CopySend,
        PortName::NULL,
        None,
        &[(n(1), CopySend)],
    )
    .unwrap();
    c.deallocate(n(1)).unwrap();
    c.deallocate(n(1)).unwrap();
    assert!(recv(&s, q).unwrap().is_none());
    let got = recv_one(&s, r);
    assert_eq!(got.ports, vec![r]);
    assert_eq!(s.port_type(r), Ok(pt::SEND_RECEIVE));
    assert!(recv(&s, q).unwrap().is_none());
    s.deallocate(r).unwrap();
    let ns = recv_one(&s, q);
    assert_eq!(ns.id, nid::NO_SENDERS);
    assert_eq!(ns.value(), 2, "the make-send count");
    assert!(!s.get_receive_status(r).unwrap().nsrequest);

    // Immediate: no senders now and sync within the make-send count.
    s.request_notification(r, nid::NO_SENDERS, 2, notify_right(&s, q))
        .unwrap();
    assert_eq!(recv_one(&s, q).id, nid::NO_SENDERS);
    // Not immediate when sync is past the count: it waits, and the next request
    // returns it as the previous one.
    s.request_notification(r, nid::NO_SENDERS, 3, notify_right(&s, q))
        .unwrap();
    assert!(recv(&s, q).unwrap().is_none());
    let prev = s
        .request_notification(r, nid::NO_SENDERS, 3, MsgPort::Null)
        .unwrap();
    assert_eq!(prev.right().map(Right::kind), Some(RightKind::SendOnce));
    drop(prev);
    assert_eq!(recv_one(&s, q).id, nid::SEND_ONCE);
    assert_eq!(
        s.request_notification(n(0x999), nid::NO_SENDERS, 0, MsgPort::Null)
            .err(),
        Some(K::InvalidName)
    );
    assert_eq!(
        s.request_notification(r, 0o111, 0, MsgPort::Null).err(),
        Some(K::InvalidValue)
    );
    drop((s, c));
    assert_eq!(l.total(), 0);
}

#[test]
fn port_destroyed_hands_the_receive_right_over() {
    let l = ledger();
    let s = space(&l);
    let backup = space(&l);
    let c = space(&l);
    let r = s.allocate(R_RECV).unwrap();
    let b = backup.allocate(R_RECV).unwrap();
    give_send(&s, r, &c, n(1));
    send(&c, n(1), CopySend, PortName::NULL, None, &[]).unwrap();
    assert_eq!(
        s.request_notification(r, nid::PORT_DESTROYED, 1, notify_right(&backup, b))
            .err(),
        Some(K::InvalidValue)
    );
    assert_eq!(recv_one(&backup, b).id, nid::SEND_ONCE, "the refused right");
    s.request_notification(r, nid::PORT_DESTROYED, 0, notify_right(&backup, b))
        .unwrap();
    assert!(s.get_receive_status(r).unwrap().pdrequest);
    s.destroy_name(r).unwrap();
    let got = recv_one(&backup, b);
    assert_eq!(got.id, nid::PORT_DESTROYED);
    assert_eq!(got.size, 48);
    assert_eq!(got.body[..8], 0x0000_0001_2000_4010_u64.to_le_bytes());
    assert_eq!(got.hdr.bits, msgh_bits::COMPLEX | msgh_bits::make(0, 18));
    let r2 = got.ports[0];
    assert_eq!(backup.port_type(r2), Ok(pt::RECEIVE));
    // The port lives on, with its queue and its senders.
    assert_eq!(recv_one(&backup, r2).hdr.local, r2);
    send(&c, n(1), CopySend, PortName::NULL, None, &[]).unwrap();
    assert_eq!(recv_one(&backup, r2).id, 1000);
    assert_eq!(c.port_type(n(1)), Ok(pt::SEND));
    backup.debug_check().unwrap();
    drop((s, backup, c));
    assert_eq!(l.total(), 0);
}

#[test]
fn dead_name_requests_and_their_errors() {
    let l = ledger();
    let s = space(&l);
    let c = space(&l);
    let r = s.allocate(R_RECV).unwrap();
    let q = c.allocate(R_RECV).unwrap();
    let p = c.allocate(R_PSET).unwrap();
    give_send(&s, r, &c, n(1));
    assert_eq!(
        c.request_notification(n(0x999), nid::DEAD_NAME, 0, notify_right(&c, q))
            .err(),
        Some(K::InvalidName)
    );
    assert_eq!(
        recv_one(&c, q).id,
        nid::SEND_ONCE,
        "the refused right is destroyed"
    );
    assert_eq!(
        c.request_notification(p, nid::DEAD_NAME, 0, notify_right(&c, q))
            .err(),
        Some(K::InvalidRight)
    );
    recv_one(&c, q);
    // A request on a receive right is allowed.
    c.request_notification(q, nid::DEAD_NAME, 0, notify_right(&c, q))
        .unwrap();
    assert_eq!(c.port_type(q), Ok(pt::RECEIVE | pt::DNREQUEST));
    let prev = c
        .request_notification(q, nid::DEAD_NAME, 0, MsgPort::Null)
        .unwrap();
    assert!(prev.right().is_some());
    drop(prev);
    recv_one(&c, q);
    assert_eq!(c.port_type(q), Ok(pt::RECEIVE));

    c.request_notification(n(1), nid::DEAD_NAME, 0, notify_right(&c, q))
        .unwrap();
    // Replacing returns the old right.
    let prev = c
        .request_notification(n(1), nid::DEAD_NAME, 0, notify_right(&c, q))
        .unwrap();
    assert!(prev.right().is_some());
    drop(prev);
    assert_eq!(recv_one(&c, q).id, nid::SEND_ONCE);
    s.destroy_name(r).unwrap();
    assert_eq!(recv_one(&c, q).value(), n(1).0);
    assert_eq!(refs(&c, n(1), R_DEAD), 2);
    // On a dead name: only immediate requests, which add a reference.
    assert_eq!(
        c.request_notification(n(1), nid::DEAD_NAME, 0, notify_right(&c, q))
            .err(),
        Some(K::InvalidArgument)
    );
    recv_one(&c, q);
    assert_eq!(
        c.request_notification(n(1), nid::DEAD_NAME, 1, MsgPort::Null)
            .err(),
        Some(K::InvalidArgument)
    );
    let prev = c
        .request_notification(n(1), nid::DEAD_NAME, 1, notify_right(&c, q))
        .unwrap();
    assert!(matches!(prev, MsgPort::Null));
    let got = recv_one(&c, q);
    assert_eq!((got.id, got.value()), (nid::DEAD_NAME, n(1).0));
    assert_eq!(refs(&c, n(1), R_DEAD), 3);
    c.mod_refs(n(1), R_DEAD, (MACH_PORT_UREFS_MAX - 3) as i32)
        .unwrap();
    assert_eq!(
        c.request_notification(n(1), nid::DEAD_NAME, 1, notify_right(&c, q))
            .err(),
        Some(K::UrefsOverflow)
    );
    recv_one(&c, q);
    c.debug_check().unwrap();
    drop((s, c));
    assert_eq!(l.total(), 0);
}

#[test]
fn port_deleted_when_a_watched_name_goes_away() {
    let l = ledger();
    let s = space(&l);
    let c = space(&l);
    let r = s.allocate(R_RECV).unwrap();
    let q = c.allocate(R_RECV).unwrap();
    give_send(&s, r, &c, n(1));
    give_send_once(&s, r, &c, n(2));
    for name in [n(1), n(2)] {
        c.request_notification(name, nid::DEAD_NAME, 0, notify_right(&c, q))
            .unwrap();
    }
    c.deallocate(n(1)).unwrap();
    let got = recv_one(&c, q);
    assert_eq!((got.id, got.value()), (nid::PORT_DELETED, n(1).0));
    // Moving the right away in a message cancels the request too.
    send(&c, n(2), MoveSendOnce, PortName::NULL, None, &[]).unwrap();
    let got = recv_one(&c, q);
    assert_eq!((got.id, got.value()), (nid::PORT_DELETED, n(2).0));
    assert_eq!(port_of(&s, r).status().dnrequests, 0);
    drop((s, c));
    assert_eq!(l.total(), 0);
}

#[test]
fn send_cancel_drops_only_the_notify_ports_port_deleted() {
    let l = ledger();
    let s = space(&l);
    let c = space(&l);
    let r = s.allocate(R_RECV).unwrap();
    let r2 = s.allocate(R_RECV).unwrap();
    let q = c.allocate(R_RECV).unwrap();
    let other = c.allocate(R_RECV).unwrap();
    give_send(&s, r, &c, n(1));
    give_send(&s, r2, &c, n(2));
    for name in [n(1), n(2)] {
        c.request_notification(name, nid::DEAD_NAME, 0, notify_right(&c, q))
            .unwrap();
    }
    let bits = msgh_bits::make(MoveSend as u32, 0);
    // The notify name must be a receive right; nothing changes otherwise.
    for bad in [n(1), n(99)] {
        assert_eq!(
            c.copyin_header_cancel(bits, n(1), PortName::NULL, bad)
                .map(|_| ()),
            Err(MsgReturn::SEND_INVALID_NOTIFY)
        );
    }
    assert_eq!(c.port_type(n(1)), Ok(pt::SEND | pt::DNREQUEST));
    // Cancelled: no notification, the send-once right gone quietly.
    let h = c
        .copyin_header_cancel(bits, n(1), PortName::NULL, q)
        .unwrap();
    drop(h);
    assert!(recv(&c, q).unwrap().is_none());
    assert_eq!(c.get_receive_status(q).unwrap().sorights, 1);
    // Another notify port: the notification goes as usual.
    let h = c
        .copyin_header_cancel(bits, n(2), PortName::NULL, other)
        .unwrap();
    drop(h);
    let got = recv_one(&c, q);
    assert_eq!((got.id, got.value()), (nid::PORT_DELETED, n(2).0));
    assert_eq!(port_of(&s, r).status().dnrequests, 0);
    assert_eq!(port_of(&s, r2).status().dnrequests, 0);
    drop((s, c));
    assert_eq!(l.total(), 0);
}

#[test]
fn a_forced_message_notifies_when_received_or_destroyed() {
    let l = ledger();
    let s = space(&l);
    let c = space(&l);
    let r = s.allocate(R_RECV).unwrap();
    s.set_qlimit(r, 1).unwrap();
    let q = c.allocate(R_RECV).unwrap();
    give_send(&s, r, &c, n(1));
    let port = port_of(&s, r);
    assert!(matches!(
        send(&c, n(1), CopySend, PortName::NULL, None, &[]),
        Ok(SendResult::Queued)
    ));
    let Ok(SendResult::Full(mut k)) = send(&c, n(1), CopySend, PortName::NULL, None, &[]) else {
        panic!("the queue is full");
    };
    assert_eq!(
        c.marequest_create(&port, n(1)).map(|_| ()),
        Err(MsgReturn::SEND_INVALID_NOTIFY)
    );
    let request = c.marequest_create(&port, q).unwrap();
    assert_eq!(
        c.marequest_create(&port, q).map(|_| ()),
        Err(MsgReturn::SEND_NOTIFY_IN_PROGRESS)
    );
    k.set_marequest(request);
    assert!(matches!(
        mqueue::send(k, true, |_| false),
        SendResult::Queued
    ));
    assert_eq!(c.get_receive_status(q).unwrap().sorights, 1);
    recv_one(&s, r);
    assert!(recv(&c, q).unwrap().is_none());
    recv_one(&s, r);
    let got = recv_one(&c, q);
    assert_eq!((got.id, got.value()), (nid::MSG_ACCEPTED, n(1).0));
    // The mark is gone: another request may be made. Its message destroyed unreceived
    // (the receive right destroyed) notifies too; the name is still the sender's.
    let mut k = match send(&c, n(1), CopySend, PortName::NULL, None, &[]) {
        Ok(SendResult::Queued) => match send(&c, n(1), CopySend, PortName::NULL, None, &[]) {
            Ok(SendResult::Full(k)) => k,
            other => panic!("{other:?}"),
        },
        other => panic!("{other:?}"),
    };
    k.set_marequest(c.marequest_create(&port, q).unwrap());
    assert!(matches!(
        mqueue::send(k, true, |_| false),
        SendResult::Queued
    ));
    drop(port);
    s.destroy_name(r).unwrap();
    let got = recv_one(&c, q);
    assert_eq!((got.id, got.value()), (nid::MSG_ACCEPTED, n(1).0));
    assert!(recv(&c, q).unwrap().is_none());
    drop((s, c));
    assert_eq!(l.total(), 0);
}

#[test]
fn rcv_notify_requests_a_dead_name_for_a_new_reply_name() {
    let l = ledger();
    let s = space(&l);
    let c = space(&l);
    let r = s.allocate(R_RECV).unwrap();
    let reply = c.allocate(R_RECV).unwrap();
    let watch = s.allocate(R_RECV).unwrap();
    give_send(&s, r, &c, n(1));
    send(&c, n(1), CopySend, reply, Some(MakeSendOnce), &[]).unwrap();
    let src = s.mqueue_copyin(r).unwrap();
    let RecvResult::Message(mut k) = src.receive(None, |_| false) else {
        panic!("a message");
    };
    drop(src);
    assert_eq!(
        s.copyout_header_notify(&mut k, n(7)),
        Err(MsgReturn::RCV_INVALID_NOTIFY)
    );
    let h = s.copyout_header_notify(&mut k, watch).unwrap();
    drop(k);
    assert_eq!(s.port_type(h.remote), Ok(pt::SEND_ONCE | pt::DNREQUEST));
    c.destroy_name(reply).unwrap();
    let got = recv_one(&s, watch);
    assert_eq!((got.id, got.value()), (nid::DEAD_NAME, h.remote.0));
    drop((s, c));
    assert_eq!(l.total(), 0);
}

// ---------------------------------------------------------------- insert, extract

#[test]
fn insert_right_errors_and_merging() {
    let l = ledger();
    let s = space(&l);
    let c = space(&l);
    let r = s.allocate(R_RECV).unwrap();
    let mk = || s.extract_right(r, MakeSend as u32).unwrap();
    assert_eq!(c.insert_right(PortName::NULL, mk()), Err(K::InvalidValue));
    assert_eq!(c.insert_right(PortName::DEAD, mk()), Err(K::InvalidValue));
    assert_eq!(
        c.insert_right(n(1), MsgPort::Null),
        Err(K::InvalidCapability)
    );
    assert_eq!(
        c.insert_right(n(1), MsgPort::Dead),
        Err(K::InvalidCapability)
    );
    assert_eq!(
        port_of(&s, r).status().srights,
        0,
        "refused rights are destroyed"
    );
    c.insert_right(n(1), mk()).unwrap();
    assert_eq!(c.insert_right(n(2), mk()), Err(K::RightExists));
    c.insert_right(n(1), mk()).unwrap();
    assert_eq!(refs(&c, n(1), R_SEND), 2);
    let d = c.allocate(R_DEAD).unwrap();
    let r2 = s.allocate(R_RECV).unwrap();
    assert_eq!(
        c.insert_right(d, s.extract_right(r2, MakeSend as u32).unwrap()),
        Err(K::NameExists)
    );
    // Send-once rights never merge.
    c.insert_right(n(3), s.extract_right(r, MakeSendOnce as u32).unwrap())
        .unwrap();
    assert_eq!(
        c.insert_right(n(3), s.extract_right(r, MakeSendOnce as u32).unwrap()),
        Err(K::NameExists)
    );
    recv_one(&s, r);
    // No merging past the reference limit here (unlike a message, which pegs it).
    c.mod_refs(n(1), R_SEND, (MACH_PORT_UREFS_MAX - 3) as i32)
        .unwrap();
    assert_eq!(c.insert_right(n(1), mk()), Err(K::UrefsOverflow));
    // A right to a dead port.
    let dead = s.extract_right(r2, MakeSend as u32).unwrap();
    s.destroy_name(r2).unwrap();
    assert_eq!(c.insert_right(n(4), dead), Err(K::InvalidCapability));
    // A receive right: not under another name than the send right's, but under it.
    let recv_right = |r| s.extract_right(r, MoveReceive as u32).unwrap();
    assert_eq!(c.insert_right(n(5), recv_right(r)), Err(K::RightExists));
    assert!(s.port_type(r).is_err(), "the refused right was destroyed");
    let r = s.allocate(R_RECV).unwrap();
    give_send(&s, r, &c, n(6));
    c.insert_right(n(6), recv_right(r)).unwrap();
    assert_eq!(c.port_type(n(6)), Ok(pt::SEND_RECEIVE));
    assert_eq!(s.port_type(r), Err(K::InvalidName));
    c.debug_check().unwrap();
    c.destroy();
    assert_eq!(
        c.insert_right(n(9), MsgPort::Null),
        Err(K::InvalidCapability)
    );
    drop((s, c));
    assert_eq!(l.total(), 0);
}

#[test]
fn extract_right_takes_each_disposition() {
    let l = ledger();
    let s = space(&l);
    let r = s.allocate(R_RECV).unwrap();
    assert_eq!(s.extract_right(r, 15).err(), Some(K::InvalidValue));
    assert_eq!(s.extract_right(r, 22).err(), Some(K::InvalidValue));
    assert_eq!(
        s.extract_right(n(0x999), MakeSend as u32).err(),
        Some(K::InvalidName)
    );
    assert_eq!(
        s.extract_right(r, CopySend as u32).err(),
        Some(K::InvalidRight)
    );
    assert_eq!(
        s.extract_right(r, MoveSend as u32).err(),
        Some(K::InvalidRight)
    );
    assert_eq!(
        s.extract_right(r, MoveSendOnce as u32).err(),
        Some(K::InvalidRight)
    );
    let d = s.allocate(R_DEAD).unwrap();
    s.mod_refs(d, R_DEAD, 1).unwrap();
    assert!(matches!(
        s.extract_right(d, CopySend as u32),
        Ok(MsgPort::Dead)
    ));
    assert_eq!(refs(&s, d, R_DEAD), 2);
    assert!(matches!(
        s.extract_right(d, MoveSend as u32),
        Ok(MsgPort::Dead)
    ));
    assert!(matches!(
        s.extract_right(d, MoveSendOnce as u32),
        Ok(MsgPort::Dead)
    ));
    assert_eq!(s.port_type(d), Err(K::InvalidName));
    assert_eq!(
        s.extract_right(d, MakeSend as u32).err(),
        Some(K::InvalidName)
    );
    let so = s.extract_right(r, MakeSendOnce as u32).unwrap();
    assert_eq!(so.right().map(Right::kind), Some(RightKind::SendOnce));
    drop(so);
    assert_eq!(recv_one(&s, r).id, nid::SEND_ONCE);
}

// ---------------------------------------------------------------- messages

#[test]
fn every_disposition_in_a_message_body() {
    let l = ledger();
    let s = space(&l);
    let c = space(&l);
    let q = s.allocate(R_RECV).unwrap();
    give_send(&s, q, &c, n(1));
    let r = c.allocate(R_RECV).unwrap();
    let carry = |body: &[(PortName, Disposition)]| {
        send(&c, n(1), CopySend, PortName::NULL, None, body).unwrap();
        recv_one(&s, q)
    };
    // Make-send: a new name, then the same one again.
    let g1 = carry(&[(r, MakeSend)]);
    let g2 = carry(&[(r, MakeSend)]);
    assert_eq!(g1.ports, g2.ports);
    assert_eq!((g1.errors, g2.errors), (0, 0));
    let sr = g1.ports[0];
    assert_eq!((s.port_type(sr), refs(&s, sr, R_SEND)), (Ok(pt::SEND), 2));
    assert_eq!(c.get_receive_status(r).unwrap().mscount, 2);
    // Copy-send and move-send of c's own send right to r.
    give_send(&c, r, &c, r);
    give_send(&c, r, &c, r);
    carry(&[(r, CopySend)]);
    assert_eq!(refs(&c, r, R_SEND), 2);
    carry(&[(r, MoveSend), (r, MoveSend)]);
    assert_eq!(c.port_type(r), Ok(pt::RECEIVE));
    assert_eq!(refs(&s, sr, R_SEND), 5);
    assert_eq!(c.get_receive_status(r).unwrap().mscount, 4);
    // Send-once rights: a name each.
    let g = carry(&[(r, MakeSendOnce), (r, MakeSendOnce)]);
    assert_ne!(g.ports[0], g.ports[1]);
    assert_eq!(s.port_type(g.ports[0]), Ok(pt::SEND_ONCE));
    give_send_once(&c, r, &c, n(60));
    let g = carry(&[(n(60), MoveSendOnce)]);
    assert_eq!(c.port_type(n(60)), Err(K::InvalidName));
    assert_eq!(s.port_type(g.ports[0]), Ok(pt::SEND_ONCE));
    assert_eq!(c.get_receive_status(r).unwrap().sorights, 3);
    // The receive right joins the send right under its name.
    let g = carry(&[(r, MoveReceive)]);
    assert_eq!(g.ports, vec![sr]);
    assert_eq!(s.port_type(sr), Ok(pt::SEND_RECEIVE));
    assert_eq!(s.get_receive_status(sr).unwrap().mscount, 0);
    assert_eq!(c.port_type(r), Err(K::InvalidName));
    // Dead names travel as MACH_PORT_DEAD, null as null.
    let d = c.allocate(R_DEAD).unwrap();
    let g = carry(&[(d, MoveSend), (PortName::NULL, CopySend)]);
    assert_eq!(g.ports, vec![PortName::DEAD, PortName::NULL]);
    assert_eq!(c.port_type(d), Err(K::InvalidName));
    // Bad rights in a body.
    let r3 = c.allocate(R_RECV).unwrap();
    assert_eq!(
        send(&c, n(1), CopySend, PortName::NULL, None, &[(r3, CopySend)]).err(),
        Some(MsgReturn::SEND_INVALID_RIGHT)
    );
    s.debug_check().unwrap();
    c.debug_check().unwrap();
    drop((s, c));
    assert_eq!(l.total(), 0);
}

#[test]
fn rights_that_cannot_be_placed_at_receive() {
    let l = ledger();
    let s = space(&l);
    let c = space(&l);
    let r = s.allocate(R_RECV).unwrap();
    let q = c.allocate(R_RECV).unwrap();
    // Names are charged per map node (`kmem::BTREE_MIN_KEYS` names a granule): with five
    // names, c's next one needs a granule more.
    for _ in 0..4 {
        c.allocate(R_RECV).unwrap();
    }
    give_send(&c, q, &s, n(1));
    let port = port_of(&s, r);
    // No memory for a name: the body right is destroyed and named null.
    send(&s, n(1), CopySend, PortName::NULL, None, &[(r, MakeSend)]).unwrap();
    l.set_limit(l.total());
    let got = recv_one(&c, q);
    assert_eq!(
        (got.ports, got.errors),
        (vec![PortName::NULL], MsgReturn::IPC_KERNEL)
    );
    assert_eq!(port.status().srights, 0);
    // Nor for the reply: a header error, and the message unchanged for copyout_dest.
    l.set_limit(usize::MAX);
    send(&s, n(1), CopySend, r, Some(MakeSend), &[]).unwrap();
    l.set_limit(l.total());
    let mut k = match c.mqueue_copyin(q).unwrap().receive(None, |_| false) {
        RecvResult::Message(k) => k,
        other => panic!("{other:?}"),
    };
    assert_eq!(
        c.copyout_header(&mut k).err(),
        Some(MsgReturn::RCV_HEADER_ERROR.with(MsgReturn::IPC_KERNEL))
    );
    assert_eq!(
        port.status().srights,
        1,
        "the reply is still in the message"
    );
    let h = c.copyout_dest(&mut k);
    assert_eq!((h.local, h.remote), (q, PortName::NULL));
    assert_eq!(port.status().srights, 0);
    l.set_limit(usize::MAX);
    drop(k);
    drop(port);
    drop((s, c));
    assert_eq!(l.total(), 0);
}

#[test]
fn header_copyin_errors() {
    let l = ledger();
    let s = space(&l);
    let r = s.allocate(R_RECV).unwrap();
    let d = s.allocate(R_DEAD).unwrap();
    let hdr = |dest: u32, reply: u32, dn: PortName, rn: PortName| {
        s.copyin_header(msgh_bits::make(dest, reply), dn, rn)
            .map(|h| h.bits)
    };
    let e = MsgReturn::SEND_INVALID_HEADER;
    assert_eq!(hdr(0, 0, r, PortName::NULL), Err(e));
    assert_eq!(hdr(16, 0, r, PortName::NULL), Err(e));
    assert_eq!(hdr(22, 0, r, PortName::NULL), Err(e));
    assert_eq!(hdr(20, 16, r, r), Err(e));
    assert_eq!(hdr(20, 0, r, n(5)), Err(e));
    assert_eq!(hdr(20, 99, r, n(5)), Err(e));
    let e = MsgReturn::SEND_INVALID_DEST;
    assert_eq!(hdr(19, 0, n(0x999), PortName::NULL), Err(e));
    assert_eq!(hdr(19, 0, PortName::NULL, PortName::NULL), Err(e));
    assert_eq!(hdr(19, 0, r, PortName::NULL), Err(e));
    assert_eq!(hdr(17, 0, d, PortName::NULL), Err(e));
    assert_eq!(hdr(18, 0, r, PortName::NULL), Err(e));
    let e = MsgReturn::SEND_INVALID_REPLY;
    assert_eq!(hdr(20, 21, r, n(0x999)), Err(e));
    assert_eq!(hdr(20, 19, r, d), Ok(msgh_bits::make(17, 17)));
    let p = s.allocate(R_PSET).unwrap();
    assert_eq!(hdr(20, 17, r, p), Err(e));
    // Nothing changed on failure.
    give_send(&s, r, &s, r);
    assert_eq!(hdr(17, 21, r, n(0x999)), Err(e));
    assert_eq!(refs(&s, r, R_SEND), 1);
    // Reply given as a dead name.
    let h = s
        .copyin_header(msgh_bits::make(20, 17), r, PortName::DEAD)
        .unwrap();
    assert!(matches!(h.reply, MsgPort::Dead));
    // Other bits pass, the internal circular bit does not.
    let h = s
        .copyin_header(
            msgh_bits::make(20, 0) | msgh_bits::COMPLEX | msgh_bits::CIRCULAR,
            r,
            PortName::NULL,
        )
        .unwrap();
    assert_eq!(h.bits, msgh_bits::make(17, 0) | msgh_bits::COMPLEX);
    drop(h);
    s.destroy();
    assert_eq!(
        hdr(20, 0, r, PortName::NULL),
        Err(MsgReturn::SEND_INVALID_DEST)
    );
}

#[test]
fn header_with_one_name_for_destination_and_reply() {
    let l = ledger();
    let s = space(&l);
    let r = s.allocate(R_RECV).unwrap();
    // Make-send and make-send-once from one receive right: the usual call to oneself.
    let h = s.copyin_header(msgh_bits::make(20, 21), r, r).unwrap();
    assert_eq!(h.bits, msgh_bits::make(17, 18));
    assert_eq!(h.reply.right().map(Right::kind), Some(RightKind::SendOnce));
    drop(h);
    recv_one(&s, r);
    give_send(&s, r, &s, r);
    give_send(&s, r, &s, r);
    // Copy and copy: both, nothing taken.
    let h = s.copyin_header(msgh_bits::make(19, 19), r, r).unwrap();
    assert_eq!(h.bits, msgh_bits::make(17, 17));
    drop(h);
    assert_eq!(refs(&s, r, R_SEND), 2);
    // Move and copy: one reference taken.
    drop(s.copyin_header(msgh_bits::make(17, 19), r, r).unwrap());
    assert_eq!(refs(&s, r, R_SEND), 1);
    // Move and move needs two references.
    assert_eq!(
        s.copyin_header(msgh_bits::make(17, 17), r, r).err(),
        Some(MsgReturn::SEND_INVALID_DEST)
    );
    s.mod_refs(r, R_SEND, 1).unwrap();
    drop(s.copyin_header(msgh_bits::make(17, 17), r, r).unwrap());
    assert_eq!(s.port_type(r), Ok(pt::RECEIVE));
    // Move-send-once with the same name is always an error.
    give_send_once(&s, r, &s, n(9));
    assert_eq!(
        s.copyin_header(msgh_bits::make(18, 18), n(9), n(9)).err(),
        Some(MsgReturn::SEND_INVALID_DEST)
    );
    assert_eq!(s.port_type(n(9)), Ok(pt::SEND_ONCE));
    assert_eq!(
        s.copyin_header(msgh_bits::make(20, 18), r, r).err(),
        Some(MsgReturn::SEND_INVALID_REPLY)
    );
    drop(s);
    assert_eq!(l.total(), 0);
}

#[test]
fn header_copyout_names_destination_and_reply() {
    let l = ledger();
    let s = space(&l);
    let c = space(&l);
    let r = s.allocate(R_RECV).unwrap();
    let reply = c.allocate(R_RECV).unwrap();
    give_send(&s, r, &c, n(1));
    // An RPC: the reply send-once right arrives in s as a new name.
    send(&c, n(1), CopySend, reply, Some(MakeSendOnce), &[]).unwrap();
    let got = recv_one(&s, r);
    assert_eq!(got.hdr.local, r);
    assert_eq!(got.hdr.bits, msgh_bits::make(18, 17));
    let rn = got.hdr.remote;
    assert_eq!(s.port_type(rn), Ok(pt::SEND_ONCE));
    // The reply goes back through it.
    send(&s, rn, MoveSendOnce, PortName::NULL, None, &[]).unwrap();
    let back = recv_one(&c, reply);
    assert_eq!((back.hdr.local, back.hdr.remote), (reply, PortName::NULL));
    assert_eq!(msgh_bits::local(back.hdr.bits), 18);
    assert_eq!(c.get_receive_status(reply).unwrap().sorights, 0);
    assert_eq!(l.of(Kind::SendOnce), 0);

    // The receive right moves away between receive and copyout: the destination is
    // named null.
    send(&c, n(1), CopySend, PortName::NULL, None, &[]).unwrap();
    let mut k = match s.mqueue_copyin(r).unwrap().receive(None, |_| false) {
        RecvResult::Message(k) => k,
        other => panic!("{other:?}"),
    };
    let other = space(&l);
    other
        .insert_right(n(77), s.extract_right(r, MoveReceive as u32).unwrap())
        .unwrap();
    assert_eq!(s.copyout_header(&mut k).unwrap().local, PortName::NULL);
    drop(k);
    // A message whose destination died before copyout names it dead.
    send(&c, n(1), CopySend, PortName::NULL, None, &[]).unwrap();
    let mut k = match other.mqueue_copyin(n(77)).unwrap().receive(None, |_| false) {
        RecvResult::Message(k) => k,
        other => panic!("{other:?}"),
    };
    other.destroy_name(n(77)).unwrap();
    let h = other.copyout_dest(&mut k);
    assert_eq!(h.local, PortName::DEAD);
    drop(k);
    drop((s, c, other));
    assert_eq!(l.total(), 0, "{:?}", kinds(&l));
}

#[test]
fn a_receive_right_sent_to_itself_is_destroyed() {
    let l = ledger();
    let s = space(&l);
    let r = s.allocate(R_RECV).unwrap();
    let port = port_of(&s, r);
    let sent = send(&s, r, MakeSend, PortName::NULL, None, &[(r, MoveReceive)]).unwrap();
    assert!(matches!(sent, SendResult::Destroyed));
    assert!(!port.is_active());
    assert_eq!(s.port_type(r), Err(K::InvalidName));
    drop(port);
    drop(s);
    assert_eq!(l.total(), 0);
}

#[test]
fn a_loop_of_receive_rights_in_transit_is_broken() {
    let l = ledger();
    let s = space(&l);
    let a = s.allocate(R_RECV).unwrap();
    let b = s.allocate(R_RECV).unwrap();
    give_send(&s, b, &s, b);
    let (pa, pb) = (port_of(&s, a), port_of(&s, b));
    // b's receive right waits in a's queue: fine.
    assert!(matches!(
        send(&s, a, MakeSend, PortName::NULL, None, &[(b, MoveReceive)]).unwrap(),
        SendResult::Queued
    ));
    assert_eq!(pb.debug_receiver(), "transit");
    // a's receive right sent to b would close the loop.
    assert!(matches!(
        send(&s, b, CopySend, PortName::NULL, None, &[(a, MoveReceive)]).unwrap(),
        SendResult::Destroyed
    ));
    assert!(!pa.is_active() && !pb.is_active());
    assert_eq!(s.port_type(b), Ok(pt::DEAD_NAME));
    drop((pa, pb));
    drop(s);
    assert_eq!(l.total(), 0);

    // A chain that is not a loop is fine, and its end can be received.
    let s = space(&l);
    let a = s.allocate(R_RECV).unwrap();
    let b = s.allocate(R_RECV).unwrap();
    let c = s.allocate(R_RECV).unwrap();
    send(&s, a, MakeSend, PortName::NULL, None, &[(b, MoveReceive)]).unwrap();
    send(&s, c, MakeSend, PortName::NULL, None, &[(a, MoveReceive)]).unwrap();
    let got = recv_one(&s, c);
    let a2 = got.ports[0];
    let got = recv_one(&s, a2);
    assert_eq!(s.port_type(got.ports[0]), Ok(pt::RECEIVE));
    s.debug_check().unwrap();
    drop(s);
    assert_eq!(l.total(), 0);
}

// ---------------------------------------------------------------- kernel objects

#[test]
fn kernel_ports_carry_typed_objects() {
    struct FakeTask(u32);
    let l = ledger();
    let s = space(&l);
    let task = Arc::new(FakeTask(7));
    let port = Port::alloc_kernel(
        &dyn_ledger(&l),
        Some(KObject::new(KObjectKind::Task, task.clone())),
    )
    .unwrap();
    assert!(port.is_kernel());
    let k = port.kobject().unwrap();
    assert_eq!(k.kind(), KObjectKind::Task);
    assert_eq!(k.get::<FakeTask>(KObjectKind::Task).map(|t| t.0), Some(7));
    assert!(k.get::<FakeTask>(KObjectKind::Thread).is_none());
    assert!(k.get::<u64>(KObjectKind::Task).is_none());
    let name = s.copyout(port.make_send().unwrap(), false).unwrap();
    let again = s.copyout(port.make_send().unwrap(), false).unwrap();
    assert_eq!((name, s.port_type(name)), (again, Ok(pt::SEND)));
    send(&s, name, CopySend, PortName::NULL, None, &[]).unwrap();
    assert!(matches!(
        mqueue::receive_kernel(&port, None),
        RecvResult::Message(_)
    ));
    assert!(port.set_kobject(None).is_some());
    drop(k);
    // The object dies: its port goes, names for it become dead names.
    let q = s.allocate(R_RECV).unwrap();
    s.request_notification(name, nid::DEAD_NAME, 0, notify_right(&s, q))
        .unwrap();
    Port::dealloc_kernel(port.clone());
    assert!(!port.is_active());
    assert_eq!(recv_one(&s, q).value(), name.0);
    assert_eq!(s.port_type(name), Ok(pt::DEAD_NAME));
    assert_eq!(refs(&s, name, R_DEAD), 3);
    drop(s);
    drop(port);
    assert_eq!(Arc::strong_count(&task), 1);
    assert_eq!(l.total(), 0);

    // The kernel's own objects are charged to nobody.
    let unmetered: Arc<dyn Ledger> = Arc::new(ledger::Unmetered);
    let host = Port::alloc_kernel(&unmetered, None).unwrap();
    assert!(host.make_send_once(&unmetered).is_ok());
    Port::dealloc_kernel(host);
}

std::thread_local! {
    static SENDERS_SEEN: RefCell<Vec<(u64, u32)>> = const { RefCell::new(Vec::new()) };
}

/// The senders hook of these tests: the port and its send rights when called.
fn record_senders(port: &Arc<Port>) {
    let srights = port.status().srights;
    SENDERS_SEEN.with(|s| s.borrow_mut().push((port.id(), srights)));
}

fn senders_seen() -> Vec<(u64, u32)> {
    port::set_senders_hook(record_senders);
    SENDERS_SEEN.with(|s| core::mem::take(&mut *s.borrow_mut()))
}

#[test]
fn watched_kernel_ports_report_their_last_senders() {
    let l = ledger();
    let (a, b) = (space(&l), space(&l));
    let _ = senders_seen();
    let watched = Port::alloc_kernel(&dyn_ledger(&l), None).unwrap();
    watched.watch_senders();
    let plain = Port::alloc_kernel(&dyn_ledger(&l), None).unwrap();
    let in_a = a.copyout(watched.make_send().unwrap(), false).unwrap();
    let in_b = b.copyout(watched.make_send().unwrap(), false).unwrap();
    let extra = watched.make_send().unwrap();
    let plain_in_a = a.copyout(plain.make_send().unwrap(), false).unwrap();
    assert!(a.holds_send(&watched) && b.holds_send(&watched));
    assert!(a.names_kernel_port(in_a) && !a.names_kernel_port(n(77)));
    // Three senders, down to two: not reported.
    drop(extra);
    assert_eq!(senders_seen(), vec![]);
    // Down to one, then none: each reported, with what is left.
    a.deallocate(in_a).unwrap();
    assert!(!a.holds_send(&watched));
    assert_eq!(senders_seen(), vec![(watched.id(), 1)]);
    b.destroy();
    assert_eq!(senders_seen(), vec![(watched.id(), 0)]);
    // A port nobody watches is never reported.
    a.deallocate(plain_in_a).unwrap();
    assert_eq!(senders_seen(), vec![]);
    let _ = in_b;
    Port::dealloc_kernel(watched);
    Port::dealloc_kernel(plain);
    drop((a, b));
    assert_eq!(l.total(), 0);
}

#[test]
fn a_kernel_request_makes_its_reply_right_past_a_refusing_ledger() {
    let l = ledger();
    let s = space(&l);
    let kernel = Port::alloc_kernel(&dyn_ledger(&ledger()), None).unwrap();
    let name = s.copyout(kernel.make_send().unwrap(), false).unwrap();
    let reply = {
        l.set_limit(usize::MAX);
        let r = s.allocate(R_RECV).unwrap();
        l.set_limit(l.total());
        r
    };
    let bits = msgh_bits::make(CopySend as u32, MakeSendOnce as u32);
    // At the limit a send-once right for the reply cannot be prepaid as such...
    assert_eq!(
        s.copyin_header(bits, name, reply).err(),
        Some(MsgReturn::SEND_NO_BUFFER)
    );
    // ...and the ledger is asked again for a kernel request (this one refuses it too,
    // having no overdraft), with the space left as it was each time.
    assert_eq!(
        s.copyin_header_kernel_request(bits, name, reply).err(),
        Some(MsgReturn::SEND_NO_BUFFER)
    );
    assert_eq!(l.of(Kind::KernelRequest), 0);
    l.set_limit(l.total() + 1);
    let h = s.copyin_header_kernel_request(bits, name, reply).unwrap();
    assert_eq!(
        l.of(Kind::SendOnce),
        1,
        "the ledger had room: a SendOnce charge"
    );
    drop(h);
    Port::dealloc_kernel(kernel);
    drop(s);
    assert_eq!(l.total(), 0);
}

// ---------------------------------------------------------------- accounting

#[test]
fn running_out_is_resource_shortage_and_nothing_leaks() {
    let l = CountingLedger::new(40);
    let s = space(&l);
    let mut held = Vec::new();
    let err = loop {
        match s.allocate(R_RECV) {
            Ok(name) => held.push(name),
            Err(e) => break e,
        }
        assert!(l.total() <= 40);
    };
    assert_eq!(err, K::ResourceShortage);
    assert!(held.len() >= 10);
    // Messages are refused too, and the header's rights go back where they were.
    let r = held[0];
    give_send(&s, r, &s, r);
    s.destroy_name(held.pop().unwrap()).unwrap();
    s.destroy_name(held.pop().unwrap()).unwrap();
    let mut queued = 0;
    let err = loop {
        match send_with(&s, r, CopySend, PortName::NULL, None, &[], true) {
            Ok(SendResult::Queued) => queued += 1,
            Ok(other) => panic!("{other:?}"),
            Err(e) => break e,
        }
    };
    assert_eq!(err, MsgReturn::SEND_NO_BUFFER);
    assert!(queued >= 1);
    assert_eq!(refs(&s, r, R_SEND), 1);
    l.set_limit(l.total());
    assert_eq!(
        s.extract_right(r, MakeSendOnce as u32).err(),
        Some(K::ResourceShortage)
    );
    assert_eq!(
        s.copyin_header(msgh_bits::make(20, 21), r, r).err(),
        Some(MsgReturn::SEND_NO_BUFFER)
    );
    assert_eq!(s.port_type(r), Ok(pt::SEND_RECEIVE));
    l.set_limit(usize::MAX);
    drop(s);
    assert_eq!(l.total(), 0);
}

#[test]
fn destroying_spaces_gives_everything_back() {
    let l = ledger();
    let spaces: Vec<_> = (0..3).map(|_| space(&l)).collect();
    let [a, b, c] = [&spaces[0], &spaces[1], &spaces[2]];
    let ra = a.allocate(R_RECV).unwrap();
    let rb = b.allocate(R_RECV).unwrap();
    let pc = c.allocate(R_PSET).unwrap();
    let rc = c.allocate(R_RECV).unwrap();
    c.move_member(rc, pc).unwrap();
    give_send(a, ra, b, n(1));
    give_send(b, rb, c, n(2));
    give_send(c, rc, a, n(3));
    give_send_once(a, ra, c, n(4));
    b.request_notification(n(1), nid::DEAD_NAME, 0, notify_right(b, rb))
        .unwrap();
    a.request_notification(ra, nid::NO_SENDERS, 0, notify_right(c, rc))
        .unwrap();
    send(b, n(1), CopySend, rb, Some(MakeSend), &[(rb, MakeSendOnce)]).unwrap();
    send(
        c,
        n(2),
        CopySend,
        PortName::NULL,
        None,
        &[(rc, MoveReceive)],
    )
    .unwrap();
    send(a, n(3), CopySend, ra, Some(MakeSendOnce), &[]).unwrap();
    for s in &spaces {
        s.debug_check().unwrap();
    }
    assert!(l.of(Kind::Message) > 0 && l.of(Kind::Request) > 0);
    for s in &spaces {
        s.destroy();
    }
    assert_eq!(
        (0..Kind::COUNT).map(|k| l.of(kind_at(k))).sum::<usize>(),
        l.total()
    );
    drop(spaces);
    assert_eq!(l.total(), 0, "by kind: {:?}", kinds(&l));
}

fn kind_at(k: usize) -> Kind {
    [
        Kind::Port,
        Kind::PortSet,
        Kind::Entry,
        Kind::Message,
        Kind::SendOnce,
        Kind::Request,
        Kind::KernelRequest,
    ][k]
}

fn kinds(l: &CountingLedger) -> Vec<(Kind, usize)> {
    (0..Kind::COUNT)
        .map(|k| (kind_at(k), l.of(kind_at(k))))
        .collect()
}

#[test]
fn a_long_chain_of_queued_receive_rights_dies_without_deep_recursion() {
    let l = ledger();
    let s = space(&l);
    // Each port's receive right waits in the queue of the next: destroying the last
    // destroys them all, one after another.
    let mut prev = s.allocate(R_RECV).unwrap();
    for _ in 0..20_000 {
        let next = s.allocate(R_RECV).unwrap();
        send(
            &s,
            next,
            MakeSend,
            PortName::NULL,
            None,
            &[(prev, MoveReceive)],
        )
        .unwrap();
        prev = next;
    }
    assert_eq!(l.of(Kind::Port), 20_001);
    s.destroy_name(prev).unwrap();
    assert_eq!(l.of(Kind::Port), 0);
    drop(s);
    assert_eq!(l.total(), 0);
}

/// A space's maps are charged per B-tree node, not per name: 10,000 receive rights cost
/// their ports and about two fifths of a granule each for the two maps, and the real nodes
/// never outnumber the granules charged, while names come and go in any order.
#[test]
fn ten_thousand_receive_rights_charged_per_node() {
    use crate::mm::kmem::GRANULE;
    use crate::testalloc::Tracker;
    const N: usize = 10_000;
    let l = ledger();
    let mut t = Tracker::new();
    let s = t.run(|| space(&l));
    let mut names = Vec::with_capacity(N);
    for i in 0..N {
        names.push(t.run(|| s.allocate(R_RECV)).unwrap());
        if i % 97 == 0 {
            assert!(t.live_blocks() <= l.total(), "{i}: {:?}", kinds(&l));
        }
    }
    assert!(t.largest_block() <= GRANULE);
    assert!(t.live_blocks() <= l.total(), "{:?}", kinds(&l));
    assert_eq!(l.of(Kind::Port), N);
    let maps = l.of(Kind::Entry);
    assert!(
        maps <= space::SPACE_BLOCKS + 2 * N.div_ceil(5),
        "{maps} granules for the maps of {N} names"
    );
    assert!(
        l.total() * 10 <= N * 15,
        "{} granules for {N} receive rights",
        l.total()
    );
    // Destroyed in a scattered order: nodes merge, and the charge follows them down.
    let mut x: u64 = 7;
    while !names.is_empty() {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let i = (x >> 33) as usize % names.len();
        let name = names.swap_remove(i);
        t.run(|| s.destroy_name(name)).unwrap();
        if names.len() % 89 == 0 {
            assert!(
                t.live_blocks() <= l.total(),
                "{} left: {} blocks, {:?}",
                names.len(),
                t.live_blocks(),
                kinds(&l)
            );
        }
    }
    assert_eq!(l.total(), space::SPACE_BLOCKS);
    assert!(t.live_blocks() <= space::SPACE_BLOCKS);
    t.run(|| drop(s));
    assert_eq!(l.total(), 0);
}

/// What `mm::kmem` relies on: every heap block IPC allocates fits a granule, and the
/// granules charged are never fewer than the blocks alive.
#[test]
fn every_block_is_charged_and_fits_a_granule() {
    use crate::mm::kmem::GRANULE;
    use crate::testalloc::Tracker;
    let l = ledger();
    let mut t = Tracker::new();
    let (s, c) = t.run(|| (space(&l), space(&l)));
    let check = |t: &Tracker, what: &str| {
        assert!(
            t.largest_block() <= GRANULE,
            "{what}: a block of {}",
            t.largest_block()
        );
        assert!(
            t.live_blocks() <= l.total(),
            "{what}: {} blocks alive, {} charged ({:?})",
            t.live_blocks(),
            l.total(),
            kinds(&l)
        );
    };
    check(&t, "spaces");
    let names: Vec<PortName> = (0..400).map(|_| PortName::NULL).collect();
    let mut names = names;
    t.run(|| {
        for n in names.iter_mut() {
            *n = s.allocate(R_RECV).unwrap();
        }
    });
    check(&t, "receive rights");
    t.run(|| {
        let q = c.allocate(R_RECV).unwrap();
        for (i, &r) in names.iter().enumerate() {
            let right = s.extract_right(r, MakeSend as u32).unwrap();
            c.insert_right(n(i as u32), right).unwrap();
            let so = c.extract_right(q, MakeSendOnce as u32).unwrap();
            c.request_notification(n(i as u32), nid::DEAD_NAME, 0, so)
                .unwrap();
        }
    });
    check(&t, "send rights and dead-name requests");
    t.run(|| {
        // Many requests on one port: its request map grows past a node.
        let q = c.allocate(R_RECV).unwrap();
        for i in 0..200 {
            let so = s.extract_right(names[0], MakeSendOnce as u32).unwrap();
            c.insert_right(n(1000 + i), so).unwrap();
            let note = c.extract_right(q, MakeSendOnce as u32).unwrap();
            c.request_notification(n(1000 + i), nid::DEAD_NAME, 0, note)
                .unwrap();
        }
    });
    check(&t, "requests on one port");
    t.run(|| {
        let big = KmsgShape {
            body_len: 3000,
            ports: 70,
            ool: 0,
        };
        for i in 0..20u32 {
            let h = c
                .copyin_header(msgh_bits::make(19, 0), n(i), PortName::NULL)
                .unwrap();
            let mut k = Kmsg::new(c.ledger(), big).unwrap();
            k.set_ports(h.dest, h.reply, 0);
            k.body.extend_from_slice(&[7; 3000]);
            for j in 0..70 {
                let p = c.copyin(n(i), CopySend).unwrap();
                k.push_port(j, p).unwrap();
            }
            assert!(matches!(
                mqueue::send(k, true, |_| false),
                SendResult::Queued
            ));
        }
    });
    check(&t, "queued messages");
    t.run(|| {
        for &r in names.iter().step_by(3) {
            s.destroy_name(r).unwrap();
        }
        let p = s.allocate(R_PSET).unwrap();
        for &r in names.iter().skip(1).step_by(3) {
            s.move_member(r, p).unwrap();
        }
    });
    check(&t, "dead ports and a set");
    t.run(|| {
        s.destroy();
        c.destroy();
        drop((s, c));
        crate::ipc::kmsg::release_spare();
    });
    assert_eq!((t.live_blocks(), l.total()), (0, 0));
}

// ---------------------------------------------------------------- threads

/// Clients calling a server through a port set while another thread keeps making,
/// moving and destroying ports: checks the lock order (the host build checks every
/// acquisition) and that nothing leaks when it all ends.
#[test]
fn threads_calling_a_server_while_ports_come_and_go() {
    use std::sync::atomic::{AtomicBool, Ordering};
    const CALLS: usize = 300;
    let l = ledger();
    let server = space(&l);
    let set = server.allocate(R_PSET).unwrap();
    let svc: Vec<_> = (0..2).map(|_| server.allocate(R_RECV).unwrap()).collect();
    for &p in &svc {
        server.move_member(p, set).unwrap();
    }
    let done = Arc::new(AtomicBool::new(false));
    let mut threads = Vec::new();
    for &svc_port in &svc {
        let client = space(&l);
        let right = server.extract_right(svc_port, MakeSend as u32).unwrap();
        let to_server = client.copyout(right.into_right().unwrap(), false).unwrap();
        threads.push(std::thread::spawn(move || {
            let reply = client.allocate(R_RECV).unwrap();
            for _ in 0..CALLS {
                let sent = send(&client, to_server, CopySend, reply, Some(MakeSendOnce), &[]);
                // The queue may be full (the other thread floods it): wait for room.
                let mut sent = sent.unwrap();
                while let SendResult::Full(k) = sent {
                    std::thread::yield_now();
                    sent = mqueue::send(k, false, |_| false);
                }
                assert!(matches!(sent, SendResult::Queued));
                loop {
                    match recv(&client, reply).unwrap() {
                        Some(got) => {
                            assert_eq!((got.hdr.local, got.id), (reply, 1000));
                            break;
                        }
                        None => std::thread::yield_now(),
                    }
                }
            }
            client.destroy();
        }));
    }
    {
        let chaos = space(&l);
        let right = server.extract_right(svc[0], MakeSend as u32).unwrap();
        let to_server = chaos.copyout(right.into_right().unwrap(), false).unwrap();
        let done = done.clone();
        threads.push(std::thread::spawn(move || {
            let mut i = 0u32;
            while !done.load(Ordering::Acquire) {
                let r = chaos.allocate(R_RECV).unwrap();
                let q = chaos.allocate(R_RECV).unwrap();
                give_send(&chaos, r, &chaos, r);
                let _ = chaos.request_notification(r, nid::DEAD_NAME, 0, notify_right(&chaos, q));
                let _ = chaos.request_notification(q, nid::NO_SENDERS, 0, notify_right(&chaos, r));
                // Its receive right goes to the server, which destroys it.
                let _ = send_with(
                    &chaos,
                    to_server,
                    CopySend,
                    PortName::NULL,
                    None,
                    &[(q, MoveReceive), (r, MakeSend)],
                    true,
                );
                if i.is_multiple_of(3) {
                    let _ = chaos.destroy_name(r);
                } else {
                    let _ = chaos.mod_refs(r, R_RECV, -1);
                }
                let _ = chaos.deallocate(r);
                while recv(&chaos, q).ok().flatten().is_some() {}
                let _ = chaos.destroy_name(q);
                i += 1;
            }
            chaos.destroy();
        }));
    }
    let mut answered = 0;
    while answered < 2 * CALLS {
        let Some(got) = recv(&server, set).unwrap() else {
            // A thread that stopped early panicked: show why.
            if let Some(i) = threads.iter().position(|t| t.is_finished()) {
                threads.swap_remove(i).join().unwrap();
            }
            std::thread::yield_now();
            continue;
        };
        for name in got.ports.iter().filter(|n| n.is_valid()) {
            let _ = server.destroy_name(*name);
        }
        if got.hdr.remote.is_valid() {
            send(
                &server,
                got.hdr.remote,
                MoveSendOnce,
                PortName::NULL,
                None,
                &[],
            )
            .unwrap();
            answered += 1;
        }
    }
    done.store(true, Ordering::Release);
    for t in threads {
        t.join().unwrap();
    }
    server.debug_check().unwrap();
    server.destroy();
    drop(server);
    assert_eq!(l.total(), 0, "{:?}", kinds(&l));
}

// ---------------------------------------------------------------- property test

mod prop {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashMap;

    #[derive(Clone, Debug)]
    enum Op {
        Allocate {
            s: usize,
            right: u32,
        },
        Deallocate {
            s: usize,
            i: usize,
        },
        Destroy {
            s: usize,
            i: usize,
        },
        ModRefs {
            s: usize,
            i: usize,
            right: u32,
            delta: i32,
        },
        /// Send from space `s` to the right at index `dest`, carrying the right at index
        /// `body` with disposition `d`, and maybe a reply made from a receive right.
        Send {
            s: usize,
            dest: usize,
            body: Option<(usize, u32)>,
            reply: Option<usize>,
        },
        Receive {
            s: usize,
            i: usize,
        },
        /// Extract from `s` and insert into `to` under a fresh name.
        Give {
            s: usize,
            i: usize,
            d: u32,
            to: usize,
        },
        Request {
            s: usize,
            i: usize,
            id: i32,
            notify: usize,
        },
        MoveMember {
            s: usize,
            i: usize,
            set: usize,
        },
        Rename {
            s: usize,
            i: usize,
        },
        Qlimit {
            s: usize,
            i: usize,
            q: u32,
        },
        Restart {
            s: usize,
        },
    }

    const SPACES: usize = 3;

    fn op() -> impl Strategy<Value = Op> {
        let s = 0..SPACES;
        let i = 0usize..256;
        prop_oneof![
            4 => (s.clone(), prop_oneof![Just(R_RECV), Just(R_RECV), Just(R_PSET), Just(R_DEAD), Just(9)])
                .prop_map(|(s, right)| Op::Allocate { s, right }),
            3 => (s.clone(), i.clone()).prop_map(|(s, i)| Op::Deallocate { s, i }),
            1 => (s.clone(), i.clone()).prop_map(|(s, i)| Op::Destroy { s, i }),
            2 => (s.clone(), i.clone(), 0u32..5, -2i32..=2)
                .prop_map(|(s, i, right, delta)| Op::ModRefs { s, i, right, delta }),
            8 => (s.clone(), i.clone(), proptest::option::of((i.clone(), 16u32..22)), proptest::option::of(i.clone()))
                .prop_map(|(s, dest, body, reply)| Op::Send { s, dest, body, reply }),
            6 => (s.clone(), i.clone()).prop_map(|(s, i)| Op::Receive { s, i }),
            5 => (s.clone(), i.clone(), 16u32..22, s.clone())
                .prop_map(|(s, i, d, to)| Op::Give { s, i, d, to }),
            2 => (s.clone(), i.clone(), prop_oneof![Just(nid::DEAD_NAME), Just(nid::NO_SENDERS), Just(nid::PORT_DESTROYED)], i.clone())
                .prop_map(|(s, i, id, notify)| Op::Request { s, i, id, notify }),
            1 => (s.clone(), i.clone(), i.clone()).prop_map(|(s, i, set)| Op::MoveMember { s, i, set }),
            1 => (s.clone(), i.clone()).prop_map(|(s, i)| Op::Rename { s, i }),
            1 => (s.clone(), i.clone(), 0u32..4).prop_map(|(s, i, q)| Op::Qlimit { s, i, q }),
            1 => s.prop_map(|s| Op::Restart { s }),
        ]
    }

    fn names(s: &Space) -> Vec<PortName> {
        let mut v = Vec::new();
        let _ = s.names(|n, _| v.push(n));
        v
    }

    fn pick(s: &Space, i: usize) -> PortName {
        let v = names(s);
        if v.is_empty() {
            PortName(0x7fff_0000 + i as u32)
        } else {
            v[i % v.len()]
        }
    }

    fn pick_typed(s: &Space, i: usize, mask: u32) -> Option<PortName> {
        let v: Vec<_> = s
            .debug_entries()
            .into_iter()
            .filter(|e| e.1 & mask != 0)
            .map(|e| e.0)
            .collect();
        (!v.is_empty()).then(|| v[i % v.len()])
    }

    /// Mostly a name holding a right of `mask` (so that most operations do something),
    /// sometimes any name at all (so that their errors are exercised too).
    fn pick_for(s: &Space, i: usize, mask: u32) -> PortName {
        if !i.is_multiple_of(4)
            && let Some(name) = pick_typed(s, i / 4, mask)
        {
            return name;
        }
        pick(s, i)
    }

    /// The rights a disposition can be taken from.
    fn mask_for(d: u32) -> u32 {
        match d {
            16 | 20 | 21 => pt::RECEIVE,
            17 | 19 => pt::SEND | pt::DEAD_NAME,
            18 => pt::SEND_ONCE | pt::DEAD_NAME,
            _ => pt::ALL_RIGHTS,
        }
    }

    fn apply(spaces: &mut [Arc<Space>], ledger: &Arc<CountingLedger>, op: &Op) {
        match *op {
            Op::Allocate { s, right } => {
                let _ = spaces[s].allocate(right);
            }
            Op::Deallocate { s, i } => {
                let name = pick_for(&spaces[s], i, pt::SEND_RIGHTS | pt::DEAD_NAME);
                let _ = spaces[s].deallocate(name);
            }
            Op::Destroy { s, i } => {
                let _ = spaces[s].destroy_name(pick(&spaces[s], i));
            }
            Op::ModRefs { s, i, right, delta } => {
                let name = pick_for(&spaces[s], i, 1 << (16 + right));
                let _ = spaces[s].mod_refs(name, right, delta);
            }
            Op::Send {
                s,
                dest,
                body,
                reply,
            } => {
                let sp = &spaces[s];
                let Some(dn) = pick_typed(sp, dest, pt::SEND_RIGHTS | pt::RECEIVE) else {
                    return;
                };
                let ty = sp.port_type(dn).unwrap_or(0);
                let dd = if ty & pt::SEND != 0 {
                    CopySend
                } else if ty & pt::SEND_ONCE != 0 {
                    MoveSendOnce
                } else {
                    MakeSend
                };
                let body: Vec<_> = body
                    .map(|(b, d)| {
                        (
                            pick_for(sp, b, mask_for(d)),
                            Disposition::from_u32(d).unwrap(),
                        )
                    })
                    .into_iter()
                    .collect();
                let (rn, rd) = match reply.and_then(|r| pick_typed(sp, r, pt::RECEIVE)) {
                    Some(rn) => (rn, Some(MakeSendOnce)),
                    None => (PortName::NULL, None),
                };
                if let Ok(SendResult::Full(k)) = send(sp, dn, dd, rn, rd, &body) {
                    drop(k);
                }
            }
            Op::Receive { s, i } => {
                let sp = &spaces[s];
                if let Some(name) = pick_typed(sp, i, pt::RECEIVE | pt::PORT_SET)
                    && let Ok(src) = sp.mqueue_copyin(name)
                    && let RecvResult::Message(mut k) = src.receive(None, |_| false)
                {
                    match sp.copyout_header(&mut k) {
                        Ok(_) => {
                            for slot in k.ports_mut() {
                                let _ = sp.copyout_right(slot.port.take());
                            }
                        }
                        Err(_) => {
                            sp.copyout_dest(&mut k);
                        }
                    }
                }
            }
            Op::Give { s, i, d, to } => {
                let name = pick_for(&spaces[s], i, mask_for(d));
                if let Ok(right) = spaces[s].extract_right(name, d) {
                    let fresh = spaces[to].allocate(R_DEAD);
                    if let Ok(fresh) = fresh {
                        let _ = spaces[to].destroy_name(fresh);
                        let _ = spaces[to].insert_right(fresh, right);
                    }
                }
            }
            Op::Request { s, i, id, notify } => {
                let sp = &spaces[s];
                let mask = if id == nid::DEAD_NAME {
                    pt::PORT_OR_DEAD
                } else {
                    pt::RECEIVE
                };
                let name = pick_for(sp, i, mask);
                let Some(nn) = pick_typed(sp, notify, pt::RECEIVE) else {
                    return;
                };
                let Ok(right) = sp.extract_right(nn, MakeSendOnce as u32) else {
                    return;
                };
                // sync 0: a no-senders request fires at once when there are no senders.
                if let Ok(prev) = sp.request_notification(name, id, 0, right) {
                    drop(prev);
                }
            }
            Op::MoveMember { s, i, set } => {
                let sp = &spaces[s];
                let member = pick_for(sp, i, pt::RECEIVE);
                let after = pick_typed(sp, set, pt::PORT_SET).unwrap_or(PortName::NULL);
                let _ = sp.move_member(member, after);
            }
            Op::Rename { s, i } => {
                let sp = &spaces[s];
                let old = pick(sp, i);
                let _ = sp.rename(old, PortName(0x4000_0000 + i as u32));
            }
            Op::Qlimit { s, i, q } => {
                let name = pick_for(&spaces[s], i, pt::RECEIVE);
                let _ = spaces[s].set_qlimit(name, q);
            }
            Op::Restart { s } => {
                spaces[s].destroy();
                spaces[s] = space(ledger);
            }
        }
    }

    /// Spaces that already hold something: receive rights, a set, a dead name, and send
    /// and send-once rights to each other's ports.
    fn populated(l: &Arc<CountingLedger>) -> Vec<Arc<Space>> {
        let spaces: Vec<_> = (0..SPACES).map(|_| space(l)).collect();
        let mut recv = Vec::new();
        for s in &spaces {
            let r: Vec<_> = (0..3).map(|_| s.allocate(R_RECV).unwrap()).collect();
            s.allocate(R_PSET).unwrap();
            s.allocate(R_DEAD).unwrap();
            recv.push(r);
        }
        for (a, sa) in spaces.iter().enumerate() {
            for (b, sb) in spaces.iter().enumerate() {
                let right = sb.extract_right(recv[b][0], MakeSend as u32).unwrap();
                sa.copyout(right.into_right().unwrap(), true).unwrap();
                let right = sb.extract_right(recv[b][1], MakeSendOnce as u32).unwrap();
                sa.copyout(right.into_right().unwrap(), true).unwrap();
                if a != b {
                    let right = sb.extract_right(recv[b][2], MakeSend as u32).unwrap();
                    sa.copyout(right.into_right().unwrap(), true).unwrap();
                }
            }
        }
        spaces
    }

    /// Every port reachable from the spaces (through entries, queues and requests), by id.
    fn reachable(spaces: &[Arc<Space>]) -> HashMap<u64, Arc<Port>> {
        let mut seen = HashMap::new();
        let mut todo: Vec<Arc<Port>> = Vec::new();
        for s in spaces {
            todo.extend(s.debug_entries().into_iter().filter_map(|e| e.3));
            for set in s.debug_sets() {
                set.debug_held_rights(&mut |r| todo.push(r.port().clone()));
            }
        }
        while let Some(p) = todo.pop() {
            if seen.insert(p.id(), p.clone()).is_some() {
                continue;
            }
            p.debug_held_rights(&mut |r| todo.push(r.port().clone()));
        }
        seen
    }

    /// The counts each port keeps match the rights that exist, and a no-senders request
    /// never outlives the last send right.
    fn check_counts(spaces: &[Arc<Space>]) -> Result<(), String> {
        let ports = reachable(spaces);
        // Send, send-once and receive rights found, by port id.
        let mut found: HashMap<u64, [u32; 3]> = HashMap::new();
        for s in spaces {
            s.debug_check()?;
            for (_, ty, _, port) in s.debug_entries() {
                let Some(port) = port else { continue };
                let c = found.entry(port.id()).or_default();
                c[0] += u32::from(ty & pt::SEND != 0);
                c[1] += u32::from(ty & pt::SEND_ONCE != 0);
                c[2] += u32::from(ty & pt::RECEIVE != 0);
            }
        }
        let mut count = |r: &Right| {
            let c = found.entry(r.port().id()).or_default();
            match r.kind() {
                RightKind::Send => c[0] += 1,
                RightKind::SendOnce => c[1] += 1,
                RightKind::Receive => c[2] += 1,
            }
        };
        for s in spaces {
            for set in s.debug_sets() {
                set.debug_held_rights(&mut count);
            }
        }
        for p in ports.values() {
            p.debug_held_rights(&mut count);
        }
        for (id, p) in &ports {
            let st = p.status();
            if !st.active {
                continue;
            }
            let want = found.get(id).copied().unwrap_or_default();
            if [st.srights, st.sorights, 1] != want {
                return Err(format!(
                    "port {id}: counts (send {}, send-once {}, receive 1) but {want:?} exist",
                    st.srights, st.sorights
                ));
            }
            if st.srights == 0 && st.nsrequest {
                return Err(format!("port {id}: no senders, request still registered"));
            }
            // Every dead-name request belongs to a live name that says it has one.
            for (sid, name) in p.debug_dnrequests() {
                let Some(s) = spaces.iter().find(|s| s.id() == sid) else {
                    return Err(format!("port {id}: request from a space that is gone"));
                };
                let ty = s.port_type(PortName(name)).unwrap_or(0);
                if ty & pt::DNREQUEST == 0 {
                    return Err(format!("port {id}: request for {name:#x}, type {ty:#x}"));
                }
            }
        }
        Ok(())
    }

    /// What a space holds, for before/after comparisons.
    fn snapshot(s: &Space) -> Vec<(PortName, u32, u32, Option<PortStatus>)> {
        s.debug_entries()
            .into_iter()
            .map(|(n, ty, urefs, p)| (n, ty, urefs, p.map(|p| p.status())))
            .collect()
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

        /// A header either copies in, or fails with the space exactly as it was.
        #[test]
        fn header_copyin_is_all_or_nothing(
            dest_t in 14u32..23,
            reply_t in prop_oneof![Just(0u32), 14u32..23],
            di in 0usize..9,
            ri in 0usize..9,
        ) {
            let l = ledger();
            let s = space(&l);
            let other = space(&l);
            let r = s.allocate(R_RECV).unwrap();
            let r2 = s.allocate(R_RECV).unwrap();
            give_send(&s, r2, &s, r2);
            let o = other.allocate(R_RECV).unwrap();
            give_send(&other, o, &s, n(1));
            s.mod_refs(n(1), R_SEND, 1).unwrap();
            give_send_once(&other, o, &s, n(2));
            let d = s.allocate(R_DEAD).unwrap();
            let p = s.allocate(R_PSET).unwrap();
            let names = [r, r2, n(1), n(2), d, p, PortName::NULL, PortName::DEAD, n(99)];
            let before = snapshot(&s);
            let bits = msgh_bits::make(dest_t, reply_t);
            match s.copyin_header(bits, names[di], names[ri]) {
                Ok(h) => {
                    prop_assert_eq!(msgh_bits::remote(h.bits), h.dest.msg_type());
                    drop(h);
                }
                Err(e) => {
                    prop_assert_eq!(snapshot(&s), before, "{:?}", e);
                }
            }
            s.debug_check().unwrap();
            drop((s, other));
            prop_assert_eq!(l.total(), 0);
        }

    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

        #[test]
        fn random_operations_keep_counts_and_leak_nothing(ops in proptest::collection::vec(op(), 1..160)) {
            let l = ledger();
            let mut spaces = populated(&l);
            for op in &ops {
                apply(&mut spaces, &l, op);
                if let Err(e) = check_counts(&spaces) {
                    prop_assert!(false, "after {op:?}: {e}");
                }
            }
            for s in &spaces {
                s.destroy();
            }
            drop(spaces);
            prop_assert_eq!(l.total(), 0, "left charged: {:?}", kinds(&l));
        }

        #[test]
        fn random_operations_under_a_tight_ledger(ops in proptest::collection::vec(op(), 1..80), limit in 10usize..60) {
            let l = CountingLedger::new(usize::MAX);
            let mut spaces = populated(&l);
            let cap = l.total() + limit;
            l.set_limit(cap);
            for op in &ops {
                if matches!(op, Op::Restart { .. }) {
                    continue;
                }
                apply(&mut spaces, &l, op);
                prop_assert!(l.total() <= cap);
                if let Err(e) = check_counts(&spaces) {
                    prop_assert!(false, "after {op:?}: {e}");
                }
            }
            for s in &spaces {
                s.destroy();
            }
            drop(spaces);
            prop_assert_eq!(l.total(), 0, "left charged: {:?}", kinds(&l));
        }
    }

    /// A case the random operations found: the receive right of a port with a
    /// port-destroyed request is dropped (`mod_refs(RECEIVE, -1)`) under a name that also
    /// holds the last send right. The port lives on, so its no-senders request must be
    /// answered then, not left waiting for a sender that is gone.
    #[test]
    fn no_senders_is_answered_when_the_last_send_right_goes_with_a_surviving_receive_right() {
        use Op::*;
        let ops = [
            Deallocate { s: 0, i: 121 },
            Send {
                s: 1,
                dest: 117,
                body: Some((105, 16)),
                reply: Some(0),
            },
            Allocate { s: 2, right: 1 },
            Request {
                s: 1,
                i: 97,
                id: nid::PORT_DESTROYED,
                notify: 61,
            },
            Allocate { s: 0, right: 1 },
            Deallocate { s: 2, i: 41 },
            Receive { s: 2, i: 180 },
            Destroy { s: 2, i: 72 },
            Request {
                s: 1,
                i: 97,
                id: nid::NO_SENDERS,
                notify: 0,
            },
            ModRefs {
                s: 1,
                i: 65,
                right: 1,
                delta: -1,
            },
        ];
        let l = CountingLedger::new(usize::MAX);
        let mut spaces = populated(&l);
        let cap = l.total() + 10;
        l.set_limit(cap);
        for op in &ops {
            apply(&mut spaces, &l, op);
            if let Err(e) = check_counts(&spaces) {
                panic!("after {op:?}: {e}");
            }
        }
        for s in &spaces {
            s.destroy();
        }
        drop(spaces);
        assert_eq!(l.total(), 0, "left charged: {:?}", kinds(&l));
    }
}

/// The kernel's reply port for an RPC it makes (`exception_raise`): messages to it are
/// queued, not served; the kernel receives them; destroying it kills the send-once right
/// still out; everything is paid back.
#[test]
fn kernel_reply_port_queues_receives_and_dies() {
    let l = ledger();
    let dl = dyn_ledger(&l);
    let reply = Port::alloc_reply(&dl).unwrap();
    assert!(
        !reply.is_kernel(),
        "a reply port is not served by the kernel"
    );
    assert_eq!(reply.debug_receiver(), "reply");
    // Nothing queued: the caller is asked to wait for a message on the port.
    let mut asked = None;
    assert!(matches!(
        mqueue::receive_reply(&reply, |key| {
            asked = Some(key);
            true
        }),
        RecvResult::Empty
    ));
    assert_eq!(
        asked,
        Some(WaitKey {
            object: Arc::as_ptr(&reply) as usize,
            on: WaitOn::Message,
        })
    );
    // A reply through a send-once right: queued, and the waiter woken.
    woken();
    let so = reply.make_send_once(&dl).unwrap();
    let mut k = Kmsg::new(&dl, KmsgShape::default()).unwrap();
    k.id = 2500;
    k.size = kmsg::HEADER_SIZE as u32;
    k.set_ports(so, MsgPort::Null, 0);
    assert!(matches!(
        mqueue::send(k, true, |_| false),
        SendResult::Queued
    ));
    assert_eq!(woken(), vec![asked.unwrap()]);
    match mqueue::receive_reply(&reply, |_| panic!("a message is queued")) {
        RecvResult::Message(k) => {
            assert_eq!(k.id, 2500);
            assert_eq!(
                k.bits,
                msgh_bits::make(super::abi::msg_type::PORT_SEND_ONCE, 0)
            );
        }
        other => panic!("{other:?}"),
    }
    // A send-once right still out when the port is destroyed: its messages are destroyed.
    let so = reply.make_send_once(&dl).unwrap();
    Port::dealloc_reply(reply.clone());
    assert!(!reply.is_active());
    assert!(matches!(
        mqueue::receive_reply(&reply, |_| true),
        RecvResult::Died
    ));
    let mut k = Kmsg::new(&dl, KmsgShape::default()).unwrap();
    k.set_ports(so, MsgPort::Null, 0);
    assert!(matches!(
        mqueue::send(k, true, |_| false),
        SendResult::Destroyed
    ));
    drop(reply);
    assert_eq!(l.total(), 0, "everything paid back");
}

/// A reply port the kernel stops waiting on (its thread terminated) while the send-once
/// right is out: the port lives until that right's one message (the reply, or the
/// send-once notification of its destruction), which is destroyed with it and counts as
/// sent; with the right already used or gone, it dies at once. Everything is paid back.
#[test]
fn abandoned_reply_port_takes_its_one_message_then_dies() {
    let l = ledger();
    let dl = dyn_ledger(&l);
    let reply_msg = |so: Right| {
        let mut k = Kmsg::new(&dl, KmsgShape::default()).unwrap();
        k.id = 2500;
        k.size = kmsg::HEADER_SIZE as u32;
        k.set_ports(so, MsgPort::Null, 0);
        k
    };

    // The handler answers after the wait was given up.
    let reply = Port::alloc_reply(&dl).unwrap();
    let so = reply.make_send_once(&dl).unwrap();
    Port::abandon_reply(reply.clone());
    assert!(reply.is_active(), "kept for the answer still to come");
    assert_eq!(reply.debug_receiver(), "abandoned");
    assert!(matches!(
        mqueue::receive_reply(&reply, |_| panic!("nobody receives from it")),
        RecvResult::Died
    ));
    assert!(matches!(
        mqueue::send(reply_msg(so), true, |_| false),
        SendResult::Destroyed
    ));
    assert!(!reply.is_active(), "the answer ends it");
    assert_eq!(reply.status().msgcount, 0);
    drop(reply);
    assert_eq!(l.total(), 0, "paid back after an answer");

    // The handler destroys its right instead: the send-once notification ends it.
    let reply = Port::alloc_reply(&dl).unwrap();
    let so = reply.make_send_once(&dl).unwrap();
    Port::abandon_reply(reply.clone());
    assert!(reply.is_active());
    drop(so);
    assert!(!reply.is_active(), "the right's destruction ends it");
    drop(reply);
    assert_eq!(l.total(), 0, "paid back after the right's destruction");

    // The answer came before the wait was given up: destroyed at once, answer and all.
    let reply = Port::alloc_reply(&dl).unwrap();
    let so = reply.make_send_once(&dl).unwrap();
    assert!(matches!(
        mqueue::send(reply_msg(so), true, |_| false),
        SendResult::Queued
    ));
    Port::abandon_reply(reply.clone());
    assert!(!reply.is_active());
    drop(reply);
    assert_eq!(l.total(), 0, "paid back with an answer queued");

    // No right out: destroyed at once.
    let reply = Port::alloc_reply(&dl).unwrap();
    Port::abandon_reply(reply.clone());
    assert!(!reply.is_active());
    drop(reply);
    // Only for a reply port: a kernel port is left alone.
    let kport = Port::alloc_kernel(&dl, None).unwrap();
    Port::abandon_reply(kport.clone());
    assert!(kport.is_active());
    Port::dealloc_kernel(kport);
    assert_eq!(l.total(), 0, "everything paid back");
}

/// A model-based property test of one space's name space: every right a name holds and its
/// user references, kept by a plain map, against `Space` under random allocations,
/// insertions (merging into an existing name or refused), deallocations, destructions,
/// `mod_refs` of every right with deltas up to the reference limit, and the death of ports
/// whose receive right is elsewhere (send and send-once rights turn into dead names).
mod model {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    /// The rights under one name, as GNU Mach defines them.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    enum Held {
        /// A receive right, with the user references of the send right under the same
        /// name (0: none).
        Receive {
            port: usize,
            send: u32,
        },
        Send {
            port: usize,
            urefs: u32,
        },
        SendOnce {
            port: usize,
        },
        Dead {
            urefs: u32,
        },
        Set,
    }

    impl Held {
        fn port_type(self) -> u32 {
            match self {
                Held::Receive { send: 0, .. } => pt::RECEIVE,
                Held::Receive { .. } => pt::RECEIVE | pt::SEND,
                Held::Send { .. } => pt::SEND,
                Held::SendOnce { .. } => pt::SEND_ONCE,
                Held::Dead { .. } => pt::DEAD_NAME,
                Held::Set => pt::PORT_SET,
            }
        }
        fn port(self) -> Option<usize> {
            match self {
                Held::Receive { port, .. } | Held::Send { port, .. } | Held::SendOnce { port } => {
                    Some(port)
                }
                _ => None,
            }
        }
        /// `mach_port_get_refs` of `right`.
        fn refs(self, right: u32) -> u32 {
            match (self, right) {
                (Held::Receive { send, .. }, R_SEND) => send,
                (Held::Send { urefs, .. }, R_SEND) | (Held::Dead { urefs }, R_DEAD) => urefs,
                (Held::Receive { .. }, R_RECV)
                | (Held::SendOnce { .. }, R_SO)
                | (Held::Set, R_PSET) => 1,
                _ => 0,
            }
        }
    }

    /// A port of the test: its receive right's place.
    #[derive(Clone, Copy, Debug)]
    enum Owner {
        /// Under this name in the space tested.
        Here(PortName),
        /// Under this name in the other space.
        There(PortName),
        Dead,
    }

    #[derive(Default)]
    struct Model {
        names: BTreeMap<u32, Held>,
        ports: Vec<Owner>,
        next_name: u32,
    }

    impl Model {
        fn fresh(&mut self) -> PortName {
            self.next_name += 1;
            n(self.next_name)
        }
        /// The name the space tested has for `port`, if any (a send right to a live port,
        /// or its receive right).
        fn name_of(&self, port: usize) -> Option<u32> {
            self.names.iter().find_map(|(&k, &h)| match h {
                Held::Receive { port: p, .. } | Held::Send { port: p, .. } if p == port => Some(k),
                _ => None,
            })
        }
        /// `port` died: its send and send-once rights here become dead names.
        fn kill(&mut self, port: usize) {
            self.ports[port] = Owner::Dead;
            for h in self.names.values_mut() {
                match *h {
                    Held::Send { port: p, urefs } if p == port => *h = Held::Dead { urefs },
                    Held::SendOnce { port: p } if p == port => *h = Held::Dead { urefs: 1 },
                    _ => {}
                }
            }
        }
    }

    #[derive(Clone, Debug)]
    enum Op {
        AllocReceive,
        AllocDead,
        AllocSet,
        /// A port whose receive right the other space holds.
        AllocThere,
        /// A send right (send-once with `once`) made from port `i % ports` put into the
        /// space tested: under the name it has there, a fresh one, or (`other`) an
        /// existing name chosen by `j`.
        Insert {
            i: usize,
            once: bool,
            other: bool,
            j: usize,
        },
        /// The other space destroys the receive right of port `i % ports`.
        KillThere(usize),
        Deallocate(usize),
        Destroy(usize),
        ModRefs {
            j: usize,
            right: u32,
            delta: i32,
        },
    }

    fn op() -> impl Strategy<Value = Op> {
        let delta = prop_oneof![
            6 => -2i32..=2,
            1 => Just(MACH_PORT_UREFS_MAX as i32 - 2),
            1 => Just(MACH_PORT_UREFS_MAX as i32),
            1 => Just(-(MACH_PORT_UREFS_MAX as i32)),
            1 => any::<i32>(),
        ];
        prop_oneof![
            2 => Just(Op::AllocReceive),
            1 => Just(Op::AllocDead),
            1 => Just(Op::AllocSet),
            2 => Just(Op::AllocThere),
            6 => (any::<usize>(), any::<bool>(), proptest::bool::weighted(0.2), any::<usize>())
                .prop_map(|(i, once, other, j)| Op::Insert { i, once, other, j }),
            1 => any::<usize>().prop_map(Op::KillThere),
            3 => any::<usize>().prop_map(Op::Deallocate),
            1 => any::<usize>().prop_map(Op::Destroy),
            6 => (any::<usize>(), 0u32..6, delta)
                .prop_map(|(j, right, delta)| Op::ModRefs { j, right, delta }),
        ]
    }

    /// The `j`th name of the model (or a name it does not hold, when it holds none or
    /// `j` says so).
    fn pick(m: &Model, j: usize) -> PortName {
        if m.names.is_empty() || j.is_multiple_of(13) {
            return n(0x0fff_ffff);
        }
        PortName(*m.names.keys().nth(j % m.names.len()).unwrap())
    }

    /// What `mach_port_mod_refs` does to the model (GNU Mach `ipc_right_delta`).
    fn mod_refs(m: &mut Model, name: PortName, right: u32, delta: i32) -> Result<(), K> {
        if right > R_DEAD {
            return Err(K::InvalidValue);
        }
        let held = *m.names.get(&name.0).ok_or(K::InvalidName)?;
        let d = i64::from(delta);
        let max = i64::from(MACH_PORT_UREFS_MAX);
        match (right, held) {
            (R_PSET, Held::Set) | (R_SO, Held::SendOnce { .. }) => match delta {
                0 => Ok(()),
                -1 => {
                    m.names.remove(&name.0);
                    Ok(())
                }
                _ => Err(K::InvalidValue),
            },
            (R_RECV, Held::Receive { port, send }) => match delta {
                0 => Ok(()),
                -1 => {
                    m.names.remove(&name.0);
                    m.kill(port);
                    if send > 0 {
                        m.names.insert(name.0, Held::Dead { urefs: send });
                    }
                    Ok(())
                }
                _ => Err(K::InvalidValue),
            },
            (R_DEAD, Held::Dead { urefs }) => {
                let left = i64::from(urefs) + d;
                if left < 0 {
                    Err(K::InvalidValue)
                } else if d > 0 && left > max {
                    Err(K::UrefsOverflow)
                } else {
                    if left == 0 {
                        m.names.remove(&name.0);
                    } else {
                        m.names.insert(name.0, Held::Dead { urefs: left as u32 });
                    }
                    Ok(())
                }
            }
            (
                R_SEND,
                Held::Send { urefs, .. }
                | Held::Receive {
                    send: urefs @ 1.., ..
                },
            ) => {
                let left = i64::from(urefs) + d;
                if left < 0 {
                    return Err(K::InvalidValue);
                }
                if d > 0 && left + 1 > max {
                    return Err(K::UrefsOverflow);
                }
                let left = left as u32;
                match held {
                    Held::Receive { port, .. } => {
                        m.names.insert(name.0, Held::Receive { port, send: left });
                    }
                    Held::Send { port, .. } if left > 0 => {
                        m.names.insert(name.0, Held::Send { port, urefs: left });
                    }
                    _ => {
                        m.names.remove(&name.0);
                    }
                }
                Ok(())
            }
            _ => Err(K::InvalidRight),
        }
    }

    /// What `mach_port_deallocate` does to the model (GNU Mach `ipc_right_dealloc`).
    fn deallocate(m: &mut Model, name: PortName) -> Result<(), K> {
        let held = *m.names.get(&name.0).ok_or(K::InvalidName)?;
        match held {
            Held::Dead { urefs: urefs @ 2.. } => {
                m.names.insert(name.0, Held::Dead { urefs: urefs - 1 });
            }
            Held::Send {
                port,
                urefs: urefs @ 2..,
            } => {
                m.names.insert(
                    name.0,
                    Held::Send {
                        port,
                        urefs: urefs - 1,
                    },
                );
            }
            Held::Receive {
                port,
                send: send @ 1..,
            } => {
                m.names.insert(
                    name.0,
                    Held::Receive {
                        port,
                        send: send - 1,
                    },
                );
            }
            Held::Dead { .. } | Held::Send { .. } | Held::SendOnce { .. } => {
                m.names.remove(&name.0);
            }
            Held::Receive { .. } | Held::Set => return Err(K::InvalidRight),
        }
        Ok(())
    }

    fn apply(s: &Space, there: &Space, m: &mut Model, op: &Op) -> Result<(), TestCaseError> {
        match *op {
            Op::AllocReceive => {
                let name = s.allocate(R_RECV).unwrap();
                m.ports.push(Owner::Here(name));
                let port = m.ports.len() - 1;
                m.names.insert(name.0, Held::Receive { port, send: 0 });
            }
            Op::AllocDead => {
                let name = s.allocate(R_DEAD).unwrap();
                m.names.insert(name.0, Held::Dead { urefs: 1 });
            }
            Op::AllocSet => {
                let name = s.allocate(R_PSET).unwrap();
                m.names.insert(name.0, Held::Set);
            }
            Op::AllocThere => {
                let name = there.allocate(R_RECV).unwrap();
                m.ports.push(Owner::There(name));
            }
            Op::KillThere(i) => {
                if m.ports.is_empty() {
                    return Ok(());
                }
                let port = i % m.ports.len();
                if let Owner::There(name) = m.ports[port] {
                    prop_assert_eq!(there.mod_refs(name, R_RECV, -1), Ok(()));
                    m.kill(port);
                }
            }
            Op::Insert { i, once, other, j } => {
                if m.ports.is_empty() {
                    return Ok(());
                }
                let port = i % m.ports.len();
                let (owner, at) = match m.ports[port] {
                    Owner::Here(at) => (s, at),
                    Owner::There(at) => (there, at),
                    Owner::Dead => return Ok(()),
                };
                let how = if once { MakeSendOnce } else { MakeSend };
                let right = owner.extract_right(at, how as u32).unwrap();
                let existing = if once { None } else { m.name_of(port) };
                let name = if other && !m.names.is_empty() {
                    pick(m, j | 1)
                } else {
                    existing.map_or_else(|| m.fresh(), PortName)
                };
                let want = match (existing, m.names.get(&name.0).copied()) {
                    (Some(e), _) if e != name.0 => Err(K::RightExists),
                    (
                        Some(_),
                        Some(Held::Send { urefs, .. } | Held::Receive { send: urefs, .. }),
                    ) if urefs > 0 && urefs + 1 >= MACH_PORT_UREFS_MAX => Err(K::UrefsOverflow),
                    (Some(_), Some(Held::Send { port, urefs })) => {
                        m.names.insert(
                            name.0,
                            Held::Send {
                                port,
                                urefs: urefs + 1,
                            },
                        );
                        Ok(())
                    }
                    (Some(_), Some(Held::Receive { port, send })) => {
                        m.names.insert(
                            name.0,
                            Held::Receive {
                                port,
                                send: send + 1,
                            },
                        );
                        Ok(())
                    }
                    (Some(_), _) => unreachable!("the model's name for a port holds it"),
                    (None, Some(_)) => Err(K::NameExists),
                    (None, None) => {
                        let held = if once {
                            Held::SendOnce { port }
                        } else {
                            Held::Send { port, urefs: 1 }
                        };
                        m.names.insert(name.0, held);
                        Ok(())
                    }
                };
                prop_assert_eq!(s.insert_right(name, right), want, "{:?} at {:?}", op, name);
            }
            Op::Deallocate(j) => {
                let name = pick(m, j);
                let want = deallocate(m, name);
                prop_assert_eq!(s.deallocate(name), want, "{:?} of {:?}", op, name);
            }
            Op::Destroy(j) => {
                let name = pick(m, j);
                let want = match m.names.remove(&name.0) {
                    None => Err(K::InvalidName),
                    Some(Held::Receive { port, .. }) => {
                        m.kill(port);
                        Ok(())
                    }
                    Some(_) => Ok(()),
                };
                prop_assert_eq!(s.destroy_name(name), want, "{:?} of {:?}", op, name);
            }
            Op::ModRefs { j, right, delta } => {
                let name = pick(m, j);
                let want = mod_refs(m, name, right, delta);
                prop_assert_eq!(
                    s.mod_refs(name, right, delta),
                    want,
                    "{:?} of {:?}",
                    op,
                    name
                );
            }
        }
        Ok(())
    }

    /// The space holds exactly the model's names, each with the model's rights and
    /// references.
    fn agree(s: &Space, m: &Model) -> Result<(), TestCaseError> {
        let mut listed = Vec::new();
        s.names(|name, ty| listed.push((name.0, ty))).unwrap();
        let want: Vec<(u32, u32)> = m.names.iter().map(|(&k, h)| (k, h.port_type())).collect();
        prop_assert_eq!(listed, want);
        for (&k, &h) in &m.names {
            prop_assert_eq!(s.port_type(PortName(k)), Ok(h.port_type()));
            for right in [R_SEND, R_RECV, R_SO, R_PSET, R_DEAD] {
                prop_assert_eq!(s.get_refs(PortName(k), right), Ok(h.refs(right)), "{:?}", h);
            }
            if let Some(port) = h.port() {
                prop_assert!(!matches!(m.ports[port], Owner::Dead));
            }
        }
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

        #[test]
        fn the_name_space_behaves_as_its_model(ops in proptest::collection::vec(op(), 1..120)) {
            let l = ledger();
            let (s, there) = (space(&l), space(&l));
            let mut m = Model::default();
            for op in &ops {
                apply(&s, &there, &mut m, op)?;
                agree(&s, &m)?;
            }
            s.debug_check().unwrap();
            s.destroy();
            there.destroy();
            drop((s, there));
            prop_assert_eq!(l.total(), 0, "everything given back");
        }
    }
}

// ---------------------------------------------------------------- self-check (`checks=`)

fn problems(s: &Space) -> Vec<space::NameProblem> {
    let mut found = Vec::new();
    s.check(&mut |p| found.push(p.problem));
    found
}

#[test]
fn check_passes_on_every_kind_of_right_and_finds_corruption() {
    use space::NameProblem as P;
    let l = ledger();
    let (a, b) = (space(&l), space(&l));
    let r = a.allocate(R_RECV).unwrap();
    give_send(&a, r, &b, n(1));
    give_send_once(&a, r, &b, n(2));
    let dead = a.allocate(R_DEAD).unwrap();
    let _set = a.allocate(R_PSET).unwrap();
    assert_eq!(problems(&a), []);
    assert_eq!(problems(&b), []);

    // A send right whose user references reached 0 without the name going.
    b.lock().entries.get_mut(&n(1).0).unwrap().urefs = 0;
    assert_eq!(
        problems(&b),
        [P::NoUrefs {
            ty: abi::port_type::SEND
        }]
    );
    b.lock().entries.get_mut(&n(1).0).unwrap().urefs = 1;
    a.lock().entries.get_mut(&dead.0).unwrap().urefs = 0;
    assert_eq!(
        problems(&a),
        [P::NoUrefs {
            ty: abi::port_type::DEAD_NAME
        }]
    );
    a.lock().entries.get_mut(&dead.0).unwrap().urefs = 1;

    // The port's own counts disagree with the rights the space holds.
    let port = port_of(&a, r);
    let srights = core::mem::replace(&mut port.state.lock().srights, 0);
    assert_eq!(problems(&b), [P::NoSendRights]);
    port.state.lock().srights = srights;
    let sorights = core::mem::replace(&mut port.state.lock().sorights, 0);
    assert_eq!(problems(&b), [P::NoSendOnceRights]);
    port.state.lock().sorights = sorights;
    let receiver = core::mem::replace(&mut port.state.lock().receiver, port::Receiver::Limbo);
    assert_eq!(problems(&a), [P::ReceiverElsewhere]);
    port.state.lock().receiver = receiver;
    let id = port.id();
    // (Changed in place: removing and inserting again would upset the space's charge.)
    let name = core::mem::replace(a.lock().reverse.get_mut(&id).unwrap(), 0);
    assert_eq!(problems(&a), [P::ReverseMissing]);
    *a.lock().reverse.get_mut(&id).unwrap() = name;
    assert_eq!(problems(&a), []);
    assert_eq!(problems(&b), []);
    let shown = space::SpaceProblem {
        space: 7,
        name: 0x103,
        problem: P::NoSendRights,
    }
    .to_string();
    assert_eq!(
        shown,
        "space 7 name 0x103: a send right to a port that counts 0 send rights"
    );
    // Thousands of names later, and after they are gone, the charge still fits the maps.
    let names: Vec<PortName> = (0..2000).map(|_| b.allocate(R_RECV).unwrap()).collect();
    assert_eq!(problems(&b), []);
    for name in names {
        b.destroy_name(name).unwrap();
    }
    assert_eq!(problems(&b), []);
    let charge = space::SpaceProblem {
        space: 7,
        name: 0,
        problem: P::Charge { held: 3, needed: 4 },
    };
    assert_eq!(
        charge.to_string(),
        "space 7: 3 granules of kernel memory charged, its names need 4"
    );
}
