//! Arm semihosting (only under a debugger or QEMU with semihosting on; `hlt #0xf000` is
//! undefined on real hardware, so it is used only when the bootarg `exit=semihosting` asks).

const SYS_EXIT_EXTENDED: u64 = 0x20;
const ADP_STOPPED_APPLICATION_EXIT: u64 = 0x2_0026;

/// End the emulation with `status` as QEMU's exit status.
pub fn exit(status: u32) {
    let block = [ADP_STOPPED_APPLICATION_EXIT, status as u64];
    // SAFETY: the semihosting call reads the two-word block and does not return when the
    // host implements it; the bootarg that enables this path says it does.
    unsafe {
        core::arch::asm!("hlt #0xf000", in("x0") SYS_EXIT_EXTENDED, in("x1") block.as_ptr(), options(nostack));
    }
}
