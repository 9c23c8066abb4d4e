//! `cargo xtask hostfuzz`: coverage-guided fuzzing of the host-side readers of hostile input
//! (the `fuzz/` crate's targets) with honggfuzz-rs, which works on the pinned stable
//! toolchain: `cargo hfuzz` builds a target with LLVM's sanitizer-coverage through `-C`
//! options only (no `-Z`, so no nightly) and runs the honggfuzz engine, built from the C
//! sources that ship in the crate, on it in persistent mode.
//!
//! This module installs the tool when missing, seeds each target's corpus from the
//! repository's own inputs, runs the targets one after another (one fuzzing process at a
//! time) and reports what honggfuzz found. It is not part of `cargo xtask test`: the
//! crashing inputs it finds become ordinary host tests of the crate that crashed.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::{Error, Result, USER_TARGET, proc, userland, workspace_root};

/// The fuzz targets, in the order they run.
pub const TARGETS: [&str; 5] = ["mig_defs", "kernel_demux", "devtree", "elf", "cpio"];

/// The honggfuzz-rs release `fuzz/Cargo.toml` pins (the engine `cargo hfuzz` builds comes
/// from the crate the target depends on, so the command and the crate must agree).
const HONGGFUZZ_VERSION: &str = "0.5.62";

/// Debian packages honggfuzz's engine links against (BFD for symbolising crashes,
/// libunwind for their stacks, liblzma which BFD needs).
const BUILD_PACKAGES: [&str; 3] = ["binutils-dev", "libunwind-dev", "liblzma-dev"];

/// Subsystems whose requests the `kernel_demux` target serves: (first id, routine count
/// bound). The kernel's interfaces at GNU Mach's bases, the round-trip fixture at 5000.
const DEMUX_SUBSYSTEMS: [(i32, i32); 5] =
    [(2000, 101), (2600, 50), (3000, 25), (3200, 24), (5000, 32)];

/// Size of a Mach message header in GNU Mach's 64-bit layout (the id is its last word).
const HEADER_LEN: usize = 32;

/// Runs `targets` (all when empty) for `seconds` each; fails if any target has a crash.
pub fn run(targets: &[String], seconds: u64) -> Result<u8> {
    let chosen: Vec<&str> = if targets.is_empty() {
        TARGETS.to_vec()
    } else {
        for t in targets {
            if !TARGETS.contains(&t.as_str()) {
                return Err(Error::new(format!(
                    "no fuzz target '{t}' (there are: {})",
                    TARGETS.join(", ")
                )));
            }
        }
        targets.iter().map(String::as_str).collect()
    };
    ensure_honggfuzz()?;
    let fuzz_dir = workspace_root().join("fuzz");
    let mut crashed = Vec::new();
    for target in chosen {
        let workspace = fuzz_dir.join("hfuzz_workspace").join(target);
        let input = workspace.join("input");
        std::fs::create_dir_all(&input)
            .map_err(|e| Error::io(format_args!("creating {}", input.display()), e))?;
        let seeded = seed(target, &input)?;
        println!(
            "xtask: fuzzing {target} for {seconds} s ({seeded} seed inputs added to {})",
            input.display()
        );
        let log_path = workspace.join("run.log");
        let log = std::fs::File::create(&log_path)
            .map_err(|e| Error::io(format_args!("creating {}", log_path.display()), e))?;
        let err_log = log
            .try_clone()
            .map_err(|e| Error::io("duplicating the log file", e))?;
        // One fuzzing thread: the machine's cores are shared.
        let mut run_args = format!("--run_time {seconds} --threads 1");
        let dict = fuzz_dir.join(format!("{target}.dict"));
        if dict.is_file() {
            run_args.push_str(&format!(" --dict {}", dict.display()));
        }
        let mut cmd = Command::new("cargo");
        cmd.args(["hfuzz", "run", target])
            .current_dir(&fuzz_dir)
            .env_remove("CARGO_TARGET_DIR")
            .env("HFUZZ_RUN_ARGS", &run_args)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err_log);
        println!(
            "xtask: $ HFUZZ_RUN_ARGS='{run_args}' {} (in fuzz/, output in {})",
            proc::display(&cmd),
            log_path.display()
        );
        let status = cmd
            .status()
            .map_err(|e| Error::io("cannot start `cargo hfuzz`", e))?;
        let text = std::fs::read_to_string(&log_path).unwrap_or_default();
        match summary(&text) {
            Some(line) => println!("xtask: {target}: {line}"),
            None => {
                return Err(Error::new(format!(
                    "`cargo hfuzz run {target}` ended ({status}) without a summary; see {}",
                    log_path.display()
                )));
            }
        }
        let crashes = crash_files(&workspace)?;
        for c in &crashes {
            println!("xtask: {target}: crash input {}", c.display());
        }
        if !crashes.is_empty() {
            crashed.push(target);
        }
    }
    if crashed.is_empty() {
        println!("xtask: hostfuzz: no crashes");
        Ok(0)
    } else {
        Err(Error::new(format!(
            "crashes in {}: turn each input into a host test of the crate that crashed, fix it, \
             then delete the file",
            crashed.join(", ")
        )))
    }
}

/// Installs `cargo hfuzz` and the engine's build dependencies when missing, saying so.
fn ensure_honggfuzz() -> Result<()> {
    let missing: Vec<&str> = BUILD_PACKAGES
        .into_iter()
        .filter(|p| {
            !proc::query_stdout("dpkg-query", ["-W", "-f=${Status}", p])
                .is_some_and(|s| s.contains("install ok installed"))
        })
        .collect();
    if !missing.is_empty() {
        println!(
            "xtask: honggfuzz's engine needs the Debian packages {}; installing them with apt-get",
            missing.join(" ")
        );
        proc::run_checked(
            Command::new("apt-get")
                .env("DEBIAN_FRONTEND", "noninteractive")
                .args(["install", "-y", "--no-install-recommends"])
                .args(&missing),
        )
        .map_err(|e| {
            Error::new(format!(
                "{e}; as root, run: apt-get update && apt-get install -y {}",
                missing.join(" ")
            ))
        })?;
    }
    let have = proc::query_stdout("cargo", ["hfuzz", "version"]);
    if have.is_some_and(|v| v.contains(HONGGFUZZ_VERSION)) {
        return Ok(());
    }
    println!(
        "xtask: installing honggfuzz-rs {HONGGFUZZ_VERSION} (`cargo install honggfuzz`): the \
         `cargo hfuzz` command, which builds the fuzz targets with coverage instrumentation \
         on stable Rust and runs the honggfuzz engine on them"
    );
    proc::run_checked(Command::new("cargo").args([
        "install",
        "honggfuzz",
        "--locked",
        "--version",
        HONGGFUZZ_VERSION,
    ]))
}

/// Adds the repository's own inputs for `target` to `dir`; returns how many were new.
fn seed(target: &str, dir: &Path) -> Result<usize> {
    let root = workspace_root();
    let mut seeds: Vec<(String, Vec<u8>)> = Vec::new();
    match target {
        "mig_defs" => {
            for folder in ["libmach/defs", "mig-rs/tests/defs"] {
                for path in files_under(&root.join(folder), "defs")? {
                    seeds.push((seed_name(&path), read(&path)?));
                }
            }
        }
        "devtree" => {
            for path in files_under(&root.join("kernel/tests/fixtures"), "dtb")? {
                seeds.push((seed_name(&path), read(&path)?));
            }
        }
        "kernel_demux" => {
            for (base, count) in DEMUX_SUBSYSTEMS {
                for id in base..base + count {
                    seeds.push((format!("request-{id}"), demux_seed(id)));
                }
            }
        }
        "elf" | "cpio" => {
            let programs = user_programs(&root)?;
            if target == "elf" {
                seeds.extend(programs);
            } else {
                let few: Vec<(String, Vec<u8>)> = programs.into_iter().take(3).collect();
                let archive = userland::cpio_newc_bytes(&few)
                    .map_err(|e| Error::io("writing a cpio archive in memory", e))?;
                seeds.push(("initrd.cpio".into(), archive));
            }
        }
        _ => {}
    }
    let mut added = 0;
    for (name, bytes) in seeds {
        let path = dir.join(format!("seed-{name}"));
        if !path.exists() {
            std::fs::write(&path, bytes)
                .map_err(|e| Error::io(format_args!("writing {}", path.display()), e))?;
            added += 1;
        }
    }
    Ok(added)
}

/// The test programs, built for the user target, each shrunk to a small seed.
fn user_programs(root: &Path) -> Result<Vec<(String, Vec<u8>)>> {
    crate::prereq::ensure_rust_targets()?;
    let programs = userland::build_user_programs(root).map_err(Error::new)?;
    let mut out = Vec::new();
    for (name, path) in programs {
        if let Some(small) = shrink_elf(&read(&path)?, SEGMENT_BYTES) {
            out.push((name, small));
        }
    }
    if out.is_empty() {
        return Err(Error::new(format!(
            "no {USER_TARGET} test program could be read as an ELF seed"
        )));
    }
    Ok(out)
}

/// How many file bytes of each segment a shrunk ELF keeps.
const SEGMENT_BYTES: u64 = 64;

/// A small ELF64 with the header and program headers of `elf` and at most `keep` file bytes
/// of each segment (file sizes and offsets adjusted, memory sizes kept), so that a real
/// program of megabytes seeds the fuzzer without making every input that large. `None` when
/// `elf` is not a little-endian ELF64 with its program headers in the file.
pub fn shrink_elf(elf: &[u8], keep: u64) -> Option<Vec<u8>> {
    let u16_at = |o: usize| Some(u16::from_le_bytes(elf.get(o..o + 2)?.try_into().ok()?));
    let u64_at = |o: usize| Some(u64::from_le_bytes(elf.get(o..o + 8)?.try_into().ok()?));
    if elf.get(..6)? != b"\x7fELF\x02\x01" {
        return None;
    }
    let phoff = usize::try_from(u64_at(32)?).ok()?;
    let phentsize = usize::from(u16_at(54)?);
    let phnum = usize::from(u16_at(56)?);
    if phentsize < 56 {
        return None;
    }
    let headers_end = phoff.checked_add(phentsize.checked_mul(phnum)?)?;
    let mut out = elf.get(..headers_end.max(64))?.to_vec();
    out[40..48].fill(0); // no section headers
    out[58..64].fill(0);
    for i in 0..phnum {
        let p = phoff + i * phentsize;
        let offset = usize::try_from(u64_at(p + 8)?).ok()?;
        let filesz = u64_at(p + 32)?;
        let take = filesz.min(keep) as usize;
        let data = elf.get(offset..offset.checked_add(take)?)?;
        let new_offset = out.len() as u64;
        out.extend_from_slice(data);
        out[p + 8..p + 16].copy_from_slice(&new_offset.to_le_bytes());
        out[p + 32..p + 40].copy_from_slice(&(take as u64).to_le_bytes());
    }
    Some(out)
}

/// A `kernel_demux` input: two bytes of reply-buffer size, then a simple request with
/// message id `id` and a few zero bytes of body.
pub fn demux_seed(id: i32) -> Vec<u8> {
    let body = 16;
    let mut m = vec![0u8; 2 + HEADER_LEN + body];
    m[..2].copy_from_slice(&4096u16.to_le_bytes());
    let request = &mut m[2..];
    request[4..8].copy_from_slice(&((HEADER_LEN + body) as u32).to_le_bytes());
    request[28..32].copy_from_slice(&id.to_le_bytes());
    m
}

/// The last `Summary ...` line honggfuzz printed, without its terminal escapes.
pub fn summary(log: &str) -> Option<String> {
    let line = log
        .lines()
        .rev()
        .find(|l| l.contains("Summary iterations:"))?;
    let start = line.find("Summary")?;
    Some(line[start..].trim().to_string())
}

/// Crash inputs honggfuzz saved in a target's workspace (files ending `.fuzz`).
fn crash_files(workspace: &Path) -> Result<Vec<PathBuf>> {
    let mut found = Vec::new();
    let entries = std::fs::read_dir(workspace)
        .map_err(|e| Error::io(format_args!("reading {}", workspace.display()), e))?;
    for entry in entries.flatten() {
        let path = entry.path();
        if path.extension().is_some_and(|e| e == "fuzz") {
            found.push(path);
        }
    }
    found.sort();
    Ok(found)
}

/// Files with extension `ext` anywhere under `dir`, sorted.
fn files_under(dir: &Path, ext: &str) -> Result<Vec<PathBuf>> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let entries = std::fs::read_dir(&d)
            .map_err(|e| Error::io(format_args!("reading {}", d.display()), e))?;
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == ext) {
                found.push(path);
            }
        }
    }
    found.sort();
    Ok(found)
}

fn seed_name(path: &Path) -> String {
    path.file_name()
        .map_or_else(String::new, |n| n.to_string_lossy().into_owned())
}

fn read(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| Error::io(format_args!("reading {}", path.display()), e))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An ELF64 header with `segments` program headers of (offset, filesz, memsz) right
    /// after it, followed by `tail` bytes.
    fn elf(segments: &[(u64, u64, u64)], tail: usize) -> Vec<u8> {
        let mut out = vec![0u8; 64 + 56 * segments.len() + tail];
        out[..6].copy_from_slice(b"\x7fELF\x02\x01");
        out[32..40].copy_from_slice(&64u64.to_le_bytes());
        out[40..48].copy_from_slice(&0x1234u64.to_le_bytes());
        out[54..56].copy_from_slice(&56u16.to_le_bytes());
        out[56..58].copy_from_slice(&(segments.len() as u16).to_le_bytes());
        for (i, (offset, filesz, memsz)) in segments.iter().enumerate() {
            let p = 64 + 56 * i;
            out[p..p + 4].copy_from_slice(&1u32.to_le_bytes());
            out[p + 8..p + 16].copy_from_slice(&offset.to_le_bytes());
            out[p + 32..p + 40].copy_from_slice(&filesz.to_le_bytes());
            out[p + 40..p + 48].copy_from_slice(&memsz.to_le_bytes());
        }
        out
    }

    #[test]
    fn shrunk_elf_keeps_headers_and_a_little_of_each_segment() {
        let mut big = elf(&[(0x100, 0x1000, 0x2000), (0x1100, 8, 8)], 0x1100);
        big[0x100] = 0xaa;
        big[0x1100] = 0xbb;
        let small = shrink_elf(&big, 64).expect("an ELF");
        assert_eq!(small.len(), 64 + 2 * 56 + 64 + 8);
        let field = |o: usize| u64::from_le_bytes(small[o..o + 8].try_into().unwrap());
        assert_eq!(field(40), 0, "no section headers");
        assert_eq!(
            (field(64 + 8), field(64 + 32), field(64 + 40)),
            (176, 64, 0x2000)
        );
        assert_eq!((field(120 + 8), field(120 + 32)), (240, 8));
        assert_eq!((small[176], small[240]), (0xaa, 0xbb));
        assert_eq!(shrink_elf(b"\x7fELF\x01\x01", 64), None);
        assert_eq!(shrink_elf(&big[..100], 64), None, "program headers cut");
    }

    #[test]
    fn demux_seeds_are_requests_of_their_own_size() {
        let m = demux_seed(3204);
        let size = u32::from_le_bytes(m[6..10].try_into().unwrap()) as usize;
        assert_eq!(size, m.len() - 2);
        assert_eq!(i32::from_le_bytes(m[30..34].try_into().unwrap()), 3204);
    }

    #[test]
    fn summary_line_is_found_without_escapes() {
        let log = "Sz:1 Tm:2\nMaximum run time reached\n\u{1b}[0mSummary iterations:83653 \
                   time:21 speed:3983 crashes_count:0\n\u{1b}[r";
        assert_eq!(
            summary(log).as_deref(),
            Some("Summary iterations:83653 time:21 speed:3983 crashes_count:0")
        );
        assert_eq!(summary("nothing"), None);
    }
}
