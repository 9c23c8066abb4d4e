//! Range arithmetic for the memory map: memory regions minus excluded ranges, page-aligned.
//!
//! Plain functions over [`PhysRange`] lists, no heap; the boot allocator takes its free
//! memory from here. It does not decide what to exclude: the caller passes that in.

use super::PhysRange;
use super::error::{DtError, DtErrorKind};
use arrayvec::ArrayVec;

/// Rounds down to a multiple of `align` (a power of two).
fn align_down(value: u64, align: u64) -> u64 {
    value & !(align - 1)
}

/// Rounds up to a multiple of `align` (a power of two), saturating at the last multiple.
fn align_up(value: u64, align: u64) -> u64 {
    value
        .checked_add(align - 1)
        .map_or(align_down(u64::MAX, align), |v| align_down(v, align))
}

/// Writes into `out` the parts of `memory` not covered by any `excluded` range: memory
/// shrunk inward to whole `page`s, exclusions widened outward, result sorted by base.
/// `page` must be a power of two.
pub(crate) fn subtract<'r, const N: usize>(
    memory: &[PhysRange],
    excluded: impl Iterator<Item = &'r PhysRange> + Clone,
    page: u64,
    out: &mut ArrayVec<PhysRange, N>,
) -> Result<(), DtError> {
    out.clear();
    // An exclusion as a page-aligned [start, end); `end` may saturate at the top.
    let widened = move || {
        excluded
            .clone()
            .filter(|range| range.size != 0)
            .map(move |range| (align_down(range.base, page), align_up(range.end(), page)))
    };
    for region in memory {
        let end = align_down(region.end(), page);
        let mut cursor = align_up(region.base, page);
        while cursor < end {
            // Step past every exclusion that covers the cursor; each step moves forward.
            while let Some((_, excluded_end)) =
                widened().find(|&(start, stop)| start <= cursor && cursor < stop)
            {
                cursor = excluded_end;
            }
            if cursor >= end {
                break;
            }
            let next_exclusion = widened()
                .map(|(start, _)| start)
                .filter(|&start| start > cursor)
                .min()
                .unwrap_or(end)
                .min(end);
            out.try_push(PhysRange {
                base: cursor,
                size: next_exclusion - cursor,
            })
            .map_err(|_| {
                DtError::new(DtErrorKind::TooMany {
                    what: "usable memory ranges",
                    max: N,
                })
            })?;
            cursor = next_exclusion;
        }
    }
    out.sort_unstable_by_key(|range| range.base);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(base: u64, size: u64) -> PhysRange {
        PhysRange { base, size }
    }

    fn usable(memory: &[PhysRange], excluded: &[PhysRange]) -> ArrayVec<PhysRange, 16> {
        let mut out = ArrayVec::new();
        subtract(memory, excluded.iter(), 0x1000, &mut out).expect("fits");
        out
    }

    #[test]
    fn no_exclusions_keeps_whole_pages() {
        let out = usable(&[range(0x4000_0800, 0x3000)], &[]);
        assert_eq!(out.as_slice(), &[range(0x4000_1000, 0x2000)]);
    }

    #[test]
    fn exclusions_split_and_widen() {
        let memory = [range(0x4000_0000, 0x10_0000)];
        let excluded = [
            range(0x4000_1800, 0x10),
            range(0x4008_0000, 0x1000),
            range(0, 0x1000),
        ];
        let out = usable(&memory, &excluded);
        assert_eq!(
            out.as_slice(),
            &[
                range(0x4000_0000, 0x1000),
                range(0x4000_2000, 0x7_e000),
                range(0x4008_1000, 0x7_f000)
            ]
        );
    }

    #[test]
    fn overlapping_and_covering_exclusions() {
        let memory = [range(0x1000, 0x9000), range(0x10_0000, 0x1000)];
        let excluded = [
            range(0x2000, 0x3000),
            range(0x4000, 0x3000),
            range(0x10_0000, 0x2000),
        ];
        assert_eq!(
            usable(&memory, &excluded).as_slice(),
            &[range(0x1000, 0x1000), range(0x7000, 0x3000)]
        );
    }

    #[test]
    fn top_of_address_space() {
        let memory = [range(u64::MAX - 0x2_ffff, 0x3_0000)];
        let excluded = [range(u64::MAX - 0xfff, 0x1000)];
        let out = usable(&memory, &excluded);
        assert_eq!(out.as_slice(), &[range(u64::MAX - 0x2_ffff, 0x2_f000)]);
    }

    #[test]
    fn output_sorted_and_bounded() {
        let memory = [range(0x8000_0000, 0x1000), range(0x4000_0000, 0x1000)];
        let out = usable(&memory, &[]);
        assert_eq!(
            out.as_slice(),
            &[range(0x4000_0000, 0x1000), range(0x8000_0000, 0x1000)]
        );
        let mut tiny: ArrayVec<PhysRange, 1> = ArrayVec::new();
        assert!(subtract(&memory, [].iter(), 0x1000, &mut tiny).is_err());
    }
}
