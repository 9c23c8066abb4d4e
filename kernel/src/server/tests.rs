//! Host tests of the kernel's object server: requests built as `mach_msg` would leave
//! them (rights copied in from a client's space, descriptors rewritten to the received
//! types), served against real spaces and kernel ports, replies sent back and received
//! into the client's space as a user task would see them. Every `mach_port` routine
//! against the `Space` method it stands for, `host_info`'s flavors and codes, bad
//! requests, who pays, and random bytes fed to the whole path.

extern crate std;

use super::generated::{mach_host, mach_port};
use super::host::{Host, HostFacts, HostPorts, flavor};
use super::kobject::serve;
use super::objects::TaskIpc;
use crate::ipc::abi::{Disposition, PortName, msgh_bits, port_type as pt};
use crate::ipc::ledger::counting::{CountingLedger, dyn_ledger};
use crate::ipc::transfer::copyin_type;
use crate::ipc::{
    KObject, KObjectKind, Kmsg, KmsgShape, Ledger, MsgPort, Port, RecvResult, Space, mqueue,
};
use mach_abi::KernReturn as K;
use mach_abi::mig::{self, Encoder, Header, PortSlot, TypeDesc};
use std::sync::Arc;
use std::vec::Vec;

const R_SEND: u32 = 0;
const R_RECV: u32 = 1;
const R_PSET: u32 = 3;
const R_DEAD: u32 = 4;

/// A task as the server sees one: its space.
struct TestTask {
    space: Option<Arc<Space>>,
}

impl TaskIpc for TestTask {
    fn ipc_space(&self) -> Option<Arc<Space>> {
        self.space.clone()
    }
}

struct Facts;

impl HostFacts for Facts {
    fn max_cpus(&self) -> u32 {
        4
    }
    fn running(&self, slot: u32) -> bool {
        slot != 2
    }
    fn memory_size(&self) -> u64 {
        0x1_2000_0000
    }
    fn min_timeout_ms(&self) -> u32 {
        10
    }
    fn min_quantum_ms(&self) -> u32 {
        20
    }
    fn load(&self) -> ([i32; 3], [i32; 3]) {
        ([1, 2, 3], [4, 5, 6])
    }
}

static FACTS: Facts = Facts;

/// A client task, a target task (possibly the same) and the host, with their ports.
struct World {
    ledger: Arc<CountingLedger>,
    /// The client's space and the ledger its requests are charged to.
    client: Arc<Space>,
    sender: Arc<dyn Ledger>,
    target: Arc<Space>,
    task_port: Arc<Port>,
    host: HostPorts,
    /// The client's names for the target's task port, the host and host-priv ports, and
    /// its reply port.
    task: PortName,
    host_name: PortName,
    host_priv: PortName,
    reply: PortName,
}

impl World {
    fn new() -> World {
        let ledger = CountingLedger::unlimited();
        let d = dyn_ledger(&ledger);
        let client = Space::new(&d).unwrap();
        let target = Space::new(&d).unwrap();
        let task = Arc::new(TestTask {
            space: Some(target.clone()),
        });
        let task_port =
            Port::alloc_kernel(&d, Some(KObject::new(KObjectKind::Task, task))).unwrap();
        let host = HostPorts::new(Arc::new(Host::new(&FACTS))).unwrap();
        let name = |p: &Arc<Port>| client.copyout(p.make_send().unwrap(), false).unwrap();
        let (task_name, host_name, host_priv) =
            (name(&task_port), name(&host.host_port), name(&host.host_priv_port));
        let reply = client.allocate(R_RECV).unwrap();
        World {
            ledger,
            sender: d,
            client,
            target,
            task_port,
            host,
            task: task_name,
            host_name,
            host_priv,
            reply,
        }
    }

    /// Send `items` as request `id` to `dest` with a send-once reply right, serve it, and
    /// receive the reply in the client's space.
    fn call(&self, dest: PortName, id: i32, items: &[Item]) -> Option<Got> {
        let k = self.request(dest, id, items, true);
        self.serve_and_receive(k)
    }

    fn request(&self, dest: PortName, id: i32, items: &[Item], reply: bool) -> Kmsg {
        let (reply_name, reply_d) = if reply {
            (self.reply, Disposition::MakeSendOnce as u32)
        } else {
            (PortName::NULL, 0)
        };
        let mut buf = [0u8; 512];
        let mut e = Encoder::new(&mut buf);
        let mut rights = Vec::new();
        for item in items {
            match *item {
                Item::Int(v) => {
                    e.item(mig::INT32_DESC);
                    e.put(v);
                }
                Item::Name(v) => {
                    e.item(desc(15, 32));
                    e.put(v);
                }
                Item::U64(v) => {
                    e.item(desc(11, 64));
                    e.put(v);
                }
                Item::Right(name, d) => {
                    e.item(desc(copyin_type(d) as u8, 64));
                    rights.push((e.pos(), name, d));
                    e.put(u64::from(name.0));
                }
            }
        }
        let complex = if rights.is_empty() {
            0
        } else {
            msgh_bits::COMPLEX
        };
        let size = e
            .finish(Header {
                id,
                ..Header::default()
            })
            .unwrap();
        let bits = msgh_bits::make(Disposition::CopySend as u32, reply_d) | complex;
        self.kmsg(bits, dest, reply_name, id, &buf[32..size], &rights)
    }

    /// A message as `mach_msg` builds it after copyin from the client's space.
    fn kmsg(
        &self,
        bits: u32,
        dest: PortName,
        reply: PortName,
        id: i32,
        body: &[u8],
        rights: &[(usize, PortName, Disposition)],
    ) -> Kmsg {
        let h = self.client.copyin_header(bits, dest, reply).unwrap();
        let mut k = Kmsg::new(
            &self.sender,
            KmsgShape {
                body_len: body.len(),
                ports: rights.len(),
                ool: 0,
            },
        )
        .unwrap();
        k.id = id;
        k.size = (32 + body.len()) as u32;
        k.bits = msgh_bits::other(h.bits);
        k.set_ports(h.dest, h.reply, msgh_bits::local(h.bits));
        k.body.extend_from_slice(body);
        for &(at, name, d) in rights {
            let p = self.client.copyin_body_right(name, d).unwrap();
            k.push_port(at as u64, p).unwrap();
        }
        k
    }

    fn serve_and_receive(&self, k: Kmsg) -> Option<Got> {
        let reply = serve::<TestTask>(&self.sender, k)?;
        mqueue::send(reply, true, |_| false);
        Some(recv(&self.client, self.reply))
    }
}

enum Item {
    Int(u32),
    Name(u32),
    U64(u64),
    Right(PortName, Disposition),
}

fn desc(name: u8, size: u16) -> TypeDesc {
    TypeDesc {
        name,
        size,
        number: 1,
        inline: true,
        longform: false,
        deallocate: false,
    }
}

/// A reply as the client receives it.
#[derive(Debug)]
struct Got {
    id: i32,
    size: u32,
    complex: bool,
    body: Vec<u8>,
    ports: Vec<PortName>,
    ool: Vec<u64>,
}

impl Got {
    fn code(&self) -> K {
        K::from(self.word(40) as i32)
    }

    /// The 32-bit word at `at` from the start of the message.
    fn word(&self, at: usize) -> u32 {
        u32::from_le_bytes(self.body[at - 32..at - 28].try_into().unwrap())
    }

    fn desc(&self, at: usize) -> TypeDesc {
        TypeDesc::from_words(self.word(at), self.word(at + 4))
    }
}

fn recv(s: &Space, name: PortName) -> Got {
    let src = s.mqueue_copyin(name).unwrap();
    let RecvResult::Message(mut k) = src.receive(None, |_| false) else {
        panic!("no reply");
    };
    s.copyout_header(&mut k).unwrap();
    let mut ports = Vec::new();
    for slot in k.ports_mut() {
        ports.push(s.copyout_right(slot.port.take()).0);
    }
    let ool = k.ool_mut().map(|o| o.memory.size()).collect();
    let mut body = vec![0; k.body.len()];
    k.body.read(0, &mut body);
    Got {
        id: k.id,
        size: k.size,
        complex: k.bits & msgh_bits::COMPLEX != 0,
        body,
        ports,
        ool,
    }
}

fn code(g: &Option<Got>) -> K {
    g.as_ref().expect("a reply").code()
}

#[test]
fn mach_port_allocate_and_type_act_on_the_target_space() {
    let w = World::new();
    let g = w.call(w.task, mach_port::MACH_PORT_ALLOCATE_ID, &[Item::Int(R_RECV)]).unwrap();
    assert_eq!((g.id, g.size, g.code()), (3304, 64, K::Success));
    let name = PortName(g.word(56));
    assert_eq!(w.target.port_type(name), Ok(pt::RECEIVE));
    let g = w.call(w.task, mach_port::MACH_PORT_TYPE_ID, &[Item::Name(name.0)]).unwrap();
    assert_eq!((g.code(), g.word(56)), (K::Success, pt::RECEIVE));
    // A name the target lacks: GNU Mach's code, in a 48-byte reply.
    let g = w.call(w.task, mach_port::MACH_PORT_TYPE_ID, &[Item::Name(0x777)]).unwrap();
    assert_eq!((g.code(), g.size), (K::InvalidName, 48));
}
