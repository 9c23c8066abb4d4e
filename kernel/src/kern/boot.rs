//! The boot sequence, from the first Rust code on the boot CPU to a running machine:
//! device tree, console, memory, interrupt controller, timer, secondary CPUs, W^X. Also the
//! boot check (`halt-after=boot`).

extern crate alloc;

use crate::arch::{cpu, exception, mmu, timer, uspace};
use crate::devtree::{self, GicInfo, MachineConfig, PhysRange};
use crate::drivers::gic::{Gic, v2::GicV2, v3::GicV3};
use crate::kern::bootargs::{self, BootArgs};
use crate::kern::percpu::{self, CpuState};
use crate::kern::power::{self, ExitStatus, power_off};
use crate::kern::{console, cpio, irq, loader, sched, smp, syscall, thread};
use crate::mm::{PAGE_SIZE, PhysAddr, asid, frame, heap, kmem};
use arrayvec::ArrayVec;
use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};
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
    percpu::init_this_cpu(0, None);

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

    // The tree lists CPUs in its own order; index 0 is the first there, which need not be us.
    let me = config.cpu_index_of_mpidr(cpu::mpidr()).unwrap_or(0);
    percpu::init_this_cpu(me, None);
    percpu::set_cpu_count(config.cpus.len());
    percpu::current().set_state(CpuState::Online);
    init_asids(config, &args);

    log::info!(
        "armach: {} ({} CPUs, GICv{}, console {:?}), loaded at {load_pa:#x}, tree at {dtb_pa:#x}",
        config.model,
        config.cpus.len(),
        if matches!(config.gic, GicInfo::V2 { .. }) {
            2
        } else {
            3
        },
        config.console.map(|c| c.kind),
    );
    log::info!("bootargs: {}", config.bootargs);

    init_memory(config, load_pa, dtb_pa, dtb.len() as u64, &args);
    init_interrupts(config, &args);
    cpu::enable_fp();
    crate::arch::timer::allow_user_counter();
    let pan = cpu::enable_pan();
    sched::init_this_cpu();
    BOOT_CPU.store(me as u32, Ordering::Relaxed);

    let online = smp::start_secondaries(config, load_pa);
    mmu::drop_identity_map();
    log::info!(
        "{online} of {} CPUs online; PAN {}",
        config.cpus.len(),
        if pan { "on" } else { "not available" }
    );

    if args.get("halt-after") == Some("boot") {
        boot_check(config, online);
    }
    if let Some(how) = args.get("crash") {
        crash(how);
    }
    match config.initrd {
        Some(initrd) => start_init(initrd, &args),
        None => idle_demo(config),
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
pub fn boot_cpu() -> usize {
    BOOT_CPU.load(Ordering::Relaxed) as usize
}

/// Free frames and kernel heap bytes in use when the first user task was created (the
/// leak check's reference).
static FRAMES_BEFORE: AtomicU64 = AtomicU64::new(0);
static HEAP_BEFORE: AtomicU64 = AtomicU64::new(0);

/// Most programs `init=` may start together.
const MAX_INIT_PROGRAMS: usize = 16;

/// Start the bootstrap programs from the RAM disk (`init=a,b,c`, each its own task, in that
/// order; else the RAM disk's first file), then become the boot CPU's idle thread. Every
/// program is loaded before any runs, so the run cannot end while one is still to start.
/// When every task has gone, check that every frame came back and power off.
fn start_init(initrd: PhysRange, args: &BootArgs<'_>) -> ! {
    // SAFETY: the RAM disk is RAM the frame allocator left out; it is never written.
    let archive = unsafe {
        core::slice::from_raw_parts(
            PhysAddr(initrd.base).to_linear().as_ptr::<u8>(),
            initrd.size as usize,
        )
    };
    let entries = || cpio::entries(archive).filter_map(Result::ok);
    for e in cpio::entries(archive) {
        if let Err(err) = e {
            log::error!("initrd: {err}");
        }
    }
    let mut wanted: ArrayVec<Option<&str>, MAX_INIT_PROGRAMS> = ArrayVec::new();
    match bootargs::init_programs(args) {
        Some(names) => {
            for name in names {
                if wanted.try_push(Some(name)).is_err() {
                    crate::println!(
                        "gnumach-test-failure: init= names more than {MAX_INIT_PROGRAMS} programs"
                    );
                    power_off(ExitStatus::TestFailed)
                }
            }
        }
        None => wanted.push(None),
    }
    if wanted.is_empty() {
        wanted.push(None); // `init=` with no names: said at boot; the first program.
    }
    let mut programs: ArrayVec<cpio::Entry<'_>, MAX_INIT_PROGRAMS> = ArrayVec::new();
    for name in &wanted {
        match entries().find(|e| name.is_none_or(|name| e.name == name)) {
            Some(entry) => programs.push(entry),
            None => {
                crate::println!(
                    "gnumach-test-failure: no program {:?} in the initial RAM disk",
                    name.unwrap_or("(first)")
                );
                power_off(ExitStatus::TestFailed)
            }
        }
    }
    FRAMES_BEFORE.store(frame::counts().0, Ordering::Relaxed);
    let host_priv = alloc::format!("{}", syscall::placeholder_names::HOST_PRIV);
    let device = alloc::format!("{}", syscall::placeholder_names::DEVICE);
    HEAP_BEFORE.store(heap::usage().0 as u64, Ordering::Relaxed);
    let mut loaded = ArrayVec::<_, MAX_INIT_PROGRAMS>::new();
    for entry in &programs {
        let argv = [entry.name, host_priv.as_str(), device.as_str()];
        match loader::load_program(entry.name, entry.data, &argv) {
            Ok((task, thread)) => {
                log::info!("starting {} as task {}", entry.name, task.id);
                loaded.push(thread);
            }
            Err(e) => {
                crate::println!("gnumach-test-failure: cannot start {e}");
                power_off(ExitStatus::TestFailed)
            }
        }
    }
    for thread in loaded {
        loader::start(thread);
    }
    sched::idle_loop(check_when_tasks_gone)
}

/// When the boot CPU first saw every user task gone (timer counter), 0 before.
static GONE_AT: AtomicU64 = AtomicU64::new(0);

/// The boot CPU's idle hook: once every user task has gone, compare the free frames and
/// the kernel heap bytes in use with their values before the first task and power off.
/// The last task is reported gone from its own destructor, while another CPU may still be
/// finishing the frees (the task's fields, its last thread); so a difference is only a
/// leak if it is still there a second later.
fn check_when_tasks_gone() {
    if percpu::current_index() != boot_cpu() || !sched::tasks_gone() {
        return;
    }
    let now = timer::counter();
    let gone_at = match GONE_AT.load(Ordering::Relaxed) {
        0 => {
            GONE_AT.store(now, Ordering::Relaxed);
            now
        }
        t => t,
    };
    let before = FRAMES_BEFORE.load(Ordering::Relaxed);
    let heap_before = HEAP_BEFORE.load(Ordering::Relaxed);
    thread::purge_dead_stacks();
    let (after, total) = frame::counts();
    let heap_after = heap::usage().0 as u64;
    let charged = kmem::BUDGET.charged();
    let clean = after == before && heap_after == heap_before && charged == 0;
    if !clean && now < gone_at + timer::frequency() {
        return;
    }
    crate::println!(
        "kernel: all tasks exited; free frames {after} of {total}, {before} before the first task; \
         kernel heap {heap_after} bytes in use, {heap_before} before"
    );
    if after != before {
        crate::println!(
            "gnumach-test-failure: frames leaked: {} frames not returned",
            before as i64 - after as i64
        );
    }
    if heap_after != heap_before || charged != 0 {
        crate::println!(
            "gnumach-test-failure: kernel heap leaked: {} bytes not returned, {charged} bytes still charged to tasks",
            heap_after as i64 - heap_before as i64
        );
    }
    if !clean {
        power_off(ExitStatus::TestFailed);
    }
    power_off(ExitStatus::Success)
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

/// Linear map of all RAM, then the frame allocator over what is not reserved.
fn init_memory(
    config: &MachineConfig<'_>,
    load_pa: u64,
    dtb_pa: u64,
    dtb_size: u64,
    args: &BootArgs<'_>,
) {
    for region in &config.memory {
        if let Err(e) = mmu::map_linear(PhysAddr(region.base), region.size) {
            panic!(
                "cannot map RAM {:#x}+{:#x}: {e:?}",
                region.base, region.size
            );
        }
    }
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
    let task_limit = args.get("kmem-task-limit").map(|v| {
        kmem::parse_size(v).unwrap_or_else(|| {
            log::warn!("kmem-task-limit={v}: not a size; using the default");
            usize::MAX
        })
    });
    let task_limit = task_limit.filter(|&l| l != usize::MAX);
    let (budget, per_task) = kmem::init(heap::usage().1, task_limit);
    log::info!(
        "kernel heap: {} KiB; user tasks may charge {} KiB in all, {} KiB each",
        heap::usage().1 >> 10,
        budget >> 10,
        per_task >> 10
    );
    if !thread::prepare_stack_window() {
        panic!("no memory for the kernel stack tables");
    }
    let (free, total) = frame::counts();
    log::info!(
        "memory: {} MiB usable ({free} of {total} frames free)",
        (total * PAGE_SIZE) >> 20
    );
}

/// The GIC the tree names, this CPU's interface, and the timer tick.
fn init_interrupts(config: &MachineConfig<'_>, args: &BootArgs<'_>) {
    let map = |r: &PhysRange| {
        mmu::map_device(PhysAddr(r.base), r.size)
            .unwrap_or_else(|e| panic!("cannot map GIC registers at {:#x}: {e:?}", r.base))
            .as_u64() as usize
    };
    let gic = match &config.gic {
        // SAFETY: the addresses map the GIC the device tree describes, for good.
        GicInfo::V2 { dist, cpu } => Gic::V2(unsafe { GicV2::new(map(dist), map(cpu)) }),
        GicInfo::V3 { dist, redist } => {
            let regions = redist.iter().map(|r| (map(r), r.size as usize)).collect();
            // SAFETY: as above.
            Gic::V3(unsafe { GicV3::new(map(dist), regions) })
        }
    };
    let hz = bootargs::hz(args);
    irq::init(gic, config.timer.virt_intid, hz);
    if !irq::init_this_cpu() {
        panic!(
            "no GIC interface for the boot CPU (MPIDR {:#x})",
            cpu::mpidr()
        );
    }
    log::info!("timer: {} Hz counter, {hz} Hz tick", timer::frequency());
    cpu::irq_enable();
}

/// `crash=panic|stack-overflow|null|write-text-alias`: fail on purpose, to show (and let
/// the test matrix check) how the kernel reports its own failures: exit status 2 with a
/// report. `write-text-alias` writes a word of the kernel's text back unchanged through
/// the linear map, which must fault (W^X holds there too); if the write goes through, the
/// kernel says so and ends with the test-failure status.
fn crash(how: &str) {
    #[inline(never)]
    fn recurse(depth: u64) -> u64 {
        let mut frame = [depth; 64];
        core::hint::black_box(&mut frame);
        if core::hint::black_box(depth) == u64::MAX {
            return 0;
        }
        recurse(depth + 1).wrapping_add(frame[(depth % 64) as usize])
    }
    log::warn!("crash={how} requested");
    match how {
        "panic" => panic!("crash=panic requested on the command line"),
        "stack-overflow" => {
            core::hint::black_box(recurse(0));
        }
        "null" => {
            // SAFETY: deliberately unsound: reading address 0 must fault (page 0 is never
            // mapped) and be reported as a kernel exception.
            let v =
                unsafe { core::ptr::read_volatile(core::hint::black_box(0usize) as *const u64) };
            core::hint::black_box(v);
        }
        "write-text-alias" => {
            let text = crash as *const () as u64;
            let alias = mmu::text_linear_alias(text).as_mut_ptr::<u64>();
            // SAFETY: reading the kernel's own text through the linear map, which maps all
            // of RAM, is sound; writing the same word back would change nothing even if
            // it were allowed, and it must fault (read-only alias), reported as a kernel
            // exception.
            unsafe {
                let word = core::ptr::read_volatile(alias);
                core::ptr::write_volatile(alias, word);
            }
            crate::println!(
                "gnumach-test-failure: crash=write-text-alias: the kernel text at {text:#x} was \
                 written through its linear-map alias {:#x}: it is writable",
                alias as u64
            );
            power_off(ExitStatus::TestFailed)
        }
        // Named on the console at boot (`bootargs::bad_values`).
        _ => {}
    }
}

/// `halt-after=boot`: wait until every online CPU has taken a timer interrupt and an IPI,
/// print the result and power off (status 3 if a CPU did not start).
fn boot_check(config: &MachineConfig<'_>, online: usize) -> ! {
    let n = config.cpus.len();
    let deadline = timer::counter() + timer::frequency() * 10;
    loop {
        let pending = (0..n)
            .map(percpu::cpu)
            .filter(|c| c.state() == CpuState::Online)
            .filter(|c| {
                c.timer_ticks.load(Ordering::Relaxed) == 0 || c.ipis.load(Ordering::Relaxed) == 0
            })
            .count();
        if pending == 0 {
            break;
        }
        if timer::counter() > deadline {
            log::error!("{pending} online CPUs took no timer interrupt or no IPI in 10 s");
            power_off(ExitStatus::TestFailed);
        }
        cpu::wait_for_interrupt();
    }
    for (i, c) in (0..n).map(|i| (i, percpu::cpu(i))) {
        log::info!(
            "cpu{i} MPIDR {:#x}: {:?}, {} timer interrupts, {} IPIs",
            config.cpus[i].mpidr,
            c.state(),
            c.timer_ticks.load(Ordering::Relaxed),
            c.ipis.load(Ordering::Relaxed)
        );
    }
    crate::println!("boot: {online} of {n} CPUs online");
    if online == n {
        power_off(ExitStatus::Success)
    } else {
        for (i, cpu) in config.cpus.iter().enumerate() {
            if percpu::cpu(i).state() != CpuState::Online {
                crate::println!("boot: CPU with MPIDR {:#x} did not start", cpu.mpidr);
            }
        }
        power_off(ExitStatus::CpuFailed)
    }
}

/// Without a test to run: show the CPUs ticking for a few seconds, then power off.
fn idle_demo(config: &MachineConfig<'_>) -> ! {
    let freq = timer::frequency();
    let start = timer::counter();
    for second in 1..=3u64 {
        while timer::counter() < start + second * freq {
            cpu::wait_for_interrupt();
        }
        crate::print!("t={second}s ticks per CPU:");
        for i in 0..config.cpus.len() {
            crate::print!(" {}", percpu::cpu(i).timer_ticks.load(Ordering::Relaxed));
        }
        crate::println!();
    }
    crate::println!("armach: demo done (user programs arrive with the next issue)");
    power_off(ExitStatus::Success)
}

/// A secondary CPU's first Rust code (boot.s `secondary_high`).
pub extern "C" fn secondary_main(index: u64) -> ! {
    smp::secondary_start(index as usize)
}
