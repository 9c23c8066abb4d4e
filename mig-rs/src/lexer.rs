//! The lexer: turns the text of one `.defs` file into tokens, dropping C comments and
//! remembering, for each token, where it is and which logical line it belongs to (so the
//! preprocessor can find directives).
//!
//! The lexer never fails on odd characters: they become [`TokenKind::Unknown`] and only the
//! parser, if it ever sees one, complains. That keeps text inside `#if 0` harmless, as in C.
//! The only lexical error is a comment that never ends.

use crate::error::{Error, Location, Result};
use std::sync::Arc;

/// What a token is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TokenKind {
    /// An identifier or keyword (`[A-Za-z_][A-Za-z0-9_]*`).
    Ident,
    /// A decimal (or `0x` hexadecimal) number.
    Number(u64),
    /// A double-quoted string; the value excludes the quotes.
    Str(String),
    /// An operator or punctuation, one or two characters long.
    Punct(&'static str),
    /// Anything else; an error if the parser meets it.
    Unknown,
}

/// A token and where it came from.
#[derive(Clone, Debug)]
pub struct Token {
    /// Kind (and value) of the token.
    pub kind: TokenKind,
    /// The token's text as written.
    pub text: String,
    /// Where the token starts.
    pub loc: Location,
    /// Byte offsets of the token in its file.
    pub span: (usize, usize),
    /// Logical line number: physical lines joined by `\` newline count as one.
    pub logical_line: u32,
    /// True for the first token of a logical line.
    pub first_on_line: bool,
}

impl Token {
    /// True if this is the punctuation `p`.
    pub fn is_punct(&self, p: &str) -> bool {
        matches!(self.kind, TokenKind::Punct(q) if q == p)
    }

    /// True if this is an identifier (or keyword) equal to `word`, ignoring ASCII case.
    pub fn is_word(&self, word: &str) -> bool {
        self.kind == TokenKind::Ident && self.text.eq_ignore_ascii_case(word)
    }
}

const TWO_CHAR_PUNCTS: [&str; 8] = ["&&", "||", "==", "!=", "<=", ">=", "<<", ">>"];
const ONE_CHAR_PUNCTS: &str = ":;,+-*/()=^~<>[]{}|!&#%?.";

/// Splits `source` (the contents of `file`) into tokens.
pub fn lex(file: &Arc<str>, source: &str) -> Result<Vec<Token>> {
    let mut lexer = Lexer {
        file: file.clone(),
        src: source,
        pos: 0,
        line: 1,
        col: 1,
        logical_line: 0,
        line_has_token: false,
        tokens: Vec::new(),
    };
    lexer.run()?;
    Ok(lexer.tokens)
}

struct Lexer<'a> {
    file: Arc<str>,
    src: &'a str,
    pos: usize,
    line: u32,
    col: u32,
    logical_line: u32,
    line_has_token: bool,
    tokens: Vec<Token>,
}

impl Lexer<'_> {
    fn loc(&self) -> Location {
        Location {
            file: self.file.clone(),
            line: self.line,
            col: self.col,
        }
    }

    fn peek(&self) -> Option<char> {
        self.src[self.pos..].chars().next()
    }

    fn peek2(&self) -> Option<char> {
        let mut it = self.src[self.pos..].chars();
        it.next();
        it.next()
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.pos += c.len_utf8();
        if c == '\n' {
            self.line += 1;
            self.col = 1;
        } else {
            self.col += 1;
        }
        Some(c)
    }

    fn new_logical_line(&mut self) {
        self.logical_line += 1;
        self.line_has_token = false;
    }

    fn run(&mut self) -> Result<()> {
        while let Some(c) = self.peek() {
            match c {
                '\n' => {
                    self.bump();
                    self.new_logical_line();
                }
                '\\' if self.peek2() == Some('\n') => {
                    // A line continuation: the logical line goes on.
                    self.bump();
                    self.bump();
                }
                '\\' if self.peek2() == Some('\r') => {
                    self.bump();
                    self.bump();
                    if self.peek() == Some('\n') {
                        self.bump();
                    }
                }
                c if c.is_whitespace() => {
                    self.bump();
                }
                '/' if self.peek2() == Some('*') => self.block_comment()?,
                '/' if self.peek2() == Some('/') => {
                    while let Some(c) = self.peek() {
                        if c == '\n' {
                            break;
                        }
                        self.bump();
                    }
                }
                _ => self.token(),
            }
        }
        Ok(())
    }

    fn block_comment(&mut self) -> Result<()> {
        let start = self.loc();
        self.bump();
        self.bump();
        loop {
            match self.peek() {
                None => return Err(Error::at(&start, "unterminated comment '/*'")),
                Some('*') if self.peek2() == Some('/') => {
                    self.bump();
                    self.bump();
                    return Ok(());
                }
                Some(_) => {
                    self.bump();
                }
            }
        }
    }

    fn push(&mut self, kind: TokenKind, start: usize, loc: Location) {
        let token = Token {
            kind,
            text: self.src[start..self.pos].to_string(),
            loc,
            span: (start, self.pos),
            logical_line: self.logical_line,
            first_on_line: !self.line_has_token,
        };
        self.line_has_token = true;
        self.tokens.push(token);
    }

    fn token(&mut self) {
        let start = self.pos;
        let loc = self.loc();
        let Some(c) = self.bump() else { return };
        if c.is_ascii_alphabetic() || c == '_' {
            while matches!(self.peek(), Some(c) if c.is_ascii_alphanumeric() || c == '_') {
                self.bump();
            }
            self.push(TokenKind::Ident, start, loc);
        } else if c.is_ascii_digit() {
            self.number(start, loc);
        } else if c == '"' {
            self.string(start, loc);
        } else {
            let two: String = self.src[start..].chars().take(2).collect();
            if let Some(p) = TWO_CHAR_PUNCTS.iter().find(|p| **p == two) {
                self.bump();
                self.push(TokenKind::Punct(p), start, loc);
            } else if let Some(i) = ONE_CHAR_PUNCTS.find(c) {
                let p = &ONE_CHAR_PUNCTS[i..i + 1];
                self.push(TokenKind::Punct(p), start, loc);
            } else {
                self.push(TokenKind::Unknown, start, loc);
            }
        }
    }

    fn number(&mut self, start: usize, loc: Location) {
        while matches!(self.peek(), Some(c) if c.is_ascii_alphanumeric() || c == '_') {
            self.bump();
        }
        let text = &self.src[start..self.pos];
        let value = if let Some(hex) = text.strip_prefix("0x").or_else(|| text.strip_prefix("0X")) {
            u64::from_str_radix(hex, 16).ok()
        } else {
            text.parse::<u64>().ok()
        };
        let kind = match value {
            Some(v) => TokenKind::Number(v),
            None => TokenKind::Unknown,
        };
        self.push(kind, start, loc);
    }

    fn string(&mut self, start: usize, loc: Location) {
        let mut value = String::new();
        loop {
            match self.peek() {
                None | Some('\n') => {
                    // An unterminated string is just an unknown token: it may sit in a
                    // skipped `#if` group.
                    self.push(TokenKind::Unknown, start, loc);
                    return;
                }
                Some('"') => {
                    self.bump();
                    self.push(TokenKind::Str(value), start, loc);
                    return;
                }
                Some(c) => {
                    value.push(c);
                    self.bump();
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(src: &str) -> Vec<TokenKind> {
        let file: Arc<str> = Arc::from("t.defs");
        lex(&file, src)
            .expect("lexes")
            .into_iter()
            .map(|t| t.kind)
            .collect()
    }

    #[test]
    fn comments_vanish_and_lines_are_tracked() {
        let file: Arc<str> = Arc::from("t.defs");
        let toks = lex(&file, "a /* x\n y */ b // c\n#define X \\\n 1\n").expect("lexes");
        let texts: Vec<&str> = toks.iter().map(|t| t.text.as_str()).collect();
        assert_eq!(texts, ["a", "b", "#", "define", "X", "1"]);
        assert_eq!(toks[1].loc.line, 2);
        assert!(toks[2].first_on_line);
        assert_eq!(toks[5].logical_line, toks[2].logical_line);
    }

    #[test]
    fn numbers_strings_and_punctuation() {
        assert_eq!(
            kinds("12 0x1f \"a b\" && <"),
            [
                TokenKind::Number(12),
                TokenKind::Number(31),
                TokenKind::Str("a b".into()),
                TokenKind::Punct("&&"),
                TokenKind::Punct("<"),
            ]
        );
        assert_eq!(kinds("'"), [TokenKind::Unknown]);
    }

    #[test]
    fn unterminated_comment_is_an_error() {
        let file: Arc<str> = Arc::from("t.defs");
        let err = lex(&file, "a\n  /* never").expect_err("fails");
        assert_eq!(err.to_string(), "t.defs:2:3: unterminated comment '/*'");
    }
}
