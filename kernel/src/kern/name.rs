//! Names of tasks and threads, for the kernel's reports (`task_set_name`,
//! `thread_set_name`, `thread_get_name` of `gnumach.defs`): a fixed buffer of GNU Mach's
//! size inside the object, so naming never allocates and never fails. A longer name is cut
//! to fit, as GNU Mach cuts it. Not an identifier: names need not be unique.

use core::fmt;
use mach_abi::gnumach::NAME_SIZE;

/// A name of at most `NAME_SIZE - 1` bytes (no NUL among them), changed in place.
pub struct DebugName(spin::Mutex<[u8; NAME_SIZE]>);

impl DebugName {
    /// The name `bytes` (up to a NUL, cut to fit).
    pub fn new(bytes: &[u8]) -> Self {
        DebugName(spin::Mutex::new(Self::fit(bytes)))
    }

    /// A copy of `other` as it is now.
    pub fn copy_of(other: &DebugName) -> Self {
        DebugName(spin::Mutex::new(*other.0.lock()))
    }

    /// Replace the name with `bytes` (up to a NUL, cut to fit).
    pub fn set(&self, bytes: &[u8]) {
        *self.0.lock() = Self::fit(bytes);
    }

    /// The name's bytes, NUL-padded to `NAME_SIZE` (at least the last is a NUL).
    pub fn get(&self) -> [u8; NAME_SIZE] {
        *self.0.lock()
    }

    /// `bytes` up to its first NUL and at most `NAME_SIZE - 1` of them, NUL-padded.
    fn fit(bytes: &[u8]) -> [u8; NAME_SIZE] {
        let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
        let n = end.min(NAME_SIZE - 1);
        let mut out = [0u8; NAME_SIZE];
        out[..n].copy_from_slice(&bytes[..n]);
        out
    }
}

/// The bytes of a NUL-padded name before its NUL.
pub fn trimmed(name: &[u8; NAME_SIZE]) -> &[u8] {
    let end = name.iter().position(|&b| b == 0).unwrap_or(NAME_SIZE);
    &name[..end]
}

/// For the console: printable ASCII as is, any other byte as `\xNN` (a name is whatever
/// a task sent, and must not drive the terminal).
impl fmt::Display for DebugName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = self.get();
        for &b in trimmed(&name) {
            if (0x20..0x7f).contains(&b) && b != b'\\' {
                fmt::Write::write_char(f, b as char)?;
            } else {
                write!(f, "\\x{b:02x}")?;
            }
        }
        Ok(())
    }
}

impl fmt::Debug for DebugName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "\"{self}\"")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    extern crate std;
    use std::format;

    #[test]
    fn names_are_cut_at_a_nul_and_to_31_bytes() {
        let n = DebugName::new(b"worker\0junk");
        assert_eq!(trimmed(&n.get()), b"worker");
        let long = [b'a'; 100];
        n.set(&long);
        assert_eq!(trimmed(&n.get()), &long[..NAME_SIZE - 1]);
        assert_eq!(n.get()[NAME_SIZE - 1], 0);
        n.set(b"");
        assert_eq!(trimmed(&n.get()), b"");
    }

    #[test]
    fn a_copy_does_not_follow_the_original() {
        let task = DebugName::new(b"server");
        let thread = DebugName::copy_of(&task);
        task.set(b"renamed");
        assert_eq!(trimmed(&thread.get()), b"server");
    }

    #[test]
    fn the_console_sees_no_control_bytes() {
        let n = DebugName::new(b"a\x1b[2Jb\\\xff");
        assert_eq!(format!("{n}"), "a\\x1b[2Jb\\x5c\\xff");
    }
}
