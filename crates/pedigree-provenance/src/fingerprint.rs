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
        let a = (x ^ (x >> 16)).wrapping_mul(0x7feb_352d);
        let a = (a ^ (a >> 15)).wrapping_mul(0x846c_a68b);
        lo = lo.wrapping_add(a ^ (a >> 16));
        let b = (x ^ 0x5bd1_e995 ^ (x >> 15)).wrapping_mul(0x2c1b_3c6d);
        let b = (b ^ (b >> 12)).wrapping_mul(0x297a_2d39);
        hi = hi.wrapping_add(b ^ (b >> 15));
    }
    ((hi as u64) << 32) | lo as u64
}

fn multiset_of_bytes(b: &[u8]) -> u64 {
    // Split in chunks so the two cores share large tensors; addition is associative.
    const CH: usize = 1 << 22;
    let parts: Vec<u64> = b
        .par_chunks(CH)
        .map(|c| {
            multiset_hash(
                c.chunks_exact(4)
                    .map(|w| u32::from_le_bytes([w[0], w[1], w[2], w[3]])),
            )
        })
        .collect();
    let (mut lo, mut hi) = (0u32, 0u32);
    for p in parts {
        lo = lo.wrapping_add(p as u32);
        hi = hi.wrapping_add((p >> 32) as u32);
    }
    ((hi as u64) << 32) | lo as u64
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
    let mut h = blake3::Hasher::new();
    for v in row {
        h.update(&v.to_le_bytes());
    }
    u64::from_le_bytes(h.finalize().as_bytes()[..8].try_into().unwrap_or([0; 8]))
}

/// Sample positions: evenly strided, a function of the element count only.
pub fn sample_positions(n: usize) -> impl Iterator<Item = usize> {
    let k = n.min(SKETCH_SAMPLES);
    (0..k).map(move |j| ((j as u128 * n as u128) / k as u128) as usize)
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
    let mut acc = [0f64; 64];
    for (j, &v) in sample.iter().enumerate() {
        let c = v as f64 - mean;
        let r = mix64(j as u64);
        for (b, a) in acc.iter_mut().enumerate() {
            if (r >> b) & 1 == 1 { *a += c } else { *a -= c }
        }
    }
    let sim = acc
        .iter()
        .enumerate()
        .fold(0u64, |h, (b, a)| if *a > 0.0 { h | (1 << b) } else { h });
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
        // Fast path: the file already holds the canonical bytes.
        let mut h = blake3::Hasher::new();
        if b.len() > 1 << 20 {
            h.update_rayon(b)
        } else {
            h.update(b)
        };
        digest = h.finalize().to_hex().to_string();
        multiset = multiset_of_bytes(b);
        values = None;
    } else {
        let v = model.values(t)?;
        let mut h = blake3::Hasher::new();
        let mut bytes = Vec::with_capacity(v.len() * 4);
        for x in &v {
            bytes.extend_from_slice(&x.to_le_bytes());
        }
        if bytes.len() > 1 << 20 {
            h.update_rayon(&bytes)
        } else {
            h.update(&bytes)
        };
        digest = h.finalize().to_hex().to_string();
        multiset = multiset_of_bytes(&bytes);
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
        let sample_idx: Vec<usize> = sample_positions(n).collect();
        // mean/std/absmax from the sample too (documented: sketch statistics are sampled).
        let sample: Vec<f32> = sample_idx.iter().map(|&i| at(i)).collect();
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

pub fn fingerprint_model(model: &Model) -> Result<Fingerprint> {
    let weights = model.weights();
    // The OMS id hashes each file with one sequential SHA-256; run it beside the tensor work.
    let (tensors, id) = rayon::join(
        || {
            weights
                .par_iter()
                .map(|t| tensor_fp(model, t))
                .collect::<Result<Vec<_>>>()
        },
        || model_id(&model.path),
    );
    let (tensors, id) = (tensors?, id?);
    let shapes: Vec<Vec<usize>> = weights.iter().map(|t| t.shape.clone()).collect();
    Ok(Fingerprint {
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
    })
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
