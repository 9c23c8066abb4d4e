//! Interrupt dispatch: the timer tick, inter-processor interrupts (SGIs) and the GIC that
//! delivers them. Handlers are short; anything longer will be deferred to an AST.

extern crate alloc;

use crate::arch::{cpu, mmu, timer};
use crate::devtree::{GicInfo, MachineConfig, PhysRange};
use crate::drivers::gic::{Gic, SGI_COUNT, SgiTarget, v2::GicV2, v3::GicV3};
use crate::ids::CpuId;
use crate::mm::PhysAddr;
use crate::percpu::{self, CpuState};
use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use spin::Once;

/// What an SGI asks of the CPU that takes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum Ipi {
    /// Just a wake-up (and the boot check's ping).
    Ping = 0,
    /// Stop: the machine is going down.
    Halt = 1,
}

static GIC: Once<Gic> = Once::new();
static TIMER_INTID: AtomicU32 = AtomicU32::new(u32::MAX);
static TICK_INTERVAL: AtomicU64 = AtomicU64::new(0);

/// Install the interrupt controller (boot CPU, once) and set its distributor up.
pub fn init(gic: Gic, timer_intid: u32, hz: u64) {
    let gic = GIC.call_once(|| gic);
    gic.init_distributor();
    TIMER_INTID.store(timer_intid, Ordering::Relaxed);
    TICK_INTERVAL.store((timer::frequency() / hz).max(1), Ordering::Relaxed);
}

/// Counter ticks per timer tick.
pub fn tick_interval() -> u64 {
    TICK_INTERVAL.load(Ordering::Relaxed).max(1)
}

/// Clock ticks per second (what `init` was given, as the counter allows it).
pub fn tick_hz() -> u64 {
    timer::frequency() / TICK_INTERVAL.load(Ordering::Relaxed).max(1)
}

/// Boot CPU: the GIC the tree names, this CPU's interface, and the timer tick at `hz`;
/// interrupts are enabled on return.
pub fn init_from_tree(config: &MachineConfig<'_>, hz: u64) {
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
    init(gic, config.timer.virt_intid, hz);
    if !init_this_cpu() {
        panic!(
            "no GIC interface for the boot CPU (MPIDR {:#x})",
            cpu::mpidr()
        );
    }
    log::info!("timer: {} Hz counter, {hz} Hz tick", timer::frequency());
    if let Some(intid) = config.console.and_then(|c| c.irq) {
        enable_console_input(intid);
    }
    cpu::irq_enable();
}

pub fn gic() -> Option<&'static Gic> {
    GIC.get()
}

/// Set this CPU's side of the GIC up, enable its timer and start the tick. Returns false if
/// the GIC has no interface for this CPU.
pub fn init_this_cpu() -> bool {
    let Some(gic) = GIC.get() else { return false };
    let me = percpu::current();
    let mpidr = cpu::mpidr();
    let Some(target) = gic.init_cpu(mpidr) else {
        return false;
    };
    me.sgi_interface_mask
        .store(target.interface_mask, Ordering::Relaxed);
    gic.enable_ppi(mpidr, TIMER_INTID.load(Ordering::Relaxed));
    for sgi in 0..SGI_COUNT {
        gic.enable_ppi(mpidr, sgi);
    }
    timer::arm(TICK_INTERVAL.load(Ordering::Relaxed));
    true
}

/// Route the console UART's receive interrupt to this (the boot) CPU and turn it on.
fn enable_console_input(intid: u32) {
    let Some(gic) = GIC.get() else { return };
    if intid == TIMER_INTID.load(Ordering::Relaxed) || intid < 32 {
        return;
    }
    if crate::kern::console::enable_input(intid) {
        let me = percpu::current();
        gic.enable_spi(
            intid,
            SgiTarget {
                interface_mask: me.sgi_interface_mask.load(Ordering::Relaxed),
                mpidr: cpu::mpidr(),
            },
        );
        log::info!("console: input on interrupt {intid}");
    }
}

/// Send `ipi` to `cpu`.
pub fn send_ipi(cpu: CpuId, ipi: Ipi) {
    let Some(gic) = GIC.get() else { return };
    let target = percpu::cpu(cpu);
    gic.send_sgi(
        ipi as u32,
        SgiTarget {
            interface_mask: target.sgi_interface_mask.load(Ordering::Relaxed),
            mpidr: target.mpidr.load(Ordering::Relaxed),
        },
    );
}

/// Ask every other online CPU to stop.
pub fn stop_other_cpus() {
    let me = percpu::current_cpu();
    for i in CpuId::first(percpu::cpu_count()) {
        if i != me && percpu::cpu(i).state() == CpuState::Online {
            send_ipi(i, Ipi::Halt);
        }
    }
}

/// The IRQ vector's handler: take every pending interrupt.
pub fn handle() {
    let Some(gic) = GIC.get() else { return };
    while let Some(ack) = gic.acknowledge() {
        let intid = ack.intid;
        if intid == TIMER_INTID.load(Ordering::Relaxed) {
            timer_tick();
        } else if Some(intid) == crate::kern::console::input_intid() {
            crate::kern::console::input_interrupt();
        } else if intid < SGI_COUNT {
            percpu::current().ipis.fetch_add(1, Ordering::Relaxed);
            if intid == Ipi::Halt as u32 {
                gic.end_of_interrupt(ack);
                cpu::halt();
            }
        } else {
            log::warn!("unexpected interrupt {intid}");
        }
        gic.end_of_interrupt(ack);
    }
}

fn timer_tick() {
    timer::arm(TICK_INTERVAL.load(Ordering::Relaxed));
    let me = percpu::current();
    let ticks = me.timer_ticks.fetch_add(1, Ordering::Relaxed) + 1;
    if me.id().index() == 0 {
        crate::kern::device::tick();
    }
    boot_ring_step(me);
    crate::kern::sched::tick();
    crate::kern::checks::on_tick(ticks);
}

/// The boot check: each CPU sends one ping to the next online CPU in index order (the
/// last to the first), so that every CPU both sends and takes an IPI. A CPU waits while
/// its successor's start is undecided and skips CPUs that failed to start.
fn boot_ring_step(me: &percpu::PerCpu) {
    if me.ring_sent.load(Ordering::Relaxed) {
        return;
    }
    let n = percpu::cpu_count();
    let mut next = me.id().index();
    for _ in 0..n {
        next = (next + 1) % n;
        let next = CpuId::new(next);
        match percpu::cpu(next).state() {
            CpuState::Online => {
                me.ring_sent.store(true, Ordering::Relaxed);
                send_ipi(next, Ipi::Ping);
                return;
            }
            CpuState::Failed => continue,
            CpuState::Offline => return,
        }
    }
}
