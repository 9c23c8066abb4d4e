//! Fuzz target: arbitrary request bytes into the servers mig-rs generates for the kernel
//! (`mach.defs`, `mach_port.defs`, `mach_host.defs`, `mach_debug.defs` with
//! `KERNEL_SERVER`, exactly as the kernel builds them) and into a user-side server, on the
//! round-trip crate's models. The contract: no panic, and a reply never claims more bytes
//! than the reply buffer holds.

use honggfuzz::fuzz;
use mig_roundtrip::models::{KDebug, KHost, KNothing};
use mig_roundtrip::{
    Nothing, mach_debug_server, mach_host_server, mach_port_server, mach_server, roundtrip_server,
};

fn main() {
    loop {
        fuzz!(|data: &[u8]| {
            // The first two bytes choose the reply buffer's size, the rest is the request.
            let (size, request) = match data {
                [a, b, rest @ ..] => (usize::from(u16::from_le_bytes([*a, *b])) % 5000, rest),
                _ => return,
            };
            let mut reply = vec![0u8; size];
            let served = [
                mach_server::mach_server(&mut KNothing, request, &mut reply),
                mach_port_server::mach_port_server(&mut KNothing, request, &mut reply),
                mach_host_server::mach_host_server(&mut KHost::default(), request, &mut reply),
                mach_debug_server::mach_debug_server(
                    &mut KDebug { entries: 3 },
                    request,
                    &mut reply,
                ),
                roundtrip_server::roundtrip_server(&mut Nothing, request, &mut reply),
            ];
            for s in served {
                assert!(
                    s.reply_size <= reply.len(),
                    "reply of {} bytes in a buffer of {}",
                    s.reply_size,
                    reply.len()
                );
            }
        });
    }
}
