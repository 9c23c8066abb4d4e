//! Scheduling mechanism (see `mod.rs`). Lock order: a processor's run-queue lock is the
//! innermost lock; two run queues are never held together (no balancing yet). A thread
//! being switched out is protected by its `on_cpu` flag: no CPU switches to a thread until
//! the CPU leaving it has saved its context.

extern crate alloc;

use super::policy::{ProcessorLoad, ThreadHints, select_processor};
use super::runqueue::RunQueue;
use crate::arch::{context, cpu, uspace};
use crate::devtree::MAX_CPUS;
use crate::kern::irq::{self, Ipi};
use crate::kern::percpu;
use crate::kern::sync::IrqSpinLock;
use crate::kern::thread::{NO_PROCESSOR, RunState, Thread};
use alloc::sync::Arc;
use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};

/// Timer ticks a thread runs before others of its priority get a turn.
pub const QUANTUM_TICKS: u32 = 2;

/// Data only its own CPU touches, with interrupts masked.
struct CpuLocal<T>(UnsafeCell<T>);

// SAFETY: each `CpuLocal` is used only by the CPU that owns the processor, with interrupts
// masked (every accessor below runs under `irq_save` or in an exception handler).
unsafe impl<T> Sync for CpuLocal<T> {}

impl<T> CpuLocal<T> {
    /// # Safety
    /// Only on the owning CPU, interrupts masked, no other reference alive.
    #[allow(clippy::mut_from_ref)] // Exclusive by the CPU-ownership rule above.
    unsafe fn get(&self) -> &mut T {
        // SAFETY: the caller's contract.
        unsafe { &mut *self.0.get() }
    }
}

pub struct Processor {
    pub runq: IrqSpinLock<RunQueue<Arc<Thread>>>,
    current: CpuLocal<Option<Arc<Thread>>>,
    idle: CpuLocal<Option<Arc<Thread>>>,
    /// A thread that exited on this CPU, freed by the next thread to run here.
    zombie: CpuLocal<Option<Arc<Thread>>>,
    pub online: AtomicBool,
    pub running_idle: AtomicBool,
    pub current_priority: AtomicU8,
    /// The AST: reschedule at the next return to user mode (or in the idle loop).
    pub need_resched: AtomicBool,
    pub context_switches: AtomicU64,
    pub idle_ticks: AtomicU64,
}

impl Processor {
    const fn new() -> Self {
        Processor {
            runq: IrqSpinLock::new(RunQueue::new()),
            current: CpuLocal(UnsafeCell::new(None)),
            idle: CpuLocal(UnsafeCell::new(None)),
            zombie: CpuLocal(UnsafeCell::new(None)),
            online: AtomicBool::new(false),
            running_idle: AtomicBool::new(true),
            current_priority: AtomicU8::new(super::runqueue::IDLE_PRI),
            need_resched: AtomicBool::new(false),
            context_switches: AtomicU64::new(0),
            idle_ticks: AtomicU64::new(0),
        }
    }
}

static PROCESSORS: [Processor; MAX_CPUS] = [const { Processor::new() }; MAX_CPUS];

pub fn processor(index: usize) -> &'static Processor {
    &PROCESSORS[index.min(MAX_CPUS - 1)]
}

fn this_processor() -> &'static Processor {
    processor(percpu::current_index())
}

/// Make the code running on this CPU its idle thread and the processor schedulable.
pub fn init_this_cpu() {
    let saved = cpu::irq_save();
    let me = this_processor();
    let idle = Thread::new_idle();
    idle.last_processor
        .store(percpu::current_index() as u32, Ordering::Relaxed);
    // SAFETY: our own processor, interrupts masked.
    unsafe {
        *me.idle.get() = Some(idle.clone());
        *me.current.get() = Some(idle);
    }
    me.online.store(true, Ordering::Release);
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

/// Wake CPU `index` so it looks at its run queue and AST.
pub fn kick(index: usize) {
    if index == percpu::current_index() {
        this_processor().need_resched.store(true, Ordering::Release);
    } else {
        processor(index).need_resched.store(true, Ordering::Release);
        irq::send_ipi(index, Ipi::Ping);
    }
}

/// Make `thread` runnable on the processor the placement policy picks.
pub fn setrun(thread: Arc<Thread>) {
    let n = percpu::cpu_count();
    let mut loads = [ProcessorLoad {
        eligible: false,
        idle: false,
        load: 0,
    }; MAX_CPUS];
    for (i, load) in loads.iter_mut().enumerate().take(n) {
        let p = processor(i);
        let queued = p.runq.lock().len();
        let idle = p.running_idle.load(Ordering::Acquire);
        *load = ProcessorLoad {
            eligible: p.online.load(Ordering::Acquire),
            idle: idle && queued == 0,
            load: queued + usize::from(!idle),
        };
    }
    let last = thread.last_processor.load(Ordering::Relaxed);
    let bound = thread.bound_processor.load(Ordering::Relaxed);
    let hints = ThreadHints {
        bound: (bound != NO_PROCESSOR).then_some(bound as usize),
        last_processor: (last != NO_PROCESSOR).then_some(last as usize),
        cache_warmth: 0,
    };
    let target = select_processor(&loads[..n], hints).unwrap_or_else(percpu::current_index);
    let priority = thread.sched_priority.load(Ordering::Relaxed);
    thread.set_state(RunState::Running);
    processor(target).runq.lock().enqueue(thread, priority);
    let p = processor(target);
    if p.running_idle.load(Ordering::Acquire)
        || priority < p.current_priority.load(Ordering::Acquire)
    {
        kick(target);
    }
}

/// Why the running thread gives up the CPU.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Switch {
    /// Still runnable: back to the tail of its queue.
    Yield,
    /// Waiting; whoever wakes it calls `setrun`.
    Block,
    /// Gone; its resources are freed once this CPU has left it.
    Exit,
}

/// Give up the CPU. Returns when the thread is chosen again (never for `Exit`).
pub fn schedule(how: Switch) {
    let saved = cpu::irq_save();
    let me = this_processor();
    me.need_resched.store(false, Ordering::Relaxed);
    // SAFETY: our own processor, interrupts masked.
    let prev = unsafe { me.current.get().take() }.expect("a current thread");
    let next = {
        let mut rq = me.runq.lock();
        if how == Switch::Yield && !prev.is_idle {
            rq.enqueue(prev.clone(), prev.sched_priority.load(Ordering::Relaxed));
        }
        rq.dequeue()
    };
    // SAFETY: as above.
    let next = next.unwrap_or_else(|| unsafe { me.idle.get().clone() }.expect("an idle thread"));
    if Arc::ptr_eq(&prev, &next) {
        // SAFETY: as above.
        unsafe { *me.current.get() = Some(prev) };
        cpu::irq_restore(saved);
        return;
    }
    // The CPU that last ran `next` may still be saving it.
    while next.on_cpu.load(Ordering::Acquire) {
        core::hint::spin_loop();
    }
    next.on_cpu.store(true, Ordering::Relaxed);
    next.set_state(RunState::Running);
    next.last_processor
        .store(percpu::current_index() as u32, Ordering::Relaxed);
    next.quantum_left.store(QUANTUM_TICKS, Ordering::Relaxed);
    me.running_idle.store(next.is_idle, Ordering::Release);
    me.current_priority.store(
        next.sched_priority.load(Ordering::Relaxed),
        Ordering::Release,
    );
    me.context_switches.fetch_add(1, Ordering::Relaxed);

    if !prev.is_idle {
        // SAFETY: `prev` runs here (on_cpu), so its saved state is ours to write.
        unsafe {
            context::save_fp(prev.fp_ptr());
            *prev.tpidr_ptr() = read_tpidr_el0();
        }
    }
    if next.task.ttbr0 != prev.task.ttbr0 || prev.is_idle != next.is_idle {
        uspace::activate((!next.task.is_kernel()).then_some(next.task.ttbr0));
    }
    if !next.is_idle {
        // SAFETY: `next` is claimed by this CPU (on_cpu), its saved state is stable.
        unsafe {
            context::restore_fp(next.fp_ptr());
            write_tpidr_el0(*next.tpidr_ptr());
        }
    }
    let prev_context = prev.context_ptr();
    let next_context = next.context_ptr() as *const _;
    let prev_on_cpu: *const AtomicBool = &prev.on_cpu;
    match how {
        Switch::Exit => {
            prev.set_state(RunState::Halted);
            // SAFETY: as above. The zombie keeps `prev` alive until the switch is over.
            unsafe { *me.zombie.get() = Some(prev) };
        }
        // The caller set Waiting before it let anyone wake the thread.
        Switch::Block | Switch::Yield => drop(prev),
    }
    // SAFETY: as above. `current` keeps `next` alive.
    unsafe { *me.current.get() = Some(next) };
    // SAFETY: `prev_context` is the running thread's (kept alive by its queue, its waiter
    // or the zombie slot), `next_context` belongs to a thread no other CPU runs (on_cpu),
    // and interrupts are masked.
    unsafe { context::switch(prev_context, next_context, &*prev_on_cpu) };
    finish_switch();
    cpu::irq_restore(saved);
}

/// Run by the thread switched to, first thing: free what the previous thread left.
pub extern "C" fn finish_switch() {
    let me = this_processor();
    // SAFETY: our own processor, interrupts are still masked from `schedule`.
    let zombie = unsafe { me.zombie.get().take() };
    drop(zombie);
}

fn read_tpidr_el0() -> u64 {
    use aarch64_cpu::registers::TPIDR_EL0;
    use tock_registers::interfaces::Readable;
    TPIDR_EL0.get()
}

fn write_tpidr_el0(value: u64) {
    use aarch64_cpu::registers::TPIDR_EL0;
    use tock_registers::interfaces::Writeable;
    TPIDR_EL0.set(value);
}

/// End the running thread (it must not be an idle thread).
pub fn thread_exit() -> ! {
    let me = current_thread();
    me.detach_from_task();
    drop(me);
    schedule(Switch::Exit);
    unreachable!("an exited thread was scheduled again");
}

/// Yield to threads of equal or higher priority. Returns whether any were waiting.
pub fn yield_now() -> bool {
    let others = !this_processor().runq.lock().is_empty();
    schedule(Switch::Yield);
    others
}

/// The timer tick's share of scheduling: wake expired sleepers, charge the tick and count
/// down the quantum.
pub fn tick(from_user: bool) {
    if percpu::current_index() == crate::kern::boot::boot_cpu() {
        wake_expired_sleepers();
    }
    let me = this_processor();
    // SAFETY: our own processor; called from the interrupt handler (interrupts masked).
    let Some(current) = (unsafe { me.current.get().as_ref() }) else {
        return;
    };
    if current.is_idle {
        me.idle_ticks.fetch_add(1, Ordering::Relaxed);
        if !me.runq.lock().is_empty() {
            me.need_resched.store(true, Ordering::Release);
        }
        return;
    }
    if from_user {
        current.user_ticks.fetch_add(1, Ordering::Relaxed);
    } else {
        current.system_ticks.fetch_add(1, Ordering::Relaxed);
    }
    let left = current.quantum_left.load(Ordering::Relaxed);
    if left <= 1 {
        current.quantum_left.store(QUANTUM_TICKS, Ordering::Relaxed);
        if !me.runq.lock().is_empty() {
            me.need_resched.store(true, Ordering::Release);
        }
    } else {
        current.quantum_left.store(left - 1, Ordering::Relaxed);
    }
}

/// At every return to user mode: terminate or reschedule if asked to.
pub fn ast_check() {
    let me = this_processor();
    // SAFETY: our own processor; called with interrupts masked on the way out of a trap.
    let terminate =
        unsafe { me.current.get().as_ref() }.is_some_and(|t| !t.is_idle && t.should_terminate());
    if terminate {
        thread_exit();
    }
    if me.need_resched.load(Ordering::Acquire) {
        schedule(Switch::Yield);
    }
}

/// The idle loop of a CPU (its boot code becomes its idle thread). `on_idle` runs each
/// time the CPU finds nothing to do, before it sleeps.
pub fn idle_loop(on_idle: fn()) -> ! {
    let me = this_processor();
    loop {
        cpu::irq_disable();
        if !me.runq.lock().is_empty() {
            schedule(Switch::Yield);
            continue;
        }
        on_idle();
        // With interrupts masked, `wfi` still wakes on a pending one, which is taken as
        // soon as they are unmasked: no wake-up is lost between the check and the sleep.
        cpu::wait_for_interrupt();
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

/// Threads waiting for a deadline (counter value), woken by the timer tick.
static SLEEPERS: IrqSpinLock<alloc::vec::Vec<(u64, Arc<Thread>)>> =
    IrqSpinLock::new(alloc::vec::Vec::new());

/// Block the running thread until the counter reaches `deadline` (or it is woken early
/// because it must terminate).
pub fn sleep_until(deadline: u64) {
    let saved = cpu::irq_save();
    {
        let me = current_thread();
        me.set_state(RunState::Waiting);
        SLEEPERS.lock().push((deadline, me));
    }
    schedule(Switch::Block);
    cpu::irq_restore(saved);
}

/// Block the running thread for `ms` milliseconds.
pub fn sleep_ms(ms: u64) {
    let freq = crate::arch::timer::frequency();
    let ticks = ms.saturating_mul(freq) / 1000;
    sleep_until(crate::arch::timer::counter().saturating_add(ticks));
}

/// Wake the sleepers whose deadline has passed (from the timer tick).
fn wake_expired_sleepers() {
    let now = crate::arch::timer::counter();
    let mut woken = alloc::vec::Vec::new();
    {
        let mut sleepers = SLEEPERS.lock();
        let mut i = 0;
        while i < sleepers.len() {
            if sleepers[i].0 <= now {
                woken.push(sleepers.swap_remove(i).1);
            } else {
                i += 1;
            }
        }
    }
    for thread in woken {
        setrun(thread);
    }
}

/// Wake `thread` now if it sleeps (it has been asked to terminate).
pub fn wake_sleeper(thread: &Thread) {
    let found = {
        let mut sleepers = SLEEPERS.lock();
        sleepers
            .iter()
            .position(|(_, t)| core::ptr::eq(Arc::as_ptr(t), thread))
            .map(|i| sleepers.swap_remove(i).1)
    };
    if let Some(t) = found {
        setrun(t);
    }
}
