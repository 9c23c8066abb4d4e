//! The BCM2835/BCM2711 auxiliary mini UART (BCM2835 ARM Peripherals, section 2.2), the
//! Raspberry Pi 4's default console: polled transmit, and receive through its receive
//! interrupt. The firmware (`enable_uart=1`) has set it up; the device tree's `reg` points
//! at its I/O register.

use tock_registers::interfaces::{Readable, Writeable};
use tock_registers::register_bitfields;
use tock_registers::register_structs;
use tock_registers::registers::{ReadOnly, ReadWrite};

register_bitfields! {u32,
    LSR [
        /// The transmit FIFO can accept at least one byte.
        TX_EMPTY OFFSET(5) NUMBITS(1) [],
        /// The receive FIFO holds at least one byte.
        DATA_READY OFFSET(0) NUMBITS(1) []
    ],
    /// AUX_MU_IER_REG (section 2.2.2, with the errata's bit order): bit 0 enables the
    /// receive interrupt, bit 1 the transmit one.
    IER [
        RX OFFSET(0) NUMBITS(1) [],
        TX OFFSET(1) NUMBITS(1) []
    ]
}

register_structs! {
    #[allow(non_snake_case)]
    pub Registers {
        (0x00 => IO: ReadWrite<u32>),
        (0x04 => IER: ReadWrite<u32, IER::Register>),
        (0x08 => _reserved0),
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

    fn get_byte(&self) -> Option<u8> {
        if !self.regs().LSR.is_set(LSR::DATA_READY) {
            return None;
        }
        Some(self.regs().IO.get() as u8)
    }

    fn enable_rx_interrupt(&self) {
        self.regs().IER.write(IER::RX::SET + IER::TX::CLEAR);
    }
}
