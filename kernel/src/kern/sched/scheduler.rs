//! Scheduling mechanism (see `mod.rs`): processors, their run queues, the switch, the
//! tick, time accounting. Locks follow `sync::LockLevel`; none is held across a
//! switch. A thread being switched out is protected by its `on_cpu` flag, and a thread is
//! put on a run queue (or handed the CPU) only once that flag is clear: a waker waits for
//! it (`waitq`), a yielding thread is queued again by the next thread on its CPU after the
//! switch (`finish_switch`). So a CPU never waits for another in the middle of a switch.

extern crate alloc;

use super::migrate;
use super::policy::{ProcessorLoad, ThreadHints, may_run, select_processor_by};
use super::pset;
use super::runqueue::{IDLE_PRI, RunQueue};
use super::trace;
use super::waitq::{self, Event, TimerQueue};
use crate::arch::{context, cpu, uspace};
use crate::devtree::MAX_CPUS;
use crate::ids::CpuId;
use crate::kern::irq::{self, Ipi};
use crate::kern::thread::{NO_PROCESSOR, RunState, Thread};
use crate::percpu;
use crate::sync::{IrqSpinLock, LockLevel};
use alloc::sync::Arc;
use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicBool, AtomicU8, AtomicU32, AtomicU64, Ordering};

pub use super::wait::WaitResult;
pub use super::waitq::{assert_wait, clear_wait, thread_block, thread_wakeup};

/// Timer ticks a thread runs before others of its priority get a turn.
pub const QUANTUM_TICKS: u32 = 2;

/// The run-queue level of a depressed thread: below every other, above idle (GNU Mach's
/// `DEPRESSPRI` is its lowest level).
pub const DEPRESS_PRI: u8 = IDLE_PRI - 1;

/// Data only its own CPU touches, with interrupts masked.
pub(super) struct CpuLocal<T>(UnsafeCell<T>);

// SAFETY: each `CpuLocal` is used only by the CPU that owns the processor, with interrupts
// masked (every accessor below runs under `irq_save` or in an exception handler).
unsafe impl<T> Sync for CpuLocal<T> {}

impl<T> CpuLocal<T> {
    pub(super) const fn new(value: T) -> Self {
        CpuLocal(UnsafeCell::new(value))
    }

    /// # Safety
    /// Only on the owning CPU, interrupts masked, no other reference alive.
    #[allow(clippy::mut_from_ref)] // Exclusive by the CPU-ownership rule above.
    pub(super) unsafe fn get(&self) -> &mut T {
        // SAFETY: the caller's contract.
        unsafe { &mut *self.0.get() }
    }
}

pub struct Processor {
    /// The CPU index (set when the CPU comes online).
    index: AtomicU32,
    pub runq: IrqSpinLock<RunQueue<Arc<Thread>>>,
    /// Timeouts of threads that started waiting here (`waitq`).
    pub timers: IrqSpinLock<TimerQueue>,
    current: CpuLocal<Option<Arc<Thread>>>,
    idle: CpuLocal<Option<Arc<Thread>>>,
    /// A thread that exited on this CPU, freed by the next thread to run here.
    zombie: CpuLocal<Option<Arc<Thread>>>,
    /// A thread that yielded or was preempted here, put back on the run queue by the next
    /// thread to run here once its context is saved (a queued thread is never on a CPU).
    requeue: CpuLocal<Option<Arc<Thread>>>,
    pub online: AtomicBool,
    /// Its processor set (a `ProcessorSetId`), written under the set table's lock
    /// (`pset`); placement and the switch read it without a lock.
    pub pset: AtomicU32,
    pub running_idle: AtomicBool,
    pub current_priority: AtomicU8,
    /// Threads on the run queue, mirrored from it under its lock so that placement reads
    /// every processor's load without taking any lock.
    pub nr_queued: AtomicU32,
    /// The AST: reschedule at the next return to user mode (or in the idle loop).
    pub need_resched: AtomicBool,
    pub context_switches: AtomicU64,
    pub idle_ticks: AtomicU64,
    /// Counter ticks spent in the idle thread, up to its last stretch's end.
    pub idle_time: AtomicU64,
    /// The counter when the idle thread last started running here (the stretch in progress
    /// while `running_idle`, which readers of `idle_time` add).
    pub idle_since: AtomicU64,
    /// Migration and balancing counters (`migrate`).
    pub counters: migrate::Counters,
}

impl Processor {
    /// Its CPU.
    pub fn id(&self) -> CpuId {
        CpuId::new(self.index.load(Ordering::Relaxed) as usize)
    }

    const fn new() -> Self {
        Processor {
            index: AtomicU32::new(0),
            runq: IrqSpinLock::new(LockLevel::RunQueue, RunQueue::new()),
            timers: IrqSpinLock::new(LockLevel::TimerQueue, TimerQueue::new()),
            current: CpuLocal(UnsafeCell::new(None)),
            idle: CpuLocal(UnsafeCell::new(None)),
            zombie: CpuLocal(UnsafeCell::new(None)),
            requeue: CpuLocal(UnsafeCell::new(None)),
            online: AtomicBool::new(false),
            pset: AtomicU32::new(0),
            running_idle: AtomicBool::new(true),
            current_priority: AtomicU8::new(IDLE_PRI),
            nr_queued: AtomicU32::new(0),
            need_resched: AtomicBool::new(false),
            context_switches: AtomicU64::new(0),
            idle_ticks: AtomicU64::new(0),
            idle_time: AtomicU64::new(0),
            idle_since: AtomicU64::new(0),
            counters: migrate::Counters::new(),
        }
    }

    /// Queue `thread` on processor `index` (this one): its context is saved (`on_cpu`
    /// clear) and it is committed to run.
    fn enqueue(&self, cpu: CpuId, thread: Arc<Thread>) {
        let priority = thread.sched_priority.load(Ordering::Relaxed);
        let mut rq = self.runq.lock();
        thread
            .queued_on
            .store(cpu.index() as u32, Ordering::Relaxed);
        rq.enqueue(thread, priority);
        self.nr_queued.store(rq.len() as u32, Ordering::Relaxed);
    }
}

static PROCESSORS: [Processor; MAX_CPUS] = [const { Processor::new() }; MAX_CPUS];

pub fn processor(cpu: CpuId) -> &'static Processor {
    &PROCESSORS[cpu.index().min(MAX_CPUS - 1)]
}

/// The processor a thread field names (`queued_on`, `last_processor`), if any (not
/// `NO_PROCESSOR`, nor `pset::WAITING_ON_SET` for a thread waiting on its set's queue).
fn named(raw: u32) -> Option<CpuId> {
    ((raw as usize) < MAX_CPUS).then(|| CpuId::new(raw as usize))
}

/// Whether `thread` may not run on `me`: it is bound to another processor, or
/// `thread_migrate` sent it to another, or it belongs to another processor set and is not
/// bound here (one of them moved while it was queued or running). The common case (no
/// binding, no migration asked, no set ever created) costs three loads.
#[inline]
fn misplaced(me: &Processor, thread: &Thread) -> bool {
    let bound = thread.bound_processor.load(Ordering::Relaxed);
    let sent = thread.migrate_to.load(Ordering::Relaxed);
    if bound == NO_PROCESSOR && sent == NO_PROCESSOR && !pset::sets_in_use() {
        return false;
    }
    misplaced_slow(me, thread, bound, sent)
}

#[inline(never)]
fn misplaced_slow(me: &Processor, thread: &Thread, bound: u32, sent: u32) -> bool {
    if thread.is_idle {
        return false;
    }
    let here = me.index.load(Ordering::Relaxed);
    if bound != NO_PROCESSOR {
        // A bound thread whose processor is offline runs where it is (`setrun`).
        return bound != here
            && processor(CpuId::new(bound as usize))
                .online
                .load(Ordering::Relaxed);
    }
    (sent != NO_PROCESSOR && sent != here)
        || thread.processor_set.load(Ordering::Relaxed) != me.pset.load(Ordering::Relaxed)
}

#[inline]
pub(super) fn this_processor() -> &'static Processor {
    let p = percpu::current().processor.load(Ordering::Relaxed);
    if p == 0 {
        return processor(percpu::current_cpu());
    }
    // SAFETY: only `init_this_cpu` sets the field, to this CPU's element of `PROCESSORS`.
    unsafe { &*(p as *const Processor) }
}

/// Make the code running on this CPU its idle thread and the processor schedulable.
pub fn init_this_cpu() {
    let saved = cpu::irq_save();
    let me = this_processor();
    // Room in the run queue for every thread there can be, so that queueing one never
    // allocates (what user tasks make the kernel allocate is charged to them, `mm::kmem`).
    if me
        .runq
        .lock()
        .reserve(crate::kern::thread::MAX_THREADS as usize)
        .is_err()
    {
        panic!(
            "no memory for the run queue of cpu{}",
            percpu::current_cpu()
        );
    }
    migrate::init_processor(me);
    trace::init_cpu(percpu::current_cpu());
    let idle = Thread::new_idle();
    idle.last_processor
        .store(percpu::current_cpu().index() as u32, Ordering::Relaxed);
    // SAFETY: our own processor, interrupts masked.
    unsafe {
        *me.idle.get() = Some(idle.clone());
        *me.current.get() = Some(idle);
    }
    me.index
        .store(percpu::current_cpu().index() as u32, Ordering::Relaxed);
    percpu::current()
        .processor
        .store(me as *const Processor as usize, Ordering::Relaxed);
    // In the default set, counted there and online in one step.
    pset::processor_online(percpu::current_cpu());
    cpu::irq_restore(saved);
}

/// The thread running on this CPU.
pub fn current_thread() -> Arc<Thread> {
    let saved = cpu::irq_save();
    // SAFETY: our own processor, interrupts masked.
    let t = unsafe { this_processor().current.get().clone() };
    cpu::irq_restore(saved);
    t.expect("every online CPU has a current thread")
}

/// The running thread, borrowed without touching its reference count (the trap path's
/// way to it: an `Arc` clone costs two atomic read-modify-writes per trap).
///
/// The thread cannot be freed while its own kernel code runs: until it exits (and an
/// exiting thread never returns to its caller), something holds a reference to it: the
/// processor's `current` slot while it runs, a run queue or a wait list while it does not.
pub struct CurrentThread(core::mem::ManuallyDrop<Arc<Thread>>);

impl core::ops::Deref for CurrentThread {
    type Target = Arc<Thread>;
    fn deref(&self) -> &Arc<Thread> {
        &self.0
    }
}

/// The running thread, borrowed (see [`CurrentThread`]). Interrupts must be masked (as
/// in every exception handler), so that the thread is not switched while it is read.
#[inline]
pub fn current_borrowed() -> CurrentThread {
    // SAFETY: our own processor, interrupts masked (the caller's contract).
    let current = unsafe { this_processor().current.get().as_ref() }
        .expect("every online CPU has a current thread");
    // SAFETY: a copy of the `Arc` that is never dropped, so the count stays right; the
    // thread outlives the borrow (see `CurrentThread`).
    CurrentThread(core::mem::ManuallyDrop::new(unsafe {
        Arc::from_raw(Arc::as_ptr(current))
    }))
}

/// Wake `cpu` so it looks at its run queue and AST.
pub fn kick(cpu: CpuId) {
    if cpu == percpu::current_cpu() {
        this_processor().need_resched.store(true, Ordering::Release);
    } else {
        processor(cpu).need_resched.store(true, Ordering::Release);
        irq::send_ipi(cpu, Ipi::Ping);
    }
}

/// Start a thread created stopped (`Thread::new_user`).
pub fn thread_start(thread: Arc<Thread>) {
    thread.started.store(true, Ordering::SeqCst);
    let start = thread.wait.lock().start();
    if start {
        setrun(thread);
    }
}

/// Make `thread` runnable on the processor the placement policy picks among those of its
/// processor set, or queue it on its set's waiting queue if the set has none (`pset`).
/// The thread is committed to run (`TH_RUN`), on no run queue, and no CPU is still saving
/// it. Loads and sets are read from per-processor atomics: no lock but the target's run
/// queue is taken, so a wake-up costs the same whatever the number of CPUs (but for the
/// scan of their loads).
pub fn setrun(thread: Arc<Thread>) {
    let n = percpu::cpu_count();
    let mut thread = thread;
    let mut tries = 0;
    let woke = thread.state() == RunState::Waiting;
    let now = crate::arch::timer::counter();
    let target = loop {
        let last = thread.last_processor.load(Ordering::Relaxed);
        let bound = thread.bound_processor.load(Ordering::Relaxed);
        let bound = (bound != NO_PROCESSOR).then_some(bound as usize);
        let set = thread.processor_set.load(Ordering::Relaxed);
        // Sent somewhere by `thread_migrate` (and allowed there still): it goes there.
        let sent = thread.migrate_to.load(Ordering::Relaxed);
        if sent != NO_PROCESSOR {
            let p = processor(CpuId::new(sent as usize));
            if p.online.load(Ordering::Acquire)
                && may_run(p.pset.load(Ordering::Relaxed), set, bound, sent as usize)
            {
                break CpuId::new(sent as usize);
            }
            thread.migrate_to.store(NO_PROCESSOR, Ordering::Relaxed);
        }
        // Each processor's load is read when the policy asks for it: no snapshot of every
        // possible CPU on the kernel stack.
        let load_of = |i: usize| {
            let p = processor(CpuId::new(i));
            let queued = p.nr_queued.load(Ordering::Relaxed) as usize;
            let idle = p.running_idle.load(Ordering::Acquire);
            ProcessorLoad {
                eligible: p.online.load(Ordering::Acquire)
                    && may_run(p.pset.load(Ordering::Relaxed), set, bound, i),
                idle: idle && queued == 0,
                load: queued + usize::from(!idle),
            }
        };
        let (cache_warmth, tolerance) = migrate::warmth_hint(&thread, now);
        let hints = ThreadHints {
            bound,
            last_processor: (last != NO_PROCESSOR).then_some(last as usize),
            cache_warmth,
            tolerance,
        };
        match select_processor_by(n, load_of, hints) {
            Some(target) => {
                if woke {
                    migrate::note_wakeup(last, CpuId::new(target));
                }
                break CpuId::new(target);
            }
            // A bound thread whose processor is not online runs here (as before sets).
            None if bound.is_some() => break percpu::current_cpu(),
            // Its set has no processor, or had none when the loads were read: wait for
            // one, or look again (a processor arrived, or the set was destroyed and the
            // thread is in the default set now, which always has the boot processor).
            None if tries < 3 => match pset::wait_for_processor(thread) {
                Ok(()) => return,
                Err(back) => {
                    thread = back;
                    tries += 1;
                }
            },
            None => break crate::kern::boot::boot_cpu(),
        }
    };
    let priority = thread.sched_priority.load(Ordering::Relaxed);
    if trace::on() {
        trace::placed(&thread, target, woke);
    }
    thread.set_state(RunState::Running);
    let p = processor(target);
    p.enqueue(target, thread);
    // Store then load, against the idle loop's store (`running_idle`) then load
    // (`nr_queued`): with a full fence on both sides, either this sees the processor idle
    // and kicks it, or its idle loop sees the thread queued; never neither.
    core::sync::atomic::fence(Ordering::SeqCst);
    if p.running_idle.load(Ordering::Acquire)
        || priority < p.current_priority.load(Ordering::Acquire)
    {
        kick(target);
    }
}

/// `setrun` for a thread found on a processor outside its set: rare, and kept out of line
/// so that the switch path around it stays as small as it was.
#[cold]
#[inline(never)]
fn place_elsewhere(thread: Arc<Thread>) {
    note_set_change(&thread);
    setrun(thread);
}

/// A thread dequeued here that may not run here: placed again, and the idle thread runs
/// instead (it looks at the queue again at once).
#[cold]
#[inline(never)]
fn reject(me: &Processor, thread: Arc<Thread>) -> Arc<Thread> {
    note_set_change(&thread);
    setrun(thread);
    // SAFETY: our own processor, interrupts masked (called from `schedule`).
    unsafe { me.idle.get().clone() }.expect("an idle thread")
}

/// For the trace: a misplaced thread neither bound nor sent anywhere moves because its
/// processor set (or its processor's) changed.
fn note_set_change(thread: &Thread) {
    if trace::on()
        && thread.bound_processor.load(Ordering::Relaxed) == NO_PROCESSOR
        && thread.migrate_to.load(Ordering::Relaxed) == NO_PROCESSOR
    {
        trace::note_move_if_unset(thread, mach_abi::trace::Reason::SetChange);
    }
}

/// Why the running thread gives up the CPU.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Switch {
    /// Still runnable: back to the tail of its queue.
    Yield,
    /// Waiting (after `assert_wait`); whoever ends the wait makes it runnable.
    Block,
    /// Gone; its resources are freed once this CPU has left it.
    Exit,
}

/// Give up the CPU. Returns when the thread is chosen again (never for `Exit`), or at
/// once if it need not give it up: a `Yield` with nothing as urgent queued, a `Block`
/// whose wait already ended. Returns whether it switched.
pub fn schedule(how: Switch) -> bool {
    let saved = cpu::irq_save();
    let me = this_processor();
    me.need_resched.store(false, Ordering::Relaxed);
    // SAFETY: our own processor, interrupts masked.
    let prev_ptr = Arc::as_ptr(unsafe { me.current.get().as_ref() }.expect("a current thread"));
    // SAFETY: the `current` slot, or (once moved there below) this processor's run queue,
    // holds a reference until the switch is over (see `switch_to`).
    let prev = unsafe { &*prev_ptr };
    if how == Switch::Block && !commit_block(prev) {
        cpu::irq_restore(saved);
        return false;
    }
    // A yielding thread gives way to queued threads at least as urgent and goes back on
    // the queue; the idle thread gives way to any. A thread of another processor set
    // (it or this processor moved) queued here is found when dequeued, below.
    // One that may not run here any more leaves instead (through `finish_switch`).
    let requeue = how == Switch::Yield && !prev.is_idle && !misplaced(me, prev);
    let prev_priority = prev.sched_priority.load(Ordering::Relaxed);
    let next = {
        let mut rq = me.runq.lock();
        let limit = if requeue { prev_priority } else { IDLE_PRI };
        let next = rq.dequeue_at_or_above(limit);
        if let Some(next) = &next {
            next.queued_on.store(NO_PROCESSOR, Ordering::Relaxed);
            if requeue {
                // Back on this processor's queue while still on this CPU: only this CPU
                // takes threads off its queue to run them, and it does so only after this
                // switch; a CPU taking it from elsewhere skips it while `on_cpu`
                // (`switch_to_thread`).
                // SAFETY: our own processor, interrupts masked.
                let owned = unsafe { me.current.get().take() }.expect("a current thread");
                prev.queued_on
                    .store(me.index.load(Ordering::Relaxed), Ordering::Relaxed);
                rq.enqueue(owned, prev_priority);
            }
            me.nr_queued.store(rq.len() as u32, Ordering::Relaxed);
        }
        next
    };
    let next = match next {
        // A thread of another set, queued before one of them moved: placed again (it is
        // off every CPU), and this CPU runs its idle thread, which looks at the queue again.
        Some(next) if misplaced(me, &next) => reject(me, next),
        Some(next) => next,
        // With nothing else to run a yielding thread goes on, unless it may not run here:
        // then this CPU goes idle and the thread is placed again once saved
        // (`finish_switch`).
        None if how == Switch::Yield && !misplaced(me, prev) => {
            cpu::irq_restore(saved);
            return false;
        }
        // SAFETY: as above.
        None => unsafe { me.idle.get().clone() }.expect("an idle thread"),
    };
    switch_to(me, how, next, prev_ptr);
    cpu::irq_restore(saved);
    true
}

/// The running thread is about to block: whether it really does (its wait is still on).
fn commit_block(prev: &Thread) -> bool {
    let mut st = prev.wait.lock();
    if !st.commit_block() {
        return false;
    }
    prev.set_state(RunState::Waiting);
    true
}

/// Hand the CPU to `next`, a thread the caller chose (Mach's `thread_invoke`): for IPC
/// handoff and `thread_switch` with a hint. `next` must be committed to run, on no run
/// queue and off every CPU. The running thread is dealt with as `how` says (`Block` after
/// `assert_wait`: if the wait already ended, `next` is queued instead and the caller goes
/// on). A `next` of another processor set is placed in its set instead, and the running
/// thread gives up the CPU through `schedule`. Returns when the running thread runs again.
pub fn thread_invoke(how: Switch, next: Arc<Thread>) {
    let saved = cpu::irq_save();
    let me = this_processor();
    // SAFETY: our own processor, interrupts masked.
    let prev = unsafe { me.current.get().as_ref() }.expect("a current thread");
    // A thread of another processor set is not handed this CPU: it is placed in its set,
    // and the caller gives up the CPU the ordinary way.
    if misplaced(me, &next) {
        cpu::irq_restore(saved);
        place_elsewhere(next);
        schedule(how);
        return;
    }
    if how == Switch::Block && !commit_block(prev) {
        cpu::irq_restore(saved);
        setrun(next);
        return;
    }
    let prev_ptr = Arc::as_ptr(prev);
    if trace::on()
        && next.last_processor.load(Ordering::Relaxed) != me.index.load(Ordering::Relaxed)
    {
        trace::note_move(&next, mach_abi::trace::Reason::Handoff);
    }
    switch_to(me, how, next, prev_ptr);
    cpu::irq_restore(saved);
}

/// The switch itself, from `prev` (the running thread) to `next`: interrupts masked, no
/// lock held. The `current` slot still holds `prev` unless `schedule` moved it onto this
/// processor's run queue (a yield); a yielding thread still in the slot is queued by the
/// next thread here once it is saved (`finish_switch`).
fn switch_to(me: &'static Processor, how: Switch, next: Arc<Thread>, prev: *const Thread) {
    let held = crate::sync::held_levels();
    if held != 0 {
        panic!("a context switch with locks held (levels {held:#x})");
    }
    // SAFETY: our own processor, interrupts masked.
    let prev_owned = unsafe { me.current.get().take() };
    if core::ptr::eq(prev, Arc::as_ptr(&next)) {
        // SAFETY: as above.
        unsafe { *me.current.get() = prev_owned };
        return;
    }
    // SAFETY: `prev` is kept alive by `prev_owned` or by this processor's run queue, from
    // which only this CPU takes it to run, after this switch.
    let prev = unsafe { &*prev };
    // A thread reaches another CPU's run queue (or a handoff) only once its context is
    // saved, and this CPU's own queue holds an unsaved thread only while this CPU switches
    // away from it: no CPU ever waits here for another.
    if next.on_cpu.load(Ordering::Acquire) {
        panic!("thread {} chosen to run while still on a CPU", next.id);
    }
    next.on_cpu.store(true, Ordering::Relaxed);
    next.set_state(RunState::Running);
    let here = me.index.load(Ordering::Relaxed);
    let now = crate::arch::timer::counter();
    migrate::note_switch(me, here, prev, &next, now);
    if trace::on() {
        trace::switch(here, how, prev, &next, now);
    }
    next.last_processor.store(here, Ordering::Relaxed);
    next.quantum_left.store(QUANTUM_TICKS, Ordering::Relaxed);
    if next.is_idle {
        // Before `running_idle`: a reader that sees it set sees this stretch's start.
        me.idle_since.store(now, Ordering::Relaxed);
    }
    me.running_idle.store(next.is_idle, Ordering::Release);
    me.current_priority.store(
        next.sched_priority.load(Ordering::Relaxed),
        Ordering::Release,
    );
    add(&me.context_switches, 1);

    // Time: the stretch since the last entry, exit or switch was kernel time for `prev`
    // (or idle time), and `next`'s stretch starts now.
    let since = now.saturating_sub(prev.time_stamp.load(Ordering::Relaxed));
    if prev.is_idle {
        add(&me.idle_time, since);
    } else {
        add(&prev.system_time, since);
    }
    next.time_stamp.store(now, Ordering::Relaxed);

    if !prev.is_idle {
        // SAFETY: `prev` runs here (on_cpu), so its saved state is ours to write.
        unsafe {
            context::save_fp(prev.fp_ptr());
            *prev.tpidr_ptr() = cpu::user_tls();
        }
    }
    // Threads of one task share its address space (and idle threads have none): only a
    // change of task loads another one, checking its ASID's generation on the way.
    if !Arc::ptr_eq(&next.task, &prev.task) {
        uspace::activate(next.task.space.as_deref());
    }
    if !next.is_idle {
        // SAFETY: `next` is claimed by this CPU (on_cpu), its saved state is stable.
        unsafe {
            context::restore_fp(next.fp_ptr());
            cpu::set_user_tls(*next.tpidr_ptr());
        }
    }
    let prev_context = prev.context_ptr();
    let next_context = next.context_ptr() as *const _;
    let prev_on_cpu: *const AtomicBool = &prev.on_cpu;
    match how {
        Switch::Exit => {
            prev.set_state(RunState::Halted);
            // SAFETY: as above. The zombie keeps `prev` alive until the switch is over.
            unsafe { *me.zombie.get() = prev_owned };
        }
        Switch::Yield if !prev.is_idle && prev_owned.is_some() => {
            // SAFETY: as above; taken back by `finish_switch` once `prev` is saved.
            unsafe { *me.requeue.get() = prev_owned };
        }
        // A blocked thread is kept alive by whatever will end its wait (an event queue or
        // a timer queue holds a reference); a yielding one by its run queue; an idle
        // thread by its processor.
        Switch::Block | Switch::Yield => drop(prev_owned),
    }
    // SAFETY: as above. `current` keeps `next` alive.
    unsafe { *me.current.get() = Some(next) };
    // SAFETY: `prev_context` is the running thread's (kept alive by a wait queue, the
    // requeue slot, the zombie slot or its processor), `next_context` belongs to a thread
    // no other CPU runs (on_cpu), and interrupts are masked.
    unsafe { context::switch(prev_context, next_context, &*prev_on_cpu) };
    finish_switch();
}

/// Add to a counter only this CPU writes (a plain load and store: no atomic read-modify-
/// write on the hot path).
fn add(counter: &AtomicU64, amount: u64) {
    counter.store(
        counter.load(Ordering::Relaxed).wrapping_add(amount),
        Ordering::Relaxed,
    );
}

/// Run by the thread switched to, first thing: free what the previous thread left, and
/// queue again the one that yielded (its context is saved now).
pub extern "C" fn finish_switch() {
    let me = this_processor();
    // SAFETY: our own processor, interrupts are still masked from the switch.
    let (zombie, requeue) = unsafe { (me.zombie.get().take(), me.requeue.get().take()) };
    if let Some(thread) = requeue {
        if misplaced(me, &thread) {
            place_elsewhere(thread);
        } else {
            me.enqueue(me.id(), thread);
        }
    }
    drop(zombie);
}

/// A new user thread's first code on its own stack, on the way to user mode.
pub extern "C" fn thread_first_run() {
    finish_switch();
    let me = current_borrowed();
    return_to_user(&me);
}

/// At every entry to the kernel from user mode: charge the time since the last stamp to
/// the running thread as user time, and return it (borrowed) for the handler. Inlined
/// into the exception handlers: a call here and in [`return_to_user`] costs every trap
/// some 10 instructions.
#[inline(always)]
pub fn enter_from_user() -> CurrentThread {
    let t = current_borrowed();
    charge(&t.user_time, &t);
    t
}

/// At every return to user mode of `thread` (the running thread): act on the AST, then
/// charge the time since the last stamp as kernel time.
#[inline(always)]
pub fn return_to_user(thread: &Thread) {
    if crate::kern::task::orphans_pending() {
        crate::kern::task::reap_orphans();
    }
    ast_check(thread);
    charge(&thread.system_time, thread);
}

/// Add the time since `thread`'s stamp to `account` and restamp.
#[inline]
fn charge(account: &AtomicU64, thread: &Thread) {
    let now = crate::arch::timer::counter();
    add(
        account,
        now.saturating_sub(thread.time_stamp.load(Ordering::Relaxed)),
    );
    thread.time_stamp.store(now, Ordering::Relaxed);
}

/// End the running thread (it must not be an idle thread).
pub fn thread_exit() -> ! {
    let me = current_thread();
    me.detach_from_task();
    // Tasks its task's end left unreachable end now (`kern::task`).
    crate::kern::task::reap_orphans();
    me.wait.lock().exit();
    waitq::cancel_depress(&me);
    // Whoever waits for it to stop need wait no longer.
    thread_wakeup(me.stopped_event(), true);
    drop(me);
    schedule(Switch::Exit);
    unreachable!("an exited thread was scheduled again");
}

/// Yield to threads of equal or higher priority. Returns whether any were waiting.
pub fn yield_now() -> bool {
    schedule(Switch::Yield)
}

/// `thread_switch` with a hint: run `target` (a thread of the caller's choosing) now if it
/// is waiting on a run queue, handing it this CPU directly; the caller yields (`Yield`) or
/// blocks in the wait it asserted (`Block`). Returns whether it did.
pub fn switch_to_thread(target: &Arc<Thread>, how: Switch) -> bool {
    let Some(cpu) = named(target.queued_on.load(Ordering::Relaxed)) else {
        return false;
    };
    let p = processor(cpu);
    let taken = {
        let mut rq = p.runq.lock();
        // A thread still being switched out on its CPU is not ours to run yet.
        let taken =
            rq.remove_first(|t| Arc::ptr_eq(t, target) && !t.on_cpu.load(Ordering::Acquire));
        if taken.is_some() {
            target.queued_on.store(NO_PROCESSOR, Ordering::Relaxed);
            p.nr_queued.store(rq.len() as u32, Ordering::Relaxed);
        }
        taken
    };
    match taken {
        Some(next) => {
            thread_invoke(how, next);
            true
        }
        None => false,
    }
}

/// Depress the running thread's priority below every other thread's until `deadline`
/// (or `depress_abort`), for `thread_switch(SWITCH_OPTION_DEPRESS)`.
pub fn depress_begin(deadline: u64) {
    let me = current_thread();
    me.depressed.store(true, Ordering::Relaxed);
    me.sched_priority.store(DEPRESS_PRI, Ordering::Relaxed);
    this_processor()
        .current_priority
        .store(DEPRESS_PRI, Ordering::Relaxed);
    waitq::arm_depress(&me, deadline);
}

/// End `thread`'s priority depression now (its timer ran out, or it is aborted).
pub fn depress_end(thread: &Arc<Thread>) {
    if !thread.depressed.swap(false, Ordering::Relaxed) {
        return;
    }
    let base = thread.base_priority.load(Ordering::Relaxed);
    thread.sched_priority.store(base, Ordering::Relaxed);
    // A queued thread moves to the level of its restored priority.
    if let Some(cpu) = named(thread.queued_on.load(Ordering::Relaxed)) {
        let p = processor(cpu);
        let mut rq = p.runq.lock();
        if let Some(t) = rq.remove_first(|t| Arc::ptr_eq(t, thread)) {
            rq.enqueue(t, base);
            let preempts = base < p.current_priority.load(Ordering::Relaxed);
            drop(rq);
            if preempts {
                kick(cpu);
            }
        }
    } else if named(thread.last_processor.load(Ordering::Relaxed)) == Some(percpu::current_cpu())
        && thread.on_cpu.load(Ordering::Relaxed)
    {
        this_processor()
            .current_priority
            .store(base, Ordering::Relaxed);
    }
}

/// Set `thread`'s base priority (`thread_priority`, `thread_max_priority`): a depressed
/// thread gets it when its depression ends; otherwise it runs at it now, and a queued
/// thread moves to its new level.
pub fn set_priority(thread: &Arc<Thread>, priority: u8) {
    thread.base_priority.store(priority, Ordering::Relaxed);
    if thread.depressed.load(Ordering::Relaxed) {
        return;
    }
    thread.sched_priority.store(priority, Ordering::Relaxed);
    if let Some(cpu) = named(thread.queued_on.load(Ordering::Relaxed)) {
        let p = processor(cpu);
        let mut rq = p.runq.lock();
        if let Some(t) = rq.remove_first(|t| Arc::ptr_eq(t, thread)) {
            rq.enqueue(t, priority);
            let preempts = priority < p.current_priority.load(Ordering::Relaxed);
            drop(rq);
            if preempts {
                kick(cpu);
            }
        }
    }
}

/// `thread_depress_abort`: end the depression of `thread` now.
pub fn depress_abort(thread: &Arc<Thread>) {
    waitq::cancel_depress(thread);
    depress_end(thread);
}

/// The timer tick's share of scheduling: run this processor's expired timeouts and count
/// down the quantum. Time is not charged here (see `enter_from_user`).
pub fn tick() {
    waitq::expire_timers(percpu::current_cpu(), crate::arch::timer::counter());
    let me = this_processor();
    // SAFETY: our own processor; called from the interrupt handler (interrupts masked).
    let Some(current) = (unsafe { me.current.get().as_ref() }) else {
        return;
    };
    migrate::on_tick(me, current);
    let queued = me.nr_queued.load(Ordering::Relaxed) != 0;
    // A thread of another set (moved while it ran, or handed this CPU) leaves.
    if misplaced(me, current) {
        me.need_resched.store(true, Ordering::Release);
    }
    if current.is_idle {
        add(&me.idle_ticks, 1);
        if queued {
            me.need_resched.store(true, Ordering::Release);
        }
        return;
    }
    let left = current.quantum_left.load(Ordering::Relaxed);
    if left <= 1 {
        current.quantum_left.store(QUANTUM_TICKS, Ordering::Relaxed);
        if queued {
            me.need_resched.store(true, Ordering::Release);
        }
    } else {
        current.quantum_left.store(left - 1, Ordering::Relaxed);
    }
}

/// Terminate, stop or reschedule `thread`, the running thread, if asked to (on the way to
/// user mode). The common case, nothing asked, is a few loads inlined into the caller.
#[inline(always)]
pub fn ast_check(thread: &Thread) {
    if thread.should_terminate()
        || thread.hold_count.load(Ordering::Relaxed) != 0
        || this_processor().need_resched.load(Ordering::Relaxed)
    {
        ast_take(thread);
    }
}

/// [`ast_check`]'s work, out of line.
#[inline(never)]
fn ast_take(thread: &Thread) {
    if thread.should_terminate() {
        thread_exit();
    }
    if thread.hold_count.load(Ordering::SeqCst) != 0 {
        halt_self();
    }
    if this_processor().need_resched.load(Ordering::Acquire) {
        schedule(Switch::Yield);
        // Held or asked to end while it waited for a processor: not back to user mode.
        if thread.should_terminate() {
            thread_exit();
        }
        if thread.hold_count.load(Ordering::SeqCst) != 0 {
            halt_self();
        }
    }
}

/// Stop the running thread here, at its return to user mode, while it is held (GNU Mach
/// `thread_halt_self`): its user state stays saved in its trap frame for
/// `thread_get_state`/`thread_set_state` until the last hold is released, or it ends here
/// if it is terminated meanwhile.
fn halt_self() {
    let me = current_thread();
    loop {
        if me.should_terminate() {
            drop(me);
            thread_exit();
        }
        if me.hold_count.load(Ordering::SeqCst) == 0 {
            break;
        }
        if assert_wait(Some(me.resume_event()), None, true).is_err() {
            break;
        }
        me.parked.store(true, Ordering::SeqCst);
        thread_wakeup(me.stopped_event(), true);
        // Released (or terminated) between the check and the wait: do not block.
        if me.hold_count.load(Ordering::SeqCst) == 0 || me.should_terminate() {
            clear_wait(&me, None, WaitResult::Awakened);
        } else {
            thread_block();
        }
        me.parked.store(false, Ordering::SeqCst);
    }
}

/// Wait until `target` (not the running thread) is stopped (GNU Mach `thread_dowait`):
/// see `Thread::is_stopped`. A thread held by the caller gets there at its next return to
/// user mode; one that is not held may never. Returns false if the caller was interrupted
/// (it is being terminated) first.
pub fn thread_dowait(target: &Arc<Thread>) -> bool {
    let me = current_thread();
    loop {
        if target.is_stopped() {
            return true;
        }
        if me.should_terminate() {
            return false;
        }
        // A thread that blocks in an interruptible wait says nothing: look again now and
        // then as well as when it parks.
        let recheck = crate::arch::timer::counter().saturating_add(ms_to_ticks(5));
        if assert_wait(Some(target.stopped_event()), Some(recheck), true).is_err() {
            return false;
        }
        if target.is_stopped() {
            clear_wait(&me, None, WaitResult::Awakened);
            return true;
        }
        if thread_block() == WaitResult::Interrupted {
            return false;
        }
    }
}

/// Wait until `target` (not the running thread), asked to terminate, has left its task
/// (`Thread::has_exited`): GNU Mach's `thread_terminate` halts its victim before it
/// returns. A thread gets there at its next return to user mode (`request_termination`
/// ends any interruptible wait it is in). Returns false if the caller was interrupted (it
/// is being terminated) first.
pub fn thread_wait_exit(target: &Arc<Thread>) -> bool {
    let me = current_thread();
    loop {
        if target.has_exited() {
            return true;
        }
        if me.should_terminate() {
            return false;
        }
        // `thread_exit` wakes the stopped event; look again now and then as well, as
        // `thread_dowait` does.
        let recheck = crate::arch::timer::counter().saturating_add(ms_to_ticks(5));
        if assert_wait(Some(target.stopped_event()), Some(recheck), true).is_err() {
            return false;
        }
        if target.has_exited() {
            clear_wait(&me, None, WaitResult::Awakened);
            return true;
        }
        if thread_block() == WaitResult::Interrupted {
            return false;
        }
    }
}

/// The idle loop of a CPU (its boot code becomes its idle thread). `on_idle` runs each
/// time the CPU finds nothing to do, before it sleeps.
pub fn idle_loop(on_idle: fn()) -> ! {
    let me = this_processor();
    loop {
        cpu::irq_disable();
        // Pairs with the fence in `setrun` (see there).
        core::sync::atomic::fence(Ordering::SeqCst);
        if me.nr_queued.load(Ordering::Acquire) != 0 || migrate::idle_balance() {
            schedule(Switch::Yield);
            continue;
        }
        on_idle();
        if trace::on() {
            trace::record(mach_abi::trace::Kind::IdleEnter, 0, 0, 0, 0);
        }
        // With interrupts masked, `wfi` still wakes on a pending one, which is taken as
        // soon as they are unmasked: no wake-up is lost between the check and the sleep
        // (an enqueue on this processor is followed by an IPI).
        cpu::wait_for_interrupt();
        if trace::on() {
            trace::record(mach_abi::trace::Kind::IdleExit, 0, 0, 0, 0);
        }
        cpu::irq_enable();
    }
}

static TASKS_GONE: AtomicBool = AtomicBool::new(false);

/// The last user task has been freed: tell the boot CPU.
pub fn note_tasks_gone() {
    TASKS_GONE.store(true, Ordering::Release);
    kick(crate::kern::boot::boot_cpu());
}

/// Whether every user task has gone (and been freed).
pub fn tasks_gone() -> bool {
    TASKS_GONE.load(Ordering::Acquire)
}

/// Block the running thread until the counter reaches `deadline`, or it is interrupted
/// (it must terminate). Returns how the wait ended.
pub fn sleep_until(deadline: u64) -> WaitResult {
    match assert_wait(None, Some(deadline), true) {
        Ok(_) => thread_block(),
        Err(_) => WaitResult::Interrupted,
    }
}

/// Counter ticks in `ms` milliseconds.
pub fn ms_to_ticks(ms: u64) -> u64 {
    let freq = crate::arch::timer::frequency();
    ((ms as u128 * freq as u128) / 1000).min(u64::MAX as u128) as u64
}

/// Counter ticks as nanoseconds.
pub fn ticks_to_ns(ticks: u64) -> u64 {
    let freq = crate::arch::timer::frequency().max(1);
    ((ticks as u128 * 1_000_000_000) / freq as u128).min(u64::MAX as u128) as u64
}

/// Block the running thread for `ms` milliseconds.
pub fn sleep_ms(ms: u64) -> WaitResult {
    sleep_until(crate::arch::timer::counter().saturating_add(ms_to_ticks(ms)))
}

/// Wait on `event` with an optional timeout in milliseconds (the temporary event traps
/// stand in for gsync with it).
pub fn wait_event(event: Event, timeout_ms: Option<u64>) -> WaitResult {
    let deadline =
        timeout_ms.map(|ms| crate::arch::timer::counter().saturating_add(ms_to_ticks(ms)));
    match assert_wait(Some(event), deadline, true) {
        Ok(_) => thread_block(),
        Err(_) => WaitResult::Interrupted,
    }
}
