//! Out-of-line data a kernel server returns (`mach_port_names`' arrays, GNU Mach's
//! `vm_map_copy_t` of kernel memory): bytes in kernel memory, in pieces of at most a
//! granule listed in a chunked index, so that no heap block is larger than a granule
//! (`mm::kmem`), charged to the task the reply is for until the region is dropped.
//!
//! The reply carries it as an `ipc::OolMemory`; the receive side of `mach_msg` copies it
//! into the receiver's address space with [`KernelRegion::read`].

extern crate alloc;

use crate::ipc::chunk::Chunked;
use crate::ipc::{Charge, Kind, Ledger, OolMemory};
use crate::mm::kmem::GRANULE;
use alloc::sync::Arc;
use alloc::vec::Vec;
use mach_abi::KernReturn;

pub struct KernelRegion {
    pieces: Chunked<Vec<u8>, 0>,
    len: usize,
    _charge: Charge,
}

impl KernelRegion {
    /// An empty region with room for `bytes`, charged to `ledger`: `KERN_RESOURCE_SHORTAGE`
    /// if the ledger refuses or it is too large.
    pub fn with_capacity(ledger: &Arc<dyn Ledger>, bytes: usize) -> Result<Self, KernReturn> {
        let count = bytes.div_ceil(GRANULE);
        let index = Chunked::<Vec<u8>, 0>::blocks_for(count).ok_or(KernReturn::ResourceShortage)?;
        // The pieces, their index, and the box a message holds the region in.
        let charge = Charge::new(ledger, Kind::Message, index + count + 1)?;
        let mut pieces = Chunked::with_capacity(count).map_err(|_| KernReturn::ResourceShortage)?;
        let mut left = bytes;
        for _ in 0..count {
            let size = left.min(GRANULE);
            let mut piece = Vec::new();
            piece
                .try_reserve_exact(size)
                .map_err(|_| KernReturn::ResourceShortage)?;
            // Room for `count` pieces was reserved above.
            if pieces.push(piece).is_err() {
                return Err(KernReturn::ResourceShortage);
            }
            left -= size;
        }
        Ok(KernelRegion {
            pieces,
            len: 0,
            _charge: charge,
        })
    }

    /// Append `data`; `false` (and nothing appended) if it does not fit.
    pub fn push(&mut self, data: &[u8]) -> bool {
        let room: usize = self.pieces.iter().map(|p| p.capacity() - p.len()).sum();
        if room < data.len() {
            return false;
        }
        let mut data = data;
        for i in 0..self.pieces.len() {
            if data.is_empty() {
                break;
            }
            let Some(piece) = self.pieces.get_mut(i) else {
                break;
            };
            let n = (piece.capacity() - piece.len()).min(data.len());
            // Within the reserved capacity: no allocation.
            piece.extend_from_slice(&data[..n]);
            data = &data[n..];
            self.len += n;
        }
        true
    }

    pub fn push_u32(&mut self, v: u32) -> bool {
        self.push(&v.to_le_bytes())
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Copy bytes from `offset` into `out`; `false` if that runs past the end.
    pub fn read(&self, offset: usize, out: &mut [u8]) -> bool {
        let Some(end) = offset.checked_add(out.len()) else {
            return false;
        };
        if end > self.len {
            return false;
        }
        let mut start = 0;
        for piece in self.pieces.iter() {
            let (lo, hi) = (start, start + piece.len());
            start = hi;
            if hi <= offset || lo >= end {
                continue;
            }
            let from = offset.max(lo);
            let to = end.min(hi);
            out[from - offset..to - offset].copy_from_slice(&piece[from - lo..to - lo]);
        }
        true
    }
}

impl OolMemory for KernelRegion {
    fn size(&self) -> u64 {
        self.len as u64
    }
    fn as_any(&self) -> &dyn core::any::Any {
        self
    }
    fn as_any_mut(&mut self) -> &mut dyn core::any::Any {
        self
    }
}

impl core::fmt::Debug for KernelRegion {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "KernelRegion({} bytes)", self.len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ipc::ledger::counting::{CountingLedger, dyn_ledger};

    #[test]
    fn pieces_are_charged_and_read_back() {
        let counting = CountingLedger::unlimited();
        let ledger = dyn_ledger(&counting);
        let mut r = KernelRegion::with_capacity(&ledger, 3 * GRANULE + 4).expect("region");
        // Four pieces, the chunked index (a chunk and its list), the box.
        assert_eq!(counting.total(), 7);
        for i in 0..(3 * GRANULE as u32 / 4 + 1) {
            assert!(r.push_u32(i));
        }
        assert!(!r.push_u32(0), "full");
        let mut w = [0u8; 8];
        assert!(r.read(GRANULE - 4, &mut w));
        assert_eq!(w, [0xff, 0, 0, 0, 0, 1, 0, 0]);
        assert!(!r.read(r.len() - 3, &mut w));
        drop(r);
        assert_eq!(counting.total(), 0);
    }

    #[test]
    fn a_refused_charge_is_a_shortage() {
        let counting = CountingLedger::new(2);
        let ledger = dyn_ledger(&counting);
        assert_eq!(
            KernelRegion::with_capacity(&ledger, 4 * GRANULE).err(),
            Some(KernReturn::ResourceShortage)
        );
        assert_eq!(counting.total(), 0);
    }
}
