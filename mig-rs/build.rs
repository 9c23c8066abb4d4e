//! Build script of mig-rs: generates code from test `.defs` files into `OUT_DIR` so that the
//! integration tests compile and run real generated stubs and servers (under the workspace
//! lints). It uses the library's own sources, so what is tested is what ships.
//!
//! Generated here: the runtime (`mig_rt.rs`), client and server code of
//! `tests/defs/roundtrip.defs`, and of libmach's `mach.defs`, `mach_host.defs` and
//! `mach_port.defs` (server side with `KERNEL_SERVER`, as the kernel builds it).

// The library's modules, compiled into the build script (it cannot depend on its own crate).
// Each is allowed dead code: the build script uses only the code generation path.
#[allow(dead_code)]
#[path = "src/api.rs"]
mod api;
#[allow(dead_code)]
#[path = "src/ast.rs"]
mod ast;
#[allow(dead_code)]
#[path = "src/codegen.rs"]
mod codegen;
#[allow(dead_code)]
#[path = "src/error.rs"]
mod error;
#[allow(dead_code)]
#[path = "src/layout.rs"]
mod layout;
#[allow(dead_code)]
#[path = "src/lexer.rs"]
mod lexer;
#[allow(dead_code)]
#[path = "src/parser.rs"]
mod parser;
#[allow(dead_code)]
#[path = "src/preprocess.rs"]
mod preprocess;
#[allow(dead_code)]
#[path = "src/routine.rs"]
mod routine;
#[allow(dead_code)]
#[path = "src/types.rs"]
mod types;

use std::path::Path;

fn main() {
    let defs = Path::new("../libmach/defs");
    let result = api::Build::new()
        .include_dir("tests/defs")
        .runtime("mig_rt.rs")
        .user("tests/defs/roundtrip.defs", "roundtrip_user.rs")
        .server("tests/defs/roundtrip.defs", "roundtrip_server.rs")
        .run()
        .and_then(|_| {
            let user = api::Build::new().include_dir(defs);
            let kernel = api::Build::new()
                .include_dir(defs)
                .define("KERNEL_SERVER", "1");
            let mut build_user = user;
            let mut build_kernel = kernel;
            for name in ["mach", "mach_host", "mach_port"] {
                let file = defs.join(format!("mach/{name}.defs"));
                build_user = build_user.user(&file, &format!("{name}_user.rs"));
                build_kernel = build_kernel.server(&file, &format!("{name}_server.rs"));
            }
            build_user.run()?;
            build_kernel.run()
        });
    if let Err(e) = result {
        // A build script reports failure by panicking; the message is the .defs error.
        panic!("mig-rs: {e}");
    }
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=src");
}
