//! The model formats beyond pickle, as one typed view per reader, and the dispatch the container
//! walker calls for bytes it does not recognise itself.
//!
//! * [`read_unknown`]: bytes the container sniffer calls `Unknown` (a file, or an archive member)
//!   are tried as GGUF, HDF5 (legacy Keras), safetensors, ONNX, TensorFlow protobuf (by name:
//!   protobuf has no magic) and JSON (Keras configs, Hugging Face configs with `auto_map` or chat
//!   templates). Content decides; names are only used where the content has no signature.
//! * [`refine`]: a zip whose `config.json` is a Keras model config is a `.keras` archive.
//! * [`attach_path_views`]: what needs the file system around a file: the Python modules a
//!   Hugging Face `auto_map` names, and ONNX external data that resolves through symlinks.

use std::path::Path;

use serde::Serialize;

use crate::container::{Artifact, Format};
use crate::{gguf, hdf5, hf_repo, keras, onnx, safetensors, tensorflow};

/// One reader's view of an artifact.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "view", rename_all = "kebab-case")]
pub enum FormatView {
    Safetensors(safetensors::SafetensorsView),
    Gguf(gguf::GgufView),
    Onnx(onnx::OnnxView),
    Keras(keras::KerasView),
    TensorFlow(tensorflow::TfView),
    HfConfig(hf_repo::HfConfigView),
}

/// Largest JSON document parsed as a config.
const MAX_JSON: usize = 64 << 20;

fn base_name(loc: &[String]) -> &str {
    let last = loc.last().map(String::as_str).unwrap_or("");
    last.rsplit(['/', '\\']).next().unwrap_or(last)
}

fn ext_of(name: &str) -> Option<String> {
    Path::new(name)
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
}

/// Reads bytes the container sniffer did not recognise as one of our formats; `None` when they
/// are none of them either.
pub fn read_unknown(loc: Vec<String>, data: &[u8]) -> Option<Artifact> {
    let name = base_name(&loc).to_string();
    let size = data.len() as u64;
    if gguf::looks_like(data) {
        let mut a = Artifact::new(loc, Format::Gguf, size);
        a.views.push(FormatView::Gguf(gguf::read(data)));
        return Some(a);
    }
    if hdf5::looks_like(data) {
        let mut a = Artifact::new(loc, Format::Hdf5, size);
        if let Some(k) = keras::read_h5(data) {
            a.views.push(FormatView::Keras(k));
        }
        return Some(a);
    }
    if safetensors::looks_like(data) {
        let mut a = Artifact::new(loc, Format::Safetensors, size);
        a.views
            .push(FormatView::Safetensors(safetensors::read(data)));
        return Some(a);
    }
    let ext = ext_of(&name);
    if ext.as_deref() == Some("pb") {
        let v = tensorflow::read(&name, data);
        if v.error.is_none() {
            let mut a = Artifact::new(loc, Format::TensorFlow, size);
            if v.kind == tensorflow::Kind::KerasMetadata {
                a.views.push(FormatView::Keras(keras::read_saved_metadata(
                    &v.keras_metadata,
                )));
            }
            a.views.push(FormatView::TensorFlow(v));
            return Some(a);
        }
    }
    // ONNX has no magic: a ModelProto starts with field 1 (ir_version) as a varint. Decode once,
    // and keep it when the name says ONNX or the content is plainly a model.
    if ext.as_deref() == Some("onnx") || data.first() == Some(&0x08) {
        let v = onnx::read(data);
        let plausible = (1..=64).contains(&v.ir_version)
            && v.nodes > 0
            && v.issues
                .iter()
                .all(|i| i.kind != onnx::IssueKind::Malformed);
        if plausible || ext.as_deref() == Some("onnx") {
            let mut a = Artifact::new(loc, Format::Onnx, size);
            a.views.push(FormatView::Onnx(v));
            return Some(a);
        }
    }
    let first = data
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .map(|i| data[i]);
    if first == Some(b'{') && data.len() <= MAX_JSON {
        // JSON stays `Unknown` as a format; what we judge in it is carried as views.
        if let Ok(v) = serde_json::from_slice::<serde_json::Value>(data) {
            let mut a = Artifact::new(loc, Format::Unknown, size);
            if keras::is_keras_config(&v) {
                let text = String::from_utf8_lossy(data);
                a.views.push(FormatView::Keras(keras::read_config(
                    &text,
                    keras::Source::KerasV3Config,
                )));
            }
            if let Some(h) = hf_repo::read_config_json(&name, data) {
                a.views.push(FormatView::HfConfig(h));
            }
            if !a.views.is_empty() {
                return Some(a);
            }
        }
    }
    None
}

/// Whether a member whose first bytes are `prefix` (and that the container sniffer does not
/// recognise) must be read whole because one of our readers wants it.
pub fn wants_whole(prefix: &[u8]) -> bool {
    if gguf::looks_like(prefix) || prefix.starts_with(hdf5::SIGNATURE) {
        return true;
    }
    if prefix.len() >= 10 {
        let n = u64::from_le_bytes(prefix[..8].try_into().unwrap_or([0; 8]));
        if n >= 2
            && n <= safetensors::MAX_HEADER_SIZE
            && prefix[8..].iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{')
        {
            return true;
        }
    }
    // JSON configs, and protobuf (ONNX and SavedModel start with field 1 as a varint, GraphDef
    // with field 1 as a message).
    matches!(prefix.iter().find(|b| !b.is_ascii_whitespace()), Some(b'{'))
        || matches!(prefix.first(), Some(0x08 | 0x0a))
}

/// Refines a container after its members were read: a zip holding a Keras `config.json` is a
/// `.keras` model.
pub fn refine(a: &mut Artifact) {
    if a.format == Format::Zip
        && a.children.iter().any(|c| {
            base_name(&c.location) == "config.json"
                && c.views.iter().any(|v| matches!(v, FormatView::Keras(_)))
        })
    {
        a.format = Format::Keras;
    }
}

/// What needs the file system around `path` (call after reading it, before the extension check).
pub fn attach_path_views(path: &Path, a: &mut Artifact, data: Option<&[u8]>) {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    // A name that promises safetensors or ONNX but content we could not recognise: read it as
    // that format anyway, so that the reason (a header length past the file, a broken protobuf)
    // is reported rather than only "not what the name says".
    if a.format == Format::Unknown {
        if let Some(d) = data {
            match ext_of(&path.display().to_string()).as_deref() {
                Some("safetensors") => {
                    a.format = Format::Safetensors;
                    a.views.push(FormatView::Safetensors(safetensors::read(d)));
                }
                Some("onnx") => {
                    a.format = Format::Onnx;
                    a.views.push(FormatView::Onnx(onnx::read(d)));
                }
                _ => {}
            }
        }
    }
    for v in &mut a.views {
        if let FormatView::Onnx(o) = v {
            for message in onnx::check_external_on_disk(o, dir) {
                o.issues.push(onnx::Issue {
                    kind: onnx::IssueKind::ExternalDataEscape,
                    message,
                });
            }
        }
    }
    if hf_repo::is_config_name(path) {
        if let Some(d) = data {
            if let Some(h) = hf_repo::read_config_path(path, d) {
                a.views.retain(|v| !matches!(v, FormatView::HfConfig(_)));
                a.views.push(FormatView::HfConfig(h));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_inputs_never_panic() {
        let g = crate::gguf::tests::build(&[("tokenizer.chat_template", "{{ x }}")], 1);
        for (name, base) in [
            ("m.gguf", g),
            ("m.onnx", vec![8, 1, 0x3a, 0]),
            ("c.json", br#"{"auto_map":{"A":"m.B"}}"#.to_vec()),
        ] {
            crate::fuzz_util::mutate_many(&base, 1000, 0x11, |d| {
                let _ = read_unknown(vec![name.to_string()], d);
            });
        }
    }
}
