//! `exc`: Mach exceptions reach a handler (`exc.defs`, `exception_raise` 2400) and its
//! answer decides what becomes of the faulting thread. Two handler threads serve the
//! requests with libmach's generated `exc` server, each on its own port (A and B); each
//! case sets what a handler does, makes a thread fault, and checks what the handler was
//! told (exception, code, subcode, the thread and task rights) and what the thread did next.
//!
//! - Thread port A, handler resumes: a load from an unmapped address (A maps the page and
//!   writes a value there: the load, run again, reads it); `udf #0` and `brk #0x42` (A moves
//!   the pc past them with `thread_set_state` and sets `x0`); a misaligned `ldar`
//!   (EXC_BAD_ACCESS / EXC_AARCH64_AL with the address, handled the same); an unknown trap number and
//!   `svc #7` (EXC_SOFTWARE / EXC_AARCH64_SVC with the immediate; A sets `x0`, the result).
//! - Precedence: with task port B too, a thread with port A goes to A only; one without,
//!   to B; when A answers KERN_FAILURE, B is asked next and resumes the thread.
//! - In a child task of its own (`armach_tests::child`), since these end their task:
//!   handler A answers KERN_FAILURE and the task has no port (`brk #0x77`); A sends a reply
//!   with a wrong id (`brk #0x78`); no handler at all (`brk #0x79`); a dead exception port
//!   (`brk #0x7a`); the child's own task port as its exception port (`brk #0x7c`: the
//!   kernel answers MIG_BAD_ID): the kernel reports each (expected on the console) and the child task
//!   ends, thread and all.
//! - An exception port whose queue is full (five messages, nobody receiving): the request
//!   is queued past the limit; `thread_abort` of the waiting thread does not end its wait;
//!   once the request is served the thread goes on, asked exactly once.
//! - Handler A terminates the faulting thread instead of answering (`brk #0x7b`): the
//!   thread's wait ends and it is gone, with no report. Then again (`brk #0x7d`), the
//!   handler answering KERN_SUCCESS after the `thread_terminate`, as GNU Mach's
//!   `test-syscalls` does: the reply is sent (`MACH_MSG_SUCCESS`, as on GNU Mach, whose
//!   thread reply port outlives the thread), not refused as a dead name.

#![no_std]
#![no_main]

extern crate alloc;

use armach_tests::Checks;
use armach_tests::child::{Child, insn};
use armach_tests::exc;
use armach_tests::host::lend;
use core::arch::asm;
use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use libmach::abi::exception::{
    EXC_AARCH64_AL, EXC_AARCH64_BRK, EXC_AARCH64_SVC, EXC_AARCH64_UNK, EXC_BAD_ACCESS,
    EXC_BAD_INSTRUCTION, EXC_BREAKPOINT, EXC_SOFTWARE,
};
use libmach::abi::message::{MACH_MSG_TYPE_MAKE_SEND, option};
use libmach::abi::thread_state::{
    AARCH64_THREAD_STATE, AARCH64_THREAD_STATE_COUNT, Aarch64ThreadState,
};
use libmach::ipc;
use libmach::mig::exc_server::ExcServer;
use libmach::mig::{mach, mach_port};
use libmach::{Args, KernReturn, PortName, thread, traps};

libmach::main!(main);

const THREAD_EXCEPTION_PORT: i32 = 3;
const TASK_EXCEPTION_PORT: i32 = 3;
/// An address no region covers until handler A maps its page.
const HOLE: u64 = 0x50_0000_0000;
/// What handlers write for the faulting thread to see.
const MAGIC_MAP: u64 = 0x6d61_7070_6564_0001;
const MAGIC_X0: u64 = 0x7830_7830_7830_0002;
/// An unknown trap number (`svc #0`, `w8 = -9999`).
const BAD_TRAP: u32 = 9999;
/// The message that stops a handler.
const STOP_ID: i32 = 77_777;
/// `exception_raise`'s id, and a wrong reply id.
const RAISE_ID: i32 = 2400;
const WRONG_REPLY_ID: i32 = 2501;
/// Messages that fill a queue.
const FILLER_ID: i32 = 1234;

/// What a handler does with the next request.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[repr(u32)]
enum Action {
    /// Map the faulting page, write `MAGIC_MAP` at the address, answer KERN_SUCCESS.
    MapPage = 0,
    /// Move the pc past the instruction, set `x0` to `MAGIC_X0`, answer KERN_SUCCESS.
    Skip = 1,
    /// Set `x0` to `MAGIC_X0` (the pc of a trap is already past it), answer KERN_SUCCESS.
    SetX0 = 2,
    /// Answer KERN_FAILURE.
    Fail = 3,
    /// Answer with a message of the wrong id.
    BadReply = 4,
    /// `thread_terminate` the faulting thread; no answer.
    Terminate = 5,
    /// `thread_terminate` the faulting thread, then answer KERN_SUCCESS.
    TerminateReply = 6,
}

impl Action {
    fn from(v: u32) -> Action {
        match v {
            0 => Action::MapPage,
            1 => Action::Skip,
            2 => Action::SetX0,
            3 => Action::Fail,
            4 => Action::BadReply,
            5 => Action::Terminate,
            _ => Action::TerminateReply,
        }
    }
}

/// What one handler was last told, and how many requests it had.
struct Seen {
    action: AtomicU32,
    count: AtomicU32,
    exception: AtomicU32,
    code: AtomicU32,
    subcode: AtomicU64,
    thread: AtomicU32,
    task: AtomicU32,
    /// A step of the handler's own that failed (0: none).
    error: AtomicU32,
}

impl Seen {
    const fn new() -> Seen {
        Seen {
            action: AtomicU32::new(0),
            count: AtomicU32::new(0),
            exception: AtomicU32::new(0),
            code: AtomicU32::new(0),
            subcode: AtomicU64::new(0),
            thread: AtomicU32::new(0),
            task: AtomicU32::new(0),
            error: AtomicU32::new(0),
        }
    }
    fn set(&self, a: Action) {
        self.action.store(a as u32, Ordering::SeqCst);
    }
    fn count(&self) -> u32 {
        self.count.load(Ordering::SeqCst)
    }
    fn record(&self, exception: i32, code: i32, subcode: i64, thread: PortName, task: PortName) {
        self.exception.store(exception as u32, Ordering::SeqCst);
        self.code.store(code as u32, Ordering::SeqCst);
        self.subcode.store(subcode as u64, Ordering::SeqCst);
        self.thread.store(thread.0, Ordering::SeqCst);
        self.task.store(task.0, Ordering::SeqCst);
        self.count.fetch_add(1, Ordering::SeqCst);
    }
    fn told(&self) -> (u32, u32, u64) {
        (
            self.exception.load(Ordering::SeqCst),
            self.code.load(Ordering::SeqCst),
            self.subcode.load(Ordering::SeqCst),
        )
    }
}

static A: Seen = Seen::new();
/// What the reply sent after `thread_terminate` returned (`u32::MAX`: not sent yet).
static REPLY_AFTER_TERMINATE: AtomicU32 = AtomicU32::new(u32::MAX);
static B: Seen = Seen::new();

fn t() -> ipc::Client<ipc::Trap> {
    ipc::transport()
}

/// The generated server's view of one handler.
struct Handler {
    seen: &'static Seen,
}

impl Handler {
    fn change_state(&self, thread: PortName, skip: bool) -> Result<(), KernReturn> {
        let th = lend(thread);
        let mut words = [0u32; AARCH64_THREAD_STATE_COUNT as usize];
        mach::thread_get_state(&mut t(), &th, AARCH64_THREAD_STATE as i32, &mut words)?;
        let mut state = Aarch64ThreadState::from_words(&words).ok_or(KernReturn::Failure)?;
        if skip {
            state.pc += 4;
        }
        state.x[0] = MAGIC_X0;
        mach::thread_set_state(
            &mut t(),
            &th,
            AARCH64_THREAD_STATE as i32,
            &state.to_words(),
        )
    }
}

impl ExcServer for Handler {
    fn exception_raise(
        &mut self,
        _port: PortName,
        thread: PortName,
        task: PortName,
        exception: i32,
        code: i32,
        subcode: i64,
    ) -> Result<(), KernReturn> {
        let action = Action::from(self.seen.action.load(Ordering::SeqCst));
        let r = match action {
            Action::MapPage => {
                let page = subcode as u64 & !0xfff;
                match traps::vm_allocate(traps::mach_task_self(), page, 4096, false) {
                    Ok(_) => {
                        // SAFETY: the page was just allocated for this; nothing else uses it.
                        unsafe { core::ptr::write_volatile(subcode as u64 as *mut u64, MAGIC_MAP) };
                        Ok(())
                    }
                    Err(e) => Err(e),
                }
            }
            Action::Skip => self.change_state(thread, true),
            Action::SetX0 => self.change_state(thread, false),
            Action::Fail => Err(KernReturn::Failure),
            // Done by `serve` before the generated server is called.
            Action::BadReply | Action::Terminate | Action::TerminateReply => {
                Err(KernReturn::Failure)
            }
        };
        if let (Err(e), Action::MapPage | Action::Skip | Action::SetX0) = (r, action) {
            self.seen.error.store(e.code() as u32, Ordering::SeqCst);
        }
        // Recorded last: the main thread reads the count to know the handler is done.
        self.seen.record(exception, code, subcode, thread, task);
        let _ = traps::mach_port_deallocate(traps::mach_task_self(), thread);
        let _ = traps::mach_port_deallocate(traps::mach_task_self(), task);
        r
    }
}

fn word32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// Serve requests on `port` for `seen` until the stop message.
fn serve(seen: &'static Seen, port: PortName) {
    let mut req = exc::Buf::new();
    let mut reply = exc::Buf::new();
    loop {
        let r = exc::receive(&mut req, port, None);
        if r != KernReturn::Success {
            seen.error.store(r.code() as u32, Ordering::SeqCst);
            return;
        }
        let id = word32(&req.0, 28) as i32;
        if id == STOP_ID {
            return;
        }
        let action = Action::from(seen.action.load(Ordering::SeqCst));
        if id == RAISE_ID
            && matches!(
                action,
                Action::BadReply | Action::Terminate | Action::TerminateReply
            )
        {
            let reply_port = PortName(word32(&req.0, 8));
            let thread = PortName(word32(&req.0, 40));
            let task = PortName(word32(&req.0, 56));
            let exception = word32(&req.0, 72) as i32;
            let code = word32(&req.0, 88) as i32;
            let subcode = u64::from_le_bytes(req.0[104..112].try_into().unwrap_or_default());
            if action == Action::BadReply {
                let mut m = armach_tests::msg::Msg::new();
                m.header(
                    libmach::abi::message::MACH_MSG_TYPE_MOVE_SEND_ONCE as u32,
                    reply_port,
                    PortName::NULL,
                    WRONG_REPLY_ID,
                );
                m.desc(32, armach_tests::msg::int_desc());
                m.put32(40, 0);
                let r =
                    armach_tests::msg::mach_msg(&mut m, option::SEND_MSG, 48, 0, PortName::NULL, 0);
                if r != KernReturn::Success {
                    seen.error.store(r.code() as u32, Ordering::SeqCst);
                }
            } else {
                // Recorded first: the main thread reads the count once the thread is gone.
                seen.record(exception, code, subcode as i64, thread, task);
                let r = mach::thread_terminate(&mut t(), &lend(thread));
                if let Err(e) = r {
                    seen.error.store(e.code() as u32, Ordering::SeqCst);
                }
                if action == Action::TerminateReply {
                    // Answer anyway: the reply must be taken (and dropped by the kernel).
                    let mut m = armach_tests::msg::Msg::new();
                    m.header(
                        libmach::abi::message::MACH_MSG_TYPE_MOVE_SEND_ONCE as u32,
                        reply_port,
                        PortName::NULL,
                        RAISE_ID + 100,
                    );
                    m.desc(32, armach_tests::msg::int_desc());
                    m.put32(40, 0);
                    let r = armach_tests::msg::mach_msg(
                        &mut m,
                        option::SEND_MSG,
                        48,
                        0,
                        PortName::NULL,
                        0,
                    );
                    REPLY_AFTER_TERMINATE.store(r.code() as u32, Ordering::SeqCst);
                } else {
                    // Destroyed unanswered: the kernel gets a send-once notification.
                    let _ = traps::mach_port_deallocate(traps::mach_task_self(), reply_port);
                }
            }
            if action == Action::BadReply {
                seen.record(exception, code, subcode as i64, thread, task);
            }
            let _ = traps::mach_port_deallocate(traps::mach_task_self(), thread);
            let _ = traps::mach_port_deallocate(traps::mach_task_self(), task);
            continue;
        }
        let sent = exc::answer(&mut Handler { seen }, &req, &mut reply, None);
        if let Some(r) = sent.filter(|r| *r != KernReturn::Success) {
            seen.error.store(r.code() as u32, Ordering::SeqCst);
        }
    }
}

/// A new port with a receive right and a send right under one name.
fn new_port() -> Option<PortName> {
    let task = traps::mach_task_self();
    let name = traps::mach_port_allocate(task, libmach::abi::PortRight::Receive).ok()?;
    traps::mach_port_insert_right(task, name, name, MACH_MSG_TYPE_MAKE_SEND).ok()?;
    Some(name)
}

/// Set the calling thread's exception port.
fn set_thread_port(port: PortName) -> Result<(), KernReturn> {
    mach::thread_set_special_port(
        &mut t(),
        &ipc::thread_self(),
        THREAD_EXCEPTION_PORT,
        &lend(port),
    )
}

fn set_task_port(port: PortName) -> Result<(), KernReturn> {
    mach::task_set_special_port(
        &mut t(),
        &ipc::task_self(),
        TASK_EXCEPTION_PORT,
        &lend(port),
    )
}

/// The faults, each returning what the thread saw after it.
fn load_hole() -> u64 {
    let v: u64;
    // SAFETY: a load from an unmapped address: the handler maps it before the thread goes on.
    unsafe { asm!("ldr {v}, [{a}]", a = in(reg) HOLE + 8, v = out(reg) v, options(nostack)) };
    v
}

fn udf() -> u64 {
    let v: u64;
    // SAFETY: an undefined instruction; the handler moves the pc past it and sets x0.
    unsafe {
        asm!("mov x0, #1", "udf #0", "mov {v}, x0", v = out(reg) v, out("x0") _, options(nostack))
    };
    v
}

fn brk42() -> u64 {
    let v: u64;
    // SAFETY: a breakpoint; the handler moves the pc past it and sets x0.
    unsafe {
        asm!("mov x0, #1", "brk #0x42", "mov {v}, x0", v = out(reg) v, out("x0") _, options(nostack))
    };
    v
}

/// The misaligned address `ldar_misaligned` loads from.
static MISALIGNED: AtomicU64 = AtomicU64::new(0);

fn ldar_misaligned() -> u64 {
    let words = [0u64; 2];
    let at = words.as_ptr() as u64 + 1;
    MISALIGNED.store(at, Ordering::SeqCst);
    let v: u64;
    // SAFETY: a load-acquire from a misaligned address: an alignment fault, whose handler
    // moves the pc past it and sets x0; the address is within `words`.
    unsafe {
        asm!("mov x0, #1", "ldar x0, [{a}]", "mov {v}, x0", a = in(reg) at, v = out(reg) v, out("x0") _, options(nostack));
    }
    core::hint::black_box(&words);
    v
}

fn svc7() -> u64 {
    let v: u64;
    // SAFETY: `svc #7` is no trap: EXC_SOFTWARE; the handler sets x0, the result.
    unsafe {
        asm!("mov x0, #1", "svc #7", "mov {v}, x0", v = out(reg) v, out("x0") _, out("x8") _, options(nostack))
    };
    v
}

fn bad_trap() -> u64 {
    // SAFETY: no such trap: EXC_SOFTWARE; the handler sets x0, the result.
    unsafe { traps::syscall(BAD_TRAP, [1, 0, 0, 0, 0, 0]) }.x0
}

/// Run `f` in a new thread whose exception port is `port` (null: none) and return its
/// result.
fn in_thread(port: PortName, f: fn() -> u64) -> Result<u64, KernReturn> {
    let h = thread::spawn(move || {
        if port != PortName::NULL {
            set_thread_port(port)?;
        }
        Ok(f())
    })?;
    h.join()
}

static C: Seen = Seen::new();
/// Handler A's port, for the thread bodies that are plain functions.
static PA: AtomicU32 = AtomicU32::new(0);

/// Messages queued on `port` (`mach_port_get_receive_status`).
fn msgcount(port: PortName) -> Option<i32> {
    const STATUS_MSGCOUNT: usize = 4;
    mach_port::mach_port_get_receive_status(&mut t(), &ipc::task_self(), port)
        .ok()
        .map(|o| o.status[STATUS_MSGCOUNT])
}

/// An exception port whose queue is full (nobody receives yet): the request is queued past
/// the limit and the faulting thread waits for the reply; `thread_abort` does not end that
/// wait; once served, the thread goes on, and asked exactly once.
fn full_queue_and_abort(c: &mut Checks) {
    let Some(pc) = new_port() else {
        c.check(false, "a third port", format_args!("refused"));
        return;
    };
    let mut m = armach_tests::msg::Msg::new();
    let filler = |m: &mut armach_tests::msg::Msg, opt: u32| {
        m.header(
            libmach::abi::message::MACH_MSG_TYPE_COPY_SEND as u32,
            pc,
            PortName::NULL,
            FILLER_ID,
        );
        armach_tests::msg::mach_msg(m, opt, 32, 0, PortName::NULL, 0)
    };
    for _ in 0..5 {
        let _ = filler(&mut m, option::SEND_MSG);
    }
    c.check_eq(
        "the port's queue is full: a sixth message times out",
        filler(&mut m, option::SEND_MSG | option::SEND_TIMEOUT),
        KernReturn::SendTimedOut,
    );
    C.set(Action::Skip);
    let h = match thread::spawn(move || {
        set_thread_port(pc)?;
        Ok::<u64, KernReturn>(udf())
    }) {
        Ok(h) => h,
        Err(e) => {
            c.check(false, "spawn", format_args!("{e:?}"));
            return;
        }
    };
    let queued = armach_tests::wait_until(10_000, || msgcount(pc) == Some(6));
    c.check(
        queued,
        "the request is queued past the full queue's limit",
        format_args!("msgcount {:?}", msgcount(pc)),
    );
    c.check_eq(
        "thread_abort of the thread waiting for the reply",
        mach::thread_abort(&mut t(), h.thread()),
        Ok(()),
    );
    // The five fillers, then the request: served here.
    let mut req = exc::Buf::new();
    let mut reply = exc::Buf::new();
    let mut ids = alloc::vec::Vec::new();
    for _ in 0..6 {
        let r = exc::receive(&mut req, pc, Some(10_000));
        if r != KernReturn::Success {
            c.check_eq("receive from the full port", r, KernReturn::Success);
            break;
        }
        ids.push(word32(&req.0, 28) as i32);
    }
    c.check_eq(
        "five fillers, then the exception",
        &ids[..],
        &[
            FILLER_ID, FILLER_ID, FILLER_ID, FILLER_ID, FILLER_ID, RAISE_ID,
        ][..],
    );
    if ids.last() == Some(&RAISE_ID) {
        let sent = exc::answer(&mut Handler { seen: &C }, &req, &mut reply, None);
        c.check_eq("reply sent", sent, Some(KernReturn::Success));
        c.check_eq(
            "after the abort, the thread still took the answer and went on",
            h.join(),
            Ok(MAGIC_X0),
        );
        c.check_eq("asked once", C.count(), 1);
        c.check_eq("nothing more on the port", msgcount(pc), Some(0));
    }
    let _ = mach_port::mach_port_destroy(&mut t(), &ipc::task_self(), pc);
}

fn main(_args: &Args) -> i32 {
    let mut c = Checks::new("exc");
    let (Some(pa), Some(pb)) = (new_port(), new_port()) else {
        c.check(false, "two ports", format_args!("refused"));
        return c.finish();
    };
    let ha = thread::spawn(move || serve(&A, pa));
    let hb = thread::spawn(move || serve(&B, pb));
    let (Ok(ha), Ok(hb)) = (ha, hb) else {
        c.check(false, "handler threads", format_args!("refused"));
        return c.finish();
    };
    let me = traps::mach_task_self();
    PA.store(pa.0, Ordering::SeqCst);

    // Handler A resumes the thread.
    A.set(Action::MapPage);
    let got = in_thread(pa, load_hole);
    c.check_eq(
        "load from an unmapped page, mapped by the handler",
        got,
        Ok(MAGIC_MAP),
    );
    c.check_eq(
        "A told EXC_BAD_ACCESS, KERN_INVALID_ADDRESS, the address",
        A.told(),
        (
            EXC_BAD_ACCESS,
            KernReturn::InvalidAddress.code() as u32,
            HOLE + 8,
        ),
    );
    c.check_eq(
        "A got this task's port",
        A.task.load(Ordering::SeqCst),
        me.0,
    );

    A.set(Action::Skip);
    let h = thread::spawn(move || {
        set_thread_port(pa)?;
        Ok::<u64, KernReturn>(udf())
    });
    match h {
        Ok(h) => {
            let name = h.port().0;
            c.check_eq(
                "udf #0: the thread goes on with x0 set",
                h.join(),
                Ok(MAGIC_X0),
            );
            c.check_eq(
                "A told EXC_BAD_INSTRUCTION, EXC_AARCH64_UNK",
                A.told(),
                (EXC_BAD_INSTRUCTION, EXC_AARCH64_UNK, 0),
            );
            c.check_eq(
                "A got the faulting thread's port",
                A.thread.load(Ordering::SeqCst),
                name,
            );
        }
        Err(e) => {
            c.check(false, "spawn", format_args!("{e:?}"));
        }
    }
    let got = in_thread(pa, brk42);
    c.check_eq("brk #0x42: the thread goes on", got, Ok(MAGIC_X0));
    c.check_eq(
        "A told EXC_BREAKPOINT, EXC_AARCH64_BRK, the comment",
        A.told(),
        (EXC_BREAKPOINT, EXC_AARCH64_BRK, 0x42),
    );
    let got = in_thread(pa, ldar_misaligned);
    c.check_eq(
        "ldar from a misaligned address: the thread goes on",
        got,
        Ok(MAGIC_X0),
    );
    c.check_eq(
        "A told EXC_BAD_ACCESS, EXC_AARCH64_AL, the address",
        A.told(),
        (
            EXC_BAD_ACCESS,
            EXC_AARCH64_AL,
            MISALIGNED.load(Ordering::SeqCst),
        ),
    );
    A.set(Action::SetX0);
    let got = in_thread(pa, bad_trap);
    c.check_eq(
        "unknown trap 9999: x0 as the handler set it",
        got,
        Ok(MAGIC_X0),
    );
    c.check_eq(
        "A told EXC_SOFTWARE, EXC_AARCH64_SVC, immediate 0",
        A.told(),
        (EXC_SOFTWARE, EXC_AARCH64_SVC, 0),
    );
    let got = in_thread(pa, svc7);
    c.check_eq("svc #7: x0 as the handler set it", got, Ok(MAGIC_X0));
    c.check_eq(
        "A told EXC_SOFTWARE, EXC_AARCH64_SVC, immediate 7",
        A.told(),
        (EXC_SOFTWARE, EXC_AARCH64_SVC, 7),
    );

    // Precedence: the thread's port, then the task's.
    c.check_eq(
        "task_set_special_port(TASK_EXCEPTION_PORT, B)",
        set_task_port(pb),
        Ok(()),
    );
    A.set(Action::Skip);
    B.set(Action::Skip);
    let (a0, b0) = (A.count(), B.count());
    let got = in_thread(pa, udf);
    c.check_eq(
        "thread port and task port: only the thread's handler asked",
        (got, A.count() - a0, B.count() - b0),
        (Ok(MAGIC_X0), 1, 0),
    );
    let got = in_thread(PortName::NULL, udf);
    c.check_eq(
        "task port only: the task's handler asked",
        (got, A.count() - a0, B.count() - b0),
        (Ok(MAGIC_X0), 1, 1),
    );
    A.set(Action::Fail);
    let got = in_thread(pa, udf);
    c.check_eq(
        "thread's handler fails: the task's asked next, and resumes it",
        (got, A.count() - a0, B.count() - b0),
        (Ok(MAGIC_X0), 2, 2),
    );
    c.check_eq(
        "task_set_special_port(TASK_EXCEPTION_PORT, null)",
        set_task_port(PortName::NULL),
        Ok(()),
    );

    full_queue_and_abort(&mut c);

    // Cases nobody resumes: the task ends (GNU Mach `exception_no_server`), so each runs
    // in a task of its own, a child whose thread breaks at `brk #which`.
    let dead = new_port();
    for (which, action, what) in [
        (
            0x77u16,
            Some(Action::Fail),
            "EXC_BREAKPOINT code 1 subcode 0x77; the handler answered 5",
        ),
        (
            0x78,
            Some(Action::BadReply),
            "EXC_BREAKPOINT code 1 subcode 0x78; the handler sent no valid reply",
        ),
        (
            0x79,
            None,
            "EXC_BREAKPOINT code 1 subcode 0x79 (no handler)",
        ),
        (
            0x7a,
            None,
            "EXC_BREAKPOINT code 1 subcode 0x7a (dead exception port)",
        ),
        (
            0x7c,
            None,
            "EXC_BREAKPOINT code 1 subcode 0x7c; the handler answered -303 (its own task port)",
        ),
    ] {
        c.note(format_args!("expecting {what}"));
        if let Some(a) = action {
            A.set(a);
        }
        let a0 = A.count();
        let child = match Child::new(&[insn::brk(which), insn::B_SELF]) {
            Ok(child) => child,
            Err(e) => {
                c.check(false, "child task", format_args!("{what}: {e:?}"));
                continue;
            }
        };
        let port = match which {
            0x79 => None,
            0x7a => dead,
            0x7c => Some(child.task.name()),
            _ => Some(pa),
        };
        if let Some(port) = port {
            c.check_eq(
                &alloc::format!("the child thread's exception port ({what})"),
                child.set_exception_port(port),
                Ok(()),
            );
        }
        if which == 0x7a {
            // The exception port dies before the fault.
            c.check_eq(
                "mach_port_destroy of the exception port",
                mach_port::mach_port_destroy(&mut t(), &ipc::task_self(), port.unwrap_or_default()),
                Ok(()),
            );
        }
        c.check_eq(
            &alloc::format!("child started ({what})"),
            child.start(child.code, &[]),
            Ok(()),
        );
        c.check_eq(
            &alloc::format!("child thread and task gone ({what})"),
            child.wait_gone(),
            Ok(()),
        );
        let asked = if action.is_some() { 1 } else { 0 };
        c.check_eq(
            &alloc::format!("requests to A ({what})"),
            A.count() - a0,
            asked,
        );
        if action.is_some() {
            c.check_eq(
                &alloc::format!("A told EXC_BREAKPOINT ({what})"),
                A.told(),
                (EXC_BREAKPOINT, EXC_AARCH64_BRK, u64::from(which)),
            );
            c.check_eq(
                &alloc::format!("A got the child's task port ({what})"),
                A.task.load(Ordering::SeqCst) != me.0,
                true,
            );
        }
    }

    // A handler that terminates the faulting thread instead of answering, then one that
    // answers after terminating it: the thread's wait ends and it is gone, with no report;
    // this task goes on.
    static SURVIVED: AtomicBool = AtomicBool::new(false);
    for (action, what) in [
        (Action::Terminate, "terminate"),
        (Action::TerminateReply, "terminate, then reply"),
    ] {
        A.set(action);
        let a0 = A.count();
        let body: fn() = if action == Action::Terminate {
            || {
                let _ = set_thread_port(PortName(PA.load(Ordering::SeqCst)));
                // SAFETY: a breakpoint; the handler terminates this thread there.
                unsafe { asm!("brk #0x7b", options(nostack)) };
                SURVIVED.store(true, Ordering::SeqCst);
            }
        } else {
            || {
                let _ = set_thread_port(PortName(PA.load(Ordering::SeqCst)));
                // SAFETY: a breakpoint; the handler terminates this thread there.
                unsafe { asm!("brk #0x7d", options(nostack)) };
                SURVIVED.store(true, Ordering::SeqCst);
            }
        };
        match thread::spawn(body) {
            Ok(h) => {
                let gone = armach_tests::wait_thread_terminated(h.port());
                c.check_eq(
                    &alloc::format!("thread terminated by its handler ({what})"),
                    gone,
                    Ok(()),
                );
                // Never joined (its closure did not return): dropping the handle detaches it.
                drop(h);
                c.check(
                    !SURVIVED.load(Ordering::SeqCst),
                    "no instruction ran after the fault",
                    format_args!("{what}"),
                );
                c.check_eq(&alloc::format!("requests to A ({what})"), A.count() - a0, 1);
                let subcode = if action == Action::Terminate {
                    0x7b
                } else {
                    0x7d
                };
                c.check_eq(
                    &alloc::format!("A told EXC_BREAKPOINT ({what})"),
                    A.told(),
                    (EXC_BREAKPOINT, EXC_AARCH64_BRK, subcode),
                );
            }
            Err(e) => {
                c.check(false, "spawn", format_args!("{e:?}"));
            }
        }
    }
    // The handler records what the send returned once it is done.
    armach_tests::wait_until(10_000, || {
        REPLY_AFTER_TERMINATE.load(Ordering::SeqCst) != u32::MAX
    });
    c.check_eq(
        "the reply after thread_terminate is sent, not refused",
        KernReturn::from_code(REPLY_AFTER_TERMINATE.load(Ordering::SeqCst) as i32),
        Some(KernReturn::Success),
    );
    c.check_eq("B asked nothing more", B.count(), 2);
    c.check_eq("handler A's own steps", A.error.load(Ordering::SeqCst), 0);
    c.check_eq("handler B's own steps", B.error.load(Ordering::SeqCst), 0);

    // Stop the handlers.
    for port in [pa, pb] {
        let mut m = armach_tests::msg::Msg::new();
        m.header(
            libmach::abi::message::MACH_MSG_TYPE_COPY_SEND as u32,
            port,
            PortName::NULL,
            STOP_ID,
        );
        let r = armach_tests::msg::mach_msg(&mut m, option::SEND_MSG, 32, 0, PortName::NULL, 0);
        c.check_eq("stop message sent", r, KernReturn::Success);
    }
    ha.join();
    hb.join();
    c.finish()
}
