//! Minimal X.509 path validation for the `certificate` method: the leaf
//! must chain, through intermediates carried in the bundle, to a
//! certificate the caller trusts; every certificate on the path must be
//! within its validity period at the check time, and every issuer must be
//! a CA. Signature algorithms: ECDSA with SHA-256/384/512 (P-256/384/521
//! issuers) and RSA PKCS#1 v1.5 with SHA-256/384/512 (the reference test
//! CAs are RSA).

use const_oid::ObjectIdentifier;
use der::{Decode, Encode};
use sha2::Digest as _;
use x509_cert::Certificate;

use crate::error::{Error, Result, VerifyFailure};
use crate::keys::PublicKey;

/// Longest chain we will walk (leaf + intermediates + anchor).
const MAX_CHAIN: usize = 10;

const ECDSA_SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.2");
const ECDSA_SHA384: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.3");
const ECDSA_SHA512: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.4");
const RSA_SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.11");
const RSA_SHA384: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.12");
const RSA_SHA512: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.13");
const BASIC_CONSTRAINTS: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.19");
const SUBJECT_ALT_NAME: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.17");

/// A parsed certificate with its original DER.
#[derive(Clone, Debug)]
pub struct Cert {
    /// Original DER bytes.
    pub der: Vec<u8>,
    /// Parsed form.
    pub cert: Certificate,
}

impl Cert {
    /// Parse DER.
    pub fn from_der(der: &[u8]) -> Result<Self> {
        let cert = Certificate::from_der(der)
            .map_err(|e| Error::Key(format!("bad X.509 certificate: {e}")))?;
        Ok(Cert {
            der: der.to_vec(),
            cert,
        })
    }

    /// Parse every `CERTIFICATE` block of a PEM file.
    pub fn all_from_pem(text: &str) -> Result<Vec<Self>> {
        let certs: Vec<Cert> = crate::keys::pem_blocks(text)?
            .into_iter()
            .filter(|(l, _)| l == "CERTIFICATE")
            .map(|(_, d)| Cert::from_der(&d))
            .collect::<Result<_>>()?;
        if certs.is_empty() {
            return Err(Error::Key("no CERTIFICATE PEM block found".into()));
        }
        Ok(certs)
    }

    /// Subject distinguished name (RFC 4514 string).
    pub fn subject(&self) -> String {
        self.cert.tbs_certificate.subject.to_string()
    }

    /// Hex SHA-256 of the DER.
    pub fn fingerprint(&self) -> String {
        hex::encode(sha2::Sha256::digest(&self.der))
    }

    /// The subject public key if it is an ECDSA key we can verify with.
    pub fn ec_public_key(&self) -> Result<PublicKey> {
        let spki = self
            .cert
            .tbs_certificate
            .subject_public_key_info
            .to_der()
            .map_err(|e| Error::Key(format!("certificate key: {e}")))?;
        PublicKey::from_spki_der(&spki)
    }

    /// rfc822Name and URI subject alternative names, for identity reports.
    pub fn san_identities(&self) -> Vec<String> {
        use x509_cert::ext::pkix::{SubjectAltName, name::GeneralName};
        let mut out = Vec::new();
        for ext in self.cert.tbs_certificate.extensions.iter().flatten() {
            if ext.extn_id == SUBJECT_ALT_NAME
                && let Ok(san) = SubjectAltName::from_der(ext.extn_value.as_bytes())
            {
                for n in san.0 {
                    match n {
                        GeneralName::Rfc822Name(s) => out.push(s.to_string()),
                        GeneralName::UniformResourceIdentifier(s) => out.push(s.to_string()),
                        GeneralName::DnsName(s) => out.push(s.to_string()),
                        _ => {}
                    }
                }
            }
        }
        out
    }

    fn is_ca(&self) -> bool {
        use x509_cert::ext::pkix::BasicConstraints;
        self.cert
            .tbs_certificate
            .extensions
            .iter()
            .flatten()
            .find(|e| e.extn_id == BASIC_CONSTRAINTS)
            .and_then(|e| BasicConstraints::from_der(e.extn_value.as_bytes()).ok())
            .is_some_and(|bc| bc.ca)
    }

    fn valid_at(&self, unix: u64) -> bool {
        let v = &self.cert.tbs_certificate.validity;
        let nb = v.not_before.to_unix_duration().as_secs();
        let na = v.not_after.to_unix_duration().as_secs();
        nb <= unix && unix <= na
    }

    /// Does `issuer`'s key verify this certificate's signature?
    fn signed_by(&self, issuer: &Cert) -> bool {
        if self.cert.tbs_certificate.issuer != issuer.cert.tbs_certificate.subject {
            return false;
        }
        let Ok(tbs) = self.cert.tbs_certificate.to_der() else {
            return false;
        };
        let Some(sig) = self.cert.signature.as_bytes() else {
            return false;
        };
        let alg = self.cert.signature_algorithm.oid;
        let spki = &issuer.cert.tbs_certificate.subject_public_key_info;
        if alg == ECDSA_SHA256 || alg == ECDSA_SHA384 || alg == ECDSA_SHA512 {
            let Ok(key) = issuer.ec_public_key() else {
                return false;
            };
            let digest = if alg == ECDSA_SHA256 {
                sha2::Sha256::digest(&tbs).to_vec()
            } else if alg == ECDSA_SHA384 {
                sha2::Sha384::digest(&tbs).to_vec()
            } else {
                sha2::Sha512::digest(&tbs).to_vec()
            };
            return key.verify_prehash_der(&digest, sig);
        }
        if alg == RSA_SHA256 || alg == RSA_SHA384 || alg == RSA_SHA512 {
            use rsa::pkcs8::DecodePublicKey;
            let Ok(spki_der) = spki.to_der() else {
                return false;
            };
            let Ok(key) = rsa::RsaPublicKey::from_public_key_der(&spki_der) else {
                return false;
            };
            let r = if alg == RSA_SHA256 {
                key.verify(
                    rsa::Pkcs1v15Sign::new::<sha2::Sha256>(),
                    &sha2::Sha256::digest(&tbs),
                    sig,
                )
            } else if alg == RSA_SHA384 {
                key.verify(
                    rsa::Pkcs1v15Sign::new::<sha2::Sha384>(),
                    &sha2::Sha384::digest(&tbs),
                    sig,
                )
            } else {
                key.verify(
                    rsa::Pkcs1v15Sign::new::<sha2::Sha512>(),
                    &sha2::Sha512::digest(&tbs),
                    sig,
                )
            };
            return r.is_ok();
        }
        tracing::debug!(%alg, "unsupported certificate signature algorithm");
        false
    }
}

/// Validate `chain` (leaf first, then intermediates as carried in the
/// bundle) against `anchors` at time `unix`. Returns the certificates on
/// the validated path, leaf first, anchor last.
pub fn verify_chain(
    chain: &[Cert],
    anchors: &[Cert],
    unix: u64,
) -> Result<Vec<Cert>, VerifyFailure> {
    let leaf = chain
        .first()
        .ok_or_else(|| VerifyFailure::Chain("bundle carries no certificate".into()))?;
    if anchors.is_empty() {
        return Err(VerifyFailure::Chain(
            "no trusted root certificates given".into(),
        ));
    }
    if !leaf.valid_at(unix) {
        return Err(VerifyFailure::Chain(format!(
            "signing certificate '{}' is not within its validity period",
            leaf.subject()
        )));
    }
    let mut path = vec![leaf.clone()];
    // The leaf itself may be pinned.
    if anchors.iter().any(|a| a.der == leaf.der) {
        return Ok(path);
    }
    let mut current = leaf.clone();
    let mut used = vec![false; chain.len()];
    used[0] = true;
    for _ in 0..MAX_CHAIN {
        if let Some(anchor) = anchors.iter().find(|a| current.signed_by(a)) {
            if !anchor.valid_at(unix) {
                return Err(VerifyFailure::Chain(format!(
                    "trusted certificate '{}' is not within its validity period",
                    anchor.subject()
                )));
            }
            path.push(anchor.clone());
            return Ok(path);
        }
        let next = chain
            .iter()
            .enumerate()
            .find(|(i, c)| !used[*i] && current.signed_by(c));
        let Some((i, issuer)) = next else {
            return Err(VerifyFailure::Chain(format!(
                "certificate '{}' is not issued by any trusted certificate or bundle intermediate",
                current.subject()
            )));
        };
        if !issuer.is_ca() {
            return Err(VerifyFailure::Chain(format!(
                "intermediate '{}' is not a CA",
                issuer.subject()
            )));
        }
        if !issuer.valid_at(unix) {
            return Err(VerifyFailure::Chain(format!(
                "intermediate '{}' is not within its validity period",
                issuer.subject()
            )));
        }
        used[i] = true;
        path.push(issuer.clone());
        current = issuer.clone();
    }
    Err(VerifyFailure::Chain("certificate chain too long".into()))
}
