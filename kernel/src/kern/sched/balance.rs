//! Load-balancing decisions: pure functions over plain data, tested on the host (with a
//! simulator of processors and threads over ticks that drives the same functions the
//! kernel calls). The mechanism is `sched::migrate`.
//!
//! PLACEHOLDER: minimal versions so the mechanism builds; the full, tested policy replaces
//! this file.

use super::stats::BalanceParams;

pub const LOAD_SCALE: u32 = 1000;

pub fn load_average_tick(avg: u32, runnable: u32) -> u32 {
    let target = runnable.saturating_mul(LOAD_SCALE);
    if avg < target {
        avg + (target - avg).div_ceil(8)
    } else {
        avg - (avg - target).div_ceil(8)
    }
}

pub fn warmth_after_running(warmth: u8, ran_ns: u64) -> u8 {
    (warmth as u64 + ran_ns / 40_000).min(255) as u8
}

pub fn warmth_cooled(warmth: u8, off_ns: u64) -> u8 {
    let halvings = off_ns / 5_000_000;
    if halvings >= 8 { 0 } else { warmth >> halvings }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct CpuState {
    pub eligible: bool,
    pub runnable: u32,
    pub movable: u32,
    pub cluster: u32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Move {
    pub from: usize,
    pub to: usize,
    pub count: u32,
}

pub fn next_move(cpus: &[CpuState], params: &BalanceParams) -> Option<Move> {
    let mut busiest: Option<usize> = None;
    let mut idlest: Option<usize> = None;
    for (i, c) in cpus.iter().enumerate() {
        if !c.eligible {
            continue;
        }
        if c.movable > 0 && busiest.is_none_or(|b| c.runnable > cpus[b].runnable) {
            busiest = Some(i);
        }
        if idlest.is_none_or(|b| c.runnable < cpus[b].runnable) {
            idlest = Some(i);
        }
    }
    let (from, to) = (busiest?, idlest?);
    let diff = cpus[from].runnable.saturating_sub(cpus[to].runnable);
    if from == to || diff < params.threshold {
        return None;
    }
    Some(Move {
        from,
        to,
        count: (diff / 2).min(cpus[from].movable),
    })
}

pub fn crosses_cluster(cpus: &[CpuState], m: &Move) -> bool {
    cpus[m.from].cluster != cpus[m.to].cluster
}

pub fn idle_pull_source(me: usize, cpus: &[CpuState]) -> Option<usize> {
    cpus.iter()
        .enumerate()
        .filter(|&(i, c)| i != me && c.eligible && c.runnable >= 2 && c.movable >= 1)
        .max_by_key(|&(_, c)| c.runnable)
        .map(|(i, _)| i)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Candidate {
    pub warmth: u8,
    pub movable: bool,
}

pub fn coldest(candidates: impl Iterator<Item = Candidate>) -> Option<usize> {
    let mut best: Option<(usize, u8)> = None;
    for (i, c) in candidates.enumerate() {
        if c.movable && best.is_none_or(|(_, w)| c.warmth < w) {
            best = Some((i, c.warmth));
        }
    }
    best.map(|(i, _)| i)
}
