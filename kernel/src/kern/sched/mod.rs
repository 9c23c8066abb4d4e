//! The scheduler: per-processor run queues of 65 priority levels, placement by
//! `policy::select_processor`, preemption at the return to user mode (an AST set by the
//! timer or an IPI), idle processors sleeping in `wfi`. The policy parts are pure and
//! host-tested; `scheduler` is the mechanism that locks, switches and sends IPIs, and
//! `pset` keeps the processor sets that bound where each thread may run.

pub mod balance;
#[cfg(target_os = "none")]
pub mod migrate;
pub mod policy;
#[cfg(target_os = "none")]
pub mod pset;
pub mod runqueue;
pub mod setmembers;
pub mod setslot;
#[cfg(test)]
mod sim;
pub mod stats;
pub mod trace;
pub mod wait;
#[cfg(target_os = "none")]
pub mod waitq;

#[cfg(target_os = "none")]
mod scheduler;
#[cfg(target_os = "none")]
pub use scheduler::*;
