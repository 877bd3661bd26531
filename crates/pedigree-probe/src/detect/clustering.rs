//! Activation Clustering (Chen et al., 2018): within each label, the penultimate activations of
//! poisoned samples form their own cluster (they are "really" another class carrying the
//! trigger). Per label: PCA to a few dimensions, 2-means, and the smaller cluster is poison
//! when it is small *and* well separated (silhouette), which keeps clean labels that merely
//! split unevenly from being flagged.

use serde::Serialize;
use serde_json::json;

use super::{Report, Verdict};
use crate::error::Result;
use crate::linalg::{pca, silhouette, two_means};
use crate::metrics::precision_recall;
use crate::rng::Rng;

#[derive(Debug, Clone, Copy)]
pub struct AcConfig {
    pub dims: usize,
    pub size_threshold: f64,
    pub silhouette_threshold: f64,
    pub seed: u64,
}

impl Default for AcConfig {
    fn default() -> Self {
        Self {
            dims: 10,
            size_threshold: 0.35,
            silhouette_threshold: 0.3,
            seed: 3,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct ClassSplit {
    pub label: usize,
    pub samples: usize,
    pub smaller_fraction: f64,
    pub silhouette: f64,
    pub flagged: bool,
}

/// `feats` is `n × hidden`; `labels` the training labels (poisoned ones included, as trained).
/// `truth`, when known, turns the flagged set into precision and recall.
pub fn activation_clustering(
    name: &str,
    feats: &[f32],
    hidden: usize,
    labels: &[u8],
    truth: Option<&[usize]>,
    cfg: &AcConfig,
) -> Result<(Report, Vec<usize>)> {
    let mut rng = Rng::new(cfg.seed);
    let mut splits = Vec::new();
    let mut flagged_idx = Vec::new();
    for (c, idx, x) in super::per_class(feats, hidden, labels, 10)? {
        let z = pca(&x, hidden, cfg.dims);
        let d = cfg.dims.min(hidden);
        let a = two_means(&z, d, 3, &mut rng);
        let ones = a.iter().filter(|&&v| v == 1).count();
        let small: u8 = if ones * 2 <= a.len() { 1 } else { 0 };
        let frac = a.iter().filter(|&&v| v == small).count() as f64 / a.len() as f64;
        let sil = silhouette(&z, d, &a, 400);
        let flagged = frac < cfg.size_threshold && sil >= cfg.silhouette_threshold;
        if flagged {
            flagged_idx.extend(
                idx.iter()
                    .zip(&a)
                    .filter(|(_, v)| **v == small)
                    .map(|(i, _)| *i),
            );
        }
        splits.push(ClassSplit {
            label: c,
            samples: idx.len(),
            smaller_fraction: frac,
            silhouette: sil,
            flagged,
        });
    }
    // Model-level score: the best-separated small cluster of any label.
    let score = splits
        .iter()
        .filter(|s| s.smaller_fraction < cfg.size_threshold)
        .map(|s| s.silhouette)
        .fold(0.0, f64::max);
    let pr = truth.map(|t| precision_recall(&flagged_idx, t));
    let report = Report {
        detector: "activation-clustering",
        model: name.to_string(),
        score,
        verdict: Verdict::from_flag(splits.iter().any(|s| s.flagged)),
        evidence: json!({
            "classes": splits,
            "flagged_samples": flagged_idx.len(),
            "precision": pr.map(|p| p.0),
            "recall": pr.map(|p| p.1),
        }),
    };
    Ok((report, flagged_idx))
}
