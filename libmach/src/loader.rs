//! Starting programs from user space, as the kernel starts the `init=` programs: the
//! initial RAM disk mapped read-only from the "ramdisk" device ([`map_ramdisk`]), a
//! program found in it by name (`armach_exec::cpio`), and [`spawn`]: a new task
//! (`task_create`), its ELF segments copied in with `vm_write` and protected as the
//! segments say, the start-up stack of the contract (DESIGN.md 5, `armach_exec::image`),
//! `argv[1]` and `argv[2]` naming send rights to the host-privileged and device ports in
//! the new task's space, its bootstrap port set (`TASK_BOOTSTRAP_PORT`), and its first
//! thread started at the entry point. Used by servers/bootstrap and by anything else that
//! starts programs (the shell). Not a file system: the RAM disk is read as one archive.

extern crate alloc;

use alloc::string::String;
use alloc::vec::Vec;
use core::ffi::CStr;

use armach_exec::elf::{Elf, ElfError};
use armach_exec::image::{USER_STACK_SIZE, USER_STACK_TOP, page_runs, stack};
use mach_abi::device::{D_READ, DEV_GET_SIZE, DEV_GET_SIZE_COUNT, DEV_GET_SIZE_DEVICE_SIZE};
use mach_abi::mig::{KernReturn, PortArg, PortName};
use mach_abi::thread_state::{AARCH64_THREAD_STATE, Aarch64ThreadState};
use mach_abi::traps::PAGE_SIZE;

use crate::ipc::{self, SendRight};
use crate::mig::{device, mach, mach_port};
use crate::traps;

pub use armach_exec::cpio;

/// `TASK_BOOTSTRAP_PORT`, the task special port a started program finds its name service on.
pub const TASK_BOOTSTRAP_PORT: i32 = 4;
const VM_PROT_READ: i32 = 1;
const VM_INHERIT_NONE: i32 = 2;

/// Why a program could not be started: what failed and with which code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SpawnError {
    /// The file is no executable armach can load.
    Elf(ElfError),
    /// A call failed: the step, and its code.
    Call(&'static str, KernReturn),
}

impl SpawnError {
    /// The Mach code to answer a request with: `KERN_FAILURE` for a file that cannot be
    /// loaded, else the failed call's.
    pub fn code(&self) -> KernReturn {
        match self {
            SpawnError::Elf(_) => KernReturn::Failure,
            SpawnError::Call(_, code) => *code,
        }
    }
}

impl core::fmt::Display for SpawnError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            SpawnError::Elf(e) => write!(f, "{e}"),
            SpawnError::Call(what, code) => write!(f, "{what}: {code:?}"),
        }
    }
}

fn call<T>(what: &'static str, r: Result<T, KernReturn>) -> Result<T, SpawnError> {
    r.map_err(|code| SpawnError::Call(what, code))
}

/// Maps the initial RAM disk read-only into the calling task (for good) through the device
/// master port: `device_open("ramdisk")`, its size from `device_get_status(DEV_GET_SIZE)`,
/// `device_map`, then `vm_map` of the memory object.
pub fn map_ramdisk(device_master: &SendRight) -> Result<&'static [u8], SpawnError> {
    let t = &mut ipc::transport();
    let disk = call(
        "device_open(ramdisk)",
        device::device_open(t, device_master, D_READ, c"ramdisk"),
    )?
    .device;
    let mut status = [0i32; DEV_GET_SIZE_COUNT];
    let got = call(
        "device_get_status",
        device::device_get_status(t, &disk, DEV_GET_SIZE, &mut status),
    )?;
    let size = match (got.status_count as usize, status[DEV_GET_SIZE_DEVICE_SIZE]) {
        (DEV_GET_SIZE_COUNT, size) if size > 0 => size as u64,
        _ => return Err(SpawnError::Call("device_get_status", KernReturn::Failure)),
    };
    let pager = call(
        "device_map",
        device::device_map(t, &disk, VM_PROT_READ, 0, size, 0),
    )?
    .pager;
    let mut address = 0u64;
    call(
        "vm_map(ramdisk)",
        mach::vm_map(
            t,
            &ipc::task_self(),
            &mut address,
            size,
            0,
            true,
            &pager,
            0,
            false,
            VM_PROT_READ,
            VM_PROT_READ,
            VM_INHERIT_NONE,
        ),
    )?;
    let _ = device::device_close(t, &disk);
    // SAFETY: `vm_map` mapped `size` readable bytes at `address`; the mapping is never
    // removed and the kernel never writes the RAM disk.
    Ok(unsafe { core::slice::from_raw_parts(address as *const u8, size as usize) })
}

/// The ports a started program gets: `argv[1]`, `argv[2]` and its bootstrap port. Names
/// of send rights in the calling task (copied, not moved).
#[derive(Clone, Copy, Debug)]
pub struct StartPorts {
    pub host_priv: PortName,
    pub device: PortName,
    pub bootstrap: PortName,
}

/// A started program: send rights to its task and its first thread.
#[derive(Debug)]
pub struct Child {
    pub task: SendRight,
    pub thread: SendRight,
}

/// Starts `image` as a new task called `name`, with `args` as `argv[3..]` and `ports` as
/// its arguments and bootstrap port (see the module's doc). On an error the half-made task
/// is terminated.
pub fn spawn(
    name: &str,
    image: &[u8],
    args: &[&str],
    ports: &StartPorts,
) -> Result<Child, SpawnError> {
    let elf = Elf::parse(image).map_err(SpawnError::Elf)?;
    let runs = page_runs(&elf).map_err(SpawnError::Elf)?;
    let t = &mut ipc::transport();
    let task = call(
        "task_create",
        mach::task_create(t, &ipc::task_self(), false),
    )?
    .child_task;
    match fill(&task, name, &elf, &runs, args, ports) {
        Ok(thread) => Ok(Child { task, thread }),
        Err(e) => {
            let _ = mach::task_terminate(t, &task);
            Err(e)
        }
    }
}

fn fill(
    task: &SendRight,
    name: &str,
    elf: &Elf<'_>,
    runs: &[armach_exec::image::PageRun],
    args: &[&str],
    ports: &StartPorts,
) -> Result<SendRight, SpawnError> {
    let t = &mut ipc::transport();
    let mut task_name = [0u8; 32];
    let n = name.len().min(task_name.len() - 1);
    task_name[..n].copy_from_slice(&name.as_bytes()[..n]);
    if let Ok(c) = CStr::from_bytes_until_nul(&task_name) {
        let _ = crate::kern::task_set_name(task, c);
    }
    for run in runs {
        let size = run.end - run.start;
        let mut at = run.start;
        call(
            "vm_allocate(segment)",
            mach::vm_allocate(t, task, &mut at, size, false),
        )?;
        let mut pages = Pages::new(size)?;
        for seg in elf.segments().flatten() {
            let (lo, hi) = (seg.vaddr, seg.vaddr + seg.filesz);
            let (from, to) = (lo.max(run.start), hi.min(run.end));
            if from < to {
                let data = elf.data(&seg);
                pages.bytes()[(from - run.start) as usize..(to - run.start) as usize]
                    .copy_from_slice(&data[(from - lo) as usize..(to - lo) as usize]);
            }
        }
        call(
            "vm_write(segment)",
            mach::vm_write(t, task, run.start, pages.bytes()),
        )?;
        call(
            "vm_protect(segment)",
            mach::vm_protect(t, task, run.start, size, false, run.prot as i32),
        )?;
    }

    let host_priv = insert_send(task, ports.host_priv)?;
    let device = insert_send(task, ports.device)?;
    let mut argv: Vec<String> = Vec::with_capacity(3 + args.len());
    argv.push(String::from(name));
    argv.push(alloc::format!("{}", host_priv.0));
    argv.push(alloc::format!("{}", device.0));
    argv.extend(args.iter().map(|a| String::from(*a)));
    let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
    let base = USER_STACK_TOP - USER_STACK_SIZE;
    let mut at = base;
    call(
        "vm_allocate(stack)",
        mach::vm_allocate(t, task, &mut at, USER_STACK_SIZE, false),
    )?;
    let (sp, bytes) = stack(USER_STACK_TOP, &argv);
    let first_page = sp & !(PAGE_SIZE - 1);
    if first_page < base {
        return Err(SpawnError::Call("stack", KernReturn::NoSpace));
    }
    let mut pages = Pages::new(USER_STACK_TOP - first_page)?;
    pages.bytes()[(sp - first_page) as usize..].copy_from_slice(&bytes);
    call(
        "vm_write(stack)",
        mach::vm_write(t, task, first_page, pages.bytes()),
    )?;

    if ports.bootstrap != PortName::NULL {
        let bootstrap = core::mem::ManuallyDrop::new(SendRight::from_name(ports.bootstrap));
        call(
            "task_set_special_port(bootstrap)",
            mach::task_set_special_port(t, task, TASK_BOOTSTRAP_PORT, &bootstrap),
        )?;
    }
    let thread = call("thread_create", mach::thread_create(t, task))?.child_thread;
    let state = Aarch64ThreadState {
        pc: elf.entry,
        sp,
        ..Aarch64ThreadState::default()
    };
    call(
        "thread_set_state",
        mach::thread_set_state(t, &thread, AARCH64_THREAD_STATE as i32, &state.to_words()),
    )?;
    call("thread_resume", mach::thread_resume(t, &thread))?;
    Ok(thread)
}

/// First name tried for the rights a started task gets (the kernel names its own from 1
/// up; any taken name is skipped).
const FIRST_ARG_NAME: u32 = 0x100;

/// Copies the send right `right` into `task`'s space under a free name; that name.
fn insert_send(task: &SendRight, right: PortName) -> Result<PortName, SpawnError> {
    if right == PortName::NULL {
        return Ok(PortName::NULL);
    }
    let t = &mut ipc::transport();
    let lent = core::mem::ManuallyDrop::new(SendRight::from_name(right));
    for n in FIRST_ARG_NAME..FIRST_ARG_NAME + 64 {
        match mach_port::mach_port_insert_right(t, task, PortName(n), PortArg::CopySend(&lent)) {
            Ok(()) => return Ok(PortName(n)),
            Err(KernReturn::NameExists) => continue,
            Err(code) => return Err(SpawnError::Call("mach_port_insert_right", code)),
        }
    }
    Err(SpawnError::Call(
        "mach_port_insert_right",
        KernReturn::NoSpace,
    ))
}

/// Zeroed page-aligned memory of the calling task, given back when dropped (what
/// `vm_write` sends must be whole pages).
struct Pages {
    address: u64,
    size: u64,
}

impl Pages {
    fn new(size: u64) -> Result<Self, SpawnError> {
        let mut address = 0;
        call(
            "vm_allocate(buffer)",
            mach::vm_allocate(
                &mut ipc::transport(),
                &ipc::task_self(),
                &mut address,
                size,
                true,
            ),
        )?;
        Ok(Pages { address, size })
    }

    fn bytes(&mut self) -> &mut [u8] {
        // SAFETY: `vm_allocate` gave this task `size` zeroed, writable bytes at `address`,
        // ours alone until `drop`.
        unsafe { core::slice::from_raw_parts_mut(self.address as *mut u8, self.size as usize) }
    }
}

impl Drop for Pages {
    fn drop(&mut self) {
        // SAFETY: the region is this value's; nothing refers to it after the drop.
        let _ = unsafe { traps::vm_deallocate(traps::mach_task_self(), self.address, self.size) };
    }
}

/// The calling task's bootstrap port (`task_get_special_port(TASK_BOOTSTRAP_PORT)`), if it
/// has one: where servers/bootstrap serves names (`mig::armach_bootstrap`).
pub fn bootstrap_port() -> Option<SendRight> {
    mach::task_get_special_port(
        &mut ipc::transport(),
        &ipc::task_self(),
        TASK_BOOTSTRAP_PORT,
    )
    .ok()
    .map(|o| o.special_port)
    .filter(|p| p.name() != PortName::NULL && p.name() != PortName::DEAD)
}
