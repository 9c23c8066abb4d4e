//! The state one kernel-server call runs with ([`Kernel`]): the request's handle table,
//! who pays for what the reply carries, and the translation of a request's destination
//! port into the object the routines get (GNU Mach `kern/ipc_tt.c`, `ipc_host.c`:
//! `convert_port_to_task`, `convert_port_to_space`, `convert_port_to_host`, ...).
//!
//! A hook that finds no object of the right kind answers what GNU Mach's routine answers
//! for a null object: `KERN_INVALID_TASK` for a space, `KERN_INVALID_HOST` for the host in
//! the routines that say so (time, reboot, wiring), `KERN_INVALID_ARGUMENT` otherwise.

extern crate alloc;

use super::host::Host;
use super::processor::{Processor, ProcessorSet};
use super::slots::Slots;
use crate::ids::ProcessorSetId;
use crate::ipc::{KObject, KObjectKind, Ledger, MsgPort, Space};
use crate::kern::sched::stats::ThreadMigration;
use alloc::sync::Arc;
use core::any::Any;
#[cfg(target_os = "none")]
use core::sync::atomic::Ordering;
use mach_abi::KernReturn;
use mach_abi::info::{
    TaskBasicInfo, TaskEventsInfo, TaskThreadTimesInfo, ThreadBasicInfo, ThreadSchedInfo,
    VmStatistics,
};
use mach_abi::mig::PortSlot;
use mach_abi::thread_state::{Aarch64FloatState, Aarch64ThreadState};

/// What the object server needs of a thread: the kernel object behind a thread port is an
/// `Arc<T::Thread>` tagged `KObjectKind::Thread` (GNU Mach's `IKOT_THREAD`). The routines'
/// rules (which thread may be asked what, counts, flavors, codes) are the server's
/// (`mach`); these are the mechanisms they reach.
pub trait ThreadIpc: Any + Send + Sync {
    /// Whether this is the thread the request is served for (the caller).
    fn is_current(&self) -> bool;
    /// A send right to the thread's own port (`thread->ith_self`), or null.
    fn self_port(&self) -> MsgPort;
    /// A copy of the send right in its exception-port slot, or null.
    fn exception_port(&self) -> MsgPort;
    /// Store `port` (a send right, or null) in its exception-port slot, releasing the old
    /// one; `KERN_FAILURE` once the thread is ending.
    fn set_exception_port(&self, port: MsgPort) -> Result<(), KernReturn>;
    /// `THREAD_BASIC_INFO`'s values (all of them; the server sends what the count allows).
    fn basic_info(&self) -> ThreadBasicInfo;
    /// `THREAD_SCHED_INFO`'s values.
    fn sched_info(&self) -> ThreadSchedInfo;
    /// `user_stop_count`.
    fn user_stop_count(&self) -> u32;
    /// One more user suspension; the first holds the thread (GNU Mach `thread_suspend`
    /// without its wait, which the caller's context does after the reply).
    fn suspend(&self);
    /// One user suspension fewer; the last releases the thread (starts it, the first
    /// time). `KERN_FAILURE` if it was not suspended.
    fn resume(self: &Arc<Self>) -> Result<(), KernReturn>;
    /// Ask the thread to end at its next return to user mode (now, if it never ran).
    /// `KERN_FAILURE` for a kernel thread.
    fn terminate(self: &Arc<Self>) -> Result<(), KernReturn>;
    /// End an interruptible wait it is in with `THREAD_INTERRUPTED` and any priority
    /// depression (GNU Mach `thread_abort`).
    fn abort(self: &Arc<Self>);
    /// Its saved user registers, if it is stopped (`None`: it is running).
    fn user_state(&self) -> Option<(Aarch64ThreadState, Aarch64FloatState)>;
    /// Replace the saved user registers of a stopped thread (`None`: it is running): the
    /// general ones, the FP/SIMD ones, or both.
    fn set_user_state(
        &self,
        general: Option<&Aarch64ThreadState>,
        float: Option<&Aarch64FloatState>,
    ) -> Option<()>;
    /// Its kernel port (`thread->ith_self`), for the arrays of thread ports that
    /// `task_threads` and `processor_set_threads` return.
    fn kernel_port(&self) -> Option<Arc<crate::ipc::Port>>;
    /// The thread's processor set (`thread_get_assignment`).
    fn processor_set(&self) -> ProcessorSetId;
    /// Move the thread to `set` (`thread_assign`; the scheduler's refusals).
    fn assign(self: &Arc<Self>, set: ProcessorSetId) -> Result<(), KernReturn>;
    /// Its base priority and its maximum (GNU Mach's `priority`, `max_priority`).
    fn base_priority(&self) -> u32;
    fn max_priority(&self) -> u32;
    /// Set its base priority (while depressed: the one restored at the end).
    fn set_priority(self: &Arc<Self>, priority: u32);
    fn set_max_priority(&self, max_priority: u32);
    /// End a priority depression now, if one is in progress.
    fn depress_abort(self: &Arc<Self>);
    /// `THREAD_MIGRATION_INFO`'s values.
    fn migration_info(&self) -> ThreadMigration;
    /// The id scheduler-trace events name the thread by (`trace_thread_id`).
    fn trace_id(&self) -> u32;
    /// Move the thread to processor `slot` now (`thread_migrate`; the scheduler's refusals).
    fn migrate(self: &Arc<Self>, slot: u32) -> Result<(), KernReturn>;
    /// Bind the thread to processor `slot`, or unbind it (`thread_bind`).
    fn bind(self: &Arc<Self>, slot: Option<u32>) -> Result<(), KernReturn>;
    /// `thread_set_name`: its name for the kernel's reports (cut to fit).
    fn set_name(&self, name: &[u8]);
    /// `thread_get_name`: its name, NUL-padded.
    fn name(&self) -> [u8; mach_abi::gnumach::NAME_SIZE];
}

/// What the object server needs of a task: the kernel object behind a task port is an
/// `Arc<T>` tagged `KObjectKind::Task` (GNU Mach's `ip_kobject` of an `IKOT_TASK` port).
pub trait TaskIpc: Any + Send + Sync {
    /// The type of the task's threads.
    type Thread: ThreadIpc;
    /// The task's processor set (`task_get_assignment`).
    fn processor_set(&self) -> ProcessorSetId;
    /// Move the task (and with `threads` its threads) to `set` (`task_assign`).
    fn assign(self: &Arc<Self>, set: ProcessorSetId, threads: bool) -> Result<(), KernReturn>;
    /// The priority its new threads get (`task->priority`), and set it.
    fn priority(&self) -> u32;
    fn set_priority(&self, priority: u32);
    /// The maximum its new threads get (`task->max_priority`), and set it.
    fn max_priority(&self) -> u32;
    fn set_max_priority(&self, max_priority: u32);
    /// Call `f` on each of its threads.
    fn for_each_thread(&self, f: &mut dyn FnMut(&Arc<Self::Thread>));
    /// `vm_wire` on its map once the host port is checked (`mm::vm::VmMap::wire`: the
    /// unprivileged limit, the range check, the pages made present).
    fn wire(
        &self,
        address: u64,
        size: u64,
        access: u32,
        privileged: bool,
    ) -> Result<(), KernReturn>;
    /// `vm_wire_all` on its map once the host port is checked (`VmMap::wire_all`).
    fn wire_all(&self, flags: u32) -> Result<(), KernReturn>;
    /// `vm_get_size_limit`: (current, maximum); `KERN_INVALID_TASK` for the kernel's task.
    fn size_limits(&self) -> Result<(u64, u64), KernReturn>;
    /// `vm_set_size_limit` once the host port is checked (`VmMap::set_size_limits`).
    fn set_size_limits(&self, current: u64, max: u64, privileged: bool) -> Result<(), KernReturn>;
    /// `vm_region_create_proxy`: the memory of the region that holds `address` (or the
    /// next one above it; none: `KERN_NO_SPACE`) made shared, for a proxy of `len` bytes
    /// (more than the region: `KERN_INVALID_ARGUMENT`) from `address` on, its maximum
    /// protection limited by the region's, charged to the task.
    fn region_proxy(
        &self,
        address: u64,
        max_protection: u32,
        len: u64,
    ) -> Result<crate::mm::object::Proxy, KernReturn>;
    /// `task_create`: a new task with no threads in the parent's processor set, its
    /// address space empty or (with `inherit_memory`) a copy of what the parent lets it
    /// inherit.
    fn task_create(self: &Arc<Self>, inherit_memory: bool) -> Result<Arc<Self>, KernReturn>;
    /// A send right to the task's own port (`convert_task_to_port`), or null.
    fn self_port(&self) -> MsgPort;
    /// A new thread in the task, suspended once (GNU Mach `thread_create`): it starts at
    /// its first `thread_resume`, from the state `thread_set_state` gave it.
    fn thread_create(self: &Arc<Self>) -> Result<Arc<Self::Thread>, KernReturn>;
    /// `vm_allocate` in the task's map: the start of the new region.
    fn vm_allocate(&self, address: u64, size: u64, anywhere: bool) -> Result<u64, KernReturn>;
    /// `vm_deallocate`.
    fn vm_deallocate(&self, address: u64, size: u64) -> Result<(), KernReturn>;
    /// `vm_map` once its arguments are checked (`mm::vm::VmMap::map`): the new range's
    /// start.
    #[allow(clippy::too_many_arguments)] // vm_map's own arguments, one by one.
    fn vm_map(
        &self,
        address: u64,
        size: u64,
        mask: u64,
        anywhere: bool,
        backing: crate::mm::regions::Backing,
        prot: u32,
        max_prot: u32,
        inheritance: u32,
    ) -> Result<u64, KernReturn>;
    /// `vm_protect`.
    fn vm_protect(
        &self,
        address: u64,
        size: u64,
        set_maximum: bool,
        protection: i32,
    ) -> Result<(), KernReturn>;
    /// `vm_statistics`: the machine's page counts.
    fn vm_statistics(&self) -> VmStatistics;
    /// `vm_read`'s copy: the `size` bytes at `address` handed to `out` piece by piece, after
    /// checking that all of them are readable.
    fn vm_read(
        &self,
        address: u64,
        size: u64,
        out: &mut dyn FnMut(&[u8]) -> bool,
    ) -> Result<(), KernReturn>;
    /// `vm_write`: the bytes of `data` (a request's out-of-line region) at `address`, which
    /// must be page-aligned as the size must (`KERN_INVALID_ARGUMENT`), over writable
    /// memory only (nothing written otherwise).
    fn vm_write(&self, address: u64, data: &dyn crate::ipc::OolMemory) -> Result<(), KernReturn>;
    /// `vm_inherit` in the task's map.
    fn vm_inherit(&self, address: u64, size: u64, inheritance: i32) -> Result<(), KernReturn>;
    /// `vm_copy` within the task's map.
    fn vm_copy(&self, source: u64, size: u64, dest: u64) -> Result<(), KernReturn>;
    /// `vm_region`: the region holding `address` or the next one; `KERN_NO_SPACE` if there
    /// is none.
    fn vm_region(&self, address: u64) -> Result<RegionInfo, KernReturn>;
    /// `task_terminate`: every thread asked to end. `KERN_FAILURE` for the kernel's task.
    fn terminate(&self) -> Result<(), KernReturn>;
    /// `task_suspend`: one more suspension, every thread held on the first.
    fn suspend(&self) -> Result<(), KernReturn>;
    /// `task_resume`: one fewer (`KERN_FAILURE` if none), every thread released on the last.
    fn resume(&self) -> Result<(), KernReturn>;
    /// `TASK_BASIC_INFO` (times of the threads that have ended, as GNU Mach).
    fn basic_info(&self) -> TaskBasicInfo;
    /// `TASK_EVENTS_INFO`.
    fn events_info(&self) -> TaskEventsInfo;
    /// `TASK_THREAD_TIMES_INFO`: the live threads' times.
    fn thread_times(&self) -> TaskThreadTimesInfo;
    /// The task's IPC space (`task->itk_space`), or `None` once the task is going.
    fn ipc_space(&self) -> Option<Arc<Space>>;
    /// A copy of the send right in special-port slot `which` (`TASK_KERNEL_PORT`: the
    /// task's own port, `itk_sself`; `TASK_EXCEPTION_PORT`; `TASK_BOOTSTRAP_PORT`), or
    /// null if the slot holds none (GNU Mach `ipc_port_copy_send`).
    fn special_port(&self, which: i32) -> MsgPort;
    /// `task_set_special_port`: store `port` (a send right, or null) in slot `which`
    /// (`TASK_EXCEPTION_PORT`, `TASK_BOOTSTRAP_PORT`), releasing what was there.
    /// `KERN_INVALID_ARGUMENT` for another slot (the task's own port cannot be replaced
    /// here), `KERN_FAILURE` once the task is going.
    fn set_special_port(&self, which: i32, port: MsgPort) -> Result<(), KernReturn>;
    /// `mach_ports_register`: keep these send rights (null where none) in place of the
    /// ones kept before, which are released. `KERN_FAILURE` once the task is going.
    fn register_ports(&self, ports: [MsgPort; 3]) -> Result<(), KernReturn>;
    /// `mach_ports_lookup`: copies of the registered send rights.
    fn registered_ports(&self) -> [MsgPort; 3];
    /// `task_set_name`: its name for the kernel's reports (cut to fit).
    fn set_name(&self, name: &[u8]);
    /// `gsync_wait` up to the block (`kern::gsync::wait_prepare`): `Ok` when the calling
    /// thread's wait on the word is asserted and it must block once the reply is made.
    fn gsync_wait(
        &self,
        addr: u64,
        val1: u32,
        val2: u32,
        msec: u32,
        flags: i32,
    ) -> Result<(), KernReturn>;
    /// `gsync_wake` (`kern::gsync::wake`).
    fn gsync_wake(&self, addr: u64, val: u32, flags: i32) -> Result<(), KernReturn>;
    /// `gsync_requeue` (`kern::gsync::requeue`).
    fn gsync_requeue(
        &self,
        src: u64,
        dst: u64,
        wake_one: bool,
        flags: i32,
    ) -> Result<(), KernReturn>;
}

/// What `vm_region` reports of a region.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RegionInfo {
    pub start: u64,
    pub end: u64,
    pub protection: i32,
    pub max_protection: i32,
    pub inheritance: i32,
    /// Shared with another task through `VM_INHERIT_SHARE` (GNU Mach's `is_shared`).
    pub shared: bool,
    /// The region's offset in the memory object it maps (0 for private memory).
    pub offset: u64,
}

/// A copy of a stored send right (`ipc_port_copy_send`): null stays null, a dead port
/// gives a dead name.
pub fn copy_send(port: &MsgPort) -> MsgPort {
    match port {
        MsgPort::Right(r) => r.copy_send(),
        MsgPort::Dead => MsgPort::Dead,
        MsgPort::Null => MsgPort::Null,
    }
}

/// `task_get_special_port`'s slots (`mach/task_special_ports.h`).
pub mod special {
    pub const TASK_KERNEL_PORT: i32 = 1;
    pub const TASK_EXCEPTION_PORT: i32 = 3;
    pub const TASK_BOOTSTRAP_PORT: i32 = 4;
}

#[cfg(target_os = "none")]
/// The kernel's tasks: their IPC space, and their own kernel port as the kernel special
/// port (exception and bootstrap ports do not exist yet: null).
impl TaskIpc for crate::kern::task::Task {
    type Thread = crate::kern::thread::Thread;
    fn processor_set(&self) -> ProcessorSetId {
        crate::kern::sched::pset::task_get_assignment(self)
    }
    fn assign(self: &Arc<Self>, set: ProcessorSetId, threads: bool) -> Result<(), KernReturn> {
        crate::kern::sched::pset::task_assign(self, set, threads)
    }
    fn priority(&self) -> u32 {
        u32::from(self.priority.load(Ordering::Relaxed))
    }
    fn set_priority(&self, priority: u32) {
        self.priority.store(priority as u8, Ordering::Relaxed);
    }
    fn max_priority(&self) -> u32 {
        u32::from(self.max_priority.load(Ordering::Relaxed))
    }
    fn set_max_priority(&self, max_priority: u32) {
        self.max_priority
            .store(max_priority as u8, Ordering::Relaxed);
    }
    fn wire(
        &self,
        address: u64,
        size: u64,
        access: u32,
        privileged: bool,
    ) -> Result<(), KernReturn> {
        match &self.map {
            Some(map) => map.lock().wire(address, size, access, privileged),
            None => Err(KernReturn::InvalidTask),
        }
    }
    fn wire_all(&self, flags: u32) -> Result<(), KernReturn> {
        match &self.map {
            Some(map) => map.lock().wire_all(flags),
            None => Err(KernReturn::InvalidTask),
        }
    }
    fn size_limits(&self) -> Result<(u64, u64), KernReturn> {
        match &self.map {
            Some(map) => Ok(map.lock().size_limits()),
            None => Err(KernReturn::InvalidTask),
        }
    }
    fn set_size_limits(&self, current: u64, max: u64, privileged: bool) -> Result<(), KernReturn> {
        match &self.map {
            Some(map) => map.lock().set_size_limits(current, max, privileged),
            None => Err(KernReturn::InvalidTask),
        }
    }
    fn region_proxy(
        &self,
        address: u64,
        max_protection: u32,
        len: u64,
    ) -> Result<crate::mm::object::Proxy, KernReturn> {
        let charge = self.kmem.charge(1)?;
        let map = self.map.as_ref().ok_or(KernReturn::InvalidArgument)?;
        let mut map = map.lock();
        let (start, region) = map.region_from(address).ok_or(KernReturn::NoSpace)?;
        if len > region.end - start {
            return Err(KernReturn::InvalidArgument);
        }
        let object = map.share_region(start)?;
        // GNU Mach's arithmetic: an address below the region (the next one was taken)
        // wraps, and `vm_map` then finds the proxy's range outside the object.
        let at = address.wrapping_sub(start).wrapping_add(object.offset);
        Ok(crate::mm::object::Proxy {
            object: object.object,
            start: at,
            len,
            max_protection: max_protection & region.max_prot,
            charge,
        })
    }
    fn for_each_thread(&self, f: &mut dyn FnMut(&Arc<Self::Thread>)) {
        // In batches, so that no lock is held while `f` runs and nothing allocates.
        let mut after = crate::ids::ThreadId(0);
        loop {
            let batch: arrayvec::ArrayVec<Arc<Self::Thread>, 32> = self
                .threads
                .lock()
                .range(after..)
                .filter_map(|(_, t)| t.upgrade())
                .take(32)
                .collect();
            let Some(last) = batch.last() else { break };
            after = crate::ids::ThreadId(last.id.0 + 1);
            for t in &batch {
                f(t);
            }
        }
    }

    fn task_create(self: &Arc<Self>, inherit_memory: bool) -> Result<Arc<Self>, KernReturn> {
        if self.is_kernel() {
            return Err(KernReturn::InvalidArgument);
        }
        let child = crate::kern::task::Task::new_child(self)?;
        if inherit_memory {
            // A child that cannot get all of it is not made (it is freed with its copy).
            // Its size limits are the defaults (GNU Mach's `vm_map_fork` copies none).
            child.inherit_memory_from(self)?;
        } else {
            child.copy_limits_from(self);
        }
        // The registered ports are inherited (GNU Mach `ipc_task_init`).
        *child.registered.lock() = self.registered_ports();
        let set = crate::kern::sched::pset::task_get_assignment(self);
        let _ = crate::kern::sched::pset::task_assign(&child, set, false);
        Ok(child)
    }

    fn self_port(&self) -> MsgPort {
        self.special_port(special::TASK_KERNEL_PORT)
    }

    fn thread_create(self: &Arc<Self>) -> Result<Arc<Self::Thread>, KernReturn> {
        use crate::kern::thread::Thread;
        // The state is the caller's to set: a thread that is resumed without it faults at
        // address 0, as in GNU Mach.
        let thread = Thread::new_user(self, 0, 0, 0)?;
        thread
            .user_stop_count
            .store(1, core::sync::atomic::Ordering::SeqCst);
        thread.hold();
        Ok(thread)
    }

    fn vm_allocate(&self, address: u64, size: u64, anywhere: bool) -> Result<u64, KernReturn> {
        let map = self.map.as_ref().ok_or(KernReturn::InvalidArgument)?;
        map.lock().allocate(address, size, anywhere)
    }

    fn vm_deallocate(&self, address: u64, size: u64) -> Result<(), KernReturn> {
        let map = self.map.as_ref().ok_or(KernReturn::InvalidArgument)?;
        map.lock().deallocate(address, size)
    }

    fn vm_map(
        &self,
        address: u64,
        size: u64,
        mask: u64,
        anywhere: bool,
        backing: crate::mm::regions::Backing,
        prot: u32,
        max_prot: u32,
        inheritance: u32,
    ) -> Result<u64, KernReturn> {
        let map = self.map.as_ref().ok_or(KernReturn::InvalidArgument)?;
        map.lock().map(
            address,
            size,
            mask,
            anywhere,
            backing,
            prot,
            max_prot,
            inheritance,
        )
    }

    fn vm_protect(
        &self,
        address: u64,
        size: u64,
        set_maximum: bool,
        protection: i32,
    ) -> Result<(), KernReturn> {
        let map = self.map.as_ref().ok_or(KernReturn::InvalidArgument)?;
        map.lock()
            .protect(address, size, set_maximum, protection as u32)
    }

    fn vm_read(
        &self,
        address: u64,
        size: u64,
        out: &mut dyn FnMut(&[u8]) -> bool,
    ) -> Result<(), KernReturn> {
        use crate::mm::vm::Access;
        let map = self.map.as_ref().ok_or(KernReturn::InvalidArgument)?;
        let mut map = map.lock();
        map.check_range(address, size, Access::Read)?;
        let mut buf = [0u8; 512];
        let mut done = 0;
        while done < size {
            let n = (size - done).min(buf.len() as u64) as usize;
            map.copyin(address + done, &mut buf[..n])?;
            if !out(&buf[..n]) {
                return Err(KernReturn::ResourceShortage);
            }
            done += n as u64;
        }
        Ok(())
    }

    fn vm_write(&self, address: u64, data: &dyn crate::ipc::OolMemory) -> Result<(), KernReturn> {
        use crate::mm::vm::Access;
        let page = mach_abi::traps::PAGE_SIZE;
        let bytes =
            crate::kern::ipc_traps::OolFrames::of(data).ok_or(KernReturn::InvalidArgument)?;
        let size = data.size();
        if !(address.is_multiple_of(page) && size.is_multiple_of(page)) {
            return Err(KernReturn::InvalidArgument);
        }
        let map = self.map.as_ref().ok_or(KernReturn::InvalidArgument)?;
        let mut map = map.lock();
        map.check_range(address, size, Access::Write)?;
        let mut at = address;
        for piece in bytes.slices() {
            map.copyout(at, piece)?;
            at += piece.len() as u64;
        }
        Ok(())
    }

    fn vm_copy(&self, source: u64, size: u64, dest: u64) -> Result<(), KernReturn> {
        let map = self.map.as_ref().ok_or(KernReturn::InvalidArgument)?;
        map.lock().copy_within(source, size, dest)
    }

    fn vm_region(&self, address: u64) -> Result<RegionInfo, KernReturn> {
        let map = self.map.as_ref().ok_or(KernReturn::InvalidArgument)?;
        let (start, r) = map.lock().region_from(address).ok_or(KernReturn::NoSpace)?;
        Ok(RegionInfo {
            start,
            end: r.end,
            protection: r.prot as i32,
            max_protection: r.max_prot as i32,
            inheritance: r.inheritance as i32,
            shared: r.shared,
            offset: r.object.as_ref().map_or(0, |o| o.offset),
        })
    }

    fn vm_inherit(&self, address: u64, size: u64, inheritance: i32) -> Result<(), KernReturn> {
        let map = self.map.as_ref().ok_or(KernReturn::InvalidArgument)?;
        let value = u32::try_from(inheritance).map_err(|_| KernReturn::InvalidArgument)?;
        map.lock().inherit(address, size, value)
    }

    fn vm_statistics(&self) -> VmStatistics {
        crate::kern::thread::purge_dead_stacks();
        let (free, total) = crate::mm::frame::counts();
        VmStatistics {
            pagesize: mach_abi::traps::PAGE_SIZE as i32,
            free_count: free.min(i32::MAX as u64) as i32,
            active_count: total.saturating_sub(free).min(i32::MAX as u64) as i32,
            ..VmStatistics::default()
        }
    }

    fn terminate(&self) -> Result<(), KernReturn> {
        if self.is_kernel() {
            return Err(KernReturn::Failure);
        }
        crate::kern::task::Task::terminate(self);
        Ok(())
    }

    fn suspend(&self) -> Result<(), KernReturn> {
        if self.is_kernel() {
            return Err(KernReturn::Failure);
        }
        crate::kern::task::Task::suspend(self);
        Ok(())
    }

    fn resume(&self) -> Result<(), KernReturn> {
        crate::kern::task::Task::resume(self)
    }

    fn basic_info(&self) -> TaskBasicInfo {
        use core::sync::atomic::Ordering;
        use mach_abi::info::{TimeValue, TimeValue64};
        let ns = crate::kern::sched::ticks_to_ns;
        let (virtual_size, resident) = self.map.as_ref().map_or((0, 0), |m| {
            let m = m.lock();
            (m.virtual_size(), m.resident_pages())
        });
        let user = ns(self.dead_user_time.load(Ordering::Relaxed));
        let system = ns(self.dead_system_time.load(Ordering::Relaxed));
        let created = ns(self.created);
        TaskBasicInfo {
            suspend_count: self.user_stop_count.load(Ordering::SeqCst) as i32,
            base_priority: i32::from(self.priority.load(Ordering::Relaxed)),
            virtual_size,
            resident_size: resident * mach_abi::traps::PAGE_SIZE,
            user_time: TimeValue::from_ns(user),
            system_time: TimeValue::from_ns(system),
            creation_time: TimeValue::from_ns(created),
            user_time64: TimeValue64::from_ns(user),
            system_time64: TimeValue64::from_ns(system),
            creation_time64: TimeValue64::from_ns(created),
        }
    }

    fn events_info(&self) -> TaskEventsInfo {
        use core::sync::atomic::Ordering;
        let (faults, zero_fills) = self.map.as_ref().map_or((0, 0), |m| {
            let m = m.lock();
            (m.faults, m.zero_fills)
        });
        // No paging and no copy-on-write here: reactivations, pageins, cow_faults are 0.
        TaskEventsInfo {
            faults,
            zero_fills,
            messages_sent: self.messages_sent.load(Ordering::Relaxed),
            messages_received: self.messages_received.load(Ordering::Relaxed),
            ..TaskEventsInfo::default()
        }
    }

    fn thread_times(&self) -> TaskThreadTimesInfo {
        use mach_abi::info::{TimeValue, TimeValue64};
        let (mut user, mut system) = (0u64, 0u64);
        self.for_each_thread(|t| {
            let b = ThreadIpc::basic_info(&**t);
            user += b.user_time64.seconds as u64 * 1_000_000_000 + b.user_time64.nanoseconds as u64;
            system +=
                b.system_time64.seconds as u64 * 1_000_000_000 + b.system_time64.nanoseconds as u64;
        });
        TaskThreadTimesInfo {
            user_time: TimeValue::from_ns(user),
            system_time: TimeValue::from_ns(system),
            user_time64: TimeValue64::from_ns(user),
            system_time64: TimeValue64::from_ns(system),
        }
    }

    fn ipc_space(&self) -> Option<Arc<Space>> {
        self.ipc.clone()
    }
    fn special_port(&self, which: i32) -> MsgPort {
        match which {
            special::TASK_KERNEL_PORT => self
                .self_port
                .get()
                .and_then(|port| port.make_send())
                .map_or(MsgPort::Null, MsgPort::Right),
            special::TASK_EXCEPTION_PORT => copy_send(&self.special_ports.lock()[0]),
            special::TASK_BOOTSTRAP_PORT => copy_send(&self.special_ports.lock()[1]),
            _ => MsgPort::Null,
        }
    }

    fn set_special_port(&self, which: i32, port: MsgPort) -> Result<(), KernReturn> {
        let slot = match which {
            special::TASK_EXCEPTION_PORT => 0,
            special::TASK_BOOTSTRAP_PORT => 1,
            _ => return Err(KernReturn::InvalidArgument),
        };
        if self.ipc.is_none() || self.terminating.load(core::sync::atomic::Ordering::SeqCst) {
            return Err(KernReturn::Failure);
        }
        let old = core::mem::replace(&mut self.special_ports.lock()[slot], port);
        drop(old);
        Ok(())
    }

    fn register_ports(&self, ports: [MsgPort; 3]) -> Result<(), KernReturn> {
        if self.ipc.is_none() || self.terminating.load(core::sync::atomic::Ordering::SeqCst) {
            return Err(KernReturn::Failure);
        }
        let old = core::mem::replace(&mut *self.registered.lock(), ports);
        drop(old);
        Ok(())
    }

    fn registered_ports(&self) -> [MsgPort; 3] {
        let kept = self.registered.lock();
        [
            copy_send(&kept[0]),
            copy_send(&kept[1]),
            copy_send(&kept[2]),
        ]
    }

    fn set_name(&self, name: &[u8]) {
        self.name.set(name);
    }

    fn gsync_wait(
        &self,
        addr: u64,
        val1: u32,
        val2: u32,
        msec: u32,
        flags: i32,
    ) -> Result<(), KernReturn> {
        use crate::kern::gsync;
        gsync::wait_prepare(self, addr, val1, val2, msec, gsync::Flags(flags))
    }

    fn gsync_wake(&self, addr: u64, val: u32, flags: i32) -> Result<(), KernReturn> {
        use crate::kern::gsync;
        gsync::wake(self, addr, val, gsync::Flags(flags))
    }

    fn gsync_requeue(
        &self,
        src: u64,
        dst: u64,
        wake_one: bool,
        flags: i32,
    ) -> Result<(), KernReturn> {
        use crate::kern::gsync;
        gsync::requeue(self, src, dst, wake_one, gsync::Flags(flags))
    }
}

#[cfg(target_os = "none")]
/// The kernel's threads: their scheduling (`kern::sched`, `pset`), their holds and
/// suspensions (`Thread::hold`), their accounting, and their saved user state
/// (`Thread::with_user_state`).
impl ThreadIpc for crate::kern::thread::Thread {
    fn kernel_port(&self) -> Option<Arc<crate::ipc::Port>> {
        self.self_port.get().cloned()
    }
    fn processor_set(&self) -> ProcessorSetId {
        crate::kern::sched::pset::thread_get_assignment(self)
    }
    fn assign(self: &Arc<Self>, set: ProcessorSetId) -> Result<(), KernReturn> {
        crate::kern::sched::pset::thread_assign(self, set)
    }
    fn base_priority(&self) -> u32 {
        u32::from(self.base_priority.load(Ordering::Relaxed))
    }
    fn max_priority(&self) -> u32 {
        u32::from(self.max_priority.load(Ordering::Relaxed))
    }
    fn set_priority(self: &Arc<Self>, priority: u32) {
        crate::kern::sched::set_priority(self, priority as u8);
    }
    fn set_max_priority(&self, max_priority: u32) {
        self.max_priority
            .store(max_priority as u8, Ordering::Relaxed);
    }
    fn depress_abort(self: &Arc<Self>) {
        crate::kern::sched::depress_abort(self);
    }
    fn migration_info(&self) -> ThreadMigration {
        crate::kern::sched::migrate::thread_migration(self)
    }
    fn trace_id(&self) -> u32 {
        crate::kern::sched::trace::tid(self)
    }
    fn migrate(self: &Arc<Self>, slot: u32) -> Result<(), KernReturn> {
        crate::kern::sched::migrate::thread_migrate(self, crate::ids::CpuId::new(slot as usize))
    }
    fn bind(self: &Arc<Self>, slot: Option<u32>) -> Result<(), KernReturn> {
        let target = slot.map(|s| crate::ids::CpuId::new(s as usize));
        crate::kern::sched::migrate::thread_bind(self, target)
    }
    fn set_name(&self, name: &[u8]) {
        self.name.set(name);
    }
    fn name(&self) -> [u8; mach_abi::gnumach::NAME_SIZE] {
        self.name.get()
    }
    fn is_current(&self) -> bool {
        core::ptr::eq(
            Arc::as_ptr(&crate::kern::sched::current_thread()),
            self as *const Self,
        )
    }

    fn self_port(&self) -> MsgPort {
        self.self_port
            .get()
            .and_then(|port| port.make_send())
            .map_or(MsgPort::Null, MsgPort::Right)
    }

    fn exception_port(&self) -> MsgPort {
        copy_send(&self.exception_port.lock())
    }

    fn set_exception_port(&self, port: MsgPort) -> Result<(), KernReturn> {
        if self.should_terminate() || self.is_idle {
            return Err(KernReturn::Failure);
        }
        let old = core::mem::replace(&mut *self.exception_port.lock(), port);
        drop(old);
        Ok(())
    }

    fn basic_info(&self) -> ThreadBasicInfo {
        thread_facts::basic(self)
    }

    fn sched_info(&self) -> ThreadSchedInfo {
        thread_facts::sched(self)
    }

    fn user_stop_count(&self) -> u32 {
        self.user_stop_count
            .load(core::sync::atomic::Ordering::SeqCst)
    }

    fn suspend(&self) {
        use core::sync::atomic::Ordering;
        if self.user_stop_count.fetch_add(1, Ordering::SeqCst) == 0 {
            self.hold();
        }
    }

    fn resume(self: &Arc<Self>) -> Result<(), KernReturn> {
        use core::sync::atomic::Ordering;
        let was = self
            .user_stop_count
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .map_err(|_| KernReturn::Failure)?;
        if was == 1 {
            self.release();
        }
        Ok(())
    }

    fn terminate(self: &Arc<Self>) -> Result<(), KernReturn> {
        if self.task.is_kernel() {
            return Err(KernReturn::Failure);
        }
        // A thread that never ran ends at its first return to user mode.
        self.request_termination();
        Ok(())
    }

    fn abort(self: &Arc<Self>) {
        crate::kern::sched::clear_wait(self, None, crate::kern::sched::WaitResult::Interrupted);
        crate::kern::sched::depress_abort(self);
    }

    fn user_state(&self) -> Option<(Aarch64ThreadState, Aarch64FloatState)> {
        self.with_user_state(|frame, fp, tpidr| {
            let general = Aarch64ThreadState {
                x: frame.x,
                sp: frame.sp_el0,
                pc: frame.elr,
                tpidr_el0: *tpidr,
                cpsr: frame.spsr,
            };
            let float = Aarch64FloatState {
                v: fp.v,
                fpsr: fp.fpsr,
                fpcr: fp.fpcr,
                ..Aarch64FloatState::default()
            };
            (general, float)
        })
    }

    fn set_user_state(
        &self,
        general: Option<&Aarch64ThreadState>,
        float: Option<&Aarch64FloatState>,
    ) -> Option<()> {
        self.with_user_state(|frame, fp, tpidr| {
            if let Some(g) = general {
                frame.set_user_registers(&g.x, g.sp, g.pc, g.cpsr);
                *tpidr = g.tpidr_el0;
            }
            if let Some(f) = float {
                fp.v = f.v;
                fp.fpsr = f.fpsr;
                fp.fpcr = f.fpcr;
            }
        })
    }
}

/// What `thread_info` reports of a kernel thread, from its accounting.
#[cfg(target_os = "none")]
mod thread_facts {
    use crate::kern::sched;
    use crate::kern::thread::{NO_PROCESSOR, Thread};
    use core::sync::atomic::Ordering;
    use mach_abi::info::*;

    /// User and system time in ns, the running thread's current stretch included.
    fn times(t: &Thread) -> (u64, u64) {
        let user = t.user_time.load(Ordering::Relaxed);
        let mut system = t.system_time.load(Ordering::Relaxed);
        // The caller asks about itself from the kernel: this stretch is system time.
        if t.is_current() {
            let now = crate::arch::timer::counter();
            system += now.saturating_sub(t.time_stamp.load(Ordering::Relaxed));
        }
        (sched::ticks_to_ns(user), sched::ticks_to_ns(system))
    }

    use super::ThreadIpc;

    fn run_state(t: &Thread) -> i32 {
        let st = t.wait.lock();
        if st.running && !t.parked.load(Ordering::SeqCst) {
            TH_STATE_RUNNING
        } else if st.waiting && !st.interruptible {
            TH_STATE_UNINTERRUPTIBLE
        } else if t.hold_count.load(Ordering::SeqCst) != 0 || !t.started.load(Ordering::SeqCst) {
            TH_STATE_STOPPED
        } else if st.waiting {
            TH_STATE_WAITING
        } else {
            TH_STATE_HALTED
        }
    }

    pub fn basic(t: &Thread) -> ThreadBasicInfo {
        let (user, system) = times(t);
        let created = sched::ticks_to_ns(t.created);
        // Decayed as GNU Mach's is: the share of a processor it had lately.
        let usage = sched::migrate::cpu_usage(t).min(TH_USAGE_SCALE as u32) as i32;
        ThreadBasicInfo {
            user_time: TimeValue::from_ns(user),
            system_time: TimeValue::from_ns(system),
            cpu_usage: usage,
            base_priority: i32::from(t.base_priority.load(Ordering::Relaxed)),
            cur_priority: i32::from(t.sched_priority.load(Ordering::Relaxed)),
            run_state: run_state(t),
            flags: if t.is_idle { TH_FLAGS_IDLE } else { 0 },
            suspend_count: t.user_stop_count.load(Ordering::SeqCst) as i32,
            sleep_time: 0,
            creation_time: TimeValue::from_ns(created),
            user_time64: TimeValue64::from_ns(user),
            system_time64: TimeValue64::from_ns(system),
            creation_time64: TimeValue64::from_ns(created),
        }
    }

    pub fn sched(t: &Thread) -> ThreadSchedInfo {
        let depressed = t.depressed.load(Ordering::Relaxed);
        let last = t.last_processor.load(Ordering::Relaxed);
        ThreadSchedInfo {
            policy: POLICY_TIMESHARE,
            data: 0,
            base_priority: i32::from(t.base_priority.load(Ordering::Relaxed)),
            max_priority: i32::from(t.max_priority.load(Ordering::Relaxed)),
            cur_priority: i32::from(t.sched_priority.load(Ordering::Relaxed)),
            depressed: i32::from(depressed),
            depress_priority: if depressed {
                i32::from(t.base_priority.load(Ordering::Relaxed))
            } else {
                -1
            },
            last_processor: if last == NO_PROCESSOR {
                -1
            } else {
                last as i32
            },
        }
    }
}

/// One call of the kernel's servers.
pub struct Kernel<'a, T: TaskIpc> {
    pub slots: &'a mut Slots,
    /// Pays for out-of-line data in the reply (the task the reply is for).
    pub ledger: &'a Arc<dyn Ledger>,
    /// What the caller does once the call is over (set by a routine that must block).
    pub after: After,
    pub _task: core::marker::PhantomData<fn() -> T>,
}

/// What the caller of a kernel server does once the reply is made and the server's
/// buffers are released: a server call never blocks (`kobject`), so a routine that waits
/// asserts the wait and leaves the blocking to its caller (`server::kernel_server`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum After {
    Nothing,
    /// Block in the wait the routine asserted (`gsync_wait`), then put how it ended in
    /// the reply's return code.
    Block,
}

/// Ids whose null host is `KERN_INVALID_HOST` in GNU Mach (`host_set_time`,
/// `host_adjust_time`, `host_get_time`, `host_reboot`, `vm_wire`, `thread_wire`, and the
/// 64-bit time calls and `host_get_uptime64`).
fn invalid_host_ids(id: i32) -> bool {
    matches!(id, 2632..=2637 | 2643..=2645 | 2647 | 3223) || (3000..3100).contains(&id)
}

impl<T: TaskIpc> Kernel<'_, T> {
    /// `convert_port_to_thread`: the thread a thread port stands for.
    pub fn thread(&self, port: PortSlot) -> Result<Arc<T::Thread>, KernReturn> {
        self.object(port, KObjectKind::Thread)
            .and_then(|k| k.get::<T::Thread>(KObjectKind::Thread))
            .ok_or(KernReturn::InvalidArgument)
    }

    /// The destination's kernel object if it is of `kind`.
    fn object(&self, port: PortSlot, kind: KObjectKind) -> Option<KObject> {
        self.slots.kobject(port).filter(|k| k.kind() == kind)
    }

    /// `convert_port_to_processor`.
    pub fn processor(&self, port: PortSlot) -> Result<Arc<Processor>, KernReturn> {
        self.object(port, KObjectKind::Processor)
            .and_then(|k| k.get::<Processor>(KObjectKind::Processor))
            .ok_or(KernReturn::InvalidArgument)
    }

    /// `convert_port_to_pset`: the control port only.
    pub fn pset(&self, port: PortSlot) -> Result<Arc<ProcessorSet>, KernReturn> {
        self.object(port, KObjectKind::ProcessorSet)
            .and_then(|k| k.get::<ProcessorSet>(KObjectKind::ProcessorSet))
            .ok_or(KernReturn::InvalidArgument)
    }

    /// `convert_port_to_pset_name`: the name port, or the control port.
    pub fn pset_name(&self, port: PortSlot) -> Result<Arc<ProcessorSet>, KernReturn> {
        self.slots
            .kobject(port)
            .and_then(|k| {
                k.get::<ProcessorSet>(KObjectKind::ProcessorSetName)
                    .or_else(|| k.get::<ProcessorSet>(KObjectKind::ProcessorSet))
            })
            .ok_or(KernReturn::InvalidArgument)
    }

    pub fn task(&self, port: PortSlot) -> Result<Arc<T>, KernReturn> {
        self.object(port, KObjectKind::Task)
            .and_then(|k| k.get::<T>(KObjectKind::Task))
            .ok_or(KernReturn::InvalidArgument)
    }

    /// `convert_port_to_space`: the space of the task the port stands for.
    pub fn space(&self, port: PortSlot) -> Result<Arc<Space>, KernReturn> {
        self.task(port)
            .ok()
            .and_then(|t| t.ipc_space())
            .ok_or(KernReturn::InvalidTask)
    }

    /// `convert_port_to_host`: the host or host-privileged port.
    pub fn host(&self, port: PortSlot, msg_id: i32) -> Result<Arc<Host>, KernReturn> {
        self.slots
            .kobject(port)
            .and_then(|k| {
                k.get::<Host>(KObjectKind::Host)
                    .or_else(|| k.get::<Host>(KObjectKind::HostPriv))
            })
            .ok_or_else(|| null_host(msg_id))
    }

    /// `convert_port_to_host_priv`: the host-privileged port only.
    pub fn host_priv(&self, port: PortSlot, msg_id: i32) -> Result<Arc<Host>, KernReturn> {
        self.slots
            .kobject(port)
            .and_then(|k| k.get::<Host>(KObjectKind::HostPriv))
            .ok_or_else(|| null_host(msg_id))
    }

    /// The destination's kernel object of `kind`, for the hooks of routines not served
    /// yet (`mach`'s threads, sets and memory objects).
    pub fn other(&self, port: PortSlot, kind: KObjectKind) -> Result<KObject, KernReturn> {
        self.object(port, kind).ok_or(KernReturn::InvalidArgument)
    }

    /// A send right to `port`'s object, for the reply (an `outtran`).
    pub fn send_right(&mut self, port: Option<&Arc<crate::ipc::Port>>) -> PortSlot {
        let Some(right) = port.and_then(|p| p.make_send()) else {
            return PortSlot::NULL;
        };
        self.put(MsgPort::Right(right))
    }

    /// Put a right in the reply's table. The table has room for every right a served
    /// routine returns; were it full, the right is released and the reply carries null.
    pub fn put(&mut self, port: MsgPort) -> PortSlot {
        match self.slots.put(port) {
            Ok(slot) => slot,
            Err(port) => {
                debug_assert!(false, "kernel server reply table full");
                drop(port);
                PortSlot::NULL
            }
        }
    }
}

fn null_host(msg_id: i32) -> KernReturn {
    if invalid_host_ids(msg_id) {
        KernReturn::InvalidHost
    } else {
        KernReturn::InvalidArgument
    }
}
