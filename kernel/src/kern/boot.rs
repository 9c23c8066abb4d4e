//! The boot sequence, from the first Rust code on the boot CPU to a running machine:
//! device tree, console, memory (`mm::init`), interrupt controller and timer (`irq`),
//! secondary CPUs (`smp`), W^X; then the first tasks (`bootstrap`) or a check or demo
//! (`selftest`).

extern crate alloc;

use crate::arch::{cpu, exception, mmu, uspace};
use crate::devtree::{self, GicInfo, MachineConfig};
use crate::ids::CpuId;
use crate::kern::bootargs::{self, BootArgs};
use crate::kern::power;
use crate::kern::{bootstrap, console, irq, sched, selftest, smp, thread};
use crate::mm::{PhysAddr, asid};
use crate::percpu::{self, CpuState};
use core::sync::atomic::{AtomicU32, Ordering};
use spin::Once;

static CONFIG: Once<MachineConfig<'static>> = Once::new();

/// The machine as the device tree describes it.
pub fn config() -> &'static MachineConfig<'static> {
    CONFIG.get().expect("device tree parsed at boot")
}

/// The boot CPU's first Rust code (boot.s `primary_high`), MMU on, at the link address.
pub extern "C" fn kernel_main(dtb_pa: u64, load_pa: u64) -> ! {
    mmu::init(load_pa);
    mmu::protect_image();
    cpu::note_cache_line();
    exception::install_vectors();
    percpu::init_this_cpu(CpuId::new(0), None);

    let dtb = match map_device_tree(dtb_pa) {
        Ok(dtb) => dtb,
        Err(_) => cpu::halt(), // No tree, no console: nothing can be said.
    };
    let config = match devtree::parse(dtb) {
        Ok(config) => CONFIG.call_once(|| config),
        Err(error) => device_tree_failure(dtb, &error),
    };
    let args = BootArgs::new(config.bootargs);
    console::init(config.console);
    console::init_log(bootargs::log_level(&args));
    // Said whatever the log level: a value the kernel does not take as given.
    for bad in bootargs::bad_values(&args) {
        crate::println!("{bad}");
    }
    power::init(args.get("exit") == Some("semihosting"), config.psci);
    crate::kern::checks::init(&args);

    // The tree lists CPUs in its own order; index 0 is the first there, which need not be us.
    let me = CpuId::new(config.cpu_index_of_mpidr(cpu::mpidr()).unwrap_or(0));
    percpu::init_this_cpu(me, None);
    percpu::set_cpu_count(config.cpus.len());
    percpu::set_topology(config);
    percpu::current().set_state(CpuState::Online);
    init_asids(config, &args);

    if let Some(error) = &config.cpu_map_error {
        log::warn!("{error}; CPU topology ignored: all CPUs in one cluster");
    }
    let clusters = percpu::cluster_count();
    log::info!(
        "armach: {} ({} CPUs in {clusters} cluster{}, GICv{}, console {:?}), loaded at \
         {load_pa:#x}, tree at {dtb_pa:#x}",
        config.model,
        config.cpus.len(),
        if clusters == 1 { "" } else { "s" },
        if matches!(config.gic, GicInfo::V2 { .. }) {
            2
        } else {
            3
        },
        config.console.map(|c| c.kind),
    );
    log::info!("bootargs: {}", config.bootargs);

    crate::mm::init::init(
        config,
        load_pa,
        dtb_pa,
        dtb.len() as u64,
        bootargs::kmem_task_limit(&args),
    );
    if !thread::prepare_stack_window() {
        panic!("no memory for the kernel stack tables");
    }
    irq::init_from_tree(config, bootargs::hz(&args));
    sched::migrate::init(bootargs::balance_params(&args), irq::tick_interval());
    if bootargs::trace_checked(&args).0 {
        sched::trace::set_enabled(true);
        log::info!("trace: scheduler events recorded from boot (trace=1)");
    }
    cpu::enable_fp();
    crate::arch::timer::allow_user_counter();
    let pan = cpu::enable_pan();
    sched::init_this_cpu();
    BOOT_CPU.store(me.index() as u32, Ordering::Relaxed);

    let online = smp::start_secondaries(config, load_pa);
    mmu::drop_identity_map();
    log::info!(
        "{online} of {} CPUs online; PAN {}",
        config.cpus.len(),
        if pan { "on" } else { "not available" }
    );

    if args.get("halt-after") == Some("boot") {
        selftest::boot_check(config, online);
    }
    if let Some(how) = args.get("crash") {
        selftest::crash(how);
    }
    match config.initrd {
        Some(initrd) => bootstrap::start_init(initrd, &args),
        None => selftest::idle_demo(config),
    }
}

/// The ASID width: the hardware's, or narrower with `asid-bits=` (but wide enough for
/// the CPUs, `mm::asid`).
fn init_asids(config: &MachineConfig<'_>, args: &BootArgs<'_>) {
    let cpus = config.cpus.len();
    let hardware = uspace::hardware_asid_bits();
    let (bits, bad) = bootargs::asid_bits(args, asid::min_bits_for(cpus), hardware);
    if let Some(bad) = bad {
        crate::println!("{bad}");
    }
    let bits = uspace::init_asids(bits, cpus);
    log::info!("asid: {bits}-bit ASIDs (the CPUs have {hardware})");
}

static BOOT_CPU: AtomicU32 = AtomicU32::new(0);

/// The index of the CPU that booted the kernel.
pub fn boot_cpu() -> CpuId {
    CpuId::new(BOOT_CPU.load(Ordering::Relaxed) as usize)
}

/// Map the device tree read-only: its header first, for the size, then all of it.
fn map_device_tree(dtb_pa: u64) -> Result<&'static [u8], ()> {
    if dtb_pa == 0 || !dtb_pa.is_multiple_of(8) {
        return Err(());
    }
    let header = mmu::map_readonly(PhysAddr(dtb_pa), 64).map_err(|_| ())?;
    // SAFETY: the mapping just made covers 64 readable bytes at `header`.
    let head = unsafe { core::slice::from_raw_parts(header.as_ptr::<u8>(), 64) };
    let size = devtree::total_size(head).map_err(|_| ())?;
    let all = mmu::map_readonly(PhysAddr(dtb_pa), size as u64).map_err(|_| ())?;
    // SAFETY: mapped read-only for `size` bytes, never unmapped or written.
    Ok(unsafe { core::slice::from_raw_parts(all.as_ptr::<u8>(), size) })
}

/// The tree is unusable. Say so on whatever console it still names, then stop.
fn device_tree_failure(dtb: &'static [u8], error: &devtree::DtError) -> ! {
    console::init(devtree::console_only(dtb));
    console::print_emergency(format_args!("armach: unusable device tree: {error}\n"));
    cpu::halt()
}

/// A secondary CPU's first Rust code (boot.s `secondary_high`).
pub extern "C" fn secondary_main(index: u64) -> ! {
    smp::secondary_start(index as usize)
}
