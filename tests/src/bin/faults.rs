//! `faults`: a fault stops only the faulting thread. Threads fault on purpose: (a) a read of
//! unmapped 0x8, (b) a write to `.rodata`, (c) a jump into heap data, (d) an unknown trap
//! number, (e) an undefined instruction. Each sets a flag after the faulting instruction,
//! which must never be seen; the main thread keeps working and yielding meanwhile and checks
//! that. The kernel prints its report (naming the Mach exception) for each; the line before
//! says which report to expect.

#![no_std]
#![no_main]

extern crate alloc;

use alloc::boxed::Box;
use armach_tests::Checks;
use core::arch::asm;
use core::sync::atomic::{AtomicBool, Ordering};
use libmach::{Args, thread};

libmach::main!(main);

/// A word in `.rodata` that a thread tries to write.
static READ_ONLY_WORD: u64 = 0x5eed_5eed_5eed_5eed;

/// `ret`, as data on the heap that a thread tries to execute.
const RET_INSTRUCTION: u32 = 0xd65f_03c0;

/// An unknown trap number: `svc #0` with `w8 = -9999`.
const BAD_TRAP: u32 = 9999;

struct Case {
    name: &'static str,
    expect: &'static str,
    reached: AtomicBool,
    survived: AtomicBool,
}

impl Case {
    const fn new(name: &'static str, expect: &'static str) -> Self {
        Self {
            name,
            expect,
            reached: AtomicBool::new(false),
            survived: AtomicBool::new(false),
        }
    }
}

static CASES: [Case; 5] = [
    Case::new("read of unmapped 0x8", "EXC_BAD_ACCESS"),
    Case::new("write to .rodata", "EXC_BAD_ACCESS"),
    Case::new("execute from heap data", "EXC_BAD_ACCESS"),
    Case::new("unknown trap 9999", "EXC_SOFTWARE (EXC_AARCH64_SVC)"),
    Case::new("undefined instruction udf #0", "EXC_BAD_INSTRUCTION"),
];

/// Runs case `i`: marks it reached, faults, and (wrongly) marks it survived.
fn fault(i: usize) {
    let case = &CASES[i];
    case.reached.store(true, Ordering::SeqCst);
    match i {
        0 => {
            // SAFETY: a load from the never-mapped first page: the kernel stops this thread
            // with EXC_BAD_ACCESS; nothing in Rust's view changes.
            unsafe { asm!("ldr {v}, [{a}]", a = in(reg) 0x8u64, v = out(reg) _, options(nostack)) };
        }
        1 => {
            let addr = &raw const READ_ONLY_WORD;
            // SAFETY: a store to a read-only page, which the kernel refuses by stopping this
            // thread; the static keeps its value.
            unsafe { asm!("str xzr, [{a}]", a = in(reg) addr, options(nostack)) };
        }
        2 => {
            let code: Box<[u32; 4]> = Box::new([RET_INSTRUCTION; 4]);
            let addr = code.as_ptr();
            // SAFETY: a branch into non-executable heap memory: the instruction fetch faults
            // and the thread stops. Were it executed, it is a `ret` back here (x30 declared).
            unsafe {
                asm!("blr {a}", a = in(reg) addr, out("x30") _, options(nostack));
            }
            drop(code);
        }
        3 => {
            // SAFETY: no such trap: the kernel raises EXC_SOFTWARE and stops the thread.
            unsafe { libmach::traps::syscall(BAD_TRAP, [0; 6]) };
        }
        _ => {
            // SAFETY: an undefined instruction: EXC_BAD_INSTRUCTION stops the thread.
            unsafe { asm!("udf #0", options(nostack)) };
        }
    }
    case.survived.store(true, Ordering::SeqCst);
}

fn main(_args: &Args) -> i32 {
    let mut c = Checks::new("faults");
    for (i, case) in CASES.iter().enumerate() {
        c.note(format_args!("expecting {} from {}", case.expect, case.name));
        match thread::spawn(move || fault(i)) {
            // Never joined: the thread does not finish. Dropping the handle detaches it.
            Ok(h) => drop(h),
            Err(code) => {
                c.check(
                    false,
                    "spawn of a faulting thread",
                    format_args!("{}: {}", case.name, code),
                );
                continue;
            }
        }
        let reached = armach_tests::wait_until(10_000, || case.reached.load(Ordering::SeqCst));
        c.check(
            reached,
            "faulting thread started",
            format_args!("{}", case.name),
        );
        // Let the fault and its report happen before the next expectation line.
        armach_tests::wait_until(50, || false);
    }

    // Go on working and yielding while the faulted threads stay stopped.
    let mut sum = 0u64;
    for round in 0..200u64 {
        for k in 0..10_000u64 {
            sum = sum.wrapping_add(core::hint::black_box(k * round));
        }
        libmach::yield_now();
    }
    let expected: u64 = (0..200u64).map(|r| r * (10_000 * 9_999 / 2)).sum();
    c.check_eq("main thread work after the faults", sum, expected);

    for case in &CASES {
        let what = alloc::format!("no instruction ran after the fault ({})", case.name);
        let survived = case.survived.load(Ordering::SeqCst);
        c.check(!survived, &what, format_args!("survived flag {}", survived));
    }
    // SAFETY: reading a static through its address, after the attempted write.
    let word = unsafe { core::ptr::read_volatile(&raw const READ_ONLY_WORD) };
    c.check_eq(".rodata word unchanged", word, 0x5eed_5eed_5eed_5eed);
    c.finish()
}
