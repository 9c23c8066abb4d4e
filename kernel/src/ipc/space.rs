//! IPC spaces (GNU Mach `ipc/ipc_space.c`, `ipc_entry.c`, `ipc_right.c`, `mach_port.c`):
//! a task's names for port rights, and the `mach_port_*` calls on them with GNU Mach's
//! return codes.
//!
//! A space maps names to entries: the rights held under the name (a type bit each for
//! send, receive, send-once, port set, dead name), the user-reference count, the port or
//! set, and whether a dead-name request is registered. A reverse map from port to name
//! finds the entry holding send or receive rights for a port, so that send rights
//! received in messages merge under one name. Both maps are B-trees (O(log n)), charged
//! per node: a granule for each root and one for every `kmem::BTREE_MIN_KEYS` entries of
//! either map (`kmem::btree_nodes`, a bound on the nodes a standard B-tree of that many
//! entries holds), so a name costs about a fifth of a granule in each map rather than a
//! granule. The charge is held in one `Charge` per space that grows before an insert and
//! is brought back to the exact bound whenever the space's lock is let go
//! ([`SpaceGuard`]). An entry stays small enough (const-checked) for a node of either map
//! to fit a granule; host tests measure real maps against the charge.
//!
//! Names are handed out from a cursor that only moves forward (skipping `MACH_PORT_NULL`,
//! `MACH_PORT_DEAD` and names in use), so a name is not reused until the 32-bit name space
//! wraps: a stale name finds nothing rather than someone else's right, as GNU Mach's
//! generation numbers intend, and allocation keeps working however many names a task
//! holds (up to its kernel-memory limit).
//!
//! As in GNU Mach, send and send-once rights to a port that died become dead names lazily:
//! the entry keeps the dead port until the name is next looked at ([`SpaceState::check`]).
//! The dead-name notification itself was sent when the port died.
//!
//! Everything in a space is under its lock (`LockLevel::IpcSpace`); port locks are taken
//! under it, one at a time. Work that must not run under the lock (destroying rights,
//! sending notifications) is collected in a `Deferred` and done after unlocking.

extern crate alloc;

use super::abi::{
    MACH_PORT_QLIMIT_MAX, MACH_PORT_UREFS_MAX, PortName, PortRight, notify, port_type,
};
use super::ledger::{Charge, Kind, Ledger};
use super::mqueue;
use super::port::{DnRequest, Port, PortState, Receiver, next_id};
use super::pset::PortSet;
use super::right::{Deferred, MsgPort, Notification, Right, RightKind, Work};
use crate::mm::kmem::btree_nodes;
use crate::sync::{IrqSpinLock, IrqSpinLockGuard, LockLevel};
use alloc::collections::BTreeMap;
use alloc::sync::Arc;
use core::sync::atomic::Ordering;
use mach_abi::KernReturn;

use port_type::{DEAD_NAME, PORT_SET, RECEIVE, SEND, SEND_ONCE, SEND_RIGHTS};

/// What an entry holds.
pub(super) enum Object {
    None,
    Port(Arc<Port>),
    Set(Arc<PortSet>),
}

pub(super) struct Entry {
    /// `MACH_PORT_TYPE_*` bits of the rights held.
    pub ty: u32,
    /// User references: of the send right, the send-once right (1) or the dead name.
    pub urefs: u32,
    pub object: Object,
    /// A dead-name request for this name is registered on the port.
    pub dnrequest: bool,
    /// A message this space forced onto the port's full queue (`MACH_SEND_NOTIFY`) is
    /// still queued (GNU Mach's `IE_BITS_MAREQUEST`).
    pub marequest: bool,
    /// A send-once right's prepaid message.
    pub prepaid: Option<Charge>,
}

impl Entry {
    pub fn port(&self) -> Option<&Arc<Port>> {
        match &self.object {
            Object::Port(p) => Some(p),
            _ => None,
        }
    }
}

pub(super) struct SpaceState {
    pub id: u64,
    pub active: bool,
    pub entries: BTreeMap<u32, Entry>,
    /// The name holding send or receive rights for a port, by port id.
    pub reverse: BTreeMap<u64, u32>,
    pub next_name: u32,
    /// `SpaceState::charge_for` its maps (more just before an insert).
    pub charge: Charge,
}

pub struct Space {
    id: u64,
    ledger: Arc<dyn Ledger>,
    state: IrqSpinLock<SpaceState>,
}

/// Granules a space is charged: itself and the roots of its two maps.
pub const SPACE_BLOCKS: usize = 3;

// A node of either map fits the granule each node is charged (`mm::kmem`); the host tests
// `every_block_is_charged_and_fits_a_granule` and `ten_thousand_receive_rights_charged_per_node`
// measure real nodes.
const _: () = assert!(crate::mm::kmem::fits_granule(
    crate::mm::regions::btree_node_bound(
        core::mem::size_of::<u32>(),
        core::mem::size_of::<Entry>()
    ),
    8
));
const _: () = assert!(crate::mm::kmem::fits_granule(
    crate::mm::regions::btree_node_bound(8, 4),
    8
));

/// The space's state while locked; letting go of it brings the space's charge back to
/// what its maps hold.
pub(super) struct SpaceGuard<'a>(IrqSpinLockGuard<'a, SpaceState>);

impl core::ops::Deref for SpaceGuard<'_> {
    type Target = SpaceState;
    fn deref(&self) -> &SpaceState {
        &self.0
    }
}

impl core::ops::DerefMut for SpaceGuard<'_> {
    fn deref_mut(&mut self) -> &mut SpaceState {
        &mut self.0
    }
}

impl Drop for SpaceGuard<'_> {
    fn drop(&mut self) {
        self.0.settle();
    }
}

/// `mach_port_get_receive_status`'s answer (`mach_port_status_t`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReceiveStatus {
    pub pset: PortName,
    pub seqno: u32,
    pub mscount: u32,
    pub qlimit: u32,
    pub msgcount: u32,
    pub sorights: u32,
    pub srights: bool,
    pub pdrequest: bool,
    pub nsrequest: bool,
}

/// `MACH_PORT_UREFS_OVERFLOW(urefs, delta)`.
fn urefs_overflow(urefs: u32, delta: i64) -> bool {
    delta > 0 && i64::from(urefs) + delta > i64::from(MACH_PORT_UREFS_MAX)
}

/// `MACH_PORT_UREFS_UNDERFLOW(urefs, delta)`.
fn urefs_underflow(urefs: u32, delta: i64) -> bool {
    delta < 0 && -delta > i64::from(urefs)
}

/// Cancel the dead-name request for (`space`, `name`) on a locked port (GNU Mach
/// `ipc_port_dncancel`): returns its send-once right, for a port-deleted notification.
pub(super) fn dncancel(ps: &mut PortState, space: u64, name: u32) -> Option<Right> {
    let request = ps.dnrequests.remove(&(space, name))?;
    if ps.dnrequests.is_empty() {
        // Free the map's root node with the charge that paid for it.
        ps.dnrequests = BTreeMap::new();
        ps.dn_root = None;
    }
    let DnRequest { soright, _charge } = request;
    Some(soright)
}

impl SpaceState {
    /// Granules the maps take now.
    fn needed(&self) -> usize {
        Self::charge_for(self.entries.len(), self.reverse.len())
    }

    /// Granules a space with `entries` names and `reverse` reverse entries is charged.
    pub(super) const fn charge_for(entries: usize, reverse: usize) -> usize {
        SPACE_BLOCKS + btree_nodes(entries) + btree_nodes(reverse)
    }

    /// Charge for `n` more entries (of either map, so up to `n` in each) before inserting
    /// them.
    pub fn reserve(&mut self, n: usize) -> Result<(), KernReturn> {
        let want = Self::charge_for(self.entries.len() + n, self.reverse.len() + n);
        let held = self.charge.blocks();
        if want > held {
            self.charge.grow(want - held)?;
        }
        Ok(())
    }

    /// Give back what removed entries were charged.
    fn settle(&mut self) {
        if self.active {
            debug_assert!(
                self.charge.blocks() >= self.needed(),
                "an entry went in unpaid"
            );
            self.charge.shrink_to(self.needed());
        }
    }

    /// The entry for `name` (GNU Mach `ipc_right_lookup_write`).
    pub fn lookup(&mut self, name: PortName) -> Result<&mut Entry, KernReturn> {
        if !self.active {
            return Err(KernReturn::InvalidTask);
        }
        self.entries.get_mut(&name.0).ok_or(KernReturn::InvalidName)
    }

    /// A name not in use (see the module comment), or `KERN_NO_SPACE`.
    pub fn alloc_name(&mut self) -> Result<u32, KernReturn> {
        // Among any `len + 3` consecutive names at least one is free.
        for _ in 0..self.entries.len() + 3 {
            let n = self.next_name;
            self.next_name = n.wrapping_add(1);
            if PortName(n).is_valid() && !self.entries.contains_key(&n) {
                return Ok(n);
            }
        }
        Err(KernReturn::NoSpace)
    }

    /// If `name` holds send or send-once rights (and no receive right) for a port that
    /// died, make it a dead name (GNU Mach `ipc_right_check`), with one more user
    /// reference if a dead-name request was registered (its notification went out when
    /// the port died). Returns whether it did. Drops the dead port's reference here: a
    /// dead port holds nothing that needs a lock to free.
    pub fn check(&mut self, name: u32) -> bool {
        let SpaceState {
            entries, reverse, ..
        } = self;
        let Some(e) = entries.get_mut(&name) else {
            return false;
        };
        if e.ty & RECEIVE != 0 || e.ty & SEND_RIGHTS == 0 {
            return false;
        }
        let Object::Port(port) = &e.object else {
            return false;
        };
        {
            let mut ps = port.lock();
            if ps.active {
                return false;
            }
            if e.ty & SEND != 0 {
                ps.srights = ps.srights.saturating_sub(1);
            } else {
                ps.sorights = ps.sorights.saturating_sub(1);
            }
        }
        if e.ty & SEND != 0 {
            reverse.remove(&port.id());
        }
        e.object = Object::None;
        e.prepaid = None;
        e.ty = DEAD_NAME;
        if core::mem::take(&mut e.dnrequest) {
            e.urefs = (e.urefs + 1).min(MACH_PORT_UREFS_MAX);
        }
        true
    }

    /// The entry's type and user references after `check` (GNU Mach `ipc_right_info`),
    /// with `MACH_PORT_TYPE_DNREQUEST` if a dead-name request is registered.
    pub fn info(&mut self, name: u32) -> Option<(u32, u32)> {
        self.check(name);
        let e = self.entries.get(&name)?;
        let mut ty = e.ty;
        if e.dnrequest {
            ty |= port_type::DNREQUEST;
        }
        Some((ty, e.urefs))
    }

    /// Remove `name`'s entry (and its reverse entry, if it has one), returning it.
    pub fn remove(&mut self, name: u32) -> Option<Entry> {
        let e = self.entries.remove(&name)?;
        if e.ty & (SEND | RECEIVE) != 0
            && let Some(port) = e.port()
            && self.reverse.get(&port.id()) == Some(&name)
        {
            self.reverse.remove(&port.id());
        }
        Some(e)
    }

    /// The receive-right entries whose port is a member of `set`, by name.
    pub fn members_of(&self, set: &Arc<PortSet>) -> impl Iterator<Item = (u32, &Arc<Port>)> {
        self.entries.iter().filter_map(move |(&n, e)| {
            let port = e.port()?;
            (e.ty & RECEIVE != 0
                && port
                    .lock()
                    .pset
                    .as_ref()
                    .is_some_and(|s| Arc::ptr_eq(s, set)))
            .then_some((n, port))
        })
    }

    /// Destroy a port set held under `name` (its members leave it first).
    fn destroy_set(&mut self, set: &Arc<PortSet>) {
        // Taking members out needs each member's lock, then the set's.
        for e in self.entries.values() {
            if e.ty & RECEIVE == 0 {
                continue;
            }
            if let Some(port) = e.port() {
                let mut ps = port.lock();
                if ps.pset.as_ref().is_some_and(|s| Arc::ptr_eq(s, set)) {
                    mqueue::set_remove(port, &mut ps);
                }
            }
        }
        mqueue::set_destroy(set);
    }
}

/// What [`Space::check`] found wrong with one name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NameProblem {
    /// A send right, send-once right or dead name with no user reference.
    NoUrefs { ty: u32 },
    /// The name holds a port right but no port.
    NoPort { ty: u32 },
    /// The name holds a send right to a live port that counts no send rights.
    NoSendRights,
    /// The name holds a send-once right to a live port that counts none.
    NoSendOnceRights,
    /// The name holds the receive right, the live port says another holder has it.
    ReceiverElsewhere,
    /// The name holds send or receive rights, the reverse map does not lead to it.
    ReverseMissing,
    /// The space (not one name: `name` is 0) holds `held` granules of kernel memory; its
    /// maps' nodes need `needed` (`mm::kmem`).
    Charge { held: usize, needed: usize },
}

/// An inconsistency in a space, found by [`Space::check`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SpaceProblem {
    pub space: u64,
    pub name: u32,
    pub problem: NameProblem,
}

impl core::fmt::Display for SpaceProblem {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        if let NameProblem::Charge { held, needed } = self.problem {
            return write!(
                f,
                "space {}: {held} granules of kernel memory charged, its names need {needed}",
                self.space
            );
        }
        write!(f, "space {} name {:#x}: ", self.space, self.name)?;
        match self.problem {
            NameProblem::NoUrefs { ty } => {
                write!(f, "rights {ty:#x} with 0 user references")
            }
            NameProblem::NoPort { ty } => write!(f, "rights {ty:#x} but no port"),
            NameProblem::NoSendRights => {
                write!(f, "a send right to a port that counts 0 send rights")
            }
            NameProblem::NoSendOnceRights => {
                write!(
                    f,
                    "a send-once right to a port that counts 0 send-once rights"
                )
            }
            NameProblem::ReceiverElsewhere => {
                write!(f, "the receive right, but the port names another receiver")
            }
            NameProblem::ReverseMissing => {
                write!(f, "send or receive rights the reverse map does not lead to")
            }
            NameProblem::Charge { .. } => Ok(()),
        }
    }
}

impl Space {
    /// Check every name of the space against the ports it names (`checks=`): the space's
    /// kernel-memory charge against what its maps need, user references where a right
    /// needs them, the ports' counts of send and send-once rights,
    /// the receiver of each receive right, the reverse map. Takes the space's lock, then
    /// each port's lock in turn (the documented order); reports each problem to `report`.
    pub fn check(&self, report: &mut dyn FnMut(SpaceProblem)) {
        let st = self.lock();
        if !st.active {
            return;
        }
        // Each release of the lock brings the charge to what the maps need (`settle`).
        let (held, needed) = (st.charge.blocks(), st.needed());
        if held != needed {
            report(SpaceProblem {
                space: st.id,
                name: 0,
                problem: NameProblem::Charge { held, needed },
            });
        }
        for (&name, entry) in &st.entries {
            let mut problem = |problem| {
                report(SpaceProblem {
                    space: st.id,
                    name,
                    problem,
                })
            };
            let ty = entry.ty & port_type::ALL_RIGHTS;
            if ty & (port_type::SEND_RIGHTS | port_type::DEAD_NAME) != 0 && entry.urefs == 0 {
                problem(NameProblem::NoUrefs { ty });
            }
            if ty & port_type::PORT_RIGHTS == 0 {
                continue;
            }
            let Some(port) = entry.port() else {
                problem(NameProblem::NoPort { ty });
                continue;
            };
            if ty & port_type::SEND_RECEIVE != 0 && st.reverse.get(&port.id()) != Some(&name) {
                problem(NameProblem::ReverseMissing);
            }
            let ps = port.state.lock();
            if !ps.active {
                continue;
            }
            if ty & port_type::SEND != 0 && ps.srights == 0 {
                problem(NameProblem::NoSendRights);
            }
            if ty & port_type::SEND_ONCE != 0 && ps.sorights == 0 {
                problem(NameProblem::NoSendOnceRights);
            }
            if ty & port_type::RECEIVE != 0 {
                let here = matches!(ps.receiver,
                    Receiver::Space { space, name: n } if space == st.id && n.0 == name);
                if !here {
                    problem(NameProblem::ReceiverElsewhere);
                }
            }
        }
    }

    /// A new, empty space whose names are charged to `ledger`.
    pub fn new(ledger: &Arc<dyn Ledger>) -> Result<Arc<Space>, KernReturn> {
        let charge = Charge::new(ledger, Kind::Entry, SPACE_BLOCKS)?;
        let id = next_id();
        // Charged: the heap has the block (`mm::kmem`).
        Ok(Arc::new(Space {
            id,
            ledger: ledger.clone(),
            state: IrqSpinLock::new(
                LockLevel::IpcSpace,
                SpaceState {
                    id,
                    active: true,
                    entries: BTreeMap::new(),
                    reverse: BTreeMap::new(),
                    next_name: 1,
                    charge,
                },
            ),
        }))
    }

    pub fn id(&self) -> u64 {
        self.id
    }

    pub fn ledger(&self) -> &Arc<dyn Ledger> {
        &self.ledger
    }

    pub(super) fn lock(&self) -> SpaceGuard<'_> {
        SpaceGuard(self.state.lock())
    }

    /// Names in use.
    pub fn entry_count(&self) -> usize {
        self.lock().entries.len()
    }

    pub fn is_active(&self) -> bool {
        self.lock().active
    }

    /// `mach_port_allocate`: a new receive right, port set or dead name under a name the
    /// kernel picks.
    pub fn allocate(&self, right: u32) -> Result<PortName, KernReturn> {
        self.allocate_common(right, None)
    }

    /// `mach_port_allocate_name`: the same under the caller's `name`.
    pub fn allocate_name(&self, right: u32, name: PortName) -> Result<(), KernReturn> {
        if !name.is_valid() {
            return Err(KernReturn::InvalidValue);
        }
        self.allocate_common(right, Some(name)).map(|_| ())
    }

    fn allocate_common(&self, right: u32, name: Option<PortName>) -> Result<PortName, KernReturn> {
        let right = match PortRight::from_u32(right) {
            Some(r @ (PortRight::Receive | PortRight::PortSet | PortRight::DeadName)) => r,
            _ => return Err(KernReturn::InvalidValue),
        };
        let mut st = self.lock();
        if !st.active {
            return Err(KernReturn::InvalidTask);
        }
        let n = match name {
            Some(n) if st.entries.contains_key(&n.0) => return Err(KernReturn::NameExists),
            Some(n) => n.0,
            None => st.alloc_name()?,
        };
        st.reserve(1 + usize::from(right == PortRight::Receive))?;
        let (ty, urefs, object) = match right {
            PortRight::Receive => {
                let port = Port::alloc(
                    &self.ledger,
                    Receiver::Space {
                        space: self.id,
                        name: PortName(n),
                    },
                )?;
                st.reverse.insert(port.id(), n);
                (RECEIVE, 0, Object::Port(port))
            }
            PortRight::PortSet => {
                let set = PortSet::alloc(&self.ledger, self.id, PortName(n))?;
                (PORT_SET, 0, Object::Set(set))
            }
            _ => (DEAD_NAME, 1, Object::None),
        };
        st.entries.insert(
            n,
            Entry {
                ty,
                urefs,
                object,
                dnrequest: false,
                marequest: false,
                prepaid: None,
            },
        );
        Ok(PortName(n))
    }

    /// `mach_port_deallocate`: release one user reference of a send, send-once or dead
    /// name right (GNU Mach `ipc_right_dealloc`).
    pub fn deallocate(&self, name: PortName) -> Result<(), KernReturn> {
        let mut d = Deferred::new();
        let r = self.deallocate_locked(name, &mut d);
        d.run();
        r
    }

    fn deallocate_locked(&self, name: PortName, d: &mut Deferred) -> Result<(), KernReturn> {
        let mut st = self.lock();
        st.lookup(name)?;
        st.check(name.0);
        let st = &mut *st;
        let e = st.entries.get_mut(&name.0).ok_or(KernReturn::InvalidName)?;
        match e.ty {
            DEAD_NAME => {
                if e.urefs <= 1 {
                    st.remove(name.0);
                } else {
                    e.urefs -= 1;
                }
            }
            SEND_ONCE => {
                let mut e = st.remove(name.0).ok_or(KernReturn::InvalidName)?;
                let Object::Port(port) = core::mem::replace(&mut e.object, Object::None) else {
                    return Err(KernReturn::InvalidRight);
                };
                let dn = dncancel(&mut port.lock(), st.id, name.0);
                d.release(Some(Right::new(
                    port,
                    RightKind::SendOnce,
                    e.prepaid.take(),
                )));
                d.notify(dn, Notification::PortDeleted(name));
            }
            SEND => {
                if e.urefs > 1 {
                    e.urefs -= 1;
                    return Ok(());
                }
                let mut e = st.remove(name.0).ok_or(KernReturn::InvalidName)?;
                let Object::Port(port) = core::mem::replace(&mut e.object, Object::None) else {
                    return Err(KernReturn::InvalidRight);
                };
                let dn = if e.dnrequest {
                    dncancel(&mut port.lock(), st.id, name.0)
                } else {
                    None
                };
                d.release(Some(Right::new(port, RightKind::Send, None)));
                d.notify(dn, Notification::PortDeleted(name));
            }
            port_type::SEND_RECEIVE => {
                if e.urefs > 1 {
                    e.urefs -= 1;
                    return Ok(());
                }
                e.ty = RECEIVE;
                e.urefs = 0;
                let port = e.port().cloned().ok_or(KernReturn::InvalidRight)?;
                d.release(Some(Right::new(port, RightKind::Send, None)));
            }
            _ => return Err(KernReturn::InvalidRight),
        }
        Ok(())
    }

    /// `mach_port_destroy`: destroy every right held under `name` (GNU Mach
    /// `ipc_right_destroy`).
    pub fn destroy_name(&self, name: PortName) -> Result<(), KernReturn> {
        let mut d = Deferred::new();
        let r = self.destroy_locked(name, &mut d);
        d.run();
        r
    }

    fn destroy_locked(&self, name: PortName, d: &mut Deferred) -> Result<(), KernReturn> {
        let mut st = self.lock();
        st.lookup(name)?;
        let st = &mut *st;
        let mut e = st.remove(name.0).ok_or(KernReturn::InvalidName)?;
        match core::mem::replace(&mut e.object, Object::None) {
            Object::None => {}
            Object::Set(set) => st.destroy_set(&set),
            Object::Port(port) => Self::release_entry_port(st.id, name, e, port, d),
        }
        Ok(())
    }

    /// Release the port rights of an entry taken out of the space (destroy, or the
    /// space's death; GNU Mach `ipc_right_destroy`/`ipc_right_clean`).
    fn release_entry_port(
        space: u64,
        name: PortName,
        mut e: Entry,
        port: Arc<Port>,
        d: &mut Deferred,
    ) {
        let mut ps = port.lock();
        if !ps.active {
            // Send or send-once rights to a dead port: only the counts.
            if e.ty & SEND != 0 {
                ps.srights = ps.srights.saturating_sub(1);
            }
            if e.ty & SEND_ONCE != 0 {
                ps.sorights = ps.sorights.saturating_sub(1);
            }
            return;
        }
        let dn = if e.dnrequest {
            dncancel(&mut ps, space, name.0)
        } else {
            None
        };
        if e.ty & RECEIVE != 0 {
            mqueue::clear_receiver(&port, &mut ps);
        }
        drop(ps);
        if e.ty & SEND != 0 {
            d.release(Some(Right::new(port.clone(), RightKind::Send, None)));
        }
        if e.ty & RECEIVE != 0 {
            d.push(Work::DestroyPort(port));
        } else if e.ty & SEND_ONCE != 0 {
            d.release(Some(Right::new(
                port,
                RightKind::SendOnce,
                e.prepaid.take(),
            )));
        }
        d.notify(dn, Notification::PortDeleted(name));
    }

    /// `mach_port_mod_refs`: change the user references of one right under `name` by
    /// `delta`; at zero the right goes (GNU Mach `ipc_right_delta`).
    pub fn mod_refs(&self, name: PortName, right: u32, delta: i32) -> Result<(), KernReturn> {
        let right = PortRight::from_u32(right).ok_or(KernReturn::InvalidValue)?;
        let mut d = Deferred::new();
        let r = self.mod_refs_locked(name, right, i64::from(delta), &mut d);
        d.run();
        r
    }

    fn mod_refs_locked(
        &self,
        name: PortName,
        right: PortRight,
        delta: i64,
        d: &mut Deferred,
    ) -> Result<(), KernReturn> {
        let mut st = self.lock();
        st.lookup(name)?;
        let st = &mut *st;
        let n = name.0;
        let ty = st.entries.get(&n).map_or(0, |e| e.ty);
        match right {
            PortRight::PortSet => {
                if ty & PORT_SET == 0 {
                    return Err(KernReturn::InvalidRight);
                }
                match delta {
                    0 => Ok(()),
                    -1 => {
                        if let Some(Entry {
                            object: Object::Set(set),
                            ..
                        }) = st.remove(n)
                        {
                            st.destroy_set(&set);
                        }
                        Ok(())
                    }
                    _ => Err(KernReturn::InvalidValue),
                }
            }
            PortRight::Receive => {
                if ty & RECEIVE == 0 {
                    return Err(KernReturn::InvalidRight);
                }
                match delta {
                    0 => return Ok(()),
                    -1 => {}
                    _ => return Err(KernReturn::InvalidValue),
                }
                if ty & SEND != 0 {
                    // The send right left behind becomes a dead name; the port dies
                    // "first", so no no-senders notification. A dead-name request is
                    // answered now (one more uref for it), not left on the port: with a
                    // port-destroyed request the port lives on (its receive right goes in
                    // the notification) and would keep a request for a name that is dead.
                    let sid = st.id;
                    let SpaceState {
                        entries, reverse, ..
                    } = st;
                    let e = entries.get_mut(&n).ok_or(KernReturn::InvalidName)?;
                    let Object::Port(port) = core::mem::replace(&mut e.object, Object::None) else {
                        return Err(KernReturn::InvalidRight);
                    };
                    reverse.remove(&port.id());
                    e.ty = DEAD_NAME;
                    let had_request = core::mem::take(&mut e.dnrequest);
                    if had_request {
                        e.urefs = (e.urefs + 1).min(MACH_PORT_UREFS_MAX);
                    }
                    let mut ps = port.lock();
                    let dn = if had_request {
                        dncancel(&mut ps, sid, n)
                    } else {
                        None
                    };
                    ps.srights = ps.srights.saturating_sub(1);
                    // With a port-destroyed request the port lives on (its receive right
                    // goes in the notification): if that send right was its last, its
                    // no-senders request is answered now. (GNU Mach leaves `ip_srights`
                    // one too high there, and the request waiting for a sender that is
                    // gone.)
                    let ns = if ps.pdrequest.is_some() && ps.srights == 0 {
                        let mscount = ps.mscount;
                        ps.nsrequest.take().map(|r| (r, mscount))
                    } else {
                        None
                    };
                    mqueue::clear_receiver(&port, &mut ps);
                    drop(ps);
                    d.push(Work::DestroyPort(port));
                    d.notify(dn, Notification::DeadName(name));
                    if let Some((r, mscount)) = ns {
                        d.notify(Some(r), Notification::NoSenders(mscount));
                    }
                } else {
                    let mut e = st.remove(n).ok_or(KernReturn::InvalidName)?;
                    if let Object::Port(port) = core::mem::replace(&mut e.object, Object::None) {
                        let mut ps = port.lock();
                        let dn = if e.dnrequest {
                            dncancel(&mut ps, st.id, n)
                        } else {
                            None
                        };
                        mqueue::clear_receiver(&port, &mut ps);
                        drop(ps);
                        d.push(Work::DestroyPort(port));
                        d.notify(dn, Notification::PortDeleted(name));
                    }
                }
                Ok(())
            }
            PortRight::SendOnce => {
                if ty & SEND_ONCE == 0 {
                    return Err(KernReturn::InvalidRight);
                }
                if !(-1..=0).contains(&delta) {
                    return Err(KernReturn::InvalidValue);
                }
                if st.check(n) {
                    return Err(KernReturn::InvalidRight);
                }
                if delta == 0 {
                    return Ok(());
                }
                let mut e = st.remove(n).ok_or(KernReturn::InvalidName)?;
                if let Object::Port(port) = core::mem::replace(&mut e.object, Object::None) {
                    let dn = if e.dnrequest {
                        dncancel(&mut port.lock(), st.id, n)
                    } else {
                        None
                    };
                    d.release(Some(Right::new(
                        port,
                        RightKind::SendOnce,
                        e.prepaid.take(),
                    )));
                    d.notify(dn, Notification::PortDeleted(name));
                }
                Ok(())
            }
            PortRight::DeadName => {
                if ty & SEND_RIGHTS != 0 {
                    if !st.check(n) {
                        return Err(KernReturn::InvalidRight);
                    }
                } else if ty & DEAD_NAME == 0 {
                    return Err(KernReturn::InvalidRight);
                }
                let e = st.entries.get_mut(&n).ok_or(KernReturn::InvalidName)?;
                if urefs_underflow(e.urefs, delta) {
                    return Err(KernReturn::InvalidValue);
                }
                if urefs_overflow(e.urefs, delta) {
                    return Err(KernReturn::UrefsOverflow);
                }
                let left = (i64::from(e.urefs) + delta) as u32;
                if left == 0 {
                    st.remove(n);
                } else {
                    e.urefs = left;
                }
                Ok(())
            }
            PortRight::Send => {
                if ty & SEND == 0 {
                    return Err(KernReturn::InvalidRight);
                }
                let urefs = st.entries.get(&n).map_or(0, |e| e.urefs);
                if urefs_underflow(urefs, delta) {
                    return Err(KernReturn::InvalidValue);
                }
                // A send right's references stop one short of the maximum.
                if urefs_overflow(urefs + 1, delta) {
                    return Err(KernReturn::UrefsOverflow);
                }
                if st.check(n) {
                    return Err(KernReturn::InvalidRight);
                }
                let left = (i64::from(urefs) + delta) as u32;
                let e = st.entries.get_mut(&n).ok_or(KernReturn::InvalidName)?;
                if left != 0 {
                    e.urefs = left;
                    return Ok(());
                }
                let port = e.port().cloned().ok_or(KernReturn::InvalidRight)?;
                let mut dn = None;
                if e.ty & RECEIVE != 0 {
                    e.ty = RECEIVE;
                    e.urefs = 0;
                } else {
                    let e = st.remove(n).ok_or(KernReturn::InvalidName)?;
                    if e.dnrequest {
                        dn = dncancel(&mut port.lock(), st.id, n);
                    }
                }
                // GNU Mach's order: no-senders, then port-deleted.
                d.release(Some(Right::new(port, RightKind::Send, None)));
                d.notify(dn, Notification::PortDeleted(name));
                Ok(())
            }
        }
    }

    /// `mach_port_get_refs`: the user references of one right under `name` (1 for
    /// receive, send-once and port-set rights; 0 if the name holds other rights).
    pub fn get_refs(&self, name: PortName, right: u32) -> Result<u32, KernReturn> {
        let right = PortRight::from_u32(right).ok_or(KernReturn::InvalidValue)?;
        let mut st = self.lock();
        st.lookup(name)?;
        let (ty, urefs) = st.info(name.0).ok_or(KernReturn::InvalidName)?;
        Ok(if ty & right.type_bit() == 0 {
            0
        } else {
            match right {
                PortRight::Send | PortRight::DeadName => urefs,
                _ => 1,
            }
        })
    }

    /// `mach_port_type`.
    pub fn port_type(&self, name: PortName) -> Result<u32, KernReturn> {
        let mut st = self.lock();
        st.lookup(name)?;
        st.info(name.0)
            .map(|(ty, _)| ty)
            .ok_or(KernReturn::InvalidName)
    }

    /// `mach_port_names`: every name with its type, in name order, given to `each`
    /// under the space's lock (which may take no lock above `IpcSpace`: collect into
    /// kernel memory, copy out afterwards).
    pub fn names(&self, mut each: impl FnMut(PortName, u32)) -> Result<(), KernReturn> {
        let mut st = self.lock();
        if !st.active {
            return Err(KernReturn::InvalidTask);
        }
        let mut from = 0u32;
        while let Some(n) = st.entries.range(from..).next().map(|(&k, _)| k) {
            if let Some((ty, _)) = st.info(n) {
                each(PortName(n), ty);
            }
            match n.checked_add(1) {
                Some(next) => from = next,
                None => break,
            }
        }
        Ok(())
    }

    /// `mach_port_rename` (GNU Mach `ipc_object_rename`, `ipc_right_rename`).
    pub fn rename(&self, old: PortName, new: PortName) -> Result<(), KernReturn> {
        if !new.is_valid() {
            return Err(KernReturn::InvalidValue);
        }
        let mut st = self.lock();
        if !st.active {
            return Err(KernReturn::InvalidTask);
        }
        if st.entries.contains_key(&new.0) {
            return Err(KernReturn::NameExists);
        }
        if old == new || !st.entries.contains_key(&old.0) {
            return Err(KernReturn::InvalidName);
        }
        if st.entries.get(&old.0).is_some_and(|e| e.dnrequest) {
            st.check(old.0);
        }
        let st = &mut *st;
        let e = st.entries.remove(&old.0).ok_or(KernReturn::InvalidName)?;
        match &e.object {
            Object::Port(port) => {
                let mut ps = port.lock();
                if e.dnrequest
                    && let Some(request) = ps.dnrequests.remove(&(st.id, old.0))
                {
                    ps.dnrequests.insert((st.id, new.0), request);
                }
                if e.ty & RECEIVE != 0 {
                    ps.receiver = Receiver::Space {
                        space: st.id,
                        name: new,
                    };
                }
                drop(ps);
                if e.ty & (SEND | RECEIVE) != 0
                    && let Some(r) = st.reverse.get_mut(&port.id())
                {
                    *r = new.0;
                }
            }
            Object::Set(set) => set.lock().name = new,
            Object::None => {}
        }
        st.entries.insert(new.0, e);
        Ok(())
    }

    /// `mach_port_move_member`: put the receive right `member` into the set `after`,
    /// or out of any set if `after` is null (GNU Mach `ipc_pset_move`).
    pub fn move_member(&self, member: PortName, after: PortName) -> Result<(), KernReturn> {
        let mut st = self.lock();
        let e = st.lookup(member)?;
        if e.ty & RECEIVE == 0 {
            return Err(KernReturn::InvalidRight);
        }
        let port = e.port().cloned().ok_or(KernReturn::InvalidRight)?;
        let nset = if after == PortName::NULL {
            None
        } else {
            let e = st.entries.get(&after.0).ok_or(KernReturn::InvalidName)?;
            if e.ty & PORT_SET == 0 {
                return Err(KernReturn::InvalidRight);
            }
            match &e.object {
                Object::Set(s) => Some(s.clone()),
                _ => return Err(KernReturn::InvalidRight),
            }
        };
        let mut ps = port.lock();
        let same = match (&ps.pset, &nset) {
            (Some(a), Some(b)) => Arc::ptr_eq(a, b),
            (None, None) => return Err(KernReturn::NotInSet),
            _ => false,
        };
        if !same {
            mqueue::set_remove(&port, &mut ps);
            if let Some(set) = &nset {
                mqueue::set_add(&port, &mut ps, set);
            }
        }
        Ok(())
    }

    /// `mach_port_get_set_status`: the names of the set's members, given to `each` under
    /// the space's lock.
    pub fn get_set_status(
        &self,
        name: PortName,
        mut each: impl FnMut(PortName),
    ) -> Result<(), KernReturn> {
        let mut st = self.lock();
        let e = st.lookup(name)?;
        let set = match (&e.object, e.ty) {
            (Object::Set(s), PORT_SET) => s.clone(),
            _ => return Err(KernReturn::InvalidRight),
        };
        for (n, _) in st.members_of(&set) {
            each(PortName(n));
        }
        Ok(())
    }

    /// The port of the receive right `name` (GNU Mach `ipc_port_translate_receive`).
    fn translate_receive(st: &mut SpaceState, name: PortName) -> Result<&Arc<Port>, KernReturn> {
        let e = st.lookup(name)?;
        if e.ty & RECEIVE == 0 {
            return Err(KernReturn::InvalidRight);
        }
        e.port().ok_or(KernReturn::InvalidRight)
    }

    /// `mach_port_set_qlimit` (0 to `MACH_PORT_QLIMIT_MAX`); senders that now fit are
    /// woken.
    pub fn set_qlimit(&self, name: PortName, qlimit: u32) -> Result<(), KernReturn> {
        if qlimit > MACH_PORT_QLIMIT_MAX {
            return Err(KernReturn::InvalidValue);
        }
        let mut st = self.lock();
        let port = Self::translate_receive(&mut st, name)?;
        let mut ps = port.lock();
        ps.qlimit = qlimit;
        mqueue::wake_senders_if_room(port, &mut ps);
        Ok(())
    }

    /// `mach_port_set_mscount`.
    pub fn set_mscount(&self, name: PortName, mscount: u32) -> Result<(), KernReturn> {
        let mut st = self.lock();
        let port = Self::translate_receive(&mut st, name)?;
        port.lock().mscount = mscount;
        Ok(())
    }

    /// `mach_port_set_seqno`.
    pub fn set_seqno(&self, name: PortName, seqno: u32) -> Result<(), KernReturn> {
        let mut st = self.lock();
        let port = Self::translate_receive(&mut st, name)?;
        let ps = port.lock();
        // The sequence number is guarded by the lock of the queue holding the port's
        // messages: the set's, while the port is a member.
        let _set_guard = ps.pset.as_ref().map(|s| s.lock());
        port.seqno.store(seqno, Ordering::Relaxed);
        Ok(())
    }

    /// `mach_port_get_receive_status`.
    pub fn get_receive_status(&self, name: PortName) -> Result<ReceiveStatus, KernReturn> {
        let mut st = self.lock();
        let port = Self::translate_receive(&mut st, name)?;
        let ps = port.lock();
        let pset = ps.pset.as_ref().map_or(PortName::NULL, |s| s.lock().name);
        Ok(ReceiveStatus {
            pset,
            seqno: port.seqno.load(Ordering::Relaxed),
            mscount: ps.mscount,
            qlimit: ps.qlimit,
            msgcount: ps.msgcount,
            sorights: ps.sorights,
            srights: ps.srights > 0,
            pdrequest: ps.pdrequest.is_some(),
            nsrequest: ps.nsrequest.is_some(),
        })
    }

    /// `mach_port_request_notification`: register `notify` (a send-once right, or null to
    /// cancel) for a port-destroyed (`id` `MACH_NOTIFY_PORT_DESTROYED`), no-senders or
    /// dead-name notification about `name`; returns the right registered before. On
    /// error `notify` is destroyed (as the MIG server's request would be).
    pub fn request_notification(
        &self,
        name: PortName,
        id: i32,
        sync: u32,
        notify: MsgPort,
    ) -> Result<MsgPort, KernReturn> {
        let notify = match notify {
            MsgPort::Dead => return Err(KernReturn::InvalidCapability),
            MsgPort::Null => None,
            MsgPort::Right(r) if r.kind() == RightKind::SendOnce => Some(r),
            // The interface only carries send-once rights here.
            MsgPort::Right(_) => return Err(KernReturn::InvalidCapability),
        };
        let mut d = Deferred::new();
        let r = self.request_locked(name, id, sync, notify, &mut d);
        d.run();
        r.map(|prev| prev.map_or(MsgPort::Null, MsgPort::Right))
    }

    fn request_locked(
        &self,
        name: PortName,
        id: i32,
        sync: u32,
        notify: Option<Right>,
        d: &mut Deferred,
    ) -> Result<Option<Right>, KernReturn> {
        match id {
            notify::PORT_DESTROYED => {
                if sync != 0 {
                    d.release(notify);
                    return Err(KernReturn::InvalidValue);
                }
                let mut st = self.lock();
                let port = match Self::translate_receive(&mut st, name) {
                    Ok(p) => p,
                    Err(e) => {
                        drop(st);
                        d.release(notify);
                        return Err(e);
                    }
                };
                let mut ps = port.lock();
                Ok(core::mem::replace(&mut ps.pdrequest, notify))
            }
            notify::NO_SENDERS => {
                let mut st = self.lock();
                let port = match Self::translate_receive(&mut st, name) {
                    Ok(p) => p,
                    Err(e) => {
                        drop(st);
                        d.release(notify);
                        return Err(e);
                    }
                };
                let mut ps = port.lock();
                let previous = ps.nsrequest.take();
                let mscount = ps.mscount;
                match notify {
                    Some(n) if ps.srights == 0 && sync <= mscount => {
                        d.notify(Some(n), Notification::NoSenders(mscount));
                    }
                    other => ps.nsrequest = other,
                }
                Ok(previous)
            }
            notify::DEAD_NAME => self.dnrequest_locked(name, sync != 0, notify, d),
            _ => {
                d.release(notify);
                Err(KernReturn::InvalidValue)
            }
        }
    }

    /// GNU Mach `ipc_right_dnrequest`.
    fn dnrequest_locked(
        &self,
        name: PortName,
        immediate: bool,
        notify: Option<Right>,
        d: &mut Deferred,
    ) -> Result<Option<Right>, KernReturn> {
        // Paid before taking the lock; given back if not needed.
        let charges = match &notify {
            Some(_) => match (
                Charge::new(&self.ledger, Kind::Request, 1),
                Charge::new(&self.ledger, Kind::Request, 1),
            ) {
                (Ok(a), Ok(b)) => Some((a, b)),
                _ => {
                    d.release(notify);
                    return Err(KernReturn::ResourceShortage);
                }
            },
            None => None,
        };
        let mut st = self.lock();
        if let Err(e) = st.lookup(name) {
            drop(st);
            d.release(notify);
            return Err(e);
        }
        let id = st.id;
        let ty = st.entries.get(&name.0).map_or(0, |e| e.ty);
        if ty & port_type::PORT_RIGHTS != 0 && !st.check(name.0) {
            let e = st.entries.get_mut(&name.0).ok_or(KernReturn::InvalidName)?;
            let port = e.port().cloned().ok_or(KernReturn::InvalidRight)?;
            let mut ps = port.lock();
            if !ps.active {
                // The port died since `check` looked (its lock was let go in between): a
                // request put on it now would never be sent. It is a dead name now (GNU
                // Mach checks and registers under one port lock).
                drop(ps);
                st.check(name.0);
                return self.dnrequest_dead(st, name, immediate, notify, d);
            }
            let previous = if e.dnrequest {
                dncancel(&mut ps, id, name.0)
            } else {
                None
            };
            e.dnrequest = false;
            if let (Some(soright), Some((charge, root))) = (notify, charges) {
                if ps.dnrequests.is_empty() {
                    ps.dn_root = Some(root);
                }
                ps.dnrequests.insert(
                    (id, name.0),
                    DnRequest {
                        soright,
                        _charge: charge,
                    },
                );
                e.dnrequest = true;
            }
            return Ok(previous);
        }
        self.dnrequest_dead(st, name, immediate, notify, d)
    }

    /// The rest of `dnrequest_locked` for a name that holds no live port right.
    fn dnrequest_dead(
        &self,
        mut st: SpaceGuard<'_>,
        name: PortName,
        immediate: bool,
        notify: Option<Right>,
        d: &mut Deferred,
    ) -> Result<Option<Right>, KernReturn> {
        let e = st.entries.get_mut(&name.0).ok_or(KernReturn::InvalidName)?;
        if e.ty == DEAD_NAME && immediate && notify.is_some() {
            if urefs_overflow(e.urefs, 1) {
                drop(st);
                d.release(notify);
                return Err(KernReturn::UrefsOverflow);
            }
            e.urefs += 1;
            drop(st);
            d.notify(notify, Notification::DeadName(name));
            return Ok(None);
        }
        let port_or_dead = e.ty & port_type::PORT_OR_DEAD != 0;
        drop(st);
        d.release(notify);
        Err(if port_or_dead {
            KernReturn::InvalidArgument
        } else {
            KernReturn::InvalidRight
        })
    }

    /// `mach_port_insert_right`: put a right received in the request (`poly`) into this
    /// space under `name`, as if received in a message (GNU Mach
    /// `ipc_object_copyout_name`, no overflow). On error the right is destroyed.
    pub fn insert_right(&self, name: PortName, poly: MsgPort) -> Result<(), KernReturn> {
        if !name.is_valid() {
            return Err(KernReturn::InvalidValue);
        }
        let MsgPort::Right(right) = poly else {
            return Err(KernReturn::InvalidCapability);
        };
        let mut d = Deferred::new();
        let r = self.copyout_name(right, name, &mut d);
        d.run();
        r
    }

    /// `mach_port_extract_right`: take a right out of this space as if it were sent in a
    /// message with disposition `msgt_name` (GNU Mach `ipc_object_copyin`).
    pub fn extract_right(&self, name: PortName, msgt_name: u32) -> Result<MsgPort, KernReturn> {
        let disposition =
            super::abi::Disposition::from_u32(msgt_name).ok_or(KernReturn::InvalidValue)?;
        self.copyin(name, disposition)
    }

    /// Destroy the space (GNU Mach `ipc_space_destroy`, at task death): every right in it
    /// is released, every port whose receive right it held destroyed, every dead-name
    /// request it made cancelled (with port-deleted notifications).
    pub fn destroy(&self) {
        let (entries, reverse) = {
            let mut st = self.lock();
            if !st.active {
                return;
            }
            st.active = false;
            (
                core::mem::take(&mut st.entries),
                core::mem::take(&mut st.reverse),
            )
        };
        drop(reverse);
        // Members leave their sets before anything dies.
        for e in entries.values() {
            if e.ty & RECEIVE != 0
                && let Some(port) = e.port()
            {
                let mut ps = port.lock();
                mqueue::set_remove(port, &mut ps);
            }
        }
        for (n, mut e) in entries {
            let mut d = Deferred::new();
            match core::mem::replace(&mut e.object, Object::None) {
                Object::None => {}
                Object::Set(set) => mqueue::set_destroy(&set),
                Object::Port(port) => {
                    Self::release_entry_port(self.id, PortName(n), e, port, &mut d)
                }
            }
            d.run();
        }
        // The maps' nodes are gone: only the space itself is left to pay for.
        self.lock().charge.shrink_to(SPACE_BLOCKS);
    }
}

impl Drop for Space {
    fn drop(&mut self) {
        self.destroy();
    }
}

impl core::fmt::Debug for Space {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "Space({})", self.id)
    }
}

/// Host tests: what a space holds, and its internal consistency.
#[cfg(test)]
impl Space {
    /// Every entry: name, type, user references, port.
    pub(crate) fn debug_entries(&self) -> alloc::vec::Vec<(PortName, u32, u32, Option<Arc<Port>>)> {
        let st = self.lock();
        st.entries
            .iter()
            .map(|(&n, e)| (PortName(n), e.ty, e.urefs, e.port().cloned()))
            .collect()
    }

    /// Every port set held.
    pub(crate) fn debug_sets(&self) -> alloc::vec::Vec<Arc<PortSet>> {
        let st = self.lock();
        st.entries
            .values()
            .filter_map(|e| match &e.object {
                Object::Set(s) => Some(s.clone()),
                _ => None,
            })
            .collect()
    }

    /// Check the space's own invariants; returns what is wrong.
    pub(crate) fn debug_check(&self) -> Result<(), alloc::string::String> {
        use alloc::format;
        let st = self.lock();
        let mut reversed = 0;
        for (&n, e) in &st.entries {
            let ok_urefs = match e.ty {
                DEAD_NAME | SEND | port_type::SEND_RECEIVE => e.urefs >= 1,
                SEND_ONCE => e.urefs == 1,
                RECEIVE | PORT_SET => e.urefs == 0,
                t => return Err(format!("{n:#x}: strange type {t:#x}")),
            };
            if !ok_urefs || e.urefs > MACH_PORT_UREFS_MAX {
                return Err(format!("{n:#x}: type {:#x} with {} urefs", e.ty, e.urefs));
            }
            if e.ty & SEND != 0 && e.urefs >= MACH_PORT_UREFS_MAX {
                return Err(format!("{n:#x}: send urefs at the maximum"));
            }
            match (&e.object, e.ty) {
                (Object::None, DEAD_NAME) | (Object::Set(_), PORT_SET) => {}
                (Object::Port(_), t) if t & (SEND | RECEIVE | SEND_ONCE) != 0 => {}
                _ => return Err(format!("{n:#x}: object does not match type {:#x}", e.ty)),
            }
            if e.ty == SEND_ONCE && e.prepaid.is_none() {
                return Err(format!(
                    "{n:#x}: send-once right without its prepaid message"
                ));
            }
            if let Some(port) = e.port() {
                let ps = port.lock();
                if e.ty & (SEND | RECEIVE) != 0 {
                    reversed += 1;
                    if st.reverse.get(&port.id()) != Some(&n) {
                        return Err(format!("{n:#x}: reverse entry missing"));
                    }
                }
                if e.ty & RECEIVE != 0 {
                    let here = matches!(ps.receiver, Receiver::Space { space, name }
                        if space == st.id && name == PortName(n));
                    if !ps.active || !here {
                        return Err(format!("{n:#x}: receive right not held here"));
                    }
                }
                if ps.active && e.dnrequest != ps.dnrequests.contains_key(&(st.id, n)) {
                    return Err(format!("{n:#x}: dead-name request flag disagrees"));
                }
            }
        }
        if st.charge.blocks() != SpaceState::charge_for(st.entries.len(), st.reverse.len()) {
            return Err(format!("charged {} granules", st.charge.blocks()));
        }
        if reversed != st.reverse.len() {
            return Err(format!(
                "{} reverse entries for {} names",
                st.reverse.len(),
                reversed
            ));
        }
        Ok(())
    }
}
