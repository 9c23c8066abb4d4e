//! `bootstrap`: the first user task. The kernel starts it with the host-privileged and
//! device ports (`argv[1]`, `argv[2]`); it maps the RAM disk (the "ramdisk" device), reads
//! its configuration (`config`), starts the programs it lists from user space with
//! libmach's loader, each with a send right to bootstrap's service port as its bootstrap
//! port, and serves there `armach_bootstrap` (`libmach/defs/armach/bootstrap.defs`: the
//! name service, and `bootstrap_spawn`) through the generated server. Dead-name
//! notifications on registered rights drop their names; those on the started tasks'
//! ports restart `restart` servers (a bounded number of times) and tell when every
//! waited-for program has ended: bootstrap then terminates the servers and exits
//! (`supervisor`). The rules are in the library, host-tested; this file is the IPC.

#![cfg_attr(target_os = "none", no_std)]
#![cfg_attr(target_os = "none", no_main)]

/// On the host there is nothing to run: the server needs armach (the rules it follows
/// are the library's, which the host tests check).
#[cfg(not(target_os = "none"))]
fn main() {}

#[cfg(target_os = "none")]
mod imp {
    extern crate alloc;

    use alloc::string::String;
    use alloc::vec::Vec;
    use core::ffi::CStr;
    use core::mem::ManuallyDrop;

    use armach_bootstrap::config::{self, Program, Source};
    use armach_bootstrap::names::{NameError, NameTable};
    use armach_bootstrap::supervisor::{Ended, Supervisor};
    use libmach::abi::message::{
        Header, MACH_MSG_TYPE_MAKE_SEND, MACH_MSG_TYPE_MAKE_SEND_ONCE, notify,
    };
    use libmach::abi::mig::{ArrayRef, PortArg, Served};
    use libmach::exec::cpio;
    use libmach::ipc::{self, SendRight};
    use libmach::loader::{self, SpawnError, StartPorts};
    use libmach::mig::{mach, mach_port};
    use libmach::{Args, KernReturn, PortName, println, traps};

    // Generated: the ids and sizes are there for every server, not all used by this one.
    #[allow(dead_code)]
    mod generated {
        include!(concat!(env!("OUT_DIR"), "/bootstrap_server.rs"));
    }
    use generated::{ArmachBootstrapServer, BootstrapLookUpOut, BootstrapSpawnOut};

    libmach::main!(main);

    /// `MACH_PORT_TYPE_DEAD_NAME`.
    const TYPE_DEAD_NAME: u32 = 1 << 20;
    /// Bytes of each message buffer: the largest request (a spawn with 1 KiB of
    /// arguments); replies and notifications are smaller.
    const BUFFER: usize = generated::MAX_REQUEST_SIZE;

    struct Bootstrap {
        ramdisk: &'static [u8],
        programs: Vec<Program>,
        table: NameTable,
        supervisor: Supervisor,
        /// The service port: receive right and a send right under one name; dead-name
        /// notifications arrive here too.
        service: PortName,
        ports: StartPorts,
    }

    fn main(args: &Args) -> i32 {
        let (Some(host_priv), Some(device)) = (args.host_priv_port(), args.device_port()) else {
            println!("bootstrap: no host-privileged or device port in argv[1], argv[2]");
            return 1;
        };
        let ramdisk = match loader::map_ramdisk(&ManuallyDrop::new(SendRight::from_name(device))) {
            Ok(r) => r,
            Err(e) => {
                println!("bootstrap: cannot map the RAM disk: {e}");
                return 1;
            }
        };
        let words: Vec<&str> = args.iter().skip(3).collect();
        let programs = match read_config(ramdisk, &words) {
            Ok(p) => p,
            Err(e) => {
                println!("bootstrap: {e}");
                return 1;
            }
        };
        let task = traps::mach_task_self();
        let service = traps::mach_reply_port();
        if traps::mach_port_insert_right(task, service, service, MACH_MSG_TYPE_MAKE_SEND).is_err() {
            println!("bootstrap: cannot make the service port");
            return 1;
        }
        let mut b = Bootstrap {
            ramdisk,
            supervisor: Supervisor::new(programs.iter().map(|p| p.kind).collect()),
            programs,
            table: NameTable::new(),
            service,
            ports: StartPorts {
                host_priv,
                device,
                bootstrap: service,
            },
        };
        println!(
            "bootstrap: RAM disk of {} bytes; starting {} programs",
            ramdisk.len(),
            b.programs.len()
        );
        for i in 0..b.programs.len() {
            if let Err(e) = b.start_program(i) {
                println!("bootstrap: cannot start {}: {e}", b.command(i));
            }
        }
        b.finish_if_done();
        let mut request = [0u8; BUFFER];
        let mut reply = [0u8; BUFFER];
        // SAFETY: no reply gives memory away (the routines return no out-of-line data).
        let r = unsafe {
            ipc::serve(
                &mut ipc::Trap,
                service,
                &mut request,
                &mut reply,
                |req, rep| b.demux(req, rep),
            )
        };
        println!("bootstrap: receive failed: {r:?}");
        1
    }

    /// The programs to start, from the arguments or a configuration file of the RAM disk.
    fn read_config(ramdisk: &[u8], words: &[&str]) -> Result<Vec<Program>, String> {
        match config::from_args(words).map_err(|e| alloc::format!("{e}"))? {
            Source::Words(programs) => Ok(programs),
            Source::File(file) => {
                let entry = cpio::find(ramdisk, &file)
                    .ok_or_else(|| alloc::format!("no {file} in the RAM disk"))?;
                let text = core::str::from_utf8(entry.data)
                    .map_err(|_| alloc::format!("{file} is not UTF-8 text"))?;
                config::parse(text).map_err(|e| alloc::format!("{file}: {e}"))
            }
        }
    }

    impl Bootstrap {
        fn demux(&mut self, request: &[u8], reply: &mut [u8]) -> Served {
            if let Some(h) = Header::read(request)
                && h.id == notify::DEAD_NAME
            {
                // Body: the name's type descriptor @32, the name @40.
                if let Some(name) = request.get(40..44) {
                    let name = PortName(u32::from_le_bytes([name[0], name[1], name[2], name[3]]));
                    self.dead_name(name);
                }
                return Served {
                    handled: true,
                    reply_size: 0,
                    code: KernReturn::MigNoReply,
                };
            }
            generated::armach_bootstrap_server(self, request, reply)
        }

        /// Program `i`'s name and arguments, as its line says.
        fn command(&self, i: usize) -> String {
            let p = &self.programs[i];
            let mut s = p.name.clone();
            for a in &p.args {
                s.push(' ');
                s.push_str(a);
            }
            s
        }

        /// Starts the configuration's program `i`.
        fn start_program(&mut self, i: usize) -> Result<(), SpawnError> {
            let p = &self.programs[i];
            let (name, args) = (p.name.clone(), p.args.clone());
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let task = self.start(&name, &args)?;
            self.supervisor.started(task.0, Some(i));
            Ok(())
        }

        /// Starts `name` from the RAM disk; the name of our send right to its task port,
        /// watched with a dead-name request.
        fn start(&mut self, name: &str, args: &[&str]) -> Result<PortName, SpawnError> {
            let entry = cpio::find(self.ramdisk, name).ok_or(SpawnError::Call(
                "no such program in the RAM disk",
                KernReturn::InvalidName,
            ))?;
            let child = loader::spawn(name, entry.data, args, &self.ports)?;
            drop(child.thread);
            let task = child.task.into_name();
            self.watch(task);
            Ok(task)
        }

        /// Asks for a dead-name notification on our right `name`, sent to the service
        /// port. A right already dead (a task that ended at once, a server gone before its
        /// registration was served) gets its notification at once (`sync` 1, GNU Mach's
        /// immediate request), so nothing is missed.
        fn watch(&self, name: PortName) {
            let r = mach_port::mach_port_request_notification(
                &mut ipc::transport(),
                &ipc::task_self(),
                name,
                notify::DEAD_NAME,
                1,
                PortArg::Raw(self.service, MACH_MSG_TYPE_MAKE_SEND_ONCE),
            );
            if let Err(e) = r {
                println!("bootstrap: no dead-name request on {name:?}: {e:?}");
            }
        }

        /// Cancels the dead-name request on `name` (its previous send-once right is
        /// destroyed as it drops).
        fn unwatch(&self, name: PortName) {
            let _ = mach_port::mach_port_request_notification(
                &mut ipc::transport(),
                &ipc::task_self(),
                name,
                notify::DEAD_NAME,
                0,
                PortArg::Raw(PortName::NULL, MACH_MSG_TYPE_MAKE_SEND_ONCE),
            );
        }

        /// A dead-name notification for `name`: a registered service or a started task
        /// died. Anyone can send to the service port, so the name must really be dead.
        fn dead_name(&mut self, name: PortName) {
            let ptype = mach_port::mach_port_type(&mut ipc::transport(), &ipc::task_self(), name)
                .map(|o| o.ptype);
            if !ptype.is_ok_and(|t| t & TYPE_DEAD_NAME != 0) {
                return;
            }
            // Our references to the dead name: one per registration or the task right, and
            // one the notification added.
            let mut refs = 1;
            let registered = self.table.uses(name.0);
            if registered > 0 {
                self.table.port_died(name.0);
                refs += registered;
            } else {
                match self.supervisor.ended(name.0) {
                    Ended::Unknown => {}
                    Ended::Gone => refs += 1,
                    Ended::Restart { program, restart } => {
                        refs += 1;
                        println!(
                            "bootstrap: {} died; restart {restart} of {}",
                            self.command(program),
                            config::MAX_RESTARTS
                        );
                        if let Err(e) = self.start_program(program) {
                            println!("bootstrap: cannot restart {}: {e}", self.command(program));
                        }
                    }
                    Ended::GaveUp { program, deaths } => {
                        refs += 1;
                        println!(
                            "bootstrap: {} died {deaths} times; not restarted again",
                            self.command(program)
                        );
                    }
                }
            }
            let task = traps::mach_task_self();
            for _ in 0..refs {
                let _ = traps::mach_port_deallocate(task, name);
            }
            self.finish_if_done();
        }

        /// Once no waited-for task is left: terminate the servers and exit.
        fn finish_if_done(&mut self) {
            if !self.supervisor.done() {
                return;
            }
            let servers: Vec<u32> = self.supervisor.servers().collect();
            let t = &mut ipc::transport();
            for &task in &servers {
                let right = ManuallyDrop::new(SendRight::from_name(PortName(task)));
                let _ = mach::task_terminate(t, &right);
            }
            println!(
                "bootstrap: every program ended; {} servers terminated",
                servers.len()
            );
            libmach::start::exit(0)
        }
    }

    fn name_bytes(name: &CStr) -> &[u8] {
        name.to_bytes()
    }

    impl ArmachBootstrapServer for Bootstrap {
        fn bootstrap_register(
            &mut self,
            _: PortName,
            name: &CStr,
            service: PortName,
        ) -> Result<(), KernReturn> {
            let first = self
                .table
                .register(name_bytes(name), service.0)
                .map_err(NameError::code)?;
            if first {
                self.watch(service);
            }
            Ok(())
        }

        fn bootstrap_look_up(
            &mut self,
            _: PortName,
            name: &CStr,
        ) -> Result<BootstrapLookUpOut, KernReturn> {
            let port = self
                .table
                .look_up(name_bytes(name))
                .map_err(NameError::code)?;
            Ok(BootstrapLookUpOut {
                service: PortName(port),
            })
        }

        fn bootstrap_unregister(
            &mut self,
            _: PortName,
            name: &CStr,
            service: PortName,
        ) -> Result<(), KernReturn> {
            let last = self
                .table
                .unregister(name_bytes(name), service.0)
                .map_err(NameError::code)?;
            if last {
                self.unwatch(service);
            }
            // The reference the registration gave, and the one this request brought.
            let task = traps::mach_task_self();
            let _ = traps::mach_port_deallocate(task, service);
            let _ = traps::mach_port_deallocate(task, service);
            Ok(())
        }

        fn bootstrap_spawn(
            &mut self,
            _: PortName,
            program: &CStr,
            args: ArrayRef<'_, u8>,
        ) -> Result<BootstrapSpawnOut, KernReturn> {
            let name = armach_bootstrap::names::check_name(name_bytes(program))
                .map_err(NameError::code)?;
            let bytes: Vec<u8> = args.iter().collect();
            if bytes.last().is_some_and(|&b| b != 0) {
                return Err(KernReturn::InvalidArgument);
            }
            let words: Vec<&str> = bytes
                .split(|&b| b == 0)
                .filter(|w| !w.is_empty())
                .map(core::str::from_utf8)
                .collect::<Result<_, _>>()
                .map_err(|_| KernReturn::InvalidArgument)?;
            let name = String::from(name);
            let task = self.start(&name, &words).map_err(|e| e.code())?;
            self.supervisor.started(task.0, None);
            // The reply copies our send right: we keep ours for the dead-name request.
            Ok(BootstrapSpawnOut { task })
        }
    }
}
