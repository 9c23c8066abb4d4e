//! `mach.defs` (2000) and `mach_debug.defs` (3000): their translation hooks,
//! `task_get_special_port` (GNU Mach `kern/ipc_tt.c`), and every other routine marked
//! unimplemented (`MIG_BAD_ID`) for now. Task and thread control, task and thread info,
//! setting special ports and the VM calls need the task, thread and VM wiring (later
//! issues); the debug calls need IPC and VM introspection the core does not offer yet.

extern crate alloc;

use super::generated::mach::{self, MachServer};
use super::generated::mach_debug::{self, MachDebugServer};
use super::host::Host;
use super::objects::{Kernel, TaskIpc, special};
use crate::ipc::{KObject, KObjectKind, Space};
use alloc::sync::Arc;
use mach_abi::KernReturn;
use mach_abi::mig::PortSlot;

impl<T: TaskIpc> MachServer for Kernel<'_, T> {
    type Task = Arc<T>;
    type Thread = KObject;
    type VmMap = Arc<T>;
    type VmObject = KObject;
    type Host = Arc<Host>;

    fn convert_port_to_task(&mut self, port: PortSlot, _: i32) -> Result<Arc<T>, KernReturn> {
        self.task(port)
    }

    fn task_deallocate(&mut self, task: Arc<T>) {
        drop(task);
    }

    fn convert_task_to_port(&mut self, _: Arc<T>) -> PortSlot {
        // No routine that returns a task is served yet (`task_create`).
        PortSlot::NULL
    }

    fn convert_port_to_thread(&mut self, port: PortSlot, _: i32) -> Result<KObject, KernReturn> {
        self.other(port, KObjectKind::Thread)
    }

    fn thread_deallocate(&mut self, thread: KObject) {
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

    fn convert_thread_to_port(&mut self, _: KObject) -> PortSlot {
        // No routine that returns a thread is served yet (`thread_create`).
        PortSlot::NULL
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

    mach::mach_unimplemented!(crate::server::generated::mach;
        task_create, task_terminate, task_get_emulation_vector, task_set_emulation_vector,
        task_threads, task_info, thread_terminate, thread_get_state, thread_set_state,
        thread_info, vm_allocate, vm_deallocate, vm_protect, vm_inherit, vm_read, vm_write,
        vm_copy, vm_region, vm_statistics, mach_ports_register, mach_ports_lookup,
        memory_object_data_unavailable, memory_object_get_attributes,
        vm_set_default_memory_manager, memory_object_lock_request, task_suspend,
        task_resume, task_set_special_port, thread_create,
        thread_suspend, thread_resume, thread_abort, thread_get_special_port,
        thread_set_special_port, task_set_emulation, task_ras_control, vm_map,
        memory_object_data_error, memory_object_destroy, memory_object_data_supply,
        memory_object_ready, memory_object_change_attributes, vm_machine_attribute);
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
