//! The analysis step of the ingest pipeline: a pure function over a model directory already
//! materialised on local disk (the quarantined upload) that runs
//! scan → identity → fingerprint → card → BOM → signature verification, and the pieces the
//! lineage step needs (a candidate index over stored fingerprints, and a verified, oriented
//! relation between two models).
//!
//! Nothing here touches storage or the network; the server calls [`analyze`] from its durable
//! job runner, stores the [`Analysis`] as JSON and feeds it to the policy module.
//!
//! A hostile upload never makes [`analyze`] fail or panic: what goes wrong with one file (an
//! unreadable file, a symlink, a reader that gives up, a bundle that does not parse) is recorded
//! in the result. Only problems with the directory itself (missing, empty, not enumerable)
//! are errors.
//!
//! * identity: the OMS v1.0 root digest over the files of the upload, with the signature bundle
//!   left out (as `pedigree sign` / `pedigree verify` do), so it equals the digest a valid
//!   signature covers: `pedigree id DIR --ignore-paths model.sig`.
//! * signature: each trusted key of the namespace is tried; the files are compared against the
//!   signed manifest by the signing library (`verify_bundle` + `compare`, reusing the digests
//!   already computed for the identity when the bundle was made with the same serialization).
//! * lineage: [`LineageIndex`] proposes candidates (the provenance index: exact and SimHash
//!   keys), [`relate`] verifies a pair with the provenance diff and orients it.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::io::Read;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};
use pedigree_formats::container::ReadOptions;
use pedigree_formats::tensors::TensorFile;
use pedigree_provenance::card::{Card, same_name};
use pedigree_provenance::diff::{Direction, Loaded, Relation, diff_loaded};
use pedigree_provenance::fingerprint::{self as pfp, FileInfo, Fingerprint};
use pedigree_provenance::index::{Index, Keys};
use pedigree_provenance::model::Model;
use pedigree_scan::{Policy, Severity};
use pedigree_sign::bundle::{Bundle, MAX_BUNDLE_BYTES, Statement};
use pedigree_sign::manifest::{self, Manifest, Serialization};
use pedigree_sign::{Cert, PublicKey, TrustStore};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::Digest as _;

/// Largest README read for the card facts (front matter sits at the top).
const MAX_CARD_BYTES: u64 = 1 << 20;

// ---------------------------------------------------------------------------- public types

/// A signer trusted for a namespace: a name for humans and the policy, and its PEM. The PEM is
/// an ECDSA `PUBLIC KEY` (key-signed bundles) or one or more `CERTIFICATE`s (trusted roots for
/// certificate-signed bundles).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrustedKey {
    pub name: String,
    pub public_key_pem: String,
}

/// What [`analyze`] needs besides the directory.
#[derive(Debug, Clone, Copy)]
pub struct AnalysisOptions<'a> {
    /// `namespace/name`; names the model in the fingerprint and the BOM.
    pub model_name: &'a str,
    pub version: &'a str,
    /// The OMS bundle, usually `model.sig` inside the upload. `None`, or a path that does not
    /// exist, means unsigned. When inside the directory it is left out of the identity.
    pub signature: Option<&'a Path>,
    /// The namespace's trusted signers, tried in order.
    pub trusted: &'a [TrustedKey],
}

/// The result of analysing one upload (stored as JSON by the server).
#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct Analysis {
    pub model_name: String,
    pub version: String,
    /// OMS v1.0 root digest, `sha256:<hex>`, signature bundle excluded.
    pub identity: String,
    /// Every regular file of the upload, in path order.
    pub files: Vec<FileFact>,
    /// Distinct formats the scanner recognised by content (`unknown` left out), sorted.
    pub formats: Vec<String>,
    pub findings: Vec<FindingFact>,
    pub max_severity: Option<Severity>,
    /// Files (or entries) that could not be scanned or are not regular files: a reason for
    /// concern in itself.
    pub scan_errors: Vec<String>,
    /// The provenance fingerprint; `None` when no weight file could be read.
    pub fingerprint: Option<Fingerprint>,
    /// Why the fingerprint or the BOM is missing or partial (weight files skipped, ...).
    pub provenance_errors: Vec<String>,
    /// CycloneDX 1.6 document; `null` only when it could not be produced (see
    /// `provenance_errors`).
    pub bom: Value,
    pub signature: SignatureFact,
    pub card: CardFacts,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct FileFact {
    /// Relative, `/`-separated.
    pub path: String,
    pub size: u64,
    /// Lowercase hex SHA-256 of the content (empty when the file could not be read).
    pub sha256: String,
    /// As the scanner names it (`safetensors`, `torch-zip`, `pickle`, ..., `unknown`).
    pub format: String,
    /// Whether the file is covered by `identity` (false for the signature bundle and the
    /// OMS default exclusions such as `.git`).
    pub in_identity: bool,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct FindingFact {
    /// Rule id, e.g. `PDG101`.
    pub rule: String,
    /// Rule name.
    pub name: String,
    pub severity: Severity,
    pub message: String,
    /// Relative path of the file.
    pub file: String,
    /// `file!member@offset`.
    pub location: String,
    /// For pickle-global findings, `module.name`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub global: Option<String>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(tag = "status", rename_all = "lowercase")]
pub enum SignatureFact {
    /// No bundle.
    Absent,
    /// A trusted signer signed exactly these files.
    Valid {
        /// The [`TrustedKey::name`] that verified.
        signer: String,
        /// What the signing library says about the signer (curve and key fingerprint, or the
        /// certificate subject).
        key: String,
    },
    /// A bundle is present but does not verify: malformed, signed by no trusted key, or the
    /// files differ from the signed ones.
    Invalid { reason: String },
}

/// What the model card declares (Hugging Face conventions: `README.md` front matter, and
/// `config.json` for the base model).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct CardFacts {
    /// A `README.md` or `config.json` exists.
    pub present: bool,
    /// Declared base models, as written (`base_model`, `base_model_name_or_path`).
    pub base_model: Vec<String>,
    /// Where the base model was declared (`README.md`, `config.json:base_model`, ...).
    pub base_model_sources: Vec<String>,
    /// `base_model_relation` (adapter, finetune, quantized, merge), when declared.
    pub base_model_relation: Option<String>,
    pub license: Option<String>,
    /// `datasets:` from the front matter.
    pub training_data: Vec<String>,
}

// ---------------------------------------------------------------------------- analyze

/// Analyses one upload. See the module documentation.
pub fn analyze(dir: &Path, opts: &AnalysisOptions) -> Result<Analysis> {
    let meta = std::fs::metadata(dir)
        .with_context(|| format!("{}: cannot read the upload directory", dir.display()))?;
    if !meta.is_dir() {
        bail!("{}: not a directory", dir.display());
    }
    let walked = walk_upload(dir);
    if walked.files.is_empty() {
        bail!("{}: the upload holds no regular file", dir.display());
    }
    let mut scan_errors = walked.errors.clone();
    for (rel, what) in &walked.odd {
        scan_errors.push(format!(
            "{rel}: {what}; not scanned and left out of the identity"
        ));
    }

    // Identity: OMS files method, SHA-256; the bundle and non-regular entries left out.
    let sig_rel = opts
        .signature
        .and_then(|s| pedigree_sign::verify::relative_inside(dir, s));
    let mut ignore_paths: Vec<String> = walked.odd.iter().map(|(r, _)| r.clone()).collect();
    ignore_paths.extend(sig_rel.clone());
    let id_ser = Serialization {
        ignore_paths,
        ..Serialization::default()
    };
    let id_manifest = manifest::hash_model(dir, &id_ser)
        .map_err(|e| anyhow!("{}: cannot compute the model identity: {e}", dir.display()))?;
    let identity = id_manifest.model_id();

    // Scan, file by file, each guarded: one reader in trouble must not hide the others.
    let policy = Policy::default();
    let read_opts = ReadOptions::default();
    let reports: Vec<pedigree_scan::FileReport> = walked
        .files
        .par_iter()
        .map(|f| {
            guarded("scanner", || {
                pedigree_scan::scan_file(&f.path, &policy, &read_opts)
            })
            .unwrap_or_else(|e| pedigree_scan::FileReport {
                path: f.path.display().to_string(),
                format: "unknown".into(),
                size: f.size,
                findings: Vec::new(),
                error: Some(e),
            })
        })
        .collect();
    let digests: HashMap<&str, String> = id_manifest
        .resources
        .iter()
        .map(|r| (r.name.as_str(), r.digest_hex()))
        .collect();
    // Messages name files relative to the upload: the quarantine path means nothing later.
    let prefix = format!("{}{}", dir.display(), std::path::MAIN_SEPARATOR);
    let bare = dir.display().to_string();
    let scrub = |s: &str| s.replace(&prefix, "").replace(&bare, ".");
    let mut files = Vec::new();
    let mut findings = Vec::new();
    let mut formats = BTreeSet::new();
    for (f, r) in walked.files.iter().zip(&reports) {
        let in_identity = digests.contains_key(f.rel.as_str());
        let sha256 = match digests.get(f.rel.as_str()) {
            Some(d) => d.clone(),
            None => sha256_file(&f.path).unwrap_or_else(|e| {
                scan_errors.push(format!("{}: cannot hash: {e}", f.rel));
                String::new()
            }),
        };
        if r.format != "unknown" {
            formats.insert(r.format.clone());
        }
        if let Some(e) = &r.error {
            scan_errors.push(format!("{}: {}", f.rel, scrub(e)));
        }
        for x in &r.findings {
            let mut loc = x.location.clone();
            loc.path = f.rel.clone();
            findings.push(FindingFact {
                rule: x.rule.to_string(),
                name: x.name.to_string(),
                severity: x.severity,
                message: scrub(&x.message),
                file: f.rel.clone(),
                location: loc.display(),
                global: x.global.clone(),
            });
        }
        files.push(FileFact {
            path: f.rel.clone(),
            size: f.size,
            sha256,
            format: r.format.clone(),
            in_identity,
        });
    }
    let max_severity = findings.iter().map(|f| f.severity).max();

    // Card, fingerprint, BOM.
    let card = card_facts(dir);
    let mut provenance_errors = Vec::new();
    let mut fingerprint = match guarded("fingerprint", || {
        fingerprint_upload(dir, opts.model_name, &identity)
    }) {
        Ok(Ok((fp, skipped))) => {
            provenance_errors.extend(skipped.iter().map(|s| scrub(s)));
            Some(fp)
        }
        Ok(Err(e)) => {
            provenance_errors.push(scrub(&format!("no fingerprint: {e:#}")));
            None
        }
        Err(e) => {
            provenance_errors.push(e);
            None
        }
    };
    let bom = match guarded("BOM", || {
        make_bom(
            dir,
            opts,
            fingerprint.as_ref(),
            &identity,
            &card,
            sig_rel.as_deref(),
        )
    }) {
        Ok(Ok(v)) => v,
        Ok(Err(e)) => {
            provenance_errors.push(scrub(&format!("no BOM: {e:#}")));
            Value::Null
        }
        Err(e) => {
            provenance_errors.push(e);
            Value::Null
        }
    };
    if let Some(fp) = &mut fingerprint {
        // The quarantine path means nothing once the job is done; name the version instead.
        fp.path = format!("{}:{}", opts.model_name, opts.version);
    }

    let signature = guarded("signature verification", || {
        verify_signature(dir, opts, &id_manifest, &id_ser)
    })
    .unwrap_or_else(|reason| SignatureFact::Invalid { reason });
    let signature = match signature {
        SignatureFact::Invalid { reason } => SignatureFact::Invalid {
            reason: scrub(&reason),
        },
        other => other,
    };

    Ok(Analysis {
        model_name: opts.model_name.to_string(),
        version: opts.version.to_string(),
        identity,
        files,
        formats: formats.into_iter().collect(),
        findings,
        max_severity,
        scan_errors,
        fingerprint,
        provenance_errors,
        bom,
        signature,
        card,
    })
}

/// Runs `f`, turning a panic into an error message (hostile inputs must not take the job down).
fn guarded<T>(what: &str, f: impl FnOnce() -> T) -> Result<T, String> {
    catch_unwind(AssertUnwindSafe(f)).map_err(|p| {
        let msg = p
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| p.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown panic".into());
        format!("{what} failed unexpectedly: {msg}")
    })
}

struct WalkedFile {
    path: PathBuf,
    rel: String,
    size: u64,
}

#[derive(Default)]
struct Walked {
    files: Vec<WalkedFile>,
    /// Entries that are not regular files (symlinks, devices, fifos): (relative name, what).
    odd: Vec<(String, String)>,
    errors: Vec<String>,
}

fn walk_upload(dir: &Path) -> Walked {
    let mut w = Walked::default();
    for entry in walkdir::WalkDir::new(dir)
        .follow_links(false)
        .sort_by_file_name()
    {
        let e = match entry {
            Ok(e) => e,
            Err(err) => {
                let at = err
                    .path()
                    .and_then(|p| p.strip_prefix(dir).ok())
                    .map(|p| p.display().to_string())
                    .unwrap_or_default();
                w.errors.push(format!("{at}: cannot list: {err}"));
                continue;
            }
        };
        if e.depth() == 0 || e.file_type().is_dir() {
            continue;
        }
        let Ok(relp) = e.path().strip_prefix(dir) else {
            continue;
        };
        let parts: Option<Vec<&str>> = relp.components().map(|c| c.as_os_str().to_str()).collect();
        let Some(parts) = parts else {
            w.errors.push(format!(
                "{}: file name is not valid UTF-8",
                relp.to_string_lossy()
            ));
            continue;
        };
        let rel = parts.join("/");
        let ft = e.file_type();
        if ft.is_file() {
            match e.metadata() {
                Ok(m) => w.files.push(WalkedFile {
                    path: e.path().to_path_buf(),
                    rel,
                    size: m.len(),
                }),
                Err(err) => w.errors.push(format!("{rel}: cannot stat: {err}")),
            }
        } else if ft.is_symlink() {
            let target = std::fs::read_link(e.path())
                .map(|t| t.display().to_string())
                .unwrap_or_else(|_| "?".into());
            w.odd
                .push((rel, format!("symbolic link to '{target}', not followed")));
        } else {
            w.odd.push((rel, "not a regular file".into()));
        }
    }
    w
}

fn sha256_file(p: &Path) -> std::io::Result<String> {
    let mut f = std::fs::File::open(p)?;
    let mut h = sha2::Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(hex::encode(h.finalize()))
}

// ---------------------------------------------------------------------------- provenance

// TODO: use pedigree_provenance::model::WEIGHT_EXT once public (made `pub` in the provenance
// work in progress, not yet committed).
const WEIGHT_EXT: [&str; 10] = [
    "safetensors",
    "pt",
    "pth",
    "bin",
    "ckpt",
    "gguf",
    "onnx",
    "npy",
    "npz",
    "model",
];

/// `Model::open`, but a weight file that fails to read is skipped (and reported) instead of
/// failing the whole model: otherwise one corrupt extra `.bin` would hide an upload's lineage.
fn open_model(dir: &Path, name: &str) -> Result<(Model, Vec<String>)> {
    match Model::open(dir) {
        Ok(mut m) => {
            m.name = name.to_string();
            Ok((m, Vec::new()))
        }
        Err(strict) => {
            let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
                .with_context(|| format!("{}: cannot list", dir.display()))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.is_file())
                .filter(|p| {
                    p.extension()
                        .and_then(|e| e.to_str())
                        .is_some_and(|e| WEIGHT_EXT.contains(&e.to_ascii_lowercase().as_str()))
                })
                .collect();
            paths.sort();
            let mut files = Vec::new();
            let mut skipped = Vec::new();
            for p in paths {
                match TensorFile::open(&p) {
                    Ok(f) => files.push(f),
                    Err(e) if e.message.starts_with("not a tensor file") => {}
                    Err(e) => skipped.push(format!(
                        "{}: weights not read: {}",
                        rel_name(dir, &p),
                        e.message
                    )),
                }
            }
            if files.is_empty() {
                return Err(strict);
            }
            Ok((
                Model {
                    name: name.to_string(),
                    path: dir.to_path_buf(),
                    files,
                    card: Card::read_dir(dir),
                },
                skipped,
            ))
        }
    }
}

fn rel_name(dir: &Path, p: &Path) -> String {
    p.strip_prefix(dir)
        .map(|r| r.to_string_lossy().replace('\\', "/"))
        .unwrap_or_else(|_| p.display().to_string())
}

/// The fingerprint of the upload, named `name`, with the identity already computed.
// TODO: use pedigree_provenance::fingerprint::fingerprint_model_with_id (in the provenance work
// in progress, not yet committed), then make `FileInfo::name` relative here;
// `fingerprint_model` re-hashes every file for the model id (with the bundle included).
fn fingerprint_upload(
    dir: &Path,
    name: &str,
    identity: &str,
) -> Result<(Fingerprint, Vec<String>)> {
    let (model, skipped) = open_model(dir, name)?;
    let weights = model.weights();
    let tensors = weights
        .par_iter()
        .map(|t| pfp::tensor_fp(&model, t))
        .collect::<Result<Vec<_>>>()?;
    let shapes: Vec<Vec<usize>> = weights.iter().map(|t| t.shape.clone()).collect();
    let fp = Fingerprint {
        format: pfp::FORMAT.into(),
        version: pfp::VERSION,
        model: model.name.clone(),
        path: dir.display().to_string(),
        model_id: identity.to_string(),
        files: model
            .files
            .iter()
            .map(|f| FileInfo {
                name: rel_name(dir, Path::new(&f.path)),
                format: f.format.label().into(),
            })
            .collect(),
        arch: pfp::arch_signature(&shapes),
        card: model.card.clone(),
        tensors,
    };
    Ok((fp, skipped))
}

/// CycloneDX 1.6 from the provenance library, then adjusted for the registry: the component
/// named and versioned as in the registry, the bundle's file left out (the identity does not
/// cover it), licence, training data and the declared base models (`pedigree.ancestors`, marked
/// as declared by the card; proven lineage is added by the lineage step).
fn make_bom(
    dir: &Path,
    opts: &AnalysisOptions,
    fp: Option<&Fingerprint>,
    identity: &str,
    card: &CardFacts,
    sig_rel: Option<&str>,
) -> Result<Value> {
    // Without readable weights the BOM still names the model and its files.
    let stub;
    let fp = match fp {
        Some(f) => f,
        None => {
            stub = Fingerprint {
                format: pfp::FORMAT.into(),
                version: pfp::VERSION,
                model: opts.model_name.to_string(),
                path: dir.display().to_string(),
                model_id: identity.to_string(),
                files: Vec::new(),
                arch: pfp::arch_signature(&[]),
                card: Card::read_dir(dir),
                tensors: Vec::new(),
            };
            &stub
        }
    };
    let mut bom = pedigree_provenance::bom::cyclonedx(fp, None, &now_rfc3339())?;
    if let Some(meta) = bom.pointer_mut("/metadata/component") {
        meta["name"] = json!(opts.model_name);
        meta["version"] = json!(opts.version);
    }
    let comp = bom
        .pointer_mut("/components/0")
        .ok_or_else(|| anyhow!("the provenance BOM has no model component"))?;
    comp["name"] = json!(opts.model_name);
    comp["version"] = json!(opts.version);
    if let (Some(sig), Some(files)) = (
        sig_rel,
        comp.get_mut("components").and_then(Value::as_array_mut),
    ) {
        files.retain(|f| f.get("name").and_then(Value::as_str) != Some(sig));
    }
    if let Some(l) = &card.license {
        comp["licenses"] = json!([{"license": {"name": l}}]);
    }
    if !card.training_data.is_empty() {
        let ds: Vec<Value> = card
            .training_data
            .iter()
            .map(|d| json!({"type": "dataset", "name": d}))
            .collect();
        comp["modelCard"]["modelParameters"]["datasets"] = Value::Array(ds);
    }
    if !card.base_model.is_empty() {
        let relation = card
            .base_model_relation
            .clone()
            .unwrap_or_else(|| "declared".into());
        let declared: Vec<Value> = card
            .base_model
            .iter()
            .map(|b| {
                json!({
                    "type": "machine-learning-model",
                    "bom-ref": format!("declared-base:{b}"),
                    "name": b,
                    "properties": [
                        {"name": "pedigree:source", "value": "declared-card"},
                        {"name": "pedigree:relation", "value": relation},
                        {"name": "pedigree:declared-in", "value": card.base_model_sources.join(", ")},
                    ],
                })
            })
            .collect();
        let ped = &mut comp["pedigree"];
        if !ped.is_object() {
            *ped = json!({"notes": "base models declared by the model card, not yet verified against the weights"});
        }
        match ped.get_mut("ancestors").and_then(Value::as_array_mut) {
            Some(a) => a.extend(declared),
            None => ped["ancestors"] = Value::Array(declared),
        }
    }
    Ok(bom)
}

fn now_rfc3339() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let (y, m, d) = civil_from_days((secs / 86_400) as i64);
    let s = secs % 86_400;
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        s / 3600,
        s % 3600 / 60,
        s % 60
    )
}

/// Days since 1970-01-01 → (year, month, day), proleptic Gregorian (H. Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m as u32, d as u32)
}

// ---------------------------------------------------------------------------- card

/// Card facts of a model directory: the provenance card (README front matter and config.json)
/// for the base model, the README front matter for the rest.
pub fn card_facts(dir: &Path) -> CardFacts {
    let pc = Card::read_dir(dir);
    let fm = std::fs::File::open(dir.join("README.md"))
        .ok()
        .and_then(|f| {
            let mut b = Vec::new();
            f.take(MAX_CARD_BYTES).read_to_end(&mut b).ok()?;
            Some(front_matter(&String::from_utf8_lossy(&b)))
        })
        .unwrap_or_default();
    let first = |k: &str| fm.get(k).and_then(|v| v.first()).cloned();
    CardFacts {
        present: pc.present,
        base_model: pc.base_model,
        base_model_sources: pc.sources,
        base_model_relation: first("base_model_relation"),
        license: first("license"),
        training_data: fm.get("datasets").cloned().unwrap_or_default(),
    }
}

/// Top-level keys of a YAML front matter (`---` ... `---`) with their scalar value or list
/// items (block `- x` or inline `[x, y]`). Nested mappings are skipped: the card keys that
/// matter here are flat.
fn front_matter(text: &str) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut lines = text.lines();
    if lines
        .next()
        .map(|l| l.trim_start_matches('\u{feff}').trim())
        != Some("---")
    {
        return out;
    }
    let mut list_key: Option<String> = None;
    for l in lines {
        let t = l.trim();
        if t == "---" || t == "..." {
            break;
        }
        if t.is_empty() || t.starts_with('#') {
            continue;
        }
        let indented = l.starts_with([' ', '\t']);
        if let Some(k) = &list_key {
            if let Some(item) = t.strip_prefix("- ").or((t == "-").then_some("")) {
                let v = unquote(strip_comment(item));
                if !v.is_empty() && !v.contains(": ") {
                    out.entry(k.clone()).or_default().push(v);
                }
                continue;
            }
            if indented {
                continue;
            }
            list_key = None;
        }
        if indented {
            continue;
        }
        let Some((k, v)) = l.split_once(':') else {
            continue;
        };
        let k = k.trim().to_string();
        let v = strip_comment(v.trim());
        if v.is_empty() {
            out.entry(k.clone()).or_default();
            list_key = Some(k);
        } else if let Some(inner) = v.strip_prefix('[') {
            let items = inner
                .trim_end_matches(']')
                .split(',')
                .map(unquote)
                .filter(|s| !s.is_empty());
            out.entry(k).or_default().extend(items);
        } else {
            out.entry(k).or_default().push(unquote(v));
        }
    }
    out
}

fn strip_comment(s: &str) -> &str {
    match s.find(" #") {
        Some(i) if !s.starts_with(['"', '\'']) => s[..i].trim(),
        _ => s.trim(),
    }
}

fn unquote(s: &str) -> String {
    s.trim().trim_matches(['"', '\'']).trim().to_string()
}

// ---------------------------------------------------------------------------- signature

fn verify_signature(
    dir: &Path,
    opts: &AnalysisOptions,
    id_manifest: &Manifest,
    id_ser: &Serialization,
) -> SignatureFact {
    let invalid = |reason: String| SignatureFact::Invalid { reason };
    let Some(sig) = opts.signature else {
        return SignatureFact::Absent;
    };
    let bytes = match read_bounded(sig, MAX_BUNDLE_BYTES as u64) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return SignatureFact::Absent,
        Err(e) => return invalid(format!("cannot read the signature bundle: {e}")),
    };
    let bundle = match Bundle::parse(&bytes) {
        Ok(b) => b,
        Err(e) => return invalid(e.to_string()),
    };
    if opts.trusted.is_empty() {
        return invalid("the model is signed, but no signer is trusted for this namespace".into());
    }
    let mut failures = Vec::new();
    for tk in opts.trusted {
        let trust = match trust_store(tk) {
            Ok(t) => t,
            Err(e) => {
                failures.push(format!("{}: trusted key unusable: {e}", tk.name));
                continue;
            }
        };
        match pedigree_sign::verify_bundle(&bundle, &trust) {
            Ok(vb) => {
                // The signature is good; now the files must be exactly the signed ones.
                return match check_files(dir, sig, &vb.statement, id_manifest, id_ser) {
                    Ok(()) => SignatureFact::Valid {
                        signer: tk.name.clone(),
                        key: vb.signer.to_string(),
                    },
                    Err(reason) => invalid(format!("signed by {}, but {reason}", tk.name)),
                };
            }
            Err(e) => failures.push(format!("{}: {e}", tk.name)),
        }
    }
    invalid(format!(
        "no trusted signer verifies the bundle ({})",
        failures.join("; ")
    ))
}

fn trust_store(tk: &TrustedKey) -> Result<TrustStore> {
    let mut t = TrustStore::default();
    if tk.public_key_pem.contains("-----BEGIN CERTIFICATE-----") {
        t.roots = Cert::all_from_pem(&tk.public_key_pem)?;
    } else {
        t.keys.push(PublicKey::from_pem(&tk.public_key_pem)?);
    }
    Ok(t)
}

/// The model's files against the signed statement, as `pedigree_sign::verify_model` does after
/// the signature check, reusing the identity's digests when the serialization is the same.
fn check_files(
    dir: &Path,
    sig: &Path,
    st: &Statement,
    id_manifest: &Manifest,
    id_ser: &Serialization,
) -> Result<(), String> {
    let mut ser = st.serialization.clone();
    if let Some(rel) = pedigree_sign::verify::relative_inside(dir, sig) {
        ser.ignore_paths.push(rel);
    }
    let computed = if same_serialization(&ser, id_ser) {
        Cow::Borrowed(id_manifest)
    } else {
        Cow::Owned(manifest::hash_model(dir, &ser).map_err(|e| e.to_string())?)
    };
    pedigree_sign::verify::compare(st, &computed, false)
        .map_err(|e| format!("verification failed: {e}"))
}

fn same_serialization(a: &Serialization, b: &Serialization) -> bool {
    let ig = |s: &Serialization| {
        s.effective_ignores()
            .map(|v| v.into_iter().collect::<BTreeSet<_>>())
    };
    a.method == b.method
        && a.hash == b.hash
        && a.allow_symlinks == b.allow_symlinks
        && matches!((ig(a), ig(b)), (Ok(x), Ok(y)) if x == y)
}

fn read_bounded(p: &Path, max: u64) -> std::io::Result<Vec<u8>> {
    let f = std::fs::File::open(p)?;
    let mut b = Vec::new();
    f.take(max + 1).read_to_end(&mut b)?;
    if b.len() as u64 > max {
        return Err(std::io::Error::other(format!("larger than {max} bytes")));
    }
    Ok(b)
}

// ---------------------------------------------------------------------------- lineage

/// Candidate parents (or children) for a new model among the registry's versions: the
/// provenance index (exact tensor digests, multiset hashes, embedding rows, SimHash bands per
/// shape), built from stored fingerprints. Candidates still need [`relate`].
#[derive(Default)]
pub struct LineageIndex {
    index: Index,
    ids: Vec<i64>,
    known: HashSet<i64>,
}

impl LineageIndex {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn len(&self) -> usize {
        self.ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// Adds a version; a version id already present is ignored.
    pub fn insert(&mut self, version_id: i64, fingerprint: &Fingerprint) {
        if !self.known.insert(version_id) {
            return;
        }
        let internal = self.ids.len() as u32;
        self.ids.push(version_id);
        self.index
            .insert(internal, &Keys::from_fingerprint(fingerprint));
    }

    /// [`LineageIndex::insert`] from the stored JSON (`Analysis::fingerprint`).
    pub fn insert_json(&mut self, version_id: i64, fingerprint: &Value) -> Result<()> {
        self.insert(version_id, &fingerprint_from_json(fingerprint)?);
        Ok(())
    }

    /// Versions sharing something with `fingerprint`, best first (most exact keys, then most
    /// SimHash bands), at most `limit`.
    pub fn candidates(&self, fingerprint: &Fingerprint, limit: usize) -> Vec<i64> {
        self.index
            .query(&Keys::from_fingerprint(fingerprint))
            .into_iter()
            .filter_map(|h| self.ids.get(h.model as usize).copied())
            .take(limit)
            .collect()
    }

    pub fn candidates_json(&self, fingerprint: &Value, limit: usize) -> Result<Vec<i64>> {
        Ok(self.candidates(&fingerprint_from_json(fingerprint)?, limit))
    }
}

fn fingerprint_from_json(v: &Value) -> Result<Fingerprint> {
    let f: Fingerprint = Fingerprint::deserialize(v).context("not a pedigree fingerprint")?;
    if f.format != pfp::FORMAT || f.version != pfp::VERSION {
        bail!(
            "fingerprint format {} v{} not supported",
            f.format,
            f.version
        );
    }
    Ok(f)
}

/// A verified relation between a new upload and a model already in the registry.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Relationship {
    /// false: the existing model is the parent (the usual case).
    pub parent_is_new: bool,
    /// As provenance names it: identical, copy, cast, quantized, pruned, finetune, head-only,
    /// edit.
    pub relation: String,
    pub confidence: f32,
    /// What fixed the direction: `weights`, `card`, `format`, or `upload-order` (the weights
    /// and cards leave it open; the model already in the registry is taken as the parent).
    pub oriented_by: String,
    /// Whether the child's card names the parent.
    pub declared: bool,
    /// The provenance diff's evidence (counts, frozen and changed tensors of the new model,
    /// closeness, notes) and the weights' own direction.
    pub evidence: Value,
}

/// A model loaded for [`relate_prepared`], so a new upload is read once for all candidates.
pub struct PreparedModel {
    name: String,
    loaded: Loaded,
    skipped: Vec<String>,
}

impl PreparedModel {
    /// Opens a model directory; `name` (e.g. `ns/name`) is what cards are matched against.
    pub fn open(dir: &Path, name: &str) -> Result<PreparedModel> {
        guarded("model load", || {
            let (model, skipped) = open_model(dir, name)?;
            let loaded = Loaded::load(&model)?;
            Ok(PreparedModel {
                name: name.to_string(),
                loaded,
                skipped,
            })
        })
        .map_err(|e| anyhow!(e))?
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Weight files that could not be read and were left out.
    pub fn skipped(&self) -> &[String] {
        &self.skipped
    }
}

/// Verifies a candidate pair with the provenance diff; `None` when the weights are unrelated.
/// Models are named after their directories; see [`relate_named`] for registry names.
pub fn relate(new_dir: &Path, existing_dir: &Path) -> Result<Option<Relationship>> {
    relate_named(
        new_dir,
        &manifest::model_name(new_dir),
        existing_dir,
        &manifest::model_name(existing_dir),
    )
}

/// [`relate`] with the names cards are matched against (`ns/name`).
pub fn relate_named(
    new_dir: &Path,
    new_name: &str,
    existing_dir: &Path,
    existing_name: &str,
) -> Result<Option<Relationship>> {
    let new = PreparedModel::open(new_dir, new_name)?;
    let existing = PreparedModel::open(existing_dir, existing_name)?;
    Ok(relate_prepared(&new, &existing))
}

/// The pair verified and oriented as `pedigree lineage` does for one pair: the diff's relation;
/// the direction from the weights (lossy side, added tensors, spectral norm), else from the
/// cards, else the serialization (training output before export), else the model already in
/// the registry is the parent (head kurtosis, a statistic, is recorded but does not decide).
/// Confidence: provenance's per-relation confidence times the orientation factor (1.0 weights,
/// 0.9 card, 0.7 weaker tie-breakers).
pub fn relate_prepared(new: &PreparedModel, existing: &PreparedModel) -> Option<Relationship> {
    // A = existing, B = new: the diff's "frozen"/"changed" tensors are the new model's.
    let r = guarded("diff", || diff_loaded(&existing.loaded, &new.loaded)).ok()?;
    if r.relation == Relation::Unrelated {
        return None;
    }
    let new_declares = new.loaded.card.declares(&existing.name);
    let existing_declares = existing.loaded.card.declares(&new.name);
    // A weight statistic (head kurtosis) does not orient an edge here: cards outrank it, and
    // so does the upload order. The lab's families showed why: a head initialised from the
    // parent's and trained on looks "more trained" than the parent's own, and the statistic
    // turned base → fine-tune edges around. (It stays in the evidence as `weights_direction`.)
    let statistic = r.direction_by.is_statistic();
    let (parent_is_new, by) = match r.direction {
        Direction::AToB if !statistic => (false, "weights"),
        Direction::BToA if !statistic => (true, "weights"),
        _ if new_declares != existing_declares => (existing_declares, "card"),
        Direction::Unknown if new.loaded.format_rank != existing.loaded.format_rank => (
            new.loaded.format_rank < existing.loaded.format_rank,
            "format",
        ),
        _ => (false, "upload-order"),
    };
    let factor = match by {
        "weights" => 1.0,
        "card" => 0.9,
        _ => 0.7,
    };
    let mut evidence = serde_json::to_value(&r.evidence).unwrap_or(Value::Null);
    if let Some(o) = evidence.as_object_mut() {
        o.insert(
            "weights_direction".into(),
            json!(match r.direction {
                Direction::AToB => "existing-to-new",
                Direction::BToA => "new-to-existing",
                Direction::Unknown => "unknown",
            }),
        );
    }
    Some(Relationship {
        parent_is_new,
        relation: r.relation.label().to_string(),
        confidence: (pedigree_provenance::lineage::base_confidence(&r) * factor * 1000.0).round()
            / 1000.0,
        oriented_by: by.to_string(),
        declared: if parent_is_new {
            existing_declares
        } else {
            new_declares
        },
        evidence,
    })
}

/// A finding about the new model's card against one verified pair (the lineage findings of
/// `pedigree lineage`, for one pair).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct CardFinding {
    /// `declared-parent-unrelated`, `declared-parent-is-child`, `undeclared-parent`.
    pub kind: String,
    pub message: String,
}

/// The new model's card against what the weights show about `existing_name`:
/// * it declares `existing_name` as its base, but the weights show no relation
///   (`declared-parent-unrelated`: a claimed base the weights contradict), or show the
///   existing model descends from this one (`declared-parent-is-child`);
/// * it declares no base at all, yet descends from `existing_name` (`undeclared-parent`).
///
/// A card that names another ancestor is not judged here: with one pair, a summarised chain
/// cannot be told from a wrong parent.
pub fn declared_contradiction(
    card: &CardFacts,
    existing_name: &str,
    relationship: Option<&Relationship>,
) -> Option<CardFinding> {
    let declares = card.base_model.iter().any(|b| same_name(b, existing_name));
    match relationship {
        None if declares => Some(CardFinding {
            kind: "declared-parent-unrelated".into(),
            message: format!(
                "the card declares {existing_name} as its base model, but the weights show no relation to it"
            ),
        }),
        Some(r) if declares && r.parent_is_new => Some(CardFinding {
            kind: "declared-parent-is-child".into(),
            message: format!(
                "the card declares {existing_name} as its base model, but the weights show {existing_name} derives from this model ({})",
                r.relation
            ),
        }),
        Some(r) if !r.parent_is_new && card.base_model.is_empty() => Some(CardFinding {
            kind: "undeclared-parent".into(),
            message: format!(
                "the card declares no base model; the weights descend from {existing_name} ({}, confidence {:.2})",
                r.relation, r.confidence
            ),
        }),
        _ => None,
    }
}

// ---------------------------------------------------------------------------- tests

#[cfg(test)]
mod tests {
    //! Fixtures already in the repository (nothing new committed):
    //! * `tests/lineage/families/` (made by `tests/lineage/make_families.py`): small real models
    //!   trained on digits, a base and its derivatives (fine-tune, casts, quantized, new head,
    //!   edit), and unrelated bases;
    //! * `examples/malicious/` (copied from `tests/corpus`, made by `make_corpus.py`);
    //! * `crates/pedigree-sign/tests/data/keys/` (made by `make-keys.sh`): test-only keys.
    //!
    //! Every test copies what it needs into a temporary directory: uploads get modified.

    use super::*;
    use pedigree_sign::{PrivateKey, SignOptions, Signer, sign_model};

    fn repo() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
    }

    fn family(name: &str) -> PathBuf {
        repo().join("tests/lineage/families").join(name)
    }

    fn key_file(name: &str) -> String {
        std::fs::read_to_string(
            repo()
                .join("crates/pedigree-sign/tests/data/keys")
                .join(name),
        )
        .unwrap()
    }

    fn copy_dir(src: &Path, dst: &Path) {
        std::fs::create_dir_all(dst).unwrap();
        for e in std::fs::read_dir(src).unwrap() {
            let e = e.unwrap();
            if e.file_type().unwrap().is_file() {
                std::fs::copy(e.path(), dst.join(e.file_name())).unwrap();
            }
        }
    }

    /// A copy of a family member in a fresh temporary directory, under `name`.
    fn upload(member: &str, name: &str) -> (tempfile::TempDir, PathBuf) {
        let t = tempfile::tempdir().unwrap();
        let d = t.path().join(name);
        copy_dir(&family(member), &d);
        (t, d)
    }

    fn opts<'a>(
        name: &'a str,
        sig: Option<&'a Path>,
        trusted: &'a [TrustedKey],
    ) -> AnalysisOptions<'a> {
        AnalysisOptions {
            model_name: name,
            version: "1.0.0",
            signature: sig,
            trusted,
        }
    }

    fn trusted(name: &str, pub_pem: &str) -> TrustedKey {
        TrustedKey {
            name: name.into(),
            public_key_pem: key_file(pub_pem),
        }
    }

    fn sign_with(dir: &Path, key: &str) -> (PathBuf, Manifest) {
        let sig = dir.join("model.sig");
        let k = PrivateKey::from_pem(&key_file(key)).unwrap();
        let (m, bytes) = sign_model(
            dir,
            &Signer::Key(k),
            &SignOptions {
                signature_path: Some(sig.clone()),
                ..Default::default()
            },
        )
        .unwrap();
        std::fs::write(&sig, bytes).unwrap();
        (sig, m)
    }

    #[test]
    fn clean_safetensors_model() {
        let (_t, d) = upload("base-a", "base-a");
        let a = analyze(&d, &opts("acme/base-a", None, &[])).unwrap();
        let want = manifest::hash_model(&d, &Serialization::default()).unwrap();
        assert_eq!(a.identity, want.model_id());
        assert!(a.identity.starts_with("sha256:"));
        assert!(
            a.max_severity.is_none_or(|s| s <= Severity::Info),
            "{:?}",
            a.findings
        );
        assert!(a.scan_errors.is_empty(), "{:?}", a.scan_errors);
        assert_eq!(a.formats, vec!["safetensors".to_string()]);
        let names: Vec<&str> = a.files.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(names, ["README.md", "model.safetensors"]);
        let st = a
            .files
            .iter()
            .find(|f| f.path == "model.safetensors")
            .unwrap();
        assert_eq!(st.format, "safetensors");
        assert_eq!(
            st.sha256,
            sha256_file(&d.join("model.safetensors")).unwrap()
        );
        assert_eq!(
            st.size,
            std::fs::metadata(d.join("model.safetensors"))
                .unwrap()
                .len()
        );
        assert!(st.in_identity);
        let fp = a.fingerprint.as_ref().expect("fingerprint");
        assert_eq!(fp.model_id, a.identity);
        assert_eq!(fp.model, "acme/base-a");
        assert_eq!(fp.path, "acme/base-a:1.0.0");
        assert!(!fp.tensors.is_empty());
        assert_eq!(fp.files[0].name, "model.safetensors");
        // The same tensors as the provenance library's own fingerprint.
        let lib = pedigree_provenance::fingerprint(&d).unwrap();
        let digests = |f: &Fingerprint| {
            f.tensors
                .iter()
                .map(|t| t.digest.clone())
                .collect::<Vec<_>>()
        };
        assert_eq!(digests(fp), digests(&lib));
        assert_eq!(fp.arch.signature, lib.arch.signature);
        assert_eq!(a.signature, SignatureFact::Absent);
        assert_eq!(a.bom["specVersion"], "1.6");
        assert_eq!(a.bom["components"][0]["name"], "acme/base-a");
        assert_eq!(a.bom["components"][0]["version"], "1.0.0");
        assert_eq!(
            a.bom["components"][0]["hashes"][0]["content"],
            a.identity.trim_start_matches("sha256:")
        );
        assert!(a.card.present);
        assert_eq!(a.card.license.as_deref(), Some("apache-2.0"));
        assert!(a.card.base_model.is_empty());
        // JSON round trip, as the server stores it.
        let back: Analysis = serde_json::from_str(&serde_json::to_string(&a).unwrap()).unwrap();
        assert_eq!(back.identity, a.identity);
        assert_eq!(back.files, a.files);
        assert_eq!(back.fingerprint.unwrap().tensors.len(), fp.tensors.len());
    }

    #[test]
    fn malicious_pickles_give_rule_ids_and_no_error() {
        let t = tempfile::tempdir().unwrap();
        let d = t.path().join("evil");
        std::fs::create_dir_all(d.join("sub")).unwrap();
        let ex = repo().join("examples/malicious");
        std::fs::copy(ex.join("os_system_p2.bin"), d.join("pytorch_model.bin")).unwrap();
        std::fs::copy(ex.join("zip_bad_crc.pt"), d.join("sub/model.pt")).unwrap();
        let a = analyze(&d, &opts("evil/model", None, &[])).unwrap();
        let has =
            |rule: &str, file: &str| a.findings.iter().any(|f| f.rule == rule && f.file == file);
        assert!(has("PDG101", "pytorch_model.bin"), "{:?}", a.findings);
        assert!(has("PDG101", "sub/model.pt"), "{:?}", a.findings);
        assert!(has("PDG201", "sub/model.pt"), "{:?}", a.findings);
        assert_eq!(a.max_severity, Some(Severity::Critical));
        assert!(a.formats.contains(&"pickle".to_string()), "{:?}", a.formats);
        // Locations are relative to the upload: no quarantine path leaks into the record.
        let root = d.display().to_string();
        assert!(
            a.findings
                .iter()
                .all(|f| !f.location.contains(&root) && !f.message.contains(&root))
        );
        assert!(
            a.findings
                .iter()
                .any(|f| f.location.starts_with("sub/model.pt!")),
            "{:?}",
            a.findings
        );
        // No weights to fingerprint: said so, and the BOM still names the model and its files.
        assert!(a.fingerprint.is_none(), "{:?}", a.fingerprint);
        assert!(
            a.provenance_errors
                .iter()
                .any(|e| e.starts_with("no fingerprint")),
            "{:?}",
            a.provenance_errors
        );
        assert_eq!(a.bom["components"][0]["name"], "evil/model");
        assert_eq!(
            a.bom["components"][0]["components"]
                .as_array()
                .unwrap()
                .len(),
            2
        );
    }

    #[test]
    fn odd_entries_are_surfaced_not_fatal() {
        let (_t, d) = upload("base-a", "m");
        std::os::unix::fs::symlink("/etc/passwd", d.join("leak.bin")).unwrap();
        let a = analyze(&d, &opts("acme/m", None, &[])).unwrap();
        assert!(
            a.scan_errors
                .iter()
                .any(|e| e.starts_with("leak.bin: symbolic link")),
            "{:?}",
            a.scan_errors
        );
        assert!(a.files.iter().all(|f| f.path != "leak.bin"));
        // The identity covers the regular files only.
        let ser = Serialization {
            ignore_paths: vec!["leak.bin".into()],
            ..Default::default()
        };
        assert_eq!(
            a.identity,
            manifest::hash_model(&d, &ser).unwrap().model_id()
        );
        assert!(a.fingerprint.is_some());
        // The provenance BOM refuses symlinks: said so, without the quarantine path.
        assert!(a.bom.is_null());
        let root = d.display().to_string();
        assert!(
            a.provenance_errors
                .iter()
                .any(|e| e.starts_with("no BOM") && e.contains("leak.bin") && !e.contains(&root)),
            "{:?}",
            a.provenance_errors
        );

        assert!(analyze(&d.join("missing"), &opts("acme/m", None, &[])).is_err());
        let empty = tempfile::tempdir().unwrap();
        assert!(analyze(empty.path(), &opts("acme/m", None, &[])).is_err());
    }

    #[test]
    fn a_broken_weight_file_does_not_hide_the_others() {
        let (_t, d) = upload("base-b", "m");
        // A safetensors file cut short, beside the real weights.
        let full = std::fs::read(d.join("model.safetensors")).unwrap();
        std::fs::write(d.join("extra.safetensors"), &full[..full.len() / 2]).unwrap();
        assert!(
            Model::open(&d).is_err(),
            "the strict reader refuses the directory"
        );
        let a = analyze(&d, &opts("acme/m", None, &[])).unwrap();
        let fp = a.fingerprint.as_ref().expect("fingerprint");
        let names: Vec<&str> = fp.files.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(names, ["model.safetensors"]);
        assert!(
            a.provenance_errors
                .iter()
                .any(|e| e.starts_with("extra.safetensors: weights not read")),
            "{:?}",
            a.provenance_errors
        );
        assert!(
            !a.provenance_errors
                .iter()
                .any(|e| e.contains(&d.display().to_string()))
        );
        assert!(a.bom.is_object());
        // Lineage still sees base-b in it.
        let b = PreparedModel::open(&family("b-finetune"), "acme/b-finetune").unwrap();
        let m = PreparedModel::open(&d, "acme/m").unwrap();
        assert_eq!(m.skipped().len(), 1);
        let r = relate_prepared(&b, &m).expect("related");
        assert_eq!(r.relation, "finetune");
        // A full fine-tune: the weights leave the direction open and no card names the other,
        // so the model already in the registry is taken as the parent, at reduced confidence.
        assert_eq!(r.evidence["weights_direction"], "unknown");
        assert_eq!(
            (r.parent_is_new, r.oriented_by.as_str()),
            (false, "upload-order")
        );
        assert!(r.confidence < 0.7, "{r:?}");
    }

    #[test]
    fn signatures_valid_invalid_absent() {
        let (_t, d) = upload("base-a", "base-a");
        let (sig, signed) = sign_with(&d, "p256.key.pem");
        let keys = [
            trusted("other", "p384.pub.pem"),
            trusted("acme-release", "p256.pub.pem"),
        ];
        let a = analyze(&d, &opts("acme/base-a", Some(&sig), &keys)).unwrap();
        match &a.signature {
            SignatureFact::Valid { signer, key } => {
                assert_eq!(signer, "acme-release");
                assert!(
                    key.contains("P-256") || key.contains("p256") || key.starts_with("key"),
                    "{key}"
                );
            }
            other => panic!("{other:?}"),
        }
        // The identity is the signed subject: the bundle is not part of it, but is listed.
        assert_eq!(a.identity, signed.model_id());
        let sf = a.files.iter().find(|f| f.path == "model.sig").unwrap();
        assert!(!sf.in_identity);
        assert_eq!(sf.sha256, sha256_file(&sig).unwrap());
        let bom_files: Vec<&str> = a.bom["components"][0]["components"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap())
            .collect();
        assert!(!bom_files.contains(&"model.sig"), "{bom_files:?}");
        assert_eq!(a.fingerprint.as_ref().unwrap().model_id, a.identity);
        let json = serde_json::to_value(&a.signature).unwrap();
        assert_eq!(json["status"], "valid");

        // Untrusted key.
        let only_other = [trusted("other", "p384.pub.pem")];
        match analyze(&d, &opts("acme/base-a", Some(&sig), &only_other))
            .unwrap()
            .signature
        {
            SignatureFact::Invalid { reason } => assert!(
                reason.contains("other") && reason.contains("not signed"),
                "{reason}"
            ),
            other => panic!("{other:?}"),
        }
        // No trusted signer configured.
        assert!(matches!(
            analyze(&d, &opts("acme/base-a", Some(&sig), &[]))
                .unwrap()
                .signature,
            SignatureFact::Invalid { .. }
        ));
        // Absent: no bundle given, or the given one does not exist.
        assert_eq!(
            analyze(&d, &opts("acme/base-a", None, &keys))
                .unwrap()
                .signature,
            SignatureFact::Absent
        );
        let gone = d.join("nope.sig");
        assert_eq!(
            analyze(&d, &opts("acme/base-a", Some(&gone), &keys))
                .unwrap()
                .signature,
            SignatureFact::Absent
        );

        // A file modified after signing.
        let w = d.join("model.safetensors");
        let mut bytes = std::fs::read(&w).unwrap();
        let n = bytes.len();
        bytes[n - 1] ^= 0x40;
        std::fs::write(&w, &bytes).unwrap();
        let a2 = analyze(&d, &opts("acme/base-a", Some(&sig), &keys)).unwrap();
        match &a2.signature {
            SignatureFact::Invalid { reason } => {
                assert!(
                    reason.contains("model.safetensors") && reason.contains("modified"),
                    "{reason}"
                )
            }
            other => panic!("{other:?}"),
        }
        assert_ne!(a2.identity, a.identity);

        // A file added after signing.
        bytes[n - 1] ^= 0x40;
        std::fs::write(&w, &bytes).unwrap();
        std::fs::write(d.join("extra.txt"), b"x").unwrap();
        match analyze(&d, &opts("acme/base-a", Some(&sig), &keys))
            .unwrap()
            .signature
        {
            SignatureFact::Invalid { reason } => assert!(reason.contains("extra.txt"), "{reason}"),
            other => panic!("{other:?}"),
        }

        // A malformed bundle.
        std::fs::remove_file(d.join("extra.txt")).unwrap();
        std::fs::write(&sig, b"{\"not\": \"a bundle\"}").unwrap();
        match analyze(&d, &opts("acme/base-a", Some(&sig), &keys))
            .unwrap()
            .signature
        {
            SignatureFact::Invalid { reason } => {
                assert!(reason.contains("invalid bundle"), "{reason}")
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn certificate_signer_and_other_serialization() {
        let (_t, d) = upload("a-finetune", "ft");
        let sig = d.join("model.sig");
        let chain: Vec<Cert> = ["p256-leaf.pem", "p256-int.pem"]
            .iter()
            .flat_map(|f| Cert::all_from_pem(&key_file(f)).unwrap())
            .collect();
        let signer = Signer::certificate(
            PrivateKey::from_pem(&key_file("p256.key.pem")).unwrap(),
            chain,
        )
        .unwrap();
        // Signed with shards and BLAKE3: verification cannot reuse the identity's digests.
        let ser = Serialization {
            method: pedigree_sign::Method::Shards { shard_size: 4096 },
            hash: pedigree_sign::HashAlgorithm::Blake3,
            ..Default::default()
        };
        let (_, bytes) = sign_model(
            &d,
            &signer,
            &SignOptions {
                serialization: ser,
                signature_path: Some(sig.clone()),
                ..Default::default()
            },
        )
        .unwrap();
        std::fs::write(&sig, bytes).unwrap();
        let keys = [
            trusted("a-key", "p256.pub.pem"),
            trusted("acme-ca", "p256-root.pem"),
        ];
        match analyze(&d, &opts("acme/ft", Some(&sig), &keys))
            .unwrap()
            .signature
        {
            SignatureFact::Valid { signer, key } => {
                assert_eq!(signer, "acme-ca");
                assert!(key.contains("pedigree test signer p256"), "{key}");
            }
            other => panic!("{other:?}"),
        }
        let wrong_root = [trusted("other-ca", "p256-other-root.pem")];
        assert!(matches!(
            analyze(&d, &opts("acme/ft", Some(&sig), &wrong_root))
                .unwrap()
                .signature,
            SignatureFact::Invalid { .. }
        ));
    }

    #[test]
    fn card_facts_from_front_matter() {
        let (_t, d) = upload("a-finetune", "ft");
        std::fs::write(
            d.join("README.md"),
            "---\nlicense: mit  # permissive\nbase_model:\n- acme/base-a\nbase_model_relation: finetune\n\
             datasets:\n  - mnist\n  - \"acme/digits-extra\"\nmodel-index:\n- name: ft\n  results: []\ntags: [a, b]\n---\n# ft\n\nlicense: not-this\n",
        )
        .unwrap();
        let a = analyze(&d, &opts("acme/ft", None, &[])).unwrap();
        assert_eq!(
            a.card,
            CardFacts {
                present: true,
                base_model: vec!["acme/base-a".into()],
                base_model_sources: vec!["README.md".into()],
                base_model_relation: Some("finetune".into()),
                license: Some("mit".into()),
                training_data: vec!["mnist".into(), "acme/digits-extra".into()],
            }
        );
        let comp = &a.bom["components"][0];
        assert_eq!(comp["licenses"][0]["license"]["name"], "mit");
        assert_eq!(
            comp["modelCard"]["modelParameters"]["datasets"][1]["name"],
            "acme/digits-extra"
        );
        let anc = comp["pedigree"]["ancestors"].as_array().unwrap();
        assert_eq!(anc.len(), 1);
        assert_eq!(anc[0]["name"], "acme/base-a");
        assert!(anc[0]["properties"].to_string().contains("declared-card"));

        // Inline lists; no card at all.
        let fm = front_matter("---\ndatasets: [a, 'b']\nlicense: \"apache-2.0\"\n---\n");
        assert_eq!(fm["datasets"], vec!["a".to_string(), "b".to_string()]);
        assert_eq!(fm["license"], vec!["apache-2.0".to_string()]);
        assert!(front_matter("# no front matter\nlicense: x\n").is_empty());
        let empty = tempfile::tempdir().unwrap();
        assert_eq!(card_facts(empty.path()), CardFacts::default());
    }

    #[test]
    fn relate_orients_derivatives_and_rejects_unrelated() {
        let base = family("base-a");
        // Fine-tune: the existing base is the parent; and the other way round.
        let r = relate_named(
            &family("a-finetune"),
            "acme/a-finetune",
            &base,
            "acme/base-a",
        )
        .unwrap()
        .expect("related");
        assert_eq!(r.relation, "finetune");
        assert!(!r.parent_is_new);
        assert!(r.declared, "a-finetune's card declares base-a");
        assert!(
            r.confidence > 0.5 && r.confidence <= 1.0,
            "{}",
            r.confidence
        );
        let frozen: Vec<&str> = r.evidence["frozen"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        assert!(frozen.contains(&"tok_emb.weight"), "{frozen:?}");
        let back = relate_named(
            &base,
            "acme/base-a",
            &family("a-finetune"),
            "acme/a-finetune",
        )
        .unwrap()
        .expect("related");
        assert!(back.parent_is_new);
        assert_eq!(back.relation, "finetune");

        // Derivatives whose direction the weights fix: quantized (GGUF) and cast.
        let q = relate(&family("a-q8"), &base).unwrap().expect("quantized");
        assert_eq!(
            (q.relation.as_str(), q.parent_is_new, q.oriented_by.as_str()),
            ("quantized", false, "weights")
        );
        let q = relate(&base, &family("a-q8")).unwrap().expect("quantized");
        assert!(q.parent_is_new);
        let c = relate(&family("a-fp16"), &base).unwrap().expect("cast");
        assert_eq!((c.relation.as_str(), c.parent_is_new), ("cast", false));

        // Unrelated bases.
        assert!(relate(&family("base-b"), &base).unwrap().is_none());
        assert!(relate(&family("base-c"), &base).unwrap().is_none());
        // Not a model.
        let empty = tempfile::tempdir().unwrap();
        assert!(relate(empty.path(), &base).is_err());
    }

    #[test]
    fn card_contradictions() {
        // a-edit declares base-b, but its weights come from base-a.
        let edit_card = card_facts(&family("a-edit"));
        let r = relate_named(
            &family("a-edit"),
            "acme/a-edit",
            &family("base-b"),
            "acme/base-b",
        )
        .unwrap();
        assert!(r.is_none());
        let f = declared_contradiction(&edit_card, "acme/base-b", r.as_ref()).expect("finding");
        assert_eq!(f.kind, "declared-parent-unrelated");
        let r = relate_named(
            &family("a-edit"),
            "acme/a-edit",
            &family("base-a"),
            "acme/base-a",
        )
        .unwrap()
        .expect("edit of base-a");
        assert_eq!(r.relation, "edit");
        assert!(!r.parent_is_new);
        // Declares another model, so no claim about base-a is judged here.
        assert_eq!(
            declared_contradiction(&edit_card, "acme/base-a", Some(&r)),
            None
        );
        // a-newhead hides its base.
        let nh_card = card_facts(&family("a-newhead"));
        let r = relate_named(
            &family("a-newhead"),
            "acme/a-newhead",
            &family("base-a"),
            "acme/base-a",
        )
        .unwrap()
        .expect("head-only");
        assert_eq!(r.relation, "head-only");
        assert!(!r.parent_is_new);
        assert!(!r.declared);
        let f = declared_contradiction(&nh_card, "acme/base-a", Some(&r)).expect("finding");
        assert_eq!(f.kind, "undeclared-parent");
        // A truthful card: nothing to say.
        let ft_card = card_facts(&family("a-finetune"));
        let r = relate(&family("a-finetune"), &family("base-a")).unwrap();
        assert_eq!(declared_contradiction(&ft_card, "base-a", r.as_ref()), None);
    }

    #[test]
    fn lineage_index_finds_the_parent() {
        let mut idx = LineageIndex::new();
        assert!(idx.is_empty());
        let mut fps = HashMap::new();
        for (id, m) in [
            (1, "base-a"),
            (2, "base-b"),
            (3, "base-c"),
            (4, "a-finetune"),
            (5, "b-finetune"),
        ] {
            let (_t, d) = upload(m, m);
            let a = analyze(&d, &opts(m, None, &[])).unwrap();
            let fp = a.fingerprint.unwrap();
            fps.insert(m, fp.clone());
            if id <= 3 {
                // As the server would: from the stored JSON.
                idx.insert_json(id, &serde_json::to_value(&fp).unwrap())
                    .unwrap();
            }
        }
        idx.insert(1, &fps["base-b"]); // a known id is not re-inserted
        assert_eq!(idx.len(), 3);
        let c = idx.candidates(&fps["a-finetune"], 10);
        assert_eq!(c.first(), Some(&1), "{c:?}");
        assert!(!c.contains(&2), "{c:?}");
        let c = idx.candidates(&fps["b-finetune"], 10);
        assert!(c.contains(&2), "{c:?}");
        assert!(!c.contains(&1), "{c:?}");
        assert_eq!(idx.candidates(&fps["a-finetune"], 0), Vec::<i64>::new());
        assert!(idx.candidates_json(&json!({"format": "x"}), 3).is_err());
    }

    #[test]
    fn dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(19_723), (2024, 1, 1));
        assert_eq!(civil_from_days(19_782), (2024, 2, 29));
        assert_eq!(now_rfc3339().len(), 20);
    }
}
