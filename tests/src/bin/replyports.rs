//! `replyports`: a task that takes thousands of `mach_reply_port`s (trap 26) and never
//! frees them. Each costs kernel memory (the port and its name), charged to the task and
//! seen growing in its account (temporary `KMEM_COUNTS`); at the task's limit the trap
//! answers `MACH_PORT_NULL` and `mach_port_allocate` `KERN_RESOURCE_SHORTAGE`, and the
//! kernel stays up. With a few ports given back, IPC works again: a message through one
//! of the ports, and an RPC to the kernel. The program then ends holding every other
//! port: the kernel's leak check at the end of the run finds the memory back.

#![no_std]
#![no_main]

extern crate alloc;

use alloc::vec::Vec;
use armach_tests::Checks;
use libmach::abi::message::{MACH_MSG_TYPE_MAKE_SEND, option};
use libmach::abi::mig::PortRight;
use libmach::ipc::{self, MachMsg, Trap};
use libmach::mig::{mach, mach_port};
use libmach::{Args, KernReturn, PortName, kmem_counts, traps};

libmach::main!(main);

/// How many the program asks for (more than the default quota allows).
const WANTED: usize = 5000;
/// Ports given back once the quota has said no.
const GIVEN_BACK: usize = 64;
/// The kernel's charging unit (`mm::kmem::GRANULE`).
const GRANULE: u64 = 1024;

/// Send a small message to `port` (we hold its receive right and a send right) and
/// receive it back; the id seen.
fn echo(port: PortName) -> Result<i32, KernReturn> {
    let mut buf = [0u64; 8];
    let header = libmach::abi::mig::Header {
        bits: libmach::abi::mig::msgh_bits(19, 0),
        size: 32,
        remote_port: libmach::abi::mig::PortSlot::from_name(port),
        local_port: libmach::abi::mig::PortSlot::from_name(PortName::NULL),
        seqno: 0,
        id: 4242,
    };
    // SAFETY: `buf` is 64 bytes, 8-aligned; the header takes 32.
    let bytes = unsafe { core::slice::from_raw_parts_mut(buf.as_mut_ptr().cast::<u8>(), 64) };
    header.write(bytes);
    // SAFETY: a send of 32 bytes from, and a receive of at most 64 into, our own buffer.
    let r = unsafe {
        Trap.mach_msg(
            bytes,
            option::SEND_MSG | option::RCV_MSG | option::RCV_TIMEOUT,
            32,
            port,
            5_000,
            PortName::NULL,
        )
    };
    if r != KernReturn::Success {
        return Err(r);
    }
    Ok(i32::from_le_bytes([
        bytes[28], bytes[29], bytes[30], bytes[31],
    ]))
}

fn main(_args: &Args) -> i32 {
    let mut c = Checks::new("replyports");
    let me = traps::mach_task_self();
    // The library's reply port for RPCs exists before the quota runs out.
    let mut info = [0i32; 30];
    let first = mach::task_info(&mut ipc::transport(), &ipc::task_self(), 1, &mut info)
        .map(|o| o.task_info_out_count);
    c.check_eq("task_info before", first, Ok(30));
    let before = kmem_counts();
    let mut ports: Vec<PortName> = Vec::new();
    if ports.try_reserve_exact(WANTED).is_err() {
        c.check(false, "room for the names", format_args!("{WANTED}"));
        return c.finish();
    }
    for _ in 0..WANTED {
        let name = traps::mach_reply_port();
        if name == PortName::NULL {
            break;
        }
        ports.push(name);
    }
    let at_limit = kmem_counts();
    let taken = ports.len() as u64;
    c.note(format_args!(
        "took {} reply ports; charged {} -> {} bytes (limit {}), {} bytes each",
        taken,
        before.task_charged,
        at_limit.task_charged,
        at_limit.task_limit,
        (at_limit.task_charged - before.task_charged) / taken.max(1)
    ));
    c.check(
        taken >= 1000,
        "a thousand reply ports and more",
        format_args!("{taken}"),
    );
    let mut sorted = ports.clone();
    sorted.sort_unstable_by_key(|p| p.0);
    sorted.dedup();
    c.check_eq("every name distinct", sorted.len() as u64, taken);
    c.check(
        at_limit.task_charged >= before.task_charged + taken * GRANULE,
        "the ports are charged to the task (a granule each at least)",
        format_args!(
            "{} more bytes for {taken} ports",
            at_limit.task_charged - before.task_charged
        ),
    );
    if taken < WANTED as u64 {
        // The quota said no: the trap's null name, and a Mach error from the RPC-like trap.
        c.check(
            at_limit.task_charged + 4 * GRANULE > at_limit.task_limit,
            "the trap refused at the task's limit",
            format_args!("{} of {}", at_limit.task_charged, at_limit.task_limit),
        );
        c.check_eq(
            "mach_port_allocate at the limit",
            traps::mach_port_allocate(me, PortRight::Receive),
            Err(KernReturn::ResourceShortage),
        );
        c.check_eq(
            "mach_reply_port at the limit",
            traps::mach_reply_port(),
            PortName::NULL,
        );
    } else {
        c.note(format_args!("the quota allowed all {WANTED}"));
    }
    // Give a few back: IPC works again.
    let mut refused = 0;
    for name in ports.drain(ports.len() - GIVEN_BACK..) {
        let r = mach_port::mach_port_mod_refs(
            &mut ipc::transport(),
            &ipc::task_self(),
            name,
            PortRight::Receive as u32,
            -1,
        );
        if let Err(e) = r {
            refused += 1;
            c.note(format_args!("giving back {name:?}: {e:?}"));
        }
    }
    c.check_eq("ports given back (mach_port_mod_refs)", refused, 0);
    let freed = kmem_counts();
    c.check(
        freed.task_charged < at_limit.task_charged,
        "the charge goes down as ports are given back",
        format_args!("{} -> {}", at_limit.task_charged, freed.task_charged),
    );
    let port = ports[0];
    c.check_eq(
        "a send right to the first reply port",
        traps::mach_port_insert_right(me, port, port, MACH_MSG_TYPE_MAKE_SEND),
        Ok(()),
    );
    c.check_eq("a message through it", echo(port), Ok(4242));
    let got = mach::task_info(&mut ipc::transport(), &ipc::task_self(), 1, &mut info)
        .map(|o| o.task_info_out_count);
    c.check_eq("task_info RPC to the kernel", got, Ok(30));
    let more = traps::mach_reply_port();
    c.check(
        more != PortName::NULL,
        "another reply port",
        format_args!("{more:?}"),
    );
    c.note(format_args!(
        "ending with {} ports held: the kernel's leak check finds them freed",
        ports.len() + 1
    ));
    c.finish()
}
