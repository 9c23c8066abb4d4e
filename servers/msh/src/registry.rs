//! msh's small numbers for kernel objects: a thread, a task or a processor set gets the next
//! number the first time msh sees it and keeps it while it exists, so that what `ps` or
//! `psets` shows can be typed back (`bind 3 1`). msh keeps one send right per object; a
//! right received again for a known object arrives under the same port name (Mach gives a
//! space one name per port), which is how it is recognised. Not a cache of any state.

use alloc::vec::Vec;
use libmach::PortName;
use libmach::abi::mig::PortRight;
use libmach::ipc::{self, SendRight};
use libmach::mig::mach_port;

struct Entry {
    id: u32,
    right: SendRight,
}

pub struct Registry {
    entries: Vec<Entry>,
    next: u32,
}

impl Registry {
    /// Numbers from `first`.
    pub const fn new(first: u32) -> Self {
        Self {
            entries: Vec::new(),
            next: first,
        }
    }

    /// The number of the object `right` names, new or known; the registry keeps one right.
    pub fn adopt(&mut self, right: SendRight) -> u32 {
        let name = right.name();
        if let Some(id) = self.id_of(name) {
            // One reference more on a name the registry already holds: give it back.
            drop(right);
            return id;
        }
        let id = self.next;
        self.next += 1;
        self.entries.push(Entry { id, right });
        id
    }

    /// Adopts a name the task holds a send right under, taking a reference of its own.
    pub fn adopt_name(&mut self, name: PortName) -> Option<u32> {
        if let Some(id) = self.id_of(name) {
            return Some(id);
        }
        mach_port::mach_port_mod_refs(
            &mut ipc::transport(),
            &ipc::task_self(),
            name,
            PortRight::Send as u32,
            1,
        )
        .ok()?;
        Some(self.adopt(SendRight::from_name(name)))
    }

    pub fn id_of(&self, name: PortName) -> Option<u32> {
        self.entries
            .iter()
            .find(|e| e.right.name() == name)
            .map(|e| e.id)
    }

    pub fn get(&self, id: u32) -> Option<&SendRight> {
        self.entries.iter().find(|e| e.id == id).map(|e| &e.right)
    }

    /// Forgets (and releases) every object not in `alive`.
    pub fn retain(&mut self, alive: &[u32]) {
        self.entries.retain(|e| alive.contains(&e.id));
    }

    /// Forgets one object.
    pub fn forget(&mut self, id: u32) {
        self.entries.retain(|e| e.id != id);
    }
}
