//! Symbolic values.
//!
//! Inside the machine a value is a [`Val`]: 16 bytes and `Copy`. Primitives are immediate,
//! strings and bytes are spans into the input (no allocation per opcode), and containers,
//! globals and call results are [`NodeId`]s into the pickle's [`Arena`], so memo GETs share
//! instead of copying (FORMATS-FACTS §1.4: the memo holds references; later APPEND/SETITEM
//! mutate the shared object). When a pickle STOPs, the result is copied once into an owned,
//! bounded, acyclic [`Value`] tree for callers.
//!
//! Why an arena and not one `Rc` per node: a large data pickle makes a node per tuple (a
//! million of them for a 30 MB file) and drops nearly all of them at once (containers keep a
//! bounded number of elements); a `malloc`/`free` and a reference count per node were most of
//! the time spent. Here a node is a slot in one vector, nothing is reference-counted, and a
//! mark-and-sweep collection at opcode boundaries (roots: the stack and the memo) recycles the
//! slots that became unreachable, cycles included, so memory stays proportional to what is
//! live (plus a bounded slack) whatever the input.

use std::fmt::Write as _;
use std::num::NonZeroU32;

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

/// A node of the [`Arena`]: its index + 1 (so that `Option<NodeId>` costs nothing), aligned
/// like the 8-byte payloads of the other [`Val`]s (see there).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(align(8))]
pub(crate) struct NodeId(NonZeroU32);

impl NodeId {
    #[inline]
    fn new(index: usize) -> Option<NodeId> {
        u32::try_from(index)
            .ok()
            .and_then(|i| i.checked_add(1))
            .and_then(NonZeroU32::new)
            .map(NodeId)
    }
    #[inline]
    fn index(self) -> usize {
        self.0.get() as usize - 1
    }
}

/// A length kept with an [`Val::Opaque`], aligned like the other payloads (see [`Val`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(align(8))]
pub(crate) struct Count(pub u32);

/// A symbolic value on the machine's stack or in its memo.
///
/// Every payload of 4 bytes or more sits at offset 8 (the ids and counts are 8-aligned): a
/// value is then written as a tag byte and one word, and copying one (a tuple's items, taken
/// from the stack a few opcodes after they were pushed) reads the same pieces back, which the
/// CPU forwards from its store buffer; a payload at offset 4 made every such copy read across
/// two pending stores and stall (a third of the time of a data pickle).
#[derive(Clone, Copy, Debug)]
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
    Node(NodeId),
    /// A value the memo kept only the type and size of (see `memo.rs`): what a GET returns once
    /// the memo's budget for exact values is spent. The length is exact for `str`/`bytes`/tuples
    /// and the length at MEMOIZE time for mutable containers.
    Opaque(Opaque, Count),
    /// The result of a call that the memo kept only the callee of (a global node, or `None`
    /// when the callable was itself computed).
    OpaqueCall(CallKind, Option<NodeId>),
}

const _: () = assert!(std::mem::size_of::<Val>() == 16);

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
    pub depth: u16,
    pub plain: bool,
    /// Holds a `persistent_load` result somewhere inside (a torch tensor or storage).
    pub storage: bool,
    /// A second reference to the node may exist (DUP, or the memo keeps it): see
    /// [`Arena::discard_plain`].
    shared: bool,
    /// The slot is on the free list (its `kind` is `Free`, or a tuple of inline values kept
    /// for the next tuple to overwrite in place).
    free: bool,
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
    List(Coll),
    Dict(Coll),
    Set(Coll),
    Global(Box<GlobalRef>),
    Call(Box<CallNode>),
    /// The result of the host's `persistent_load(pid)`.
    Persistent(Val),
    /// A slot of the arena that holds nothing (reclaimed by a collection).
    Free,
}

/// A tuple's elements: up to [`INLINE`] of them inside the node itself (no allocation for the
/// small tuples that large data pickles are made of), more on the heap.
pub(crate) enum Items {
    Inline(u8, [Val; INLINE]),
    Heap(Vec<Val>),
}

pub(crate) const INLINE: usize = 4;

impl std::ops::Deref for Items {
    type Target = [Val];
    #[inline]
    fn deref(&self) -> &[Val] {
        match self {
            Items::Inline(n, a) => &a[..(*n as usize).min(INLINE)],
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
    pub state: Option<Val>,
    pub extra: Coll,
}

impl Node {
    /// Children, for graph walks.
    fn for_each_child(&self, f: &mut impl FnMut(&Val)) {
        let mut coll = |c: &Coll| {
            c.items.iter().for_each(&mut *f);
            for (k, v) in &c.pairs {
                f(k);
                f(v);
            }
        };
        match &self.kind {
            NodeKind::Tuple(v) => v.iter().for_each(f),
            NodeKind::FrozenSet(c) | NodeKind::List(c) | NodeKind::Dict(c) | NodeKind::Set(c) => {
                coll(c)
            }
            NodeKind::Call(c) => {
                coll(&c.extra);
                f(&c.callable);
                f(&c.args);
                if let Some(k) = &c.kwargs {
                    f(k)
                }
                if let Some(s) = &c.state {
                    f(s)
                }
            }
            NodeKind::Persistent(v) => f(v),
            NodeKind::Text { .. }
            | NodeKind::Blob { .. }
            | NodeKind::BigInt(_)
            | NodeKind::Global(_)
            | NodeKind::Free => {}
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The arena

/// Allocations between collections at least (the slack the arena may hold beyond what is live:
/// a few MiB at most, which keeps large pickles within their memory bound).
const GC_MIN: usize = 1 << 14;
/// Nodes at most (ids are `u32`); past it a new node is [`Val::Unknown`]. Memory limits are
/// reached long before.
const MAX_NODES: usize = (u32::MAX >> 1) as usize;

/// The nodes of one pickle. Ids stay valid while a node is reachable from the roots given to
/// [`Arena::collect`]; slots of unreachable nodes are reused.
pub(crate) struct Arena {
    nodes: Vec<Node>,
    /// Free slots, lowest on top (allocation then fills the vector front to back).
    free: Vec<u32>,
    /// Allocations since the last collection (less the nodes freed by [`Arena::discard`]), and
    /// how many trigger the next one.
    since_gc: usize,
    gc_every: usize,
}

impl Default for Arena {
    fn default() -> Self {
        Arena {
            nodes: Vec::new(),
            free: Vec::new(),
            since_gc: 0,
            gc_every: GC_MIN,
        }
    }
}

impl Arena {
    /// A new node; [`Val::Unknown`] when the arena is full.
    #[inline]
    pub(crate) fn alloc(&mut self, kind: NodeKind, depth: u16, plain: bool) -> Val {
        let storage = matches!(kind, NodeKind::Persistent(_));
        self.since_gc += 1;
        if let Some((slot, id)) = self.free_slot() {
            slot.depth = depth;
            slot.plain = plain;
            slot.storage = storage;
            slot.kind = kind;
            return Val::Node(id);
        }
        let node = Node {
            depth,
            plain,
            storage,
            shared: false,
            free: false,
            kind,
        };
        match NodeId::new(self.nodes.len()) {
            Some(id) if self.nodes.len() < MAX_NODES => {
                self.nodes.push(node);
                Val::Node(id)
            }
            _ => Val::Unknown,
        }
    }

    /// A slot from the free list, taken (`free` and `shared` cleared).
    #[inline]
    fn free_slot(&mut self) -> Option<(&mut Node, NodeId)> {
        let i = self.free.pop()? as usize;
        let id = NodeId::new(i)?;
        let slot = self.nodes.get_mut(i)?;
        slot.free = false;
        slot.shared = false;
        Some((slot, id))
    }

    /// Marks a value's node as possibly referenced twice (DUP; the memo keeping it).
    #[inline]
    pub(crate) fn share(&mut self, v: &Val) {
        if let Val::Node(id) = v
            && let Some(n) = self.nodes.get_mut(id.index())
        {
            n.shared = true;
        }
    }

    /// Whether enough was allocated since the last collection to collect again (the caller
    /// collects at an opcode boundary, where every live value is in a root).
    #[inline]
    pub(crate) fn wants_collect(&self) -> bool {
        self.since_gc >= self.gc_every
    }

    /// Mark and sweep: every node not reachable from `roots` becomes free. The next collection
    /// comes after max(live / 2, [`GC_MIN`]) allocations, so the work is linear in the number
    /// of allocations and the arena holds at most 1.5 × live + [`GC_MIN`] nodes.
    pub(crate) fn collect(&mut self, roots: impl Iterator<Item = Val>) {
        let n = self.nodes.len();
        let mut marked = vec![0u64; n.div_ceil(64)];
        let mut work: Vec<u32> = Vec::new();
        let push = |v: &Val, work: &mut Vec<u32>| match v {
            Val::Node(id) | Val::OpaqueCall(_, Some(id)) => work.push(id.index() as u32),
            _ => {}
        };
        for v in roots {
            push(&v, &mut work);
        }
        let mut live = 0usize;
        while let Some(i) = work.pop() {
            let i = i as usize;
            let Some(w) = marked.get_mut(i / 64) else {
                continue;
            };
            if *w & (1 << (i % 64)) != 0 {
                continue;
            }
            *w |= 1 << (i % 64);
            live += 1;
            if let Some(node) = self.nodes.get(i) {
                node.for_each_child(&mut |v| push(v, &mut work));
            }
        }
        // Unmarked slots above the highest live one are dropped; the rest become free.
        let top = (0..n)
            .rev()
            .find(|&i| marked[i / 64] & (1 << (i % 64)) != 0)
            .map_or(0, |i| i + 1);
        self.nodes.truncate(top);
        self.free.clear();
        for i in (0..top).rev() {
            if marked[i / 64] & (1 << (i % 64)) == 0 {
                if let Some(n) = self.nodes.get_mut(i) {
                    n.kind = NodeKind::Free;
                    n.free = true;
                }
                self.free.push(i as u32);
            }
        }
        self.since_gc = 0;
        self.gc_every = (live / 2).max(GC_MIN);
    }

    #[inline]
    pub(crate) fn node(&self, id: NodeId) -> Option<&Node> {
        self.nodes.get(id.index())
    }

    #[inline]
    pub(crate) fn node_mut(&mut self, id: NodeId) -> Option<&mut Node> {
        self.nodes.get_mut(id.index())
    }

    /// The node behind a value, if it is one.
    #[inline]
    pub(crate) fn kind(&self, v: &Val) -> Option<&NodeKind> {
        match v {
            Val::Node(id) => self.node(*id).map(|n| &n.kind),
            _ => None,
        }
    }

    /// The collection a container (or an object's APPEND/SETITEM record) keeps.
    pub(crate) fn coll_mut(&mut self, id: NodeId) -> Option<&mut Coll> {
        match &mut self.node_mut(id)?.kind {
            NodeKind::List(c) | NodeKind::Dict(c) | NodeKind::Set(c) | NodeKind::FrozenSet(c) => {
                Some(c)
            }
            NodeKind::Call(c) => Some(&mut c.extra),
            _ => None,
        }
    }

    #[inline]
    pub(crate) fn depth(&self, v: &Val) -> u16 {
        match v {
            Val::Node(id) => self.node(*id).map_or(0, |n| n.depth),
            Val::Opaque(Opaque::Str | Opaque::Bytes, _) => 0,
            Val::Opaque(..) | Val::OpaqueCall(..) => 1,
            _ => 0,
        }
    }

    /// `(depth, plain, storage)` of a tuple of `items`, before the +1 for the tuple itself.
    #[inline]
    pub(crate) fn flags(&self, items: &[Val]) -> (u16, bool, bool) {
        let (mut depth, mut plain, mut storage) = (0u16, true, false);
        for v in items {
            match v {
                Val::Node(id) => {
                    if let Some(n) = self.node(*id) {
                        depth = depth.max(n.depth);
                        plain &= n.plain;
                        storage |= n.storage;
                    } else {
                        plain = false;
                    }
                }
                Val::Opaque(Opaque::Str | Opaque::Bytes, _) => {}
                Val::Opaque(..) => depth = depth.max(1),
                Val::OpaqueCall(..) => {
                    depth = depth.max(1);
                    plain = false;
                }
                Val::Unknown => plain = false,
                Val::None
                | Val::Bool(_)
                | Val::Int(_)
                | Val::Float(_)
                | Val::Str(_)
                | Val::Bytes(_) => {}
            }
        }
        (depth, plain, storage)
    }

    /// A tuple of at most [`INLINE`] `items` (more: `Unknown`), or `Unknown` when it would
    /// nest deeper than `max_depth`. `last`, when given, is the last item, still in registers;
    /// `scalars` says that every item is a plain scalar (no node, nothing opaque or unknown).
    ///
    /// Why the care: the items were pushed a few opcodes earlier, the last one just before.
    /// Reading a value back as one 16-byte load while its (narrower) stores are still pending
    /// stalls the CPU (no store forwarding); that, and moving whole 80-byte nodes, took most
    /// of the time of a data pickle. So the last item comes from the caller's register, the
    /// others are rebuilt field by field, and a free slot that held a small tuple is written
    /// in place, value by value.
    #[inline(always)]
    pub(crate) fn small_tuple(
        &mut self,
        items: &[Val],
        last: Option<Val>,
        scalars: bool,
        max_depth: usize,
    ) -> Val {
        self.small_tuple_id(items, last, scalars, max_depth)
            .map_or(Val::Unknown, Val::Node)
    }

    /// [`Arena::small_tuple`] as the new node's id (`None`: `Unknown`). The machine's fast
    /// loop builds the value from the id itself: a `Val` returned through memory is written
    /// as a tag byte and a word, and pushing it read it back as one 16-byte load, which cannot
    /// be forwarded from those two pending stores and waited for them (and for the node's
    /// writes before them) to reach the cache: most of the loop's time on a data pickle.
    #[inline(always)]
    pub(crate) fn small_tuple_id(
        &mut self,
        items: &[Val],
        last: Option<Val>,
        scalars: bool,
        max_depth: usize,
    ) -> Option<NodeId> {
        let n = items.len();
        if n > INLINE {
            return None;
        }
        // `scalars`: the caller knows every item is a plain scalar (what `flags` would find).
        let (depth, plain, storage) = if scalars {
            (0, true, false)
        } else {
            self.flags(items)
        };
        let depth = depth.saturating_add(1);
        if depth as usize > max_depth {
            return None;
        }
        let get = |i: usize| match (last, i + 1 == n) {
            (Some(v), true) => v,
            _ => items.get(i).map_or(Val::None, reload),
        };
        self.since_gc += 1;
        if let Some((slot, id)) = self.free_slot() {
            slot.depth = depth;
            slot.plain = plain;
            slot.storage = storage;
            if let NodeKind::Tuple(Items::Inline(count, a)) = &mut slot.kind {
                *count = n as u8;
                a[0] = get(0);
                a[1] = get(1);
                a[2] = get(2);
                a[3] = get(3);
            } else {
                slot.kind =
                    NodeKind::Tuple(Items::Inline(n as u8, [get(0), get(1), get(2), get(3)]));
            }
            return Some(id);
        }
        self.since_gc -= 1;
        let v = self.alloc(
            NodeKind::Tuple(Items::Inline(n as u8, [get(0), get(1), get(2), get(3)])),
            depth,
            plain,
        );
        let Val::Node(id) = v else { return None };
        if storage && let Some(n) = self.node_mut(id) {
            n.storage = true;
        }
        Some(id)
    }

    /// Frees `v`'s node at once unless it holds a storage (then it returns false: the caller
    /// keeps it) or something else may refer to it; the caller is dropping `v` off the stack.
    ///
    /// A node starts with one reference, from the stack. Opcodes move values (off the stack
    /// into a container, a tuple, a call), never copy them, except DUP and the memo (PUT, and
    /// GET of what PUT kept), which mark the node shared; so a node dropped from the stack and
    /// never shared is referenced nowhere. This is what lets the tuples of a large data
    /// pickle, dropped by APPENDS once the list keeps all it may, reuse a few hot slots
    /// instead of waiting for a collection. Its children, if any, are left to the collector.
    #[inline]
    pub(crate) fn discard_plain(&mut self, v: &Val) -> bool {
        if let Val::Node(id) = v {
            let i = id.index();
            if let Some(n) = self.nodes.get_mut(i) {
                if n.storage {
                    return false;
                }
                if !n.shared && !n.free {
                    // What the node owns is dropped, except the values of an inline tuple,
                    // which the next small tuple overwrites in place (no drop, no move).
                    n.free = true;
                    if !matches!(n.kind, NodeKind::Tuple(Items::Inline(..))) {
                        n.kind = NodeKind::Free;
                    }
                    self.free.push(i as u32);
                    self.since_gc = self.since_gc.saturating_sub(1);
                }
            }
        }
        true
    }

    /// Holds a `persistent_load` result (torch tensors and storages).
    #[inline]
    pub(crate) fn holds_storage(&self, v: &Val) -> bool {
        match v {
            Val::Node(id) => self.node(*id).is_some_and(|n| n.storage),
            _ => false,
        }
    }

    /// Plain data: no global, call or persistent id inside (as far as known).
    #[inline]
    pub(crate) fn is_plain(&self, v: &Val) -> bool {
        match v {
            Val::Node(id) => self.node(*id).is_some_and(|n| n.plain),
            Val::Unknown | Val::OpaqueCall(..) => false,
            _ => true,
        }
    }

    /// The text of a `str` value (kept part), or `None` when the value is not a `str`.
    pub(crate) fn as_str<'s>(&'s self, v: &Val, data: &'s [u8]) -> Option<&'s str> {
        match v {
            Val::Str(s) => std::str::from_utf8(s.bytes(data)).ok(),
            Val::Node(_) => match self.kind(v)? {
                NodeKind::Text { kept, .. } => Some(kept),
                _ => None,
            },
            _ => None,
        }
    }

    pub(crate) fn as_global(&self, v: &Val) -> Option<&GlobalRef> {
        match self.kind(v)? {
            NodeKind::Global(g) => Some(g),
            _ => None,
        }
    }

    pub(crate) fn as_call(&self, v: &Val) -> Option<&CallNode> {
        match self.kind(v)? {
            NodeKind::Call(c) => Some(c),
            _ => None,
        }
    }

    /// The import a global node stands for.
    pub(crate) fn global_of(&self, id: Option<NodeId>) -> Option<&GlobalRef> {
        match &self.node(id?)?.kind {
            NodeKind::Global(g) => Some(g),
            _ => None,
        }
    }

    /// Elements of a tuple (or list), kept part.
    pub(crate) fn seq_items(&self, v: &Val) -> Option<Vec<Val>> {
        match self.kind(v)? {
            NodeKind::Tuple(t) => Some(t.to_vec()),
            NodeKind::List(c) => Some(c.items.clone()),
            _ => None,
        }
    }
}

/// `*v`, rebuilt field by field (see [`Arena::small_tuple`]): the match is the point (the
/// compiler then writes the pieces as they were stored), so clippy's `*v` is not taken.
#[allow(clippy::needless_match)]
#[inline(always)]
fn reload(v: &Val) -> Val {
    match *v {
        Val::None => Val::None,
        Val::Bool(b) => Val::Bool(b),
        Val::Int(i) => Val::Int(i),
        Val::Float(f) => Val::Float(f),
        Val::Str(s) => Val::Str(s),
        Val::Bytes(s) => Val::Bytes(s),
        Val::Unknown => Val::Unknown,
        Val::Node(id) => Val::Node(id),
        Val::Opaque(k, n) => Val::Opaque(k, n),
        Val::OpaqueCall(k, g) => Val::OpaqueCall(k, g),
    }
}

impl Val {
    pub(crate) fn as_int(&self) -> Option<i64> {
        match self {
            Val::Int(i) => Some(*i),
            Val::Bool(b) => Some(*b as i64),
            _ => None,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Rendering (call summaries, persistent ids, disassembly)

/// Renders a value the way Python's `repr` would, bounded in depth and length.
pub(crate) fn render(a: &Arena, v: &Val, data: &[u8], max_chars: usize) -> String {
    let mut out = String::new();
    render_into(a, v, data, &mut out, 0, max_chars);
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

fn render_into(a: &Arena, v: &Val, data: &[u8], out: &mut String, depth: usize, max: usize) {
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
        Val::Node(id) => match a.node(*id) {
            Some(n) => render_node(a, &n.kind, data, out, depth, max),
            None => out.push('?'),
        },
        Val::Opaque(k, n) => render_opaque(*k, n.0, out),
        Val::OpaqueCall(_, g) => {
            match a.global_of(*g) {
                Some(g) => render_global(g, out),
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

fn render_node(a: &Arena, k: &NodeKind, data: &[u8], out: &mut String, depth: usize, max: usize) {
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
            render_seq(a, items.iter(), items.len() as u64, data, out, depth, max);
            if items.len() == 1 {
                out.push(',');
            }
            out.push(')');
        }
        NodeKind::FrozenSet(c) => {
            out.push_str("frozenset({");
            render_seq(a, c.items.iter(), c.len, data, out, depth, max);
            out.push_str("})");
        }
        NodeKind::List(c) | NodeKind::Set(c) => {
            let (open, close) = if matches!(k, NodeKind::List(_)) {
                ('[', ']')
            } else {
                ('{', '}')
            };
            out.push(open);
            render_seq(a, c.items.iter(), c.len, data, out, depth, max);
            out.push(close);
        }
        NodeKind::Dict(c) => {
            out.push('{');
            render_pairs(a, &c.pairs, c.len, data, out, depth, max);
            out.push('}');
        }
        NodeKind::Global(g) => render_global(g, out),
        NodeKind::Free => out.push('?'),
        NodeKind::Call(c) => {
            render_into(a, &c.callable, data, out, depth + 1, max);
            out.push('(');
            match a.kind(&c.args) {
                Some(NodeKind::Tuple(items)) => {
                    render_seq(a, items.iter(), items.len() as u64, data, out, depth, max)
                }
                _ => {
                    out.push('*');
                    render_into(a, &c.args, data, out, depth + 1, max);
                }
            }
            if let Some(kw) = &c.kwargs {
                out.push_str(", **");
                render_into(a, kw, data, out, depth + 1, max);
            }
            out.push(')');
        }
        NodeKind::Persistent(pid) => {
            out.push_str("persistent_load(");
            render_into(a, pid, data, out, depth + 1, max);
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
    a: &Arena,
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
        render_into(a, it, data, out, depth + 1, max);
        shown += 1;
    }
    if len > shown {
        let _ = write!(out, ", ...{} more", len - shown);
    }
}

fn render_pairs(
    a: &Arena,
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
        render_into(a, k, data, out, depth + 1, max);
        out.push_str(": ");
        render_into(a, v, data, out, depth + 1, max);
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
pub(crate) fn materialize(a: &Arena, v: &Val, data: &[u8], max_depth: usize) -> Value {
    let mut budget = MATERIALIZE_BUDGET;
    mat(a, v, data, max_depth, &mut budget)
}

fn mat(a: &Arena, v: &Val, data: &[u8], depth: usize, budget: &mut usize) -> Value {
    // Every value made costs one unit of the budget, the `Unknown`s that stand for what is too
    // deep included, and containers stop taking elements once it is spent: the budget then
    // bounds what is allocated. (Charging only the values made in full let a list that holds
    // itself a thousand times make a thousand `Unknown`s per node visited: 4 GiB from 6 kB.)
    if *budget == 0 {
        return Value::Unknown;
    }
    *budget -= 1;
    if depth == 0 {
        return Value::Unknown;
    }
    let seq = |items: &[Val], budget: &mut usize| -> Vec<Value> {
        let mut out = Vec::with_capacity(items.len().min(*budget));
        for i in items {
            if *budget == 0 {
                break;
            }
            out.push(mat(a, i, data, depth - 1, budget));
        }
        out
    };
    let pairs = |p: &[(Val, Val)], budget: &mut usize| -> Vec<(Value, Value)> {
        let mut out = Vec::with_capacity(p.len().min(*budget / 2));
        for (k, v) in p {
            if *budget == 0 {
                break;
            }
            out.push((
                mat(a, k, data, depth - 1, budget),
                mat(a, v, data, depth - 1, budget),
            ));
        }
        out
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
            let len = n.0 as u64;
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
            callable: match a.global_of(*g) {
                Some(g) => Value::Global(g.clone()),
                None => Value::Unknown,
            },
            args: Value::Unknown,
            kwargs: None,
            state: None,
            items: Vec::new(),
            pairs: Vec::new(),
        })),
        Val::Node(_) => match a.kind(v) {
            None | Some(NodeKind::Free) => Value::Unknown,
            Some(NodeKind::Text { kept, len }) => Value::Str {
                text: kept.to_string(),
                len: *len,
            },
            Some(NodeKind::Blob {
                kept,
                len,
                bytearray,
            }) => Value::Bytes {
                data: kept.to_vec(),
                len: *len,
                bytearray: *bytearray,
            },
            Some(NodeKind::BigInt(s)) => Value::BigInt(s.to_string()),
            Some(NodeKind::Tuple(items)) => Value::Tuple(seq(items, budget)),
            Some(NodeKind::FrozenSet(c)) => Value::FrozenSet {
                items: seq(&c.items, budget),
                len: c.len,
            },
            Some(NodeKind::List(c)) => Value::List {
                items: seq(&c.items, budget),
                len: c.len,
            },
            Some(NodeKind::Set(c)) => Value::Set {
                items: seq(&c.items, budget),
                len: c.len,
            },
            Some(NodeKind::Dict(c)) => Value::Dict {
                items: pairs(&c.pairs, budget),
                len: c.len,
            },
            Some(NodeKind::Global(g)) => Value::Global((**g).clone()),
            Some(NodeKind::Call(c)) => {
                let state = c.state.as_ref().map(|s| mat(a, s, data, depth - 1, budget));
                let items = seq(&c.extra.items, budget);
                let prs = pairs(&c.extra.pairs, budget);
                Value::Call(Box::new(CallValue {
                    kind: c.kind,
                    callable: mat(a, &c.callable, data, depth - 1, budget),
                    args: mat(a, &c.args, data, depth - 1, budget),
                    kwargs: c
                        .kwargs
                        .as_ref()
                        .map(|k| mat(a, k, data, depth - 1, budget)),
                    state,
                    items,
                    pairs: prs,
                }))
            }
            Some(NodeKind::Persistent(p)) => {
                Value::Persistent(Box::new(mat(a, p, data, depth - 1, budget)))
            }
        },
    }
}
