//! Threads: a kernel stack (16 KiB, guard gap below), the saved kernel context, the user
//! FP/SIMD state and TLS register, scheduling attributes and statistics. A user thread
//! starts by returning to user mode from a trap frame built at the top of its stack.

extern crate alloc;

use crate::arch::context::{self, Context, FpState};
use crate::arch::exception::TrapFrame;
use crate::arch::mmu;
use crate::ids::ThreadId;
use crate::ipc::{KObject, KObjectKind, Port};
use crate::kern::sched::runqueue::BASEPRI_USER;
use crate::kern::sched::wait::{WaitResult, WaitState};
use crate::kern::sched::waitq::{Event, TimerKind, TimerNode, WaitLinks};
use crate::kern::task::Task;
use crate::mm::kmem::{self, BTREE_BLOCKS_PER_ENTRY, Charge};
use crate::mm::layout::{KERNEL_STACK_SIZE, PAGE_SIZE, stack_slot};
use crate::mm::{PhysAddr, VirtAddr, frame};
use crate::sync::{IrqSpinLock, LockLevel};
use alloc::sync::Arc;
use arrayvec::ArrayVec;
use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicBool, AtomicU8, AtomicU32, AtomicU64, Ordering};
use mach_abi::KernReturn;

/// Kernel stack slots below this belong to the CPUs' boot-time stacks (`kern::smp`).
pub const FIRST_THREAD_SLOT: u32 = crate::devtree::MAX_CPUS as u32;
/// Most threads that can exist at once.
pub const MAX_THREADS: u32 = 4096;

/// Run state, as GNU Mach's TH_STATE_* (`thread_info` reports these).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum RunState {
    Running = 1,
    Stopped = 2,
    Waiting = 3,
    Uninterruptible = 4,
    Halted = 5,
}

/// Value of `last_processor` before a thread has run.
pub const NO_PROCESSOR: u32 = u32::MAX;

struct Slots {
    next: u32,
    /// Slots given back; room for all of them, so freeing one never allocates.
    free: ArrayVec<u32, { MAX_THREADS as usize }>,
}

static SLOTS: IrqSpinLock<Slots> = IrqSpinLock::new(
    LockLevel::StackSlots,
    Slots {
        next: FIRST_THREAD_SLOT,
        free: ArrayVec::new_const(),
    },
);

/// Kernel heap granules a user thread is charged (`mm::kmem`): its `Thread` and its entry
/// in the task's thread table.
pub const THREAD_BLOCKS: usize = 1 + BTREE_BLOCKS_PER_ENTRY;

// The `Arc<Thread>` block (two counts, then the thread) and a thread-table node must each
// fit the granule they are charged.
const _: () = assert!(kmem::fits_granule(
    core::mem::size_of::<Thread>() + 2 * core::mem::size_of::<usize>(),
    core::mem::align_of::<Thread>()
));
const _: () = assert!(kmem::fits_granule(
    crate::mm::regions::btree_node_bound(8, core::mem::size_of::<alloc::sync::Weak<Thread>>()),
    8
));

/// Create every table the thread stack slots need, once at boot (see `mmu::prepare_tables`).
pub fn prepare_stack_window() -> bool {
    let (low, _) = stack_slot(FIRST_THREAD_SLOT as u64);
    let (_, top) = stack_slot((FIRST_THREAD_SLOT + MAX_THREADS) as u64);
    mmu::prepare_tables(VirtAddr(low), top - low).is_ok()
}

/// Back kernel stack slot `slot` with fresh frames; returns (frames, stack top). The
/// unmapped rest of the slot below the stack is its guard.
pub fn map_stack_slot(slot: u32) -> Option<(PhysAddr, u64)> {
    let pa = frame::alloc(STACK_PAGES)?;
    let (low, top) = stack_slot(slot as u64);
    let mapped = mmu::map(
        VirtAddr(low),
        pa,
        KERNEL_STACK_SIZE,
        mmu::MemAttr::Normal,
        mmu::KernelPerm::ReadWrite,
    );
    if mapped.is_err() {
        frame::free(pa, STACK_PAGES);
        return None;
    }
    Some((pa, top))
}

/// Kernel stack slots of threads in use: handed out and not given back (stacks of dead
/// threads waiting in the batch count as in use until `purge_dead_stacks`).
pub fn stack_slots_in_use() -> u32 {
    let s = SLOTS.lock();
    s.next - FIRST_THREAD_SLOT - s.free.len() as u32
}

/// Check that the guard gap below every kernel stack that was ever handed out (the CPUs'
/// and the threads') is still unmapped (`checks=`): `report(slot, entries)` for each gap
/// with mapped entries. A stack overflow then faults in the gap, and the trap handler
/// reports it as one (`trap::kernel_sync_exception`).
pub fn check_stack_guards(report: &mut dyn FnMut(u32, usize)) {
    let next = SLOTS.lock().next;
    for slot in 0..next {
        let (low, top) = stack_slot(slot as u64);
        let gap = top - crate::mm::layout::STACK_SLOT;
        let mapped = mmu::mapped_entries(VirtAddr(gap), low - gap);
        if mapped != 0 {
            report(slot, mapped);
        }
    }
}

/// A thread's kernel stack, mapped in its slot.
struct KernelStack {
    slot: u32,
    pa: PhysAddr,
}

const STACK_PAGES: usize = (KERNEL_STACK_SIZE / PAGE_SIZE) as usize;

impl KernelStack {
    fn new() -> Result<Self, KernReturn> {
        Self::try_new().or_else(|_| {
            purge_dead_stacks();
            Self::try_new()
        })
    }

    fn try_new() -> Result<Self, KernReturn> {
        let slot = {
            let mut s = SLOTS.lock();
            match s.free.pop() {
                Some(slot) => slot,
                None if s.next < FIRST_THREAD_SLOT + MAX_THREADS => {
                    s.next += 1;
                    s.next - 1
                }
                None => return Err(KernReturn::ResourceShortage),
            }
        };
        match map_stack_slot(slot) {
            Some((pa, _)) => Ok(KernelStack { slot, pa }),
            None => {
                // Room for every slot, so this cannot fail.
                let _ = SLOTS.lock().free.try_push(slot);
                Err(KernReturn::ResourceShortage)
            }
        }
    }

    fn top(&self) -> u64 {
        stack_slot(self.slot as u64).1
    }

    /// The user area at the top of the stack.
    fn user_area(&self) -> *mut UserArea {
        (self.top() - core::mem::size_of::<UserArea>() as u64) as *mut UserArea
    }

    /// The user trap frame, just below the user area: where a thread entering the kernel
    /// from user mode with its stack empty saves its registers.
    fn user_frame(&self) -> *mut TrapFrame {
        (self.user_area() as u64 - core::mem::size_of::<TrapFrame>() as u64) as *mut TrapFrame
    }
}

/// A user thread's FP/SIMD and TLS registers, saved while it is off CPU. It lives at the
/// top of the thread's kernel stack rather than in `Thread` so that a thread stays within
/// one kernel-heap granule (`THREAD_BLOCKS`) with room for its scheduling statistics; the
/// stack below it starts with the user trap frame.
#[repr(C, align(16))]
struct UserArea {
    fp: FpState,
    tpidr_el0: u64,
}

/// Stacks of dead threads, still mapped: they are unmapped in batches with one broadcast
/// TLB invalidation per batch (a flush per page would stop every CPU four times per thread
/// exit), and only then are their frames and slots reused. A full batch is taken out under
/// the lock, so the fixed array never overflows and never allocates.
const DEAD_STACK_BATCH: usize = 32;
type DeadStacks = ArrayVec<(u32, PhysAddr), DEAD_STACK_BATCH>;
static DEAD_STACKS: IrqSpinLock<DeadStacks> =
    IrqSpinLock::new(LockLevel::StackSlots, ArrayVec::new_const());

/// Unmap the dead threads' stacks and give their frames and slots back. Run before frames
/// are counted, and whenever a batch is full or memory for a new stack is short.
pub fn purge_dead_stacks() {
    // The guard must go before `release_stacks` takes the slot lock (a temporary guard in
    // the call's argument would live through the call).
    let dead = core::mem::take(&mut *DEAD_STACKS.lock());
    release_stacks(dead);
}

fn release_stacks(dead: DeadStacks) {
    if dead.is_empty() {
        return;
    }
    for &(slot, _) in &dead {
        let (low, _) = stack_slot(slot as u64);
        mmu::unmap_deferred(VirtAddr(low), KERNEL_STACK_SIZE);
    }
    mmu::flush_kernel_tlb();
    let mut slots = SLOTS.lock();
    for (slot, pa) in dead {
        frame::free(pa, STACK_PAGES);
        // Room for every slot, so this cannot fail.
        let _ = slots.free.try_push(slot);
    }
}

impl Drop for KernelStack {
    fn drop(&mut self) {
        let full = {
            let mut dead = DEAD_STACKS.lock();
            // Never full here: a full batch is taken out below, under this lock.
            let _ = dead.try_push((self.slot, self.pa));
            dead.is_full().then(|| core::mem::take(&mut *dead))
        };
        if let Some(batch) = full {
            release_stacks(batch);
        }
    }
}

pub struct Thread {
    pub id: ThreadId,
    pub task: Arc<Task>,
    /// `None` for idle threads, which run on their CPU's boot stack.
    kstack: Option<KernelStack>,
    context: UnsafeCell<Context>,
    /// Its FP/SIMD and TLS registers while off CPU, at the top of its kernel stack (null
    /// for idle threads, which have no user state).
    user_area: *mut UserArea,
    /// Set while a CPU runs this thread or is still saving its context.
    pub on_cpu: AtomicBool,
    state: AtomicU8,
    pub base_priority: AtomicU8,
    /// The highest priority (lowest number) `thread_priority` may set (GNU Mach's
    /// `max_priority`; the set's maximum when the thread is assigned to a set).
    pub max_priority: AtomicU8,
    pub sched_priority: AtomicU8,
    pub last_processor: AtomicU32,
    pub bound_processor: AtomicU32,
    /// A processor `thread_migrate` sent the thread to that it has not reached yet
    /// (`NO_PROCESSOR`: none); whoever places it next honours it (`sched::migrate`).
    pub migrate_to: AtomicU32,
    /// Why it was last moved off its processor (a `mach_abi::trace::Reason`, 0 for none),
    /// noted by whoever moved it while the scheduler trace is on, taken when it starts
    /// on the new processor (`sched::trace::switch`).
    pub migrate_reason: AtomicU8,
    /// Times it started running on a processor other than its last one.
    pub migration_count: AtomicU32,
    /// Its cache warmth (0 cold, 255 very warm) as of when it last left a processor
    /// (`sched::balance`): grown by the time it ran there, zeroed when it starts on another
    /// processor, cooled by the time since `off_since` whenever it is read.
    pub cache_warmth: AtomicU8,
    /// Counter values: when it last got a processor and when it last left one, and the
    /// length of its last stretch on one. Written by the CPU switching it.
    pub run_start: AtomicU64,
    pub off_since: AtomicU64,
    pub last_run: AtomicU64,
    /// Counter value its stored warmth was last cooled to (at its last wake-up).
    pub warmth_stamp: AtomicU64,
    /// Its decayed CPU usage (`sched::balance::usage_tick`, fixed point) as of global tick
    /// `usage_tick` (`sched::migrate`), for `cpu_usage`.
    pub usage: AtomicU32,
    pub usage_tick: AtomicU64,
    /// Its processor set (a `ProcessorSetId`, `sched::pset`): where it may run.
    pub processor_set: AtomicU32,
    /// Time in user mode and in the kernel, in counter ticks, and the counter value
    /// from which the running thread's current stretch is counted. Only the CPU running
    /// the thread writes them (DESIGN.md 5: charged at every kernel entry, exit and switch).
    pub user_time: AtomicU64,
    pub system_time: AtomicU64,
    pub time_stamp: AtomicU64,
    pub quantum_left: AtomicU32,
    /// Mach's thread lock: the wait/run state (`sched::wait`).
    pub wait: IrqSpinLock<WaitState<Event>>,
    /// Links in an event wait queue, under that bucket's lock (`sched::waitq`).
    pub wait_links: UnsafeCell<WaitLinks>,
    /// The wait timeout and the end of a priority depression, each on at most one
    /// processor's timer queue.
    pub timers: [TimerNode; 2],
    /// The processor whose run queue holds the thread (`NO_PROCESSOR` if none); written
    /// under that run queue's lock.
    pub queued_on: AtomicU32,
    /// Priority depressed by `thread_switch(SWITCH_OPTION_DEPRESS)` until its timer ends.
    pub depressed: AtomicBool,
    terminate: AtomicBool,
    /// Suspensions asked for by `thread_suspend` (GNU Mach `user_stop_count`).
    pub user_stop_count: AtomicU32,
    /// Holds on the thread (GNU Mach `suspend_count`): one for any user suspensions plus
    /// the kernel's own while it reads or writes the thread's state. While it is non-zero
    /// the thread stops at its next return to user mode (`sched::halt_self`).
    pub hold_count: AtomicU32,
    /// Held by its task's `task_suspend`.
    pub task_held: AtomicBool,
    /// Stopped at that clean point, its user state saved in its trap frame.
    pub parked: AtomicBool,
    /// Started once (`sched::thread_start`); a thread made by `thread_create` is not until
    /// its first `thread_resume`.
    pub started: AtomicBool,
    /// Where the thread continues after an `EXC_BAD_ACCESS` no handler took, instead of
    /// its task ending (0: it ends); set by the temporary `EXCEPTION_RESUME` trap
    /// (`kern::trap`).
    pub exception_resume: AtomicU64,
    pub is_idle: bool,
    /// Counter value at creation.
    pub created: u64,
    /// The thread's kernel port (user threads only; its kobject is the thread, a cycle
    /// broken by `Port::dealloc_kernel` when the thread exits).
    pub self_port: spin::Once<Arc<Port>>,
    /// The send right `thread_set_special_port(THREAD_EXCEPTION_PORT)` stored (released
    /// when the thread exits).
    pub exception_port: spin::Mutex<crate::ipc::MsgPort>,
    /// What the thread is charged to its task (`THREAD_BLOCKS`); none for idle threads.
    _kmem: Option<Charge>,
    /// Its name for the kernel's reports (`thread_set_name`; at first its task's name).
    pub name: crate::kern::name::DebugName,
}

// SAFETY: `context` and the user area are only touched by the CPU that is switching the
// thread in or out (the `on_cpu` protocol in `kern::sched` serialises that); `wait_links`
// only under the lock of the wait bucket that holds the thread, the timer nodes only under
// their processor's timer-queue lock (`sched::waitq`); everything else is atomic, locked
// or immutable.
unsafe impl Sync for Thread {}
// SAFETY: as above.
unsafe impl Send for Thread {}

static NEXT_THREAD_ID: AtomicU64 = AtomicU64::new(1);

impl Thread {
    fn new(
        task: Arc<Task>,
        kstack: Option<KernelStack>,
        context: Context,
        is_idle: bool,
        kmem: Option<Charge>,
    ) -> Thread {
        let priority = if is_idle {
            crate::kern::sched::runqueue::IDLE_PRI
        } else {
            BASEPRI_USER
        };
        let user_area = kstack
            .as_ref()
            .map_or(core::ptr::null_mut(), KernelStack::user_area);
        Thread {
            id: ThreadId(NEXT_THREAD_ID.fetch_add(1, Ordering::Relaxed)),
            name: crate::kern::name::DebugName::copy_of(&task.name),
            task,
            kstack,
            context: UnsafeCell::new(context),
            user_area,
            on_cpu: AtomicBool::new(is_idle),
            state: AtomicU8::new(if is_idle {
                RunState::Running
            } else {
                RunState::Stopped
            } as u8),
            base_priority: AtomicU8::new(priority),
            max_priority: AtomicU8::new(priority),
            sched_priority: AtomicU8::new(priority),
            last_processor: AtomicU32::new(NO_PROCESSOR),
            bound_processor: AtomicU32::new(NO_PROCESSOR),
            migrate_to: AtomicU32::new(NO_PROCESSOR),
            migrate_reason: AtomicU8::new(0),
            migration_count: AtomicU32::new(0),
            cache_warmth: AtomicU8::new(0),
            run_start: AtomicU64::new(0),
            off_since: AtomicU64::new(0),
            last_run: AtomicU64::new(0),
            warmth_stamp: AtomicU64::new(0),
            usage: AtomicU32::new(0),
            usage_tick: AtomicU64::new(0),
            processor_set: AtomicU32::new(0),
            user_time: AtomicU64::new(0),
            system_time: AtomicU64::new(0),
            time_stamp: AtomicU64::new(crate::arch::timer::counter()),
            quantum_left: AtomicU32::new(0),
            wait: IrqSpinLock::new(
                LockLevel::ThreadState,
                if is_idle {
                    WaitState::new_running()
                } else {
                    WaitState::new_stopped()
                },
            ),
            wait_links: UnsafeCell::new(WaitLinks::new()),
            timers: [
                TimerNode::new(TimerKind::Wait),
                TimerNode::new(TimerKind::Depress),
            ],
            queued_on: AtomicU32::new(NO_PROCESSOR),
            depressed: AtomicBool::new(false),
            terminate: AtomicBool::new(false),
            user_stop_count: AtomicU32::new(0),
            hold_count: AtomicU32::new(0),
            parked: AtomicBool::new(false),
            task_held: AtomicBool::new(false),
            started: AtomicBool::new(is_idle),
            exception_resume: AtomicU64::new(0),
            is_idle,
            created: crate::arch::timer::counter(),
            self_port: spin::Once::new(),
            exception_port: spin::Mutex::new(crate::ipc::MsgPort::Null),
            _kmem: kmem,
        }
    }

    /// The idle thread of a CPU: it is the code already running on that CPU's boot stack.
    pub fn new_idle() -> Arc<Thread> {
        Arc::new(Thread::new(
            Task::kernel(),
            None,
            Context::default(),
            true,
            None,
        ))
    }

    /// A user thread of `task` that will enter user mode at `pc` with `sp` and `x0 = arg`.
    /// It is created stopped; `sched::thread_start` starts it. Its kernel memory is charged
    /// to the task first: `KERN_RESOURCE_SHORTAGE` at the task's limit.
    pub fn new_user(
        task: &Arc<Task>,
        pc: u64,
        sp: u64,
        arg: u64,
    ) -> Result<Arc<Thread>, KernReturn> {
        if task.terminating.load(Ordering::Acquire) {
            return Err(KernReturn::Terminated);
        }
        let charge = task.kmem.charge(THREAD_BLOCKS)?;
        let kstack = KernelStack::new()?;
        let frame = kstack.user_frame();
        // SAFETY: the user area and the frame lie at the top of the stack just mapped for
        // this thread alone.
        unsafe {
            kstack.user_area().write(UserArea {
                fp: FpState::default(),
                tpidr_el0: 0,
            });
            frame.write(context::initial_user_frame(pc, sp, arg));
        }
        let thread = Arc::new(Thread::new(
            task.clone(),
            Some(kstack),
            context::new_user_context(frame),
            false,
            Some(charge),
        ));
        // Counted in its set before anything can fail: its `Drop` counts it out.
        crate::kern::sched::pset::note_thread_created(&thread);
        let ledger: Arc<dyn crate::ipc::Ledger> = task.kmem.clone();
        let port = Port::alloc_kernel(
            &ledger,
            Some(KObject::new(KObjectKind::Thread, thread.clone())),
        )?;
        thread.self_port.call_once(|| port);
        // GNU Mach `thread_create`: the task's priority and maximum, the maximum no higher
        // (no lower a number) than the set's, the priority no higher than the maximum.
        let set_max = crate::kern::sched::pset::task_set_max_priority(task);
        let max = task.max_priority.load(Ordering::Relaxed).max(set_max);
        let priority = task.priority.load(Ordering::Relaxed).max(max);
        thread.max_priority.store(max, Ordering::Relaxed);
        thread.base_priority.store(priority, Ordering::Relaxed);
        thread.sched_priority.store(priority, Ordering::Relaxed);
        task.live_threads.fetch_add(1, Ordering::AcqRel);
        task.threads
            .lock()
            .insert(thread.id, Arc::downgrade(&thread));
        // A task terminated meanwhile did not see this thread: it ends at once.
        if task.terminating.load(Ordering::SeqCst) {
            thread.request_termination();
        }
        // A thread born into a suspended task is held with the others.
        if task.user_stop_count.load(Ordering::SeqCst) != 0 {
            thread.task_hold();
        }
        Ok(thread)
    }

    pub fn state(&self) -> RunState {
        match self.state.load(Ordering::Acquire) {
            1 => RunState::Running,
            3 => RunState::Waiting,
            4 => RunState::Uninterruptible,
            5 => RunState::Halted,
            _ => RunState::Stopped,
        }
    }

    pub fn set_state(&self, state: RunState) {
        self.state.store(state as u8, Ordering::Release);
    }

    pub fn context_ptr(&self) -> *mut Context {
        self.context.get()
    }

    /// Where its FP/SIMD registers are saved: user threads only (null for idle threads).
    pub fn fp_ptr(&self) -> *mut FpState {
        debug_assert!(!self.user_area.is_null());
        // SAFETY: in bounds of the user area (no reference is made).
        unsafe { &raw mut (*self.user_area).fp }
    }

    /// Where its TLS register is saved: user threads only.
    pub fn tpidr_ptr(&self) -> *mut u64 {
        debug_assert!(!self.user_area.is_null());
        // SAFETY: as in `fp_ptr`.
        unsafe { &raw mut (*self.user_area).tpidr_el0 }
    }

    /// Ask the thread to terminate at its next return to user mode; a wait it is in ends
    /// with `THREAD_INTERRUPTED`.
    /// A thread that never ran (made by `thread_create` and not resumed) starts now, only
    /// to end at its first return to user mode.
    pub fn request_termination(self: &Arc<Self>) {
        self.terminate.store(true, Ordering::Release);
        if !self.is_idle && !self.started.load(Ordering::SeqCst) {
            crate::kern::sched::thread_start(self.clone());
            return;
        }
        crate::kern::sched::clear_wait(self, None, WaitResult::Interrupted);
        let cpu = self.last_processor.load(Ordering::Relaxed);
        if cpu != NO_PROCESSOR {
            crate::kern::sched::kick(crate::ids::CpuId::new(cpu as usize));
        }
    }

    /// The event a held thread waits on until it is released.
    pub fn resume_event(&self) -> Event {
        Event {
            object: self as *const Thread as u64,
            key: 1,
        }
    }

    /// The event whoever waits for the thread to stop waits on (`sched::thread_dowait`).
    pub fn stopped_event(&self) -> Event {
        Event {
            object: self as *const Thread as u64,
            key: 2,
        }
    }

    /// Add a hold (GNU Mach `thread_hold`): the thread stops at its next return to user
    /// mode. The caller waits for that with `sched::thread_dowait` if it must.
    pub fn hold(&self) {
        self.hold_count.fetch_add(1, Ordering::SeqCst);
        let cpu = self.last_processor.load(Ordering::Relaxed);
        if cpu != NO_PROCESSOR && self.on_cpu.load(Ordering::Acquire) {
            crate::kern::sched::kick(crate::ids::CpuId::new(cpu as usize));
        }
    }

    /// Drop a hold (GNU Mach `thread_release`): the last one lets the thread go on, or
    /// starts it the first time.
    pub fn release(self: &Arc<Self>) {
        if self.hold_count.fetch_sub(1, Ordering::SeqCst) != 1 {
            return;
        }
        if self.started.swap(true, Ordering::SeqCst) {
            crate::kern::sched::thread_wakeup(self.resume_event(), true);
        } else {
            crate::kern::sched::thread_start(self.clone());
        }
    }

    /// The hold of its task's suspension, once.
    pub fn task_hold(&self) {
        if !self.task_held.swap(true, Ordering::SeqCst) {
            self.hold();
        }
    }

    /// Release the hold of its task's suspension, if it has it.
    pub fn task_release(self: &Arc<Self>) {
        if self.task_held.swap(false, Ordering::SeqCst) {
            self.release();
        }
    }

    /// Whether the thread is stopped where its user state can be read and written: never
    /// started, held at its clean point, or blocked in an interruptible wait (GNU Mach
    /// `thread_dowait`'s "stopped"), and no CPU is still saving it.
    pub fn is_stopped(&self) -> bool {
        // A thread that has just parked is switching out: wait until it is saved.
        while self.parked.load(Ordering::SeqCst) && self.on_cpu.load(Ordering::Acquire) {
            crate::sync::cpu_relax();
        }
        if self.on_cpu.load(Ordering::Acquire) {
            return false;
        }
        let st = self.wait.lock();
        !st.running && (!st.waiting || st.interruptible)
    }

    /// Run `f` on the thread's saved user state (trap frame, FP/SIMD registers, TLS
    /// register) if it is stopped off every CPU and cannot be made runnable meanwhile
    /// (its wait lock is held throughout); `None` otherwise, or for an idle thread.
    pub fn with_user_state<R>(
        &self,
        f: impl FnOnce(&mut TrapFrame, &mut FpState, &mut u64) -> R,
    ) -> Option<R> {
        let kstack = self.kstack.as_ref()?;
        if self.on_cpu.load(Ordering::Acquire) {
            return None;
        }
        let st = self.wait.lock();
        if st.running || self.on_cpu.load(Ordering::Acquire) {
            return None;
        }
        let frame = kstack.user_frame();
        // SAFETY: a user thread's user registers are in the trap frame at the top of its
        // kernel stack (below its user area) whenever it is off CPU (it entered the kernel from EL0 with the stack
        // empty, or was built so by `new_user`); its FP/SIMD and TLS registers were saved at
        // its last switch. It is not running and cannot be made so while its wait lock is
        // held, so nothing else touches them; the stack lives as long as `self`.
        let r = unsafe { f(&mut *frame, &mut *self.fp_ptr(), &mut *self.tpidr_ptr()) };
        drop(st);
        Some(r)
    }

    pub fn should_terminate(&self) -> bool {
        self.terminate.load(Ordering::Acquire) || self.task.terminating.load(Ordering::Acquire)
    }

    /// Whether the thread has left its task's accounts (`detach_from_task`: it is exiting
    /// or gone).
    pub fn has_exited(&self) -> bool {
        !self.task.threads.lock().contains_key(&self.id)
    }

    /// Take the thread out of its task's accounts (it is exiting): its kernel port dies
    /// and, if it was the task's last thread, the task is told (`Task::last_thread_gone`:
    /// it ends, or lives on without threads).
    pub fn detach_from_task(self: &Arc<Self>) {
        // Its times go to the task's account of ended threads (`task_info`).
        self.task
            .dead_user_time
            .fetch_add(self.user_time.load(Ordering::Relaxed), Ordering::Relaxed);
        self.task
            .dead_system_time
            .fetch_add(self.system_time.load(Ordering::Relaxed), Ordering::Relaxed);
        if let Some(port) = self.self_port.get() {
            Port::dealloc_kernel(port.clone());
        }
        drop(core::mem::take(&mut *self.exception_port.lock()));
        let last = self.task.live_threads.fetch_sub(1, Ordering::AcqRel) == 1;
        self.task.threads.lock().remove(&self.id);
        if last {
            self.task.last_thread_gone();
            crate::kern::checks::at_task_exit();
        }
    }
}

impl Drop for Thread {
    fn drop(&mut self) {
        // The stack goes first, then (with the fields) the task reference: a task's last
        // thread frees its stack before the task frees its map.
        self.kstack.take();
        if !self.is_idle {
            crate::kern::sched::pset::note_thread_gone(self);
        }
    }
}
