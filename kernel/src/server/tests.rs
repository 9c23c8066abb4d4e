//! Host tests of the kernel's object server: requests built as `mach_msg` would leave
//! them (rights copied in from a client's space, descriptors rewritten to the received
//! types), served against real spaces and kernel ports, replies sent back and received
//! into the client's space as a user task would see them. Every `mach_port` routine
//! against the `Space` method it stands for, `host_info`'s flavors and codes, bad
//! requests, who pays, and random bytes fed to the whole path.

extern crate std;

use super::generated::{armach_sched, gnumach, mach, mach_host, mach_port};
use super::host::{Host, HostFacts, HostPorts, flavor};
use super::kobject::serve;
use super::objects::{TaskIpc, ThreadIpc};
use super::processor::{HostSched, SetCounts};
use crate::ids::ProcessorSetId;
use crate::ipc::abi::{Disposition, PortName, msgh_bits, port_type as pt};
use crate::ipc::ledger::counting::{CountingLedger, dyn_ledger};
use crate::ipc::transfer::copyin_type;
use crate::ipc::{
    KObject, KObjectKind, Kmsg, KmsgShape, Ledger, MsgPort, Port, RecvResult, Space, mqueue,
};
use crate::kern::sched::stats::{BalanceParams, ProcessorSched, ThreadMigration};
use mach_abi::KernReturn as K;
use mach_abi::info::{
    TaskBasicInfo, TaskEventsInfo, TaskThreadTimesInfo, ThreadBasicInfo, ThreadSchedInfo,
    VmStatistics,
};
use mach_abi::mig::{self, Encoder, Header, TypeDesc};
use mach_abi::thread_state::{Aarch64FloatState, Aarch64ThreadState};
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering::Relaxed};
use std::vec::Vec;

const R_SEND_RIGHT: u32 = 0;
const R_RECV: u32 = 1;
const R_PSET: u32 = 3;
const R_DEAD: u32 = 4;

/// A task as the server sees one: its space, its own port, its threads.
struct TestTask {
    space: Option<Arc<Space>>,
    sself: std::sync::OnceLock<crate::ipc::Right>,
    pset: AtomicU32,
    priority: AtomicU32,
    max_priority: AtomicU32,
    threads: std::sync::Mutex<Vec<Arc<TestThread>>>,
    /// Its name, and the gsync calls it got: (routine id, address, value, flags).
    name: Mutex<Vec<u8>>,
    gsync: Mutex<Vec<(i32, u64, u32, i32)>>,
    /// The word every gsync address holds, for the fake value check.
    word: AtomicU32,
    /// The vm_map calls that reached the task: (size, backing, protection, maximum).
    vm_maps: Mutex<Vec<(u64, crate::mm::regions::Backing, u32, u32)>>,
    /// vm_set_size_limit's (current, maximum).
    limits: Mutex<(u64, u64)>,
}

impl TestTask {
    fn new(space: Option<Arc<Space>>) -> Arc<TestTask> {
        Arc::new(TestTask {
            space,
            sself: std::sync::OnceLock::new(),
            pset: AtomicU32::new(0),
            priority: AtomicU32::new(25),
            max_priority: AtomicU32::new(25),
            threads: std::sync::Mutex::new(Vec::new()),
            name: Mutex::new(Vec::new()),
            gsync: Mutex::new(Vec::new()),
            word: AtomicU32::new(0),
            limits: Mutex::new((1 << 30, 1 << 30)),
            vm_maps: Mutex::new(Vec::new()),
        })
    }
}

/// A thread as the server sees one: its set and priorities, its suspensions and a saved
/// state (stopped whenever suspended).
#[derive(Default)]
struct TestThread {
    pset: AtomicU32,
    priority: AtomicU32,
    max_priority: AtomicU32,
    depress_aborts: AtomicU32,
    current: bool,
    st: Mutex<TestThreadState>,
    exception: Mutex<MsgPort>,
    /// What thread_migrate and thread_bind did: the processor it was moved to last
    /// (`u32::MAX`: never), its binding.
    migrated_to: AtomicU32,
    migrations: AtomicU32,
    bound: Mutex<Option<u32>>,
    name: Mutex<Vec<u8>>,
}

impl TestThread {
    fn new() -> Arc<TestThread> {
        Arc::new(TestThread {
            priority: AtomicU32::new(25),
            max_priority: AtomicU32::new(25),
            ..Default::default()
        })
    }
}

#[derive(Default)]
struct TestThreadState {
    stops: u32,
    terminated: bool,
    aborted: u32,
    general: Aarch64ThreadState,
    float: Aarch64FloatState,
}

impl ThreadIpc for TestThread {
    fn kernel_port(&self) -> Option<Arc<Port>> {
        None
    }
    fn set_name(&self, name: &[u8]) {
        *self.name.lock().unwrap() = name.to_vec();
    }
    fn name(&self) -> [u8; mach_abi::gnumach::NAME_SIZE] {
        let mut out = [0; mach_abi::gnumach::NAME_SIZE];
        let name = self.name.lock().unwrap();
        let n = name.len().min(out.len() - 1);
        out[..n].copy_from_slice(&name[..n]);
        out
    }
    fn processor_set(&self) -> ProcessorSetId {
        ProcessorSetId(self.pset.load(Relaxed))
    }
    fn assign(self: &Arc<Self>, set: ProcessorSetId) -> Result<(), K> {
        if !SCHED.sets.lock().unwrap().contains(&set.0) {
            return Err(K::InvalidArgument);
        }
        self.pset.store(set.0, Relaxed);
        Ok(())
    }
    fn base_priority(&self) -> u32 {
        self.priority.load(Relaxed)
    }
    fn max_priority(&self) -> u32 {
        self.max_priority.load(Relaxed)
    }
    fn set_priority(self: &Arc<Self>, priority: u32) {
        self.priority.store(priority, Relaxed);
    }
    fn set_max_priority(&self, max_priority: u32) {
        self.max_priority.store(max_priority, Relaxed);
    }
    fn depress_abort(self: &Arc<Self>) {
        self.depress_aborts.fetch_add(1, Relaxed);
    }
    fn trace_id(&self) -> u32 {
        self.priority.load(Relaxed) + 1000
    }
    fn migration_info(&self) -> ThreadMigration {
        let last = self.migrated_to.load(Relaxed);
        ThreadMigration {
            migration_count: self.migrations.load(Relaxed),
            cache_warmth: 200,
            last_processor: (last != 0).then_some(last),
            bound_processor: *self.bound.lock().unwrap(),
            processor_set: self.pset.load(Relaxed),
            since_last_run_ns: 0x1_0000_0003,
            last_run_ns: 9,
        }
    }
    /// The fake scheduler's rules: processor 2 is off line (`KERN_INVALID_ARGUMENT`), a
    /// thread bound elsewhere refuses (`KERN_FAILURE`), an ended one `KERN_TERMINATED`.
    fn migrate(self: &Arc<Self>, slot: u32) -> Result<(), K> {
        if self.st.lock().unwrap().terminated {
            return Err(K::Terminated);
        }
        if slot == 2 {
            return Err(K::InvalidArgument);
        }
        if self.bound.lock().unwrap().is_some_and(|b| b != slot) {
            return Err(K::Failure);
        }
        self.migrated_to.store(slot, Relaxed);
        self.migrations.fetch_add(1, Relaxed);
        Ok(())
    }
    fn bind(self: &Arc<Self>, slot: Option<u32>) -> Result<(), K> {
        if slot == Some(2) {
            return Err(K::InvalidArgument);
        }
        *self.bound.lock().unwrap() = slot;
        Ok(())
    }
    fn is_current(&self) -> bool {
        self.current
    }
    fn self_port(&self) -> MsgPort {
        MsgPort::Null
    }
    fn exception_port(&self) -> MsgPort {
        super::objects::copy_send(&self.exception.lock().unwrap())
    }
    fn set_exception_port(&self, port: MsgPort) -> Result<(), K> {
        *self.exception.lock().unwrap() = port;
        Ok(())
    }
    fn basic_info(&self) -> ThreadBasicInfo {
        ThreadBasicInfo {
            suspend_count: self.st.lock().unwrap().stops as i32,
            cpu_usage: 7,
            user_time64: mach_abi::info::TimeValue64::from_ns(5),
            ..Default::default()
        }
    }
    fn sched_info(&self) -> ThreadSchedInfo {
        ThreadSchedInfo {
            last_processor: 3,
            ..Default::default()
        }
    }
    fn user_stop_count(&self) -> u32 {
        self.st.lock().unwrap().stops
    }
    fn suspend(&self) {
        self.st.lock().unwrap().stops += 1;
    }
    fn resume(self: &Arc<Self>) -> Result<(), K> {
        let mut st = self.st.lock().unwrap();
        st.stops = st.stops.checked_sub(1).ok_or(K::Failure)?;
        Ok(())
    }
    fn terminate(self: &Arc<Self>) -> Result<(), K> {
        self.st.lock().unwrap().terminated = true;
        Ok(())
    }
    fn abort(self: &Arc<Self>) {
        self.st.lock().unwrap().aborted += 1;
    }
    fn user_state(&self) -> Option<(Aarch64ThreadState, Aarch64FloatState)> {
        let st = self.st.lock().unwrap();
        (st.stops > 0).then_some((st.general, st.float))
    }
    fn set_user_state(
        &self,
        general: Option<&Aarch64ThreadState>,
        float: Option<&Aarch64FloatState>,
    ) -> Option<()> {
        let mut st = self.st.lock().unwrap();
        if st.stops == 0 {
            return None;
        }
        if let Some(g) = general {
            st.general = *g;
        }
        if let Some(f) = float {
            st.float = *f;
        }
        Some(())
    }
}

/// The scheduler's side of processor sets, faked: live set ids, each processor's set.
struct FakeSched {
    sets: std::sync::Mutex<Vec<u32>>,
    next: AtomicU32,
    assigned: [AtomicU32; 4],
    rebooted: AtomicU32,
    /// Ports standing for the tasks (and threads) of each set.
    members: std::sync::Mutex<Vec<(u32, Arc<Port>)>>,
    /// Each set's balancing parameters, where they were set.
    balance: std::sync::Mutex<Vec<(u32, BalanceParams)>>,
}

static SCHED: FakeSched = FakeSched {
    sets: std::sync::Mutex::new(Vec::new()),
    next: AtomicU32::new(1),
    assigned: [const { AtomicU32::new(0) }; 4],
    rebooted: AtomicU32::new(u32::MAX),
    members: std::sync::Mutex::new(Vec::new()),
    balance: std::sync::Mutex::new(Vec::new()),
};

/// The fake's trace: one CPU (0) with a ring of 8 events, and the switch.
static TRACE_SLOTS: [crate::kern::sched::trace::Slot; 9] =
    [const { crate::kern::sched::trace::Slot::new() }; 9];
static TRACE_ON: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

fn trace_ring() -> crate::kern::sched::trace::Ring<'static> {
    crate::kern::sched::trace::Ring::new(&TRACE_SLOTS).unwrap()
}

impl HostSched for FakeSched {
    fn trace_status(&self) -> crate::server::processor::TraceStatus {
        crate::server::processor::TraceStatus {
            enabled: TRACE_ON.load(Relaxed),
            cpus: 1,
            capacity: trace_ring().capacity() as u32,
            frequency: 62_500_000,
        }
    }
    fn trace_enable(&self, on: bool) {
        TRACE_ON.store(on, Relaxed);
    }
    fn trace_reset(&self) {
        trace_ring().reset();
    }
    fn trace_read(
        &self,
        cpu: u32,
        since: u64,
        out: &mut dyn FnMut(&mach_abi::trace::Event) -> bool,
    ) -> Option<crate::kern::sched::trace::Read> {
        (cpu == 0).then(|| trace_ring().read(since, |_, e| out(&e)))
    }
    fn master(&self) -> u32 {
        0
    }
    fn pset_create(&self, ledger: &Arc<dyn Ledger>) -> Result<ProcessorSetId, K> {
        // A set costs its creator a granule.
        ledger.take(crate::ipc::Kind::Port, 1)?;
        let id = self.next.fetch_add(1, Relaxed);
        let mut sets = self.sets.lock().unwrap();
        if !sets.contains(&0) {
            sets.push(0);
        }
        sets.push(id);
        Ok(ProcessorSetId(id))
    }
    fn pset_destroy(&self, set: ProcessorSetId) -> Result<(), K> {
        let mut sets = self.sets.lock().unwrap();
        match sets.iter().position(|&s| s == set.0) {
            Some(i) if set.0 != 0 => {
                sets.remove(i);
                for a in &self.assigned {
                    let _ = a.compare_exchange(set.0, 0, Relaxed, Relaxed);
                }
                Ok(())
            }
            _ => Err(K::InvalidArgument),
        }
    }
    fn pset_info(&self, set: ProcessorSetId) -> Result<SetCounts, K> {
        let processors = self
            .assigned
            .iter()
            .filter(|a| a.load(Relaxed) == set.0)
            .count();
        Ok(SetCounts {
            processor_count: processors as u32,
            task_count: 2,
            thread_count: 3,
            load_average: 4,
            mach_factor: 5,
            max_priority: 25,
        })
    }
    fn pset_max_priority(&self, _: ProcessorSetId, _: u32, _: bool) -> Result<(), K> {
        Ok(())
    }
    fn processor_assign(&self, slot: u32, set: ProcessorSetId) -> Result<(), K> {
        if slot == 0 || slot >= 4 || !self.sets.lock().unwrap().contains(&set.0) {
            return Err(K::InvalidArgument);
        }
        self.assigned[slot as usize].store(set.0, Relaxed);
        Ok(())
    }
    fn processor_assignment(&self, slot: u32) -> Result<ProcessorSetId, K> {
        self.assigned
            .get(slot as usize)
            .map(|a| ProcessorSetId(a.load(Relaxed)))
            .ok_or(K::InvalidArgument)
    }
    fn reboot(&self, status: u32) {
        self.rebooted.store(status, Relaxed);
    }
    fn each_task(&self, set: ProcessorSetId, f: &mut dyn FnMut(&Arc<Port>)) {
        for (s, port) in self.members.lock().unwrap().iter() {
            if *s == set.0 {
                f(port);
            }
        }
    }
    fn each_thread(&self, set: ProcessorSetId, f: &mut dyn FnMut(&Arc<Port>)) {
        self.each_task(set, f);
    }
    /// Counters for processors 0, 1 and 3 (processor 2 is off line: none), each value
    /// telling its field and slot apart.
    fn processor_sched(&self, slot: u32) -> Option<ProcessorSched> {
        let s = u64::from(slot);
        (slot < 4 && slot != 2).then_some(ProcessorSched {
            load_average: 1500 + slot,
            runnable: 2 + slot,
            queued: 1 + slot,
            migration_in: 10 + s,
            migration_out: 20 + s,
            migration_in_cross_cluster: 30 + s,
            ticks: 0x1_0000_0000 + s,
            last_balance_tick: 40 + s,
            context_switches: 50 + s,
            idle_ns: 60 + s,
            balance_attempts: 70 + s,
            balance_successes: 80 + s,
            balance_failures: 90 + s,
            balance_moved: 100 + s,
            idle_pulls: 110 + s,
            invariant_violations: 120 + s,
            balance_ns: 130 + s,
            balance_passes: 160 + s,
            balance_insns: 170 + s,
            wakeups: 140 + s,
            wakeups_on_last: 150 + s,
            cluster: slot / 2,
            processor_set: self.assigned[slot as usize].load(Relaxed),
        })
    }
    fn balance_params(&self, set: ProcessorSetId) -> Result<BalanceParams, K> {
        if set.0 != 0 && !self.sets.lock().unwrap().contains(&set.0) {
            return Err(K::InvalidArgument);
        }
        let kept = self.balance.lock().unwrap();
        Ok(kept
            .iter()
            .find(|(s, _)| *s == set.0)
            .map_or(BalanceParams::DEFAULT, |(_, p)| *p))
    }
    fn set_balance_params(&self, set: ProcessorSetId, params: BalanceParams) -> Result<(), K> {
        assert!(params.is_valid(), "the server checks the bounds");
        self.balance_params(set)?;
        let mut kept = self.balance.lock().unwrap();
        kept.retain(|(s, _)| *s != set.0);
        kept.push((set.0, params));
        Ok(())
    }
}

impl TaskIpc for TestTask {
    type Thread = TestThread;
    fn processor_set(&self) -> ProcessorSetId {
        ProcessorSetId(self.pset.load(Relaxed))
    }
    fn assign(self: &Arc<Self>, set: ProcessorSetId, threads: bool) -> Result<(), K> {
        self.pset.store(set.0, Relaxed);
        if threads {
            for t in self.threads.lock().unwrap().iter() {
                t.assign(set)?;
            }
        }
        Ok(())
    }
    fn priority(&self) -> u32 {
        self.priority.load(Relaxed)
    }
    fn set_priority(&self, priority: u32) {
        self.priority.store(priority, Relaxed);
    }
    fn max_priority(&self) -> u32 {
        self.max_priority.load(Relaxed)
    }
    fn set_max_priority(&self, max_priority: u32) {
        self.max_priority.store(max_priority, Relaxed);
    }
    fn for_each_thread(&self, f: &mut dyn FnMut(&Arc<TestThread>)) {
        for t in self.threads.lock().unwrap().iter() {
            f(t);
        }
    }
    fn wire(&self, address: u64, size: u64, access: u32, privileged: bool) -> Result<(), K> {
        // The unprivileged limit as the kernel's map checks it, one fake region:
        // [0x10000, 0x200000).
        if !privileged && access != 0 && size > 8 << 20 {
            Err(K::NoAccess)
        } else if (0x10000..0x200000).contains(&address) {
            Ok(())
        } else {
            Err(K::NoSpace)
        }
    }
    fn wire_all(&self, flags: u32) -> Result<(), K> {
        if flags & !3 != 0 {
            Err(K::InvalidArgument)
        } else {
            Ok(())
        }
    }
    fn size_limits(&self) -> Result<(u64, u64), K> {
        Ok(*self.limits.lock().unwrap())
    }
    fn set_size_limits(&self, current: u64, max: u64, privileged: bool) -> Result<(), K> {
        let mut limits = self.limits.lock().unwrap();
        if current > max {
            return Err(K::InvalidArgument);
        }
        if max > limits.1 && !privileged {
            return Err(K::NoAccess);
        }
        *limits = (current, max);
        Ok(())
    }
    fn region_proxy(&self, _: u64, _: u32, _: u64) -> Result<crate::mm::object::Proxy, K> {
        Err(K::NoSpace)
    }

    fn task_create(self: &Arc<Self>, _inherit_memory: bool) -> Result<Arc<TestTask>, K> {
        Ok(TestTask::new(None))
    }
    fn self_port(&self) -> MsgPort {
        self.special_port(1)
    }

    fn thread_create(self: &Arc<Self>) -> Result<Arc<TestThread>, K> {
        let t = Arc::new(TestThread::default());
        t.suspend();
        Ok(t)
    }
    fn vm_allocate(&self, address: u64, _: u64, anywhere: bool) -> Result<u64, K> {
        Ok(if anywhere { 0x10_0000 } else { address })
    }
    fn vm_deallocate(&self, _: u64, _: u64) -> Result<(), K> {
        Ok(())
    }
    fn vm_map(
        &self,
        _: u64,
        size: u64,
        _: u64,
        _: bool,
        backing: crate::mm::regions::Backing,
        prot: u32,
        max_prot: u32,
        _: u32,
    ) -> Result<u64, K> {
        self.vm_maps
            .lock()
            .unwrap()
            .push((size, backing, prot, max_prot));
        Ok(0x40_0000)
    }
    fn vm_protect(&self, _: u64, _: u64, _: bool, _: i32) -> Result<(), K> {
        Ok(())
    }
    fn vm_statistics(&self) -> VmStatistics {
        VmStatistics {
            pagesize: 4096,
            free_count: 10,
            active_count: 20,
            ..Default::default()
        }
    }
    fn vm_read(
        &self,
        address: u64,
        size: u64,
        out: &mut dyn FnMut(&[u8]) -> bool,
    ) -> Result<(), K> {
        if address == 0 {
            return Err(K::InvalidAddress);
        }
        let bytes: Vec<u8> = (0..size).map(|i| i as u8).collect();
        if out(&bytes) {
            Ok(())
        } else {
            Err(K::ResourceShortage)
        }
    }
    fn vm_write(&self, address: u64, data: &dyn crate::ipc::OolMemory) -> Result<(), K> {
        if !address.is_multiple_of(4096) || !data.size().is_multiple_of(4096) {
            return Err(K::InvalidArgument);
        }
        Ok(())
    }
    fn vm_copy(&self, _: u64, _: u64, _: u64) -> Result<(), K> {
        Ok(())
    }
    fn vm_region(&self, address: u64) -> Result<super::objects::RegionInfo, K> {
        if address > 0x10_0000 {
            return Err(K::NoSpace);
        }
        Ok(super::objects::RegionInfo {
            start: 0x10_0000,
            end: 0x10_4000,
            protection: 3,
            max_protection: 7,
            inheritance: 1,
            shared: false,
            offset: 0,
        })
    }
    fn vm_inherit(&self, _: u64, _: u64, _: i32) -> Result<(), K> {
        Ok(())
    }
    fn terminate(&self) -> Result<(), K> {
        Ok(())
    }
    fn suspend(&self) -> Result<(), K> {
        Ok(())
    }
    fn resume(&self) -> Result<(), K> {
        Err(K::Failure)
    }
    fn basic_info(&self) -> TaskBasicInfo {
        TaskBasicInfo {
            virtual_size: 0x3000,
            ..Default::default()
        }
    }
    fn events_info(&self) -> TaskEventsInfo {
        TaskEventsInfo {
            faults: 1,
            messages_sent: 6,
            messages_received: 0x7_0000_0007,
            ..Default::default()
        }
    }
    fn thread_times(&self) -> TaskThreadTimesInfo {
        TaskThreadTimesInfo::default()
    }

    fn ipc_space(&self) -> Option<Arc<Space>> {
        self.space.clone()
    }
    fn special_port(&self, which: i32) -> MsgPort {
        match (which, self.sself.get()) {
            (1, Some(right)) => right.copy_send(),
            _ => MsgPort::Null,
        }
    }
    fn set_special_port(&self, _: i32, _: MsgPort) -> Result<(), K> {
        Err(K::InvalidArgument)
    }
    fn register_ports(&self, _: [MsgPort; 3]) -> Result<(), K> {
        Err(K::Failure)
    }
    fn registered_ports(&self) -> [MsgPort; 3] {
        Default::default()
    }
    fn set_name(&self, name: &[u8]) {
        *self.name.lock().unwrap() = name.to_vec();
    }
    fn gsync_wait(&self, addr: u64, val1: u32, _: u32, _: u32, flags: i32) -> Result<(), K> {
        self.gsync.lock().unwrap().push((4204, addr, val1, flags));
        if val1 == self.word.load(Relaxed) {
            Ok(())
        } else {
            Err(K::InvalidArgument)
        }
    }
    fn gsync_wake(&self, addr: u64, val: u32, flags: i32) -> Result<(), K> {
        self.gsync.lock().unwrap().push((4205, addr, val, flags));
        Ok(())
    }
    fn gsync_requeue(&self, src: u64, _: u64, wake_one: bool, flags: i32) -> Result<(), K> {
        self.gsync
            .lock()
            .unwrap()
            .push((4206, src, u32::from(wake_one), flags));
        Ok(())
    }
}

struct Facts;

impl HostFacts for Facts {
    fn max_cpus(&self) -> u32 {
        4
    }
    fn running(&self, slot: u32) -> bool {
        slot != 2
    }
    fn memory_size(&self) -> u64 {
        0x1_2000_0000
    }
    fn min_timeout_ms(&self) -> u32 {
        10
    }
    fn min_quantum_ms(&self) -> u32 {
        20
    }
    fn load(&self) -> ([i32; 3], [i32; 3]) {
        ([1, 2, 3], [4, 5, 6])
    }
    fn uptime_ns(&self) -> u64 {
        3_500_000_007
    }
    fn boot_time_ns(&self) -> u64 {
        1_000_000_000_000_000_000
    }
}

static FACTS: Facts = Facts;

/// A client task, a target task (possibly the same) and the host, with their ports.
struct World {
    ledger: Arc<CountingLedger>,
    /// The client's space and the ledger its requests are charged to.
    client: Arc<Space>,
    sender: Arc<dyn Ledger>,
    target: Arc<Space>,
    task_port: Arc<Port>,
    /// Kept for the host ports' lives.
    _host: HostPorts,
    /// The client's names for the target's task port, the host and host-priv ports, and
    /// its reply port.
    task: PortName,
    host_name: PortName,
    host_priv: PortName,
    reply: PortName,
}

impl World {
    fn new() -> World {
        let ledger = CountingLedger::unlimited();
        let d = dyn_ledger(&ledger);
        let client = Space::new(&d).unwrap();
        let target = Space::new(&d).unwrap();
        let task = TestTask::new(Some(target.clone()));
        let task_port =
            Port::alloc_kernel(&d, Some(KObject::new(KObjectKind::Task, task.clone()))).unwrap();
        let _ = task.sself.set(task_port.make_send().unwrap());
        let host = HostPorts::new(Host::new(&FACTS, &SCHED).unwrap()).unwrap();
        let name = |p: &Arc<Port>| client.copyout(p.make_send().unwrap(), false).unwrap();
        let (task_name, host_name, host_priv) = (
            name(&task_port),
            name(&host.host_port),
            name(&host.host_priv_port),
        );
        let reply = client.allocate(R_RECV).unwrap();
        World {
            ledger,
            sender: d,
            client,
            target,
            task_port,
            _host: host,
            task: task_name,
            host_name,
            host_priv,
            reply,
        }
    }

    /// Send `items` as request `id` to `dest` with a send-once reply right, serve it, and
    /// receive the reply in the client's space.
    fn call(&self, dest: PortName, id: i32, items: &[Item]) -> Option<Got> {
        let k = self.request(dest, id, items, true);
        self.serve_and_receive(k)
    }

    fn request(&self, dest: PortName, id: i32, items: &[Item], reply: bool) -> Kmsg {
        let (reply_name, reply_d) = if reply {
            (self.reply, Disposition::MakeSendOnce as u32)
        } else {
            (PortName::NULL, 0)
        };
        let mut buf = [0u8; 1024];
        let mut e = Encoder::new(&mut buf);
        let mut rights = Vec::new();
        for item in items {
            match *item {
                Item::Int(v) => {
                    e.item(mig::INT32_DESC);
                    e.put(v);
                }
                Item::Name(v) => {
                    e.item(desc(15, 32));
                    e.put(v);
                }
                Item::Bool(v) => {
                    e.item(desc(0, 32));
                    e.put(v);
                }
                Item::U64(v) => {
                    e.item(desc(11, 64));
                    e.put(v);
                }
                Item::Right(name, d) => {
                    e.item(desc(copyin_type(d) as u8, 64));
                    rights.push((e.pos(), name, d));
                    e.put(u64::from(name.0));
                }
                Item::Str(bytes) => {
                    // A `c_string[*:N]`: its bytes and the NUL, as GNU MIG sends them.
                    e.item(TypeDesc {
                        number: bytes.len() as u32 + 1,
                        ..desc(12, 8)
                    });
                    e.put_bytes(bytes);
                    e.put_zeros(1);
                }
                Item::DevName(bytes) => {
                    e.item(TypeDesc {
                        longform: true,
                        ..desc(12, 1024)
                    });
                    e.put_bytes(bytes);
                    e.put_zeros(128 - bytes.len());
                }
                Item::Chars(bytes) => {
                    e.item(TypeDesc {
                        number: bytes.len() as u32,
                        ..desc(8, 8)
                    });
                    e.put_bytes(bytes);
                }
                Item::Words(words) => {
                    e.item(TypeDesc {
                        number: words.len() as u32,
                        ..desc(2, 32)
                    });
                    for &v in words {
                        e.put(v);
                    }
                    if words.len() % 2 == 1 {
                        e.put(0u32);
                    }
                }
            }
        }
        let complex = if rights.is_empty() {
            0
        } else {
            msgh_bits::COMPLEX
        };
        let size = e
            .finish(Header {
                id,
                ..Header::default()
            })
            .unwrap();
        let bits = msgh_bits::make(Disposition::CopySend as u32, reply_d) | complex;
        self.kmsg(bits, dest, reply_name, id, &buf[32..size], &rights)
    }

    /// A message as `mach_msg` builds it after copyin from the client's space.
    fn kmsg(
        &self,
        bits: u32,
        dest: PortName,
        reply: PortName,
        id: i32,
        body: &[u8],
        rights: &[(usize, PortName, Disposition)],
    ) -> Kmsg {
        let h = self.client.copyin_header(bits, dest, reply).unwrap();
        let mut k = Kmsg::new(
            &self.sender,
            KmsgShape {
                body_len: body.len(),
                ports: rights.len(),
                ool: 0,
            },
        )
        .unwrap();
        k.id = id;
        k.size = (32 + body.len()) as u32;
        k.bits = msgh_bits::other(h.bits);
        k.set_ports(h.dest, h.reply, msgh_bits::local(h.bits));
        k.body.extend_from_slice(body);
        for &(at, name, d) in rights {
            let p = self.client.copyin_body_right(name, d).unwrap();
            k.push_port(at as u64, p).unwrap();
        }
        k
    }

    fn serve_and_receive(&self, k: Kmsg) -> Option<Got> {
        let reply = serve::<TestTask>(&self.sender, k)?;
        mqueue::send(reply, true, |_| false);
        Some(recv(&self.client, self.reply))
    }
}

enum Item {
    Int(u32),
    /// A `boolean_t` (`MACH_MSG_TYPE_BOOLEAN`, 0).
    Bool(u32),
    Name(u32),
    U64(u64),
    Right(PortName, Disposition),
    Words(&'static [u32]),
    /// A variable C string (`MACH_MSG_TYPE_STRING`).
    Str(&'static [u8]),
    /// A fixed 128-byte C string (`dev_name_t`: `MACH_MSG_TYPE_STRING_C`, 1024 bits, long
    /// form, as GNU MIG sends it).
    DevName(&'static [u8]),
    /// Bytes in line (`io_buf_ptr_inband_t`: `MACH_MSG_TYPE_CHAR`).
    Chars(&'static [u8]),
}

fn desc(name: u8, size: u16) -> TypeDesc {
    TypeDesc {
        name,
        size,
        number: 1,
        inline: true,
        longform: false,
        deallocate: false,
    }
}

/// A reply as the client receives it.
#[derive(Debug)]
struct Got {
    id: i32,
    size: u32,
    complex: bool,
    body: Vec<u8>,
    ports: Vec<PortName>,
    ool: Vec<u64>,
}

impl Got {
    fn code(&self) -> K {
        K::from(self.word(40) as i32)
    }

    /// The 32-bit word at `at` from the start of the message.
    fn word(&self, at: usize) -> u32 {
        u32::from_le_bytes(self.body[at - 32..at - 28].try_into().unwrap())
    }

    fn desc(&self, at: usize) -> TypeDesc {
        TypeDesc::from_words(self.word(at), self.word(at + 4))
    }
}

fn recv(s: &Space, name: PortName) -> Got {
    let src = s.mqueue_copyin(name).unwrap();
    let RecvResult::Message(mut k) = src.receive(None, |_| false) else {
        panic!("no reply");
    };
    s.copyout_header(&mut k).unwrap();
    let mut ports = Vec::new();
    for slot in k.ports_mut() {
        ports.push(s.copyout_right(slot.port.take()).0);
    }
    let ool = k.ool_mut().map(|o| o.memory.size()).collect();
    let mut body = vec![0; k.body.len()];
    k.body.read(0, &mut body);
    Got {
        id: k.id,
        size: k.size,
        complex: k.bits & msgh_bits::COMPLEX != 0,
        body,
        ports,
        ool,
    }
}

#[test]
fn mach_port_allocate_and_type_act_on_the_target_space() {
    let w = World::new();
    let g = w
        .call(
            w.task,
            mach_port::MACH_PORT_ALLOCATE_ID,
            &[Item::Int(R_RECV)],
        )
        .unwrap();
    assert_eq!((g.id, g.size, g.code()), (3304, 64, K::Success));
    let name = PortName(g.word(56));
    assert_eq!(w.target.port_type(name), Ok(pt::RECEIVE));
    let g = w
        .call(w.task, mach_port::MACH_PORT_TYPE_ID, &[Item::Name(name.0)])
        .unwrap();
    assert_eq!((g.code(), g.word(56)), (K::Success, pt::RECEIVE));
    // A name the target lacks: GNU Mach's code, in a 48-byte reply.
    let g = w
        .call(w.task, mach_port::MACH_PORT_TYPE_ID, &[Item::Name(0x777)])
        .unwrap();
    assert_eq!((g.code(), g.size), (K::InvalidName, 48));
}

fn words(g: &Got, at: usize, n: usize) -> Vec<u32> {
    (0..n).map(|i| g.word(at + 4 * i)).collect()
}

#[test]
fn host_info_flavors_and_codes_follow_gnu_mach() {
    let w = World::new();
    let info = |dest, flavor: i32, count: u32| {
        w.call(
            dest,
            mach_host::HOST_INFO_ID,
            &[Item::Int(flavor as u32), Item::Int(count)],
        )
        .unwrap()
    };
    let g = info(w.host_name, flavor::HOST_BASIC_INFO, 12);
    assert_eq!((g.code(), g.size), (K::Success, 56 + 24));
    assert_eq!(g.desc(48).number, 6);
    assert_eq!(words(&g, 56, 6), [4, 3, 0x2000_0000, 1, 22, 0]);
    // The privileged port is a host too.
    assert_eq!(
        info(w.host_priv, flavor::HOST_BASIC_INFO, 6).code(),
        K::Success
    );
    assert_eq!(
        info(w.host_name, flavor::HOST_BASIC_INFO, 5).code(),
        K::Failure
    );
    let g = info(w.host_name, flavor::HOST_PROCESSOR_SLOTS, 4);
    assert_eq!((g.code(), g.desc(48).number), (K::Success, 3));
    assert_eq!(words(&g, 56, 3), [0, 1, 3]);
    assert_eq!(
        info(w.host_name, flavor::HOST_PROCESSOR_SLOTS, 3).code(),
        K::InvalidArgument
    );
    let g = info(w.host_name, flavor::HOST_SCHED_INFO, 2);
    assert_eq!(words(&g, 56, 2), [10, 20]);
    assert_eq!(
        info(w.host_name, flavor::HOST_SCHED_INFO, 1).code(),
        K::Failure
    );
    let g = info(w.host_name, flavor::HOST_LOAD_INFO, 1024);
    assert_eq!(words(&g, 56, 6), [1, 2, 3, 4, 5, 6]);
    assert_eq!(
        info(w.host_name, flavor::HOST_LOAD_INFO, 5).code(),
        K::Failure
    );
    assert_eq!(info(w.host_name, 9, 100).code(), K::InvalidArgument);
    // A task port is no host: host_info's code for a null host.
    assert_eq!(
        info(w.task, flavor::HOST_BASIC_INFO, 6).code(),
        K::InvalidArgument
    );
    // The largest count GNU MIG allows, and beyond: the array is cut to 1024 words.
    assert_eq!(
        info(w.host_name, flavor::HOST_BASIC_INFO, u32::MAX).code(),
        K::Success
    );

    let g = w
        .call(w.host_name, mach_host::HOST_GET_UPTIME64_ID, &[])
        .unwrap();
    assert_eq!((g.code(), g.size, g.desc(48).name), (K::Success, 72, 11));
    assert_eq!(words(&g, 56, 4), [3, 0, 500_000_007, 0]);
    let g = w
        .call(w.host_name, mach_host::HOST_GET_KERNEL_VERSION_ID, &[])
        .unwrap();
    assert_eq!(g.code(), K::Success);
    assert_eq!((g.desc(48).name, g.desc(48).size), (12, 8));
    let text = &g.body[24..];
    assert!(text.starts_with(b"armach "), "{:?}", &text[..16]);
}

#[test]
fn bad_requests_get_mig_errors() {
    let w = World::new();
    // An id no subsystem has.
    let g = w.call(w.task, 4242, &[]).unwrap();
    assert_eq!((g.id, g.size, g.code()), (4342, 48, K::MigBadId));
    // Too short, too long, and an item of the wrong type.
    let g = w.call(w.task, mach_port::MACH_PORT_TYPE_ID, &[]).unwrap();
    assert_eq!(g.code(), K::MigBadArguments);
    let g = w
        .call(
            w.task,
            mach_port::MACH_PORT_TYPE_ID,
            &[Item::Name(1), Item::Int(2)],
        )
        .unwrap();
    assert_eq!(g.code(), K::MigBadArguments);
    let g = w
        .call(w.task, mach_port::MACH_PORT_TYPE_ID, &[Item::Int(1)])
        .unwrap();
    assert_eq!(g.code(), K::MigBadArguments);
    // A mach_port call to the host: no task, no space.
    let g = w
        .call(w.host_name, mach_port::MACH_PORT_TYPE_ID, &[Item::Name(1)])
        .unwrap();
    assert_eq!(g.code(), K::InvalidTask);
    // Routines left out answer MIG_BAD_ID, explicitly.
    let g = w
        .call(
            w.task,
            mach_port::MACH_PORT_SET_PROTECTED_PAYLOAD_ID,
            &[Item::Name(1), Item::U64(5)],
        )
        .unwrap();
    assert_eq!(g.code(), K::MigBadId);
    // The host's time calls say KERN_INVALID_HOST for a port that is no host.
    let g = w.call(w.task, mach_host::HOST_GET_TIME_ID, &[]).unwrap();
    assert_eq!(g.code(), K::InvalidHost);
    // A task whose space is gone.
    let d = dyn_ledger(&w.ledger);
    let dying = TestTask::new(None);
    let port = Port::alloc_kernel(&d, Some(KObject::new(KObjectKind::Task, dying))).unwrap();
    let name = w.client.copyout(port.make_send().unwrap(), false).unwrap();
    let g = w
        .call(name, mach_port::MACH_PORT_ALLOCATE_ID, &[Item::Int(R_RECV)])
        .unwrap();
    assert_eq!(g.code(), K::InvalidTask);
    // A task port whose task died: its port stands for nothing any more.
    let gone = TestTask::new(Some(w.target.clone()));
    let port = Port::alloc_kernel(&d, Some(KObject::new(KObjectKind::Task, gone))).unwrap();
    let name = w.client.copyout(port.make_send().unwrap(), false).unwrap();
    let k = w.request(
        name,
        mach_port::MACH_PORT_ALLOCATE_ID,
        &[Item::Int(R_RECV)],
        true,
    );
    Port::dealloc_kernel(port);
    let g = w.serve_and_receive(k).unwrap();
    assert_eq!(g.code(), K::InvalidTask);
    assert_eq!(w.target.entry_count(), 0);
    // A kernel port that stands for nothing.
    let port = Port::alloc_kernel(&d, None).unwrap();
    let name = w.client.copyout(port.make_send().unwrap(), false).unwrap();
    let g = w
        .call(name, mach_host::HOST_INFO_ID, &[Item::Int(1), Item::Int(6)])
        .unwrap();
    assert_eq!(g.code(), K::InvalidArgument);
}

#[test]
fn without_a_reply_port_the_routine_runs_and_nothing_comes_back() {
    let w = World::new();
    let k = w.request(
        w.task,
        mach_port::MACH_PORT_ALLOCATE_ID,
        &[Item::Int(R_RECV)],
        false,
    );
    assert!(serve::<TestTask>(&w.sender, k).is_none());
    assert_eq!(w.target.entry_count(), 1);
    assert_eq!(w.ledger.of(crate::ipc::Kind::Message), 0);
}

#[test]
fn the_destination_right_is_consumed_and_everything_paid_back() {
    let w = World::new();
    let before = w.task_port.status();
    for _ in 0..3 {
        let g = w
            .call(
                w.task,
                mach_port::MACH_PORT_ALLOCATE_ID,
                &[Item::Int(R_PSET)],
            )
            .unwrap();
        assert_eq!(g.code(), K::Success);
    }
    // The copied send right each request carried is gone; the client's own stays.
    assert_eq!(w.task_port.status(), before);
    assert_eq!(w.ledger.of(crate::ipc::Kind::Message), 0);
    assert_eq!(w.ledger.of(crate::ipc::Kind::SendOnce), 0);
    // A request sent through a send-once right to the kernel port: consumed quietly, no
    // send-once notification queued on the kernel's port.
    let d = dyn_ledger(&w.ledger);
    let so = w.task_port.make_send_once(&d).unwrap();
    let mut k = w.request(
        w.task,
        mach_port::MACH_PORT_TYPE_ID,
        &[Item::Name(0x777)],
        true,
    );
    let reply = k.take_local();
    drop(k.take_remote());
    k.set_ports(so, reply, crate::ipc::abi::msg_type::PORT_SEND_ONCE);
    let g = w.serve_and_receive(k).unwrap();
    assert_eq!(g.code(), K::InvalidName);
    let st = w.task_port.status();
    assert_eq!((st.sorights, st.msgcount), (0, 0));
    assert_eq!(w.ledger.of(crate::ipc::Kind::SendOnce), 0);
}

#[test]
fn a_sender_out_of_memory_gets_a_shortage_and_nothing_is_done() {
    let w = World::new();
    w.ledger.set_limit(w.ledger.total() + 2);
    let g = w
        .call(
            w.task,
            mach_port::MACH_PORT_ALLOCATE_ID,
            &[Item::Int(R_RECV)],
        )
        .unwrap();
    assert_eq!((g.code(), g.size), (K::ResourceShortage, 48));
    assert_eq!(w.target.entry_count(), 0);
    w.ledger.set_limit(usize::MAX);
    assert_eq!(w.ledger.of(crate::ipc::Kind::Message), 0);
}

#[test]
fn a_send_right_as_reply_port_gets_the_reply_too() {
    let w = World::new();
    let body = {
        let mut buf = [0u8; 64];
        let mut e = Encoder::new(&mut buf);
        e.item(mig::INT32_DESC);
        e.put(R_RECV);
        let size = e.finish(Header::default()).unwrap();
        buf[32..size].to_vec()
    };
    let bits = msgh_bits::make(Disposition::CopySend as u32, Disposition::MakeSend as u32);
    let k = w.kmsg(
        bits,
        w.task,
        w.reply,
        mach_port::MACH_PORT_ALLOCATE_ID,
        &body,
        &[],
    );
    let g = w.serve_and_receive(k).unwrap();
    assert_eq!(g.code(), K::Success);
    assert_eq!(w.target.entry_count(), 1);
    // Out of memory with only a send right to answer on: GNU Mach drops the request.
    let k = w.kmsg(
        bits,
        w.task,
        w.reply,
        mach_port::MACH_PORT_ALLOCATE_ID,
        &body,
        &[],
    );
    w.ledger.set_limit(w.ledger.total());
    assert!(serve::<TestTask>(&w.sender, k).is_none());
    assert_eq!(w.target.entry_count(), 1);
    w.ledger.set_limit(usize::MAX);
    assert_eq!(w.ledger.of(crate::ipc::Kind::Message), 0);
}

#[test]
fn rights_travel_in_and_out_of_the_server() {
    let w = World::new();
    // insert_right: a send right made from the client's receive right.
    let p = w.client.allocate(R_RECV).unwrap();
    let g = w
        .call(
            w.task,
            mach_port::MACH_PORT_INSERT_RIGHT_ID,
            &[
                Item::Name(0x5000_0001),
                Item::Right(p, Disposition::MakeSend),
            ],
        )
        .unwrap();
    assert_eq!(g.code(), K::Success);
    assert_eq!(w.target.port_type(PortName(0x5000_0001)), Ok(pt::SEND));
    assert!(w.client.get_receive_status(p).unwrap().srights);
    // A bad name: the right is destroyed with the request.
    let q = w.client.allocate(R_RECV).unwrap();
    let g = w
        .call(
            w.task,
            mach_port::MACH_PORT_INSERT_RIGHT_ID,
            &[Item::Name(0), Item::Right(q, Disposition::MakeSend)],
        )
        .unwrap();
    assert_eq!(g.code(), K::InvalidValue);
    assert!(!w.client.get_receive_status(q).unwrap().srights);

    // extract_right: a made send right comes back as a send right in the client.
    let r = w.target.allocate(R_RECV).unwrap();
    let g = w
        .call(
            w.task,
            mach_port::MACH_PORT_EXTRACT_RIGHT_ID,
            &[Item::Name(r.0), Item::Int(Disposition::MakeSend as u32)],
        )
        .unwrap();
    assert_eq!(g.code(), K::Success);
    assert!(g.complex);
    assert_eq!((g.desc(48).name, g.desc(48).size), (17, 64));
    assert_eq!(g.ports.len(), 1);
    assert_eq!(w.client.port_type(g.ports[0]), Ok(pt::SEND));
    // The receive right itself moves.
    let g = w
        .call(
            w.task,
            mach_port::MACH_PORT_EXTRACT_RIGHT_ID,
            &[Item::Name(r.0), Item::Int(Disposition::MoveReceive as u32)],
        )
        .unwrap();
    assert_eq!((g.code(), g.desc(48).name), (K::Success, 16));
    assert_eq!(w.client.port_type(g.ports[0]), Ok(pt::SEND_RECEIVE));
    assert_eq!(w.target.port_type(r), Err(K::InvalidName));
    // A bad disposition.
    let g = w
        .call(
            w.task,
            mach_port::MACH_PORT_EXTRACT_RIGHT_ID,
            &[Item::Name(0x5000_0001), Item::Int(2)],
        )
        .unwrap();
    assert_eq!(g.code(), K::InvalidValue);
}

#[test]
fn notification_requests_take_and_return_send_once_rights() {
    let w = World::new();
    let np = w.client.allocate(R_RECV).unwrap();
    let r = w.target.allocate(R_RECV).unwrap();
    // A send right exists, so the no-senders request is registered.
    let held = w
        .target
        .extract_right(r, Disposition::MakeSend as u32)
        .unwrap();
    let request = |w: &World| {
        w.call(
            w.task,
            mach_port::MACH_PORT_REQUEST_NOTIFICATION_ID,
            &[
                Item::Name(r.0),
                Item::Int(0o106),
                Item::Int(0),
                Item::Right(np, Disposition::MakeSendOnce),
            ],
        )
        .unwrap()
    };
    let g = request(&w);
    assert_eq!(g.code(), K::Success);
    assert_eq!(
        (g.desc(48).name, g.ports.as_slice()),
        (18, &[PortName::NULL][..])
    );
    assert!(w.target.get_receive_status(r).unwrap().nsrequest);
    // Again: the previous right comes back to the client.
    let g = request(&w);
    assert_eq!(g.code(), K::Success);
    assert_eq!(w.client.port_type(g.ports[0]), Ok(pt::SEND_ONCE));
    // The last send right goes: the notification arrives on the client's port.
    drop(held);
    let src = w.client.mqueue_copyin(np).unwrap();
    let RecvResult::Message(mut k) = src.receive(None, |_| false) else {
        panic!("no notification");
    };
    assert_eq!(k.id, 0o106);
    w.client.copyout_header(&mut k).unwrap();
    // A bad id: the right given is destroyed.
    let g = w
        .call(
            w.task,
            mach_port::MACH_PORT_REQUEST_NOTIFICATION_ID,
            &[
                Item::Name(r.0),
                Item::Int(999),
                Item::Int(0),
                Item::Right(np, Disposition::MakeSendOnce),
            ],
        )
        .unwrap();
    assert_eq!(g.code(), K::InvalidValue);
    drop(k);
    // Destroyed: its send-once notification arrives instead.
    let RecvResult::Message(mut k) = src.receive(None, |_| false) else {
        panic!("no send-once notification");
    };
    assert_eq!(k.id, 0o107);
    w.client.copyout_header(&mut k).unwrap();
    drop(k);
    // The one the client holds is all that is left.
    assert_eq!(w.client.get_receive_status(np).unwrap().sorights, 1);
}

#[test]
fn names_and_set_members_come_back_out_of_line() {
    let w = World::new();
    let set = w.target.allocate(R_PSET).unwrap();
    let mut members = Vec::new();
    for _ in 0..300 {
        let p = w.target.allocate(R_RECV).unwrap();
        w.target.move_member(p, set).unwrap();
        members.push(p.0);
    }
    w.target.allocate(R_DEAD).unwrap();
    let g = w.call(w.task, mach_port::MACH_PORT_NAMES_ID, &[]).unwrap();
    assert_eq!(g.code(), K::Success);
    assert!(g.complex);
    let d = g.desc(48);
    assert_eq!(
        (d.name, d.size, d.number, d.inline, d.longform),
        (15, 32, 302, false, true)
    );
    // GNU MIG's words: out-of-line, long form, 32-bit port names.
    assert_eq!((g.word(48), g.word(52)), (0x4000_200f, 302));
    assert_eq!(g.desc(64).number, 302);
    assert_eq!(g.ool, [302 * 4, 302 * 4]);
    let g = w
        .call(
            w.task,
            mach_port::MACH_PORT_GET_SET_STATUS_ID,
            &[Item::Name(set.0)],
        )
        .unwrap();
    assert_eq!((g.code(), g.desc(48).number), (K::Success, 300));
    assert_eq!(g.ool, [300 * 4]);
    // The contents, read from the regions before they go into a message.
    let (names, types) = names_of(&w);
    assert_eq!(names.len(), 302);
    let mut want: Vec<u32> = w.target.debug_entries().iter().map(|e| e.0.0).collect();
    want.sort();
    assert_eq!(names, want);
    assert_eq!(types[0], pt::PORT_SET);
    // An empty space: no region at all.
    let empty = World::new();
    let g = empty
        .call(empty.task, mach_port::MACH_PORT_NAMES_ID, &[])
        .unwrap();
    assert_eq!((g.code(), g.desc(48).number), (K::Success, 0));
    assert!(g.ool.is_empty());
    // Not a set.
    let g = w
        .call(
            w.task,
            mach_port::MACH_PORT_GET_SET_STATUS_ID,
            &[Item::Name(members[0])],
        )
        .unwrap();
    assert_eq!(g.code(), K::InvalidRight);
    assert_eq!(w.ledger.of(crate::ipc::Kind::Message), 0);
}

#[test]
fn rights_in_the_body_translate_to_their_objects() {
    // mach_port_set_ktype(host_priv, task, ...): the task rides in the body. Translated
    // (the routine is not served, so MIG_BAD_ID) when it is a task's kernel port; a
    // plain port is no task.
    let w = World::new();
    let set_ktype = |task: PortName| {
        w.call(
            w.host_priv,
            mach_port::MACH_PORT_SET_KTYPE_ID,
            &[
                Item::Right(task, Disposition::CopySend),
                Item::Name(1),
                Item::Int(R_RECV),
                Item::Int(0),
            ],
        )
        .unwrap()
        .code()
    };
    assert_eq!(set_ktype(w.task), K::MigBadId);
    let plain = w.client.allocate(R_RECV).unwrap();
    let send = w
        .client
        .extract_right(plain, Disposition::MakeSend as u32)
        .unwrap();
    w.client.insert_right(plain, send).unwrap();
    let plain_send = plain;
    assert_eq!(set_ktype(plain_send), K::InvalidTask);
    // The host port is no privileged host.
    let g = w
        .call(
            w.host_name,
            mach_port::MACH_PORT_SET_KTYPE_ID,
            &[
                Item::Right(w.task, Disposition::CopySend),
                Item::Name(1),
                Item::Int(R_RECV),
                Item::Int(0),
            ],
        )
        .unwrap();
    assert_eq!(g.code(), K::InvalidHost);
    // The copied task rights went with the requests: the client's and the task's own
    // are all that are left.
    assert_eq!(w.task_port.status().srights, 2);
}

#[test]
fn task_get_special_port_copies_the_task_s_own_port() {
    use super::generated::mach;
    let w = World::new();
    let get = |which: u32| {
        w.call(w.task, mach::TASK_GET_SPECIAL_PORT_ID, &[Item::Int(which)])
            .unwrap()
    };
    let before = w.task_port.status();
    let g = get(1);
    assert_eq!(
        (g.code(), g.desc(48).name, g.complex),
        (K::Success, 17, true)
    );
    // The client already names the task's port: the copy merges under that name.
    assert_eq!(g.ports, [w.task]);
    assert_eq!(w.client.get_refs(w.task, R_SEND_RIGHT), Ok(2));
    assert_eq!(w.task_port.status().mscount, before.mscount);
    // Unset slots are null; unknown ones an error.
    assert_eq!(get(4).ports, [PortName::NULL]);
    assert_eq!(get(2).code(), K::InvalidArgument);
    // Sent to the host: no task.
    let g = w
        .call(w.host_name, mach::TASK_GET_SPECIAL_PORT_ID, &[Item::Int(1)])
        .unwrap();
    assert_eq!(g.code(), K::InvalidArgument);
}

/// `mach_port_names` served straight through the demux, its regions read back.
fn names_of(w: &World) -> (Vec<u32>, Vec<u32>) {
    use super::objects::Kernel;
    use super::slots::{DEST, Slots};
    let task = TestTask::new(Some(w.target.clone()));
    let mut slots = Slots::new(Some(KObject::new(KObjectKind::Task, task)));
    let mut req = [0u8; 32];
    Header {
        bits: msgh_bits::make(18, 17),
        size: 32,
        local_port: DEST,
        remote_port: super::slots::REPLY,
        id: mach_port::MACH_PORT_NAMES_ID,
        ..Header::default()
    }
    .write(&mut req);
    let mut reply = [0u8; 128];
    let mut k = Kernel::<TestTask> {
        slots: &mut slots,
        ledger: &w.sender,
        after: super::After::Nothing,
        _task: core::marker::PhantomData,
    };
    let served = mach_port::mach_port_server(&mut k, &req, &mut reply);
    assert_eq!(served.code, K::Success);
    let read = |slots: &mut Slots, at: usize| {
        let handle = u64::from_le_bytes(reply[at..at + 8].try_into().unwrap());
        let region = slots.take_region(handle).expect("a region");
        let mut bytes = vec![0u8; region.len()];
        assert!(region.read(0, &mut bytes));
        bytes
            .chunks(4)
            .map(|c| u32::from_le_bytes(c.try_into().unwrap()))
            .collect::<Vec<_>>()
    };
    (read(&mut slots, 56), read(&mut slots, 72))
}

mod props {
    use super::*;
    use proptest::prelude::*;

    #[derive(Clone, Debug)]
    enum Op {
        Allocate(u32),
        AllocateName(u32, usize),
        Deallocate(usize),
        Destroy(usize),
        ModRefs(usize, u32, i32),
        GetRefs(usize, u32),
        Type(usize),
        Rename(usize, usize),
        MoveMember(usize, usize),
        SetQlimit(usize, u32),
        SetMscount(usize, u32),
        SetSeqno(usize, u32),
        Status(usize),
        Extract(usize, u32),
    }

    fn op() -> impl Strategy<Value = Op> {
        let i = any::<usize>();
        prop_oneof![
            3 => (0u32..6).prop_map(Op::Allocate),
            1 => (0u32..6, i).prop_map(|(r, n)| Op::AllocateName(r, n)),
            1 => i.prop_map(Op::Deallocate),
            1 => i.prop_map(Op::Destroy),
            1 => (i, 0u32..6, -3i32..4).prop_map(|(n, r, d)| Op::ModRefs(n, r, d)),
            1 => (i, 0u32..6).prop_map(|(n, r)| Op::GetRefs(n, r)),
            1 => i.prop_map(Op::Type),
            1 => (i, i).prop_map(|(a, b)| Op::Rename(a, b)),
            1 => (i, i).prop_map(|(a, b)| Op::MoveMember(a, b)),
            1 => (i, 0u32..20).prop_map(|(n, q)| Op::SetQlimit(n, q)),
            1 => (i, any::<u32>()).prop_map(|(n, m)| Op::SetMscount(n, m)),
            1 => (i, any::<u32>()).prop_map(|(n, m)| Op::SetSeqno(n, m)),
            1 => i.prop_map(Op::Status),
            1 => (i, 15u32..23).prop_map(|(n, d)| Op::Extract(n, d)),
        ]
    }

    /// What a call answered: its code and the values of a successful reply.
    type Answer = (K, Vec<u32>);

    fn by_server(w: &World, op: &Op, pool: &[PortName]) -> Answer {
        let n = |i: usize| pool[i % pool.len()].0;
        let (id, items) = match *op {
            Op::Allocate(r) => (mach_port::MACH_PORT_ALLOCATE_ID, vec![Item::Int(r)]),
            Op::AllocateName(r, i) => (
                mach_port::MACH_PORT_ALLOCATE_NAME_ID,
                vec![Item::Int(r), Item::Name(n(i))],
            ),
            Op::Deallocate(i) => (mach_port::MACH_PORT_DEALLOCATE_ID, vec![Item::Name(n(i))]),
            Op::Destroy(i) => (mach_port::MACH_PORT_DESTROY_ID, vec![Item::Name(n(i))]),
            Op::ModRefs(i, r, d) => (
                mach_port::MACH_PORT_MOD_REFS_ID,
                vec![Item::Name(n(i)), Item::Int(r), Item::Int(d as u32)],
            ),
            Op::GetRefs(i, r) => (
                mach_port::MACH_PORT_GET_REFS_ID,
                vec![Item::Name(n(i)), Item::Int(r)],
            ),
            Op::Type(i) => (mach_port::MACH_PORT_TYPE_ID, vec![Item::Name(n(i))]),
            Op::Rename(a, b) => (
                mach_port::MACH_PORT_RENAME_ID,
                vec![Item::Name(n(a)), Item::Name(n(b))],
            ),
            Op::MoveMember(a, b) => (
                mach_port::MACH_PORT_MOVE_MEMBER_ID,
                vec![Item::Name(n(a)), Item::Name(n(b))],
            ),
            Op::SetQlimit(i, q) => (
                mach_port::MACH_PORT_SET_QLIMIT_ID,
                vec![Item::Name(n(i)), Item::Int(q)],
            ),
            Op::SetMscount(i, m) => (
                mach_port::MACH_PORT_SET_MSCOUNT_ID,
                vec![Item::Name(n(i)), Item::Int(m)],
            ),
            Op::SetSeqno(i, m) => (
                mach_port::MACH_PORT_SET_SEQNO_ID,
                vec![Item::Name(n(i)), Item::Int(m)],
            ),
            Op::Status(i) => (
                mach_port::MACH_PORT_GET_RECEIVE_STATUS_ID,
                vec![Item::Name(n(i))],
            ),
            Op::Extract(i, d) => (
                mach_port::MACH_PORT_EXTRACT_RIGHT_ID,
                vec![Item::Name(n(i)), Item::Int(d)],
            ),
        };
        let g = w.call(w.task, id, &items).expect("a reply");
        let code = g.code();
        if code != K::Success {
            assert_eq!(g.size, 48);
            return (code, Vec::new());
        }
        let values = match op {
            Op::Allocate(_) | Op::GetRefs(..) | Op::Type(_) => vec![g.word(56)],
            Op::Status(_) => words(&g, 56, 9),
            Op::Extract(..) => vec![g.desc(48).name as u32, g.ports.len() as u32],
            _ => Vec::new(),
        };
        (code, values)
    }

    fn direct(s: &Space, op: &Op, pool: &[PortName], kept: &mut Vec<MsgPort>) -> Answer {
        let n = |i: usize| pool[i % pool.len()];
        let unit = |r: Result<(), K>| (r.err().unwrap_or(K::Success), Vec::new());
        let one = |r: Result<u32, K>| match r {
            Ok(v) => (K::Success, vec![v]),
            Err(e) => (e, Vec::new()),
        };
        match *op {
            Op::Allocate(r) => one(s.allocate(r).map(|p| p.0)),
            Op::AllocateName(r, i) => unit(s.allocate_name(r, n(i))),
            Op::Deallocate(i) => unit(s.deallocate(n(i))),
            Op::Destroy(i) => unit(s.destroy_name(n(i))),
            Op::ModRefs(i, r, d) => unit(s.mod_refs(n(i), r, d)),
            Op::GetRefs(i, r) => one(s.get_refs(n(i), r)),
            Op::Type(i) => one(s.port_type(n(i))),
            Op::Rename(a, b) => unit(s.rename(n(a), n(b))),
            Op::MoveMember(a, b) => unit(s.move_member(n(a), n(b))),
            Op::SetQlimit(i, q) => unit(s.set_qlimit(n(i), q)),
            Op::SetMscount(i, m) => unit(s.set_mscount(n(i), m)),
            Op::SetSeqno(i, m) => unit(s.set_seqno(n(i), m)),
            Op::Status(i) => match s.get_receive_status(n(i)) {
                Ok(st) => (
                    K::Success,
                    vec![
                        st.pset.0,
                        st.seqno,
                        st.mscount,
                        st.qlimit,
                        st.msgcount,
                        st.sorights,
                        u32::from(st.srights),
                        u32::from(st.pdrequest),
                        u32::from(st.nsrequest),
                    ],
                ),
                Err(e) => (e, Vec::new()),
            },
            Op::Extract(i, d) => match s.extract_right(n(i), d) {
                Ok(p) => {
                    let ty = copyin_type(Disposition::from_u32(d).unwrap());
                    let carried = u32::from(matches!(p, MsgPort::Right(_) | MsgPort::Dead));
                    kept.push(p);
                    (K::Success, vec![ty, carried])
                }
                Err(e) => (e, Vec::new()),
            },
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 64, failure_persistence: None, ..ProptestConfig::default() })]

        /// Every call through the server answers what the `Space` method answers directly,
        /// and leaves the target space as the direct calls leave theirs.
        #[test]
        fn the_server_is_the_space_methods(ops in proptest::collection::vec(op(), 0..40)) {
            let w = World::new();
            let ledger = CountingLedger::unlimited();
            let twin = Space::new(&dyn_ledger(&ledger)).unwrap();
            let mut kept = Vec::new();
            let mut pool = vec![PortName::NULL, PortName::DEAD, PortName(0x5000_0001), PortName(0x5000_0002)];
            for op in &ops {
                let a = by_server(&w, op, &pool);
                let b = direct(&twin, op, &pool, &mut kept);
                prop_assert_eq!(&a, &b, "{:?}", op);
                if let (Op::Allocate(_), (K::Success, v)) = (op, &a) {
                    pool.push(PortName(v[0]));
                }
            }
            let entries = |s: &Space| {
                s.debug_entries().into_iter().map(|(n, t, u, _)| (n, t, u)).collect::<Vec<_>>()
            };
            prop_assert_eq!(entries(&w.target), entries(&twin));
            prop_assert_eq!(w.ledger.of(crate::ipc::Kind::Message), 0);
        }

    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 512, failure_persistence: None, ..ProptestConfig::default() })]

        /// Random bytes after a header, with rights in random slots, to every subsystem's
        /// ids: never a panic, always a reply (or none without a reply right), and every
        /// message charge given back.
        #[test]
        fn random_requests_never_panic(
            id in prop_oneof![2000i32..2101, 2600i32..2650, 3000i32..3025, 3200i32..3225, any::<i32>()],
            body in proptest::collection::vec(any::<u8>(), 0..400),
            slots in proptest::collection::vec(any::<u16>(), 0..4),
            complex in any::<bool>(),
            to_host in any::<bool>(),
            reply in any::<bool>(),
        ) {
            let w = World::new();
            let p = w.client.allocate(R_RECV).unwrap();
            let mut body = body;
            body.truncate(body.len() & !7);
            let rights: Vec<(usize, PortName, Disposition)> = slots
                .iter()
                .filter(|_| body.len() >= 8)
                .map(|&s| (32 + (s as usize % (body.len() / 8)) * 8, (p, Disposition::MakeSend)))
                .collect::<std::collections::BTreeMap<_, _>>()
                .into_iter()
                .map(|(at, (p, d))| (at, p, d))
                .collect();
            let (reply_name, reply_d) = if reply {
                (w.reply, Disposition::MakeSendOnce as u32)
            } else {
                (PortName::NULL, 0)
            };
            let bits = msgh_bits::make(Disposition::CopySend as u32, reply_d)
                | if complex { msgh_bits::COMPLEX } else { 0 };
            let dest = if to_host { w.host_priv } else { w.task };
            let k = w.kmsg(bits, dest, reply_name, id, &body, &rights);
            match serve::<TestTask>(&w.sender, k) {
                Some(r) => {
                    prop_assert!(reply);
                    prop_assert_eq!(r.id, id.wrapping_add(100));
                    mqueue::send(r, true, |_| false);
                    let g = recv(&w.client, w.reply);
                    prop_assert!(g.size >= 48);
                }
                // A simpleroutine sends nothing back: the reply right given anyway is
                // released (a send-once notification).
                None if reply => {
                    let g = recv(&w.client, w.reply);
                    prop_assert_eq!(g.id, 0o107);
                }
                None => {}
            }
            prop_assert_eq!(w.ledger.of(crate::ipc::Kind::Message), 0);
        }
    }
}

/// A send right named in the client's space to a kernel port standing for `object`.
fn kernel_name<O: std::any::Any + Send + Sync>(
    w: &World,
    kind: KObjectKind,
    object: Arc<O>,
) -> (PortName, Arc<Port>) {
    let port = Port::alloc_kernel(&w.sender, Some(KObject::new(kind, object))).unwrap();
    let name = w.client.copyout(port.make_send().unwrap(), false).unwrap();
    (name, port)
}

#[test]
fn processors_come_out_of_line_and_answer_processor_info() {
    let w = World::new();
    // Privileged only: the host name port is no host_priv_t (GNU Mach's null host).
    let g = w
        .call(w.host_name, mach_host::HOST_PROCESSORS_ID, &[])
        .unwrap();
    assert_eq!(g.code(), K::InvalidArgument);
    let g = w
        .call(w.host_priv, mach_host::HOST_PROCESSORS_ID, &[])
        .unwrap();
    assert_eq!(g.code(), K::Success);
    assert!(g.complex);
    let d = g.desc(48);
    assert_eq!(
        (d.name, d.size, d.number, d.inline, d.longform),
        (17, 32, 4, false, true)
    );
    assert_eq!(g.ool, [16]);
    assert_eq!(g.ports.len(), 4);
    for (slot, &p) in g.ports.iter().enumerate() {
        let info = |flavor: i32, count: u32| {
            w.call(
                p,
                mach_host::PROCESSOR_INFO_ID,
                &[Item::Int(flavor as u32), Item::Int(count)],
            )
            .unwrap()
        };
        let g = info(1, 5);
        assert_eq!(g.code(), K::Success);
        // RetCode, the host right (null: host tests have no realhost), then the info.
        assert_eq!(g.desc(64).number, 5);
        let running = u32::from(slot != 2);
        assert_eq!(
            words(&g, 72, 5),
            [22, 0, running, slot as u32, u32::from(slot == 0)]
        );
        // GNU Mach: a short count or an unknown flavor is KERN_FAILURE.
        assert_eq!(info(1, 4).code(), K::Failure);
        assert_eq!(info(2, 5).code(), K::Failure);
        // Processors cannot be started, stopped or controlled here.
        for id in [mach_host::PROCESSOR_START_ID, mach_host::PROCESSOR_EXIT_ID] {
            assert_eq!(w.call(p, id, &[]).unwrap().code(), K::Failure);
        }
    }
    // processor_info on the host port: no processor.
    let g = w
        .call(
            w.host_name,
            mach_host::PROCESSOR_INFO_ID,
            &[Item::Int(1), Item::Int(5)],
        )
        .unwrap();
    assert_eq!(g.code(), K::InvalidArgument);
    // Each right the reply carried was paid for and given back.
    drop(w.client.clone());
    assert_eq!(w.ledger.of(crate::ipc::Kind::Message), 0);
}

#[test]
fn sets_have_a_name_port_and_a_control_port_with_gnu_mach_s_privileges() {
    let w = World::new();
    // Creation needs the privileged port.
    let g = w
        .call(w.host_name, mach_host::PROCESSOR_SET_CREATE_ID, &[])
        .unwrap();
    assert_eq!(g.code(), K::InvalidArgument);
    let before = w.ledger.total();
    let g = w
        .call(w.host_priv, mach_host::PROCESSOR_SET_CREATE_ID, &[])
        .unwrap();
    assert_eq!(g.code(), K::Success);
    let (control, name) = (g.ports[0], g.ports[1]);
    assert_ne!(control, name);
    // The set, its two ports, charged to the creator.
    assert!(w.ledger.total() >= before + 3, "{}", w.ledger.total());
    let info = |dest, flavor: i32, count: u32| {
        w.call(
            dest,
            mach_host::PROCESSOR_SET_INFO_ID,
            &[Item::Int(flavor as u32), Item::Int(count)],
        )
        .unwrap()
    };
    // Information through either port.
    for p in [name, control] {
        let g = info(p, 1, 5);
        assert_eq!(g.code(), K::Success);
        assert_eq!(words(&g, 72, 5), [0, 2, 3, 4, 5]);
        let g = info(p, 2, 2);
        assert_eq!(words(&g, 72, 2), [1, 25]);
    }
    assert_eq!(info(name, 1, 4).code(), K::Failure);
    assert_eq!(info(name, 2, 1).code(), K::Failure);
    assert_eq!(info(name, 3, 5).code(), K::InvalidArgument);
    // The name port controls nothing.
    let g = w
        .call(name, mach_host::PROCESSOR_SET_DESTROY_ID, &[])
        .unwrap();
    assert_eq!(g.code(), K::InvalidArgument);
    // host_processor_set_priv turns the name into the control port.
    let g = w
        .call(
            w.host_priv,
            mach_host::HOST_PROCESSOR_SET_PRIV_ID,
            &[Item::Right(name, Disposition::CopySend)],
        )
        .unwrap();
    assert_eq!((g.code(), g.ports[0]), (K::Success, control));
    let g = w
        .call(
            w.host_name,
            mach_host::HOST_PROCESSOR_SET_PRIV_ID,
            &[Item::Right(name, Disposition::CopySend)],
        )
        .unwrap();
    assert_eq!(g.code(), K::InvalidArgument);
    // Processors move in with the control port; the master never does.
    let g = w
        .call(w.host_priv, mach_host::HOST_PROCESSORS_ID, &[])
        .unwrap();
    let cpus = g.ports.clone();
    let assign = |cpu, set| {
        w.call(
            cpu,
            mach_host::PROCESSOR_ASSIGN_ID,
            &[Item::Right(set, Disposition::CopySend), Item::Bool(0)],
        )
        .unwrap()
        .code()
    };
    assert_eq!(assign(cpus[3], name), K::InvalidArgument);
    assert_eq!(assign(cpus[0], control), K::InvalidArgument);
    assert_eq!(assign(cpus[3], control), K::Success);
    let g = w
        .call(cpus[3], mach_host::PROCESSOR_GET_ASSIGNMENT_ID, &[])
        .unwrap();
    assert_eq!((g.code(), g.ports[0]), (K::Success, name));
    let g = w
        .call(name, mach_host::PROCESSOR_SET_PROCESSORS_ID, &[])
        .unwrap();
    assert_eq!((g.code(), g.ports.clone()), (K::Success, vec![cpus[3]]));
    // Its tasks and threads, out of line (three members of this World's new set).
    let id = w._host.host.machine.sets().last().unwrap().id.0;
    let members: Vec<Arc<Port>> = (0..3)
        .map(|_| Port::alloc_kernel(&w.sender, None).unwrap())
        .collect();
    SCHED
        .members
        .lock()
        .unwrap()
        .extend(members.iter().map(|p| (id, p.clone())));
    for which in [
        mach_host::PROCESSOR_SET_TASKS_ID,
        mach_host::PROCESSOR_SET_THREADS_ID,
    ] {
        let g = w.call(control, which, &[]).unwrap();
        assert_eq!(g.code(), K::Success);
        assert_eq!(g.ports.len(), 3);
        assert_eq!(g.desc(48).number, 3);
        // The name port does not list them.
        let g = w.call(name, which, &[]).unwrap();
        assert_eq!(g.code(), K::InvalidArgument);
    }
    SCHED.members.lock().unwrap().retain(|(s, _)| *s != id);
    for p in members {
        Port::dealloc_kernel(p);
    }
    // The host lists the default set and this one by their name ports.
    let g = w
        .call(w.host_name, mach_host::HOST_PROCESSOR_SETS_ID, &[])
        .unwrap();
    assert_eq!(g.code(), K::Success);
    assert!(g.ports.contains(&name) && !g.ports.contains(&control));
    // Destroyed: its processor is back in the default set, its ports are dead.
    let g = w
        .call(control, mach_host::PROCESSOR_SET_DESTROY_ID, &[])
        .unwrap();
    assert_eq!(g.code(), K::Success);
    let g = w
        .call(cpus[3], mach_host::PROCESSOR_GET_ASSIGNMENT_ID, &[])
        .unwrap();
    assert_ne!(g.ports[0], name);
    assert_eq!(w.client.port_type(name).unwrap(), pt::DEAD_NAME);
    assert_eq!(w.client.port_type(control).unwrap(), pt::DEAD_NAME);
}

#[test]
fn priorities_follow_gnu_mach() {
    let w = World::new();
    let thread = TestThread::new();
    let (t, _port) = kernel_name(&w, KObjectKind::Thread, thread.clone());
    let prio = |p: i32, set_max: u32| {
        w.call(
            t,
            mach_host::THREAD_PRIORITY_ID,
            &[Item::Int(p as u32), Item::Bool(set_max)],
        )
        .unwrap()
        .code()
    };
    assert_eq!(prio(-1, 0), K::InvalidArgument);
    assert_eq!(prio(65, 0), K::InvalidArgument);
    // Above its maximum (25): refused.
    assert_eq!(prio(10, 0), K::Failure);
    assert_eq!(prio(30, 1), K::Success);
    assert_eq!((thread.base_priority(), thread.max_priority()), (30, 30));
    assert_eq!(prio(28, 0), K::Failure);
    // thread_max_priority needs the thread's own set's control port.
    let g = w
        .call(w.host_name, mach_host::PROCESSOR_SET_DEFAULT_ID, &[])
        .unwrap();
    let default_name = g.ports[0];
    let g = w
        .call(
            w.host_priv,
            mach_host::HOST_PROCESSOR_SET_PRIV_ID,
            &[Item::Right(default_name, Disposition::CopySend)],
        )
        .unwrap();
    let default = g.ports[0];
    let max = |set, p: i32| {
        w.call(
            t,
            mach_host::THREAD_MAX_PRIORITY_ID,
            &[Item::Right(set, Disposition::CopySend), Item::Int(p as u32)],
        )
        .unwrap()
        .code()
    };
    assert_eq!(max(default_name, 20), K::InvalidArgument);
    assert_eq!(max(default, 99), K::InvalidArgument);
    assert_eq!(max(default, 40), K::Success);
    assert_eq!((thread.base_priority(), thread.max_priority()), (40, 40));
    // A task's priority with its threads.
    let task = TestTask::new(None);
    task.threads.lock().unwrap().push(thread.clone());
    let (tk, _tport) = kernel_name(&w, KObjectKind::Task, task.clone());
    let tprio = |p: i32, change: u32| {
        w.call(
            tk,
            mach_host::TASK_PRIORITY_ID,
            &[Item::Int(p as u32), Item::Bool(change)],
        )
        .unwrap()
        .code()
    };
    assert_eq!(tprio(70, 0), K::InvalidArgument);
    assert_eq!(tprio(30, 0), K::Success);
    assert_eq!(task.priority.load(Relaxed), 30);
    // The thread's maximum (40) forbids 30: KERN_FAILURE, the task's priority set anyway.
    assert_eq!(tprio(35, 1), K::Failure);
    assert_eq!(tprio(50, 1), K::Success);
    assert_eq!(thread.base_priority(), 50);
    // thread_depress_abort, and the wrong object for each.
    let g = w.call(t, mach_host::THREAD_DEPRESS_ABORT_ID, &[]).unwrap();
    assert_eq!(g.code(), K::Success);
    assert_eq!(thread.depress_aborts.load(Relaxed), 1);
    let g = w.call(tk, mach_host::THREAD_DEPRESS_ABORT_ID, &[]).unwrap();
    assert_eq!(g.code(), K::InvalidArgument);
    assert_eq!(
        w.call(
            t,
            mach_host::TASK_PRIORITY_ID,
            &[Item::Int(30), Item::Bool(0)]
        )
        .unwrap()
        .code(),
        K::InvalidArgument
    );
    // thread_wire: only the caller itself (the fake thread never is).
    let g = w
        .call(
            w.host_priv,
            mach_host::THREAD_WIRE_ID,
            &[Item::Right(t, Disposition::CopySend), Item::Bool(1)],
        )
        .unwrap();
    assert_eq!(g.code(), K::InvalidArgument);
    let g = w
        .call(
            w.host_name,
            mach_host::THREAD_WIRE_ID,
            &[Item::Right(t, Disposition::CopySend), Item::Bool(1)],
        )
        .unwrap();
    assert_eq!(g.code(), K::InvalidHost);
}

#[test]
fn time_reboot_and_wiring_follow_gnu_mach() {
    let w = World::new();
    let g = w
        .call(w.host_name, mach_host::HOST_GET_TIME64_ID, &[])
        .unwrap();
    assert_eq!(g.code(), K::Success);
    // Boot time 10^18 ns plus 3.500000007 s.
    assert_eq!(words(&g, 56, 4), [1_000_000_003, 0, 500_000_007, 0]);
    let g = w
        .call(w.host_name, mach_host::HOST_GET_TIME_ID, &[])
        .unwrap();
    assert_eq!(words(&g, 64, 1), [500_000]);
    // host_reboot needs the privileged port (KERN_INVALID_HOST otherwise).
    let g = w
        .call(w.host_name, mach_host::HOST_REBOOT_ID, &[Item::Int(0)])
        .unwrap();
    assert_eq!(g.code(), K::InvalidHost);
    let g = w
        .call(
            w.host_priv,
            mach_host::HOST_REBOOT_ID,
            &[Item::Int(0x8 | 4)],
        )
        .unwrap();
    assert_eq!(g.code(), K::Success);
    assert_eq!(SCHED.rebooted.load(Relaxed), 4);
    // vm_wire: the host first, then the map, then the access.
    let wire = |host, task, size: u64, access: i32| {
        w.call(
            host,
            mach_host::VM_WIRE_ID,
            &[
                Item::Right(task, Disposition::CopySend),
                Item::U64(0x10000),
                Item::U64(size),
                Item::Int(access as u32),
            ],
        )
        .unwrap()
        .code()
    };
    assert_eq!(wire(w.task, w.task, 4096, 1), K::InvalidHost);
    assert_eq!(wire(w.host_name, w.host_name, 4096, 1), K::InvalidTask);
    assert_eq!(wire(w.host_name, w.task, 4096, 8), K::InvalidArgument);
    // GNU Mach's unprivileged 8 MiB (the map counts what it has wired already).
    assert_eq!(wire(w.host_name, w.task, 16 << 20, 1), K::NoAccess);
    assert_eq!(wire(w.host_name, w.task, 16 << 20, 0), K::Success);
    assert_eq!(wire(w.host_priv, w.task, 16 << 20, 1), K::Success);
    assert_eq!(wire(w.host_name, w.task, 4096, 3), K::Success);
    assert_eq!(
        w.call(
            w.host_name,
            mach_host::VM_WIRE_ID,
            &[
                Item::Right(w.task, Disposition::CopySend),
                Item::U64(0x400000),
                Item::U64(4096),
                Item::Int(1),
            ],
        )
        .unwrap()
        .code(),
        K::NoSpace
    );
}

#[test]
fn a_set_s_new_maximum_lowers_its_threads_with_change_threads() {
    let w = World::new();
    let g = w
        .call(w.host_priv, mach_host::PROCESSOR_SET_CREATE_ID, &[])
        .unwrap();
    let control = g.ports[0];
    let id = w._host.host.machine.sets().last().unwrap().id.0;
    let (high, low) = (TestThread::new(), TestThread::new());
    high.max_priority.store(10, Relaxed);
    high.priority.store(12, Relaxed);
    low.max_priority.store(50, Relaxed);
    low.priority.store(55, Relaxed);
    let ports: Vec<Arc<Port>> = [high.clone(), low.clone()]
        .into_iter()
        .map(|t| Port::alloc_kernel(&w.sender, Some(KObject::new(KObjectKind::Thread, t))).unwrap())
        .collect();
    SCHED
        .members
        .lock()
        .unwrap()
        .extend(ports.iter().map(|p| (id, p.clone())));
    let max = |p: i32, change: u32| {
        w.call(
            control,
            mach_host::PROCESSOR_SET_MAX_PRIORITY_ID,
            &[Item::Int(p as u32), Item::Bool(change)],
        )
        .unwrap()
        .code()
    };
    // Without change_threads nothing moves; with it the higher thread is lowered.
    assert_eq!(max(30, 0), K::Success);
    assert_eq!((high.max_priority(), high.base_priority()), (10, 12));
    assert_eq!(max(30, 1), K::Success);
    assert_eq!((high.max_priority(), high.base_priority()), (30, 30));
    assert_eq!((low.max_priority(), low.base_priority()), (50, 55));
    assert_eq!(max(65, 1), K::InvalidArgument);
    SCHED.members.lock().unwrap().retain(|(s, _)| *s != id);
    for p in ports {
        Port::dealloc_kernel(p);
    }
}

/// The client's name for a kernel port standing for `thread`.
fn thread_name(w: &World, thread: &Arc<TestThread>) -> (Arc<Port>, PortName) {
    let port = Port::alloc_kernel(
        &w.sender,
        Some(KObject::new(KObjectKind::Thread, thread.clone())),
    )
    .unwrap();
    let name = w.client.copyout(port.make_send().unwrap(), false).unwrap();
    (port, name)
}

#[test]
fn thread_info_flavors_counts_and_port_types_follow_gnu_mach() {
    let w = World::new();
    let thread = Arc::new(TestThread::default());
    let (_port, name) = thread_name(&w, &thread);
    let info = |dest, flavor: u32, count: u32| {
        w.call(
            dest,
            mach::THREAD_INFO_ID,
            &[Item::Int(flavor), Item::Int(count)],
        )
        .unwrap()
    };
    // The reply: RetCode @32, the array's descriptor @48 (its number is the count), data @56.
    let g = info(name, 1, 32);
    assert_eq!((g.code(), g.desc(48).number), (K::Success, 32));
    assert_eq!(g.word(56 + 4 * 8), 7, "cpu_usage");
    assert_eq!(g.word(56 + 4 * 22), 5, "user_time64.nanoseconds");
    let g = info(name, 1, 20);
    assert_eq!((g.code(), g.desc(48).number), (K::Success, 20));
    // More room than the flavor needs: the full count.
    assert_eq!(info(name, 1, 1024).desc(48).number, 32);
    assert_eq!(info(name, 1, 19).code(), K::InvalidArgument);
    let g = info(name, 2, 8);
    assert_eq!((g.code(), g.word(56 + 4 * 7)), (K::Success, 3));
    assert_eq!(info(name, 2, 7).desc(48).number, 7);
    assert_eq!(info(name, 2, 6).code(), K::InvalidArgument);
    assert_eq!(info(name, 9, 32).code(), K::InvalidArgument);
    // A task port is no thread.
    assert_eq!(info(w.task, 1, 32).code(), K::InvalidArgument);
}

#[test]
fn thread_suspend_resume_and_state_follow_gnu_mach() {
    let w = World::new();
    let thread = Arc::new(TestThread::default());
    let (_port, name) = thread_name(&w, &thread);
    let call = |id, items: &[Item]| w.call(name, id, items).unwrap().code();
    assert_eq!(call(mach::THREAD_RESUME_ID, &[]), K::Failure);
    // Running: its state cannot be read.
    assert_eq!(
        call(mach::THREAD_GET_STATE_ID, &[Item::Int(1), Item::Int(70)]),
        K::Failure
    );
    assert_eq!(call(mach::THREAD_SUSPEND_ID, &[]), K::Success);
    assert_eq!(thread.user_stop_count(), 1);
    static STATE: [u32; 70] = {
        let mut s = [0u32; 70];
        s[0] = 0x1234; // x0
        s[64] = 0x40_0000; // pc
        s[68] = 0x6000_0000; // cpsr: flags only
        s
    };
    assert_eq!(
        call(
            mach::THREAD_SET_STATE_ID,
            &[Item::Int(1), Item::Words(&STATE)]
        ),
        K::Success
    );
    assert_eq!(thread.st.lock().unwrap().general.x[0], 0x1234);
    assert_eq!(thread.st.lock().unwrap().general.pc, 0x40_0000);
    // Too few words, a mode other than EL0t, an unknown flavor.
    assert_eq!(
        call(
            mach::THREAD_SET_STATE_ID,
            &[Item::Int(1), Item::Words(&STATE[..69])]
        ),
        K::InvalidArgument
    );
    static EL1: [u32; 70] = {
        let mut s = [0u32; 70];
        s[68] = 0x5;
        s
    };
    assert_eq!(
        call(
            mach::THREAD_SET_STATE_ID,
            &[Item::Int(1), Item::Words(&EL1)]
        ),
        K::InvalidArgument
    );
    assert_eq!(
        call(
            mach::THREAD_SET_STATE_ID,
            &[Item::Int(7), Item::Words(&STATE)]
        ),
        K::InvalidArgument
    );
    let g = w
        .call(
            name,
            mach::THREAD_GET_STATE_ID,
            &[Item::Int(1), Item::Int(70)],
        )
        .unwrap();
    assert_eq!((g.code(), g.desc(48).number), (K::Success, 70));
    assert_eq!((g.word(56), g.word(56 + 4 * 64)), (0x1234, 0x40_0000));
    assert_eq!(
        call(mach::THREAD_GET_STATE_ID, &[Item::Int(1), Item::Int(69)]),
        K::InvalidArgument
    );
    assert_eq!(
        call(mach::THREAD_GET_STATE_ID, &[Item::Int(2), Item::Int(135)]),
        K::InvalidArgument
    );
    let g = w
        .call(
            name,
            mach::THREAD_GET_STATE_ID,
            &[Item::Int(2), Item::Int(136)],
        )
        .unwrap();
    assert_eq!((g.code(), g.desc(48).number), (K::Success, 136));
    let g = w
        .call(
            name,
            mach::THREAD_GET_STATE_ID,
            &[Item::Int(0), Item::Int(2)],
        )
        .unwrap();
    assert_eq!((g.code(), g.word(56), g.word(60)), (K::Success, 1, 2));
    assert_eq!(call(mach::THREAD_ABORT_ID, &[]), K::Success);
    assert_eq!(thread.st.lock().unwrap().aborted, 1);
    assert_eq!(call(mach::THREAD_RESUME_ID, &[]), K::Success);
    assert_eq!(call(mach::THREAD_RESUME_ID, &[]), K::Failure);
    assert_eq!(call(mach::THREAD_TERMINATE_ID, &[]), K::Success);
    assert!(thread.st.lock().unwrap().terminated);
    // A task port is no thread.
    assert_eq!(
        w.call(w.task, mach::THREAD_SUSPEND_ID, &[]).unwrap().code(),
        K::InvalidArgument
    );
}

#[test]
fn a_thread_may_not_read_abort_or_set_itself() {
    let w = World::new();
    let thread = Arc::new(TestThread {
        current: true,
        ..Default::default()
    });
    thread.suspend();
    let (_port, name) = thread_name(&w, &thread);
    let call = |id, items: &[Item]| w.call(name, id, items).unwrap().code();
    assert_eq!(
        call(mach::THREAD_GET_STATE_ID, &[Item::Int(1), Item::Int(70)]),
        K::InvalidArgument
    );
    assert_eq!(call(mach::THREAD_ABORT_ID, &[]), K::InvalidArgument);
}

#[test]
fn vm_statistics_and_thread_create_reach_the_task() {
    let w = World::new();
    let g = w.call(w.task, mach::VM_STATISTICS_ID, &[]).unwrap();
    assert_eq!(g.code(), K::Success);
    assert_eq!((g.word(56), g.word(60), g.word(64)), (4096, 10, 20));
    let g = w.call(w.task, mach::THREAD_CREATE_ID, &[]).unwrap();
    // The test's threads have no port: a null right comes back.
    assert_eq!(g.code(), K::Success);
}

#[test]
fn task_info_flavors_and_counts_follow_gnu_mach() {
    let w = World::new();
    let info = |dest, flavor: u32, count: u32| {
        w.call(
            dest,
            mach::TASK_INFO_ID,
            &[Item::Int(flavor), Item::Int(count)],
        )
        .unwrap()
    };
    // LP64 counts: basic 30 (18 before the 64-bit times, still accepted), events 14
    // (seven 64-bit counters), thread times 16 (8 before the 64-bit times).
    let g = info(w.task, 1, 30);
    assert_eq!((g.code(), g.desc(48).number), (K::Success, 30));
    assert_eq!(g.word(56 + 4 * 2), 0x3000, "virtual_size");
    assert_eq!(info(w.task, 1, 64).desc(48).number, 30);
    let g = info(w.task, 1, 18);
    assert_eq!((g.code(), g.desc(48).number), (K::Success, 18));
    assert_eq!(info(w.task, 1, 17).code(), K::InvalidArgument);
    let g = info(w.task, 2, 14);
    assert_eq!((g.code(), g.desc(48).number), (K::Success, 14));
    assert_eq!((g.word(56), g.word(56 + 4 * 10)), (1, 6));
    assert_eq!((g.word(56 + 4 * 12), g.word(56 + 4 * 13)), (7, 7));
    assert_eq!(info(w.task, 2, 64).desc(48).number, 14);
    assert_eq!(info(w.task, 2, 13).code(), K::InvalidArgument);
    assert_eq!(info(w.task, 3, 16).desc(48).number, 16);
    assert_eq!(info(w.task, 3, 64).desc(48).number, 16);
    assert_eq!(info(w.task, 3, 8).desc(48).number, 8);
    assert_eq!(info(w.task, 3, 7).code(), K::InvalidArgument);
    assert_eq!(info(w.task, 4, 32).code(), K::InvalidArgument);
    // The host port is no task.
    assert_eq!(info(w.host_name, 1, 18).code(), K::InvalidArgument);
    assert_eq!(
        w.call(w.task, mach::TASK_RESUME_ID, &[]).unwrap().code(),
        K::Failure
    );
}

#[test]
fn vm_read_returns_out_of_line_data_and_vm_region_the_next_region() {
    let w = World::new();
    let g = w
        .call(
            w.task,
            mach::VM_READ_ID,
            &[Item::U64(0x1000), Item::U64(10)],
        )
        .unwrap();
    assert_eq!(
        (g.code(), g.complex, g.ool.clone()),
        (K::Success, true, vec![10])
    );
    let g = w
        .call(w.task, mach::VM_READ_ID, &[Item::U64(0), Item::U64(10)])
        .unwrap();
    assert_eq!(g.code(), K::InvalidAddress);
    let g = w
        .call(w.task, mach::VM_REGION_ID, &[Item::U64(0x8000)])
        .unwrap();
    // address @56, size @72: the region above the address asked for.
    assert_eq!(g.code(), K::Success);
    assert_eq!((g.word(56), g.word(72)), (0x10_0000, 0x4000));
    let g = w
        .call(w.task, mach::VM_REGION_ID, &[Item::U64(0x20_0000)])
        .unwrap();
    assert_eq!(g.code(), K::NoSpace);
}

#[test]
fn thread_migration_info_is_flavor_100_with_thread_info_s_codes() {
    let w = World::new();
    let thread = TestThread::new();
    thread.migrated_to.store(3, Relaxed);
    thread.migrations.store(4, Relaxed);
    *thread.bound.lock().unwrap() = Some(1);
    let (_port, name) = thread_name(&w, &thread);
    let info = |dest, flavor: u32, count: u32| {
        w.call(
            dest,
            mach::THREAD_INFO_ID,
            &[Item::Int(flavor), Item::Int(count)],
        )
        .unwrap()
    };
    let g = info(name, 100, 10);
    assert_eq!((g.code(), g.desc(48).number), (K::Success, 10));
    assert_eq!(
        words(&g, 56, 10),
        [4, 200, 3, 1, 0, 0, 3, 1, 9, 0],
        "count, warmth, last, bound, set, reserved, since (lo, hi), last run (lo, hi)"
    );
    // More room: the flavor's count; less: GNU Mach's thread_info code.
    assert_eq!(info(name, 100, 1024).desc(48).number, 10);
    assert_eq!(info(name, 100, 9).code(), K::InvalidArgument);
    assert_eq!(info(name, 100, 0).code(), K::InvalidArgument);
    assert_eq!(info(name, 101, 10).code(), K::InvalidArgument);
    assert_eq!(info(w.task, 100, 10).code(), K::InvalidArgument);
    // Unbound and never run: -1 for both processors.
    let fresh = TestThread::new();
    let (_p, fresh_name) = thread_name(&w, &fresh);
    let g = info(fresh_name, 100, 10);
    assert_eq!(words(&g, 56 + 8, 2), [u32::MAX, u32::MAX]);
}

#[test]
fn processor_sched_info_is_flavor_100_with_processor_info_s_codes() {
    let w = World::new();
    let g = w
        .call(w.host_priv, mach_host::HOST_PROCESSORS_ID, &[])
        .unwrap();
    let cpus = g.ports.clone();
    let info = |p, flavor: u32, count: u32| {
        w.call(
            p,
            mach_host::PROCESSOR_INFO_ID,
            &[Item::Int(flavor), Item::Int(count)],
        )
        .unwrap()
    };
    for (slot, &p) in cpus.iter().enumerate() {
        let s = slot as u32;
        let g = info(p, 100, 42);
        if slot == 2 {
            // The scheduler has no counters for it.
            assert_eq!(g.code(), K::Failure);
            continue;
        }
        assert_eq!(g.code(), K::Success);
        assert_eq!(g.desc(64).number, 42);
        let v = words(&g, 72, 42);
        assert_eq!(v[..6], [1500 + s, 2 + s, 1 + s, s / 2, 0, 0]);
        assert_eq!(v[6..8], [10 + s, 0], "migration_in");
        assert_eq!(v[8..10], [20 + s, 0], "migration_out");
        assert_eq!(v[12..14], [s, 1], "ticks");
        assert_eq!(v[30..32], [120 + s, 0], "invariant_violations");
        assert_eq!(v[36..38], [150 + s, 0], "wakeups_on_last");
        assert_eq!(v[38..40], [160 + s, 0], "balance_passes");
        assert_eq!(v[40..42], [170 + s, 0], "balance_insns");
        assert_eq!(info(p, 100, 1024).desc(64).number, 42);
        // GNU Mach's processor_info codes: a short count or unknown flavor is KERN_FAILURE.
        assert_eq!(info(p, 100, 41).code(), K::Failure);
        assert_eq!(info(p, 99, 42).code(), K::Failure);
        // The basic flavor is unchanged.
        assert_eq!(info(p, 1, 5).code(), K::Success);
    }
    // Not a processor: the host port, a thread port.
    assert_eq!(info(w.host_name, 100, 42).code(), K::InvalidArgument);
    let thread = TestThread::new();
    let (_port, name) = thread_name(&w, &thread);
    assert_eq!(info(name, 100, 42).code(), K::InvalidArgument);
}

#[test]
fn thread_migrate_and_thread_bind_check_their_ports_and_pass_the_scheduler_s_codes() {
    let w = World::new();
    let g = w
        .call(w.host_priv, mach_host::HOST_PROCESSORS_ID, &[])
        .unwrap();
    let cpus = g.ports.clone();
    let thread = TestThread::new();
    let (port, name) = thread_name(&w, &thread);
    let call = |id, dest, processor: PortName| {
        w.call(dest, id, &[Item::Right(processor, Disposition::CopySend)])
            .unwrap()
            .code()
    };
    let migrate = |dest, p| call(armach_sched::THREAD_MIGRATE_ID, dest, p);
    let bind = |dest, p| call(armach_sched::THREAD_BIND_ID, dest, p);
    assert_eq!(armach_sched::THREAD_MIGRATE_ID, 5000);
    assert_eq!(armach_sched::PROCESSOR_SET_BALANCE_SET_ID, 5003);
    assert_eq!(migrate(name, cpus[3]), K::Success);
    assert_eq!(thread.migrated_to.load(Relaxed), 3);
    assert_eq!(migrate(name, cpus[1]), K::Success);
    assert_eq!(thread.migrations.load(Relaxed), 2);
    // The scheduler's refusals come back as they are.
    assert_eq!(migrate(name, cpus[2]), K::InvalidArgument);
    // Wrong port types: a task port is no thread, the host or a thread no processor;
    // null and dead names are no processor either.
    let dead = w.client.allocate(R_DEAD).unwrap();
    assert_eq!(migrate(w.task, cpus[1]), K::InvalidArgument);
    assert_eq!(migrate(name, w.host_name), K::InvalidArgument);
    assert_eq!(migrate(name, name), K::InvalidArgument);
    assert_eq!(migrate(name, PortName::NULL), K::InvalidArgument);
    assert_eq!(migrate(name, dead), K::InvalidArgument);
    assert_eq!(migrate(cpus[1], cpus[1]), K::InvalidArgument);
    assert_eq!(thread.migrations.load(Relaxed), 2);
    // Binding: to a processor, then migrate elsewhere refuses, then null unbinds.
    assert_eq!(bind(name, cpus[1]), K::Success);
    assert_eq!(*thread.bound.lock().unwrap(), Some(1));
    assert_eq!(migrate(name, cpus[3]), K::Failure);
    assert_eq!(migrate(name, cpus[1]), K::Success);
    assert_eq!(bind(name, cpus[2]), K::InvalidArgument);
    assert_eq!(bind(name, dead), K::InvalidArgument);
    assert_eq!(bind(name, w.host_name), K::InvalidArgument);
    assert_eq!(bind(w.task, PortName::NULL), K::InvalidArgument);
    assert_eq!(*thread.bound.lock().unwrap(), Some(1));
    assert_eq!(bind(name, PortName::NULL), K::Success);
    assert_eq!(*thread.bound.lock().unwrap(), None);
    assert_eq!(migrate(name, cpus[3]), K::Success);
    thread.st.lock().unwrap().terminated = true;
    assert_eq!(migrate(name, cpus[0]), K::Terminated);
    // The processor rights the requests carried were released: each processor port
    // holds only the client's own send right again.
    for p in w._host.host.machine.processors() {
        assert_eq!(
            p.port().unwrap().status().srights,
            1,
            "processor {}",
            p.slot
        );
    }
    drop(port);
}

#[test]
fn balance_parameters_read_by_name_set_by_control_within_bounds() {
    let w = World::new();
    let g = w
        .call(w.host_priv, mach_host::PROCESSOR_SET_CREATE_ID, &[])
        .unwrap();
    let (control, name) = (g.ports[0], g.ports[1]);
    let get = |dest| {
        let g = w
            .call(dest, armach_sched::PROCESSOR_SET_BALANCE_GET_ID, &[])
            .unwrap();
        let code = g.code();
        (code == K::Success)
            .then(|| {
                [56, 72, 88, 104, 120]
                    .iter()
                    .map(|&at| g.word(at))
                    .collect::<Vec<_>>()
            })
            .ok_or(code)
    };
    let set = |dest, v: [u32; 5]| {
        w.call(
            dest,
            armach_sched::PROCESSOR_SET_BALANCE_SET_ID,
            &[
                Item::Int(v[0]),
                Item::Int(v[1]),
                Item::Int(v[2]),
                Item::Bool(v[3]),
                Item::Bool(v[4]),
            ],
        )
        .unwrap()
        .code()
    };
    // Defaults, through either port.
    assert_eq!(get(name), Ok(vec![4, 2, 2, 1, 1]));
    assert_eq!(get(control), Ok(vec![4, 2, 2, 1, 1]));
    // Only the control port sets.
    assert_eq!(set(name, [8, 3, 1, 0, 1]), K::InvalidArgument);
    assert_eq!(set(control, [8, 3, 1, 0, 1]), K::Success);
    assert_eq!(get(name), Ok(vec![8, 3, 1, 0, 1]));
    // Out of bounds: refused, nothing changes.
    for bad in [
        [0, 2, 2, 1, 1],
        [1001, 2, 2, 1, 1],
        [4, 1, 2, 1, 1],
        [4, 0, 2, 1, 1],
        [4, 65, 2, 1, 1],
        [4, 2, 65, 1, 1],
        [u32::MAX, 2, 2, 1, 1],
    ] {
        assert_eq!(set(control, bad), K::InvalidArgument, "{bad:?}");
    }
    assert_eq!(get(name), Ok(vec![8, 3, 1, 0, 1]));
    assert_eq!(set(control, [1000, 64, 64, 1, 0]), K::Success);
    assert_eq!(get(control), Ok(vec![1000, 64, 64, 1, 0]));
    // Not a set: the host, a task.
    assert_eq!(get(w.host_name), Err(K::InvalidArgument));
    assert_eq!(get(w.task), Err(K::InvalidArgument));
    assert_eq!(set(w.host_priv, [4, 2, 2, 1, 1]), K::InvalidArgument);
    // A malformed request (a count short of the five items) is MIG's error.
    let g = w
        .call(
            control,
            armach_sched::PROCESSOR_SET_BALANCE_SET_ID,
            &[Item::Int(4), Item::Int(2)],
        )
        .unwrap();
    assert_eq!(g.code(), K::MigBadArguments);
    let g = w
        .call(control, mach_host::PROCESSOR_SET_DESTROY_ID, &[])
        .unwrap();
    assert_eq!(g.code(), K::Success);
}

#[test]
fn gnumach_routines_reach_the_objects_at_gnu_mach_s_ids() {
    use super::kobject::{serve_then, set_return_code};
    use super::objects::After;
    use mach_abi::gnumach::{GSYNC_BROADCAST, GSYNC_MUTATE, GSYNC_TIMED, ids};
    let w = World::new();
    let task = w
        .task_port
        .kobject()
        .and_then(|k| k.get::<TestTask>(KObjectKind::Task))
        .unwrap();
    let wait = |val1: u32| {
        w.request(
            w.task,
            ids::GSYNC_WAIT,
            &[
                Item::U64(0x1000),
                Item::Int(val1),
                Item::Int(0),
                Item::Int(10),
                Item::Int(GSYNC_TIMED as u32),
            ],
            true,
        )
    };
    // A wait whose value matches asks its caller to block; the caller writes how the wait
    // ended into the reply.
    let (reply, after) = serve_then::<TestTask>(&w.sender, wait(0));
    assert_eq!(after, After::Block);
    let mut reply = reply.unwrap();
    set_return_code(&mut reply, K::TimedOut);
    mqueue::send(reply, true, |_| false);
    let g = recv(&w.client, w.reply);
    assert_eq!((g.id, g.code()), (ids::GSYNC_WAIT + 100, K::TimedOut));
    // One that does not match answers at once, and nothing blocks.
    let (reply, after) = serve_then::<TestTask>(&w.sender, wait(5));
    assert_eq!(after, After::Nothing);
    mqueue::send(reply.unwrap(), true, |_| false);
    assert_eq!(recv(&w.client, w.reply).code(), K::InvalidArgument);
    // Wake and requeue are simple routines: no reply port, no reply.
    let wake = w.request(
        w.task,
        ids::GSYNC_WAKE,
        &[
            Item::U64(0x2000),
            Item::Int(7),
            Item::Int((GSYNC_MUTATE | GSYNC_BROADCAST) as u32),
        ],
        false,
    );
    assert!(serve::<TestTask>(&w.sender, wake).is_none());
    let requeue = w.request(
        w.task,
        ids::GSYNC_REQUEUE,
        &[
            Item::U64(0x3000),
            Item::U64(0x3004),
            Item::Bool(1),
            Item::Int(0),
        ],
        false,
    );
    assert!(serve::<TestTask>(&w.sender, requeue).is_none());
    assert_eq!(
        *task.gsync.lock().unwrap(),
        [
            (4204, 0x1000, 0, GSYNC_TIMED),
            (4204, 0x1000, 5, GSYNC_TIMED),
            (4205, 0x2000, 7, GSYNC_MUTATE | GSYNC_BROADCAST),
            (4206, 0x3000, 1, 0),
        ]
    );
    // Names: the task's, and a thread's set and read back.
    let set = w.request(w.task, ids::TASK_SET_NAME, &[Item::Str(b"server")], false);
    assert!(serve::<TestTask>(&w.sender, set).is_none());
    assert_eq!(*task.name.lock().unwrap(), b"server");
    let thread = TestThread::new();
    let (_port, name) = thread_name(&w, &thread);
    let set = w.request(name, ids::THREAD_SET_NAME, &[Item::Str(b"worker-1")], false);
    assert!(serve::<TestTask>(&w.sender, set).is_none());
    let g = w.call(name, ids::THREAD_GET_NAME, &[]).unwrap();
    // RetCode @32, the string's descriptor @48 (STRING, 8 bits, its length with the NUL),
    // the bytes @56.
    assert_eq!((g.id, g.code()), (ids::THREAD_GET_NAME + 100, K::Success));
    assert_eq!((g.desc(48).name, g.desc(48).size), (12, 8));
    assert_eq!(g.desc(48).number, 9);
    assert_eq!(&g.body[56 - 32..64 - 32], b"worker-1");
    // A task port is not a thread's, and the skipped ids are nobody's.
    let g = w.call(w.task, ids::THREAD_GET_NAME, &[]).unwrap();
    assert_eq!(g.code(), K::InvalidArgument);
    for id in [4200, 4201, 4203, 4208, 4212, 4217] {
        assert_eq!(
            w.call(w.task, id, &[]).unwrap().code(),
            K::MigBadId,
            "id {id}"
        );
    }
    // vm_wire_all: only on the host-privileged port, then the task, then the flags.
    let wire_all = |host, task, flags: u32| {
        w.call(
            host,
            gnumach::VM_WIRE_ALL_ID,
            &[Item::Right(task, Disposition::CopySend), Item::Int(flags)],
        )
        .unwrap()
        .code()
    };
    assert_eq!(wire_all(w.host_name, w.task, 3), K::InvalidHost);
    assert_eq!(wire_all(w.task, w.task, 3), K::InvalidHost);
    assert_eq!(wire_all(w.host_priv, w.host_name, 3), K::InvalidTask);
    assert_eq!(wire_all(w.host_priv, w.task, 4), K::InvalidArgument);
    assert_eq!(wire_all(w.host_priv, w.task, 3), K::Success);
    // vm_set_size_limit: current above max first, then the task, then the host; raising
    // the maximum needs the privileged port, lowering it does not.
    let set_limit = |host, task, current: u64, max: u64| {
        w.call(
            host,
            gnumach::VM_SET_SIZE_LIMIT_ID,
            &[
                Item::Right(task, Disposition::CopySend),
                Item::U64(current),
                Item::U64(max),
            ],
        )
        .unwrap()
        .code()
    };
    assert_eq!(set_limit(w.task, w.host_name, 2, 1), K::InvalidArgument);
    assert_eq!(set_limit(w.task, w.host_name, 1, 2), K::InvalidTask);
    assert_eq!(set_limit(w.task, w.task, 1, 2), K::InvalidHost);
    assert_eq!(
        set_limit(w.host_name, w.task, 1 << 20, 2 << 30),
        K::NoAccess
    );
    assert_eq!(set_limit(w.host_name, w.task, 1 << 20, 1 << 29), K::Success);
    assert_eq!(
        set_limit(w.host_name, w.task, 1 << 20, 1 << 30),
        K::NoAccess
    );
    assert_eq!(set_limit(w.host_priv, w.task, 1 << 21, 1 << 31), K::Success);
    let g = w.call(w.task, gnumach::VM_GET_SIZE_LIMIT_ID, &[]).unwrap();
    // RetCode @32, then each vm_size_t after its 8-byte descriptor: @56 and @72.
    assert_eq!(g.code(), K::Success);
    assert_eq!(&g.body[56 - 32..64 - 32], &(1u64 << 21).to_le_bytes());
    assert_eq!(&g.body[72 - 32..80 - 32], &(1u64 << 31).to_le_bytes());
    let g = w
        .call(w.host_name, gnumach::VM_GET_SIZE_LIMIT_ID, &[])
        .unwrap();
    assert_eq!(g.code(), K::InvalidTask);
}

/// Fake devices for the device server: a console whose writes are recorded and whose
/// input is what the test puts in, and a time device with a frame to map.
struct FakeConsole {
    written: Mutex<Vec<u8>>,
    input: Mutex<crate::kern::device::InputRing>,
}

impl crate::kern::device::DeviceOps for FakeConsole {
    fn write(&self, data: &[u8]) -> Result<usize, K> {
        self.written.lock().unwrap().extend_from_slice(data);
        Ok(data.len())
    }
    fn read(&self, out: &mut [u8]) -> Result<usize, K> {
        Ok(self.input.lock().unwrap().take(out))
    }
    fn readable(&self) -> bool {
        !self.input.lock().unwrap().is_empty()
    }
}

struct FakeTime;

impl crate::kern::device::DeviceOps for FakeTime {
    fn memory(&self) -> Option<crate::kern::device::DeviceMemory> {
        Some(crate::kern::device::DeviceMemory {
            base: crate::mm::PhysAddr(0x8000_0000),
            size: 4096,
        })
    }
}

/// A RAM disk of three pages and a bit.
struct FakeRamDisk;

impl crate::kern::device::DeviceOps for FakeRamDisk {
    fn memory(&self) -> Option<crate::kern::device::DeviceMemory> {
        Some(crate::kern::device::DeviceMemory {
            base: crate::mm::PhysAddr(0x9000_0000),
            size: 3 * 4096 + 100,
        })
    }
    fn size(&self) -> Option<u64> {
        Some(3 * 4096 + 100)
    }
}

static FAKE_CONSOLE: std::sync::LazyLock<FakeConsole> = std::sync::LazyLock::new(|| FakeConsole {
    written: Mutex::new(Vec::new()),
    input: Mutex::new(crate::kern::device::InputRing::new()),
});

#[test]
fn devices_open_write_read_map_and_refuse_as_gnu_mach() {
    use crate::kern::device;
    use mach_abi::device::{ids, *};
    device::register(&[
        ("console", &*FAKE_CONSOLE),
        ("time", &FakeTime),
        ("ramdisk", &FakeRamDisk),
    ]);
    let w = World::new();
    let master = Port::alloc_kernel(
        &w.sender,
        Some(KObject::new(
            KObjectKind::MasterDevice,
            Arc::new(crate::kern::device::InputRing::new()),
        )),
    )
    .unwrap();
    let master = w
        .client
        .copyout(master.make_send().unwrap(), false)
        .unwrap();
    let open = |name: &'static [u8], to: PortName| {
        w.call(
            to,
            ids::DEVICE_OPEN,
            &[Item::Int(D_READ | D_WRITE), Item::DevName(name)],
        )
        .unwrap()
    };
    // Opened: a send right to the device's port (RetCode @40, the right's descriptor @48).
    let g = open(b"console", master);
    assert_eq!((g.id, g.code()), (ids::DEVICE_OPEN + 100, K::Success));
    assert_eq!((g.desc(48).name, g.desc(48).size), (17, 64));
    let console = g.ports[0];
    assert_eq!(device::lookup(b"console").unwrap().opens(), 1);
    assert_eq!(open(b"disk0", master).code(), D_NO_SUCH_DEVICE);
    assert_eq!(open(b"", master).code(), D_NO_SUCH_DEVICE);
    // Only the master device port opens devices.
    assert_eq!(open(b"console", w.task).code(), D_INVALID_OPERATION);
    assert_eq!(open(b"console", console).code(), D_INVALID_OPERATION);

    // Writes reach the console; the count comes back @56.
    let g = w
        .call(
            console,
            ids::DEVICE_WRITE_INBAND,
            &[Item::Int(0), Item::U64(0), Item::Chars(b"hi there")],
        )
        .unwrap();
    assert_eq!((g.code(), g.word(56)), (K::Success, 8));
    assert_eq!(*FAKE_CONSOLE.written.lock().unwrap(), b"hi there");
    // More than 128 bytes in line is a malformed request.
    const LONG: [u8; 129] = [b'x'; 129];
    let g = w
        .call(
            console,
            ids::DEVICE_WRITE_INBAND,
            &[Item::Int(0), Item::U64(0), Item::Chars(&LONG)],
        )
        .unwrap();
    assert_eq!(g.code(), K::MigBadArguments);
    assert_eq!(FAKE_CONSOLE.written.lock().unwrap().len(), 8);
    // Reads return what is buffered, at most what was asked; nothing buffered is
    // D_WOULD_BLOCK here (the caller's context waits beforehand).
    let read = |wanted: i32| {
        w.call(
            console,
            ids::DEVICE_READ_INBAND,
            &[Item::Int(0), Item::U64(0), Item::Int(wanted as u32)],
        )
        .unwrap()
    };
    assert_eq!(read(10).code(), D_WOULD_BLOCK);
    for &b in b"typed\n" {
        FAKE_CONSOLE.input.lock().unwrap().push(b);
    }
    let g = read(3);
    assert_eq!(
        (g.code(), g.desc(48).name, g.desc(48).number),
        (K::Success, 8, 3)
    );
    assert_eq!(&g.body[56 - 32..59 - 32], b"typ");
    let g = read(1000);
    assert_eq!((g.code(), g.desc(48).number), (K::Success, 3));
    assert_eq!(&g.body[56 - 32..59 - 32], b"ed\n");
    assert_eq!(read(-1).code(), D_INVALID_SIZE);
    // The console cannot be mapped; "time" cannot be written or read.
    let map = |to: PortName, prot: u32| {
        w.call(
            to,
            ids::DEVICE_MAP,
            &[Item::Int(prot), Item::U64(0), Item::U64(4096), Item::Int(0)],
        )
        .unwrap()
    };
    assert_eq!(map(console, 1).code(), D_INVALID_OPERATION);
    let time = open(b"time", master).ports[0];
    assert_eq!(map(time, 3).code(), D_READ_ONLY);
    assert_eq!(map(time, 8).code(), K::InvalidArgument);
    let g = map(time, 1);
    assert_eq!((g.code(), g.desc(48).name), (K::Success, 17));
    let pager = g.ports[0];
    let g = w
        .call(
            time,
            ids::DEVICE_WRITE_INBAND,
            &[Item::Int(0), Item::U64(0), Item::Chars(b"x")],
        )
        .unwrap();
    assert_eq!(g.code(), D_INVALID_OPERATION);

    // vm_map of the memory object: its frame, read-only; write access refused; another
    // port is no memory object.
    let vm_map = |object: PortName, prot: u32, max: u32| {
        w.call(
            w.task,
            mach::VM_MAP_ID,
            &[
                Item::U64(0),
                Item::U64(4096),
                Item::U64(0),
                Item::Bool(1),
                Item::Right(object, Disposition::CopySend),
                Item::U64(0),
                Item::Bool(0),
                Item::Int(prot),
                Item::Int(max),
                Item::Int(1),
            ],
        )
        .unwrap()
    };
    let g = vm_map(pager, 1, 1);
    assert_eq!(
        (g.code(), g.word(56) as u64 | (g.word(60) as u64) << 32),
        (K::Success, 0x40_0000)
    );
    assert_eq!(vm_map(pager, 1, 7).code(), K::ProtectionFailure);
    assert_eq!(vm_map(console, 1, 1).code(), K::InvalidArgument);
    assert_eq!(
        *w.task_port
            .kobject()
            .and_then(|k| k.get::<TestTask>(KObjectKind::Task))
            .unwrap()
            .vm_maps
            .lock()
            .unwrap(),
        [(
            4096,
            crate::mm::regions::Backing::Borrowed(crate::mm::PhysAddr(0x8000_0000)),
            1,
            1
        )]
    );

    // The RAM disk: its size from device_get_status(DEV_GET_SIZE) (size @56, record size
    // @60); its pages mapped from any page-aligned offset, never past its last page.
    let ramdisk = open(b"ramdisk", master).ports[0];
    let status = |to: PortName, flavor: u32, count: u32| {
        w.call(
            to,
            ids::DEVICE_GET_STATUS,
            &[Item::Int(flavor), Item::Int(count)],
        )
        .unwrap()
    };
    let g = status(ramdisk, 0, 2);
    assert_eq!(
        (g.code(), g.desc(48).number, g.word(56), g.word(60)),
        (K::Success, 2, 3 * 4096 + 100, 1)
    );
    assert_eq!(status(ramdisk, 0, 1024).word(56), 3 * 4096 + 100);
    assert_eq!(status(ramdisk, 0, 1).code(), D_INVALID_OPERATION);
    assert_eq!(status(ramdisk, 1, 2).code(), D_INVALID_OPERATION);
    assert_eq!(status(console, 0, 2).code(), D_INVALID_OPERATION);
    assert_eq!(status(time, 0, 2).code(), D_INVALID_OPERATION);
    let map_at = |to: PortName, offset: u64, size: u64| {
        w.call(
            to,
            ids::DEVICE_MAP,
            &[
                Item::Int(1),
                Item::U64(offset),
                Item::U64(size),
                Item::Int(0),
            ],
        )
        .unwrap()
    };
    assert_eq!(map_at(ramdisk, 0, 4 * 4096 + 1).code(), D_INVALID_SIZE);
    assert_eq!(map_at(ramdisk, 100, 4096).code(), D_INVALID_SIZE);
    assert_eq!(map_at(time, 0, 8192).code(), D_INVALID_SIZE);
    let g = map_at(ramdisk, 0, 3 * 4096 + 100);
    assert_eq!(g.code(), K::Success);
    let disk = g.ports[0];
    let vm_map_at = |offset: u64, size: u64| {
        w.call(
            w.task,
            mach::VM_MAP_ID,
            &[
                Item::U64(0),
                Item::U64(size),
                Item::U64(0),
                Item::Bool(1),
                Item::Right(disk, Disposition::CopySend),
                Item::U64(offset),
                Item::Bool(0),
                Item::Int(1),
                Item::Int(5),
                Item::Int(1),
            ],
        )
        .unwrap()
        .code()
    };
    assert_eq!(vm_map_at(0, 3 * 4096 + 100), K::Success);
    assert_eq!(vm_map_at(2 * 4096, 2 * 4096), K::Success);
    assert_eq!(vm_map_at(2 * 4096, 2 * 4096 + 1), K::InvalidArgument);
    assert_eq!(vm_map_at(5 * 4096, 4096), K::InvalidArgument);
    assert_eq!(vm_map_at(10, 4096), K::InvalidArgument);
    let maps = w
        .task_port
        .kobject()
        .and_then(|k| k.get::<TestTask>(KObjectKind::Task))
        .unwrap()
        .vm_maps
        .lock()
        .unwrap()
        .clone();
    assert_eq!(
        maps[1..],
        [
            (
                3 * 4096 + 100,
                crate::mm::regions::Backing::Borrowed(crate::mm::PhysAddr(0x9000_0000)),
                1,
                5
            ),
            (
                2 * 4096,
                crate::mm::regions::Backing::Borrowed(crate::mm::PhysAddr(0x9000_2000)),
                1,
                5
            )
        ]
    );

    // Requests to ports that are no device, and ids nobody serves.
    for to in [w.task, w.host_name] {
        let g = w.call(to, ids::DEVICE_CLOSE, &[]).unwrap();
        assert_eq!(g.code(), D_NO_SUCH_DEVICE);
    }
    for id in [2806, 2807, 2808, 2812] {
        assert_eq!(
            w.call(console, id, &[]).unwrap().code(),
            K::MigBadId,
            "id {id}"
        );
    }
    // device_read (out of line) is declared, not served.
    let g = w
        .call(
            console,
            ids::DEVICE_READ,
            &[Item::Int(0), Item::U64(0), Item::Int(4)],
        )
        .unwrap();
    assert_eq!(g.code(), K::MigBadId);
    // Closing: each open once; more closes change nothing.
    for _ in 0..3 {
        assert_eq!(
            w.call(console, ids::DEVICE_CLOSE, &[]).unwrap().code(),
            K::Success
        );
    }
    assert_eq!(device::lookup(b"console").unwrap().opens(), 0);
}

/// `task_max_priority` (2649) as GNU Mach's: through the host port only downwards, through
/// the host-privileged port either way; the task's priority follows a lowered maximum, or
/// the new one on request; with `change_threads` its threads get it within their set's
/// maximum (the fake sets': 25). `task_priority` may not go above the task's maximum.
#[test]
fn task_max_priority_follows_gnu_mach() {
    let w = World::new();
    let thread = TestThread::new();
    let task = TestTask::new(None);
    task.threads.lock().unwrap().push(thread.clone());
    let (tk, _tport) = kernel_name(&w, KObjectKind::Task, task.clone());
    let call = |host: PortName, max: i32, set_priority: u32, change: u32| {
        w.call(
            host,
            mach_host::TASK_MAX_PRIORITY_ID,
            &[
                Item::Right(tk, Disposition::CopySend),
                Item::Int(max as u32),
                Item::Bool(set_priority),
                Item::Bool(change),
            ],
        )
        .unwrap()
        .code()
    };
    let state = || {
        (
            task.priority.load(Relaxed),
            task.max_priority.load(Relaxed),
            thread.base_priority(),
            thread.max_priority(),
        )
    };
    assert_eq!(state(), (25, 25, 25, 25));
    // Raising through the host port: refused; invalid priorities, a port not a host's.
    assert_eq!(call(w.host_name, 20, 0, 0), K::NoAccess);
    assert_eq!(call(w.host_priv, 65, 0, 0), K::InvalidArgument);
    assert_eq!(call(w.host_priv, -1, 0, 0), K::InvalidArgument);
    assert_eq!(call(tk, 30, 0, 0), K::InvalidArgument);
    assert_eq!(state(), (25, 25, 25, 25));
    // Lowering through the host port: the priority follows; the threads are left alone.
    assert_eq!(call(w.host_name, 30, 0, 0), K::Success);
    assert_eq!(state(), (30, 30, 25, 25));
    // The task's priority may not go above its maximum now.
    let tprio = |p: i32| {
        w.call(
            tk,
            mach_host::TASK_PRIORITY_ID,
            &[Item::Int(p as u32), Item::Bool(0)],
        )
        .unwrap()
        .code()
    };
    assert_eq!(tprio(28), K::NoAccess);
    assert_eq!(tprio(33), K::Success);
    assert_eq!(state(), (33, 30, 25, 25));
    // Raising through the host-privileged port, threads too: theirs stops at the set's.
    assert_eq!(call(w.host_priv, 10, 1, 1), K::Success);
    assert_eq!(state(), (10, 10, 25, 25));
    // Without set_priority a priority below the new maximum is kept.
    assert_eq!(call(w.host_priv, 5, 0, 0), K::Success);
    assert_eq!(state(), (10, 5, 25, 25));
    // Lowering with the threads: a thread priority above the new maximum is lowered.
    assert_eq!(call(w.host_name, 40, 0, 1), K::Success);
    assert_eq!(state(), (40, 40, 40, 40));
}

#[test]
fn trace_routines_need_the_host_privileged_port_and_read_a_ring_out_of_line() {
    use super::generated::armach_trace as t;
    use mach_abi::trace::{EVENT_SIZE, Event, Kind};
    let w = World::new();
    // Only the host-privileged port: the host port, a task's and a null one are refused.
    for dest in [w.host_name, w.task] {
        for id in [t::TRACE_STATUS_ID, t::TRACE_RESET_ID] {
            assert_eq!(w.call(dest, id, &[]).unwrap().code(), K::InvalidArgument);
        }
    }
    assert_eq!(
        w.call(w.host_priv, t::TRACE_ENABLE_ID, &[Item::Bool(1)])
            .unwrap()
            .code(),
        K::Success
    );
    // enabled @40.. after the code: the first out value's descriptor @48, value @56.
    let g = w.call(w.host_priv, t::TRACE_STATUS_ID, &[]).unwrap();
    assert_eq!(g.code(), K::Success);
    assert_eq!((g.word(56), g.word(72), g.word(88)), (1, 1, 8));
    // Ten events into a ring of eight: the newest eight come back, two are lost.
    let ring = trace_ring();
    ring.reset();
    for i in 0..10u32 {
        ring.push(&Event {
            time: u64::from(i),
            kind: Kind::Wake as u8,
            detail: 1,
            cpu: 0,
            a: i,
            b: 0,
            c: 0,
        });
    }
    let g = w
        .call(w.host_priv, t::TRACE_READ_ID, &[Item::Int(0), Item::U64(0)])
        .unwrap();
    assert_eq!(g.code(), K::Success);
    assert!(g.complex);
    assert_eq!(g.ool, vec![8 * EVENT_SIZE as u64]);
    // A CPU without a ring.
    let g = w
        .call(w.host_priv, t::TRACE_READ_ID, &[Item::Int(1), Item::U64(0)])
        .unwrap();
    assert_eq!(g.code(), K::InvalidArgument);
    // A thread's id; another object's port is refused.
    let thread = TestThread::new();
    thread.priority.store(7, Relaxed);
    let (_port, name) = thread_name(&w, &thread);
    let g = w.call(name, t::TRACE_THREAD_ID_ID, &[]).unwrap();
    assert_eq!((g.code(), g.word(56)), (K::Success, 1007));
    assert_eq!(
        w.call(w.task, t::TRACE_THREAD_ID_ID, &[]).unwrap().code(),
        K::InvalidArgument
    );
}
