//! `pedigree-provenance`: model identity, per-tensor fingerprints, ML-BOM, model diff and
//! lineage inference from the weights.
//!
//! * [`fingerprint`]: OMS v1.0 model id (files enumerated and digests combined by
//!   `pedigree-sign`; each weight file's SHA-256 taken from the bytes the tensor readers already
//!   mapped, beside the tensor work: one read), per-tensor exact digests, multiset hashes,
//!   embedding row digests and SimHash sketches; a small versioned JSON file.
//! * [`diff`]: tensors matched by shape and content, classified (identical, cast-, quantization-
//!   equivalent, pruned, changed with cosine / relative L2 / delta rank), one model relation.
//! * [`index`]: exact and LSH keys, so lineage only compares models that share something.
//! * [`lineage`]: verified, oriented edges, one best tree per family, card findings. Each model
//!   is read once; pairs are compared from per-tensor samples, tensor-pair results are shared
//!   across pairs ([`diff::PairCache`]), and delta spectra are computed only where an `edit`
//!   is possible ([`diff::Spectra::AsNeeded`]).
//! * [`bom`]: CycloneDX 1.6 and SPDX 3.0.1 (AI profile) documents.

pub mod bom;
pub mod card;
pub mod diff;
pub mod fingerprint;
pub mod index;
pub mod lineage;
pub mod model;

pub use diff::{DiffReport, Relation, diff};
pub use fingerprint::{Fingerprint, fingerprint};
pub use lineage::{LineageReport, lineage};
pub use model::Model;
