//! Thread-state flavors (`mach/aarch64/thread_status.h`).

/// `AARCH64_THREAD_STATE`: general registers.
pub const AARCH64_THREAD_STATE: u32 = 1;
/// `AARCH64_FLOAT_STATE`: FP/SIMD registers.
pub const AARCH64_FLOAT_STATE: u32 = 2;

/// `struct aarch64_thread_state`: `x[31], sp, pc, tpidr_el0, cpsr` (64-bit words; `cpsr`
/// is padded to 8 bytes).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Aarch64ThreadState {
    pub x: [u64; 31],
    pub sp: u64,
    pub pc: u64,
    pub tpidr_el0: u64,
    pub cpsr: u64,
}

/// Its size in 32-bit words (`AARCH64_THREAD_STATE_COUNT`).
pub const AARCH64_THREAD_STATE_COUNT: u32 = (core::mem::size_of::<Aarch64ThreadState>() / 4) as u32;

/// `struct aarch64_float_state`: `v[32]` (128-bit), then `fpsr`, `fpcr`, `fpmr` and a
/// reserved word, 64 bits each (GNU Mach's current layout; armach has no FPMR and reports 0).
#[repr(C, align(16))]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Aarch64FloatState {
    pub v: [u128; 32],
    pub fpsr: u64,
    pub fpcr: u64,
    pub fpmr: u64,
    pub fp_reserved: u64,
}

/// Its size in 32-bit words (`AARCH64_FLOAT_STATE_COUNT`).
pub const AARCH64_FLOAT_STATE_COUNT: u32 = (core::mem::size_of::<Aarch64FloatState>() / 4) as u32;

/// `THREAD_STATE_FLAVOR_LIST`: `thread_get_state` answers the flavors it knows.
pub const THREAD_STATE_FLAVOR_LIST: u32 = 0;

impl Aarch64ThreadState {
    /// The state as the 32-bit words of a message (`thread_state_t`), little-endian halves.
    pub fn to_words(&self) -> [u32; AARCH64_THREAD_STATE_COUNT as usize] {
        let mut w = [0; AARCH64_THREAD_STATE_COUNT as usize];
        let all = self
            .x
            .iter()
            .chain([&self.sp, &self.pc, &self.tpidr_el0, &self.cpsr]);
        for (i, v) in all.enumerate() {
            w[2 * i] = *v as u32;
            w[2 * i + 1] = (*v >> 32) as u32;
        }
        w
    }

    /// Reads the first `AARCH64_THREAD_STATE_COUNT` words; `None` if there are fewer.
    pub fn from_words(w: &[u32]) -> Option<Self> {
        if w.len() < AARCH64_THREAD_STATE_COUNT as usize {
            return None;
        }
        let d = |i: usize| u64::from(w[2 * i]) | (u64::from(w[2 * i + 1]) << 32);
        Some(Self {
            x: core::array::from_fn(d),
            sp: d(31),
            pc: d(32),
            tpidr_el0: d(33),
            cpsr: d(34),
        })
    }
}

impl Aarch64FloatState {
    /// The state as the 32-bit words of a message.
    pub fn to_words(&self) -> [u32; AARCH64_FLOAT_STATE_COUNT as usize] {
        let mut w = [0; AARCH64_FLOAT_STATE_COUNT as usize];
        for (i, v) in self.v.iter().enumerate() {
            for k in 0..4 {
                w[4 * i + k] = (*v >> (32 * k)) as u32;
            }
        }
        for (i, v) in [self.fpsr, self.fpcr, self.fpmr, self.fp_reserved]
            .iter()
            .enumerate()
        {
            w[128 + 2 * i] = *v as u32;
            w[128 + 2 * i + 1] = (*v >> 32) as u32;
        }
        w
    }

    /// Reads the first `AARCH64_FLOAT_STATE_COUNT` words; `None` if there are fewer.
    pub fn from_words(w: &[u32]) -> Option<Self> {
        if w.len() < AARCH64_FLOAT_STATE_COUNT as usize {
            return None;
        }
        let d = |i: usize| u64::from(w[128 + 2 * i]) | (u64::from(w[129 + 2 * i]) << 32);
        Some(Self {
            v: core::array::from_fn(|i| {
                (0..4).fold(0u128, |acc, k| acc | (u128::from(w[4 * i + k]) << (32 * k)))
            }),
            fpsr: d(0),
            fpcr: d(1),
            fpmr: d(2),
            fp_reserved: d(3),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_match_gnu_mach() {
        assert_eq!(AARCH64_THREAD_STATE_COUNT, 70);
        assert_eq!(AARCH64_FLOAT_STATE_COUNT, 136);
    }

    #[test]
    fn states_round_trip_through_words() {
        let mut t = Aarch64ThreadState::default();
        t.x[0] = 0x1122_3344_5566_7788;
        t.x[30] = 30;
        t.pc = 0x40_1000;
        t.cpsr = 0x6000_0000;
        let w = t.to_words();
        assert_eq!((w[0], w[1]), (0x5566_7788, 0x1122_3344));
        assert_eq!(Aarch64ThreadState::from_words(&w), Some(t));
        assert_eq!(Aarch64ThreadState::from_words(&w[..69]), None);
        let mut f = Aarch64FloatState::default();
        f.v[7] = 0x0123_4567_89ab_cdef_fedc_ba98_7654_3210;
        f.fpcr = 0x0300_0000;
        let w = f.to_words();
        assert_eq!(w[28], 0x7654_3210);
        assert_eq!(Aarch64FloatState::from_words(&w), Some(f));
    }
}
