//! `gnumach.defs` (4200), GNU Mach's own additions, as far as armach serves them: names
//! for the kernel's reports (`task_set_name`, `thread_set_name`, `thread_get_name`) and
//! gsync, futex-like waits on words of user memory (`gsync_wait`, `gsync_wake`,
//! `gsync_requeue`). The rules and the mechanism of gsync are `kern::gsync`'s, reached
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
