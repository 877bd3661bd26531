//! Training loops: the whole network (base models, full fine-tuning) and the head alone on a
//! frozen extractor (descendants, head-only fine-tuning). Fine-pruning lives here too because it
//! is "prune, then train".

use burn::nn::loss::CrossEntropyLossConfig;
use burn::optim::{AdamConfig, GradientsParams};
use burn::prelude::*;
use serde::{Deserialize, Serialize};

use crate::data::{Dataset, PIXELS, SIDE, Task};
use crate::error::{ProbeError, Result};
use crate::model::{self, Model, Net, Weights};
use crate::rng::Rng;

#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct TrainConfig {
    pub epochs: usize,
    pub batch: usize,
    pub lr: f64,
    pub seed: u64,
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            epochs: 2,
            batch: 64,
            lr: 2e-3,
            seed: 0,
        }
    }
}

fn batches(n: usize, batch: usize, rng: &mut Rng) -> Vec<Vec<usize>> {
    let mut idx: Vec<usize> = (0..n).collect();
    rng.shuffle(&mut idx);
    idx.chunks(batch.max(1)).map(|c| c.to_vec()).collect()
}

fn check(data: &Dataset, classes: usize, cfg: &TrainConfig) -> Result<()> {
    if data.is_empty() {
        return Err(ProbeError::Invalid("empty training set".into()));
    }
    if data.labels.iter().any(|&l| l as usize >= classes) {
        return Err(ProbeError::Invalid(
            "a label is outside the model's classes".into(),
        ));
    }
    if cfg.batch == 0 || !(cfg.lr > 0.0) {
        return Err(ProbeError::Invalid(
            "batch and learning rate must be positive".into(),
        ));
    }
    Ok(())
}

/// Trains every layer with Adam and cross-entropy, starting from `init`.
pub fn train_full(init: &Weights, data: &Dataset, cfg: &TrainConfig) -> Result<Weights> {
    check(data, init.arch.classes, cfg)?;
    let dev = model::grad_device();
    let mut net = Net::from_weights(init, &dev)?;
    let mut opt = AdamConfig::new().init();
    let loss_fn = CrossEntropyLossConfig::new().init(&dev);
    let mut rng = Rng::new(cfg.seed ^ 0xF011);
    for epoch in 0..cfg.epochs {
        let mut total = 0.0;
        let mut steps = 0;
        for b in batches(data.len(), cfg.batch, &mut rng) {
            let mut xs = Vec::with_capacity(b.len() * PIXELS);
            let mut ys = Vec::with_capacity(b.len());
            for &i in &b {
                xs.extend_from_slice(data.image(i));
                ys.push(data.labels[i] as i64);
            }
            let x = Tensor::<4>::from_data(TensorData::new(xs, [b.len(), 1, SIDE, SIDE]), &dev);
            let y = Tensor::<1, Int>::from_data(TensorData::new(ys, [b.len()]), &dev);
            let loss = loss_fn.forward(net.forward(x), y);
            if steps % 50 == 0 {
                total += model::to_vec(loss.clone().detach())?
                    .first()
                    .copied()
                    .unwrap_or(0.0);
            }
            let grads = GradientsParams::from_grads(loss.backward(), &net);
            net = opt.step(cfg.lr, net, grads);
            steps += 1;
        }
        tracing::debug!(epoch, steps, sampled_loss = total, "full training epoch");
    }
    net.to_weights()
}

/// How a descendant's new head starts.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub enum HeadInit {
    /// Fresh random weights from this seed.
    Fresh(u64),
    /// Row `k` is the mean of the parent's rows for the parent labels that new label `k`
    /// covers, so a relabelled task starts from what the parent already knew.
    FromParent,
}

/// The head rows a child task inherits: for each child label, the mean of the parent rows of
/// the parent labels it covers (through the original classes both tasks are defined on).
pub fn inherited_head(
    parent: &Weights,
    parent_task: &Task,
    child: &Task,
) -> Result<(Vec<f32>, Vec<f32>)> {
    let h = parent.arch.hidden;
    let pw = parent.get("head.weight")?;
    let pb = parent.get("head.bias")?;
    let mut w = vec![0.0; child.num_classes * h];
    let mut b = vec![0.0; child.num_classes];
    for k in 0..child.num_classes {
        let mut rows: Vec<usize> = (0..10u8)
            .filter(|&c| child.label(c) == Some(k as u8))
            .filter_map(|c| parent_task.label(c).map(|l| l as usize))
            .collect();
        rows.sort_unstable();
        rows.dedup();
        if rows.is_empty() {
            continue;
        }
        for &r in &rows {
            for j in 0..h {
                w[k * h + j] += pw[r * h + j] / rows.len() as f32;
            }
            b[k] += pb[r] / rows.len() as f32;
        }
    }
    Ok((w, b))
}

/// Trains only a new head on top of `extractor`'s frozen features. Because the extractor does
/// not change, its features are computed once and the head trains on them directly, which is
/// what freezing means and about a hundred times cheaper than back-propagating through it.
pub fn train_head(
    extractor: &Weights,
    head_w: Vec<f32>,
    head_b: Vec<f32>,
    classes: usize,
    data: &Dataset,
    cfg: &TrainConfig,
) -> Result<Weights> {
    check(data, classes, cfg)?;
    let hidden = extractor.arch.hidden;
    let feats = Model::new(extractor)?.features(&data.images)?;
    let dev = model::grad_device();
    let mut head = model::linear(&head_w, &head_b, hidden, classes, &dev);
    let mut opt = AdamConfig::new().init();
    let loss_fn = CrossEntropyLossConfig::new().init(&dev);
    let mut rng = Rng::new(cfg.seed ^ 0x4EAD);
    for _ in 0..cfg.epochs {
        for b in batches(data.len(), cfg.batch, &mut rng) {
            let mut xs = Vec::with_capacity(b.len() * hidden);
            let mut ys = Vec::with_capacity(b.len());
            for &i in &b {
                xs.extend_from_slice(&feats[i * hidden..(i + 1) * hidden]);
                ys.push(data.labels[i] as i64);
            }
            let x = Tensor::<2>::from_data(TensorData::new(xs, [b.len(), hidden]), &dev);
            let y = Tensor::<1, Int>::from_data(TensorData::new(ys, [b.len()]), &dev);
            let loss = loss_fn.forward(head.forward(x), y);
            let grads = GradientsParams::from_grads(loss.backward(), &head);
            head = opt.step(cfg.lr, head, grads);
        }
    }
    let (w, b) = model::linear_weights(&head)?;
    Ok(extractor.with_head(classes, w, b))
}

/// A fresh head for `classes` outputs.
pub fn fresh_head(hidden: usize, classes: usize, seed: u64) -> (Vec<f32>, Vec<f32>) {
    let mut rng = Rng::new(seed);
    let k = 1.0 / (hidden as f32).sqrt();
    let w = (0..classes * hidden)
        .map(|_| (rng.f32() * 2.0 - 1.0) * k)
        .collect();
    let b = (0..classes).map(|_| (rng.f32() * 2.0 - 1.0) * k).collect();
    (w, b)
}

/// Result of fine-pruning.
#[derive(Debug, Clone)]
pub struct Pruned {
    pub weights: Weights,
    pub pruned_channels: Vec<usize>,
}

/// Fine-pruning (Liu et al., 2018): remove the last-conv channels least active on clean data,
/// one at a time, while clean accuracy on `val` stays within `max_drop` of the start; then
/// fine-tune the whole network on `clean`. A pruned channel has zero weights and bias, so its
/// relu output and every gradient through it are zero: fine-tuning cannot revive it.
pub fn fine_prune(
    w: &Weights,
    clean: &Dataset,
    val: &Dataset,
    max_drop: f32,
    cfg: &TrainConfig,
) -> Result<Pruned> {
    let means = Model::new(w)?.conv2_channel_means(&clean.images)?;
    let mut order: Vec<usize> = (0..means.len()).collect();
    order.sort_by(|&a, &b| means[a].total_cmp(&means[b]));
    let base_acc = crate::metrics::accuracy(&Model::new(w)?, val)?;
    let mut current = w.clone();
    let mut pruned = Vec::new();
    // Keep at least a quarter of the channels: the paper stops well before the network dies.
    for &ch in order.iter().take(means.len() * 3 / 4) {
        let candidate = zero_channel(&current, ch)?;
        let acc = crate::metrics::accuracy(&Model::new(&candidate)?, val)?;
        if base_acc - acc > max_drop {
            break;
        }
        current = candidate;
        pruned.push(ch);
    }
    tracing::debug!(?pruned, "fine-pruning removed channels");
    let tuned = train_full(&current, clean, cfg)?;
    Ok(Pruned {
        weights: tuned,
        pruned_channels: pruned,
    })
}

fn zero_channel(w: &Weights, ch: usize) -> Result<Weights> {
    let mut out = w.clone();
    let per = w.arch.conv1 * 9;
    let cw = out
        .tensors
        .get_mut("conv2.weight")
        .ok_or_else(|| ProbeError::Invalid("no conv2".into()))?;
    cw[ch * per..(ch + 1) * per]
        .iter_mut()
        .for_each(|x| *x = 0.0);
    let cb = out
        .tensors
        .get_mut("conv2.bias")
        .ok_or_else(|| ProbeError::Invalid("no conv2".into()))?;
    cb[ch] = 0.0;
    Ok(out)
}
