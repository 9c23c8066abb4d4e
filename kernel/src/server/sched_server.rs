//! `armach/sched.defs` (5000) served on thread, processor and processor-set ports:
//! armach's own control of thread migration and load balancing (no GNU Mach routine has
//! these ids). The mechanism is `kern::sched::migrate`'s, reached through [`ThreadIpc`]
//! (`thread_migrate`, `thread_bind`) and `HostSched` (the balancing parameters), which
//! host tests fake; this file holds only the rules of the interface (which port, which
//! bounds, which code).
//!
//! Not here: the two info flavors of the same feature, served with the calls they extend:
//! `THREAD_MIGRATION_INFO` in `mach` (`thread_info`), `PROCESSOR_SCHED_INFO` in
//! `processor` (`processor_info`).

extern crate alloc;

use super::generated::armach_sched::{self, ArmachSchedServer};
use super::host_server::host_of;
use super::objects::{Kernel, TaskIpc, ThreadIpc};
use super::processor::{Processor, ProcessorSet};
use crate::kern::sched::stats::BalanceParams;
use alloc::sync::Arc;
use mach_abi::KernReturn;
use mach_abi::mig::PortSlot;

impl<T: TaskIpc> ArmachSchedServer for Kernel<'_, T> {
    type Thread = Arc<T::Thread>;
    type Processor = Arc<Processor>;
    /// `None` for `MACH_PORT_NULL` (`thread_bind`'s "unbind").
    type ProcessorOrNull = Option<Arc<Processor>>;
    type ProcessorSet = Arc<ProcessorSet>;

    fn convert_port_to_thread(
        &mut self,
        port: PortSlot,
        _: i32,
    ) -> Result<Arc<T::Thread>, KernReturn> {
        self.thread(port)
    }

    fn thread_deallocate(&mut self, thread: Arc<T::Thread>) {
        drop(thread);
    }

    fn convert_port_to_processor(
        &mut self,
        port: PortSlot,
        _: i32,
    ) -> Result<Arc<Processor>, KernReturn> {
        self.processor(port)
    }

    fn convert_port_to_processor_or_null(
        &mut self,
        port: PortSlot,
        _: i32,
    ) -> Result<Option<Arc<Processor>>, KernReturn> {
        // Null is "no processor"; a dead name or another object's port is refused.
        if port == PortSlot::NULL {
            return Ok(None);
        }
        self.processor(port).map(Some)
    }

    fn convert_port_to_pset_name(
        &mut self,
        port: PortSlot,
        _: i32,
    ) -> Result<Arc<ProcessorSet>, KernReturn> {
        self.pset_name(port)
    }

    fn pset_deallocate(&mut self, set: Arc<ProcessorSet>) {
        drop(set);
    }

    fn convert_port_to_pset(
        &mut self,
        port: PortSlot,
        _: i32,
    ) -> Result<Arc<ProcessorSet>, KernReturn> {
        self.pset(port)
    }

    fn release_send(&mut self, port: PortSlot) {
        drop(self.slots.take(port));
    }

    fn thread_migrate(
        &mut self,
        thread: &Arc<T::Thread>,
        processor: &Arc<Processor>,
    ) -> Result<(), KernReturn> {
        thread.migrate(processor.slot)
    }

    fn thread_bind(
        &mut self,
        thread: &Arc<T::Thread>,
        processor: &Option<Arc<Processor>>,
    ) -> Result<(), KernReturn> {
        thread.bind(processor.as_ref().map(|p| p.slot))
    }

    fn processor_set_balance_get(
        &mut self,
        set: &Arc<ProcessorSet>,
    ) -> Result<armach_sched::ProcessorSetBalanceGetOut, KernReturn> {
        let p = host_of(&set.host)?.machine.sched.balance_params(set.id)?;
        Ok(armach_sched::ProcessorSetBalanceGetOut {
            interval_ticks: p.interval_ticks,
            threshold: p.threshold,
            warmth_tolerance: p.warmth_tolerance,
            idle_balance: p.idle_balance,
            periodic_balance: p.periodic_balance,
        })
    }

    fn processor_set_balance_set(
        &mut self,
        set: &Arc<ProcessorSet>,
        interval_ticks: u32,
        threshold: u32,
        warmth_tolerance: u32,
        idle_balance: bool,
        periodic_balance: bool,
    ) -> Result<(), KernReturn> {
        let params = BalanceParams {
            interval_ticks,
            threshold,
            warmth_tolerance,
            idle_balance,
            periodic_balance,
        };
        if !params.is_valid() {
            return Err(KernReturn::InvalidArgument);
        }
        host_of(&set.host)?
            .machine
            .sched
            .set_balance_params(set.id, params)
    }
}
