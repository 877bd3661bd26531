//! A pickletools-like listing that keeps going: offsets, opcode bytes and names, arguments
//! (escaped, truncated), indentation by mark depth, frame boundaries, memo stores, resolved
//! imports (`→ module.name`), calls, errors in place, and the seams between stacked and
//! resynchronised pickles.

use std::fmt::{self, Write};

use super::machine::{Arg, Tracer};
use super::opcodes::{self as op, OpInfo};
use super::stream::{self, Sink};
use super::text;
use super::value;
use super::{Options, ReadMode};

/// Writes a disassembly of every pickle in `data[start..]` read in `mode`, at most
/// `max_lines` lines (then a truncation note).
pub fn disasm(
    data: &[u8],
    start: usize,
    mode: ReadMode,
    out: &mut impl Write,
    max_lines: usize,
) -> fmt::Result {
    let tail = data.get(start..).unwrap_or(&[]);
    let mut lister = Lister {
        base: start,
        max: max_lines,
        ..Lister::default()
    };
    let opts = Options::default();
    let reports = stream::walk(tail, &opts, mode, &mut lister);
    for l in &lister.kept {
        writeln!(out, "{l}")?;
    }
    if lister.dropped > 0 {
        writeln!(out, "... {} more lines not shown", lister.dropped)?;
    }
    writeln!(out, "{} pickle(s) read in {:?} mode", reports.len(), mode)
}

#[derive(Default)]
struct Lister {
    base: usize,
    max: usize,
    kept: Vec<String>,
    pending: Vec<String>,
    dropped: usize,
}

impl Lister {
    fn line(&mut self, l: String) {
        if self.kept.len() + self.pending.len() < self.max {
            self.pending.push(l);
        } else {
            self.dropped += 1;
        }
    }
}

impl Sink for Lister {
    fn tracer(&mut self) -> Option<&mut dyn Tracer> {
        Some(self)
    }
    fn begin(&mut self, start: usize, resync: bool) {
        let how = if resync {
            "resynchronised pickle"
        } else {
            "pickle"
        };
        self.line(format!("=== {how} at offset {} ===", start + self.base));
    }
    fn keep(&mut self, keep: bool) {
        if keep {
            self.kept.append(&mut self.pending);
        } else {
            self.pending.clear();
        }
    }
    fn note(&mut self, line: String) {
        self.kept.push(format!("=== {line} ==="));
    }
}

impl Tracer for Lister {
    fn op(&mut self, off: u64, info: &'static OpInfo, arg: &Arg, data: &[u8], depth: usize) {
        let indent = "  ".repeat(depth.min(20));
        let arg = render_arg(info, arg, data);
        self.line(format!(
            "{:>8}: {:02x} {indent}{:<18} {arg}",
            off as usize + self.base,
            info.code,
            info.name
        ));
    }
    fn note(&mut self, note: &str) {
        if let Some(l) = self.pending.last_mut() {
            if l.len() < 2000 {
                l.push_str("  ; ");
                l.push_str(note);
            }
        }
    }
    fn error(&mut self, off: u64, what: &str) {
        self.line(format!("{:>8}: !! {what}", off as usize + self.base));
    }
}

fn render_arg(info: &OpInfo, arg: &Arg, data: &[u8]) -> String {
    let bytes = |s: usize, n: usize| data.get(s..s.saturating_add(n)).unwrap_or(&[]);
    let mut out = String::new();
    match *arg {
        Arg::None => {}
        Arg::Int(i) => {
            let _ = write!(out, "{i}");
        }
        Arg::U64(u) => {
            let _ = write!(out, "{u}");
        }
        Arg::Float(f) => {
            let _ = write!(out, "{f}");
        }
        Arg::Data(s, n) => match info.code {
            op::LONG1 | op::LONG4 => match text::le_twos_complement(bytes(s, n.min(300))) {
                text::IntVal::Small(i) => {
                    let _ = write!(out, "{i}");
                }
                text::IntVal::Big(b) => out.push_str(&b),
            },
            op::BINUNICODE
            | op::SHORT_BINUNICODE
            | op::BINUNICODE8
            | op::BINSTRING
            | op::SHORT_BINSTRING => value::render_text(
                &String::from_utf8_lossy(bytes(s, n.min(256))),
                n as u64,
                &mut out,
            ),
            _ => value::render_bytes(bytes(s, n.min(256)), n as u64, "b", &mut out),
        },
        Arg::Line(s, n) => value::render_text(
            &String::from_utf8_lossy(bytes(s, n.min(256))),
            n as u64,
            &mut out,
        ),
        Arg::Lines(a, b) => {
            let _ = write!(
                out,
                "{} {}",
                String::from_utf8_lossy(bytes(a.0, a.1.min(256))),
                String::from_utf8_lossy(bytes(b.0, b.1.min(256)))
            );
        }
    }
    out
}
