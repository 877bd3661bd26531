//! Containers around pickles, sniffed by content, read as leniently as the real loaders.
//!
//! CONTRACT (the scanner codes against these names; extend, do not rename):
//! * [`read_path`] reads a file (or recursively a directory is the caller's job) into an
//!   [`Artifact`] tree: the detected [`Format`], the pickle analyses of every pickle stream it
//!   holds, container [`Note`]s (oddities worth a finding), and child artifacts (archive members).
//! * [`read_bytes`] does the same for bytes already in memory (archive members, fuzzing).

use std::fs::File;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::pickle::PickleReport;

mod compress;
mod ext;
mod npy;
mod plain;
mod sevenz;
pub mod sniff;
mod tarball;
mod torch;
mod walk;
mod zip;

#[cfg(test)]
mod tests;

/// What the bytes are, decided by content (magic and structure), never by the file name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Format {
    /// A bare pickle stream (any name: .pkl, .bin, .pt ...).
    Pickle,
    /// `torch.save` zip checkpoint (members `<prefix>/data.pkl`, `<prefix>/data/N` ...).
    TorchZip,
    /// TorchScript archive (`torch.jit.save`: has `constants.pkl` and `code/`).
    TorchScript,
    /// Legacy PyTorch (< 1.6) stream: magic-number pickle, then protocol, sys_info, object, keys.
    TorchLegacy,
    /// Legacy PyTorch tar layout (`sys_info`, `pickle`, `storages`, `tensors` members).
    TorchLegacyTar,
    /// numpy `.npy`.
    Npy,
    /// numpy `.npz` (a zip of `.npy` members).
    Npz,
    /// joblib pickle (uncompressed; arrays embedded raw after their wrapper).
    Joblib,
    /// A compressed stream (joblib and others): zlib, gzip, bz2, xz, lzma, lz4.
    Compressed,
    /// Generic zip that is none of the above.
    Zip,
    /// tar (plain; compressed tars are `Compressed` with a `Tar` child).
    Tar,
    /// 7z.
    SevenZip,
    /// safetensors (read by `crate::safetensors`).
    Safetensors,
    /// GGUF (read by `crate::gguf`).
    Gguf,
    /// ONNX protobuf (read by `crate::onnx`).
    Onnx,
    /// HDF5 (legacy Keras `.h5`: `crate::hdf5`, `crate::keras`).
    Hdf5,
    /// Keras 3 `.keras` zip (a zip whose `config.json` is a Keras model config).
    Keras,
    /// TensorFlow protobuf: SavedModel, GraphDef, `keras_metadata.pb` (`crate::tensorflow`).
    #[serde(rename = "tensorflow")]
    TensorFlow,
    /// Anything else (not scanned for pickles).
    Unknown,
}

/// Oddities in a container: each is worth a finding, none stops the reading.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum NoteKind {
    /// A member's data does not match its CRC-32 (Python's zipfile raises; torch loads it).
    ZipBadCrc { member: String },
    /// General-purpose flag bit 0 (encrypted), 0x20 or 0x40 set; `in_central` tells where.
    ZipEncryptionFlag {
        member: String,
        in_central: bool,
        in_local: bool,
    },
    /// Local header name differs from the central-directory name.
    ZipNameMismatch { central: String, local: String },
    /// Two members with the same name (torch takes the first, Python the last).
    ZipDuplicateName { member: String },
    /// Bytes before the first local header (Python's zipfile tolerates them; torch does not).
    ZipPrependedData { bytes: u64 },
    /// Decompressed size or ratio over the limit: reading stopped.
    DecompressionBomb { member: String, detail: String },
    /// Member is really encrypted: cannot be scanned.
    EncryptedMember { member: String },
    /// Member path climbs out (`..`, absolute) or is a link.
    UnsafeMemberPath { member: String },
    /// Archive nesting deeper than the limit: inner members not read.
    NestingTooDeep { member: String },
    /// More members than the limit: the rest were not read.
    TooManyMembers { limit: u64 },
    /// The extension promises one format and the bytes are another.
    ExtensionMismatch { extension: String, detected: Format },
    /// Legacy PyTorch serialization (pre-1.6).
    LegacyTorch,
    /// The container is malformed (the loader would refuse it, or part of it is unreadable).
    Malformed { detail: String },
}

#[derive(Debug, Clone, Serialize)]
pub struct Note {
    #[serde(flatten)]
    pub kind: NoteKind,
    pub message: String,
}

/// One readable thing: a file, or a member inside a container.
#[derive(Debug, Clone, Serialize)]
pub struct Artifact {
    /// Path of the file, then member names for nested artifacts, e.g. `["m.zip", "a/data.pkl"]`.
    pub location: Vec<String>,
    pub format: Format,
    pub size: u64,
    pub pickles: Vec<PickleReport>,
    pub notes: Vec<Note>,
    pub children: Vec<Artifact>,
    /// Views of the model formats beyond pickle (`crate::views`): safetensors, GGUF, ONNX, Keras,
    /// TensorFlow, Hugging Face configs.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub views: Vec<crate::views::FormatView>,
}

/// Limits on containers. Every one of them holds whatever the input says (ARCHITECTURE.md,
/// "Everything is bounded"); exceeding one becomes a [`Note`], never an error.
#[derive(Debug, Clone, Serialize)]
pub struct ContainerLimits {
    /// How deep containers may nest (the file itself is depth 0, its members depth 1 ...).
    pub max_depth: usize,
    /// Members read per archive (zip central-directory entries, tar and 7z entries).
    pub max_members: u64,
    /// Largest decompressed member or stream kept in memory.
    pub max_member_size: u64,
    /// Total bytes produced by decompression over the whole file.
    pub max_total_decompressed: u64,
    /// Largest ratio decompressed / compressed (for outputs over 1 MiB; small outputs of very
    /// regular data legitimately compress better).
    pub max_ratio: u64,
    /// Files up to this size are read into memory with one read; larger ones are memory-mapped,
    /// so that only the pages we touch (the pickles of a checkpoint, never its storages) are read.
    pub max_file_size_in_memory: u64,
}

impl Default for ContainerLimits {
    fn default() -> Self {
        ContainerLimits {
            max_depth: 4,
            max_members: 10_000,
            max_member_size: 4 << 30,
            max_total_decompressed: 8 << 30,
            max_ratio: 200,
            max_file_size_in_memory: 1 << 20,
        }
    }
}

/// Options for [`read_path`] and [`read_bytes`].
#[derive(Debug, Clone, Default, Serialize)]
pub struct ReadOptions {
    /// Options passed to every pickle analysis (`joblib_arrays` is forced on where it matters).
    pub pickle: crate::pickle::Options,
    pub limits: ContainerLimits,
}

/// Why a file could not be read at all (problems *inside* the bytes are [`Note`]s instead).
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("{path}: cannot open: {source}")]
    Open {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: cannot read: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: cannot map into memory: {source}")]
    Map {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: not a regular file (directories are walked by the caller)")]
    NotAFile { path: PathBuf },
}

impl Note {
    pub(crate) fn new(kind: NoteKind, message: impl Into<String>) -> Self {
        Note {
            kind,
            message: message.into(),
        }
    }
}

impl Artifact {
    pub(crate) fn new(location: Vec<String>, format: Format, size: u64) -> Self {
        Artifact {
            location,
            format,
            size,
            pickles: Vec::new(),
            notes: Vec::new(),
            children: Vec::new(),
            views: Vec::new(),
        }
    }

    /// This artifact and all its descendants, depth first.
    pub fn walk(&self) -> Vec<&Artifact> {
        let mut out = Vec::new();
        let mut stack = vec![self];
        while let Some(a) = stack.pop() {
            out.push(a);
            for c in a.children.iter().rev() {
                stack.push(c);
            }
        }
        out
    }
}

/// Reads one file (by content; the extension only adds [`NoteKind::ExtensionMismatch`]).
///
/// Small files are read into memory; larger ones are memory-mapped, and only the parts that hold
/// pickles are touched (a torch checkpoint's storages are never read).
pub fn read_path(path: &Path, opts: &ReadOptions) -> Result<Artifact, ReadError> {
    let file = File::open(path).map_err(|source| ReadError::Open {
        path: path.to_path_buf(),
        source,
    })?;
    let meta = file.metadata().map_err(|source| ReadError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    if !meta.is_file() {
        return Err(ReadError::NotAFile {
            path: path.to_path_buf(),
        });
    }
    let name = path.display().to_string();
    let mut artifact = if meta.len() <= opts.limits.max_file_size_in_memory {
        let mut buf = Vec::new();
        use std::io::Read;
        // `take` bounds the read even if the file grew since `metadata`.
        (&file)
            .take(opts.limits.max_file_size_in_memory)
            .read_to_end(&mut buf)
            .map_err(|source| ReadError::Io {
                path: path.to_path_buf(),
                source,
            })?;
        let mut a = read_bytes(&name, &buf, opts);
        crate::views::attach_path_views(path, &mut a, Some(&buf));
        a
    } else {
        // SAFETY: the map is read-only and we never hand out references that outlive it. The one
        // hazard of mapping is another process truncating the file while we read it, which raises
        // SIGBUS and kills the process; for a command-line scanner reading files at rest that is
        // acceptable, and the alternative (reading multi-GiB checkpoints whole) is not.
        let map = unsafe { memmap2::Mmap::map(&file) }.map_err(|source| ReadError::Map {
            path: path.to_path_buf(),
            source,
        })?;
        let mut a = read_bytes(&name, &map, opts);
        crate::views::attach_path_views(path, &mut a, Some(&map));
        a
    };
    if let Some(note) = ext::extension_mismatch(path, artifact.format) {
        artifact.notes.push(note);
    }
    Ok(artifact)
}

/// Reads bytes already in memory. Never fails: every problem is a [`Note`] in the result.
pub fn read_bytes(name: &str, data: &[u8], opts: &ReadOptions) -> Artifact {
    let mut reader = walk::Reader::new(opts);
    reader.node(vec![name.to_string()], data, 0)
}

/// The coarse format of some bytes, by content only (a zip is reported as [`Format::Zip`] here;
/// [`read_bytes`] refines it to torch / npz by looking at the members).
pub fn sniff_format(data: &[u8]) -> Format {
    sniff::sniff(data).format()
}
