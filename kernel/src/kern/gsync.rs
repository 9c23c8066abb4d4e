//! gsync (GNU Mach `kern/gsync.c`): futex-like waits on 32-bit words of user memory,
//! `gsync_wait`, `gsync_wake` and `gsync_requeue` of `gnumach.defs` (served by
//! `server/gnumach.rs`). The rules (flags, alignment, the value check, the return codes,
//! how many a requeue wakes and moves) are plain functions tested on the host; the mechanism
//! makes each waited-on word an event of the kernel's wait queues (`sched::waitq`) and uses
//! `assert_wait`, `thread_wakeup` and `thread_requeue` on it. Nothing is allocated per
//! waiter: a waiting thread's links live in the thread, so waiters cost no kernel memory
//! beyond the thread itself.
//!
//! Keys. A task-local wait is keyed by the task's address space and the address, as GNU
//! Mach keys it by map and address. A `GSYNC_SHARED` wait is keyed by the physical address
//! of the word (frame and offset): GNU Mach keys it by VM object and offset; armach's memory
//! is never paged out and never copied on write, so the frame is the memory's identity:
//! shared memory (`mm::object`: a `VM_INHERIT_SHARE` region, a proxy mapped with `vm_map`)
//! has one frame in every task that maps it, and its waits and wakes meet there whichever
//! task's map the address was given in. The frame cannot change under a waiter: it is
//! freed only with the last mapping of the memory.
//!
//! Atomicity. A wait is asserted before the value is read, both under the address space's
//! lock: a waker that changes the word before the read makes the wait fail its check; one
//! that changes it after finds the waiter on its queue (the bucket lock orders the two).
//! `GSYNC_MUTATE` stores under the same lock before waking.
//!
//! Blocking. A kernel server call must not block (`server::kobject`): `gsync_wait` only
//! asserts the wait, and `server::kernel_server` blocks the caller once the reply is made,
//! then writes the wait's outcome ([`wait_code`]) into the reply.

use crate::kern::sched::wait::WaitResult;
use mach_abi::KernReturn;
use mach_abi::gnumach::{GSYNC_BROADCAST, GSYNC_MUTATE, GSYNC_QUAD, GSYNC_SHARED, GSYNC_TIMED};

/// A request's flags. Bits a routine does not use are ignored, as GNU Mach ignores them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Flags(pub i32);

impl Flags {
    pub fn shared(self) -> bool {
        self.0 & GSYNC_SHARED != 0
    }
    pub fn quad(self) -> bool {
        self.0 & GSYNC_QUAD != 0
    }
    pub fn timed(self) -> bool {
        self.0 & GSYNC_TIMED != 0
    }
    pub fn broadcast(self) -> bool {
        self.0 & GSYNC_BROADCAST != 0
    }
    pub fn mutate(self) -> bool {
        self.0 & GSYNC_MUTATE != 0
    }
}

/// GNU Mach's first check of every address: a 32-bit word's alignment, else
/// `KERN_INVALID_ADDRESS` (as `gsync.c`, not `KERN_INVALID_ARGUMENT`).
pub fn check_aligned(addr: u64) -> Result<(), KernReturn> {
    if addr.is_multiple_of(4) {
        Ok(())
    } else {
        Err(KernReturn::InvalidAddress)
    }
}

/// The bytes a wait reads: the word, and with `GSYNC_QUAD` the next one too.
pub fn compared_len(flags: Flags) -> usize {
    if flags.quad() { 8 } else { 4 }
}

/// Whether the bytes read (`compared_len` of them, little-endian words) hold the values
/// the waiter expects.
pub fn values_match(read: &[u8], val1: u32, val2: u32, flags: Flags) -> bool {
    let word = |i: usize| {
        read.get(4 * i..4 * i + 4)
            .and_then(|b| b.try_into().ok())
            .map(u32::from_le_bytes)
    };
    word(0) == Some(val1) && (!flags.quad() || word(1) == Some(val2))
}

/// The timeout of a wait in milliseconds, if it has one (`GSYNC_TIMED`; 0 ms times out at
/// the next tick, as GNU Mach's rounding up to whole ticks does).
pub fn timeout_ms(flags: Flags, msec: u32) -> Option<u64> {
    flags.timed().then_some(u64::from(msec))
}

/// `gsync_wait`'s answer for how its wait ended (GNU Mach: woken is success, interrupted
/// is `KERN_INTERRUPTED`, anything else `KERN_TIMEDOUT`).
pub fn wait_code(result: WaitResult) -> KernReturn {
    match result {
        WaitResult::Awakened => KernReturn::Success,
        WaitResult::Interrupted => KernReturn::Interrupted,
        WaitResult::TimedOut | WaitResult::Restart => KernReturn::TimedOut,
    }
}

/// A requeue's counts: how many waiters of the source are woken (the longest waiting
/// first) and at most how many of the rest move to the destination. GNU Mach takes
/// `1 + wake_one` waiters (all with `GSYNC_BROADCAST`) and wakes the first of them.
pub fn requeue_counts(wake_one: bool, flags: Flags) -> (usize, usize) {
    let wake = usize::from(wake_one);
    let moved = if flags.broadcast() { usize::MAX } else { 1 };
    (wake, moved)
}

/// What waits on a word are keyed by: the two halves of a wait-queue event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Key {
    /// A task-local word: the task's address space (its lock's address) and the address.
    Local { map: u64, addr: u64 },
    /// A word that may be shared: its physical address.
    Shared { phys: u64 },
}

/// The object half of every shared key: the address of this static, which is no address
/// space, so shared and local keys never meet.
static SHARED_KEYS: u8 = 0;

impl Key {
    /// (object, key) of the wait-queue event.
    pub fn parts(self) -> (u64, u64) {
        match self {
            Key::Local { map, addr } => (map, addr),
            Key::Shared { phys } => (&SHARED_KEYS as *const u8 as u64, phys),
        }
    }
}

#[cfg(target_os = "none")]
pub use mechanism::*;

#[cfg(target_os = "none")]
mod mechanism {
    use super::*;
    use crate::kern::sched::{self, waitq::Event};
    use crate::kern::task::Task;
    use crate::mm::vm::{Access, VmMap};
    use crate::sync::IrqSpinLockGuard;

    fn event(key: Key) -> Event {
        let (object, key) = key.parts();
        Event { object, key }
    }

    /// The task's address space, locked, and its identity for local keys.
    fn map_of(task: &Task) -> Result<(IrqSpinLockGuard<'_, VmMap>, u64), KernReturn> {
        let map = task.map.as_ref().ok_or(KernReturn::InvalidTask)?;
        Ok((map.lock(), map as *const _ as u64))
    }

    /// The key of the word at `addr`, checked for `access` (GNU Mach's `probe_address`: an
    /// address no region allows is `KERN_INVALID_ADDRESS`). A shared key makes the page
    /// present to learn its frame.
    fn key_of(
        map: &mut VmMap,
        identity: u64,
        addr: u64,
        flags: Flags,
        access: Access,
    ) -> Result<Key, KernReturn> {
        check_aligned(addr)?;
        map.check_range(addr, 4, access)
            .map_err(|_| KernReturn::InvalidAddress)?;
        if flags.shared() {
            let frame = map
                .fault(addr, access)
                .map_err(|_| KernReturn::InvalidAddress)?;
            Ok(Key::Shared {
                phys: frame.as_u64() + addr % crate::mm::PAGE_SIZE,
            })
        } else {
            Ok(Key::Local {
                map: identity,
                addr,
            })
        }
    }

    /// `gsync_wait` up to the block: check, assert the caller's wait on the word, read it.
    /// `Ok` means the wait is asserted and the caller must block (`block`); on any error
    /// nothing waits.
    pub fn wait_prepare(
        task: &Task,
        addr: u64,
        val1: u32,
        val2: u32,
        msec: u32,
        flags: Flags,
    ) -> Result<(), KernReturn> {
        let (mut map, identity) = map_of(task)?;
        let key = key_of(&mut map, identity, addr, flags, Access::Read)?;
        let deadline = timeout_ms(flags, msec)
            .map(|ms| crate::arch::timer::counter().saturating_add(sched::ms_to_ticks(ms)));
        let seq = sched::assert_wait(Some(event(key)), deadline, true)
            .map_err(|_| KernReturn::Failure)?;
        let mut read = [0u8; 8];
        let len = compared_len(flags);
        let checked = match map.copyin(addr, &mut read[..len]) {
            Err(_) => Err(KernReturn::InvalidAddress),
            Ok(()) if !values_match(&read[..len], val1, val2, flags) => {
                Err(KernReturn::InvalidArgument)
            }
            Ok(()) => Ok(()),
        };
        drop(map);
        if checked.is_err() {
            // Nothing waits: the wait ends here (had a waker ended it already, this
            // changes nothing, and the answer is still the check's).
            sched::clear_wait(&sched::current_thread(), Some(seq), WaitResult::Interrupted);
        }
        checked
    }

    /// Block the caller in the wait `wait_prepare` asserted; the routine's return code.
    pub fn block() -> KernReturn {
        let me = sched::current_thread();
        if me.should_terminate() {
            sched::clear_wait(&me, None, WaitResult::Interrupted);
        }
        wait_code(sched::thread_block())
    }

    /// `gsync_wake`: with `GSYNC_MUTATE` store `val` (the word must be writable), then wake
    /// the longest waiter, or all of them with `GSYNC_BROADCAST`. `KERN_INVALID_ARGUMENT`
    /// when nobody waited (GNU Mach's answer; the store is done all the same).
    pub fn wake(task: &Task, addr: u64, val: u32, flags: Flags) -> Result<(), KernReturn> {
        let access = if flags.mutate() {
            Access::Write
        } else {
            Access::Read
        };
        let (mut map, identity) = map_of(task)?;
        let key = key_of(&mut map, identity, addr, flags, access)?;
        if flags.mutate() {
            map.copyout(addr, &val.to_le_bytes())
                .map_err(|_| KernReturn::InvalidAddress)?;
        }
        drop(map);
        match sched::thread_wakeup(event(key), flags.broadcast()) {
            0 => Err(KernReturn::InvalidArgument),
            _ => Ok(()),
        }
    }

    /// `gsync_requeue`: wake one waiter of `src` if `wake_one`, then move one more (all
    /// the rest with `GSYNC_BROADCAST`) to wait on `dst`. `KERN_INVALID_ARGUMENT` when
    /// nobody waited on `src`.
    pub fn requeue(
        task: &Task,
        src: u64,
        dst: u64,
        wake_one: bool,
        flags: Flags,
    ) -> Result<(), KernReturn> {
        check_aligned(src)?;
        check_aligned(dst)?;
        let (from, to) = {
            let (mut map, identity) = map_of(task)?;
            let from = key_of(&mut map, identity, src, flags, Access::Read)?;
            let to = key_of(&mut map, identity, dst, flags, Access::Read)?;
            (event(from), event(to))
        };
        let (wake, max_moved) = requeue_counts(wake_one, flags);
        let woken = if wake > 0 {
            sched::thread_wakeup(from, false)
        } else {
            0
        };
        let moved = sched::waitq::thread_requeue(from, to, max_moved);
        if woken + moved == 0 {
            return Err(KernReturn::InvalidArgument);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_are_gnu_mach_s_bits_and_others_are_ignored() {
        let f = Flags(GSYNC_SHARED | GSYNC_QUAD | 0x100);
        assert!(f.shared() && f.quad());
        assert!(!f.timed() && !f.broadcast() && !f.mutate());
        assert_eq!(
            (
                GSYNC_SHARED,
                GSYNC_QUAD,
                GSYNC_TIMED,
                GSYNC_BROADCAST,
                GSYNC_MUTATE
            ),
            (1, 2, 4, 8, 16)
        );
    }

    #[test]
    fn unaligned_words_are_invalid_addresses() {
        assert_eq!(check_aligned(0x1000), Ok(()));
        assert_eq!(check_aligned(0x1004), Ok(()));
        for a in [0x1001, 0x1002, 0x1003] {
            assert_eq!(check_aligned(a), Err(KernReturn::InvalidAddress));
        }
    }

    #[test]
    fn values_compare_one_word_or_two() {
        let mut bytes = [0u8; 8];
        bytes[..4].copy_from_slice(&7u32.to_le_bytes());
        bytes[4..].copy_from_slice(&9u32.to_le_bytes());
        let one = Flags(0);
        let quad = Flags(GSYNC_QUAD);
        assert_eq!(compared_len(one), 4);
        assert_eq!(compared_len(quad), 8);
        assert!(values_match(&bytes[..4], 7, 12345, one));
        assert!(!values_match(&bytes[..4], 8, 0, one));
        assert!(values_match(&bytes, 7, 9, quad));
        assert!(!values_match(&bytes, 7, 8, quad));
        assert!(!values_match(&bytes, 6, 9, quad));
        // Too few bytes never match.
        assert!(!values_match(&bytes[..4], 7, 9, quad));
    }

    #[test]
    fn timeouts_only_with_gsync_timed() {
        assert_eq!(timeout_ms(Flags(0), 100), None);
        assert_eq!(timeout_ms(Flags(GSYNC_TIMED), 100), Some(100));
        assert_eq!(timeout_ms(Flags(GSYNC_TIMED), 0), Some(0));
    }

    #[test]
    fn wait_results_become_gnu_mach_s_codes() {
        assert_eq!(wait_code(WaitResult::Awakened), KernReturn::Success);
        assert_eq!(wait_code(WaitResult::TimedOut), KernReturn::TimedOut);
        assert_eq!(wait_code(WaitResult::Interrupted), KernReturn::Interrupted);
        assert_eq!(wait_code(WaitResult::Restart), KernReturn::TimedOut);
    }

    #[test]
    fn requeue_wakes_at_most_one_and_moves_one_or_all() {
        assert_eq!(requeue_counts(false, Flags(0)), (0, 1));
        assert_eq!(requeue_counts(true, Flags(0)), (1, 1));
        assert_eq!(
            requeue_counts(true, Flags(GSYNC_BROADCAST)),
            (1, usize::MAX)
        );
        assert_eq!(
            requeue_counts(false, Flags(GSYNC_BROADCAST)),
            (0, usize::MAX)
        );
    }

    #[test]
    fn shared_and_local_keys_never_meet() {
        let local = Key::Local {
            map: 0x1000,
            addr: 0x4000,
        };
        let shared = Key::Shared { phys: 0x4000 };
        assert_ne!(local.parts(), shared.parts());
        assert_eq!(shared.parts(), Key::Shared { phys: 0x4000 }.parts());
        assert_ne!(
            local.parts(),
            Key::Local {
                map: 0x2000,
                addr: 0x4000
            }
            .parts()
        );
    }
}
