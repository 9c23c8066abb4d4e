//! `device`: the device interface (`device.defs`, 2800) on the device master port the
//! program gets as `argv[2]`:
//!
//! - `device_open` of "console" and "time" on the master port; an unknown or empty name is
//!   `D_NO_SUCH_DEVICE`; any other port is `D_INVALID_OPERATION`; a null port or a dead
//!   name never reaches a server (`MACH_SEND_INVALID_DEST`); `device_close` (more closes
//!   than opens too); a request to a port that is no device is `D_NO_SUCH_DEVICE`;
//! - "console": `device_write_inband` writes the bytes (the harness finds the line on the
//!   console); `device_read_inband` blocks a reader with nothing buffered until the UART's
//!   receive interrupt brings input, then returns what is there (1 to `bytes_wanted`
//!   bytes). The harness types [`INPUT`] into QEMU's serial port once it sees
//!   [`PROMPT`] on the console: the reader is then known to be blocked (its run state).
//!   Afterwards `D_NOWAIT` with nothing buffered is `D_WOULD_BLOCK`, a negative count
//!   `D_INVALID_SIZE`, and `thread_abort` ends a blocked read with `D_WOULD_BLOCK`;
//! - "time": `device_map` gives a memory object (write access: `D_READ_ONLY`; the console
//!   cannot be mapped: `D_INVALID_OPERATION`); `vm_map` of it maps a read-only page of
//!   `mapped_time_value_t` that advances, never ahead of `host_get_time`; `vm_map`'s
//!   refusals (write access, offset, size, protection and inheritance values, a port that
//!   is no memory object); unmapped and mapped again, the page still advances;
//! - "ramdisk": `device_get_status(DEV_GET_SIZE)` gives its size (record size 1; a short
//!   count, another flavor or a device without a size: `D_INVALID_OPERATION`);
//!   `device_map` of it (not for writing, not past its last page) and `vm_map` of the
//!   object map it read-only: a cpio `newc` archive holding this very program, the same
//!   bytes whole or from a page-aligned offset; past its pages `vm_map` refuses;
//! - anonymous `vm_map` (null memory object) honours `mask`.

#![no_std]
#![no_main]

extern crate alloc;

use alloc::vec::Vec;
use armach_tests::{Checks, poll_sleeping};
use core::ffi::CStr;
use core::mem::ManuallyDrop;
use core::sync::atomic::{Ordering, fence};
use libmach::abi::device::{
    D_INVALID_OPERATION, D_INVALID_SIZE, D_NO_SUCH_DEVICE, D_NOWAIT, D_READ, D_READ_ONLY,
    D_WOULD_BLOCK, D_WRITE, IO_INBAND_MAX, MappedTimeValue,
};
use libmach::abi::info::TH_STATE_WAITING;
use libmach::abi::message::MACH_MSG_TYPE_MAKE_SEND;
use libmach::abi::mig::PortRight;
use libmach::abi::traps::PAGE_SIZE;
use libmach::ipc::{self, SendRight};
use libmach::mig::{device, mach, mach_host, mach_port};
use libmach::{Args, KernReturn, PortName, kern, thread, traps};

libmach::main!(main);

/// What the harness types once it sees [`PROMPT`] (`tools/xtask`'s `DEVICE_INPUT`).
const INPUT: &[u8] = b"armach console input: 42 keys\n";
/// Printed when a reader is blocked waiting for console input.
const PROMPT: &str = "device: waiting for console input";
/// Printed through `device_write_inband`; the harness looks for it on the console.
const WRITTEN: &[u8] = b"device: written with device_write_inband\n";
/// How long to wait for another thread or the clock before calling it a failure.
const PATIENCE_MS: u64 = 20_000;

const VM_PROT_READ: i32 = 1;
const VM_PROT_WRITE: i32 = 2;
const VM_INHERIT_COPY: i32 = 1;

fn null() -> ManuallyDrop<SendRight> {
    ManuallyDrop::new(SendRight::from_name(PortName(0)))
}

/// A dead name: a send right whose port's receive right was destroyed.
fn dead_name() -> Option<SendRight> {
    let task = traps::mach_task_self();
    let name = traps::mach_port_allocate(task, PortRight::Receive).ok()?;
    traps::mach_port_insert_right(task, name, name, MACH_MSG_TYPE_MAKE_SEND).ok()?;
    mach_port::mach_port_mod_refs(
        &mut ipc::transport(),
        &ipc::task_self(),
        name,
        PortRight::Receive as u32,
        -1,
    )
    .ok()?;
    Some(SendRight::from_name(name))
}

fn open(master: &SendRight, name: &CStr) -> Result<SendRight, KernReturn> {
    device::device_open(&mut ipc::transport(), master, D_READ | D_WRITE, name).map(|o| o.device)
}

fn main(args: &Args) -> i32 {
    let mut c = Checks::new("device");
    let Some(master) = args.device_port() else {
        c.check(
            false,
            "argv[2] names the device master port",
            format_args!("none"),
        );
        return c.finish();
    };
    let master = ManuallyDrop::new(SendRight::from_name(master));
    let console = open_and_refuse(&mut c, &master);
    let Some(console) = console else {
        return c.finish();
    };
    write(&mut c, &console);
    read(&mut c, &console);
    mapped_time(&mut c, &master, &console);
    ramdisk(&mut c, &master, &console);
    anonymous_vm_map(&mut c);
    c.check_eq(
        "device_close of the console",
        device::device_close(&mut ipc::transport(), &console),
        Ok(()),
    );
    c.check_eq(
        "a second device_close changes nothing",
        device::device_close(&mut ipc::transport(), &console),
        Ok(()),
    );
    c.finish()
}

/// Opens and the refusals; the console's port.
fn open_and_refuse(c: &mut Checks, master: &SendRight) -> Option<SendRight> {
    let console = open(master, c"console");
    c.check(
        console.is_ok(),
        "device_open(\"console\") on the master port",
        format_args!("{:?}", console.as_ref().map(|d| d.name())),
    );
    for name in [c"disk0", c"", c"consol", c"console0", c"TIME"] {
        c.check_eq(
            "device_open of an unknown name is D_NO_SUCH_DEVICE",
            open(master, name).map(|_| ()),
            Err(D_NO_SUCH_DEVICE),
        );
    }
    c.check_eq(
        "device_open sent to the task port is D_INVALID_OPERATION",
        open(&ipc::task_self(), c"console").map(|_| ()),
        Err(D_INVALID_OPERATION),
    );
    c.check_eq(
        "device_open sent to the host port is D_INVALID_OPERATION",
        open(&ipc::host_self(), c"console").map(|_| ()),
        Err(D_INVALID_OPERATION),
    );
    c.check_eq(
        "device_open sent to a null port does not reach a server",
        open(&null(), c"console").map(|_| ()),
        Err(KernReturn::SendInvalidDest),
    );
    if let Some(dead) = dead_name() {
        c.check_eq(
            "device_open sent to a dead name does not reach a server",
            open(&dead, c"console").map(|_| ()),
            Err(KernReturn::SendInvalidDest),
        );
        c.check_eq(
            "device_close sent to a dead name does not reach a server",
            device::device_close(&mut ipc::transport(), &dead),
            Err(KernReturn::SendInvalidDest),
        );
    } else {
        c.check(false, "a dead name can be made", format_args!(""));
    }
    let console = console.ok()?;
    c.check_eq(
        "device_open sent to a device port is D_INVALID_OPERATION",
        open(&console, c"console").map(|_| ()),
        Err(D_INVALID_OPERATION),
    );
    c.check_eq(
        "device_close sent to the task port is D_NO_SUCH_DEVICE",
        device::device_close(&mut ipc::transport(), &ipc::task_self()),
        Err(D_NO_SUCH_DEVICE),
    );
    c.check_eq(
        "device_close sent to the master port is D_NO_SUCH_DEVICE",
        device::device_close(&mut ipc::transport(), master),
        Err(D_NO_SUCH_DEVICE),
    );
    let mut buf = [0u8; 8];
    c.check_eq(
        "device_read_inband sent to the host port is D_NO_SUCH_DEVICE",
        device::device_read_inband(&mut ipc::transport(), &ipc::host_self(), 0, 0, 8, &mut buf)
            .map(|o| o.data_count),
        Err(D_NO_SUCH_DEVICE),
    );
    Some(console)
}

fn write(c: &mut Checks, console: &SendRight) {
    c.check_eq(
        "device_write_inband writes every byte",
        device::device_write_inband(&mut ipc::transport(), console, 0, 0, WRITTEN)
            .map(|o| o.bytes_written),
        Ok(WRITTEN.len() as i32),
    );
    c.check_eq(
        "device_write_inband of nothing writes nothing",
        device::device_write_inband(&mut ipc::transport(), console, 0, 0, b"")
            .map(|o| o.bytes_written),
        Ok(0),
    );
    let too_long = [b'x'; IO_INBAND_MAX + 1];
    c.check_eq(
        "device_write_inband of more than 128 bytes is refused by the stub",
        device::device_write_inband(&mut ipc::transport(), console, 0, 0, &too_long)
            .map(|o| o.bytes_written),
        Err(KernReturn::MigArrayTooLarge),
    );
}

/// One read of at most `wanted` bytes: the bytes, or the error.
fn read_some(console: &SendRight, mode: u32, wanted: i32) -> Result<Vec<u8>, KernReturn> {
    let mut buf = [0u8; IO_INBAND_MAX];
    let out =
        device::device_read_inband(&mut ipc::transport(), console, mode, 0, wanted, &mut buf)?;
    Ok(buf[..out.data_count as usize].to_vec())
}

fn is_waiting(thread: &SendRight) -> bool {
    kern::thread_basic_info(thread).is_ok_and(|b| b.run_state == TH_STATE_WAITING)
}

fn read(c: &mut Checks, console: &SendRight) {
    c.check_eq(
        "device_read_inband with a negative count is D_INVALID_SIZE",
        read_some(console, 0, -1),
        Err(D_INVALID_SIZE),
    );
    // A reader that waits for the harness's input, 8 bytes at a time at most.
    // The thread borrows the name (the right stays the main thread's).
    let reader_console = ManuallyDrop::new(SendRight::from_name(console.name()));
    // The first read asks for a huge count (it gets at most 128 bytes), the others for 8.
    let reader = thread::spawn(move || {
        let mut got: Vec<u8> = Vec::new();
        let mut sizes: Vec<(usize, usize)> = Vec::new();
        while got.len() < INPUT.len() {
            let wanted = if got.is_empty() { i32::MAX } else { 8 };
            match read_some(&reader_console, 0, wanted) {
                Ok(bytes) => {
                    sizes.push((bytes.len(), (wanted as usize).min(IO_INBAND_MAX)));
                    got.extend_from_slice(&bytes);
                }
                Err(e) => return Err(e),
            }
        }
        Ok((got, sizes))
    });
    let reader = match reader {
        Ok(r) => r,
        Err(e) => {
            c.check(false, "a reader thread starts", format_args!("{e:?}"));
            return;
        }
    };
    let blocked = poll_sleeping(PATIENCE_MS, || is_waiting(reader.thread()));
    c.check(
        blocked,
        "a reader with nothing buffered blocks",
        format_args!("waiting: {blocked}"),
    );
    c.note(format_args!("{}", PROMPT.trim_start_matches("device: ")));
    match reader.join() {
        Ok((got, sizes)) => {
            c.check_eq(
                "the reader got the bytes typed into the serial port, in order",
                core::str::from_utf8(&got).ok(),
                core::str::from_utf8(INPUT).ok(),
            );
            c.check(
                sizes.iter().all(|&(n, most)| (1..=most).contains(&n)),
                "each read returned 1 to bytes_wanted bytes (at most 128 for a huge count)",
                format_args!("(got, at most): {sizes:?}"),
            );
        }
        Err(e) => {
            c.check(false, "the blocked reads succeed", format_args!("{e:?}"));
        }
    }
    c.check_eq(
        "with nothing buffered, D_NOWAIT is D_WOULD_BLOCK",
        read_some(console, D_NOWAIT, 8),
        Err(D_WOULD_BLOCK),
    );
    // A blocked read ended by thread_abort.
    let aborted_console = ManuallyDrop::new(SendRight::from_name(console.name()));
    let Ok(waiter) = thread::spawn(move || read_some(&aborted_console, 0, 8)) else {
        c.check(false, "a second reader starts", format_args!(""));
        return;
    };
    let blocked = poll_sleeping(PATIENCE_MS, || is_waiting(waiter.thread()));
    c.check(
        blocked,
        "a second reader blocks",
        format_args!("waiting: {blocked}"),
    );
    c.check_eq(
        "thread_abort of the blocked reader",
        mach::thread_abort(&mut ipc::transport(), waiter.thread()),
        Ok(()),
    );
    c.check_eq(
        "an aborted read with nothing buffered is D_WOULD_BLOCK",
        waiter.join(),
        Err(D_WOULD_BLOCK),
    );
}

/// The mapped-time value at `page`, read as GNU Mach says (seconds, microseconds,
/// check_seconds; again while the seconds differ).
fn read_time(page: u64) -> MappedTimeValue {
    let p = page as *const i32;
    loop {
        // SAFETY: `page` is the mapped-time page, mapped readable for as long as this runs.
        let (s, us, check) = unsafe {
            let s = p.read_volatile();
            fence(Ordering::Acquire);
            let us = p.add(1).read_volatile();
            fence(Ordering::Acquire);
            (s, us, p.add(2).read_volatile())
        };
        if s == check {
            return MappedTimeValue {
                seconds: s,
                microseconds: us,
                check_seconds: check,
            };
        }
    }
}

fn micros(t: &MappedTimeValue) -> i64 {
    i64::from(t.seconds) * 1_000_000 + i64::from(t.microseconds)
}

/// `vm_map` of `object` (`size` bytes anywhere), as the stub sends it.
fn vm_map_of(
    object: &SendRight,
    size: u64,
    offset: u64,
    prot: i32,
    max: i32,
    inheritance: i32,
) -> Result<u64, KernReturn> {
    let mut address = 0;
    mach::vm_map(
        &mut ipc::transport(),
        &ipc::task_self(),
        &mut address,
        size,
        0,
        true,
        object,
        offset,
        false,
        prot,
        max,
        inheritance,
    )?;
    Ok(address)
}

fn mapped_time(c: &mut Checks, master: &SendRight, console: &SendRight) {
    let time = match open(master, c"time") {
        Ok(t) => t,
        Err(e) => {
            c.check(false, "device_open(\"time\")", format_args!("{e:?}"));
            return;
        }
    };
    let map = |dev: &SendRight, prot: i32| {
        device::device_map(&mut ipc::transport(), dev, prot, 0, PAGE_SIZE, 0).map(|o| o.pager)
    };
    c.check_eq(
        "device_map of the console is D_INVALID_OPERATION",
        map(console, VM_PROT_READ).map(|_| ()),
        Err(D_INVALID_OPERATION),
    );
    c.check_eq(
        "device_map of time for writing is D_READ_ONLY",
        map(&time, VM_PROT_READ | VM_PROT_WRITE).map(|_| ()),
        Err(D_READ_ONLY),
    );
    c.check_eq(
        "device_write_inband to time is D_INVALID_OPERATION",
        device::device_write_inband(&mut ipc::transport(), &time, 0, 0, b"x")
            .map(|o| o.bytes_written),
        Err(D_INVALID_OPERATION),
    );
    let pager = match map(&time, VM_PROT_READ) {
        Ok(p) => p,
        Err(e) => {
            c.check(false, "device_map of time", format_args!("{e:?}"));
            return;
        }
    };
    // vm_map's refusals.
    let refusals: [(&str, u64, u64, i32, i32, i32, KernReturn); 7] = [
        (
            "write access",
            PAGE_SIZE,
            0,
            3,
            3,
            VM_INHERIT_COPY,
            KernReturn::ProtectionFailure,
        ),
        (
            "write in the maximum",
            PAGE_SIZE,
            0,
            1,
            3,
            VM_INHERIT_COPY,
            KernReturn::ProtectionFailure,
        ),
        (
            "an offset past the page",
            PAGE_SIZE,
            PAGE_SIZE,
            1,
            1,
            VM_INHERIT_COPY,
            KernReturn::InvalidArgument,
        ),
        (
            "two pages",
            2 * PAGE_SIZE,
            0,
            1,
            1,
            VM_INHERIT_COPY,
            KernReturn::InvalidArgument,
        ),
        (
            "size 0",
            0,
            0,
            1,
            1,
            VM_INHERIT_COPY,
            KernReturn::InvalidArgument,
        ),
        (
            "an unknown protection bit",
            PAGE_SIZE,
            0,
            9,
            9,
            VM_INHERIT_COPY,
            KernReturn::InvalidArgument,
        ),
        (
            "an unknown inheritance",
            PAGE_SIZE,
            0,
            1,
            1,
            7,
            KernReturn::InvalidArgument,
        ),
    ];
    for (what, size, offset, prot, max, inh, code) in refusals {
        let seen = vm_map_of(&pager, size, offset, prot, max, inh);
        c.check(
            seen == Err(code),
            "vm_map of the time object refuses",
            format_args!("{what}: {seen:?}, expected {code:?}"),
        );
    }
    c.check_eq(
        "vm_map of a device port (no memory object) is KERN_INVALID_ARGUMENT",
        vm_map_of(console, PAGE_SIZE, 0, 1, 1, VM_INHERIT_COPY),
        Err(KernReturn::InvalidArgument),
    );
    let Ok(page) = vm_map_of(
        &pager,
        PAGE_SIZE,
        0,
        VM_PROT_READ,
        VM_PROT_READ,
        VM_INHERIT_COPY,
    ) else {
        c.check(false, "vm_map of the time object", format_args!(""));
        return;
    };
    c.check(
        page != 0 && page % PAGE_SIZE == 0,
        "vm_map of the time object gives a page",
        format_args!("{page:#x}"),
    );
    let first = read_time(page);
    let host =
        mach_host::host_get_time(&mut ipc::transport(), &ipc::host_self()).map(|t| t.current_time);
    c.check(
        (0..1_000_000).contains(&first.microseconds) && first.seconds >= 0,
        "the mapped time is a time value",
        format_args!("{first:?}"),
    );
    c.check(
        host.is_ok_and(|[s, us]| s * 1_000_000 + us >= micros(&first)),
        "the mapped time is not ahead of host_get_time",
        format_args!("{first:?} then {host:?}"),
    );
    let advanced = poll_sleeping(PATIENCE_MS, || micros(&read_time(page)) > micros(&first));
    c.check(
        advanced,
        "the mapped time advances",
        format_args!("from {first:?} to {:?}", read_time(page)),
    );
    c.check_eq(
        "vm_protect cannot make the time page writable",
        kern::vm_protect(page, PAGE_SIZE, false, VM_PROT_READ | VM_PROT_WRITE),
        Err(KernReturn::ProtectionFailure),
    );
    // SAFETY: nothing here uses the page any more.
    let gone = unsafe { traps::vm_deallocate(traps::mach_task_self(), page, PAGE_SIZE) };
    c.check_eq("vm_deallocate of the time page", gone, Ok(()));
    match vm_map_of(&pager, 1, 0, VM_PROT_READ, VM_PROT_READ, VM_INHERIT_COPY) {
        Ok(again) => {
            let before = read_time(again);
            let advanced =
                poll_sleeping(PATIENCE_MS, || micros(&read_time(again)) > micros(&before));
            c.check(
                advanced && micros(&before) >= micros(&first),
                "mapped again (size 1, rounded to the page), the time still advances",
                format_args!("{before:?}"),
            );
            // SAFETY: as above.
            let _ = unsafe { traps::vm_deallocate(traps::mach_task_self(), again, PAGE_SIZE) };
        }
        Err(e) => {
            c.check(
                false,
                "vm_map of the time object again",
                format_args!("{e:?}"),
            );
        }
    }
    c.check_eq(
        "device_close of time",
        device::device_close(&mut ipc::transport(), &time),
        Ok(()),
    );
}

fn ramdisk(c: &mut Checks, master: &SendRight, console: &SendRight) {
    use libmach::abi::device::{DEV_GET_SIZE, DEV_GET_SIZE_COUNT};
    let disk = match open(master, c"ramdisk") {
        Ok(d) => d,
        Err(e) => {
            c.check(false, "device_open(\"ramdisk\")", format_args!("{e:?}"));
            return;
        }
    };
    let status = |dev: &SendRight, flavor: u32, count: usize| {
        let mut words = [0i32; 4];
        device::device_get_status(&mut ipc::transport(), dev, flavor, &mut words[..count])
            .map(|o| (o.status_count, words[0], words[1]))
    };
    let got = status(&disk, DEV_GET_SIZE, DEV_GET_SIZE_COUNT);
    c.check(
        got.is_ok_and(|(n, size, record)| n == 2 && size > 0 && record == 1),
        "device_get_status(DEV_GET_SIZE) of the RAM disk: 2 words, its size, record size 1",
        format_args!("{got:?}"),
    );
    let size = got.map_or(0, |(_, size, _)| size as u64);
    for (what, dev, flavor, count) in [
        ("a count of 1", &disk, DEV_GET_SIZE, 1),
        ("flavor 1", &disk, 1, 2),
        ("the console", console, DEV_GET_SIZE, 2),
    ] {
        c.check_eq(
            "device_get_status refuses",
            status(dev, flavor, count)
                .map_err(|e| (what, e))
                .map(|_| ()),
            Err((what, D_INVALID_OPERATION)),
        );
    }
    let pages = size.div_ceil(PAGE_SIZE);
    let map = |prot: i32, size: u64| {
        device::device_map(&mut ipc::transport(), &disk, prot, 0, size, 0).map(|o| o.pager)
    };
    c.check_eq(
        "device_map of the RAM disk for writing is D_READ_ONLY",
        map(VM_PROT_READ | VM_PROT_WRITE, size).map(|_| ()),
        Err(D_READ_ONLY),
    );
    c.check_eq(
        "device_map past the RAM disk's last page is D_INVALID_SIZE",
        map(VM_PROT_READ, (pages + 1) * PAGE_SIZE).map(|_| ()),
        Err(D_INVALID_SIZE),
    );
    let pager = match map(VM_PROT_READ, size) {
        Ok(p) => p,
        Err(e) => {
            c.check(false, "device_map of the RAM disk", format_args!("{e:?}"));
            return;
        }
    };
    let whole = vm_map_of(&pager, size, 0, VM_PROT_READ, VM_PROT_READ, VM_INHERIT_COPY);
    c.check(
        whole.is_ok(),
        "vm_map of the whole RAM disk, read-only",
        format_args!("{size} bytes at {whole:?}"),
    );
    let Ok(at) = whole else { return };
    // SAFETY: vm_map mapped `size` readable bytes at `at`; unmapped below, after the last use.
    let bytes = unsafe { core::slice::from_raw_parts(at as *const u8, size as usize) };
    let me = libmach::exec::cpio::find(bytes, "device");
    c.check(
        bytes.starts_with(b"070701") && me.is_some_and(|e| e.data.starts_with(b"\x7fELF")),
        "it is a cpio newc archive holding this program",
        format_args!("{:?}", &bytes[..6.min(bytes.len())]),
    );
    if pages > 1 {
        let second = vm_map_of(&pager, PAGE_SIZE, PAGE_SIZE, 1, 1, VM_INHERIT_COPY);
        let same = second.is_ok_and(|p| {
            // SAFETY: one readable page mapped at `p` by the call just made.
            let page = unsafe { core::slice::from_raw_parts(p as *const u8, PAGE_SIZE as usize) };
            page == &bytes[PAGE_SIZE as usize..2 * PAGE_SIZE as usize]
        });
        c.check(
            same,
            "vm_map of its second page alone gives the same bytes",
            format_args!("{second:?}"),
        );
        if let Ok(p) = second {
            // SAFETY: our mapping, no longer used.
            let _ = unsafe { traps::vm_deallocate(traps::mach_task_self(), p, PAGE_SIZE) };
        }
    }
    c.check_eq(
        "vm_map past its last page is KERN_INVALID_ARGUMENT",
        vm_map_of(&pager, PAGE_SIZE, pages * PAGE_SIZE, 1, 1, VM_INHERIT_COPY),
        Err(KernReturn::InvalidArgument),
    );
    // SAFETY: our mapping; `bytes` is not used past this point.
    let gone = unsafe { traps::vm_deallocate(traps::mach_task_self(), at, size) };
    c.check_eq("unmap the RAM disk", gone, Ok(()));
    let _ = device::device_close(&mut ipc::transport(), &disk);
}

fn anonymous_vm_map(c: &mut Checks) {
    let mask = 0xf_ffff;
    let mut address = 0;
    let r = mach::vm_map(
        &mut ipc::transport(),
        &ipc::task_self(),
        &mut address,
        3 * PAGE_SIZE,
        mask,
        true,
        &null(),
        0,
        false,
        VM_PROT_READ | VM_PROT_WRITE,
        7,
        VM_INHERIT_COPY,
    );
    c.check(
        r.is_ok() && address != 0 && address & mask == 0,
        "anonymous vm_map honours the mask",
        format_args!("{r:?} at {address:#x}"),
    );
    if r.is_ok() {
        let p = address as *mut u64;
        // SAFETY: three fresh read-write pages at `address`.
        let back = unsafe {
            p.add(1000).write_volatile(0x1234_5678_9abc_def0);
            p.read_volatile() + p.add(1000).read_volatile()
        };
        c.check_eq(
            "anonymous vm_map memory is zero-filled and writable",
            back,
            0x1234_5678_9abc_def0,
        );
        // SAFETY: nothing uses the pages any more.
        let gone = unsafe { traps::vm_deallocate(traps::mach_task_self(), address, 3 * PAGE_SIZE) };
        c.check_eq("vm_deallocate of the anonymous mapping", gone, Ok(()));
    }
}
