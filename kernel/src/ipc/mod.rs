//! Mach IPC, the core: ports, rights, IPC spaces, port sets, messages in flight and their
//! queues, notifications, with GNU Mach's semantics and return codes. Plain Rust over the
//! kernel's spinlocks, tested on the host; it knows nothing of traps, user memory or
//! threads. `mach_msg` (trap 25) and the `mach_port` traps and server build on it.
//!
//! ```text
//! abi       GNU Mach's numbers not yet in mach-abi (names, type bits, msg codes)
//! ledger    who pays for what: a Ledger trait (mm::kmem plugs in), Charge
//! chunk     bounded storage whose heap blocks each fit a granule
//! port      Port: counts, receiver, queue, requests, kernel object
//! pset      PortSet
//! kmsg      Kmsg: header rights, body bytes, port slots, out-of-line handles
//! right     Right (a right in flight), MsgPort, destruction and notifications
//! mqueue    send, receive, set membership, the wait/wake hooks
//! space     Space: names → entries, mach_port_* calls
//! transfer  copyin/copyout of rights and headers between spaces and messages
//! ```
//!
//! # Locking
//!
//! Four lock levels, between `VmMap` and `WaitBucket` in `sync::LockLevel`:
//!
//! 1. `IpcSpace`, one per space: its name map, reverse map and every entry.
//! 2. `IpcTransit`, one for the kernel: held while a message carrying receive rights is
//!    checked for circularity and queued, so that chains of receive rights in transit
//!    stand still while they are walked (GNU Mach's `ipc_port_multiple_lock`).
//! 3. `IpcPort`, one per port: counts, receiver, queue, requests, kernel object. Never
//!    two at once: code that needs two ports takes them one after the other (the
//!    circularity walk, header copyin of two ports, destruction).
//! 4. `IpcSet`, one per port set: its queue. Taken under a member's port lock (send,
//!    membership changes), or alone (receive).
//!
//! A space's lock is taken before any port's; the transit lock is never held with a
//! space's. Wake-ups (`mqueue::set_wakeup`) are called under port and set locks, so the
//! scheduler's locks stay below all of these. Only atomics and the heap are touched under
//! them otherwise: the ledger is atomic counters, and the heap lock is the innermost.
//!
//! Nothing that can cascade runs under a lock: releasing a right can send a notification,
//! destroy a port, destroy that port's queued messages and the rights in them. Such work
//! is gathered in a `right::Deferred` (a few fixed slots) while locked and done by a
//! `right::Reaper` afterwards, iteratively, so that the kernel stack stays bounded
//! whatever chain of ports and messages a task built. A `Right` or `Kmsg` dropped
//! implicitly does the same work in its `Drop`; drop them only with no IPC lock held
//! (the host tests run with the lock-order check on, so a slip shows up as a panic).
//! A dead port keeps nothing, so its last reference may go anywhere.
//!
//! # Memory
//!
//! Every heap block IPC allocates for a task is charged first (`ledger`), and none is
//! larger than a granule (`chunk`, const asserts on `Port`, `PortSet`, `Kmsg`), so with
//! `mm::kmem`'s ledgers an allocation that has been charged cannot fail and one that
//! cannot be charged is `KERN_RESOURCE_SHORTAGE` (`MACH_SEND_NO_BUFFER` for a message,
//! `MACH_MSG_IPC_KERNEL` at receive). Where Rust has a fallible call (`Vec`'s
//! `try_reserve_exact`) it is used; B-tree nodes, `Arc`s and queue nodes rely on the
//! charge. Notifications never fail: every send-once right carries one prepaid granule
//! for the message it will carry, and every notification goes through one.
//!
//! # What the kernel does to use it
//!
//! - Each user task gets a `Space::new(&task.kmem)` (an `Arc<kmem::Ledger>` is an
//!   `Arc<dyn Ledger>`), destroyed with `Space::destroy` when the task dies. The kernel's
//!   own objects (host, processors, sets) are charged to `ledger::Unmetered`.
//! - Kernel objects: `Port::alloc_kernel` with a `KObject` (`Arc<Task>`, `Arc<Thread>`,
//!   …); `Port::make_send` + `Space::copyout` give a task a name for one
//!   (`mach_task_self`, `mach_thread_self`, `mach_host_self`, the bootstrap's host-priv
//!   and device names); `Port::dealloc_kernel` when the object dies.
//! - Traps: `mach_reply_port` (26) is `allocate(MACH_PORT_RIGHT_RECEIVE)`, returning
//!   `MACH_PORT_NULL` on failure. 72 `mach_port_allocate`, 73 `mach_port_deallocate`, 75
//!   `mach_port_allocate_name` call the `Space` methods of the same names on the space
//!   of the task named by the first argument (`MACH_SEND_INTERRUPTED` if it names no
//!   task, so the library falls back to the RPC), copying the new name out to user
//!   memory for 72. 74 `mach_port_insert_right(task, name, right, type)` takes `right`
//!   from the caller's space with `copyin_body_right(right, type)` (`KERN_INVALID_VALUE`
//!   if `type` is not a disposition) and gives it to `insert_right`, which destroys it on
//!   failure. The `mach_port.defs` server (3200) maps each routine the same way;
//!   `mach_port_names` and `mach_port_get_set_status` collect under the space lock into
//!   kernel memory and return it out of line.
//! - `mach_msg` (25), send: read the header from user memory, `Space::copyin_header`,
//!   `Kmsg::new` with the shape of the body (`MACH_SEND_NO_BUFFER` if refused), copy the
//!   body in, walk the type descriptors calling `Space::copyin_body_right` for each port
//!   and `Kmsg::push_port`/`push_ool` (on an error the message is dropped, which
//!   destroys what was copied in, as GNU Mach does), then hand the message to the
//!   kernel's server if the destination `is_kernel()`, else `mqueue::send`; on
//!   `SendResult::Full` wait (`sched::assert_wait` on the key inside the closure, then
//!   `thread_block`, honouring `MACH_SEND_TIMEOUT`) and send again. Receive:
//!   `Space::mqueue_copyin` once, then `RecvSource::receive` in the same pattern
//!   (`Died` is `MACH_RCV_PORT_DIED`, `Changed` `MACH_RCV_PORT_CHANGED`), then
//!   `Space::copyout_header` and `Space::copyout_right` for each slot, writing the names
//!   into the body and or'ing the error bits into `MACH_RCV_BODY_ERROR`; after a header
//!   error, `Space::copyout_dest`.
//! - An RPC the kernel makes (`exception_raise`, `kern::exception`): `Port::alloc_reply`
//!   gives a port whose receive right the kernel keeps (messages to it are queued, not
//!   served), `make_send_once` the reply right for the request, `mqueue::receive_reply`
//!   takes the answer (or asserts the wait for it), `Port::dealloc_reply` destroys it
//!   (`Port::abandon_reply` when the wait was given up with the right still out).
//! - `mqueue::set_wakeup` once at boot, with a function that does
//!   `sched::thread_wakeup(Event { object: key.object, key: key.on }, true)`.

pub mod abi;
pub mod chunk;
pub mod kmsg;
pub mod ledger;
pub mod mqueue;
pub mod port;
pub mod pset;
pub mod right;
pub mod space;
pub mod transfer;

#[cfg(test)]
mod tests;

pub use abi::{Disposition, MsgReturn, PortName, PortRight};
pub use kmsg::{Kmsg, KmsgShape, MaRequest, OolMemory};
pub use ledger::{Charge, Kind, Ledger};
pub use mqueue::{RecvResult, RecvSource, SendResult, WaitKey, WaitOn};
pub use port::{KObject, KObjectKind, Port, PortStatus};
pub use pset::PortSet;
pub use right::{MsgPort, Right, RightKind};
pub use space::{ReceiveStatus, Space};
pub use transfer::{CopiedHeader, ReceivedHeader};
