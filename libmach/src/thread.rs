//! Threads in the calling task: [`spawn`] a closure on a fresh `vm_allocate` stack with the
//! temporary `THREAD_CREATE` trap, [`JoinHandle::join`] it by yielding until it is done.
//! The thread's very last user-mode action is one assembly sequence: a release store of its
//! `done` flag, then `THREAD_EXIT`, so once the joiner sees the flag the stack is no longer
//! used and is unmapped at once. A panic in any thread ends the whole task. No thread-local
//! storage, no names, no guard page below the stack (there is no `vm_protect` yet).

use alloc::boxed::Box;
use core::arch::asm;
use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicU32, Ordering};

use mach_abi::traps::{PAGE_SIZE, temporary};

use crate::KernReturn;
use crate::traps;

/// Default stack size of a new thread.
pub const DEFAULT_STACK_SIZE: usize = 128 << 10;

/// Shared between a thread and its [`JoinHandle`]: the result and the flag that says the
/// thread will not touch its stack or this packet again.
struct Packet<T> {
    done: AtomicU32,
    result: UnsafeCell<Option<T>>,
}

/// What the new thread gets in `x0`.
struct Start<F, T> {
    f: F,
    packet: *const Packet<T>,
}

/// Runs `f` in a new thread with the default stack size.
pub fn spawn<F, T>(f: F) -> Result<JoinHandle<T>, KernReturn>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    Builder::new().spawn(f)
}

/// Thread settings.
#[derive(Clone, Copy, Debug)]
pub struct Builder {
    stack_size: usize,
}

impl Default for Builder {
    fn default() -> Self {
        Self::new()
    }
}

impl Builder {
    pub const fn new() -> Self {
        Self {
            stack_size: DEFAULT_STACK_SIZE,
        }
    }

    /// Stack size in bytes (rounded up to whole pages).
    pub const fn stack_size(mut self, bytes: usize) -> Self {
        self.stack_size = bytes;
        self
    }

    /// Runs `f` in a new thread.
    pub fn spawn<F, T>(self, f: F) -> Result<JoinHandle<T>, KernReturn>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        let task = traps::mach_task_self();
        let stack_size = (self.stack_size.max(1) as u64).div_ceil(PAGE_SIZE) * PAGE_SIZE;
        let stack_base = traps::vm_allocate(task, 0, stack_size, true)?;
        let packet = Box::into_raw(Box::new(Packet {
            done: AtomicU32::new(0),
            result: UnsafeCell::new(None),
        }));
        let start = Box::into_raw(Box::new(Start { f, packet }));
        let entry = thread_main::<F, T> as extern "C" fn(*mut Start<F, T>) -> !;
        // SAFETY: `thread_main` runs on the fresh stack (page-aligned top, so 16-aligned),
        // takes ownership of `start` and ends with THREAD_EXIT.
        let created = unsafe {
            traps::thread_create(entry as usize as u64, stack_base + stack_size, start as u64)
        };
        match created {
            Ok(id) => Ok(JoinHandle {
                packet,
                stack_base,
                stack_size,
                id,
            }),
            Err(code) => {
                // SAFETY: no thread was made, so `start`, `packet` and the stack are ours
                // alone again.
                unsafe {
                    drop(Box::from_raw(start));
                    drop(Box::from_raw(packet));
                    let _ = traps::vm_deallocate(task, stack_base, stack_size);
                }
                Err(code)
            }
        }
    }
}

/// The new thread's entry: `x0` = the `Start`, `sp` = the top of its stack.
extern "C" fn thread_main<F, T>(start: *mut Start<F, T>) -> !
where
    F: FnOnce() -> T,
{
    let done = run(start);
    // SAFETY: `run` has dropped everything this thread owned; the packet outlives the flag
    // store because the handle frees it only after seeing the flag.
    unsafe { finish(done) }
}

/// Runs the closure and stores its result; returns the flag to set. Everything the thread
/// owns is dropped by the time it returns.
#[inline(never)]
fn run<F, T>(start: *mut Start<F, T>) -> *const AtomicU32
where
    F: FnOnce() -> T,
{
    // SAFETY: `spawn` passed ownership of the boxed `Start` to this thread.
    let Start { f, packet } = *unsafe { Box::from_raw(start) };
    let value = f();
    // The thread's reply port, if it made one, goes with it.
    crate::ipc::release_reply_port_at_exit();
    // SAFETY: until `done` is set, only this thread touches `result`; the packet lives until
    // the handle has seen `done`.
    unsafe {
        *(*packet).result.get() = Some(value);
        &raw const (*packet).done
    }
}

/// Sets `done` (release) and leaves with THREAD_EXIT without touching the stack in between.
///
/// # Safety
///
/// `done` must point to a live flag; the caller must own nothing on the stack that still
/// needs dropping.
unsafe fn finish(done: *const AtomicU32) -> ! {
    // SAFETY: `done` is valid (caller); `stlr` is the release store the joiner's acquire
    // load pairs with; then the trap ends the thread. Neither instruction uses the stack,
    // so the joiner may unmap it as soon as the flag shows.
    unsafe {
        asm!(
            "stlr {one:w}, [{done}]",
            "svc #0",
            done = in(reg) done,
            one = in(reg) 1u32,
            in("x8") (temporary::THREAD_EXIT as i64).wrapping_neg(),
            options(noreturn, nostack),
        )
    }
}

/// Owns a thread's stack and result. Dropping it without [`join`](Self::join) detaches the
/// thread: if it is still running, its stack and packet are left to it (a deliberate leak;
/// the task's end reclaims them).
pub struct JoinHandle<T> {
    packet: *mut Packet<T>,
    stack_base: u64,
    stack_size: u64,
    id: u64,
}

// SAFETY: the handle only reads the result after the thread published it (acquire on
// `done`), so it may move to another thread when `T` may.
unsafe impl<T: Send> Send for JoinHandle<T> {}
// SAFETY: `&JoinHandle` only allows `id` and `is_finished`, which read atomics and plain
// data.
unsafe impl<T: Send> Sync for JoinHandle<T> {}

impl<T> JoinHandle<T> {
    /// The kernel's id for the thread (from THREAD_CREATE).
    pub fn id(&self) -> u64 {
        self.id
    }

    /// Whether the thread has finished its closure and is leaving or gone.
    pub fn is_finished(&self) -> bool {
        // SAFETY: the packet lives as long as the handle.
        unsafe { (*self.packet).done.load(Ordering::Acquire) != 0 }
    }

    /// Waits for the thread to finish, yielding the processor meanwhile, and returns what its
    /// closure returned.
    pub fn join(self) -> T {
        while !self.is_finished() {
            traps::swtch();
        }
        // SAFETY: `done` is set, so the thread stored the result and will not touch the
        // packet again; the acquire load made the store visible.
        let result = unsafe { (*(*self.packet).result.get()).take() };
        // Dropping `self` frees the stack and the packet.
        result.expect("thread finished without a result")
    }
}

impl<T> Drop for JoinHandle<T> {
    fn drop(&mut self) {
        if !self.is_finished() {
            // Detached while running: the thread still needs both. Leaked on purpose.
            return;
        }
        // SAFETY: the thread set `done` as its last access to memory of ours and went to
        // THREAD_EXIT without using its stack again, so both are free to go.
        unsafe {
            let _ = traps::vm_deallocate(traps::mach_task_self(), self.stack_base, self.stack_size);
            drop(Box::from_raw(self.packet));
        }
    }
}
