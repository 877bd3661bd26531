//! GGUF (FORMATS-FACTS §6): header, metadata key/values and tensor infos, versions 1–3, either
//! byte order. Every count is checked against the bytes left before anything is reserved, and
//! strings are capped, so a hostile header cannot make us allocate or loop beyond the file.
//! Chat templates found in the metadata are judged by [`crate::chat_template`].

use serde::Serialize;

use crate::chat_template::{self, TemplateReport};

/// Longest metadata string kept (longer ones are an issue; the tokenizer JSON blob can be large).
pub const MAX_STRING: u64 = 256 << 20;
/// Deepest nesting of ARRAY values.
pub const MAX_ARRAY_DEPTH: usize = 8;
/// ggml's `GGML_MAX_NAME` and `GGML_MAX_DIMS`.
pub const MAX_TENSOR_NAME: u64 = 64;
pub const MAX_DIMS: u32 = 4;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum IssueKind {
    /// The header or an entry cannot be read (truncated, bad type, count beyond the data).
    Malformed,
    /// A version ggml refuses (0, 1, > 3).
    UnsupportedVersion,
    /// A tensor's info is inconsistent: dims, type, offset alignment, range, overlap.
    BadTensor,
}

#[derive(Debug, Clone, Serialize)]
pub struct Issue {
    pub kind: IssueKind,
    pub message: String,
}

#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum Value {
    U64(u64),
    I64(i64),
    F64(f64),
    Bool(bool),
    Str(String),
    /// Arrays are summarised: element type id and count (token lists hold 100k+ strings).
    Array {
        elem_type: u32,
        count: u64,
    },
}

#[derive(Debug, Clone, Serialize)]
pub struct TensorInfo {
    pub name: String,
    /// NumPy order (outermost first): the file stores them reversed.
    pub shape: Vec<u64>,
    pub ggml_type: u32,
    pub offset: u64,
    pub size: Option<u64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct GgufView {
    pub version: u32,
    pub big_endian: bool,
    pub metadata: Vec<(String, Value)>,
    pub tensors: Vec<TensorInfo>,
    pub alignment: u64,
    /// Every `tokenizer.chat_template*` string, judged.
    pub templates: Vec<TemplateReport>,
    pub issues: Vec<Issue>,
}

pub fn looks_like(data: &[u8]) -> bool {
    data.len() >= 8 && &data[..4] == b"GGUF"
}

struct Cur<'a> {
    d: &'a [u8],
    p: usize,
    be: bool,
    v1: bool,
}

impl<'a> Cur<'a> {
    fn left(&self) -> u64 {
        (self.d.len() - self.p) as u64
    }
    fn take(&mut self, n: u64) -> Result<&'a [u8], String> {
        if n > self.left() {
            return Err(format!(
                "needs {n} bytes at offset {} but only {} remain",
                self.p,
                self.left()
            ));
        }
        let s = &self.d[self.p..self.p + n as usize];
        self.p += n as usize;
        Ok(s)
    }
    fn u32(&mut self) -> Result<u32, String> {
        let b: [u8; 4] = self.take(4)?.try_into().map_err(|_| "short")?;
        Ok(if self.be {
            u32::from_be_bytes(b)
        } else {
            u32::from_le_bytes(b)
        })
    }
    fn u64(&mut self) -> Result<u64, String> {
        let b: [u8; 8] = self.take(8)?.try_into().map_err(|_| "short")?;
        Ok(if self.be {
            u64::from_be_bytes(b)
        } else {
            u64::from_le_bytes(b)
        })
    }
    /// A count or length: u32 in v1, u64 after.
    fn len(&mut self) -> Result<u64, String> {
        if self.v1 {
            self.u32().map(u64::from)
        } else {
            self.u64()
        }
    }
    fn string(&mut self, max: u64) -> Result<String, String> {
        let at = self.p;
        let n = self.len()?;
        if n > max {
            return Err(format!(
                "string at offset {at} claims {n} bytes (limit {max})"
            ));
        }
        let b = self.take(n)?;
        Ok(String::from_utf8_lossy(b).into_owned())
    }
}

/// Smallest encoded size of a value of this type (to bound counts by the bytes left).
fn min_size(t: u32, v1: bool) -> Option<u64> {
    Some(match t {
        0 | 1 | 7 => 1,
        2 | 3 => 2,
        4..=6 => 4,
        10..=12 => 8,
        8 => {
            if v1 {
                4
            } else {
                8
            }
        }
        9 => {
            if v1 {
                8
            } else {
                12
            }
        }
        _ => return None,
    })
}

fn value(c: &mut Cur, t: u32, depth: usize, keep: bool) -> Result<Value, String> {
    Ok(match t {
        0 => Value::U64(c.take(1)?[0] as u64),
        1 => Value::I64(c.take(1)?[0] as i8 as i64),
        2 => {
            let b: [u8; 2] = c.take(2)?.try_into().map_err(|_| "short")?;
            Value::U64(if c.be {
                u16::from_be_bytes(b)
            } else {
                u16::from_le_bytes(b)
            } as u64)
        }
        3 => {
            let b: [u8; 2] = c.take(2)?.try_into().map_err(|_| "short")?;
            Value::I64(if c.be {
                i16::from_be_bytes(b)
            } else {
                i16::from_le_bytes(b)
            } as i64)
        }
        4 => Value::U64(c.u32()? as u64),
        5 => Value::I64(c.u32()? as i32 as i64),
        6 => Value::F64(f32::from_bits(c.u32()?) as f64),
        7 => {
            let b = c.take(1)?[0];
            if b > 1 {
                return Err(format!(
                    "BOOL value {b} at offset {} (only 0 and 1 are valid)",
                    c.p - 1
                ));
            }
            Value::Bool(b == 1)
        }
        8 => {
            if keep {
                Value::Str(c.string(MAX_STRING)?)
            } else {
                let n = c.len()?;
                c.take(n)?;
                Value::Str(String::new())
            }
        }
        9 => {
            if depth >= MAX_ARRAY_DEPTH {
                return Err(format!("arrays nested deeper than {MAX_ARRAY_DEPTH}"));
            }
            let et = c.u32()?;
            let n = c.len()?;
            let min =
                min_size(et, c.v1).ok_or_else(|| format!("array of unknown value type {et}"))?;
            if n.saturating_mul(min) > c.left() {
                return Err(format!(
                    "array claims {n} elements of type {et}, more than the {} bytes left hold",
                    c.left()
                ));
            }
            if matches!(et, 8 | 9) {
                for _ in 0..n {
                    value(c, et, depth + 1, false)?;
                }
            } else {
                c.take(n * min)?;
            }
            Value::Array {
                elem_type: et,
                count: n,
            }
        }
        10 => Value::U64(c.u64()?),
        11 => Value::I64(c.u64()? as i64),
        12 => Value::F64(f64::from_bits(c.u64()?)),
        _ => return Err(format!("unknown value type {t}")),
    })
}

/// (elements per block, bytes per block) of a ggml type (FORMATS-FACTS §6.3).
pub fn block(t: u32) -> Option<(u64, u64)> {
    Some(match t {
        0 => (1, 4),
        1 => (1, 2),
        2 => (32, 18),
        3 => (32, 20),
        6 => (32, 22),
        7 => (32, 24),
        8 => (32, 34),
        9 => (32, 40),
        10 => (256, 84),
        11 => (256, 110),
        12 => (256, 144),
        13 => (256, 176),
        14 => (256, 210),
        15 => (256, 292),
        16 => (256, 66),
        17 => (256, 74),
        18 => (256, 98),
        19 => (256, 50),
        20 => (32, 18),
        21 => (256, 110),
        22 => (256, 82),
        23 => (256, 136),
        24 => (1, 1),
        25 => (1, 2),
        26 => (1, 4),
        27 => (1, 8),
        28 => (1, 8),
        29 => (256, 56),
        30 => (1, 2),
        34 => (256, 54),
        35 => (256, 66),
        39 => (32, 17),
        40 => (64, 36),
        41 => (128, 18),
        _ => return None,
    })
}

/// Reads a GGUF file. Never fails: problems are [`Issue`]s, and what was read before them is kept.
pub fn read(data: &[u8]) -> GgufView {
    let mut view = GgufView {
        version: 0,
        big_endian: false,
        metadata: Vec::new(),
        tensors: Vec::new(),
        alignment: 32,
        templates: Vec::new(),
        issues: Vec::new(),
    };
    if let Err(e) = read_into(data, &mut view) {
        view.issues.push(Issue {
            kind: IssueKind::Malformed,
            message: e,
        });
    }
    for (k, v) in &view.metadata {
        if let (true, Value::Str(s)) = (k.starts_with("tokenizer.chat_template"), v) {
            view.templates.push(chat_template::check(k, s));
        }
    }
    view
}

fn read_into(data: &[u8], view: &mut GgufView) -> Result<(), String> {
    if !looks_like(data) {
        return Err("no GGUF magic, or shorter than the header".into());
    }
    let raw = u32::from_le_bytes(data[4..8].try_into().map_err(|_| "short")?);
    let (version, be) = if raw & 0xFFFF == 0 {
        (raw.swap_bytes(), true)
    } else {
        (raw, false)
    };
    view.version = version;
    view.big_endian = be;
    if version == 0 || version > 3 {
        view.issues.push(Issue {
            kind: IssueKind::UnsupportedVersion,
            message: format!("GGUF version {version}: ggml refuses it"),
        });
        return Ok(());
    }
    let mut c = Cur {
        d: data,
        p: 8,
        be,
        v1: version == 1,
    };
    let n_tensors = c.len()?;
    let n_kv = c.len()?;
    // Each kv needs at least a key length, a type and one byte; each tensor info a name length,
    // n_dims, type and offset.
    let kv_min = if c.v1 { 9 } else { 13 };
    if n_kv.saturating_mul(kv_min) > c.left() {
        return Err(format!(
            "header claims {n_kv} metadata entries, more than the file can hold"
        ));
    }
    for _ in 0..n_kv {
        let key = c.string(65_535)?;
        let t = c.u32()?;
        let v = value(&mut c, t, 0, true).map_err(|e| format!("metadata {key:?}: {e}"))?;
        if key == "general.alignment" {
            match v {
                Value::U64(a) if a > 0 && a % 8 == 0 && a <= 1 << 20 => view.alignment = a,
                _ => view.issues.push(Issue {
                    kind: IssueKind::Malformed,
                    message: format!("general.alignment is {v:?}, not a multiple of 8"),
                }),
            }
        }
        view.metadata.push((key, v));
    }
    let ti_min = if c.v1 { 4 + 4 + 4 + 8 } else { 8 + 4 + 4 + 8 };
    if n_tensors.saturating_mul(ti_min) > c.left() {
        return Err(format!(
            "header claims {n_tensors} tensors, more than the file can hold"
        ));
    }
    let mut infos = Vec::new();
    for _ in 0..n_tensors {
        let name = c.string(1 << 16)?;
        if name.len() as u64 > MAX_TENSOR_NAME {
            view.issues.push(Issue {
                kind: IssueKind::BadTensor,
                message: format!(
                    "tensor name of {} bytes (ggml's limit is {MAX_TENSOR_NAME})",
                    name.len()
                ),
            });
        }
        let nd = c.u32()?;
        if nd > MAX_DIMS {
            return Err(format!(
                "tensor {name:?} has {nd} dimensions (ggml's limit is {MAX_DIMS})"
            ));
        }
        let mut dims = Vec::new();
        for _ in 0..nd {
            dims.push(c.len()?);
        }
        let t = c.u32()?;
        let offset = c.u64()?;
        dims.reverse();
        infos.push(TensorInfo {
            name,
            shape: dims,
            ggml_type: t,
            offset,
            size: None,
        });
    }
    let data_start = (c.p as u64).div_ceil(view.alignment) * view.alignment;
    let data_len = (data.len() as u64).saturating_sub(data_start);
    for t in &mut infos {
        let Some((be_, bb)) = block(t.ggml_type) else {
            view.issues.push(Issue {
                kind: IssueKind::BadTensor,
                message: format!("tensor {:?}: unknown ggml type {}", t.name, t.ggml_type),
            });
            continue;
        };
        let n = t.shape.iter().try_fold(1u64, |a, &d| a.checked_mul(d));
        let Some(n) = n else {
            view.issues.push(Issue {
                kind: IssueKind::BadTensor,
                message: format!("tensor {:?}: shape overflows", t.name),
            });
            continue;
        };
        if n % be_ != 0 {
            view.issues.push(Issue {
                kind: IssueKind::BadTensor,
                message: format!(
                    "tensor {:?}: {n} elements is not a multiple of the block size {be_}",
                    t.name
                ),
            });
            continue;
        }
        let Some(size) = (n / be_).checked_mul(bb) else {
            view.issues.push(Issue {
                kind: IssueKind::BadTensor,
                message: format!("tensor {:?}: size overflows", t.name),
            });
            continue;
        };
        t.size = Some(size);
        if t.offset % view.alignment != 0 {
            view.issues.push(Issue {
                kind: IssueKind::BadTensor,
                message: format!(
                    "tensor {:?}: offset {} is not aligned to {}",
                    t.name, t.offset, view.alignment
                ),
            });
        }
        if t.offset.checked_add(size).is_none_or(|e| e > data_len) {
            view.issues.push(Issue {
                kind: IssueKind::BadTensor,
                message: format!(
                    "tensor {:?}: bytes [{}, +{size}) run past the {data_len}-byte data section",
                    t.name, t.offset
                ),
            });
        }
    }
    let mut ranges: Vec<(u64, u64, &str)> = infos
        .iter()
        .filter_map(|t| Some((t.offset, t.offset.saturating_add(t.size?), t.name.as_str())))
        .collect();
    ranges.sort();
    for w in ranges.windows(2) {
        if w[1].0 < w[0].1 {
            view.issues.push(Issue {
                kind: IssueKind::BadTensor,
                message: format!("tensor {:?} overlaps tensor {:?}", w[1].2, w[0].2),
            });
        }
    }
    view.tensors = infos;
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub fn build(kvs: &[(&str, &str)], tensors: usize) -> Vec<u8> {
        let mut d = b"GGUF".to_vec();
        d.extend(3u32.to_le_bytes());
        d.extend((tensors as u64).to_le_bytes());
        d.extend((kvs.len() as u64).to_le_bytes());
        for (k, v) in kvs {
            d.extend((k.len() as u64).to_le_bytes());
            d.extend(k.as_bytes());
            d.extend(8u32.to_le_bytes());
            d.extend((v.len() as u64).to_le_bytes());
            d.extend(v.as_bytes());
        }
        for i in 0..tensors {
            let name = format!("t{i}");
            d.extend((name.len() as u64).to_le_bytes());
            d.extend(name.as_bytes());
            d.extend(2u32.to_le_bytes());
            d.extend(4u64.to_le_bytes());
            d.extend(2u64.to_le_bytes());
            d.extend(0u32.to_le_bytes());
            d.extend(((i * 32) as u64).to_le_bytes());
        }
        while d.len() % 32 != 0 {
            d.push(0);
        }
        d.extend(std::iter::repeat_n(0u8, tensors * 32));
        d
    }

    #[test]
    fn clean_file() {
        let f = build(
            &[
                ("general.architecture", "llama"),
                (
                    "tokenizer.chat_template",
                    "{{ bos_token }}{% for m in messages %}{{ m['content'] }}{% endfor %}",
                ),
            ],
            2,
        );
        let v = read(&f);
        assert!(v.issues.is_empty(), "{:?}", v.issues);
        assert_eq!(v.tensors.len(), 2);
        assert_eq!(v.tensors[0].shape, vec![2, 4]);
        assert_eq!(v.templates.len(), 1);
        assert!(v.templates[0].escapes.is_empty());
    }

    #[test]
    fn hostile_counts() {
        let mut f = build(&[], 0);
        f[8..16].copy_from_slice(&u64::MAX.to_le_bytes());
        let v = read(&f);
        assert_eq!(v.issues[0].kind, IssueKind::Malformed);
        let mut f = build(&[("a", "b")], 0);
        f[24..32].copy_from_slice(&(1u64 << 60).to_le_bytes());
        assert_eq!(read(&f).issues[0].kind, IssueKind::Malformed);
    }

    #[test]
    fn random_inputs_never_panic() {
        let f = build(
            &[
                ("general.architecture", "llama"),
                ("tokenizer.chat_template", "{{ x.y }}"),
            ],
            2,
        );
        crate::fuzz_util::mutate_many(&f, 3000, 0x66, |d| {
            let _ = read(d);
        });
    }
}
