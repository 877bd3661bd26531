//! Model diff: tensors matched by shape and content (never by name alone), each pair classified,
//! and one model-level relation with its evidence.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

use anyhow::Result;
use pedigree_formats::tensors::{DType, round_to_bf16, round_to_f16};
use serde::Serialize;

use crate::fingerprint::{
    blake3_of, f32_bytes, mix64, multiset_hash, multiset_of_slice, row_digest, sample_positions,
};
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
    /// The values at [`crate::fingerprint::sample_positions`]: the compact summary that ranks
    /// candidate tensor pairs (sampled cosine) without touching the full values.
    pub sample: Vec<f32>,
    /// Mean of `sample` (as [`centred_cos`] computes it).
    pub sample_mean: f64,
    /// Per-row digests of a matrix (computed on first use: pruned-vocabulary matching, index).
    pub rows: OnceLock<Vec<u64>>,
    /// Largest singular value of the (squeezed) matrix, computed on first use (edit
    /// orientation compares it across every pair the tensor takes part in).
    pub sigma1: OnceLock<f64>,
    /// Squared row and column norms of a matrix, computed on first use (they survive a
    /// reordering of the other axis: how permuted copies are recognised).
    pub profiles: OnceLock<(Vec<f32>, Vec<f32>)>,
}

impl LT {
    /// Row digests of a 2-D tensor (rows of `shape[1]` values), cached.
    pub fn row_digests(&self) -> &[u64] {
        self.rows.get_or_init(|| {
            let c = self.shape.get(1).copied().unwrap_or(1).max(1);
            self.values.chunks(c).map(row_digest).collect()
        })
    }

    /// [`top_singular`]`(values, rows, cols, 1)[0]` of the squeezed 2-D shape, cached.
    fn spectral_norm(&self) -> f64 {
        *self.sigma1.get_or_init(|| {
            let s = squeeze(&self.shape);
            top_singular(&self.values, s[0], s[1], 1)[0]
        })
    }
}

pub struct Loaded {
    pub name: String,
    pub model_id: String,
    pub format_rank: u8,
    pub card: crate::card::Card,
    pub tensors: Vec<LT>,
}

impl Loaded {
    /// Reads every weight tensor once (values, quantization steps, digest, multiset hash,
    /// sample) and the model's identity (hashed from the bytes the readers hold).
    pub fn load(m: &Model) -> Result<Loaded> {
        use rayon::prelude::*;
        let ws = m.weights();
        let (tensors, model_id) = rayon::join(
            || {
                ws.par_iter()
                    .map(|t| {
                        let values = m.values(t)?;
                        let steps = m.steps(t)?;
                        let bytes = f32_bytes(&values);
                        let digest = *blake3_of(&bytes).as_bytes();
                        let multiset = multiset_of_slice(&bytes);
                        drop(bytes);
                        let sample: Vec<f32> =
                            sample_positions(values.len()).map(|i| values[i]).collect();
                        let sample_mean = mean_f64(&sample);
                        Ok(LT {
                            name: t.name.clone(),
                            dtype: t.dtype,
                            shape: t.shape.clone(),
                            quantized: t.quantized,
                            values,
                            steps,
                            digest,
                            multiset,
                            sample,
                            sample_mean,
                            rows: OnceLock::new(),
                            sigma1: OnceLock::new(),
                            profiles: OnceLock::new(),
                        })
                    })
                    .collect::<Result<Vec<_>>>()
            },
            || crate::fingerprint::model_id_of(m),
        );
        Ok(Loaded {
            name: m.name.clone(),
            model_id: model_id?,
            format_rank: m.format_rank(),
            card: m.card.clone(),
            tensors: tensors?,
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Align {
    Direct,
    Transposed,
    /// Rows and/or columns permuted (hidden units reordered, GGUF's Q/K row order): exact
    /// values, or compared after matching the rows (columns).
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

/// What the weights' direction rests on. Every basis but `kurtosis` follows from how the
/// transformation works (a lossy cast cannot be undone, a child adds heads, a rank-one edit
/// raises the spectral norm); kurtosis is a statistic of how heads are usually trained, which
/// a head initialised from its parent's (and trained further) does not follow, so cards and
/// the registry's upload order outrank it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum DirectionBasis {
    None,
    Lossy,
    AddedTensors,
    SpectralNorm,
    Kurtosis,
}

impl DirectionBasis {
    /// A tie-breaker from weight statistics, not a consequence of the transformation.
    pub fn is_statistic(self) -> bool {
        self == DirectionBasis::Kurtosis
    }
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
    pub direction_by: DirectionBasis,
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

/// How a's values can be laid out as b's: `direct` (same squeezed shape) and/or transposed
/// (a is an r x c matrix, b a c x r one); nothing when element counts differ.
#[derive(Clone, Copy)]
struct Layouts {
    direct: bool,
    transposed: Option<(usize, usize)>,
}

fn layouts(a: &LT, b: &LT) -> Layouts {
    let mut l = Layouts {
        direct: false,
        transposed: None,
    };
    if a.values.len() != b.values.len() {
        return l;
    }
    let (sa, sb) = (squeeze(&a.shape), squeeze(&b.shape));
    l.direct = sa == sb;
    if sa.len() == 2 && sb.len() == 2 && sa[0] == sb[1] && sa[1] == sb[0] {
        l.transposed = Some((sa[0], sa[1]));
    }
    l
}

type TKey = ([u8; 32], [u8; 32], Option<(usize, usize)>);

/// Comparisons that depend only on two tensors' contents (and the alignment), shared across
/// the pairs of one lineage run: a frozen tensor is in many models, and each of its
/// comparisons is computed once. Thread-safe.
#[derive(Default)]
pub struct PairCache {
    cos: Mutex<HashMap<(TKey, usize), f32>>,
    spectra: Mutex<HashMap<(TKey, Vec<usize>), (Option<usize>, f32)>>,
}

impl PairCache {
    fn cos(&self, k: (TKey, usize), f: impl FnOnce() -> f32) -> f32 {
        if let Some(v) = self.cos.lock().ok().and_then(|m| m.get(&k).copied()) {
            return v;
        }
        let v = f();
        if let Ok(mut m) = self.cos.lock() {
            m.insert(k, v);
        }
        v
    }
    fn spectrum(
        &self,
        k: (TKey, Vec<usize>),
        f: impl FnOnce() -> (Option<usize>, f32),
    ) -> (Option<usize>, f32) {
        if let Some(v) = self.spectra.lock().ok().and_then(|m| m.get(&k).copied()) {
            return v;
        }
        let v = f();
        if let Ok(mut m) = self.spectra.lock() {
            m.insert(k, v);
        }
        v
    }
}

fn sampled_cos_cached(
    a: &LT,
    b: &LT,
    transposed: Option<(usize, usize)>,
    cache: Option<&PairCache>,
) -> f32 {
    match cache {
        Some(c) => c.cos(((a.digest, b.digest, transposed), b.values.len()), || {
            sampled_cos_as(a, b, transposed)
        }),
        None => sampled_cos_as(a, b, transposed),
    }
}

/// Sampled centred cosine of a (direct, or transposed from r x c) against b, from the samples
/// alone: equal to the cosine over b's sample positions of a materialised alignment.
fn sampled_cos_as(a: &LT, b: &LT, transposed: Option<(usize, usize)>) -> f32 {
    match transposed {
        None => centred_cos_m(&a.sample, &b.sample, a.sample_mean, b.sample_mean),
        Some((r, c)) => {
            let x: Vec<f32> = sample_positions(b.values.len())
                .map(|p| a.values[(p % r) * c + p / r])
                .collect();
            centred_cos(&x, &b.sample)
        }
    }
}

/// The alignment of a under which it looks most like b (a square matrix may be stored either
/// way; ties go to the transposed reading), with its sampled cosine; nothing when the shapes
/// are incompatible.
fn best_align(a: &LT, b: &LT, cache: Option<&PairCache>) -> Option<(Align, f32)> {
    let l = layouts(a, b);
    let cos = |t| sampled_cos_cached(a, b, t, cache);
    match (l.direct, l.transposed) {
        (false, None) => None,
        (true, None) => Some((Align::Direct, cos(None))),
        (false, Some(t)) => Some((Align::Transposed, cos(Some(t)))),
        (true, Some(t)) => {
            let (cd, ct) = (cos(None), cos(Some(t)));
            Some(if cd.total_cmp(&ct) == std::cmp::Ordering::Greater {
                (Align::Direct, cd)
            } else {
                (Align::Transposed, ct)
            })
        }
    }
}

/// a's values in b's layout for an alignment from [`best_align`] (borrowed when direct).
fn view<'a>(a: &'a LT, b: &LT, al: Align) -> Cow<'a, [f32]> {
    match (al, layouts(a, b).transposed) {
        (Align::Transposed, Some((r, c))) => Cow::Owned(transpose(&a.values, r, c)),
        _ => Cow::Borrowed(&a.values),
    }
}

/// a's quantization steps in b's layout for an alignment from [`best_align`] (as the values
/// are: a transposed matrix has transposed steps).
fn view_steps<'a>(a: &'a LT, b: &LT, al: Align) -> Option<Cow<'a, [f32]>> {
    let st = a.steps.as_deref()?;
    Some(match (al, layouts(a, b).transposed) {
        (Align::Transposed, Some((r, c))) => Cow::Owned(transpose(st, r, c)),
        _ => Cow::Borrowed(st),
    })
}

/// How a pair that does not line up might: rows reordered (columns in place) or columns
/// reordered (rows in place).
#[derive(Clone, Copy, Debug, PartialEq)]
enum Way {
    Plain(Align),
    Rows,
    Cols,
}

/// Direct sampled cosine under which a permutation is looked for.
const PERM_BELOW: f32 = 0.5;
/// Profile cosine from which a reordering is tried (then verified on the full values).
const PERM_PROFILE_MIN: f32 = 0.9;
/// Largest side matched (the matching costs rows^2 x 16).
const PERM_MAX_SIDE: usize = 8192;

/// Squared norms of the rows of an r x c matrix (f64 sums).
fn row_profile(v: &[f32], r: usize, c: usize) -> Vec<f32> {
    (0..r)
        .map(|i| {
            v[i * c..(i + 1) * c]
                .iter()
                .map(|&x| (x as f64) * (x as f64))
                .sum::<f64>() as f32
        })
        .collect()
}

/// Squared norms of the columns.
fn col_profile(v: &[f32], r: usize, c: usize) -> Vec<f32> {
    let mut o = vec![0f64; c];
    for i in 0..r {
        for (acc, &x) in o.iter_mut().zip(&v[i * c..(i + 1) * c]) {
            *acc += (x as f64) * (x as f64);
        }
    }
    o.into_iter().map(|x| x as f32).collect()
}

impl LT {
    /// (row profile, column profile) of a squeezed matrix, cached.
    fn profiles(&self) -> Option<&(Vec<f32>, Vec<f32>)> {
        let s = squeeze(&self.shape);
        if s.len() != 2 || s[0] < 4 || s[1] < 4 || s[0].max(s[1]) > PERM_MAX_SIDE {
            return None;
        }
        Some(self.profiles.get_or_init(|| {
            (
                row_profile(&self.values, s[0], s[1]),
                col_profile(&self.values, s[0], s[1]),
            )
        }))
    }
}

/// Whether a is b with its rows (or columns) reordered, as far as cheap profiles tell: a
/// row permutation keeps every column's norm, a column permutation every row's. Returns the
/// way to try and the profile cosine.
fn permutation_hint(a: &LT, b: &LT) -> Option<(Way, f32)> {
    let (sa, sb) = (squeeze(&a.shape), squeeze(&b.shape));
    if sa != sb {
        return None;
    }
    let (pa, pb) = (a.profiles()?, b.profiles()?);
    let rows = centred_cos(&pa.1, &pb.1); // columns agree: rows were reordered
    let cols = centred_cos(&pa.0, &pb.0); // rows agree: columns were reordered
    let (w, p) = if rows >= cols {
        (Way::Rows, rows)
    } else {
        (Way::Cols, cols)
    };
    (p >= PERM_PROFILE_MIN).then_some((w, p))
}

/// For each row of b (r x c), the row of a it is: rows compared through 16 random ±1
/// projections (nearest by L2), the three nearest checked on the full rows, assigned most
/// confident first. `None` unless every row finds a distinct partner.
fn match_rows(a: &[f32], b: &[f32], r: usize, c: usize) -> Option<Vec<usize>> {
    const K: usize = 16;
    let proj = |m: &[f32]| -> Vec<[f32; K]> {
        (0..r)
            .map(|i| {
                let row = &m[i * c..(i + 1) * c];
                let mut p = [0f32; K];
                for (j, &x) in row.iter().enumerate() {
                    let bits = mix64(j as u64 ^ 0x5eed);
                    for (k, acc) in p.iter_mut().enumerate() {
                        if (bits >> k) & 1 == 1 {
                            *acc += x
                        } else {
                            *acc -= x
                        }
                    }
                }
                p
            })
            .collect()
    };
    let (pa, pb) = (proj(a), proj(b));
    let d2 =
        |x: &[f32; K], y: &[f32; K]| x.iter().zip(y).map(|(p, q)| (p - q) * (p - q)).sum::<f32>();
    let row_d2 = |i: usize, j: usize| {
        b[i * c..(i + 1) * c]
            .iter()
            .zip(&a[j * c..(j + 1) * c])
            .map(|(x, y)| ((x - y) as f64).powi(2))
            .sum::<f64>()
    };
    // (distance, b row, a row) for the three nearest a rows of every b row
    let mut cand: Vec<(f64, usize, usize)> = Vec::with_capacity(3 * r);
    for (i, qb) in pb.iter().enumerate() {
        let mut best = [(f32::INFINITY, usize::MAX); 3];
        for (j, qa) in pa.iter().enumerate() {
            let d = d2(qb, qa);
            if d < best[2].0 {
                best[2] = (d, j);
                best.sort_by(|x, y| x.0.total_cmp(&y.0));
            }
        }
        for &(_, j) in best.iter().filter(|x| x.1 != usize::MAX) {
            cand.push((row_d2(i, j), i, j));
        }
    }
    cand.sort_by(|x, y| x.0.total_cmp(&y.0));
    let (mut of_b, mut taken) = (vec![usize::MAX; r], vec![false; r]);
    for (_, i, j) in cand {
        if of_b[i] == usize::MAX && !taken[j] {
            of_b[i] = j;
            taken[j] = true;
        }
    }
    of_b.iter().all(|&j| j != usize::MAX).then_some(of_b)
}

/// a's values (and steps) reordered into b's layout by matched rows or columns.
#[allow(clippy::type_complexity)]
fn permuted_view(
    a: &LT,
    b: &LT,
    way: Way,
) -> Option<(Vec<f32>, Option<Cow<'static, [f32]>>, Vec<usize>)> {
    let s = squeeze(&b.shape);
    let (r, c) = (s[0], s[1]);
    let gather_rows = |m: &[f32], perm: &[usize], c: usize| -> Vec<f32> {
        perm.iter()
            .flat_map(|&j| m[j * c..(j + 1) * c].iter().copied())
            .collect()
    };
    match way {
        Way::Rows => {
            let perm = match_rows(&a.values, &b.values, r, c)?;
            let v = gather_rows(&a.values, &perm, c);
            let st = a
                .steps
                .as_ref()
                .map(|st| Cow::Owned(gather_rows(st, &perm, c)));
            Some((v, st, perm))
        }
        Way::Cols => {
            let (at, bt) = (transpose(&a.values, r, c), transpose(&b.values, r, c));
            let perm = match_rows(&at, &bt, c, r)?;
            let v = transpose(&gather_rows(&at, &perm, r), c, r);
            let st = a.steps.as_ref().map(|st| {
                Cow::Owned(transpose(
                    &gather_rows(&transpose(st, r, c), &perm, r),
                    c,
                    r,
                ))
            });
            Some((v, st, perm))
        }
        Way::Plain(_) => None,
    }
}

/// `m` (r x c, or a vector when c is 1 and `cols` is None) with b-row i taken from a-row
/// `rows[i]` and b-column k from a-column `cols[k]`.
fn rearrange(
    m: &[f32],
    r: usize,
    c: usize,
    rows: Option<&[usize]>,
    cols: Option<&[usize]>,
) -> Vec<f32> {
    let mut o = Vec::with_capacity(m.len());
    for i in 0..r {
        let src = rows.map_or(i, |p| p[i]);
        let row = &m[src * c..(src + 1) * c];
        match cols {
            Some(p) => o.extend(p.iter().map(|&k| row[k])),
            None => o.extend_from_slice(row),
        }
    }
    o
}

/// The alignment of a under which it looks most like b.
fn aligned<'a>(a: &'a LT, b: &LT) -> Option<(Cow<'a, [f32]>, Align)> {
    let (al, _) = best_align(a, b, None)?;
    Some((view(a, b, al), al))
}

fn mean_f64(a: &[f32]) -> f64 {
    a.iter().map(|&x| x as f64).sum::<f64>() / a.len().max(1) as f64
}

fn centred_cos(a: &[f32], b: &[f32]) -> f32 {
    centred_cos_m(a, b, mean_f64(a), mean_f64(b))
}

/// [`centred_cos`] with the means given (a's length is the count, as there).
fn centred_cos_m(a: &[f32], b: &[f32], ma: f64, mb: f64) -> f32 {
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

/// u = D v for an r x c matrix: each row's sum in column order, as a sequential `sum()` gives
/// it, but eight rows at a time so the eight independent sums overlap (same bits, less time).
fn mat_vec(d: &[f32], r: usize, c: usize, v: &[f64]) -> Vec<f64> {
    const B: usize = 8;
    let mut u = vec![0f64; r];
    let mut i = 0;
    while i + B <= r && c > 0 {
        let rows: [&[f32]; B] = std::array::from_fn(|k| &d[(i + k) * c..(i + k + 1) * c]);
        // `Sum for f64` folds from -0.0; so do these.
        let mut acc = [-0.0f64; B];
        for (j, &vj) in v.iter().enumerate().take(c) {
            for k in 0..B {
                acc[k] += rows[k][j] as f64 * vj;
            }
        }
        u[i..i + B].copy_from_slice(&acc);
        i += B;
    }
    for (k, x) in u.iter_mut().enumerate().skip(i) {
        *x = (0..c).map(|j| d[k * c + j] as f64 * v[j]).sum();
    }
    u
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
            let u = mat_vec(d, r, c, &v);
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

/// The verdict for a's values `av` (in b's layout) against b, and whether the delta spectrum
/// was deferred (`spectrum` false on a matrix that would have had one).
fn compare_values(
    a: &LT,
    av: &[f32],
    a_steps: Option<&[f32]>,
    b: &LT,
    spectrum: bool,
) -> (TensorVerdict, bool) {
    let bv = &b.values;
    if av.iter().zip(bv).all(|(x, y)| x.to_bits() == y.to_bits()) {
        return (TensorVerdict::Identical, false);
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
            return (
                TensorVerdict::CastEquivalent {
                    from: hi.dtype.label().into(),
                    to: lo.dtype.label().into(),
                },
                false,
            );
        }
    }
    // Quantization: every value of the quantized side is the grid point next to the other's
    // (within one step: Q4_0 clips its largest magnitude by one level), half a step on average.
    for (q, f, qv, fv, steps) in [
        (b, a, bv.as_slice(), av, b.steps.as_deref()),
        (a, b, av, bv.as_slice(), a_steps),
    ] {
        if let (Some(steps), false) = (steps, f.quantized) {
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
                return (
                    TensorVerdict::QuantizationEquivalent {
                        scheme: q.dtype.label().into(),
                        max_err_steps: worst,
                    },
                    false,
                );
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
    // costly part of a diff, so unrelated-looking tensors skip it (and lineage defers it).
    let mut deferred = false;
    if s.len() == 2 && nd2 > 0.0 && s[0] * s[1] <= 1 << 22 && cosine >= 0.5 {
        if spectrum {
            (delta_rank, top_energy) = spectrum_of(&delta, s[0], s[1], nd2);
        } else {
            deferred = true;
        }
    }
    (
        TensorVerdict::Changed {
            cosine,
            rel_l2,
            delta_rank,
            top_energy,
        },
        deferred,
    )
}

/// Rank (top three singular values holding 99% of the energy) and top-value energy share of
/// the delta of an r x c matrix whose squared norm is nd2.
fn spectrum_of(delta: &[f32], r: usize, c: usize, nd2: f64) -> (Option<usize>, f32) {
    let sv = top_singular(delta, r, c, 3);
    let top_energy = (sv[0] * sv[0] / nd2) as f32;
    let mut acc = 0.0;
    for (i, x) in sv.iter().enumerate() {
        acc += x * x;
        if acc / nd2 >= 0.99 {
            return (Some(i + 1), top_energy);
        }
    }
    (None, top_energy)
}

/// [`spectrum_of`] of b - av, recomputed for a deferred tensor (same numbers as at once).
fn delta_spectrum(av: &[f32], b: &LT) -> (Option<usize>, f32) {
    let delta: Vec<f32> = b.values.iter().zip(av).map(|(y, x)| y - x).collect();
    let nd2 = delta.iter().map(|&x| (x as f64).powi(2)).sum::<f64>();
    let s = squeeze(&b.shape);
    spectrum_of(&delta, s[0], s[1], nd2)
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

/// How much of the delta spectra a diff computes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Spectra {
    /// Every related changed matrix (the full per-tensor report of `pedigree diff`).
    All,
    /// Only where the relation depends on it (an `edit` candidate): the relation, direction and
    /// evidence are the same as with `All`; per-tensor `delta_rank` / `top_energy` may be left
    /// empty. What lineage uses: most changed matrices belong to fine-tunes.
    AsNeeded,
}

pub fn diff_loaded(a: &Loaded, b: &Loaded) -> DiffReport {
    diff_loaded_with(a, b, Spectra::All)
}

pub fn diff_loaded_with(a: &Loaded, b: &Loaded, spectra: Spectra) -> DiffReport {
    diff_impl(a, b, spectra, None)
}

/// [`diff_loaded_with`], sharing tensor-pair results with other diffs through `cache` (the
/// report is the same as without it).
pub fn diff_loaded_cached(
    a: &Loaded,
    b: &Loaded,
    spectra: Spectra,
    cache: &PairCache,
) -> DiffReport {
    diff_impl(a, b, spectra, Some(cache))
}

fn diff_impl(a: &Loaded, b: &Loaded, spectra: Spectra, cache: Option<&PairCache>) -> DiffReport {
    // changed matrices whose spectrum was deferred: (index in out, i, j, a in b's layout)
    let mut pending: Vec<(usize, usize, usize, Cow<'_, [f32]>)> = Vec::new();
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
            let (big, small) = if ta.shape[0] > tb.shape[0] {
                (ta, tb)
            } else {
                (tb, ta)
            };
            let set: std::collections::HashSet<u64> = big.row_digests().iter().copied().collect();
            if small.row_digests().iter().all(|r| set.contains(r)) {
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
    // 4. same element count, compatible layout: best candidate by a sampled cosine (from the
    // stored samples, nothing materialised), then a full comparison (greedy by score). A pair
    // that looks unrelated as laid out, but whose row (column) profile says it is the same
    // matrix with its rows (columns) reordered -- hidden units permuted to disguise a copy,
    // llama.cpp's Q/K row order in GGUF -- is compared after matching the rows (columns).
    let mut cands: Vec<(f32, usize, usize, Way)> = Vec::new();
    for j in 0..b.tensors.len() {
        if used_b[j] {
            continue;
        }
        for i in 0..a.tensors.len() {
            if used_a[i] {
                continue;
            }
            let (ta, tb) = (&a.tensors[i], &b.tensors[j]);
            if let Some((al, cos)) = best_align(ta, tb, cache) {
                let name_bonus = if ta.name == tb.name { 0.01 } else { 0.0 };
                let mut way = Way::Plain(al);
                let mut score = cos;
                if cos < PERM_BELOW
                    && let Some((w, p)) = permutation_hint(ta, tb)
                {
                    // ranks below every plainly related pair, above the unrelated ones
                    way = w;
                    score = PERM_BELOW * p;
                }
                cands.push((score + name_bonus, i, j, way));
            }
        }
    }
    cands.sort_by(|x, y| y.0.total_cmp(&x.0));
    let mut permuted_changed = 0usize;
    let mut notes = Vec::new();
    let full_spectra = spectra == Spectra::All;
    // unit orders found (b position -> a position), and the step-4 pairs (out index, i, j)
    let mut units: Vec<Vec<usize>> = Vec::new();
    let mut step4: Vec<(usize, usize, usize)> = Vec::new();
    for (_, i, j, way) in cands {
        if used_a[i] || used_b[j] {
            continue;
        }
        let (ta, tb) = (&a.tensors[i], &b.tensors[j]);
        used_a[i] = true;
        used_b[j] = true;
        let full = spectra == Spectra::All;
        let plain = |al: Align| {
            let av = view(ta, tb, al);
            let steps = view_steps(ta, tb, al);
            let (v, deferred) = compare_values(ta, &av, steps.as_deref(), tb, full);
            (v, deferred, av, al)
        };
        let (v, deferred, av, al) = match way {
            Way::Plain(al) => plain(al),
            Way::Rows | Way::Cols => {
                let direct = plain(Align::Direct);
                match permuted_view(ta, tb, way) {
                    Some((pv, psteps, perm)) => {
                        let (v, deferred) = compare_values(ta, &pv, psteps.as_deref(), tb, full);
                        if strength(&v) > strength(&direct.0) {
                            units.push(perm);
                            permuted += 1;
                            if !matches!(v, TensorVerdict::Identical) {
                                permuted_changed += 1;
                            }
                            (v, deferred, Cow::Owned(pv), Align::Permuted)
                        } else {
                            direct
                        }
                    }
                    None => direct,
                }
            }
        };
        if deferred {
            pending.push((out.len(), i, j, av));
        }
        step4.push((out.len(), i, j));
        out.push(pair(i, j, Some(al), v));
    }
    // Hidden units reordered in one tensor are reordered in its neighbours too (a layer's
    // rows, its bias, the next layer's columns): pairs still unrelated-looking are tried
    // under the unit orders found, on either axis, and kept where that is stronger.
    if !units.is_empty() {
        for &(k, i, j) in &step4 {
            let weak = matches!(out[k].verdict, TensorVerdict::Changed { cosine, .. } if cosine < PERM_BELOW);
            let (ta, tb) = (&a.tensors[i], &b.tensors[j]);
            let s = squeeze(&tb.shape);
            if !weak || squeeze(&ta.shape) != s || s.is_empty() || s.len() > 2 {
                continue;
            }
            let (r, c) = (s[0], if s.len() == 2 { s[1] } else { 1 });
            let of_len = |n: usize| -> Vec<Option<&[usize]>> {
                std::iter::once(None)
                    .chain(
                        units
                            .iter()
                            .filter(|p| p.len() == n)
                            .map(|p| Some(p.as_slice())),
                    )
                    .collect()
            };
            let col_opts = if s.len() == 2 { of_len(c) } else { vec![None] };
            let mut best: Option<(f32, TensorVerdict, bool, Vec<f32>)> = None;
            for rp in of_len(r) {
                for cp in &col_opts {
                    if rp.is_none() && cp.is_none() {
                        continue;
                    }
                    let pv = rearrange(&ta.values, r, c, rp, *cp);
                    let ps = ta.steps.as_ref().map(|st| rearrange(st, r, c, rp, *cp));
                    let (v, deferred) = compare_values(ta, &pv, ps.as_deref(), tb, full_spectra);
                    let st = strength(&v);
                    if best.as_ref().is_none_or(|b| st > b.0) {
                        best = Some((st, v, deferred, pv));
                    }
                }
            }
            if let Some((st, v, deferred, pv)) = best
                && st > strength(&out[k].verdict)
                && !matches!(v, TensorVerdict::Changed { cosine, .. } if cosine < PERM_BELOW)
            {
                permuted += 1;
                if !matches!(v, TensorVerdict::Identical) {
                    permuted_changed += 1;
                }
                if deferred {
                    pending.push((k, i, j, Cow::Owned(pv)));
                }
                out[k].verdict = v;
                out[k].align = Some(Align::Permuted);
            }
        }
    }
    if permuted_changed > 0 {
        notes.push(format!(
            "{permuted_changed} tensor(s) compared after matching reordered rows or columns \
             (permuted hidden units, or GGUF's Q/K row order)"
        ));
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
    if !pending.is_empty() && edit_possible(a, b, &out) {
        for (k, i, j, av) in pending {
            let (ta, tb) = (&a.tensors[i], &b.tensors[j]);
            let compute = || delta_spectrum(&av, tb);
            let (r, e) = match cache {
                Some(c) => {
                    // the alignment is a function of the two tensors' values and shapes:
                    // key it by a's values as laid out (digest of av when rearranged)
                    let ka = if matches!(av, Cow::Borrowed(_)) {
                        ta.digest
                    } else {
                        *blake3_of(&f32_bytes(&av)).as_bytes()
                    };
                    c.spectrum(((ka, tb.digest, None), squeeze(&tb.shape)), compute)
                }
                None => compute(),
            };
            if let TensorVerdict::Changed {
                delta_rank,
                top_energy,
                ..
            } = &mut out[k].verdict
            {
                *delta_rank = r;
                *top_energy = e;
            }
        }
    }
    classify(a, b, out, permuted, permuted_changed, notes)
}

/// Whether [`classify`] could answer `edit` given the delta spectra: every other condition of
/// that relation, and of the relations tested before it, holds without them.
fn edit_possible(a: &Loaded, b: &Loaded, out: &[TensorDiff]) -> bool {
    if a.model_id == b.model_id {
        return false;
    }
    let (mut equiv, mut high, mut low, mut added, mut removed) = (0, 0, 0, 0, 0);
    for t in out {
        match &t.verdict {
            TensorVerdict::Identical
            | TensorVerdict::CastEquivalent { .. }
            | TensorVerdict::QuantizationEquivalent { .. } => equiv += 1,
            TensorVerdict::Changed { cosine, .. } => {
                if *cosine >= 0.5 {
                    high += 1
                } else {
                    low += 1
                }
            }
            TensorVerdict::Added => added += 1,
            TensorVerdict::Removed => removed += 1,
            TensorVerdict::Pruned { .. } => {}
        }
    }
    // (a deferred spectrum implies a changed tensor with cosine >= 0.5, which rules out
    // identical/copy/cast/quantized/pruned/head-only before `edit` is tested)
    equiv > 0
        && added == 0
        && removed == 0
        && high > 0
        && low == 0
        && high * 10 <= out.len().max(10)
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
    permuted_changed: usize,
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
    let mut direction_by = if direction == Direction::Unknown {
        DirectionBasis::None
    } else {
        DirectionBasis::Lossy
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
        direction_by = DirectionBasis::AddedTensors;
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
                    && let Some((av, al)) = aligned(ta, tb)
                {
                    na += if al == Align::Direct {
                        ta.spectral_norm()
                    } else {
                        top_singular(&av, s[0], s[1], 1)[0]
                    };
                    nb += tb.spectral_norm();
                }
            }
        }
        direction = if nb > na {
            Direction::AToB
        } else {
            Direction::BToA
        };
        direction_by = DirectionBasis::SpectralNorm;
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
            direction_by = DirectionBasis::Kurtosis;
            notes.push(format!(
                "head oriented by kurtosis (new head {:.2} vs trained {:.2})",
                ka.min(kb),
                ka.max(kb)
            ));
        }
    }
    if permuted > permuted_changed {
        notes.push(format!(
            "{} tensor(s) identical after matching permuted hidden units",
            permuted - permuted_changed
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
        direction_by,
        evidence: e,
        tensors,
    }
}

pub fn diff(a: &Model, b: &Model) -> Result<DiffReport> {
    Ok(diff_loaded(&Loaded::load(a)?, &Loaded::load(b)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocked_mat_vec_is_bit_identical_to_row_sums() {
        for (r, c) in [(1, 5), (8, 8), (17, 33), (128, 128), (3, 0)] {
            let d: Vec<f32> = (0..r * c)
                .map(|i| (mix64(i as u64) >> 40) as f32 / 1e6 - 8.0)
                .collect();
            let v: Vec<f64> = (0..c)
                .map(|j| (mix64(j as u64 + 99) >> 11) as f64 / 1e15)
                .collect();
            let want: Vec<f64> = (0..r)
                .map(|i| (0..c).map(|j| d[i * c + j] as f64 * v[j]).sum())
                .collect();
            let got = mat_vec(&d, r, c, &v);
            assert_eq!(
                got.iter().map(|x| x.to_bits()).collect::<Vec<_>>(),
                want.iter().map(|x| x.to_bits()).collect::<Vec<_>>(),
                "{r}x{c}"
            );
        }
    }

    #[test]
    fn sampled_cosines_need_no_materialised_alignment() {
        let mk = |shape: Vec<usize>, seed: u64| {
            let n: usize = shape.iter().product();
            let values: Vec<f32> = (0..n)
                .map(|i| (mix64(seed ^ i as u64) >> 40) as f32 / 1e7)
                .collect();
            let sample: Vec<f32> = sample_positions(n).map(|i| values[i]).collect();
            LT {
                name: "t".into(),
                dtype: DType::F32,
                shape,
                quantized: false,
                sample_mean: mean_f64(&sample),
                sample,
                digest: *blake3_of(&f32_bytes(&values)).as_bytes(),
                multiset: 0,
                values,
                steps: None,
                rows: OnceLock::new(),
                sigma1: OnceLock::new(),
                profiles: OnceLock::new(),
            }
        };
        for (sa, sb) in [
            (vec![96, 96], vec![96, 96]),
            (vec![70, 90], vec![90, 70]),
            (vec![1, 5000], vec![5000]),
        ] {
            let (a, b) = (mk(sa.clone(), 1), mk(sb.clone(), 2));
            let l = layouts(&a, &b);
            if l.direct {
                let plain = {
                    let idx: Vec<usize> = sample_positions(a.values.len()).collect();
                    let x: Vec<f32> = idx.iter().map(|&k| a.values[k]).collect();
                    let y: Vec<f32> = idx.iter().map(|&k| b.values[k]).collect();
                    centred_cos(&x, &y)
                };
                assert_eq!(sampled_cos_as(&a, &b, None).to_bits(), plain.to_bits());
            }
            if let Some((r, c)) = l.transposed {
                let t = transpose(&a.values, r, c);
                let idx: Vec<usize> = sample_positions(t.len()).collect();
                let x: Vec<f32> = idx.iter().map(|&k| t[k]).collect();
                let y: Vec<f32> = idx.iter().map(|&k| b.values[k]).collect();
                assert_eq!(
                    sampled_cos_as(&a, &b, Some((r, c))).to_bits(),
                    centred_cos(&x, &y).to_bits()
                );
            }
        }
    }
}
