//! Starting a program from the initial RAM disk: a new task, its ELF segments mapped with
//! their permissions (pages shared by two segments get the union; W^X is enforced), a
//! stack laid out as GNU Mach does (argc, argv, NULL, empty envp, NULL, strings), and a
//! first thread at the entry point.

extern crate alloc;

use crate::kern::elf::{Elf, PF_R, PF_W, PF_X};
use crate::kern::task::Task;
use crate::kern::thread::Thread;
use crate::mm::PAGE_SIZE;
use crate::mm::align_down;
use crate::mm::regions::{VM_PROT_EXECUTE, VM_PROT_READ, VM_PROT_WRITE, VmProt};
use crate::mm::vm::VmMap;
use alloc::collections::BTreeMap;
use alloc::format;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;

/// Top of the initial stack and its size.
pub const USER_STACK_TOP: u64 = 0x0000_7fff_ffff_0000;
pub const USER_STACK_SIZE: u64 = 256 * 1024;

fn prot_of(flags: u32) -> VmProt {
    let mut prot = 0;
    if flags & PF_R != 0 {
        prot |= VM_PROT_READ;
    }
    if flags & PF_W != 0 {
        prot |= VM_PROT_WRITE | VM_PROT_READ;
    }
    if flags & PF_X != 0 {
        prot |= VM_PROT_EXECUTE | VM_PROT_READ;
    }
    prot
}

/// Map the program's segments into `map`; returns the entry point.
fn load_segments(map: &mut VmMap, elf: &Elf<'_>) -> Result<u64, String> {
    // Protection of every page any segment touches.
    let mut pages: BTreeMap<u64, VmProt> = BTreeMap::new();
    for seg in elf.segments() {
        let seg = seg.map_err(|e| format!("{e}"))?;
        if seg.memsz == 0 {
            continue;
        }
        let mut page = align_down(seg.vaddr, PAGE_SIZE);
        while page < seg.vaddr + seg.memsz {
            *pages.entry(page).or_insert(0) |= prot_of(seg.flags);
            page += PAGE_SIZE;
        }
    }
    // One region per run of pages with the same protection.
    let mut run: Option<(u64, u64, VmProt)> = None;
    let mut runs = Vec::new();
    for (&page, &prot) in &pages {
        match run {
            Some((start, end, p)) if end == page && p == prot => {
                run = Some((start, end + PAGE_SIZE, p))
            }
            _ => {
                runs.extend(run);
                run = Some((page, page + PAGE_SIZE, prot));
            }
        }
    }
    runs.extend(run);
    for (start, end, prot) in runs {
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
    let mut strings = Vec::new();
    let mut offsets = Vec::new();
    for arg in argv {
        offsets.push(strings.len() as u64);
        strings.extend_from_slice(arg.as_bytes());
        strings.push(0);
    }
    let strings_at = align_down(USER_STACK_TOP - strings.len() as u64, 16);
    // argc, argv[], NULL, envp NULL.
    let words = 1 + argv.len() + 1 + 1;
    let sp = align_down(strings_at - 8 * words as u64, 16);
    let mut block = Vec::with_capacity(8 * words);
    block.extend_from_slice(&(argv.len() as u64).to_le_bytes());
    for off in offsets {
        block.extend_from_slice(&(strings_at + off).to_le_bytes());
    }
    block.extend_from_slice(&0u64.to_le_bytes());
    block.extend_from_slice(&0u64.to_le_bytes());
    let write = |map: &mut VmMap, at: u64, data: &[u8]| {
        map.kernel_write(at, data)
            .map_err(|kr| format!("stack: {kr:?}"))
    };
    write(map, strings_at, &strings)?;
    write(map, sp, &block)?;
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
