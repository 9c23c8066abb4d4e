//! Errors of the device-tree layer: what was wrong, and where (node path and property).
//!
//! An error is a plain value with no heap behind it: the node path is copied into a small
//! fixed buffer (and shortened with `...` when it does not fit), property names are the
//! `'static` names this layer looks up. `Display` gives one line a person can act on.

use arrayvec::ArrayString;
use core::fmt;

/// How many bytes of a node path an error keeps (sized so that `DtError` stays within
/// clippy's 128-byte `result_large_err` budget; real paths are shorter).
const PATH_CAPACITY: usize = 64;

/// What was wrong with the device tree.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DtErrorKind {
    /// The blob is shorter than it has to be.
    Truncated {
        what: &'static str,
        need: u32,
        have: u32,
    },
    /// The header does not start with 0xd00dfeed.
    BadMagic(u32),
    /// The header's version is one this reader does not understand.
    UnsupportedVersion { version: u32, last_compatible: u32 },
    /// `totalsize` in the header is out of the sane range.
    BadTotalSize(u32),
    /// A block named by the header lies (partly) outside the blob.
    Layout(&'static str),
    /// The structure block is malformed `offset` bytes into it.
    Structure { offset: usize, what: &'static str },
    /// A node this layer needs is not in the tree.
    MissingNode,
    /// No node is compatible with any of the listed strings (the text lists them).
    NotFound(&'static str),
    /// A property this layer needs is absent.
    MissingProperty,
    /// A property has the wrong length; `expected` says what was allowed.
    BadLength { len: usize, expected: &'static str },
    /// A `reg`/`ranges`-like property is not a whole number of `entry`-byte entries.
    RaggedEntries { len: usize, entry: usize },
    /// A `#...-cells` value is outside what this layer supports.
    BadCells { value: u32, max: u32 },
    /// A string property is not NUL-terminated UTF-8.
    NotAString,
    /// A property's value is not one of the allowed ones, or contradicts the rest of the tree.
    Invalid(&'static str),
    /// A `phandle` reference names no node.
    DanglingPhandle(u32),
    /// The parent bus of this node has no `ranges`, so its addresses cannot be translated.
    NoRanges,
    /// An address is outside every entry of the bus's `ranges`.
    Untranslatable { address: u64 },
    /// A base plus size goes past 2^64.
    Overflow { base: u64, size: u64 },
    /// More entries than the fixed-size result can hold.
    TooMany { what: &'static str, max: usize },
}

/// A device-tree error: the kind, and the node and property it was found at (when known).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DtError {
    kind: DtErrorKind,
    node: ArrayString<PATH_CAPACITY>,
    node_truncated: bool,
    property: Option<&'static str>,
}

impl DtError {
    /// The blob is too short for `what` (lengths saturate at `u32::MAX`).
    pub(crate) fn truncated(what: &'static str, need: usize, have: usize) -> Self {
        let clamp = |len: usize| u32::try_from(len).unwrap_or(u32::MAX);
        Self::new(DtErrorKind::Truncated {
            what,
            need: clamp(need),
            have: clamp(have),
        })
    }

    /// An error not tied to a node (header and structure problems).
    pub(crate) fn new(kind: DtErrorKind) -> Self {
        Self {
            kind,
            node: ArrayString::new(),
            node_truncated: false,
            property: None,
        }
    }

    /// An error at the node with this path (given as its list of node names, root first).
    pub(crate) fn at_names<'n>(kind: DtErrorKind, names: impl Iterator<Item = &'n str>) -> Self {
        let mut error = Self::new(kind);
        let mut empty = true;
        for name in names.filter(|name| !name.is_empty()) {
            error.push_path("/");
            error.push_path(name);
            empty = false;
        }
        if empty {
            error.push_path("/");
        }
        error
    }

    /// An error at a node given by its path text (`/chosen`, an alias target, ...).
    pub(crate) fn at_path(kind: DtErrorKind, path: &str) -> Self {
        let mut error = Self::new(kind);
        error.push_path(path);
        error
    }

    /// The same error, naming the property it is about.
    pub(crate) fn with_property(mut self, property: &'static str) -> Self {
        self.property = Some(property);
        self
    }

    /// What was wrong.
    pub fn kind(&self) -> DtErrorKind {
        self.kind
    }

    /// The path of the node the error is about ("" when it is about the blob as a whole).
    pub fn node(&self) -> &str {
        &self.node
    }

    /// The property the error is about, if any.
    pub fn property(&self) -> Option<&'static str> {
        self.property
    }

    /// Appends to the node path, ending it with "..." once it no longer fits.
    fn push_path(&mut self, text: &str) {
        const ELLIPSIS: &str = "...";
        if self.node_truncated {
            return;
        }
        for c in text.chars() {
            if self.node.len() + c.len_utf8() + ELLIPSIS.len() > PATH_CAPACITY {
                // Fits: every earlier push left room for the ellipsis.
                let _ = self.node.try_push_str(ELLIPSIS);
                self.node_truncated = true;
                return;
            }
            self.node.push(c);
        }
    }
}

impl fmt::Display for DtErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::Truncated { what, need, have } => {
                write!(f, "{what} needs {need} bytes but only {have} are there")
            }
            Self::BadMagic(magic) => {
                write!(
                    f,
                    "not a flattened device tree: magic {magic:#010x}, expected 0xd00dfeed"
                )
            }
            Self::UnsupportedVersion {
                version,
                last_compatible,
            } => write!(
                f,
                "unsupported version {version} (last compatible {last_compatible}); \
                 this reader needs version 17, or a later one compatible with 16 or 17"
            ),
            Self::BadTotalSize(size) => {
                write!(
                    f,
                    "header totalsize {size} is not between 40 bytes and 16 MiB"
                )
            }
            Self::Layout(what) => write!(f, "{what}"),
            Self::Structure { offset, what } => {
                write!(f, "malformed structure block at offset {offset:#x}: {what}")
            }
            Self::MissingNode => write!(f, "node is missing"),
            Self::NotFound(what) => write!(f, "no enabled node compatible with {what}"),
            Self::MissingProperty => write!(f, "property is missing"),
            Self::BadLength { len, expected } => {
                write!(f, "length is {len} bytes, expected {expected}")
            }
            Self::RaggedEntries { len, entry } => write!(
                f,
                "length {len} is not a whole number of {entry}-byte entries \
                 (check #address-cells/#size-cells)"
            ),
            Self::BadCells { value, max } => {
                write!(f, "cell count {value} is not supported (at most {max})")
            }
            Self::NotAString => write!(f, "value is not a NUL-terminated UTF-8 string"),
            Self::Invalid(why) => write!(f, "{why}"),
            Self::DanglingPhandle(phandle) => {
                write!(f, "phandle {phandle:#x} does not name any node")
            }
            Self::NoRanges => write!(
                f,
                "bus has no `ranges` property, so addresses below it cannot be \
                 translated to CPU physical addresses"
            ),
            Self::Untranslatable { address } => {
                write!(
                    f,
                    "bus address {address:#x} is not inside any of the bus's `ranges`"
                )
            }
            Self::Overflow { base, size } => {
                write!(
                    f,
                    "range {base:#x} + {size:#x} runs past the end of the address space"
                )
            }
            Self::TooMany { what, max } => write!(f, "more than {max} {what}"),
        }
    }
}

impl fmt::Display for DtError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("device tree: ")?;
        if !self.node.is_empty() {
            write!(f, "{}: ", self.node)?;
        }
        if let Some(property) = self.property {
            write!(f, "property `{property}`: ")?;
        }
        write!(f, "{}", self.kind)
    }
}

impl core::error::Error for DtError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_names_node_and_property() {
        let error = DtError::at_names(
            DtErrorKind::RaggedEntries { len: 12, entry: 8 },
            ["", "soc", "serial@7e215040"].into_iter(),
        )
        .with_property("reg");
        assert_eq!(
            error.to_string(),
            "device tree: /soc/serial@7e215040: property `reg`: length 12 is not a whole \
             number of 8-byte entries (check #address-cells/#size-cells)"
        );
    }

    #[test]
    fn root_path_is_a_slash() {
        let error = DtError::at_names(DtErrorKind::MissingProperty, [""].into_iter());
        assert_eq!(error.node(), "/");
    }

    #[test]
    fn error_fits_the_large_error_budget() {
        assert!(core::mem::size_of::<DtError>() <= 128);
    }

    #[test]
    fn long_paths_are_shortened() {
        let long = "n".repeat(40);
        let names = [long.as_str(); 3];
        let error = DtError::at_names(DtErrorKind::MissingNode, names.into_iter());
        assert!(error.node().len() <= PATH_CAPACITY);
        assert!(error.node().ends_with("..."));
    }
}
