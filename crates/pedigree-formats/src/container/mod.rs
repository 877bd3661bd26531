//! Containers around pickles, sniffed by content, read as leniently as the real loaders.
//!
//! CONTRACT (the scanner codes against these names; extend, do not rename):
//! * [`read_path`] reads a file (or recursively a directory is the caller's job) into an
//!   [`Artifact`] tree: the detected [`Format`], the pickle analyses of every pickle stream it
//!   holds, container [`Note`]s (oddities worth a finding), and child artifacts (archive members).
//! * [`read_bytes`] does the same for bytes already in memory (archive members, fuzzing).

use serde::Serialize;

use crate::pickle::PickleReport;

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
    ZipEncryptionFlag { member: String, in_central: bool, in_local: bool },
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
}
