//! `pedigree-sign`: OpenSSF Model Signing (OMS) v1.0 -- manifest hashing,
//! signing and verification, interoperable with the reference
//! `model_signing` tool.
//!
//! * [`manifest`]: model identity without keys (enumeration, per-file or
//!   per-shard digests, root digest).
//! * [`sign_model`] / [`sign_manifest`]: key and certificate signing.
//! * [`verify_model`] / [`verify_bundle`]: key, certificate-chain and
//!   Sigstore keyless (offline) verification, returning the signer.
//!
//! Where the spec and the reference tool disagree, we sign by the spec and
//! verify leniently; see `DIVERGENCES.md` in this crate.

pub mod bundle;
pub mod error;
pub mod keys;
pub mod manifest;
pub mod sign;
pub mod sigstore;
pub mod verify;
pub mod x509;

pub use bundle::{Bundle, Flavor, Statement};
pub use error::{Error, Result, VerifyFailure};
pub use keys::{PrivateKey, PublicKey};
pub use manifest::{HashAlgorithm, Manifest, Method, Serialization};
pub use sign::{SignOptions, Signer, sign_manifest, sign_model};
pub use sigstore::{SigstoreIdentity, SigstoreTrust};
pub use verify::{
    SignerIdentity, TrustStore, Verified, VerifiedBundle, VerifyOptions, verify_bundle,
    verify_model,
};
pub use x509::Cert;
