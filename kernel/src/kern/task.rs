//! Tasks: an address space and the threads that run in it. The kernel's own task has no
//! user address space; it owns the idle threads. When the last user task goes, the boot
//! CPU is told (the run is over).
//!
//! A task lives while it is referenced, as in GNU Mach: one whose last thread ends (or
//! that never had one, from `task_create`) goes on, its port alive, until `task_terminate`
//! — or until no task but itself can name it any more (no send right to its port outside
//! its own space: nobody could ever terminate it), when the kernel ends it. The exception
//! is a program the kernel started (the first tasks, `kern::loader`): it is the whole
//! program, and ends with its last thread, as before; and once every such program has
//! ended, so does every task left without threads (the run is over; threadless tasks that
//! name each other would otherwise keep it going). The rule is `kern::lifetime`'s.

extern crate alloc;

use crate::arch::uspace::AddressSpace;
use crate::ids::{TaskId, ThreadId};
use crate::ipc::{self, KObject, KObjectKind, Port, PortName, Space};
use crate::kern::name::DebugName;
use crate::kern::thread::Thread;
use crate::mm::kmem::{self, Charge, Ledger};
use crate::mm::vm::VmMap;
use crate::sync::{IrqSpinLock, LockLevel};
use alloc::collections::BTreeMap;
use alloc::sync::{Arc, Weak};
use arrayvec::ArrayVec;
use core::sync::atomic::{AtomicBool, AtomicU8, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use spin::Once;

pub struct Task {
    pub id: TaskId,
    /// Its name for the kernel's reports (`task_set_name`; at first the program's name,
    /// or its parent's for a task made by `task_create`).
    pub name: DebugName,
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
    /// The highest priority (lowest number) its new threads may have, within their
    /// set's maximum (`task_max_priority`; GNU Mach's `task->max_priority`). A first task
    /// gets `BASEPRI_USER`, as GNU Mach's boot script gives its tasks; a child, its
    /// parent's, with the parent's priority.
    pub max_priority: AtomicU8,
    /// Counter value at creation.
    pub created: u64,
    /// The exception and bootstrap special ports `task_set_special_port` stored (send
    /// rights, or null); released at the task's IPC teardown.
    pub special_ports: spin::Mutex<[ipc::MsgPort; 2]>,
    /// The send rights `mach_ports_register` stored (`itk_registered`, null where none),
    /// inherited by the tasks it creates; released at the task's IPC teardown.
    pub registered: spin::Mutex<[ipc::MsgPort; TASK_PORT_REGISTER_MAX]>,
    /// Suspensions by `task_suspend` (GNU Mach `user_stop_count`): while non-zero every
    /// thread of the task is held (`Thread::task_held`).
    pub user_stop_count: AtomicU32,
    /// User and system time of the task's threads that have ended, in counter ticks.
    pub dead_user_time: AtomicU64,
    pub dead_system_time: AtomicU64,
    /// Messages sent and received by the task's threads (`TASK_EVENTS_INFO`).
    pub messages_sent: AtomicU64,
    pub messages_received: AtomicU64,
    /// The root node of `threads` (each entry is charged with its thread).
    _threads_root: Option<Charge>,
    /// A program the kernel started: it ends when its last thread does. A task made by
    /// `task_create` outlives its threads (see the module comment).
    pub ends_with_threads: bool,
    /// Its IPC has been torn down ([`Task::ipc_teardown`]): it is ending.
    torn_down: AtomicBool,
    /// Found unreachable and threadless: [`reap_orphans`] ends it.
    reap_pending: AtomicBool,
    /// What a task made by `task_create` costs its parent (`CHILD_BLOCKS`).
    _creation: Option<Charge>,
}

/// Tasks marked `reap_pending` and not yet ended.
static ORPHANS: AtomicUsize = AtomicUsize::new(0);
/// Programs the kernel started (`ends_with_threads`) not yet ended. Once none is left,
/// the tasks they made that have no threads are ended too, whoever can name them: the
/// machine's programs are over, and the run ends when every task has gone (threadless
/// tasks naming each other in a cycle would otherwise outlive it).
static PROGRAMS: AtomicUsize = AtomicUsize::new(0);

/// A program the kernel started has ended: the last one marks every task without threads.
fn program_ended() {
    if PROGRAMS.fetch_sub(1, Ordering::AcqRel) == 1 {
        each_task(|task| task.mark_if_orphaned());
    }
}

/// The senders hook (`ipc::port::set_senders_hook`) for task ports: a send right to
/// `port` has gone and at most one is left. A task with no threads that no other task can
/// name is marked to be ended; nothing more here, as this runs wherever the right died
/// (perhaps in the middle of another space's destruction).
fn task_senders_gone(port: &Arc<Port>) {
    let Some(task) = port
        .kobject()
        .and_then(|k| k.get::<Task>(KObjectKind::Task))
    else {
        return;
    };
    task.mark_if_orphaned();
}

/// Set the senders hook for task ports (once, at boot).
pub fn init() {
    crate::ipc::port::set_senders_hook(task_senders_gone);
}

/// Whether some task waits to be ended by [`reap_orphans`] (a load, for the way to user
/// mode).
#[inline(always)]
pub fn orphans_pending() -> bool {
    ORPHANS.load(Ordering::Relaxed) != 0
}

/// End every task marked as threadless and unreachable, and those their ends make so, one
/// after the other (never nested, however long a chain of tasks naming each other only
/// through their dying spaces). Called by a thread on its way to user mode or out of
/// existence, with no lock held.
pub fn reap_orphans() {
    while ORPHANS.load(Ordering::Acquire) != 0 {
        let mut found = false;
        each_task(|task| {
            if task.reap_pending.swap(false, Ordering::AcqRel) {
                ORPHANS.fetch_sub(1, Ordering::AcqRel);
                found = true;
                task.ipc_teardown();
            }
        });
        if !found {
            // The marked tasks left are being dropped: each uncounts itself (`Drop`).
            break;
        }
    }
}

/// Kernel heap granules a task made by `task_create` is charged to its parent: its `Task`
/// (its name inside) and its ledger, which its own ledger cannot pay for (it pays for its
/// map and space), so that no task can exhaust the kernel heap by making tasks.
pub const CHILD_BLOCKS: usize = 2;

const _: () = assert!(kmem::fits_granule(
    core::mem::size_of::<Task>() + 2 * core::mem::size_of::<usize>(),
    core::mem::align_of::<Task>()
));

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
                    name: DebugName::new(b"kernel"),
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
                    max_priority: AtomicU8::new(crate::kern::sched::runqueue::BASEPRI_SYSTEM),
                    created: crate::arch::timer::counter(),
                    special_ports: spin::Mutex::new([ipc::MsgPort::Null, ipc::MsgPort::Null]),
                    registered: spin::Mutex::new(
                        [const { ipc::MsgPort::Null }; TASK_PORT_REGISTER_MAX],
                    ),
                    user_stop_count: AtomicU32::new(0),
                    dead_user_time: AtomicU64::new(0),
                    dead_system_time: AtomicU64::new(0),
                    messages_sent: AtomicU64::new(0),
                    messages_received: AtomicU64::new(0),
                    _threads_root: None,
                    ends_with_threads: false,
                    torn_down: AtomicBool::new(false),
                    reap_pending: AtomicBool::new(false),
                    _creation: None,
                })
            })
            .clone()
    }

    /// A new user task with an empty address space and its own kernel-memory ledger: a
    /// program the kernel starts, which ends with its last thread.
    pub fn new_user(name: &str) -> Option<Arc<Task>> {
        Self::new_user_charged(name.as_bytes(), None, true)
    }

    /// A task for `task_create`: as [`new_user`](Self::new_user), with `CHILD_BLOCKS`
    /// charged to `parent` until it is gone (`KERN_RESOURCE_SHORTAGE` if the parent cannot
    /// pay, or memory is short).
    pub fn new_child(parent: &Task) -> Result<Arc<Task>, mach_abi::KernReturn> {
        let charge = parent.kmem.charge(CHILD_BLOCKS)?;
        let name = parent.name.get();
        let child = Self::new_user_charged(crate::kern::name::trimmed(&name), Some(charge), false)
            .ok_or(mach_abi::KernReturn::ResourceShortage)?;
        // GNU Mach `task_create`: the parent's priority and maximum.
        let priority = parent.priority.load(Ordering::Relaxed);
        let max = parent.max_priority.load(Ordering::Relaxed);
        child.priority.store(priority, Ordering::Relaxed);
        child.max_priority.store(max, Ordering::Relaxed);
        Ok(child)
    }

    /// Give this new task (no threads yet, empty map) the memory of `parent` that
    /// `vm_inherit` lets it have, as GNU Mach's `task_create` with `inherit_memory` does:
    /// every region not `VM_INHERIT_NONE`, with its protections and inheritance. A
    /// `VM_INHERIT_SHARE` region is shared: it becomes the parent's memory object if it is
    /// not one yet (`VmMap::share_region`), and the child maps the same object, so a
    /// write in either is seen by both. A `VM_INHERIT_COPY` region is copied eagerly, not
    /// copy-on-write: every page the parent has is copied at once (the others stay
    /// zero-fill in both). A shared region of device memory (a borrowed page) is copied.
    /// The two maps are never locked together: each piece is read under the parent's
    /// lock, then written under the child's.
    pub fn inherit_memory_from(&self, parent: &Task) -> Result<(), mach_abi::KernReturn> {
        use crate::mm::layout::PAGE_SIZE;
        use crate::mm::regions::{VM_INHERIT_NONE, VM_INHERIT_SHARE};
        let (Some(from), Some(to)) = (&parent.map, &self.map) else {
            return Ok(());
        };
        let mut addr = 0;
        let mut buf = [0u8; 512];
        loop {
            let Some((start, mut region)) = from.lock().region_from(addr) else {
                return Ok(());
            };
            addr = region.end;
            if region.inheritance == VM_INHERIT_NONE {
                continue;
            }
            if region.inheritance == VM_INHERIT_SHARE {
                // The parent's lock is let go before the child's is taken.
                let shared = from.lock().share_region_inherited(start);
                match shared {
                    Ok(object) => {
                        region.object = Some(object);
                        region.shared = true;
                        to.lock().insert_inherited(start, &region)?;
                        continue;
                    }
                    Err(mach_abi::KernReturn::InvalidArgument) => {}
                    Err(e) => return Err(e),
                }
            }
            // A private copy.
            region.object = None;
            region.shared = false;
            to.lock().insert_inherited(start, &region)?;
            // Page by page, only those the parent has (a huge sparse region costs what it
            // holds, not its size); the others stay zero-fill in both.
            let mut next = start;
            loop {
                // The parent's lock is let go before the child's is taken.
                let found = from.lock().next_resident(next, region.end);
                let Some(page) = found else { break };
                let mut at = page;
                while at < page + PAGE_SIZE {
                    if !from.lock().read_resident(at, &mut buf) {
                        break;
                    }
                    to.lock().kernel_write(at, &buf)?;
                    at += buf.len() as u64;
                }
                next = page + PAGE_SIZE;
            }
        }
    }

    /// Give this new task the size limits of `parent` (GNU Mach `task_create` without
    /// `inherit_memory`: `vm_map_copy_limits`).
    pub fn copy_limits_from(&self, parent: &Task) {
        let (Some(from), Some(to)) = (&parent.map, &self.map) else {
            return;
        };
        let (current, max) = from.lock().size_limits();
        let _ = to.lock().set_size_limits(current, max, true);
    }

    fn new_user_charged(
        name: &[u8],
        creation: Option<Charge>,
        ends_with_threads: bool,
    ) -> Option<Arc<Task>> {
        let ledger = kmem::task_ledger();
        // The root of its threads table and its share of the task list.
        let threads_root = ledger.charge(2).ok()?;
        let map = VmMap::new(&ledger)?;
        let space = map.space().clone();
        let dyn_ledger: Arc<dyn ipc::Ledger> = ledger.clone();
        let ipc_space = Space::new(&dyn_ledger).ok()?;
        USER_TASKS.fetch_add(1, Ordering::AcqRel);
        if ends_with_threads {
            PROGRAMS.fetch_add(1, Ordering::AcqRel);
        }
        let task = Arc::new(Task {
            id: TaskId(NEXT_ID.fetch_add(1, Ordering::Relaxed)),
            name: DebugName::new(name),
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
            max_priority: AtomicU8::new(crate::kern::sched::runqueue::BASEPRI_USER),
            created: crate::arch::timer::counter(),
            special_ports: spin::Mutex::new([ipc::MsgPort::Null, ipc::MsgPort::Null]),
            registered: spin::Mutex::new([const { ipc::MsgPort::Null }; TASK_PORT_REGISTER_MAX]),
            user_stop_count: AtomicU32::new(0),
            dead_user_time: AtomicU64::new(0),
            dead_system_time: AtomicU64::new(0),
            messages_sent: AtomicU64::new(0),
            messages_received: AtomicU64::new(0),
            _threads_root: Some(threads_root),
            ends_with_threads,
            torn_down: AtomicBool::new(false),
            reap_pending: AtomicBool::new(false),
            _creation: creation,
        });
        crate::kern::sched::pset::note_task_created(&task);
        // On failure the kobject goes with the refused port: no cycle is left.
        let port = Port::alloc_kernel(
            &dyn_ledger,
            Some(KObject::new(KObjectKind::Task, task.clone())),
        )
        .ok()?;
        port.watch_senders();
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

    /// Whether the task has no threads and no other task can name it: no send right to
    /// its port exists but the one its own space may hold (a task that ran has one from
    /// `mach_task_self`). Rights in messages count as held. Once every program the kernel
    /// started has ended, any task without threads is (`kern::lifetime::must_end`).
    pub fn is_orphaned(&self) -> bool {
        if self.live_threads.load(Ordering::SeqCst) != 0 || self.torn_down.load(Ordering::SeqCst) {
            return false;
        }
        let Some(port) = self.self_port.get() else {
            return false;
        };
        let status = port.status();
        if !status.active {
            return false;
        }
        let own = self
            .ipc
            .as_ref()
            .is_some_and(|space| space.holds_send(port));
        crate::kern::lifetime::must_end(
            self.live_threads.load(Ordering::SeqCst),
            status.srights,
            own,
            PROGRAMS.load(Ordering::Acquire),
        )
    }

    /// Mark the task for [`reap_orphans`] if [`is_orphaned`](Self::is_orphaned).
    fn mark_if_orphaned(&self) {
        if self.is_orphaned() && !self.reap_pending.swap(true, Ordering::AcqRel) {
            ORPHANS.fetch_add(1, Ordering::AcqRel);
        }
    }

    /// Its last thread has left (`Thread::detach_from_task`): a program the kernel
    /// started, a task being terminated, or one nobody else can name ends now; any other
    /// lives on without threads (GNU Mach) until `task_terminate` or until the last send
    /// right to its port outside itself dies.
    pub fn last_thread_gone(&self) {
        if self.ends_with_threads || self.terminating.load(Ordering::SeqCst) || self.is_orphaned() {
            self.ipc_teardown();
        }
    }

    /// The task's IPC at its death (its last thread is exiting): every right in its space
    /// released, the ports it held destroyed, its kernel port dead (which drops the port's
    /// reference to the task). Idempotent.
    pub fn ipc_teardown(&self) {
        if self.torn_down.swap(true, Ordering::AcqRel) {
            return;
        }
        if self.ends_with_threads {
            program_ended();
        }
        // No new thread from now on.
        self.terminating.store(true, Ordering::SeqCst);
        crate::kern::ipc_traps::rendezvous_forget(self.id);
        if let Some(space) = &self.ipc {
            space.destroy();
        }
        let ports = core::mem::take(&mut *self.special_ports.lock());
        drop(ports);
        let registered = core::mem::take(&mut *self.registered.lock());
        drop(registered);
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
        self.terminating.store(true, Ordering::SeqCst);
        self.for_each_thread(|thread| thread.request_termination());
        // A task without threads (made by `task_create`) has no last thread to end its IPC.
        if self.live_threads.load(Ordering::SeqCst) == 0 {
            self.ipc_teardown();
        }
    }

    /// Run `f` on each live thread, in batches taken under the thread table's lock and run
    /// outside it, so that no allocation grows with the number of threads.
    pub fn for_each_thread(&self, mut f: impl FnMut(&Arc<Thread>)) {
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
            for thread in &batch {
                f(thread);
            }
        }
    }

    /// `task_suspend` (GNU Mach `task_hold` on the first): every thread held, new ones too.
    /// The threads stop at their next return to user mode; nothing waits for that here.
    pub fn suspend(&self) {
        if self.user_stop_count.fetch_add(1, Ordering::SeqCst) == 0 {
            self.for_each_thread(|t| t.task_hold());
        }
    }

    /// `task_resume`: `KERN_FAILURE` if the task is not suspended; the last one releases
    /// every thread.
    pub fn resume(&self) -> Result<(), mach_abi::KernReturn> {
        let was = self
            .user_stop_count
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .map_err(|_| mach_abi::KernReturn::Failure)?;
        if was == 1 {
            self.for_each_thread(|t| t.task_release());
        }
        Ok(())
    }
}

impl Drop for Task {
    fn drop(&mut self) {
        if self.reap_pending.swap(false, Ordering::AcqRel) {
            ORPHANS.fetch_sub(1, Ordering::AcqRel);
        }
        // A program that never ran (its loading failed) ends here.
        if self.ends_with_threads && !self.torn_down.swap(true, Ordering::AcqRel) {
            program_ended();
        }
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

/// User tasks on the list of every task (`each_task`).
pub fn listed_task_count() -> usize {
    TASKS.lock().len()
}

/// User tasks alive now.
pub fn user_task_count() -> usize {
    USER_TASKS.load(Ordering::Acquire)
}
/// Ports one task may register (`mach/mach_param.h`).
pub const TASK_PORT_REGISTER_MAX: usize = 3;
