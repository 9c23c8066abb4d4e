//! Mach exceptions (GNU Mach `kern/exception.c`): a user thread's fault becomes an
//! `exception_raise` request (`exc.defs`, 2400) to its exception port, and the thread waits
//! in the kernel for the reply (2500). It is not for decoding faults (`kern::trap`) nor for
//! what happens with no handler (`trap::user_exception_raise` reports and stops the thread).
//!
//! The kernel is the client of `exc.defs`: the message is built here with mach-abi's
//! encoder, in the layout mig-rs generates for the routine (its server in libmach checks
//! it): the thread and task as send rights, `exception` and `code` as 32-bit integers,
//! `subcode` as a 64-bit one, 112 bytes. Its reply right is a send-once right to a port the
//! kernel keeps for the purpose (`Port::alloc_reply`), made for this exception and
//! destroyed after it (or, when the thread is terminated meanwhile, once the answer comes).
//!
//! Where the request goes, as GNU Mach (`exception`, `exception_try_task`): the thread's
//! exception port if it has a live one; if there is none, or its handler answers anything
//! but `KERN_SUCCESS`, the task's. A handler that answers `KERN_SUCCESS` resumes the thread
//! from its trap frame as it is then: a handler changes it with `thread_set_state`
//! meanwhile (the waiting thread is blocked interruptibly with its user registers in the
//! trap frame at the top of its kernel stack, which is what `thread_get_state` and
//! `thread_set_state` need). When nobody resumes it, the caller (`kern::trap`) reports the
//! fault and terminates the task (GNU Mach `exception_no_server`).
//!
//! What a user can do to it, and what happens:
//! - A full queue on the exception port: the request is queued past the limit
//!   (`mqueue::send` with `always`, as GNU Mach's `ipc_mqueue_send_always`); the faulting
//!   thread never blocks on the send. It is bounded: a thread has at most one exception
//!   outstanding, and the message and the reply port are charged to the faulting task's
//!   kmem ledger (refused: as if there were no handler).
//! - A kernel object's port as the exception port: the kernel serves the request as any
//!   message to that port, answering MIG_BAD_ID: a failure.
//! - A dead exception port: not asked (the next one is, or nobody). One that dies once the
//!   request is queued destroys it, and with it the send-once right, which sends a
//!   send-once notification to the reply port: not a reply, so a failure, like a handler
//!   that destroys its reply right unanswered.
//! - A malformed reply (GNU Mach `exception_parse_reply`: other bits than a send-once
//!   destination alone, another size or id, another descriptor): a failure.
//! - `thread_terminate` of the waiting thread (or its task's end) ends the wait: the thread
//!   goes back towards user mode and terminates there. The handler's reply, if it still
//!   sends one, is accepted and dropped (`Port::abandon_reply`), as GNU Mach's: its reply
//!   port is the thread's and outlives `thread_terminate`. `thread_abort` does not end it (the
//!   thread waits on, as in GNU Mach); `thread_suspend` finds it stopped where it waits.

extern crate alloc;

use mach_abi::KernReturn;
use mach_abi::mig::{self, Encoder, Header, PortSlot, TypeDesc};

/// `exception_raise`'s id, and its reply's.
pub const EXCEPTION_RAISE_ID: i32 = 2400;
pub const EXCEPTION_RAISE_REPLY_ID: i32 = EXCEPTION_RAISE_ID + 100;
/// Size of the request, header included.
pub const REQUEST_SIZE: usize = 112;
/// Offsets of the thread's and the task's port slots in the request.
pub const THREAD_SLOT: usize = 40;
pub const TASK_SLOT: usize = 56;
/// Size of the only well-formed reply: a header and a return code.
pub const REPLY_SIZE: u32 = 48;

const MSGT_PORT_SEND: u8 = 17;
const MSGT_INTEGER_64: u8 = 11;

fn desc(name: u8, size: u16) -> TypeDesc {
    TypeDesc {
        name,
        size,
        number: 1,
        inline: true,
        longform: false,
        deallocate: false,
    }
}

/// The body of an `exception_raise` request (everything after the header) as the receiver
/// gets it: port descriptors carry the received type (`MACH_MSG_TYPE_PORT_SEND`) and their
/// slots zero, for the rights to be put in at [`THREAD_SLOT`] and [`TASK_SLOT`].
pub fn request_body(exception: u32, code: u64, subcode: u64) -> [u8; REQUEST_SIZE - 32] {
    let mut bytes = [0u8; REQUEST_SIZE];
    let mut e = Encoder::new(&mut bytes);
    e.item(desc(MSGT_PORT_SEND, 64));
    e.put::<u64>(0);
    e.item(desc(MSGT_PORT_SEND, 64));
    e.put::<u64>(0);
    e.item(mig::INT32_DESC);
    e.put::<i32>(exception as i32);
    e.item(mig::INT32_DESC);
    // `code` is an `integer_t`: kern_return_t values and the AArch64 codes all fit.
    e.put::<i32>(code as i32);
    e.item(desc(MSGT_INTEGER_64, 64));
    e.put::<i64>(subcode as i64);
    let header = Header {
        id: EXCEPTION_RAISE_ID,
        remote_port: PortSlot(0),
        local_port: PortSlot(0),
        ..Header::default()
    };
    // Fits: the buffer is the routine's size, which mig-rs computes the same way.
    let _ = e.finish(header);
    let mut body = [0u8; REQUEST_SIZE - 32];
    body.copy_from_slice(&bytes[32..]);
    body
}

/// The return code a reply carries, or `None` for anything that is not a well-formed
/// `exception_raise` reply (`bits` as received, `size` its `msgh_size`, `body` after the
/// header).
pub fn reply_code(id: i32, bits: u32, size: u32, body: &[u8]) -> Option<KernReturn> {
    // Exactly a send-once right as the destination, no reply port, not complex.
    const REPLY_BITS: u32 = 18;
    if id != EXCEPTION_RAISE_REPLY_ID || bits != REPLY_BITS || size != REPLY_SIZE {
        return None;
    }
    let d = TypeDesc::read(body, 0)?;
    if !mig::INT32_EXPECT.check(&d) {
        return None;
    }
    let code = body.get(8..12)?;
    let code = i32::from_le_bytes([code[0], code[1], code[2], code[3]]);
    Some(KernReturn::from_code(code).unwrap_or(KernReturn::Failure))
}

/// What became of an exception sent to a handler.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// No live exception port (or the request could not be paid for): nobody was told.
    NoHandler,
    /// A handler answered `KERN_SUCCESS`: the thread goes on.
    Resume,
    /// The wait ended because the thread is terminating: back towards user mode.
    Interrupted,
    /// Every handler asked failed, with this code (the last one's), or answered with
    /// something that is not a reply.
    Refused(Option<KernReturn>),
}

#[cfg(target_os = "none")]
pub use kernel::raise;

#[cfg(target_os = "none")]
mod kernel {
    use super::*;
    use crate::ipc::{Kmsg, KmsgShape, Ledger, MsgPort, Port, RecvResult, Right, mqueue};
    use crate::kern::sched::{self, wait::WaitResult};
    use crate::kern::thread::Thread;
    use alloc::sync::Arc;

    /// Send `exception` (`code`, `subcode`) of `thread`, the current thread, to its
    /// exception port, else its task's (see the module comment), and wait for the answer.
    /// The caller must not touch the thread's trap frame across this call: a handler
    /// may rewrite it meanwhile.
    pub fn raise(thread: &Arc<Thread>, exception: u32, code: u64, subcode: u64) -> Outcome {
        if thread.should_terminate() {
            // Ending anyway: nobody need be told.
            return Outcome::Interrupted;
        }
        let thread_port = live(crate::server::objects::copy_send(
            &thread.exception_port.lock(),
        ));
        let mut outcome = Outcome::NoHandler;
        if let Some(port) = thread_port {
            outcome = ask(thread, port, exception, code, subcode);
            if matches!(outcome, Outcome::Resume | Outcome::Interrupted) {
                return outcome;
            }
        }
        let task_port = live(crate::server::objects::copy_send(
            &thread.task.special_ports.lock()[0],
        ));
        if let Some(port) = task_port {
            let r = ask(thread, port, exception, code, subcode);
            if r != Outcome::NoHandler {
                outcome = r;
            }
        }
        outcome
    }

    /// A send right to a live port, or `None` (released with no lock held).
    fn live(port: MsgPort) -> Option<Right> {
        let right = port.into_right()?;
        if right.port().is_active() {
            Some(right)
        } else {
            drop(right);
            None
        }
    }

    /// One `exception_raise` RPC to `port`.
    fn ask(thread: &Arc<Thread>, port: Right, exception: u32, code: u64, subcode: u64) -> Outcome {
        let ledger: Arc<dyn Ledger> = thread.task.kmem.clone();
        let Ok(reply) = Port::alloc_reply(&ledger) else {
            return Outcome::NoHandler;
        };
        let outcome = match request(thread, &ledger, &reply, port, exception, code, subcode) {
            Some(kmsg) => {
                let to_kernel = kmsg.remote().is_some_and(|r| r.port().is_kernel());
                if to_kernel {
                    // A kernel object's port (a task or thread port named as an exception
                    // port): served at once like any message to it, which answers
                    // MIG_BAD_ID.
                    if let Some(answer) = crate::server::kernel_server(&thread.task, kmsg) {
                        let _ = mqueue::send(answer, true, |_| false);
                    }
                } else {
                    // Queued, or destroyed if the port died meanwhile (then the reply port
                    // gets a send-once notification: a failure).
                    let _ = mqueue::send(kmsg, true, |_| false);
                }
                wait_reply(thread, &reply)
            }
            None => Outcome::NoHandler,
        };
        if outcome == Outcome::Interrupted {
            // The handler may still answer (after terminating the thread, say): its reply
            // is taken and dropped, as GNU Mach's thread reply port outlives the thread.
            Port::abandon_reply(reply);
        } else {
            Port::dealloc_reply(reply);
        }
        outcome
    }

    /// The request, charged to the faulting task; `None` if it cannot be paid for.
    fn request(
        thread: &Arc<Thread>,
        ledger: &Arc<dyn Ledger>,
        reply: &Arc<Port>,
        port: Right,
        exception: u32,
        code: u64,
        subcode: u64,
    ) -> Option<Kmsg> {
        let body = request_body(exception, code, subcode);
        let shape = KmsgShape {
            body_len: body.len(),
            ports: 2,
            ool: 0,
        };
        let mut kmsg = Kmsg::new(ledger, shape).ok()?;
        let soright = reply.make_send_once(ledger).ok()?;
        kmsg.bits = crate::ipc::abi::msgh_bits::COMPLEX;
        kmsg.size = REQUEST_SIZE as u32;
        kmsg.id = EXCEPTION_RAISE_ID;
        kmsg.body.extend_from_slice(&body);
        kmsg.set_ports(port, MsgPort::Right(soright), 0);
        let self_send = |p: Option<&Arc<Port>>| {
            p.and_then(|p| p.make_send())
                .map_or(MsgPort::Null, MsgPort::Right)
        };
        let _ = kmsg.push_port(THREAD_SLOT as u64, self_send(thread.self_port.get()));
        let _ = kmsg.push_port(TASK_SLOT as u64, self_send(thread.task.self_port.get()));
        Some(kmsg)
    }

    /// Wait, interruptibly, for the first message on `reply` and judge it.
    fn wait_reply(thread: &Arc<Thread>, reply: &Arc<Port>) -> Outcome {
        loop {
            let mut asserted = false;
            let r = mqueue::receive_reply(reply, |key| {
                asserted =
                    sched::assert_wait(Some(crate::kern::ipc_traps::event_of(key)), None, true)
                        .is_ok();
                asserted
            });
            match r {
                RecvResult::Message(kmsg) => {
                    let mut body = [0u8; 16];
                    let ok = kmsg.body.len() >= 16 && kmsg.body.read(0, &mut body);
                    let code = if ok {
                        reply_code(kmsg.id, kmsg.bits, kmsg.size, &body)
                    } else {
                        None
                    };
                    drop(kmsg);
                    return match code {
                        Some(KernReturn::Success) => Outcome::Resume,
                        other => Outcome::Refused(other),
                    };
                }
                RecvResult::Empty if asserted => {
                    if thread.should_terminate() {
                        sched::clear_wait(thread, None, WaitResult::Interrupted);
                    }
                    // Interrupted: only a termination ends the wait; after a `thread_abort`
                    // the thread waits on (GNU Mach `exception_raise_continue_slow`).
                    if sched::thread_block() == WaitResult::Interrupted && thread.should_terminate()
                    {
                        return Outcome::Interrupted;
                    }
                }
                // Not waiting (a termination already asked for), or the port is gone.
                _ => return Outcome::Interrupted,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_layout_is_mig_rs_exception_raise() {
        let b = request_body(1, 2, 0xdead_beef_0000_0008);
        let word = |at: usize| u64::from_le_bytes(b[at - 32..at - 24].try_into().unwrap());
        // Port descriptors: PORT_SEND, 64 bits, one, inline.
        assert_eq!(word(32), 0x0000_0001_2000_4011);
        assert_eq!(word(48), 0x0000_0001_2000_4011);
        assert_eq!(word(64), 0x0000_0001_2000_2002);
        assert_eq!(word(72) as u32, 1);
        assert_eq!(word(80), 0x0000_0001_2000_2002);
        assert_eq!(word(88) as u32, 2);
        assert_eq!(word(96), 0x0000_0001_2000_400b);
        assert_eq!(word(104), 0xdead_beef_0000_0008);
    }

    fn reply(code: i32) -> [u8; 16] {
        let mut b = [0u8; 16];
        b[..8].copy_from_slice(&0x0000_0001_2000_2002u64.to_le_bytes());
        b[8..12].copy_from_slice(&code.to_le_bytes());
        b
    }

    #[test]
    fn replies_are_judged_strictly() {
        let id = EXCEPTION_RAISE_REPLY_ID;
        assert_eq!(
            reply_code(id, 0x12, 48, &reply(0)),
            Some(KernReturn::Success)
        );
        assert_eq!(
            reply_code(id, 0x12, 48, &reply(5)),
            Some(KernReturn::Failure)
        );
        assert_eq!(
            reply_code(id, 0x12, 48, &reply(-303)),
            Some(KernReturn::MigBadId)
        );
        // Unknown codes are failures, never success.
        assert_eq!(
            reply_code(id, 0x12, 48, &reply(12345)),
            Some(KernReturn::Failure)
        );
        // Wrong id (a send-once notification), complex, wrong size, wrong descriptor.
        assert_eq!(reply_code(71, 0x12, 48, &reply(0)), None);
        assert_eq!(reply_code(id, 0x8000_0012, 48, &reply(0)), None);
        assert_eq!(reply_code(id, 0x1412, 48, &reply(0)), None);
        assert_eq!(reply_code(id, 0x11, 48, &reply(0)), None);
        assert_eq!(reply_code(id, 0x12, 56, &reply(0)), None);
        let mut bad = reply(0);
        bad[0] = 11;
        assert_eq!(reply_code(id, 0x12, 48, &bad), None);
        assert_eq!(reply_code(id, 0x12, 48, &[0u8; 4]), None);
    }
}
