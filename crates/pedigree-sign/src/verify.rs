//! Verification: signature (key, certificate chain, Sigstore) first, then
//! the statement, then every file of the model against the manifest.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::bundle::{Bundle, Material, Statement};
use crate::error::{Error, Result, VerifyFailure};
use crate::keys::PublicKey;
use crate::manifest::{self, Manifest, Method, canonicalize_name, parse_shard_name};
use crate::sigstore::{SigstoreIdentity, SigstoreTrust};
use crate::x509::{Cert, verify_chain};

/// What the verifier trusts. A bundle verifies when its material matches
/// any of the trusted keys, chains to any of the roots, or (when
/// `sigstore` is set) passes keyless verification.
#[derive(Debug, Clone, Default)]
pub struct TrustStore {
    /// Trusted public keys (key method).
    pub keys: Vec<PublicKey>,
    /// Trusted CA (or pinned leaf) certificates (certificate method).
    pub roots: Vec<Cert>,
    /// Keyless policy; `None` refuses Sigstore bundles.
    pub sigstore: Option<SigstoreTrust>,
    /// Unix time for certificate validity; `None` means now.
    pub at_unix: Option<u64>,
}

/// Who signed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignerIdentity {
    /// A trusted public key.
    Key {
        /// Curve name.
        curve: &'static str,
        /// The reference-tool hint (SHA-256 of the PEM SPKI).
        hint: String,
        /// SHA-256 of the DER SPKI.
        fingerprint: String,
    },
    /// A certificate chaining to a trusted root.
    Certificate {
        /// Leaf subject DN.
        subject: String,
        /// Leaf SANs (emails, URIs, DNS names).
        sans: Vec<String>,
        /// SHA-256 of the leaf DER.
        fingerprint: String,
        /// Subject DN of the trusted certificate the chain ended at.
        root: String,
    },
    /// A Sigstore keyless identity.
    Sigstore(SigstoreIdentity),
}

impl std::fmt::Display for SignerIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SignerIdentity::Key {
                curve, fingerprint, ..
            } => write!(f, "key {curve} sha256:{fingerprint}"),
            SignerIdentity::Certificate {
                subject,
                sans,
                root,
                ..
            } => {
                write!(f, "certificate '{subject}'")?;
                if !sans.is_empty() {
                    write!(f, " ({})", sans.join(", "))?;
                }
                write!(f, " chained to '{root}'")
            }
            SignerIdentity::Sigstore(s) => write!(
                f,
                "sigstore identity '{}' issuer '{}'",
                s.identity.as_deref().unwrap_or("?"),
                s.issuer.as_deref().unwrap_or("?")
            ),
        }
    }
}

/// A bundle whose signature verified.
#[derive(Debug, Clone)]
pub struct VerifiedBundle {
    /// The signer.
    pub signer: SignerIdentity,
    /// The signed statement.
    pub statement: Statement,
}

fn now_unix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Verify a bundle's signature against the trust store and return the
/// signer and the statement. Does not look at any model file; the
/// registry calls this, then compares digests it already has.
pub fn verify_bundle(bundle: &Bundle, trust: &TrustStore) -> Result<VerifiedBundle> {
    let pae = bundle.pae();
    let signer = match &bundle.material {
        Material::PublicKey { hint, raw } => {
            if trust.keys.is_empty() {
                return Err(Error::Options(
                    "bundle was signed with a key; give the public key to verify it".into(),
                ));
            }
            // The bundle's own hint/rawBytes are never trusted; they only
            // pick the key and improve the message. Only the signature counts.
            if let Some(h) = hint
                && !trust
                    .keys
                    .iter()
                    .any(|k| &k.hint() == h || &k.der_fingerprint() == h)
            {
                tracing::warn!(hint = %h, "bundle key hint matches none of the trusted keys");
            }
            if let Some(r) = raw {
                let embedded = std::str::from_utf8(r)
                    .ok()
                    .and_then(|p| PublicKey::from_pem(p).ok())
                    .or_else(|| PublicKey::from_spki_der(r).ok());
                if let Some(e) = embedded
                    && !trust.keys.contains(&e)
                {
                    tracing::warn!("bundle embeds a public key that is not among the trusted keys");
                }
            }
            let key = trust
                .keys
                .iter()
                .find(|k| bundle.signatures.iter().any(|s| k.verify_der(&pae, s)))
                .ok_or_else(|| {
                    VerifyFailure::BadSignature(match hint {
                        Some(h) => format!("not signed by the given key (bundle key hint {h})"),
                        None => "not signed by the given key".into(),
                    })
                })?;
            SignerIdentity::Key {
                curve: key.curve(),
                hint: key.hint(),
                fingerprint: key.der_fingerprint(),
            }
        }
        Material::Chain(ders) => {
            if trust.roots.is_empty() {
                return Err(Error::Options("bundle was signed with a certificate; give the trusted certificate chain to verify it".into()));
            }
            let chain: Vec<Cert> = ders
                .iter()
                .map(|d| {
                    Cert::from_der(d)
                        .map_err(|e| Error::Bundle(format!("certificate in bundle: {e}")))
                })
                .collect::<Result<_>>()?;
            let path = verify_chain(&chain, &trust.roots, trust.at_unix.unwrap_or_else(now_unix))?;
            let leaf = &path[0];
            let key = leaf.ec_public_key().map_err(|e| {
                VerifyFailure::BadSignature(format!("signing certificate key unusable: {e}"))
            })?;
            if !bundle.signatures.iter().any(|s| key.verify_der(&pae, s)) {
                return Err(VerifyFailure::BadSignature(format!(
                    "not signed by the key of certificate '{}'",
                    leaf.subject()
                ))
                .into());
            }
            SignerIdentity::Certificate {
                subject: leaf.subject(),
                sans: leaf.san_identities(),
                fingerprint: leaf.fingerprint(),
                root: path.last().map(Cert::subject).unwrap_or_default(),
            }
        }
        Material::Sigstore { .. } => {
            let Some(st) = &trust.sigstore else {
                return Err(Error::Options("bundle is a Sigstore keyless bundle; verify it with --sigstore --identity --issuer".into()));
            };
            // The subject digest binds the tlog entry to this statement;
            // sigstore-verify checks the DSSE signature itself.
            let statement = bundle.statement()?;
            SignerIdentity::Sigstore(crate::sigstore::verify(
                &bundle.json,
                &statement.subject_digest,
                st,
            )?)
        }
    };
    let statement = bundle.statement()?;
    check_subject(&statement)?;
    tracing::info!(%signer, "bundle signature verified");
    Ok(VerifiedBundle { signer, statement })
}

/// The subject digest must be the root digest of the listed resources. The
/// spec orders resources by code point; the reference tool by path
/// components (and shards numerically). Either order is accepted.
fn check_subject(st: &Statement) -> Result<(), VerifyFailure> {
    let listed = manifest::root_digest(st.resources.iter().map(|r| r.digest.as_slice()));
    if listed.as_slice() == st.subject_digest {
        return Ok(());
    }
    let mut sorted: Vec<_> = st.resources.iter().collect();
    sorted.sort_by(|a, b| a.name.cmp(&b.name));
    let canonical = manifest::root_digest(sorted.iter().map(|r| r.digest.as_slice()));
    if canonical.as_slice() == st.subject_digest {
        return Ok(());
    }
    Err(VerifyFailure::Statement(format!(
        "subject digest {} is not the root digest of the listed resources ({})",
        hex::encode(&st.subject_digest),
        hex::encode(canonical)
    )))
}

/// Options for [`verify_model`].
#[derive(Debug, Clone, Default)]
pub struct VerifyOptions {
    /// Extra paths to ignore (relative to the model root), on top of the
    /// defaults and what the bundle records. Needed for pre-1.1 bundles,
    /// which did not record their ignore list.
    pub ignore_paths: Vec<String>,
    /// Do not fail on files the signature does not cover.
    pub ignore_unsigned_files: bool,
    /// The signature file; excluded when it lies inside the model.
    pub signature_path: Option<PathBuf>,
}

/// Outcome of a successful model verification.
#[derive(Debug, Clone)]
pub struct Verified {
    /// The signer.
    pub signer: SignerIdentity,
    /// The manifest recomputed from disk.
    pub manifest: Manifest,
    /// The signed statement.
    pub statement: Statement,
}

/// Path of `inner` relative to directory `root`, if inside it.
pub fn relative_inside(root: &Path, inner: &Path) -> Option<String> {
    let root = std::fs::canonicalize(root).ok()?;
    let inner_abs = match std::fs::canonicalize(inner) {
        Ok(p) => p,
        Err(_) => {
            let parent = inner
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or(Path::new("."));
            std::fs::canonicalize(parent).ok()?.join(inner.file_name()?)
        }
    };
    let rel = inner_abs.strip_prefix(&root).ok()?;
    let s = rel.to_str()?;
    canonicalize_name(s).ok()
}

/// Verify a model (directory or file) against a bundle file's bytes.
pub fn verify_model(
    model: &Path,
    bundle_bytes: &[u8],
    trust: &TrustStore,
    opts: &VerifyOptions,
) -> Result<Verified> {
    let bundle = Bundle::parse(bundle_bytes)?;
    let vb = verify_bundle(&bundle, trust)?;
    let st = vb.statement;
    let mut ser = st.serialization.clone();
    for p in &opts.ignore_paths {
        ser.ignore_paths.push(p.clone());
    }
    if let Some(sig) = &opts.signature_path
        && let Some(rel) = relative_inside(model, sig)
    {
        ser.ignore_paths.push(rel);
    }
    let computed = match manifest::hash_model(model, &ser) {
        Ok(m) => m,
        Err(Error::Model(msg)) => return Err(VerifyFailure::Model(msg).into()),
        Err(e) => return Err(e),
    };
    compare(&st, &computed, opts.ignore_unsigned_files)?;
    tracing::info!(
        resources = computed.resources.len(),
        "model matches signed manifest"
    );
    Ok(Verified {
        signer: vb.signer,
        manifest: computed,
        statement: st,
    })
}

/// Map a signed resource name to the key our own manifest uses.
fn normalize_signed_name(
    name: &str,
    method: Method,
    single_file: Option<&str>,
) -> Result<String, VerifyFailure> {
    let fix_path = |p: &str| -> Result<String, VerifyFailure> {
        // The reference tool names a single-file model's resource "."; the
        // spec uses the file's basename.
        if let Some(base) = single_file
            && (p == "." || p == base)
        {
            return Ok(base.to_string());
        }
        canonicalize_name(p)
            .map_err(|e| VerifyFailure::Statement(format!("resource name '{name}': {e}")))
    };
    match method {
        Method::Files => fix_path(name),
        Method::Shards { .. } => {
            let (p, s, e) = parse_shard_name(name).ok_or_else(|| {
                VerifyFailure::Statement(format!(
                    "shard resource name '{name}' is not 'path:start:end'"
                ))
            })?;
            Ok(manifest::shard_name(&fix_path(p)?, s, e))
        }
    }
}

/// Compare the signed resources against the recomputed manifest.
pub fn compare(
    st: &Statement,
    computed: &Manifest,
    ignore_unsigned: bool,
) -> Result<(), VerifyFailure> {
    let single = if computed.single_file {
        computed
            .resources
            .first()
            .map(|r| file_part(&r.name, computed.serialization.method))
    } else {
        None
    };
    let mut expected: BTreeMap<String, &[u8]> = BTreeMap::new();
    for r in &st.resources {
        let key = normalize_signed_name(&r.name, st.serialization.method, single.as_deref())?;
        if expected.insert(key.clone(), &r.digest).is_some() {
            return Err(VerifyFailure::Statement(format!(
                "resource '{key}' is listed twice"
            )));
        }
    }
    let actual: BTreeMap<&str, &[u8]> = computed
        .resources
        .iter()
        .map(|r| (r.name.as_str(), r.digest.as_slice()))
        .collect();
    for (name, want) in &expected {
        match actual.get(name.as_str()) {
            None => {
                // A zero-length shard listed by a lenient producer for an
                // empty file is satisfied by the (unlisted) empty file.
                if let Some((p, 0, 0)) = parse_shard_name(name)
                    && computed_file_is_empty(computed, p)
                {
                    continue;
                }
                return Err(VerifyFailure::MissingFile(name.clone()));
            }
            Some(got) if got != want => {
                return Err(VerifyFailure::DigestMismatch {
                    name: name.clone(),
                    expected: hex::encode(want),
                    actual: hex::encode(got),
                });
            }
            Some(_) => {}
        }
    }
    if !ignore_unsigned && let Some(extra) = actual.keys().find(|k| !expected.contains_key(**k)) {
        return Err(VerifyFailure::ExtraFile(extra.to_string()));
    }
    Ok(())
}

fn file_part(name: &str, method: Method) -> String {
    match method {
        Method::Files => name.to_string(),
        Method::Shards { .. } => parse_shard_name(name)
            .map(|(p, _, _)| p.to_string())
            .unwrap_or_else(|| name.to_string()),
    }
}

fn computed_file_is_empty(computed: &Manifest, path: &str) -> bool {
    // Empty files produce no shard in our manifest, so an expected 0:0
    // shard is only accepted if no other shard of that path exists.
    !computed
        .resources
        .iter()
        .any(|r| parse_shard_name(&r.name).is_some_and(|(p, _, _)| p == path))
}
