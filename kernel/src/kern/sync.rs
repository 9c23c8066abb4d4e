//! Spinlocks that mask interrupts on the local CPU while held, for state that interrupt
//! handlers also touch (DESIGN.md 5). Lock order is written where the locks are declared.

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

/// A spinlock that masks IRQs on this CPU from `lock` until the guard drops.
pub struct IrqSpinLock<T> {
    inner: spin::mutex::SpinMutex<T>,
}

pub struct IrqSpinLockGuard<'a, T> {
    guard: ManuallyDrop<spin::mutex::SpinMutexGuard<'a, T>>,
    saved: u64,
}

impl<T> IrqSpinLock<T> {
    pub const fn new(value: T) -> Self {
        IrqSpinLock {
            inner: spin::mutex::SpinMutex::new(value),
        }
    }

    pub fn lock(&self) -> IrqSpinLockGuard<'_, T> {
        let saved = irq_save();
        IrqSpinLockGuard {
            guard: ManuallyDrop::new(self.inner.lock()),
            saved,
        }
    }

    /// The protected data, bypassing the lock.
    ///
    /// # Safety
    /// Only for last-resort paths (the console of a dying kernel) where racing a holder
    /// that is presumed stuck is accepted.
    pub unsafe fn data_ptr(&self) -> *mut T {
        self.inner.as_mut_ptr()
    }

    /// Take the lock if it is free; for paths that must not wait (panic reports).
    pub fn try_lock(&self) -> Option<IrqSpinLockGuard<'_, T>> {
        let saved = irq_save();
        match self.inner.try_lock() {
            Some(guard) => Some(IrqSpinLockGuard {
                guard: ManuallyDrop::new(guard),
                saved,
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
        irq_restore(self.saved);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lock_and_try_lock() {
        let l = IrqSpinLock::new(5);
        {
            let mut g = l.lock();
            *g += 1;
            assert!(l.try_lock().is_none());
        }
        assert_eq!(*l.try_lock().expect("free again"), 6);
    }
}
