//! Message layouts: where every type descriptor and data field of a request or reply sits in
//! an LP64 typed message (32-byte header, 8-byte descriptors, 8-byte alignment), at the
//! largest size the routine can produce; plus the two listings built from them, the
//! `--msgids` list and the `--layout-json` document.
//!
//! Code generation uses the same numbers, so what the JSON says is what the code does.

use crate::parser::POLYMORPHIC;
use crate::routine::{Item, Routine, Subsystem, item_name, item_type};
use crate::types::{Dealloc, IpcType, round8};
use std::fmt::Write;

/// Size of `mach_msg_header_t`.
pub const HEADER_SIZE: u32 = 32;
/// Size of `mach_msg_type_t` (and of its long form, on LP64).
pub const DESC_SIZE: u32 = 8;

/// A type descriptor as the sender writes it (counts at their maximum).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Descriptor {
    /// `msgt_name`, or -1 when the sender chooses it at run time.
    pub name: i64,
    /// `msgt_size` in bits.
    pub size: u32,
    /// `msgt_number` (the maximum for variable arrays, 0 for out-of-line data).
    pub number: u32,
    /// `msgt_inline`.
    pub inline: bool,
    /// `msgt_longform`.
    pub longform: bool,
    /// `msgt_deallocate`.
    pub deallocate: bool,
}

/// Where one item of a message sits.
#[derive(Clone, Debug)]
pub struct ItemLayout {
    /// Which item.
    pub item: Item,
    /// GNU MIG's field name for its data.
    pub name: String,
    /// Offset of the type descriptor.
    pub desc_offset: u32,
    /// Offset of the data.
    pub data_offset: u32,
    /// Largest data size, unpadded.
    pub data_size: u32,
    /// Padding after the largest data.
    pub pad: u32,
    /// The data size varies (inline variable array).
    pub variable: bool,
    /// The descriptor, as sent.
    pub desc: Descriptor,
}

/// The layout of a request or a reply.
#[derive(Clone, Debug)]
pub struct MessageLayout {
    /// Items in order.
    pub items: Vec<ItemLayout>,
    /// Smallest size (variable arrays empty).
    pub min_size: u32,
    /// Largest size.
    pub max_size: u32,
}

impl MessageLayout {
    /// True if every message of this kind has the same size.
    pub fn is_fixed(&self) -> bool {
        self.min_size == self.max_size && !self.items.iter().any(|i| i.variable)
    }
}

/// The descriptor of item `ty` as sent with type name `send_name`.
pub fn descriptor(ty: &IpcType, send_name: u32, long: bool, dealloc: Dealloc) -> Descriptor {
    Descriptor {
        name: if send_name == POLYMORPHIC {
            -1
        } else {
            i64::from(send_name)
        },
        size: ty.descriptor_size(),
        number: ty.number,
        inline: ty.inline,
        longform: long,
        deallocate: dealloc == Dealloc::Yes,
    }
}

fn layout(sub: &Subsystem, routine: &Routine, items: &[Item], reply: bool) -> MessageLayout {
    let mut offset = HEADER_SIZE;
    let mut min = HEADER_SIZE;
    let mut out = Vec::new();
    for &item in items {
        let (ty, long, dealloc) = item_type(routine, item);
        let send_name = match item {
            Item::Arg(i) => routine
                .args
                .get(i)
                .map_or(ty.in_name, |a| a.send_name(reply && sub.kernel_server)),
            _ => ty.in_name,
        };
        let data_size = ty.max_data_bytes();
        let padded = round8(data_size);
        let variable = ty.inline && ty.var_array;
        out.push(ItemLayout {
            item,
            name: item_name(routine, item),
            desc_offset: offset,
            data_offset: offset + DESC_SIZE,
            data_size,
            pad: padded - data_size,
            variable,
            desc: descriptor(&ty, send_name, long, dealloc),
        });
        offset += DESC_SIZE + padded;
        min += DESC_SIZE + if variable { 0 } else { padded };
    }
    MessageLayout {
        items: out,
        min_size: min,
        max_size: offset,
    }
}

/// The layout of `routine`'s request.
pub fn request_layout(sub: &Subsystem, routine: &Routine) -> MessageLayout {
    layout(sub, routine, &routine.request, false)
}

/// The layout of `routine`'s reply (meaningful for routines, not simpleroutines).
pub fn reply_layout(sub: &Subsystem, routine: &Routine) -> MessageLayout {
    layout(sub, routine, &routine.reply, true)
}

/// The routine list in GNU MIG's `-list` format: one line per routine,
/// `subsystem base routine index request_id reply_id` (reply id 0 for a simpleroutine).
pub fn msgids(sub: &Subsystem) -> String {
    let mut s = String::new();
    for r in &sub.routines {
        let _ = writeln!(
            s,
            "{} {} {} {} {} {}",
            sub.name,
            sub.base,
            r.name,
            r.index,
            r.id,
            r.reply_id()
        );
    }
    s
}

fn json_string(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn json_message(m: &MessageLayout, indent: &str) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "{{");
    let _ = writeln!(s, "{indent}  \"size\": {},", m.max_size);
    let _ = writeln!(s, "{indent}  \"fields\": [");
    let mut fields = vec![format!(
        "{indent}    {{\"name\": \"Head\", \"offset\": 0, \"size\": {HEADER_SIZE}}}"
    )];
    for it in &m.items {
        let d = &it.desc;
        fields.push(format!(
            "{indent}    {{\"name\": {}, \"offset\": {}, \"size\": {DESC_SIZE}, \"type\": \
             {{\"name\": {}, \"size\": {}, \"number\": {}, \"inline\": {}, \"longform\": {}, \
             \"deallocate\": {}}}}}",
            json_string(&format!("{}Type", it.name)),
            it.desc_offset,
            d.name,
            d.size,
            d.number,
            d.inline,
            d.longform,
            d.deallocate
        ));
        fields.push(format!(
            "{indent}    {{\"name\": {}, \"offset\": {}, \"size\": {}}}",
            json_string(&it.name),
            it.data_offset,
            it.data_size
        ));
        if it.pad != 0 {
            fields.push(format!(
                "{indent}    {{\"name\": {}, \"offset\": {}, \"size\": {}}}",
                json_string(&format!("{}Pad", it.name)),
                it.data_offset + it.data_size,
                it.pad
            ));
        }
    }
    let _ = writeln!(s, "{}", fields.join(",\n"));
    let _ = writeln!(s, "{indent}  ]");
    let _ = write!(s, "{indent}}}");
    s
}

/// The `--layout-json` document: `{"subsystem", "base", "routines": [...]}` with, per routine,
/// its name, ids, kind, and request and reply layouts (no reply for a simpleroutine).
pub fn layout_json(sub: &Subsystem) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "{{");
    let _ = writeln!(s, "  \"subsystem\": {},", json_string(&sub.name));
    let _ = writeln!(s, "  \"base\": {},", sub.base);
    let _ = writeln!(s, "  \"routines\": [");
    let mut routines = Vec::new();
    for r in &sub.routines {
        let mut e = String::new();
        let _ = writeln!(e, "    {{");
        let _ = writeln!(e, "      \"name\": {},", json_string(&r.name));
        let _ = writeln!(e, "      \"id\": {},", r.id);
        let _ = writeln!(e, "      \"reply_id\": {},", r.reply_id());
        let kind = if r.is_simple() {
            "simpleroutine"
        } else {
            "routine"
        };
        let _ = writeln!(e, "      \"kind\": \"{kind}\",");
        let req = json_message(&request_layout(sub, r), "      ");
        if r.is_simple() {
            let _ = writeln!(e, "      \"request\": {req}");
        } else {
            let rep = json_message(&reply_layout(sub, r), "      ");
            let _ = writeln!(e, "      \"request\": {req},");
            let _ = writeln!(e, "      \"reply\": {rep}");
        }
        let _ = write!(e, "    }}");
        routines.push(e);
    }
    if !routines.is_empty() {
        let _ = writeln!(s, "{}", routines.join(",\n"));
    }
    let _ = writeln!(s, "  ]");
    let _ = writeln!(s, "}}");
    s
}
