//! Processor sets (GNU Mach's `processor_set`): the default set, which holds every
//! processor at boot, and sets created later, each with its processors, counts of the tasks
//! and threads assigned to it, a maximum priority and a queue of threads waiting for a
//! processor. The operations are plain kernel functions with GNU Mach's semantics and
//! return codes; serving them over IPC (the `mach_host` subsystem) is not done here.
//!
//! How the scheduler honours them: each processor and each thread names its set (an id,
//! `ProcessorSetId`); `setrun` considers only processors of the thread's set
//! (`policy::may_run`) and, when the set has none, queues the thread here until one is
//! assigned. A processor leaving a set sends the threads queued on it through the placement
//! again; a thread found on a processor of another set (it or the processor moved while it
//! was queued or running) leaves at its next reschedule (`scheduler::misplaced`).
//!
//! Ids are never reused for another set: a thread or task still naming a destroyed set is
//! in the default set (`resolve`), and is relabelled when next placed.

extern crate alloc;

use super::runqueue::{IDLE_PRI, RunQueue};
use super::scheduler::{kick, processor, setrun};
use super::setmembers::{self, Members, TaggedCount};
use super::setslot::{SetSlot, free_slot};
use crate::ids::{CpuId, ProcessorSetId};
use crate::ipc::{Charge, Kind, Ledger};
use crate::kern::task::Task;
use crate::kern::thread::{MAX_THREADS, NO_PROCESSOR, Thread};
use crate::mm::kmem;
use crate::sync::{IrqSpinLock, LockLevel};
use alloc::sync::Arc;
use arrayvec::ArrayVec;
use core::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use mach_abi::KernReturn;

/// Sets that can exist at once, the default set included.
pub const MAX_SETS: usize = 16;

/// `Thread::queued_on` of a thread on its set's waiting queue (not a processor's).
pub const WAITING_ON_SET: u32 = u32::MAX - 1;

/// GNU Mach's initial `max_priority` of a set, the default one and new ones alike
/// (`BASEPRI_SYSTEM`, so that a privileged task may raise its threads that far).
const INITIAL_MAX_PRIORITY: u8 = super::runqueue::BASEPRI_SYSTEM;

/// Threads moved per batch out of a queue (the lock is dropped between batches, and no
/// batch allocates).
const BATCH: usize = 32;

/// A slot of the table.
struct SetState {
    /// Whether a set holds the slot, and the generation of its id (`setslot`).
    slot: SetSlot,
    /// Online processors assigned to the set.
    processors: u32,
    max_priority: u8,
    /// Threads of the set made runnable while it had no processor.
    waiting: RunQueue<Arc<Thread>>,
    /// The waiting queue's reservation, charged to the creator.
    _charge: Option<Charge>,
}

impl SetState {
    const fn new() -> Self {
        SetState {
            slot: SetSlot::new(),
            processors: 0,
            max_priority: INITIAL_MAX_PRIORITY,
            waiting: RunQueue::new(),
            _charge: None,
        }
    }
}

/// The sets by slot. Slot 0 is the default set's for ever (creation looks at 1..).
static TABLE: IrqSpinLock<[SetState; MAX_SETS]> = IrqSpinLock::new(
    LockLevel::ProcessorSets,
    [const { SetState::new() }; MAX_SETS],
);

/// The id of the live set in each slot (`FREE` if none), read without the lock: a set is
/// live while its slot holds its id. Written under the table's lock.
static LIVE: [AtomicU32; MAX_SETS] = {
    let mut live = [const { AtomicU32::new(FREE) }; MAX_SETS];
    live[0] = AtomicU32::new(ProcessorSetId::DEFAULT.0);
    live
};
const FREE: u32 = u32::MAX;

/// Tasks and threads assigned to each set, by slot, each tagged with its set's id
/// (`setmembers::TaggedCount`): kept with atomics, so that a thread or task going away (its
/// `Drop`, wherever the last reference goes) never takes a lock for them.
static TASKS: [TaggedCount; MAX_SETS] = empty_counts();
static THREADS: [TaggedCount; MAX_SETS] = empty_counts();

/// Counts at boot: the default set's in slot 0, every other slot free.
const fn empty_counts() -> [TaggedCount; MAX_SETS] {
    let mut c = [const { TaggedCount::new(FREE) }; MAX_SETS];
    c[0] = TaggedCount::new(ProcessorSetId::DEFAULT.0);
    c
}

/// The membership bookkeeping's view of the kernel (`setmembers`): the table, held locked
/// by whoever made the view, the `LIVE` ids (written only under that lock) and the
/// processors' `pset` and `online` fields.
struct Kernel<'a>(&'a mut [SetState; MAX_SETS]);

impl Members for Kernel<'_> {
    fn cpus(&self) -> usize {
        crate::percpu::cpu_count()
    }
    fn online(&self, cpu: CpuId) -> bool {
        processor(cpu).online.load(Ordering::Acquire)
    }
    fn set_online(&mut self, cpu: CpuId) {
        processor(cpu).online.store(true, Ordering::Release);
    }
    fn set_of(&self, cpu: CpuId) -> ProcessorSetId {
        ProcessorSetId(processor(cpu).pset.load(Ordering::Acquire))
    }
    fn put(&mut self, cpu: CpuId, set: ProcessorSetId) {
        processor(cpu).pset.store(set.0, Ordering::Release);
    }
    fn live(&self, slot: usize) -> Option<ProcessorSetId> {
        let id = LIVE[slot].load(Ordering::Acquire);
        (id != FREE).then_some(ProcessorSetId(id))
    }
    fn count(&mut self, slot: usize) -> &mut u32 {
        &mut self.0[slot].processors
    }
    fn count_of(&self, slot: usize) -> u32 {
        self.0[slot].processors
    }
    fn slots(&self) -> usize {
        MAX_SETS
    }
}

/// Set once a set is first created (never cleared): until then there is nothing for the
/// switch path to check (`scheduler::misplaced`).
static SETS_IN_USE: AtomicBool = AtomicBool::new(false);

/// Whether a set other than the default one was ever created.
#[inline]
pub fn sets_in_use() -> bool {
    SETS_IN_USE.load(Ordering::Relaxed)
}

/// Whether `set` is a live set (any id may come from a user: a slot past the table is
/// no set). Every other use of a slot index below follows this check or `resolve`.
pub fn is_live(set: ProcessorSetId) -> bool {
    LIVE.get(set.slot())
        .is_some_and(|id| id.load(Ordering::Acquire) == set.0)
}

/// The set `set` stands for: itself while it lives, the default set once destroyed.
pub fn resolve(set: ProcessorSetId) -> ProcessorSetId {
    if is_live(set) {
        set
    } else {
        ProcessorSetId::DEFAULT
    }
}

/// `processor_set_default`: the default set.
pub fn processor_set_default() -> ProcessorSetId {
    ProcessorSetId::DEFAULT
}

/// `processor_set_create`: a new, empty set. Its waiting queue is reserved for every
/// thread there can be and charged to `ledger`; `KERN_RESOURCE_SHORTAGE` when no slot is free
/// (every slot holds a set or has spent its ids) or the charge or the memory is refused.
pub fn processor_set_create(ledger: &Arc<dyn Ledger>) -> Result<ProcessorSetId, KernReturn> {
    let bytes = MAX_THREADS as usize * RunQueue::<Arc<Thread>>::NODE_BYTES;
    // A set is a kernel object: charged with the ports (its own ports are too).
    let charge = Charge::new(ledger, Kind::Port, bytes.div_ceil(kmem::GRANULE))?;
    // Reserved outside the table's lock (the heap's lock is innermost anyway, but the
    // reservation is large and the table is on the placement path).
    let mut waiting = RunQueue::new();
    waiting
        .reserve(MAX_THREADS as usize)
        .map_err(|_| KernReturn::ResourceShortage)?;
    let mut table = TABLE.lock();
    let Some(slot) = free_slot(table.iter().map(|s| &s.slot)) else {
        drop(table);
        return Err(KernReturn::ResourceShortage);
    };
    let state = &mut table[slot];
    let old_waiting = core::mem::replace(&mut state.waiting, waiting);
    let old_charge = state._charge.replace(charge);
    let id = state.slot.claim(slot);
    state.processors = 0;
    state.max_priority = INITIAL_MAX_PRIORITY;
    TASKS[slot].reset(id.0);
    THREADS[slot].reset(id.0);
    LIVE[slot].store(id.0, Ordering::Release);
    SETS_IN_USE.store(true, Ordering::Release);
    drop(table);
    // Empty leftovers of a destroyed set, freed outside the lock.
    drop((old_waiting, old_charge));
    super::migrate::set_created(id);
    Ok(id)
}

/// `processor_set_destroy`: every processor, task and thread of `set` returns to the
/// default set. `KERN_INVALID_ARGUMENT` for the default set or a set that is not live.
pub fn processor_set_destroy(set: ProcessorSetId) -> Result<(), KernReturn> {
    if set == ProcessorSetId::DEFAULT {
        return Err(KernReturn::InvalidArgument);
    }
    let moved = {
        let mut table = TABLE.lock();
        if !is_live(set) {
            return Err(KernReturn::InvalidArgument);
        }
        // From here no thread joins its waiting queue (`wait_for_processor` checks).
        LIVE[set.slot()].store(FREE, Ordering::Release);
        table[set.slot()].slot.retire();
        // Its tasks and threads are the default set's, and so is any later change to their
        // counts that still names this set.
        setmembers::move_count_to_default(&TASKS, set, FREE);
        setmembers::move_count_to_default(&THREADS, set, FREE);
        // Its processors are the default set's in the same step: no one who takes the
        // table's lock sees a processor in a set that is gone.
        setmembers::evacuate(&mut Kernel(&mut table), set)
    };
    crate::kern::checks::at_set_destroy();
    for cpu in CpuId::first(crate::percpu::cpu_count()) {
        if moved >> cpu.index() & 1 == 1 {
            place_after_move(cpu, ProcessorSetId::DEFAULT);
        }
    }
    // Its waiting threads go to the default set.
    drain_waiting(set.slot(), |t| {
        t.processor_set
            .store(ProcessorSetId::DEFAULT.0, Ordering::Relaxed);
        true
    });
    let leftovers = {
        let mut table = TABLE.lock();
        let state = &mut table[set.slot()];
        state.slot.release();
        state.processors = 0;
        (core::mem::take(&mut state.waiting), state._charge.take())
    };
    drop(leftovers);
    Ok(())
}

/// `processor_assign`: move processor `cpu` to `set`. GNU Mach refuses the boot (master)
/// processor and an unknown one with `KERN_INVALID_ARGUMENT`, as it does a set that is not
/// live. The threads queued on the processor that belong to its old set are placed again
/// (on the old set's other processors, or its waiting queue); the threads waiting for a
/// processor of `set` are placed; the thread running there leaves at its next reschedule.
/// (GNU Mach's `wait` argument has no use here: the move is done on return.)
pub fn processor_assign(cpu: CpuId, set: ProcessorSetId) -> Result<(), KernReturn> {
    if cpu.index() >= crate::percpu::cpu_count()
        || !processor(cpu).online.load(Ordering::Acquire)
        || cpu == crate::kern::boot::boot_cpu()
    {
        return Err(KernReturn::InvalidArgument);
    }
    if !is_live(set) {
        return Err(KernReturn::InvalidArgument);
    }
    // Under the lock the processor moves only if `set` is still live (a destroy may have
    // come first: then it stays where it is, and the answer is still success, as if the
    // destroy had come after).
    let moved = {
        let mut table = TABLE.lock();
        setmembers::assign(&mut Kernel(&mut table), cpu, set)
    };
    if moved {
        place_after_move(cpu, set);
    }
    Ok(())
}

/// After `cpu` joined `new`: the threads the move concerns are placed again.
fn place_after_move(cpu: CpuId, new: ProcessorSetId) {
    let p = processor(cpu);
    // Threads of `new` waiting for a processor: this one has come.
    drain_waiting(new.slot(), |_| true);
    // Threads queued here for another set go through the placement again. A thread still
    // being switched out here (`on_cpu`) is left: this CPU finds it misplaced when it
    // dequeues it. Bound threads stay with their processor.
    loop {
        let batch: ArrayVec<Arc<Thread>, BATCH> = {
            let mut rq = p.runq.lock();
            let mut batch = ArrayVec::new();
            while !batch.is_full() {
                let Some(t) = rq.remove_first(|t| {
                    t.processor_set.load(Ordering::Relaxed) != new.0
                        && t.bound_processor.load(Ordering::Relaxed) == NO_PROCESSOR
                        && !t.on_cpu.load(Ordering::Acquire)
                }) else {
                    break;
                };
                t.queued_on.store(NO_PROCESSOR, Ordering::Relaxed);
                batch.push(t);
            }
            p.nr_queued.store(rq.len() as u32, Ordering::Relaxed);
            batch
        };
        if batch.is_empty() {
            break;
        }
        for t in batch {
            if super::trace::on() {
                super::trace::note_move(&t, mach_abi::trace::Reason::SetChange);
            }
            setrun(t);
        }
    }
    kick(cpu);
}

/// Take the threads off slot `slot`'s waiting queue in batches, and place each that `keep`
/// (which may relabel it) accepts. Stops when the set has no processor (they would only
/// wait again) unless the set is dead (then they must leave).
fn drain_waiting(slot: usize, keep: impl Fn(&Arc<Thread>) -> bool) {
    loop {
        let batch: ArrayVec<Arc<Thread>, BATCH> = {
            let mut table = TABLE.lock();
            let dead = LIVE[slot].load(Ordering::Acquire) == FREE;
            let state = &mut table[slot];
            let mut batch = ArrayVec::new();
            if state.processors > 0 || dead {
                while !batch.is_full() {
                    let Some(t) = state.waiting.dequeue() else {
                        break;
                    };
                    t.queued_on.store(NO_PROCESSOR, Ordering::Relaxed);
                    batch.push(t);
                }
            }
            batch
        };
        if batch.is_empty() {
            break;
        }
        for t in batch {
            if keep(&t) {
                setrun(t);
            }
        }
    }
}

/// For `setrun` when no processor is eligible: queue `thread` on its set's waiting queue
/// if the set still has no processor. `Err` gives the thread back to be placed again: its
/// set has a processor now, or was destroyed (the thread is then relabelled to the default
/// set).
pub(super) fn wait_for_processor(thread: Arc<Thread>) -> Result<(), Arc<Thread>> {
    let mut table = TABLE.lock();
    let set = ProcessorSetId(thread.processor_set.load(Ordering::Relaxed));
    if !is_live(set) {
        thread
            .processor_set
            .store(ProcessorSetId::DEFAULT.0, Ordering::Relaxed);
        return Err(thread);
    }
    let state = &mut table[set.slot()];
    if state.processors > 0 || state.waiting.len() >= MAX_THREADS as usize {
        // (The queue has room for every thread; the second test only keeps a broken
        // invariant from allocating.)
        return Err(thread);
    }
    thread.queued_on.store(WAITING_ON_SET, Ordering::Relaxed);
    let priority = thread.sched_priority.load(Ordering::Relaxed);
    state.waiting.enqueue(thread, priority);
    Ok(())
}

/// `processor_get_assignment`: the set of processor `cpu`.
pub fn processor_get_assignment(cpu: CpuId) -> Result<ProcessorSetId, KernReturn> {
    if cpu.index() >= crate::percpu::cpu_count() {
        return Err(KernReturn::InvalidArgument);
    }
    Ok(ProcessorSetId(processor(cpu).pset.load(Ordering::Acquire)))
}

/// `thread_get_assignment`: the set of `thread`.
pub fn thread_get_assignment(thread: &Thread) -> ProcessorSetId {
    resolve(ProcessorSetId(thread.processor_set.load(Ordering::Relaxed)))
}

/// `task_get_assignment`: the set of `task`.
pub fn task_get_assignment(task: &Task) -> ProcessorSetId {
    resolve(ProcessorSetId(task.processor_set.load(Ordering::Relaxed)))
}

/// `thread_assign`: move `thread` to `set` (`KERN_INVALID_ARGUMENT` for an idle thread or
/// a set that is not live). As in GNU Mach (`thread_doassign`) a maximum above the set's
/// (a lower number) is lowered to it, and the priority with it; a lower one is kept.
/// A queued thread is placed again at once; a running one moves at its next reschedule.
pub fn thread_assign(thread: &Arc<Thread>, set: ProcessorSetId) -> Result<(), KernReturn> {
    if thread.is_idle {
        return Err(KernReturn::InvalidArgument);
    }
    let mut taken = None;
    {
        let mut table = TABLE.lock();
        if !is_live(set) {
            return Err(KernReturn::InvalidArgument);
        }
        let old = ProcessorSetId(thread.processor_set.swap(set.0, Ordering::AcqRel));
        let old = resolve(old);
        if old != set {
            setmembers::count_sub(&THREADS, old);
            setmembers::count_add(&THREADS, set, 1);
        }
        let max = table[set.slot()].max_priority;
        if thread.max_priority.load(Ordering::Relaxed) < max {
            thread.max_priority.store(max, Ordering::Relaxed);
        }
        if thread.base_priority.load(Ordering::Relaxed) < max {
            thread.base_priority.store(max, Ordering::Relaxed);
            if !thread.depressed.load(Ordering::Relaxed) {
                thread.sched_priority.store(max, Ordering::Relaxed);
            }
        }
        if thread.queued_on.load(Ordering::Relaxed) == WAITING_ON_SET
            && let Some(t) = table[old.slot()]
                .waiting
                .remove_first(|t| Arc::ptr_eq(t, thread))
        {
            t.queued_on.store(NO_PROCESSOR, Ordering::Relaxed);
            taken = Some(t);
        }
    }
    if taken.is_none() {
        let raw = thread.queued_on.load(Ordering::Relaxed);
        if (raw as usize) < crate::devtree::MAX_CPUS {
            let cpu = CpuId::new(raw as usize);
            let p = processor(cpu);
            if p.pset.load(Ordering::Acquire) != set.0 {
                let mut rq = p.runq.lock();
                taken = rq
                    .remove_first(|t| Arc::ptr_eq(t, thread) && !t.on_cpu.load(Ordering::Acquire));
                if taken.is_some() {
                    thread.queued_on.store(NO_PROCESSOR, Ordering::Relaxed);
                    p.nr_queued.store(rq.len() as u32, Ordering::Relaxed);
                }
            }
        }
    }
    if super::trace::on() {
        super::trace::note_move(thread, mach_abi::trace::Reason::SetChange);
    }
    match taken {
        Some(t) => setrun(t),
        None => {
            // Running (or being switched): its processor finds it misplaced at the next
            // reschedule, which this asks for.
            let last = thread.last_processor.load(Ordering::Relaxed);
            if thread.on_cpu.load(Ordering::Acquire) && (last as usize) < crate::devtree::MAX_CPUS {
                kick(CpuId::new(last as usize));
            }
        }
    }
    Ok(())
}

/// `thread_assign_default`.
pub fn thread_assign_default(thread: &Arc<Thread>) -> Result<(), KernReturn> {
    thread_assign(thread, ProcessorSetId::DEFAULT)
}

/// `task_assign`: move `task` to `set`: its new threads are created in `set`, and with
/// `assign_threads` (GNU Mach's flag) its existing threads move too.
pub fn task_assign(
    task: &Arc<Task>,
    set: ProcessorSetId,
    assign_threads: bool,
) -> Result<(), KernReturn> {
    if task.is_kernel() {
        return Err(KernReturn::InvalidArgument);
    }
    {
        let _table = TABLE.lock();
        if !is_live(set) {
            return Err(KernReturn::InvalidArgument);
        }
        let old = resolve(ProcessorSetId(
            task.processor_set.swap(set.0, Ordering::AcqRel),
        ));
        if old != set {
            setmembers::count_sub(&TASKS, old);
            setmembers::count_add(&TASKS, set, 1);
        }
    }
    if assign_threads {
        // In batches, so that nothing allocates with the number of threads.
        let mut after = crate::ids::ThreadId(0);
        loop {
            let batch: ArrayVec<Arc<Thread>, BATCH> = task
                .threads
                .lock()
                .range(after..)
                .filter_map(|(_, t)| t.upgrade())
                .take(BATCH)
                .collect();
            let Some(last) = batch.last() else { break };
            after = crate::ids::ThreadId(last.id.0 + 1);
            for thread in batch {
                // The set may be destroyed meanwhile: the rest stay in the default set.
                let _ = thread_assign(&thread, set);
            }
        }
    }
    Ok(())
}

/// `task_assign_default`.
pub fn task_assign_default(task: &Arc<Task>, assign_threads: bool) -> Result<(), KernReturn> {
    task_assign(task, ProcessorSetId::DEFAULT, assign_threads)
}

/// `processor_set_max_priority`: the highest priority (lowest number) a thread assigned
/// to `set` keeps; `KERN_INVALID_ARGUMENT` for a priority outside 0..IDLE_PRI or a set not
/// live. With `change_threads` GNU Mach also lowers the threads already in the set: the
/// object server does that (`server::host_server`, through the list of tasks), not this.
pub fn processor_set_max_priority(
    set: ProcessorSetId,
    max_priority: u32,
    _change_threads: bool,
) -> Result<(), KernReturn> {
    if max_priority >= IDLE_PRI as u32 {
        return Err(KernReturn::InvalidArgument);
    }
    let mut table = TABLE.lock();
    if !is_live(set) {
        return Err(KernReturn::InvalidArgument);
    }
    table[set.slot()].max_priority = max_priority as u8;
    Ok(())
}

/// What `processor_set_info` reports of a set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SetInfo {
    pub processor_count: u32,
    pub task_count: u32,
    pub thread_count: u32,
    pub max_priority: u8,
    /// Threads waiting for a processor.
    pub waiting: u32,
}

/// The counts of `set`; `KERN_INVALID_ARGUMENT` if it is not live.
pub fn processor_set_info(set: ProcessorSetId) -> Result<SetInfo, KernReturn> {
    let table = TABLE.lock();
    if !is_live(set) {
        return Err(KernReturn::InvalidArgument);
    }
    let state = &table[set.slot()];
    Ok(SetInfo {
        processor_count: state.processors,
        task_count: TASKS[set.slot()].get().1,
        thread_count: THREADS[set.slot()].get().1,
        max_priority: state.max_priority,
        waiting: state.waiting.len() as u32,
    })
}

/// A processor comes online: it joins the default set, counted there, and says it is
/// online, in one step under the table's lock.
pub(super) fn processor_online(cpu: CpuId) {
    let mut table = TABLE.lock();
    setmembers::bring_up(&mut Kernel(&mut table), cpu);
}

/// A user thread was created in `task`: it joins the task's set.
pub fn note_thread_created(thread: &Thread) {
    let set = task_get_assignment(&thread.task);
    thread.processor_set.store(set.0, Ordering::Relaxed);
    setmembers::count_add(&THREADS, set, 1);
}

/// The maximum priority of `task`'s set: the ceiling of its new threads' maxima.
pub fn task_set_max_priority(task: &Task) -> u8 {
    let table = TABLE.lock();
    table[task_get_assignment(task).slot()].max_priority
}

/// A user thread is gone.
pub fn note_thread_gone(thread: &Thread) {
    setmembers::count_sub(&THREADS, thread_get_assignment(thread));
}

/// A user task was created (in the default set).
pub fn note_task_created(_task: &Task) {
    setmembers::count_add(&TASKS, ProcessorSetId::DEFAULT, 1);
}

/// A user task is gone.
pub fn note_task_gone(task: &Task) {
    setmembers::count_sub(&TASKS, task_get_assignment(task));
}

/// Each live set with tasks or threads still counted in it: (set, tasks, threads). When no
/// user task is left, there must be none (`checks::at_end`).
pub fn nonzero_counts(report: &mut dyn FnMut(ProcessorSetId, u32, u32)) {
    for slot in 0..MAX_SETS {
        let (set, tasks) = TASKS[slot].get();
        let (_, threads) = THREADS[slot].get();
        if set.0 != FREE && (tasks != 0 || threads != 0) {
            report(set, tasks, threads);
        }
    }
}

/// What [`check`] found wrong with the processor sets.
#[derive(Clone, Copy, Debug)]
pub enum PsetProblem {
    /// An online processor names a set that is not live: it is in no set.
    ProcessorInNoSet { cpu: CpuId, set: ProcessorSetId },
    /// The set counts `says` processors; `counted` online processors name it.
    ProcessorCount {
        set: ProcessorSetId,
        counted: u32,
        says: u32,
    },
    /// A free slot still counts processors.
    FreeSlotCount { slot: usize, says: u32 },
    /// The set's waiting queue is damaged.
    WaitingQueue {
        set: ProcessorSetId,
        broken: super::runqueue::Broken,
    },
    /// A thread on the set's waiting queue does not say it waits there.
    WaitingThread {
        set: ProcessorSetId,
        thread: crate::ids::ThreadId,
        queued_on: u32,
    },
}

impl core::fmt::Display for PsetProblem {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match *self {
            PsetProblem::ProcessorInNoSet { cpu, set } => {
                write!(
                    f,
                    "cpu{cpu} is in no processor set (it names set {set}, not live)"
                )
            }
            PsetProblem::ProcessorCount { set, counted, says } => write!(
                f,
                "processor set {set} has {counted} processors, its count says {says}"
            ),
            PsetProblem::FreeSlotCount { slot, says } => {
                write!(f, "free processor-set slot {slot} counts {says} processors")
            }
            PsetProblem::WaitingQueue { set, broken } => {
                write!(f, "waiting queue of processor set {set}: {broken}")
            }
            PsetProblem::WaitingThread {
                set,
                thread,
                queued_on,
            } => write!(
                f,
                "thread {thread} on the waiting queue of processor set {set} has queued_on {queued_on:#x}"
            ),
        }
    }
}

/// Check the processor sets (`checks=`) under the table's lock: every online processor
/// in exactly one live set (a processor names one set, which must be live), each set's
/// processor count equal to the online processors naming it, free slots counting none,
/// the waiting queues intact and their threads saying they wait there.
pub fn check(report: &mut dyn FnMut(PsetProblem)) {
    let mut table = TABLE.lock();
    setmembers::check(&Kernel(&mut table), &mut |w| {
        report(match w {
            setmembers::Wrong::InNoSet { cpu, set } => PsetProblem::ProcessorInNoSet { cpu, set },
            setmembers::Wrong::Count { set, counted, says } => {
                PsetProblem::ProcessorCount { set, counted, says }
            }
        })
    });
    for (slot, state) in table.iter().enumerate() {
        let live = LIVE[slot].load(Ordering::Acquire);
        if live == FREE {
            if !state.slot.in_use() && state.processors != 0 {
                report(PsetProblem::FreeSlotCount {
                    slot,
                    says: state.processors,
                });
            }
            continue;
        }
        let set = ProcessorSetId(live);
        if let Err(broken) = state.waiting.check() {
            report(PsetProblem::WaitingQueue { set, broken });
            continue;
        }
        for t in state.waiting.iter_least_urgent() {
            let queued_on = t.queued_on.load(Ordering::Relaxed);
            if queued_on != WAITING_ON_SET {
                report(PsetProblem::WaitingThread {
                    set,
                    thread: t.id,
                    queued_on,
                });
            }
        }
    }
}
