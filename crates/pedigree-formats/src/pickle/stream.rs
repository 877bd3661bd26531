//! Streams of pickles: stacked pickles (repeated `pickle.load(f)`, FORMATS-FACTS §1.3),
//! resynchronisation after a break, and re-reading in the other [`ReadMode`]s when framing
//! makes the readers disagree (§1.2).

use super::machine::{Machine, Tracer};
use super::opcodes;
use super::{Anomaly, AnomalyKind, Options, PickleReport, ReadMode, StreamReport};

/// Discarded resynchronisation attempts per stream (binary data is full of `80 02`).
const MAX_RESYNC_ATTEMPTS: usize = 4096;

/// Runs one pickle from `start`, in `mode`, to its STOP or its first error.
pub fn analyze_one(data: &[u8], start: usize, mode: ReadMode, opts: &Options) -> PickleReport {
    Machine::new(data, start, mode, opts).run()
}

/// Runs every pickle in `data` as repeated `pickle.load(f)` calls would, resynchronising after
/// breaks; when a FRAME makes the readers disagree, the other modes' readings are appended
/// (each report carries its `mode`).
pub fn analyze_stream(data: &[u8], opts: &Options, mode: ReadMode) -> StreamReport {
    let mut pickles = walk(data, opts, mode, &mut NoSink);
    let diverges = pickles.iter().any(|p| {
        p.anomalies.iter().any(|a| {
            matches!(
                a.kind,
                AnomalyKind::FrameStraddle
                    | AnomalyKind::FrameEarly
                    | AnomalyKind::FrameOverrun
                    | AnomalyKind::FrameRunsPastStop { .. }
            )
        })
    });
    if diverges {
        for other in [
            ReadMode::InMemory,
            ReadMode::FileNoPeek,
            ReadMode::PurePython,
        ] {
            if other != mode {
                pickles.extend(walk(data, opts, other, &mut NoSink));
            }
        }
    }
    StreamReport { pickles }
}

/// Where the walker reports progress (the disassembler buffers lines per attempt and keeps
/// them only for pickles that are kept).
pub(crate) trait Sink {
    fn tracer(&mut self) -> Option<&mut dyn Tracer>;
    fn begin(&mut self, _start: usize, _resync: bool) {}
    fn keep(&mut self, _keep: bool) {}
    fn note(&mut self, _line: String) {}
}

struct NoSink;
impl Sink for NoSink {
    fn tracer(&mut self) -> Option<&mut dyn Tracer> {
        None
    }
}

fn run(
    data: &[u8],
    start: usize,
    mode: ReadMode,
    opts: &Options,
    sink: &mut dyn Sink,
) -> PickleReport {
    let m = Machine::new(data, start, mode, opts);
    match sink.tracer() {
        Some(t) => m.with_tracer(t).run(),
        None => m.run(),
    }
}

pub(crate) fn walk(
    data: &[u8],
    opts: &Options,
    mode: ReadMode,
    sink: &mut dyn Sink,
) -> Vec<PickleReport> {
    let mut out: Vec<PickleReport> = Vec::new();
    let mut pos = 0usize;
    let mut resync = false;
    let mut after_stop = false;
    let mut attempts = 0usize;
    while pos < data.len() {
        if out.len() >= opts.limits.max_pickles {
            if let Some(last) = out.last_mut() {
                push_anomaly(
                    last,
                    pos,
                    AnomalyKind::LimitExceeded {
                        limit: "max_pickles".into(),
                    },
                );
            }
            break;
        }
        sink.begin(pos, resync);
        let mut rep = run(data, pos, mode, opts, sink);
        if after_stop && !plausible_stacked(&rep, data, pos) {
            // Like a second pickle.load() on garbage: not a pickle. Report the bytes on the
            // last pickle, then look for pickles hidden in them.
            sink.keep(false);
            if let Some(last) = out.last_mut() {
                push_anomaly(
                    last,
                    pos,
                    AnomalyKind::TrailingData {
                        bytes: (data.len() - pos) as u64,
                    },
                );
            }
            after_stop = false;
            resync = true;
            match find_candidate(data, pos + 1) {
                Some(p) => pos = p,
                None => break,
            }
            continue;
        }
        if resync && !substantive(&rep) {
            sink.keep(false);
            attempts += 1;
            if attempts > MAX_RESYNC_ATTEMPTS {
                break;
            }
            match find_candidate(data, pos + 1) {
                Some(p) => pos = p,
                None => break,
            }
            continue;
        }
        sink.keep(true);
        if resync {
            rep.anomalies.insert(
                0,
                Anomaly {
                    offset: pos as u64,
                    kind: AnomalyKind::Resynchronised,
                    message: super::machine::describe(&AnomalyKind::Resynchronised),
                },
            );
        }
        let next = (rep.next as usize).min(data.len());
        let stopped = rep.end.is_some();
        let break_at = rep.anomalies.last().map_or(next, |a| a.offset as usize);
        out.push(rep);
        if stopped {
            if next >= data.len() {
                break;
            }
            pos = next.max(pos + 1);
            after_stop = true;
            resync = false;
        } else {
            after_stop = false;
            resync = true;
            let from = break_at.max(pos + 1);
            sink.note(format!("resynchronising from offset {from}"));
            match find_candidate(data, from) {
                Some(p) => pos = p,
                None => break,
            }
        }
    }
    out
}

fn push_anomaly(rep: &mut PickleReport, at: usize, kind: AnomalyKind) {
    let message = super::machine::describe(&kind);
    rep.anomalies.push(Anomaly {
        offset: at as u64,
        kind,
        message,
    });
}

fn substantive(rep: &PickleReport) -> bool {
    (rep.end.is_some() && rep.opcodes >= 2)
        || !rep.globals.is_empty()
        || !rep.calls.is_empty()
        || !rep.persistent_ids.is_empty()
}

fn plausible_stacked(rep: &PickleReport, data: &[u8], pos: usize) -> bool {
    rep.end.is_some() || substantive(rep) || looks_like_start(data, pos)
}

/// The next offset at or after `from` where a pickle plausibly starts.
pub(crate) fn find_candidate(data: &[u8], from: usize) -> Option<usize> {
    (from..data.len()).find(|&i| looks_like_start(data, i))
}

/// A plausible pickle start: `PROTO n` (n ≤ 5) followed by an opcode; `GLOBAL` with two
/// dotted-identifier lines; or two short unicode strings (with optional memo stores) and
/// `STACK_GLOBAL`.
pub(crate) fn looks_like_start(data: &[u8], i: usize) -> bool {
    match data.get(i) {
        Some(0x80) => {
            matches!(data.get(i + 1), Some(p) if *p <= 5)
                && data
                    .get(i + 2)
                    .is_some_and(|b| opcodes::lookup(*b).is_some())
        }
        Some(b'c') => {
            let Some(a) = ident_line(data, i + 1) else {
                return false;
            };
            ident_line(data, a).is_some()
        }
        Some(0x8c) => {
            let Some(a) = short_ident(data, i) else {
                return false;
            };
            let a = skip_memo(data, a);
            let Some(b) = short_ident(data, a) else {
                return false;
            };
            data.get(skip_memo(data, b)) == Some(&opcodes::STACK_GLOBAL)
        }
        _ => false,
    }
}

fn is_ident_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'.'
}

/// A dotted identifier line starting at `i`; returns the offset after its newline.
fn ident_line(data: &[u8], i: usize) -> Option<usize> {
    let rest = data.get(i..)?;
    let n = rest.iter().take(257).position(|&b| b == b'\n')?;
    let line = &rest[..n];
    let ok =
        !line.is_empty() && !line[0].is_ascii_digit() && line.iter().all(|&b| is_ident_byte(b));
    ok.then_some(i + n + 1)
}

/// SHORT_BINUNICODE holding a dotted identifier; returns the offset after it.
fn short_ident(data: &[u8], i: usize) -> Option<usize> {
    if data.get(i) != Some(&0x8c) {
        return None;
    }
    let n = *data.get(i + 1)? as usize;
    let s = data.get(i + 2..i + 2 + n)?;
    let ok =
        (1..=128).contains(&n) && !s[0].is_ascii_digit() && s.iter().all(|&b| is_ident_byte(b));
    ok.then_some(i + 2 + n)
}

fn skip_memo(data: &[u8], i: usize) -> usize {
    match data.get(i) {
        Some(&opcodes::MEMOIZE) => i + 1,
        Some(&opcodes::BINPUT) => i + 2,
        Some(&opcodes::LONG_BINPUT) => i + 5,
        _ => i,
    }
}
