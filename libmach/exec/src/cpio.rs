//! Reading a cpio `newc` archive (the initial RAM disk): entries by name, bounds-checked,
//! never panicking on a damaged archive. Writing one is the xtask's business.

const MAGIC: &[u8; 6] = b"070701";
const HEADER_LEN: usize = 110;
const TRAILER: &str = "TRAILER!!!";

/// One regular file of the archive.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Entry<'a> {
    pub name: &'a str,
    pub data: &'a [u8],
}

/// Why an archive could not be read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CpioError {
    BadMagic { offset: usize },
    Truncated { offset: usize },
    BadField { offset: usize },
}

impl core::fmt::Display for CpioError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            CpioError::BadMagic { offset } => write!(f, "cpio: no newc header at offset {offset}"),
            CpioError::Truncated { offset } => {
                write!(f, "cpio: archive truncated at offset {offset}")
            }
            CpioError::BadField { offset } => {
                write!(f, "cpio: malformed header field at offset {offset}")
            }
        }
    }
}

fn hex_field(header: &[u8], index: usize, offset: usize) -> Result<usize, CpioError> {
    let start = 6 + index * 8;
    let text = header
        .get(start..start + 8)
        .ok_or(CpioError::Truncated { offset })?;
    let text = core::str::from_utf8(text).map_err(|_| CpioError::BadField { offset })?;
    usize::from_str_radix(text, 16).map_err(|_| CpioError::BadField { offset })
}

const fn align4(x: usize) -> usize {
    (x + 3) & !3
}

/// Iterator over the regular files of an archive, in order; stops at the trailer.
pub struct Entries<'a> {
    archive: &'a [u8],
    offset: usize,
    done: bool,
}

pub fn entries(archive: &[u8]) -> Entries<'_> {
    Entries {
        archive,
        offset: 0,
        done: false,
    }
}

impl<'a> Iterator for Entries<'a> {
    type Item = Result<Entry<'a>, CpioError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if self.done {
                return None;
            }
            match self.read_one() {
                Ok(Some((entry, is_file))) => {
                    if is_file {
                        return Some(Ok(entry));
                    }
                }
                Ok(None) => {
                    self.done = true;
                    return None;
                }
                Err(e) => {
                    self.done = true;
                    return Some(Err(e));
                }
            }
        }
    }
}

impl<'a> Entries<'a> {
    fn read_one(&mut self) -> Result<Option<(Entry<'a>, bool)>, CpioError> {
        let offset = self.offset;
        let header = self
            .archive
            .get(offset..offset + HEADER_LEN)
            .ok_or(CpioError::Truncated { offset })?;
        if &header[..6] != MAGIC {
            return Err(CpioError::BadMagic { offset });
        }
        let mode = hex_field(header, 1, offset)?;
        let file_size = hex_field(header, 6, offset)?;
        let name_size = hex_field(header, 11, offset)?;
        let name_start = offset + HEADER_LEN;
        let name_end = name_start
            .checked_add(name_size)
            .ok_or(CpioError::BadField { offset })?;
        let name_bytes = self
            .archive
            .get(name_start..name_end)
            .ok_or(CpioError::Truncated { offset })?;
        let name_bytes = name_bytes.strip_suffix(&[0]).unwrap_or(name_bytes);
        let name = core::str::from_utf8(name_bytes).map_err(|_| CpioError::BadField { offset })?;
        let data_start = align4(name_end);
        let data_end = data_start
            .checked_add(file_size)
            .ok_or(CpioError::BadField { offset })?;
        let data = self
            .archive
            .get(data_start..data_end)
            .ok_or(CpioError::Truncated { offset })?;
        if name == TRAILER {
            return Ok(None);
        }
        self.offset = align4(data_end);
        const S_IFMT: usize = 0o170000;
        const S_IFREG: usize = 0o100000;
        Ok(Some((
            Entry {
                name: name.trim_start_matches("./"),
                data,
            },
            mode & S_IFMT == S_IFREG,
        )))
    }
}

/// The file called `name` (a leading `./` ignored).
pub fn find<'a>(archive: &'a [u8], name: &str) -> Option<Entry<'a>> {
    entries(archive)
        .filter_map(Result::ok)
        .find(|e| e.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::format;
    use std::vec;
    use std::vec::Vec;

    /// A newc archive of regular files (what `cpio -o -H newc` writes).
    pub fn build(files: &[(&str, &[u8])]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut push = |name: &str, data: &[u8], mode: u32| {
            let fields = [
                1u32,
                mode,
                0,
                0,
                1,
                0,
                data.len() as u32,
                0,
                0,
                0,
                0,
                name.len() as u32 + 1,
                0,
            ];
            out.extend_from_slice(MAGIC);
            for f in fields {
                out.extend_from_slice(format!("{f:08x}").as_bytes());
            }
            out.extend_from_slice(name.as_bytes());
            out.push(0);
            while out.len() % 4 != 0 {
                out.push(0);
            }
            out.extend_from_slice(data);
            while out.len() % 4 != 0 {
                out.push(0);
            }
        };
        push(".", b"", 0o040755);
        for (name, data) in files {
            push(name, data, 0o100644);
        }
        push(TRAILER, b"", 0);
        out
    }

    #[test]
    fn reads_files_in_order_and_skips_directories() {
        let archive = build(&[("hello", b"abc"), ("./threads", b"12345")]);
        let all: Vec<_> = entries(&archive).map(|e| e.unwrap()).collect();
        assert_eq!(
            all,
            vec![
                Entry {
                    name: "hello",
                    data: b"abc"
                },
                Entry {
                    name: "threads",
                    data: b"12345"
                }
            ]
        );
        assert_eq!(
            find(&archive, "threads").map(|e| e.data),
            Some(&b"12345"[..])
        );
        assert_eq!(find(&archive, "nope"), None);
    }

    #[test]
    fn damaged_archives_give_errors() {
        let archive = build(&[("hello", b"abcdef")]);
        for cut in 0..archive.len() {
            let _ = entries(&archive[..cut]).count();
        }
        assert!(matches!(entries(b"garbage-garbage").next(), Some(Err(_))));
        let mut bad = archive.clone();
        bad[6 + 6 * 8] = b'z';
        assert!(entries(&bad).any(|e| e.is_err()));
    }

    proptest::proptest! {
        #[test]
        fn never_panics(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..600)) {
            let _ = entries(&bytes).take(100).count();
        }
    }
}
