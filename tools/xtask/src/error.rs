//! The xtask's error: a message saying what went wrong and where, printed once by `main`.
//! Not for guest failures, which are exit statuses and test verdicts, not errors.

use std::fmt;

/// A failure of the xtask itself (a tool missing, a build failing, a file unreadable).
#[derive(Debug)]
pub struct Error(String);

/// Result with the xtask's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    /// An error with this message.
    pub fn new(message: impl Into<String>) -> Self {
        Self(message.into())
    }

    /// An I/O error, with what was being done when it happened.
    pub fn io(what: impl fmt::Display, err: std::io::Error) -> Self {
        Self(format!("{what}: {err}"))
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Error {}
