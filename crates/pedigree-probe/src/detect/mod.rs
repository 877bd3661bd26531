//! Behavioural detectors. Each returns a [`Report`]: a score (higher = more suspicious), a
//! verdict and the evidence behind it, serialised as stable JSON.

pub mod clustering;
pub mod neural_cleanse;
pub mod replay;
pub mod spectral;
pub mod strip;

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Backdoored,
    Clean,
}

impl Verdict {
    pub fn from_flag(flag: bool) -> Self {
        if flag {
            Verdict::Backdoored
        } else {
            Verdict::Clean
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub detector: &'static str,
    pub model: String,
    pub score: f64,
    pub verdict: Verdict,
    pub evidence: serde_json::Value,
}

/// Robust z-scores by median absolute deviation, the statistic Neural Cleanse uses: how many
/// (normal-consistent) MADs each value lies *below* the median. Values above the median get 0.
pub fn anomaly_below_median(values: &[f64]) -> Vec<f64> {
    let med = crate::metrics::median(values);
    let dev: Vec<f64> = values.iter().map(|v| (v - med).abs()).collect();
    let mad = crate::metrics::median(&dev) * 1.4826;
    values
        .iter()
        .map(|v| {
            if *v >= med || mad <= 0.0 {
                0.0
            } else {
                (med - v) / mad
            }
        })
        .collect()
}

/// The same, for values *above* the median.
pub fn anomaly_above_median(values: &[f64]) -> Vec<f64> {
    let neg: Vec<f64> = values.iter().map(|v| -v).collect();
    anomaly_below_median(&neg)
}

#[cfg(test)]
mod tests {
    #[test]
    fn mad_flags_the_outlier() {
        let a = super::anomaly_below_median(&[10.0, 11.0, 9.0, 10.5, 9.5, 2.0]);
        assert!(a[5] > 2.0);
        assert!(a[..5].iter().all(|&x| x < 2.0));
    }
}

/// The training-set activations grouped by label, as the training-set detectors (Activation
/// Clustering, Spectral Signatures) analyse them class by class: for each class with at least
/// `min` samples, the class, its sample indices and their `idx.len() × hidden` activations.
/// `feats` is `n × hidden` and must agree with `labels`.
pub(crate) fn per_class(
    feats: &[f32],
    hidden: usize,
    labels: &[u8],
    min: usize,
) -> crate::Result<Vec<(usize, Vec<usize>, Vec<f32>)>> {
    if hidden == 0 || feats.len() != labels.len() * hidden {
        return Err(crate::ProbeError::Invalid(
            "activations and labels disagree in length".into(),
        ));
    }
    let classes = labels.iter().map(|&l| l as usize + 1).max().unwrap_or(0);
    Ok((0..classes)
        .filter_map(|c| {
            let idx: Vec<usize> = (0..labels.len())
                .filter(|&i| labels[i] as usize == c)
                .collect();
            if idx.len() < min {
                return None;
            }
            let x: Vec<f32> = idx
                .iter()
                .flat_map(|&i| feats[i * hidden..(i + 1) * hidden].iter().copied())
                .collect();
            Some((c, idx, x))
        })
        .collect())
}
