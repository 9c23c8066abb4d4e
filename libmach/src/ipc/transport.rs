//! `mach_msg` as the stubs need it ([`MachMsg`], with the per-thread reply port) and the
//! [`Client`] that turns it into mig-rs's `Transport`: one combined send-and-receive per
//! call, the `waittime` as a receive timeout, and the reply port thrown away after a failed
//! call (as GNU MIG's stubs do), so that a late reply cannot be taken for the next call's.

use mach_abi::message::option;
use mach_abi::mig::{CallOptions, KernReturn, PortName, Space, Transport};

/// The `mach_msg` call and the calling thread's reply port.
pub trait MachMsg {
    /// Where received rights and memory are released.
    type Space: Space;

    /// `mach_msg(msg, option, send_size, msg.len(), rcv_name, timeout, notify)`.
    ///
    /// # Safety
    ///
    /// Every out-of-line region the message marks `deallocate` must be the caller's to give
    /// away; every other region it names must be readable.
    unsafe fn mach_msg(
        &mut self,
        msg: &mut [u8],
        option: u32,
        send_size: usize,
        rcv_name: PortName,
        timeout: u32,
        notify: PortName,
    ) -> KernReturn;

    /// The calling thread's reply port, made on first use.
    fn reply_port(&mut self) -> PortName;

    /// Destroys the calling thread's reply port (a new one is made on next use).
    fn discard_reply_port(&mut self);
}

/// Client stubs' transport over [`MachMsg`].
#[derive(Debug, Default)]
pub struct Client<M> {
    /// The `mach_msg` it calls.
    pub mach: M,
}

impl<M> Client<M> {
    /// A transport over `mach`.
    pub const fn new(mach: M) -> Self {
        Self { mach }
    }
}

impl<M: MachMsg> Client<M> {
    fn failed(&mut self, reply_port: PortName, code: KernReturn) -> KernReturn {
        // A reply may still arrive on the port; the next call must not see it.
        if reply_port == self.mach.reply_port() {
            self.mach.discard_reply_port();
        }
        code
    }
}

// SAFETY: replies come from `mach_msg`, which is the kernel's delivery (or, in tests, a fake
// that maps regions and delivers rights as the kernel does).
unsafe impl<M: MachMsg> Transport for Client<M> {
    type Space = M::Space;

    fn reply_port(&mut self) -> PortName {
        self.mach.reply_port()
    }

    unsafe fn rpc(
        &mut self,
        msg: &mut [u8],
        send_size: usize,
        reply_port: PortName,
        options: CallOptions,
    ) -> Result<(), KernReturn> {
        let mut bits = option::SEND_MSG | option::RCV_MSG | options.option;
        let timeout = match options.timeout {
            Some(ms) => {
                bits |= option::RCV_TIMEOUT;
                ms
            }
            None => 0,
        };
        // SAFETY: the caller's guarantee about the message's regions (`Transport::rpc`).
        let r = unsafe {
            self.mach
                .mach_msg(msg, bits, send_size, reply_port, timeout, PortName::NULL)
        };
        if r.is_success() {
            Ok(())
        } else {
            Err(self.failed(reply_port, r))
        }
    }

    unsafe fn send(
        &mut self,
        msg: &mut [u8],
        send_size: usize,
        options: CallOptions,
    ) -> Result<(), KernReturn> {
        let bits = option::SEND_MSG | options.option;
        // SAFETY: the caller's guarantee about the message's regions (`Transport::send`).
        unsafe {
            self.mach
                .mach_msg(msg, bits, send_size, PortName::NULL, 0, PortName::NULL)
        }
        .result()
    }
}
