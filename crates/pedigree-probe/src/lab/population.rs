//! `pedigree lab population`: TrojAI-style scoring. Train clean and infected models with varied
//! triggers, positions, targets and poison rates; run every detector on every model; score each
//! detector by ROC-AUC and by the cross-entropy of its calibrated probability.
//!
//! Calibration is leave-one-out logistic regression on the detector's raw score (the model being
//! scored never informs its own probability), clamped to [0.02, 0.98] like a cautious submitter.
//!
//! The `-ref` detectors judge each label against the same label in the *other* members (their
//! per-label median), without using whether those are infected: what every model of the task
//! shows (a label that is easy to reach, a class that splits in two) is then not mistaken for
//! a trojan. Neural Cleanse gains most from it (see [`calibration`]).

use std::path::Path;

use serde::Serialize;

use super::LabConfig;
use crate::data::{Dataset, FashionMnist};
use crate::detect::clustering::{AcConfig, activation_clustering};
use crate::detect::neural_cleanse::{NcConfig, calibration, neural_cleanse};
use crate::detect::spectral::{SpectralConfig, spectral_signatures};
use crate::detect::strip;
use crate::error::{ProbeError, Result};
use crate::metrics::{accuracy, attack_success, cross_entropy, roc_auc};
use crate::model::{Arch, Model, Weights};
use crate::rng::Rng;
use crate::store::{self, Card};
use crate::train::{TrainConfig, train_full};
use crate::trigger::{Trigger, poison};

#[derive(Debug, Clone, Serialize)]
pub struct PopulationConfig {
    pub n: usize,
    pub seed: u64,
    pub train_size: usize,
    pub train: TrainConfig,
    pub nc: NcConfig,
    /// Training samples STRIP inspects per model.
    pub strip_samples: usize,
    pub strip_overlays: usize,
}

impl PopulationConfig {
    pub fn new(n: usize, lab: &LabConfig) -> Self {
        Self {
            n,
            seed: lab.seed ^ 0x909,
            train_size: 10_000,
            train: lab.base,
            nc: NcConfig::default(),
            strip_samples: 600,
            strip_overlays: 8,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Member {
    pub name: String,
    pub infected: bool,
    pub target: Option<u8>,
    pub trigger: Option<String>,
    pub poison_rate: f32,
    pub clean_accuracy: f32,
    pub attack_success: Option<f32>,
    /// Raw detector scores, in [`DETECTORS`] order.
    pub scores: Vec<f64>,
    pub nc_flagged_label: Option<usize>,
    /// Neural Cleanse's smallest mask L1 per label: the input of the calibrated detector.
    pub nc_l1: Vec<f64>,
    /// The label the calibrated Neural Cleanse finds most anomalous.
    pub nc_ref_label: Option<usize>,
    /// Per label: Activation Clustering's silhouette of a small cluster (0 where the smaller
    /// cluster is too big to be poison), and Spectral Signatures' bimodality.
    pub ac_per_label: Vec<f64>,
    pub spectral_per_label: Vec<f64>,
    /// An infected model whose attack did not take (ASR < 0.5) is no trojan to detect; like
    /// TrojAI's rounds, it is left out of the scoring (and listed).
    pub excluded: bool,
}

pub const DETECTORS: [&str; 8] = [
    "neural-cleanse",
    "neural-cleanse-l1",
    "neural-cleanse-ref",
    "activation-clustering",
    "spectral-signatures",
    "strip",
    "activation-clustering-ref",
    "spectral-signatures-ref",
];

/// Positions of the detectors scored against the other members, in [`DETECTORS`]; they are
/// filled in once the whole population is trained.
const NC_REF: usize = 2;
const AC_REF: usize = 6;
const SPECTRAL_REF: usize = 7;

/// A per-class statistic from a training-set detector's evidence (`classes[].label`), by label;
/// a label the detector skipped (too few samples) counts 0.
fn per_label(evidence: &serde_json::Value, f: impl Fn(&serde_json::Value) -> f64) -> Vec<f64> {
    let mut v = vec![0.0; 10];
    for c in evidence["classes"].as_array().into_iter().flatten() {
        if let Some(l) = c["label"].as_u64().filter(|&l| l < 10) {
            v[l as usize] = f(c);
        }
    }
    v
}

/// The largest excess of member `i`'s per-label statistic over that label's median among the
/// other members.
fn excess_over_others(all: &[Vec<f64>], i: usize) -> f64 {
    (0..all[i].len())
        .map(|l| {
            let col: Vec<f64> = all
                .iter()
                .enumerate()
                .filter(|(j, _)| *j != i)
                .map(|(_, v)| v[l])
                .collect();
            all[i][l] - crate::metrics::median(&col)
        })
        .fold(f64::NEG_INFINITY, f64::max)
}

#[derive(Debug, Clone, Serialize)]
pub struct DetectorScore {
    pub detector: String,
    pub roc_auc: f64,
    pub cross_entropy: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct PopulationOutcome {
    pub members: Vec<Member>,
    pub scores: Vec<DetectorScore>,
    pub seconds: f64,
}

pub fn run(
    data: &FashionMnist,
    cfg: &PopulationConfig,
    out: Option<&Path>,
) -> Result<PopulationOutcome> {
    if cfg.n < 2 {
        return Err(ProbeError::Invalid(
            "a population needs at least 2 models".into(),
        ));
    }
    let started = std::time::Instant::now();
    let mut rng = Rng::new(cfg.seed);
    let mut members = Vec::new();
    let nc_clean = data.test.take(300);
    let test = data.test.take(2000);
    for i in 0..cfg.n {
        let mut r = rng.fork(i as u64);
        let infected = i % 2 == 0;
        let mut idx: Vec<usize> = (0..data.train.len()).collect();
        r.shuffle(&mut idx);
        idx.truncate(cfg.train_size.min(data.train.len()));
        let clean = data.train.select(&idx);
        let (train_set, poisoned, trigger, target, rate) = if infected {
            let t = Trigger::random_patch(&mut r);
            let target = r.below(10) as u8;
            // 2-5% of the set: up to a third of the target label, where BadNets implants reliably
            // and Activation Clustering's "smaller cluster" premise still holds.
            let rate = 0.02 + 0.03 * r.f32();
            let (p, pi) = poison(&clean, &t, target, rate, &mut r);
            (p, pi, Some(t), Some(target), rate)
        } else {
            (clean, Vec::new(), None, None, 0.0)
        };
        let init = Weights::init(Arch::lab(10), &mut r);
        let tc = TrainConfig {
            seed: cfg.seed ^ i as u64,
            ..cfg.train
        };
        let w = train_full(&init, &train_set, &tc)?;
        let name = format!("pop-{i:03}");
        let m = Model::new(&w)?;
        let asr = match (&trigger, target) {
            (Some(t), Some(tg)) => {
                attack_success(&m, &crate::data::Task::identity(), &test, t, tg)?
            }
            _ => None,
        };
        let nc = neural_cleanse(
            &name,
            &w,
            &nc_clean,
            &NcConfig {
                seed: cfg.nc.seed ^ i as u64,
                ..cfg.nc
            },
        )?;
        let feats = m.features(&train_set.images)?;
        let (ac, _) = activation_clustering(
            &name,
            &feats,
            w.arch.hidden,
            &train_set.labels,
            Some(&poisoned),
            &AcConfig::default(),
        )?;
        let (sp, _) = spectral_signatures(
            &name,
            &feats,
            w.arch.hidden,
            &train_set.labels,
            Some(&poisoned),
            &SpectralConfig::default(),
        )?;
        let strip_score = strip_training_score(&m, &data.test, &train_set, cfg, &mut r)?;
        if let Some(dir) = out {
            let card = Card {
                name: name.clone(),
                description: "pedigree lab population member".into(),
                base_model: None,
            };
            store::save(&dir.join(&name), &w, &crate::data::Task::identity(), &card)?;
        }
        let member = Member {
            name,
            infected,
            target,
            trigger: trigger.map(|t| t.name),
            poison_rate: rate,
            clean_accuracy: accuracy(&m, &test)?,
            attack_success: asr,
            scores: vec![
                nc.report.score,
                nc.labels
                    .iter()
                    .map(|l| l.anomaly_index)
                    .fold(0.0, f64::max),
                f64::NAN, // NC_REF, filled in once the whole population is trained
                ac.score,
                sp.score,
                strip_score,
                f64::NAN, // AC_REF, likewise
                f64::NAN, // SPECTRAL_REF, likewise
            ],
            excluded: infected && asr.unwrap_or(0.0) < 0.5,
            nc_flagged_label: nc
                .report
                .evidence
                .get("flagged_label")
                .and_then(|v| v.as_u64())
                .map(|v| v as usize),
            nc_l1: nc.norms(),
            nc_ref_label: None,
            ac_per_label: per_label(&ac.evidence, |c| {
                let small = c["smaller_fraction"].as_f64().unwrap_or(1.0)
                    < AcConfig::default().size_threshold;
                if small {
                    c["silhouette"].as_f64().unwrap_or(0.0)
                } else {
                    0.0
                }
            }),
            spectral_per_label: per_label(&sp.evidence, |c| {
                c["bimodality"].as_f64().unwrap_or(0.0)
            }),
        };
        tracing::info!(model = %member.name, infected, scores = ?member.scores, "population member done");
        members.push(member);
    }
    // Calibrated Neural Cleanse: each member against the per-label median of all the *other*
    // members. Their infection labels are not used, and a member never informs its own
    // reference; triggers and targets vary, so no label is easy across the reference.
    let all_norms: Vec<Vec<f64>> = members.iter().map(|m| m.nc_l1.clone()).collect();
    for (i, m) in members.iter_mut().enumerate() {
        let others: Vec<Vec<f64>> = all_norms
            .iter()
            .enumerate()
            .filter(|(j, _)| *j != i)
            .map(|(_, n)| n.clone())
            .collect();
        let (score, label) = match calibration(&m.nc_l1, &others) {
            Ok(c) => (c.score, Some(c.most_anomalous_label)),
            // Fewer than three others: no calibration, and no evidence either way.
            Err(_) => (0.0, None),
        };
        m.scores[NC_REF] = score;
        m.nc_ref_label = label;
    }
    let ac: Vec<Vec<f64>> = members.iter().map(|m| m.ac_per_label.clone()).collect();
    let sp: Vec<Vec<f64>> = members
        .iter()
        .map(|m| m.spectral_per_label.clone())
        .collect();
    for (i, m) in members.iter_mut().enumerate() {
        m.scores[AC_REF] = excess_over_others(&ac, i);
        m.scores[SPECTRAL_REF] = excess_over_others(&sp, i);
    }
    let scored: Vec<&Member> = members.iter().filter(|m| !m.excluded).collect();
    let truth: Vec<bool> = scored.iter().map(|m| m.infected).collect();
    let scores = DETECTORS
        .iter()
        .enumerate()
        .map(|(d, name)| {
            let s: Vec<f64> = scored.iter().map(|m| m.scores[d]).collect();
            let p = loo_logistic(&s, &truth);
            DetectorScore {
                detector: name.to_string(),
                roc_auc: roc_auc(&s, &truth).unwrap_or(0.5),
                cross_entropy: cross_entropy(&p, &truth),
            }
        })
        .collect();
    let outcome = PopulationOutcome {
        members,
        scores,
        seconds: started.elapsed().as_secs_f64(),
    };
    if let Some(dir) = out {
        store::write_json(&dir.join("population.json"), &outcome)?;
        std::fs::write(dir.join("population.md"), table(&outcome))
            .map_err(|e| ProbeError::io(dir, e))?;
    }
    Ok(outcome)
}

/// STRIP as a model-level detector over a training set: the share of training samples whose
/// entropy falls below the 1% false-rejection threshold set on clean test inputs. Poisoned
/// samples carry the trigger, so an infected model's share rises by about the poison rate.
fn strip_training_score(
    m: &Model,
    pool: &Dataset,
    train: &Dataset,
    cfg: &PopulationConfig,
    rng: &mut Rng,
) -> Result<f64> {
    let calib = pool.take(300);
    let hc = strip::entropies(m, pool, &calib, cfg.strip_overlays, rng)?;
    let mut idx: Vec<usize> = (0..train.len()).collect();
    rng.shuffle(&mut idx);
    idx.truncate(cfg.strip_samples);
    let ht = strip::entropies(m, pool, &train.select(&idx), cfg.strip_overlays, rng)?;
    let mut sorted = hc.clone();
    sorted.sort_by(|a, b| a.total_cmp(b));
    let thr = sorted[(sorted.len() / 100).min(sorted.len() - 1)];
    Ok(ht.iter().filter(|&&h| h < thr).count() as f64 / ht.len().max(1) as f64)
}

/// Leave-one-out Platt scaling: for each model, fit `p = σ(a·z + b)` on the others (z = the
/// standardised score, small ridge so that separable data keeps finite weights).
pub fn loo_logistic(scores: &[f64], truth: &[bool]) -> Vec<f64> {
    (0..scores.len())
        .map(|i| {
            let xs: Vec<(f64, f64)> = scores
                .iter()
                .zip(truth)
                .enumerate()
                .filter(|(j, _)| *j != i)
                .map(|(_, (s, t))| (*s, if *t { 1.0 } else { 0.0 }))
                .collect();
            let n = xs.len().max(1) as f64;
            let mean = xs.iter().map(|x| x.0).sum::<f64>() / n;
            let sd = (xs.iter().map(|x| (x.0 - mean).powi(2)).sum::<f64>() / n)
                .sqrt()
                .max(1e-9);
            let (mut a, mut b) = (0.0f64, 0.0f64);
            for _ in 0..2000 {
                let (mut ga, mut gb) = (0.1 * a, 0.0);
                for &(s, y) in &xs {
                    let z = (s - mean) / sd;
                    let p = 1.0 / (1.0 + (-(a * z + b)).exp());
                    ga += (p - y) * z / n;
                    gb += (p - y) / n;
                }
                a -= 0.5 * ga;
                b -= 0.5 * gb;
            }
            let z = (scores[i] - mean) / sd;
            (1.0 / (1.0 + (-(a * z + b)).exp())).clamp(0.02, 0.98)
        })
        .collect()
}

pub fn table(o: &PopulationOutcome) -> String {
    let mut s = String::from("| detector | ROC-AUC | cross-entropy |\n|---|---|---|\n");
    for d in &o.scores {
        s.push_str(&format!(
            "| {} | {:.3} | {:.4} |\n",
            d.detector, d.roc_auc, d.cross_entropy
        ));
    }
    s
}
