//! The unpickler memo (FORMATS-FACTS §1.4). CPython keeps a dense array that a single
//! `LONG_BINPUT 0xFFFFFFFF` grows to ~64 GiB; here slots live in a dense array only while the
//! indexes stay near the number of occupied slots, and in a map otherwise, so no input can make
//! the reader allocate by index.
//!
//! Ordinary large pickles memoize millions of objects (protocol 4 MEMOIZEs every string and
//! tuple), so a slot is one `u32` handle, and what it refers to costs little or nothing:
//!
//! * strings and bytes (spans of the input) are interned: equal texts share one table entry,
//!   so a `str` that could be a module or attribute name costs nothing after its first
//!   occurrence, and a GET returns the exact text;
//! * globals live in a small table (one entry per imported object);
//! * `None`, booleans and small integers are immediate;
//! * anything else is kept exactly (an `Rc` in a side table) while a budget of
//!   [`EXACT_BUDGET`] such slots lasts, then only its type and size are kept
//!   ([`Val::Opaque`]), or for a call result its callee ([`Val::OpaqueCall`]). The objects
//!   themselves stay exact wherever the stack put them; only a later GET sees the summary.

use std::collections::HashMap;
use std::rc::Rc;

use super::CallKind;
use super::value::{Node, NodeKind, Opaque, Span, Val};

/// Indexes at or above this are reported as [`super::AnomalyKind::MemoHuge`].
pub(crate) const MEMO_HUGE: u64 = 1 << 24;

/// Slots whose value is kept exactly (an `Rc` held by the memo) when a cheaper form would
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
    globals: Vec<Rc<Node>>,
    global_ids: HashMap<*const Node, u32>,
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

    /// Stores `v` at `idx`, overwriting what was there (legal in CPython).
    pub(crate) fn put(&mut self, idx: u64, v: Val) {
        let old = self.handle(idx);
        let hd = self.encode(v, old);
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
        let cap = self.occupied.saturating_mul(2).saturating_add(4096) as u64;
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

    pub(crate) fn get(&self, idx: u64) -> Option<Val> {
        self.handle(idx).map(|h| self.decode(h))
    }

    /// Every value kept exactly (for cycle breaking at the end of a run).
    pub(crate) fn values(&self) -> impl Iterator<Item = &Val> {
        self.exact.iter()
    }

    /// Drops every value the memo holds.
    pub(crate) fn clear(&mut self) {
        self.exact = Vec::new();
        self.globals = Vec::new();
        self.global_ids = HashMap::new();
    }

    fn global_id(&mut self, n: &Rc<Node>) -> Option<u32> {
        let p = Rc::as_ptr(n);
        if let Some(&id) = self.global_ids.get(&p) {
            return Some(id);
        }
        if self.globals.len() >= MAX_GLOBALS {
            return None;
        }
        let id = self.globals.len() as u32;
        self.globals.push(n.clone());
        self.global_ids.insert(p, id);
        Some(id)
    }

    fn exact_slot(&mut self, v: Val, old: Option<u32>, lossy: bool) -> u32 {
        // Overwriting an exact slot reuses it.
        if let Some(o) = old.filter(|o| o >> 28 == T_EXACT) {
            let i = (o & PAYLOAD) as usize;
            self.exact[i] = v;
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
        self.exact.push(v);
        h(T_EXACT, (self.exact.len() - 1) as u32)
    }

    fn encode(&mut self, v: Val, old: Option<u32>) -> u32 {
        let budget = self.exact_lossy < EXACT_BUDGET;
        match v {
            Val::None => h(T_IMM, IMM_NONE),
            Val::Bool(true) => h(T_IMM, IMM_TRUE),
            Val::Bool(false) => h(T_IMM, IMM_FALSE),
            Val::Unknown => h(T_IMM, IMM_UNKNOWN),
            Val::Int(i) if (-(1 << 27)..(1 << 27)).contains(&i) => {
                h(T_INT, (i as i32 as u32) & PAYLOAD)
            }
            Val::Int(_) | Val::Float(_) => self.exact_slot(v, old, false),
            Val::Str(s) | Val::Bytes(s) => {
                let is_str = matches!(v, Val::Str(_));
                match self.texts.intern(self.data, s) {
                    Some(id) => h(if is_str { T_STR } else { T_BYTES }, id),
                    None if budget => self.exact_slot(v, old, true),
                    None => {
                        let k = if is_str { Opaque::Str } else { Opaque::Bytes };
                        h(T_OPAQUE + k as u32, clamp(s.len()))
                    }
                }
            }
            Val::Opaque(k, n) => h(T_OPAQUE + k as u32, n.min(PAYLOAD)),
            Val::OpaqueCall(kind, g) => {
                let gid = g.as_ref().and_then(|g| self.global_id(g));
                h(T_CALL, ((kind as u32) << 24) | gid.map_or(0, |g| g + 1))
            }
            Val::Node(ref n) => {
                let lossy = match &n.kind {
                    NodeKind::Global(_) => {
                        return match self.global_id(n) {
                            Some(id) => h(T_GLOBAL, id),
                            None => self.exact_slot(v, old, false),
                        };
                    }
                    // Torch storages: shared between tensors through the memo; keep them.
                    NodeKind::Persistent(_) | NodeKind::BigInt(_) => false,
                    // Tensors (tied weights are one tensor GET twice) and what holds them.
                    _ => !n.storage.get(),
                };
                if !lossy || budget {
                    return self.exact_slot(v, old, lossy);
                }
                let (k, len) = match &n.kind {
                    NodeKind::Text { len, .. } => (Opaque::Str, *len as usize),
                    NodeKind::Blob { len, .. } => (Opaque::Bytes, *len as usize),
                    NodeKind::Tuple(items) => (Opaque::Tuple, items.len()),
                    NodeKind::FrozenSet(c) => (Opaque::FrozenSet, c.len as usize),
                    NodeKind::List(c) => (Opaque::List, coll_len(c)),
                    NodeKind::Dict(c) => (Opaque::Dict, coll_len(c)),
                    NodeKind::Set(c) => (Opaque::Set, coll_len(c)),
                    NodeKind::Call(c) => {
                        let g = match &c.callable {
                            Val::Node(g) if matches!(g.kind, NodeKind::Global(_)) => {
                                self.global_id(g)
                            }
                            _ => None,
                        };
                        return h(T_CALL, ((c.kind as u32) << 24) | g.map_or(0, |g| g + 1));
                    }
                    NodeKind::Global(_) | NodeKind::Persistent(_) | NodeKind::BigInt(_) => {
                        unreachable!("kept exactly above")
                    }
                };
                h(T_OPAQUE + k as u32, clamp(len))
            }
        }
    }

    fn decode(&self, hd: u32) -> Val {
        let p = hd & PAYLOAD;
        match hd >> 28 {
            T_EXACT => self.exact[p as usize].clone(),
            T_STR => Val::Str(self.texts.spans[p as usize]),
            T_BYTES => Val::Bytes(self.texts.spans[p as usize]),
            T_IMM => match p {
                IMM_NONE => Val::None,
                IMM_TRUE => Val::Bool(true),
                IMM_FALSE => Val::Bool(false),
                _ => Val::Unknown,
            },
            T_INT => Val::Int(((p << 4) as i32 >> 4) as i64),
            T_GLOBAL => Val::Node(self.globals[p as usize].clone()),
            T_CALL => {
                let kind = KINDS[((p >> 24) as usize).min(KINDS.len() - 1)];
                let g = p & 0xff_ffff;
                let g = (g > 0).then(|| self.globals[(g - 1) as usize].clone());
                Val::OpaqueCall(kind, g)
            }
            t @ T_OPAQUE..=14 => Val::Opaque(OPAQUES[(t - T_OPAQUE) as usize], p),
            _ => Val::Unknown,
        }
    }
}

fn coll_len(c: &std::cell::RefCell<super::value::Coll>) -> usize {
    c.try_borrow().map_or(0, |c| c.len as usize)
}

/// Open-addressing table of input spans keyed by their bytes.
#[derive(Default)]
struct Interner {
    spans: Vec<Span>,
    /// The first 8 bytes of each text (zero-padded): most texts compare without reading the
    /// input again (their first occurrence is usually far back, out of cache).
    heads: Vec<u64>,
    /// Id + 1 per slot; 0 is empty. Power-of-two size, at most half full.
    slots: Vec<u32>,
    others: usize,
}

impl Interner {
    fn intern(&mut self, data: &[u8], s: Span) -> Option<u32> {
        let bytes = s.bytes(data);
        if bytes.len() != s.len() {
            return None;
        }
        if self.slots.is_empty() {
            self.slots = vec![0; 1024];
        }
        let hash = hash_bytes(bytes);
        let head = head(bytes);
        let mask = self.slots.len() - 1;
        let mut i = hash as usize & mask;
        loop {
            let e = self.slots[i];
            if e == 0 {
                break;
            }
            let id = (e - 1) as usize;
            if self.heads[id] == head {
                let sp = self.spans[id];
                if sp.len() == bytes.len() && (bytes.len() <= 8 || same(sp.bytes(data), bytes)) {
                    return Some(e - 1);
                }
            }
            i = (i + 1) & mask;
        }
        let name = is_name(bytes);
        if self.spans.len() >= INTERN_NAMES || (!name && self.others >= INTERN_OTHER) {
            return None;
        }
        if !name {
            self.others += 1;
        }
        let id = self.spans.len() as u32;
        self.spans.push(s);
        self.heads.push(head);
        self.slots[i] = id + 1;
        if self.spans.len() * 2 > self.slots.len() {
            self.grow(data);
        }
        Some(id)
    }

    fn grow(&mut self, data: &[u8]) {
        let mut slots = vec![0u32; self.slots.len() * 2];
        let mask = slots.len() - 1;
        for (id, sp) in self.spans.iter().enumerate() {
            let mut i = hash_bytes(sp.bytes(data)) as usize & mask;
            while slots[i] != 0 {
                i = (i + 1) & mask;
            }
            slots[i] = id as u32 + 1;
        }
        self.slots = slots;
    }
}

#[inline]
fn head(b: &[u8]) -> u64 {
    let mut buf = [0u8; 8];
    let n = b.len().min(8);
    buf[..n].copy_from_slice(&b[..n]);
    u64::from_le_bytes(buf)
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
/// finaliser so that the low bits (the table index) depend on every input byte.
#[inline]
fn hash_bytes(b: &[u8]) -> u64 {
    const K: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut h = (b.len() as u64).wrapping_mul(K);
    let mut chunks = b.chunks_exact(8);
    for c in &mut chunks {
        let w = u64::from_le_bytes(c.try_into().unwrap_or([0; 8]));
        h = (h.rotate_left(23) ^ w).wrapping_mul(K);
    }
    let rest = chunks.remainder();
    if !rest.is_empty() {
        let mut buf = [0u8; 8];
        buf[..rest.len()].copy_from_slice(rest);
        h = (h.rotate_left(23) ^ u64::from_le_bytes(buf)).wrapping_mul(K);
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
        let mut m = Memo::new(b"");
        m.put(5, Val::Int(5));
        assert_eq!(m.len(), 1);
        m.put(m.len() as u64, Val::Int(1));
        assert!(matches!(m.get(1), Some(Val::Int(1))));
        m.put(0xFFFF_FFFF, Val::Int(9));
        assert_eq!(m.len(), 3);
        assert!(m.dense_len < 10_000);
        m.put(7, Val::Int(-(1 << 40)));
        assert!(matches!(m.get(7), Some(Val::Int(i)) if i == -(1 << 40)));
        m.put(8, Val::Int(-5));
        assert!(matches!(m.get(8), Some(Val::Int(-5))));
    }

    #[test]
    fn texts_are_interned() {
        let data = b"os system os xyz";
        let mut m = Memo::new(data);
        m.put(0, Val::Str(Span::new(0, 2).unwrap()));
        m.put(1, Val::Str(Span::new(10, 2).unwrap()));
        m.put(2, Val::Bytes(Span::new(10, 2).unwrap()));
        assert_eq!(m.texts.spans.len(), 1);
        let Some(Val::Str(s)) = m.get(1) else {
            panic!()
        };
        assert_eq!(s.bytes(data), b"os");
        assert!(matches!(m.get(2), Some(Val::Bytes(_))));
    }
}
