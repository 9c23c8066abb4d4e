//! Program start-up and exit: `_start` (the ELF entry), the argument vector the kernel put
//! on the stack, the [`main!`](crate::main) macro that names the program's `main`, and
//! [`exit`]. The kernel's side of the contract (DESIGN.md §5): at `_start`, `sp` is 16-byte
//! aligned and points at `argc`, then the `argv` pointers and a NULL, an empty `envp` and
//! its NULL, then the strings; `argv[1]` and `argv[2]` are the host-privileged and device
//! port names in decimal. Not for threads other than the first (see `thread`).

use core::ffi::{CStr, c_char};
use core::sync::atomic::{AtomicPtr, AtomicUsize, Ordering};

use crate::traps::{self, PortName};

// The entry point. Clears the frame chain, zeroes `.bss` (the kernel zero-fills it too; this
// keeps programs correct under a loader that leaves the tail of the last file page), then
// calls `libmach_start(argc, argv)` on the stack the kernel gave, which is already aligned.
// `__bss_start` and `__bss_end` come from `user.ld` and are 16-byte aligned.
core::arch::global_asm!(
    ".pushsection .text._start, \"ax\", %progbits",
    ".global _start",
    ".type _start, %function",
    "_start:",
    "    mov x29, xzr",
    "    mov x30, xzr",
    "    adrp x9, __bss_start",
    "    add x9, x9, :lo12:__bss_start",
    "    adrp x10, __bss_end",
    "    add x10, x10, :lo12:__bss_end",
    "1:  cmp x9, x10",
    "    b.hs 2f",
    "    stp xzr, xzr, [x9], #16",
    "    b 1b",
    "2:  ldr x0, [sp]",
    "    add x1, sp, #8",
    "    bl {start}",
    "    udf #0",
    ".size _start, . - _start",
    ".popsection",
    start = sym libmach_start,
);

unsafe extern "Rust" {
    /// The program's `main`, defined by [`main!`](crate::main).
    safe fn __libmach_main(args: &Args) -> i32;
}

/// Declares the program's `main`: `libmach::main!(main);` with `fn main(args: &Args) -> i32`.
/// Returning ends the task (after printing the status when it is not 0).
#[macro_export]
macro_rules! main {
    ($main:path) => {
        #[unsafe(no_mangle)]
        fn __libmach_main(args: &$crate::Args) -> i32 {
            let main: fn(&$crate::Args) -> i32 = $main;
            main(args)
        }
    };
}

static ARGC: AtomicUsize = AtomicUsize::new(0);
static ARGV: AtomicPtr<*const c_char> = AtomicPtr::new(core::ptr::null_mut());

/// Called by `_start` with what the kernel put on the stack.
///
/// # Safety
///
/// `argv` must point to `argc` pointers to NUL-terminated strings followed by a NULL, an
/// `envp` vector and its NULL, all valid for the life of the program.
unsafe extern "C" fn libmach_start(argc: usize, argv: *const *const c_char) -> ! {
    ARGC.store(argc, Ordering::Relaxed);
    ARGV.store(argv.cast_mut(), Ordering::Relaxed);
    let status = __libmach_main(&args());
    exit(status)
}

/// The arguments the kernel passed (empty before start-up).
pub fn args() -> Args {
    Args {
        argc: ARGC.load(Ordering::Relaxed),
        argv: ARGV.load(Ordering::Relaxed),
    }
}

/// Ends the task: prints the status if it is not 0, then `task_terminate` on the own task.
/// Other threads end with it.
pub fn exit(status: i32) -> ! {
    if status != 0 {
        crate::println!("{}: exit status {}", args().program_name(), status);
    }
    let code = traps::task_terminate(traps::mach_task_self());
    crate::println!("{}: task_terminate failed: {}", args().program_name(), code);
    // SAFETY: the task is ending; nothing waits on this thread's stack.
    unsafe { crate::kern::thread_terminate_self() }
}

/// The argument vector as the kernel laid it out: `argc` strings and the (empty) environment.
#[derive(Clone, Copy, Debug)]
pub struct Args {
    argc: usize,
    argv: *const *const c_char,
}

// SAFETY: the vectors and strings are written once by the kernel before start-up and never
// changed; reading them from any thread is fine.
unsafe impl Send for Args {}
// SAFETY: as for `Send`: the data is immutable.
unsafe impl Sync for Args {}

impl Args {
    /// `argc`.
    pub fn len(&self) -> usize {
        self.argc
    }

    pub fn is_empty(&self) -> bool {
        self.argc == 0
    }

    /// `argv[i]`, if `i < argc`.
    pub fn get(&self, i: usize) -> Option<&'static CStr> {
        if i >= self.argc || self.argv.is_null() {
            return None;
        }
        // SAFETY: `libmach_start`'s contract: `argv` holds `argc` valid string pointers.
        let ptr = unsafe { *self.argv.add(i) };
        if ptr.is_null() {
            return None;
        }
        // SAFETY: as above; the string is NUL-terminated and lives for the program.
        Some(unsafe { CStr::from_ptr(ptr) })
    }

    /// `argv[i]` as UTF-8, if it is.
    pub fn str(&self, i: usize) -> Option<&'static str> {
        self.get(i).and_then(|s| s.to_str().ok())
    }

    /// Every `argv[i]`, lossy where not UTF-8 (`"?"`).
    pub fn iter(&self) -> impl Iterator<Item = &'static str> + '_ {
        (0..self.argc).map(|i| self.str(i).unwrap_or("?"))
    }

    /// The number of the first `key=N` word, if it has one (`seed=5` for `key` "seed").
    pub fn number(&self, key: &str) -> Option<u64> {
        self.iter()
            .find_map(|a| a.strip_prefix(key)?.strip_prefix('='))
            .and_then(|v| v.parse().ok())
    }

    /// `argv[0]`, or `"?"`.
    pub fn program_name(&self) -> &'static str {
        self.str(0).unwrap_or("?")
    }

    /// `argv[argc]`, which must be NULL; the raw pointer, for tests of the layout.
    pub fn argv_terminator(&self) -> *const c_char {
        if self.argv.is_null() {
            return core::ptr::null();
        }
        // SAFETY: `argv` has `argc + 1` entries (the NULL included).
        unsafe { *self.argv.add(self.argc) }
    }

    /// Number of environment strings (`envp` starts after `argv`'s NULL).
    pub fn env_len(&self) -> usize {
        if self.argv.is_null() {
            return 0;
        }
        // SAFETY: `envp` follows `argv`'s NULL and ends with its own NULL.
        let envp = unsafe { self.argv.add(self.argc + 1) };
        let mut n = 0;
        // SAFETY: entries up to and including the NULL are readable.
        while !unsafe { *envp.add(n) }.is_null() {
            n += 1;
        }
        n
    }

    /// The host-privileged port name, `argv[1]` in decimal.
    pub fn host_priv_port(&self) -> Option<PortName> {
        self.str(1).and_then(parse_decimal).map(PortName)
    }

    /// The device port name, `argv[2]` in decimal.
    pub fn device_port(&self) -> Option<PortName> {
        self.str(2).and_then(parse_decimal).map(PortName)
    }
}

/// A `u32` in plain decimal (digits only, no sign, no leading `+`).
pub fn parse_decimal(s: &str) -> Option<u32> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}
