//! `mach_port.defs` (3200) served on a task's port: each routine is the `Space` method of
//! the same name on the space of the task the request was sent to (GNU Mach
//! `ipc/mach_port.c`), with its codes. `mach_port_names` and `mach_port_get_set_status`
//! collect under the space's lock into kernel memory charged to the caller and return it
//! out of line.
//!
//! Not served (they answer `MIG_BAD_ID`): `mach_port_set_protected_payload` and
//! `mach_port_clear_protected_payload` (ports have no protected payload in the IPC core
//! yet, and `mach_msg` would have to deliver it), and `mach_port_set_ktype` (no
//! user-device kernel objects yet).

extern crate alloc;

use super::generated::mach_port::{self, MachPortServer};
use super::host::Host;
use super::objects::{Kernel, TaskIpc};
use super::region::KernelRegion;
use crate::ipc::Space;
use crate::ipc::abi::Disposition;
use crate::ipc::transfer::copyin_type;
use alloc::sync::Arc;
use arrayvec::ArrayVec;
use mach_abi::KernReturn;
use mach_abi::mig::{Ool, PortName, PortSlot};

/// A name as the IPC core spells it.
fn n(name: PortName) -> crate::ipc::PortName {
    crate::ipc::PortName(name.0)
}

/// Tries at collecting a space's names when it grows under us between counting and
/// collecting (another thread of the task allocating).
const COLLECT_TRIES: usize = 4;
/// Names of slack allowed for that growth on each try.
const COLLECT_SLACK: usize = 16;

impl<T: TaskIpc> Kernel<'_, T> {
    /// An out-of-line array of 32-bit values for the reply, or none if empty.
    fn ool(&mut self, region: KernelRegion) -> Result<Ool, KernReturn> {
        let count = (region.len() / 4) as u32;
        if count == 0 {
            return Ok(Ool::default());
        }
        Ok(Ool {
            address: self.slots.put_region(region)?,
            count,
        })
    }

    /// Collect up to `n` 32-bit values per array from `collect` into `N` regions; `None` if
    /// `collect` had more than that.
    fn collect<const N: usize>(
        &mut self,
        space: &Space,
        mut collect: impl FnMut(&mut [KernelRegion; N], &mut bool) -> Result<(), KernReturn>,
    ) -> Result<[KernelRegion; N], KernReturn> {
        for _ in 0..COLLECT_TRIES {
            let n = space.entry_count() + COLLECT_SLACK;
            let mut regions = ArrayVec::<KernelRegion, N>::new();
            for _ in 0..N {
                regions.push(KernelRegion::with_capacity(self.ledger, 4 * n)?);
            }
            let Ok(mut regions) = regions.into_inner() else {
                return Err(KernReturn::ResourceShortage);
            };
            let mut overflow = false;
            collect(&mut regions, &mut overflow)?;
            if !overflow {
                return Ok(regions);
            }
        }
        Err(KernReturn::ResourceShortage)
    }
}

impl<T: TaskIpc> MachPortServer for Kernel<'_, T> {
    type IpcSpace = Arc<Space>;
    type Host = Arc<Host>;

    fn convert_port_to_space(&mut self, port: PortSlot, _: i32) -> Result<Arc<Space>, KernReturn> {
        self.space(port)
    }

    fn space_deallocate(&mut self, space: Arc<Space>) {
        drop(space);
    }

    fn convert_port_to_host_priv(
        &mut self,
        port: PortSlot,
        msg_id: i32,
    ) -> Result<Arc<Host>, KernReturn> {
        self.host_priv(port, msg_id)
    }

    fn release_send(&mut self, port: PortSlot) {
        drop(self.slots.take(port));
    }

    fn mach_port_names(
        &mut self,
        space: &Arc<Space>,
    ) -> Result<mach_port::MachPortNamesOut, KernReturn> {
        let [names, types] = self.collect::<2>(space, |[names, types], overflow| {
            space.names(|name, ty| {
                let fits = !*overflow && names.push_u32(name.0) && types.push_u32(ty);
                *overflow = !fits;
            })
        })?;
        Ok(mach_port::MachPortNamesOut {
            names: self.ool(names)?,
            types: self.ool(types)?,
        })
    }

    fn mach_port_type(
        &mut self,
        space: &Arc<Space>,
        name: PortName,
    ) -> Result<mach_port::MachPortTypeOut, KernReturn> {
        Ok(mach_port::MachPortTypeOut {
            ptype: space.port_type(n(name))?,
        })
    }

    fn mach_port_rename(
        &mut self,
        space: &Arc<Space>,
        old_name: PortName,
        new_name: PortName,
    ) -> Result<(), KernReturn> {
        space.rename(n(old_name), n(new_name))
    }

    fn mach_port_allocate_name(
        &mut self,
        space: &Arc<Space>,
        right: u32,
        name: PortName,
    ) -> Result<(), KernReturn> {
        space.allocate_name(right, n(name))
    }

    fn mach_port_allocate(
        &mut self,
        space: &Arc<Space>,
        right: u32,
    ) -> Result<mach_port::MachPortAllocateOut, KernReturn> {
        Ok(mach_port::MachPortAllocateOut {
            name: PortName(space.allocate(right)?.0),
        })
    }

    fn mach_port_destroy(&mut self, space: &Arc<Space>, name: PortName) -> Result<(), KernReturn> {
        space.destroy_name(n(name))
    }

    fn mach_port_deallocate(
        &mut self,
        space: &Arc<Space>,
        name: PortName,
    ) -> Result<(), KernReturn> {
        space.deallocate(n(name))
    }

    fn mach_port_get_refs(
        &mut self,
        space: &Arc<Space>,
        name: PortName,
        right: u32,
    ) -> Result<mach_port::MachPortGetRefsOut, KernReturn> {
        Ok(mach_port::MachPortGetRefsOut {
            refs: space.get_refs(n(name), right)?,
        })
    }

    fn mach_port_mod_refs(
        &mut self,
        space: &Arc<Space>,
        name: PortName,
        right: u32,
        delta: i32,
    ) -> Result<(), KernReturn> {
        space.mod_refs(n(name), right, delta)
    }

    fn mach_port_set_qlimit(
        &mut self,
        space: &Arc<Space>,
        name: PortName,
        qlimit: u32,
    ) -> Result<(), KernReturn> {
        space.set_qlimit(n(name), qlimit)
    }

    fn mach_port_set_mscount(
        &mut self,
        space: &Arc<Space>,
        name: PortName,
        mscount: u32,
    ) -> Result<(), KernReturn> {
        space.set_mscount(n(name), mscount)
    }

    fn mach_port_get_set_status(
        &mut self,
        space: &Arc<Space>,
        name: PortName,
    ) -> Result<mach_port::MachPortGetSetStatusOut, KernReturn> {
        let [members] = self.collect::<1>(space, |[members], overflow| {
            space.get_set_status(n(name), |member| {
                let fits = !*overflow && members.push_u32(member.0);
                *overflow = !fits;
            })
        })?;
        Ok(mach_port::MachPortGetSetStatusOut {
            members: self.ool(members)?,
        })
    }

    fn mach_port_move_member(
        &mut self,
        space: &Arc<Space>,
        member: PortName,
        after: PortName,
    ) -> Result<(), KernReturn> {
        space.move_member(n(member), n(after))
    }

    fn mach_port_request_notification(
        &mut self,
        space: &Arc<Space>,
        name: PortName,
        id: i32,
        sync: u32,
        notify: PortSlot,
    ) -> Result<mach_port::MachPortRequestNotificationOut, KernReturn> {
        let notify = self.slots.take(notify);
        let previous = space.request_notification(n(name), id, sync, notify)?;
        Ok(mach_port::MachPortRequestNotificationOut {
            previous: self.put(previous),
        })
    }

    fn mach_port_insert_right(
        &mut self,
        space: &Arc<Space>,
        name: PortName,
        poly: PortSlot,
        _poly_poly: u8,
    ) -> Result<(), KernReturn> {
        // The right arrives as the type its disposition made it (`mach_msg` rewrote the
        // descriptor), so its kind says all `poly_poly` says.
        let poly = self.slots.take(poly);
        space.insert_right(n(name), poly)
    }

    fn mach_port_extract_right(
        &mut self,
        space: &Arc<Space>,
        name: PortName,
        msgt_name: u32,
    ) -> Result<mach_port::MachPortExtractRightOut, KernReturn> {
        let poly = space.extract_right(n(name), msgt_name)?;
        // `extract_right` accepted `msgt_name` as a disposition.
        let poly_poly = Disposition::from_u32(msgt_name).map_or(0, copyin_type) as u8;
        Ok(mach_port::MachPortExtractRightOut {
            poly: self.put(poly),
            poly_poly,
        })
    }

    fn mach_port_get_receive_status(
        &mut self,
        space: &Arc<Space>,
        name: PortName,
    ) -> Result<mach_port::MachPortGetReceiveStatusOut, KernReturn> {
        let s = space.get_receive_status(n(name))?;
        Ok(mach_port::MachPortGetReceiveStatusOut {
            status: [
                s.pset.0 as i32,
                s.seqno as i32,
                s.mscount as i32,
                s.qlimit as i32,
                s.msgcount as i32,
                s.sorights as i32,
                i32::from(s.srights),
                i32::from(s.pdrequest),
                i32::from(s.nsrequest),
            ],
        })
    }

    fn mach_port_set_seqno(
        &mut self,
        space: &Arc<Space>,
        name: PortName,
        seqno: u32,
    ) -> Result<(), KernReturn> {
        space.set_seqno(n(name), seqno)
    }

    mach_port::mach_port_unimplemented!(crate::server::generated::mach_port;
        mach_port_set_protected_payload,
        mach_port_clear_protected_payload,
        mach_port_set_ktype);
}
