//! safetensors: `N` (u64 LE) | `N` bytes of JSON header | byte buffer (FORMATS-FACTS §7).
//!
//! We check everything the reference crate checks, and what it does not enforce although its
//! README says MUST: duplicate keys (the crate keeps the last), leading whitespace, non-string
//! `__metadata__` values. The reader never allocates more than the header it was given, and the
//! header itself is bounded by [`MAX_HEADER_SIZE`] (the crate's own limit).

use std::collections::BTreeSet;
use std::fmt;

use serde::Serialize;
use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};

/// The reference crate's `MAX_HEADER_SIZE`.
pub const MAX_HEADER_SIZE: u64 = 100_000_000;
/// Most tensors we keep in the view (a header within MAX_HEADER_SIZE holds at most ~1.5 M).
pub const MAX_TENSORS: usize = 2_000_000;
/// Most dimensions of one tensor.
pub const MAX_RANK: usize = 64;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum IssueKind {
    /// Header length over the limit or past the end of the file (a denial of service on loaders
    /// that trust it), or a file shorter than 8 bytes.
    HeaderLength,
    /// The header is not UTF-8 JSON of the expected shape.
    HeaderInvalid,
    /// `__metadata__` is not a map of strings.
    MetadataNotStrings,
    /// The same tensor name twice (the crate silently keeps the last).
    DuplicateName,
    /// Unknown dtype, or a malformed tensor entry.
    BadEntry,
    /// dtype × shape does not match the byte range.
    SizeMismatch,
    /// A byte range beyond the buffer, or with end < begin.
    OffsetOutOfRange,
    /// Two byte ranges overlap (aliasing).
    Overlap,
    /// Bytes between two tensors (or before the first) that belong to no tensor.
    Gap,
    /// Bytes after the last tensor.
    TrailingData,
    /// Whitespace before the header's `{` (accepted by the crate, forbidden by the spec).
    LeadingWhitespace,
}

#[derive(Debug, Clone, Serialize)]
pub struct Issue {
    pub kind: IssueKind,
    pub message: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct TensorInfo {
    pub name: String,
    pub dtype: String,
    pub shape: Vec<u64>,
    pub begin: u64,
    pub end: u64,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct SafetensorsView {
    pub header_len: u64,
    pub tensors: Vec<TensorInfo>,
    pub metadata: Vec<(String, String)>,
    pub issues: Vec<Issue>,
}

impl SafetensorsView {
    fn issue(&mut self, kind: IssueKind, message: impl Into<String>) {
        if self.issues.len() < 64 {
            self.issues.push(Issue {
                kind,
                message: message.into(),
            });
        }
    }
}

/// Whether the bytes look like safetensors (no magic exists: a plausible header length followed
/// by a JSON object).
pub fn looks_like(data: &[u8]) -> bool {
    if data.len() < 10 {
        return false;
    }
    let n = u64::from_le_bytes(data[..8].try_into().unwrap_or([0; 8]));
    if n < 2 || n > MAX_HEADER_SIZE || n > (data.len() - 8) as u64 {
        return false;
    }
    let header = &data[8..8 + n as usize];
    let first = header.iter().position(|b| !b.is_ascii_whitespace());
    matches!(first.map(|i| header[i]), Some(b'{'))
        && header.iter().rev().find(|b| !b.is_ascii_whitespace()) == Some(&b'}')
}

/// Bits per element, `None` for an unknown dtype.
pub fn dtype_bits(dtype: &str) -> Option<u64> {
    Some(match dtype {
        "F4" => 4,
        "F6_E2M3" | "F6_E3M2" => 6,
        "BOOL" | "U8" | "I8" | "F8_E5M2" | "F8_E4M3" | "F8_E8M0" | "F8_E4M3FNUZ"
        | "F8_E5M2FNUZ" => 8,
        "I16" | "U16" | "F16" | "BF16" => 16,
        "I32" | "U32" | "F32" => 32,
        "I64" | "U64" | "F64" | "C64" => 64,
        _ => return None,
    })
}

/// JSON object entries in file order, duplicates kept (serde_json's map would drop them).
struct Entries(Vec<(String, serde_json::Value)>);

impl<'de> Deserialize<'de> for Entries {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Entries;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Entries, A::Error> {
                let mut out = Vec::new();
                while let Some((k, v)) = map.next_entry::<String, serde_json::Value>()? {
                    if out.len() >= MAX_TENSORS {
                        return Err(serde::de::Error::custom("too many header entries"));
                    }
                    out.push((k, v));
                }
                Ok(Entries(out))
            }
        }
        d.deserialize_map(V)
    }
}

/// Reads and validates a safetensors file. Never fails: every problem is an [`Issue`].
pub fn read(data: &[u8]) -> SafetensorsView {
    let mut v = SafetensorsView::default();
    if data.len() < 8 {
        v.issue(
            IssueKind::HeaderLength,
            format!(
                "file is {} bytes, shorter than the 8-byte header length",
                data.len()
            ),
        );
        return v;
    }
    let n = u64::from_le_bytes(data[..8].try_into().unwrap_or([0; 8]));
    v.header_len = n;
    if n > MAX_HEADER_SIZE {
        v.issue(
            IssueKind::HeaderLength,
            format!(
                "header length {n} is over the {MAX_HEADER_SIZE}-byte limit of the reference loader"
            ),
        );
        return v;
    }
    if n > (data.len() - 8) as u64 {
        v.issue(
            IssueKind::HeaderLength,
            format!(
                "header length {n} runs past the end of the {}-byte file",
                data.len()
            ),
        );
        return v;
    }
    let header = &data[8..8 + n as usize];
    let buffer_len = (data.len() as u64) - 8 - n;
    let Ok(text) = std::str::from_utf8(header) else {
        v.issue(IssueKind::HeaderInvalid, "header is not UTF-8");
        return v;
    };
    if text.starts_with(|c: char| c.is_ascii_whitespace()) {
        v.issue(
            IssueKind::LeadingWhitespace,
            "header starts with whitespace before '{' (the format says it MUST start with '{')",
        );
    }
    let entries = match serde_json::from_str::<Entries>(text.trim_end_matches(' ')) {
        Ok(e) => e.0,
        Err(e) => {
            v.issue(
                IssueKind::HeaderInvalid,
                format!("header is not a JSON object: {e}"),
            );
            return v;
        }
    };
    let mut names = BTreeSet::new();
    for (name, value) in entries {
        if name == "__metadata__" {
            match value.as_object() {
                Some(m) => {
                    for (k, val) in m {
                        match val.as_str() {
                            Some(s) => v.metadata.push((k.clone(), s.to_string())),
                            None => v.issue(
                                IssueKind::MetadataNotStrings,
                                format!("__metadata__ value {k:?} is not a string"),
                            ),
                        }
                    }
                }
                None => v.issue(
                    IssueKind::MetadataNotStrings,
                    "__metadata__ is not a map of strings",
                ),
            }
            continue;
        }
        if !names.insert(name.clone()) {
            v.issue(
                IssueKind::DuplicateName,
                format!(
                    "tensor {name:?} is listed twice (the reference loader silently keeps the last)"
                ),
            );
        }
        match entry(&name, &value) {
            Ok(t) => v.tensors.push(t),
            Err(msg) => v.issue(IssueKind::BadEntry, msg),
        }
    }
    check_layout(&mut v, buffer_len);
    v
}

fn entry(name: &str, value: &serde_json::Value) -> Result<TensorInfo, String> {
    let obj = value
        .as_object()
        .ok_or_else(|| format!("tensor {name:?}: entry is not an object"))?;
    let dtype = obj
        .get("dtype")
        .and_then(|d| d.as_str())
        .ok_or_else(|| format!("tensor {name:?}: no dtype"))?;
    if dtype_bits(dtype).is_none() {
        return Err(format!("tensor {name:?}: unknown dtype {dtype:?}"));
    }
    let shape_v = obj
        .get("shape")
        .and_then(|s| s.as_array())
        .ok_or_else(|| format!("tensor {name:?}: no shape"))?;
    if shape_v.len() > MAX_RANK {
        return Err(format!("tensor {name:?}: {} dimensions", shape_v.len()));
    }
    let shape = shape_v
        .iter()
        .map(|d| d.as_u64())
        .collect::<Option<Vec<u64>>>()
        .ok_or_else(|| {
            format!("tensor {name:?}: shape holds a value that is not a non-negative integer")
        })?;
    let offs = obj
        .get("data_offsets")
        .and_then(|s| s.as_array())
        .filter(|a| a.len() == 2)
        .ok_or_else(|| format!("tensor {name:?}: data_offsets is not a pair"))?;
    let (Some(begin), Some(end)) = (offs[0].as_u64(), offs[1].as_u64()) else {
        return Err(format!(
            "tensor {name:?}: data_offsets are not non-negative integers"
        ));
    };
    Ok(TensorInfo {
        name: name.to_string(),
        dtype: dtype.to_string(),
        shape,
        begin,
        end,
    })
}

fn check_layout(v: &mut SafetensorsView, buffer_len: u64) {
    let mut issues = Vec::new();
    for t in &v.tensors {
        if t.end < t.begin || t.end > buffer_len {
            issues.push((
                IssueKind::OffsetOutOfRange,
                format!(
                    "tensor {:?}: byte range [{}, {}) is outside the {buffer_len}-byte data buffer",
                    t.name, t.begin, t.end
                ),
            ));
            continue;
        }
        let bits = dtype_bits(&t.dtype).unwrap_or(8);
        let elems = t.shape.iter().try_fold(1u64, |a, &d| a.checked_mul(d));
        let expected = elems
            .and_then(|e| e.checked_mul(bits))
            .map(|b| (b, b % 8 == 0));
        match expected {
            Some((b, true)) if b / 8 == t.end - t.begin => {}
            Some((b, whole)) => issues.push((
                IssueKind::SizeMismatch,
                format!(
                    "tensor {:?}: {} {:?} needs {}{} bytes but its byte range holds {}",
                    t.name,
                    t.dtype,
                    t.shape,
                    b / 8,
                    if whole { "" } else { " and a fraction" },
                    t.end - t.begin
                ),
            )),
            None => issues.push((
                IssueKind::SizeMismatch,
                format!("tensor {:?}: shape {:?} overflows", t.name, t.shape),
            )),
        }
    }
    let mut ranges: Vec<(u64, u64, &str)> = v
        .tensors
        .iter()
        .filter(|t| t.end >= t.begin && t.end <= buffer_len)
        .map(|t| (t.begin, t.end, t.name.as_str()))
        .collect();
    ranges.sort();
    let mut pos = 0u64;
    let mut last_name = "";
    for (b, e, name) in &ranges {
        if *b < pos {
            issues.push((
                IssueKind::Overlap,
                format!("tensor {name:?} [{b}, {e}) overlaps tensor {last_name:?} (ends at {pos})"),
            ));
        } else if *b > pos {
            issues.push((
                IssueKind::Gap,
                format!(
                    "{} bytes at [{pos}, {b}) before tensor {name:?} belong to no tensor",
                    b - pos
                ),
            ));
        }
        if *e >= pos {
            pos = *e;
            last_name = name;
        }
    }
    if pos < buffer_len && v.tensors.len() == ranges.len() {
        issues.push((
            IssueKind::TrailingData,
            format!(
                "{} bytes after the last tensor (the reference loader refuses the file)",
                buffer_len - pos
            ),
        ));
    }
    for (k, m) in issues {
        v.issue(k, m);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(header: &str, data: usize) -> Vec<u8> {
        let mut out = (header.len() as u64).to_le_bytes().to_vec();
        out.extend_from_slice(header.as_bytes());
        out.extend(std::iter::repeat_n(0u8, data));
        out
    }

    fn kinds(v: &SafetensorsView) -> Vec<IssueKind> {
        v.issues.iter().map(|i| i.kind).collect()
    }

    #[test]
    fn clean() {
        let h = r#"{"__metadata__":{"format":"pt"},"a":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]},"b":{"dtype":"BF16","shape":[3],"data_offsets":[16,22]}}"#;
        let v = read(&file(h, 22));
        assert!(v.issues.is_empty(), "{:?}", v.issues);
        assert_eq!(v.tensors.len(), 2);
        assert!(looks_like(&file(h, 22)));
    }

    #[test]
    fn overlap_gap_trailing_dup() {
        let h = r#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}"#;
        assert_eq!(kinds(&read(&file(h, 12))), vec![IssueKind::Overlap]);
        let h = r#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}"#;
        assert_eq!(
            kinds(&read(&file(h, 16))),
            vec![IssueKind::Gap, IssueKind::TrailingData]
        );
        let h = r#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"a":{"dtype":"F32","shape":[2],"data_offsets":[8,16]}}"#;
        assert_eq!(kinds(&read(&file(h, 16))), vec![IssueKind::DuplicateName]);
        let h = r#"{"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}"#;
        assert_eq!(kinds(&read(&file(h, 8))), vec![IssueKind::SizeMismatch]);
        let h = r#"{"__metadata__":{"x":1}}"#;
        assert_eq!(
            kinds(&read(&file(h, 0))),
            vec![IssueKind::MetadataNotStrings]
        );
    }

    #[test]
    fn header_bounds() {
        let mut f = u64::MAX.to_le_bytes().to_vec();
        f.extend_from_slice(b"{}");
        assert_eq!(kinds(&read(&f)), vec![IssueKind::HeaderLength]);
        assert_eq!(kinds(&read(b"abc")), vec![IssueKind::HeaderLength]);
        assert_eq!(
            kinds(&read(&file("{nope", 0))),
            vec![IssueKind::HeaderInvalid]
        );
    }

    #[test]
    fn random_inputs_never_panic() {
        let base = file(
            r#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#,
            8,
        );
        crate::fuzz_util::mutate_many(&base, 3000, 0x5afe, |d| {
            let _ = read(d);
            let _ = looks_like(d);
        });
    }
}
