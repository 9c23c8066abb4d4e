//! A server loop in the manner of GNU Mach's `mach_msg_server`: receive a request, hand it
//! to a demux function (a generated `<subsystem>_server`, or several tried in turn), send
//! the reply and receive the next request in one `mach_msg`. A request whose routine failed
//! is destroyed (the server took nothing from it), keeping its reply right for the error
//! reply; a reply that cannot be delivered because the client's reply port died is destroyed.

use mach_abi::message::{HEADER_SIZE, Header, option};
use mach_abi::mig::{self, KernReturn, PortName, PortSlot, Served};

use super::MachMsg;

/// Serves requests arriving on `port` until a receive fails; returns that error. `request`
/// and `reply` are the two message buffers (each at least the largest message served; they
/// swap roles as the loop goes).
///
/// # Safety
///
/// Every out-of-line region a reply marks `deallocate` must be the server's to give away
/// (the kernel unmaps it once the reply is sent).
pub unsafe fn serve<'a, M: MachMsg>(
    mach: &mut M,
    port: PortName,
    mut request: &'a mut [u8],
    mut reply: &'a mut [u8],
    mut demux: impl FnMut(&[u8], &mut [u8]) -> Served,
) -> KernReturn {
    // SAFETY: a receive only; nothing is sent.
    let mut r = unsafe { mach.mach_msg(request, option::RCV_MSG, 0, port, 0, PortName::NULL) };
    loop {
        if !r.is_success() {
            return r;
        }
        let served = demux(request, reply);
        if !served.code.is_success() && served.code != KernReturn::MigNoReply {
            // The routine took nothing: destroy the request, but not its reply right, which
            // the error reply uses.
            if let Some(h) = Header::read(request) {
                let keep = Header {
                    remote_port: if served.reply_size > 0 {
                        PortSlot::NULL
                    } else {
                        h.remote_port
                    },
                    ..h
                };
                keep.write(request);
            }
            // SAFETY: the request came from `mach_msg`: its rights and regions are ours.
            unsafe { mig::destroy_received::<M::Space>(request) };
        }
        if served.reply_size < HEADER_SIZE {
            // SAFETY: a receive only.
            r = unsafe { mach.mach_msg(request, option::RCV_MSG, 0, port, 0, PortName::NULL) };
            continue;
        }
        // Send the reply and receive the next request into the same buffer.
        // SAFETY: the caller guarantees the regions the reply gives away are the server's.
        r = unsafe {
            mach.mach_msg(
                reply,
                option::SEND_MSG | option::RCV_MSG,
                served.reply_size,
                port,
                0,
                PortName::NULL,
            )
        };
        if r == KernReturn::SendInvalidDest || r == KernReturn::SendTimedOut {
            // The client is gone: what the reply carried comes back to us, and away; then
            // receive the next request, which the combined call did not.
            let unsent = reply.get(..served.reply_size).unwrap_or(&[]);
            // SAFETY: the unsent reply's moved rights and given regions are the server's.
            unsafe { mig::destroy_unsent::<M::Space>(unsent) };
            // SAFETY: a receive only.
            r = unsafe { mach.mach_msg(request, option::RCV_MSG, 0, port, 0, PortName::NULL) };
            continue;
        }
        if r.is_send_error() {
            return r;
        }
        core::mem::swap(&mut request, &mut reply);
    }
}
