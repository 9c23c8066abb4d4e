//! Threads in the calling task, made as GNU Mach's test library makes them: a stack from
//! `vm_allocate` with an inaccessible guard page below it (`vm_protect`), then
//! `thread_create` (the thread starts suspended), `thread_set_state` (pc, sp, `x0`) and
//! `thread_resume`. [`JoinHandle::join`] blocks in `mach_msg` until the kernel's dead-name
//! notification says the thread's port died, which happens only once the thread has left
//! user mode for good: then its stack and result are the joiner's. A thread ends with
//! `thread_terminate` of itself. A panic in any thread ends the whole task. No thread-local
//! storage, no names.

use alloc::boxed::Box;
use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicU32, Ordering};

use mach_abi::message::option;
use mach_abi::mig::{PortArg, PortName, PortRight};
use mach_abi::thread_state::{AARCH64_THREAD_STATE, Aarch64ThreadState};
use mach_abi::traps::PAGE_SIZE;

use crate::KernReturn;
use crate::ipc::{self, MachMsg, ReceiveRight, SendRight};
use crate::mig::{mach, mach_port};
use crate::traps;

/// Default stack size of a new thread (the guard page comes on top).
pub const DEFAULT_STACK_SIZE: usize = 128 << 10;

/// `MACH_NOTIFY_DEAD_NAME` (`mach/notify.h`).
const MACH_NOTIFY_DEAD_NAME: i32 = 0o110;
/// `VM_PROT_NONE`.
const VM_PROT_NONE: i32 = 0;

/// Shared between a thread and its [`JoinHandle`]: the result and the flag that says the
/// closure has returned.
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

/// What `spawn` has made so far, undone if a later step fails.
struct Parts {
    stack_base: u64,
    stack_len: u64,
    thread: Option<SendRight>,
    notify: Option<ReceiveRight>,
}

impl Drop for Parts {
    fn drop(&mut self) {
        if let Some(thread) = self.thread.take() {
            // Never resumed, so it never ran: end it before its stack goes.
            let _ = mach::thread_terminate(&mut ipc::transport(), &thread);
            wait_dead(self.notify.as_ref(), &thread);
        }
        drop(self.notify.take());
        // SAFETY: no thread of ours runs on the stack (the new one never ran and is gone).
        let _ = unsafe {
            traps::vm_deallocate(traps::mach_task_self(), self.stack_base, self.stack_len)
        };
    }
}

/// Wait for the dead-name notification of `thread` on `notify` (if there is a port).
fn wait_dead(notify: Option<&ReceiveRight>, thread: &SendRight) {
    if let Some(notify) = notify {
        let mut buf = [0u8; 64];
        loop {
            // SAFETY: a receive into our own buffer.
            let r = unsafe {
                ipc::Trap.mach_msg(
                    &mut buf,
                    option::RCV_MSG,
                    0,
                    notify.name(),
                    0,
                    PortName::NULL,
                )
            };
            if r != KernReturn::RcvInterrupted {
                break;
            }
        }
    }
    // The name is dead now: every right under it goes.
    let _ = mach_port::mach_port_destroy(&mut ipc::transport(), &ipc::task_self(), thread.name());
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
        let stack_len = stack_size + PAGE_SIZE;
        let stack_base = traps::vm_allocate(task, 0, stack_len, true)?;
        let mut parts = Parts {
            stack_base,
            stack_len,
            thread: None,
            notify: None,
        };
        // The guard: a stack overflow faults instead of writing below the stack.
        crate::kern::vm_protect(stack_base, PAGE_SIZE, false, VM_PROT_NONE)?;
        let transport = &mut ipc::transport();
        let thread = mach::thread_create(transport, &ipc::task_self())?.child_thread;
        let thread = &*parts.thread.insert(thread);
        let notify_name = traps::mach_port_allocate(task, PortRight::Receive)?;
        let notify = &*parts.notify.insert(ReceiveRight::from_name(notify_name));
        let previous = mach_port::mach_port_request_notification(
            transport,
            &ipc::task_self(),
            thread.name(),
            MACH_NOTIFY_DEAD_NAME,
            0,
            PortArg::MakeSendOnce(notify),
        )?;
        drop(previous);

        let packet = Box::into_raw(Box::new(Packet {
            done: AtomicU32::new(0),
            result: UnsafeCell::new(None),
        }));
        let start = Box::into_raw(Box::new(Start { f, packet }));
        let entry = thread_main::<F, T> as extern "C" fn(*mut Start<F, T>) -> !;
        let mut x = [0; 31];
        x[0] = start as u64;
        let state = Aarch64ThreadState {
            x,
            pc: entry as usize as u64,
            // Page-aligned, so 16-byte aligned as the ABI wants.
            sp: stack_base + stack_len,
            ..Aarch64ThreadState::default()
        };
        let started = mach::thread_set_state(
            transport,
            thread,
            AARCH64_THREAD_STATE as i32,
            &state.to_words(),
        )
        .and_then(|()| mach::thread_resume(transport, thread));
        if let Err(code) = started {
            // SAFETY: the thread never ran, so `start` and `packet` are ours alone again.
            unsafe {
                drop(Box::from_raw(start));
                drop(Box::from_raw(packet));
            }
            return Err(code);
        }
        let thread = parts.thread.take();
        let notify = parts.notify.take();
        core::mem::forget(parts);
        Ok(JoinHandle {
            packet,
            stack_base,
            stack_len,
            thread,
            notify,
        })
    }
}

/// The new thread's entry: `x0` = the `Start`, `sp` = the top of its stack.
extern "C" fn thread_main<F, T>(start: *mut Start<F, T>) -> !
where
    F: FnOnce() -> T,
{
    run(start);
    // SAFETY: `run` has dropped everything this thread owned (its reply port goes in
    // `thread_terminate_self`); nothing
    // else borrows its stack, which the joiner frees only once the kernel says the thread
    // is gone.
    unsafe { crate::kern::thread_terminate_self() }
}

/// Runs the closure and stores its result. Everything the thread owns is dropped by the
/// time it returns.
#[inline(never)]
fn run<F, T>(start: *mut Start<F, T>)
where
    F: FnOnce() -> T,
{
    // SAFETY: `spawn` passed ownership of the boxed `Start` to this thread.
    let Start { f, packet } = *unsafe { Box::from_raw(start) };
    let value = f();
    // SAFETY: until `done` is set, only this thread touches `result`; the packet lives until
    // the handle has seen the thread die.
    unsafe {
        *(*packet).result.get() = Some(value);
        (*packet).done.store(1, Ordering::Release);
    }
}

/// Owns a thread's stack and result. Dropping it without [`join`](Self::join) detaches the
/// thread: its stack, packet and notification port are left to it (a deliberate leak; the
/// task's end reclaims them).
pub struct JoinHandle<T> {
    packet: *mut Packet<T>,
    stack_base: u64,
    stack_len: u64,
    thread: Option<SendRight>,
    notify: Option<ReceiveRight>,
}

// SAFETY: the handle only reads the result after the thread is gone, so it may move to
// another thread when `T` may.
unsafe impl<T: Send> Send for JoinHandle<T> {}
// SAFETY: `&JoinHandle` only allows `port` and `is_finished`, which read a name and an
// atomic.
unsafe impl<T: Send> Sync for JoinHandle<T> {}

impl<T> JoinHandle<T> {
    /// The calling task's name for the thread's port (a send right the handle owns).
    pub fn port(&self) -> PortName {
        self.thread.as_ref().map_or(PortName::NULL, |t| t.name())
    }

    /// The thread's port, to call the kernel's thread routines on.
    pub fn thread(&self) -> &SendRight {
        self.thread.as_ref().expect("a live handle has its thread")
    }

    /// Whether the thread's closure has returned (it may still be leaving).
    pub fn is_finished(&self) -> bool {
        // SAFETY: the packet lives as long as the handle.
        unsafe { (*self.packet).done.load(Ordering::Acquire) != 0 }
    }

    /// Waits, blocked in `mach_msg`, for the thread to be gone, and returns what its closure
    /// returned.
    pub fn join(mut self) -> T {
        let thread = self.thread.take().expect("a live handle has its thread");
        wait_dead(self.notify.as_ref(), &thread);
        core::mem::forget(thread);
        // SAFETY: the thread is gone: it stored the result before it ended.
        let result = unsafe { (*(*self.packet).result.get()).take() };
        // Dropping `self` frees the stack and the packet.
        result.expect("thread ended without a result")
    }
}

impl<T> Drop for JoinHandle<T> {
    fn drop(&mut self) {
        if self.thread.is_some() {
            // Detached while it may run: it still needs its stack and packet.
            core::mem::forget(self.notify.take());
            return;
        }
        drop(self.notify.take());
        // SAFETY: the thread is gone (`join` saw it die): nothing uses its stack or packet.
        unsafe {
            let _ = traps::vm_deallocate(traps::mach_task_self(), self.stack_base, self.stack_len);
            drop(Box::from_raw(self.packet));
        }
    }
}
