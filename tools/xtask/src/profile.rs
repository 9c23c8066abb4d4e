//! `cargo xtask bench --profile NAME`: where one benchmark's instructions go, per function.
//! Boots the `bench` program on one CPU with `-- profile NAME N` after the kernel's words,
//! so that it runs only NAME, N times, between two calls of its `bench_profile_mark`; QEMU
//! translates one guest instruction per block without chaining (`one-insn-per-tb`,
//! `-d exec,nochain`) and so logs the address of every instruction it executes. The log is
//! read back, the window between the first two executions of the mark cut out, and each
//! address charged to the function of the kernel or the program that holds it (symbols of
//! both ELF files). Exact counts, as `-icount` gives, but per function.

use std::collections::HashMap;
use std::io::BufRead;
use std::path::Path;
use std::time::Duration;

use object::{Object, ObjectSymbol, SymbolKind};

use crate::qemu::{self, Board, Boot, Console, Machine, MachineOptions};
use crate::{Error, Result, kernel, prereq, target_dir};

/// The program's window marker (`tests/src/bin/bench.rs`).
const MARK: &str = "bench_profile_mark";

/// The functions of one ELF file: (start, end, name), sorted by start.
pub struct Symbols(Vec<(u64, u64, String)>);

impl Symbols {
    pub fn from_elf(data: &[u8]) -> std::result::Result<Symbols, String> {
        let file = object::File::parse(data).map_err(|e| e.to_string())?;
        let mut functions: Vec<(u64, u64, String)> = file
            .symbols()
            .filter(|s| {
                matches!(
                    s.kind(),
                    SymbolKind::Text | SymbolKind::Label | SymbolKind::Unknown
                ) && s.address() != 0
                    && s.section_index().is_some()
            })
            .filter_map(|s| {
                let name = s
                    .name()
                    .ok()
                    .filter(|n| !n.is_empty() && !n.starts_with('$'))?;
                Some((s.address(), s.address() + s.size(), short_name(name)))
            })
            .collect();
        functions.sort();
        functions.dedup_by_key(|f| f.0);
        // Assembly labels have no size: each runs to the next symbol.
        for i in 0..functions.len() {
            if functions[i].1 == functions[i].0 {
                functions[i].1 = functions.get(i + 1).map_or(functions[i].0 + 4, |f| f.0);
            }
        }
        Ok(Symbols(functions))
    }

    /// The function holding `pc`.
    pub fn lookup(&self, pc: u64) -> Option<&str> {
        let i = self.0.partition_point(|(start, _, _)| *start <= pc);
        let (start, end, name) = self.0.get(i.checked_sub(1)?)?;
        (*start <= pc && pc < *end).then_some(name.as_str())
    }

    /// Where the function called exactly `name` starts.
    pub fn address_of(&self, name: &str) -> Option<u64> {
        self.0
            .iter()
            .find(|(_, _, n)| n == name)
            .map(|(a, _, _)| *a)
    }
}

/// A demangled name without the hash suffix and with `armach_kernel::` shortened.
fn short_name(mangled: &str) -> String {
    let name = format!("{:#}", rustc_demangle::demangle(mangled));
    name.strip_prefix("armach_kernel::")
        .map(str::to_owned)
        .unwrap_or(name)
}

/// The guest PC of a `-d exec` line: `Trace 0: 0x... [00000000/ffff000040081234/...] ...`.
pub fn trace_pc(line: &str) -> Option<u64> {
    let rest = line.strip_prefix("Trace ")?;
    let bracket = &rest[rest.find('[')? + 1..];
    let mut fields = bracket.split('/');
    fields.next()?;
    u64::from_str_radix(fields.next()?, 16).ok()
}

/// Memory routines whose cost only means something per caller: their instructions are
/// charged to "memcpy <- caller" (the function that branched to them).
const BY_CALLER: [&str; 4] = ["memcpy", "memset", "memmove", "memcmp"];

/// Instruction counts per function within the marked window of a trace.
pub fn count_window(
    lines: impl Iterator<Item = String>,
    mark: u64,
    name_of: impl Fn(u64) -> String,
) -> std::result::Result<(u64, Vec<(String, u64)>), String> {
    let mut marks = 0;
    let mut names: HashMap<u64, String> = HashMap::new();
    let mut per_function: HashMap<String, u64> = HashMap::new();
    let mut total = 0u64;
    let mut previous: Option<String> = None;
    let mut caller: Option<String> = None;
    for line in lines {
        let Some(pc) = trace_pc(&line) else { continue };
        if pc == mark {
            marks += 1;
            if marks == 2 {
                break;
            }
            continue;
        }
        if marks != 1 {
            continue;
        }
        let name = names.entry(pc).or_insert_with(|| name_of(pc)).clone();
        let charged = if BY_CALLER.contains(&name.as_str()) {
            if previous.as_deref() != Some(name.as_str()) {
                caller = previous.clone();
            }
            format!("{name} <- {}", caller.as_deref().unwrap_or("?"))
        } else {
            name.clone()
        };
        *per_function.entry(charged).or_default() += 1;
        total += 1;
        previous = Some(name);
    }
    if marks < 2 {
        return Err(format!(
            "the trace holds {marks} execution(s) of the window mark, not 2"
        ));
    }
    let mut rows: Vec<(String, u64)> = per_function.into_iter().collect();
    rows.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    Ok((total, rows))
}

fn read_symbols(path: &Path) -> Result<Symbols> {
    let data = std::fs::read(path)
        .map_err(|e| Error::io(format_args!("reading {}", path.display()), e))?;
    Symbols::from_elf(&data).map_err(|e| Error::new(format!("{}: {e}", path.display())))
}

pub fn run(benchmark: &str, iterations: u64, top: usize) -> Result<u8> {
    prereq::ensure_rust_targets()?;
    prereq::ensure_qemu()?;
    let image = kernel::build()?;
    let initrd = kernel::initrd()?;
    let kernel_symbols = read_symbols(&kernel::elf_path())?;
    let program = target_dir()
        .join(crate::USER_TARGET)
        .join("release")
        .join(crate::bench::PROGRAM);
    let user_symbols = read_symbols(&program)?;
    let mark = user_symbols
        .address_of(MARK)
        .ok_or_else(|| Error::new(format!("{}: no symbol {MARK}", program.display())))?;

    let machine = Machine::resolve(
        Board::Virt,
        MachineOptions {
            smp: Some(1),
            gic: Some(qemu::Gic::V2),
            ..MachineOptions::default()
        },
    )?;
    let boot = Boot {
        kernel: image,
        initrd: Some(initrd),
        dtb: None,
        bootargs: format!(
            "init={} loglevel=warn -- profile {benchmark} {iterations}",
            crate::bench::PROGRAM
        ),
        gdb: false,
    };
    let logs = target_dir().join("test-logs");
    let trace = logs.join("profile-trace.log");
    let mut args = qemu::command_line(&machine, &boot);
    let trace_arg = trace.display().to_string();
    args.extend(
        [
            "-accel",
            "tcg,one-insn-per-tb=on",
            "-d",
            "exec,nochain",
            "-D",
            &trace_arg,
        ]
        .map(str::to_owned),
    );
    println!("xtask: {}", crate::proc::shell_words(qemu::QEMU, &args));
    let outcome = qemu::run(
        &args,
        Some(Duration::from_secs(600)),
        Console::Capture {
            log: logs.join("profile-console.log"),
            input: None,
            echo: false,
        },
    )?;
    if outcome.status != 0 || !outcome.console.contains("bench: done") {
        return Err(Error::new(format!(
            "the profiled bench run failed (status {}; see target/test-logs/profile-console.log)",
            outcome.status
        )));
    }
    let file = std::fs::File::open(&trace)
        .map_err(|e| Error::io(format_args!("reading {}", trace.display()), e))?;
    let lines = std::io::BufReader::new(file).lines().map_while(|l| l.ok());
    let name_of = |pc: u64| {
        kernel_symbols
            .lookup(pc)
            .or_else(|| user_symbols.lookup(pc))
            .map_or_else(|| format!("?{pc:#x}"), str::to_owned)
    };
    let (total, rows) = count_window(lines, mark, name_of).map_err(Error::new)?;
    // The trace is large (one line per instruction of the whole run); keep only the table.
    let _ = std::fs::remove_file(&trace);
    let per = |n: u64| n as f64 / iterations as f64;
    println!(
        "\n{benchmark}: {:.0} instructions per iteration ({total} in {iterations} iterations, \
         including the benchmark's own timer reads and loop)\n",
        per(total)
    );
    println!("{:>10} {:>6}  function", "per iter", "share");
    for (name, n) in rows.iter().take(top) {
        println!(
            "{:>10.1} {:>5.1}%  {name}",
            per(*n),
            100.0 * *n as f64 / total.max(1) as f64
        );
    }
    if rows.len() > top {
        let rest: u64 = rows.iter().skip(top).map(|(_, n)| n).sum();
        println!(
            "{:>10.1} {:>5.1}%  ({} other functions)",
            per(rest),
            100.0 * rest as f64 / total.max(1) as f64,
            rows.len() - top
        );
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_pc_of_an_exec_trace_line() {
        let line = "Trace 0: 0x7f1c2c000100 [00000000/ffff000040081234/00000011/ff020000] ";
        assert_eq!(trace_pc(line), Some(0xffff_0000_4008_1234));
        assert_eq!(trace_pc("Linking TBs 0x1 [0] index 0 -> 0x2"), None);
        assert_eq!(trace_pc("Trace 0: 0x1 [zz/yy]"), None);
    }

    #[test]
    fn counts_only_between_the_first_two_marks() {
        let t = |pc: u64| format!("Trace 0: 0x0 [00000000/{pc:016x}/0/0] ");
        let lines = [0x10, 0x99, 0x20, 0x24, 0x30, 0x99, 0x20, 0x99]
            .map(t)
            .into_iter();
        let name_of = |pc: u64| if pc < 0x30 { "a".into() } else { "b".into() };
        let (total, rows) = count_window(lines, 0x99, name_of).unwrap();
        assert_eq!(total, 3);
        assert_eq!(rows, vec![("a".to_owned(), 2), ("b".to_owned(), 1)]);
        let lines = [0x99, 0x10, 0x40, 0x44, 0x10, 0x40, 0x99]
            .map(t)
            .into_iter();
        let name_of = |pc: u64| {
            if pc < 0x40 {
                "f".into()
            } else {
                "memcpy".into()
            }
        };
        let (_, rows) = count_window(lines, 0x99, name_of).unwrap();
        assert_eq!(
            rows,
            vec![("memcpy <- f".to_owned(), 3), ("f".to_owned(), 2)]
        );
        let one = [t(0x99), t(0x10)].into_iter();
        assert!(count_window(one, 0x99, |_| String::new()).is_err());
    }
}
