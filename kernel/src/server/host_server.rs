//! `mach_host.defs` (2600) served on the host, host-privileged, processor and
//! processor-set ports, with GNU Mach's semantics and codes (`kern/host.c`,
//! `kern/processor.c`, `kern/thread.c`, `kern/task.c`, `kern/machine.c`).
//!
//! Choices where the machine differs from GNU Mach's: processors cannot be started,
//! stopped or controlled here, so `processor_start` (every processor already runs: GNU
//! Mach's `cpu_start` answer), `processor_exit` and `processor_control` answer
//! `KERN_FAILURE`; `host_get_time` counts from the boot time the kernel knows (none: from
//! boot); `host_reboot` ends the run with the status in `options` (see [`reboot_status`]);
//! `vm_wire` makes the pages of the range present once GNU Mach's checks pass (8 MiB wired
//! at most without the host-privileged port, `KERN_NO_ACCESS`; the range check,
//! `KERN_NO_SPACE` for a hole or a refused access); as no memory is ever paged out,
//! unwiring only changes the count; `thread_wire` changes nothing.
//!
//! Not served, each answering `MIG_BAD_ID` (listed with the generated macro below):
//! scheduling policies (`thread_policy`, `processor_set_policy_enable`/`_disable`: one
//! policy, timesharing) and setting the time (`host_set_time`, `host_adjust_time` and
//! their 64-bit forms: no calendar clock).

extern crate alloc;

use super::generated::mach_host::{self, MachHostServer};
use super::host::Host;
use super::objects::{Kernel, TaskIpc, ThreadIpc};
use super::processor::{self, Processor, ProcessorSet};
use super::slots::PortArray;
use crate::ids::ProcessorSetId;
use crate::ipc::chunk::Chunked;
use crate::ipc::{Charge, Kind, MsgPort};
use alloc::sync::Arc;
use mach_abi::KernReturn;
use mach_abi::mig::{ArrayOut, ArrayRef, CStrBuf, Ool, PortSlot};

/// What `host_get_kernel_version` answers.
pub const KERNEL_VERSION: &str = concat!("armach ", env!("CARGO_PKG_VERSION"), " (aarch64)");

/// Run-queue levels (`NRQS`): a priority is valid in `0..NRQS` (GNU Mach `invalid_pri`).
pub const NRQS: i32 = 65;

/// `host_reboot` options (`sys/reboot.h`).
pub const RB_HALT: i32 = 0x8;
pub const RB_DEBUGGER: i32 = 0x1000;

/// `VM_PROT_ALL`.
const VM_PROT_ALL: i32 = 7;
fn invalid_pri(priority: i32) -> bool {
    !(0..NRQS).contains(&priority)
}

/// The exit status `host_reboot(options)` ends the run with: the low byte of `options`
/// without `RB_HALT` (halt and power-off are the same here), so that `host_reboot(0)` is
/// success and a test can pass its failure status.
pub fn reboot_status(options: i32) -> u32 {
    (options & !RB_HALT & 0xff) as u32
}

/// GNU Mach's `thread_priority` on one thread.
fn thread_priority_of<Th: ThreadIpc>(
    thread: &Arc<Th>,
    priority: i32,
    set_max: bool,
) -> Result<(), KernReturn> {
    if invalid_pri(priority) {
        return Err(KernReturn::InvalidArgument);
    }
    let priority = priority as u32;
    if priority < thread.max_priority() {
        return Err(KernReturn::Failure);
    }
    thread.set_priority(priority);
    if set_max {
        thread.set_max_priority(priority);
    }
    Ok(())
}

impl<T: TaskIpc> Kernel<'_, T> {
    /// An out-of-line array of send rights to `ports` for the reply, charged to the task
    /// the reply is for.
    fn port_array<'p>(
        &mut self,
        ports: impl Iterator<Item = Option<&'p Arc<crate::ipc::Port>>> + Clone,
    ) -> Result<Ool, KernReturn> {
        let count = ports.clone().count();
        self.port_array_of(count, |put| {
            for port in ports {
                put(port);
            }
        })
    }

    /// An out-of-line array of send rights to at most `count` ports, which `fill` hands
    /// to the function it is given (ports past `count` are left out: the list grew since
    /// it was counted).
    pub(super) fn port_array_of(
        &mut self,
        count: usize,
        fill: impl FnOnce(&mut dyn FnMut(Option<&Arc<crate::ipc::Port>>)),
    ) -> Result<Ool, KernReturn> {
        let blocks =
            Chunked::<MsgPort, 0>::blocks_for(count).ok_or(KernReturn::ResourceShortage)?;
        // The array's chunks, then the box the reply holds it in.
        let charge = Charge::new(self.ledger, Kind::Message, blocks + 1)?;
        let mut rights: Chunked<MsgPort, 0> =
            Chunked::with_capacity(count).map_err(|_| KernReturn::ResourceShortage)?;
        fill(&mut |port| {
            if rights.len() < count {
                let right = port
                    .and_then(|p| p.make_send())
                    .map_or(MsgPort::Null, MsgPort::Right);
                // Room for `count` was reserved.
                let _ = rights.push(right);
            }
        });
        let n = rights.len() as u32;
        let handle = self.slots.put_port_array(PortArray {
            rights,
            _charge: charge,
        })?;
        Ok(Ool {
            address: handle,
            count: n,
        })
    }

    /// The object of set `id` (the default set's once it is gone).
    fn set_object(&self, host: &Host, id: ProcessorSetId) -> Result<Arc<ProcessorSet>, KernReturn> {
        host.machine.set(id).ok_or(KernReturn::Failure)
    }
}

/// The host an object belongs to.
pub(super) fn host_of(host: &alloc::sync::Weak<Host>) -> Result<Arc<Host>, KernReturn> {
    host.upgrade().ok_or(KernReturn::Failure)
}

impl<T: TaskIpc> MachHostServer for Kernel<'_, T> {
    type Host = Arc<Host>;
    type Processor = Arc<Processor>;
    type ProcessorSet = Arc<ProcessorSet>;
    type Thread = Arc<T::Thread>;
    type Task = Arc<T>;
    /// `None` for a null map: `vm_wire` checks the host first (GNU Mach's order).
    type VmMap = Option<Arc<T>>;

    fn convert_port_to_host_priv(
        &mut self,
        port: PortSlot,
        msg_id: i32,
    ) -> Result<Arc<Host>, KernReturn> {
        self.host_priv(port, msg_id)
    }

    fn convert_port_to_processor(
        &mut self,
        port: PortSlot,
        _: i32,
    ) -> Result<Arc<Processor>, KernReturn> {
        self.processor(port)
    }

    fn convert_port_to_host(
        &mut self,
        port: PortSlot,
        msg_id: i32,
    ) -> Result<Arc<Host>, KernReturn> {
        self.host(port, msg_id)
    }

    fn convert_pset_name_to_port(&mut self, set: Arc<ProcessorSet>) -> PortSlot {
        self.send_right(Some(set.name_port()))
    }

    fn convert_pset_to_port(&mut self, set: Arc<ProcessorSet>) -> PortSlot {
        self.send_right(Some(set.control_port()))
    }

    fn convert_port_to_pset(
        &mut self,
        port: PortSlot,
        _: i32,
    ) -> Result<Arc<ProcessorSet>, KernReturn> {
        self.pset(port)
    }

    fn pset_deallocate(&mut self, set: Arc<ProcessorSet>) {
        drop(set);
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

    fn convert_port_to_task(&mut self, port: PortSlot, _: i32) -> Result<Arc<T>, KernReturn> {
        self.task(port)
    }

    fn task_deallocate(&mut self, task: Arc<T>) {
        drop(task);
    }

    fn convert_port_to_pset_name(
        &mut self,
        port: PortSlot,
        _: i32,
    ) -> Result<Arc<ProcessorSet>, KernReturn> {
        self.pset_name(port)
    }

    fn convert_port_to_map(
        &mut self,
        port: PortSlot,
        _: i32,
    ) -> Result<Option<Arc<T>>, KernReturn> {
        Ok(self.task(port).ok())
    }

    fn vm_map_deallocate(&mut self, map: Option<Arc<T>>) {
        drop(map);
    }

    fn convert_host_to_port(&mut self, _: Arc<Host>) -> PortSlot {
        let port = super::host::realhost().map(|h| &h.host_port);
        self.send_right(port)
    }

    fn release_send(&mut self, port: PortSlot) {
        drop(self.slots.take(port));
    }

    fn host_processors(
        &mut self,
        host: &Arc<Host>,
    ) -> Result<mach_host::HostProcessorsOut, KernReturn> {
        let processors = host.machine.processors();
        Ok(mach_host::HostProcessorsOut {
            processor_list: self.port_array(processors.iter().map(|p| p.port()))?,
        })
    }

    fn processor_start(&mut self, _: &Arc<Processor>) -> Result<(), KernReturn> {
        // Every processor the kernel knows was started at boot (GNU Mach's `cpu_start`
        // refuses a running one).
        Err(KernReturn::Failure)
    }

    fn processor_exit(&mut self, _: &Arc<Processor>) -> Result<(), KernReturn> {
        // No processor is ever taken off line here.
        Err(KernReturn::Failure)
    }

    fn processor_control(
        &mut self,
        _: &Arc<Processor>,
        _: ArrayRef<'_, i32>,
    ) -> Result<(), KernReturn> {
        // GNU Mach's `cpu_control` does nothing on any machine it supports.
        Err(KernReturn::Failure)
    }

    fn processor_set_default(
        &mut self,
        host: &Arc<Host>,
    ) -> Result<mach_host::ProcessorSetDefaultOut<Arc<ProcessorSet>>, KernReturn> {
        Ok(mach_host::ProcessorSetDefaultOut {
            default_set: host.machine.default_set().ok_or(KernReturn::Failure)?,
        })
    }

    fn processor_set_create(
        &mut self,
        host: &Arc<Host>,
    ) -> Result<mach_host::ProcessorSetCreateOut<Arc<ProcessorSet>>, KernReturn> {
        let set = host.machine.create_set(self.ledger)?;
        Ok(mach_host::ProcessorSetCreateOut {
            new_set: set.clone(),
            new_name: set,
        })
    }

    fn processor_set_destroy(&mut self, set: &Arc<ProcessorSet>) -> Result<(), KernReturn> {
        host_of(&set.host)?.machine.destroy_set(set)
    }

    fn processor_assign(
        &mut self,
        processor: &Arc<Processor>,
        new_set: &Arc<ProcessorSet>,
        _wait: bool,
    ) -> Result<(), KernReturn> {
        // The move is done when the scheduler returns: `wait` has nothing to wait for.
        host_of(&processor.host)?
            .machine
            .sched
            .processor_assign(processor.slot, new_set.id)
    }

    fn processor_get_assignment(
        &mut self,
        processor: &Arc<Processor>,
    ) -> Result<mach_host::ProcessorGetAssignmentOut<Arc<ProcessorSet>>, KernReturn> {
        let host = host_of(&processor.host)?;
        if !host.facts().running(processor.slot) {
            return Err(KernReturn::Failure);
        }
        let id = host.machine.sched.processor_assignment(processor.slot)?;
        Ok(mach_host::ProcessorGetAssignmentOut {
            assigned_set: self.set_object(&host, id)?,
        })
    }

    fn thread_assign(
        &mut self,
        thread: &Arc<T::Thread>,
        new_set: &Arc<ProcessorSet>,
    ) -> Result<(), KernReturn> {
        thread.assign(new_set.id)
    }

    fn thread_assign_default(&mut self, thread: &Arc<T::Thread>) -> Result<(), KernReturn> {
        thread.assign(ProcessorSetId::DEFAULT)
    }

    fn thread_get_assignment(
        &mut self,
        thread: &Arc<T::Thread>,
    ) -> Result<mach_host::ThreadGetAssignmentOut<Arc<ProcessorSet>>, KernReturn> {
        let host = super::host::realhost()
            .map(|h| h.host.clone())
            .ok_or(KernReturn::Failure)?;
        Ok(mach_host::ThreadGetAssignmentOut {
            assigned_set: self.set_object(&host, thread.processor_set())?,
        })
    }

    fn task_assign(
        &mut self,
        task: &Arc<T>,
        new_set: &Arc<ProcessorSet>,
        assign_threads: bool,
    ) -> Result<(), KernReturn> {
        task.assign(new_set.id, assign_threads)
    }

    fn task_assign_default(
        &mut self,
        task: &Arc<T>,
        assign_threads: bool,
    ) -> Result<(), KernReturn> {
        task.assign(ProcessorSetId::DEFAULT, assign_threads)
    }

    fn task_get_assignment(
        &mut self,
        task: &Arc<T>,
    ) -> Result<mach_host::TaskGetAssignmentOut<Arc<ProcessorSet>>, KernReturn> {
        let host = super::host::realhost()
            .map(|h| h.host.clone())
            .ok_or(KernReturn::Failure)?;
        Ok(mach_host::TaskGetAssignmentOut {
            assigned_set: self.set_object(&host, task.processor_set())?,
        })
    }

    fn thread_priority(
        &mut self,
        thread: &Arc<T::Thread>,
        priority: i32,
        set_max: bool,
    ) -> Result<(), KernReturn> {
        thread_priority_of(thread, priority, set_max)
    }

    fn thread_max_priority(
        &mut self,
        thread: &Arc<T::Thread>,
        set: &Arc<ProcessorSet>,
        max_priority: i32,
    ) -> Result<(), KernReturn> {
        if invalid_pri(max_priority) {
            return Err(KernReturn::InvalidArgument);
        }
        if thread.processor_set() != set.id {
            return Err(KernReturn::Failure);
        }
        let max = max_priority as u32;
        thread.set_max_priority(max);
        if max > thread.base_priority() {
            thread.set_priority(max);
        }
        Ok(())
    }

    fn task_priority(
        &mut self,
        task: &Arc<T>,
        priority: i32,
        change_threads: bool,
    ) -> Result<(), KernReturn> {
        if invalid_pri(priority) {
            return Err(KernReturn::InvalidArgument);
        }
        // Not above the task's maximum (GNU Mach `task_priority`).
        if (priority as u32) < task.max_priority() {
            return Err(KernReturn::NoAccess);
        }
        task.set_priority(priority as u32);
        let mut result = Ok(());
        if change_threads {
            task.for_each_thread(&mut |thread| {
                if thread_priority_of(thread, priority, false).is_err() {
                    result = Err(KernReturn::Failure);
                }
            });
        }
        result
    }

    fn task_max_priority(
        &mut self,
        host: PortSlot,
        task: &Arc<T>,
        max_priority: i32,
        set_priority: bool,
        change_threads: bool,
    ) -> Result<(), KernReturn> {
        // GNU Mach `task_max_priority`: the host port may only lower the maximum (raise
        // the number), the host-privileged port change it either way.
        use crate::ipc::KObjectKind;
        let kobject = self.slots.kobject(host);
        let (host, privileged) = match kobject.as_ref().map(|k| k.kind()) {
            Some(KObjectKind::HostPriv) => (
                kobject.and_then(|k| k.get::<Host>(KObjectKind::HostPriv)),
                true,
            ),
            Some(KObjectKind::Host) => (
                kobject.and_then(|k| k.get::<Host>(KObjectKind::Host)),
                false,
            ),
            _ => (None, false),
        };
        let host = host.ok_or(KernReturn::InvalidArgument)?;
        if invalid_pri(max_priority) {
            return Err(KernReturn::InvalidArgument);
        }
        let max = max_priority as u32;
        if max < task.max_priority() && !privileged {
            return Err(KernReturn::NoAccess);
        }
        task.set_max_priority(max);
        if max > task.priority() || set_priority {
            task.set_priority(max);
        }
        if change_threads {
            // Each thread as GNU Mach's `thread_override_max_priority`: the maximum, no
            // higher than the set's; the priority lowered to it, or set to it on request.
            let sched = host.machine.sched;
            task.for_each_thread(&mut |thread| {
                let ceiling = sched
                    .pset_info(thread.processor_set())
                    .map_or(0, |i| i.max_priority);
                let thread_max = max.max(ceiling);
                thread.set_max_priority(thread_max);
                if thread_max > thread.base_priority() || set_priority {
                    thread.set_priority(thread_max);
                }
            });
        }
        Ok(())
    }

    fn processor_set_max_priority(
        &mut self,
        set: &Arc<ProcessorSet>,
        max_priority: i32,
        change_threads: bool,
    ) -> Result<(), KernReturn> {
        if invalid_pri(max_priority) {
            return Err(KernReturn::InvalidArgument);
        }
        let max = max_priority as u32;
        let sched = host_of(&set.host)?.machine.sched;
        sched.pset_max_priority(set.id, max, change_threads)?;
        if change_threads {
            // GNU Mach lowers each thread of the set whose maximum is higher (a lower
            // number) to the new maximum, as `thread_max_priority` does.
            sched.each_thread(set.id, &mut |port| {
                let Some(thread) = port
                    .kobject()
                    .and_then(|k| k.get::<T::Thread>(crate::ipc::KObjectKind::Thread))
                else {
                    return;
                };
                if thread.max_priority() < max {
                    thread.set_max_priority(max);
                    if max > thread.base_priority() {
                        thread.set_priority(max);
                    }
                }
            });
        }
        Ok(())
    }

    fn processor_set_tasks(
        &mut self,
        set: &Arc<ProcessorSet>,
    ) -> Result<mach_host::ProcessorSetTasksOut, KernReturn> {
        let sched = host_of(&set.host)?.machine.sched;
        let mut count = 0;
        sched.each_task(set.id, &mut |_| count += 1);
        Ok(mach_host::ProcessorSetTasksOut {
            task_list: self
                .port_array_of(count, |put| sched.each_task(set.id, &mut |p| put(Some(p))))?,
        })
    }

    fn processor_set_threads(
        &mut self,
        set: &Arc<ProcessorSet>,
    ) -> Result<mach_host::ProcessorSetThreadsOut, KernReturn> {
        let sched = host_of(&set.host)?.machine.sched;
        let mut count = 0;
        sched.each_thread(set.id, &mut |_| count += 1);
        Ok(mach_host::ProcessorSetThreadsOut {
            thread_list: self.port_array_of(count, |put| {
                sched.each_thread(set.id, &mut |p| put(Some(p)))
            })?,
        })
    }

    fn host_processor_sets(
        &mut self,
        host: &Arc<Host>,
    ) -> Result<mach_host::HostProcessorSetsOut, KernReturn> {
        let sets = host.machine.sets();
        Ok(mach_host::HostProcessorSetsOut {
            processor_sets: self.port_array(sets.iter().map(|s| Some(s.name_port())))?,
        })
    }

    fn host_processor_set_priv(
        &mut self,
        _: &Arc<Host>,
        set_name: &Arc<ProcessorSet>,
    ) -> Result<mach_host::HostProcessorSetPrivOut<Arc<ProcessorSet>>, KernReturn> {
        Ok(mach_host::HostProcessorSetPrivOut {
            set: set_name.clone(),
        })
    }

    fn thread_depress_abort(&mut self, thread: &Arc<T::Thread>) -> Result<(), KernReturn> {
        thread.depress_abort();
        Ok(())
    }

    fn host_get_time(&mut self, host: &Arc<Host>) -> Result<mach_host::HostGetTimeOut, KernReturn> {
        Ok(mach_host::HostGetTimeOut {
            current_time: host.time(),
        })
    }

    fn host_get_time64(
        &mut self,
        host: &Arc<Host>,
    ) -> Result<mach_host::HostGetTime64Out, KernReturn> {
        Ok(mach_host::HostGetTime64Out {
            current_time: host.time64(),
        })
    }

    fn host_reboot(&mut self, host: &Arc<Host>, options: i32) -> Result<(), KernReturn> {
        if options & RB_DEBUGGER != 0 {
            // No kernel debugger to enter: nothing happens (GNU Mach enters its own).
            return Ok(());
        }
        host.machine.sched.reboot(reboot_status(options));
        Ok(())
    }

    fn vm_wire(
        &mut self,
        host: PortSlot,
        map: &Option<Arc<T>>,
        address: u64,
        size: u64,
        access: i32,
    ) -> Result<(), KernReturn> {
        // The host port is checked first: any host port, privileged or not.
        let privileged = match self.host_priv(host, mach_host::VM_WIRE_ID) {
            Ok(_) => true,
            Err(_) => {
                self.host(host, mach_host::VM_WIRE_ID)?;
                false
            }
        };
        let Some(map) = map else {
            return Err(KernReturn::InvalidTask);
        };
        if access & !VM_PROT_ALL != 0 {
            return Err(KernReturn::InvalidArgument);
        }
        // The unprivileged limit (over what the map has wired already), the range check
        // and the wiring itself: `mm::vm::VmMap::wire`.
        map.wire(address, size, access as u32, privileged)
    }

    fn thread_wire(
        &mut self,
        _: &Arc<Host>,
        thread: &Arc<T::Thread>,
        _wired: bool,
    ) -> Result<(), KernReturn> {
        // GNU Mach wires only the calling thread; kernel stacks are never paged out, so
        // there is nothing more to do.
        if !thread.is_current() {
            return Err(KernReturn::InvalidArgument);
        }
        Ok(())
    }

    fn host_info(
        &mut self,
        host: &Arc<Host>,
        flavor: i32,
        out: &mut ArrayOut<'_, i32>,
    ) -> Result<(), KernReturn> {
        host.info(flavor, out)
    }

    fn processor_info(
        &mut self,
        processor: &Arc<Processor>,
        flavor: i32,
        out: &mut ArrayOut<'_, i32>,
    ) -> Result<mach_host::ProcessorInfoOut<Arc<Host>>, KernReturn> {
        let host = host_of(&processor.host)?;
        let running = host.facts().running(processor.slot);
        let master = host.machine.sched.master() == processor.slot;
        processor::processor_info(processor, host.machine.sched, running, master, flavor, out)?;
        Ok(mach_host::ProcessorInfoOut { host })
    }

    fn processor_set_info(
        &mut self,
        set: &Arc<ProcessorSet>,
        flavor: i32,
        out: &mut ArrayOut<'_, i32>,
    ) -> Result<mach_host::ProcessorSetInfoOut<Arc<Host>>, KernReturn> {
        let host = host_of(&set.host)?;
        set.info(host.machine.sched, flavor, out)?;
        Ok(mach_host::ProcessorSetInfoOut { host })
    }

    fn processor_set_processors(
        &mut self,
        set: &Arc<ProcessorSet>,
    ) -> Result<mach_host::ProcessorSetProcessorsOut, KernReturn> {
        let host = host_of(&set.host)?;
        let sched = host.machine.sched;
        let processors = host.machine.processors();
        let mine = processors
            .iter()
            .filter(|p| sched.processor_assignment(p.slot).ok() == Some(set.id))
            .map(|p| p.port());
        Ok(mach_host::ProcessorSetProcessorsOut {
            processors_list: self.port_array(mine)?,
        })
    }

    fn host_get_kernel_version(
        &mut self,
        _: &Arc<Host>,
    ) -> Result<mach_host::HostGetKernelVersionOut, KernReturn> {
        Ok(mach_host::HostGetKernelVersionOut {
            kernel_version: CStrBuf::from_str(KERNEL_VERSION)?,
        })
    }

    fn host_get_uptime64(
        &mut self,
        host: &Arc<Host>,
    ) -> Result<mach_host::HostGetUptime64Out, KernReturn> {
        Ok(mach_host::HostGetUptime64Out {
            uptime: host.uptime(),
        })
    }

    mach_host::mach_host_unimplemented!(crate::server::generated::mach_host;
        thread_policy,
        processor_set_policy_enable,
        processor_set_policy_disable,
        host_set_time,
        host_adjust_time,
        host_set_time64,
        host_adjust_time64);
}
