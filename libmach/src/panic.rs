//! The panic handler: prints `panic: <message and location>` and ends the whole task, as an
//! abort would (`panic = "abort"`; there is no unwinding). It prints no test marker: a test
//! that panics never reaches its success line, which is how the harness sees the failure.

use core::panic::PanicInfo;
use core::sync::atomic::{AtomicBool, Ordering};

use crate::traps;

/// Set by the first panic; a panic while reporting (or in another thread meanwhile) skips
/// the report and only ends the task.
static PANICKING: AtomicBool = AtomicBool::new(false);

#[panic_handler]
fn panic(info: &PanicInfo<'_>) -> ! {
    if !PANICKING.swap(true, Ordering::AcqRel) {
        crate::println!(
            "panic: {} (program {}, cpu {})",
            info,
            crate::start::args().program_name(),
            crate::kern::current_cpu()
        );
    }
    let _ = traps::task_terminate(traps::mach_task_self());
    // task_terminate refused (a kernel bug): stop at least this thread.
    // SAFETY: the program is failing; this thread's stack is abandoned on purpose.
    unsafe { crate::kern::thread_terminate_self() }
}
