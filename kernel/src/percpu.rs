//! Per-CPU data, one slot per CPU of the device tree (same index), reached on the running
//! CPU through the architecture's per-CPU pointer. Counters here are what the boot check
//! and, later, the processor info interfaces read. Each CPU's cluster (from the device
//! tree's `cpu-map`) is kept here too, for the scheduler to read with one load.

use crate::arch::cpu;
use crate::devtree::{MAX_CPUS, MachineConfig};
use crate::ids::CpuId;
use core::sync::atomic::{AtomicBool, AtomicU8, AtomicU32, AtomicU64, AtomicUsize, Ordering};

/// Where a CPU is in its start-up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum CpuState {
    /// Not started (yet).
    Offline = 0,
    /// Running the kernel.
    Online = 1,
    /// The kernel tried to start it and gave up.
    Failed = 2,
}

/// Kept `repr(C)` with `emergency_sp` first: the exception vectors read it (`vectors.s`).
#[repr(C)]
pub struct PerCpu {
    /// Top of a small stack for reporting a fatal kernel exception, which may be a kernel
    /// stack overflow: then the faulting stack cannot take the trap frame.
    pub emergency_sp: AtomicU64,
    pub index: AtomicU32,
    pub mpidr: AtomicU64,
    state: AtomicU8,
    /// Timer interrupts taken.
    pub timer_ticks: AtomicU64,
    /// Inter-processor interrupts taken.
    pub ipis: AtomicU64,
    /// GICv2 CPU-interface mask for SGIs to this CPU.
    pub sgi_interface_mask: AtomicU8,
    /// This CPU has sent its boot-check IPI to the next CPU.
    pub ring_sent: AtomicBool,
    /// Lock levels this CPU holds (`sync`, with the `lockcheck` feature).
    pub lock_levels: AtomicU32,
    /// This CPU's scheduler processor (`kern::sched`), once it has one: one load away
    /// on the trap path instead of an index computation.
    pub processor: AtomicUsize,
    /// The CPU's cluster, [`crate::devtree::CpuInfo::cluster`] (set once at boot).
    cluster: AtomicU32,
}

impl PerCpu {
    const fn new() -> Self {
        PerCpu {
            emergency_sp: AtomicU64::new(0),
            index: AtomicU32::new(0),
            mpidr: AtomicU64::new(0),
            state: AtomicU8::new(CpuState::Offline as u8),
            timer_ticks: AtomicU64::new(0),
            ipis: AtomicU64::new(0),
            sgi_interface_mask: AtomicU8::new(0),
            ring_sent: AtomicBool::new(false),
            lock_levels: AtomicU32::new(0),
            processor: AtomicUsize::new(0),
            cluster: AtomicU32::new(0),
        }
    }

    pub fn state(&self) -> CpuState {
        match self.state.load(Ordering::Acquire) {
            1 => CpuState::Online,
            2 => CpuState::Failed,
            _ => CpuState::Offline,
        }
    }

    pub fn set_state(&self, state: CpuState) {
        self.state.store(state as u8, Ordering::Release);
    }

    pub fn id(&self) -> CpuId {
        CpuId::new(self.index.load(Ordering::Relaxed) as usize)
    }
}

static CPUS: [PerCpu; MAX_CPUS] = [const { PerCpu::new() }; MAX_CPUS];

/// The number of CPUs in the device tree (set once at boot).
static CPU_COUNT: AtomicU32 = AtomicU32::new(1);

pub fn set_cpu_count(n: usize) {
    CPU_COUNT.store(n.min(MAX_CPUS) as u32, Ordering::Relaxed);
}

pub fn cpu_count() -> usize {
    CPU_COUNT.load(Ordering::Relaxed) as usize
}

/// How many clusters the CPUs are in (set once at boot).
static CLUSTER_COUNT: AtomicU32 = AtomicU32::new(1);

/// Records the device tree's topology: each CPU's cluster (same index as its slot), and
/// how many distinct clusters there are. Called once at boot, before secondaries start.
pub fn set_topology(config: &MachineConfig<'_>) {
    for (slot, info) in CPUS.iter().zip(config.cpus.iter()) {
        slot.cluster.store(info.cluster, Ordering::Relaxed);
    }
    let count = u32::try_from(config.cluster_count()).unwrap_or(u32::MAX);
    CLUSTER_COUNT.store(count.max(1), Ordering::Relaxed);
}

/// CPU `cpu`'s cluster: an index from the device tree's `cpu-map` (0 without one).
/// CPUs with the same value share a cluster; the values need not be dense.
pub fn cluster(cpu: CpuId) -> u32 {
    self::cpu(cpu).cluster.load(Ordering::Relaxed)
}

/// How many clusters the CPUs are in (1 without a `cpu-map`).
pub fn cluster_count() -> usize {
    CLUSTER_COUNT.load(Ordering::Relaxed) as usize
}

/// CPU `cpu`'s data.
pub fn cpu(cpu: CpuId) -> &'static PerCpu {
    &CPUS[cpu.index().min(MAX_CPUS - 1)]
}

/// Bytes of each CPU's emergency stack.
pub const EMERGENCY_STACK_SIZE: usize = 8192;

#[repr(C, align(16))]
struct EmergencyStack([u8; EMERGENCY_STACK_SIZE]);

/// The boot CPU's emergency stack (the others get theirs from `kern::smp`).
static mut BOOT_EMERGENCY_STACK: EmergencyStack = EmergencyStack([0; EMERGENCY_STACK_SIZE]);

/// Make slot `index` this CPU's own. `emergency_top`: its emergency stack, or `None` for
/// the boot CPU's static one.
pub fn init_this_cpu(id: CpuId, emergency_top: Option<u64>) {
    let slot = cpu(id);
    let boot_top = (&raw const BOOT_EMERGENCY_STACK) as u64 + EMERGENCY_STACK_SIZE as u64;
    slot.emergency_sp
        .store(emergency_top.unwrap_or(boot_top), Ordering::Relaxed);
    slot.index.store(id.index() as u32, Ordering::Relaxed);
    slot.mpidr.store(cpu::mpidr(), Ordering::Relaxed);
    cpu::set_local(slot as *const PerCpu as *const ());
}

/// The running CPU's data.
pub fn current() -> &'static PerCpu {
    let ptr = cpu::local() as *const PerCpu;
    if ptr.is_null() {
        return &CPUS[0];
    }
    // SAFETY: the per-CPU pointer is only ever set by `init_this_cpu` to an element of the
    // static `CPUS`.
    unsafe { &*ptr }
}

/// The running CPU.
pub fn current_cpu() -> CpuId {
    current().id()
}
