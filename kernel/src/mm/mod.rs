//! Memory management: the kernel's virtual layout, physical frames and (on the target) the
//! mappings the kernel makes for itself. User address spaces come with tasks.

pub mod asid;
pub mod kmem;
pub mod layout;
pub mod object;
pub mod regions;

pub use layout::{PAGE_SHIFT, PAGE_SIZE};

#[cfg(target_os = "none")]
pub mod frame;
#[cfg(target_os = "none")]
pub mod heap;
#[cfg(target_os = "none")]
pub mod init;
#[cfg(target_os = "none")]
pub mod vm;

/// A physical address.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct PhysAddr(pub u64);

/// A kernel or user virtual address.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct VirtAddr(pub u64);

impl PhysAddr {
    pub const fn as_u64(self) -> u64 {
        self.0
    }
    /// The address through the kernel's linear map of RAM.
    pub const fn to_linear(self) -> VirtAddr {
        VirtAddr(layout::LINEAR_BASE + self.0)
    }
}

impl VirtAddr {
    pub const fn as_u64(self) -> u64 {
        self.0
    }
    pub fn as_ptr<T>(self) -> *const T {
        self.0 as *const T
    }
    pub fn as_mut_ptr<T>(self) -> *mut T {
        self.0 as *mut T
    }
}

/// Round `x` down to a multiple of `align` (a power of two).
pub const fn align_down(x: u64, align: u64) -> u64 {
    x & !(align - 1)
}

/// Round `x` up to a multiple of `align` (a power of two), saturating at the top.
pub const fn align_up(x: u64, align: u64) -> u64 {
    match x.checked_add(align - 1) {
        Some(v) => v & !(align - 1),
        None => !(align - 1),
    }
}
