//! `armach/trace.defs` (5200) served on the host-privileged port (and `trace_thread_id`
//! on thread ports): control of the scheduler trace and the reading of a CPU's events as
//! out-of-line data. The rings and the recording are `kern::sched::trace`'s, reached
//! through `HostSched`, which host tests fake; this file holds only the rules of the
//! interface (which port, which code) and the copy into the reply's region.

extern crate alloc;

use super::generated::armach_trace::{self, ArmachTraceServer};
use super::host::Host;
use super::objects::{Kernel, TaskIpc, ThreadIpc};
use super::region::KernelRegion;
use alloc::sync::Arc;
use mach_abi::KernReturn;
use mach_abi::mig::{Ool, PortSlot};
use mach_abi::trace::EVENT_SIZE;

impl<T: TaskIpc> ArmachTraceServer for Kernel<'_, T> {
    type Host = Arc<Host>;
    type Thread = Arc<T::Thread>;

    fn convert_port_to_host_priv(
        &mut self,
        port: PortSlot,
        msg_id: i32,
    ) -> Result<Arc<Host>, KernReturn> {
        self.host_priv(port, msg_id)
    }

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

    fn trace_status(
        &mut self,
        host: &Arc<Host>,
    ) -> Result<armach_trace::TraceStatusOut, KernReturn> {
        let s = host.machine.sched.trace_status();
        Ok(armach_trace::TraceStatusOut {
            enabled: s.enabled,
            cpus: s.cpus,
            capacity: s.capacity,
            frequency: s.frequency,
        })
    }

    fn trace_enable(&mut self, host: &Arc<Host>, enable: bool) -> Result<(), KernReturn> {
        host.machine.sched.trace_enable(enable);
        Ok(())
    }

    fn trace_reset(&mut self, host: &Arc<Host>) -> Result<(), KernReturn> {
        host.machine.sched.trace_reset();
        Ok(())
    }

    fn trace_read(
        &mut self,
        host: &Arc<Host>,
        cpu: u32,
        since: u64,
    ) -> Result<armach_trace::TraceReadOut, KernReturn> {
        let sched = host.machine.sched;
        // Room for a whole ring, charged to the caller before anything is read; what the
        // ring holds by the time it is read (it may have grown) fills it up to there.
        let capacity = sched.trace_status().capacity as usize;
        let mut region = KernelRegion::with_capacity(self.ledger, capacity * EVENT_SIZE)?;
        let mut count = 0u32;
        let read = sched
            .trace_read(cpu, since, &mut |e| {
                let taken = region.push(&e.to_bytes());
                count += u32::from(taken);
                taken
            })
            .ok_or(KernReturn::InvalidArgument)?;
        let events = if count == 0 {
            Ool::default()
        } else {
            Ool {
                address: self.slots.put_region(region)?,
                count: count * EVENT_SIZE as u32,
            }
        };
        Ok(armach_trace::TraceReadOut {
            events,
            next: read.next,
            lost: read.lost,
        })
    }

    fn trace_thread_id(
        &mut self,
        thread: &Arc<T::Thread>,
    ) -> Result<armach_trace::TraceThreadIdOut, KernReturn> {
        Ok(armach_trace::TraceThreadIdOut {
            id: thread.trace_id(),
        })
    }
}
