//! The kernel console: the UART the device tree names as `stdout-path`, `print!`-style
//! output, and the `log` backend (levels from `loglevel=`). Output from different CPUs is
//! serialised line by line.

use crate::arch::timer;
use crate::devtree::{UartInfo, UartKind};
use crate::drivers::Uart;
use crate::drivers::mini_uart::MiniUart;
use crate::drivers::pl011::Pl011;
use crate::percpu;
use crate::sync::{IrqSpinLock, LockLevel};
use core::fmt::{self, Write};

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
