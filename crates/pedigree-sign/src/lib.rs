//! `pedigree-sign`: OpenSSF Model Signing v1.0 -- manifest hashing, signing and verification.
