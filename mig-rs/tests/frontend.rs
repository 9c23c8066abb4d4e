//! Tests of mig-rs as a tool: message ids and layouts of libmach's GNU Mach interfaces, the
//! `mig-rs` command line, error reports for malformed input, snapshots of generated code, and
//! property tests that no input makes the front end panic or hang.

use mig_rs::layout::{reply_layout, request_layout};
use mig_rs::{CodegenOptions, Options, Subsystem};
use proptest::prelude::*;
use std::path::{Path, PathBuf};
use std::process::Command;

fn defs_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../libmach/defs")
}

fn load_mach(name: &str) -> Subsystem {
    let options = Options {
        include_dirs: vec![defs_dir()],
        defines: Vec::new(),
    };
    mig_rs::load(&defs_dir().join(format!("mach/{name}.defs")), &options)
        .unwrap_or_else(|e| panic!("{e}"))
}

fn id_of(sub: &Subsystem, routine: &str) -> u32 {
    sub.routines
        .iter()
        .find(|r| r.name == routine)
        .map(|r| r.id)
        .unwrap_or_else(|| panic!("no routine {routine}"))
}

fn load_str(src: &str) -> mig_rs::Result<Subsystem> {
    mig_rs::load_source("t.defs", src, &Options::default())
}

fn error_of(src: &str) -> String {
    match load_str(src) {
        Ok(_) => panic!("accepted: {src}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn gnu_mach_message_ids() {
    let host = load_mach("mach_host");
    for (name, id) in [
        ("host_processors", 2600),
        ("processor_set_create", 2608),
        ("thread_assign", 2613),
        ("thread_priority", 2620),
        ("host_info", 2638),
        ("processor_info", 2639),
        ("processor_set_info", 2640),
        ("host_get_time64", 2643),
        ("processor_set_processors", 2648),
    ] {
        assert_eq!(id_of(&host, name), id, "{name}");
    }
    let mach = load_mach("mach");
    for (name, id) in [
        ("task_create", 2007),
        ("task_threads", 2011),
        ("thread_info", 2019),
        ("vm_allocate", 2021),
        ("vm_statistics", 2030),
        ("mach_ports_lookup", 2034),
        ("task_suspend", 2056),
        ("thread_create", 2061),
        ("thread_set_special_port", 2068),
        ("vm_map", 2089),
    ] {
        assert_eq!(id_of(&mach, name), id, "{name}");
    }
    let port = load_mach("mach_port");
    assert_eq!(id_of(&port, "mach_port_names"), 3200);
    assert_eq!(id_of(&port, "mach_port_set_seqno"), 3218);
    assert_eq!(id_of(&port, "mach_port_set_ktype"), 3223);
}

#[test]
fn cli_msgids_lists_gnu_ids() {
    let run = |file: &str| {
        let out = Command::new(env!("CARGO_BIN_EXE_mig-rs"))
            .arg(defs_dir().join(file))
            .arg("-I")
            .arg(defs_dir())
            .args(["--msgids", "-"])
            .output()
            .expect("runs");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).expect("utf-8")
    };
    let host = run("mach/mach_host.defs");
    for line in [
        "mach_host 2600 thread_assign 13 2613 2713",
        "mach_host 2600 host_info 38 2638 2738",
        "mach_host 2600 processor_info 39 2639 2739",
        "mach_host 2600 processor_set_info 40 2640 2740",
    ] {
        assert!(host.lines().any(|l| l == line), "missing {line}");
    }
    let mach = run("mach/mach.defs");
    for line in [
        "mach 2000 task_threads 11 2011 2111",
        "mach 2000 thread_info 19 2019 2119",
        "mach 2000 thread_create 61 2061 2161",
        "mach 2000 memory_object_data_unavailable 39 2039 0",
    ] {
        assert!(mach.lines().any(|l| l == line), "missing {line}");
    }
}

#[test]
fn host_info_layout() {
    let host = load_mach("mach_host");
    let r = host
        .routines
        .iter()
        .find(|r| r.name == "host_info")
        .expect("host_info");
    let req = request_layout(&host, r);
    assert_eq!((req.min_size, req.max_size), (64, 64));
    let offs: Vec<(u32, u32)> = req
        .items
        .iter()
        .map(|i| (i.desc_offset, i.data_offset))
        .collect();
    assert_eq!(offs, [(32, 40), (48, 56)]);
    let rep = reply_layout(&host, r);
    assert_eq!((rep.min_size, rep.max_size), (56, 4152));
    assert_eq!(rep.items[1].data_offset, 56);
    assert_eq!(rep.items[1].desc.number, 1024);
    assert!(!rep.items[1].desc.longform);
}

#[test]
fn processor_info_layout() {
    let host = load_mach("mach_host");
    let r = host
        .routines
        .iter()
        .find(|r| r.name == "processor_info")
        .expect("routine");
    let rep = reply_layout(&host, r);
    assert_eq!(rep.min_size, 72);
    let hostright = &rep.items[1];
    assert_eq!((hostright.desc_offset, hostright.data_offset), (48, 56));
    assert_eq!((hostright.desc.name, hostright.desc.size), (19, 64));
    assert_eq!(
        (rep.items[2].desc_offset, rep.items[2].data_offset),
        (64, 72)
    );
}

#[test]
fn out_of_line_port_arrays_are_32_bit_long_form() {
    let host = load_mach("mach_host");
    let r = host
        .routines
        .iter()
        .find(|r| r.name == "host_processors")
        .expect("routine");
    let d = &reply_layout(&host, r).items[1].desc;
    assert_eq!(
        (d.name, d.size, d.inline, d.longform),
        (19, 32, false, true)
    );
    let mach = load_mach("mach");
    let r = mach
        .routines
        .iter()
        .find(|r| r.name == "task_threads")
        .expect("routine");
    let rep = reply_layout(&mach, r);
    assert_eq!(rep.max_size, 64);
    assert_eq!(
        (rep.items[1].desc.size, rep.items[1].desc.longform),
        (32, true)
    );
}

#[test]
fn layout_json_is_exactly_the_documented_shape() {
    let out = Command::new(env!("CARGO_BIN_EXE_mig-rs"))
        .arg(defs_dir().join("mach/mach_host.defs"))
        .arg("-I")
        .arg(defs_dir())
        .args(["--layout-json", "-"])
        .output()
        .expect("runs");
    assert!(out.status.success());
    let json = String::from_utf8(out.stdout).expect("utf-8");
    assert!(json.starts_with("{\n  \"subsystem\": \"mach_host\",\n  \"base\": 2600,\n"));
    assert!(json.contains(
        "{\"name\": \"host_info_outCntType\", \"offset\": 48, \"size\": 8, \"type\": \
         {\"name\": 2, \"size\": 32, \"number\": 1, \"inline\": true, \"longform\": false, \
         \"deallocate\": false}}"
    ));
    assert!(json.contains("\"name\": \"host_info\",\n      \"id\": 2638,\n      \"reply_id\": 2738,\n      \"kind\": \"routine\""));
    assert!(json.contains("\"size\": 4152"));
    let mach = mig_rs::layout_json(&load_mach("mach"));
    let simple = mach
        .split("\"name\": \"memory_object_data_unavailable\"")
        .nth(1)
        .and_then(|s| s.split("\n    }").next())
        .expect("routine present");
    assert!(simple.contains("\"kind\": \"simpleroutine\""));
    assert!(simple.contains("\"reply_id\": 0"));
    assert!(!simple.contains("\"reply\""));
}

#[test]
fn cli_reports_errors_with_location_and_fails() {
    let dir = scratch_dir("cli");
    let bad = dir.join("bad.defs");
    std::fs::write(&bad, "subsystem s 10;\nroutine r(p : nowhere_t);\n").expect("write");
    let out = Command::new(env!("CARGO_BIN_EXE_mig-rs"))
        .arg(&bad)
        .args(["--user", "-"])
        .output()
        .expect("runs");
    assert!(!out.status.success());
    let err = String::from_utf8(out.stderr).expect("utf-8");
    assert_eq!(
        err.trim(),
        format!("{}:2:15: type 'nowhere_t' is not defined", bad.display())
    );
}

fn scratch_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("mig-rs-test-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

#[test]
fn include_cycles_are_reported() {
    let dir = scratch_dir("cycle");
    std::fs::write(dir.join("a.defs"), "subsystem s 1;\n#include \"b.defs\"\n").expect("a");
    std::fs::write(dir.join("b.defs"), "\n#include \"a.defs\"\n").expect("b");
    let err = mig_rs::load(&dir.join("a.defs"), &Options::default())
        .expect_err("cycle")
        .to_string();
    assert!(err.contains("b.defs:2:10: #include cycle: "), "{err}");
    assert!(
        err.contains("a.defs -> ") && err.ends_with("a.defs"),
        "{err}"
    );
}

#[test]
fn includes_search_quoted_dir_then_dash_i_and_record_files() {
    let dir = scratch_dir("inc");
    std::fs::create_dir_all(dir.join("sys")).expect("dir");
    std::fs::write(
        dir.join("sys/t.defs"),
        "type t = MACH_MSG_TYPE_INTEGER_32;\n",
    )
    .expect("t");
    std::fs::write(
        dir.join("main.defs"),
        "subsystem s 1;\n#include <sys/t.defs>\nroutine r(p : mach_port_t = MACH_MSG_TYPE_COPY_SEND; x : t);\n",
    )
    .expect("main");
    let options = Options {
        include_dirs: vec![dir.clone()],
        defines: Vec::new(),
    };
    let sub = mig_rs::load(&dir.join("main.defs"), &options).expect("loads");
    assert_eq!(sub.files.len(), 2);
    let written = mig_rs::Build::new()
        .include_dir(&dir)
        .out_dir(&dir)
        .quiet()
        .user(dir.join("main.defs"), "u.rs")
        .server(dir.join("main.defs"), "s.rs")
        .run()
        .expect("builds");
    assert_eq!(written.len(), 2);
    let user = std::fs::read_to_string(dir.join("u.rs")).expect("user code");
    assert!(user.contains("pub use mach_abi::mig as mig_rt;"));
}

fn code_error(src: &str, server: bool) -> String {
    let sub = load_str(src).unwrap_or_else(|e| panic!("{e}"));
    let r = if server {
        mig_rs::server_code(&sub, &CodegenOptions::default())
    } else {
        mig_rs::user_code(&sub, &CodegenOptions::default())
    };
    match r {
        Ok(_) => panic!("generated code for: {src}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn translation_errors_have_locations() {
    let e = error_of(
        "subsystem s 1; type p = MACH_MSG_TYPE_COPY_SEND intran: a_t f(p) outtran: p g(b_t);",
    );
    assert_eq!(
        e,
        "t.defs:1:79: translated type 'b_t' conflicts with 'a_t' named by an earlier clause"
    );
    // One function, two translated types.
    let e = code_error(
        "subsystem KernelServer s 1;\n\
         type p = MACH_MSG_TYPE_COPY_SEND intran: a_t conv(p);\n\
         type q = MACH_MSG_TYPE_COPY_SEND intran: b_t conv(q);\n\
         routine r(x : p; y : q);",
        true,
    );
    assert_eq!(
        e,
        "t.defs:4:18: 'y': translation function 'conv' is used as intran for 'b_t', but earlier \
         as intran for 'a_t'"
    );
    // Translation of something other than a port right.
    let e = code_error(
        "subsystem s 1; type p = MACH_MSG_TYPE_COPY_SEND;\n\
         type n = MACH_MSG_TYPE_INTEGER_32 intran: num_t to_num(n);\n\
         routine r(x : p; y : n);",
        true,
    );
    assert!(
        e.starts_with("t.defs:3:18: 'y' (type 'n'): translation of anything but a single port"),
        "{e}"
    );
    // What the Rust stubs do not offer is an error at the argument, not a panic.
    let e = code_error(
        "subsystem s 1; type p = MACH_MSG_TYPE_COPY_SEND; type s = c_string[8];\n\
         routine r(x : p; inout y : s);",
        false,
    );
    assert_eq!(
        e,
        "t.defs:2:24: 'y' (type 's'): an inout string is not supported by the Rust generator"
    );
}

#[test]
fn semantic_errors() {
    let cases = [
        (
            "routine r(p : int);",
            "t.defs:1:9: 'routine' before the 'subsystem' statement",
        ),
        (
            "subsystem s 1; type p = MACH_MSG_TYPE_COPY_SEND; simpleroutine r(p : p; out x : int);",
            "t.defs:1:77: simpleroutine 'r' has an out argument 'x'",
        ),
        (
            "subsystem s 1; routine r(x : int);",
            "t.defs:1:26: 'x' is a RequestPort argument but its type 'int' is not a port right",
        ),
        (
            "subsystem s 1; type p = MACH_MSG_TYPE_COPY_SEND; routine r(p : p); routine r(p : p);",
            "t.defs:1:76: routine 'r' is already declared at t.defs:1:58",
        ),
        (
            "subsystem s 1; type p = MACH_MSG_TYPE_COPY_SEND; type a = array[*:4] of int;\n\
             routine r(p : p; inout x : a);",
            "t.defs:2:24: 'x': inline variable-sized arguments cannot be inout",
        ),
        (
            "subsystem s 1; type p = MACH_MSG_TYPE_COPY_SEND; routine r(p : p; x : int; x : int);",
            "t.defs:1:76: argument 'x' is already declared at t.defs:1:67",
        ),
        (
            "type t = int;",
            "t.defs:1:6: 'type' before the 'subsystem' statement",
        ),
        (
            "",
            "t.defs:1:1: no 'subsystem' statement: every .defs file needs one",
        ),
        (
            "subsystem s 1; subsystem t 2;",
            "t.defs:1:26: a second 'subsystem' statement",
        ),
    ];
    for (src, want) in cases {
        assert_eq!(error_of(src), want, "{src}");
    }
}

#[test]
fn gnu_constructs_are_accepted() {
    // Everything GNU Mach's .defs use, in one file (translations are recorded, not run).
    let src = "\
#define PREFIX x_
subsystem KernelServer KernelUser everything 100;
serverprefix S_; userprefix PREFIX; serverdemux every_server; rcsid \"$Id$\";
msgoption MACH_MSG_OPTION_NONE; waittime 500; nowaittime;
import <mach/std_types.h>; uimport \"u.h\"; simport <s.h>;
type int32_t = MACH_MSG_TYPE_INTEGER_32;
type port_t = MACH_MSG_TYPE_COPY_SEND ctype: mach_port_t
    intran: obj_t port_to_obj(mach_port_t) outtran: mach_port_t obj_to_port(obj_t)
    destructor: obj_release(obj_t);
type payload_t = port_t intranpayload: obj_t payload_to_obj cusertype: u_t cservertype: s_t;
type big_t = (MACH_MSG_TYPE_STRING, 512*8);
type bytes_t = (MACH_MSG_TYPE_BYTE, 8, dealloc);
type ool_t = ^array[] of bytes_t;
type pol_t = MACH_MSG_TYPE_MAKE_SEND_ONCE|polymorphic;
skip; skip 3;
routine r(
    requestport p : port_t; replyport rp : pol_t; msgseqno seq : int32_t;
    waittime w : int32_t; msgoption o : int32_t; in a : int32_t, IsLong;
    out b : ool_t, Dealloc[]; inout c : payload_t; out d : big_t;
    out e : e_t = array[*:8] of int32_t, CountInOut, RetCode);
simpleroutine sr(p : port_t; x : ool_t, ServerCopy, NotDealloc);
routine sr2(p : port_t; sreplyport s : pol_t; ureplyport u : pol_t; x : x_t = array[] of int32_t, ServerCopy);
";
    let sub = load_str(src).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((sub.kernel_user, sub.kernel_server), (true, true));
    assert_eq!(
        (sub.user_prefix.as_str(), sub.server_prefix.as_str()),
        ("x_", "S_")
    );
    assert_eq!(sub.server_demux, "every_server");
    assert_eq!(sub.routines[0].id, 104);
    assert_eq!(sub.routines[2].id, 106);
    let r = &sub.routines[0];
    assert!(r.args[5].long_form);
    assert_eq!(r.args[0].ty.c.intran.as_deref(), Some("port_to_obj"));
    assert_eq!(r.request.len(), 3, "a, c and the CountInOut count");
    // Rust names drop the C prefixes.
    let code = mig_rs::user_code(&sub, &CodegenOptions::default()).expect("user code");
    assert!(code.contains("pub fn r<") && code.contains("pub fn r_with<"));
    let code = mig_rs::server_code(&sub, &CodegenOptions::default()).expect("server code");
    assert!(code.contains("    fn r(") && code.contains("pub fn every_server<"));
    // The translation clauses became typed hooks.
    assert!(code.contains("    type Obj;"));
    assert!(code.contains(
        "fn port_to_obj(&mut self, port: mig_rt::PortSlot, msg_id: i32) -> \
         ::core::result::Result<Self::Obj, mig_rt::KernReturn>;"
    ));
    assert!(code.contains("fn obj_release(&mut self, object: Self::Obj);"));
    assert!(code.contains("p: &Self::Obj,"));
}

#[test]
fn snapshot_generated_code() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/defs");
    let options = Options {
        include_dirs: vec![dir.clone()],
        defines: Vec::new(),
    };
    let sub = mig_rs::load(&dir.join("snapshot.defs"), &options).unwrap_or_else(|e| panic!("{e}"));
    let codegen = CodegenOptions::default();
    insta::assert_snapshot!(
        "snapshot_user",
        mig_rs::user_code(&sub, &codegen).expect("user")
    );
    insta::assert_snapshot!(
        "snapshot_server",
        mig_rs::server_code(&sub, &codegen).expect("server")
    );
    insta::assert_snapshot!("snapshot_layout", mig_rs::layout_json(&sub));
    // A kernel server with typed translation hooks.
    let sub = mig_rs::load(&dir.join("kobject.defs"), &options).unwrap_or_else(|e| panic!("{e}"));
    insta::assert_snapshot!(
        "snapshot_kernel_server",
        mig_rs::server_code(&sub, &codegen).expect("server")
    );
}

/// Checks the shape of an error: `file:line:col: message`.
fn well_formed(e: &mig_rs::Error) -> bool {
    let text = e.to_string();
    let mut parts = text.splitn(4, ':');
    let (file, line, col, msg) = (parts.next(), parts.next(), parts.next(), parts.next());
    file == Some("t.defs")
        && line.is_some_and(|l| l.parse::<u32>().is_ok())
        && col.is_some_and(|c| c.parse::<u32>().is_ok())
        && msg.is_some_and(|m| m.len() > 1)
}

const VALID: &str = "subsystem s 10;\n#define N 4\n#if N > 2 && !defined(X)\n\
type int32_t = MACH_MSG_TYPE_INTEGER_32;\n#endif\ntype p = MACH_MSG_TYPE_COPY_SEND;\n\
type a = array[*:N] of int32_t; type o = ^array[] of p; type s = struct { int32_t x; };\n\
routine r(p : p; x : int32_t; out y : a, CountInOut; out z : o; inout w : s);\n\
simpleroutine q(p : p; c : cs = c_string[*:16]); skip 2;\n";

proptest! {
    #![proptest_config(ProptestConfig::with_cases(3000))]

    #[test]
    fn random_text_never_panics(src in "[ -~\\n\\t]{0,300}") {
        if let Err(e) = load_str(&src) {
            prop_assert!(well_formed(&e), "{}", e);
        }
    }

    #[test]
    fn random_tokens_never_panic(words in proptest::collection::vec(prop_oneof![
        Just("subsystem"), Just("routine"), Just("simpleroutine"), Just("type"), Just("skip"),
        Just("array"), Just("["), Just("]"), Just("*"), Just(":"), Just(";"), Just("("), Just(")"),
        Just("of"), Just("^"), Just("struct"), Just("{"), Just("}"), Just("c_string"), Just("="),
        Just("MACH_MSG_TYPE_INTEGER_32"), Just("MACH_MSG_TYPE_COPY_SEND"), Just("polymorphic"),
        Just("|"), Just(","), Just("dealloc"), Just("countinout"), Just("in"), Just("out"),
        Just("inout"), Just("x"), Just("t"), Just("1"), Just("4096"), Just("\n#if 1\n"),
        Just("\n#endif\n"), Just("\n#define t x\n"), Just("\n#else\n"), Just("/*"), Just("*/"),
    ], 0..60)) {
        let src = words.join(" ");
        if let Err(e) = load_str(&src) {
            prop_assert!(well_formed(&e), "{}", e);
        }
    }

    #[test]
    fn mutated_valid_input_never_panics(edits in proptest::collection::vec((0usize..400, 0u8..3, any::<char>()), 1..6)) {
        let mut src: Vec<char> = VALID.chars().collect();
        for (at, op, c) in edits {
            let at = at % (src.len() + 1);
            match op {
                0 => src.insert(at, c),
                1 if at < src.len() => { src.remove(at); }
                _ if at < src.len() => src[at] = c,
                _ => {}
            }
        }
        let src: String = src.into_iter().collect();
        match load_str(&src) {
            Ok(sub) => {
                // Whatever parses must also generate without panicking.
                let _ = mig_rs::user_code(&sub, &CodegenOptions::default());
                let _ = mig_rs::server_code(&sub, &CodegenOptions::default());
                let _ = mig_rs::layout_json(&sub);
            }
            Err(e) => prop_assert!(well_formed(&e), "{}", e),
        }
    }
}

#[test]
fn the_valid_sample_is_valid() {
    let sub = load_str(VALID).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(sub.routines.len(), 2);
    assert_eq!(sub.id_count, 4);
}

/// Sizes that overflowed 32-bit arithmetic in the layout (`round8` of an in-line array of
/// 2^32 elements: a panic under overflow checks, a wrong layout without), and the sums of
/// struct fields and message items that could: found by hand-written hostile inputs while
/// checking what the `mig_defs` fuzz target (`fuzz/`) reaches. Each is now an error at the
/// declaration, under mig-rs's limits (`MAX_INLINE_BYTES`, `MAX_MESSAGE_BYTES`).
#[test]
fn huge_types_and_messages_are_errors_not_overflows() {
    const T: &str = "subsystem s 1; type p = MACH_MSG_TYPE_COPY_SEND;\n";
    let cases = [
        (
            "type big = array[4294967295] of int;",
            "t.defs:2:6: big: more than 16777216 bytes in-line",
        ),
        (
            "type big = array[*:4294967295] of int;",
            "t.defs:2:6: big: more than 16777216 bytes in-line",
        ),
        (
            "type big = c_string[*:4294967295];",
            "t.defs:2:6: big: more than 16777216 bytes in-line",
        ),
        (
            "type big = array[16777216] of char; type s2 = struct { big a; big b; };",
            "t.defs:2:47: struct too large",
        ),
        (
            "type big = array[16777216] of char;\nroutine r(p : p; a : big; b : big; c : big; \
             d : big; e : big; f : big; g : big; h : big; i : big; j : big; k : big; \
             l : big; m : big; n : big; o : big; q : big);",
            "t.defs:3:9: the request of 'r' can be more than 268435456 bytes",
        ),
    ];
    for (src, want) in cases {
        let text = format!("{T}{src}");
        assert_eq!(error_of(&text), want, "{src}");
    }
    // The largest in-line type is still fine.
    let ok = format!("{T}type big = array[16777216] of char; routine r(p : p; a : big);");
    let sub = load_str(&ok).unwrap_or_else(|e| panic!("{e}"));
    let codegen = mig_rs::CodegenOptions::default();
    mig_rs::server_code(&sub, &codegen).unwrap_or_else(|e| panic!("{e}"));
    mig_rs::user_code(&sub, &codegen).unwrap_or_else(|e| panic!("{e}"));
}
