//! Starting a program from the initial RAM disk: a new task, its ELF segments mapped with
//! their permissions (pages shared by two segments get the union; W^X is enforced), a
//! stack laid out as GNU Mach does (argc, argv, NULL, empty envp, NULL, strings), and a
//! first thread at the entry point. The layout is `armach_exec::image`'s, which libmach's
//! user-space loader follows too.

extern crate alloc;

use crate::kern::elf::Elf;
use crate::kern::task::Task;
use crate::kern::thread::Thread;
use crate::mm::regions::{VM_PROT_READ, VM_PROT_WRITE, VmProt};
use crate::mm::vm::VmMap;
use alloc::format;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use armach_exec::image::{page_runs, stack};

pub use armach_exec::image::{USER_STACK_SIZE, USER_STACK_TOP};

/// Map the program's segments into `map`; returns the entry point.
fn load_segments(map: &mut VmMap, elf: &Elf<'_>) -> Result<u64, String> {
    for run in page_runs(elf).map_err(|e| format!("{e}"))? {
        let (start, end, prot) = (run.start, run.end, run.prot as VmProt);
        map.allocate_fixed(start, end, prot)
            .map_err(|kr| format!("cannot map {start:#x}-{end:#x} (protection {prot}): {kr:?}"))?;
    }
    for seg in elf.segments().flatten() {
        map.kernel_write(seg.vaddr, elf.data(&seg))
            .map_err(|kr| format!("cannot fill segment: {kr:?}"))?;
    }
    Ok(elf.entry)
}

/// Lay out the start-up stack; returns the initial `sp`.
fn build_stack(map: &mut VmMap, argv: &[&str]) -> Result<u64, String> {
    let base = USER_STACK_TOP - USER_STACK_SIZE;
    map.allocate_fixed(base, USER_STACK_TOP, VM_PROT_READ | VM_PROT_WRITE)
        .map_err(|kr| format!("cannot map the stack: {kr:?}"))?;
    let (sp, bytes) = stack(USER_STACK_TOP, argv);
    map.kernel_write(sp, &bytes)
        .map_err(|kr| format!("stack: {kr:?}"))?;
    Ok(sp)
}

/// Load `image` as a new task called `name` with arguments `argv`, with its first thread
/// made but not yet runnable: the caller hands it to [`start`] (so that several programs can
/// all exist before any of them runs, and none can end the run before the others start).
/// `argv` is given the new task (to name ports in its space).
pub fn load_program(
    name: &str,
    image: &[u8],
    argv: &dyn Fn(&Task) -> Vec<String>,
) -> Result<(Arc<Task>, Arc<Thread>), String> {
    let elf = Elf::parse(image).map_err(|e| format!("{name}: {e}"))?;
    let task = Task::new_user(name).ok_or_else(|| format!("{name}: out of memory for a task"))?;
    let r = load_into(&task, name, &elf, argv);
    if r.is_err() {
        // Breaks the task's cycle with its kernel port, so that it is freed.
        task.ipc_teardown();
    }
    r.map(|thread| (task, thread))
}

fn load_into(
    task: &Arc<Task>,
    name: &str,
    elf: &Elf<'_>,
    argv: &dyn Fn(&Task) -> Vec<String>,
) -> Result<Arc<Thread>, String> {
    let argv = argv(task);
    let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
    let (entry, sp) = {
        let mut map = task.map.as_ref().expect("a user task has a map").lock();
        let entry = load_segments(&mut map, elf).map_err(|e| format!("{name}: {e}"))?;
        let sp = build_stack(&mut map, &argv).map_err(|e| format!("{name}: {e}"))?;
        (entry, sp)
    };
    Thread::new_user(task, entry, sp, 0).map_err(|kr| format!("{name}: no thread: {kr:?}"))
}

/// Make a loaded program's first thread runnable.
pub fn start(thread: Arc<Thread>) {
    crate::kern::sched::thread_start(thread);
}
