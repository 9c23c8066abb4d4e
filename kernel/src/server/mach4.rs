//! `mach4.defs` (4000) as far as armach serves it: `vm_region_create_proxy` (GNU Mach
//! `vm/vm_map.c` and `vm/memory_object_proxy.c`), which makes a task's region shared
//! memory (`mm::object`) and answers a port standing for it, a proxy that `vm_map` maps
//! (`server::mach`). The proxy is freed with its port, when the last send right to it is
//! gone (GNU Mach frees it at its no-senders notification). The other routines are
//! `skip`s in the `.defs` file and answer `MIG_BAD_ID`.

extern crate alloc;

use super::generated::mach4::{self, Mach4Server};
use super::objects::{Kernel, TaskIpc};
use crate::ipc::{KObject, KObjectKind, MsgPort, Port};
use crate::mm::object::Proxy;
use alloc::sync::Arc;
use mach_abi::KernReturn;
use mach_abi::mig::PortSlot;

impl<T: TaskIpc> Mach4Server for Kernel<'_, T> {
    type Task = Arc<T>;

    fn convert_port_to_task(&mut self, port: PortSlot, _: i32) -> Result<Arc<T>, KernReturn> {
        self.task(port)
    }

    fn task_deallocate(&mut self, task: Arc<T>) {
        drop(task);
    }

    fn vm_region_create_proxy(
        &mut self,
        task: &Arc<T>,
        address: u64,
        max_protection: i32,
        len: u64,
    ) -> Result<mach4::VmRegionCreateProxyOut, KernReturn> {
        let proxy: Proxy = task.region_proxy(address, max_protection as u32, len)?;
        // GNU Mach `memory_object_create_proxy`'s check of the range.
        if proxy.start.checked_add(len).is_none() {
            return Err(KernReturn::InvalidArgument);
        }
        let space = task.ipc_space().ok_or(KernReturn::InvalidArgument)?;
        let proxy = Arc::new(proxy);
        let port = Port::alloc_kernel(
            space.ledger(),
            Some(KObject::new(KObjectKind::PagerProxy, proxy)),
        )
        .map_err(|_| KernReturn::ResourceShortage)?;
        let right = port.make_send().ok_or(KernReturn::ResourceShortage)?;
        Ok(mach4::VmRegionCreateProxyOut {
            proxy: self.put(MsgPort::Right(right)),
        })
    }
}
