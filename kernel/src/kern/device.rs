//! The devices a task opens through the device master port (GNU Mach `device/ds_routines.c`
//! and its console and mapped-time drivers): each device is a kernel object with one port,
//! made at boot and kept for good, found by name (`lookup`). What a device does is behind
//! [`DeviceOps`]: the console writes to the UART and reads the bytes its receive interrupt
//! put in an [`InputRing`]; "time" offers one page of [`MappedTimeValue`] to `vm_map`;
//! "ramdisk" offers the initial RAM disk, read-only, to `vm_map` and tells its size
//! (`device_get_status(DEV_GET_SIZE)`), so that the bootstrap task reads its programs
//! from user space.
//!
//! This file holds the rules, in plain Rust tested on the host: the input ring, the
//! mapped-time arithmetic, the registry. The hardware side (interrupt handler, the time
//! page's frame, the tick's update) is `hw`, for the kernel only; the `device.defs`
//! routines are `server::device`'s.

extern crate alloc;

use crate::ipc::{KObject, KObjectKind, Ledger, Port, ledger::Unmetered};
use crate::mm::PhysAddr;
use alloc::sync::Arc;
use arrayvec::ArrayVec;
use core::sync::atomic::{AtomicU32, Ordering};
use mach_abi::KernReturn;
use mach_abi::device::{D_INVALID_OPERATION, MappedTimeValue};
use spin::Once;

/// Bytes of console input kept until read (GNU Mach's console keeps a tty input queue).
pub const INPUT_SIZE: usize = 256;

/// Console input between the receive interrupt and a reader: a ring of bytes. Bytes that
/// arrive when it is full are dropped (and counted), as a UART drops them on overrun.
pub struct InputRing {
    buf: [u8; INPUT_SIZE],
    head: usize,
    len: usize,
    pub dropped: u64,
}

impl InputRing {
    pub const fn new() -> Self {
        InputRing {
            buf: [0; INPUT_SIZE],
            head: 0,
            len: 0,
            dropped: 0,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn len(&self) -> usize {
        self.len
    }

    /// Keep `byte`; false (and counted) if the ring is full.
    pub fn push(&mut self, byte: u8) -> bool {
        if self.len == INPUT_SIZE {
            self.dropped += 1;
            return false;
        }
        self.buf[(self.head + self.len) % INPUT_SIZE] = byte;
        self.len += 1;
        true
    }

    /// Move the oldest bytes into `out`, as many as there are and fit; how many.
    pub fn take(&mut self, out: &mut [u8]) -> usize {
        let n = out.len().min(self.len);
        for b in out.iter_mut().take(n) {
            *b = self.buf[self.head];
            self.head = (self.head + 1) % INPUT_SIZE;
        }
        self.len -= n;
        n
    }
}

impl Default for InputRing {
    fn default() -> Self {
        Self::new()
    }
}

/// The mapped-time value for `ns` nanoseconds since boot.
pub fn mapped_time(ns: u64) -> MappedTimeValue {
    let seconds = (ns / 1_000_000_000).min(i32::MAX as u64) as i32;
    MappedTimeValue {
        seconds,
        microseconds: ((ns % 1_000_000_000) / 1000) as i32,
        check_seconds: seconds,
    }
}

/// What a device does. Every operation a device does not have is `D_INVALID_OPERATION`
/// (GNU Mach's answer for a missing `d_read`, `d_write` or `d_mmap`).
pub trait DeviceOps: Send + Sync {
    /// Write `data` (`device_write_inband`); the count written.
    fn write(&self, _data: &[u8]) -> Result<usize, KernReturn> {
        Err(D_INVALID_OPERATION)
    }
    /// Take what input is buffered into `out`, without waiting; the count (0: none).
    fn read(&self, _out: &mut [u8]) -> Result<usize, KernReturn> {
        Err(D_INVALID_OPERATION)
    }
    /// Whether a read would find something now.
    fn readable(&self) -> bool {
        false
    }
    /// The physically contiguous memory `device_map` offers, read-only (`None`: the
    /// device cannot be mapped).
    fn memory(&self) -> Option<DeviceMemory> {
        None
    }
    /// The device's size in bytes, for `device_get_status(DEV_GET_SIZE)` (`None`: the
    /// device has no size, `D_INVALID_OPERATION`).
    fn size(&self) -> Option<u64> {
        None
    }
}

/// Memory a device lends to `vm_map`: `pages()` whole frames from `base` (page-aligned),
/// of which the first `size` bytes are the device's. The frames are the kernel's for good
/// (never on the frame allocator's lists), so mapping them read-only into any task is safe.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DeviceMemory {
    pub base: PhysAddr,
    pub size: u64,
}

impl DeviceMemory {
    /// The whole pages it spans.
    pub fn pages(&self) -> u64 {
        self.size.div_ceil(mach_abi::traps::PAGE_SIZE)
    }

    /// The first frame of the `size` bytes at `offset` that `vm_map` asks for, when the
    /// offset is page-aligned and the pages are all the device's; else `None`.
    pub fn frames_at(&self, offset: u64, size: u64) -> Option<PhysAddr> {
        let page = mach_abi::traps::PAGE_SIZE;
        let pages = size.checked_add(page - 1)? / page;
        let first = offset.is_multiple_of(page).then_some(offset / page)?;
        (size != 0 && first.checked_add(pages)? <= self.pages())
            .then(|| PhysAddr(self.base.0 + offset))
    }
}

/// One device: its name, what it does, its port (`KObjectKind::Device`), the memory object
/// port `device_map` returns for it (`KObjectKind::Pager`), and how many opens are not
/// closed yet.
pub struct Device {
    pub name: &'static str,
    pub ops: &'static dyn DeviceOps,
    port: Once<Arc<Port>>,
    pager: Once<Option<Arc<Port>>>,
    opens: AtomicU32,
}

impl Device {
    /// The device's port (made with the device, so always there).
    pub fn port(&self) -> Option<&Arc<Port>> {
        self.port.get()
    }

    /// Its memory object's port, if it can be mapped.
    pub fn pager(&self) -> Option<&Arc<Port>> {
        self.pager.get().and_then(Option::as_ref)
    }

    /// One more open (`device_open`).
    pub fn open(&self) {
        self.opens.fetch_add(1, Ordering::Relaxed);
    }

    /// One open fewer (`device_close`); closing what is not open changes nothing (GNU
    /// Mach's `ds_device_close` answers success for a device in any state).
    pub fn close(&self) {
        let _ = self
            .opens
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1));
    }

    pub fn opens(&self) -> u32 {
        self.opens.load(Ordering::Relaxed)
    }
}

/// Devices there can be.
pub const MAX_DEVICES: usize = 4;

static DEVICES: Once<ArrayVec<Arc<Device>, MAX_DEVICES>> = Once::new();

/// Make the devices (once, at boot, before the first task: their ports are never
/// destroyed and are charged to nobody, like the host ports). A device whose port cannot
/// be made is left out.
pub fn register(devices: &[(&'static str, &'static dyn DeviceOps)]) {
    DEVICES.call_once(|| {
        let ledger: Arc<dyn Ledger> = Arc::new(Unmetered);
        let mut made = ArrayVec::new();
        for &(name, ops) in devices.iter().take(MAX_DEVICES) {
            let device = Arc::new(Device {
                name,
                ops,
                port: Once::new(),
                pager: Once::new(),
                opens: AtomicU32::new(0),
            });
            let Ok(port) = Port::alloc_kernel(
                &ledger,
                Some(KObject::new(KObjectKind::Device, device.clone())),
            ) else {
                continue;
            };
            device.port.call_once(|| port);
            let pager = ops.memory().and_then(|_| {
                Port::alloc_kernel(
                    &ledger,
                    Some(KObject::new(KObjectKind::Pager, device.clone())),
                )
                .ok()
            });
            device.pager.call_once(|| pager);
            made.push(device);
        }
        made
    });
}

/// The device called `name` (`device_open`'s lookup), if there is one.
pub fn lookup(name: &[u8]) -> Option<Arc<Device>> {
    DEVICES
        .get()?
        .iter()
        .find(|d| d.name.as_bytes() == name)
        .cloned()
}

#[cfg(target_os = "none")]
pub use hw::{init, tick};

/// The kernel's devices: the console (`kern::console::ConsoleDevice`), the mapped-time
/// page (one zeroed frame taken at boot that the boot CPU rewrites every tick) and the
/// initial RAM disk.
#[cfg(target_os = "none")]
mod hw {
    use super::*;
    use crate::mm::{PAGE_SIZE, frame};
    use core::sync::atomic::{AtomicU64, fence};

    /// The mapped-time frame (0: none, when no frame could be had).
    static TIME_FRAME: AtomicU64 = AtomicU64::new(0);

    struct TimeDevice;

    impl DeviceOps for TimeDevice {
        fn memory(&self) -> Option<DeviceMemory> {
            Some(PhysAddr(TIME_FRAME.load(Ordering::Acquire)))
                .filter(|f| f.0 != 0)
                .map(|base| DeviceMemory {
                    base,
                    size: PAGE_SIZE,
                })
        }
    }

    /// The initial RAM disk (0 bytes: none, or not page-aligned).
    static RAMDISK_BASE: AtomicU64 = AtomicU64::new(0);
    static RAMDISK_SIZE: AtomicU64 = AtomicU64::new(0);

    struct RamDisk;

    impl DeviceOps for RamDisk {
        fn memory(&self) -> Option<DeviceMemory> {
            Some(DeviceMemory {
                base: PhysAddr(RAMDISK_BASE.load(Ordering::Acquire)),
                size: RAMDISK_SIZE.load(Ordering::Acquire),
            })
            .filter(|m| m.size != 0)
        }
        fn size(&self) -> Option<u64> {
            self.memory().map(|m| m.size)
        }
    }

    static CONSOLE: crate::kern::console::ConsoleDevice = crate::kern::console::ConsoleDevice;
    static TIME: TimeDevice = TimeDevice;
    static RAMDISK: RamDisk = RamDisk;

    /// Make the devices (boot, before the first task). `initrd` is the initial RAM disk:
    /// the frame allocator left its pages out and nothing writes them, so they can be
    /// lent read-only; one that does not start on a page boundary would lend the bytes
    /// before it too, and is not offered.
    pub fn init(initrd: Option<crate::devtree::PhysRange>) {
        if let Some(frame) = frame::alloc_zeroed(1) {
            TIME_FRAME.store(frame.0, Ordering::Release);
        }
        match initrd {
            Some(r) if r.base.is_multiple_of(PAGE_SIZE) => {
                RAMDISK_BASE.store(r.base, Ordering::Release);
                RAMDISK_SIZE.store(r.size, Ordering::Release);
            }
            Some(r) => log::warn!(
                "initrd at {:#x} is not page-aligned: no \"ramdisk\" device",
                r.base
            ),
            None => {}
        }
        register(&[
            ("console", &CONSOLE),
            ("time", &TIME),
            ("ramdisk", &RAMDISK),
        ]);
        tick();
    }

    /// Write the time since boot into the mapped-time page (the boot CPU's tick):
    /// `check_seconds`, then `microseconds`, then `seconds`, each store ordered before the
    /// next, so that a reader that sees the same seconds in both places read a consistent
    /// value (GNU Mach's protocol; `mach/time_value.h`).
    pub fn tick() {
        let frame = TIME_FRAME.load(Ordering::Acquire);
        if frame == 0 {
            return;
        }
        let now = mapped_time(crate::kern::sched::ticks_to_ns(
            crate::arch::timer::counter(),
        ));
        let page = PhysAddr(frame).to_linear().as_mut_ptr::<i32>();
        const _: () = assert!(core::mem::size_of::<MappedTimeValue>() <= PAGE_SIZE as usize);
        // SAFETY: the frame is the kernel's for good, mapped in the linear map; only the
        // boot CPU's tick writes it (users map it read-only); the fields are i32s at
        // offsets 0, 4 and 8 (`MappedTimeValue` is `repr(C)`).
        unsafe {
            page.add(2).write_volatile(now.check_seconds);
            fence(Ordering::Release);
            page.add(1).write_volatile(now.microseconds);
            fence(Ordering::Release);
            page.write_volatile(now.seconds);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ring_keeps_order_and_drops_when_full() {
        let mut r = InputRing::new();
        assert!(r.is_empty());
        for i in 0..INPUT_SIZE {
            assert!(r.push(i as u8));
        }
        assert!(!r.push(0xff));
        assert_eq!(r.dropped, 1);
        let mut out = [0u8; 10];
        assert_eq!(r.take(&mut out), 10);
        assert_eq!(out, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
        assert!(r.push(b'x'));
        let mut rest = [0u8; INPUT_SIZE];
        assert_eq!(r.take(&mut rest), INPUT_SIZE - 9);
        assert_eq!(rest[0], 10);
        assert_eq!(rest[INPUT_SIZE - 10], b'x');
        assert!(r.is_empty());
        assert_eq!(r.take(&mut out), 0);
    }

    #[test]
    fn device_memory_lends_whole_pages_within_the_device() {
        let m = DeviceMemory {
            base: PhysAddr(0x4800_0000),
            size: 3 * 4096 + 10,
        };
        assert_eq!(m.pages(), 4);
        assert_eq!(m.frames_at(0, 4 * 4096), Some(PhysAddr(0x4800_0000)));
        assert_eq!(m.frames_at(4096, 1), Some(PhysAddr(0x4800_1000)));
        assert_eq!(m.frames_at(3 * 4096, 4096), Some(PhysAddr(0x4800_3000)));
        assert_eq!(m.frames_at(0, 4 * 4096 + 1), None);
        assert_eq!(m.frames_at(4096, 4 * 4096), None);
        assert_eq!(m.frames_at(100, 4096), None);
        assert_eq!(m.frames_at(0, 0), None);
        assert_eq!(m.frames_at(!4095, 4096), None);
        assert_eq!(m.frames_at(0, u64::MAX), None);
    }

    #[test]
    fn mapped_time_splits_nanoseconds() {
        let t = mapped_time(3_123_456_789);
        assert_eq!(t.seconds, 3);
        assert_eq!(t.microseconds, 123_456);
        assert_eq!(t.check_seconds, 3);
        assert_eq!(mapped_time(0), MappedTimeValue::default());
        assert_eq!(mapped_time(u64::MAX).seconds, i32::MAX);
    }
}
