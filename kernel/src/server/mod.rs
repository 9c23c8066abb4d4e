//! The kernel's own MIG servers (GNU Mach `kern/ipc_kobject.c` and the routines behind
//! it): a message sent to a kernel object's port is served at once, in the sender's
//! context, by the demux functions mig-rs generates from `libmach/defs`, and the reply is
//! handed back to be queued on the request's reply port.
//!
//! ```text
//! generated    the generated traits, demux functions, unimplemented! macros
//! kobject      kernel_server's path: Kmsg -> bytes -> demux chain -> reply Kmsg
//! slots        handles in port slots: the rights and regions of one request and reply
//! objects      Kernel, the traits' implementor; port -> object translation; TaskIpc
//! port         mach_port (3200): Space methods on the target task's space
//! host         the host object, host_info; host_server: mach_host (2600)
//! processor    processors and processor sets as objects with ports; HostSched
//! mach         mach (2000): threads, their state and info, VM; mach_debug (3000): hooks
//! gnumach      gnumach (4200): task and thread names, gsync, vm_wire_all, size limits
//! mach4        mach4 (4000): vm_region_create_proxy (shared memory for vm_map)
//! device       device (2800): console and mapped time on kern::device's devices
//! sched_server armach_sched (5000): thread_migrate, thread_bind, balancing parameters
//! trace_server armach_trace (5200): the scheduler trace's control and per-CPU rings
//! region       out-of-line data the kernel returns, in kernel memory
//! ```
//!
//! What `mach_msg` gives [`kernel_server`]: a `Kmsg` as sent, after copyin: its header
//! rights set (`Kmsg::set_ports`), its body bytes as the sender wrote them except that
//! each port descriptor's `msgt_name` is the right's received type (`MACH_MSG_TYPE_PORT_*`,
//! as GNU Mach's `ipc_kmsg_copyin_body` rewrites it), and each inline right pushed with
//! `Kmsg::push_port` at the byte offset of its 8-byte slot from the start of the message.
//! Whatever the slot bytes hold is replaced by a handle (`slots`). What comes back is a
//! reply `Kmsg` to send (`mqueue::send`, ignoring the queue limit as for any kernel
//! message) or `None`.
//!
//! What the rest of the kernel gives the servers: a task's port carries
//! `KObject::new(KObjectKind::Task, Arc<Task>)` and a thread's `KObject::new(KObjectKind::
//! Thread, Arc<Thread>)`; `TaskIpc for Task` and `ThreadIpc for Thread` (in `objects`) give
//! their space and scheduling; the host and host-privileged ports are [`realhost`]'s, and
//! the host holds the processor and processor-set objects (`processor::Machine`), whose
//! scheduling is `kern::sched::pset`'s through `processor::KernelSched`.

pub mod device;
pub mod generated;
pub mod gnumach;
pub mod host;
pub mod host_server;
pub mod kobject;
pub mod mach;
pub mod mach4;
pub mod objects;
pub mod port;
pub mod processor;
pub mod region;
pub mod sched_server;
pub mod slots;
pub mod trace_server;

#[cfg(test)]
mod tests;

extern crate alloc;

#[cfg(target_os = "none")]
use crate::ipc::{Kmsg, Ledger};
#[cfg(target_os = "none")]
use crate::kern::task::Task;
#[cfg(target_os = "none")]
use alloc::sync::Arc;

pub use host::{Host, HostFacts, HostPorts, realhost};
pub use objects::{After, TaskIpc, ThreadIpc};
pub use region::KernelRegion;

/// Serve `request`, whose destination is a kernel object's port (`Port::is_kernel`), for
/// `sender` (GNU Mach `ipc_kobject_server`): consumes the request and returns the reply to
/// queue on the request's reply right, or `None` when there is none to send. The reply and
/// any out-of-line data in it are charged to `sender`. Never blocks.
///
/// Routines that need their target thread stopped are waited for here, around the call,
/// since the call itself never blocks (GNU Mach's `thread_hold` + `thread_dowait`):
/// `thread_get_state` and `thread_set_state` hold the thread and wait for it to stop
/// before the call and release it after; `thread_suspend` and `thread_abort` of a
/// suspended thread wait after the call until it has stopped (at its clean point, with
/// the result of the call it was in already written); `thread_terminate` of another
/// thread waits after the call until that thread has left its task, as GNU Mach's
/// `thread_terminate` halts its victim before it returns (so `task_threads` no longer
/// lists it). `gsync_wait` blocks after the call, in the wait the call asserted
/// (`After::Block`); a console `device_read_inband` waits for input before the call
/// (`wait_for_console_input`).
#[cfg(target_os = "none")]
pub fn kernel_server(sender: &Arc<Task>, request: Kmsg) -> Option<Kmsg> {
    use crate::kern::sched;
    use crate::kern::thread::Thread;
    use core::sync::atomic::Ordering;
    let ledger: Arc<dyn Ledger> = sender.kmem.clone();
    let id = request.id;
    let target = matches!(
        id,
        ids::THREAD_GET_STATE
            | ids::THREAD_SET_STATE
            | ids::THREAD_SUSPEND
            | ids::THREAD_ABORT
            | ids::THREAD_TERMINATE
    )
    .then(|| request.remote())
    .flatten()
    .filter(|r| r.port().is_kernel())
    .and_then(|r| r.port().kobject())
    .and_then(|k| k.get::<Thread>(crate::ipc::KObjectKind::Thread))
    .filter(|t| !Arc::ptr_eq(t, &sched::current_thread()) && !t.task.is_kernel());
    let held = match &target {
        Some(t) if matches!(id, ids::THREAD_GET_STATE | ids::THREAD_SET_STATE) => {
            t.hold();
            sched::thread_dowait(t);
            true
        }
        _ => false,
    };
    if id == mach_abi::device::ids::DEVICE_READ_INBAND {
        wait_for_console_input(&request);
    }
    let (mut reply, after) = kobject::serve_then::<Task>(&ledger, request);
    if after == After::Block {
        // `gsync_wait` asserted the caller's wait: block now that the server is done, and
        // answer how the wait ended.
        let code = crate::kern::gsync::block();
        if let Some(reply) = reply.as_mut() {
            kobject::set_return_code(reply, code);
        }
    }
    if let Some(t) = target {
        if held {
            t.release();
        } else if id == ids::THREAD_TERMINATE {
            if t.should_terminate() {
                sched::thread_wait_exit(&t);
            }
        } else if t.user_stop_count.load(Ordering::SeqCst) != 0 {
            sched::thread_dowait(&t);
        }
    }
    reply
}

/// Before a `device_read_inband` of the console without `D_NOWAIT`: wait, interruptibly,
/// until there is input (GNU Mach's reader waits for at least one byte, then gets what
/// is there). An interrupted wait leaves the read to find nothing: `D_WOULD_BLOCK`.
#[cfg(target_os = "none")]
fn wait_for_console_input(request: &Kmsg) {
    use crate::kern::device::Device;
    let console = request
        .remote()
        .filter(|r| r.port().is_kernel())
        .and_then(|r| r.port().kobject())
        .and_then(|k| k.get::<Device>(crate::ipc::KObjectKind::Device))
        .is_some_and(|d| d.name == "console");
    // The mode and the count wanted: the values of the first and third items (mode,
    // recnum, bytes_wanted), each after its 8-byte type descriptor. A read that asks for
    // nothing, or for a bad count, is answered at once.
    let (mut mode, mut wanted) = ([0u8; 4], [0u8; 4]);
    let wait = request.body.read(8, &mut mode)
        && request.body.read(40, &mut wanted)
        && u32::from_le_bytes(mode) & mach_abi::device::D_NOWAIT == 0
        && i32::from_le_bytes(wanted) > 0;
    if console && wait {
        crate::kern::console::wait_for_input();
    }
}

/// Ids of the `mach.defs` routines `kernel_server` waits around.
#[cfg(target_os = "none")]
mod ids {
    pub const THREAD_TERMINATE: i32 = 2016;
    pub const THREAD_GET_STATE: i32 = 2017;
    pub const THREAD_SET_STATE: i32 = 2018;
    pub const THREAD_SUSPEND: i32 = 2062;
    pub const THREAD_ABORT: i32 = 2064;
}
