//! `fp`: FP/SIMD state survives preemption, migration and traps. Several threads (and the
//! main thread) each load distinct values into all 32 SIMD registers and their own FPCR and
//! FPSR, then spin in assembly long enough to be preempted many times, sleeping briefly (so
//! that they wake on other CPUs) and asking the kernel, over `mach_msg` from the same
//! assembly, which CPU they last ran on (`thread_info(THREAD_SCHED_INFO)`), and finally
//! store everything back and compare. With more than one CPU some thread must have moved.

#![no_std]
#![no_main]

extern crate alloc;

use alloc::vec::Vec;
use armach_tests::Checks;
use core::arch::asm;
use libmach::abi::info::{THREAD_SCHED_INFO, THREAD_SCHED_INFO_COUNT};
use libmach::abi::message::option;
use libmach::abi::mig::{CallOptions, Transport};
use libmach::abi::traps::{MACH_MSG_TRAP, SWITCH_OPTION_WAIT, THREAD_SWITCH};
use libmach::ipc::{ReceiveRight, SendRight, TaskSpace};
use libmach::mig::mach;
use libmach::{Args, KernReturn, PortName, thread, traps};

libmach::main!(main);

const THREADS: u32 = 8;
/// Iterations of the spin loop per thread (a few instructions each).
const ITERATIONS: u64 = 60_000_000;
/// Sleep 1 ms (`thread_switch(WAIT)`) every 2^20 iterations, so that the thread is placed
/// again when it wakes, often on another CPU; `CURRENT_CPU` every 2^16 (masks of the low
/// bits).
const YIELD_MASK: u64 = (1 << 20) - 1;
const CPU_MASK: u64 = (1 << 16) - 1;
/// FPCR bits that hold what we set: AHP, DN, FZ, RMode.
const FPCR_MASK: u64 = 0x07c0_0000;
/// FPSR cumulative flags: QC, IDC, IXC, UFC, OFC, DZC, IOC.
const FPSR_MASK: u64 = 0x0800_009f;

/// What one run found.
struct Outcome {
    who: u32,
    first_bad_register: Option<usize>,
    fpcr: (u64, u64),
    fpsr: (u64, u64),
    cpu_changes: u64,
}

fn pattern(who: u32) -> [u8; 512] {
    let mut buf = [0u8; 512];
    for (i, b) in buf.iter_mut().enumerate() {
        let (reg, byte) = (i / 16, i % 16);
        *b = ((who as usize * 131 + reg * 17 + byte * 29) ^ 0xa5) as u8;
    }
    buf
}

fn fpcr_for(who: u32) -> u64 {
    let k = who as u64;
    ((k & 3) << 22) | (((k >> 2) & 1) << 24) | (((k >> 1) & 1) << 25) | ((k & 1) << 26)
}

fn fpsr_for(who: u32) -> u64 {
    let k = who as u64;
    ((k * 0x13 + 1) & 0x9f) | ((k & 1) << 27)
}

/// Size of the `thread_info` request the stub builds, and room for its reply (56 bytes
/// and the 8 words of `THREAD_SCHED_INFO`).
const REQUEST: usize = 64;
const REPLY: usize = 128;
/// Where `last_processor` is in that reply: the array at 56, its eighth word.
const LAST_PROCESSOR_AT: usize = 56 + 4 * 7;

/// A transport that keeps the request a stub builds instead of sending it.
struct Capture<'a> {
    reply: PortName,
    request: &'a mut [u8; REQUEST],
    len: usize,
}

// SAFETY: it never hands a reply to the stub (every call fails after the copy).
unsafe impl Transport for Capture<'_> {
    type Space = TaskSpace;

    fn reply_port(&mut self) -> PortName {
        self.reply
    }

    unsafe fn rpc(
        &mut self,
        msg: &mut [u8],
        send_size: usize,
        _: PortName,
        _: CallOptions,
    ) -> Result<(), KernReturn> {
        self.len = send_size;
        if let (Some(to), Some(from)) = (self.request.get_mut(..send_size), msg.get(..send_size)) {
            to.copy_from_slice(from);
        }
        Err(KernReturn::MigNoReply)
    }

    unsafe fn send(&mut self, _: &mut [u8], _: usize, _: CallOptions) -> Result<(), KernReturn> {
        Err(KernReturn::MigNoReply)
    }
}

/// The calling thread's `thread_info(THREAD_SCHED_INFO)` request as the generated stub
/// builds it, with a reply port of its own; the assembly sends a copy of it each time.
/// Returns the reply port and the thread's port (the caller releases both afterwards).
fn sched_info_request(request: &mut [u8; REQUEST]) -> (ReceiveRight, SendRight) {
    let reply = traps::mach_reply_port();
    let me = SendRight::from_name(traps::mach_thread_self());
    let mut capture = Capture {
        reply,
        request,
        len: 0,
    };
    let mut info = [0i32; THREAD_SCHED_INFO_COUNT];
    let _ = mach::thread_info(&mut capture, &me, THREAD_SCHED_INFO, &mut info);
    assert_eq!(capture.len, REQUEST, "thread_info request size");
    (ReceiveRight::from_name(reply), me)
}

/// Loads the pattern into v0-v31 and FPCR/FPSR, spins, stores them back.
fn run(who: u32) -> Outcome {
    let mut request = [0u8; REQUEST];
    let (reply_port, me) = sched_info_request(&mut request);
    let mut buffer = [0u64; REPLY / 8];
    let input = pattern(who);
    let mut output = [0u8; 512];
    let mut fpcr = fpcr_for(who);
    let mut fpsr = fpsr_for(who);
    let changes: u64;
    // SAFETY: the asm reads 512 bytes of `input` and writes 512 bytes of `output`, both
    // local arrays; it saves and restores the caller's FPCR/FPSR; every register it changes
    // is declared, including x0-x8 for the traps (thread_switch, which only takes values,
    // and mach_msg, which sends the request copied from `request` and receives the reply
    // into `buffer`, both ours) and all SIMD registers.
    unsafe {
        asm!(
            "mrs x16, fpcr",
            "mrs x17, fpsr",
            "msr fpcr, x12",
            "msr fpsr, x13",
            armach_tests::ld1_v0_v31!("x9"),
            "mov x14, #0",
            "mov x15, #-1",
            "1:",
            "subs x11, x11, #1",
            "b.eq 3f",
            "tst x11, #{yield_mask}",
            "b.ne 2f",
            "mov x0, #0",
            "mov x1, #{wait}",
            "mov x2, #1",
            "mov x8, #{thread_switch}",
            "svc #0",
            "2:",
            "tst x11, #{cpu_mask}",
            "b.ne 1b",
            "ldp x0, x1, [x20]",
            "stp x0, x1, [x21]",
            "ldp x0, x1, [x20, #16]",
            "stp x0, x1, [x21, #16]",
            "ldp x0, x1, [x20, #32]",
            "stp x0, x1, [x21, #32]",
            "ldp x0, x1, [x20, #48]",
            "stp x0, x1, [x21, #48]",
            "mov x0, x21",
            "mov x1, #{send_rcv}",
            "mov x2, #{request}",
            "mov x3, #{reply}",
            "mov x4, x22",
            "mov x5, #0",
            "mov x6, #0",
            "mov x8, #{mach_msg}",
            "svc #0",
            "cbnz x0, 1b",
            "ldr w0, [x21, #{last_processor}]",
            "cmp x0, x15",
            "b.eq 1b",
            "mov x15, x0",
            "add x14, x14, #1",
            "b 1b",
            "3:",
            armach_tests::st1_v0_v31!("x10"),
            "mrs x12, fpcr",
            "mrs x13, fpsr",
            "msr fpcr, x16",
            "msr fpsr, x17",
            yield_mask = const YIELD_MASK,
            cpu_mask = const CPU_MASK,
            thread_switch = const -(THREAD_SWITCH as i64),
            wait = const SWITCH_OPTION_WAIT,
            mach_msg = const -(MACH_MSG_TRAP as i64),
            send_rcv = const option::SEND_MSG | option::RCV_MSG,
            request = const REQUEST,
            reply = const REPLY,
            last_processor = const LAST_PROCESSOR_AT,
            in("x20") request.as_ptr(),
            in("x21") buffer.as_mut_ptr(),
            in("x22") u64::from(reply_port.name().0),
            inout("x9") input.as_ptr() => _,
            inout("x10") output.as_mut_ptr() => _,
            inout("x11") ITERATIONS => _,
            inout("x12") fpcr,
            inout("x13") fpsr,
            out("x14") changes,
            out("x15") _,
            out("x16") _,
            out("x17") _,
            out("x0") _, out("x1") _, out("x2") _, out("x3") _,
            out("x4") _, out("x5") _, out("x6") _, out("x7") _, out("x8") _,
            out("v0") _, out("v1") _, out("v2") _, out("v3") _,
            out("v4") _, out("v5") _, out("v6") _, out("v7") _,
            out("v8") _, out("v9") _, out("v10") _, out("v11") _,
            out("v12") _, out("v13") _, out("v14") _, out("v15") _,
            out("v16") _, out("v17") _, out("v18") _, out("v19") _,
            out("v20") _, out("v21") _, out("v22") _, out("v23") _,
            out("v24") _, out("v25") _, out("v26") _, out("v27") _,
            out("v28") _, out("v29") _, out("v30") _, out("v31") _,
            options(nostack),
        );
    }
    drop((reply_port, me));
    let first_bad_register =
        (0..32).find(|r| input[r * 16..r * 16 + 16] != output[r * 16..r * 16 + 16]);
    Outcome {
        who,
        first_bad_register,
        fpcr: (fpcr & FPCR_MASK, fpcr_for(who)),
        fpsr: (fpsr & FPSR_MASK, fpsr_for(who)),
        // The first sample always counts as a change (from "none").
        cpu_changes: changes.saturating_sub(1),
    }
}

fn main(_args: &Args) -> i32 {
    let mut c = Checks::new("fp");
    c.note(format_args!(
        "{} threads + main, {} iterations each with v0-v31, FPCR and FPSR live; {} CPUs",
        THREADS,
        ITERATIONS,
        libmach::cpu_count()
    ));
    let mut handles = Vec::new();
    for who in 1..=THREADS {
        match thread::spawn(move || run(who)) {
            Ok(h) => handles.push(h),
            Err(code) => c.note(format_args!("spawn of thread {} failed: {}", who, code)),
        }
    }
    c.check_eq("threads spawned", handles.len() as u32, THREADS);
    let mut outcomes = Vec::new();
    outcomes.push(run(0));
    for h in handles {
        outcomes.push(h.join());
    }
    let mut changes = 0;
    for o in &outcomes {
        changes += o.cpu_changes;
        let what = alloc::format!("thread {}: v0-v31 preserved", o.who);
        c.check(
            o.first_bad_register.is_none(),
            &what,
            format_args!(
                "first differing register: {:?}",
                o.first_bad_register.map(|r| alloc::format!("v{}", r))
            ),
        );
        let what = alloc::format!("thread {}: FPCR preserved", o.who);
        c.check(
            o.fpcr.0 == o.fpcr.1,
            &what,
            format_args!("{:#x}, set {:#x}", o.fpcr.0, o.fpcr.1),
        );
        let what = alloc::format!("thread {}: FPSR preserved", o.who);
        c.check(
            o.fpsr.0 == o.fpsr.1,
            &what,
            format_args!("{:#x}, set {:#x}", o.fpsr.0, o.fpsr.1),
        );
    }
    if libmach::cpu_count() > 1 {
        c.check(
            changes > 0,
            "threads moved between CPUs with live SIMD state (migration happened)",
            format_args!("{changes} CPU changes seen"),
        );
    } else {
        c.note(format_args!("{changes} CPU changes seen (one CPU online)"));
    }
    c.finish()
}
