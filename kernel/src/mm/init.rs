//! Memory at boot: the linear map of RAM, the frame allocator over what the image, the
//! device tree and the firmware leave, the kernel heap and the kernel-memory budget.

use crate::arch::mmu;
use crate::devtree::{MachineConfig, PhysRange};
use crate::mm::{PAGE_SIZE, PhysAddr, frame, heap, kmem};
use arrayvec::ArrayVec;

/// Linear map of all RAM, then the frame allocator over what is not reserved.
///
/// `task_limit`: the `kmem-task-limit=` boot argument, if given and valid.
pub fn init(
    config: &MachineConfig<'_>,
    load_pa: u64,
    dtb_pa: u64,
    dtb_size: u64,
    task_limit: Option<usize>,
) {
    for region in &config.memory {
        if let Err(e) = mmu::map_linear(PhysAddr(region.base), region.size) {
            panic!(
                "cannot map RAM {:#x}+{:#x}: {e:?}",
                region.base, region.size
            );
        }
    }
    frame::set_ram_size(config.memory.iter().map(|r| r.size).sum());
    let (_, image_size) = mmu::image_phys_range();
    let holes = [
        PhysRange {
            base: load_pa,
            size: image_size,
        },
        PhysRange {
            base: dtb_pa,
            size: dtb_size,
        },
    ];
    let mut usable: ArrayVec<PhysRange, 64> = ArrayVec::new();
    if let Err(e) = config.usable_memory_excluding(&holes, &mut usable) {
        log::warn!("memory map: {e}");
    }
    for r in &usable {
        log::debug!("usable RAM {:#x}-{:#x}", r.base, r.end());
        frame::add_region(PhysAddr(r.base), r.size);
    }
    mmu::use_frame_allocator();
    let (_, total) = frame::counts();
    let heap_bytes = (total * PAGE_SIZE / 16).clamp(4 << 20, 64 << 20);
    if !heap::init(heap_bytes) {
        panic!("no memory for a {} KiB kernel heap", heap_bytes >> 10);
    }
    let (budget, per_task) = kmem::init(heap::usage().1, task_limit);
    log::info!(
        "kernel heap: {} KiB; user tasks may charge {} KiB in all, {} KiB each",
        heap::usage().1 >> 10,
        budget >> 10,
        per_task >> 10
    );
    let (free, total) = frame::counts();
    log::info!(
        "memory: {} MiB usable ({free} of {total} frames free)",
        (total * PAGE_SIZE) >> 20
    );
}
