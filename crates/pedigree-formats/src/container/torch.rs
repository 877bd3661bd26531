//! Legacy PyTorch serialization: the non-zip stream (FORMATS-FACTS §2.3) and the members of the
//! legacy tar layout (§2.4). The zip format (§2.1) is recognised in `zip.rs`.

use super::walk::{Reader, after, malformed, pickle_one, pickle_stream};
use super::{Artifact, Format, Note, NoteKind};
use crate::pickle::{PickleReport, ReadMode};

/// torch's legacy loaders call `pickle_module.load(f)` on a file object.
const LEGACY_MODE: ReadMode = ReadMode::FileNoPeek;

const LEGACY_PICKLES: [&str; 5] = [
    "magic number",
    "protocol version",
    "sys_info",
    "object",
    "storage keys",
];

/// §2.3: five pickles in a row (magic, protocol, sys_info, the object, the storage keys), then
/// raw storages that are not pickles and are not read.
pub(super) fn read_legacy_stream(r: &mut Reader<'_>, loc: Vec<String>, d: &[u8]) -> Artifact {
    let mut a = Artifact::new(loc, Format::TorchLegacy, d.len() as u64);
    a.notes.push(Note::new(
        NoteKind::LegacyTorch,
        "legacy PyTorch serialization (pre-1.6 stream): five pickles in a row, unpickled before any check (FORMATS-FACTS §2.3)",
    ));
    let mut pos: u64 = 0;
    for name in LEGACY_PICKLES {
        let rep = pickle_one(d, pos, LEGACY_MODE, &r.opts.pickle);
        let end = after(&rep);
        a.pickles.push(rep);
        match end {
            Some(e) if e > pos => pos = e,
            _ => {
                a.notes.push(malformed(format!(
                    "legacy torch: the {name} pickle (at offset {pos}) broke before STOP; torch.load fails here, after running what came before"
                )));
                break;
            }
        }
    }
    a
}

/// The value of a pickle that is just an integer (`num_storages`, `num_tensors`).
fn simple_int(d: &[u8], start: usize, end: usize) -> Option<i64> {
    let s = d.get(start..end)?;
    let mut i = 0usize;
    let mut val: Option<i64> = None;
    let line = |i: usize| -> Option<(&[u8], usize)> {
        let nl = s.get(i..)?.iter().position(|b| *b == b'\n')?;
        Some((&s[i..i + nl], i + nl + 1))
    };
    while i < s.len() {
        let op = s[i];
        i += 1;
        match op {
            0x80 | b'q' => i += 1,
            b'r' => i += 4,
            0x95 => i += 8,
            0x94 => {}
            b'p' => i = line(i)?.1,
            b'K' => {
                val = Some(i64::from(*s.get(i)?));
                i += 1;
            }
            b'M' => {
                val = Some(i64::from(u16::from_le_bytes([*s.get(i)?, *s.get(i + 1)?])));
                i += 2;
            }
            b'J' => {
                let b = s.get(i..i + 4)?;
                val = Some(i64::from(i32::from_le_bytes([b[0], b[1], b[2], b[3]])));
                i += 4;
            }
            b'I' | b'L' => {
                let (l, next) = line(i)?;
                let t = std::str::from_utf8(l).ok()?.trim().trim_end_matches('L');
                val = Some(t.parse().ok()?);
                i = next;
            }
            0x8a => {
                let n = usize::from(*s.get(i)?);
                let b = s.get(i + 1..i + 1 + n)?;
                if n > 8 {
                    return None;
                }
                let mut v: i64 = 0;
                for (k, byte) in b.iter().enumerate() {
                    v |= i64::from(*byte) << (8 * k);
                }
                if n > 0 && n < 8 && b[n - 1] & 0x80 != 0 {
                    v -= 1i64 << (8 * n);
                }
                val = Some(v);
                i += 1 + n;
            }
            b'.' => return val,
            _ => return None,
        }
    }
    None
}

/// Element size of a storage class (FORMATS-FACTS §2.2 table).
fn element_size(name: &str) -> Option<u64> {
    let base = name.rsplit('.').next()?;
    Some(match base {
        "DoubleStorage" | "LongStorage" | "ComplexFloatStorage" => 8,
        "FloatStorage" | "IntStorage" | "QInt32Storage" => 4,
        "HalfStorage" | "BFloat16Storage" | "ShortStorage" => 2,
        "CharStorage" | "ByteStorage" | "BoolStorage" | "QInt8Storage" | "QUInt8Storage"
        | "QUInt4x2Storage" | "QUInt2x4Storage" | "UntypedStorage" => 1,
        "ComplexDoubleStorage" => 16,
        _ => return None,
    })
}

fn i64_at(d: &[u8], at: usize) -> Option<i64> {
    let b = d.get(at..at.checked_add(8)?)?;
    let mut a = [0u8; 8];
    a.copy_from_slice(b);
    Some(i64::from_le_bytes(a))
}

/// Runs one pickle at `pos`; returns where it ended (None: broke, with a note).
fn one(
    r: &Reader<'_>,
    a: &mut Artifact,
    d: &[u8],
    pos: usize,
    what: &str,
) -> Option<(usize, usize)> {
    let rep: PickleReport = pickle_one(d, pos as u64, LEGACY_MODE, &r.opts.pickle);
    let end = after(&rep)
        .and_then(|e| usize::try_from(e).ok())
        .filter(|e| *e > pos && *e <= d.len());
    let idx = a.pickles.len();
    a.pickles.push(rep);
    if end.is_none() {
        a.notes.push(malformed(format!(
            "legacy torch tar: the {what} pickle at offset {pos} broke; torch fails here"
        )));
    }
    end.map(|e| (e, idx))
}

/// §2.4's counted sections: a pickle holding the count (`what`), then that many records, each
/// read by `record` from its offset and returning where the next one starts (`None` after it
/// has noted why it could not). Stops at the member limit. Returns where the section ends, or
/// `None` when it stopped early.
fn counted_records(
    r: &mut Reader<'_>,
    a: &mut Artifact,
    d: &[u8],
    what: &str,
    unit: &str,
    mut record: impl FnMut(&mut Reader<'_>, &mut Artifact, usize) -> Option<usize>,
) -> Option<usize> {
    let (mut pos, _) = one(r, a, d, 0, what)?;
    let Some(n) = simple_int(d, 0, pos) else {
        a.notes.push(malformed(format!(
            "legacy torch tar: {what} is not an integer; the rest was not read"
        )));
        return None;
    };
    let max = r.opts.limits.max_members;
    let mut i: i64 = 0;
    while i < n {
        if i as u64 >= max {
            a.notes.push(Note::new(
                NoteKind::TooManyMembers { limit: max },
                format!("more than {max} {unit}: the rest were not read"),
            ));
            return None;
        }
        pos = record(r, a, pos)?;
        i += 1;
    }
    Some(pos)
}

/// §2.4 `storages`: `num_storages`, then per storage a pickle `(key, location, storage_type)`,
/// an int64 element count and the raw bytes; then the `storage_views` pickle.
pub(super) fn read_tar_storages(r: &mut Reader<'_>, loc: Vec<String>, d: &[u8]) -> Artifact {
    let mut a = Artifact::new(loc, Format::Pickle, d.len() as u64);
    let end_of_storages = counted_records(r, &mut a, d, "num_storages", "storages", |r, a, pos| {
        let (end, idx) = one(r, a, d, pos, "storage header")?;
        let storage_type = a
            .pickles
            .get(idx)
            .into_iter()
            .flat_map(|p| p.globals.iter())
            .rev()
            .find(|g| g.name.ends_with("Storage"))
            .map(|g| g.name.clone());
        let Some(size) = storage_type.as_deref().and_then(element_size) else {
            a.notes.push(malformed(format!(
                "legacy torch tar: unknown storage type {:?} at offset {pos}; cannot skip its data, the rest was not read",
                storage_type.unwrap_or_default()
            )));
            return None;
        };
        let Some(count) = i64_at(d, end).and_then(|c| u64::try_from(c).ok()) else {
            a.notes.push(malformed(format!(
                "legacy torch tar: bad storage element count at offset {end}"
            )));
            return None;
        };
        let next = count
            .checked_mul(size)
            .and_then(|b| b.checked_add(end as u64 + 8))
            .and_then(|n| usize::try_from(n).ok())
            .filter(|n| *n <= d.len());
        if next.is_none() {
            a.notes.push(malformed(format!(
                "legacy torch tar: storage data at offset {end} runs past the member end"
            )));
        }
        next
    });
    if let Some(pos) = end_of_storages {
        let _ = one(r, &mut a, d, pos, "storage_views");
    }
    a
}

/// §2.4 `tensors`: `num_tensors`, then per tensor a pickle, int32 ndim, 4 pad bytes, ndim sizes,
/// ndim strides (int64) and an int64 storage offset.
pub(super) fn read_tar_tensors(r: &mut Reader<'_>, loc: Vec<String>, d: &[u8]) -> Artifact {
    let mut a = Artifact::new(loc, Format::Pickle, d.len() as u64);
    counted_records(r, &mut a, d, "num_tensors", "tensors", |r, a, pos| {
        let (end, _) = one(r, a, d, pos, "tensor header")?;
        let ndim = d
            .get(end..end + 4)
            .map(|b| i32::from_le_bytes([b[0], b[1], b[2], b[3]]));
        let next = ndim
            .and_then(|n| u64::try_from(n).ok())
            .and_then(|n| n.checked_mul(16))
            .and_then(|b| b.checked_add(end as u64 + 8 + 8))
            .and_then(|n| usize::try_from(n).ok())
            .filter(|n| *n <= d.len());
        if next.is_none() {
            a.notes.push(malformed(format!(
                "legacy torch tar: bad tensor record at offset {end}"
            )));
        }
        next
    });
    a
}

/// §2.4 `pickle` (the object) and `sys_info` (not read by torch, scanned anyway).
pub(super) fn read_tar_pickle(r: &mut Reader<'_>, loc: Vec<String>, d: &[u8]) -> Artifact {
    let mut a = Artifact::new(loc, Format::Pickle, d.len() as u64);
    a.pickles = pickle_stream(d, &r.opts.pickle, LEGACY_MODE).pickles;
    a
}
