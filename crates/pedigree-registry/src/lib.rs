//! `pedigree-registry`: the trusted model registry (quarantine, scan, verify, lineage, policy,
//! cascade containment). Not built yet: see the registry issue.
