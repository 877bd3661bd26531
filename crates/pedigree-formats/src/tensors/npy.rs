//! numpy `.npy` (FORMATS-FACTS §3.1) and `.npz` (a zip of `.npy` members, stored or deflated).
//! The header dict is parsed by a tiny literal reader: `descr`, `fortran_order`, `shape`.
//! Object arrays (pickles) are refused: they hold no plain tensor data.

use super::zip::{self, Data};
use super::{Buf, DType, Layout, Limits, Parsed, Tensor, TensorFormat, bad, numel_checked};

struct Header {
    dtype: DType,
    big_endian: bool,
    fortran: bool,
    shape: Vec<usize>,
    data_offset: usize,
}

fn descr(s: &str) -> Option<(DType, bool)> {
    // The byte-order mark is one character, not one byte: the header is UTF-8 text.
    let mut chars = s.chars();
    let order = chars.next()?;
    let code = chars.as_str();
    let be = order == '>';
    if !matches!(order, '<' | '>' | '|' | '=') {
        return None;
    }
    Some((
        match code {
            "f8" => DType::F64,
            "f4" => DType::F32,
            "f2" => DType::F16,
            "i8" => DType::I64,
            "i4" => DType::I32,
            "i2" => DType::I16,
            "i1" => DType::I8,
            "u8" => DType::U64,
            "u4" => DType::U32,
            "u2" => DType::U16,
            "u1" => DType::U8,
            "b1" => DType::Bool,
            _ => return None,
        },
        be,
    ))
}

/// Value of `'key':` in the header text, up to the next top-level comma or brace.
fn field<'a>(h: &'a str, key: &str) -> Option<&'a str> {
    let at = h
        .find(&format!("'{key}'"))
        .or_else(|| h.find(&format!("\"{key}\"")))?;
    let rest = &h[at + key.len() + 2..];
    let rest = rest.trim_start().strip_prefix(':')?.trim_start();
    if rest.starts_with('(') {
        return Some(&rest[..=rest.find(')')?]);
    }
    let end = rest.find([',', '}']).unwrap_or(rest.len());
    Some(rest[..end].trim())
}

fn header(d: &[u8]) -> Result<Header, String> {
    if !d.starts_with(b"\x93NUMPY") || d.len() < 10 {
        return bad("npy: bad magic");
    }
    let (hlen, start): (usize, usize) = match d[6] {
        1 => (u16::from_le_bytes([d[8], d[9]]) as usize, 10),
        2 | 3 => {
            let b = d.get(8..12).ok_or("npy: truncated")?;
            (u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize, 12)
        }
        v => return bad(format!("npy: version {v}")),
    };
    let h = d
        .get(start..start.checked_add(hlen).ok_or("npy: overflow")?)
        .ok_or("npy: header runs past the data")?;
    let h = std::str::from_utf8(h).map_err(|_| "npy: header is not text")?;
    let ds = field(h, "descr")
        .ok_or("npy: no descr")?
        .trim_matches(['\'', '"']);
    let (dtype, big_endian) = descr(ds).ok_or_else(|| format!("npy: unsupported dtype {ds:?}"))?;
    let fortran = field(h, "fortran_order").is_some_and(|v| v.starts_with("True"));
    let sh = field(h, "shape").ok_or("npy: no shape")?;
    let inner = sh.trim_start_matches('(').trim_end_matches(')');
    let shape = inner
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.trim_end_matches('L')
                .parse::<usize>()
                .map_err(|_| format!("npy: bad shape {sh:?}"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Header {
        dtype,
        big_endian,
        fortran,
        shape,
        data_offset: start + hlen,
    })
}

fn tensor(
    name: String,
    d: &[u8],
    base: usize,
    buf: usize,
    limits: &Limits,
) -> Result<Tensor, String> {
    let h = header(d)?;
    let numel = numel_checked(&h.shape, limits)?;
    let size = h.dtype.size().unwrap_or(1);
    if numel
        .checked_mul(size)
        .and_then(|l| l.checked_add(h.data_offset))
        .is_none_or(|e| e > d.len())
    {
        return bad(format!("npy: {name:?} data shorter than its shape"));
    }
    let offset = base + h.data_offset;
    let layout = if h.fortran && h.shape.len() > 1 {
        // Column-major: stride of axis k is the product of the dims before it.
        let mut strides = Vec::with_capacity(h.shape.len());
        let mut acc = 1usize;
        for s in &h.shape {
            strides.push(acc);
            acc = acc.saturating_mul(*s);
        }
        Layout::Strided {
            buf,
            base: offset,
            base_len: numel * size,
            dtype: h.dtype,
            big_endian: h.big_endian,
            offset: 0,
            strides,
        }
    } else {
        Layout::Dense {
            buf,
            offset,
            dtype: h.dtype,
            big_endian: h.big_endian,
        }
    };
    Ok(Tensor {
        name,
        dtype: h.dtype,
        shape: h.shape,
        quantized: false,
        layout,
    })
}

pub(crate) fn read_npy(d: &[u8], limits: &Limits) -> Result<Parsed, String> {
    let t = tensor("array".into(), d, 0, 0, limits)?;
    Ok(Parsed {
        format: TensorFormat::Npy,
        tensors: vec![t],
        metadata: Vec::new(),
        extra: Vec::new(),
    })
}

pub(crate) fn read_npz(d: &[u8], limits: &Limits) -> Result<Parsed, String> {
    let mut tensors = Vec::new();
    let mut extra = Vec::new();
    for m in zip::members(d, limits.max_tensors)? {
        let Some(name) = m.name.strip_suffix(".npy") else {
            continue;
        };
        let t = match zip::data(d, &m, limits.max_inflated)? {
            Data::Borrowed(b, start) => tensor(name.to_string(), b, start, 0, limits)?,
            Data::Inflated(v) => {
                let t = tensor(name.to_string(), &v, 0, extra.len() + 1, limits)?;
                extra.push(Buf::Owned(v));
                t
            }
        };
        tensors.push(t);
    }
    if tensors.is_empty() {
        return bad("npz: no .npy members");
    }
    Ok(Parsed {
        format: TensorFormat::Npz,
        tensors,
        metadata: Vec::new(),
        extra,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Fuzz find (`fuzz/` target `tensors_npy`): a `descr` starting with a multi-byte
    /// character (`'ģ8'`) panicked in `split_at(1)`; it is an unsupported dtype.
    #[test]
    fn descr_with_multibyte_first_character_is_an_error() {
        let dict = "{'descr': '\u{123}8', 'fortran_order': False, 'shape': (1,), }";
        let mut d = b"\x93NUMPY\x01\x00".to_vec();
        d.extend_from_slice(&(dict.len() as u16).to_le_bytes());
        d.extend_from_slice(dict.as_bytes());
        d.extend_from_slice(&[0; 8]);
        let err = header(&d).err().expect("an error");
        assert!(err.contains("unsupported dtype"), "{err}");
        assert!(descr("").is_none() && descr("\u{123}").is_none());
        assert_eq!(descr("<f4"), Some((DType::F32, false)));
        assert_eq!(descr(">i2"), Some((DType::I16, true)));
    }
}
