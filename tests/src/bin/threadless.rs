//! `threadless`: GNU Mach's tasks without threads. A task made by `task_create` whose last
//! thread ends lives on: its port stays alive, `task_info` and `task_threads` (none) answer,
//! `task_terminate` ends it (its port then dies). One that no other task can name any more
//! (its creator gives up its last send right) is ended by the kernel, whether or not its
//! own space holds a right to its own port (`mach_task_self`): its cost to its creator's
//! kernel-memory account comes back. Each child is a task of its own
//! (`armach_tests::child`) whose thread runs a few instructions and is terminated by this
//! program.

#![no_std]
#![no_main]

extern crate alloc;

use armach_tests::Checks;
use armach_tests::child::{Child, insn};
use core::mem::ManuallyDrop;
use libmach::abi::info::{TASK_BASIC_INFO, TASK_BASIC_INFO_COUNT};
use libmach::abi::message::MACH_MSG_TYPE_COPY_SEND;
use libmach::ipc;
use libmach::mig::mach;
use libmach::{Args, PortName, kmem_counts, traps};

libmach::main!(main);

/// `mov x8, #-28` (`mach_task_self`), then `svc #0`: the child names its own task.
const MOV_X8_TASK_SELF: u32 = 0x9280_0368;

fn t() -> ipc::Client<ipc::Trap> {
    ipc::transport()
}

/// A child whose thread runs `code` (ending in a branch to itself), then is terminated.
/// The child's task is left with no thread.
fn child_without_threads(c: &mut Checks, what: &str, code: &[u32]) -> Option<Child> {
    let child = match Child::new(code) {
        Ok(child) => child,
        Err(e) => {
            c.check(false, what, format_args!("child: {e:?}"));
            return None;
        }
    };
    let ok = child.start(child.code, &[]).is_ok()
        // Let it run its instructions up to the branch to itself.
        && armach_tests::wait_until(5_000, || {
            let mut words = [0u32; 70];
            mach::thread_get_state(&mut t(), &child.thread, 1, &mut words).is_ok_and(|_| {
                let pc = u64::from(words[64]) | (u64::from(words[65]) << 32);
                pc == child.code + 4 * (code.len() as u64 - 1)
            })
        })
        && mach::thread_terminate(&mut t(), &child.thread).is_ok()
        && armach_tests::wait_thread_terminated(child.thread.name()).is_ok();
    c.check(
        ok,
        what,
        format_args!("its only thread ran and is gone: {ok}"),
    );
    ok.then_some(child)
}

/// Whether `name` is a dead name in our space (its port died).
fn is_dead(name: PortName) -> bool {
    const MACH_PORT_TYPE_DEAD_NAME: u32 = 1 << (16 + 4);
    libmach::mig::mach_port::mach_port_type(&mut t(), &ipc::task_self(), name)
        .is_ok_and(|o| o.ptype & MACH_PORT_TYPE_DEAD_NAME != 0)
}

fn lives_on_until_terminated(c: &mut Checks) {
    let Some(child) = child_without_threads(c, "a child task's only thread ended", &[insn::B_SELF])
    else {
        return;
    };
    c.check(
        !is_dead(child.task.name()),
        "its task port is alive",
        format_args!("{:?}", child.task),
    );
    let mut info = [0i32; TASK_BASIC_INFO_COUNT];
    c.check_eq(
        "task_info(TASK_BASIC_INFO) of the threadless task",
        mach::task_info(&mut t(), &child.task, TASK_BASIC_INFO, &mut info)
            .map(|o| o.task_info_out_count),
        Ok(TASK_BASIC_INFO_COUNT as u32),
    );
    c.check_eq(
        "task_threads of the threadless task: none",
        mach::task_threads(&mut t(), &child.task).map(|o| o.thread_list.names().count()),
        Ok(0),
    );
    // Still there after a while (nothing ends it behind our back).
    armach_tests::sleep_ms(50);
    c.check(
        !is_dead(child.task.name()),
        "its port still alive 50 ms later",
        format_args!("{:?}", child.task),
    );
    c.check_eq(
        "task_terminate of the threadless task",
        mach::task_terminate(&mut t(), &child.task),
        Ok(()),
    );
    c.check(
        armach_tests::wait_until(5_000, || is_dead(child.task.name())),
        "its port dead after task_terminate",
        format_args!("{:?}", child.task),
    );
}

/// The child is given up (every right to it released): the kernel ends it, and what it
/// cost this task comes back.
fn reaped_when_unreachable(c: &mut Checks, what: &str, code: &[u32]) {
    let me = traps::mach_task_self();
    let before = kmem_counts().task_charged;
    let Some(child) = child_without_threads(c, what, code) else {
        return;
    };
    let with_child = kmem_counts().task_charged;
    c.check(
        with_child > before,
        "the child is charged to this task",
        format_args!("{before} -> {with_child} bytes"),
    );
    let child = ManuallyDrop::new(child);
    // The thread's name is a dead name now; the task's our last right to it.
    let _ = traps::mach_port_deallocate(me, child.thread.name());
    let dropped = traps::mach_port_deallocate(me, child.task.name());
    c.check_eq("our last send right to the child released", dropped, Ok(()));
    let back = armach_tests::wait_until(5_000, || kmem_counts().task_charged == before);
    c.check(
        back,
        "the kernel ended the unreachable child: this task's charge is back",
        format_args!("{} bytes, {} before", kmem_counts().task_charged, before),
    );
}

/// Two children that never had threads, each holding a send right to the other's task:
/// given up by us they still name each other, so they live on (GNU Mach would keep them
/// for ever). This program then ends with them alive: once every program the kernel
/// started has ended the kernel ends them too, and the run ends with the leak check.
fn a_cycle_outlives_us_until_the_end(c: &mut Checks) {
    let me = traps::mach_task_self();
    let before = kmem_counts().task_charged;
    let make = || mach::task_create(&mut t(), &ipc::task_self(), false).map(|o| o.child_task);
    let (a, b) = match (make(), make()) {
        (Ok(a), Ok(b)) => (a, b),
        other => {
            c.check(
                false,
                "two empty children",
                format_args!("{:?}", other.0.err()),
            );
            return;
        }
    };
    let name = PortName(0x77);
    let crossed = traps::mach_port_insert_right(a.name(), name, b.name(), MACH_MSG_TYPE_COPY_SEND)
        .and_then(|()| {
            traps::mach_port_insert_right(b.name(), name, a.name(), MACH_MSG_TYPE_COPY_SEND)
        });
    c.check_eq(
        "each child given a send right to the other",
        crossed,
        Ok(()),
    );
    let (a, b) = (ManuallyDrop::new(a), ManuallyDrop::new(b));
    let dropped = traps::mach_port_deallocate(me, a.name())
        .and_then(|()| traps::mach_port_deallocate(me, b.name()));
    c.check_eq("our rights to both released", dropped, Ok(()));
    let now = kmem_counts().task_charged;
    c.check(
        now > before,
        "the two, naming each other, live on (still charged to this task)",
        format_args!("{before} -> {now} bytes"),
    );
    c.note(format_args!(
        "ending with the two alive: the kernel ends them after this program (leak check)"
    ));
}

fn main(_args: &Args) -> i32 {
    let mut c = Checks::new("threadless");
    lives_on_until_terminated(&mut c);
    reaped_when_unreachable(
        &mut c,
        "a child that never named itself, its thread gone",
        &[insn::B_SELF],
    );
    reaped_when_unreachable(
        &mut c,
        "a child that took a right to its own task (mach_task_self), its thread gone",
        &[MOV_X8_TASK_SELF, insn::SVC_0, insn::B_SELF],
    );
    a_cycle_outlives_us_until_the_end(&mut c);
    c.finish()
}
