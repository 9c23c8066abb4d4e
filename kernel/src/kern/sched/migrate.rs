//! Thread migration and load balancing: the mechanism (DESIGN.md 6). Decisions are pure
//! functions in `sched::balance`, tested on the host; this module gathers their inputs
//! under the run-queue locks and carries out their answers.
//!
//! Two run queues are held at once only here, and always the lower CPU index first.

extern crate alloc;

use super::stats::{BalanceParams, ProcessorSched, ThreadMigration};
use crate::ids::{CpuId, ProcessorSetId};
use crate::kern::thread::Thread;
use alloc::sync::Arc;
use mach_abi::KernReturn;

/// `THREAD_MIGRATION_INFO`'s values for `thread`.
pub fn thread_migration(thread: &Thread) -> ThreadMigration {
    let _ = thread;
    ThreadMigration::default()
}

/// `PROCESSOR_SCHED_INFO`'s values for `cpu`, or `None` if there is no such processor.
pub fn processor_sched(cpu: CpuId) -> Option<ProcessorSched> {
    let _ = cpu;
    None
}

/// Move `thread` to run on `target` now: a queued thread moves between run queues, a
/// running one is preempted and continues on `target`, a waiting one runs there when it
/// wakes. Errors: `KERN_INVALID_ARGUMENT` when `target` is offline or outside the
/// thread's processor set, `KERN_FAILURE` when the thread is bound to another processor,
/// `KERN_TERMINATED` when it has ended.
pub fn thread_migrate(thread: &Arc<Thread>, target: CpuId) -> Result<(), KernReturn> {
    let _ = (thread, target);
    Err(KernReturn::Failure)
}

/// Bind `thread` to `target` (it then runs only there, whatever its set, and balancing
/// never moves it), or unbind it (`None`). Binding moves it there as `thread_migrate`
/// does. `KERN_INVALID_ARGUMENT` for an offline processor.
pub fn thread_bind(thread: &Arc<Thread>, target: Option<CpuId>) -> Result<(), KernReturn> {
    let _ = (thread, target);
    Err(KernReturn::Failure)
}

/// The balancing parameters of `set`; `KERN_INVALID_ARGUMENT` for a destroyed set.
pub fn balance_params(set: ProcessorSetId) -> Result<BalanceParams, KernReturn> {
    let _ = set;
    Err(KernReturn::Failure)
}

/// Set the balancing parameters of `set`: `KERN_INVALID_ARGUMENT` for a destroyed set or a
/// value out of bounds (`BalanceParams::is_valid`).
pub fn set_balance_params(set: ProcessorSetId, params: BalanceParams) -> Result<(), KernReturn> {
    let _ = (set, params);
    Err(KernReturn::Failure)
}
