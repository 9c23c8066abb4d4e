//! Shared helpers of the user-mode test programs: a [`Checks`] record that prints each check
//! as it runs and ends with GNU Mach's markers. Each program in `src/bin/` is one test area;
//! none of this is used outside the tests.

#![no_std]

extern crate alloc;

pub mod child;
pub mod exc;
pub mod fuzz;
pub mod host;
pub mod msg;

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt::Write;

use libmach::{KernReturn, PortName};
pub use libmach::{print, println};

/// Assembly that loads v0-v31 from the address in register `$r` (a string such as "x9"),
/// 512 bytes, leaving `$r` past them: for the tests of the FP/SIMD registers' state.
#[macro_export]
macro_rules! ld1_v0_v31 {
    ($r:literal) => {
        concat!(
            "ld1 {{v0.16b-v3.16b}}, [",
            $r,
            "], #64\n",
            "ld1 {{v4.16b-v7.16b}}, [",
            $r,
            "], #64\n",
            "ld1 {{v8.16b-v11.16b}}, [",
            $r,
            "], #64\n",
            "ld1 {{v12.16b-v15.16b}}, [",
            $r,
            "], #64\n",
            "ld1 {{v16.16b-v19.16b}}, [",
            $r,
            "], #64\n",
            "ld1 {{v20.16b-v23.16b}}, [",
            $r,
            "], #64\n",
            "ld1 {{v24.16b-v27.16b}}, [",
            $r,
            "], #64\n",
            "ld1 {{v28.16b-v31.16b}}, [",
            $r,
            "], #64",
        )
    };
}

/// Assembly that stores v0-v31 to the address in register `$r`, as [`ld1_v0_v31`] loads them.
#[macro_export]
macro_rules! st1_v0_v31 {
    ($r:literal) => {
        concat!(
            "st1 {{v0.16b-v3.16b}}, [",
            $r,
            "], #64\n",
            "st1 {{v4.16b-v7.16b}}, [",
            $r,
            "], #64\n",
            "st1 {{v8.16b-v11.16b}}, [",
            $r,
            "], #64\n",
            "st1 {{v12.16b-v15.16b}}, [",
            $r,
            "], #64\n",
            "st1 {{v16.16b-v19.16b}}, [",
            $r,
            "], #64\n",
            "st1 {{v20.16b-v23.16b}}, [",
            $r,
            "], #64\n",
            "st1 {{v24.16b-v27.16b}}, [",
            $r,
            "], #64\n",
            "st1 {{v28.16b-v31.16b}}, [",
            $r,
            "], #64",
        )
    };
}

/// The line a passing test prints last (GNU Mach's marker).
pub const SUCCESS_MARKER: &str = "gnumach-test-success-and-reboot";
/// The start of the line a failing test prints, followed by what failed.
pub const FAILURE_MARKER: &str = "gnumach-test-failure";

/// Checks of one test program: each is printed as it is made; failures are remembered and
/// listed after the failure marker by [`finish`](Self::finish).
pub struct Checks {
    program: &'static str,
    passed: usize,
    failures: Vec<String>,
}

impl Checks {
    pub fn new(program: &'static str) -> Self {
        Self {
            program,
            passed: 0,
            failures: Vec::new(),
        }
    }

    /// Records a check: `what` says what was checked, `seen` the values seen.
    pub fn check(&mut self, ok: bool, what: &str, seen: core::fmt::Arguments<'_>) -> bool {
        if ok {
            self.passed += 1;
            println!("{}: ok: {} ({})", self.program, what, seen);
        } else {
            let mut line = String::new();
            let _ = write!(line, "{} (seen: {})", what, seen);
            println!("{}: FAILED: {}", self.program, line);
            self.failures.push(line);
        }
        ok
    }

    /// A check that a value equals the expected one.
    pub fn check_eq<T: PartialEq + core::fmt::Debug>(
        &mut self,
        what: &str,
        seen: T,
        expected: T,
    ) -> bool {
        let ok = seen == expected;
        self.check(
            ok,
            what,
            format_args!("{:?}, expected {:?}", seen, expected),
        )
    }

    /// Prints an informational line (not a check).
    pub fn note(&self, text: core::fmt::Arguments<'_>) {
        println!("{}: {}", self.program, text);
    }

    pub fn failed(&self) -> bool {
        !self.failures.is_empty()
    }

    /// Prints the summary and the marker; returns the exit status for `main`.
    pub fn finish(self) -> i32 {
        if self.failures.is_empty() {
            println!("{}: all {} checks passed", self.program, self.passed);
            println!("{}", SUCCESS_MARKER);
            0
        } else {
            let mut line = String::new();
            let _ = write!(
                line,
                "{}: {}: {} of {} checks failed:",
                FAILURE_MARKER,
                self.program,
                self.failures.len(),
                self.failures.len() + self.passed
            );
            for failure in &self.failures {
                let _ = write!(line, " [{}]", failure);
            }
            println!("{}", line);
            1
        }
    }
}

/// The virtual counter (`CNTVCT_EL0`, which the kernel opens to user mode).
pub fn counter() -> u64 {
    let value: u64;
    // SAFETY: reading the virtual counter has no side effect; the kernel allows it at EL0.
    unsafe { core::arch::asm!("mrs {}, cntvct_el0", out(reg) value, options(nomem, nostack)) };
    value
}

/// The counter's frequency in Hz (`CNTFRQ_EL0`).
pub fn counter_frequency() -> u64 {
    let value: u64;
    // SAFETY: reading the counter frequency has no side effect.
    unsafe { core::arch::asm!("mrs {}, cntfrq_el0", out(reg) value, options(nomem, nostack)) };
    value
}

/// Bits 0..n set: the CPUs `0..n` as a mask (all 64 for `n >= 64`).
pub fn cpu_mask(n: u32) -> u64 {
    if n >= 64 { u64::MAX } else { (1u64 << n) - 1 }
}

/// A CPU index as one bit of a mask (CPUs from 63 up share the top bit).
pub fn cpu_bit(cpu: u32) -> u64 {
    1u64.checked_shl(cpu).unwrap_or(1 << 63)
}

/// `{0,1,3}` for a CPU mask.
pub fn cpu_list(mask: u64) -> String {
    let mut list = String::from("{");
    for cpu in 0..64 {
        if mask & (1 << cpu) != 0 {
            if list.len() > 1 {
                list.push(',');
            }
            let _ = write!(list, "{cpu}");
        }
    }
    list.push('}');
    list
}

/// Yield until `done` holds or `ms` milliseconds have passed on the counter; whether it
/// held. Time, not a count of yields, bounds the wait: under a loaded host a virtual CPU
/// can be away for many milliseconds, while a yield with nothing else to run takes about
/// a microsecond.
pub fn wait_until(ms: u64, mut done: impl FnMut() -> bool) -> bool {
    let deadline = counter() + ms * counter_frequency() / 1000;
    while counter() < deadline {
        if done() {
            return true;
        }
        libmach::yield_now();
    }
    done()
}

/// Check `done` every 10 ms, sleeping in between, for up to `ms` milliseconds; whether it
/// held. For waits on other threads' progress where the waiter should not take a CPU.
pub fn poll_sleeping(ms: u64, mut done: impl FnMut() -> bool) -> bool {
    for _ in 0..ms / 10 {
        if done() {
            return true;
        }
        sleep_ms(10);
    }
    done()
}

/// Sleep `ms` milliseconds (`thread_switch` with `SWITCH_OPTION_WAIT`).
pub fn sleep_ms(ms: u64) {
    let _ = libmach::traps::thread_switch(
        libmach::PortName(0),
        libmach::abi::traps::SWITCH_OPTION_WAIT,
        ms,
    );
}

/// Sleep `ms` milliseconds as GNU Mach's test library does (`msleep`): a receive with a
/// timeout on a port of our own that no message ever reaches. `MACH_RCV_TIMED_OUT` is the
/// expected end; anything else (say, `MACH_RCV_INTERRUPTED`) is returned.
pub fn msleep(ms: u32) -> Result<(), KernReturn> {
    use libmach::abi::message::option;
    use libmach::ipc::{MachMsg, ReceiveRight, Trap};
    let task = libmach::traps::mach_task_self();
    let port = ReceiveRight::from_name(libmach::traps::mach_port_allocate(
        task,
        libmach::abi::mig::PortRight::Receive,
    )?);
    let mut buf = [0u8; 64];
    // SAFETY: a receive into our own buffer.
    let r = unsafe {
        Trap.mach_msg(
            &mut buf,
            option::RCV_MSG | option::RCV_TIMEOUT,
            0,
            port.name(),
            ms,
            PortName::NULL,
        )
    };
    drop(port);
    match r {
        KernReturn::RcvTimedOut => Ok(()),
        other => Err(other),
    }
}

/// Wait, blocked, until the thread `thread` names is gone (GNU Mach's test library's
/// `wait_thread_terminated`): a dead-name notification is asked for on the name and
/// received. `Ok` once the name is dead (at once if it already is); the caller keeps its
/// (now dead) name. An error if the notification cannot be asked for.
pub fn wait_thread_terminated(thread: PortName) -> Result<(), KernReturn> {
    use libmach::abi::message::option;
    use libmach::abi::mig::PortArg;
    use libmach::ipc::{self, MachMsg, ReceiveRight, Trap};
    use libmach::mig::mach_port;
    let task = libmach::traps::mach_task_self();
    let notify = ReceiveRight::from_name(libmach::traps::mach_port_allocate(
        task,
        libmach::abi::mig::PortRight::Receive,
    )?);
    let asked = mach_port::mach_port_request_notification(
        &mut ipc::transport(),
        &ipc::task_self(),
        thread,
        libmach::abi::message::notify::DEAD_NAME,
        0,
        PortArg::MakeSendOnce(&notify),
    );
    match asked {
        Ok(previous) => drop(previous),
        // Already a dead name: nothing to wait for.
        Err(KernReturn::InvalidArgument) if is_dead_name(thread) => return Ok(()),
        Err(e) => return Err(e),
    }
    let mut buf = [0u8; 64];
    loop {
        // SAFETY: a receive into our own buffer.
        let r = unsafe {
            Trap.mach_msg(
                &mut buf,
                option::RCV_MSG,
                0,
                notify.name(),
                0,
                PortName::NULL,
            )
        };
        if r != KernReturn::RcvInterrupted {
            return if r == KernReturn::Success {
                Ok(())
            } else {
                Err(r)
            };
        }
    }
}

/// Whether `name` is a dead name in this task's space.
fn is_dead_name(name: PortName) -> bool {
    /// `MACH_PORT_TYPE_DEAD_NAME` (`mach/port.h`: the type bit of right 4).
    const MACH_PORT_TYPE_DEAD_NAME: u32 = 1 << (16 + 4);
    libmach::mig::mach_port::mach_port_type(
        &mut libmach::ipc::transport(),
        &libmach::ipc::task_self(),
        name,
    )
    .is_ok_and(|o| o.ptype & MACH_PORT_TYPE_DEAD_NAME != 0)
}

/// The ELF image of program `name` in the RAM disk (through the device master `device`),
/// for starting more tasks of it; `None`, with a failed check saying why, if the disk cannot
/// be mapped or has no such program.
pub fn program_image(c: &mut Checks, device: PortName, name: &str) -> Option<&'static [u8]> {
    match libmach::loader::map_ramdisk(&host::lend(device)) {
        Ok(disk) => {
            let image = libmach::loader::cpio::find(disk, name).map(|e| e.data);
            c.check(
                image.is_some(),
                "the program in the RAM disk",
                format_args!("{name}"),
            );
            image
        }
        Err(e) => {
            c.check(false, "map the RAM disk", format_args!("{e:?}"));
            None
        }
    }
}
