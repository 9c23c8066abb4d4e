//! `reboot`: a program ends the run with `host_reboot` on the privileged host port, as GNU
//! Mach's test library does: refused on the unprivileged host port (`KERN_INVALID_HOST`),
//! then, after the success marker, `host_reboot(host_priv, RB_HALT)` powers the machine
//! off with status 0 (`RB_HALT` is no status). If the call returns, the run fails. (The
//! kernel's leak check does not run: the machine stops with this task alive.)

#![no_std]
#![no_main]

use armach_tests::Checks;
use armach_tests::host::host_priv;
use libmach::mig::mach_host;
use libmach::{Args, KernReturn, ipc};

libmach::main!(main);

/// `RB_HALT` (`sys/reboot.h`).
const RB_HALT: i32 = 0x8;

fn main(args: &Args) -> i32 {
    let mut c = Checks::new("reboot");
    let mut t = ipc::transport();
    let host = ipc::host_self();
    c.check_eq(
        "host_reboot on the unprivileged host port",
        mach_host::host_reboot(&mut t, &host, 0),
        Err(KernReturn::InvalidHost),
    );
    let Some(hp) = host_priv(args) else {
        c.check(
            false,
            "argv[1] is the host-privileged port",
            format_args!("{:?}", args.str(1)),
        );
        return c.finish();
    };
    if c.failed() {
        return c.finish();
    }
    // The marker first: nothing prints after the machine is off.
    let _ = c.finish();
    let r = mach_host::host_reboot(&mut t, &hp, RB_HALT);
    armach_tests::println!(
        "{}: reboot: host_reboot returned {r:?}",
        armach_tests::FAILURE_MARKER
    );
    1
}
