//! Console output over the `mach_print` trap: `print!` and `println!` format into a buffer on
//! the stack and hand it to the kernel NUL-terminated, in chunks when it fills. A line that
//! fits one chunk reaches the console in one piece even with other threads printing. No
//! allocation, so it works in the allocator and the panic handler. Not a general writer:
//! NUL bytes in the text are dropped (the kernel would end the string there).

use core::fmt::{self, Write};

use crate::traps;

/// Bytes per `mach_print` call, the terminating NUL included (well under `MACH_PRINT_MAX`).
const CHUNK: usize = 512;

/// A `fmt::Write` that sends full chunks to `mach_print`; [`flush`](Self::flush) sends the
/// rest.
pub struct ConsoleWriter {
    buf: [u8; CHUNK],
    len: usize,
}

impl ConsoleWriter {
    pub const fn new() -> Self {
        Self {
            buf: [0; CHUNK],
            len: 0,
        }
    }

    /// Sends what is buffered.
    pub fn flush(&mut self) {
        if self.len == 0 {
            return;
        }
        self.buf[self.len] = 0;
        // A console that refuses a string has nowhere to report it: drop the error.
        let _ = traps::mach_print_ptr(self.buf.as_ptr());
        self.len = 0;
    }
}

impl Default for ConsoleWriter {
    fn default() -> Self {
        Self::new()
    }
}

impl Write for ConsoleWriter {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for &b in s.as_bytes() {
            if b == 0 {
                continue;
            }
            if self.len == CHUNK - 1 {
                self.flush();
            }
            self.buf[self.len] = b;
            self.len += 1;
        }
        Ok(())
    }
}

/// Formats `args` to the console; what `print!` expands to.
pub fn print_fmt(args: fmt::Arguments<'_>) {
    let mut w = ConsoleWriter::new();
    // ConsoleWriter never fails; a Display impl that does only cuts its own text short.
    let _ = w.write_fmt(args);
    w.flush();
}

/// Prints to the console through `mach_print`.
#[macro_export]
macro_rules! print {
    ($($arg:tt)*) => {
        $crate::print::print_fmt(format_args!($($arg)*))
    };
}

/// Prints a line to the console through `mach_print`.
#[macro_export]
macro_rules! println {
    () => {
        $crate::print::print_fmt(format_args!("\n"))
    };
    ($($arg:tt)*) => {
        $crate::print::print_fmt(format_args!("{}\n", format_args!($($arg)*)))
    };
}
