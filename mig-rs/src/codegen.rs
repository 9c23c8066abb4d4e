//! The Rust code generator: from a checked [`Subsystem`], the client stubs (user side) and the
//! server trait plus demux function (server side), as `no_std` Rust source that uses only the
//! mig-rs runtime module (see `runtime.rs`).
//!
//! Offsets and sizes come from `layout`, so generated code and `--layout-json` agree. The
//! generated code decodes with bounds-checked helpers and never indexes unchecked, so no
//! message can make it panic.

use crate::error::{Error, Result};
use crate::layout::{MessageLayout, reply_layout, request_layout};
use crate::routine::{Arg, ArgKind, Item, Routine, Subsystem};
use crate::types::{Dealloc, IpcType, is_port_right_name};
use std::collections::HashSet;
use std::fmt::Write;

/// Options of code generation.
#[derive(Clone, Debug)]
pub struct CodegenOptions {
    /// Rust path of the runtime module generated code uses (`mig_rs::generate_runtime()`
    /// included somewhere), e.g. `crate::mig_rt`.
    pub runtime_path: String,
}

impl Default for CodegenOptions {
    fn default() -> Self {
        CodegenOptions {
            runtime_path: "crate::mig_rt".to_string(),
        }
    }
}

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
    Port,
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
            Elem::Port => "mig_rt::PortName",
        }
    }

    fn bytes(self) -> u32 {
        match self {
            Elem::U8 => 1,
            Elem::U16 | Elem::I16 => 2,
            Elem::U32 | Elem::I32 => 4,
            Elem::U64 | Elem::I64 | Elem::Port => 8,
        }
    }
}

/// How an argument appears in Rust.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Shape {
    /// One value.
    Scalar(Elem),
    /// `[T; N]`.
    Fixed(Elem, u32),
    /// An inline array of at most N elements.
    Var(Elem, u32),
    /// `array[] of`: inline up to N elements, else out-of-line.
    Indefinite(Elem, u32),
    /// Out-of-line data.
    Ool,
}

fn elem_of(ty: &IpcType) -> Option<Elem> {
    if ty.is_port() && ty.size == 64 {
        return Some(Elem::Port);
    }
    let signed = ty.signed.unwrap_or(true);
    Some(match ty.size {
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

fn shape_of(arg: &Arg) -> Result<Shape> {
    let ty = &arg.ty;
    if !ty.inline {
        return Ok(Shape::Ool);
    }
    let elem = elem_of(ty);
    if ty.var_array {
        let Some(e) = elem else {
            return Err(Error::at(
                &arg.loc,
                format!(
                    "'{}': variable arrays of {}-bit elements are not supported by the Rust \
                     generator",
                    arg.name, ty.size
                ),
            ));
        };
        return Ok(if ty.indefinite {
            Shape::Indefinite(e, ty.number)
        } else {
            Shape::Var(e, ty.number)
        });
    }
    Ok(match elem {
        Some(e) if ty.number == 1 => Shape::Scalar(e),
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

fn expect_literal(arg: &Arg, shape: Shape) -> String {
    let ty = &arg.ty;
    let name = if arg.recv_is_poly() {
        "None".to_string()
    } else {
        format!("Some({})", ty.out_name)
    };
    let (count, inline) = match shape {
        Shape::Scalar(_) | Shape::Fixed(..) => {
            (format!("Exactly({})", ty.number), "Some(true)".to_string())
        }
        Shape::Var(_, max) => (format!("AtMost({max})"), "Some(true)".to_string()),
        Shape::Indefinite(..) => ("AtMost(u32::MAX)".to_string(), "None".to_string()),
        Shape::Ool => ("AtMost(u32::MAX)".to_string(), "Some(false)".to_string()),
    };
    format!(
        "mig_rt::Expect {{ name: {name}, size: {}, count: mig_rt::Count::{count}, inline: \
         {inline}, longform: {} }}",
        ty.descriptor_size(),
        arg.long_form
    )
}

/// The complex bit a received message must have: `Some` if fixed, `None` if it varies.
fn complex_check(routine: &Routine, items: &[Item]) -> String {
    let (mut must, mut may) = (false, false);
    for item in items {
        if let Item::Arg(i) = item
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

/// The complex bit of a message being sent, as a Rust expression; `poly(p)` names the
/// variable holding argument `p`'s run-time type name.
fn complex_send(
    routine: &Routine,
    items: &[Item],
    kernel_reply: bool,
    poly: impl Fn(&Arg) -> String,
) -> String {
    let mut must = false;
    let mut runtime = Vec::new();
    for item in items {
        if let Item::Arg(i) = item
            && let Some(a) = routine.args.get(*i)
        {
            let name = a.send_name(kernel_reply);
            if is_port_right_name(name) || !a.ty.inline {
                must = true;
            }
            if a.send_is_poly(kernel_reply) {
                runtime.push(format!("mig_rt::is_port_right({})", poly(a)));
            }
        }
    }
    if must {
        "true".into()
    } else if runtime.is_empty() {
        "false".into()
    } else {
        runtime.join(" || ")
    }
}

fn header_port_name(ty: &IpcType) -> Option<u32> {
    (ty.in_name != crate::parser::POLYMORPHIC).then_some(ty.in_name)
}

struct Gen<'a> {
    sub: &'a Subsystem,
    out: String,
}

impl Gen<'_> {
    fn line(&mut self, indent: usize, text: &str) {
        for _ in 0..indent {
            self.out.push_str("    ");
        }
        self.out.push_str(text);
        self.out.push('\n');
    }

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
        let _ = writeln!(self.out, "use {} as mig_rt;", opts.runtime_path);
        let _ = writeln!(self.out);
        let _ = writeln!(self.out, "/// Name of the subsystem.");
        let _ = writeln!(self.out, "pub const SUBSYSTEM: &str = \"{}\";", sub.name);
        let _ = writeln!(self.out, "/// Message id of the subsystem's first routine.");
        let _ = writeln!(self.out, "pub const BASE: i32 = {};", sub.base);
        let (mut max_req, mut max_rep) = (0u32, 48u32);
        for r in &sub.routines {
            let _ = writeln!(self.out, "/// Request id of `{}`.", r.name);
            let _ = writeln!(self.out, "pub const {}_ID: i32 = {};", upper(&r.name), r.id);
            max_req = max_req.max(request_layout(sub, r).max_size);
            if !r.is_simple() {
                max_rep = max_rep.max(reply_layout(sub, r).max_size);
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
    }

    fn routine_doc(&mut self, r: &Routine) {
        let reply = if r.is_simple() {
            "no reply (simpleroutine)".to_string()
        } else {
            format!("reply id {}", r.reply_id())
        };
        self.line(
            0,
            &format!("/// `{}`: request id {}, {reply}.", r.name, r.id),
        );
        for a in &r.args {
            let mut extra = String::new();
            if let Some(f) = &a.ty.c.intran {
                let _ = write!(extra, ", C in-translation `{f}`");
            }
            if let Some(f) = &a.ty.c.outtran {
                let _ = write!(extra, ", C out-translation `{f}`");
            }
            self.line(
                0,
                &format!(
                    "/// - `{}`: {:?}, type `{}`{extra}",
                    a.name, a.kind, a.ty.name
                ),
            );
        }
    }
}

fn check_unique(names: &[String], r: &Routine) -> Result<()> {
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

/// Generates the user side (client stubs) of `sub`.
pub fn user_code(sub: &Subsystem, opts: &CodegenOptions) -> Result<String> {
    let mut g = Gen {
        sub,
        out: String::new(),
    };
    g.prelude("User-side", opts);
    for r in &sub.routines {
        user_routine(&mut g, r)?;
    }
    Ok(g.out)
}

fn user_routine(g: &mut Gen<'_>, r: &Routine) -> Result<()> {
    let sub = g.sub;
    let req = request_layout(sub, r);
    let rep = reply_layout(sub, r);
    let fn_name = snake(&format!("{}{}", sub.user_prefix, r.name));
    let out_struct = format!("{}Out", camel(&r.name));

    let mut params: Vec<(String, String)> = Vec::new();
    let mut fields: Vec<(String, String, String)> = Vec::new();
    let mut shapes = Vec::new();
    for a in &r.args {
        let p = snake(&a.name);
        let b = bare(&p).to_string();
        let shape = shape_of(a)?;
        shapes.push(shape);
        match a.kind {
            ArgKind::RequestPort | ArgKind::ReplyPort | ArgKind::UReplyPort => {
                params.push((p.clone(), "mig_rt::PortName".into()));
                if header_port_name(&a.ty).is_none() {
                    params.push((format!("{b}_poly"), "u8".into()));
                }
            }
            ArgKind::WaitTime => params.push((p, "u32".into())),
            ArgKind::MsgOption => params.push((p, "i32".into())),
            ArgKind::SReplyPort | ArgKind::MsgSeqno => {}
            ArgKind::In | ArgKind::InOut | ArgKind::Out => {
                let inout = a.kind == ArgKind::InOut;
                let m = if inout { "&mut " } else { "&" };
                match (a.kind, shape) {
                    (ArgKind::Out, Shape::Scalar(e)) => {
                        fields.push((p.clone(), e.rust().into(), format!("`{}`", a.name)))
                    }
                    (ArgKind::Out, Shape::Fixed(e, n)) => fields.push((
                        p.clone(),
                        format!("[{}; {n}]", e.rust()),
                        format!("`{}`", a.name),
                    )),
                    (ArgKind::Out, Shape::Ool) => fields.push((
                        p.clone(),
                        "mig_rt::Ool".into(),
                        format!("`{}` (out-of-line)", a.name),
                    )),
                    (ArgKind::Out, Shape::Var(e, _)) => {
                        params.push((p.clone(), format!("&mut [{}]", e.rust())));
                        fields.push((
                            format!("{b}_count"),
                            "u32".into(),
                            format!("Number of elements stored in `{}`", a.name),
                        ));
                    }
                    (ArgKind::Out, Shape::Indefinite(e, _)) => {
                        params.push((p.clone(), format!("&mut [{}]", e.rust())));
                        fields.push((
                            p.clone(),
                            "mig_rt::Received".into(),
                            format!("Where the elements of `{}` are", a.name),
                        ));
                    }
                    (_, Shape::Scalar(e)) => {
                        let t = if inout {
                            format!("&mut {}", e.rust())
                        } else {
                            e.rust().to_string()
                        };
                        params.push((p.clone(), t));
                    }
                    (_, Shape::Fixed(e, n)) => {
                        params.push((p.clone(), format!("{m}[{}; {n}]", e.rust())))
                    }
                    (_, Shape::Var(e, _) | Shape::Indefinite(e, _)) => {
                        params.push((p.clone(), format!("&[{}]", e.rust())))
                    }
                    (_, Shape::Ool) => params.push((
                        p.clone(),
                        if inout {
                            "&mut mig_rt::Ool".into()
                        } else {
                            "mig_rt::Ool".into()
                        },
                    )),
                }
                if a.kind.in_request() && a.send_is_poly(false) {
                    params.push((
                        format!("{b}_poly"),
                        if inout { "&mut u8" } else { "u8" }.into(),
                    ));
                } else if a.kind == ArgKind::Out && a.recv_is_poly() {
                    fields.push((
                        format!("{b}_poly"),
                        "u8".into(),
                        format!("Type name of `{}` as received", a.name),
                    ));
                }
                if a.kind.in_request() && a.dealloc == Dealloc::Maybe {
                    params.push((format!("{b}_dealloc"), "bool".into()));
                }
            }
        }
    }
    let mut all: Vec<String> = params.iter().map(|p| p.0.clone()).collect();
    all.push("transport".into());
    check_unique(&all, r)?;
    let fnames: Vec<String> = fields.iter().map(|f| f.0.clone()).collect();
    check_unique(&fnames, r)?;

    // The result struct.
    let ret = if fields.is_empty() {
        "()".to_string()
    } else {
        g.line(0, &format!("/// What `{}` returns.", r.name));
        g.line(0, "#[derive(Clone, Copy, Debug, PartialEq, Eq)]");
        g.line(0, &format!("pub struct {out_struct} {{"));
        for (name, ty, doc) in &fields {
            g.line(1, &format!("/// {doc}."));
            g.line(1, &format!("pub {name}: {ty},"));
        }
        g.line(0, "}");
        g.line(0, "");
        out_struct.clone()
    };

    g.routine_doc(r);
    if params.len() + 1 > 7 {
        g.line(
            0,
            "#[allow(clippy::too_many_arguments)] // One parameter per .defs argument.",
        );
    }
    g.line(
        0,
        &format!("pub fn {fn_name}<T: mig_rt::Transport + ?Sized>("),
    );
    g.line(1, "transport: &mut T,");
    for (n, t) in &params {
        g.line(1, &format!("{n}: {t},"));
    }
    g.line(0, &format!(") -> Result<{ret}, mig_rt::ReturnCode> {{"));

    let buf_size = if r.is_simple() {
        req.max_size
    } else {
        req.max_size.max(rep.max_size)
    };
    g.line(
        1,
        &format!("let mut mig_buf = mig_rt::MsgBuf::<{buf_size}>::new();"),
    );

    // Header ports and options.
    let request_port = r.request_port();
    let reply_arg = r
        .args
        .iter()
        .find(|a| matches!(a.kind, ArgKind::ReplyPort | ArgKind::UReplyPort));
    let (reply_expr, reply_disp) = match reply_arg {
        Some(a) => {
            let p = snake(&a.name);
            let disp = header_port_name(&a.ty)
                .map_or_else(|| format!("{}_poly", bare(&p)), |n| n.to_string());
            (p, disp)
        }
        None if r.is_simple() => ("mig_rt::PortName::NULL".to_string(), "0".to_string()),
        None => {
            g.line(1, "let mig_reply_port = transport.reply_port();");
            ("mig_reply_port".to_string(), "21".to_string())
        }
    };
    let (req_expr, req_disp) = match request_port {
        Some(a) => {
            let p = snake(&a.name);
            let disp = header_port_name(&a.ty)
                .map_or_else(|| format!("{}_poly", bare(&p)), |n| n.to_string());
            (p, disp)
        }
        None => ("mig_rt::PortName::NULL".to_string(), "0".to_string()),
    };
    let timeout = match r.args.iter().find(|a| a.kind == ArgKind::WaitTime) {
        Some(a) => format!("Some({})", snake(&a.name)),
        None => match &r.wait_time {
            Some(w) => format!("Some({w})"),
            None => "None".to_string(),
        },
    };
    let option = match r.args.iter().find(|a| a.kind == ArgKind::MsgOption) {
        Some(a) => snake(&a.name),
        None => r.msg_option.clone().unwrap_or_else(|| "0".to_string()),
    };

    // The request.
    let mut_e = if r.request.is_empty() { "" } else { "mut " };
    g.line(
        1,
        &format!("let {mut_e}mig_e = mig_rt::Encoder::new(&mut mig_buf.bytes);"),
    );
    for item in &r.request {
        match *item {
            Item::RetCode => {}
            Item::CountInOut(i) => {
                let Some(a) = r.args.get(i) else { continue };
                let max = match shapes.get(i) {
                    Some(Shape::Var(_, m) | Shape::Indefinite(_, m)) => *m,
                    _ => a.ty.number,
                };
                g.line(1, "mig_e.item(mig_rt::INT32_DESC);");
                g.line(
                    1,
                    &format!(
                        "mig_e.put::<u32>({}.len().min({max}) as u32);",
                        snake(&a.name)
                    ),
                );
            }
            Item::Arg(i) => {
                let (Some(a), Some(&shape)) = (r.args.get(i), shapes.get(i)) else {
                    continue;
                };
                let p = snake(&a.name);
                let b = bare(&p).to_string();
                let inout = a.kind == ArgKind::InOut;
                let name = if a.send_is_poly(false) {
                    if inout {
                        format!("*{b}_poly")
                    } else {
                        format!("{b}_poly")
                    }
                } else {
                    a.ty.in_name.to_string()
                };
                let dealloc = dealloc_expr(a.dealloc, &format!("{b}_dealloc"));
                let size = a.ty.descriptor_size();
                let long = a.long_form;
                match shape {
                    Shape::Scalar(e) => {
                        let d = desc_literal(&name, size, "1", true, long, &dealloc);
                        g.line(1, &format!("mig_e.item({d});"));
                        let v = if inout { format!("*{p}") } else { p.clone() };
                        g.line(1, &format!("mig_e.put::<{}>({v});", e.rust()));
                    }
                    Shape::Fixed(e, _) => {
                        let d = desc_literal(
                            &name,
                            size,
                            &a.ty.number.to_string(),
                            true,
                            long,
                            &dealloc,
                        );
                        g.line(1, &format!("mig_e.item({d});"));
                        g.line(1, &format!("mig_e.put_slice::<{}>(&{p}[..]);", e.rust()));
                    }
                    Shape::Var(e, max) | Shape::Indefinite(e, max) => {
                        g.line(1, &format!("if {p}.len() > {max} {{"));
                        g.line(2, "return Err(mig_rt::ReturnCode::MIG_ARRAY_TOO_LARGE);");
                        g.line(1, "}");
                        let d = desc_literal(
                            &name,
                            size,
                            &format!("{p}.len() as u32"),
                            true,
                            long,
                            &dealloc,
                        );
                        g.line(1, &format!("mig_e.item({d});"));
                        g.line(1, &format!("mig_e.put_slice::<{}>({p});", e.rust()));
                    }
                    Shape::Ool => {
                        let d =
                            desc_literal(&name, size, &format!("{p}.count"), false, long, &dealloc);
                        g.line(1, &format!("mig_e.item({d});"));
                        g.line(1, &format!("mig_e.put::<u64>({p}.address);"));
                    }
                }
            }
        }
    }
    let complex = complex_send(r, &r.request, false, |a| {
        let b = snake(&a.name);
        if a.kind == ArgKind::InOut {
            format!("*{}_poly", bare(&b))
        } else {
            format!("{}_poly", bare(&b))
        }
    });
    let complex_bits = match complex.as_str() {
        "true" => " | mig_rt::MACH_MSGH_BITS_COMPLEX".to_string(),
        "false" => String::new(),
        expr => format!(" | if {expr} {{ mig_rt::MACH_MSGH_BITS_COMPLEX }} else {{ 0 }}"),
    };
    g.line(1, "let mig_size = mig_e.finish(mig_rt::Header {");
    g.line(
        2,
        &format!("bits: mig_rt::msgh_bits({req_disp}, {reply_disp}){complex_bits},"),
    );
    g.line(2, "size: 0,");
    g.line(2, &format!("remote_port: u64::from({req_expr}.0),"));
    g.line(2, &format!("local_port: u64::from({reply_expr}.0),"));
    g.line(2, "seqno: 0,");
    g.line(2, &format!("id: {},", r.id));
    g.line(1, "})?;");
    g.line(
        1,
        &format!(
            "let mig_options = mig_rt::CallOptions {{ option: {option}, timeout: {timeout} }};"
        ),
    );
    if r.is_simple() {
        g.line(
            1,
            "let mig_msg = mig_buf.bytes.get(..mig_size).unwrap_or(&[]);",
        );
        g.line(1, "transport.send(mig_msg, mig_options)");
        g.line(0, "}");
        g.line(0, "");
        return Ok(());
    }
    g.line(
        1,
        &format!("transport.rpc(&mut mig_buf.bytes, mig_size, {reply_expr}, mig_options)?;"),
    );

    // The reply.
    let mut_d = if rep.items.len() > 1 { "mut " } else { "" };
    g.line(
        1,
        &format!(
            "let {mut_d}mig_d = mig_rt::check_reply(&mig_buf.bytes, {}, {}, {}, {})?;",
            r.reply_id(),
            rep.min_size,
            rep.max_size,
            complex_check(r, &r.reply)
        ),
    );
    let mut assigns = Vec::new();
    let mut values: Vec<(String, String)> = Vec::new();
    for item in &r.reply {
        let Item::Arg(i) = *item else { continue };
        let (Some(a), Some(&shape)) = (r.args.get(i), shapes.get(i)) else {
            continue;
        };
        let p = snake(&a.name);
        let b = bare(&p).to_string();
        let expect = expect_literal(a, shape);
        let need_t = a.recv_is_poly()
            || matches!(shape, Shape::Var(..) | Shape::Indefinite(..) | Shape::Ool);
        if need_t {
            g.line(1, &format!("let mig_t_{b} = mig_d.item(&{expect})?;"));
        } else {
            g.line(1, &format!("mig_d.item(&{expect})?;"));
        }
        let inout = a.kind == ArgKind::InOut;
        match shape {
            Shape::Scalar(e) => {
                g.line(1, &format!("let mig_v_{b} = mig_d.get::<{}>()?;", e.rust()));
            }
            Shape::Fixed(e, n) => {
                g.line(
                    1,
                    &format!("let mut mig_v_{b} = [{}::default(); {n}];", e.rust()),
                );
                g.line(1, &format!("mig_d.read_into(&mut mig_v_{b})?;"));
            }
            Shape::Var(..) => {
                g.line(
                    1,
                    &format!(
                        "let Some(mig_dst) = {p}.get_mut(..mig_t_{b}.number as usize) else {{"
                    ),
                );
                g.line(2, "return Err(mig_rt::ReturnCode::MIG_ARRAY_TOO_LARGE);");
                g.line(1, "};");
                g.line(1, "mig_d.read_into(mig_dst)?;");
                values.push((format!("{b}_count"), format!("mig_t_{b}.number")));
            }
            Shape::Indefinite(..) => {
                g.line(1, &format!("let mig_v_{b} = if mig_t_{b}.inline {{"));
                g.line(
                    2,
                    &format!(
                        "let Some(mig_dst) = {p}.get_mut(..mig_t_{b}.number as usize) else {{"
                    ),
                );
                g.line(3, "return Err(mig_rt::ReturnCode::MIG_ARRAY_TOO_LARGE);");
                g.line(2, "};");
                g.line(2, "mig_d.read_into(mig_dst)?;");
                g.line(2, &format!("mig_rt::Received::Inline(mig_t_{b}.number)"));
                g.line(1, "} else {");
                g.line(
                    2,
                    &format!(
                        "mig_rt::Received::OutOfLine(mig_rt::Ool {{ address: mig_d.get::<u64>()?, \
                         count: mig_t_{b}.number }})"
                    ),
                );
                g.line(1, "};");
                values.push((p.clone(), format!("mig_v_{b}")));
            }
            Shape::Ool => {
                g.line(
                    1,
                    &format!(
                        "let mig_v_{b} = mig_rt::Ool {{ address: mig_d.get::<u64>()?, count: \
                         mig_t_{b}.number }};"
                    ),
                );
            }
        }
        if matches!(shape, Shape::Scalar(_) | Shape::Fixed(..) | Shape::Ool) {
            if inout {
                assigns.push(format!("*{p} = mig_v_{b};"));
            } else {
                values.push((p.clone(), format!("mig_v_{b}")));
            }
        }
        if a.recv_is_poly() {
            if inout && a.send_is_poly(false) {
                assigns.push(format!("*{b}_poly = mig_t_{b}.name;"));
            } else if !inout {
                values.push((format!("{b}_poly"), format!("mig_t_{b}.name")));
            }
        }
    }
    g.line(1, "mig_d.finish()?;");
    for a in &assigns {
        g.line(1, a);
    }
    if fields.is_empty() {
        g.line(1, "Ok(())");
    } else {
        g.line(1, &format!("Ok({out_struct} {{"));
        for (name, _, _) in &fields {
            let v = values
                .iter()
                .find(|(n, _)| n == name)
                .map_or("Default::default()", |(_, v)| v.as_str());
            if v == name {
                g.line(2, &format!("{name},"));
            } else {
                g.line(2, &format!("{name}: {v},"));
            }
        }
        g.line(1, "})");
    }
    g.line(0, "}");
    g.line(0, "");
    Ok(())
}

/// Generates the server side (trait and demux function) of `sub`.
pub fn server_code(sub: &Subsystem, opts: &CodegenOptions) -> Result<String> {
    let mut g = Gen {
        sub,
        out: String::new(),
    };
    g.prelude("Server-side", opts);
    let trait_name = format!("{}Server", camel(&sub.name));
    let mut methods = Vec::new();
    for r in &sub.routines {
        methods.push(server_signature(&mut g, r)?);
    }
    g.line(0, "");
    g.line(
        0,
        &format!(
            "/// The routines of subsystem `{}`, as a server implements them. A routine left \
             unimplemented answers `MIG_BAD_ID`.",
            sub.name
        ),
    );
    g.line(0, &format!("pub trait {trait_name} {{"));
    for m in &methods {
        g.out.push_str(&m.decl);
    }
    g.line(0, "}");
    g.line(0, "");
    for (r, m) in sub.routines.iter().zip(&methods) {
        server_stub(&mut g, r, m, &trait_name)?;
    }
    let demux = snake(&sub.server_demux);
    g.line(
        0,
        &format!(
            "/// Serves one request of subsystem `{}`: checks it, calls `server` and writes the \
             reply into `reply` (which should hold `MAX_REPLY_SIZE` bytes).",
            sub.name
        ),
    );
    g.line(
        0,
        "/// Requests with another id are left to other subsystems (`handled` is false) with a \
         `MIG_BAD_ID` reply prepared.",
    );
    g.line(0, &format!("pub fn {demux}<S: {trait_name} + ?Sized>("));
    g.line(1, "server: &mut S,");
    g.line(1, "request: &[u8],");
    g.line(1, "reply: &mut [u8],");
    g.line(0, ") -> mig_rt::Served {");
    g.line(1, "let Some(mig_in) = mig_rt::Header::read(request) else {");
    g.line(
        2,
        "return mig_rt::Served { handled: false, reply_size: 0 };",
    );
    g.line(1, "};");
    if sub.routines.is_empty() {
        g.line(1, "let _ = server;");
        g.line(1, "mig_rt::bad_id(&mig_in, reply)");
        g.line(0, "}");
        return Ok(g.out);
    }
    g.line(
        1,
        "let (mig_result, mig_oneway) = match mig_in.id.wrapping_sub(BASE) {",
    );
    for r in &sub.routines {
        g.line(
            2,
            &format!(
                "{} => (mig_serve_{}(server, &mig_in, request, reply), {}),",
                r.index,
                bare(&snake(&r.name)),
                r.is_simple()
            ),
        );
    }
    g.line(2, "_ => return mig_rt::bad_id(&mig_in, reply),");
    g.line(1, "};");
    g.line(
        1,
        "mig_rt::finish_served(&mig_in, mig_result, mig_oneway, reply)",
    );
    g.line(0, "}");
    Ok(g.out)
}

/// A server method: its declaration in the trait and what the stub needs to call it.
struct Method {
    decl: String,
    name: String,
    out_struct: Option<String>,
}

fn server_signature(g: &mut Gen<'_>, r: &Routine) -> Result<Method> {
    let sub = g.sub;
    let name = snake(&format!("{}{}", sub.server_prefix, r.name).to_ascii_lowercase());
    let out_struct_name = format!("{}Out", camel(&r.name));
    let mut params: Vec<(String, String)> = Vec::new();
    let mut fields: Vec<(String, String, String)> = Vec::new();
    for a in &r.args {
        let p = snake(&a.name);
        let b = bare(&p).to_string();
        let shape = shape_of(a)?;
        match a.kind {
            ArgKind::RequestPort | ArgKind::ReplyPort | ArgKind::SReplyPort => {
                params.push((p, "mig_rt::PortName".into()))
            }
            ArgKind::MsgSeqno => params.push((p, "u32".into())),
            ArgKind::UReplyPort | ArgKind::WaitTime | ArgKind::MsgOption => {}
            ArgKind::In | ArgKind::InOut | ArgKind::Out => {
                let kr = sub.kernel_server;
                match (a.kind, shape) {
                    (ArgKind::Out, Shape::Var(e, _) | Shape::Indefinite(e, _)) => params.push((
                        p.clone(),
                        format!("&mut mig_rt::ArrayOut<'_, {}>", e.rust()),
                    )),
                    (ArgKind::Out, Shape::Scalar(e)) => {
                        fields.push((p.clone(), e.rust().into(), format!("`{}`", a.name)))
                    }
                    (ArgKind::Out, Shape::Fixed(e, n)) => fields.push((
                        p.clone(),
                        format!("[{}; {n}]", e.rust()),
                        format!("`{}`", a.name),
                    )),
                    (ArgKind::Out, Shape::Ool) => fields.push((
                        p.clone(),
                        "mig_rt::Ool".into(),
                        format!("`{}` (out-of-line)", a.name),
                    )),
                    (ArgKind::In, Shape::Scalar(e)) => params.push((p.clone(), e.rust().into())),
                    (ArgKind::In, Shape::Fixed(e, n)) => {
                        params.push((p.clone(), format!("&[{}; {n}]", e.rust())))
                    }
                    (ArgKind::In, Shape::Var(e, _)) => {
                        params.push((p.clone(), format!("mig_rt::ArrayRef<'_, {}>", e.rust())))
                    }
                    (ArgKind::In, Shape::Indefinite(e, _)) => {
                        params.push((p.clone(), format!("mig_rt::Indefinite<'_, {}>", e.rust())))
                    }
                    (ArgKind::In, Shape::Ool) => params.push((p.clone(), "mig_rt::Ool".into())),
                    (_, Shape::Scalar(e)) => params.push((p.clone(), format!("&mut {}", e.rust()))),
                    (_, Shape::Fixed(e, n)) => {
                        params.push((p.clone(), format!("&mut [{}; {n}]", e.rust())))
                    }
                    (_, Shape::Ool) => params.push((p.clone(), "&mut mig_rt::Ool".into())),
                    (_, Shape::Var(..) | Shape::Indefinite(..)) => {
                        return Err(Error::at(
                            &a.loc,
                            format!("'{}': inline variable arrays cannot be inout", a.name),
                        ));
                    }
                }
                match a.kind {
                    ArgKind::In if a.recv_is_poly() => {
                        params.push((format!("{b}_poly"), "u8".into()))
                    }
                    ArgKind::InOut if a.recv_is_poly() || a.send_is_poly(kr) => {
                        params.push((format!("{b}_poly"), "&mut u8".into()))
                    }
                    ArgKind::Out if a.send_is_poly(kr) => fields.push((
                        format!("{b}_poly"),
                        "u8".into(),
                        format!("Type name to send `{}` with", a.name),
                    )),
                    _ => {}
                }
                if a.kind == ArgKind::Out && a.dealloc == Dealloc::Maybe {
                    fields.push((
                        format!("{b}_dealloc"),
                        "bool".into(),
                        format!("Whether to deallocate `{}` when sending it", a.name),
                    ));
                }
            }
        }
    }
    let mut all: Vec<String> = params.iter().map(|p| p.0.clone()).collect();
    all.push("self".into());
    check_unique(&all, r)?;
    let fnames: Vec<String> = fields.iter().map(|f| f.0.clone()).collect();
    check_unique(&fnames, r)?;

    let out_struct = if fields.is_empty() {
        None
    } else {
        g.line(0, &format!("/// What a server returns for `{}`.", r.name));
        g.line(0, "#[derive(Clone, Copy, Debug, PartialEq, Eq)]");
        g.line(0, &format!("pub struct {out_struct_name} {{"));
        for (name, ty, doc) in &fields {
            g.line(1, &format!("/// {doc}."));
            g.line(1, &format!("pub {name}: {ty},"));
        }
        g.line(0, "}");
        g.line(0, "");
        Some(out_struct_name)
    };
    let ret = out_struct.clone().unwrap_or_else(|| "()".into());
    let mut decl = String::new();
    let reply = if r.is_simple() {
        "no reply".to_string()
    } else {
        format!("reply id {}", r.reply_id())
    };
    let _ = writeln!(decl, "    /// `{}`: request id {}, {reply}.", r.name, r.id);
    for a in r.args.iter().filter(|a| a.kind.server_arg()) {
        let mut extra = String::new();
        if let Some(f) = &a.ty.c.intran {
            let _ = write!(extra, "; GNU Mach translates it with `{f}`");
        }
        let _ = writeln!(
            decl,
            "    /// - `{}`: {:?}, type `{}`{extra}",
            a.name, a.kind, a.ty.name
        );
    }
    if params.len() + 1 > 7 {
        let _ = writeln!(
            decl,
            "    #[allow(clippy::too_many_arguments)] // One parameter per .defs argument."
        );
    }
    let _ = writeln!(decl, "    fn {name}(");
    let _ = writeln!(decl, "        &mut self,");
    for (n, t) in &params {
        let _ = writeln!(decl, "        {n}: {t},");
    }
    let _ = writeln!(decl, "    ) -> Result<{ret}, mig_rt::ReturnCode> {{");
    if !params.is_empty() {
        let names: Vec<&str> = params.iter().map(|p| p.0.as_str()).collect();
        if names.len() == 1 {
            let _ = writeln!(decl, "        let _ = {};", names[0]);
        } else {
            let _ = writeln!(decl, "        let _ = ({});", names.join(", "));
        }
    }
    let _ = writeln!(decl, "        Err(mig_rt::ReturnCode::MIG_BAD_ID)");
    let _ = writeln!(decl, "    }}");
    Ok(Method {
        decl,
        name,
        out_struct,
    })
}

fn server_stub(g: &mut Gen<'_>, r: &Routine, m: &Method, trait_name: &str) -> Result<()> {
    let sub = g.sub;
    let req = request_layout(sub, r);
    let rep: MessageLayout = reply_layout(sub, r);
    let kr = sub.kernel_server;
    let stub = format!("mig_serve_{}", bare(&snake(&r.name)));
    let shapes = r.args.iter().map(shape_of).collect::<Result<Vec<_>>>()?;

    g.line(
        0,
        &format!(
            "/// Unpacks a `{}` request, calls the server, packs the reply.",
            r.name
        ),
    );
    g.line(0, &format!("fn {stub}<S: {trait_name} + ?Sized>("));
    g.line(1, "mig_server: &mut S,");
    g.line(1, "mig_in: &mig_rt::Header,");
    g.line(1, "mig_request: &[u8],");
    g.line(1, "mig_reply: &mut [u8],");
    g.line(0, ") -> Result<usize, mig_rt::ReturnCode> {");
    let mut_d = if req.items.is_empty() { "" } else { "mut " };
    g.line(
        1,
        &format!(
            "let {mut_d}mig_d = mig_rt::check_request(mig_request, mig_in, {}, {}, {})?;",
            req.min_size,
            req.max_size,
            complex_check(r, &r.request)
        ),
    );
    for item in &r.request {
        match *item {
            Item::RetCode => {}
            Item::CountInOut(i) => {
                let Some(a) = r.args.get(i) else { continue };
                g.line(1, "mig_d.item(&mig_rt::INT32_EXPECT)?;");
                g.line(
                    1,
                    &format!(
                        "let mig_cnt_{} = mig_d.get::<u32>()?;",
                        bare(&snake(&a.name))
                    ),
                );
            }
            Item::Arg(i) => {
                let (Some(a), Some(&shape)) = (r.args.get(i), shapes.get(i)) else {
                    continue;
                };
                let p = snake(&a.name);
                let b = bare(&p).to_string();
                let expect = expect_literal(a, shape);
                let need_t = a.recv_is_poly()
                    || matches!(shape, Shape::Var(..) | Shape::Indefinite(..) | Shape::Ool);
                if need_t {
                    g.line(1, &format!("let mig_t_{b} = mig_d.item(&{expect})?;"));
                } else {
                    g.line(1, &format!("mig_d.item(&{expect})?;"));
                }
                let mutbl = if a.kind == ArgKind::InOut { "mut " } else { "" };
                match shape {
                    Shape::Scalar(e) => g.line(
                        1,
                        &format!("let {mutbl}{p} = mig_d.get::<{}>()?;", e.rust()),
                    ),
                    Shape::Fixed(e, n) => {
                        g.line(1, &format!("let mut {p} = [{}::default(); {n}];", e.rust()));
                        g.line(1, &format!("mig_d.read_into(&mut {p})?;"));
                    }
                    Shape::Var(e, _) => g.line(
                        1,
                        &format!(
                            "let {p} = mig_d.array::<{}>(mig_t_{b}.number as usize)?;",
                            e.rust()
                        ),
                    ),
                    Shape::Indefinite(e, max) => {
                        g.line(1, &format!("let {p} = if mig_t_{b}.inline {{"));
                        g.line(2, &format!("if mig_t_{b}.number > {max} {{"));
                        g.line(3, "return Err(mig_rt::ReturnCode::MIG_BAD_ARGUMENTS);");
                        g.line(2, "}");
                        g.line(
                            2,
                            &format!(
                                "mig_rt::Indefinite::Inline(mig_d.array::<{}>(mig_t_{b}.number as \
                                 usize)?)",
                                e.rust()
                            ),
                        );
                        g.line(1, "} else {");
                        g.line(
                            2,
                            &format!(
                                "mig_rt::Indefinite::OutOfLine(mig_rt::Ool {{ address: \
                                 mig_d.get::<u64>()?, count: mig_t_{b}.number }})"
                            ),
                        );
                        g.line(1, "};");
                    }
                    Shape::Ool => g.line(
                        1,
                        &format!(
                            "let {mutbl}{p} = mig_rt::Ool {{ address: mig_d.get::<u64>()?, count: \
                             mig_t_{b}.number }};"
                        ),
                    ),
                }
                if a.kind == ArgKind::In && a.recv_is_poly() {
                    g.line(1, &format!("let {b}_poly = mig_t_{b}.name;"));
                } else if a.kind == ArgKind::InOut && (a.recv_is_poly() || a.send_is_poly(kr)) {
                    let init = if a.recv_is_poly() {
                        format!("mig_t_{b}.name")
                    } else {
                        "0".to_string()
                    };
                    g.line(1, &format!("let mut {b}_poly: u8 = {init};"));
                }
            }
        }
    }
    g.line(1, "mig_d.finish()?;");

    // Output arrays live in the reply buffer at their largest-layout offsets.
    let mut regions = Vec::new();
    for it in &rep.items {
        if let Item::Arg(i) = it.item
            && let (Some(a), Some(Shape::Var(..) | Shape::Indefinite(..))) =
                (r.args.get(i), shapes.get(i))
            && a.kind == ArgKind::Out
        {
            regions.push((i, it.data_offset, it.data_size));
        }
    }
    if !regions.is_empty() {
        let names: Vec<String> = regions
            .iter()
            .filter_map(|(i, ..)| r.args.get(*i))
            .map(|a| format!("mig_r_{}", bare(&snake(&a.name))))
            .collect();
        let spans: Vec<String> = regions
            .iter()
            .map(|(_, off, len)| format!("({off}, {len})"))
            .collect();
        g.line(
            1,
            &format!(
                "let Some([{}]) = mig_rt::split_regions(&mut *mig_reply, [{}]) else {{",
                names.join(", "),
                spans.join(", ")
            ),
        );
        g.line(2, "return Err(mig_rt::ReturnCode::MIG_ARRAY_TOO_LARGE);");
        g.line(1, "};");
        for (i, ..) in &regions {
            let (Some(a), Some(Shape::Var(e, max) | Shape::Indefinite(e, max))) =
                (r.args.get(*i), shapes.get(*i))
            else {
                continue;
            };
            let p = snake(&a.name);
            let b = bare(&p);
            let cap = if a.count_in_out {
                format!("(mig_cnt_{b} as usize).min({max})")
            } else {
                max.to_string()
            };
            g.line(
                1,
                &format!(
                    "let mut {p} = mig_rt::ArrayOut::<{}>::new(mig_r_{b}, {cap});",
                    e.rust()
                ),
            );
        }
    }

    // The call.
    let mut call_args = Vec::new();
    for (a, shape) in r.args.iter().zip(&shapes) {
        let p = snake(&a.name);
        let b = bare(&p).to_string();
        match a.kind {
            ArgKind::RequestPort => call_args.push("mig_in.request_port()".to_string()),
            ArgKind::ReplyPort | ArgKind::SReplyPort => {
                call_args.push("mig_in.reply_port()".to_string())
            }
            ArgKind::MsgSeqno => call_args.push("mig_in.seqno".to_string()),
            ArgKind::UReplyPort | ArgKind::WaitTime | ArgKind::MsgOption => {}
            ArgKind::In => {
                call_args.push(match shape {
                    Shape::Fixed(..) => format!("&{p}"),
                    _ => p.clone(),
                });
                if a.recv_is_poly() {
                    call_args.push(format!("{b}_poly"));
                }
            }
            ArgKind::InOut => {
                call_args.push(format!("&mut {p}"));
                if a.recv_is_poly() || a.send_is_poly(kr) {
                    call_args.push(format!("&mut {b}_poly"));
                }
            }
            ArgKind::Out => {
                if matches!(shape, Shape::Var(..) | Shape::Indefinite(..)) {
                    call_args.push(format!("&mut {p}"));
                }
            }
        }
    }
    let call = format!("mig_server.{}({})?;", m.name, call_args.join(", "));
    if m.out_struct.is_some() {
        g.line(1, &format!("let mig_out = {call}"));
    } else {
        g.line(1, &call);
    }
    for (i, ..) in &regions {
        if let Some(a) = r.args.get(*i) {
            let p = snake(&a.name);
            g.line(1, &format!("let mig_n_{} = {p}.len();", bare(&p)));
        }
    }

    // The reply.
    let complex = complex_send(r, &r.reply, kr, |a| {
        let b = bare(&snake(&a.name)).to_string();
        if a.kind == ArgKind::InOut {
            format!("{b}_poly")
        } else {
            format!("mig_out.{b}_poly")
        }
    });
    g.line(1, "let mut mig_e = mig_rt::Encoder::new(mig_reply);");
    g.line(1, "mig_e.item(mig_rt::INT32_DESC);");
    g.line(1, "mig_e.put::<i32>(0);");
    for it in &rep.items {
        let Item::Arg(i) = it.item else { continue };
        let (Some(a), Some(&shape)) = (r.args.get(i), shapes.get(i)) else {
            continue;
        };
        let p = snake(&a.name);
        let b = bare(&p).to_string();
        let inout = a.kind == ArgKind::InOut;
        let src = if inout {
            p.clone()
        } else {
            format!("mig_out.{b}")
        };
        let name = if a.send_is_poly(kr) {
            if inout {
                format!("{b}_poly")
            } else {
                format!("mig_out.{b}_poly")
            }
        } else {
            a.send_name(kr).to_string()
        };
        let dealloc = if inout {
            dealloc_expr(a.dealloc, "false")
        } else {
            dealloc_expr(a.dealloc, &format!("mig_out.{b}_dealloc"))
        };
        let size = a.ty.descriptor_size();
        let long = a.long_form;
        match shape {
            Shape::Scalar(e) => {
                let d = desc_literal(&name, size, "1", true, long, &dealloc);
                g.line(1, &format!("mig_e.item({d});"));
                g.line(1, &format!("mig_e.put::<{}>({src});", e.rust()));
            }
            Shape::Fixed(e, _) => {
                let d = desc_literal(&name, size, &a.ty.number.to_string(), true, long, &dealloc);
                g.line(1, &format!("mig_e.item({d});"));
                g.line(1, &format!("mig_e.put_slice::<{}>(&{src}[..]);", e.rust()));
            }
            Shape::Var(e, _) | Shape::Indefinite(e, _) => {
                let d = desc_literal(
                    &name,
                    size,
                    &format!("mig_n_{b} as u32"),
                    true,
                    long,
                    &dealloc,
                );
                g.line(1, &format!("mig_e.item({d});"));
                let len = match e.bytes() {
                    1 => format!("mig_n_{b}"),
                    n => format!("mig_n_{b} * {n}"),
                };
                g.line(1, &format!("mig_e.put_moved({}, {len});", it.data_offset));
            }
            Shape::Ool => {
                let d = desc_literal(&name, size, &format!("{src}.count"), false, long, &dealloc);
                g.line(1, &format!("mig_e.item({d});"));
                g.line(1, &format!("mig_e.put::<u64>({src}.address);"));
            }
        }
    }
    g.line(
        1,
        &format!("mig_e.finish(mig_rt::reply_header(mig_in, {complex}))"),
    );
    g.line(0, "}");
    g.line(0, "");
    Ok(())
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
