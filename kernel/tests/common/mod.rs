//! Helpers shared by the device-tree tests: a small flattened-device-tree writer for
//! synthetic trees, a virt-like base tree to mutate, and access to the blob fixtures.
//!
//! Host-only test code; the kernel never builds device trees.

#![allow(dead_code)] // Each test binary uses a different subset of these helpers.

use std::path::PathBuf;

const FDT_BEGIN_NODE: u32 = 1;
const FDT_END_NODE: u32 = 2;
const FDT_PROP: u32 = 3;
const FDT_NOP: u32 = 4;
const FDT_END: u32 = 9;

/// A node to write: name, properties in order, children in order.
#[derive(Clone, Debug)]
pub struct Node {
    pub name: String,
    pub props: Vec<(String, Vec<u8>)>,
    pub children: Vec<Node>,
}

/// Big-endian cells.
pub fn cells(values: &[u32]) -> Vec<u8> {
    values
        .iter()
        .flat_map(|value| value.to_be_bytes())
        .collect()
}

/// A NUL-terminated string list.
pub fn strings(values: &[&str]) -> Vec<u8> {
    values
        .iter()
        .flat_map(|value| value.bytes().chain([0]))
        .collect()
}

impl Node {
    pub fn new(name: &str) -> Self {
        Self {
            name: name.into(),
            props: Vec::new(),
            children: Vec::new(),
        }
    }

    /// Adds (or replaces) a property with raw bytes.
    pub fn prop(mut self, name: &str, value: impl Into<Vec<u8>>) -> Self {
        self.set(name, value.into());
        self
    }

    pub fn cells(self, name: &str, values: &[u32]) -> Self {
        self.prop(name, cells(values))
    }

    pub fn string(self, name: &str, value: &str) -> Self {
        self.prop(name, strings(&[value]))
    }

    pub fn child(mut self, child: Node) -> Self {
        self.children.push(child);
        self
    }

    pub fn set(&mut self, name: &str, value: Vec<u8>) {
        match self.props.iter_mut().find(|(found, _)| found == name) {
            Some((_, old)) => *old = value,
            None => self.props.push((name.into(), value)),
        }
    }

    pub fn remove_prop(&mut self, name: &str) {
        self.props.retain(|(found, _)| found != name);
    }

    /// The node at `path` ("/" or "/a/b", full names), for editing.
    pub fn at(&mut self, path: &str) -> &mut Node {
        let mut node = self;
        for component in path.split('/').filter(|c| !c.is_empty()) {
            node = node
                .children
                .iter_mut()
                .find(|child| child.name == component)
                .unwrap_or_else(|| panic!("test tree has no {component} in {path}"));
        }
        node
    }

    /// Removes the node at `path`.
    pub fn remove(&mut self, path: &str) {
        let (parent, name) = path.rsplit_once('/').expect("absolute path");
        self.at(if parent.is_empty() { "/" } else { parent })
            .children
            .retain(|c| c.name != name);
    }
}

/// How to write a tree.
#[derive(Clone, Debug, Default)]
pub struct Layout {
    /// `/memreserve/` entries.
    pub reservations: Vec<(u64, u64)>,
    /// Sprinkle FDT_NOP tokens before every property and node and after every node.
    pub nops: bool,
}

/// Writes `root` as a version-17 flattened device tree.
pub fn build(root: &Node, layout: &Layout) -> Vec<u8> {
    let mut structure = Vec::new();
    let mut strings_block = Vec::new();
    write_node(root, layout, &mut structure, &mut strings_block);
    structure.extend(FDT_END.to_be_bytes());

    let mut reservations = Vec::new();
    for &(address, size) in layout.reservations.iter().chain([&(0, 0)]) {
        reservations.extend(address.to_be_bytes());
        reservations.extend(size.to_be_bytes());
    }
    let off_rsvmap = 40;
    let off_struct = off_rsvmap + reservations.len();
    let off_strings = off_struct + structure.len();
    let total = off_strings + strings_block.len();
    let header = [
        0xd00d_feed,
        total as u32,
        off_struct as u32,
        off_strings as u32,
        off_rsvmap as u32,
        17,
        16,
        0,
        strings_block.len() as u32,
        structure.len() as u32,
    ];
    let mut blob = cells(&header);
    blob.extend(reservations);
    blob.extend(structure);
    blob.extend(strings_block);
    blob
}

fn pad4(bytes: &mut Vec<u8>) {
    while !bytes.len().is_multiple_of(4) {
        bytes.push(0);
    }
}

fn write_node(node: &Node, layout: &Layout, out: &mut Vec<u8>, names: &mut Vec<u8>) {
    let nop = |out: &mut Vec<u8>| {
        if layout.nops {
            out.extend(FDT_NOP.to_be_bytes());
        }
    };
    nop(out);
    out.extend(FDT_BEGIN_NODE.to_be_bytes());
    out.extend(node.name.as_bytes());
    out.push(0);
    pad4(out);
    for (name, value) in &node.props {
        nop(out);
        let offset = string_offset(names, name);
        out.extend(FDT_PROP.to_be_bytes());
        out.extend((value.len() as u32).to_be_bytes());
        out.extend((offset as u32).to_be_bytes());
        out.extend(value);
        pad4(out);
    }
    for child in &node.children {
        write_node(child, layout, out, names);
    }
    nop(out);
    out.extend(FDT_END_NODE.to_be_bytes());
    nop(out);
}

fn string_offset(names: &mut Vec<u8>, name: &str) -> usize {
    let mut offset = 0;
    for existing in names.split(|&b| b == 0) {
        if existing == name.as_bytes() && offset < names.len() {
            return offset;
        }
        offset += existing.len() + 1;
    }
    let offset = names.len();
    names.extend(name.as_bytes());
    names.push(0);
    offset
}

/// A small QEMU-virt-like machine: 2 GiB at 0x4000_0000, two PSCI CPUs, a Cortex-A15 GIC
/// (phandle 1), the timer, a PL011 with a 24 MHz fixed clock, `/chosen`.
pub fn base_tree() -> Node {
    Node::new("")
        .string("model", "test,machine")
        .cells("#address-cells", &[2])
        .cells("#size-cells", &[2])
        .cells("interrupt-parent", &[1])
        .child(
            Node::new("memory@40000000")
                .string("device_type", "memory")
                .cells("reg", &[0, 0x4000_0000, 0, 0x8000_0000]),
        )
        .child(
            Node::new("cpus")
                .cells("#address-cells", &[1])
                .cells("#size-cells", &[0])
                .child(cpu(0))
                .child(cpu(1)),
        )
        .child(
            Node::new("psci")
                .prop(
                    "compatible",
                    strings(&["arm,psci-1.0", "arm,psci-0.2", "arm,psci"]),
                )
                .string("method", "hvc"),
        )
        .child(
            Node::new("intc@8000000")
                .string("compatible", "arm,cortex-a15-gic")
                .cells("#interrupt-cells", &[3])
                .prop("interrupt-controller", Vec::new())
                .cells(
                    "reg",
                    &[0, 0x0800_0000, 0, 0x1_0000, 0, 0x0801_0000, 0, 0x1_0000],
                )
                .cells("phandle", &[1]),
        )
        .child(
            Node::new("timer")
                .prop(
                    "compatible",
                    strings(&["arm,armv8-timer", "arm,armv7-timer"]),
                )
                .cells("interrupts", &[1, 13, 4, 1, 14, 4, 1, 11, 4, 1, 10, 4]),
        )
        .child(
            Node::new("apb-pclk")
                .string("compatible", "fixed-clock")
                .cells("clock-frequency", &[24_000_000])
                .cells("#clock-cells", &[0])
                .cells("phandle", &[2]),
        )
        .child(
            Node::new("pl011@9000000")
                .prop("compatible", strings(&["arm,pl011", "arm,primecell"]))
                .cells("reg", &[0, 0x0900_0000, 0, 0x1000])
                .cells("clocks", &[2, 2]),
        )
        .child(
            Node::new("chosen")
                .string("bootargs", "hello")
                .string("stdout-path", "/pl011@9000000"),
        )
}

pub fn cpu(id: u32) -> Node {
    Node::new(&format!("cpu@{id:x}"))
        .string("device_type", "cpu")
        .string("compatible", "arm,cortex-a72")
        .cells("reg", &[id])
        .string("enable-method", "psci")
}

/// The committed QEMU `virt` fixture `name`.
pub fn fixture(name: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|error| panic!("reading {}: {error}", path.display()))
}

/// All committed fixtures, by name.
pub fn all_fixtures() -> Vec<(String, Vec<u8>)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let mut fixtures: Vec<_> = std::fs::read_dir(&dir)
        .expect("fixtures directory")
        .filter_map(|entry| {
            let path = entry.ok()?.path();
            if path.extension()? != "dtb" {
                return None;
            }
            let name = path.file_name()?.to_string_lossy().into_owned();
            Some((name, std::fs::read(&path).ok()?))
        })
        .collect();
    fixtures.sort();
    fixtures
}

/// Where the Raspberry Pi 4 trees are cached (never committed: they come from Debian's
/// arm64 kernel package; see tests/fixtures/README.md).
pub fn dtb_cache() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/dtb-cache")
}

/// The Raspberry Pi 4 tree as shipped (`bcm2711-rpi-4-b.dtb`), or why it is not there.
pub fn rpi4_dtb() -> Result<Vec<u8>, String> {
    let path = dtb_cache().join("bcm2711-rpi-4-b.dtb");
    std::fs::read(&path).map_err(|error| format!("{}: {error}", path.display()))
}

/// The Raspberry Pi 4 tree as QEMU `raspi4b` hands it to the kernel (memory filled in,
/// some nodes blanked with FDT_NOP). Made once with `qemu-system-aarch64 ... dumpdtb`
/// from the shipped tree, when QEMU is installed.
pub fn rpi4_qemu_dtb() -> Result<Vec<u8>, String> {
    let original = dtb_cache().join("bcm2711-rpi-4-b.dtb");
    let dumped = dtb_cache().join("bcm2711-rpi-4-b-qemu.dtb");
    if let Ok(bytes) = std::fs::read(&dumped) {
        return Ok(bytes);
    }
    if !original.exists() {
        return Err(format!("{} is missing", original.display()));
    }
    // Dump to a private name and rename, so concurrent test binaries never see half a file.
    let partial = dtb_cache().join(format!("bcm2711-rpi-4-b-qemu.dtb.{}", std::process::id()));
    let status = std::process::Command::new("qemu-system-aarch64")
        .arg("-M")
        .arg(format!("raspi4b,dumpdtb={}", partial.display()))
        .arg("-dtb")
        .arg(&original)
        .args([
            "-kernel",
            "/dev/null",
            "-display",
            "none",
            "-monitor",
            "none",
            "-serial",
            "none",
        ])
        .stderr(std::process::Stdio::null())
        .status()
        .map_err(|error| format!("running qemu-system-aarch64: {error}"))?;
    if !status.success() {
        return Err(format!("qemu-system-aarch64 dumpdtb failed: {status}"));
    }
    std::fs::rename(&partial, &dumped).map_err(|error| format!("{}: {error}", dumped.display()))?;
    std::fs::read(&dumped).map_err(|error| format!("{}: {error}", dumped.display()))
}
