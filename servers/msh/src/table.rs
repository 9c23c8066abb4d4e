//! Text output: tables with aligned columns (numbers to the right, words to the left) and
//! the load bars of `top`. Plain strings in, a `String` out; where the text goes is the
//! program's business.

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt::Write;

/// How a column's cells line up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Align {
    Left,
    Right,
}

/// A table: a header row, then rows of cells, each column as wide as its widest cell.
#[derive(Debug)]
pub struct Table {
    columns: Vec<(&'static str, Align)>,
    rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new(columns: &[(&'static str, Align)]) -> Self {
        Self {
            columns: columns.to_vec(),
            rows: Vec::new(),
        }
    }

    /// Adds a row; missing cells are blank, extra ones dropped.
    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// The table as lines ending in `\n`, columns two spaces apart, no trailing blanks.
    pub fn render(&self) -> String {
        let widths: Vec<usize> = self
            .columns
            .iter()
            .enumerate()
            .map(|(i, (title, _))| {
                self.rows
                    .iter()
                    .filter_map(|r| r.get(i))
                    .map(|c| c.chars().count())
                    .chain([title.len()])
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let mut out = String::new();
        let header: Vec<String> = self.columns.iter().map(|(t, _)| (*t).into()).collect();
        for row in core::iter::once(&header).chain(&self.rows) {
            let mut line = String::new();
            for (i, ((_, align), width)) in self.columns.iter().zip(&widths).enumerate() {
                let cell = row.get(i).map_or("", String::as_str);
                if i > 0 {
                    line.push_str("  ");
                }
                let pad = width.saturating_sub(cell.chars().count());
                match align {
                    Align::Left => {
                        line.push_str(cell);
                        line.extend(core::iter::repeat_n(' ', pad));
                    }
                    Align::Right => {
                        line.extend(core::iter::repeat_n(' ', pad));
                        line.push_str(cell);
                    }
                }
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }
}

/// A bar `width` characters wide inside brackets, filled in proportion to `part` of
/// `whole` (`#` filled, `.` empty; a `whole` of 0 is an empty bar; more than whole is full).
pub fn bar(part: u64, whole: u64, width: usize) -> String {
    let filled = if whole == 0 {
        0
    } else {
        let f = (u128::from(part.min(whole)) * width as u128 + u128::from(whole) / 2)
            / u128::from(whole);
        f as usize
    };
    let mut s = String::with_capacity(width + 2);
    s.push('[');
    s.extend(core::iter::repeat_n('#', filled));
    s.extend(core::iter::repeat_n('.', width - filled));
    s.push(']');
    s
}

/// `part` of `whole` in percent, rounded, at most 100 (0 for a `whole` of 0).
pub fn percent(part: u64, whole: u64) -> u64 {
    if whole == 0 {
        return 0;
    }
    ((u128::from(part.min(whole)) * 100 + u128::from(whole) / 2) / u128::from(whole)) as u64
}

/// A fixed-point value with `scale` units per one, as text with two decimals
/// (`load(1500, 1000)` is `"1.50"`).
pub fn fixed2(value: u64, scale: u64) -> String {
    let mut s = String::new();
    if scale == 0 {
        s.push('-');
        return s;
    }
    let hundredths = (u128::from(value) * 100 + u128::from(scale) / 2) / u128::from(scale);
    let _ = write!(s, "{}.{:02}", hundredths / 100, hundredths % 100);
    s
}

/// Nanoseconds as seconds with three decimals (`"1.250"`).
pub fn seconds3(ns: u64) -> String {
    let ms = ns / 1_000_000;
    let mut s = String::new();
    let _ = write!(s, "{}.{:03}", ms / 1000, ms % 1000);
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;
    use alloc::vec;

    #[test]
    fn columns_align_by_their_widest_cell() {
        let mut t = Table::new(&[
            ("ID", Align::Right),
            ("NAME", Align::Left),
            ("CPU", Align::Right),
        ]);
        t.row(vec!["1".into(), "msh".into(), "0".into()]);
        t.row(vec!["12".into(), "burn-1".into(), "3".into()]);
        t.row(vec!["3".into()]);
        assert_eq!(
            t.render(),
            "ID  NAME    CPU\n 1  msh       0\n12  burn-1    3\n 3\n"
        );
        assert_eq!(t.len(), 3);
    }

    #[test]
    fn empty_table_is_its_header() {
        let t = Table::new(&[("SET", Align::Right), ("CPUS", Align::Left)]);
        assert!(t.is_empty());
        assert_eq!(t.render(), "SET  CPUS\n");
    }

    #[test]
    fn bars_fill_in_proportion() {
        assert_eq!(bar(0, 100, 10), "[..........]");
        assert_eq!(bar(50, 100, 10), "[#####.....]");
        assert_eq!(bar(100, 100, 10), "[##########]");
        assert_eq!(bar(500, 100, 4), "[####]");
        assert_eq!(bar(1, 3, 3), "[#..]");
        assert_eq!(bar(5, 0, 3), "[...]");
        assert_eq!(bar(u64::MAX, u64::MAX, 20).len(), 22);
    }

    #[test]
    fn numbers() {
        assert_eq!(percent(1, 3), 33);
        assert_eq!(percent(2, 3), 67);
        assert_eq!(percent(7, 0), 0);
        assert_eq!(percent(9, 4), 100);
        assert_eq!(fixed2(1500, 1000), "1.50");
        assert_eq!(fixed2(4, 1000), "0.00");
        assert_eq!(fixed2(5, 1000), "0.01");
        assert_eq!(fixed2(12345, 1000), "12.35");
        assert_eq!(fixed2(1, 0), "-");
        assert_eq!(seconds3(1_250_000_000), "1.250");
        assert_eq!(seconds3(999_999), "0.000");
        assert_eq!(seconds3(61_000_000_000).to_string(), "61.000");
    }
}
