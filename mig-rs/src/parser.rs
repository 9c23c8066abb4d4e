//! The parser: reads the preprocessed tokens of a `.defs` file into the syntax tree of
//! [`crate::ast`], following GNU MIG's grammar (keywords are case-insensitive, as in GNU MIG).
//!
//! It checks syntax only; whether a type exists or a routine makes sense is decided by the
//! analyser. It stops at the first error, reporting `file:line:col` and the offending text.

use crate::ast::*;
use crate::error::{Error, Location, Result};
use crate::lexer::{Token, TokenKind};
use std::sync::Arc;

/// `MACH_MSG_TYPE_POLYMORPHIC`: the type name is chosen at run time.
pub const POLYMORPHIC: u32 = u32::MAX;

/// Bits of an inline port right in an LP64 message.
pub const PORT_SIZE_BITS: u32 = 64;
/// Bits of a port name (`mach_port_name_t`).
pub const PORT_NAME_SIZE_BITS: u32 = 32;

const KEYWORDS: &[&str] = &[
    "routine",
    "simpleroutine",
    "subsystem",
    "msgoption",
    "msgseqno",
    "waittime",
    "nowaittime",
    "in",
    "out",
    "inout",
    "requestport",
    "replyport",
    "ureplyport",
    "sreplyport",
    "array",
    "of",
    "serverprefix",
    "userprefix",
    "serverdemux",
    "rcsid",
    "import",
    "uimport",
    "simport",
    "type",
    "kernelserver",
    "kerneluser",
    "skip",
    "struct",
    "intran",
    "intranpayload",
    "outtran",
    "destructor",
    "ctype",
    "cusertype",
    "cservertype",
    "c_string",
    "islong",
    "isnotlong",
    "dealloc",
    "notdealloc",
    "servercopy",
    "countinout",
    "retcode",
    "polymorphic",
];

/// The symbolic IPC type names: (name, sent as, received as, default size in bits).
const SYMBOLIC_TYPES: &[(&str, u32, u32, u32)] = &[
    ("MACH_MSG_TYPE_UNSTRUCTURED", 0, 0, 0),
    ("MACH_MSG_TYPE_BIT", 0, 0, 1),
    ("MACH_MSG_TYPE_BOOLEAN", 0, 0, 32),
    ("MACH_MSG_TYPE_INTEGER_16", 1, 1, 16),
    ("MACH_MSG_TYPE_INTEGER_32", 2, 2, 32),
    ("MACH_MSG_TYPE_INTEGER_64", 11, 11, 64),
    ("MACH_MSG_TYPE_CHAR", 8, 8, 8),
    ("MACH_MSG_TYPE_BYTE", 9, 9, 8),
    ("MACH_MSG_TYPE_INTEGER_8", 9, 9, 8),
    ("MACH_MSG_TYPE_REAL", 10, 10, 0),
    ("MACH_MSG_TYPE_STRING", 12, 12, 0),
    ("MACH_MSG_TYPE_STRING_C", 12, 12, 0),
    ("MACH_MSG_TYPE_MOVE_RECEIVE", 16, 16, PORT_SIZE_BITS),
    ("MACH_MSG_TYPE_MOVE_SEND", 17, 17, PORT_SIZE_BITS),
    ("MACH_MSG_TYPE_MOVE_SEND_ONCE", 18, 18, PORT_SIZE_BITS),
    ("MACH_MSG_TYPE_COPY_SEND", 19, 17, PORT_SIZE_BITS),
    ("MACH_MSG_TYPE_MAKE_SEND", 20, 17, PORT_SIZE_BITS),
    ("MACH_MSG_TYPE_MAKE_SEND_ONCE", 21, 18, PORT_SIZE_BITS),
    ("MACH_MSG_TYPE_PORT_NAME", 15, 15, PORT_NAME_SIZE_BITS),
    (
        "MACH_MSG_TYPE_PORT_RECEIVE",
        POLYMORPHIC,
        16,
        PORT_SIZE_BITS,
    ),
    ("MACH_MSG_TYPE_PORT_SEND", POLYMORPHIC, 17, PORT_SIZE_BITS),
    (
        "MACH_MSG_TYPE_PORT_SEND_ONCE",
        POLYMORPHIC,
        18,
        PORT_SIZE_BITS,
    ),
    ("MACH_MSG_TYPE_POLYMORPHIC", POLYMORPHIC, POLYMORPHIC, 0),
];

/// True if `word` is a MIG keyword (in any case).
pub fn is_keyword(word: &str) -> bool {
    KEYWORDS.iter().any(|k| k.eq_ignore_ascii_case(word))
}

/// Parses a whole translation unit. `file` names the main file, for errors at its end.
pub fn parse(tokens: &[Token], file: &Arc<str>) -> Result<Vec<Statement>> {
    let mut p = Parser {
        toks: tokens,
        pos: 0,
        file: file.clone(),
    };
    let mut statements = Vec::new();
    while p.peek().is_some() {
        if let Some(s) = p.statement()? {
            statements.push(s);
        }
    }
    Ok(statements)
}

struct Parser<'t> {
    toks: &'t [Token],
    pos: usize,
    file: Arc<str>,
}

impl Parser<'_> {
    fn peek(&self) -> Option<&Token> {
        self.toks.get(self.pos)
    }

    fn next(&mut self) -> Option<&Token> {
        let t = self.toks.get(self.pos);
        if t.is_some() {
            self.pos += 1;
        }
        t
    }

    /// Where the next token is (or the end of the input).
    fn here(&self) -> Location {
        match self.peek().or(self.toks.last()) {
            Some(t) => t.loc.clone(),
            None => Location {
                file: self.file.clone(),
                line: 1,
                col: 1,
            },
        }
    }

    fn found(&self) -> String {
        match self.peek() {
            Some(t) => format!("found '{}'", t.text),
            None => "found end of input".to_string(),
        }
    }

    fn error(&self, expected: &str) -> Error {
        Error::at(
            &self.here(),
            format!("expected {expected}, {}", self.found()),
        )
    }

    fn at_word(&self, word: &str) -> bool {
        self.peek().is_some_and(|t| t.is_word(word))
    }

    fn at_punct(&self, p: &str) -> bool {
        self.peek().is_some_and(|t| t.is_punct(p))
    }

    fn eat_word(&mut self, word: &str) -> bool {
        let hit = self.at_word(word);
        if hit {
            self.pos += 1;
        }
        hit
    }

    fn eat_punct(&mut self, p: &str) -> bool {
        let hit = self.at_punct(p);
        if hit {
            self.pos += 1;
        }
        hit
    }

    fn expect_punct(&mut self, p: &str, context: &str) -> Result<()> {
        if self.eat_punct(p) {
            Ok(())
        } else {
            Err(self.error(&format!("'{p}' {context}")))
        }
    }

    fn expect_word(&mut self, word: &str, context: &str) -> Result<()> {
        if self.eat_word(word) {
            Ok(())
        } else {
            Err(self.error(&format!("'{word}' {context}")))
        }
    }

    fn ident(&mut self, what: &str) -> Result<Ident> {
        match self.peek() {
            Some(t) if t.kind == TokenKind::Ident && !is_keyword(&t.text) => {
                let id = Ident {
                    name: t.text.clone(),
                    loc: t.loc.clone(),
                };
                self.pos += 1;
                Ok(id)
            }
            Some(t) if t.kind == TokenKind::Ident => Err(Error::at(
                &t.loc,
                format!("expected {what}, found keyword '{}'", t.text),
            )),
            _ => Err(self.error(what)),
        }
    }

    fn number(&mut self, what: &str) -> Result<u32> {
        match self.peek() {
            Some(Token {
                kind: TokenKind::Number(n),
                loc,
                text,
                ..
            }) => {
                let v = u32::try_from(*n)
                    .map_err(|_| Error::at(loc, format!("number '{text}' is too large")))?;
                self.pos += 1;
                Ok(v)
            }
            _ => Err(self.error(what)),
        }
    }

    fn statement(&mut self) -> Result<Option<Statement>> {
        let Some(t) = self.peek() else {
            return Ok(None);
        };
        let loc = t.loc.clone();
        if t.is_punct(";") {
            self.pos += 1;
            return Ok(None);
        }
        if t.kind != TokenKind::Ident {
            return Err(self.error("a statement"));
        }
        let word = t.text.to_ascii_lowercase();
        let statement = match word.as_str() {
            "subsystem" => {
                self.pos += 1;
                let (mut kernel_user, mut kernel_server) = (false, false);
                loop {
                    if self.eat_word("kerneluser") {
                        kernel_user = true;
                    } else if self.eat_word("kernelserver") {
                        kernel_server = true;
                    } else {
                        break;
                    }
                }
                let name = self.ident("a subsystem name")?;
                let base = self.number("the subsystem's base message id")?;
                Statement::Subsystem {
                    name,
                    base,
                    kernel_user,
                    kernel_server,
                }
            }
            "waittime" => {
                self.pos += 1;
                Statement::WaitTime(Some(self.loose_string("a wait time")?), loc)
            }
            "nowaittime" => {
                self.pos += 1;
                Statement::WaitTime(None, loc)
            }
            "msgoption" => {
                self.pos += 1;
                Statement::MsgOption(self.loose_string("a message option")?, loc)
            }
            "serverprefix" => {
                self.pos += 1;
                Statement::ServerPrefix(self.ident("a server prefix")?)
            }
            "userprefix" => {
                self.pos += 1;
                Statement::UserPrefix(self.ident("a user prefix")?)
            }
            "serverdemux" => {
                self.pos += 1;
                Statement::ServerDemux(self.ident("a server demux function name")?)
            }
            "type" => {
                self.pos += 1;
                Statement::Type(self.named_type()?)
            }
            "routine" | "simpleroutine" => {
                self.pos += 1;
                let kind = if word == "routine" {
                    RoutineKind::Routine
                } else {
                    RoutineKind::SimpleRoutine
                };
                let name = self.ident("a routine name")?;
                let args = self.arguments()?;
                Statement::Routine(RoutineDecl { kind, name, args })
            }
            "skip" => {
                self.pos += 1;
                let n = if matches!(self.peek(), Some(t) if matches!(t.kind, TokenKind::Number(_)))
                {
                    self.number("a count")?
                } else {
                    1
                };
                Statement::Skip(n, loc)
            }
            "import" | "uimport" | "simport" => {
                self.pos += 1;
                let kind = match word.as_str() {
                    "import" => ImportKind::Both,
                    "uimport" => ImportKind::User,
                    _ => ImportKind::Server,
                };
                Statement::Import {
                    kind,
                    file: self.file_name()?,
                }
            }
            "rcsid" => {
                self.pos += 1;
                match self.next() {
                    Some(Token {
                        kind: TokenKind::Str(s),
                        ..
                    }) => Statement::RcsId(s.clone()),
                    _ => {
                        self.pos = self.pos.saturating_sub(1);
                        return Err(self.error("a quoted string after 'rcsid'"));
                    }
                }
            }
            _ => return Err(self.error("a statement")),
        };
        self.expect_punct(";", "at the end of the statement")?;
        Ok(Some(statement))
    }

    /// GNU MIG's `String` token for `waittime` and `msgoption`: one or more tokens up to `;`.
    fn loose_string(&mut self, what: &str) -> Result<String> {
        let mut text = String::new();
        while let Some(t) = self.peek() {
            if t.is_punct(";") {
                break;
            }
            let ok = matches!(t.kind, TokenKind::Ident | TokenKind::Number(_))
                || ["-", "/", "."].iter().any(|p| t.is_punct(p));
            if !ok {
                return Err(self.error(what));
            }
            text.push_str(&t.text);
            self.pos += 1;
        }
        if text.is_empty() {
            return Err(self.error(what));
        }
        Ok(text)
    }

    fn file_name(&mut self) -> Result<String> {
        match self.peek() {
            Some(Token {
                kind: TokenKind::Str(s),
                ..
            }) => {
                let name = format!("\"{s}\"");
                self.pos += 1;
                Ok(name)
            }
            Some(t) if t.is_punct("<") => {
                let line = t.logical_line;
                self.pos += 1;
                let mut name = String::from("<");
                loop {
                    match self.next() {
                        Some(t) if t.is_punct(">") => break,
                        Some(t) if t.logical_line == line && !t.is_punct(";") => {
                            name.push_str(&t.text)
                        }
                        _ => {
                            self.pos -= 1;
                            return Err(self.error("'>' closing the file name"));
                        }
                    }
                }
                name.push('>');
                Ok(name)
            }
            _ => Err(self.error("a file name (\"FILE\" or <FILE>)")),
        }
    }

    fn named_type(&mut self) -> Result<NamedType> {
        let name = self.ident("a type name")?;
        self.expect_punct("=", &format!("after type name '{}'", name.name))?;
        let spec = self.type_spec()?;
        let trans = self.translations()?;
        Ok(NamedType { name, spec, trans })
    }

    fn translations(&mut self) -> Result<Vec<Translation>> {
        let mut trans = Vec::new();
        while let Some(t) = self.peek() {
            if t.kind != TokenKind::Ident {
                break;
            }
            let word = t.text.to_ascii_lowercase();
            let kw = match word.as_str() {
                "ctype" | "cusertype" | "cservertype" | "intran" | "intranpayload" | "outtran"
                | "destructor" => word,
                _ => break,
            };
            self.pos += 1;
            self.expect_punct(":", &format!("after '{kw}'"))?;
            let tr = match kw.as_str() {
                "ctype" => Translation::CType(self.ident("a C type name")?),
                "cusertype" => Translation::CUserType(self.ident("a C type name")?),
                "cservertype" => Translation::CServerType(self.ident("a C type name")?),
                "intran" => {
                    let trans_type = self.ident("the translated type")?;
                    let func = self.ident("the in-translation function")?;
                    self.expect_punct("(", "after the in-translation function")?;
                    let server_type = self.ident("the server type")?;
                    self.expect_punct(")", "after the server type")?;
                    Translation::InTran {
                        trans_type,
                        func,
                        server_type,
                    }
                }
                "intranpayload" => {
                    let trans_type = self.ident("the translated type")?;
                    let func = self.ident("the payload translation function")?;
                    Translation::InTranPayload { trans_type, func }
                }
                "outtran" => {
                    let server_type = self.ident("the server type")?;
                    let func = self.ident("the out-translation function")?;
                    self.expect_punct("(", "after the out-translation function")?;
                    let trans_type = self.ident("the translated type")?;
                    self.expect_punct(")", "after the translated type")?;
                    Translation::OutTran {
                        server_type,
                        func,
                        trans_type,
                    }
                }
                _ => {
                    let func = self.ident("the destructor function")?;
                    self.expect_punct("(", "after the destructor function")?;
                    let trans_type = self.ident("the translated type")?;
                    self.expect_punct(")", "after the translated type")?;
                    Translation::Destructor { func, trans_type }
                }
            };
            trans.push(tr);
        }
        Ok(trans)
    }

    fn type_spec(&mut self) -> Result<TypeSpec> {
        let Some(t) = self.peek() else {
            return Err(self.error("a type"));
        };
        let loc = t.loc.clone();
        if t.is_punct("^") {
            self.pos += 1;
            return Ok(TypeSpec::Pointer(Box::new(self.type_spec()?), loc));
        }
        if t.is_punct("(") {
            self.pos += 1;
            let ipc = self.ipc_type()?;
            self.expect_punct(",", "after the IPC type")?;
            let size = self.int_exp()?;
            let flags = self.flags()?;
            self.expect_punct(")", "closing the IPC type")?;
            return Ok(TypeSpec::IpcSized { ipc, size, flags });
        }
        if matches!(t.kind, TokenKind::Number(_)) || self.symbolic(t).is_some() {
            return Ok(TypeSpec::Ipc(self.ipc_type()?));
        }
        if t.is_word("array") {
            self.pos += 1;
            self.expect_punct("[", "after 'array'")?;
            let spec = if self.eat_punct("]") {
                None
            } else if self.eat_punct("*") {
                if self.eat_punct(":") {
                    let max = self.int_exp()?;
                    self.expect_punct("]", "after the array bound")?;
                    Some(Some(max))
                } else {
                    self.expect_punct("]", "after 'array[*'")?;
                    None
                }
            } else {
                let count = self.int_exp()?;
                self.expect_punct("]", "after the array size")?;
                self.expect_word("of", "after 'array[...]'")?;
                let of = Box::new(self.type_spec()?);
                return Ok(TypeSpec::Array { count, of, loc });
            };
            self.expect_word("of", "after 'array[...]'")?;
            let of = Box::new(self.type_spec()?);
            return Ok(TypeSpec::VarArray {
                max: spec.flatten(),
                of,
                loc,
            });
        }
        if t.is_word("struct") {
            self.pos += 1;
            if self.eat_punct("{") {
                let mut fields = Vec::new();
                loop {
                    if self.eat_punct("}") {
                        break;
                    }
                    let ty = self.ident("a field type")?;
                    let name = self.ident("a field name")?;
                    self.expect_punct(";", "after a struct field")?;
                    fields.push((ty, name));
                }
                if fields.is_empty() {
                    return Err(Error::at(&loc, "struct with no fields"));
                }
                return Ok(TypeSpec::Struct { fields, loc });
            }
            self.expect_punct("[", "after 'struct'")?;
            let count = self.int_exp()?;
            self.expect_punct("]", "after the struct count")?;
            self.expect_word("of", "after 'struct[N]'")?;
            let of = Box::new(self.type_spec()?);
            return Ok(TypeSpec::StructArray { count, of, loc });
        }
        if t.is_word("c_string") {
            self.pos += 1;
            self.expect_punct("[", "after 'c_string'")?;
            let varying = self.eat_punct("*");
            if varying {
                self.expect_punct(":", "after 'c_string[*'")?;
            }
            let max = self.int_exp()?;
            self.expect_punct("]", "after the string size")?;
            return Ok(TypeSpec::CString { max, varying, loc });
        }
        Ok(TypeSpec::Named(self.ident("a type")?))
    }

    fn symbolic(&self, t: &Token) -> Option<PrimIpcType> {
        if t.kind != TokenKind::Ident {
            return None;
        }
        if t.is_word("polymorphic") {
            return Some(PrimIpcType {
                send_name: POLYMORPHIC,
                recv_name: POLYMORPHIC,
                default_size: PORT_SIZE_BITS,
                text: t.text.clone(),
            });
        }
        SYMBOLIC_TYPES
            .iter()
            .find(|(name, ..)| *name == t.text)
            .map(|&(_, send, recv, size)| PrimIpcType {
                send_name: send,
                recv_name: recv,
                default_size: size,
                text: t.text.clone(),
            })
    }

    fn prim_ipc_type(&mut self) -> Result<PrimIpcType> {
        let Some(t) = self.peek() else {
            return Err(self.error("an IPC type"));
        };
        if let TokenKind::Number(n) = t.kind {
            let name = u32::try_from(n)
                .map_err(|_| Error::at(&t.loc, format!("IPC type '{}' is too large", t.text)))?;
            let text = t.text.clone();
            self.pos += 1;
            return Ok(PrimIpcType {
                send_name: name,
                recv_name: name,
                default_size: 0,
                text,
            });
        }
        match self.symbolic(t) {
            Some(p) => {
                self.pos += 1;
                Ok(p)
            }
            None => Err(self.error("an IPC type (MACH_MSG_TYPE_... or a number)")),
        }
    }

    fn ipc_type(&mut self) -> Result<IpcTypeExpr> {
        let loc = self.here();
        let send = self.prim_ipc_type()?;
        let recv = if self.eat_punct("|") {
            Some(self.prim_ipc_type()?)
        } else {
            None
        };
        Ok(IpcTypeExpr { send, recv, loc })
    }

    /// `, flag` repeated, where `dealloc` may be followed by `[]`.
    fn flags(&mut self) -> Result<Vec<FlagUse>> {
        let mut flags = Vec::new();
        while self.at_punct(",") {
            self.pos += 1;
            let Some(t) = self.peek() else {
                return Err(self.error("an IPC flag"));
            };
            let loc = t.loc.clone();
            let flag = match t.text.to_ascii_lowercase().as_str() {
                _ if t.kind != TokenKind::Ident => return Err(self.error("an IPC flag")),
                "islong" => Flag::Long,
                "isnotlong" => Flag::NotLong,
                "dealloc" => Flag::Dealloc,
                "notdealloc" => Flag::NotDealloc,
                "servercopy" => Flag::ServerCopy,
                "countinout" => Flag::CountInOut,
                "retcode" => Flag::RetCode,
                _ => return Err(self.error("an IPC flag (such as Dealloc or CountInOut)")),
            };
            self.pos += 1;
            let flag = if self.at_punct("[") {
                if flag != Flag::Dealloc {
                    return Err(Error::at(
                        &self.here(),
                        "only 'Dealloc' can be followed by '[]'",
                    ));
                }
                self.pos += 1;
                self.expect_punct("]", "after 'Dealloc['")?;
                Flag::MaybeDealloc
            } else {
                flag
            };
            flags.push(FlagUse { flag, loc });
        }
        Ok(flags)
    }

    fn arguments(&mut self) -> Result<Vec<ArgDecl>> {
        self.expect_punct("(", "before the arguments")?;
        let mut args = Vec::new();
        if self.eat_punct(")") {
            return Ok(args);
        }
        loop {
            args.push(self.argument()?);
            if self.eat_punct(")") {
                break;
            }
            self.expect_punct(";", "between arguments")?;
            // Tolerate a ';' before the closing ')'.
            if self.eat_punct(")") {
                break;
            }
        }
        Ok(args)
    }

    fn argument(&mut self) -> Result<ArgDecl> {
        let direction = self.peek().and_then(|t| {
            if t.kind != TokenKind::Ident {
                return None;
            }
            Some(match t.text.to_ascii_lowercase().as_str() {
                "in" => Direction::In,
                "out" => Direction::Out,
                "inout" => Direction::InOut,
                "requestport" => Direction::RequestPort,
                "replyport" => Direction::ReplyPort,
                "sreplyport" => Direction::SReplyPort,
                "ureplyport" => Direction::UReplyPort,
                "waittime" => Direction::WaitTime,
                "msgoption" => Direction::MsgOption,
                "msgseqno" => Direction::MsgSeqno,
                _ => return None,
            })
        });
        if direction.is_some() {
            self.pos += 1;
        }
        let name = self.ident("an argument name")?;
        self.expect_punct(":", &format!("after argument name '{}'", name.name))?;
        let type_name = self.ident("an argument type")?;
        let ty = if self.at_punct("=") {
            self.pos += 1;
            let spec = self.type_spec()?;
            let trans = self.translations()?;
            ArgType::Inline(NamedType {
                name: type_name,
                spec,
                trans,
            })
        } else {
            ArgType::Named(type_name)
        };
        let flags = self.flags()?;
        Ok(ArgDecl {
            direction,
            name,
            ty,
            flags,
        })
    }

    /// An integer expression: `+ - * /` with the usual precedence, and parentheses.
    fn int_exp(&mut self) -> Result<u32> {
        self.int_sum(0)
    }

    fn int_sum(&mut self, depth: u32) -> Result<u32> {
        let mut v = self.int_product(depth)?;
        loop {
            let loc = self.here();
            if self.eat_punct("+") {
                let r = self.int_product(depth)?;
                v = v
                    .checked_add(r)
                    .ok_or_else(|| Error::at(&loc, "integer overflow in expression"))?;
            } else if self.eat_punct("-") {
                let r = self.int_product(depth)?;
                v = v
                    .checked_sub(r)
                    .ok_or_else(|| Error::at(&loc, "negative value in expression"))?;
            } else {
                return Ok(v);
            }
        }
    }

    fn int_product(&mut self, depth: u32) -> Result<u32> {
        let mut v = self.int_atom(depth)?;
        loop {
            let loc = self.here();
            if self.eat_punct("*") {
                let r = self.int_atom(depth)?;
                v = v
                    .checked_mul(r)
                    .ok_or_else(|| Error::at(&loc, "integer overflow in expression"))?;
            } else if self.eat_punct("/") {
                let r = self.int_atom(depth)?;
                v = v
                    .checked_div(r)
                    .ok_or_else(|| Error::at(&loc, "division by zero in expression"))?;
            } else {
                return Ok(v);
            }
        }
    }

    fn int_atom(&mut self, depth: u32) -> Result<u32> {
        if depth > 100 {
            return Err(Error::at(&self.here(), "expression nested too deeply"));
        }
        if self.eat_punct("(") {
            let v = self.int_sum(depth + 1)?;
            self.expect_punct(")", "in expression")?;
            return Ok(v);
        }
        self.number("a number")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::preprocess::{Config, preprocess_source};

    fn parse_str(src: &str) -> Result<Vec<Statement>> {
        let out = preprocess_source("t.defs", src, &Config::default())?;
        parse(&out.tokens, &Arc::from("t.defs"))
    }

    #[test]
    fn subsystem_and_prefixes() {
        let s = parse_str(
            "subsystem KernelUser kernelserver mach 2000; userprefix r_; serverprefix S_;\n\
             serverdemux my_demux; rcsid \"$Id$\"; msgoption MACH_SEND_INTERRUPT;\n\
             waittime 100; nowaittime; import <mach/std_types.h>; uimport \"u.h\"; simport <s.h>;",
        )
        .expect("parses");
        assert!(
            matches!(&s[0], Statement::Subsystem { name, base: 2000, kernel_user: true, kernel_server: true } if name.name == "mach")
        );
        assert!(matches!(&s[1], Statement::UserPrefix(i) if i.name == "r_"));
        assert!(matches!(&s[2], Statement::ServerPrefix(i) if i.name == "S_"));
        assert!(matches!(&s[3], Statement::ServerDemux(i) if i.name == "my_demux"));
        assert!(matches!(&s[4], Statement::RcsId(r) if r == "$Id$"));
        assert!(matches!(&s[5], Statement::MsgOption(m, _) if m == "MACH_SEND_INTERRUPT"));
        assert!(matches!(&s[6], Statement::WaitTime(Some(w), _) if w == "100"));
        assert!(matches!(&s[7], Statement::WaitTime(None, _)));
        assert!(
            matches!(&s[8], Statement::Import { kind: ImportKind::Both, file } if file == "<mach/std_types.h>")
        );
        assert!(
            matches!(&s[9], Statement::Import { kind: ImportKind::User, file } if file == "\"u.h\"")
        );
        assert!(matches!(
            &s[10],
            Statement::Import {
                kind: ImportKind::Server,
                ..
            }
        ));
    }

    #[test]
    fn type_forms() {
        let s = parse_str(
            "type a = MACH_MSG_TYPE_INTEGER_32;\n\
             type b = (MACH_MSG_TYPE_STRING, 512*8);\n\
             type c = (MACH_MSG_TYPE_INTEGER_8, 8, dealloc[]);\n\
             type d = array[] of a; type e = array[*] of a; type f = array[*:1024] of a;\n\
             type g = array[13] of a; type h = ^array[] of a; type i = struct[2] of a;\n\
             type j = struct { a x; a y; }; type k = c_string[512]; type l = c_string[*:64];\n\
             type m = MACH_MSG_TYPE_MAKE_SEND_ONCE|polymorphic;\n\
             type n = a ctype: int_t cusertype: u_t cservertype: s_t\n\
               intran: t_t from_port(mach_port_t) outtran: mach_port_t to_port(t_t)\n\
               destructor: drop_t(t_t) intranpayload: t_t from_payload;",
        )
        .expect("parses");
        let types: Vec<&NamedType> = s
            .iter()
            .map(|s| match s {
                Statement::Type(t) => t,
                other => panic!("not a type: {other:?}"),
            })
            .collect();
        assert!(matches!(
            &types[1].spec,
            TypeSpec::IpcSized { size: 4096, .. }
        ));
        assert!(
            matches!(&types[2].spec, TypeSpec::IpcSized { flags, .. } if flags[0].flag == Flag::MaybeDealloc)
        );
        assert!(matches!(
            &types[3].spec,
            TypeSpec::VarArray { max: None, .. }
        ));
        assert!(matches!(
            &types[4].spec,
            TypeSpec::VarArray { max: None, .. }
        ));
        assert!(matches!(
            &types[5].spec,
            TypeSpec::VarArray {
                max: Some(1024),
                ..
            }
        ));
        assert!(matches!(&types[6].spec, TypeSpec::Array { count: 13, .. }));
        assert!(matches!(&types[7].spec, TypeSpec::Pointer(..)));
        assert!(matches!(
            &types[8].spec,
            TypeSpec::StructArray { count: 2, .. }
        ));
        assert!(matches!(&types[9].spec, TypeSpec::Struct { fields, .. } if fields.len() == 2));
        assert!(matches!(
            &types[10].spec,
            TypeSpec::CString {
                max: 512,
                varying: false,
                ..
            }
        ));
        assert!(matches!(
            &types[11].spec,
            TypeSpec::CString {
                max: 64,
                varying: true,
                ..
            }
        ));
        assert!(
            matches!(&types[12].spec, TypeSpec::Ipc(IpcTypeExpr { send, recv: Some(r), .. }) if send.send_name == 21 && r.recv_name == POLYMORPHIC)
        );
        assert_eq!(types[13].trans.len(), 7);
    }

    #[test]
    fn routines_directions_flags_and_skips() {
        let s = parse_str(
            "routine r(requestport p: t; in a: t; out b: t, dealloc; inout c: t;\n\
               replyport rp: t; sreplyport s: t; ureplyport u: t; waittime w: t;\n\
               msgoption o: t; msgseqno q: t; d: t = ^array[] of t, Dealloc[], IsLong;\n\
               e: t, NotDealloc, IsNotLong, ServerCopy, CountInOut, RetCode);\n\
             simpleroutine sr(); skip; skip 3;",
        )
        .expect("parses");
        let Statement::Routine(r) = &s[0] else {
            panic!("not a routine")
        };
        let dirs: Vec<Option<Direction>> = r.args.iter().map(|a| a.direction).collect();
        assert_eq!(
            dirs,
            [
                Some(Direction::RequestPort),
                Some(Direction::In),
                Some(Direction::Out),
                Some(Direction::InOut),
                Some(Direction::ReplyPort),
                Some(Direction::SReplyPort),
                Some(Direction::UReplyPort),
                Some(Direction::WaitTime),
                Some(Direction::MsgOption),
                Some(Direction::MsgSeqno),
                None,
                None
            ]
        );
        assert!(matches!(&r.args[10].ty, ArgType::Inline(_)));
        let flags: Vec<Flag> = r.args[11].flags.iter().map(|f| f.flag).collect();
        assert_eq!(
            flags,
            [
                Flag::NotDealloc,
                Flag::NotLong,
                Flag::ServerCopy,
                Flag::CountInOut,
                Flag::RetCode
            ]
        );
        assert!(matches!(
            &s[1],
            Statement::Routine(RoutineDecl {
                kind: RoutineKind::SimpleRoutine,
                ..
            })
        ));
        assert!(matches!(&s[2], Statement::Skip(1, _)));
        assert!(matches!(&s[3], Statement::Skip(3, _)));
    }

    #[test]
    fn keywords_ignore_case() {
        let s = parse_str("SubSystem m 1; ROUTINE r(IN x: t);").expect("parses");
        assert_eq!(s.len(), 2);
    }

    #[test]
    fn syntax_errors_point_at_the_text() {
        let e = parse_str("routine r(x: t)\nroutine").expect_err("no ;");
        assert_eq!(
            e.to_string(),
            "t.defs:2:1: expected ';' at the end of the statement, found 'routine'"
        );
        let e = parse_str("type t = array[4 of x;").expect_err("bad array");
        assert_eq!(
            e.to_string(),
            "t.defs:1:18: expected ']' after the array size, found 'of'"
        );
        let e = parse_str("routine out(x: t);").expect_err("keyword");
        assert_eq!(
            e.to_string(),
            "t.defs:1:9: expected a routine name, found keyword 'out'"
        );
        let e = parse_str("type t = (MACH_MSG_TYPE_BYTE, 8, islong[]);").expect_err("flag");
        assert_eq!(
            e.to_string(),
            "t.defs:1:40: only 'Dealloc' can be followed by '[]'"
        );
        let e = parse_str("skip").expect_err("eof");
        assert_eq!(
            e.to_string(),
            "t.defs:1:1: expected ';' at the end of the statement, found end of input"
        );
        let e = parse_str("type t = array[1/0] of x;").expect_err("div");
        assert_eq!(e.to_string(), "t.defs:1:17: division by zero in expression");
    }
}
