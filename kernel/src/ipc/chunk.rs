//! Bounded storage for a message's variable parts (its body bytes, its port slots, its
//! out-of-line regions) in which no heap block is larger than a granule, so that what a
//! message takes from the heap can always be charged and always be had (`mm::kmem`).
//!
//! A [`Chunked`] keeps its first `INLINE` elements in place, the rest in chunks of at most
//! a granule each, listed in an index that is itself at most a granule. All space is
//! reserved when it is made ([`Chunked::with_capacity`], with `try_reserve_exact`, so a
//! failure is an error and not an abort); [`Chunked::blocks_for`] says beforehand how many
//! granules that takes, for the charge. Not for anything else: elements are only pushed,
//! read, written in place and drained.

extern crate alloc;

use crate::mm::kmem::GRANULE;
use alloc::vec::Vec;
use arrayvec::ArrayVec;
use core::mem::size_of;

/// Why storage could not be had.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChunkError {
    /// More elements than the index of one granule can list.
    TooLarge,
    /// The allocator refused (outside the kernel's charged heap only: host tests).
    NoMemory,
}

pub struct Chunked<T, const INLINE: usize> {
    inline: ArrayVec<T, INLINE>,
    chunks: Vec<Vec<T>>,
    /// Elements reserved room for (in place and in chunks).
    capacity: usize,
}

impl<T, const INLINE: usize> Chunked<T, INLINE> {
    /// Elements in one chunk.
    pub const PER_CHUNK: usize = if size_of::<T>() == 0 || size_of::<T>() > GRANULE {
        1
    } else {
        GRANULE / size_of::<T>()
    };
    /// Chunks the index can list.
    pub const MAX_CHUNKS: usize = GRANULE / size_of::<Vec<T>>();
    /// The most elements one store can hold.
    pub const MAX: usize = INLINE + Self::PER_CHUNK * Self::MAX_CHUNKS;

    /// An empty store with room for its in-place elements only.
    pub const fn new() -> Self {
        Chunked {
            inline: ArrayVec::new_const(),
            chunks: Vec::new(),
            capacity: INLINE,
        }
    }

    fn chunks_for(n: usize) -> usize {
        n.saturating_sub(INLINE).div_ceil(Self::PER_CHUNK)
    }

    /// Heap granules a store for `n` elements takes (its chunks and their index), or
    /// `None` if `n` is more than one store can hold.
    pub fn blocks_for(n: usize) -> Option<usize> {
        if n > Self::MAX {
            return None;
        }
        let chunks = Self::chunks_for(n);
        Some(if chunks == 0 { 0 } else { chunks + 1 })
    }

    /// A store with room for `n` elements, all of it allocated now.
    pub fn with_capacity(n: usize) -> Result<Self, ChunkError> {
        if n > Self::MAX {
            return Err(ChunkError::TooLarge);
        }
        let mut s = Self::new();
        let count = Self::chunks_for(n);
        if count == 0 {
            return Ok(s);
        }
        s.chunks
            .try_reserve_exact(count)
            .map_err(|_| ChunkError::NoMemory)?;
        let mut left = n - INLINE;
        for _ in 0..count {
            let size = left.min(Self::PER_CHUNK);
            let mut chunk = Vec::new();
            chunk
                .try_reserve_exact(size)
                .map_err(|_| ChunkError::NoMemory)?;
            s.chunks.push(chunk);
            s.capacity += size;
            left -= size;
        }
        Ok(s)
    }

    pub fn len(&self) -> usize {
        self.inline.len() + self.chunks.iter().map(Vec::len).sum::<usize>()
    }

    /// Whether no element has room outside the store itself (nothing on the heap).
    pub fn in_place(&self) -> bool {
        self.chunks.capacity() == 0
    }

    /// Remove every element (the reserved room stays).
    pub fn clear(&mut self) {
        self.inline.clear();
        for chunk in self.chunks.iter_mut() {
            chunk.clear();
        }
    }

    pub fn is_empty(&self) -> bool {
        self.inline.is_empty()
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Append `v`, or hand it back if the reserved room is used up.
    pub fn push(&mut self, v: T) -> Result<(), T> {
        if !self.inline.is_full() {
            self.inline.push(v);
            return Ok(());
        }
        match self.chunks.iter_mut().find(|c| c.len() < c.capacity()) {
            // Within the reserved capacity: no allocation.
            Some(chunk) => {
                chunk.push(v);
                Ok(())
            }
            None => Err(v),
        }
    }

    /// Remove and return the last element.
    pub fn pop(&mut self) -> Option<T> {
        for chunk in self.chunks.iter_mut().rev() {
            if let Some(v) = chunk.pop() {
                return Some(v);
            }
        }
        self.inline.pop()
    }

    fn locate(&self, i: usize) -> Option<(usize, usize)> {
        if i < INLINE {
            return Some((usize::MAX, i));
        }
        let j = i - INLINE;
        Some((j / Self::PER_CHUNK, j % Self::PER_CHUNK))
    }

    pub fn get(&self, i: usize) -> Option<&T> {
        match self.locate(i)? {
            (usize::MAX, k) => self.inline.get(k),
            (c, k) => self.chunks.get(c)?.get(k),
        }
    }

    pub fn get_mut(&mut self, i: usize) -> Option<&mut T> {
        match self.locate(i)? {
            (usize::MAX, k) => self.inline.get_mut(k),
            (c, k) => self.chunks.get_mut(c)?.get_mut(k),
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = &T> {
        self.inline
            .iter()
            .chain(self.chunks.iter().flat_map(|c| c.iter()))
    }

    pub fn iter_mut(&mut self) -> impl Iterator<Item = &mut T> {
        self.inline
            .iter_mut()
            .chain(self.chunks.iter_mut().flat_map(|c| c.iter_mut()))
    }
}

impl<T, const INLINE: usize> Default for Chunked<T, INLINE> {
    fn default() -> Self {
        Self::new()
    }
}

/// Bytes: a message body.
impl<const INLINE: usize> Chunked<u8, INLINE> {
    /// A store holding a copy of `data`.
    pub fn from_slice(data: &[u8]) -> Result<Self, ChunkError> {
        let mut s = Self::with_capacity(data.len())?;
        s.extend_from_slice(data);
        Ok(s)
    }

    /// Append as much of `data` as the reserved room takes; returns how much.
    pub fn extend_from_slice(&mut self, mut data: &[u8]) -> usize {
        let mut done = 0;
        let room = self.inline.remaining_capacity().min(data.len());
        // `ArrayVec::try_extend_from_slice` copies only if all of it fits.
        if self.inline.try_extend_from_slice(&data[..room]).is_ok() {
            done += room;
            data = &data[room..];
        }
        for chunk in self.chunks.iter_mut() {
            if data.is_empty() {
                break;
            }
            let room = (chunk.capacity() - chunk.len()).min(data.len());
            chunk.extend_from_slice(&data[..room]);
            done += room;
            data = &data[room..];
        }
        done
    }

    /// The stored bytes, in order, as slices.
    pub fn slices(&self) -> impl Iterator<Item = &[u8]> {
        core::iter::once(self.inline.as_slice())
            .chain(self.chunks.iter().map(Vec::as_slice))
            .filter(|s| !s.is_empty())
    }

    /// Copy bytes from `offset` into `out`; false if that runs past the end.
    pub fn read(&self, offset: usize, out: &mut [u8]) -> bool {
        self.walk(offset, out.len(), |at, piece| {
            out[at..at + piece.len()].copy_from_slice(piece)
        })
    }

    /// Overwrite bytes from `offset` with `data`; false if that runs past the end.
    pub fn write(&mut self, offset: usize, data: &[u8]) -> bool {
        let Some(end) = offset.checked_add(data.len()) else {
            return false;
        };
        if end > self.len() {
            return false;
        }
        let mut at = 0;
        let mut start = 0;
        let pieces = core::iter::once(self.inline.as_mut_slice())
            .chain(self.chunks.iter_mut().map(Vec::as_mut_slice));
        for piece in pieces {
            let (lo, hi) = (start, start + piece.len());
            start = hi;
            if hi <= offset || lo >= end {
                continue;
            }
            let from = offset.max(lo);
            let to = end.min(hi);
            piece[from - lo..to - lo].copy_from_slice(&data[at..at + (to - from)]);
            at += to - from;
        }
        true
    }

    fn walk(&self, offset: usize, len: usize, mut f: impl FnMut(usize, &[u8])) -> bool {
        let Some(end) = offset.checked_add(len) else {
            return false;
        };
        if end > self.len() {
            return false;
        }
        let mut start = 0;
        let mut at = 0;
        for piece in
            core::iter::once(self.inline.as_slice()).chain(self.chunks.iter().map(Vec::as_slice))
        {
            let (lo, hi) = (start, start + piece.len());
            start = hi;
            if hi <= offset || lo >= end {
                continue;
            }
            let from = offset.max(lo);
            let to = end.min(hi);
            f(at, &piece[from - lo..to - lo]);
            at += to - from;
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testalloc::Tracker;
    use alloc::vec;

    type Body = Chunked<u8, 64>;

    #[test]
    fn bytes_round_trip_across_chunks() {
        for len in [0, 1, 63, 64, 65, 1000, 1088, 1089, 5000, 20_000] {
            let data: Vec<u8> = (0..len).map(|i| (i * 7 + 3) as u8).collect();
            let mut b = Body::from_slice(&data).unwrap();
            assert_eq!(b.len(), len);
            let mut out = vec![0; len];
            assert!(b.read(0, &mut out));
            assert_eq!(out, data);
            let joined: Vec<u8> = b.slices().flat_map(|s| s.iter().copied()).collect();
            assert_eq!(joined, data);
            if len >= 70 {
                assert!(b.write(len - 70, &[0xAA; 70]));
                let mut tail = [0; 70];
                assert!(b.read(len - 70, &mut tail));
                assert_eq!(tail, [0xAA; 70]);
            }
            assert!(!b.read(len, &mut [0; 1]));
            assert!(!b.write(len, &[1]));
            assert!(!b.read(usize::MAX, &mut [0; 2]));
        }
    }

    #[test]
    fn every_block_fits_a_granule_and_the_count_is_predicted() {
        for len in [0, 64, 65, 3000, Body::MAX] {
            let mut t = Tracker::new();
            let b = t.run(|| Body::with_capacity(len).unwrap());
            assert!(t.largest_block() <= GRANULE);
            assert_eq!(Some(t.live_blocks()), Body::blocks_for(len), "len {len}");
            t.run(|| drop(b));
            assert_eq!(t.live_blocks(), 0);
        }
        assert_eq!(Body::blocks_for(Body::MAX + 1), None);
        assert_eq!(
            Body::with_capacity(Body::MAX + 1).err(),
            Some(ChunkError::TooLarge)
        );
    }

    #[test]
    fn slots_push_pop_and_refuse_past_capacity() {
        type Slots = Chunked<u64, 2>;
        let n = Slots::PER_CHUNK * 2 + 5;
        let mut s = Slots::with_capacity(n).unwrap();
        for i in 0..n as u64 {
            s.push(i).unwrap();
        }
        assert_eq!(s.push(99), Err(99));
        assert_eq!(s.len(), n);
        assert_eq!(*s.get(n - 1).unwrap(), n as u64 - 1);
        *s.get_mut(3).unwrap() = 1000;
        assert_eq!(s.iter().filter(|&&v| v == 1000).count(), 1);
        for v in s.iter_mut() {
            *v += 1;
        }
        let mut count = 0;
        while s.pop().is_some() {
            count += 1;
        }
        assert_eq!(count, n);
        let mut small = Slots::new();
        small.push(1).unwrap();
        small.push(2).unwrap();
        assert_eq!(small.push(3), Err(3));
    }
}
