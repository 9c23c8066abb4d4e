//! Numbers of GNU Mach's own subsystem (`gnumach.defs`, 4200) that armach serves: the
//! gsync flags (GNU Mach `kern/gsync.h`) and the sizes of debugging names
//! (`mach_debug/mach_debug_types.h`, `kern/task.h`).

/// The word may be shared between tasks: waiters meet by the memory, not the address.
pub const GSYNC_SHARED: i32 = 0x01;
/// `gsync_wait` also compares the next 32-bit word with `val2` (a 64-bit value).
pub const GSYNC_QUAD: i32 = 0x02;
/// `gsync_wait` gives up after `msec` milliseconds (`KERN_TIMEDOUT`).
pub const GSYNC_TIMED: i32 = 0x04;
/// `gsync_wake` wakes, and `gsync_requeue` moves, every waiter rather than one.
pub const GSYNC_BROADCAST: i32 = 0x08;
/// `gsync_wake` first stores its `val` at the address.
pub const GSYNC_MUTATE: i32 = 0x10;

/// `kernel_debug_name_t`: a name as it travels, NUL included (`c_string[*:64]`).
pub const KERNEL_DEBUG_NAME_MAX: usize = 64;
/// What the kernel keeps of a task's or thread's name, NUL included (GNU Mach's
/// `TASK_NAME_SIZE`, `THREAD_NAME_SIZE`): longer names are cut to 31 bytes.
pub const NAME_SIZE: usize = 32;

/// Message ids of the routines armach serves (base 4200 + position, skips counted).
pub mod ids {
    pub const TASK_SET_NAME: i32 = 4202;
    pub const GSYNC_WAIT: i32 = 4204;
    pub const GSYNC_WAKE: i32 = 4205;
    pub const GSYNC_REQUEUE: i32 = 4206;
    pub const THREAD_SET_NAME: i32 = 4213;
    pub const THREAD_GET_NAME: i32 = 4214;
}
