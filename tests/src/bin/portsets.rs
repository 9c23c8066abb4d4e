//! `portsets`: port sets through `mach_msg` from user space. A set made with
//! `mach_port_allocate(PORT_SET)`, members added, moved and removed with
//! `mach_port_move_member`; a receive on the set takes the members' messages in the order
//! they came, `msgh_local_port` naming the member; a member cannot be received from on its
//! own; a receiver blocked on the set is woken by a send to a member (from another thread,
//! so from another CPU when there are several); destroying the set wakes its receivers
//! with `MACH_RCV_PORT_DIED` and frees its members.

#![no_std]
#![no_main]

extern crate alloc;

use alloc::vec::Vec;
use armach_tests::Checks;
use armach_tests::msg::{Msg, int_desc, mach_msg};
use libmach::abi::message::{MACH_MSG_TYPE_MAKE_SEND, msgh_bits, option};
use libmach::abi::port::PortRight;
use libmach::ipc;
use libmach::mig::mach_port;
use libmach::{Args, KernReturn, PortName, thread, traps};

libmach::main!(main);

/// `MACH_PORT_TYPE_PORT_SET`.
const TYPE_PORT_SET: u32 = 1 << 19;
/// Index of `mps_pset` in `mach_port_status_t`.
const STATUS_PSET: usize = 0;

fn main(_args: &Args) -> i32 {
    let mut c = Checks::new("portsets");
    c.note(format_args!("{} CPUs", libmach::cpu_count()));
    members_and_order(&mut c);
    blocked_receivers(&mut c);
    destroy_set(&mut c);
    c.finish()
}

fn task() -> PortName {
    traps::mach_task_self()
}

fn new_port(c: &mut Checks) -> PortName {
    let p = traps::mach_port_allocate(task(), PortRight::Receive).unwrap_or(PortName(0));
    c.check(p.0 != 0, "a receive right", format_args!("{p:?}"));
    p
}

fn new_set(c: &mut Checks) -> PortName {
    let s = traps::mach_port_allocate(task(), PortRight::PortSet).unwrap_or(PortName(0));
    c.check(
        s.0 != 0,
        "mach_port_allocate(PORT_SET)",
        format_args!("{s:?}"),
    );
    s
}

fn move_member(member: PortName, after: PortName) -> Result<(), KernReturn> {
    let task = ipc::task_self();
    mach_port::mach_port_move_member(&mut ipc::transport(), &task, member, after)
}

fn members(set: PortName) -> Result<Vec<PortName>, KernReturn> {
    let task = ipc::task_self();
    mach_port::mach_port_get_set_status(&mut ipc::transport(), &task, set)
        .map(|o| o.members.iter().collect())
}

fn pset_of(port: PortName) -> u32 {
    let task = ipc::task_self();
    mach_port::mach_port_get_receive_status(&mut ipc::transport(), &task, port)
        .map(|o| o.status[STATUS_PSET] as u32)
        .unwrap_or(!0)
}

fn destroy(name: PortName) -> Result<(), KernReturn> {
    let task = ipc::task_self();
    mach_port::mach_port_destroy(&mut ipc::transport(), &task, name)
}

/// A header-only message to `dest` with `id`.
fn send(dest: PortName, id: i32) -> KernReturn {
    let mut m = Msg::new();
    m.header(msgh_bits(MACH_MSG_TYPE_MAKE_SEND, 0), dest, PortName(0), id);
    mach_msg(&mut m, option::SEND_MSG, 32, 0, PortName(0), 0)
}

/// Receive on `name`, waiting up to `ms` (0: not at all): the code, the id and the local
/// port as received.
fn receive(name: PortName, ms: u32) -> (KernReturn, i32, PortName) {
    let mut m = Msg::new();
    let r = mach_msg(
        &mut m,
        option::RCV_MSG | option::RCV_TIMEOUT,
        0,
        128,
        name,
        ms,
    );
    (r, m.id(), PortName(m.local() as u32))
}

fn members_and_order(c: &mut Checks) {
    let set = new_set(c);
    let a = new_port(c);
    let b = new_port(c);
    let d = new_port(c);
    c.check_eq(
        "mach_port_type of the set",
        mach_port::mach_port_type(&mut ipc::transport(), &ipc::task_self(), set).map(|o| o.ptype),
        Ok(TYPE_PORT_SET),
    );
    c.check_eq("an empty set", members(set), Ok(Vec::new()));
    c.check_eq(
        "receive on an empty set times out",
        receive(set, 0).0,
        KernReturn::RcvTimedOut,
    );
    // A message queued on b before it joins moves into the set with it.
    c.check_eq(
        "a message to b before it joins",
        send(b, 20),
        KernReturn::Success,
    );
    c.check_eq("move a into the set", move_member(a, set), Ok(()));
    c.check_eq("move b into the set", move_member(b, set), Ok(()));
    c.check_eq("the set's members", members(set), Ok(alloc::vec![a, b]));
    c.check_eq("a's status names the set", pset_of(a), set.0);
    c.check_eq("d is in no set", pset_of(d), 0);
    c.check_eq(
        "receive on a member is refused",
        receive(a, 0).0,
        KernReturn::RcvInSet,
    );
    c.check_eq(
        "a set is not a member of a set",
        move_member(set, set),
        Err(KernReturn::InvalidRight),
    );
    c.check_eq(
        "moving a non-member out",
        move_member(d, PortName(0)),
        Err(KernReturn::NotInSet),
    );
    c.check_eq(
        "moving into a name that is no set",
        move_member(d, a),
        Err(KernReturn::InvalidRight),
    );
    for (dest, id) in [(a, 1), (b, 2), (a, 3)] {
        c.check_eq("send to a member", send(dest, id), KernReturn::Success);
    }
    // Oldest first across members; the local port names the member.
    let expected = [
        (KernReturn::Success, 20, b),
        (KernReturn::Success, 1, a),
        (KernReturn::Success, 2, b),
        (KernReturn::Success, 3, a),
    ];
    for e in expected {
        c.check_eq("receive on the set", receive(set, 0), e);
    }
    c.check_eq(
        "then the set is empty",
        receive(set, 0).0,
        KernReturn::RcvTimedOut,
    );

    // Out of the set: a's messages come to a again; b's still come through the set.
    c.check_eq("move a out", move_member(a, PortName(0)), Ok(()));
    c.check_eq("the set's members", members(set), Ok(alloc::vec![b]));
    let _ = send(a, 4);
    let _ = send(b, 5);
    c.check_eq(
        "the set gets only b's",
        receive(set, 0),
        (KernReturn::Success, 5, b),
    );
    c.check_eq(
        "a's message waits on a",
        receive(set, 0).0,
        KernReturn::RcvTimedOut,
    );
    c.check_eq(
        "a receives its own",
        receive(a, 0),
        (KernReturn::Success, 4, a),
    );

    // Moving a member to another set takes its queued messages along.
    let other = new_set(c);
    let _ = send(b, 6);
    c.check_eq("move b to another set", move_member(b, other), Ok(()));
    c.check_eq("the first set is empty", members(set), Ok(Vec::new()));
    c.check_eq(
        "the message moved with b",
        receive(other, 0),
        (KernReturn::Success, 6, b),
    );
    c.check_eq(
        "none left in the first set",
        receive(set, 0).0,
        KernReturn::RcvTimedOut,
    );
    // A member destroyed leaves its set.
    c.check_eq("destroy b", destroy(b), Ok(()));
    c.check_eq("the other set is empty", members(other), Ok(Vec::new()));
    for name in [set, other, a, d] {
        c.check_eq("destroy", destroy(name), Ok(()));
    }
}

/// Threads blocked on a set, woken by sends to members from this thread (another CPU when
/// there are several).
fn blocked_receivers(c: &mut Checks) {
    const ROUNDS: i32 = 50;
    const MEMBERS: usize = 4;
    let set = new_set(c);
    let ports: Vec<PortName> = (0..MEMBERS).map(|_| new_port(c)).collect();
    for &p in &ports {
        let _ = move_member(p, set);
    }
    // The receiver acknowledges each message on `ack` with the id and the member's name.
    let ack = new_port(c);
    let receiver = thread::spawn(move || {
        let mut got = 0;
        for _ in 0..ROUNDS {
            let mut m = Msg::new();
            if mach_msg(&mut m, option::RCV_MSG, 0, 128, set, 0) != KernReturn::Success {
                break;
            }
            let mut a = Msg::new();
            a.header(
                msgh_bits(MACH_MSG_TYPE_MAKE_SEND, 0),
                ack,
                PortName(0),
                m.id(),
            );
            a.desc(32, int_desc());
            a.put32(40, m.local() as u32);
            if mach_msg(&mut a, option::SEND_MSG, 48, 0, PortName(0), 0) != KernReturn::Success {
                break;
            }
            got += 1;
        }
        got
    });
    let receiver = match receiver {
        Ok(r) => r,
        Err(e) => {
            c.check(false, "a receiver thread", format_args!("{e:?}"));
            return;
        }
    };
    let mut right = 0;
    for i in 0..ROUNDS {
        let member = ports[i as usize % MEMBERS];
        let sent = send(member, 1000 + i);
        // The receiver acknowledges before blocking on the set again, so it is blocked
        // (or about to be) when the next message goes.
        let mut m = Msg::new();
        let r = mach_msg(
            &mut m,
            option::RCV_MSG | option::RCV_TIMEOUT,
            0,
            128,
            ack,
            10_000,
        );
        // The body carries what the receiver saw as msgh_local_port.
        if sent == KernReturn::Success
            && r == KernReturn::Success
            && m.id() == 1000 + i
            && m.get32(40) == member.0
        {
            right += 1;
        }
    }
    c.check_eq(
        "a receiver blocked on the set is woken by each send to a member",
        right,
        ROUNDS,
    );
    c.check_eq("  the receiver got them all", receiver.join(), ROUNDS);
    for name in ports.iter().copied().chain([set, ack]) {
        let _ = destroy(name);
    }
}

/// Destroying a set: its queued messages go back to their ports, its members leave it,
/// receivers blocked on it get `MACH_RCV_PORT_DIED`.
fn destroy_set(c: &mut Checks) {
    let set = new_set(c);
    let a = new_port(c);
    let _ = move_member(a, set);
    c.check_eq(
        "a message queued in the set",
        send(a, 8),
        KernReturn::Success,
    );
    c.check_eq("destroy the set", destroy(set), Ok(()));
    c.check_eq("a is in no set", pset_of(a), 0);
    c.check_eq(
        "a's message is back on a",
        receive(a, 0),
        (KernReturn::Success, 8, a),
    );
    c.check_eq(
        "the set's name is gone",
        receive(set, 0).0,
        KernReturn::RcvInvalidName,
    );

    let set = new_set(c);
    let _ = move_member(a, set);
    let waiters: Vec<_> = (0..2)
        .filter_map(|_| {
            thread::spawn(move || {
                let mut m = Msg::new();
                mach_msg(&mut m, option::RCV_MSG, 0, 128, set, 0)
            })
            .ok()
        })
        .collect();
    c.check_eq("two receivers on a set", waiters.len(), 2);
    // Let them block; one that had not yet started its receive would find the name gone
    // (MACH_RCV_INVALID_NAME), which the check below shows if it happens.
    armach_tests::sleep_ms(50);
    c.check_eq("destroy the set under them", destroy(set), Ok(()));
    let results: Vec<KernReturn> = waiters.into_iter().map(|w| w.join()).collect();
    c.check_eq(
        "both receivers: the set died",
        results,
        alloc::vec![KernReturn::RcvPortDied, KernReturn::RcvPortDied],
    );
    c.check_eq("a is in no set", pset_of(a), 0);
    let _ = destroy(a);
}
