//! `machmsg`: Mach IPC through the traps, in the spirit of GNU Mach's `test-mach_port` and
//! `test-machmsg`. The `mach_port` traps (26, 72-75) with good and bad arguments and GNU
//! Mach's codes; `mach_msg` echo combined and split, same thread and across threads (and so
//! CPUs); every right disposition in a body; out-of-line memory; timeouts; a full queue,
//! with and without blocking; malformed headers and descriptors, each with its error; a
//! message to a kernel port (answered by the kernel); names and messages until the task's
//! kernel memory refuses (`KERN_RESOURCE_SHORTAGE` / `MACH_SEND_NO_BUFFER`). It ends with
//! messages still queued and a thread blocked in `mach_msg`: the kernel must interrupt the
//! thread and free everything (its leak check).

#![no_std]
#![no_main]

extern crate alloc;

use alloc::vec::Vec;
use armach_tests::msg::{Msg, int_desc, port_desc};
use armach_tests::{Checks, counter, counter_frequency};
use libmach::abi::message::{
    MACH_MSG_TYPE_COPY_SEND, MACH_MSG_TYPE_MAKE_SEND, MACH_MSG_TYPE_MAKE_SEND_ONCE,
    MACH_MSG_TYPE_MOVE_RECEIVE, MACH_MSG_TYPE_MOVE_SEND, MACH_MSG_TYPE_MOVE_SEND_ONCE,
    MACH_MSGH_BITS_COMPLEX, TypeDesc, msgh_bits, option,
};
use libmach::abi::port::PortRight;
use libmach::{Args, KernReturn, PortName, thread, traps};

libmach::main!(main);

const BYTE: u8 = 9;

const SEND: u32 = option::SEND_MSG;
const RCV: u32 = option::RCV_MSG;

fn code(r: Result<(), KernReturn>) -> KernReturn {
    r.err().unwrap_or(KernReturn::Success)
}

fn recv_port(c: &mut Checks) -> PortName {
    let p = traps::mach_reply_port();
    c.check(
        p.0 != 0,
        "mach_reply_port gives a name",
        format_args!("{p:?}"),
    );
    p
}

/// A simple message (header + one integer) to `dest` made with `dest_d`.
fn simple(m: &mut Msg, dest: PortName, dest_d: u8, reply: PortName, reply_d: u8, id: i32, v: u32) {
    *m = Msg::new();
    m.header(msgh_bits(dest_d, reply_d), dest, reply, id);
    m.desc(32, int_desc());
    m.put32(40, v);
}

fn main(_args: &Args) -> i32 {
    let mut c = Checks::new("machmsg");
    let task = traps::mach_task_self();
    c.check(
        task.0 != 0,
        "mach_task_self is a name",
        format_args!("{task:?}"),
    );
    c.check_eq("mach_task_self twice", traps::mach_task_self(), task);
    let me = traps::mach_thread_self();
    c.check(
        me.0 != 0 && me != task,
        "mach_thread_self",
        format_args!("{me:?}"),
    );
    let host = traps::mach_host_self();
    c.check(
        host.0 != 0 && host != task,
        "mach_host_self",
        format_args!("{host:?}"),
    );

    port_traps(&mut c, task);
    echo(&mut c);
    dispositions(&mut c, task);
    out_of_line(&mut c);
    timeouts(&mut c);
    full_queue(&mut c);
    malformed(&mut c, task);
    kernel_port(&mut c, task);
    across_threads(&mut c);
    leave_blocked(&mut c);
    many_names(&mut c, task);
    exhaustion(&mut c, task);
    c.finish()
}

fn port_traps(c: &mut Checks, task: PortName) {
    let a = traps::mach_reply_port();
    let b = traps::mach_reply_port();
    c.check(
        a.0 != 0 && b.0 != 0 && a != b,
        "mach_reply_port twice: two names",
        format_args!("{a:?} {b:?}"),
    );
    for (right, what) in [
        (PortRight::Receive, "receive"),
        (PortRight::PortSet, "port set"),
        (PortRight::DeadName, "dead name"),
    ] {
        let r = traps::mach_port_allocate(task, right);
        c.check(
            r.is_ok(),
            "mach_port_allocate",
            format_args!("{what}: {r:?}"),
        );
    }
    let r = traps::mach_port_allocate(task, PortRight::Send);
    c.check_eq(
        "mach_port_allocate(SEND)",
        r.err(),
        Some(KernReturn::InvalidValue),
    );
    let r = traps::mach_port_allocate(PortName(0xdead), PortRight::Receive);
    c.check_eq(
        "mach_port_allocate(bad task)",
        r.err(),
        Some(KernReturn::SendInterrupted),
    );
    // SAFETY: the kernel writes through a bad pointer only by copyout, which fails.
    let raw = unsafe {
        traps::syscall(
            libmach::abi::traps::MACH_PORT_ALLOCATE,
            [u64::from(task.0), PortRight::Receive as u64, 8, 0, 0, 0],
        )
    };
    c.check_eq(
        "mach_port_allocate(name at a bad address)",
        KernReturn::from_reg(raw.x0),
        KernReturn::InvalidAddress,
    );
    let name = PortName(0x4321);
    let r = traps::mach_port_allocate_name(task, PortRight::Receive, name);
    c.check_eq(
        "mach_port_allocate_name(0x4321)",
        code(r),
        KernReturn::Success,
    );
    let r = traps::mach_port_allocate_name(task, PortRight::Receive, name);
    c.check_eq(
        "mach_port_allocate_name again",
        code(r),
        KernReturn::NameExists,
    );
    let r = traps::mach_port_allocate_name(task, PortRight::Receive, PortName(0));
    c.check_eq(
        "mach_port_allocate_name(0)",
        code(r),
        KernReturn::InvalidValue,
    );
    let r = traps::mach_port_allocate_name(task, PortRight::Receive, PortName(!0));
    c.check_eq(
        "mach_port_allocate_name(DEAD)",
        code(r),
        KernReturn::InvalidValue,
    );
    let r = traps::mach_port_allocate_name(PortName(0xdead), PortRight::Receive, PortName(9));
    c.check_eq(
        "mach_port_allocate_name(bad task)",
        code(r),
        KernReturn::SendInterrupted,
    );

    let r = traps::mach_port_insert_right(task, name, name, MACH_MSG_TYPE_MAKE_SEND);
    c.check_eq(
        "mach_port_insert_right(MAKE_SEND)",
        code(r),
        KernReturn::Success,
    );
    let r = traps::mach_port_insert_right(task, name, name, 7);
    c.check_eq(
        "mach_port_insert_right(type 7)",
        code(r),
        KernReturn::InvalidValue,
    );
    let r = traps::mach_port_insert_right(task, PortName(0x5555), name, MACH_MSG_TYPE_MAKE_SEND);
    c.check_eq(
        "mach_port_insert_right(other name)",
        code(r),
        KernReturn::RightExists,
    );
    let r = traps::mach_port_insert_right(task, name, PortName(0x999), MACH_MSG_TYPE_COPY_SEND);
    c.check_eq(
        "mach_port_insert_right(no such right)",
        code(r),
        KernReturn::InvalidName,
    );
    let r = traps::mach_port_insert_right(PortName(0xdead), name, name, MACH_MSG_TYPE_MAKE_SEND);
    c.check_eq(
        "mach_port_insert_right(bad task)",
        code(r),
        KernReturn::SendInterrupted,
    );

    let r = traps::mach_port_deallocate(task, name);
    c.check_eq("mach_port_deallocate(send)", code(r), KernReturn::Success);
    let r = traps::mach_port_deallocate(task, name);
    c.check_eq(
        "mach_port_deallocate(receive only)",
        code(r),
        KernReturn::InvalidRight,
    );
    let r = traps::mach_port_deallocate(task, PortName(0x7777));
    c.check_eq(
        "mach_port_deallocate(no name)",
        code(r),
        KernReturn::InvalidName,
    );
    let r = traps::mach_port_deallocate(PortName(0xdead), name);
    c.check_eq(
        "mach_port_deallocate(bad task)",
        code(r),
        KernReturn::SendInterrupted,
    );
}

fn echo(c: &mut Checks) {
    let p = recv_port(c);
    let mut m = Msg::new();
    // Combined send and receive.
    simple(
        &mut m,
        p,
        MACH_MSG_TYPE_MAKE_SEND,
        PortName(0),
        0,
        1234,
        0xfeed,
    );
    let r = armach_tests::msg::mach_msg(&mut m, SEND | RCV, 48, 128, p, 0);
    c.check_eq("echo, send+receive in one call", r, KernReturn::Success);
    c.check_eq("echo: id", m.id(), 1234);
    c.check_eq("echo: size", m.size(), 48);
    c.check_eq("echo: data", m.get32(40), 0xfeed);
    c.check_eq("echo: local is the port", m.local(), u64::from(p.0));
    c.check_eq("echo: remote is null", m.remote(), 0);
    c.check_eq(
        "echo: bits",
        m.bits(),
        msgh_bits(0, libmach::abi::message::MACH_MSG_TYPE_PORT_SEND),
    );
    // Split, with a reply right made send-once.
    let reply = recv_port(c);
    simple(
        &mut m,
        p,
        MACH_MSG_TYPE_MAKE_SEND,
        reply,
        MACH_MSG_TYPE_MAKE_SEND_ONCE,
        77,
        5,
    );
    c.check_eq(
        "split send",
        armach_tests::msg::mach_msg(&mut m, SEND, 48, 0, PortName(0), 0),
        KernReturn::Success,
    );
    let mut r = Msg::new();
    c.check_eq(
        "split receive",
        armach_tests::msg::mach_msg(&mut r, RCV, 0, 128, p, 0),
        KernReturn::Success,
    );
    c.check_eq("split: id", r.id(), 77);
    let so_name = r.remote();
    // A send-once right gets a name of its own, even in the receive right's space.
    c.check(
        so_name != 0 && so_name != u64::from(reply.0),
        "split: the reply send-once right is named",
        format_args!("{so_name:#x}"),
    );
    // The reply through the send-once right.
    let so = PortName(r.remote() as u32);
    simple(
        &mut m,
        so,
        MACH_MSG_TYPE_MOVE_SEND_ONCE,
        PortName(0),
        0,
        177,
        6,
    );
    c.check_eq(
        "reply on send-once",
        armach_tests::msg::mach_msg(&mut m, SEND, 48, 0, PortName(0), 0),
        KernReturn::Success,
    );
    let r2 = armach_tests::msg::mach_msg(&mut r, RCV | option::RCV_TIMEOUT, 0, 128, reply, 100);
    c.check_eq("reply received", r2, KernReturn::Success);
    c.check_eq("reply: id", r.id(), 177);
}

/// Each disposition of a right carried in a body: what arrives.
fn dispositions(c: &mut Checks, task: PortName) {
    use libmach::abi::message::{
        MACH_MSG_TYPE_PORT_RECEIVE, MACH_MSG_TYPE_PORT_SEND, MACH_MSG_TYPE_PORT_SEND_ONCE,
    };
    let p = recv_port(c);
    let x = recv_port(c);
    let _ = traps::mach_port_insert_right(task, x, x, MACH_MSG_TYPE_MAKE_SEND);
    let cases: [(u8, u8, &str); 5] = [
        (
            MACH_MSG_TYPE_MAKE_SEND,
            MACH_MSG_TYPE_PORT_SEND,
            "MAKE_SEND",
        ),
        (
            MACH_MSG_TYPE_COPY_SEND,
            MACH_MSG_TYPE_PORT_SEND,
            "COPY_SEND",
        ),
        (
            MACH_MSG_TYPE_MOVE_SEND,
            MACH_MSG_TYPE_PORT_SEND,
            "MOVE_SEND",
        ),
        (
            MACH_MSG_TYPE_MAKE_SEND_ONCE,
            MACH_MSG_TYPE_PORT_SEND_ONCE,
            "MAKE_SEND_ONCE",
        ),
        (
            MACH_MSG_TYPE_MOVE_RECEIVE,
            MACH_MSG_TYPE_PORT_RECEIVE,
            "MOVE_RECEIVE",
        ),
    ];
    let mut so = PortName(0);
    for (d, received, what) in cases {
        let mut m = Msg::new();
        m.header(
            msgh_bits(MACH_MSG_TYPE_MAKE_SEND, 0) | MACH_MSGH_BITS_COMPLEX,
            p,
            PortName(0),
            10,
        );
        m.desc(32, port_desc(d, 1));
        m.put64(40, u64::from(x.0));
        let r = armach_tests::msg::mach_msg(&mut m, SEND | RCV, 48, 128, p, 0);
        c.check_eq("right in a body", (what, r), (what, KernReturn::Success));
        let desc = TypeDesc::from_words(m.get32(32), m.get32(36));
        c.check_eq("received type", (what, desc.name), (what, received));
        let name = m.get64(40) as u32;
        if d == MACH_MSG_TYPE_MAKE_SEND_ONCE {
            // A send-once right always gets a name of its own.
            so = PortName(name);
            c.check(
                name != 0 && name != x.0,
                "received name of a send-once right",
                format_args!("{name:#x}"),
            );
        } else {
            // In the same space the port keeps its name (the receive right comes back).
            c.check_eq("received name", (what, name), (what, x.0));
        }
    }
    // The send-once right MAKE_SEND_ONCE gave: use it.
    let mut m = Msg::new();
    m.header(
        msgh_bits(MACH_MSG_TYPE_MOVE_SEND_ONCE, 0),
        so,
        PortName(0),
        11,
    );
    let r = armach_tests::msg::mach_msg(&mut m, SEND | RCV, 32, 128, x, 0);
    c.check_eq(
        "message on the moved send-once right",
        r,
        KernReturn::Success,
    );
    // The moved receive right still receives.
    m = Msg::new();
    m.header(msgh_bits(MACH_MSG_TYPE_MAKE_SEND, 0), x, PortName(0), 12);
    let r = armach_tests::msg::mach_msg(&mut m, SEND | RCV, 32, 128, x, 0);
    c.check_eq(
        "the moved receive right receives",
        (r, m.id()),
        (KernReturn::Success, 12),
    );
    // Null and dead names pass as themselves; an array of two.
    m = Msg::new();
    m.header(
        msgh_bits(MACH_MSG_TYPE_MAKE_SEND, 0) | MACH_MSGH_BITS_COMPLEX,
        p,
        PortName(0),
        13,
    );
    m.desc(32, port_desc(MACH_MSG_TYPE_COPY_SEND, 2));
    m.put64(40, 0);
    m.put64(48, 0xffff_ffff);
    let r = armach_tests::msg::mach_msg(&mut m, SEND | RCV, 56, 128, p, 0);
    c.check_eq("null and dead names in a body", r, KernReturn::Success);
    c.check_eq("  null stays null", m.get64(40), 0);
    c.check_eq("  dead stays dead", m.get64(48), 0xffff_ffff);
}

fn out_of_line(c: &mut Checks) {
    let p = recv_port(c);
    let data: Vec<u8> = (0..10_000u32).map(|i| (i * 7) as u8).collect();
    let mut m = Msg::new();
    m.header(
        msgh_bits(MACH_MSG_TYPE_MAKE_SEND, 0) | MACH_MSGH_BITS_COMPLEX,
        p,
        PortName(0),
        20,
    );
    m.desc(
        32,
        TypeDesc {
            name: BYTE,
            size: 8,
            number: data.len() as u32,
            inline: false,
            longform: true,
            deallocate: false,
        },
    );
    m.put64(40, data.as_ptr() as u64);
    let r = armach_tests::msg::mach_msg(&mut m, SEND | RCV, 48, 128, p, 0);
    c.check_eq("out-of-line: send+receive", r, KernReturn::Success);
    let addr = m.get64(40);
    c.check(
        addr != 0 && addr != data.as_ptr() as u64,
        "out-of-line: a new region",
        format_args!("{addr:#x}"),
    );
    if addr != 0 {
        // SAFETY: the kernel mapped `data.len()` bytes at `addr` for this task.
        let got = unsafe { core::slice::from_raw_parts(addr as *const u8, data.len()) };
        c.check(
            got == data.as_slice(),
            "out-of-line: same bytes",
            format_args!("{} bytes", got.len()),
        );
        // SAFETY: the region is this task's and nothing refers to it after this.
        let _ = unsafe { traps::vm_deallocate(traps::mach_task_self(), addr, data.len() as u64) };
    }
    // An out-of-line array of rights (32-bit names): null, a send right made, null.
    let x = traps::mach_reply_port();
    let names: [u32; 3] = [0, x.0, 0];
    m = Msg::new();
    m.header(
        msgh_bits(MACH_MSG_TYPE_MAKE_SEND, 0) | MACH_MSGH_BITS_COMPLEX,
        p,
        PortName(0),
        22,
    );
    m.desc(
        32,
        TypeDesc {
            name: MACH_MSG_TYPE_MAKE_SEND,
            size: 32,
            number: 3,
            inline: false,
            longform: true,
            deallocate: false,
        },
    );
    m.put64(40, names.as_ptr() as u64);
    let r = armach_tests::msg::mach_msg(&mut m, SEND | RCV, 48, 128, p, 0);
    c.check_eq("out-of-line port array", r, KernReturn::Success);
    let desc = TypeDesc::from_words(m.get32(32), m.get32(36));
    c.check_eq(
        "  received as send rights",
        desc.name,
        libmach::abi::message::MACH_MSG_TYPE_PORT_SEND,
    );
    let addr = m.get64(40);
    if addr != 0 && addr != names.as_ptr() as u64 {
        // SAFETY: the kernel mapped the 3 names at `addr` for this task.
        let got = unsafe { core::slice::from_raw_parts(addr as *const u32, 3) };
        c.check_eq(
            "  names in a new region",
            [got[0], got[1], got[2]],
            [0, x.0, 0],
        );
        // SAFETY: the region is this task's and nothing refers to it after this.
        let _ = unsafe { traps::vm_deallocate(traps::mach_task_self(), addr, 12) };
    } else {
        c.check(false, "  names in a new region", format_args!("{addr:#x}"));
    }
    m.header(
        msgh_bits(MACH_MSG_TYPE_MAKE_SEND, 0) | MACH_MSGH_BITS_COMPLEX,
        p,
        PortName(0),
        23,
    );
    m.desc(
        32,
        TypeDesc {
            name: MACH_MSG_TYPE_COPY_SEND,
            size: 64,
            number: 1,
            inline: false,
            longform: true,
            deallocate: false,
        },
    );
    let r = armach_tests::msg::mach_msg(&mut m, SEND, 48, 0, PortName(0), 0);
    c.check_eq(
        "out-of-line port array of 64-bit names",
        r,
        KernReturn::SendInvalidType,
    );
    // A bad address.
    m = Msg::new();
    m.desc(
        32,
        TypeDesc {
            name: BYTE,
            size: 8,
            number: 100,
            inline: false,
            longform: true,
            deallocate: false,
        },
    );
    m.header(
        msgh_bits(MACH_MSG_TYPE_MAKE_SEND, 0) | MACH_MSGH_BITS_COMPLEX,
        p,
        PortName(0),
        21,
    );
    m.put64(40, 0x10);
    let r = armach_tests::msg::mach_msg(&mut m, SEND, 48, 0, PortName(0), 0);
    c.check_eq(
        "out-of-line at a bad address",
        r,
        KernReturn::SendInvalidMemory,
    );
}

fn elapsed_ms(start: u64) -> u64 {
    (counter() - start) * 1000 / counter_frequency()
}

fn timeouts(c: &mut Checks) {
    let p = recv_port(c);
    let mut m = Msg::new();
    let r = armach_tests::msg::mach_msg(&mut m, RCV | option::RCV_TIMEOUT, 0, 128, p, 0);
    c.check_eq("receive, timeout 0, empty", r, KernReturn::RcvTimedOut);
    let start = counter();
    let r = armach_tests::msg::mach_msg(&mut m, RCV | option::RCV_TIMEOUT, 0, 128, p, 30);
    let ms = elapsed_ms(start);
    c.check_eq("receive, timeout 30 ms, empty", r, KernReturn::RcvTimedOut);
    c.check(ms >= 25, "  waited about 30 ms", format_args!("{ms} ms"));
}

fn full_queue(c: &mut Checks) {
    let p = recv_port(c);
    let mut m = Msg::new();
    let send = |m: &mut Msg, timeout: u32, opt: u32| {
        simple(m, p, MACH_MSG_TYPE_MAKE_SEND, PortName(0), 0, 30, 0);
        armach_tests::msg::mach_msg(m, SEND | opt, 48, 0, PortName(0), timeout)
    };
    let mut sent = 0;
    while sent < 10 && send(&mut m, 0, option::SEND_TIMEOUT) == KernReturn::Success {
        sent += 1;
    }
    c.check_eq("queue limit (default 5)", sent, 5);
    let start = counter();
    let r = send(&mut m, 20, option::SEND_TIMEOUT);
    c.check_eq(
        "send to a full queue, timeout 20 ms",
        r,
        KernReturn::SendTimedOut,
    );
    c.check(
        elapsed_ms(start) >= 15,
        "  waited",
        format_args!("{} ms", elapsed_ms(start)),
    );
    // The message comes back with its rights (GNU Mach's pseudo-receive): the header
    // names them as the sender's space does, not swapped.
    let reply = recv_port(c);
    simple(
        &mut m,
        p,
        MACH_MSG_TYPE_MAKE_SEND,
        reply,
        MACH_MSG_TYPE_MAKE_SEND_ONCE,
        31,
        0,
    );
    let r = armach_tests::msg::mach_msg(&mut m, SEND | option::SEND_TIMEOUT, 48, 0, PortName(0), 0);
    c.check_eq(
        "send to a full queue, timeout 0",
        r,
        KernReturn::SendTimedOut,
    );
    c.check_eq(
        "  the message is given back: destination",
        m.remote(),
        u64::from(p.0),
    );
    let so = m.local();
    c.check(
        so != 0 && so != u64::from(reply.0),
        "  the message is given back: the send-once right made",
        format_args!("{so:#x}"),
    );
    c.check_eq(
        "  the message is given back: bits",
        m.bits(),
        msgh_bits(
            libmach::abi::message::MACH_MSG_TYPE_PORT_SEND,
            libmach::abi::message::MACH_MSG_TYPE_PORT_SEND_ONCE,
        ),
    );
    let mut n = Msg::new();
    let r = armach_tests::msg::mach_msg(&mut n, RCV | option::RCV_TIMEOUT, 0, 128, reply, 0);
    c.check_eq(
        "  no notification on the reply port",
        r,
        KernReturn::RcvTimedOut,
    );
    // A receiver in another thread makes room; this send blocks until then.
    let name = p;
    let t = thread::spawn(move || {
        libmach::traps::thread_switch(PortName(0), libmach::abi::traps::SWITCH_OPTION_WAIT, 30)
            .ok();
        let mut m = Msg::new();
        armach_tests::msg::mach_msg(&mut m, RCV, 0, 128, name, 0)
    });
    let r = send(&mut m, 0, 0);
    c.check_eq("blocking send to a full queue", r, KernReturn::Success);
    if let Ok(t) = t {
        c.check_eq("  the receiver got one", t.join(), KernReturn::Success);
    }
    for _ in 0..6 {
        let _ = armach_tests::msg::mach_msg(&mut m, RCV | option::RCV_TIMEOUT, 0, 128, p, 0);
    }
}

fn malformed(c: &mut Checks, task: PortName) {
    let p = recv_port(c);
    let mut m = Msg::new();
    let mut try_send = |what: &str, size: u32, expect: KernReturn, f: &dyn Fn(&mut Msg)| {
        simple(&mut m, p, MACH_MSG_TYPE_MAKE_SEND, PortName(0), 0, 40, 0);
        f(&mut m);
        let r = armach_tests::msg::mach_msg(
            &mut m,
            SEND | option::SEND_TIMEOUT,
            size,
            0,
            PortName(0),
            0,
        );
        c.check_eq(what, r, expect);
    };
    try_send("send size 16", 16, KernReturn::SendMsgTooSmall, &|_| {});
    try_send("send size 34", 34, KernReturn::SendMsgTooSmall, &|_| {});
    try_send(
        "no destination disposition",
        48,
        KernReturn::SendInvalidHeader,
        &|m| m.put32(0, 0),
    );
    try_send(
        "destination disposition 15",
        48,
        KernReturn::SendInvalidHeader,
        &|m| m.put32(0, 15),
    );
    try_send(
        "reply name without a disposition",
        48,
        KernReturn::SendInvalidHeader,
        &|m| m.put64(16, 5),
    );
    try_send(
        "no such destination",
        48,
        KernReturn::SendInvalidDest,
        &|m| m.put64(8, 0x7777),
    );
    try_send("null destination", 48, KernReturn::SendInvalidDest, &|m| {
        m.put64(8, 0)
    });
    try_send(
        "no such reply port",
        48,
        KernReturn::SendInvalidReply,
        &|m| {
            m.put32(
                0,
                msgh_bits(MACH_MSG_TYPE_MAKE_SEND, MACH_MSG_TYPE_COPY_SEND),
            );
            m.put64(16, 0x7777);
        },
    );
    try_send(
        "descriptor past the end",
        40,
        KernReturn::SendMsgTooSmall,
        &|m| {
            m.put32(
                0,
                msgh_bits(MACH_MSG_TYPE_MAKE_SEND, 0) | MACH_MSGH_BITS_COMPLEX,
            );
        },
    );
    try_send("data past the end", 48, KernReturn::SendMsgTooSmall, &|m| {
        m.put32(
            0,
            msgh_bits(MACH_MSG_TYPE_MAKE_SEND, 0) | MACH_MSGH_BITS_COMPLEX,
        );
        m.desc(
            32,
            TypeDesc {
                number: 3,
                ..int_desc()
            },
        );
    });
    try_send(
        "port descriptor of 32 bits",
        48,
        KernReturn::SendInvalidType,
        &|m| {
            m.put32(
                0,
                msgh_bits(MACH_MSG_TYPE_MAKE_SEND, 0) | MACH_MSGH_BITS_COMPLEX,
            );
            m.desc(
                32,
                TypeDesc {
                    size: 32,
                    ..port_desc(MACH_MSG_TYPE_COPY_SEND, 1)
                },
            );
        },
    );
    try_send(
        "no such right in a body",
        48,
        KernReturn::SendInvalidRight,
        &|m| {
            m.put32(
                0,
                msgh_bits(MACH_MSG_TYPE_MAKE_SEND, 0) | MACH_MSGH_BITS_COMPLEX,
            );
            m.desc(32, port_desc(MACH_MSG_TYPE_COPY_SEND, 1));
            m.put64(40, 0x7777);
        },
    );
    // The same descriptor without the complex bit is plain data.
    try_send(
        "descriptors of a simple message are data",
        48,
        KernReturn::Success,
        &|m| {
            m.desc(32, port_desc(MACH_MSG_TYPE_COPY_SEND, 1));
            m.put64(40, 0x7777);
        },
    );
    let mut r = Msg::new();
    let _ = armach_tests::msg::mach_msg(&mut r, RCV | option::RCV_TIMEOUT, 0, 128, p, 0);
    // SAFETY: the kernel reads through the pointer only by copyin, which fails.
    let bad = unsafe { traps::mach_msg(0x10 as *mut u8, SEND, 48, 0, PortName(0), 0, PortName(0)) };
    c.check_eq("message at a bad address", bad, KernReturn::SendInvalidData);
    // SAFETY: as above; the address range wraps around the top of the address space.
    let bad = unsafe {
        traps::mach_msg(
            (u64::MAX - 7) as *mut u8,
            SEND,
            48,
            0,
            PortName(0),
            0,
            PortName(0),
        )
    };
    c.check_eq(
        "message at the top of the address space",
        bad,
        KernReturn::SendInvalidData,
    );
    // Receive errors.
    let e = armach_tests::msg::mach_msg(
        &mut r,
        RCV | option::RCV_TIMEOUT,
        0,
        128,
        PortName(0x7777),
        0,
    );
    c.check_eq("receive on no such name", e, KernReturn::RcvInvalidName);
    let e = armach_tests::msg::mach_msg(&mut r, RCV | option::RCV_TIMEOUT, 0, 128, task, 0);
    c.check_eq("receive on a send right", e, KernReturn::RcvInvalidName);
    let mut big = m_for(p);
    let e = armach_tests::msg::mach_msg(&mut big, SEND | RCV | option::RCV_LARGE, 48, 40, p, 0);
    c.check_eq(
        "MACH_RCV_LARGE, buffer too small",
        e,
        KernReturn::RcvTooLarge,
    );
    c.check_eq("  the size is reported", big.size(), 48);
    let e = armach_tests::msg::mach_msg(&mut big, RCV | option::RCV_TIMEOUT, 0, 128, p, 0);
    c.check_eq(
        "  the message stayed queued",
        (e, big.id()),
        (KernReturn::Success, 41),
    );
    let mut small = m_for(p);
    let e = armach_tests::msg::mach_msg(&mut small, SEND | RCV, 48, 40, p, 0);
    c.check_eq("buffer too small", e, KernReturn::RcvTooLarge);
    let e = armach_tests::msg::mach_msg(&mut small, RCV | option::RCV_TIMEOUT, 0, 128, p, 0);
    c.check_eq("  the message was destroyed", e, KernReturn::RcvTimedOut);
    let mut s = m_for(p);
    let e = armach_tests::msg::mach_msg(&mut s, SEND, 48, 0, PortName(0), 0);
    c.check_eq("send for a bad receive buffer", e, KernReturn::Success);
    // SAFETY: the kernel writes through the pointer only by copyout, which fails.
    let e = unsafe {
        traps::mach_msg(
            0x10 as *mut u8,
            RCV | option::RCV_TIMEOUT,
            0,
            128,
            p,
            0,
            PortName(0),
        )
    };
    c.check_eq("receive into a bad address", e, KernReturn::RcvInvalidData);
}

/// A simple message to `p`.
fn m_for(p: PortName) -> Msg {
    let mut m = Msg::new();
    simple(&mut m, p, MACH_MSG_TYPE_MAKE_SEND, PortName(0), 0, 41, 0);
    m
}

/// A request to the task's kernel port with an id no server has: the kernel answers
/// `MIG_BAD_ID` on the reply port.
fn kernel_port(c: &mut Checks, task: PortName) {
    let reply = recv_port(c);
    let mut m = Msg::new();
    m.header(
        msgh_bits(MACH_MSG_TYPE_COPY_SEND, MACH_MSG_TYPE_MAKE_SEND_ONCE),
        task,
        reply,
        9999,
    );
    let r = armach_tests::msg::mach_msg(
        &mut m,
        SEND | RCV | option::RCV_TIMEOUT,
        32,
        128,
        reply,
        1000,
    );
    c.check_eq("RPC to the task port", r, KernReturn::Success);
    c.check_eq("  reply id", m.id(), 10099);
    c.check_eq(
        "  MIG_BAD_ID",
        m.get32(40) as i32,
        KernReturn::MigBadId.code(),
    );
}

/// RPCs to a server thread (so across CPUs when there are several).
fn across_threads(c: &mut Checks) {
    const RPCS: u32 = 200;
    let service = recv_port(c);
    let server = thread::spawn(move || {
        let mut m = Msg::new();
        let mut served = 0u32;
        while served < RPCS {
            if armach_tests::msg::mach_msg(&mut m, RCV, 0, 128, service, 0) != KernReturn::Success {
                break;
            }
            let reply = PortName(m.remote() as u32);
            let v = m.get32(40);
            simple(
                &mut m,
                reply,
                MACH_MSG_TYPE_MOVE_SEND_ONCE,
                PortName(0),
                0,
                200,
                v + 1,
            );
            if armach_tests::msg::mach_msg(&mut m, SEND, 48, 0, PortName(0), 0)
                != KernReturn::Success
            {
                break;
            }
            served += 1;
        }
        served
    });
    let reply = recv_port(c);
    let mut ok = 0;
    let mut m = Msg::new();
    for i in 0..RPCS {
        simple(
            &mut m,
            service,
            MACH_MSG_TYPE_MAKE_SEND,
            reply,
            MACH_MSG_TYPE_MAKE_SEND_ONCE,
            100,
            i,
        );
        let r = armach_tests::msg::mach_msg(&mut m, SEND | RCV, 48, 128, reply, 0);
        if r == KernReturn::Success && m.id() == 200 && m.get32(40) == i + 1 {
            ok += 1;
        }
    }
    c.check_eq("RPCs to a server thread", ok, RPCS);
    if let Ok(s) = server {
        c.check_eq("  the server served them", s.join(), RPCS);
    }
}

/// Receive rights until the task's kernel memory refuses, all destroyed again: the
/// task's account comes back to where it was. A name's two map entries are charged per
/// B-tree node (about two fifths of a granule), so the count is bounded by the ports
/// themselves (a granule each): over 2,000 under the default 4 MiB limit (about 1,250 when
/// every map entry took a granule).
fn many_names(c: &mut Checks, task: PortName) {
    let mut transport = libmach::ipc::transport();
    let me = libmach::ipc::task_self();
    // Dead names to give back at the limit, so that the RPCs destroying the receive rights
    // have room for their messages; one RPC now, so the thread's reply port exists.
    let spare: Vec<PortName> = (0..200)
        .filter_map(|_| traps::mach_port_allocate(task, PortRight::DeadName).ok())
        .collect();
    let _ = libmach::mig::mach_port::mach_port_type(&mut transport, &me, task);
    let before = traps::kmem_counts();
    let mut names = Vec::new();
    if names.try_reserve(20_000).is_err() {
        c.check(false, "room for the names", format_args!(""));
        return;
    }
    let refused = loop {
        match traps::mach_port_allocate(task, PortRight::Receive) {
            Ok(p) => names.push(p),
            Err(e) => break Some(e),
        }
        if names.len() >= 20_000 {
            break None;
        }
    };
    let after = traps::kmem_counts();
    let per_name = (after.task_charged - before.task_charged) / names.len().max(1) as u64;
    c.check(
        refused == Some(KernReturn::ResourceShortage) && names.len() > 2_000,
        "receive rights until the kernel-memory limit",
        format_args!(
            "{} names, then {refused:?}; {per_name} bytes charged a name; limit {} KiB",
            names.len(),
            after.task_limit / 1024
        ),
    );
    for &d in &spare {
        let _ = traps::mach_port_deallocate(task, d);
    }
    let k = traps::kmem_counts();
    c.note(format_args!(
        "at the limit, spares freed: {} of {}",
        k.task_charged, k.task_limit
    ));
    let mut failed = 0;
    let mut first_error = None;
    for &p in &names {
        if let Err(e) = libmach::mig::mach_port::mach_port_destroy(&mut transport, &me, p) {
            failed += 1;
            first_error.get_or_insert(e);
        }
    }
    c.check(
        failed == 0,
        "  all destroyed",
        format_args!("{failed} failed, first with {first_error:?}"),
    );
    drop(names);
    let end = traps::kmem_counts();
    // Less the spare dead names' share of the map (about 200 / 5 granules).
    c.check(
        end.task_charged <= before.task_charged
            && before.task_charged - end.task_charged <= 45 * 1024,
        "  the task's kernel-memory account is back",
        format_args!(
            "{} bytes before, {} after",
            before.task_charged, end.task_charged
        ),
    );
}

/// Ports with messages queued until the task's kernel memory refuses: an error, no panic.
fn exhaustion(c: &mut Checks, task: PortName) {
    let mut ports = 0u32;
    let mut refused = None;
    let mut m = Msg::new();
    while refused.is_none() && ports < 100_000 {
        match traps::mach_port_allocate(task, PortRight::Receive) {
            Ok(p) => {
                ports += 1;
                simple(
                    &mut m,
                    p,
                    MACH_MSG_TYPE_MAKE_SEND,
                    PortName(0),
                    0,
                    50,
                    ports,
                );
                let r = armach_tests::msg::mach_msg(
                    &mut m,
                    SEND | option::SEND_TIMEOUT,
                    48,
                    0,
                    PortName(0),
                    0,
                );
                if r != KernReturn::Success {
                    refused = Some(r);
                }
            }
            Err(e) => refused = Some(e),
        }
    }
    c.check(
        matches!(
            refused,
            Some(KernReturn::ResourceShortage | KernReturn::SendNoBuffer)
        ),
        "names and messages until refused",
        format_args!("{ports} ports, then {refused:?}"),
    );
    // The task still works.
    let p = traps::mach_reply_port();
    c.check(
        true,
        "the kernel is still up",
        format_args!("reply port {p:?}"),
    );
}

/// A thread left blocked in `mach_msg` forever: the task's end must interrupt it.
fn leave_blocked(c: &mut Checks) {
    let p = traps::mach_reply_port();
    let t = thread::spawn(move || {
        let mut m = Msg::new();
        armach_tests::msg::mach_msg(&mut m, RCV, 0, 128, p, 0)
    });
    c.check(
        t.is_ok(),
        "a thread blocks in mach_msg to the end",
        format_args!("{p:?}"),
    );
    // SAFETY: sleeping only.
    let _ = traps::thread_switch(PortName(0), libmach::abi::traps::SWITCH_OPTION_WAIT, 20);
    core::mem::forget(t);
}
