//! A thread alone in a task of its own, running a few instructions the test hands it: for
//! faults that end their task (a fault nobody handles terminates the task, as in GNU Mach),
//! so that the test program itself goes on. The task is made empty by `task_create`, given
//! a code page (read and execute) and a data page (read and write), and one thread created
//! suspended; the test sets its registers and resumes it.

use alloc::vec;
use libmach::abi::thread_state::{AARCH64_THREAD_STATE, Aarch64ThreadState};
use libmach::ipc::{self, SendRight};
use libmach::mig::mach;
use libmach::{KernReturn, PortName};

const PAGE: u64 = 4096;
/// `VM_PROT_READ | VM_PROT_EXECUTE`, `VM_PROT_READ`.
const PROT_RX: i32 = 1 | 4;
pub const PROT_R: i32 = 1;

/// Instruction encodings the tests use.
pub mod insn {
    /// `ldr x0, [x1]`.
    pub const LDR_X0_X1: u32 = 0xf940_0020;
    /// `str xzr, [x1]`.
    pub const STR_XZR_X1: u32 = 0xf900_003f;
    /// `svc #0`.
    pub const SVC_0: u32 = 0xd400_0001;
    /// `udf #0`.
    pub const UDF_0: u32 = 0x0000_0000;
    /// `b .`: where a thread that wrongly went on after its fault would stay.
    pub const B_SELF: u32 = 0x1400_0000;

    /// `brk #imm`.
    pub const fn brk(imm: u16) -> u32 {
        0xd420_0000 | ((imm as u32) << 5)
    }
}

/// The task, its thread, and the addresses of its two pages.
pub struct Child {
    pub task: SendRight,
    pub thread: SendRight,
    pub code: u64,
    pub data: u64,
}

fn t() -> ipc::Client<ipc::Trap> {
    ipc::transport()
}

impl Child {
    /// A new task whose code page holds `code`, and its suspended thread.
    pub fn new(code: &[u32]) -> Result<Child, KernReturn> {
        let task = mach::task_create(&mut t(), &ipc::task_self(), false)?.child_task;
        let mut at = 0u64;
        mach::vm_allocate(&mut t(), &task, &mut at, 2 * PAGE, true)?;
        let mut page = vec![0u8; PAGE as usize];
        for (i, w) in code.iter().take(PAGE as usize / 4).enumerate() {
            page[4 * i..4 * i + 4].copy_from_slice(&w.to_le_bytes());
        }
        mach::vm_write(&mut t(), &task, at, &page)?;
        mach::vm_protect(&mut t(), &task, at, PAGE, false, PROT_RX)?;
        let thread = mach::thread_create(&mut t(), &task)?.child_thread;
        Ok(Child {
            task,
            thread,
            code: at,
            data: at + PAGE,
        })
    }

    /// Set the thread's exception port.
    pub fn set_exception_port(&self, port: PortName) -> Result<(), KernReturn> {
        let port = core::mem::ManuallyDrop::new(SendRight::from_name(port));
        mach::thread_set_special_port(&mut t(), &self.thread, 3, &port)
    }

    /// Start the thread at `pc` with the registers `regs` (index, value) set, the rest zero
    /// and the stack at the top of the data page.
    pub fn start(&self, pc: u64, regs: &[(usize, u64)]) -> Result<(), KernReturn> {
        self.start_with_sp(pc, self.data + PAGE, regs)
    }

    /// As [`start`](Self::start), with the stack pointer `sp`.
    pub fn start_with_sp(&self, pc: u64, sp: u64, regs: &[(usize, u64)]) -> Result<(), KernReturn> {
        let mut state = Aarch64ThreadState {
            pc,
            sp,
            ..Aarch64ThreadState::default()
        };
        for &(i, v) in regs {
            state.x[i] = v;
        }
        mach::thread_set_state(
            &mut t(),
            &self.thread,
            AARCH64_THREAD_STATE as i32,
            &state.to_words(),
        )?;
        mach::thread_resume(&mut t(), &self.thread)
    }

    /// Wait until both the thread and the task are gone.
    pub fn wait_gone(&self) -> Result<(), KernReturn> {
        crate::wait_thread_terminated(self.thread.name())?;
        crate::wait_thread_terminated(self.task.name())
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        let _ = mach::task_terminate(&mut t(), &self.task);
    }
}
