//! `device.defs` (2800) as armach serves it, on the devices of `kern::device`:
//! `device_open` on the device master port, `device_close`, `device_write_inband` and
//! `device_read_inband` (the console), `device_map` (mapped time). The routines GNU Mach
//! has and armach does not serve (`device_write`, `device_read` out of line, the status
//! calls) answer `MIG_BAD_ID`.
//!
//! Errors are GNU Mach's (`ds_routines.c`): a request port that is no device (null, dead,
//! another object's) is `D_NO_SUCH_DEVICE`; `device_open` sent to anything but the master
//! device port is `D_INVALID_OPERATION`, an unknown name `D_NO_SUCH_DEVICE`; an operation a
//! device lacks is `D_INVALID_OPERATION`; a read of more than `IO_INBAND_MAX` bytes gets
//! at most that many, a negative count `D_INVALID_SIZE`.
//!
//! A read never blocks here (a server call never does, `kobject`): with nothing buffered
//! it answers `D_WOULD_BLOCK`. `server::kernel_server` waits beforehand, interruptibly,
//! until the console has input, unless the mode says `D_NOWAIT`.

extern crate alloc;

use super::generated::device::{self, DeviceServer};
use super::objects::{Kernel, TaskIpc};
use crate::ipc::KObjectKind;
use crate::kern::device::{Device, lookup};
use alloc::sync::Arc;
use core::ffi::CStr;
use mach_abi::KernReturn;
use mach_abi::device::{
    D_INVALID_OPERATION, D_INVALID_SIZE, D_NO_SUCH_DEVICE, D_READ_ONLY, D_WOULD_BLOCK,
    IO_INBAND_MAX,
};
use mach_abi::mig::{ArrayOut, ArrayRef, PortSlot};

/// `VM_PROT_WRITE`, and every protection bit.
const VM_PROT_WRITE: i32 = 2;
const VM_PROT_ALL: i32 = 7;

/// How many bytes a read of `wanted` may return (`D_INVALID_SIZE` for a negative count).
pub fn read_len(wanted: i32) -> Result<usize, KernReturn> {
    usize::try_from(wanted)
        .map(|n| n.min(IO_INBAND_MAX))
        .map_err(|_| D_INVALID_SIZE)
}

impl<T: TaskIpc> DeviceServer for Kernel<'_, T> {
    type Device = Arc<Device>;

    fn dev_port_lookup(&mut self, port: PortSlot, _: i32) -> Result<Arc<Device>, KernReturn> {
        self.slots
            .kobject(port)
            .and_then(|k| k.get::<Device>(KObjectKind::Device))
            .ok_or(D_NO_SUCH_DEVICE)
    }

    fn convert_device_to_port(&mut self, device: Arc<Device>) -> PortSlot {
        self.send_right(device.port())
    }

    fn device_deallocate(&mut self, device: Arc<Device>) {
        drop(device);
    }

    fn device_open(
        &mut self,
        master_port: PortSlot,
        _mode: u32,
        name: &CStr,
    ) -> Result<device::DeviceOpenOut<Arc<Device>>, KernReturn> {
        let master = self
            .slots
            .kobject(master_port)
            .is_some_and(|k| k.kind() == KObjectKind::MasterDevice);
        if !master {
            return Err(D_INVALID_OPERATION);
        }
        let device = lookup(name.to_bytes()).ok_or(D_NO_SUCH_DEVICE)?;
        device.open();
        Ok(device::DeviceOpenOut { device })
    }

    fn device_close(&mut self, device: &Arc<Device>) -> Result<(), KernReturn> {
        device.close();
        Ok(())
    }

    fn device_write_inband(
        &mut self,
        device: &Arc<Device>,
        _mode: u32,
        _recnum: u64,
        data: ArrayRef<'_, u8>,
    ) -> Result<device::DeviceWriteInbandOut, KernReturn> {
        let mut bytes = [0u8; IO_INBAND_MAX];
        let mut n = 0;
        for (slot, b) in bytes.iter_mut().zip(data.iter()) {
            *slot = b;
            n += 1;
        }
        let written = device.ops.write(&bytes[..n])?;
        Ok(device::DeviceWriteInbandOut {
            bytes_written: written as i32,
        })
    }

    fn device_read_inband(
        &mut self,
        device: &Arc<Device>,
        _mode: u32,
        _recnum: u64,
        bytes_wanted: i32,
        data: &mut ArrayOut<'_, u8>,
    ) -> Result<(), KernReturn> {
        let want = read_len(bytes_wanted)?;
        let mut bytes = [0u8; IO_INBAND_MAX];
        let n = device.ops.read(&mut bytes[..want])?;
        if n == 0 && want > 0 {
            return Err(D_WOULD_BLOCK);
        }
        for &b in &bytes[..n] {
            data.push(b)?;
        }
        Ok(())
    }

    fn device_map(
        &mut self,
        device: &Arc<Device>,
        prot: i32,
        offset: u64,
        size: u64,
        _unmap: i32,
    ) -> Result<device::DeviceMapOut, KernReturn> {
        if prot & !VM_PROT_ALL != 0 {
            return Err(KernReturn::InvalidArgument);
        }
        let pager = device.pager().ok_or(D_INVALID_OPERATION)?;
        if prot & VM_PROT_WRITE != 0 {
            return Err(D_READ_ONLY);
        }
        let memory = device.ops.memory().ok_or(D_INVALID_OPERATION)?;
        if memory.frames_at(offset, size.max(1)).is_none() {
            return Err(D_INVALID_SIZE);
        }
        Ok(device::DeviceMapOut {
            pager: self.send_right(Some(pager)),
        })
    }

    /// `DEV_GET_SIZE` only (GNU Mach's block devices): the size in bytes and the record
    /// size (1: the RAM disk is read by mapping, byte by byte). A device without a size, a
    /// short count or another flavor: `D_INVALID_OPERATION`, as GNU Mach's drivers answer.
    fn device_get_status(
        &mut self,
        device: &Arc<Device>,
        flavor: u32,
        status: &mut ArrayOut<'_, i32>,
    ) -> Result<(), KernReturn> {
        use mach_abi::device::{DEV_GET_SIZE, DEV_GET_SIZE_COUNT};
        let size = device.ops.size().ok_or(D_INVALID_OPERATION)?;
        if flavor != DEV_GET_SIZE || status.capacity() < DEV_GET_SIZE_COUNT {
            return Err(D_INVALID_OPERATION);
        }
        // dev_status_t holds ints: a device of 2 GiB or more cannot say its size.
        let size = i32::try_from(size).map_err(|_| D_INVALID_OPERATION)?;
        status.push(size)?;
        status.push(1)?;
        Ok(())
    }

    device::device_unimplemented!(crate::server::generated::device;
        device_write, device_read, device_set_status);
}
