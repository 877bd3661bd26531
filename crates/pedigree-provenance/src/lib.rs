//! `pedigree-provenance`: model identity, per-tensor fingerprints, ML-BOM, model diff and lineage
//! inference from the weights. Not built yet: see the provenance issue.
