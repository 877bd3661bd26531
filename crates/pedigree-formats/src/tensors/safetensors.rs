//! safetensors (FORMATS-FACTS §7): u64 header length, JSON header, byte buffer.
//! Read like the reference crate reads it, but lenient where it is strict about things that do
//! not affect the values (holes between tensors are allowed; every tensor must lie inside).

use super::{
    DType, Layout, Limits, Parsed, Tensor, TensorFormat, bad, dense_checked, numel_checked,
};

pub(crate) fn looks_like(d: &[u8]) -> bool {
    if d.len() < 10 {
        return false;
    }
    let n = u64::from_le_bytes(d[..8].try_into().unwrap_or([0; 8]));
    // header must fit, and start (after optional blanks) with '{'
    n >= 2
        && n <= (d.len() as u64 - 8)
        && d[8..].iter().take(64).find(|b| !b.is_ascii_whitespace()) == Some(&b'{')
}

fn dtype(s: &str) -> Option<DType> {
    Some(match s {
        "F64" => DType::F64,
        "F32" => DType::F32,
        "F16" => DType::F16,
        "BF16" => DType::BF16,
        "F8_E4M3" => DType::F8E4M3,
        "F8_E5M2" => DType::F8E5M2,
        "I64" => DType::I64,
        "I32" => DType::I32,
        "I16" => DType::I16,
        "I8" => DType::I8,
        "U64" => DType::U64,
        "U32" => DType::U32,
        "U16" => DType::U16,
        "U8" => DType::U8,
        "BOOL" => DType::Bool,
        _ => return None,
    })
}

pub(crate) fn read(d: &[u8], limits: &Limits) -> Result<Parsed, String> {
    if d.len() < 8 {
        return bad("safetensors: shorter than the 8-byte header length");
    }
    let n = u64::from_le_bytes(d[..8].try_into().map_err(|_| "short")?);
    if n > limits.max_header as u64 || n > (d.len() - 8) as u64 {
        return bad(format!(
            "safetensors: header length {n} exceeds the file or the limit"
        ));
    }
    let n = n as usize;
    let header: serde_json::Value = serde_json::from_slice(&d[8..8 + n])
        .map_err(|e| format!("safetensors: header is not JSON: {e}"))?;
    let obj = header
        .as_object()
        .ok_or("safetensors: header is not a JSON object")?;
    let data_start = 8 + n;
    let data_len = d.len() - data_start;
    let mut tensors = Vec::new();
    let mut metadata = Vec::new();
    for (name, v) in obj {
        if name == "__metadata__" {
            if let Some(m) = v.as_object() {
                for (k, v) in m {
                    metadata.push((
                        k.clone(),
                        v.as_str()
                            .map(str::to_string)
                            .unwrap_or_else(|| v.to_string()),
                    ));
                }
            }
            continue;
        }
        if tensors.len() >= limits.max_tensors {
            return bad(format!(
                "safetensors: more than {} tensors",
                limits.max_tensors
            ));
        }
        let dt_s = v
            .get("dtype")
            .and_then(|x| x.as_str())
            .ok_or_else(|| format!("safetensors: {name:?} has no dtype"))?;
        let dt = dtype(dt_s)
            .ok_or_else(|| format!("safetensors: {name:?} has unsupported dtype {dt_s}"))?;
        let shape: Vec<usize> = v
            .get("shape")
            .and_then(|x| x.as_array())
            .ok_or_else(|| format!("safetensors: {name:?} has no shape"))?
            .iter()
            .map(|x| x.as_u64().and_then(|u| usize::try_from(u).ok()))
            .collect::<Option<_>>()
            .ok_or_else(|| format!("safetensors: {name:?} shape is not a list of sizes"))?;
        let offs = v
            .get("data_offsets")
            .and_then(|x| x.as_array())
            .filter(|a| a.len() == 2)
            .ok_or_else(|| format!("safetensors: {name:?} has no data_offsets pair"))?;
        let (b, e) = match (offs[0].as_u64(), offs[1].as_u64()) {
            (Some(b), Some(e)) if b <= e && e <= data_len as u64 => (b as usize, e as usize),
            _ => {
                return bad(format!(
                    "safetensors: {name:?} data_offsets outside the buffer ({data_len} bytes)"
                ));
            }
        };
        let numel =
            numel_checked(&shape, limits).map_err(|m| format!("safetensors: {name:?}: {m}"))?;
        let size = dt.size().unwrap_or(1);
        if numel.checked_mul(size) != Some(e - b) {
            return bad(format!(
                "safetensors: {name:?}: {} bytes for {numel} elements of {dt_s}",
                e - b
            ));
        }
        let layout = dense_checked(d.len(), 0, data_start + b, numel, dt, false)?;
        tensors.push(Tensor {
            name: name.clone(),
            dtype: dt,
            shape,
            quantized: false,
            layout,
        });
    }
    // serde_json's map is sorted by key; keep file order (by offset) instead, as writers emit it.
    tensors.sort_by_key(|t| match t.layout {
        Layout::Dense { offset, .. } => offset,
        _ => 0,
    });
    Ok(Parsed {
        format: TensorFormat::Safetensors,
        tensors,
        metadata,
        extra: Vec::new(),
    })
}
