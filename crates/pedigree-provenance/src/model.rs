//! A model = a file, or a directory of weight files plus its card (`README.md`, `config.json`).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use pedigree_formats::tensors::{DType, TensorFile};

use crate::card::Card;

/// A model opened for reading: its weight files (lazy; values read per tensor) and card.
pub struct Model {
    pub name: String,
    pub path: PathBuf,
    pub files: Vec<TensorFile>,
    pub card: Card,
}

/// One weight tensor of a model: (file index, tensor index).
#[derive(Debug, Clone)]
pub struct TRef {
    pub file: usize,
    pub index: usize,
    pub name: String,
    pub dtype: DType,
    pub shape: Vec<usize>,
    pub quantized: bool,
}

/// File extensions read as weight files in a model directory.
pub const WEIGHT_EXT: [&str; 10] = [
    "safetensors",
    "pt",
    "pth",
    "bin",
    "ckpt",
    "gguf",
    "onnx",
    "npy",
    "npz",
    "model",
];

/// The model's name: the directory name, or the file name for a single file.
pub fn model_name(path: &Path) -> String {
    pedigree_sign::manifest::model_name(path)
}

impl Model {
    pub fn open(path: &Path) -> Result<Model> {
        let meta =
            std::fs::metadata(path).with_context(|| format!("{}: cannot stat", path.display()))?;
        let mut files = Vec::new();
        let card;
        if meta.is_dir() {
            let mut entries: Vec<PathBuf> = std::fs::read_dir(path)
                .with_context(|| format!("{}: cannot list", path.display()))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.is_file())
                .filter(|p| {
                    p.extension()
                        .and_then(|e| e.to_str())
                        .is_some_and(|e| WEIGHT_EXT.contains(&e.to_ascii_lowercase().as_str()))
                })
                .collect();
            entries.sort();
            for p in entries {
                // A directory may hold non-weight files with weight-like names: skip what no
                // reader recognises, but surface real read errors of recognised formats.
                match TensorFile::open(&p) {
                    Ok(f) => files.push(f),
                    Err(e) if e.message.starts_with("not a tensor file") => {}
                    Err(e) => return Err(e.into()),
                }
            }
            card = Card::read_dir(path);
        } else {
            files.push(TensorFile::open(path)?);
            card = Card::default();
        }
        if files.is_empty() {
            anyhow::bail!("{}: no weight files found", path.display());
        }
        Ok(Model {
            name: model_name(path),
            path: path.to_path_buf(),
            files,
            card,
        })
    }

    /// The weight tensors (float or dequantized; integer index / shape tensors are left out).
    pub fn weights(&self) -> Vec<TRef> {
        let mut out = Vec::new();
        for (fi, f) in self.files.iter().enumerate() {
            for (ti, t) in f.tensors.iter().enumerate() {
                if t.is_weight() && t.numel() > 0 {
                    let name = if self.files.len() > 1 {
                        format!("{}:{}", fi, t.name)
                    } else {
                        t.name.clone()
                    };
                    out.push(TRef {
                        file: fi,
                        index: ti,
                        name,
                        dtype: t.dtype,
                        shape: t.shape.clone(),
                        quantized: t.quantized,
                    });
                }
            }
        }
        out
    }

    pub fn values(&self, t: &TRef) -> Result<Vec<f32>> {
        Ok(self.files[t.file].values(t.index)?)
    }

    pub fn steps(&self, t: &TRef) -> Result<Option<Vec<f32>>> {
        Ok(self.files[t.file].quant_steps(t.index)?)
    }

    /// Serialization rank for orienting exact copies: training outputs before exports.
    pub fn format_rank(&self) -> u8 {
        use pedigree_formats::tensors::TensorFormat::*;
        match self.files[0].format {
            TorchZip | Safetensors | Npy | Npz => 0,
            Onnx => 1,
            Gguf => 2,
        }
    }
}
