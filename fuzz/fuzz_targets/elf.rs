//! Fuzz target: arbitrary bytes as a program file into the kernel's ELF reader
//! (`armach_kernel::kern::elf`). The contract: no panic, and what it accepts has its entry
//! and every loadable segment inside user space and every segment's file bytes inside the
//! file, never both writable and executable.

use armach_kernel::kern::elf::{Elf, PF_W, PF_X};
use honggfuzz::fuzz;
use mach_abi::traps::VM_MAX_USER_ADDRESS;

fn main() {
    loop {
        fuzz!(|data: &[u8]| { check(data) });
    }
}

fn check(data: &[u8]) {
    let Ok(elf) = Elf::parse(data) else {
        return;
    };
    assert!(elf.entry < VM_MAX_USER_ADDRESS);
    let mut any = false;
    for segment in elf.segments() {
        let s = segment.expect("parse accepted a file with a bad segment");
        any = true;
        assert!(s.filesz <= s.memsz);
        assert!(
            s.vaddr
                .checked_add(s.memsz)
                .is_some_and(|end| end <= VM_MAX_USER_ADDRESS)
        );
        assert!(s.flags & PF_W == 0 || s.flags & PF_X == 0);
        assert_eq!(elf.data(&s).len() as u64, s.filesz);
    }
    assert!(any, "parse accepted a file with no loadable segment");
}
