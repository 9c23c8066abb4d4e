//! The kernel's virtual address layout (TTBR1, 48-bit): where the linear map of RAM, the
//! device window, the kernel stacks and the image live. User space is TTBR0.
//!
//! ```text
//! 0xFFFF_0000_0000_0000  linear map of physical memory (PA < 2^47)
//! 0xFFFF_FFFD_0000_0000  kernel stacks: 16 KiB each, an unmapped guard page below
//! 0xFFFF_FFFE_0000_0000  device window (MMIO, the device tree), allocated upwards
//! 0xFFFF_FFFF_8000_0000  the kernel image (kernel.ld)
//! ```

/// log2 of the page size: the kernel's one page size (4 KiB granule, kernel and user alike).
pub const PAGE_SHIFT: u32 = 12;
/// The page size, for the kernel, its tables and the device-tree layer (user programs
/// see the same number as `mach_abi::traps::PAGE_SIZE`, checked below; the linker script
/// `kernel.ld`, which cannot import it, aligns the image's sections to the same value).
pub const PAGE_SIZE: u64 = 1 << PAGE_SHIFT;

const _: () = assert!(PAGE_SIZE == mach_abi::traps::PAGE_SIZE);

/// Base of the linear map: physical address `pa` is visible at `LINEAR_BASE + pa`.
pub const LINEAR_BASE: u64 = 0xFFFF_0000_0000_0000;
/// Largest physical address the linear map can cover.
pub const LINEAR_LIMIT: u64 = 1 << 47;

/// Kernel stacks, one slot of `STACK_SLOT` bytes each: the stack at the top, the rest unmapped.
pub const STACKS_BASE: u64 = 0xFFFF_FFFD_0000_0000;
pub const KERNEL_STACK_SIZE: u64 = 16 * 1024;
pub const STACK_SLOT: u64 = 32 * 1024;
pub const STACK_SLOTS: u64 = (DEVICE_BASE - STACKS_BASE) / STACK_SLOT;

/// Device window: MMIO and the device tree, mapped on demand.
pub const DEVICE_BASE: u64 = 0xFFFF_FFFE_0000_0000;
pub const DEVICE_END: u64 = 0xFFFF_FFFF_0000_0000;

/// Link address of the kernel image (must match kernel.ld).
pub const KIMAGE_VA: u64 = 0xFFFF_FFFF_8000_0000;

/// The virtual range of kernel stack slot `slot`: (lowest mapped address, top).
pub const fn stack_slot(slot: u64) -> (u64, u64) {
    let top = STACKS_BASE + (slot + 1) * STACK_SLOT;
    (top - KERNEL_STACK_SIZE, top)
}

/// The stack slot whose guard gap (the unmapped part of the slot, below its stack) holds
/// `va`, if any: a fault there is that stack overflowing.
pub const fn stack_guard_slot(va: u64) -> Option<u64> {
    if va < STACKS_BASE || va >= DEVICE_BASE {
        return None;
    }
    let offset = va - STACKS_BASE;
    if offset % STACK_SLOT < STACK_SLOT - KERNEL_STACK_SIZE {
        Some(offset / STACK_SLOT)
    } else {
        None
    }
}

// The windows must not overlap; checked when the kernel compiles.
const _: () = assert!(LINEAR_BASE + LINEAR_LIMIT <= STACKS_BASE);
const _: () = assert!(STACKS_BASE < DEVICE_BASE && DEVICE_END <= KIMAGE_VA);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_stack_slot_ends_at_the_device_window() {
        let (low, top) = stack_slot(STACK_SLOTS - 1);
        assert_eq!(top, DEVICE_BASE);
        assert_eq!(top - low, KERNEL_STACK_SIZE);
    }

    #[test]
    fn stack_slots_keep_a_guard_gap() {
        let (_, top0) = stack_slot(0);
        let (low1, _) = stack_slot(1);
        assert!(low1 - top0 >= PAGE_SIZE);
    }

    #[test]
    fn a_guard_address_names_its_slot() {
        let (low, top) = stack_slot(5);
        assert_eq!(stack_guard_slot(low - 8), Some(5));
        assert_eq!(stack_guard_slot(top - STACK_SLOT), Some(5));
        assert_eq!(stack_guard_slot(low), None);
        assert_eq!(stack_guard_slot(top - 8), None);
        assert_eq!(stack_guard_slot(top), Some(6));
        assert_eq!(stack_guard_slot(STACKS_BASE - 1), None);
        assert_eq!(stack_guard_slot(DEVICE_BASE), None);
    }
}
