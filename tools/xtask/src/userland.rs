//! User programs and the initial RAM disk: builds the test programs of `tests/` (package
//! `armach-tests`) and the servers of `servers/` ([`SERVERS`]) for the user target and packs
//! the ELF files, with the servers' configuration files (`servers/*/conf/*.conf`), into a
//! cpio `newc` archive, the format the kernel reads its programs from (QEMU `-initrd`, the
//! Pi's `initramfs`). Not for booting ([`crate::qemu`]) or for the kernel's build
//! ([`crate::kernel`]).
//!
//! Use:
//!
//! ```text
//! let programs = userland::build_user_programs(&workspace_root())?;   // [(name, ELF path)]
//! let entries = programs.iter()
//!     .map(|(name, path)| Ok((name.clone(), std::fs::read(path)?)))
//!     .collect::<std::io::Result<Vec<_>>>()?;
//! userland::write_cpio_newc(&entries, &out)?;   // then QEMU -initrd out, bootarg init=NAME
//! ```
//!
//! or [`build_initrd`], which does both. Archive member names are the bare program names
//! (`msh`, `hello`, `threads`, …): the kernel finds `init=NAME` by that name.
//!
//! The module needs only `std`; its errors are plain `String`s naming what failed.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The target user programs are built for (FP/SIMD allowed at EL0).
const TARGET: &str = "aarch64-unknown-none";
/// The program the archive starts with (what `cargo xtask run` without `init=` boots):
/// the shell.
pub const FIRST_PROGRAM: &str = "bootstrap";
/// The package holding the test programs, one binary per file in `tests/src/bin/`.
const TESTS_PACKAGE: &str = "armach-tests";
/// The programs of `servers/`: (package, program) for each, built and put in the RAM disk
/// beside the test programs (they are not test programs: the user-mode suite does not run
/// them by itself).
pub const SERVERS: &[(&str, &str)] = &[("armach-bootstrap", "bootstrap"), ("armach-msh", "msh")];
/// Folders whose `*.conf` files go into the RAM disk under their file names.
const CONF_DIRS: &[&str] = &["servers/bootstrap/conf"];

/// Names of the test programs: the `.rs` files in `tests/src/bin/`, sorted.
pub fn test_program_names(root: &Path) -> Result<Vec<String>, String> {
    let dir = root.join("tests/src/bin");
    let entries = std::fs::read_dir(&dir).map_err(|e| format!("reading {}: {e}", dir.display()))?;
    let mut names = Vec::new();
    for entry in entries {
        let path = entry
            .map_err(|e| format!("reading {}: {e}", dir.display()))?
            .path();
        if path.extension().is_some_and(|ext| ext == "rs")
            && let Some(stem) = path.file_stem().and_then(|s| s.to_str())
        {
            names.push(stem.to_owned());
        }
    }
    names.sort();
    Ok(names)
}

/// Builds every test program and server (`cargo build -p armach-tests -p armach-bootstrap -p armach-msh
/// --release --target aarch64-unknown-none` in `root`) and returns `(name, ELF path)` for
/// each file in `tests/src/bin/`, sorted by name, then each of [`SERVERS`]. The paths come
/// from cargo's own report of the executables it wrote, so any target directory works.
pub fn build_user_programs(root: &Path) -> Result<Vec<(String, PathBuf)>, String> {
    let mut names = test_program_names(root)?;
    names.extend(SERVERS.iter().map(|(_, program)| (*program).to_owned()));
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut args = vec!["build", "-p", TESTS_PACKAGE];
    for (package, _) in SERVERS {
        args.extend(["-p", package]);
    }
    args.extend([
        "--release",
        "--target",
        TARGET,
        "--message-format=json-render-diagnostics",
    ]);
    println!("xtask: cargo {}", args.join(" "));
    let output = Command::new(&cargo)
        .args(args)
        .current_dir(root)
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| format!("running {}: {e}", Path::new(&cargo).display()))?;
    if !output.status.success() {
        return Err(format!(
            "the user programs did not build ({}; see cargo's messages above)",
            output.status
        ));
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    let executables: Vec<PathBuf> = stdout
        .lines()
        .filter(|line| line.contains(r#""reason":"compiler-artifact""#))
        .filter_map(json_executable)
        .map(PathBuf::from)
        .collect();
    names
        .into_iter()
        .map(|name| {
            executables
                .iter()
                .find(|path| path.file_name().is_some_and(|f| f == name.as_str()))
                .map(|path| (name.clone(), path.clone()))
                .ok_or_else(|| format!("cargo reported no executable for program {name}"))
        })
        .collect()
}

/// Builds the test programs and writes them as a cpio `newc` archive to `out`.
pub fn build_initrd(root: &Path, out: &Path) -> Result<Vec<String>, String> {
    let mut programs = build_user_programs(root)?;
    // The kernel starts the archive's first program by default: make that the shell.
    programs.sort_by_key(|(name, _)| name != FIRST_PROGRAM);
    let mut entries = Vec::new();
    for (name, path) in &programs {
        let data = std::fs::read(path).map_err(|e| format!("reading {}: {e}", path.display()))?;
        entries.push((name.clone(), data));
    }
    entries.extend(conf_files(root)?);
    if let Some(dir) = out.parent() {
        std::fs::create_dir_all(dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    }
    write_cpio_newc(&entries, out).map_err(|e| format!("writing {}: {e}", out.display()))?;
    println!("xtask: {} programs -> {}", entries.len(), out.display());
    Ok(programs.into_iter().map(|(name, _)| name).collect())
}

/// The configuration files of the servers (`CONF_DIRS`), as `(file name, contents)`,
/// sorted by name.
pub fn conf_files(root: &Path) -> Result<Vec<(String, Vec<u8>)>, String> {
    let mut files = Vec::new();
    for dir in CONF_DIRS {
        let dir = root.join(dir);
        let entries =
            std::fs::read_dir(&dir).map_err(|e| format!("reading {}: {e}", dir.display()))?;
        for entry in entries {
            let path = entry
                .map_err(|e| format!("reading {}: {e}", dir.display()))?
                .path();
            if path.extension().is_some_and(|ext| ext == "conf")
                && let Some(name) = path.file_name().and_then(|s| s.to_str())
            {
                let data =
                    std::fs::read(&path).map_err(|e| format!("reading {}: {e}", path.display()))?;
                files.push((name.to_owned(), data));
            }
        }
    }
    files.sort();
    Ok(files)
}

/// The value of `"executable"` in one line of cargo's JSON messages, when it is a string
/// (it is `null` for libraries). Only the escapes a path can hold are undone.
fn json_executable(line: &str) -> Option<String> {
    const KEY: &str = r#""executable":""#;
    let start = line.find(KEY)? + KEY.len();
    let mut value = String::new();
    let mut chars = line[start..].chars();
    while let Some(c) = chars.next() {
        match c {
            '"' => return Some(value),
            '\\' => match chars.next()? {
                'n' => value.push('\n'),
                't' => value.push('\t'),
                'u' => {
                    let hex: String = chars.by_ref().take(4).collect();
                    value.push(char::from_u32(u32::from_str_radix(&hex, 16).ok()?)?);
                }
                other => value.push(other),
            },
            c => value.push(c),
        }
    }
    None
}

/// `newc` header magic.
const NEWC_MAGIC: &str = "070701";
/// Fixed part of a `newc` header: the magic and 13 fields of 8 hex digits (the tests parse
/// archives back with it).
#[cfg(test)]
const NEWC_HEADER_LEN: usize = 6 + 13 * 8;
/// The name of the entry that ends an archive.
const TRAILER: &str = "TRAILER!!!";
/// `S_IFREG | 0755`.
const MODE_EXECUTABLE: u32 = 0o100_755;

/// Writes `entries` (name, contents) as a cpio `newc` archive: each a regular executable
/// file (mode 0755, uid/gid 0, mtime 0, one link, inode numbers from 1), the name
/// NUL-terminated and padded so the data starts at a multiple of 4, the data padded to 4,
/// and the `TRAILER!!!` entry at the end.
pub fn write_cpio_newc(entries: &[(String, Vec<u8>)], out: &Path) -> std::io::Result<()> {
    let mut file = std::io::BufWriter::new(std::fs::File::create(out)?);
    file.write_all(&cpio_newc_bytes(entries)?)?;
    file.flush()
}

/// The archive [`write_cpio_newc`] writes, in memory.
pub fn cpio_newc_bytes(entries: &[(String, Vec<u8>)]) -> std::io::Result<Vec<u8>> {
    let mut archive = Vec::new();
    for (i, (name, data)) in entries.iter().enumerate() {
        if name.is_empty() || name.contains('\0') || name == TRAILER {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("cpio member name {name:?} is not usable"),
            ));
        }
        let size = u32::try_from(data.len()).map_err(|_| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("cpio member {name} is over 4 GiB"),
            )
        })?;
        push_member(
            &mut archive,
            i as u32 + 1,
            MODE_EXECUTABLE,
            name,
            data,
            size,
        );
    }
    push_member(&mut archive, 0, 0, TRAILER, &[], 0);
    Ok(archive)
}

fn push_member(archive: &mut Vec<u8>, ino: u32, mode: u32, name: &str, data: &[u8], size: u32) {
    let nlink = 1;
    let namesize = name.len() as u32 + 1;
    // ino mode uid gid nlink mtime filesize devmajor devminor rdevmajor rdevminor namesize check
    let fields = [ino, mode, 0, 0, nlink, 0, size, 0, 0, 0, 0, namesize, 0];
    archive.extend_from_slice(NEWC_MAGIC.as_bytes());
    for field in fields {
        archive.extend_from_slice(format!("{field:08x}").as_bytes());
    }
    archive.extend_from_slice(name.as_bytes());
    archive.push(0);
    pad_to_4(archive);
    archive.extend_from_slice(data);
    pad_to_4(archive);
}

fn pad_to_4(archive: &mut Vec<u8>) {
    while !archive.len().is_multiple_of(4) {
        archive.push(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One parsed member: name, mode, data.
    type Member = (String, u32, Vec<u8>);

    /// A strict `newc` reader, independent of the writer: checks magic, hex fields and
    /// alignment, stops at the trailer, and requires nothing after it.
    fn parse_newc(mut bytes: &[u8]) -> Result<Vec<Member>, String> {
        let total = bytes.len();
        let mut members = Vec::new();
        loop {
            let offset = total - bytes.len();
            if !offset.is_multiple_of(4) {
                return Err(format!("header at {offset} not 4-aligned"));
            }
            if bytes.len() < NEWC_HEADER_LEN || &bytes[..6] != b"070701" {
                return Err(format!("bad magic at {offset}"));
            }
            let field = |i: usize| -> Result<u32, String> {
                let text = std::str::from_utf8(&bytes[6 + 8 * i..14 + 8 * i])
                    .map_err(|_| "field not ASCII".to_owned())?;
                u32::from_str_radix(text, 16).map_err(|e| format!("field {i} {text:?}: {e}"))
            };
            let mode = field(1)?;
            let filesize = field(6)? as usize;
            let namesize = field(11)? as usize;
            let name_end = NEWC_HEADER_LEN + namesize;
            if namesize == 0 || bytes.len() < name_end || bytes[name_end - 1] != 0 {
                return Err(format!("bad name at {offset}"));
            }
            let name = String::from_utf8(bytes[NEWC_HEADER_LEN..name_end - 1].to_vec())
                .map_err(|_| "name not UTF-8".to_owned())?;
            let data_start = name_end.next_multiple_of(4);
            let data_end = data_start + filesize;
            if bytes.len() < data_end {
                return Err(format!("{name}: data runs past the end"));
            }
            if name == TRAILER {
                let rest = &bytes[data_end.next_multiple_of(4).min(bytes.len())..];
                if !rest.is_empty() {
                    return Err(format!("{} bytes after the trailer", rest.len()));
                }
                return Ok(members);
            }
            members.push((name, mode, bytes[data_start..data_end].to_vec()));
            bytes = &bytes[data_end.next_multiple_of(4).min(bytes.len())..];
        }
    }

    fn sample() -> Vec<(String, Vec<u8>)> {
        // Names and sizes that exercise every padding case.
        vec![
            ("hello".to_owned(), b"\x7fELF-hello".to_vec()),
            ("ab".to_owned(), vec![]),
            ("abc".to_owned(), vec![1]),
            ("abcd".to_owned(), vec![1, 2]),
            (
                "threads".to_owned(),
                (0..=255u8).cycle().take(4099).collect(),
            ),
        ]
    }

    #[test]
    fn newc_round_trips() {
        let entries = sample();
        let bytes = cpio_newc_bytes(&entries).unwrap();
        assert_eq!(bytes.len() % 4, 0);
        let members = parse_newc(&bytes).unwrap();
        assert_eq!(members.len(), entries.len());
        for ((name, data), (pname, mode, pdata)) in entries.iter().zip(&members) {
            assert_eq!(name, pname);
            assert_eq!(*mode, MODE_EXECUTABLE);
            assert_eq!(data, pdata);
        }
    }

    #[test]
    fn newc_header_layout() {
        let bytes = cpio_newc_bytes(&[("a".to_owned(), vec![9, 9, 9])]).unwrap();
        let header = std::str::from_utf8(&bytes[..NEWC_HEADER_LEN]).unwrap();
        let fields = [
            "00000001", "000081ed", "00000000", "00000000", "00000001", "00000000", "00000003",
            "00000000", "00000000", "00000000", "00000000", "00000002", "00000000",
        ];
        assert_eq!(header, format!("070701{}", fields.concat()));
        // 110-byte header + "a\0" = 112: data right after, then one pad byte.
        assert_eq!(&bytes[110..116], &[b'a', 0, 9, 9, 9, 0]);
        assert!(bytes[116..].starts_with(b"070701"));
        assert!(
            std::str::from_utf8(&bytes[116 + NEWC_HEADER_LEN..])
                .unwrap()
                .starts_with("TRAILER!!!\0")
        );
    }

    #[test]
    fn empty_archive_is_only_the_trailer() {
        let bytes = cpio_newc_bytes(&[]).unwrap();
        assert_eq!(parse_newc(&bytes).unwrap(), Vec::<Member>::new());
        assert_eq!(
            bytes.len(),
            (NEWC_HEADER_LEN + TRAILER.len() + 1).next_multiple_of(4)
        );
    }

    #[test]
    fn bad_names_are_refused() {
        for name in ["", "a\0b", TRAILER] {
            assert!(
                cpio_newc_bytes(&[(name.to_owned(), vec![])]).is_err(),
                "{name:?}"
            );
        }
    }

    /// The system's `cpio` lists what we wrote, when it is installed.
    #[test]
    fn system_cpio_reads_it() {
        let dir = std::env::temp_dir().join(format!("xtask-cpio-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("test.cpio");
        write_cpio_newc(&sample(), &path).unwrap();
        let file = std::fs::File::open(&path).unwrap();
        let listed = Command::new("cpio")
            .args(["-it", "--quiet"])
            .stdin(file)
            .output();
        let _ = std::fs::remove_dir_all(&dir);
        let Ok(out) = listed else {
            eprintln!("cpio not installed; skipped");
            return;
        };
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let names: Vec<_> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_owned)
            .collect();
        assert_eq!(names, ["hello", "ab", "abc", "abcd", "threads"]);
    }

    #[test]
    fn conf_files_of_the_servers_go_into_the_ram_disk() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let files = conf_files(&root).unwrap();
        let names: Vec<&str> = files.iter().map(|(n, _)| n.as_str()).collect();
        assert!(names.contains(&"bootstrap.conf"), "{names:?}");
        assert!(names.contains(&"names.conf"), "{names:?}");
        assert!(names.windows(2).all(|w| w[0] <= w[1]), "sorted: {names:?}");
    }

    #[test]
    fn executable_paths_from_cargo_json() {
        let line = r#"{"reason":"compiler-artifact","target":{"name":"hello"},"executable":"/t/a\\b \"q\"/hello","fresh":true}"#;
        assert_eq!(
            json_executable(line).as_deref(),
            Some(r#"/t/a\b "q"/hello"#)
        );
        let lib = r#"{"reason":"compiler-artifact","executable":null}"#;
        assert_eq!(json_executable(lib), None);
    }

    #[test]
    fn program_names_come_from_tests_bin() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        if !root.join("tests/src/bin").is_dir() {
            return;
        }
        let names = test_program_names(&root).unwrap();
        assert!(names.iter().any(|n| n == "hello"), "{names:?}");
    }
}
