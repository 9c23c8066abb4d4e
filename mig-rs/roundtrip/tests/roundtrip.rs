//! Round trips through the fake kernel for every argument shape mig-rs generates: a generated
//! client stub builds the request, the fake kernel delivers it, the generated demux unpacks
//! it and calls the server, and the reply comes back to the stub. Also: owned rights and
//! regions release what they hold exactly once, strings and booleans, indefinite arrays
//! inline and out-of-line in both directions, and property tests that no request or reply
//! bytes make generated code panic.

use mach_abi::mig::Space;
use mach_abi::mig::{
    self, ArrayOut, ArrayRef, CStrBuf, Header, Indefinite, IndefiniteOut, KernReturn, Ool, OolArg,
    OolData, PortArg, PortName, PortRight, PortSlot, ReceiveRight, Received, ReceivedPort,
    ReceivedPorts, SendRight, Served, TypeDesc,
};
use mig_roundtrip::fake::{self, Canned, Fake, REPLY_PORT, Serve, TestSpace};
use mig_roundtrip::{Nothing, roundtrip_server as server, roundtrip_user as user};
use proptest::prelude::*;

const SERVER_PORT: PortName = PortName(0x51);

fn server_right() -> SendRight<TestSpace> {
    SendRight::from_name(SERVER_PORT)
}

/// The server side of the test subsystem.
#[derive(Default)]
struct Impl {
    notified: Vec<i32>,
    seen_ports: Vec<(PortName, u8)>,
    given: Vec<Vec<u8>>,
    big_in: Vec<i32>,
}

impl Serve for Impl {
    fn serve(&mut self, request: &[u8], reply: &mut [u8]) -> Served {
        server::roundtrip_server(self, request, reply)
    }
}

fn ool_bytes(o: Ool, elem: usize) -> Vec<u8> {
    fake::region(o.address, o.count as usize * elem)
}

impl server::RoundtripServer for Impl {
    fn scalars(
        &mut self,
        server: PortName,
        a: i32,
        b: u64,
        c: i16,
    ) -> Result<server::ScalarsOut, KernReturn> {
        assert_eq!(server, SERVER_PORT);
        Ok(server::ScalarsOut {
            sum: i64::from(a)
                .wrapping_add(b as i64)
                .wrapping_add(i64::from(c)),
            neg: a.wrapping_neg(),
        })
    }

    fn inout_scalars(&mut self, _: PortName, x: &mut i32, y: &mut u64) -> Result<(), KernReturn> {
        *x = x.wrapping_mul(2);
        *y = y.wrapping_add(1);
        Ok(())
    }

    fn fixed_arrays(
        &mut self,
        _: PortName,
        v: &[i32; 4],
        s: &[i64; 3],
    ) -> Result<server::FixedArraysOut, KernReturn> {
        Ok(server::FixedArraysOut {
            doubled: v.map(|x| x.wrapping_mul(2)),
            tv: [s[0].wrapping_add(s[1]), s[2]],
        })
    }

    fn var_arrays(
        &mut self,
        _: PortName,
        input: ArrayRef<'_, i32>,
        output: &mut ArrayOut<'_, i32>,
    ) -> Result<(), KernReturn> {
        let v: Vec<i32> = input.iter().collect();
        for x in v.iter().rev() {
            output.push(*x)?;
        }
        Ok(())
    }

    fn count_in_out(
        &mut self,
        _: PortName,
        n: i32,
        data: &mut ArrayOut<'_, i32>,
    ) -> Result<(), KernReturn> {
        if data.capacity() < n as usize {
            return Err(KernReturn::InvalidArgument);
        }
        for i in 0..n {
            data.push(i.wrapping_mul(10))?;
        }
        Ok(())
    }

    fn strings(
        &mut self,
        _: PortName,
        name: &std::ffi::CStr,
        vname: &std::ffi::CStr,
    ) -> Result<server::StringsOut, KernReturn> {
        Ok(server::StringsOut {
            upper: CStrBuf::from_bytes(&name.to_bytes().to_ascii_uppercase())?,
            vupper: CStrBuf::from_bytes(&vname.to_bytes().to_ascii_uppercase())?,
        })
    }

    fn ool_data(&mut self, _: PortName, data: Ool) -> Result<server::OolDataOut, KernReturn> {
        let mut bytes = ool_bytes(data, 1);
        bytes.reverse();
        Ok(server::OolDataOut {
            reversed: Ool {
                address: fake::map(&bytes),
                count: bytes.len() as u32,
            },
        })
    }

    fn ool_maybe(&mut self, _: PortName, data: Ool) -> Result<server::OolMaybeOut, KernReturn> {
        let bytes = ool_bytes(data, 1);
        Ok(server::OolMaybeOut {
            copy: Ool {
                address: fake::map(&bytes),
                count: bytes.len() as u32,
            },
            copy_dealloc: true,
        })
    }

    fn ports(
        &mut self,
        _: PortName,
        p: PortName,
        name: PortName,
    ) -> Result<server::PortsOut, KernReturn> {
        let names: Vec<u8> = [p.0, name.0, 3]
            .iter()
            .flat_map(|n| n.to_le_bytes())
            .collect();
        Ok(server::PortsOut {
            q: PortName(p.0.wrapping_add(1)),
            list: Ool {
                address: fake::map(&names),
                count: 3,
            },
        })
    }

    fn poly_ports(
        &mut self,
        _: PortName,
        p: PortName,
        p_poly: u8,
    ) -> Result<server::PolyPortsOut, KernReturn> {
        self.seen_ports.push((p, p_poly));
        Ok(server::PolyPortsOut {
            q: p,
            q_poly: mig::MACH_MSG_TYPE_MAKE_SEND_ONCE,
        })
    }

    fn indefinite(
        &mut self,
        _: PortName,
        data: Indefinite<'_, i32>,
        back: &mut IndefiniteOut<'_, i32>,
    ) -> Result<(), KernReturn> {
        let Indefinite::Inline(values) = data else {
            return Err(KernReturn::InvalidArgument);
        };
        for v in values.iter() {
            back.push(v.wrapping_mul(3))?;
        }
        Ok(())
    }

    fn notify(&mut self, _: PortName, code: i32) -> Result<(), KernReturn> {
        self.notified.push(code);
        Ok(())
    }

    fn headers(
        &mut self,
        _: PortName,
        reply_to: PortName,
        seq: u32,
    ) -> Result<server::HeadersOut, KernReturn> {
        assert_eq!(reply_to, REPLY_PORT);
        Ok(server::HeadersOut { seen: seq })
    }

    fn explicit_reply(&mut self, _: PortName) -> Result<server::ExplicitReplyOut, KernReturn> {
        Ok(server::ExplicitReplyOut { v: 5 })
    }

    fn fails(&mut self, _: PortName, code: i32) -> Result<server::FailsOut, KernReturn> {
        if code == 0 {
            Ok(server::FailsOut { never: 1 })
        } else {
            Err(KernReturn::from(code))
        }
    }

    fn two_arrays(
        &mut self,
        _: PortName,
        n: i32,
        first: &mut ArrayOut<'_, i32>,
        tag: i32,
        second: &mut ArrayOut<'_, i16>,
    ) -> Result<server::TwoArraysOut, KernReturn> {
        for i in 0..n {
            first.push(i.wrapping_add(1))?;
        }
        second.extend_from_slice(&[7, 8, 9])?;
        Ok(server::TwoArraysOut { mid: tag, last: -1 })
    }

    fn inline_type(
        &mut self,
        _: PortName,
        flag: bool,
    ) -> Result<server::InlineTypeOut, KernReturn> {
        Ok(server::InlineTypeOut {
            names: Ool {
                address: fake::map(&u32::from(flag).to_le_bytes()),
                count: 1,
            },
        })
    }

    fn booleans(&mut self, _: PortName, flag: bool) -> Result<server::BooleansOut, KernReturn> {
        Ok(server::BooleansOut { back: !flag })
    }

    fn rights(
        &mut self,
        _: PortName,
        give: PortName,
        make: PortName,
        once: PortName,
    ) -> Result<server::RightsOut, KernReturn> {
        Ok(server::RightsOut {
            send: give,
            send_once: once,
            receive: make,
        })
    }

    fn big_indefinite(
        &mut self,
        _: PortName,
        data: Indefinite<'_, i32>,
        back: &mut IndefiniteOut<'_, i32>,
    ) -> Result<(), KernReturn> {
        self.big_in = match data {
            Indefinite::Inline(values) => values.iter().collect(),
            Indefinite::OutOfLine(o) => {
                // The region is the routine's: read it, then unmap it.
                let v = ool_bytes(o, 4)
                    .chunks_exact(4)
                    .map(|c| i32::from_le_bytes(c.try_into().expect("4")))
                    .collect();
                TestSpace::deallocate(o.address, u64::from(o.count) * 4);
                v
            }
        };
        let doubled: Vec<i32> = self.big_in.iter().map(|v| v.wrapping_mul(2)).collect();
        if doubled.len() <= back.capacity() {
            back.extend_from_slice(&doubled)
        } else {
            let bytes: Vec<u8> = doubled.iter().flat_map(|v| v.to_le_bytes()).collect();
            back.set_out_of_line(Ool {
                address: fake::map(&bytes),
                count: doubled.len() as u32,
            });
            Ok(())
        }
    }

    fn port_list(
        &mut self,
        _: PortName,
        list: Indefinite<'_, PortSlot>,
        back: &mut IndefiniteOut<'_, PortSlot>,
    ) -> Result<(), KernReturn> {
        let names: Vec<u32> = match list {
            Indefinite::Inline(slots) => {
                slots.iter().map(|s| s.name().map_or(0, |n| n.0)).collect()
            }
            Indefinite::OutOfLine(o) => {
                let v = ool_bytes(o, 4)
                    .chunks_exact(4)
                    .map(|c| u32::from_le_bytes(c.try_into().expect("4")))
                    .collect();
                TestSpace::deallocate(o.address, u64::from(o.count) * 4);
                v
            }
        };
        if names.len() <= back.capacity() {
            for n in names {
                back.push(PortSlot::from(PortName(n)))?;
            }
        } else {
            let bytes: Vec<u8> = names.iter().flat_map(|n| n.to_le_bytes()).collect();
            back.set_out_of_line(Ool {
                address: fake::map(&bytes),
                count: names.len() as u32,
            });
        }
        Ok(())
    }

    fn ool_give(&mut self, _: PortName, data: Ool) -> Result<(), KernReturn> {
        self.given.push(ool_bytes(data, 1));
        Ok(())
    }

    fn struct_list(
        &mut self,
        _: PortName,
        items: &mut IndefiniteOut<'_, i64>,
    ) -> Result<(), KernReturn> {
        // Two 16-byte pairs: the count is in 64-bit words.
        items.extend_from_slice(&[1, 2, 3, 4])
    }
}

fn fake() -> Fake<Impl> {
    fake::reset();
    Fake::new(Impl::default())
}

#[test]
fn scalars_in_and_out() {
    let mut t = fake();
    let out = user::scalars(&mut t, &server_right(), 40, 2, -5).expect("rpc");
    assert_eq!(out, user::ScalarsOut { sum: 37, neg: -40 });
    // The request as GNU MIG lays it out: three short-form items.
    let req = &t.requests[0];
    assert_eq!(req.len(), 32 + 3 * 16);
    assert_eq!(&req[32..40], &0x0000_0001_2000_2002u64.to_le_bytes());
    assert_eq!(&req[48..56], &0x0000_0001_2000_400bu64.to_le_bytes());
    // Borrowed rights stay with the caller; the server right is released when dropped.
    assert_eq!(fake::released(), [(SERVER_PORT, PortRight::Send)]);
}

#[test]
fn inout_scalars() {
    let mut t = fake();
    let (mut x, mut y) = (21, u64::MAX - 1);
    user::inout_scalars(&mut t, &server_right(), &mut x, &mut y).expect("rpc");
    assert_eq!((x, y), (42, u64::MAX));
}

#[test]
fn fixed_arrays_and_structs() {
    let mut t = fake();
    let out =
        user::fixed_arrays(&mut t, &server_right(), &[1, 2, 3, 4], &[10, 20, 30]).expect("rpc");
    assert_eq!(out.doubled, [2, 4, 6, 8]);
    assert_eq!(out.tv, [30, 30]);
}

#[test]
fn variable_arrays() {
    let mut t = fake();
    let s = server_right();
    let mut buf = [0i32; 16];
    let out = user::var_arrays(&mut t, &s, &[1, 2, 3], &mut buf).expect("rpc");
    assert_eq!(out.output_count, 3);
    assert_eq!(&buf[..3], &[3, 2, 1]);
    // Too many elements for the type: refused before sending.
    assert_eq!(
        user::var_arrays(&mut t, &s, &[0; 17], &mut buf),
        Err(KernReturn::MigArrayTooLarge)
    );
    assert_eq!(t.requests.len(), 1);
    // A reply larger than the caller's buffer.
    let mut small = [0i32; 2];
    assert_eq!(
        user::var_arrays(&mut t, &s, &[1, 2, 3], &mut small),
        Err(KernReturn::MigArrayTooLarge)
    );
    // Empty arrays work too.
    let out = user::var_arrays(&mut t, &s, &[], &mut buf).expect("rpc");
    assert_eq!(out.output_count, 0);
}

#[test]
fn count_in_out_sends_the_buffer_size() {
    let mut t = fake();
    let s = server_right();
    let mut buf = [0i32; 5];
    let out = user::count_in_out(&mut t, &s, 4, &mut buf).expect("rpc");
    assert_eq!(out.data_count, 4);
    assert_eq!(buf, [0, 10, 20, 30, 0]);
    // The server sees the caller's capacity (5) and refuses 6.
    assert_eq!(
        user::count_in_out(&mut t, &s, 6, &mut buf),
        Err(KernReturn::InvalidArgument)
    );
}

#[test]
fn strings_are_c_strings() {
    let mut t = fake();
    let s = server_right();
    let out = user::strings(&mut t, &s, c"hello", c"mach").expect("rpc");
    assert_eq!(out.upper.to_str(), Some("HELLO"));
    assert_eq!(out.vupper.as_c_str(), c"MACH");
    // The fixed string fills its 32 bytes; the variable one carries its NUL.
    let req = &t.requests[0];
    let d = TypeDesc::read(req, 32).expect("desc");
    assert_eq!((d.name, d.size, d.number), (12, 8, 32));
    let d = TypeDesc::read(req, 72).expect("desc");
    assert_eq!((d.name, d.size, d.number), (12, 8, 5));
    assert_eq!(&req[80..85], b"mach\0");
    // Too long for the field (31 bytes and the NUL at most): refused before sending.
    let long = std::ffi::CString::new(vec![b'x'; 32]).expect("no NUL");
    assert_eq!(
        user::strings(&mut t, &s, &long, c"m"),
        Err(KernReturn::MigArrayTooLarge)
    );
    assert_eq!(t.requests.len(), 1);
}

#[test]
fn booleans_are_bool() {
    let mut t = fake();
    let out = user::booleans(&mut t, &server_right(), true).expect("rpc");
    assert!(!out.back);
    assert_eq!(&t.requests[0][40..44], &1u32.to_le_bytes());
    let out = user::inline_type(&mut t, &server_right(), true).expect("rpc");
    assert_eq!(out.names.iter().collect::<Vec<_>>(), [PortName(1)]);
}

#[test]
fn out_of_line_data_moves_between_spaces_and_unmaps_itself() {
    let mut t = fake();
    let s = server_right();
    let data = b"abcdef".to_vec();
    let out = user::ool_data(&mut t, &s, &data).expect("rpc");
    assert_eq!(out.reversed.as_bytes(), b"fedcba");
    let address = out.reversed.address();
    assert!(fake::is_mapped(address));
    // The server's region went with the reply (its `Dealloc` flag): the kernel unmapped it.
    assert_eq!(fake::unmapped().len(), 1);
    drop(out);
    assert!(!fake::is_mapped(address), "dropping the result unmaps it");
    assert_eq!(fake::unmapped(), [(address, 6)]);

    // Dealloc[] chosen by the caller: a moved region leaves the caller's space.
    let region = fake::map(b"xyz");
    // SAFETY: a region the fake just mapped, owned by nobody else.
    let moved = unsafe { OolData::<TestSpace, u8>::from_raw(region, 3) };
    let out = user::ool_maybe(&mut t, &s, OolArg::Move(moved)).expect("rpc");
    assert_eq!(out.copy.as_bytes(), b"xyz");
    assert!(!fake::is_mapped(region), "the kernel took the moved region");
    // A borrowed one stays.
    let out2 = user::ool_maybe(&mut t, &s, OolArg::Copy(b"keep")).expect("rpc");
    assert_eq!(out2.copy.as_bytes(), b"keep");
    let d = TypeDesc::read(&t.requests[2], 32).expect("desc");
    assert!(!d.inline && !d.deallocate);

    // Dealloc on a simpleroutine's region: given away for good.
    let region = fake::map(b"gift");
    // SAFETY: as above.
    let gift = unsafe { OolData::<TestSpace, u8>::from_raw(region, 4) };
    user::ool_give(&mut t, &s, gift).expect("send");
    assert_eq!(t.server.given, [b"gift".to_vec()]);
    assert!(!fake::is_mapped(region));
}

#[test]
fn rights_are_owned_and_released_once() {
    let mut t = fake();
    let s = server_right();
    let recv = ReceiveRight::<TestSpace>::from_name(PortName(0x30));
    let once = ReceiveRight::<TestSpace>::from_name(PortName(0x31));
    fake::released();
    let out = user::rights(
        &mut t,
        &s,
        SendRight::from_name(PortName(0x20)),
        &recv,
        &once,
    )
    .expect("rpc");
    // The moved right went with the message: nothing was released on the way.
    assert_eq!(fake::released(), []);
    let req = &t.requests[0];
    let kinds: Vec<u8> = [32, 48, 64]
        .iter()
        .map(|&at| TypeDesc::read(req, at).expect("desc").name)
        .collect();
    assert_eq!(
        kinds,
        [17, 17, 18],
        "the server sees the rights, not the dispositions"
    );
    assert_eq!(out.send.name(), PortName(0x20));
    assert_eq!(out.send_once.name(), PortName(0x31));
    assert_eq!(out.receive.name(), PortName(0x30));
    drop(out);
    assert_eq!(
        fake::released(),
        [
            (PortName(0x20), PortRight::Send),
            (PortName(0x31), PortRight::SendOnce),
            (PortName(0x30), PortRight::Receive)
        ]
    );
}

#[test]
fn port_rights_inline_and_out_of_line() {
    let mut t = fake();
    let s = server_right();
    let p = ReceiveRight::<TestSpace>::from_name(PortName(0x10));
    let out = user::ports(&mut t, &s, &p, PortName(0x20)).expect("rpc");
    assert_eq!(out.q.name(), PortName(0x11));
    assert_eq!(
        out.list.names().collect::<Vec<_>>(),
        [PortName(0x10), PortName(0x20), PortName(3)]
    );
    // The request carried a MAKE_SEND right in an 8-byte slot; the server saw PORT_SEND.
    let req = &t.requests[0];
    let d = TypeDesc::read(req, 32).expect("desc");
    assert_eq!(
        (d.name, d.size, d.number),
        (mig::MACH_MSG_TYPE_PORT_SEND, 64, 1)
    );
    assert!(Header::read(req).expect("header").is_complex());
    // The out-of-line array of rights: 32-bit names, long form.
    let reply = &t.replies[0];
    let d = TypeDesc::read(reply, 64).expect("desc");
    assert_eq!((d.size, d.inline, d.longform), (32, false, true));
    let address = out.list.address();
    fake::released();
    drop(out);
    assert_eq!(
        fake::released(),
        [
            (PortName(0x11), PortRight::Send),
            (PortName(0x10), PortRight::Send),
            (PortName(0x20), PortRight::Send),
            (PortName(3), PortRight::Send)
        ]
    );
    assert_eq!(fake::unmapped(), [(address, 12)]);
}

#[test]
fn polymorphic_rights() {
    let mut t = fake();
    let s = server_right();
    let right = SendRight::<TestSpace>::from_name(PortName(9));
    let out = user::poly_ports(&mut t, &s, PortArg::CopySend(&right)).expect("rpc");
    assert_eq!(
        t.server.seen_ports,
        [(PortName(9), mig::MACH_MSG_TYPE_PORT_SEND)]
    );
    assert!(matches!(&out.q, ReceivedPort::SendOnce(r) if r.name() == PortName(9)));
    // A non-port poly value makes a simple message.
    user::poly_ports(
        &mut t,
        &s,
        PortArg::Raw(PortName(3), mig::MACH_MSG_TYPE_PORT_NAME),
    )
    .expect("rpc");
    let h = Header::read(&t.requests[1]).expect("header");
    assert!(!h.is_complex());
}

#[test]
fn indefinite_arrays_inline() {
    let mut t = fake();
    let mut buf = [0i32; 8];
    let out = user::indefinite(&mut t, &server_right(), &[1, 2], &mut buf).expect("rpc");
    assert_eq!(out.back, Received::Inline(2));
    assert_eq!(&buf[..2], &[3, 6]);
    // Indefinite arrays use the long form even inline.
    let d = TypeDesc::read(&t.requests[0], 32).expect("desc");
    assert!(d.longform && d.inline);
    assert!(!Header::read(&t.requests[0]).expect("h").is_complex());
}

#[test]
fn indefinite_arrays_beyond_the_inline_limit_go_out_of_line() {
    // 2048 bytes inline: 512 32-bit integers.
    let mut t = fake();
    let s = server_right();
    let mut buf = [0i32; 512];
    let small: Vec<i32> = (0..512).collect();
    let out = user::big_indefinite(&mut t, &s, &small, &mut buf).expect("rpc");
    assert_eq!(out.back, Received::Inline(512));
    assert_eq!(buf[511], 1022);
    let d = TypeDesc::read(&t.requests[0], 32).expect("desc");
    assert!(d.inline && d.longform && d.number == 512);

    let big: Vec<i32> = (0..513).collect();
    let out = user::big_indefinite(&mut t, &s, &big, &mut buf).expect("rpc");
    assert_eq!(t.server.big_in, big, "the server got every element");
    let req = &t.requests[1];
    let d = TypeDesc::read(req, 32).expect("desc");
    assert_eq!(
        (d.name, d.size, d.number, d.inline, d.longform, d.deallocate),
        (2, 32, 513, false, true, false),
        "sent out-of-line, the caller's slice copied"
    );
    assert!(Header::read(req).expect("h").is_complex());
    assert_eq!(Header::read(req).expect("h").size, 48);
    // The reply went out-of-line too, with the deallocate bit of its `Dealloc` flag.
    let Received::OutOfLine(back) = &out.back else {
        panic!("expected out-of-line: {:?}", out.back);
    };
    assert_eq!(back.len(), 513);
    assert_eq!(back.get(512), Some(1024));
    assert!(Header::read(&t.replies[1]).expect("h").is_complex());
    let address = back.address();
    drop(out);
    assert!(!fake::is_mapped(address));
}

#[test]
fn indefinite_port_arrays_switch_to_32_bit_names_out_of_line() {
    let mut t = fake();
    let s = server_right();
    let mut buf = [PortName::NULL; 256];
    let few: Vec<PortName> = (1..=3).map(PortName).collect();
    let out = user::port_list(&mut t, &s, &few, &mut buf).expect("rpc");
    assert_eq!(out.back, ReceivedPorts::Inline(3));
    assert_eq!(&buf[..3], &few[..]);
    let d = TypeDesc::read(&t.requests[0], 32).expect("desc");
    assert_eq!((d.size, d.inline, d.longform), (64, true, true));

    let many: Vec<PortName> = (1..=300).map(PortName).collect();
    let out = user::port_list(&mut t, &s, &many, &mut buf).expect("rpc");
    let d = TypeDesc::read(&t.requests[1], 32).expect("desc");
    // Sent as COPY_SEND (19), seen by the server as PORT_SEND (17).
    assert_eq!((d.name, d.size, d.number, d.inline), (17, 32, 300, false));
    let ReceivedPorts::OutOfLine(ports) = &out.back else {
        panic!("expected out-of-line");
    };
    assert_eq!(ports.len(), 300);
    assert_eq!(ports.name(299), Some(PortName(300)));
    fake::released();
    drop(out);
    assert_eq!(
        fake::released().len(),
        300,
        "each right in the array is released"
    );
}

#[test]
fn indefinite_arrays_of_structures_count_in_base_elements() {
    let mut t = fake();
    let mut buf = [0i64; 8];
    let out = user::struct_list(&mut t, &server_right(), &mut buf).expect("rpc");
    assert_eq!(out.items, Received::Inline(4));
    assert_eq!(&buf[..4], &[1, 2, 3, 4]);
    let d = TypeDesc::read(&t.replies[0], 48).expect("desc");
    assert_eq!((d.name, d.size, d.number, d.longform), (11, 64, 4, true));
    // CountInOut: the caller's buffer size went with the request.
    assert_eq!(&t.requests[0][40..44], &8u32.to_le_bytes());
}

#[test]
fn simpleroutine_sends_without_reply() {
    let mut t = fake();
    user::notify(&mut t, &server_right(), 99).expect("send");
    assert_eq!(t.server.notified, [99]);
    let h = Header::read(&t.requests[0]).expect("header");
    assert_eq!((h.remote_port, h.id), (PortSlot::NULL, 5011));
}

#[test]
fn header_arguments_and_options() {
    let mut t = fake();
    let s = server_right();
    let out = user::headers(&mut t, &s, 250, 0x40).expect("rpc");
    assert_eq!(out.seen, 1, "the server saw the message's sequence number");
    assert_eq!(
        t.options[0],
        mig::CallOptions {
            option: 0x40,
            timeout: Some(250)
        }
    );
    assert_eq!(user::HEADERS_ID, 5013);
    let reply_to = ReceiveRight::<TestSpace>::from_name(PortName(0x99));
    let out = user::explicit_reply(&mut t, &s, &reply_to).expect("rpc");
    assert_eq!(out.v, 5);
    assert_eq!(t.reply_ports[1], PortName(0x99));
    assert_eq!(user::EXPLICIT_REPLY_ID, 5016);
}

#[test]
fn errors_come_back_as_short_replies() {
    let mut t = fake();
    let s = server_right();
    assert_eq!(user::fails(&mut t, &s, 0).map(|o| o.never), Ok(1));
    assert_eq!(user::fails(&mut t, &s, 4), Err(KernReturn::InvalidArgument));
    assert_eq!(t.served[1].code, KernReturn::InvalidArgument);
    assert_eq!(t.replies[1].len(), 48);
    // A code no variant names survives the trip.
    assert_eq!(user::fails(&mut t, &s, 2502), Err(KernReturn::Other(2502)));
    // MIG_NO_REPLY from the server: nothing is sent back.
    assert_eq!(
        user::fails(&mut t, &s, KernReturn::MigNoReply.code()),
        Err(KernReturn::RcvTimedOut)
    );
}

#[test]
fn arrays_before_and_after_other_items() {
    let mut t = fake();
    let mut first = [0i32; 16];
    let mut second = [0i16; 5];
    let out =
        user::two_arrays(&mut t, &server_right(), 3, &mut first, 77, &mut second).expect("rpc");
    assert_eq!(
        (out.first_count, out.mid, out.second_count, out.last),
        (3, 77, 3, -1)
    );
    assert_eq!(&first[..3], &[1, 2, 3]);
    assert_eq!(&second[..3], &[7, 8, 9]);
}

#[test]
fn the_caller_s_buffer_variant_needs_room_for_both_messages() {
    let mut t = fake();
    let s = server_right();
    let mut buf = vec![0u8; 80];
    let out = user::scalars_with(&mut t, &mut buf, &s, 1, 2, 3).expect("rpc");
    assert_eq!(out.sum, 6);
    let mut small = vec![0u8; 79];
    assert_eq!(
        user::scalars_with(&mut t, &mut small, &s, 1, 2, 3),
        Err(KernReturn::MigArrayTooLarge)
    );
}

#[test]
fn a_bad_reply_is_destroyed_and_nothing_is_owned_twice() {
    // A reply with two received rights whose second descriptor is wrong: the stub refuses it
    // (MIG_TYPE_ERROR) and releases both rights once, through destroy; it never hands any
    // of them out.
    let mut reply = vec![0u8; 96];
    let mut e = mig::Encoder::new(&mut reply);
    e.item(mig::INT32_DESC);
    e.put(0i32);
    for (name, longform) in [(0x40u32, false), (0x41, false), (0x42, true)] {
        e.item(TypeDesc {
            name: 17,
            size: 64,
            number: 1,
            inline: true,
            longform,
            deallocate: false,
        });
        e.put(PortSlot::from(PortName(name)));
    }
    let size = e
        .finish(Header {
            bits: mig::MACH_MSGH_BITS_COMPLEX,
            id: 5122,
            ..Header::default()
        })
        .expect("fits");
    reply.truncate(size);
    fake::reset();
    let mut t = Fake::new(Replay(reply));
    let s = server_right();
    let recv = ReceiveRight::<TestSpace>::from_name(PortName(1));
    let r = user::rights(&mut t, &s, SendRight::from_name(PortName(2)), &recv, &recv);
    assert_eq!(r.err(), Some(KernReturn::MigTypeError));
    let released = fake::released();
    for n in 0x40..=0x42 {
        assert_eq!(
            released.iter().filter(|(p, _)| p.0 == n).count(),
            1,
            "{n:#x} released once: {released:?}"
        );
    }
}

/// A server that answers every request with the same bytes.
struct Replay(Vec<u8>);

impl Serve for Replay {
    fn serve(&mut self, _: &[u8], reply: &mut [u8]) -> Served {
        reply[..self.0.len()].copy_from_slice(&self.0);
        Served {
            handled: true,
            reply_size: self.0.len(),
            code: KernReturn::Success,
        }
    }
}

#[test]
fn routines_marked_unimplemented_answer_mig_bad_id() {
    fake::reset();
    let mut t = Fake::new(Nothing);
    assert_eq!(
        user::scalars(&mut t, &server_right(), 1, 2, 3),
        Err(KernReturn::MigBadId)
    );
    assert!(t.served[0].handled);
    assert_eq!(t.served[0].code, KernReturn::MigBadId);
}

fn any_request() -> impl Strategy<Value = Vec<u8>> {
    (
        prop_oneof![5000i32..5032, any::<i32>()],
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
    fn indefinite_arrays_round_trip_at_any_length(data in proptest::collection::vec(any::<i32>(), 0..1500)) {
        let mut t = fake();
        let mut buf = [0i32; 512];
        let out = user::big_indefinite(&mut t, &server_right(), &data, &mut buf).expect("rpc");
        let expect: Vec<i32> = data.iter().map(|v| v.wrapping_mul(2)).collect();
        let got: Vec<i32> = match &out.back {
            Received::Inline(n) => buf[..*n as usize].to_vec(),
            Received::OutOfLine(o) => o.iter().collect(),
        };
        prop_assert_eq!(got, expect);
        prop_assert_eq!(matches!(out.back, Received::Inline(_)), data.len() <= 512);
        drop(out);
        prop_assert_eq!(fake::mapped(), 0, "nothing stays mapped");
    }

    #[test]
    fn demux_never_panics(req in any_request(), reply_len in 0usize..5000) {
        let mut reply = vec![0u8; reply_len];
        let _ = server::roundtrip_server(&mut Nothing, &req, &mut reply);
        let _ = server::roundtrip_server(&mut Impl::default(), &req, &mut reply);
    }

    #[test]
    fn mutated_requests_never_panic(flips in proptest::collection::vec((0usize..200, any::<u8>()), 1..8)) {
        // Capture real requests, then damage them.
        let mut t = fake();
        let s = server_right();
        let mut buf = [0i32; 16];
        let _ = user::two_arrays(&mut t, &s, 3, &mut buf, 1, &mut [0i16; 5]);
        let _ = user::strings(&mut t, &s, c"a", c"x");
        let _ = user::indefinite(&mut t, &s, &[1, 2, 3], &mut [0; 4]);
        let _ = user::port_list(&mut t, &s, &[PortName(1)], &mut [PortName::NULL; 2]);
        for req in t.requests.clone() {
            let mut m = req.clone();
            for (at, v) in &flips {
                if let Some(b) = m.get_mut(*at) {
                    *b = *v;
                }
            }
            let mut reply = vec![0u8; server::MAX_REPLY_SIZE];
            let _ = server::roundtrip_server(&mut Impl::default(), &m, &mut reply);
        }
    }

    #[test]
    fn stubs_never_panic_on_any_reply(reply in proptest::collection::vec(any::<u8>(), 0..300), id in prop_oneof![Just(5106), Just(5114), Just(5110), any::<i32>()]) {
        let mut reply = reply;
        if reply.len() >= 32 {
            let n = reply.len() as u32;
            reply[4..8].copy_from_slice(&n.to_le_bytes());
            reply[28..32].copy_from_slice(&id.to_le_bytes());
        }
        let mut t = Canned { reply, sent: Vec::new() };
        let s = server_right();
        let _ = user::two_arrays(&mut t, &s, 1, &mut [0; 16], 0, &mut [0; 5]);
        let _ = user::indefinite(&mut t, &s, &[1], &mut [0; 2]);
        let _ = user::ports(&mut t, &s, &ReceiveRight::from_name(PortName(1)), PortName(1));
        let _ = user::strings(&mut t, &s, c"a", c"b");
        let _ = user::port_list(&mut t, &s, &[PortName(1)], &mut [PortName::NULL; 2]);
    }
}
