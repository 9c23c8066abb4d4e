//! `traps`: the traps whose arguments or effects go beyond `x0`-`x7` and a result.
//!
//! - `vm_map` as trap 64, GNU Mach's one trap of eleven arguments: the last three
//!   (`cur_protection`, `max_protection`, `inheritance`) come from the stack, the ninth at
//!   `sp`. A mapping made by the trap shows those three in `vm_region`; a bad value in any
//!   of them is refused (`KERN_INVALID_ARGUMENT`), as is a port that is no memory object;
//!   a name without a send right or no name at all gets the copy-in's code, a first
//!   argument that names no task `MACH_SEND_INTERRUPTED` (GNU Mach's "use the RPC"). The
//!   "time" device's memory object maps its read-only page through the trap as through
//!   the RPC, and write access to it is refused.
//! - The trap with a stack it cannot read, in a child task (`armach_tests::child`): with an
//!   exception port, the handler (this program) is told `EXC_BAD_ACCESS` /
//!   `KERN_INVALID_ADDRESS` with the first address GNU Mach's order of reading fails on
//!   (the top pair first: sp + 24; or the top itself, sp + 32, when it is past the user
//!   half); without one, the kernel reports it and the child task ends (the harness
//!   expects the report).
//! - `thread_set_self_state` (trap 77): with `AARCH64_THREAD_STATE` the trap does not
//!   return, the thread goes on at the new pc with x0-x17 as set and its callee-saved
//!   registers as they were; with `AARCH64_FLOAT_STATE` it returns `KERN_SUCCESS` and the
//!   thread's v0-v31, FPCR and FPSR are the new ones; bad flavors, counts, pointers and
//!   `cpsr` values are refused with `KERN_INVALID_ARGUMENT`.
//! - `thread_get_state`/`thread_set_state` with `AARCH64_FLOAT_STATE` on a suspended
//!   thread: the registers it loaded are read back, and the ones set are those it finds
//!   when it goes on.

#![no_std]
#![no_main]

extern crate alloc;

use alloc::format;
use armach_tests::Checks;
use armach_tests::child::{Child, insn};
use core::arch::asm;
use core::mem::ManuallyDrop;
use core::sync::atomic::{AtomicU32, Ordering};
use libmach::abi::exception::EXC_BAD_ACCESS;
use libmach::abi::message::option;
use libmach::abi::thread_state::{
    AARCH64_FLOAT_STATE, AARCH64_FLOAT_STATE_COUNT, AARCH64_THREAD_STATE,
    AARCH64_THREAD_STATE_COUNT, Aarch64FloatState, Aarch64ThreadState,
};
use libmach::abi::traps::VM_MAP;
use libmach::ipc::{self, ReceiveRight, SendRight};
use libmach::mig::mach;
use libmach::traps::{self, VmMapArgs};
use libmach::{Args, KernReturn, PortName, thread};

libmach::main!(main);

const PAGE: u64 = 4096;
const VM_PROT_READ: i32 = 1;
const VM_PROT_WRITE: i32 = 2;
const VM_INHERIT_SHARE: i32 = 0;
const VM_INHERIT_NONE: i32 = 2;
/// `exception_raise`'s id and its request's size (header; thread, task, exception, code
/// and subcode, each after its 8-byte type descriptor).
const EXCEPTION_RAISE_ID: i32 = 2400;
const EXCEPTION_RAISE_SIZE: u32 = 112;
/// FPCR bits that hold what is set (AHP, DN, FZ, RMode); FPSR's cumulative flags and QC.
const FPCR_MASK: u64 = 0x07c0_0000;
const FPSR_MASK: u64 = 0x0800_009f;

fn t() -> ipc::Client<ipc::Trap> {
    ipc::transport()
}

fn anon(size: u64, cur: i32, max: i32, inheritance: i32) -> VmMapArgs {
    VmMapArgs {
        size,
        mask: 0,
        anywhere: true,
        memory_object: PortName::NULL,
        offset: 0,
        copy: false,
        cur_protection: cur,
        max_protection: max,
        inheritance,
    }
}

// --- vm_map, trap 64 ----------------------------------------------------------------------

fn vm_map_trap(c: &mut Checks) {
    let me = traps::mach_task_self();
    let task = ipc::task_self();
    // Each stacked argument a value the default would not give.
    let args = anon(
        3 * PAGE,
        VM_PROT_READ,
        VM_PROT_READ | VM_PROT_WRITE,
        VM_INHERIT_NONE,
    );
    match traps::vm_map(me, 0, &args) {
        Ok(at) => {
            c.check(
                at != 0 && at % PAGE == 0,
                "vm_map trap (11 arguments) maps anonymous memory",
                format_args!("at {at:#x}"),
            );
            let mut probe = at;
            match mach::vm_region(&mut t(), &task, &mut probe) {
                Ok(r) => {
                    c.check_eq("region starts where the trap said", probe, at);
                    c.check_eq("region size (x2)", r.size, 3 * PAGE);
                    c.check_eq(
                        "region protection: the 9th argument, from [sp]",
                        r.protection,
                        VM_PROT_READ,
                    );
                    c.check_eq(
                        "region maximum protection: the 10th, from [sp + 8]",
                        r.max_protection,
                        VM_PROT_READ | VM_PROT_WRITE,
                    );
                    c.check_eq(
                        "region inheritance: the 11th, from [sp + 16]",
                        r.inheritance,
                        VM_INHERIT_NONE,
                    );
                }
                Err(e) => {
                    c.check(
                        false,
                        "vm_region of the trap's mapping",
                        format_args!("{e:?}"),
                    );
                }
            }
            // SAFETY: the region was just mapped for this test; nothing uses it.
            let _ = unsafe { traps::vm_deallocate(me, at, 3 * PAGE) };
        }
        Err(e) => {
            c.check(
                false,
                "vm_map trap maps anonymous memory",
                format_args!("{e:?}"),
            );
        }
    }
    // A second mapping with other stacked values: the trap reads them each time.
    match traps::vm_map(me, 0, &anon(PAGE, 3, 7, VM_INHERIT_SHARE)) {
        Ok(at) => {
            let mut probe = at;
            let seen = mach::vm_region(&mut t(), &task, &mut probe)
                .map(|r| (r.protection, r.max_protection, r.inheritance));
            c.check_eq(
                "second mapping: protection, maximum, inheritance from the stack",
                seen,
                Ok((3, 7, VM_INHERIT_SHARE)),
            );
            // The memory is there and writable (current protection read and write).
            // SAFETY: the page was just mapped read and write for this test.
            unsafe { core::ptr::write_volatile(at as *mut u64, 0x7261_7073) };
            // SAFETY: as above.
            let back = unsafe { core::ptr::read_volatile(at as *const u64) };
            c.check_eq("the trap's memory is usable", back, 0x7261_7073);
            // SAFETY: the page was mapped for this test; nothing uses it now.
            let _ = unsafe { traps::vm_deallocate(me, at, PAGE) };
        }
        Err(e) => {
            c.check(false, "second vm_map trap", format_args!("{e:?}"));
        }
    }
    // Refusals that only a stacked argument can cause.
    let bad = [
        ("cur_protection 8", anon(PAGE, 8, 7, VM_INHERIT_SHARE)),
        ("max_protection 0x10", anon(PAGE, 1, 0x10, VM_INHERIT_SHARE)),
        ("inheritance 3", anon(PAGE, 1, 7, 3)),
    ];
    for (what, a) in bad {
        c.check_eq(
            &format!("vm_map trap refuses a stacked {what}"),
            traps::vm_map(me, 0, &a),
            Err(KernReturn::InvalidArgument),
        );
    }
    // The memory object: a port that is no memory object, a name that is nothing.
    let port = ReceiveRight::from_name(traps::mach_reply_port());
    let with_object = |name: PortName| VmMapArgs {
        memory_object: name,
        ..anon(PAGE, 1, 7, VM_INHERIT_SHARE)
    };
    // No send right under the name: the copy-in's code (GNU Mach `ipc_object_copyin`).
    c.check_eq(
        "vm_map trap with a receive right alone as object",
        traps::vm_map(me, 0, &with_object(port.name())),
        Err(KernReturn::InvalidRight),
    );
    let made = traps::mach_port_insert_right(
        me,
        port.name(),
        port.name(),
        libmach::abi::message::MACH_MSG_TYPE_MAKE_SEND,
    );
    c.check_eq("a send right to our port", made, Ok(()));
    c.check_eq(
        "vm_map trap with a port that is no memory object",
        traps::vm_map(me, 0, &with_object(port.name())),
        Err(KernReturn::InvalidArgument),
    );
    let _ = traps::mach_port_deallocate(me, port.name());
    drop(port);
    c.check_eq(
        "vm_map trap with a name this task does not have as object",
        traps::vm_map(me, 0, &with_object(PortName(0x0012_3403))),
        Err(KernReturn::InvalidName),
    );
    // A first argument that names no task: the library would fall back on the RPC.
    let not_a_task = ReceiveRight::from_name(traps::mach_reply_port());
    c.check_eq(
        "vm_map trap on a name that is no task",
        traps::vm_map(not_a_task.name(), 0, &anon(PAGE, 1, 7, VM_INHERIT_SHARE)),
        Err(KernReturn::SendInterrupted),
    );
    // A bad address word: nothing is mapped.
    // SAFETY: the kernel cannot write at 0x10 (page 0 is never mapped).
    let r = unsafe { traps::vm_map_raw(me, 0x10 as *mut u64, &anon(PAGE, 1, 7, 0)) };
    c.check_eq(
        "vm_map trap with an unreadable address word",
        r,
        KernReturn::InvalidAddress,
    );
}

/// The "time" device's memory object (`device_map` on the master port, `argv[2]`) through
/// the trap: the RPC's routine gives the device's read-only page, and refuses write
/// access the same way.
fn vm_map_trap_of_a_device(c: &mut Checks, args: &Args) {
    use libmach::abi::device::D_READ;
    use libmach::mig::device;
    let me = traps::mach_task_self();
    let Some(master) = args.device_port() else {
        c.check(
            false,
            "argv[2] names the device master port",
            format_args!("none"),
        );
        return;
    };
    let master = ManuallyDrop::new(SendRight::from_name(master));
    let pager = device::device_open(&mut t(), &master, D_READ, c"time")
        .map(|o| o.device)
        .and_then(|time| {
            device::device_map(&mut t(), &time, VM_PROT_READ, 0, PAGE, 0).map(|o| o.pager)
        });
    let pager = match pager {
        Ok(p) => p,
        Err(e) => {
            c.check(
                false,
                "the time device's memory object",
                format_args!("{e:?}"),
            );
            return;
        }
    };
    let object = |cur, max| VmMapArgs {
        memory_object: pager.name(),
        ..anon(PAGE, cur, max, VM_INHERIT_SHARE)
    };
    c.check_eq(
        "vm_map trap of the time page for writing",
        traps::vm_map(me, 0, &object(VM_PROT_READ, VM_PROT_READ | VM_PROT_WRITE)),
        Err(KernReturn::ProtectionFailure),
    );
    match traps::vm_map(me, 0, &object(VM_PROT_READ, VM_PROT_READ)) {
        Ok(at) => {
            // `mapped_time_value_t` (seconds, microseconds, check_seconds), rewritten every
            // tick: a zero-fill page would never move.
            let read = || {
                // SAFETY: the page was just mapped readable for this test; the value is at
                // its start.
                let v = unsafe {
                    core::ptr::read_volatile(at as *const libmach::abi::device::MappedTimeValue)
                };
                (v.seconds, v.microseconds)
            };
            let first = read();
            armach_tests::sleep_ms(50);
            let later = read();
            c.check(
                later > first && (0..1_000_000).contains(&later.1),
                "vm_map trap maps the time page: the time in it advances",
                format_args!("{first:?} then {later:?} at {at:#x}"),
            );
            // SAFETY: nothing uses the page any more.
            let _ = unsafe { traps::vm_deallocate(me, at, PAGE) };
        }
        Err(e) => {
            c.check(false, "vm_map trap of the time page", format_args!("{e:?}"));
        }
    }
}

// --- a stack the trap cannot read -------------------------------------------------------

/// An 8-aligned message buffer.
#[repr(C, align(8))]
struct Buf([u8; 256]);

fn word32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn word64(b: &[u8], at: usize) -> u64 {
    u64::from(word32(b, at)) | (u64::from(word32(b, at + 4)) << 32)
}

/// A child thread makes the `vm_map` trap with `sp` at `sp`; its exception port is ours.
/// The `exception_raise` it sends: (exception, code, subcode), or why there was none.
fn bad_stack_with_handler(sp: u64) -> Result<(u32, u32, u64), alloc::string::String> {
    let child = Child::new(&[insn::SVC_0, insn::B_SELF]).map_err(|e| format!("child: {e:?}"))?;
    let port = ReceiveRight::from_name(traps::mach_reply_port());
    traps::mach_port_insert_right(
        traps::mach_task_self(),
        port.name(),
        port.name(),
        libmach::abi::message::MACH_MSG_TYPE_MAKE_SEND,
    )
    .map_err(|e| format!("insert_right: {e:?}"))?;
    child
        .set_exception_port(port.name())
        .map_err(|e| format!("exception port: {e:?}"))?;
    child
        .start_with_sp(
            child.code,
            sp,
            &[(8, (VM_MAP as i64).wrapping_neg() as u64)],
        )
        .map_err(|e| format!("start: {e:?}"))?;
    let mut buf = Buf([0; 256]);
    // SAFETY: a receive into our own buffer; 10 s is far beyond what the fault takes.
    let r = unsafe {
        traps::mach_msg(
            buf.0.as_mut_ptr(),
            option::RCV_MSG | option::RCV_TIMEOUT,
            0,
            256,
            port.name(),
            10_000,
            PortName::NULL,
        )
    };
    if r != KernReturn::Success {
        return Err(format!("receive: {r:?}"));
    }
    let b = &buf.0;
    let (size, id) = (word32(b, 4), word32(b, 28) as i32);
    // The rights the request brought: the reply right, the thread's and the task's.
    for at in [16, 40, 56] {
        let _ = traps::mach_port_deallocate(traps::mach_task_self(), PortName(word32(b, at)));
    }
    if id != EXCEPTION_RAISE_ID || size != EXCEPTION_RAISE_SIZE {
        return Err(format!("message id {id} size {size}"));
    }
    // Not answered: the child is terminated (dropped) while its thread waits.
    drop(child);
    Ok((word32(b, 72), word32(b, 88), word64(b, 104)))
}

fn bad_stack(c: &mut Checks) {
    // GNU Mach reads the stacked words in pairs from the top down (three arguments: four
    // words, the first read at sp + 24) after checking that the top (sp + 32) is a user
    // address; the address reported is the first that failed.
    let kernel_half = 0xffff_0000_0000_0000u64;
    for (sp, address) in [(0x8u64, 0x20u64), (kernel_half, kernel_half + 32)] {
        c.check_eq(
            &format!("vm_map trap with sp {sp:#x}: the handler is told"),
            bad_stack_with_handler(sp),
            Ok((
                EXC_BAD_ACCESS,
                KernReturn::InvalidAddress.code() as u32,
                address,
            )),
        );
    }
    // No handler: the kernel reports it and the child task ends.
    c.note(format_args!(
        "expecting EXC_BAD_ACCESS code 1 (KERN_INVALID_ADDRESS) subcode 0x30 from a vm_map trap with sp 0x18"
    ));
    match Child::new(&[insn::SVC_0, insn::B_SELF]) {
        Ok(child) => {
            let started = child.start_with_sp(
                child.code,
                0x18,
                &[(8, (VM_MAP as i64).wrapping_neg() as u64)],
            );
            c.check_eq("child with a bad stack started", started, Ok(()));
            c.check_eq(
                "its thread and task gone after the report",
                child.wait_gone(),
                Ok(()),
            );
        }
        Err(e) => {
            c.check(false, "child task", format_args!("{e:?}"));
        }
    }
}

// --- thread_set_self_state ----------------------------------------------------------------

/// A pattern for x0-x17.
fn xpattern(i: usize) -> u64 {
    0x5e1f_0000_0000_0000 | ((i as u64 + 1) * 0x0101_0101)
}

fn self_state_general(c: &mut Checks) {
    let mut state = Aarch64ThreadState::default();
    for i in 0..18 {
        state.x[i] = xpattern(i);
    }
    let mut out = [0u64; 18];
    let landed: u64;
    let code: u64;
    // SAFETY: the asm fills in the state's callee-saved registers (x18-x30), sp, pc (the
    // label after the trap) and TLS register from the live ones, so the thread goes on at
    // the label with everything the compiler keeps as it was and only x0-x17 (declared
    // clobbered) changed; it then stores x0-x17 through x21 (restored to `out`). If the
    // trap returns instead, its code is kept. `state` and `out` are locals.
    unsafe {
        asm!(
            "str x18, [x20, #18 * 8]",
            "stp x19, x20, [x20, #19 * 8]",
            "stp x21, x22, [x20, #21 * 8]",
            "stp x23, x24, [x20, #23 * 8]",
            "stp x25, x26, [x20, #25 * 8]",
            "stp x27, x28, [x20, #27 * 8]",
            "stp x29, x30, [x20, #29 * 8]",
            "mov x9, sp",
            "adr x10, 2f",
            "stp x9, x10, [x20, #31 * 8]",
            "mrs x9, tpidr_el0",
            "str x9, [x20, #33 * 8]",
            "mov x0, #{flavor}",
            "mov x1, x20",
            "mov x2, #{count}",
            "mov x8, #{trap}",
            "svc #0",
            // Returned: the trap failed.
            "mov x23, x0",
            "mov x22, #0",
            "b 3f",
            "2:",
            "stp x0, x1, [x21]",
            "stp x2, x3, [x21, #16]",
            "stp x4, x5, [x21, #32]",
            "stp x6, x7, [x21, #48]",
            "stp x8, x9, [x21, #64]",
            "stp x10, x11, [x21, #80]",
            "stp x12, x13, [x21, #96]",
            "stp x14, x15, [x21, #112]",
            "stp x16, x17, [x21, #128]",
            "mov x22, #1",
            "mov x23, #0",
            "3:",
            flavor = const AARCH64_THREAD_STATE,
            count = const AARCH64_THREAD_STATE_COUNT,
            trap = const -(libmach::abi::traps::THREAD_SET_SELF_STATE as i64),
            in("x20") &raw mut state,
            in("x21") out.as_mut_ptr(),
            out("x22") landed,
            out("x23") code,
            out("x0") _, out("x1") _, out("x2") _, out("x3") _, out("x4") _,
            out("x5") _, out("x6") _, out("x7") _, out("x8") _, out("x9") _,
            out("x10") _, out("x11") _, out("x12") _, out("x13") _, out("x14") _,
            out("x15") _, out("x16") _, out("x17") _,
        );
    }
    c.check_eq(
        "thread_set_self_state(AARCH64_THREAD_STATE) goes on at the new pc",
        (landed, KernReturn::from_reg(code)),
        (1, KernReturn::Success),
    );
    let expected: [u64; 18] = core::array::from_fn(xpattern);
    c.check_eq("x0-x17 there are the state's", out, expected);
}

fn vpattern(i: usize, salt: u8) -> u128 {
    u128::from_le_bytes(core::array::from_fn(|k| {
        (i as u8).wrapping_mul(17).wrapping_add(k as u8 * 29) ^ salt
    }))
}

fn float_state(salt: u8, fpcr: u64, fpsr: u64) -> Aarch64FloatState {
    Aarch64FloatState {
        v: core::array::from_fn(|i| vpattern(i, salt)),
        fpsr,
        fpcr,
        ..Aarch64FloatState::default()
    }
}

fn self_state_float(c: &mut Checks) {
    let (fpcr, fpsr) = (0x0340_0000u64, 0x0800_0013u64);
    let state = float_state(0x3c, fpcr, fpsr);
    let words = state.to_words();
    let mut v = [0u128; 32];
    let code: u64;
    let (seen_fpcr, seen_fpsr): (u64, u64);
    // SAFETY: the trap loads v0-v31, FPCR and FPSR (all declared clobbered, FPCR/FPSR
    // saved first and put back last); the asm stores v0-v31 into `v` (512 bytes) and reads
    // FPCR/FPSR. Only locals are touched.
    unsafe {
        asm!(
            "mrs x16, fpcr",
            "mrs x17, fpsr",
            "mov x0, #{flavor}",
            "mov x1, x9",
            "mov x2, #{count}",
            "mov x8, #{trap}",
            "svc #0",
            "mov x11, x0",
            armach_tests::st1_v0_v31!("x10"),
            "mrs x12, fpcr",
            "mrs x13, fpsr",
            "msr fpcr, x16",
            "msr fpsr, x17",
            flavor = const AARCH64_FLOAT_STATE,
            count = const AARCH64_FLOAT_STATE_COUNT,
            trap = const -(libmach::abi::traps::THREAD_SET_SELF_STATE as i64),
            in("x9") words.as_ptr(),
            inout("x10") v.as_mut_ptr() => _,
            out("x11") code,
            out("x12") seen_fpcr,
            out("x13") seen_fpsr,
            out("x16") _, out("x17") _,
            out("x0") _, out("x1") _, out("x2") _, out("x3") _, out("x4") _,
            out("x5") _, out("x6") _, out("x7") _, out("x8") _,
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
    c.check_eq(
        "thread_set_self_state(AARCH64_FLOAT_STATE) returns",
        KernReturn::from_reg(code),
        KernReturn::Success,
    );
    let first_bad = (0..32).find(|&i| v[i] != state.v[i]);
    c.check(
        first_bad.is_none(),
        "v0-v31 after it are the state's",
        format_args!("first differing: {first_bad:?}"),
    );
    c.check_eq(
        "FPCR and FPSR after it are the state's",
        (seen_fpcr & FPCR_MASK, seen_fpsr & FPSR_MASK),
        (fpcr, fpsr),
    );
}

fn self_state_refusals(c: &mut Checks) {
    let good = Aarch64ThreadState::default().to_words();
    let float = Aarch64FloatState::default().to_words();
    // EL1h.
    let bad_cpsr = Aarch64ThreadState {
        cpsr: 0x5,
        ..Aarch64ThreadState::default()
    }
    .to_words();
    let cases: [(&str, u32, *const u32, u32); 7] = [
        ("flavor 99", 99, good.as_ptr(), AARCH64_THREAD_STATE_COUNT),
        ("count 0", AARCH64_THREAD_STATE, good.as_ptr(), 0),
        ("count 1025", AARCH64_THREAD_STATE, good.as_ptr(), 1025),
        (
            "69 words of AARCH64_THREAD_STATE",
            AARCH64_THREAD_STATE,
            good.as_ptr(),
            AARCH64_THREAD_STATE_COUNT - 1,
        ),
        (
            "135 words of AARCH64_FLOAT_STATE",
            AARCH64_FLOAT_STATE,
            float.as_ptr(),
            AARCH64_FLOAT_STATE_COUNT - 1,
        ),
        (
            "an unreadable state",
            AARCH64_THREAD_STATE,
            0x8 as *const u32,
            AARCH64_THREAD_STATE_COUNT,
        ),
        (
            "a cpsr naming EL1",
            AARCH64_THREAD_STATE,
            bad_cpsr.as_ptr(),
            AARCH64_THREAD_STATE_COUNT,
        ),
    ];
    for (what, flavor, state, count) in cases {
        // SAFETY: each case is refused before anything changes (the check is that it
        // returns); were one accepted, the all-zero general state would jump to 0 and
        // fault, which fails the run rather than corrupting it.
        let r = unsafe { traps::thread_set_self_state(flavor, state, count) };
        c.check_eq(
            &format!("thread_set_self_state with {what}"),
            r,
            KernReturn::InvalidArgument,
        );
    }
}

// --- AARCH64_FLOAT_STATE of a suspended thread -------------------------------------------

static READY: AtomicU32 = AtomicU32::new(0);
static GO: AtomicU32 = AtomicU32::new(0);

/// What the spinning thread ends with: v0-v31, FPCR, FPSR.
struct Ended {
    v: [u128; 32],
    fpcr: u64,
    fpsr: u64,
}

/// Load `loaded`'s registers, say so, spin until told to go, store the registers.
fn spin_with(loaded: Aarch64FloatState) -> Ended {
    let mut v = [0u128; 32];
    let (mut fpcr, mut fpsr) = (loaded.fpcr, loaded.fpsr);
    // SAFETY: reads 512 bytes of `loaded.v` and writes 512 of `v`, both locals; stores to
    // and loads from two statics; saves the caller's FPCR/FPSR and puts them back; every
    // register it changes is declared.
    unsafe {
        asm!(
            "mrs x16, fpcr",
            "mrs x17, fpsr",
            "msr fpcr, x12",
            "msr fpsr, x13",
            armach_tests::ld1_v0_v31!("x9"),
            "mov w0, #1",
            "stlr w0, [x14]",
            "1:",
            "yield",
            "ldar w0, [x15]",
            "cbz w0, 1b",
            armach_tests::st1_v0_v31!("x10"),
            "mrs x12, fpcr",
            "mrs x13, fpsr",
            "msr fpcr, x16",
            "msr fpsr, x17",
            inout("x9") loaded.v.as_ptr() => _,
            inout("x10") v.as_mut_ptr() => _,
            inout("x12") fpcr,
            inout("x13") fpsr,
            in("x14") READY.as_ptr(),
            in("x15") GO.as_ptr(),
            out("x16") _, out("x17") _, out("x0") _,
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
    Ended { v, fpcr, fpsr }
}

fn float_state_of_suspended(c: &mut Checks) {
    let loaded = float_state(0xa5, 0x0180_0000, 0x0000_0009);
    let set = float_state(0x5a, 0x0440_0000, 0x0800_0014);
    READY.store(0, Ordering::SeqCst);
    GO.store(0, Ordering::SeqCst);
    let handle = match thread::spawn(move || spin_with(loaded)) {
        Ok(h) => h,
        Err(e) => {
            c.check(false, "spawn the FP thread", format_args!("{e:?}"));
            return;
        }
    };
    let ready = armach_tests::wait_until(20_000, || READY.load(Ordering::SeqCst) != 0);
    c.check(
        ready,
        "the FP thread loaded its registers",
        format_args!("{ready}"),
    );
    let th: &SendRight = handle.thread();
    c.check_eq(
        "thread_suspend of the spinning thread",
        mach::thread_suspend(&mut t(), th),
        Ok(()),
    );
    let mut words = [0u32; AARCH64_FLOAT_STATE_COUNT as usize];
    let got = mach::thread_get_state(&mut t(), th, AARCH64_FLOAT_STATE as i32, &mut words)
        .map(|o| o.old_state_count);
    c.check_eq(
        "thread_get_state(AARCH64_FLOAT_STATE): 136 words",
        got,
        Ok(AARCH64_FLOAT_STATE_COUNT),
    );
    let read = Aarch64FloatState::from_words(&words).unwrap_or_default();
    let first_bad = (0..32).find(|&i| read.v[i] != loaded.v[i]);
    c.check(
        first_bad.is_none(),
        "v0-v31 read are those the thread loaded",
        format_args!("first differing: {first_bad:?}"),
    );
    c.check_eq(
        "FPCR and FPSR read are the thread's",
        (read.fpcr & FPCR_MASK, read.fpsr & FPSR_MASK),
        (loaded.fpcr, loaded.fpsr),
    );
    c.check_eq(
        "thread_set_state(AARCH64_FLOAT_STATE) of the suspended thread",
        mach::thread_set_state(&mut t(), th, AARCH64_FLOAT_STATE as i32, &set.to_words()),
        Ok(()),
    );
    GO.store(1, Ordering::SeqCst);
    c.check_eq("thread_resume", mach::thread_resume(&mut t(), th), Ok(()));
    let ended = handle.join();
    let first_bad = (0..32).find(|&i| ended.v[i] != set.v[i]);
    c.check(
        first_bad.is_none(),
        "the thread goes on with the v0-v31 set",
        format_args!("first differing: {first_bad:?}"),
    );
    c.check_eq(
        "and with the FPCR and FPSR set",
        (ended.fpcr & FPCR_MASK, ended.fpsr & FPSR_MASK),
        (set.fpcr, set.fpsr),
    );
}

/// FPCR's floating-point trap enables (IOE, DZE, OFE, UFE, IXE; IDE), Arm ARM D19.2.
const FPCR_TRAP_ENABLES: u64 = 0x1f00 | (1 << 15);

/// Whether this CPU can trap floating-point exceptions (the only way to `EXC_ARITHMETIC`):
/// the enables are RES0 where it cannot, so a write of them reads back as zero. Reported,
/// not checked: QEMU implements none of them (nor do the Cortex-A72's), so there is no
/// `EXC_ARITHMETIC` to test here; the kernel's decoding of the syndrome stays untested.
fn fp_trap_enables(c: &Checks) {
    let seen: u64;
    // SAFETY: sets the trap enables in FPCR and puts the old value back at once, with no
    // floating-point instruction in between; only the two declared registers change.
    unsafe {
        asm!(
            "mrs {old}, fpcr",
            "orr {new}, {old}, {enables}",
            "msr fpcr, {new}",
            "mrs {new}, fpcr",
            "msr fpcr, {old}",
            old = out(reg) _,
            new = out(reg) seen,
            enables = in(reg) FPCR_TRAP_ENABLES,
            options(nomem, nostack),
        );
    }
    let kept = seen & FPCR_TRAP_ENABLES;
    c.note(format_args!(
        "FPCR trap enables written {FPCR_TRAP_ENABLES:#x}, read back {kept:#x}: {}",
        if kept == 0 {
            "this CPU does not trap floating-point exceptions, EXC_ARITHMETIC cannot happen"
        } else {
            "this CPU keeps some (EXC_ARITHMETIC is possible, not tested here)"
        }
    ));
}

fn main(args: &Args) -> i32 {
    let mut c = Checks::new("traps");
    fp_trap_enables(&c);
    vm_map_trap(&mut c);
    vm_map_trap_of_a_device(&mut c, args);
    bad_stack(&mut c);
    self_state_general(&mut c);
    self_state_float(&mut c);
    self_state_refusals(&mut c);
    float_state_of_suspended(&mut c);
    c.finish()
}
