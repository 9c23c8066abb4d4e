//! Tasks: an address space and the threads that run in it. The kernel's own task has no
//! user address space; it owns the idle threads. When the last user task goes, the boot
//! CPU is told (the run is over).

extern crate alloc;

use crate::arch::uspace::AddressSpace;
use crate::ids::{TaskId, ThreadId};
use crate::ipc::{self, KObject, KObjectKind, Port, PortName, Space};
use crate::kern::thread::Thread;
use crate::mm::kmem::{self, Charge, Ledger};
use crate::mm::vm::VmMap;
use crate::sync::{IrqSpinLock, LockLevel};
use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::sync::{Arc, Weak};
use arrayvec::ArrayVec;
use core::sync::atomic::{AtomicBool, AtomicU8, AtomicU32, AtomicU64, AtomicUsize, Ordering};
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
    /// The task's IPC space (`None` for the kernel task), charged to `kmem`; destroyed
    /// when its last thread exits ([`Task::ipc_teardown`]).
    pub ipc: Option<Arc<Space>>,
    /// The task's kernel port (its kobject is the task itself: the cycle is broken by
    /// `Port::dealloc_kernel` at teardown).
    pub self_port: Once<Arc<Port>>,
    /// Its processor set (a `ProcessorSetId`, `sched::pset`): where its new threads go.
    pub processor_set: AtomicU32,
    /// The priority its new threads start with (`task_priority`; GNU Mach's
    /// `task->priority`).
    pub priority: AtomicU8,
    /// The root node of `threads` (each entry is charged with its thread).
    _threads_root: Option<Charge>,
}

static NEXT_ID: AtomicU64 = AtomicU64::new(1);
/// User tasks that exist (not yet dropped).
static USER_TASKS: AtomicUsize = AtomicUsize::new(0);
static KERNEL_TASK: Once<Arc<Task>> = Once::new();
/// Every user task, for `processor_set_tasks` and `processor_set_threads`; an entry leaves
/// when its task is dropped. (Each task pays a granule for its share of the map's nodes.)
static TASKS: IrqSpinLock<BTreeMap<TaskId, Weak<Task>>> =
    IrqSpinLock::new(LockLevel::Tasks, BTreeMap::new());

/// Tasks listed per batch of [`each_task`] (the list's lock is dropped between batches).
const BATCH: usize = 32;

/// Call `f` on every user task that still exists, in id order, with no lock held.
pub fn each_task(mut f: impl FnMut(&Arc<Task>)) {
    let mut after = TaskId(0);
    loop {
        let batch: arrayvec::ArrayVec<Arc<Task>, BATCH> = TASKS
            .lock()
            .range(after..)
            .filter_map(|(_, t)| t.upgrade())
            .take(BATCH)
            .collect();
        let Some(last) = batch.last() else { break };
        after = TaskId(last.id.0 + 1);
        for task in &batch {
            f(task);
        }
        // The batch's references are dropped here, after the lock.
    }
}

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
                    ipc: None,
                    self_port: Once::new(),
                    processor_set: AtomicU32::new(0),
                    priority: AtomicU8::new(crate::kern::sched::runqueue::BASEPRI_USER),
                    _threads_root: None,
                })
            })
            .clone()
    }

    /// A new user task with an empty address space and its own kernel-memory ledger.
    pub fn new_user(name: &str) -> Option<Arc<Task>> {
        let ledger = kmem::task_ledger();
        // The root of its threads table and its share of the task list.
        let threads_root = ledger.charge(2).ok()?;
        let map = VmMap::new(&ledger)?;
        let space = map.space().clone();
        let dyn_ledger: Arc<dyn ipc::Ledger> = ledger.clone();
        let ipc_space = Space::new(&dyn_ledger).ok()?;
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
            ipc: Some(ipc_space),
            self_port: Once::new(),
            processor_set: AtomicU32::new(0),
            priority: AtomicU8::new(crate::kern::sched::runqueue::BASEPRI_USER),
            _threads_root: Some(threads_root),
        });
        crate::kern::sched::pset::note_task_created(&task);
        // On failure the kobject goes with the refused port: no cycle is left.
        let port = Port::alloc_kernel(
            &dyn_ledger,
            Some(KObject::new(KObjectKind::Task, task.clone())),
        )
        .ok()?;
        task.self_port.call_once(|| port);
        TASKS.lock().insert(task.id, Arc::downgrade(&task));
        Some(task)
    }

    /// A new send right to the task's port, named in `space` (GNU Mach
    /// `retrieve_task_self_fast` + `ipc_port_copyout_send`); `MACH_PORT_NULL` if none can
    /// be made or placed.
    pub fn self_name_in(&self, space: &Space) -> PortName {
        copyout_send(self.self_port.get(), space)
    }

    /// The task's IPC at its death (its last thread is exiting): every right in its space
    /// released, the ports it held destroyed, its kernel port dead (which drops the port's
    /// reference to the task). Idempotent.
    pub fn ipc_teardown(&self) {
        crate::kern::ipc_traps::rendezvous_forget(self.id);
        if let Some(space) = &self.ipc {
            space.destroy();
        }
        if let Some(port) = self.self_port.get() {
            Port::dealloc_kernel(port.clone());
        }
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
            let mut tasks = TASKS.lock();
            tasks.remove(&self.id);
            if tasks.is_empty() {
                // An emptied map keeps its root node: give it back, so that the kernel
                // heap is as it was before the first task (the leak check).
                *tasks = BTreeMap::new();
            }
            drop(tasks);
            crate::kern::sched::pset::note_task_gone(self);
        }
        if was_user && USER_TASKS.fetch_sub(1, Ordering::AcqRel) == 1 {
            crate::kern::sched::note_tasks_gone();
        }
    }
}

/// A new send right to `port` copied out into `space` (`MACH_PORT_NULL` on any failure;
/// the right is then released).
pub fn copyout_send(port: Option<&Arc<Port>>, space: &Space) -> PortName {
    if let Some(name) = port.and_then(|p| space.copyout_send_existing(p)) {
        return name;
    }
    let Some(right) = port.and_then(|p| p.make_send()) else {
        return PortName::NULL;
    };
    match space.copyout(right, true) {
        Ok(name) => name,
        Err((_, right)) => {
            drop(right);
            PortName::NULL
        }
    }
}

/// User tasks alive now.
pub fn user_task_count() -> usize {
    USER_TASKS.load(Ordering::Acquire)
}
