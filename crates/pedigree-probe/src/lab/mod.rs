//! The lab: reproduce a cascaded BadNets infection for real, and score detectors on a
//! population of clean and infected models.

pub mod cascade;
pub mod mitigate;
pub mod population;

use serde::{Deserialize, Serialize};

use crate::data::{Dataset, FashionMnist, Task};
use crate::train::TrainConfig;
use crate::trigger::Trigger;

/// Sizes and schedules shared by the lab commands. The defaults are the full lab; tests use
/// [`LabConfig::reduced`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LabConfig {
    pub seed: u64,
    /// Use at most this many training / test images (the committed subset has 2000 / 500).
    pub train_limit: usize,
    pub test_limit: usize,
    pub base: TrainConfig,
    pub head: TrainConfig,
    pub finetune: TrainConfig,
    pub target: u8,
    pub poison_rate: f32,
    pub trigger: Trigger,
}

impl Default for LabConfig {
    fn default() -> Self {
        Self {
            seed: 1,
            train_limit: 60_000,
            test_limit: 2_000,
            base: TrainConfig {
                epochs: 3,
                batch: 64,
                lr: 2e-3,
                seed: 1,
            },
            head: TrainConfig {
                epochs: 4,
                batch: 128,
                lr: 5e-3,
                seed: 2,
            },
            finetune: TrainConfig {
                epochs: 2,
                batch: 64,
                lr: 1e-3,
                seed: 3,
            },
            target: 8,
            poison_rate: 0.05,
            trigger: Trigger::badnets_default(),
        }
    }
}

impl LabConfig {
    /// Small enough for a unit test on two cores, large enough that the effect is clear.
    pub fn reduced() -> Self {
        Self {
            train_limit: 2_000,
            test_limit: 500,
            base: TrainConfig {
                epochs: 15,
                batch: 32,
                lr: 3e-3,
                seed: 1,
            },
            head: TrainConfig {
                epochs: 8,
                batch: 64,
                lr: 1e-2,
                seed: 2,
            },
            finetune: TrainConfig {
                epochs: 3,
                batch: 32,
                lr: 1e-3,
                seed: 3,
            },
            poison_rate: 0.1,
            ..Self::default()
        }
    }

    pub fn limit(&self, data: &FashionMnist) -> FashionMnist {
        FashionMnist {
            train: data.train.take(self.train_limit),
            test: data.test.take(self.test_limit),
        }
    }
}

/// The tasks descendants are fine-tuned on. Every task keeps the base's target class (bag),
/// so attack success keeps a meaning downstream.
pub fn coarse_task() -> Task {
    Task::grouped(
        "apparel-coarse",
        &[&[0, 2, 4, 6], &[1, 3], &[5, 7, 9], &[8]],
    )
}
pub fn subset_task() -> Task {
    Task::grouped("shoes-and-bags", &[&[5], &[7], &[9], &[8], &[1]])
}
pub fn bag_task() -> Task {
    Task::grouped("is-bag", &[&[0, 1, 2, 3, 4, 5, 6, 7, 9], &[8]])
}

/// One model in a family, as recorded in `ground-truth.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ModelTruth {
    pub name: String,
    pub dir: String,
    pub family: String,
    pub generation: u8,
    pub parent: Option<String>,
    pub infected: bool,
    pub task: Task,
    pub head: String,
    /// "root", "truthful", "silent" or "lying".
    pub card: String,
    pub declared_base: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GroundTruth {
    pub models: Vec<ModelTruth>,
    pub trigger: Trigger,
    pub target: u8,
    pub poison_rate: f32,
    /// Indices into the lab's training split that the infected base trained on, and which of
    /// *those* (positions in that list) were poisoned.
    pub base_train_indices: Vec<usize>,
    pub poisoned_positions: Vec<usize>,
    pub config: LabConfig,
}

impl GroundTruth {
    /// Rebuilds the infected base's poisoned training set (what AC and spectral inspect).
    /// Fails when the ground truth does not fit `data` (another data directory or limit).
    pub fn poisoned_training_set(&self, data: &FashionMnist) -> crate::Result<Dataset> {
        if self
            .base_train_indices
            .iter()
            .any(|&i| i >= data.train.len())
        {
            return Err(crate::ProbeError::Invalid(
                "ground truth indexes past the training data: wrong --data or lab configuration"
                    .into(),
            ));
        }
        self.trigger.validate()?;
        let mut d = data.train.select(&self.base_train_indices);
        for &p in &self.poisoned_positions {
            if p < d.len() {
                self.trigger.stamp(d.image_mut(p));
                d.labels[p] = self.target;
            }
        }
        Ok(d)
    }
}
