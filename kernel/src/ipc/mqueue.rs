//! Message queues (GNU Mach `ipc/ipc_mqueue.c`): sending a message to a port, receiving
//! from a port or a port set, and the points where the kernel blocks and wakes threads.
//!
//! Blocking is the caller's: when a queue is full (sender) or empty (receiver), the call
//! runs the caller's closure under the queue's lock with the [`WaitKey`] to wait on; the
//! kernel asserts its wait there (`sched::assert_wait`) and returns `true`, then blocks
//! after the call returns and tries again when woken. Whoever changes the queue so that a
//! waiter could proceed wakes every waiter on the key, under the same lock, through the
//! hook set with [`set_wakeup`]; since the wait was asserted under that lock, no wake-up
//! is lost. A woken thread just calls again. (The handoff path of `mach_msg` will add a
//! receiver queue in the port so that a sender can give the message and the CPU to one
//! receiver directly; these hooks are where it goes.)
//!
//! A port in a set keeps its messages in the set's queue; its sequence number and message
//! count stay with the port. A receive right in a message must not end up, through a chain
//! of receive rights in transit, in its own queue: such a message is destroyed when sent
//! (GNU Mach's circularity check), under the one transit lock.

extern crate alloc;

use super::abi::PortName;
use super::kmsg::Kmsg;
use super::port::{Port, PortState, Receiver};
use super::pset::PortSet;
use super::right::Reaper;
use crate::sync::{IrqSpinLock, LockLevel};
use alloc::sync::Arc;
use core::sync::atomic::Ordering;

/// What a blocked thread waits for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum WaitOn {
    /// A message in a port's or a set's queue (or the port or set changing).
    Message = 0,
    /// Room in a port's queue.
    Room = 1,
}

/// Names one wait: the address of the port or set, and what for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WaitKey {
    pub object: usize,
    pub on: WaitOn,
}

static WAKEUP: spin::Once<fn(WaitKey)> = spin::Once::new();

/// Set how waiters are woken (once, at boot): the kernel passes a function that wakes
/// every thread waiting on the key's event. Called with IPC locks held, so it may only
/// take locks below them (`WaitBucket` and further down).
pub fn set_wakeup(f: fn(WaitKey)) {
    WAKEUP.call_once(|| f);
}

fn wake(key: WaitKey) {
    if let Some(f) = WAKEUP.get() {
        f(key);
    }
}

pub(crate) fn port_key(port: &Port, on: WaitOn) -> WaitKey {
    WaitKey {
        object: port.addr(),
        on,
    }
}

pub(crate) fn set_key(set: &PortSet) -> WaitKey {
    WaitKey {
        object: set.addr(),
        on: WaitOn::Message,
    }
}

/// Wake the port's receivers (they find something changed).
pub(crate) fn wake_receivers(port: &Port, st: &mut PortState) {
    if core::mem::take(&mut st.receivers_waiting) {
        wake(port_key(port, WaitOn::Message));
    }
}

/// Wake everyone waiting on the port (it died).
pub(crate) fn wake_port_all(port: &Port, st: &mut PortState) {
    wake_receivers(port, st);
    if core::mem::take(&mut st.senders_waiting) {
        wake(port_key(port, WaitOn::Room));
    }
}

/// Wake senders if there is room now.
pub(crate) fn wake_senders_if_room(port: &Port, st: &mut PortState) {
    if st.senders_waiting && st.msgcount < st.qlimit {
        st.senders_waiting = false;
        wake(port_key(port, WaitOn::Room));
    }
}

/// The transit lock: receive rights are put in transit only under it.
static TRANSIT: IrqSpinLock<()> = IrqSpinLock::new(LockLevel::IpcTransit, ());

/// What became of a message given to [`send`].
#[derive(Debug)]
pub enum SendResult {
    /// Queued on its port (or its port's set).
    Queued,
    /// Its port is dead, or it would have closed a loop of receive rights in transit: the
    /// message was destroyed, which for the sender counts as sent (GNU Mach).
    Destroyed,
    /// The port's queue is full: the message is handed back. The closure was called; if
    /// it returned `true` a sender now waits for room.
    Full(Kmsg),
}

/// Send `kmsg` to its destination (GNU Mach `ipc_mqueue_send`). `always` ignores the
/// queue limit (kernel messages); so do messages to a send-once right. `on_full` runs
/// under the port's lock if the queue is full (see the module comment). Kernel ports are
/// not served here: `mach_msg` hands their messages to the kernel's server first.
pub fn send(kmsg: Kmsg, always: bool, on_full: impl FnOnce(WaitKey) -> bool) -> SendResult {
    let mut reaper = Reaper::new();
    let r = deliver(kmsg, always, on_full, &mut reaper);
    reaper.run();
    r
}

pub(crate) fn deliver(
    mut kmsg: Kmsg,
    always: bool,
    on_full: impl FnOnce(WaitKey) -> bool,
    reaper: &mut Reaper,
) -> SendResult {
    let Some(dest) = kmsg.dest_port().cloned() else {
        reaper.destroy_msg(&mut kmsg, false);
        return SendResult::Destroyed;
    };
    let transit = if kmsg.carries_receive() {
        let guard = TRANSIT.lock();
        if kmsg.receive_rights().any(|r| is_circular(r, &dest)) {
            drop(guard);
            reaper.destroy_msg(&mut kmsg, false);
            return SendResult::Destroyed;
        }
        for r in kmsg.receive_rights() {
            r.lock().receiver = Receiver::Transit(Arc::downgrade(&dest));
        }
        Some(guard)
    } else {
        None
    };

    let mut st = dest.lock();
    if !st.active {
        drop(st);
        drop(transit);
        reaper.destroy_msg(&mut kmsg, true);
        return SendResult::Destroyed;
    }
    if matches!(st.receiver, Receiver::Abandoned) {
        // The message an abandoned reply port waited for (`Port::abandon_reply`): it ends
        // the port, and is destroyed with it; for the sender it was sent.
        drop(st);
        drop(transit);
        reaper.destroy_msg(&mut kmsg, true);
        reaper.destroy_port(dest);
        return SendResult::Destroyed;
    }
    if st.msgcount >= st.qlimit && !always && !kmsg.to_send_once() {
        if on_full(port_key(&dest, WaitOn::Room)) {
            st.senders_waiting = true;
        }
        drop(st);
        for r in kmsg.receive_rights() {
            r.lock().receiver = Receiver::Limbo;
        }
        drop(transit);
        return SendResult::Full(kmsg);
    }
    st.msgcount += 1;
    match &st.pset {
        Some(set) => {
            let mut ss = set.lock();
            ss.queue.push_back(kmsg);
            if core::mem::take(&mut ss.receivers_waiting) {
                wake(set_key(set));
            }
        }
        None => {
            st.queue.push_back(kmsg);
            wake_receivers(&dest, &mut st);
        }
    }
    drop(st);
    drop(transit);
    SendResult::Queued
}

/// Whether queueing receive right `port` on `dest` would put `port` in its own queue,
/// directly or through receive rights in transit (GNU Mach
/// `ipc_port_check_circularity`). Called under the transit lock, which keeps every chain
/// still; ports are locked one at a time.
fn is_circular(port: &Arc<Port>, dest: &Arc<Port>) -> bool {
    if Arc::ptr_eq(port, dest) {
        return true;
    }
    let mut at = dest.clone();
    loop {
        let next = {
            let st = at.lock();
            match (&st.receiver, st.active) {
                (Receiver::Transit(d), true) => d.upgrade(),
                _ => None,
            }
        };
        match next {
            Some(n) if Arc::ptr_eq(&n, port) => return true,
            Some(n) => at = n,
            None => return false,
        }
    }
}

/// What a receive found.
#[derive(Debug)]
// As `SendResult`: the message by value, no allocation.
#[allow(clippy::large_enum_variant)]
pub enum RecvResult {
    /// A message, its sequence number set.
    Message(Kmsg),
    /// The first message is larger than the caller's limit (`msgh_size`); it stays queued
    /// (GNU Mach with `MACH_RCV_LARGE`).
    TooLarge(u32),
    /// Nothing queued; the closure was called (see the module comment).
    Empty,
    /// The port or set died, or its receive right left the caller's space
    /// (`MACH_RCV_PORT_DIED`).
    Died,
    /// The port was put in a set (`MACH_RCV_PORT_CHANGED`).
    Changed,
}

/// A port or port set a thread receives from, found by name (`Space::mqueue_copyin`).
#[derive(Clone, Debug)]
pub enum RecvSource {
    Port { port: Arc<Port>, space: u64 },
    Set { set: Arc<PortSet>, space: u64 },
}

impl RecvSource {
    /// Take the oldest message (GNU Mach `ipc_mqueue_receive`), if it is at most
    /// `max_size` bytes (`None`: any size). `on_empty` runs under the queue's lock when
    /// there is nothing to take. A msg-accepted request on the message taken is notified
    /// (after the locks).
    pub fn receive(
        &self,
        max_size: Option<u32>,
        on_empty: impl FnOnce(WaitKey) -> bool,
    ) -> RecvResult {
        let mut r = match self {
            RecvSource::Port { port, space } => {
                receive_port(port, Some(*space), max_size, on_empty)
            }
            RecvSource::Set { set, space } => receive_set(set, *space, max_size, on_empty),
        };
        if let RecvResult::Message(kmsg) = &mut r {
            kmsg.accepted();
        }
        r
    }

    /// The name the receiving space has for the port or set now.
    pub fn name(&self) -> PortName {
        match self {
            RecvSource::Port { port, .. } => match port.lock().receiver {
                Receiver::Space { name, .. } => name,
                _ => PortName::NULL,
            },
            RecvSource::Set { set, .. } => set.lock().name,
        }
    }
}

/// Receive from a port whose receive right the kernel holds (a kernel object's port).
pub fn receive_kernel(port: &Arc<Port>, max_size: Option<u32>) -> RecvResult {
    let mut r = receive_port(port, None, max_size, |_| false);
    if let RecvResult::Message(kmsg) = &mut r {
        kmsg.accepted();
    }
    r
}

/// Receive from a reply port the kernel keeps (`Port::alloc_reply`): the oldest message,
/// or `Empty` after `on_empty` ran under the port's lock (it may assert a wait on the key,
/// then returns `true`, and a message queued afterwards wakes it), or `Died`.
pub fn receive_reply(port: &Arc<Port>, on_empty: impl FnOnce(WaitKey) -> bool) -> RecvResult {
    let mut r = receive_port(port, None, None, on_empty);
    if let RecvResult::Message(kmsg) = &mut r {
        kmsg.accepted();
    }
    r
}

fn too_large(kmsg: &Kmsg, max: Option<u32>) -> Option<u32> {
    max.filter(|&m| kmsg.size > m).map(|_| kmsg.size)
}

fn receive_port(
    port: &Arc<Port>,
    space: Option<u64>,
    max_size: Option<u32>,
    on_empty: impl FnOnce(WaitKey) -> bool,
) -> RecvResult {
    let mut st = port.lock();
    let holder = match (&st.receiver, space) {
        (Receiver::Space { space: s, .. }, Some(me)) => *s == me,
        (Receiver::Kernel | Receiver::Reply, None) => true,
        _ => false,
    };
    if !st.active || !holder {
        return RecvResult::Died;
    }
    if st.pset.is_some() {
        return RecvResult::Changed;
    }
    if let Some(size) = st.queue.front().and_then(|m| too_large(m, max_size)) {
        return RecvResult::TooLarge(size);
    }
    match st.queue.pop_front() {
        Some(mut kmsg) => {
            kmsg.seqno = port.seqno.fetch_add(1, Ordering::Relaxed);
            st.msgcount = st.msgcount.saturating_sub(1);
            wake_senders_if_room(port, &mut st);
            RecvResult::Message(kmsg)
        }
        None => {
            if on_empty(port_key(port, WaitOn::Message)) {
                st.receivers_waiting = true;
            }
            RecvResult::Empty
        }
    }
}

fn receive_set(
    set: &Arc<PortSet>,
    space: u64,
    max_size: Option<u32>,
    on_empty: impl FnOnce(WaitKey) -> bool,
) -> RecvResult {
    let mut ss = set.lock();
    if !ss.active || ss.space != space {
        return RecvResult::Died;
    }
    if let Some(size) = ss.queue.front().and_then(|m| too_large(m, max_size)) {
        return RecvResult::TooLarge(size);
    }
    let Some(mut kmsg) = ss.queue.pop_front() else {
        if on_empty(set_key(set)) {
            ss.receivers_waiting = true;
        }
        return RecvResult::Empty;
    };
    // The port's messages are all in this queue while it is a member, so its sequence
    // numbers follow the order they are taken in.
    let dest = kmsg.dest_port().cloned();
    if let Some(port) = &dest {
        kmsg.seqno = port.seqno.fetch_add(1, Ordering::Relaxed);
    }
    drop(ss);
    if let Some(port) = dest {
        let mut st = port.lock();
        st.msgcount = st.msgcount.saturating_sub(1);
        wake_senders_if_room(&port, &mut st);
    }
    RecvResult::Message(kmsg)
}

/// Put `port` (locked, active, in no set) into `set` (GNU Mach `ipc_pset_add`): its queued
/// messages move to the end of the set's queue, its receivers are told it changed.
pub(crate) fn set_add(port: &Port, st: &mut PortState, set: &Arc<PortSet>) {
    st.pset = Some(set.clone());
    {
        let mut ss = set.lock();
        ss.members += 1;
        let moved = !st.queue.is_empty();
        ss.queue.append(&mut st.queue);
        if moved && core::mem::take(&mut ss.receivers_waiting) {
            wake(set_key(set));
        }
    }
    wake_receivers(port, st);
}

/// Take `port` (locked) out of its set (GNU Mach `ipc_pset_remove`): its messages come
/// back to its own queue, in order. Returns the set, to be dropped after the locks.
pub(crate) fn set_remove(port: &Port, st: &mut PortState) -> Option<Arc<PortSet>> {
    let set = st.pset.take()?;
    {
        let mut ss = set.lock();
        super::pset::move_messages(&mut ss.queue, &mut st.queue, port);
        ss.members = ss.members.saturating_sub(1);
    }
    if !st.queue.is_empty() {
        wake_receivers(port, st);
    }
    Some(set)
}

/// A port set dies (GNU Mach `ipc_pset_destroy`; its members have been taken out):
/// its receivers are woken to find it dead.
pub(crate) fn set_destroy(set: &Arc<PortSet>) {
    let mut ss = set.lock();
    ss.active = false;
    if core::mem::take(&mut ss.receivers_waiting) {
        wake(set_key(set));
    }
}

/// Prepare a receive right to leave its holder (GNU Mach `ipc_port_clear_receiver`):
/// out of its set, receivers woken (they find it gone), make-send count and sequence
/// number reset.
pub(crate) fn clear_receiver(port: &Port, st: &mut PortState) -> Option<Arc<PortSet>> {
    let set = set_remove(port, st);
    st.receiver = Receiver::Limbo;
    wake_receivers(port, st);
    st.mscount = 0;
    port.seqno.store(0, Ordering::Relaxed);
    set
}
