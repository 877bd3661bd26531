//! Sigstore keyless verification, offline, delegated to the
//! `sigstore-verify` crate: Fulcio chain at the tlog integrated time, SCT,
//! Rekor inclusion proof / checkpoint / inclusion promise, DSSE signature,
//! and the tlog entry's consistency with the envelope.
//!
//! The trust root is pinned: by default the Sigstore public-good
//! `trusted_root.json` that `sigstore-trust-root` embeds at build time
//! (no TUF refresh, no network). Callers may pass their own.

use sigstore_verify::trust_root::{SIGSTORE_PRODUCTION_TRUSTED_ROOT, TrustedRoot};
use sigstore_verify::types::Sha256Hash;
use sigstore_verify::{VerificationPolicy, Verifier};

use crate::error::{Error, Result, VerifyFailure};

/// What to trust and require for keyless bundles.
#[derive(Debug, Clone, Default)]
pub struct SigstoreTrust {
    /// `trusted_root.json` text; `None` uses the embedded public-good root.
    pub trusted_root_json: Option<String>,
    /// Required certificate identity (SAN email or URI), if any.
    pub identity: Option<String>,
    /// Required OIDC issuer, if any.
    pub issuer: Option<String>,
}

/// Identity proven by a keyless bundle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SigstoreIdentity {
    /// SAN of the Fulcio certificate.
    pub identity: Option<String>,
    /// OIDC issuer recorded in the certificate.
    pub issuer: Option<String>,
    /// Rekor integrated time (Unix seconds), when present.
    pub integrated_time: Option<i64>,
}

/// Verify a keyless bundle whose in-toto subject is `subject_digest`.
pub fn verify(
    bundle_json: &str,
    subject_digest: &[u8],
    trust: &SigstoreTrust,
) -> Result<SigstoreIdentity> {
    let root_json = trust
        .trusted_root_json
        .as_deref()
        .unwrap_or(SIGSTORE_PRODUCTION_TRUSTED_ROOT);
    let root = TrustedRoot::from_json(root_json)
        .map_err(|e| Error::Key(format!("sigstore trusted root: {e}")))?;
    let verifier =
        Verifier::new(&root).map_err(|e| Error::Key(format!("sigstore trusted root: {e}")))?;
    let bundle = sigstore_verify::types::Bundle::from_json(bundle_json)
        .map_err(|e| Error::Bundle(format!("sigstore bundle: {e}")))?;
    let mut policy = VerificationPolicy::any_identity();
    if let Some(id) = &trust.identity {
        policy = policy.require_identity(id.as_str());
    }
    if let Some(iss) = &trust.issuer {
        policy = policy.require_issuer(iss.as_str());
    }
    let digest = Sha256Hash::from_hex(&hex::encode(subject_digest))
        .map_err(|e| VerifyFailure::Sigstore(format!("subject digest: {e}")))?;
    let result = verifier
        .verify(digest, &bundle, &policy)
        .map_err(|e| VerifyFailure::Sigstore(e.to_string()))?;
    Ok(SigstoreIdentity {
        identity: result.identity().map(|s| s.as_str().to_string()),
        issuer: result.issuer().map(str::to_string),
        integrated_time: result.integrated_time().map(|t| t.as_second()),
    })
}
