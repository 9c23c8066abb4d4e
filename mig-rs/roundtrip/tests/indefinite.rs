//! The seven routines of GNU Mach's `mach_debug.defs` and `default_pager.defs` that return
//! indefinite arrays (`array[] of`, `CountInOut, Dealloc`): within GNU MIG's 2048-byte inline
//! limit the array travels inline (long form); beyond it, out-of-line with `deallocate` set,
//! as GNU MIG sends it, and the client stub hands the caller a region that unmaps itself.
//! Before, a server could not return more than fits inline, and a client could not receive it.

use mach_abi::mig::{Header, KernReturn, PortName, Received, ReceivedPorts, SendRight, TypeDesc};
use mig_roundtrip::fake::{self, Fake, Serve, TestSpace};
use mig_roundtrip::models::{HOST, KDebug, OBJECT, PAGER, Pager};
use mig_roundtrip::{default_pager_user as pager, mach_debug_user as debug};

fn right(name: PortName) -> SendRight<TestSpace> {
    SendRight::from_name(name)
}

/// The descriptor of the last reply's item at `at`, as the client received it.
fn reply_desc<S: Serve>(t: &Fake<S>, at: usize) -> TypeDesc {
    TypeDesc::read(t.replies.last().expect("a reply"), at).expect("desc")
}

/// Runs `call` with a server returning `entries` records and checks where the array went:
/// inline up to `max` records, out-of-line beyond.
fn check<S: Serve>(
    what: &str,
    t: &mut Fake<S>,
    set_entries: impl Fn(&mut S, usize),
    max: usize,
    words_per_entry: u32,
    desc_at: usize,
    mut call: impl FnMut(&mut Fake<S>) -> Result<(u32, bool), KernReturn>,
) {
    for entries in [0, 1, max, max + 1, 3 * max] {
        set_entries(&mut t.server, entries);
        let before = fake::mapped();
        let (count, inline) = call(t).unwrap_or_else(|e| panic!("{what} with {entries}: {e}"));
        assert_eq!(
            count,
            entries as u32 * words_per_entry,
            "{what} with {entries}"
        );
        assert_eq!(inline, entries <= max, "{what} with {entries}");
        let d = reply_desc(t, desc_at);
        assert!(d.longform, "{what}: indefinite arrays use the long form");
        assert_eq!(d.inline, inline, "{what} with {entries}");
        assert_eq!(d.number, count, "{what} with {entries}");
        assert_eq!(
            fake::mapped(),
            before,
            "{what} with {entries}: the region was unmapped by its owner"
        );
    }
}

fn words<E: mach_abi::mig::Element>(r: &Received<TestSpace, E>) -> (u32, bool) {
    match r {
        Received::Inline(n) => (*n, true),
        Received::OutOfLine(o) => (o.len(), false),
    }
}

#[test]
fn host_ipc_marequest_info_and_host_virtual_physical_table_info() {
    fake::reset();
    let mut t = Fake::new(KDebug::default());
    let mut buf = vec![0i32; 512];
    check(
        "host_ipc_marequest_info",
        &mut t,
        |s, n| s.entries = n,
        512,
        1,
        64,
        |t| {
            let out = debug::host_ipc_marequest_info(t, &right(HOST), &mut buf)?;
            assert_eq!(out.max_requests, 77);
            if let Received::OutOfLine(o) = &out.info {
                assert_eq!(o.get(o.len() as usize - 1), Some(o.len() as i32 - 1));
            }
            Ok(words(&out.info))
        },
    );
    let mut buf = vec![0i32; 512];
    check(
        "host_virtual_physical_table_info",
        &mut t,
        |s, n| s.entries = n,
        512,
        1,
        48,
        |t| {
            let out = debug::host_virtual_physical_table_info(t, &right(HOST), &mut buf)?;
            Ok(words(&out.info))
        },
    );
}

#[test]
fn mach_vm_object_pages_and_phys() {
    // 32-byte records: 64 fit inline (256 words).
    fake::reset();
    let mut t = Fake::new(KDebug::default());
    let mut buf = vec![0i64; 256];
    check(
        "mach_vm_object_pages",
        &mut t,
        |s, n| s.entries = n,
        64,
        4,
        48,
        |t| {
            Ok(words(
                &debug::mach_vm_object_pages(t, &right(OBJECT), &mut buf)?.pages,
            ))
        },
    );
    check(
        "mach_vm_object_pages_phys",
        &mut t,
        |s, n| s.entries = n,
        64,
        4,
        48,
        |t| {
            Ok(words(
                &debug::mach_vm_object_pages_phys(t, &right(OBJECT), &mut buf)?.pages,
            ))
        },
    );
}

#[test]
fn host_slab_info() {
    // 120-byte caches: 17 fit inline (255 words).
    fake::reset();
    let mut t = Fake::new(KDebug::default());
    let mut buf = vec![0i64; 255];
    check(
        "host_slab_info",
        &mut t,
        |s, n| s.entries = n,
        17,
        15,
        48,
        |t| {
            Ok(words(
                &debug::host_slab_info(t, &right(HOST), &mut buf)?.info,
            ))
        },
    );
}

#[test]
fn default_pager_object_pages() {
    fake::reset();
    let mut t = Fake::new(Pager::default());
    let mut buf = vec![0i64; 256];
    check(
        "default_pager_object_pages",
        &mut t,
        |s, n| s.objects = n,
        256,
        1,
        48,
        |t| {
            let object = SendRight::<TestSpace>::from_name(OBJECT);
            let out = debug_pages(t, &object, &mut buf)?;
            Ok(words(&out.pages))
        },
    );
}

fn debug_pages(
    t: &mut Fake<Pager>,
    object: &SendRight<TestSpace>,
    buf: &mut [i64],
) -> Result<pager::DefaultPagerObjectPagesOut<TestSpace>, KernReturn> {
    pager::default_pager_object_pages(t, &right(PAGER), object, buf)
}

#[test]
fn default_pager_objects_sends_both_arrays_each_its_own_way() {
    fake::reset();
    let mut t = Fake::new(Pager::default());
    // 16-byte objects (128 inline) and 8-byte port slots (256 inline).
    for objects in [0usize, 3, 128, 129, 256, 257, 600] {
        t.server.objects = objects;
        let mut obuf = vec![0i64; 256];
        let mut pbuf = vec![PortName::NULL; 256];
        let out =
            pager::default_pager_objects(&mut t, &right(PAGER), &mut obuf, &mut pbuf).expect("rpc");
        let (n, inline) = words(&out.objects);
        assert_eq!(
            (n, inline),
            (2 * objects as u32, objects <= 128),
            "{objects}"
        );
        match &out.ports {
            ReceivedPorts::Inline(n) => {
                assert!(objects <= 256);
                assert_eq!(*n as usize, objects);
                if objects > 0 {
                    assert_eq!(pbuf[objects - 1], PortName(0x1000 + objects as u32 - 1));
                }
            }
            ReceivedPorts::OutOfLine(p) => {
                assert!(objects > 256);
                assert_eq!(p.len() as usize, objects);
                assert_eq!(
                    p.name(objects - 1),
                    Some(PortName(0x1000 + objects as u32 - 1))
                );
            }
        }
        // What went on the wire.
        let reply = t.replies.last().expect("reply");
        let d = TypeDesc::read(reply, 48).expect("objects");
        assert_eq!(
            (d.name, d.size, d.inline, d.longform),
            (11, 64, objects <= 128, true)
        );
        let ports_at = 56 + if d.inline { d.number as usize * 8 } else { 8 };
        let d = TypeDesc::read(reply, ports_at).expect("ports");
        let expect_size = if objects <= 256 { 64 } else { 32 };
        assert_eq!(
            (d.name, d.size, d.number, d.inline, d.longform),
            (17, expect_size, objects as u32, objects <= 256, true),
            "{objects}: port rights inline in 64-bit slots, out-of-line as 32-bit names"
        );
        assert!(
            Header::read(reply).expect("h").is_complex(),
            "rights make the reply complex"
        );
        fake::released();
        drop(out);
        if objects > 256 {
            assert_eq!(fake::released().len(), objects, "each right released");
        }
    }
}

#[test]
fn the_reply_sets_deallocate_as_dealloc_says() {
    // Look at the bytes the kernel server wrote (before the fake kernel consumed the bit).
    use mach_abi::mig::{self, PortSlot};
    let mut k = KDebug { entries: 600 };
    let mut request = vec![0u8; 48];
    let mut e = mig::Encoder::new(&mut request);
    e.item(mig::INT32_DESC);
    e.put(512u32);
    e.finish(Header {
        bits: mig::msgh_bits(18, 17),
        remote_port: PortSlot(0xffff_9000_0000_0001),
        local_port: fake::handle(HOST),
        id: 3016,
        ..Header::default()
    })
    .expect("fits");
    let mut reply = vec![0u8; 4096];
    let served = mig_roundtrip::mach_debug_server::mach_debug_server(&mut k, &request, &mut reply);
    assert_eq!(served.code, KernReturn::Success);
    let d = TypeDesc::read(&reply, 48).expect("desc");
    assert_eq!(
        (d.name, d.size, d.number, d.inline, d.longform, d.deallocate),
        (2, 32, 600, false, true, true)
    );
    assert_eq!(served.reply_size, 64);
    let h = Header::read(&reply).expect("h");
    assert!(h.is_complex());
    // The caller's count (512) caps what goes inline: 300 entries would not fit it.
    let mut k = KDebug { entries: 300 };
    let mut small = request.clone();
    small[40..44].copy_from_slice(&200u32.to_le_bytes());
    mig_roundtrip::mach_debug_server::mach_debug_server(&mut k, &small, &mut reply);
    let d = TypeDesc::read(&reply, 48).expect("desc");
    assert_eq!((d.number, d.inline), (300, false));
    fake::reset();
}
