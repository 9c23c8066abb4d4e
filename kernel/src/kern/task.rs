//! Tasks: an address space and the threads that run in it. The kernel's own task has no
//! user address space; it owns the idle threads. When the last user task goes, the boot
//! CPU is told (the run is over).

extern crate alloc;

use crate::arch::uspace::AddressSpace;
use crate::ids::{TaskId, ThreadId};
use crate::kern::thread::Thread;
use crate::mm::kmem::{self, Charge, Ledger};
use crate::mm::vm::VmMap;
use crate::sync::{IrqSpinLock, LockLevel};
use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::sync::{Arc, Weak};
use arrayvec::ArrayVec;
use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use spin::Once;

pub struct Task {
    pub id: TaskId,
    pub name: String,
    /// The user address space (`None` for the kernel task).
    pub map: Option<IrqSpinLock<VmMap>>,
    /// Threads by id, for termination; each removes itself as it exits.
    pub threads: IrqSpinLock<BTreeMap<ThreadId, Weak<Thread>>>,
    /// Threads not yet terminated.
    pub live_threads: AtomicUsize,
    pub terminating: AtomicBool,
    /// What a CPU loads to run the task's threads: the top-level table and the ASID
    /// (`None` for the kernel task). The context switch reads it without the map's lock.
    pub space: Option<Arc<AddressSpace>>,
    /// What the task's kernel objects are charged to (`mm::kmem`).
    pub kmem: Arc<Ledger>,
    /// Its processor set (a `ProcessorSetId`, `sched::pset`): where its new threads go.
    pub processor_set: AtomicU32,
    /// The root node of `threads` (each entry is charged with its thread).
    _threads_root: Option<Charge>,
}

static NEXT_ID: AtomicU64 = AtomicU64::new(1);
/// User tasks that exist (not yet dropped).
static USER_TASKS: AtomicUsize = AtomicUsize::new(0);
static KERNEL_TASK: Once<Arc<Task>> = Once::new();

impl Task {
    /// The kernel's task.
    pub fn kernel() -> Arc<Task> {
        KERNEL_TASK
            .call_once(|| {
                Arc::new(Task {
                    id: TaskId(0),
                    name: String::from("kernel"),
                    map: None,
                    threads: IrqSpinLock::new(LockLevel::TaskThreads, BTreeMap::new()),
                    live_threads: AtomicUsize::new(0),
                    terminating: AtomicBool::new(false),
                    space: None,
                    // The kernel's own threads are charged nothing.
                    kmem: Arc::new(Ledger::new(&kmem::BUDGET, 0)),
                    processor_set: AtomicU32::new(0),
                    _threads_root: None,
                })
            })
            .clone()
    }

    /// A new user task with an empty address space and its own kernel-memory ledger.
    pub fn new_user(name: &str) -> Option<Arc<Task>> {
        let ledger = kmem::task_ledger();
        let threads_root = ledger.charge(1).ok()?;
        let map = VmMap::new(&ledger)?;
        let space = map.space().clone();
        USER_TASKS.fetch_add(1, Ordering::AcqRel);
        let task = Arc::new(Task {
            id: TaskId(NEXT_ID.fetch_add(1, Ordering::Relaxed)),
            name: String::from(name),
            map: Some(IrqSpinLock::new(LockLevel::VmMap, map)),
            threads: IrqSpinLock::new(LockLevel::TaskThreads, BTreeMap::new()),
            live_threads: AtomicUsize::new(0),
            terminating: AtomicBool::new(false),
            space: Some(space),
            kmem: ledger,
            processor_set: AtomicU32::new(0),
            _threads_root: Some(threads_root),
        });
        crate::kern::sched::pset::note_task_created(&task);
        Some(task)
    }

    pub fn is_kernel(&self) -> bool {
        self.map.is_none()
    }

    /// Ask every thread of the task to terminate; each does at its next return to user
    /// mode (the caller's own thread included).
    pub fn terminate(&self) {
        self.terminating.store(true, Ordering::Release);
        // In batches, so that no allocation grows with the number of threads.
        let mut after = ThreadId(0);
        loop {
            let batch: ArrayVec<Arc<Thread>, 32> = self
                .threads
                .lock()
                .range(after..)
                .filter_map(|(_, t)| t.upgrade())
                .take(32)
                .collect();
            let Some(last) = batch.last() else { break };
            after = ThreadId(last.id.0 + 1);
            for thread in batch {
                thread.request_termination();
            }
        }
    }
}

impl Drop for Task {
    fn drop(&mut self) {
        // Free the address space now, so that when the last task is reported gone its
        // frames are back with the allocator.
        let was_user = self.map.take().is_some();
        if was_user {
            crate::kern::sched::pset::note_task_gone(self);
        }
        if was_user && USER_TASKS.fetch_sub(1, Ordering::AcqRel) == 1 {
            crate::kern::sched::note_tasks_gone();
        }
    }
}

/// User tasks alive now.
pub fn user_task_count() -> usize {
    USER_TASKS.load(Ordering::Acquire)
}
