//! Symbolic values.
//!
//! Inside the machine a value is a [`Val`]: 16 bytes, `Copy`-cheap for primitives, strings and
//! bytes as spans into the input (no allocation per opcode), and `Rc<Node>` for containers,
//! globals and call results, so memo GETs share instead of copying (FORMATS-FACTS §1.4: the
//! memo holds references; later APPEND/SETITEM mutate the shared object). When a pickle STOPs,
//! the result is copied once into an owned, bounded, acyclic [`Value`] tree for callers.

use std::cell::{Cell, RefCell};
use std::fmt::Write as _;
use std::rc::Rc;

use serde::Serialize;

use super::{CallKind, GlobalRef};

/// Elements kept per container; the rest are counted. Elements that hold a storage
/// (`persistent_load` result: torch tensors) are kept up to [`KEEP_NONPLAIN`].
pub(crate) const KEEP_PLAIN: usize = 1024;
/// Storage-holding elements kept per container (torch state dicts keep every tensor below
/// this). Other objects are not kept past [`KEEP_PLAIN`]: what they do was recorded when they
/// were made, and keeping them would cost memory by the file's size.
pub(crate) const KEEP_NONPLAIN: usize = 100_000;
/// Nodes copied into an owned [`Value`] at most (beyond: `Unknown`).
const MATERIALIZE_BUDGET: usize = 500_000;

/// A span of the input: offset (40 bits) and length (24 bits) packed in one word.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Span(u64);

impl Span {
    pub(crate) fn new(off: usize, len: usize) -> Option<Span> {
        if (off as u64) < (1 << 40) && (len as u64) < (1 << 24) {
            Some(Span(((off as u64) << 24) | len as u64))
        } else {
            None
        }
    }
    pub(crate) fn off(self) -> usize {
        (self.0 >> 24) as usize
    }
    pub(crate) fn len(self) -> usize {
        (self.0 & 0xff_ffff) as usize
    }
    pub(crate) fn bytes(self, data: &[u8]) -> &[u8] {
        data.get(self.off()..self.off().saturating_add(self.len()))
            .unwrap_or(&[])
    }
}

/// A symbolic value on the machine's stack or in its memo.
#[derive(Clone, Debug)]
pub(crate) enum Val {
    None,
    Bool(bool),
    Int(i64),
    Float(f64),
    /// UTF-8 text, entirely within the input.
    Str(Span),
    /// Bytes, entirely within the input.
    Bytes(Span),
    /// Something the machine cannot know (a limit was hit, or a value only the host makes).
    Unknown,
    Node(Rc<Node>),
    /// A value the memo kept only the type and size of (see `memo.rs`): what a GET returns once
    /// the memo's budget for exact values is spent. The length is exact for `str`/`bytes`/tuples
    /// and the length at MEMOIZE time for mutable containers.
    Opaque(Opaque, u32),
    /// The result of a call that the memo kept only the callee of (a global, or `None` when
    /// the callable was itself computed).
    OpaqueCall(CallKind, Option<Rc<Node>>),
}

/// The type of an [`Val::Opaque`] value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Opaque {
    Str,
    Bytes,
    Tuple,
    List,
    Dict,
    Set,
    FrozenSet,
}

/// A heap value. `depth` and `plain` are kept up to date on insertion so that the machine can
/// bound nesting (`Limits::max_value_depth`) and decide what to keep.
#[derive(Debug)]
pub(crate) struct Node {
    pub depth: Cell<u16>,
    pub plain: Cell<bool>,
    /// Holds a `persistent_load` result somewhere inside (a torch tensor or storage).
    pub storage: Cell<bool>,
    pub kind: NodeKind,
}

#[derive(Debug)]
pub(crate) enum NodeKind {
    /// Text that is not a plain input span (decoded escapes, or longer than kept).
    Text {
        kept: Box<str>,
        len: u64,
    },
    Blob {
        kept: Box<[u8]>,
        len: u64,
        bytearray: bool,
    },
    BigInt(Box<str>),
    Tuple(Items),
    FrozenSet(Coll),
    List(RefCell<Coll>),
    Dict(RefCell<Coll>),
    Set(RefCell<Coll>),
    Global(Box<GlobalRef>),
    Call(Box<CallNode>),
    /// The result of the host's `persistent_load(pid)`.
    Persistent(Val),
}

/// A tuple's elements: up to [`INLINE`] of them inside the node itself (one allocation per
/// small tuple, which is what large data pickles are made of), more on the heap.
pub(crate) enum Items {
    Inline(u8, [Val; INLINE]),
    Heap(Vec<Val>),
}

pub(crate) const INLINE: usize = 4;

impl Items {
    pub(crate) fn from_vec(v: Vec<Val>) -> Items {
        Items::Heap(v)
    }

    /// Moves every element out.
    fn drain(&mut self, f: &mut impl FnMut(Val)) {
        match self {
            Items::Inline(n, a) => {
                for v in &mut a[..*n as usize] {
                    f(std::mem::replace(v, Val::None));
                }
                *n = 0;
            }
            Items::Heap(v) => std::mem::take(v).into_iter().for_each(f),
        }
    }
}

impl std::ops::Deref for Items {
    type Target = [Val];
    fn deref(&self) -> &[Val] {
        match self {
            Items::Inline(n, a) => &a[..*n as usize],
            Items::Heap(v) => v,
        }
    }
}

impl std::fmt::Debug for Items {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

/// A container's kept elements and its true length.
#[derive(Debug, Default)]
pub(crate) struct Coll {
    pub items: Vec<Val>,
    pub pairs: Vec<(Val, Val)>,
    pub len: u64,
}

/// The result of REDUCE / NEWOBJ / NEWOBJ_EX / INST / OBJ, later mutated by BUILD, APPEND,
/// SETITEM and ADDITEMS.
#[derive(Debug)]
pub(crate) struct CallNode {
    pub kind: CallKind,
    pub callable: Val,
    pub args: Val,
    pub kwargs: Option<Val>,
    pub state: RefCell<Option<Val>>,
    pub extra: RefCell<Coll>,
}

impl Node {
    pub(crate) fn new(kind: NodeKind, depth: u16, plain: bool) -> Rc<Node> {
        let storage = Cell::new(matches!(kind, NodeKind::Persistent(_)));
        Rc::new(Node {
            depth: Cell::new(depth),
            plain: Cell::new(plain),
            storage,
            kind,
        })
    }

    /// Moves every child node out (for iterative drop and cycle breaking).
    fn drain_into(&mut self, out: &mut Vec<Rc<Node>>) {
        let mut push = |v: Val| {
            if let Val::Node(n) = v {
                out.push(n);
            }
        };
        match &mut self.kind {
            NodeKind::Tuple(v) => v.drain(&mut push),
            NodeKind::FrozenSet(c) => drain_coll(c, &mut push),
            NodeKind::List(c) | NodeKind::Dict(c) | NodeKind::Set(c) => {
                drain_coll(c.get_mut(), &mut push)
            }
            NodeKind::Call(c) => {
                push(std::mem::replace(&mut c.callable, Val::None));
                push(std::mem::replace(&mut c.args, Val::None));
                if let Some(k) = c.kwargs.take() {
                    push(k);
                }
                if let Some(s) = c.state.get_mut().take() {
                    push(s);
                }
                drain_coll(c.extra.get_mut(), &mut push);
            }
            NodeKind::Persistent(v) => push(std::mem::replace(v, Val::None)),
            NodeKind::Text { .. }
            | NodeKind::Blob { .. }
            | NodeKind::BigInt(_)
            | NodeKind::Global(_) => {}
        }
    }

    /// Empties a shared node in place (used to break reference cycles at the end of a run).
    pub(crate) fn clear_shared(&self, out: &mut Vec<Rc<Node>>) {
        let mut push = |v: Val| {
            if let Val::Node(n) = v {
                out.push(n);
            }
        };
        match &self.kind {
            NodeKind::List(c) | NodeKind::Dict(c) | NodeKind::Set(c) => {
                if let Ok(mut c) = c.try_borrow_mut() {
                    drain_coll(&mut c, &mut push)
                }
            }
            NodeKind::Call(c) => {
                if let Ok(mut s) = c.state.try_borrow_mut() {
                    if let Some(s) = s.take() {
                        push(s)
                    }
                }
                if let Ok(mut e) = c.extra.try_borrow_mut() {
                    drain_coll(&mut e, &mut push)
                }
            }
            _ => {}
        }
    }

    /// Children, for graph walks.
    pub(crate) fn for_each_child(&self, f: &mut dyn FnMut(&Val)) {
        let coll = |c: &Coll, f: &mut dyn FnMut(&Val)| {
            c.items.iter().for_each(&mut *f);
            for (k, v) in &c.pairs {
                f(k);
                f(v);
            }
        };
        match &self.kind {
            NodeKind::Tuple(v) => v.iter().for_each(f),
            NodeKind::FrozenSet(c) => coll(c, f),
            NodeKind::List(c) | NodeKind::Dict(c) | NodeKind::Set(c) => {
                if let Ok(c) = c.try_borrow() {
                    coll(&c, f)
                }
            }
            NodeKind::Call(c) => {
                f(&c.callable);
                f(&c.args);
                if let Some(k) = &c.kwargs {
                    f(k)
                }
                if let Ok(s) = c.state.try_borrow() {
                    if let Some(s) = &*s {
                        f(s)
                    }
                }
                if let Ok(e) = c.extra.try_borrow() {
                    coll(&e, f)
                }
            }
            NodeKind::Persistent(v) => f(v),
            _ => {}
        }
    }
}

fn drain_coll(c: &mut Coll, push: &mut impl FnMut(Val)) {
    std::mem::take(&mut c.items)
        .into_iter()
        .for_each(&mut *push);
    for (k, v) in std::mem::take(&mut c.pairs) {
        push(k);
        push(v);
    }
}

/// Dropping nested `Rc`s recursively would overflow the native stack on a deep (hostile) value
/// graph; drop iteratively instead.
impl Drop for Node {
    fn drop(&mut self) {
        // Most nodes of a large pickle are small tuples of plain values: nothing to walk.
        if let NodeKind::Tuple(items) = &self.kind {
            if !items.iter().any(|v| matches!(v, Val::Node(_))) {
                return;
            }
        }
        let mut pending = Vec::new();
        self.drain_into(&mut pending);
        while let Some(rc) = pending.pop() {
            if let Ok(mut node) = Rc::try_unwrap(rc) {
                node.drain_into(&mut pending);
            }
        }
    }
}

impl Val {
    pub(crate) fn depth(&self) -> u16 {
        match self {
            Val::Node(n) => n.depth.get(),
            Val::Opaque(Opaque::Str | Opaque::Bytes, _) => 0,
            Val::Opaque(..) | Val::OpaqueCall(..) => 1,
            _ => 0,
        }
    }
    /// Holds a `persistent_load` result (torch tensors and storages).
    pub(crate) fn holds_storage(&self) -> bool {
        match self {
            Val::Node(n) => n.storage.get(),
            _ => false,
        }
    }
    /// Plain data: no global, call or persistent id inside (as far as known).
    pub(crate) fn is_plain(&self) -> bool {
        match self {
            Val::Node(n) => n.plain.get(),
            Val::Unknown | Val::OpaqueCall(..) => false,
            _ => true,
        }
    }
    pub(crate) fn node(&self) -> Option<&NodeKind> {
        match self {
            Val::Node(n) => Some(&n.kind),
            _ => None,
        }
    }
    /// The text of a `str` value (kept part), or `None` when the value is not a `str`.
    pub(crate) fn as_str<'a>(&'a self, data: &'a [u8]) -> Option<&'a str> {
        match self {
            Val::Str(s) => std::str::from_utf8(s.bytes(data)).ok(),
            Val::Node(n) => match &n.kind {
                NodeKind::Text { kept, .. } => Some(kept),
                _ => None,
            },
            _ => None,
        }
    }
    pub(crate) fn as_int(&self) -> Option<i64> {
        match self {
            Val::Int(i) => Some(*i),
            Val::Bool(b) => Some(*b as i64),
            _ => None,
        }
    }
    pub(crate) fn as_global(&self) -> Option<&GlobalRef> {
        match self.node() {
            Some(NodeKind::Global(g)) => Some(g),
            _ => None,
        }
    }
    pub(crate) fn as_call(&self) -> Option<&CallNode> {
        match self.node() {
            Some(NodeKind::Call(c)) => Some(c),
            _ => None,
        }
    }
    /// Whether the value is a plain mutable container (or an object that may form cycles).
    pub(crate) fn is_mutable_node(&self) -> bool {
        matches!(
            self.node(),
            Some(NodeKind::List(_) | NodeKind::Dict(_) | NodeKind::Set(_) | NodeKind::Call(_))
        )
    }
    /// Elements of a tuple (or list), kept part.
    pub(crate) fn seq_items(&self) -> Option<Vec<Val>> {
        match self.node()? {
            NodeKind::Tuple(v) => Some(v.to_vec()),
            NodeKind::List(c) => c.try_borrow().ok().map(|c| c.items.clone()),
            _ => None,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Rendering (call summaries, persistent ids, disassembly)

/// Renders a value the way Python's `repr` would, bounded in depth and length.
pub(crate) fn render(v: &Val, data: &[u8], max_chars: usize) -> String {
    let mut out = String::new();
    render_into(v, data, &mut out, 0, max_chars);
    if out.len() > max_chars {
        let mut cut = max_chars;
        while !out.is_char_boundary(cut) {
            cut -= 1;
        }
        out.truncate(cut);
        out.push('…');
    }
    out
}

const RENDER_DEPTH: usize = 8;
const RENDER_ITEMS: usize = 8;
const RENDER_STR: usize = 64;

fn render_into(v: &Val, data: &[u8], out: &mut String, depth: usize, max: usize) {
    if out.len() > max {
        return;
    }
    if depth > RENDER_DEPTH {
        out.push_str("...");
        return;
    }
    match v {
        Val::None => out.push_str("None"),
        Val::Bool(b) => out.push_str(if *b { "True" } else { "False" }),
        Val::Int(i) => {
            let _ = write!(out, "{i}");
        }
        Val::Float(f) => render_float(*f, out),
        Val::Str(s) => render_text(&String::from_utf8_lossy(s.bytes(data)), s.len() as u64, out),
        Val::Bytes(s) => render_bytes(s.bytes(data), s.len() as u64, "b", out),
        Val::Unknown => out.push('?'),
        Val::Node(n) => render_node(&n.kind, data, out, depth, max),
        Val::Opaque(k, n) => render_opaque(*k, *n, out),
        Val::OpaqueCall(_, g) => {
            match g.as_ref().map(|g| &g.kind) {
                Some(NodeKind::Global(g)) => render_global(g, out),
                _ => out.push('?'),
            }
            out.push_str("(...)");
        }
    }
}

fn render_opaque(k: Opaque, n: u32, out: &mut String) {
    let _ = match k {
        Opaque::Str => write!(out, "'...'<{n} bytes>"),
        Opaque::Bytes => write!(out, "b'...'<{n} bytes>"),
        Opaque::Tuple => write!(out, "(...{n} items)"),
        Opaque::List => write!(out, "[...]"),
        Opaque::Dict => write!(out, "{{...}}"),
        Opaque::Set => write!(out, "{{...}}"),
        Opaque::FrozenSet => write!(out, "frozenset({{...{n} items}})"),
    };
}

fn render_node(k: &NodeKind, data: &[u8], out: &mut String, depth: usize, max: usize) {
    match k {
        NodeKind::Text { kept, len } => render_text(kept, *len, out),
        NodeKind::Blob {
            kept,
            len,
            bytearray,
        } => {
            if *bytearray {
                out.push_str("bytearray(");
                render_bytes(kept, *len, "b", out);
                out.push(')');
            } else {
                render_bytes(kept, *len, "b", out)
            }
        }
        NodeKind::BigInt(s) => out.push_str(s),
        NodeKind::Tuple(items) => {
            out.push('(');
            render_seq(items.iter(), items.len() as u64, data, out, depth, max);
            if items.len() == 1 {
                out.push(',');
            }
            out.push(')');
        }
        NodeKind::FrozenSet(c) => {
            out.push_str("frozenset({");
            render_seq(c.items.iter(), c.len, data, out, depth, max);
            out.push_str("})");
        }
        NodeKind::List(c) | NodeKind::Set(c) => {
            let (open, close) = if matches!(k, NodeKind::List(_)) {
                ('[', ']')
            } else {
                ('{', '}')
            };
            out.push(open);
            if let Ok(c) = c.try_borrow() {
                render_seq(c.items.iter(), c.len, data, out, depth, max);
            }
            out.push(close);
        }
        NodeKind::Dict(c) => {
            out.push('{');
            if let Ok(c) = c.try_borrow() {
                render_pairs(&c.pairs, c.len, data, out, depth, max);
            }
            out.push('}');
        }
        NodeKind::Global(g) => render_global(g, out),
        NodeKind::Call(c) => {
            render_into(&c.callable, data, out, depth + 1, max);
            out.push('(');
            match c.args.node() {
                Some(NodeKind::Tuple(items)) => {
                    render_seq(items.iter(), items.len() as u64, data, out, depth, max)
                }
                _ => {
                    out.push('*');
                    render_into(&c.args, data, out, depth + 1, max);
                }
            }
            if let Some(kw) = &c.kwargs {
                out.push_str(", **");
                render_into(kw, data, out, depth + 1, max);
            }
            out.push(')');
        }
        NodeKind::Persistent(pid) => {
            out.push_str("persistent_load(");
            render_into(pid, data, out, depth + 1, max);
            out.push(')');
        }
    }
}

pub(crate) fn render_global(g: &GlobalRef, out: &mut String) {
    out.push_str(&g.module);
    out.push('.');
    out.push_str(&g.name);
}

fn render_seq<'v>(
    items: impl Iterator<Item = &'v Val>,
    len: u64,
    data: &[u8],
    out: &mut String,
    depth: usize,
    max: usize,
) {
    let mut shown = 0u64;
    for (i, it) in items.enumerate() {
        if i >= RENDER_ITEMS || out.len() > max {
            break;
        }
        if i > 0 {
            out.push_str(", ");
        }
        render_into(it, data, out, depth + 1, max);
        shown += 1;
    }
    if len > shown {
        let _ = write!(out, ", ...{} more", len - shown);
    }
}

fn render_pairs(
    pairs: &[(Val, Val)],
    len: u64,
    data: &[u8],
    out: &mut String,
    depth: usize,
    max: usize,
) {
    let mut shown = 0u64;
    for (i, (k, v)) in pairs.iter().enumerate() {
        if i >= RENDER_ITEMS || out.len() > max {
            break;
        }
        if i > 0 {
            out.push_str(", ");
        }
        render_into(k, data, out, depth + 1, max);
        out.push_str(": ");
        render_into(v, data, out, depth + 1, max);
        shown += 1;
    }
    if len > shown {
        let _ = write!(out, ", ...{} more", len - shown);
    }
}

fn render_float(f: f64, out: &mut String) {
    if f.is_nan() {
        out.push_str("nan");
    } else if f.is_infinite() {
        out.push_str(if f > 0.0 { "inf" } else { "-inf" });
    } else if f == f.trunc() && f.abs() < 1e16 {
        let _ = write!(out, "{f:.1}");
    } else {
        let _ = write!(out, "{f}");
    }
}

/// Python-style quoted text, escaped and truncated; `len` is the true length in bytes.
pub(crate) fn render_text(s: &str, len: u64, out: &mut String) {
    out.push('\'');
    for (n, c) in s.chars().enumerate() {
        if n >= RENDER_STR {
            out.push_str("...");
            break;
        }
        match c {
            '\'' => out.push_str("\\'"),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('\'');
    if len > s.len() as u64 {
        let _ = write!(out, "<{len} bytes>");
    }
}

/// Python-style bytes literal, truncated.
pub(crate) fn render_bytes(b: &[u8], len: u64, prefix: &str, out: &mut String) {
    out.push_str(prefix);
    out.push('\'');
    for &c in b.iter().take(RENDER_STR) {
        match c {
            b'\'' => out.push_str("\\'"),
            b'\\' => out.push_str("\\\\"),
            b'\n' => out.push_str("\\n"),
            0x20..=0x7e => out.push(c as char),
            _ => {
                let _ = write!(out, "\\x{c:02x}");
            }
        }
    }
    if b.len() > RENDER_STR {
        out.push_str("...");
    }
    out.push('\'');
    if len > RENDER_STR as u64 {
        let _ = write!(out, "<{len} bytes>");
    }
}

// ---------------------------------------------------------------------------------------------
// Owned values for callers

/// A value the pickle builds, as far as a reader that executes nothing can know it. Containers
/// keep a bounded number of elements (`len` is the true count); nesting deeper than
/// `Limits::max_value_depth`, reference cycles and values only the host could make are `Unknown`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", content = "value", rename_all = "kebab-case")]
pub enum Value {
    None,
    Bool(bool),
    Int(i64),
    /// An integer beyond i64, as decimal (or literal) text.
    BigInt(String),
    Float(f64),
    /// `str`; `len` is the true length in UTF-8 bytes (`text` may be truncated).
    Str {
        text: String,
        len: u64,
    },
    /// `bytes` / `bytearray`; `len` is the true length.
    Bytes {
        data: Vec<u8>,
        len: u64,
        bytearray: bool,
    },
    Tuple(Vec<Value>),
    List {
        items: Vec<Value>,
        len: u64,
    },
    Dict {
        items: Vec<(Value, Value)>,
        len: u64,
    },
    Set {
        items: Vec<Value>,
        len: u64,
    },
    FrozenSet {
        items: Vec<Value>,
        len: u64,
    },
    /// An imported object (a class or function).
    Global(GlobalRef),
    /// The object a call produced, with what later opcodes did to it.
    Call(Box<CallValue>),
    /// What the host's `persistent_load(pid)` returned (torch: a storage).
    Persistent(Box<Value>),
    Unknown,
}

/// The result of a call (REDUCE, NEWOBJ, NEWOBJ_EX, INST, OBJ) and its later mutations.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CallValue {
    pub kind: CallKind,
    pub callable: Value,
    /// The argument tuple (usually `Value::Tuple`).
    pub args: Value,
    pub kwargs: Option<Value>,
    /// The BUILD state, when one was applied.
    pub state: Option<Value>,
    /// Items added by APPEND(S)/ADDITEMS.
    pub items: Vec<Value>,
    /// Pairs added by SETITEM(S) (an `OrderedDict`'s entries).
    pub pairs: Vec<(Value, Value)>,
}

impl Value {
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str { text, .. } => Some(text),
            _ => None,
        }
    }
    pub fn as_int(&self) -> Option<i64> {
        match self {
            Value::Int(i) => Some(*i),
            Value::Bool(b) => Some(*b as i64),
            _ => None,
        }
    }
    /// Elements of a tuple or list (kept part).
    pub fn as_seq(&self) -> Option<&[Value]> {
        match self {
            Value::Tuple(v) => Some(v),
            Value::List { items, .. } => Some(items),
            _ => None,
        }
    }
    pub fn as_global(&self) -> Option<&GlobalRef> {
        match self {
            Value::Global(g) => Some(g),
            _ => None,
        }
    }
    pub fn as_call(&self) -> Option<&CallValue> {
        match self {
            Value::Call(c) => Some(c),
            _ => None,
        }
    }
    /// Key/value pairs of a dict, or of a dict-like object (`OrderedDict` built by SETITEMS).
    pub fn entries(&self) -> Option<&[(Value, Value)]> {
        match self {
            Value::Dict { items, .. } => Some(items),
            Value::Call(c) => Some(&c.pairs),
            _ => None,
        }
    }
    /// `module.name` of the callable when this is a call of a global.
    pub fn callee(&self) -> Option<&GlobalRef> {
        self.as_call().and_then(|c| c.callable.as_global())
    }
}

/// Copies a machine value into an owned [`Value`] (bounded by depth and a node budget, so
/// cycles and hostile sharing cannot blow up).
pub(crate) fn materialize(v: &Val, data: &[u8], max_depth: usize) -> Value {
    let mut budget = MATERIALIZE_BUDGET;
    mat(v, data, max_depth, &mut budget)
}

fn mat(v: &Val, data: &[u8], depth: usize, budget: &mut usize) -> Value {
    if *budget == 0 || depth == 0 {
        return Value::Unknown;
    }
    *budget -= 1;
    let seq = |items: &[Val], budget: &mut usize| -> Vec<Value> {
        items
            .iter()
            .map(|i| mat(i, data, depth - 1, budget))
            .collect()
    };
    let pairs = |p: &[(Val, Val)], budget: &mut usize| -> Vec<(Value, Value)> {
        p.iter()
            .map(|(k, v)| {
                (
                    mat(k, data, depth - 1, budget),
                    mat(v, data, depth - 1, budget),
                )
            })
            .collect()
    };
    match v {
        Val::None => Value::None,
        Val::Bool(b) => Value::Bool(*b),
        Val::Int(i) => Value::Int(*i),
        Val::Float(f) => Value::Float(*f),
        Val::Str(s) => Value::Str {
            text: String::from_utf8_lossy(s.bytes(data)).into_owned(),
            len: s.len() as u64,
        },
        Val::Bytes(s) => Value::Bytes {
            data: s.bytes(data).to_vec(),
            len: s.len() as u64,
            bytearray: false,
        },
        Val::Unknown => Value::Unknown,
        Val::Opaque(k, n) => {
            let len = *n as u64;
            match k {
                Opaque::Str => Value::Str {
                    text: String::new(),
                    len,
                },
                Opaque::Bytes => Value::Bytes {
                    data: Vec::new(),
                    len,
                    bytearray: false,
                },
                Opaque::FrozenSet => Value::FrozenSet {
                    items: Vec::new(),
                    len,
                },
                // Mutable containers may have grown after they were memoized; a tuple's
                // elements are unknown.
                Opaque::Tuple | Opaque::List | Opaque::Dict | Opaque::Set => Value::Unknown,
            }
        }
        Val::OpaqueCall(kind, g) => Value::Call(Box::new(CallValue {
            kind: *kind,
            callable: match g.as_ref().map(|g| &g.kind) {
                Some(NodeKind::Global(g)) => Value::Global((**g).clone()),
                _ => Value::Unknown,
            },
            args: Value::Unknown,
            kwargs: None,
            state: None,
            items: Vec::new(),
            pairs: Vec::new(),
        })),
        Val::Node(n) => match &n.kind {
            NodeKind::Text { kept, len } => Value::Str {
                text: kept.to_string(),
                len: *len,
            },
            NodeKind::Blob {
                kept,
                len,
                bytearray,
            } => Value::Bytes {
                data: kept.to_vec(),
                len: *len,
                bytearray: *bytearray,
            },
            NodeKind::BigInt(s) => Value::BigInt(s.to_string()),
            NodeKind::Tuple(items) => Value::Tuple(seq(items, budget)),
            NodeKind::FrozenSet(c) => Value::FrozenSet {
                items: seq(&c.items, budget),
                len: c.len,
            },
            NodeKind::List(c) | NodeKind::Set(c) | NodeKind::Dict(c) => {
                let Ok(c) = c.try_borrow() else {
                    return Value::Unknown;
                };
                match &n.kind {
                    NodeKind::List(_) => Value::List {
                        items: seq(&c.items, budget),
                        len: c.len,
                    },
                    NodeKind::Set(_) => Value::Set {
                        items: seq(&c.items, budget),
                        len: c.len,
                    },
                    _ => Value::Dict {
                        items: pairs(&c.pairs, budget),
                        len: c.len,
                    },
                }
            }
            NodeKind::Global(g) => Value::Global((**g).clone()),
            NodeKind::Call(c) => {
                let state = c
                    .state
                    .try_borrow()
                    .ok()
                    .and_then(|s| s.as_ref().map(|s| mat(s, data, depth - 1, budget)));
                let (items, prs) = match c.extra.try_borrow() {
                    Ok(e) => (seq(&e.items, budget), pairs(&e.pairs, budget)),
                    Err(_) => (Vec::new(), Vec::new()),
                };
                Value::Call(Box::new(CallValue {
                    kind: c.kind,
                    callable: mat(&c.callable, data, depth - 1, budget),
                    args: mat(&c.args, data, depth - 1, budget),
                    kwargs: c.kwargs.as_ref().map(|k| mat(k, data, depth - 1, budget)),
                    state,
                    items,
                    pairs: prs,
                }))
            }
            NodeKind::Persistent(p) => Value::Persistent(Box::new(mat(p, data, depth - 1, budget))),
        },
    }
}
