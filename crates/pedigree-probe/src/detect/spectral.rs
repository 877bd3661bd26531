//! Spectral Signatures (Tran et al., NeurIPS 2018): poisoned samples leave a strong direction in
//! the covariance of their label's representations. Per label we measure how dominant the top
//! direction is (λ1/λ2); labels that stand out by median absolute deviation are suspicious, and
//! in them the samples with the largest squared projection (1.5·ε of the label) are flagged.

use serde::Serialize;
use serde_json::json;

use super::{Report, Verdict, anomaly_above_median};
use crate::error::{ProbeError, Result};
use crate::linalg::{covariance, eigh};
use crate::metrics::precision_recall;

#[derive(Debug, Clone, Copy)]
pub struct SpectralConfig {
    /// Upper bound on the poisoned fraction of a label (ε in the paper).
    pub epsilon: f64,
    pub anomaly_threshold: f64,
}

impl Default for SpectralConfig {
    fn default() -> Self {
        Self { epsilon: 0.3, anomaly_threshold: 2.0 }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct ClassSpectrum {
    pub label: usize,
    pub samples: usize,
    pub top_ratio: f64,
    pub anomaly_index: f64,
    pub flagged: bool,
}

pub fn spectral_signatures(
    name: &str,
    feats: &[f32],
    hidden: usize,
    labels: &[u8],
    truth: Option<&[usize]>,
    cfg: &SpectralConfig,
) -> Result<(Report, Vec<usize>)> {
    if hidden == 0 || feats.len() != labels.len() * hidden {
        return Err(ProbeError::Invalid("activations and labels disagree in length".into()));
    }
    let classes = labels.iter().map(|&l| l as usize + 1).max().unwrap_or(0);
    let mut per = Vec::new();
    for c in 0..classes {
        let idx: Vec<usize> = (0..labels.len()).filter(|&i| labels[i] as usize == c).collect();
        if idx.len() < 10 {
            continue;
        }
        let x: Vec<f32> = idx.iter().flat_map(|&i| feats[i * hidden..(i + 1) * hidden].iter().copied()).collect();
        let (mean, cov) = covariance(&x, hidden);
        let (vals, vecs) = eigh(&cov, hidden);
        let ratio = vals[0] / vals.get(1).copied().unwrap_or(0.0).max(1e-12);
        let scores: Vec<f64> = x
            .chunks(hidden)
            .map(|r| r.iter().zip(&mean).zip(&vecs[0]).map(|((x, m), v)| (*x as f64 - m) * v).sum::<f64>().powi(2))
            .collect();
        per.push((c, idx, ratio, scores));
    }
    let ratios: Vec<f64> = per.iter().map(|p| p.2).collect();
    let anomaly = anomaly_above_median(&ratios);
    let mut flagged = Vec::new();
    let mut spectra = Vec::new();
    for ((c, idx, ratio, scores), &a) in per.iter().zip(&anomaly) {
        let is_flagged = a > cfg.anomaly_threshold;
        if is_flagged {
            let mut order: Vec<usize> = (0..idx.len()).collect();
            order.sort_by(|&i, &j| scores[j].total_cmp(&scores[i]));
            let n = ((1.5 * cfg.epsilon * idx.len() as f64).round() as usize).min(idx.len());
            flagged.extend(order[..n].iter().map(|&o| idx[o]));
        }
        spectra.push(ClassSpectrum { label: *c, samples: idx.len(), top_ratio: *ratio, anomaly_index: a, flagged: is_flagged });
    }
    let score = anomaly.iter().cloned().fold(0.0, f64::max);
    let pr = truth.map(|t| precision_recall(&flagged, t));
    let report = Report {
        detector: "spectral-signatures",
        model: name.to_string(),
        score,
        verdict: Verdict::from_flag(score > cfg.anomaly_threshold),
        evidence: json!({
            "classes": spectra,
            "flagged_samples": flagged.len(),
            "precision": pr.map(|p| p.0),
            "recall": pr.map(|p| p.1),
        }),
    };
    Ok((report, flagged))
}
