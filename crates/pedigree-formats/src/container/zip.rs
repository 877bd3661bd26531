//! A lenient ZIP reader, written by hand on purpose.
//!
//! Why not the `zip` crate: it refuses, or silently smooths over, exactly the oddities this
//! scanner must see and report -- a bad CRC-32, encryption bits on data that is not encrypted, a
//! local-header name that differs from the central directory, duplicate names, bytes before the
//! archive -- while torch's miniz reader loads several of those files anyway (FORMATS-FACTS §5.1,
//! CVE-2025-10156, CVE-2025-1944, CVE-2025-1945). We must read what the most lenient loader reads
//! and say how each loader would disagree. So: EOCD (searched backwards in the last 64 KiB + 22,
//! as Python does), ZIP64 locator and record, central directory, and for each member the data at
//! local-header offset + 30 + LH name length + **LH extra length** (§5.1), stored or deflated.
//!
//! Nothing here trusts a number from the file: every offset is checked against the buffer.

use std::collections::HashSet;

use super::sniff::{self, Sniffed};
use super::walk::{End, Reader, malformed};
use super::{Artifact, Format, Note, NoteKind, npy, plain};
use crate::pickle::ReadMode;

const EOCD_SIG: &[u8] = b"PK\x05\x06";
const CD_SIG: &[u8] = b"PK\x01\x02";
const LH_SIG: &[u8] = b"PK\x03\x04";
const Z64_LOC_SIG: &[u8] = b"PK\x06\x07";
const Z64_EOCD_SIG: &[u8] = b"PK\x06\x06";

/// Encryption-like general-purpose bits: 0x1 encrypted, 0x20 patched data, 0x40 strong encryption.
const ENCRYPTION_BITS: u16 = 0x1 | 0x20 | 0x40;
/// How much of a compressed member is inflated to sniff it before deciding to read it all.
const PEEK: u64 = 64 * 1024;

fn u16_at(d: &[u8], at: usize) -> Option<u16> {
    let b = d.get(at..at.checked_add(2)?)?;
    Some(u16::from_le_bytes([b[0], b[1]]))
}

fn u32_at(d: &[u8], at: usize) -> Option<u32> {
    let b = d.get(at..at.checked_add(4)?)?;
    Some(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
}

fn u64_at(d: &[u8], at: usize) -> Option<u64> {
    let b = d.get(at..at.checked_add(8)?)?;
    let mut a = [0u8; 8];
    a.copy_from_slice(b);
    Some(u64::from_le_bytes(a))
}

fn idx(v: u64) -> Option<usize> {
    usize::try_from(v).ok()
}

/// The end-of-central-directory facts.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Eocd {
    /// Bytes before the archive (Python's `concat`): offsets in the archive are relative to it.
    pub archive_start: u64,
    /// Central directory offset (relative to `archive_start`) and size.
    pub cd_offset: u64,
    pub cd_size: u64,
    /// Declared number of entries.
    pub entries: u64,
}

/// Finds and validates the EOCD: the last `PK\x05\x06` within 64 KiB + 22 of the end whose central
/// directory is where it says (so a stray signature in data is not taken for an archive).
pub(crate) fn find_eocd(d: &[u8]) -> Option<Eocd> {
    if d.len() < 22 {
        return None;
    }
    let lowest = d.len().saturating_sub(22 + 65535);
    let mut pos = d.len() - 22;
    loop {
        if d.get(pos..pos + 4) == Some(EOCD_SIG)
            && let Some(e) = parse_eocd(d, pos)
        {
            return Some(e);
        }
        if pos == lowest {
            return None;
        }
        pos -= 1;
    }
}

fn parse_eocd(d: &[u8], pos: usize) -> Option<Eocd> {
    let mut entries = u64::from(u16_at(d, pos + 10)?);
    let mut cd_size = u64::from(u32_at(d, pos + 12)?);
    let mut cd_offset = u64::from(u32_at(d, pos + 16)?);
    // Where the central directory must end: the EOCD, or the ZIP64 EOCD record when present.
    let mut cd_end = pos as u64;
    if pos >= 20 && d.get(pos - 20..pos - 16) == Some(Z64_LOC_SIG) {
        // Like Python, look for the ZIP64 record right before the locator (56 bytes, no
        // extensible data), which also works when bytes were prepended; fall back to the offset
        // the locator stores.
        let stored = u64_at(d, pos - 12)?;
        let rec = if pos >= 76 && d.get(pos - 76..pos - 72) == Some(Z64_EOCD_SIG) {
            Some(pos - 76)
        } else {
            idx(stored)
                .filter(|r| r.checked_add(4).and_then(|e| d.get(*r..e)) == Some(Z64_EOCD_SIG))
        };
        if let Some(r) = rec {
            entries = u64_at(d, r + 32)?;
            cd_size = u64_at(d, r + 40)?;
            cd_offset = u64_at(d, r + 48)?;
            cd_end = r as u64;
        }
    }
    let archive_start = cd_end.checked_sub(cd_size)?.checked_sub(cd_offset)?;
    // Validate: the central directory starts with its signature (or is empty).
    if entries > 0 || cd_size > 0 {
        let at = idx(archive_start.checked_add(cd_offset)?)?;
        if d.get(at..at.checked_add(4)?) != Some(CD_SIG) {
            return None;
        }
    }
    Some(Eocd {
        archive_start,
        cd_offset,
        cd_size,
        entries,
    })
}

/// One central-directory entry.
#[derive(Debug, Clone)]
struct Entry {
    name: String,
    flags: u16,
    method: u16,
    crc: u32,
    csize: u64,
    usize: u64,
    /// Local header offset, relative to the archive start.
    lh_offset: u64,
    external_attr: u32,
}

/// Parses the central directory; stops at `max_members` entries or at the first bad record.
fn parse_cd(d: &[u8], eocd: &Eocd, max: u64, notes: &mut Vec<Note>) -> Vec<Entry> {
    let mut out = Vec::new();
    let Some(start) = eocd.archive_start.checked_add(eocd.cd_offset).and_then(idx) else {
        notes.push(malformed("central directory offset out of range"));
        return out;
    };
    let end = eocd
        .archive_start
        .checked_add(eocd.cd_offset)
        .and_then(|s| s.checked_add(eocd.cd_size))
        .and_then(idx)
        .unwrap_or(d.len())
        .min(d.len());
    let mut pos = start;
    let mut truncated = false;
    while pos < end {
        if out.len() as u64 >= max {
            truncated = true;
            break;
        }
        match parse_cd_entry(d, pos) {
            Some((e, next)) => {
                out.push(e);
                pos = next;
            }
            None => {
                notes.push(malformed(format!(
                    "bad central-directory record at offset {pos}: the rest of the directory was not read"
                )));
                break;
            }
        }
    }
    if truncated {
        notes.push(Note::new(
            NoteKind::TooManyMembers { limit: max },
            format!("more than {max} members: the rest were not read"),
        ));
    } else if out.len() as u64 != eocd.entries {
        notes.push(malformed(format!(
            "the end record declares {} entries, the central directory holds {} (torch's miniz checks the count; Python does not)",
            eocd.entries,
            out.len()
        )));
    }
    out
}

fn parse_cd_entry(d: &[u8], pos: usize) -> Option<(Entry, usize)> {
    if d.get(pos..pos.checked_add(4)?) != Some(CD_SIG) {
        return None;
    }
    let flags = u16_at(d, pos + 8)?;
    let method = u16_at(d, pos + 10)?;
    let crc = u32_at(d, pos + 16)?;
    let mut csize = u64::from(u32_at(d, pos + 20)?);
    let mut usize_ = u64::from(u32_at(d, pos + 24)?);
    let name_len = usize::from(u16_at(d, pos + 28)?);
    let extra_len = usize::from(u16_at(d, pos + 30)?);
    let comment_len = usize::from(u16_at(d, pos + 32)?);
    let external_attr = u32_at(d, pos + 38)?;
    let mut lh_offset = u64::from(u32_at(d, pos + 42)?);
    let name_start = pos.checked_add(46)?;
    let name_raw = d.get(name_start..name_start.checked_add(name_len)?)?;
    let extra_start = name_start + name_len;
    let extra = d.get(extra_start..extra_start.checked_add(extra_len)?)?;
    let next = extra_start
        .checked_add(extra_len)?
        .checked_add(comment_len)?;
    if next > d.len() {
        return None;
    }
    // ZIP64 extended information (id 1): the 64-bit values, in order, for each field that is
    // 0xFFFFFFFF in the record.
    let mut e = 0usize;
    while e + 4 <= extra.len() {
        let id = u16_at(extra, e)?;
        let len = usize::from(u16_at(extra, e + 2)?);
        let body = extra.get(e + 4..(e + 4).checked_add(len)?).unwrap_or(&[]);
        if id == 1 {
            let mut at = 0usize;
            for field in [&mut usize_, &mut csize, &mut lh_offset] {
                if *field == 0xFFFF_FFFF
                    && let Some(v) = u64_at(body, at)
                {
                    *field = v;
                    at += 8;
                }
            }
        }
        e = e.checked_add(4 + len)?;
    }
    let name = decode_name(name_raw);
    Some((
        Entry {
            name,
            flags,
            method,
            crc,
            csize,
            usize: usize_,
            lh_offset,
            external_attr,
        },
        next,
    ))
}

/// Names are UTF-8 (bit 11) or cp437; for matching we need text, and non-UTF-8 names are rare in
/// model archives, so invalid sequences are replaced rather than mapped through cp437.
fn decode_name(raw: &[u8]) -> String {
    String::from_utf8_lossy(raw).into_owned()
}

fn unsafe_path(e: &Entry) -> Option<&'static str> {
    let n = &e.name;
    if n.starts_with('/') || n.starts_with('\\') || n.as_bytes().get(1) == Some(&b':') {
        return Some("an absolute path");
    }
    if n.split(['/', '\\']).any(|c| c == "..") {
        return Some("a `..` component");
    }
    // Unix mode in the high 16 bits of the external attributes: S_IFLNK.
    if (e.external_attr >> 16) & 0o170000 == 0o120000 {
        return Some("a symbolic link");
    }
    None
}

/// The local header and the compressed bytes of a member.
struct Located<'a> {
    compressed: &'a [u8],
    lh_flags: u16,
}

fn locate<'a>(d: &'a [u8], start: u64, e: &Entry, notes: &mut Vec<Note>) -> Option<Located<'a>> {
    let Some(lh) = start
        .checked_add(e.lh_offset)
        .and_then(idx)
        .filter(|p| p.saturating_add(30) <= d.len())
    else {
        notes.push(malformed(format!(
            "{}: local header offset past the end of the file",
            e.name
        )));
        return None;
    };
    if d.get(lh..lh + 4) != Some(LH_SIG) {
        notes.push(malformed(format!(
            "{}: no local header at offset {lh} (both Python and torch fail on this member)",
            e.name
        )));
        return None;
    }
    let lh_flags = u16_at(d, lh + 6)?;
    let n = usize::from(u16_at(d, lh + 26)?);
    let x = usize::from(u16_at(d, lh + 28)?);
    let Some(lh_name) = d.get(lh + 30..lh + 30 + n) else {
        notes.push(malformed(format!(
            "{}: local header name runs past the end",
            e.name
        )));
        return None;
    };
    let lh_name = decode_name(lh_name);
    if lh_name != e.name {
        notes.push(Note::new(
            NoteKind::ZipNameMismatch { central: e.name.clone(), local: lh_name.clone() },
            format!(
                "local header names {lh_name:?} but the central directory names {:?}: Python's zipfile refuses the member, torch loads it under the central name (FORMATS-FACTS §5.1, CVE-2025-1944)",
                e.name
            ),
        ));
    }
    let data_start = (lh + 30 + n).checked_add(x)?;
    let Some(compressed) = idx(e.csize)
        .and_then(|c| data_start.checked_add(c))
        .and_then(|end| d.get(data_start..end))
    else {
        notes.push(malformed(format!(
            "{}: member data ({} bytes at offset {data_start}) runs past the end of the file",
            e.name, e.csize
        )));
        return None;
    };
    Some(Located {
        compressed,
        lh_flags,
    })
}

/// The bytes of a member, possibly inflated; `complete` is false when only a prefix was read.
enum Content<'a> {
    Borrowed(&'a [u8]),
    Owned(Vec<u8>, bool),
}

impl Content<'_> {
    fn bytes(&self) -> &[u8] {
        match self {
            Content::Borrowed(b) => b,
            Content::Owned(v, _) => v,
        }
    }
    fn complete(&self) -> bool {
        match self {
            Content::Borrowed(_) => true,
            Content::Owned(_, c) => *c,
        }
    }
}

/// What to do with members.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Torch,
    Generic,
}

/// Reads a zip (the archive starts at `start`; bytes before it are prepended data).
pub(super) fn read_zip(
    r: &mut Reader<'_>,
    loc: Vec<String>,
    d: &[u8],
    depth: usize,
    start: u64,
) -> Artifact {
    let mut a = Artifact::new(loc, Format::Zip, d.len() as u64);
    let Some(eocd) = find_eocd(d) else {
        a.notes.push(malformed(
            "zip local header but no valid end-of-central-directory record: neither Python nor torch opens it",
        ));
        return a;
    };
    // The EOCD decides where the archive starts (the sniffer found it the same way).
    let _ = start;
    let start = eocd.archive_start;
    if start > 0 {
        a.notes.push(Note::new(
            NoteKind::ZipPrependedData { bytes: start },
            format!(
                "{start} bytes precede the zip archive: Python's zipfile opens it anyway, torch.load does not see a zip and unpickles the file from byte 0 instead (FORMATS-FACTS §2.1, §5.1)"
            ),
        ));
        // What torch (or pickle.load) would read: the file from byte 0, not as a zip.
        let s = sniff::sniff_at_start(d);
        if s != Sniffed::Unknown && r.may_descend(&mut a, depth, "<bytes before the zip>") {
            let mut child_loc = a.location.clone();
            child_loc.push("<bytes before the zip>".into());
            let child = r.node_as(child_loc, d, depth + 1, s);
            a.children.push(child);
        }
    }
    let entries = parse_cd(d, &eocd, r.opts.limits.max_members, &mut a.notes);

    // Duplicates and unsafe paths.
    let mut seen = HashSet::new();
    for e in &entries {
        if !seen.insert(e.name.as_str()) {
            a.notes.push(Note::new(
                NoteKind::ZipDuplicateName { member: e.name.clone() },
                format!(
                    "{:?} appears more than once: torch reads the first entry, Python's zipfile the last (FORMATS-FACTS §5.1); all were scanned",
                    e.name
                ),
            ));
        }
        if let Some(why) = unsafe_path(e) {
            a.notes.push(Note::new(
                NoteKind::UnsafeMemberPath { member: e.name.clone() },
                format!("member {:?} is {why}: extracting the archive could write outside its directory", e.name),
            ));
        }
    }

    // PyTorch (§2.1, §2.5): the prefix is the text before the first '/' of the first entry.
    let prefix = entries
        .first()
        .and_then(|e| e.name.split_once('/'))
        .map(|(p, _)| p.to_string());
    let kind = match &prefix {
        Some(p) if entries.iter().any(|e| e.name == format!("{p}/data.pkl")) => {
            let script = entries.iter().any(|e| {
                e.name == format!("{p}/constants.pkl") || e.name.starts_with(&format!("{p}/code/"))
            });
            a.format = if script {
                Format::TorchScript
            } else {
                Format::TorchZip
            };
            let outside: Vec<&str> = entries
                .iter()
                .map(|e| e.name.as_str())
                .filter(|n| !n.starts_with(&format!("{p}/")))
                .collect();
            if let Some(first) = outside.first() {
                a.notes.push(malformed(format!(
                    "{} member(s) outside the archive prefix {p:?} (e.g. {first:?}): torch refuses the file (\"file in archive is not in a subdirectory\")",
                    outside.len()
                )));
            }
            Kind::Torch
        }
        _ => Kind::Generic,
    };

    for e in &entries {
        let is_dir = e.name.ends_with('/') && e.usize == 0;
        if is_dir {
            continue;
        }
        if kind == Kind::Torch {
            // Only the pickle records are unpickled by torch; storages (`data/N`) are raw tensor
            // bytes and are never read, which keeps large checkpoints fast.
            if !(e.name.ends_with(".pkl") || e.name.ends_with(".debug_pkl")) {
                continue;
            }
        }
        if !r.may_descend(&mut a, depth, &e.name) {
            continue;
        }
        read_member(r, &mut a, d, start, e, depth, kind);
    }

    if kind == Kind::Generic {
        let files: Vec<&Entry> = entries.iter().filter(|e| !e.name.ends_with('/')).collect();
        let all_npy_names = !files.is_empty() && files.iter().all(|e| e.name.ends_with(".npy"));
        let all_npy_children =
            !a.children.is_empty() && a.children.iter().all(|c| c.format == Format::Npy);
        if all_npy_names || all_npy_children {
            a.format = Format::Npz;
        }
    }
    a
}

fn read_member(
    r: &mut Reader<'_>,
    a: &mut Artifact,
    d: &[u8],
    start: u64,
    e: &Entry,
    depth: usize,
    kind: Kind,
) {
    let Some(lc) = locate(d, start, e, &mut a.notes) else {
        return;
    };
    let in_central = e.flags & ENCRYPTION_BITS != 0;
    let in_local = lc.lh_flags & ENCRYPTION_BITS != 0;
    let flagged = in_central || in_local;
    if flagged {
        let effect = if in_central {
            "in the central directory: Python's zipfile and torch both refuse the member"
        } else {
            "only in the local header: Python's zipfile and torch both ignore it and load the member"
        };
        a.notes.push(Note::new(
            NoteKind::ZipEncryptionFlag { member: e.name.clone(), in_central, in_local },
            format!(
                "{}: encryption/patch flag bits {:#x} set {effect} (FORMATS-FACTS §5.1, CVE-2025-1945)",
                e.name,
                (e.flags | lc.lh_flags) & ENCRYPTION_BITS
            ),
        ));
    }
    // Declared sizes are checked before anything is inflated: a bomb is worth a note even when
    // its content (zeros, typically) is never read by us.
    let limits = &r.opts.limits;
    if e.method == 8 {
        let ratio = e.usize / e.csize.max(1);
        let detail = if e.usize > limits.max_member_size {
            Some(format!(
                "declared size {} bytes is over the {} byte limit",
                e.usize, limits.max_member_size
            ))
        } else if e.usize > super::walk::RATIO_FLOOR && ratio > limits.max_ratio {
            Some(format!(
                "declared {} bytes from {} compressed (over {}:1)",
                e.usize, e.csize, limits.max_ratio
            ))
        } else {
            None
        };
        if let Some(detail) = detail {
            a.notes.push(Note::new(
                NoteKind::DecompressionBomb { member: e.name.clone(), detail: detail.clone() },
                format!("{}: {detail}; decompression is bounded, only the part within the limits is scanned", e.name),
            ));
        }
    }
    let mut child_loc = a.location.clone();
    child_loc.push(e.name.clone());
    let torch_record = kind == Kind::Torch;

    // Decide how much to read. Torch records, flagged members (to tell real encryption from a
    // lying flag) and stored members (already in memory) are taken whole; deflated members of a
    // generic zip are sniffed on a prefix first, so raw data is never inflated for nothing.
    let content = match e.method {
        0 if !torch_record && !flagged => {
            // Stored: already in memory, but raw data is still not touched (nor CRC-checked)
            // unless its first bytes show something we read.
            let head = lc.compressed.get(..PEEK as usize).unwrap_or(lc.compressed);
            if lc.compressed.len() as u64 > PEEK && !needs_whole(head) {
                a.children.push(unread_child(r, child_loc, head, e.usize));
                return;
            }
            Content::Borrowed(lc.compressed)
        }
        0 => Content::Borrowed(lc.compressed),
        8 => {
            let full = torch_record || flagged;
            let decoder = flate2::read::DeflateDecoder::new(lc.compressed);
            if full {
                inflate_all(r, a, e, lc.compressed)
            } else {
                let (prefix, end) = super::walk::pull(decoder, PEEK, 0, u64::MAX);
                match end {
                    End::SizeCap => {
                        if needs_whole(prefix.as_slice()) {
                            inflate_all(r, a, e, lc.compressed)
                        } else {
                            a.children
                                .push(unread_child(r, child_loc, &prefix, e.usize));
                            return;
                        }
                    }
                    End::Eof => {
                        r.decompressed = r.decompressed.saturating_add(prefix.len() as u64);
                        Content::Owned(prefix, true)
                    }
                    End::Ratio | End::Error(_) => inflate_all(r, a, e, lc.compressed),
                }
            }
        }
        m => {
            a.notes.push(malformed(format!(
                "{}: compression method {m} is not supported (torch reads stored and deflate only); not scanned",
                e.name
            )));
            return;
        }
    };

    let bytes = content.bytes();
    if content.complete() {
        let crc_ok = crc32fast::hash(bytes) == e.crc;
        if flagged && !crc_ok && e.method == 0 && sniff::sniff_at_start(bytes) == Sniffed::Unknown {
            // Flag set and the bytes neither check nor look like anything: really encrypted.
            a.notes.push(encrypted(&e.name));
            return;
        }
        if !crc_ok {
            a.notes.push(Note::new(
                NoteKind::ZipBadCrc { member: e.name.clone() },
                format!(
                    "{}: CRC-32 mismatch: Python's zipfile raises at the end of the member, torch never checks and loads it (FORMATS-FACTS §5.1, CVE-2025-10156)",
                    e.name
                ),
            ));
        }
    } else if flagged && e.method == 8 && bytes.is_empty() {
        a.notes.push(encrypted(&e.name));
        return;
    }

    let child = if torch_record {
        plain::read_record(r, child_loc, bytes, ReadMode::FileNoPeek)
    } else {
        r.node(child_loc, bytes, depth + 1)
    };
    a.children.push(child);
}

/// A member whose first bytes show raw data: recorded (npy headers parsed), never read.
fn unread_child(r: &mut Reader<'_>, loc: Vec<String>, head: &[u8], size: u64) -> Artifact {
    if sniff::sniff_at_start(head) == Sniffed::Npy {
        npy::read_npy_len(r, loc, head, size)
    } else {
        Artifact::new(loc, Format::Unknown, size)
    }
}

fn encrypted(name: &str) -> Note {
    Note::new(
        NoteKind::EncryptedMember {
            member: name.to_string(),
        },
        format!("{name}: member is encrypted and could not be scanned"),
    )
}

/// Does a generic member whose first 64 KiB are `prefix` need to be read whole?
fn needs_whole(prefix: &[u8]) -> bool {
    match sniff::sniff_at_start(prefix) {
        Sniffed::Unknown => crate::views::wants_whole(prefix),
        Sniffed::Npy => npy::needs_data(prefix),
        _ => true,
    }
}

fn inflate_all<'a>(
    r: &mut Reader<'_>,
    a: &mut Artifact,
    e: &Entry,
    compressed: &[u8],
) -> Content<'a> {
    let decoder = flate2::read::DeflateDecoder::new(compressed);
    let (out, end) = r.decompress(a, &e.name, decoder, compressed.len() as u64);
    match end {
        End::Eof => Content::Owned(out, true),
        End::Error(err) => {
            if e.flags & ENCRYPTION_BITS == 0 {
                a.notes.push(malformed(format!(
                    "{}: deflate data is corrupt ({err}); scanned up to the error",
                    e.name
                )));
                Content::Owned(out, false)
            } else {
                // Encrypted members do not inflate.
                Content::Owned(Vec::new(), false)
            }
        }
        End::SizeCap | End::Ratio => Content::Owned(out, false),
    }
}
