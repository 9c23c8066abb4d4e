//! Fuzz target: arbitrary bytes as the initial RAM disk into the kernel's cpio `newc`
//! reader (`armach_kernel::kern::cpio`). The contract: no panic, the walk ends, and a file
//! found by name is the one the walk gives under that name.

use armach_kernel::kern::cpio;
use honggfuzz::fuzz;

fn main() {
    loop {
        fuzz!(|data: &[u8]| { check(data) });
    }
}

fn check(data: &[u8]) {
    let mut first = None;
    // Every entry takes at least a header's bytes, so the walk is bounded by the length.
    for (i, entry) in cpio::entries(data).enumerate() {
        assert!(i <= data.len() / 110, "the walk does not end");
        match entry {
            Ok(e) => {
                if first.is_none() {
                    first = Some(e);
                }
            }
            Err(e) => {
                let _ = format!("{e}");
            }
        }
    }
    if let Some(e) = first {
        assert_eq!(cpio::find(data, e.name), Some(e));
    }
}
