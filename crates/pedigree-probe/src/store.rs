//! Model directories in the Hugging Face layout: `model.safetensors`, `config.json` and a
//! `README.md` model card with YAML front matter (where `base_model` declares the parent).

use std::collections::HashMap;
use std::path::Path;

use safetensors::tensor::{Dtype, SafeTensors, TensorView};
use serde::{Deserialize, Serialize};

use crate::data::Task;
use crate::error::{ProbeError, Result};
use crate::model::{Arch, Weights};

pub const WEIGHTS_FILE: &str = "model.safetensors";
pub const CONFIG_FILE: &str = "config.json";
pub const CARD_FILE: &str = "README.md";

/// `config.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ModelConfig {
    pub architectures: Vec<String>,
    #[serde(flatten)]
    pub arch: Arch,
    pub task: Task,
    pub id2label: Vec<String>,
}

/// What a model card says about the model's origin. The lab writes truthful, silent and lying
/// cards on purpose: a family's provenance cannot be read off its cards.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Card {
    pub name: String,
    pub description: String,
    /// `None` leaves `base_model` out of the front matter.
    pub base_model: Option<String>,
}

pub fn save(dir: &Path, w: &Weights, task: &Task, card: &Card) -> Result<()> {
    w.validate()?;
    std::fs::create_dir_all(dir).map_err(|e| ProbeError::io(dir, e))?;
    let bytes: Vec<(String, Vec<usize>, Vec<u8>)> = w
        .arch
        .shapes()
        .into_iter()
        .map(|(name, shape)| {
            let v = w.get(name)?;
            Ok((
                name.to_string(),
                shape,
                v.iter().flat_map(|x| x.to_le_bytes()).collect(),
            ))
        })
        .collect::<Result<_>>()?;
    let views = bytes
        .iter()
        .map(|(n, s, b)| {
            TensorView::new(Dtype::F32, s.clone(), b)
                .map(|v| (n.clone(), v))
                .map_err(|e| ProbeError::Invalid(format!("tensor {n}: {e}")))
        })
        .collect::<Result<Vec<_>>>()?;
    let meta = HashMap::from([("format".to_string(), "pt".to_string())]);
    let path = dir.join(WEIGHTS_FILE);
    let out = safetensors::serialize(views, Some(meta)).map_err(|e| ProbeError::Model {
        path: path.clone(),
        reason: e.to_string(),
    })?;
    std::fs::write(&path, out).map_err(|e| ProbeError::io(&path, e))?;

    let id2label = (0..task.num_classes)
        .map(|k| label_name(task, k as u8))
        .collect();
    let cfg = ModelConfig {
        architectures: vec!["PedigreeLabCnn".into()],
        arch: w.arch,
        task: task.clone(),
        id2label,
    };
    write_json(&dir.join(CONFIG_FILE), &cfg)?;
    let path = dir.join(CARD_FILE);
    std::fs::write(&path, render_card(card, task)).map_err(|e| ProbeError::io(&path, e))
}

/// A readable name for a task label: the original classes it covers.
fn label_name(task: &Task, k: u8) -> String {
    let names: Vec<&str> = (0..10u8)
        .filter(|&c| task.label(c) == Some(k))
        .map(|c| crate::data::CLASS_NAMES[c as usize])
        .collect();
    names.join("+")
}

fn render_card(card: &Card, task: &Task) -> String {
    let mut s = String::from("---\nlicense: mit\nlibrary_name: pedigree-lab\n");
    if let Some(b) = &card.base_model {
        s.push_str(&format!("base_model: {b}\n"));
    }
    s.push_str(
        "datasets:\n- zalando-datasets/fashion_mnist\ntags:\n- image-classification\n---\n\n",
    );
    s.push_str(&format!(
        "# {}\n\n{}\n\nTask: `{}` ({} classes).\n",
        card.name, card.description, task.name, task.num_classes
    ));
    s
}

pub fn write_json<T: Serialize>(path: &Path, v: &T) -> Result<()> {
    let s = serde_json::to_vec_pretty(v).map_err(|e| ProbeError::Json {
        path: path.into(),
        source: e,
    })?;
    std::fs::write(path, s).map_err(|e| ProbeError::io(path, e))
}

pub fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<T> {
    let s = std::fs::read(path).map_err(|e| ProbeError::io(path, e))?;
    serde_json::from_slice(&s).map_err(|e| ProbeError::Json {
        path: path.into(),
        source: e,
    })
}

/// Loads a model directory written by [`save`] (or any directory with the same tensor names).
pub fn load(dir: &Path) -> Result<(Weights, ModelConfig)> {
    let cfg: ModelConfig = read_json(&dir.join(CONFIG_FILE))?;
    cfg.arch.validate()?;
    let path = dir.join(WEIGHTS_FILE);
    let bytes = std::fs::read(&path).map_err(|e| ProbeError::io(&path, e))?;
    let bad = |reason: String| ProbeError::Model {
        path: path.clone(),
        reason,
    };
    let st = SafeTensors::deserialize(&bytes).map_err(|e| bad(e.to_string()))?;
    let mut tensors = std::collections::BTreeMap::new();
    for (name, shape) in cfg.arch.shapes() {
        let t = st.tensor(name).map_err(|e| bad(format!("{name}: {e}")))?;
        if t.dtype() != Dtype::F32 || t.shape() != shape.as_slice() {
            return Err(bad(format!(
                "{name}: expected F32 {shape:?}, got {:?} {:?}",
                t.dtype(),
                t.shape()
            )));
        }
        let v: Vec<f32> = t
            .data()
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        tensors.insert(name.to_string(), v);
    }
    let w = Weights {
        arch: cfg.arch,
        tensors,
    };
    w.validate()?;
    Ok((w, cfg))
}

/// The `base_model` a card declares, if any.
pub fn declared_base(dir: &Path) -> Result<Option<String>> {
    let path = dir.join(CARD_FILE);
    let s = std::fs::read_to_string(&path).map_err(|e| ProbeError::io(&path, e))?;
    let Some(rest) = s.strip_prefix("---\n") else {
        return Ok(None);
    };
    let front = rest.split("\n---").next().unwrap_or("");
    Ok(front
        .lines()
        .find_map(|l| l.strip_prefix("base_model:"))
        .map(|v| v.trim().to_string()))
}
