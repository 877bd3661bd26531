//! The unpickler memo (FORMATS-FACTS §1.4). CPython keeps a dense array that a single
//! `LONG_BINPUT 0xFFFFFFFF` grows to ~64 GiB; here slots live in a dense vector only while the
//! indexes stay near the number of occupied slots, and in a map otherwise, so no input can make
//! the reader allocate by index.

use std::collections::HashMap;

use super::value::Val;

/// Indexes at or above this are reported as [`super::AnomalyKind::MemoHuge`].
pub(crate) const MEMO_HUGE: u64 = 1 << 24;

#[derive(Default)]
pub(crate) struct Memo {
    dense: Vec<Option<Val>>,
    sparse: HashMap<u64, Val>,
    occupied: usize,
}

impl Memo {
    /// The number of occupied slots: where MEMOIZE stores (`memo_len`, not max index + 1).
    pub(crate) fn len(&self) -> usize {
        self.occupied
    }

    pub(crate) fn contains(&self, idx: u64) -> bool {
        self.get(idx).is_some()
    }

    /// Stores `v` at `idx`, overwriting what was there (legal in CPython).
    pub(crate) fn put(&mut self, idx: u64, v: Val) {
        let i = idx as usize;
        if (idx as u128) < self.dense.len() as u128 {
            if self.dense[i].is_none() {
                // A slot stored in the map before the dense part grew over it stays there.
                if let Some(slot) = self.sparse.get_mut(&idx) {
                    *slot = v;
                    return;
                }
                self.occupied += 1;
            }
            self.dense[i] = Some(v);
            return;
        }
        // Grow the dense part only while the index stays near what is really used.
        let cap = self.occupied.saturating_mul(2).saturating_add(4096) as u64;
        if idx < cap && !self.sparse.contains_key(&idx) {
            self.dense.resize(i + 1, None);
            self.dense[i] = Some(v);
            self.occupied += 1;
            return;
        }
        if self.sparse.insert(idx, v).is_none() {
            self.occupied += 1;
        }
    }

    pub(crate) fn get(&self, idx: u64) -> Option<&Val> {
        if (idx as u128) < self.dense.len() as u128 {
            if let Some(v) = self.dense[idx as usize].as_ref() {
                return Some(v);
            }
        }
        self.sparse.get(&idx)
    }

    /// Every stored value (for cycle breaking at the end of a run).
    pub(crate) fn values(&self) -> impl Iterator<Item = &Val> {
        self.dense.iter().flatten().chain(self.sparse.values())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memoize_counts_occupied_slots() {
        let mut m = Memo::default();
        m.put(5, Val::Int(5));
        assert_eq!(m.len(), 1);
        m.put(m.len() as u64, Val::Int(1));
        assert!(matches!(m.get(1), Some(Val::Int(1))));
        m.put(0xFFFF_FFFF, Val::Int(9));
        assert_eq!(m.len(), 3);
        assert!(m.dense.len() < 10_000);
    }
}
