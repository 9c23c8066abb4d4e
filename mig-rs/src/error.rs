//! Errors and source locations: every problem mig-rs reports is an [`Error`] that prints as
//! `file:line:col: message`, so editors and CI logs can jump to the offending text.
//!
//! This module only describes errors; deciding what is an error is the job of the lexer,
//! preprocessor, parser and analyser.

use std::fmt;
use std::sync::Arc;

/// A position in a source file (1-based line and column, columns counted in characters).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Location {
    /// The file name as the user or an `#include` spelled it.
    pub file: Arc<str>,
    /// Line, starting at 1.
    pub line: u32,
    /// Column, starting at 1.
    pub col: u32,
}

impl Location {
    /// A location for things that do not come from a file, such as `-D` options.
    pub fn command_line() -> Self {
        Location {
            file: Arc::from("<command line>"),
            line: 1,
            col: 1,
        }
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file, self.line, self.col)
    }
}

/// An error in the input (or in reading or writing files), with where it happened.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Error {
    /// Where the problem is; `None` for errors that belong to no file (an output file that
    /// cannot be written).
    pub location: Option<Location>,
    /// What is wrong, quoting the offending text.
    pub message: String,
}

impl Error {
    /// An error at `location`.
    pub fn at(location: &Location, message: impl Into<String>) -> Self {
        Error {
            location: Some(location.clone()),
            message: message.into(),
        }
    }

    /// An error that belongs to no source location.
    pub fn plain(message: impl Into<String>) -> Self {
        Error {
            location: None,
            message: message.into(),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.location {
            Some(loc) => write!(f, "{}: {}", loc, self.message),
            None => write!(f, "mig-rs: {}", self.message),
        }
    }
}

impl std::error::Error for Error {}

/// The result type of everything in mig-rs that reads input.
pub type Result<T> = std::result::Result<T, Error>;
