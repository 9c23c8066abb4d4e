//! Code mig-rs generated from `.defs` files (by `build.rs`, into `OUT_DIR`) and the fake
//! kernel the tests run it on. The tests themselves are in `tests/`: round trips from a
//! generated client stub through bytes and a generated server back to the stub, GNU Mach's
//! message bytes, the typed translation hooks of kernel servers, indefinite arrays that go
//! out-of-line, and property tests that no bytes make generated code panic.
//!
//! Not a library anything ships: it exists so that generated code is compiled (and linted)
//! once, as any crate that uses mig-rs compiles it.

pub mod fake;
pub mod models;

macro_rules! generated {
    ($($module:ident => $file:literal,)*) => {
        $(
            pub mod $module {
                include!(concat!(env!("OUT_DIR"), "/", $file));
            }
        )*
    };
}

generated! {
    roundtrip_user => "roundtrip_user.rs",
    roundtrip_server => "roundtrip_server.rs",
    kobject_user => "kobject_user.rs",
    kobject_server => "kobject_server.rs",
    mach_user => "mach_user.rs",
    mach_server => "mach_server.rs",
    mach_host_user => "mach_host_user.rs",
    mach_host_server => "mach_host_server.rs",
    mach_port_user => "mach_port_user.rs",
    mach_port_server => "mach_port_server.rs",
    mach_debug_user => "mach_debug_user.rs",
    mach_debug_server => "mach_debug_server.rs",
    default_pager_user => "default_pager_user.rs",
    default_pager_server => "default_pager_server.rs",
}

use mach_abi::mig::Served;

/// A server of the round-trip subsystem that leaves every routine out, explicitly, with the
/// generated macro (which works in the crate that includes the generated server).
pub struct Nothing;

impl roundtrip_server::RoundtripServer for Nothing {
    roundtrip_server::roundtrip_unimplemented!(
        crate::roundtrip_server;
        scalars, inout_scalars, fixed_arrays, var_arrays, count_in_out, strings, ool_data,
        ool_maybe, ports, poly_ports, indefinite, notify, headers, explicit_reply, fails,
        two_arrays, inline_type, booleans, rights, big_indefinite, port_list, ool_give,
        struct_list,
    );
}

impl fake::Serve for Nothing {
    fn serve(&mut self, request: &[u8], reply: &mut [u8]) -> Served {
        roundtrip_server::roundtrip_server(self, request, reply)
    }
}
