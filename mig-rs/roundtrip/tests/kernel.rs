//! Kernel servers generated from libmach's `.defs` with `KERNEL_SERVER`, and the client stubs
//! that call them: GNU Mach's message bytes for `host_info` and `processor_info`, the typed
//! translation hooks (objects in, ports out, destructors, the body send right released on
//! success), and port slots that keep all 64 bits from the request's header to the reply.

use mach_abi::mig::{
    self, Header, KernReturn, PortName, PortRight, PortSlot, SendRight, Served, TypeDesc,
};
use mig_roundtrip::fake::{self, Canned, Fake, REPLY_PORT, TestSpace, handle};
use mig_roundtrip::models::{self, HOST, KHost, PROCESSOR, PSET, PSET_NAME, THREAD};
use mig_roundtrip::{kobject_server as kobject, mach_host_server, mach_host_user};

fn right(name: PortName) -> SendRight<TestSpace> {
    SendRight::from_name(name)
}

#[test]
fn host_info_request_bytes_match_gnu_mach() {
    fake::reset();
    let mut t = Canned {
        reply: fake::error_reply(2738, 5),
        sent: Vec::new(),
    };
    let mut buf = [0i32; 12];
    let r = mach_host_user::host_info(&mut t, &right(PortName(3)), 1, &mut buf);
    assert_eq!(r, Err(KernReturn::Failure));
    let s = &t.sent;
    assert_eq!(s.len(), 64);
    let h = Header::read(s).expect("header");
    assert_eq!((h.size, h.id, h.bits), (64, 2638, 19 | 21 << 8));
    assert_eq!(
        (h.remote_port, h.local_port),
        (PortSlot(3), PortSlot::from(REPLY_PORT))
    );
    assert_eq!(&s[32..40], &0x0000_0001_2000_2002u64.to_le_bytes());
    assert_eq!(&s[40..44], &1i32.to_le_bytes());
    assert_eq!(&s[48..56], &0x0000_0001_2000_2002u64.to_le_bytes());
    assert_eq!(&s[56..60], &12u32.to_le_bytes());
}

#[test]
fn reply_checks_follow_gnu_mig() {
    let mut buf = [0i32; 4];
    let host = right(PortName(3));
    let mut t = Canned {
        reply: fake::error_reply(2737, 0),
        sent: Vec::new(),
    };
    assert_eq!(
        mach_host_user::host_info(&mut t, &host, 1, &mut buf),
        Err(KernReturn::MigReplyMismatch)
    );
    t.reply = fake::error_reply(mig::notify::SEND_ONCE, 0);
    assert_eq!(
        mach_host_user::host_info(&mut t, &host, 1, &mut buf),
        Err(KernReturn::MigServerDied)
    );
    // Success claimed, but the reply lacks the array: a type error.
    t.reply = fake::error_reply(2738, 0);
    assert_eq!(
        mach_host_user::host_info(&mut t, &host, 1, &mut buf),
        Err(KernReturn::MigTypeError)
    );
}

/// A request in the form the kernel's IPC hands it to a kernel server: the destination and
/// reply ports are 64-bit kernel handles.
fn kernel_request(id: i32, dest: PortSlot, items: &[(TypeDesc, u64)]) -> Vec<u8> {
    let mut buf = vec![0u8; 256];
    let mut e = mig::Encoder::new(&mut buf);
    for (d, v) in items {
        e.item(*d);
        if d.size == 64 {
            e.put(*v);
        } else {
            e.put(*v as u32);
        }
    }
    let complex = items.iter().any(|(d, _)| mig::is_port_right(d.name));
    let size = e
        .finish(Header {
            bits: mig::msgh_bits(
                mig::MACH_MSG_TYPE_PORT_SEND_ONCE,
                mig::MACH_MSG_TYPE_PORT_SEND,
            ) | if complex {
                mig::MACH_MSGH_BITS_COMPLEX
            } else {
                0
            },
            remote_port: PortSlot(0xffff_9000_0000_0077),
            local_port: dest,
            id,
            ..Header::default()
        })
        .expect("fits");
    buf.truncate(size);
    buf
}

fn int(v: i32) -> (TypeDesc, u64) {
    (mig::INT32_DESC, v as u32 as u64)
}

fn port(slot: PortSlot) -> (TypeDesc, u64) {
    (
        TypeDesc {
            name: mig::MACH_MSG_TYPE_PORT_SEND,
            size: 64,
            number: 1,
            inline: true,
            longform: false,
            deallocate: false,
        },
        slot.0,
    )
}

fn code_of(reply: &[u8]) -> i32 {
    i32::from_le_bytes(reply[40..44].try_into().expect("4 bytes"))
}

#[test]
fn host_info_reply_bytes_match_gnu_mach() {
    let mut k = KHost::default();
    let mut reply = vec![0u8; mach_host_server::MAX_REPLY_SIZE];
    let req = kernel_request(2638, handle(HOST), &[int(1), int(6)]);
    let served = mach_host_server::mach_host_server(&mut k, &req, &mut reply);
    assert!(served.handled);
    assert_eq!(served.reply_size, 56 + 24);
    let h = Header::read(&reply).expect("header");
    // The reply goes back to the reply port's full 64-bit slot.
    assert_eq!(
        (h.id, h.size, h.remote_port, h.bits),
        (2738, 80, PortSlot(0xffff_9000_0000_0077), 18)
    );
    let d = TypeDesc::read(&reply, 48).expect("desc");
    assert_eq!(
        (d.name, d.size, d.number, d.inline, d.longform),
        (2, 32, 6, true, false)
    );
    assert_eq!(&reply[56..60], &4i32.to_le_bytes());
    assert_eq!(k.log, [format!("host {:#x}", handle(HOST).0)]);
    // A count too small for what the server writes: its error, in a 48-byte reply.
    let req = kernel_request(2638, handle(HOST), &[int(1), int(2)]);
    let served = mach_host_server::mach_host_server(&mut k, &req, &mut reply);
    assert_eq!(served.reply_size, 48);
    assert_eq!(code_of(&reply), KernReturn::MigArrayTooLarge.code());
    assert_eq!(served.code, KernReturn::MigArrayTooLarge);
}

#[test]
fn processor_info_translates_both_ways_with_64_bit_slots() {
    let mut k = KHost::default();
    let mut reply = vec![0u8; mach_host_server::MAX_REPLY_SIZE];
    let req = kernel_request(2639, handle(PROCESSOR), &[int(1), int(5)]);
    let served = mach_host_server::mach_host_server(&mut k, &req, &mut reply);
    assert_eq!(served.reply_size, 72 + 24);
    // The hook got the request port's whole slot, and the routine got the object.
    assert_eq!(
        k.log,
        [
            "processor 0xffff800000000200".to_string(),
            "processor_info 0x200".to_string()
        ]
    );
    let h = Header::read(&reply).expect("header");
    assert!(h.is_complex());
    // Kernel server: the host right goes out as MOVE_SEND (17), 64 bits, in an 8-byte slot
    // holding the handle the outtran hook returned.
    let d = TypeDesc::read(&reply, 48).expect("desc");
    assert_eq!((d.name, d.size, d.number), (17, 64, 1));
    assert_eq!(&reply[56..64], &handle(HOST).0.to_le_bytes());
    let d = TypeDesc::read(&reply, 64).expect("desc");
    assert_eq!((d.number, d.size), (5, 32));
}

#[test]
fn a_failed_translation_is_the_reply_and_the_routine_never_runs() {
    let mut k = KHost::default();
    let mut reply = vec![0u8; mach_host_server::MAX_REPLY_SIZE];
    // The request port is not a processor.
    let req = kernel_request(2639, handle(PSET), &[int(1), int(5)]);
    let served = mach_host_server::mach_host_server(&mut k, &req, &mut reply);
    assert_eq!(served.reply_size, 48);
    assert_eq!(code_of(&reply), KernReturn::InvalidArgument.code());
    assert_eq!(k.log.len(), 1, "only the hook ran: {:?}", k.log);
    // The hook can answer per routine: host_get_time's bad host is KERN_INVALID_HOST.
    let req = kernel_request(2634, handle(PSET), &[]);
    mach_host_server::mach_host_server(&mut k, &req, &mut reply);
    assert_eq!(code_of(&reply), KernReturn::InvalidHost.code());
}

#[test]
fn destructors_run_whatever_the_routine_returns() {
    let mut k = KHost::default();
    let mut reply = vec![0u8; mach_host_server::MAX_REPLY_SIZE];
    let req = kernel_request(2640, handle(PSET_NAME), &[int(1), int(5)]);
    mach_host_server::mach_host_server(&mut k, &req, &mut reply);
    assert_eq!(
        k.log[1..],
        ["processor_set_info 0x300", "pset_deallocate 0x300"]
    );
    k.log.clear();
    let req = kernel_request(2640, handle(PSET_NAME), &[int(9), int(5)]);
    mach_host_server::mach_host_server(&mut k, &req, &mut reply);
    assert_eq!(code_of(&reply), KernReturn::InvalidArgument.code());
    assert_eq!(
        k.log[1..],
        ["processor_set_info 0x300", "pset_deallocate 0x300"]
    );
}

#[test]
fn a_translated_body_right_is_released_after_success() {
    // thread_assign(thread, new_set): the set's send right rides in the body; the routine sees
    // the set, so the stub releases the right once the routine succeeded (GNU MIG's
    // ipc_port_release_send), after the destructors.
    let mut k = KHost::default();
    let mut reply = vec![0u8; mach_host_server::MAX_REPLY_SIZE];
    let req = kernel_request(2613, handle(THREAD), &[port(handle(PSET))]);
    let served = mach_host_server::mach_host_server(&mut k, &req, &mut reply);
    assert_eq!((served.reply_size, code_of(&reply)), (48, 0));
    assert_eq!(
        k.log,
        [
            "thread 0xffff800000000400",
            "pset 0xffff800000000300",
            "thread_assign 0x400 0x300",
            "pset_deallocate 0x300",
            "thread_deallocate 0x400",
            "release_send 0xffff800000000300",
        ]
    );
    // The second translation fails: the first object is released, nothing else happens.
    k.log.clear();
    let req = kernel_request(2613, handle(THREAD), &[port(handle(HOST))]);
    let served = mach_host_server::mach_host_server(&mut k, &req, &mut reply);
    assert_eq!(served.code, KernReturn::InvalidArgument);
    assert_eq!(
        k.log,
        [
            "thread 0xffff800000000400",
            "pset 0xffff800000000100",
            "thread_deallocate 0x400",
        ]
    );
}

#[test]
fn stubs_and_kernel_servers_round_trip_through_the_fake_kernel() {
    fake::reset();
    let mut t = Fake::new(KHost::default());
    let host = right(HOST);
    let mut info = [0i32; 6];
    let out = mach_host_user::host_info(&mut t, &host, 1, &mut info).expect("rpc");
    assert_eq!(out.host_info_out_count, 6);
    assert_eq!(info[4], 22);
    // processor_info returns the host right: an owned SendRight, released when dropped.
    let mut pinfo = [0i32; 5];
    let out =
        mach_host_user::processor_info(&mut t, &right(PROCESSOR), 1, &mut pinfo).expect("rpc");
    assert_eq!(out.host.name(), HOST);
    fake::released();
    drop(out);
    assert_eq!(fake::released(), [(HOST, PortRight::Send)]);
    // Two rights back at once.
    let out = mach_host_user::processor_set_create(&mut t, &right(models::HOST_PRIV)).expect("rpc");
    assert_eq!((out.new_set.name(), out.new_name.name()), (PSET, PSET_NAME));
    // The kernel saw 64-bit handles all the way: no slot was cut to 32 bits.
    assert!(
        t.server
            .log
            .iter()
            .any(|l| l == "host_priv 0xffff800000000101")
    );
    // An unimplemented routine answers MIG_BAD_ID, explicitly.
    assert_eq!(
        mach_host_user::processor_start(&mut t, &right(PROCESSOR)),
        Err(KernReturn::MigBadId)
    );
}

#[test]
fn user_stubs_refuse_slots_that_are_not_names() {
    // A reply whose port slot holds more than 32 bits is no user-space name: a type error,
    // never a silently shortened name.
    let mut reply = vec![0u8; 96];
    let mut e = mig::Encoder::new(&mut reply);
    e.item(mig::INT32_DESC);
    e.put(0i32);
    e.item(TypeDesc {
        name: 17,
        size: 64,
        number: 1,
        inline: true,
        longform: false,
        deallocate: false,
    });
    e.put(PortSlot(0x1_0000_0100));
    e.item(TypeDesc {
        name: 2,
        size: 32,
        number: 0,
        inline: true,
        longform: false,
        deallocate: false,
    });
    let size = e
        .finish(Header {
            bits: mig::MACH_MSGH_BITS_COMPLEX,
            id: 2739,
            ..Header::default()
        })
        .expect("fits");
    reply.truncate(size);
    fake::reset();
    let mut t = Fake::new(Replay(reply));
    assert_eq!(
        mach_host_user::processor_info(&mut t, &right(PROCESSOR), 1, &mut [0; 5]).err(),
        Some(KernReturn::MigTypeError)
    );
    assert_eq!(fake::released(), [(PROCESSOR, PortRight::Send)]);
}

/// A server that answers every request with the same bytes.
struct Replay(Vec<u8>);

impl fake::Serve for Replay {
    fn serve(&mut self, _: &[u8], reply: &mut [u8]) -> Served {
        reply[..self.0.len()].copy_from_slice(&self.0);
        Served {
            handled: true,
            reply_size: self.0.len(),
            code: KernReturn::Success,
        }
    }
}

/// The kernel side of the `kobject` fixture: widgets and gadgets are numbers, their ports are
/// handles with the number in the low bits.
#[derive(Default)]
struct Objects {
    log: Vec<String>,
}

impl kobject::KobjectServer for Objects {
    type Widget = u64;
    type Gadget = u64;

    fn port_to_widget(&mut self, port: PortSlot, msg_id: i32) -> Result<u64, KernReturn> {
        self.log.push(format!("in {:#x} for {msg_id}", port.0));
        if port.0 >> 48 == 0xffff {
            Ok(port.0 & 0xffff_ffff)
        } else {
            Err(KernReturn::InvalidCapability)
        }
    }

    fn widget_release(&mut self, widget: u64) {
        self.log.push(format!("release {widget:#x}"));
    }

    fn port_to_gadget(&mut self, port: PortSlot, _: i32) -> Result<u64, KernReturn> {
        self.log.push(format!("gadget {:#x}", port.0));
        Ok(port.0)
    }

    fn widget_to_port(&mut self, widget: u64) -> PortSlot {
        self.log.push(format!("out {widget:#x}"));
        PortSlot(0xffff_a000_0000_0000 | widget)
    }

    fn release_send(&mut self, port: PortSlot) {
        self.log.push(format!("release_send {:#x}", port.0));
    }

    fn widget_pair(
        &mut self,
        widget: &u64,
        other: &u64,
        plain: PortSlot,
        value: i32,
    ) -> Result<kobject::WidgetPairOut<u64>, KernReturn> {
        self.log
            .push(format!("pair {widget:#x} {other:#x} {:#x}", plain.0));
        if value < 0 {
            return Err(KernReturn::Failure);
        }
        Ok(kobject::WidgetPairOut {
            made: widget + other,
            raw: plain,
        })
    }

    fn gadget_use(&mut self, _: &u64, _: &u64, fail: i32) -> Result<(), KernReturn> {
        self.log.push("use".into());
        if fail != 0 {
            Err(KernReturn::from(fail))
        } else {
            Ok(())
        }
    }

    fn widget_poke(&mut self, widget: &u64, value: i32) -> Result<(), KernReturn> {
        self.log.push(format!("poke {widget:#x} {value}"));
        Ok(())
    }
}

#[test]
fn typed_hooks_see_whole_slots_and_run_in_order() {
    let mut k = Objects::default();
    let mut reply = vec![0u8; kobject::MAX_REPLY_SIZE];
    let w = PortSlot(0xffff_8000_0000_0010);
    let other = PortSlot(0xffff_8001_0000_0020);
    let plain = PortSlot(0xffff_8000_dead_0001);
    let req = kernel_request(6000, w, &[port(other), port(plain), int(1)]);
    let served = kobject::kobject_server(&mut k, &req, &mut reply);
    assert_eq!(served.code, KernReturn::Success);
    assert_eq!(
        k.log,
        [
            "in 0xffff800000000010 for 6000",
            "in 0xffff800100000020 for 6000",
            "pair 0x10 0x20 0xffff8000dead0001",
            "release 0x20",
            "release 0x10",
            "release_send 0xffff800100000020",
            "out 0x30",
        ]
    );
    // made: the outtran's 64-bit slot; raw: the untranslated slot, untouched.
    assert_eq!(&reply[56..64], &0xffff_a000_0000_0030u64.to_le_bytes());
    assert_eq!(&reply[72..80], &plain.0.to_le_bytes());
    // The routine fails: objects are released, the body right is not (the whole request is
    // destroyed by whoever received it).
    k.log.clear();
    let req = kernel_request(6000, w, &[port(other), port(plain), int(-1)]);
    let served = kobject::kobject_server(&mut k, &req, &mut reply);
    assert_eq!(served.code, KernReturn::Failure);
    assert!(
        !k.log.iter().any(|l| l.starts_with("release_send")),
        "{:?}",
        k.log
    );
    assert_eq!(
        k.log.iter().filter(|l| l.starts_with("release 0x")).count(),
        2
    );
}

#[test]
fn a_later_translation_failure_releases_the_earlier_objects() {
    let mut k = Objects::default();
    let mut reply = vec![0u8; kobject::MAX_REPLY_SIZE];
    // gadget_use(gadget, widget): the widget is no kernel object.
    let req = kernel_request(6001, PortSlot(7), &[port(PortSlot(0x1234)), int(0)]);
    let served = kobject::kobject_server(&mut k, &req, &mut reply);
    assert_eq!(served.code, KernReturn::InvalidCapability);
    assert_eq!(code_of(&reply), KernReturn::InvalidCapability.code());
    assert_eq!(k.log, ["gadget 0x7", "in 0x1234 for 6001"]);
    // A simpleroutine: translated, served, no reply.
    k.log.clear();
    let req = kernel_request(6002, PortSlot(0xffff_0000_0000_0005), &[int(3)]);
    let served = kobject::kobject_server(&mut k, &req, &mut reply);
    assert_eq!((served.reply_size, served.code), (0, KernReturn::Success));
    assert_eq!(k.log[1..], ["poke 0x5 3", "release 0x5"]);
}

mod fuzz {
    use super::*;
    use mig_roundtrip::models::{KDebug, KNothing};
    use mig_roundtrip::{mach_debug_server, mach_port_server, mach_server};
    use proptest::prelude::*;

    fn any_request() -> impl Strategy<Value = Vec<u8>> {
        let ids = prop_oneof![
            2000i32..2101,
            2600i32..2650,
            3000i32..3025,
            3200i32..3224,
            6000i32..6003,
            any::<i32>()
        ];
        (
            ids,
            proptest::collection::vec(any::<u8>(), 0..600),
            any::<u32>(),
            any::<bool>(),
        )
            .prop_map(|(id, body, size, complex)| {
                let mut m = vec![0u8; 32];
                let len = (32 + body.len()) as u32;
                let size = if size % 4 == 0 { len } else { size % 700 };
                m[4..8].copy_from_slice(&size.to_le_bytes());
                if complex {
                    m[3] = 0x80;
                }
                m[28..32].copy_from_slice(&id.to_le_bytes());
                m.extend(body);
                m
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 1000, failure_persistence: None, ..ProptestConfig::default() })]

        #[test]
        fn kernel_demux_never_panics(req in any_request(), reply_len in 0usize..5000) {
            let mut reply = vec![0u8; reply_len];
            let _ = mach_server::mach_server(&mut KNothing, &req, &mut reply);
            let _ = mach_port_server::mach_port_server(&mut KNothing, &req, &mut reply);
            let _ = mach_host_server::mach_host_server(&mut KHost::default(), &req, &mut reply);
            let _ = mach_debug_server::mach_debug_server(&mut KDebug { entries: 3 }, &req, &mut reply);
            let _ = kobject::kobject_server(&mut Objects::default(), &req, &mut reply);
        }
    }
}
