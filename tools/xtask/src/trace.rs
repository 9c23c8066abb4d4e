//! `cargo xtask trace`: boots `tracew` (two tasks: the driver and its IPC peer), reads
//! the scheduler events it prints (`tests/src/bin/tracew.rs` describes the lines), and
//! writes them as a Chrome trace-event JSON file (what Perfetto and chrome://tracing open)
//! and, if asked, an SVG timeline drawn here. Also the checks `cargo xtask test` applies
//! to a trace: the JSON parses, every CPU has its track, times only grow along a track,
//! and every migration's flow runs between the CPUs the kernel's counters report.
//!
//! The JSON, per workload a process (`pid` 1, 2, ...) whose threads are the CPUs (`tid` =
//! CPU index, named by `thread_name` metadata): a complete event (`X`) for each stretch a
//! thread ran on a CPU (idle threads left out), instant events (`i`) for wake-ups, balance
//! passes, IPC handoffs and idle sleeps, and a flow (`s` on the source CPU's track at the
//! end of the thread's last stretch there, `f` with `bp: "e"` on the destination's at the
//! start of its next) per migration, all times in microseconds from the workload's first
//! event.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

use serde_json::{Value, json};

use crate::qemu::{self, Board, Console};
use crate::{Error, MachineArgs, Result, kernel, prereq, target_dir};

/// The program and how it is started (two tasks: the first to publish is the peer).
pub const PROGRAM: &str = "tracew";
pub const INIT: &str = "init=tracew,tracew";
/// The workloads `tracew` knows.
pub const WORKLOADS: [&str; 2] = ["spread", "pingpong"];

/// One event line (`ev CPU TIME KIND ARGS`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ev {
    pub cpu: u32,
    pub time: u64,
    pub kind: Kind,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Kind {
    Switch {
        from: u32,
        to: u32,
        how: u32,
    },
    Wake {
        thread: u32,
        cpu: u32,
        woke: bool,
    },
    Migrate {
        thread: u32,
        from: u32,
        to: u32,
        why: String,
    },
    Balance {
        moved: u32,
        set: u32,
    },
    IdleEnter,
    IdleExit,
    Handoff {
        from: u32,
        to: u32,
    },
    Unknown(String),
}

/// A worker's own view of its migrations (`trace-check`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Check {
    pub thread: u32,
    pub migrations: u64,
    pub last: u32,
    pub t0: u64,
    pub t1: u64,
}

/// A CPU's counters over the workload (`trace-cpu`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CpuInfo {
    pub events: u64,
    pub lost: u64,
    pub migration_in: u64,
    pub migration_out: u64,
}

/// One workload's trace.
#[derive(Clone, Debug, Default)]
pub struct Block {
    pub workload: String,
    pub cpus: u32,
    pub frequency: u64,
    pub threads: BTreeMap<u32, String>,
    pub events: Vec<Ev>,
    pub cpu_info: BTreeMap<u32, CpuInfo>,
    pub checks: Vec<Check>,
}

/// `key=value` words of a line.
fn fields(words: &[&str]) -> BTreeMap<String, String> {
    words
        .iter()
        .filter_map(|w| w.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

fn num<T: std::str::FromStr>(
    f: &BTreeMap<String, String>,
    key: &str,
    line: &str,
) -> std::result::Result<T, String> {
    f.get(key)
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| format!("`{line}`: no number {key}="))
}

fn parse_event(line: &str) -> std::result::Result<Ev, String> {
    let words: Vec<&str> = line.split_whitespace().collect();
    let bad = || format!("`{line}`: not an event line");
    if words.len() < 4 || words[0] != "ev" {
        return Err(bad());
    }
    let cpu = words[1].parse().map_err(|_| bad())?;
    let time = words[2].parse().map_err(|_| bad())?;
    let f = fields(&words[4..]);
    let n = |k: &str| num::<u32>(&f, k, line);
    let kind = match words[3] {
        "switch" => Kind::Switch {
            from: n("from")?,
            to: n("to")?,
            how: n("how")?,
        },
        "wake" => Kind::Wake {
            thread: n("thread")?,
            cpu: n("cpu")?,
            woke: n("woke")? != 0,
        },
        "migrate" => Kind::Migrate {
            thread: n("thread")?,
            from: n("from")?,
            to: n("to")?,
            why: f.get("why").cloned().unwrap_or_default(),
        },
        "balance" => Kind::Balance {
            moved: n("moved")?,
            set: n("set")?,
        },
        "idle-enter" => Kind::IdleEnter,
        "idle-exit" => Kind::IdleExit,
        "handoff" => Kind::Handoff {
            from: n("from")?,
            to: n("to")?,
        },
        other => Kind::Unknown(other.to_owned()),
    };
    Ok(Ev { cpu, time, kind })
}

/// The trace blocks of a console log, in order.
pub fn parse(console: &str) -> std::result::Result<Vec<Block>, String> {
    let mut blocks = Vec::new();
    let mut current: Option<Block> = None;
    for raw in console.lines() {
        let line = raw.trim_end_matches('\r').trim();
        let words: Vec<&str> = line.split_whitespace().collect();
        let Some(&first) = words.first() else {
            continue;
        };
        match first {
            "trace-begin" => {
                if current.is_some() {
                    return Err(format!("`{line}` inside another block"));
                }
                let f = fields(&words);
                current = Some(Block {
                    workload: words.get(1).map_or_else(String::new, |w| (*w).to_owned()),
                    cpus: num(&f, "cpus", line)?,
                    frequency: num(&f, "frequency", line)?,
                    ..Block::default()
                });
            }
            "trace-end" => match current.take() {
                Some(b) => blocks.push(b),
                None => return Err(format!("`{line}` without trace-begin")),
            },
            "trace-thread" | "trace-cpu" | "trace-check" | "ev" => {
                let Some(b) = current.as_mut() else {
                    continue;
                };
                let f = fields(&words);
                match first {
                    "trace-thread" => {
                        let tid = words.get(1).and_then(|w| w.parse().ok());
                        let name = words.get(2);
                        match (tid, name) {
                            (Some(tid), Some(name)) => {
                                b.threads.insert(tid, (*name).to_owned());
                            }
                            _ => return Err(format!("`{line}`: not TID NAME")),
                        }
                    }
                    "trace-cpu" => {
                        let cpu = words
                            .get(1)
                            .and_then(|w| w.parse().ok())
                            .ok_or_else(|| format!("`{line}`: no CPU"))?;
                        b.cpu_info.insert(
                            cpu,
                            CpuInfo {
                                events: num(&f, "events", line)?,
                                lost: num(&f, "lost", line)?,
                                migration_in: num(&f, "migration_in", line)?,
                                migration_out: num(&f, "migration_out", line)?,
                            },
                        );
                    }
                    "trace-check" => b.checks.push(Check {
                        thread: words
                            .get(1)
                            .and_then(|w| w.parse().ok())
                            .ok_or_else(|| format!("`{line}`: no thread"))?,
                        migrations: num(&f, "migrations", line)?,
                        last: num(&f, "last", line)?,
                        t0: num(&f, "t0", line)?,
                        t1: num(&f, "t1", line)?,
                    }),
                    _ => b.events.push(parse_event(line)?),
                }
            }
            _ => {}
        }
    }
    if let Some(b) = current {
        return Err(format!("trace block `{}` has no trace-end", b.workload));
    }
    Ok(blocks)
}

/// A stretch of a thread on a CPU.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Slice {
    pub cpu: u32,
    pub thread: u32,
    pub start: u64,
    pub end: u64,
}

/// A migration with the stretches it joins.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Flow {
    pub thread: u32,
    pub from: u32,
    pub to: u32,
    pub why: String,
    /// When the thread left `from` (its last stretch there ended), if the trace saw it.
    pub left: Option<u64>,
    /// When it started on `to`.
    pub arrived: u64,
}

/// What the converter derives from a block: the stretches, the idle threads, the flows,
/// and the time span.
pub struct Timeline {
    pub slices: Vec<Slice>,
    pub idle: BTreeSet<u32>,
    pub flows: Vec<Flow>,
    pub start: u64,
    pub end: u64,
}

impl Block {
    /// Each CPU's events in time order (a CPU's ring is in the order it wrote them).
    fn per_cpu(&self) -> BTreeMap<u32, Vec<&Ev>> {
        let mut m: BTreeMap<u32, Vec<&Ev>> = BTreeMap::new();
        for e in &self.events {
            m.entry(e.cpu).or_default().push(e);
        }
        for v in m.values_mut() {
            v.sort_by_key(|e| e.time);
        }
        m
    }

    pub fn timeline(&self) -> Timeline {
        let start = self.events.iter().map(|e| e.time).min().unwrap_or(0);
        let end = self.events.iter().map(|e| e.time).max().unwrap_or(start);
        let mut slices = Vec::new();
        let mut idle = BTreeSet::new();
        for (&cpu, evs) in &self.per_cpu() {
            // What runs from the start: the first switch's `from`.
            let mut running: Option<(u32, u64)> = evs.iter().find_map(|e| match e.kind {
                Kind::Switch { from, .. } => Some((from, start)),
                _ => None,
            });
            for e in evs {
                match e.kind {
                    Kind::Switch { from, to, .. } => {
                        if let Some((t, since)) = running.take() {
                            let thread = if t == from { t } else { from };
                            slices.push(Slice {
                                cpu,
                                thread,
                                start: since,
                                end: e.time,
                            });
                        }
                        running = Some((to, e.time));
                    }
                    Kind::IdleEnter | Kind::IdleExit => {
                        if let Some((t, _)) = running {
                            idle.insert(t);
                        }
                    }
                    _ => {}
                }
            }
            if let Some((thread, since)) = running {
                slices.push(Slice {
                    cpu,
                    thread,
                    start: since,
                    end,
                });
            }
        }
        slices.sort_by_key(|s| (s.cpu, s.start));
        let mut flows = Vec::new();
        for e in &self.events {
            if let Kind::Migrate {
                thread,
                from,
                to,
                ref why,
            } = e.kind
            {
                let left = slices
                    .iter()
                    .filter(|s| s.thread == thread && s.cpu == from && s.end <= e.time)
                    .map(|s| s.end)
                    .max();
                flows.push(Flow {
                    thread,
                    from,
                    to,
                    why: why.clone(),
                    left,
                    arrived: e.time,
                });
            }
        }
        flows.sort_by_key(|f| f.arrived);
        Timeline {
            slices,
            idle,
            flows,
            start,
            end,
        }
    }

    pub fn thread_name(&self, tid: u32, idle: &BTreeSet<u32>) -> String {
        match self.threads.get(&tid) {
            Some(n) => n.clone(),
            None if idle.contains(&tid) => "idle".to_owned(),
            None => format!("thread {tid}"),
        }
    }

    /// Counter ticks from the start, in microseconds.
    fn us(&self, t: u64, start: u64) -> f64 {
        let ticks = t.saturating_sub(start) as f64;
        (ticks * 1e6 / self.frequency.max(1) as f64 * 1000.0).round() / 1000.0
    }
}

/// The Chrome trace-event JSON of `blocks` (see the module doc).
pub fn chrome_json(blocks: &[Block]) -> Value {
    let mut events = Vec::new();
    let mut flow_id = 0u64;
    for (i, b) in blocks.iter().enumerate() {
        let pid = i as u64 + 1;
        let tl = b.timeline();
        events.push(
            json!({"name": "process_name", "ph": "M", "pid": pid, "tid": 0,
            "args": {"name": format!("{} ({} CPUs)", b.workload, b.cpus)}}),
        );
        events.push(
            json!({"name": "process_sort_index", "ph": "M", "pid": pid, "tid": 0,
            "args": {"sort_index": pid}}),
        );
        for cpu in 0..b.cpus {
            events.push(
                json!({"name": "thread_name", "ph": "M", "pid": pid, "tid": cpu,
                "args": {"name": format!("CPU {cpu}")}}),
            );
            events.push(
                json!({"name": "thread_sort_index", "ph": "M", "pid": pid, "tid": cpu,
                "args": {"sort_index": cpu}}),
            );
        }
        // Per track, everything in time order.
        let mut tracks: BTreeMap<u32, Vec<(f64, Value)>> = BTreeMap::new();
        for s in tl.slices.iter().filter(|s| !tl.idle.contains(&s.thread)) {
            let ts = b.us(s.start, tl.start);
            tracks.entry(s.cpu).or_default().push((
                ts,
                json!({
                "name": b.thread_name(s.thread, &tl.idle), "cat": "run", "ph": "X",
                "ts": ts, "dur": b.us(s.end, s.start), "pid": pid, "tid": s.cpu,
                "args": {"thread": s.thread}}),
            ));
        }
        for e in &b.events {
            let ts = b.us(e.time, tl.start);
            let (name, args) = match &e.kind {
                Kind::Wake { thread, cpu, woke } => (
                    format!("wake {} -> CPU {cpu}", b.thread_name(*thread, &tl.idle)),
                    json!({"thread": thread, "cpu": cpu, "woke": woke}),
                ),
                Kind::Balance { moved, set } => (
                    format!("balance: {moved} moved"),
                    json!({"moved": moved, "set": set}),
                ),
                Kind::Handoff { from, to } => (
                    format!(
                        "handoff {} -> {}",
                        b.thread_name(*from, &tl.idle),
                        b.thread_name(*to, &tl.idle)
                    ),
                    json!({"from": from, "to": to}),
                ),
                Kind::IdleEnter => ("wfi".to_owned(), json!({})),
                Kind::IdleExit => ("wfi end".to_owned(), json!({})),
                _ => continue,
            };
            tracks.entry(e.cpu).or_default().push((
                ts,
                json!({
                "name": name, "cat": "sched", "ph": "i", "s": "t", "ts": ts,
                "pid": pid, "tid": e.cpu, "args": args}),
            ));
        }
        for f in &tl.flows {
            flow_id += 1;
            let arrived = b.us(f.arrived, tl.start);
            // The source end: just inside the thread's last stretch there (or the start).
            let left = f.left.map_or(0.0, |t| (b.us(t, tl.start) - 0.001).max(0.0));
            let name = format!("migrate {}", b.thread_name(f.thread, &tl.idle));
            let args = json!({"thread": f.thread, "from": f.from, "to": f.to, "why": f.why});
            tracks.entry(f.from).or_default().push((
                left,
                json!({
                "name": name, "cat": "migration", "ph": "s", "id": flow_id, "ts": left,
                "pid": pid, "tid": f.from, "args": args}),
            ));
            tracks.entry(f.to).or_default().push((
                arrived,
                json!({
                "name": name, "cat": "migration", "ph": "f", "bp": "e", "id": flow_id,
                "ts": arrived, "pid": pid, "tid": f.to, "args": args}),
            ));
        }
        for (_, mut evs) in tracks {
            evs.sort_by(|a, b| a.0.total_cmp(&b.0));
            events.extend(evs.into_iter().map(|(_, v)| v));
        }
    }
    json!({"traceEvents": events, "displayTimeUnit": "ms"})
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A thread's color: hues spread by a hash of its id.
fn color(tid: u32) -> String {
    let hue = (tid.wrapping_mul(2_654_435_761) >> 16) % 360;
    format!("hsl({hue},65%,55%)")
}

/// A round step for axis ticks about `span / 8` wide.
fn tick_step(span_ms: f64) -> f64 {
    let raw = (span_ms / 8.0).max(1e-6);
    let pow = 10f64.powf(raw.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * pow)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * pow)
}

/// An SVG timeline of `blocks`: per workload a panel, a row per CPU, a rectangle per
/// stretch a thread ran (colored by thread; idle left blank), an arrow per migration from
/// where it left to where it arrived, and a time axis in ms.
pub fn svg(blocks: &[Block]) -> String {
    const WIDTH: f64 = 1000.0;
    const LEFT: f64 = 60.0;
    const ROW: f64 = 26.0;
    const TOP: f64 = 30.0;
    const AXIS: f64 = 34.0;
    let plot = WIDTH - LEFT - 20.0;
    let heights: Vec<f64> = blocks
        .iter()
        .map(|b| TOP + ROW * f64::from(b.cpus) + AXIS)
        .collect();
    let total: f64 = heights.iter().sum::<f64>() + 10.0;
    let mut out = String::new();
    let _ = writeln!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{total}" viewBox="0 0 {WIDTH} {total}" font-family="sans-serif" font-size="11">"#
    );
    out.push_str(
        r#"<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="6" markerHeight="6" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="black"/></marker></defs>"#,
    );
    out.push('\n');
    let _ = writeln!(
        out,
        r#"<rect x="0" y="0" width="{WIDTH}" height="{total}" fill="white"/>"#
    );
    let mut y0 = 0.0;
    for (b, h) in blocks.iter().zip(&heights) {
        let tl = b.timeline();
        let span = tl.end.saturating_sub(tl.start).max(1) as f64;
        let x = |t: u64| LEFT + (t.saturating_sub(tl.start) as f64 / span) * plot;
        let row_y = |cpu: u32| y0 + TOP + ROW * f64::from(cpu);
        let _ = writeln!(
            out,
            r#"<text x="{LEFT}" y="{:.1}" font-size="13" font-weight="bold">{} ({} CPUs, {} migrations)</text>"#,
            y0 + 18.0,
            xml_escape(&b.workload),
            b.cpus,
            tl.flows.len()
        );
        for cpu in 0..b.cpus {
            let y = row_y(cpu);
            let _ = writeln!(
                out,
                r##"<text x="6" y="{:.1}">CPU {cpu}</text><rect x="{LEFT}" y="{:.1}" width="{plot}" height="{:.1}" fill="#f4f4f4"/>"##,
                y + ROW * 0.6,
                y + 2.0,
                ROW - 4.0
            );
        }
        for s in tl.slices.iter().filter(|s| !tl.idle.contains(&s.thread)) {
            let (x0, x1) = (x(s.start), x(s.end));
            let _ = writeln!(
                out,
                r#"<rect class="run" x="{x0:.2}" y="{:.1}" width="{:.2}" height="{:.1}" fill="{}"><title>{} on CPU {}</title></rect>"#,
                row_y(s.cpu) + 3.0,
                (x1 - x0).max(0.5),
                ROW - 6.0,
                color(s.thread),
                xml_escape(&b.thread_name(s.thread, &tl.idle)),
                s.cpu
            );
        }
        for f in &tl.flows {
            let x0 = x(f.left.unwrap_or(tl.start));
            let x1 = x(f.arrived);
            let _ = writeln!(
                out,
                r##"<line class="migration" x1="{x0:.2}" y1="{:.1}" x2="{x1:.2}" y2="{:.1}" stroke="black" stroke-width="1" marker-end="url(#arrow)"><title>{} CPU {} -&gt; CPU {} ({})</title></line>"##,
                row_y(f.from) + ROW / 2.0,
                row_y(f.to) + ROW / 2.0,
                xml_escape(&b.thread_name(f.thread, &tl.idle)),
                f.from,
                f.to,
                xml_escape(&f.why)
            );
        }
        // The axis, in ms from the first event.
        let span_ms = span * 1000.0 / b.frequency.max(1) as f64;
        let step = tick_step(span_ms);
        let axis_y = row_y(b.cpus) + 4.0;
        let _ = writeln!(
            out,
            r#"<line x1="{LEFT}" y1="{axis_y:.1}" x2="{:.1}" y2="{axis_y:.1}" stroke="black"/>"#,
            LEFT + plot
        );
        let mut t = 0.0;
        while t <= span_ms + 1e-9 {
            let tx = LEFT + t / span_ms.max(1e-9) * plot;
            let _ = writeln!(
                out,
                r#"<line x1="{tx:.1}" y1="{axis_y:.1}" x2="{tx:.1}" y2="{:.1}" stroke="black"/><text x="{tx:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
                axis_y + 4.0,
                axis_y + 16.0,
                if step >= 1.0 {
                    format!("{t:.0}")
                } else {
                    format!("{t:.2}")
                }
            );
            t += step;
        }
        let _ = writeln!(
            out,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="end">ms</text>"#,
            LEFT + plot,
            axis_y + 28.0
        );
        y0 += h;
    }
    out.push_str("</svg>\n");
    out
}

/// The checks of a converted trace (see the module doc): `Ok` with a summary, or what
/// failed.
pub fn check(
    blocks: &[Block],
    json_text: &str,
    svg_text: &str,
) -> std::result::Result<String, String> {
    if blocks.is_empty() {
        return Err("no trace block in the console".to_owned());
    }
    let v: Value = serde_json::from_str(json_text).map_err(|e| format!("JSON: {e}"))?;
    let events = v["traceEvents"]
        .as_array()
        .ok_or("JSON: no traceEvents array")?;
    let mut summary = Vec::new();
    for (i, b) in blocks.iter().enumerate() {
        let pid = i as u64 + 1;
        let mine: Vec<&Value> = events.iter().filter(|e| e["pid"] == pid).collect();
        // Every CPU has a named track.
        for cpu in 0..b.cpus {
            let named = mine.iter().any(|e| {
                e["ph"] == "M" && e["name"] == "thread_name" && e["tid"] == u64::from(cpu)
            });
            if !named {
                return Err(format!("{}: no track named for CPU {cpu}", b.workload));
            }
        }
        // Nothing lost: else the counts cannot agree.
        for (cpu, info) in &b.cpu_info {
            if info.lost != 0 {
                return Err(format!(
                    "{}: CPU {cpu} lost {} events",
                    b.workload, info.lost
                ));
            }
        }
        // Times only grow along each track.
        let mut last: BTreeMap<u64, f64> = BTreeMap::new();
        for e in mine.iter().filter(|e| e["ph"] != "M") {
            let (Some(tid), Some(ts)) = (e["tid"].as_u64(), e["ts"].as_f64()) else {
                return Err(format!("{}: an event without tid or ts: {e}", b.workload));
            };
            if ts < *last.get(&tid).unwrap_or(&f64::MIN) {
                return Err(format!(
                    "{}: CPU {tid}'s track goes back in time at {ts} us",
                    b.workload
                ));
            }
            last.insert(tid, ts);
        }
        // Flows: one start and one finish per id, on the migration's CPUs.
        let mut flows: BTreeMap<u64, (Option<&Value>, Option<&Value>)> = BTreeMap::new();
        for e in &mine {
            let slot = flows.entry(e["id"].as_u64().unwrap_or(0));
            match e["ph"].as_str() {
                Some("s") => slot.or_default().0 = Some(e),
                Some("f") => slot.or_default().1 = Some(e),
                _ => {}
            }
        }
        let (mut into, mut out_of): (BTreeMap<u64, u64>, BTreeMap<u64, u64>) = Default::default();
        let mut per_thread: BTreeMap<u64, Vec<(f64, u64)>> = BTreeMap::new();
        for (id, (s, f)) in &flows {
            let (Some(s), Some(f)) = (s, f) else {
                return Err(format!(
                    "{}: flow {id} lacks its start or its end",
                    b.workload
                ));
            };
            let (from, to) = (s["args"]["from"].as_u64(), f["args"]["to"].as_u64());
            if s["tid"].as_u64() != from || f["tid"].as_u64() != to || from == to {
                return Err(format!(
                    "{}: flow {id} runs from track {} to {}, the migration from {from:?} to {to:?}",
                    b.workload, s["tid"], f["tid"]
                ));
            }
            *out_of.entry(from.unwrap_or(0)).or_default() += 1;
            *into.entry(to.unwrap_or(0)).or_default() += 1;
            per_thread
                .entry(f["args"]["thread"].as_u64().unwrap_or(0))
                .or_default()
                .push((f["ts"].as_f64().unwrap_or(0.0), to.unwrap_or(0)));
        }
        // The kernel's per-processor counters over the same stretch.
        for (cpu, info) in &b.cpu_info {
            let (i, o) = (
                into.get(&u64::from(*cpu)).copied().unwrap_or(0),
                out_of.get(&u64::from(*cpu)).copied().unwrap_or(0),
            );
            if (i, o) != (info.migration_in, info.migration_out) {
                return Err(format!(
                    "{}: CPU {cpu}: flows in {i} out {o}, the kernel counted in {} out {}",
                    b.workload, info.migration_in, info.migration_out
                ));
            }
        }
        // Each worker's own count and last processor, read between t0 and t1.
        let tl = b.timeline();
        for c in &b.checks {
            let (lo_us, hi_us) = (b.us(c.t0, tl.start), b.us(c.t1, tl.start));
            let mine = per_thread
                .get(&u64::from(c.thread))
                .cloned()
                .unwrap_or_default();
            let before = |t: f64| mine.iter().filter(|(ts, _)| *ts <= t).count() as u64;
            let (lo, hi) = (before(lo_us), before(hi_us));
            if c.migrations < lo || c.migrations > hi {
                return Err(format!(
                    "{}: thread {} says {} migrations, its flows by then number {lo}..{hi}",
                    b.workload, c.thread, c.migrations
                ));
            }
            // Where it ran last by its own reading: the CPU of its last stretch begun by t0,
            // or of one begun while its `thread_info` call was on the way (t0..t1: the call
            // itself can be moved, and the kernel answers from where it then runs).
            let at_t0 = tl
                .slices
                .iter()
                .filter(|s| s.thread == c.thread && s.start <= c.t0)
                .max_by_key(|s| s.start)
                .map(|s| s.cpu);
            let mut ran: Vec<u32> = at_t0.into_iter().collect();
            ran.extend(
                tl.slices
                    .iter()
                    .filter(|s| s.thread == c.thread && s.start > c.t0 && s.start <= c.t1)
                    .map(|s| s.cpu),
            );
            if !ran.is_empty() && !ran.contains(&c.last) {
                return Err(format!(
                    "{}: thread {} says it last ran on CPU {}, the trace on CPU {ran:?}",
                    b.workload, c.thread, c.last
                ));
            }
        }
        summary.push(format!(
            "{}: {} events, {} migrations",
            b.workload,
            b.events.len(),
            flows.len()
        ));
    }
    // The SVG is XML with a rectangle per stretch drawn.
    let doc = roxmltree::Document::parse(svg_text).map_err(|e| format!("SVG: {e}"))?;
    let rects = doc
        .descendants()
        .filter(|n| n.has_tag_name("rect") && n.attribute("class") == Some("run"))
        .count();
    let stretches: usize = blocks
        .iter()
        .map(|b| {
            let tl = b.timeline();
            tl.slices
                .iter()
                .filter(|s| !tl.idle.contains(&s.thread))
                .count()
        })
        .sum();
    if rects != stretches {
        return Err(format!(
            "SVG: {rects} run rectangles for {stretches} stretches"
        ));
    }
    Ok(summary.join("; "))
}

/// What `cargo xtask test` does with a trace run's console: convert every block, check.
pub fn check_console(console: &str) -> std::result::Result<String, String> {
    let blocks = parse(console)?;
    let json = serde_json::to_string(&chrome_json(&blocks)).map_err(|e| format!("JSON: {e}"))?;
    check(&blocks, &json, &svg(&blocks))
}

/// `cargo xtask trace`: boot `tracew` on the machine given, convert, write.
pub fn run(
    machine: &MachineArgs,
    workload: Option<&str>,
    out: &Path,
    svg_out: Option<&Path>,
    icount: bool,
    timeout: u64,
) -> Result<u8> {
    if let Some(w) = workload
        && !WORKLOADS.contains(&w)
    {
        return Err(Error::new(format!(
            "--workload {w}: not one of {}",
            WORKLOADS.join(", ")
        )));
    }
    let m = qemu::Machine::resolve(machine.board(), machine.options(icount))?;
    prereq::ensure_rust_targets()?;
    prereq::ensure_qemu()?;
    let dtb = match m.board {
        Board::Rpi4 => Some(prereq::ensure_pi4_dtb(&prereq::dtb_cache_dir())?),
        Board::Virt => None,
    };
    let image = kernel::build()?;
    let initrd = kernel::initrd()?;
    let bootargs = match workload {
        Some(w) => format!("{INIT} -- {w}"),
        None => INIT.to_owned(),
    };
    let boot = qemu::Boot {
        kernel: image,
        initrd: Some(initrd),
        dtb,
        bootargs,
        gdb: false,
    };
    let args = qemu::command_line(&m, &boot);
    let log = target_dir().join("trace.log");
    println!("xtask: booting {PROGRAM} (console in {})", log.display());
    let outcome = qemu::run(
        &args,
        Some(Duration::from_secs(timeout)),
        Console::Capture {
            log,
            input: None,
            echo: false,
        },
    )?;
    if outcome.timed_out {
        return Err(Error::new(format!("QEMU timed out after {timeout} s")));
    }
    let converted = write_outputs(&outcome.console, out, svg_out);
    if outcome.status != 0 {
        eprintln!(
            "xtask: guest exited with status {} ({})",
            outcome.status,
            qemu::describe_status(outcome.status)
        );
    }
    Ok(u8::from(outcome.status != 0 || !converted?))
}

/// `cargo xtask trace --log FILE`: convert a saved console.
pub fn convert_log(log: &Path, out: &Path, svg_out: Option<&Path>) -> Result<u8> {
    let console = std::fs::read_to_string(log)
        .map_err(|e| Error::io(format_args!("reading {}", log.display()), e))?;
    Ok(u8::from(!write_outputs(&console, out, svg_out)?))
}

/// Convert `console`, write the JSON (and the SVG), and check them; whether the checks
/// passed.
fn write_outputs(console: &str, out: &Path, svg_out: Option<&Path>) -> Result<bool> {
    let blocks = parse(console).map_err(Error::new)?;
    if blocks.is_empty() {
        return Err(Error::new("the console holds no trace"));
    }
    let json = serde_json::to_string(&chrome_json(&blocks))
        .map_err(|e| Error::new(format!("JSON: {e}")))?;
    std::fs::write(out, &json)
        .map_err(|e| Error::io(format_args!("writing {}", out.display()), e))?;
    println!("xtask: wrote {}", out.display());
    let picture = svg(&blocks);
    if let Some(path) = svg_out {
        std::fs::write(path, &picture)
            .map_err(|e| Error::io(format_args!("writing {}", path.display()), e))?;
        println!("xtask: wrote {}", path.display());
    }
    match check(&blocks, &json, &picture) {
        Ok(summary) => {
            println!("xtask: trace checked: {summary}");
            Ok(true)
        }
        Err(e) => {
            println!("xtask: trace check failed: {e}");
            Ok(false)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two CPUs: thread 7 runs on CPU 0, is pulled to CPU 1 by its idle thread (2), and
    /// ends there; thread 8 runs on CPU 0 after it.
    const CONSOLE: &str = "\
noise before
trace-begin spread cpus=2 frequency=1000000 capacity=4095
trace-thread 7 spin0
trace-thread 8 spin1
ev 0 100 switch from=1 to=7 how=0
ev 0 300 switch from=7 to=8 how=0
ev 0 250 wake thread=8 cpu=0 woke=1
ev 1 100 idle-enter
ev 1 200 idle-exit
ev 1 310 switch from=2 to=7 how=0
ev 1 310 migrate thread=7 from=0 to=1 why=idle-pull
ev 1 500 switch from=7 to=2 how=2
ev 1 600 balance moved=0 set=0
trace-cpu 0 events=3 lost=0 migration_in=0 migration_out=1
trace-cpu 1 events=6 lost=0 migration_in=1 migration_out=0
trace-check 7 migrations=1 last=1 t0=400 t1=420
trace-end spread
";

    #[test]
    fn parses_blocks_and_events() {
        let blocks = parse(CONSOLE).unwrap();
        assert_eq!(blocks.len(), 1);
        let b = &blocks[0];
        assert_eq!(
            (b.workload.as_str(), b.cpus, b.frequency),
            ("spread", 2, 1_000_000)
        );
        assert_eq!(b.events.len(), 9);
        assert_eq!(
            b.events[6].kind,
            Kind::Migrate {
                thread: 7,
                from: 0,
                to: 1,
                why: "idle-pull".to_owned()
            }
        );
        assert_eq!(b.threads[&8], "spin1");
        assert_eq!(b.cpu_info[&1].migration_in, 1);
        assert_eq!(b.checks[0].last, 1);
        assert!(parse("trace-begin x cpus=1 frequency=1\n").is_err());
        assert!(parse("trace-begin x cpus=1 frequency=1\nev 0 zz switch\ntrace-end x\n").is_err());
    }

    #[test]
    fn stretches_idle_threads_and_flows() {
        let b = &parse(CONSOLE).unwrap()[0];
        let tl = b.timeline();
        assert_eq!((tl.start, tl.end), (100, 600));
        assert!(tl.idle.contains(&2));
        let on = |cpu| {
            tl.slices
                .iter()
                .filter(|s| s.cpu == cpu)
                .map(|s| (s.thread, s.start, s.end))
                .collect::<Vec<_>>()
        };
        assert_eq!(on(0), [(1, 100, 100), (7, 100, 300), (8, 300, 600)]);
        assert_eq!(on(1), [(2, 100, 310), (7, 310, 500), (2, 500, 600)]);
        assert_eq!(
            tl.flows,
            [Flow {
                thread: 7,
                from: 0,
                to: 1,
                why: "idle-pull".to_owned(),
                left: Some(300),
                arrived: 310
            }]
        );
    }

    #[test]
    fn json_and_svg_pass_the_checks() {
        let blocks = parse(CONSOLE).unwrap();
        let json = serde_json::to_string(&chrome_json(&blocks)).unwrap();
        let picture = svg(&blocks);
        assert_eq!(
            check(&blocks, &json, &picture),
            Ok("spread: 9 events, 1 migrations".to_owned())
        );
        let v: Value = serde_json::from_str(&json).unwrap();
        let evs = v["traceEvents"].as_array().unwrap();
        let s = evs.iter().find(|e| e["ph"] == "s").unwrap();
        let f = evs.iter().find(|e| e["ph"] == "f").unwrap();
        assert_eq!((s["tid"].as_u64(), f["tid"].as_u64()), (Some(0), Some(1)));
        assert_eq!(s["id"], f["id"]);
        assert_eq!(f["bp"], "e");
        // 7 left CPU 0 at 300 ticks of 1 MHz from 100: 200 us (just inside its stretch).
        assert_eq!(s["ts"].as_f64(), Some(199.999));
        assert_eq!(f["ts"].as_f64(), Some(210.0));
        let x: Vec<&Value> = evs.iter().filter(|e| e["ph"] == "X").collect();
        // Idle threads are not drawn: spin0 twice, spin1 once, and thread 1's empty one.
        assert_eq!(x.len(), 4);
        assert!(
            evs.iter()
                .any(|e| e["ph"] == "M" && e["args"]["name"] == "CPU 1")
        );
    }

    #[test]
    fn checks_catch_a_wrong_count_or_a_bad_track() {
        let blocks = parse(CONSOLE).unwrap();
        let json = serde_json::to_string(&chrome_json(&blocks)).unwrap();
        let picture = svg(&blocks);
        // The kernel counted another migration into CPU 1 that the trace lacks.
        let mut more = blocks.clone();
        more[0].cpu_info.get_mut(&1).unwrap().migration_in = 2;
        assert!(check(&more, &json, &picture).unwrap_err().contains("CPU 1"));
        // The worker says 2 migrations.
        let mut said = blocks.clone();
        said[0].checks[0].migrations = 2;
        assert!(
            check(&said, &json, &picture)
                .unwrap_err()
                .contains("says 2")
        );
        // It says it last ran on CPU 0.
        let mut last = blocks.clone();
        last[0].checks[0].last = 0;
        assert!(
            check(&last, &json, &picture)
                .unwrap_err()
                .contains("last ran")
        );
        // A flow ending on the wrong track.
        let moved = json.replace(r#""ph":"f","pid":1,"tid":1"#, r#""ph":"f","pid":1,"tid":0"#);
        assert_ne!(moved, json);
        assert!(
            check(&blocks, &moved, &picture)
                .unwrap_err()
                .contains("flow 1")
        );
        // Bad JSON, bad SVG, an SVG missing a stretch.
        assert!(
            check(&blocks, "{", &picture)
                .unwrap_err()
                .starts_with("JSON")
        );
        assert!(
            check(&blocks, &json, "<svg")
                .unwrap_err()
                .starts_with("SVG")
        );
        let fewer = picture.replacen(r#"class="run""#, r#"class="other""#, 1);
        assert!(
            check(&blocks, &json, &fewer)
                .unwrap_err()
                .contains("rectangles")
        );
        // Events lost.
        let mut lost = blocks.clone();
        lost[0].cpu_info.get_mut(&0).unwrap().lost = 3;
        assert!(check(&lost, &json, &picture).unwrap_err().contains("lost"));
    }

    #[test]
    fn axis_steps_are_round() {
        assert_eq!(tick_step(80.0), 10.0);
        assert_eq!(tick_step(300.0), 50.0);
        assert_eq!(tick_step(1.0), 0.2);
    }
}
