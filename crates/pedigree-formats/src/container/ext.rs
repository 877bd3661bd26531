//! The extension is a hint; when it promises one format and the bytes are another, that is a
//! finding (ARCHITECTURE.md; CVE-2025-10155 and CVE-2025-1889 were both about trusting names).

use std::path::Path;

use super::{Format, Note, NoteKind};

/// What the extension allows. `None`: the extension promises nothing we check.
fn allowed(ext: &str, f: Format) -> Option<bool> {
    use Format::*;
    let pickle_like = matches!(f, Pickle | Joblib | TorchLegacy);
    Some(match ext {
        "npy" => f == Npy,
        "npz" => matches!(f, Npz | Zip),
        "zip" => matches!(f, Zip | Npz | TorchZip | TorchScript),
        "keras" => matches!(f, Zip | Keras),
        "safetensors" => f == Safetensors,
        "gguf" => f == Gguf,
        "onnx" => f == Onnx,
        "h5" | "hdf5" => f == Hdf5,
        "pb" => matches!(f, TensorFlow | Unknown),
        "pkl" | "pickle" | "pck" | "joblib" | "dill" => pickle_like || f == Compressed,
        // torch.load reads zip checkpoints, legacy streams, legacy tars and plain pickles
        // alike, so these names are ambiguous in the wild: only a clearly different container
        // is a mismatch. (`.bin` is used for anything; never checked.)
        "pt" | "pth" | "ckpt" => {
            matches!(
                f,
                TorchZip | TorchScript | TorchLegacy | TorchLegacyTar | Pickle | Joblib | Unknown
            )
        }
        "tar" => matches!(f, Tar | TorchLegacyTar),
        "7z" => f == SevenZip,
        "gz" | "bz2" | "xz" | "lzma" | "lz4" | "z" => f == Compressed,
        // Formats read by other readers: anything this module recognises inside them is wrong.
        "json" | "tflite" | "msgpack" | "txt" => f == Unknown,
        _ => return None,
    })
}

pub(super) fn extension_mismatch(path: &Path, detected: Format) -> Option<Note> {
    let ext = path.extension()?.to_str()?.to_ascii_lowercase();
    if allowed(&ext, detected)? {
        return None;
    }
    let what = match detected {
        Format::Unknown => "none of the formats this reader knows".to_string(),
        f => serde_json::to_value(f)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default(),
    };
    Some(Note::new(
        NoteKind::ExtensionMismatch {
            extension: ext.clone(),
            detected,
        },
        format!(
            "the name ends in .{ext} but the content is {what}: loaders choose by name, scanners must not"
        ),
    ))
}
