//! The symbolic machine: CPython's C unpickler (`Modules/_pickle.c`) with every effect that
//! could run code recorded instead of performed (FORMATS-FACTS §1).
//!
//! State mirrors §1.1: an object stack, a separate mark stack whose top is the *fence*, a memo
//! and `proto`. Errors end the pickle with an anomaly at the opcode's offset; everything found
//! before stays in the report (§1.11: the opcodes before an error did run).

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};

use super::compat;
use super::joblib;
use super::memo::{MEMO_HUGE, Memo};
use super::opcodes::{self as op, ArgKind, OpInfo};
use super::reader::{FrameEvent, ReadError, Reader};
use super::text::{self, IntVal};
use super::value::{
    self, Arena, CallNode, Coll, KEEP_NONPLAIN, KEEP_PLAIN, NodeId, NodeKind, Opaque, Span, Val,
};
use super::{
    Anomaly, AnomalyKind, CallKind, CallSite, GlobalRef, Limits, Options, PersistentId,
    PickleReport, RawRegion, ReadMode,
};

/// Lengths at or above this that exceed the remaining data are reported as `HugeLength`.
const HUGE_LENGTH: u64 = 1 << 20;
/// Characters of a call summary.
const SUMMARY_CHARS: usize = 200;
/// Call sites recorded per (kind, named callable); later ones are only counted.
const REPEAT_CALLS: u32 = 16;
/// Nested pickles (joblib object arrays) inside nested pickles, at most.
const MAX_NESTING: u8 = 8;
/// The module recorded for a STACK_GLOBAL whose operands are computed (not literal strings).
pub const DYNAMIC_MODULE: &str = "<dynamic>";

/// A decoded argument.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Arg {
    None,
    Int(i64),
    U64(u64),
    Float(f64),
    /// Counted payload: absolute start and length.
    Data(usize, usize),
    /// A line without its newline: start and length.
    Line(usize, usize),
    Lines((usize, usize), (usize, usize)),
}

/// Receives a line per opcode (the disassembler).
pub(crate) trait Tracer {
    fn op(&mut self, off: u64, info: &'static OpInfo, arg: &Arg, data: &[u8], depth: usize);
    fn note(&mut self, note: &str);
    fn error(&mut self, off: u64, what: &str);
}

type Brk = AnomalyKind;

fn loader(detail: impl Into<String>) -> Brk {
    AnomalyKind::LoaderError {
        detail: detail.into(),
    }
}
fn bad(detail: impl Into<String>) -> Brk {
    AnomalyKind::BadArgument {
        detail: detail.into(),
    }
}

pub(crate) struct Machine<'a, 't> {
    data: &'a [u8],
    r: Reader<'a>,
    opts: &'a Options,
    stack: Vec<Val>,
    marks: Vec<usize>,
    memo: Memo<'a>,
    /// Every node of this pickle (see `value.rs`).
    arena: Arena,
    /// `Limits::max_stack`, here for the hot path.
    max_stack: usize,
    proto: u8,
    report: PickleReport,
    seen_globals: Option<HashSet<(String, String)>>,
    seen_calls: Option<HashSet<(CallKind, String)>>,
    call_counts: HashMap<String, u32>,
    call_key: String,
    nesting: u8,
    trace: Option<&'t mut dyn Tracer>,
}

enum Flow {
    Go,
    Stop,
}

impl<'a, 't> Machine<'a, 't> {
    pub(crate) fn new(data: &'a [u8], start: usize, mode: ReadMode, opts: &'a Options) -> Self {
        Machine {
            data,
            r: Reader::new(data, start, mode),
            opts,
            stack: Vec::new(),
            marks: Vec::new(),
            memo: Memo::new(data),
            arena: Arena::default(),
            max_stack: opts.limits.max_stack,
            proto: 0,
            report: PickleReport {
                mode,
                start: start as u64,
                end: None,
                proto: 0,
                opcodes: 0,
                globals: Vec::new(),
                calls: Vec::new(),
                persistent_ids: Vec::new(),
                anomalies: Vec::new(),
                next: start as u64,
                raw_regions: Vec::new(),
                calls_repeated: 0,
                result: None,
            },
            seen_globals: None,
            seen_calls: None,
            call_counts: HashMap::new(),
            call_key: String::new(),
            nesting: 0,
            trace: None,
        }
    }

    pub(crate) fn with_tracer(mut self, t: &'t mut dyn Tracer) -> Self {
        self.trace = Some(t);
        self
    }

    fn lim(&self) -> &'a Limits {
        &self.opts.limits
    }

    /// Runs to STOP or to the first error.
    pub(crate) fn run(mut self) -> PickleReport {
        loop {
            if self.trace.is_none() {
                self.fast();
            }
            if self.arena.wants_collect() {
                self.collect();
            }
            let off = self.r.pos();
            let res = self.step(off);
            if !self.r.events.is_empty() {
                self.drain_events();
            }
            match res {
                Ok(Flow::Go) => {}
                Ok(Flow::Stop) => break,
                Err(kind) => {
                    self.brk(off, kind);
                    break;
                }
            }
        }
        self.report.next = self.r.next_start() as u64;
        self.report
    }

    fn brk(&mut self, off: usize, kind: AnomalyKind) {
        let message = describe(&kind);
        tracing::debug!(offset = off, %message, "pickle break");
        if let Some(t) = self.trace.as_mut() {
            t.error(off as u64, &message);
        }
        self.report.anomalies.push(Anomaly {
            offset: off as u64,
            kind,
            message,
        });
    }

    fn anomaly(&mut self, off: usize, kind: AnomalyKind) {
        let message = describe(&kind);
        if let Some(t) = self.trace.as_mut() {
            t.note(&format!("!! {message}"));
        }
        self.report.anomalies.push(Anomaly {
            offset: off as u64,
            kind,
            message,
        });
    }

    fn drain_events(&mut self) {
        for (at, e) in std::mem::take(&mut self.r.events) {
            let kind = match e {
                FrameEvent::Straddle => AnomalyKind::FrameStraddle,
                FrameEvent::Early => AnomalyKind::FrameEarly,
                FrameEvent::Overrun => AnomalyKind::FrameOverrun,
            };
            self.anomaly(at as usize, kind);
        }
    }

    fn note(&mut self, f: impl FnOnce() -> String) {
        if let Some(t) = self.trace.as_mut() {
            t.note(&f());
        }
    }

    // -----------------------------------------------------------------------------------------
    // Stack discipline (§1.1, §1.5)

    fn fence(&self) -> usize {
        self.marks.last().copied().unwrap_or(0)
    }

    /// `Pdata_stack_underflow`: which message depends on whether any mark is set.
    fn underflow(&self) -> Brk {
        loader(if self.marks.is_empty() {
            "unpickling stack underflow"
        } else {
            "unexpected MARK found"
        })
    }

    fn pop(&mut self) -> Result<Val, Brk> {
        if self.stack.len() <= self.fence() {
            return Err(self.underflow());
        }
        self.stack.pop().ok_or_else(|| self.underflow())
    }

    fn top(&self) -> Result<&Val, Brk> {
        if self.stack.len() <= self.fence() {
            return Err(self.underflow());
        }
        self.stack.last().ok_or_else(|| self.underflow())
    }

    #[inline]
    fn push(&mut self, v: Val) -> Result<(), Brk> {
        if self.stack.len() >= self.max_stack {
            return Err(AnomalyKind::LimitExceeded {
                limit: "max_stack".into(),
            });
        }
        self.stack.push(v);
        Ok(())
    }

    /// `marker()`: pops the top mark ("could not find MARK").
    fn marker(&mut self) -> Result<usize, Brk> {
        let m = self
            .marks
            .pop()
            .ok_or_else(|| loader("could not find MARK"))?;
        if m > self.stack.len() {
            return Err(self.underflow());
        }
        Ok(m)
    }

    /// `Pdata_poptuple(start)`: everything from `start` up.
    fn pop_from(&mut self, start: usize) -> Result<Vec<Val>, Brk> {
        if start < self.fence() || start > self.stack.len() {
            return Err(self.underflow());
        }
        Ok(self.stack.split_off(start))
    }

    // -----------------------------------------------------------------------------------------
    // Value construction, bounded (§ Limits)

    #[inline]
    fn alloc(&mut self, kind: NodeKind, depth: u16, plain: bool) -> Val {
        self.arena.alloc(kind, depth, plain)
    }

    fn tuple(&mut self, items: Vec<Val>) -> Val {
        self.tuple_of(value::Items::Heap(items))
    }

    /// A tuple of the stack values from `start` up (`Pdata_poptuple`); small ones are built
    /// in place, without a vector.
    #[inline]
    fn tuple_from_stack(&mut self, start: usize) -> Result<Val, Brk> {
        let len = self.stack.len();
        if start < self.fence() || start > len {
            return Err(self.underflow());
        }
        let n = len - start;
        if n > value::INLINE {
            let items = self.stack.split_off(start);
            return Ok(self.tuple(items));
        }
        let v = self.arena.small_tuple(
            &self.stack[start..],
            None,
            false,
            self.opts.limits.max_value_depth,
        );
        self.stack.truncate(start);
        Ok(v)
    }

    #[inline]
    fn tuple_of(&mut self, items: value::Items) -> Val {
        let (depth, plain, storage) = self.arena.flags(&items);
        let depth = depth.saturating_add(1);
        if depth as usize > self.lim().max_value_depth {
            return Val::Unknown;
        }
        let v = self.alloc(NodeKind::Tuple(items), depth, plain);
        self.set_storage(&v, storage);
        v
    }

    fn set_storage(&mut self, v: &Val, storage: bool) {
        if let Val::Node(id) = v
            && let Some(n) = self.arena.node_mut(*id)
        {
            n.storage = storage;
        }
    }

    fn str_val(&mut self, start: usize, len: usize) -> Val {
        if len <= self.lim().max_kept_bytes {
            if let Some(s) = Span::new(start, len) {
                return Val::Str(s);
            }
        }
        let raw = self.data.get(start..start + len).unwrap_or(&[]);
        let mut cut = len.min(self.lim().max_kept_bytes);
        let kept = match std::str::from_utf8(raw) {
            Ok(s) => {
                while !s.is_char_boundary(cut) {
                    cut -= 1;
                }
                s[..cut].to_owned()
            }
            Err(_) => String::from_utf8_lossy(&raw[..cut]).into_owned(),
        };
        self.alloc(
            NodeKind::Text {
                kept: kept.into(),
                len: len as u64,
            },
            0,
            true,
        )
    }

    /// BINUNICODE's argument: UTF-8 with lone surrogates allowed.
    fn unicode_val(&mut self, s: usize, n: usize) -> Result<Val, Brk> {
        Ok(match text::utf8_surrogatepass(self.bytes_of(s, n)) {
            Some(Cow::Borrowed(_)) => self.str_val(s, n),
            Some(Cow::Owned(t)) => self.owned_str(t),
            None => return Err(bad("'utf-8' codec can't decode bytes")),
        })
    }

    fn owned_str(&mut self, s: String) -> Val {
        let len = s.len() as u64;
        let mut cut = s.len().min(self.lim().max_kept_bytes);
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        self.alloc(
            NodeKind::Text {
                kept: s[..cut].into(),
                len,
            },
            0,
            true,
        )
    }

    fn bytes_val(&mut self, start: usize, len: usize, bytearray: bool) -> Val {
        if !bytearray && len <= self.lim().max_kept_bytes {
            if let Some(s) = Span::new(start, len) {
                return Val::Bytes(s);
            }
        }
        let cut = len.min(self.lim().max_kept_bytes);
        let kept = self.data.get(start..start + cut).unwrap_or(&[]);
        self.alloc(
            NodeKind::Blob {
                kept: kept.into(),
                len: len as u64,
                bytearray,
            },
            0,
            true,
        )
    }

    fn int_val(&mut self, v: IntVal) -> Val {
        match v {
            IntVal::Small(i) => Val::Int(i),
            IntVal::Big(s) => self.alloc(NodeKind::BigInt(s.into()), 0, true),
        }
    }

    fn new_coll(&mut self, kind: fn(Coll) -> NodeKind) -> Val {
        self.alloc(kind(Coll::default()), 1, true)
    }

    /// Adds `v` to a container node's collection (or an object's record of APPENDs),
    /// keeping a bounded number of elements.
    fn add_item(&mut self, node: NodeId, v: Val) {
        let cap = if self.arena.holds_storage(&v) {
            KEEP_NONPLAIN
        } else {
            KEEP_PLAIN
        };
        let Some(coll) = self.arena.coll_mut(node) else {
            return;
        };
        coll.len += 1;
        if coll.items.len() >= cap {
            return;
        }
        let v = self.fit(node, v);
        if let Some(coll) = self.arena.coll_mut(node) {
            coll.items.push(v);
        }
    }

    fn add_pair(&mut self, node: NodeId, k: Val, v: Val) {
        let cap = if self.arena.holds_storage(&k) || self.arena.holds_storage(&v) {
            KEEP_NONPLAIN
        } else {
            KEEP_PLAIN
        };
        let Some(coll) = self.arena.coll_mut(node) else {
            return;
        };
        coll.len += 1;
        if coll.pairs.len() >= cap {
            return;
        }
        let k = self.fit(node, k);
        let v = self.fit(node, v);
        if let Some(coll) = self.arena.coll_mut(node) {
            coll.pairs.push((k, v));
        }
    }

    /// Depth and plainness bookkeeping for `v` going inside `node`; too deep → Unknown.
    fn fit(&mut self, node: NodeId, v: Val) -> Val {
        let d = self.arena.depth(&v).saturating_add(1);
        if d as usize > self.lim().max_value_depth {
            return Val::Unknown;
        }
        let (plain, storage) = (self.arena.is_plain(&v), self.arena.holds_storage(&v));
        if let Some(n) = self.arena.node_mut(node) {
            if d > n.depth {
                n.depth = d;
            }
            if !plain {
                n.plain = false;
                if storage {
                    n.storage = true;
                }
            }
        }
        v
    }

    // -----------------------------------------------------------------------------------------
    // Recording imports and calls

    fn record_global(&mut self, g: &GlobalRef) {
        if self.report.globals.len() < self.lim().max_globals {
            self.report.globals.push(g.clone());
            return;
        }
        // Past the limit, keep going but record only imports not seen yet: a payload hidden
        // behind many benign imports is still reported, and memory stays bounded.
        if self.seen_globals.is_none() {
            let set = self
                .report
                .globals
                .iter()
                .map(|g| (g.module.clone(), g.name.clone()))
                .collect();
            self.seen_globals = Some(set);
            let off = g.offset as usize;
            self.anomaly(
                off,
                AnomalyKind::LimitExceeded {
                    limit: "max_globals".into(),
                },
            );
        }
        if let Some(seen) = self.seen_globals.as_mut() {
            if seen.insert((g.module.clone(), g.name.clone())) {
                self.report.globals.push(g.clone());
            }
        }
    }

    fn import(
        &mut self,
        raw_module: &str,
        raw_name: &str,
        off: usize,
        opcode: &'static str,
    ) -> Val {
        // §1.6 step 1: NAME_MAPPING, else IMPORT_MAPPING, only when proto < 3 (fix_imports).
        let (module, name) = if self.proto < 3 {
            compat::map_name(raw_module, raw_name)
        } else {
            (raw_module, raw_name)
        };
        let g = GlobalRef {
            module: module.to_owned(),
            name: name.to_owned(),
            raw_module: raw_module.to_owned(),
            raw_name: raw_name.to_owned(),
            offset: off as u64,
            opcode,
            proto: self.proto,
        };
        self.note(|| format!("→ {}.{}", g.module, g.name));
        self.record_global(&g);
        self.alloc(NodeKind::Global(Box::new(g)), 0, false)
    }

    /// What is being called when `v` is called: a global (its node), or something computed.
    fn callee(&self, v: &Val) -> (Option<NodeId>, bool) {
        match v {
            Val::Node(id) => self.callee_node(*id),
            _ => (None, true),
        }
    }

    /// The class whose methods run when an object is mutated (BUILD, APPEND on objects ...).
    fn class_of(&self, v: &Val) -> (Option<NodeId>, bool) {
        match v {
            Val::OpaqueCall(_, Some(g)) => self.callee_node(*g),
            Val::OpaqueCall(_, None) => (None, true),
            Val::Node(id) => match self.arena.kind(v) {
                Some(NodeKind::Call(c)) => self.callee(&c.callable),
                // setattr / extend on a module or class object itself.
                Some(NodeKind::Global(_)) => self.callee_node(*id),
                _ => (None, true),
            },
            _ => (None, true),
        }
    }

    fn callee_node(&self, id: NodeId) -> (Option<NodeId>, bool) {
        match self.arena.global_of(Some(id)) {
            Some(g) => (Some(id), g.module == DYNAMIC_MODULE),
            None => (None, true),
        }
    }

    /// The import a global node stands for.
    fn gref(&self, g: Option<NodeId>) -> Option<GlobalRef> {
        self.arena.global_of(g).cloned()
    }

    /// Whether a call site is worth recording: every call of something computed (up to
    /// `max_calls`), but only the first [`REPEAT_CALLS`] calls of each named callable (and
    /// of `persistent_load`) per kind; later ones are counted in `calls_repeated`. A pickle of
    /// 160k `_codecs.encode` bytes or torch storages then needs neither the memory nor the
    /// time to render each one.
    fn want_call(&mut self, kind: CallKind, g: Option<NodeId>, computed: bool) -> bool {
        if computed {
            return true;
        }
        let key = &mut self.call_key;
        key.clear();
        key.push(kind as u8 as char);
        if let Some(g) = self.arena.global_of(g) {
            key.push_str(&g.module);
            key.push('\n');
            key.push_str(&g.name);
        }
        match self.call_counts.get_mut(key.as_str()) {
            Some(n) if *n >= REPEAT_CALLS => {
                self.report.calls_repeated += 1;
                false
            }
            Some(n) => {
                *n += 1;
                true
            }
            None => {
                self.call_counts.insert(key.clone(), 1);
                true
            }
        }
    }

    fn record_call(
        &mut self,
        kind: CallKind,
        off: usize,
        callable: Option<GlobalRef>,
        computed: bool,
        summary: String,
    ) {
        self.note(|| format!("CALL {summary}"));
        if self.report.calls.len() >= self.lim().max_calls {
            if self.seen_calls.is_none() {
                let set = self
                    .report
                    .calls
                    .iter()
                    .map(|c| {
                        (
                            c.kind,
                            c.callable
                                .as_ref()
                                .map(|g| format!("{}.{}", g.module, g.name))
                                .unwrap_or_default(),
                        )
                    })
                    .collect();
                self.seen_calls = Some(set);
                self.anomaly(
                    off,
                    AnomalyKind::LimitExceeded {
                        limit: "max_calls".into(),
                    },
                );
            }
            let key = (
                kind,
                callable
                    .as_ref()
                    .map(|g| format!("{}.{}", g.module, g.name))
                    .unwrap_or_default(),
            );
            if !self.seen_calls.as_mut().is_some_and(|s| s.insert(key)) {
                return;
            }
        }
        self.report.calls.push(CallSite {
            kind,
            offset: off as u64,
            callable,
            computed_callable: computed,
            summary,
        });
    }

    fn render(&self, v: &Val) -> String {
        value::render(&self.arena, v, self.data, SUMMARY_CHARS)
    }

    // -----------------------------------------------------------------------------------------
    // Decoding

    fn read_err(&self, e: ReadError) -> Brk {
        match e {
            ReadError::Truncated => AnomalyKind::Truncated,
            ReadError::Straddle => loader("pickle exhausted before end of frame"),
            ReadError::EarlyFrame => loader("beginning of a new frame before end of current frame"),
            ReadError::Overflow => bad("length exceeds the system's maximum size"),
        }
    }

    fn counted(&mut self, declared: u64) -> Result<Arg, Brk> {
        let at = self.r.pos();
        let left = (self.data.len() - at) as u64;
        if declared > left && declared >= HUGE_LENGTH {
            self.anomaly(at, AnomalyKind::HugeLength { declared });
        }
        let n = usize::try_from(declared)
            .ok()
            .filter(|n| *n <= isize::MAX as usize)
            .ok_or_else(|| {
                bad(format!(
                    "length {declared} exceeds the system's maximum size"
                ))
            })?;
        let s = self.r.read(n).map_err(|e| self.read_err(e))?;
        Ok(Arg::Data(s, n))
    }

    fn decode(&mut self, info: &'static OpInfo) -> Result<Arg, Brk> {
        let e = |m: &Self, err| m.read_err(err);
        Ok(match info.arg {
            ArgKind::None => Arg::None,
            ArgKind::U1 => Arg::Int(self.r.byte().map_err(|x| e(self, x))? as i64),
            ArgKind::U2 => {
                Arg::Int(u16::from_le_bytes(self.r.array().map_err(|x| e(self, x))?) as i64)
            }
            ArgKind::I4 => {
                Arg::Int(i32::from_le_bytes(self.r.array().map_err(|x| e(self, x))?) as i64)
            }
            ArgKind::U4 => {
                Arg::Int(u32::from_le_bytes(self.r.array().map_err(|x| e(self, x))?) as i64)
            }
            ArgKind::U8 => Arg::U64(u64::from_le_bytes(self.r.array().map_err(|x| e(self, x))?)),
            ArgKind::F8 => Arg::Float(f64::from_be_bytes(self.r.array().map_err(|x| e(self, x))?)),
            ArgKind::DecimalNl
            | ArgKind::FloatNl
            | ArgKind::StringNl
            | ArgKind::UnicodeNl
            | ArgKind::AsciiNl => {
                let (s, n) = self.r.line().map_err(|x| e(self, x))?;
                Arg::Line(s, n)
            }
            ArgKind::TwoLines => {
                // load_inst calls marker() before reading its lines.
                if info.code == op::INST && self.marks.is_empty() {
                    return Err(loader("could not find MARK"));
                }
                let a = self.r.line().map_err(|x| e(self, x))?;
                let b = self.r.line().map_err(|x| e(self, x))?;
                Arg::Lines(a, b)
            }
            ArgKind::Counted1 => {
                let n = self.r.byte().map_err(|x| e(self, x))? as u64;
                self.counted(n)?
            }
            ArgKind::Counted4 => {
                // C reads BINBYTES/BINSTRING/BINUNICODE lengths unsigned (§1.11).
                let n = u32::from_le_bytes(self.r.array().map_err(|x| e(self, x))?) as u64;
                self.counted(n)?
            }
            ArgKind::Counted4Signed => {
                let n = i32::from_le_bytes(self.r.array().map_err(|x| e(self, x))?);
                if n < 0 {
                    return Err(loader("LONG pickle has negative byte count"));
                }
                self.counted(n as u64)?
            }
            ArgKind::Counted8 => {
                let n = u64::from_le_bytes(self.r.array().map_err(|x| e(self, x))?);
                self.counted(n)?
            }
        })
    }

    fn bytes_of(&self, s: usize, n: usize) -> &'a [u8] {
        self.data.get(s..s.saturating_add(n)).unwrap_or(&[])
    }

    /// A text-number line, cut at NUL the way C does (§1.11), with the anomaly recorded.
    fn number_line(&mut self, off: usize, s: usize, n: usize) -> &'a [u8] {
        let (line, nul) = text::cut_nul(self.bytes_of(s, n));
        if nul {
            self.anomaly(off, AnomalyKind::NulInNumber);
        }
        line
    }

    /// PUT/GET text index: `PyLong_FromString(s, NULL, 10)`; the line must not be empty.
    fn text_index(&mut self, off: usize, arg: Arg) -> Result<i128, Brk> {
        let Arg::Line(s, n) = arg else {
            return Err(bad("missing index"));
        };
        if n == 0 {
            return Err(AnomalyKind::Truncated);
        }
        let line = self.number_line(off, s, n);
        match text::py_int(line, 10) {
            Some(IntVal::Small(i)) => Ok(i as i128),
            Some(IntVal::Big(_)) => Err(bad("memo index too large")),
            None => Err(bad(format!(
                "invalid literal for int() with base 10: {:?}",
                String::from_utf8_lossy(line)
            ))),
        }
    }

    // -----------------------------------------------------------------------------------------
    // The fast path

    /// An opcode boundary: every live value is on the stack or in the memo.
    fn collect(&mut self) {
        self.arena
            .collect(self.stack.iter().copied().chain(self.memo.roots()));
    }

    /// Runs, straight from the input, the opcodes that large data pickles are made of (ints,
    /// floats, short strings, marks, tuples, the memo, list/dict building), until one needs
    /// the general path: another opcode, an argument that reaches past `Reader::plain_end`
    /// (where framing has effects), or any state in which the opcode would fail, hit a limit
    /// or record an anomaly. That opcode is left unread for [`Machine::step`], which runs it
    /// with every check. Each opcode here has exactly the effect `step` gives it; the checks
    /// that are skipped are the ones that cannot fire once the conditions above hold.
    fn fast(&mut self) {
        let data = self.data;
        let lim = self.lim();
        let mut pos = self.r.pos();
        // The value this loop last pushed, while it is the top of the stack: MEMOIZE and PUT
        // store it without reading it back from the stack (a read right after the write of
        // a 16-byte value stalls on store forwarding: that was a quarter of the time).
        let mut top: Option<Val> = None;
        // How many values at the top of the stack this loop pushed as plain scalars (no node,
        // nothing opaque): a tuple of them needs no look at its items to know its depth.
        let mut scalars = 0usize;
        // `report.opcodes`, counted here and written back on the way out.
        let mut ops = self.report.opcodes;
        loop {
            let end = self.r.plain_end().min(data.len());
            while pos < end {
                if ops >= lim.max_opcodes {
                    break;
                }
                let room = self.stack.len() < self.max_stack;
                let next = match data[pos] {
                    op::MARK if self.marks.len() < lim.max_marks => {
                        self.marks.push(self.stack.len());
                        pos + 1
                    }
                    op::NONE | op::NEWTRUE | op::NEWFALSE if room => {
                        let v = match data[pos] {
                            op::NONE => Val::None,
                            c => Val::Bool(c == op::NEWTRUE),
                        };
                        self.stack.push(v);
                        top = Some(v);
                        scalars += 1;
                        pos + 1
                    }
                    op::BININT1 if room && pos + 2 <= end => {
                        let v = Val::Int(data[pos + 1] as i64);
                        self.stack.push(v);
                        top = Some(v);
                        scalars += 1;
                        pos + 2
                    }
                    op::BININT2 if room && pos + 3 <= end => {
                        let b = [data[pos + 1], data[pos + 2]];
                        let v = Val::Int(u16::from_le_bytes(b) as i64);
                        self.stack.push(v);
                        top = Some(v);
                        scalars += 1;
                        pos + 3
                    }
                    op::BININT if room && pos + 5 <= end => {
                        let Some(b) = le4(data, pos + 1) else { break };
                        let v = Val::Int(i32::from_le_bytes(b) as i64);
                        self.stack.push(v);
                        top = Some(v);
                        scalars += 1;
                        pos + 5
                    }
                    op::BINFLOAT if room && pos + 9 <= end => {
                        let Some(b) = data.get(pos + 1..pos + 9).and_then(|b| b.try_into().ok())
                        else {
                            break;
                        };
                        let v = Val::Float(f64::from_be_bytes(b));
                        self.stack.push(v);
                        top = Some(v);
                        scalars += 1;
                        pos + 9
                    }
                    c @ (op::SHORT_BINUNICODE
                    | op::BINUNICODE
                    | op::SHORT_BINBYTES
                    | op::BINBYTES)
                        if room =>
                    {
                        // Text and bytes kept as spans of the input: ASCII text (other UTF-8
                        // and surrogates take the general path) within `max_kept_bytes`.
                        let (s, n) = if c == op::SHORT_BINUNICODE || c == op::SHORT_BINBYTES {
                            match data.get(pos + 1) {
                                Some(&n) => (pos + 2, n as usize),
                                None => break,
                            }
                        } else {
                            match le4(data, pos + 1) {
                                Some(b) => (pos + 5, u32::from_le_bytes(b) as usize),
                                None => break,
                            }
                        };
                        if n > lim.max_kept_bytes || s + n > end {
                            break;
                        }
                        let Some(span) = Span::new(s, n) else { break };
                        if c == op::SHORT_BINUNICODE || c == op::BINUNICODE {
                            if !ascii(&data[s..s + n]) {
                                break;
                            }
                            let v = Val::Str(span);
                            self.stack.push(v);
                            top = Some(v);
                            scalars += 1;
                        } else {
                            let v = Val::Bytes(span);
                            self.stack.push(v);
                            top = Some(v);
                            scalars += 1;
                        }
                        s + n
                    }
                    c @ (op::MEMOIZE | op::BINPUT | op::LONG_BINPUT) => {
                        let (idx, next) = match c {
                            op::MEMOIZE => (self.memo.len() as u64, pos + 1),
                            op::BINPUT if pos + 2 <= end => (data[pos + 1] as u64, pos + 2),
                            op::LONG_BINPUT if pos + 5 <= end => match le4(data, pos + 1) {
                                Some(b) => (u32::from_le_bytes(b) as u64, pos + 5),
                                None => break,
                            },
                            _ => break,
                        };
                        // No anomaly (huge index), no limit, no underflow: else the general path.
                        if idx >= MEMO_HUGE
                            || self.memo.len() >= lim.max_memo_entries
                            || self.stack.len() <= self.fence()
                        {
                            break;
                        }
                        let v = match top {
                            Some(v) => v,
                            None => match self.stack.last() {
                                Some(&v) => v,
                                None => break,
                            },
                        };
                        if !self.memo.put_common(idx, &v, &self.arena) {
                            self.memo.put(idx, v, &mut self.arena);
                        }
                        next
                    }
                    c @ (op::BINGET | op::LONG_BINGET) if room => {
                        let (idx, next) = if c == op::BINGET {
                            match data.get(pos + 1) {
                                Some(&i) => (i as u64, pos + 2),
                                None => break,
                            }
                        } else {
                            match le4(data, pos + 1) {
                                Some(b) => (u32::from_le_bytes(b) as u64, pos + 5),
                                None => break,
                            }
                        };
                        if next > end {
                            break;
                        }
                        let Some(v) = self.memo.get(idx) else { break };
                        self.stack.push(v);
                        top = Some(v);
                        scalars = 0;
                        next
                    }
                    c @ (op::TUPLE | op::TUPLE1 | op::TUPLE2 | op::TUPLE3 | op::EMPTY_TUPLE) => {
                        // Where the items start, and the fence once TUPLE has taken its mark.
                        let len = self.stack.len();
                        let (start, fence) = match c {
                            op::TUPLE => match self.marks.len() {
                                0 => break,
                                k => (
                                    self.marks[k - 1],
                                    if k >= 2 { self.marks[k - 2] } else { 0 },
                                ),
                            },
                            op::EMPTY_TUPLE if room => (len, self.fence()),
                            op::EMPTY_TUPLE => break,
                            _ => match len.checked_sub((c - op::TUPLE1 + 1) as usize) {
                                Some(s) => (s, self.fence()),
                                None => break,
                            },
                        };
                        // (An empty tuple on a full stack: the push fails in `step`.)
                        if start < fence || start > len || (start == len && !room) {
                            break;
                        }
                        if self.arena.wants_collect() {
                            self.collect();
                        }
                        if c == op::TUPLE {
                            self.marks.pop();
                        }
                        if c != op::EMPTY_TUPLE && len - start <= value::INLINE {
                            let id = self.arena.small_tuple_id(
                                &self.stack[start..],
                                top.filter(|_| start < len),
                                scalars >= len - start,
                                lim.max_value_depth,
                            );
                            self.stack.truncate(start);
                            // Made here from the id, not returned as a `Val` (see
                            // `Arena::small_tuple_id`).
                            let v = match id {
                                Some(id) => Val::Node(id),
                                None => Val::Unknown,
                            };
                            self.stack.push(v);
                            top = Some(v);
                            scalars = 0;
                            ops += 1;
                            pos += 1;
                            continue;
                        }
                        let v = if c == op::EMPTY_TUPLE {
                            self.tuple(Vec::new())
                        } else {
                            match self.tuple_from_stack(start) {
                                Ok(v) => v,
                                Err(_) => break, // not reached: checked above
                            }
                        };
                        self.stack.push(v);
                        top = Some(v);
                        scalars = 0;
                        pos + 1
                    }
                    c @ (op::EMPTY_LIST | op::EMPTY_DICT) if room => {
                        if self.arena.wants_collect() {
                            self.collect();
                        }
                        let v = self.new_coll(if c == op::EMPTY_LIST {
                            NodeKind::List
                        } else {
                            NodeKind::Dict
                        });
                        self.stack.push(v);
                        top = Some(v);
                        scalars = 0;
                        pos + 1
                    }
                    c @ (op::APPEND | op::APPENDS | op::SETITEM | op::SETITEMS) => {
                        // Only onto a plain list / dict (or a list the memo kept the type of):
                        // what `do_append` / `do_setitems` do without a call or an error.
                        let len = self.stack.len();
                        let (x, fence) = match c {
                            op::APPEND | op::SETITEM => {
                                let k = if c == op::APPEND { 1 } else { 2 };
                                match len.checked_sub(k) {
                                    Some(x) => (x, self.fence()),
                                    None => break,
                                }
                            }
                            _ => match self.marks.len() {
                                0 => break,
                                k => (
                                    self.marks[k - 1],
                                    if k >= 2 { self.marks[k - 2] } else { 0 },
                                ),
                            },
                        };
                        if x == 0 || x > len || x < fence {
                            break;
                        }
                        let target = self.stack[x - 1];
                        let list = c == op::APPEND || c == op::APPENDS;
                        let ok = match self.arena.kind(&target) {
                            Some(NodeKind::List(_)) => list,
                            Some(NodeKind::Dict(_)) => !list && (len - x).is_multiple_of(2),
                            None => list && matches!(target, Val::Opaque(Opaque::List, _)),
                            _ => false,
                        };
                        if !ok {
                            break;
                        }
                        if c == op::APPENDS || c == op::SETITEMS {
                            self.marks.pop();
                        }
                        match (list, target) {
                            (true, Val::Node(id)) => self.extend_plain(id, x),
                            (false, Val::Node(id)) => {
                                let mut i = x;
                                while i + 1 < len {
                                    let (k, v) = (self.stack[i], self.stack[i + 1]);
                                    self.add_pair(id, k, v);
                                    i += 2;
                                }
                            }
                            _ => {}
                        }
                        self.stack.truncate(x);
                        top = None;
                        scalars = 0;
                        pos + 1
                    }
                    _ => break,
                };
                ops += 1;
                pos = next;
            }
            self.report.opcodes = ops;
            self.r.advance_to(pos);
            // At the end of a frame the plain region may go on (in memory, a read may now
            // cross where the frame ended); otherwise the general path takes over.
            if pos < end || self.r.plain_end() <= end {
                return;
            }
        }
    }

    // -----------------------------------------------------------------------------------------
    // The loop

    fn step(&mut self, off: usize) -> Result<Flow, Brk> {
        if self.report.opcodes >= self.lim().max_opcodes {
            return Err(AnomalyKind::LimitExceeded {
                limit: "max_opcodes".into(),
            });
        }
        let code = self.r.byte().map_err(|e| self.read_err(e))?;
        if self.trace.is_none() {
            // The opcodes that make up large data pickles, decoded in place (the generic
            // path below decodes by argument kind, then dispatches again). Counted first, as
            // there: an opcode whose argument is truncated still counts.
            self.report.opcodes += 1;
            let arg = match code {
                op::BININT1 | op::BINPUT | op::BINGET => {
                    Arg::Int(self.r.byte().map_err(|e| self.read_err(e))? as i64)
                }
                op::BININT2 => Arg::Int(u16::from_le_bytes(
                    self.r.array().map_err(|e| self.read_err(e))?,
                ) as i64),
                op::BININT => Arg::Int(i32::from_le_bytes(
                    self.r.array().map_err(|e| self.read_err(e))?,
                ) as i64),
                op::LONG_BINPUT | op::LONG_BINGET => Arg::Int(u32::from_le_bytes(
                    self.r.array().map_err(|e| self.read_err(e))?,
                ) as i64),
                op::BINFLOAT => {
                    let f = f64::from_be_bytes(self.r.array().map_err(|e| self.read_err(e))?);
                    self.push(Val::Float(f))?;
                    return Ok(Flow::Go);
                }
                op::SHORT_BINUNICODE => {
                    let n = self.r.byte().map_err(|e| self.read_err(e))? as u64;
                    let Arg::Data(s, n) = self.counted(n)? else {
                        return Err(bad("data"));
                    };
                    let v = if self.bytes_of(s, n).is_ascii() {
                        self.str_val(s, n)
                    } else {
                        self.unicode_val(s, n)?
                    };
                    self.push(v)?;
                    return Ok(Flow::Go);
                }
                op::MEMOIZE
                | op::MARK
                | op::TUPLE
                | op::TUPLE1
                | op::TUPLE2
                | op::TUPLE3
                | op::EMPTY_TUPLE
                | op::EMPTY_LIST
                | op::EMPTY_DICT
                | op::APPEND
                | op::APPENDS
                | op::SETITEM
                | op::SETITEMS
                | op::NONE
                | op::NEWTRUE
                | op::NEWFALSE => Arg::None,
                _ => {
                    self.report.opcodes -= 1;
                    return self.step_generic(code, off);
                }
            };
            return self.exec(code, off, arg);
        }
        self.step_generic(code, off)
    }

    fn step_generic(&mut self, code: u8, off: usize) -> Result<Flow, Brk> {
        let Some(info) = op::lookup(code) else {
            return Err(AnomalyKind::InvalidOpcode { byte: code });
        };
        self.report.opcodes += 1;
        let arg = self.decode(info)?;
        if let Some(t) = self.trace.as_mut() {
            t.op(off as u64, info, &arg, self.data, self.marks.len());
        }
        self.exec(code, off, arg)
    }

    fn exec(&mut self, code: u8, off: usize, arg: Arg) -> Result<Flow, Brk> {
        match code {
            op::MARK => {
                if self.marks.len() >= self.lim().max_marks {
                    return Err(AnomalyKind::LimitExceeded {
                        limit: "max_marks".into(),
                    });
                }
                self.marks.push(self.stack.len());
            }
            op::STOP => return self.stop(off),
            op::POP => {
                // load_pop: removes the top mark if it sits at the current height (§1.5).
                if self.marks.last() == Some(&self.stack.len()) {
                    self.marks.pop();
                } else {
                    self.pop()?;
                }
            }
            op::POP_MARK => {
                let m = self.marker()?;
                self.stack.truncate(m);
            }
            op::DUP => {
                let v = *self.top()?;
                self.push(v)?;
                self.arena.share(&v);
            }
            op::NONE => self.push(Val::None)?,
            op::NEWTRUE => self.push(Val::Bool(true))?,
            op::NEWFALSE => self.push(Val::Bool(false))?,
            op::BININT | op::BININT1 | op::BININT2 => {
                let Arg::Int(i) = arg else {
                    return Err(bad("int"));
                };
                self.push(Val::Int(i))?;
            }
            op::INT => self.op_int(off, arg)?,
            op::LONG => {
                let Arg::Line(s, n) = arg else {
                    return Err(bad("line"));
                };
                if n == 0 {
                    return Err(AnomalyKind::Truncated);
                }
                let line = self.number_line(off, s, n);
                let v = text::c_long(line).ok_or_else(|| bad("invalid literal for LONG"))?;
                let v = self.int_val(v);
                self.push(v)?;
            }
            op::LONG1 | op::LONG4 => {
                let Arg::Data(s, n) = arg else {
                    return Err(bad("data"));
                };
                let v = text::le_twos_complement(self.bytes_of(s, n));
                let v = self.int_val(v);
                self.push(v)?;
            }
            op::FLOAT => {
                let Arg::Line(s, n) = arg else {
                    return Err(bad("line"));
                };
                if n == 0 {
                    return Err(AnomalyKind::Truncated);
                }
                let line = self.number_line(off, s, n);
                let f =
                    text::c_float(line).ok_or_else(|| bad("could not convert string to float"))?;
                self.push(Val::Float(f))?;
            }
            op::BINFLOAT => {
                let Arg::Float(f) = arg else {
                    return Err(bad("float"));
                };
                self.push(Val::Float(f))?;
            }
            op::BINBYTES | op::SHORT_BINBYTES | op::BINBYTES8 | op::BYTEARRAY8 => {
                let Arg::Data(s, n) = arg else {
                    return Err(bad("data"));
                };
                let v = self.bytes_val(s, n, code == op::BYTEARRAY8);
                self.push(v)?;
            }
            op::STRING => self.op_string(arg)?,
            op::BINSTRING | op::SHORT_BINSTRING => {
                let Arg::Data(s, n) = arg else {
                    return Err(bad("data"));
                };
                // Python 2 str: decoded with the host's encoding. CPython's default ('ASCII',
                // strict) raises on non-ASCII; torch passes 'utf-8', numpy 'latin1'. Read it as
                // text when it is UTF-8 (what matters for STACK_GLOBAL), else as bytes.
                let v = if std::str::from_utf8(self.bytes_of(s, n)).is_ok() {
                    self.str_val(s, n)
                } else {
                    self.bytes_val(s, n, false)
                };
                self.push(v)?;
            }
            op::UNICODE => {
                let Arg::Line(s, n) = arg else {
                    return Err(bad("line"));
                };
                let raw = self.bytes_of(s, n);
                let v = if raw.is_ascii() && !raw.contains(&b'\\') {
                    self.str_val(s, n)
                } else {
                    let t = text::decode_raw_unicode_escape(raw)
                        .ok_or_else(|| bad("'rawunicodeescape' codec can't decode bytes"))?;
                    self.owned_str(t)
                };
                self.push(v)?;
            }
            op::BINUNICODE | op::SHORT_BINUNICODE | op::BINUNICODE8 => {
                let Arg::Data(s, n) = arg else {
                    return Err(bad("data"));
                };
                let v = self.unicode_val(s, n)?;
                self.push(v)?;
            }
            op::EMPTY_TUPLE => {
                let v = self.tuple(Vec::new());
                self.push(v)?;
            }
            op::TUPLE => {
                let m = self.marker()?;
                let v = self.tuple_from_stack(m)?;
                self.push(v)?;
            }
            op::TUPLE1 | op::TUPLE2 | op::TUPLE3 => {
                let n = (code - op::TUPLE1 + 1) as usize;
                if self.stack.len() < n {
                    return Err(self.underflow());
                }
                let v = self.tuple_from_stack(self.stack.len() - n)?;
                self.push(v)?;
            }
            op::EMPTY_LIST | op::EMPTY_DICT | op::EMPTY_SET => {
                let v = self.new_coll(match code {
                    op::EMPTY_LIST => NodeKind::List,
                    op::EMPTY_DICT => NodeKind::Dict,
                    _ => NodeKind::Set,
                });
                self.push(v)?;
            }
            op::LIST => {
                let m = self.marker()?;
                let items = self.pop_from(m)?;
                let v = self.new_coll(NodeKind::List);
                if let Val::Node(id) = v {
                    for it in items {
                        self.add_item(id, it);
                    }
                }
                self.push(v)?;
            }
            op::DICT => {
                let m = self.marker()?;
                if (self.stack.len() - m) % 2 != 0 {
                    return Err(loader("odd number of items for DICT"));
                }
                let items = self.pop_from(m)?;
                let v = self.new_coll(NodeKind::Dict);
                if let Val::Node(id) = v {
                    for kv in items.chunks_exact(2) {
                        self.add_pair(id, kv[0], kv[1]);
                    }
                }
                self.push(v)?;
            }
            op::FROZENSET => {
                let m = self.marker()?;
                let items = self.pop_from(m)?;
                let v = self.new_coll(NodeKind::FrozenSet);
                if let Val::Node(id) = v {
                    for it in items {
                        self.add_item(id, it);
                    }
                }
                self.push(v)?;
            }
            op::APPEND => {
                let x = self.stack.len().wrapping_sub(1);
                self.do_append(off, x, CallKind::Append)?;
            }
            op::APPENDS => {
                let m = self.marker()?;
                self.do_append(off, m, CallKind::Append)?;
            }
            op::ADDITEMS => {
                let m = self.marker()?;
                self.do_append(off, m, CallKind::AddItems)?;
            }
            op::SETITEM => {
                let x = self.stack.len().wrapping_sub(2);
                self.do_setitems(off, x)?;
            }
            op::SETITEMS => {
                let m = self.marker()?;
                self.do_setitems(off, m)?;
            }
            op::GLOBAL | op::INST => self.op_global(code, off, arg)?,
            op::STACK_GLOBAL => self.op_stack_global(off)?,
            op::REDUCE => {
                let args = self.pop()?;
                let callable = self.pop()?;
                check_callable(&self.arena, &callable)?;
                if !maybe_tuple(&self.arena, &args) {
                    return Err(loader("argument list must be a tuple"));
                }
                self.call(CallKind::Reduce, off, callable, args, None)?;
            }
            op::NEWOBJ | op::NEWOBJ_EX => {
                let kwargs = if code == op::NEWOBJ_EX {
                    Some(self.pop()?)
                } else {
                    None
                };
                let args = self.pop()?;
                let cls = self.pop()?;
                check_callable(&self.arena, &cls)
                    .map_err(|_| loader("NEWOBJ class argument must be a type"))?;
                if !maybe_tuple(&self.arena, &args) {
                    return Err(loader("NEWOBJ args argument must be a tuple"));
                }
                let kind = if code == op::NEWOBJ {
                    CallKind::NewObj
                } else {
                    CallKind::NewObjEx
                };
                self.call(kind, off, cls, args, kwargs)?;
            }
            op::OBJ => {
                let m = self.marker()?;
                if self.stack.len() < m + 1 {
                    return Err(self.underflow());
                }
                let args = self.pop_from(m + 1)?;
                let cls = self.pop()?;
                check_callable(&self.arena, &cls)?;
                let args = self.tuple(args);
                self.call(CallKind::Obj, off, cls, args, None)?;
            }
            op::BUILD => self.op_build(off)?,
            op::PUT | op::BINPUT | op::LONG_BINPUT => {
                // Stores the top without popping; underflow on an empty stack or after MARK.
                let idx = match arg {
                    Arg::Int(i) => i as i128,
                    _ => self.text_index(off, arg)?,
                };
                let v = *self.top()?;
                if idx < 0 {
                    return Err(loader("negative PUT argument"));
                }
                self.memo_put(off, idx as u64, v)?;
            }
            op::MEMOIZE => {
                let v = *self.top()?;
                let idx = self.memo.len() as u64;
                self.memo_put(off, idx, v)?;
            }
            op::GET | op::BINGET | op::LONG_BINGET => {
                let idx = match arg {
                    Arg::Int(i) => i as i128,
                    _ => self.text_index(off, arg)?,
                };
                let idx = u64::try_from(idx).map_err(|_| AnomalyKind::MemoMissing { index: 0 })?;
                let v = self
                    .memo
                    .get(idx)
                    .ok_or(AnomalyKind::MemoMissing { index: idx })?;
                self.note(|| format!("memo[{idx}]"));
                self.push(v)?;
            }
            op::PERSID => {
                let Arg::Line(s, n) = arg else {
                    return Err(bad("line"));
                };
                let raw = self.bytes_of(s, n);
                if !raw.is_ascii() {
                    return Err(bad("'ascii' codec can't decode persistent id"));
                }
                let pid = self.str_val(s, n);
                self.persistent(off, pid)?;
            }
            op::BINPERSID => {
                let pid = self.pop()?;
                self.persistent(off, pid)?;
            }
            op::EXT1 | op::EXT2 | op::EXT4 => {
                let Arg::Int(code) = arg else {
                    return Err(bad("ext"));
                };
                if code <= 0 {
                    return Err(loader("EXT specifies code <= 0"));
                }
                // §1.7: the copyreg registry is empty unless the host registered codes, so the
                // load fails here; the code itself is worth a finding.
                self.anomaly(off, AnomalyKind::ExtCode { code });
                return Err(loader(format!("unregistered extension code {code}")));
            }
            op::PROTO => {
                let Arg::Int(p) = arg else {
                    return Err(bad("proto"));
                };
                let p = p as u8;
                if p > 5 {
                    return Err(AnomalyKind::UnsupportedProtocol { proto: p });
                }
                // Each PROTO resets `proto`, anywhere in the stream (§1.3).
                self.proto = p;
                self.report.proto = self.report.proto.max(p);
            }
            op::FRAME => {
                let Arg::U64(n) = arg else {
                    return Err(bad("frame"));
                };
                let at = self.r.pos();
                self.r.frame(n).map_err(|e| self.read_err(e))?;
                self.note(|| format!("frame [{at}..{})", (at as u64).saturating_add(n)));
            }
            op::NEXT_BUFFER => {
                return Err(loader(
                    "pickle stream refers to out-of-band data but no *buffers* argument was given",
                ));
            }
            op::READONLY_BUFFER => {
                let v = self.top()?;
                if matches!(
                    v,
                    Val::None
                        | Val::Bool(_)
                        | Val::Int(_)
                        | Val::Float(_)
                        | Val::Str(_)
                        | Val::Opaque(Opaque::Str | Opaque::Tuple | Opaque::List | Opaque::Dict, _)
                ) || matches!(
                    self.arena.kind(v),
                    Some(
                        NodeKind::Text { .. }
                            | NodeKind::Tuple(_)
                            | NodeKind::List(_)
                            | NodeKind::Dict(_)
                    )
                ) {
                    return Err(loader("memoryview: a bytes-like object is required"));
                }
            }
            other => return Err(AnomalyKind::InvalidOpcode { byte: other }),
        }
        Ok(Flow::Go)
    }

    fn stop(&mut self, off: usize) -> Result<Flow, Brk> {
        // STOP pops the top; a MARK on top is "unexpected MARK found", items below are ignored.
        let v = self.pop()?;
        self.report.end = Some(self.r.pos() as u64);
        let left = self.r.frame_left();
        if left > 0 {
            self.anomaly(off, AnomalyKind::FrameRunsPastStop { bytes: left as u64 });
        }
        let depth = self.lim().max_value_depth.clamp(1, 256);
        self.report.result = Some(value::materialize(&self.arena, &v, self.data, depth));
        Ok(Flow::Stop)
    }

    fn op_int(&mut self, off: usize, arg: Arg) -> Result<(), Brk> {
        let Arg::Line(s, n) = arg else {
            return Err(bad("line"));
        };
        if n == 0 {
            // C: len < 2 (just the newline) is bad_readline.
            return Err(AnomalyKind::Truncated);
        }
        let line = self.number_line(off, s, n);
        let (v, is_bool) =
            text::c_int(line).ok_or_else(|| bad("could not convert string to int"))?;
        let v = match (v, is_bool) {
            (IntVal::Small(x), true) => Val::Bool(x == 1),
            (v, _) => self.int_val(v),
        };
        self.push(v)
    }

    fn op_string(&mut self, arg: Arg) -> Result<(), Brk> {
        let Arg::Line(s, n) = arg else {
            return Err(bad("line"));
        };
        let raw = self.bytes_of(s, n);
        // load_string: the argument must be quoted with matching ' or ".
        let quoted =
            raw.len() >= 2 && raw[0] == raw[raw.len() - 1] && (raw[0] == b'\'' || raw[0] == b'"');
        if !quoted {
            return Err(loader("the STRING opcode argument must be quoted"));
        }
        let inner = &raw[1..raw.len() - 1];
        let v = if !inner.contains(&b'\\') {
            if std::str::from_utf8(inner).is_ok() {
                self.str_val(s + 1, n - 2)
            } else {
                self.bytes_val(s + 1, n - 2, false)
            }
        } else {
            let dec =
                text::decode_escape(inner).ok_or_else(|| bad("invalid \\x escape in STRING"))?;
            match String::from_utf8(dec) {
                Ok(t) => self.owned_str(t),
                Err(e) => {
                    let b = e.into_bytes();
                    let len = b.len() as u64;
                    let cut = b.len().min(self.lim().max_kept_bytes);
                    self.alloc(
                        NodeKind::Blob {
                            kept: b[..cut].into(),
                            len,
                            bytearray: false,
                        },
                        0,
                        true,
                    )
                }
            }
        };
        self.push(v)
    }

    fn line_text(&self, l: (usize, usize), ascii: bool) -> Result<&'a str, Brk> {
        let raw = self.bytes_of(l.0, l.1);
        if l.1 == 0 {
            // C: a line of just "\n" is bad_readline ("pickle data was truncated").
            return Err(bad("empty module or name line"));
        }
        if ascii && !raw.is_ascii() {
            return Err(bad("'ascii' codec can't decode INST line"));
        }
        std::str::from_utf8(raw).map_err(|_| bad("'utf-8' codec can't decode GLOBAL line"))
    }

    fn op_global(&mut self, code: u8, off: usize, arg: Arg) -> Result<(), Brk> {
        let Arg::Lines(a, b) = arg else {
            return Err(bad("lines"));
        };
        let is_inst = code == op::INST;
        if is_inst {
            // marker() happened before the lines were read (checked in decode).
            let m = self.marker()?;
            let module = self.line_text(a, true)?;
            let name = self.line_text(b, true)?;
            let cls = self.import(module, name, off, "INST");
            let args = self.pop_from(m)?;
            let args = self.tuple(args);
            return self.call(CallKind::Inst, off, cls, args, None);
        }
        let module = self.line_text(a, false)?;
        let name = self.line_text(b, false)?;
        let g = self.import(module, name, off, "GLOBAL");
        self.push(g)
    }

    /// The text of a `str` value: borrowed from the input when it is a span of it.
    fn text_of(&self, v: &Val) -> Option<Cow<'a, str>> {
        match v {
            Val::Str(s) => std::str::from_utf8(s.bytes(self.data))
                .ok()
                .map(Cow::Borrowed),
            _ => self
                .arena
                .as_str(v, self.data)
                .map(|t| Cow::Owned(t.to_owned())),
        }
    }

    fn op_stack_global(&mut self, off: usize) -> Result<(), Brk> {
        let name = self.pop()?;
        let module = self.pop()?;
        let (m, n) = (self.text_of(&module), self.text_of(&name));
        if let (Some(m), Some(n)) = (m, n) {
            let g = self.import(&m, &n, off, "STACK_GLOBAL");
            return self.push(g);
        }
        // Exact str only (§1.6). A value the machine cannot know (a call result, a persistent
        // object) might be a str at run time: report it as a dynamic import.
        let unknowable = |v: &Val| {
            matches!(
                v,
                Val::Unknown | Val::OpaqueCall(..) | Val::Opaque(Opaque::Str, _)
            ) || matches!(
                self.arena.kind(v),
                Some(NodeKind::Call(_) | NodeKind::Persistent(_))
            )
        };
        let ok = |v: &Val| self.arena.as_str(v, self.data).is_some() || unknowable(v);
        if !(ok(&module) && ok(&name)) {
            return Err(loader("STACK_GLOBAL requires str"));
        }
        let detail = format!("{}, {}", self.render(&module), self.render(&name));
        self.anomaly(
            off,
            AnomalyKind::DynamicImport {
                detail: detail.clone(),
            },
        );
        let g = GlobalRef {
            module: DYNAMIC_MODULE.to_owned(),
            name: detail.clone(),
            raw_module: self.render(&module),
            raw_name: self.render(&name),
            offset: off as u64,
            opcode: "STACK_GLOBAL",
            proto: self.proto,
        };
        self.record_global(&g);
        let v = self.alloc(NodeKind::Global(Box::new(g)), 0, false);
        self.push(v)
    }

    /// Records a call and pushes its (symbolic) result.
    fn call(
        &mut self,
        kind: CallKind,
        off: usize,
        callable: Val,
        args: Val,
        kwargs: Option<Val>,
    ) -> Result<(), Brk> {
        let (g, computed) = self.callee(&callable);
        let want = self.want_call(kind, g, computed);
        let a = &self.arena;
        let depth = a
            .depth(&callable)
            .max(a.depth(&args))
            .max(kwargs.as_ref().map_or(0, |k| a.depth(k)))
            .saturating_add(1);
        let storage = a.holds_storage(&callable)
            || a.holds_storage(&args)
            || kwargs.as_ref().is_some_and(|k| a.holds_storage(k));
        let v = if depth as usize > self.lim().max_value_depth {
            Val::Unknown
        } else {
            let v = self.alloc(
                NodeKind::Call(Box::new(CallNode {
                    kind,
                    callable,
                    args,
                    kwargs,
                    state: None,
                    extra: Coll::default(),
                })),
                depth,
                false,
            );
            self.set_storage(&v, storage);
            v
        };
        if want {
            let mut summary = self.render(&v);
            if kind == CallKind::NewObj || kind == CallKind::NewObjEx {
                summary.push_str(" [__new__]");
            }
            let g = self.gref(g);
            self.record_call(kind, off, g, computed, summary);
        }
        self.push(v)
    }

    fn persistent(&mut self, off: usize, pid: Val) -> Result<(), Brk> {
        let summary = self.render(&pid);
        self.note(|| format!("persistent id {summary}"));
        self.report.persistent_ids.push(PersistentId {
            offset: off as u64,
            summary: summary.clone(),
        });
        if self.want_call(CallKind::PersistentLoad, None, false) {
            self.record_call(
                CallKind::PersistentLoad,
                off,
                None,
                false,
                format!("persistent_load({summary})"),
            );
        }
        let depth = self.arena.depth(&pid).saturating_add(1);
        let v = if depth as usize > self.lim().max_value_depth {
            Val::Unknown
        } else {
            self.alloc(NodeKind::Persistent(pid), depth, false)
        };
        self.push(v)
    }

    fn memo_put(&mut self, off: usize, idx: u64, v: Val) -> Result<(), Brk> {
        if idx >= MEMO_HUGE {
            self.anomaly(off, AnomalyKind::MemoHuge { index: idx });
        }
        if self.memo.len() >= self.lim().max_memo_entries && !self.memo.contains(idx) {
            return Err(AnomalyKind::LimitExceeded {
                limit: "max_memo_entries".into(),
            });
        }
        self.note(|| format!("memo[{idx}] ="));
        self.memo.put(idx, v, &mut self.arena);
        Ok(())
    }

    /// `do_append` (APPEND, APPENDS) and `load_additems` (§1.9).
    fn do_append(&mut self, off: usize, x: usize, kind: CallKind) -> Result<(), Brk> {
        let len = self.stack.len();
        if x > len || x == 0 {
            return Err(self.underflow());
        }
        if x == len {
            return Ok(()); // nothing to do: no method is looked up or called
        }
        if x < self.fence() {
            return Err(self.underflow()); // what pop_from(x) checks
        }
        let target = self.stack[x - 1];
        let plain = match (kind, self.arena.kind(&target)) {
            (CallKind::Append, Some(NodeKind::List(_))) => true,
            (CallKind::AddItems, Some(NodeKind::Set(_))) => true,
            // Containers the memo kept only the type of: the items are dropped.
            _ => matches!(
                (kind, &target),
                (CallKind::Append, Val::Opaque(Opaque::List, _))
                    | (CallKind::AddItems, Val::Opaque(Opaque::Set, _))
            ),
        };
        if plain {
            // The items move straight from the stack (no vector per batch).
            if let Val::Node(id) = target {
                self.extend_plain(id, x);
            }
            self.stack.truncate(x);
            return Ok(());
        }
        let items = self.pop_from(x)?;
        if !is_object(&self.arena, &target) {
            let what = if kind == CallKind::Append {
                "extend"
            } else {
                "add"
            };
            return Err(loader(format!("object has no attribute '{what}'")));
        }
        let (g, computed) = self.class_of(&target);
        if self.want_call(kind, g, computed) {
            let items_t = self.tuple(items.clone());
            let method = if kind == CallKind::Append {
                "extend"
            } else {
                "add"
            };
            let summary = format!(
                "{}.{method}({})",
                self.render(&target),
                self.render(&items_t)
            );
            let g = self.gref(g);
            self.record_call(kind, off, g, computed, summary);
        }
        if let (Some(NodeKind::Call(_)), Val::Node(id)) = (self.arena.kind(&target), target) {
            for it in items {
                self.add_item(id, it);
            }
        }
        Ok(())
    }

    /// Adds the stack values from `x` up to the plain list or set `id` (they stay on the stack;
    /// the caller truncates). Once the list keeps all it may, only the count and storage-holding
    /// values (torch tensors, kept up to [`KEEP_NONPLAIN`]) need a look, so a batch of a
    /// data pickle's APPENDS costs one pass over the stack; the values not kept are discarded
    /// (their slots are free again if nothing else refers to them).
    fn extend_plain(&mut self, id: NodeId, x: usize) {
        let end = self.stack.len();
        let mut i = x;
        while i < end {
            let full = matches!(self.arena.coll_mut(id), Some(c) if c.items.len() >= KEEP_PLAIN);
            if full {
                let mut count = 0u64;
                while let Some(it) = self.stack.get(i) {
                    if !self.arena.discard_plain(it) {
                        break;
                    }
                    count += 1;
                    i += 1;
                }
                if let Some(c) = self.arena.coll_mut(id) {
                    c.len += count;
                }
            }
            if let Some(&it) = self.stack.get(i) {
                self.add_item(id, it);
                i += 1;
            }
        }
    }

    /// `do_setitems` (SETITEM, SETITEMS): `obj[k] = v` on any object.
    fn do_setitems(&mut self, off: usize, x: usize) -> Result<(), Brk> {
        let len = self.stack.len();
        if x > len || x == 0 {
            return Err(self.underflow());
        }
        if x == len {
            return Ok(());
        }
        if (len - x) % 2 != 0 {
            return Err(loader("odd number of items for SETITEMS"));
        }
        // C clears down to x without a fence check (it only asserts); refuse instead of
        // reading below a mark.
        if x < self.fence() {
            return Err(self.underflow()); // what pop_from(x) checks
        }
        let target = self.stack[x - 1];
        if let (Some(NodeKind::Dict(_)), Val::Node(id)) = (self.arena.kind(&target), target) {
            // The pairs move straight from the stack (no vector per batch).
            let mut i = x;
            while i + 1 < self.stack.len() {
                let (k, v) = (self.stack[i], self.stack[i + 1]);
                self.add_pair(id, k, v);
                i += 2;
            }
            self.stack.truncate(x);
            return Ok(());
        }
        let items = self.pop_from(x)?;
        match self.arena.kind(&target) {
            // list[i] = v: a plain store (no Python code) when it succeeds.
            Some(NodeKind::List(_)) => Ok(()),
            None if matches!(target, Val::Opaque(Opaque::Dict | Opaque::List, _)) => Ok(()),
            _ if is_object(&self.arena, &target) => {
                let (g, computed) = self.class_of(&target);
                if self.want_call(CallKind::SetItem, g, computed) {
                    let first = match (items.first(), items.get(1)) {
                        (Some(k), Some(v)) => {
                            format!("{}] = {}", self.render(k), self.render(v))
                        }
                        _ => String::new(),
                    };
                    let more = if items.len() > 2 {
                        format!(" (+{} more)", items.len() / 2 - 1)
                    } else {
                        String::new()
                    };
                    let summary = format!("{}[{first}{more}", self.render(&target));
                    let g = self.gref(g);
                    self.record_call(CallKind::SetItem, off, g, computed, summary);
                }
                if let (Some(NodeKind::Call(_)), Val::Node(id)) = (self.arena.kind(&target), target)
                {
                    for kv in items.chunks_exact(2) {
                        self.add_pair(id, kv[0], kv[1]);
                    }
                }
                Ok(())
            }
            _ => Err(loader("object does not support item assignment")),
        }
    }

    /// BUILD: `inst.__setstate__(state)` or `__dict__`/setattr updates (§1.9).
    fn op_build(&mut self, off: usize) -> Result<(), Brk> {
        if self.stack.len() < self.fence() + 2 {
            return Err(self.underflow());
        }
        let state = self.pop()?;
        let inst = *self.top()?;
        if is_object(&self.arena, &inst) {
            let (g, computed) = self.class_of(&inst);
            if self.want_call(CallKind::Build, g, computed) {
                let summary = format!(
                    "{}.__setstate__({})",
                    self.render(&inst),
                    self.render(&state)
                );
                let g = self.gref(g);
                self.record_call(CallKind::Build, off, g, computed, summary);
            }
        } else if !matches!(state, Val::None) {
            // Plain containers have neither __setstate__ nor __dict__.
            return Err(loader("BUILD state on an object without __dict__"));
        }
        let joblib_layout = if self.opts.joblib_arrays {
            joblib::wrapper_layout(&self.arena, &inst, &state, self.data)
        } else {
            None
        };
        if let (Some(NodeKind::Call(_)), Val::Node(id)) = (self.arena.kind(&inst), inst) {
            let st = self.fit(id, state);
            if let Some(NodeKind::Call(c)) = self.arena.node_mut(id).map(|n| &mut n.kind) {
                c.state = Some(st);
            }
        }
        if let Some(layout) = joblib_layout {
            self.joblib_skip(off, layout)?;
        }
        Ok(())
    }

    /// After the BUILD of a `NumpyArrayWrapper`, the host reads the array from the file itself
    /// (FORMATS-FACTS §3.3): padding byte, padding, raw bytes; or a nested pickle for objects.
    fn joblib_skip(
        &mut self,
        off: usize,
        layout: Result<joblib::Layout, String>,
    ) -> Result<(), Brk> {
        let layout = match layout {
            Ok(l) => l,
            Err(detail) => {
                self.anomaly(
                    off,
                    AnomalyKind::JoblibArray {
                        detail: detail.clone(),
                    },
                );
                return Err(loader(format!("joblib array of unknown size: {detail}")));
            }
        };
        if self.r.frame_left() > 0 {
            self.anomaly(
                off,
                AnomalyKind::JoblibArray {
                    detail: "frame still holds bytes at the array".into(),
                },
            );
        }
        let mut pos = self.r.raw_position();
        let start = pos;
        match layout.bytes {
            None => return self.joblib_nested(pos),
            Some(nbytes) => {
                if layout.aligned {
                    let p = *self.data.get(pos).ok_or(AnomalyKind::Truncated)? as usize;
                    pos = pos.checked_add(1 + p).ok_or(AnomalyKind::Truncated)?;
                }
                let end = (pos as u64)
                    .checked_add(nbytes)
                    .filter(|e| *e <= self.data.len() as u64);
                let Some(end) = end else {
                    if nbytes >= HUGE_LENGTH {
                        self.anomaly(pos, AnomalyKind::HugeLength { declared: nbytes });
                    }
                    self.r.skip_raw_to(self.data.len());
                    return Err(AnomalyKind::Truncated);
                };
                self.note(|| format!("joblib raw array [{start}..{end}) ({nbytes} data bytes)"));
                self.report.raw_regions.push(RawRegion {
                    offset: start as u64,
                    len: end - start as u64,
                    what: format!("joblib array data ({nbytes} bytes at {pos})"),
                });
                self.r.skip_raw_to(end as usize);
            }
        }
        Ok(())
    }

    /// An object array: `pickle.load(file_handle)` by the C unpickler, in the middle of ours.
    fn joblib_nested(&mut self, pos: usize) -> Result<(), Brk> {
        if self.nesting >= MAX_NESTING {
            return Err(AnomalyKind::LimitExceeded {
                limit: "joblib nesting".into(),
            });
        }
        let mut inner = Machine::new(self.data, pos, ReadMode::FileNoPeek, self.opts);
        inner.nesting = self.nesting + 1;
        let sub = inner.run();
        self.note(|| format!("joblib nested pickle [{pos}..{})", sub.next));
        for g in &sub.globals {
            self.record_global(g);
        }
        self.report.calls.extend(sub.calls);
        self.report.calls_repeated += sub.calls_repeated;
        self.report.persistent_ids.extend(sub.persistent_ids);
        self.report.anomalies.extend(sub.anomalies);
        self.report.raw_regions.extend(sub.raw_regions);
        self.report.opcodes += sub.opcodes;
        self.report.raw_regions.push(RawRegion {
            offset: pos as u64,
            len: sub.next.saturating_sub(pos as u64),
            what: "joblib object array (nested pickle)".into(),
        });
        if sub.end.is_none() {
            self.r.skip_raw_to(sub.next as usize);
            return Err(loader("nested joblib pickle failed"));
        }
        self.r.skip_raw_to(sub.next as usize);
        Ok(())
    }
}

/// `b.is_ascii()`, with the short texts of pickles checked as two overlapping words (the
/// library's check goes byte by byte below a word's length).
#[inline(always)]
fn ascii(b: &[u8]) -> bool {
    let n = b.len();
    let w8 = |i: usize| {
        b.get(i..i + 8)
            .and_then(|w| w.try_into().ok())
            .map_or(!0, u64::from_le_bytes)
    };
    let w4 = |i: usize| {
        b.get(i..i + 4)
            .and_then(|w| w.try_into().ok())
            .map_or(!0, u32::from_le_bytes)
    };
    if (8..=16).contains(&n) {
        (w8(0) | w8(n - 8)) & 0x8080_8080_8080_8080 == 0
    } else if (4..8).contains(&n) {
        (w4(0) | w4(n - 4)) & 0x8080_8080 == 0
    } else {
        b.is_ascii()
    }
}

/// Four bytes at `at`, if there are.
#[inline]
fn le4(data: &[u8], at: usize) -> Option<[u8; 4]> {
    data.get(at..at.checked_add(4)?)?.try_into().ok()
}

/// Objects whose methods a mutation calls: call results, globals, persistent objects and values
/// the machine cannot know.
fn is_object(a: &Arena, v: &Val) -> bool {
    matches!(v, Val::Unknown | Val::OpaqueCall(..))
        || matches!(
            a.kind(v),
            Some(NodeKind::Call(_) | NodeKind::Global(_) | NodeKind::Persistent(_))
        )
}

/// Definitely-not-callable values make REDUCE/NEWOBJ/OBJ raise TypeError before any call.
fn check_callable(a: &Arena, v: &Val) -> Result<(), Brk> {
    if is_object(a, v) {
        Ok(())
    } else {
        Err(loader("object is not callable"))
    }
}

/// `args` must be a tuple; values the machine cannot know might be one.
fn maybe_tuple(a: &Arena, v: &Val) -> bool {
    matches!(
        v,
        Val::Unknown | Val::OpaqueCall(..) | Val::Opaque(Opaque::Tuple, _)
    ) || matches!(
        a.kind(v),
        Some(NodeKind::Tuple(_) | NodeKind::Call(_) | NodeKind::Persistent(_))
    )
}

/// The message stored with an anomaly.
pub(crate) fn describe(k: &AnomalyKind) -> String {
    match k {
        AnomalyKind::Truncated => "pickle data was truncated (no STOP)".into(),
        AnomalyKind::InvalidOpcode { byte } => format!("invalid load key, '\\x{byte:02x}'"),
        AnomalyKind::BadArgument { detail } => format!("bad argument: {detail}"),
        AnomalyKind::LoaderError { detail } => format!("the loader raises here: {detail}"),
        AnomalyKind::UnsupportedProtocol { proto } => {
            format!("unsupported pickle protocol: {proto}")
        }
        AnomalyKind::FrameStraddle => {
            "a read straddles the end of a FRAME; readers disagree about what follows".into()
        }
        AnomalyKind::FrameEarly => {
            "a FRAME begins while the previous frame still holds bytes".into()
        }
        AnomalyKind::FrameOverrun => "FRAME is longer than the remaining data".into(),
        AnomalyKind::MemoHuge { index } => {
            format!("memo index {index} would make CPython allocate a huge memo")
        }
        AnomalyKind::MemoMissing { index } => format!("Memo value not found at index {index}"),
        AnomalyKind::ExtCode { code } => {
            format!("EXT code {code} (resolves only through copyreg's registry)")
        }
        AnomalyKind::HugeLength { declared } => {
            format!("declared length {declared} exceeds the data")
        }
        AnomalyKind::TrailingData { bytes } => format!("{bytes} bytes after the last STOP"),
        AnomalyKind::NulInNumber => {
            "NUL inside a text number (C stops there; pickletools rejects it)".into()
        }
        AnomalyKind::LimitExceeded { limit } => format!("limit {limit} exceeded"),
        AnomalyKind::Resynchronised => "found by resynchronising after a break".into(),
        AnomalyKind::FrameRunsPastStop { bytes } => {
            format!(
                "the FRAME holds {bytes} bytes past STOP; a following load starts late on unpeekable files"
            )
        }
        AnomalyKind::DynamicImport { detail } => {
            format!("STACK_GLOBAL with computed operands: {detail}")
        }
        AnomalyKind::JoblibArray { detail } => format!("joblib array: {detail}"),
    }
}
