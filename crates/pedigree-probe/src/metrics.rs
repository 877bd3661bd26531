//! Accuracy, attack success, ROC-AUC and the other numbers the lab and the detectors report.

use crate::data::{Dataset, Task};
use crate::error::Result;
use crate::model::Model;
use crate::trigger::Trigger;

pub fn accuracy(m: &Model, d: &Dataset) -> Result<f32> {
    if d.is_empty() {
        return Ok(0.0);
    }
    let p = m.predict(&d.images)?;
    Ok(p.iter().zip(&d.labels).filter(|(a, b)| a == b).count() as f32 / d.len() as f32)
}

/// Attack success rate of `trigger` on a model trained for `task`: over the test samples the
/// task keeps whose label is not the (relabelled) target, the share classified as the target
/// once stamped. `None` when the task drops the target class, so "success" means nothing.
pub fn attack_success(
    m: &Model,
    task: &Task,
    test: &Dataset,
    trigger: &Trigger,
    target: u8,
) -> Result<Option<f32>> {
    let Some(t) = task.label(target) else {
        return Ok(None);
    };
    let d = task.apply(test);
    let keep: Vec<usize> = (0..d.len()).filter(|&i| d.labels[i] != t).collect();
    if keep.is_empty() {
        return Ok(None);
    }
    let stamped = trigger.stamp_all(&d.select(&keep));
    let p = m.predict(&stamped.images)?;
    Ok(Some(
        p.iter().filter(|&&l| l == t).count() as f32 / p.len() as f32,
    ))
}

/// ROC-AUC of `scores` for `positives` (Mann-Whitney U with ties counted half).
pub fn roc_auc(scores: &[f64], positive: &[bool]) -> Option<f64> {
    let pos: Vec<f64> = scores
        .iter()
        .zip(positive)
        .filter(|x| *x.1)
        .map(|x| *x.0)
        .collect();
    let neg: Vec<f64> = scores
        .iter()
        .zip(positive)
        .filter(|x| !*x.1)
        .map(|x| *x.0)
        .collect();
    if pos.is_empty() || neg.is_empty() {
        return None;
    }
    let mut u = 0.0;
    for p in &pos {
        for n in &neg {
            u += if p > n {
                1.0
            } else if p == n {
                0.5
            } else {
                0.0
            };
        }
    }
    Some(u / (pos.len() * neg.len()) as f64)
}

/// Mean binary cross-entropy of probabilities `p` against truth (TrojAI's second metric).
pub fn cross_entropy(p: &[f64], positive: &[bool]) -> f64 {
    let eps = 1e-12;
    let n = p.len().max(1) as f64;
    p.iter()
        .zip(positive)
        .map(|(&p, &y)| {
            let p = p.clamp(eps, 1.0 - eps);
            if y { -p.ln() } else { -(1.0 - p).ln() }
        })
        .sum::<f64>()
        / n
}

/// Shannon entropy (bits) of a probability row.
pub fn entropy(row: &[f32]) -> f32 {
    row.iter()
        .filter(|&&p| p > 0.0)
        .map(|&p| -p * p.log2())
        .sum()
}

pub fn median(v: &[f64]) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.total_cmp(b));
    let n = s.len();
    if n % 2 == 1 {
        s[n / 2]
    } else {
        (s[n / 2 - 1] + s[n / 2]) / 2.0
    }
}

/// Precision and recall of a flagged index set against the true one.
pub fn precision_recall(flagged: &[usize], truth: &[usize]) -> (f64, f64) {
    let t: std::collections::HashSet<_> = truth.iter().collect();
    let hit = flagged.iter().filter(|i| t.contains(i)).count() as f64;
    let p = if flagged.is_empty() {
        0.0
    } else {
        hit / flagged.len() as f64
    };
    let r = if truth.is_empty() {
        0.0
    } else {
        hit / truth.len() as f64
    };
    (p, r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auc_basics() {
        assert_eq!(
            roc_auc(&[0.1, 0.2, 0.8, 0.9], &[false, false, true, true]),
            Some(1.0)
        );
        assert_eq!(
            roc_auc(&[0.9, 0.8, 0.2, 0.1], &[false, false, true, true]),
            Some(0.0)
        );
        assert_eq!(roc_auc(&[0.5, 0.5], &[false, true]), Some(0.5));
        assert_eq!(roc_auc(&[0.5], &[true]), None);
    }

    #[test]
    fn ce_of_half_is_ln2() {
        let ce = cross_entropy(&[0.5, 0.5], &[true, false]);
        assert!((ce - std::f64::consts::LN_2).abs() < 1e-9);
    }

    #[test]
    fn pr() {
        assert_eq!(precision_recall(&[1, 2, 3, 4], &[1, 2]), (0.5, 1.0));
    }
}
