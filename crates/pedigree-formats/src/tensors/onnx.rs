//! ONNX initializers (FORMATS-FACTS §9), read with a minimal protobuf walker.
//!
//! `ModelProto.graph` (7) -> `GraphProto.initializer` (5) and `node` (1); `Constant` nodes'
//! tensor attributes count as initializers too. `DequantizeLinear(q, scale[, zero])` over integer
//! initializers is folded into one float tensor (named by the node's output) whose values are
//! `(q - zero) * scale`: an int8-quantized export then reads as the weights it stands for.
//! External data (`data_location` = 1) is resolved inside the model's directory only.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use super::{
    Buf, DType, Layout, Limits, Parsed, Tensor, TensorFormat, bad, dense_checked, numel_checked,
};

/// One protobuf field: number and payload.
enum F<'a> {
    Varint(u64),
    Fixed64(u64),
    Bytes(&'a [u8]),
    Fixed32(u32),
}

fn varint(d: &[u8], p: &mut usize) -> Result<u64, String> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let b = *d.get(*p).ok_or("onnx: truncated varint")?;
        *p += 1;
        v |= ((b & 0x7f) as u64) << shift;
        if b & 0x80 == 0 {
            return Ok(v);
        }
    }
    bad("onnx: varint too long")
}

/// Iterates the fields of a message; stops with an error on malformed input.
fn fields(d: &[u8]) -> Result<Vec<(u64, F<'_>)>, String> {
    let mut out = Vec::new();
    let mut p = 0;
    while p < d.len() {
        let key = varint(d, &mut p)?;
        let (num, wt) = (key >> 3, key & 7);
        let f = match wt {
            0 => F::Varint(varint(d, &mut p)?),
            1 => {
                let b = d.get(p..p + 8).ok_or("onnx: truncated fixed64")?;
                p += 8;
                F::Fixed64(u64::from_le_bytes(b.try_into().map_err(|_| "onnx")?))
            }
            2 => {
                let n = usize::try_from(varint(d, &mut p)?).map_err(|_| "onnx: length overflow")?;
                let b = d
                    .get(p..p.checked_add(n).ok_or("onnx: overflow")?)
                    .ok_or("onnx: field runs past its message")?;
                p += n;
                F::Bytes(b)
            }
            5 => {
                let b = d.get(p..p + 4).ok_or("onnx: truncated fixed32")?;
                p += 4;
                F::Fixed32(u32::from_le_bytes(b.try_into().map_err(|_| "onnx")?))
            }
            _ => return bad(format!("onnx: wire type {wt}")),
        };
        out.push((num, f));
    }
    Ok(out)
}

/// The protobuf framing of a ModelProto: ir_version (field 1, varint) first, a graph (7).
pub(crate) fn looks_like(d: &[u8]) -> bool {
    d.first() == Some(&0x08)
        && fields(d).is_ok_and(|fs| fs.iter().any(|(n, f)| *n == 7 && matches!(f, F::Bytes(_))))
}

fn onnx_dtype(t: u64) -> Option<DType> {
    Some(match t {
        1 => DType::F32,
        2 => DType::U8,
        3 => DType::I8,
        4 => DType::U16,
        5 => DType::I16,
        6 => DType::I32,
        7 => DType::I64,
        9 => DType::Bool,
        10 => DType::F16,
        11 => DType::F64,
        12 => DType::U32,
        13 => DType::U64,
        16 => DType::BF16,
        17 => DType::F8E4M3,
        19 => DType::F8E5M2,
        _ => return None,
    })
}

/// Packed or unpacked repeated varints.
fn push_varints(f: &F<'_>, out: &mut Vec<u64>, max: usize) -> Result<(), String> {
    match f {
        F::Varint(v) => out.push(*v),
        F::Bytes(b) => {
            let mut p = 0;
            while p < b.len() {
                if out.len() >= max {
                    return bad("onnx: more values than the shape holds");
                }
                out.push(varint(b, &mut p)?);
            }
        }
        _ => {}
    }
    Ok(())
}

struct Ctx<'a> {
    dir: Option<&'a Path>,
    limits: &'a Limits,
    extra: Vec<Buf>,
    file_len: usize,
}

fn tensor(
    d: &[u8],
    base: usize,
    name_override: Option<&str>,
    ctx: &mut Ctx<'_>,
) -> Result<Tensor, String> {
    let fs = fields(d)?;
    let mut dims: Vec<u64> = Vec::new();
    let mut dt = 0u64;
    let mut name = String::new();
    let mut raw: Option<&[u8]> = None;
    let mut location = 0u64;
    let mut ext: HashMap<String, String> = HashMap::new();
    for (n, f) in &fs {
        match (n, f) {
            (1, f) => push_varints(f, &mut dims, ctx.limits.max_rank + 1)?,
            (2, F::Varint(v)) => dt = *v,
            (8, F::Bytes(b)) => name = String::from_utf8_lossy(b).into_owned(),
            (9, F::Bytes(b)) => raw = Some(b),
            (14, F::Varint(v)) => location = *v,
            (13, F::Bytes(b)) => {
                let mut k = String::new();
                let mut v = String::new();
                for (n2, f2) in fields(b)? {
                    if let F::Bytes(s) = f2 {
                        if n2 == 1 {
                            k = String::from_utf8_lossy(s).into_owned();
                        } else if n2 == 2 {
                            v = String::from_utf8_lossy(s).into_owned();
                        }
                    }
                }
                ext.insert(k, v);
            }
            _ => {}
        }
    }
    if let Some(o) = name_override {
        name = o.to_string();
    }
    let dtype =
        onnx_dtype(dt).ok_or_else(|| format!("onnx: {name:?} has unsupported data_type {dt}"))?;
    let shape: Vec<usize> = dims
        .iter()
        .map(|&x| usize::try_from(x).map_err(|_| format!("onnx: {name:?} dim overflow")))
        .collect::<Result<_, _>>()?;
    let numel = numel_checked(&shape, ctx.limits).map_err(|m| format!("onnx: {name:?}: {m}"))?;
    let size = dtype.size().unwrap_or(1);
    let layout = if location == 1 {
        let loc = ext
            .get("location")
            .ok_or_else(|| format!("onnx: {name:?} external data without location"))?;
        let dir = ctx.dir.ok_or_else(|| {
            format!("onnx: {name:?} has external data and no directory to resolve it")
        })?;
        let rel = Path::new(loc);
        if rel.is_absolute()
            || rel
                .components()
                .any(|c| matches!(c, std::path::Component::ParentDir))
        {
            return bad(format!(
                "onnx: {name:?} external data path {loc:?} leaves the model directory"
            ));
        }
        let off: usize = ext
            .get("offset")
            .map(|s| s.parse().map_err(|_| "onnx: bad offset"))
            .transpose()?
            .unwrap_or(0);
        let bytes = std::fs::read(dir.join(rel))
            .map_err(|e| format!("onnx: {name:?} external data {loc:?}: {e}"))?;
        let len = bytes.len();
        ctx.extra.push(Buf::Owned(bytes));
        dense_checked(len, ctx.extra.len(), off, numel, dtype, false)
            .map_err(|m| format!("onnx: {name:?}: {m}"))?
    } else if let Some(r) = raw {
        if r.len() != numel * size {
            return bad(format!(
                "onnx: {name:?} raw_data has {} bytes for {numel} elements",
                r.len()
            ));
        }
        let off = r.as_ptr() as usize - base;
        dense_checked(ctx.file_len, 0, off, numel, dtype, false)?
    } else {
        // Typed fields: float_data (4, packed fixed32), int32_data (5, varints, also f16/bf16
        // bits and 8/16-bit ints), int64_data (7), double_data (10, fixed64), uint64_data (11).
        let mut vals: Vec<f32> = Vec::new();
        let mut ints: Vec<u64> = Vec::new();
        for (n, f) in &fs {
            match (n, f) {
                (4, F::Bytes(b)) => {
                    if vals.len() + b.len() / 4 > numel {
                        return bad(format!("onnx: {name:?} float_data longer than the shape"));
                    }
                    vals.extend(
                        b.chunks_exact(4)
                            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])),
                    );
                }
                (4, F::Fixed32(v)) if vals.len() < numel => vals.push(f32::from_bits(*v)),
                (10, F::Bytes(b)) => {
                    if vals.len() + b.len() / 8 > numel {
                        return bad(format!("onnx: {name:?} double_data longer than the shape"));
                    }
                    vals.extend(
                        b.chunks_exact(8)
                            .map(|c| f64::from_le_bytes(c.try_into().unwrap_or([0; 8])) as f32),
                    );
                }
                (10, F::Fixed64(v)) if vals.len() < numel => vals.push(f64::from_bits(*v) as f32),
                (5 | 7 | 11, f) => push_varints(f, &mut ints, numel)?,
                _ => {}
            }
        }
        if vals.is_empty() && !ints.is_empty() {
            vals = ints
                .iter()
                .map(|&v| match dtype {
                    DType::F16 => super::f16_to_f32(v as u16),
                    DType::BF16 => super::bf16_to_f32(v as u16),
                    DType::I64 | DType::I32 | DType::I16 | DType::I8 => v as i64 as f32,
                    _ => v as f32,
                })
                .collect();
        }
        if vals.len() != numel {
            return bad(format!(
                "onnx: {name:?} has {} values for {numel} elements",
                vals.len()
            ));
        }
        Layout::Values(Arc::new(vals))
    };
    Ok(Tensor {
        name,
        dtype,
        shape,
        quantized: false,
        layout,
    })
}

struct Node {
    op: String,
    inputs: Vec<String>,
    outputs: Vec<String>,
    axis: Option<i64>,
}

pub(crate) fn read(d: &[u8], dir: Option<&Path>, limits: &Limits) -> Result<Parsed, String> {
    let base = d.as_ptr() as usize;
    let mut ctx = Ctx {
        dir,
        limits,
        extra: Vec::new(),
        file_len: d.len(),
    };
    let top = fields(d)?;
    let mut metadata = Vec::new();
    let mut graph: Option<&[u8]> = None;
    for (n, f) in &top {
        match (n, f) {
            (2, F::Bytes(b)) => metadata.push((
                "producer_name".into(),
                String::from_utf8_lossy(b).into_owned(),
            )),
            (7, F::Bytes(b)) => graph = Some(b),
            _ => {}
        }
    }
    let graph = graph.ok_or("onnx: no graph")?;
    let mut tensors: Vec<Tensor> = Vec::new();
    let mut nodes = Vec::new();
    for (n, f) in fields(graph)? {
        let F::Bytes(b) = f else { continue };
        if tensors.len() >= limits.max_tensors {
            return bad("onnx: too many initializers");
        }
        match n {
            5 => tensors.push(tensor(b, base, None, &mut ctx)?),
            1 => {
                let mut node = Node {
                    op: String::new(),
                    inputs: vec![],
                    outputs: vec![],
                    axis: None,
                };
                let mut const_t: Option<&[u8]> = None;
                for (k, g) in fields(b)? {
                    let F::Bytes(s) = g else { continue };
                    match k {
                        1 => node.inputs.push(String::from_utf8_lossy(s).into_owned()),
                        2 => node.outputs.push(String::from_utf8_lossy(s).into_owned()),
                        4 => node.op = String::from_utf8_lossy(s).into_owned(),
                        5 => {
                            // AttributeProto: name 1, i 3, t 5
                            let af = fields(s)?;
                            let aname = af.iter().find_map(|(k, f)| match (k, f) {
                                (1, F::Bytes(x)) => Some(*x),
                                _ => None,
                            });
                            for (k2, f2) in &af {
                                match (k2, f2, aname) {
                                    (3, F::Varint(v), Some(b"axis")) => node.axis = Some(*v as i64),
                                    (5, F::Bytes(t), Some(b"value")) => const_t = Some(t),
                                    _ => {}
                                }
                            }
                        }
                        _ => {}
                    }
                }
                if node.op == "Constant"
                    && let (Some(t), Some(out)) = (const_t, node.outputs.first())
                {
                    tensors.push(tensor(t, base, Some(out), &mut ctx)?);
                }
                nodes.push(node);
            }
            _ => {}
        }
    }
    fold_dequantize(&mut tensors, &nodes, d, &ctx.extra);
    Ok(Parsed {
        format: TensorFormat::Onnx,
        tensors,
        metadata,
        extra: ctx.extra,
    })
}

/// Replaces `DequantizeLinear(q, scale[, zero])` inputs by one float tensor named by its output.
fn fold_dequantize(tensors: &mut Vec<Tensor>, nodes: &[Node], file: &[u8], extra: &[Buf]) {
    let mut consumed = std::collections::HashSet::new();
    let mut added = Vec::new();
    for n in nodes.iter().filter(|n| n.op == "DequantizeLinear") {
        let find = |nm: &str| tensors.iter().position(|t| t.name == nm);
        let (Some(qi), Some(si)) = (
            n.inputs.first().and_then(|x| find(x)),
            n.inputs.get(1).and_then(|x| find(x)),
        ) else {
            continue;
        };
        let q = &tensors[qi];
        if q.dtype.is_float() {
            continue;
        }
        let scale_vals = |t: &Tensor| -> Option<Vec<f32>> {
            match &t.layout {
                Layout::Values(v) => Some(v.to_vec()),
                _ => None,
            }
        };
        // Scales and zero points are tiny; read them through a throwaway decode.
        let read_small = |t: &Tensor| -> Option<Vec<f32>> {
            if t.numel() > 1 << 20 {
                return None;
            }
            scale_vals(t).or_else(|| small_dense(t, file, extra))
        };
        let Some(scale) = read_small(&tensors[si]) else {
            continue;
        };
        let zero = match n
            .inputs
            .get(2)
            .filter(|x| !x.is_empty())
            .and_then(|x| find(x))
        {
            Some(zi) => match read_small(&tensors[zi]) {
                Some(z) => z,
                None => continue,
            },
            None => vec![0.0; scale.len()],
        };
        let rank = q.shape.len() as i64;
        let axis = n.axis.unwrap_or(1);
        let axis = if axis < 0 { axis + rank } else { axis };
        if scale.is_empty() || zero.len() != scale.len() {
            continue;
        }
        if scale.len() > 1 && (axis < 0 || axis >= rank || q.shape[axis as usize] != scale.len()) {
            continue;
        }
        let Some(out) = n.outputs.first() else {
            continue;
        };
        added.push(Tensor {
            name: out.clone(),
            dtype: q.dtype,
            shape: q.shape.clone(),
            quantized: true,
            layout: Layout::Affine {
                inner: Box::new(q.layout.clone()),
                scale,
                zero,
                axis: axis.max(0) as usize,
            },
        });
        consumed.insert(qi);
        consumed.insert(si);
        if let Some(zi) = n.inputs.get(2).and_then(|x| find(x)) {
            consumed.insert(zi);
        }
    }
    let mut i = 0;
    tensors.retain(|_| {
        i += 1;
        !consumed.contains(&(i - 1))
    });
    tensors.extend(added);
}

/// Decodes a small dense tensor (scale, zero point) from the bytes it lives in.
fn small_dense(t: &Tensor, file: &[u8], extra: &[Buf]) -> Option<Vec<f32>> {
    let Layout::Dense {
        buf,
        offset,
        dtype,
        big_endian,
    } = t.layout
    else {
        return None;
    };
    let data = if buf == 0 {
        file
    } else {
        extra.get(buf - 1)?.bytes()
    };
    let n = t.numel();
    let b = data.get(offset..offset.checked_add(n.checked_mul(dtype.size()?)?)?)?;
    let mut out = vec![0f32; n];
    super::convert::decode_plain(dtype, big_endian, b, &mut out);
    Some(out)
}
