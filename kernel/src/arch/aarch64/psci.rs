//! PSCI calls (Arm DEN 0022) over `hvc` or `smc`, as the device tree says.

use crate::devtree::PsciConduit;

const CPU_ON_64: u64 = 0xC400_0003;
const SYSTEM_OFF: u64 = 0x8400_0008;

/// PSCI return code for success.
pub const SUCCESS: i64 = 0;

/// One SMC Calling Convention call with instruction `$insn` (`hvc #0` or `smc #0`).
macro_rules! smccc_call {
    ($insn:literal, $x0:ident, $a1:ident, $a2:ident, $a3:ident) => {
        // SAFETY: a PSCI call is a firmware call that follows the SMC calling convention:
        // it clobbers at most x0-x17 and touches no memory of ours.
        unsafe {
            core::arch::asm!(
                $insn,
                inout("x0") $x0, inout("x1") $a1 => _, inout("x2") $a2 => _, inout("x3") $a3 => _,
                out("x4") _, out("x5") _, out("x6") _, out("x7") _, out("x8") _, out("x9") _,
                out("x10") _, out("x11") _, out("x12") _, out("x13") _, out("x14") _,
                out("x15") _, out("x16") _, out("x17") _,
                options(nostack)
            )
        }
    };
}

fn call(conduit: PsciConduit, function: u64, a1: u64, a2: u64, a3: u64) -> i64 {
    let mut x0 = function;
    match conduit {
        PsciConduit::Hvc => smccc_call!("hvc #0", x0, a1, a2, a3),
        PsciConduit::Smc => smccc_call!("smc #0", x0, a1, a2, a3),
    }
    x0 as i64
}

/// Start the CPU with affinity `mpidr` at physical address `entry`.
pub fn cpu_on(conduit: PsciConduit, mpidr: u64, entry: u64, context: u64) -> i64 {
    call(conduit, CPU_ON_64, mpidr, entry, context)
}

/// Power the machine off. Returns only if the firmware refuses.
pub fn system_off(conduit: PsciConduit) {
    call(conduit, SYSTEM_OFF, 0, 0, 0);
}
