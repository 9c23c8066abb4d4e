//! `kobject`: the kernel's object server reached through `mach_msg`, with the stubs mig-rs
//! generates for libmach. `host_info` on the host port answers what the machine is;
//! `mach_port.defs` routines on the task's own port act on the task's IPC space, the same
//! space the port traps act on; wrong flavors and wrong objects get GNU Mach's errors.

#![no_std]
#![no_main]

use armach_tests::Checks;
use libmach::mig::{mach_host, mach_port};
use libmach::{Args, KernReturn, PortName, ipc};

libmach::main!(main);

/// `HOST_BASIC_INFO` and its count in `integer_t`s on LP64 (`max_cpus`, `avail_cpus`,
/// `memory_size` as two, `cpu_type`, `cpu_subtype`).
const HOST_BASIC_INFO: i32 = 1;
const HOST_BASIC_INFO_COUNT: u32 = 6;
/// `MACH_PORT_RIGHT_RECEIVE` and `MACH_PORT_TYPE_RECEIVE`.
const RIGHT_RECEIVE: u32 = 1;
const TYPE_RECEIVE: u32 = 1 << 17;

fn main(_args: &Args) -> i32 {
    let mut c = Checks::new("kobject");
    let mut transport = ipc::transport();
    let host = ipc::host_self();
    let task = ipc::task_self();

    // host_info over IPC: the CPU count the kernel reports by its trap too.
    let mut info = [0i32; 8];
    let basic = mach_host::host_info(&mut transport, &host, HOST_BASIC_INFO, &mut info);
    c.check_eq(
        "host_info(HOST_BASIC_INFO) over mach_msg",
        basic.as_ref().map(|o| o.host_info_out_count).ok(),
        Some(HOST_BASIC_INFO_COUNT),
    );
    c.check_eq(
        "host_info: max_cpus is the CPU count",
        info[0] as u32,
        libmach::cpu_count(),
    );
    c.check_eq(
        "host_info: avail_cpus is the CPU count",
        info[1] as u32,
        libmach::cpu_count(),
    );
    let memory = (info[2] as u32 as u64) | ((info[3] as u32 as u64) << 32);
    c.check(
        memory >= 64 << 20,
        "host_info: memory_size is the machine's RAM",
        format_args!("{memory} bytes"),
    );
    let bad_flavor = mach_host::host_info(&mut transport, &host, 999, &mut info);
    c.check_eq(
        "host_info with an unknown flavor",
        bad_flavor.err(),
        Some(KernReturn::InvalidArgument),
    );

    // mach_port routines on the task's own port act on its space.
    let made = mach_port::mach_port_allocate(&mut transport, &task, RIGHT_RECEIVE);
    let name = made.as_ref().map(|o| o.name).unwrap_or(PortName(0));
    c.check(
        made.is_ok() && name.0 != 0,
        "mach_port_allocate over mach_msg",
        format_args!("{made:?}"),
    );
    match mach_port::mach_port_names(&mut transport, &task) {
        Ok(out) => {
            let found = out
                .names
                .iter()
                .zip(out.types.iter())
                .find(|(n, _)| *n == name);
            c.check(
                found.is_some_and(|(_, t)| t & TYPE_RECEIVE != 0),
                "mach_port_names lists the new receive right (out of line)",
                format_args!("{found:?} among {} names", out.names.iter().count()),
            );
        }
        Err(e) => {
            c.check(
                false,
                "mach_port_names over mach_msg",
                format_args!("{e:?}"),
            );
        }
    }
    let refs = mach_port::mach_port_get_refs(&mut transport, &task, name, RIGHT_RECEIVE);
    c.check_eq(
        "mach_port_get_refs of the receive right",
        refs.map(|o| o.refs).ok(),
        Some(1),
    );
    c.check_eq(
        "mach_port_destroy over mach_msg",
        mach_port::mach_port_destroy(&mut transport, &task, name).err(),
        None,
    );
    c.check_eq(
        "mach_port_destroy of the same name again",
        mach_port::mach_port_destroy(&mut transport, &task, name).err(),
        Some(KernReturn::InvalidName),
    );
    // A mach_port routine sent to the host port: no task, so no space (GNU Mach's
    // `convert_port_to_space` gives IS_NULL, answered KERN_INVALID_TASK).
    let wrong = mach_port::mach_port_allocate(&mut transport, &host, RIGHT_RECEIVE);
    c.check_eq(
        "mach_port_allocate on the host port is refused",
        wrong.err(),
        Some(KernReturn::InvalidTask),
    );
    c.finish()
}
