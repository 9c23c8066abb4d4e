//! `badargs`: bad pointers and bad arguments to every trap come back as error codes, never
//! as a fault of the caller or a kernel panic: `mach_print`, `vm_allocate`,
//! `vm_deallocate`, `thread_switch` and `task_terminate`. Each check
//! expects exactly one code: the one GNU Mach returns (`kern/ipc_mig.c` `syscall_*`,
//! `vm/vm_user.c`, `vm/vm_map.c`: a name that is not a task is `MACH_SEND_INTERRUPTED`, a
//! size that rounds to 0 `KERN_INVALID_ARGUMENT`, a fixed range outside the map
//! `KERN_INVALID_ADDRESS`, no room `KERN_NO_SPACE`, and `vm_deallocate` clips its range to the
//! map, so a range outside it succeeds). Thread creation is an IPC routine now; `taskthread`
//! gives it bad arguments.

#![no_std]
#![no_main]

use armach_tests::Checks;
use libmach::abi::traps::{
    MACH_PRINT_MAX, PAGE_SIZE, SWITCH_OPTION_DEPRESS, SWITCH_OPTION_NONE, SWITCH_OPTION_WAIT,
    VM_MAX_USER_ADDRESS,
};
use libmach::traps::{self, PortName};
use libmach::{Args, KernReturn};

libmach::main!(main);

const KERNEL_ADDRESS: u64 = 0xffff_0000_0000_0000;
const KERNEL_HALF: u64 = 0xffff_8000_0000_0000;
const BAD_TASK: PortName = PortName(0xdead);
/// Where the program is linked (`user.ld`): certainly mapped.
const TEXT_START: u64 = 0x40_0000;

/// A word in `.rodata` the kernel must not write through a `vm_allocate` address pointer.
static READ_ONLY_WORD: u64 = 0x0dd_c0de;

const INVALID_ADDRESS: KernReturn = KernReturn::InvalidAddress;
const INVALID_ARGUMENT: KernReturn = KernReturn::InvalidArgument;
const NO_SPACE: KernReturn = KernReturn::NoSpace;
const SUCCESS: KernReturn = KernReturn::Success;
const SEND_INTERRUPTED: KernReturn = KernReturn::SendInterrupted;

/// Checks that `seen` is `expected`.
fn expect(c: &mut Checks, what: &str, seen: KernReturn, expected: KernReturn) -> bool {
    c.check(
        seen == expected,
        what,
        format_args!("{}, expected {}", seen, expected),
    )
}

fn code_of<T>(r: Result<T, KernReturn>) -> KernReturn {
    r.err().unwrap_or(SUCCESS)
}

/// A fresh anywhere allocation or a failed check (and `None`).
fn allocate(c: &mut Checks, what: &str, size: u64) -> Option<u64> {
    match traps::vm_allocate(traps::mach_task_self(), 0, size, true) {
        Ok(addr) => Some(addr),
        Err(code) => {
            c.check(
                false,
                what,
                format_args!("vm_allocate({:#x}) failed: {}", size, code),
            );
            None
        }
    }
}

/// Unmaps a range this program allocated and no longer uses.
fn release(addr: u64, size: u64) {
    // SAFETY: callers pass ranges they allocated themselves and hold no references into.
    let _ = unsafe { traps::vm_deallocate(traps::mach_task_self(), addr, size) };
}

fn fill(addr: u64, len: u64, byte: u8) {
    // SAFETY: callers pass memory they allocated and own, `len` bytes long.
    unsafe { core::ptr::write_bytes(addr as *mut u8, byte, len as usize) };
}

fn mach_print_checks(c: &mut Checks) {
    expect(
        c,
        "mach_print(NULL)",
        traps::mach_print_ptr(core::ptr::null()),
        INVALID_ADDRESS,
    );
    expect(
        c,
        "mach_print(kernel address 0xffff000000000000)",
        traps::mach_print_ptr(KERNEL_ADDRESS as *const u8),
        INVALID_ADDRESS,
    );
    expect(
        c,
        "mach_print(string in .rodata)",
        traps::mach_print_ptr(c"badargs: mach_print of a .rodata string\n".as_ptr().cast()),
        SUCCESS,
    );

    // A string with no NUL before an unmapped page.
    if let Some(base) = allocate(c, "two pages for an unterminated string", 2 * PAGE_SIZE) {
        release(base + PAGE_SIZE, PAGE_SIZE);
        fill(base, PAGE_SIZE, b'A');
        let seen = traps::mach_print_ptr((base + PAGE_SIZE - 64) as *const u8);
        release(base, PAGE_SIZE);
        expect(
            c,
            "mach_print(64 bytes without NUL, then an unmapped page)",
            seen,
            INVALID_ADDRESS,
        );
    }

    // Too long: no NUL within MACH_PRINT_MAX bytes of mapped memory.
    let max = MACH_PRINT_MAX as u64;
    let size = 4 * PAGE_SIZE;
    if let Some(base) = allocate(c, "pages for long strings", size) {
        fill(base, 5000, b'B');
        let no_nul = traps::mach_print_ptr(base as *const u8);
        // Exactly MACH_PRINT_MAX characters, then the NUL: one too many.
        fill(base, size, 0);
        fill(base, max, b'C');
        let one_too_long = traps::mach_print_ptr(base as *const u8);
        // The longest accepted: MACH_PRINT_MAX - 1 bytes, the last a newline.
        fill(base, size, 0);
        fill(base, max - 2, b'=');
        fill(base + max - 2, 1, b'\n');
        armach_tests::println!(
            "badargs: next line is the longest mach_print string ({} bytes)",
            max - 1
        );
        let longest = traps::mach_print_ptr(base as *const u8);
        release(base, size);
        expect(
            c,
            "mach_print(5000 bytes without NUL)",
            no_nul,
            INVALID_ARGUMENT,
        );
        expect(
            c,
            "mach_print(MACH_PRINT_MAX bytes + NUL)",
            one_too_long,
            INVALID_ARGUMENT,
        );
        expect(
            c,
            "mach_print(MACH_PRINT_MAX - 1 bytes + NUL)",
            longest,
            SUCCESS,
        );
    }
}

fn vm_allocate_checks(c: &mut Checks) {
    let task = traps::mach_task_self();
    // SAFETY: a null pointer: the kernel cannot write it.
    let seen = unsafe { traps::vm_allocate_raw(task, core::ptr::null_mut(), PAGE_SIZE, true) };
    expect(
        c,
        "vm_allocate(address pointer NULL)",
        seen,
        INVALID_ADDRESS,
    );
    // SAFETY: a kernel address: the kernel must not write it on the task's behalf.
    let seen = unsafe { traps::vm_allocate_raw(task, KERNEL_ADDRESS as *mut u64, PAGE_SIZE, true) };
    expect(
        c,
        "vm_allocate(address pointer in the kernel half)",
        seen,
        INVALID_ADDRESS,
    );
    // SAFETY: a read-only page: the kernel must not write it on the task's behalf, and the
    // check below reads the word back with a volatile read.
    let seen = unsafe {
        traps::vm_allocate_raw(
            task,
            (&raw const READ_ONLY_WORD).cast_mut(),
            PAGE_SIZE,
            true,
        )
    };
    expect(
        c,
        "vm_allocate(address pointer in .rodata)",
        seen,
        INVALID_ADDRESS,
    );
    // SAFETY: reading our own static.
    let word = unsafe { core::ptr::read_volatile(&raw const READ_ONLY_WORD) };
    c.check_eq(
        "the .rodata word behind that pointer is unchanged",
        word,
        0x0dd_c0de,
    );

    let seen = code_of(traps::vm_allocate(BAD_TASK, 0, PAGE_SIZE, true));
    expect(c, "vm_allocate(bad task 0xdead)", seen, SEND_INTERRUPTED);

    let seen = code_of(traps::vm_allocate(task, TEXT_START, PAGE_SIZE, false));
    expect(
        c,
        "vm_allocate(fixed over the program's text)",
        seen,
        NO_SPACE,
    );
    if let Some(addr) = allocate(c, "a page to allocate over", PAGE_SIZE) {
        let seen = code_of(traps::vm_allocate(task, addr, PAGE_SIZE, false));
        expect(
            c,
            "vm_allocate(fixed over an earlier allocation)",
            seen,
            NO_SPACE,
        );
        release(addr, PAGE_SIZE);
    }

    let seen = code_of(traps::vm_allocate(task, 0, VM_MAX_USER_ADDRESS, true));
    expect(c, "vm_allocate(anywhere, size 2^48)", seen, NO_SPACE);
    let seen = code_of(traps::vm_allocate(task, 0, u64::MAX - 100, true));
    expect(
        c,
        "vm_allocate(anywhere, size 2^64 - 101, which overflows when rounded)",
        seen,
        INVALID_ARGUMENT,
    );
    let seen = code_of(traps::vm_allocate(task, KERNEL_HALF, PAGE_SIZE, false));
    expect(
        c,
        "vm_allocate(fixed in the kernel half)",
        seen,
        INVALID_ADDRESS,
    );
    let seen = code_of(traps::vm_allocate(
        task,
        VM_MAX_USER_ADDRESS - PAGE_SIZE,
        2 * PAGE_SIZE,
        false,
    ));
    expect(
        c,
        "vm_allocate(fixed across the top of user space)",
        seen,
        INVALID_ADDRESS,
    );
    let seen = code_of(traps::vm_allocate(
        task,
        0x1000_0000,
        2 * VM_MAX_USER_ADDRESS,
        false,
    ));
    expect(
        c,
        "vm_allocate(fixed, size 2^49, larger than the map)",
        seen,
        INVALID_ADDRESS,
    );
    let seen = code_of(traps::vm_allocate(task, 0, PAGE_SIZE, false));
    expect(
        c,
        "vm_allocate(fixed at page 0, below the map's lowest address)",
        seen,
        INVALID_ADDRESS,
    );

    let seen = traps::vm_allocate(task, 0x1234_5000, 0, true);
    c.check(
        seen == Ok(0),
        "vm_allocate(size 0) succeeds with address 0",
        format_args!("{:?}", seen),
    );

    // Size 1: a whole zeroed page at a page-aligned address.
    if let Some(addr) = allocate(c, "vm_allocate(size 1)", 1) {
        c.check(
            addr % PAGE_SIZE == 0,
            "vm_allocate(size 1) is page-aligned",
            format_args!("{:#x}", addr),
        );
        let last = (addr + PAGE_SIZE - 1) as *mut u8;
        // SAFETY: the kernel mapped a whole page at `addr`, which we own.
        let (before, after) = unsafe {
            let before = last.read_volatile();
            last.write_volatile(0x5a);
            (before, last.read_volatile())
        };
        c.check(
            before == 0 && after == 0x5a,
            "vm_allocate(size 1): last byte of the page zero, writable",
            format_args!("{:#x} then {:#x}", before, after),
        );
        release(addr, 1);
    }
}

fn vm_deallocate_checks(c: &mut Checks) {
    let task = traps::mach_task_self();
    // SAFETY: a bad task name: nothing of ours is unmapped.
    let seen = code_of(unsafe { traps::vm_deallocate(BAD_TASK, TEXT_START, PAGE_SIZE) });
    expect(c, "vm_deallocate(bad task 0xdead)", seen, SEND_INTERRUPTED);
    // SAFETY: a range in the kernel half holds nothing of ours.
    let seen = code_of(unsafe { traps::vm_deallocate(task, KERNEL_HALF, PAGE_SIZE) });
    expect(
        c,
        "vm_deallocate(kernel half): clipped to nothing, which succeeds",
        seen,
        SUCCESS,
    );

    // SAFETY: the page-rounded end wraps around 2^64 below the start: an empty range.
    let seen = code_of(unsafe { traps::vm_deallocate(task, 0x2000_0000, u64::MAX) });
    expect(
        c,
        "vm_deallocate(size 2^64 - 1, which wraps to an empty range)",
        seen,
        SUCCESS,
    );

    // Allocate, use, deallocate; the same address can then be allocated again, fresh.
    let size = 8 * PAGE_SIZE;
    let Some(addr) = allocate(c, "pages to use and give back", size) else {
        return;
    };
    fill(addr, size, 0x77);
    // SAFETY: our own mapping, just filled.
    let kept = unsafe { core::slice::from_raw_parts(addr as *const u8, size as usize) }
        .iter()
        .all(|&b| b == 0x77);
    c.check(
        kept,
        "allocated pages hold what was written",
        format_args!("{:#x}+{:#x}", addr, size),
    );
    // SAFETY: nothing refers into the range any more.
    let seen = code_of(unsafe { traps::vm_deallocate(task, addr, size) });
    expect(c, "vm_deallocate(pages just used)", seen, SUCCESS);
    // SAFETY: the range is unmapped now; unmapping it again touches nothing of ours.
    let seen = code_of(unsafe { traps::vm_deallocate(task, addr, size) });
    expect(
        c,
        "vm_deallocate(the same range again, now unmapped)",
        seen,
        SUCCESS,
    );
    match traps::vm_allocate(task, addr, size, false) {
        Ok(again) => {
            // SAFETY: our fresh mapping.
            let zero = unsafe { core::slice::from_raw_parts(again as *const u8, size as usize) }
                .iter()
                .all(|&b| b == 0);
            c.check(
                again == addr && zero,
                "the freed range can be allocated again, zero-filled",
                format_args!("{:#x}, zero-filled {}", again, zero),
            );
            release(again, size);
        }
        Err(code) => {
            c.check(
                false,
                "the freed range can be allocated again",
                format_args!("{}", code),
            );
        }
    }
}

fn thread_checks(c: &mut Checks) {
    let seen = code_of(traps::thread_switch(PortName::NULL, 7, 0));
    expect(c, "thread_switch(option 7)", seen, INVALID_ARGUMENT);
    let seen = code_of(traps::thread_switch(PortName::NULL, SWITCH_OPTION_NONE, 0));
    expect(c, "thread_switch(NONE)", seen, SUCCESS);
    let seen = code_of(traps::thread_switch(
        PortName::NULL,
        SWITCH_OPTION_DEPRESS,
        1,
    ));
    expect(c, "thread_switch(DEPRESS, 1 ms)", seen, SUCCESS);
    let seen = code_of(traps::thread_switch(PortName::NULL, SWITCH_OPTION_WAIT, 1));
    expect(c, "thread_switch(WAIT, 1 ms)", seen, SUCCESS);
    let depressed = traps::swtch_pri(0);
    c.note(format_args!("swtch_pri(0) returned {}", depressed));

    // Thread creation is an IPC routine now (`thread_create`); the `taskthread` test gives
    // it and the other thread routines bad arguments.

    let seen = traps::task_terminate(BAD_TASK);
    expect(c, "task_terminate(bad task 0xdead)", seen, SEND_INTERRUPTED);
}

fn main(_args: &Args) -> i32 {
    let mut c = Checks::new("badargs");
    c.note(format_args!(
        "task {:?}, thread {:?}, host {:?}",
        traps::mach_task_self(),
        traps::mach_thread_self(),
        traps::mach_host_self()
    ));
    mach_print_checks(&mut c);
    vm_allocate_checks(&mut c);
    vm_deallocate_checks(&mut c);
    thread_checks(&mut c);
    c.finish()
}
