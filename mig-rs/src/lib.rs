//! mig-rs: a replacement for GNU MIG that reads Mach interface definitions (`.defs`) and
//! writes Rust: client stubs, a server trait with a demux function, and the small runtime they
//! share, all `no_std`, for GNU Mach's LP64 typed message format.
//!
//! The pipeline, one module per stage:
//!
//! ```text
//!   lexer -> preprocess -> parser (ast) -> routine (+ types) -> layout -> codegen
//! ```
//!
//! Use it from `build.rs` with [`Build`], or from the command line with the `mig-rs` binary
//! (see `README.md`). It is a host tool: nothing here runs in the kernel; what runs there is
//! the code it writes.

pub mod api;
pub mod ast;
pub mod codegen;
pub mod error;
pub mod layout;
pub mod lexer;
pub mod parser;
pub mod preprocess;
pub mod routine;
pub mod types;

pub use api::{
    Build, Options, layout_json, load, load_source, msgids, server_code, user_code,
    write_if_changed,
};
pub use codegen::CodegenOptions;
pub use error::{Error, Location, Result};
pub use routine::Subsystem;
