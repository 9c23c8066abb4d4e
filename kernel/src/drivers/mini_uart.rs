//! The BCM2835/BCM2711 auxiliary mini UART (BCM2835 ARM Peripherals, section 2.2), the
//! Raspberry Pi 4's default console, transmit only, polled. The firmware (`enable_uart=1`)
//! has set it up; the device tree's `reg` points at its I/O register.

use tock_registers::interfaces::{Readable, Writeable};
use tock_registers::register_bitfields;
use tock_registers::register_structs;
use tock_registers::registers::{ReadOnly, ReadWrite};

register_bitfields! {u32,
    LSR [
        /// The transmit FIFO can accept at least one byte.
        TX_EMPTY OFFSET(5) NUMBITS(1) []
    ]
}

register_structs! {
    #[allow(non_snake_case)]
    pub Registers {
        (0x00 => IO: ReadWrite<u32>),
        (0x04 => _reserved0),
        (0x14 => LSR: ReadOnly<u32, LSR::Register>),
        (0x18 => @END),
    }
}

pub struct MiniUart {
    regs: *const Registers,
}

// SAFETY: MMIO; concurrent writers are serialised by the console lock.
unsafe impl Sync for MiniUart {}
// SAFETY: as above.
unsafe impl Send for MiniUart {}

impl MiniUart {
    /// # Safety
    /// `base` must map the mini UART's I/O register block for the kernel's lifetime.
    pub unsafe fn new(base: usize) -> Self {
        MiniUart {
            regs: base as *const Registers,
        }
    }

    fn regs(&self) -> &Registers {
        // SAFETY: `new`'s contract.
        unsafe { &*self.regs }
    }
}

impl super::Uart for MiniUart {
    fn put_byte(&self, byte: u8) {
        while !self.regs().LSR.is_set(LSR::TX_EMPTY) {
            core::hint::spin_loop();
        }
        self.regs().IO.set(byte as u32);
    }
}
