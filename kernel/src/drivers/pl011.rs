//! Arm PrimeCell UART (PL011) (Arm DDI 0183): polled transmit, and receive through its
//! receive and receive-timeout interrupts. The firmware or QEMU has set the baud rate; the
//! driver only makes sure transmitter and receiver are enabled.

use tock_registers::interfaces::{ReadWriteable, Readable, Writeable};
use tock_registers::register_bitfields;
use tock_registers::register_structs;
use tock_registers::registers::{ReadOnly, ReadWrite, WriteOnly};

register_bitfields! {u32,
    FR [
        /// Transmit FIFO full.
        TXFF OFFSET(5) NUMBITS(1) [],
        /// Receive FIFO empty.
        RXFE OFFSET(4) NUMBITS(1) [],
        /// Busy transmitting.
        BUSY OFFSET(3) NUMBITS(1) []
    ],
    CR [
        RXE OFFSET(9) NUMBITS(1) [],
        TXE OFFSET(8) NUMBITS(1) [],
        UARTEN OFFSET(0) NUMBITS(1) []
    ],
    /// Interrupt mask set/clear, and interrupt clear (DDI 0183 3.3.10, 3.3.13).
    INT [
        /// Receive timeout.
        RT OFFSET(6) NUMBITS(1) [],
        /// Receive.
        RX OFFSET(4) NUMBITS(1) []
    ]
}

register_structs! {
    #[allow(non_snake_case)]
    pub Registers {
        (0x00 => DR: ReadWrite<u32>),
        (0x04 => _reserved0),
        (0x18 => FR: ReadOnly<u32, FR::Register>),
        (0x1c => _reserved1),
        (0x30 => CR: ReadWrite<u32, CR::Register>),
        (0x34 => _reserved2),
        (0x38 => IMSC: ReadWrite<u32, INT::Register>),
        (0x3c => _reserved3),
        (0x44 => ICR: WriteOnly<u32, INT::Register>),
        (0x48 => @END),
    }
}

pub struct Pl011 {
    regs: *const Registers,
}

// SAFETY: the registers are MMIO; concurrent writers are serialised by the console lock.
unsafe impl Sync for Pl011 {}
// SAFETY: as above; the pointer is to device memory valid for the kernel's lifetime.
unsafe impl Send for Pl011 {}

impl Pl011 {
    /// # Safety
    /// `base` must map a PL011's registers for the rest of the kernel's life.
    pub unsafe fn new(base: usize) -> Self {
        let uart = Pl011 {
            regs: base as *const Registers,
        };
        uart.regs()
            .CR
            .modify(CR::UARTEN::SET + CR::TXE::SET + CR::RXE::SET);
        uart
    }

    fn regs(&self) -> &Registers {
        // SAFETY: `new`'s contract: `regs` maps the device for the kernel's lifetime.
        unsafe { &*self.regs }
    }
}

impl super::Uart for Pl011 {
    fn put_byte(&self, byte: u8) {
        while self.regs().FR.is_set(FR::TXFF) {
            core::hint::spin_loop();
        }
        self.regs().DR.set(byte as u32);
    }

    fn get_byte(&self) -> Option<u8> {
        if self.regs().FR.is_set(FR::RXFE) {
            return None;
        }
        // Bits 8-11 are the byte's error flags; the byte is kept whatever they say.
        Some(self.regs().DR.get() as u8)
    }

    fn enable_rx_interrupt(&self) {
        self.regs().ICR.write(INT::RX::SET + INT::RT::SET);
        self.regs().IMSC.modify(INT::RX::SET + INT::RT::SET);
    }
}
