//! Processors and processor sets as kernel objects (GNU Mach `kern/processor.c`,
//! `kern/ipc_host.c`): one port per processor (`KObjectKind::Processor`), and for each set
//! a name port (`ProcessorSetName`: information only) and a control port
//! (`ProcessorSet`: assignment, destruction, priorities), made with the set and dead with
//! it. What the objects stand for lives in the scheduler (`kern::sched::pset`, ids); the
//! kernel reaches it through [`HostSched`], which host tests fake.
//!
//! Not here: the routines (`host_server`), the port translation (`objects`).

extern crate alloc;

use super::host::Host;
use crate::ids::ProcessorSetId;
use crate::ipc::{KObject, KObjectKind, Ledger, Port, ledger::Unmetered};
use crate::kern::sched::stats::{BalanceParams, ProcessorSched};
use alloc::sync::{Arc, Weak};
use arrayvec::ArrayVec;
use mach_abi::KernReturn;
use mach_abi::mig::ArrayOut;
use mach_abi::sched::{PROCESSOR_SCHED_INFO, PROCESSOR_SCHED_INFO_COUNT, ProcessorSchedInfo};

/// Processors the host can have objects for.
pub const MAX_PROCESSORS: usize = crate::devtree::MAX_CPUS;
/// Processor sets that can exist at once, the default set included (the scheduler's
/// table holds as many).
pub const MAX_SETS: usize = 16;

/// `processor_info` and `processor_set_info` flavors and counts (`mach/processor_info.h`).
pub mod flavor {
    pub const PROCESSOR_BASIC_INFO: i32 = 1;
    pub const PROCESSOR_BASIC_INFO_COUNT: usize = 5;
    pub const PROCESSOR_SET_BASIC_INFO: i32 = 1;
    pub const PROCESSOR_SET_BASIC_INFO_COUNT: usize = 5;
    pub const PROCESSOR_SET_SCHED_INFO: i32 = 2;
    pub const PROCESSOR_SET_SCHED_INFO_COUNT: usize = 2;
    /// `POLICY_TIMESHARE`, the one policy a set enables.
    pub const POLICY_TIMESHARE: i32 = 1;
}

/// What `processor_set_info` reports of a set.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SetCounts {
    pub processor_count: u32,
    pub task_count: u32,
    pub thread_count: u32,
    /// Scaled by `LOAD_SCALE` (1000).
    pub load_average: u32,
    pub mach_factor: u32,
    pub max_priority: u32,
}

/// The scheduler's processor-set operations and the machine's power, as the object
/// server needs them (GNU Mach's semantics and codes; the kernel's are `kern::sched::pset`).
pub trait HostSched: Send + Sync {
    /// The master (boot) processor's slot.
    fn master(&self) -> u32;
    /// A new, empty set whose memory is charged to `ledger`.
    fn pset_create(&self, ledger: &Arc<dyn Ledger>) -> Result<ProcessorSetId, KernReturn>;
    /// Destroy `set`: its processors, tasks and threads return to the default set.
    fn pset_destroy(&self, set: ProcessorSetId) -> Result<(), KernReturn>;
    fn pset_info(&self, set: ProcessorSetId) -> Result<SetCounts, KernReturn>;
    fn pset_max_priority(
        &self,
        set: ProcessorSetId,
        max_priority: u32,
        change_threads: bool,
    ) -> Result<(), KernReturn>;
    /// Move processor `slot` to `set` (never the master).
    fn processor_assign(&self, slot: u32, set: ProcessorSetId) -> Result<(), KernReturn>;
    /// The set of processor `slot`.
    fn processor_assignment(&self, slot: u32) -> Result<ProcessorSetId, KernReturn>;
    /// End the run with `status` (never returns on the kernel; a fake records it).
    fn reboot(&self, status: u32);
    /// Call `f` with the kernel port of each task assigned to `set`.
    fn each_task(&self, set: ProcessorSetId, f: &mut dyn FnMut(&Arc<Port>));
    /// Call `f` with the kernel port of each thread assigned to `set`.
    fn each_thread(&self, set: ProcessorSetId, f: &mut dyn FnMut(&Arc<Port>));
    /// Processor `slot`'s scheduling counters (`PROCESSOR_SCHED_INFO`), `None` if the
    /// scheduler has none for it.
    fn processor_sched(&self, slot: u32) -> Option<ProcessorSched>;
    /// The balancing parameters of `set` (`processor_set_balance_get`).
    fn balance_params(&self, set: ProcessorSetId) -> Result<BalanceParams, KernReturn>;
    /// Set them (`processor_set_balance_set`; the server has checked the bounds).
    fn set_balance_params(
        &self,
        set: ProcessorSetId,
        params: BalanceParams,
    ) -> Result<(), KernReturn>;
    /// The scheduler trace (`armach_trace`): whether it records, the CPUs with a ring,
    /// a ring's capacity in events, and the counter's frequency.
    fn trace_status(&self) -> TraceStatus;
    /// Turn recording on or off.
    fn trace_enable(&self, on: bool);
    /// Forget every CPU's events so far.
    fn trace_reset(&self);
    /// CPU `cpu`'s events from index `since` on, handed to `out` as records while it
    /// takes them; `None` if the CPU has no ring.
    fn trace_read(
        &self,
        cpu: u32,
        since: u64,
        out: &mut dyn FnMut(&mach_abi::trace::Event) -> bool,
    ) -> Option<crate::kern::sched::trace::Read>;
}

/// What `trace_status` reports.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TraceStatus {
    pub enabled: bool,
    pub cpus: u32,
    pub capacity: u32,
    pub frequency: u64,
}

/// A processor (GNU Mach's `processor`): its slot and its port.
pub struct Processor {
    pub slot: u32,
    port: Option<Arc<Port>>,
    /// Its host (`processor_info` returns the host port).
    pub host: Weak<Host>,
}

impl Processor {
    pub fn port(&self) -> Option<&Arc<Port>> {
        self.port.as_ref()
    }
}

/// A processor set: the scheduler's id, its name and control ports.
pub struct ProcessorSet {
    pub id: ProcessorSetId,
    /// Its host (`processor_set_info` returns the host port).
    pub host: Weak<Host>,
    name_port: Arc<Port>,
    control_port: Arc<Port>,
}

impl ProcessorSet {
    /// A set object for `id` with its two ports charged to `ledger`.
    fn new(
        id: ProcessorSetId,
        host: Weak<Host>,
        ledger: &Arc<dyn Ledger>,
    ) -> Result<Arc<ProcessorSet>, KernReturn> {
        // The ports point at the set and the set holds the ports: made empty, then filled
        // in, and the cycle is broken when the set is destroyed (the ports die).
        let name_port = Port::alloc_kernel(ledger, None)?;
        let control_port = match Port::alloc_kernel(ledger, None) {
            Ok(p) => p,
            Err(e) => {
                Port::dealloc_kernel(name_port);
                return Err(e);
            }
        };
        let set = Arc::new(ProcessorSet {
            id,
            host,
            name_port,
            control_port,
        });
        set.name_port.set_kobject(Some(KObject::new(
            KObjectKind::ProcessorSetName,
            set.clone(),
        )));
        set.control_port
            .set_kobject(Some(KObject::new(KObjectKind::ProcessorSet, set.clone())));
        Ok(set)
    }

    pub fn name_port(&self) -> &Arc<Port> {
        &self.name_port
    }

    pub fn control_port(&self) -> &Arc<Port> {
        &self.control_port
    }

    /// Kill both ports (which drops their references to the set).
    fn kill_ports(&self) {
        Port::dealloc_kernel(self.name_port.clone());
        Port::dealloc_kernel(self.control_port.clone());
    }

    /// `processor_set_info` (GNU Mach's codes: a short count is `KERN_FAILURE`, an
    /// unknown flavor `KERN_INVALID_ARGUMENT`).
    pub fn info(
        &self,
        sched: &dyn HostSched,
        which: i32,
        out: &mut ArrayOut<'_, i32>,
    ) -> Result<(), KernReturn> {
        let room = out.capacity();
        match which {
            flavor::PROCESSOR_SET_BASIC_INFO => {
                if room < flavor::PROCESSOR_SET_BASIC_INFO_COUNT {
                    return Err(KernReturn::Failure);
                }
                let c = sched.pset_info(self.id)?;
                out.extend_from_slice(&[
                    c.processor_count as i32,
                    c.task_count as i32,
                    c.thread_count as i32,
                    c.load_average as i32,
                    c.mach_factor as i32,
                ])
            }
            flavor::PROCESSOR_SET_SCHED_INFO => {
                if room < flavor::PROCESSOR_SET_SCHED_INFO_COUNT {
                    return Err(KernReturn::Failure);
                }
                let c = sched.pset_info(self.id)?;
                out.extend_from_slice(&[flavor::POLICY_TIMESHARE, c.max_priority as i32])
            }
            _ => Err(KernReturn::InvalidArgument),
        }
    }
}

/// The host's processors and sets.
pub struct Machine {
    pub sched: &'static dyn HostSched,
    host: Weak<Host>,
    processors: ArrayVec<Arc<Processor>, MAX_PROCESSORS>,
    /// The live sets; the default set first, for ever.
    sets: spin::Mutex<ArrayVec<Arc<ProcessorSet>, MAX_SETS>>,
}

impl Machine {
    /// Objects for `cpus` processors and the default set, their ports charged to nobody.
    /// (On failure the objects made so far are kept: ports that are never destroyed,
    /// as the host's; the host is not usable then anyway.)
    pub fn new(
        sched: &'static dyn HostSched,
        cpus: u32,
        host: Weak<Host>,
    ) -> Result<Machine, KernReturn> {
        let ledger: Arc<dyn Ledger> = Arc::new(Unmetered);
        let mut processors = ArrayVec::new();
        for slot in 0..(cpus as usize).min(MAX_PROCESSORS) as u32 {
            let port = Port::alloc_kernel(&ledger, None)?;
            let p = Arc::new(Processor {
                slot,
                port: Some(port.clone()),
                host: host.clone(),
            });
            port.set_kobject(Some(KObject::new(KObjectKind::Processor, p.clone())));
            processors.push(p);
        }
        let default = ProcessorSet::new(ProcessorSetId::DEFAULT, host.clone(), &ledger)?;
        let mut sets = ArrayVec::new();
        sets.push(default);
        Ok(Machine {
            sched,
            host,
            processors,
            sets: spin::Mutex::new(sets),
        })
    }

    /// A machine with no objects (the host could not make them).
    pub fn empty(sched: &'static dyn HostSched) -> Machine {
        Machine {
            sched,
            host: Weak::new(),
            processors: ArrayVec::new(),
            sets: spin::Mutex::new(ArrayVec::new()),
        }
    }

    pub fn processors(&self) -> &[Arc<Processor>] {
        &self.processors
    }

    /// The live set objects (a copy of the list).
    pub fn sets(&self) -> ArrayVec<Arc<ProcessorSet>, MAX_SETS> {
        self.sets.lock().clone()
    }

    /// The object of live set `id`; a set the scheduler names that has no object (it is
    /// being destroyed) stands for the default set, as in the scheduler.
    pub fn set(&self, id: ProcessorSetId) -> Option<Arc<ProcessorSet>> {
        let sets = self.sets.lock();
        sets.iter()
            .find(|s| s.id == id)
            .or_else(|| sets.first())
            .cloned()
    }

    pub fn default_set(&self) -> Option<Arc<ProcessorSet>> {
        self.sets.lock().first().cloned()
    }

    /// `processor_set_create`: a set in the scheduler, then its object and ports, all
    /// charged to `ledger`.
    pub fn create_set(&self, ledger: &Arc<dyn Ledger>) -> Result<Arc<ProcessorSet>, KernReturn> {
        let id = self.sched.pset_create(ledger)?;
        let set = match ProcessorSet::new(id, self.host.clone(), ledger) {
            Ok(set) => set,
            Err(e) => {
                let _ = self.sched.pset_destroy(id);
                return Err(e);
            }
        };
        let mut sets = self.sets.lock();
        if sets.try_push(set.clone()).is_err() {
            drop(sets);
            set.kill_ports();
            let _ = self.sched.pset_destroy(id);
            return Err(KernReturn::ResourceShortage);
        }
        Ok(set)
    }

    /// `processor_set_destroy`: the scheduler returns everything to the default set, the
    /// ports die.
    pub fn destroy_set(&self, set: &ProcessorSet) -> Result<(), KernReturn> {
        self.sched.pset_destroy(set.id)?;
        let gone = {
            let mut sets = self.sets.lock();
            sets.iter()
                .position(|s| s.id == set.id)
                .map(|i| sets.remove(i))
        };
        if let Some(gone) = gone {
            gone.kill_ports();
        }
        Ok(())
    }
}

/// `processor_info` of `processor`: GNU Mach's `PROCESSOR_BASIC_INFO` and armach's
/// `PROCESSOR_SCHED_INFO` (GNU Mach's codes for both: an unknown flavor or a short count
/// is `KERN_FAILURE`; so is a processor the scheduler has no counters for).
pub fn processor_info(
    processor: &Processor,
    sched: &dyn HostSched,
    running: bool,
    is_master: bool,
    which: i32,
    out: &mut ArrayOut<'_, i32>,
) -> Result<(), KernReturn> {
    let room = out.capacity();
    match which {
        flavor::PROCESSOR_BASIC_INFO if room >= flavor::PROCESSOR_BASIC_INFO_COUNT => out
            .extend_from_slice(&[
                super::host::CPU_TYPE_ARM64,
                super::host::CPU_SUBTYPE_ARM64_ALL,
                running as i32,
                processor.slot as i32,
                is_master as i32,
            ]),
        PROCESSOR_SCHED_INFO if room >= PROCESSOR_SCHED_INFO_COUNT => {
            let s = sched
                .processor_sched(processor.slot)
                .ok_or(KernReturn::Failure)?;
            out.extend_from_slice(&sched_info(&s).to_words())
        }
        _ => Err(KernReturn::Failure),
    }
}

/// The scheduler's counters as `PROCESSOR_SCHED_INFO` carries them.
pub fn sched_info(s: &ProcessorSched) -> ProcessorSchedInfo {
    ProcessorSchedInfo {
        load_average: s.load_average,
        runnable: s.runnable,
        queued: s.queued,
        cluster: s.cluster,
        processor_set: s.processor_set,
        migration_in: s.migration_in,
        migration_out: s.migration_out,
        migration_in_cross_cluster: s.migration_in_cross_cluster,
        ticks: s.ticks,
        last_balance_tick: s.last_balance_tick,
        context_switches: s.context_switches,
        idle_ns: s.idle_ns,
        balance_attempts: s.balance_attempts,
        balance_successes: s.balance_successes,
        balance_failures: s.balance_failures,
        balance_moved: s.balance_moved,
        idle_pulls: s.idle_pulls,
        invariant_violations: s.invariant_violations,
        balance_ns: s.balance_ns,
        balance_passes: s.balance_passes,
        balance_insns: s.balance_insns,
        wakeups: s.wakeups,
        wakeups_on_last: s.wakeups_on_last,
    }
}

/// The running kernel's scheduler and power, for the object server.
#[cfg(target_os = "none")]
pub struct KernelSched;

#[cfg(target_os = "none")]
impl HostSched for KernelSched {
    fn master(&self) -> u32 {
        crate::kern::boot::boot_cpu().index() as u32
    }
    fn pset_create(&self, ledger: &Arc<dyn Ledger>) -> Result<ProcessorSetId, KernReturn> {
        crate::kern::sched::pset::processor_set_create(ledger)
    }
    fn pset_destroy(&self, set: ProcessorSetId) -> Result<(), KernReturn> {
        crate::kern::sched::pset::processor_set_destroy(set)
    }
    fn pset_info(&self, set: ProcessorSetId) -> Result<SetCounts, KernReturn> {
        let i = crate::kern::sched::pset::processor_set_info(set)?;
        Ok(SetCounts {
            processor_count: i.processor_count,
            task_count: i.task_count,
            thread_count: i.thread_count,
            // The scheduler keeps no load averages yet (as `host_info(HOST_LOAD_INFO)`).
            load_average: 0,
            mach_factor: 0,
            max_priority: u32::from(i.max_priority),
        })
    }
    fn pset_max_priority(
        &self,
        set: ProcessorSetId,
        max_priority: u32,
        change_threads: bool,
    ) -> Result<(), KernReturn> {
        crate::kern::sched::pset::processor_set_max_priority(set, max_priority, change_threads)
    }
    fn processor_assign(&self, slot: u32, set: ProcessorSetId) -> Result<(), KernReturn> {
        crate::kern::sched::pset::processor_assign(crate::ids::CpuId::new(slot as usize), set)
    }
    fn processor_assignment(&self, slot: u32) -> Result<ProcessorSetId, KernReturn> {
        crate::kern::sched::pset::processor_get_assignment(crate::ids::CpuId::new(slot as usize))
    }
    fn reboot(&self, status: u32) {
        crate::kern::power::power_off_with(status)
    }
    fn each_task(&self, set: ProcessorSetId, f: &mut dyn FnMut(&Arc<Port>)) {
        use crate::kern::sched::pset;
        crate::kern::task::each_task(|task| {
            if pset::task_get_assignment(task) == set
                && let Some(port) = task.self_port.get()
            {
                f(port);
            }
        });
    }
    fn each_thread(&self, set: ProcessorSetId, f: &mut dyn FnMut(&Arc<Port>)) {
        use crate::kern::sched::pset;
        crate::kern::task::each_task(|task| {
            task.for_each_thread(|thread| {
                if pset::thread_get_assignment(thread) == set
                    && let Some(port) = thread.self_port.get()
                {
                    f(port);
                }
            });
        });
    }
    fn processor_sched(&self, slot: u32) -> Option<ProcessorSched> {
        crate::kern::sched::migrate::processor_sched(crate::ids::CpuId::new(slot as usize))
    }
    fn balance_params(&self, set: ProcessorSetId) -> Result<BalanceParams, KernReturn> {
        crate::kern::sched::migrate::balance_params(set)
    }
    fn set_balance_params(
        &self,
        set: ProcessorSetId,
        params: BalanceParams,
    ) -> Result<(), KernReturn> {
        crate::kern::sched::migrate::set_balance_params(set, params)
    }
    fn trace_status(&self) -> TraceStatus {
        use crate::kern::sched::trace;
        let n = crate::percpu::cpu_count();
        TraceStatus {
            enabled: trace::on(),
            cpus: (0..n)
                .filter(|&i| trace::ring(crate::ids::CpuId::new(i)).is_some())
                .count() as u32,
            capacity: trace::capacity() as u32,
            frequency: crate::arch::timer::frequency(),
        }
    }
    fn trace_enable(&self, on: bool) {
        crate::kern::sched::trace::set_enabled(on);
    }
    fn trace_reset(&self) {
        use crate::kern::sched::trace;
        for i in 0..crate::percpu::cpu_count() {
            if let Some(ring) = trace::ring(crate::ids::CpuId::new(i)) {
                ring.reset();
            }
        }
    }
    fn trace_read(
        &self,
        cpu: u32,
        since: u64,
        out: &mut dyn FnMut(&mach_abi::trace::Event) -> bool,
    ) -> Option<crate::kern::sched::trace::Read> {
        if cpu as usize >= crate::percpu::cpu_count() {
            return None;
        }
        let ring = crate::kern::sched::trace::ring(crate::ids::CpuId::new(cpu as usize))?;
        Some(ring.read(since, |_, e| out(&e)))
    }
}
