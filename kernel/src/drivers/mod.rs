//! Device drivers, each found through the device tree: the console UARTs (PL011, BCM2835
//! mini UART) and the interrupt controllers (GICv2/GIC-400, GICv3).

pub mod gic;
pub mod mini_uart;
pub mod pl011;

/// A polled serial port that the console writes to.
pub trait Uart: Sync {
    /// Send one byte, waiting while the transmit FIFO is full.
    fn put_byte(&self, byte: u8);
}
