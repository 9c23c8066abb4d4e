//! The flattened device tree blob, checked once and then walked without surprises.
//!
//! [`Blob::new`] checks the header and walks the whole structure block once, token by token:
//! every block inside the blob, every node name and property name NUL-terminated UTF-8, every
//! property value inside the block, nodes balanced and nested at most [`MAX_DEPTH`] deep,
//! properties before child nodes, `FDT_NOP` accepted anywhere between tokens (QEMU's
//! `raspi4b` blanks out nodes with them). After that the navigation here (properties,
//! children, path and phandle lookup, a depth-first walk that knows each node's ancestors)
//! cannot meet malformed input; it still reads only through checked accessors, so even a bug
//! here ends a walk early instead of panicking.
//!
//! This replaces the `fdt` crate's navigation, which indexes and `unwrap`s on malformed
//! blobs, asserts on `FDT_NOP` between child nodes, and can recurse without end through
//! `/aliases`. What the values *mean* is decided in `machine.rs`, not here.

use super::error::{DtError, DtErrorKind};
use arrayvec::ArrayVec;
use core::ops::ControlFlow;

/// The magic number at the start of every flattened device tree.
pub(crate) const FDT_MAGIC: u32 = 0xd00d_feed;
/// Size of the version-17 header: ten big-endian 32-bit fields.
pub(crate) const HEADER_LEN: usize = 40;
/// The largest blob accepted; real trees are tens of KiB, QEMU pads to 1 MiB.
pub(crate) const MAX_TOTAL_SIZE: usize = 16 << 20;
/// The deepest node nesting accepted (the root is depth 1; real trees stay below 8).
pub(crate) const MAX_DEPTH: usize = 32;

/// The longest property name accepted (the spec allows 31 characters).
const MAX_PROPERTY_NAME: usize = 255;

const FDT_BEGIN_NODE: u32 = 1;
const FDT_END_NODE: u32 = 2;
const FDT_PROP: u32 = 3;
const FDT_NOP: u32 = 4;
const FDT_END: u32 = 9;

/// Reads the big-endian `u32` at `offset`, if the bytes are there.
pub(crate) fn be_u32(bytes: &[u8], offset: usize) -> Option<u32> {
    let end = offset.checked_add(4)?;
    let word: [u8; 4] = bytes.get(offset..end)?.try_into().ok()?;
    Some(u32::from_be_bytes(word))
}

/// Reads the big-endian `u64` at `offset`, if the bytes are there.
pub(crate) fn be_u64(bytes: &[u8], offset: usize) -> Option<u64> {
    let end = offset.checked_add(8)?;
    let word: [u8; 8] = bytes.get(offset..end)?.try_into().ok()?;
    Some(u64::from_be_bytes(word))
}

/// The header fields this reader uses.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Header {
    pub total_size: usize,
    off_struct: usize,
    off_strings: usize,
    off_reservations: usize,
    size_strings: usize,
    size_struct: usize,
}

impl Header {
    /// Reads and checks the header at the start of `bytes` (magic, version, total size).
    pub(crate) fn read(bytes: &[u8]) -> Result<Self, DtError> {
        if bytes.len() < HEADER_LEN {
            return Err(DtError::truncated(
                "the device tree header",
                HEADER_LEN,
                bytes.len(),
            ));
        }
        let field = |index: usize| be_u32(bytes, index * 4).unwrap_or(0);
        let magic = field(0);
        if magic != FDT_MAGIC {
            return Err(DtError::new(DtErrorKind::BadMagic(magic)));
        }
        let (version, last_compatible) = (field(5), field(6));
        // Version 17 added size_dt_struct, which this reader relies on; later versions
        // promise to stay readable by a version-16/17 reader through last_comp_version.
        if version < 17 || last_compatible > 17 {
            return Err(DtError::new(DtErrorKind::UnsupportedVersion {
                version,
                last_compatible,
            }));
        }
        let total_size = field(1);
        if (total_size as usize) < HEADER_LEN || total_size as usize > MAX_TOTAL_SIZE {
            return Err(DtError::new(DtErrorKind::BadTotalSize(total_size)));
        }
        Ok(Self {
            total_size: total_size as usize,
            off_struct: field(2) as usize,
            off_strings: field(3) as usize,
            off_reservations: field(4) as usize,
            size_strings: field(8) as usize,
            size_struct: field(9) as usize,
        })
    }
}

/// A node of the tree: its name (`cpu@1`; the root's is empty) and where its properties start.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Node<'a> {
    pub name: &'a str,
    /// Offset in the structure block of the first token after the node's name.
    body: usize,
}

impl Node<'_> {
    /// The name without its unit address (`cpu` for `cpu@1`).
    pub(crate) fn base_name(&self) -> &str {
        self.name.split('@').next().unwrap_or(self.name)
    }
}

/// A node together with its ancestors, root first: what address translation and error
/// messages need, since a flattened tree has no parent links.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Chain<'a> {
    nodes: ArrayVec<Node<'a>, MAX_DEPTH>,
}

impl<'a> Chain<'a> {
    /// The node itself.
    pub(crate) fn node(&self) -> Node<'a> {
        self.nodes.last().copied().unwrap_or_default()
    }

    /// The node and its ancestors, root first.
    pub(crate) fn nodes(&self) -> &[Node<'a>] {
        &self.nodes
    }

    /// The chain of `child`, a child of this chain's node. (The structure check bounds the
    /// depth, so a child always fits.)
    pub(crate) fn child(&self, child: Node<'a>) -> Chain<'a> {
        let mut chain = self.clone();
        let _fits = chain.nodes.try_push(child);
        chain
    }

    /// Moves up to the parent node (the root stays the root).
    pub(crate) fn pop_to_parent(&mut self) {
        if self.nodes.len() > 1 {
            self.nodes.pop();
        }
    }

    /// An error located at this node.
    pub(crate) fn error(&self, kind: DtErrorKind) -> DtError {
        DtError::at_names(kind, self.nodes.iter().map(|node| node.name))
    }

    /// An error located at this node's `property`.
    pub(crate) fn property_error(&self, property: &'static str, kind: DtErrorKind) -> DtError {
        self.error(kind).with_property(property)
    }
}

/// One decoded token of the structure block, with the offset of the token after it.
#[derive(Clone, Copy, Debug)]
enum Token<'a> {
    BeginNode { name: &'a str },
    EndNode,
    Property { name: &'a str, value: &'a [u8] },
    Nop,
    End,
}

/// A checked flattened device tree: the structure and strings blocks and the reservations.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Blob<'a> {
    structure: &'a [u8],
    strings: &'a [u8],
    /// The memory reservation entries, without the terminating all-zero entry.
    reservations: &'a [u8],
}

impl<'a> Blob<'a> {
    /// Checks the whole blob (see the module comment); only a checked blob is navigated.
    pub(crate) fn new(bytes: &'a [u8]) -> Result<Self, DtError> {
        let header = Header::read(bytes)?;
        let blob = bytes.get(..header.total_size).ok_or_else(|| {
            DtError::truncated(
                "the blob (header totalsize)",
                header.total_size,
                bytes.len(),
            )
        })?;
        let block = |offset: usize, size: usize, what: &'static str| {
            offset
                .checked_add(size)
                .and_then(|end| blob.get(offset..end))
                .ok_or(DtError::new(DtErrorKind::Layout(what)))
        };
        let structure = block(
            header.off_struct,
            header.size_struct,
            "the structure block lies outside the blob",
        )?;
        let strings = block(
            header.off_strings,
            header.size_strings,
            "the strings block lies outside the blob",
        )?;
        let reservations = Self::reservation_block(blob, header.off_reservations)?;
        let blob = Self {
            structure,
            strings,
            reservations,
        };
        blob.check_structure()?;
        Ok(blob)
    }

    /// Finds the memory reservation entries: 16-byte (address, size) pairs up to an all-zero one.
    fn reservation_block(blob: &'a [u8], offset: usize) -> Result<&'a [u8], DtError> {
        const ENTRY: usize = 16;
        let unterminated = DtError::new(DtErrorKind::Layout(
            "the memory reservation block has no terminating entry inside the blob",
        ));
        let entries = blob.get(offset..).ok_or(unterminated)?;
        let mut end = 0;
        loop {
            let address = be_u64(entries, end).ok_or(unterminated)?;
            let size = be_u64(entries, end + 8).ok_or(unterminated)?;
            if address == 0 && size == 0 {
                return entries.get(..end).ok_or(unterminated);
            }
            end += ENTRY;
        }
    }

    /// The `/memreserve/` entries as (address, size) pairs.
    pub(crate) fn reservations(&self) -> impl Iterator<Item = (u64, u64)> + 'a {
        self.reservations
            .chunks_exact(16)
            .filter_map(|entry| Some((be_u64(entry, 0)?, be_u64(entry, 8)?)))
    }

    /// Decodes the token at `offset`; on success also gives the offset of the next token.
    fn token(&self, offset: usize) -> Result<(Token<'a>, usize), &'static str> {
        let tag = be_u32(self.structure, offset).ok_or("the block ends before FDT_END")?;
        let after_tag = offset + 4;
        match tag {
            FDT_BEGIN_NODE => {
                let rest = self.structure.get(after_tag..).unwrap_or_default();
                let len = rest
                    .iter()
                    .position(|&byte| byte == 0)
                    .ok_or("node name is not NUL-terminated")?;
                let name = core::str::from_utf8(rest.get(..len).unwrap_or_default())
                    .map_err(|_| "node name is not UTF-8")?;
                let next = align4(after_tag + len + 1);
                if next > self.structure.len() {
                    return Err("node name runs past the end of the block");
                }
                Ok((Token::BeginNode { name }, next))
            }
            FDT_END_NODE => Ok((Token::EndNode, after_tag)),
            FDT_PROP => {
                let len = be_u32(self.structure, after_tag).ok_or("property header is cut off")?;
                let name_offset =
                    be_u32(self.structure, after_tag + 4).ok_or("property header is cut off")?;
                let start = after_tag + 8;
                let value = start
                    .checked_add(len as usize)
                    .and_then(|end| self.structure.get(start..end))
                    .ok_or("property value runs past the end of the block")?;
                let name = self.string_at(name_offset as usize)?;
                let next = align4(start + value.len());
                if next > self.structure.len() {
                    return Err("property padding runs past the end of the block");
                }
                Ok((Token::Property { name, value }, next))
            }
            FDT_NOP => Ok((Token::Nop, after_tag)),
            FDT_END => Ok((Token::End, after_tag)),
            _ => Err("unknown token"),
        }
    }

    /// The property name at `offset` in the strings block.
    fn string_at(&self, offset: usize) -> Result<&'a str, &'static str> {
        let rest = self
            .strings
            .get(offset..)
            .ok_or("property name offset is outside the strings block")?;
        // Names are at most 31 characters by the spec; the bound keeps a blob whose
        // properties all point at one huge unterminated string from costing quadratic time.
        let len = rest
            .iter()
            .take(MAX_PROPERTY_NAME + 1)
            .position(|&byte| byte == 0)
            .ok_or("property name is not NUL-terminated within 255 bytes")?;
        core::str::from_utf8(rest.get(..len).unwrap_or_default())
            .map_err(|_| "property name is not UTF-8")
    }

    /// The one-time walk over the structure block that makes all later navigation safe.
    fn check_structure(&self) -> Result<(), DtError> {
        let fail = |offset, what| Err(DtError::new(DtErrorKind::Structure { offset, what }));
        let mut offset = 0;
        let mut depth = 0usize;
        let mut root_done = false;
        // Properties must come before the first child node (the spec's order, and the only
        // one the property and child iterators below read).
        let mut properties_allowed = false;
        loop {
            let (token, next) = match self.token(offset) {
                Ok(decoded) => decoded,
                Err(what) => return fail(offset, what),
            };
            match token {
                Token::BeginNode { name } => {
                    if root_done {
                        return fail(offset, "a second root node");
                    }
                    if depth == 0 && !name.is_empty() {
                        return fail(offset, "the root node has a name");
                    }
                    if depth > 0 && name.is_empty() {
                        return fail(offset, "a node below the root has an empty name");
                    }
                    if depth == MAX_DEPTH {
                        return fail(offset, "nodes nested deeper than 32 levels");
                    }
                    depth += 1;
                    properties_allowed = true;
                }
                Token::EndNode => {
                    if depth == 0 {
                        return fail(offset, "FDT_END_NODE without a node to end");
                    }
                    depth -= 1;
                    root_done = depth == 0;
                    properties_allowed = false;
                }
                Token::Property { .. } => {
                    if depth == 0 {
                        return fail(offset, "a property outside any node");
                    }
                    if !properties_allowed {
                        return fail(offset, "a property after a child node");
                    }
                }
                Token::Nop => {}
                Token::End => {
                    if !root_done {
                        return fail(offset, "FDT_END before the root node is complete");
                    }
                    return Ok(());
                }
            }
            offset = next;
        }
    }

    /// The root node.
    pub(crate) fn root(&self) -> Chain<'a> {
        let mut nodes = ArrayVec::new();
        let mut offset = 0;
        while let Ok((token, next)) = self.token(offset) {
            match token {
                Token::Nop => offset = next,
                Token::BeginNode { name } => {
                    nodes.push(Node { name, body: next });
                    break;
                }
                _ => break,
            }
        }
        Chain { nodes }
    }

    /// The properties of `node`, as (name, value) pairs in tree order.
    pub(crate) fn properties(&self, node: Node<'a>) -> impl Iterator<Item = (&'a str, &'a [u8])> {
        let blob = *self;
        let mut offset = node.body;
        core::iter::from_fn(move || {
            loop {
                match blob.token(offset) {
                    Ok((Token::Nop, next)) => offset = next,
                    Ok((Token::Property { name, value }, next)) => {
                        offset = next;
                        return Some((name, value));
                    }
                    _ => return None,
                }
            }
        })
    }

    /// The value of `node`'s property `name`, if it has one.
    pub(crate) fn property(&self, node: Node<'a>, name: &str) -> Option<&'a [u8]> {
        self.properties(node)
            .find(|&(found, _)| found == name)
            .map(|(_, value)| value)
    }

    /// The children of `node`, in tree order.
    pub(crate) fn children(&self, node: Node<'a>) -> impl Iterator<Item = Node<'a>> {
        let blob = *self;
        let mut offset = node.body;
        core::iter::from_fn(move || {
            loop {
                match blob.token(offset) {
                    Ok((Token::Nop | Token::Property { .. }, next)) => offset = next,
                    Ok((Token::BeginNode { name }, next)) => {
                        offset = blob.skip_subtree(next)?;
                        return Some(Node { name, body: next });
                    }
                    _ => return None,
                }
            }
        })
    }

    /// Given the offset just after a node's name, returns the offset after its FDT_END_NODE.
    fn skip_subtree(&self, mut offset: usize) -> Option<usize> {
        let mut depth = 1usize;
        loop {
            let (token, next) = self.token(offset).ok()?;
            match token {
                Token::BeginNode { .. } => depth += 1,
                Token::EndNode => {
                    depth -= 1;
                    if depth == 0 {
                        return Some(next);
                    }
                }
                Token::End => return None,
                Token::Property { .. } | Token::Nop => {}
            }
            offset = next;
        }
    }

    /// Calls `visit` on every node, depth-first in tree order, each with its ancestors;
    /// stops early when `visit` breaks, and returns what it broke with.
    pub(crate) fn walk<B>(&self, mut visit: impl FnMut(&Chain<'a>) -> ControlFlow<B>) -> Option<B> {
        let mut chain = Chain {
            nodes: ArrayVec::new(),
        };
        let mut offset = 0;
        while let Ok((token, next)) = self.token(offset) {
            match token {
                Token::BeginNode { name } => {
                    if chain.nodes.try_push(Node { name, body: next }).is_err() {
                        return None;
                    }
                    if let ControlFlow::Break(found) = visit(&chain) {
                        return Some(found);
                    }
                }
                Token::EndNode => {
                    chain.nodes.pop();
                }
                Token::End => return None,
                Token::Property { .. } | Token::Nop => {}
            }
            offset = next;
        }
        None
    }

    /// The first node (depth-first) for which `accept` holds, with its ancestors.
    pub(crate) fn find(&self, mut accept: impl FnMut(Node<'a>) -> bool) -> Option<Chain<'a>> {
        self.walk(|chain| {
            if accept(chain.node()) {
                ControlFlow::Break(chain.clone())
            } else {
                ControlFlow::Continue(())
            }
        })
    }

    /// The node with this `phandle` (or legacy `linux,phandle`).
    pub(crate) fn find_phandle(&self, phandle: u32) -> Option<Chain<'a>> {
        self.find(|node| {
            ["phandle", "linux,phandle"].iter().any(|name| {
                self.property(node, name)
                    .is_some_and(|value| value.len() == 4 && be_u32(value, 0) == Some(phandle))
            })
        })
    }

    /// The node at an absolute path such as `/soc/serial@7e215040`. A path component
    /// without a unit address matches the first node with that base name.
    pub(crate) fn find_path(&self, path: &str) -> Option<Chain<'a>> {
        let rest = path.strip_prefix('/')?;
        let mut chain = self.root();
        for component in rest.split('/').filter(|component| !component.is_empty()) {
            let exact = component.contains('@');
            let child = self.children(chain.node()).find(|child| {
                if exact {
                    child.name == component
                } else {
                    child.base_name() == component
                }
            })?;
            chain.nodes.try_push(child).ok()?;
        }
        Some(chain)
    }
}

/// Rounds a structure-block offset up to the next token boundary.
fn align4(offset: usize) -> usize {
    offset.saturating_add(3) & !3
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Well-formed QEMU trees (no FDT_NOP), where the `fdt` crate's walk is safe.
    const FIXTURES: &[&[u8]] = &[
        include_bytes!("../../tests/fixtures/virt-gicv2-4cpu.dtb"),
        include_bytes!("../../tests/fixtures/virt-gicv3-16cpu-initrd.dtb"),
    ];

    /// Every node and property, depth-first, as this reader sees them.
    type Properties<'a> = Vec<(&'a str, &'a [u8])>;

    fn our_walk<'a>(blob: &Blob<'a>) -> Vec<(&'a str, Properties<'a>)> {
        let mut nodes = Vec::new();
        blob.walk(|chain| {
            let node = chain.node();
            nodes.push((node.name, blob.properties(node).collect()));
            ControlFlow::<()>::Continue(())
        });
        nodes
    }

    #[test]
    fn agrees_with_the_fdt_crate_on_well_formed_trees() {
        for bytes in FIXTURES {
            let blob = Blob::new(bytes).expect("fixture is valid");
            let ours = our_walk(&blob);
            let theirs = fdt::Fdt::new(bytes).expect("fdt crate reads it");
            let theirs: Vec<_> = theirs
                .all_nodes()
                .map(|node| {
                    let name = if node.name == "/" { "" } else { node.name };
                    (
                        name,
                        node.properties()
                            .map(|p| (p.name, p.value))
                            .collect::<Vec<_>>(),
                    )
                })
                .collect();
            assert_eq!(ours, theirs);
        }
    }

    #[test]
    fn reservations_children_paths_and_phandles() {
        let blob = Blob::new(FIXTURES[0]).expect("valid");
        assert_eq!(blob.reservations().count(), 0);
        let cpus = blob.find_path("/cpus").expect("/cpus");
        let names: Vec<_> = blob.children(cpus.node()).map(|node| node.name).collect();
        assert_eq!(names, ["cpu-map", "cpu@0", "cpu@1", "cpu@2", "cpu@3"]);
        let cpu2 = blob.find_path("/cpus/cpu@2").expect("cpu@2");
        assert_eq!(cpu2.nodes().len(), 3);
        assert_eq!(
            blob.find_path("/cpus/cpu").map(|c| c.node().name),
            Some("cpu@0")
        );
        assert!(blob.find_path("/cpus/cpu@9").is_none());
        assert!(blob.find_path("cpus").is_none());
        let gic = blob.find_phandle(0x8005).expect("GIC phandle");
        assert_eq!(gic.node().name, "intc@8000000");
    }

    #[test]
    fn nops_between_nodes_and_properties() {
        // A root with a NOP before its property, a NOP between two children, NOPs around.
        let strings = b"a\0";
        let words: &[u32] = &[
            FDT_NOP,
            FDT_BEGIN_NODE,
            0,
            FDT_NOP,
            FDT_PROP,
            4,
            0,
            7,
            FDT_NOP,
            FDT_BEGIN_NODE,
            u32::from_be_bytes(*b"x\0\0\0"),
            FDT_END_NODE,
            FDT_NOP,
            FDT_BEGIN_NODE,
            u32::from_be_bytes(*b"y\0\0\0"),
            FDT_NOP,
            FDT_END_NODE,
            FDT_END_NODE,
            FDT_NOP,
            FDT_END,
        ];
        let structure: Vec<u8> = words.iter().flat_map(|w| w.to_be_bytes()).collect();
        let blob = Blob {
            structure: &structure,
            strings,
            reservations: &[],
        };
        blob.check_structure()
            .expect("NOPs are allowed between tokens");
        let root = blob.root().node();
        assert_eq!(blob.property(root, "a"), Some(&[0, 0, 0, 7][..]));
        let names: Vec<_> = blob.children(root).map(|node| node.name).collect();
        assert_eq!(names, ["x", "y"]);
    }
}
