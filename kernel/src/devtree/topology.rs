//! Which cluster each CPU is in, from `/cpus/cpu-map` (Linux's binding
//! `Documentation/devicetree/bindings/cpu/cpu-topology.txt`; QEMU `virt` writes one for
//! every `-smp`, with as many `clusterN` nodes as `-smp ...,clusters=C` asks for).
//!
//! The map nests `socketN` > `clusterN` (clusters may nest) > `coreN` > `threadN`; a core
//! without threads, or a thread, names its CPU with `cpu = <&phandle>`. A CPU's cluster is
//! the index of its innermost cluster node, counting cluster nodes in document order across
//! the whole map from 0 (so indices of clusters without an enabled CPU are skipped, not
//! reused). Sockets and cores are not recorded: nothing uses them yet.
//!
//! This is only a hint for the scheduler, so [`assign_clusters`] reports a malformed map as
//! an error for the caller to show and leaves every CPU in cluster 0; it does not fail the
//! boot. What a CPU *is* stays `machine.rs`'s business.

use super::blob::{Blob, Chain, be_u32};
use super::error::{DtError, DtErrorKind};
use super::props::has_device_type;
use super::{CpuInfo, MAX_CPUS};
use core::ops::ControlFlow;

/// What a node of the map is, by its name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Map,
    Socket,
    Cluster,
    Core,
    Thread,
}

impl Kind {
    /// The kind a map node's name gives (`cluster0`, `core12`: the word and a number).
    fn of(name: &str) -> Option<Self> {
        let base = name.split('@').next().unwrap_or(name);
        [
            ("socket", Self::Socket),
            ("cluster", Self::Cluster),
            ("core", Self::Core),
            ("thread", Self::Thread),
        ]
        .into_iter()
        .find_map(|(word, kind)| {
            let number = base.strip_prefix(word)?;
            (!number.is_empty() && number.bytes().all(|b| b.is_ascii_digit())).then_some(kind)
        })
    }

    /// Whether a node of this kind may be a child of one of kind `parent`.
    fn may_be_under(self, parent: Kind) -> bool {
        matches!(
            (parent, self),
            (Kind::Map, Kind::Socket | Kind::Cluster)
                | (Kind::Socket | Kind::Cluster, Kind::Cluster)
                | (Kind::Cluster, Kind::Core)
                | (Kind::Core, Kind::Thread)
        )
    }
}

/// Sets each CPU's `cluster` from `/cpus/cpu-map`. `phandles[i]` is the `phandle` of
/// `cpus[i]`'s node (0 when it has none). Without a map every CPU stays in cluster 0, and
/// so does a CPU the map leaves out. On a malformed map every CPU is put back in cluster 0
/// and the error (with the node and property) is returned.
pub(crate) fn assign_clusters(
    blob: &Blob<'_>,
    cpus: &mut [CpuInfo],
    phandles: &[u32],
) -> Result<(), DtError> {
    for cpu in cpus.iter_mut() {
        cpu.cluster = 0;
    }
    let result = read_map(blob, cpus, phandles);
    if result.is_err() {
        for cpu in cpus.iter_mut() {
            cpu.cluster = 0;
        }
    }
    result
}

fn read_map(blob: &Blob<'_>, cpus: &mut [CpuInfo], phandles: &[u32]) -> Result<(), DtError> {
    let Some(map) = blob.find_path("/cpus/cpu-map") else {
        return Ok(());
    };
    let map_depth = map.nodes().len();
    // Indexed by chain length: the kind of the node at each depth of the current path, and
    // the index of the innermost cluster at or above it.
    let mut kinds = [Kind::Map; super::blob::MAX_DEPTH + 1];
    let mut clusters = [0u32; super::blob::MAX_DEPTH + 1];
    let mut next_cluster = 0u32;
    let mut placed = [0u64; MAX_CPUS.div_ceil(64)];
    let failure = blob.walk(|chain| {
        let depth = chain.nodes().len();
        if depth <= map_depth || chain.nodes().get(..map_depth) != Some(map.nodes()) {
            return ControlFlow::Continue(());
        }
        let node = chain.node();
        let parent = kinds.get(depth - 1).copied().unwrap_or(Kind::Map);
        let Some(kind) = Kind::of(node.name) else {
            return ControlFlow::Break(chain.error(DtErrorKind::Invalid(
                "cpu-map nodes must be named socketN, clusterN, coreN or threadN",
            )));
        };
        if !kind.may_be_under(parent) {
            return ControlFlow::Break(chain.error(DtErrorKind::Invalid(
                "misplaced: cpu-map nests socket > cluster (> cluster) > core > thread",
            )));
        }
        let (Some(kind_slot), Some(cluster_slot)) = (kinds.get_mut(depth), clusters.get(depth - 1))
        else {
            return ControlFlow::Continue(()); // Deeper than the blob check allows.
        };
        *kind_slot = kind;
        let mut cluster = *cluster_slot;
        if kind == Kind::Cluster {
            cluster = next_cluster;
            next_cluster = next_cluster.saturating_add(1);
        }
        if let Some(slot) = clusters.get_mut(depth) {
            *slot = cluster;
        }
        let leaf = match kind {
            Kind::Thread => true,
            // A core is a leaf unless it has threads (which then carry the `cpu`s).
            Kind::Core => !blob
                .children(node)
                .any(|child| Kind::of(child.name) == Some(Kind::Thread)),
            _ => false,
        };
        if !leaf {
            return ControlFlow::Continue(());
        }
        match place_leaf(blob, chain, cpus, phandles, &mut placed, cluster) {
            Ok(()) => ControlFlow::Continue(()),
            Err(error) => ControlFlow::Break(error),
        }
    });
    match failure {
        Some(error) => Err(error),
        None => Ok(()),
    }
}

/// Puts the CPU a leaf's `cpu` names into `cluster`; a disabled CPU is left alone.
fn place_leaf(
    blob: &Blob<'_>,
    leaf: &Chain<'_>,
    cpus: &mut [CpuInfo],
    phandles: &[u32],
    placed: &mut [u64],
    cluster: u32,
) -> Result<(), DtError> {
    let value = blob
        .property(leaf.node(), "cpu")
        .ok_or_else(|| leaf.property_error("cpu", DtErrorKind::MissingProperty))?;
    let phandle = match (value.len(), be_u32(value, 0)) {
        (4, Some(phandle)) => phandle,
        (len, _) => {
            return Err(leaf.property_error(
                "cpu",
                DtErrorKind::BadLength {
                    len,
                    expected: "4 bytes (a phandle)",
                },
            ));
        }
    };
    // 0 marks "no phandle" in `phandles`, and the spec never gives it to a node.
    let index = (phandle != 0)
        .then(|| phandles.iter().position(|&p| p == phandle))
        .flatten();
    let Some(index) = index else {
        return match blob.find_phandle(phandle) {
            None => Err(leaf.property_error("cpu", DtErrorKind::DanglingPhandle(phandle))),
            Some(target) if is_cpu_node(blob, &target) => Ok(()), // Disabled: not in `cpus`.
            Some(_) => Err(leaf.property_error(
                "cpu",
                DtErrorKind::Invalid("names a node that is not a CPU under /cpus"),
            )),
        };
    };
    let (word, bit) = (index / 64, 1u64 << (index % 64));
    match (placed.get_mut(word), cpus.get_mut(index)) {
        (Some(bits), _) if *bits & bit != 0 => Err(leaf.property_error(
            "cpu",
            DtErrorKind::Invalid("names a CPU that the map already placed"),
        )),
        (Some(bits), Some(cpu)) => {
            *bits |= bit;
            cpu.cluster = cluster;
            Ok(())
        }
        _ => Ok(()),
    }
}

/// Whether `chain` is a CPU node: a child of `/cpus` with `device_type = "cpu"`.
fn is_cpu_node(blob: &Blob<'_>, chain: &Chain<'_>) -> bool {
    let nodes = chain.nodes();
    nodes.len() == 3
        && nodes.get(1).is_some_and(|cpus| cpus.base_name() == "cpus")
        && has_device_type(blob, chain.node(), "cpu")
}

#[cfg(test)]
mod tests {
    use super::Kind;

    #[test]
    fn kinds_by_name() {
        assert_eq!(Kind::of("cluster0"), Some(Kind::Cluster));
        assert_eq!(Kind::of("core12"), Some(Kind::Core));
        assert_eq!(Kind::of("thread1"), Some(Kind::Thread));
        assert_eq!(Kind::of("socket3"), Some(Kind::Socket));
        assert_eq!(Kind::of("cluster"), None);
        assert_eq!(Kind::of("corex"), None);
        assert_eq!(Kind::of("cpu0"), None);
        assert!(Kind::Cluster.may_be_under(Kind::Cluster));
        assert!(Kind::Core.may_be_under(Kind::Cluster));
        assert!(!Kind::Core.may_be_under(Kind::Socket));
        assert!(!Kind::Socket.may_be_under(Kind::Cluster));
        assert!(!Kind::Thread.may_be_under(Kind::Cluster));
    }
}
