//! Port sets (GNU Mach `ipc/ipc_pset.c`): a receive point for several ports of one space.
//! While a port is a member, its messages wait in the set's queue, in the order they
//! arrived across all members, so a receive on the set takes the oldest.
//!
//! Lock order: a member's port lock, then the set's (`LockLevel::IpcSet`). Members are
//! always receive rights in the set's own space; the set keeps no list of them (the space
//! is scanned when one is needed, as GNU Mach's `mach_port_get_set_status` does). When a
//! set dies, its members leave it at once (GNU Mach lets them go lazily).

extern crate alloc;

use super::abi::PortName;
use super::kmsg::KmsgQueue;
use super::ledger::{Charge, Kind, Ledger};
use super::port::{Port, next_id};
use crate::mm::kmem;
use crate::sync::{IrqSpinLock, IrqSpinLockGuard, LockLevel};
use alloc::sync::Arc;
use mach_abi::KernReturn;

pub(crate) struct SetState {
    pub active: bool,
    /// The space holding the set and its name there.
    pub space: u64,
    pub name: PortName,
    pub queue: KmsgQueue,
    pub members: u32,
    pub receivers_waiting: bool,
}

pub struct PortSet {
    id: u64,
    pub(crate) state: IrqSpinLock<SetState>,
    _charge: Charge,
}

const _: () = assert!(kmem::fits_granule(
    core::mem::size_of::<PortSet>() + 2 * core::mem::size_of::<usize>(),
    core::mem::align_of::<PortSet>()
));

impl PortSet {
    pub(crate) fn alloc(
        ledger: &Arc<dyn Ledger>,
        space: u64,
        name: PortName,
    ) -> Result<Arc<PortSet>, KernReturn> {
        let charge = Charge::new(ledger, Kind::PortSet, 1)?;
        Ok(Arc::new(PortSet {
            id: next_id(),
            state: IrqSpinLock::new(
                LockLevel::IpcSet,
                SetState {
                    active: true,
                    space,
                    name,
                    queue: KmsgQueue::new(),
                    members: 0,
                    receivers_waiting: false,
                },
            ),
            _charge: charge,
        }))
    }

    pub fn id(&self) -> u64 {
        self.id
    }

    pub(crate) fn lock(&self) -> IrqSpinLockGuard<'_, SetState> {
        self.state.lock()
    }

    pub fn is_active(&self) -> bool {
        self.lock().active
    }

    /// Members now.
    pub fn member_count(&self) -> u32 {
        self.lock().members
    }

    /// Messages queued now.
    pub fn queued(&self) -> usize {
        self.lock().queue.len()
    }

    pub(crate) fn addr(&self) -> usize {
        self as *const PortSet as usize
    }
}

/// Move the messages sent to `port` from `from` to the end of `to`, in order. Messages
/// are relinked, not reallocated: this allocates nothing.
pub(crate) fn move_messages(from: &mut KmsgQueue, to: &mut KmsgQueue, port: &Port) {
    let mut rest = KmsgQueue::new();
    while let Some(kmsg) = from.pop_front() {
        if kmsg.is_for(port) {
            to.push_back(kmsg);
        } else {
            rest.push_back(kmsg);
        }
    }
    *from = rest;
}

impl core::fmt::Debug for PortSet {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "PortSet({})", self.id)
    }
}

/// Host tests: the rights in a set's queue.
#[cfg(test)]
impl PortSet {
    pub(crate) fn debug_held_rights(&self, each: &mut dyn FnMut(&super::right::Right)) {
        let st = self.lock();
        for m in &st.queue {
            m.debug_rights(each);
        }
    }
}
