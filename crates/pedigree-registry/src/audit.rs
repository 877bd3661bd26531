//! The hash-chained audit log, pure part: how an entry is hashed, how the next entry is made, and
//! how a whole chain is verified. Storage appends entries and hands them back in `seq` order.
//!
//! Each entry commits to its predecessor: `hash = SHA-256(encoding(prev, seq, at_ms, actor,
//! action, subject, details))` with `prev` the previous entry's `hash` ([`GENESIS`] for the first,
//! `seq` 1). The encoding is unambiguous: a domain tag, then every field length-prefixed (`u64`
//! big-endian byte length, then the bytes); integers as 8-byte big-endian two's complement;
//! `details` as canonical JSON ([`canonical_json`]: object keys sorted, no whitespace, one fixed
//! string escaping), so the hash does not depend on how a JSON library orders maps or on how the
//! details were stored and parsed back.
//!
//! A chain alone cannot show that its newest entries were cut off (what is left is still a
//! valid chain). The server therefore writes the head ([`Anchor`]: seq and hash) to a file outside
//! the database after every append; [`verify_chain`] given that anchor catches truncation of the
//! tail, and also a chain rewritten from some point on and re-hashed.

use std::borrow::Borrow;
use std::fmt;
use std::io;
use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

/// The `prev` of the first entry: 64 zeros.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Domain separation for the entry hash; changing the encoding means changing this tag.
const DOMAIN: &[u8] = b"pedigree-audit/1\0";

/// One audit log entry.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct AuditEntry {
    /// Position in the chain, from 1, without gaps.
    pub seq: i64,
    /// When, in milliseconds since the Unix epoch.
    pub at_ms: i64,
    /// Who: a token id, `"ingest"`, `"system"`, ...
    pub actor: String,
    /// What: `"version.approve"`, `"advisory.flag"`, ...
    pub action: String,
    /// On what: a version label, an advisory id, ...
    pub subject: String,
    /// Anything else, as JSON.
    pub details: Value,
    /// The previous entry's `hash` ([`GENESIS`] for seq 1).
    pub prev: String,
    /// [`entry_hash`] of this entry, lowercase hex.
    pub hash: String,
}

/// The hash of an entry, lowercase hex SHA-256 over the encoding described in the module doc.
pub fn entry_hash(
    prev: &str,
    seq: i64,
    at_ms: i64,
    actor: &str,
    action: &str,
    subject: &str,
    details: &Value,
) -> String {
    let mut h = Sha256::new();
    h.update(DOMAIN);
    let mut field = |bytes: &[u8]| {
        h.update((bytes.len() as u64).to_be_bytes());
        h.update(bytes);
    };
    field(prev.as_bytes());
    field(&seq.to_be_bytes());
    field(&at_ms.to_be_bytes());
    field(actor.as_bytes());
    field(action.as_bytes());
    field(subject.as_bytes());
    field(canonical_json(details).as_bytes());
    hex::encode(h.finalize())
}

/// Canonical JSON text of `v`: object keys sorted by UTF-16 code units (as RFC 8785 does), no
/// insignificant whitespace, strings escaped as `\"`, `\\`, `\b`, `\f`, `\n`, `\r`, `\t`, other
/// control characters as `\u00xx` and everything else as raw UTF-8; numbers as `serde_json`
/// prints them (integers exactly; floats in their shortest round-trip form, which is stable
/// across a store-and-parse round trip).
pub fn canonical_json(v: &Value) -> String {
    let mut out = String::new();
    write_canonical(v, &mut out);
    out
}

fn write_canonical(v: &Value, out: &mut String) {
    match v {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => out.push_str(&n.to_string()),
        Value::String(s) => write_string(s, out),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(item, out);
            }
            out.push(']');
        }
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort_by(|a, b| a.encode_utf16().cmp(b.encode_utf16()));
            out.push('{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_string(k, out);
                out.push(':');
                write_canonical(&map[k], out);
            }
            out.push('}');
        }
    }
}

fn write_string(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

/// The entry that follows `prev` (or the first entry, seq 1 chained to [`GENESIS`], when `prev`
/// is `None`), with its hash computed.
pub fn next_entry(
    prev: Option<&AuditEntry>,
    at_ms: i64,
    actor: &str,
    action: &str,
    subject: &str,
    details: Value,
) -> AuditEntry {
    let (seq, prev_hash) = match prev {
        Some(p) => (p.seq + 1, p.hash.clone()),
        None => (1, GENESIS.to_string()),
    };
    let hash = entry_hash(&prev_hash, seq, at_ms, actor, action, subject, &details);
    AuditEntry {
        seq,
        at_ms,
        actor: actor.to_string(),
        action: action.to_string(),
        subject: subject.to_string(),
        details,
        prev: prev_hash,
        hash,
    }
}

/// A checkpoint of the chain's head kept outside the table: the seq and hash of the newest entry
/// (seq 0 and [`GENESIS`] for an empty log). Stored as one JSON object in a file.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct Anchor {
    pub seq: i64,
    pub hash: String,
}

impl Anchor {
    /// The anchor of an empty log.
    pub fn genesis() -> Self {
        Anchor {
            seq: 0,
            hash: GENESIS.to_string(),
        }
    }

    /// The anchor that points at `entry`.
    pub fn of(entry: &AuditEntry) -> Self {
        Anchor {
            seq: entry.seq,
            hash: entry.hash.clone(),
        }
    }

    /// Read an anchor file written by [`Anchor::save`].
    pub fn load(path: &Path) -> io::Result<Self> {
        let bytes = std::fs::read(path)?;
        if bytes.len() > 4096 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "anchor file too large",
            ));
        }
        let a: Anchor = serde_json::from_slice(&bytes).map_err(|e| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("not an audit anchor: {e}"),
            )
        })?;
        let hex_ok = a.hash.len() == 64
            && a.hash
                .bytes()
                .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
        if a.seq < 0 || !hex_ok {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "not an audit anchor: bad seq or hash",
            ));
        }
        Ok(a)
    }

    /// Write the anchor atomically and durably: a temporary file beside `path`, fsync, rename over
    /// `path`, fsync of the directory (on Unix), so a crash leaves the old or the new anchor.
    pub fn save(&self, path: &Path) -> io::Result<()> {
        use std::io::Write;
        let dir = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let name = path
            .file_name()
            .ok_or_else(|| io::Error::other("anchor path has no file name"))?;
        let tmp = dir.join(format!(".{}.tmp", name.to_string_lossy()));
        {
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(&serde_json::to_vec(self).map_err(io::Error::other)?)?;
            f.write_all(b"\n")?;
            f.sync_all()?;
        }
        std::fs::rename(&tmp, path)?;
        #[cfg(unix)]
        std::fs::File::open(dir)?.sync_all()?;
        Ok(())
    }
}

/// What a successful verification saw.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChainSummary {
    /// Number of entries.
    pub count: usize,
    /// The newest entry (seq 0 and [`GENESIS`] for an empty log).
    pub head: Anchor,
    /// The anchor the chain was checked against, if one was given.
    pub anchor: Option<Anchor>,
}

/// Formats as a suffix for "audit chain intact: N entries from X": `", head #seq abcdef012345…, …"`.
impl fmt::Display for ChainSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            ", head #{} {}…",
            self.head.seq,
            &self.head.hash[..self.head.hash.len().min(12)]
        )?;
        match &self.anchor {
            Some(a) if a.seq == self.head.seq => write!(f, ", matches the anchor"),
            Some(a) => write!(
                f,
                ", anchor #{} matches ({} newer entr{})",
                a.seq,
                self.head.seq - a.seq,
                if self.head.seq - a.seq == 1 {
                    "y"
                } else {
                    "ies"
                }
            ),
            None => write!(
                f,
                " (no anchor: truncation of the newest entries is not detectable)"
            ),
        }
    }
}

/// The first thing wrong with a chain. `seq` always names the first position that is not right.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChainError {
    /// The entry at position `seq` does not hash to its stored `hash`: a field (or the hash) was
    /// changed. `stored_seq` is the seq written in it (differs from `seq` when that was edited).
    #[error("entry #{seq} was edited: its stored hash does not match its contents")]
    Edited { seq: i64, stored_seq: i64 },
    /// Entries `seq ..= last_missing` are absent: the chain jumps to `last_missing + 1`.
    #[error("entr{} #{seq}{} removed: the chain jumps from #{} to #{}",
        if seq == last_missing { "y" } else { "ies" },
        if seq == last_missing { " was".to_string() } else { format!("..#{last_missing} were") },
        seq - 1, last_missing + 1)]
    Removed { seq: i64, last_missing: i64 },
    /// Entry `seq` exists but further on; entry `found` stands at its position.
    #[error("entries were reordered: #{found} stands where #{seq} belongs")]
    Reordered { seq: i64, found: i64 },
    /// Entry `seq` appears a second time at the position where `expected` belongs.
    #[error("entry #{seq} appears twice (at the position of #{expected})")]
    Duplicate { seq: i64, expected: i64 },
    /// Entry `seq` is self-consistent but its `prev` is not the hash of entry `seq - 1`: that
    /// entry was rewritten and re-hashed, or entries were removed and the rest renumbered.
    #[error("entry #{seq} does not chain to #{}: an earlier entry was rewritten or removed and the chain re-hashed", seq - 1)]
    BrokenLink { seq: i64 },
    /// The anchor names entry `anchor_seq`, but the chain ends at `last_seq`: the tail was cut off.
    #[error("truncated: the anchor names entry #{anchor_seq} but the log ends at #{last_seq}")]
    Truncated { anchor_seq: i64, last_seq: i64 },
    /// Entry `seq` exists but its hash differs from the anchor's: the chain was rewritten from some
    /// point up to there (or truncated and re-extended) and re-hashed.
    #[error(
        "entry #{seq} does not match the anchor (anchor {anchor_hash}, log {stored_hash}): the log was truncated or rewritten and re-hashed"
    )]
    AnchorMismatch {
        seq: i64,
        anchor_hash: String,
        stored_hash: String,
    },
}

impl ChainError {
    /// The first bad seq.
    pub fn seq(&self) -> i64 {
        match self {
            ChainError::Edited { seq, .. }
            | ChainError::Removed { seq, .. }
            | ChainError::Reordered { seq, .. }
            | ChainError::Duplicate { seq, .. }
            | ChainError::BrokenLink { seq }
            | ChainError::AnchorMismatch { seq, .. } => *seq,
            ChainError::Truncated { last_seq, .. } => last_seq + 1,
        }
    }

    /// A short machine-readable name: `edited`, `removed`, `reordered`, `duplicate`,
    /// `broken-link`, `truncated`, `anchor-mismatch`.
    pub fn kind(&self) -> &'static str {
        match self {
            ChainError::Edited { .. } => "edited",
            ChainError::Removed { .. } => "removed",
            ChainError::Reordered { .. } => "reordered",
            ChainError::Duplicate { .. } => "duplicate",
            ChainError::BrokenLink { .. } => "broken-link",
            ChainError::Truncated { .. } => "truncated",
            ChainError::AnchorMismatch { .. } => "anchor-mismatch",
        }
    }
}

/// Verify a whole chain, given in storage order (the order the store returns, by `seq`), from
/// its first entry; with `anchor`, also that the chain reaches the anchor's entry and that entry
/// has the anchor's hash. An anchor older than the head is fine (the server had appended but not
/// yet rewritten the anchor). Accepts owned entries or references.
///
/// Checks, entry by entry, the first failure winning: the stored hash matches the contents
/// ([`ChainError::Edited`]); the seq is the next one ([`ChainError::Removed`] when the missing one
/// is nowhere, [`ChainError::Reordered`] when it comes later, [`ChainError::Duplicate`]); `prev`
/// is the previous entry's hash ([`ChainError::BrokenLink`]); then the anchor
/// ([`ChainError::Truncated`], [`ChainError::AnchorMismatch`]).
pub fn verify_chain<I>(entries: I, anchor: Option<&Anchor>) -> Result<ChainSummary, ChainError>
where
    I: IntoIterator,
    I::Item: Borrow<AuditEntry>,
{
    let entries: Vec<I::Item> = entries.into_iter().collect();
    let mut prev_hash: &str = GENESIS;
    let mut prev_seq: i64 = 0;
    for (pos, item) in entries.iter().enumerate() {
        let e: &AuditEntry = item.borrow();
        let expected = prev_seq + 1;
        let recomputed = entry_hash(
            &e.prev, e.seq, e.at_ms, &e.actor, &e.action, &e.subject, &e.details,
        );
        if recomputed != e.hash {
            return Err(ChainError::Edited {
                seq: expected,
                stored_seq: e.seq,
            });
        }
        if e.seq != expected {
            if e.seq < expected {
                // Entries 1..=prev_seq sit at positions 0..prev_seq, verified.
                let earlier: &AuditEntry = entries[(e.seq.max(1) - 1) as usize].borrow();
                return Err(if e.seq >= 1 && earlier.hash == e.hash {
                    ChainError::Duplicate {
                        seq: e.seq,
                        expected,
                    }
                } else {
                    ChainError::Reordered {
                        seq: expected,
                        found: e.seq,
                    }
                });
            }
            let later = entries[pos + 1..]
                .iter()
                .any(|x| x.borrow().seq == expected);
            return Err(if later {
                ChainError::Reordered {
                    seq: expected,
                    found: e.seq,
                }
            } else {
                ChainError::Removed {
                    seq: expected,
                    last_missing: e.seq - 1,
                }
            });
        }
        if e.prev != prev_hash {
            return Err(ChainError::BrokenLink { seq: e.seq });
        }
        prev_hash = &e.hash;
        prev_seq = e.seq;
    }
    let head = Anchor {
        seq: prev_seq,
        hash: prev_hash.to_string(),
    };
    if let Some(a) = anchor {
        if a.seq > prev_seq {
            return Err(ChainError::Truncated {
                anchor_seq: a.seq,
                last_seq: prev_seq,
            });
        }
        let stored_hash = if a.seq <= 0 {
            GENESIS
        } else {
            entries[(a.seq - 1) as usize].borrow().hash.as_str()
        };
        if stored_hash != a.hash {
            return Err(ChainError::AnchorMismatch {
                seq: a.seq,
                anchor_hash: a.hash.clone(),
                stored_hash: stored_hash.to_string(),
            });
        }
    }
    Ok(ChainSummary {
        count: entries.len(),
        head,
        anchor: anchor.cloned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn chain(n: usize) -> Vec<AuditEntry> {
        let mut out: Vec<AuditEntry> = Vec::with_capacity(n);
        for i in 0..n {
            let e = next_entry(
                out.last(),
                1_700_000_000_000 + i as i64 * 17,
                &format!("token-{}", i % 7),
                if i % 3 == 0 {
                    "version.approve"
                } else {
                    "advisory.flag"
                },
                &format!("acme/m{}:1.0.{i}", i % 11),
                json!({"i": i, "tags": ["a", "b"], "nested": {"z": 1, "a": null, "f": 0.25}}),
            );
            out.push(e);
        }
        out
    }

    fn rehash(e: &mut AuditEntry) {
        e.hash = entry_hash(
            &e.prev, e.seq, e.at_ms, &e.actor, &e.action, &e.subject, &e.details,
        );
    }

    #[test]
    fn a_chain_of_1000_verifies_with_and_without_anchor() {
        let c = chain(1000);
        assert_eq!(c[0].seq, 1);
        assert_eq!(c[0].prev, GENESIS);
        assert_eq!(c[999].seq, 1000);
        let s = verify_chain(&c, None).unwrap();
        assert_eq!(s.count, 1000);
        assert_eq!(s.head, Anchor::of(&c[999]));
        let s = verify_chain(c.clone(), Some(&Anchor::of(&c[999]))).unwrap();
        assert!(s.to_string().contains("matches the anchor"), "{s}");
        // An anchor a few entries behind the head is fine (appended, anchor not yet rewritten).
        assert!(verify_chain(&c, Some(&Anchor::of(&c[997]))).is_ok());
        // Empty log.
        let empty: Vec<AuditEntry> = Vec::new();
        assert_eq!(
            verify_chain(&empty, Some(&Anchor::genesis())).unwrap().head,
            Anchor::genesis()
        );
    }

    #[test]
    fn editing_any_field_is_detected_and_named() {
        let c = chain(1000);
        type Edit = fn(&mut AuditEntry);
        let edits: [(&str, Edit); 8] = [
            ("seq", |e| e.seq += 1000),
            ("at_ms", |e| e.at_ms += 1),
            ("actor", |e| e.actor.push('x')),
            ("action", |e| e.action = "version.reject".into()),
            ("subject", |e| e.subject = "evil/m:1".into()),
            ("details", |e| e.details["nested"]["z"] = json!(2)),
            ("prev", |e| e.prev = GENESIS.into()),
            ("hash", |e| e.hash = "f".repeat(64)),
        ];
        for (name, edit) in edits {
            let mut t = c.clone();
            edit(&mut t[499]);
            let err = verify_chain(&t, None).unwrap_err();
            assert_eq!(err.kind(), "edited", "{name}: {err}");
            assert_eq!(err.seq(), 500, "{name}: {err}");
        }
    }

    #[test]
    fn removing_an_entry_is_detected_and_named() {
        let c = chain(1000);
        let mut t = c.clone();
        t.remove(499);
        assert_eq!(
            verify_chain(&t, None),
            Err(ChainError::Removed {
                seq: 500,
                last_missing: 500
            })
        );
        let mut t = c.clone();
        t.drain(99..102);
        let err = verify_chain(&t, None).unwrap_err();
        assert_eq!(
            err,
            ChainError::Removed {
                seq: 100,
                last_missing: 102
            }
        );
        assert!(err.to_string().contains("#100..#102 were removed"), "{err}");
        let mut t = c.clone();
        t.remove(0);
        assert_eq!(verify_chain(&t, None).unwrap_err().seq(), 1);
        // Removed and the rest renumbered and re-hashed: the link breaks.
        let mut t = c[..10].to_vec();
        t.remove(4);
        for i in 4..t.len() {
            t[i].seq -= 1;
            if i > 4 {
                t[i].prev = t[i - 1].hash.clone();
            }
            rehash(&mut t[i]);
        }
        assert_eq!(
            verify_chain(&t, None),
            Err(ChainError::BrokenLink { seq: 5 })
        );
    }

    #[test]
    fn reordering_and_duplicates_are_detected_and_named() {
        let c = chain(1000);
        let mut t = c.clone();
        t.swap(299, 699);
        assert_eq!(
            verify_chain(&t, None),
            Err(ChainError::Reordered {
                seq: 300,
                found: 700
            })
        );
        let mut t = c.clone();
        t.swap(9, 10);
        assert_eq!(
            verify_chain(&t, None),
            Err(ChainError::Reordered { seq: 10, found: 11 })
        );
        let mut t = c.clone();
        t.insert(50, c[20].clone());
        assert_eq!(
            verify_chain(&t, None),
            Err(ChainError::Duplicate {
                seq: 21,
                expected: 51
            })
        );
    }

    #[test]
    fn truncation_needs_the_anchor() {
        let c = chain(1000);
        let anchor = Anchor::of(&c[999]);
        let t = c[..990].to_vec();
        assert!(
            verify_chain(&t, None).is_ok(),
            "a truncated chain is still a chain"
        );
        let err = verify_chain(&t, Some(&anchor)).unwrap_err();
        assert_eq!(
            err,
            ChainError::Truncated {
                anchor_seq: 1000,
                last_seq: 990
            }
        );
        assert_eq!(err.seq(), 991);
        assert!(verify_chain(Vec::<AuditEntry>::new(), Some(&anchor)).is_err());
    }

    #[test]
    fn a_rewritten_and_rehashed_tail_is_caught_by_the_anchor() {
        let c = chain(100);
        let anchor = Anchor::of(&c[99]);
        // Edit #50 and re-hash it only: the next link breaks.
        let mut t = c.clone();
        t[49].actor = "mallory".into();
        rehash(&mut t[49]);
        assert_eq!(
            verify_chain(&t, None),
            Err(ChainError::BrokenLink { seq: 51 })
        );
        // Re-hash everything after it too: only the anchor shows it.
        for i in 50..t.len() {
            t[i].prev = t[i - 1].hash.clone();
            rehash(&mut t[i]);
        }
        assert!(verify_chain(&t, None).is_ok());
        let err = verify_chain(&t, Some(&anchor)).unwrap_err();
        assert_eq!(err.kind(), "anchor-mismatch");
        assert_eq!(err.seq(), 100);
    }

    #[test]
    fn the_encoding_is_unambiguous_and_canonical() {
        let d = json!({});
        let a = entry_hash(GENESIS, 1, 0, "ab", "c", "x", &d);
        let b = entry_hash(GENESIS, 1, 0, "a", "bc", "x", &d);
        assert_ne!(a, b);
        // A string that looks like JSON vs the JSON itself.
        assert_ne!(
            entry_hash(GENESIS, 1, 0, "a", "b", "c", &json!("{}")),
            entry_hash(GENESIS, 1, 0, "a", "b", "c", &json!({}))
        );
        let v = json!({"b": 1, "a": [true, null, "x\n\"\u{1}"], "é": 1.5, "B": {"y": -2, "x": []}});
        assert_eq!(
            canonical_json(&v),
            "{\"B\":{\"x\":[],\"y\":-2},\"a\":[true,null,\"x\\n\\\"\\u0001\"],\"b\":1,\"é\":1.5}"
        );
        // Stable across a store-and-parse round trip.
        let back: Value = serde_json::from_str(&v.to_string()).unwrap();
        assert_eq!(canonical_json(&back), canonical_json(&v));
        // Pinned: changing the encoding would invalidate every stored chain.
        assert_eq!(
            entry_hash(
                GENESIS,
                1,
                1_700_000_000_000,
                "admin",
                "version.approve",
                "acme/m:1.0.0",
                &json!({"rules": ["PDG104"], "n": 2})
            ),
            PINNED
        );
    }

    const PINNED: &str = "02bc31136a5c3115996be0fb928818990fa293c7aa3248cf4870cf015f555470";

    #[test]
    fn anchor_file_round_trips_and_rejects_garbage() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("audit.head");
        let c = chain(3);
        Anchor::of(&c[2]).save(&p).unwrap();
        assert_eq!(Anchor::load(&p).unwrap(), Anchor::of(&c[2]));
        Anchor::genesis().save(&p).unwrap();
        assert_eq!(Anchor::load(&p).unwrap(), Anchor::genesis());
        std::fs::write(&p, b"{\"seq\": 3, \"hash\": \"nothex\"}").unwrap();
        assert!(Anchor::load(&p).is_err());
        std::fs::write(&p, b"garbage").unwrap();
        assert!(Anchor::load(&p).is_err());
    }
}
