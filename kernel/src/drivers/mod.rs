//! Device drivers, each found through the device tree: the console UARTs (PL011, BCM2835
//! mini UART) and the interrupt controllers (GICv2/GIC-400, GICv3).

pub mod gic;
pub mod mini_uart;
pub mod pl011;

/// The console's serial port: polled output, interrupt-driven input.
pub trait Uart: Sync {
    /// Send one byte, waiting while the transmit FIFO is full.
    fn put_byte(&self, byte: u8);
    /// The next received byte, if one is waiting.
    fn get_byte(&self) -> Option<u8>;
    /// Raise the UART's interrupt while received bytes wait (reading them lowers it).
    fn enable_rx_interrupt(&self);
}
