//! `names`: the name service and program launcher of servers/bootstrap
//! (`armach_bootstrap.defs`), through the generated client stubs. Started by bootstrap
//! (`init=bootstrap -- -f names.conf`, which also starts `names serve restarter` as a
//! server it restarts), it checks:
//!
//! - register, look up (the same port comes back), unregister (only with the registered
//!   right), and the errors: a duplicate name (`KERN_NAME_EXISTS`), an unknown one
//!   (`KERN_INVALID_NAME`), bad names (`KERN_INVALID_ARGUMENT`; 64 bytes or more refused by
//!   the stub), a null right (`KERN_INVALID_RIGHT`);
//! - a registered server that dies: a task started with `bootstrap_spawn` registers a
//!   name and is told to exit; once its task is gone, looking the name up gives
//!   `KERN_INVALID_NAME` (bootstrap's dead-name notification removed it);
//! - many clients at once: tasks started with `bootstrap_spawn` and threads of this task
//!   register, look up and unregister names concurrently, and race for the same names
//!   (exactly one registration of each wins);
//! - bad messages: a request too short for its routine (`MIG_BAD_ARGUMENTS`), an id
//!   bootstrap does not serve (`MIG_BAD_ID`), forged dead-name notifications for live
//!   names (ignored: the names stay);
//! - the restarted server: told to exit, it comes back (a new port under its name) as
//!   often as bootstrap restarts (`MAX_RESTARTS`), and not after that (bootstrap says so
//!   on the console, which the harness checks).
//!
//! Modes: `names` (the test), `names serve NAME` (register NAME, answer pings, exit when
//! told), `names many ID` (a concurrent client).

#![no_std]
#![no_main]

extern crate alloc;

use alloc::format;
use alloc::vec::Vec;
use armach_bootstrap::config::MAX_RESTARTS;
use armach_tests::msg::{Msg, mach_msg};
use armach_tests::{Checks, FAILURE_MARKER, poll_sleeping, wait_thread_terminated, wait_until};
use core::ffi::CStr;
use core::sync::atomic::{AtomicU32, Ordering};
use libmach::abi::message::{
    MACH_MSG_TYPE_COPY_SEND, MACH_MSG_TYPE_MAKE_SEND, MACH_MSG_TYPE_MAKE_SEND_ONCE,
    MACH_MSG_TYPE_MOVE_SEND_ONCE, msgh_bits, option,
};
use libmach::ipc::{self, ReceiveRight, SendRight};
use libmach::loader::bootstrap_port;
use libmach::mig::armach_bootstrap as bs;
use libmach::{Args, KernReturn, PortName, println, thread, traps};

libmach::main!(main);

/// Message ids of the little protocol of `serve` mode.
const PING: i32 = 1;
const DIE: i32 = 2;
/// How long a poll for bootstrap's progress may take before the check fails (a bound, not
/// a timing: each poll sleeps 10 ms between looks).
const POLL_MS: u64 = 20_000;
/// Names each concurrent client registers.
const PER_CLIENT: usize = 12;
/// Threads of this task in the concurrent part, and spawned client tasks.
const THREADS: usize = 4;
const TASKS: usize = 3;

fn main(args: &Args) -> i32 {
    match (args.str(3), args.str(4)) {
        (Some("serve"), Some(name)) => serve(name),
        (Some("many"), Some(id)) => many(id),
        _ => test(),
    }
}

fn cname(s: &str) -> Vec<u8> {
    let mut v = Vec::from(s.as_bytes());
    v.push(0);
    v
}

fn c(v: &[u8]) -> &CStr {
    CStr::from_bytes_with_nul(v).unwrap_or(c"")
}

/// A new port with a send right under the same name.
fn new_port() -> ReceiveRight {
    let task = traps::mach_task_self();
    let p = traps::mach_reply_port();
    let _ = traps::mach_port_insert_right(task, p, p, MACH_MSG_TYPE_MAKE_SEND);
    ReceiveRight::from_name(p)
}

fn register(bp: &SendRight, name: &str, port: PortName) -> Result<(), KernReturn> {
    let right = core::mem::ManuallyDrop::new(SendRight::from_name(port));
    bs::bootstrap_register(&mut ipc::transport(), bp, c(&cname(name)), &right)
}

fn look_up(bp: &SendRight, name: &str) -> Result<SendRight, KernReturn> {
    bs::bootstrap_look_up(&mut ipc::transport(), bp, c(&cname(name))).map(|o| o.service)
}

fn unregister(bp: &SendRight, name: &str, port: PortName) -> Result<(), KernReturn> {
    let right = core::mem::ManuallyDrop::new(SendRight::from_name(port));
    bs::bootstrap_unregister(&mut ipc::transport(), bp, c(&cname(name)), &right)
}

fn spawn(bp: &SendRight, words: &[&str]) -> Result<SendRight, KernReturn> {
    let mut args = Vec::new();
    for w in words {
        args.extend_from_slice(w.as_bytes());
        args.push(0);
    }
    bs::bootstrap_spawn(&mut ipc::transport(), bp, c"names", &args).map(|o| o.task)
}

/// Sends `id` to `to` with a reply port, and waits for the reply when `PING`.
fn send(to: PortName, id: i32) -> KernReturn {
    let reply = traps::mach_reply_port();
    let mut m = Msg::new();
    m.header(
        msgh_bits(MACH_MSG_TYPE_COPY_SEND, MACH_MSG_TYPE_MAKE_SEND_ONCE),
        to,
        reply,
        id,
    );
    let r = if id == PING {
        mach_msg(
            &mut m,
            option::SEND_MSG | option::RCV_MSG | option::RCV_TIMEOUT,
            32,
            128,
            reply,
            POLL_MS as u32,
        )
    } else {
        mach_msg(&mut m, option::SEND_MSG, 32, 0, PortName::NULL, 0)
    };
    drop(ReceiveRight::from_name(reply));
    if r == KernReturn::Success && id == PING && m.id() != PING + 100 {
        return KernReturn::MigReplyMismatch;
    }
    r
}

/// `serve NAME`: register NAME, answer pings, exit on `DIE`.
fn serve(name: &str) -> i32 {
    let Some(bp) = bootstrap_port() else {
        println!("{FAILURE_MARKER}: names serve: no bootstrap port");
        return 1;
    };
    let port = new_port();
    if let Err(e) = register(&bp, name, port.name()) {
        println!("{FAILURE_MARKER}: names serve {name}: register: {e:?}");
        return 1;
    }
    let mut m = Msg::new();
    loop {
        let r = mach_msg(&mut m, option::RCV_MSG, 0, 128, port.name(), 0);
        if r != KernReturn::Success {
            println!("{FAILURE_MARKER}: names serve {name}: receive: {r:?}");
            return 1;
        }
        if m.id() == DIE {
            return 0;
        }
        m.header(
            msgh_bits(MACH_MSG_TYPE_MOVE_SEND_ONCE, 0),
            m.remote_name(),
            PortName::NULL,
            m.id() + 100,
        );
        let _ = mach_msg(&mut m, option::SEND_MSG, 32, 0, PortName::NULL, 0);
    }
}

/// One concurrent client's work, with names prefixed by `id`: register its names, look
/// each up (its own port back), unregister them, then find them gone. The failures seen.
fn client_round(bp: &SendRight, id: &str) -> Vec<alloc::string::String> {
    let mut failures = Vec::new();
    let ports: Vec<ReceiveRight> = (0..PER_CLIENT).map(|_| new_port()).collect();
    for (i, p) in ports.iter().enumerate() {
        let name = format!("c.{id}.{i}");
        if let Err(e) = register(bp, &name, p.name()) {
            failures.push(format!("register {name}: {e:?}"));
        }
    }
    for (i, p) in ports.iter().enumerate() {
        let name = format!("c.{id}.{i}");
        match look_up(bp, &name) {
            Ok(r) if r.name() == p.name() => {}
            Ok(r) => failures.push(format!(
                "look up {name}: {:?}, not {:?}",
                r.name(),
                p.name()
            )),
            Err(e) => failures.push(format!("look up {name}: {e:?}")),
        }
    }
    for (i, p) in ports.iter().enumerate() {
        let name = format!("c.{id}.{i}");
        if let Err(e) = unregister(bp, &name, p.name()) {
            failures.push(format!("unregister {name}: {e:?}"));
        }
        if let Err(e) = look_up(bp, &name).map(drop) {
            if e != KernReturn::InvalidName {
                failures.push(format!("look up {name} after: {e:?}"));
            }
        } else {
            failures.push(format!("{name} still there after unregister"));
        }
    }
    failures
}

/// `many ID`: a concurrent client in a task of its own; prints the failure marker on any.
fn many(id: &str) -> i32 {
    let Some(bp) = bootstrap_port() else {
        println!("{FAILURE_MARKER}: names many {id}: no bootstrap port");
        return 1;
    };
    let failures = client_round(&bp, id);
    for f in &failures {
        println!("{FAILURE_MARKER}: names many {id}: {f}");
    }
    i32::from(!failures.is_empty())
}

fn test() -> i32 {
    let mut c = Checks::new("names");
    let Some(bp) = bootstrap_port() else {
        c.check(false, "a bootstrap port", format_args!("none"));
        return c.finish();
    };
    basics(&mut c, &bp);
    server_death(&mut c, &bp);
    bad_messages(&mut c, &bp);
    concurrency(&mut c, &bp);
    restarts(&mut c, &bp);
    c.finish()
}

fn basics(c: &mut Checks, bp: &SendRight) {
    let srv = poll_look_up(bp, "names.static", |r| {
        r.as_ref().is_ok_and(|r| r.name().is_valid())
    });
    c.check_eq(
        "the configuration's plain server registered names.static and answers",
        srv.map(|r| send(r.name(), PING)),
        Ok(KernReturn::Success),
    );
    let a = new_port();
    let b = new_port();
    c.check_eq(
        "register names.a",
        register(bp, "names.a", a.name()),
        Ok(()),
    );
    let got = look_up(bp, "names.a");
    c.check_eq(
        "  look it up: the same port (the same name in our space)",
        got.as_ref().map(|r| r.name()),
        Ok(a.name()),
    );
    drop(got);
    c.check_eq(
        "  the same name again, another port",
        register(bp, "names.a", b.name()),
        Err(KernReturn::NameExists),
    );
    c.check_eq(
        "  a second name for the same port",
        register(bp, "names.a2", a.name()),
        Ok(()),
    );
    c.check_eq(
        "look up a name nobody registered",
        look_up(bp, "names.nobody").map(|r| r.name()),
        Err(KernReturn::InvalidName),
    );
    for bad in ["", "a b", "tab\there", "caf\u{e9}"] {
        c.check_eq(
            "a bad name is refused",
            register(bp, bad, b.name()),
            Err(KernReturn::InvalidArgument),
        );
    }
    let long = "x".repeat(63);
    c.check_eq("a 63-byte name", register(bp, &long, b.name()), Ok(()));
    c.check_eq("  unregister it", unregister(bp, &long, b.name()), Ok(()));
    c.check_eq(
        "a 64-byte name does not fit (the stub refuses it)",
        register(bp, &"x".repeat(64), b.name()),
        Err(KernReturn::MigArrayTooLarge),
    );
    c.check_eq(
        "a null right",
        register(bp, "names.null", PortName::NULL),
        Err(KernReturn::InvalidRight),
    );
    c.check_eq(
        "unregister with another right",
        unregister(bp, "names.a", b.name()),
        Err(KernReturn::InvalidRight),
    );
    c.check_eq(
        "unregister a name nobody registered",
        unregister(bp, "names.nobody", a.name()),
        Err(KernReturn::InvalidName),
    );
    c.check_eq(
        "unregister names.a",
        unregister(bp, "names.a", a.name()),
        Ok(()),
    );
    c.check_eq(
        "  gone",
        look_up(bp, "names.a").map(|r| r.name()),
        Err(KernReturn::InvalidName),
    );
    c.check_eq(
        "  its other name stays",
        look_up(bp, "names.a2").map(|r| r.name()),
        Ok(a.name()),
    );
    c.check_eq(
        "unregister names.a2",
        unregister(bp, "names.a2", a.name()),
        Ok(()),
    );
    c.check_eq(
        "spawn a program the RAM disk lacks",
        bs::bootstrap_spawn(&mut ipc::transport(), bp, c"no-such-program", b"")
            .map(|o| o.task.name()),
        Err(KernReturn::InvalidName),
    );
    c.check_eq(
        "spawn with arguments not ending in a NUL",
        bs::bootstrap_spawn(&mut ipc::transport(), bp, c"names", b"serve").map(|o| o.task.name()),
        Err(KernReturn::InvalidArgument),
    );
}

/// Polls `look_up(name)` until `done` holds of the result; the last result.
fn poll_look_up(
    bp: &SendRight,
    name: &str,
    mut done: impl FnMut(&Result<SendRight, KernReturn>) -> bool,
) -> Result<SendRight, KernReturn> {
    let mut last = Err(KernReturn::Failure);
    poll_sleeping(POLL_MS, || {
        last = look_up(bp, name);
        done(&last)
    });
    last
}

fn server_death(c: &mut Checks, bp: &SendRight) {
    let task = spawn(bp, &["serve", "names.gone"]);
    c.check(
        task.is_ok(),
        "spawn a server task",
        format_args!("{:?}", task.as_ref().map(|t| t.name())),
    );
    let Ok(task) = task else { return };
    let srv = poll_look_up(bp, "names.gone", |r| {
        r.as_ref().is_ok_and(|r| r.name().is_valid())
    });
    c.check(
        srv.is_ok(),
        "  it registered names.gone",
        format_args!("{:?}", srv.as_ref().map(|r| r.name())),
    );
    let Ok(srv) = srv else { return };
    c.check_eq(
        "  it answers a ping",
        send(srv.name(), PING),
        KernReturn::Success,
    );
    c.check_eq(
        "  tell it to exit",
        send(srv.name(), DIE),
        KernReturn::Success,
    );
    c.check_eq(
        "  its task ends",
        wait_thread_terminated(task.name()),
        Ok(()),
    );
    let after = poll_look_up(bp, "names.gone", |r| r.is_err());
    c.check_eq(
        "  then the name is gone",
        after.map(|r| r.name()),
        Err(KernReturn::InvalidName),
    );
}

/// Sends a header-only request `id` to `to` and returns the reply's id and code (@40).
fn raw_call(to: PortName, id: i32) -> Result<(i32, u32), KernReturn> {
    let reply = traps::mach_reply_port();
    let mut m = Msg::new();
    m.header(
        msgh_bits(MACH_MSG_TYPE_COPY_SEND, MACH_MSG_TYPE_MAKE_SEND_ONCE),
        to,
        reply,
        id,
    );
    let r = mach_msg(
        &mut m,
        option::SEND_MSG | option::RCV_MSG | option::RCV_TIMEOUT,
        32,
        128,
        reply,
        POLL_MS as u32,
    );
    drop(ReceiveRight::from_name(reply));
    if r != KernReturn::Success {
        return Err(r);
    }
    Ok((m.id(), m.get32(40)))
}

fn bad_messages(c: &mut Checks, bp: &SendRight) {
    let port = new_port();
    c.check_eq(
        "register names.kept",
        register(bp, "names.kept", port.name()),
        Ok(()),
    );
    c.check_eq(
        "a register request with no body",
        raw_call(bp.name(), bs::BOOTSTRAP_REGISTER_ID),
        Ok((
            bs::BOOTSTRAP_REGISTER_ID + 100,
            KernReturn::MigBadArguments.code() as u32,
        )),
    );
    c.check_eq(
        "an id bootstrap does not serve",
        raw_call(bp.name(), 5199),
        Ok((5299, KernReturn::MigBadId.code() as u32)),
    );
    // Dead-name notifications naming every small name in bootstrap's space, none dead.
    for name in 1..=300u32 {
        let mut m = Msg::new();
        m.header(
            msgh_bits(MACH_MSG_TYPE_COPY_SEND, 0),
            bp.name(),
            PortName::NULL,
            libmach::abi::message::notify::DEAD_NAME,
        );
        m.desc(32, armach_tests::msg::int_desc());
        m.put32(40, name);
        let _ = mach_msg(&mut m, option::SEND_MSG, 48, 0, PortName::NULL, 0);
    }
    c.check_eq(
        "forged dead-name notifications change nothing",
        look_up(bp, "names.kept").map(|r| r.name()),
        Ok(port.name()),
    );
    let srv = look_up(bp, "names.static");
    c.check_eq(
        "  the configuration's server is still registered",
        srv.as_ref().map(|r| send(r.name(), PING)),
        Ok(KernReturn::Success),
    );
    c.check_eq(
        "unregister names.kept",
        unregister(bp, "names.kept", port.name()),
        Ok(()),
    );
}

fn concurrency(c: &mut Checks, bp: &SendRight) {
    let tasks: Vec<_> = (0..TASKS)
        .map(|i| spawn(bp, &["many", &format!("t{i}")]))
        .collect();
    c.check(
        tasks.iter().all(Result::is_ok),
        "spawn the concurrent client tasks",
        format_args!("{}", tasks.len()),
    );
    static RACE_WINS: AtomicU32 = AtomicU32::new(0);
    static RACE_DONE: AtomicU32 = AtomicU32::new(0);
    const RACED: usize = 8;
    let bp_name = bp.name();
    let handles: Vec<_> = (0..THREADS)
        .map(|i| {
            thread::spawn(move || {
                let bp = core::mem::ManuallyDrop::new(SendRight::from_name(bp_name));
                let mut failures = client_round(&bp, &format!("h{i}"));
                // Every thread tries every raced name; one registration of each wins.
                let port = new_port();
                for r in 0..RACED {
                    match register(&bp, &format!("race.{r}"), port.name()) {
                        Ok(()) => {
                            RACE_WINS.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(KernReturn::NameExists) => {}
                        Err(e) => failures.push(format!("race.{r}: {e:?}")),
                    }
                }
                // Our port's end (the receive right drops) takes our wins' names away:
                // not before every thread has tried every name.
                RACE_DONE.fetch_add(1, Ordering::Relaxed);
                if !wait_until(POLL_MS, || {
                    RACE_DONE.load(Ordering::Relaxed) == THREADS as u32
                }) {
                    failures.push("the other threads never finished racing".into());
                }
                drop(port);
                failures
            })
        })
        .collect();
    for (i, h) in handles.into_iter().enumerate() {
        let failures = h.map(|h| h.join());
        c.check(
            failures.as_ref().is_ok_and(|f| f.is_empty()),
            "  a client thread registered, looked up and unregistered its names",
            format_args!("thread {i}: {failures:?}"),
        );
    }
    c.check_eq(
        "  each raced name was won once",
        RACE_WINS.load(Ordering::Relaxed),
        RACED as u32,
    );
    for (i, t) in tasks.iter().enumerate() {
        if let Ok(t) = t {
            c.check_eq(
                "  a client task ended (its failures, if any, are on the console)",
                wait_thread_terminated(t.name()),
                Ok(()),
            );
        } else {
            c.note(format_args!("client task {i} did not start"));
        }
    }
    let gone = poll_look_up(bp, "race.0", |r| r.is_err());
    c.check_eq(
        "  the raced names went with their ports",
        gone.map(|r| r.name()),
        Err(KernReturn::InvalidName),
    );
}

fn restarts(c: &mut Checks, bp: &SendRight) {
    let mut previous: Vec<SendRight> = Vec::new();
    for round in 0..=MAX_RESTARTS {
        // Until bootstrap has heard of the last instance's death, a look-up may still
        // give its port (alive a moment longer, or already a dead name).
        let srv = poll_look_up(bp, "restarter", |r| {
            r.as_ref()
                .is_ok_and(|r| r.name().is_valid() && previous.iter().all(|p| p.name() != r.name()))
        });
        let ok = srv.is_ok();
        c.check(
            ok,
            "the restarted server is there, a new port each time",
            format_args!("round {round}: {:?}", srv.as_ref().map(|r| r.name())),
        );
        let Ok(srv) = srv else { return };
        c.check_eq(
            "  it answers a ping",
            send(srv.name(), PING),
            KernReturn::Success,
        );
        c.check_eq(
            "  tell it to exit",
            send(srv.name(), DIE),
            KernReturn::Success,
        );
        previous.push(srv);
    }
    let gone = poll_look_up(bp, "restarter", |r| r.is_err());
    c.check_eq(
        "  after its last death the name is gone",
        gone.map(|r| r.name()),
        Err(KernReturn::InvalidName),
    );
}
