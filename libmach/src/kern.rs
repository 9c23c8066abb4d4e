//! Typed calls of the kernel's task, thread, VM and host routines over IPC (the generated
//! `mig::mach` and `mig::mach_host` stubs with the calling task's transport): info flavors
//! as `mach-abi` structs, results as `Result<_, KernReturn>`, and what the temporary traps
//! used to answer (the CPU a thread runs on, frame counts, the CPU count), now from
//! `thread_info`, `vm_statistics` and `host_info`; and armach's own migration interface
//! (`mig::armach_sched` and the flavors `THREAD_MIGRATION_INFO`, `PROCESSOR_SCHED_INFO`);
//! of GNU Mach's `gnumach.defs`, task and thread names and gsync (waits on a word of
//! memory, `GSYNC_*` flags in `mach_abi::gnumach`); and the scheduler trace
//! (`mig::armach_trace`: records as `mach_abi::trace::Event`).

use mach_abi::info::{
    THREAD_BASIC_INFO, THREAD_BASIC_INFO_COUNT, THREAD_SCHED_INFO, THREAD_SCHED_INFO_COUNT,
    ThreadBasicInfo, ThreadSchedInfo, VmStatistics,
};
use mach_abi::mig::{KernReturn, PortName};

use mach_abi::sched::{
    Balance, PROCESSOR_SCHED_INFO, PROCESSOR_SCHED_INFO_COUNT, ProcessorSchedInfo,
    THREAD_MIGRATION_INFO, THREAD_MIGRATION_INFO_COUNT, ThreadMigrationInfo,
};

use crate::ipc::{self, SendRight};
use crate::mig::{armach_sched, armach_trace, gnumach, mach, mach_host};
use crate::traps;
use alloc::vec::Vec;
use core::ffi::CStr;
use mach_abi::gnumach::KERNEL_DEBUG_NAME_MAX;
use mach_abi::mig::CStrBuf;
use mach_abi::trace::{EVENT_SIZE, Event};

/// `thread_info(THREAD_BASIC_INFO)` of `thread`.
pub fn thread_basic_info(thread: &SendRight) -> Result<ThreadBasicInfo, KernReturn> {
    let mut w = [0i32; THREAD_BASIC_INFO_COUNT];
    let out = mach::thread_info(&mut ipc::transport(), thread, THREAD_BASIC_INFO, &mut w)?;
    ThreadBasicInfo::from_words(&w[..out.thread_info_out_count as usize])
        .ok_or(KernReturn::MigTypeError)
}

/// `thread_info(THREAD_SCHED_INFO)` of `thread`.
pub fn thread_sched_info(thread: &SendRight) -> Result<ThreadSchedInfo, KernReturn> {
    let mut w = [0i32; THREAD_SCHED_INFO_COUNT];
    let out = mach::thread_info(&mut ipc::transport(), thread, THREAD_SCHED_INFO, &mut w)?;
    ThreadSchedInfo::from_words(&w[..out.thread_info_out_count as usize])
        .ok_or(KernReturn::MigTypeError)
}

/// `thread_info(THREAD_MIGRATION_INFO)` of `thread`: its migrations, cache warmth, last
/// and bound processor.
pub fn thread_migration_info(thread: &SendRight) -> Result<ThreadMigrationInfo, KernReturn> {
    let mut w = [0i32; THREAD_MIGRATION_INFO_COUNT];
    let out = mach::thread_info(&mut ipc::transport(), thread, THREAD_MIGRATION_INFO, &mut w)?;
    ThreadMigrationInfo::from_words(&w[..out.thread_info_out_count as usize])
        .ok_or(KernReturn::MigTypeError)
}

/// `processor_info(PROCESSOR_SCHED_INFO)` of `processor`: its load, run queue, migration,
/// balancing and idle counters. (The host port `processor_info` also returns is released.)
pub fn processor_sched_info(processor: &SendRight) -> Result<ProcessorSchedInfo, KernReturn> {
    let mut w = [0i32; PROCESSOR_SCHED_INFO_COUNT];
    let out = mach_host::processor_info(
        &mut ipc::transport(),
        processor,
        PROCESSOR_SCHED_INFO,
        &mut w,
    )?;
    ProcessorSchedInfo::from_words(&w[..out.processor_info_out_count as usize])
        .ok_or(KernReturn::MigTypeError)
}

/// `thread_migrate`: move `thread` to run on `processor` now.
pub fn thread_migrate(thread: &SendRight, processor: &SendRight) -> Result<(), KernReturn> {
    armach_sched::thread_migrate(&mut ipc::transport(), thread, processor)
}

/// `thread_bind`: bind `thread` to `processor`, or unbind it (`None`, sent as
/// `MACH_PORT_NULL`).
pub fn thread_bind(thread: &SendRight, processor: Option<&SendRight>) -> Result<(), KernReturn> {
    let null = core::mem::ManuallyDrop::new(SendRight::from_name(PortName::NULL));
    armach_sched::thread_bind(&mut ipc::transport(), thread, processor.unwrap_or(&null))
}

/// `processor_set_balance_get` of the set `set_name` names (its name or control port).
pub fn balance_get(set_name: &SendRight) -> Result<Balance, KernReturn> {
    let o = armach_sched::processor_set_balance_get(&mut ipc::transport(), set_name)?;
    Ok(Balance {
        interval_ticks: o.interval_ticks,
        threshold: o.threshold,
        warmth_tolerance: o.warmth_tolerance,
        idle_balance: o.idle_balance,
        periodic_balance: o.periodic_balance,
    })
}

/// `processor_set_balance_set` on the set's control port.
pub fn balance_set(set: &SendRight, b: &Balance) -> Result<(), KernReturn> {
    armach_sched::processor_set_balance_set(
        &mut ipc::transport(),
        set,
        b.interval_ticks,
        b.threshold,
        b.warmth_tolerance,
        b.idle_balance,
        b.periodic_balance,
    )
}

/// Run `f` with a send right to the calling thread's own port, released afterwards
/// (`mach_thread_self` adds a user reference each time).
pub fn with_thread_self<R>(f: impl FnOnce(&SendRight) -> R) -> R {
    let me = SendRight::from_name(traps::mach_thread_self());
    f(&me)
}

/// The CPU the calling thread last ran on, which is the one it runs on now:
/// `thread_info(THREAD_SCHED_INFO).last_processor` of itself.
pub fn current_cpu() -> u32 {
    with_thread_self(thread_sched_info).map_or(u32::MAX, |s| s.last_processor as u32)
}

/// `vm_statistics` of the calling task (the machine's page counts).
pub fn vm_statistics() -> Result<VmStatistics, KernReturn> {
    let out = mach::vm_statistics(&mut ipc::transport(), &ipc::task_self())?;
    Ok(VmStatistics::from_words(&out.vm_stats))
}

/// Physical frame counts, from `vm_statistics`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameCounts {
    pub free: u64,
    pub total: u64,
}

/// Free and total physical frames (`vm_statistics`: free, and free plus active, inactive
/// and wired). Zero if the call fails.
pub fn frame_counts() -> FrameCounts {
    let s = vm_statistics().unwrap_or_default();
    let n = |v: i32| v.max(0) as u64;
    FrameCounts {
        free: n(s.free_count),
        total: n(s.free_count) + n(s.active_count) + n(s.inactive_count) + n(s.wire_count),
    }
}

/// `HOST_BASIC_INFO` and its count.
const HOST_BASIC_INFO: i32 = 1;
const HOST_BASIC_INFO_COUNT: usize = 6;

/// CPUs online: `host_info(HOST_BASIC_INFO).avail_cpus` (0 if the call fails).
pub fn cpu_count() -> u32 {
    let mut w = [0i32; HOST_BASIC_INFO_COUNT];
    match mach_host::host_info(
        &mut ipc::transport(),
        &ipc::host_self(),
        HOST_BASIC_INFO,
        &mut w,
    ) {
        Ok(_) => w[1].max(0) as u32,
        Err(_) => 0,
    }
}

/// The machine's memory in bytes: `host_info(HOST_BASIC_INFO).memory_size` (0 if the
/// call fails).
pub fn memory_size() -> u64 {
    let mut w = [0i32; HOST_BASIC_INFO_COUNT];
    match mach_host::host_info(
        &mut ipc::transport(),
        &ipc::host_self(),
        HOST_BASIC_INFO,
        &mut w,
    ) {
        Ok(_) => (w[2] as u32 as u64) | ((w[3] as u32 as u64) << 32),
        Err(_) => 0,
    }
}

/// `vm_protect` in the calling task.
pub fn vm_protect(address: u64, size: u64, set_maximum: bool, prot: i32) -> Result<(), KernReturn> {
    mach::vm_protect(
        &mut ipc::transport(),
        &ipc::task_self(),
        address,
        size,
        set_maximum,
        prot,
    )
}

/// `thread_terminate` of the calling thread, sent without a reply port (the thread ends at
/// the return from the send, so nothing would receive a reply) and with the reference
/// `mach_thread_self` gave moved into the request: never returns. The thread's reply port,
/// if it has one, is destroyed first.
///
/// # Safety
///
/// As for any thread end: nothing may rely on the calling thread's stack or on its frames
/// finishing.
pub unsafe fn thread_terminate_self() -> ! {
    ipc::release_reply_port_at_exit();
    // One reference, moved into the request once it is queued.
    let me = traps::mach_thread_self();
    loop {
        let mut t = NoReply;
        let right = core::mem::ManuallyDrop::new(SendRight::from_name(me));
        let sent = mach::thread_terminate(&mut t, &right);
        // The task is at its kernel-memory limit (the request could not be queued): wait
        // for memory to come back and try again.
        if sent == Err(KernReturn::SendNoBuffer) {
            let _ = traps::thread_switch(PortName::NULL, mach_abi::traps::SWITCH_OPTION_WAIT, 10);
            continue;
        }
        break;
    }
    // The kernel refused (a kernel bug): end the task rather than run on.
    let _ = traps::task_terminate(traps::mach_task_self());
    loop {
        traps::swtch();
    }
}

/// A transport that sends requests without a reply port and never receives, moving the
/// sender's send right to the destination into the request (the stubs copy it).
struct NoReply;

// SAFETY: it never hands a reply to a stub (every call fails after the send).
unsafe impl mach_abi::mig::Transport for NoReply {
    type Space = ipc::TaskSpace;

    fn reply_port(&mut self) -> PortName {
        PortName::NULL
    }

    unsafe fn rpc(
        &mut self,
        msg: &mut [u8],
        send_size: usize,
        _: PortName,
        options: mach_abi::mig::CallOptions,
    ) -> Result<(), KernReturn> {
        // SAFETY: the caller's guarantee about the message's regions (`Transport::rpc`).
        unsafe { self.send(msg, send_size, options) }?;
        Err(KernReturn::MigNoReply)
    }

    unsafe fn send(
        &mut self,
        msg: &mut [u8],
        send_size: usize,
        _: mach_abi::mig::CallOptions,
    ) -> Result<(), KernReturn> {
        use crate::ipc::MachMsg;
        // The header's remote disposition (bits 0-7): MOVE_SEND instead of COPY_SEND.
        if let Some(bits) = msg
            .first_mut()
            .filter(|b| **b == mach_abi::message::MACH_MSG_TYPE_COPY_SEND)
        {
            *bits = mach_abi::message::MACH_MSG_TYPE_MOVE_SEND;
        }
        // SAFETY: as for `rpc`.
        unsafe {
            ipc::Trap.mach_msg(
                msg,
                mach_abi::message::option::SEND_MSG,
                send_size,
                PortName::NULL,
                0,
                PortName::NULL,
            )
        }
        .result()
    }
}

/// `gsync_wait`: block until a `gsync_wake` of the word at `addr` in `task` (a 4-aligned
/// address), if the word holds `val1` (with `GSYNC_QUAD` the next word `val2` too), at most
/// `msec` ms with `GSYNC_TIMED`. `Err(InvalidArgument)` if the value differs,
/// `Err(TimedOut)`, `Err(Interrupted)`, `Err(InvalidAddress)` as GNU Mach answers.
pub fn gsync_wait(
    task: &SendRight,
    addr: usize,
    val1: u32,
    val2: u32,
    msec: u32,
    flags: i32,
) -> Result<(), KernReturn> {
    gnumach::gsync_wait(
        &mut ipc::transport(),
        task,
        addr as u64,
        val1,
        val2,
        msec,
        flags,
    )
}

/// `gsync_wake`: wake one waiter on the word at `addr` (all with `GSYNC_BROADCAST`), after
/// storing `val` there with `GSYNC_MUTATE`. A simple routine: `Ok` means the request was
/// sent; what the kernel made of it is not reported back.
pub fn gsync_wake(task: &SendRight, addr: usize, val: u32, flags: i32) -> Result<(), KernReturn> {
    gnumach::gsync_wake(&mut ipc::transport(), task, addr as u64, val, flags)
}

/// `gsync_requeue`: make one waiter on `src` (all with `GSYNC_BROADCAST`) wait on `dst`
/// instead, first waking one with `wake_one`. A simple routine, as `gsync_wake`.
pub fn gsync_requeue(
    task: &SendRight,
    src: usize,
    dst: usize,
    wake_one: bool,
    flags: i32,
) -> Result<(), KernReturn> {
    gnumach::gsync_requeue(
        &mut ipc::transport(),
        task,
        src as u64,
        dst as u64,
        wake_one,
        flags,
    )
}

/// `task_set_name`: the name the kernel's reports give `task` (it keeps 31 bytes).
/// `Err(MigArrayTooLarge)` for a name of 64 bytes or more (`kernel_debug_name_t`).
pub fn task_set_name(task: &SendRight, name: &CStr) -> Result<(), KernReturn> {
    gnumach::task_set_name(&mut ipc::transport(), task, name)
}

/// `thread_set_name`: the name the kernel's reports give `thread`.
pub fn thread_set_name(thread: &SendRight, name: &CStr) -> Result<(), KernReturn> {
    gnumach::thread_set_name(&mut ipc::transport(), thread, name)
}

/// `thread_get_name`: `thread`'s name (its task's at its creation if it was never named).
pub fn thread_get_name(thread: &SendRight) -> Result<CStrBuf<KERNEL_DEBUG_NAME_MAX>, KernReturn> {
    Ok(gnumach::thread_get_name(&mut ipc::transport(), thread)?.name)
}

/// What `trace_status` reports: whether the kernel records scheduler events, how many CPUs
/// have a ring, how many events a ring holds, and the counter's frequency (ticks per
/// second) to turn event times into seconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TraceStatus {
    pub enabled: bool,
    pub cpus: u32,
    pub capacity: u32,
    pub frequency: u64,
}

/// `trace_status` on the host-privileged port.
pub fn trace_status(host_priv: &SendRight) -> Result<TraceStatus, KernReturn> {
    let o = armach_trace::trace_status(&mut ipc::transport(), host_priv)?;
    Ok(TraceStatus {
        enabled: o.enabled,
        cpus: o.cpus,
        capacity: o.capacity,
        frequency: o.frequency,
    })
}

/// `trace_enable`: turn the scheduler trace on or off.
pub fn trace_enable(host_priv: &SendRight, on: bool) -> Result<(), KernReturn> {
    armach_trace::trace_enable(&mut ipc::transport(), host_priv, on)
}

/// `trace_reset`: forget every CPU's events so far.
pub fn trace_reset(host_priv: &SendRight) -> Result<(), KernReturn> {
    armach_trace::trace_reset(&mut ipc::transport(), host_priv)
}

/// What one `trace_read` returned: the events, oldest first; the index to read from next
/// time; how many events asked for were already overwritten.
pub struct TraceRead {
    pub events: Vec<Event>,
    pub next: u64,
    pub lost: u64,
}

/// `trace_read`: CPU `cpu`'s events from index `since` on (0: all it holds).
pub fn trace_read(host_priv: &SendRight, cpu: u32, since: u64) -> Result<TraceRead, KernReturn> {
    let o = armach_trace::trace_read(&mut ipc::transport(), host_priv, cpu, since)?;
    let bytes = o.events.as_bytes();
    if bytes.len() % EVENT_SIZE != 0 {
        return Err(KernReturn::MigTypeError);
    }
    Ok(TraceRead {
        events: bytes
            .chunks_exact(EVENT_SIZE)
            .filter_map(Event::from_bytes)
            .collect(),
        next: o.next,
        lost: o.lost,
    })
}

/// `trace_thread_id`: the id trace events name `thread` by.
pub fn trace_thread_id(thread: &SendRight) -> Result<u32, KernReturn> {
    armach_trace::trace_thread_id(&mut ipc::transport(), thread).map(|o| o.id)
}
