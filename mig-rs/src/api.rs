//! The library's entry points: load a `.defs` file, generate code or listings from it, and
//! the [`Build`] helper for `build.rs`. The stages themselves live in their own modules.

use crate::codegen::CodegenOptions;
use crate::error::{Error, Location, Result};
use crate::routine::Subsystem;
use crate::{codegen, layout, parser, preprocess, routine};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Input options: `-I` directories and `-D` macros.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// Directories searched by `#include`.
    pub include_dirs: Vec<PathBuf>,
    /// Macros defined on the command line, `(name, value)`; `-D NAME` means value `1`.
    pub defines: Vec<(String, String)>,
}

impl Options {
    fn preprocess_config(&self) -> preprocess::Config {
        preprocess::Config {
            include_dirs: self.include_dirs.clone(),
            defines: self.defines.clone(),
        }
    }
}

/// Reads, preprocesses, parses and checks the `.defs` file at `path`.
pub fn load(path: &Path, options: &Options) -> Result<Subsystem> {
    let out = preprocess::preprocess_file(path, &options.preprocess_config())?;
    let file: Arc<str> = Arc::from(path.display().to_string());
    analyse(out, file)
}

/// Parses and checks preprocessed `out` of `file`; an error without a place is put at the
/// start of the file.
fn analyse(out: preprocess::Output, file: Arc<str>) -> Result<Subsystem> {
    let statements = parser::parse(&out.tokens, &file)?;
    routine::analyse(&statements, out.files).map_err(|e| match e.location {
        Some(_) => e,
        None => Error::at(
            &Location {
                file,
                line: 1,
                col: 1,
            },
            e.message,
        ),
    })
}

/// Like [`load`] for text held in memory and called `name` (includes still come from disk).
pub fn load_source(name: &str, source: &str, options: &Options) -> Result<Subsystem> {
    let out = preprocess::preprocess_source(name, source, &options.preprocess_config())?;
    let file: Arc<str> = Arc::from(name);
    analyse(out, file)
}

/// The user-side (client stub) Rust code of `sub`.
pub fn user_code(sub: &Subsystem, options: &CodegenOptions) -> Result<String> {
    codegen::user_code(sub, options)
}

/// The server-side (trait and demux) Rust code of `sub`.
pub fn server_code(sub: &Subsystem, options: &CodegenOptions) -> Result<String> {
    codegen::server_code(sub, options)
}

/// The routine list in GNU MIG's `-list` format.
pub fn msgids(sub: &Subsystem) -> String {
    layout::msgids(sub)
}

/// The message layouts as JSON (format in `README.md`).
pub fn layout_json(sub: &Subsystem) -> String {
    layout::layout_json(sub)
}

/// What a [`Build`] generates from one `.defs` file.
#[derive(Clone, Debug)]
enum Job {
    User(PathBuf, String),
    Server(PathBuf, String),
}

/// Code generation from `build.rs`: writes the requested files into `OUT_DIR` (or another
/// directory) and tells Cargo to rerun when any file read changes.
///
/// ```no_run
/// mig_rs::Build::new()
///     .include_dir("../libmach/defs")
///     .user("../libmach/defs/mach/mach_host.defs", "mach_host_user.rs")
///     .run()
///     .unwrap_or_else(|e| panic!("{e}"));
/// ```
#[derive(Clone, Debug, Default)]
pub struct Build {
    options: Options,
    codegen: CodegenOptions,
    out_dir: Option<PathBuf>,
    jobs: Vec<Job>,
    quiet: bool,
}

impl Build {
    /// An empty build.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds an `#include` search directory.
    pub fn include_dir(mut self, dir: impl AsRef<Path>) -> Self {
        self.options.include_dirs.push(dir.as_ref().to_path_buf());
        self
    }

    /// Defines a macro.
    pub fn define(mut self, name: &str, value: &str) -> Self {
        self.options
            .defines
            .push((name.to_string(), value.to_string()));
        self
    }

    /// Sets the Rust path of the runtime module (default `mach_abi::mig`).
    pub fn runtime_path(mut self, path: &str) -> Self {
        self.codegen.runtime_path = path.to_string();
        self
    }

    /// Writes into `dir` instead of `$OUT_DIR`.
    pub fn out_dir(mut self, dir: impl AsRef<Path>) -> Self {
        self.out_dir = Some(dir.as_ref().to_path_buf());
        self
    }

    /// Does not print `cargo:rerun-if-changed` lines (for use outside build scripts).
    pub fn quiet(mut self) -> Self {
        self.quiet = true;
        self
    }

    /// Generates the client stubs of `defs` into `file`.
    pub fn user(mut self, defs: impl AsRef<Path>, file: &str) -> Self {
        self.jobs
            .push(Job::User(defs.as_ref().to_path_buf(), file.to_string()));
        self
    }

    /// Generates the server trait and demux of `defs` into `file`.
    pub fn server(mut self, defs: impl AsRef<Path>, file: &str) -> Self {
        self.jobs
            .push(Job::Server(defs.as_ref().to_path_buf(), file.to_string()));
        self
    }

    /// Runs every job; returns the files written.
    pub fn run(&self) -> Result<Vec<PathBuf>> {
        let out_dir = match &self.out_dir {
            Some(d) => d.clone(),
            None => std::env::var_os("OUT_DIR")
                .map(PathBuf::from)
                .ok_or_else(|| Error::plain("OUT_DIR is not set (not in a build script?)"))?,
        };
        let mut written = Vec::new();
        for job in &self.jobs {
            let (text, file) = match job {
                Job::User(defs, file) | Job::Server(defs, file) => {
                    let sub = load(defs, &self.options)?;
                    if !self.quiet {
                        for f in &sub.files {
                            println!("cargo:rerun-if-changed={}", f.display());
                        }
                    }
                    let text = if matches!(job, Job::User(..)) {
                        user_code(&sub, &self.codegen)?
                    } else {
                        server_code(&sub, &self.codegen)?
                    };
                    (text, file)
                }
            };
            let path = out_dir.join(file);
            write_if_changed(&path, &text)?;
            written.push(path);
        }
        Ok(written)
    }
}

/// Writes `text` to `path` unless it already holds exactly that (so builds stay incremental).
pub fn write_if_changed(path: &Path, text: &str) -> Result<()> {
    if std::fs::read_to_string(path).is_ok_and(|old| old == text) {
        return Ok(());
    }
    std::fs::write(path, text)
        .map_err(|e| Error::plain(format!("cannot write '{}': {e}", path.display())))
}
