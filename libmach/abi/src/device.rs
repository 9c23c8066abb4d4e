//! Numbers and layouts of the device interface (`device.defs`, 2800) as GNU Mach defines
//! them (`device/device_types.h`, `mach/time_value.h`): open modes, the device return
//! codes, the in-line buffer size, and the mapped-time page's layout.

use crate::KernReturn;

/// Open, read and write modes (`dev_mode_t`).
pub const D_READ: u32 = 0x1;
pub const D_WRITE: u32 = 0x2;
/// Do not wait for the device on open.
pub const D_NODELAY: u32 = 0x4;
/// A read with nothing to return answers `D_WOULD_BLOCK` instead of waiting.
pub const D_NOWAIT: u32 = 0x8;

/// Device return codes (`io_return_t`).
pub const D_SUCCESS: KernReturn = KernReturn::Success;
pub const D_IO_ERROR: KernReturn = KernReturn::DIoError;
pub const D_WOULD_BLOCK: KernReturn = KernReturn::DWouldBlock;
pub const D_NO_SUCH_DEVICE: KernReturn = KernReturn::DNoSuchDevice;
pub const D_ALREADY_OPEN: KernReturn = KernReturn::DAlreadyOpen;
pub const D_DEVICE_DOWN: KernReturn = KernReturn::DDeviceDown;
pub const D_INVALID_OPERATION: KernReturn = KernReturn::DInvalidOperation;
pub const D_INVALID_RECNUM: KernReturn = KernReturn::DInvalidRecnum;
pub const D_INVALID_SIZE: KernReturn = KernReturn::DInvalidSize;
pub const D_NO_MEMORY: KernReturn = KernReturn::DNoMemory;
pub const D_READ_ONLY: KernReturn = KernReturn::DReadOnly;

/// Bytes `device_read_inband` and `device_write_inband` carry at most (`IO_INBAND_MAX`).
pub const IO_INBAND_MAX: usize = 128;
/// A device name's bytes at most, NUL included (`dev_name_t`).
pub const DEV_NAME_MAX: usize = 128;

/// `device_get_status` flavor: the device's size (`DEV_GET_SIZE_COUNT` ints: the size in
/// bytes at `DEV_GET_SIZE_DEVICE_SIZE`, the record size at `DEV_GET_SIZE_RECORD_SIZE`).
pub const DEV_GET_SIZE: u32 = 0;
pub const DEV_GET_SIZE_DEVICE_SIZE: usize = 0;
pub const DEV_GET_SIZE_RECORD_SIZE: usize = 1;
pub const DEV_GET_SIZE_COUNT: usize = 2;

/// The mapped-time page's value (`mapped_time_value_t`), at offset 0 of the page the
/// "time" device maps. The kernel writes `check_seconds` first, then `microseconds`, then
/// `seconds`; a reader reads `seconds`, then `microseconds`, then `check_seconds`, and
/// retries while the two seconds differ.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MappedTimeValue {
    pub seconds: i32,
    pub microseconds: i32,
    pub check_seconds: i32,
}

/// Message ids of the routines (base 2800 + position, skips counted).
pub mod ids {
    pub const DEVICE_OPEN: i32 = 2800;
    pub const DEVICE_CLOSE: i32 = 2801;
    pub const DEVICE_WRITE: i32 = 2802;
    pub const DEVICE_WRITE_INBAND: i32 = 2803;
    pub const DEVICE_READ: i32 = 2804;
    pub const DEVICE_READ_INBAND: i32 = 2805;
    pub const DEVICE_MAP: i32 = 2809;
    pub const DEVICE_SET_STATUS: i32 = 2810;
    pub const DEVICE_GET_STATUS: i32 = 2811;
}
