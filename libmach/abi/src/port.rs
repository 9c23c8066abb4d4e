//! Port names and port slots. A task names its rights with 32-bit `mach_port_name_t`
//! values ([`PortName`]); a message holds every port right (the two in the header and each
//! inline right in the body) in a 64-bit slot ([`PortSlot`]), GNU Mach's LP64 layout. In a
//! user message the slot holds the name, zero-extended; in a message the kernel holds it may
//! hold the kernel's own reference to the port, which is why the slot is 64 bits wide and why
//! nothing here ever narrows a slot silently: [`PortSlot::name`] says when a slot is not a
//! name.

/// A name in a task's IPC space (`mach_port_name_t`, 32 bits).
#[repr(transparent)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PortName(pub u32);

impl PortName {
    /// `MACH_PORT_NULL`.
    pub const NULL: PortName = PortName(0);
    /// `MACH_PORT_DEAD`.
    pub const DEAD: PortName = PortName(u32::MAX);

    /// `MACH_PORT_VALID`: neither null nor dead.
    pub const fn is_valid(self) -> bool {
        self.0 != Self::NULL.0 && self.0 != Self::DEAD.0
    }
}

/// The 64-bit slot a message holds a port right in: a [`PortName`] zero-extended in user
/// messages, whatever the kernel keeps there (a reference to the port) in kernel messages.
#[repr(transparent)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PortSlot(pub u64);

impl PortSlot {
    /// An empty slot (`MACH_PORT_NULL`, `IP_NULL`).
    pub const NULL: PortSlot = PortSlot(0);
    /// A dead port as the kernel writes it in its own messages (`IP_DEAD`).
    pub const KERNEL_DEAD: PortSlot = PortSlot(u64::MAX);

    /// The slot that carries `name`.
    pub const fn from_name(name: PortName) -> Self {
        PortSlot(name.0 as u64)
    }

    /// The name in the slot, or `None` if the slot holds more than 32 bits (it is not a
    /// user-space name).
    pub const fn name(self) -> Option<PortName> {
        if self.0 >> 32 == 0 {
            Some(PortName(self.0 as u32))
        } else {
            None
        }
    }

    /// Neither null nor dead, in either form (`IP_VALID` / `MACH_PORT_VALID`).
    pub const fn is_valid(self) -> bool {
        self.0 != 0 && self.0 != u64::MAX && self.0 != PortName::DEAD.0 as u64
    }
}

impl From<PortName> for PortSlot {
    fn from(name: PortName) -> Self {
        Self::from_name(name)
    }
}

/// Kinds of rights a name can denote (`mach_port_right_t`, `MACH_PORT_RIGHT_*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum PortRight {
    /// `MACH_PORT_RIGHT_SEND`.
    Send = 0,
    /// `MACH_PORT_RIGHT_RECEIVE`.
    Receive = 1,
    /// `MACH_PORT_RIGHT_SEND_ONCE`.
    SendOnce = 2,
    /// `MACH_PORT_RIGHT_PORT_SET`.
    PortSet = 3,
    /// `MACH_PORT_RIGHT_DEAD_NAME`.
    DeadName = 4,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_never_narrow_silently() {
        let s = PortSlot::from(PortName(0x1234));
        assert_eq!(s, PortSlot(0x1234));
        assert_eq!(s.name(), Some(PortName(0x1234)));
        assert_eq!(PortSlot(0xffff_8000_0000_1234).name(), None);
        assert_eq!(PortSlot(1 << 32).name(), None);
        assert!(!PortSlot::NULL.is_valid());
        assert!(!PortSlot::KERNEL_DEAD.is_valid());
        assert!(!PortSlot::from(PortName::DEAD).is_valid());
        assert!(PortSlot(0xffff_8000_0000_1234).is_valid());
        assert!(!PortName::DEAD.is_valid() && !PortName::NULL.is_valid());
        assert!(PortName(7).is_valid());
    }
}
