//! Content sniffing: what the bytes are, from the bytes alone (ARCHITECTURE.md, "Content decides,
//! never the name"). Each test is cheap (a magic, a checksum, a short structural walk), so the
//! sniffer can run on a 64 KiB prefix of an archive member before deciding whether to read it all.

use super::Format;
use super::zip::find_eocd;

/// Compressed stream kinds (FORMATS-FACTS §3.3, joblib's magic table).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Codec {
    /// joblib < 0.9.3 "compat" files: `ZF` + hex length (19 chars, maybe one more space) + zlib.
    ZlibCompat,
    Zlib,
    Gzip,
    Bzip2,
    Xz,
    LzmaAlone,
    Lz4Frame,
}

impl Codec {
    pub fn name(self) -> &'static str {
        match self {
            Codec::ZlibCompat => "joblib-zf",
            Codec::Zlib => "zlib",
            Codec::Gzip => "gzip",
            Codec::Bzip2 => "bz2",
            Codec::Xz => "xz",
            Codec::LzmaAlone => "lzma",
            Codec::Lz4Frame => "lz4",
        }
    }
}

/// The result of sniffing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sniffed {
    /// A zip. `start` is where the archive begins: 0, or the number of bytes prepended before it
    /// (found through the end-of-central-directory record, as Python's `zipfile` does, §5.1).
    Zip {
        start: u64,
    },
    SevenZip,
    Tar,
    Npy,
    TorchLegacy,
    Compressed(Codec),
    Pickle,
    Unknown,
}

impl Sniffed {
    pub fn format(self) -> Format {
        match self {
            Sniffed::Zip { .. } => Format::Zip,
            Sniffed::SevenZip => Format::SevenZip,
            Sniffed::Tar => Format::Tar,
            Sniffed::Npy => Format::Npy,
            Sniffed::TorchLegacy => Format::TorchLegacy,
            Sniffed::Compressed(_) => Format::Compressed,
            Sniffed::Pickle => Format::Pickle,
            Sniffed::Unknown => Format::Unknown,
        }
    }
}

pub(crate) const ZIP_LOCAL: &[u8] = b"PK\x03\x04";
pub(crate) const ZIP_EMPTY: &[u8] = b"PK\x05\x06";
const SEVEN_ZIP: &[u8] = b"7z\xBC\xAF\x27\x1C";
const NPY: &[u8] = b"\x93NUMPY";
/// `pickle.dumps(0x1950a86a20f9469cfc6c, protocol=2)` without its STOP: PROTO 2, LONG1 10 bytes
/// (FORMATS-FACTS §2.3; checked with CPython).
pub(crate) const TORCH_LEGACY_MAGIC: &[u8] =
    b"\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19";

/// Sniffs `data` (the whole thing or a prefix of it).
pub fn sniff(data: &[u8]) -> Sniffed {
    let s = sniff_at_start(data);
    if s != Sniffed::Unknown && s != Sniffed::Pickle {
        return s;
    }
    // Not a strong magic at offset 0: a zip may still end the file (bytes prepended, §5.1). Python
    // treats such a file as a zip; the prepended part is read separately by the zip reader.
    if let Some(eocd) = find_eocd(data)
        && eocd.archive_start > 0
    {
        return Sniffed::Zip {
            start: eocd.archive_start,
        };
    }
    s
}

/// Sniffs by what is at offset 0 only (no search for a zip at the end).
pub fn sniff_at_start(data: &[u8]) -> Sniffed {
    if data.starts_with(ZIP_LOCAL) || data.starts_with(ZIP_EMPTY) {
        return Sniffed::Zip { start: 0 };
    }
    if data.starts_with(SEVEN_ZIP) {
        return Sniffed::SevenZip;
    }
    if data.starts_with(NPY) {
        return Sniffed::Npy;
    }
    if let Some(c) = compressed_magic(data) {
        return Sniffed::Compressed(c);
    }
    if is_tar(data) {
        return Sniffed::Tar;
    }
    if data.starts_with(TORCH_LEGACY_MAGIC) {
        return Sniffed::TorchLegacy;
    }
    if plausible_pickle(data) {
        return Sniffed::Pickle;
    }
    Sniffed::Unknown
}

fn compressed_magic(d: &[u8]) -> Option<Codec> {
    // joblib's compat format: "ZF" + "0x<hex>" left-justified in 19 characters.
    if d.len() >= 21 && d.starts_with(b"ZF0x") {
        let len_field = d.get(2..21)?;
        let ok = len_field
            .iter()
            .all(|b| b.is_ascii_hexdigit() || *b == b'x' || *b == b' ');
        if ok {
            return Some(Codec::ZlibCompat);
        }
    }
    if d.len() >= 3 && d[0] == 0x1F && d[1] == 0x8B && d[2] == 8 {
        return Some(Codec::Gzip);
    }
    if d.len() >= 4 && d.starts_with(b"BZh") && (b'1'..=b'9').contains(&d[3]) {
        return Some(Codec::Bzip2);
    }
    if d.starts_with(b"\xFD7zXZ\x00") {
        return Some(Codec::Xz);
    }
    if d.starts_with(b"\x04\x22\x4D\x18") {
        return Some(Codec::Lz4Frame);
    }
    if d.len() >= 13 && d[0] == 0x5D && d[1] == 0 && d[2] == 0 {
        // lzma-alone: props 0x5D (lc=3 lp=0 pb=2, the only value joblib and xz-utils write),
        // then a u32 dictionary size that xz-utils makes 2^n or 2^n + 2^(n-1).
        let dict = u32::from_le_bytes([d[1], d[2], d[3], d[4]]);
        let plausible = dict == u32::MAX
            || (dict >= 4096 && {
                let hi = 31 - dict.leading_zeros();
                let rest = dict - (1 << hi);
                rest == 0 || (hi > 0 && rest == 1 << (hi - 1))
            });
        if plausible {
            return Some(Codec::LzmaAlone);
        }
    }
    if d.len() >= 3 && d[0] == 0x78 {
        // zlib: CMF 0x78 (deflate, 32 KiB window); FLG makes CMF*256+FLG a multiple of 31; no
        // preset dictionary. 'x' is also ASCII, so check that the start really inflates.
        let flg = d[1];
        if (u16::from(d[0]) * 256 + u16::from(flg)) % 31 == 0
            && flg & 0x20 == 0
            && zlib_starts_ok(d)
        {
            return Some(Codec::Zlib);
        }
    }
    None
}

fn zlib_starts_ok(d: &[u8]) -> bool {
    use flate2::{Decompress, FlushDecompress, Status};
    let window = &d[..d.len().min(4096)];
    let mut z = Decompress::new(true);
    let mut out = [0u8; 1024];
    match z.decompress(window, &mut out, FlushDecompress::None) {
        Ok(Status::StreamEnd) => true,
        Ok(_) => z.total_out() > 0 || window.len() < 64,
        Err(_) => false,
    }
}

/// A tar header: ustar magic at 257, or a valid header checksum (v7 tars have no magic; Python's
/// `tarfile.open`, which torch tries first for legacy files (§2.3), accepts them).
fn is_tar(d: &[u8]) -> bool {
    let Some(h) = d.get(..512) else { return false };
    if &h[257..262] == b"ustar" {
        return true;
    }
    if h[0] == 0 {
        return false;
    }
    let Some(stored) = parse_octal(&h[148..156]) else {
        return false;
    };
    let mut unsigned: u64 = 0;
    let mut signed: i64 = 0;
    for (i, b) in h.iter().enumerate() {
        let b = if (148..156).contains(&i) { b' ' } else { *b };
        unsigned += u64::from(b);
        signed += i64::from(b as i8);
    }
    stored == unsigned || i64::try_from(stored).is_ok_and(|s| s == signed)
}

fn parse_octal(f: &[u8]) -> Option<u64> {
    let s: Vec<u8> = f
        .iter()
        .copied()
        .filter(|b| *b != 0 && *b != b' ')
        .collect();
    if s.is_empty() || s.len() > 11 {
        return None;
    }
    let mut v: u64 = 0;
    for b in s {
        if !(b'0'..=b'7').contains(&b) {
            return None;
        }
        v = v * 8 + u64::from(b - b'0');
    }
    Some(v)
}

/// Argument shapes of pickle opcodes (FORMATS-FACTS §1.10), enough to walk a stream.
#[derive(Clone, Copy)]
enum Arg {
    None,
    Fixed(usize),
    /// Counted: width of the little-endian length field.
    Counted(usize),
    /// One text line; the checker says whether its bytes are plausible.
    Line(fn(&[u8]) -> bool),
    /// Two identifier lines (GLOBAL, INST).
    TwoNames,
}

fn opcode_arg(op: u8) -> Option<Arg> {
    use Arg::*;
    Some(match op {
        b'(' | b')' | b'.' | b'0' | b'1' | b'2' | b'N' | b'Q' | b'R' | b']' | b'a' | b'b'
        | b'd' | b'e' | b'l' | b'o' | b's' | b't' | b'u' | b'}' => None,
        0x81 | 0x85 | 0x86 | 0x87 | 0x88 | 0x89 | 0x8f | 0x90 | 0x91 | 0x92 | 0x93 | 0x94
        | 0x97 | 0x98 => None,
        b'K' | b'h' | b'q' | 0x80 | 0x82 => Fixed(1),
        b'M' | 0x83 => Fixed(2),
        b'J' | b'j' | b'r' | 0x84 => Fixed(4),
        b'G' | 0x95 => Fixed(8),
        b'C' | b'U' | 0x8a | 0x8c => Counted(1),
        b'B' | b'T' | b'X' | 0x8b => Counted(4),
        0x8d | 0x8e | 0x96 => Counted(8),
        b'I' | b'L' | b'g' | b'p' => Line(line_is_number),
        b'F' => Line(line_is_float),
        b'S' => Line(|l| l.first().is_some_and(|c| *c == b'\'' || *c == b'"')),
        b'V' | b'P' => Line(|_| true),
        b'c' | b'i' => TwoNames,
        _ => return Option::None,
    })
}

fn line_is_number(l: &[u8]) -> bool {
    !l.is_empty()
        && l.iter()
            .all(|b| b.is_ascii_digit() || b"+-_ L\x00".contains(b))
}

fn line_is_float(l: &[u8]) -> bool {
    !l.is_empty()
        && l.iter()
            .all(|b| b.is_ascii_alphanumeric() || b"+-._ \x00".contains(b))
}

fn line_is_name(l: &[u8]) -> bool {
    !l.is_empty()
        && l.len() <= 512
        && l.iter()
            .all(|b| b.is_ascii_alphanumeric() || *b == b'_' || *b == b'.' || *b >= 0x80)
}

/// Could `data` start a pickle? A PROTO ≤ 5 first is enough; otherwise (protocols 0/1 have no
/// header) a short structural walk must succeed, so that text and JSON are not taken for pickles.
/// The analysis that follows has the last word (a "pickle" that finds nothing and breaks at its
/// first byte is dropped by the reader).
pub fn plausible_pickle(d: &[u8]) -> bool {
    match d.first() {
        None => return false,
        Some(0x80) => return d.get(1).is_some_and(|p| *p <= 5),
        Some(_) => {}
    }
    let mut pos = 0usize;
    let mut ops = 0usize;
    let mut saw_global = false;
    let limit = d.len().min(4096);
    while pos < limit && ops < 64 {
        let op = d[pos];
        let Some(arg) = opcode_arg(op) else {
            return saw_global;
        };
        pos += 1;
        ops += 1;
        match arg {
            Arg::None => {
                if op == b'.' {
                    return ops > 1;
                }
            }
            Arg::Fixed(n) => {
                if op == 0x80 && d.get(pos).is_some_and(|p| *p > 5) {
                    return saw_global;
                }
                pos = match pos.checked_add(n) {
                    Some(p) if p <= d.len() => p,
                    _ => return enough(d, ops, saw_global),
                };
            }
            Arg::Counted(w) => {
                let Some(field) = d.get(pos..pos + w) else {
                    return enough(d, ops, saw_global);
                };
                let mut len: u64 = 0;
                for (i, b) in field.iter().enumerate() {
                    len |= u64::from(*b) << (8 * i);
                }
                if op == 0x8b && len > i32::MAX as u64 {
                    return saw_global;
                }
                match (pos as u64)
                    .checked_add(w as u64)
                    .and_then(|p| p.checked_add(len))
                {
                    Some(p) if p <= d.len() as u64 => pos = p as usize,
                    // The argument runs past what we hold: fine if the start looked like a pickle.
                    _ => return enough(d, ops, saw_global),
                }
            }
            Arg::Line(check) => {
                let Some(nl) = d[pos..].iter().take(4096).position(|b| *b == b'\n') else {
                    return saw_global;
                };
                if !check(&d[pos..pos + nl]) {
                    return saw_global;
                }
                pos += nl + 1;
            }
            Arg::TwoNames => {
                for _ in 0..2 {
                    let Some(nl) = d[pos..].iter().take(512).position(|b| *b == b'\n') else {
                        return saw_global;
                    };
                    if !line_is_name(&d[pos..pos + nl]) {
                        return saw_global;
                    }
                    pos += nl + 1;
                }
                saw_global = true;
            }
        }
    }
    // The data ended (or our window did) without STOP and without an error.
    enough(d, ops, saw_global)
}

/// A walk that ran out of bytes: accept on a global, or on enough opcodes (more for short inputs,
/// where a few letters of text can pass for opcodes).
fn enough(d: &[u8], ops: usize, saw_global: bool) -> bool {
    saw_global || ops >= if d.len() < 64 { 8 } else { 4 }
}
