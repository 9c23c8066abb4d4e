//! Moving rights between a space and messages (GNU Mach `ipc_right_copyin`,
//! `ipc_right_copyout`, `ipc_object_copyin/copyout`, `ipc_kmsg_copyin_header`,
//! `ipc_kmsg_copyout_header`, `ipc_kmsg_copyout_object`): what each disposition takes from
//! the sender's entry, how a received right lands in the receiver's space (send rights
//! for a port the space already names merge under that name), and the errors of each.

extern crate alloc;

use super::abi::port_type::{DEAD_NAME, PORT_SET, RECEIVE, SEND, SEND_ONCE, SEND_RIGHTS};
use super::abi::{Disposition, MACH_PORT_UREFS_MAX, MsgReturn, PortName, msg_type, msgh_bits};
use super::kmsg::{Kmsg, MaRequest};
use super::ledger::{Charge, Kind};
use super::mqueue::{self, RecvSource};
use super::port::{Port, Receiver};
use super::right::{Deferred, MsgPort, Notification, Reaper, Right, RightKind};
use super::space::{Entry, Object, Space, SpaceState, dncancel};
use alloc::sync::Arc;
use mach_abi::KernReturn;

/// A header after `copyin_header`: the bits with the received types in the port fields,
/// the destination right and the reply.
#[derive(Debug)]
pub struct CopiedHeader {
    pub bits: u32,
    pub dest: Right,
    pub reply: MsgPort,
}

/// A header after `copyout_header`: as the receiver reads it (remote is the reply, local
/// the destination, and the bits' port fields swapped to match).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReceivedHeader {
    pub bits: u32,
    pub remote: PortName,
    pub local: PortName,
}

/// The type a right sent with disposition `d` arrives as (GNU Mach
/// `ipc_object_copyin_type`).
pub fn copyin_type(d: Disposition) -> u32 {
    match d {
        Disposition::MoveReceive => msg_type::PORT_RECEIVE,
        Disposition::MoveSendOnce | Disposition::MakeSendOnce => msg_type::PORT_SEND_ONCE,
        Disposition::MoveSend | Disposition::MakeSend | Disposition::CopySend => {
            msg_type::PORT_SEND
        }
    }
}

impl SpaceState {
    /// Whether a later `right_copyin` of `name` with `d` would succeed (GNU Mach
    /// `ipc_right_copyin_check`).
    fn copyin_check(&self, name: u32, d: Disposition) -> bool {
        let Some(e) = self.entries.get(&name) else {
            return false;
        };
        match d {
            Disposition::MakeSend | Disposition::MakeSendOnce | Disposition::MoveReceive => {
                e.ty & RECEIVE != 0
            }
            _ => {
                if e.ty & DEAD_NAME != 0 {
                    return true;
                }
                if e.ty & SEND_RIGHTS == 0 {
                    return false;
                }
                if e.port().is_some_and(|p| !p.lock().active) {
                    return true;
                }
                if d == Disposition::MoveSendOnce {
                    e.ty & SEND_ONCE != 0
                } else {
                    e.ty & SEND != 0
                }
            }
        }
    }

    /// Take a right out of entry `name` (which exists) as disposition `d` says (GNU Mach
    /// `ipc_right_copyin`); a dead name gives `MsgPort::Dead` if `deadok`. An entry left
    /// holding nothing is removed; a dead-name request the move cancels becomes a
    /// port-deleted notification in `d_work`.
    fn right_copyin(
        &mut self,
        name: PortName,
        d: Disposition,
        deadok: bool,
        prepaid: &mut Option<Charge>,
        work: &mut Deferred,
    ) -> Result<MsgPort, KernReturn> {
        let n = name.0;
        if !matches!(
            d,
            Disposition::MakeSend | Disposition::MakeSendOnce | Disposition::MoveReceive
        ) {
            // A send right to a port that died is a dead name from here on.
            self.check(n);
        }
        let id = self.id;
        let SpaceState {
            entries, reverse, ..
        } = self;
        let e = entries.get_mut(&n).ok_or(KernReturn::InvalidName)?;
        let result = match d {
            Disposition::MakeSend | Disposition::MakeSendOnce => {
                if e.ty & RECEIVE == 0 {
                    return Err(KernReturn::InvalidRight);
                }
                let port = e.port().cloned().ok_or(KernReturn::InvalidRight)?;
                let mut ps = port.lock();
                if d == Disposition::MakeSend {
                    ps.mscount = ps.mscount.wrapping_add(1);
                    ps.srights += 1;
                    drop(ps);
                    MsgPort::Right(Right::new(port, RightKind::Send, None))
                } else {
                    ps.sorights += 1;
                    drop(ps);
                    MsgPort::Right(Right::new(port, RightKind::SendOnce, prepaid.take()))
                }
            }
            Disposition::MoveReceive => {
                if e.ty & RECEIVE == 0 {
                    return Err(KernReturn::InvalidRight);
                }
                let port = e.port().cloned().ok_or(KernReturn::InvalidRight)?;
                let mut ps = port.lock();
                if e.ty & SEND == 0 {
                    // Nothing stays under the name.
                    let dn = if e.dnrequest {
                        dncancel(&mut ps, id, n)
                    } else {
                        None
                    };
                    e.dnrequest = false;
                    e.object = Object::None;
                    reverse.remove(&port.id());
                    work.notify(dn, Notification::PortDeleted(name));
                }
                e.ty &= !RECEIVE;
                mqueue::clear_receiver(&port, &mut ps);
                drop(ps);
                MsgPort::Right(Right::new(port, RightKind::Receive, None))
            }
            Disposition::CopySend => {
                if e.ty & DEAD_NAME != 0 {
                    return if deadok {
                        Ok(MsgPort::Dead)
                    } else {
                        Err(KernReturn::InvalidRight)
                    };
                }
                if e.ty & SEND == 0 {
                    return Err(KernReturn::InvalidRight);
                }
                let port = e.port().cloned().ok_or(KernReturn::InvalidRight)?;
                port.lock().srights += 1;
                MsgPort::Right(Right::new(port, RightKind::Send, None))
            }
            Disposition::MoveSend | Disposition::MoveSendOnce => {
                if e.ty & DEAD_NAME != 0 {
                    if !deadok {
                        return Err(KernReturn::InvalidRight);
                    }
                    if e.urefs <= 1 {
                        e.ty = 0;
                    } else {
                        e.urefs -= 1;
                    }
                    MsgPort::Dead
                } else if d == Disposition::MoveSend {
                    if e.ty & SEND == 0 {
                        return Err(KernReturn::InvalidRight);
                    }
                    let port = e.port().cloned().ok_or(KernReturn::InvalidRight)?;
                    if e.urefs > 1 {
                        port.lock().srights += 1;
                        e.urefs -= 1;
                    } else if e.ty & RECEIVE != 0 {
                        e.ty = RECEIVE;
                        e.urefs = 0;
                    } else {
                        let dn = if e.dnrequest {
                            dncancel(&mut port.lock(), id, n)
                        } else {
                            None
                        };
                        e.dnrequest = false;
                        e.ty = 0;
                        e.urefs = 0;
                        e.object = Object::None;
                        reverse.remove(&port.id());
                        work.notify(dn, Notification::PortDeleted(name));
                    }
                    MsgPort::Right(Right::new(port, RightKind::Send, None))
                } else {
                    if e.ty & SEND_ONCE == 0 {
                        return Err(KernReturn::InvalidRight);
                    }
                    let Object::Port(port) = core::mem::replace(&mut e.object, Object::None) else {
                        return Err(KernReturn::InvalidRight);
                    };
                    let dn = if e.dnrequest {
                        dncancel(&mut port.lock(), id, n)
                    } else {
                        None
                    };
                    e.dnrequest = false;
                    e.ty = 0;
                    e.urefs = 0;
                    work.notify(dn, Notification::PortDeleted(name));
                    MsgPort::Right(Right::new(port, RightKind::SendOnce, e.prepaid.take()))
                }
            }
        };
        if e.ty == 0 {
            entries.remove(&n);
        }
        Ok(result)
    }

    /// Move two send rights out of `name` at once (GNU Mach `ipc_right_copyin_two`).
    fn right_copyin_two(
        &mut self,
        name: PortName,
        work: &mut Deferred,
    ) -> Result<(Right, Right), KernReturn> {
        let n = name.0;
        let ty = self.entries.get(&n).map_or(0, |e| e.ty);
        if ty & SEND == 0 || self.entries.get(&n).is_some_and(|e| e.urefs < 2) {
            return Err(KernReturn::InvalidRight);
        }
        if self.check(n) {
            return Err(KernReturn::InvalidRight);
        }
        let id = self.id;
        let SpaceState {
            entries, reverse, ..
        } = self;
        let e = entries.get_mut(&n).ok_or(KernReturn::InvalidName)?;
        let port = e.port().cloned().ok_or(KernReturn::InvalidRight)?;
        if e.urefs > 2 {
            port.lock().srights += 2;
            e.urefs -= 2;
        } else if e.ty & RECEIVE != 0 {
            port.lock().srights += 1;
            e.ty = RECEIVE;
            e.urefs = 0;
        } else {
            let mut ps = port.lock();
            ps.srights += 1;
            let dn = if e.dnrequest {
                dncancel(&mut ps, id, n)
            } else {
                None
            };
            drop(ps);
            e.dnrequest = false;
            work.notify(dn, Notification::PortDeleted(name));
            reverse.remove(&port.id());
            entries.remove(&n);
        }
        Ok((
            Right::new(port.clone(), RightKind::Send, None),
            Right::new(port, RightKind::Send, None),
        ))
    }

    /// Put `right` into entry `name` (new or already naming the right's port; GNU Mach
    /// `ipc_right_copyout`). A send right beyond the user-reference limit is refused, or
    /// if `overflow`, absorbed with the count left at its maximum.
    fn right_copyout(
        &mut self,
        name: u32,
        right: Right,
        overflow: bool,
    ) -> Result<(), (KernReturn, Right)> {
        let id = self.id;
        let SpaceState {
            entries, reverse, ..
        } = self;
        let Some(e) = entries.get_mut(&name) else {
            return Err((KernReturn::InvalidName, right));
        };
        match right.kind() {
            RightKind::SendOnce => {
                let (port, _, prepaid) = right.into_parts();
                e.ty = SEND_ONCE;
                e.urefs = 1;
                e.object = Object::Port(port);
                e.prepaid = prepaid;
            }
            RightKind::Send => {
                if e.ty & SEND != 0 {
                    if e.urefs + 1 >= MACH_PORT_UREFS_MAX && !overflow {
                        return Err((KernReturn::UrefsOverflow, right));
                    }
                    // The entry already holds a send right for the port: this one merges.
                    let (port, _, _) = right.into_parts();
                    port.lock().srights -= 1;
                    if e.urefs + 1 < MACH_PORT_UREFS_MAX {
                        e.urefs += 1;
                    }
                } else if e.ty & RECEIVE != 0 {
                    drop(right.into_parts());
                    e.ty |= SEND;
                    e.urefs = 1;
                } else {
                    let (port, _, _) = right.into_parts();
                    reverse.insert(port.id(), name);
                    e.ty = SEND;
                    e.urefs = 1;
                    e.object = Object::Port(port);
                }
            }
            RightKind::Receive => {
                let (port, _, _) = right.into_parts();
                port.lock().receiver = Receiver::Space {
                    space: id,
                    name: PortName(name),
                };
                if e.ty & SEND != 0 {
                    e.ty |= RECEIVE;
                } else {
                    reverse.insert(port.id(), name);
                    e.ty = RECEIVE;
                    e.urefs = 0;
                    e.object = Object::Port(port);
                }
            }
        }
        Ok(())
    }

    /// The name under which this space holds send or receive rights for `right`'s port,
    /// if the port is alive (GNU Mach `ipc_right_reverse`; never for send-once rights).
    fn reverse_of(&self, right: &Right) -> Option<u32> {
        if right.kind() == RightKind::SendOnce {
            return None;
        }
        let name = *self.reverse.get(&right.port().id())?;
        right.port().lock().active.then_some(name)
    }
}

impl Space {
    /// Take a right out of this space for a message (GNU Mach `ipc_object_copyin`): a dead
    /// name gives `MsgPort::Dead`. `KERN_RESOURCE_SHORTAGE` if a send-once right's
    /// message cannot be paid for.
    pub fn copyin(&self, name: PortName, d: Disposition) -> Result<MsgPort, KernReturn> {
        let mut prepaid = if d == Disposition::MakeSendOnce {
            Some(Charge::new(self.ledger(), Kind::SendOnce, 1)?)
        } else {
            None
        };
        let mut work = Deferred::new();
        let r = {
            let mut st = self.lock();
            st.lookup(name)?;
            st.right_copyin(name, d, true, &mut prepaid, &mut work)
        };
        work.run();
        r
    }

    /// Copy in a right named in a message body (GNU Mach `ipc_kmsg_copyin_body`): a null
    /// or dead name passes as itself, anything else as [`Space::copyin`] takes it.
    pub fn copyin_body_right(&self, name: PortName, d: Disposition) -> Result<MsgPort, KernReturn> {
        match name {
            PortName::NULL => Ok(MsgPort::Null),
            PortName::DEAD => Ok(MsgPort::Dead),
            _ => self.copyin(name, d),
        }
    }

    /// Copy in a message header's rights (GNU Mach `ipc_kmsg_copyin_header`): `bits` as
    /// the sender wrote them, the destination and reply names. All or nothing: on error
    /// the space is as it was.
    pub fn copyin_header(
        &self,
        bits: u32,
        dest_name: PortName,
        reply_name: PortName,
    ) -> Result<CopiedHeader, MsgReturn> {
        self.copyin_header_cancel(bits, dest_name, reply_name, PortName::NULL)
    }

    /// [`copyin_header`](Self::copyin_header) with `MACH_SEND_CANCEL`'s `notify` (null:
    /// none). `notify` must name a receive right (`MACH_SEND_INVALID_NOTIFY`); if moving
    /// the destination right deletes its name and so would send a port-deleted
    /// notification to `notify`'s port (a dead-name request registered with it), that
    /// notification is not sent and its send-once right dies quietly (GNU Mach). Only the
    /// destination's notification is cancelled, as in GNU Mach.
    pub fn copyin_header_cancel(
        &self,
        bits: u32,
        dest_name: PortName,
        reply_name: PortName,
        notify: PortName,
    ) -> Result<CopiedHeader, MsgReturn> {
        self.copyin_header_with(bits, dest_name, reply_name, notify, false)
    }

    /// [`copyin_header`](Self::copyin_header) for a request to a kernel object that its
    /// sender could not pay for (`Kind::KernelRequest`): a send-once right it makes for
    /// the reply is prepaid the same way if the space's ledger refuses it as `SendOnce`.
    pub fn copyin_header_kernel_request(
        &self,
        bits: u32,
        dest_name: PortName,
        reply_name: PortName,
    ) -> Result<CopiedHeader, MsgReturn> {
        self.copyin_header_with(bits, dest_name, reply_name, PortName::NULL, true)
    }

    fn copyin_header_with(
        &self,
        bits: u32,
        dest_name: PortName,
        reply_name: PortName,
        notify: PortName,
        kernel_request: bool,
    ) -> Result<CopiedHeader, MsgReturn> {
        let notify_port = if notify == PortName::NULL {
            None
        } else {
            let mut st = self.lock();
            match st.lookup(notify) {
                Ok(e) if e.ty & RECEIVE != 0 => e.port().cloned(),
                _ => return Err(MsgReturn::SEND_INVALID_NOTIFY),
            }
        };
        let mbits = bits & !msgh_bits::CIRCULAR;
        let dest_d = Disposition::from_u32(msgh_bits::remote(mbits))
            .filter(|d| d.is_any_send())
            .ok_or(MsgReturn::SEND_INVALID_HEADER)?;
        let reply_type = msgh_bits::local(mbits);
        let reply_d = if reply_type == 0 {
            if reply_name != PortName::NULL {
                return Err(MsgReturn::SEND_INVALID_HEADER);
            }
            None
        } else {
            Some(
                Disposition::from_u32(reply_type)
                    .filter(|d| d.is_any_send())
                    .ok_or(MsgReturn::SEND_INVALID_HEADER)?,
            )
        };
        let charge = |d: Option<Disposition>| -> Result<Option<Charge>, MsgReturn> {
            if d == Some(Disposition::MakeSendOnce) {
                Charge::new(self.ledger(), Kind::SendOnce, 1)
                    .or_else(|e| {
                        if kernel_request {
                            Charge::new(self.ledger(), Kind::KernelRequest, 1)
                        } else {
                            Err(e)
                        }
                    })
                    .map(Some)
                    .map_err(|_| MsgReturn::SEND_NO_BUFFER)
            } else {
                Ok(None)
            }
        };
        let mut dest_prepaid = charge(Some(dest_d))?;
        let mut reply_prepaid = charge(reply_d)?;
        let mut work = Deferred::new();
        let r = self.copyin_header_locked(
            dest_d,
            reply_d,
            dest_name,
            reply_name,
            &mut dest_prepaid,
            &mut reply_prepaid,
            &mut work,
        );
        let cancelled = match (&r, &notify_port) {
            (Ok(_), Some(port)) => work.take_port_deleted(dest_name, port),
            _ => None,
        };
        work.run();
        if let Some(soright) = cancelled {
            Reaper::new().consume_quietly(soright);
        }
        let (dest, reply) = r?;
        let reply_bits = reply_d.map_or(0, copyin_type);
        Ok(CopiedHeader {
            bits: msgh_bits::other(mbits) | msgh_bits::make(copyin_type(dest_d), reply_bits),
            dest,
            reply,
        })
    }

    #[allow(clippy::too_many_arguments)] // the header's two halves, each name, disposition, payment
    fn copyin_header_locked(
        &self,
        dest_d: Disposition,
        reply_d: Option<Disposition>,
        dest_name: PortName,
        reply_name: PortName,
        dest_prepaid: &mut Option<Charge>,
        reply_prepaid: &mut Option<Charge>,
        work: &mut Deferred,
    ) -> Result<(Right, MsgPort), MsgReturn> {
        use Disposition::*;
        let invalid_dest = |_| MsgReturn::SEND_INVALID_DEST;
        let mut st = self.lock();
        if !st.active {
            return Err(MsgReturn::SEND_INVALID_DEST);
        }
        let as_right = |p: MsgPort| p.into_right().ok_or(MsgReturn::SEND_INVALID_DEST);
        if dest_name == reply_name {
            if !st.entries.contains_key(&dest_name.0) {
                return Err(MsgReturn::SEND_INVALID_DEST);
            }
            // Equal names with no reply disposition means both are null: not found above.
            let Some(reply_d) = reply_d else {
                return Err(MsgReturn::SEND_INVALID_DEST);
            };
            if !st.copyin_check(dest_name.0, reply_d) {
                return Err(MsgReturn::SEND_INVALID_REPLY);
            }
            if dest_d == MoveSendOnce || reply_d == MoveSendOnce {
                // A live destination and a consumed send-once right cannot both be had.
                return Err(MsgReturn::SEND_INVALID_DEST);
            }
            let makes = |d: Disposition| matches!(d, MakeSend | MakeSendOnce);
            if makes(dest_d) || makes(reply_d) {
                let dest = st
                    .right_copyin(dest_name, dest_d, false, dest_prepaid, work)
                    .map_err(invalid_dest)?;
                let reply = st
                    .right_copyin(reply_name, reply_d, true, reply_prepaid, work)
                    .map_err(|_| MsgReturn::SEND_INVALID_REPLY);
                let reply = match reply {
                    Ok(r) => r,
                    Err(e) => {
                        drop(st);
                        drop(dest);
                        return Err(e);
                    }
                };
                return Ok((as_right(dest)?, reply));
            }
            if dest_d == MoveSend && reply_d == MoveSend {
                let (dest, reply) = st.right_copyin_two(dest_name, work).map_err(invalid_dest)?;
                return Ok((dest, MsgPort::Right(reply)));
            }
            // Copy-send and copy-send, or one move-send and one copy-send: copy in one
            // right and duplicate it.
            let first = if dest_d == CopySend && reply_d == CopySend {
                CopySend
            } else {
                MoveSend
            };
            let dest = as_right(
                st.right_copyin(dest_name, first, false, &mut None, work)
                    .map_err(invalid_dest)?,
            )?;
            let reply = dest.copy_send();
            return Ok((dest, reply));
        }
        if !reply_name.is_valid() {
            if !st.entries.contains_key(&dest_name.0) {
                return Err(MsgReturn::SEND_INVALID_DEST);
            }
            let dest = as_right(
                st.right_copyin(dest_name, dest_d, false, dest_prepaid, work)
                    .map_err(invalid_dest)?,
            )?;
            let reply = if reply_name == PortName::DEAD {
                MsgPort::Dead
            } else {
                MsgPort::Null
            };
            return Ok((dest, reply));
        }
        let Some(reply_d) = reply_d else {
            return Err(MsgReturn::SEND_INVALID_HEADER);
        };
        if !st.entries.contains_key(&dest_name.0) {
            return Err(MsgReturn::SEND_INVALID_DEST);
        }
        if !st.entries.contains_key(&reply_name.0) || !st.copyin_check(reply_name.0, reply_d) {
            return Err(MsgReturn::SEND_INVALID_REPLY);
        }
        let dest = as_right(
            st.right_copyin(dest_name, dest_d, false, dest_prepaid, work)
                .map_err(invalid_dest)?,
        )?;
        match st.right_copyin(reply_name, reply_d, true, reply_prepaid, work) {
            Ok(reply) => Ok((dest, reply)),
            Err(_) => {
                drop(st);
                drop(dest);
                Err(MsgReturn::SEND_INVALID_REPLY)
            }
        }
    }

    /// Whether `name` holds a send or send-once right to a port the kernel serves (a
    /// kernel object's), as a look only: nothing is copied in.
    pub fn names_kernel_port(&self, name: PortName) -> bool {
        let st = self.lock();
        st.active
            && st.entries.get(&name.0).is_some_and(|e| {
                e.ty & (SEND | SEND_ONCE) != 0 && e.port().is_some_and(|p| p.is_kernel())
            })
    }

    /// Whether this space holds a send right to `port` (under any name).
    pub fn holds_send(&self, port: &Port) -> bool {
        let st = self.lock();
        st.active
            && st
                .reverse
                .get(&port.id())
                .and_then(|name| st.entries.get(name))
                .is_some_and(|e| e.ty & SEND != 0)
    }

    /// What copying a send right to `port` out into this space with `overflow` does when
    /// the space already holds a send right for it: one more user reference on that name
    /// (saturating at the maximum). Made for the self traps (`mach_task_self` and the
    /// like), it makes and merges no right, so the port's right counts are not touched.
    /// `None` if the space holds no send right for an active `port`: the caller then makes
    /// the right and uses [`Space::copyout`].
    pub fn copyout_send_existing(&self, port: &Port) -> Option<PortName> {
        let mut st = self.lock();
        if !st.active {
            return None;
        }
        let name = *st.reverse.get(&port.id())?;
        let e = st.entries.get_mut(&name)?;
        if e.ty & SEND == 0 || !port.is_active() {
            return None;
        }
        if e.urefs + 1 < MACH_PORT_UREFS_MAX {
            e.urefs += 1;
        }
        Some(PortName(name))
    }

    /// Put a right into this space under a name of the kernel's choosing, or the name it
    /// already has for the port (GNU Mach `ipc_object_copyout`). On error the right comes
    /// back with the code: `KERN_INVALID_TASK` (space dead), `KERN_INVALID_CAPABILITY`
    /// (port dead), `KERN_NO_SPACE`, `KERN_RESOURCE_SHORTAGE`, `KERN_UREFS_OVERFLOW` (only
    /// without `overflow`).
    pub fn copyout(&self, right: Right, overflow: bool) -> Result<PortName, (KernReturn, Right)> {
        let mut st = self.lock();
        if !st.active {
            return Err((KernReturn::InvalidTask, right));
        }
        if let Some(name) = st.reverse_of(&right) {
            st.right_copyout(name, right, overflow)?;
            return Ok(PortName(name));
        }
        if let Err(e) = st.reserve(1 + usize::from(right.kind() != RightKind::SendOnce)) {
            return Err((e, right));
        }
        let name = match st.alloc_name() {
            Ok(n) => n,
            Err(e) => return Err((e, right)),
        };
        if !right.port().is_active() {
            return Err((KernReturn::InvalidCapability, right));
        }
        st.entries.insert(name, new_entry());
        if let Err(e) = st.right_copyout(name, right, overflow) {
            st.entries.remove(&name);
            return Err(e);
        }
        Ok(PortName(name))
    }

    /// Put `right` in under `name` (GNU Mach `ipc_object_copyout_name`, for
    /// `mach_port_insert_right`).
    pub(super) fn copyout_name(
        &self,
        right: Right,
        name: PortName,
        work: &mut Deferred,
    ) -> Result<(), KernReturn> {
        let mut st = self.lock();
        let fail = |e: KernReturn, r: Right, work: &mut Deferred| {
            work.release(Some(r));
            Err(e)
        };
        if !st.active {
            drop(st);
            return fail(KernReturn::InvalidTask, right, work);
        }
        if let Some(oname) = st.reverse_of(&right) {
            if oname != name.0 {
                drop(st);
                return fail(KernReturn::RightExists, right, work);
            }
            return match st.right_copyout(oname, right, false) {
                Ok(()) => Ok(()),
                Err((e, r)) => {
                    drop(st);
                    fail(e, r, work)
                }
            };
        }
        if st.entries.contains_key(&name.0) {
            drop(st);
            return fail(KernReturn::NameExists, right, work);
        }
        if !right.port().is_active() {
            drop(st);
            return fail(KernReturn::InvalidCapability, right, work);
        }
        if let Err(e) = st.reserve(1 + usize::from(right.kind() != RightKind::SendOnce)) {
            drop(st);
            return fail(e, right, work);
        }
        st.entries.insert(name.0, new_entry());
        match st.right_copyout(name.0, right, false) {
            Ok(()) => Ok(()),
            Err((e, r)) => {
                st.entries.remove(&name.0);
                drop(st);
                fail(e, r, work)
            }
        }
    }

    /// Copy out a right carried in a message body (GNU Mach `ipc_kmsg_copyout_object`):
    /// always gives a name, and the error bits (`MACH_MSG_IPC_SPACE`,
    /// `MACH_MSG_IPC_KERNEL`) when the right could not be placed and was destroyed.
    pub fn copyout_right(&self, port: MsgPort) -> (PortName, u32) {
        let right = match port {
            MsgPort::Null => return (PortName::NULL, 0),
            MsgPort::Dead => return (PortName::DEAD, 0),
            MsgPort::Right(r) => r,
        };
        match self.copyout(right, true) {
            Ok(name) => (name, 0),
            Err((e, right)) => {
                drop(right);
                match e {
                    KernReturn::InvalidCapability => (PortName::DEAD, 0),
                    KernReturn::ResourceShortage => (PortName::NULL, MsgReturn::IPC_KERNEL),
                    _ => (PortName::NULL, MsgReturn::IPC_SPACE),
                }
            }
        }
    }

    /// Copy out a received message's header rights (GNU Mach `ipc_kmsg_copyout_header`,
    /// without `MACH_RCV_NOTIFY`): the reply right goes into this space, the destination
    /// right is consumed and named as this space names the port (`MACH_PORT_NULL` if the
    /// receive right has gone elsewhere, `MACH_PORT_DEAD` if the port died). On error the
    /// message is unchanged (see [`Space::copyout_dest`]).
    pub fn copyout_header(&self, kmsg: &mut Kmsg) -> Result<ReceivedHeader, MsgReturn> {
        let mbits = kmsg.bits;
        let reply_name = match kmsg.take_local() {
            MsgPort::Null => PortName::NULL,
            MsgPort::Dead => PortName::DEAD,
            MsgPort::Right(reply) => match self.copyout(reply, true) {
                Ok(name) => name,
                Err((KernReturn::InvalidCapability, reply)) => {
                    Reaper::new().consume_quietly(reply);
                    PortName::DEAD
                }
                Err((e, reply)) => {
                    kmsg.restore_local(MsgPort::Right(reply));
                    return Err(MsgReturn::RCV_HEADER_ERROR.with(
                        if e == KernReturn::ResourceShortage {
                            MsgReturn::IPC_KERNEL
                        } else {
                            MsgReturn::IPC_SPACE
                        },
                    ));
                }
            },
        };
        let dest_name = self.consume_dest(kmsg);
        Ok(ReceivedHeader {
            bits: msgh_bits::other(mbits)
                | msgh_bits::make(msgh_bits::local(mbits), msgh_bits::remote(mbits)),
            remote: reply_name,
            local: dest_name,
        })
    }

    /// The destination right of a received message, consumed (GNU Mach
    /// `ipc_object_copyout_dest`): the name this space has for the port.
    fn consume_dest(&self, kmsg: &mut Kmsg) -> PortName {
        let Some(dest) = kmsg.take_remote() else {
            return PortName::NULL;
        };
        let (port, kind, prepaid) = dest.into_parts();
        let mut ps = port.lock();
        if !ps.active {
            drop(ps);
            Reaper::new().consume_quietly(Right::new(port, kind, prepaid));
            return PortName::DEAD;
        }
        let mine = match ps.receiver {
            Receiver::Space { space, name } if space == self.id() => Some(name),
            _ => None,
        };
        match kind {
            RightKind::SendOnce if mine.is_none() => {
                // The receive right left this space after the message was taken: the
                // send-once right cannot be consumed quietly under someone else.
                drop(ps);
                drop(Right::new(port, kind, prepaid));
                PortName::NULL
            }
            RightKind::SendOnce => {
                ps.sorights = ps.sorights.saturating_sub(1);
                mine.unwrap_or(PortName::NULL)
            }
            _ => {
                drop(ps);
                drop(Right::new(port, kind, prepaid));
                mine.unwrap_or(PortName::NULL)
            }
        }
    }

    /// Give up on a received message (GNU Mach `ipc_kmsg_copyout_dest`, after a header or
    /// body error): the destination is named as in `copyout_header`, everything else in
    /// the message is destroyed.
    pub fn copyout_dest(&self, kmsg: &mut Kmsg) -> ReceivedHeader {
        let mbits = kmsg.bits;
        let reply_name = match kmsg.take_local() {
            MsgPort::Null | MsgPort::Right(_) => PortName::NULL,
            MsgPort::Dead => PortName::DEAD,
        };
        let local = self.consume_dest(kmsg);
        let mut reaper = Reaper::new();
        reaper.destroy_msg(kmsg, false);
        ReceivedHeader {
            bits: msgh_bits::other(mbits)
                | msgh_bits::make(msgh_bits::local(mbits), msgh_bits::remote(mbits)),
            remote: reply_name,
            local,
        }
    }

    /// The port or set to receive from for `name` (GNU Mach `ipc_mqueue_copyin`):
    /// `MACH_RCV_INVALID_NAME` unless it names a receive right or a port set,
    /// `MACH_RCV_IN_SET` for a receive right in a set.
    pub fn mqueue_copyin(&self, name: PortName) -> Result<RecvSource, MsgReturn> {
        let mut st = self.lock();
        let e = st.lookup(name).map_err(|_| MsgReturn::RCV_INVALID_NAME)?;
        match &e.object {
            Object::Port(port) if e.ty & RECEIVE != 0 => {
                if port.lock().pset.is_some() {
                    return Err(MsgReturn::RCV_IN_SET);
                }
                Ok(RecvSource::Port {
                    port: port.clone(),
                    space: self.id(),
                })
            }
            Object::Set(set) if e.ty & PORT_SET != 0 => Ok(RecvSource::Set {
                set: set.clone(),
                space: self.id(),
            }),
            _ => Err(MsgReturn::RCV_INVALID_NAME),
        }
    }
}

fn new_entry() -> Entry {
    Entry {
        ty: 0,
        urefs: 0,
        object: Object::None,
        dnrequest: false,
        marequest: false,
        prepaid: None,
    }
}

impl Space {
    /// A msg-accepted request for a message this space forces onto `port`'s full queue
    /// with `MACH_SEND_NOTIFY` (GNU Mach `ipc_marequest_create`): the space's entry for
    /// the port, if it has one, is marked (`MACH_SEND_NOTIFY_IN_PROGRESS` if it already
    /// is), and `notify`, which must name a receive right (`MACH_SEND_INVALID_NOTIFY`),
    /// gives a send-once right for the notification (`MACH_SEND_NO_NOTIFY` if it cannot
    /// be paid for).
    pub fn marequest_create(
        self: &Arc<Self>,
        port: &Arc<Port>,
        notify: PortName,
    ) -> Result<MaRequest, MsgReturn> {
        let mut prepaid = Some(
            Charge::new(self.ledger(), Kind::SendOnce, 1).map_err(|_| MsgReturn::SEND_NO_NOTIFY)?,
        );
        let mut work = Deferred::new();
        let r = {
            let mut st = self.lock();
            let name = if st.active {
                st.reverse
                    .get(&port.id())
                    .copied()
                    .filter(|_| port.lock().active)
            } else {
                None
            };
            if !st.active {
                Err(MsgReturn::SEND_INVALID_NOTIFY)
            } else if name.is_some_and(|n| st.entries.get(&n).is_some_and(|e| e.marequest)) {
                Err(MsgReturn::SEND_NOTIFY_IN_PROGRESS)
            } else if st
                .entries
                .get(&notify.0)
                .is_none_or(|e| e.ty & RECEIVE == 0)
            {
                Err(MsgReturn::SEND_INVALID_NOTIFY)
            } else {
                let soright = st
                    .right_copyin(
                        notify,
                        Disposition::MakeSendOnce,
                        false,
                        &mut prepaid,
                        &mut work,
                    )
                    .ok()
                    .and_then(MsgPort::into_right);
                match soright {
                    Some(soright) => {
                        if let Some(e) = name.and_then(|n| st.entries.get_mut(&n)) {
                            e.marequest = true;
                        }
                        Ok(MaRequest {
                            space: Arc::downgrade(self),
                            port: port.clone(),
                            soright,
                        })
                    }
                    None => Err(MsgReturn::SEND_INVALID_NOTIFY),
                }
            }
        };
        work.run();
        r
    }

    /// A msg-accepted request of this space for `port` ends: the space's name for the
    /// port, its mark cleared, or null if the space has no marked name for it now (the
    /// entry was destroyed: GNU Mach's `ipc_marequest_cancel`).
    pub(crate) fn marequest_done(&self, port: &Port) -> PortName {
        let mut st = self.lock();
        if !st.active {
            return PortName::NULL;
        }
        let Some(&n) = st.reverse.get(&port.id()) else {
            return PortName::NULL;
        };
        match st.entries.get_mut(&n) {
            Some(e) if e.marequest => {
                e.marequest = false;
                PortName(n)
            }
            _ => PortName::NULL,
        }
    }

    /// [`copyout_header`](Self::copyout_header) with `MACH_RCV_NOTIFY`'s `notify` (GNU
    /// Mach `ipc_kmsg_copyout_header`): `notify` must name a receive right
    /// (`MACH_RCV_INVALID_NOTIFY`, checked even when not needed, the message left as it
    /// was); if the reply right lands under a new name (a send-once right always does, a
    /// send right when the space had no name for its port), a dead-name request is
    /// registered for that name with a send-once right made from `notify`.
    ///
    /// GNU Mach registers the request in the same step as the copyout; here it follows
    /// it, so if the request cannot be paid for the reply is still received (without the
    /// request, the send-once right destroyed, which notifies `notify`'s port).
    pub fn copyout_header_notify(
        &self,
        kmsg: &mut Kmsg,
        notify: PortName,
    ) -> Result<ReceivedHeader, MsgReturn> {
        let mut work = Deferred::new();
        let soright = {
            let mut st = self.lock();
            if !st.active {
                return Err(MsgReturn::RCV_HEADER_ERROR.with(MsgReturn::IPC_SPACE));
            }
            if st
                .entries
                .get(&notify.0)
                .is_none_or(|e| e.ty & RECEIVE == 0)
            {
                return Err(MsgReturn::RCV_INVALID_NOTIFY);
            }
            let fresh = match kmsg.local() {
                MsgPort::Right(r) => st.reverse_of(r).is_none(),
                _ => false,
            };
            if fresh {
                let mut prepaid = Some(
                    Charge::new(self.ledger(), Kind::SendOnce, 1)
                        .map_err(|_| MsgReturn::RCV_HEADER_ERROR.with(MsgReturn::IPC_KERNEL))?,
                );
                st.right_copyin(
                    notify,
                    Disposition::MakeSendOnce,
                    false,
                    &mut prepaid,
                    &mut work,
                )
                .ok()
                .and_then(MsgPort::into_right)
            } else {
                None
            }
        };
        work.run();
        let header = match self.copyout_header(kmsg) {
            Ok(h) => h,
            Err(e) => {
                if let Some(so) = soright {
                    Reaper::new().consume_quietly(so);
                }
                return Err(e);
            }
        };
        if let Some(so) = soright {
            if header.remote.is_valid() {
                // Nothing was registered for a name just made, so nothing comes back.
                let previous = self.request_notification(
                    header.remote,
                    super::abi::notify::DEAD_NAME,
                    0,
                    MsgPort::Right(so),
                );
                drop(previous);
            } else {
                // The reply port died: no new name, no request (GNU Mach).
                Reaper::new().consume_quietly(so);
            }
        }
        Ok(header)
    }
}
