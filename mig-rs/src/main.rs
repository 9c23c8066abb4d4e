//! The `mig-rs` command: GNU MIG's job from the command line. Reads one `.defs` file and
//! writes any of: client stubs (`--user`), server code (`--server`), the routine list
//! (`--msgids`) and the message layouts (`--layout-json`).
//! An output named `-` goes to standard output. Errors print as `file:line:col: message` and
//! the exit status is 1.

use clap::Parser;
use mig_rs::{CodegenOptions, Error, Options};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Generate Rust from a Mach interface definition (.defs) file.
#[derive(Parser, Debug)]
#[command(name = "mig-rs", version)]
struct Cli {
    /// The .defs file to read.
    input: PathBuf,
    /// Write the client stubs here.
    #[arg(long, value_name = "FILE")]
    user: Option<PathBuf>,
    /// Write the server trait and demux function here.
    #[arg(long, value_name = "FILE")]
    server: Option<PathBuf>,
    /// Rust path of the runtime module in the generated code.
    #[arg(long, value_name = "PATH", default_value = "mach_abi::mig")]
    runtime_path: String,
    /// Add a directory to the #include search path.
    #[arg(short = 'I', value_name = "DIR")]
    include: Vec<PathBuf>,
    /// Define a macro (value 1 if none is given).
    #[arg(short = 'D', value_name = "NAME[=VALUE]")]
    define: Vec<String>,
    /// Write the routine list (GNU MIG's -list format) here.
    #[arg(long, value_name = "FILE")]
    msgids: Option<PathBuf>,
    /// Write the message layouts as JSON here.
    #[arg(long, value_name = "FILE")]
    layout_json: Option<PathBuf>,
}

fn write_output(path: &Path, text: &str) -> Result<(), Error> {
    if path.as_os_str() == "-" {
        print!("{text}");
        Ok(())
    } else {
        mig_rs::write_if_changed(path, text)
    }
}

fn run(cli: &Cli) -> Result<(), Error> {
    let options = Options {
        include_dirs: cli.include.clone(),
        defines: cli
            .define
            .iter()
            .map(|d| match d.split_once('=') {
                Some((n, v)) => (n.to_string(), v.to_string()),
                None => (d.clone(), "1".to_string()),
            })
            .collect(),
    };
    let sub = mig_rs::load(&cli.input, &options)?;
    let codegen = CodegenOptions {
        runtime_path: cli.runtime_path.clone(),
    };
    if let Some(path) = &cli.user {
        write_output(path, &mig_rs::user_code(&sub, &codegen)?)?;
    }
    if let Some(path) = &cli.server {
        write_output(path, &mig_rs::server_code(&sub, &codegen)?)?;
    }
    if let Some(path) = &cli.msgids {
        write_output(path, &mig_rs::msgids(&sub))?;
    }
    if let Some(path) = &cli.layout_json {
        write_output(path, &mig_rs::layout_json(&sub))?;
    }
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(&cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}
