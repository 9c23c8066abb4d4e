//! Client stubs: one pair of functions per routine, `name(transport, ...)` with a stack buffer
//! and `name_with(transport, buffer, ...)` with the caller's, both generic over the
//! [`Transport`](../../../mach_abi/mig/trait.Transport.html) they send through.
//!
//! Stubs take and return owned rights (`SendRight`, `SendOnceRight`, `ReceiveRight`, or a
//! `PortArg` for polymorphic ones) and out-of-line memory that unmaps itself (`OolData`,
//! `OolPorts`), strings as `&CStr` in and `CStrBuf<N>` out, `boolean_t` as `bool`. A stub
//! checks everything that can fail before it moves a right into the message, and checks the
//! whole reply before it takes ownership of anything in it; a bad reply is destroyed, as GNU
//! MIG's stubs do.

use super::*;
use crate::layout::{reply_layout, request_layout};
use crate::routine::{ArgKind, Item};

/// Placeholder for the space type in generated types: `S` in out structs, `T::Space` in
/// stubs.
const SPACE: &str = "%S%";

/// Generates the user side (client stubs) of `sub`.
pub fn user_code(sub: &Subsystem, opts: &CodegenOptions) -> Result<String> {
    let mut g = Gen {
        sub,
        out: String::new(),
    };
    g.prelude("User-side", opts);
    let mut fn_names = HashSet::new();
    for r in &sub.routines {
        let name = snake(&r.name);
        for n in [bare(&name).to_string(), format!("{}_with", bare(&name))] {
            if !fn_names.insert(n.clone()) {
                return Err(Error::at(
                    &r.loc,
                    format!(
                        "routine '{}': its stub '{n}' collides with another routine's",
                        r.name
                    ),
                ));
            }
        }
        user_routine(&mut g, r)?;
    }
    Ok(g.out)
}

/// A field of a stub's result.
struct Field {
    name: String,
    ty: String,
    doc: String,
    /// Holds a right or memory (needs the space type, not `Copy`).
    owned: bool,
}

/// How a stub hands a right of this disposition: the parameter type and how to get the name.
fn port_param(disposition: u32) -> (String, &'static str) {
    let (ty, take) = match disposition {
        16 => ("mig_rt::ReceiveRight<%S%>", ".into_name()"),
        17 => ("mig_rt::SendRight<%S%>", ".into_name()"),
        18 => ("mig_rt::SendOnceRight<%S%>", ".into_name()"),
        19 => ("&mig_rt::SendRight<%S%>", ".name()"),
        20 | 21 => ("&mig_rt::ReceiveRight<%S%>", ".name()"),
        _ => ("mig_rt::PortArg<'_, %S%>", ""),
    };
    (ty.to_string(), take)
}

/// The owned type and constructor for a right received as `recv` (a fixed type name).
fn received(recv: u32, name: &str, type_name: &str) -> (String, String, bool) {
    match recv {
        16 => (
            "mig_rt::ReceiveRight<%S%>".into(),
            format!("mig_rt::ReceiveRight::from_name({name})"),
            true,
        ),
        17 => (
            "mig_rt::SendRight<%S%>".into(),
            format!("mig_rt::SendRight::from_name({name})"),
            true,
        ),
        18 => (
            "mig_rt::SendOnceRight<%S%>".into(),
            format!("mig_rt::SendOnceRight::from_name({name})"),
            true,
        ),
        POLYMORPHIC => (
            "mig_rt::ReceivedPort<%S%>".into(),
            format!("mig_rt::ReceivedPort::new({name}, {type_name})"),
            true,
        ),
        _ => ("mig_rt::PortName".into(), name.to_string(), false),
    }
}

fn space(ty: &str, s: &str) -> String {
    ty.replace(SPACE, s)
}

/// Everything generated for one routine, collected argument by argument.
#[derive(Default)]
struct Parts {
    /// Stub parameters after `transport` (and the buffer), with the index of their
    /// argument (parameters follow the .defs order).
    params: Vec<(usize, String, String)>,
    /// The argument being generated.
    index: usize,
    /// Fields of the result.
    fields: Vec<Field>,
    /// Checks made before anything is moved into the message.
    checks: Vec<String>,
    /// Writing the request.
    encode: Vec<String>,
    /// The request is complex whatever the arguments.
    complex_fixed: bool,
    /// Run-time conditions that make the request complex.
    complex_rt: Vec<String>,
    /// Parameters of the reply decoder (the caller's output buffers).
    dparams: Vec<(String, String)>,
    /// Decoding the reply.
    decode: Vec<String>,
    /// The raw values the decoder returns: (variable, type).
    raws: Vec<(String, String)>,
    /// Result fields built from raw values: (field, expression).
    wraps: Vec<(String, String)>,
    /// Statements that build result values needing more than an expression.
    finals: Vec<String>,
    /// Assignments to `inout` parameters.
    assigns: Vec<String>,
}

impl Parts {
    fn param(&mut self, (name, ty): (String, String)) {
        self.params.push((self.index, name, ty));
    }
}

fn user_routine(g: &mut Gen<'_>, r: &Routine) -> Result<()> {
    let sub = g.sub;
    let req = request_layout(sub, r);
    let rep = reply_layout(sub, r);
    let fn_name = snake(&r.name);
    let out_struct = format!("{}Out", camel(&r.name));
    let mut p = Parts::default();
    let shapes = r.args.iter().map(shape_of).collect::<Result<Vec<_>>>()?;

    // Header arguments and options.
    let mut req_port = ("mig_rt::PortName::NULL".to_string(), "0".to_string());
    let mut reply_port: Option<(String, String)> = None;
    let mut timeout = match &r.wait_time {
        Some(w) => format!("Some({w})"),
        None => "None".to_string(),
    };
    let mut option = match &r.msg_option {
        Some(m) => msg_option_value(r, m)?,
        None => "0".to_string(),
    };
    for (i, a) in r.args.iter().enumerate() {
        p.index = i;
        let v = snake(&a.name);
        let b = bare(&v).to_string();
        match a.kind {
            ArgKind::RequestPort | ArgKind::ReplyPort | ArgKind::UReplyPort => {
                let (ty, take) = port_param(a.ty.in_name);
                p.param((v.clone(), ty));
                let (name, disp) = match fixed_name(a.ty.in_name) {
                    Some(n) => (format!("{v}{take}"), n.to_string()),
                    None => {
                        p.encode
                            .push(format!("let (mig_n_{b}, mig_p_{b}) = {v}.into_parts();"));
                        (format!("mig_n_{b}"), format!("mig_p_{b}"))
                    }
                };
                if fixed_name(a.ty.in_name).is_some() {
                    p.encode.push(format!("let mig_n_{b} = {name};"));
                }
                if a.kind == ArgKind::RequestPort {
                    req_port = (format!("mig_n_{b}"), disp);
                } else {
                    reply_port = Some((format!("mig_n_{b}"), disp));
                }
            }
            ArgKind::WaitTime => {
                p.param((v.clone(), "u32".into()));
                timeout = format!("Some({v})");
            }
            ArgKind::MsgOption => {
                p.param((v.clone(), "i32".into()));
                option = format!("{v} as u32");
            }
            _ => {}
        }
    }

    // The request body.
    for item in &r.request {
        match *item {
            Item::RetCode => {}
            Item::CountInOut(i) => {
                let Some(a) = r.args.get(i) else { continue };
                let max = match shapes.get(i) {
                    Some(Shape::Var(_, m) | Shape::Indefinite(_, m)) => *m,
                    _ => a.ty.number,
                };
                p.encode.push("mig_e.item(mig_rt::INT32_DESC);".into());
                p.encode.push(format!(
                    "mig_e.put::<u32>({}.len().min({max}) as u32);",
                    snake(&a.name)
                ));
            }
            Item::Arg(i) => {
                let (Some(a), Some(&shape)) = (r.args.get(i), shapes.get(i)) else {
                    continue;
                };
                p.index = i;
                request_arg(&mut p, a, shape)?;
            }
        }
    }

    // The reply body.
    if !r.is_simple() {
        for item in &r.reply {
            let Item::Arg(i) = *item else { continue };
            let (Some(a), Some(&shape)) = (r.args.get(i), shapes.get(i)) else {
                continue;
            };
            p.index = i;
            reply_arg(&mut p, a, shape)?;
        }
    }

    p.params.sort_by_key(|x| x.0);
    check_unique(
        p.params
            .iter()
            .map(|x| x.1.as_str())
            .chain(["transport", "mig_buf"]),
        r,
    )?;
    check_unique(p.fields.iter().map(|f| f.name.as_str()), r)?;

    // The result struct.
    let owned = p.fields.iter().any(|f| f.owned);
    let ret = if p.fields.is_empty() {
        "()".to_string()
    } else {
        g.line(0, &format!("/// What `{}` returns.", r.name));
        if owned {
            g.line(0, "#[derive(Debug, PartialEq, Eq)]");
            g.line(0, &format!("pub struct {out_struct}<S: mig_rt::Space> {{"));
        } else {
            g.line(0, "#[derive(Clone, Copy, Debug, PartialEq, Eq)]");
            g.line(0, &format!("pub struct {out_struct} {{"));
        }
        for f in &p.fields {
            g.line(1, &format!("/// {}.", f.doc));
            g.line(1, &format!("pub {}: {},", f.name, space(&f.ty, "S")));
        }
        g.line(0, "}");
        g.line(0, "");
        if owned {
            format!("{out_struct}<T::Space>")
        } else {
            out_struct.clone()
        }
    };

    // The reply decoder: checks the whole reply and returns raw values (names, addresses),
    // so that nothing is owned until everything checked out.
    let reply_fn = format!("mig_reply_{}", bare(&fn_name));
    if !r.is_simple() {
        let raw_ty = match p.raws.len() {
            1 => p.raws[0].1.clone(),
            _ => format!(
                "({})",
                p.raws
                    .iter()
                    .map(|x| x.1.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        };
        let raw_val = match p.raws.len() {
            1 => p.raws[0].0.clone(),
            _ => format!(
                "({})",
                p.raws
                    .iter()
                    .map(|x| x.0.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        };
        g.line(
            0,
            &format!(
                "/// Checks a `{}` reply and reads it (before anything in it is owned).",
                r.name
            ),
        );
        let raw_alias = format!("MigReply{}", camel(&r.name));
        g.line(0, &format!("/// What `{reply_fn}` reads from a reply."));
        g.line(0, &format!("type {raw_alias} = {raw_ty};"));
        let raw_ty = raw_alias;
        g.line(0, &format!("fn {reply_fn}("));
        g.line(1, "mig_buf: &[u8],");
        for (n, t) in &p.dparams {
            g.line(1, &format!("{n}: {t},"));
        }
        g.line(
            0,
            &format!(") -> ::core::result::Result<{raw_ty}, mig_rt::KernReturn> {{"),
        );
        let mut_d = if rep.items.len() > 1 { "mut " } else { "" };
        g.line(
            1,
            &format!(
                "let {mut_d}mig_d = mig_rt::check_reply(mig_buf, {}, {}, {}, {})?;",
                r.reply_id(),
                rep.min_size,
                rep.max_size,
                complex_check(r, &r.reply)
            ),
        );
        g.lines(1, &p.decode);
        g.line(1, "mig_d.finish()?;");
        g.line(1, &format!("Ok({raw_val})"));
        g.line(0, "}");
        g.line(0, "");
    }

    // The stubs.
    let buf_size = if r.is_simple() {
        req.max_size
    } else {
        req.max_size.max(rep.max_size)
    };
    let params: Vec<(String, String)> = p
        .params
        .iter()
        .map(|(_, n, t)| (n.clone(), space(t, "T::Space")))
        .collect();
    let many = params.len() + 2 > 7;
    routine_doc(g, r, buf_size);
    if many {
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
    g.line(
        0,
        &format!(") -> ::core::result::Result<{ret}, mig_rt::KernReturn> {{"),
    );
    g.line(
        1,
        &format!("let mut mig_buf = mig_rt::MsgBuf::<{buf_size}>::new();"),
    );
    let names: Vec<&str> = params.iter().map(|x| x.0.as_str()).collect();
    let comma = if names.is_empty() { "" } else { ", " };
    g.line(
        1,
        &format!(
            "{}_with(transport, &mut mig_buf.bytes{comma}{})",
            bare(&fn_name),
            names.join(", ")
        ),
    );
    g.line(0, "}");
    g.line(0, "");

    g.line(
        0,
        &format!(
            "/// `{}` in the caller's message buffer, which must hold {buf_size} bytes (else \
             `MIG_ARRAY_TOO_LARGE`).",
            r.name
        ),
    );
    if many || params.len() + 3 > 7 {
        g.line(
            0,
            "#[allow(clippy::too_many_arguments)] // One parameter per .defs argument.",
        );
    }
    g.line(
        0,
        &format!(
            "pub fn {}_with<T: mig_rt::Transport + ?Sized>(",
            bare(&fn_name)
        ),
    );
    g.line(1, "transport: &mut T,");
    g.line(1, "mig_buf: &mut [u8],");
    for (n, t) in &params {
        g.line(1, &format!("{n}: {t},"));
    }
    g.line(
        0,
        &format!(") -> ::core::result::Result<{ret}, mig_rt::KernReturn> {{"),
    );
    g.line(
        1,
        &format!("let mig_buf = mig_rt::need_buffer(mig_buf, {buf_size})?;"),
    );
    g.lines(1, &p.checks);
    let mut_e = if r.request.is_empty() { "" } else { "mut " };
    g.line(
        1,
        &format!("let {mut_e}mig_e = mig_rt::Encoder::new(&mut *mig_buf);"),
    );
    let (reply_name, reply_disp) = match reply_port {
        Some(rp) => rp,
        None if r.is_simple() => ("mig_rt::PortName::NULL".to_string(), "0".to_string()),
        None => {
            g.line(1, "let mig_reply_port = transport.reply_port();");
            ("mig_reply_port".to_string(), MAKE_SEND_ONCE.to_string())
        }
    };
    g.lines(1, &p.encode);
    let complex = complex_bits(&complex_expr(p.complex_fixed, &p.complex_rt));
    g.line(1, "let mig_size = mig_e.finish(mig_rt::Header {");
    g.line(
        2,
        &format!(
            "bits: mig_rt::msgh_bits({}, {reply_disp}){complex},",
            req_port.1
        ),
    );
    g.line(2, "size: 0,");
    g.line(
        2,
        &format!("remote_port: mig_rt::PortSlot::from_name({}),", req_port.0),
    );
    g.line(
        2,
        &format!("local_port: mig_rt::PortSlot::from_name({reply_name}),"),
    );
    g.line(2, "seqno: 0,");
    g.line(2, &format!("id: {},", r.id));
    g.line(1, "})?;");
    g.line(
        1,
        &format!(
            "let mig_options = mig_rt::CallOptions {{ option: {option}, timeout: {timeout} }};"
        ),
    );
    let safety = "// SAFETY: the only regions this message gives away (`deallocate` set) come \
                  from `OolData` values the caller moved into this call; every other region \
                  is a slice it lent for the call.";
    if r.is_simple() {
        g.line(1, safety);
        g.line(
            1,
            "unsafe { transport.send(mig_buf, mig_size, mig_options) }",
        );
        g.line(0, "}");
        g.line(0, "");
        return Ok(());
    }
    g.line(1, safety);
    g.line(
        1,
        &format!("unsafe {{ transport.rpc(mig_buf, mig_size, {reply_name}, mig_options)? }};"),
    );
    let raw_pat = match p.raws.len() {
        1 => p.raws[0].0.clone(),
        _ => format!(
            "({})",
            p.raws
                .iter()
                .map(|x| x.0.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    let dargs: Vec<String> = std::iter::once("mig_buf".to_string())
        .chain(p.dparams.iter().map(|(n, _)| format!("&mut *{n}")))
        .collect();
    g.line(
        1,
        &format!("let {raw_pat} = match {reply_fn}({}) {{", dargs.join(", ")),
    );
    g.line(2, "Ok(mig_v) => mig_v,");
    g.line(2, "Err(mig_err) => {");
    g.line(
        3,
        "// SAFETY: the reply came from the transport, which delivers it as the kernel does \
         (`Transport`'s contract): its rights and regions are ours to release.",
    );
    g.line(
        3,
        "unsafe { mig_rt::destroy_received::<T::Space>(mig_buf) };",
    );
    g.line(3, "return Err(mig_err);");
    g.line(2, "}");
    g.line(1, "};");
    g.lines(1, &p.assigns);
    g.lines(1, &p.finals);
    if p.fields.is_empty() {
        g.line(1, "Ok(())");
    } else {
        g.line(1, &format!("Ok({out_struct} {{"));
        for f in &p.fields {
            let v = p
                .wraps
                .iter()
                .find(|(n, _)| *n == f.name)
                .map_or_else(|| "Default::default()".to_string(), |(_, v)| v.clone());
            if v == f.name {
                g.line(2, &format!("{},", f.name));
            } else {
                g.line(2, &format!("{}: {v},", f.name));
            }
        }
        g.line(1, "})");
    }
    g.line(0, "}");
    g.line(0, "");
    Ok(())
}

fn routine_doc(g: &mut Gen<'_>, r: &Routine, buf_size: u32) {
    let reply = if r.is_simple() {
        "no reply (simpleroutine)".to_string()
    } else {
        format!("reply id {}", r.reply_id())
    };
    g.line(
        0,
        &format!(
            "/// `{}`: request id {}, {reply}; uses a {buf_size}-byte buffer on the stack \
             (`{}_with` takes the caller's).",
            r.name,
            r.id,
            bare(&snake(&r.name))
        ),
    );
    for a in r.args.iter().filter(|a| a.kind.user_arg()) {
        g.line(
            0,
            &format!("/// - `{}`: {:?}, type `{}`", a.name, a.kind, a.ty.name),
        );
    }
}

/// The parameter and encoding of an argument the request carries.
fn request_arg(p: &mut Parts, a: &Arg, shape: Shape) -> Result<()> {
    let v = snake(&a.name);
    let b = bare(&v).to_string();
    let inout = a.kind == ArgKind::InOut;
    let ty = &a.ty;
    let long = a.long_form;
    let send = ty.in_name;
    let size = ty.size;
    if sends_right(send) {
        p.complex_fixed = true;
    }
    match shape {
        Shape::Scalar(Elem::Slot) => {
            // An inout right is a parameter here and a result field (what came back).
            let (pty, take) = port_param(send);
            p.param((v.clone(), pty));
            let name = match fixed_name(send) {
                Some(n) => {
                    p.encode.push(format!("let mig_n_{b} = {v}{take};"));
                    n.to_string()
                }
                None => {
                    p.encode
                        .push(format!("let (mig_n_{b}, mig_p_{b}) = {v}.into_parts();"));
                    p.complex_rt
                        .push(format!("mig_rt::is_port_right(mig_p_{b})"));
                    format!("mig_p_{b}")
                }
            };
            let d = desc_literal(&name, size, "1", true, long, "false");
            p.encode.push(format!("mig_e.item({d});"));
            p.encode.push(format!(
                "mig_e.put(mig_rt::PortSlot::from_name(mig_n_{b}));"
            ));
        }
        Shape::Scalar(e) => {
            let t = if inout {
                format!("&mut {}", e.rust())
            } else {
                e.rust().to_string()
            };
            p.param((v.clone(), t));
            let d = desc_literal(&send.to_string(), size, "1", true, long, "false");
            p.encode.push(format!("mig_e.item({d});"));
            let val = if inout { format!("*{v}") } else { v.clone() };
            p.encode.push(format!("mig_e.put::<{}>({val});", e.rust()));
        }
        Shape::Fixed(e, n) => {
            let m = if inout { "&mut " } else { "&" };
            p.param((v.clone(), format!("{m}[{}; {n}]", e.rust())));
            let d = desc_literal(
                &send.to_string(),
                size,
                &ty.number.to_string(),
                true,
                long,
                "false",
            );
            p.encode.push(format!("mig_e.item({d});"));
            p.encode
                .push(format!("mig_e.put_slice::<{}>(&{v}[..]);", e.rust()));
        }
        Shape::Str(n) => {
            if inout {
                return Err(unsupported(a, "an inout string"));
            }
            p.param((v.clone(), "&::core::ffi::CStr".into()));
            p.checks.push(format!("mig_rt::c_str_len({v}, {n})?;"));
            let d = desc_literal(
                &send.to_string(),
                size,
                &ty.number.to_string(),
                true,
                long,
                "false",
            );
            p.encode.push(format!("mig_e.item({d});"));
            p.encode
                .push(format!("mig_e.put_c_str({v}.to_bytes(), {n});"));
        }
        Shape::VarStr(n) => {
            if inout {
                return Err(unsupported(a, "an inout string"));
            }
            p.param((v.clone(), "&::core::ffi::CStr".into()));
            p.checks
                .push(format!("let mig_l_{b} = mig_rt::c_str_len({v}, {n})?;"));
            let d = desc_literal(
                &send.to_string(),
                size,
                &format!("mig_l_{b} as u32"),
                true,
                long,
                "false",
            );
            p.encode.push(format!("mig_e.item({d});"));
            p.encode
                .push(format!("mig_e.put_bytes({v}.to_bytes_with_nul());"));
        }
        Shape::Var(e, max) => {
            let u = e.user();
            p.param((v.clone(), format!("&[{}]", u.rust())));
            p.checks.push(format!("if {v}.len() > {max} {{"));
            p.checks
                .push("    return Err(mig_rt::KernReturn::MigArrayTooLarge);".into());
            p.checks.push("}".into());
            let d = desc_literal(
                &send.to_string(),
                size,
                &format!("{v}.len() as u32"),
                true,
                long,
                "false",
            );
            p.encode.push(format!("mig_e.item({d});"));
            p.encode.push(put_user_elems(&v, e));
        }
        Shape::Indefinite(e, max) => {
            let u = e.user();
            let dealloc_ok = a.dealloc != Dealloc::No;
            let ool_size = ty.ool_size();
            let number = |x: &str| format!("{x} as u32");
            if dealloc_ok {
                p.param((v.clone(), format!("mig_rt::OolArg<'_, %S%, {}>", u.rust())));
            } else {
                p.param((v.clone(), format!("&[{}]", u.rust())));
            }
            // Counts must fit the descriptor.
            let len_of = if dealloc_ok {
                format!(
                    "match &{v} {{ mig_rt::OolArg::Copy(mig_s) => mig_s.len(), \
                     mig_rt::OolArg::Move(mig_o) => mig_o.len() as usize }}"
                )
            } else {
                format!("{v}.len()")
            };
            p.checks.push(format!("if {len_of} > u32::MAX as usize {{"));
            p.checks
                .push("    return Err(mig_rt::KernReturn::MigArrayTooLarge);".into());
            p.checks.push("}".into());
            let ool = |addr: &str, count: &str, dealloc: &str| {
                vec![
                    format!(
                        "mig_e.item({});",
                        desc_literal(&send.to_string(), ool_size, count, false, long, dealloc)
                    ),
                    format!("mig_e.put::<u64>({addr});"),
                ]
            };
            let inline = |slice: &str| {
                vec![
                    format!(
                        "mig_e.item({});",
                        desc_literal(
                            &send.to_string(),
                            size,
                            &number(&format!("{slice}.len()")),
                            true,
                            long,
                            "false"
                        )
                    ),
                    put_user_elems(slice, e),
                ]
            };
            let mut lines = Vec::new();
            let slice_ool = |slice: &str| {
                ool(
                    &format!("{slice}.as_ptr() as usize as u64"),
                    &number(&format!("{slice}.len()")),
                    "false",
                )
            };
            if dealloc_ok {
                lines.push(format!("let mig_ool_{b} = match {v} {{"));
                lines.push(format!(
                    "    mig_rt::OolArg::Copy(mig_s) if mig_s.len() <= {max} => {{"
                ));
                lines.extend(inline("mig_s").into_iter().map(|l| format!("        {l}")));
                lines.push("        false".into());
                lines.push("    }".into());
                lines.push("    mig_rt::OolArg::Copy(mig_s) => {".into());
                lines.extend(
                    slice_ool("mig_s")
                        .into_iter()
                        .map(|l| format!("        {l}")),
                );
                lines.push("        true".into());
                lines.push("    }".into());
                lines.push("    mig_rt::OolArg::Move(mig_o) => {".into());
                lines.push("        let (mig_a, mig_c) = mig_o.into_raw();".into());
                lines.extend(
                    ool("mig_a", "mig_c", "true")
                        .into_iter()
                        .map(|l| format!("        {l}")),
                );
                lines.push("        true".into());
                lines.push("    }".into());
                lines.push("};".into());
            } else {
                lines.push(format!("let mig_ool_{b} = {v}.len() > {max};"));
                lines.push(format!("if mig_ool_{b} {{"));
                lines.extend(slice_ool(&v).into_iter().map(|l| format!("    {l}")));
                lines.push("} else {".into());
                lines.extend(inline(&v).into_iter().map(|l| format!("    {l}")));
                lines.push("}".into());
            }
            p.encode.extend(lines);
            if !sends_right(send) {
                p.complex_rt.push(format!("mig_ool_{b}"));
            }
        }
        Shape::Ool(e) => {
            if inout {
                return Err(unsupported(a, "an inout out-of-line argument"));
            }
            p.complex_fixed = true;
            let dsize = ty.descriptor_size();
            let (pty, lines) = match a.dealloc {
                Dealloc::No => (
                    format!("&[{}]", e.rust()),
                    vec![
                        format!(
                            "mig_e.item({});",
                            desc_literal(
                                &send.to_string(),
                                dsize,
                                &format!("{v}.len() as u32"),
                                false,
                                long,
                                "false"
                            )
                        ),
                        format!("mig_e.put::<u64>({v}.as_ptr() as usize as u64);"),
                    ],
                ),
                Dealloc::Yes => (
                    format!("mig_rt::OolData<%S%, {}>", e.rust()),
                    vec![
                        format!("let (mig_a_{b}, mig_c_{b}) = {v}.into_raw();"),
                        format!(
                            "mig_e.item({});",
                            desc_literal(
                                &send.to_string(),
                                dsize,
                                &format!("mig_c_{b}"),
                                false,
                                long,
                                "true"
                            )
                        ),
                        format!("mig_e.put::<u64>(mig_a_{b});"),
                    ],
                ),
                Dealloc::Maybe => (
                    format!("mig_rt::OolArg<'_, %S%, {}>", e.rust()),
                    vec![
                        format!("let (mig_a_{b}, mig_c_{b}, mig_x_{b}) = match {v} {{"),
                        "    mig_rt::OolArg::Copy(mig_s) => (mig_s.as_ptr() as usize as u64, \
                         mig_s.len() as u32, false),"
                            .into(),
                        "    mig_rt::OolArg::Move(mig_o) => { let (mig_a, mig_c) = \
                         mig_o.into_raw(); (mig_a, mig_c, true) }"
                            .into(),
                        "};".into(),
                        format!(
                            "mig_e.item({});",
                            desc_literal(
                                &send.to_string(),
                                dsize,
                                &format!("mig_c_{b}"),
                                false,
                                long,
                                &format!("mig_x_{b}")
                            )
                        ),
                        format!("mig_e.put::<u64>(mig_a_{b});"),
                    ],
                ),
            };
            if a.dealloc == Dealloc::No {
                p.checks
                    .push(format!("if {v}.len() > u32::MAX as usize {{"));
                p.checks
                    .push("    return Err(mig_rt::KernReturn::MigArrayTooLarge);".into());
                p.checks.push("}".into());
            }
            p.param((v.clone(), pty));
            p.encode.extend(lines);
        }
    }
    Ok(())
}

/// Writes the elements of the user slice `slice` inline (names become 64-bit slots).
fn put_user_elems(slice: &str, e: Elem) -> String {
    if e == Elem::Slot {
        format!("for mig_n in {slice}.iter() {{ mig_e.put(mig_rt::PortSlot::from_name(*mig_n)); }}")
    } else {
        format!("mig_e.put_slice::<{}>({slice});", e.rust())
    }
}

/// The decoding, raw value and result field of an argument the reply carries.
fn reply_arg(p: &mut Parts, a: &Arg, shape: Shape) -> Result<()> {
    let v = snake(&a.name);
    let b = bare(&v).to_string();
    let inout = a.kind == ArgKind::InOut;
    let ty = &a.ty;
    let recv = ty.out_name;
    let expect = expect_literal(a, shape);
    let item = |need_t: bool| {
        if need_t {
            format!("let mig_t_{b} = mig_d.item(&{expect})?;")
        } else {
            format!("mig_d.item(&{expect})?;")
        }
    };
    let raw = format!("mig_v_{b}");
    let what = format!("`{}`", a.name);
    match shape {
        Shape::Scalar(Elem::Slot) => {
            let poly = recv == POLYMORPHIC;
            p.decode.push(item(poly));
            p.decode.push(format!("let {raw} = mig_d.name_slot()?;"));
            let (t, wrap, owned) = if poly {
                p.decode.push(format!("let mig_y_{b} = mig_t_{b}.name;"));
                p.raws.push((format!("mig_y_{b}"), "u8".into()));
                received(POLYMORPHIC, &raw, &format!("mig_y_{b}"))
            } else {
                received(recv, &raw, "")
            };
            p.raws.push((raw.clone(), "mig_rt::PortName".into()));
            p.fields.push(Field {
                name: v.clone(),
                ty: t,
                doc: what,
                owned,
            });
            p.wraps.push((v, wrap));
        }
        Shape::Scalar(e) => {
            p.decode.push(item(false));
            p.decode
                .push(format!("let {raw} = mig_d.get::<{}>()?;", e.rust()));
            p.raws.push((raw.clone(), e.rust().into()));
            if inout {
                p.assigns.push(format!("*{v} = {raw};"));
            } else {
                p.fields.push(Field {
                    name: v.clone(),
                    ty: e.rust().into(),
                    doc: what,
                    owned: false,
                });
                p.wraps.push((v, raw));
            }
        }
        Shape::Fixed(e, n) => {
            p.decode.push(item(false));
            p.decode
                .push(format!("let mut {raw} = [{}::default(); {n}];", e.rust()));
            p.decode.push(format!("mig_d.read_into(&mut {raw})?;"));
            p.raws.push((raw.clone(), format!("[{}; {n}]", e.rust())));
            if inout {
                p.assigns.push(format!("*{v} = {raw};"));
            } else {
                p.fields.push(Field {
                    name: v.clone(),
                    ty: format!("[{}; {n}]", e.rust()),
                    doc: what,
                    owned: false,
                });
                p.wraps.push((v, raw));
            }
        }
        Shape::Str(n) | Shape::VarStr(n) => {
            if inout {
                return Err(unsupported(a, "an inout string"));
            }
            let var = matches!(shape, Shape::VarStr(_));
            p.decode.push(item(var));
            let len = if var {
                format!("mig_t_{b}.number as usize")
            } else {
                n.to_string()
            };
            p.decode.push(format!(
                "let {raw} = mig_rt::CStrBuf::<{n}>::from_message(mig_d.bytes({len})?);"
            ));
            p.raws.push((raw.clone(), format!("mig_rt::CStrBuf<{n}>")));
            p.fields.push(Field {
                name: v.clone(),
                ty: format!("mig_rt::CStrBuf<{n}>"),
                doc: what,
                owned: false,
            });
            p.wraps.push((v, raw));
        }
        Shape::Var(e, _) => {
            let u = e.user();
            p.dparams.push((v.clone(), format!("&mut [{}]", u.rust())));
            p.decode.push(item(true));
            p.decode.push(copy_out(&v, &b, e));
            p.raws.push((raw.clone(), "u32".into()));
            p.decode.push(format!("let {raw} = mig_t_{b}.number;"));
            p.fields.push(Field {
                name: format!("{b}_count"),
                ty: "u32".into(),
                doc: format!("Number of elements stored in `{}`", a.name),
                owned: false,
            });
            p.wraps.push((format!("{b}_count"), raw));
            p.param((v, format!("&mut [{}]", u.rust())));
        }
        Shape::Indefinite(e, _) => {
            let u = e.user();
            p.dparams.push((v.clone(), format!("&mut [{}]", u.rust())));
            p.decode.push(item(true));
            p.decode.push(format!("let {raw} = if mig_t_{b}.inline {{"));
            p.decode.push(format!("    {}", copy_out(&v, &b, e)));
            p.decode.push(format!(
                "    mig_rt::RawItem {{ inline: true, address: 0, count: mig_t_{b}.number, \
                 name: mig_t_{b}.name }}"
            ));
            p.decode.push("} else {".into());
            p.decode.push(format!(
                "    mig_rt::RawItem {{ inline: false, address: mig_d.get::<u64>()?, count: \
                 mig_t_{b}.number, name: mig_t_{b}.name }}"
            ));
            p.decode.push("};".into());
            p.raws.push((raw.clone(), "mig_rt::RawItem".into()));
            let (fty, wrap) = if e == Elem::Slot {
                (
                    "mig_rt::ReceivedPorts<%S%>".to_string(),
                    (
                        format!("mig_rt::ReceivedPorts::Inline({raw}.count)"),
                        format!(
                            "mig_rt::ReceivedPorts::OutOfLine(unsafe {{ \
                             mig_rt::OolPorts::from_raw({raw}.address, {raw}.count, {raw}.name) }})"
                        ),
                    ),
                )
            } else {
                (
                    format!("mig_rt::Received<%S%, {}>", u.rust()),
                    (
                        format!("mig_rt::Received::Inline({raw}.count)"),
                        format!(
                            "mig_rt::Received::OutOfLine(unsafe {{ \
                             mig_rt::OolData::from_raw({raw}.address, {raw}.count) }})"
                        ),
                    ),
                )
            };
            p.fields.push(Field {
                name: v.clone(),
                ty: fty,
                doc: format!(
                    "Where the elements of `{}` are: in the caller's buffer, or out-of-line",
                    a.name
                ),
                owned: true,
            });
            p.finals.push(format!("let mig_w_{b} = if {raw}.inline {{"));
            p.finals.push(format!("    {}", wrap.0));
            p.finals.push("} else {".into());
            p.finals.push(format!("    // {SAFETY}"));
            p.finals.push(format!("    {}", wrap.1));
            p.finals.push("};".into());
            p.wraps.push((v.clone(), format!("mig_w_{b}")));
            p.param((v, format!("&mut [{}]", u.rust())));
        }
        Shape::Ool(e) => {
            if inout {
                return Err(unsupported(a, "an inout out-of-line argument"));
            }
            p.decode.push(item(true));
            p.decode.push(format!(
                "let {raw} = mig_rt::RawItem {{ inline: false, address: mig_d.get::<u64>()?, \
                 count: mig_t_{b}.number, name: mig_t_{b}.name }};"
            ));
            p.raws.push((raw.clone(), "mig_rt::RawItem".into()));
            let (fty, wrap) = if ty.is_port() {
                (
                    "mig_rt::OolPorts<%S%>".to_string(),
                    format!(
                        "unsafe {{ mig_rt::OolPorts::from_raw({raw}.address, {raw}.count, \
                         {raw}.name) }}"
                    ),
                )
            } else {
                (
                    format!("mig_rt::OolData<%S%, {}>", e.rust()),
                    format!("unsafe {{ mig_rt::OolData::from_raw({raw}.address, {raw}.count) }}"),
                )
            };
            p.fields.push(Field {
                name: v.clone(),
                ty: fty,
                doc: format!("{what} (out-of-line)"),
                owned: true,
            });
            p.finals.push(format!("// {SAFETY}"));
            p.finals.push(format!("let mig_w_{b} = {wrap};"));
            p.wraps.push((v, format!("mig_w_{b}")));
        }
    }
    Ok(())
}

/// Why taking ownership of reply memory is sound.
const SAFETY: &str = "SAFETY: the transport delivered the reply as the kernel does (`Transport`'s \
                      contract): the region is mapped into our space, readable, and ours alone.";

/// Copies an inline array from the reply into the caller's buffer `v`.
fn copy_out(v: &str, b: &str, e: Elem) -> String {
    if e == Elem::Slot {
        format!("mig_d.names_into(mig_t_{b}.number as usize, {v})?;")
    } else {
        format!(
            "mig_d.read_into({v}.get_mut(..mig_t_{b}.number as usize).ok_or(mig_rt::KernReturn::MigArrayTooLarge)?)?;"
        )
    }
}
