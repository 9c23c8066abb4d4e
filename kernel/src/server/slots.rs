//! What the 64-bit port and region slots of a kernel server's messages hold: handles into
//! a table of the rights (and out-of-line regions) one request brought or one reply will
//! carry, never pointers. The generated demux passes the slots around untouched; the hooks
//! and routines turn them back into rights here. A forged handle can only name a right the
//! same message carries, and anything that is not a handle is no right at all.
//!
//! Not for the header: the destination and reply rights stay with `kobject`, which gives
//! the demux fixed handles for them; the destination is only ever looked at (to find its
//! kernel object), never taken.
//!
//! Out-of-line data in a request gets handles too (`vm_write` takes its region); what no
//! routine takes goes with the table. Out-of-line arrays of rights in a reply
//! (`host_processors`' processors, `host_processor_sets`' sets) are put in whole
//! ([`Slots::put_port_array`]) and their handle stands in the descriptor's address.

extern crate alloc;

use super::region::KernelRegion;
use crate::ipc::chunk::Chunked;
use crate::ipc::{Charge, KObject, MsgPort, OolMemory};
use alloc::boxed::Box;
use arrayvec::ArrayVec;
use mach_abi::KernReturn;
use mach_abi::mig::PortSlot;

/// High bits of a right's handle: a kernel-half pattern, so never a 32-bit name, never
/// `MACH_PORT_DEAD` and never `IP_DEAD`.
const PORT_TAG: u64 = 0xffff_a000_0000_0000;
/// High bits of an out-of-line region's handle.
const REGION_TAG: u64 = 0xffff_b000_0000_0000;
/// High bits of an out-of-line array of rights' handle.
const ARRAY_TAG: u64 = 0xffff_c000_0000_0000;
/// High bits of the handle of a region a request brought.
const INCOMING_TAG: u64 = 0xffff_d000_0000_0000;
/// Out-of-line regions one request brings: more than any kernel routine takes.
pub const MAX_INCOMING: usize = 4;
/// Rights in out-of-line arrays one request brings that the table keeps: as many as the
/// one routine that takes such an array accepts (`mach_ports_register`,
/// `TASK_PORT_REGISTER_MAX`). Rights of larger arrays go with the request.
pub const MAX_INCOMING_RIGHTS: usize = 3;

/// The destination right's handle (index 0, never taken).
pub const DEST: PortSlot = PortSlot(PORT_TAG);
/// The reply right's handle (index 1, never taken: `kobject` keeps it).
pub const REPLY: PortSlot = PortSlot(PORT_TAG | 1);
/// Index of the first right that routines may take.
const FIRST_TAKEABLE: usize = 2;

/// Rights one request and its reply carry in the body: more than any kernel routine's
/// message holds inline.
pub const MAX_PORTS: usize = 12;
/// Out-of-line regions one reply carries.
pub const MAX_REGIONS: usize = 2;
/// Out-of-line arrays of rights one reply carries.
pub const MAX_ARRAYS: usize = 1;

/// An out-of-line array of rights for a reply, in kernel memory charged to the task the
/// reply is for (in granule-sized chunks).
pub struct PortArray {
    pub rights: Chunked<MsgPort, 0>,
    pub _charge: Charge,
}

/// The table behind the handles of one request and its reply.
pub struct Slots {
    /// The destination, then a placeholder for the reply, then the body's rights, then the
    /// rights routines put in for the reply. Taken entries are left `Null`.
    ports: ArrayVec<MsgPort, MAX_PORTS>,
    /// The destination's kernel object, read once.
    dest: Option<KObject>,
    regions: ArrayVec<Option<KernelRegion>, MAX_REGIONS>,
    arrays: ArrayVec<Option<PortArray>, MAX_ARRAYS>,
    /// The request's out-of-line regions, each with the offset of its descriptor's address
    /// slot; taken entries are left `None`.
    incoming: ArrayVec<(u64, Option<Box<dyn OolMemory>>), MAX_INCOMING>,
    /// Rights of the request's out-of-line arrays: (the array's slot offset, index, right).
    incoming_rights: ArrayVec<(u64, u32, MsgPort), MAX_INCOMING_RIGHTS>,
}

impl Slots {
    /// A table for a request sent to a port standing for `dest` (or for nothing).
    pub fn new(dest: Option<KObject>) -> Slots {
        let mut ports = ArrayVec::new();
        ports.push(MsgPort::Null);
        ports.push(MsgPort::Null);
        Slots {
            ports,
            dest,
            regions: ArrayVec::new(),
            arrays: ArrayVec::new(),
            incoming: ArrayVec::new(),
            incoming_rights: ArrayVec::new(),
        }
    }

    /// Put a region of the request in, whose descriptor's address slot is at `at`; returns
    /// its handle, or hands it back if the table is full.
    pub fn put_incoming(
        &mut self,
        at: u64,
        memory: Box<dyn OolMemory>,
    ) -> Result<u64, Box<dyn OolMemory>> {
        if self.incoming.is_full() {
            return Err(memory);
        }
        let i = self.incoming.len();
        self.incoming.push((at, Some(memory)));
        Ok(INCOMING_TAG | i as u64)
    }

    /// Take the request's region behind `handle`.
    pub fn take_incoming(&mut self, handle: u64) -> Option<Box<dyn OolMemory>> {
        if handle & !0xffff != INCOMING_TAG {
            return None;
        }
        self.incoming.get_mut((handle & 0xffff) as usize)?.1.take()
    }

    /// Keep right `index` of the out-of-line array whose address slot is at `array`; hands
    /// it back if the table keeps no more.
    pub fn put_incoming_right(
        &mut self,
        array: u64,
        index: u32,
        port: MsgPort,
    ) -> Result<(), MsgPort> {
        self.incoming_rights
            .try_push((array, index, port))
            .map_err(|e| e.element().2)
    }

    /// Take the `count` rights of the out-of-line array of rights behind `handle` (a
    /// region handle), in order; `None` if it is no such array or the table did not keep
    /// all of its rights.
    pub fn take_incoming_rights(
        &mut self,
        handle: u64,
        count: usize,
    ) -> Option<ArrayVec<MsgPort, MAX_INCOMING_RIGHTS>> {
        if handle & !0xffff != INCOMING_TAG || count > MAX_INCOMING_RIGHTS {
            return None;
        }
        let array = self.incoming.get((handle & 0xffff) as usize)?.0;
        let kept = self.incoming_rights.iter().filter(|r| r.0 == array).count();
        if kept != count {
            return None;
        }
        let mut out = ArrayVec::new();
        for index in 0..count as u32 {
            let r = self
                .incoming_rights
                .iter_mut()
                .find(|r| r.0 == array && r.1 == index)?;
            out.push(core::mem::take(&mut r.2));
        }
        Some(out)
    }

    /// The kernel object behind `slot`: the destination's, or that of a kernel port a
    /// body right names (for the routines that translate a right in the body, such as
    /// `mach_port_set_ktype`'s task). A port that died or that the kernel no longer holds
    /// stands for nothing (GNU Mach checks `ip_active` and `ip_kotype`).
    pub fn kobject(&self, slot: PortSlot) -> Option<KObject> {
        if slot == DEST {
            return self.dest.clone();
        }
        let i = index(slot).filter(|&i| i >= FIRST_TAKEABLE)?;
        let port = self.ports.get(i)?.right()?.port();
        if port.is_kernel() {
            port.kobject()
        } else {
            None
        }
    }

    /// Put a right in; returns its slot value (`MACH_PORT_NULL` / `IP_DEAD` for those), or
    /// hands the right back if the table is full.
    pub fn put(&mut self, port: MsgPort) -> Result<PortSlot, MsgPort> {
        match port {
            MsgPort::Null => Ok(PortSlot::NULL),
            MsgPort::Dead => Ok(PortSlot::KERNEL_DEAD),
            MsgPort::Right(r) => {
                let i = self.ports.len();
                self.ports
                    .try_push(MsgPort::Right(r))
                    .map_err(|e| e.element())?;
                Ok(PortSlot(PORT_TAG | i as u64))
            }
        }
    }

    /// Take the right behind `slot` (a request's body right, or one put in): null for
    /// `MACH_PORT_NULL` and for anything that is no handle, dead for either dead value.
    pub fn take(&mut self, slot: PortSlot) -> MsgPort {
        if slot == PortSlot::KERNEL_DEAD || slot == PortSlot(u64::from(u32::MAX)) {
            return MsgPort::Dead;
        }
        match index(slot).filter(|&i| i >= FIRST_TAKEABLE) {
            Some(i) => self.ports.get_mut(i).map(MsgPort::take).unwrap_or_default(),
            None => MsgPort::Null,
        }
    }

    /// Put a region in; returns its handle, or hands it back if the table is full.
    pub fn put_region(&mut self, region: KernelRegion) -> Result<u64, KernReturn> {
        let i = self.regions.len();
        self.regions
            .try_push(Some(region))
            .map_err(|_| KernReturn::ResourceShortage)?;
        Ok(REGION_TAG | i as u64)
    }

    /// Put an array of rights in; returns its handle, or `KERN_RESOURCE_SHORTAGE` (the
    /// array dropped) if the table is full.
    pub fn put_port_array(&mut self, array: PortArray) -> Result<u64, KernReturn> {
        let i = self.arrays.len();
        self.arrays
            .try_push(Some(array))
            .map_err(|_| KernReturn::ResourceShortage)?;
        Ok(ARRAY_TAG | i as u64)
    }

    /// Take the array of rights behind `handle`.
    pub fn take_port_array(&mut self, handle: u64) -> Option<PortArray> {
        if handle & !0xffff != ARRAY_TAG {
            return None;
        }
        self.arrays.get_mut((handle & 0xffff) as usize)?.take()
    }

    /// Take the region behind `handle`.
    pub fn take_region(&mut self, handle: u64) -> Option<KernelRegion> {
        if handle & !0xffff != REGION_TAG {
            return None;
        }
        self.regions.get_mut((handle & 0xffff) as usize)?.take()
    }
}

fn index(slot: PortSlot) -> Option<usize> {
    if slot.0 & !0xffff != PORT_TAG {
        return None;
    }
    Some((slot.0 & 0xffff) as usize)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handles_are_no_names_and_not_dead() {
        for s in [DEST, REPLY, PortSlot(PORT_TAG | 5), PortSlot(REGION_TAG)] {
            assert!(s.is_valid());
            assert_eq!(s.name(), None);
        }
    }

    #[test]
    fn nothing_but_a_handle_takes_a_right() {
        let mut s = Slots::new(None);
        assert!(matches!(s.take(PortSlot(7)), MsgPort::Null));
        assert!(matches!(s.take(DEST), MsgPort::Null));
        assert!(matches!(s.take(REPLY), MsgPort::Null));
        assert!(matches!(s.take(PortSlot::KERNEL_DEAD), MsgPort::Dead));
        assert!(matches!(s.take(PortSlot(PORT_TAG | 0xffff)), MsgPort::Null));
        assert_eq!(s.put(MsgPort::Null).ok(), Some(PortSlot::NULL));
        assert_eq!(s.put(MsgPort::Dead).ok(), Some(PortSlot::KERNEL_DEAD));
        assert!(s.take_region(REGION_TAG).is_none());
        assert!(s.take_region(PORT_TAG).is_none());
    }
}
