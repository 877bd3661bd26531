//! Candidate index: exact keys (tensor digests, multiset hashes, embedding row digests) and
//! locality-sensitive keys (SimHash bands per tensor shape), so that lineage compares only
//! models that share something instead of every pair. A query is a handful of hash lookups.

use std::collections::HashMap;

use crate::fingerprint::{Fingerprint, mix64};

pub const BANDS: usize = 8;

/// The keys one model contributes.
#[derive(Debug, Clone, Default)]
pub struct Keys {
    pub exact: Vec<u64>,
    pub bands: Vec<u64>,
}

fn tag(t: u64, v: u64) -> u64 {
    mix64(v ^ t.wrapping_mul(0x9e37_79b9_7f4a_7c15))
}

fn shape_key(shape: &[usize]) -> u64 {
    // Sorted dims: transposed exports share keys with the original.
    let mut s: Vec<usize> = shape.iter().copied().filter(|&d| d != 1).collect();
    s.sort_unstable();
    s.iter().fold(0x51u64, |h, &d| mix64(h ^ d as u64))
}

impl Keys {
    /// Keys of one tensor: digest (u64 prefix), multiset, row digests, SimHash bands.
    pub fn add_tensor(
        &mut self,
        digest64: u64,
        multiset: u64,
        rows: Option<&[u64]>,
        shape: &[usize],
        simhash: u64,
        numel: usize,
    ) {
        if numel < 16 {
            return; // tiny tensors (scalars, biases of 1) collide across unrelated models
        }
        self.exact.push(tag(1, digest64));
        self.exact.push(tag(2, multiset));
        if let Some(r) = rows {
            self.exact.extend(r.iter().map(|&x| tag(3, x)));
        }
        let sk = shape_key(shape);
        for b in 0..BANDS {
            let band = (simhash >> (8 * b)) & 0xff;
            self.bands.push(tag(4, sk ^ ((b as u64) << 56) ^ band));
        }
    }

    pub fn from_fingerprint(f: &Fingerprint) -> Keys {
        let mut k = Keys::default();
        for t in &f.tensors {
            let d64 = u64::from_str_radix(t.digest.get(..16).unwrap_or("0"), 16).unwrap_or(0);
            let ms = u64::from_str_radix(&t.multiset, 16).unwrap_or(0);
            let rows: Option<Vec<u64>> = t.rows.as_ref().map(|r| {
                r.iter()
                    .filter_map(|x| u64::from_str_radix(x, 16).ok())
                    .collect()
            });
            let sh = u64::from_str_radix(&t.sketch.simhash, 16).unwrap_or(0);
            k.add_tensor(
                d64,
                ms,
                rows.as_deref(),
                &t.shape,
                sh,
                t.shape.iter().product(),
            );
        }
        k
    }
}

#[derive(Default)]
pub struct Index {
    exact: HashMap<u64, Vec<u32>>,
    bands: HashMap<u64, Vec<u32>>,
    pub len: usize,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Hit {
    pub model: u32,
    pub exact: u32,
    pub bands: u32,
}

impl Index {
    pub fn insert(&mut self, id: u32, k: &Keys) {
        let mut ex = k.exact.clone();
        ex.sort_unstable();
        ex.dedup();
        for x in ex {
            self.exact.entry(x).or_default().push(id);
        }
        let mut bs = k.bands.clone();
        bs.sort_unstable();
        bs.dedup();
        for x in bs {
            self.bands.entry(x).or_default().push(id);
        }
        self.len += 1;
    }

    /// Models sharing at least one exact key, or enough SimHash bands (a quarter of the
    /// query's, at least 3): the LSH vote that finds casts and quantized copies.
    pub fn query(&self, k: &Keys) -> Vec<Hit> {
        let mut votes: HashMap<u32, (u32, u32)> = HashMap::new();
        let mut ex = k.exact.clone();
        ex.sort_unstable();
        ex.dedup();
        for x in &ex {
            if let Some(v) = self.exact.get(x) {
                // Very common keys (a shared constant tensor in thousands of models) say little.
                if v.len() > 10_000 {
                    continue;
                }
                for &m in v {
                    votes.entry(m).or_default().0 += 1;
                }
            }
        }
        let mut bs = k.bands.clone();
        bs.sort_unstable();
        bs.dedup();
        for x in &bs {
            if let Some(v) = self.bands.get(x) {
                if v.len() > 10_000 {
                    continue;
                }
                for &m in v {
                    votes.entry(m).or_default().1 += 1;
                }
            }
        }
        let need = ((bs.len() / 4) as u32).max(3);
        let mut hits: Vec<Hit> = votes
            .into_iter()
            .filter(|(_, (e, b))| *e > 0 || *b >= need)
            .map(|(m, (e, b))| Hit {
                model: m,
                exact: e,
                bands: b,
            })
            .collect();
        hits.sort_by(|a, b| (b.exact, b.bands, a.model).cmp(&(a.exact, a.bands, b.model)));
        hits
    }
}
