//! IPC for programs on armach: the layer mig-rs's generated client stubs send through, and
//! what hand-written IPC needs besides.
//!
//! ```text
//!   generated stubs (crate::mig)      hand-written messages (MessageBuilder/Reader)
//!            │                                   │
//!   Client<M>: mig Transport ── serve(): a server loop like mach_msg_server
//!            │                                   │
//!   MachMsg: mach_msg with a per-thread reply port
//!   ├── Trap (armach: trap 25; the reply port lives in TPIDR_EL0)
//!   └── fakes in the host tests
//! ```
//!
//! Owned rights and out-of-line memory (`SendRight`, `OolData`, ...) release themselves
//! through a `Space`; on armach that is [`TaskSpace`] (`mach_port_deallocate`,
//! `mach_port_mod_refs`, `vm_deallocate` on the calling task). Everything but the trap and
//! the task's space is plain code that the host tests run.

mod message;
mod server;
#[cfg(target_os = "none")]
mod task;
mod transport;

pub use mach_abi::mig::{CallOptions, KernReturn, PortName, PortRight, PortSlot, Served, Space};
pub use message::{Item, MessageBuilder, MessageReader};
pub use server::serve;
#[cfg(target_os = "none")]
pub(crate) use task::release_reply_port_at_exit;
#[cfg(target_os = "none")]
pub use task::{
    OolData, OolPorts, ReceiveRight, SendOnceRight, SendRight, TaskSpace, Trap, host_self,
    task_self, thread_self, transport,
};
pub use transport::{Client, MachMsg};

#[cfg(test)]
mod tests;
