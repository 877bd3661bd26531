//! `pedigree-provenance`: model identity, per-tensor fingerprints, ML-BOM, model diff and
//! lineage inference from the weights.
//!
//! * [`fingerprint`]: OMS v1.0 model id (computed by `pedigree-sign`), per-tensor exact digests,
//!   multiset hashes, embedding row digests and SimHash sketches; a small versioned JSON file.
//! * [`diff`]: tensors matched by shape and content, classified (identical, cast-, quantization-
//!   equivalent, pruned, changed with cosine / relative L2 / delta rank), one model relation.
//! * [`index`]: exact and LSH keys, so lineage only compares models that share something.
//! * [`lineage`]: verified, oriented edges, one best tree per family, card findings.
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
