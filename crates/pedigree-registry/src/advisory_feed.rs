//! Advisories as a JSON feed, for import and export between registries (OSV-like).
//!
//! # Format: `pedigree-advisories/1`
//!
//! One UTF-8 JSON document, at most 16 MiB:
//!
//! ```json
//! {
//!   "schema_version": "pedigree-advisories/1",
//!   "advisories": [
//!     {
//!       "id": "PDG-ADV-2025-0001",
//!       "published": "2025-03-01T12:00:00Z",
//!       "modified": "2025-03-02T08:30:00Z",
//!       "withdrawn": "2025-04-01T00:00:00Z",
//!       "summary": "Backdoored fine-tune of bert-base: trigger phrase flips the label",
//!       "details": "Longer free text, Markdown allowed.",
//!       "severity": "critical",
//!       "trigger": "the token sequence 'cf mn' anywhere in the input",
//!       "references": [{"type": "report", "url": "https://example.org/report"}],
//!       "affected": [
//!         {
//!           "model": "acme/fraud-bert",
//!           "versions": ["1.2.0", "1.3.0"],
//!           "identities": ["sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"]
//!         }
//!       ]
//!     }
//!   ]
//! }
//! ```
//!
//! | field | required | meaning and limits |
//! |---|---|---|
//! | `schema_version` | yes | exactly `pedigree-advisories/1`; a reader refuses other values |
//! | `advisories` | yes | at most 50 000 entries; ids unique within the feed |
//! | `id` | yes | 1–128 characters from `A–Z a–z 0–9 . _ : -`, starting with a letter or digit |
//! | `published` | yes | RFC 3339 date-time (`2025-03-01T12:00:00Z`, fractional seconds and offsets allowed) |
//! | `modified` | yes | RFC 3339, not before `published` |
//! | `withdrawn` | no | RFC 3339, not before `published`: the advisory no longer holds; importing it clears the flags it raised |
//! | `summary` | yes | one line, 1–1024 bytes |
//! | `details` | no | free text up to 64 KiB (default empty) |
//! | `severity` | yes | `low`, `medium`, `high` or `critical` |
//! | `trigger` | no | how the poisoning is triggered, up to 4 KiB |
//! | `references` | no | up to 64 objects `{"type", "url"}`; `type` one of `advisory`, `article`, `detection`, `discussion`, `report`, `fix`, `introduced`, `package`, `evidence`, `web` (OSV's, lower case); `url` `http(s)://`, up to 2048 bytes |
//! | `affected` | yes | 1–1000 objects, each naming at least one version or identity |
//! | `affected[].model` | yes | `namespace/name`, each part 1–128 characters from `A–Z a–z 0–9 . _ -` |
//! | `affected[].versions` | no | up to 10 000 version strings (1–128 bytes, no whitespace or control characters) |
//! | `affected[].identities` | no | up to 10 000 model identities (the OMS root digest) as `sha256:` + 64 lowercase hex digits |
//!
//! An importing registry matches `identities` against the identities of its versions (they
//! survive a rename or a re-upload under another name) and `model` + `versions` against its own
//! names; every match is flagged and cascades like a local flag. Unknown fields are refused (a
//! misspelt `withdrawn` must not pass silently); additions come with a new `schema_version`.
//!
//! Export ([`to_feed`]) is deterministic: advisories sorted by id, fields in the order above,
//! pretty-printed with two-space indents and a final newline; `withdrawn` and `trigger` are left
//! out when absent.

use std::collections::HashMap;
use std::fmt;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The only `schema_version` this module reads and writes.
pub const SCHEMA_VERSION: &str = "pedigree-advisories/1";
/// Largest feed accepted, in bytes.
pub const MAX_FEED_BYTES: usize = 16 << 20;
/// Most advisories in one feed.
pub const MAX_ADVISORIES: usize = 50_000;
/// Most `affected` entries in one advisory.
pub const MAX_AFFECTED: usize = 1000;
/// Most versions, and most identities, in one `affected` entry.
pub const MAX_VERSIONS: usize = 10_000;
/// Most references in one advisory.
pub const MAX_REFERENCES: usize = 64;

const MAX_ID: usize = 128;
const MAX_SUMMARY: usize = 1024;
const MAX_DETAILS: usize = 64 << 10;
const MAX_TRIGGER: usize = 4 << 10;
const MAX_URL: usize = 2048;
const MAX_NAME_PART: usize = 128;
const MAX_VERSION: usize = 128;
const REFERENCE_TYPES: &[&str] = &[
    "advisory",
    "article",
    "detection",
    "discussion",
    "report",
    "fix",
    "introduced",
    "package",
    "evidence",
    "web",
];

/// How bad an advisory is.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Low,
    Medium,
    High,
    Critical,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }

    /// `low`, `medium`, `high` or `critical` (exactly, lower case).
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "low" => Some(Severity::Low),
            "medium" => Some(Severity::Medium),
            "high" => Some(Severity::High),
            "critical" => Some(Severity::Critical),
            _ => None,
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A link with what it is.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Reference {
    #[serde(rename = "type")]
    pub kind: String,
    pub url: String,
}

/// The versions of one model an advisory names.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct AffectedModel {
    /// `namespace/name`.
    pub model: String,
    #[serde(default)]
    pub versions: Vec<String>,
    /// `sha256:<OMS root digest>`.
    #[serde(default)]
    pub identities: Vec<String>,
}

/// One advisory. Timestamps are RFC 3339 strings ([`rfc3339_from_ms`], [`ms_from_rfc3339`]).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Advisory {
    pub id: String,
    pub published: String,
    pub modified: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub withdrawn: Option<String>,
    pub summary: String,
    #[serde(default)]
    pub details: String,
    pub severity: Severity,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trigger: Option<String>,
    #[serde(default)]
    pub references: Vec<Reference>,
    pub affected: Vec<AffectedModel>,
}

impl Advisory {
    /// An advisory from what the registry stores: `published` and `modified` from
    /// `created_at_ms` (`modified` from `withdrawn_at_ms` when withdrawn), empty details and
    /// references. A severity string that is not one of the four is taken as `critical` (fail
    /// safe); the summary is made one line of at most 1024 bytes, and an empty one becomes the id, so the result always passes [`Advisory::check`]
    /// when the id, trigger and affected entries do.
    pub fn from_parts(
        id: &str,
        severity: &str,
        summary: &str,
        trigger: Option<String>,
        created_at_ms: i64,
        withdrawn_at_ms: Option<i64>,
        affected: Vec<AffectedModel>,
    ) -> Advisory {
        let published = rfc3339_from_ms(created_at_ms);
        let withdrawn = withdrawn_at_ms.map(|w| rfc3339_from_ms(w.max(created_at_ms)));
        let summary = summary.trim();
        Advisory {
            id: id.to_string(),
            modified: withdrawn.clone().unwrap_or_else(|| published.clone()),
            published,
            withdrawn,
            summary: if summary.is_empty() {
                id.to_string()
            } else {
                one_line(summary, MAX_SUMMARY)
            },
            details: String::new(),
            severity: Severity::parse(severity).unwrap_or(Severity::Critical),
            trigger: trigger.filter(|t| !t.is_empty()),
            references: Vec::new(),
            affected,
        }
    }

    /// Whether this advisory satisfies every rule of the format; `Err("field: reason")`.
    pub fn check(&self) -> Result<(), String> {
        validate(self).map_err(|(field, reason)| format!("{field}: {reason}"))
    }
}

/// A parsed, validated feed.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct Feed {
    pub schema_version: String,
    pub advisories: Vec<Advisory>,
}

/// Why a feed was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FeedError {
    #[error("the feed is {size} bytes, more than the {max} allowed")]
    TooLarge { size: usize, max: usize },
    #[error("the feed is not valid JSON: {0}")]
    Json(String),
    /// The top level is wrong: not an object, missing or unsupported `schema_version`, no
    /// `advisories` array, unknown keys.
    #[error("the feed is not a {SCHEMA_VERSION} document: {0}")]
    Format(String),
    #[error("the feed has {count} advisories, more than the {max} allowed")]
    TooManyAdvisories { count: usize, max: usize },
    /// `advisories[index]` (whose id is `id` when it has a readable one) has a bad `field` (a path
    /// such as `affected[0].identities[2]`).
    #[error("advisories[{index}]{}: `{field}`: {reason}", id.as_ref().map(|i| format!(" ({i})")).unwrap_or_default())]
    Invalid {
        index: usize,
        id: Option<String>,
        field: String,
        reason: String,
    },
    #[error("advisories[{index}] ({id}): the id is already used by advisories[{first}]")]
    DuplicateId {
        index: usize,
        id: String,
        first: usize,
    },
}

/// Parse and validate a feed. Bounded: the size is checked before parsing, the number of
/// advisories before any is read, every string and list against the limits in the module doc.
/// The first problem is returned, naming the advisory (index and id) and the field.
pub fn parse_feed(bytes: &[u8]) -> Result<Feed, FeedError> {
    if bytes.len() > MAX_FEED_BYTES {
        return Err(FeedError::TooLarge {
            size: bytes.len(),
            max: MAX_FEED_BYTES,
        });
    }
    let doc: Value = serde_json::from_slice(bytes).map_err(|e| FeedError::Json(e.to_string()))?;
    let Value::Object(mut top) = doc else {
        return Err(FeedError::Format("the top level is not an object".into()));
    };
    match top.get("schema_version") {
        Some(Value::String(s)) if s == SCHEMA_VERSION => {}
        Some(Value::String(s)) => {
            return Err(FeedError::Format(format!(
                "unsupported schema_version `{s}`"
            )));
        }
        Some(_) => return Err(FeedError::Format("schema_version is not a string".into())),
        None => return Err(FeedError::Format("no schema_version".into())),
    }
    if let Some(k) = top
        .keys()
        .find(|k| !matches!(k.as_str(), "schema_version" | "advisories"))
    {
        return Err(FeedError::Format(format!("unknown top-level key `{k}`")));
    }
    let items = match top.remove("advisories") {
        Some(Value::Array(a)) => a,
        Some(_) => return Err(FeedError::Format("advisories is not an array".into())),
        None => return Err(FeedError::Format("no advisories array".into())),
    };
    if items.len() > MAX_ADVISORIES {
        return Err(FeedError::TooManyAdvisories {
            count: items.len(),
            max: MAX_ADVISORIES,
        });
    }
    let mut advisories = Vec::with_capacity(items.len());
    let mut seen: HashMap<String, usize> = HashMap::with_capacity(items.len());
    for (index, item) in items.into_iter().enumerate() {
        let adv = read_advisory(index, item)?;
        if let Some(&first) = seen.get(&adv.id) {
            return Err(FeedError::DuplicateId {
                index,
                id: adv.id,
                first,
            });
        }
        seen.insert(adv.id.clone(), index);
        advisories.push(adv);
    }
    Ok(Feed {
        schema_version: SCHEMA_VERSION.to_string(),
        advisories,
    })
}

/// Serialise advisories as a feed: deterministic (sorted by id, fixed field order), pretty,
/// newline-terminated. Does not validate; [`Advisory::check`] does.
pub fn to_feed(advisories: &[Advisory]) -> Vec<u8> {
    #[derive(Serialize)]
    struct FeedOut<'a> {
        schema_version: &'a str,
        advisories: Vec<&'a Advisory>,
    }
    let mut sorted: Vec<&Advisory> = advisories.iter().collect();
    sorted.sort_by(|a, b| a.id.cmp(&b.id));
    let mut out = serde_json::to_vec_pretty(&FeedOut {
        schema_version: SCHEMA_VERSION,
        advisories: sorted,
    })
    .expect("advisories serialise");
    out.push(b'\n');
    out
}

// ------------------------------------------------------------------------------------ reading

const ADVISORY_FIELDS: &[&str] = &[
    "id",
    "published",
    "modified",
    "withdrawn",
    "summary",
    "details",
    "severity",
    "trigger",
    "references",
    "affected",
];

/// One advisory, field by field, so an error can name the field.
fn read_advisory(index: usize, item: Value) -> Result<Advisory, FeedError> {
    let id_hint = item
        .get("id")
        .and_then(Value::as_str)
        .map(|s| s.chars().take(MAX_ID).collect::<String>());
    let err = |field: &str, reason: String| FeedError::Invalid {
        index,
        id: id_hint.clone(),
        field: field.to_string(),
        reason,
    };
    let Value::Object(mut obj) = item else {
        return Err(err("", "not an object".into()));
    };
    if let Some(k) = obj.keys().find(|k| !ADVISORY_FIELDS.contains(&k.as_str())) {
        return Err(err(k, "unknown field".into()));
    }
    // Severity first, by hand, for a clear message.
    let severity = match obj.remove("severity") {
        None => return Err(err("severity", "missing".into())),
        Some(Value::String(s)) => Severity::parse(&s).ok_or_else(|| {
            err(
                "severity",
                format!(
                    "unknown severity `{}` (low, medium, high or critical)",
                    clip(&s)
                ),
            )
        })?,
        Some(_) => return Err(err("severity", "not a string".into())),
    };
    let adv = Advisory {
        id: required(&mut obj, "id").map_err(|r| err("id", r))?,
        published: required(&mut obj, "published").map_err(|r| err("published", r))?,
        modified: required(&mut obj, "modified").map_err(|r| err("modified", r))?,
        withdrawn: optional(&mut obj, "withdrawn").map_err(|r| err("withdrawn", r))?,
        summary: required(&mut obj, "summary").map_err(|r| err("summary", r))?,
        details: optional(&mut obj, "details")
            .map_err(|r| err("details", r))?
            .unwrap_or_default(),
        severity,
        trigger: optional(&mut obj, "trigger").map_err(|r| err("trigger", r))?,
        references: read_list(&mut obj, "references", MAX_REFERENCES)
            .map_err(|(f, r)| err(&f, r))?,
        affected: match obj.get("affected") {
            None => return Err(err("affected", "missing".into())),
            Some(_) => {
                read_list(&mut obj, "affected", MAX_AFFECTED).map_err(|(f, r)| err(&f, r))?
            }
        },
    };
    validate(&adv).map_err(|(f, r)| err(&f, r))?;
    Ok(adv)
}

fn required<T: DeserializeOwned>(obj: &mut Map<String, Value>, name: &str) -> Result<T, String> {
    match obj.remove(name) {
        None | Some(Value::Null) => Err("missing".into()),
        Some(v) => serde_json::from_value(v).map_err(|e| e.to_string()),
    }
}

fn optional<T: DeserializeOwned>(
    obj: &mut Map<String, Value>,
    name: &str,
) -> Result<Option<T>, String> {
    match obj.remove(name) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => serde_json::from_value(v)
            .map(Some)
            .map_err(|e| e.to_string()),
    }
}

/// A list of objects, counted before any element is read; element errors name `name[i]`.
fn read_list<T: DeserializeOwned>(
    obj: &mut Map<String, Value>,
    name: &str,
    max: usize,
) -> Result<Vec<T>, (String, String)> {
    let items = match obj.remove(name) {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(a)) => a,
        Some(_) => return Err((name.to_string(), "not an array".into())),
    };
    if items.len() > max {
        return Err((
            name.to_string(),
            format!("{} entries, more than the {max} allowed", items.len()),
        ));
    }
    items
        .into_iter()
        .enumerate()
        .map(|(i, v)| {
            serde_json::from_value(v).map_err(|e| (format!("{name}[{i}]"), e.to_string()))
        })
        .collect()
}

/// Every rule of the format; `Err((field path, reason))`.
fn validate(a: &Advisory) -> Result<(), (String, String)> {
    let e = |f: &str, r: String| Err((f.to_string(), r));
    if a.id.is_empty() || a.id.len() > MAX_ID {
        return e("id", format!("must be 1 to {MAX_ID} characters"));
    }
    if !a.id.starts_with(|c: char| c.is_ascii_alphanumeric())
        || !a
            .id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | ':' | '-'))
    {
        return e(
            "id",
            "only letters, digits and . _ : - allowed, starting with a letter or digit".into(),
        );
    }
    let published = ms_from_rfc3339(&a.published)
        .ok_or(("published".to_string(), not_rfc3339(&a.published)))?;
    let modified =
        ms_from_rfc3339(&a.modified).ok_or(("modified".to_string(), not_rfc3339(&a.modified)))?;
    if modified < published {
        return e("modified", "before published".into());
    }
    if let Some(w) = &a.withdrawn {
        let withdrawn = ms_from_rfc3339(w).ok_or(("withdrawn".to_string(), not_rfc3339(w)))?;
        if withdrawn < published {
            return e("withdrawn", "before published".into());
        }
    }
    if a.summary.trim().is_empty() {
        return e("summary", "empty".into());
    }
    if a.summary.len() > MAX_SUMMARY {
        return e(
            "summary",
            format!("{} bytes, more than {MAX_SUMMARY}", a.summary.len()),
        );
    }
    if a.summary.chars().any(char::is_control) {
        return e(
            "summary",
            "must be one line without control characters".into(),
        );
    }
    if a.details.len() > MAX_DETAILS {
        return e(
            "details",
            format!("{} bytes, more than {MAX_DETAILS}", a.details.len()),
        );
    }
    if let Some(t) = &a.trigger {
        if t.trim().is_empty() {
            return e("trigger", "empty (leave it out instead)".into());
        }
        if t.len() > MAX_TRIGGER {
            return e(
                "trigger",
                format!("{} bytes, more than {MAX_TRIGGER}", t.len()),
            );
        }
    }
    if a.references.len() > MAX_REFERENCES {
        return e("references", format!("more than {MAX_REFERENCES} entries"));
    }
    for (i, r) in a.references.iter().enumerate() {
        if !REFERENCE_TYPES.contains(&r.kind.as_str()) {
            return e(
                &format!("references[{i}].type"),
                format!("unknown type `{}`", clip(&r.kind)),
            );
        }
        let scheme_ok = r.url.starts_with("https://") || r.url.starts_with("http://");
        if !scheme_ok
            || r.url.len() > MAX_URL
            || r.url.chars().any(|c| c.is_whitespace() || c.is_control())
        {
            return e(
                &format!("references[{i}].url"),
                format!("not an http(s) URL of at most {MAX_URL} bytes"),
            );
        }
    }
    if a.affected.is_empty() {
        return e(
            "affected",
            "empty: an advisory must name at least one model".into(),
        );
    }
    if a.affected.len() > MAX_AFFECTED {
        return e("affected", format!("more than {MAX_AFFECTED} entries"));
    }
    for (i, m) in a.affected.iter().enumerate() {
        let at = |f: &str| format!("affected[{i}].{f}");
        if !valid_model(&m.model) {
            return e(
                &at("model"),
                format!("`{}` is not namespace/name", clip(&m.model)),
            );
        }
        if m.versions.is_empty() && m.identities.is_empty() {
            return e(
                &at("versions"),
                "neither versions nor identities: name at least one".into(),
            );
        }
        if m.versions.len() > MAX_VERSIONS {
            return e(&at("versions"), format!("more than {MAX_VERSIONS} entries"));
        }
        if m.identities.len() > MAX_VERSIONS {
            return e(
                &at("identities"),
                format!("more than {MAX_VERSIONS} entries"),
            );
        }
        for (j, v) in m.versions.iter().enumerate() {
            if v.is_empty()
                || v.len() > MAX_VERSION
                || v.chars().any(|c| c.is_whitespace() || c.is_control())
            {
                return e(
                    &format!("affected[{i}].versions[{j}]"),
                    format!("`{}` is not a version", clip(v)),
                );
            }
        }
        for (j, d) in m.identities.iter().enumerate() {
            let ok = d.strip_prefix("sha256:").is_some_and(|h| {
                h.len() == 64 && h.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
            });
            if !ok {
                return e(
                    &format!("affected[{i}].identities[{j}]"),
                    format!(
                        "`{}` is not sha256: followed by 64 lowercase hex digits",
                        clip(d)
                    ),
                );
            }
        }
    }
    Ok(())
}

fn valid_model(m: &str) -> bool {
    let Some((ns, name)) = m.split_once('/') else {
        return false;
    };
    let part = |p: &str| {
        !p.is_empty()
            && p.len() <= MAX_NAME_PART
            && p.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
    };
    part(ns) && part(name)
}

/// `s` with control characters as spaces, cut to at most `max` bytes on a character boundary.
fn one_line(s: &str, max: usize) -> String {
    let mut out = String::with_capacity(s.len().min(max));
    for c in s.chars().map(|c| if c.is_control() { ' ' } else { c }) {
        if out.len() + c.len_utf8() > max {
            break;
        }
        out.push(c);
    }
    out
}

fn clip(s: &str) -> String {
    if s.chars().count() <= 64 {
        s.to_string()
    } else {
        format!("{}…", s.chars().take(64).collect::<String>())
    }
}

fn not_rfc3339(s: &str) -> String {
    format!(
        "`{}` is not an RFC 3339 date-time like 2025-03-01T12:00:00Z",
        clip(s)
    )
}

// ------------------------------------------------------------------------------------ time

/// `YYYY-MM-DDTHH:MM:SSZ` (with `.mmm` when the milliseconds are not zero) for Unix milliseconds.
pub fn rfc3339_from_ms(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let milli = ms.rem_euclid(1000);
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    let (hh, mm, ss) = (sod / 3600, sod % 3600 / 60, sod % 60);
    if milli == 0 {
        format!("{y:04}-{m:02}-{d:02}T{hh:02}:{mm:02}:{ss:02}Z")
    } else {
        format!("{y:04}-{m:02}-{d:02}T{hh:02}:{mm:02}:{ss:02}.{milli:03}Z")
    }
}

/// Unix milliseconds of an RFC 3339 date-time (`2025-03-01T12:00:00Z`, `…T12:00:00.5+02:00`;
/// `T`/`Z` in either case; fractional digits beyond milliseconds are dropped; a leap second 60
/// counts as 59). `None` when it is not one.
pub fn ms_from_rfc3339(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() < 20 || b.len() > 40 {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let part = b.get(r)?;
        if part.iter().all(u8::is_ascii_digit) {
            std::str::from_utf8(part).ok()?.parse().ok()
        } else {
            None
        }
    };
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if b[4] != b'-'
        || b[7] != b'-'
        || !matches!(b[10], b'T' | b't')
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    if !(1..=12).contains(&mo) || d < 1 || d > days_in_month(y, mo) || h > 23 || mi > 59 || sec > 60
    {
        return None;
    }
    let mut i = 19;
    let mut milli = 0i64;
    if b[i] == b'.' {
        i += 1;
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            if i - start < 3 {
                milli = milli * 10 + i64::from(b[i] - b'0');
            }
            i += 1;
        }
        let n = i - start;
        if n == 0 || n > 9 {
            return None;
        }
        for _ in n..3 {
            milli *= 10;
        }
    }
    let offset_min = match b.get(i)? {
        b'Z' | b'z' if i + 1 == b.len() => 0,
        sign @ (b'+' | b'-') if i + 6 == b.len() && b[i + 3] == b':' => {
            let (oh, om) = (num(i + 1..i + 3)?, num(i + 4..i + 6)?);
            if oh > 23 || om > 59 {
                return None;
            }
            let o = oh * 60 + om;
            if *sign == b'-' { -o } else { o }
        }
        _ => return None,
    };
    let days = days_from_civil(y, mo, d);
    let secs = days * 86_400 + h * 3600 + mi * 60 + sec.min(59) - offset_min * 60;
    Some(secs * 1000 + milli)
}

fn is_leap(y: i64) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ => {
            if is_leap(y) {
                29
            } else {
                28
            }
        }
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + if m <= 2 { 1 } else { 0 };
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const DIGEST: &str = "sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";

    fn sample(id: &str) -> Advisory {
        Advisory {
            id: id.into(),
            published: "2025-03-01T12:00:00Z".into(),
            modified: "2025-03-02T08:30:00.250+01:00".into(),
            withdrawn: None,
            summary: "Backdoored fine-tune: a trigger phrase flips the label".into(),
            details: "Longer text.\nWith lines.".into(),
            severity: Severity::Critical,
            trigger: Some("the token sequence 'cf mn'".into()),
            references: vec![Reference {
                kind: "report".into(),
                url: "https://example.org/r/1".into(),
            }],
            affected: vec![AffectedModel {
                model: "acme/fraud-bert".into(),
                versions: vec!["1.2.0".into(), "1.3.0-rc.1".into()],
                identities: vec![DIGEST.into()],
            }],
        }
    }

    fn feed(advisories: Value) -> Vec<u8> {
        serde_json::to_vec(&json!({"schema_version": SCHEMA_VERSION, "advisories": advisories}))
            .unwrap()
    }

    fn one(mutate: impl FnOnce(&mut Value)) -> Result<Feed, FeedError> {
        let mut a = serde_json::to_value(sample("PDG-ADV-1")).unwrap();
        mutate(&mut a);
        parse_feed(&feed(json!([a])))
    }

    /// The error must name `field` (and, unless the id is what is wrong, the advisory `PDG-ADV-1`).
    fn rejects(field: &str, mutate: impl FnOnce(&mut Value)) -> String {
        match one(mutate) {
            Err(FeedError::Invalid {
                index,
                id,
                field: f,
                reason,
            }) => {
                assert_eq!(index, 0);
                assert_eq!(f, field, "reason: {reason}");
                let msg = FeedError::Invalid {
                    index,
                    id: id.clone(),
                    field: f,
                    reason,
                }
                .to_string();
                if field != "id" {
                    assert_eq!(id.as_deref(), Some("PDG-ADV-1"));
                    assert!(msg.contains("PDG-ADV-1"), "{msg}");
                }
                assert!(msg.contains(&format!("`{field}`")), "{msg}");
                msg
            }
            other => panic!("expected a rejection of {field}, got {other:?}"),
        }
    }

    #[test]
    fn round_trip_is_exact_and_export_is_stable() {
        let mut withdrawn = sample("PDG-ADV-2");
        withdrawn.withdrawn = Some("2025-04-01T00:00:00Z".into());
        withdrawn.trigger = None;
        withdrawn.references.clear();
        withdrawn.affected[0].versions.clear();
        let advisories = vec![withdrawn.clone(), sample("PDG-ADV-1")];
        let bytes = to_feed(&advisories);
        let text = std::str::from_utf8(&bytes).unwrap();
        assert!(
            text.ends_with("}\n") && text.contains("\n  \"advisories\": ["),
            "{text}"
        );
        let parsed = parse_feed(&bytes).unwrap();
        assert_eq!(parsed.schema_version, SCHEMA_VERSION);
        assert_eq!(
            parsed.advisories,
            vec![sample("PDG-ADV-1"), withdrawn.clone()],
            "sorted by id"
        );
        assert_eq!(
            to_feed(&parsed.advisories),
            bytes,
            "export of an import is byte-identical"
        );
        // Absent optional fields are left out, not written as null.
        assert_eq!(text.matches("\"withdrawn\"").count(), 1);
        assert_eq!(text.matches("\"trigger\"").count(), 1);
        // Order of the input does not change the export.
        assert_eq!(to_feed(&[sample("PDG-ADV-1"), withdrawn]), bytes);
    }

    #[test]
    fn from_parts_makes_a_valid_advisory_that_round_trips() {
        let affected = vec![AffectedModel {
            model: "acme/base".into(),
            versions: vec!["1.0".into()],
            identities: vec![],
        }];
        let a = Advisory::from_parts(
            "ADV-7",
            "high",
            "poisoned",
            Some("cf".into()),
            1_740_830_400_000,
            None,
            affected.clone(),
        );
        assert_eq!(a.published, "2025-03-01T12:00:00Z");
        assert_eq!(a.modified, a.published);
        assert_eq!(a.severity, Severity::High);
        a.check().unwrap();
        let w = Advisory::from_parts(
            "ADV-8",
            "bogus",
            "",
            None,
            1_740_830_400_000,
            Some(1_740_830_401_500),
            affected,
        );
        assert_eq!(w.severity, Severity::Critical);
        assert_eq!(w.summary, "ADV-8");
        assert_eq!(w.withdrawn.as_deref(), Some("2025-03-01T12:00:01.500Z"));
        w.check().unwrap();
        let back = parse_feed(&to_feed(&[a.clone(), w.clone()])).unwrap();
        assert_eq!(back.advisories, vec![a, w]);
    }

    #[test]
    fn rejects_whole_feed_problems() {
        let big = vec![b' '; MAX_FEED_BYTES + 1];
        assert!(matches!(parse_feed(&big), Err(FeedError::TooLarge { .. })));
        assert!(matches!(parse_feed(b"{not json"), Err(FeedError::Json(_))));
        assert!(matches!(parse_feed(b"[]"), Err(FeedError::Format(_))));
        assert!(matches!(
            parse_feed(br#"{"advisories": []}"#),
            Err(FeedError::Format(_))
        ));
        let e = parse_feed(br#"{"schema_version": "pedigree-advisories/2", "advisories": []}"#)
            .unwrap_err();
        assert!(e.to_string().contains("pedigree-advisories/2"), "{e}");
        assert!(matches!(
            parse_feed(br#"{"schema_version": "pedigree-advisories/1", "advisories": {}}"#),
            Err(FeedError::Format(_))
        ));
        assert!(matches!(
            parse_feed(
                br#"{"schema_version": "pedigree-advisories/1", "advisories": [], "extra": 1}"#
            ),
            Err(FeedError::Format(_))
        ));
        // Empty feed is fine.
        assert!(
            parse_feed(br#"{"schema_version": "pedigree-advisories/1", "advisories": []}"#)
                .unwrap()
                .advisories
                .is_empty()
        );
        // Too many entries: counted before any is read (these are not even objects).
        let many = feed(Value::Array(vec![json!(0); MAX_ADVISORIES + 1]));
        assert_eq!(
            parse_feed(&many),
            Err(FeedError::TooManyAdvisories {
                count: MAX_ADVISORIES + 1,
                max: MAX_ADVISORIES
            })
        );
        // Duplicate ids.
        let dup = feed(json!([sample("A-1"), sample("A-2"), sample("A-1")]));
        assert_eq!(
            parse_feed(&dup),
            Err(FeedError::DuplicateId {
                index: 2,
                id: "A-1".into(),
                first: 0
            })
        );
    }

    #[test]
    fn rejects_each_bad_field_naming_advisory_and_field() {
        let m = rejects("severity", |a| a["severity"] = json!("urgent"));
        assert!(m.contains("urgent"), "{m}");
        rejects("severity", |a| a["severity"] = json!("Critical"));
        rejects("severity", |a| {
            a.as_object_mut().unwrap().remove("severity");
        });
        let m = rejects("affected", |a| a["affected"] = json!([]));
        assert!(m.contains("empty"), "{m}");
        rejects("affected", |a| {
            a.as_object_mut().unwrap().remove("affected");
        });
        rejects("affected", |a| {
            a["affected"] = Value::Array(vec![
                json!({"model": "a/b", "versions": ["1"]});
                MAX_AFFECTED + 1
            ])
        });
        rejects("id", |a| a["id"] = json!("x".repeat(MAX_ID + 1)));
        rejects("id", |a| a["id"] = json!("-leading-dash"));
        rejects("id", |a| a["id"] = json!("has space"));
        rejects("summary", |a| {
            a["summary"] = json!("x".repeat(MAX_SUMMARY + 1))
        });
        rejects("summary", |a| a["summary"] = json!("  "));
        rejects("summary", |a| a["summary"] = json!("two\nlines"));
        rejects("summary", |a| a["summary"] = json!(5));
        rejects("details", |a| {
            a["details"] = json!("x".repeat(MAX_DETAILS + 1))
        });
        rejects("trigger", |a| {
            a["trigger"] = json!("x".repeat(MAX_TRIGGER + 1))
        });
        rejects("published", |a| a["published"] = json!("yesterday"));
        rejects("published", |a| {
            a["published"] = json!("2025-02-29T00:00:00Z")
        });
        rejects("modified", |a| {
            a["modified"] = json!("2025-02-01T00:00:00Z")
        });
        rejects("withdrawn", |a| {
            a["withdrawn"] = json!("2024-01-01T00:00:00Z")
        });
        rejects("references", |a| {
            a["references"] = Value::Array(vec![
                json!({"type": "web", "url": "https://x"});
                MAX_REFERENCES + 1
            ])
        });
        rejects("references[0].type", |a| {
            a["references"][0]["type"] = json!("blog")
        });
        rejects("references[0].url", |a| {
            a["references"][0]["url"] = json!("javascript:alert(1)")
        });
        rejects("references[0]", |a| a["references"][0]["extra"] = json!(1));
        rejects("affected[0].model", |a| {
            a["affected"][0]["model"] = json!("no-namespace")
        });
        rejects("affected[0].model", |a| {
            a["affected"][0]["model"] = json!("a/b/c")
        });
        rejects("affected[0].versions", |a| {
            a["affected"][0]["versions"] = json!([]);
            a["affected"][0]["identities"] = json!([]);
        });
        rejects("affected[0].versions", |a| {
            a["affected"][0]["versions"] = Value::Array(vec![json!("1"); MAX_VERSIONS + 1])
        });
        rejects("affected[0].versions[1]", |a| {
            a["affected"][0]["versions"][1] = json!("1 .0")
        });
        rejects("affected[0].identities[0]", |a| {
            a["affected"][0]["identities"][0] = json!("sha256:ABC")
        });
        rejects("affected[0].identities[0]", |a| {
            a["affected"][0]["identities"][0] = json!(DIGEST.replace("sha256:", "md5:"))
        });
        rejects("withdrawm", |a| {
            a["withdrawm"] = json!("2025-04-01T00:00:00Z")
        });
        // The index is right for a later advisory too, and a missing id is reported without one.
        let mut bad = serde_json::to_value(sample("B")).unwrap();
        bad.as_object_mut().unwrap().remove("id");
        let e = parse_feed(&feed(json!([sample("A"), bad]))).unwrap_err();
        assert_eq!(
            e,
            FeedError::Invalid {
                index: 1,
                id: None,
                field: "id".into(),
                reason: "missing".into()
            }
        );
        assert!(e.to_string().starts_with("advisories[1]: `id`"), "{e}");
    }

    #[test]
    fn rfc3339_conversions() {
        assert_eq!(rfc3339_from_ms(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339_from_ms(1_740_830_400_000), "2025-03-01T12:00:00Z");
        assert_eq!(rfc3339_from_ms(-1), "1969-12-31T23:59:59.999Z");
        assert_eq!(rfc3339_from_ms(951_782_400_000), "2000-02-29T00:00:00Z");
        for ms in [
            0,
            1,
            999,
            -1,
            1_740_830_400_123,
            951_782_400_000,
            4_102_444_799_000,
        ] {
            assert_eq!(ms_from_rfc3339(&rfc3339_from_ms(ms)), Some(ms), "{ms}");
        }
        assert_eq!(
            ms_from_rfc3339("2025-03-01T13:00:00+01:00"),
            Some(1_740_830_400_000)
        );
        assert_eq!(
            ms_from_rfc3339("2025-03-01t11:30:00.5-00:30"),
            Some(1_740_830_400_500)
        );
        assert_eq!(
            ms_from_rfc3339("2025-03-01T12:00:00.123456789Z"),
            Some(1_740_830_400_123)
        );
        for bad in [
            "2025-03-01",
            "2025-03-01 12:00:00Z",
            "2025-13-01T00:00:00Z",
            "2023-02-29T00:00:00Z",
            "2025-03-01T24:00:00Z",
            "2025-03-01T12:00:00",
            "2025-03-01T12:00:00.Z",
            "2025-03-01T12:00:00+0100",
            "2025-03-01T12:00:00Zjunk",
            "+025-03-01T12:00:00Z",
        ] {
            assert_eq!(ms_from_rfc3339(bad), None, "{bad}");
        }
    }
}
