//! The host's kernel ports: the host (name) port, the host-privileged port and the device
//! master port, made once at boot before the first task and never destroyed, charged to
//! nobody (`ipc::ledger::Unmetered`). The device master port opens the devices of
//! `kern::device` (`server::device`); the object behind it is only a marker.

extern crate alloc;

use crate::ipc::{KObject, KObjectKind, Ledger, Port, ledger::Unmetered};
use alloc::sync::Arc;
use spin::Once;

/// The object of the device master port: a marker (its port is what `device_open` checks).
pub struct DeviceMaster;

pub struct HostPorts {
    pub host: Arc<Port>,
    pub host_priv: Arc<Port>,
    pub device: Arc<Port>,
}

static PORTS: Once<Option<HostPorts>> = Once::new();

/// Make the host ports and the devices (once; before the first task, so that the leak
/// check's reference counts them); `initrd` becomes the "ramdisk" device.
pub fn init(initrd: Option<crate::devtree::PhysRange>) {
    crate::kern::device::init(initrd);
    PORTS.call_once(|| {
        let ledger: Arc<dyn Ledger> = Arc::new(Unmetered);
        // The host ports are the object server's (`server::realhost`), so that a message
        // to them is served as the host's.
        let real = crate::server::realhost()?;
        let device = Port::alloc_kernel(
            &ledger,
            Some(KObject::new(
                KObjectKind::MasterDevice,
                Arc::new(DeviceMaster),
            )),
        )
        .ok()?;
        Some(HostPorts {
            host: real.host_port.clone(),
            host_priv: real.host_priv_port.clone(),
            device,
        })
    });
}

/// The host ports, if made.
pub fn ports() -> Option<&'static HostPorts> {
    PORTS.get().and_then(Option::as_ref)
}
