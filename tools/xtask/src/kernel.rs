//! Building the kernel and turning its ELF into the flat arm64 Linux `Image` that QEMU
//! `-kernel`, U-Boot `booti` and the Pi firmware load. The ELF stays beside it for gdb.
//! Not for booting it ([`crate::qemu`]) or packaging it ([`crate::image`]).
//!
//! Set `ARMACH_KERNEL_ELF` to a prebuilt kernel ELF to convert and boot that instead of
//! building (bisecting, or trying the plumbing without a working kernel).

use std::path::{Path, PathBuf};

use object::elf::{EM_AARCH64, FileHeader64, PT_LOAD};
use object::read::elf::{FileHeader, ProgramHeader};
use object::{Endianness, FileKind};

use crate::{Error, KERNEL_TARGET, Result, proc, target_dir};

/// Offset of the `ARM\x64` magic in the arm64 `Image` header.
pub const IMAGE_MAGIC_OFFSET: usize = 56;
/// The arm64 `Image` header magic.
pub const IMAGE_MAGIC: [u8; 4] = *b"ARM\x64";
/// Largest flat image we are willing to write; a bigger span means a bad link layout.
const MAX_IMAGE_BYTES: u64 = 256 << 20;

/// The kernel ELF (with symbols, for gdb).
pub fn elf_path() -> PathBuf {
    match std::env::var_os("ARMACH_KERNEL_ELF") {
        Some(path) => PathBuf::from(path),
        None => release_dir().join("armach"),
    }
}

/// The flat `Image` written next to the ELF.
pub fn image_path() -> PathBuf {
    release_dir().join("Image")
}

fn release_dir() -> PathBuf {
    target_dir().join(KERNEL_TARGET).join("release")
}

/// Builds the user programs and the initial RAM disk (cpio `newc`) that holds them; returns
/// its path. `msh` comes first: the kernel starts the first program unless `init=` names
/// another.
pub fn initrd() -> Result<PathBuf> {
    let out = target_dir().join("initrd.cpio");
    crate::userland::build_initrd(&crate::workspace_root(), &out).map_err(Error::new)?;
    Ok(out)
}

/// Builds the kernel (unless `ARMACH_KERNEL_ELF` names one) and writes the `Image`.
pub fn build() -> Result<PathBuf> {
    build_with(&[])
}

/// As [`build`], with kernel cargo features (`lockcheck`: the lock-order check that
/// `cargo xtask test` builds in).
pub fn build_with(features: &[&str]) -> Result<PathBuf> {
    if std::env::var_os("ARMACH_KERNEL_ELF").is_none() {
        let mut cmd = proc::cargo();
        cmd.args([
            "build",
            "-p",
            "armach-kernel",
            "--release",
            "--target",
            KERNEL_TARGET,
        ]);
        if !features.is_empty() {
            cmd.args(["--features", &features.join(",")]);
        }
        if !proc::run_status(&mut cmd)? {
            return Err(Error::new(
                "the kernel did not build (see cargo's messages above)",
            ));
        }
    }
    let elf = elf_path();
    let data =
        std::fs::read(&elf).map_err(|e| Error::io(format_args!("reading {}", elf.display()), e))?;
    let image = elf_to_image(&data).map_err(|e| Error::new(format!("{}: {e}", elf.display())))?;
    let out = image_path();
    if let Some(dir) = out.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|e| Error::io(format_args!("creating {}", dir.display()), e))?;
    }
    std::fs::write(&out, &image)
        .map_err(|e| Error::io(format_args!("writing {}", out.display()), e))?;
    println!(
        "xtask: {} -> {} ({} bytes)",
        elf.display(),
        out.display(),
        image.len()
    );
    Ok(out)
}

/// One loadable segment: where it goes and the bytes the file holds for it.
struct Segment<'a> {
    vaddr: u64,
    bytes: &'a [u8],
}

/// Lays the `PT_LOAD` segments of an AArch64 ELF out flat: each segment's file bytes at
/// `p_vaddr - base` (base = the lowest `p_vaddr`), gaps zero-filled, ending at the last
/// file byte (BSS is not written; the `Image` header's `image_size` covers it). Checks the
/// arm64 `Image` magic at offset 56.
pub fn elf_to_image(data: &[u8]) -> std::result::Result<Vec<u8>, String> {
    match FileKind::parse(data) {
        Ok(FileKind::Elf64) => {}
        Ok(kind) => return Err(format!("not a 64-bit ELF file ({kind:?})")),
        Err(e) => return Err(format!("not an ELF file: {e}")),
    }
    let header =
        FileHeader64::<Endianness>::parse(data).map_err(|e| format!("bad ELF header: {e}"))?;
    let endian = header
        .endian()
        .map_err(|e| format!("bad ELF header: {e}"))?;
    if header.e_machine(endian) != EM_AARCH64 {
        return Err(format!(
            "not an AArch64 ELF (e_machine {})",
            header.e_machine(endian)
        ));
    }
    let phdrs = header
        .program_headers(endian, data)
        .map_err(|e| format!("bad program headers: {e}"))?;
    let mut segments = Vec::new();
    for ph in phdrs
        .iter()
        .filter(|ph| ph.p_type(endian) == PT_LOAD && ph.p_memsz(endian) > 0)
    {
        let bytes = ph
            .data(endian, data)
            .map_err(|()| format!("PT_LOAD at {:#x} lies outside the file", ph.p_vaddr(endian)))?;
        segments.push(Segment {
            vaddr: ph.p_vaddr(endian),
            bytes,
        });
    }
    let base = segments
        .iter()
        .map(|s| s.vaddr)
        .min()
        .ok_or("no PT_LOAD segments")?;
    let end = segments
        .iter()
        .filter(|s| !s.bytes.is_empty())
        .map(|s| s.vaddr + s.bytes.len() as u64)
        .max()
        .unwrap_or(base);
    let len = end - base;
    if len > MAX_IMAGE_BYTES {
        return Err(format!(
            "PT_LOAD segments span {len:#x} bytes from {base:#x}: more than {MAX_IMAGE_BYTES:#x}, check the link addresses"
        ));
    }
    let len = usize::try_from(len).map_err(|_| "image too large for this host")?;
    let mut image = vec![0u8; len];
    segments.sort_by_key(|s| s.vaddr);
    let mut written_to = 0usize;
    for s in &segments {
        let start = usize::try_from(s.vaddr - base).map_err(|_| "segment offset too large")?;
        if s.bytes.is_empty() {
            continue;
        }
        if start < written_to {
            return Err(format!(
                "PT_LOAD at {:#x} overlaps the segment before it",
                s.vaddr
            ));
        }
        image[start..start + s.bytes.len()].copy_from_slice(s.bytes);
        written_to = start + s.bytes.len();
    }
    check_magic(&image)?;
    Ok(image)
}

/// Checks the arm64 `Image` magic at offset 56.
pub fn check_magic(image: &[u8]) -> std::result::Result<(), String> {
    match image.get(IMAGE_MAGIC_OFFSET..IMAGE_MAGIC_OFFSET + 4) {
        Some(magic) if magic == IMAGE_MAGIC => Ok(()),
        Some(magic) => Err(format!(
            "no arm64 Image header: bytes {magic:02x?} at offset {IMAGE_MAGIC_OFFSET}, expected `ARM\\x64` (41 52 4d 64); \
             the kernel's first bytes must be the Linux arm64 Image header"
        )),
        None => Err(format!(
            "image is only {} bytes: too short for an arm64 Image header",
            image.len()
        )),
    }
}

/// Reads a flat image from disk and checks its header (for `--image` folders).
pub fn read_image(path: &Path) -> Result<Vec<u8>> {
    let data = std::fs::read(path)
        .map_err(|e| Error::io(format_args!("reading {}", path.display()), e))?;
    check_magic(&data).map_err(|e| Error::new(format!("{}: {e}", path.display())))?;
    Ok(data)
}

#[cfg(test)]
pub mod tests {
    use super::*;

    /// A minimal little-endian AArch64 ELF64 with the given `(vaddr, file bytes, memsz)` loads.
    pub fn synthetic_elf(loads: &[(u64, &[u8], u64)]) -> Vec<u8> {
        const EHDR: usize = 64;
        const PHDR: usize = 56;
        let mut data_off = EHDR + PHDR * loads.len();
        let mut out = Vec::new();
        out.extend_from_slice(b"\x7fELF");
        out.extend_from_slice(&[2, 1, 1, 0]); // 64-bit, little-endian, version 1, SysV
        out.extend_from_slice(&[0; 8]);
        out.extend_from_slice(&2u16.to_le_bytes()); // ET_EXEC
        out.extend_from_slice(&EM_AARCH64.to_le_bytes());
        out.extend_from_slice(&1u32.to_le_bytes());
        out.extend_from_slice(&loads.first().map_or(0, |l| l.0).to_le_bytes()); // e_entry
        out.extend_from_slice(&(EHDR as u64).to_le_bytes()); // e_phoff
        out.extend_from_slice(&0u64.to_le_bytes()); // e_shoff
        out.extend_from_slice(&0u32.to_le_bytes()); // e_flags
        out.extend_from_slice(&(EHDR as u16).to_le_bytes());
        out.extend_from_slice(&(PHDR as u16).to_le_bytes());
        out.extend_from_slice(&(loads.len() as u16).to_le_bytes());
        out.extend_from_slice(&64u16.to_le_bytes()); // e_shentsize
        out.extend_from_slice(&0u16.to_le_bytes()); // e_shnum
        out.extend_from_slice(&0u16.to_le_bytes()); // e_shstrndx
        for (vaddr, bytes, memsz) in loads {
            out.extend_from_slice(&PT_LOAD.to_le_bytes());
            out.extend_from_slice(&5u32.to_le_bytes()); // R+X
            out.extend_from_slice(&(data_off as u64).to_le_bytes());
            out.extend_from_slice(&vaddr.to_le_bytes());
            out.extend_from_slice(&vaddr.to_le_bytes());
            out.extend_from_slice(&(bytes.len() as u64).to_le_bytes());
            out.extend_from_slice(&memsz.to_le_bytes());
            out.extend_from_slice(&0x1000u64.to_le_bytes());
            data_off += bytes.len();
        }
        for (_, bytes, _) in loads {
            out.extend_from_slice(bytes);
        }
        out
    }

    fn header_bytes() -> Vec<u8> {
        let mut text = vec![0xaau8; 64];
        text[IMAGE_MAGIC_OFFSET..IMAGE_MAGIC_OFFSET + 4].copy_from_slice(&IMAGE_MAGIC);
        text
    }

    #[test]
    fn lays_segments_out_flat_with_zero_gaps_and_no_bss() {
        let text = header_bytes();
        let rodata = [1u8, 2, 3, 4];
        let base = 0xffff_0000_0008_0000;
        let elf = synthetic_elf(&[
            (base + 0x1000, &rodata, 4),
            (base, &text, 64),
            (base + 0x2000, &[], 0x8000), // BSS only
        ]);
        let image = elf_to_image(&elf).unwrap();
        assert_eq!(image.len(), 0x1004);
        assert_eq!(&image[..64], &text[..]);
        assert!(image[64..0x1000].iter().all(|&b| b == 0));
        assert_eq!(&image[0x1000..], &rodata);
    }

    #[test]
    fn refuses_an_elf_without_the_image_magic() {
        let elf = synthetic_elf(&[(0x8_0000, &[0u8; 128], 128)]);
        let err = elf_to_image(&elf).unwrap_err();
        assert!(err.contains("ARM\\x64"), "{err}");
    }

    #[test]
    fn refuses_non_elf_and_short_images() {
        assert!(
            elf_to_image(b"not an elf at all")
                .unwrap_err()
                .contains("ELF")
        );
        assert!(check_magic(&[0; 10]).unwrap_err().contains("too short"));
    }

    #[test]
    fn refuses_overlapping_segments() {
        let text = header_bytes();
        let elf = synthetic_elf(&[(0x1000, &text, 64), (0x1020, &[1, 2], 2)]);
        assert!(elf_to_image(&elf).unwrap_err().contains("overlaps"));
    }
}
