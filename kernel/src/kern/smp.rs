//! Starting the secondary CPUs, one at a time: a kernel stack each, then PSCI `CPU_ON` or
//! the spin-table release, whichever the device tree gives for that CPU, and a bounded
//! wait for it to come online. A CPU that does not is marked failed and reported by MPIDR.

use crate::arch::boot::{prepare_secondary, secondary_entry_pa};
use crate::arch::{cpu, exception, mmu, psci, timer};
use crate::devtree::{CpuInfo, EnableMethod, MachineConfig};
use crate::ids::CpuId;
use crate::kern::{irq, power};
use crate::mm::layout::PAGE_SIZE;
use crate::mm::{PhysAddr, frame};
use crate::percpu::{self, CpuState};

/// How long a CPU gets to come online.
const START_TIMEOUT_MS: u64 = 2000;

/// Start every CPU of the tree except the running one. Returns how many are online, this
/// one included.
pub fn start_secondaries(config: &MachineConfig<'_>, load_pa: u64) -> usize {
    let me = cpu::mpidr();
    let entry = secondary_entry_pa(load_pa);
    let mut online = 1;
    for (index, info) in config.cpus.iter().enumerate() {
        let index = CpuId::new(index);
        if info.mpidr == me {
            continue;
        }
        match start_one(config, index, info, entry) {
            Ok(()) => online += 1,
            Err(why) => {
                percpu::cpu(index).set_state(CpuState::Failed);
                log::error!(
                    "cpu{index} (MPIDR {:#x}) failed to start: {why}",
                    info.mpidr
                );
            }
        }
    }
    online
}

fn start_one(
    config: &MachineConfig<'_>,
    index: CpuId,
    info: &CpuInfo,
    entry: u64,
) -> Result<(), &'static str> {
    let top = crate::kern::thread::map_stack_slot(index.index() as u32)
        .map(|(_, top)| top)
        .ok_or("no memory for its kernel stack")?;
    let emergency = frame::alloc(percpu::EMERGENCY_STACK_SIZE / PAGE_SIZE as usize)
        .ok_or("no memory for its emergency stack")?;
    EMERGENCY_TOPS[index.index().min(crate::devtree::MAX_CPUS - 1)].store(
        emergency.to_linear().as_u64() + percpu::EMERGENCY_STACK_SIZE as u64,
        core::sync::atomic::Ordering::Relaxed,
    );
    prepare_secondary(info.mpidr, top, index.index());
    match info.enable {
        EnableMethod::Psci => {
            let conduit = power::psci_conduit().ok_or("enable-method psci but no /psci node")?;
            let r = psci::cpu_on(conduit, info.mpidr, entry, 0);
            if r != psci::SUCCESS {
                log::error!("PSCI CPU_ON returned {r}");
                return Err("PSCI CPU_ON refused");
            }
        }
        EnableMethod::SpinTable { release_addr } => {
            release_from_spin_table(config, release_addr, entry)?
        }
        EnableMethod::Unspecified => return Err("no enable-method"),
    }
    let deadline = timer::counter() + timer::frequency() * START_TIMEOUT_MS / 1000;
    while percpu::cpu(index).state() != CpuState::Online {
        if timer::counter() > deadline {
            return Err("timed out waiting for it");
        }
        // Woken by the new CPU's `sev`, or by our own timer tick.
        cpu::wait_for_event();
    }
    Ok(())
}

/// Write the entry point to the CPU's release address, clean it to the point of coherency
/// (the waiting CPU reads with its MMU and caches off) and wake it.
fn release_from_spin_table(
    config: &MachineConfig<'_>,
    release_addr: u64,
    entry: u64,
) -> Result<(), &'static str> {
    if !release_addr.is_multiple_of(8) {
        return Err("misaligned cpu-release-addr");
    }
    // In RAM (as on the Pi 4) the word is reached through the linear map, so it is never
    // mapped with two different memory types; elsewhere it gets a mapping of its own.
    let va = if config.memory.iter().any(|r| r.contains(release_addr)) {
        PhysAddr(release_addr).to_linear().as_u64()
    } else {
        let page = crate::mm::align_down(release_addr, PAGE_SIZE);
        mmu::map_device(PhysAddr(page), PAGE_SIZE)
            .map_err(|_| "cannot map cpu-release-addr")?
            .as_u64()
            + (release_addr - page)
    };
    // SAFETY: `va` maps the release word the firmware's spin loop polls; writing the entry
    // address there is the spin-table protocol (Linux booting.rst).
    unsafe { core::ptr::write_volatile(va as *mut u64, entry) };
    cpu::clean_dcache_to_poc(va, 8);
    cpu::send_event();
    Ok(())
}

/// Each secondary CPU's emergency stack, allocated by the boot CPU before starting it.
static EMERGENCY_TOPS: [core::sync::atomic::AtomicU64; crate::devtree::MAX_CPUS] =
    [const { core::sync::atomic::AtomicU64::new(0) }; crate::devtree::MAX_CPUS];

/// A secondary CPU's first Rust code (boot.s `secondary_high`).
pub fn secondary_start(index: usize) -> ! {
    let emergency = EMERGENCY_TOPS[index.min(crate::devtree::MAX_CPUS - 1)]
        .load(core::sync::atomic::Ordering::Relaxed);
    percpu::init_this_cpu(CpuId::new(index), Some(emergency));
    exception::install_vectors();
    cpu::note_cache_line();
    if !irq::init_this_cpu() {
        log::error!("cpu{index}: no GIC interface for MPIDR {:#x}", cpu::mpidr());
        cpu::halt();
    }
    cpu::enable_fp();
    crate::arch::timer::allow_user_counter();
    cpu::enable_pan();
    crate::kern::sched::init_this_cpu();
    percpu::current().set_state(CpuState::Online);
    cpu::send_event();
    log::debug!("cpu{index} online (MPIDR {:#x})", cpu::mpidr());
    cpu::irq_enable();
    crate::kern::sched::idle_loop(crate::kern::selftest::secondary_idle)
}
