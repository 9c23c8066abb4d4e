//! Fuzz target: arbitrary text as a `.defs` file through the whole of mig-rs (preprocessor,
//! lexer, parser, semantic checks, then every generator). The contract checked: no panic,
//! and every error names a place (`file:line:col`). `#include` searches libmach's
//! interfaces, so the fuzzer can reach the real types through a short include line.

use honggfuzz::fuzz;
use mig_rs::{CodegenOptions, Options};
use std::path::PathBuf;

fn main() {
    let options = Options {
        include_dirs: vec![PathBuf::from(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../libmach/defs"
        ))],
        defines: Vec::new(),
    };
    loop {
        fuzz!(|data: &[u8]| {
            let Ok(text) = std::str::from_utf8(data) else {
                return;
            };
            check(text, &options);
        });
    }
}

fn check(text: &str, options: &Options) {
    match mig_rs::load_source("fuzz.defs", text, options) {
        Ok(sub) => {
            let codegen = CodegenOptions::default();
            for generated in [
                mig_rs::user_code(&sub, &codegen),
                mig_rs::server_code(&sub, &codegen),
            ] {
                if let Err(e) = generated {
                    assert_placed(&e);
                }
            }
            let _ = mig_rs::msgids(&sub);
            let _ = mig_rs::layout_json(&sub);
        }
        Err(e) => assert_placed(&e),
    }
}

/// An error about the input must say where it is, with 1-based line and column.
fn assert_placed(e: &mig_rs::Error) {
    let place = e
        .location
        .as_ref()
        .unwrap_or_else(|| panic!("error without a place: {e}"));
    assert!(place.line >= 1 && place.col >= 1, "bad place in: {e}");
}
