//! Waiting and waking, the mechanism (DESIGN.md 5): hashed event queues, per-processor
//! timeout queues, and the wait/wake calls that keep `sched::wait`'s state machine under
//! each thread's lock. `assert_wait` + `thread_block` wait; `thread_wakeup` and
//! `clear_wait` end waits, each exactly once.
//!
//! Both kinds of queue are intrusive doubly linked lists through fields of `Thread`, so
//! waiting and waking never allocate, and ending a wait (a wake-up, a timeout, an
//! interruption) unlinks the thread in constant time. Each list holds one strong
//! reference to every thread on it (`Arc::into_raw` on the way in, `Arc::from_raw` on the
//! way out); references taken off a list are dropped only once every lock is released.
//!
//! Lock order (`sync::LockLevel`): wait bucket, then the thread's state, then a
//! timer queue, then run queues. A thread whose wait ended after it blocked is put on a
//! run queue only once the CPU that switched it out has saved it (`on_cpu` clear): the
//! waker waits for that, never the CPU that is switching.

extern crate alloc;

use super::wait::{WaitResult, WaitSeq, Wake};
use crate::ids::CpuId;
use crate::kern::thread::{NO_PROCESSOR, Thread};
use crate::sync::{IrqSpinLock, LockLevel};
use alloc::sync::Arc;
use core::cell::UnsafeCell;
use core::ptr;
use core::sync::atomic::{AtomicU32, Ordering};

/// What a thread waits on: a kernel object's address and a key within it (for waits on a
/// user address: the task and the address).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Event {
    pub object: u64,
    pub key: u64,
}

/// A thread's links in an event bucket.
pub struct WaitLinks {
    prev: *const Thread,
    next: *const Thread,
    event: Event,
    linked: bool,
}

impl WaitLinks {
    pub const fn new() -> Self {
        WaitLinks {
            prev: ptr::null(),
            next: ptr::null(),
            event: Event { object: 0, key: 0 },
            linked: false,
        }
    }
}

impl Default for WaitLinks {
    fn default() -> Self {
        Self::new()
    }
}

const BUCKETS: usize = 64;

struct Bucket {
    head: *const Thread,
}

// SAFETY: the raw pointers are strong references to threads (see the module comment),
// only followed under the bucket's lock.
unsafe impl Send for Bucket {}

static WAIT_BUCKETS: [IrqSpinLock<Bucket>; BUCKETS] =
    [const { IrqSpinLock::new(LockLevel::WaitBucket, Bucket { head: ptr::null() }) }; BUCKETS];

fn bucket_index(event: Event) -> usize {
    let h = (event.object ^ event.key.rotate_left(29)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    (h >> 58) as usize % BUCKETS
}

fn bucket(event: Event) -> &'static IrqSpinLock<Bucket> {
    &WAIT_BUCKETS[bucket_index(event)]
}

/// Put `thread` at the head of `bucket` (the oldest waiters are at the tail, where
/// `thread_wakeup` starts), which takes a reference to it.
///
/// # Safety
/// `bucket` is locked by the caller, and `thread` is on no bucket.
unsafe fn link(bucket: &mut Bucket, thread: &Arc<Thread>, event: Event) {
    let raw = Arc::into_raw(thread.clone());
    // SAFETY: the bucket lock covers `wait_links` of every thread on the bucket and of
    // the one being added (on no other bucket).
    unsafe {
        let links = &mut *thread.wait_links.get();
        // Relinking a linked thread would leave its old bucket pointing at links that now
        // belong to another list: stop loudly rather than corrupt both.
        assert!(
            !links.linked,
            "thread {} waits again while still on an event queue",
            thread.id
        );
        links.prev = ptr::null();
        links.next = bucket.head;
        links.event = event;
        links.linked = true;
        if !bucket.head.is_null() {
            (*(*bucket.head).wait_links.get()).prev = raw;
        }
    }
    bucket.head = raw;
}

/// Take `thread` off `bucket` if it is on it; returns the bucket's reference.
///
/// # Safety
/// `bucket` is locked by the caller and is the one the thread's event hashes to.
unsafe fn unlink(bucket: &mut Bucket, thread: &Thread) -> Option<Arc<Thread>> {
    // SAFETY: as in `link`; neighbours are threads on the same bucket.
    unsafe {
        let links = &mut *thread.wait_links.get();
        if !links.linked {
            return None;
        }
        if links.prev.is_null() {
            bucket.head = links.next;
        } else {
            (*(*links.prev).wait_links.get()).next = links.next;
        }
        if !links.next.is_null() {
            (*(*links.next).wait_links.get()).prev = links.prev;
        }
        links.prev = ptr::null();
        links.next = ptr::null();
        links.linked = false;
        Some(Arc::from_raw(thread as *const Thread))
    }
}

/// Which of a thread's two timers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum TimerKind {
    /// The timeout of the current wait.
    Wait = 0,
    /// The end of a priority depression.
    Depress = 1,
}

struct TimerLinks {
    prev: *const TimerNode,
    next: *const TimerNode,
    deadline: u64,
    seq: WaitSeq,
    /// The thread, as a strong reference while the node is queued.
    owner: *const Thread,
}

/// One timer of a thread, on at most one processor's timer queue.
pub struct TimerNode {
    /// The processor whose queue holds the node, or `NO_PROCESSOR`. Changed only under
    /// that queue's lock (and, to arm, also under the thread's lock).
    cpu: AtomicU32,
    kind: TimerKind,
    links: UnsafeCell<TimerLinks>,
}

impl TimerNode {
    pub const fn new(kind: TimerKind) -> Self {
        TimerNode {
            cpu: AtomicU32::new(NO_PROCESSOR),
            kind,
            links: UnsafeCell::new(TimerLinks {
                prev: ptr::null(),
                next: ptr::null(),
                deadline: 0,
                seq: 0,
                owner: ptr::null(),
            }),
        }
    }
}

/// A processor's timeouts, soonest first.
pub struct TimerQueue {
    head: *const TimerNode,
    len: usize,
}

// SAFETY: the raw pointers lead to timer nodes of threads the queue holds references to,
// only followed under the queue's lock.
unsafe impl Send for TimerQueue {}

impl TimerQueue {
    pub const fn new() -> Self {
        TimerQueue {
            head: ptr::null(),
            len: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Insert `node` in deadline order (after others with the same deadline).
    ///
    /// # Safety
    /// The queue is locked; `node` is on no queue and its links are set.
    unsafe fn insert(&mut self, node: &TimerNode) {
        // SAFETY: every node reached is on this queue (locked); `node` is ours to link.
        unsafe {
            let deadline = (*node.links.get()).deadline;
            let mut prev: *const TimerNode = ptr::null();
            let mut at = self.head;
            while !at.is_null() && (*(*at).links.get()).deadline <= deadline {
                prev = at;
                at = (*(*at).links.get()).next;
            }
            let links = &mut *node.links.get();
            links.prev = prev;
            links.next = at;
            if prev.is_null() {
                self.head = node;
            } else {
                (*(*prev).links.get()).next = node;
            }
            if !at.is_null() {
                (*(*at).links.get()).prev = node;
            }
        }
        self.len += 1;
    }

    /// Take `node` off the queue; returns the thread reference it held.
    ///
    /// # Safety
    /// The queue is locked and `node` is on it.
    unsafe fn remove(&mut self, node: &TimerNode) -> Arc<Thread> {
        // SAFETY: as in `insert`.
        unsafe {
            let links = &mut *node.links.get();
            if links.prev.is_null() {
                self.head = links.next;
            } else {
                (*(*links.prev).links.get()).next = links.next;
            }
            if !links.next.is_null() {
                (*(*links.next).links.get()).prev = links.prev;
            }
            links.prev = ptr::null();
            links.next = ptr::null();
            node.cpu.store(NO_PROCESSOR, Ordering::Relaxed);
            self.len -= 1;
            Arc::from_raw(core::mem::replace(&mut links.owner, ptr::null()))
        }
    }

    /// The first node if its deadline is at or before `now`: taken off, with its kind and
    /// wait number.
    fn pop_expired(&mut self, now: u64) -> Option<(Arc<Thread>, TimerKind, WaitSeq)> {
        if self.head.is_null() {
            return None;
        }
        // SAFETY: the head is a node on this queue (locked).
        unsafe {
            let head = &*self.head;
            let links = &*head.links.get();
            if links.deadline > now {
                return None;
            }
            let (kind, seq) = (head.kind, links.seq);
            Some((self.remove(head), kind, seq))
        }
    }
}

impl Default for TimerQueue {
    fn default() -> Self {
        Self::new()
    }
}

/// Arm `thread`'s timer `kind` for `deadline` on this processor's queue.
///
/// Caller holds the thread's state lock, so no one else arms or cancels it meanwhile; the
/// timer must not be armed.
fn arm_timer(thread: &Arc<Thread>, kind: TimerKind, deadline: u64, seq: WaitSeq) {
    let cpu = crate::percpu::current_cpu();
    let node = &thread.timers[kind as usize];
    let mut q = super::processor(cpu).timers.lock();
    // SAFETY: the node is on no queue (the caller's contract), so its links are ours;
    // the queue is locked for the insertion.
    unsafe {
        let links = &mut *node.links.get();
        links.deadline = deadline;
        links.seq = seq;
        links.owner = Arc::into_raw(thread.clone());
        q.insert(node);
    }
    node.cpu.store(cpu.index() as u32, Ordering::Relaxed);
}

/// Take `thread`'s timer `kind` off its queue if it is on one; returns the queue's
/// reference for the caller to drop once its locks are released.
fn cancel_timer(thread: &Thread, kind: TimerKind) -> Option<Arc<Thread>> {
    let node = &thread.timers[kind as usize];
    let cpu = node.cpu.load(Ordering::Relaxed);
    if cpu == NO_PROCESSOR {
        return None;
    }
    let mut q = super::processor(CpuId::new(cpu as usize)).timers.lock();
    // The timer may have fired meanwhile (taken off by its processor's tick).
    if node.cpu.load(Ordering::Relaxed) != cpu {
        return None;
    }
    // SAFETY: the node is on this queue (checked under its lock).
    Some(unsafe { q.remove(node) })
}

/// Why `assert_wait` refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WaitError {
    /// The thread already waits (a kernel bug in the caller).
    AlreadyWaiting,
    /// Neither an event nor a deadline: nothing could ever end the wait.
    Unbounded,
}

/// Start a wait of the running thread on `event` and/or until the counter reaches
/// `deadline`. It blocks at the next `thread_block`, unless the wait ends first.
pub fn assert_wait(
    event: Option<Event>,
    deadline: Option<u64>,
    interruptible: bool,
) -> Result<WaitSeq, WaitError> {
    if event.is_none() && deadline.is_none() {
        return Err(WaitError::Unbounded);
    }
    let me = super::current_thread();
    let mut bucket_guard = event.map(|e| bucket(e).lock());
    let mut st = me.wait.lock();
    let seq = st
        .assert_wait(event, interruptible)
        .map_err(|_| WaitError::AlreadyWaiting)?;
    if let (Some(b), Some(e)) = (bucket_guard.as_mut(), event) {
        // SAFETY: the bucket of `e` is locked; a thread that was not waiting is on no
        // bucket.
        unsafe { link(b, &me, e) };
    }
    if let Some(deadline) = deadline {
        arm_timer(&me, TimerKind::Wait, deadline, seq);
    }
    Ok(seq)
}

/// Block the running thread in the wait it asserted; returns how the wait ended.
pub fn thread_block() -> WaitResult {
    super::schedule(super::Switch::Block);
    super::current_thread().wait.lock().result
}

/// End `thread`'s wait number `seq` (any wait if `None`) with `result`. Returns whether
/// this call ended it.
pub fn clear_wait(thread: &Arc<Thread>, seq: Option<WaitSeq>, result: WaitResult) -> bool {
    let mut released: [Option<Arc<Thread>>; 2] = [None, None];
    let wake = loop {
        let (event, seq) = {
            let st = thread.wait.lock();
            if !st.waiting || seq.is_some_and(|s| s != st.seq) {
                return false;
            }
            (st.event, st.seq)
        };
        let mut bucket_guard = event.map(|e| bucket(e).lock());
        let mut st = thread.wait.lock();
        if st.waiting && st.seq == seq && st.event != event {
            // `thread_requeue` moved the wait to another event (and bucket) meanwhile:
            // again, with that one's bucket.
            continue;
        }
        let wake = st.clear(Some(seq), result);
        if wake != Wake::Nothing {
            if let Some(b) = bucket_guard.as_mut() {
                // SAFETY: the bucket of the thread's event is locked.
                released[0] = unsafe { unlink(b, thread) };
            }
            released[1] = cancel_timer(thread, TimerKind::Wait);
        }
        break wake;
    };
    drop(released);
    finish_wake(thread, wake)
}

/// Make the thread runnable if ending its wait requires it.
fn finish_wake(thread: &Arc<Thread>, wake: Wake) -> bool {
    match wake {
        Wake::Nothing => false,
        Wake::StillRunning => true,
        Wake::Enqueue => {
            wait_off_cpu(thread);
            super::setrun(thread.clone());
            true
        }
    }
}

/// Wait until no CPU is still saving `thread` (Linux's `try_to_wake_up` does the same).
/// The switching CPU takes no lock the waker holds, so this ends.
fn wait_off_cpu(thread: &Thread) {
    while thread.on_cpu.load(Ordering::Acquire) {
        crate::sync::cpu_relax();
    }
}

/// Wake threads waiting on `event`: one (the longest waiting) or all. Returns how many
/// waits this ended.
pub fn thread_wakeup(event: Event, all: bool) -> usize {
    wakeup(event, all, false).0
}

/// Wake every thread waiting on `event`, but give back the longest-waiting one that had
/// blocked instead of making it runnable: the caller hands it the CPU (`thread_invoke`, for
/// IPC handoff) or `setrun`s it. It is off every CPU and on no run queue. Returns how many
/// waits this ended, and that thread.
pub fn thread_wakeup_handoff(event: Event) -> (usize, Option<Arc<Thread>>) {
    wakeup(event, true, true)
}

fn wakeup(event: Event, all: bool, keep_one: bool) -> (usize, Option<Arc<Thread>>) {
    // Threads whose wait ended while they were blocked, chained through their (now
    // unused) bucket links, each holding the reference the bucket had. Only blocked
    // threads may be chained: nothing touches a blocked thread's links until it runs again,
    // which it does only once this function puts it on a run queue. A thread still running
    // may wait again at once and reuse its links, so it is never chained.
    let mut to_run: *const Thread = ptr::null();
    let mut woken = 0;
    {
        let mut b = bucket(event).lock();
        // The oldest waiter is the last in the list (new ones go to the head).
        let mut at = b.head;
        // SAFETY: every thread reached is on this bucket, whose lock is held, so its
        // links are ours to read and change.
        unsafe {
            while !at.is_null() && !(*(*at).wait_links.get()).next.is_null() {
                at = (*(*at).wait_links.get()).next;
            }
            while !at.is_null() {
                let thread = &*at;
                let prev = (*thread.wait_links.get()).prev;
                if (*thread.wait_links.get()).event == event {
                    // The thread's lock is held until it is off the bucket: a thread that
                    // had not blocked yet runs on as soon as it is released, and may wait
                    // again at once, on another bucket, relinking these very links.
                    let mut st = thread.wait.lock();
                    let wake = st.clear(None, WaitResult::Awakened);
                    let timer = cancel_timer(thread, TimerKind::Wait);
                    let reference = unlink(&mut b, thread);
                    drop(st);
                    if wake == Wake::Enqueue {
                        if let Some(reference) = reference {
                            (*thread.wait_links.get()).next = to_run;
                            to_run = Arc::into_raw(reference);
                        }
                    } else {
                        // A running thread holds a reference of its own (its CPU's
                        // `current` slot or a run queue), so this is not the last one and
                        // dropping it here frees nothing.
                        drop(reference);
                    }
                    // Likewise: the chain or the running thread still holds one.
                    drop(timer);
                    if wake != Wake::Nothing {
                        woken += 1;
                        if !all {
                            break;
                        }
                    }
                }
                at = prev;
            }
        }
    }
    // The chain runs newest first: the oldest blocked thread is its last.
    let mut kept = None;
    // SAFETY: the chain holds references taken off the bucket above, of blocked threads
    // whose links only this code uses until `setrun`.
    unsafe {
        while !to_run.is_null() {
            let thread = Arc::from_raw(to_run);
            to_run = (*thread.wait_links.get()).next;
            (*thread.wait_links.get()).next = ptr::null();
            wait_off_cpu(&thread);
            if keep_one && to_run.is_null() {
                kept = Some(thread);
            } else {
                super::setrun(thread);
            }
        }
    }
    (woken, kept)
}

/// Make up to `max` threads waiting on `from` wait on `to` instead, the longest waiting
/// first (GNU Mach's `gsync_requeue`); their waits go on (same wait, same timeout), now
/// ended by a wake-up of `to`. Returns how many moved. Both buckets are held throughout,
/// the lower index first, so no wake-up of either event sees a thread half moved.
pub fn thread_requeue(from: Event, to: Event, max: usize) -> usize {
    if from == to || max == 0 {
        return 0;
    }
    let (i, j) = (bucket_index(from), bucket_index(to));
    let mut first = WAIT_BUCKETS[i.min(j)].lock();
    let mut second = (i != j).then(|| WAIT_BUCKETS[i.max(j)].lock());
    let moved = {
        let (src, mut dst): (&mut Bucket, Option<&mut Bucket>) = match second.as_mut() {
            None => (&mut *first, None),
            Some(s) if i < j => (&mut *first, Some(&mut **s)),
            Some(s) => (&mut **s, Some(&mut *first)),
        };
        let mut moved = 0;
        // SAFETY: every thread reached is on the source bucket, whose lock is held; a moved
        // thread goes onto the destination bucket, whose lock is held too (or which is the
        // same bucket, where only its event changes).
        unsafe {
            // The oldest waiter is the last in the list (new ones go to the head).
            let mut at = src.head;
            while !at.is_null() && !(*(*at).wait_links.get()).next.is_null() {
                at = (*(*at).wait_links.get()).next;
            }
            while !at.is_null() && moved < max {
                let thread = &*at;
                let prev = (*thread.wait_links.get()).prev;
                if (*thread.wait_links.get()).event == from {
                    // Under the thread's lock: `clear_wait` reads the event there to find
                    // the bucket, and rechecks it once it holds the bucket.
                    let mut st = thread.wait.lock();
                    st.event = Some(to);
                    match dst.as_mut() {
                        Some(dst) => {
                            // The bucket's reference goes with the thread to the other
                            // bucket (`link` takes one more; the one dropped here is not
                            // the last).
                            if let Some(reference) = unlink(src, thread) {
                                link(dst, &reference, to);
                            }
                        }
                        None => (*thread.wait_links.get()).event = to,
                    }
                    drop(st);
                    moved += 1;
                }
                at = prev;
            }
        }
        moved
    };
    // The second lock taken goes first: the first restores the interrupt mask.
    drop(second);
    drop(first);
    moved
}

/// Run this processor's expired timers (from its tick).
pub fn expire_timers(cpu: CpuId, now: u64) {
    loop {
        let popped = super::processor(cpu).timers.lock().pop_expired(now);
        let Some((thread, kind, seq)) = popped else {
            return;
        };
        match kind {
            TimerKind::Wait => {
                clear_wait(&thread, Some(seq), WaitResult::TimedOut);
            }
            TimerKind::Depress => super::depress_end(&thread),
        }
    }
}

/// Depress the running thread's priority until `deadline` (re-arming an earlier one).
pub fn arm_depress(thread: &Arc<Thread>, deadline: u64) {
    let released = {
        let _st = thread.wait.lock();
        let old = cancel_timer(thread, TimerKind::Depress);
        arm_timer(thread, TimerKind::Depress, deadline, 0);
        old
    };
    drop(released);
}

/// Stop `thread`'s depression timer (the depression ends another way).
pub fn cancel_depress(thread: &Thread) {
    let released = {
        let _st = thread.wait.lock();
        cancel_timer(thread, TimerKind::Depress)
    };
    drop(released);
}
