//! `faults`: a fault nobody handles ends the faulting task, and only it (GNU Mach's
//! `exception_no_server`). Each case is a thread alone in a task of its own
//! (`armach_tests::child`) that faults on purpose: (a) a read of unmapped 0x8, (b) a write
//! to a read-only page, (c) a jump into a data page, (d) an unknown trap number, (e) an
//! undefined instruction. After the faulting instruction comes a branch to itself, so a
//! thread that wrongly went on would never end. The kernel prints its report (naming the
//! Mach exception) for each; the line before says which report to expect. The thread and
//! its task must both be gone, and this task keeps working meanwhile.

#![no_std]
#![no_main]

extern crate alloc;

use armach_tests::Checks;
use armach_tests::child::{Child, PROT_R, insn};
use libmach::Args;
use libmach::ipc;
use libmach::mig::mach;

libmach::main!(main);

/// An unknown trap number: `svc #0` with `w8 = -9999`.
const BAD_TRAP: i64 = -9999;

struct Case {
    name: &'static str,
    expect: &'static str,
    insn: u32,
}

const CASES: [Case; 5] = [
    Case {
        name: "read of unmapped 0x8",
        expect: "EXC_BAD_ACCESS",
        insn: insn::LDR_X0_X1,
    },
    Case {
        name: "write to a read-only page",
        expect: "EXC_BAD_ACCESS",
        insn: insn::STR_XZR_X1,
    },
    Case {
        name: "execute from a data page",
        expect: "EXC_BAD_ACCESS",
        insn: insn::B_SELF,
    },
    Case {
        name: "unknown trap 9999",
        expect: "EXC_SOFTWARE (EXC_AARCH64_SVC)",
        insn: insn::SVC_0,
    },
    Case {
        name: "undefined instruction udf #0",
        expect: "EXC_BAD_INSTRUCTION",
        insn: insn::UDF_0,
    },
];

fn run(c: &mut Checks, i: usize, case: &Case) {
    c.note(format_args!("expecting {} from {}", case.expect, case.name));
    let child = match Child::new(&[case.insn, insn::B_SELF]) {
        Ok(child) => child,
        Err(e) => {
            c.check(false, "child task", format_args!("{}: {e:?}", case.name));
            return;
        }
    };
    let t = || ipc::transport();
    let started = match i {
        0 => child.start(child.code, &[(1, 0x8)]),
        1 => mach::vm_protect(&mut t(), &child.task, child.data, 4096, false, PROT_R)
            .and_then(|()| child.start(child.code, &[(1, child.data)])),
        // The data page is read and write, not execute.
        2 => child.start(child.data, &[]),
        3 => child.start(child.code, &[(8, BAD_TRAP as u64)]),
        _ => child.start(child.code, &[]),
    };
    c.check_eq(&alloc::format!("started ({})", case.name), started, Ok(()));
    c.check_eq(
        &alloc::format!("thread and task gone after the fault ({})", case.name),
        child.wait_gone(),
        Ok(()),
    );
}

fn main(_args: &Args) -> i32 {
    let mut c = Checks::new("faults");
    for (i, case) in CASES.iter().enumerate() {
        run(&mut c, i, case);
    }
    // This task goes on working.
    let mut sum = 0u64;
    for round in 0..20u64 {
        for k in 0..10_000u64 {
            sum = sum.wrapping_add(core::hint::black_box(k * round));
        }
        libmach::yield_now();
    }
    let expected: u64 = (0..20u64).map(|r| r * (10_000 * 9_999 / 2)).sum();
    c.check_eq("this task's work after the faults", sum, expected);
    c.finish()
}
