//! The name table: names (1 to 63 printable ASCII bytes) bound to send rights, each held
//! as a port name in bootstrap's space. One port may be registered under several names;
//! bootstrap then holds one user reference per registration and asks for one dead-name
//! notification per port, so the table says when a port is first and last used.

use alloc::collections::BTreeMap;
use alloc::string::String;
use mach_abi::KernReturn;

/// Longest name, in bytes (64 with the NUL: `bootstrap_name_t`).
pub const NAME_MAX: usize = 63;
/// Most names registered at once.
pub const MAX_NAMES: usize = 256;

/// Why a request on the table failed, with the Mach code it answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NameError {
    /// Empty, too long, or a byte outside `!`..`~`: `KERN_INVALID_ARGUMENT`.
    BadName,
    /// Already registered: `KERN_NAME_EXISTS`.
    Exists,
    /// Not registered: `KERN_INVALID_NAME`.
    Unknown,
    /// The table is full: `KERN_RESOURCE_SHORTAGE`.
    Full,
    /// A null or dead right, or not the registered one: `KERN_INVALID_RIGHT`.
    WrongRight,
}

impl NameError {
    pub fn code(self) -> KernReturn {
        match self {
            NameError::BadName => KernReturn::InvalidArgument,
            NameError::Exists => KernReturn::NameExists,
            NameError::Unknown => KernReturn::InvalidName,
            NameError::Full => KernReturn::ResourceShortage,
            NameError::WrongRight => KernReturn::InvalidRight,
        }
    }
}

/// `bytes` as a name, if it is one.
pub fn check_name(bytes: &[u8]) -> Result<&str, NameError> {
    if bytes.is_empty() || bytes.len() > NAME_MAX || !bytes.iter().all(|b| b.is_ascii_graphic()) {
        return Err(NameError::BadName);
    }
    core::str::from_utf8(bytes).map_err(|_| NameError::BadName)
}

/// `MACH_PORT_NULL` and `MACH_PORT_DEAD`: no right to register.
fn valid_port(port: u32) -> bool {
    port != 0 && port != u32::MAX
}

/// Names and the ports registered under them.
#[derive(Debug, Default)]
pub struct NameTable {
    names: BTreeMap<String, u32>,
}

impl NameTable {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn len(&self) -> usize {
        self.names.len()
    }

    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    /// How many names `port` is registered under.
    pub fn uses(&self, port: u32) -> usize {
        self.names.values().filter(|&&p| p == port).count()
    }

    /// Binds `name` to `port`; whether this is the port's first name (then the caller asks
    /// for its dead-name notification).
    pub fn register(&mut self, name: &[u8], port: u32) -> Result<bool, NameError> {
        let name = check_name(name)?;
        if !valid_port(port) {
            return Err(NameError::WrongRight);
        }
        if self.names.contains_key(name) {
            return Err(NameError::Exists);
        }
        if self.names.len() >= MAX_NAMES {
            return Err(NameError::Full);
        }
        let first = self.uses(port) == 0;
        self.names.insert(String::from(name), port);
        Ok(first)
    }

    /// The port registered under `name`.
    pub fn look_up(&self, name: &[u8]) -> Result<u32, NameError> {
        let name = check_name(name)?;
        self.names.get(name).copied().ok_or(NameError::Unknown)
    }

    /// Removes `name`, which must be bound to `port`; whether that was the port's last name
    /// (then the caller cancels its notification).
    pub fn unregister(&mut self, name: &[u8], port: u32) -> Result<bool, NameError> {
        let name = check_name(name)?;
        match self.names.get(name) {
            None => Err(NameError::Unknown),
            Some(&p) if p != port => Err(NameError::WrongRight),
            Some(_) => {
                self.names.remove(name);
                Ok(self.uses(port) == 0)
            }
        }
    }

    /// The port died: every name bound to it goes; how many.
    pub fn port_died(&mut self, port: u32) -> usize {
        let before = self.names.len();
        self.names.retain(|_, p| *p != port);
        before - self.names.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked() {
        assert_eq!(check_name(b"svc.names-1"), Ok("svc.names-1"));
        assert_eq!(check_name(b""), Err(NameError::BadName));
        assert_eq!(check_name(b"a b"), Err(NameError::BadName));
        assert_eq!(check_name(b"tab\t"), Err(NameError::BadName));
        assert_eq!(check_name(&[0xc3, 0xa9]), Err(NameError::BadName));
        assert_eq!(check_name(&[b'x'; 63]).map(str::len), Ok(63));
        assert_eq!(check_name(&[b'x'; 64]), Err(NameError::BadName));
    }

    #[test]
    fn register_look_up_unregister() {
        let mut t = NameTable::new();
        assert_eq!(t.look_up(b"a"), Err(NameError::Unknown));
        assert_eq!(t.register(b"a", 7), Ok(true));
        assert_eq!(t.register(b"b", 7), Ok(false), "the port's second name");
        assert_eq!(t.register(b"a", 9), Err(NameError::Exists));
        assert_eq!(t.register(b"c", 0), Err(NameError::WrongRight));
        assert_eq!(t.register(b"c", u32::MAX), Err(NameError::WrongRight));
        assert_eq!(t.register(b"", 9), Err(NameError::BadName));
        assert_eq!((t.look_up(b"a"), t.look_up(b"b")), (Ok(7), Ok(7)));
        assert_eq!(t.unregister(b"a", 9), Err(NameError::WrongRight));
        assert_eq!(t.unregister(b"zz", 7), Err(NameError::Unknown));
        assert_eq!(t.unregister(b"a", 7), Ok(false), "b still uses 7");
        assert_eq!(t.look_up(b"a"), Err(NameError::Unknown));
        assert_eq!(t.unregister(b"b", 7), Ok(true));
        assert!(t.is_empty());
    }

    #[test]
    fn a_dead_port_takes_all_its_names() {
        let mut t = NameTable::new();
        t.register(b"a", 7).unwrap();
        t.register(b"b", 8).unwrap();
        t.register(b"c", 7).unwrap();
        assert_eq!(t.port_died(7), 2);
        assert_eq!(t.look_up(b"a"), Err(NameError::Unknown));
        assert_eq!(t.look_up(b"c"), Err(NameError::Unknown));
        assert_eq!(t.look_up(b"b"), Ok(8));
        assert_eq!(t.port_died(7), 0);
    }

    #[test]
    fn the_table_is_bounded() {
        let mut t = NameTable::new();
        for i in 0..MAX_NAMES {
            let name = std::format!("n{i}");
            t.register(name.as_bytes(), 10 + i as u32).unwrap();
        }
        assert_eq!(t.register(b"one-more", 5), Err(NameError::Full));
        assert_eq!(t.register(b"n0", 5), Err(NameError::Exists));
        assert_eq!(NameError::Full.code(), KernReturn::ResourceShortage);
        assert_eq!(NameError::Unknown.code(), KernReturn::InvalidName);
        assert_eq!(NameError::Exists.code(), KernReturn::NameExists);
    }
}
