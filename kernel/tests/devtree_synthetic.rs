//! The device-tree layer against synthetic trees built for one edge case each: missing
//! nodes, bad cell counts and lengths, `ranges` translation, initrd forms, GIC and console
//! variants, FDT_NOP tokens, truncated and malformed blobs.

mod common;

use armach_kernel::devtree::{
    self, DtError, DtErrorKind, EnableMethod, GicInfo, MachineConfig, PhysRange, PsciConduit,
    UartKind,
};
use common::{Layout, Node, base_tree, build, cells, cpu, strings};

fn range(base: u64, size: u64) -> PhysRange {
    PhysRange { base, size }
}

/// Builds `tree` and parses it, expecting success.
fn config_of(tree: &Node) -> MachineConfig<'static> {
    let blob: &'static [u8] = build(tree, &Layout::default()).leak();
    devtree::parse(blob).unwrap_or_else(|error| panic!("{error}"))
}

/// Builds `tree` and parses it, expecting an error.
fn error_of(tree: &Node) -> DtError {
    let blob = build(tree, &Layout::default());
    match devtree::parse(&blob) {
        Ok(config) => panic!("expected an error, parsed {config:?}"),
        Err(error) => error,
    }
}

#[test]
fn base_tree_parses() {
    let config = config_of(&base_tree());
    assert_eq!(config.model, "test,machine");
    assert_eq!(config.memory.as_slice(), &[range(0x4000_0000, 0x8000_0000)]);
    assert_eq!(config.cpus.len(), 2);
    assert_eq!(config.cpus[1].mpidr, 1);
    assert_eq!(config.psci, Some(PsciConduit::Hvc));
    assert_eq!(
        config.gic,
        GicInfo::V2 {
            dist: range(0x0800_0000, 0x1_0000),
            cpu: range(0x0801_0000, 0x1_0000)
        },
        "arm,cortex-a15-gic is a GICv2"
    );
    assert_eq!((config.timer.virt_intid, config.timer.phys_intid), (27, 30));
    let console = config.console.expect("console");
    assert_eq!(
        (console.kind, console.regs, console.clock_hz),
        (
            UartKind::Pl011,
            range(0x0900_0000, 0x1000),
            Some(24_000_000)
        )
    );
    assert_eq!(config.bootargs, "hello");
}

#[test]
fn nops_anywhere_change_nothing() {
    let tree = base_tree();
    let plain = build(&tree, &Layout::default());
    let with_nops = build(
        &tree,
        &Layout {
            nops: true,
            ..Layout::default()
        },
    );
    assert!(with_nops.len() > plain.len());
    assert_eq!(devtree::parse(&plain), devtree::parse(&with_nops));
}

#[test]
fn missing_cpus() {
    let mut tree = base_tree();
    tree.remove("/cpus");
    let error = error_of(&tree);
    assert_eq!(
        (error.kind(), error.node()),
        (DtErrorKind::MissingNode, "/cpus")
    );
    assert_eq!(error.to_string(), "device tree: /cpus: node is missing");
}

#[test]
fn cpus_without_cpu_nodes() {
    let mut tree = base_tree();
    tree.at("/cpus").children.clear();
    assert!(
        error_of(&tree)
            .to_string()
            .contains("no enabled node with device_type \"cpu\"")
    );
}

#[test]
fn missing_memory() {
    let mut tree = base_tree();
    tree.remove("/memory@40000000");
    assert!(error_of(&tree).to_string().contains("no memory"));
}

#[test]
fn several_memory_nodes_and_entries() {
    let mut tree = base_tree();
    tree.at("/memory@40000000").set(
        "reg",
        cells(&[0, 0x4000_0000, 0, 0x1000_0000, 0, 0x6000_0000, 0, 0]),
    );
    tree.children.push(
        Node::new("memory@100000000")
            .string("device_type", "memory")
            .cells("reg", &[1, 0, 0, 0x4000_0000]),
    );
    tree.children.push(
        Node::new("memory@200000000")
            .string("device_type", "memory")
            .string("status", "disabled")
            .cells("reg", &[2, 0, 0, 0x4000_0000]),
    );
    let config = config_of(&tree);
    assert_eq!(
        config.memory.as_slice(),
        &[
            range(0x4000_0000, 0x1000_0000),
            range(0x1_0000_0000, 0x4000_0000)
        ],
        "zero-size entries and disabled nodes are dropped"
    );
}

#[test]
fn overlapping_memory_is_an_error() {
    let mut tree = base_tree();
    tree.children.push(
        Node::new("memory@80000000")
            .string("device_type", "memory")
            .cells("reg", &[0, 0x8000_0000, 0, 0x1000]),
    );
    assert!(
        error_of(&tree)
            .to_string()
            .contains("memory regions overlap")
    );
}

#[test]
fn reg_not_a_whole_number_of_entries() {
    let mut tree = base_tree();
    tree.at("/memory@40000000")
        .set("reg", cells(&[0, 0x4000_0000, 0]));
    let error = error_of(&tree);
    assert_eq!(
        error.kind(),
        DtErrorKind::RaggedEntries { len: 12, entry: 16 }
    );
    assert_eq!(
        (error.node(), error.property()),
        ("/memory@40000000", Some("reg"))
    );

    let mut tree = base_tree();
    tree.at("/pl011@9000000").set("reg", vec![0; 15]);
    let error = error_of(&tree);
    assert_eq!(error.node(), "/pl011@9000000");
    assert!(
        error
            .to_string()
            .contains("property `reg`: length 15 is not a whole number of 16-byte entries"),
        "{error}"
    );
}

#[test]
fn bad_cell_counts() {
    let mut tree = base_tree();
    tree.set("#address-cells", cells(&[3]));
    let error = error_of(&tree);
    assert_eq!(error.kind(), DtErrorKind::BadCells { value: 3, max: 2 });
    assert_eq!(
        (error.node(), error.property()),
        ("/", Some("#address-cells"))
    );

    let mut tree = base_tree();
    tree.set("#size-cells", vec![0, 0, 0, 0, 2]);
    assert_eq!(
        error_of(&tree).kind(),
        DtErrorKind::BadLength {
            len: 5,
            expected: "4 bytes (one cell)"
        }
    );

    let mut tree = base_tree();
    tree.set("#address-cells", cells(&[0]));
    assert!(error_of(&tree).to_string().contains("must not be 0"));

    let mut tree = base_tree();
    tree.at("/cpus").set("#size-cells", cells(&[1]));
    assert_eq!(error_of(&tree).property(), Some("#size-cells"));

    let mut tree = base_tree();
    tree.at("/cpus").set("#address-cells", cells(&[3]));
    assert_eq!(error_of(&tree).property(), Some("#address-cells"));
}

#[test]
fn one_cell_addresses() {
    let mut tree = base_tree();
    tree.set("#address-cells", cells(&[1]));
    tree.set("#size-cells", cells(&[1]));
    tree.at("/memory@40000000")
        .set("reg", cells(&[0x4000_0000, 0x2000_0000]));
    tree.at("/intc@8000000").set(
        "reg",
        cells(&[0x0800_0000, 0x1_0000, 0x0801_0000, 0x1_0000]),
    );
    tree.at("/pl011@9000000")
        .set("reg", cells(&[0x0900_0000, 0x1000]));
    let config = config_of(&tree);
    assert_eq!(config.memory.as_slice(), &[range(0x4000_0000, 0x2000_0000)]);
    assert_eq!(
        config.console.map(|c| c.regs),
        Some(range(0x0900_0000, 0x1000))
    );
}

#[test]
fn cpu_ids_two_cells_and_aff3() {
    let mut tree = base_tree();
    let cpus = tree.at("/cpus");
    cpus.set("#address-cells", cells(&[2]));
    cpus.at("/cpu@0").set("reg", cells(&[0, 0]));
    cpus.at("/cpu@1").set("reg", cells(&[0x12, 0x0003_0405]));
    let config = config_of(&tree);
    assert_eq!(config.cpus[1].mpidr, 0x12_0003_0405);
    assert_eq!(config.cpu_index_of_mpidr(0x12_8003_0405), Some(1));

    tree.at("/cpus/cpu@1").set("reg", cells(&[0x100, 0]));
    assert!(
        error_of(&tree)
            .to_string()
            .contains("outside the MPIDR affinity fields")
    );
    tree.at("/cpus/cpu@1").set("reg", cells(&[0, 0]));
    assert!(error_of(&tree).to_string().contains("same MPIDR"));
}

#[test]
fn disabled_cpus_and_cpu_map_are_skipped() {
    let mut tree = base_tree();
    let cpus = tree.at("/cpus");
    cpus.children.push(cpu(2).string("status", "disabled"));
    cpus.children
        .push(Node::new("cpu-map").child(Node::new("cluster0")));
    assert_eq!(config_of(&tree).cpus.len(), 2);
}

#[test]
fn spin_table_cpus() {
    let mut tree = base_tree();
    tree.remove("/psci");
    for (name, addr) in [
        ("/cpus/cpu@0", &[0xd8][..]),
        ("/cpus/cpu@1", &[0, 0xe0][..]),
    ] {
        let node = tree.at(name);
        node.set("enable-method", strings(&["spin-table"]));
        node.set("cpu-release-addr", cells(addr));
    }
    let config = config_of(&tree);
    assert_eq!(config.psci, None);
    assert_eq!(
        config.cpus[0].enable,
        EnableMethod::SpinTable { release_addr: 0xd8 }
    );
    assert_eq!(
        config.cpus[1].enable,
        EnableMethod::SpinTable { release_addr: 0xe0 }
    );

    tree.at("/cpus/cpu@1").remove_prop("cpu-release-addr");
    let error = error_of(&tree);
    assert_eq!(
        (error.node(), error.property()),
        ("/cpus/cpu@1", Some("cpu-release-addr"))
    );
}

#[test]
fn enable_method_psci_needs_psci() {
    let mut tree = base_tree();
    tree.remove("/psci");
    assert!(error_of(&tree).to_string().contains("no enabled PSCI node"));

    let mut tree = base_tree();
    tree.at("/cpus/cpu@1")
        .set("enable-method", strings(&["brcm,bcm2836-smp"]));
    assert_eq!(error_of(&tree).property(), Some("enable-method"));
}

#[test]
fn psci_method() {
    let mut tree = base_tree();
    tree.at("/psci").set("method", strings(&["smc"]));
    assert_eq!(config_of(&tree).psci, Some(PsciConduit::Smc));
    tree.at("/psci").set("method", strings(&["svc"]));
    assert!(
        error_of(&tree)
            .to_string()
            .contains("must be \"hvc\" or \"smc\"")
    );
    tree.at("/psci").set("method", b"hvc".to_vec());
    assert_eq!(error_of(&tree).kind(), DtErrorKind::NotAString);
    tree.at("/psci").remove_prop("method");
    assert_eq!(error_of(&tree).kind(), DtErrorKind::MissingProperty);
}

#[test]
fn initrd_one_and_two_cells() {
    let mut tree = base_tree();
    let chosen = tree.at("/chosen");
    chosen.set("linux,initrd-start", cells(&[0x4800_0000]));
    chosen.set("linux,initrd-end", cells(&[0, 0x4810_0000]));
    assert_eq!(config_of(&tree).initrd, Some(range(0x4800_0000, 0x10_0000)));

    tree.at("/chosen").set("linux,initrd-start", cells(&[1, 0]));
    tree.at("/chosen")
        .set("linux,initrd-end", cells(&[1, 0x1000]));
    assert_eq!(config_of(&tree).initrd, Some(range(0x1_0000_0000, 0x1000)));

    tree.at("/chosen").set("linux,initrd-end", cells(&[1, 0]));
    assert_eq!(config_of(&tree).initrd, None, "an empty initrd is none");

    tree.at("/chosen").set("linux,initrd-end", cells(&[0x10]));
    assert!(
        error_of(&tree)
            .to_string()
            .contains("below linux,initrd-start")
    );

    tree.at("/chosen").set("linux,initrd-end", vec![0; 6]);
    assert_eq!(error_of(&tree).property(), Some("linux,initrd-end"));

    tree.at("/chosen").remove_prop("linux,initrd-end");
    assert_eq!(error_of(&tree).kind(), DtErrorKind::MissingProperty);
}

/// A UART two buses down, like the Pi's `/soc` but with one more level, 1-cell child buses.
fn tree_with_buses() -> Node {
    let mut tree = base_tree();
    tree.remove("/pl011@9000000");
    let uart = Node::new("serial@7e201000")
        .string("compatible", "arm,pl011")
        .cells("reg", &[0x7e20_1000, 0x200])
        .cells("clock-frequency", &[48_000_000]);
    let inner = Node::new("bus@7e000000")
        .cells("#address-cells", &[1])
        .cells("#size-cells", &[1])
        // child 0x7e00_0000.. -> soc 0x7e00_0000..
        .cells("ranges", &[0x7e00_0000, 0x7e00_0000, 0x0100_0000])
        .child(uart);
    let soc = Node::new("soc")
        .cells("#address-cells", &[1])
        .cells("#size-cells", &[1])
        // soc 0x7e00_0000.. -> CPU 0xfe00_0000.. (1-cell child, 2-cell parent address)
        .cells(
            "ranges",
            &[
                0x7e00_0000,
                0,
                0xfe00_0000,
                0x0180_0000,
                0x4000_0000,
                0,
                0xff80_0000,
                0x0080_0000,
            ],
        )
        .child(inner);
    tree.children.push(soc);
    tree.at("/chosen").set(
        "stdout-path",
        strings(&["/soc/bus@7e000000/serial@7e201000:115200n8"]),
    );
    tree
}

#[test]
fn ranges_translate_through_every_level() {
    let config = config_of(&tree_with_buses());
    let console = config.console.expect("console");
    assert_eq!(console.regs, range(0xfe20_1000, 0x200));
    assert_eq!(console.clock_hz, Some(48_000_000));
}

#[test]
fn empty_ranges_is_identity() {
    let mut tree = tree_with_buses();
    tree.at("/soc/bus@7e000000").set("ranges", Vec::new());
    assert_eq!(
        config_of(&tree).console.map(|c| c.regs.base),
        Some(0xfe20_1000)
    );
}

#[test]
fn missing_ranges_is_untranslatable() {
    let mut tree = tree_with_buses();
    tree.at("/soc/bus@7e000000").remove_prop("ranges");
    let error = error_of(&tree);
    assert_eq!(
        (error.kind(), error.node()),
        (DtErrorKind::NoRanges, "/soc/bus@7e000000")
    );
}

#[test]
fn address_outside_ranges() {
    let mut tree = tree_with_buses();
    tree.at("/soc/bus@7e000000/serial@7e201000")
        .set("reg", cells(&[0x7f00_0000, 0x200]));
    let error = error_of(&tree);
    assert_eq!(
        error.kind(),
        DtErrorKind::Untranslatable {
            address: 0x7f00_0000
        }
    );
    assert_eq!(error.node(), "/soc/bus@7e000000");

    // A register block that starts inside a window but runs past its end.
    let mut tree = tree_with_buses();
    tree.at("/soc/bus@7e000000/serial@7e201000")
        .set("reg", cells(&[0x7eff_ff00, 0x200]));
    assert!(matches!(
        error_of(&tree).kind(),
        DtErrorKind::Untranslatable { .. }
    ));

    let mut tree = tree_with_buses();
    tree.at("/soc")
        .set("ranges", cells(&[0x7e00_0000, 0, 0xfe00_0000]));
    assert_eq!(
        error_of(&tree).kind(),
        DtErrorKind::RaggedEntries { len: 12, entry: 16 }
    );
}

#[test]
fn gic_v3_with_redistributor_regions() {
    let mut tree = base_tree();
    let gic = tree.at("/intc@8000000");
    gic.set("compatible", strings(&["arm,gic-v3"]));
    gic.set("#redistributor-regions", cells(&[2]));
    gic.set(
        "reg",
        cells(&[
            0,
            0x0800_0000,
            0,
            0x1_0000,
            0,
            0x080a_0000,
            0,
            0xf6_0000,
            0x40,
            0,
            0,
            0x400_0000,
        ]),
    );
    let GicInfo::V3 { dist, redist } = config_of(&tree).gic else {
        panic!("GICv3 expected")
    };
    assert_eq!(dist, range(0x0800_0000, 0x1_0000));
    assert_eq!(
        redist.as_slice(),
        &[
            range(0x080a_0000, 0xf6_0000),
            range(0x40_0000_0000, 0x400_0000)
        ]
    );

    tree.at("/intc@8000000")
        .set("#redistributor-regions", cells(&[3]));
    assert!(
        error_of(&tree)
            .to_string()
            .contains("#redistributor-regions redistributor regions")
    );
    tree.at("/intc@8000000")
        .set("#redistributor-regions", cells(&[9]));
    assert!(error_of(&tree).to_string().contains("between 1 and 8"));
}

#[test]
fn gic_v2_variants_and_absence() {
    for compatible in ["arm,gic-400", "arm,cortex-a9-gic", "arm,cortex-a15-gic"] {
        let mut tree = base_tree();
        tree.at("/intc@8000000")
            .set("compatible", strings(&[compatible]));
        assert!(
            matches!(config_of(&tree).gic, GicInfo::V2 { .. }),
            "{compatible}"
        );
    }
    let mut tree = base_tree();
    tree.at("/intc@8000000")
        .set("reg", cells(&[0, 0x0800_0000, 0, 0x1_0000]));
    assert!(
        error_of(&tree)
            .to_string()
            .contains("needs the distributor and the CPU interface")
    );

    let mut tree = base_tree();
    tree.at("/intc@8000000")
        .set("compatible", strings(&["vendor,other-intc"]));
    assert!(matches!(error_of(&tree).kind(), DtErrorKind::NotFound(_)));
}

#[test]
fn timer_checks() {
    let mut tree = base_tree();
    tree.at("/timer")
        .set("interrupts", cells(&[1, 13, 4, 1, 14, 4]));
    assert!(
        error_of(&tree)
            .to_string()
            .contains("at least three entries")
    );

    let mut tree = base_tree();
    tree.at("/timer")
        .set("interrupts", cells(&[1, 13, 4, 1, 14, 4, 0, 11, 4]));
    assert!(error_of(&tree).to_string().contains("must be PPIs"));

    let mut tree = base_tree();
    tree.at("/timer").set("interrupts", cells(&[1, 13, 4, 1]));
    assert!(matches!(
        error_of(&tree).kind(),
        DtErrorKind::RaggedEntries { .. }
    ));

    let mut tree = base_tree();
    tree.at("/timer").set("interrupt-parent", cells(&[2]));
    assert!(error_of(&tree).to_string().contains("other than the GIC"));

    let mut tree = base_tree();
    tree.set("interrupt-parent", cells(&[0x99]));
    assert_eq!(error_of(&tree).kind(), DtErrorKind::DanglingPhandle(0x99));

    let mut tree = base_tree();
    tree.remove_prop("interrupt-parent");
    assert_eq!(error_of(&tree).property(), Some("interrupt-parent"));

    let mut tree = base_tree();
    tree.remove("/timer");
    assert!(matches!(error_of(&tree).kind(), DtErrorKind::NotFound(_)));
}

#[test]
fn console_without_stdout_path_is_first_enabled_pl011() {
    let mut tree = base_tree();
    tree.at("/chosen").remove_prop("stdout-path");
    tree.at("/pl011@9000000")
        .set("status", strings(&["disabled"]));
    tree.children.push(
        Node::new("pl011@9040000")
            .string("compatible", "arm,pl011")
            .string("status", "okay")
            .cells("reg", &[0, 0x0904_0000, 0, 0x1000]),
    );
    let console = config_of(&tree).console.expect("console");
    assert_eq!((console.regs.base, console.clock_hz), (0x0904_0000, None));

    tree.remove("/pl011@9040000");
    assert_eq!(config_of(&tree).console, None);
    tree.remove("/chosen");
    let config = config_of(&tree);
    assert_eq!(
        (config.console, config.bootargs, config.initrd),
        (None, "", None)
    );
}

#[test]
fn console_through_an_alias() {
    let mut tree = base_tree();
    tree.children.push(
        Node::new("serial@7e215040")
            .string("compatible", "brcm,bcm2835-aux-uart")
            .cells("reg", &[0, 0x7e21_5040, 0, 0x40]),
    );
    tree.children
        .push(Node::new("aliases").string("serial1", "/serial@7e215040"));
    tree.at("/chosen")
        .set("stdout-path", strings(&["serial1:115200n8"]));
    let console = config_of(&tree).console.expect("console");
    assert_eq!(
        (console.kind, console.regs),
        (UartKind::MiniUart, range(0x7e21_5040, 0x40))
    );

    tree.at("/chosen").set("stdout-path", strings(&["serial7"]));
    assert!(
        error_of(&tree)
            .to_string()
            .contains("alias that /aliases does not define")
    );

    tree.at("/chosen")
        .set("stdout-path", strings(&["/serial@1234"]));
    let error = error_of(&tree);
    assert_eq!(
        (error.kind(), error.node()),
        (DtErrorKind::MissingNode, "/serial@1234")
    );

    tree.at("/aliases")
        .set("serial1", strings(&["serial@7e215040"]));
    tree.at("/chosen").set("stdout-path", strings(&["serial1"]));
    assert!(error_of(&tree).to_string().contains("not an absolute path"));
}

#[test]
fn console_of_unknown_kind_is_none() {
    let mut tree = base_tree();
    tree.children.push(
        Node::new("serial@1c28000")
            .string("compatible", "snps,dw-apb-uart")
            .cells("reg", &[0, 0x1c2_8000, 0, 0x400]),
    );
    tree.at("/chosen")
        .set("stdout-path", strings(&["/serial@1c28000"]));
    assert_eq!(config_of(&tree).console, None);
}

#[test]
fn reserved_memory() {
    let mut tree = base_tree();
    tree.children.push(
        Node::new("reserved-memory")
            .cells("#address-cells", &[2])
            .cells("#size-cells", &[2])
            .prop("ranges", Vec::new())
            .child(
                Node::new("secmon@40000000")
                    .cells("reg", &[0, 0x4000_0000, 0, 0x10_0000])
                    .prop("no-map", Vec::new()),
            )
            .child(
                Node::new("linux,cma")
                    .string("compatible", "shared-dma-pool")
                    .cells("size", &[0, 0x400_0000]),
            )
            .child(
                Node::new("off@50000000")
                    .string("status", "disabled")
                    .cells("reg", &[0, 0x5000_0000, 0, 0x1000]),
            ),
    );
    let blob = build(
        &tree,
        &Layout {
            reservations: vec![(0x4800_0000, 0x1800), (0x4900_0000, 0)],
            nops: false,
        },
    );
    let config = devtree::parse(&blob).expect("parses");
    assert_eq!(
        config.reserved.as_slice(),
        &[range(0x4800_0000, 0x1800), range(0x4000_0000, 0x10_0000)]
    );
    let mut usable: arrayvec::ArrayVec<PhysRange, 4> = arrayvec::ArrayVec::new();
    config.usable_memory(&mut usable).expect("fits");
    assert_eq!(
        usable.as_slice(),
        &[
            range(0x4010_0000, 0x7f0_0000),
            range(0x4800_2000, 0x8000_0000 - 0x800_2000)
        ]
    );
}

#[test]
fn too_many_memory_regions() {
    let mut tree = base_tree();
    let reg: Vec<u32> = (0..33)
        .flat_map(|i| [0, 0x4000_0000 + i * 0x10_0000, 0, 0x1000])
        .collect();
    tree.at("/memory@40000000").set("reg", cells(&reg));
    assert_eq!(
        error_of(&tree).kind(),
        DtErrorKind::TooMany {
            what: "memory regions",
            max: 32
        }
    );
}

#[test]
fn deep_nesting_is_refused() {
    let mut deep = Node::new("n");
    for _ in 0..40 {
        deep = Node::new("n").child(deep);
    }
    let mut tree = base_tree();
    tree.children.push(deep);
    assert!(
        error_of(&tree)
            .to_string()
            .contains("deeper than 32 levels")
    );
}

#[test]
fn header_problems() {
    let blob = build(&base_tree(), &Layout::default());
    let set = |field: usize, value: u32| {
        let mut bad = blob.clone();
        bad[field * 4..field * 4 + 4].copy_from_slice(&value.to_be_bytes());
        devtree::parse(&bad).expect_err("bad header").kind()
    };
    assert_eq!(set(0, 0xfeed_d00d), DtErrorKind::BadMagic(0xfeed_d00d));
    assert!(matches!(
        set(1, blob.len() as u32 + 4),
        DtErrorKind::Truncated { .. }
    ));
    assert!(matches!(set(1, 16), DtErrorKind::BadTotalSize(16)));
    assert!(matches!(set(2, 0xffff_fff0), DtErrorKind::Layout(_)));
    assert!(matches!(set(3, blob.len() as u32), DtErrorKind::Layout(_)));
    assert!(matches!(
        set(4, blob.len() as u32 - 8),
        DtErrorKind::Layout(_)
    ));
    assert!(matches!(set(5, 16), DtErrorKind::UnsupportedVersion { .. }));
    assert!(matches!(set(9, 4), DtErrorKind::Structure { .. }));
    assert!(matches!(
        devtree::parse(&[]).unwrap_err().kind(),
        DtErrorKind::Truncated { .. }
    ));
}

#[test]
fn every_truncation_is_an_error() {
    let blob = build(
        &base_tree(),
        &Layout {
            nops: true,
            ..Layout::default()
        },
    );
    for len in 0..blob.len() {
        assert!(
            devtree::parse(&blob[..len]).is_err(),
            "prefix of {len} bytes"
        );
        // Also with the header's sizes claiming only what is there.
        let mut cut = blob[..len].to_vec();
        if len >= 40 {
            cut[4..8].copy_from_slice(&(len as u32).to_be_bytes());
            let _ = devtree::parse(&cut);
        }
    }
}

#[test]
fn structure_errors_name_the_offset() {
    let mut blob = build(&base_tree(), &Layout::default());
    let off_struct = u32::from_be_bytes(blob[8..12].try_into().unwrap()) as usize;
    blob[off_struct..off_struct + 4].copy_from_slice(&7u32.to_be_bytes());
    let error = devtree::parse(&blob).unwrap_err();
    assert_eq!(
        error.kind(),
        DtErrorKind::Structure {
            offset: 0,
            what: "unknown token"
        }
    );
    assert_eq!(
        error.to_string(),
        "device tree: malformed structure block at offset 0x0: unknown token"
    );
}

/// The base tree with its CPUs given phandles 0x10 + id, a disabled `cpu@2` (phandle 0x12),
/// and `map` as `/cpus/cpu-map`.
fn tree_with_cpu_map(map: Node) -> Node {
    let mut tree = base_tree();
    let cpus = tree.at("/cpus");
    for id in 0..2 {
        cpus.at(&format!("/cpu@{id}"))
            .set("phandle", cells(&[0x10 + id]));
    }
    cpus.children.push(
        cpu(2)
            .string("status", "disabled")
            .cells("phandle", &[0x12]),
    );
    cpus.children.insert(0, map.clone());
    tree
}

/// `clusterN` with one `core0` per phandle.
fn cluster(name: &str, phandles: &[u32]) -> Node {
    phandles
        .iter()
        .enumerate()
        .fold(Node::new(name), |node, (index, &phandle)| {
            node.child(Node::new(&format!("core{index}")).cells("cpu", &[phandle]))
        })
}

fn clusters(config: &MachineConfig<'_>) -> Vec<u32> {
    config.cpus.iter().map(|cpu| cpu.cluster).collect()
}

#[test]
fn cpu_map_clusters() {
    // In document order, whatever the order of the CPU nodes.
    let map = Node::new("cpu-map")
        .child(cluster("cluster0", &[0x11]))
        .child(cluster("cluster1", &[0x10]));
    let config = config_of(&tree_with_cpu_map(map));
    assert_eq!(config.cpu_map_error, None);
    assert_eq!(clusters(&config), [1, 0]);
    assert_eq!(config.cluster_count(), 2);

    // Nested clusters: the innermost counts, and every cluster node takes an index.
    let map = Node::new("cpu-map").child(
        Node::new("socket0").child(
            Node::new("cluster0")
                .child(cluster("cluster0", &[0x10]))
                .child(cluster("cluster1", &[0x11])),
        ),
    );
    assert_eq!(clusters(&config_of(&tree_with_cpu_map(map))), [1, 2]);

    // A disabled CPU in the map takes no part; a CPU left out is in cluster 0.
    let map = Node::new("cpu-map")
        .child(cluster("cluster0", &[0x12]))
        .child(cluster("cluster1", &[0x11]));
    let config = config_of(&tree_with_cpu_map(map));
    assert_eq!(config.cpu_map_error, None);
    assert_eq!(clusters(&config), [0, 1]);

    // Threads carry the CPUs of a core that has them.
    let core = Node::new("core0")
        .child(Node::new("thread0").cells("cpu", &[0x10]))
        .child(Node::new("thread1").cells("cpu", &[0x11]));
    let map = Node::new("cpu-map")
        .child(Node::new("cluster0"))
        .child(Node::new("cluster1").child(core));
    assert_eq!(clusters(&config_of(&tree_with_cpu_map(map))), [1, 1]);
}

#[test]
fn bad_cpu_map_is_reported_and_ignored() {
    // Each bad leaf comes after two good ones that put the CPUs in clusters 1 and 0, so
    // that a map abandoned half-way is seen to be undone.
    let with_bad = |bad: Node| {
        Node::new("cpu-map")
            .child(cluster("cluster0", &[0x11]))
            .child(cluster("cluster1", &[0x10]))
            .child(Node::new("cluster2").child(bad))
    };
    let core = || Node::new("core0");
    let cases: Vec<(Node, DtErrorKind, &str, Option<&str>)> = vec![
        (
            with_bad(core().cells("cpu", &[0x99])),
            DtErrorKind::DanglingPhandle(0x99),
            "/cpus/cpu-map/cluster2/core0",
            Some("cpu"),
        ),
        (
            with_bad(core().cells("cpu", &[0])),
            DtErrorKind::DanglingPhandle(0),
            "/cpus/cpu-map/cluster2/core0",
            Some("cpu"),
        ),
        (
            with_bad(core().cells("cpu", &[0x10, 0])),
            DtErrorKind::BadLength {
                len: 8,
                expected: "4 bytes (a phandle)",
            },
            "/cpus/cpu-map/cluster2/core0",
            Some("cpu"),
        ),
        (
            // Phandle 1 is the GIC.
            with_bad(core().cells("cpu", &[1])),
            DtErrorKind::Invalid("names a node that is not a CPU under /cpus"),
            "/cpus/cpu-map/cluster2/core0",
            Some("cpu"),
        ),
        (
            with_bad(core().cells("cpu", &[0x10])),
            DtErrorKind::Invalid("names a CPU that the map already placed"),
            "/cpus/cpu-map/cluster2/core0",
            Some("cpu"),
        ),
        (
            with_bad(core()),
            DtErrorKind::MissingProperty,
            "/cpus/cpu-map/cluster2/core0",
            Some("cpu"),
        ),
        (
            with_bad(Node::new("thread0").cells("cpu", &[0x12])),
            DtErrorKind::Invalid(
                "misplaced: cpu-map nests socket > cluster (> cluster) > core > thread",
            ),
            "/cpus/cpu-map/cluster2/thread0",
            None,
        ),
        (
            with_bad(Node::new("cpu0").cells("cpu", &[0x12])),
            DtErrorKind::Invalid("cpu-map nodes must be named socketN, clusterN, coreN or threadN"),
            "/cpus/cpu-map/cluster2/cpu0",
            None,
        ),
    ];
    for (map, kind, node, property) in cases {
        let config = config_of(&tree_with_cpu_map(map));
        let error = config.cpu_map_error.expect("a malformed map is reported");
        assert_eq!(
            (error.kind(), error.node(), error.property()),
            (kind, node, property),
            "{error}"
        );
        assert_eq!(clusters(&config), [0, 0], "{error}: the map is ignored");
        assert_eq!(config.cluster_count(), 1);
    }

    // A core right under the map, outside any cluster.
    let map = Node::new("cpu-map").child(core().cells("cpu", &[0x10]));
    let error = config_of(&tree_with_cpu_map(map))
        .cpu_map_error
        .expect("reported");
    assert_eq!(error.node(), "/cpus/cpu-map/core0");
    assert!(error.to_string().contains("misplaced"), "{error}");
}
