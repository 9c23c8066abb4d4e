//! `faultiso`: a task that faults in any way dies alone, or is handled by its exception
//! port, and the kernel and the other tasks go on (issue 14's fault isolation). Each
//! misbehaving thread is alone in a task of its own (`armach_tests::child`) running a few
//! instructions handed to it; this task watches and keeps working.
//!
//! - Stack overflow: a child recurses (`stp x29, x30, [sp, #-16]!; bl .-4`) down a stack of
//!   its own at a fixed address with nothing mapped below. With no handler the kernel
//!   reports EXC_BAD_ACCESS at the word just below the stack and ends the task; with an
//!   exception port, this task receives EXC_BAD_ACCESS / KERN_INVALID_ADDRESS with that
//!   address, and terminates the child itself.
//! - A runaway loop of traps: three children at once trap in a tight loop,
//!   `mach_thread_self` (100 000 times: its user references saturate at the limit),
//!   `thread_switch` (each returns KERN_SUCCESS), and an unknown trap number, each of which
//!   raises EXC_SOFTWARE to an exception port this task serves and answers, so the thread goes
//!   on (every exception is seen, exactly as many as the loop makes), while one thread per
//!   CPU of this task does a fixed amount of work. Each child then sleeps in a loop of
//!   `thread_switch(SWITCH_OPTION_WAIT)` until this task ends it with `task_terminate`;
//!   the kernel's frame count at the end of the run shows that everything was freed.
//! - FP exceptions: operations giving infinities, NaNs and underflow, on one thread per CPU,
//!   set FPSR's cumulative flags and raise nothing, and the results stay correct across
//!   switches. QEMU implements no trapped FP exceptions (FPCR's trap-enable bits read back 0,
//!   see `traps`), so an FP *trap* (EXC_ARITHMETIC) cannot be tested here; this test checks
//!   only that untrapped exceptional FP results affect nothing.
//! - Many faulting tasks at once: two children per CPU each spin for a different while and
//!   then fault (at least one of each: unmapped read, misaligned `ldar`, `udf`, unknown trap, stack overflow), with no
//!   handler, so their reports come while two threads of this task exchange messages (at
//!   least 3000, and on until every child is gone); every exchange must complete, and every
//!   child must be gone.

#![no_std]
#![no_main]

extern crate alloc;

use alloc::vec::Vec;
use armach_tests::Checks;
use armach_tests::child::{Child, insn};
use armach_tests::host::lend;
use armach_tests::msg::{Msg, int_desc, mach_msg};
use core::arch::asm;
use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use libmach::abi::message::{MACH_MSG_TYPE_COPY_SEND, MACH_MSG_TYPE_MAKE_SEND, option};
use libmach::abi::thread_state::{
    AARCH64_THREAD_STATE, AARCH64_THREAD_STATE_COUNT, Aarch64ThreadState,
};
use libmach::ipc;
use libmach::mig::{mach, mach_port};
use libmach::{Args, KernReturn, PortName, thread, traps};

libmach::main!(main);

const PAGE: u64 = 4096;
/// `exception_raise`'s message id.
const RAISE_ID: i32 = 2400;
const EXC_BAD_ACCESS: i32 = 1;
const EXC_SOFTWARE: i32 = 5;
/// `KERN_INVALID_ADDRESS`.
const INVALID_ADDRESS: i32 = 1;
/// `MACH_PORT_RIGHT_SEND`; `MACH_PORT_UREFS_MAX`.
const RIGHT_SEND: u32 = 0;
const UREFS_MAX: u32 = 0xffff;
/// A child's stack: `STACK_PAGES` pages at a fixed address, nothing mapped below.
const STACK_BASE: u64 = 0x40_0000_0000;
const STACK_PAGES: u64 = 8;
/// The first word a recursion out of the stack writes (`stp` at `sp - 16`).
const STACK_FAULT: u64 = STACK_BASE - 16;
/// Rounds of the trap loops.
const TRAP_LOOPS: u64 = 100_000;
const SWITCH_LOOPS: u64 = 20_000;
const BAD_TRAP_LOOPS: u64 = 300;
/// Messages the two threads exchange while children fault.
const EXCHANGES: u32 = 3000;
/// A receive that waits longer than this has lost its sender (a failure, not a timing).
const WAIT_MS: u32 = 120_000;

/// Encodings of the children's code beyond `armach_tests::child::insn`.
mod code {
    /// `stp x29, x30, [sp, #-16]!`.
    pub const STP_FRAME: u32 = 0xa9bf_7bfd;
    /// `bl .-4`.
    pub const BL_BACK1: u32 = 0x97ff_ffff;
    /// `movn x8, #imm`: `x8 = !imm`, i.e. trap number `imm + 1` (negated, as traps are).
    pub const fn movn_x8(imm: u16) -> u32 {
        0x9280_0008 | ((imm as u32) << 5)
    }
    /// `mov x0, xzr`, `mov x1, xzr`, `mov x2, xzr`.
    pub const MOV_X0_0: u32 = 0xaa1f_03e0;
    pub const MOV_X1_0: u32 = 0xaa1f_03e1;
    pub const MOV_X2_0: u32 = 0xaa1f_03e2;
    /// `subs x19, x19, #1`.
    pub const SUBS_X19: u32 = 0xf100_0673;
    /// `b.ne` back `n` instructions.
    pub const fn bne_back(n: u32) -> u32 {
        0x5400_0001 | (((0x8_0000 - n) & 0x7_ffff) << 5)
    }
    /// `movz xd, #imm`.
    pub const fn movz(rd: u32, imm: u16) -> u32 {
        0xd280_0000 | ((imm as u32) << 5) | rd
    }
    /// `b` back `n` instructions.
    pub const fn b_back(n: u32) -> u32 {
        0x1400_0000 | ((0x400_0000 - n) & 0x3ff_ffff)
    }
    /// Where each trap loop ends: `thread_switch(MACH_PORT_NULL, SWITCH_OPTION_WAIT, 1000)`
    /// over and over, asleep (spinning instead would take a CPU from the loops still running,
    /// for a whole quantum at each of their switches).
    pub const SLEEP_TAIL: [u32; 6] = [
        movn_x8(60),
        MOV_X0_0,
        movz(1, libmach::abi::traps::SWITCH_OPTION_WAIT as u16),
        movz(2, 1000),
        super::insn::SVC_0,
        b_back(5),
    ];
    /// `mov x20, x0`; `orr x21, x21, x0`.
    pub const MOV_X20_X0: u32 = 0xaa00_03f4;
    pub const ORR_X21_X0: u32 = 0xaa00_02b5;
    /// `ldar x0, [x1]`.
    pub const LDAR_X0_X1: u32 = 0xc8df_fc20;
}

fn t() -> ipc::Client<ipc::Trap> {
    ipc::transport()
}

/// A new port of ours with a receive right and a send right under one name.
fn new_port() -> Option<PortName> {
    let task = traps::mach_task_self();
    let name = traps::mach_port_allocate(task, libmach::abi::PortRight::Receive).ok()?;
    traps::mach_port_insert_right(task, name, name, MACH_MSG_TYPE_MAKE_SEND).ok()?;
    Some(name)
}

fn destroy_port(name: PortName) {
    let _ = mach_port::mach_port_destroy(&mut t(), &ipc::task_self(), name);
}

/// A child's stack of `STACK_PAGES` pages at `STACK_BASE`; its top.
fn give_stack(child: &Child) -> Result<u64, KernReturn> {
    let mut at = STACK_BASE;
    mach::vm_allocate(&mut t(), &child.task, &mut at, STACK_PAGES * PAGE, false)?;
    Ok(at + STACK_PAGES * PAGE)
}

/// A child's thread state.
fn state_of(child: &Child) -> Result<Aarch64ThreadState, KernReturn> {
    let mut words = [0u32; AARCH64_THREAD_STATE_COUNT as usize];
    mach::thread_get_state(
        &mut t(),
        &child.thread,
        AARCH64_THREAD_STATE as i32,
        &mut words,
    )?;
    Aarch64ThreadState::from_words(&words).ok_or(KernReturn::Failure)
}

/// Wait (sleeping) until the child's thread is in its code's `code::SLEEP_TAIL`, which
/// starts at instruction `at`; its state then.
fn wait_tail(child: &Child, at: usize) -> Option<Aarch64ThreadState> {
    let tail = child.code + 4 * at as u64..child.code + 4 * (at + code::SLEEP_TAIL.len()) as u64;
    let mut last = None;
    armach_tests::poll_sleeping(u64::from(WAIT_MS), || {
        last = state_of(child).ok();
        last.is_some_and(|s| tail.contains(&s.pc))
    });
    last.filter(|s| tail.contains(&s.pc))
}

/// A loop's code followed by `code::SLEEP_TAIL`.
fn with_tail(body: &[u32]) -> Vec<u32> {
    let mut all = Vec::from(body);
    all.extend_from_slice(&code::SLEEP_TAIL);
    all
}

/// An exception one handler saw.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Seen {
    exception: i32,
    code: i32,
    subcode: u64,
}

fn word32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// An 8-aligned message buffer.
#[repr(C, align(8))]
struct Buf([u8; 256]);

/// Serve `count` exception messages on `port`: answer KERN_SUCCESS to each (the thread goes
/// on), or, with `terminate`, end the faulting task instead of answering. What was seen, or
/// the error that stopped the handler.
fn serve(port: PortName, count: u64, terminate: bool) -> Result<Vec<Seen>, KernReturn> {
    let me = traps::mach_task_self();
    let mut seen = Vec::new();
    let mut req = Buf([0; 256]);
    for _ in 0..count {
        // SAFETY: a receive into our own 256-byte buffer.
        let r = unsafe {
            traps::mach_msg(
                req.0.as_mut_ptr(),
                option::RCV_MSG | option::RCV_TIMEOUT,
                0,
                256,
                port,
                WAIT_MS,
                PortName::NULL,
            )
        };
        if r != KernReturn::Success {
            return Err(r);
        }
        if word32(&req.0, 28) as i32 != RAISE_ID {
            return Err(KernReturn::Failure);
        }
        let reply = PortName(word32(&req.0, 8));
        let thread = PortName(word32(&req.0, 40));
        let task = PortName(word32(&req.0, 56));
        seen.push(Seen {
            exception: word32(&req.0, 72) as i32,
            code: word32(&req.0, 88) as i32,
            subcode: u64::from_le_bytes(req.0[104..112].try_into().unwrap_or_default()),
        });
        let mut result = Ok(());
        if terminate {
            result = mach::task_terminate(&mut t(), &lend(task));
            let _ = traps::mach_port_deallocate(me, reply);
        } else {
            let mut m = Msg::new();
            m.header(
                libmach::abi::message::MACH_MSG_TYPE_MOVE_SEND_ONCE as u32,
                reply,
                PortName::NULL,
                RAISE_ID + 100,
            );
            m.desc(32, int_desc());
            m.put32(40, 0);
            let r = mach_msg(&mut m, option::SEND_MSG, 48, 0, PortName::NULL, 0);
            if r != KernReturn::Success {
                result = Err(r);
            }
        }
        let _ = traps::mach_port_deallocate(me, thread);
        let _ = traps::mach_port_deallocate(me, task);
        result?;
    }
    Ok(seen)
}

/// Stack overflow, with no handler and with an exception port.
fn stack_overflow(c: &mut Checks) {
    c.note(format_args!(
        "expecting EXC_BAD_ACCESS at {STACK_FAULT:#x} from a stack overflow"
    ));
    let made = Child::new(&[code::STP_FRAME, code::BL_BACK1]).and_then(|ch| {
        let top = give_stack(&ch)?;
        Ok((ch, top))
    });
    match made {
        Ok((child, top)) => {
            c.check_eq(
                "stack overflow started (no handler)",
                child.start_with_sp(child.code, top, &[]),
                Ok(()),
            );
            c.check_eq(
                "stack overflow: thread and task gone",
                child.wait_gone(),
                Ok(()),
            );
        }
        Err(e) => {
            c.check(false, "stack overflow child", format_args!("{e:?}"));
        }
    }

    let Some(port) = new_port() else {
        c.check(false, "exception port", format_args!("none"));
        return;
    };
    let made = Child::new(&[code::STP_FRAME, code::BL_BACK1]).and_then(|ch| {
        let top = give_stack(&ch)?;
        ch.set_exception_port(port)?;
        Ok((ch, top))
    });
    match made {
        Ok((child, top)) => {
            let handler = thread::spawn(move || serve(port, 1, true));
            c.check_eq(
                "stack overflow started (exception port)",
                child.start_with_sp(child.code, top, &[]),
                Ok(()),
            );
            let seen = handler.map(|h| h.join());
            c.check_eq(
                "stack overflow: the exception port got EXC_BAD_ACCESS at the word below the stack",
                seen,
                Ok(Ok(alloc::vec![Seen {
                    exception: EXC_BAD_ACCESS,
                    code: INVALID_ADDRESS,
                    subcode: STACK_FAULT,
                }])),
            );
            c.check_eq(
                "stack overflow: terminated by the handler, thread and task gone",
                child.wait_gone(),
                Ok(()),
            );
        }
        Err(e) => {
            c.check(false, "stack overflow child", format_args!("{e:?}"));
        }
    }
    destroy_port(port);
}

/// Fixed work for one thread, yielding often; the sum, and the CPUs it ran on.
fn work(rounds: u64) -> (u64, u64) {
    let mut sum = 0u64;
    let mut cpus = 0u64;
    for round in 0..rounds {
        for k in 0..2_000u64 {
            sum = sum.wrapping_add(core::hint::black_box(k ^ round));
        }
        if round % 16 == 0 {
            cpus |= armach_tests::cpu_bit(libmach::current_cpu());
        }
        libmach::yield_now();
    }
    (sum, cpus)
}

fn expected_work(rounds: u64) -> u64 {
    (0..rounds)
        .map(|r| (0..2_000u64).map(|k| k ^ r).sum::<u64>())
        .sum()
}

/// Runaway loops of traps in three children while this task works on every CPU.
fn trap_loops(c: &mut Checks) {
    let online = libmach::cpu_count().max(1);
    // x19 counts the rounds; each loop then sleeps in `code::SLEEP_TAIL`.
    let self_loop = [
        code::movn_x8(26), // mach_thread_self, its name kept in x20
        insn::SVC_0,
        code::MOV_X20_X0,
        code::SUBS_X19,
        code::bne_back(4),
    ];
    let switch_loop = [
        code::movn_x8(60), // thread_switch(MACH_PORT_NULL, SWITCH_OPTION_NONE, 0)
        code::MOV_X0_0,
        code::MOV_X1_0,
        code::MOV_X2_0,
        insn::SVC_0,
        code::ORR_X21_X0, // every result or-ed into x21
        code::SUBS_X19,
        code::bne_back(7),
    ];
    let bad_loop = [
        code::movn_x8(9998), // trap -9999: EXC_SOFTWARE
        insn::SVC_0,
        code::SUBS_X19,
        code::bne_back(3),
    ];
    let Some(port) = new_port() else {
        c.check(false, "exception port", format_args!("none"));
        return;
    };
    let made = (|| {
        let a = Child::new(&with_tail(&self_loop))?;
        let b = Child::new(&with_tail(&switch_loop))?;
        let x = Child::new(&with_tail(&bad_loop))?;
        x.set_exception_port(port)?;
        Ok::<_, KernReturn>((a, b, x))
    })();
    let (a, b, x) = match made {
        Ok(children) => children,
        Err(e) => {
            c.check(false, "trap loop children", format_args!("{e:?}"));
            destroy_port(port);
            return;
        }
    };
    let handler = thread::spawn(move || serve(port, BAD_TRAP_LOOPS, false));
    c.check_eq(
        "mach_thread_self loop started",
        a.start(a.code, &[(19, TRAP_LOOPS)]),
        Ok(()),
    );
    c.check_eq(
        "thread_switch loop started",
        b.start(b.code, &[(19, SWITCH_LOOPS)]),
        Ok(()),
    );
    c.check_eq(
        "unknown-trap loop started",
        x.start(x.code, &[(19, BAD_TRAP_LOOPS)]),
        Ok(()),
    );
    // This task keeps working on every CPU meanwhile.
    const ROUNDS: u64 = 400;
    let workers: Vec<_> = (0..online)
        .filter_map(|_| thread::spawn(|| work(ROUNDS)).ok())
        .collect();
    c.check_eq("workers started", workers.len() as u32, online);
    let mut cpus = 0;
    let want = expected_work(ROUNDS);
    for (i, w) in workers.into_iter().enumerate() {
        let (sum, seen) = w.join();
        cpus |= seen;
        c.check_eq(
            &alloc::format!("worker {i}'s work during the trap loops"),
            sum,
            want,
        );
    }
    c.note(format_args!(
        "workers ran on cpus {}",
        armach_tests::cpu_list(cpus)
    ));

    // Each loop ran to its end.
    let sa = wait_tail(&a, self_loop.len());
    let self_name = sa.map(|s| PortName(s.x[20] as u32));
    c.check(
        sa.is_some_and(|s| s.x[19] == 0),
        "mach_thread_self loop ran to its end",
        format_args!("{:x?}", sa.map(|s| (s.pc, s.x[19]))),
    );
    if let Some(name) = self_name {
        let refs =
            mach_port::mach_port_get_refs(&mut t(), &a.task, name, RIGHT_SEND).map(|o| o.refs);
        c.check(
            refs.is_ok_and(|r| (UREFS_MAX - 1..=UREFS_MAX).contains(&r)),
            "the thread's own send right saturated at the user-reference limit",
            format_args!("{name:?}: {refs:?}"),
        );
    }
    let sb = wait_tail(&b, switch_loop.len());
    c.check(
        sb.is_some_and(|s| s.x[19] == 0 && s.x[21] == 0),
        "thread_switch loop ran to its end, each switch KERN_SUCCESS",
        format_args!("{:x?}", sb.map(|s| (s.pc, s.x[19], s.x[21]))),
    );
    let served = handler.map(|h| h.join());
    let all_software = served.as_ref().is_ok_and(|r| {
        r.as_ref().is_ok_and(|v| {
            v.len() as u64 == BAD_TRAP_LOOPS && v.iter().all(|s| s.exception == EXC_SOFTWARE)
        })
    });
    c.check(
        all_software,
        "every unknown trap raised EXC_SOFTWARE, answered",
        format_args!(
            "{:?}",
            served
                .as_ref()
                .map(|r| r.as_ref().map(|v| (v.len(), v.first().copied())))
        ),
    );
    let sx = wait_tail(&x, bad_loop.len());
    c.check(
        sx.is_some_and(|s| s.x[19] == 0),
        "unknown-trap loop went on after each answer, to its end",
        format_args!("{:x?}", sx.map(|s| (s.pc, s.x[19]))),
    );
    // This task ends them.
    for (what, ch) in [
        ("mach_thread_self", &a),
        ("thread_switch", &b),
        ("unknown-trap", &x),
    ] {
        c.check_eq(
            &alloc::format!("task_terminate of the {what} loop"),
            mach::task_terminate(&mut t(), &ch.task),
            Ok(()),
        );
        c.check_eq(
            &alloc::format!("{what} loop: thread and task gone"),
            ch.wait_gone(),
            Ok(()),
        );
    }
    destroy_port(port);
}

/// FPSR's cumulative flags IOC, DZC, OFC, UFC, IXC.
const FPSR_IOC: u64 = 1;
const FPSR_DZC: u64 = 1 << 1;
const FPSR_OFC: u64 = 1 << 2;
const FPSR_UFC: u64 = 1 << 3;
const FPSR_IXC: u64 = 1 << 4;
/// FPCR's trap enables: IOE, DZE, OFE, UFE, IXE, IDE.
const FPCR_TRAPS: u64 = 0x9f00;

fn set_fpsr(v: u64) {
    // SAFETY: writes FPSR's flags, no memory access.
    unsafe { asm!("msr fpsr, {}", in(reg) v, options(nomem, nostack)) };
}

fn fpcr() -> u64 {
    let v: u64;
    // SAFETY: reads FPCR, no memory access.
    unsafe { asm!("mrs {}, fpcr", out(reg) v, options(nomem, nostack)) };
    v
}

fn set_fpcr(v: u64) {
    // SAFETY: writes FPCR; the caller restores the default.
    unsafe { asm!("msr fpcr, {}", in(reg) v, options(nomem, nostack)) };
}

/// In one `asm!` block, so that the compiler can move none of the operations past the
/// FPSR accesses: clear FPSR, compute 1/0, 0/0, sqrt(-1), MAX * 2 and MIN_POSITIVE / 1e300,
/// read FPSR. The five results and the flags.
fn exceptional_ops() -> ([f64; 5], u64) {
    let bb = core::hint::black_box;
    let (r0, r1, r2, r3, r4, flags): (f64, f64, f64, f64, f64, u64);
    // SAFETY: FP instructions on registers and FPSR's flags (cleared again by the caller);
    // no memory access.
    unsafe {
        asm!(
            "msr fpsr, xzr",
            "fdiv {r0:d}, {one:d}, {zero:d}",
            "fdiv {r1:d}, {zero:d}, {zero:d}",
            "fsqrt {r2:d}, {m1:d}",
            "fmul {r3:d}, {max:d}, {two:d}",
            "fdiv {r4:d}, {minp:d}, {big:d}",
            "mrs {f}, fpsr",
            one = in(vreg) bb(1.0f64),
            zero = in(vreg) bb(0.0f64),
            m1 = in(vreg) bb(-1.0f64),
            max = in(vreg) bb(f64::MAX),
            two = in(vreg) bb(2.0f64),
            minp = in(vreg) bb(f64::MIN_POSITIVE),
            big = in(vreg) bb(1e300f64),
            r0 = out(vreg) r0,
            r1 = out(vreg) r1,
            r2 = out(vreg) r2,
            r3 = out(vreg) r3,
            r4 = out(vreg) r4,
            f = out(reg) flags,
            options(nomem, nostack),
        );
    }
    ([r0, r1, r2, r3, r4], flags)
}

/// The exceptional operations `rounds` times with yields between: how many rounds gave
/// wrong results or flags (the first such: round, flags, results' bits).
fn fp_exceptional(rounds: u32) -> (u32, Option<(u32, u64, [u64; 5])>) {
    let mut bad = 0;
    let mut first = None;
    for round in 0..rounds {
        let (r, flags) = exceptional_ops();
        let want = FPSR_IOC | FPSR_DZC | FPSR_OFC | FPSR_UFC | FPSR_IXC;
        let ok = r[0] == f64::INFINITY
            && r[1].is_nan()
            && r[2].is_nan()
            && r[3] == f64::INFINITY
            && r[4] == 0.0
            && flags & want == want;
        if !ok {
            bad += 1;
            first.get_or_insert((round, flags, r.map(f64::to_bits)));
        }
        libmach::yield_now();
    }
    set_fpsr(0);
    (bad, first)
}

fn fp_traps(c: &mut Checks) {
    let before = fpcr();
    set_fpcr(before | FPCR_TRAPS);
    let enabled = fpcr() & FPCR_TRAPS;
    set_fpcr(before);
    c.note(format_args!(
        "FPCR {before:#x}; its trap enables read back {enabled:#x} (0 on QEMU: FP traps cannot be tested here)"
    ));
    let online = libmach::cpu_count().max(1);
    const ROUNDS: u32 = 200;
    let threads: Vec<_> = (0..online)
        .filter_map(|_| thread::spawn(|| fp_exceptional(ROUNDS)).ok())
        .collect();
    c.check_eq("FP threads started", threads.len() as u32, online);
    let mine = fp_exceptional(ROUNDS);
    c.check_eq(
        "FP exceptional results and flags (main thread)",
        mine,
        (0, None),
    );
    for (i, h) in threads.into_iter().enumerate() {
        c.check_eq(
            &alloc::format!("FP exceptional results and flags (thread {i})"),
            h.join(),
            (0, None),
        );
    }
}

/// The faults of the many-at-once round (`faulter` turns each into code and registers).
#[derive(Clone, Copy)]
enum Fault {
    Unmapped,
    Misaligned,
    Undefined,
    BadTrap,
    StackOverflow,
}

const FAULTS: [Fault; 5] = [
    Fault::Unmapped,
    Fault::Misaligned,
    Fault::Undefined,
    Fault::BadTrap,
    Fault::StackOverflow,
];

/// A child that spins `spin` rounds, then faults as `f`.
fn faulter(f: Fault, spin: u64) -> Result<Child, KernReturn> {
    let spin_code = [code::SUBS_X19, code::bne_back(1)];
    let tail: &[u32] = match f {
        Fault::Unmapped => &[insn::LDR_X0_X1, insn::B_SELF],
        Fault::Misaligned => &[code::LDAR_X0_X1, insn::B_SELF],
        Fault::Undefined => &[insn::UDF_0, insn::B_SELF],
        Fault::BadTrap => &[code::movn_x8(9998), insn::SVC_0, insn::B_SELF],
        Fault::StackOverflow => &[code::STP_FRAME, code::BL_BACK1],
    };
    let mut all = Vec::from(spin_code);
    all.extend_from_slice(tail);
    let child = Child::new(&all)?;
    let mut regs = alloc::vec![(19, spin)];
    match f {
        Fault::Unmapped => regs.push((1, 0x8)),
        Fault::Misaligned => regs.push((1, child.data + 1)),
        _ => {}
    }
    if let Fault::StackOverflow = f {
        let top = give_stack(&child)?;
        child.start_with_sp(child.code, top, &regs)?;
    } else {
        child.start(child.code, &regs)?;
    }
    Ok(child)
}

/// Set once every faulting child is gone: the exchange goes on until then.
static ALL_GONE: AtomicBool = AtomicBool::new(false);
const ASK_ID: i32 = 7000;
const ANSWER_ID: i32 = 7001;
const STOP_ID: i32 = 7002;

/// One-integer message `id` carrying `v` to `dest`.
fn send_int(dest: PortName, id: i32, v: u32) -> KernReturn {
    let mut m = Msg::new();
    m.header(MACH_MSG_TYPE_COPY_SEND as u32, dest, PortName::NULL, id);
    m.desc(32, int_desc());
    m.put32(40, v);
    mach_msg(&mut m, option::SEND_MSG, 48, 0, PortName::NULL, 0)
}

/// Client and server of the exchange: the client sends `i` to `server`, the server answers
/// `i + 1` to `client`, at least `EXCHANGES` times and until every faulting child is gone,
/// then the client sends the stop message. Exchanges completed, or the first error.
fn exchange_client(server: PortName, client: PortName) -> Result<u32, (u32, KernReturn)> {
    let mut i = 0;
    while i < EXCHANGES || !ALL_GONE.load(Ordering::SeqCst) {
        let r = send_int(server, ASK_ID, i);
        if r != KernReturn::Success {
            return Err((i, r));
        }
        let mut m = Msg::new();
        let r = mach_msg(
            &mut m,
            option::RCV_MSG | option::RCV_TIMEOUT,
            0,
            128,
            client,
            WAIT_MS,
        );
        if r != KernReturn::Success {
            return Err((i, r));
        }
        if m.id() != ANSWER_ID || m.get32(40) != i.wrapping_add(1) {
            return Err((i, KernReturn::Failure));
        }
        i += 1;
        EXCHANGED.store(i, Ordering::Relaxed);
    }
    match send_int(server, STOP_ID, i) {
        KernReturn::Success => Ok(i),
        r => Err((i, r)),
    }
}

fn exchange_server(server: PortName, client: PortName) -> Result<u32, (u32, KernReturn)> {
    let mut i = 0;
    loop {
        let mut m = Msg::new();
        let r = mach_msg(
            &mut m,
            option::RCV_MSG | option::RCV_TIMEOUT,
            0,
            128,
            server,
            WAIT_MS,
        );
        if r != KernReturn::Success {
            return Err((i, r));
        }
        match m.id() {
            STOP_ID if m.get32(40) == i => return Ok(i),
            ASK_ID if m.get32(40) == i => {}
            _ => return Err((i, KernReturn::Failure)),
        }
        let r = send_int(client, ANSWER_ID, i.wrapping_add(1));
        if r != KernReturn::Success {
            return Err((i, r));
        }
        i += 1;
    }
}

/// Children seen gone, and exchanges done, for the note at the end.
static FAULTED: AtomicU64 = AtomicU64::new(0);
static EXCHANGED: AtomicU32 = AtomicU32::new(0);

fn many_at_once(c: &mut Checks) {
    let online = u64::from(libmach::cpu_count().max(1));
    let (Some(server), Some(client)) = (new_port(), new_port()) else {
        c.check(false, "exchange ports", format_args!("none"));
        return;
    };
    for f in FAULTS {
        let what = match f {
            Fault::Unmapped => "EXC_BAD_ACCESS (read of 0x8)",
            Fault::Misaligned => "EXC_BAD_ACCESS (misaligned ldar)",
            Fault::Undefined => "EXC_BAD_INSTRUCTION",
            Fault::BadTrap => "EXC_SOFTWARE",
            Fault::StackOverflow => "EXC_BAD_ACCESS (stack overflow)",
        };
        c.note(format_args!("expecting reports of {what}"));
    }
    let srv = thread::spawn(move || exchange_server(server, client));
    let cli = thread::spawn(move || exchange_client(server, client));
    // The children start once the exchange is under way (it fails later if it never is).
    armach_tests::poll_sleeping(u64::from(WAIT_MS), || EXCHANGED.load(Ordering::Relaxed) > 0);
    let mut children = Vec::new();
    // Two per CPU, and each kind at least once.
    for i in 0..(2 * online).max(FAULTS.len() as u64) {
        let f = FAULTS[i as usize % FAULTS.len()];
        match faulter(f, 4_000_000 * (i + 1)) {
            Ok(ch) => children.push(ch),
            Err(e) => {
                c.check(false, "faulting child started", format_args!("{i}: {e:?}"));
            }
        }
    }
    let mut at_gone = Vec::new();
    for (i, ch) in children.iter().enumerate() {
        let gone = ch.wait_gone();
        at_gone.push(EXCHANGED.load(Ordering::Relaxed));
        if gone.is_ok() {
            FAULTED.fetch_add(1, Ordering::Relaxed);
        }
        c.check_eq(
            &alloc::format!("faulting child {i}: thread and task gone"),
            gone,
            Ok(()),
        );
    }
    ALL_GONE.store(true, Ordering::SeqCst);
    let served = srv.map(|h| h.join());
    let done = cli.map(|h| h.join());
    c.check(
        matches!((&served, &done), (Ok(Ok(a)), Ok(Ok(b))) if a == b && *a >= EXCHANGES),
        "exchanges completed, at least EXCHANGES and until every faulting child was gone",
        format_args!("server {served:?}, client {done:?}"),
    );
    c.note(format_args!(
        "{} children faulted and were ended during {:?} exchanges (done as each was seen gone: {:?})",
        FAULTED.load(Ordering::Relaxed),
        done,
        at_gone
    ));
    destroy_port(server);
    destroy_port(client);
}

fn main(_args: &Args) -> i32 {
    let mut c = Checks::new("faultiso");
    stack_overflow(&mut c);
    trap_loops(&mut c);
    fp_traps(&mut c);
    many_at_once(&mut c);
    c.finish()
}
