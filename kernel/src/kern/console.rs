//! The kernel console: the UART the device tree names as `stdout-path`, `print!`-style
//! output, and the `log` backend (levels from `loglevel=`). Output from different CPUs is
//! serialised line by line. Input comes through the UART's receive interrupt into a ring
//! (`kern::device::InputRing`) that the "console" device (`ConsoleDevice`) reads.

use crate::arch::timer;
use crate::devtree::{UartInfo, UartKind};
use crate::drivers::Uart;
use crate::drivers::mini_uart::MiniUart;
use crate::drivers::pl011::Pl011;
use crate::kern::device::{DeviceOps, InputRing};
use crate::kern::sched::wait::WaitResult;
use crate::kern::sched::{self, waitq::Event};
use crate::percpu;
use crate::sync::{IrqSpinLock, LockLevel};
use core::fmt::{self, Write};
use core::sync::atomic::{AtomicU32, Ordering};
use mach_abi::KernReturn;

enum Port {
    None,
    Pl011(Pl011),
    MiniUart(MiniUart),
}

impl Port {
    fn put_byte(&self, b: u8) {
        match self {
            Port::None => {}
            Port::Pl011(u) => u.put_byte(b),
            Port::MiniUart(u) => u.put_byte(b),
        }
    }

    fn get_byte(&self) -> Option<u8> {
        match self {
            Port::None => None,
            Port::Pl011(u) => u.get_byte(),
            Port::MiniUart(u) => u.get_byte(),
        }
    }

    fn enable_rx_interrupt(&self) -> bool {
        match self {
            Port::None => return false,
            Port::Pl011(u) => u.enable_rx_interrupt(),
            Port::MiniUart(u) => u.enable_rx_interrupt(),
        }
        true
    }
}

/// Bytes received and not read yet. Never taken together with `PORT`.
static INPUT: IrqSpinLock<InputRing> = IrqSpinLock::new(LockLevel::Console, InputRing::new());
/// The receive interrupt's INTID once input is on (`u32::MAX`: no input).
static INPUT_INTID: AtomicU32 = AtomicU32::new(u32::MAX);

/// What a reader waits on until input arrives.
fn input_event() -> Event {
    Event {
        object: core::ptr::addr_of!(INPUT) as u64,
        key: 0,
    }
}

/// Take input through interrupt `intid` (the tree's for the console UART): the UART
/// raises it while received bytes wait. False if there is no console.
pub fn enable_input(intid: u32) -> bool {
    let on = PORT.lock().enable_rx_interrupt();
    if on {
        INPUT_INTID.store(intid, Ordering::Release);
    }
    on
}

/// The receive interrupt's INTID, if input is on.
pub fn input_intid() -> Option<u32> {
    Some(INPUT_INTID.load(Ordering::Acquire)).filter(|&i| i != u32::MAX)
}

/// The receive interrupt: every byte the UART holds goes into the ring (a full ring drops
/// them), then the readers are woken.
pub fn input_interrupt() {
    loop {
        let mut got = [0u8; 32];
        let mut n = 0;
        {
            let port = PORT.lock();
            while n < got.len() {
                match port.get_byte() {
                    Some(b) => {
                        got[n] = b;
                        n += 1;
                    }
                    None => break,
                }
            }
        }
        if n == 0 {
            break;
        }
        let mut input = INPUT.lock();
        for &b in &got[..n] {
            input.push(b);
        }
        drop(input);
        if n < got.len() {
            break;
        }
    }
    sched::thread_wakeup(input_event(), true);
}

/// Wait, interruptibly, until input is buffered: true when there is some, false when the
/// wait was interrupted (`thread_abort`, termination) or the console takes no input.
pub fn wait_for_input() -> bool {
    if input_intid().is_none() {
        return !INPUT.lock().is_empty();
    }
    let me = sched::current_thread();
    loop {
        if !INPUT.lock().is_empty() {
            return true;
        }
        let Ok(seq) = sched::assert_wait(Some(input_event()), None, true) else {
            return false;
        };
        // Input that came between the check and the wait ends it here.
        if !INPUT.lock().is_empty() {
            sched::clear_wait(&me, Some(seq), WaitResult::Awakened);
            return true;
        }
        if me.should_terminate() {
            sched::clear_wait(&me, Some(seq), WaitResult::Interrupted);
            return false;
        }
        if sched::thread_block() != WaitResult::Awakened {
            return false;
        }
    }
}

/// The "console" device: writes go out as `mach_print`'s do; reads take what the ring
/// holds.
pub struct ConsoleDevice;

impl DeviceOps for ConsoleDevice {
    fn write(&self, data: &[u8]) -> Result<usize, KernReturn> {
        print_bytes(data);
        Ok(data.len())
    }
    fn read(&self, out: &mut [u8]) -> Result<usize, KernReturn> {
        Ok(INPUT.lock().take(out))
    }
    fn readable(&self) -> bool {
        !INPUT.lock().is_empty()
    }
}

static PORT: IrqSpinLock<Port> = IrqSpinLock::new(LockLevel::Console, Port::None);

/// Start the console on the UART the tree names; without one the kernel runs silent.
pub fn init(uart: Option<UartInfo>) {
    let Some(uart) = uart else { return };
    let Ok(va) = crate::arch::mmu::map_device(
        crate::mm::PhysAddr(uart.regs.base),
        uart.regs.size.max(0x100),
    ) else {
        return;
    };
    // SAFETY: `va` maps the UART's registers for good (the device window is never unmapped).
    let port = unsafe {
        match uart.kind {
            UartKind::Pl011 => Port::Pl011(Pl011::new(va.as_u64() as usize)),
            UartKind::MiniUart => Port::MiniUart(MiniUart::new(va.as_u64() as usize)),
        }
    };
    *PORT.lock() = port;
}

struct Writer<'a>(&'a Port);

impl Write for Writer<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for b in s.bytes() {
            if b == b'\n' {
                self.0.put_byte(b'\r');
            }
            self.0.put_byte(b);
        }
        Ok(())
    }
}

/// Print formatted text (used by `print!` and `println!`).
pub fn print(args: fmt::Arguments<'_>) {
    let port = PORT.lock();
    let _ = Writer(&port).write_fmt(args);
}

/// Print raw bytes (a user program's `mach_print`); invalid UTF-8 goes out as it is. The
/// console is taken a line (at most 128 bytes) at a time, so that a long string on a slow
/// UART does not keep interrupts masked and other CPUs waiting for all of its length.
pub fn print_bytes(bytes: &[u8]) {
    for piece in bytes
        .split_inclusive(|&b| b == b'\n')
        .flat_map(|line| line.chunks(128))
    {
        let port = PORT.lock();
        for &b in piece {
            if b == b'\n' {
                port.put_byte(b'\r');
            }
            port.put_byte(b);
        }
    }
}

/// Print even if another CPU holds the console (it may have died holding it): after a
/// bounded wait the output goes out unlocked. For panics and fatal exceptions only.
pub fn print_emergency(args: fmt::Arguments<'_>) {
    for _ in 0..1_000_000 {
        if let Some(port) = PORT.try_lock() {
            let _ = Writer(&port).write_fmt(args);
            return;
        }
        crate::sync::cpu_relax();
    }
    // SAFETY: last resort on a dying kernel: the holder is presumed stuck; interleaved
    // bytes are acceptable, a silent death is not.
    let port = unsafe { &*PORT.data_ptr() };
    let _ = Writer(port).write_fmt(args);
}

#[macro_export]
macro_rules! print {
    ($($arg:tt)*) => { $crate::kern::console::print(format_args!($($arg)*)) };
}

#[macro_export]
macro_rules! println {
    () => { $crate::print!("\n") };
    ($($arg:tt)*) => { $crate::kern::console::print(format_args!("{}\n", format_args!($($arg)*))) };
}

struct Logger;

impl log::Log for Logger {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &log::Record<'_>) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let freq = timer::frequency().max(1);
        let now = timer::counter();
        let micros = (now % freq) * 1_000_000 / freq;
        print(format_args!(
            "[{:5}.{:06}] cpu{} {:<5} {}\n",
            now / freq,
            micros,
            percpu::current_cpu(),
            record.level(),
            record.args()
        ));
    }

    fn flush(&self) {}
}

static LOGGER: Logger = Logger;

/// Install the `log` backend at `level`.
pub fn init_log(level: log::LevelFilter) {
    let _ = log::set_logger(&LOGGER);
    log::set_max_level(level);
}
