//! `hello`: the start-up contract. Prints the arguments the kernel passed and checks their
//! layout (`argc`, `argv[argc]` NULL, empty `envp`), that `argv[1]` and `argv[2]` (host-
//! privileged and device port names) are decimal numbers, that `.data` was loaded and `.bss`
//! is zero, and that FP/SIMD works in user mode.

#![no_std]
#![no_main]

use armach_tests::Checks;
use core::hint::black_box;
use core::sync::atomic::{AtomicU64, Ordering};
use libmach::Args;

libmach::main!(main);

/// Initialised data: must read back as written in the ELF file.
static DATA_WORD: AtomicU64 = AtomicU64::new(0x1234_5678_9abc_def0);
/// Zero-initialised: must read back 0.
static BSS_WORDS: [AtomicU64; 64] = [const { AtomicU64::new(0) }; 64];

fn main(args: &Args) -> i32 {
    let mut c = Checks::new("hello");
    c.note(format_args!(
        "hello from user mode on cpu {} of {}",
        libmach::cpu(),
        libmach::cpu_count()
    ));
    c.note(format_args!("argc = {}", args.len()));
    for (i, arg) in args.iter().enumerate() {
        c.note(format_args!("argv[{}] = {:?}", i, arg));
    }
    c.check(
        args.len() >= 3,
        "argc >= 3 (program, host port, device port)",
        format_args!("{}", args.len()),
    );
    c.check(
        args.argv_terminator().is_null(),
        "argv[argc] is NULL",
        format_args!("{:p}", args.argv_terminator()),
    );
    c.check_eq("envp is empty", args.env_len(), 0);
    c.check(
        args.host_priv_port().is_some(),
        "argv[1] (host-privileged port) is decimal",
        format_args!("{:?} -> {:?}", args.str(1), args.host_priv_port()),
    );
    c.check(
        args.device_port().is_some(),
        "argv[2] (device port) is decimal",
        format_args!("{:?} -> {:?}", args.str(2), args.device_port()),
    );
    c.note(format_args!(
        "task {:?}, thread {:?}, host {:?}",
        libmach::mach_task_self(),
        libmach::mach_thread_self(),
        libmach::mach_host_self()
    ));

    let word = DATA_WORD.load(Ordering::Relaxed);
    c.check(
        word == 0x1234_5678_9abc_def0,
        "initialised .data word",
        format_args!("{:#x}, expected 0x123456789abcdef0", word),
    );
    let bss_nonzero = BSS_WORDS
        .iter()
        .filter(|w| w.load(Ordering::Relaxed) != 0)
        .count();
    c.check_eq(".bss words that are not zero", bss_nonzero, 0);
    DATA_WORD.store(1, Ordering::Relaxed);
    c.check_eq(".data is writable", DATA_WORD.load(Ordering::Relaxed), 1);

    // Floating point and SIMD: values the compiler cannot fold.
    let x = black_box(1.5f64);
    let y = black_box(2.25f64);
    let fp = x * y + x / y;
    c.check(
        (fp - 4.041_666_666_666_667).abs() < 1e-12,
        "f64 arithmetic",
        format_args!("{}", fp),
    );
    let v: [f32; 4] = black_box([1.0, 2.0, 3.0, 4.0]);
    let w: [f32; 4] = black_box([0.5, 0.25, 0.125, 2.0]);
    let dot: f32 = v.iter().zip(w.iter()).map(|(a, b)| a * b).sum();
    c.check_eq("f32 dot product", dot, 9.375);

    c.finish()
}
