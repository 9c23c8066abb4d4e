//! `--init FILE [--init-args "..."]` on `run` and `test`: boot any static AArch64 ELF
//! program, built by any toolchain, as the first task, started as GNU Mach starts its
//! bootstrap module. The program is packed alone into a RAM disk under its file name and
//! named by `init=`; the words of `--init-args` follow a lone `--` on the kernel command
//! line and reach the program as `argv[3..]` (after its name and the host-privileged and
//! device port names the kernel puts in `argv[1]` and `argv[2]`).

use std::path::{Path, PathBuf};

use object::{Architecture, BinaryFormat, Object, ObjectKind};

use crate::{Error, Result, target_dir};

/// A foreign program ready to boot: its RAM disk and the name `init=` gives it.
#[derive(Clone, Debug, Default)]
pub struct Foreign {
    pub initrd: PathBuf,
    pub name: String,
    /// Words for the program after the kernel's (`--init-args`).
    pub args: String,
}

/// Why `data` is not a program the kernel can start, if it is not.
pub fn check_elf(data: &[u8]) -> std::result::Result<(), String> {
    let file = object::File::parse(data).map_err(|e| format!("not an ELF file ({e})"))?;
    if file.format() != BinaryFormat::Elf || !file.is_64() {
        return Err("not a 64-bit ELF file".to_owned());
    }
    if file.architecture() != Architecture::Aarch64 {
        return Err(format!("built for {:?}, not AArch64", file.architecture()));
    }
    if file.kind() != ObjectKind::Executable {
        return Err(format!(
            "a {:?} ELF file, not a static executable (ET_EXEC)",
            file.kind()
        ));
    }
    Ok(())
}

/// The RAM-disk name of a program file: its file name, with anything but letters, digits,
/// `-`, `_` and `.` replaced by `_` (the name goes on the kernel command line).
pub fn program_name(path: &Path) -> String {
    let name: String = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    if name.is_empty() {
        "init".to_owned()
    } else {
        name
    }
}

/// The kernel command line for the program: `init=NAME`, the caller's own words, and the
/// program's after `--`.
pub fn bootargs(name: &str, extra: &str, args: &str) -> String {
    let mut line = format!("init={name}");
    if !extra.trim().is_empty() {
        line.push(' ');
        line.push_str(extra.trim());
    }
    if !args.trim().is_empty() {
        line.push_str(" -- ");
        line.push_str(args.trim());
    }
    line
}

/// Check `file` and pack it alone into `target/initrd-foreign.cpio`.
pub fn prepare(file: &Path, args: Option<&str>) -> Result<Foreign> {
    let data = std::fs::read(file)
        .map_err(|e| Error::io(format_args!("reading {}", file.display()), e))?;
    check_elf(&data).map_err(|e| Error::new(format!("{}: {e}", file.display())))?;
    let name = program_name(file);
    let initrd = target_dir().join("initrd-foreign.cpio");
    if let Some(dir) = initrd.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|e| Error::io(format_args!("creating {}", dir.display()), e))?;
    }
    crate::userland::write_cpio_newc(&[(name.clone(), data)], &initrd)
        .map_err(|e| Error::io(format_args!("writing {}", initrd.display()), e))?;
    println!(
        "xtask: {} -> {} as init program `{name}`",
        file.display(),
        initrd.display()
    );
    Ok(Foreign {
        initrd,
        name,
        args: args.unwrap_or("").to_owned(),
    })
}

/// The cross compiler for the C program of `tests/foreign` (Debian's
/// `gcc-aarch64-linux-gnu`; only its compiler and linker are used, no C library).
pub const CROSS_GCC: &str = "aarch64-linux-gnu-gcc";

/// Build `tests/foreign/contract.c` with GCC into `target/foreign/contract` (installing the
/// cross compiler first if it is missing) and prepare it as `--init FILE --init-args
/// "alpha beta"` would: the words are what the program checks for.
pub fn build_contract() -> Result<Foreign> {
    crate::prereq::ensure_cross_gcc()?;
    let source = crate::workspace_root().join("tests/foreign/contract.c");
    let dir = target_dir().join("foreign");
    std::fs::create_dir_all(&dir)
        .map_err(|e| Error::io(format_args!("creating {}", dir.display()), e))?;
    let out = dir.join("contract");
    crate::proc::run_checked(
        std::process::Command::new(CROSS_GCC)
            .args([
                "-static",
                "-nostdlib",
                "-ffreestanding",
                "-fno-pic",
                "-no-pie",
                "-O2",
                "-Wall",
                "-Wextra",
                "-Werror",
                "-o",
            ])
            .arg(&out)
            .arg(&source),
    )?;
    let mut f = prepare(&out, Some("alpha beta"))?;
    // Its own RAM disk, so that a `--init` run and the suite do not share one.
    let initrd = dir.join("contract.cpio");
    std::fs::rename(&f.initrd, &initrd)
        .map_err(|e| Error::io(format_args!("writing {}", initrd.display()), e))?;
    f.initrd = initrd;
    Ok(f)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_command_lines() {
        assert_eq!(
            program_name(Path::new("/x/test-mach_port")),
            "test-mach_port"
        );
        assert_eq!(program_name(Path::new("a b=c")), "a_b_c");
        assert_eq!(program_name(Path::new("/")), "init");
        assert_eq!(bootargs("t", "", ""), "init=t");
        assert_eq!(bootargs("t", " hz=50 ", "a b"), "init=t hz=50 -- a b");
    }

    #[test]
    fn refuses_what_is_not_a_static_aarch64_program() {
        assert!(check_elf(b"#!/bin/sh\n").is_err());
        let aarch64 = crate::kernel::tests::synthetic_elf(&[(0x40_0000, b"\0\0\0\0", 4)]);
        assert_eq!(check_elf(&aarch64), Ok(()));
        let mut x86 = aarch64.clone();
        x86[18] = 62; // e_machine EM_X86_64
        assert!(check_elf(&x86).unwrap_err().contains("not AArch64"));
        let mut shared = aarch64;
        shared[16] = 3; // e_type ET_DYN
        assert!(check_elf(&shared).is_err());
    }
}
