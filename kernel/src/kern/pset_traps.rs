//! TEMPORARY: the processor-set operations (`sched::pset`) as traps 1020-1027
//! (`mach_abi::traps::temporary`), for the user-mode test `psets` until the `mach_host`
//! server serves them over IPC; then this file goes. Sets are named by id, threads by id
//! within the caller's task, processors by CPU index; every argument is checked (nothing a
//! caller passes can panic the kernel), and a set's memory is charged to the caller.

extern crate alloc;

use crate::arch::exception::TrapFrame;
use crate::ids::{CpuId, ProcessorSetId};
use crate::kern::sched::pset;
use crate::kern::thread::Thread;
use alloc::sync::Arc;
use mach_abi::KernReturn;
use mach_abi::traps::temporary;

/// Whether `number` is one of these traps.
pub fn is_pset_trap(number: u32) -> bool {
    (temporary::PSET_CREATE..=temporary::THREAD_GET_ASSIGNMENT).contains(&number)
}

fn set_arg(raw: u64) -> Result<ProcessorSetId, KernReturn> {
    u32::try_from(raw)
        .map(ProcessorSetId)
        .map_err(|_| KernReturn::InvalidArgument)
}

fn cpu_arg(raw: u64) -> Result<CpuId, KernReturn> {
    usize::try_from(raw)
        .ok()
        .filter(|&i| i < crate::percpu::cpu_count())
        .map(CpuId::new)
        .ok_or(KernReturn::InvalidArgument)
}

/// A thread of the caller's task by the caller's name for its port (0: the caller).
fn thread_arg(caller: &Arc<Thread>, raw: u64) -> Result<Arc<Thread>, KernReturn> {
    if raw == 0 {
        return Ok(caller.clone());
    }
    crate::kern::ipc_traps::thread_of(caller, raw)
        .filter(|t| Arc::ptr_eq(&t.task, &caller.task))
        .ok_or(KernReturn::InvalidArgument)
}

/// Handle trap `number` (one of `is_pset_trap`'s) with arguments `a`.
pub fn handle(frame: &mut TrapFrame, caller: &Arc<Thread>, number: u32, a: [u64; 8]) {
    let r: Result<[u64; 3], KernReturn> = match number {
        temporary::PSET_CREATE => {
            pset::processor_set_create(&caller.task.kmem).map(|id| [id.0 as u64, 0, 0])
        }
        temporary::PSET_DESTROY => set_arg(a[0])
            .and_then(pset::processor_set_destroy)
            .map(|()| [0; 3]),
        temporary::PROCESSOR_ASSIGN => cpu_arg(a[0])
            .and_then(|cpu| pset::processor_assign(cpu, set_arg(a[1])?))
            .map(|()| [0; 3]),
        temporary::THREAD_ASSIGN => thread_arg(caller, a[0])
            .and_then(|t| pset::thread_assign(&t, set_arg(a[1])?))
            .map(|()| [0; 3]),
        temporary::TASK_ASSIGN => set_arg(a[0])
            .and_then(|set| pset::task_assign(&caller.task, set, a[1] != 0))
            .map(|()| [0; 3]),
        temporary::PSET_INFO => set_arg(a[0]).and_then(pset::processor_set_info).map(|i| {
            [
                i.processor_count as u64,
                i.task_count as u64,
                i.thread_count as u64,
            ]
        }),
        temporary::PROCESSOR_GET_ASSIGNMENT => cpu_arg(a[0])
            .and_then(pset::processor_get_assignment)
            .map(|id| [id.0 as u64, 0, 0]),
        temporary::THREAD_GET_ASSIGNMENT => {
            thread_arg(caller, a[0]).map(|t| [pset::thread_get_assignment(&t).0 as u64, 0, 0])
        }
        _ => Err(KernReturn::InvalidArgument),
    };
    match r {
        Ok(values) => {
            frame.set_result(0, KernReturn::Success.as_reg());
            for (i, v) in values.into_iter().enumerate() {
                frame.set_result(i + 1, v);
            }
        }
        Err(kr) => frame.set_result(0, kr.as_reg()),
    }
}
