//! Typed reading of property values: strings, cells, `reg` entries, and the translation of
//! bus addresses to CPU physical addresses through the parents' `ranges`.
//!
//! Every reader checks the value's length against what the binding allows and reports the
//! node and property otherwise. Which properties a machine needs is `machine.rs`'s business.

use super::blob::{Blob, Chain, Node, be_u32};
use super::error::{DtError, DtErrorKind};

/// Addresses and sizes this layer reads are at most two cells (64 bits).
const MAX_VALUE_CELLS: u32 = 2;

/// The `#address-cells`/`#size-cells` a bus node gives its children.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Cells {
    pub address: u32,
    pub size: u32,
}

impl Cells {
    /// Bytes in one (address, size) entry.
    fn entry_len(self) -> usize {
        (self.address as usize + self.size as usize) * 4
    }
}

/// Reads a big-endian number of `cells` 32-bit cells (0, 1 or 2) from the start of `bytes`.
fn read_cells(bytes: &[u8], cells: u32) -> u64 {
    (0..cells as usize).fold(0, |value, index| {
        (value << 32) | u64::from(be_u32(bytes, index * 4).unwrap_or(0))
    })
}

/// A property that must be one 32-bit cell.
pub(crate) fn u32_property(
    blob: &Blob<'_>,
    chain: &Chain<'_>,
    name: &'static str,
) -> Result<Option<u32>, DtError> {
    match blob.property(chain.node(), name) {
        None => Ok(None),
        Some(value) if value.len() == 4 => Ok(be_u32(value, 0)),
        Some(value) => Err(chain.property_error(
            name,
            DtErrorKind::BadLength {
                len: value.len(),
                expected: "4 bytes (one cell)",
            },
        )),
    }
}

/// A property that is one or two cells: a 32- or 64-bit number.
pub(crate) fn u64_property(
    blob: &Blob<'_>,
    chain: &Chain<'_>,
    name: &'static str,
) -> Result<Option<u64>, DtError> {
    match blob.property(chain.node(), name) {
        None => Ok(None),
        Some(value) if value.len() == 4 || value.len() == 8 => {
            Ok(Some(read_cells(value, (value.len() / 4) as u32)))
        }
        Some(value) => Err(chain.property_error(
            name,
            DtErrorKind::BadLength {
                len: value.len(),
                expected: "4 or 8 bytes (one or two cells)",
            },
        )),
    }
}

/// A string property: NUL-terminated UTF-8. Gives the text before the first NUL.
pub(crate) fn string_property<'a>(
    blob: &Blob<'a>,
    chain: &Chain<'a>,
    name: &'static str,
) -> Result<Option<&'a str>, DtError> {
    let Some(value) = blob.property(chain.node(), name) else {
        return Ok(None);
    };
    let not_a_string = || chain.property_error(name, DtErrorKind::NotAString);
    let len = value
        .iter()
        .position(|&byte| byte == 0)
        .ok_or_else(not_a_string)?;
    let text = value.get(..len).ok_or_else(not_a_string)?;
    core::str::from_utf8(text)
        .map(Some)
        .map_err(|_| not_a_string())
}

/// Whether any of the strings in the `compatible` list of `node` is one of `wanted`.
pub(crate) fn is_compatible(blob: &Blob<'_>, node: Node<'_>, wanted: &[&str]) -> bool {
    blob.property(node, "compatible").is_some_and(|list| {
        list.split(|&byte| byte == 0)
            .any(|entry| wanted.iter().any(|wanted| wanted.as_bytes() == entry))
    })
}

/// Whether `node`'s `status` is absent, "okay" or "ok" (anything else, e.g. "disabled",
/// or a malformed value, counts as not enabled).
pub(crate) fn is_enabled(blob: &Blob<'_>, node: Node<'_>) -> bool {
    match blob.property(node, "status") {
        None => true,
        Some(value) => matches!(value, b"okay\0" | b"ok\0" | b"okay" | b"ok"),
    }
}

/// Whether `node`'s `device_type` is `kind` ("memory", "cpu").
pub(crate) fn has_device_type(blob: &Blob<'_>, node: Node<'_>, kind: &str) -> bool {
    blob.property(node, "device_type")
        .is_some_and(|value| value.strip_suffix(b"\0").unwrap_or(value) == kind.as_bytes())
}

/// The cell counts `bus` (the last node of `bus`) gives its children; defaults 2 and 1.
pub(crate) fn cells_of(blob: &Blob<'_>, bus: &Chain<'_>) -> Result<Cells, DtError> {
    Ok(Cells {
        address: u32_property(blob, bus, "#address-cells")?.unwrap_or(2),
        size: u32_property(blob, bus, "#size-cells")?.unwrap_or(1),
    })
}

/// Checks that a cell count can be read into a `u64` (`allow_zero`: sizes may have none).
fn check_cells(
    bus: &Chain<'_>,
    property: &'static str,
    value: u32,
    allow_zero: bool,
) -> Result<(), DtError> {
    if value > MAX_VALUE_CELLS {
        return Err(bus.property_error(
            property,
            DtErrorKind::BadCells {
                value,
                max: MAX_VALUE_CELLS,
            },
        ));
    }
    if value == 0 && !allow_zero {
        return Err(bus.property_error(property, DtErrorKind::Invalid("must not be 0 here")));
    }
    Ok(())
}

/// The chain of `chain`'s parent (the root's parent is the root itself).
fn parent_chain<'a>(chain: &Chain<'a>) -> Chain<'a> {
    let mut parent = chain.clone();
    parent.pop_to_parent();
    parent
}

/// The `reg` entries of the node, as (bus address, size) pairs in the parent's address
/// space; an absent `reg` gives no entries.
pub(crate) fn reg_entries<'a>(
    blob: &Blob<'a>,
    chain: &Chain<'a>,
) -> Result<impl Iterator<Item = (u64, u64)> + use<'a>, DtError> {
    let parent = parent_chain(chain);
    let cells = cells_of(blob, &parent)?;
    check_cells(&parent, "#address-cells", cells.address, false)?;
    check_cells(&parent, "#size-cells", cells.size, true)?;
    let value = blob.property(chain.node(), "reg").unwrap_or_default();
    let entry = cells.entry_len();
    if !value.len().is_multiple_of(entry) {
        return Err(chain.property_error(
            "reg",
            DtErrorKind::RaggedEntries {
                len: value.len(),
                entry,
            },
        ));
    }
    let address_len = cells.address as usize * 4;
    Ok(value.chunks_exact(entry).map(move |entry| {
        let size = entry.get(address_len..).unwrap_or_default();
        (
            read_cells(entry, cells.address),
            read_cells(size, cells.size),
        )
    }))
}

/// Translates `(address, size)` from the address space of `chain`'s parent bus up to the
/// CPU's: through every ancestor's `ranges` (empty means identity, absent means the bus
/// is not memory-mapped, an error). The whole range must lie inside one `ranges` entry.
pub(crate) fn translate(
    blob: &Blob<'_>,
    chain: &Chain<'_>,
    address: u64,
    size: u64,
) -> Result<u64, DtError> {
    let mut bus = parent_chain(chain);
    let mut address = address;
    // Each bus below the root maps its children's addresses into its own parent's space.
    while bus.nodes().len() > 1 {
        let bus_parent = parent_chain(&bus);
        let Some(ranges) = blob.property(bus.node(), "ranges") else {
            return Err(bus.error(DtErrorKind::NoRanges));
        };
        if !ranges.is_empty() {
            let child = cells_of(blob, &bus)?;
            let parent_address = cells_of(blob, &bus_parent)?.address;
            check_cells(&bus, "#address-cells", child.address, false)?;
            check_cells(&bus, "#size-cells", child.size, true)?;
            check_cells(&bus_parent, "#address-cells", parent_address, false)?;
            let entry = (child.address + parent_address + child.size) as usize * 4;
            if !ranges.len().is_multiple_of(entry) {
                return Err(bus.property_error(
                    "ranges",
                    DtErrorKind::RaggedEntries {
                        len: ranges.len(),
                        entry,
                    },
                ));
            }
            let parent_offset = child.address as usize * 4;
            let size_offset = parent_offset + parent_address as usize * 4;
            let translated = ranges.chunks_exact(entry).find_map(|range| {
                let child_base = read_cells(range, child.address);
                let parent_base = read_cells(range.get(parent_offset..)?, parent_address);
                let window = read_cells(range.get(size_offset..)?, child.size);
                let offset = address.checked_sub(child_base)?;
                let fits = offset < window && size <= window - offset;
                if fits {
                    parent_base.checked_add(offset)
                } else {
                    None
                }
            });
            address = translated.ok_or_else(|| {
                bus.property_error("ranges", DtErrorKind::Untranslatable { address })
            })?;
        }
        bus = bus_parent;
    }
    Ok(address)
}
