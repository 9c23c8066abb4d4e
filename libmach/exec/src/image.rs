//! What starting a program maps: the runs of pages its segments cover, each with the
//! union of the protections of the segments that touch it (W^X refused), and the start-up
//! stack's bytes. The kernel's loader and libmach's user-space loader both follow these, so
//! a program started either way sees the same memory and the same stack.

use alloc::collections::BTreeMap;
use alloc::vec::Vec;

use crate::elf::{Elf, ElfError, PF_R, PF_W, PF_X};
use mach_abi::traps::PAGE_SIZE;

/// `VM_PROT_*` bits.
pub const VM_PROT_READ: u32 = 1;
pub const VM_PROT_WRITE: u32 = 2;
pub const VM_PROT_EXECUTE: u32 = 4;

/// Top of the initial stack and its size.
pub const USER_STACK_TOP: u64 = 0x0000_7fff_ffff_0000;
pub const USER_STACK_SIZE: u64 = 256 * 1024;

/// A run of pages `[start, end)` with one protection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PageRun {
    pub start: u64,
    pub end: u64,
    pub prot: u32,
}

/// The `VM_PROT_*` of ELF segment flags (write and execute imply read).
pub fn prot_of(flags: u32) -> u32 {
    let mut prot = 0;
    if flags & PF_R != 0 {
        prot |= VM_PROT_READ;
    }
    if flags & PF_W != 0 {
        prot |= VM_PROT_WRITE | VM_PROT_READ;
    }
    if flags & PF_X != 0 {
        prot |= VM_PROT_EXECUTE | VM_PROT_READ;
    }
    prot
}

/// The page runs the program's segments need, in address order: one per stretch of
/// consecutive pages with the same protection. A page two segments share gets both
/// protections; one that would then be writable and executable is refused.
pub fn page_runs(elf: &Elf<'_>) -> Result<Vec<PageRun>, ElfError> {
    let mut pages: BTreeMap<u64, u32> = BTreeMap::new();
    for seg in elf.segments() {
        let seg = seg?;
        if seg.memsz == 0 {
            continue;
        }
        let mut page = seg.vaddr & !(PAGE_SIZE - 1);
        while page < seg.vaddr + seg.memsz {
            *pages.entry(page).or_insert(0) |= prot_of(seg.flags);
            page += PAGE_SIZE;
        }
    }
    let mut runs: Vec<PageRun> = Vec::new();
    for (&page, &prot) in &pages {
        if prot & VM_PROT_WRITE != 0 && prot & VM_PROT_EXECUTE != 0 {
            return Err(ElfError::WritableAndExecutable);
        }
        match runs.last_mut() {
            Some(run) if run.end == page && run.prot == prot => run.end += PAGE_SIZE,
            _ => runs.push(PageRun {
                start: page,
                end: page + PAGE_SIZE,
                prot,
            }),
        }
    }
    Ok(runs)
}

/// The start-up stack below `top` for `argv`: the initial `sp` (16-byte aligned) and the
/// bytes from `sp` up to `top` (argc, the argv pointers, NULL, an empty envp's NULL, then
/// the strings, NUL-ended, 16-byte aligned below `top`).
pub fn stack(top: u64, argv: &[&str]) -> (u64, Vec<u8>) {
    let strings_len: u64 = argv.iter().map(|a| a.len() as u64 + 1).sum();
    let strings_at = (top - strings_len) & !15;
    let words = 1 + argv.len() as u64 + 1 + 1;
    let sp = (strings_at - 8 * words) & !15;
    let mut bytes = alloc::vec![0u8; (top - sp) as usize];
    let mut put = |at: u64, data: &[u8]| {
        let o = (at - sp) as usize;
        bytes[o..o + data.len()].copy_from_slice(data);
    };
    put(sp, &(argv.len() as u64).to_le_bytes());
    let mut s = strings_at;
    for (i, arg) in argv.iter().enumerate() {
        put(sp + 8 + 8 * i as u64, &s.to_le_bytes());
        put(s, arg.as_bytes());
        s += arg.len() as u64 + 1;
    }
    (sp, bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::elf::tests::build;
    use std::string::ToString;
    use std::vec;

    #[test]
    fn runs_merge_pages_and_join_protections() {
        let file = build(&[
            (0x40_0000, PF_R | PF_X, &[1; 0x1800], 0x1800),
            (0x40_1800, PF_R, b"ro", 0x1000),
            (0x40_3000, PF_R | PF_W, b"da", 0x2000),
        ]);
        let elf = Elf::parse(&file).unwrap();
        assert_eq!(
            page_runs(&elf).unwrap(),
            vec![
                PageRun {
                    start: 0x40_0000,
                    end: 0x40_2000,
                    prot: VM_PROT_READ | VM_PROT_EXECUTE
                },
                PageRun {
                    start: 0x40_2000,
                    end: 0x40_3000,
                    prot: VM_PROT_READ
                },
                PageRun {
                    start: 0x40_3000,
                    end: 0x40_5000,
                    prot: VM_PROT_READ | VM_PROT_WRITE
                },
            ]
        );
        // Code and data on one page would make it writable and executable.
        let wx = build(&[
            (0x40_0000, PF_R | PF_X, b"code", 4),
            (0x40_0800, PF_R | PF_W, b"data", 4),
        ]);
        assert_eq!(
            page_runs(&Elf::parse(&wx).unwrap()),
            Err(ElfError::WritableAndExecutable)
        );
    }

    #[test]
    fn stack_is_the_contract() {
        let top = 0x8000_0000u64;
        let (sp, bytes) = stack(top, &["prog", "12", "7", "alpha"]);
        assert_eq!(sp % 16, 0);
        assert_eq!(sp + bytes.len() as u64, top);
        let word = |at: u64| {
            let o = (at - sp) as usize;
            u64::from_le_bytes(bytes[o..o + 8].try_into().unwrap())
        };
        let string = |at: u64| {
            let o = (at - sp) as usize;
            let end = bytes[o..].iter().position(|&b| b == 0).unwrap();
            std::str::from_utf8(&bytes[o..o + end]).unwrap().to_string()
        };
        assert_eq!(word(sp), 4);
        let args: vec::Vec<_> = (0..4).map(|i| string(word(sp + 8 + 8 * i))).collect();
        assert_eq!(args, ["prog", "12", "7", "alpha"]);
        assert_eq!(word(sp + 8 + 32), 0, "argv's NULL");
        assert_eq!(word(sp + 8 + 40), 0, "envp's NULL");
        let (sp0, bytes0) = stack(top, &[]);
        assert_eq!((sp0 % 16, word_at(&bytes0, 0)), (0, 0));
    }

    fn word_at(bytes: &[u8], o: usize) -> u64 {
        u64::from_le_bytes(bytes[o..o + 8].try_into().unwrap())
    }

    proptest::proptest! {
        #[test]
        fn runs_never_panic(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..800)) {
            if let Ok(elf) = Elf::parse(&bytes) {
                let _ = page_runs(&elf);
            }
        }
    }
}
