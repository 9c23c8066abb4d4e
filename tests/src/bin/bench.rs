//! `bench`: what common kernel operations cost, in guest instructions. Not a test (it checks
//! nothing and is not in the test matrix); `cargo xtask bench` runs it under QEMU's
//! `-icount shift=0`, where the virtual counter advances by one nanosecond per instruction
//! executed, so counter ticks convert to instruction counts, deterministically. Each line
//! reads `bench: NAME: N instructions per OP (ITERATIONS iterations)`.

#![no_std]
#![no_main]

extern crate alloc;

use libmach::traps;
use libmach::{Args, KernReturn, PortName, println, thread};

libmach::main!(main);

fn counter() -> u64 {
    let value: u64;
    // SAFETY: reading the virtual counter has no side effect; the kernel allows it at EL0.
    unsafe {
        core::arch::asm!("isb", "mrs {}, cntvct_el0", out(reg) value, options(nomem, nostack))
    };
    value
}

fn frequency() -> u64 {
    let value: u64;
    // SAFETY: reading the counter frequency has no side effect.
    unsafe { core::arch::asm!("mrs {}, cntfrq_el0", out(reg) value, options(nomem, nostack)) };
    value
}

/// Nanoseconds of virtual time (instructions under `-icount shift=0`) per iteration.
fn per_op(ticks: u64, iterations: u64) -> u64 {
    let ns = ticks as u128 * 1_000_000_000 / frequency().max(1) as u128;
    (ns / iterations as u128) as u64
}

fn report(name: &str, op: &str, iterations: u64, f: impl FnOnce()) {
    let start = counter();
    f();
    let ticks = counter() - start;
    println!(
        "bench: {name}: {} instructions per {op} ({iterations} iterations)",
        per_op(ticks, iterations)
    );
}

/// Two threads waking each other through the temporary event traps (`EVENT_WAKE` retried
/// until the other is waiting, then `EVENT_WAIT`): instructions per round trip, two
/// wake-ups and two waits. On more than one CPU the two usually run on different CPUs, so
/// each wake-up crosses CPUs (an IPI to an idle one).
fn wakeup_round_trip() {
    const ROUNDS: u64 = 2_000;
    static PING: u64 = 0;
    static PONG: u64 = 0;
    let ping = &PING as *const u64 as usize;
    let pong = &PONG as *const u64 as usize;
    fn wake(event: usize) {
        while traps::event_wake(event, false) == 0 {
            traps::swtch();
        }
    }
    report(
        "wakeup-round-trip",
        "round trip of two wake-ups",
        ROUNDS,
        || {
            let other = thread::spawn(move || {
                for _ in 0..ROUNDS {
                    traps::event_wait(ping, 0);
                    wake(pong);
                }
            });
            for _ in 0..ROUNDS {
                wake(ping);
                traps::event_wait(pong, 0);
            }
            if let Ok(h) = other {
                h.join();
            }
        },
    );
}

/// `mach_msg` on an 8-word buffer.
fn mach_msg(buf: &mut [u64; 8], option: u32, send: u32, rcv: u32, name: PortName) -> KernReturn {
    // SAFETY: the buffer is 64 bytes and no size passed is larger; the messages are simple.
    unsafe {
        traps::mach_msg(
            buf.as_mut_ptr() as *mut u8,
            option,
            send,
            rcv,
            name,
            0,
            PortName(0),
        )
    }
}

/// A null RPC between two threads of this task on one CPU (no cross-task rendezvous is
/// needed): the client sends a header-only request with a send-once reply right and waits
/// for the reply in the same `mach_msg`; the server answers and waits for the next request
/// in one `mach_msg`, as `mach_msg_server` does. Instructions per round trip.
fn null_rpc() {
    use libmach::abi::message::{
        MACH_MSG_TYPE_MAKE_SEND, MACH_MSG_TYPE_MAKE_SEND_ONCE, MACH_MSG_TYPE_MOVE_SEND_ONCE,
        msgh_bits, option,
    };
    const RPCS: u64 = 5_000;
    let service = traps::mach_reply_port();
    let reply = traps::mach_reply_port();
    let server = thread::spawn(move || {
        let mut buf = [0u64; 8];
        let mut r = mach_msg(&mut buf, option::RCV_MSG, 0, 64, service);
        for _ in 0..RPCS {
            if r != KernReturn::Success {
                return;
            }
            // The reply goes to the send-once right the request carried (its remote port).
            buf[0] = u64::from(msgh_bits(MACH_MSG_TYPE_MOVE_SEND_ONCE, 0));
            buf[2] = 0;
            r = mach_msg(
                &mut buf,
                option::SEND_MSG | option::RCV_MSG,
                32,
                64,
                service,
            );
        }
    });
    report(
        "null-rpc-same-cpu",
        "null RPC (request and reply)",
        RPCS,
        || {
            let mut buf = [0u64; 8];
            for _ in 0..RPCS {
                buf[0] = u64::from(msgh_bits(
                    MACH_MSG_TYPE_MAKE_SEND,
                    MACH_MSG_TYPE_MAKE_SEND_ONCE,
                ));
                buf[1] = u64::from(service.0);
                buf[2] = u64::from(reply.0);
                buf[3] = 0;
                mach_msg(&mut buf, option::SEND_MSG | option::RCV_MSG, 32, 64, reply);
            }
        },
    );
    // The server is left waiting for one more request; the task's end interrupts it.
    core::mem::forget(server);
}

/// `thread_info(THREAD_BASIC_INFO)` of the calling thread through the generated stub and
/// `mach_msg`, served by the kernel in the caller's context: instructions per round trip
/// (request, kernel server, reply). The stub's message buffer is reused, not zeroed for
/// each call.
fn thread_info_rpc() {
    use libmach::abi::info::{THREAD_BASIC_INFO, THREAD_BASIC_INFO_COUNT};
    use libmach::ipc::{self, SendRight};
    use libmach::mig::mach;
    const RPCS: u64 = 2_000;
    let me = SendRight::from_name(traps::mach_thread_self());
    let mut transport = ipc::transport();
    let mut buf = alloc::vec![0u8; 4152];
    let mut info = [0i32; THREAD_BASIC_INFO_COUNT];
    // The first call makes the thread's reply port.
    let _ = mach::thread_info(&mut transport, &me, THREAD_BASIC_INFO, &mut info);
    report(
        "thread-info-rpc",
        "thread_info(THREAD_BASIC_INFO) RPC",
        RPCS,
        || {
            for _ in 0..RPCS {
                let r = mach::thread_info_with(
                    &mut transport,
                    &mut buf,
                    &me,
                    THREAD_BASIC_INFO,
                    &mut info,
                );
                core::hint::black_box(r.is_ok());
            }
        },
    );
}

fn main(_args: &Args) -> i32 {
    if libmach::cpu_count() > 1 {
        // `cargo xtask bench` boots more CPUs only for the wake-up path.
        wakeup_round_trip();
        println!("bench: done");
        return 0;
    }
    println!(
        "bench: start: {} instructions from reset to main",
        per_op(counter(), 1)
    );
    let task = traps::mach_task_self();

    const TRAPS: u64 = 20_000;
    report("null-trap", "mach_task_self", TRAPS, || {
        for _ in 0..TRAPS {
            core::hint::black_box(traps::mach_task_self());
        }
    });

    report(
        "yield-alone",
        "swtch with nothing else to run",
        TRAPS,
        || {
            for _ in 0..TRAPS {
                core::hint::black_box(traps::swtch());
            }
        },
    );

    // Two threads taking turns on one CPU: every swtch is a switch to the other thread.
    const SWITCHES: u64 = 5_000;
    report(
        "context-switch",
        "switch (half a swtch round trip)",
        2 * SWITCHES,
        || {
            let other = thread::spawn(|| {
                for _ in 0..SWITCHES {
                    traps::swtch();
                }
            });
            for _ in 0..SWITCHES {
                traps::swtch();
            }
            if let Ok(h) = other {
                h.join();
            }
        },
    );

    const PAGES: u64 = 1024;
    let mut region = 0;
    report(
        "page-fault",
        "first touch of a page (zero fill)",
        PAGES,
        || {
            if let Ok(addr) = traps::vm_allocate(task, 0, PAGES * 4096, true) {
                region = addr;
                for i in 0..PAGES {
                    // SAFETY: the page was just allocated for this loop.
                    unsafe { core::ptr::write_volatile((addr + i * 4096) as *mut u8, 1) };
                }
            }
        },
    );
    // SAFETY: the region was allocated above and nothing refers to it any more.
    let _ = unsafe { traps::vm_deallocate(task, region, PAGES * 4096) };

    const ALLOCS: u64 = 2_000;
    report(
        "vm-allocate-deallocate",
        "pair of one page, untouched",
        ALLOCS,
        || {
            for _ in 0..ALLOCS {
                if let Ok(addr) = traps::vm_allocate(task, 0, 4096, true) {
                    // SAFETY: the page was just allocated and is not used.
                    let _ = unsafe { traps::vm_deallocate(task, addr, 4096) };
                }
            }
        },
    );

    const THREADS: u64 = 200;
    report(
        "thread-create-join",
        "spawn, run an empty closure, join",
        THREADS,
        || {
            for _ in 0..THREADS {
                if let Ok(h) = thread::spawn(|| {}) {
                    h.join();
                }
            }
        },
    );

    null_rpc();

    thread_info_rpc();

    wakeup_round_trip();

    println!("bench: done");
    0
}
