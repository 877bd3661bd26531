//! A uniform, read-only view of the tensors in a model file, whatever its serialization.
//!
//! Readers: safetensors, PyTorch zip checkpoints (tensor table read statically from `data.pkl`'s
//! rebuild calls with the pickle machine, bytes from the storages), GGUF (with dequantization of
//! the common ggml block types), ONNX initializers (with `DequantizeLinear` folded back into
//! float tensors), numpy `.npy` / `.npz`. Nothing is executed or imported.
//!
//! Every tensor is exposed as name, storage dtype, shape (outermost first, as numpy / torch say
//! it) and, on request, its values as canonical `f32`: one tensor at a time, so memory stays
//! bounded by the largest tensor (and [`Limits::max_elements`]), never by the file. Numbers read
//! from a file are checked against the bytes that are really there before anything is allocated:
//! a shape whose element count exceeds the data is an error, never an allocation.
//!
//! Errors are values ([`TensorError`]) naming the file and the problem; no reader panics
//! (`tests.rs` throws a few thousand fixed-seed mutated inputs at each).

use std::fmt;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Serialize;

mod convert;
mod gguf;
mod npy;
mod onnx;
mod safetensors;
mod torch;
mod zip;

#[cfg(test)]
mod tests;

pub use convert::{bf16_to_f32, f16_to_f32, f32_to_bf16, f32_to_f16, round_to_bf16, round_to_f16};

/// Which serialization the tensors came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum TensorFormat {
    Safetensors,
    TorchZip,
    Gguf,
    Onnx,
    Npy,
    Npz,
}

impl TensorFormat {
    pub fn label(self) -> &'static str {
        match self {
            TensorFormat::Safetensors => "safetensors",
            TensorFormat::TorchZip => "torch-zip",
            TensorFormat::Gguf => "gguf",
            TensorFormat::Onnx => "onnx",
            TensorFormat::Npy => "npy",
            TensorFormat::Npz => "npz",
        }
    }
}

/// Storage element type of a tensor (what the file holds, before conversion to `f32`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum DType {
    F64,
    F32,
    F16,
    BF16,
    F8E4M3,
    F8E5M2,
    I64,
    I32,
    I16,
    I8,
    U64,
    U32,
    U16,
    U8,
    Bool,
    /// ggml block types (GGUF), values reconstructed by dequantization.
    Q4_0,
    Q4_1,
    Q5_0,
    Q5_1,
    Q8_0,
    Q4K,
    Q5K,
    Q6K,
    Q8K,
}

impl DType {
    /// Bytes per element for plain (non-block) types.
    pub fn size(self) -> Option<usize> {
        use DType::*;
        Some(match self {
            F64 | I64 | U64 => 8,
            F32 | I32 | U32 => 4,
            F16 | BF16 | I16 | U16 => 2,
            F8E4M3 | F8E5M2 | I8 | U8 | Bool => 1,
            _ => return None,
        })
    }

    /// Floating-point types: the ones that hold trained weights (integer tensors are indices,
    /// shapes, counters -- unless a dequantization scale turns them into weights).
    pub fn is_float(self) -> bool {
        use DType::*;
        matches!(self, F64 | F32 | F16 | BF16 | F8E4M3 | F8E5M2) || self.is_block_quant()
    }

    /// ggml block-quantized types.
    pub fn is_block_quant(self) -> bool {
        use DType::*;
        matches!(
            self,
            Q4_0 | Q4_1 | Q5_0 | Q5_1 | Q8_0 | Q4K | Q5K | Q6K | Q8K
        )
    }

    /// Mantissa bits kept (precision rank, for orienting casts: more bits = closer to the source).
    pub fn precision_bits(self) -> u32 {
        use DType::*;
        match self {
            F64 => 52,
            F32 => 23,
            F16 => 10,
            BF16 => 7,
            F8E4M3 => 3,
            F8E5M2 => 2,
            Q8_0 | Q8K | I8 | U8 => 6,
            Q6K => 5,
            Q5_0 | Q5_1 | Q5K => 4,
            Q4_0 | Q4_1 | Q4K => 3,
            _ => 0,
        }
    }

    pub fn label(self) -> &'static str {
        use DType::*;
        match self {
            F64 => "F64",
            F32 => "F32",
            F16 => "F16",
            BF16 => "BF16",
            F8E4M3 => "F8_E4M3",
            F8E5M2 => "F8_E5M2",
            I64 => "I64",
            I32 => "I32",
            I16 => "I16",
            I8 => "I8",
            U64 => "U64",
            U32 => "U32",
            U16 => "U16",
            U8 => "U8",
            Bool => "BOOL",
            Q4_0 => "Q4_0",
            Q4_1 => "Q4_1",
            Q5_0 => "Q5_0",
            Q5_1 => "Q5_1",
            Q8_0 => "Q8_0",
            Q4K => "Q4_K",
            Q5K => "Q5_K",
            Q6K => "Q6_K",
            Q8K => "Q8_K",
        }
    }
}

/// Where a tensor's values live and how to turn them into `f32`.
#[derive(Debug, Clone)]
pub(crate) enum Layout {
    /// C-order elements at `buf[offset .. offset + numel * size]`.
    Dense {
        buf: usize,
        offset: usize,
        dtype: DType,
        big_endian: bool,
    },
    /// A strided view into a storage `buf[base .. base + base_len]` (torch), element offset and
    /// strides in elements. Checked at construction: every index the view can reach is inside.
    Strided {
        buf: usize,
        base: usize,
        base_len: usize,
        dtype: DType,
        big_endian: bool,
        offset: usize,
        strides: Vec<usize>,
    },
    /// ggml blocks at `buf[offset ..]`, `numel` a multiple of the block size.
    Ggml {
        buf: usize,
        offset: usize,
        dtype: DType,
    },
    /// Values already decoded (ONNX typed fields).
    Values(Arc<Vec<f32>>),
    /// `(q - zero) * scale` over an integer tensor (ONNX `DequantizeLinear`, int8 with a scale):
    /// `scale`/`zero` have one entry (per tensor) or `shape[axis]` entries (per axis).
    Affine {
        inner: Box<Layout>,
        scale: Vec<f32>,
        zero: Vec<f32>,
        axis: usize,
    },
}

/// One tensor of a model file.
#[derive(Debug, Clone)]
pub struct Tensor {
    /// Name as the file spells it (torch: dotted path of dict keys).
    pub name: String,
    /// Storage dtype (for `DequantizeLinear` results: the integer dtype of the quantized data).
    pub dtype: DType,
    /// Outermost first (numpy / torch order; GGUF's innermost-first dims are reversed here).
    pub shape: Vec<usize>,
    /// True when values are a dequantization (ggml blocks, int8 with a scale).
    pub quantized: bool,
    pub(crate) layout: Layout,
}

impl Tensor {
    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }

    /// Whether the tensor holds real-valued weights (float, block-quantized, or dequantized).
    pub fn is_weight(&self) -> bool {
        self.dtype.is_float() || self.quantized
    }
}

/// Read limits. Every one holds whatever the file says.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Tensors per file.
    pub max_tensors: usize,
    /// Elements of one tensor (its `f32` values are materialized one tensor at a time).
    pub max_elements: usize,
    /// Dimensions of one tensor.
    pub max_rank: usize,
    /// Header / metadata bytes (safetensors JSON, GGUF key-values, pickle).
    pub max_header: usize,
    /// Largest compressed member inflated into memory (npz, deflated torch zips).
    pub max_inflated: usize,
    /// Files up to this size are read into memory; larger ones are memory-mapped.
    pub max_in_memory: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_tensors: 1_000_000,
            max_elements: 1 << 32,
            max_rank: 16,
            max_header: 100_000_000,
            max_inflated: 4 << 30,
            max_in_memory: 16 << 20,
        }
    }
}

/// Why a file's tensors could not be read.
#[derive(Debug, Clone)]
pub struct TensorError {
    pub path: String,
    pub message: String,
}

impl fmt::Display for TensorError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

impl std::error::Error for TensorError {}

/// Error constructor used by the readers: the path is filled in by [`TensorFile`].
pub(crate) fn bad<T>(msg: impl Into<String>) -> Result<T, String> {
    Err(msg.into())
}

pub(crate) enum Buf {
    Owned(Vec<u8>),
    Map(memmap2::Mmap),
}

impl Buf {
    pub(crate) fn bytes(&self) -> &[u8] {
        match self {
            Buf::Owned(v) => v,
            Buf::Map(m) => m,
        }
    }
}

/// The tensors of one file, with the bytes they live in.
pub struct TensorFile {
    pub path: String,
    pub format: TensorFormat,
    pub tensors: Vec<Tensor>,
    /// Free-form metadata (safetensors `__metadata__`, GGUF string keys, ONNX producer).
    pub metadata: Vec<(String, String)>,
    pub(crate) bufs: Vec<Buf>,
    pub(crate) limits: Limits,
}

impl fmt::Debug for TensorFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TensorFile")
            .field("path", &self.path)
            .field("format", &self.format)
            .field("tensors", &self.tensors.len())
            .finish()
    }
}

/// What the readers return before the path is attached.
pub(crate) struct Parsed {
    pub format: TensorFormat,
    pub tensors: Vec<Tensor>,
    pub metadata: Vec<(String, String)>,
    /// Extra buffers (inflated members, external data); buffer 0 is the file itself.
    pub extra: Vec<Buf>,
}

/// Sniffs the format of `data` by content.
pub fn sniff(data: &[u8]) -> Option<TensorFormat> {
    if data.starts_with(b"GGUF") {
        return Some(TensorFormat::Gguf);
    }
    if data.starts_with(b"\x93NUMPY") {
        return Some(TensorFormat::Npy);
    }
    if data.starts_with(b"PK\x03\x04") || data.starts_with(b"PK\x05\x06") {
        return Some(if zip::looks_like_torch(data) {
            TensorFormat::TorchZip
        } else {
            TensorFormat::Npz
        });
    }
    if safetensors::looks_like(data) {
        return Some(TensorFormat::Safetensors);
    }
    if onnx::looks_like(data) {
        return Some(TensorFormat::Onnx);
    }
    None
}

fn parse(data: &[u8], dir: Option<&Path>, limits: &Limits) -> Result<Parsed, String> {
    match sniff(data) {
        Some(TensorFormat::Gguf) => gguf::read(data, limits),
        Some(TensorFormat::Npy) => npy::read_npy(data, limits),
        Some(TensorFormat::TorchZip) => torch::read(data, limits),
        Some(TensorFormat::Npz) => npy::read_npz(data, limits),
        Some(TensorFormat::Safetensors) => safetensors::read(data, limits),
        Some(TensorFormat::Onnx) => onnx::read(data, dir, limits),
        None => bad(
            "not a tensor file this reader knows (safetensors, torch zip, GGUF, ONNX, npy, npz)",
        ),
    }
}

impl TensorFile {
    /// Opens a file: read into memory when small, memory-mapped otherwise (only the tensors that
    /// are asked for are then paged in).
    pub fn open(path: &Path) -> Result<TensorFile, TensorError> {
        Self::open_with(path, &Limits::default())
    }

    pub fn open_with(path: &Path, limits: &Limits) -> Result<TensorFile, TensorError> {
        let err = |m: String| TensorError {
            path: path.display().to_string(),
            message: m,
        };
        let file = File::open(path).map_err(|e| err(format!("cannot open: {e}")))?;
        let meta = file
            .metadata()
            .map_err(|e| err(format!("cannot stat: {e}")))?;
        if !meta.is_file() {
            return Err(err("not a regular file".into()));
        }
        let buf = if meta.len() <= limits.max_in_memory {
            use std::io::Read;
            let mut v = Vec::with_capacity(meta.len() as usize);
            (&file)
                .take(limits.max_in_memory)
                .read_to_end(&mut v)
                .map_err(|e| err(format!("cannot read: {e}")))?;
            Buf::Owned(v)
        } else {
            // SAFETY: read-only map of a file at rest; a concurrent truncation would SIGBUS, the
            // accepted hazard of mapping (reading multi-GB checkpoints whole is worse).
            Buf::Map(
                unsafe { memmap2::Mmap::map(&file) }
                    .map_err(|e| err(format!("cannot map: {e}")))?,
            )
        };
        let dir: Option<PathBuf> = path.parent().map(|p| p.to_path_buf());
        let parsed = parse(buf.bytes(), dir.as_deref(), limits).map_err(err)?;
        Ok(Self::assemble(
            path.display().to_string(),
            buf,
            parsed,
            limits,
        ))
    }

    /// Reads bytes already in memory (archive members, fuzzing). ONNX external data is refused
    /// (there is no directory to resolve it against).
    pub fn from_bytes(name: &str, data: Vec<u8>) -> Result<TensorFile, TensorError> {
        let limits = Limits::default();
        let parsed = parse(&data, None, &limits).map_err(|m| TensorError {
            path: name.to_string(),
            message: m,
        })?;
        Ok(Self::assemble(
            name.to_string(),
            Buf::Owned(data),
            parsed,
            &limits,
        ))
    }

    fn assemble(path: String, buf: Buf, p: Parsed, limits: &Limits) -> TensorFile {
        let mut bufs = vec![buf];
        bufs.extend(p.extra);
        TensorFile {
            path,
            format: p.format,
            tensors: p.tensors,
            metadata: p.metadata,
            bufs,
            limits: limits.clone(),
        }
    }

    fn err(&self, t: &Tensor, m: impl fmt::Display) -> TensorError {
        TensorError {
            path: self.path.clone(),
            message: format!("tensor {:?}: {m}", t.name),
        }
    }

    /// The values of tensor `i` as `f32`, C order.
    pub fn values(&self, i: usize) -> Result<Vec<f32>, TensorError> {
        let t = self.tensors.get(i).ok_or_else(|| TensorError {
            path: self.path.clone(),
            message: format!("no tensor #{i}"),
        })?;
        let n = t.numel();
        if n > self.limits.max_elements {
            return Err(self.err(
                t,
                format!("{n} elements exceed the limit {}", self.limits.max_elements),
            ));
        }
        let mut out = vec![0f32; n];
        self.decode(&t.layout, &t.shape, &mut out)
            .map_err(|m| self.err(t, m))?;
        Ok(out)
    }

    /// For quantized tensors, the quantization step of every element (the value one integer
    /// level is worth); `None` for plain tensors.
    pub fn quant_steps(&self, i: usize) -> Result<Option<Vec<f32>>, TensorError> {
        let Some(t) = self.tensors.get(i) else {
            return Ok(None);
        };
        let n = t.numel();
        match &t.layout {
            Layout::Ggml { buf, offset, dtype } => {
                let mut out = vec![0f32; n];
                let d = self.bufs[*buf].bytes();
                convert::ggml_steps(*dtype, d.get(*offset..).unwrap_or(&[]), &mut out)
                    .map_err(|m| self.err(t, m))?;
                Ok(Some(out))
            }
            Layout::Affine { scale, axis, .. } => {
                let mut out = vec![0f32; n];
                affine_index(&t.shape, *axis, scale.len(), |i, k| out[i] = scale[k].abs());
                Ok(Some(out))
            }
            _ => Ok(None),
        }
    }

    /// The bytes of the file itself as they were read (in memory or mapped): one read pass can
    /// feed a whole-file digest (the OMS identity) and the per-tensor digests.
    pub fn file_bytes(&self) -> &[u8] {
        self.bufs[0].bytes()
    }

    /// Whether the file's bytes are memory-mapped (large files) rather than read into memory.
    pub fn is_mapped(&self) -> bool {
        matches!(self.bufs[0], Buf::Map(_))
    }

    /// Zero-copy bytes of a dense little-endian `f32` tensor (the hashing fast path).
    pub fn f32_le_bytes(&self, i: usize) -> Option<&[u8]> {
        let t = self.tensors.get(i)?;
        if let Layout::Dense {
            buf,
            offset,
            dtype: DType::F32,
            big_endian: false,
        } = t.layout
        {
            let len = t.numel().checked_mul(4)?;
            return self.bufs[buf].bytes().get(offset..offset.checked_add(len)?);
        }
        None
    }

    fn decode(&self, layout: &Layout, shape: &[usize], out: &mut [f32]) -> Result<(), String> {
        let n = out.len();
        match layout {
            Layout::Dense {
                buf,
                offset,
                dtype,
                big_endian,
            } => {
                let size = dtype.size().ok_or("not a plain dtype")?;
                let len = n.checked_mul(size).ok_or("size overflow")?;
                let d = self.bufs[*buf]
                    .bytes()
                    .get(*offset..offset.checked_add(len).ok_or("overflow")?)
                    .ok_or("data outside the file")?;
                convert::decode_plain(*dtype, *big_endian, d, out);
                Ok(())
            }
            Layout::Strided {
                buf,
                base,
                base_len,
                dtype,
                big_endian,
                offset,
                strides,
            } => {
                let size = dtype.size().ok_or("not a plain dtype")?;
                let d = self.bufs[*buf]
                    .bytes()
                    .get(*base..base.checked_add(*base_len).ok_or("overflow")?)
                    .ok_or("storage outside the file")?;
                let mut idx = vec![0usize; shape.len()];
                for o in out.iter_mut() {
                    let mut e = *offset;
                    for (k, s) in idx.iter().zip(strides) {
                        e += k * s;
                    }
                    let at = e * size;
                    let b = d
                        .get(at..at + size)
                        .ok_or("strided index outside its storage")?;
                    let mut one = [0f32; 1];
                    convert::decode_plain(*dtype, *big_endian, b, &mut one);
                    *o = one[0];
                    // odometer increment, innermost fastest
                    for ax in (0..shape.len()).rev() {
                        idx[ax] += 1;
                        if idx[ax] < shape[ax] {
                            break;
                        }
                        idx[ax] = 0;
                    }
                }
                Ok(())
            }
            Layout::Ggml { buf, offset, dtype } => {
                let d = self.bufs[*buf]
                    .bytes()
                    .get(*offset..)
                    .ok_or("data outside the file")?;
                convert::dequantize(*dtype, d, out)
            }
            Layout::Values(v) => {
                if v.len() != n {
                    return bad("value count does not match the shape");
                }
                out.copy_from_slice(v);
                Ok(())
            }
            Layout::Affine {
                inner,
                scale,
                zero,
                axis,
            } => {
                self.decode(inner, shape, out)?;
                if scale.is_empty() || scale.len() != zero.len() {
                    return bad("scale and zero point disagree");
                }
                affine_index(shape, *axis, scale.len(), |i, k| {
                    out[i] = (out[i] - zero[k]) * scale[k]
                });
                Ok(())
            }
        }
    }
}

/// Calls `f(element, k)` with `k` the index into a per-tensor (len 1) or per-axis parameter.
fn affine_index(shape: &[usize], axis: usize, plen: usize, mut f: impl FnMut(usize, usize)) {
    let n: usize = shape.iter().product();
    if plen <= 1 || axis >= shape.len() {
        for i in 0..n {
            f(i, 0);
        }
        return;
    }
    let inner: usize = shape[axis + 1..].iter().product();
    let dim = shape[axis];
    for i in 0..n {
        f(i, ((i / inner.max(1)) % dim.max(1)).min(plen - 1));
    }
}

/// Checked product of a shape against a limit.
pub(crate) fn numel_checked(shape: &[usize], limits: &Limits) -> Result<usize, String> {
    if shape.len() > limits.max_rank {
        return bad(format!(
            "rank {} over the limit {}",
            shape.len(),
            limits.max_rank
        ));
    }
    let mut n: usize = 1;
    for &d in shape {
        n = n.checked_mul(d).ok_or("element count overflows")?;
    }
    if n > limits.max_elements {
        return bad(format!(
            "{n} elements over the limit {}",
            limits.max_elements
        ));
    }
    Ok(n)
}

/// Dense layout of `numel` elements at `offset`, checked to lie inside `data`.
pub(crate) fn dense_checked(
    data_len: usize,
    buf: usize,
    offset: usize,
    numel: usize,
    dtype: DType,
    big_endian: bool,
) -> Result<Layout, String> {
    let size = dtype.size().ok_or("not a plain dtype")?;
    let end = numel
        .checked_mul(size)
        .and_then(|l| l.checked_add(offset))
        .ok_or("size overflow")?;
    if end > data_len {
        return bad(format!(
            "tensor data [{offset}, {end}) runs past the data ({data_len} bytes)"
        ));
    }
    Ok(Layout::Dense {
        buf,
        offset,
        dtype,
        big_endian,
    })
}
