//! Spectral Signatures (Tran et al., NeurIPS 2018): poisoned samples leave a strong direction in
//! the covariance of their label's representations, and their projections on the top singular
//! vector stand apart from the clean ones.
//!
//! Two rules are reported. The paper's: in every label, flag the 1.5·ε fraction with the
//! largest squared projection (what ART does; high recall, but it flags clean labels too).
//! Ours, which the verdict uses: a label is suspicious when its projections are *bimodal*, i.e.
//! the best split into two groups explains at least `bimodality` of their variance (a Gaussian
//! gives 1 − 2/π ≈ 0.64), and then its smaller group is flagged.

use serde::Serialize;
use serde_json::json;

use super::{Report, Verdict};
use crate::error::Result;
use crate::linalg::{covariance, eigh};
use crate::metrics::precision_recall;

#[derive(Debug, Clone, Copy)]
pub struct SpectralConfig {
    /// Upper bound on the poisoned fraction of a label (ε in the paper).
    pub epsilon: f64,
    /// Share of variance the best two-group split must explain to call a label bimodal.
    pub bimodality: f64,
}

impl Default for SpectralConfig {
    fn default() -> Self {
        Self {
            epsilon: 0.3,
            bimodality: 0.8,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct ClassSpectrum {
    pub label: usize,
    pub samples: usize,
    /// Variance explained by the best split of the projections.
    pub bimodality: f64,
    pub smaller_fraction: f64,
    pub flagged: bool,
}

/// Exact optimal two-group split of 1-D values: returns (explained variance share, indices of
/// the smaller group).
fn split_1d(z: &[f64]) -> (f64, Vec<usize>) {
    let n = z.len();
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&a, &b| z[a].total_cmp(&z[b]));
    let total_mean = z.iter().sum::<f64>() / n as f64;
    let total_ss: f64 = z.iter().map(|v| (v - total_mean).powi(2)).sum();
    if total_ss <= 0.0 || n < 4 {
        return (0.0, Vec::new());
    }
    let sum: f64 = z.iter().sum();
    let mut left = 0.0;
    let mut best = (0.0, 1);
    for k in 1..n {
        left += z[order[k - 1]];
        let (nl, nr) = (k as f64, (n - k) as f64);
        let between =
            nl * (left / nl - total_mean).powi(2) + nr * ((sum - left) / nr - total_mean).powi(2);
        if between > best.0 {
            best = (between, k);
        }
    }
    let k = best.1;
    let small: Vec<usize> = if k * 2 <= n {
        order[..k].to_vec()
    } else {
        order[k..].to_vec()
    };
    (best.0 / total_ss, small)
}

pub fn spectral_signatures(
    name: &str,
    feats: &[f32],
    hidden: usize,
    labels: &[u8],
    truth: Option<&[usize]>,
    cfg: &SpectralConfig,
) -> Result<(Report, Vec<usize>)> {
    let mut spectra = Vec::new();
    let mut flagged = Vec::new();
    let mut paper = Vec::new();
    for (c, idx, x) in super::per_class(feats, hidden, labels, 10)? {
        let (mean, cov) = covariance(&x, hidden);
        let (_, vecs) = eigh(&cov, hidden);
        let z: Vec<f64> = x
            .chunks(hidden)
            .map(|r| {
                r.iter()
                    .zip(&mean)
                    .zip(&vecs[0])
                    .map(|((x, m), v)| (*x as f64 - m) * v)
                    .sum::<f64>()
            })
            .collect();
        let mut order: Vec<usize> = (0..idx.len()).collect();
        order.sort_by(|&i, &j| z[j].powi(2).total_cmp(&z[i].powi(2)));
        let n = ((1.5 * cfg.epsilon * idx.len() as f64).round() as usize).min(idx.len());
        paper.extend(order[..n].iter().map(|&o| idx[o]));
        let (bimodality, small) = split_1d(&z);
        let frac = small.len() as f64 / idx.len() as f64;
        let is_flagged = bimodality >= cfg.bimodality && frac <= 0.5;
        if is_flagged {
            flagged.extend(small.iter().map(|&o| idx[o]));
        }
        spectra.push(ClassSpectrum {
            label: c,
            samples: idx.len(),
            bimodality,
            smaller_fraction: frac,
            flagged: is_flagged,
        });
    }
    let score = spectra.iter().map(|s| s.bimodality).fold(0.0, f64::max);
    let pr = truth.map(|t| precision_recall(&flagged, t));
    let pp = truth.map(|t| precision_recall(&paper, t));
    let report = Report {
        detector: "spectral-signatures",
        model: name.to_string(),
        score,
        verdict: Verdict::from_flag(spectra.iter().any(|s| s.flagged)),
        evidence: json!({
            "classes": spectra,
            "flagged_samples": flagged.len(),
            "precision": pr.map(|p| p.0),
            "recall": pr.map(|p| p.1),
            "paper_rule_flagged": paper.len(),
            "paper_rule_precision": pp.map(|p| p.0),
            "paper_rule_recall": pp.map(|p| p.1),
        }),
    };
    Ok((report, flagged))
}
