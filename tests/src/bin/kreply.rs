//! `kreply`: a request to a kernel object whose reply port is itself a kernel object's port
//! (found by the fuzzer, seed 468706648: a message to one processor's port naming another's
//! as its reply port). The kernel answers the request and sends its reply to the other
//! object, which must be destroyed like any request it cannot serve, charge and all: the
//! kernel's leak check after the task ends finds every heap byte back. Each send must
//! succeed (the kernel took the message) and nothing may come back to the task.

#![no_std]
#![no_main]

use armach_tests::Checks;
use armach_tests::msg::{Msg, mach_msg};
use libmach::abi::message::{
    MACH_MSG_TYPE_COPY_SEND, MACH_MSG_TYPE_MAKE_SEND_ONCE, msgh_bits, option,
};
use libmach::{Args, KernReturn, PortName, traps};

libmach::main!(main);

/// A request id no kernel server has, and one of `mach_host.defs` (`host_info`).
const UNKNOWN_ID: i32 = 0x0de0_d941;
const HOST_INFO_ID: i32 = 2638;

fn main(_args: &Args) -> i32 {
    let mut c = Checks::new("kreply");
    let task = traps::mach_task_self();
    let host = traps::mach_host_self();
    let thread = traps::mach_thread_self();
    for (what, dest, reply, id) in [
        (
            "unknown id to the host, reply to the host",
            host,
            host,
            UNKNOWN_ID,
        ),
        (
            "unknown id to the task, reply to the thread",
            task,
            thread,
            UNKNOWN_ID,
        ),
        (
            "host_info with no body to the host, reply to the task",
            host,
            task,
            HOST_INFO_ID,
        ),
    ] {
        for round in 0..20 {
            let mut m = Msg::new();
            m.header(
                msgh_bits(MACH_MSG_TYPE_COPY_SEND, MACH_MSG_TYPE_COPY_SEND),
                dest,
                reply,
                id,
            );
            let r = mach_msg(
                &mut m,
                option::SEND_MSG | option::SEND_TIMEOUT,
                32,
                0,
                PortName::NULL,
                10,
            );
            if round == 0 || r != KernReturn::Success {
                c.check_eq(what, r, KernReturn::Success);
            }
        }
    }
    // A send-once reply right to a kernel object's port: the kernel makes one from our
    // receive right only, so a kernel port cannot be named with MAKE_SEND_ONCE.
    let mut m = Msg::new();
    m.header(
        msgh_bits(MACH_MSG_TYPE_COPY_SEND, MACH_MSG_TYPE_MAKE_SEND_ONCE),
        host,
        task,
        UNKNOWN_ID,
    );
    let r = mach_msg(
        &mut m,
        option::SEND_MSG | option::SEND_TIMEOUT,
        32,
        0,
        PortName::NULL,
        10,
    );
    c.check_eq(
        "MAKE_SEND_ONCE of a kernel port we hold no receive right for",
        r,
        KernReturn::SendInvalidReply,
    );
    c.finish()
}
