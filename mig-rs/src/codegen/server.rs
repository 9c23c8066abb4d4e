//! Server side: the trait a server implements (one method per routine, no defaults), the
//! typed translation hooks, a stub per routine that unpacks a request, calls the method and
//! packs the reply, the demux function, and a macro to mark routines explicitly
//! unimplemented.
//!
//! Translation clauses become typed hooks. Each translated C type (`task_t` of
//! `intran: task_t convert_port_to_task(mach_port_t)`) is an associated type of the trait
//! (`type Task;`); each function is a trait method named after it: `intran:` takes the port
//! (all 64 bits of its slot in a kernel server) and the request id and returns the object or
//! the error to reply with, `outtran:` turns an object into a port, `destructor:` releases an
//! object after the routine ran. A routine method receives `&Self::Task`, never a port. In a
//! `KernelServer`, a translated send right carried in the request body is released through
//! `release_send` once the routine succeeded (GNU MIG's `ipc_port_release_send`).

use super::*;
use crate::layout::{MessageLayout, reply_layout, request_layout};
use crate::routine::{ArgKind, Item};

/// Generates the server side (trait, stubs, demux and macro) of `sub`.
pub fn server_code(sub: &Subsystem, opts: &CodegenOptions) -> Result<String> {
    let mut g = Gen {
        sub,
        out: String::new(),
    };
    g.prelude("Server-side", opts);
    let hooks = collect_hooks(sub)?;
    let trait_name = format!("{}Server", camel(&sub.name));
    let mut methods = Vec::new();
    let mut names = HashSet::new();
    for h in &hooks.hooks {
        names.insert(h.func.clone());
    }
    if hooks.release_send {
        names.insert("release_send".into());
    }
    for r in &sub.routines {
        let m = server_signature(&mut g, r)?;
        if !names.insert(bare(&m.name).to_string()) {
            return Err(Error::at(
                &r.loc,
                format!(
                    "routine '{}': its method '{}' collides with a translation hook or another \
                     routine",
                    r.name, m.name
                ),
            ));
        }
        methods.push(m);
    }
    write_trait(&mut g, &trait_name, &hooks, &methods);
    for (r, m) in sub.routines.iter().zip(&methods) {
        server_stub(&mut g, r, m, &trait_name)?;
    }
    write_demux(&mut g, &trait_name);
    write_unimplemented_macro(&mut g, &trait_name, &methods);
    Ok(g.out)
}

/// Which way a translation hook goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum HookKind {
    /// `intran:` port to object.
    In,
    /// `outtran:` object to port.
    Out,
    /// `destructor:` release an object.
    Destructor,
}

/// One translation hook of the server trait.
#[derive(Clone, Debug)]
struct Hook {
    func: String,
    kind: HookKind,
    assoc: String,
    /// The translated C type.
    c_type: String,
    /// Where an argument first used it.
    loc: crate::error::Location,
}

impl HookKind {
    fn clause(self) -> &'static str {
        match self {
            HookKind::In => "intran",
            HookKind::Out => "outtran",
            HookKind::Destructor => "destructor",
        }
    }
}

/// The translation hooks and associated types a subsystem's server needs.
#[derive(Default)]
struct Hooks {
    /// Associated types: (Rust name, C type), in order of first use.
    assoc: Vec<(String, String)>,
    /// Hook methods, in order of first use.
    hooks: Vec<Hook>,
    /// A `KernelServer` whose routines take translated send rights in the body.
    release_send: bool,
}

impl Hooks {
    fn add(&mut self, a: &Arg, func: &str, kind: HookKind, assoc: &str) -> Result<()> {
        let c_type = a.ty.c.trans_type.clone().unwrap_or_default();
        if let Some(h) = self.hooks.iter().find(|h| h.func == func) {
            if h.kind != kind || h.assoc != assoc {
                return Err(Error::at(
                    &a.loc,
                    format!(
                        "'{}': translation function '{func}' is used as {} for '{c_type}', but \
                         earlier as {} for '{}'",
                        a.name,
                        kind.clause(),
                        h.kind.clause(),
                        h.c_type
                    ),
                ));
            }
            return Ok(());
        }
        self.hooks.push(Hook {
            func: func.to_string(),
            kind,
            assoc: assoc.to_string(),
            c_type,
            loc: a.ty.c.trans_loc.clone().unwrap_or_else(|| a.loc.clone()),
        });
        Ok(())
    }
}

/// The associated type's name for a translated C type: `task_t` -> `Task`.
fn assoc_name(c_type: &str) -> String {
    camel(c_type.strip_suffix("_t").unwrap_or(c_type))
}

/// How an argument is translated on the server side.
#[derive(Clone, Debug, Default)]
struct Trans {
    /// The associated type.
    assoc: String,
    /// `intran:`, for arguments the server receives.
    intran: Option<String>,
    /// `destructor:`, with `intran:`.
    destructor: Option<String>,
    /// `outtran:`, for arguments the server sends.
    outtran: Option<String>,
}

/// True for arguments whose value the server receives (in the header or the request body).
fn received_by_server(kind: ArgKind) -> bool {
    matches!(
        kind,
        ArgKind::RequestPort | ArgKind::ReplyPort | ArgKind::SReplyPort | ArgKind::In
    )
}

/// The translation of `a`, if its type has one that applies to the server side.
fn translation(a: &Arg) -> Result<Option<Trans>> {
    let c = &a.ty.c;
    let Some(c_type) = c.trans_type.as_deref() else {
        return Ok(None);
    };
    let applies = if received_by_server(a.kind) {
        c.intran.is_some()
    } else if a.kind == ArgKind::Out {
        c.outtran.is_some()
    } else if a.kind == ArgKind::InOut {
        c.translates()
    } else {
        false
    };
    if !applies {
        return Ok(None);
    }
    if a.kind == ArgKind::InOut {
        return Err(unsupported(a, "a translated inout argument"));
    }
    if shape_of(a)? != Shape::Scalar(Elem::Slot) || a.recv_is_poly() {
        return Err(unsupported(
            a,
            "translation of anything but a single port right of a fixed type",
        ));
    }
    let assoc = assoc_name(c_type);
    Ok(Some(if received_by_server(a.kind) {
        Trans {
            assoc,
            intran: c.intran.clone(),
            destructor: c.destructor.clone(),
            outtran: None,
        }
    } else {
        Trans {
            assoc,
            intran: None,
            destructor: None,
            outtran: c.outtran.clone(),
        }
    }))
}

/// True if the `KernelServer` stub releases the send right a translated body argument carried.
fn releases_send(sub: &Subsystem, a: &Arg, t: &Trans) -> bool {
    sub.kernel_server && a.kind == ArgKind::In && t.intran.is_some() && a.ty.out_name == 17
}

fn collect_hooks(sub: &Subsystem) -> Result<Hooks> {
    let mut hooks = Hooks::default();
    for r in &sub.routines {
        for a in &r.args {
            let Some(t) = translation(a)? else { continue };
            let c_type = a.ty.c.trans_type.clone().unwrap_or_default();
            match hooks.assoc.iter().find(|(n, _)| *n == t.assoc) {
                None => hooks.assoc.push((t.assoc.clone(), c_type)),
                Some((_, other)) if *other != c_type => {
                    return Err(Error::at(
                        &a.loc,
                        format!(
                            "'{}': translated types '{other}' and '{c_type}' would both be the \
                             associated type '{}'",
                            a.name, t.assoc
                        ),
                    ));
                }
                Some(_) => {}
            }
            if let Some(f) = &t.intran {
                hooks.add(a, f, HookKind::In, &t.assoc)?;
            }
            if let Some(f) = &t.destructor {
                hooks.add(a, f, HookKind::Destructor, &t.assoc)?;
            }
            if let Some(f) = &t.outtran {
                hooks.add(a, f, HookKind::Out, &t.assoc)?;
            }
            if releases_send(sub, a, &t) {
                hooks.release_send = true;
            }
        }
    }
    for h in &hooks.hooks {
        let ident = snake(&h.func);
        if ident != h.func || h.func.starts_with("mig_") {
            return Err(Error::at(
                &h.loc,
                format!(
                    "translation function '{}' is not usable as a Rust method name",
                    h.func
                ),
            ));
        }
    }
    Ok(hooks)
}

/// The type a server holds an untranslated port in: the kernel's 64-bit slot, or a name in a
/// user-space server.
fn port_ty(sub: &Subsystem) -> &'static str {
    if sub.kernel_server {
        "mig_rt::PortSlot"
    } else {
        "mig_rt::PortName"
    }
}

/// A server method: its declaration and what the stub and the macro need.
struct Method {
    /// The method's name.
    name: String,
    /// Parameters after `&mut self`: (name, type).
    params: Vec<(String, String)>,
    /// The `Ok` type, with `Self::` associated types.
    ret: String,
    /// The result struct's name, if the routine has one.
    out_struct: Option<String>,
    /// The trait method's documentation lines.
    doc: Vec<String>,
}

fn server_signature(g: &mut Gen<'_>, r: &Routine) -> Result<Method> {
    let sub = g.sub;
    let name = snake(&r.name);
    let out_struct_name = format!("{}Out", camel(&r.name));
    let pty = port_ty(sub);
    let kr = sub.kernel_server;
    let mut params: Vec<(String, String)> = Vec::new();
    let mut fields: Vec<(String, String, String)> = Vec::new();
    let mut generics: Vec<String> = Vec::new();
    for a in &r.args {
        let v = snake(&a.name);
        let b = bare(&v).to_string();
        let shape = shape_of(a)?;
        let trans = translation(a)?;
        match a.kind {
            ArgKind::RequestPort | ArgKind::ReplyPort | ArgKind::SReplyPort => {
                match &trans {
                    Some(t) => params.push((v, format!("&Self::{}", t.assoc))),
                    None => params.push((v, pty.into())),
                }
                continue;
            }
            ArgKind::MsgSeqno => {
                params.push((v, "u32".into()));
                continue;
            }
            ArgKind::UReplyPort | ArgKind::WaitTime | ArgKind::MsgOption => continue,
            ArgKind::In | ArgKind::InOut | ArgKind::Out => {}
        }
        let inout = a.kind == ArgKind::InOut;
        match (a.kind, shape) {
            (ArgKind::In, Shape::Scalar(Elem::Slot)) => match &trans {
                Some(t) => params.push((v.clone(), format!("&Self::{}", t.assoc))),
                None => params.push((v.clone(), pty.into())),
            },
            (ArgKind::Out, Shape::Scalar(Elem::Slot)) => match &trans {
                Some(t) => {
                    if !generics.contains(&t.assoc) {
                        generics.push(t.assoc.clone());
                    }
                    fields.push((v.clone(), t.assoc.clone(), format!("`{}`", a.name)));
                }
                None => fields.push((v.clone(), pty.into(), format!("`{}`", a.name))),
            },
            (ArgKind::InOut, Shape::Scalar(Elem::Slot)) => {
                params.push((v.clone(), format!("&mut {pty}")))
            }
            (ArgKind::Out, Shape::Var(e, _)) => params.push((
                v.clone(),
                format!("&mut mig_rt::ArrayOut<'_, {}>", e.rust()),
            )),
            (ArgKind::Out, Shape::Indefinite(e, _)) => params.push((
                v.clone(),
                format!("&mut mig_rt::IndefiniteOut<'_, {}>", e.rust()),
            )),
            (ArgKind::Out, Shape::Scalar(e)) => {
                fields.push((v.clone(), e.rust().into(), format!("`{}`", a.name)))
            }
            (ArgKind::Out, Shape::Fixed(e, n)) => fields.push((
                v.clone(),
                format!("[{}; {n}]", e.rust()),
                format!("`{}`", a.name),
            )),
            (ArgKind::Out, Shape::Str(n) | Shape::VarStr(n)) => fields.push((
                v.clone(),
                format!("mig_rt::CStrBuf<{n}>"),
                format!("`{}`", a.name),
            )),
            (ArgKind::Out, Shape::Ool(_)) => fields.push((
                v.clone(),
                "mig_rt::Ool".into(),
                format!("`{}` (out-of-line)", a.name),
            )),
            (_, Shape::Scalar(e)) if inout => {
                params.push((v.clone(), format!("&mut {}", e.rust())))
            }
            (_, Shape::Fixed(e, n)) if inout => {
                params.push((v.clone(), format!("&mut [{}; {n}]", e.rust())))
            }
            (_, _) if inout => {
                return Err(unsupported(a, "this inout argument"));
            }
            (_, Shape::Scalar(e)) => params.push((v.clone(), e.rust().into())),
            (_, Shape::Fixed(e, n)) => params.push((v.clone(), format!("&[{}; {n}]", e.rust()))),
            (_, Shape::Str(_) | Shape::VarStr(_)) => {
                params.push((v.clone(), "&::core::ffi::CStr".into()))
            }
            (_, Shape::Var(e, _)) => {
                params.push((v.clone(), format!("mig_rt::ArrayRef<'_, {}>", e.rust())))
            }
            (_, Shape::Indefinite(e, _)) => {
                params.push((v.clone(), format!("mig_rt::Indefinite<'_, {}>", e.rust())))
            }
            (_, Shape::Ool(_)) => params.push((v.clone(), "mig_rt::Ool".into())),
        }
        match a.kind {
            ArgKind::In if a.recv_is_poly() => params.push((format!("{b}_poly"), "u8".into())),
            ArgKind::Out if a.send_is_poly(kr) => fields.push((
                format!("{b}_poly"),
                "u8".into(),
                format!("Type name to send `{}` with", a.name),
            )),
            ArgKind::InOut if a.recv_is_poly() || a.send_is_poly(kr) => {
                return Err(unsupported(a, "a polymorphic inout argument"));
            }
            _ => {}
        }
        if a.kind == ArgKind::Out && a.dealloc == Dealloc::Maybe {
            fields.push((
                format!("{b}_dealloc"),
                "bool".into(),
                format!(
                    "Whether the kernel takes `{}` out of the server's space",
                    a.name
                ),
            ));
        }
    }
    check_unique(params.iter().map(|p| p.0.as_str()).chain(["self"]), r)?;
    check_unique(fields.iter().map(|f| f.0.as_str()), r)?;

    let out_struct = if fields.is_empty() {
        None
    } else {
        g.line(0, &format!("/// What a server returns for `{}`.", r.name));
        let params_gen = if generics.is_empty() {
            String::new()
        } else {
            format!("<{}>", generics.join(", "))
        };
        if generics.is_empty() {
            g.line(0, "#[derive(Clone, Copy, Debug, PartialEq, Eq)]");
        } else {
            g.line(0, "#[derive(Clone, Debug, PartialEq, Eq)]");
        }
        g.line(0, &format!("pub struct {out_struct_name}{params_gen} {{"));
        for (n, t, doc) in &fields {
            g.line(1, &format!("/// {doc}."));
            g.line(1, &format!("pub {n}: {t},"));
        }
        g.line(0, "}");
        g.line(0, "");
        Some(out_struct_name.clone())
    };
    let ret = match &out_struct {
        None => "()".to_string(),
        Some(s) if generics.is_empty() => s.clone(),
        Some(s) => format!(
            "{s}<{}>",
            generics
                .iter()
                .map(|x| format!("Self::{x}"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    let reply = if r.is_simple() {
        "no reply".to_string()
    } else {
        format!("reply id {}", r.reply_id())
    };
    let mut doc = vec![format!("`{}`: request id {}, {reply}.", r.name, r.id)];
    for a in r.args.iter().filter(|a| a.kind.server_arg()) {
        let extra = match translation(a)? {
            Some(t) => match (&t.intran, &t.outtran) {
                (Some(f), _) => format!(", translated by `{f}`"),
                (_, Some(f)) => format!(", translated by `{f}`"),
                _ => String::new(),
            },
            None => String::new(),
        };
        doc.push(format!(
            "- `{}`: {:?}, type `{}`{extra}",
            a.name, a.kind, a.ty.name
        ));
    }
    Ok(Method {
        name,
        params,
        ret,
        out_struct,
        doc,
    })
}

fn write_trait(g: &mut Gen<'_>, trait_name: &str, hooks: &Hooks, methods: &[Method]) {
    let sub = g.sub;
    let pty = port_ty(sub);
    g.line(
        0,
        &format!(
            "/// The routines of subsystem `{}`, as a server implements them: every one, or marked \
             unimplemented with `{}_unimplemented!`.",
            sub.name,
            bare(&snake(&sub.name))
        ),
    );
    if !hooks.hooks.is_empty() {
        g.line(
            0,
            "/// Ports of translated types reach the routines as objects, through the \
             translation hooks.",
        );
    }
    g.line(0, &format!("pub trait {trait_name} {{"));
    for (assoc, c_type) in &hooks.assoc {
        let made_by: Vec<String> = hooks
            .hooks
            .iter()
            .filter(|h| h.assoc == *assoc && h.kind == HookKind::In)
            .map(|h| format!("`{}`", h.func))
            .collect();
        g.line(
            1,
            &format!(
                "/// `{c_type}` as the server holds it{}.",
                if made_by.is_empty() {
                    String::new()
                } else {
                    format!(" (made from a port by {})", made_by.join(", "))
                }
            ),
        );
        g.line(1, &format!("type {assoc};"));
    }
    for h in &hooks.hooks {
        match h.kind {
            HookKind::In => {
                g.line(
                    1,
                    &format!(
                        "/// `intran: {}`: the object a port denotes, for the request with id \
                         `msg_id`; an error is the reply.",
                        h.func
                    ),
                );
                g.line(
                    1,
                    &format!(
                        "fn {}(&mut self, port: {pty}, msg_id: i32) -> \
                         ::core::result::Result<Self::{}, mig_rt::KernReturn>;",
                        h.func, h.assoc
                    ),
                );
            }
            HookKind::Out => {
                g.line(
                    1,
                    &format!(
                        "/// `outtran: {}`: the port to send for an object the routine returned.",
                        h.func
                    ),
                );
                g.line(
                    1,
                    &format!(
                        "fn {}(&mut self, object: Self::{}) -> {pty};",
                        h.func, h.assoc
                    ),
                );
            }
            HookKind::Destructor => {
                g.line(
                    1,
                    &format!(
                        "/// `destructor: {}`: releases an object after the routine ran, \
                         whatever it returned.",
                        h.func
                    ),
                );
                g.line(
                    1,
                    &format!("fn {}(&mut self, object: Self::{});", h.func, h.assoc),
                );
            }
        }
    }
    if hooks.release_send {
        g.line(
            1,
            "/// Releases a send right the request's body carried to a translated argument, once \
             the routine succeeded (the routine saw the object, not the right).",
        );
        g.line(1, "fn release_send(&mut self, port: mig_rt::PortSlot);");
    }
    for m in methods {
        for d in &m.doc {
            g.line(1, &format!("/// {d}"));
        }
        if m.params.len() + 1 > 7 {
            g.line(
                1,
                "#[allow(clippy::too_many_arguments)] // One parameter per .defs argument.",
            );
        }
        g.line(1, &format!("fn {}(", m.name));
        g.line(2, "&mut self,");
        for (n, t) in &m.params {
            g.line(2, &format!("{n}: {t},"));
        }
        g.line(
            1,
            &format!(
                ") -> ::core::result::Result<{}, mig_rt::KernReturn>;",
                m.ret
            ),
        );
    }
    g.line(0, "}");
    g.line(0, "");
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
    g.line(
        0,
        ") -> ::core::result::Result<usize, mig_rt::KernReturn> {",
    );
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
    let slot_get = if kr {
        "mig_d.get::<mig_rt::PortSlot>()?"
    } else {
        "mig_d.name_slot()?"
    };
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
                let v = snake(&a.name);
                let b = bare(&v).to_string();
                let expect = expect_literal(a, shape);
                let need_t = a.recv_is_poly()
                    || matches!(
                        shape,
                        Shape::Var(..) | Shape::Indefinite(..) | Shape::Ool(_) | Shape::VarStr(_)
                    );
                if need_t {
                    g.line(1, &format!("let mig_t_{b} = mig_d.item(&{expect})?;"));
                } else {
                    g.line(1, &format!("mig_d.item(&{expect})?;"));
                }
                let mutbl = if a.kind == ArgKind::InOut { "mut " } else { "" };
                match shape {
                    Shape::Scalar(Elem::Slot) if a.kind == ArgKind::InOut => {
                        g.line(1, &format!("let mut {v} = {slot_get};"));
                    }
                    Shape::Scalar(Elem::Slot) => {
                        g.line(1, &format!("let mig_s_{b} = {slot_get};"));
                    }
                    Shape::Scalar(e) => g.line(
                        1,
                        &format!("let {mutbl}{v} = mig_d.get::<{}>()?;", e.rust()),
                    ),
                    Shape::Fixed(e, n) => {
                        g.line(1, &format!("let mut {v} = [{}::default(); {n}];", e.rust()));
                        g.line(1, &format!("mig_d.read_into(&mut {v})?;"));
                    }
                    Shape::Str(n) => g.line(
                        1,
                        &format!(
                            "let mig_sb_{b} = mig_rt::CStrBuf::<{n}>::from_message(mig_d.bytes({n})?);"
                        ),
                    ),
                    Shape::VarStr(n) => g.line(
                        1,
                        &format!(
                            "let mig_sb_{b} = mig_rt::CStrBuf::<{n}>::from_message(mig_d.bytes(mig_t_{b}.number as usize)?);"
                        ),
                    ),
                    Shape::Var(e, _) => g.line(
                        1,
                        &format!(
                            "let {v} = mig_d.array::<{}>(mig_t_{b}.number as usize)?;",
                            e.rust()
                        ),
                    ),
                    Shape::Indefinite(e, _) => {
                        g.line(1, &format!("let {v} = if mig_t_{b}.inline {{"));
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
                    Shape::Ool(_) => g.line(
                        1,
                        &format!(
                            "let {v} = mig_rt::Ool {{ address: mig_d.get::<u64>()?, count: \
                             mig_t_{b}.number }};"
                        ),
                    ),
                }
                if a.kind == ArgKind::In && a.recv_is_poly() {
                    g.line(1, &format!("let {b}_poly = mig_t_{b}.name;"));
                }
            }
        }
    }
    g.line(1, "mig_d.finish()?;");

    // Header values.
    for a in &r.args {
        let b = bare(&snake(&a.name)).to_string();
        let slot = match a.kind {
            ArgKind::RequestPort => "mig_in.request_port()",
            ArgKind::ReplyPort | ArgKind::SReplyPort => "mig_in.reply_port()",
            _ => continue,
        };
        if kr {
            g.line(1, &format!("let mig_s_{b} = {slot};"));
        } else {
            g.line(
                1,
                &format!(
                    "let mig_s_{b} = {slot}.name().ok_or(mig_rt::KernReturn::MigBadArguments)?;"
                ),
            );
        }
    }

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
        g.line(2, "return Err(mig_rt::KernReturn::MigArrayTooLarge);");
        g.line(1, "};");
        for (i, ..) in &regions {
            let (Some(a), Some(&shape)) = (r.args.get(*i), shapes.get(*i)) else {
                continue;
            };
            let (Shape::Var(e, max) | Shape::Indefinite(e, max)) = shape else {
                continue;
            };
            let v = snake(&a.name);
            let b = bare(&v);
            let cap = if a.count_in_out {
                format!("(mig_cnt_{b} as usize).min({max})")
            } else {
                max.to_string()
            };
            let kind = if matches!(shape, Shape::Indefinite(..)) {
                "IndefiniteOut"
            } else {
                "ArrayOut"
            };
            g.line(
                1,
                &format!(
                    "let mut {v} = mig_rt::{kind}::<{}>::new(mig_r_{b}, {cap});",
                    e.rust()
                ),
            );
        }
    }

    // Translations, each undone if a later one fails.
    let mut translated: Vec<(String, Trans)> = Vec::new();
    for a in &r.args {
        if !received_by_server(a.kind) {
            continue;
        }
        let Some(t) = translation(a)? else { continue };
        let Some(f) = &t.intran else { continue };
        let v = snake(&a.name);
        let b = bare(&v).to_string();
        let undo: Vec<String> = translated
            .iter()
            .rev()
            .filter_map(|(pv, pt)| {
                pt.destructor
                    .as_ref()
                    .map(|d| format!("mig_server.{d}({pv});"))
            })
            .collect();
        if undo.is_empty() {
            g.line(
                1,
                &format!("let {v} = mig_server.{f}(mig_s_{b}, mig_in.id)?;"),
            );
        } else {
            g.line(
                1,
                &format!("let {v} = match mig_server.{f}(mig_s_{b}, mig_in.id) {{"),
            );
            g.line(2, "Ok(mig_v) => mig_v,");
            g.line(2, "Err(mig_err) => {");
            g.lines(3, &undo);
            g.line(3, "return Err(mig_err);");
            g.line(2, "}");
            g.line(1, "};");
        }
        translated.push((v, t));
    }

    // The call.
    let mut call_args = Vec::new();
    for (a, shape) in r.args.iter().zip(&shapes) {
        let v = snake(&a.name);
        let b = bare(&v).to_string();
        let is_translated = received_by_server(a.kind) && translated.iter().any(|(x, _)| *x == v);
        match a.kind {
            ArgKind::RequestPort | ArgKind::ReplyPort | ArgKind::SReplyPort => {
                call_args.push(if is_translated {
                    format!("&{v}")
                } else {
                    format!("mig_s_{b}")
                });
            }
            ArgKind::MsgSeqno => call_args.push("mig_in.seqno".to_string()),
            ArgKind::UReplyPort | ArgKind::WaitTime | ArgKind::MsgOption => {}
            ArgKind::In => {
                call_args.push(match shape {
                    Shape::Scalar(Elem::Slot) if is_translated => format!("&{v}"),
                    Shape::Scalar(Elem::Slot) => format!("mig_s_{b}"),
                    Shape::Fixed(..) => format!("&{v}"),
                    Shape::Str(_) | Shape::VarStr(_) => format!("mig_sb_{b}.as_c_str()"),
                    _ => v.clone(),
                });
                if a.recv_is_poly() {
                    call_args.push(format!("{b}_poly"));
                }
            }
            ArgKind::InOut => call_args.push(format!("&mut {v}")),
            ArgKind::Out => {
                if matches!(shape, Shape::Var(..) | Shape::Indefinite(..)) {
                    call_args.push(format!("&mut {v}"));
                }
            }
        }
    }
    g.line(
        1,
        &format!(
            "let mig_result = mig_server.{}({});",
            m.name,
            call_args.join(", ")
        ),
    );
    for (v, t) in translated.iter().rev() {
        if let Some(d) = &t.destructor {
            g.line(1, &format!("mig_server.{d}({v});"));
        }
    }
    if m.out_struct.is_some() {
        g.line(1, "let mig_out = mig_result?;");
    } else {
        g.line(1, "mig_result?;");
    }
    for a in &r.args {
        if let Some(t) = translation(a)?
            && releases_send(sub, a, &t)
        {
            let b = bare(&snake(&a.name)).to_string();
            g.line(1, &format!("if mig_s_{b}.is_valid() {{"));
            g.line(2, &format!("mig_server.release_send(mig_s_{b});"));
            g.line(1, "}");
        }
    }
    if r.is_simple() {
        g.line(1, "let _ = mig_reply;");
        g.line(1, "Ok(0)");
        g.line(0, "}");
        g.line(0, "");
        return Ok(());
    }
    for (i, ..) in &regions {
        let (Some(a), Some(shape)) = (r.args.get(*i), shapes.get(*i)) else {
            continue;
        };
        let v = snake(&a.name);
        let b = bare(&v);
        if matches!(shape, Shape::Indefinite(..)) {
            g.line(1, &format!("let mig_n_{b} = {v}.inline().len();"));
            g.line(1, &format!("let mig_o_{b} = {v}.out_of_line();"));
        } else {
            g.line(1, &format!("let mig_n_{b} = {v}.len();"));
        }
    }

    // The reply.
    let mut complex_fixed = false;
    let mut complex_rt = Vec::new();
    for item in &r.reply {
        let Item::Arg(i) = *item else { continue };
        let (Some(a), Some(shape)) = (r.args.get(i), shapes.get(i)) else {
            continue;
        };
        let b = bare(&snake(&a.name)).to_string();
        let name = a.send_name(kr);
        if sends_right(name) || !a.ty.inline {
            complex_fixed = true;
        }
        if a.send_is_poly(kr) {
            complex_rt.push(format!("mig_rt::is_port_right(mig_out.{b}_poly)"));
        }
        if matches!(shape, Shape::Indefinite(..)) {
            complex_rt.push(format!("mig_o_{b}.is_some()"));
        }
    }
    let complex = complex_expr(complex_fixed, &complex_rt);
    g.line(1, "let mut mig_e = mig_rt::Encoder::new(mig_reply);");
    g.line(1, "mig_e.item(mig_rt::INT32_DESC);");
    g.line(1, "mig_e.put::<i32>(0);");
    for it in &rep.items {
        let Item::Arg(i) = it.item else { continue };
        let (Some(a), Some(&shape)) = (r.args.get(i), shapes.get(i)) else {
            continue;
        };
        let v = snake(&a.name);
        let b = bare(&v).to_string();
        let inout = a.kind == ArgKind::InOut;
        let src = if inout {
            v.clone()
        } else {
            format!("mig_out.{b}")
        };
        let name = if a.send_is_poly(kr) {
            format!("mig_out.{b}_poly")
        } else {
            a.send_name(kr).to_string()
        };
        let dealloc = if inout {
            dealloc_expr(a.dealloc, "false")
        } else {
            dealloc_expr(a.dealloc, &format!("mig_out.{b}_dealloc"))
        };
        let size = a.ty.size;
        let long = a.long_form;
        match shape {
            Shape::Scalar(Elem::Slot) => {
                let d = desc_literal(&name, size, "1", true, long, &dealloc);
                let value = match translation(a)?.and_then(|t| t.outtran) {
                    Some(f) => {
                        g.line(1, &format!("let mig_p_{b} = mig_server.{f}({src});"));
                        format!("mig_p_{b}")
                    }
                    None => src.clone(),
                };
                g.line(1, &format!("mig_e.item({d});"));
                if kr {
                    g.line(1, &format!("mig_e.put::<mig_rt::PortSlot>({value});"));
                } else {
                    g.line(
                        1,
                        &format!("mig_e.put(mig_rt::PortSlot::from_name({value}));"),
                    );
                }
            }
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
            Shape::Str(_) => {
                let d = desc_literal(&name, size, &a.ty.number.to_string(), true, long, &dealloc);
                g.line(1, &format!("mig_e.item({d});"));
                g.line(1, &format!("mig_e.put_bytes(&{src}.raw()[..]);"));
            }
            Shape::VarStr(n) => {
                g.line(
                    1,
                    &format!("let mig_l_{b} = ({src}.as_bytes().len() + 1).min({n});"),
                );
                let d = desc_literal(
                    &name,
                    size,
                    &format!("mig_l_{b} as u32"),
                    true,
                    long,
                    &dealloc,
                );
                g.line(1, &format!("mig_e.item({d});"));
                g.line(
                    1,
                    &format!("mig_e.put_bytes({src}.raw().get(..mig_l_{b}).unwrap_or(&[]));"),
                );
            }
            Shape::Var(e, _) => {
                let d = desc_literal(
                    &name,
                    size,
                    &format!("mig_n_{b} as u32"),
                    true,
                    long,
                    &dealloc,
                );
                g.line(1, &format!("mig_e.item({d});"));
                g.line(
                    1,
                    &format!("mig_e.put_moved({}, {});", it.data_offset, len_expr(&b, e)),
                );
            }
            Shape::Indefinite(e, _) => {
                g.line(1, &format!("match mig_o_{b} {{"));
                g.line(2, "Some(mig_ool) => {");
                let d = desc_literal(
                    &name,
                    a.ty.ool_size(),
                    "mig_ool.count",
                    false,
                    long,
                    &dealloc,
                );
                g.line(3, &format!("mig_e.item({d});"));
                g.line(3, "mig_e.put::<u64>(mig_ool.address);");
                g.line(2, "}");
                g.line(2, "None => {");
                let d = desc_literal(
                    &name,
                    size,
                    &format!("mig_n_{b} as u32"),
                    true,
                    long,
                    "false",
                );
                g.line(3, &format!("mig_e.item({d});"));
                g.line(
                    3,
                    &format!("mig_e.put_moved({}, {});", it.data_offset, len_expr(&b, e)),
                );
                g.line(2, "}");
                g.line(1, "}");
            }
            Shape::Ool(_) => {
                let d = desc_literal(
                    &name,
                    a.ty.descriptor_size(),
                    &format!("{src}.count"),
                    false,
                    long,
                    &dealloc,
                );
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

/// Bytes of `mig_n_<b>` elements of `e`.
fn len_expr(b: &str, e: Elem) -> String {
    match e.bytes() {
        1 => format!("mig_n_{b}"),
        n => format!("mig_n_{b} * {n}"),
    }
}

fn write_demux(g: &mut Gen<'_>, trait_name: &str) {
    let sub = g.sub;
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
        "return mig_rt::Served { handled: false, reply_size: 0, code: \
         mig_rt::KernReturn::MigBadArguments };",
    );
    g.line(1, "};");
    if sub.routines.is_empty() {
        g.line(1, "let _ = server;");
        g.line(1, "mig_rt::bad_id(&mig_in, reply)");
        g.line(0, "}");
        g.line(0, "");
        return;
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
    g.line(0, "");
}

/// The `<subsystem>_unimplemented!` macro: writes the methods of the routines it is given
/// (inside the `impl` block) as explicitly unimplemented, answering `MIG_BAD_ID`.
fn write_unimplemented_macro(g: &mut Gen<'_>, trait_name: &str, methods: &[Method]) {
    let sub = g.sub;
    let mac = format!("{}_unimplemented", bare(&snake(&sub.name)));
    let path = "$($mig_m)::+";
    g.line(
        0,
        &format!(
            "/// Marks routines of [`{trait_name}`] explicitly unimplemented (they answer \
             `MIG_BAD_ID`): inside the `impl` block, `{mac}!(path::to::this_module; routine, \
             ...);`."
        ),
    );
    g.line(
        0,
        "#[allow(unused_macros)] // For the crate's server impls; not every crate marks routines \
         unimplemented.",
    );
    g.line(0, &format!("macro_rules! {mac} {{"));
    g.line(1, "($($mig_m:ident)::+; $($mig_r:ident),+ $(,)?) => {");
    g.line(2, &format!("{path}::{mac}!(@each [{path}] $($mig_r)+);"));
    g.line(1, "};");
    g.line(1, "(@each [$($mig_m:ident)::+]) => {};");
    g.line(
        1,
        "(@each [$($mig_m:ident)::+] $mig_r:ident $($mig_rest:ident)*) => {",
    );
    g.line(2, &format!("{path}::{mac}!(@one [{path}] $mig_r);"));
    g.line(2, &format!("{path}::{mac}!(@each [{path}] $($mig_rest)*);"));
    g.line(1, "};");
    for m in methods {
        let fix = |t: &str| {
            let t = t.replace("mig_rt::", &format!("{path}::mig_rt::"));
            match &m.out_struct {
                Some(s) if t.starts_with(s.as_str()) => format!("{path}::{t}"),
                _ => t,
            }
        };
        let params: Vec<String> = m
            .params
            .iter()
            .map(|(_, t)| format!("_: {}", fix(t)))
            .collect();
        g.line(
            1,
            &format!("(@one [$($mig_m:ident)::+] {}) => {{", bare(&m.name)),
        );
        if m.params.len() + 1 > 7 {
            g.line(
                2,
                "#[allow(clippy::too_many_arguments)] // One parameter per .defs argument.",
            );
        }
        g.line(
            2,
            &format!(
                "fn {}(&mut self{}{}) -> ::core::result::Result<{}, {path}::mig_rt::KernReturn> {{",
                m.name,
                if params.is_empty() { "" } else { ", " },
                params.join(", "),
                fix(&m.ret)
            ),
        );
        g.line(3, &format!("{path}::mig_rt::not_implemented()"));
        g.line(2, "}");
        g.line(1, "};");
    }
    g.line(0, "}");
    g.line(
        0,
        "#[allow(unused_imports)] // For the crate's server impls; not every crate marks routines \
         unimplemented.",
    );
    g.line(0, &format!("pub(crate) use {mac};"));
}
