//! GGUF (FORMATS-FACTS §6): header, key-values (only `general.alignment` and short strings are
//! kept), tensor infos, aligned data. Dims are stored innermost first and reversed here.
//! Versions 2 and 3 (u64 counts); v1 is refused as ggml refuses it.

use super::convert::ggml_block;
use super::{
    DType, Layout, Limits, Parsed, Tensor, TensorFormat, bad, dense_checked, numel_checked,
};

struct R<'a> {
    d: &'a [u8],
    p: usize,
}

impl<'a> R<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        let e = self
            .p
            .checked_add(n)
            .filter(|&e| e <= self.d.len())
            .ok_or("gguf: truncated")?;
        let s = &self.d[self.p..e];
        self.p = e;
        Ok(s)
    }
    fn u32(&mut self) -> Result<u32, String> {
        Ok(u32::from_le_bytes(
            self.take(4)?.try_into().map_err(|_| "gguf")?,
        ))
    }
    fn u64(&mut self) -> Result<u64, String> {
        Ok(u64::from_le_bytes(
            self.take(8)?.try_into().map_err(|_| "gguf")?,
        ))
    }
    fn string(&mut self) -> Result<&'a [u8], String> {
        let n = self.u64()?;
        let n = usize::try_from(n).map_err(|_| "gguf: string length overflow")?;
        self.take(n)
    }
    /// Skips (or reads, for scalars and strings) a value of type `t`; returns it as text when
    /// it is a scalar or a short string.
    fn value(&mut self, t: u32, depth: usize) -> Result<Option<String>, String> {
        let fixed = match t {
            0 | 1 | 7 => 1,
            2 | 3 => 2,
            4 | 5 | 6 => 4,
            10 | 11 | 12 => 8,
            _ => 0,
        };
        if fixed > 0 {
            let b = self.take(fixed)?;
            return Ok(Some(match t {
                0 => b[0].to_string(),
                1 => (b[0] as i8).to_string(),
                7 => (b[0] != 0).to_string(),
                2 => u16::from_le_bytes([b[0], b[1]]).to_string(),
                3 => i16::from_le_bytes([b[0], b[1]]).to_string(),
                4 => u32::from_le_bytes(b.try_into().map_err(|_| "gguf")?).to_string(),
                5 => i32::from_le_bytes(b.try_into().map_err(|_| "gguf")?).to_string(),
                6 => f32::from_le_bytes(b.try_into().map_err(|_| "gguf")?).to_string(),
                10 => u64::from_le_bytes(b.try_into().map_err(|_| "gguf")?).to_string(),
                11 => i64::from_le_bytes(b.try_into().map_err(|_| "gguf")?).to_string(),
                _ => f64::from_le_bytes(b.try_into().map_err(|_| "gguf")?).to_string(),
            }));
        }
        match t {
            8 => {
                let s = self.string()?;
                Ok((s.len() <= 4096).then(|| String::from_utf8_lossy(s).into_owned()))
            }
            9 => {
                if depth > 8 {
                    return bad("gguf: arrays nested too deep");
                }
                let et = self.u32()?;
                let n = self.u64()?;
                // Each element takes at least one byte, so a count beyond the bytes left is a lie.
                if n > (self.d.len() - self.p) as u64 {
                    return bad("gguf: array count exceeds the file");
                }
                for _ in 0..n {
                    self.value(et, depth + 1)?;
                }
                Ok(None)
            }
            _ => bad(format!("gguf: unknown value type {t}")),
        }
    }
}

fn ggml_type(id: u32) -> Option<DType> {
    Some(match id {
        0 => DType::F32,
        1 => DType::F16,
        2 => DType::Q4_0,
        3 => DType::Q4_1,
        6 => DType::Q5_0,
        7 => DType::Q5_1,
        8 => DType::Q8_0,
        12 => DType::Q4K,
        13 => DType::Q5K,
        14 => DType::Q6K,
        15 => DType::Q8K,
        24 => DType::I8,
        25 => DType::I16,
        26 => DType::I32,
        27 => DType::I64,
        28 => DType::F64,
        30 => DType::BF16,
        _ => return None,
    })
}

pub(crate) fn read(d: &[u8], limits: &Limits) -> Result<Parsed, String> {
    let mut r = R { d, p: 4 };
    let version = r.u32()?;
    if !(2..=3).contains(&version) {
        return bad(format!(
            "gguf: version {version} not supported (2 and 3 are)"
        ));
    }
    let n_tensors = r.u64()?;
    let n_kv = r.u64()?;
    if n_tensors > limits.max_tensors as u64 || n_tensors > d.len() as u64 || n_kv > d.len() as u64
    {
        return bad(format!(
            "gguf: {n_tensors} tensors / {n_kv} keys exceed the file or the limits"
        ));
    }
    let mut alignment = 32usize;
    let mut metadata = Vec::new();
    for _ in 0..n_kv {
        let key = String::from_utf8_lossy(r.string()?).into_owned();
        let t = r.u32()?;
        let v = r.value(t, 0)?;
        if r.p > limits.max_header {
            return bad("gguf: metadata larger than the limit");
        }
        if key == "general.alignment" {
            alignment = v.as_deref().and_then(|s| s.parse().ok()).unwrap_or(32);
            if alignment == 0 || alignment % 8 != 0 || alignment > 1 << 20 {
                return bad(format!("gguf: bad alignment {alignment}"));
            }
        }
        if let Some(v) = v {
            metadata.push((key, v));
        }
    }
    struct Info {
        name: String,
        shape: Vec<usize>,
        ty: u32,
        offset: u64,
    }
    let mut infos = Vec::new();
    for _ in 0..n_tensors {
        let name = String::from_utf8_lossy(r.string()?).into_owned();
        let nd = r.u32()? as usize;
        if nd > limits.max_rank {
            return bad(format!("gguf: {name:?} has {nd} dims"));
        }
        let mut dims = Vec::with_capacity(nd);
        for _ in 0..nd {
            dims.push(usize::try_from(r.u64()?).map_err(|_| "gguf: dim overflow")?);
        }
        dims.reverse(); // innermost first on disk; outermost first here
        let ty = r.u32()?;
        let offset = r.u64()?;
        infos.push(Info {
            name,
            shape: dims,
            ty,
            offset,
        });
    }
    let data_start = r.p.div_ceil(alignment).saturating_mul(alignment);
    let mut tensors = Vec::new();
    for i in infos {
        let dt = ggml_type(i.ty)
            .ok_or_else(|| format!("gguf: {:?} has unsupported ggml type {}", i.name, i.ty))?;
        let numel =
            numel_checked(&i.shape, limits).map_err(|m| format!("gguf: {:?}: {m}", i.name))?;
        let off = usize::try_from(i.offset)
            .ok()
            .and_then(|o| o.checked_add(data_start))
            .ok_or("gguf: offset overflow")?;
        let layout = if let Some((be, bb)) = ggml_block(dt) {
            // Blocks run along the innermost dimension.
            if i.shape.last().copied().unwrap_or(1) % be != 0 {
                return bad(format!(
                    "gguf: {:?}: row of {:?} is not a whole number of blocks",
                    i.name, i.shape
                ));
            }
            let end = (numel / be)
                .checked_mul(bb)
                .and_then(|l| l.checked_add(off));
            if end.is_none_or(|e| e > d.len()) {
                return bad(format!("gguf: {:?} data runs past the file", i.name));
            }
            Layout::Ggml {
                buf: 0,
                offset: off,
                dtype: dt,
            }
        } else {
            dense_checked(d.len(), 0, off, numel, dt, false)
                .map_err(|m| format!("gguf: {:?}: {m}", i.name))?
        };
        tensors.push(Tensor {
            name: i.name,
            dtype: dt,
            shape: i.shape,
            quantized: dt.is_block_quant(),
            layout,
        });
    }
    Ok(Parsed {
        format: TensorFormat::Gguf,
        tensors,
        metadata,
        extra: Vec::new(),
    })
}
