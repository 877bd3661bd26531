//! The small CNN every lab model uses, and its plain-vector weights.
//!
//! `conv(1→c1,3) → relu → pool2 → conv(c1→c2,3) → relu → pool2 → fc(→hidden) → relu → head`.
//! The *feature extractor* is everything before `head`; descendants freeze it. Weights are kept
//! in PyTorch's layout (`[out, in]` for linear layers) so the safetensors files read naturally
//! in other tools; burn's `Linear` stores `[in, out]`, so we transpose at the boundary.

use std::collections::BTreeMap;

use burn::module::Param;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::pool::{MaxPool2d, MaxPool2dConfig};
use burn::nn::{Linear, LinearConfig};
use burn::prelude::*;
use burn::tensor::activation::relu;
use serde::{Deserialize, Serialize};

use crate::data::{PIXELS, SIDE};
use crate::error::{ProbeError, Result};
use crate::rng::Rng;

/// Shape of the network; written to `config.json`.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub struct Arch {
    pub conv1: usize,
    pub conv2: usize,
    pub hidden: usize,
    pub classes: usize,
}

impl Arch {
    pub fn lab(classes: usize) -> Self {
        Self {
            conv1: 8,
            conv2: 16,
            hidden: 64,
            classes,
        }
    }
    /// 28 → conv3 → 26 → pool → 13 → conv3 → 11 → pool → 5.
    pub fn flat(&self) -> usize {
        self.conv2 * 5 * 5
    }
    pub fn shapes(&self) -> Vec<(&'static str, Vec<usize>)> {
        vec![
            ("conv1.weight", vec![self.conv1, 1, 3, 3]),
            ("conv1.bias", vec![self.conv1]),
            ("conv2.weight", vec![self.conv2, self.conv1, 3, 3]),
            ("conv2.bias", vec![self.conv2]),
            ("fc1.weight", vec![self.hidden, self.flat()]),
            ("fc1.bias", vec![self.hidden]),
            ("head.weight", vec![self.classes, self.hidden]),
            ("head.bias", vec![self.classes]),
        ]
    }
    pub fn validate(&self) -> Result<()> {
        let ok = (1..=256).contains(&self.conv1)
            && (1..=256).contains(&self.conv2)
            && (1..=4096).contains(&self.hidden)
            && (2..=1000).contains(&self.classes);
        if ok {
            Ok(())
        } else {
            Err(ProbeError::Invalid(format!(
                "unsupported architecture {self:?}"
            )))
        }
    }
}

/// Weights as plain vectors, keyed by the names in [`Arch::shapes`].
#[derive(Debug, Clone, PartialEq)]
pub struct Weights {
    pub arch: Arch,
    pub tensors: BTreeMap<String, Vec<f32>>,
}

impl Weights {
    /// PyTorch's default initialisation (uniform ±1/√fan_in), from our own generator.
    pub fn init(arch: Arch, rng: &mut Rng) -> Self {
        let mut tensors = BTreeMap::new();
        let shapes = arch.shapes();
        for (name, shape) in &shapes {
            // A bias uses the fan-in of its layer's weight, which precedes it in `shapes`.
            let layer = name.split('.').next().unwrap_or("");
            let fan_in: usize = shapes
                .iter()
                .find(|(n, _)| n.starts_with(layer) && n.ends_with(".weight"))
                .map(|(_, s)| s[1..].iter().product())
                .unwrap_or(1);
            let k = 1.0 / (fan_in.max(1) as f32).sqrt();
            let n: usize = shape.iter().product();
            let v: Vec<f32> = (0..n).map(|_| (rng.f32() * 2.0 - 1.0) * k).collect();
            tensors.insert(name.to_string(), v);
        }
        Self { arch, tensors }
    }

    pub fn get(&self, name: &str) -> Result<&Vec<f32>> {
        self.tensors
            .get(name)
            .ok_or_else(|| ProbeError::Invalid(format!("missing tensor {name}")))
    }

    /// Checks that every tensor is present with the size the architecture implies.
    pub fn validate(&self) -> Result<()> {
        self.arch.validate()?;
        for (name, shape) in self.arch.shapes() {
            let v = self.get(name)?;
            let n: usize = shape.iter().product();
            if v.len() != n || v.iter().any(|x| !x.is_finite()) {
                return Err(ProbeError::Invalid(format!(
                    "tensor {name}: bad size or non-finite values"
                )));
            }
        }
        Ok(())
    }

    /// This model's extractor with another head (used when a descendant retrains the head).
    pub fn with_head(&self, classes: usize, weight: Vec<f32>, bias: Vec<f32>) -> Self {
        let mut w = self.clone();
        w.arch.classes = classes;
        w.tensors.insert("head.weight".into(), weight);
        w.tensors.insert("head.bias".into(), bias);
        w
    }
}

#[derive(Module, Debug)]
pub struct Net {
    pub conv1: Conv2d,
    pub conv2: Conv2d,
    pub pool: MaxPool2d,
    pub fc1: Linear,
    pub head: Linear,
}

/// The plain CPU device used for inference.
pub fn cpu() -> Device {
    Device::flex()
}

/// The same device with autodiff, for training and input gradients.
pub fn grad_device() -> Device {
    Device::flex().autodiff()
}

fn tensor<const D: usize>(v: &[f32], shape: [usize; D], dev: &Device) -> Tensor<D> {
    Tensor::<D>::from_data(TensorData::new(v.to_vec(), shape), dev)
}

fn transpose(v: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    let mut out = vec![0.0; v.len()];
    for r in 0..rows {
        for c in 0..cols {
            out[c * rows + r] = v[r * cols + c];
        }
    }
    out
}

pub(crate) fn to_vec<const D: usize>(t: Tensor<D>) -> Result<Vec<f32>> {
    t.into_data()
        .try_into_vec::<f32>()
        .map_err(|e| ProbeError::Tensor(format!("{e:?}")))
}

pub(crate) fn conv(w: &[f32], b: &[f32], cin: usize, cout: usize, dev: &Device) -> Conv2d {
    let mut c = Conv2dConfig::new([cin, cout], [3, 3]).init(dev);
    c.weight = Param::from_tensor(tensor(w, [cout, cin, 3, 3], dev));
    c.bias = Some(Param::from_tensor(tensor(b, [cout], dev)));
    c
}

/// A linear layer from PyTorch-layout `[out, in]` weights.
pub(crate) fn linear(w: &[f32], b: &[f32], din: usize, dout: usize, dev: &Device) -> Linear {
    let mut l = LinearConfig::new(din, dout).init(dev);
    l.weight = Param::from_tensor(tensor(&transpose(w, dout, din), [din, dout], dev));
    l.bias = Some(Param::from_tensor(tensor(b, [dout], dev)));
    l
}

pub(crate) fn linear_weights(l: &Linear) -> Result<(Vec<f32>, Vec<f32>)> {
    let [din, dout] = l.weight.val().dims();
    let w = transpose(&to_vec(l.weight.val())?, din, dout);
    let b = match &l.bias {
        Some(b) => to_vec(b.val())?,
        None => vec![0.0; dout],
    };
    Ok((w, b))
}

impl Net {
    pub fn from_weights(w: &Weights, dev: &Device) -> Result<Self> {
        w.validate()?;
        let a = w.arch;
        Ok(Self {
            conv1: conv(
                w.get("conv1.weight")?,
                w.get("conv1.bias")?,
                1,
                a.conv1,
                dev,
            ),
            conv2: conv(
                w.get("conv2.weight")?,
                w.get("conv2.bias")?,
                a.conv1,
                a.conv2,
                dev,
            ),
            pool: MaxPool2dConfig::new([2, 2]).with_strides([2, 2]).init(),
            fc1: linear(
                w.get("fc1.weight")?,
                w.get("fc1.bias")?,
                a.flat(),
                a.hidden,
                dev,
            ),
            head: linear(
                w.get("head.weight")?,
                w.get("head.bias")?,
                a.hidden,
                a.classes,
                dev,
            ),
        })
    }

    pub fn to_weights(&self) -> Result<Weights> {
        let [c1, _, _, _] = self.conv1.weight.val().dims();
        let [c2, _, _, _] = self.conv2.weight.val().dims();
        let (fw, fb) = linear_weights(&self.fc1)?;
        let (hw, hb) = linear_weights(&self.head)?;
        let arch = Arch {
            conv1: c1,
            conv2: c2,
            hidden: fb.len(),
            classes: hb.len(),
        };
        let bias = |c: &Conv2d| match &c.bias {
            Some(b) => to_vec(b.val()),
            None => Ok(vec![0.0; c.weight.val().dims()[0]]),
        };
        let mut t = BTreeMap::new();
        t.insert("conv1.weight".into(), to_vec(self.conv1.weight.val())?);
        t.insert("conv1.bias".into(), bias(&self.conv1)?);
        t.insert("conv2.weight".into(), to_vec(self.conv2.weight.val())?);
        t.insert("conv2.bias".into(), bias(&self.conv2)?);
        t.insert("fc1.weight".into(), fw);
        t.insert("fc1.bias".into(), fb);
        t.insert("head.weight".into(), hw);
        t.insert("head.bias".into(), hb);
        Ok(Weights { arch, tensors: t })
    }

    /// Output of the last convolution after relu, before pooling: what fine-pruning ranks.
    pub fn conv2_maps(&self, x: Tensor<4>) -> Tensor<4> {
        let x = self.pool.forward(relu(self.conv1.forward(x)));
        relu(self.conv2.forward(x))
    }

    /// Penultimate activations: the feature extractor's output.
    pub fn features(&self, x: Tensor<4>) -> Tensor<2> {
        let x = self.pool.forward(self.conv2_maps(x));
        let x: Tensor<2> = x.flatten(1, 3);
        relu(self.fc1.forward(x))
    }

    pub fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        self.head.forward(self.features(x))
    }
}

/// An inference handle: the network on the plain CPU device.
pub struct Model {
    pub net: Net,
    pub arch: Arch,
}

const INFER_BATCH: usize = 500;

impl Model {
    pub fn new(w: &Weights) -> Result<Self> {
        Ok(Self {
            net: Net::from_weights(w, &cpu())?,
            arch: w.arch,
        })
    }

    fn batched(
        &self,
        images: &[f32],
        width: usize,
        f: impl Fn(&Net, Tensor<4>) -> Tensor<2>,
    ) -> Result<Vec<f32>> {
        if images.len() % PIXELS != 0 {
            return Err(ProbeError::Invalid(
                "image buffer is not a multiple of 784".into(),
            ));
        }
        let n = images.len() / PIXELS;
        let dev = cpu();
        let mut out = Vec::with_capacity(n * width);
        for start in (0..n).step_by(INFER_BATCH) {
            let b = INFER_BATCH.min(n - start);
            let x = tensor(
                &images[start * PIXELS..(start + b) * PIXELS],
                [b, 1, SIDE, SIDE],
                &dev,
            );
            out.extend(to_vec(f(&self.net, x))?);
        }
        Ok(out)
    }

    /// Logits, `n × classes`.
    pub fn logits(&self, images: &[f32]) -> Result<Vec<f32>> {
        self.batched(images, self.arch.classes, |n, x| n.forward(x))
    }

    /// Penultimate activations, `n × hidden`.
    pub fn features(&self, images: &[f32]) -> Result<Vec<f32>> {
        self.batched(images, self.arch.hidden, |n, x| n.features(x))
    }

    /// Softmax probabilities, `n × classes`.
    pub fn probs(&self, images: &[f32]) -> Result<Vec<f32>> {
        let mut l = self.logits(images)?;
        for row in l.chunks_mut(self.arch.classes) {
            softmax_in_place(row);
        }
        Ok(l)
    }

    pub fn predict(&self, images: &[f32]) -> Result<Vec<u8>> {
        let l = self.logits(images)?;
        Ok(l.chunks(self.arch.classes).map(argmax).collect())
    }

    /// Mean activation of each last-conv channel over `images`.
    pub fn conv2_channel_means(&self, images: &[f32]) -> Result<Vec<f32>> {
        let c = self.arch.conv2;
        let per = self.batched(images, c, |n, x| {
            let m = n.conv2_maps(x);
            let [b, ch, h, w] = m.dims();
            m.reshape([b, ch, h * w]).mean_dim(2).reshape([b, ch])
        })?;
        let n = (per.len() / c).max(1);
        let mut means = vec![0.0; c];
        for row in per.chunks(c) {
            for (m, v) in means.iter_mut().zip(row) {
                *m += v / n as f32;
            }
        }
        Ok(means)
    }
}

pub fn softmax_in_place(row: &mut [f32]) {
    let max = row.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
    let mut sum = 0.0;
    for x in row.iter_mut() {
        *x = (*x - max).exp();
        sum += *x;
    }
    for x in row.iter_mut() {
        *x /= sum;
    }
}

pub fn argmax(row: &[f32]) -> u8 {
    let mut best = 0;
    for (i, &v) in row.iter().enumerate() {
        if v > row[best] {
            best = i;
        }
    }
    best as u8
}
