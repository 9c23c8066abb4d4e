//! The console device as msh uses it: opened by name on the device master port, written in
//! `device_write_inband` pieces of at most 128 bytes, read waiting (the shell's lines) or
//! not (`D_NOWAIT`: `top` looking for a key). Not a terminal: no modes, no echo of its own
//! (the line editor echoes).

use libmach::KernReturn;
use libmach::abi::device::{D_NOWAIT, D_READ, D_WOULD_BLOCK, D_WRITE, IO_INBAND_MAX};
use libmach::ipc::{self, SendRight};
use libmach::mig::device;

pub struct Console {
    device: SendRight,
}

impl Console {
    /// `device_open("console")` on the master port.
    pub fn open(master: &SendRight) -> Result<Self, KernReturn> {
        let out = device::device_open(&mut ipc::transport(), master, D_READ | D_WRITE, c"console")?;
        Ok(Self { device: out.device })
    }

    /// Writes all of `bytes` (errors dropped: the console is where they would be reported).
    pub fn write(&self, bytes: &[u8]) {
        for chunk in bytes.chunks(IO_INBAND_MAX) {
            let mut rest = chunk;
            while !rest.is_empty() {
                match device::device_write_inband(&mut ipc::transport(), &self.device, 0, 0, rest) {
                    Ok(o) if o.bytes_written > 0 => {
                        rest = &rest[(o.bytes_written as usize).min(rest.len())..];
                    }
                    _ => return,
                }
            }
        }
    }

    pub fn write_str(&self, s: &str) {
        self.write(s.as_bytes());
    }

    /// Waits for input and returns what is there (at least one byte).
    pub fn read(&self, buf: &mut [u8; IO_INBAND_MAX]) -> Result<usize, KernReturn> {
        self.read_mode(0, buf)
    }

    /// What is there now, possibly nothing.
    pub fn poll(&self, buf: &mut [u8; IO_INBAND_MAX]) -> Result<usize, KernReturn> {
        match self.read_mode(D_NOWAIT, buf) {
            Err(kr) if kr == D_WOULD_BLOCK => Ok(0),
            other => other,
        }
    }

    fn read_mode(&self, mode: u32, buf: &mut [u8; IO_INBAND_MAX]) -> Result<usize, KernReturn> {
        let out = device::device_read_inband(
            &mut ipc::transport(),
            &self.device,
            mode,
            0,
            IO_INBAND_MAX as i32,
            buf,
        )?;
        Ok((out.data_count as usize).min(buf.len()))
    }
}
