//! The analyser: turns the statements of a `.defs` file into a checked [`Subsystem`]: its
//! routines with their message ids, their arguments with resolved types and flags, and the
//! items of their request and reply messages in order.
//!
//! This is where GNU MIG's routine rules live (default directions, `CountInOut`, return code,
//! which arguments travel in the header and which in the body). Byte offsets are computed by
//! `layout`, and code by `codegen`.

use crate::ast::{
    ArgDecl, ArgType, Direction, Flag, FlagUse, ImportKind, RoutineDecl, RoutineKind, Statement,
};
use crate::error::{Error, Location, Result};
use crate::parser::POLYMORPHIC;
use crate::types::{
    Dealloc, IpcType, TypeTable, apply_flags, count_type, is_natural, is_single_port, ret_code_type,
};
use std::path::PathBuf;

/// A checked subsystem: everything code generation needs.
#[derive(Clone, Debug)]
pub struct Subsystem {
    /// Its name.
    pub name: String,
    /// Message id of the first routine.
    pub base: u32,
    /// `KernelUser`: the kernel calls these routines.
    pub kernel_user: bool,
    /// `KernelServer`: the kernel serves these routines.
    pub kernel_server: bool,
    /// `userprefix`.
    pub user_prefix: String,
    /// `serverprefix`.
    pub server_prefix: String,
    /// `serverdemux`, or `<name>_server`.
    pub server_demux: String,
    /// `rcsid`, if any.
    pub rcs_id: Option<String>,
    /// `import`, `uimport`, `simport` statements, for documentation.
    pub imports: Vec<(ImportKind, String)>,
    /// Routines in order.
    pub routines: Vec<Routine>,
    /// Number of message ids used, skips included.
    pub id_count: u32,
    /// Every file read.
    pub files: Vec<PathBuf>,
}

/// A checked routine.
#[derive(Clone, Debug)]
pub struct Routine {
    /// Its name.
    pub name: String,
    /// Where it was declared.
    pub loc: Location,
    /// `routine` or `simpleroutine`.
    pub kind: RoutineKind,
    /// Position in the subsystem (skips count).
    pub index: u32,
    /// Request message id (base + index).
    pub id: u32,
    /// Arguments as declared.
    pub args: Vec<Arg>,
    /// Items of the request body, in order.
    pub request: Vec<Item>,
    /// Items of the reply body, in order (the return code first).
    pub reply: Vec<Item>,
    /// The `waittime` in force for this routine, if any.
    pub wait_time: Option<String>,
    /// The `msgoption` in force for this routine, if any.
    pub msg_option: Option<String>,
}

impl Routine {
    /// True for a `simpleroutine` (no reply).
    pub fn is_simple(&self) -> bool {
        self.kind == RoutineKind::SimpleRoutine
    }

    /// Reply message id (request id + 100), 0 for a `simpleroutine`.
    pub fn reply_id(&self) -> u32 {
        if self.is_simple() { 0 } else { self.id + 100 }
    }

    /// The request-port argument.
    pub fn request_port(&self) -> Option<&Arg> {
        self.args.iter().find(|a| a.kind == ArgKind::RequestPort)
    }
}

/// What an argument is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ArgKind {
    /// The port the request is sent to (header).
    RequestPort,
    /// Data sent in the request.
    In,
    /// Data returned in the reply.
    Out,
    /// Both.
    InOut,
    /// The reply port, on both sides (header).
    ReplyPort,
    /// The reply port, server side only.
    SReplyPort,
    /// The reply port, user side only.
    UReplyPort,
    /// Receive timeout, user side only.
    WaitTime,
    /// `mach_msg` options, user side only.
    MsgOption,
    /// The request's sequence number, server side only (header).
    MsgSeqno,
}

impl ArgKind {
    /// Carried in the request body.
    pub fn in_request(self) -> bool {
        matches!(self, ArgKind::In | ArgKind::InOut)
    }

    /// Carried in the reply body.
    pub fn in_reply(self) -> bool {
        matches!(self, ArgKind::Out | ArgKind::InOut)
    }

    /// A parameter of the user-side stub.
    pub fn user_arg(self) -> bool {
        !matches!(self, ArgKind::SReplyPort | ArgKind::MsgSeqno)
    }

    /// A parameter of the server-side function.
    pub fn server_arg(self) -> bool {
        !matches!(
            self,
            ArgKind::UReplyPort | ArgKind::WaitTime | ArgKind::MsgOption
        )
    }
}

/// A checked argument.
#[derive(Clone, Debug)]
pub struct Arg {
    /// Its name.
    pub name: String,
    /// Where it was declared.
    pub loc: Location,
    /// What it is for.
    pub kind: ArgKind,
    /// Its type.
    pub ty: IpcType,
    /// Long-form descriptor (type default, changed by `IsLong`/`IsNotLong`).
    pub long_form: bool,
    /// Deallocation (type default, changed by `Dealloc` and friends).
    pub dealloc: Dealloc,
    /// `ServerCopy` given and meaningful.
    pub server_copy: bool,
    /// `CountInOut` given and meaningful: the request carries the caller's buffer size.
    pub count_in_out: bool,
}

impl Arg {
    /// The type name used by whoever sends this argument: the server of a `KernelServer`
    /// subsystem sends replies with the receive-side names, as GNU MIG does.
    pub fn send_name(&self, in_reply_of_kernel_server: bool) -> u32 {
        if in_reply_of_kernel_server {
            self.ty.out_name
        } else {
            self.ty.in_name
        }
    }

    /// The sender chooses the type name at run time.
    pub fn send_is_poly(&self, in_reply_of_kernel_server: bool) -> bool {
        self.send_name(in_reply_of_kernel_server) == POLYMORPHIC
    }

    /// The receiver is told the type name at run time.
    pub fn recv_is_poly(&self) -> bool {
        self.ty.out_name == POLYMORPHIC
    }
}

/// One item (type descriptor plus data) of a message body.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Item {
    /// The reply's return code.
    RetCode,
    /// The argument with this index.
    Arg(usize),
    /// The buffer size of the `CountInOut` argument with this index.
    CountInOut(usize),
}

/// Names the Rust code generator uses for itself; arguments may not take them.
const RESERVED_ARG_NAMES: &[&str] = &["transport"];

/// Analyses parsed statements; `files` are the files read, recorded in the result.
pub fn analyse(statements: &[Statement], files: Vec<PathBuf>) -> Result<Subsystem> {
    let mut a = Analyser {
        table: TypeTable::new(),
        sub: None,
        user_prefix: String::new(),
        server_prefix: String::new(),
        server_demux: None,
        rcs_id: None,
        imports: Vec::new(),
        routines: Vec::new(),
        index: 0,
        wait_time: None,
        msg_option: None,
    };
    for s in statements {
        a.statement(s)?;
    }
    let Some((name, base, kernel_user, kernel_server)) = a.sub else {
        return Err(Error::plain(
            "no 'subsystem' statement: every .defs file needs one",
        ));
    };
    Ok(Subsystem {
        server_demux: a.server_demux.unwrap_or_else(|| format!("{name}_server")),
        name,
        base,
        kernel_user,
        kernel_server,
        user_prefix: a.user_prefix,
        server_prefix: a.server_prefix,
        rcs_id: a.rcs_id,
        imports: a.imports,
        routines: a.routines,
        id_count: a.index,
        files,
    })
}

struct Analyser {
    table: TypeTable,
    sub: Option<(String, u32, bool, bool)>,
    user_prefix: String,
    server_prefix: String,
    server_demux: Option<String>,
    rcs_id: Option<String>,
    imports: Vec<(ImportKind, String)>,
    routines: Vec<Routine>,
    index: u32,
    wait_time: Option<String>,
    msg_option: Option<String>,
}

impl Analyser {
    fn need_subsystem(&self, loc: &Location, what: &str) -> Result<()> {
        if self.sub.is_none() {
            return Err(Error::at(
                loc,
                format!("'{what}' before the 'subsystem' statement"),
            ));
        }
        Ok(())
    }

    fn kernel_server(&self) -> bool {
        self.sub.as_ref().is_some_and(|s| s.3)
    }

    fn statement(&mut self, s: &Statement) -> Result<()> {
        match s {
            Statement::Subsystem {
                name,
                base,
                kernel_user,
                kernel_server,
            } => {
                if self.sub.is_some() {
                    return Err(Error::at(&name.loc, "a second 'subsystem' statement"));
                }
                if i32::try_from(*base).is_err() {
                    return Err(Error::at(&name.loc, "subsystem base is too large"));
                }
                self.sub = Some((name.name.clone(), *base, *kernel_user, *kernel_server));
            }
            Statement::WaitTime(w, _) => self.wait_time = w.clone(),
            Statement::MsgOption(m, _) => {
                self.msg_option = (m != "MACH_MSG_OPTION_NONE").then(|| m.clone());
            }
            Statement::ServerPrefix(p) => self.server_prefix = p.name.clone(),
            Statement::UserPrefix(p) => self.user_prefix = p.name.clone(),
            Statement::ServerDemux(d) => self.server_demux = Some(d.name.clone()),
            Statement::RcsId(r) => self.rcs_id = Some(r.clone()),
            Statement::Import { kind, file } => self.imports.push((*kind, file.clone())),
            Statement::Skip(n, loc) => {
                self.need_subsystem(loc, "skip")?;
                self.advance(*n, loc)?;
            }
            Statement::Type(nt) => {
                self.need_subsystem(&nt.name.loc, "type")?;
                let t = self
                    .table
                    .declare(&nt.name.name, &nt.name.loc, &nt.spec, &nt.trans)?;
                self.table.insert(&nt.name.name, &nt.name.loc, t)?;
            }
            Statement::Routine(r) => {
                self.need_subsystem(&r.name.loc, "routine")?;
                let routine = self.routine(r)?;
                self.routines.push(routine);
                self.advance(1, &r.name.loc)?;
            }
        }
        Ok(())
    }

    fn advance(&mut self, n: u32, loc: &Location) -> Result<()> {
        let base = self.sub.as_ref().map_or(0, |s| s.1);
        self.index = self
            .index
            .checked_add(n)
            .filter(|i| {
                base.checked_add(*i + 100)
                    .is_some_and(|id| i32::try_from(id).is_ok())
            })
            .ok_or_else(|| Error::at(loc, "message ids overflow"))?;
        Ok(())
    }

    fn routine(&self, decl: &RoutineDecl) -> Result<Routine> {
        let name = &decl.name;
        if let Some(prev) = self.routines.iter().find(|r| r.name == name.name) {
            return Err(Error::at(
                &name.loc,
                format!(
                    "routine '{}' is already declared at {}",
                    name.name, prev.loc
                ),
            ));
        }
        let mut args: Vec<Arg> = Vec::new();
        for d in &decl.args {
            let arg = self.argument(d, &args)?;
            args.push(arg);
        }
        if !args.iter().any(|a| a.kind == ArgKind::RequestPort) {
            return Err(Error::at(
                &name.loc,
                format!(
                    "{} '{}' has no request port argument",
                    kind_word(decl.kind),
                    name.name
                ),
            ));
        }
        if decl.kind == RoutineKind::SimpleRoutine
            && let Some(out) = args.iter().find(|a| a.kind.in_reply())
        {
            return Err(Error::at(
                &out.loc,
                format!(
                    "simpleroutine '{}' has an out argument '{}'",
                    name.name, out.name
                ),
            ));
        }
        let mut request = Vec::new();
        let mut reply = vec![Item::RetCode];
        for (i, a) in args.iter().enumerate() {
            if a.kind.in_request() {
                request.push(Item::Arg(i));
            }
            if a.count_in_out {
                request.push(Item::CountInOut(i));
            }
            if a.kind.in_reply() {
                reply.push(Item::Arg(i));
            }
        }
        let base = self.sub.as_ref().map_or(0, |s| s.1);
        let routine = Routine {
            name: name.name.clone(),
            loc: name.loc.clone(),
            kind: decl.kind,
            index: self.index,
            id: base + self.index,
            args,
            request,
            reply,
            wait_time: self.wait_time.clone(),
            msg_option: self.msg_option.clone(),
        };
        for (items, what) in [(&routine.request, "request"), (&routine.reply, "reply")] {
            if message_bytes(&routine, items) > u64::from(MAX_MESSAGE_BYTES) {
                return Err(Error::at(
                    &name.loc,
                    format!(
                        "the {what} of '{}' can be more than {MAX_MESSAGE_BYTES} bytes",
                        name.name
                    ),
                ));
            }
        }
        Ok(routine)
    }

    fn argument(&self, d: &ArgDecl, prev: &[Arg]) -> Result<Arg> {
        let name = &d.name;
        if let Some(p) = prev.iter().find(|p| p.name == name.name) {
            return Err(Error::at(
                &name.loc,
                format!("argument '{}' is already declared at {}", name.name, p.loc),
            ));
        }
        if RESERVED_ARG_NAMES.contains(&name.name.as_str()) || name.name.starts_with("mig_") {
            return Err(Error::at(
                &name.loc,
                format!(
                    "argument name '{}' is reserved by mig-rs (rename it; 'transport' and names \
                     starting with 'mig_' are taken)",
                    name.name
                ),
            ));
        }
        let ty = match &d.ty {
            ArgType::Named(id) => match self.table.get(&id.name) {
                Some(t) => t.clone(),
                None => {
                    return Err(Error::at(
                        &id.loc,
                        format!("type '{}' is not defined", id.name),
                    ));
                }
            },
            ArgType::Inline(nt) => {
                self.table
                    .declare(&nt.name.name, &nt.name.loc, &nt.spec, &nt.trans)?
            }
        };
        let has_request_port = prev.iter().any(|a| a.kind == ArgKind::RequestPort);
        let kind = match d.direction {
            None if !has_request_port => ArgKind::RequestPort,
            None | Some(Direction::In) => ArgKind::In,
            Some(Direction::Out) => ArgKind::Out,
            Some(Direction::InOut) => ArgKind::InOut,
            Some(Direction::RequestPort) => ArgKind::RequestPort,
            Some(Direction::ReplyPort) => ArgKind::ReplyPort,
            Some(Direction::SReplyPort) => ArgKind::SReplyPort,
            Some(Direction::UReplyPort) => ArgKind::UReplyPort,
            Some(Direction::WaitTime) => ArgKind::WaitTime,
            Some(Direction::MsgOption) => ArgKind::MsgOption,
            Some(Direction::MsgSeqno) => ArgKind::MsgSeqno,
        };
        // At most one argument of each special kind.
        let clash = |k: &[ArgKind]| prev.iter().find(|a| k.contains(&a.kind));
        let special: Option<&[ArgKind]> = match kind {
            ArgKind::RequestPort => Some(&[ArgKind::RequestPort]),
            ArgKind::ReplyPort => {
                Some(&[ArgKind::ReplyPort, ArgKind::SReplyPort, ArgKind::UReplyPort])
            }
            ArgKind::SReplyPort => Some(&[ArgKind::ReplyPort, ArgKind::SReplyPort]),
            ArgKind::UReplyPort => Some(&[ArgKind::ReplyPort, ArgKind::UReplyPort]),
            ArgKind::WaitTime => Some(&[ArgKind::WaitTime]),
            ArgKind::MsgOption => Some(&[ArgKind::MsgOption]),
            ArgKind::MsgSeqno => Some(&[ArgKind::MsgSeqno]),
            _ => None,
        };
        if let Some(kinds) = special
            && let Some(p) = clash(kinds)
        {
            return Err(Error::at(
                &name.loc,
                format!(
                    "'{}' duplicates the {:?} argument '{}'",
                    name.name, p.kind, p.name
                ),
            ));
        }
        match kind {
            ArgKind::RequestPort
            | ArgKind::ReplyPort
            | ArgKind::SReplyPort
            | ArgKind::UReplyPort
                if !is_single_port(&ty) =>
            {
                return Err(Error::at(
                    &name.loc,
                    format!(
                        "'{}' is a {:?} argument but its type '{}' is not a port right",
                        name.name, kind, ty.name
                    ),
                ));
            }
            ArgKind::WaitTime | ArgKind::MsgOption | ArgKind::MsgSeqno if !is_natural(&ty) => {
                return Err(Error::at(
                    &name.loc,
                    format!(
                        "'{}' is a {:?} argument but its type '{}' is not a 32-bit integer",
                        name.name, kind, ty.name
                    ),
                ));
            }
            _ => {}
        }
        let (long_form, mut dealloc) =
            apply_flags(&ty, &d.flags, ty.long_form, ty.dealloc, &name.name)?;
        // GNU MIG: a KernelServer's out argument may always ask for deallocation.
        if self.kernel_server()
            && kind.in_reply()
            && has_flag(&d.flags, Flag::Dealloc)
            && ty.dealloc == Dealloc::No
        {
            dealloc = Dealloc::Yes;
        }
        // Meaningless ServerCopy and CountInOut are ignored, as GNU MIG does (with a warning).
        let server_copy =
            has_flag(&d.flags, Flag::ServerCopy) && ty.indefinite && kind.in_request();
        let count_in_out = has_flag(&d.flags, Flag::CountInOut)
            && ty.var_array
            && ty.inline
            && kind.in_reply()
            && !kind.in_request();
        if ty.var_array && ty.inline && kind == ArgKind::InOut {
            return Err(Error::at(
                &name.loc,
                format!(
                    "'{}': inline variable-sized arguments cannot be inout",
                    name.name
                ),
            ));
        }
        Ok(Arg {
            name: name.name.clone(),
            loc: name.loc.clone(),
            kind,
            ty,
            long_form,
            dealloc,
            server_copy,
            count_in_out,
        })
    }
}

fn has_flag(flags: &[FlagUse], f: Flag) -> bool {
    flags.iter().any(|u| u.flag == f)
}

fn kind_word(k: RoutineKind) -> &'static str {
    match k {
        RoutineKind::Routine => "routine",
        RoutineKind::SimpleRoutine => "simpleroutine",
    }
}

/// The most bytes a message of a routine may have at its largest: a limit of mig-rs that
/// keeps the layouts' offsets within 32 bits.
pub const MAX_MESSAGE_BYTES: u32 = 1 << 28;

/// The largest size of a message made of `items`, header included (as `layout` lays it
/// out), computed without overflow.
fn message_bytes(routine: &Routine, items: &[Item]) -> u64 {
    let data =
        |item: &Item| u64::from(item_type(routine, *item).0.max_data_bytes()).div_ceil(8) * 8;
    items
        .iter()
        .map(|item| u64::from(crate::layout::DESC_SIZE) + data(item))
        .sum::<u64>()
        + u64::from(crate::layout::HEADER_SIZE)
}

/// The type and descriptor flags of a message item: (type, long form, deallocation).
pub fn item_type(routine: &Routine, item: Item) -> (IpcType, bool, Dealloc) {
    match item {
        Item::RetCode => (ret_code_type(), false, Dealloc::No),
        Item::CountInOut(_) => (count_type(), false, Dealloc::No),
        Item::Arg(i) => match routine.args.get(i) {
            Some(a) => (a.ty.clone(), a.long_form, a.dealloc),
            None => (ret_code_type(), false, Dealloc::No),
        },
    }
}

/// The field name GNU MIG gives an item's data (`RetCode`, the argument name, `<name>Cnt`).
pub fn item_name(routine: &Routine, item: Item) -> String {
    match item {
        Item::RetCode => "RetCode".to_string(),
        Item::Arg(i) => routine
            .args
            .get(i)
            .map_or_else(String::new, |a| a.name.clone()),
        Item::CountInOut(i) => routine
            .args
            .get(i)
            .map_or_else(String::new, |a| format!("{}Cnt", a.name)),
    }
}
