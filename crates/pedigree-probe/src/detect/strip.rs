//! STRIP (Gao et al., ACSAC 2019): superimpose an input on random clean images; a clean input's
//! prediction scatters (high entropy) while a triggered one keeps its target (low entropy).
//! Entropy is taken per perturbed copy over the *class* axis and averaged over the copies.

use serde_json::json;

use super::{Report, Verdict};
use crate::data::{Dataset, PIXELS};
use crate::error::{ProbeError, Result};
use crate::metrics::{entropy, roc_auc};
use crate::model::Model;
use crate::rng::Rng;

#[derive(Debug, Clone, Copy)]
pub struct StripConfig {
    pub overlays: usize,
    pub seed: u64,
    /// AUROC above which the inputs are called separable (a backdoor is active).
    pub threshold: f64,
}

impl Default for StripConfig {
    fn default() -> Self {
        Self {
            overlays: 20,
            seed: 5,
            threshold: 0.8,
        }
    }
}

/// Mean entropy of each input superimposed (saturating sum, as the original's `addWeighted`
/// with weights 1 and 1) on `overlays` random images from `pool`.
pub fn entropies(
    model: &Model,
    pool: &Dataset,
    inputs: &Dataset,
    overlays: usize,
    rng: &mut Rng,
) -> Result<Vec<f32>> {
    if pool.is_empty() || overlays == 0 {
        return Err(ProbeError::Invalid(
            "STRIP needs a clean pool and at least one overlay".into(),
        ));
    }
    let classes = model.arch.classes;
    let mut out = Vec::with_capacity(inputs.len());
    let mut buf = Vec::with_capacity(overlays * PIXELS);
    for i in 0..inputs.len() {
        buf.clear();
        let x = inputs.image(i);
        for _ in 0..overlays {
            let o = pool.image(rng.below(pool.len()));
            buf.extend(x.iter().zip(o).map(|(a, b)| (a + b).min(1.0)));
        }
        let p = model.probs(&buf)?;
        let h: f32 = p.chunks(classes).map(entropy).sum::<f32>() / overlays as f32;
        out.push(h);
    }
    Ok(out)
}

/// Share of `trojan` entropies below the `frr` quantile of the clean ones.
fn detection_at_frr(clean: &[f32], trojan: &[f32], frr: f64) -> (f64, f64) {
    let mut c = clean.to_vec();
    c.sort_by(|a, b| a.total_cmp(b));
    let idx = ((frr * c.len() as f64).floor() as usize).min(c.len().saturating_sub(1));
    let thr = c.get(idx).copied().unwrap_or(0.0);
    let det = trojan.iter().filter(|&&h| h < thr).count() as f64 / trojan.len().max(1) as f64;
    (thr as f64, det)
}

/// Input-level detection quality on known clean and triggered inputs.
pub fn strip(
    name: &str,
    model: &Model,
    pool: &Dataset,
    clean: &Dataset,
    trojan: &Dataset,
    cfg: &StripConfig,
) -> Result<Report> {
    if clean.is_empty() || trojan.is_empty() {
        return Err(ProbeError::Invalid(
            "STRIP needs clean and triggered inputs".into(),
        ));
    }
    let mut rng = Rng::new(cfg.seed);
    let hc = entropies(model, pool, clean, cfg.overlays, &mut rng)?;
    let ht = entropies(model, pool, trojan, cfg.overlays, &mut rng)?;
    // Low entropy = trojaned, so the score is the negated entropy.
    let scores: Vec<f64> = hc.iter().chain(&ht).map(|&h| -(h as f64)).collect();
    let truth: Vec<bool> = hc
        .iter()
        .map(|_| false)
        .chain(ht.iter().map(|_| true))
        .collect();
    let auroc = roc_auc(&scores, &truth).unwrap_or(0.5);
    let (t5, d5) = detection_at_frr(&hc, &ht, 0.05);
    let (t10, d10) = detection_at_frr(&hc, &ht, 0.10);
    let mean = |v: &[f32]| v.iter().map(|&x| x as f64).sum::<f64>() / v.len().max(1) as f64;
    Ok(Report {
        detector: "strip",
        model: name.to_string(),
        score: auroc,
        verdict: Verdict::from_flag(auroc >= cfg.threshold),
        evidence: json!({
            "auroc": auroc,
            "detection_at_frr_5": d5,
            "threshold_at_frr_5": t5,
            "detection_at_frr_10": d10,
            "threshold_at_frr_10": t10,
            "mean_entropy_clean": mean(&hc),
            "mean_entropy_trojan": mean(&ht),
            "overlays": cfg.overlays,
            "clean_inputs": hc.len(),
            "trojan_inputs": ht.len(),
        }),
    })
}
