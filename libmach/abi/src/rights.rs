//! Owned port rights and out-of-line memory for user code: values that release what they hold
//! when dropped. A right or region belongs to a task's IPC and address space; the [`Space`]
//! type parameter says how to give it back there (libmach's `TaskSpace` calls
//! `mach_port_deallocate` and `vm_deallocate`; host tests use a recorder). Generated client
//! stubs take and return these types, so a caller can neither leak a right a reply carried nor
//! release one twice.
//!
//! Not for the kernel: kernel code holds ports by reference, not by name.

use core::fmt;
use core::marker::PhantomData;

use crate::message::{
    Element, MACH_MSG_TYPE_COPY_SEND, MACH_MSG_TYPE_MAKE_SEND, MACH_MSG_TYPE_MAKE_SEND_ONCE,
    MACH_MSG_TYPE_MOVE_RECEIVE, MACH_MSG_TYPE_MOVE_SEND, MACH_MSG_TYPE_MOVE_SEND_ONCE,
    MACH_MSG_TYPE_PORT_RECEIVE, MACH_MSG_TYPE_PORT_SEND, MACH_MSG_TYPE_PORT_SEND_ONCE,
    received_right,
};
use crate::port::{PortName, PortRight};

/// Where owned rights and out-of-line regions go back to when dropped: the caller's IPC space
/// and address space.
pub trait Space {
    /// Gives up one user reference of `right` at `name` (`mach_port_deallocate` for send and
    /// send-once rights, `mach_port_mod_refs(RECEIVE, -1)` for a receive right). Called only
    /// for valid names.
    fn release(name: PortName, right: PortRight);

    /// Unmaps `size` bytes of out-of-line memory at `address` (`vm_deallocate`). Called only
    /// for non-empty regions.
    fn deallocate(address: u64, size: u64);
}

macro_rules! owned_right {
    ($(#[$doc:meta])* $name:ident, $right:expr) => {
        $(#[$doc])*
        pub struct $name<S: Space> {
            name: PortName,
            _space: PhantomData<fn() -> S>,
        }

        impl<S: Space> $name<S> {
            /// Takes ownership of the right at `name` (one user reference).
            pub const fn from_name(name: PortName) -> Self {
                Self {
                    name,
                    _space: PhantomData,
                }
            }

            /// No right (`MACH_PORT_NULL`): dropping it does nothing.
            pub const fn null() -> Self {
                Self::from_name(PortName::NULL)
            }

            /// The name, still owned by `self`.
            pub const fn name(&self) -> PortName {
                self.name
            }

            /// True for `MACH_PORT_NULL` and `MACH_PORT_DEAD`.
            pub const fn is_null(&self) -> bool {
                !self.name.is_valid()
            }

            /// Gives up ownership without releasing: the caller (or a message) now owns the
            /// reference.
            pub fn into_name(self) -> PortName {
                let name = self.name;
                core::mem::forget(self);
                name
            }
        }

        impl<S: Space> Drop for $name<S> {
            fn drop(&mut self) {
                if self.name.is_valid() {
                    S::release(self.name, $right);
                }
            }
        }

        impl<S: Space> fmt::Debug for $name<S> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!(stringify!($name), "({:#x})"), self.name.0)
            }
        }

        impl<S: Space> PartialEq for $name<S> {
            fn eq(&self, other: &Self) -> bool {
                self.name == other.name
            }
        }

        impl<S: Space> Eq for $name<S> {}
    };
}

owned_right!(
    /// A send right (one user reference), released with `mach_port_deallocate` when dropped.
    SendRight,
    PortRight::Send
);
owned_right!(
    /// A send-once right, released with `mach_port_deallocate` when dropped (which makes the
    /// kernel send a send-once notification).
    SendOnceRight,
    PortRight::SendOnce
);
owned_right!(
    /// A receive right, destroyed when dropped (`mach_port_mod_refs(RECEIVE, -1)`).
    ReceiveRight,
    PortRight::Receive
);

/// A right to put in a message whose disposition the caller picks (a polymorphic argument):
/// borrowed for copies and makes, owned for moves.
pub enum PortArg<'a, S: Space> {
    /// `MACH_MSG_TYPE_COPY_SEND`: the caller keeps its right.
    CopySend(&'a SendRight<S>),
    /// `MACH_MSG_TYPE_MAKE_SEND`: a new send right made from the caller's receive right.
    MakeSend(&'a ReceiveRight<S>),
    /// `MACH_MSG_TYPE_MAKE_SEND_ONCE`.
    MakeSendOnce(&'a ReceiveRight<S>),
    /// `MACH_MSG_TYPE_MOVE_SEND`: the right goes with the message.
    MoveSend(SendRight<S>),
    /// `MACH_MSG_TYPE_MOVE_SEND_ONCE`.
    MoveSendOnce(SendOnceRight<S>),
    /// `MACH_MSG_TYPE_MOVE_RECEIVE`.
    MoveReceive(ReceiveRight<S>),
    /// A name and a type name the caller manages itself (`MACH_PORT_NULL`, a bare
    /// `MACH_MSG_TYPE_PORT_NAME`, or a right held outside these types).
    Raw(PortName, u8),
}

impl<S: Space> PortArg<'_, S> {
    /// The name and type name to send; moved rights leave the caller here.
    pub fn into_parts(self) -> (PortName, u8) {
        match self {
            PortArg::CopySend(r) => (r.name(), MACH_MSG_TYPE_COPY_SEND),
            PortArg::MakeSend(r) => (r.name(), MACH_MSG_TYPE_MAKE_SEND),
            PortArg::MakeSendOnce(r) => (r.name(), MACH_MSG_TYPE_MAKE_SEND_ONCE),
            PortArg::MoveSend(r) => (r.into_name(), MACH_MSG_TYPE_MOVE_SEND),
            PortArg::MoveSendOnce(r) => (r.into_name(), MACH_MSG_TYPE_MOVE_SEND_ONCE),
            PortArg::MoveReceive(r) => (r.into_name(), MACH_MSG_TYPE_MOVE_RECEIVE),
            PortArg::Raw(name, type_name) => (name, type_name),
        }
    }
}

/// A right received in a polymorphic slot, owned according to what arrived.
#[derive(Debug, PartialEq, Eq)]
pub enum ReceivedPort<S: Space> {
    /// `MACH_MSG_TYPE_PORT_SEND`.
    Send(SendRight<S>),
    /// `MACH_MSG_TYPE_PORT_SEND_ONCE`.
    SendOnce(SendOnceRight<S>),
    /// `MACH_MSG_TYPE_PORT_RECEIVE`.
    Receive(ReceiveRight<S>),
    /// Anything else (a bare port name, or a value that is not a port): not owned.
    Other(PortName, u8),
}

impl<S: Space> ReceivedPort<S> {
    /// Takes ownership of `name` received as `type_name`.
    pub fn new(name: PortName, type_name: u8) -> Self {
        match received_right(type_name) {
            MACH_MSG_TYPE_PORT_SEND => ReceivedPort::Send(SendRight::from_name(name)),
            MACH_MSG_TYPE_PORT_SEND_ONCE => ReceivedPort::SendOnce(SendOnceRight::from_name(name)),
            MACH_MSG_TYPE_PORT_RECEIVE => ReceivedPort::Receive(ReceiveRight::from_name(name)),
            _ => ReceivedPort::Other(name, type_name),
        }
    }

    /// The name.
    pub fn name(&self) -> PortName {
        match self {
            ReceivedPort::Send(r) => r.name(),
            ReceivedPort::SendOnce(r) => r.name(),
            ReceivedPort::Receive(r) => r.name(),
            ReceivedPort::Other(n, _) => *n,
        }
    }
}

/// Releases one right received as `type_name` at `name` into `S` (nothing for names that
/// carry no right).
pub fn release_received<S: Space>(name: PortName, type_name: u8) {
    drop(ReceivedPort::<S>::new(name, type_name));
}

/// Bytes of a region of the caller's address space.
///
/// # Safety
///
/// If `len > 0` and `address != 0`, `[address, address + len)` must be readable memory of
/// this task that stays mapped and unchanged for `'a`.
pub(crate) unsafe fn region<'a>(address: u64, len: usize) -> &'a [u8] {
    if len == 0 || address == 0 {
        return &[];
    }
    // SAFETY: the caller guarantees the range is readable and stable for 'a; it is not null
    // (checked) and u8 needs no alignment.
    unsafe { core::slice::from_raw_parts(address as usize as *const u8, len) }
}

/// Out-of-line data a message brought into the caller's address space: `count` elements of
/// `E` at `address`, unmapped (through `S`) when dropped.
pub struct OolData<S: Space, E: Element> {
    address: u64,
    count: u32,
    _owns: PhantomData<(fn() -> S, E)>,
}

impl<S: Space, E: Element> OolData<S, E> {
    /// Takes ownership of the region.
    ///
    /// # Safety
    ///
    /// `count * E::SIZE` bytes at `address` must be memory of this task, readable, that
    /// nothing else uses or frees: the value reads it and unmaps it when dropped.
    pub const unsafe fn from_raw(address: u64, count: u32) -> Self {
        Self {
            address,
            count,
            _owns: PhantomData,
        }
    }

    /// An empty region (nothing to unmap).
    pub const fn empty() -> Self {
        Self {
            address: 0,
            count: 0,
            _owns: PhantomData,
        }
    }

    /// The address.
    pub const fn address(&self) -> u64 {
        self.address
    }

    /// Number of elements.
    pub const fn len(&self) -> u32 {
        self.count
    }

    /// True if there are none.
    pub const fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Size in bytes.
    pub fn byte_len(&self) -> usize {
        (self.count as usize).saturating_mul(E::SIZE)
    }

    /// The bytes.
    pub fn as_bytes(&self) -> &[u8] {
        // SAFETY: `from_raw`'s contract: the region is ours, readable and unchanging while
        // `self` lives.
        unsafe { region(self.address, self.byte_len()) }
    }

    /// Element `i`.
    pub fn get(&self, i: usize) -> Option<E> {
        let start = i.checked_mul(E::SIZE)?;
        let bytes = self.as_bytes().get(start..start.checked_add(E::SIZE)?)?;
        Some(E::load(bytes))
    }

    /// The elements in order.
    pub fn iter(&self) -> impl Iterator<Item = E> + '_ {
        self.as_bytes().chunks_exact(E::SIZE.max(1)).map(E::load)
    }

    /// Gives up ownership: `(address, count)`, to be unmapped by the caller (or sent).
    pub fn into_raw(self) -> (u64, u32) {
        let parts = (self.address, self.count);
        core::mem::forget(self);
        parts
    }
}

impl<S: Space, E: Element> Drop for OolData<S, E> {
    fn drop(&mut self) {
        let size = self.byte_len() as u64;
        if size != 0 && self.address != 0 {
            S::deallocate(self.address, size);
        }
    }
}

impl<S: Space, E: Element> fmt::Debug for OolData<S, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "OolData({:#x}, {} elements)", self.address, self.count)
    }
}

impl<S: Space, E: Element> PartialEq for OolData<S, E> {
    fn eq(&self, other: &Self) -> bool {
        self.address == other.address && self.count == other.count
    }
}

impl<S: Space, E: Element> Eq for OolData<S, E> {}

/// Out-of-line data to send: borrowed (the kernel copies it) or given away (the kernel takes
/// the region out of the caller's space: `deallocate` is set).
pub enum OolArg<'a, S: Space, E: Element> {
    /// The caller keeps the memory.
    Copy(&'a [E]),
    /// The region goes with the message.
    Move(OolData<S, E>),
}

/// An out-of-line array of port rights a message brought: `count` 32-bit names at `address`,
/// each carrying one right of the received type. Dropping it releases every right still in it
/// and unmaps the array.
pub struct OolPorts<S: Space> {
    address: u64,
    count: u32,
    right: u8,
    _owns: PhantomData<fn() -> S>,
}

impl<S: Space> OolPorts<S> {
    /// Takes ownership of the array and of the rights in it, received as `right`
    /// (`MACH_MSG_TYPE_PORT_SEND` and the like).
    ///
    /// # Safety
    ///
    /// As for [`OolData::from_raw`] with 4-byte elements.
    pub const unsafe fn from_raw(address: u64, count: u32, right: u8) -> Self {
        Self {
            address,
            count,
            right,
            _owns: PhantomData,
        }
    }

    /// Number of names.
    pub const fn len(&self) -> u32 {
        self.count
    }

    /// True if there are none.
    pub const fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The type name the rights arrived as.
    pub const fn right(&self) -> u8 {
        self.right
    }

    /// The address of the array.
    pub const fn address(&self) -> u64 {
        self.address
    }

    fn bytes(&self) -> &[u8] {
        // SAFETY: `from_raw`'s contract: the array is ours and unchanging while `self`
        // lives.
        unsafe { region(self.address, (self.count as usize).saturating_mul(4)) }
    }

    /// The names, still owned by `self`.
    pub fn names(&self) -> impl Iterator<Item = PortName> + '_ {
        self.bytes().chunks_exact(4).map(PortName::load)
    }

    /// Name `i`.
    pub fn name(&self, i: usize) -> Option<PortName> {
        self.names().nth(i)
    }

    /// Hands every right to `f`, in order, then unmaps the array.
    pub fn take_all(self, mut f: impl FnMut(ReceivedPort<S>)) {
        for name in self.names() {
            f(ReceivedPort::new(name, self.right));
        }
        let size = (self.count as u64) * 4;
        let address = self.address;
        core::mem::forget(self);
        if size != 0 && address != 0 {
            S::deallocate(address, size);
        }
    }
}

impl<S: Space> Drop for OolPorts<S> {
    fn drop(&mut self) {
        for name in self.names() {
            if name.is_valid() {
                release_received::<S>(name, self.right);
            }
        }
        let size = (self.count as u64) * 4;
        if size != 0 && self.address != 0 {
            S::deallocate(self.address, size);
        }
    }
}

impl<S: Space> fmt::Debug for OolPorts<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.names()).finish()
    }
}

impl<S: Space> PartialEq for OolPorts<S> {
    fn eq(&self, other: &Self) -> bool {
        self.right == other.right && self.names().eq(other.names())
    }
}

impl<S: Space> Eq for OolPorts<S> {}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use std::cell::RefCell;
    use std::vec::Vec;

    std::thread_local! {
        static LOG: RefCell<Vec<(u32, PortRight)>> = const { RefCell::new(Vec::new()) };
        static FREED: RefCell<Vec<(u64, u64)>> = const { RefCell::new(Vec::new()) };
    }

    struct Rec;
    impl Space for Rec {
        fn release(name: PortName, right: PortRight) {
            LOG.with(|l| l.borrow_mut().push((name.0, right)));
        }
        fn deallocate(address: u64, size: u64) {
            FREED.with(|l| l.borrow_mut().push((address, size)));
        }
    }

    fn log() -> Vec<(u32, PortRight)> {
        LOG.with(|l| core::mem::take(&mut *l.borrow_mut()))
    }

    #[test]
    fn rights_release_once_on_drop() {
        drop(SendRight::<Rec>::from_name(PortName(5)));
        drop(SendOnceRight::<Rec>::from_name(PortName(6)));
        drop(ReceiveRight::<Rec>::from_name(PortName(7)));
        drop(SendRight::<Rec>::null());
        drop(SendRight::<Rec>::from_name(PortName::DEAD));
        assert_eq!(
            log(),
            [
                (5, PortRight::Send),
                (6, PortRight::SendOnce),
                (7, PortRight::Receive)
            ]
        );
        let r = SendRight::<Rec>::from_name(PortName(8));
        assert_eq!(r.into_name(), PortName(8));
        let (name, disp) = PortArg::MoveSend(SendRight::<Rec>::from_name(PortName(9))).into_parts();
        assert_eq!((name, disp), (PortName(9), MACH_MSG_TYPE_MOVE_SEND));
        let keep = ReceiveRight::<Rec>::from_name(PortName(10));
        assert_eq!(
            PortArg::MakeSend(&keep).into_parts(),
            (PortName(10), MACH_MSG_TYPE_MAKE_SEND)
        );
        assert_eq!(log(), []);
        drop(keep);
        assert_eq!(log(), [(10, PortRight::Receive)]);
    }

    #[test]
    fn received_ports_own_what_arrived() {
        drop(ReceivedPort::<Rec>::new(
            PortName(3),
            MACH_MSG_TYPE_MAKE_SEND_ONCE,
        ));
        drop(ReceivedPort::<Rec>::new(PortName(4), 15));
        assert_eq!(log(), [(3, PortRight::SendOnce)]);
    }

    #[test]
    fn ool_regions_unmap_on_drop() {
        let data: &'static mut [u32; 3] = std::boxed::Box::leak(std::boxed::Box::new([1, 2, 3]));
        let address = data.as_ptr() as u64;
        // SAFETY: a leaked allocation nobody else uses; the recorder does not free it.
        let ool = unsafe { OolData::<Rec, u32>::from_raw(address, 3) };
        assert_eq!(ool.iter().collect::<Vec<_>>(), [1, 2, 3]);
        assert_eq!(ool.get(2), Some(3));
        assert_eq!(ool.get(3), None);
        drop(ool);
        assert_eq!(FREED.with(|f| f.borrow().clone()), [(address, 12)]);
        // Names in an out-of-line port array: each right is released, then the array.
        FREED.with(|f| f.borrow_mut().clear());
        // SAFETY: as above.
        let ports = unsafe { OolPorts::<Rec>::from_raw(address, 3, MACH_MSG_TYPE_PORT_SEND) };
        assert_eq!(ports.name(1), Some(PortName(2)));
        drop(ports);
        assert_eq!(
            log(),
            [
                (1, PortRight::Send),
                (2, PortRight::Send),
                (3, PortRight::Send)
            ]
        );
        assert_eq!(FREED.with(|f| f.borrow().clone()), [(address, 12)]);
        // SAFETY: as above.
        let ports = unsafe { OolPorts::<Rec>::from_raw(address, 3, MACH_MSG_TYPE_PORT_SEND) };
        let mut kept = Vec::new();
        ports.take_all(|p| kept.push(p));
        assert_eq!(log(), []);
        drop(kept);
        assert_eq!(log().len(), 3);
    }
}
