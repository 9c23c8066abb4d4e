//! The device-tree layer against real trees: QEMU `virt` blobs (committed fixtures) and the
//! Raspberry Pi 4 tree (from the local cache; skipped with a message when absent).

mod common;

use armach_kernel::devtree::{
    self, CpuInfo, EnableMethod, GicInfo, MachineConfig, PhysRange, PsciConduit, TimerInfo,
    UartInfo, UartKind,
};
use arrayvec::ArrayVec;

const GIB: u64 = 1 << 30;
const MIB: u64 = 1 << 20;

fn range(base: u64, size: u64) -> PhysRange {
    PhysRange { base, size }
}

fn parse(bytes: &[u8]) -> MachineConfig<'_> {
    devtree::parse(bytes).unwrap_or_else(|error| panic!("{error}"))
}

fn psci_cpus(mpidrs: impl Iterator<Item = u64>) -> Vec<CpuInfo> {
    mpidrs
        .map(|mpidr| CpuInfo {
            mpidr,
            enable: EnableMethod::Psci,
            cluster: 0,
        })
        .collect()
}

const VIRT_TIMER: TimerInfo = TimerInfo {
    virt_intid: 27,
    phys_intid: 30,
};
const VIRT_CONSOLE: UartInfo = UartInfo {
    kind: UartKind::Pl011,
    regs: PhysRange {
        base: 0x0900_0000,
        size: 0x1000,
    },
    clock_hz: Some(24_000_000),
    irq: Some(33),
};

#[test]
fn virt_gicv2_four_cpus() {
    let bytes = common::fixture("virt-gicv2-4cpu.dtb");
    let config = parse(&bytes);
    assert_eq!(config.model, "linux,dummy-virt");
    assert_eq!(config.memory.as_slice(), &[range(0x4000_0000, 512 * MIB)]);
    assert!(config.reserved.is_empty());
    assert_eq!(config.cpus.as_slice(), psci_cpus(0..4).as_slice());
    assert_eq!(config.psci, Some(PsciConduit::Hvc));
    assert_eq!(
        config.gic,
        GicInfo::V2 {
            dist: range(0x0800_0000, 0x1_0000),
            cpu: range(0x0801_0000, 0x1_0000)
        }
    );
    assert_eq!(config.timer, VIRT_TIMER);
    assert_eq!(config.console, Some(VIRT_CONSOLE));
    assert_eq!(config.bootargs, "loglevel=4 hz=100");
    assert_eq!(config.initrd, None);
    assert_eq!(
        config.cpu_index_of_mpidr(0x8000_0003),
        Some(3),
        "MPIDR bit 31 is ignored"
    );
    assert_eq!(config.cpu_index_of_mpidr(4), None);
}

#[test]
fn virt_gicv3_sixteen_cpus_with_initrd() {
    let bytes = common::fixture("virt-gicv3-16cpu-initrd.dtb");
    let config = parse(&bytes);
    assert_eq!(config.cpus.as_slice(), psci_cpus(0..16).as_slice());
    let mut redist = ArrayVec::new();
    redist.push(range(0x080a_0000, 0xf6_0000));
    assert_eq!(
        config.gic,
        GicInfo::V3 {
            dist: range(0x0800_0000, 0x1_0000),
            redist
        }
    );
    assert_eq!(config.memory.as_slice(), &[range(0x4000_0000, GIB)]);
    assert_eq!(config.initrd, Some(range(0x4800_0000, 5000)));
    assert_eq!(config.bootargs, "console=ttyAMA0");
    assert_eq!(config.timer, VIRT_TIMER);
    assert_eq!(config.console, Some(VIRT_CONSOLE));

    let mut usable: ArrayVec<PhysRange, 8> = ArrayVec::new();
    config.usable_memory(&mut usable).expect("fits");
    assert_eq!(
        usable.as_slice(),
        &[
            range(0x4000_0000, 0x800_0000),
            range(0x4800_2000, GIB - 0x800_2000)
        ],
        "the initrd's pages are left out"
    );
    let kernel = range(0x4020_0000, 0x12_3456);
    config
        .usable_memory_excluding(&[kernel], &mut usable)
        .expect("fits");
    assert_eq!(usable.first(), Some(&range(0x4000_0000, 0x20_0000)));
    assert_eq!(
        usable.get(1),
        Some(&range(0x4032_4000, 0x4800_0000 - 0x4032_4000))
    );
}

#[test]
fn virt_el2_uses_smc() {
    let bytes = common::fixture("virt-el2-gicv3-smc-2cpu.dtb");
    let config = parse(&bytes);
    assert_eq!(config.psci, Some(PsciConduit::Smc));
    assert_eq!(config.cpus.as_slice(), psci_cpus(0..2).as_slice());
    assert_eq!(config.memory.as_slice(), &[range(0x4000_0000, 256 * MIB)]);
    assert!(matches!(config.gic, GicInfo::V3 { .. }));
}

#[test]
fn virt_single_cpu_three_gib() {
    let bytes = common::fixture("virt-gicv2-1cpu-3g.dtb");
    let config = parse(&bytes);
    assert_eq!(config.memory.as_slice(), &[range(0x4000_0000, 3 * GIB)]);
    // QEMU gives a lone CPU no enable-method.
    assert_eq!(
        config.cpus.as_slice(),
        &[CpuInfo {
            mpidr: 0,
            enable: EnableMethod::Unspecified,
            cluster: 0,
        }]
    );
    assert_eq!(config.bootargs, "");
}

#[test]
fn virt_two_hundred_cpus_two_redistributor_regions() {
    let bytes = common::fixture("virt-gicv3-200cpu.dtb");
    let config = parse(&bytes);
    assert_eq!(config.cpus.len(), 200);
    // GICv3 virt puts 16 CPUs in a cluster: CPU n has Aff1 = n / 16, Aff0 = n % 16.
    assert_eq!(config.cpus[17].mpidr, 0x101);
    assert_eq!(config.cpus[199].mpidr, 0xc07);
    assert_eq!(config.cpu_index_of_mpidr(0xc07), Some(199));
    let GicInfo::V3 { redist, .. } = &config.gic else {
        panic!("GICv3 expected")
    };
    assert_eq!(
        redist.as_slice(),
        &[
            range(0x080a_0000, 0xf6_0000),
            range(0x40_0000_0000, 0x400_0000)
        ]
    );
}

/// The clusters of a tree's CPUs, in CPU order.
fn clusters(config: &MachineConfig<'_>) -> Vec<u32> {
    config.cpus.iter().map(|cpu| cpu.cluster).collect()
}

/// Every fixture without `clusters=` has a cpu-map of one socket with one cluster.
#[test]
fn one_cluster_without_clusters_option() {
    for name in [
        "virt-gicv2-4cpu.dtb",
        "virt-gicv3-16cpu-initrd.dtb",
        "virt-gicv3-200cpu.dtb",
        "virt-gicv2-1cpu-3g.dtb",
    ] {
        let bytes = common::fixture(name);
        let config = parse(&bytes);
        assert_eq!(config.cpu_map_error, None, "{name}");
        assert!(clusters(&config).iter().all(|&c| c == 0), "{name}");
        assert_eq!(config.cluster_count(), 1, "{name}");
    }
}

/// `-smp 8,clusters=2`: QEMU 10 writes socket0 { cluster0 { core0..3 } cluster1 { core0..3 } },
/// and lists the cores' phandles in the opposite order of the CPU nodes (cpu@0 is
/// 0x8008), so the clusters come out right only if each phandle is looked up.
#[test]
fn virt_eight_cpus_in_two_clusters() {
    let bytes = common::fixture("virt-gicv3-8cpu-2clusters.dtb");
    let config = parse(&bytes);
    assert_eq!(config.cpu_map_error, None);
    assert_eq!(config.cpus.len(), 8);
    assert_eq!(clusters(&config), [0, 0, 0, 0, 1, 1, 1, 1]);
    assert_eq!(config.cluster_count(), 2);
    // The MPIDRs do not say it: QEMU numbers the CPUs 0..7 in Aff0 either way.
    let mpidrs: Vec<_> = config.cpus.iter().map(|cpu| cpu.mpidr).collect();
    assert_eq!(mpidrs, (0..8).collect::<Vec<_>>());
}

/// `-smp 8,sockets=2,clusters=2,threads=2`: clusters numbered across sockets (socket1's
/// cluster0 is the third cluster node), and threads as the leaves.
#[test]
fn virt_clusters_in_two_sockets_with_threads() {
    let bytes = common::fixture("virt-gicv3-8cpu-2sockets-2clusters-smt2.dtb");
    let config = parse(&bytes);
    assert_eq!(config.cpu_map_error, None);
    assert_eq!(clusters(&config), [0, 0, 1, 1, 2, 2, 3, 3]);
    assert_eq!(config.cluster_count(), 4);
}

/// Checks everything the Raspberry Pi 4 tree says except memory.
fn check_rpi4(config: &MachineConfig<'_>) {
    assert_eq!(config.model, "Raspberry Pi 4 Model B");
    let release = [0xd8, 0xe0, 0xe8, 0xf0];
    let expected: Vec<_> = (0..4)
        .map(|cpu| CpuInfo {
            mpidr: cpu,
            enable: EnableMethod::SpinTable {
                release_addr: release[cpu as usize],
            },
            cluster: 0,
        })
        .collect();
    assert_eq!(config.cpus.as_slice(), expected.as_slice());
    assert_eq!(config.cluster_count(), 1, "the Pi 4 tree has no cpu-map");
    assert_eq!(config.cpu_map_error, None);
    assert_eq!(config.psci, None);
    assert_eq!(
        config.gic,
        GicInfo::V2 {
            dist: range(0xff84_1000, 0x1000),
            cpu: range(0xff84_2000, 0x2000)
        }
    );
    assert_eq!(
        config.timer,
        TimerInfo {
            virt_intid: 27,
            phys_intid: 30
        }
    );
    assert_eq!(
        config.console,
        Some(UartInfo {
            kind: UartKind::MiniUart,
            regs: range(0xfe21_5040, 0x40),
            clock_hz: None,
            irq: Some(125),
        })
    );
    assert_eq!(config.initrd, None);
}

/// The shipped tree leaves memory for the firmware to fill in: `memory@0` has `reg = <0 0 0>`.
#[test]
fn rpi4_shipped_tree_has_no_memory() {
    let bytes = match common::rpi4_dtb() {
        Ok(bytes) => bytes,
        Err(reason) => return eprintln!("skipped: {reason}"),
    };
    let error = devtree::parse(&bytes).expect_err("no memory");
    assert!(error.to_string().contains("no memory"), "{error}");

    let patched = patch_rpi4_memory(&bytes, 0x3c00_0000);
    let config = parse(&patched);
    check_rpi4(&config);
    assert_eq!(config.memory.as_slice(), &[range(0, 0x3c00_0000)]);
}

/// Replaces the shipped tree's empty `memory@0` `reg` with one region of `size` at 0.
fn patch_rpi4_memory(bytes: &[u8], size: u32) -> Vec<u8> {
    let name = b"memory@0\0";
    let node = bytes
        .windows(name.len())
        .position(|w| w == name)
        .expect("memory@0 node");
    // The node's `reg` is a 12-byte property: FDT_PROP, len 12, name offset, value.
    let prop_header = [0, 0, 0, 3, 0, 0, 0, 12];
    let prop = node
        + bytes[node..]
            .windows(8)
            .position(|w| w == prop_header)
            .expect("12-byte property");
    let value = prop + 12;
    assert_eq!(
        &bytes[value..value + 12],
        &[0; 12],
        "unexpected memory@0 reg"
    );
    let mut patched = bytes.to_vec();
    patched[value + 8..value + 12].copy_from_slice(&size.to_be_bytes());
    patched
}

#[test]
fn rpi4_as_qemu_hands_it_over() {
    let bytes = match common::rpi4_qemu_dtb() {
        Ok(bytes) => bytes,
        Err(reason) => return eprintln!("skipped: {reason}"),
    };
    let config = parse(&bytes);
    check_rpi4(&config);
    assert_eq!(config.memory.as_slice(), &[range(0, 960 * MIB)]);

    // The spin table lives in the first page, which /memreserve/ keeps out.
    assert!(
        config.reserved.iter().any(|r| r.contains(0xd8)),
        "{:?}",
        config.reserved
    );
    let mut usable: ArrayVec<PhysRange, 8> = ArrayVec::new();
    config.usable_memory(&mut usable).expect("fits");
    assert!(!usable.is_empty());
    for piece in &usable {
        assert!(
            config
                .memory
                .iter()
                .any(|m| m.base <= piece.base && piece.end() <= m.end())
        );
        assert!(
            config.reserved.iter().all(|r| !r.overlaps(piece)),
            "{piece:?}"
        );
        assert_eq!(piece.base % armach_kernel::mm::PAGE_SIZE, 0);
        assert_eq!(piece.size % armach_kernel::mm::PAGE_SIZE, 0);
    }
}

/// What kind of thing each field holds, without the values.
#[derive(Debug, PartialEq, Eq)]
struct Shape {
    model: bool,
    memory: bool,
    cpus: usize,
    cpus_startable: bool,
    gic_v2: bool,
    timer: TimerInfo,
    console: bool,
}

fn shape(config: &MachineConfig<'_>) -> Shape {
    Shape {
        model: !config.model.is_empty(),
        memory: !config.memory.is_empty(),
        cpus: config.cpus.len(),
        cpus_startable: config
            .cpus
            .iter()
            .all(|cpu| cpu.enable != EnableMethod::Unspecified),
        gic_v2: matches!(config.gic, GicInfo::V2 { .. }),
        timer: config.timer,
        console: config.console.is_some(),
    }
}

#[test]
fn virt_and_rpi4_fill_the_same_fields() {
    let bytes = match common::rpi4_qemu_dtb() {
        Ok(bytes) => bytes,
        Err(reason) => return eprintln!("skipped: {reason}"),
    };
    let virt_bytes = common::fixture("virt-gicv2-4cpu.dtb");
    let (rpi4, virt) = (parse(&bytes), parse(&virt_bytes));
    assert_eq!(shape(&rpi4), shape(&virt));
    // Where they differ, they differ as the boards do.
    assert!(virt.psci.is_some() && rpi4.psci.is_none());
    assert!(matches!(
        rpi4.cpus[1].enable,
        EnableMethod::SpinTable { .. }
    ));
    assert_eq!(virt.cpus[1].enable, EnableMethod::Psci);
}

#[test]
fn total_size_reads_the_header() {
    for (name, bytes) in common::all_fixtures() {
        assert_eq!(devtree::total_size(&bytes[..40]), Ok(bytes.len()), "{name}");
    }
    assert!(devtree::total_size(&[0; 39]).is_err());
    let mut huge = common::fixture("virt-gicv2-4cpu.dtb")[..40].to_vec();
    huge[4..8].copy_from_slice(&(17u32 << 20).to_be_bytes());
    assert!(
        devtree::total_size(&huge)
            .unwrap_err()
            .to_string()
            .contains("totalsize")
    );
}
