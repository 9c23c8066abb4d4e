//! Helpers for the programs that call `mach_host.defs` over IPC: lending a right the task
//! holds to a stub, the privileged host port from `argv[1]`, the processors' ports.

use alloc::vec::Vec;
use core::mem::ManuallyDrop;
use libmach::abi::mig::ReceivedPort;
use libmach::ipc::{Client, SendRight, Trap};
use libmach::mig::mach_host;
use libmach::{Args, KernReturn, PortName};

/// A right the task holds, lent to a stub without giving up the reference.
pub fn lend(name: PortName) -> ManuallyDrop<SendRight> {
    ManuallyDrop::new(SendRight::from_name(name))
}

/// The host-privileged port, `argv[1]` (GNU Mach's bootstrap convention).
pub fn host_priv(args: &Args) -> Option<ManuallyDrop<SendRight>> {
    args.host_priv_port().map(lend)
}

/// `host_processors`: a send right to each processor, by slot.
pub fn processors(
    t: &mut Client<Trap>,
    host_priv: &SendRight,
) -> Result<Vec<SendRight>, KernReturn> {
    let out = mach_host::host_processors(t, host_priv)?;
    let mut v = Vec::new();
    out.processor_list.take_all(|r| {
        if let ReceivedPort::Send(right) = r {
            v.push(right);
        }
    });
    Ok(v)
}
