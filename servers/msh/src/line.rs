//! The line editor: console bytes in, echo and whole lines out. Printable ASCII is kept and
//! echoed; backspace (BS or DEL) erases the last character on screen; Ctrl-U erases the
//! line; Ctrl-C drops it; CR or LF ends it (an LF right after a CR is the same end). Escape
//! sequences (a terminal's arrow keys) and other control bytes are ignored. Not a history
//! or a cursor: msh's lines are short commands.

use alloc::string::String;
use alloc::vec::Vec;

/// Longest line kept; further characters are dropped (and not echoed).
pub const MAX_LINE: usize = 160;

const BS: u8 = 0x08;
const DEL: u8 = 0x7f;
const CTRL_C: u8 = 0x03;
const CTRL_U: u8 = 0x15;
const ESC: u8 = 0x1b;
/// Erases one character on a terminal: back, blank, back.
const RUB_OUT: &[u8] = b"\x08 \x08";

/// Where the editor is in an escape sequence.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum Escape {
    #[default]
    None,
    /// After ESC.
    Started,
    /// After ESC [: parameters until a final byte (0x40-0x7e).
    Csi,
}

/// The line being typed.
#[derive(Debug, Default)]
pub struct LineEditor {
    line: String,
    after_cr: bool,
    escape: Escape,
}

/// What one byte did.
#[derive(Debug, PartialEq, Eq)]
pub struct Fed {
    /// Bytes to send back to the terminal.
    pub echo: Vec<u8>,
    /// A finished line (without its end).
    pub line: Option<String>,
}

impl LineEditor {
    pub fn new() -> Self {
        Self::default()
    }

    /// The text typed so far.
    pub fn pending(&self) -> &str {
        &self.line
    }

    /// Takes one byte.
    pub fn feed(&mut self, byte: u8) -> Fed {
        let after_cr = core::mem::take(&mut self.after_cr);
        let mut echo = Vec::new();
        let mut line = None;
        match (self.escape, byte) {
            (Escape::Started, b'[') => self.escape = Escape::Csi,
            (Escape::Started, _) => self.escape = Escape::None,
            (Escape::Csi, 0x40..=0x7e) => self.escape = Escape::None,
            (Escape::Csi, _) => {}
            (Escape::None, ESC) => self.escape = Escape::Started,
            (Escape::None, b'\n') if after_cr => {}
            (Escape::None, b'\r' | b'\n') => {
                self.after_cr = byte == b'\r';
                echo.extend_from_slice(b"\n");
                line = Some(core::mem::take(&mut self.line));
            }
            (Escape::None, BS | DEL) => {
                if self.line.pop().is_some() {
                    echo.extend_from_slice(RUB_OUT);
                }
            }
            (Escape::None, CTRL_U) => {
                for _ in 0..self.line.len() {
                    echo.extend_from_slice(RUB_OUT);
                }
                self.line.clear();
            }
            (Escape::None, CTRL_C) => {
                echo.extend_from_slice(b"^C\n");
                self.line.clear();
                line = Some(String::new());
            }
            (Escape::None, b' '..=b'~') => {
                if self.line.len() < MAX_LINE {
                    self.line.push(char::from(byte));
                    echo.push(byte);
                }
            }
            (Escape::None, _) => {}
        }
        Fed { echo, line }
    }

    /// Takes several bytes: the echo of all, and the lines they finished.
    pub fn feed_all(&mut self, bytes: &[u8]) -> (Vec<u8>, Vec<String>) {
        let mut echo = Vec::new();
        let mut lines = Vec::new();
        for &b in bytes {
            let fed = self.feed(b);
            echo.extend_from_slice(&fed.echo);
            lines.extend(fed.line);
        }
        (echo, lines)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::string::ToString;
    use std::vec;

    #[test]
    fn typed_line_is_echoed_and_ends_at_enter() {
        let mut e = LineEditor::new();
        let (echo, lines) = e.feed_all(b"cpus\r");
        assert_eq!(echo, b"cpus\n");
        assert_eq!(lines, ["cpus"]);
        assert_eq!(e.pending(), "");
    }

    #[test]
    fn cr_lf_is_one_end_and_lf_alone_is_one() {
        let mut e = LineEditor::new();
        let (_, lines) = e.feed_all(b"a\r\nb\n\nc\r\r");
        assert_eq!(lines, ["a", "b", "", "c", ""]);
    }

    #[test]
    fn backspace_and_delete_erase_on_screen() {
        let mut e = LineEditor::new();
        let (echo, lines) = e.feed_all(b"pz\x7fs\x08\x08ps\n");
        assert_eq!(lines, ["ps"]);
        assert_eq!(echo, b"pz\x08 \x08s\x08 \x08\x08 \x08ps\n".to_vec());
        // Nothing to erase: no echo.
        let mut e = LineEditor::new();
        assert_eq!(e.feed(DEL).echo, b"");
    }

    #[test]
    fn ctrl_u_kills_and_ctrl_c_drops() {
        let mut e = LineEditor::new();
        let (echo, lines) = e.feed_all(b"abc\x15x\n");
        assert_eq!(lines, ["x"]);
        assert!(echo.starts_with(b"abc\x08 \x08\x08 \x08\x08 \x08x"));
        let (echo, lines) = e.feed_all(b"halt\x03");
        assert_eq!(lines, [""]);
        assert!(echo.ends_with(b"^C\n"));
    }

    #[test]
    fn escape_sequences_and_controls_are_ignored() {
        let mut e = LineEditor::new();
        // Up arrow, a tab, a bell, F5 (ESC [ 1 5 ~), then text.
        let (echo, lines) = e.feed_all(b"\x1b[A\t\x07\x1b[15~ps\n");
        assert_eq!(lines, ["ps"]);
        assert_eq!(echo, b"ps\n");
        // ESC followed by a plain letter (Alt-x) drops only that letter.
        let (_, lines) = e.feed_all(b"\x1bxok\n");
        assert_eq!(lines, ["ok"]);
    }

    #[test]
    fn long_lines_are_cut() {
        let mut e = LineEditor::new();
        let long = vec![b'x'; MAX_LINE + 10];
        let (echo, _) = e.feed_all(&long);
        assert_eq!(echo.len(), MAX_LINE);
        let (_, lines) = e.feed_all(b"\n");
        assert_eq!(lines, ["x".repeat(MAX_LINE).to_string()]);
    }

    #[test]
    fn non_ascii_bytes_are_dropped() {
        let mut e = LineEditor::new();
        let (echo, lines) = e.feed_all("é ps\n".as_bytes());
        assert_eq!(lines, [" ps"]);
        assert_eq!(echo, b" ps\n");
    }
}
