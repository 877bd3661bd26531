//! Neural Cleanse (Wang et al., S&P 2019): for every label, find the smallest mask and pattern
//! that send clean inputs to it; a backdoored label needs a much smaller mask than the others,
//! which the median-absolute-deviation anomaly index exposes.
//!
//! All labels and restarts are optimised together in one batch (`K = labels × restarts` masks,
//! each applied to the same clean mini-batch): the gradients of different masks do not
//! interact, and one large forward/backward is far cheaper on a CPU than K small ones.

use burn::module::Module;
use burn::prelude::*;
use burn::tensor::activation::log_softmax;
use serde::Serialize;
use serde_json::json;

use super::{Report, Verdict, anomaly_below_median};
use crate::data::{Dataset, PIXELS, SIDE};
use crate::error::{ProbeError, Result};
use crate::model::{self, Net, Weights};
use crate::rng::Rng;
use crate::trigger::Trigger;

#[derive(Debug, Clone, Copy, Serialize)]
pub struct NcConfig {
    pub restarts: usize,
    pub steps: usize,
    /// Clean images per mask per step.
    pub batch: usize,
    /// Steps per "epoch" of the cost schedule.
    pub epoch_steps: usize,
    pub lr: f32,
    /// The original schedule: start cost, ×1.5 up, ÷1.5^1.5 down, after `patience` epochs
    /// above/below the attack-success threshold.
    pub init_cost: f32,
    pub patience: usize,
    pub attack_threshold: f32,
    /// Anomaly index above which the smallest label is flagged (2 in the paper).
    pub anomaly_threshold: f64,
    pub seed: u64,
}

impl Default for NcConfig {
    fn default() -> Self {
        Self {
            restarts: 3,
            steps: 240,
            batch: 12,
            epoch_steps: 8,
            lr: 0.1,
            init_cost: 1e-3,
            patience: 3,
            attack_threshold: 0.99,
            anomaly_threshold: 2.0,
            seed: 11,
        }
    }
}

/// Per-mask state of the cost schedule.
#[derive(Debug, Clone)]
struct Schedule {
    cost: f32,
    up: usize,
    down: usize,
    best_l1: f32,
    best: Option<(Vec<f32>, Vec<f32>)>,
    epoch_asr: f32,
    epoch_l1: f32,
}

impl Schedule {
    fn end_epoch(&mut self, cfg: &NcConfig, steps: usize, mask: &[f32], pattern: &[f32]) {
        let asr = self.epoch_asr / steps as f32;
        let l1 = self.epoch_l1 / steps as f32;
        if asr >= cfg.attack_threshold && l1 < self.best_l1 {
            self.best_l1 = l1;
            self.best = Some((mask.to_vec(), pattern.to_vec()));
        }
        if asr >= cfg.attack_threshold {
            self.up += 1;
            self.down = 0;
        } else {
            self.up = 0;
            self.down += 1;
        }
        if self.up >= cfg.patience {
            self.up = 0;
            self.cost *= 1.5;
        } else if self.down >= cfg.patience {
            self.down = 0;
            self.cost /= 1.5f32.powf(1.5);
        }
        self.epoch_asr = 0.0;
        self.epoch_l1 = 0.0;
    }
}

/// Adam on a plain vector: the mask and pattern are leaves we own, not module parameters.
struct Adam {
    m: Vec<f32>,
    v: Vec<f32>,
    t: i32,
}

impl Adam {
    fn new(n: usize) -> Self {
        Self {
            m: vec![0.0; n],
            v: vec![0.0; n],
            t: 0,
        }
    }
    /// The original implementation's betas (0.5, 0.9).
    fn step(&mut self, x: &mut [f32], g: &[f32], lr: f32) {
        let (b1, b2, eps) = (0.5f32, 0.9f32, 1e-8f32);
        self.t += 1;
        let c1 = 1.0 - b1.powi(self.t);
        let c2 = 1.0 - b2.powi(self.t);
        for i in 0..x.len() {
            self.m[i] = b1 * self.m[i] + (1.0 - b1) * g[i];
            self.v[i] = b2 * self.v[i] + (1.0 - b2) * g[i] * g[i];
            x[i] -= lr * (self.m[i] / c1) / ((self.v[i] / c2).sqrt() + eps);
        }
    }
}

fn squash(raw: &[f32]) -> Vec<f32> {
    raw.iter().map(|r| (r.tanh() + 1.0) / 2.0).collect()
}

#[derive(Debug, Clone, Serialize)]
pub struct LabelResult {
    pub label: usize,
    /// Smallest mask L1 over restarts that reached the attack threshold (or the final mask's
    /// L1 when none did, marked by `reached = false`).
    pub l1: f64,
    pub reached: bool,
    /// The paper's index: MADs below the median of the L1 norms.
    pub anomaly_index: f64,
    /// The same on log norms, which the verdict uses (see [`neural_cleanse`]).
    pub log_anomaly_index: f64,
}

#[derive(Debug, Clone)]
pub struct NcOutcome {
    pub report: Report,
    pub labels: Vec<LabelResult>,
    /// The recovered trigger of the most anomalous label.
    pub trigger: Trigger,
    /// The recovered trigger of every label, in label order (what [`calibrate`] picks from).
    pub label_triggers: Vec<Trigger>,
}

impl NcOutcome {
    /// The smallest mask L1 per label, the input of [`calibrate`] for other models.
    pub fn norms(&self) -> Vec<f64> {
        self.labels.iter().map(|l| l.l1).collect()
    }
}

/// Runs Neural Cleanse on a model with `clean` inputs (a few hundred suffice).
pub fn neural_cleanse(
    name: &str,
    w: &Weights,
    clean: &Dataset,
    cfg: &NcConfig,
) -> Result<NcOutcome> {
    if clean.is_empty() || cfg.restarts == 0 || cfg.batch == 0 || cfg.epoch_steps == 0 {
        return Err(ProbeError::Invalid(
            "neural cleanse needs clean inputs, restarts, batch and epoch steps".into(),
        ));
    }
    let started = std::time::Instant::now();
    let classes = w.arch.classes;
    let k = classes * cfg.restarts;
    let (b, s) = (cfg.batch, SIDE);
    let dev = model::grad_device();
    let net = Net::from_weights(w, &dev)?.no_grad();
    let mut rng = Rng::new(cfg.seed);
    // Small random start so restarts differ; tanh(−2) ≈ −0.96 → a nearly empty mask.
    let mut mask_raw: Vec<f32> = (0..k * PIXELS).map(|_| -2.0 + 0.5 * rng.normal()).collect();
    let mut pat_raw: Vec<f32> = (0..k * PIXELS).map(|_| rng.normal()).collect();
    let (mut adam_m, mut adam_p) = (Adam::new(k * PIXELS), Adam::new(k * PIXELS));
    let init = Schedule {
        cost: cfg.init_cost,
        up: 0,
        down: 0,
        best_l1: f32::INFINITY,
        best: None,
        epoch_asr: 0.0,
        epoch_l1: 0.0,
    };
    let mut sched = vec![init; k];
    // Mask k optimises toward label k % classes.
    let targets: Vec<usize> = (0..k).map(|i| i % classes).collect();
    let mut onehot = vec![0.0f32; k * b * classes];
    for i in 0..k {
        for j in 0..b {
            onehot[(i * b + j) * classes + targets[i]] = 1.0;
        }
    }
    let onehot = Tensor::<2>::from_data(TensorData::new(onehot, [k * b, classes]), &dev);

    for step in 0..cfg.steps {
        let mut xs = Vec::with_capacity(b * PIXELS);
        for _ in 0..b {
            xs.extend_from_slice(clean.image(rng.below(clean.len())));
        }
        let x = Tensor::<3>::from_data(TensorData::new(xs, [1, b, PIXELS]), &dev)
            .expand([k, b, PIXELS]);
        let m_raw = Tensor::<3>::from_data(TensorData::new(mask_raw.clone(), [k, 1, PIXELS]), &dev)
            .require_grad();
        let p_raw = Tensor::<3>::from_data(TensorData::new(pat_raw.clone(), [k, 1, PIXELS]), &dev)
            .require_grad();
        let m = m_raw.clone().tanh().add_scalar(1.0).mul_scalar(0.5);
        let p = p_raw.clone().tanh().add_scalar(1.0).mul_scalar(0.5);
        let me = m.clone().expand([k, b, PIXELS]);
        let pe = p.expand([k, b, PIXELS]);
        let adv = x.clone() - x * me.clone() + me * pe;
        let logits = net.forward(adv.reshape([k * b, 1, s, s]));
        let ce = (log_softmax(logits.clone(), 1) * onehot.clone())
            .sum_dim(1)
            .neg(); // [k*b, 1]
        let ce_k = ce.reshape([k, b]).mean_dim(1); // [k, 1]
        let l1 = m.reshape([k, PIXELS]).sum_dim(1); // [k, 1]
        let costs: Vec<f32> = sched.iter().map(|s| s.cost).collect();
        let cost_t = Tensor::<2>::from_data(TensorData::new(costs, [k, 1]), &dev);
        let loss = (ce_k + l1.clone() * cost_t).sum();
        let grads = loss.backward();
        let gm = m_raw
            .grad(&grads)
            .ok_or_else(|| ProbeError::Tensor("no mask gradient".into()))?;
        let gp = p_raw
            .grad(&grads)
            .ok_or_else(|| ProbeError::Tensor("no pattern gradient".into()))?;

        // Attack success and mask size of this step, before the update.
        let lv = model::to_vec(logits.detach())?;
        let l1v = model::to_vec(l1.detach())?;
        for (i, sc) in sched.iter_mut().enumerate() {
            let hits = (0..b).filter(|&j| {
                let row = &lv[(i * b + j) * classes..(i * b + j + 1) * classes];
                model::argmax(row) as usize == targets[i]
            });
            sc.epoch_asr += hits.count() as f32 / b as f32;
            sc.epoch_l1 += l1v[i];
        }
        adam_m.step(&mut mask_raw, &model::to_vec(gm)?, cfg.lr);
        adam_p.step(&mut pat_raw, &model::to_vec(gp)?, cfg.lr);

        if (step + 1) % cfg.epoch_steps == 0 {
            for (i, sc) in sched.iter_mut().enumerate() {
                let mk = squash(&mask_raw[i * PIXELS..(i + 1) * PIXELS]);
                let pk = squash(&pat_raw[i * PIXELS..(i + 1) * PIXELS]);
                sc.end_epoch(cfg, cfg.epoch_steps, &mk, &pk);
            }
        }
    }

    // Per label: the best (smallest) mask over restarts.
    let mut per_label: Vec<(f64, bool, Option<(Vec<f32>, Vec<f32>)>)> =
        vec![(f64::INFINITY, false, None); classes];
    for (i, sc) in sched.iter().enumerate() {
        let lab = targets[i];
        let (l1, reached, mp) = match &sc.best {
            Some(mp) => (sc.best_l1 as f64, true, mp.clone()),
            None => {
                let mk = squash(&mask_raw[i * PIXELS..(i + 1) * PIXELS]);
                let pk = squash(&pat_raw[i * PIXELS..(i + 1) * PIXELS]);
                (mk.iter().sum::<f32>() as f64, false, (mk, pk))
            }
        };
        let cur = &per_label[lab];
        // A mask that reached the threshold beats one that did not, whatever its size.
        if (reached && !cur.1) || (reached == cur.1 && l1 < cur.0) {
            per_label[lab] = (l1, reached, Some(mp));
        }
    }
    let norms: Vec<f64> = per_label.iter().map(|p| p.0).collect();
    let anomaly = anomaly_below_median(&norms);
    // Mask norms are positive and clean labels spread multiplicatively (on Fashion-MNIST a
    // trouser needs ~40 pixels, a sneaker ~100), which inflates the MAD and hides a 10-pixel
    // trigger from the linear index. The verdict therefore uses the MAD of log norms; the
    // paper's linear index is reported alongside.
    let logs: Vec<f64> = norms.iter().map(|n| n.max(1e-6).ln()).collect();
    let log_anomaly = anomaly_below_median(&logs);
    let (flagged, &score) = log_anomaly
        .iter()
        .enumerate()
        .max_by(|a, b| a.1.total_cmp(b.1))
        .ok_or_else(|| ProbeError::Invalid("no labels".into()))?;
    let labels: Vec<LabelResult> = (0..classes)
        .map(|l| LabelResult {
            label: l,
            l1: norms[l],
            reached: per_label[l].1,
            anomaly_index: anomaly[l],
            log_anomaly_index: log_anomaly[l],
        })
        .collect();
    let label_triggers: Vec<Trigger> = per_label
        .into_iter()
        .enumerate()
        .map(|(l, p)| {
            let (mask, pattern) = p.2.unwrap_or((vec![0.0; PIXELS], vec![0.0; PIXELS]));
            Trigger {
                name: format!("neural-cleanse {name} label {l}"),
                mask,
                pattern,
            }
        })
        .collect();
    let trigger = label_triggers[flagged].clone();
    let is_backdoor = score > cfg.anomaly_threshold;
    let report = Report {
        detector: "neural-cleanse",
        model: name.to_string(),
        score,
        verdict: Verdict::from_flag(is_backdoor),
        evidence: json!({
            "flagged_label": if is_backdoor { Some(flagged) } else { None },
            "most_anomalous_label": flagged,
            "anomaly_index_log": score,
            "anomaly_index_l1": anomaly[flagged],
            "labels": labels,
            "restarts": cfg.restarts,
            "steps": cfg.steps,
            "seconds": started.elapsed().as_secs_f64(),
        }),
    };
    tracing::debug!(model = name, score, flagged, "neural cleanse done");
    Ok(NcOutcome {
        report,
        labels,
        trigger,
        label_triggers,
    })
}

/// Reference models fewer than this give no calibration: the median of one or two models is
/// their noise, not the task's.
pub const MIN_REFERENCE_MODELS: usize = 3;

/// Calibrated score above which [`calibrate`] flags a model: the label needs under e^-0.45 ≈ 64%
/// of the mask that is usual for this model, relative to the reference. Set between the clean
/// maximum (0.41) and the infected minimum (0.50) of the populations it was developed on
/// (`pedigree lab population --seed 1`, n = 12 and 20, two sets of Neural Cleanse seeds); on a
/// fresh population (`--seed 2`, n = 20) it flagged all 9 trojans and 1 of 10 clean models
/// (0.49). The ROC-AUC and cross-entropy of the population do not depend on it.
pub const REFERENCE_THRESHOLD: f64 = 0.45;

/// The per-label calibration against reference models.
#[derive(Debug, Clone, Serialize)]
pub struct Calibration {
    pub models: usize,
    /// Per label: the median mask L1 over the reference models.
    pub reference_l1: Vec<f64>,
    /// Per label: ln(this model's L1 / the reference median).
    pub log_ratio: Vec<f64>,
    pub most_anomalous_label: usize,
    /// The median log ratio minus the smallest: how many e-folds smaller the most anomalous
    /// label's mask is than this model's typical label, each measured against the reference.
    pub score: f64,
}

/// Neural Cleanse's weak point on a real task is that some labels are *naturally* easy to
/// reach: on Fashion-MNIST a bag or a trouser needs half the mask of a sneaker in every model,
/// clean or not, so a clean model whose easy label came out a little smaller is flagged and a
/// trojan whose target is a hard label hides. Dividing each label's norm by its median over
/// independent models of the same task (clean ones: a control family, an organisation's own
/// models, or, in a population, the other members) removes what is the task's and leaves what
/// is the model's.
///
/// The score is a difference of log ratios, not a MAD index: a model that matches its
/// reference closely has a tiny MAD, and dividing by it turned a label 20% below the reference
/// into an "outlier" (two clean models of the 20-model population scored 4.3 and 7.2 that way).
/// Subtracting the model's median ratio keeps a model that needs smaller masks everywhere (a
/// less robust one) from being flagged for that alone.
pub fn calibration(norms: &[f64], reference: &[Vec<f64>]) -> Result<Calibration> {
    if reference.len() < MIN_REFERENCE_MODELS {
        return Err(ProbeError::Invalid(format!(
            "neural cleanse calibration needs at least {MIN_REFERENCE_MODELS} reference models, got {}",
            reference.len()
        )));
    }
    if reference.iter().any(|r| r.len() != norms.len()) || norms.is_empty() {
        return Err(ProbeError::Invalid(
            "reference models have a different number of labels".into(),
        ));
    }
    let reference_l1: Vec<f64> = (0..norms.len())
        .map(|l| {
            let col: Vec<f64> = reference.iter().map(|r| r[l]).collect();
            crate::metrics::median(&col)
        })
        .collect();
    let log_ratio: Vec<f64> = norms
        .iter()
        .zip(&reference_l1)
        .map(|(n, r)| (n.max(1e-6) / r.max(1e-6)).ln())
        .collect();
    let (label, &lowest) = log_ratio
        .iter()
        .enumerate()
        .min_by(|a, b| a.1.total_cmp(b.1))
        .ok_or_else(|| ProbeError::Invalid("no labels".into()))?;
    let score = crate::metrics::median(&log_ratio) - lowest;
    Ok(Calibration {
        models: reference.len(),
        reference_l1,
        log_ratio,
        most_anomalous_label: label,
        score,
    })
}

/// Rewrites an outcome's score, verdict, flagged label and trigger by the calibration against
/// `reference` (the norms of other models of the same task). The uncalibrated index stays in
/// the evidence.
pub fn calibrate(o: &mut NcOutcome, reference: &[Vec<f64>]) -> Result<()> {
    let c = calibration(&o.norms(), reference)?;
    let flag = c.score > REFERENCE_THRESHOLD;
    let label = c.most_anomalous_label;
    o.report.score = c.score;
    o.report.verdict = Verdict::from_flag(flag);
    let ev = &mut o.report.evidence;
    ev["uncalibrated"] = json!({
        "flagged_label": ev["flagged_label"].take(),
        "most_anomalous_label": ev["most_anomalous_label"].take(),
        "anomaly_index_log": ev["anomaly_index_log"].take(),
    });
    ev["flagged_label"] = json!(if flag { Some(label) } else { None });
    ev["most_anomalous_label"] = json!(label);
    ev["calibration"] = json!(c);
    o.trigger = o.label_triggers[label].clone();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Norms shaped like Fashion-MNIST's: labels 1 and 8 are easy in every model.
    fn task(scale: f64, jitter: usize) -> Vec<f64> {
        let base = [75.0, 45.0, 85.0, 80.0, 85.0, 85.0, 70.0, 140.0, 45.0, 125.0];
        base.iter()
            .enumerate()
            .map(|(l, b)| b * scale * (1.0 + 0.04 * (((l * 7 + jitter * 3) % 5) as f64 - 2.0)))
            .collect()
    }

    fn reference() -> Vec<Vec<f64>> {
        (0..6).map(|j| task(0.9 + 0.04 * j as f64, j)).collect()
    }

    #[test]
    fn an_easy_label_that_is_easy_everywhere_is_not_flagged() {
        // A clean model whose bag (8) came out a little smaller than usual: in-model, the bag
        // stands out against the hard labels; against the reference it is ordinary.
        let mut clean = task(1.0, 9);
        clean[8] *= 0.8;
        let c = calibration(&clean, &reference()).unwrap();
        assert!(c.score < REFERENCE_THRESHOLD, "clean scored {}", c.score);
    }

    #[test]
    fn a_hard_label_made_small_is_flagged_with_its_label() {
        // A trojan to the sandal (5): its mask is 60% of the task's usual, still larger than the
        // bag's, so the in-model index hardly sees it.
        let mut trojan = task(1.0, 4);
        trojan[5] *= 0.6;
        let logs: Vec<f64> = trojan.iter().map(|n| n.ln()).collect();
        let uncalibrated = anomaly_below_median(&logs);
        let c = calibration(&trojan, &reference()).unwrap();
        assert_eq!(c.most_anomalous_label, 5);
        assert!(c.score > REFERENCE_THRESHOLD, "trojan scored {}", c.score);
        // The in-model index ranks the bag (8) or trouser (1) first, not the target.
        let top = (0..10).max_by(|&a, &b| uncalibrated[a].total_cmp(&uncalibrated[b]));
        assert_ne!(
            top,
            Some(5),
            "the uncalibrated index already finds it: a weak test"
        );
    }

    #[test]
    fn too_few_or_mismatched_references_are_refused() {
        let r = reference();
        assert!(calibration(&task(1.0, 0), &r[..2]).is_err());
        assert!(calibration(&task(1.0, 0)[..9], &r).is_err());
    }
}
