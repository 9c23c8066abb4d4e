//! Small models of the servers the tests talk to: the kernel's host and debugging interfaces
//! (kernel servers: they see 64-bit port handles and implement the typed translation hooks)
//! and a default pager (a user-space server). Each implements the routines its tests need
//! and marks every other routine unimplemented with the generated macro, which is why they
//! live in this crate rather than in the tests.

use crate::fake::{self, Serve, handle};
use crate::{default_pager_server as pager, mach_debug_server as debug, mach_host_server as host};
use mach_abi::mig::{ArrayOut, IndefiniteOut, KernReturn, Ool, PortName, PortSlot, Served};

/// The host port's name in the test task.
pub const HOST: PortName = PortName(0x100);
/// The privileged host port's name.
pub const HOST_PRIV: PortName = PortName(0x101);
/// The first processor's port.
pub const PROCESSOR: PortName = PortName(0x200);
/// A processor set's control port.
pub const PSET: PortName = PortName(0x300);
/// The same set's name port.
pub const PSET_NAME: PortName = PortName(0x301);
/// A thread's port.
pub const THREAD: PortName = PortName(0x400);
/// A memory object's name port.
pub const OBJECT: PortName = PortName(0x600);
/// The default pager's port.
pub const PAGER: PortName = PortName(0x700);

/// What the kernel object behind a handle is, for the hooks: `None` if it is not one.
fn object(port: PortSlot, of: PortName) -> Result<u32, KernReturn> {
    if port == handle(of) {
        Ok(of.0)
    } else {
        Err(KernReturn::InvalidArgument)
    }
}

/// The kernel's host interface, as far as the tests need it. Objects are their port names;
/// every hook call is logged.
#[derive(Default)]
pub struct KHost {
    /// Hook and routine calls, in order.
    pub log: Vec<String>,
}

impl host::MachHostServer for KHost {
    type Host = u32;
    type Processor = u32;
    type ProcessorSet = u32;
    type Thread = u32;
    type Task = u32;
    type VmMap = u32;

    fn convert_port_to_host_priv(&mut self, port: PortSlot, _: i32) -> Result<u32, KernReturn> {
        self.log.push(format!("host_priv {:#x}", port.0));
        object(port, HOST_PRIV)
    }

    fn convert_port_to_processor(&mut self, port: PortSlot, _: i32) -> Result<u32, KernReturn> {
        self.log.push(format!("processor {:#x}", port.0));
        object(port, PROCESSOR)
    }

    fn convert_port_to_host(&mut self, port: PortSlot, msg_id: i32) -> Result<u32, KernReturn> {
        self.log.push(format!("host {:#x}", port.0));
        // Per-routine codes for a bad object are possible: the hook knows the request.
        object(port, HOST).map_err(|e| {
            if msg_id == host::HOST_GET_TIME_ID {
                KernReturn::InvalidHost
            } else {
                e
            }
        })
    }

    fn convert_pset_name_to_port(&mut self, pset: u32) -> PortSlot {
        handle(PortName(pset + 1))
    }

    fn convert_pset_to_port(&mut self, pset: u32) -> PortSlot {
        handle(PortName(pset))
    }

    fn convert_port_to_pset(&mut self, port: PortSlot, _: i32) -> Result<u32, KernReturn> {
        self.log.push(format!("pset {:#x}", port.0));
        object(port, PSET)
    }

    fn pset_deallocate(&mut self, pset: u32) {
        self.log.push(format!("pset_deallocate {pset:#x}"));
    }

    fn convert_port_to_thread(&mut self, port: PortSlot, _: i32) -> Result<u32, KernReturn> {
        self.log.push(format!("thread {:#x}", port.0));
        object(port, THREAD)
    }

    fn thread_deallocate(&mut self, thread: u32) {
        self.log.push(format!("thread_deallocate {thread:#x}"));
    }

    fn convert_port_to_task(&mut self, _: PortSlot, _: i32) -> Result<u32, KernReturn> {
        Err(KernReturn::InvalidArgument)
    }

    fn task_deallocate(&mut self, _: u32) {}

    fn convert_port_to_pset_name(&mut self, port: PortSlot, _: i32) -> Result<u32, KernReturn> {
        self.log.push(format!("pset_name {:#x}", port.0));
        // A set's name port leads to the set.
        object(port, PSET_NAME).map(|_| PSET.0)
    }

    fn convert_port_to_map(&mut self, _: PortSlot, _: i32) -> Result<u32, KernReturn> {
        Err(KernReturn::InvalidArgument)
    }

    fn vm_map_deallocate(&mut self, _: u32) {}

    fn convert_host_to_port(&mut self, host: u32) -> PortSlot {
        handle(PortName(host))
    }

    fn release_send(&mut self, port: PortSlot) {
        self.log.push(format!("release_send {:#x}", port.0));
    }

    fn host_info(
        &mut self,
        _: &u32,
        flavor: i32,
        out: &mut ArrayOut<'_, i32>,
    ) -> Result<(), KernReturn> {
        if flavor != 1 {
            return Err(KernReturn::InvalidArgument);
        }
        out.extend_from_slice(&[4, 4, 0, 1 << 30, 22, 0])
    }

    fn processor_info(
        &mut self,
        processor: &u32,
        _: i32,
        out: &mut ArrayOut<'_, i32>,
    ) -> Result<host::ProcessorInfoOut<u32>, KernReturn> {
        self.log.push(format!("processor_info {processor:#x}"));
        out.extend_from_slice(&[22, 0, 1, 0, 1])?;
        Ok(host::ProcessorInfoOut { host: HOST.0 })
    }

    fn processor_set_info(
        &mut self,
        set: &u32,
        flavor: i32,
        out: &mut ArrayOut<'_, i32>,
    ) -> Result<host::ProcessorSetInfoOut<u32>, KernReturn> {
        self.log.push(format!("processor_set_info {set:#x}"));
        if flavor != 1 {
            return Err(KernReturn::InvalidArgument);
        }
        out.extend_from_slice(&[4, 2, 9, 1000, 2000])?;
        Ok(host::ProcessorSetInfoOut { host: HOST.0 })
    }

    fn thread_assign(&mut self, thread: &u32, set: &u32) -> Result<(), KernReturn> {
        self.log.push(format!("thread_assign {thread:#x} {set:#x}"));
        Ok(())
    }

    fn host_get_time(&mut self, _: &u32) -> Result<host::HostGetTimeOut, KernReturn> {
        Ok(host::HostGetTimeOut {
            current_time: [1, 2],
        })
    }

    fn processor_set_create(
        &mut self,
        _: &u32,
    ) -> Result<host::ProcessorSetCreateOut<u32>, KernReturn> {
        Ok(host::ProcessorSetCreateOut {
            new_set: PSET.0,
            new_name: PSET.0,
        })
    }

    host::mach_host_unimplemented!(
        crate::mach_host_server;
        host_processors, processor_start, processor_exit, processor_set_default,
        processor_set_destroy, processor_assign, processor_get_assignment,
        thread_assign_default, thread_get_assignment, task_assign, task_assign_default,
        task_get_assignment, thread_priority, thread_max_priority, task_priority,
        processor_set_max_priority, thread_policy, processor_set_policy_enable,
        processor_set_policy_disable, processor_set_tasks, processor_set_threads,
        host_processor_sets, host_processor_set_priv, thread_depress_abort, host_set_time,
        host_adjust_time, host_reboot, vm_wire, thread_wire, processor_control,
        host_get_time64, host_set_time64, host_adjust_time64, host_get_kernel_version,
        host_get_uptime64, processor_set_processors, task_max_priority,
    );
}

impl Serve for KHost {
    fn serve(&mut self, request: &[u8], reply: &mut [u8]) -> Served {
        host::mach_host_server(self, request, reply)
    }
    fn in_kernel(&self) -> bool {
        true
    }
}

/// Fills an indefinite output with `count` elements made by `f`: inline if they fit, else in
/// a region handed over out-of-line (as a kernel server does past the inline limit).
pub fn fill<E: mach_abi::mig::Element + mach_abi::message::Plain>(
    out: &mut IndefiniteOut<'_, E>,
    count: usize,
    f: impl Fn(usize) -> E,
) -> Result<(), KernReturn> {
    if count <= out.capacity() {
        for i in 0..count {
            out.push(f(i))?;
        }
    } else {
        let mut bytes = vec![0u8; count * E::SIZE];
        for (i, chunk) in bytes.chunks_exact_mut(E::SIZE).enumerate() {
            f(i).store(chunk);
        }
        out.set_out_of_line(Ool {
            address: fake::map(&bytes),
            count: count as u32,
        });
    }
    Ok(())
}

/// The kernel's debugging interface: its table listings return `entries` records (in base
/// elements of the record), record `i` filled with `i`.
#[derive(Default)]
pub struct KDebug {
    /// Records each listing returns.
    pub entries: usize,
}

impl debug::MachDebugServer for KDebug {
    type IpcSpace = u32;
    type Host = u32;
    type ProcessorSet = u32;
    type VmMap = u32;
    type VmObject = u32;
    type Task = u32;

    fn convert_port_to_space(&mut self, _: PortSlot, _: i32) -> Result<u32, KernReturn> {
        Err(KernReturn::InvalidTask)
    }
    fn space_deallocate(&mut self, _: u32) {}
    fn convert_port_to_host(&mut self, port: PortSlot, _: i32) -> Result<u32, KernReturn> {
        object(port, HOST)
    }
    fn convert_port_to_pset_name(&mut self, port: PortSlot, _: i32) -> Result<u32, KernReturn> {
        object(port, PSET_NAME)
    }
    fn pset_deallocate(&mut self, _: u32) {}
    fn convert_port_to_map(&mut self, _: PortSlot, _: i32) -> Result<u32, KernReturn> {
        Err(KernReturn::InvalidArgument)
    }
    fn vm_map_deallocate(&mut self, _: u32) {}
    fn vm_object_lookup_name(&mut self, port: PortSlot, _: i32) -> Result<u32, KernReturn> {
        object(port, OBJECT)
    }
    fn vm_object_deallocate(&mut self, _: u32) {}
    fn convert_port_to_host_priv(&mut self, port: PortSlot, _: i32) -> Result<u32, KernReturn> {
        object(port, HOST_PRIV)
    }
    fn convert_port_to_task(&mut self, _: PortSlot, _: i32) -> Result<u32, KernReturn> {
        Err(KernReturn::InvalidArgument)
    }
    fn task_deallocate(&mut self, _: u32) {}
    fn release_send(&mut self, _: PortSlot) {}

    fn host_ipc_marequest_info(
        &mut self,
        _: &u32,
        info: &mut IndefiniteOut<'_, i32>,
    ) -> Result<debug::HostIpcMarequestInfoOut, KernReturn> {
        fill(info, self.entries, |i| i as i32)?;
        Ok(debug::HostIpcMarequestInfoOut { max_requests: 77 })
    }

    fn host_virtual_physical_table_info(
        &mut self,
        _: &u32,
        info: &mut IndefiniteOut<'_, i32>,
    ) -> Result<(), KernReturn> {
        fill(info, self.entries, |i| i as i32)
    }

    fn mach_vm_object_pages(
        &mut self,
        _: &u32,
        pages: &mut IndefiniteOut<'_, i64>,
    ) -> Result<(), KernReturn> {
        // Four 64-bit words per page.
        fill(pages, self.entries * 4, |i| i as i64)
    }

    fn host_slab_info(
        &mut self,
        _: &u32,
        info: &mut IndefiniteOut<'_, i64>,
    ) -> Result<(), KernReturn> {
        // Fifteen 64-bit words per cache.
        fill(info, self.entries * 15, |i| i as i64)
    }

    fn mach_vm_object_pages_phys(
        &mut self,
        _: &u32,
        pages: &mut IndefiniteOut<'_, i64>,
    ) -> Result<(), KernReturn> {
        fill(pages, self.entries * 4, |i| i as i64)
    }

    debug::mach_debug_unimplemented!(
        crate::mach_debug_server;
        mach_port_get_srights, mach_port_dnrequest_info, host_stack_usage,
        processor_set_stack_usage, mach_port_kernel_object, mach_vm_region_info,
        mach_vm_object_info, host_load_symbol_table,
    );
}

impl Serve for KDebug {
    fn serve(&mut self, request: &[u8], reply: &mut [u8]) -> Served {
        debug::mach_debug_server(self, request, reply)
    }
    fn in_kernel(&self) -> bool {
        true
    }
}

/// A default pager (a user-space server) backing `objects` memory objects, whose ports are
/// names from 0x1000 up.
#[derive(Default)]
pub struct Pager {
    /// Objects it backs (and pages each listing returns).
    pub objects: usize,
}

impl pager::DefaultPagerServer for Pager {
    fn default_pager_objects(
        &mut self,
        _: PortName,
        objects: &mut IndefiniteOut<'_, i64>,
        ports: &mut IndefiniteOut<'_, PortSlot>,
    ) -> Result<(), KernReturn> {
        // Two words per object.
        fill(objects, self.objects * 2, |i| i as i64)?;
        if self.objects <= ports.capacity() {
            for i in 0..self.objects {
                ports.push(PortSlot::from(PortName(0x1000 + i as u32)))?;
            }
        } else {
            // Out-of-line, rights are 32-bit names.
            fill_names(ports, self.objects);
        }
        Ok(())
    }

    fn default_pager_object_pages(
        &mut self,
        _: PortName,
        object: PortName,
        pages: &mut IndefiniteOut<'_, i64>,
    ) -> Result<(), KernReturn> {
        if object != OBJECT {
            return Err(KernReturn::InvalidArgument);
        }
        fill(pages, self.objects, |i| (i as i64) << 12)
    }

    pager::default_pager_unimplemented!(
        crate::default_pager_server;
        default_pager_object_create, default_pager_info, default_pager_paging_file,
        default_pager_register_fileserver,
    );
}

fn fill_names(ports: &mut IndefiniteOut<'_, PortSlot>, count: usize) {
    let bytes: Vec<u8> = (0..count)
        .flat_map(|i| (0x1000 + i as u32).to_le_bytes())
        .collect();
    ports.set_out_of_line(Ool {
        address: fake::map(&bytes),
        count: count as u32,
    });
}

impl Serve for Pager {
    fn serve(&mut self, request: &[u8], reply: &mut [u8]) -> Served {
        pager::default_pager_server(self, request, reply)
    }
}

/// A kernel that serves nothing of `mach` and `mach_port` (every routine marked
/// unimplemented) but translates every port to an object: for checks that no request bytes
/// make a kernel demux function panic.
#[derive(Default)]
pub struct KNothing;

impl crate::mach_server::MachServer for KNothing {
    type Task = u64;
    type Thread = u64;
    type VmMap = u64;
    type VmObject = u64;
    type Host = u64;

    fn convert_port_to_task(&mut self, port: PortSlot, _: i32) -> Result<u64, KernReturn> {
        Ok(port.0)
    }
    fn task_deallocate(&mut self, _: u64) {}
    fn convert_task_to_port(&mut self, task: u64) -> PortSlot {
        PortSlot(task)
    }
    fn convert_port_to_thread(&mut self, port: PortSlot, _: i32) -> Result<u64, KernReturn> {
        Ok(port.0)
    }
    fn thread_deallocate(&mut self, _: u64) {}
    fn convert_port_to_map(&mut self, port: PortSlot, _: i32) -> Result<u64, KernReturn> {
        Ok(port.0)
    }
    fn vm_map_deallocate(&mut self, _: u64) {}
    fn vm_object_lookup(&mut self, port: PortSlot, _: i32) -> Result<u64, KernReturn> {
        Ok(port.0)
    }
    fn convert_port_to_host_priv(&mut self, port: PortSlot, _: i32) -> Result<u64, KernReturn> {
        Ok(port.0)
    }
    fn convert_thread_to_port(&mut self, thread: u64) -> PortSlot {
        PortSlot(thread)
    }

    crate::mach_server::mach_unimplemented!(
        crate::mach_server;
        task_create, task_terminate, task_get_emulation_vector, task_set_emulation_vector,
        task_threads, task_info, thread_terminate, thread_get_state, thread_set_state,
        thread_info, vm_allocate, vm_deallocate, vm_protect, vm_inherit, vm_read, vm_write,
        vm_copy, vm_region, vm_statistics, mach_ports_register, mach_ports_lookup,
        memory_object_data_unavailable, memory_object_get_attributes,
        vm_set_default_memory_manager, memory_object_lock_request, task_suspend, task_resume,
        task_get_special_port, task_set_special_port, thread_create, thread_suspend,
        thread_resume, thread_abort, thread_get_special_port, thread_set_special_port,
        task_set_emulation, task_ras_control, vm_map, memory_object_data_error,
        memory_object_destroy, memory_object_data_supply, memory_object_ready,
        memory_object_change_attributes, vm_machine_attribute,
    );
}

impl crate::mach_port_server::MachPortServer for KNothing {
    type IpcSpace = u64;
    type Host = u64;

    fn convert_port_to_space(&mut self, port: PortSlot, _: i32) -> Result<u64, KernReturn> {
        Ok(port.0)
    }
    fn space_deallocate(&mut self, _: u64) {}
    fn convert_port_to_host_priv(&mut self, port: PortSlot, _: i32) -> Result<u64, KernReturn> {
        Ok(port.0)
    }
    fn release_send(&mut self, _: PortSlot) {}

    crate::mach_port_server::mach_port_unimplemented!(
        crate::mach_port_server;
        mach_port_names, mach_port_type, mach_port_rename, mach_port_allocate_name,
        mach_port_allocate, mach_port_destroy, mach_port_deallocate, mach_port_get_refs,
        mach_port_mod_refs, mach_port_set_qlimit, mach_port_set_mscount,
        mach_port_get_set_status, mach_port_move_member, mach_port_request_notification,
        mach_port_insert_right, mach_port_extract_right, mach_port_get_receive_status,
        mach_port_set_seqno, mach_port_set_protected_payload,
        mach_port_clear_protected_payload, mach_port_set_ktype,
    );
}
