//! `pedigree-probe`: behavioural backdoor analysis and the cascade lab.
//!
//! Static scanning cannot see a backdoor that lives in the weights of a feature extractor; only
//! behaviour can. This crate reproduces such an attack for real (BadNets poisoning of a small
//! Fashion-MNIST CNN, then generations of descendants that freeze the extractor) and detects it:
//!
//! - [`detect::replay`]: replay a known trigger on every model of a family;
//! - [`detect::neural_cleanse`]: reverse-engineer a trigger per label, flag the outlier label;
//! - [`detect::strip`]: entropy of superimposed inputs (input-level filter);
//! - [`detect::clustering`] and [`detect::spectral`]: find the poisoned samples of a training set.
//!
//! The tensor runtime is `burn` with its pure-Rust `flex` CPU backend (see `bench/probe`).
//! Everything that draws random numbers takes a seed and uses [`rng::Rng`], never the backend's
//! generator, so a run is reproducible.

pub mod data;
pub mod detect;
pub mod error;
pub mod lab;
pub mod linalg;
pub mod metrics;
pub mod model;
pub mod npy;
pub mod rng;
pub mod store;
pub mod train;
pub mod trigger;

pub use error::{ProbeError, Result};
