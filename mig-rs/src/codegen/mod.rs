//! The Rust code generator: from a checked [`Subsystem`], the client stubs (user side, in
//! `user`) and the server trait with its demux function (server side, in `server`), as
//! `no_std` Rust source whose only dependency is the runtime, `mach_abi::mig`.
//!
//! This module holds what both sides share: how an argument's IPC type looks in Rust (its
//! [`Shape`]), identifiers, descriptor literals and the complex-bit rules. Offsets and sizes
//! come from `layout`, so generated code and `--layout-json` agree. Generated code decodes
//! with bounds-checked helpers and never indexes unchecked, so no message can make it panic.

mod server;
mod user;

use crate::error::{Error, Result};
use crate::parser::POLYMORPHIC;
use crate::routine::{Arg, Routine, Subsystem};
use crate::types::{Dealloc, IpcType, TYPE_PORT_NAME, is_port_right_name};
use std::collections::HashSet;
use std::fmt::Write;

pub use server::server_code;
pub use user::user_code;

/// Options of code generation.
#[derive(Clone, Debug)]
pub struct CodegenOptions {
    /// Rust path of the runtime module generated code uses; `mach_abi::mig` unless a crate
    /// re-exports it elsewhere. Generated modules re-export it as `mig_rt`.
    pub runtime_path: String,
}

impl Default for CodegenOptions {
    fn default() -> Self {
        CodegenOptions {
            runtime_path: "mach_abi::mig".to_string(),
        }
    }
}

/// `MACH_MSG_TYPE_BOOLEAN`.
const TYPE_BOOLEAN: u32 = 0;
/// `MACH_MSG_TYPE_MAKE_SEND_ONCE`: how a stub sends its reply port.
const MAKE_SEND_ONCE: u32 = 21;

/// Rust element types that travel in messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Elem {
    U8,
    U16,
    I16,
    U32,
    I32,
    U64,
    I64,
    /// `boolean_t` (scalars only).
    Bool,
    /// An inline port right: a 64-bit slot.
    Slot,
    /// A `MACH_MSG_TYPE_PORT_NAME` (32 bits), or a name in an out-of-line port array.
    Name,
}

impl Elem {
    fn rust(self) -> &'static str {
        match self {
            Elem::U8 => "u8",
            Elem::U16 => "u16",
            Elem::I16 => "i16",
            Elem::U32 => "u32",
            Elem::I32 => "i32",
            Elem::U64 => "u64",
            Elem::I64 => "i64",
            Elem::Bool => "bool",
            Elem::Slot => "mig_rt::PortSlot",
            Elem::Name => "mig_rt::PortName",
        }
    }

    /// Bytes per element in the message.
    fn bytes(self) -> u32 {
        match self {
            Elem::U8 => 1,
            Elem::U16 | Elem::I16 => 2,
            Elem::U32 | Elem::I32 | Elem::Bool | Elem::Name => 4,
            Elem::U64 | Elem::I64 | Elem::Slot => 8,
        }
    }

    /// The element as user code holds it: port slots are names there.
    fn user(self) -> Elem {
        if self == Elem::Slot { Elem::Name } else { self }
    }
}

/// How an argument appears in Rust.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Shape {
    /// One value.
    Scalar(Elem),
    /// `[T; N]` (fixed arrays and structures).
    Fixed(Elem, u32),
    /// A C string in a fixed `N`-byte field.
    Str(u32),
    /// A C string of at most `N` bytes, NUL included (`c_string[*:N]`).
    VarStr(u32),
    /// An inline array of at most N elements.
    Var(Elem, u32),
    /// `array[] of`: inline up to N elements, else out-of-line.
    Indefinite(Elem, u32),
    /// Out-of-line data of these elements.
    Ool(Elem),
}

fn int_elem(size: u32, signed: bool) -> Option<Elem> {
    Some(match size {
        8 => Elem::U8,
        16 if signed => Elem::I16,
        16 => Elem::U16,
        32 if signed => Elem::I32,
        32 => Elem::U32,
        64 if signed => Elem::I64,
        64 => Elem::U64,
        _ => return None,
    })
}

fn elem_of(ty: &IpcType) -> Option<Elem> {
    if ty.is_port() {
        return (ty.size == 64).then_some(Elem::Slot);
    }
    if ty.in_name == TYPE_PORT_NAME && ty.size == 32 {
        return Some(Elem::Name);
    }
    int_elem(ty.size, ty.signed.unwrap_or(true))
}

fn unsupported(arg: &Arg, what: &str) -> Error {
    Error::at(
        &arg.loc,
        format!(
            "'{}' (type '{}'): {what} is not supported by the Rust generator",
            arg.name, arg.ty.name
        ),
    )
}

fn shape_of(arg: &Arg) -> Result<Shape> {
    let ty = &arg.ty;
    if !ty.inline {
        let e = if ty.is_port() || (ty.in_name == TYPE_PORT_NAME && ty.size == 32) {
            Some(Elem::Name)
        } else {
            int_elem(ty.size, ty.signed.unwrap_or(true))
        };
        return match e {
            Some(e) => Ok(Shape::Ool(e)),
            None => Err(unsupported(
                arg,
                &format!("out-of-line data of {}-bit elements", ty.size),
            )),
        };
    }
    if ty.is_string {
        let n = if ty.var_array {
            ty.number
        } else {
            ty.max_data_bytes()
        };
        if n == 0 {
            return Err(unsupported(arg, "an empty string"));
        }
        return Ok(if ty.var_array {
            Shape::VarStr(n)
        } else {
            Shape::Str(n)
        });
    }
    let elem = elem_of(ty);
    if ty.var_array {
        let Some(e) = elem else {
            return Err(unsupported(
                arg,
                &format!("a variable array of {}-bit elements", ty.size),
            ));
        };
        return Ok(if ty.indefinite {
            Shape::Indefinite(e, ty.number)
        } else {
            Shape::Var(e, ty.number)
        });
    }
    Ok(match elem {
        Some(_) if ty.number == 1 && ty.in_name == TYPE_BOOLEAN && ty.size == 32 => {
            Shape::Scalar(Elem::Bool)
        }
        Some(e) if ty.number == 1 => Shape::Scalar(e),
        Some(Elem::Slot) => return Err(unsupported(arg, "a fixed array of port rights")),
        Some(e) => Shape::Fixed(e, ty.number),
        None => Shape::Fixed(Elem::U8, ty.max_data_bytes()),
    })
}

const RUST_KEYWORDS: &[&str] = &[
    "as", "async", "await", "box", "break", "const", "continue", "dyn", "else", "enum", "extern",
    "false", "fn", "for", "gen", "if", "impl", "in", "let", "loop", "macro", "match", "mod",
    "move", "mut", "priv", "pub", "ref", "return", "static", "struct", "trait", "true", "try",
    "type", "typeof", "unsafe", "unsized", "use", "virtual", "where", "while", "yield", "abstract",
    "become", "do", "final", "override",
];

/// A snake_case Rust identifier for a MIG name (raw if it is a keyword).
fn snake(name: &str) -> String {
    let mut s = String::new();
    let mut prev_lower = false;
    for c in name.chars() {
        if c.is_ascii_uppercase() {
            if prev_lower {
                s.push('_');
            }
            s.push(c.to_ascii_lowercase());
            prev_lower = false;
        } else {
            s.push(c);
            prev_lower = c.is_ascii_lowercase() || c.is_ascii_digit();
        }
    }
    if matches!(s.as_str(), "self" | "super" | "crate" | "_") {
        s.push('_');
    } else if RUST_KEYWORDS.contains(&s.as_str()) {
        s.insert_str(0, "r#");
    }
    s
}

/// The identifier without a raw prefix, for building derived names.
fn bare(ident: &str) -> &str {
    ident.strip_prefix("r#").unwrap_or(ident)
}

fn camel(name: &str) -> String {
    let mut s = String::new();
    for part in name.split('_').filter(|p| !p.is_empty()) {
        let mut chars = part.chars();
        if let Some(c) = chars.next() {
            s.push(c.to_ascii_uppercase());
            s.extend(chars);
        }
    }
    if s.is_empty() || s.starts_with(|c: char| c.is_ascii_digit()) {
        s.insert_str(0, "Mig");
    }
    s
}

fn upper(name: &str) -> String {
    snake(name).trim_start_matches("r#").to_ascii_uppercase()
}

fn dealloc_expr(d: Dealloc, maybe: &str) -> String {
    match d {
        Dealloc::Yes => "true".into(),
        Dealloc::No => "false".into(),
        Dealloc::Maybe => maybe.to_string(),
    }
}

fn desc_literal(
    name: &str,
    size: u32,
    number: &str,
    inline: bool,
    long: bool,
    dealloc: &str,
) -> String {
    format!(
        "mig_rt::TypeDesc {{ name: {name}, size: {size}, number: {number}, inline: {inline}, \
         longform: {long}, deallocate: {dealloc} }}"
    )
}

/// What a received descriptor for `arg` must look like.
fn expect_literal(arg: &Arg, shape: Shape) -> String {
    let ty = &arg.ty;
    let name = if arg.recv_is_poly() {
        "None".to_string()
    } else {
        format!("Some({})", ty.out_name)
    };
    let (count, inline) = match shape {
        Shape::Scalar(_) | Shape::Fixed(..) | Shape::Str(_) => {
            (format!("Exactly({})", ty.number), "Some(true)")
        }
        Shape::Var(_, max) | Shape::VarStr(max) => (format!("AtMost({max})"), "Some(true)"),
        Shape::Indefinite(_, max) => (format!("AtMost({max})"), "None"),
        Shape::Ool(_) => ("AtMost(u32::MAX)".to_string(), "Some(false)"),
    };
    format!(
        "mig_rt::Expect {{ name: {name}, size: {}, ool_size: {}, count: mig_rt::Count::{count}, \
         inline: {inline}, longform: {} }}",
        ty.size,
        ty.ool_size(),
        arg.long_form
    )
}

/// The complex bit a received message must have: `Some` if fixed, `None` if it varies.
fn complex_check(routine: &Routine, items: &[crate::routine::Item]) -> String {
    let (mut must, mut may) = (false, false);
    for item in items {
        if let crate::routine::Item::Arg(i) = item
            && let Some(a) = routine.args.get(*i)
        {
            if is_port_right_name(a.ty.out_name) || !a.ty.inline {
                must = true;
            }
            if a.recv_is_poly() || a.ty.indefinite {
                may = true;
            }
        }
    }
    if must {
        "Some(true)".into()
    } else if may {
        "None".into()
    } else {
        "Some(false)".into()
    }
}

/// The complex bit of a message being sent, from a fixed part and run-time parts (each a
/// Rust boolean expression).
fn complex_expr(fixed: bool, runtime: &[String]) -> String {
    if fixed {
        "true".into()
    } else if runtime.is_empty() {
        "false".into()
    } else {
        runtime.join(" || ")
    }
}

/// The `MACH_MSGH_BITS_COMPLEX` term of a header's bits for `complex`.
fn complex_bits(complex: &str) -> String {
    match complex {
        "true" => " | mig_rt::MACH_MSGH_BITS_COMPLEX".to_string(),
        "false" => String::new(),
        expr => format!(" | if {expr} {{ mig_rt::MACH_MSGH_BITS_COMPLEX }} else {{ 0 }}"),
    }
}

/// True if `name` (a send name) always makes a message complex.
fn sends_right(name: u32) -> bool {
    name != POLYMORPHIC && is_port_right_name(name)
}

/// The type name of a header port or the fixed disposition, or `None` if polymorphic.
fn fixed_name(name: u32) -> Option<u32> {
    (name != POLYMORPHIC).then_some(name)
}

/// Generated text, line by line.
struct Gen<'a> {
    sub: &'a Subsystem,
    out: String,
}

impl Gen<'_> {
    fn line(&mut self, indent: usize, text: &str) {
        if text.is_empty() {
            self.out.push('\n');
            return;
        }
        for _ in 0..indent {
            self.out.push_str("    ");
        }
        self.out.push_str(text);
        self.out.push('\n');
    }

    fn lines(&mut self, indent: usize, lines: &[String]) {
        for l in lines {
            self.line(indent, l);
        }
    }

    /// The header comment, the runtime import and the subsystem's constants.
    fn prelude(&mut self, side: &str, opts: &CodegenOptions) {
        let sub = self.sub;
        let _ = writeln!(
            self.out,
            "// {side} code for MIG subsystem `{}` (base {}), generated by mig-rs. Do not edit.",
            sub.name, sub.base
        );
        if let Some(rcs) = &sub.rcs_id {
            let _ = writeln!(self.out, "// rcsid: {}", rcs.replace('\n', " "));
        }
        for (kind, file) in &sub.imports {
            let _ = writeln!(self.out, "// C import ({kind:?}): {file}");
        }
        let _ = writeln!(self.out);
        let _ = writeln!(self.out, "/// The runtime this code uses.");
        let _ = writeln!(self.out, "#[doc(hidden)]");
        let _ = writeln!(self.out, "pub use {} as mig_rt;", opts.runtime_path);
        let _ = writeln!(self.out);
        let _ = writeln!(self.out, "/// Name of the subsystem.");
        let _ = writeln!(self.out, "pub const SUBSYSTEM: &str = \"{}\";", sub.name);
        let _ = writeln!(self.out, "/// Message id of the subsystem's first routine.");
        let _ = writeln!(self.out, "pub const BASE: i32 = {};", sub.base);
        let (mut max_req, mut max_rep) = (0u32, 48u32);
        for r in &sub.routines {
            let _ = writeln!(self.out, "/// Request id of `{}`.", r.name);
            let _ = writeln!(self.out, "pub const {}_ID: i32 = {};", upper(&r.name), r.id);
            max_req = max_req.max(crate::layout::request_layout(sub, r).max_size);
            if !r.is_simple() {
                max_rep = max_rep.max(crate::layout::reply_layout(sub, r).max_size);
            }
        }
        let _ = writeln!(
            self.out,
            "/// Size of the largest request of the subsystem."
        );
        let _ = writeln!(self.out, "pub const MAX_REQUEST_SIZE: usize = {max_req};");
        let _ = writeln!(
            self.out,
            "/// Size of the largest reply of the subsystem (at least an error reply)."
        );
        let _ = writeln!(self.out, "pub const MAX_REPLY_SIZE: usize = {max_rep};");
        let _ = writeln!(
            self.out,
            "/// Size of the largest reply to request `id` (at least an error reply), or `None`"
        );
        let _ = writeln!(
            self.out,
            "/// for an id that is not one of the subsystem's routines (or a simpleroutine's)."
        );
        let _ = writeln!(
            self.out,
            "pub const fn max_reply_size(id: i32) -> ::core::option::Option<usize> {{"
        );
        let _ = writeln!(self.out, "    match id {{");
        for r in sub.routines.iter().filter(|r| !r.is_simple()) {
            let size = crate::layout::reply_layout(sub, r).max_size.max(48);
            let _ = writeln!(
                self.out,
                "        {}_ID => ::core::option::Option::Some({size}),",
                upper(&r.name)
            );
        }
        let _ = writeln!(self.out, "        _ => ::core::option::Option::None,");
        let _ = writeln!(self.out, "    }}");
        let _ = writeln!(self.out, "}}");
    }
}

/// Checks that generated Rust names of one routine do not collide.
fn check_unique<'a>(names: impl IntoIterator<Item = &'a str>, r: &Routine) -> Result<()> {
    let mut seen = HashSet::new();
    for n in names {
        if !seen.insert(bare(n).to_string()) {
            return Err(Error::at(
                &r.loc,
                format!(
                    "routine '{}': two Rust names collide as '{}' (rename an argument)",
                    r.name,
                    bare(n)
                ),
            ));
        }
    }
    Ok(())
}

/// The value of a `msgoption` statement, as a number (the C names of `mach_msg` options).
fn msg_option_value(r: &Routine, text: &str) -> Result<String> {
    let mut value = 0u32;
    for part in text.split('|').map(str::trim) {
        value |= match part {
            "MACH_MSG_OPTION_NONE" => 0,
            "MACH_SEND_TIMEOUT" => 0x10,
            "MACH_SEND_NOTIFY" => 0x20,
            "MACH_SEND_INTERRUPT" => 0x40,
            "MACH_SEND_CANCEL" => 0x80,
            "MACH_RCV_TIMEOUT" => 0x100,
            "MACH_RCV_NOTIFY" => 0x200,
            "MACH_RCV_INTERRUPT" => 0x400,
            "MACH_RCV_LARGE" => 0x800,
            n => match n.strip_prefix("0x") {
                Some(hex) => u32::from_str_radix(hex, 16).ok(),
                None => n.parse().ok(),
            }
            .ok_or_else(|| {
                Error::at(
                    &r.loc,
                    format!("msgoption '{n}' is not a mach_msg option mig-rs knows"),
                )
            })?,
        };
    }
    Ok(format!("{value:#x}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers() {
        assert_eq!(snake("host_info"), "host_info");
        assert_eq!(snake("OldName"), "old_name");
        assert_eq!(snake("type"), "r#type");
        assert_eq!(snake("self"), "self_");
        assert_eq!(camel("mach_host"), "MachHost");
        assert_eq!(camel("_x_"), "X");
        assert_eq!(upper("host_info"), "HOST_INFO");
        assert_eq!(upper("type"), "TYPE");
    }
}
