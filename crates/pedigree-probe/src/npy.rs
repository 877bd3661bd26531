//! Minimal `.npy` (format 1.0) writer, for exporting activations to numpy-based tools (ART).

use std::io::Write;
use std::path::Path;

use crate::error::{ProbeError, Result};

/// Writes a little-endian f32 array (`<f4`) of `shape`, C order.
pub fn write_f32(path: &Path, shape: &[usize], data: &[f32]) -> Result<()> {
    write(
        path,
        "<f4",
        shape,
        &data
            .iter()
            .flat_map(|x| x.to_le_bytes())
            .collect::<Vec<_>>(),
        data.len(),
    )
}

/// Writes an i64 array (`<i8`).
pub fn write_i64(path: &Path, shape: &[usize], data: &[i64]) -> Result<()> {
    write(
        path,
        "<i8",
        shape,
        &data
            .iter()
            .flat_map(|x| x.to_le_bytes())
            .collect::<Vec<_>>(),
        data.len(),
    )
}

fn write(path: &Path, descr: &str, shape: &[usize], body: &[u8], n: usize) -> Result<()> {
    if shape.iter().product::<usize>() != n {
        return Err(ProbeError::Invalid(format!(
            "shape {shape:?} does not hold {n} values"
        )));
    }
    let dims = match shape {
        [one] => format!("({one},)"),
        _ => format!(
            "({})",
            shape
                .iter()
                .map(|d| d.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    let mut header = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {dims}, }}");
    // Magic (6) + version (2) + header length (2) + header + '\n' must be a multiple of 64.
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut f = std::fs::File::create(path).map_err(|e| ProbeError::io(path, e))?;
    let len = header.len() as u16;
    let mut out = Vec::with_capacity(10 + header.len() + body.len());
    out.extend_from_slice(b"\x93NUMPY\x01\x00");
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(body);
    f.write_all(&out).map_err(|e| ProbeError::io(path, e))
}
