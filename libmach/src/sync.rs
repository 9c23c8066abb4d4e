//! A spin lock for user threads: spins briefly on an atomic, then yields the processor
//! (`swtch`) between attempts so a preempted holder gets to run. No kernel object, so it
//! is fit for the allocator; not fair and not for long critical sections.

use core::cell::UnsafeCell;
use core::ops::{Deref, DerefMut};
use core::sync::atomic::{AtomicBool, Ordering};

use crate::traps;

/// Attempts between yields.
const SPINS_BEFORE_YIELD: u32 = 64;

/// Mutual exclusion over a `T`.
pub struct SpinLock<T> {
    locked: AtomicBool,
    value: UnsafeCell<T>,
}

// SAFETY: the lock hands out access to `T` to one thread at a time, so it may be shared
// when `T` may be sent.
unsafe impl<T: Send> Sync for SpinLock<T> {}
// SAFETY: moving the lock moves the `T`.
unsafe impl<T: Send> Send for SpinLock<T> {}

impl<T> SpinLock<T> {
    pub const fn new(value: T) -> Self {
        Self {
            locked: AtomicBool::new(false),
            value: UnsafeCell::new(value),
        }
    }

    /// Takes the lock, yielding while another thread holds it.
    pub fn lock(&self) -> SpinLockGuard<'_, T> {
        let mut spins = 0;
        loop {
            if self.try_acquire() {
                return SpinLockGuard { lock: self };
            }
            spins += 1;
            if spins < SPINS_BEFORE_YIELD {
                core::hint::spin_loop();
            } else {
                spins = 0;
                traps::swtch();
            }
        }
    }

    /// Takes the lock if it is free.
    pub fn try_lock(&self) -> Option<SpinLockGuard<'_, T>> {
        self.try_acquire().then_some(SpinLockGuard { lock: self })
    }

    fn try_acquire(&self) -> bool {
        !self.locked.load(Ordering::Relaxed)
            && self
                .locked
                .compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed)
                .is_ok()
    }

    pub fn into_inner(self) -> T {
        self.value.into_inner()
    }
}

/// Access to the value while the lock is held; unlocks when dropped.
pub struct SpinLockGuard<'a, T> {
    lock: &'a SpinLock<T>,
}

impl<T> Deref for SpinLockGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: the guard exists only while this thread holds the lock.
        unsafe { &*self.lock.value.get() }
    }
}

impl<T> DerefMut for SpinLockGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: the guard exists only while this thread holds the lock, and `&mut self`
        // makes this the only access through it.
        unsafe { &mut *self.lock.value.get() }
    }
}

impl<T> Drop for SpinLockGuard<'_, T> {
    fn drop(&mut self) {
        self.lock.locked.store(false, Ordering::Release);
    }
}
