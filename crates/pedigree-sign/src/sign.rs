//! Signing: hash the model, build the OMS statement, sign its DSSE PAE and
//! wrap it in a Sigstore bundle (key or certificate method).

use std::path::{Path, PathBuf};

use crate::bundle::{self, Flavor};
use crate::error::{Error, Result};
use crate::keys::PrivateKey;
use crate::manifest::{self, DigestCache, Manifest, Serialization};
use crate::x509::Cert;

/// Who signs.
#[derive(Debug, Clone)]
pub enum Signer {
    /// A bare key pair; the bundle carries the key's hint.
    Key(PrivateKey),
    /// A key with its certificate chain (leaf first); the bundle carries
    /// the chain.
    Certificate {
        /// The leaf's private key.
        key: PrivateKey,
        /// Leaf, then intermediates (the root may be included or not).
        chain: Vec<Cert>,
    },
}

impl Signer {
    /// A certificate signer, checking that the key matches the leaf.
    pub fn certificate(key: PrivateKey, chain: Vec<Cert>) -> Result<Self> {
        let leaf = chain
            .first()
            .ok_or_else(|| Error::Key("certificate chain is empty".into()))?;
        if leaf.ec_public_key()? != key.public_key() {
            return Err(Error::Key(format!(
                "private key does not match certificate '{}'",
                leaf.subject()
            )));
        }
        Ok(Signer::Certificate { key, chain })
    }

    fn key(&self) -> &PrivateKey {
        match self {
            Signer::Key(k) | Signer::Certificate { key: k, .. } => k,
        }
    }
}

/// Options for [`sign_model`].
#[derive(Debug, Clone, Default)]
pub struct SignOptions {
    /// Method, hash, symlink policy and extra ignore paths.
    pub serialization: Serialization,
    /// Spec (default) or reference-tool spelling of the divergent points.
    pub flavor: Flavor,
    /// Where the bundle will be written; excluded (and recorded in
    /// `ignore_paths`) when it lies inside the model.
    pub signature_path: Option<PathBuf>,
    /// Optional digest cache file (re-signing only).
    pub digest_cache: Option<PathBuf>,
}

/// Hash and sign a model; returns the manifest and the bundle JSON bytes.
pub fn sign_model(
    model: &Path,
    signer: &Signer,
    opts: &SignOptions,
) -> Result<(Manifest, Vec<u8>)> {
    let mut ser = opts.serialization.clone();
    if let Some(sig) = &opts.signature_path
        && let Some(rel) = crate::verify::relative_inside(model, sig)
        && !ser.ignore_paths.contains(&rel)
    {
        ser.ignore_paths.push(rel);
    }
    let cache = opts.digest_cache.as_deref().map(DigestCache::load);
    let m = manifest::hash_model_cached(model, &ser, cache.as_ref())?;
    if let (Some(c), Some(p)) = (&cache, &opts.digest_cache) {
        c.save(p)?;
    }
    let bytes = sign_manifest(&m, signer, opts.flavor)?;
    Ok((m, bytes))
}

/// Sign an already computed manifest.
pub fn sign_manifest(m: &Manifest, signer: &Signer, flavor: Flavor) -> Result<Vec<u8>> {
    let statement = bundle::statement_json(m, flavor);
    let payload = serde_json::to_vec(&statement)
        .map_err(|e| Error::Model(format!("statement encoding: {e}")))?;
    let sig = signer
        .key()
        .sign_der(&bundle::pae(bundle::PAYLOAD_TYPE, &payload));
    let material = match signer {
        Signer::Key(k) => bundle::key_material(&k.public_key().hint()),
        Signer::Certificate { chain, .. } => {
            bundle::chain_material(&chain.iter().map(|c| c.der.clone()).collect::<Vec<_>>())
        }
    };
    let doc = bundle::bundle_json(material, &payload, &sig);
    serde_json::to_vec_pretty(&doc).map_err(|e| Error::Model(format!("bundle encoding: {e}")))
}
