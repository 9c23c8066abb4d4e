//! `mach.defs` (2000) and `mach_debug.defs` (3000): their translation hooks and the
//! routines served, with GNU Mach's rules and codes (`kern/thread.c`, `kern/ipc_tt.c`,
//! `vm/vm_user.c`): thread creation, control, state and info, the thread's and task's
//! kernel special ports, task creation, control and info, and the VM calls (`vm_allocate`,
//! `vm_deallocate`, `vm_protect`, `vm_inherit`, `vm_read`, `vm_write`, `vm_copy`,
//! `vm_region`, `vm_statistics`, `vm_machine_attribute`, and `vm_map` of zero-fill memory,
//! of a device's memory object (the "time" page or the RAM disk, `kern::device`), or of a
//! proxy of shared memory (`server::mach4`).
//! Every other routine answers `MIG_BAD_ID` (the `mach_unimplemented!` lists).
//!
//! Waiting is not done here (a server call never blocks, `kobject`): `thread_suspend`,
//! `thread_abort`, `thread_get_state` and `thread_set_state` need the target stopped, and
//! `kernel_server` (`server/mod.rs`) holds the thread and waits for it around the call,
//! in the caller's context, as GNU Mach's `thread_hold` + `thread_dowait` do.

extern crate alloc;

use super::generated::mach::{self, MachServer};
use super::generated::mach_debug::{self, MachDebugServer};
use super::host::Host;
use super::objects::ThreadIpc;
use super::objects::{Kernel, TaskIpc, special};
use crate::ipc::{KObject, KObjectKind, MsgPort, Space};
use alloc::sync::Arc;
use mach_abi::KernReturn;
use mach_abi::info::{
    TASK_BASIC_INFO, TASK_BASIC_INFO_COUNT, TASK_BASIC_INFO_OLD_COUNT, TASK_EVENTS_INFO,
    TASK_EVENTS_INFO_COUNT, TASK_THREAD_TIMES_INFO, TASK_THREAD_TIMES_INFO_COUNT,
    TASK_THREAD_TIMES_INFO_OLD_COUNT, THREAD_BASIC_INFO, THREAD_BASIC_INFO_COUNT,
    THREAD_BASIC_INFO_OLD_COUNT, THREAD_SCHED_INFO, THREAD_SCHED_INFO_COUNT,
    THREAD_SCHED_INFO_OLD_COUNT,
};
use mach_abi::mig::{self, ArrayOut, ArrayRef, PortSlot};
use mach_abi::sched::{THREAD_MIGRATION_INFO, THREAD_MIGRATION_INFO_COUNT, ThreadMigrationInfo};
use mach_abi::thread_state::{
    AARCH64_FLOAT_STATE, AARCH64_FLOAT_STATE_COUNT, AARCH64_THREAD_STATE,
    AARCH64_THREAD_STATE_COUNT, Aarch64FloatState, Aarch64ThreadState, THREAD_STATE_FLAVOR_LIST,
};

/// `thread_get_special_port`'s slots (`mach/thread_special_ports.h`).
pub mod thread_special {
    pub const THREAD_KERNEL_PORT: i32 = 1;
    pub const THREAD_EXCEPTION_PORT: i32 = 3;
}

/// Copy `words` into `out`, all or nothing.
fn put_words<E: mach_abi::mig::Element + Copy>(
    out: &mut ArrayOut<'_, E>,
    words: &[E],
) -> Result<(), KernReturn> {
    out.clear();
    out.extend_from_slice(words)
        .map_err(|_| KernReturn::InvalidArgument)
}

/// The scheduler's migration state of a thread as `THREAD_MIGRATION_INFO` carries it.
pub fn migration_info(m: &crate::kern::sched::stats::ThreadMigration) -> ThreadMigrationInfo {
    ThreadMigrationInfo {
        migration_count: m.migration_count,
        cache_warmth: m.cache_warmth,
        last_processor: m.last_processor,
        bound_processor: m.bound_processor,
        processor_set: m.processor_set,
        since_last_run_ns: m.since_last_run_ns,
        last_run_ns: m.last_run_ns,
    }
}

/// The part of a thread-state flavor that user code may set: `cpsr` must name EL0 in
/// AArch64 (mode bits and nRW zero, as GNU Mach's `validate_cpsr`); the kernel keeps only
/// its condition flags.
fn valid_cpsr(cpsr: u64) -> bool {
    cpsr & 0x1f == 0
}

impl<T: TaskIpc> MachServer for Kernel<'_, T> {
    type Task = Arc<T>;
    type Thread = Arc<T::Thread>;
    type VmMap = Arc<T>;
    type VmObject = KObject;
    type Host = Arc<Host>;

    fn convert_port_to_task(&mut self, port: PortSlot, _: i32) -> Result<Arc<T>, KernReturn> {
        self.task(port)
    }

    fn task_deallocate(&mut self, task: Arc<T>) {
        drop(task);
    }

    fn convert_task_to_port(&mut self, task: Arc<T>) -> PortSlot {
        let port = task.self_port();
        self.put(port)
    }

    fn task_create(
        &mut self,
        parent: &Arc<T>,
        inherit_memory: bool,
    ) -> Result<mach::TaskCreateOut<Arc<T>>, KernReturn> {
        Ok(mach::TaskCreateOut {
            child_task: parent.task_create(inherit_memory)?,
        })
    }

    fn convert_port_to_thread(
        &mut self,
        port: PortSlot,
        _: i32,
    ) -> Result<Arc<T::Thread>, KernReturn> {
        self.thread(port)
    }

    fn thread_deallocate(&mut self, thread: Arc<T::Thread>) {
        drop(thread);
    }

    fn convert_port_to_map(&mut self, port: PortSlot, _: i32) -> Result<Arc<T>, KernReturn> {
        self.task(port)
    }

    fn vm_map_deallocate(&mut self, map: Arc<T>) {
        drop(map);
    }

    fn vm_object_lookup(&mut self, _: PortSlot, _: i32) -> Result<KObject, KernReturn> {
        // No memory objects yet.
        Err(KernReturn::InvalidArgument)
    }

    fn convert_port_to_host_priv(
        &mut self,
        port: PortSlot,
        msg_id: i32,
    ) -> Result<Arc<Host>, KernReturn> {
        self.host_priv(port, msg_id)
    }

    fn convert_thread_to_port(&mut self, thread: Arc<T::Thread>) -> PortSlot {
        let port = thread.self_port();
        self.put(port)
    }

    fn thread_create(
        &mut self,
        parent_task: &Arc<T>,
    ) -> Result<mach::ThreadCreateOut<Arc<T::Thread>>, KernReturn> {
        Ok(mach::ThreadCreateOut {
            child_thread: parent_task.thread_create()?,
        })
    }

    fn task_terminate(&mut self, task: &Arc<T>) -> Result<(), KernReturn> {
        task.terminate()
    }

    fn task_suspend(&mut self, task: &Arc<T>) -> Result<(), KernReturn> {
        task.suspend()
    }

    fn task_resume(&mut self, task: &Arc<T>) -> Result<(), KernReturn> {
        task.resume()
    }

    fn task_info(
        &mut self,
        task: &Arc<T>,
        flavor: i32,
        out: &mut ArrayOut<'_, i32>,
    ) -> Result<(), KernReturn> {
        // As GNU Mach: a caller with the count from before the 64-bit times were added
        // gets that many words (the old layout is a prefix of the new one); a larger count
        // gets the whole structure.
        let room = out.capacity();
        match flavor {
            TASK_BASIC_INFO if room >= TASK_BASIC_INFO_OLD_COUNT => {
                let w = task.basic_info().to_words();
                put_words(out, &w[..room.min(TASK_BASIC_INFO_COUNT)])
            }
            TASK_EVENTS_INFO if room >= TASK_EVENTS_INFO_COUNT => {
                put_words(out, &task.events_info().to_words())
            }
            TASK_THREAD_TIMES_INFO if room >= TASK_THREAD_TIMES_INFO_OLD_COUNT => {
                let w = task.thread_times().to_words();
                put_words(out, &w[..room.min(TASK_THREAD_TIMES_INFO_COUNT)])
            }
            _ => Err(KernReturn::InvalidArgument),
        }
    }

    fn thread_suspend(&mut self, thread: &Arc<T::Thread>) -> Result<(), KernReturn> {
        thread.suspend();
        Ok(())
    }

    fn thread_resume(&mut self, thread: &Arc<T::Thread>) -> Result<(), KernReturn> {
        thread.resume()
    }

    fn thread_terminate(&mut self, thread: &Arc<T::Thread>) -> Result<(), KernReturn> {
        thread.terminate()
    }

    fn thread_abort(&mut self, thread: &Arc<T::Thread>) -> Result<(), KernReturn> {
        if thread.is_current() {
            return Err(KernReturn::InvalidArgument);
        }
        thread.abort();
        Ok(())
    }

    fn thread_get_state(
        &mut self,
        thread: &Arc<T::Thread>,
        flavor: i32,
        old_state: &mut ArrayOut<'_, u32>,
    ) -> Result<(), KernReturn> {
        if thread.is_current() {
            return Err(KernReturn::InvalidArgument);
        }
        let need = match flavor as u32 {
            THREAD_STATE_FLAVOR_LIST => 2,
            AARCH64_THREAD_STATE => AARCH64_THREAD_STATE_COUNT as usize,
            AARCH64_FLOAT_STATE => AARCH64_FLOAT_STATE_COUNT as usize,
            _ => return Err(KernReturn::InvalidArgument),
        };
        if old_state.capacity() < need {
            return Err(KernReturn::InvalidArgument);
        }
        if flavor as u32 == THREAD_STATE_FLAVOR_LIST {
            return put_words(old_state, &[AARCH64_THREAD_STATE, AARCH64_FLOAT_STATE]);
        }
        // Held and waited for by `kernel_server`; still running only if something woke it
        // meanwhile.
        let (general, float) = thread.user_state().ok_or(KernReturn::Failure)?;
        if flavor as u32 == AARCH64_THREAD_STATE {
            put_words(old_state, &general.to_words())
        } else {
            put_words(old_state, &float.to_words())
        }
    }

    fn thread_set_state(
        &mut self,
        thread: &Arc<T::Thread>,
        flavor: i32,
        new_state: ArrayRef<'_, u32>,
    ) -> Result<(), KernReturn> {
        if thread.is_current() {
            return Err(KernReturn::InvalidArgument);
        }
        let mut words = [0u32; AARCH64_FLOAT_STATE_COUNT as usize];
        let n = new_state.copy_to(&mut words);
        let done = match flavor as u32 {
            AARCH64_THREAD_STATE => {
                let state = Aarch64ThreadState::from_words(&words[..n])
                    .filter(|s| valid_cpsr(s.cpsr))
                    .ok_or(KernReturn::InvalidArgument)?;
                thread.set_user_state(Some(&state), None)
            }
            AARCH64_FLOAT_STATE => {
                let state = Aarch64FloatState::from_words(&words[..n])
                    .ok_or(KernReturn::InvalidArgument)?;
                thread.set_user_state(None, Some(&state))
            }
            _ => return Err(KernReturn::InvalidArgument),
        };
        done.ok_or(KernReturn::Failure)
    }

    fn thread_info(
        &mut self,
        thread: &Arc<T::Thread>,
        flavor: i32,
        out: &mut ArrayOut<'_, i32>,
    ) -> Result<(), KernReturn> {
        let room = out.capacity();
        match flavor {
            THREAD_BASIC_INFO if room >= THREAD_BASIC_INFO_OLD_COUNT => {
                let words = thread.basic_info().to_words();
                let n = room.min(THREAD_BASIC_INFO_COUNT);
                let n = if n < THREAD_BASIC_INFO_COUNT {
                    THREAD_BASIC_INFO_OLD_COUNT
                } else {
                    n
                };
                put_words(out, &words[..n])
            }
            THREAD_SCHED_INFO if room >= THREAD_SCHED_INFO_OLD_COUNT => {
                let words = thread.sched_info().to_words();
                put_words(out, &words[..room.min(THREAD_SCHED_INFO_COUNT)])
            }
            // armach's own flavor: no older count, GNU Mach's codes for a short one.
            THREAD_MIGRATION_INFO if room >= THREAD_MIGRATION_INFO_COUNT => {
                put_words(out, &migration_info(&thread.migration_info()).to_words())
            }
            _ => Err(KernReturn::InvalidArgument),
        }
    }

    fn thread_get_special_port(
        &mut self,
        thread: &Arc<T::Thread>,
        which: i32,
    ) -> Result<mach::ThreadGetSpecialPortOut, KernReturn> {
        let port = match which {
            thread_special::THREAD_KERNEL_PORT => thread.self_port(),
            thread_special::THREAD_EXCEPTION_PORT => thread.exception_port(),
            _ => return Err(KernReturn::InvalidArgument),
        };
        Ok(mach::ThreadGetSpecialPortOut {
            special_port: self.put(port),
        })
    }

    /// Only the exception port can be replaced: the kernel port is the thread's own
    /// (`KERN_INVALID_ARGUMENT`, as `task_set_special_port` answers for the task's; GNU Mach
    /// would let a caller swap it).
    fn thread_set_special_port(
        &mut self,
        thread: &Arc<T::Thread>,
        which: i32,
        special_port: PortSlot,
    ) -> Result<(), KernReturn> {
        let port = self.slots.take(special_port);
        match which {
            thread_special::THREAD_EXCEPTION_PORT => thread.set_exception_port(port),
            _ => Err(KernReturn::InvalidArgument),
        }
    }

    fn task_set_special_port(
        &mut self,
        task: &Arc<T>,
        which: i32,
        special_port: PortSlot,
    ) -> Result<(), KernReturn> {
        let port = self.slots.take(special_port);
        task.set_special_port(which, port)
    }

    fn vm_allocate(
        &mut self,
        task: &Arc<T>,
        address: &mut u64,
        size: u64,
        anywhere: bool,
    ) -> Result<(), KernReturn> {
        *address = task.vm_allocate(*address, size, anywhere)?;
        Ok(())
    }

    fn vm_map(
        &mut self,
        task: &Arc<T>,
        address: &mut u64,
        size: u64,
        mask: u64,
        anywhere: bool,
        memory_object: PortSlot,
        offset: u64,
        copy: bool,
        cur_protection: i32,
        max_protection: i32,
        inheritance: i32,
    ) -> Result<(), KernReturn> {
        let object = match memory_object {
            PortSlot::NULL | PortSlot::KERNEL_DEAD => MemoryObject::Null,
            port => MemoryObject::Port(self.slots.kobject(port)),
        };
        *address = vm_map(
            &**task,
            VmMapArgs {
                address: *address,
                size,
                mask,
                anywhere,
                object,
                offset,
                copy,
                cur_protection,
                max_protection,
                inheritance,
            },
        )?;
        Ok(())
    }

    fn vm_deallocate(&mut self, task: &Arc<T>, address: u64, size: u64) -> Result<(), KernReturn> {
        task.vm_deallocate(address, size)
    }

    fn vm_protect(
        &mut self,
        task: &Arc<T>,
        address: u64,
        size: u64,
        set_maximum: bool,
        new_protection: i32,
    ) -> Result<(), KernReturn> {
        task.vm_protect(address, size, set_maximum, new_protection)
    }

    fn vm_read(
        &mut self,
        task: &Arc<T>,
        address: u64,
        size: u64,
    ) -> Result<mach::VmReadOut, KernReturn> {
        if size == 0 {
            return Ok(mach::VmReadOut {
                data: mach_abi::mig::Ool::default(),
            });
        }
        let bytes = usize::try_from(size).map_err(|_| KernReturn::InvalidArgument)?;
        let count = u32::try_from(size).map_err(|_| KernReturn::InvalidArgument)?;
        // The pages first (an address error before a memory shortage), then the copy.
        let mut region = None;
        task.vm_read(address, size, &mut |piece| {
            let r = match &mut region {
                Some(r) => r,
                None => match super::region::KernelRegion::with_capacity(self.ledger, bytes) {
                    Ok(r) => region.insert(r),
                    Err(_) => return false,
                },
            };
            r.push(piece)
        })?;
        let region = region.ok_or(KernReturn::ResourceShortage)?;
        Ok(mach::VmReadOut {
            data: mach_abi::mig::Ool {
                address: self.slots.put_region(region)?,
                count,
            },
        })
    }

    fn vm_write(
        &mut self,
        task: &Arc<T>,
        address: u64,
        data: mach_abi::mig::Ool,
    ) -> Result<(), KernReturn> {
        match self.slots.take_incoming(data.address) {
            Some(memory) => task.vm_write(address, &*memory),
            // Nothing sent: nothing to write (GNU Mach: a null copy succeeds).
            None if data.count == 0 => Ok(()),
            None => Err(KernReturn::InvalidArgument),
        }
    }

    fn vm_inherit(
        &mut self,
        task: &Arc<T>,
        address: u64,
        size: u64,
        inheritance: i32,
    ) -> Result<(), KernReturn> {
        task.vm_inherit(address, size, inheritance)
    }

    fn vm_copy(
        &mut self,
        task: &Arc<T>,
        source: u64,
        size: u64,
        dest: u64,
    ) -> Result<(), KernReturn> {
        task.vm_copy(source, size, dest)
    }

    fn vm_region(
        &mut self,
        task: &Arc<T>,
        address: &mut u64,
    ) -> Result<mach::VmRegionOut, KernReturn> {
        let r = task.vm_region(*address)?;
        *address = r.start;
        // No name port for the object (GNU Mach answers null too).
        Ok(mach::VmRegionOut {
            size: r.end - r.start,
            protection: r.protection,
            max_protection: r.max_protection,
            inheritance: r.inheritance,
            is_shared: r.shared,
            object_name: PortSlot::NULL,
            offset: r.offset,
        })
    }

    /// `vm_machine_attribute` (GNU Mach `vm_map_machine_attribute`, then the pmap's
    /// answer): a range outside the user address space is `KERN_INVALID_ARGUMENT` (the end
    /// computed with GNU Mach's wrapping arithmetic); inside it, every attribute gets
    /// `KERN_INVALID_ADDRESS` and `value` is left as it came, as GNU Mach's x86 pmap (the
    /// one GNU Mach has; its AArch64 port has no pmap yet) answers every attribute.
    fn vm_machine_attribute(
        &mut self,
        _task: &Arc<T>,
        address: u64,
        size: u64,
        _attribute: i32,
        _value: &mut i32,
    ) -> Result<(), KernReturn> {
        use mach_abi::traps::{VM_MAX_USER_ADDRESS, VM_MIN_USER_ADDRESS};
        if address < VM_MIN_USER_ADDRESS || address.wrapping_add(size) > VM_MAX_USER_ADDRESS {
            return Err(KernReturn::InvalidArgument);
        }
        Err(KernReturn::InvalidAddress)
    }

    fn vm_statistics(&mut self, task: &Arc<T>) -> Result<mach::VmStatisticsOut, KernReturn> {
        Ok(mach::VmStatisticsOut {
            vm_stats: task.vm_statistics().to_words(),
        })
    }

    fn task_get_special_port(
        &mut self,
        task: &Arc<T>,
        which: i32,
    ) -> Result<mach::TaskGetSpecialPortOut, KernReturn> {
        if !matches!(
            which,
            special::TASK_KERNEL_PORT | special::TASK_EXCEPTION_PORT | special::TASK_BOOTSTRAP_PORT
        ) {
            return Err(KernReturn::InvalidArgument);
        }
        // A task that is going has no ports left (GNU Mach: `itk_self` is null).
        if task.ipc_space().is_none() {
            return Err(KernReturn::Failure);
        }
        let port = task.special_port(which);
        Ok(mach::TaskGetSpecialPortOut {
            special_port: self.put(port),
        })
    }

    /// `mach_ports_register` (GNU Mach `kern/ipc_tt.c`): keep up to
    /// `TASK_PORT_REGISTER_MAX` (3) send rights for the task, null-padded, in place of
    /// those kept before; more is `KERN_INVALID_ARGUMENT`.
    fn mach_ports_register(
        &mut self,
        task: &Arc<T>,
        init_port_set: mig::Ool,
    ) -> Result<(), KernReturn> {
        const TASK_PORT_REGISTER_MAX: u32 = 3;
        if init_port_set.count > TASK_PORT_REGISTER_MAX {
            return Err(KernReturn::InvalidArgument);
        }
        let rights = self
            .slots
            .take_incoming_rights(init_port_set.address, init_port_set.count as usize)
            .ok_or(KernReturn::InvalidArgument)?;
        let mut ports: [MsgPort; 3] = Default::default();
        for (slot, right) in ports.iter_mut().zip(rights) {
            *slot = right;
        }
        task.register_ports(ports)
    }

    /// `mach_ports_lookup`: send rights to the registered ports, always
    /// `TASK_PORT_REGISTER_MAX` of them, null where none (a port that died is null too,
    /// where GNU Mach gives a dead name).
    fn mach_ports_lookup(&mut self, task: &Arc<T>) -> Result<mach::MachPortsLookupOut, KernReturn> {
        let kept = task.registered_ports();
        let ports = kept.iter().map(|p| match p {
            MsgPort::Right(r) => Some(r.port()),
            _ => None,
        });
        Ok(mach::MachPortsLookupOut {
            init_port_set: self.port_array_of(3, |put| {
                for p in ports {
                    put(p);
                }
            })?,
        })
    }

    /// `task_threads` (GNU Mach `kern/task.c`): send rights to the task's threads' ports,
    /// out of line, in the order the task holds them (by creation).
    fn task_threads(&mut self, task: &Arc<T>) -> Result<mach::TaskThreadsOut, KernReturn> {
        let mut count = 0;
        task.for_each_thread(&mut |_| count += 1);
        Ok(mach::TaskThreadsOut {
            thread_list: self.port_array_of(count, |put| {
                task.for_each_thread(&mut |t| put(t.kernel_port().as_ref()))
            })?,
        })
    }

    mach::mach_unimplemented!(crate::server::generated::mach;
        task_get_emulation_vector, task_set_emulation_vector,

        memory_object_data_unavailable, memory_object_get_attributes,
        vm_set_default_memory_manager, memory_object_lock_request,
        task_set_emulation, task_ras_control,
        memory_object_data_error, memory_object_destroy, memory_object_data_supply,
        memory_object_ready, memory_object_change_attributes);
}

impl<T: TaskIpc> MachDebugServer for Kernel<'_, T> {
    type IpcSpace = Arc<Space>;
    type Host = Arc<Host>;
    type ProcessorSet = KObject;
    type VmMap = Arc<T>;
    type VmObject = KObject;
    type Task = Arc<T>;

    fn convert_port_to_space(&mut self, port: PortSlot, _: i32) -> Result<Arc<Space>, KernReturn> {
        self.space(port)
    }

    fn space_deallocate(&mut self, space: Arc<Space>) {
        drop(space);
    }

    fn convert_port_to_host(
        &mut self,
        port: PortSlot,
        msg_id: i32,
    ) -> Result<Arc<Host>, KernReturn> {
        self.host(port, msg_id)
    }

    fn convert_port_to_pset_name(&mut self, port: PortSlot, _: i32) -> Result<KObject, KernReturn> {
        self.other(port, KObjectKind::ProcessorSetName)
            .or_else(|_| self.other(port, KObjectKind::ProcessorSet))
    }

    fn pset_deallocate(&mut self, set: KObject) {
        drop(set);
    }

    fn convert_port_to_map(&mut self, port: PortSlot, _: i32) -> Result<Arc<T>, KernReturn> {
        self.task(port)
    }

    fn vm_map_deallocate(&mut self, map: Arc<T>) {
        drop(map);
    }

    fn vm_object_lookup_name(&mut self, _: PortSlot, _: i32) -> Result<KObject, KernReturn> {
        Err(KernReturn::InvalidArgument)
    }

    fn vm_object_deallocate(&mut self, object: KObject) {
        drop(object);
    }

    fn convert_port_to_host_priv(
        &mut self,
        port: PortSlot,
        msg_id: i32,
    ) -> Result<Arc<Host>, KernReturn> {
        self.host_priv(port, msg_id)
    }

    fn convert_port_to_task(&mut self, port: PortSlot, _: i32) -> Result<Arc<T>, KernReturn> {
        self.task(port)
    }

    fn task_deallocate(&mut self, task: Arc<T>) {
        drop(task);
    }

    fn release_send(&mut self, port: PortSlot) {
        drop(self.slots.take(port));
    }

    mach_debug::mach_debug_unimplemented!(crate::server::generated::mach_debug;
        mach_port_get_srights, host_ipc_marequest_info, mach_port_dnrequest_info,
        host_stack_usage, processor_set_stack_usage, host_virtual_physical_table_info,
        mach_port_kernel_object, mach_vm_region_info, mach_vm_object_info,
        mach_vm_object_pages, host_slab_info, host_load_symbol_table,
        mach_vm_object_pages_phys);
}

/// The memory object `vm_map` is given: none (a null or dead name: zero-fill memory), or
/// a port, with the kernel object it stands for if it is a kernel port.
pub enum MemoryObject {
    Null,
    Port(Option<KObject>),
}

/// `vm_map`'s arguments past the task, as the RPC (2089) and the trap (64) both take them.
pub struct VmMapArgs {
    pub address: u64,
    pub size: u64,
    pub mask: u64,
    pub anywhere: bool,
    pub object: MemoryObject,
    pub offset: u64,
    /// A private copy of the object's pages rather than the object itself (proxies only;
    /// ignored for device memory, which is never written).
    pub copy: bool,
    pub cur_protection: i32,
    pub max_protection: i32,
    pub inheritance: i32,
}

/// `vm_map` on `task` (GNU Mach `vm/vm_user.c`), for the RPC and the trap alike: the
/// argument checks, then the backing the memory object gives: zero-fill memory for none; a
/// proxy (`vm_region_create_proxy`) is shared memory, or a private copy with `copy`, the
/// protections limited by the proxy's; a device's memory object is its pages (from a
/// page-aligned `offset`, all within the device, read-only, `copy` ignored);
/// `KERN_INVALID_ARGUMENT` for any other port. The new range's start.
pub fn vm_map<T: TaskIpc + ?Sized>(task: &T, a: VmMapArgs) -> Result<u64, KernReturn> {
    use crate::mm::regions::Backing;
    const VM_PROT_ALL: i32 = 7;
    const VM_PROT_READ: u32 = 1;
    if a.cur_protection & !VM_PROT_ALL != 0 || a.max_protection & !VM_PROT_ALL != 0 {
        return Err(KernReturn::InvalidArgument);
    }
    let inheritance = u32::try_from(a.inheritance)
        .ok()
        .filter(|&i| i <= 2)
        .ok_or(KernReturn::InvalidArgument)?;
    if a.size == 0 {
        return Err(KernReturn::InvalidArgument);
    }
    let (mut cur_protection, mut max_protection) = (a.cur_protection, a.max_protection);
    let backing = match a.object {
        MemoryObject::Null => Backing::Anonymous,
        MemoryObject::Port(kobject) => {
            let kobject = kobject.ok_or(KernReturn::InvalidArgument)?;
            if let Some(proxy) = kobject.get::<crate::mm::object::Proxy>(KObjectKind::PagerProxy) {
                // GNU Mach `vm_map` on a proxy: shared, the protections limited by the
                // proxy's; a copy needs the proxy to allow reading (it is made at once
                // here, where GNU Mach copies on write); the range inside the proxy's.
                if a.copy {
                    if proxy.max_protection & VM_PROT_READ == 0 {
                        return Err(KernReturn::ProtectionFailure);
                    }
                } else {
                    max_protection &= proxy.max_protection as i32;
                    cur_protection &= proxy.max_protection as i32;
                }
                let end = a
                    .size
                    .checked_next_multiple_of(crate::mm::PAGE_SIZE)
                    .and_then(|size| proxy.start.checked_add(a.offset)?.checked_add(size));
                let limit = proxy.start.checked_add(proxy.len);
                if end.is_none() || limit.is_none() || end > limit {
                    return Err(KernReturn::InvalidArgument);
                }
                let at = crate::mm::regions::ObjectRef {
                    object: proxy.object.clone(),
                    offset: proxy.start + a.offset,
                };
                if a.copy {
                    Backing::Copy(at)
                } else {
                    Backing::Object(at)
                }
            } else {
                let device = kobject
                    .get::<crate::kern::device::Device>(KObjectKind::Pager)
                    .ok_or(KernReturn::InvalidArgument)?;
                let memory = device.ops.memory().ok_or(KernReturn::InvalidArgument)?;
                let frame = memory
                    .frames_at(a.offset, a.size)
                    .ok_or(KernReturn::InvalidArgument)?;
                // The device's pages are read-only: no write access, now or later.
                if (cur_protection | max_protection) & 2 != 0 {
                    return Err(KernReturn::ProtectionFailure);
                }
                Backing::Borrowed(frame)
            }
        }
    };
    task.vm_map(
        a.address,
        a.size,
        a.mask,
        a.anywhere,
        backing,
        cur_protection as u32,
        max_protection as u32,
        inheritance,
    )
}
