//! The host's kernel ports: the host (name) port, the host-privileged port and the device
//! master port, made once at boot before the first task and never destroyed, charged to
//! nobody (`ipc::ledger::Unmetered`). The device port stands for a placeholder object until
//! there is a device server; a message to it gets the kernel server's answer for an unknown
//! object.

extern crate alloc;

use crate::ipc::{KObject, KObjectKind, Ledger, Port, ledger::Unmetered};
use alloc::sync::Arc;
use spin::Once;

/// What the host ports stand for (the kernel server tells host from host-privileged by the
/// port's kind).
pub struct Host;

/// Placeholder object of the device master port (no device server yet).
pub struct DeviceMaster;

pub struct HostPorts {
    pub host: Arc<Port>,
    pub host_priv: Arc<Port>,
    pub device: Arc<Port>,
}

static PORTS: Once<Option<HostPorts>> = Once::new();

/// Make the host ports (once; before the first task, so that the leak check's reference
/// counts them).
pub fn init() {
    PORTS.call_once(|| {
        let ledger: Arc<dyn Ledger> = Arc::new(Unmetered);
        let host = Arc::new(Host);
        let port = |object: KObject| Port::alloc_kernel(&ledger, Some(object)).ok();
        Some(HostPorts {
            host: port(KObject::new(KObjectKind::Host, host.clone()))?,
            host_priv: port(KObject::new(KObjectKind::HostPriv, host))?,
            device: port(KObject::new(
                KObjectKind::MasterDevice,
                Arc::new(DeviceMaster),
            ))?,
        })
    });
}

/// The host ports, if made.
pub fn ports() -> Option<&'static HostPorts> {
    PORTS.get().and_then(Option::as_ref)
}
