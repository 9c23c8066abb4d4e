//! The IPC traps over the IPC core (`crate::ipc`): `mach_msg` (25), `mach_reply_port`
//! (26), the `mach_port` traps (72-75), and the lookup of a task named by a port. Every
//! user pointer goes through `copyin`/`copyout`: a bad one is an error code.
//!
//! `mach_msg` follows the recipe at the end of `ipc/mod.rs`. Messages are GNU Mach's LP64
//! typed format. Inline data and port rights (every disposition, inline arrays) travel;
//! out-of-line data of any size is copied once at send into frames the message owns,
//! charged to the sender, and those frames are mapped into a fresh region of the receiver
//! at receive (`OolFrames`; `deallocate` unmaps the sender's region). Out-of-line port
//! arrays (32-bit names) travel as rights in the message and arrive as a fresh region of
//! names. A message to a kernel object's port goes
//! to `server::kernel_server` in the sender's context. Handoff: in a send-and-receive, the
//! receiver the request wakes gets this CPU directly when the sender blocks for its reply
//! (`thread_invoke`). A send that times out or is interrupted gives the message back to
//! the sender's buffer with its rights (GNU Mach's pseudo-receive).
//!
//! The notify argument (x6) serves GNU Mach's three options: `MACH_SEND_CANCEL`
//! (`Space::copyin_header_cancel`), `MACH_RCV_NOTIFY` (`Space::copyout_header_notify`) and
//! `MACH_SEND_NOTIFY` (a full queue waits only as `MACH_SEND_TIMEOUT` says, then the message
//! is queued anyway with a msg-accepted request and `MACH_SEND_WILL_NOTIFY` returned).

extern crate alloc;

use crate::ids::TaskId;
use crate::ipc::abi::{Disposition, MsgReturn, msgh_bits};
use crate::ipc::chunk::Chunked;
use crate::ipc::kmsg::HEADER_SIZE;
use crate::ipc::{
    Kmsg, KmsgShape, Ledger, OolMemory, PortName, RecvResult, SendResult, Space, WaitKey,
};
use crate::ipc::{MsgPort, Right};
use crate::kern::sched::{self, wait::WaitResult, waitq::Event};
use crate::kern::task::Task;
use crate::kern::thread::Thread;
use crate::mm::kmem::GRANULE;
use crate::mm::vm::VmMap;
use crate::mm::{PAGE_SIZE, PhysAddr, frame};
use crate::sync::{IrqSpinLock, LockLevel};
use alloc::boxed::Box;
use alloc::sync::Arc;
use core::cell::Cell;
use mach_abi::KernReturn;
use mach_abi::message::{TypeDesc, option};
use mach_abi::traps::VM_MAX_USER_ADDRESS;
use mach_abi::traps::temporary::RENDEZVOUS_SLOTS;

/// Set the IPC core's wake-up hook and the task ports' senders hook (once, at boot).
pub fn init() {
    crate::ipc::mqueue::set_wakeup(wakeup);
    crate::kern::task::init();
}

pub(crate) fn event_of(key: WaitKey) -> Event {
    Event {
        object: key.object as u64,
        key: key.on as u64,
    }
}

fn wakeup(key: WaitKey) {
    let cpu = crate::percpu::current_cpu().index();
    let armed = key.on == crate::ipc::WaitOn::Message
        && HANDOFF.get(cpu).is_some_and(|h| {
            let h = h.lock();
            h.armed && h.next.is_none()
        });
    if !armed {
        sched::thread_wakeup(event_of(key), true);
        return;
    }
    let (_, next) = sched::waitq::thread_wakeup_handoff(event_of(key));
    if let Some(next) = next {
        match HANDOFF.get(cpu) {
            Some(h) => h.lock().next = Some(next),
            None => sched::setrun(next),
        }
    }
}

/// Handoff (GNU Mach's `mach_msg` fast path, in spirit): while a thread of this CPU sends
/// the request half of a send-and-receive, the receiver its message wakes is not put on a
/// run queue but kept here; the sender then blocks in its receive handing the CPU straight
/// to it (`thread_invoke`), or makes it runnable if it does not block. The kernel does not
/// preempt threads in kernel mode, so the slot of the CPU a thread runs on stays its own
/// from arming to taking.
struct Handoff {
    armed: bool,
    next: Option<Arc<Thread>>,
}

static HANDOFF: [IrqSpinLock<Handoff>; crate::devtree::MAX_CPUS] = [const {
    IrqSpinLock::new(
        LockLevel::WaitBucket,
        Handoff {
            armed: false,
            next: None,
        },
    )
}; crate::devtree::MAX_CPUS];

fn handoff_arm() {
    if let Some(h) = HANDOFF.get(crate::percpu::current_cpu().index()) {
        h.lock().armed = true;
    }
}

/// Disarm this CPU's slot and take the thread kept in it, if it may run here.
fn handoff_take() -> Pending {
    let cpu = crate::percpu::current_cpu().index();
    let next = HANDOFF.get(cpu).and_then(|h| {
        let mut h = h.lock();
        h.armed = false;
        h.next.take()
    });
    let next = next.and_then(|t| {
        let bound = t
            .bound_processor
            .load(core::sync::atomic::Ordering::Relaxed);
        if bound == crate::kern::thread::NO_PROCESSOR || bound as usize == cpu {
            Some(t)
        } else {
            sched::setrun(t);
            None
        }
    });
    Pending(next)
}

/// A thread woken for handoff and not yet run: made runnable if dropped unused.
struct Pending(Option<Arc<Thread>>);

impl Drop for Pending {
    fn drop(&mut self) {
        if let Some(t) = self.0.take() {
            sched::setrun(t);
        }
    }
}

/// The caller's IPC space (every user task has one).
fn space_of(thread: &Thread) -> Option<&Arc<Space>> {
    thread.task.ipc.as_ref()
}

/// The kernel object of `kind` a name in the caller's space stands for (a send right to
/// its port), as GNU Mach's `port_name_to_task` and `port_name_to_thread`.
fn kobject_of<O: Send + Sync + 'static>(
    thread: &Thread,
    name: u64,
    kind: crate::ipc::KObjectKind,
) -> Option<Arc<O>> {
    let name = u32::try_from(name).ok().filter(|&n| n != 0)?;
    let space = space_of(thread)?;
    let right = space
        .copyin(PortName(name), Disposition::CopySend)
        .ok()?
        .into_right()?;
    let kobject = right.port().kobject();
    drop(right);
    kobject?.get::<O>(kind)
}

/// The task a name in the caller's space stands for.
pub fn task_of(thread: &Thread, name: u64) -> Option<Arc<Task>> {
    kobject_of(thread, name, crate::ipc::KObjectKind::Task)
}

/// The thread a name in the caller's space stands for.
pub fn thread_of(thread: &Thread, name: u64) -> Option<Arc<Thread>> {
    kobject_of(thread, name, crate::ipc::KObjectKind::Thread)
}

/// The IPC space of the task `name` stands for.
fn space_of_task(thread: &Thread, name: u64) -> Option<Arc<Space>> {
    task_of(thread, name).and_then(|t| t.ipc.clone())
}

fn map_of(thread: &Thread) -> Result<&crate::sync::IrqSpinLock<VmMap>, KernReturn> {
    thread.task.map.as_ref().ok_or(KernReturn::InvalidTask)
}

/// Temporary rendezvous slots (`RENDEZVOUS_PUBLISH`/`RENDEZVOUS_LOOKUP`): a send right and
/// the id of the task that published it. Rights are taken out under the lock and released
/// after it (releasing takes IPC locks, which come after this one).
static RENDEZVOUS: IrqSpinLock<[Option<(TaskId, Right)>; RENDEZVOUS_SLOTS as usize]> =
    IrqSpinLock::new(
        LockLevel::TaskThreads,
        [const { None }; RENDEZVOUS_SLOTS as usize],
    );

/// Temporary `RENDEZVOUS_PUBLISH(slot, name)`.
pub fn rendezvous_publish(thread: &Thread, slot: u64, name: u64) -> u64 {
    if slot >= u64::from(RENDEZVOUS_SLOTS) {
        return KernReturn::InvalidValue.as_reg();
    }
    let (Some(space), Ok(name)) = (space_of(thread), u32::try_from(name)) else {
        return KernReturn::InvalidName.as_reg();
    };
    let right = match space.copyin(PortName(name), Disposition::CopySend) {
        Ok(p) => p.into_right(),
        Err(kr) => return kr.as_reg(),
    };
    let Some(right) = right else {
        return KernReturn::InvalidRight.as_reg();
    };
    let refused = {
        let mut slots = RENDEZVOUS.lock();
        let entry = &mut slots[slot as usize];
        if entry.is_some() {
            Some(right)
        } else {
            *entry = Some((thread.task.id, right));
            None
        }
    };
    match refused {
        Some(right) => {
            drop(right);
            KernReturn::NameExists.as_reg()
        }
        None => KernReturn::Success.as_reg(),
    }
}

/// Temporary `RENDEZVOUS_LOOKUP(slot)`.
pub fn rendezvous_lookup(thread: &Thread, slot: u64) -> u64 {
    let Some(space) = space_of(thread) else {
        return 0;
    };
    let copy = {
        let slots = RENDEZVOUS.lock();
        match slots.get(slot as usize) {
            Some(Some((_, right))) => right.copy_send(),
            _ => MsgPort::Null,
        }
    };
    u64::from(space.copyout_right(copy).0.0)
}

/// Empty the rendezvous slots `task` published (at its death).
pub fn rendezvous_forget(task: TaskId) {
    let mut gone: arrayvec::ArrayVec<Right, { RENDEZVOUS_SLOTS as usize }> =
        arrayvec::ArrayVec::new();
    {
        let mut slots = RENDEZVOUS.lock();
        for entry in slots.iter_mut() {
            if entry.as_ref().is_some_and(|(id, _)| *id == task)
                && let Some((_, right)) = entry.take()
            {
                gone.push(right);
            }
        }
    }
    drop(gone);
}

/// `mach_reply_port` (26): a new receive right, `MACH_PORT_NULL` on failure.
pub fn mach_reply_port(thread: &Thread) -> u64 {
    space_of(thread)
        .and_then(|s| s.allocate(crate::ipc::abi::PortRight::Receive as u32).ok())
        .map_or(0, |n| u64::from(n.0))
}

/// `mach_port_allocate(task, right, *name)` (72).
pub fn mach_port_allocate(thread: &Thread, task: u64, right: u64, namep: u64) -> u64 {
    let Some(space) = space_of_task(thread, task) else {
        return KernReturn::SendInterrupted.as_reg();
    };
    let right = u32::try_from(right).unwrap_or(u32::MAX);
    let name = match space.allocate(right) {
        Ok(n) => n,
        Err(kr) => return kr.as_reg(),
    };
    let written = map_of(thread).and_then(|m| m.lock().copyout(namep, &name.0.to_le_bytes()));
    if written.is_err() {
        let _ = space.destroy_name(name);
        return KernReturn::InvalidAddress.as_reg();
    }
    KernReturn::Success.as_reg()
}

/// `mach_port_deallocate(task, name)` (73).
pub fn mach_port_deallocate(thread: &Thread, task: u64, name: u64) -> u64 {
    let Some(space) = space_of_task(thread, task) else {
        return KernReturn::SendInterrupted.as_reg();
    };
    let Ok(name) = u32::try_from(name) else {
        return KernReturn::InvalidName.as_reg();
    };
    code(space.deallocate(PortName(name)))
}

/// `mach_port_insert_right(task, name, right, type)` (74): `right` taken from the caller's
/// space with disposition `type`, put into the task's space at `name`.
pub fn mach_port_insert_right(thread: &Thread, task: u64, name: u64, right: u64, ty: u64) -> u64 {
    let Some(space) = space_of_task(thread, task) else {
        return KernReturn::SendInterrupted.as_reg();
    };
    let Some(d) = u32::try_from(ty).ok().and_then(Disposition::from_u32) else {
        return KernReturn::InvalidValue.as_reg();
    };
    let (Ok(name), Ok(right)) = (u32::try_from(name), u32::try_from(right)) else {
        return KernReturn::InvalidName.as_reg();
    };
    let Some(mine) = space_of(thread) else {
        return KernReturn::InvalidTask.as_reg();
    };
    let poly = match mine.copyin_body_right(PortName(right), d) {
        Ok(p) => p,
        Err(kr) => return kr.as_reg(),
    };
    code(space.insert_right(PortName(name), poly))
}

/// `mach_port_allocate_name(task, right, name)` (75).
pub fn mach_port_allocate_name(thread: &Thread, task: u64, right: u64, name: u64) -> u64 {
    let Some(space) = space_of_task(thread, task) else {
        return KernReturn::SendInterrupted.as_reg();
    };
    let right = u32::try_from(right).unwrap_or(u32::MAX);
    let Ok(name) = u32::try_from(name) else {
        return KernReturn::InvalidValue.as_reg();
    };
    code(space.allocate_name(right, PortName(name)))
}

fn code(r: Result<(), KernReturn>) -> u64 {
    r.err().unwrap_or(KernReturn::Success).as_reg()
}

fn msg_code(r: MsgReturn) -> u64 {
    u64::from(r.0)
}

/// Out-of-line data in flight: at send the sender's bytes are copied into whole frames the
/// message owns (packed from the first frame's start, the last frame's tail zeroed); at
/// receive those frames are mapped as they are into a fresh region of the receiver
/// (`VmMap::allocate_with_frames`), so the data is copied once, not twice, and needs no
/// kernel heap. While the message holds them the frames are charged to the sender's
/// kernel-memory ledger (`PAGE_SIZE / GRANULE` granules a page, plus the frame index), so
/// what a task can pin in messages is bounded by its quota; frames not handed over are
/// freed when the region is dropped (message destroyed unreceived, or no room in the
/// receiver).
pub struct OolFrames {
    frames: Chunked<Option<PhysAddr>, 0>,
    len: usize,
    _charge: crate::ipc::Charge,
}

impl OolFrames {
    /// A copy of `len` bytes of `map` at `addr`, charged to `ledger`.
    fn copyin(
        ledger: &Arc<dyn Ledger>,
        map: &mut VmMap,
        addr: u64,
        len: usize,
    ) -> Result<OolFrames, MsgReturn> {
        let page = PAGE_SIZE as usize;
        let pages = len.div_ceil(page);
        let index =
            Chunked::<Option<PhysAddr>, 0>::blocks_for(pages).ok_or(MsgReturn::SEND_NO_BUFFER)?;
        // The frames, their index, and the box the message holds the region in.
        let blocks = pages
            .checked_mul(page / GRANULE)
            .and_then(|b| b.checked_add(index + 1))
            .ok_or(MsgReturn::SEND_NO_BUFFER)?;
        let charge = crate::ipc::Charge::new(ledger, crate::ipc::Kind::Message, blocks)
            .map_err(|_| MsgReturn::SEND_NO_BUFFER)?;
        let frames = Chunked::with_capacity(pages).map_err(|_| MsgReturn::SEND_NO_BUFFER)?;
        // Frames are freed by the region's drop on any error below.
        let mut region = OolFrames {
            frames,
            len,
            _charge: charge,
        };
        for i in 0..pages {
            let pa = frame::alloc(1).ok_or(MsgReturn::SEND_NO_BUFFER)?;
            if region.frames.push(Some(pa)).is_err() {
                frame::free(pa, 1);
                return Err(MsgReturn::SEND_NO_BUFFER);
            }
            let at = i * page;
            let n = (len - at).min(page);
            // SAFETY: the frame was just allocated, so nothing else refers to it, and RAM
            // is mapped read-write in the linear map.
            let bytes =
                unsafe { core::slice::from_raw_parts_mut(pa.to_linear().as_mut_ptr::<u8>(), page) };
            map.copyin(addr + at as u64, &mut bytes[..n])
                .map_err(|_| MsgReturn::SEND_INVALID_MEMORY)?;
            bytes[n..].fill(0);
        }
        Ok(region)
    }

    /// The region `memory` is, if it is user data in flight (for the kernel's own server:
    /// `vm_write`'s data).
    pub fn of(memory: &dyn OolMemory) -> Option<&OolFrames> {
        memory.as_any().downcast_ref::<OolFrames>()
    }

    /// The data, a page (or less, at the end) at a time, through the linear map.
    pub fn slices(&self) -> impl Iterator<Item = &[u8]> {
        let page = PAGE_SIZE as usize;
        self.frames.iter().enumerate().filter_map(move |(i, pa)| {
            let pa = (*pa)?;
            let n = (self.len - i * page).min(page);
            // SAFETY: the frame belongs to this region (it is freed only when the region
            // is dropped or handed over, neither while `&self` is borrowed) and RAM is
            // mapped in the linear map.
            Some(unsafe { core::slice::from_raw_parts(pa.to_linear().as_ptr::<u8>(), n) })
        })
    }

    /// Map the frames into a fresh region of `map`; its address. On an error, frames not
    /// yet mapped stay here (and are freed with the region).
    fn copyout(&mut self, map: &mut VmMap) -> Result<u64, KernReturn> {
        if self.len == 0 {
            return Ok(0);
        }
        let pages = self.frames.len();
        let frames = &mut self.frames;
        map.allocate_with_frames(pages, &mut |i| frames.get_mut(i).and_then(Option::take))
    }
}

impl Drop for OolFrames {
    fn drop(&mut self) {
        for pa in self.frames.iter_mut().filter_map(Option::take) {
            frame::free(pa, 1);
        }
    }
}

impl OolMemory for OolFrames {
    fn size(&self) -> u64 {
        self.len as u64
    }
    fn as_any(&self) -> &dyn core::any::Any {
        self
    }
    fn as_any_mut(&mut self) -> &mut dyn core::any::Any {
        self
    }
}

/// What the descriptor walk found in a body.
#[derive(Default)]
struct Counts {
    ports: usize,
    ool: usize,
}

/// Walk the type descriptors of a body of `len` bytes read through `read` (offsets from
/// the start of the body), calling `each(descriptor offset, descriptor, data offset)`.
fn walk(
    len: usize,
    mut read: impl FnMut(usize, &mut [u8]) -> bool,
    mut each: impl FnMut(usize, TypeDesc, usize) -> Result<(), MsgReturn>,
) -> Result<(), MsgReturn> {
    let mut at = 0usize;
    while at < len {
        if len - at < 8 {
            return Err(MsgReturn::SEND_MSG_TOO_SMALL);
        }
        let mut w = [0u8; 8];
        if !read(at, &mut w) {
            return Err(MsgReturn::SEND_INVALID_DATA);
        }
        let d = TypeDesc::from_words(
            u32::from_le_bytes([w[0], w[1], w[2], w[3]]),
            u32::from_le_bytes([w[4], w[5], w[6], w[7]]),
        );
        let data_at = at + 8;
        let data_len = d.data_len().ok_or(MsgReturn::SEND_MSG_TOO_SMALL)?;
        if len - data_at < data_len {
            return Err(MsgReturn::SEND_MSG_TOO_SMALL);
        }
        each(at, d, data_at)?;
        at = data_at + data_len;
    }
    Ok(())
}

fn is_port_type(name: u8) -> bool {
    (16..=21).contains(&name)
}

/// `MACH_MSG_VM_SPACE`: a receive error bit, no room for out-of-line memory.
const MACH_MSG_VM_SPACE: u32 = 0x0000_1000;

/// `mach_msg` (trap 25).
#[allow(clippy::too_many_arguments)] // The trap's arguments.
pub fn mach_msg(
    thread: &Arc<Thread>,
    msg: u64,
    opt: u64,
    send_size: u64,
    rcv_size: u64,
    rcv_name: u64,
    timeout: u64,
    notify: u64,
) -> u64 {
    let opt = opt as u32;
    let timeout = timeout as u32;
    // A name is 32 bits; a wider value names nothing (`MACH_*_INVALID_NOTIFY` if used).
    let notify = PortName(u32::try_from(notify).unwrap_or(u32::MAX));
    let both = option::SEND_MSG | option::RCV_MSG;
    let mut pending = Pending(None);
    if opt & option::SEND_MSG != 0 {
        let handoff = (opt & both == both).then_some(&mut pending);
        let r = send(thread, msg, opt, send_size, timeout, notify, handoff);
        if r != MsgReturn::SUCCESS {
            return msg_code(r);
        }
        thread
            .task
            .messages_sent
            .fetch_add(1, core::sync::atomic::Ordering::Relaxed);
    }
    if opt & option::RCV_MSG != 0 {
        let r = receive(
            thread,
            msg,
            opt,
            rcv_size,
            rcv_name,
            timeout,
            notify,
            &mut pending,
        );
        if r == MsgReturn::SUCCESS {
            thread
                .task
                .messages_received
                .fetch_add(1, core::sync::atomic::Ordering::Relaxed);
        }
        return msg_code(r);
    }
    0
}

fn deadline(timeout_ms: u32) -> u64 {
    crate::arch::timer::counter().saturating_add(sched::ms_to_ticks(u64::from(timeout_ms)))
}

/// Block in a wait asserted inside an mqueue closure (`asserted`); the wait result.
fn block(thread: &Arc<Thread>) -> WaitResult {
    if thread.should_terminate() {
        sched::clear_wait(thread, None, WaitResult::Interrupted);
    }
    sched::thread_block()
}

fn read_header(map: &mut VmMap, msg: u64) -> Result<[u8; HEADER_SIZE], MsgReturn> {
    let mut h = [0u8; HEADER_SIZE];
    map.copyin(msg, &mut h)
        .map_err(|_| MsgReturn::SEND_INVALID_DATA)?;
    Ok(h)
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// `handoff`: where to keep the receiver the message wakes (a send-and-receive).
#[allow(clippy::too_many_arguments)] // The trap's arguments.
fn send(
    thread: &Arc<Thread>,
    msg: u64,
    opt: u32,
    send_size: u64,
    timeout: u32,
    notify: PortName,
    mut handoff: Option<&mut Pending>,
) -> MsgReturn {
    let (Some(space), Ok(mapl)) = (space_of(thread), map_of(thread)) else {
        return MsgReturn::SEND_INVALID_DEST;
    };
    if send_size < HEADER_SIZE as u64 || send_size & 3 != 0 {
        return MsgReturn::SEND_MSG_TOO_SMALL;
    }
    let Ok(size) = u32::try_from(send_size) else {
        return MsgReturn::SEND_NO_BUFFER;
    };
    let body_len = size as usize - HEADER_SIZE;
    let header = match read_header(&mut mapl.lock(), msg) {
        Ok(h) => h,
        Err(e) => return e,
    };
    let bits = u32_at(&header, 0);
    let dest = u32_at(&header, 8);
    let reply = u32_at(&header, 16);
    let id = u32_at(&header, 28) as i32;
    let complex = bits & msgh_bits::COMPLEX != 0;
    // The shape, from the sender's descriptors.
    let mut counts = Counts::default();
    if complex {
        let body = msg.saturating_add(HEADER_SIZE as u64);
        let r = walk(
            body_len,
            |at, out| {
                mapl.lock()
                    .copyin(body.wrapping_add(at as u64), out)
                    .is_ok()
            },
            |_, d, _| {
                if is_port_type(d.name) {
                    counts.ports = counts.ports.saturating_add(d.number as usize);
                }
                if !d.inline {
                    counts.ool += 1;
                }
                Ok(())
            },
        );
        if let Err(e) = r {
            return e;
        }
    }
    let ledger: Arc<dyn Ledger> = thread.task.kmem.clone();
    let shape = KmsgShape {
        body_len,
        ports: counts.ports,
        ool: counts.ool,
    };
    // A small, simple request to a kernel object is served and freed before this trap
    // returns: a task at its limit may still send it, and make the reply right it needs,
    // as a bounded overdraft (`ipc::Kind::KernelRequest`), so that it can ask the kernel
    // to free what it holds (`mach_port_mod_refs`, ...).
    let kernel_request =
        || !complex && shape.blocks() == Some(1) && space.names_kernel_port(PortName(dest));
    let mut kmsg = match Kmsg::new(&ledger, shape) {
        Ok(k) => k,
        Err(e) if e == MsgReturn::SEND_NO_BUFFER && kernel_request() => {
            match Kmsg::new_as(&ledger, shape, crate::ipc::Kind::KernelRequest) {
                Ok(k) => k,
                Err(e) => return e,
            }
        }
        Err(e) => return e,
    };
    // The body.
    if body_len > 0 {
        let mut map = mapl.lock();
        let mut buf = [0u8; 256];
        let mut at = 0usize;
        while at < body_len {
            let n = (body_len - at).min(buf.len());
            if map
                .copyin(msg.wrapping_add((HEADER_SIZE + at) as u64), &mut buf[..n])
                .is_err()
            {
                drop(map);
                drop(kmsg);
                return MsgReturn::SEND_INVALID_DATA;
            }
            kmsg.body.extend_from_slice(&buf[..n]);
            at += n;
        }
    }
    let copied = if opt & option::SEND_CANCEL != 0 {
        // GNU Mach: MACH_SEND_CANCEL needs a notify port.
        if notify == PortName::NULL {
            return MsgReturn::SEND_INVALID_NOTIFY;
        }
        space.copyin_header_cancel(bits, PortName(dest), PortName(reply), notify)
    } else {
        match space.copyin_header(bits, PortName(dest), PortName(reply)) {
            // All or nothing: nothing was copied in, so it can be tried again.
            Err(e) if e == MsgReturn::SEND_NO_BUFFER && kernel_request() => {
                space.copyin_header_kernel_request(bits, PortName(dest), PortName(reply))
            }
            r => r,
        }
    };
    let copied = match copied {
        Ok(c) => c,
        Err(e) => return e,
    };
    kmsg.bits = copied.bits;
    kmsg.size = size;
    kmsg.id = id;
    let reply_type = msgh_bits::local(copied.bits);
    kmsg.set_ports(copied.dest, copied.reply, reply_type);
    if complex && let Err(e) = copyin_body(thread, space, &mut kmsg, body_len) {
        return e;
    }
    // A kernel object: served here, in the sender's context.
    if kmsg.remote().is_some_and(|r| r.port().is_kernel()) {
        if let Some(reply) = crate::server::kernel_server(&thread.task, kmsg) {
            if reply.remote().is_some_and(|r| r.port().is_kernel()) {
                // The request named a kernel object's port as its reply port: the reply would
                // wait on a queue nothing ever receives from, charged to the sender for good
                // (found by the fuzzer). Destroyed instead, rights and charge with it, which
                // is what GNU Mach's serving of it as a request comes to (no routine has a
                // reply's id: `MIG_BAD_ID`, and a reply has no reply port to say so to).
                drop(reply);
            } else {
                let _ = crate::ipc::mqueue::send(reply, true, |_| false);
            }
        }
        return MsgReturn::SUCCESS;
    }
    // MACH_SEND_NOTIFY: a full queue waits only as MACH_SEND_TIMEOUT says (not at all
    // without it), then the message is forced on with a msg-accepted request (GNU Mach).
    let send_notify = opt & option::SEND_NOTIFY != 0;
    let timed = opt & option::SEND_TIMEOUT != 0;
    let may_wait = if send_notify {
        timed && timeout != 0
    } else {
        !timed || timeout != 0
    };
    let end = timed.then(|| deadline(timeout));
    loop {
        let asserted = Cell::new(false);
        if handoff.is_some() {
            handoff_arm();
        }
        let r = crate::ipc::mqueue::send(kmsg, false, |key| {
            if may_wait && sched::assert_wait(Some(event_of(key)), end, true).is_ok() {
                asserted.set(true);
            }
            asserted.get()
        });
        if let Some(pending) = handoff.as_deref_mut() {
            // Disarmed before any block: the slot is this CPU's only while this runs.
            let taken = handoff_take();
            if pending.0.is_none() {
                *pending = taken;
            }
        }
        match r {
            SendResult::Queued | SendResult::Destroyed => return MsgReturn::SUCCESS,
            SendResult::Full(k) => {
                kmsg = k;
                // A thread kept for handoff runs now: this one may block here.
                if let Some(pending) = handoff.as_deref_mut() {
                    drop(core::mem::replace(pending, Pending(None)));
                }
                let code = if !asserted.get() {
                    MsgReturn::SEND_TIMED_OUT
                } else {
                    match block(thread) {
                        WaitResult::Awakened | WaitResult::Restart => continue,
                        WaitResult::TimedOut => MsgReturn::SEND_TIMED_OUT,
                        WaitResult::Interrupted => MsgReturn::SEND_INTERRUPTED,
                    }
                };
                let code = if send_notify && code == MsgReturn::SEND_TIMED_OUT {
                    match force_with_notify(space, kmsg, notify) {
                        Ok(()) => return MsgReturn::SEND_WILL_NOTIFY,
                        Err((e, k)) => {
                            kmsg = k;
                            e
                        }
                    }
                } else {
                    code
                };
                return pseudo_receive(space, mapl, msg, kmsg, code);
            }
        }
    }
}

/// `MACH_SEND_NOTIFY` on a full queue (GNU Mach `mach_msg_send`): with a msg-accepted
/// request made from `notify` (see `Space::marequest_create`), the message is queued past
/// the limit; without one it comes back with the error.
// The message travels by value, as into and out of a queue (see `mqueue::SendResult`).
#[allow(clippy::result_large_err)]
fn force_with_notify(
    space: &Arc<Space>,
    mut kmsg: Kmsg,
    notify: PortName,
) -> Result<(), (MsgReturn, Kmsg)> {
    if notify == PortName::NULL {
        return Err((MsgReturn::SEND_INVALID_NOTIFY, kmsg));
    }
    let Some(port) = kmsg.remote().map(|r| r.port().clone()) else {
        return Err((MsgReturn::SEND_INVALID_DEST, kmsg));
    };
    match space.marequest_create(&port, notify) {
        Ok(request) => {
            kmsg.set_marequest(request);
            // Queued or, if the port died meanwhile, destroyed (which notifies at once).
            let _ = crate::ipc::mqueue::send(kmsg, true, |_| false);
            Ok(())
        }
        Err(e) => Err((e, kmsg)),
    }
}

/// Copy in the rights and out-of-line regions a complex body names.
fn copyin_body(
    thread: &Thread,
    space: &Space,
    kmsg: &mut Kmsg,
    body_len: usize,
) -> Result<(), MsgReturn> {
    // Descriptors are read from the kernel's copy; what they name is collected first (the
    // walk borrows the body).
    let mut at = 0usize;
    while at < body_len {
        let mut w = [0u8; 8];
        if body_len - at < 8 || !kmsg.body.read(at, &mut w) {
            return Err(MsgReturn::SEND_MSG_TOO_SMALL);
        }
        let d = TypeDesc::from_words(
            u32::from_le_bytes([w[0], w[1], w[2], w[3]]),
            u32::from_le_bytes([w[4], w[5], w[6], w[7]]),
        );
        let data_at = at + 8;
        let data_len = d.data_len().ok_or(MsgReturn::SEND_MSG_TOO_SMALL)?;
        if body_len - data_at < data_len {
            return Err(MsgReturn::SEND_MSG_TOO_SMALL);
        }
        if is_port_type(d.name) && !d.inline {
            copyin_ool_ports(thread, space, kmsg, at, d, data_at)?;
        } else if is_port_type(d.name) {
            if d.size != 64 {
                return Err(MsgReturn::SEND_INVALID_TYPE);
            }
            let disposition =
                Disposition::from_u32(u32::from(d.name)).ok_or(MsgReturn::SEND_INVALID_TYPE)?;
            for i in 0..d.number as usize {
                let slot = data_at + 8 * i;
                let mut n = [0u8; 8];
                if !kmsg.body.read(slot, &mut n) {
                    return Err(MsgReturn::SEND_MSG_TOO_SMALL);
                }
                let name = u32::from_le_bytes([n[0], n[1], n[2], n[3]]);
                let port = space
                    .copyin_body_right(PortName(name), disposition)
                    .map_err(|_| MsgReturn::SEND_INVALID_RIGHT)?;
                if let Err(port) = kmsg.push_port((HEADER_SIZE + slot) as u64, port) {
                    drop(port);
                    return Err(MsgReturn::SEND_INVALID_TYPE);
                }
            }
            // The receiver sees the right's type.
            let received = crate::ipc::transfer::copyin_type(disposition) as u8;
            let nd = TypeDesc {
                name: received,
                ..d
            };
            kmsg.body.write(at, &nd.word().to_le_bytes());
        } else if !d.inline {
            let mut a = [0u8; 8];
            if !kmsg.body.read(data_at, &mut a) {
                return Err(MsgReturn::SEND_MSG_TOO_SMALL);
            }
            let addr = u64::from_le_bytes(a);
            let len = d.data_bytes().ok_or(MsgReturn::SEND_INVALID_MEMORY)?;
            let region = copyin_ool(thread, addr, len)?;
            if d.deallocate && len != 0 {
                let mut map = map_of(thread)
                    .map_err(|_| MsgReturn::SEND_INVALID_MEMORY)?
                    .lock();
                let start = addr & !(crate::mm::PAGE_SIZE - 1);
                let end = (addr + len as u64).next_multiple_of(crate::mm::PAGE_SIZE);
                let _ = map.deallocate(start, end - start);
            }
            if kmsg
                .push_ool((HEADER_SIZE + data_at) as u64, region)
                .is_err()
            {
                return Err(MsgReturn::SEND_INVALID_TYPE);
            }
        }
        at = data_at + data_len;
    }
    Ok(())
}

use crate::ipc::kmsg::{OOL_PORT, OolPorts, ool_port_at};

/// Most rights in one out-of-line array.
const OOL_PORTS_MAX: u32 = 1024;

/// Copy in an out-of-line array of port names (32-bit elements, GNU Mach's LP64 format)
/// as rights of the descriptor's disposition.
fn copyin_ool_ports(
    thread: &Thread,
    space: &Space,
    kmsg: &mut Kmsg,
    at: usize,
    d: TypeDesc,
    data_at: usize,
) -> Result<(), MsgReturn> {
    if d.size != 32 {
        return Err(MsgReturn::SEND_INVALID_TYPE);
    }
    if d.number > OOL_PORTS_MAX {
        return Err(MsgReturn::SEND_NO_BUFFER);
    }
    let disposition =
        Disposition::from_u32(u32::from(d.name)).ok_or(MsgReturn::SEND_INVALID_TYPE)?;
    let mut a = [0u8; 8];
    if !kmsg.body.read(data_at, &mut a) {
        return Err(MsgReturn::SEND_MSG_TOO_SMALL);
    }
    let addr = u64::from_le_bytes(a);
    let len = d.number as u64 * 4;
    if len != 0 && (addr >= VM_MAX_USER_ADDRESS || addr.checked_add(len).is_none()) {
        return Err(MsgReturn::SEND_INVALID_MEMORY);
    }
    let ledger: Arc<dyn Ledger> = thread.task.kmem.clone();
    let charge = crate::ipc::Charge::new(&ledger, crate::ipc::Kind::Message, 1)
        .map_err(|_| MsgReturn::SEND_NO_BUFFER)?;
    let slot = HEADER_SIZE + data_at;
    let mapl = map_of(thread).map_err(|_| MsgReturn::SEND_INVALID_MEMORY)?;
    let mut names = [0u8; 256];
    let mut i = 0usize;
    while i < d.number as usize {
        let n = (d.number as usize - i).min(names.len() / 4);
        mapl.lock()
            .copyin(addr + 4 * i as u64, &mut names[..4 * n])
            .map_err(|_| MsgReturn::SEND_INVALID_MEMORY)?;
        for j in 0..n {
            let b = &names[4 * j..4 * j + 4];
            let name = u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
            let port = space
                .copyin_body_right(PortName(name), disposition)
                .map_err(|_| MsgReturn::SEND_INVALID_RIGHT)?;
            if let Err(port) = kmsg.push_port(ool_port_at(slot, i + j), port) {
                drop(port);
                return Err(MsgReturn::SEND_INVALID_TYPE);
            }
        }
        i += n;
    }
    if d.deallocate && len != 0 {
        let start = addr & !(crate::mm::PAGE_SIZE - 1);
        let end = (addr + len).next_multiple_of(crate::mm::PAGE_SIZE);
        let _ = mapl.lock().deallocate(start, end - start);
    }
    let array = Box::new(OolPorts::new(d.number, charge));
    if kmsg.push_ool(slot as u64, array).is_err() {
        return Err(MsgReturn::SEND_INVALID_TYPE);
    }
    let received = crate::ipc::transfer::copyin_type(disposition) as u8;
    let nd = TypeDesc {
        name: received,
        ..d
    };
    kmsg.body.write(at, &nd.word().to_le_bytes());
    Ok(())
}

/// A charged copy of `len` bytes of the caller's memory at `addr`, in frames.
fn copyin_ool(thread: &Thread, addr: u64, len: usize) -> Result<Box<dyn OolMemory>, MsgReturn> {
    if len != 0 && (addr >= VM_MAX_USER_ADDRESS || addr.checked_add(len as u64).is_none()) {
        return Err(MsgReturn::SEND_INVALID_MEMORY);
    }
    let ledger: Arc<dyn Ledger> = thread.task.kmem.clone();
    let mut map = map_of(thread)
        .map_err(|_| MsgReturn::SEND_INVALID_MEMORY)?
        .lock();
    let region = OolFrames::copyin(&ledger, &mut map, addr, len)?;
    drop(map);
    Ok(Box::new(region))
}

#[allow(clippy::too_many_arguments)] // The trap's arguments.
fn receive(
    thread: &Arc<Thread>,
    msg: u64,
    opt: u32,
    rcv_size: u64,
    rcv_name: u64,
    timeout: u32,
    notify: PortName,
    handoff: &mut Pending,
) -> MsgReturn {
    let (Some(space), Ok(mapl)) = (space_of(thread), map_of(thread)) else {
        return MsgReturn::RCV_INVALID_NAME;
    };
    let Ok(name) = u32::try_from(rcv_name) else {
        return MsgReturn::RCV_INVALID_NAME;
    };
    let source = match space.mqueue_copyin(PortName(name)) {
        Ok(s) => s,
        Err(e) => return e,
    };
    let rcv_size = u32::try_from(rcv_size).unwrap_or(u32::MAX);
    let large = opt & option::RCV_LARGE != 0;
    let may_wait = opt & option::RCV_TIMEOUT == 0 || timeout != 0;
    let end = (opt & option::RCV_TIMEOUT != 0).then(|| deadline(timeout));
    let mut kmsg = loop {
        let asserted = Cell::new(false);
        let r = source.receive(large.then_some(rcv_size), |key| {
            if may_wait && sched::assert_wait(Some(event_of(key)), end, true).is_ok() {
                asserted.set(true);
            }
            asserted.get()
        });
        match r {
            RecvResult::Message(k) => break k,
            RecvResult::TooLarge(size) => {
                // Left queued; the caller learns the size (GNU Mach, MACH_RCV_LARGE).
                let _ = mapl
                    .lock()
                    .copyout(msg.wrapping_add(4), &size.to_le_bytes());
                return MsgReturn::RCV_TOO_LARGE;
            }
            RecvResult::Died => return MsgReturn::RCV_PORT_DIED,
            RecvResult::Changed => return MsgReturn::RCV_PORT_CHANGED,
            RecvResult::Empty => {
                if !asserted.get() {
                    return MsgReturn::RCV_TIMED_OUT;
                }
                let waited = match handoff.0.take() {
                    Some(next) => {
                        if thread.should_terminate() {
                            sched::clear_wait(thread, None, WaitResult::Interrupted);
                        }
                        if sched::trace::on() {
                            sched::trace::record(
                                mach_abi::trace::Kind::Handoff,
                                0,
                                sched::trace::tid(thread),
                                sched::trace::tid(&next),
                                0,
                            );
                        }
                        sched::thread_invoke(sched::Switch::Block, next);
                        thread.wait.lock().result
                    }
                    None => block(thread),
                };
                match waited {
                    WaitResult::Awakened | WaitResult::Restart => {}
                    WaitResult::TimedOut => return MsgReturn::RCV_TIMED_OUT,
                    WaitResult::Interrupted => return MsgReturn::RCV_INTERRUPTED,
                }
            }
        }
    };
    if kmsg.size > rcv_size {
        // Without MACH_RCV_LARGE the message is taken and destroyed.
        let size = kmsg.size;
        let _ = space.copyout_dest(&mut kmsg);
        drop(kmsg);
        let _ = mapl
            .lock()
            .copyout(msg.wrapping_add(4), &size.to_le_bytes());
        return MsgReturn::RCV_TOO_LARGE;
    }
    let header = if opt & option::RCV_NOTIFY == 0 {
        space.copyout_header(&mut kmsg)
    } else if notify == PortName::NULL {
        Err(MsgReturn::RCV_INVALID_NOTIFY)
    } else {
        space.copyout_header_notify(&mut kmsg, notify)
    };
    let header = match header {
        Ok(h) => h,
        Err(e) => {
            let h = space.copyout_dest(&mut kmsg);
            let _ = write_header(&mut mapl.lock(), msg, &kmsg, h.bits, h.remote, h.local);
            drop(kmsg);
            return e;
        }
    };
    copyout_msg(
        space,
        mapl,
        msg,
        kmsg,
        header.bits,
        header.remote,
        header.local,
    )
}

/// Give a message to the user at `msg`: its out-of-line regions and body rights copied out
/// into `space` (the header's already are: `bits`, `remote`, `local`). The message's own
/// code, or `MACH_RCV_BODY_ERROR` with the error bits of rights or regions that could not
/// be placed, or `MACH_RCV_INVALID_DATA` if the buffer cannot be written.
fn copyout_msg(
    space: &Space,
    mapl: &crate::sync::IrqSpinLock<VmMap>,
    msg: u64,
    mut kmsg: Kmsg,
    bits: u32,
    remote: PortName,
    local: PortName,
) -> MsgReturn {
    let (result, error_bits) = copyout_body(space, mapl, msg, &mut kmsg, bits, remote, local);
    drop(kmsg);
    if result == MsgReturn::SUCCESS && error_bits != 0 {
        return MsgReturn::RCV_BODY_ERROR.with(error_bits);
    }
    result
}

/// The body of [`copyout_msg`]: the result and the error bits.
fn copyout_body(
    space: &Space,
    mapl: &crate::sync::IrqSpinLock<VmMap>,
    msg: u64,
    kmsg: &mut Kmsg,
    bits: u32,
    remote: PortName,
    local: PortName,
) -> (MsgReturn, u32) {
    // Out-of-line regions first: a fresh region of the receiver each (port arrays get
    // theirs filled in with the names below).
    let mut error_bits = 0u32;
    let mut arrays: arrayvec::ArrayVec<(u64, u64), 16> = arrayvec::ArrayVec::new();
    while let Some(mut slot) = kmsg.take_ool() {
        if let Some(ool) = slot.memory.as_any_mut().downcast_mut::<OolFrames>() {
            let addr = ool.copyout(&mut mapl.lock()).unwrap_or_else(|_| {
                error_bits |= MACH_MSG_VM_SPACE;
                0
            });
            kmsg.body
                .write(slot.at as usize - HEADER_SIZE, &addr.to_le_bytes());
            continue;
        }
        let memory = slot.memory.as_any();
        let addr = if let Some(region) = memory.downcast_ref::<crate::server::KernelRegion>() {
            copyout_kernel_region(&mut mapl.lock(), region).unwrap_or_else(|_| {
                error_bits |= MACH_MSG_VM_SPACE;
                0
            })
        } else if let Some(ports) = memory.downcast_ref::<OolPorts>() {
            let len = u64::from(ports.count()) * 4;
            let addr = if len == 0 {
                0
            } else {
                mapl.lock().allocate(0, len, true).unwrap_or_else(|_| {
                    error_bits |= MACH_MSG_VM_SPACE;
                    0
                })
            };
            if arrays.try_push((slot.at, addr)).is_err() {
                error_bits |= MACH_MSG_VM_SPACE;
            }
            addr
        } else {
            0
        };
        let off = slot.at as usize - HEADER_SIZE;
        kmsg.body.write(off, &addr.to_le_bytes());
    }
    // Rights in the body get names in this space.
    let mut names: arrayvec::ArrayVec<(u64, PortName), 16> = arrayvec::ArrayVec::new();
    let mut result = MsgReturn::SUCCESS;
    let flush = |kmsg: &mut Kmsg, names: &mut arrayvec::ArrayVec<(u64, PortName), 16>| {
        for (at, name) in names.drain(..) {
            let off = at as usize - HEADER_SIZE;
            kmsg.body.write(off, &u64::from(name.0).to_le_bytes());
        }
    };
    let slots: usize = kmsg.ports().count();
    for i in 0..slots {
        let Some(slot) = kmsg.ports_mut().nth(i) else {
            break;
        };
        let at = slot.at;
        let port = slot.port.take();
        let (n, bits) = space.copyout_right(port);
        error_bits |= bits;
        if at & OOL_PORT != 0 {
            let array = (at & !OOL_PORT) >> 24;
            let index = at & 0xff_ffff;
            if let Some(&(_, base)) = arrays.iter().find(|(slot, _)| *slot == array)
                && base != 0
            {
                let _ = mapl.lock().copyout(base + 4 * index, &n.0.to_le_bytes());
            }
            continue;
        }
        if names.is_full() {
            flush(kmsg, &mut names);
        }
        names.push((at, n));
    }
    flush(kmsg, &mut names);
    let mut map = mapl.lock();
    if write_header(&mut map, msg, kmsg, bits, remote, local).is_err() {
        result = MsgReturn::RCV_INVALID_DATA;
    } else {
        let mut at = msg.wrapping_add(HEADER_SIZE as u64);
        for piece in kmsg.body.slices() {
            if map.copyout(at, piece).is_err() {
                result = MsgReturn::RCV_INVALID_DATA;
                break;
            }
            at = at.wrapping_add(piece.len() as u64);
        }
    }
    (result, error_bits)
}

/// A message that could not be sent (timed out, interrupted) goes back to the sender with
/// its rights (GNU Mach `ipc_kmsg_copyout_pseudo`): the header's rights and the body's are
/// copied out into the sender's space, the header not swapped; `code` or'ed with the error
/// bits of rights that could not be placed.
fn pseudo_receive(
    space: &Space,
    mapl: &crate::sync::IrqSpinLock<VmMap>,
    msg: u64,
    mut kmsg: Kmsg,
    code: MsgReturn,
) -> MsgReturn {
    let bits = kmsg.bits;
    let dest = kmsg.take_remote().map_or(MsgPort::Null, MsgPort::Right);
    let (dest_name, dest_bits) = space.copyout_right(dest);
    let (reply_name, reply_bits) = space.copyout_right(kmsg.take_local());
    let (_, error_bits) = copyout_body(space, mapl, msg, &mut kmsg, bits, dest_name, reply_name);
    drop(kmsg);
    code.with(dest_bits | reply_bits | error_bits)
}

/// A new region of the receiver holding the bytes of a region the kernel's object server
/// made for a reply (`mach_port_names` and the like); its address.
fn copyout_kernel_region(
    map: &mut VmMap,
    region: &crate::server::KernelRegion,
) -> Result<u64, KernReturn> {
    let len = region.size();
    if len == 0 {
        return Ok(0);
    }
    let start = map.allocate(0, len, true)?;
    let mut buf = [0u8; 256];
    let mut done = 0u64;
    while done < len {
        let n = (len - done).min(buf.len() as u64) as usize;
        let copied = region.read(done as usize, &mut buf[..n])
            && map.copyout(start + done, &buf[..n]).is_ok();
        if !copied {
            let _ = map.deallocate(start, len);
            return Err(KernReturn::InvalidAddress);
        }
        done += n as u64;
    }
    Ok(start)
}

fn write_header(
    map: &mut VmMap,
    msg: u64,
    kmsg: &Kmsg,
    bits: u32,
    remote: PortName,
    local: PortName,
) -> Result<(), KernReturn> {
    let mut h = [0u8; HEADER_SIZE];
    h[0..4].copy_from_slice(&bits.to_le_bytes());
    h[4..8].copy_from_slice(&kmsg.size.to_le_bytes());
    h[8..16].copy_from_slice(&u64::from(remote.0).to_le_bytes());
    h[16..24].copy_from_slice(&u64::from(local.0).to_le_bytes());
    h[24..28].copy_from_slice(&kmsg.seqno.to_le_bytes());
    h[28..32].copy_from_slice(&kmsg.id.to_le_bytes());
    map.copyout(msg, &h)
}
