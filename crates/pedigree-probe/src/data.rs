//! Fashion-MNIST in IDX format (gzipped or raw), and the relabelled "tasks" that descendants of
//! a base model are trained on.

use std::io::Read;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{ProbeError, Result};

pub const SIDE: usize = 28;
pub const PIXELS: usize = SIDE * SIDE;
/// Where Debian's `dataset-fashion-mnist` puts the files.
pub const DEBIAN_DIR: &str = "/usr/share/datasets/fashion-mnist";
pub const CLASS_NAMES: [&str; 10] = [
    "t-shirt",
    "trouser",
    "pullover",
    "dress",
    "coat",
    "sandal",
    "shirt",
    "sneaker",
    "bag",
    "ankle-boot",
];

/// Images as f32 in [0, 1], row-major `n × 784`, with one label each.
#[derive(Debug, Clone, Default)]
pub struct Dataset {
    pub images: Vec<f32>,
    pub labels: Vec<u8>,
}

impl Dataset {
    pub fn len(&self) -> usize {
        self.labels.len()
    }
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }
    pub fn image(&self, i: usize) -> &[f32] {
        &self.images[i * PIXELS..(i + 1) * PIXELS]
    }
    pub fn image_mut(&mut self, i: usize) -> &mut [f32] {
        &mut self.images[i * PIXELS..(i + 1) * PIXELS]
    }
    pub fn push(&mut self, image: &[f32], label: u8) {
        self.images.extend_from_slice(image);
        self.labels.push(label);
    }
    /// The samples at `idx`, in that order.
    pub fn select(&self, idx: &[usize]) -> Dataset {
        let mut out = Dataset::default();
        out.images.reserve(idx.len() * PIXELS);
        for &i in idx {
            out.push(self.image(i), self.labels[i]);
        }
        out
    }
    /// The first `n` samples (all of them when `n` is larger).
    pub fn take(&self, n: usize) -> Dataset {
        let idx: Vec<usize> = (0..n.min(self.len())).collect();
        self.select(&idx)
    }
}

/// The train and test splits.
#[derive(Debug, Clone)]
pub struct FashionMnist {
    pub train: Dataset,
    pub test: Dataset,
}

impl FashionMnist {
    /// Reads `{train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz]` from `dir`.
    pub fn load(dir: &Path) -> Result<Self> {
        Ok(Self {
            train: load_split(dir, "train")?,
            test: load_split(dir, "t10k")?,
        })
    }
}

fn load_split(dir: &Path, split: &str) -> Result<Dataset> {
    let images = read_idx(&find(dir, &format!("{split}-images-idx3-ubyte"))?)?;
    let labels = read_idx(&find(dir, &format!("{split}-labels-idx1-ubyte"))?)?;
    if images.dims.len() != 3 || images.dims[1] != SIDE || images.dims[2] != SIDE {
        return Err(ProbeError::Idx {
            path: dir.join(split),
            reason: format!("expected n×28×28 images, got {:?}", images.dims),
        });
    }
    if labels.dims.len() != 1 || labels.dims[0] != images.dims[0] {
        return Err(ProbeError::Idx {
            path: dir.join(split),
            reason: "label count differs from image count".into(),
        });
    }
    if let Some(bad) = labels.bytes.iter().find(|&&l| l > 9) {
        return Err(ProbeError::Idx {
            path: dir.join(split),
            reason: format!("label {bad} > 9"),
        });
    }
    Ok(Dataset {
        images: images.bytes.iter().map(|&b| b as f32 / 255.0).collect(),
        labels: labels.bytes,
    })
}

fn find(dir: &Path, stem: &str) -> Result<PathBuf> {
    for name in [format!("{stem}.gz"), stem.to_string()] {
        let p = dir.join(name);
        if p.is_file() {
            return Ok(p);
        }
    }
    Err(ProbeError::io(
        dir.join(stem),
        std::io::Error::new(
            std::io::ErrorKind::NotFound,
            "IDX file not found (.gz or raw)",
        ),
    ))
}

/// An unsigned-byte IDX array.
pub struct Idx {
    pub dims: Vec<usize>,
    pub bytes: Vec<u8>,
}

/// Parses an IDX file holding unsigned bytes (type 0x08); gzip is detected by its magic.
pub fn read_idx(path: &Path) -> Result<Idx> {
    let raw = std::fs::read(path).map_err(|e| ProbeError::io(path, e))?;
    let data = if raw.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(&raw[..])
            .read_to_end(&mut out)
            .map_err(|e| ProbeError::io(path, e))?;
        out
    } else {
        raw
    };
    parse_idx(&data).map_err(|reason| ProbeError::Idx {
        path: path.into(),
        reason,
    })
}

/// The IDX parser proper, separate so that it can be tested and fuzzed on bytes.
pub fn parse_idx(data: &[u8]) -> std::result::Result<Idx, String> {
    if data.len() < 4 || data[0] != 0 || data[1] != 0 {
        return Err("bad magic".into());
    }
    if data[2] != 0x08 {
        return Err(format!(
            "element type {:#04x} is not unsigned byte",
            data[2]
        ));
    }
    let ndim = data[3] as usize;
    if ndim == 0 || ndim > 4 {
        return Err(format!("{ndim} dimensions"));
    }
    let head = 4 + 4 * ndim;
    if data.len() < head {
        return Err("truncated header".into());
    }
    let dims: Vec<usize> = (0..ndim)
        .map(|i| {
            let b = &data[4 + 4 * i..8 + 4 * i];
            u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize
        })
        .collect();
    let total = dims
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .ok_or("size overflow")?;
    let body = &data[head..];
    if body.len() != total {
        return Err(format!(
            "body has {} bytes, dimensions say {total}",
            body.len()
        ));
    }
    Ok(Idx {
        dims,
        bytes: body.to_vec(),
    })
}

/// A downstream task: which original classes it keeps and what each becomes.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Task {
    pub name: String,
    /// `map[original] = Some(new label)`, or `None` when the task drops that class.
    pub map: Vec<Option<u8>>,
    pub num_classes: usize,
}

impl Task {
    pub fn identity() -> Self {
        Self {
            name: "fashion-10".into(),
            map: (0..10).map(Some).collect(),
            num_classes: 10,
        }
    }

    /// Builds a task from groups of original classes; group `k` becomes label `k`.
    pub fn grouped(name: &str, groups: &[&[u8]]) -> Self {
        let mut map = vec![None; 10];
        for (k, g) in groups.iter().enumerate() {
            for &c in *g {
                if (c as usize) < 10 {
                    map[c as usize] = Some(k as u8);
                }
            }
        }
        Self {
            name: name.into(),
            map,
            num_classes: groups.len(),
        }
    }

    pub fn label(&self, original: u8) -> Option<u8> {
        self.map.get(original as usize).copied().flatten()
    }

    /// The dataset restricted to this task's classes, relabelled.
    pub fn apply(&self, d: &Dataset) -> Dataset {
        let mut out = Dataset::default();
        for i in 0..d.len() {
            if let Some(l) = self.label(d.labels[i]) {
                out.push(d.image(i), l);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idx_rejects_garbage() {
        assert!(parse_idx(&[]).is_err());
        assert!(parse_idx(&[0, 0, 8, 1, 0, 0, 0, 3, 1, 2]).is_err());
        assert!(parse_idx(&[0, 0, 9, 1, 0, 0, 0, 1, 1]).is_err());
        assert!(parse_idx(&[0, 0, 8, 2, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]).is_err());
        let ok = parse_idx(&[0, 0, 8, 1, 0, 0, 0, 2, 7, 9]).unwrap();
        assert_eq!(ok.dims, vec![2]);
        assert_eq!(ok.bytes, vec![7, 9]);
    }

    #[test]
    fn grouped_task_relabels_and_drops() {
        let t = Task::grouped("t", &[&[0, 2], &[8]]);
        assert_eq!(t.label(2), Some(0));
        assert_eq!(t.label(8), Some(1));
        assert_eq!(t.label(5), None);
        let mut d = Dataset::default();
        d.push(&[0.0; PIXELS], 5);
        d.push(&[0.0; PIXELS], 8);
        let a = t.apply(&d);
        assert_eq!(a.labels, vec![1]);
    }
}
