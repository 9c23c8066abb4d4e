//! Prerequisites, checked before use and installed when missing, saying what is done: the
//! two AArch64 Rust targets, QEMU 9.0 or later (Debian bookworm-backports), and the
//! Raspberry Pi 4 device tree from Debian's arm64 kernel package, cached under
//! `target/dtb-cache` (or `ARMACH_DTB_CACHE`). Never `rustup update`: see DESIGN.md §3.
//! Parsing of tool output is pure and unit-tested; the rest runs the tools.

use std::cmp::Ordering;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::qemu::{PI4_DTB, QEMU};
use crate::{Error, KERNEL_TARGET, Result, USER_TARGET, proc, target_dir, workspace_root};

/// Oldest QEMU with the `raspi4b` machine.
pub const QEMU_MIN: (u32, u32) = (9, 0);
const BACKPORTS_FILE: &str = "/etc/apt/sources.list.d/bookworm-backports.sources";
const BACKPORTS_SOURCE: &str = "Types: deb\n\
URIs: http://deb.debian.org/debian\n\
Suites: bookworm-backports\n\
Components: main\n\
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n";

/// The QEMU install: only what `qemu-system-aarch64` needs to boot `virt` and `raspi4b` on
/// a serial console. Without `--no-install-recommends` APT adds some 180 recommended
/// packages (graphical front ends, audio, speech recognition among them).
pub const INSTALL_QEMU: [&str; 7] = [
    "apt-get",
    "install",
    "-y",
    "--no-install-recommends",
    "-t",
    "bookworm-backports",
    "qemu-system-arm",
];

/// Makes sure `rustup target list --installed` has both AArch64 targets.
pub fn ensure_rust_targets() -> Result<()> {
    let wanted = [USER_TARGET, KERNEL_TARGET];
    let out = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .current_dir(workspace_root())
        .output();
    let installed = match out {
        Ok(out) if out.status.success() => String::from_utf8_lossy(&out.stdout).into_owned(),
        _ => return sysroot_has_targets(&wanted),
    };
    let missing: Vec<&str> = wanted
        .into_iter()
        .filter(|t| !installed.lines().any(|l| l.trim() == *t))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    println!(
        "xtask: the Rust target(s) {} are not installed; adding them with rustup (the toolchain stays as pinned)",
        missing.join(", ")
    );
    let mut cmd = Command::new("rustup");
    cmd.args(["target", "add"])
        .args(&missing)
        .current_dir(workspace_root());
    proc::run_checked(&mut cmd)
}

/// Without rustup: the targets' libraries must be in the compiler's sysroot.
fn sysroot_has_targets(wanted: &[&str]) -> Result<()> {
    let sysroot = proc::query_stdout("rustc", ["--print", "sysroot"]).ok_or_else(|| {
        Error::new("neither rustup nor rustc works: install Rust 1.95 with rustup")
    })?;
    for target in wanted {
        let dir = Path::new(sysroot.trim()).join("lib/rustlib").join(target);
        if !dir.is_dir() {
            return Err(Error::new(format!(
                "the Rust target {target} is missing ({} not found) and rustup is not available to add it",
                dir.display()
            )));
        }
    }
    Ok(())
}

/// `QEMU emulator version 10.0.2 (Debian ...)` → `(10, 0, 2)`.
pub fn parse_qemu_version(text: &str) -> Option<(u32, u32, u32)> {
    let rest = text
        .lines()
        .find_map(|l| l.split_once("version ").map(|(_, v)| v))?;
    let word = rest.split_whitespace().next()?;
    let mut parts = word.split('.').map(|p| {
        let digits: String = p.chars().take_while(char::is_ascii_digit).collect();
        digits.parse::<u32>().ok()
    });
    let major = parts.next()??;
    let minor = parts.next().flatten().unwrap_or(0);
    let micro = parts.next().flatten().unwrap_or(0);
    Some((major, minor, micro))
}

/// Whether this QEMU version has what we need.
pub fn qemu_new_enough(version: (u32, u32, u32)) -> bool {
    (version.0, version.1) >= QEMU_MIN
}

/// `VERSION_CODENAME` from `/etc/os-release` text.
pub fn os_codename(os_release: &str) -> Option<String> {
    os_release.lines().find_map(|l| {
        l.strip_prefix("VERSION_CODENAME=")
            .map(|v| v.trim().trim_matches('"').to_owned())
    })
}

/// Whether APT source text already names bookworm-backports (one-line or deb822 form).
pub fn mentions_backports(sources: &str) -> bool {
    sources
        .lines()
        .map(str::trim)
        .filter(|l| !l.starts_with('#'))
        .any(|l| l.split_whitespace().any(|w| w == "bookworm-backports"))
}

/// Makes sure `qemu-system-aarch64` is at least 9.0, installing it from bookworm-backports.
pub fn ensure_qemu() -> Result<()> {
    let have = proc::query_stdout(QEMU, ["--version"]).and_then(|v| parse_qemu_version(&v));
    if let Some(version) = have.filter(|v| qemu_new_enough(*v)) {
        let _ = version;
        return Ok(());
    }
    let why = match have {
        Some((a, b, c)) => format!(
            "{QEMU} {a}.{b}.{c} is too old (the raspi4b machine needs {}.{})",
            QEMU_MIN.0, QEMU_MIN.1
        ),
        None => format!("{QEMU} is not installed"),
    };
    let commands = format!(
        "  cat > {BACKPORTS_FILE} <<EOF\n{}EOF\n  apt-get update\n  DEBIAN_FRONTEND=noninteractive {}",
        BACKPORTS_SOURCE,
        INSTALL_QEMU.join(" ")
    );
    let codename = std::fs::read_to_string("/etc/os-release")
        .ok()
        .and_then(|t| os_codename(&t));
    if codename.as_deref() != Some("bookworm") {
        return Err(Error::new(format!(
            "{why}; this is not Debian bookworm, so install QEMU 9.0 or later yourself \
             (on bookworm, as root:\n{commands})"
        )));
    }
    if !is_root() {
        return Err(Error::new(format!("{why}; as root, run:\n{commands}")));
    }
    println!("xtask: {why}; installing qemu-system-arm from Debian bookworm-backports");
    let install = || -> Result<()> {
        if !backports_configured() {
            println!("xtask: adding the bookworm-backports APT source ({BACKPORTS_FILE})");
            std::fs::write(BACKPORTS_FILE, BACKPORTS_SOURCE)
                .map_err(|e| Error::io(format_args!("writing {BACKPORTS_FILE}"), e))?;
        }
        proc::run_checked(Command::new("apt-get").arg("update"))?;
        proc::run_checked(
            Command::new("apt-get")
                .env("DEBIAN_FRONTEND", "noninteractive")
                .args(&INSTALL_QEMU[1..]),
        )
    };
    install().map_err(|e| {
        Error::new(format!(
            "installing QEMU failed ({e}); the steps, as root:\n{commands}"
        ))
    })?;
    match proc::query_stdout(QEMU, ["--version"]).and_then(|v| parse_qemu_version(&v)) {
        Some(v) if qemu_new_enough(v) => Ok(()),
        _ => Err(Error::new(format!(
            "{QEMU} is still missing or too old after installing qemu-system-arm"
        ))),
    }
}

/// Makes sure the AArch64 cross compiler the foreign-program test builds with is there,
/// installing Debian's `gcc-aarch64-linux-gnu` as root if it is missing.
pub fn ensure_cross_gcc() -> Result<()> {
    let gcc = crate::foreign::CROSS_GCC;
    if proc::query_stdout(gcc, ["--version"]).is_some() {
        return Ok(());
    }
    let command = "apt-get install -y --no-install-recommends gcc-aarch64-linux-gnu";
    if !is_root() {
        return Err(Error::new(format!(
            "{gcc} is not installed; as root, run: {command}"
        )));
    }
    println!("xtask: {gcc} is not installed; installing gcc-aarch64-linux-gnu from Debian");
    let install = || {
        proc::run_checked(
            Command::new("apt-get")
                .env("DEBIAN_FRONTEND", "noninteractive")
                .args([
                    "install",
                    "-y",
                    "--no-install-recommends",
                    "gcc-aarch64-linux-gnu",
                ]),
        )
    };
    if install().is_err() {
        proc::run_checked(Command::new("apt-get").arg("update"))?;
        install()?;
    }
    match proc::query_stdout(gcc, ["--version"]) {
        Some(_) => Ok(()),
        None => Err(Error::new(format!(
            "{gcc} is still missing after installing gcc-aarch64-linux-gnu"
        ))),
    }
}

fn backports_configured() -> bool {
    let mut texts = vec![std::fs::read_to_string("/etc/apt/sources.list").unwrap_or_default()];
    if let Ok(dir) = std::fs::read_dir("/etc/apt/sources.list.d") {
        texts.extend(
            dir.flatten()
                .filter_map(|e| std::fs::read_to_string(e.path()).ok()),
        );
    }
    texts.iter().any(|t| mentions_backports(t))
}

fn is_root() -> bool {
    proc::query_stdout("id", ["-u"]).is_some_and(|id| id.trim() == "0")
}

/// Where the Pi 4 device tree is cached: `ARMACH_DTB_CACHE`, else `target/dtb-cache`.
pub fn dtb_cache_dir() -> PathBuf {
    std::env::var_os("ARMACH_DTB_CACHE")
        .map_or_else(|| target_dir().join("dtb-cache"), PathBuf::from)
}

/// The Debian arm64 kernel image package that `apt-cache depends linux-image-arm64:arm64`
/// points at (`linux-image-6.1.0-28-arm64`).
pub fn kernel_package_from_depends(depends: &str) -> Option<String> {
    depends.lines().find_map(|l| {
        let (_, dep) = l.split_once("Depends:")?;
        let name = dep.trim().trim_start_matches('<').trim_end_matches('>');
        let name = name.strip_suffix(":arm64").unwrap_or(name);
        is_versioned_arm64_image(name).then(|| name.to_owned())
    })
}

/// The newest versioned arm64 kernel image among package names (`apt-cache pkgnames`).
pub fn newest_kernel_package(names: &str) -> Option<String> {
    names
        .lines()
        .map(|l| l.trim().strip_suffix(":arm64").unwrap_or(l.trim()))
        .filter(|n| is_versioned_arm64_image(n))
        .max_by(|a, b| natural_cmp(a, b))
        .map(str::to_owned)
}

/// `linux-image-<version>-arm64` (`6.1.0-28`, `6.12.12+bpo`), not a flavour such as
/// `-cloud-arm64` or `-rt-arm64` (a word-only part), nor `-unsigned` or `-dbg` packages.
fn is_versioned_arm64_image(name: &str) -> bool {
    name.strip_prefix("linux-image-")
        .and_then(|v| v.strip_suffix("-arm64"))
        .is_some_and(|v| {
            v.starts_with(|c: char| c.is_ascii_digit())
                && v.split('-')
                    .all(|part| part.contains(|c: char| c.is_ascii_digit()))
        })
}

/// Compares strings with runs of digits compared as numbers (`6.1.0-9` < `6.1.0-41`).
fn natural_cmp(a: &str, b: &str) -> Ordering {
    fn chunks(s: &str) -> Vec<(bool, &str)> {
        let mut out = Vec::new();
        let mut start = 0;
        let bytes = s.as_bytes();
        for i in 1..=bytes.len() {
            if i == bytes.len() || bytes[i].is_ascii_digit() != bytes[start].is_ascii_digit() {
                out.push((bytes[start].is_ascii_digit(), &s[start..i]));
                start = i;
            }
        }
        out
    }
    let (ca, cb) = (chunks(a), chunks(b));
    for (x, y) in ca.iter().zip(&cb) {
        let ord = match (x, y) {
            ((true, x), (true, y)) => x
                .parse::<u64>()
                .unwrap_or(0)
                .cmp(&y.parse::<u64>().unwrap_or(0)),
            ((_, x), (_, y)) => x.cmp(y),
        };
        if ord != Ordering::Equal {
            return ord;
        }
    }
    ca.len().cmp(&cb.len())
}

/// Returns the cached Pi 4 device tree, fetching it from Debian's arm64 kernel package
/// into `cache` when missing.
pub fn ensure_pi4_dtb(cache: &Path) -> Result<PathBuf> {
    let dtb = cache.join(PI4_DTB);
    if dtb.is_file() {
        return Ok(dtb);
    }
    println!(
        "xtask: the Raspberry Pi 4 device tree is not cached at {}; taking it from Debian's arm64 kernel package",
        dtb.display()
    );
    let manual = format!(
        "as root: dpkg --add-architecture arm64 && apt-get update && apt-get download linux-image-<version>-arm64:arm64, \
         then dpkg-deb -x the .deb and copy usr/lib/linux-image-*/broadcom/{PI4_DTB} to {}",
        dtb.display()
    );
    if !is_root() {
        return Err(Error::new(format!(
            "cannot fetch the Pi 4 device tree without root; {manual}"
        )));
    }
    fetch_pi4_dtb(cache, &dtb)
        .map_err(|e| Error::new(format!("could not obtain {PI4_DTB}: {e}; {manual}")))?;
    Ok(dtb)
}

fn fetch_pi4_dtb(cache: &Path, dtb: &Path) -> Result<()> {
    let foreign = proc::query_stdout("dpkg", ["--print-foreign-architectures"])
        .ok_or_else(|| Error::new("dpkg is not available (this needs Debian)"))?;
    let mut updated = false;
    if !foreign.lines().any(|l| l.trim() == "arm64") {
        println!(
            "xtask: letting APT see arm64 packages (dpkg --add-architecture arm64), then refreshing its lists"
        );
        proc::run_checked(Command::new("dpkg").args(["--add-architecture", "arm64"]))?;
        proc::run_checked(Command::new("apt-get").arg("update"))?;
        updated = true;
    }
    let find = || {
        proc::query_stdout("apt-cache", ["depends", "linux-image-arm64:arm64"])
            .and_then(|d| kernel_package_from_depends(&d))
            .or_else(|| {
                proc::query_stdout("apt-cache", ["pkgnames", "linux-image-"])
                    .and_then(|n| newest_kernel_package(&n))
            })
    };
    let package = match find() {
        Some(p) => p,
        None if !updated => {
            println!(
                "xtask: no arm64 kernel package known to APT yet; refreshing its lists (apt-get update)"
            );
            proc::run_checked(Command::new("apt-get").arg("update"))?;
            find().ok_or_else(|| Error::new("APT knows no linux-image-<version>-arm64 package"))?
        }
        None => {
            return Err(Error::new(
                "APT knows no linux-image-<version>-arm64 package",
            ));
        }
    };
    let work = target_dir().join(format!("dtb-fetch-{}", std::process::id()));
    let result = (|| -> Result<()> {
        std::fs::create_dir_all(&work)
            .map_err(|e| Error::io(format_args!("creating {}", work.display()), e))?;
        println!(
            "xtask: downloading {package}:arm64 (only to extract {PI4_DTB} from it) into {}",
            work.display()
        );
        let download = |package: &str| {
            proc::run_status(
                Command::new("apt-get")
                    .args(["download", &format!("{package}:arm64")])
                    .current_dir(&work),
            )
        };
        if !download(&package)? {
            if updated {
                return Err(Error::new(format!(
                    "apt-get download {package}:arm64 failed"
                )));
            }
            // Stale package lists name versions the mirror no longer has: refresh, retry once.
            println!(
                "xtask: the download failed; refreshing APT's lists (apt-get update) and retrying"
            );
            proc::run_checked(Command::new("apt-get").arg("update"))?;
            let package = find().unwrap_or(package.clone());
            if !download(&package)? {
                return Err(Error::new(format!(
                    "apt-get download {package}:arm64 failed"
                )));
            }
        }
        let deb = std::fs::read_dir(&work)
            .map_err(|e| Error::io(format_args!("reading {}", work.display()), e))?
            .flatten()
            .map(|e| e.path())
            .find(|p| p.extension().is_some_and(|x| x == "deb"))
            .ok_or_else(|| Error::new("apt-get download produced no .deb"))?;
        let tree = work.join("tree");
        proc::run_checked(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&tree))?;
        let lib = tree.join("usr/lib");
        let found = std::fs::read_dir(&lib)
            .map_err(|e| Error::io(format_args!("reading {}", lib.display()), e))?
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with("linux-image-"))
            .map(|e| e.path().join("broadcom").join(PI4_DTB))
            .find(|p| p.is_file())
            .ok_or_else(|| {
                Error::new(format!(
                    "{package} has no usr/lib/linux-image-*/broadcom/{PI4_DTB}"
                ))
            })?;
        std::fs::create_dir_all(cache)
            .map_err(|e| Error::io(format_args!("creating {}", cache.display()), e))?;
        let partial = cache.join(format!("{PI4_DTB}.partial"));
        std::fs::copy(&found, &partial)
            .map_err(|e| Error::io(format_args!("copying {}", found.display()), e))?;
        std::fs::rename(&partial, dtb)
            .map_err(|e| Error::io(format_args!("writing {}", dtb.display()), e))?;
        println!("xtask: cached {} (from {package})", dtb.display());
        Ok(())
    })();
    // The downloaded package is only a means to the tree; leftovers are harmless in target/.
    let _ = std::fs::remove_dir_all(&work);
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qemu_versions() {
        let debian = "QEMU emulator version 10.0.2 (Debian 1:10.0.2+ds-2+deb13u1~bpo12+1)\nCopyright (c) 2003-2025";
        assert_eq!(parse_qemu_version(debian), Some((10, 0, 2)));
        assert_eq!(
            parse_qemu_version("QEMU emulator version 7.2.15 (Debian 1:7.2+dfsg-7+deb12u12)"),
            Some((7, 2, 15))
        );
        assert_eq!(
            parse_qemu_version("QEMU emulator version 9.0.0"),
            Some((9, 0, 0))
        );
        assert_eq!(
            parse_qemu_version("QEMU emulator version 9.1.50 (v9.1.0-1234-gdeadbeef)"),
            Some((9, 1, 50))
        );
        assert_eq!(
            parse_qemu_version("QEMU emulator version 8.2"),
            Some((8, 2, 0))
        );
        assert_eq!(
            parse_qemu_version("bash: qemu-system-aarch64: command not found"),
            None
        );
        assert!(qemu_new_enough((10, 0, 2)));
        assert!(qemu_new_enough((9, 0, 0)));
        assert!(!qemu_new_enough((8, 2, 2)));
        assert!(!qemu_new_enough((7, 2, 15)));
    }

    #[test]
    fn os_release_and_sources() {
        let os = "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nVERSION_CODENAME=bookworm\nID=debian\n";
        assert_eq!(os_codename(os).as_deref(), Some("bookworm"));
        assert_eq!(os_codename("ID=alpine\n"), None);
        assert!(mentions_backports(BACKPORTS_SOURCE));
        assert!(mentions_backports(
            "deb http://deb.debian.org/debian bookworm-backports main\n"
        ));
        assert!(!mentions_backports(
            "# deb http://deb.debian.org/debian bookworm-backports main\n"
        ));
        assert!(!mentions_backports("Suites: bookworm bookworm-updates\n"));
    }

    #[test]
    fn kernel_package_names() {
        let depends = "linux-image-arm64:arm64\n  Depends: linux-image-6.1.0-28-arm64:arm64\n";
        assert_eq!(
            kernel_package_from_depends(depends).as_deref(),
            Some("linux-image-6.1.0-28-arm64")
        );
        assert_eq!(
            kernel_package_from_depends("linux-image-arm64:arm64\n"),
            None
        );
        let names = "linux-image-6.1.0-9-arm64\nlinux-image-6.1.0-41-arm64\nlinux-image-6.1.0-41-arm64-unsigned\n\
                     linux-image-arm64\nlinux-image-6.1.0-41-amd64\nlinux-image-6.1.0-41-cloud-arm64\n";
        // The cloud flavour carries no board device trees; the newest plain image wins.
        assert_eq!(
            newest_kernel_package(names).as_deref(),
            Some("linux-image-6.1.0-41-arm64")
        );
        assert!(is_versioned_arm64_image("linux-image-6.12.12+bpo-arm64"));
        assert!(!is_versioned_arm64_image("linux-image-6.1.0-41-rt-arm64"));
        assert_eq!(natural_cmp("6.1.0-9", "6.1.0-41"), Ordering::Less);
    }
}
