//! Property tests: no input makes the device-tree layer panic. Random bytes, random bytes
//! behind a plausible header, and real trees (QEMU fixtures, the Pi 4 tree when cached)
//! with bits flipped, words overwritten, bytes inserted or deleted, or the end cut off.
//! Whatever `parse` returns is fine, as long as it returns; an `Ok` must also be usable.

mod common;

use armach_kernel::devtree::{self, MachineConfig, PhysRange};
use arrayvec::ArrayVec;
use proptest::prelude::*;
use std::sync::OnceLock;

/// Values that sit on the edges the parser checks (tokens, cell counts, sizes).
const INTERESTING: &[u32] = &[
    0,
    1,
    2,
    3,
    4,
    5,
    8,
    9,
    12,
    16,
    17,
    40,
    0x7fff_ffff,
    0x8000_0000,
    0xffff_fff0,
    u32::MAX,
];

/// The trees to mutate: every fixture, a synthetic tree with NOPs, the Pi 4 tree if cached.
fn corpus() -> &'static [Vec<u8>] {
    static CORPUS: OnceLock<Vec<Vec<u8>>> = OnceLock::new();
    CORPUS.get_or_init(|| {
        let mut trees: Vec<_> = common::all_fixtures()
            .into_iter()
            .map(|(_, bytes)| bytes)
            .collect();
        let layout = common::Layout {
            nops: true,
            reservations: vec![(0x4000_0000, 0x1000)],
        };
        trees.push(common::build(&common::base_tree(), &layout));
        match common::rpi4_qemu_dtb() {
            Ok(bytes) => trees.push(bytes),
            Err(reason) => eprintln!("Pi 4 tree not fuzzed: {reason}"),
        }
        trees
    })
}

/// Parses and, when that works, uses the result the way the kernel would.
fn exercise(bytes: &[u8]) {
    let _ = devtree::total_size(bytes);
    match devtree::parse(bytes) {
        Ok(config) => use_config(&config),
        Err(error) => {
            // The message must render, and say something.
            assert!(!error.to_string().is_empty());
        }
    }
}

fn use_config(config: &MachineConfig<'_>) {
    assert!(!config.memory.is_empty() && !config.cpus.is_empty());
    for cpu in &config.cpus {
        assert!(config.cpu_index_of_mpidr(cpu.mpidr).is_some());
    }
    let mut usable: ArrayVec<PhysRange, 64> = ArrayVec::new();
    let _ = config.usable_memory(&mut usable);
}

#[derive(Clone, Debug)]
enum Mutation {
    FlipBit { at: usize, bit: u8 },
    Word { at: usize, value: u32 },
    Insert { at: usize, bytes: Vec<u8> },
    Delete { at: usize, len: usize },
    Truncate { at: usize },
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let at = any::<usize>();
    prop_oneof![
        (at, 0u8..8).prop_map(|(at, bit)| Mutation::FlipBit { at, bit }),
        (at, prop::sample::select(INTERESTING))
            .prop_map(|(at, value)| Mutation::Word { at, value }),
        (at, any::<u32>()).prop_map(|(at, value)| Mutation::Word { at, value }),
        (at, prop::collection::vec(any::<u8>(), 1..9))
            .prop_map(|(at, bytes)| Mutation::Insert { at, bytes }),
        (at, 1usize..64).prop_map(|(at, len)| Mutation::Delete { at, len }),
        at.prop_map(|at| Mutation::Truncate { at }),
    ]
}

fn apply(bytes: &mut Vec<u8>, mutation: &Mutation) {
    if bytes.is_empty() {
        return;
    }
    match mutation {
        Mutation::FlipBit { at, bit } => {
            let at = at % bytes.len();
            bytes[at] ^= 1 << bit;
        }
        Mutation::Word { at, value } => {
            // Word-aligned, where tokens, lengths and header fields live.
            let at = (at % bytes.len()) & !3;
            let end = (at + 4).min(bytes.len());
            bytes[at..end].copy_from_slice(&value.to_be_bytes()[..end - at]);
        }
        Mutation::Insert { at, bytes: new } => {
            let at = at % (bytes.len() + 1);
            bytes.splice(at..at, new.iter().copied());
        }
        Mutation::Delete { at, len } => {
            let at = at % bytes.len();
            let end = (at + len).min(bytes.len());
            bytes.drain(at..end);
        }
        Mutation::Truncate { at } => bytes.truncate(at % bytes.len()),
    }
}

/// A header with the magic and plausible offsets, followed by random bytes.
fn plausible_blob() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(any::<u8>(), 0..512).prop_map(|body| {
        let total = 40 + body.len() as u32;
        let half = body.len() as u32 / 2;
        let header = [
            0xd00d_feed,
            total,
            56,
            56 + half,
            40,
            17,
            16,
            0,
            total.saturating_sub(56 + half),
            half,
        ];
        let mut blob: Vec<u8> = header.iter().flat_map(|v| v.to_be_bytes()).collect();
        blob.extend(body);
        blob
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        exercise(&bytes);
    }

    #[test]
    fn random_bodies_never_panic(blob in plausible_blob()) {
        exercise(&blob);
    }

    #[test]
    fn mutated_trees_never_panic(
        pick in any::<usize>(),
        mutations in prop::collection::vec(mutation(), 1..6),
    ) {
        let trees = corpus();
        let mut bytes = trees[pick % trees.len()].clone();
        for mutation in &mutations {
            apply(&mut bytes, mutation);
        }
        exercise(&bytes);
    }
}

/// Every single-word overwrite of the structure block's first 2 KiB of a small tree with
/// each interesting value: the systematic counterpart of the random mutations.
#[test]
fn every_word_of_a_small_tree_overwritten() {
    let layout = common::Layout {
        nops: true,
        ..common::Layout::default()
    };
    let blob = common::build(&common::base_tree(), &layout);
    for at in (0..blob.len().min(2048)).step_by(4) {
        for &value in INTERESTING {
            let mut bytes = blob.clone();
            bytes[at..at + 4].copy_from_slice(&value.to_be_bytes());
            exercise(&bytes);
        }
    }
}
