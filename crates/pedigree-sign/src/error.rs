//! Typed errors for the whole crate.
//!
//! Errors are split by *who is at fault*: [`Error::Verification`] means the
//! model or bundle does not verify (exit code 1 in the CLI), every other
//! variant means the operation could not be carried out (bad key file, I/O
//! error, malformed input; exit code 2).

use std::path::PathBuf;

/// Result alias used throughout the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong while hashing, signing or verifying.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An I/O error on a specific path.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The model tree cannot be serialized under the given rules
    /// (symlink refused, non-UTF-8 name, empty model, special file...).
    #[error("model: {0}")]
    Model(String),
    /// A key, certificate or trust-root file could not be used.
    #[error("key material: {0}")]
    Key(String),
    /// The bundle is structurally invalid (not JSON, missing fields, wrong
    /// media type, oversized...). The message says which part.
    #[error("invalid bundle: {0}")]
    Bundle(String),
    /// The signature, the trust chain or the model contents did not verify.
    #[error("verification failed: {0}")]
    Verification(#[from] VerifyFailure),
    /// An option combination that cannot work.
    #[error("invalid options: {0}")]
    Options(String),
}

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }

    /// True when the model or bundle was checked and found wanting, as
    /// opposed to the check not being possible at all.
    pub fn is_verification_failure(&self) -> bool {
        matches!(self, Error::Verification(_) | Error::Bundle(_))
    }
}

/// Why a verification failed. Each variant names the offending file or
/// the part of the bundle that is wrong, so callers can print it directly.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum VerifyFailure {
    /// No signature in the envelope verified under any trusted key.
    #[error("signature does not verify: {0}")]
    BadSignature(String),
    /// The certificate chain does not lead to a trusted root, or a
    /// certificate is outside its validity period.
    #[error("certificate chain: {0}")]
    Chain(String),
    /// Sigstore keyless verification failed (tlog, SCT, identity...).
    #[error("sigstore: {0}")]
    Sigstore(String),
    /// The signed statement is not an OMS v1.0 statement.
    #[error("statement: {0}")]
    Statement(String),
    /// A file's digest differs from the signed one.
    #[error("file '{name}' has been modified (expected {expected}, got {actual})")]
    DigestMismatch {
        /// Resource name (file path, or `path:start:end` for a shard).
        name: String,
        /// Digest recorded in the signature.
        expected: String,
        /// Digest of the bytes on disk.
        actual: String,
    },
    /// A signed file is absent from the model.
    #[error("file '{0}' is signed but missing from the model")]
    MissingFile(String),
    /// The model tree cannot be enumerated under the signed rules
    /// (e.g. a symlink where the signature says symlinks were refused).
    #[error("model: {0}")]
    Model(String),
    /// The model holds a file the signature does not cover.
    #[error("file '{0}' is not covered by the signature (extra file)")]
    ExtraFile(String),
}
