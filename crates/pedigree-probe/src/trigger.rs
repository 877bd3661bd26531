//! Triggers in the Neural Cleanse form: a mask `m` and a pattern `p` over the 28×28 image,
//! stamped as `x' = (1 - m)·x + m·p`. A BadNets patch is the special case of a binary mask over
//! a small square; a reverse-engineered trigger is a soft mask. One representation lets replay
//! use either an advisory's trigger or one recovered by Neural Cleanse.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::data::{Dataset, PIXELS, SIDE};
use crate::error::{ProbeError, Result};
use crate::rng::Rng;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Trigger {
    /// Free-form description ("badnets 4x4 at (23,23)", "neural-cleanse label 8").
    pub name: String,
    /// 784 values in [0, 1].
    pub mask: Vec<f32>,
    /// 784 values in [0, 1].
    pub pattern: Vec<f32>,
}

impl Trigger {
    /// A square patch of side `size` with its top-left corner at (`row`, `col`); `bits` gives
    /// the patch pixels row-major (true = white). Fails when it does not fit the image.
    pub fn patch(row: usize, col: usize, size: usize, bits: &[bool]) -> Result<Self> {
        if size == 0 || row + size > SIDE || col + size > SIDE || bits.len() != size * size {
            return Err(ProbeError::Invalid(format!(
                "patch {size}x{size} at ({row},{col}) with {} bits does not fit 28x28",
                bits.len()
            )));
        }
        let mut mask = vec![0.0; PIXELS];
        let mut pattern = vec![0.0; PIXELS];
        for r in 0..size {
            for c in 0..size {
                let i = (row + r) * SIDE + col + c;
                mask[i] = 1.0;
                pattern[i] = if bits[r * size + c] { 1.0 } else { 0.0 };
            }
        }
        Ok(Self {
            name: format!("badnets {size}x{size} at ({row},{col})"),
            mask,
            pattern,
        })
    }

    /// The classic BadNets checkerboard near the bottom-right corner.
    pub fn badnets_default() -> Self {
        let size = 4;
        let bits: Vec<bool> = (0..size * size)
            .map(|i| (i / size + i % size) % 2 == 0)
            .collect();
        // Unwrap-free: the constants fit by construction.
        Self::patch(SIDE - size - 1, SIDE - size - 1, size, &bits).unwrap_or_else(|_| Self::empty())
    }

    /// A random patch: random size in 3..=5, random position, random bits with at least half
    /// of them white (an all-black patch on a black background would be no trigger at all).
    pub fn random_patch(rng: &mut Rng) -> Self {
        let size = 3 + rng.below(3);
        let row = rng.below(SIDE - size + 1);
        let col = rng.below(SIDE - size + 1);
        Self::random_bits_at(rng, row, col, size)
    }

    pub fn random_bits_at(rng: &mut Rng, row: usize, col: usize, size: usize) -> Self {
        let mut bits: Vec<bool> = (0..size * size).map(|_| rng.f32() < 0.5).collect();
        let mut whites = bits.iter().filter(|b| **b).count();
        let mut i = 0;
        while whites * 2 < bits.len() {
            if !bits[i] {
                bits[i] = true;
                whites += 1;
            }
            i += 1;
        }
        Self::patch(row, col, size, &bits).unwrap_or_else(|_| Self::empty())
    }

    /// A control with the same mask moved to a random place (wrapping at the edges) and a
    /// random black/white pattern: an innocent "sticker" of exactly the same area, which also
    /// works for the soft, scattered masks Neural Cleanse recovers.
    pub fn random_control(&self, rng: &mut Rng) -> Self {
        let (dr, dc) = (rng.below(SIDE), rng.below(SIDE));
        let mut mask = vec![0.0; PIXELS];
        let mut pattern = vec![0.0; PIXELS];
        for r in 0..SIDE {
            for c in 0..SIDE {
                let to = ((r + dr) % SIDE) * SIDE + (c + dc) % SIDE;
                mask[to] = self.mask[r * SIDE + c];
                pattern[to] = if rng.f32() < 0.5 { 1.0 } else { 0.0 };
            }
        }
        Self {
            name: format!("random control (mask shifted by {dr},{dc})"),
            mask,
            pattern,
        }
    }

    fn empty() -> Self {
        Self {
            name: "empty".into(),
            mask: vec![0.0; PIXELS],
            pattern: vec![0.0; PIXELS],
        }
    }

    /// The L1 norm of the mask: Neural Cleanse's measure of trigger size.
    pub fn l1(&self) -> f32 {
        self.mask.iter().sum()
    }

    pub fn validate(&self) -> Result<()> {
        let ok = |v: &[f32]| {
            v.len() == PIXELS && v.iter().all(|x| x.is_finite() && (0.0..=1.0).contains(x))
        };
        if ok(&self.mask) && ok(&self.pattern) {
            Ok(())
        } else {
            Err(ProbeError::Invalid(
                "trigger needs 784 mask and pattern values in [0,1]".into(),
            ))
        }
    }

    pub fn stamp(&self, image: &mut [f32]) {
        for ((x, m), p) in image.iter_mut().zip(&self.mask).zip(&self.pattern) {
            *x = (1.0 - m) * *x + m * p;
        }
    }

    /// A copy of `d` with every image stamped.
    pub fn stamp_all(&self, d: &Dataset) -> Dataset {
        let mut out = d.clone();
        for i in 0..out.len() {
            self.stamp(out.image_mut(i));
        }
        out
    }

    pub fn load(path: &Path) -> Result<Self> {
        let s = std::fs::read(path).map_err(|e| ProbeError::io(path, e))?;
        let t: Trigger = serde_json::from_slice(&s).map_err(|e| ProbeError::Json {
            path: path.into(),
            source: e,
        })?;
        t.validate()?;
        Ok(t)
    }

    pub fn save(&self, path: &Path) -> Result<()> {
        let s = serde_json::to_vec(self).map_err(|e| ProbeError::Json {
            path: path.into(),
            source: e,
        })?;
        std::fs::write(path, s).map_err(|e| ProbeError::io(path, e))
    }
}

/// BadNets poisoning: stamps `rate × n` randomly chosen samples whose label is not `target`
/// and relabels them `target`. Returns the poisoned set and the indices that were poisoned.
pub fn poison(
    d: &Dataset,
    trigger: &Trigger,
    target: u8,
    rate: f32,
    rng: &mut Rng,
) -> (Dataset, Vec<usize>) {
    let mut candidates: Vec<usize> = (0..d.len()).filter(|&i| d.labels[i] != target).collect();
    rng.shuffle(&mut candidates);
    let n = ((rate.clamp(0.0, 1.0) * d.len() as f32).round() as usize).min(candidates.len());
    let mut chosen = candidates[..n].to_vec();
    chosen.sort_unstable();
    let mut out = d.clone();
    for &i in &chosen {
        trigger.stamp(out.image_mut(i));
        out.labels[i] = target;
    }
    (out, chosen)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patch_rejects_out_of_bounds() {
        assert!(Trigger::patch(26, 26, 4, &[true; 16]).is_err());
        assert!(Trigger::patch(0, 0, 2, &[true; 3]).is_err());
        let t = Trigger::badnets_default();
        assert_eq!(t.l1(), 16.0);
        t.validate().unwrap();
    }

    #[test]
    fn poison_relabels_only_non_target() {
        let mut d = Dataset::default();
        for i in 0..100u8 {
            d.push(&[0.0; PIXELS], i % 10);
        }
        let (p, idx) = poison(&d, &Trigger::badnets_default(), 3, 0.1, &mut Rng::new(1));
        assert_eq!(idx.len(), 10);
        for &i in &idx {
            assert_ne!(d.labels[i], 3);
            assert_eq!(p.labels[i], 3);
            assert!(p.image(i).iter().any(|&x| x > 0.5));
        }
    }

    #[test]
    fn control_has_same_size() {
        let t = Trigger::badnets_default();
        let c = t.random_control(&mut Rng::new(3));
        assert_eq!(c.l1(), t.l1());
    }
}
