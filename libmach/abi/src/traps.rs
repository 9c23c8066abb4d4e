//! Trap numbers (GNU Mach `kern/syscall_sw.c`). A trap is `svc #0` with the *negated*
//! number in `w8`, arguments in `x0`-`x7` and the result in `x0`; arguments past the
//! eighth are on the stack, the ninth at `sp` and each next 8 bytes above.

pub const MACH_MSG_TRAP: u32 = 25;
pub const MACH_REPLY_PORT: u32 = 26;
pub const MACH_THREAD_SELF: u32 = 27;
pub const MACH_TASK_SELF: u32 = 28;
pub const MACH_HOST_SELF: u32 = 29;
pub const MACH_PRINT: u32 = 30;
pub const SWTCH_PRI: u32 = 59;
pub const SWTCH: u32 = 60;
pub const THREAD_SWITCH: u32 = 61;
pub const VM_MAP: u32 = 64;
/// `vm_map`'s arguments: the last three (protections, inheritance) on the stack.
pub const VM_MAP_ARGS: usize = 11;
pub const VM_ALLOCATE: u32 = 65;
pub const VM_DEALLOCATE: u32 = 66;
pub const TASK_TERMINATE: u32 = 69;
pub const MACH_PORT_ALLOCATE: u32 = 72;
pub const MACH_PORT_DEALLOCATE: u32 = 73;
pub const MACH_PORT_INSERT_RIGHT: u32 = 74;
pub const MACH_PORT_ALLOCATE_NAME: u32 = 75;
pub const THREAD_SET_SELF_STATE: u32 = 77;

/// Temporary traps, outside GNU Mach's table. Each goes when the IPC interface that
/// replaces it arrives (`thread_info` for the times, `gsync`, exception ports, a name
/// server, `mach_host` for processor sets). 1000-1004 (thread creation and exit, the
/// current CPU, frame and CPU counts) are gone: `thread_create` + `thread_set_state` +
/// `thread_resume`, `thread_terminate`, `thread_info`, `vm_statistics` and `host_info`
/// replaced them.
pub mod temporary {
    /// `(address, timeout_ms) -> wait result`: wait on the event named by `address` in the
    /// caller's task (no timeout if `timeout_ms` is 0). Results: 0 awakened, 1 timed out,
    /// 2 interrupted (GNU Mach's `THREAD_*` wait results). Stands in for `gsync_wait`.
    pub const EVENT_WAIT: u32 = 1005;
    /// `(address, all) -> waits ended`: wake the longest waiter on `address` (or all of
    /// them if `all` is non-zero). Stands in for `gsync_wake`.
    pub const EVENT_WAKE: u32 = 1006;
    /// `() -> (user ns in x0, system ns in x1)` of the calling thread. Stands in for
    /// `thread_info(THREAD_BASIC_INFO)`.
    pub const THREAD_TIMES: u32 = 1007;
    /// `() -> (kernel heap bytes in use in x0, heap bytes in total in x1, bytes charged to
    /// the caller's task in x2, its limit in x3)`: kernel memory, for leak and quota tests.
    pub const KMEM_COUNTS: u32 = 1008;
    /// `(pc) -> return code`: where the calling thread continues after an
    /// `EXC_BAD_ACCESS` instead of being stopped and reported (0: nowhere, the default).
    /// It continues at `pc` with `x0` = the exception, `x1` = its code, `x2` = its subcode
    /// (the fault address) and every other register as at the fault. Stands in for an
    /// exception port whose handler sets the thread's state and resumes it.
    pub const EXCEPTION_RESUME: u32 = 1009;
    /// `(slot, name) -> return code`: publish a send right (copied from `name` in the
    /// caller's space) in one of `RENDEZVOUS_SLOTS` kernel-wide slots, so that tasks started
    /// together can find each other's ports. `KERN_NAME_EXISTS` if the slot is taken,
    /// `KERN_INVALID_VALUE` for a bad slot, `KERN_INVALID_NAME`/`KERN_INVALID_RIGHT` as a
    /// copy-send of `name` would give. The slot empties when the publishing task dies.
    /// Stands in for a bootstrap / name server.
    pub const RENDEZVOUS_PUBLISH: u32 = 1010;
    /// `(slot) -> name`: a send right to the port published in `slot`, named in the
    /// caller's space (`MACH_PORT_NULL` if the slot is empty or bad).
    pub const RENDEZVOUS_LOOKUP: u32 = 1011;
    /// Slots of `RENDEZVOUS_PUBLISH`.
    pub const RENDEZVOUS_SLOTS: u32 = 8;
}

/// Highest address a user mapping may reach (exclusive): the TTBR0 half, 48 bits.
pub const VM_MAX_USER_ADDRESS: u64 = 1 << 48;
/// Lowest address the kernel hands out for `vm_allocate(anywhere)`; page 0 stays unmapped.
pub const VM_MIN_USER_ADDRESS: u64 = 0x1_0000;
/// Page size of user mappings.
pub const PAGE_SIZE: u64 = 4096;
/// Longest string `mach_print` accepts, terminating NUL included.
pub const MACH_PRINT_MAX: usize = 4096;
/// Thread-switch options (`mach/thread_switch.h`).
pub const SWITCH_OPTION_NONE: u64 = 0;
pub const SWITCH_OPTION_DEPRESS: u64 = 1;
pub const SWITCH_OPTION_WAIT: u64 = 2;
