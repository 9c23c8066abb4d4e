//! Serving a message sent to a kernel object's port (GNU Mach `ipc_kobject_server`), in
//! the sender's context: the request `Kmsg` becomes bytes in GNU Mach's format whose port
//! slots hold handles (`slots`), the generated demux functions run in an order the
//! destination's kind picks (each passes on ids it does not know), and the reply bytes
//! become the reply `Kmsg`, charged to the sender and addressed to the request's reply
//! right.
//!
//! Rights and memory, as GNU Mach does: the destination right is consumed (a send-once
//! right quietly, so no notification loops back here); rights and regions the routines
//! did not take are destroyed, whether they succeeded (they had no use for them) or
//! failed (GNU MIG's "the request is destroyed"); the reply right goes into the reply, or
//! is released if there is none.
//!
//! The message buffers come from a small static pool (no heap block larger than a
//! granule, nothing to allocate per call). A server call holds one for its whole length
//! and never blocks, and kernel code is not preempted, so each CPU uses at most one at a
//! time. A routine that must block (`gsync_wait`) asserts its wait and says so
//! ([`After::Block`]); the caller blocks once the buffers are released ([`serve_then`]).

extern crate alloc;

use super::generated::{
    armach_sched, armach_trace, device, gnumach, mach, mach_debug, mach_host, mach_port, mach4,
};
use super::objects::{After, Kernel, TaskIpc};
use super::slots::{self, MAX_ARRAYS, MAX_PORTS, MAX_REGIONS, PortArray, Slots};
use crate::ipc::abi::msgh_bits;
use crate::ipc::kmsg::OOL_PORT;
use crate::ipc::kmsg::{HEADER_SIZE, OolPorts, ool_port_at};
use crate::ipc::right::Reaper;
use crate::ipc::{Charge, KObjectKind, Kind, Kmsg, KmsgShape, Ledger, MsgPort, Right, RightKind};
use alloc::boxed::Box;
use alloc::sync::Arc;
use arrayvec::ArrayVec;
use mach_abi::KernReturn;
use mach_abi::mig::{self, Header, PortSlot, Served, TypeDesc};

const fn max(a: usize, b: usize) -> usize {
    if a > b { a } else { b }
}

/// The largest request any kernel server takes.
pub const REQUEST_MAX: usize = max(
    max(
        max(mach::MAX_REQUEST_SIZE, mach_host::MAX_REQUEST_SIZE),
        max(mach_port::MAX_REQUEST_SIZE, mach_debug::MAX_REQUEST_SIZE),
    ),
    max(
        max(armach_sched::MAX_REQUEST_SIZE, gnumach::MAX_REQUEST_SIZE),
        max(
            device::MAX_REQUEST_SIZE,
            max(armach_trace::MAX_REQUEST_SIZE, mach4::MAX_REQUEST_SIZE),
        ),
    ),
);
/// The largest reply any kernel server writes.
pub const REPLY_MAX: usize = max(
    max(
        max(mach::MAX_REPLY_SIZE, mach_host::MAX_REPLY_SIZE),
        max(mach_port::MAX_REPLY_SIZE, mach_debug::MAX_REPLY_SIZE),
    ),
    max(
        max(armach_sched::MAX_REPLY_SIZE, gnumach::MAX_REPLY_SIZE),
        max(
            device::MAX_REPLY_SIZE,
            max(armach_trace::MAX_REPLY_SIZE, mach4::MAX_REPLY_SIZE),
        ),
    ),
);

struct Buffers {
    request: [u8; REQUEST_MAX],
    reply: [u8; REPLY_MAX],
}

/// Buffer pairs: as many CPUs as armach's tests run on can serve at once without waiting.
const POOL_SIZE: usize = 8;

static POOL: [spin::Mutex<Buffers>; POOL_SIZE] = [const {
    spin::Mutex::new(Buffers {
        request: [0; REQUEST_MAX],
        reply: [0; REPLY_MAX],
    })
}; POOL_SIZE];

/// A free buffer pair, this CPU's first choice first.
fn buffers() -> spin::MutexGuard<'static, Buffers> {
    #[cfg(target_os = "none")]
    let first = crate::percpu::current_cpu().index() % POOL_SIZE;
    #[cfg(not(target_os = "none"))]
    let first = 0;
    loop {
        for i in 0..POOL_SIZE {
            if let Some(guard) = POOL[(first + i) % POOL_SIZE].try_lock() {
                return guard;
            }
        }
        crate::sync::cpu_relax();
    }
}

type Demux<T> = fn(&mut Kernel<'_, T>, &[u8], &mut [u8]) -> Served;

/// The demux functions to try, the likeliest for the destination's kind first (GNU Mach
/// chains them all whatever the port; so do we, the order only saves time).
fn chain<T: TaskIpc>(kind: Option<KObjectKind>) -> [Demux<T>; 9] {
    let port: Demux<T> = |k, r, o| mach_port::mach_port_server(k, r, o);
    let task: Demux<T> = |k, r, o| mach::mach_server(k, r, o);
    let host: Demux<T> = |k, r, o| mach_host::mach_host_server(k, r, o);
    let debug: Demux<T> = |k, r, o| mach_debug::mach_debug_server(k, r, o);
    let sched: Demux<T> = |k, r, o| armach_sched::armach_sched_server(k, r, o);
    let gnu: Demux<T> = |k, r, o| gnumach::gnumach_server(k, r, o);
    let dev: Demux<T> = |k, r, o| device::device_server(k, r, o);
    let trace: Demux<T> = |k, r, o| armach_trace::armach_trace_server(k, r, o);
    let m4: Demux<T> = |k, r, o| mach4::mach4_server(k, r, o);
    match kind {
        Some(KObjectKind::Task) => [port, task, gnu, debug, host, sched, dev, m4, trace],
        Some(KObjectKind::Thread) => [task, host, gnu, sched, debug, port, dev, m4, trace],
        Some(KObjectKind::Device | KObjectKind::MasterDevice) => {
            [dev, task, host, port, debug, sched, gnu, m4, trace]
        }
        Some(
            KObjectKind::Host
            | KObjectKind::HostPriv
            | KObjectKind::Processor
            | KObjectKind::ProcessorSet
            | KObjectKind::ProcessorSetName,
        ) => [host, sched, debug, task, gnu, port, dev, m4, trace],
        _ => [task, host, port, debug, sched, gnu, dev, m4, trace],
    }
}

/// Granules the largest reply to request `id` can take, charged before the routine runs
/// (as GNU Mach allocates the reply first) so that a routine's effect is never lost for
/// want of memory to report it. The routine's own largest reply (from the generated
/// tables), with as many rights and regions as its body could describe; only rights in
/// out-of-line arrays come on top, for the queries that return them (`make_reply`).
/// An id no server knows gets an error reply (`MIG_BAD_ID`, 48 bytes).
fn reply_blocks(id: i32) -> usize {
    let size = max_reply_size(id).unwrap_or(48).min(REPLY_MAX);
    let body_len = size.saturating_sub(HEADER_SIZE);
    KmsgShape {
        body_len,
        // A right's slot takes 8 bytes of the body, a region's descriptor and address 16.
        ports: (body_len / 8).min(MAX_PORTS),
        ool: (body_len / 16).min(MAX_REGIONS + 1),
    }
    .blocks()
    .unwrap_or(usize::MAX)
}

/// The largest reply to request `id`, from the generated tables (`None`: no server knows
/// the id; its error reply has only a code).
fn max_reply_size(id: i32) -> Option<usize> {
    mach::max_reply_size(id)
        .or(mach_host::max_reply_size(id))
        .or(mach_port::max_reply_size(id))
        .or(mach_debug::max_reply_size(id))
        .or(armach_sched::max_reply_size(id))
        .or(gnumach::max_reply_size(id))
        .or(device::max_reply_size(id))
        .or(armach_trace::max_reply_size(id))
        .or(mach4::max_reply_size(id))
}

/// Whether every reply to request `id` is a return code alone (48 bytes, no rights).
fn reply_is_code_only(id: i32) -> bool {
    max_reply_size(id).unwrap_or(mig::ERROR_REPLY_SIZE) <= mig::ERROR_REPLY_SIZE
}

/// Granules a reply with only a return code takes.
fn code_only_blocks() -> usize {
    KmsgShape {
        body_len: mig::ERROR_REPLY_SIZE - HEADER_SIZE,
        ports: 0,
        ool: 0,
    }
    .blocks()
    .unwrap_or(usize::MAX)
}

/// Serve `request`, sent to a port whose receive right the kernel holds, for a task whose
/// kernel memory `ledger` is; returns the reply to send to its reply right, if any.
/// `T` is the type of the task objects behind task ports.
pub fn serve<T: TaskIpc>(ledger: &Arc<dyn Ledger>, request: Kmsg) -> Option<Kmsg> {
    serve_then::<T>(ledger, request).0
}

/// [`serve`], and what the caller must do once the buffers are released ([`After`]: block
/// in the wait `gsync_wait` asserted).
pub fn serve_then<T: TaskIpc>(
    ledger: &Arc<dyn Ledger>,
    mut request: Kmsg,
) -> (Option<Kmsg>, After) {
    let mut after = After::Nothing;
    let reply = serve_in_place::<T>(ledger, &mut request, &mut after);
    // Whatever no routine took: the request's rights and regions.
    drop(request);
    (reply, after)
}

/// Replace the return code of `reply`, a reply with only a code (`gsync_wait`'s, whose
/// outcome is known only after the caller has blocked).
pub fn set_return_code(reply: &mut Kmsg, code: KernReturn) {
    // The body: the code's type descriptor, then the code.
    let at = mig::DESC_SIZE;
    let _ = reply.body.write(at, &code.code().to_le_bytes());
}

/// The body of [`serve`]. The handle table lives and dies in this frame (rights put in for
/// a reply that was not sent go with it) without being moved: it is several hundred bytes.
fn serve_in_place<T: TaskIpc>(
    ledger: &Arc<dyn Ledger>,
    request: &mut Kmsg,
    after: &mut After,
) -> Option<Kmsg> {
    let dest = request.take_remote();
    let mut reply_right = request.take_local();
    // A port that died (or that the kernel let go of) stands for nothing.
    let kobject = dest
        .as_ref()
        .map(|d| d.port())
        .filter(|p| p.is_kernel())
        .and_then(|p| p.kobject());
    let mut slots = Slots::new(kobject);

    // A reply with only a return code fits in the granule the reply right prepaid for the
    // message it will carry (as an error reply does): it is paid with that, so a task at
    // its kernel-memory limit can still make the calls that free memory
    // (`mach_port_mod_refs`, `vm_deallocate`, …) and hear their answers.
    let prepaid = match &reply_right {
        MsgPort::Right(r) => {
            r.kind() == RightKind::SendOnce && r.prepaid_blocks() >= code_only_blocks()
        }
        _ => false,
    } && reply_is_code_only(request.id);
    // Without a reply right there is no reply to pay for (a thread ending itself with
    // `thread_terminate` sends so, and must not be refused for want of memory).
    let blocks = match reply_right {
        MsgPort::Right(_) if !prepaid => reply_blocks(request.id),
        _ => 0,
    };
    let result = match Charge::new(ledger, Kind::Message, blocks) {
        Ok(charge) => {
            let mut bufs = buffers();
            let Buffers {
                request: req,
                reply,
            } = &mut *bufs;
            let served = run::<T>(ledger, request, &reply_right, &mut slots, req, reply, after);
            // No reply right: whatever the routine returned goes with the request.
            match (served, &mut reply_right) {
                (Some(size), MsgPort::Right(right)) => {
                    let charge = match prepaid.then(|| right.take_prepaid()).flatten() {
                        Some(prepaid) => prepaid,
                        None => charge,
                    };
                    Some(make_reply(&reply[..size], &mut slots, charge))
                }
                _ => None,
            }
        }
        Err(_) => Some(Err(KernReturn::ResourceShortage)),
    };

    // The destination right is consumed: a send right released, a send-once right
    // quietly (its message was this request).
    if let Some(dest) = dest {
        if dest.kind() == RightKind::SendOnce {
            let mut reaper = Reaper::new();
            reaper.consume_quietly(dest);
            reaper.run();
        } else {
            drop(dest);
        }
    }
    match (result, reply_right) {
        (Some(Ok(mut kmsg)), MsgPort::Right(right)) => {
            kmsg.set_ports(right, MsgPort::Null, 0);
            Some(kmsg)
        }
        (Some(Err(code)), MsgPort::Right(right)) => error_reply(right, request.id, code),
        _ => None,
    }
}

/// Run the demux chain on `request`; the reply's size if there is one to send.
fn run<T: TaskIpc>(
    ledger: &Arc<dyn Ledger>,
    request: &mut Kmsg,
    reply_right: &MsgPort,
    slots: &mut Slots,
    req: &mut [u8; REQUEST_MAX],
    reply: &mut [u8; REPLY_MAX],
    after: &mut After,
) -> Option<usize> {
    let reply_slot = match reply_right {
        MsgPort::Null => PortSlot::NULL,
        MsgPort::Dead => PortSlot::KERNEL_DEAD,
        MsgPort::Right(_) => slots::REPLY,
    };
    // The header as the receiver of the request sees it: the reply right remote, the
    // destination local, and their types swapped to match.
    let header = Header {
        bits: msgh_bits::other(request.bits)
            | msgh_bits::make(
                msgh_bits::local(request.bits),
                msgh_bits::remote(request.bits),
            ),
        size: request.size,
        remote_port: reply_slot,
        local_port: slots::DEST,
        seqno: 0,
        id: request.id,
    };
    let body_len = request.body.len().min(REQUEST_MAX - HEADER_SIZE);
    let len = HEADER_SIZE + body_len;
    header.write(&mut req[..]);
    if !request.body.read(0, &mut req[HEADER_SIZE..len]) {
        return Some(mig::error_reply(
            &header,
            KernReturn::MigBadArguments,
            reply,
        ));
    }
    // Each right of the body goes into the table, its handle into its slot.
    let mut overflow = false;
    for s in request.ports_mut() {
        if s.at & OOL_PORT != 0 {
            // A right of an out-of-line array: kept by array and index, for the routine
            // that takes the array (or, past what the table keeps, released with the
            // request: such an array is larger than any routine accepts).
            let array = (s.at & !OOL_PORT) >> 24;
            let index = (s.at & 0xff_ffff) as u32;
            if let Err(port) = slots.put_incoming_right(array, index, s.port.take()) {
                s.port = port;
            }
            continue;
        }
        let at = s.at as usize;
        if at < HEADER_SIZE || at.saturating_add(8) > len {
            // Beyond what was copied: the request is too large to be served anyway.
            continue;
        }
        match slots.put(s.port.take()) {
            Ok(handle) => req[at..at + 8].copy_from_slice(&handle.0.to_le_bytes()),
            Err(port) => {
                s.port = port;
                overflow = true;
            }
        }
    }
    // Its out-of-line regions too.
    while let Some(s) = request.take_ool() {
        let at = s.at as usize;
        if at < HEADER_SIZE || at.saturating_add(8) > len {
            continue;
        }
        match slots.put_incoming(s.at, s.memory) {
            Ok(handle) => req[at..at + 8].copy_from_slice(&handle.to_le_bytes()),
            Err(memory) => {
                drop(memory);
                overflow = true;
            }
        }
    }
    if overflow {
        return Some(mig::error_reply(
            &header,
            KernReturn::MigBadArguments,
            reply,
        ));
    }
    let mut server = Kernel::<T> {
        slots,
        ledger,
        after: After::Nothing,
        _task: core::marker::PhantomData,
    };
    let mut served = Served {
        handled: false,
        reply_size: 0,
        code: KernReturn::MigBadId,
    };
    for demux in chain::<T>(server.slots.kobject(slots::DEST).map(|k| k.kind())) {
        served = demux(&mut server, &req[..len], &mut reply[..]);
        if served.handled {
            break;
        }
    }
    *after = server.after;
    (served.reply_size != 0).then_some(served.reply_size)
}

/// The reply `Kmsg` for the reply bytes `msg` (header first): its port slots' handles
/// become rights, its region handles regions, paid by `charge` cut down to its size.
fn make_reply(msg: &[u8], slots: &mut Slots, mut charge: Charge) -> Result<Kmsg, KernReturn> {
    let header = Header::read(msg).ok_or(KernReturn::MigTypeError)?;
    let mut ports: ArrayVec<(u64, PortSlot), MAX_PORTS> = ArrayVec::new();
    let mut regions: ArrayVec<(u64, u64), MAX_REGIONS> = ArrayVec::new();
    let mut arrays: ArrayVec<(u64, u64), MAX_ARRAYS> = ArrayVec::new();
    // The reply is the generated code's own: walk its items to find the slots.
    let mut at = HEADER_SIZE;
    while at < msg.len() {
        let d = TypeDesc::read(msg, at).ok_or(KernReturn::MigTypeError)?;
        let data = at + mig::DESC_SIZE;
        let len = d.data_len().ok_or(KernReturn::MigTypeError)?;
        if d.inline {
            if mig::is_port_right(d.name) && d.size == 64 {
                for i in 0..d.number as usize {
                    let slot = data + 8 * i;
                    let value = msg.get(slot..slot + 8).ok_or(KernReturn::MigTypeError)?;
                    let handle = PortSlot(u64::from_le_bytes(value.try_into().unwrap_or_default()));
                    ports
                        .try_push((slot as u64, handle))
                        .map_err(|_| KernReturn::MigTypeError)?;
                }
            }
        } else if mig::is_port_right(d.name) {
            // An out-of-line array of rights: its handle stands for the address.
            let value = msg.get(data..data + 8).ok_or(KernReturn::MigTypeError)?;
            let handle = u64::from_le_bytes(value.try_into().unwrap_or_default());
            if handle != 0 || d.number != 0 {
                arrays
                    .try_push((data as u64, handle))
                    .map_err(|_| KernReturn::MigTypeError)?;
            }
        } else {
            let value = msg.get(data..data + 8).ok_or(KernReturn::MigTypeError)?;
            let handle = u64::from_le_bytes(value.try_into().unwrap_or_default());
            if handle != 0 {
                regions
                    .try_push((data as u64, handle))
                    .map_err(|_| KernReturn::MigTypeError)?;
            }
        }
        at = data + len;
    }
    let mut taken: ArrayVec<(u64, PortArray), MAX_ARRAYS> = ArrayVec::new();
    let mut array_rights = 0;
    for &(at, handle) in &arrays {
        let array = slots
            .take_port_array(handle)
            .ok_or(KernReturn::MigTypeError)?;
        array_rights += array.rights.len();
        // Room for MAX_ARRAYS was made above.
        let _ = taken.try_push((at, array));
    }
    let shape = KmsgShape {
        body_len: msg.len() - HEADER_SIZE,
        ports: ports.len() + array_rights,
        ool: regions.len() + taken.len(),
    };
    let blocks = shape.blocks().ok_or(KernReturn::MigTypeError)?;
    let charged = charge.blocks();
    if blocks > charged {
        charge.grow(blocks - charged)?;
    } else {
        charge.shrink_to(blocks);
    }
    let mut kmsg = Kmsg::with_charge(shape, Some(charge)).ok_or(KernReturn::ResourceShortage)?;
    kmsg.id = header.id;
    kmsg.size = msg.len() as u32;
    kmsg.bits = header.bits & msgh_bits::COMPLEX;
    kmsg.body.extend_from_slice(&msg[HEADER_SIZE..]);
    for (at, handle) in ports {
        // Room for each was reserved by the shape.
        let _ = kmsg.push_port(at, slots.take(handle));
    }
    for (at, handle) in regions {
        if let Some(region) = slots.take_region(handle) {
            let _ = kmsg.push_ool(at, Box::new(region));
        }
    }
    for (at, mut array) in taken {
        let count = array.rights.len();
        let mut i = 0;
        while let Some(right) = array.rights.get_mut(i).map(MsgPort::take) {
            let _ = kmsg.push_port(ool_port_at(at as usize, i), right);
            i += 1;
        }
        let PortArray { _charge, .. } = array;
        let _ = kmsg.push_ool(at, Box::new(OolPorts::new(count as u32, _charge)));
    }
    Ok(kmsg)
}

/// A reply carrying only `code` (for a request that could not be served: the sender's
/// kernel memory is exhausted), paid by a send-once reply right's prepaid message; a
/// send right gets nothing and is released (GNU Mach drops the request).
fn error_reply(right: Right, request_id: i32, code: KernReturn) -> Option<Kmsg> {
    if right.kind() != RightKind::SendOnce {
        drop(right);
        return None;
    }
    let right_type = right.msg_type();
    let (port, kind, prepaid) = right.into_parts();
    let right = Right::new(port, kind, None);
    let mut bytes = [0u8; mig::ERROR_REPLY_SIZE];
    let request = Header {
        bits: msgh_bits::make(right_type, 0),
        id: request_id,
        ..Header::default()
    };
    let size = mig::error_reply(&request, code, &mut bytes);
    let shape = KmsgShape {
        body_len: size - HEADER_SIZE,
        ports: 0,
        ool: 0,
    };
    let Some(mut kmsg) = Kmsg::with_charge(shape, prepaid) else {
        drop(right);
        return None;
    };
    kmsg.id = request_id.wrapping_add(100);
    kmsg.size = size as u32;
    kmsg.body.extend_from_slice(&bytes[HEADER_SIZE..size]);
    kmsg.set_ports(right, MsgPort::Null, 0);
    Some(kmsg)
}
