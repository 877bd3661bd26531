//! The unpickler memo (FORMATS-FACTS §1.4). CPython keeps a dense array that a single
//! `LONG_BINPUT 0xFFFFFFFF` grows to ~64 GiB; here slots live in a dense array only while the
//! indexes stay near the number of occupied slots, and in a map otherwise, so no input can make
//! the reader allocate by index.
//!
//! Ordinary large pickles memoize millions of objects (protocol 4 MEMOIZEs every string and
//! tuple), so a slot is one `u32` handle, and what it refers to costs little or nothing:
//!
//! * a `str` whose span is preceded by a byte equal to its length (what SHORT_BINUNICODE
//!   writes: nearly every string of a protocol 4 pickle) is the offset of that byte: its text
//!   is read back from the input on GET, with no table at all;
//! * other strings and bytes (spans of the input) are interned: equal texts share one table
//!   entry, so a `str` that could be a module or attribute name costs nothing after its first
//!   occurrence, and a GET returns the exact text;
//! * globals live in a small table (one entry per imported object);
//! * `None`, booleans and small integers are immediate;
//! * anything else is kept exactly (a value in a side table) while a budget of
//!   [`EXACT_BUDGET`] such slots lasts, then only its type and size are kept
//!   ([`Val::Opaque`]), or for a call result its callee ([`Val::OpaqueCall`]). The objects
//!   themselves stay exact wherever the stack put them; only a later GET sees the summary.

use std::collections::HashMap;

use super::CallKind;
use super::value::{Arena, Count, NodeId, NodeKind, Opaque, Span, Val};

/// Indexes at or above this are reported as [`super::AnomalyKind::MemoHuge`].
pub(crate) const MEMO_HUGE: u64 = 1 << 24;

/// Slots whose value is kept exactly (a node held by the memo) when a cheaper form would
/// lose information. Past it, containers and call results are kept as type and size only.
pub(crate) const EXACT_BUDGET: usize = 1 << 13;
/// Interned texts at most: names (dotted identifiers) and other texts.
const INTERN_NAMES: usize = 1 << 22;
const INTERN_OTHER: usize = 1 << 19;
/// Globals kept in the table at most (past it a call result's callee is forgotten).
const MAX_GLOBALS: usize = (1 << 24) - 2;

const CHUNK_BITS: u32 = 16;
const CHUNK: usize = 1 << CHUNK_BITS;

// Handle layout: tag in the top 4 bits, payload in the low 28. 0 is an empty slot.
const PAYLOAD: u32 = (1 << 28) - 1;
const T_EXACT: u32 = 1;
const T_STR: u32 = 2;
const T_BYTES: u32 = 3;
const T_IMM: u32 = 4;
const T_INT: u32 = 5;
const T_GLOBAL: u32 = 6;
const T_CALL: u32 = 7;
const T_OPAQUE: u32 = 8; // 8..=14: Opaque kinds
/// A `str` told by the offset of the length byte before its text (see [`short_str`]).
const T_SHORT_STR: u32 = 15;

const IMM_NONE: u32 = 0;
const IMM_TRUE: u32 = 1;
const IMM_FALSE: u32 = 2;
const IMM_UNKNOWN: u32 = 3;

const OPAQUES: [Opaque; 7] = [
    Opaque::Str,
    Opaque::Bytes,
    Opaque::Tuple,
    Opaque::List,
    Opaque::Dict,
    Opaque::Set,
    Opaque::FrozenSet,
];

const KINDS: [CallKind; 10] = [
    CallKind::Reduce,
    CallKind::Build,
    CallKind::NewObj,
    CallKind::NewObjEx,
    CallKind::Inst,
    CallKind::Obj,
    CallKind::Append,
    CallKind::SetItem,
    CallKind::AddItems,
    CallKind::PersistentLoad,
];

fn h(tag: u32, payload: u32) -> u32 {
    debug_assert!(payload <= PAYLOAD);
    (tag << 28) | payload
}

fn clamp(n: usize) -> u32 {
    n.min(PAYLOAD as usize) as u32
}

pub(crate) struct Memo<'a> {
    data: &'a [u8],
    /// Dense slots in chunks of [`CHUNK`] (no reallocation copies of a large array).
    chunks: Vec<Box<[u32]>>,
    /// Dense slots in use (max dense index + 1).
    dense_len: usize,
    sparse: HashMap<u64, u32>,
    occupied: usize,
    exact: Vec<Val>,
    /// Exact slots that hold something with a cheaper (lossy) form.
    exact_lossy: usize,
    texts: Interner,
    globals: Vec<NodeId>,
    global_ids: HashMap<NodeId, u32>,
}

impl<'a> Memo<'a> {
    pub(crate) fn new(data: &'a [u8]) -> Self {
        Memo {
            data,
            chunks: Vec::new(),
            dense_len: 0,
            sparse: HashMap::new(),
            occupied: 0,
            exact: Vec::new(),
            exact_lossy: 0,
            texts: Interner::default(),
            globals: Vec::new(),
            global_ids: HashMap::new(),
        }
    }

    /// The number of occupied slots: where MEMOIZE stores (`memo_len`, not max index + 1).
    pub(crate) fn len(&self) -> usize {
        self.occupied
    }

    fn dense_slot(&self, idx: u64) -> Option<u32> {
        if idx < self.dense_len as u64 {
            let i = idx as usize;
            Some(self.chunks[i >> CHUNK_BITS][i & (CHUNK - 1)])
        } else {
            None
        }
    }

    #[inline]
    fn handle(&self, idx: u64) -> Option<u32> {
        match self.dense_slot(idx) {
            Some(h) if h != 0 => Some(h),
            _ if self.sparse.is_empty() => None,
            _ => self.sparse.get(&idx).copied(),
        }
    }

    pub(crate) fn contains(&self, idx: u64) -> bool {
        self.handle(idx).is_some()
    }

    /// Stores `v` at `idx`, overwriting what was there (legal in CPython). Nodes the memo keeps
    /// a reference to are marked shared in the arena (see `Arena::discard`).
    #[inline]
    pub(crate) fn put(&mut self, idx: u64, v: Val, arena: &mut Arena) {
        if idx == self.dense_len as u64 && self.sparse.is_empty() && idx < self.dense_cap() {
            // Appending (MEMOIZE, and PUT of the next index: nearly every store): no slot to
            // overwrite; what the general path below does for this case, without its lookups.
            let hd = self.encode_fast(v, arena);
            let i = idx as usize;
            if self.chunks.len() <= i >> CHUNK_BITS {
                self.chunks.push(vec![0u32; CHUNK].into_boxed_slice());
            }
            if let Some(slot) = self
                .chunks
                .get_mut(i >> CHUNK_BITS)
                .and_then(|c| c.get_mut(i & (CHUNK - 1)))
            {
                *slot = hd;
                self.dense_len = i + 1;
                self.occupied += 1;
            }
            return;
        }
        self.put_slow(idx, v, arena);
    }

    #[inline(never)]
    fn put_slow(&mut self, idx: u64, v: Val, arena: &mut Arena) {
        let old = self.handle(idx);
        let hd = self.encode(v, old, arena);
        if let Some(cur) = self.dense_slot(idx) {
            if cur == 0 {
                // A slot stored in the map before the dense part grew over it stays there.
                if let Some(slot) = self.sparse.get_mut(&idx).filter(|_| old.is_some()) {
                    *slot = hd;
                    return;
                }
                self.occupied += 1;
            }
            let i = idx as usize;
            self.chunks[i >> CHUNK_BITS][i & (CHUNK - 1)] = hd;
            return;
        }
        // Grow the dense part only while the index stays near what is really used.
        let cap = self.dense_cap();
        if idx < cap && (self.sparse.is_empty() || !self.sparse.contains_key(&idx)) {
            let i = idx as usize;
            while self.chunks.len() <= i >> CHUNK_BITS {
                self.chunks.push(vec![0u32; CHUNK].into_boxed_slice());
            }
            self.dense_len = i + 1;
            self.chunks[i >> CHUNK_BITS][i & (CHUNK - 1)] = hd;
            self.occupied += 1;
            return;
        }
        if self.sparse.insert(idx, hd).is_none() {
            self.occupied += 1;
        }
    }

    /// Indexes below this may grow the dense part.
    #[inline]
    fn dense_cap(&self) -> u64 {
        self.occupied.saturating_mul(2).saturating_add(4096) as u64
    }

    #[inline]
    pub(crate) fn get(&self, idx: u64) -> Option<Val> {
        self.handle(idx).map(|h| self.decode(h))
    }

    /// Every node the memo refers to (roots of the arena's collection).
    pub(crate) fn roots(&self) -> impl Iterator<Item = Val> + '_ {
        self.exact
            .iter()
            .copied()
            .chain(self.globals.iter().map(|g| Val::Node(*g)))
    }

    fn global_id(&mut self, n: NodeId, arena: &mut Arena) -> Option<u32> {
        if let Some(&id) = self.global_ids.get(&n) {
            return Some(id);
        }
        if self.globals.len() >= MAX_GLOBALS {
            return None;
        }
        arena.share(&Val::Node(n));
        let id = self.globals.len() as u32;
        self.globals.push(n);
        self.global_ids.insert(n, id);
        Some(id)
    }

    fn exact_slot(&mut self, v: Val, old: Option<u32>, lossy: bool, arena: &mut Arena) -> u32 {
        // Overwriting an exact slot reuses it.
        if let Some(o) = old.filter(|o| o >> 28 == T_EXACT) {
            let i = (o & PAYLOAD) as usize;
            if let Some(slot) = self.exact.get_mut(i) {
                arena.share(&v);
                *slot = v;
            }
            if lossy {
                self.exact_lossy += 1;
            }
            return o;
        }
        if self.exact.len() >= PAYLOAD as usize {
            return h(T_IMM, IMM_UNKNOWN);
        }
        if lossy {
            self.exact_lossy += 1;
        }
        arena.share(&v);
        self.exact.push(v);
        h(T_EXACT, (self.exact.len() - 1) as u32)
    }

    /// The machine's fast path for MEMOIZE and PUT: stores `v` at `idx` when that appends to
    /// the dense slots and `v` is one of the common values of data pickles (a small int, a text
    /// already interned, or, once the exact budget is spent, a plain tuple), exactly as
    /// [`Memo::put`] would. Returns false, having done nothing, otherwise.
    #[inline(always)]
    pub(crate) fn put_common(&mut self, idx: u64, v: &Val, arena: &Arena) -> bool {
        if idx != self.dense_len as u64 || !self.sparse.is_empty() || idx >= self.dense_cap() {
            return false;
        }
        let hd = match v {
            Val::Int(i) if (-(1 << 27)..(1 << 27)).contains(i) => {
                h(T_INT, (*i as i32 as u32) & PAYLOAD)
            }
            Val::Str(s) => match short_str(self.data, *s) {
                Some(p) => h(T_SHORT_STR, p),
                None => match self.texts.find(self.data, *s) {
                    Some(id) => h(T_STR, id),
                    None => return false,
                },
            },
            Val::Node(id) if self.exact_lossy >= EXACT_BUDGET => match arena.node(*id) {
                Some(n) if !n.storage => match &n.kind {
                    NodeKind::Tuple(items) => {
                        h(T_OPAQUE + Opaque::Tuple as u32, clamp(items.len()))
                    }
                    _ => return false,
                },
                _ => return false,
            },
            _ => return false,
        };
        let i = idx as usize;
        match self
            .chunks
            .get_mut(i >> CHUNK_BITS)
            .and_then(|c| c.get_mut(i & (CHUNK - 1)))
        {
            Some(slot) => *slot = hd,
            None => return false, // a new chunk: the general path
        }
        self.dense_len = i + 1;
        self.occupied += 1;
        true
    }

    /// [`Memo::encode`] of a value stored in a new slot, with the common cases of data
    /// pickles inline: small ints, texts already interned, and (once the exact budget is
    /// spent) plain tuples, kept as type and size.
    #[inline(always)]
    fn encode_fast(&mut self, v: Val, arena: &mut Arena) -> u32 {
        match v {
            Val::Int(i) if (-(1 << 27)..(1 << 27)).contains(&i) => {
                h(T_INT, (i as i32 as u32) & PAYLOAD)
            }
            Val::Str(s) => match short_str(self.data, s) {
                Some(p) => h(T_SHORT_STR, p),
                None => match self.texts.find(self.data, s) {
                    Some(id) => h(T_STR, id),
                    None => self.encode(v, None, arena),
                },
            },
            Val::Node(id) if self.exact_lossy >= EXACT_BUDGET => match arena.node(id) {
                Some(n) if !n.storage => match &n.kind {
                    NodeKind::Tuple(items) => {
                        h(T_OPAQUE + Opaque::Tuple as u32, clamp(items.len()))
                    }
                    _ => self.encode(v, None, arena),
                },
                _ => self.encode(v, None, arena),
            },
            _ => self.encode(v, None, arena),
        }
    }

    #[inline(never)]
    fn encode(&mut self, v: Val, old: Option<u32>, arena: &mut Arena) -> u32 {
        let budget = self.exact_lossy < EXACT_BUDGET;
        match v {
            Val::None => h(T_IMM, IMM_NONE),
            Val::Bool(true) => h(T_IMM, IMM_TRUE),
            Val::Bool(false) => h(T_IMM, IMM_FALSE),
            Val::Unknown => h(T_IMM, IMM_UNKNOWN),
            Val::Int(i) if (-(1 << 27)..(1 << 27)).contains(&i) => {
                h(T_INT, (i as i32 as u32) & PAYLOAD)
            }
            Val::Int(_) | Val::Float(_) => self.exact_slot(v, old, false, arena),
            Val::Str(s) | Val::Bytes(s) => {
                let is_str = matches!(v, Val::Str(_));
                if let Some(p) = short_str(self.data, s).filter(|_| is_str) {
                    return h(T_SHORT_STR, p);
                }
                match self.texts.intern(self.data, s) {
                    Some(id) => h(if is_str { T_STR } else { T_BYTES }, id),
                    None if budget => self.exact_slot(v, old, true, arena),
                    None => {
                        let k = if is_str { Opaque::Str } else { Opaque::Bytes };
                        h(T_OPAQUE + k as u32, clamp(s.len()))
                    }
                }
            }
            Val::Opaque(k, n) => h(T_OPAQUE + k as u32, n.0.min(PAYLOAD)),
            Val::OpaqueCall(kind, g) => {
                let gid = g.and_then(|g| self.global_id(g, arena));
                h(T_CALL, ((kind as u32) << 24) | gid.map_or(0, |g| g + 1))
            }
            Val::Node(id) => {
                /// What to store for a node (decided while the arena is borrowed).
                enum Plan {
                    Global,
                    Exact(bool),
                    Opaque(Opaque, usize),
                    Call(CallKind, Option<NodeId>),
                    Unknown,
                }
                let plan = match arena.node(id) {
                    None => Plan::Unknown,
                    Some(n) => match &n.kind {
                        NodeKind::Global(_) => Plan::Global,
                        // Torch storages: shared between tensors through the memo; keep them.
                        NodeKind::Persistent(_) | NodeKind::BigInt(_) => Plan::Exact(false),
                        NodeKind::Free => Plan::Unknown,
                        // Tensors (tied weights are one tensor GET twice) and what holds them.
                        _ if n.storage || budget => Plan::Exact(!n.storage),
                        NodeKind::Text { len, .. } => Plan::Opaque(Opaque::Str, *len as usize),
                        NodeKind::Blob { len, .. } => Plan::Opaque(Opaque::Bytes, *len as usize),
                        NodeKind::Tuple(items) => Plan::Opaque(Opaque::Tuple, items.len()),
                        NodeKind::FrozenSet(c) => Plan::Opaque(Opaque::FrozenSet, c.len as usize),
                        NodeKind::List(c) => Plan::Opaque(Opaque::List, c.len as usize),
                        NodeKind::Dict(c) => Plan::Opaque(Opaque::Dict, c.len as usize),
                        NodeKind::Set(c) => Plan::Opaque(Opaque::Set, c.len as usize),
                        NodeKind::Call(c) => Plan::Call(
                            c.kind,
                            match c.callable {
                                Val::Node(g)
                                    if matches!(
                                        arena.node(g).map(|n| &n.kind),
                                        Some(NodeKind::Global(_))
                                    ) =>
                                {
                                    Some(g)
                                }
                                _ => None,
                            },
                        ),
                    },
                };
                match plan {
                    Plan::Global => match self.global_id(id, arena) {
                        Some(id) => h(T_GLOBAL, id),
                        None => self.exact_slot(v, old, false, arena),
                    },
                    Plan::Exact(lossy) => self.exact_slot(v, old, lossy, arena),
                    Plan::Opaque(k, len) => h(T_OPAQUE + k as u32, clamp(len)),
                    Plan::Call(kind, g) => {
                        let g = g.and_then(|g| self.global_id(g, arena));
                        h(T_CALL, ((kind as u32) << 24) | g.map_or(0, |g| g + 1))
                    }
                    Plan::Unknown => h(T_IMM, IMM_UNKNOWN),
                }
            }
        }
    }

    fn decode(&self, hd: u32) -> Val {
        let p = hd & PAYLOAD;
        match hd >> 28 {
            T_EXACT => self.exact.get(p as usize).copied().unwrap_or(Val::Unknown),
            T_STR => self.texts.span(p).map_or(Val::Unknown, Val::Str),
            T_BYTES => self.texts.span(p).map_or(Val::Unknown, Val::Bytes),
            T_IMM => match p {
                IMM_NONE => Val::None,
                IMM_TRUE => Val::Bool(true),
                IMM_FALSE => Val::Bool(false),
                _ => Val::Unknown,
            },
            T_INT => Val::Int(((p << 4) as i32 >> 4) as i64),
            T_GLOBAL => self
                .globals
                .get(p as usize)
                .map_or(Val::Unknown, |g| Val::Node(*g)),
            T_CALL => {
                let kind = KINDS[((p >> 24) as usize).min(KINDS.len() - 1)];
                let g = p & 0xff_ffff;
                let g = (g > 0)
                    .then(|| self.globals.get((g - 1) as usize).copied())
                    .flatten();
                Val::OpaqueCall(kind, g)
            }
            t @ T_OPAQUE..=14 => Val::Opaque(OPAQUES[(t - T_OPAQUE) as usize], Count(p)),
            T_SHORT_STR => {
                let p = p as usize;
                match self.data.get(p).and_then(|&n| Span::new(p + 1, n as usize)) {
                    Some(s) => Val::Str(s),
                    None => Val::Unknown,
                }
            }
            _ => Val::Unknown,
        }
    }
}

/// The offset of the byte before `s` when that byte holds `s`'s length and fits a handle's
/// payload: the span is then `(p + 1, data[p])`, recoverable from `p` alone. The text is the
/// same as interning would give back (interning returns its first occurrence, this one
/// returns this occurrence), without a table lookup per string, which was a cache miss per
/// memoized string in large pickles.
#[inline(always)]
fn short_str(data: &[u8], s: Span) -> Option<u32> {
    let p = s.off().checked_sub(1)?;
    let fits = p <= PAYLOAD as usize && s.len() < 256 && s.off() + s.len() <= data.len();
    (fits && data.get(p).copied() == Some(s.len() as u8)).then_some(p as u32)
}

/// Open-addressing table of input spans keyed by their bytes.
#[derive(Default)]
struct Interner {
    /// Each text and its first 8 bytes (zero-padded), side by side: a lookup reads one slot
    /// and one entry, and most texts compare without reading the input again (their first
    /// occurrence is usually far back, out of cache).
    entries: Vec<(Span, u64)>,
    /// Id + 1 per slot; 0 is empty. Power-of-two size, at most half full.
    slots: Vec<u32>,
    others: usize,
}

impl Interner {
    #[inline]
    fn span(&self, id: u32) -> Option<Span> {
        self.entries.get(id as usize).map(|e| e.0)
    }

    /// Where `bytes` is or would go: `Ok(id)` when present, `Err(slot index)` of the empty
    /// slot that ends its probe sequence otherwise.
    #[inline(always)]
    fn probe(&self, data: &[u8], bytes: &[u8]) -> Result<u32, usize> {
        let head = head(bytes);
        let mask = self.slots.len().wrapping_sub(1);
        let mut i = hash_bytes(bytes) as usize & mask;
        loop {
            let Some(&e) = self.slots.get(i) else {
                return Err(usize::MAX);
            };
            if e == 0 {
                return Err(i);
            }
            if let Some(&(sp, h)) = self.entries.get((e - 1) as usize)
                && h == head
                && sp.len() == bytes.len()
                && (bytes.len() <= 8 || same(sp.bytes(data), bytes))
            {
                return Ok(e - 1);
            }
            i = (i + 1) & mask;
        }
    }

    /// The id of a text already interned (`intern` without the insertion).
    #[inline(always)]
    fn find(&self, data: &[u8], s: Span) -> Option<u32> {
        let bytes = s.bytes(data);
        if bytes.len() != s.len() || self.slots.is_empty() {
            return None;
        }
        self.probe(data, bytes).ok()
    }

    fn intern(&mut self, data: &[u8], s: Span) -> Option<u32> {
        let bytes = s.bytes(data);
        if bytes.len() != s.len() {
            return None;
        }
        if self.slots.is_empty() {
            self.slots = vec![0; 1024];
        }
        let i = match self.probe(data, bytes) {
            Ok(id) => return Some(id),
            Err(i) => i,
        };
        let name = is_name(bytes);
        if self.entries.len() >= INTERN_NAMES || (!name && self.others >= INTERN_OTHER) {
            return None;
        }
        let id = self.entries.len() as u32;
        let slot = self.slots.get_mut(i)?;
        *slot = id + 1;
        if !name {
            self.others += 1;
        }
        self.entries.push((s, head(bytes)));
        if self.entries.len() * 2 > self.slots.len() {
            self.grow(data);
        }
        Some(id)
    }

    fn grow(&mut self, data: &[u8]) {
        let mut slots = vec![0u32; self.slots.len() * 2];
        let mask = slots.len() - 1;
        for (id, (sp, _)) in self.entries.iter().enumerate() {
            let mut i = hash_bytes(sp.bytes(data)) as usize & mask;
            while slots[i] != 0 {
                i = (i + 1) & mask;
            }
            slots[i] = id as u32 + 1;
        }
        self.slots = slots;
    }
}

/// The first 8 bytes, zero-padded, as a little-endian word (loads of fixed size: no call to
/// `memcpy` for the short texts that pickles are full of).
#[inline(always)]
fn head(b: &[u8]) -> u64 {
    let n = b.len();
    if n >= 8 {
        word(b, 0)
    } else if n >= 4 {
        // Two overlapping 4-byte loads; the overlap holds the same bytes in both.
        let lo = u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as u64;
        let hi = u32::from_le_bytes([b[n - 4], b[n - 3], b[n - 2], b[n - 1]]) as u64;
        lo | (hi << (8 * (n - 4)))
    } else {
        b.iter()
            .enumerate()
            .fold(0u64, |w, (i, &c)| w | ((c as u64) << (8 * i)))
    }
}

/// The 8 bytes at `i` (the caller checked there are).
#[inline]
fn word(b: &[u8], i: usize) -> u64 {
    b.get(i..i + 8)
        .and_then(|w| w.try_into().ok())
        .map_or(0, u64::from_le_bytes)
}

/// Equal slices of equal length (short ones compared by words, without a call to memcmp).
#[inline]
fn same(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let n = a.len();
    if n >= 8 && n <= 16 {
        let w = |s: &[u8], i: usize| u64::from_le_bytes(s[i..i + 8].try_into().unwrap_or([0; 8]));
        return w(a, 0) == w(b, 0) && w(a, n - 8) == w(b, n - 8);
    }
    if n < 8 {
        return a.iter().zip(b).all(|(x, y)| x == y);
    }
    a == b
}

/// A dotted identifier (what a module or attribute name looks like).
fn is_name(b: &[u8]) -> bool {
    b.len() <= 256
        && b.iter()
            .all(|&c| c.is_ascii_alphanumeric() || c == b'_' || c == b'.')
}

/// A fast non-cryptographic hash: a multiply-rotate over 8-byte words, then murmur3's
/// finaliser so that the low bits (the table index) depend on every input byte. Texts of up to
/// 16 bytes (nearly all) are one or two word loads.
#[inline(always)]
fn hash_bytes(b: &[u8]) -> u64 {
    const K: u64 = 0x9E37_79B9_7F4A_7C15;
    let n = b.len();
    let mut h = (n as u64).wrapping_mul(K);
    let mut mix = |w: u64| h = (h.rotate_left(23) ^ w).wrapping_mul(K);
    if n <= 8 {
        mix(head(b));
    } else if n <= 16 {
        mix(word(b, 0));
        mix(word(b, n - 8));
    } else {
        let mut chunks = b.chunks_exact(8);
        for c in &mut chunks {
            mix(word(c, 0));
        }
        mix(head(chunks.remainder()));
    }
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^ (h >> 33)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memoize_counts_occupied_slots() {
        let mut a = Arena::default();
        let mut m = Memo::new(b"");
        m.put(5, Val::Int(5), &mut a);
        assert_eq!(m.len(), 1);
        let n = m.len() as u64;
        m.put(n, Val::Int(1), &mut a);
        assert!(matches!(m.get(1), Some(Val::Int(1))));
        m.put(0xFFFF_FFFF, Val::Int(9), &mut a);
        assert_eq!(m.len(), 3);
        assert!(m.dense_len < 10_000);
        m.put(7, Val::Int(-(1 << 40)), &mut a);
        assert!(matches!(m.get(7), Some(Val::Int(i)) if i == -(1 << 40)));
        m.put(8, Val::Int(-5), &mut a);
        assert!(matches!(m.get(8), Some(Val::Int(-5))));
    }

    #[test]
    fn texts_are_interned() {
        let data = b"os system os xyz";
        let mut a = Arena::default();
        let mut m = Memo::new(data);
        m.put(0, Val::Str(Span::new(0, 2).unwrap()), &mut a);
        m.put(1, Val::Str(Span::new(10, 2).unwrap()), &mut a);
        m.put(2, Val::Bytes(Span::new(10, 2).unwrap()), &mut a);
        assert_eq!(m.texts.entries.len(), 1);
        let Some(Val::Str(s)) = m.get(1) else {
            panic!()
        };
        assert_eq!(s.bytes(data), b"os");
        assert!(matches!(m.get(2), Some(Val::Bytes(_))));
    }

    #[test]
    fn short_strings_are_read_back_from_the_input() {
        // SHORT_BINUNICODE 'os', SHORT_BINUNICODE 'os', and a span not after its length.
        let data = b"\x8c\x02os\x8c\x02osXos";
        let mut a = Arena::default();
        let mut m = Memo::new(data);
        m.put(0, Val::Str(Span::new(2, 2).unwrap()), &mut a);
        m.put(1, Val::Str(Span::new(6, 2).unwrap()), &mut a);
        m.put(2, Val::Str(Span::new(9, 2).unwrap()), &mut a);
        assert_eq!(m.texts.entries.len(), 1, "only the third is interned");
        for i in 0..3 {
            let Some(Val::Str(s)) = m.get(i) else {
                panic!("slot {i}")
            };
            assert_eq!(s.bytes(data), b"os");
        }
        let Some(Val::Str(s)) = m.get(1) else {
            panic!()
        };
        assert_eq!(s.off(), 6);
    }
}
