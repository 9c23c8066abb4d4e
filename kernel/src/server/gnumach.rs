//! `gnumach.defs` (4200), GNU Mach's own additions, as far as armach serves them: names
//! for the kernel's reports (`task_set_name`, `thread_set_name`, `thread_get_name`),
//! gsync, futex-like waits on words of user memory (`gsync_wait`, `gsync_wake`,
//! `gsync_requeue`), wiring a whole address space (`vm_wire_all`) and the limits on its
//! size (`vm_set_size_limit`, `vm_get_size_limit`), with GNU Mach's checks in its order
//! (`vm/vm_user.c`); the VM mechanism is `mm::vm`'s. The rules and the mechanism of gsync are `kern::gsync`'s, reached
//! through [`TaskIpc`]; names are kept by the objects (`kern::name`). The other routines of
//! the subsystem are `skip`s in the `.defs` file and answer `MIG_BAD_ID`.
//!
//! `gsync_wait` must block, which a server call never does: the routine asserts the
//! caller's wait and asks its caller to block ([`After::Block`]), which
//! `server::kernel_server` does once the reply is made, writing the wait's outcome into it.

extern crate alloc;

use super::generated::gnumach::{self, GnumachServer};
use super::objects::{After, Kernel, TaskIpc, ThreadIpc};
use alloc::sync::Arc;
use core::ffi::CStr;
use mach_abi::KernReturn;
use mach_abi::mig::{CStrBuf, PortSlot};

impl<T: TaskIpc> GnumachServer for Kernel<'_, T> {
    type Task = Arc<T>;
    type Thread = Arc<T::Thread>;
    /// `None` for a port that is no task: the routines check their host port or their
    /// arguments first (GNU Mach's order), then answer `KERN_INVALID_TASK`.
    type VmMap = Option<Arc<T>>;

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

    fn release_send(&mut self, port: PortSlot) {
        drop(self.slots.take(port));
    }

    fn vm_wire_all(
        &mut self,
        host: PortSlot,
        task: &Option<Arc<T>>,
        flags: i32,
    ) -> Result<(), KernReturn> {
        // Only the host-privileged port (GNU Mach `vm_wire_all`), then the task, then
        // the flags.
        if self.host_priv(host, gnumach::VM_WIRE_ALL_ID).is_err() {
            return Err(KernReturn::InvalidHost);
        }
        let task = task.as_ref().ok_or(KernReturn::InvalidTask)?;
        let flags = u32::try_from(flags).map_err(|_| KernReturn::InvalidArgument)?;
        task.wire_all(flags)
    }

    fn vm_set_size_limit(
        &mut self,
        host_port: PortSlot,
        map: &Option<Arc<T>>,
        current_limit: u64,
        max_limit: u64,
    ) -> Result<(), KernReturn> {
        if current_limit > max_limit {
            return Err(KernReturn::InvalidArgument);
        }
        let map = map.as_ref().ok_or(KernReturn::InvalidTask)?;
        let id = gnumach::VM_SET_SIZE_LIMIT_ID;
        let privileged = if self.host_priv(host_port, id).is_ok() {
            true
        } else if self.host(host_port, id).is_ok() {
            false
        } else {
            return Err(KernReturn::InvalidHost);
        };
        map.set_size_limits(current_limit, max_limit, privileged)
    }

    fn vm_get_size_limit(
        &mut self,
        map: &Option<Arc<T>>,
    ) -> Result<gnumach::VmGetSizeLimitOut, KernReturn> {
        let map = map.as_ref().ok_or(KernReturn::InvalidTask)?;
        let (current_limit, max_limit) = map.size_limits()?;
        Ok(gnumach::VmGetSizeLimitOut {
            current_limit,
            max_limit,
        })
    }

    fn convert_port_to_task(&mut self, port: PortSlot, _: i32) -> Result<Arc<T>, KernReturn> {
        self.task(port)
    }

    fn task_deallocate(&mut self, task: Arc<T>) {
        drop(task);
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

    fn task_set_name(&mut self, task: &Arc<T>, name: &CStr) -> Result<(), KernReturn> {
        task.set_name(name.to_bytes());
        Ok(())
    }

    fn gsync_wait(
        &mut self,
        task: &Arc<T>,
        addr: u64,
        val1: u32,
        val2: u32,
        msec: u32,
        flags: i32,
    ) -> Result<(), KernReturn> {
        task.gsync_wait(addr, val1, val2, msec, flags)?;
        self.after = After::Block;
        Ok(())
    }

    fn gsync_wake(
        &mut self,
        task: &Arc<T>,
        addr: u64,
        val: u32,
        flags: i32,
    ) -> Result<(), KernReturn> {
        task.gsync_wake(addr, val, flags)
    }

    fn gsync_requeue(
        &mut self,
        task: &Arc<T>,
        src_addr: u64,
        dst_addr: u64,
        wake_one: bool,
        flags: i32,
    ) -> Result<(), KernReturn> {
        task.gsync_requeue(src_addr, dst_addr, wake_one, flags)
    }

    fn thread_set_name(&mut self, thread: &Arc<T::Thread>, name: &CStr) -> Result<(), KernReturn> {
        thread.set_name(name.to_bytes());
        Ok(())
    }

    fn thread_get_name(
        &mut self,
        thread: &Arc<T::Thread>,
    ) -> Result<gnumach::ThreadGetNameOut, KernReturn> {
        let name = thread.name();
        Ok(gnumach::ThreadGetNameOut {
            name: CStrBuf::from_bytes(crate::kern::name::trimmed(&name))?,
        })
    }
}
