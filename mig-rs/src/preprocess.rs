//! The built-in C preprocessor: the part of cpp that `.defs` files use, working on tokens.
//!
//! It handles `#include <...>` / `"..."` (searching the including file's directory for the
//! quoted form, then the `-I` directories), object-like `#define` / `#undef` (substituted in
//! the text), conditional groups (`#if`, `#ifdef`, `#ifndef`, `#elif`, `#else`, `#endif`) with
//! integer expressions, `#error`, and ignores `#pragma`, `#warning`, `#line` and line markers.
//! Function-like macros, token pasting and stringizing are not supported and are reported.
//!
//! Cycles of `#include` and runaway nesting are errors, never hangs.

use crate::error::{Error, Location, Result};
use crate::lexer::{Token, TokenKind, lex};
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// How deeply `#include` may nest before mig-rs gives up.
const MAX_INCLUDE_DEPTH: usize = 64;
/// How many tokens one macro use may expand to before mig-rs gives up.
const MAX_EXPANSION: usize = 100_000;

/// Preprocessor settings: `-I` directories and `-D` macros.
#[derive(Clone, Debug, Default)]
pub struct Config {
    /// Directories searched for `#include`, in order.
    pub include_dirs: Vec<PathBuf>,
    /// Macros defined before the first line (`-D NAME=VALUE`).
    pub defines: Vec<(String, String)>,
}

/// The output of the preprocessor: the tokens of the whole translation unit, and every file
/// that was read (for `rerun-if-changed`).
#[derive(Debug)]
pub struct Output {
    /// The tokens, with directives executed and macros substituted.
    pub tokens: Vec<Token>,
    /// Every file read, main file first.
    pub files: Vec<PathBuf>,
}

#[derive(Clone, Debug)]
struct Macro {
    body: Vec<Token>,
}

/// Preprocesses the file at `path`.
pub fn preprocess_file(path: &Path, config: &Config) -> Result<Output> {
    let mut pp = Preprocessor::new(config)?;
    pp.include(path, None)?;
    Ok(pp.finish())
}

/// Preprocesses `source` as if it were the contents of a file called `name` (includes still
/// come from disk). Used by tests and by tools that hold the text in memory.
pub fn preprocess_source(name: &str, source: &str, config: &Config) -> Result<Output> {
    let mut pp = Preprocessor::new(config)?;
    let file: Arc<str> = Arc::from(name);
    pp.run_source(&file, Path::new(name), source)?;
    Ok(pp.finish())
}

struct Preprocessor<'c> {
    config: &'c Config,
    macros: HashMap<String, Macro>,
    stack: Vec<PathBuf>,
    files: Vec<PathBuf>,
    out: Vec<Token>,
}

/// One open conditional group.
struct Cond {
    /// Tokens of the current branch are kept.
    active: bool,
    /// Some branch of this group has been taken already.
    taken: bool,
    /// `#else` was seen.
    in_else: bool,
    /// The enclosing group was active (else nothing in here is).
    parent_active: bool,
    loc: Location,
}

impl<'c> Preprocessor<'c> {
    fn new(config: &'c Config) -> Result<Self> {
        let mut pp = Preprocessor {
            config,
            macros: HashMap::new(),
            stack: Vec::new(),
            files: Vec::new(),
            out: Vec::new(),
        };
        let file: Arc<str> = Arc::from("<command line>");
        for (name, value) in &config.defines {
            if !is_identifier(name) {
                return Err(Error::at(
                    &Location::command_line(),
                    format!("-D: '{name}' is not a macro name"),
                ));
            }
            let body = lex(&file, value)?;
            pp.macros.insert(name.clone(), Macro { body });
        }
        Ok(pp)
    }

    fn finish(self) -> Output {
        Output {
            tokens: self.out,
            files: self.files,
        }
    }

    /// Reads and processes `path`; `from` is the `#include` that asked for it.
    fn include(&mut self, path: &Path, from: Option<&Location>) -> Result<()> {
        let fail = |msg: String| match from {
            Some(loc) => Error::at(loc, msg),
            None => Error::plain(msg),
        };
        let canonical = path.canonicalize().unwrap_or_else(|_| path.to_path_buf());
        if let Some(pos) = self.stack.iter().position(|p| *p == canonical) {
            let mut chain: Vec<String> = self.stack[pos..]
                .iter()
                .map(|p| p.display().to_string())
                .collect();
            chain.push(canonical.display().to_string());
            return Err(fail(format!("#include cycle: {}", chain.join(" -> "))));
        }
        if self.stack.len() >= MAX_INCLUDE_DEPTH {
            return Err(fail(format!(
                "#include nested more than {MAX_INCLUDE_DEPTH} deep at '{}'",
                path.display()
            )));
        }
        let bytes = std::fs::read(path)
            .map_err(|e| fail(format!("cannot read '{}': {e}", path.display())))?;
        let source = String::from_utf8(bytes)
            .map_err(|_| fail(format!("'{}' is not valid UTF-8", path.display())))?;
        if !self.files.contains(&canonical) {
            self.files.push(canonical.clone());
        }
        let file: Arc<str> = Arc::from(path.display().to_string());
        self.stack.push(canonical);
        let result = self.run_source(&file, path, &source);
        self.stack.pop();
        result
    }

    fn run_source(&mut self, file: &Arc<str>, path: &Path, source: &str) -> Result<()> {
        let tokens = lex(file, source)?;
        let mut conds: Vec<Cond> = Vec::new();
        let mut i = 0;
        while i < tokens.len() {
            let tok = &tokens[i];
            if tok.first_on_line && tok.is_punct("#") {
                let mut end = i + 1;
                while end < tokens.len() && tokens[end].logical_line == tok.logical_line {
                    end += 1;
                }
                self.directive(&tokens[i..end], source, path, &mut conds)?;
                i = end;
                continue;
            }
            let active = conds.last().is_none_or(|c| c.active);
            if active {
                let mut budget = MAX_EXPANSION;
                let mut hiding = HashSet::new();
                self.expand_into_out(tok, &tok.loc, &mut hiding, &mut budget)?;
            }
            i += 1;
        }
        if let Some(open) = conds.last() {
            return Err(Error::at(&open.loc, "#if without matching #endif"));
        }
        Ok(())
    }

    /// Appends `tok` to the output, substituting it if it names a macro (recursively, with
    /// each macro hidden inside its own expansion). Substituted tokens take `at` as location.
    fn expand_into_out(
        &mut self,
        tok: &Token,
        at: &Location,
        hiding: &mut HashSet<String>,
        budget: &mut usize,
    ) -> Result<()> {
        let mut expanded = Vec::new();
        self.expand(tok, at, hiding, budget, &mut expanded)?;
        self.out.extend(expanded);
        Ok(())
    }

    fn expand(
        &self,
        tok: &Token,
        at: &Location,
        hiding: &mut HashSet<String>,
        budget: &mut usize,
        out: &mut Vec<Token>,
    ) -> Result<()> {
        if *budget == 0 {
            return Err(Error::at(at, "macro expansion too large"));
        }
        *budget -= 1;
        if tok.kind == TokenKind::Ident
            && !hiding.contains(&tok.text)
            && let Some(m) = self.macros.get(&tok.text)
        {
            hiding.insert(tok.text.clone());
            for t in &m.body {
                self.expand(t, at, hiding, budget, out)?;
            }
            hiding.remove(&tok.text);
            return Ok(());
        }
        let mut t = tok.clone();
        t.loc = at.clone();
        out.push(t);
        Ok(())
    }

    fn directive(
        &mut self,
        line: &[Token],
        source: &str,
        path: &Path,
        conds: &mut Vec<Cond>,
    ) -> Result<()> {
        let hash = &line[0];
        let active = conds.last().is_none_or(|c| c.active);
        let Some(name_tok) = line.get(1) else {
            return Ok(()); // A lone '#' is the null directive.
        };
        let args = &line[2..];
        let name = match &name_tok.kind {
            TokenKind::Ident => name_tok.text.as_str(),
            // GNU cpp line markers ('# 12 "file"'): nothing to do.
            TokenKind::Number(_) => return Ok(()),
            _ => {
                if !active {
                    return Ok(());
                }
                return Err(Error::at(
                    &name_tok.loc,
                    format!("invalid preprocessor directive '#{}'", name_tok.text),
                ));
            }
        };
        match name {
            "if" | "ifdef" | "ifndef" => {
                let value = if !active {
                    false
                } else if name == "if" {
                    self.eval_condition(args, &name_tok.loc)?
                } else {
                    let macro_name = single_identifier(args, &name_tok.loc, name)?;
                    self.macros.contains_key(macro_name) == (name == "ifdef")
                };
                conds.push(Cond {
                    active: active && value,
                    taken: value,
                    in_else: false,
                    parent_active: active,
                    loc: hash.loc.clone(),
                });
            }
            "elif" => {
                let Some(c) = conds.last() else {
                    return Err(Error::at(&hash.loc, "#elif without #if"));
                };
                if c.in_else {
                    return Err(Error::at(&hash.loc, "#elif after #else"));
                }
                let (parent_active, taken) = (c.parent_active, c.taken);
                let value = if parent_active && !taken {
                    self.eval_condition(args, &name_tok.loc)?
                } else {
                    false
                };
                if let Some(c) = conds.last_mut() {
                    c.active = parent_active && !taken && value;
                    c.taken = taken || value;
                }
            }
            "else" => {
                let Some(c) = conds.last_mut() else {
                    return Err(Error::at(&hash.loc, "#else without #if"));
                };
                if c.in_else {
                    return Err(Error::at(&hash.loc, "#else after #else"));
                }
                c.in_else = true;
                c.active = c.parent_active && !c.taken;
                c.taken = true;
            }
            "endif" => {
                if conds.pop().is_none() {
                    return Err(Error::at(&hash.loc, "#endif without #if"));
                }
            }
            _ if !active => {}
            "define" => self.define(args, &name_tok.loc)?,
            "undef" => {
                let macro_name = single_identifier(args, &name_tok.loc, "undef")?;
                self.macros.remove(macro_name);
            }
            "include" => self.include_directive(args, source, path, &name_tok.loc)?,
            "error" => {
                let text = args
                    .first()
                    .zip(args.last())
                    .map(|(a, b)| source[a.span.0..b.span.1].to_string())
                    .unwrap_or_default();
                return Err(Error::at(&hash.loc, format!("#error {text}")));
            }
            "pragma" | "warning" | "line" | "ident" => {}
            other => {
                return Err(Error::at(
                    &name_tok.loc,
                    format!("unknown preprocessor directive '#{other}'"),
                ));
            }
        }
        Ok(())
    }

    fn define(&mut self, args: &[Token], at: &Location) -> Result<()> {
        let Some(name) = args.first() else {
            return Err(Error::at(at, "#define needs a macro name"));
        };
        if name.kind != TokenKind::Ident {
            return Err(Error::at(
                &name.loc,
                format!("'{}' is not a macro name", name.text),
            ));
        }
        if name.text == "defined" {
            return Err(Error::at(&name.loc, "'defined' cannot be a macro name"));
        }
        if let Some(next) = args.get(1)
            && next.is_punct("(")
            && next.span.0 == name.span.1
        {
            return Err(Error::at(
                &next.loc,
                format!(
                    "function-like macro '{}(' is not supported (only object-like macros)",
                    name.text
                ),
            ));
        }
        self.macros.insert(
            name.text.clone(),
            Macro {
                body: args[1..].to_vec(),
            },
        );
        Ok(())
    }

    fn include_directive(
        &mut self,
        args: &[Token],
        source: &str,
        path: &Path,
        at: &Location,
    ) -> Result<()> {
        let (Some(first), Some(last)) = (args.first(), args.last()) else {
            return Err(Error::at(at, "#include needs a file name"));
        };
        let text = &source[first.span.0..last.span.1];
        let (name, quoted) = if let TokenKind::Str(s) = &first.kind {
            if args.len() != 1 {
                return Err(Error::at(
                    &args[1].loc,
                    format!("unexpected '{}' after #include file name", args[1].text),
                ));
            }
            (s.clone(), true)
        } else if let Some(inner) = text.strip_prefix('<').and_then(|t| t.strip_suffix('>')) {
            (inner.trim().to_string(), false)
        } else {
            return Err(Error::at(
                &first.loc,
                format!("#include expects \"FILE\" or <FILE>, found '{text}'"),
            ));
        };
        if name.is_empty() {
            return Err(Error::at(&first.loc, "#include with an empty file name"));
        }
        let mut candidates = Vec::new();
        if quoted {
            let dir = path.parent().unwrap_or(Path::new(""));
            candidates.push(dir.join(&name));
        }
        for dir in &self.config.include_dirs {
            candidates.push(dir.join(&name));
        }
        match candidates.into_iter().find(|c| c.is_file()) {
            Some(found) => self.include(&found, Some(&first.loc)),
            None => Err(Error::at(
                &first.loc,
                format!("#include file '{name}' not found (searched the -I directories)"),
            )),
        }
    }

    /// Evaluates the expression of `#if` / `#elif`.
    fn eval_condition(&self, args: &[Token], at: &Location) -> Result<bool> {
        // First replace `defined X` / `defined(X)`, then expand macros, then evaluate with
        // any remaining identifier worth 0.
        let mut replaced: Vec<Token> = Vec::new();
        let mut i = 0;
        while i < args.len() {
            let t = &args[i];
            if t.kind == TokenKind::Ident && t.text == "defined" {
                let (name, next) = match args.get(i + 1) {
                    Some(p) if p.is_punct("(") => match (args.get(i + 2), args.get(i + 3)) {
                        (Some(n), Some(c)) if n.kind == TokenKind::Ident && c.is_punct(")") => {
                            (n, i + 4)
                        }
                        _ => return Err(Error::at(&t.loc, "expected 'defined(NAME)'")),
                    },
                    Some(n) if n.kind == TokenKind::Ident => (n, i + 2),
                    _ => return Err(Error::at(&t.loc, "expected a macro name after 'defined'")),
                };
                let value = u64::from(self.macros.contains_key(&name.text));
                let mut tok = t.clone();
                tok.kind = TokenKind::Number(value);
                tok.text = value.to_string();
                replaced.push(tok);
                i = next;
            } else {
                replaced.push(t.clone());
                i += 1;
            }
        }
        let mut expanded = Vec::new();
        let mut budget = MAX_EXPANSION;
        for t in &replaced {
            let mut hiding = HashSet::new();
            self.expand(t, &t.loc, &mut hiding, &mut budget, &mut expanded)?;
        }
        if expanded.is_empty() {
            return Err(Error::at(at, "#if with no expression"));
        }
        let mut eval = Eval {
            toks: &expanded,
            pos: 0,
            depth: 0,
        };
        let value = eval.ternary()?;
        if let Some(t) = expanded.get(eval.pos) {
            return Err(Error::at(
                &t.loc,
                format!("unexpected '{}' in #if expression", t.text),
            ));
        }
        Ok(value != 0)
    }
}

fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn single_identifier<'t>(args: &'t [Token], at: &Location, directive: &str) -> Result<&'t str> {
    let Some(t) = args.first() else {
        return Err(Error::at(at, format!("#{directive} needs a macro name")));
    };
    if t.kind != TokenKind::Ident {
        return Err(Error::at(
            &t.loc,
            format!("'{}' is not a macro name", t.text),
        ));
    }
    if let Some(extra) = args.get(1) {
        return Err(Error::at(
            &extra.loc,
            format!("unexpected '{}' after #{directive} NAME", extra.text),
        ));
    }
    Ok(&t.text)
}

/// Integer expression evaluator for `#if`, with C's precedence; values are `i64`.
struct Eval<'t> {
    toks: &'t [Token],
    pos: usize,
    depth: u32,
}

const BINARY_LEVELS: [&[&str]; 10] = [
    &["||"],
    &["&&"],
    &["|"],
    &["^"],
    &["&"],
    &["==", "!="],
    &["<", ">", "<=", ">="],
    &["<<", ">>"],
    &["+", "-"],
    &["*", "/", "%"],
];

impl Eval<'_> {
    fn peek(&self) -> Option<&Token> {
        self.toks.get(self.pos)
    }

    fn err_here(&self, what: &str) -> Error {
        match self.peek().or(self.toks.last()) {
            Some(t) if self.pos < self.toks.len() => Error::at(
                &t.loc,
                format!("{what} in #if expression, found '{}'", t.text),
            ),
            Some(t) => Error::at(&t.loc, format!("{what} at end of #if expression")),
            None => Error::plain(format!("{what} in #if expression")),
        }
    }

    fn ternary(&mut self) -> Result<i64> {
        self.depth += 1;
        if self.depth > 200 {
            return Err(self.err_here("expression nested too deeply"));
        }
        let cond = self.binary(0)?;
        let result = if self.peek().is_some_and(|t| t.is_punct("?")) {
            self.pos += 1;
            let a = self.ternary()?;
            if !self.peek().is_some_and(|t| t.is_punct(":")) {
                return Err(self.err_here("expected ':'"));
            }
            self.pos += 1;
            let b = self.ternary()?;
            if cond != 0 { a } else { b }
        } else {
            cond
        };
        self.depth -= 1;
        Ok(result)
    }

    fn binary(&mut self, level: usize) -> Result<i64> {
        let Some(ops) = BINARY_LEVELS.get(level) else {
            return self.unary();
        };
        let mut lhs = self.binary(level + 1)?;
        loop {
            let Some(op) = self
                .peek()
                .and_then(|t| ops.iter().copied().find(|op| t.is_punct(op)))
            else {
                return Ok(lhs);
            };
            let op_tok = self.pos;
            self.pos += 1;
            let rhs = self.binary(level + 1)?;
            lhs = match op {
                "||" => i64::from(lhs != 0 || rhs != 0),
                "&&" => i64::from(lhs != 0 && rhs != 0),
                "|" => lhs | rhs,
                "^" => lhs ^ rhs,
                "&" => lhs & rhs,
                "==" => i64::from(lhs == rhs),
                "!=" => i64::from(lhs != rhs),
                "<" => i64::from(lhs < rhs),
                ">" => i64::from(lhs > rhs),
                "<=" => i64::from(lhs <= rhs),
                ">=" => i64::from(lhs >= rhs),
                "<<" => lhs.wrapping_shl(u32::try_from(rhs & 63).unwrap_or(0)),
                ">>" => lhs.wrapping_shr(u32::try_from(rhs & 63).unwrap_or(0)),
                "+" => lhs.wrapping_add(rhs),
                "-" => lhs.wrapping_sub(rhs),
                "*" => lhs.wrapping_mul(rhs),
                _ => {
                    if rhs == 0 {
                        let t = &self.toks[op_tok];
                        return Err(Error::at(&t.loc, "division by zero in #if expression"));
                    }
                    if op == "/" {
                        lhs.wrapping_div(rhs)
                    } else {
                        lhs.wrapping_rem(rhs)
                    }
                }
            };
        }
    }

    fn unary(&mut self) -> Result<i64> {
        self.depth += 1;
        if self.depth > 200 {
            return Err(self.err_here("expression nested too deeply"));
        }
        let Some(t) = self.peek() else {
            return Err(self.err_here("expected a value"));
        };
        let value = match &t.kind.clone() {
            TokenKind::Punct("!") => {
                self.pos += 1;
                i64::from(self.unary()? == 0)
            }
            TokenKind::Punct("-") => {
                self.pos += 1;
                self.unary()?.wrapping_neg()
            }
            TokenKind::Punct("+") => {
                self.pos += 1;
                self.unary()?
            }
            TokenKind::Punct("~") => {
                self.pos += 1;
                !self.unary()?
            }
            TokenKind::Punct("(") => {
                self.pos += 1;
                let v = self.ternary()?;
                if !self.peek().is_some_and(|t| t.is_punct(")")) {
                    return Err(self.err_here("expected ')'"));
                }
                self.pos += 1;
                v
            }
            TokenKind::Number(n) => {
                self.pos += 1;
                i64::try_from(*n).unwrap_or(i64::MAX)
            }
            // An identifier that is not a macro is 0, as in C.
            TokenKind::Ident => {
                self.pos += 1;
                0
            }
            _ => return Err(self.err_here("expected a value")),
        };
        self.depth -= 1;
        Ok(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(src: &str, defines: &[(&str, &str)]) -> Result<String> {
        let config = Config {
            include_dirs: Vec::new(),
            defines: defines
                .iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect(),
        };
        let out = preprocess_source("t.defs", src, &config)?;
        Ok(out
            .tokens
            .iter()
            .map(|t| t.text.as_str())
            .collect::<Vec<_>>()
            .join(" "))
    }

    #[test]
    fn conditionals() {
        let src =
            "#if A && !defined(B)\none\n#elif C > 2 || defined D\ntwo\n#else\nthree\n#endif\n";
        assert_eq!(run(src, &[("A", "1")]).expect("ok"), "one");
        assert_eq!(run(src, &[("A", "1"), ("B", "")]).expect("ok"), "three");
        assert_eq!(run(src, &[("C", "3")]).expect("ok"), "two");
        assert_eq!(run(src, &[("D", "")]).expect("ok"), "two");
        assert_eq!(run(src, &[]).expect("ok"), "three");
    }

    #[test]
    fn ifdef_ifndef_nesting() {
        let src = "#ifdef X\n#ifndef Y\na\n#else\nb\n#endif\n#else\nc\n#endif\n";
        assert_eq!(run(src, &[("X", "1")]).expect("ok"), "a");
        assert_eq!(run(src, &[("X", "1"), ("Y", "1")]).expect("ok"), "b");
        assert_eq!(run(src, &[]).expect("ok"), "c");
    }

    #[test]
    fn macros_are_substituted_and_undefined() {
        let src = "#define P r_\n#define Q P P\nuserprefix Q;\n#undef P\nP;\n";
        assert_eq!(run(src, &[]).expect("ok"), "userprefix r_ r_ ; P ;");
        // A self-referencing macro does not loop.
        assert_eq!(run("#define S S x\nS\n", &[]).expect("ok"), "S x");
    }

    #[test]
    fn errors_have_locations() {
        let e = run("#if 1\nx\n", &[]).expect_err("unterminated");
        assert_eq!(e.to_string(), "t.defs:1:1: #if without matching #endif");
        let e = run("#endif\n", &[]).expect_err("stray");
        assert_eq!(e.to_string(), "t.defs:1:1: #endif without #if");
        let e = run("#define F(x) x\n", &[]).expect_err("function-like");
        assert!(
            e.to_string()
                .starts_with("t.defs:1:10: function-like macro 'F('")
        );
        let e = run("#if 1 / 0\n#endif\n", &[]).expect_err("div");
        assert_eq!(
            e.to_string(),
            "t.defs:1:7: division by zero in #if expression"
        );
        let e = run("#bogus\n", &[]).expect_err("unknown");
        assert_eq!(
            e.to_string(),
            "t.defs:1:2: unknown preprocessor directive '#bogus'"
        );
        let e = run("#include <nowhere.defs>\n", &[]).expect_err("missing");
        assert!(
            e.to_string()
                .starts_with("t.defs:1:10: #include file 'nowhere.defs' not found")
        );
        let e = run("#error stop here\n", &[]).expect_err("error");
        assert_eq!(e.to_string(), "t.defs:1:1: #error stop here");
    }

    #[test]
    fn skipped_groups_ignore_junk() {
        assert_eq!(
            run("#if 0\ndon't #bogus\n#endif\nok\n", &[]).expect("ok"),
            "ok"
        );
    }
}
