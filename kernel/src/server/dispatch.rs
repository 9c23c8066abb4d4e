//! Stub of the kernel's entry for messages to kernel objects, until the kernel-object
//! server (`server/mod.rs`) defines it: every request gets a `MIG_BAD_ID` reply on its
//! reply port. Compiled from `kern/ipc_traps.rs` (with `#[path]`) so that this tree does
//! not touch `server/mod.rs`; the real `crate::server::kernel_server` replaces it.

extern crate alloc;

use crate::ipc::abi::{msg_type, msgh_bits};
use crate::ipc::kmsg::HEADER_SIZE;
use crate::ipc::{Kmsg, KmsgShape, Ledger, MsgPort};
use crate::kern::task::Task;
use alloc::sync::Arc;
use mach_abi::KernReturn;

/// Serve `request`, sent by `sender` to a kernel object's port: the reply to queue on the
/// request's reply port, `None` if there is none. Here: `MIG_BAD_ID` for everything.
pub fn kernel_server(sender: &Arc<Task>, mut request: Kmsg) -> Option<Kmsg> {
    let MsgPort::Right(reply) = request.take_local() else {
        return None;
    };
    let id = request.id;
    drop(request);
    let ledger: Arc<dyn Ledger> = sender.kmem.clone();
    let mut kmsg = Kmsg::new(
        &ledger,
        KmsgShape {
            body_len: 16,
            ports: 0,
            ool: 0,
        },
    )
    .ok()?;
    let descriptor = crate::ipc::right::inline_descriptor(msg_type::INTEGER_32, 32);
    let mut body = [0u8; 16];
    body[..8].copy_from_slice(&descriptor.to_le_bytes());
    body[8..12].copy_from_slice(&(KernReturn::MigBadId.code() as u32).to_le_bytes());
    kmsg.body.extend_from_slice(&body);
    kmsg.id = id.wrapping_add(100);
    kmsg.size = (HEADER_SIZE + 16) as u32;
    kmsg.bits = msgh_bits::other(0);
    kmsg.set_ports(reply, MsgPort::Null, 0);
    Some(kmsg)
}
