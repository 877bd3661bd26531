//! numpy `.npy` (FORMATS-FACTS §3.1): magic, version, header length, a Python-literal header dict.
//! Object dtypes (`|O`, or a structured dtype with an `O` field) store one pickle after the
//! header, read by `pickle.load(fp)`; every other dtype is raw data that we never read.

use super::walk::{Reader, malformed, pickle_one};
use super::{Artifact, Format};
use crate::pickle::ReadMode;

/// numpy refuses longer headers unless `allow_pickle=True` (§3.1).
const NUMPY_MAX_HEADER: usize = 10_000;
/// We parse at most this much header text whatever the declared length (bounded work).
const OUR_MAX_HEADER: usize = 1 << 20;

/// A Python literal, as far as `.npy` headers need.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Lit {
    Str(String),
    Int(i128),
    Bool(bool),
    None,
    Seq(Vec<Lit>),
    Dict(Vec<(Lit, Lit)>),
}

struct P<'a> {
    s: &'a [u8],
    i: usize,
    depth: usize,
}

impl P<'_> {
    fn ws(&mut self) {
        while self.s.get(self.i).is_some_and(|c| c.is_ascii_whitespace()) {
            self.i += 1;
        }
    }

    fn eat(&mut self, c: u8) -> bool {
        self.ws();
        if self.s.get(self.i) == Some(&c) {
            self.i += 1;
            true
        } else {
            false
        }
    }

    fn value(&mut self) -> Option<Lit> {
        self.ws();
        self.depth += 1;
        if self.depth > 32 {
            return None;
        }
        let c = *self.s.get(self.i)?;
        let v = match c {
            b'{' => {
                self.i += 1;
                let mut items = Vec::new();
                loop {
                    if self.eat(b'}') {
                        break;
                    }
                    let k = self.value()?;
                    if !self.eat(b':') {
                        return None;
                    }
                    let v = self.value()?;
                    items.push((k, v));
                    if !self.eat(b',') {
                        if !self.eat(b'}') {
                            return None;
                        }
                        break;
                    }
                }
                Lit::Dict(items)
            }
            b'(' | b'[' => {
                let close = if c == b'(' { b')' } else { b']' };
                self.i += 1;
                let mut items = Vec::new();
                loop {
                    if self.eat(close) {
                        break;
                    }
                    items.push(self.value()?);
                    if !self.eat(b',') {
                        if !self.eat(close) {
                            return None;
                        }
                        break;
                    }
                }
                Lit::Seq(items)
            }
            b'\'' | b'"' => {
                self.i += 1;
                let mut out = Vec::new();
                loop {
                    let ch = *self.s.get(self.i)?;
                    self.i += 1;
                    if ch == c {
                        break;
                    }
                    if ch == b'\\' {
                        let esc = *self.s.get(self.i)?;
                        self.i += 1;
                        out.push(match esc {
                            b'n' => b'\n',
                            b't' => b'\t',
                            other => other,
                        });
                    } else {
                        out.push(ch);
                    }
                }
                Lit::Str(String::from_utf8_lossy(&out).into_owned())
            }
            b'-' | b'0'..=b'9' => {
                let st = self.i;
                self.i += 1;
                while self
                    .s
                    .get(self.i)
                    .is_some_and(|c| c.is_ascii_digit() || *c == b'_')
                {
                    self.i += 1;
                }
                let t: String = String::from_utf8_lossy(&self.s[st..self.i])
                    .chars()
                    .filter(|c| *c != '_')
                    .collect();
                // `L` suffix of Python 2 headers.
                if self.s.get(self.i) == Some(&b'L') {
                    self.i += 1;
                }
                Lit::Int(t.parse().ok()?)
            }
            _ => {
                let rest = &self.s[self.i..];
                let (lit, n) = if rest.starts_with(b"True") {
                    (Lit::Bool(true), 4)
                } else if rest.starts_with(b"False") {
                    (Lit::Bool(false), 5)
                } else if rest.starts_with(b"None") {
                    (Lit::None, 4)
                } else {
                    return None;
                };
                self.i += n;
                lit
            }
        };
        self.depth -= 1;
        Some(v)
    }
}

pub(super) fn parse_literal(s: &[u8]) -> Option<Lit> {
    let mut p = P { s, i: 0, depth: 0 };
    let v = p.value()?;
    p.ws();
    (p.i == s.len()).then_some(v)
}

/// Does a dtype description hold Python objects (`dtype.hasobject`)?
fn has_object(descr: &Lit) -> bool {
    match descr {
        Lit::Str(s) => {
            let t = s.trim_start_matches(['<', '>', '|', '=']);
            t.starts_with('O')
        }
        // Structured: [(name, fmt[, shape]), ...]; fmt may itself be structured.
        Lit::Seq(fields) => fields.iter().any(|f| match f {
            Lit::Seq(parts) => parts.get(1).is_some_and(has_object),
            _ => false,
        }),
        _ => false,
    }
}

/// Item size of a simple dtype string (`'<f4'` → 4), when it is that simple.
fn itemsize(descr: &Lit) -> Option<u64> {
    let Lit::Str(s) = descr else { return None };
    let t = s.trim_start_matches(['<', '>', '|', '=']);
    let mut chars = t.chars();
    let kind = chars.next()?;
    let n: u64 = chars.as_str().parse().ok()?;
    match kind {
        'U' => n.checked_mul(4),
        'b' | 'i' | 'u' | 'f' | 'c' | 'S' | 'V' | 'M' | 'm' => Some(n),
        _ => None,
    }
}

struct Header {
    data_offset: usize,
    header_len: usize,
    dict: Option<Lit>,
    version: (u8, u8),
}

fn header(d: &[u8]) -> Result<Header, String> {
    let major = *d.get(6).ok_or("truncated before the version")?;
    let minor = *d.get(7).ok_or("truncated before the version")?;
    let (len, at): (usize, usize) = match major {
        1 => (
            usize::from(u16::from_le_bytes([
                *d.get(8).ok_or("truncated")?,
                *d.get(9).ok_or("truncated")?,
            ])),
            10,
        ),
        _ => {
            let b = d.get(8..12).ok_or("truncated header length")?;
            (u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize, 12)
        }
    };
    let data_offset = at.checked_add(len).ok_or("header length overflows")?;
    let text = d
        .get(
            at..data_offset
                .min(d.len())
                .min(at.saturating_add(OUR_MAX_HEADER)),
        )
        .unwrap_or(&[]);
    let dict = if data_offset <= d.len() && len <= OUR_MAX_HEADER {
        parse_literal(text)
    } else {
        None
    };
    Ok(Header {
        data_offset,
        header_len: len,
        dict,
        version: (major, minor),
    })
}

/// For a member sniffed on a prefix: is the data a pickle (so the whole member must be read)?
/// Unparseable headers say yes: better to read than to miss.
pub(super) fn needs_data(prefix: &[u8]) -> bool {
    match header(prefix) {
        Ok(h) => match &h.dict {
            Some(Lit::Dict(items)) => items
                .iter()
                .find(|(k, _)| *k == Lit::Str("descr".into()))
                .is_none_or(|(_, v)| has_object(v)),
            _ => true,
        },
        Err(_) => true,
    }
}

pub(super) fn read_npy(r: &mut Reader<'_>, loc: Vec<String>, d: &[u8]) -> Artifact {
    read_npy_len(r, loc, d, d.len() as u64)
}

/// Reads an npy of `total` bytes of which `d` holds at least the header (a prefix is enough when
/// the dtype has no objects: the data is never read).
pub(super) fn read_npy_len(r: &mut Reader<'_>, loc: Vec<String>, d: &[u8], total: u64) -> Artifact {
    let mut a = Artifact::new(loc, Format::Npy, total);
    let h = match header(d) {
        Ok(h) => h,
        Err(e) => {
            a.notes.push(malformed(format!("npy: {e}")));
            return a;
        }
    };
    if !matches!(h.version, (1, 0) | (2, 0) | (3, 0)) {
        a.notes.push(malformed(format!(
            "npy version {}.{}: numpy only reads 1.0, 2.0 and 3.0",
            h.version.0, h.version.1
        )));
    }
    if h.header_len > NUMPY_MAX_HEADER {
        a.notes.push(malformed(format!(
            "npy header is {} bytes: numpy refuses headers over {NUMPY_MAX_HEADER} unless allow_pickle=True",
            h.header_len
        )));
    }
    if h.data_offset > d.len() {
        a.notes
            .push(malformed("npy header runs past the end of the file"));
        return a;
    }
    let Some(Lit::Dict(items)) = &h.dict else {
        a.notes.push(malformed(
            "npy header is not a Python dict literal: numpy refuses it",
        ));
        return a;
    };
    let get = |k: &str| {
        items
            .iter()
            .find(|(key, _)| *key == Lit::Str(k.into()))
            .map(|(_, v)| v)
    };
    let keys_ok = items.len() == 3
        && get("descr").is_some()
        && matches!(get("fortran_order"), Some(Lit::Bool(_)))
        && matches!(get("shape"), Some(Lit::Seq(_)));
    if !keys_ok {
        a.notes.push(malformed(
            "npy header must have exactly the keys descr, fortran_order (bool) and shape (tuple): numpy refuses it",
        ));
    }
    let Some(descr) = get("descr") else { return a };
    if has_object(descr) {
        // `np.load(allow_pickle=True)` runs `pickle.load(fp)` right after the header: a file
        // object with no peek for our purposes (FORMATS-FACTS §1.2).
        a.pickles.push(pickle_one(
            d,
            h.data_offset as u64,
            ReadMode::FileNoPeek,
            &r.opts.pickle,
        ));
        return a;
    }
    // Raw data: check the size only (cheap), never read it.
    if let (Some(size), Some(Lit::Seq(dims))) = (itemsize(descr), get("shape")) {
        let mut count: Option<u64> = Some(1);
        for dim in dims {
            count = match dim {
                Lit::Int(n) => u64::try_from(*n).ok().and_then(|n| count?.checked_mul(n)),
                _ => None,
            };
        }
        if let Some(bytes) = count.and_then(|c| c.checked_mul(size)) {
            let have = total.saturating_sub(h.data_offset as u64);
            if have < bytes {
                a.notes.push(malformed(format!(
                    "npy data is {have} bytes, the header's shape and dtype need {bytes}: numpy fails to load it"
                )));
            }
        }
    }
    a
}
