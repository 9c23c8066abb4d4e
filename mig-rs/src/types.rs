//! IPC types: what a `.defs` type declaration means on the wire. This follows GNU MIG's rules
//! (its `type.c`) for element size, count, inline or out-of-line, and when the long form of
//! the type descriptor is used, for the LP64 message format (8-byte alignment, 64-bit inline
//! ports, 8-byte out-of-line pointers).
//!
//! It does not know about routines or messages; `routine` builds those from these types.

use crate::ast::{Flag, FlagUse, IpcTypeExpr, PrimIpcType, Translation, TypeSpec};
use crate::error::{Error, Location, Result};
use crate::parser::{POLYMORPHIC, PORT_NAME_SIZE_BITS, PORT_SIZE_BITS};
use std::collections::HashMap;

/// Alignment of every item in an LP64 typed message.
pub const ALIGN: u32 = 8;
/// Size of an out-of-line pointer in the message.
pub const POINTER_SIZE: u32 = 8;
/// An indefinite array (`array[] of`) sends at most this many bytes inline.
pub const INDEFINITE_INLINE_BYTES: u32 = 2048;

/// `MACH_MSG_TYPE_INTEGER_32`.
pub const TYPE_INTEGER_32: u32 = 2;
/// `MACH_MSG_TYPE_INTEGER_16`.
pub const TYPE_INTEGER_16: u32 = 1;
/// `MACH_MSG_TYPE_INTEGER_64`.
pub const TYPE_INTEGER_64: u32 = 11;
/// `MACH_MSG_TYPE_CHAR`.
pub const TYPE_CHAR: u32 = 8;
/// `MACH_MSG_TYPE_BYTE`.
pub const TYPE_BYTE: u32 = 9;
/// `MACH_MSG_TYPE_PORT_NAME`.
pub const TYPE_PORT_NAME: u32 = 15;
/// `MACH_MSG_TYPE_STRING` (and `STRING_C`).
pub const TYPE_STRING: u32 = 12;

/// The most bytes of in-line data one type may have: a limit of mig-rs, far above what a
/// kernel takes in one message, that keeps every size it computes within 32 bits.
pub const MAX_INLINE_BYTES: u32 = 1 << 24;

/// Rounds `n` up to a multiple of 8.
pub fn round8(n: u32) -> u32 {
    n.div_ceil(ALIGN) * ALIGN
}

/// True for the port-right type names (`MOVE_RECEIVE` 16 … `MAKE_SEND_ONCE` 21).
pub fn is_port_right_name(name: u32) -> bool {
    (16..=21).contains(&name)
}

/// Whether the sender asks the kernel to deallocate the data (or port right) it sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dealloc {
    /// Never.
    No,
    /// Always.
    Yes,
    /// Chosen at run time by the caller (`Dealloc[]`).
    Maybe,
}

/// The C-level names and translation clauses of a type. The Rust generator turns `intran:`,
/// `outtran:` and `destructor:` into typed hooks of the server trait (see `codegen`); the C
/// names are kept for the generated documentation.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CInfo {
    /// `ctype:` / `cusertype:`.
    pub user_type: Option<String>,
    /// `ctype:` / `cservertype:`.
    pub server_type: Option<String>,
    /// The translated type of `intran:`, `outtran:` and `destructor:` (`task_t` in
    /// `intran: task_t convert_port_to_task(mach_port_t)`).
    pub trans_type: Option<String>,
    /// `intran:` function.
    pub intran: Option<String>,
    /// `intranpayload:` function.
    pub intran_payload: Option<String>,
    /// `outtran:` function.
    pub outtran: Option<String>,
    /// `destructor:` function.
    pub destructor: Option<String>,
    /// Where the first translation clause was written.
    pub trans_loc: Option<Location>,
}

impl CInfo {
    /// True if any of `intran:`, `outtran:` or `destructor:` was given.
    pub fn translates(&self) -> bool {
        self.intran.is_some() || self.outtran.is_some() || self.destructor.is_some()
    }
}

/// A checked IPC type.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IpcType {
    /// Its name (the declared name, or the name it was copied from).
    pub name: String,
    /// `msgt_name` when sending ([`POLYMORPHIC`] if chosen at run time).
    pub in_name: u32,
    /// `msgt_name` seen by the receiver ([`POLYMORPHIC`] if any).
    pub out_name: u32,
    /// Bits per element.
    pub size: u32,
    /// Number of elements (the maximum for variable arrays; 0 for out-of-line data).
    pub number: u32,
    /// Carried in the message (else out-of-line).
    pub inline: bool,
    /// Uses the long form of the type descriptor.
    pub long_form: bool,
    /// Default deallocation.
    pub dealloc: Dealloc,
    /// Variable number of elements.
    pub var_array: bool,
    /// `array[] of`: inline up to 2048 bytes, else out-of-line.
    pub indefinite: bool,
    /// A structure (or fixed array passed as a whole).
    pub is_struct: bool,
    /// A C string.
    pub is_string: bool,
    /// Required alignment in bytes.
    pub alignment: u32,
    /// Flags written in the type's `(TYPE, SIZE, flags)`.
    pub flags: Vec<FlagUse>,
    /// Elements of the type this one was made from, per element of this one's count (the
    /// multiplier of a variable array's count).
    pub element_number: u32,
    /// Whether integers of this type are signed (only affects the Rust types used).
    pub signed: Option<bool>,
    /// C names and translations.
    pub c: CInfo,
}

impl IpcType {
    /// True for port rights (and polymorphic types, which may carry them).
    pub fn is_port(&self) -> bool {
        (self.in_name == POLYMORPHIC && self.out_name == POLYMORPHIC)
            || is_port_right_name(self.in_name)
            || is_port_right_name(self.out_name)
    }

    /// Bytes of data this type puts in the message at most (unpadded): the pointer for
    /// out-of-line data.
    pub fn max_data_bytes(&self) -> u32 {
        if self.inline {
            let bits = u64::from(self.number) * u64::from(self.size);
            u32::try_from(bits.div_ceil(8)).unwrap_or(u32::MAX)
        } else {
            POINTER_SIZE
        }
    }

    /// Size in bits of one element as written in the descriptor: out-of-line arrays of port
    /// rights carry 32-bit names.
    pub fn descriptor_size(&self) -> u32 {
        if !self.inline {
            self.ool_size()
        } else {
            self.size
        }
    }

    /// Size in bits of one element when the data travels out-of-line (32 for port rights,
    /// whose out-of-line form is an array of names; else the element size). An indefinite
    /// array uses it when it goes out-of-line at run time.
    pub fn ool_size(&self) -> u32 {
        if self.is_port() {
            PORT_NAME_SIZE_BITS
        } else {
            self.size
        }
    }

    fn new(in_name: u32, out_name: u32, size: u32) -> Self {
        IpcType {
            name: String::new(),
            in_name,
            out_name,
            size,
            number: 1,
            inline: true,
            long_form: false,
            dealloc: Dealloc::No,
            var_array: false,
            indefinite: false,
            is_struct: true,
            is_string: in_name == TYPE_STRING,
            alignment: (size / 8).clamp(1, ALIGN),
            flags: Vec::new(),
            element_number: 1,
            signed: None,
            c: CInfo::default(),
        }
        .with_string_fix()
    }

    fn with_string_fix(mut self) -> Self {
        if self.is_string {
            self.is_struct = false;
        }
        self
    }

    /// A copy used to build a new type from this one (GNU MIG's `itCopyType` + reset).
    fn derived(&self) -> Self {
        let mut t = self.clone();
        t.element_number = self.number.max(1);
        t.c = CInfo::default();
        t
    }
}

/// How badly a type needs the long form (GNU MIG's `itUseLong`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum UseLong {
    Short,
    MayBeLong,
    Preferred,
    Required,
    Impossible,
}

fn use_long(t: &IpcType) -> UseLong {
    let mut u = UseLong::Short;
    if t.in_name == POLYMORPHIC || t.out_name == POLYMORPHIC || t.var_array {
        u = UseLong::MayBeLong;
    }
    if (t.var_array && !t.inline) || t.indefinite {
        u = UseLong::Preferred;
    }
    if t.size >= 1 << 8 || t.number >= 1 << 12 {
        u = UseLong::Required;
    }
    if t.size >= 1 << 16 {
        u = UseLong::Impossible;
    }
    u
}

/// Resolves the deallocation and long-form flags of a type or argument; `default_*` are what
/// applies without flags.
pub fn apply_flags(
    t: &IpcType,
    flags: &[FlagUse],
    default_long: bool,
    default_dealloc: Dealloc,
    what: &str,
) -> Result<(bool, Dealloc)> {
    let has = |f: Flag| flags.iter().find(|u| u.flag == f);
    if let (Some(_), Some(b)) = (has(Flag::Long), has(Flag::NotLong)) {
        return Err(Error::at(
            &b.loc,
            format!("{what}: IsLong and IsNotLong contradict each other"),
        ));
    }
    let deallocs: Vec<&FlagUse> = flags
        .iter()
        .filter(|u| {
            matches!(
                u.flag,
                Flag::Dealloc | Flag::NotDealloc | Flag::MaybeDealloc
            )
        })
        .collect();
    if let [_, second, ..] = deallocs.as_slice()
        && deallocs.iter().any(|u| u.flag != deallocs[0].flag)
    {
        return Err(Error::at(
            &second.loc,
            format!("{what}: Dealloc, NotDealloc and Dealloc[] contradict each other"),
        ));
    }
    let mut long = default_long;
    if has(Flag::Long).is_some() {
        long = true;
    }
    if let Some(u) = has(Flag::NotLong) {
        if use_long(t) >= UseLong::Required {
            return Err(Error::at(&u.loc, format!("{what}: too big for IsNotLong")));
        }
        long = false;
    }
    let mut dealloc = default_dealloc;
    if has(Flag::MaybeDealloc).is_some() {
        dealloc = Dealloc::Maybe;
    }
    if has(Flag::Dealloc).is_some() {
        dealloc = Dealloc::Yes;
    }
    if has(Flag::NotDealloc).is_some() {
        dealloc = Dealloc::No;
    }
    Ok((long, dealloc))
}

/// The table of declared types, starting with GNU MIG's built-in C types.
#[derive(Clone, Debug)]
pub struct TypeTable {
    types: HashMap<String, IpcType>,
}

impl Default for TypeTable {
    fn default() -> Self {
        Self::new()
    }
}

impl TypeTable {
    /// A table holding the built-in types `char`, `short`, `int`, `int64`, `uintptr_t` and
    /// `intptr_t` (LP64 sizes).
    pub fn new() -> Self {
        let mut types = HashMap::new();
        let builtins: [(&str, u32, u32, bool); 6] = [
            ("char", TYPE_CHAR, 8, false),
            ("short", TYPE_INTEGER_16, 16, true),
            ("int", TYPE_INTEGER_32, 32, true),
            ("int64", TYPE_INTEGER_64, 64, true),
            ("uintptr_t", TYPE_INTEGER_64, 64, false),
            ("intptr_t", TYPE_INTEGER_64, 64, true),
        ];
        for (name, ipc, bits, signed) in builtins {
            let mut t = IpcType::new(ipc, ipc, bits);
            t.name = name.to_string();
            t.signed = Some(signed);
            types.insert(name.to_string(), t);
        }
        TypeTable { types }
    }

    /// Looks a type up by name.
    pub fn get(&self, name: &str) -> Option<&IpcType> {
        self.types.get(name)
    }

    /// Declares `name`; redefinition is an error.
    pub fn insert(&mut self, name: &str, loc: &Location, t: IpcType) -> Result<()> {
        if self.types.contains_key(name) {
            return Err(Error::at(loc, format!("type '{name}' is already defined")));
        }
        self.types.insert(name.to_string(), t);
        Ok(())
    }

    /// Builds and checks the type `name = spec trans` (not inserting it).
    pub fn declare(
        &self,
        name: &str,
        loc: &Location,
        spec: &TypeSpec,
        trans: &[Translation],
    ) -> Result<IpcType> {
        let mut t = self.spec(spec)?;
        // GNU MIG: `type new = old;` keeps old's C names and translations; any clause given
        // starts them afresh, and every other kind of declaration starts without them.
        t.c = match spec {
            TypeSpec::Named(id) if trans.is_empty() => self
                .types
                .get(&id.name)
                .map(|old| old.c.clone())
                .unwrap_or_default(),
            _ => CInfo::default(),
        };
        for tr in trans {
            apply_translation(&mut t.c, tr)?;
        }
        check_decl(name, loc, t)
    }

    fn lookup(&self, name: &str, loc: &Location) -> Result<IpcType> {
        match self.types.get(name) {
            Some(t) => Ok(t.derived()),
            None => Err(Error::at(loc, format!("type '{name}' is not defined"))),
        }
    }

    fn spec(&self, spec: &TypeSpec) -> Result<IpcType> {
        match spec {
            TypeSpec::Ipc(ipc) => {
                let (in_name, out_name, size) = ipc_names(ipc)?;
                if size == 0 {
                    return Err(Error::at(
                        &ipc.loc,
                        format!(
                            "IPC type '{}' has no default size: write ({}, SIZE)",
                            ipc_text(ipc),
                            ipc_text(ipc)
                        ),
                    ));
                }
                Ok(IpcType::new(in_name, out_name, size))
            }
            TypeSpec::IpcSized { ipc, size, flags } => {
                let (in_name, out_name, _) = ipc_names(ipc)?;
                if *size == 0 {
                    return Err(Error::at(&ipc.loc, "IPC type of size 0"));
                }
                let mut t = IpcType::new(in_name, out_name, *size);
                t.flags = flags.clone();
                Ok(t)
            }
            TypeSpec::Named(id) => self.lookup(&id.name, &id.loc),
            TypeSpec::VarArray { max, of, loc } => {
                let old = self.spec(of)?;
                too_complicated(&old, loc)?;
                let mut t = old.derived();
                match max {
                    Some(n) if *n != 0 => {
                        t.number = old
                            .number
                            .checked_mul(*n)
                            .ok_or_else(|| Error::at(loc, "array too large"))?;
                    }
                    _ => {
                        let bytes = old.max_data_bytes();
                        if bytes == 0 {
                            return Err(Error::at(loc, "array of zero-sized elements"));
                        }
                        t.number = (INDEFINITE_INLINE_BYTES / bytes) * old.number;
                        t.indefinite = true;
                    }
                }
                t.var_array = true;
                t.is_struct = false;
                t.is_string = false;
                Ok(t)
            }
            TypeSpec::Array { count, of, loc } | TypeSpec::StructArray { count, of, loc } => {
                let old = self.spec(of)?;
                too_complicated(&old, loc)?;
                let mut t = old.derived();
                t.number = old
                    .number
                    .checked_mul(*count)
                    .ok_or_else(|| Error::at(loc, "array too large"))?;
                t.is_struct = matches!(spec, TypeSpec::StructArray { .. });
                t.is_string = false;
                Ok(t)
            }
            TypeSpec::Pointer(of, loc) => {
                let mut t = self.spec(of)?;
                if !t.inline || (t.var_array && !t.indefinite && t.number > 0) {
                    return Err(Error::at(
                        loc,
                        "IPC type declaration is too complicated: '^' needs an inline type or \
                         'array[] of'",
                    ));
                }
                if !t.var_array {
                    t.element_number = t.number;
                }
                t.number = 0;
                t.indefinite = false;
                t.inline = false;
                t.is_struct = true;
                t.is_string = false;
                t.alignment = POINTER_SIZE;
                Ok(t)
            }
            TypeSpec::Struct { fields, loc } => {
                let mut size = 0u32;
                let mut align = 1u32;
                for (ty, field) in fields {
                    let t = self.lookup(&ty.name, &ty.loc)?;
                    if !t.inline || t.var_array {
                        return Err(Error::at(
                            &field.loc,
                            format!(
                                "struct field '{}' must have an inline fixed-size type",
                                field.name
                            ),
                        ));
                    }
                    let a = t.alignment.max(1);
                    align = align.max(a);
                    size = size
                        .checked_next_multiple_of(a)
                        .and_then(|s| s.checked_add(t.max_data_bytes()))
                        .filter(|&s| s <= MAX_INLINE_BYTES)
                        .ok_or_else(|| Error::at(loc, "struct too large"))?;
                }
                let size = size.next_multiple_of(align);
                let (name, bits, signed) = match align {
                    2 => (TYPE_INTEGER_16, 16, true),
                    4 => (TYPE_INTEGER_32, 32, true),
                    8 => (TYPE_INTEGER_64, 64, true),
                    _ => (TYPE_BYTE, 8, false),
                };
                let mut t = IpcType::new(name, name, bits);
                t.number = size / (bits / 8);
                if t.number == 0 {
                    return Err(Error::at(loc, "struct of size 0"));
                }
                t.alignment = align;
                t.signed = Some(signed);
                Ok(t)
            }
            TypeSpec::CString { max, varying, loc } => {
                if *max == 0 {
                    return Err(Error::at(loc, "c_string of length 0"));
                }
                let mut t = IpcType::new(TYPE_STRING, TYPE_STRING, 8);
                t.number = *max;
                t.var_array = *varying;
                t.is_struct = false;
                t.is_string = true;
                t.signed = Some(false);
                Ok(t)
            }
        }
    }
}

fn too_complicated(old: &IpcType, loc: &Location) -> Result<()> {
    if !old.inline || old.var_array {
        return Err(Error::at(
            loc,
            format!(
                "IPC type declaration is too complicated: elements of type '{}' are {}",
                old.name,
                if old.inline {
                    "variable-sized"
                } else {
                    "out-of-line"
                }
            ),
        ));
    }
    Ok(())
}

fn ipc_text(ipc: &IpcTypeExpr) -> String {
    match &ipc.recv {
        Some(r) => format!("{}|{}", ipc.send.text, r.text),
        None => ipc.send.text.clone(),
    }
}

/// The (send name, receive name, default size) of `IN` or `IN|OUT`.
fn ipc_names(ipc: &IpcTypeExpr) -> Result<(u32, u32, u32)> {
    let check = |p: &PrimIpcType| {
        if p.send_name != POLYMORPHIC && p.send_name > 255
            || p.recv_name != POLYMORPHIC && p.recv_name > 255
        {
            Err(Error::at(
                &ipc.loc,
                format!("IPC type name '{}' does not fit in 8 bits", p.text),
            ))
        } else {
            Ok(())
        }
    };
    check(&ipc.send)?;
    match &ipc.recv {
        None => Ok((
            ipc.send.send_name,
            ipc.send.recv_name,
            ipc.send.default_size,
        )),
        Some(recv) => {
            check(recv)?;
            let (a, b) = (ipc.send.default_size, recv.default_size);
            let size = match (a, b) {
                (0, b) => b,
                (a, 0) => a,
                (a, b) if a == b => a,
                _ => {
                    return Err(Error::at(
                        &ipc.loc,
                        format!(
                            "sizes of '{}' ({a}) and '{}' ({b}) differ",
                            ipc.send.text, recv.text
                        ),
                    ));
                }
            };
            Ok((ipc.send.send_name, recv.recv_name, size))
        }
    }
}

fn apply_translation(c: &mut CInfo, tr: &Translation) -> Result<()> {
    let trans = |c: &mut CInfo, t: &crate::ast::Ident| -> Result<()> {
        match &c.trans_type {
            Some(old) if *old != t.name => Err(Error::at(
                &t.loc,
                format!(
                    "translated type '{}' conflicts with '{old}' named by an earlier clause",
                    t.name
                ),
            )),
            _ => {
                c.trans_type = Some(t.name.clone());
                c.trans_loc.get_or_insert_with(|| t.loc.clone());
                Ok(())
            }
        }
    };
    match tr {
        Translation::CType(t) => {
            c.user_type = Some(t.name.clone());
            c.server_type = Some(t.name.clone());
        }
        Translation::CUserType(t) => c.user_type = Some(t.name.clone()),
        Translation::CServerType(t) => c.server_type = Some(t.name.clone()),
        Translation::InTran {
            trans_type,
            func,
            server_type,
        } => {
            trans(c, trans_type)?;
            c.intran = Some(func.name.clone());
            c.server_type = Some(server_type.name.clone());
        }
        Translation::InTranPayload { trans_type, func } => {
            trans(c, trans_type)?;
            c.intran_payload = Some(func.name.clone());
        }
        Translation::OutTran {
            server_type,
            func,
            trans_type,
        } => {
            trans(c, trans_type)?;
            c.outtran = Some(func.name.clone());
            c.server_type = Some(server_type.name.clone());
        }
        Translation::Destructor { func, trans_type } => {
            trans(c, trans_type)?;
            c.destructor = Some(func.name.clone());
        }
    }
    Ok(())
}

/// GNU MIG's `itCheckDecl`: names the type, checks it and decides its long form and
/// deallocation.
fn check_decl(name: &str, loc: &Location, mut t: IpcType) -> Result<IpcType> {
    t.name = name.to_string();
    if t.var_array
        && (t.c.intran.is_some() || t.c.outtran.is_some() || t.c.intran_payload.is_some())
    {
        return Err(Error::at(
            loc,
            format!("{name}: variable-sized arrays cannot be translated"),
        ));
    }
    if t.var_array && t.c.destructor.is_some() {
        return Err(Error::at(
            loc,
            format!("{name}: variable-sized arrays cannot have a destructor"),
        ));
    }
    if t.inline && u64::from(t.number) * u64::from(t.size) > u64::from(MAX_INLINE_BYTES) * 8 {
        return Err(Error::at(
            loc,
            format!("{name}: more than {MAX_INLINE_BYTES} bytes in-line"),
        ));
    }
    let u = use_long(&t);
    if u == UseLong::Impossible {
        return Err(Error::at(
            loc,
            format!("{name}: too big for a type descriptor"),
        ));
    }
    let flags = t.flags.clone();
    let (long, dealloc) = apply_flags(&t, &flags, u >= UseLong::Preferred, Dealloc::No, name)?;
    t.long_form = long;
    t.dealloc = dealloc;
    if t.signed.is_none() {
        t.signed = Some(guess_signed(name) && t.in_name != TYPE_PORT_NAME);
    }
    Ok(t)
}

/// MIG does not know signedness; mig-rs guesses it from the C name so that the Rust API reads
/// naturally (`natural_t` is `u32`, `integer_t` is `i32`). The bits on the wire are the same.
fn guess_signed(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    !(n.starts_with('u') || n.contains("natural") || n.contains("unsigned"))
}

/// The type of the return code in every reply (`kern_return_t`).
pub fn ret_code_type() -> IpcType {
    let mut t = IpcType::new(TYPE_INTEGER_32, TYPE_INTEGER_32, 32);
    t.name = "kern_return_t".into();
    t.signed = Some(true);
    t
}

/// The type of a count sent for a `CountInOut` array (`mach_msg_type_number_t`).
pub fn count_type() -> IpcType {
    let mut t = IpcType::new(TYPE_INTEGER_32, TYPE_INTEGER_32, 32);
    t.name = "mach_msg_type_number_t".into();
    t.signed = Some(false);
    t
}

/// True if `t` is a single inline port right (a valid request or reply port type).
pub fn is_single_port(t: &IpcType) -> bool {
    t.is_port() && t.inline && !t.var_array && t.number == 1 && t.size == PORT_SIZE_BITS
}

/// True if `t` is one inline 32-bit integer (wait time, message option, sequence number).
pub fn is_natural(t: &IpcType) -> bool {
    t.inline && !t.var_array && t.number == 1 && t.size == 32 && !t.is_port()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ast::Statement;
    use crate::preprocess::{Config, preprocess_source};
    use std::sync::Arc;

    fn table(src: &str) -> Result<TypeTable> {
        let out = preprocess_source("t.defs", src, &Config::default())?;
        let stmts = crate::parser::parse(&out.tokens, &Arc::from("t.defs"))?;
        let mut table = TypeTable::new();
        for s in stmts {
            if let Statement::Type(nt) = s {
                let t = table.declare(&nt.name.name, &nt.name.loc, &nt.spec, &nt.trans)?;
                table.insert(&nt.name.name, &nt.name.loc, t)?;
            }
        }
        Ok(table)
    }

    const BASE: &str = "type int32_t = MACH_MSG_TYPE_INTEGER_32; type integer_t = int32_t;\n\
        type mach_port_t = MACH_MSG_TYPE_COPY_SEND;\n";

    #[test]
    fn gnu_long_form_rules() {
        let t = table(&format!(
            "{BASE} type info = array[*:1024] of integer_t; type big = array[*:4096] of integer_t;\n\
             type ool = ^array[] of mach_port_t; type indef = array[] of integer_t;\n\
             type ver = (MACH_MSG_TYPE_STRING, 512*8);"
        ))
        .expect("types");
        let get = |n: &str| t.get(n).expect("declared").clone();
        let info = get("info");
        assert!(info.var_array && info.inline && !info.long_form && info.number == 1024);
        assert!(get("big").long_form, "4096 elements need the long form");
        let ool = get("ool");
        assert!(ool.long_form && !ool.inline && ool.number == 0 && ool.descriptor_size() == 32);
        let indef = get("indef");
        assert!(indef.indefinite && indef.long_form && indef.number == 512);
        let ver = get("ver");
        assert!(ver.long_form && ver.size == 4096 && ver.is_string);
    }

    #[test]
    fn structs_and_strings() {
        let t = table(&format!(
            "{BASE} type int64_t = MACH_MSG_TYPE_INTEGER_64;\n\
             type tv = struct {{ int64_t seconds; integer_t micro; }};\n\
             type st = struct[13] of integer_t; type s = c_string[*:64];\n\
             type b = struct {{ char a; char b; char c; }};"
        ))
        .expect("types");
        let tv = t.get("tv").expect("tv");
        assert_eq!((tv.in_name, tv.size, tv.number), (TYPE_INTEGER_64, 64, 2));
        let st = t.get("st").expect("st");
        assert_eq!((st.number, st.is_struct), (13, true));
        let s = t.get("s").expect("s");
        assert!(s.var_array && s.is_string && s.number == 64 && s.size == 8);
        let b = t.get("b").expect("b");
        assert_eq!((b.in_name, b.number), (TYPE_BYTE, 3));
    }

    #[test]
    fn type_errors() {
        let e = table("type a = nothing;").expect_err("undefined");
        assert_eq!(e.to_string(), "t.defs:1:10: type 'nothing' is not defined");
        let e = table("type a = MACH_MSG_TYPE_STRING;").expect_err("no size");
        assert!(e.to_string().contains("has no default size"));
        let e = table(&format!(
            "{BASE} type a = array[*:4] of array[*:4] of integer_t;"
        ))
        .expect_err("nested");
        assert!(e.to_string().contains("too complicated"));
        let e = table(&format!("{BASE} type integer_t = int;")).expect_err("dup");
        assert!(
            e.to_string()
                .ends_with("type 'integer_t' is already defined")
        );
        let e = table("type a = (MACH_MSG_TYPE_INTEGER_32, 32, islong, isnotlong);")
            .expect_err("contradiction");
        assert!(e.to_string().contains("contradict"));
        let e = table("type a = (300, 32);").expect_err("name");
        assert!(e.to_string().contains("does not fit in 8 bits"));
    }
}
