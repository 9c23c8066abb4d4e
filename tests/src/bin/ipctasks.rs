//! `ipctasks`: Mach IPC between two tasks, started together as `init=ipctasks,ipctasks`.
//! The first to publish its port in rendezvous slot 0 (temporary `RENDEZVOUS_PUBLISH`) is
//! the server, the other the client (temporary `RENDEZVOUS_LOOKUP`). The client makes RPCs
//! (inline data), sends the server a send right to a port of its own (the server answers
//! there), sends out-of-line memory (sizes around page boundaries up to 1 MiB, at odd
//! offsets, once with `deallocate`; the server checks the bytes and that the rest of the
//! last page is zero), then asks the server to stop and waits for a reply
//! that never comes: the server exits holding the client's send-once reply right, and the
//! client must get the send-once notification (GNU Mach `MACH_NOTIFY_SEND_ONCE`). The
//! client then destroys a port with out-of-line memory queued on it and exits with
//! messages (rights and up to 1 MiB of out-of-line memory in them) still queued; the
//! kernel's leak check at the end finds nothing left.

#![no_std]
#![no_main]

extern crate alloc;

use armach_tests::Checks;
use armach_tests::msg::{Msg, int_desc};
use libmach::abi::message::{
    MACH_MSG_TYPE_COPY_SEND, MACH_MSG_TYPE_MAKE_SEND, MACH_MSG_TYPE_MAKE_SEND_ONCE,
    MACH_MSG_TYPE_MOVE_SEND, MACH_MSG_TYPE_MOVE_SEND_ONCE, MACH_MSGH_BITS_COMPLEX, TypeDesc,
    msgh_bits, notify, option,
};
use libmach::{Args, KernReturn, PortName, ipc, traps};

libmach::main!(main);

const RPC: i32 = 1;
const GIVE_RIGHT: i32 = 2;
const ON_GIVEN: i32 = 3;
const OOL: i32 = 4;
const STOP: i32 = 9;
const RPCS: u32 = 100;
/// Out-of-line sizes sent across: around page boundaries, past the old 32 KiB cap, 1 MiB.
const OOL_SIZES: [usize; 11] = [
    1,
    100,
    4095,
    4096,
    4097,
    8191,
    8192,
    8193,
    32 * 1024 + 1,
    300_000,
    1 << 20,
];
const PAGE: usize = 4096;

/// The byte at `i` of a test region of `len` bytes.
fn pattern(i: usize, len: usize) -> u8 {
    (i.wrapping_mul(7) ^ (i >> 12) ^ len) as u8
}

/// A hash of a region's bytes that sees where each byte is.
fn hash(data: &[u8]) -> u32 {
    data.iter().fold(0x811c_9dc5u32, |h, &b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    })
}

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
                // The region is whole pages of this task: the bytes, then zeroes.
                let mapped = len.div_ceil(PAGE) * PAGE;
                let aligned = addr.is_multiple_of(PAGE as u64);
                let (sum, tail_clear) = if addr == 0 || !aligned {
                    (0, false)
                } else {
                    // SAFETY: the kernel mapped `len` bytes, whole pages, at `addr` for
                    // this task.
                    let data = unsafe { core::slice::from_raw_parts(addr as *const u8, mapped) };
                    (hash(&data[..len]), data[len..].iter().all(|&b| b == 0))
                };
                if addr != 0 {
                    // SAFETY: the region is this task's; nothing refers to it after this.
                    let _ = unsafe {
                        traps::vm_deallocate(traps::mach_task_self(), addr, mapped as u64)
                    };
                }
                let reply = m.remote_name();
                m = Msg::new();
                m.header(
                    msgh_bits(MACH_MSG_TYPE_MOVE_SEND_ONCE, 0),
                    reply,
                    PortName(0),
                    OOL + 100,
                );
                m.desc(
                    32,
                    TypeDesc {
                        number: 2,
                        ..int_desc()
                    },
                );
                m.put32(40, sum);
                m.put32(44, u32::from(tail_clear && aligned));
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

/// Send `len` bytes at `addr` out of line to `server` and receive the answer on `reply`.
fn send_ool(
    m: &mut Msg,
    server: PortName,
    reply: PortName,
    addr: u64,
    len: usize,
    deallocate: bool,
) -> KernReturn {
    *m = Msg::new();
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
            number: len as u32,
            inline: false,
            longform: true,
            deallocate,
        },
    );
    m.words[5] = addr;
    armach_tests::msg::mach_msg(m, option::SEND_MSG | option::RCV_MSG, 48, 128, reply, 0)
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

    // Out-of-line memory, each size from a region of its own at an odd offset (so the
    // bytes do not start on a page), then once more with `deallocate` from a whole region.
    for len in OOL_SIZES.iter().copied().chain([PAGE * 3 + 5]) {
        let dealloc = len == PAGE * 3 + 5;
        let offset = if dealloc { 0 } else { 123 };
        let size = (offset + len).div_ceil(PAGE) * PAGE;
        let Ok(region) = traps::vm_allocate(task, 0, size as u64, true) else {
            c.check(false, "client: memory to send", format_args!("{len} bytes"));
            continue;
        };
        let start = region + offset as u64;
        // SAFETY: `[region, region + size)` was just allocated for this task.
        let bytes = unsafe { core::slice::from_raw_parts_mut(start as *mut u8, len) };
        for (i, b) in bytes.iter_mut().enumerate() {
            *b = pattern(i, len);
        }
        let expected = hash(bytes);
        let r = send_ool(&mut m, server, reply, start, len, dealloc);
        c.check(
            (r, m.get32(40), m.get32(44)) == (KernReturn::Success, expected, 1),
            "client: out-of-line memory to the other task, the same bytes, zeroes after",
            format_args!(
                "{len} bytes: {r:?}, hash {:#x}, tail {}",
                m.get32(40),
                m.get32(44)
            ),
        );
        if dealloc {
            // The sender's region went with the message: the range is free again.
            let again = traps::vm_allocate(task, region, size as u64, false);
            c.check_eq(
                "client: deallocate: the sender's region is gone",
                again,
                Ok(region),
            );
        }
        // SAFETY: nothing refers to the region any more.
        let _ = unsafe { traps::vm_deallocate(task, region, size as u64) };
    }

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

    // Messages left queued at our end, with rights and out-of-line memory in them (up to
    // 1 MiB: frames the kernel must free when this task dies); one more on a port
    // destroyed now (its frames freed with it).
    let big = traps::vm_allocate(task, 0, 1 << 20, true).unwrap_or(0);
    let doomed = traps::mach_reply_port();
    let keep = traps::mach_reply_port();
    for (i, (dest, len)) in [
        (keep, 100u32),
        (keep, 64 * 1024),
        (keep, 1 << 20),
        (doomed, 200_000),
    ]
    .into_iter()
    .enumerate()
    {
        let i = i as i32;
        m = Msg::new();
        m.header(
            msgh_bits(MACH_MSG_TYPE_MAKE_SEND, MACH_MSG_TYPE_MAKE_SEND_ONCE)
                | MACH_MSGH_BITS_COMPLEX,
            dest,
            mine,
            50 + i,
        );
        m.desc(
            32,
            TypeDesc {
                name: 9,
                size: 8,
                number: len,
                inline: false,
                longform: true,
                deallocate: false,
            },
        );
        m.words[5] = big;
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
    let destroyed = libmach::mig::mach_port::mach_port_destroy(
        &mut ipc::transport(),
        &ipc::task_self(),
        doomed,
    );
    c.check_eq(
        "client: a port destroyed with out-of-line memory queued",
        destroyed,
        Ok(()),
    );
}
