//! The registry policy: what an upload must satisfy to be approved, read from a TOML file, and
//! [`evaluate`], which turns everything the ingest pipeline learned about an upload (a
//! [`Candidate`]) into a [`Decision`]: `approved`, `held` (for a human to review) or `rejected`,
//! with every [`Reason`] carrying a stable rule id from [`POLICY_RULES`].
//!
//! # The policy file
//!
//! ```toml
//! [defaults]                         # applies to every namespace
//! max_severity = "medium"            # a scan finding ABOVE this rejects (info|low|medium|high|critical)
//! hold_above = "low"                 # a finding above this (and not above max_severity) is held
//! allowed_formats = ["safetensors", "gguf", "onnx", "pytorch", "numpy"]   # or "any" (the default)
//! require_signature = false          # an upload must carry a valid signature by a trusted signer
//! trusted_signers = []               # see [namespaces.acme] below
//! require_approved_base = true       # each declared/inferred base must be approved, not flagged
//! licenses = ["apache-2.0", "mit", "bsd-3-clause"]   # licence allow-list, or "any" (the default)
//! publishers = ["acme", "hf-mirror"] # namespaces allowed to publish, or "any" (the default)
//! typosquat = { max_distance = 2, level = "hold" }   # name too close to another publisher's
//! card = { require_base_model = "warn", require_training_data = "warn" }
//!
//! [cascade]
//! min_confidence = 0.6               # lineage edges below this do not propagate a flag
//!
//! [namespaces.acme]                  # overrides [defaults] for uploads to acme/..., key by key
//! require_signature = true
//! trusted_signers = [
//!   { name = "acme-release", public_key_file = "keys/acme.pub" },   # relative to this file
//!   # { name = "acme-ci", public_key = "-----BEGIN PUBLIC KEY-----\n..." },
//! ]
//! ```
//!
//! * Every key is optional; an empty file is [`Policy::default_policy`]. Unknown keys are errors
//!   (a misspelt key must not silently weaken the policy), and so are unknown severities,
//!   formats and levels; errors name the key (`namespaces.acme.max_severity: ...`).
//! * A `[namespaces.NAME]` table takes the same keys as `[defaults]` except `publishers` (the
//!   publisher allow-list is one list for the whole registry). Each key it sets replaces the
//!   default, lists included (they are not merged); inside `typosquat` and `card` each sub-key
//!   overrides on its own. `"any"` resets an allow-list to "anything" in a namespace; an empty
//!   list allows nothing.
//! * Levels (`typosquat.level`, `card.*`) are `"off"`, `"warn"`, `"hold"` or `"reject"`.
//! * `allowed_formats` uses the format names `pedigree scan` reports (`safetensors`, `gguf`,
//!   `onnx`, `torch-zip`, `torch-script`, `torch-legacy`, `torch-legacy-tar`, `pickle`, `npy`,
//!   `npz`, `joblib`, `keras`, `hdf5`, `tensorflow`, `zip`, `tar`, `seven-zip`, `compressed`) and
//!   the family names `pytorch` (the four `torch-*`), `numpy` (`npy`, `npz`) and `keras`
//!   (`keras`, `hdf5`). Files that hold no weights are not judged by it: see
//!   [`NON_WEIGHT_FORMATS`].
//! * Trusted signers: `name` and exactly one of `public_key_file` (read when the policy is loaded,
//!   relative to the policy file's directory) or `public_key` (inline PEM). The key must be a PEM
//!   `PUBLIC KEY` that `pedigree-sign` can use (ECDSA P-256/384/521); a bad or missing key is a
//!   load error, not a surprise at the first upload.
//!
//! # Decisions
//!
//! The outcome is `rejected` if any reason is at level `reject`, else `held` if any is at `hold`,
//! else `approved`; `warn` reasons are recorded with an approval.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};

use pedigree_scan::severity::Severity;
use serde::{Deserialize, Serialize};

use crate::names::{self, NameClash, NameKey};

/// Every policy rule: stable id and one line on what it checks. Reasons carry these ids.
pub const POLICY_RULES: &[(&str, &str)] = &[
    (
        "POL001",
        "a scan finding is above the policy's max_severity (reject)",
    ),
    (
        "POL002",
        "a scan finding is above hold_above, up to max_severity (hold for review)",
    ),
    (
        "POL003",
        "a weight file is in a format the policy does not allow (reject)",
    ),
    (
        "POL004",
        "the namespace requires a signature and the upload has none (reject)",
    ),
    (
        "POL005",
        "the upload's signature does not verify (reject, whether or not signatures are required)",
    ),
    (
        "POL006",
        "the signature verifies but its signer is not trusted for the namespace (reject if signatures are required, else warn)",
    ),
    (
        "POL007",
        "a base model is not approved in the registry (reject if rejected; hold if missing, held or in quarantine)",
    ),
    (
        "POL008",
        "a base model is flagged by an advisory (reject; warn if require_approved_base is off)",
    ),
    (
        "POL009",
        "the licence is not on the allow-list (reject), or no licence is declared (hold)",
    ),
    (
        "POL010",
        "the namespace is not on the publisher allow-list (reject)",
    ),
    (
        "POL011",
        "the name is too close to an approved model of another publisher (typosquat; hold by default)",
    ),
    (
        "POL012",
        "the model card does not declare a base model (warn by default)",
    ),
    (
        "POL013",
        "the model card does not declare training data (warn by default)",
    ),
    (
        "POL014",
        "the lineage analysis contradicts the upload's declared base (hold)",
    ),
    (
        "POL015",
        "the weights derive from a base the model card does not declare (warn)",
    ),
];

/// Formats that hold no weights and are not judged by `allowed_formats`: configuration and text
/// (`json`, `yaml`, `toml`, `text`, `txt`, `markdown`), and `unknown`, which is what the scanner
/// calls every file it does not recognise as a model format (configs, tokenizers, READMEs). An
/// unreadable weight file does not slip through this way: the scanner reports a finding for it,
/// which the severity rules judge.
pub const NON_WEIGHT_FORMATS: &[&str] =
    &["json", "yaml", "toml", "text", "txt", "markdown", "unknown"];

/// The format names `pedigree scan` reports (`pedigree_formats::container::Format`, kebab-case).
pub const KNOWN_FORMATS: &[&str] = &[
    "pickle",
    "torch-zip",
    "torch-script",
    "torch-legacy",
    "torch-legacy-tar",
    "npy",
    "npz",
    "joblib",
    "compressed",
    "zip",
    "tar",
    "seven-zip",
    "safetensors",
    "gguf",
    "onnx",
    "hdf5",
    "keras",
    "tensorflow",
    "unknown",
];

/// Family names accepted in `allowed_formats`, and what each covers.
pub const FORMAT_FAMILIES: &[(&str, &[&str])] = &[
    (
        "pytorch",
        &[
            "torch-zip",
            "torch-script",
            "torch-legacy",
            "torch-legacy-tar",
        ],
    ),
    ("numpy", &["npy", "npz"]),
    ("keras", &["keras", "hdf5"]),
];

/// At most this many reasons of one rule are listed; the rest are summed up in one more.
const MAX_REASONS_PER_RULE: usize = 20;

// ---------------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------------

#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error("cannot read policy file {}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The TOML does not parse or does not fit the schema (the message has line, column and key).
    #[error("policy: {message}")]
    Syntax { message: String },
    /// A value is wrong; `key` is its dotted path, e.g. `namespaces.acme.max_severity`.
    #[error("policy: {key}: {message}")]
    Invalid { key: String, message: String },
    #[error("policy: {key}: cannot read public key file {}: {source}", path.display())]
    KeyFile {
        key: String,
        path: PathBuf,
        source: std::io::Error,
    },
    /// An error in a file, with the file's path.
    #[error("{}: {source}", path.display())]
    InFile {
        path: PathBuf,
        source: Box<PolicyError>,
    },
}

fn invalid(key: impl Into<String>, message: impl Into<String>) -> PolicyError {
    PolicyError::Invalid {
        key: key.into(),
        message: message.into(),
    }
}

// ---------------------------------------------------------------------------------------------
// The resolved policy
// ---------------------------------------------------------------------------------------------

/// What a rule does when it fires; `off` turns it off.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RuleLevel {
    Off,
    Warn,
    Hold,
    Reject,
}

impl RuleLevel {
    fn parse(key: &str, s: &str) -> Result<RuleLevel, PolicyError> {
        match s.to_ascii_lowercase().as_str() {
            "off" => Ok(RuleLevel::Off),
            "warn" => Ok(RuleLevel::Warn),
            "hold" => Ok(RuleLevel::Hold),
            "reject" => Ok(RuleLevel::Reject),
            _ => Err(invalid(
                key,
                format!("unknown level '{s}' (expected one of: off, warn, hold, reject)"),
            )),
        }
    }

    fn level(self) -> Option<Level> {
        match self {
            RuleLevel::Off => None,
            RuleLevel::Warn => Some(Level::Warn),
            RuleLevel::Hold => Some(Level::Hold),
            RuleLevel::Reject => Some(Level::Reject),
        }
    }
}

/// A signer whose signatures a namespace accepts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrustedSigner {
    pub name: String,
    /// PEM `PUBLIC KEY` (read from `public_key_file` when the policy was loaded).
    pub public_key_pem: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TyposquatPolicy {
    /// Largest edit distance between names that still counts as a typo (0: only look-alikes).
    pub max_distance: usize,
    pub level: RuleLevel,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CardPolicy {
    pub require_base_model: RuleLevel,
    pub require_training_data: RuleLevel,
}

/// The policy for one namespace, defaults and overrides merged.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResolvedNamespacePolicy {
    pub namespace: String,
    pub max_severity: Severity,
    /// Findings above this and not above `max_severity` are held; `>= max_severity` holds none.
    pub hold_above: Severity,
    /// Allowed weight formats as written (names or families); `None` = any.
    pub allowed_formats: Option<Vec<String>>,
    pub require_signature: bool,
    pub trusted_signers: Vec<TrustedSigner>,
    pub require_approved_base: bool,
    /// Licence allow-list (lowercase); `None` = any.
    pub licenses: Option<Vec<String>>,
    /// Publisher allow-list (global); `None` = any.
    pub publishers: Option<Vec<String>>,
    pub typosquat: TyposquatPolicy,
    pub card: CardPolicy,
}

impl ResolvedNamespacePolicy {
    /// Is `format` (as the scanner names it) allowed? Non-weight formats always are.
    pub fn format_allowed(&self, format: &str) -> bool {
        let f = format.trim().to_ascii_lowercase();
        if NON_WEIGHT_FORMATS.contains(&f.as_str()) {
            return true;
        }
        match &self.allowed_formats {
            None => true,
            Some(list) => list.iter().any(|a| {
                a == &f
                    || FORMAT_FAMILIES
                        .iter()
                        .any(|(fam, members)| a == fam && members.contains(&f.as_str()))
            }),
        }
    }
}

/// Settings that a namespace may override (everything but `publishers`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Settings {
    max_severity: Severity,
    hold_above: Severity,
    allowed_formats: Option<Vec<String>>,
    require_signature: bool,
    trusted_signers: Vec<TrustedSigner>,
    require_approved_base: bool,
    licenses: Option<Vec<String>>,
    typosquat: TyposquatPolicy,
    card: CardPolicy,
}

/// A parsed and resolved policy (public keys already read).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Policy {
    defaults: Settings,
    publishers: Option<Vec<String>>,
    namespaces: BTreeMap<String, Settings>,
    min_confidence: f32,
}

impl Policy {
    /// The policy the server uses when none is given. Safe without any configuration:
    ///
    /// * `max_severity = "medium"`, `hold_above = "low"`: high and critical findings reject,
    ///   medium ones (unknown imports, container oddities) are held for review, low/info pass;
    /// * any format (the scanner judges what is inside), any licence, any publisher;
    /// * `require_signature = false` (no keys are known yet), but an invalid signature always
    ///   rejects (POL005);
    /// * `require_approved_base = true`: a base must be approved and unflagged; a base not in
    ///   the registry holds the upload until someone imports or approves it;
    /// * typosquatting: `max_distance = 2`, held;
    /// * model card: missing base model or training data are warnings;
    /// * cascade `min_confidence = 0.6`.
    pub fn default_policy() -> Policy {
        Policy {
            defaults: Settings {
                max_severity: Severity::Medium,
                hold_above: Severity::Low,
                allowed_formats: None,
                require_signature: false,
                trusted_signers: Vec::new(),
                require_approved_base: true,
                licenses: None,
                typosquat: TyposquatPolicy {
                    max_distance: 2,
                    level: RuleLevel::Hold,
                },
                card: CardPolicy {
                    require_base_model: RuleLevel::Warn,
                    require_training_data: RuleLevel::Warn,
                },
            },
            publishers: None,
            namespaces: BTreeMap::new(),
            min_confidence: 0.6,
        }
    }

    /// Parses a policy; `public_key_file` paths are read relative to `base_dir`.
    pub fn from_toml_str(s: &str, base_dir: &Path) -> Result<Policy, PolicyError> {
        let raw: RawFile = toml::from_str(s).map_err(|e| PolicyError::Syntax {
            message: e.to_string().trim_end().to_string(),
        })?;
        let mut policy = Policy::default_policy();
        if let Some(p) = raw.defaults.publishers.as_ref() {
            policy.publishers = list_or_any("defaults.publishers", p, |_, s| Ok(s.to_string()))?;
        }
        policy.defaults = apply(&policy.defaults, &raw.defaults, "defaults", base_dir)?;
        for (ns, table) in &raw.namespaces {
            let key = format!("namespaces.{}", toml_key(ns));
            if ns.is_empty() || ns.contains('/') {
                return Err(invalid(
                    key,
                    "a namespace name must be non-empty and have no '/'",
                ));
            }
            if table.publishers.is_some() {
                return Err(invalid(
                    format!("{key}.publishers"),
                    "the publisher allow-list is global; set it in [defaults]",
                ));
            }
            let settings = apply(&policy.defaults, table, &key, base_dir)?;
            policy.namespaces.insert(ns.clone(), settings);
        }
        if let Some(mc) = raw.cascade.min_confidence {
            if !(0.0..=1.0).contains(&mc) {
                return Err(invalid(
                    "cascade.min_confidence",
                    format!("{mc} is not between 0 and 1"),
                ));
            }
            policy.min_confidence = mc as f32;
        }
        Ok(policy)
    }

    /// Reads a policy file; key files are relative to its directory.
    pub fn load(path: &Path) -> Result<Policy, PolicyError> {
        let text = std::fs::read_to_string(path).map_err(|source| PolicyError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let dir = path.parent().unwrap_or_else(|| Path::new("."));
        Policy::from_toml_str(&text, dir).map_err(|e| PolicyError::InFile {
            path: path.to_path_buf(),
            source: Box::new(e),
        })
    }

    fn settings(&self, ns: &str) -> &Settings {
        self.namespaces.get(ns).unwrap_or(&self.defaults)
    }

    /// The policy for uploads to namespace `ns`.
    pub fn for_namespace(&self, ns: &str) -> ResolvedNamespacePolicy {
        let s = self.settings(ns);
        ResolvedNamespacePolicy {
            namespace: ns.to_string(),
            max_severity: s.max_severity,
            hold_above: s.hold_above,
            allowed_formats: s.allowed_formats.clone(),
            require_signature: s.require_signature,
            trusted_signers: s.trusted_signers.clone(),
            require_approved_base: s.require_approved_base,
            licenses: s.licenses.clone(),
            publishers: self.publishers.clone(),
            typosquat: s.typosquat.clone(),
            card: s.card.clone(),
        }
    }

    /// Lineage edges below this confidence do not propagate a flag.
    pub fn min_confidence(&self) -> f32 {
        self.min_confidence
    }

    /// The signers whose signatures namespace `ns` accepts.
    pub fn trusted_signers(&self, ns: &str) -> &[TrustedSigner] {
        &self.settings(ns).trusted_signers
    }

    /// Namespaces with a table of their own.
    pub fn namespaces(&self) -> impl Iterator<Item = &str> {
        self.namespaces.keys().map(String::as_str)
    }

    /// SHA-256 (hex) of the resolved policy, to record which policy made a decision.
    pub fn digest(&self) -> String {
        use sha2::Digest as _;
        let json = serde_json::to_vec(self).unwrap_or_default();
        hex::encode(sha2::Sha256::digest(&json))
    }
}

impl Default for Policy {
    fn default() -> Policy {
        Policy::default_policy()
    }
}

// ---------------------------------------------------------------------------------------------
// The file as written
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    defaults: RawSettings,
    #[serde(default)]
    cascade: RawCascade,
    #[serde(default)]
    namespaces: BTreeMap<String, RawSettings>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCascade {
    min_confidence: Option<f64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSettings {
    max_severity: Option<String>,
    hold_above: Option<String>,
    allowed_formats: Option<toml::Value>,
    require_signature: Option<bool>,
    trusted_signers: Option<Vec<RawSigner>>,
    require_approved_base: Option<bool>,
    licenses: Option<toml::Value>,
    publishers: Option<toml::Value>,
    typosquat: Option<RawTyposquat>,
    card: Option<RawCard>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSigner {
    name: String,
    public_key_file: Option<String>,
    public_key: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTyposquat {
    max_distance: Option<usize>,
    level: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCard {
    require_base_model: Option<String>,
    require_training_data: Option<String>,
}

/// A TOML key as it would be written in a dotted path (quoted when not bare).
fn toml_key(k: &str) -> String {
    if !k.is_empty()
        && k.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        k.to_string()
    } else {
        format!("{k:?}")
    }
}

fn severity(key: &str, s: &str) -> Result<Severity, PolicyError> {
    s.parse::<Severity>()
        .map_err(|e| invalid(key, e.to_string()))
}

/// A list of strings, or the string `"any"` (→ `None`).
fn list_or_any(
    key: &str,
    v: &toml::Value,
    item: impl Fn(&str, &str) -> Result<String, PolicyError>,
) -> Result<Option<Vec<String>>, PolicyError> {
    match v {
        toml::Value::String(s) if s.eq_ignore_ascii_case("any") => Ok(None),
        toml::Value::Array(items) => {
            let mut out = Vec::with_capacity(items.len());
            for (i, it) in items.iter().enumerate() {
                let s = it.as_str().ok_or_else(|| {
                    invalid(
                        format!("{key}[{i}]"),
                        format!("expected a string, found {it}"),
                    )
                })?;
                out.push(item(&format!("{key}[{i}]"), s.trim())?);
            }
            Ok(Some(out))
        }
        other => Err(invalid(
            key,
            format!("expected a list of strings or \"any\", found {other}"),
        )),
    }
}

fn format_name(key: &str, s: &str) -> Result<String, PolicyError> {
    let f = s.to_ascii_lowercase();
    let known = KNOWN_FORMATS.contains(&f.as_str())
        || NON_WEIGHT_FORMATS.contains(&f.as_str())
        || FORMAT_FAMILIES.iter().any(|(fam, _)| *fam == f);
    if known {
        Ok(f)
    } else {
        let mut names: Vec<&str> = KNOWN_FORMATS.to_vec();
        names.extend(FORMAT_FAMILIES.iter().map(|(f, _)| *f));
        Err(invalid(
            key,
            format!(
                "unknown format '{s}' (expected one of: {})",
                names.join(", ")
            ),
        ))
    }
}

/// `base` with the keys that `raw` sets replaced.
fn apply(
    base: &Settings,
    raw: &RawSettings,
    key: &str,
    base_dir: &Path,
) -> Result<Settings, PolicyError> {
    let mut s = base.clone();
    if let Some(v) = &raw.max_severity {
        s.max_severity = severity(&format!("{key}.max_severity"), v)?;
    }
    if let Some(v) = &raw.hold_above {
        s.hold_above = severity(&format!("{key}.hold_above"), v)?;
    }
    if let Some(v) = &raw.allowed_formats {
        s.allowed_formats = list_or_any(&format!("{key}.allowed_formats"), v, format_name)?;
    }
    if let Some(v) = raw.require_signature {
        s.require_signature = v;
    }
    if let Some(list) = &raw.trusted_signers {
        s.trusted_signers = signers(&format!("{key}.trusted_signers"), list, base_dir)?;
    }
    if let Some(v) = raw.require_approved_base {
        s.require_approved_base = v;
    }
    if let Some(v) = &raw.licenses {
        s.licenses = list_or_any(&format!("{key}.licenses"), v, |_, l| {
            Ok(l.to_ascii_lowercase())
        })?;
    }
    if let Some(t) = &raw.typosquat {
        if let Some(d) = t.max_distance {
            s.typosquat.max_distance = d;
        }
        if let Some(l) = &t.level {
            s.typosquat.level = RuleLevel::parse(&format!("{key}.typosquat.level"), l)?;
        }
    }
    if let Some(c) = &raw.card {
        if let Some(l) = &c.require_base_model {
            s.card.require_base_model =
                RuleLevel::parse(&format!("{key}.card.require_base_model"), l)?;
        }
        if let Some(l) = &c.require_training_data {
            s.card.require_training_data =
                RuleLevel::parse(&format!("{key}.card.require_training_data"), l)?;
        }
    }
    Ok(s)
}

fn signers(
    key: &str,
    list: &[RawSigner],
    base_dir: &Path,
) -> Result<Vec<TrustedSigner>, PolicyError> {
    let mut seen = BTreeSet::new();
    let mut out = Vec::with_capacity(list.len());
    for (i, r) in list.iter().enumerate() {
        let k = format!("{key}[{i}]");
        let name = r.name.trim();
        if name.is_empty() {
            return Err(invalid(
                format!("{k}.name"),
                "a trusted signer needs a name",
            ));
        }
        if !seen.insert(name.to_string()) {
            return Err(invalid(
                format!("{k}.name"),
                format!("signer '{name}' is listed twice"),
            ));
        }
        let pem = match (&r.public_key_file, &r.public_key) {
            (Some(file), None) => {
                let path = base_dir.join(file);
                std::fs::read_to_string(&path).map_err(|source| PolicyError::KeyFile {
                    key: format!("{k}.public_key_file"),
                    path,
                    source,
                })?
            }
            (None, Some(pem)) => pem.clone(),
            _ => {
                return Err(invalid(
                    &k,
                    format!("signer '{name}' needs exactly one of public_key_file or public_key"),
                ));
            }
        };
        pedigree_sign::PublicKey::from_pem(&pem).map_err(|e| {
            invalid(
                &k,
                format!("signer '{name}': not a usable PEM public key: {e}"),
            )
        })?;
        out.push(TrustedSigner {
            name: name.to_string(),
            public_key_pem: pem,
        });
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------------
// What the pipeline learned about an upload
// ---------------------------------------------------------------------------------------------

/// A scan finding, as the policy sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FindingFact {
    /// The scanner's rule id, e.g. `PDG101`.
    pub rule: String,
    pub severity: Severity,
    pub message: String,
}

/// The result of signature verification against the namespace's trusted signers.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "lowercase")]
pub enum SignatureStatus {
    #[default]
    Absent,
    Valid {
        signer: String,
    },
    Invalid {
        reason: String,
    },
}

/// What the model card declares.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CardFacts {
    /// A model card (README.md with metadata) was found.
    pub present: bool,
    #[serde(default)]
    pub base_model: Vec<String>,
    #[serde(default)]
    pub training_data: Vec<String>,
}

/// A base model of the upload, and its state in the registry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BaseFact {
    /// `ns/name[:version]` or however the pipeline names it.
    pub reference: String,
    /// `approved`, `rejected`, `held`, `quarantined` or `missing` (not in the registry).
    pub state: String,
    /// Flagged by an advisory (directly or inherited through the cascade).
    pub flagged: bool,
    /// `declared` (the card) or `inferred` (from the weights).
    pub source: String,
}

/// Everything the pipeline learned about an upload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Candidate {
    pub namespace: String,
    pub name: String,
    pub version: String,
    /// Formats of the uploaded files as the scanner names them; see [`NON_WEIGHT_FORMATS`].
    #[serde(default)]
    pub formats: Vec<String>,
    #[serde(default)]
    pub findings: Vec<FindingFact>,
    #[serde(default)]
    pub signature: SignatureStatus,
    #[serde(default)]
    pub license: Option<String>,
    #[serde(default)]
    pub card: CardFacts,
    #[serde(default)]
    pub bases: Vec<BaseFact>,
    /// Lineage problems, e.g. "declared base X contradicted by weights".
    #[serde(default)]
    pub lineage_findings: Vec<String>,
}

/// An approved model already in the registry (for the typosquat check).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ApprovedName {
    pub namespace: String,
    pub name: String,
}

// ---------------------------------------------------------------------------------------------
// Decisions
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Approved,
    Held,
    Rejected,
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Outcome::Approved => "approved",
            Outcome::Held => "held",
            Outcome::Rejected => "rejected",
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    Warn,
    Hold,
    Reject,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reason {
    /// A policy rule id from [`POLICY_RULES`].
    pub rule: String,
    pub level: Level,
    pub message: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decision {
    pub outcome: Outcome,
    pub reasons: Vec<Reason>,
}

impl Decision {
    /// The distinct rule ids of the reasons, in order.
    pub fn rule_ids(&self) -> Vec<&str> {
        let mut seen = BTreeSet::new();
        self.reasons
            .iter()
            .map(|r| r.rule.as_str())
            .filter(|r| seen.insert(*r))
            .collect()
    }

    /// The rule ids of the reasons at `level`.
    pub fn rule_ids_at(&self, level: Level) -> Vec<&str> {
        let mut seen = BTreeSet::new();
        self.reasons
            .iter()
            .filter(|r| r.level == level)
            .map(|r| r.rule.as_str())
            .filter(|r| seen.insert(*r))
            .collect()
    }
}

/// Collects reasons, capping each rule at [`MAX_REASONS_PER_RULE`].
#[derive(Default)]
struct Reasons {
    list: Vec<Reason>,
    overflow: BTreeMap<&'static str, (Level, usize)>,
}

impl Reasons {
    fn push(&mut self, rule: &'static str, level: Level, message: String) {
        let n = self.list.iter().filter(|r| r.rule == rule).count();
        if n < MAX_REASONS_PER_RULE {
            self.list.push(Reason {
                rule: rule.to_string(),
                level,
                message,
            });
        } else {
            let e = self.overflow.entry(rule).or_insert((level, 0));
            e.0 = e.0.max(level);
            e.1 += 1;
        }
    }

    fn finish(mut self) -> Decision {
        for (rule, (level, n)) in self.overflow {
            self.list.push(Reason {
                rule: rule.to_string(),
                level,
                message: format!("... and {n} more"),
            });
        }
        let outcome = match self.list.iter().map(|r| r.level).max() {
            Some(Level::Reject) => Outcome::Rejected,
            Some(Level::Hold) => Outcome::Held,
            _ => Outcome::Approved,
        };
        Decision {
            outcome,
            reasons: self.list,
        }
    }
}

/// Applies the policy to an upload. `approved` lists the approved models in the registry (any
/// namespace; the upload's own namespace is skipped for the typosquat check).
pub fn evaluate(policy: &Policy, c: &Candidate, approved: &[ApprovedName]) -> Decision {
    let p = policy.for_namespace(&c.namespace);
    let mut r = Reasons::default();

    // POL001 / POL002: scan findings.
    for f in &c.findings {
        if f.severity > p.max_severity {
            r.push(
                "POL001",
                Level::Reject,
                format!(
                    "{} ({}) is above the maximum severity {}: {}",
                    f.rule, f.severity, p.max_severity, f.message
                ),
            );
        } else if f.severity > p.hold_above {
            r.push(
                "POL002",
                Level::Hold,
                format!(
                    "{} ({}) is above {} and needs review: {}",
                    f.rule, f.severity, p.hold_above, f.message
                ),
            );
        }
    }

    // POL003: formats.
    let mut bad: Vec<String> = c
        .formats
        .iter()
        .filter(|f| !p.format_allowed(f))
        .map(|f| f.trim().to_ascii_lowercase())
        .collect();
    bad.sort();
    bad.dedup();
    if !bad.is_empty() {
        r.push(
            "POL003",
            Level::Reject,
            format!(
                "format{} {} not allowed in namespace '{}' (allowed: {})",
                if bad.len() > 1 { "s" } else { "" },
                bad.join(", "),
                c.namespace,
                p.allowed_formats.as_deref().unwrap_or(&[]).join(", ")
            ),
        );
    }

    // POL004 / POL005 / POL006: signature.
    let trusted = policy.trusted_signers(&c.namespace);
    match &c.signature {
        SignatureStatus::Absent => {
            if p.require_signature {
                let extra = if trusted.is_empty() {
                    " (and no trusted signers are configured for it)"
                } else {
                    ""
                };
                r.push(
                    "POL004",
                    Level::Reject,
                    format!(
                        "namespace '{}' requires a signature; none found{extra}",
                        c.namespace
                    ),
                );
            }
        }
        SignatureStatus::Invalid { reason } => r.push(
            "POL005",
            Level::Reject,
            format!("the signature does not verify: {reason}"),
        ),
        SignatureStatus::Valid { signer } => {
            let known = trusted.iter().any(|t| &t.name == signer);
            if !known && (p.require_signature || !trusted.is_empty()) {
                let level = if p.require_signature {
                    Level::Reject
                } else {
                    Level::Warn
                };
                let names: Vec<&str> = trusted.iter().map(|t| t.name.as_str()).collect();
                r.push(
                    "POL006",
                    level,
                    if names.is_empty() {
                        format!(
                            "signed by '{signer}', but namespace '{}' has no trusted signers",
                            c.namespace
                        )
                    } else {
                        format!(
                            "signed by '{signer}', who is not a trusted signer of namespace '{}' (trusted: {})",
                            c.namespace,
                            names.join(", ")
                        )
                    },
                );
            }
        }
    }

    // POL007 / POL008: bases.
    for b in &c.bases {
        let state = b.state.to_ascii_lowercase();
        if b.flagged {
            let level = if p.require_approved_base {
                Level::Reject
            } else {
                Level::Warn
            };
            r.push(
                "POL008",
                level,
                format!(
                    "{} base '{}' is flagged by an advisory",
                    b.source, b.reference
                ),
            );
        }
        if p.require_approved_base && state != "approved" {
            let (level, what) = match state.as_str() {
                "rejected" => (Level::Reject, "was rejected".to_string()),
                "missing" => (Level::Hold, "is not in the registry".to_string()),
                "held" => (Level::Hold, "is held for review".to_string()),
                "quarantined" => (Level::Hold, "is still in quarantine".to_string()),
                other => (Level::Hold, format!("is in state '{other}'")),
            };
            r.push(
                "POL007",
                level,
                format!(
                    "{} base '{}' {what}; bases must be approved",
                    b.source, b.reference
                ),
            );
        }
    }

    // POL009: licence.
    if let Some(allowed) = &p.licenses {
        match c
            .license
            .as_deref()
            .map(str::trim)
            .filter(|l| !l.is_empty())
        {
            None => r.push(
                "POL009",
                Level::Hold,
                format!("no licence declared (allowed: {})", allowed.join(", ")),
            ),
            Some(l) if !allowed.iter().any(|a| a.eq_ignore_ascii_case(l)) => r.push(
                "POL009",
                Level::Reject,
                format!(
                    "licence '{l}' is not allowed (allowed: {})",
                    allowed.join(", ")
                ),
            ),
            Some(_) => {}
        }
    }

    // POL010: publisher.
    if let Some(pubs) = &p.publishers
        && !pubs.iter().any(|x| x == &c.namespace)
    {
        r.push(
            "POL010",
            Level::Reject,
            format!("namespace '{}' is not allowed to publish", c.namespace),
        );
    }

    // POL011: name too close to another publisher's approved model.
    if let Some(level) = p.typosquat.level.level() {
        for clash in name_clashes(c, approved, p.typosquat.max_distance) {
            let why = match clash.kind {
                names::ClashKind::Confusable => {
                    "looks the same (confusable characters, case or separators)".to_string()
                }
                names::ClashKind::EditDistance => {
                    format!(
                        "is {} edit{} away",
                        clash.distance,
                        if clash.distance == 1 { "" } else { "s" }
                    )
                }
            };
            r.push(
                "POL011",
                level,
                format!(
                    "'{}' is too close to approved model '{}' of another publisher: it {why}",
                    clash.candidate, clash.existing
                ),
            );
        }
    }

    // POL012 / POL013: model card.
    let no_card = if c.card.present {
        ""
    } else {
        " (no model card found)"
    };
    if c.card.base_model.iter().all(|b| b.trim().is_empty())
        && let Some(level) = p.card.require_base_model.level()
    {
        r.push(
            "POL012",
            level,
            format!("the model card declares no base model{no_card}"),
        );
    }
    if c.card.training_data.iter().all(|b| b.trim().is_empty())
        && let Some(level) = p.card.require_training_data.level()
    {
        r.push(
            "POL013",
            level,
            format!("the model card declares no training data{no_card}"),
        );
    }

    // POL014: lineage contradicts the declaration.
    for f in &c.lineage_findings {
        r.push("POL014", Level::Hold, f.clone());
    }

    // POL015: a base seen in the weights that the card does not declare.
    let declared: BTreeSet<String> = c
        .card
        .base_model
        .iter()
        .chain(
            c.bases
                .iter()
                .filter(|b| b.source == "declared")
                .map(|b| &b.reference),
        )
        .map(|s| s.trim().to_ascii_lowercase())
        .collect();
    for b in c.bases.iter().filter(|b| b.source == "inferred") {
        let refn = b.reference.trim().to_ascii_lowercase();
        let bare = refn.split(':').next().unwrap_or(&refn);
        let matches = |d: &String| {
            d == &refn
                || d == bare
                || bare.ends_with(&format!("/{d}"))
                || d.ends_with(&format!("/{bare}"))
        };
        if !declared.iter().any(matches) {
            r.push(
                "POL015",
                Level::Warn,
                format!(
                    "the weights derive from '{}', which the model card does not declare",
                    b.reference
                ),
            );
        }
    }

    r.finish()
}

/// The typosquat clashes of a candidate, closest first.
fn name_clashes(c: &Candidate, approved: &[ApprovedName], max_distance: usize) -> Vec<NameClash> {
    let key = NameKey::new(&c.name);
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    for a in approved {
        if a.namespace == c.namespace || !seen.insert((a.namespace.as_str(), a.name.as_str())) {
            continue;
        }
        let ek = NameKey::new(&a.name);
        if let Some(clash) =
            names::too_close_qualified_keys(&c.namespace, &key, &a.namespace, &ek, max_distance)
        {
            out.push(clash);
        }
    }
    out.sort_by(|x, y| {
        let rank = |k: names::ClashKind| (k != names::ClashKind::Confusable) as u8;
        (rank(x.kind), x.distance, &x.existing).cmp(&(rank(y.kind), y.distance, &y.existing))
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const PEM: &str = include_str!("../tests/data/policy/keys/acme.pub");

    fn data_dir() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/policy")
    }

    fn parse(s: &str) -> Policy {
        Policy::from_toml_str(s, Path::new(".")).unwrap()
    }

    fn err(s: &str) -> String {
        Policy::from_toml_str(s, Path::new("."))
            .unwrap_err()
            .to_string()
    }

    /// A clean upload with a complete card and an approved base.
    fn clean() -> Candidate {
        Candidate {
            namespace: "acme".into(),
            name: "fraud-bert".into(),
            version: "1.2.0".into(),
            formats: vec!["safetensors".into(), "json".into(), "unknown".into()],
            findings: vec![],
            signature: SignatureStatus::Absent,
            license: Some("apache-2.0".into()),
            card: CardFacts {
                present: true,
                base_model: vec!["google/bert-base-uncased".into()],
                training_data: vec!["acme/transactions-2024".into()],
            },
            bases: vec![BaseFact {
                reference: "google/bert-base-uncased:1.0".into(),
                state: "approved".into(),
                flagged: false,
                source: "declared".into(),
            }],
            lineage_findings: vec![],
        }
    }

    fn finding(sev: Severity) -> FindingFact {
        FindingFact {
            rule: "PDG101".into(),
            severity: sev,
            message: "imports os.system".into(),
        }
    }

    fn eval(p: &Policy, c: &Candidate) -> Decision {
        evaluate(p, c, &[])
    }

    fn has(d: &Decision, rule: &str, level: Level) -> bool {
        d.reasons.iter().any(|r| r.rule == rule && r.level == level)
    }

    #[test]
    fn rule_table_is_complete_and_unique() {
        let ids: BTreeSet<&str> = POLICY_RULES.iter().map(|(id, _)| *id).collect();
        assert_eq!(ids.len(), POLICY_RULES.len());
        for i in 1..=15 {
            assert!(
                ids.contains(format!("POL{i:03}").as_str()),
                "POL{i:03} missing"
            );
        }
    }

    #[test]
    fn default_policy_approves_a_clean_complete_candidate() {
        let d = eval(&Policy::default_policy(), &clean());
        assert_eq!(d.outcome, Outcome::Approved, "{d:?}");
        assert!(d.reasons.is_empty(), "{d:?}");
        // And an empty file is the default policy.
        assert_eq!(parse(""), Policy::default_policy());
    }

    #[test]
    fn default_policy_values() {
        let p = Policy::default_policy().for_namespace("anyone");
        assert_eq!(p.max_severity, Severity::Medium);
        assert_eq!(p.hold_above, Severity::Low);
        assert!(p.require_approved_base);
        assert!(!p.require_signature);
        assert_eq!(p.allowed_formats, None);
        assert_eq!(p.typosquat.max_distance, 2);
        assert_eq!(Policy::default_policy().min_confidence(), 0.6);
    }

    #[test]
    fn severity_rules() {
        let p = Policy::default_policy();
        let mut c = clean();
        c.findings = vec![finding(Severity::Critical)];
        let d = eval(&p, &c);
        assert_eq!(d.outcome, Outcome::Rejected);
        assert!(has(&d, "POL001", Level::Reject));
        assert!(d.reasons[0].message.contains("PDG101"));
        c.findings = vec![finding(Severity::Medium)];
        let d = eval(&p, &c);
        assert_eq!(d.outcome, Outcome::Held);
        assert!(has(&d, "POL002", Level::Hold) && !has(&d, "POL001", Level::Reject));
        c.findings = vec![finding(Severity::Low), finding(Severity::Info)];
        assert_eq!(eval(&p, &c).outcome, Outcome::Approved);
        // Raising the limit and closing the hold band lets medium through.
        let p = parse("[defaults]\nmax_severity = \"high\"\nhold_above = \"high\"\n");
        c.findings = vec![finding(Severity::High)];
        assert_eq!(eval(&p, &c).outcome, Outcome::Approved);
    }

    #[test]
    fn many_findings_are_capped() {
        let mut c = clean();
        c.findings = vec![finding(Severity::Critical); 30];
        let d = eval(&Policy::default_policy(), &c);
        assert_eq!(d.reasons.len(), MAX_REASONS_PER_RULE + 1);
        assert!(d.reasons.last().unwrap().message.contains("10 more"));
        assert_eq!(d.rule_ids(), vec!["POL001"]);
    }

    #[test]
    fn format_rule() {
        let p = parse("[defaults]\nallowed_formats = [\"safetensors\", \"pytorch\"]\n");
        let mut c = clean();
        c.formats = vec!["safetensors".into(), "torch-zip".into(), "json".into()];
        assert_eq!(eval(&p, &c).outcome, Outcome::Approved);
        c.formats.push("pickle".into());
        let d = eval(&p, &c);
        assert_eq!(d.outcome, Outcome::Rejected);
        assert!(has(&d, "POL003", Level::Reject));
        assert!(d.reasons[0].message.contains("pickle"));
        assert!(!d.reasons[0].message.contains("torch-zip"));
    }

    #[test]
    fn signature_rules() {
        let pem = PEM.replace('\n', "\\n");
        let p = parse(&format!(
            "[namespaces.acme]\nrequire_signature = true\ntrusted_signers = [{{ name = \"acme-release\", public_key = \"{pem}\" }}]\n"
        ));
        let mut c = clean();
        // Absent, required.
        let d = eval(&p, &c);
        assert!(has(&d, "POL004", Level::Reject), "{d:?}");
        // Absent, not required (another namespace).
        c.namespace = "other".into();
        assert_eq!(eval(&p, &c).outcome, Outcome::Approved);
        // Invalid: rejected even where not required.
        c.signature = SignatureStatus::Invalid {
            reason: "digest mismatch".into(),
        };
        let d = eval(&p, &c);
        assert!(has(&d, "POL005", Level::Reject));
        assert!(d.reasons[0].message.contains("digest mismatch"));
        // Valid by a trusted signer.
        c.namespace = "acme".into();
        c.signature = SignatureStatus::Valid {
            signer: "acme-release".into(),
        };
        assert_eq!(eval(&p, &c).outcome, Outcome::Approved);
        // Valid by someone else.
        c.signature = SignatureStatus::Valid {
            signer: "mallory".into(),
        };
        let d = eval(&p, &c);
        assert!(has(&d, "POL006", Level::Reject));
        assert!(d.reasons[0].message.contains("acme-release"));
    }

    #[test]
    fn untrusted_signer_only_warns_when_not_required() {
        let pem = PEM.replace('\n', "\\n");
        let p = parse(&format!(
            "[defaults]\ntrusted_signers = [{{ name = \"k\", public_key = \"{pem}\" }}]\n"
        ));
        let mut c = clean();
        c.signature = SignatureStatus::Valid {
            signer: "mallory".into(),
        };
        let d = eval(&p, &c);
        assert_eq!(d.outcome, Outcome::Approved);
        assert!(has(&d, "POL006", Level::Warn));
    }

    #[test]
    fn base_rules() {
        let p = Policy::default_policy();
        let mut c = clean();
        c.bases[0].state = "rejected".into();
        let d = eval(&p, &c);
        assert_eq!(d.outcome, Outcome::Rejected);
        assert!(has(&d, "POL007", Level::Reject));
        for s in ["missing", "held", "quarantined"] {
            c.bases[0].state = s.into();
            let d = eval(&p, &c);
            assert_eq!(d.outcome, Outcome::Held, "{s}");
            assert!(has(&d, "POL007", Level::Hold));
        }
        c.bases[0].state = "approved".into();
        c.bases[0].flagged = true;
        let d = eval(&p, &c);
        assert!(has(&d, "POL008", Level::Reject));
        assert!(!has(&d, "POL007", Level::Hold) && !has(&d, "POL007", Level::Reject));
        // Switched off: a flagged base only warns, a missing one passes.
        let p = parse("[defaults]\nrequire_approved_base = false\n");
        let d = eval(&p, &c);
        assert_eq!(d.outcome, Outcome::Approved);
        assert!(has(&d, "POL008", Level::Warn));
        c.bases[0].flagged = false;
        c.bases[0].state = "missing".into();
        assert!(eval(&p, &c).reasons.is_empty());
    }

    #[test]
    fn licence_rule() {
        let p = parse("[defaults]\nlicenses = [\"Apache-2.0\", \"mit\"]\n");
        let mut c = clean();
        assert_eq!(eval(&p, &c).outcome, Outcome::Approved);
        c.license = Some("cc-by-nc-4.0".into());
        let d = eval(&p, &c);
        assert!(has(&d, "POL009", Level::Reject));
        assert!(d.reasons[0].message.contains("cc-by-nc-4.0"));
        c.license = None;
        assert!(has(&eval(&p, &c), "POL009", Level::Hold));
        // "any" in a namespace resets the list.
        let p = parse("[defaults]\nlicenses = [\"mit\"]\n[namespaces.acme]\nlicenses = \"any\"\n");
        c.license = Some("cc-by-nc-4.0".into());
        assert_eq!(eval(&p, &c).outcome, Outcome::Approved);
    }

    #[test]
    fn publisher_rule() {
        let p = parse("[defaults]\npublishers = [\"acme\", \"hf-mirror\"]\n");
        let mut c = clean();
        assert_eq!(eval(&p, &c).outcome, Outcome::Approved);
        c.namespace = "evil".into();
        let d = eval(&p, &c);
        assert_eq!(d.outcome, Outcome::Rejected);
        assert!(has(&d, "POL010", Level::Reject));
    }

    #[test]
    fn typosquat_rule() {
        let p = Policy::default_policy();
        let approved = vec![
            ApprovedName {
                namespace: "google".into(),
                name: "bert-base-uncased".into(),
            },
            // Listed twice (two versions): one reason, not two.
            ApprovedName {
                namespace: "google".into(),
                name: "bert-base-uncased".into(),
            },
        ];
        let mut c = clean();
        c.namespace = "evil".into();
        c.name = "bert-base-uncassed".into();
        let d = evaluate(&p, &c, &approved);
        assert_eq!(d.outcome, Outcome::Held, "{d:?}");
        let r = d.reasons.iter().find(|r| r.rule == "POL011").unwrap();
        assert!(
            r.message.contains("google/bert-base-uncased"),
            "{}",
            r.message
        );
        assert!(r.message.contains("1 edit"), "{}", r.message);
        assert_eq!(d.reasons.iter().filter(|r| r.rule == "POL011").count(), 1);
        // The same publisher re-publishing a similar name is not a squat.
        c.namespace = "google".into();
        assert_eq!(evaluate(&p, &c, &approved).outcome, Outcome::Approved);
        // Cyrillic look-alike.
        c.namespace = "evil2".into();
        c.name = "bert-bаse-uncased".into();
        let d = evaluate(&p, &c, &approved);
        assert!(has(&d, "POL011", Level::Hold));
        assert!(
            d.reasons
                .iter()
                .any(|r| r.message.contains("looks the same"))
        );
        // A different model is fine; so is a sibling size.
        c.name = "bert-large-uncased".into();
        assert_eq!(evaluate(&p, &c, &approved).outcome, Outcome::Approved);
        // Look-alike publisher, same model name.
        c.namespace = "goog1e".into();
        c.name = "bert-base-uncased".into();
        let d = evaluate(&p, &c, &approved);
        assert!(has(&d, "POL011", Level::Hold), "{d:?}");
        // The level is configurable; "off" disables the check.
        let p = parse("[defaults]\ntyposquat = { level = \"off\" }\n");
        assert_eq!(evaluate(&p, &c, &approved).outcome, Outcome::Approved);
    }

    #[test]
    fn card_rules() {
        let p = Policy::default_policy();
        let mut c = clean();
        c.card.training_data.clear();
        let d = eval(&p, &c);
        assert_eq!(d.outcome, Outcome::Approved);
        assert!(has(&d, "POL013", Level::Warn) && !has(&d, "POL012", Level::Warn));
        c.card = CardFacts::default();
        let d = eval(&p, &c);
        assert!(has(&d, "POL012", Level::Warn) && has(&d, "POL013", Level::Warn));
        assert!(
            d.reasons
                .iter()
                .all(|r| r.message.contains("no model card found"))
        );
        let p = parse(
            "[defaults]\ncard = { require_base_model = \"hold\", require_training_data = \"off\" }\n",
        );
        let d = eval(&p, &c);
        assert_eq!(d.outcome, Outcome::Held);
        assert!(has(&d, "POL012", Level::Hold));
        assert!(!d.reasons.iter().any(|r| r.rule == "POL013"));
    }

    #[test]
    fn lineage_rules() {
        let p = Policy::default_policy();
        let mut c = clean();
        c.lineage_findings =
            vec!["declared base google/bert-base-uncased contradicted by weights".into()];
        let d = eval(&p, &c);
        assert_eq!(d.outcome, Outcome::Held);
        assert!(has(&d, "POL014", Level::Hold));
        // An inferred base the card hides.
        let mut c = clean();
        c.bases.push(BaseFact {
            reference: "acme/secret-base:2.0".into(),
            state: "approved".into(),
            flagged: false,
            source: "inferred".into(),
        });
        let d = eval(&p, &c);
        assert_eq!(d.outcome, Outcome::Approved);
        assert!(has(&d, "POL015", Level::Warn));
        // An inferred base that the card does declare.
        c.bases[1].reference = "google/bert-base-uncased:1.0".into();
        assert!(eval(&p, &c).reasons.is_empty());
    }

    #[test]
    fn namespace_overrides_field_by_field() {
        let p = parse(
            r#"
            [defaults]
            max_severity = "high"
            licenses = ["mit"]
            typosquat = { max_distance = 3, level = "hold" }
            [namespaces.acme]
            max_severity = "low"
            typosquat = { level = "reject" }
            "#,
        );
        let acme = p.for_namespace("acme");
        assert_eq!(acme.max_severity, Severity::Low);
        assert_eq!(acme.licenses, Some(vec!["mit".to_string()])); // inherited
        assert_eq!(acme.typosquat.max_distance, 3); // inherited inside the sub-table
        assert_eq!(acme.typosquat.level, RuleLevel::Reject);
        let other = p.for_namespace("other");
        assert_eq!(other.max_severity, Severity::High);
        assert_eq!(other.typosquat.level, RuleLevel::Hold);
    }

    #[test]
    fn loads_the_example_file_with_its_key_file() {
        let p = Policy::load(&data_dir().join("policy.toml")).unwrap();
        let signers = p.trusted_signers("acme");
        assert_eq!(signers.len(), 1);
        assert_eq!(signers[0].name, "acme-release");
        assert_eq!(signers[0].public_key_pem, PEM);
        assert!(p.trusted_signers("hf-mirror").is_empty());
        assert!(p.for_namespace("acme").require_signature);
        assert!(!p.for_namespace("hf-mirror").require_signature);
        assert!((p.min_confidence() - 0.7).abs() < 1e-6);
        assert!(p.for_namespace("acme").format_allowed("torch-zip")); // "pytorch" family
        assert!(!p.for_namespace("acme").format_allowed("joblib"));
        // It round-trips through JSON, and its digest is stable.
        let back: Policy = serde_json::from_str(&serde_json::to_string(&p).unwrap()).unwrap();
        assert_eq!(back, p);
        assert_eq!(back.digest(), p.digest());
        assert_ne!(p.digest(), Policy::default_policy().digest());
    }

    #[test]
    fn missing_key_file_is_an_error_naming_key_and_path() {
        let dir = tempfile::tempdir().unwrap();
        let text = "[namespaces.acme]\ntrusted_signers = [{ name = \"r\", public_key_file = \"keys/nope.pub\" }]\n";
        let e = Policy::from_toml_str(text, dir.path()).unwrap_err();
        assert!(matches!(e, PolicyError::KeyFile { .. }), "{e:?}");
        let msg = e.to_string();
        assert!(
            msg.contains("namespaces.acme.trusted_signers[0].public_key_file"),
            "{msg}"
        );
        assert!(msg.contains("nope.pub"), "{msg}");
        // Relative to the policy file, through load().
        let pol = dir.path().join("p.toml");
        std::fs::write(&pol, text).unwrap();
        std::fs::create_dir(dir.path().join("keys")).unwrap();
        assert!(Policy::load(&pol).is_err());
        std::fs::write(dir.path().join("keys/nope.pub"), PEM).unwrap();
        assert_eq!(
            Policy::load(&pol).unwrap().trusted_signers("acme")[0].public_key_pem,
            PEM
        );
    }

    #[test]
    fn errors_name_the_problem() {
        let m = err("[defaults]\nmax_severit = \"high\"\n");
        assert!(m.contains("max_severit"), "{m}");
        let m = err("[defaults]\nmax_severity = \"severe\"\n");
        assert!(
            m.contains("defaults.max_severity") && m.contains("severe"),
            "{m}"
        );
        let m = err("[namespaces.acme]\nallowed_formats = [\"safetensor\"]\n");
        assert!(
            m.contains("namespaces.acme.allowed_formats[0]") && m.contains("safetensor"),
            "{m}"
        );
        let m = err("[defaults]\ncard = { require_base_model = \"maybe\" }\n");
        assert!(m.contains("defaults.card.require_base_model"), "{m}");
        let m = err("[cascade]\nmin_confidence = 1.5\n");
        assert!(m.contains("cascade.min_confidence"), "{m}");
        let m = err("[namespaces.acme]\npublishers = [\"x\"]\n");
        assert!(m.contains("namespaces.acme.publishers"), "{m}");
        let m = err("[defaults]\nlicenses = 3\n");
        assert!(m.contains("defaults.licenses"), "{m}");
        let m = err("[defaults\n");
        assert!(m.starts_with("policy:") && m.contains("line 1"), "{m}");
        let m = err("[defaults]\ntrusted_signers = [{ name = \"k\", public_key = \"junk\" }]\n");
        assert!(
            m.contains("defaults.trusted_signers[0]") && m.contains("'k'"),
            "{m}"
        );
        let m = err("[defaults]\ntrusted_signers = [{ name = \"k\" }]\n");
        assert!(m.contains("exactly one of"), "{m}");
        let e = Policy::load(Path::new("/nonexistent/policy.toml")).unwrap_err();
        assert!(e.to_string().contains("/nonexistent/policy.toml"));
    }

    #[test]
    fn known_formats_match_the_scanner() {
        use pedigree_formats::container::Format;
        for f in [
            Format::Pickle,
            Format::TorchZip,
            Format::TorchScript,
            Format::TorchLegacy,
            Format::TorchLegacyTar,
            Format::Npy,
            Format::Npz,
            Format::Joblib,
            Format::Compressed,
            Format::Zip,
            Format::Tar,
            Format::SevenZip,
            Format::Safetensors,
            Format::Gguf,
            Format::Onnx,
            Format::Hdf5,
            Format::Keras,
            Format::TensorFlow,
            Format::Unknown,
        ] {
            let name = serde_json::to_value(f).unwrap();
            let name = name.as_str().unwrap();
            assert!(
                KNOWN_FORMATS.contains(&name),
                "{name} missing from KNOWN_FORMATS"
            );
        }
    }

    #[test]
    fn decision_json_shape() {
        let mut c = clean();
        c.findings = vec![finding(Severity::Critical)];
        let d = eval(&Policy::default_policy(), &c);
        let v = serde_json::to_value(&d).unwrap();
        assert_eq!(v["outcome"], "rejected");
        assert_eq!(v["reasons"][0]["level"], "reject");
        assert_eq!(v["reasons"][0]["rule"], "POL001");
        let back: Decision = serde_json::from_value(v).unwrap();
        assert_eq!(back, d);
        let cj = serde_json::to_value(&c).unwrap();
        assert_eq!(cj["signature"]["status"], "absent");
        assert_eq!(serde_json::from_value::<Candidate>(cj).unwrap(), c);
    }
}
