//! Per-tensor fingerprints: exact digests of canonical bytes, a permutation-invariant multiset
//! hash, per-row digests for embedding matrices, and a similarity sketch that survives casts and
//! quantization. Format documented in `docs/fingerprint-format.md`.

use std::path::Path;

use anyhow::{Context, Result};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::card::Card;
use crate::model::{Model, TRef};

pub const FORMAT: &str = "pedigree-fingerprint";
pub const VERSION: u32 = 1;
/// Values sampled for the sketch (evenly strided positions).
pub const SKETCH_SAMPLES: usize = 4096;
const QUANTILES: usize = 17;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Fingerprint {
    pub format: String,
    pub version: u32,
    pub model: String,
    pub path: String,
    /// OMS v1.0 root digest (`sha256:<hex>`), the identity shared with signing and the BOM.
    pub model_id: String,
    pub files: Vec<FileInfo>,
    pub arch: ArchSignature,
    pub card: Card,
    pub tensors: Vec<TensorFp>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FileInfo {
    pub name: String,
    pub format: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ArchSignature {
    /// blake3 over the sorted multiset of weight shapes (name-independent: exporters rename).
    pub signature: String,
    pub tensors: usize,
    pub parameters: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TensorFp {
    pub name: String,
    pub dtype: String,
    pub shape: Vec<usize>,
    pub quantized: bool,
    /// blake3 of the values as little-endian f32 (the canonical bytes).
    pub digest: String,
    /// Order-independent hash of the same values (equal under any permutation or transpose).
    pub multiset: String,
    /// Per-row 64-bit digests (hex), for embedding-like matrices only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rows: Option<Vec<String>>,
    pub sketch: Sketch,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Sketch {
    pub mean: f32,
    pub std: f32,
    pub absmax: f32,
    /// Quantiles 0, 1/16 .. 1 of a strided sample.
    pub quantiles: Vec<f32>,
    /// 64-bit SimHash of the centred strided sample (bit b = sign of a ±1 projection).
    pub simhash: String,
}

/// splitmix64 finaliser: a good 64-bit mix.
pub fn mix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Commutative (order-independent) hash of f32 bit patterns: two independent 32-bit mixes
/// summed per lane. 32-bit multiplies vectorise, so this runs near memory speed.
pub fn multiset_hash(bits: impl Iterator<Item = u32>) -> u64 {
    let (mut lo, mut hi) = (0u32, 0u32);
    for x in bits {
        let (a, b) = multiset_mix(x);
        lo = lo.wrapping_add(a);
        hi = hi.wrapping_add(b);
    }
    ((hi as u64) << 32) | lo as u64
}

#[inline(always)]
fn multiset_mix(x: u32) -> (u32, u32) {
    let a = (x ^ (x >> 16)).wrapping_mul(0x7feb_352d);
    let a = (a ^ (a >> 15)).wrapping_mul(0x846c_a68b);
    let b = (x ^ 0x5bd1_e995 ^ (x >> 15)).wrapping_mul(0x2c1b_3c6d);
    let b = (b ^ (b >> 12)).wrapping_mul(0x297a_2d39);
    (a ^ (a >> 16), b ^ (b >> 15))
}

/// The lane sums over little-endian u32 words (a trailing partial word is ignored).
#[inline(always)]
fn multiset_words(b: &[u8]) -> (u32, u32) {
    // Sixteen independent lanes per sum so the loop vectorises whatever the vector width.
    let (mut lo, mut hi) = ([0u32; 16], [0u32; 16]);
    let mut blocks = b.chunks_exact(64);
    for blk in &mut blocks {
        // SAFETY: `blk` is exactly 64 bytes; an unaligned read of 16 u32 words.
        let words: [u32; 16] =
            unsafe { std::ptr::read_unaligned(blk.as_ptr() as *const [u32; 16]) };
        for k in 0..16 {
            let (a, c) = multiset_mix(u32::from_le(words[k]));
            lo[k] = lo[k].wrapping_add(a);
            hi[k] = hi[k].wrapping_add(c);
        }
    }
    let (mut l, mut h) = (0u32, 0u32);
    for k in 0..16 {
        l = l.wrapping_add(lo[k]);
        h = h.wrapping_add(hi[k]);
    }
    for w in blocks.remainder().chunks_exact(4) {
        let (a, c) = multiset_mix(u32::from_le_bytes([w[0], w[1], w[2], w[3]]));
        l = l.wrapping_add(a);
        h = h.wrapping_add(c);
    }
    (l, h)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2")]
unsafe fn multiset_words_avx512(b: &[u8]) -> (u32, u32) {
    multiset_words(b)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn multiset_words_avx2(b: &[u8]) -> (u32, u32) {
    multiset_words(b)
}

/// [`multiset_hash`] of the little-endian u32 words of `b`, on one thread, with the widest
/// vector unit the CPU has (the baseline x86-64 target has no 32-bit lane multiply).
pub fn multiset_of_slice(b: &[u8]) -> u64 {
    #[cfg(target_arch = "x86_64")]
    let (lo, hi) = if std::arch::is_x86_feature_detected!("avx512f")
        && std::arch::is_x86_feature_detected!("avx512bw")
        && std::arch::is_x86_feature_detected!("avx512vl")
    {
        // SAFETY: the features were detected at run time.
        unsafe { multiset_words_avx512(b) }
    } else if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: as above.
        unsafe { multiset_words_avx2(b) }
    } else {
        multiset_words(b)
    };
    #[cfg(not(target_arch = "x86_64"))]
    let (lo, hi) = multiset_words(b);
    ((hi as u64) << 32) | lo as u64
}

/// Lane-wise sum of two multiset hashes (the hash of the union of the two multisets).
pub fn multiset_add(x: u64, y: u64) -> u64 {
    let lo = (x as u32).wrapping_add(y as u32);
    let hi = ((x >> 32) as u32).wrapping_add((y >> 32) as u32);
    ((hi as u64) << 32) | lo as u64
}

fn multiset_of_bytes(b: &[u8]) -> u64 {
    // Split in chunks so the two cores share large tensors; addition is associative.
    const CH: usize = 1 << 22;
    if b.len() <= CH {
        return multiset_of_slice(b);
    }
    b.par_chunks(CH)
        .map(multiset_of_slice)
        .reduce(|| 0, multiset_add)
}

/// The canonical bytes of f32 values (little-endian), without a copy on little-endian hosts.
pub fn f32_bytes(v: &[f32]) -> std::borrow::Cow<'_, [u8]> {
    #[cfg(target_endian = "little")]
    {
        // SAFETY: f32 has no padding and any byte pattern is a valid u8; the length is exact.
        std::borrow::Cow::Borrowed(unsafe {
            std::slice::from_raw_parts(v.as_ptr() as *const u8, std::mem::size_of_val(v))
        })
    }
    #[cfg(not(target_endian = "little"))]
    {
        std::borrow::Cow::Owned(v.iter().flat_map(|x| x.to_le_bytes()).collect())
    }
}

/// blake3 of canonical bytes, tree-parallel when large.
pub fn blake3_of(b: &[u8]) -> blake3::Hash {
    let mut h = blake3::Hasher::new();
    if b.len() > 1 << 20 {
        h.update_rayon(b)
    } else {
        h.update(b)
    };
    h.finalize()
}

/// Embedding-like: named so, or a tall matrix (vocabulary rows).
pub fn is_embedding(name: &str, shape: &[usize]) -> bool {
    let n = name.to_ascii_lowercase();
    shape.len() == 2
        && (n.contains("emb")
            || n.contains("wte")
            || (shape[0] >= 4 * shape[1] && shape[0] >= 1024))
}

pub fn row_digest(row: &[f32]) -> u64 {
    let h = blake3::hash(&f32_bytes(row));
    u64::from_le_bytes(h.as_bytes()[..8].try_into().unwrap_or([0; 8]))
}

/// Sample positions: evenly strided, a function of the element count only.
pub fn sample_positions(n: usize) -> impl Iterator<Item = usize> {
    let k = n.min(SKETCH_SAMPLES);
    // j * n fits in u64 unless n is astronomically large; the u128 path gives the same result.
    let small = (n as u64) < (1u64 << 50);
    (0..k).map(move |j| {
        if small {
            ((j as u64 * n as u64) / k as u64) as usize
        } else {
            ((j as u128 * n as u128) / k as u128) as usize
        }
    })
}

/// The 64 SimHash projections of a centred sample: lane b sums +c where bit b of
/// mix64(position) is set and -c where it is not, in sample order.
#[inline(always)]
fn simhash_acc_generic(sample: &[f32], mean: f64) -> [f64; 64] {
    let mut acc = [0f64; 64];
    for (j, &v) in sample.iter().enumerate() {
        let c = (v as f64 - mean).to_bits();
        let r = !mix64(j as u64);
        // a - c == a + (-c) exactly: flip the sign bit where the projection bit is 0
        // (branch-free, so the 64 lanes vectorise; each lane's sum keeps its order).
        for (b, a) in acc.iter_mut().enumerate() {
            *a += f64::from_bits(c ^ (((r >> b) & 1) << 63));
        }
    }
    acc
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512vl,avx2")]
unsafe fn simhash_acc_avx512(sample: &[f32], mean: f64) -> [f64; 64] {
    simhash_acc_generic(sample, mean)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn simhash_acc_avx2(sample: &[f32], mean: f64) -> [f64; 64] {
    simhash_acc_generic(sample, mean)
}

fn simhash_acc(sample: &[f32], mean: f64) -> [f64; 64] {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f")
            && std::arch::is_x86_feature_detected!("avx512vl")
        {
            // SAFETY: the features were detected at run time.
            return unsafe { simhash_acc_avx512(sample, mean) };
        }
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: as above.
            return unsafe { simhash_acc_avx2(sample, mean) };
        }
    }
    simhash_acc_generic(sample, mean)
}

fn simhash_bits(sample: &[f32], mean: f64) -> u64 {
    simhash_acc(sample, mean)
        .iter()
        .enumerate()
        .fold(0u64, |h, (b, a)| if *a > 0.0 { h | (1 << b) } else { h })
}

/// The SimHash of [`sketch`]`(values)` alone, from the values' sample (the values at
/// [`sample_positions`]) without the quantiles: what the index needs.
pub fn simhash_of(values: &[f32], sample: &[f32]) -> u64 {
    let s: f64 = values.iter().fold(0f64, |s, &v| s + v as f64);
    simhash_bits(sample, s / values.len().max(1) as f64)
}

pub fn sketch(values: &[f32]) -> Sketch {
    let n = values.len().max(1);
    let (mut s, mut s2, mut amax) = (0f64, 0f64, 0f32);
    for &v in values {
        s += v as f64;
        s2 += (v as f64) * (v as f64);
        amax = amax.max(v.abs());
    }
    let mean = s / n as f64;
    let std = (s2 / n as f64 - mean * mean).max(0.0).sqrt();
    let mut sample: Vec<f32> = sample_positions(values.len()).map(|i| values[i]).collect();
    let sim = simhash_bits(&sample, mean);
    sample.sort_by(|a, b| a.total_cmp(b));
    let quantiles = (0..QUANTILES)
        .map(|q| {
            sample
                .get(q * (sample.len().saturating_sub(1)) / (QUANTILES - 1))
                .copied()
                .unwrap_or(0.0)
        })
        .collect();
    Sketch {
        mean: mean as f32,
        std: std as f32,
        absmax: amax,
        quantiles,
        simhash: format!("{sim:016x}"),
    }
}

pub fn tensor_fp(model: &Model, t: &TRef) -> Result<TensorFp> {
    let file = &model.files[t.file];
    let (digest, multiset, values);
    if let Some(b) = file.f32_le_bytes(t.index) {
        // Fast path: the file already holds the canonical bytes; hash them where they lie.
        let (d, m) = rayon::join(|| blake3_of(b), || multiset_of_bytes(b));
        digest = d.to_hex().to_string();
        multiset = m;
        values = None;
    } else {
        let v = model.values(t)?;
        let bytes = f32_bytes(&v);
        digest = blake3_of(&bytes).to_hex().to_string();
        multiset = multiset_of_bytes(&bytes);
        drop(bytes);
        values = Some(v);
    }
    let sk;
    let mut rows = None;
    let embed = is_embedding(&t.name, &t.shape);
    if values.is_none() && !embed {
        // Sketch from the sampled positions only: no full decode of big f32 tensors.
        let b = file.f32_le_bytes(t.index).unwrap_or(&[]);
        let n = b.len() / 4;
        let at =
            |i: usize| f32::from_le_bytes([b[4 * i], b[4 * i + 1], b[4 * i + 2], b[4 * i + 3]]);
        // mean/std/absmax from the sample too (documented: sketch statistics are sampled).
        let sample: Vec<f32> = sample_positions(n).map(at).collect();
        sk = sketch(&sample);
    } else {
        let v = match values {
            Some(v) => v,
            None => model.values(t)?,
        };
        sk = sketch(&v);
        if embed && t.shape[1] > 0 {
            rows = Some(
                v.chunks(t.shape[1])
                    .map(|r| format!("{:016x}", row_digest(r)))
                    .collect(),
            );
        }
    }
    Ok(TensorFp {
        name: t.name.clone(),
        dtype: t.dtype.label().to_string(),
        shape: t.shape.clone(),
        quantized: t.quantized,
        digest,
        multiset: format!("{multiset:016x}"),
        rows,
        sketch: sk,
    })
}

pub fn arch_signature(shapes: &[Vec<usize>]) -> ArchSignature {
    let mut s: Vec<String> = shapes.iter().map(|s| format!("{s:?}")).collect();
    s.sort();
    let params = shapes
        .iter()
        .map(|s| s.iter().product::<usize>() as u64)
        .sum();
    ArchSignature {
        signature: blake3::hash(s.join(";").as_bytes()).to_hex()[..32].to_string(),
        tensors: shapes.len(),
        parameters: params,
    }
}

/// OMS v1.0 root digest, computed by pedigree-sign (one identity for signing, BOM, registry).
pub fn model_id(path: &Path) -> Result<String> {
    let m = pedigree_sign::manifest::hash_model(
        path,
        &pedigree_sign::manifest::Serialization::default(),
    )
    .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    Ok(m.model_id())
}

/// The same OMS v1.0 root digest as [`model_id`] (files enumerated by pedigree-sign, one
/// SHA-256 per file, root over the digests in name order), but the weight files are hashed
/// from the bytes the tensor readers already hold (read or mapped once), not read again;
/// other files (card, config, tokenizer) are read from disk. Files are hashed in parallel,
/// largest first.
pub fn model_id_of(model: &Model) -> Result<String> {
    use pedigree_sign::manifest::{HashAlgorithm, Serialization, enumerate, hash_range};
    let err = |e: pedigree_sign::Error| anyhow::anyhow!("{}: {e}", model.path.display());
    let entries = enumerate(&model.path, &Serialization::default()).map_err(err)?;
    let mut order: Vec<usize> = (0..entries.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(entries[i].size));
    let digests: Vec<(usize, Vec<u8>)> = order
        .par_iter()
        .map(|&i| {
            let e = &entries[i];
            let held = model
                .files
                .iter()
                .find(|f| Path::new(&f.path) == e.path && f.file_bytes().len() as u64 == e.size);
            let d = match held {
                // SHA-256 of the bytes (`root_digest` is SHA-256 over what it is given).
                Some(f) => {
                    pedigree_sign::manifest::root_digest(std::iter::once(f.file_bytes())).to_vec()
                }
                None => hash_range(&e.path, 0, e.size, HashAlgorithm::Sha256).map_err(err)?,
            };
            Ok((i, d))
        })
        .collect::<Result<_>>()?;
    let mut by_name: Vec<Option<Vec<u8>>> = vec![None; entries.len()];
    for (i, d) in digests {
        by_name[i] = Some(d);
    }
    let root = pedigree_sign::manifest::root_digest(by_name.iter().flatten().map(Vec::as_slice));
    Ok(format!("sha256:{}", hex::encode(root)))
}

pub fn fingerprint_model(model: &Model) -> Result<Fingerprint> {
    let weights = model.weights();
    // The OMS id hashes each file with one sequential SHA-256 (from the bytes already mapped);
    // it runs on one worker while the other(s) do the tensor digests over the same bytes.
    let (id, tensors) = rayon::join(
        || model_id_of(model),
        || {
            weights
                .par_iter()
                .map(|t| tensor_fp(model, t))
                .collect::<Result<Vec<_>>>()
        },
    );
    let (tensors, id) = (tensors?, id?);
    Ok(assemble(model, &weights, id, tensors))
}

/// [`fingerprint_model`] with the identity already known (a registry that hashed the upload
/// for signing need not hash it again).
pub fn fingerprint_model_with_id(model: &Model, model_id: &str) -> Result<Fingerprint> {
    let weights = model.weights();
    let tensors = weights
        .par_iter()
        .map(|t| tensor_fp(model, t))
        .collect::<Result<Vec<_>>>()?;
    Ok(assemble(model, &weights, model_id.to_string(), tensors))
}

fn assemble(model: &Model, weights: &[TRef], id: String, tensors: Vec<TensorFp>) -> Fingerprint {
    let shapes: Vec<Vec<usize>> = weights.iter().map(|t| t.shape.clone()).collect();
    Fingerprint {
        format: FORMAT.into(),
        version: VERSION,
        model: model.name.clone(),
        path: model.path.display().to_string(),
        model_id: id,
        files: model
            .files
            .iter()
            .map(|f| FileInfo {
                name: f.path.clone(),
                format: f.format.label().into(),
            })
            .collect(),
        arch: arch_signature(&shapes),
        card: model.card.clone(),
        tensors,
    }
}

pub fn fingerprint(path: &Path) -> Result<Fingerprint> {
    fingerprint_model(&Model::open(path)?)
}

impl Fingerprint {
    pub fn save(&self, path: &Path) -> Result<()> {
        std::fs::write(path, serde_json::to_vec(self)?)
            .with_context(|| format!("{}: cannot write", path.display()))
    }
    pub fn load(path: &Path) -> Result<Fingerprint> {
        let b = std::fs::read(path).with_context(|| format!("{}: cannot read", path.display()))?;
        let f: Fingerprint = serde_json::from_slice(&b)
            .with_context(|| format!("{}: not a fingerprint file", path.display()))?;
        if f.format != FORMAT || f.version != VERSION {
            anyhow::bail!(
                "{}: fingerprint format {} v{} not supported",
                path.display(),
                f.format,
                f.version
            );
        }
        Ok(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bytes(n: usize, seed: u64) -> Vec<u8> {
        (0..n).map(|i| mix64(seed ^ i as u64) as u8).collect()
    }

    #[test]
    fn vectorised_multiset_equals_the_plain_sum() {
        for n in [0, 3, 4, 60, 64, 68, 1000, 4096 + 12, (1 << 22) + 4 * 17] {
            let b = bytes(n, n as u64);
            let plain = multiset_hash(
                b.chunks_exact(4)
                    .map(|w| u32::from_le_bytes([w[0], w[1], w[2], w[3]])),
            );
            assert_eq!(multiset_of_slice(&b), plain, "{n} bytes");
            assert_eq!(multiset_of_bytes(&b), plain, "{n} bytes, chunked");
            assert_eq!(multiset_words(&b), multiset_words(&b));
        }
        // order-independent, and the sum of two halves is the whole
        let b = bytes(4096, 1);
        let (x, y) = b.split_at(1024);
        let swapped: Vec<u8> = y.iter().chain(x).copied().collect();
        assert_eq!(multiset_of_slice(&b), multiset_of_slice(&swapped));
        assert_eq!(
            multiset_add(multiset_of_slice(x), multiset_of_slice(y)),
            multiset_of_slice(&b)
        );
    }

    #[test]
    fn simhash_lanes_equal_the_branchy_loop() {
        let v: Vec<f32> = (0..5000)
            .map(|i| (mix64(i) >> 40) as f32 / 1e7 - 0.8)
            .collect();
        let mean = v.iter().map(|&x| x as f64).sum::<f64>() / v.len() as f64;
        let mut acc = [0f64; 64];
        for (j, &x) in v.iter().enumerate() {
            let c = x as f64 - mean;
            let r = mix64(j as u64);
            for (b, a) in acc.iter_mut().enumerate() {
                if (r >> b) & 1 == 1 { *a += c } else { *a -= c }
            }
        }
        let got = simhash_acc(&v, mean);
        for b in 0..64 {
            assert_eq!(got[b].to_bits(), acc[b].to_bits(), "lane {b}");
        }
        assert_eq!(simhash_acc_generic(&v, mean), got);
    }

    #[test]
    fn sample_positions_equal_the_wide_arithmetic() {
        for n in [0usize, 1, 7, 4096, 4097, 123_456_789] {
            let k = n.min(SKETCH_SAMPLES);
            let want: Vec<usize> = (0..k)
                .map(|j| ((j as u128 * n as u128) / k as u128) as usize)
                .collect();
            assert_eq!(sample_positions(n).collect::<Vec<_>>(), want);
        }
    }
}
