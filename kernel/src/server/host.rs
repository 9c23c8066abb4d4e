//! The host as a kernel object (GNU Mach `kern/host.c`): the object behind the host and
//! host-privileged ports, and what `host_info` reports about it. The facts come from a
//! [`HostFacts`] (the running kernel's, or a test's), so the flavors are plain functions
//! over plain data.
//!
//! The host holds the processor and processor-set objects ([`Machine`], in `processor`);
//! the routines about them are in `host_server`.

extern crate alloc;

use super::processor::{HostSched, Machine};
use crate::ipc::{KObject, KObjectKind, Ledger, Port, ledger::Unmetered};
use alloc::sync::Arc;
use mach_abi::KernReturn;
use mach_abi::mig::ArrayOut;

/// `host_info` flavors (`mach/host_info.h`).
pub mod flavor {
    pub const HOST_BASIC_INFO: i32 = 1;
    pub const HOST_PROCESSOR_SLOTS: i32 = 2;
    pub const HOST_SCHED_INFO: i32 = 3;
    pub const HOST_LOAD_INFO: i32 = 4;
}

/// Counts in 32-bit words (LP64: `memory_size` is a 64-bit `vm_size_t`).
pub const HOST_BASIC_INFO_COUNT: usize = 6;
pub const HOST_SCHED_INFO_COUNT: usize = 2;
pub const HOST_LOAD_INFO_COUNT: usize = 6;

/// `CPU_TYPE_ARM64` and `CPU_SUBTYPE_ARM64_ALL`.
pub const CPU_TYPE_ARM64: i32 = 22;
pub const CPU_SUBTYPE_ARM64_ALL: i32 = 0;

/// What the host knows about itself.
pub trait HostFacts: Send + Sync {
    /// Processor slots (GNU Mach's `NCPUS`, `machine_info.max_cpus`).
    fn max_cpus(&self) -> u32;
    /// Whether the processor in `slot` is running.
    fn running(&self, slot: u32) -> bool;
    /// Bytes of physical memory.
    fn memory_size(&self) -> u64;
    /// Milliseconds per clock tick and per scheduling quantum.
    fn min_timeout_ms(&self) -> u32;
    fn min_quantum_ms(&self) -> u32;
    /// Load averages and Mach factors, scaled by `LOAD_SCALE` (1000).
    fn load(&self) -> ([i32; 3], [i32; 3]);
    /// Nanoseconds since boot.
    fn uptime_ns(&self) -> u64;
    /// The calendar time at boot, in nanoseconds since the epoch (0 where the machine has
    /// no clock the kernel reads: then `host_get_time` counts from boot).
    fn boot_time_ns(&self) -> u64;
}

/// The host (GNU Mach's `realhost`): its facts, its processors and processor sets.
pub struct Host {
    facts: &'static dyn HostFacts,
    pub machine: Machine,
}

impl Host {
    /// The host, with objects for its processors and its default set.
    pub fn new(
        facts: &'static dyn HostFacts,
        sched: &'static dyn HostSched,
    ) -> Result<Arc<Host>, KernReturn> {
        let mut failed = None;
        let host = Arc::new_cyclic(|me| {
            let machine = Machine::new(sched, facts.max_cpus(), me.clone()).unwrap_or_else(|e| {
                failed = Some(e);
                Machine::empty(sched)
            });
            Host { facts, machine }
        });
        match failed {
            Some(e) => Err(e),
            None => Ok(host),
        }
    }

    pub fn facts(&self) -> &'static dyn HostFacts {
        self.facts
    }

    /// `host_info` (GNU Mach's, flavor by flavor, with its error codes: a count too small
    /// is `KERN_FAILURE`, but `KERN_INVALID_ARGUMENT` for `HOST_PROCESSOR_SLOTS`; an
    /// unknown flavor `KERN_INVALID_ARGUMENT`).
    pub fn info(&self, flavor: i32, out: &mut ArrayOut<'_, i32>) -> Result<(), KernReturn> {
        let f = self.facts;
        let room = out.capacity();
        match flavor {
            flavor::HOST_BASIC_INFO => {
                if room < HOST_BASIC_INFO_COUNT {
                    return Err(KernReturn::Failure);
                }
                let max = f.max_cpus();
                let avail = (0..max).filter(|&s| f.running(s)).count() as i32;
                let mem = f.memory_size();
                out.extend_from_slice(&[
                    max as i32,
                    avail,
                    mem as u32 as i32,
                    (mem >> 32) as u32 as i32,
                    CPU_TYPE_ARM64,
                    CPU_SUBTYPE_ARM64_ALL,
                ])
            }
            flavor::HOST_PROCESSOR_SLOTS => {
                let max = f.max_cpus();
                if room < max as usize {
                    return Err(KernReturn::InvalidArgument);
                }
                for slot in (0..max).filter(|&s| f.running(s)) {
                    out.push(slot as i32)?;
                }
                Ok(())
            }
            flavor::HOST_SCHED_INFO => {
                if room < HOST_SCHED_INFO_COUNT {
                    return Err(KernReturn::Failure);
                }
                out.extend_from_slice(&[f.min_timeout_ms() as i32, f.min_quantum_ms() as i32])
            }
            flavor::HOST_LOAD_INFO => {
                if room < HOST_LOAD_INFO_COUNT {
                    return Err(KernReturn::Failure);
                }
                let (avenrun, mach_factor) = f.load();
                out.extend_from_slice(&avenrun)?;
                out.extend_from_slice(&mach_factor)
            }
            _ => Err(KernReturn::InvalidArgument),
        }
    }
}

impl Host {
    /// `host_get_uptime64`: a `time_value64_t` (seconds, nanoseconds).
    pub fn uptime(&self) -> [i64; 2] {
        let ns = self.facts.uptime_ns();
        [(ns / 1_000_000_000) as i64, (ns % 1_000_000_000) as i64]
    }

    /// `host_get_time64`: the calendar time, a `time_value64_t` (seconds, nanoseconds):
    /// the time since boot plus the boot time the kernel knows (`HostFacts::boot_time_ns`).
    pub fn time64(&self) -> [i64; 2] {
        let ns = self
            .facts
            .boot_time_ns()
            .saturating_add(self.facts.uptime_ns());
        [(ns / 1_000_000_000) as i64, (ns % 1_000_000_000) as i64]
    }

    /// `host_get_time`: the same as a `time_value_t` (seconds, microseconds).
    pub fn time(&self) -> [i64; 2] {
        let [s, ns] = self.time64();
        [s, ns / 1000]
    }
}

impl core::fmt::Debug for Host {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "Host")
    }
}

/// The host and its two ports.
pub struct HostPorts {
    pub host: Arc<Host>,
    /// `mach_host_self()`'s port.
    pub host_port: Arc<Port>,
    /// The privileged port (the first task's `argv[1]`).
    pub host_priv_port: Arc<Port>,
}

impl HostPorts {
    /// Make the host's ports (GNU Mach `ipc_host_init`), charged to nobody.
    pub fn new(host: Arc<Host>) -> Result<HostPorts, KernReturn> {
        let ledger: Arc<dyn Ledger> = Arc::new(Unmetered);
        let host_port =
            Port::alloc_kernel(&ledger, Some(KObject::new(KObjectKind::Host, host.clone())))?;
        let host_priv_port = Port::alloc_kernel(
            &ledger,
            Some(KObject::new(KObjectKind::HostPriv, host.clone())),
        )?;
        Ok(HostPorts {
            host,
            host_port,
            host_priv_port,
        })
    }
}

/// The running kernel's host facts.
#[cfg(target_os = "none")]
mod kernel_facts {
    use super::HostFacts;
    use crate::ids::CpuId;
    use crate::kern::sched::QUANTUM_TICKS;
    use crate::percpu::{self, CpuState};

    pub struct KernelFacts;

    fn hz() -> u32 {
        (crate::kern::irq::tick_hz() as u32).max(1)
    }

    impl HostFacts for KernelFacts {
        fn max_cpus(&self) -> u32 {
            percpu::cpu_count() as u32
        }
        fn running(&self, slot: u32) -> bool {
            (slot as usize) < percpu::cpu_count()
                && percpu::cpu(CpuId::new(slot as usize)).state() == CpuState::Online
        }
        fn memory_size(&self) -> u64 {
            crate::mm::frame::ram_size()
        }
        fn min_timeout_ms(&self) -> u32 {
            (1000 / hz()).max(1)
        }
        fn min_quantum_ms(&self) -> u32 {
            (QUANTUM_TICKS * 1000 / hz()).max(1)
        }
        fn load(&self) -> ([i32; 3], [i32; 3]) {
            // The scheduler keeps no load averages yet (GNU Mach's `compute_mach_factor`
            // at each `sched_tick`).
            ([0; 3], [0; 3])
        }
        fn uptime_ns(&self) -> u64 {
            crate::kern::sched::ticks_to_ns(crate::arch::timer::counter())
        }
        fn boot_time_ns(&self) -> u64 {
            // No real-time clock is read (QEMU's PL031 and the Pi's have no driver).
            0
        }
    }
}

/// The kernel's host and its ports, made on first use.
#[cfg(target_os = "none")]
pub fn realhost() -> Option<&'static HostPorts> {
    static FACTS: kernel_facts::KernelFacts = kernel_facts::KernelFacts;
    static SCHED: super::processor::KernelSched = super::processor::KernelSched;
    static REALHOST: spin::Once<Option<HostPorts>> = spin::Once::new();
    REALHOST
        .call_once(|| {
            let host = Host::new(&FACTS, &SCHED).ok()?;
            HostPorts::new(host).ok()
        })
        .as_ref()
}

/// Host tests have no kernel host; they make their own `HostPorts`.
#[cfg(not(target_os = "none"))]
pub fn realhost() -> Option<&'static HostPorts> {
    None
}
