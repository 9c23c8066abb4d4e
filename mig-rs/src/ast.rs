//! The syntax tree of a `.defs` file, as the parser reads it: statements in order, with
//! locations, before any type or routine is checked. Meaning (sizes, message layout) is
//! computed later by `types` and `routine`.

use crate::error::Location;

/// A name and where it was written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ident {
    /// The name.
    pub name: String,
    /// Where it was written.
    pub loc: Location,
}

/// One statement of a `.defs` file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Statement {
    /// `subsystem [KernelUser] [KernelServer] NAME BASE;`
    Subsystem {
        /// Subsystem name.
        name: Ident,
        /// First message id.
        base: u32,
        /// `KernelUser` was given.
        kernel_user: bool,
        /// `KernelServer` was given.
        kernel_server: bool,
    },
    /// `waittime TIME;` (`None` for `nowaittime;`).
    WaitTime(Option<String>, Location),
    /// `msgoption OPTION;`
    MsgOption(String, Location),
    /// `serverprefix NAME;`
    ServerPrefix(Ident),
    /// `userprefix NAME;`
    UserPrefix(Ident),
    /// `serverdemux NAME;`
    ServerDemux(Ident),
    /// `type NAME = SPEC;`
    Type(NamedType),
    /// `routine` or `simpleroutine`.
    Routine(RoutineDecl),
    /// `skip;` or `skip N;`
    Skip(u32, Location),
    /// `import`, `uimport` or `simport` of a C header (kept for documentation only).
    Import {
        /// Which of the three.
        kind: ImportKind,
        /// The file name, with its `<>` or `""`.
        file: String,
    },
    /// `rcsid "...";`
    RcsId(String),
}

/// Which side an `import` is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ImportKind {
    /// `import`: both sides.
    Both,
    /// `uimport`: user side.
    User,
    /// `simport`: server side.
    Server,
}

/// `NAME = SPEC [translations]`, as in a `type` statement or inline in an argument.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NamedType {
    /// The type's name.
    pub name: Ident,
    /// Its definition.
    pub spec: TypeSpec,
    /// `ctype:`, `intran:` and the like, in order.
    pub trans: Vec<Translation>,
}

/// A type specification.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TypeSpec {
    /// An IPC type with its default size (`MACH_MSG_TYPE_INTEGER_32`, `polymorphic`, a number).
    Ipc(IpcTypeExpr),
    /// `(IPCTYPE, SIZE [, flag]...)`
    IpcSized {
        /// The IPC type.
        ipc: IpcTypeExpr,
        /// Size in bits.
        size: u32,
        /// Flags such as `dealloc`.
        flags: Vec<FlagUse>,
    },
    /// The name of a type declared earlier.
    Named(Ident),
    /// `array[] of`, `array[*] of` (`max` is `None`) or `array[*:N] of`.
    VarArray {
        /// `N` of `array[*:N]`.
        max: Option<u32>,
        /// The element type.
        of: Box<TypeSpec>,
        /// Where `array` was written.
        loc: Location,
    },
    /// `array[N] of`
    Array {
        /// Number of elements.
        count: u32,
        /// The element type.
        of: Box<TypeSpec>,
        /// Where `array` was written.
        loc: Location,
    },
    /// `^ SPEC`: out-of-line.
    Pointer(Box<TypeSpec>, Location),
    /// `struct[N] of`
    StructArray {
        /// Number of elements.
        count: u32,
        /// The element type.
        of: Box<TypeSpec>,
        /// Where `struct` was written.
        loc: Location,
    },
    /// `struct { TYPE NAME; ... }`
    Struct {
        /// Fields: type name and field name.
        fields: Vec<(Ident, Ident)>,
        /// Where `struct` was written.
        loc: Location,
    },
    /// `c_string[N]` (`varying` false) or `c_string[*:N]` (`varying` true).
    CString {
        /// Maximum length in characters, terminator included.
        max: u32,
        /// Whether the length varies.
        varying: bool,
        /// Where `c_string` was written.
        loc: Location,
    },
}

/// One or two IPC type names: `IN` or `IN|OUT` (sent as IN, received as OUT).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IpcTypeExpr {
    /// The name used when sending.
    pub send: PrimIpcType,
    /// The name seen by the receiver, if written with `|`.
    pub recv: Option<PrimIpcType>,
    /// Where it was written.
    pub loc: Location,
}

/// One IPC type: a number or a symbolic `MACH_MSG_TYPE_*` name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PrimIpcType {
    /// `msgt_name` when sending.
    pub send_name: u32,
    /// `msgt_name` when received.
    pub recv_name: u32,
    /// Default size in bits (0: no default, a size must be given).
    pub default_size: u32,
    /// As written.
    pub text: String,
}

/// A translation or C-type clause after a type specification.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Translation {
    /// `ctype: NAME`
    CType(Ident),
    /// `cusertype: NAME`
    CUserType(Ident),
    /// `cservertype: NAME`
    CServerType(Ident),
    /// `intran: TYPE FUNC(SERVERTYPE)`
    InTran {
        /// The translated type.
        trans_type: Ident,
        /// The function.
        func: Ident,
        /// The server type it takes.
        server_type: Ident,
    },
    /// `intranpayload: TYPE FUNC`
    InTranPayload {
        /// The translated type.
        trans_type: Ident,
        /// The function.
        func: Ident,
    },
    /// `outtran: SERVERTYPE FUNC(TYPE)`
    OutTran {
        /// The server type it returns.
        server_type: Ident,
        /// The function.
        func: Ident,
        /// The translated type it takes.
        trans_type: Ident,
    },
    /// `destructor: FUNC(TYPE)`
    Destructor {
        /// The function.
        func: Ident,
        /// The translated type it takes.
        trans_type: Ident,
    },
}

/// An IPC flag written after a type or an argument.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Flag {
    /// `islong`
    Long,
    /// `isnotlong`
    NotLong,
    /// `dealloc`
    Dealloc,
    /// `dealloc[]`: the caller decides at run time.
    MaybeDealloc,
    /// `notdealloc`
    NotDealloc,
    /// `servercopy`
    ServerCopy,
    /// `countinout`
    CountInOut,
    /// `retcode` (accepted and ignored, as by GNU MIG)
    RetCode,
}

/// A flag and where it was written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FlagUse {
    /// The flag.
    pub flag: Flag,
    /// Where.
    pub loc: Location,
}

/// `routine` or `simpleroutine`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RoutineKind {
    /// Request and reply.
    Routine,
    /// Request only.
    SimpleRoutine,
}

/// A routine declaration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RoutineDecl {
    /// Which kind.
    pub kind: RoutineKind,
    /// Its name.
    pub name: Ident,
    /// Its arguments in order.
    pub args: Vec<ArgDecl>,
}

/// How an argument travels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// `in`
    In,
    /// `out`
    Out,
    /// `inout`
    InOut,
    /// `requestport`
    RequestPort,
    /// `replyport`
    ReplyPort,
    /// `sreplyport`
    SReplyPort,
    /// `ureplyport`
    UReplyPort,
    /// `waittime`
    WaitTime,
    /// `msgoption`
    MsgOption,
    /// `msgseqno`
    MsgSeqno,
}

/// The type of an argument: a type name or an inline `NAME = SPEC` declaration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ArgType {
    /// A declared type.
    Named(Ident),
    /// `NAME = SPEC`
    Inline(NamedType),
}

/// One argument of a routine.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ArgDecl {
    /// The direction, if written.
    pub direction: Option<Direction>,
    /// The argument's name.
    pub name: Ident,
    /// Its type.
    pub ty: ArgType,
    /// Flags after the type.
    pub flags: Vec<FlagUse>,
}
