//! `benchsrv`: the server task of `bench`'s cross-CPU null RPC, started with it as
//! `init=bench,benchsrv` (by `cargo xtask bench` on 2 CPUs). Not a test (not in the test
//! matrix). It publishes its service port in rendezvous slot 1 (temporary
//! `RENDEZVOUS_PUBLISH`) and serves: on `SETUP` it moves CPU 1 into a processor set of
//! its own and itself with it, so that it runs on CPU 1 only and `bench` on CPU 0 only,
//! and answers with the CPU it runs on; then it answers header-only requests as
//! `mach_msg_server` does (the reply and the next receive in one `mach_msg`), blocking
//! between them; on `STOP` it gives CPU 1 back and exits.

#![no_std]
#![no_main]

use armach_tests::host::{lend, processors};
use armach_tests::msg::mach_msg_small as mach_msg;
use libmach::abi::message::{MACH_MSG_TYPE_MOVE_SEND_ONCE, msgh_bits, option};
use libmach::ipc::{self, SendRight};
use libmach::mig::mach_host;
use libmach::{Args, KernReturn, println, traps};

libmach::main!(main);

/// Request ids shared with `bench`.
const SETUP: u32 = 1;
const STOP: u32 = 2;
/// The rendezvous slot the service port is published in.
const SLOT: u32 = 1;
/// The CPU the server takes.
const SERVER_CPU: u32 = 1;

fn main(args: &Args) -> i32 {
    let task = traps::mach_task_self();
    let service = traps::mach_reply_port();
    let made = traps::mach_port_insert_right(
        task,
        service,
        service,
        libmach::abi::message::MACH_MSG_TYPE_MAKE_SEND,
    );
    if made.is_err() || traps::rendezvous_publish(SLOT, service).is_err() {
        println!("benchsrv: could not publish the service port");
        return 1;
    }
    let mut set = None;
    let mut buf = [0u64; 8];
    let mut r = mach_msg(&mut buf, option::RCV_MSG, 0, 64, service);
    loop {
        if r != KernReturn::Success {
            println!("benchsrv: receive failed: {r:?}");
            break;
        }
        let id = (buf[3] >> 32) as u32;
        if id == STOP {
            break;
        }
        if id == SETUP && set.is_none() {
            set = processor_set_create_with(args, SERVER_CPU);
        }
        // The reply goes to the send-once right the request carried (its remote port); a
        // setup reply carries the CPU this thread runs on in its id.
        buf[0] = u64::from(msgh_bits(MACH_MSG_TYPE_MOVE_SEND_ONCE, 0));
        buf[2] = 0;
        buf[3] = if id == SETUP {
            u64::from(libmach::kern::current_cpu()) << 32
        } else {
            0
        };
        r = mach_msg(
            &mut buf,
            option::SEND_MSG | option::RCV_MSG,
            32,
            64,
            service,
        );
    }
    if let Some(set) = set {
        // Destroying the set returns its processor, this task and its threads to the
        // default set.
        let mut t = ipc::transport();
        let _ = mach_host::processor_set_destroy(&mut t, &set);
    }
    0
}

/// A processor set (its control port) holding CPU `cpu`, with this task and its threads in
/// it, made over IPC with the `mach_host` stubs; the thread is on `cpu` when this returns.
fn processor_set_create_with(args: &Args, cpu: u32) -> Option<SendRight> {
    let mut t = ipc::transport();
    let host_priv = lend(args.host_priv_port()?);
    let processors = processors(&mut t, &host_priv).ok()?;
    let processor = processors.get(cpu as usize)?;
    let set = mach_host::processor_set_create(&mut t, &host_priv)
        .ok()?
        .new_set;
    let task = ipc::task_self();
    if mach_host::processor_assign(&mut t, processor, &set, true).is_err()
        || mach_host::task_assign(&mut t, &lend(task.name()), &set, true).is_err()
    {
        let _ = mach_host::processor_set_destroy(&mut t, &set);
        return None;
    }
    // The move takes effect at this thread's next reschedule.
    while libmach::kern::current_cpu() != cpu {
        traps::swtch();
    }
    Some(set)
}
