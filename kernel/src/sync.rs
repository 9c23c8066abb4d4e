//! Spinlocks that mask interrupts on the local CPU while held, for state that interrupt
//! handlers also touch (DESIGN.md 5), and the kernel's lock order.
//!
//! Every lock has a [`LockLevel`]; a CPU may only take a lock whose level is above every
//! level it already holds (two locks of the same level only where the level says so: run
//! queues, lower CPU index first). No lock is held across a context switch. With the
//! `lockcheck` feature (built by `cargo xtask test`) every acquisition checks this and a
//! violation stops the kernel with both levels named.

use core::mem::ManuallyDrop;
use core::ops::{Deref, DerefMut};

#[cfg(target_os = "none")]
use crate::arch::cpu::{irq_restore, irq_save};

// On the host (unit tests) there are no interrupts to mask.
#[cfg(not(target_os = "none"))]
fn irq_save() -> u64 {
    0
}
#[cfg(not(target_os = "none"))]
fn irq_restore(_: u64) {}

/// The lock order, outermost first: while holding a lock, take only locks further down.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
#[repr(u8)]
pub enum LockLevel {
    /// A task's thread table (`Task::threads`).
    TaskThreads = 0,
    /// A task's address space (`Task::map`): regions and page tables.
    VmMap = 1,
    /// A memory object shared between maps (`mm::object`): its pages. Taken under a
    /// map's lock, one at a time.
    VmObject = 2,
    /// An IPC space: a task's port names (`ipc::space`).
    IpcSpace = 3,
    /// The one lock under which receive rights go in transit (`ipc::port`'s circularity
    /// check); ports are then locked one at a time under it.
    IpcTransit = 4,
    /// A port: its rights counts, requests and message queue (`ipc::port`). Never two at
    /// once.
    IpcPort = 5,
    /// A port set and its message queue (`ipc::pset`); taken under a member's port lock.
    IpcSet = 6,
    /// A bucket of the event wait queues (`sched::waitq`). Two may be held together, the
    /// lower index first (`waitq::thread_requeue` moving waiters between events).
    WaitBucket = 7,
    /// A thread's wait/run state (GNU Mach's thread lock).
    ThreadState = 8,
    /// The processor-set table: the sets, their processor counts and the queues of
    /// threads waiting for a processor (`sched::pset`).
    ProcessorSets = 9,
    /// A processor's timeout queue.
    TimerQueue = 10,
    /// A processor's run queue. Two may be held together, the lower CPU index first.
    RunQueue = 11,
    /// Kernel stack slots and the dead-stack batch.
    StackSlots = 12,
    /// The kernel translation tables.
    KernelTables = 13,
    /// The ASID allocator.
    Asids = 14,
    /// The physical frame allocator.
    Frames = 15,
    /// The console.
    Console = 16,
    /// The list of every user task (`kern::task`): taken with no other lock but the heap's
    /// inside, so that a task may be dropped anywhere (no task is dropped under it).
    Tasks = 17,
    /// The kernel heap: innermost, since any code may allocate.
    Heap = 18,
}

impl LockLevel {
    /// Whether two locks of this level may be held at once.
    fn nests_with_itself(self) -> bool {
        matches!(self, LockLevel::RunQueue | LockLevel::WaitBucket)
    }
}

/// Which levels this CPU holds, one bit per level.
#[cfg(any(test, feature = "lockcheck"))]
mod held {
    #[cfg(target_os = "none")]
    pub fn get() -> u32 {
        crate::percpu::current()
            .lock_levels
            .load(core::sync::atomic::Ordering::Relaxed)
    }
    #[cfg(target_os = "none")]
    pub fn set(mask: u32) {
        crate::percpu::current()
            .lock_levels
            .store(mask, core::sync::atomic::Ordering::Relaxed)
    }

    // Host unit tests: one mask per test thread.
    #[cfg(test)]
    std::thread_local!(static HELD: core::cell::Cell<u32> = const { core::cell::Cell::new(0) });
    #[cfg(test)]
    pub fn get() -> u32 {
        HELD.with(|h| h.get())
    }
    #[cfg(test)]
    pub fn set(mask: u32) {
        HELD.with(|h| h.set(mask))
    }

    // The host library outside tests never takes a lock in earnest.
    #[cfg(not(any(test, target_os = "none")))]
    pub fn get() -> u32 {
        0
    }
    #[cfg(not(any(test, target_os = "none")))]
    pub fn set(_: u32) {}
}

/// Whether taking a lock of `level` while holding the levels in `held_mask` keeps the
/// order. Pure, for the host tests.
pub fn order_allows(held_mask: u32, level: LockLevel) -> bool {
    let bit = 1u32 << level as u32;
    let above_or_same = held_mask & !(bit - 1);
    above_or_same == 0 || (above_or_same == bit && level.nests_with_itself())
}

/// Levels this CPU holds now (0 when the check is compiled out).
pub fn held_levels() -> u32 {
    #[cfg(any(test, feature = "lockcheck"))]
    return held::get();
    #[cfg(not(any(test, feature = "lockcheck")))]
    0
}

/// What a guard remembers for the check: the level it holds, and whether its
/// acquisition set the level's bit (so its release clears it). Empty without the check.
#[cfg(any(test, feature = "lockcheck"))]
#[derive(Clone, Copy)]
struct Held {
    level: LockLevel,
    set_bit: bool,
}
#[cfg(not(any(test, feature = "lockcheck")))]
#[derive(Clone, Copy)]
struct Held;

/// Note the acquisition of a lock of `level`.
#[inline]
#[cfg(any(test, feature = "lockcheck"))]
fn note_acquire(level: LockLevel) -> Held {
    let mask = held::get();
    if !order_allows(mask, level) {
        lock_order_violation(mask, level);
    }
    let bit = 1u32 << level as u32;
    held::set(mask | bit);
    Held {
        level,
        set_bit: mask & bit == 0,
    }
}
#[inline]
#[cfg(not(any(test, feature = "lockcheck")))]
fn note_acquire(_: LockLevel) -> Held {
    Held
}

#[inline]
#[cfg(any(test, feature = "lockcheck"))]
fn note_release(held: Held) {
    if held.set_bit {
        held::set(held::get() & !(1u32 << held.level as u32));
    }
}
#[inline]
#[cfg(not(any(test, feature = "lockcheck")))]
fn note_release(_: Held) {}

/// An acquisition that the check does not track (`try_lock`).
#[cfg(any(test, feature = "lockcheck"))]
fn untracked(level: LockLevel) -> Held {
    Held {
        level,
        set_bit: false,
    }
}
#[cfg(not(any(test, feature = "lockcheck")))]
fn untracked(_: LockLevel) -> Held {
    Held
}

#[cold]
#[cfg(any(test, feature = "lockcheck"))]
fn lock_order_violation(mask: u32, level: LockLevel) -> ! {
    let highest = 31 - mask.leading_zeros();
    panic!(
        "lock order violated: taking {level:?} while holding level {highest} (held mask {mask:#x})"
    );
}

/// How a waiting CPU spins: with `yield`, a hint a real core treats as a pause and that
/// makes QEMU, when it runs the CPUs one at a time (`-icount`), switch to another CPU,
/// likely the holder, instead of letting the waiter spin out its whole time slice (which
/// made a contended lock cost hundreds of thousands of instructions there). `spin`'s
/// default, `core::hint::spin_loop`, is an `isb` on AArch64, which QEMU does not treat so.
pub struct Relax;

/// One pause of a CPU waiting for another (see [`Relax`]).
#[inline(always)]
pub fn cpu_relax() {
    <Relax as spin::relax::RelaxStrategy>::relax();
}

impl spin::relax::RelaxStrategy for Relax {
    #[inline(always)]
    fn relax() {
        #[cfg(target_arch = "aarch64")]
        // SAFETY: a hint instruction: no memory, registers or flags are touched.
        unsafe {
            core::arch::asm!("yield", options(nomem, nostack, preserves_flags))
        };
        #[cfg(not(target_arch = "aarch64"))]
        core::hint::spin_loop();
    }
}

/// A spinlock that masks IRQs on this CPU from `lock` until the guard drops.
pub struct IrqSpinLock<T> {
    inner: spin::mutex::SpinMutex<T, Relax>,
    level: LockLevel,
}

pub struct IrqSpinLockGuard<'a, T> {
    guard: ManuallyDrop<spin::mutex::SpinMutexGuard<'a, T>>,
    saved: u64,
    held: Held,
}

impl<T> IrqSpinLock<T> {
    pub const fn new(level: LockLevel, value: T) -> Self {
        IrqSpinLock {
            inner: spin::mutex::SpinMutex::<T, Relax>::new(value),
            level,
        }
    }

    pub fn lock(&self) -> IrqSpinLockGuard<'_, T> {
        let saved = irq_save();
        let held = note_acquire(self.level);
        IrqSpinLockGuard {
            guard: ManuallyDrop::new(self.inner.lock()),
            saved,
            held,
        }
    }

    /// The protected data through exclusive access to the lock (no other holder can
    /// exist).
    pub fn get_mut(&mut self) -> &mut T {
        self.inner.get_mut()
    }

    /// The protected data, bypassing the lock.
    ///
    /// # Safety
    /// Only for last-resort paths (the console of a dying kernel) where racing a holder
    /// that is presumed stuck is accepted.
    pub unsafe fn data_ptr(&self) -> *mut T {
        self.inner.as_mut_ptr()
    }

    /// Take the lock if it is free; for paths that must not wait (panic reports). Not
    /// checked against the order: a failed attempt cannot deadlock.
    pub fn try_lock(&self) -> Option<IrqSpinLockGuard<'_, T>> {
        let saved = irq_save();
        match self.inner.try_lock() {
            Some(guard) => Some(IrqSpinLockGuard {
                guard: ManuallyDrop::new(guard),
                saved,
                held: untracked(self.level),
            }),
            None => {
                irq_restore(saved);
                None
            }
        }
    }
}

impl<T> Deref for IrqSpinLockGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.guard
    }
}

impl<T> DerefMut for IrqSpinLockGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        &mut self.guard
    }
}

impl<T> Drop for IrqSpinLockGuard<'_, T> {
    fn drop(&mut self) {
        // Release the lock before unmasking interrupts, so that a handler that takes it
        // cannot find it held by the code it interrupted.
        // SAFETY: `guard` is not used again; `self` is being dropped.
        unsafe { ManuallyDrop::drop(&mut self.guard) };
        note_release(self.held);
        irq_restore(self.saved);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lock_and_try_lock() {
        let l = IrqSpinLock::new(LockLevel::Heap, 5);
        {
            let mut g = l.lock();
            *g += 1;
            assert!(l.try_lock().is_none());
        }
        assert_eq!(*l.try_lock().expect("free again"), 6);
        assert_eq!(held_levels(), 0);
    }

    #[test]
    fn order_rules() {
        use LockLevel::*;
        let bit = |l: LockLevel| 1u32 << l as u32;
        assert!(order_allows(0, Heap));
        assert!(order_allows(bit(WaitBucket), ThreadState));
        assert!(order_allows(bit(WaitBucket) | bit(ThreadState), TimerQueue));
        assert!(!order_allows(bit(ThreadState), WaitBucket));
        assert!(order_allows(bit(WaitBucket), WaitBucket));
        assert!(!order_allows(
            bit(WaitBucket) | bit(ThreadState),
            WaitBucket
        ));
        assert!(!order_allows(bit(Heap), Frames));
        assert!(order_allows(bit(RunQueue), RunQueue));
        assert!(!order_allows(bit(ThreadState), ThreadState));
        assert!(!order_allows(bit(RunQueue) | bit(Frames), RunQueue));
    }

    #[test]
    fn nested_locks_in_order_are_tracked_and_released() {
        let outer = IrqSpinLock::new(LockLevel::RunQueue, ());
        let other = IrqSpinLock::new(LockLevel::RunQueue, ());
        let inner = IrqSpinLock::new(LockLevel::Frames, ());
        {
            let _a = outer.lock();
            let _b = other.lock();
            let _c = inner.lock();
            assert_eq!(
                held_levels(),
                1 << LockLevel::RunQueue as u32 | 1 << LockLevel::Frames as u32
            );
        }
        assert_eq!(held_levels(), 0);
    }

    #[test]
    #[should_panic(expected = "lock order violated")]
    fn out_of_order_acquisition_is_caught() {
        let inner = IrqSpinLock::new(LockLevel::Frames, ());
        let outer = IrqSpinLock::new(LockLevel::VmMap, ());
        let _c = inner.lock();
        let _a = outer.lock();
    }
}
