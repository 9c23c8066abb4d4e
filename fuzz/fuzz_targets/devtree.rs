//! Fuzz target: arbitrary bytes as a flattened device tree into the kernel's validating
//! reader (`armach_kernel::devtree`). The contract: no panic, and what it accepts keeps the
//! promises `MachineConfig` documents (memory never empty and never overlapping, the
//! usable memory page-aligned and inside memory).

use armach_kernel::devtree::{self, PhysRange};
use arrayvec::ArrayVec;
use honggfuzz::fuzz;

const PAGE: u64 = 4096;

fn main() {
    loop {
        fuzz!(|data: &[u8]| { check(data) });
    }
}

fn check(data: &[u8]) {
    let _ = devtree::total_size(data);
    let _ = devtree::console_only(data);
    let config = match devtree::parse(data) {
        Ok(config) => config,
        Err(e) => {
            let _ = format!("{e}");
            return;
        }
    };
    assert!(!config.memory.is_empty(), "accepted a tree without memory");
    for (i, a) in config.memory.iter().enumerate() {
        for b in &config.memory[..i] {
            assert!(!a.overlaps(b), "overlapping memory {a:?} {b:?}");
        }
    }
    let _ = config.cluster_count();
    for cpu in &config.cpus {
        assert!(config.cpu_index_of_mpidr(cpu.mpidr).is_some());
    }
    if let Some(e) = &config.cpu_map_error {
        let _ = format!("{e}");
    }
    let mut usable: ArrayVec<PhysRange, 64> = ArrayVec::new();
    if config.usable_memory(&mut usable).is_ok() {
        for r in &usable {
            assert!(r.base % PAGE == 0 && r.size % PAGE == 0, "unaligned {r:?}");
            assert!(
                config
                    .memory
                    .iter()
                    .any(|m| m.base <= r.base && r.end() <= m.end()),
                "usable {r:?} outside memory"
            );
        }
    }
}
