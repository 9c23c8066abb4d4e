//! What the kernel does on request to show itself: the boot check (`halt-after=boot`),
//! deliberate crashes (`crash=`) that show how it reports its own failures, and the demo
//! it runs when no RAM disk is given.

use crate::arch::{cpu, mmu, timer};
use crate::devtree::MachineConfig;
use crate::ids::CpuId;
use crate::kern::power::{ExitStatus, power_off};
use crate::percpu::{self, CpuState};
use core::sync::atomic::{AtomicBool, Ordering};

/// Recurse until the stack overflows.
#[inline(never)]
fn recurse(depth: u64) -> u64 {
    let mut frame = [depth; 64];
    core::hint::black_box(&mut frame);
    if core::hint::black_box(depth) == u64::MAX {
        return 0;
    }
    recurse(depth + 1).wrapping_add(frame[(depth % 64) as usize])
}

/// `crash=secondary-stack-overflow` asked CPU 1 to overflow its stack.
static CRASH_SECONDARY: AtomicBool = AtomicBool::new(false);

/// The secondary CPUs' idle hook: overflow this CPU's stack if asked to.
pub fn secondary_idle() {
    if CRASH_SECONDARY.load(Ordering::Relaxed) && percpu::current_cpu() == CpuId::new(1) {
        core::hint::black_box(recurse(0));
    }
}

/// `crash=panic|stack-overflow|secondary-stack-overflow|null|write-text-alias`: fail on
/// purpose, to show (and let the test matrix check) how the kernel reports its own
/// failures: exit status 2 with a report. `stack-overflow` overflows the boot CPU's boot
/// stack, `secondary-stack-overflow` the stack CPU 1 runs its idle loop on, which lives in
/// a kernel stack slot with a guard gap below (as threads' stacks do); with one CPU it
/// does nothing. `write-text-alias` writes a word of the kernel's text back unchanged
/// through the linear map, which must fault (W^X holds there too); if the write goes
/// through, the kernel says so and ends with the test-failure status.
pub fn crash(how: &str) {
    log::warn!("crash={how} requested");
    match how {
        "panic" => panic!("crash=panic requested on the command line"),
        "stack-overflow" => {
            core::hint::black_box(recurse(0));
        }
        "secondary-stack-overflow" => {
            let cpu1 = CpuId::new(1);
            if percpu::cpu_count() > 1 && percpu::cpu(cpu1).state() == CpuState::Online {
                CRASH_SECONDARY.store(true, Ordering::Relaxed);
                crate::kern::sched::kick(cpu1);
                // CPU 1 ends the run; until then this CPU waits.
                loop {
                    cpu::wait_for_interrupt();
                }
            }
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
pub fn boot_check(config: &MachineConfig<'_>, online: usize) -> ! {
    let n = config.cpus.len();
    let deadline = timer::counter() + timer::frequency() * 10;
    loop {
        let pending = CpuId::first(n)
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
    for (i, c) in (0..n).map(|i| (i, percpu::cpu(CpuId::new(i)))) {
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
            if percpu::cpu(CpuId::new(i)).state() != CpuState::Online {
                crate::println!("boot: CPU with MPIDR {:#x} did not start", cpu.mpidr);
            }
        }
        power_off(ExitStatus::CpuFailed)
    }
}

/// Without a test to run: show the CPUs ticking for a few seconds, then power off.
pub fn idle_demo(config: &MachineConfig<'_>) -> ! {
    let freq = timer::frequency();
    let start = timer::counter();
    for second in 1..=3u64 {
        while timer::counter() < start + second * freq {
            cpu::wait_for_interrupt();
        }
        crate::print!("t={second}s ticks per CPU:");
        for i in 0..config.cpus.len() {
            let ticks = percpu::cpu(CpuId::new(i))
                .timer_ticks
                .load(Ordering::Relaxed);
            crate::print!(" {ticks}");
        }
        crate::println!();
    }
    crate::println!("armach: demo done (user programs arrive with the next issue)");
    power_off(ExitStatus::Success)
}
