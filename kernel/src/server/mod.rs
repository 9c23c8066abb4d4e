//! The kernel's own MIG servers: the host, processor, processor-set, task, thread, port and
//! VM interfaces, served in the sender's context when a message reaches a kernel object.
//!
//! Today this holds only the code mig-rs generates from `libmach/defs` (`generated`): the
//! server traits with their typed translation hooks and the demux functions. The kernel's
//! implementations of those traits come with its IPC (ports with kernel objects, and
//! `ipc_kobject_server`); until then the generated code is compiled, so that every change to
//! mig-rs or to a `.defs` file is checked against the kernel's own target.

pub mod generated;
