//! `ipctasks`: Mach IPC between two tasks, started together as `init=ipctasks,ipctasks`.
//! The first to publish its port in rendezvous slot 0 (temporary `RENDEZVOUS_PUBLISH`) is
//! the server, the other the client (temporary `RENDEZVOUS_LOOKUP`). The client makes RPCs
//! (inline data), sends the server a send right to a port of its own (the server answers
//! there), sends out-of-line memory, then asks the server to stop and waits for a reply
//! that never comes: the server exits holding the client's send-once reply right, and the
//! client must get the send-once notification (GNU Mach `MACH_NOTIFY_SEND_ONCE`). The
//! client then exits with messages (rights and out-of-line memory in them) still queued;
//! the kernel's leak check at the end finds nothing left.

#![no_std]
#![no_main]

extern crate alloc;

use alloc::vec::Vec;
use armach_tests::Checks;
use armach_tests::msg::{Msg, int_desc};
use libmach::abi::message::{
    MACH_MSG_TYPE_COPY_SEND, MACH_MSG_TYPE_MAKE_SEND, MACH_MSG_TYPE_MAKE_SEND_ONCE,
    MACH_MSG_TYPE_MOVE_SEND, MACH_MSG_TYPE_MOVE_SEND_ONCE, MACH_MSGH_BITS_COMPLEX, TypeDesc,
    msgh_bits, notify, option,
};
use libmach::{Args, KernReturn, PortName, traps};

libmach::main!(main);

const RPC: i32 = 1;
const GIVE_RIGHT: i32 = 2;
const ON_GIVEN: i32 = 3;
const OOL: i32 = 4;
const STOP: i32 = 9;
const RPCS: u32 = 100;
const OOL_BYTES: u32 = 6000;

fn main(_args: &Args) -> i32 {
    let mut c = Checks::new("ipctasks");
    let task = traps::mach_task_self();
    let port = traps::mach_reply_port();
    let r = traps::mach_port_insert_right(task, port, port, MACH_MSG_TYPE_MAKE_SEND);
    c.check(
        r.is_ok(),
        "a port with a send right",
        format_args!("{port:?} {r:?}"),
    );
    match traps::rendezvous_publish(0, port) {
        Ok(()) => {
            c.note(format_args!("server"));
            server(&mut c, port);
        }
        Err(e) => {
            c.check_eq("slot taken: client", e, KernReturn::NameExists);
            client(&mut c, task);
        }
    }
    c.finish()
}

fn server(c: &mut Checks, port: PortName) {
    let mut m = Msg::new();
    let mut rpcs = 0;
    loop {
        let r = armach_tests::msg::mach_msg(&mut m, option::RCV_MSG, 0, 128, port, 0);
        if r != KernReturn::Success {
            c.check_eq("server receive", r, KernReturn::Success);
            return;
        }
        match m.id() {
            RPC => {
                let v = m.get32(40);
                let reply = m.remote_name();
                m = Msg::new();
                m.header(
                    msgh_bits(MACH_MSG_TYPE_MOVE_SEND_ONCE, 0),
                    reply,
                    PortName(0),
                    RPC + 100,
                );
                m.desc(32, int_desc());
                m.put32(40, v.wrapping_mul(3));
                if armach_tests::msg::mach_msg(&mut m, option::SEND_MSG, 48, 0, PortName(0), 0)
                    == KernReturn::Success
                {
                    rpcs += 1;
                }
            }
            GIVE_RIGHT => {
                let given = PortName(m.words[5] as u32);
                m = Msg::new();
                m.header(
                    msgh_bits(MACH_MSG_TYPE_MOVE_SEND, 0),
                    given,
                    PortName(0),
                    ON_GIVEN,
                );
                let r =
                    armach_tests::msg::mach_msg(&mut m, option::SEND_MSG, 32, 0, PortName(0), 0);
                c.check_eq("server: message on the given right", r, KernReturn::Success);
            }
            OOL => {
                let addr = m.words[5];
                let len = m.get32(36) as usize;
                // SAFETY: the kernel mapped `len` bytes at `addr` for this task.
                let data = unsafe { core::slice::from_raw_parts(addr as *const u8, len) };
                let sum: u32 = data.iter().map(|&b| u32::from(b)).sum();
                let reply = m.remote_name();
                m = Msg::new();
                m.header(
                    msgh_bits(MACH_MSG_TYPE_MOVE_SEND_ONCE, 0),
                    reply,
                    PortName(0),
                    OOL + 100,
                );
                m.desc(32, int_desc());
                m.put32(40, sum);
                let _ =
                    armach_tests::msg::mach_msg(&mut m, option::SEND_MSG, 48, 0, PortName(0), 0);
            }
            STOP => {
                // Exit holding the client's send-once reply right.
                c.check_eq("server: RPCs answered", rpcs, RPCS);
                return;
            }
            id => {
                c.check(false, "server: known request", format_args!("id {id}"));
                return;
            }
        }
    }
}

fn client(c: &mut Checks, task: PortName) {
    let mut server = PortName(0);
    for _ in 0..500 {
        server = traps::rendezvous_lookup(0);
        if server.0 != 0 {
            break;
        }
        armach_tests::sleep_ms(10);
    }
    c.check(
        server.0 != 0,
        "client: the server's port",
        format_args!("{server:?}"),
    );
    if server.0 == 0 {
        return;
    }
    let reply = traps::mach_reply_port();
    let mut m = Msg::new();
    let mut ok = 0;
    for i in 0..RPCS {
        m.words = [0; 16];
        m.header(
            msgh_bits(MACH_MSG_TYPE_COPY_SEND, MACH_MSG_TYPE_MAKE_SEND_ONCE),
            server,
            reply,
            RPC,
        );
        m.desc(32, int_desc());
        m.put32(40, i);
        let r = armach_tests::msg::mach_msg(
            &mut m,
            option::SEND_MSG | option::RCV_MSG,
            48,
            128,
            reply,
            0,
        );
        if r == KernReturn::Success && m.id() == RPC + 100 && m.get32(40) == i.wrapping_mul(3) {
            ok += 1;
        }
    }
    c.check_eq("client: RPCs across tasks", ok, RPCS);

    // A send right to a port of ours, for the server to answer on.
    let mine = traps::mach_reply_port();
    m = Msg::new();
    m.header(
        msgh_bits(MACH_MSG_TYPE_COPY_SEND, 0) | MACH_MSGH_BITS_COMPLEX,
        server,
        PortName(0),
        GIVE_RIGHT,
    );
    m.desc(
        32,
        TypeDesc {
            name: MACH_MSG_TYPE_MAKE_SEND,
            size: 64,
            number: 1,
            inline: true,
            longform: false,
            deallocate: false,
        },
    );
    m.words[5] = u64::from(mine.0);
    let r = armach_tests::msg::mach_msg(&mut m, option::SEND_MSG, 48, 0, PortName(0), 0);
    c.check_eq(
        "client: a send right sent to the other task",
        r,
        KernReturn::Success,
    );
    let r = armach_tests::msg::mach_msg(
        &mut m,
        option::RCV_MSG | option::RCV_TIMEOUT,
        0,
        128,
        mine,
        5000,
    );
    c.check_eq(
        "client: the other task answered on it",
        (r, m.id()),
        (KernReturn::Success, ON_GIVEN),
    );

    // Out-of-line memory.
    let data: Vec<u8> = (0..OOL_BYTES).map(|i| (i % 251) as u8).collect();
    let sum: u32 = data.iter().map(|&b| u32::from(b)).sum();
    m = Msg::new();
    m.header(
        msgh_bits(MACH_MSG_TYPE_COPY_SEND, MACH_MSG_TYPE_MAKE_SEND_ONCE) | MACH_MSGH_BITS_COMPLEX,
        server,
        reply,
        OOL,
    );
    m.desc(
        32,
        TypeDesc {
            name: 9,
            size: 8,
            number: OOL_BYTES,
            inline: false,
            longform: true,
            deallocate: false,
        },
    );
    m.words[5] = data.as_ptr() as u64;
    let r = armach_tests::msg::mach_msg(
        &mut m,
        option::SEND_MSG | option::RCV_MSG,
        48,
        128,
        reply,
        0,
    );
    c.check_eq(
        "client: out-of-line memory to the other task",
        (r, m.get32(40)),
        (KernReturn::Success, sum),
    );

    // The server stops without answering: its death destroys our send-once right.
    m = Msg::new();
    m.header(
        msgh_bits(MACH_MSG_TYPE_COPY_SEND, MACH_MSG_TYPE_MAKE_SEND_ONCE),
        server,
        reply,
        STOP,
    );
    let r = armach_tests::msg::mach_msg(
        &mut m,
        option::SEND_MSG | option::RCV_MSG | option::RCV_TIMEOUT,
        32,
        128,
        reply,
        10_000,
    );
    c.check_eq(
        "client: the server died holding our reply right: send-once notification",
        (r, m.id()),
        (KernReturn::Success, notify::SEND_ONCE),
    );
    // A message to the dead server's port is destroyed (sent, for the sender).
    m = Msg::new();
    m.header(
        msgh_bits(MACH_MSG_TYPE_COPY_SEND, 0),
        server,
        PortName(0),
        RPC,
    );
    let r = armach_tests::msg::mach_msg(&mut m, option::SEND_MSG, 32, 0, PortName(0), 0);
    c.check(
        matches!(r, KernReturn::Success | KernReturn::SendInvalidDest),
        "client: a message to the dead server",
        format_args!("{r:?}"),
    );

    // Messages left queued at our end, with rights and out-of-line memory in them.
    let keep = traps::mach_reply_port();
    for i in 0..3 {
        m = Msg::new();
        m.header(
            msgh_bits(MACH_MSG_TYPE_MAKE_SEND, MACH_MSG_TYPE_MAKE_SEND_ONCE)
                | MACH_MSGH_BITS_COMPLEX,
            keep,
            mine,
            50 + i,
        );
        m.desc(
            32,
            TypeDesc {
                name: 9,
                size: 8,
                number: 100,
                inline: false,
                longform: true,
                deallocate: false,
            },
        );
        m.words[5] = data.as_ptr() as u64;
        let r = armach_tests::msg::mach_msg(
            &mut m,
            option::SEND_MSG | option::SEND_TIMEOUT,
            48,
            0,
            PortName(0),
            0,
        );
        c.check_eq("client: a message left queued", r, KernReturn::Success);
    }
    let _ = task;
}
