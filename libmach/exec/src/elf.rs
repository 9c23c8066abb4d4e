//! Reading a static AArch64 ELF executable: its entry point and loadable segments, all
//! checked against the file and the user address range. The loaders (the kernel's
//! `kern::loader`, libmach's `loader`) map what it returns (`image`).

use mach_abi::traps::VM_MAX_USER_ADDRESS;

const PT_LOAD: u32 = 1;
const EM_AARCH64: u16 = 183;
const ET_EXEC: u16 = 2;
/// Size of an ELF64 program header (`Elf64_Phdr`).
const PHDR_LEN: usize = 56;
pub const PF_X: u32 = 1;
pub const PF_W: u32 = 2;
pub const PF_R: u32 = 4;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Segment {
    pub vaddr: u64,
    pub memsz: u64,
    /// File bytes: `[offset, offset + filesz)`, within the file.
    pub offset: u64,
    pub filesz: u64,
    pub flags: u32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ElfError {
    NotElf,
    NotAarch64Executable,
    Truncated,
    BadSegment,
    WritableAndExecutable,
    NoSegments,
}

impl core::fmt::Display for ElfError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let s = match self {
            ElfError::NotElf => "not a 64-bit little-endian ELF file",
            ElfError::NotAarch64Executable => "not an AArch64 executable",
            ElfError::Truncated => "truncated",
            ElfError::BadSegment => "a segment lies outside the file or user space",
            ElfError::WritableAndExecutable => "a segment is writable and executable (W^X)",
            ElfError::NoSegments => "no loadable segment",
        };
        f.write_str(s)
    }
}

/// The `N` bytes at `o`, or `Truncated` when they are not all in `b` (an `o` near the top
/// of the address space included: offsets come from the file).
fn bytes_at<const N: usize>(b: &[u8], o: usize) -> Result<[u8; N], ElfError> {
    let end = o.checked_add(N).ok_or(ElfError::Truncated)?;
    let mut a = [0u8; N];
    a.copy_from_slice(b.get(o..end).ok_or(ElfError::Truncated)?);
    Ok(a)
}
fn u16_at(b: &[u8], o: usize) -> Result<u16, ElfError> {
    bytes_at(b, o).map(u16::from_le_bytes)
}
fn u32_at(b: &[u8], o: usize) -> Result<u32, ElfError> {
    bytes_at(b, o).map(u32::from_le_bytes)
}
fn u64_at(b: &[u8], o: usize) -> Result<u64, ElfError> {
    bytes_at(b, o).map(u64::from_le_bytes)
}

pub struct Elf<'a> {
    bytes: &'a [u8],
    pub entry: u64,
    phoff: usize,
    phentsize: usize,
    phnum: usize,
}

impl<'a> Elf<'a> {
    pub fn parse(bytes: &'a [u8]) -> Result<Self, ElfError> {
        if bytes.get(..4) != Some(b"\x7fELF")
            || bytes.get(4) != Some(&2)
            || bytes.get(5) != Some(&1)
        {
            return Err(ElfError::NotElf);
        }
        if u16_at(bytes, 16)? != ET_EXEC || u16_at(bytes, 18)? != EM_AARCH64 {
            return Err(ElfError::NotAarch64Executable);
        }
        let elf = Elf {
            bytes,
            entry: u64_at(bytes, 24)?,
            phoff: usize::try_from(u64_at(bytes, 32)?).map_err(|_| ElfError::Truncated)?,
            phentsize: u16_at(bytes, 54)? as usize,
            phnum: u16_at(bytes, 56)? as usize,
        };
        if elf.phentsize < PHDR_LEN {
            return Err(ElfError::Truncated);
        }
        if elf.entry >= VM_MAX_USER_ADDRESS {
            return Err(ElfError::BadSegment);
        }
        let mut any = false;
        for s in elf.segments() {
            s?;
            any = true;
        }
        if !any {
            return Err(ElfError::NoSegments);
        }
        Ok(elf)
    }

    /// The loadable segments, each checked.
    pub fn segments(&self) -> impl Iterator<Item = Result<Segment, ElfError>> + '_ {
        (0..self.phnum).filter_map(move |i| {
            match i
                .checked_mul(self.phentsize)
                .and_then(|x| x.checked_add(self.phoff))
            {
                Some(o) => self.segment_at(o).transpose(),
                None => Some(Err(ElfError::Truncated)),
            }
        })
    }

    fn segment_at(&self, o: usize) -> Result<Option<Segment>, ElfError> {
        // The 56 bytes of the program header, so that the fields are read at small offsets.
        let end = o.checked_add(PHDR_LEN).ok_or(ElfError::Truncated)?;
        let b = self.bytes.get(o..end).ok_or(ElfError::Truncated)?;
        let o = 0;
        if u32_at(b, o)? != PT_LOAD {
            return Ok(None);
        }
        let mut s = Segment {
            flags: u32_at(b, o + 4)?,
            offset: u64_at(b, o + 8)?,
            vaddr: u64_at(b, o + 16)?,
            filesz: u64_at(b, o + 32)?,
            memsz: u64_at(b, o + 40)?,
        };
        // A segment with no file bytes (only `.bss`) takes none from the file, wherever its
        // offset points: GNU ld gives such a segment an offset past the end of the file.
        if s.filesz == 0 {
            s.offset = 0;
        }
        let file_end = s.offset.checked_add(s.filesz).ok_or(ElfError::BadSegment)?;
        let mem_end = s.vaddr.checked_add(s.memsz).ok_or(ElfError::BadSegment)?;
        if s.filesz > s.memsz || file_end > self.bytes.len() as u64 || mem_end > VM_MAX_USER_ADDRESS
        {
            return Err(ElfError::BadSegment);
        }
        if s.flags & PF_W != 0 && s.flags & PF_X != 0 {
            return Err(ElfError::WritableAndExecutable);
        }
        Ok(Some(s))
    }

    /// The file bytes of `s`.
    pub fn data(&self, s: &Segment) -> &'a [u8] {
        &self.bytes[s.offset as usize..(s.offset + s.filesz) as usize]
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::vec;
    use std::vec::Vec;

    /// A minimal ELF with the given (vaddr, flags, file bytes, memsz) segments.
    pub fn build(segments: &[(u64, u32, &[u8], u64)]) -> Vec<u8> {
        let mut out = vec![0u8; 64 + 56 * segments.len()];
        out[..4].copy_from_slice(b"\x7fELF");
        out[4] = 2;
        out[5] = 1;
        out[16..18].copy_from_slice(&ET_EXEC.to_le_bytes());
        out[18..20].copy_from_slice(&EM_AARCH64.to_le_bytes());
        out[24..32].copy_from_slice(&0x40_0000u64.to_le_bytes());
        out[32..40].copy_from_slice(&64u64.to_le_bytes());
        out[54..56].copy_from_slice(&56u16.to_le_bytes());
        out[56..58].copy_from_slice(&(segments.len() as u16).to_le_bytes());
        for (i, (vaddr, flags, data, memsz)) in segments.iter().enumerate() {
            let offset = out.len() as u64;
            out.extend_from_slice(data);
            let p = 64 + 56 * i;
            out[p..p + 4].copy_from_slice(&PT_LOAD.to_le_bytes());
            out[p + 4..p + 8].copy_from_slice(&flags.to_le_bytes());
            out[p + 8..p + 16].copy_from_slice(&offset.to_le_bytes());
            out[p + 16..p + 24].copy_from_slice(&vaddr.to_le_bytes());
            out[p + 32..p + 40].copy_from_slice(&(data.len() as u64).to_le_bytes());
            out[p + 40..p + 48].copy_from_slice(&memsz.to_le_bytes());
        }
        out
    }

    #[test]
    fn reads_entry_and_segments() {
        let file = build(&[
            (0x40_0000, PF_R | PF_X, b"code", 4),
            (0x40_1010, PF_R | PF_W, b"da", 0x2000),
        ]);
        let elf = Elf::parse(&file).unwrap();
        assert_eq!(elf.entry, 0x40_0000);
        let segs: Vec<_> = elf.segments().map(Result::unwrap).collect();
        assert_eq!(segs.len(), 2);
        assert_eq!(elf.data(&segs[0]), b"code");
        assert_eq!(segs[1].memsz, 0x2000);
    }

    #[test]
    fn refuses_bad_files() {
        assert_eq!(Elf::parse(b"nope").err(), Some(ElfError::NotElf));
        let wx = build(&[(0x40_0000, PF_R | PF_W | PF_X, b"x", 1)]);
        assert_eq!(Elf::parse(&wx).err(), Some(ElfError::WritableAndExecutable));
        let kernel = build(&[(0xffff_0000_0000_0000, PF_R, b"x", 1)]);
        assert_eq!(Elf::parse(&kernel).err(), Some(ElfError::BadSegment));
        // Only-bss segment whose offset is past the end of the file (as GNU ld makes them).
        let mut bss = build(&[
            (0x40_0000, PF_R | PF_X, b"code", 4),
            (0x41_ffe8, PF_R | PF_W, b"", 8),
        ]);
        let p = 64 + 56;
        bss[p + 8..p + 16].copy_from_slice(&0xffe8u64.to_le_bytes());
        let elf = Elf::parse(&bss).unwrap();
        let segs: Vec<_> = elf.segments().map(Result::unwrap).collect();
        assert_eq!((segs[1].filesz, segs[1].memsz), (0, 8));
        assert_eq!(elf.data(&segs[1]), b"");
        let bigger_file = build(&[(0x40_0000, PF_R, b"xyz", 1)]);
        assert_eq!(Elf::parse(&bigger_file).err(), Some(ElfError::BadSegment));
        let none = build(&[]);
        assert_eq!(Elf::parse(&none).err(), Some(ElfError::NoSegments));
        let file = build(&[(0x40_0000, PF_R | PF_X, b"code", 4)]);
        for cut in 0..file.len() {
            let _ = Elf::parse(&file[..cut]);
        }
    }

    /// Inputs the fuzzer (`fuzz/`, target `elf`) found crashing the reader; each must now be
    /// refused with an error.
    #[test]
    fn fuzz_regressions() {
        // Program headers at offset u64::MAX: reading a field overflowed the offset.
        let mut phoff_max = vec![0u8; 80];
        phoff_max[..8].copy_from_slice(b"\x7fELF\x02\x01\x01\x00");
        phoff_max[16..18].copy_from_slice(&ET_EXEC.to_le_bytes());
        phoff_max[18..20].copy_from_slice(&EM_AARCH64.to_le_bytes());
        phoff_max[24..32].copy_from_slice(&0x40_0000u64.to_le_bytes());
        phoff_max[32..40].copy_from_slice(&u64::MAX.to_le_bytes());
        phoff_max[54..56].copy_from_slice(&56u16.to_le_bytes());
        phoff_max[56..58].copy_from_slice(&3u16.to_le_bytes());
        assert_eq!(Elf::parse(&phoff_max).err(), Some(ElfError::Truncated));
    }
}
