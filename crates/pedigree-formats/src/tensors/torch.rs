//! PyTorch zip checkpoints (FORMATS-FACTS §2.1, §2.2), read statically: `data.pkl` is run through
//! the symbolic pickle machine (nothing imported), the value it leaves is walked for the rebuild
//! calls (`_rebuild_tensor{,_v2,_v3}`, `_rebuild_parameter*`), whose arguments give storage key,
//! storage dtype, element offset, size and stride; the bytes come from `<prefix>/data/<key>`.

use std::collections::HashMap;

use super::zip::{self, Data};
use super::{Buf, DType, Layout, Limits, Parsed, Tensor, TensorFormat, bad, numel_checked};
use crate::pickle::{self, ReadMode, Value};

fn storage_dtype(name: &str) -> Option<DType> {
    Some(match name {
        "DoubleStorage" => DType::F64,
        "FloatStorage" => DType::F32,
        "HalfStorage" => DType::F16,
        "BFloat16Storage" => DType::BF16,
        "LongStorage" => DType::I64,
        "IntStorage" => DType::I32,
        "ShortStorage" => DType::I16,
        "CharStorage" => DType::I8,
        "ByteStorage" | "UntypedStorage" => DType::U8,
        "BoolStorage" => DType::Bool,
        _ => return None,
    })
}

fn torch_dtype(name: &str) -> Option<DType> {
    Some(match name {
        "float64" | "double" => DType::F64,
        "float32" | "float" => DType::F32,
        "float16" | "half" => DType::F16,
        "bfloat16" => DType::BF16,
        "float8_e4m3fn" => DType::F8E4M3,
        "float8_e5m2" => DType::F8E5M2,
        "int64" | "long" => DType::I64,
        "int32" | "int" => DType::I32,
        "int16" | "short" => DType::I16,
        "int8" => DType::I8,
        "uint8" => DType::U8,
        "uint16" => DType::U16,
        "uint32" => DType::U32,
        "uint64" => DType::U64,
        "bool" => DType::Bool,
        _ => return None,
    })
}

fn int(v: &Value) -> Option<i64> {
    match v {
        Value::Int(i) => Some(*i),
        Value::Bool(b) => Some(*b as i64),
        _ => None,
    }
}

fn ints(v: &Value) -> Option<Vec<i64>> {
    match v {
        Value::Tuple(items) => items.iter().map(int).collect(),
        Value::List { items, len } if *len as usize == items.len() => {
            items.iter().map(int).collect()
        }
        _ => None,
    }
}

fn text(v: &Value) -> Option<String> {
    match v {
        Value::Str { text, len } if *len as usize == text.len() => Some(text.clone()),
        Value::Int(i) => Some(i.to_string()),
        _ => None,
    }
}

/// A rebuild call found in the pickle.
struct Found {
    name: String,
    key: String,
    dtype: DType,
    offset: i64,
    size: Vec<i64>,
    stride: Vec<i64>,
}

fn global_name(v: &Value) -> Option<(&str, &str)> {
    match v {
        Value::Global(g) => Some((g.module.as_str(), g.name.as_str())),
        _ => None,
    }
}

/// The storage behind `Persistent(('storage', StorageType, key, location, numel))`.
fn storage(v: &Value) -> Option<(String, DType)> {
    let Value::Persistent(inner) = v else {
        return None;
    };
    let Value::Tuple(t) = inner.as_ref() else {
        return None;
    };
    if t.len() < 3 || text(&t[0]).as_deref() != Some("storage") {
        return None;
    }
    let (_, cls) = global_name(&t[1])?;
    Some((text(&t[2])?, storage_dtype(cls)?))
}

fn walk(v: &Value, name: &str, depth: usize, out: &mut Vec<Found>, max: usize) {
    if depth > 48 || out.len() >= max {
        return;
    }
    let child = |k: &Value| -> String {
        let k = text(k).unwrap_or_else(|| "?".into());
        if name.is_empty() {
            k
        } else {
            format!("{name}.{k}")
        }
    };
    match v {
        Value::Dict { items, .. } => {
            for (k, x) in items {
                walk(x, &child(k), depth + 1, out, max);
            }
        }
        Value::List { items, .. } | Value::Tuple(items) => {
            for (i, x) in items.iter().enumerate() {
                walk(x, &child(&Value::Int(i as i64)), depth + 1, out, max);
            }
        }
        Value::Call(c) => {
            let fname = global_name(&c.callable).map(|(_, n)| n).unwrap_or("");
            let args: &[Value] = match &c.args {
                Value::Tuple(a) => a,
                _ => &[],
            };
            match fname {
                "_rebuild_tensor" | "_rebuild_tensor_v2" | "_rebuild_tensor_v3"
                    if args.len() >= 4 =>
                {
                    if let (Some((key, sdt)), Some(offset), Some(size), Some(stride)) = (
                        storage(&args[0]),
                        int(&args[1]),
                        ints(&args[2]),
                        ints(&args[3]),
                    ) {
                        // v3 (untyped storage) names the dtype as a GLOBAL `torch.<dtype>`.
                        let dtype = if fname == "_rebuild_tensor_v3" {
                            args.get(6)
                                .and_then(global_name)
                                .and_then(|(_, n)| torch_dtype(n))
                                .unwrap_or(sdt)
                        } else {
                            sdt
                        };
                        out.push(Found {
                            name: name.to_string(),
                            key,
                            dtype,
                            offset,
                            size,
                            stride,
                        });
                    }
                }
                "_rebuild_parameter" | "_rebuild_parameter_with_state" if !args.is_empty() => {
                    walk(&args[0], name, depth + 1, out, max);
                }
                "_rebuild_from_type_v2" if args.len() >= 3 => {
                    walk(&args[2], name, depth + 1, out, max)
                }
                _ => {
                    // OrderedDict and other containers: entries arrive through SETITEM(S)/APPEND(S).
                    for (k, x) in &c.pairs {
                        walk(x, &child(k), depth + 1, out, max);
                    }
                    for (i, x) in c.items.iter().enumerate() {
                        walk(x, &child(&Value::Int(i as i64)), depth + 1, out, max);
                    }
                    if let Some(s) = &c.state {
                        walk(s, name, depth + 1, out, max);
                    }
                }
            }
        }
        _ => {}
    }
}

pub(crate) fn read(d: &[u8], limits: &Limits) -> Result<Parsed, String> {
    let members = zip::members(d, 1_000_000)?;
    let first = members.first().ok_or("torch zip: no members")?;
    let prefix = match first.name.find('/') {
        Some(i) => first.name[..=i].to_string(),
        None => String::new(),
    };
    let by_name: HashMap<&str, &zip::Member> =
        members.iter().rev().map(|m| (m.name.as_str(), m)).collect();
    // torch takes the first of duplicate names: iterate reversed so the first wins in the map.
    let pkl_m = by_name
        .get(format!("{prefix}data.pkl").as_str())
        .ok_or("torch zip: no data.pkl")?;
    let mut extra: Vec<Buf> = Vec::new();
    let pkl: Vec<u8> = match zip::data(d, pkl_m, limits.max_header)? {
        Data::Borrowed(b, _) => b.to_vec(),
        Data::Inflated(v) => v,
    };
    let big_endian = by_name
        .get(format!("{prefix}byteorder").as_str())
        .and_then(|m| match zip::data(d, m, 64).ok()? {
            Data::Borrowed(b, _) => Some(b.starts_with(b"big")),
            Data::Inflated(v) => Some(v.starts_with(b"big")),
        })
        .unwrap_or(false);
    let mut opts = pickle::Options::default();
    opts.limits.max_kept_bytes = 4096;
    let report = pickle::analyze_one(&pkl, 0, ReadMode::InMemory, &opts);
    let value = report
        .result
        .ok_or("torch zip: data.pkl did not produce a value")?;
    let mut found = Vec::new();
    walk(&value, "", 0, &mut found, limits.max_tensors);
    // storage key -> (buffer index, start, len)
    let mut storages: HashMap<String, (usize, usize, usize)> = HashMap::new();
    let mut tensors = Vec::new();
    for f in found {
        if !storages.contains_key(&f.key) {
            let m = by_name
                .get(format!("{prefix}data/{}", f.key).as_str())
                .ok_or_else(|| format!("torch zip: storage {} missing for {:?}", f.key, f.name))?;
            let loc = match zip::data(d, m, limits.max_inflated)? {
                Data::Borrowed(b, start) => (0, start, b.len()),
                Data::Inflated(v) => {
                    let len = v.len();
                    extra.push(Buf::Owned(v));
                    (extra.len(), 0, len)
                }
            };
            storages.insert(f.key.clone(), loc);
        }
        let (buf, base, base_len) = storages[&f.key];
        if f.size.len() != f.stride.len()
            || f.offset < 0
            || f.size.iter().chain(&f.stride).any(|&x| x < 0)
        {
            return bad(format!(
                "torch zip: {:?} has an invalid size/stride",
                f.name
            ));
        }
        let shape: Vec<usize> = f.size.iter().map(|&x| x as usize).collect();
        let numel =
            numel_checked(&shape, limits).map_err(|m| format!("torch zip: {:?}: {m}", f.name))?;
        let size = f.dtype.size().unwrap_or(1);
        let strides: Vec<usize> = f.stride.iter().map(|&x| x as usize).collect();
        let offset = f.offset as usize;
        // Highest element the view can touch must lie inside the storage.
        let mut hi = offset as u128;
        for (s, st) in shape.iter().zip(&strides) {
            hi += (s.saturating_sub(1) as u128) * (*st as u128);
        }
        if numel > 0 && (hi + 1) * size as u128 > base_len as u128 {
            return bad(format!(
                "torch zip: {:?} reaches past its storage {}",
                f.name, f.key
            ));
        }
        // C-contiguous views become a dense slice (the common case, and the fast path).
        let mut contiguous = true;
        let mut expect = 1usize;
        for (s, st) in shape.iter().zip(&strides).rev() {
            if *s > 1 && *st != expect {
                contiguous = false;
            }
            expect = expect.saturating_mul(*s);
        }
        let layout = if contiguous {
            Layout::Dense {
                buf,
                offset: base + offset * size,
                dtype: f.dtype,
                big_endian,
            }
        } else {
            Layout::Strided {
                buf,
                base,
                base_len,
                dtype: f.dtype,
                big_endian,
                offset,
                strides,
            }
        };
        tensors.push(Tensor {
            name: f.name,
            dtype: f.dtype,
            shape,
            quantized: false,
            layout,
        });
    }
    if tensors.is_empty() {
        return bad("torch zip: no tensors found in data.pkl");
    }
    Ok(Parsed {
        format: TensorFormat::TorchZip,
        tensors,
        metadata: Vec::new(),
        extra,
    })
}
