//! `mach_host.defs` (2600) served on the host, host-privileged, processor and
//! processor-set ports: `host_info`, `host_get_kernel_version` and `host_get_uptime64`
//! (GNU Mach `kern/host.c`).
//!
//! Not served yet, each answering `MIG_BAD_ID` (listed below with the generated macro):
//! everything about processors, processor sets and scheduling policy (a later issue:
//! there are no processor or set kernel objects yet), `host_processors` (it returns an
//! out-of-line array of processor ports), host time (`host_get_time`, `host_set_time`,
//! `host_adjust_time` and their 64-bit forms: no calendar clock yet), `host_reboot`, and wiring (`vm_wire`, `thread_wire`).

extern crate alloc;

use super::generated::mach_host::{self, MachHostServer};
use super::host::Host;
use super::objects::{Kernel, TaskIpc};
use crate::ipc::{KObject, KObjectKind};
use alloc::sync::Arc;
use mach_abi::KernReturn;
use mach_abi::mig::{ArrayOut, CStrBuf, PortSlot};

/// What `host_get_kernel_version` answers.
pub const KERNEL_VERSION: &str = concat!("armach ", env!("CARGO_PKG_VERSION"), " (aarch64)");

impl<T: TaskIpc> MachHostServer for Kernel<'_, T> {
    type Host = Arc<Host>;
    type Processor = KObject;
    type ProcessorSet = KObject;
    type Thread = KObject;
    type Task = Arc<T>;
    type VmMap = Arc<T>;

    fn convert_port_to_host_priv(
        &mut self,
        port: PortSlot,
        msg_id: i32,
    ) -> Result<Arc<Host>, KernReturn> {
        self.host_priv(port, msg_id)
    }

    fn convert_port_to_processor(&mut self, port: PortSlot, _: i32) -> Result<KObject, KernReturn> {
        self.other(port, KObjectKind::Processor)
    }

    fn convert_port_to_host(
        &mut self,
        port: PortSlot,
        msg_id: i32,
    ) -> Result<Arc<Host>, KernReturn> {
        self.host(port, msg_id)
    }

    fn convert_pset_name_to_port(&mut self, _: KObject) -> PortSlot {
        // No routine that returns a set is served (no set objects exist yet).
        PortSlot::NULL
    }

    fn convert_pset_to_port(&mut self, _: KObject) -> PortSlot {
        PortSlot::NULL
    }

    fn convert_port_to_pset(&mut self, port: PortSlot, _: i32) -> Result<KObject, KernReturn> {
        self.other(port, KObjectKind::ProcessorSet)
    }

    fn pset_deallocate(&mut self, set: KObject) {
        drop(set);
    }

    fn convert_port_to_thread(&mut self, port: PortSlot, _: i32) -> Result<KObject, KernReturn> {
        self.other(port, KObjectKind::Thread)
    }

    fn thread_deallocate(&mut self, thread: KObject) {
        drop(thread);
    }

    fn convert_port_to_task(&mut self, port: PortSlot, _: i32) -> Result<Arc<T>, KernReturn> {
        self.task(port)
    }

    fn task_deallocate(&mut self, task: Arc<T>) {
        drop(task);
    }

    fn convert_port_to_pset_name(&mut self, port: PortSlot, _: i32) -> Result<KObject, KernReturn> {
        self.other(port, KObjectKind::ProcessorSetName)
            .or_else(|_| self.other(port, KObjectKind::ProcessorSet))
    }

    fn convert_port_to_map(&mut self, port: PortSlot, _: i32) -> Result<Arc<T>, KernReturn> {
        self.task(port)
    }

    fn vm_map_deallocate(&mut self, map: Arc<T>) {
        drop(map);
    }

    fn convert_host_to_port(&mut self, _: Arc<Host>) -> PortSlot {
        let port = super::host::realhost().map(|h| &h.host_port);
        self.send_right(port)
    }

    fn release_send(&mut self, port: PortSlot) {
        drop(self.slots.take(port));
    }

    fn host_info(
        &mut self,
        host: &Arc<Host>,
        flavor: i32,
        out: &mut ArrayOut<'_, i32>,
    ) -> Result<(), KernReturn> {
        host.info(flavor, out)
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
        host_processors,
        processor_start,
        processor_exit,
        processor_set_default,
        processor_set_create,
        processor_set_destroy,
        processor_assign,
        processor_get_assignment,
        thread_assign,
        thread_assign_default,
        thread_get_assignment,
        task_assign,
        task_assign_default,
        task_get_assignment,
        thread_priority,
        thread_max_priority,
        task_priority,
        processor_set_max_priority,
        thread_policy,
        processor_set_policy_enable,
        processor_set_policy_disable,
        processor_set_tasks,
        processor_set_threads,
        host_processor_sets,
        host_processor_set_priv,
        thread_depress_abort,
        host_set_time,
        host_adjust_time,
        host_get_time,
        host_reboot,
        vm_wire,
        thread_wire,
        processor_info,
        processor_set_info,
        processor_control,
        host_get_time64,
        host_set_time64,
        host_adjust_time64,
        processor_set_processors,
        task_max_priority);
}
