//! From a checked blob to a [`MachineConfig`]: which nodes and properties the kernel needs,
//! what values they may have, and how they relate (CPUs that use PSCI need a PSCI node,
//! the timer's interrupts must go to the GIC, ...).
//!
//! The bindings followed are the Devicetree Specification's (memory, cpus, chosen,
//! aliases, reserved-memory) and Linux's (psci, arm,gic, arm,arch_timer, arm,pl011,
//! brcm,bcm2835-aux-uart, fixed-clock). Structure checks live in `blob.rs`, value decoding
//! in `props.rs`.

use super::blob::{Blob, Chain};
use super::error::{DtError, DtErrorKind};
use super::props::{
    cells_of, has_device_type, is_compatible, is_enabled, reg_entries, string_property, translate,
    u32_property, u64_property,
};
use super::topology;
use super::{
    CpuInfo, EnableMethod, GicInfo, MAX_CPUS, MAX_MEM_REGIONS, MAX_REDIST_REGIONS, MachineConfig,
    PhysRange, PsciConduit, TimerInfo, UartInfo, UartKind,
};
use arrayvec::ArrayVec;

/// The MPIDR_EL1 affinity fields: Aff3 (bits 32..40), Aff2, Aff1, Aff0 (bits 0..24).
pub(crate) const MPIDR_AFFINITY_MASK: u64 = 0xff_00ff_ffff;

const PSCI_COMPATIBLE: &[&str] = &["arm,psci-1.0", "arm,psci-0.2", "arm,psci"];
const GIC_V3_COMPATIBLE: &[&str] = &["arm,gic-v3"];
const GIC_V2_COMPATIBLE: &[&str] = &[
    "arm,gic-400",
    "arm,cortex-a15-gic",
    "arm,cortex-a9-gic",
    "arm,cortex-a7-gic",
];
const TIMER_COMPATIBLE: &[&str] = &["arm,armv8-timer", "arm,armv7-timer"];
const PL011_COMPATIBLE: &[&str] = &["arm,pl011"];
const MINI_UART_COMPATIBLE: &[&str] = &["brcm,bcm2835-aux-uart"];

/// The GIC binding's interrupt specifier type for a PPI (first cell).
const GIC_PPI: u32 = 1;
/// ... and for an SPI; SPI n is GIC INTID 32 + n (up to 987).
const GIC_SPI: u32 = 0;
const SPI_INTID_BASE: u32 = 32;
const SPI_COUNT: u32 = 988;
/// PPI n is GIC INTID 16 + n; there are 16 PPIs in the GICv2/v3 base range.
const PPI_INTID_BASE: u32 = 16;
const PPI_COUNT: u32 = 16;

pub(crate) fn parse(dtb: &[u8]) -> Result<MachineConfig<'_>, DtError> {
    let blob = Blob::new(dtb)?;
    let root = blob.root();
    let model = string_property(&blob, &root, "model")?.unwrap_or("");
    let memory = memory(&blob)?;
    let reserved = reserved(&blob)?;
    let psci = psci(&blob)?;
    let (mut cpus, phandles) = cpus(&blob, psci.is_some())?;
    let cpu_map_error = topology::assign_clusters(&blob, &mut cpus, &phandles).err();
    let (gic_node, gic) = gic(&blob)?;
    let timer = timer(&blob, &gic_node)?;
    let chosen = blob.find_path("/chosen");
    let console = console(&blob, chosen.as_ref(), Some(&gic_node))?;
    let (bootargs, initrd) = match &chosen {
        Some(chosen) => (
            string_property(&blob, chosen, "bootargs")?.unwrap_or(""),
            initrd(&blob, chosen)?,
        ),
        None => ("", None),
    };
    Ok(MachineConfig {
        model,
        memory,
        reserved,
        cpus,
        cpu_map_error,
        psci,
        gic,
        timer,
        console,
        bootargs,
        initrd,
    })
}

/// Only the console, for reporting why the rest of a tree is unusable: `None` when the
/// blob is unreadable or names no usable UART.
pub(crate) fn console_only(dtb: &[u8]) -> Option<UartInfo> {
    let blob = Blob::new(dtb).ok()?;
    let chosen = blob.find_path("/chosen");
    console(&blob, chosen.as_ref(), None).ok().flatten()
}

/// A range from the tree: `(bus address, size)` of `chain`'s `reg`, translated.
fn phys_range(
    blob: &Blob<'_>,
    chain: &Chain<'_>,
    (address, size): (u64, u64),
) -> Result<PhysRange, DtError> {
    let base = translate(blob, chain, address, size)?;
    PhysRange::new(base, size)
        .ok_or_else(|| chain.property_error("reg", DtErrorKind::Overflow { base, size }))
}

/// The first `count` `reg` entries of a device node, translated; fewer is an error.
fn device_regs<const N: usize>(
    blob: &Blob<'_>,
    chain: &Chain<'_>,
    count: usize,
    why: &'static str,
) -> Result<ArrayVec<PhysRange, N>, DtError> {
    let mut regs = ArrayVec::new();
    for entry in reg_entries(blob, chain)?.take(count.min(N)) {
        regs.push(phys_range(blob, chain, entry)?);
    }
    if regs.len() < count {
        return Err(chain.property_error("reg", DtErrorKind::Invalid(why)));
    }
    Ok(regs)
}

fn push_region(
    list: &mut ArrayVec<PhysRange, MAX_MEM_REGIONS>,
    range: PhysRange,
    chain: &Chain<'_>,
    what: &'static str,
) -> Result<(), DtError> {
    list.try_push(range).map_err(|_| {
        chain.error(DtErrorKind::TooMany {
            what,
            max: MAX_MEM_REGIONS,
        })
    })
}

/// Every `reg` entry of every enabled memory node below the root.
fn memory(blob: &Blob<'_>) -> Result<ArrayVec<PhysRange, MAX_MEM_REGIONS>, DtError> {
    let root = blob.root();
    let mut memory = ArrayVec::new();
    for node in blob.children(root.node()) {
        if !has_device_type(blob, node, "memory") || !is_enabled(blob, node) {
            continue;
        }
        let chain = root.child(node);
        for entry in reg_entries(blob, &chain)? {
            let range = phys_range(blob, &chain, entry)?;
            if range.size == 0 {
                continue;
            }
            if memory
                .iter()
                .any(|known: &PhysRange| known.overlaps(&range))
            {
                return Err(
                    chain.property_error("reg", DtErrorKind::Invalid("memory regions overlap"))
                );
            }
            push_region(&mut memory, range, &chain, "memory regions")?;
        }
    }
    if memory.is_empty() {
        return Err(root.error(DtErrorKind::Invalid(
            "no memory: no enabled node with device_type \"memory\" and a non-empty reg",
        )));
    }
    Ok(memory)
}

/// `/memreserve/` entries and the static `/reserved-memory` regions.
fn reserved(blob: &Blob<'_>) -> Result<ArrayVec<PhysRange, MAX_MEM_REGIONS>, DtError> {
    let mut reserved = ArrayVec::new();
    let root = blob.root();
    for (base, size) in blob.reservations() {
        let range = PhysRange::new(base, size).ok_or_else(|| {
            DtError::new(DtErrorKind::Overflow { base, size }).with_property("/memreserve/")
        })?;
        if range.size != 0 {
            push_region(&mut reserved, range, &root, "reserved regions")?;
        }
    }
    let Some(parent) = blob.find_path("/reserved-memory") else {
        return Ok(reserved);
    };
    for node in blob.children(parent.node()) {
        if !is_enabled(blob, node) {
            continue;
        }
        let chain = parent.child(node);
        for entry in reg_entries(blob, &chain)? {
            let range = phys_range(blob, &chain, entry)?;
            if range.size != 0 {
                push_region(&mut reserved, range, &chain, "reserved regions")?;
            }
        }
    }
    Ok(reserved)
}

/// The PSCI conduit of the first enabled PSCI node.
fn psci(blob: &Blob<'_>) -> Result<Option<PsciConduit>, DtError> {
    let Some(node) =
        blob.find(|node| is_compatible(blob, node, PSCI_COMPATIBLE) && is_enabled(blob, node))
    else {
        return Ok(None);
    };
    match string_property(blob, &node, "method")? {
        Some("hvc") => Ok(Some(PsciConduit::Hvc)),
        Some("smc") => Ok(Some(PsciConduit::Smc)),
        Some(_) => {
            Err(node.property_error("method", DtErrorKind::Invalid("must be \"hvc\" or \"smc\"")))
        }
        None => Err(node.property_error("method", DtErrorKind::MissingProperty)),
    }
}

/// The enabled CPU nodes under `/cpus`, with their MPIDRs and enable methods (all in
/// cluster 0: `topology` places them), and each one's `phandle` (0 when it has none).
fn cpus(blob: &Blob<'_>, have_psci: bool) -> Result<(CpuList, ArrayVec<u32, MAX_CPUS>), DtError> {
    let parent = blob
        .find_path("/cpus")
        .ok_or_else(|| DtError::at_path(DtErrorKind::MissingNode, "/cpus"))?;
    let cells = cells_of(blob, &parent)?;
    if !(1..=2).contains(&cells.address) {
        return Err(parent.property_error(
            "#address-cells",
            DtErrorKind::Invalid("CPU ids take 1 or 2 cells"),
        ));
    }
    if cells.size != 0 {
        return Err(
            parent.property_error("#size-cells", DtErrorKind::Invalid("must be 0 under /cpus"))
        );
    }
    let mut cpus = CpuList::new();
    let mut phandles = ArrayVec::new();
    for node in blob.children(parent.node()) {
        if !has_device_type(blob, node, "cpu") || !is_enabled(blob, node) {
            continue;
        }
        let chain = parent.child(node);
        // A CPU with SMT threads lists one id per thread; the node's first is its own.
        let Some((id, _)) = reg_entries(blob, &chain)?.next() else {
            return Err(chain.property_error("reg", DtErrorKind::MissingProperty));
        };
        if id & !MPIDR_AFFINITY_MASK != 0 {
            return Err(chain.property_error(
                "reg",
                DtErrorKind::Invalid("has bits set outside the MPIDR affinity fields"),
            ));
        }
        if cpus.iter().any(|cpu| cpu.mpidr == id) {
            return Err(chain.property_error(
                "reg",
                DtErrorKind::Invalid("another CPU has the same MPIDR"),
            ));
        }
        let enable = match string_property(blob, &chain, "enable-method")? {
            None => EnableMethod::Unspecified,
            Some("psci") if have_psci => EnableMethod::Psci,
            Some("psci") => {
                return Err(chain.property_error(
                    "enable-method",
                    DtErrorKind::Invalid("is \"psci\" but the tree has no enabled PSCI node"),
                ));
            }
            Some("spin-table") => {
                let release_addr =
                    u64_property(blob, &chain, "cpu-release-addr")?.ok_or_else(|| {
                        chain.property_error("cpu-release-addr", DtErrorKind::MissingProperty)
                    })?;
                EnableMethod::SpinTable { release_addr }
            }
            Some(_) => {
                return Err(chain.property_error(
                    "enable-method",
                    DtErrorKind::Invalid("must be \"psci\" or \"spin-table\""),
                ));
            }
        };
        let too_many = || {
            parent.error(DtErrorKind::TooMany {
                what: "CPUs",
                max: MAX_CPUS,
            })
        };
        cpus.try_push(CpuInfo {
            mpidr: id,
            enable,
            cluster: 0,
        })
        .map_err(|_| too_many())?;
        // A malformed `phandle` only matters to the cpu-map, which then names no such CPU.
        let phandle = ["phandle", "linux,phandle"]
            .iter()
            .find_map(|name| blob.property(node, name))
            .filter(|value| value.len() == 4)
            .and_then(|value| super::blob::be_u32(value, 0));
        phandles
            .try_push(phandle.unwrap_or(0))
            .map_err(|_| too_many())?;
    }
    if cpus.is_empty() {
        return Err(parent.error(DtErrorKind::Invalid(
            "no enabled node with device_type \"cpu\"",
        )));
    }
    Ok((cpus, phandles))
}

type CpuList = ArrayVec<CpuInfo, MAX_CPUS>;

/// The first enabled GIC, and its register frames.
fn gic<'a>(blob: &Blob<'a>) -> Result<(Chain<'a>, GicInfo), DtError> {
    let node = blob
        .find(|node| {
            (is_compatible(blob, node, GIC_V3_COMPATIBLE) || is_compatible(blob, node, GIC_V2_COMPATIBLE))
                && is_enabled(blob, node)
        })
        .ok_or_else(|| {
            DtError::new(DtErrorKind::NotFound(
                "arm,gic-v3, arm,gic-400, arm,cortex-a15-gic, arm,cortex-a9-gic or arm,cortex-a7-gic",
            ))
        })?;
    let info = if is_compatible(blob, node.node(), GIC_V3_COMPATIBLE) {
        let regions = u32_property(blob, &node, "#redistributor-regions")?.unwrap_or(1) as usize;
        if !(1..=MAX_REDIST_REGIONS).contains(&regions) {
            return Err(node.property_error(
                "#redistributor-regions",
                DtErrorKind::Invalid("must be between 1 and 8"),
            ));
        }
        let regs: ArrayVec<PhysRange, { 1 + MAX_REDIST_REGIONS }> = device_regs(
            blob,
            &node,
            1 + regions,
            "needs the distributor and #redistributor-regions redistributor regions",
        )?;
        let mut frames = regs.into_iter();
        let dist = frames.next().unwrap_or(PhysRange { base: 0, size: 0 });
        GicInfo::V3 {
            dist,
            redist: frames.collect(),
        }
    } else {
        let regs: ArrayVec<PhysRange, 2> = device_regs(
            blob,
            &node,
            2,
            "needs the distributor and the CPU interface",
        )?;
        match regs.as_slice() {
            &[dist, cpu] => GicInfo::V2 { dist, cpu },
            _ => return Err(node.property_error("reg", DtErrorKind::Invalid("needs two entries"))),
        }
    };
    Ok((node, info))
}

/// The generic timer's virtual and physical PPIs, which must be routed to `gic`.
fn timer(blob: &Blob<'_>, gic: &Chain<'_>) -> Result<TimerInfo, DtError> {
    let node = blob
        .find(|node| is_compatible(blob, node, TIMER_COMPATIBLE) && is_enabled(blob, node))
        .ok_or_else(|| DtError::new(DtErrorKind::NotFound("arm,armv8-timer or arm,armv7-timer")))?;
    // `interrupt-parent` is inherited: the nearest one on the node or an ancestor counts.
    let (holder, phandle) = (0..node.nodes().len())
        .rev()
        .find_map(|depth| {
            let ancestor = node.nodes().get(depth)?;
            Some((depth, blob.property(*ancestor, "interrupt-parent")?))
        })
        .ok_or_else(|| node.property_error("interrupt-parent", DtErrorKind::MissingProperty))?;
    let phandle = match *phandle {
        [a, b, c, d] => u32::from_be_bytes([a, b, c, d]),
        _ => {
            let kind = DtErrorKind::BadLength {
                len: phandle.len(),
                expected: "4 bytes (a phandle)",
            };
            let path = node
                .nodes()
                .iter()
                .take(holder + 1)
                .map(|ancestor| ancestor.name);
            return Err(DtError::at_names(kind, path).with_property("interrupt-parent"));
        }
    };
    let controller = blob.find_phandle(phandle).ok_or_else(|| {
        node.property_error("interrupt-parent", DtErrorKind::DanglingPhandle(phandle))
    })?;
    if controller.node() != gic.node() {
        return Err(node.property_error(
            "interrupts",
            DtErrorKind::Invalid("are routed to an interrupt controller other than the GIC"),
        ));
    }
    let cells = u32_property(blob, gic, "#interrupt-cells")?
        .ok_or_else(|| gic.property_error("#interrupt-cells", DtErrorKind::MissingProperty))?;
    if !(3..=4).contains(&cells) {
        return Err(gic.property_error(
            "#interrupt-cells",
            DtErrorKind::Invalid("must be 3 or 4 for a GIC"),
        ));
    }
    let interrupts = blob
        .property(node.node(), "interrupts")
        .ok_or_else(|| node.property_error("interrupts", DtErrorKind::MissingProperty))?;
    let entry = cells as usize * 4;
    if !interrupts.len().is_multiple_of(entry) {
        return Err(node.property_error(
            "interrupts",
            DtErrorKind::RaggedEntries {
                len: interrupts.len(),
                entry,
            },
        ));
    }
    // Entries: secure physical, non-secure physical, virtual, hypervisor (optional).
    let ppi = |index: usize| -> Result<u32, DtError> {
        let specifier = interrupts.chunks_exact(entry).nth(index).ok_or_else(|| {
            node.property_error(
                "interrupts",
                DtErrorKind::Invalid("needs at least three entries"),
            )
        })?;
        let kind = super::blob::be_u32(specifier, 0).unwrap_or(u32::MAX);
        let number = super::blob::be_u32(specifier, 4).unwrap_or(u32::MAX);
        if kind != GIC_PPI || number >= PPI_COUNT {
            return Err(node.property_error(
                "interrupts",
                DtErrorKind::Invalid("timer interrupts must be PPIs 0..15"),
            ));
        }
        Ok(PPI_INTID_BASE + number)
    };
    Ok(TimerInfo {
        phys_intid: ppi(1)?,
        virt_intid: ppi(2)?,
    })
}

/// The console: `/chosen` `stdout-path` (or `linux,stdout-path`), else the first enabled PL011.
/// Its receive interrupt is looked for when `gic` is given.
fn console(
    blob: &Blob<'_>,
    chosen: Option<&Chain<'_>>,
    gic: Option<&Chain<'_>>,
) -> Result<Option<UartInfo>, DtError> {
    let mut stdout_path = None;
    if let Some(chosen) = chosen {
        for name in ["stdout-path", "linux,stdout-path"] {
            if let Some(path) = string_property(blob, chosen, name)? {
                stdout_path = Some(path);
                break;
            }
        }
    }
    let uart = match stdout_path {
        Some(path) => {
            // "serial1:115200n8": the part before ':' is a path or an alias.
            let target = path.split(':').next().unwrap_or(path);
            let full_path = if target.starts_with('/') {
                target
            } else {
                resolve_alias(blob, target)?
            };
            blob.find_path(full_path).ok_or_else(|| {
                DtError::at_path(DtErrorKind::MissingNode, full_path).with_property("stdout-path")
            })?
        }
        None => match blob
            .find(|node| is_compatible(blob, node, PL011_COMPATIBLE) && is_enabled(blob, node))
        {
            Some(uart) => uart,
            None => return Ok(None),
        },
    };
    let kind = if is_compatible(blob, uart.node(), PL011_COMPATIBLE) {
        UartKind::Pl011
    } else if is_compatible(blob, uart.node(), MINI_UART_COMPATIBLE) {
        UartKind::MiniUart
    } else {
        return Ok(None);
    };
    let regs: ArrayVec<PhysRange, 1> = device_regs(blob, &uart, 1, "needs the register block")?;
    let regs = regs
        .first()
        .copied()
        .unwrap_or(PhysRange { base: 0, size: 0 });
    Ok(Some(UartInfo {
        kind,
        regs,
        clock_hz: uart_clock(blob, &uart)?,
        irq: gic.and_then(|gic| spi_of(blob, &uart, gic)),
    }))
}

/// The GIC INTID of `node`'s first interrupt if it is an SPI of `gic` (through the
/// nearest `interrupt-parent`, inherited as usual); `None` for anything else. A console
/// without one still prints; it only cannot take input.
fn spi_of(blob: &Blob<'_>, node: &Chain<'_>, gic: &Chain<'_>) -> Option<u32> {
    let phandle = (0..node.nodes().len())
        .rev()
        .find_map(|depth| blob.property(*node.nodes().get(depth)?, "interrupt-parent"))?;
    let phandle = u32::from_be_bytes(phandle.try_into().ok()?);
    let controller = blob.find_phandle(phandle)?;
    if controller.node() != gic.node() {
        return None;
    }
    let cells = u32_property(blob, gic, "#interrupt-cells").ok().flatten()?;
    let first = blob
        .property(node.node(), "interrupts")?
        .get(..(cells as usize).checked_mul(4)?)?;
    let kind = super::blob::be_u32(first, 0)?;
    let number = super::blob::be_u32(first, 4)?;
    (cells >= 3 && kind == GIC_SPI && number < SPI_COUNT).then_some(SPI_INTID_BASE + number)
}

/// The path an `/aliases` entry names.
fn resolve_alias<'a>(blob: &Blob<'a>, alias: &str) -> Result<&'a str, DtError> {
    let aliases = blob
        .find_path("/aliases")
        .ok_or_else(|| DtError::at_path(DtErrorKind::MissingNode, "/aliases"))?;
    let value = blob
        .properties(aliases.node())
        .find(|&(name, _)| name == alias)
        .map(|(_, value)| value)
        .ok_or_else(|| {
            aliases.error(DtErrorKind::Invalid(
                "stdout-path names an alias that /aliases does not define",
            ))
        })?;
    let text = value.split(|&byte| byte == 0).next().unwrap_or_default();
    match core::str::from_utf8(text) {
        Ok(path) if path.starts_with('/') && value.ends_with(b"\0") => Ok(path),
        _ => Err(aliases.error(DtErrorKind::Invalid(
            "an alias is not an absolute path string",
        ))),
    }
}

/// The UART's clock: its own `clock-frequency`, else the `fixed-clock` its first `clocks`
/// entry names; `None` when the clock is some other provider's.
fn uart_clock(blob: &Blob<'_>, uart: &Chain<'_>) -> Result<Option<u32>, DtError> {
    if let Some(hz) = u32_property(blob, uart, "clock-frequency")? {
        return Ok(Some(hz));
    }
    let Some(clocks) = blob.property(uart.node(), "clocks") else {
        return Ok(None);
    };
    let phandle = match clocks.get(..4) {
        Some(&[a, b, c, d]) => u32::from_be_bytes([a, b, c, d]),
        _ => {
            return Err(uart.property_error(
                "clocks",
                DtErrorKind::BadLength {
                    len: clocks.len(),
                    expected: "at least 4 bytes",
                },
            ));
        }
    };
    let clock = blob
        .find_phandle(phandle)
        .ok_or_else(|| uart.property_error("clocks", DtErrorKind::DanglingPhandle(phandle)))?;
    if !is_compatible(blob, clock.node(), &["fixed-clock"]) {
        return Ok(None);
    }
    u32_property(blob, &clock, "clock-frequency")
}

/// The initial RAM disk from `/chosen`: both ends (each one or two cells) or neither.
fn initrd(blob: &Blob<'_>, chosen: &Chain<'_>) -> Result<Option<PhysRange>, DtError> {
    let start = u64_property(blob, chosen, "linux,initrd-start")?;
    let end = u64_property(blob, chosen, "linux,initrd-end")?;
    match (start, end) {
        (None, None) => Ok(None),
        (Some(_), None) => {
            Err(chosen.property_error("linux,initrd-end", DtErrorKind::MissingProperty))
        }
        (None, Some(_)) => {
            Err(chosen.property_error("linux,initrd-start", DtErrorKind::MissingProperty))
        }
        (Some(start), Some(end)) if end < start => Err(chosen.property_error(
            "linux,initrd-end",
            DtErrorKind::Invalid("is below linux,initrd-start"),
        )),
        (Some(start), Some(end)) if end == start => Ok(None),
        (Some(start), Some(end)) => Ok(Some(PhysRange {
            base: start,
            size: end - start,
        })),
    }
}
