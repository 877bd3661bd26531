//! Model diff: tensors matched by shape and content (never by name alone), each pair classified,
//! and one model-level relation with its evidence.

use std::collections::HashMap;

use anyhow::Result;
use pedigree_formats::tensors::{DType, round_to_bf16, round_to_f16};
use serde::Serialize;

use crate::fingerprint::{mix64, multiset_hash, row_digest};
use crate::model::Model;

/// A weight tensor with its values in memory.
pub struct LT {
    pub name: String,
    pub dtype: DType,
    pub shape: Vec<usize>,
    pub quantized: bool,
    pub values: Vec<f32>,
    pub steps: Option<Vec<f32>>,
    pub digest: [u8; 32],
    pub multiset: u64,
}

pub struct Loaded {
    pub name: String,
    pub model_id: String,
    pub format_rank: u8,
    pub card: crate::card::Card,
    pub tensors: Vec<LT>,
}

impl Loaded {
    pub fn load(m: &Model) -> Result<Loaded> {
        use rayon::prelude::*;
        let ws = m.weights();
        let tensors = ws
            .par_iter()
            .map(|t| {
                let values = m.values(t)?;
                let steps = m.steps(t)?;
                let mut h = blake3::Hasher::new();
                for v in &values {
                    h.update(&v.to_le_bytes());
                }
                let multiset = multiset_hash(values.iter().map(|v| v.to_bits()));
                Ok(LT {
                    name: t.name.clone(),
                    dtype: t.dtype,
                    shape: t.shape.clone(),
                    quantized: t.quantized,
                    values,
                    steps,
                    digest: *h.finalize().as_bytes(),
                    multiset,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Loaded {
            name: m.name.clone(),
            model_id: crate::fingerprint::model_id(&m.path)?,
            format_rank: m.format_rank(),
            card: m.card.clone(),
            tensors,
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Align {
    Direct,
    Transposed,
    /// Rows and/or columns permuted (hidden units reordered); exact values.
    Permuted,
    /// Same multiset of values, other arrangement (fused, reshaped).
    Rearranged,
}

#[derive(Debug, Clone, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum TensorVerdict {
    Identical,
    CastEquivalent {
        from: String,
        to: String,
    },
    QuantizationEquivalent {
        scheme: String,
        max_err_steps: f32,
    },
    Pruned {
        kept_rows: usize,
        of_rows: usize,
    },
    Changed {
        cosine: f32,
        rel_l2: f32,
        delta_rank: Option<usize>,
        top_energy: f32,
    },
    Added,
    Removed,
}

#[derive(Debug, Clone, Serialize)]
pub struct TensorDiff {
    pub a: Option<String>,
    pub b: Option<String>,
    pub shape_a: Option<Vec<usize>>,
    pub shape_b: Option<Vec<usize>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub align: Option<Align>,
    #[serde(flatten)]
    pub verdict: TensorVerdict,
    #[serde(skip)]
    pub elements: usize,
}

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize, PartialOrd, Ord, Hash,
)]
#[serde(rename_all = "kebab-case")]
pub enum Relation {
    Identical,
    Copy,
    Cast,
    Quantized,
    Pruned,
    Finetune,
    HeadOnly,
    Edit,
    Unrelated,
}

impl Relation {
    pub fn label(self) -> &'static str {
        match self {
            Relation::Identical => "identical",
            Relation::Copy => "copy",
            Relation::Cast => "cast",
            Relation::Quantized => "quantized",
            Relation::Pruned => "pruned",
            Relation::Finetune => "finetune",
            Relation::HeadOnly => "head-only",
            Relation::Edit => "edit",
            Relation::Unrelated => "unrelated",
        }
    }
}

/// Which side is the parent, as far as the weights alone tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Direction {
    AToB,
    BToA,
    Unknown,
}

#[derive(Debug, Clone, Serialize)]
pub struct Evidence {
    pub identical: usize,
    pub permuted: usize,
    pub cast: usize,
    pub quantized: usize,
    pub pruned: usize,
    pub changed: usize,
    pub added: usize,
    pub removed: usize,
    /// Tensors of B identical (or cast/quantization-equivalent) to A: frozen in a fine-tune.
    pub frozen: Vec<String>,
    /// Changed tensors of B.
    pub changed_tensors: Vec<String>,
    /// Element-weighted closeness in [0, 1] (1 = same weights); ranks candidate parents.
    pub closeness: f32,
    pub notes: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct DiffReport {
    pub a: String,
    pub b: String,
    pub relation: Relation,
    pub direction: Direction,
    pub evidence: Evidence,
    pub tensors: Vec<TensorDiff>,
}

// ---------------------------------------------------------------- per-tensor comparison

fn squeeze(s: &[usize]) -> Vec<usize> {
    s.iter().copied().filter(|&d| d != 1).collect()
}

fn transpose(v: &[f32], r: usize, c: usize) -> Vec<f32> {
    let mut o = vec![0f32; v.len()];
    for i in 0..r {
        for j in 0..c {
            o[j * r + i] = v[i * c + j];
        }
    }
    o
}

/// Multisets of per-row (and per-column) multiset hashes: equal for a matrix whose rows and
/// columns were permuted (a hidden-unit permutation touches a layer's rows and the next
/// layer's columns).
fn row_col_sig(v: &[f32], r: usize, c: usize) -> (Vec<u64>, Vec<u64>) {
    let mut rows: Vec<u64> = v
        .chunks(c)
        .map(|row| multiset_hash(row.iter().map(|x| x.to_bits())))
        .collect();
    let t = transpose(v, r, c);
    let mut cols: Vec<u64> = t
        .chunks(r)
        .map(|col| multiset_hash(col.iter().map(|x| x.to_bits())))
        .collect();
    rows.sort_unstable();
    cols.sort_unstable();
    (rows, cols)
}

/// b's view of a's values: a rearranged to b's layout (every compatible one: a square matrix
/// may be stored either way), or nothing when shapes are incompatible.
fn alignments(a: &LT, b: &LT) -> Vec<(Vec<f32>, Align)> {
    let mut out = Vec::new();
    if a.values.len() != b.values.len() {
        return out;
    }
    let (sa, sb) = (squeeze(&a.shape), squeeze(&b.shape));
    if sa == sb {
        out.push((a.values.clone(), Align::Direct));
    }
    if sa.len() == 2 && sb.len() == 2 && sa[0] == sb[1] && sa[1] == sb[0] {
        out.push((transpose(&a.values, sa[0], sa[1]), Align::Transposed));
    }
    out
}

fn sampled_cos(av: &[f32], bv: &[f32]) -> f32 {
    let idx: Vec<usize> = crate::fingerprint::sample_positions(av.len()).collect();
    let x: Vec<f32> = idx.iter().map(|&k| av[k]).collect();
    let y: Vec<f32> = idx.iter().map(|&k| bv[k]).collect();
    centred_cos(&x, &y)
}

/// The alignment of a under which it looks most like b.
fn aligned(a: &LT, b: &LT) -> Option<(Vec<f32>, Align)> {
    let mut all = alignments(a, b);
    if all.len() <= 1 {
        return all.pop();
    }
    let best = (0..all.len()).max_by(|&i, &j| {
        sampled_cos(&all[i].0, &b.values).total_cmp(&sampled_cos(&all[j].0, &b.values))
    })?;
    Some(all.swap_remove(best))
}

fn centred_cos(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().max(1) as f64;
    let ma = a.iter().map(|&x| x as f64).sum::<f64>() / n;
    let mb = b.iter().map(|&x| x as f64).sum::<f64>() / n;
    let (mut ab, mut aa, mut bb) = (0f64, 0f64, 0f64);
    for (&x, &y) in a.iter().zip(b) {
        let (x, y) = (x as f64 - ma, y as f64 - mb);
        ab += x * y;
        aa += x * x;
        bb += y * y;
    }
    if aa == 0.0 || bb == 0.0 {
        return if aa == bb { 1.0 } else { 0.0 };
    }
    (ab / (aa.sqrt() * bb.sqrt())) as f32
}

/// Top singular values of an r x c matrix by power iteration with deflation (k at most 4).
fn top_singular(d: &[f32], r: usize, c: usize, k: usize) -> Vec<f64> {
    let mut out = Vec::new();
    let mut vs: Vec<Vec<f64>> = Vec::new();
    for s in 0..k {
        let mut v: Vec<f64> = (0..c)
            .map(|j| ((mix64((s * 7919 + j) as u64) >> 11) as f64 / (1u64 << 53) as f64) - 0.5)
            .collect();
        let mut sigma = 0.0;
        for _ in 0..25 {
            for p in &vs {
                let dot: f64 = v.iter().zip(p).map(|(a, b)| a * b).sum();
                v.iter_mut().zip(p).for_each(|(a, b)| *a -= dot * b);
            }
            let nv = v.iter().map(|x| x * x).sum::<f64>().sqrt();
            if nv == 0.0 {
                break;
            }
            v.iter_mut().for_each(|x| *x /= nv);
            let u: Vec<f64> = (0..r)
                .map(|i| (0..c).map(|j| d[i * c + j] as f64 * v[j]).sum())
                .collect();
            let mut w = vec![0f64; c];
            for i in 0..r {
                for j in 0..c {
                    w[j] += d[i * c + j] as f64 * u[i];
                }
            }
            sigma = u.iter().map(|x| x * x).sum::<f64>().sqrt();
            v = w;
        }
        let nv = v.iter().map(|x| x * x).sum::<f64>().sqrt();
        if nv > 0.0 {
            v.iter_mut().for_each(|x| *x /= nv);
        }
        out.push(sigma);
        vs.push(v);
    }
    out
}

fn compare_values(a: &LT, av: &[f32], b: &LT) -> TensorVerdict {
    let bv = &b.values;
    if av.iter().zip(bv).all(|(x, y)| x.to_bits() == y.to_bits()) {
        return TensorVerdict::Identical;
    }
    // Cast: one side equals the other rounded to its dtype.
    for (lo, hi, lo_v, hi_v) in [(b, a, bv.as_slice(), av), (a, b, av, bv.as_slice())] {
        let round: Option<fn(f32) -> f32> = match lo.dtype {
            DType::F16 if !lo.quantized => Some(round_to_f16),
            DType::BF16 if !lo.quantized => Some(round_to_bf16),
            _ => None,
        };
        if let Some(rf) = round
            && hi.dtype.precision_bits() > lo.dtype.precision_bits()
            && hi_v
                .iter()
                .zip(lo_v)
                .all(|(x, y)| rf(*x).to_bits() == y.to_bits() || (x.is_nan() && y.is_nan()))
        {
            return TensorVerdict::CastEquivalent {
                from: hi.dtype.label().into(),
                to: lo.dtype.label().into(),
            };
        }
    }
    // Quantization: every value of the quantized side is the grid point next to the other's
    // (within one step: Q4_0 clips its largest magnitude by one level), half a step on average.
    for (q, f, qv, fv) in [(b, a, bv.as_slice(), av), (a, b, av, bv.as_slice())] {
        if let (Some(steps), false) = (&q.steps, f.quantized) {
            let (mut worst, mut sum) = (0f32, 0f64);
            for ((x, y), s) in fv.iter().zip(qv).zip(steps) {
                let e = if *s > 0.0 {
                    (x - y).abs() / s
                } else if x == y {
                    0.0
                } else {
                    f32::INFINITY
                };
                worst = worst.max(e);
                sum += e as f64;
            }
            let mean = sum / fv.len().max(1) as f64;
            if worst <= 1.05 && mean <= 0.35 {
                return TensorVerdict::QuantizationEquivalent {
                    scheme: q.dtype.label().into(),
                    max_err_steps: worst,
                };
            }
        }
    }
    let cosine = centred_cos(av, bv);
    let na = av.iter().map(|&x| (x as f64).powi(2)).sum::<f64>().sqrt();
    let delta: Vec<f32> = bv.iter().zip(av).map(|(y, x)| y - x).collect();
    let nd2 = delta.iter().map(|&x| (x as f64).powi(2)).sum::<f64>();
    let rel_l2 = if na > 0.0 {
        (nd2.sqrt() / na) as f32
    } else {
        f32::INFINITY
    };
    let s = squeeze(&b.shape);
    let (mut delta_rank, mut top_energy) = (None, 0f32);
    // The delta's spectrum matters only for a related tensor (an edit candidate); it is the
    // costly part of a diff, so unrelated-looking tensors skip it.
    if s.len() == 2 && nd2 > 0.0 && s[0] * s[1] <= 1 << 22 && cosine >= 0.5 {
        let sv = top_singular(&delta, s[0], s[1], 3);
        top_energy = (sv[0] * sv[0] / nd2) as f32;
        let mut acc = 0.0;
        for (i, x) in sv.iter().enumerate() {
            acc += x * x;
            if acc / nd2 >= 0.99 {
                delta_rank = Some(i + 1);
                break;
            }
        }
    }
    TensorVerdict::Changed {
        cosine,
        rel_l2,
        delta_rank,
        top_energy,
    }
}

fn strength(v: &TensorVerdict) -> f32 {
    match v {
        TensorVerdict::Identical => 1.0,
        TensorVerdict::CastEquivalent { .. } => 0.999,
        TensorVerdict::QuantizationEquivalent { .. } => 0.99,
        TensorVerdict::Pruned { .. } => 0.98,
        TensorVerdict::Changed { cosine, .. } => cosine.max(0.0) * 0.9,
        _ => 0.0,
    }
}

// ---------------------------------------------------------------- matching

pub fn diff_loaded(a: &Loaded, b: &Loaded) -> DiffReport {
    let mut used_a = vec![false; a.tensors.len()];
    let mut used_b = vec![false; b.tensors.len()];
    let mut out: Vec<TensorDiff> = Vec::new();
    let mut permuted = 0usize;
    let pair = |i: usize, j: usize, align: Option<Align>, v: TensorVerdict| TensorDiff {
        a: Some(a.tensors[i].name.clone()),
        b: Some(b.tensors[j].name.clone()),
        shape_a: Some(a.tensors[i].shape.clone()),
        shape_b: Some(b.tensors[j].shape.clone()),
        align,
        verdict: v,
        elements: b.tensors[j].values.len().max(a.tensors[i].values.len()),
    };
    // 1. exact digests (same name preferred among equal digests)
    let mut by_digest: HashMap<[u8; 32], Vec<usize>> = HashMap::new();
    for (i, t) in a.tensors.iter().enumerate() {
        by_digest.entry(t.digest).or_default().push(i);
    }
    for (j, t) in b.tensors.iter().enumerate() {
        if let Some(c) = by_digest.get(&t.digest) {
            let pick = c
                .iter()
                .copied()
                .filter(|&i| !used_a[i] && a.tensors[i].shape == t.shape);
            let pick: Vec<usize> = pick.collect();
            if let Some(&i) = pick
                .iter()
                .find(|&&i| a.tensors[i].name == t.name)
                .or(pick.first())
            {
                used_a[i] = true;
                used_b[j] = true;
                out.push(pair(i, j, Some(Align::Direct), TensorVerdict::Identical));
            }
        }
    }
    // 2. permuted / transposed exact copies: equal multiset hash
    for j in 0..b.tensors.len() {
        if used_b[j] {
            continue;
        }
        let tb = &b.tensors[j];
        if let Some(i) = (0..a.tensors.len()).find(|&i| {
            !used_a[i]
                && a.tensors[i].multiset == tb.multiset
                && a.tensors[i].values.len() == tb.values.len()
        }) {
            let ta = &a.tensors[i];
            let (sa, sb) = (squeeze(&ta.shape), squeeze(&tb.shape));
            let align = if let Some((v, al)) = aligned(ta, tb).filter(|(v, _)| {
                v.iter()
                    .zip(&tb.values)
                    .all(|(x, y)| x.to_bits() == y.to_bits())
            }) {
                let _ = v;
                al
            } else if sa == sb
                && (sa.len() == 1
                    || (sa.len() == 2
                        && row_col_sig(&ta.values, sa[0], sa[1])
                            == row_col_sig(&tb.values, sb[0], sb[1])))
            {
                Align::Permuted
            } else {
                Align::Rearranged
            };
            if align == Align::Permuted {
                permuted += 1;
            }
            used_a[i] = true;
            used_b[j] = true;
            out.push(pair(i, j, Some(align), TensorVerdict::Identical));
        }
    }
    // 3. pruned rows: b's rows a subset of a's rows (same row length), or the reverse.
    for j in 0..b.tensors.len() {
        if used_b[j] {
            continue;
        }
        let tb = &b.tensors[j];
        if tb.shape.len() != 2 {
            continue;
        }
        for i in 0..a.tensors.len() {
            let ta = &a.tensors[i];
            if used_a[i]
                || ta.shape.len() != 2
                || ta.shape[1] != tb.shape[1]
                || ta.shape[0] == tb.shape[0]
            {
                continue;
            }
            let c = tb.shape[1].max(1);
            let (big, small) = if ta.shape[0] > tb.shape[0] {
                (ta, tb)
            } else {
                (tb, ta)
            };
            let set: std::collections::HashSet<u64> =
                big.values.chunks(c).map(row_digest).collect();
            if small.values.chunks(c).all(|r| set.contains(&row_digest(r))) {
                used_a[i] = true;
                used_b[j] = true;
                out.push(pair(
                    i,
                    j,
                    Some(Align::Direct),
                    TensorVerdict::Pruned {
                        kept_rows: small.shape[0],
                        of_rows: big.shape[0],
                    },
                ));
                break;
            }
        }
    }
    // 4. same element count, compatible layout: best candidate by a sampled cosine, then a
    // full comparison (greedy by score).
    let mut cands: Vec<(f32, usize, usize)> = Vec::new();
    for j in 0..b.tensors.len() {
        if used_b[j] {
            continue;
        }
        for i in 0..a.tensors.len() {
            if used_a[i] {
                continue;
            }
            if let Some((av, _)) = aligned(&a.tensors[i], &b.tensors[j]) {
                let name_bonus = if a.tensors[i].name == b.tensors[j].name {
                    0.01
                } else {
                    0.0
                };
                cands.push((sampled_cos(&av, &b.tensors[j].values) + name_bonus, i, j));
            }
        }
    }
    cands.sort_by(|x, y| y.0.total_cmp(&x.0));
    for (_, i, j) in cands {
        if used_a[i] || used_b[j] {
            continue;
        }
        let Some((av, al)) = aligned(&a.tensors[i], &b.tensors[j]) else {
            continue;
        };
        used_a[i] = true;
        used_b[j] = true;
        let v = compare_values(&a.tensors[i], &av, &b.tensors[j]);
        out.push(pair(i, j, Some(al), v));
    }
    // 5. leftovers: if both sides' leftovers hold the same multiset, they are a rearrangement
    // (fused QKV, fused GRU biases, reshapes) of each other.
    let left_a: Vec<usize> = (0..a.tensors.len()).filter(|&i| !used_a[i]).collect();
    let left_b: Vec<usize> = (0..b.tensors.len()).filter(|&j| !used_b[j]).collect();
    let msum = |ts: &[LT], ix: &[usize]| {
        ix.iter().fold(0u64, |s, &i| {
            let m = ts[i].multiset;
            let lo = (s as u32).wrapping_add(m as u32);
            let hi = ((s >> 32) as u32).wrapping_add((m >> 32) as u32);
            ((hi as u64) << 32) | lo as u64
        })
    };
    let mut notes = Vec::new();
    if !left_a.is_empty()
        && !left_b.is_empty()
        && msum(&a.tensors, &left_a) == msum(&b.tensors, &left_b)
    {
        notes.push(format!(
            "{} tensor(s) of A and {} of B hold the same values rearranged (fused or split)",
            left_a.len(),
            left_b.len()
        ));
        for (k, &j) in left_b.iter().enumerate() {
            let i = left_a[k.min(left_a.len() - 1)];
            out.push(pair(
                i,
                j,
                Some(Align::Rearranged),
                TensorVerdict::Identical,
            ));
        }
    } else {
        for &i in &left_a {
            out.push(TensorDiff {
                a: Some(a.tensors[i].name.clone()),
                b: None,
                shape_a: Some(a.tensors[i].shape.clone()),
                shape_b: None,
                align: None,
                verdict: TensorVerdict::Removed,
                elements: a.tensors[i].values.len(),
            });
        }
        for &j in &left_b {
            out.push(TensorDiff {
                a: None,
                b: Some(b.tensors[j].name.clone()),
                shape_a: None,
                shape_b: Some(b.tensors[j].shape.clone()),
                align: None,
                verdict: TensorVerdict::Added,
                elements: b.tensors[j].values.len(),
            });
        }
    }
    classify(a, b, out, permuted, notes)
}

fn kurtosis(v: &[f32]) -> f64 {
    let n = v.len().max(1) as f64;
    let m = v.iter().map(|&x| x as f64).sum::<f64>() / n;
    let m2 = v.iter().map(|&x| (x as f64 - m).powi(2)).sum::<f64>() / n;
    let m4 = v.iter().map(|&x| (x as f64 - m).powi(4)).sum::<f64>() / n;
    if m2 == 0.0 { 0.0 } else { m4 / (m2 * m2) }
}

fn classify(
    a: &Loaded,
    b: &Loaded,
    tensors: Vec<TensorDiff>,
    permuted: usize,
    mut notes: Vec<String>,
) -> DiffReport {
    let mut e = Evidence {
        identical: 0,
        permuted,
        cast: 0,
        quantized: 0,
        pruned: 0,
        changed: 0,
        added: 0,
        removed: 0,
        frozen: vec![],
        changed_tensors: vec![],
        closeness: 0.0,
        notes: vec![],
    };
    let (mut wsum, mut wtot) = (0f64, 0f64);
    let mut high_changed = 0;
    let mut low_changed = 0;
    let mut low_rank_changed = 0;
    let mut cos_w = (0f64, 0f64);
    let (mut dir_votes_a, mut dir_votes_b) = (0i32, 0i32);
    for t in &tensors {
        let w = t.elements as f64;
        wtot += w;
        wsum += strength(&t.verdict) as f64 * w;
        let bname = t.b.clone().unwrap_or_default();
        match &t.verdict {
            TensorVerdict::Identical => {
                e.identical += 1;
                e.frozen.push(bname);
            }
            TensorVerdict::CastEquivalent { from, .. } => {
                e.cast += 1;
                e.frozen.push(bname);
                // the lower precision side is the child
                let ad = a
                    .tensors
                    .iter()
                    .find(|x| Some(&x.name) == t.a.as_ref())
                    .map(|x| x.dtype.label());
                if ad == Some(from.as_str()) {
                    dir_votes_a += 1
                } else {
                    dir_votes_b += 1
                }
            }
            TensorVerdict::QuantizationEquivalent { .. } => {
                e.quantized += 1;
                e.frozen.push(bname);
                let bq = b
                    .tensors
                    .iter()
                    .find(|x| Some(&x.name) == t.b.as_ref())
                    .is_some_and(|x| x.quantized);
                if bq {
                    dir_votes_a += 1
                } else {
                    dir_votes_b += 1
                }
            }
            TensorVerdict::Pruned { .. } => {
                e.pruned += 1;
                let small_b = t
                    .shape_b
                    .as_ref()
                    .zip(t.shape_a.as_ref())
                    .is_some_and(|(sb, sa)| sb[0] < sa[0]);
                if small_b {
                    dir_votes_a += 1
                } else {
                    dir_votes_b += 1
                }
            }
            TensorVerdict::Changed {
                cosine,
                delta_rank,
                top_energy,
                ..
            } => {
                e.changed += 1;
                e.changed_tensors.push(bname);
                cos_w.0 += *cosine as f64 * w;
                cos_w.1 += w;
                if *cosine >= 0.5 {
                    high_changed += 1;
                    if delta_rank.is_some_and(|r| r <= 2) && *top_energy >= 0.8 {
                        low_rank_changed += 1;
                    }
                } else {
                    low_changed += 1;
                }
            }
            TensorVerdict::Added => e.added += 1,
            TensorVerdict::Removed => e.removed += 1,
        }
    }
    e.closeness = if wtot > 0.0 {
        (wsum / wtot) as f32
    } else {
        0.0
    };
    let total = tensors.len();
    let equiv = e.identical + e.cast + e.quantized;
    let same_set = e.added == 0 && e.removed == 0;
    let relation = if a.model_id == b.model_id {
        Relation::Identical
    } else if same_set && e.identical == total {
        Relation::Copy
    } else if same_set && e.identical + e.cast == total && e.cast > 0 {
        Relation::Cast
    } else if same_set && equiv == total && e.quantized > 0 {
        Relation::Quantized
    } else if same_set && e.pruned > 0 && equiv + e.pruned == total {
        Relation::Pruned
    } else if equiv > 0
        && high_changed == 0
        && (e.added + e.removed + low_changed) > 0
        && (e.added.max(e.removed) + low_changed) <= 2
    {
        Relation::HeadOnly
    } else if equiv > 0
        && same_set
        && high_changed > 0
        && high_changed == low_rank_changed
        && low_changed == 0
        && high_changed * 10 <= total.max(10)
    {
        Relation::Edit
    } else if (equiv > 0 && high_changed > 0)
        || (cos_w.1 > 0.0 && cos_w.0 / cos_w.1 >= 0.5 && e.added + e.removed <= total / 4)
    {
        // frozen tensors plus related changes, or everything changed but still close
        Relation::Finetune
    } else {
        Relation::Unrelated
    };
    // Direction from the weights: lossy transforms point to the lossy side; a child that adds
    // tensors is the child; otherwise a statistic (see lineage for card / hub tie-breakers).
    let mut direction = match dir_votes_a.cmp(&dir_votes_b) {
        std::cmp::Ordering::Greater => Direction::AToB,
        std::cmp::Ordering::Less => Direction::BToA,
        _ => Direction::Unknown,
    };
    if direction == Direction::Unknown
        && e.added != e.removed
        && matches!(relation, Relation::HeadOnly | Relation::Finetune)
    {
        direction = if e.added > e.removed {
            Direction::AToB
        } else {
            Direction::BToA
        };
        notes.push("the side with extra tensors (new heads) is the child".into());
    }
    if direction == Direction::Unknown && relation == Relation::Edit {
        // A ROME edit adds a rank-one component: the edited matrix has the larger spectral norm.
        let (mut na, mut nb) = (0f64, 0f64);
        for t in tensors
            .iter()
            .filter(|t| matches!(t.verdict, TensorVerdict::Changed { .. }))
        {
            let ta = a.tensors.iter().find(|x| Some(&x.name) == t.a.as_ref());
            let tb = b.tensors.iter().find(|x| Some(&x.name) == t.b.as_ref());
            if let (Some(ta), Some(tb)) = (ta, tb) {
                let s = squeeze(&tb.shape);
                if s.len() == 2
                    && let Some((av, _)) = aligned(ta, tb)
                {
                    na += top_singular(&av, s[0], s[1], 1)[0];
                    nb += top_singular(&tb.values, s[0], s[1], 1)[0];
                }
            }
        }
        direction = if nb > na {
            Direction::AToB
        } else {
            Direction::BToA
        };
        notes.push("edit oriented by spectral norm (a rank-one insertion raises it)".into());
    }
    if direction == Direction::Unknown && relation == Relation::HeadOnly {
        // A new head trained briefly from its initialisation keeps the init's light tails: lower
        // kurtosis than the long-trained original head.
        let k = |side: &Loaded, names: Vec<&String>| -> f64 {
            let v: Vec<f64> = side
                .tensors
                .iter()
                .filter(|t| names.contains(&&t.name) && t.values.len() > 16)
                .map(|t| kurtosis(&t.values))
                .collect();
            if v.is_empty() {
                0.0
            } else {
                v.iter().sum::<f64>() / v.len() as f64
            }
        };
        let na: Vec<&String> = tensors
            .iter()
            .filter(|t| !matches!(t.verdict, TensorVerdict::Identical | TensorVerdict::Added))
            .filter_map(|t| t.a.as_ref())
            .collect();
        let nb: Vec<&String> = tensors
            .iter()
            .filter(|t| !matches!(t.verdict, TensorVerdict::Identical | TensorVerdict::Removed))
            .filter_map(|t| t.b.as_ref())
            .collect();
        let (ka, kb) = (k(a, na), k(b, nb));
        if ka != kb {
            direction = if kb < ka {
                Direction::AToB
            } else {
                Direction::BToA
            };
            notes.push(format!(
                "head oriented by kurtosis (new head {:.2} vs trained {:.2})",
                ka.min(kb),
                ka.max(kb)
            ));
        }
    }
    if permuted > 0 {
        notes.push(format!(
            "{permuted} tensor(s) identical after matching permuted hidden units"
        ));
    }
    e.notes = notes;
    if !matches!(
        relation,
        Relation::Finetune | Relation::HeadOnly | Relation::Edit
    ) {
        e.frozen.clear();
    }
    DiffReport {
        a: a.name.clone(),
        b: b.name.clone(),
        relation,
        direction,
        evidence: e,
        tensors,
    }
}

pub fn diff(a: &Model, b: &Model) -> Result<DiffReport> {
    Ok(diff_loaded(&Loaded::load(a)?, &Loaded::load(b)?))
}
