//! Name confusion (typosquatting) detection: is a new model name so close to an approved model
//! of another publisher that a human could take one for the other?
//!
//! Two tests, applied to the name as a reader sees it rather than to its bytes:
//!
//! * **Confusable**: the two names have the same [`skeleton`] although their strings differ
//!   (`bert-bаse` with a Cyrillic `а`, `Llama-2-7b` / `llama-2-7b`, `bert_base` / `bert-base`,
//!   `rnistral` / `mistral`, `r0berta` / `roberta`). Whatever the length, that is a clash.
//! * **EditDistance**: the skeletons, with their *numbers* taken out, are a few edits apart
//!   (Damerau–Levenshtein: insertions, deletions, substitutions, adjacent transpositions), e.g.
//!   `bert-base-uncased` / `bert-base-uncassed`. Only for names long enough that a small edit is
//!   a slip rather than another word: the key must be at least [`MIN_FUZZY_LEN`] characters and
//!   the distance at most a quarter of its length (and at most the policy's `max_distance`).
//!   Below five characters almost every name is one edit from a real other name (`gpt2`/`gpt3`,
//!   `opt`/`ont`); a quarter keeps `bert-base-uncased` vs `bert-large-uncased` (3 edits, which
//!   change a word) apart while `mistral` / `mistrall` (1 in 7) clash.
//!
//! **Numbers** are compared apart from the letters: names that differ only in their digit runs
//! (`llama-2-7b` / `llama-2-13b`, `gpt2` / `gpt3`, `resnet50` / `resnet101`) are the normal way
//! publishers name versions and sizes of a family, so they are siblings, not squats. A digit
//! that stands *inside* a word, a single `0`, `1` or `5` with a letter on both sides (`ba5e`,
//! `r0berta`, `l1ama`), is a letter in disguise and goes through the confusable map instead.
//!
//! Identical strings are never a clash here: exact duplicates across publishers are another
//! question (mirrors are legitimate), decided elsewhere.

use std::fmt;

use serde::{Deserialize, Serialize};
use unicode_normalization::UnicodeNormalization;
use unicode_normalization::char::is_combining_mark;

/// Edit-distance matching is only done on keys at least this long (see the module docs).
pub const MIN_FUZZY_LEN: usize = 5;

/// Namespaces are short, so they get their own, lower floor; see [`too_close_qualified`].
pub const MIN_FUZZY_LEN_NAMESPACE: usize = 4;

/// Why two names clash.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ClashKind {
    /// Same skeleton, different strings: they look alike (case, look-alike letters, separators).
    Confusable,
    /// Skeletons a few edits apart (a typo).
    EditDistance,
}

impl fmt::Display for ClashKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ClashKind::Confusable => "confusable",
            ClashKind::EditDistance => "edit distance",
        })
    }
}

/// A candidate name too close to an existing one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NameClash {
    pub candidate: String,
    pub existing: String,
    /// For [`ClashKind::Confusable`]: the edit distance between the raw strings (how many
    /// characters were swapped for look-alikes). For [`ClashKind::EditDistance`]: the distance
    /// between the number-free skeletons, the figure that was compared with the limit.
    pub distance: usize,
    pub kind: ClashKind,
}

/// Damerau–Levenshtein distance (unrestricted, over chars), from `strsim`.
pub fn damerau_levenshtein(a: &str, b: &str) -> usize {
    strsim::damerau_levenshtein(a, b)
}

// ---------------------------------------------------------------------------------------------
// The skeleton
//
// The idea is Unicode Technical Standard #39 (Unicode Security Mechanisms), §4 "Confusable
// Detection": two strings are confusable when they map to the same *skeleton*, where the
// skeleton replaces every character by a representative of its visual class (the data file is
// `confusables.txt`). Our table below is small and hand-picked rather than the full file, on
// purpose: the full table has thousands of entries across every script and is aimed at
// identifiers in general (it maps, e.g., `m` to `rn` and many symbols to letters), which on model
// names would merge far more than we want and make every explanation opaque. Model names on hubs
// are in practice ASCII letters, digits and `-_.`, so the confusions that matter are the ones a
// squatter can type: Cyrillic and Greek letters that render like Latin ones, digits that pass for
// letters (`0` `1` `5`), letter pairs that pass for one letter (`rn` `vv`), `I` / `l` / `|`,
// case, separators, invisible characters and accents. Fullwidth and other compatibility forms
// (`ｂｅｒｔ`, `ℓ`, mathematical bold letters) are folded by NFKC's compatibility mapping; we
// keep NFKD's decomposed output so that combining marks (accents, and invisible ones such as
// variation selectors) can be dropped: `bért` looks like `bert`.
// ---------------------------------------------------------------------------------------------

/// Look-alikes whose lowercase form would lose the likeness: mapped *before* lowercasing
/// (`I` looks like `l`, but `i` does not; Cyrillic `Н` looks like `H`, its lowercase `н` does not).
fn map_before_lowercase(c: char) -> Option<char> {
    Some(match c {
        'I' | '|' | 'І' | 'Ι' | 'Ӏ' => 'l',
        // Cyrillic capitals
        'А' => 'a',
        'В' => 'b',
        'Е' => 'e',
        'К' => 'k',
        'М' => 'm',
        'Н' => 'h',
        'О' => 'o',
        'Р' => 'p',
        'С' => 'c',
        'Т' => 't',
        'Х' => 'x',
        'У' => 'y',
        'Ј' => 'j',
        'Ѕ' => 's',
        // Greek capitals
        'Α' => 'a',
        'Β' => 'b',
        'Ε' => 'e',
        'Ζ' => 'z',
        'Η' => 'h',
        'Κ' => 'k',
        'Μ' => 'm',
        'Ν' => 'n',
        'Ο' => 'o',
        'Ρ' => 'p',
        'Τ' => 't',
        'Υ' => 'y',
        'Χ' => 'x',
        _ => return None,
    })
}

/// Look-alikes after lowercasing. Digits are here too (see [`is_letter_digit`] for when a digit
/// counts as a letter in the edit-distance key).
fn map_after_lowercase(c: char) -> char {
    match c {
        '0' => 'o',
        '1' | '|' => 'l',
        '5' => 's',
        'ı' => 'i',
        // Cyrillic small letters
        'а' => 'a',
        'в' => 'b',
        'е' | 'ё' => 'e',
        'о' => 'o',
        'р' => 'p',
        'с' => 'c',
        'у' => 'y',
        'х' => 'x',
        'і' | 'ї' => 'i',
        'ј' => 'j',
        'ѕ' => 's',
        'ԁ' => 'd',
        'һ' => 'h',
        'ԛ' => 'q',
        'ԝ' => 'w',
        'ӏ' => 'l',
        'г' => 'r',
        'п' => 'n',
        'к' => 'k',
        'м' => 'm',
        'т' => 't',
        'н' => 'h',
        // Greek small letters
        'α' => 'a',
        'β' => 'b',
        'ε' => 'e',
        'ζ' => 'z',
        'η' => 'n',
        'ι' => 'i',
        'κ' => 'k',
        'μ' => 'u',
        'ν' => 'v',
        'ο' => 'o',
        'ρ' => 'p',
        'τ' => 't',
        'υ' => 'u',
        'χ' => 'x',
        'γ' => 'y',
        // Latin letters from other blocks that NFKC leaves alone
        'ɡ' => 'g',
        'ɑ' => 'a',
        'ℓ' => 'l',
        _ => c,
    }
}

fn is_separator(c: char) -> bool {
    matches!(
        c,
        '-' | '_' | '.' | '‐' | '‑' | '‒' | '–' | '—' | '―' | '−' | '·' | '・'
    ) || c.is_whitespace()
}

/// Invisible characters that NFKC keeps (and that are not combining marks).
fn is_invisible(c: char) -> bool {
    matches!(
        c,
        '\u{00AD}' | '\u{180E}' | '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}'
            | '\u{2060}'..='\u{2064}' | '\u{2066}'..='\u{2069}' | '\u{FEFF}'
    )
}

/// Normalised chars, lowercased, with look-alikes that depend on case already mapped, invisible
/// characters and combining marks dropped, but digits and other look-alikes still as written.
/// `case_blind` lowercases first (so `I` becomes `i` rather than `l`).
fn prepare(s: &str, case_blind: bool) -> Vec<char> {
    let mut out = Vec::with_capacity(s.len());
    for c in s.nfkd() {
        if is_invisible(c) || is_combining_mark(c) {
            continue;
        }
        let mapped = if case_blind {
            None
        } else {
            map_before_lowercase(c)
        };
        match mapped {
            Some(m) => out.push(m),
            None => out.extend(c.to_lowercase()),
        }
    }
    out
}

/// A single `0`, `1` or `5` with a letter on both sides is a letter in disguise (`ba5e`,
/// `r0berta`); any other digit run is a number.
fn is_letter_digit(chars: &[char], i: usize) -> bool {
    let c = chars[i];
    if !matches!(c, '0' | '1' | '5') {
        return false;
    }
    let before = i.checked_sub(1).map(|j| chars[j]);
    let after = chars.get(i + 1).copied();
    matches!(before, Some(b) if b.is_alphabetic()) && matches!(after, Some(a) if a.is_alphabetic())
}

/// Map look-alikes, fold `rn`→`m` and `vv`→`w`, collapse separator runs to one `-`, trim them.
fn finish(chars: impl Iterator<Item = char>) -> String {
    let mapped: Vec<char> = chars.map(map_after_lowercase).collect();
    let mut out = String::with_capacity(mapped.len());
    let mut i = 0;
    let mut pending_sep = false;
    while i < mapped.len() {
        let c = mapped[i];
        if is_separator(c) {
            pending_sep = true;
            i += 1;
            continue;
        }
        if pending_sep && !out.is_empty() {
            out.push('-');
        }
        pending_sep = false;
        let next = mapped.get(i + 1).copied();
        match (c, next) {
            ('r', Some('n')) => {
                out.push('m');
                i += 2;
            }
            ('v', Some('v')) => {
                out.push('w');
                i += 2;
            }
            _ => {
                out.push(c);
                i += 1;
            }
        }
    }
    out
}

/// The confusable skeleton of a name: NFKC compatibility folding (kept decomposed, combining
/// marks and invisible characters dropped), lowercase, a small table of look-alikes mapped to
/// one representative (`0`→`o`; `1` `I` `|` `l`→`l`; `5`→`s`; `rn`→`m`; `vv`→`w`; Cyrillic and
/// Greek letters that render like Latin ones), and the separators `-` `_` `.` and spaces treated
/// as one (runs collapse to a single `-`, none at the ends). See the comment above
/// [`map_before_lowercase`] for where the facts come from.
pub fn skeleton(s: &str) -> String {
    finish(prepare(s, false).into_iter())
}

/// The key for edit-distance matching: the skeleton with its numbers (digit runs, except
/// letter-like digits inside words) taken out, so that version and size numbers never count.
fn fuzzy_key(prepared: &[char]) -> String {
    let kept = prepared
        .iter()
        .enumerate()
        .filter(|&(i, c)| !c.is_ascii_digit() || is_letter_digit(prepared, i))
        .map(|(_, &c)| c);
    finish(kept)
}

/// A name with its comparison keys computed once, for matching one candidate against many.
#[derive(Debug, Clone)]
pub struct NameKey {
    raw: String,
    skeleton: String,
    /// The skeleton of the lowercased name (so `Inst` and `inst` match, which `I`→`l` would hide).
    skeleton_ci: String,
    fuzzy: String,
    fuzzy_ci: String,
}

impl NameKey {
    pub fn new(name: &str) -> NameKey {
        let p = prepare(name, false);
        let p_ci = prepare(name, true);
        NameKey {
            raw: name.to_string(),
            skeleton: finish(p.iter().copied()),
            skeleton_ci: finish(p_ci.iter().copied()),
            fuzzy: fuzzy_key(&p),
            fuzzy_ci: fuzzy_key(&p_ci),
        }
    }

    pub fn name(&self) -> &str {
        &self.raw
    }

    pub fn skeleton(&self) -> &str {
        &self.skeleton
    }
}

/// How many edits a key of this length may be from another and still count as a typo.
fn allowed_distance(len: usize, max_distance: usize, min_len: usize) -> usize {
    if len < min_len {
        0
    } else {
        max_distance.min((len / 4).max(1))
    }
}

fn close_keys(
    a: &NameKey,
    b: &NameKey,
    max_distance: usize,
    min_len: usize,
) -> Option<(ClashKind, usize)> {
    if a.raw == b.raw {
        return None;
    }
    if a.skeleton == b.skeleton || a.skeleton_ci == b.skeleton_ci {
        return Some((ClashKind::Confusable, damerau_levenshtein(&a.raw, &b.raw)));
    }
    if a.fuzzy == b.fuzzy || a.fuzzy_ci == b.fuzzy_ci {
        // The names differ only in their numbers: siblings of a family, not a squat.
        return None;
    }
    let mut best: Option<usize> = None;
    for (x, y) in [(&a.fuzzy, &b.fuzzy), (&a.fuzzy_ci, &b.fuzzy_ci)] {
        let (lx, ly) = (x.chars().count(), y.chars().count());
        let allowed = allowed_distance(lx.min(ly), max_distance, min_len);
        if allowed == 0 || lx.abs_diff(ly) > allowed {
            continue;
        }
        let d = damerau_levenshtein(x, y);
        if d <= allowed {
            best = Some(best.map_or(d, |b: usize| b.min(d)));
        }
    }
    best.map(|d| (ClashKind::EditDistance, d))
}

/// [`too_close`] with precomputed keys.
pub fn too_close_keys(
    candidate: &NameKey,
    existing: &NameKey,
    max_distance: usize,
) -> Option<NameClash> {
    close_keys(candidate, existing, max_distance, MIN_FUZZY_LEN).map(|(kind, distance)| NameClash {
        candidate: candidate.raw.clone(),
        existing: existing.raw.clone(),
        distance,
        kind,
    })
}

/// Is `candidate` too close to `existing`? `None` for identical strings, for names that differ
/// only in their numbers, and for names further apart than `max_distance` edits (or than a
/// quarter of their length, or shorter than [`MIN_FUZZY_LEN`]); see the module docs.
pub fn too_close(candidate: &str, existing: &str, max_distance: usize) -> Option<NameClash> {
    too_close_keys(
        &NameKey::new(candidate),
        &NameKey::new(existing),
        max_distance,
    )
}

/// The same check for names qualified by their publisher (`ns/name`), across publishers:
///
/// * the same namespace is never a clash (a publisher may name its own models as it likes);
/// * model names too close by [`too_close`] clash;
/// * identical model names clash when the *namespaces* look alike (`rneta/llama` vs
///   `meta/llama`, `acne/bert` vs `acme/bert`): a look-alike publisher. Namespaces are short,
///   so the edit-distance test applies from [`MIN_FUZZY_LEN_NAMESPACE`] characters, allowing one
///   edit up to seven characters; two unrelated short publishers (`ab` / `cd`) mirroring the
///   same model do not clash.
///
/// The clash names both sides in full (`ns/name`); its `distance` and `kind` are those of the
/// part that clashed (the model names, or else the namespaces).
pub fn too_close_qualified(
    candidate_ns: &str,
    candidate_name: &str,
    existing_ns: &str,
    existing_name: &str,
    max_distance: usize,
) -> Option<NameClash> {
    let c = NameKey::new(candidate_name);
    let e = NameKey::new(existing_name);
    too_close_qualified_keys(candidate_ns, &c, existing_ns, &e, max_distance)
}

/// [`too_close_qualified`] with the model names' keys precomputed.
pub fn too_close_qualified_keys(
    candidate_ns: &str,
    candidate_name: &NameKey,
    existing_ns: &str,
    existing_name: &NameKey,
    max_distance: usize,
) -> Option<NameClash> {
    if candidate_ns == existing_ns {
        return None;
    }
    let full = |kind, distance| NameClash {
        candidate: format!("{candidate_ns}/{}", candidate_name.raw),
        existing: format!("{existing_ns}/{}", existing_name.raw),
        distance,
        kind,
    };
    if let Some((kind, d)) = close_keys(candidate_name, existing_name, max_distance, MIN_FUZZY_LEN)
    {
        return Some(full(kind, d));
    }
    if candidate_name.raw == existing_name.raw {
        let (a, b) = (NameKey::new(candidate_ns), NameKey::new(existing_ns));
        if let Some((kind, d)) = close_keys(&a, &b, max_distance, MIN_FUZZY_LEN_NAMESPACE) {
            return Some(full(kind, d));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind(a: &str, b: &str) -> Option<ClashKind> {
        too_close(a, b, 2).map(|c| c.kind)
    }

    #[test]
    fn skeleton_folds_case_separators_and_lookalikes() {
        assert_eq!(skeleton("Bert_Base.Uncased"), "bert-base-uncased");
        assert_eq!(skeleton("bert--base  uncased-"), "bert-base-uncased");
        assert_eq!(skeleton("bert-bаse"), "bert-base"); // Cyrillic а
        assert_eq!(skeleton("ВЕRТ"), "bert"); // Cyrillic В Е Т
        assert_eq!(skeleton("ｂｅｒｔ"), "bert"); // fullwidth, by NFKC
        assert_eq!(skeleton("r0berta"), "roberta");
        assert_eq!(skeleton("rnistral"), "mistral");
        assert_eq!(skeleton("vvhisper"), "whisper");
        assert_eq!(skeleton("I1|lama"), "llllama");
        assert_eq!(skeleton("ba5e"), "base");
        assert_eq!(skeleton("bért"), "bert"); // accent dropped
        assert_eq!(skeleton("be\u{200B}rt"), "bert"); // zero-width space dropped
        assert_eq!(skeleton("ορτ"), "opt"); // Greek omicron, rho, tau
        assert_ne!(skeleton("bert"), skeleton("bart"));
    }

    #[test]
    fn required_pairs() {
        let c = too_close("bert-base-uncassed", "bert-base-uncased", 2).unwrap();
        assert_eq!(c.kind, ClashKind::EditDistance);
        assert_eq!(c.distance, 1);
        assert_eq!(c.candidate, "bert-base-uncassed");
        assert_eq!(c.existing, "bert-base-uncased");
        // base -> large is three edits: another word, not a slip.
        assert_eq!(kind("bert-large-uncased", "bert-base-uncased"), None);
        // Version and size numbers make siblings.
        assert_eq!(kind("llama-2-13b", "llama-2-7b"), None);
        assert_eq!(kind("llama-3-7b", "llama-2-7b"), None);
        assert_eq!(kind("gpt2-medium", "gpt2"), None);
        assert_eq!(kind("gpt3", "gpt2"), None);
        // Case only: the same name to a reader.
        let c = too_close("Llama-2-7b", "llama-2-7b", 2).unwrap();
        assert_eq!(c.kind, ClashKind::Confusable);
        assert_eq!(c.distance, 1);
    }

    #[test]
    fn identical_is_not_a_clash() {
        assert_eq!(too_close("bert-base-uncased", "bert-base-uncased", 2), None);
    }

    #[test]
    fn confusables() {
        assert_eq!(
            kind("bert-bаse-uncased", "bert-base-uncased"),
            Some(ClashKind::Confusable)
        );
        assert_eq!(
            kind("rnistral-7b", "mistral-7b"),
            Some(ClashKind::Confusable)
        );
        assert_eq!(
            kind("r0berta-base", "roberta-base"),
            Some(ClashKind::Confusable)
        );
        assert_eq!(
            kind("bert_base_uncased", "bert-base-uncased"),
            Some(ClashKind::Confusable)
        );
        assert_eq!(
            kind("IIama-2-7b", "llama-2-7b"),
            Some(ClashKind::Confusable)
        );
        assert_eq!(
            kind("11ama-2-7b", "llama-2-7b"),
            Some(ClashKind::Confusable)
        );
        assert_eq!(kind("Bert-Inst", "bert-inst"), Some(ClashKind::Confusable));
        // Confusable holds even for short names, where edit distance is not used.
        assert_eq!(kind("gpt", "GPT"), Some(ClashKind::Confusable));
    }

    #[test]
    fn edit_distance_needs_length_and_proportion() {
        // Short names: no fuzzy matching.
        assert_eq!(kind("opt", "ont"), None);
        assert_eq!(kind("bart", "bert"), None);
        // Seven characters allow one edit, not two.
        assert_eq!(kind("mistrall", "mistral"), Some(ClashKind::EditDistance));
        assert_eq!(kind("mistrxyl", "mistral"), None);
        // A transposition is one edit.
        assert_eq!(
            too_close("bert-base-uncsaed", "bert-base-uncased", 2).map(|c| c.distance),
            Some(1)
        );
        // max_distance caps it.
        assert_eq!(
            too_close("bert-base-uncassed", "bert-base-uncased", 0),
            None
        );
        // A typo plus a changed number is still a typo.
        assert_eq!(
            kind("llama-2-13b-chta", "llama-2-7b-chat"),
            Some(ClashKind::EditDistance)
        );
    }

    #[test]
    fn qualified_names() {
        // Same publisher: never.
        assert_eq!(
            too_close_qualified("acme", "bert-base-uncassed", "acme", "bert-base-uncased", 2),
            None
        );
        let c = too_close_qualified(
            "evil",
            "bert-base-uncassed",
            "google",
            "bert-base-uncased",
            2,
        )
        .unwrap();
        assert_eq!(c.candidate, "evil/bert-base-uncassed");
        assert_eq!(c.existing, "google/bert-base-uncased");
        assert_eq!(c.kind, ClashKind::EditDistance);
        // Same model name, look-alike publisher.
        let c = too_close_qualified("rneta", "llama-2-7b", "meta", "llama-2-7b", 2).unwrap();
        assert_eq!(c.kind, ClashKind::Confusable);
        let c = too_close_qualified("acne", "llama-2-7b", "acme", "llama-2-7b", 2).unwrap();
        assert_eq!((c.kind, c.distance), (ClashKind::EditDistance, 1));
        // Unrelated publishers mirroring the same model.
        assert_eq!(
            too_close_qualified("ab", "mistral", "cd", "mistral", 2),
            None
        );
        assert_eq!(
            too_close_qualified("alice", "mistral", "bob", "mistral", 2),
            None
        );
    }
}
