//! Address-space identifiers (ASIDs) recycled by generation, in the scheme of Linux's
//! arm64 `mm/context.c`: an address space's id is a generation (high bits) and an ASID
//! number (low 16 bits). Numbers are handed out from a bitmap for the current generation
//! and never freed within it; when none is left, the generation moves on (a rollover): the
//! bitmap is cleared but for the number each CPU is running (*reserved*, so that address
//! spaces running now keep theirs), every TLB is invalidated, and every other address
//! space gets a new number the next time it is switched in. So no TLB ever holds two
//! address spaces' translations under one number.
//!
//! This file is policy in plain Rust (host-tested below); the architecture calls
//! [`AsidAllocator::switch_in`] when a CPU switches to a user address space, passing the
//! TLB invalidation it is to run at a rollover, and invalidates this CPU's TLB when told.
//! Switching between threads of one address space costs nothing here.

use crate::sync::{IrqSpinLock, LockLevel};
use core::sync::atomic::{AtomicU64, Ordering};

/// Bits of an id below the generation: the ASID number.
const NUMBER_BITS: u32 = 16;
const NUMBER_MASK: u64 = (1 << NUMBER_BITS) - 1;
/// The generation step (and the first generation).
const GENERATION_ONE: u64 = 1 << NUMBER_BITS;
/// The widest ASIDs the architecture has.
pub const MAX_BITS: u32 = 16;
/// The narrowest the kernel uses (three numbers; 0 is never handed out).
pub const MIN_BITS: u32 = 2;
const MAP_WORDS: usize = 1 << (MAX_BITS - 6);

/// The narrowest ASIDs that work on `cpus` CPUs: after a rollover every CPU may hold one
/// number reserved, and one more must be free (0 is never handed out).
pub fn min_bits_for(cpus: usize) -> u32 {
    let mut bits = MIN_BITS;
    while bits < MAX_BITS && (1u64 << bits) - 1 <= cpus as u64 {
        bits += 1;
    }
    bits
}

/// One address space's ASID (Linux's `mm->context.id`): generation and number, 0 until
/// the address space first runs.
pub struct AsidId(AtomicU64);

impl AsidId {
    pub const fn new() -> Self {
        AsidId(AtomicU64::new(0))
    }

    /// The ASID number the address space runs with now (0: it has not run yet). Read it
    /// after the translation-table stores a TLB invalidation is for, with a full barrier
    /// between (see `uspace`).
    pub fn number(&self) -> u16 {
        (self.0.load(Ordering::Relaxed) & NUMBER_MASK) as u16
    }
}

impl Default for AsidId {
    fn default() -> Self {
        Self::new()
    }
}

/// What a CPU is to do after [`AsidAllocator::switch_in`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Switched {
    /// The ASID number to run the address space with.
    pub asid: u16,
    /// Invalidate this CPU's own TLB first: a rollover happened since it last switched
    /// through the slow path, and it may have made entries under an old number after the
    /// rollover's invalidation (while still switching away from it).
    pub flush_local: bool,
    /// The slow path ran: the id may have changed (see `uspace` for the barrier).
    pub slow: bool,
    /// This switch rolled the generation over: the generation count it moved to.
    pub rollover: Option<u64>,
}

/// The allocator for `CPUS` CPUs.
pub struct AsidAllocator<const CPUS: usize> {
    /// The current generation (a multiple of `GENERATION_ONE`).
    generation: AtomicU64,
    /// The id each CPU runs (0 after a rollover until it switches again).
    active: [AtomicU64; CPUS],
    state: IrqSpinLock<State<CPUS>>,
}

struct State<const CPUS: usize> {
    bits: u32,
    cpus: usize,
    /// Numbers taken in the current generation.
    used: [u64; MAP_WORDS],
    /// Where the search for a free number starts.
    next: u64,
    /// The id each CPU ran at the last rollover (kept until it switches again).
    reserved: [u64; CPUS],
    flush_pending: [bool; CPUS],
    rollovers: u64,
}

impl<const CPUS: usize> State<CPUS> {
    fn limit(&self) -> u64 {
        1 << self.bits
    }
    fn is_set(&self, n: u64) -> bool {
        self.used[(n / 64) as usize] & (1 << (n % 64)) != 0
    }
    fn set(&mut self, n: u64) {
        self.used[(n / 64) as usize] |= 1 << (n % 64);
    }
    /// Set `n`; whether it was set already.
    fn test_and_set(&mut self, n: u64) -> bool {
        let was = self.is_set(n);
        self.set(n);
        was
    }
    /// The first clear number in `[from, to)`.
    fn clear_in(&self, from: u64, to: u64) -> Option<u64> {
        let mut n = from;
        while n < to {
            let word = !self.used[(n / 64) as usize] >> (n % 64);
            if word != 0 {
                let found = n + u64::from(word.trailing_zeros());
                return (found < to).then_some(found);
            }
            n = (n / 64 + 1) * 64;
        }
        None
    }
    /// A clear number, searching on from the last one handed out; never 0.
    fn find_free(&self) -> Option<u64> {
        let limit = self.limit();
        self.clear_in(self.next.max(1), limit)
            .or_else(|| self.clear_in(1, self.next.clamp(1, limit)))
    }
    /// If `old` is reserved on some CPU, make it `new` there too (every CPU that holds it):
    /// the address space keeps its number in the new generation.
    fn update_reserved(&mut self, old: u64, new: u64) -> bool {
        let mut hit = false;
        for r in &mut self.reserved[..self.cpus] {
            if *r == old {
                *r = new;
                hit = true;
            }
        }
        hit
    }
}

impl<const CPUS: usize> AsidAllocator<CPUS> {
    pub const fn new() -> Self {
        AsidAllocator {
            generation: AtomicU64::new(GENERATION_ONE),
            active: [const { AtomicU64::new(0) }; CPUS],
            state: IrqSpinLock::new(
                LockLevel::Asids,
                State {
                    bits: 8,
                    cpus: CPUS,
                    used: [0; MAP_WORDS],
                    next: 1,
                    reserved: [0; CPUS],
                    flush_pending: [false; CPUS],
                    rollovers: 0,
                },
            ),
        }
    }

    /// Use `bits`-wide ASIDs (clamped to what works on `cpus` CPUs and to `MAX_BITS`)
    /// on `cpus` CPUs; returns the width used. Call before any address space runs.
    pub fn init(&self, bits: u32, cpus: usize) -> u32 {
        let cpus = cpus.clamp(1, CPUS);
        let bits = bits.clamp(min_bits_for(cpus), MAX_BITS);
        let mut st = self.state.lock();
        st.bits = bits;
        st.cpus = cpus;
        bits
    }

    /// The ASID width in use.
    pub fn bits(&self) -> u32 {
        self.state.lock().bits
    }

    /// Rollovers so far.
    pub fn rollovers(&self) -> u64 {
        self.state.lock().rollovers
    }

    /// CPU `cpu` switches to the address space with id `id`: the ASID number to run it
    /// with, and what to do first. The common case (the id is of the current generation)
    /// takes no lock: one compare-and-swap of this CPU's active id. `flush_all` invalidates
    /// every TLB of every CPU; it runs, under the allocator's lock, at a rollover.
    #[inline]
    pub fn switch_in(&self, cpu: usize, id: &AsidId, flush_all: impl FnOnce()) -> Switched {
        let value = id.0.load(Ordering::Relaxed);
        let active = &self.active[cpu];
        let old = active.load(Ordering::Relaxed);
        // A rollover sets every CPU's active id to 0 with a swap; the swap and this
        // compare-and-swap are ordered on the one location, so either this CPU's id is
        // seen (and reserved) by the rollover, or the compare-and-swap fails and the slow
        // path, under the lock, sees the new generation (Linux's argument).
        if old != 0
            && (value ^ self.generation.load(Ordering::Relaxed)) >> NUMBER_BITS == 0
            && active
                .compare_exchange(old, value, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            return Switched {
                asid: (value & NUMBER_MASK) as u16,
                flush_local: false,
                slow: false,
                rollover: None,
            };
        }
        self.switch_slow(cpu, id, flush_all)
    }

    #[inline(never)]
    fn switch_slow(&self, cpu: usize, id: &AsidId, flush_all: impl FnOnce()) -> Switched {
        let mut st = self.state.lock();
        let mut value = id.0.load(Ordering::Relaxed);
        let mut rollover = None;
        if (value ^ self.generation.load(Ordering::Relaxed)) >> NUMBER_BITS != 0 {
            let before = st.rollovers;
            value = self.new_id(&mut st, value, flush_all);
            id.0.store(value, Ordering::Relaxed);
            if st.rollovers != before {
                rollover = Some(self.generation.load(Ordering::Relaxed) >> NUMBER_BITS);
            }
        }
        let flush_local = core::mem::take(&mut st.flush_pending[cpu]);
        self.active[cpu].store(value, Ordering::Relaxed);
        Switched {
            asid: (value & NUMBER_MASK) as u16,
            flush_local,
            slow: true,
            rollover,
        }
    }

    /// A current-generation id for an address space whose id is `old` (stale or 0).
    fn new_id(&self, st: &mut State<CPUS>, old: u64, flush_all: impl FnOnce()) -> u64 {
        let mut generation = self.generation.load(Ordering::Relaxed);
        if old != 0 {
            let number = old & NUMBER_MASK;
            let new = generation | number;
            // Running somewhere at the last rollover: it keeps its number.
            if st.update_reserved(old, new) {
                return new;
            }
            // Its old number is still free in this generation: take it back.
            if number < st.limit() && !st.test_and_set(number) {
                return new;
            }
        }
        let number = match st.find_free() {
            Some(n) => n,
            None => {
                generation = self.roll_over(st, flush_all);
                // `init` keeps more numbers than CPUs, so one is free now.
                st.find_free()
                    .expect("ASIDs outnumber CPUs, so a rollover frees one")
            }
        };
        st.set(number);
        st.next = number;
        generation | number
    }

    /// Start a new generation: only the numbers CPUs run now stay taken; every TLB is
    /// invalidated, and each CPU invalidates its own once more at its next slow switch.
    fn roll_over(&self, st: &mut State<CPUS>, flush_all: impl FnOnce()) -> u64 {
        let generation = self.generation.load(Ordering::Relaxed) + GENERATION_ONE;
        self.generation.store(generation, Ordering::Relaxed);
        st.used = [0; MAP_WORDS];
        for cpu in 0..st.cpus {
            let mut id = self.active[cpu].swap(0, Ordering::Relaxed);
            // A CPU that has not switched since the last rollover keeps what it had.
            if id == 0 {
                id = st.reserved[cpu];
            }
            if id != 0 {
                st.set(id & NUMBER_MASK);
            }
            st.reserved[cpu] = id;
            st.flush_pending[cpu] = true;
        }
        st.next = 1;
        st.rollovers += 1;
        flush_all();
        generation
    }
}

impl<const CPUS: usize> Default for AsidAllocator<CPUS> {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use proptest::prelude::*;
    use std::boxed::Box;
    use std::collections::BTreeSet;
    use std::vec::Vec;

    const CPUS: usize = 4;

    /// A machine of `CPUS` CPUs with a model TLB each: the (number, address space) pairs
    /// it may hold entries for. Address spaces are indexes into `spaces`; a dead one keeps
    /// its slot (`None`) so that its stale TLB entries can still be told apart.
    struct Machine {
        alloc: Box<AsidAllocator<CPUS>>,
        spaces: Vec<Option<AsidId>>,
        running: [Option<(usize, u16)>; CPUS],
        tlb: [BTreeSet<(u16, usize)>; CPUS],
        flushes_all: u64,
    }

    impl Machine {
        /// A machine whose allocator is told of `cpus` CPUs (at most `CPUS`).
        fn new(bits: u32, cpus: usize) -> Self {
            let alloc = Box::new(AsidAllocator::new());
            alloc.init(bits, cpus);
            Machine {
                alloc,
                spaces: Vec::new(),
                running: [None; CPUS],
                tlb: Default::default(),
                flushes_all: 0,
            }
        }

        fn create(&mut self) -> usize {
            self.spaces.push(Some(AsidId::new()));
            self.spaces.len() - 1
        }

        /// The space dies once no CPU runs it (as a task's map goes with its last thread).
        fn destroy(&mut self, s: usize) {
            if self.running.iter().all(|r| r.is_none_or(|(x, _)| x != s)) {
                self.spaces[s] = None;
            }
        }

        /// CPU `cpu` switches to space `s` (or to no user space).
        fn switch(&mut self, cpu: usize, s: Option<usize>) -> Result<(), std::string::String> {
            let Some(s) = s else {
                self.running[cpu] = None;
                return Ok(());
            };
            let Some(id) = self.spaces[s].as_ref() else {
                return Ok(());
            };
            let mut flushed = false;
            let sw = self.alloc.switch_in(cpu, id, || flushed = true);
            if flushed {
                self.flushes_all += 1;
                for t in &mut self.tlb {
                    t.clear();
                }
            }
            if sw.flush_local {
                self.tlb[cpu].clear();
            }
            // The safety property: no entry of another address space under this number.
            if let Some(&(_, other)) = self.tlb[cpu].iter().find(|&&(n, x)| n == sw.asid && x != s)
            {
                return Err(std::format!(
                    "cpu{cpu}: space {s} runs as ASID {} over entries of space {other}",
                    sw.asid
                ));
            }
            if sw.asid == 0 || u32::from(sw.asid) >= 1 << self.alloc.bits() {
                return Err(std::format!("ASID {} out of range", sw.asid));
            }
            self.running[cpu] = Some((s, sw.asid));
            self.tlb[cpu].insert((sw.asid, s));
            self.check()
        }

        /// Spaces that run, and spaces whose id is of the current generation, each have a
        /// number of their own; a space runs under one number everywhere.
        fn check(&self) -> Result<(), std::string::String> {
            let generation = self.alloc.generation.load(Ordering::Relaxed);
            let mut owner: std::collections::BTreeMap<u16, usize> = Default::default();
            let mut claim = |n: u16, s: usize| match owner.insert(n, s) {
                Some(o) if o != s => Err(std::format!("ASID {n} held by spaces {o} and {s}")),
                _ => Ok(()),
            };
            for &(s, n) in self.running.iter().flatten() {
                claim(n, s)?;
                // A TLB invalidation by the space's number reaches every CPU it runs on.
                let now = self.spaces[s].as_ref().map_or(0, AsidId::number);
                if now != n {
                    return Err(std::format!("space {s} runs as ASID {n} and as {now}"));
                }
            }
            for (s, id) in self.spaces.iter().enumerate() {
                let Some(id) = id else { continue };
                let v = id.0.load(Ordering::Relaxed);
                if v != 0 && v & !NUMBER_MASK == generation {
                    claim((v & NUMBER_MASK) as u16, s)?;
                }
            }
            Ok(())
        }
    }

    #[test]
    fn min_bits_leave_a_number_free_after_reserving_one_per_cpu() {
        assert_eq!(min_bits_for(1), 2);
        assert_eq!(min_bits_for(2), 2);
        assert_eq!(min_bits_for(3), 3);
        assert_eq!(min_bits_for(8), 4);
        assert_eq!(min_bits_for(512), 10);
        let a: AsidAllocator<8> = AsidAllocator::new();
        assert_eq!(a.init(2, 8), 4);
        assert_eq!(a.init(12, 8), 12);
        assert_eq!(a.init(30, 8), MAX_BITS);
    }

    #[test]
    fn same_generation_switches_take_the_fast_path() {
        let mut m = Machine::new(8, CPUS);
        let a = m.create();
        m.switch(0, Some(a)).unwrap();
        let id = m.spaces[a].as_ref().unwrap();
        let n = id.number();
        let sw = m.alloc.switch_in(0, id, || panic!("no rollover"));
        assert_eq!((sw.asid, sw.slow, sw.flush_local), (n, false, false));
        // First switch on another CPU: its active id is still 0, so the slow path once.
        let sw = m.alloc.switch_in(1, id, || panic!("no rollover"));
        assert!(sw.slow);
        assert_eq!(sw.asid, n);
    }

    #[test]
    fn rollover_when_exhausted_and_reserved_numbers_survive() {
        // 2 bits on 2 CPUs: numbers 1, 2, 3.
        let mut m = Machine::new(2, 2);
        assert_eq!(m.alloc.bits(), 2);
        let s: Vec<usize> = (0..6).map(|_| m.create()).collect();
        m.switch(0, Some(s[0])).unwrap();
        m.switch(1, Some(s[1])).unwrap();
        m.switch(0, Some(s[2])).unwrap();
        let kept = m.spaces[s[1]].as_ref().unwrap().number();
        assert_eq!(m.alloc.rollovers(), 0);
        // A fourth space needs a number: the generation rolls over.
        m.switch(0, Some(s[3])).unwrap();
        assert_eq!(m.alloc.rollovers(), 1);
        assert_eq!(m.flushes_all, 1);
        // s[1] was running on cpu1 at the rollover: it keeps its number on the other CPU.
        m.switch(0, Some(s[1])).unwrap();
        assert_eq!(m.spaces[s[1]].as_ref().unwrap().number(), kept);
        // cpu1 has not switched since the rollover: its next switch takes the slow path
        // and invalidates its own TLB; the one after is fast again.
        let id = m.spaces[s[1]].as_ref().unwrap();
        let sw = m.alloc.switch_in(1, id, || panic!("no second rollover"));
        assert!(sw.slow && sw.flush_local);
        let sw = m.alloc.switch_in(1, id, || panic!("no second rollover"));
        assert!(!sw.slow && !sw.flush_local);
        for (i, &space) in s.iter().enumerate() {
            m.switch(i % 2, Some(space)).unwrap();
        }
        assert!(m.alloc.rollovers() >= 2);
    }

    #[test]
    fn dead_spaces_keep_their_number_until_a_rollover() {
        let mut m = Machine::new(2, 2);
        let a = m.create();
        m.switch(0, Some(a)).unwrap();
        let n = m.spaces[a].as_ref().unwrap().number();
        m.switch(0, None).unwrap();
        m.destroy(a);
        // Two more fit without reusing `n` (its TLB entries may still be around).
        for _ in 0..2 {
            let b = m.create();
            m.switch(0, Some(b)).unwrap();
            assert_ne!(m.spaces[b].as_ref().unwrap().number(), n);
        }
        assert_eq!(m.alloc.rollovers(), 0);
    }

    #[derive(Clone, Debug)]
    enum Op {
        Create,
        Destroy(usize),
        Switch(usize, Option<usize>),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            1 => Just(Op::Create),
            1 => (0..64usize).prop_map(Op::Destroy),
            6 => (0..CPUS, proptest::option::weighted(0.9, 0..64usize))
                .prop_map(|(c, s)| Op::Switch(c, s)),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// Any sequence of creations, deaths and switches, on narrow and wide ASIDs: no
        /// CPU ever runs an address space under a number its TLB holds another's entries
        /// for, and no two live address spaces share a number within a generation.
        #[test]
        fn no_two_spaces_share_a_number(
            bits in 2u32..=4,
            cpus in 1usize..=CPUS,
            ops in proptest::collection::vec(op(), 1..400),
        ) {
            let mut m = Machine::new(bits, cpus);
            for _ in 0..3 {
                m.create();
            }
            for op in ops {
                match op {
                    Op::Create => { m.create(); }
                    Op::Destroy(s) => if s < m.spaces.len() { m.destroy(s) },
                    Op::Switch(c, s) => {
                        let s = s.map(|s| s % m.spaces.len());
                        if let Err(e) = m.switch(c % cpus, s) {
                            prop_assert!(false, "{}", e);
                        }
                    }
                }
            }
        }

        /// More live address spaces than numbers: rollovers happen, and each one
        /// invalidated every TLB.
        #[test]
        fn exhaustion_rolls_over(bits in 2u32..=3, cpus in 1usize..=2, rounds in 1usize..6) {
            let mut m = Machine::new(bits, cpus);
            let n = 1usize << bits;
            let spaces: Vec<usize> = (0..n * 2).map(|_| m.create()).collect();
            for _ in 0..rounds {
                for (i, &s) in spaces.iter().enumerate() {
                    m.switch(i % cpus, Some(s)).unwrap();
                }
            }
            prop_assert!(m.alloc.rollovers() >= 1);
            prop_assert_eq!(m.alloc.rollovers(), m.flushes_all);
        }
    }
}
