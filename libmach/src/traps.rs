//! Mach traps: the one `svc #0` primitive ([`syscall`]) and a typed wrapper per trap of GNU
//! Mach's table that armach offers, including the temporary ones
//! (`mach_abi::traps::temporary`) that go when their IPC replacements arrive. Wrappers that
//! only hand the kernel values (or pointers it merely reads and validates) are safe; those
//! that make the kernel write through a caller's pointer, unmap memory or start code are
//! `unsafe`. `mach_msg` itself is here as the raw trap; `ipc` builds on it.

use core::arch::asm;
use core::ffi::CStr;

use mach_abi::traps::{self as nr, temporary};
pub use mach_abi::{KernReturn, PortName, PortRight};

/// Raw results of a trap: `x0`, and `x1`-`x3` for the temporary traps that return more
/// than one value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TrapResult {
    pub x0: u64,
    pub x1: u64,
    pub x2: u64,
    pub x3: u64,
}

/// Enters the kernel with trap `number` (negated into `w8`, as GNU Mach's AArch64 ABI has it)
/// and `args` in `x0`-`x5`. `x0`-`x8` are treated as clobbered; every other register,
/// FP/SIMD included, is the kernel's to preserve.
///
/// # Safety
///
/// The trap acts on the arguments as its own contract says: it may write where a pointer
/// argument points, unmap memory, start a thread at an address or end the caller. The caller
/// must pass arguments for which that is sound (no live Rust reference to memory that is
/// written or unmapped, code that is fit to run), or a trap number that is no trap at all,
/// which stops the calling thread with `EXC_SOFTWARE`.
#[inline(always)]
pub unsafe fn syscall(number: u32, args: [u64; 6]) -> TrapResult {
    let x0: u64;
    let x1: u64;
    let x2: u64;
    let x3: u64;
    // Sign-extending the negated number puts `-number` in `w8`, which is what the kernel
    // reads.
    let x8 = (number as i64).wrapping_neg() as u64;
    // SAFETY: the caller upholds the trap's contract (see `# Safety`). The asm only enters
    // the kernel; it touches no stack (`nostack`) and the kernel may read or write memory
    // (no `nomem`), which the compiler assumes.
    unsafe {
        asm!(
            "svc #0",
            inlateout("x0") args[0] => x0,
            inlateout("x1") args[1] => x1,
            inlateout("x2") args[2] => x2,
            inlateout("x3") args[3] => x3,
            inlateout("x4") args[4] => _,
            inlateout("x5") args[5] => _,
            lateout("x6") _,
            lateout("x7") _,
            inlateout("x8") x8 => _,
            options(nostack),
        );
    }
    TrapResult { x0, x1, x2, x3 }
}

/// A trap that only takes values and returns one: safe for the traps that use it.
#[inline(always)]
fn value_trap(number: u32, args: [u64; 6]) -> TrapResult {
    // SAFETY: only called (below) with traps that neither write through nor unmap their
    // arguments (the kernel validates every pointer it reads), or that end the whole task
    // (`task_terminate`), which like `exit` is not unsound.
    unsafe { syscall(number, args) }
}

/// `mach_msg` (trap 25): sends `msg[..send_size]` if `option` has `MACH_SEND_MSG`, then
/// receives into `msg[..rcv_size]` on `rcv_name` if it has `MACH_RCV_MSG`. Arguments in
/// `x0`-`x6` as GNU Mach's AArch64 ABI has them; the result is a `mach_msg_return_t`.
///
/// # Safety
///
/// `msg` must be valid for reads of `send_size` and writes of `rcv_size` bytes, and every
/// out-of-line region the message marks `deallocate` must be the caller's to give away (the
/// kernel unmaps it). Other out-of-line regions it names are only read.
#[allow(clippy::too_many_arguments)] // The trap's seven arguments.
pub unsafe fn mach_msg(
    msg: *mut u8,
    option: u32,
    send_size: u32,
    rcv_size: u32,
    rcv_name: PortName,
    timeout: u32,
    notify: PortName,
) -> KernReturn {
    let x0: u64;
    let x8 = (nr::MACH_MSG_TRAP as i64).wrapping_neg() as u64;
    // SAFETY: the caller upholds the contract above; the asm only enters the kernel, which
    // reads and writes the buffer as the arguments say (no `nomem`) and touches no stack.
    unsafe {
        asm!(
            "svc #0",
            inlateout("x0") msg as u64 => x0,
            inlateout("x1") u64::from(option) => _,
            inlateout("x2") u64::from(send_size) => _,
            inlateout("x3") u64::from(rcv_size) => _,
            inlateout("x4") u64::from(rcv_name.0) => _,
            inlateout("x5") u64::from(timeout) => _,
            inlateout("x6") u64::from(notify.0) => _,
            lateout("x7") _,
            inlateout("x8") x8 => _,
            options(nostack),
        );
    }
    KernReturn::from_reg(x0)
}

/// `mach_reply_port` (trap 26): a new receive right for replies, or `MACH_PORT_NULL`.
pub fn mach_reply_port() -> PortName {
    PortName(value_trap(nr::MACH_REPLY_PORT, [0; 6]).x0 as u32)
}

/// `mach_port_allocate` (trap 72): a new right of kind `right` in `task`'s space; its name.
pub fn mach_port_allocate(task: PortName, right: PortRight) -> Result<PortName, KernReturn> {
    let mut name = 0u32;
    let args = [
        u64::from(task.0),
        right as u64,
        &raw mut name as u64,
        0,
        0,
        0,
    ];
    // SAFETY: the kernel writes one `mach_port_name_t` through the pointer, which points at
    // a local of that type.
    KernReturn::from_reg(unsafe { syscall(nr::MACH_PORT_ALLOCATE, args) }.x0)
        .result()
        .map(|()| PortName(name))
}

/// `mach_port_deallocate` (trap 73): gives up one user reference of a send, send-once or
/// dead-name right.
pub fn mach_port_deallocate(task: PortName, name: PortName) -> Result<(), KernReturn> {
    let args = [u64::from(task.0), u64::from(name.0), 0, 0, 0, 0];
    KernReturn::from_reg(value_trap(nr::MACH_PORT_DEALLOCATE, args).x0).result()
}

/// `mach_port_insert_right` (trap 74): puts the right `right` (with disposition
/// `disposition`) into `task`'s space at `name`.
pub fn mach_port_insert_right(
    task: PortName,
    name: PortName,
    right: PortName,
    disposition: u8,
) -> Result<(), KernReturn> {
    let args = [
        u64::from(task.0),
        u64::from(name.0),
        u64::from(right.0),
        u64::from(disposition),
        0,
        0,
    ];
    KernReturn::from_reg(value_trap(nr::MACH_PORT_INSERT_RIGHT, args).x0).result()
}

/// `mach_port_allocate_name` (trap 75): a new right of kind `right` at the chosen `name`.
pub fn mach_port_allocate_name(
    task: PortName,
    right: PortRight,
    name: PortName,
) -> Result<(), KernReturn> {
    let args = [u64::from(task.0), right as u64, u64::from(name.0), 0, 0, 0];
    KernReturn::from_reg(value_trap(nr::MACH_PORT_ALLOCATE_NAME, args).x0).result()
}

/// `mach_thread_self`: a send right name for the calling thread (a placeholder until IPC).
pub fn mach_thread_self() -> PortName {
    PortName(value_trap(nr::MACH_THREAD_SELF, [0; 6]).x0 as u32)
}

/// `mach_task_self`: the name of the calling task's port (a placeholder until IPC).
pub fn mach_task_self() -> PortName {
    PortName(value_trap(nr::MACH_TASK_SELF, [0; 6]).x0 as u32)
}

/// `mach_host_self`: the name of the host port (a placeholder until IPC).
pub fn mach_host_self() -> PortName {
    PortName(value_trap(nr::MACH_HOST_SELF, [0; 6]).x0 as u32)
}

/// `mach_print`: writes a string of at most `MACH_PRINT_MAX - 1` bytes to the console.
pub fn mach_print(s: &CStr) -> Result<(), KernReturn> {
    mach_print_ptr(s.as_ptr().cast()).result()
}

/// `mach_print` with any pointer: the kernel reads (never writes) it and answers
/// `KERN_INVALID_ADDRESS` for memory it cannot read and `KERN_INVALID_ARGUMENT` when no NUL
/// comes within `MACH_PRINT_MAX` bytes. For tests of exactly that.
pub fn mach_print_ptr(ptr: *const u8) -> KernReturn {
    KernReturn::from_reg(value_trap(nr::MACH_PRINT, [ptr as u64, 0, 0, 0, 0, 0]).x0)
}

/// `swtch`: yields the processor; `true` if other threads were ready to run.
pub fn swtch() -> bool {
    value_trap(nr::SWTCH, [0; 6]).x0 & 1 != 0
}

/// `swtch_pri`: yields and depresses the caller's priority for a while.
pub fn swtch_pri(pri: i32) -> bool {
    value_trap(nr::SWTCH_PRI, [pri as u64, 0, 0, 0, 0, 0]).x0 & 1 != 0
}

/// `thread_switch(thread, option, time)`: hands the processor on; `option` is one of
/// `mach_abi::traps::SWITCH_OPTION_*`, `time` in milliseconds.
pub fn thread_switch(thread: PortName, option: u64, time: u64) -> Result<(), KernReturn> {
    let r = value_trap(nr::THREAD_SWITCH, [thread.0 as u64, option, time, 0, 0, 0]);
    KernReturn::from_reg(r.x0).result()
}

/// `vm_allocate`: zero-filled memory in `task`. With `anywhere` the kernel picks the address
/// (`address` is a hint); otherwise at `address` exactly, failing with `KERN_NO_SPACE` if
/// anything is mapped there. Size 0 succeeds with address 0. Returns the address.
pub fn vm_allocate(
    task: PortName,
    address: u64,
    size: u64,
    anywhere: bool,
) -> Result<u64, KernReturn> {
    let mut addr = address;
    // SAFETY: `addr` is a local the kernel may write; vm_allocate never replaces an
    // existing mapping, so no memory Rust uses changes.
    let code = unsafe { vm_allocate_raw(task, &mut addr, size, anywhere) };
    code.result().map(|()| addr)
}

/// `vm_allocate` with the address pointer as given, for tests of bad pointers.
///
/// # Safety
///
/// The kernel writes a `u64` through `address` if it is mapped and writable: it must be
/// valid for that write or not writable by the task at all.
pub unsafe fn vm_allocate_raw(
    task: PortName,
    address: *mut u64,
    size: u64,
    anywhere: bool,
) -> KernReturn {
    let args = [task.0 as u64, address as u64, size, anywhere as u64, 0, 0];
    // SAFETY: the caller guarantees the write through `address` is sound.
    KernReturn::from_reg(unsafe { syscall(nr::VM_ALLOCATE, args) }.x0)
}

/// `vm_deallocate`: unmaps `[address, address + size)` (whole pages) from `task`.
///
/// # Safety
///
/// Nothing may use the range afterwards: no reference, heap block or stack may live in it.
pub unsafe fn vm_deallocate(task: PortName, address: u64, size: u64) -> Result<(), KernReturn> {
    let args = [task.0 as u64, address, size, 0, 0, 0];
    // SAFETY: the caller guarantees nothing uses the range.
    KernReturn::from_reg(unsafe { syscall(nr::VM_DEALLOCATE, args) }.x0).result()
}

/// `task_terminate`: ends `task`. On the caller's own task it does not return; it returns the
/// code when the kernel refuses.
pub fn task_terminate(task: PortName) -> KernReturn {
    KernReturn::from_reg(value_trap(nr::TASK_TERMINATE, [task.0 as u64, 0, 0, 0, 0, 0]).x0)
}

/// Temporary `RENDEZVOUS_PUBLISH`: publish a send right to `name`'s port in `slot`.
pub fn rendezvous_publish(slot: u32, name: PortName) -> Result<(), KernReturn> {
    let args = [u64::from(slot), u64::from(name.0), 0, 0, 0, 0];
    KernReturn::from_reg(value_trap(temporary::RENDEZVOUS_PUBLISH, args).x0).result()
}

/// Temporary `RENDEZVOUS_LOOKUP`: a send right to the port published in `slot`, or
/// `MACH_PORT_NULL`.
pub fn rendezvous_lookup(slot: u32) -> PortName {
    PortName(
        value_trap(
            temporary::RENDEZVOUS_LOOKUP,
            [u64::from(slot), 0, 0, 0, 0, 0],
        )
        .x0 as u32,
    )
}

/// Kernel memory figures (temporary `KMEM_COUNTS`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KmemCounts {
    /// Kernel heap bytes in use (as its allocator rounds blocks), all tasks together.
    pub heap_in_use: u64,
    /// Kernel heap bytes in total.
    pub heap_total: u64,
    /// Bytes of kernel memory charged to the calling task.
    pub task_charged: u64,
    /// The calling task's limit.
    pub task_limit: u64,
}

/// Temporary `KMEM_COUNTS`: kernel heap use and the caller's kernel-memory account.
pub fn kmem_counts() -> KmemCounts {
    let r = value_trap(temporary::KMEM_COUNTS, [0; 6]);
    KmemCounts {
        heap_in_use: r.x0,
        heap_total: r.x1,
        task_charged: r.x2,
        task_limit: r.x3,
    }
}

/// How a temporary `EVENT_WAIT` ended (GNU Mach's wait results).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WaitResult {
    Awakened,
    TimedOut,
    Interrupted,
    /// A value the kernel should never return.
    Other(u64),
}

/// Temporary `EVENT_WAIT`: wait until another thread of the task wakes `address` with
/// [`event_wake`], or `timeout_ms` passes (0: no timeout). The kernel neither reads nor
/// writes `address`: it only names the event.
pub fn event_wait(address: usize, timeout_ms: u64) -> WaitResult {
    match value_trap(
        temporary::EVENT_WAIT,
        [address as u64, timeout_ms, 0, 0, 0, 0],
    )
    .x0
    {
        0 => WaitResult::Awakened,
        1 => WaitResult::TimedOut,
        2 => WaitResult::Interrupted,
        other => WaitResult::Other(other),
    }
}

/// Temporary `EVENT_WAKE`: end the wait of the longest waiter on `address` (of every
/// waiter if `all`); returns how many waits it ended.
pub fn event_wake(address: usize, all: bool) -> u64 {
    value_trap(
        temporary::EVENT_WAKE,
        [address as u64, all as u64, 0, 0, 0, 0],
    )
    .x0
}

/// Temporary `EXCEPTION_RESUME`: from now on an `EXC_BAD_ACCESS` of the calling thread that
/// no exception handler takes makes it continue at `pc` (with `x0` = the exception, `x1` =
/// code, `x2` = subcode, the other registers as at the fault) instead of ending its task;
/// `pc` 0 restores the default.
/// `KERN_INVALID_ARGUMENT` for a `pc` that is not a 4-aligned user address.
///
/// # Safety
///
/// `pc` must be code written for that entry (typically assembly that knows which
/// registers the faulting code keeps its state in): the kernel jumps there from wherever
/// the thread faulted, with the stack and registers as they were.
pub unsafe fn set_exception_resume(pc: u64) -> Result<(), KernReturn> {
    // SAFETY: the caller guarantees `pc` is fit to continue at.
    let r = unsafe { syscall(temporary::EXCEPTION_RESUME, [pc, 0, 0, 0, 0, 0]) };
    KernReturn::from_reg(r.x0).result()
}

/// Temporary `THREAD_TIMES`: the calling thread's (user, system) time in nanoseconds.
pub fn thread_times() -> (u64, u64) {
    let r = value_trap(temporary::THREAD_TIMES, [0; 6]);
    (r.x0, r.x1)
}

/// `vm_map`'s arguments, for the trap (64) and the RPC alike.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VmMapArgs {
    pub size: u64,
    pub mask: u64,
    pub anywhere: bool,
    /// A memory object's name in this task's space, or `MACH_PORT_NULL` for zero-fill
    /// memory.
    pub memory_object: PortName,
    pub offset: u64,
    pub copy: bool,
    pub cur_protection: i32,
    pub max_protection: i32,
    pub inheritance: i32,
}

/// `syscall_vm_map` (trap 64), GNU Mach's one trap of eleven arguments: the first eight in
/// `x0`-`x7`, the last three (`cur_protection`, `max_protection`, `inheritance`) on the
/// stack at `sp`, `sp + 8` and `sp + 16`, as a call to GNU Mach's trap stub leaves them.
/// Maps into `task` at `*address` (a hint with `anywhere`) and writes the start back.
/// `MACH_SEND_INTERRUPTED` if `task` names no task (use the RPC then).
///
/// # Safety
///
/// The kernel writes a `u64` through `address`, which must be valid for that write; the
/// new mapping replaces nothing, so no memory Rust uses changes.
pub unsafe fn vm_map_raw(task: PortName, address: *mut u64, a: &VmMapArgs) -> KernReturn {
    let stacked = [
        a.cur_protection as i64 as u64,
        a.max_protection as i64 as u64,
        a.inheritance as i64 as u64,
        0,
    ];
    let x0: u64;
    let x8 = (nr::VM_MAP as i64).wrapping_neg() as u64;
    // SAFETY: the caller guarantees the write through `address`. The asm makes 32 bytes
    // of room below `sp` (16-byte aligned), puts the three stacked arguments at the bottom,
    // enters the kernel, and gives the room back; it reads only `stacked`.
    unsafe {
        asm!(
            "sub sp, sp, #32",
            "ldp x9, x10, [x11]",
            "stp x9, x10, [sp]",
            "ldr x9, [x11, #16]",
            "str x9, [sp, #16]",
            "svc #0",
            "add sp, sp, #32",
            inlateout("x0") u64::from(task.0) => x0,
            inlateout("x1") address as u64 => _,
            inlateout("x2") a.size => _,
            inlateout("x3") a.mask => _,
            inlateout("x4") u64::from(a.anywhere) => _,
            inlateout("x5") u64::from(a.memory_object.0) => _,
            inlateout("x6") a.offset => _,
            inlateout("x7") u64::from(a.copy) => _,
            inlateout("x8") x8 => _,
            out("x9") _,
            out("x10") _,
            in("x11") stacked.as_ptr(),
        );
    }
    KernReturn::from_reg(x0)
}

/// [`vm_map_raw`] into a local address word: the start of the new range.
pub fn vm_map(task: PortName, address: u64, a: &VmMapArgs) -> Result<u64, KernReturn> {
    let mut at = address;
    // SAFETY: `at` is a local the kernel may write; vm_map never replaces a mapping.
    unsafe { vm_map_raw(task, &mut at, a) }
        .result()
        .map(|()| at)
}

/// `thread_set_self_state(flavor, state, count)` (trap 77) with the state as given: the
/// kernel reads `count` 32-bit words at `state`. For `AARCH64_FLOAT_STATE` it returns
/// `KERN_SUCCESS` with the FP/SIMD registers loaded (every one of them is declared
/// clobbered here, so the compiler keeps nothing in them across the call; FPCR and FPSR
/// are what the state says afterwards); a failure of any flavor returns its code with
/// nothing changed.
///
/// # Safety
///
/// With `AARCH64_THREAD_STATE` success does not return: the thread continues from the new
/// registers, so they must describe a state fit to go on in (a pc in code written for it,
/// with the stack and callee-saved registers it expects). With `AARCH64_FLOAT_STATE` the
/// FPCR given must be one the caller's code can run under (rounding mode, flush-to-zero).
pub unsafe fn thread_set_self_state(flavor: u32, state: *const u32, count: u32) -> KernReturn {
    let x0: u64;
    let x8 = (nr::THREAD_SET_SELF_STATE as i64).wrapping_neg() as u64;
    // SAFETY: the caller's contract. The kernel reads the state (no `nomem`); every
    // register the trap may change is declared.
    unsafe {
        asm!(
            "svc #0",
            inlateout("x0") u64::from(flavor) => x0,
            inlateout("x1") state as u64 => _,
            inlateout("x2") u64::from(count) => _,
            lateout("x3") _, lateout("x4") _, lateout("x5") _, lateout("x6") _,
            lateout("x7") _,
            inlateout("x8") x8 => _,
            lateout("v0") _, lateout("v1") _, lateout("v2") _, lateout("v3") _,
            lateout("v4") _, lateout("v5") _, lateout("v6") _, lateout("v7") _,
            lateout("v8") _, lateout("v9") _, lateout("v10") _, lateout("v11") _,
            lateout("v12") _, lateout("v13") _, lateout("v14") _, lateout("v15") _,
            lateout("v16") _, lateout("v17") _, lateout("v18") _, lateout("v19") _,
            lateout("v20") _, lateout("v21") _, lateout("v22") _, lateout("v23") _,
            lateout("v24") _, lateout("v25") _, lateout("v26") _, lateout("v27") _,
            lateout("v28") _, lateout("v29") _, lateout("v30") _, lateout("v31") _,
            options(nostack),
        );
    }
    KernReturn::from_reg(x0)
}
