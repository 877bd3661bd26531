//! `pedigree-scan`
