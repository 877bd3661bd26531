//! ECDSA keys (P-256, P-384, P-521) for the `key` and `certificate`
//! methods. Each curve signs with its matching hash (SHA-256/384/512), as
//! the reference tool does; signatures are ASN.1 DER.

use ecdsa::signature::{Signer, Verifier};
use p256::pkcs8::{DecodePrivateKey, DecodePublicKey, EncodePublicKey, LineEnding};
use sha2::Digest as _;

use crate::error::{Error, Result};

/// An ECDSA signing key.
#[derive(Clone)]
pub enum PrivateKey {
    /// NIST P-256.
    P256(p256::ecdsa::SigningKey),
    /// NIST P-384.
    P384(p384::ecdsa::SigningKey),
    /// NIST P-521.
    P521(p521::SecretKey),
}

impl std::fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print key material.
        write!(f, "PrivateKey({})", self.public_key().curve())
    }
}

/// An ECDSA verification key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PublicKey {
    /// NIST P-256.
    P256(p256::ecdsa::VerifyingKey),
    /// NIST P-384.
    P384(p384::ecdsa::VerifyingKey),
    /// NIST P-521 (kept as a point: the P-521 verifying-key wrapper is
    /// neither `Debug` nor `Eq`).
    P521(p521::PublicKey),
}

impl PrivateKey {
    /// Parse a PEM private key: PKCS#8 (`PRIVATE KEY`) or SEC1
    /// (`EC PRIVATE KEY`). Encrypted keys are refused.
    pub fn from_pem(pem: &str) -> Result<Self> {
        if pem.contains("ENCRYPTED") {
            return Err(Error::Key(
                "encrypted private keys are not supported; decrypt it first".into(),
            ));
        }
        if let Ok(k) =
            p256::SecretKey::from_pkcs8_pem(pem).or_else(|_| p256::SecretKey::from_sec1_pem(pem))
        {
            return Ok(PrivateKey::P256(k.into()));
        }
        if let Ok(k) =
            p384::SecretKey::from_pkcs8_pem(pem).or_else(|_| p384::SecretKey::from_sec1_pem(pem))
        {
            return Ok(PrivateKey::P384(k.into()));
        }
        if let Ok(k) =
            p521::SecretKey::from_pkcs8_pem(pem).or_else(|_| p521::SecretKey::from_sec1_pem(pem))
        {
            return Ok(PrivateKey::P521(k));
        }
        Err(Error::Key(
            "not a PEM ECDSA private key on P-256, P-384 or P-521".into(),
        ))
    }

    /// The matching public key.
    pub fn public_key(&self) -> PublicKey {
        match self {
            PrivateKey::P256(k) => PublicKey::P256(*k.verifying_key()),
            PrivateKey::P384(k) => PublicKey::P384(*k.verifying_key()),
            PrivateKey::P521(k) => PublicKey::P521(k.public_key()),
        }
    }

    /// Sign `msg` (the DSSE PAE), returning a DER signature.
    pub fn sign_der(&self, msg: &[u8]) -> Vec<u8> {
        match self {
            PrivateKey::P256(k) => {
                let s: p256::ecdsa::DerSignature = k.sign(msg);
                s.as_bytes().to_vec()
            }
            PrivateKey::P384(k) => {
                let s: p384::ecdsa::DerSignature = k.sign(msg);
                s.as_bytes().to_vec()
            }
            PrivateKey::P521(k) => match p521::ecdsa::SigningKey::from_bytes(&k.to_bytes()) {
                Ok(sk) => {
                    let s: p521::ecdsa::Signature = sk.sign(msg);
                    s.to_der().as_bytes().to_vec()
                }
                // A parsed SecretKey is a valid non-zero scalar, so this
                // cannot happen; an empty signature simply fails to verify.
                Err(_) => Vec::new(),
            },
        }
    }
}

impl PublicKey {
    /// Parse a PEM `PUBLIC KEY` (SubjectPublicKeyInfo).
    pub fn from_pem(pem: &str) -> Result<Self> {
        let der = pem_to_der(pem, "PUBLIC KEY")?;
        Self::from_spki_der(&der)
    }

    /// Parse a DER SubjectPublicKeyInfo.
    pub fn from_spki_der(der: &[u8]) -> Result<Self> {
        if let Ok(k) = p256::PublicKey::from_public_key_der(der) {
            return Ok(PublicKey::P256(k.into()));
        }
        if let Ok(k) = p384::PublicKey::from_public_key_der(der) {
            return Ok(PublicKey::P384(k.into()));
        }
        if let Ok(k) = p521::PublicKey::from_public_key_der(der) {
            return Ok(PublicKey::P521(k));
        }
        Err(Error::Key(
            "public key is not ECDSA P-256, P-384 or P-521".into(),
        ))
    }

    /// Curve name, for messages.
    pub fn curve(&self) -> &'static str {
        match self {
            PublicKey::P256(_) => "P-256",
            PublicKey::P384(_) => "P-384",
            PublicKey::P521(_) => "P-521",
        }
    }

    /// DER SubjectPublicKeyInfo.
    pub fn to_spki_der(&self) -> Vec<u8> {
        let r = match self {
            PublicKey::P256(k) => p256::PublicKey::from(k).to_public_key_der(),
            PublicKey::P384(k) => p384::PublicKey::from(k).to_public_key_der(),
            PublicKey::P521(k) => k.to_public_key_der(),
        };
        // Encoding a valid in-memory point cannot fail; an empty vector
        // would only make hints mismatch, never verify wrongly.
        r.map(|d| d.as_bytes().to_vec()).unwrap_or_default()
    }

    /// PEM SubjectPublicKeyInfo with LF line endings and a trailing newline,
    /// byte-identical to what Python `cryptography` writes.
    pub fn to_pem(&self) -> String {
        let der = self.to_spki_der();
        der::pem::encode_string("PUBLIC KEY", LineEnding::LF, &der).unwrap_or_default()
    }

    /// The `publicKey.hint` the reference tool writes: hex SHA-256 of the
    /// PEM encoding.
    pub fn hint(&self) -> String {
        hex::encode(sha2::Sha256::digest(self.to_pem().as_bytes()))
    }

    /// Hex SHA-256 of the DER SubjectPublicKeyInfo (the usual fingerprint);
    /// accepted as a hint too.
    pub fn der_fingerprint(&self) -> String {
        hex::encode(sha2::Sha256::digest(self.to_spki_der()))
    }

    /// Verify a DER ECDSA signature over `msg`.
    pub fn verify_der(&self, msg: &[u8], sig: &[u8]) -> bool {
        match self {
            PublicKey::P256(k) => {
                p256::ecdsa::Signature::from_der(sig).is_ok_and(|s| k.verify(msg, &s).is_ok())
            }
            PublicKey::P384(k) => {
                p384::ecdsa::Signature::from_der(sig).is_ok_and(|s| k.verify(msg, &s).is_ok())
            }
            PublicKey::P521(k) => p521_vk(k).is_some_and(|vk| {
                p521::ecdsa::Signature::from_der(sig).is_ok_and(|s| vk.verify(msg, &s).is_ok())
            }),
        }
    }

    /// Verify a DER ECDSA signature over an already computed digest (used
    /// for X.509 signatures, whose hash is named by the algorithm OID).
    pub fn verify_prehash_der(&self, digest: &[u8], sig: &[u8]) -> bool {
        use ecdsa::signature::hazmat::PrehashVerifier;
        match self {
            PublicKey::P256(k) => p256::ecdsa::Signature::from_der(sig)
                .is_ok_and(|s| k.verify_prehash(digest, &s).is_ok()),
            PublicKey::P384(k) => p384::ecdsa::Signature::from_der(sig)
                .is_ok_and(|s| k.verify_prehash(digest, &s).is_ok()),
            PublicKey::P521(k) => p521_vk(k).is_some_and(|vk| {
                p521::ecdsa::Signature::from_der(sig)
                    .is_ok_and(|s| vk.verify_prehash(digest, &s).is_ok())
            }),
        }
    }
}

fn p521_vk(k: &p521::PublicKey) -> Option<p521::ecdsa::VerifyingKey> {
    p521::ecdsa::VerifyingKey::from_affine(*k.as_affine()).ok()
}

/// Decode the first PEM block with the given label.
pub fn pem_to_der(pem: &str, label: &str) -> Result<Vec<u8>> {
    pem_blocks(pem)?
        .into_iter()
        .find(|(l, _)| l == label)
        .map(|(_, d)| d)
        .ok_or_else(|| Error::Key(format!("no '{label}' PEM block found")))
}

/// All PEM blocks (label, DER) in a text, in order.
pub fn pem_blocks(text: &str) -> Result<Vec<(String, Vec<u8>)>> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(b) = rest.find("-----BEGIN ") {
        let after = &rest[b..];
        let Some(end_label) = after[11..].find("-----") else {
            break;
        };
        let label = after[11..11 + end_label].to_string();
        let end_marker = format!("-----END {label}-----");
        let Some(e) = after.find(&end_marker) else {
            return Err(Error::Key(format!("unterminated PEM block '{label}'")));
        };
        let block = &after[..e + end_marker.len()];
        let (l, d) = der::pem::decode_vec(block.as_bytes())
            .map_err(|e| Error::Key(format!("bad PEM block '{label}': {e}")))?;
        out.push((l.to_string(), d));
        rest = &after[e + end_marker.len()..];
    }
    Ok(out)
}
