//! The OMS bundle: Sigstore bundle v0.3 → DSSE envelope → in-toto
//! Statement v1 → OMS predicate. Parsing is bounded and total (never
//! panics); building follows the spec (see `DIVERGENCES.md`).

use base64::Engine as _;
use serde_json::{Map, Value, json};

use crate::error::{Error, Result, VerifyFailure};
use crate::manifest::{
    HashAlgorithm, Manifest, Method, Serialization, canonicalize_name, parse_shard_name,
};

/// Sigstore bundle media type written by OMS v1.0 producers.
pub const BUNDLE_MEDIA_TYPE: &str = "application/vnd.dev.sigstore.bundle.v0.3+json";
/// DSSE payload type for in-toto statements.
pub const PAYLOAD_TYPE: &str = "application/vnd.in-toto+json";
/// in-toto Statement v1 type.
pub const STATEMENT_TYPE: &str = "https://in-toto.io/Statement/v1";
/// OMS predicate type.
pub const PREDICATE_TYPE: &str = "https://model_signing/signature/v1.0";

/// Largest bundle file accepted. A bundle lists one digest per file or
/// shard (~150 bytes each), so 64 MiB is ~400k resources.
pub const MAX_BUNDLE_BYTES: usize = 64 << 20;
/// Most resources accepted in one predicate.
pub const MAX_RESOURCES: usize = 1_000_000;
/// Most DSSE signatures / certificates looked at.
const MAX_SIGNATURES: usize = 16;
const MAX_CERTS: usize = 16;

/// The verification material, by signing method.
#[derive(Debug, Clone)]
pub enum Material {
    /// `publicKey`: a hint (v1.1+) and/or the raw PEM (pre-1.1).
    PublicKey {
        /// Hex fingerprint, if present.
        hint: Option<String>,
        /// Decoded `rawBytes` (a PEM in reference bundles), if present.
        raw: Option<Vec<u8>>,
    },
    /// `x509CertificateChain`: DER certificates, leaf first.
    Chain(Vec<Vec<u8>>),
    /// `certificate` + `tlogEntries`: Sigstore keyless.
    Sigstore {
        /// DER Fulcio certificate.
        cert: Vec<u8>,
        /// Number of tlog entries (≥1 checked at parse time).
        tlog_entries: usize,
    },
}

/// A structurally valid bundle.
#[derive(Debug, Clone)]
pub struct Bundle {
    /// Original JSON text (needed again for Sigstore verification).
    pub json: String,
    /// Verification material.
    pub material: Material,
    /// Decoded DSSE payload bytes.
    pub payload: Vec<u8>,
    /// DSSE payload type.
    pub payload_type: String,
    /// Decoded DSSE signatures.
    pub signatures: Vec<Vec<u8>>,
}

/// One signed resource descriptor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedResource {
    /// Name as written in the bundle.
    pub name: String,
    /// Algorithm label as written.
    pub algorithm: String,
    /// Raw digest.
    pub digest: Vec<u8>,
}

/// A validated OMS statement.
#[derive(Debug, Clone)]
pub struct Statement {
    /// `subject[0].name` (informational).
    pub subject_name: String,
    /// `subject[0].digest.sha256`, raw.
    pub subject_digest: Vec<u8>,
    /// The serialization parameters.
    pub serialization: Serialization,
    /// Whether `ignore_paths` was present (absent in pre-1.1 bundles).
    pub ignore_paths_recorded: bool,
    /// Resources in bundle order.
    pub resources: Vec<SignedResource>,
}

/// DSSE pre-authentication encoding.
pub fn pae(payload_type: &str, payload: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(payload.len() + payload_type.len() + 32);
    v.extend_from_slice(b"DSSEv1 ");
    v.extend_from_slice(payload_type.len().to_string().as_bytes());
    v.push(b' ');
    v.extend_from_slice(payload_type.as_bytes());
    v.push(b' ');
    v.extend_from_slice(payload.len().to_string().as_bytes());
    v.push(b' ');
    v.extend_from_slice(payload);
    v
}

/// Base64 decode accepting the standard and URL-safe alphabets, padded or
/// not (DSSE allows either).
pub fn b64decode(s: &str) -> Option<Vec<u8>> {
    use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
    let s = s.trim();
    STANDARD
        .decode(s)
        .or_else(|_| STANDARD_NO_PAD.decode(s))
        .or_else(|_| URL_SAFE.decode(s))
        .or_else(|_| URL_SAFE_NO_PAD.decode(s))
        .ok()
}

fn b64(data: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(data)
}

fn bad(msg: impl Into<String>) -> Error {
    Error::Bundle(msg.into())
}

fn obj<'a>(v: &'a Value, what: &str) -> Result<&'a Map<String, Value>> {
    v.as_object()
        .ok_or_else(|| bad(format!("{what} is not a JSON object")))
}

fn str_field<'a>(m: &'a Map<String, Value>, key: &str, what: &str) -> Result<&'a str> {
    m.get(key)
        .and_then(Value::as_str)
        .ok_or_else(|| bad(format!("{what}: missing or non-string '{key}'")))
}

impl Bundle {
    /// Parse and structurally validate a bundle. Rejects (with the reason):
    /// oversize input, non-JSON, a media type other than a Sigstore bundle,
    /// missing `verificationMaterial` / `dsseEnvelope`, a `sigstore` bundle
    /// without tlog entries, undecodable base64, no signatures.
    pub fn parse(bytes: &[u8]) -> Result<Self> {
        if bytes.len() > MAX_BUNDLE_BYTES {
            return Err(bad(format!(
                "bundle is {} bytes, over the {} byte limit",
                bytes.len(),
                MAX_BUNDLE_BYTES
            )));
        }
        let text = std::str::from_utf8(bytes).map_err(|_| bad("bundle is not UTF-8"))?;
        if text.trim().is_empty() {
            return Err(bad("bundle is empty"));
        }
        let v: Value = serde_json::from_str(text)
            .map_err(|e| bad(format!("bundle is not valid JSON: {e}")))?;
        let top = obj(&v, "bundle")?;
        let media = str_field(top, "mediaType", "bundle")?;
        if !media.starts_with("application/vnd.dev.sigstore.bundle") {
            return Err(bad(format!("mediaType '{media}' is not a Sigstore bundle")));
        }
        let vm = top
            .get("verificationMaterial")
            .ok_or_else(|| bad("missing verificationMaterial"))?;
        let vm = obj(vm, "verificationMaterial")?;
        let material = Self::parse_material(vm)?;
        let env = top.get("dsseEnvelope").ok_or_else(|| {
            if top.contains_key("messageSignature") {
                bad("bundle holds a messageSignature, not a DSSE envelope; OMS requires dsseEnvelope")
            } else {
                bad("missing dsseEnvelope")
            }
        })?;
        let env = obj(env, "dsseEnvelope")?;
        let payload_type = str_field(env, "payloadType", "dsseEnvelope")?.to_string();
        let payload_b64 = str_field(env, "payload", "dsseEnvelope")?;
        let payload =
            b64decode(payload_b64).ok_or_else(|| bad("dsseEnvelope.payload is not base64"))?;
        let sigs = env
            .get("signatures")
            .and_then(Value::as_array)
            .ok_or_else(|| bad("dsseEnvelope: missing 'signatures' array"))?;
        if sigs.is_empty() {
            return Err(bad("dsseEnvelope has no signatures"));
        }
        let mut signatures = Vec::new();
        for s in sigs.iter().take(MAX_SIGNATURES) {
            let so = obj(s, "signature")?;
            // keyid may be absent, "" or null (spec §4.1): not used.
            let sig = str_field(so, "sig", "signature")?;
            signatures.push(b64decode(sig).ok_or_else(|| bad("signature is not base64"))?);
        }
        Ok(Bundle {
            json: text.to_string(),
            material,
            payload,
            payload_type,
            signatures,
        })
    }

    fn parse_material(vm: &Map<String, Value>) -> Result<Material> {
        if let Some(pk) = vm.get("publicKey") {
            let pk = obj(pk, "publicKey")?;
            let hint = pk.get("hint").and_then(Value::as_str).map(str::to_string);
            let raw = match pk.get("rawBytes").and_then(Value::as_str) {
                Some(r) => {
                    Some(b64decode(r).ok_or_else(|| bad("publicKey.rawBytes is not base64"))?)
                }
                None => None,
            };
            if hint.is_none() && raw.is_none() {
                return Err(bad("publicKey has neither 'hint' nor 'rawBytes'"));
            }
            return Ok(Material::PublicKey { hint, raw });
        }
        if let Some(ch) = vm.get("x509CertificateChain") {
            let ch = obj(ch, "x509CertificateChain")?;
            let certs = ch
                .get("certificates")
                .and_then(Value::as_array)
                .ok_or_else(|| bad("x509CertificateChain: missing 'certificates'"))?;
            if certs.is_empty() {
                return Err(bad("x509CertificateChain has no certificates"));
            }
            let mut out = Vec::new();
            for c in certs.iter().take(MAX_CERTS) {
                let raw = str_field(obj(c, "certificate")?, "rawBytes", "certificate")?;
                out.push(b64decode(raw).ok_or_else(|| bad("certificate rawBytes is not base64"))?);
            }
            return Ok(Material::Chain(out));
        }
        if let Some(c) = vm.get("certificate") {
            let raw = str_field(obj(c, "certificate")?, "rawBytes", "certificate")?;
            let cert = b64decode(raw).ok_or_else(|| bad("certificate rawBytes is not base64"))?;
            let n = vm
                .get("tlogEntries")
                .and_then(Value::as_array)
                .map(Vec::len)
                .unwrap_or(0);
            if n == 0 {
                return Err(bad(
                    "sigstore bundle (single 'certificate') has no tlogEntries; at least one is required",
                ));
            }
            return Ok(Material::Sigstore {
                cert,
                tlog_entries: n,
            });
        }
        Err(bad(
            "verificationMaterial has none of publicKey, x509CertificateChain, certificate",
        ))
    }

    /// The DSSE PAE that the signatures cover.
    pub fn pae(&self) -> Vec<u8> {
        pae(&self.payload_type, &self.payload)
    }

    /// Decode and validate the in-toto statement (after the signature is
    /// verified: an unsigned payload is never interpreted beyond this).
    pub fn statement(&self) -> Result<Statement, VerifyFailure> {
        parse_statement(&self.payload_type, &self.payload)
    }
}

fn sfail(msg: impl Into<String>) -> VerifyFailure {
    VerifyFailure::Statement(msg.into())
}

/// Parse an OMS statement.
pub fn parse_statement(payload_type: &str, payload: &[u8]) -> Result<Statement, VerifyFailure> {
    if payload_type != PAYLOAD_TYPE {
        return Err(sfail(format!(
            "payloadType '{payload_type}' is not '{PAYLOAD_TYPE}'"
        )));
    }
    let v: Value =
        serde_json::from_slice(payload).map_err(|e| sfail(format!("payload is not JSON: {e}")))?;
    let m = v
        .as_object()
        .ok_or_else(|| sfail("payload is not an object"))?;
    let ty = m.get("_type").and_then(Value::as_str).unwrap_or("");
    if ty != STATEMENT_TYPE {
        return Err(sfail(format!("_type '{ty}' is not '{STATEMENT_TYPE}'")));
    }
    let pt = m.get("predicateType").and_then(Value::as_str).unwrap_or("");
    if pt != PREDICATE_TYPE {
        return Err(sfail(format!(
            "predicateType '{pt}' is not '{PREDICATE_TYPE}'"
        )));
    }
    let subj = m
        .get("subject")
        .and_then(Value::as_array)
        .ok_or_else(|| sfail("missing subject"))?;
    if subj.len() != 1 {
        return Err(sfail(format!(
            "expected exactly one subject, found {}",
            subj.len()
        )));
    }
    let s0 = subj[0]
        .as_object()
        .ok_or_else(|| sfail("subject is not an object"))?;
    let subject_name = s0
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    if subject_name.is_empty() {
        return Err(sfail("subject name is empty"));
    }
    let sd = s0
        .get("digest")
        .and_then(|d| d.get("sha256"))
        .and_then(Value::as_str)
        .ok_or_else(|| sfail("subject has no sha256 digest"))?;
    let subject_digest = hex::decode(sd)
        .ok()
        .filter(|d| d.len() == 32)
        .ok_or_else(|| sfail("subject sha256 digest is not 32 hex bytes"))?;
    let pred = m
        .get("predicate")
        .and_then(Value::as_object)
        .ok_or_else(|| sfail("missing predicate"))?;
    let ser = pred
        .get("serialization")
        .and_then(Value::as_object)
        .ok_or_else(|| sfail("missing predicate.serialization"))?;
    let method = ser
        .get("method")
        .and_then(Value::as_str)
        .ok_or_else(|| sfail("serialization.method missing"))?;
    let hash_type = ser
        .get("hash_type")
        .and_then(Value::as_str)
        .ok_or_else(|| sfail("serialization.hash_type missing"))?;
    let hash = HashAlgorithm::parse(hash_type).map_err(|e| sfail(e.to_string()))?;
    let allow_symlinks = ser
        .get("allow_symlinks")
        .and_then(Value::as_bool)
        .ok_or_else(|| sfail("serialization.allow_symlinks missing or not a boolean"))?;
    let method = match method {
        "files" => Method::Files,
        "shards" => {
            // The reference tool writes shard_size as a float (e.g.
            // 1000000000.0) because it goes through a protobuf Struct;
            // accept any integral, positive, exactly representable number.
            let n = ser
                .get("shard_size")
                .ok_or_else(|| sfail("shards method without shard_size"))?;
            let size = n
                .as_u64()
                .or_else(|| {
                    n.as_f64()
                        .filter(|f| f.fract() == 0.0 && *f >= 1.0 && *f <= 9.007_199_254_740_992e15)
                        .map(|f| f as u64)
                })
                .filter(|s| *s > 0)
                .ok_or_else(|| sfail(format!("shard_size {n} is not a positive integer")))?;
            Method::Shards { shard_size: size }
        }
        other => return Err(sfail(format!("unknown serialization method '{other}'"))),
    };
    let (ignore_paths, ignore_paths_recorded) = match ser.get("ignore_paths") {
        None | Some(Value::Null) => (Vec::new(), false),
        Some(Value::Array(a)) => {
            let mut v = Vec::new();
            for p in a {
                let p = p
                    .as_str()
                    .ok_or_else(|| sfail("ignore_paths entry is not a string"))?;
                v.push(p.to_string());
            }
            (v, true)
        }
        Some(_) => return Err(sfail("ignore_paths is not an array")),
    };
    let res = pred
        .get("resources")
        .and_then(Value::as_array)
        .ok_or_else(|| sfail("missing predicate.resources"))?;
    if res.is_empty() {
        return Err(sfail("predicate.resources is empty"));
    }
    if res.len() > MAX_RESOURCES {
        return Err(sfail(format!(
            "{} resources, over the {MAX_RESOURCES} limit",
            res.len()
        )));
    }
    let mut resources = Vec::with_capacity(res.len());
    for r in res {
        let r = r
            .as_object()
            .ok_or_else(|| sfail("resource is not an object"))?;
        let name = r
            .get("name")
            .and_then(Value::as_str)
            .ok_or_else(|| sfail("resource without name"))?;
        let algorithm = r
            .get("algorithm")
            .and_then(Value::as_str)
            .ok_or_else(|| sfail(format!("resource '{name}' without algorithm")))?;
        let digest = r
            .get("digest")
            .and_then(Value::as_str)
            .ok_or_else(|| sfail(format!("resource '{name}' without digest")))?;
        let digest = hex::decode(digest)
            .map_err(|_| sfail(format!("resource '{name}' digest is not hex")))?;
        if !algorithm_matches(algorithm, hash, method) {
            return Err(sfail(format!(
                "resource '{name}' algorithm '{algorithm}' does not match hash_type '{hash_type}'"
            )));
        }
        resources.push(SignedResource {
            name: name.to_string(),
            algorithm: algorithm.to_string(),
            digest,
        });
    }
    Ok(Statement {
        subject_name,
        subject_digest,
        serialization: Serialization {
            method,
            hash,
            allow_symlinks,
            ignore_paths,
        },
        ignore_paths_recorded,
        resources,
    })
}

/// The spec labels every resource with the bare hash identifier; the
/// reference tool labels shards `<hash>-sharded-<shard_size>`. Accept both.
fn algorithm_matches(label: &str, hash: HashAlgorithm, method: Method) -> bool {
    if label == hash.label() {
        return true;
    }
    if let Method::Shards { shard_size } = method {
        return label == format!("{}-sharded-{}", hash.label(), shard_size);
    }
    false
}

/// How to spell the points where spec and reference tool disagree.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Flavor {
    /// Follow OMS v1.0 (default).
    #[default]
    Spec,
    /// Write what `model_signing` 1.1.x writes where the spec differs:
    /// `.` as the single-file resource name and `<hash>-sharded-<n>` shard
    /// labels, so older reference verifiers accept the bundle.
    ModelSigning,
}

/// The in-toto statement JSON for a manifest.
pub fn statement_json(m: &Manifest, flavor: Flavor) -> Value {
    let label = match (flavor, m.serialization.method) {
        (Flavor::ModelSigning, Method::Shards { shard_size }) => {
            format!("{}-sharded-{}", m.serialization.hash.label(), shard_size)
        }
        _ => m.serialization.hash.label().to_string(),
    };
    let mut resources: Vec<(String, &[u8])> = m
        .resources
        .iter()
        .map(|r| {
            let name = if flavor == Flavor::ModelSigning && m.single_file {
                match (m.serialization.method, parse_shard_name(&r.name)) {
                    (Method::Shards { .. }, Some((_, s, e))) => format!(".:{s}:{e}"),
                    _ => ".".to_string(),
                }
            } else {
                r.name.clone()
            };
            (name, r.digest.as_slice())
        })
        .collect();
    resources.sort_by(|a, b| a.0.cmp(&b.0));
    let root = crate::manifest::root_digest(resources.iter().map(|r| r.1));
    let mut ser = Map::new();
    ser.insert(
        "method".into(),
        json!(match m.serialization.method {
            Method::Files => "files",
            Method::Shards { .. } => "shards",
        }),
    );
    ser.insert("hash_type".into(), json!(m.serialization.hash.label()));
    if let Method::Shards { shard_size } = m.serialization.method {
        ser.insert("shard_size".into(), json!(shard_size));
    }
    ser.insert(
        "allow_symlinks".into(),
        json!(m.serialization.allow_symlinks),
    );
    let mut ignores: Vec<String> = crate::manifest::DEFAULT_IGNORE_PATHS
        .iter()
        .map(|s| s.to_string())
        .collect();
    for p in &m.serialization.ignore_paths {
        if let Ok(c) = canonicalize_name(p)
            && !ignores.contains(&c)
        {
            ignores.push(c);
        }
    }
    ser.insert("ignore_paths".into(), json!(ignores));
    json!({
        "_type": STATEMENT_TYPE,
        "subject": [{ "name": m.model_name, "digest": { "sha256": hex::encode(root) } }],
        "predicateType": PREDICATE_TYPE,
        "predicate": {
            "resources": resources.iter().map(|(n, d)| json!({"name": n, "algorithm": label, "digest": hex::encode(d)})).collect::<Vec<_>>(),
            "serialization": Value::Object(ser),
        }
    })
}

/// Assemble a bundle JSON document.
pub fn bundle_json(verification_material: Value, payload: &[u8], signature: &[u8]) -> Value {
    json!({
        "mediaType": BUNDLE_MEDIA_TYPE,
        "verificationMaterial": verification_material,
        "dsseEnvelope": {
            "payload": b64(payload),
            "payloadType": PAYLOAD_TYPE,
            "signatures": [{ "sig": b64(signature), "keyid": "" }],
        }
    })
}

/// `verificationMaterial` for the key method.
pub fn key_material(hint: &str) -> Value {
    json!({ "publicKey": { "hint": hint }, "tlogEntries": [] })
}

/// `verificationMaterial` for the certificate method (leaf first).
pub fn chain_material(ders: &[Vec<u8>]) -> Value {
    json!({
        "x509CertificateChain": { "certificates": ders.iter().map(|d| json!({"rawBytes": b64(d)})).collect::<Vec<_>>() },
        "tlogEntries": []
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pae_matches_dsse_definition() {
        assert_eq!(pae("t", b"ab"), b"DSSEv1 1 t 2 ab".to_vec());
    }

    #[test]
    fn garbage_is_rejected_not_panicking() {
        for input in [&b""[..], b"{", b"[]", b"{\"mediaType\":1}", b"\xff\xfe"] {
            assert!(Bundle::parse(input).is_err());
        }
    }
}
