//! Model identity: enumerate a model (directory or single file) under the
//! OMS v1.0 rules, hash every file (or shard) and compute the root digest.
//!
//! This module needs no keys; `pedigree id`, the provenance crate and the
//! registry use it to name a model by its content.
//!
//! Rules implemented (spec §6):
//! * only regular files are listed; directories never appear;
//! * names are relative, `/`-separated, UTF-8 (non-UTF-8 names are refused);
//! * `.git`, `.gitattributes`, `.github`, `.gitignore` are excluded at the
//!   model root, plus user ignore paths (exact relative paths, subtree
//!   included);
//! * symlinks are refused unless `allow_symlinks`, in which case they are
//!   followed (cycles skipped with a warning);
//! * `files`: one digest per file; `shards`: one digest per `shard_size`
//!   byte range, named `path:start:end`, zero-byte files omitted;
//! * resources sorted by name in code-point (= UTF-8 byte) order; the root
//!   digest is SHA-256 over the concatenated raw digests in that order.

use std::collections::{BTreeMap, HashSet};
use std::fs::File;
use std::path::{Path, PathBuf};

use rayon::prelude::*;
use sha2::Digest as _;

use crate::error::{Error, Result};

/// Paths excluded at the model root by default (spec §6.2).
pub const DEFAULT_IGNORE_PATHS: [&str; 4] = [".git", ".gitattributes", ".github", ".gitignore"];

/// Default shard size (spec §6.3.2): 1,000,000,000 bytes.
pub const DEFAULT_SHARD_SIZE: u64 = 1_000_000_000;

/// Recursion guard for directory walks (a model deeper than this is not a
/// model, and unbounded recursion could exhaust the stack).
const MAX_DEPTH: usize = 256;

/// File content hash algorithms (OMS algorithm registry).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HashAlgorithm {
    /// SHA-256, the required default.
    Sha256,
    /// BLAKE3 (256-bit output).
    Blake3,
}

impl HashAlgorithm {
    /// The identifier used in `hash_type` and `algorithm`.
    pub fn label(self) -> &'static str {
        match self {
            HashAlgorithm::Sha256 => "sha256",
            HashAlgorithm::Blake3 => "blake3",
        }
    }

    /// Parse a registry identifier. `blake2b` is a valid OMS identifier that
    /// this implementation does not support; it is refused with a clear error.
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "sha256" => Ok(HashAlgorithm::Sha256),
            "blake3" => Ok(HashAlgorithm::Blake3),
            "blake2b" | "blake2" => Err(Error::Options(format!(
                "hash algorithm '{s}' is not supported by pedigree"
            ))),
            other => Err(Error::Options(format!("unknown hash algorithm '{other}'"))),
        }
    }
}

/// How files map to resources.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// One resource per file.
    Files,
    /// One resource per `shard_size` byte range.
    Shards {
        /// Shard size in bytes (> 0).
        shard_size: u64,
    },
}

/// Everything that determines a manifest, as recorded in the predicate's
/// `serialization` object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Serialization {
    /// `files` or `shards`.
    pub method: Method,
    /// Per-file (per-shard) hash.
    pub hash: HashAlgorithm,
    /// Whether symlinks are followed (otherwise refused).
    pub allow_symlinks: bool,
    /// Paths excluded besides the defaults, relative to the model root.
    pub ignore_paths: Vec<String>,
}

impl Default for Serialization {
    fn default() -> Self {
        Serialization {
            method: Method::Files,
            hash: HashAlgorithm::Sha256,
            allow_symlinks: false,
            ignore_paths: Vec::new(),
        }
    }
}

impl Serialization {
    /// All paths to exclude: defaults plus user paths, canonicalized.
    pub fn effective_ignores(&self) -> Result<Vec<String>> {
        let mut out: Vec<String> = DEFAULT_IGNORE_PATHS.iter().map(|s| s.to_string()).collect();
        for p in &self.ignore_paths {
            let c = canonicalize_name(p)?;
            if !out.contains(&c) {
                out.push(c);
            }
        }
        Ok(out)
    }
}

/// One regular file of the model.
#[derive(Debug, Clone)]
pub struct FileEntry {
    /// Canonical relative name (the basename for a single-file model).
    pub name: String,
    /// Where to read it.
    pub path: PathBuf,
    /// Size at enumeration time.
    pub size: u64,
}

/// One resource descriptor: a file or a shard and its digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resource {
    /// File name, or `path:start:end` for shards.
    pub name: String,
    /// Raw digest bytes.
    pub digest: Vec<u8>,
}

impl Resource {
    /// Lowercase hex digest.
    pub fn digest_hex(&self) -> String {
        hex::encode(&self.digest)
    }
}

/// A hashed model.
#[derive(Debug, Clone)]
pub struct Manifest {
    /// Basename of the model path (informational `subject[0].name`).
    pub model_name: String,
    /// True when the model is a single file rather than a directory.
    pub single_file: bool,
    /// How it was hashed.
    pub serialization: Serialization,
    /// Resources sorted by name (code-point order).
    pub resources: Vec<Resource>,
}

impl Manifest {
    /// SHA-256 over the concatenated raw digests, in canonical order.
    pub fn root_digest(&self) -> [u8; 32] {
        root_digest(self.resources.iter().map(|r| r.digest.as_slice()))
    }

    /// `sha256:<hex>` form of [`Manifest::root_digest`].
    pub fn model_id(&self) -> String {
        format!("sha256:{}", hex::encode(self.root_digest()))
    }
}

/// Root digest over digests in the given order (spec §6.5.1).
pub fn root_digest<'a>(digests: impl IntoIterator<Item = &'a [u8]>) -> [u8; 32] {
    let mut h = sha2::Sha256::new();
    for d in digests {
        h.update(d);
    }
    h.finalize().into()
}

/// Canonicalize a relative path per spec §6.1.2: `/` separators, `.` and
/// empty components dropped, no absolute paths, no `..`, no trailing `/`.
pub fn canonicalize_name(raw: &str) -> Result<String> {
    if raw.starts_with('/') {
        return Err(Error::Model(format!(
            "path '{raw}' is absolute; resource names must be relative"
        )));
    }
    let mut parts = Vec::new();
    for comp in raw.split('/') {
        match comp {
            "" | "." => {}
            ".." => return Err(Error::Model(format!("path '{raw}' contains '..'"))),
            c => parts.push(c),
        }
    }
    if parts.is_empty() {
        return Err(Error::Model(format!(
            "path '{raw}' is empty after canonicalization"
        )));
    }
    Ok(parts.join("/"))
}

/// True when `name` equals one of `ignores` or lies beneath one.
pub fn is_ignored(name: &str, ignores: &[String]) -> bool {
    ignores.iter().any(|ig| {
        name == ig
            || (name.len() > ig.len()
                && name.starts_with(ig.as_str())
                && name.as_bytes()[ig.len()] == b'/')
    })
}

/// The informational model name: basename of the path, made absolute first
/// so that `.` resolves to the directory's real name.
pub fn model_name(model: &Path) -> String {
    let abs = std::path::absolute(model).unwrap_or_else(|_| model.to_path_buf());
    let normal: PathBuf = abs.components().collect();
    normal
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| "model".to_string())
}

/// Enumerate the regular files of a model, sorted by name.
pub fn enumerate(model: &Path, ser: &Serialization) -> Result<Vec<FileEntry>> {
    let ignores = ser.effective_ignores()?;
    let meta = std::fs::symlink_metadata(model).map_err(|e| Error::io(model, e))?;
    let is_link = meta.file_type().is_symlink();
    if is_link && !ser.allow_symlinks {
        return Err(Error::Model(format!(
            "{} is a symbolic link; symlinks are refused unless allowed",
            model.display()
        )));
    }
    let meta = if is_link {
        std::fs::metadata(model).map_err(|e| Error::io(model, e))?
    } else {
        meta
    };
    if meta.is_file() {
        let name = model
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(|| {
                Error::Model(format!("{}: file name is not valid UTF-8", model.display()))
            })?
            .to_string();
        return Ok(vec![FileEntry {
            name,
            path: model.to_path_buf(),
            size: meta.len(),
        }]);
    }
    if !meta.is_dir() {
        return Err(Error::Model(format!(
            "{} is neither a regular file nor a directory",
            model.display()
        )));
    }
    let mut out = Vec::new();
    let mut visited = HashSet::new();
    if let Ok(c) = std::fs::canonicalize(model) {
        visited.insert(c);
    }
    walk(
        model,
        "",
        ser.allow_symlinks,
        &ignores,
        &mut visited,
        &mut out,
        0,
    )?;
    // Code-point order of UTF-8 strings is byte order, which `str::cmp` uses.
    out.sort_by(|a, b| a.name.cmp(&b.name));
    if out.is_empty() {
        return Err(Error::Model(format!(
            "{}: no files to sign after exclusions",
            model.display()
        )));
    }
    Ok(out)
}

fn walk(
    dir: &Path,
    prefix: &str,
    allow_symlinks: bool,
    ignores: &[String],
    visited: &mut HashSet<PathBuf>,
    out: &mut Vec<FileEntry>,
    depth: usize,
) -> Result<()> {
    if depth > MAX_DEPTH {
        return Err(Error::Model(format!(
            "{}: directory tree deeper than {MAX_DEPTH}",
            dir.display()
        )));
    }
    let rd = std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))?;
    let mut children = Vec::new();
    for ent in rd {
        let ent = ent.map_err(|e| Error::io(dir, e))?;
        children.push(ent.path());
    }
    for path in children {
        let fname = path.file_name().unwrap_or_default();
        let fname = fname.to_str().ok_or_else(|| {
            Error::Model(format!(
                "{}: file name is not valid UTF-8 and cannot be signed",
                path.display()
            ))
        })?;
        let name = if prefix.is_empty() {
            fname.to_string()
        } else {
            format!("{prefix}/{fname}")
        };
        if is_ignored(&name, ignores) {
            tracing::debug!(%name, "ignored");
            continue;
        }
        let lmeta = std::fs::symlink_metadata(&path).map_err(|e| Error::io(&path, e))?;
        let meta = if lmeta.file_type().is_symlink() {
            if !allow_symlinks {
                return Err(Error::Model(format!(
                    "'{name}' is a symbolic link; symlinks are refused unless allowed"
                )));
            }
            match std::fs::metadata(&path) {
                Ok(m) => {
                    if let Ok(target) = std::fs::canonicalize(&path) {
                        tracing::debug!(%name, target = %target.display(), "following symlink");
                    }
                    m
                }
                Err(e) => {
                    return Err(Error::Model(format!(
                        "'{name}' is a dangling symbolic link: {e}"
                    )));
                }
            }
        } else {
            lmeta
        };
        if meta.is_dir() {
            let canonical = std::fs::canonicalize(&path).ok();
            if let Some(c) = &canonical
                && !visited.insert(c.clone())
            {
                tracing::warn!(%name, "symlink cycle; directory already visited, skipping");
                continue;
            }
            walk(
                &path,
                &name,
                allow_symlinks,
                ignores,
                visited,
                out,
                depth + 1,
            )?;
            if let Some(c) = canonical {
                visited.remove(&c);
            }
        } else if meta.is_file() {
            out.push(FileEntry {
                name,
                path,
                size: meta.len(),
            });
        } else {
            return Err(Error::Model(format!(
                "'{name}' is not a regular file (device, socket or fifo)"
            )));
        }
    }
    Ok(())
}

/// A unit of hashing work: a whole file or one shard of it.
struct Unit {
    file: usize,
    start: u64,
    end: u64,
    name: String,
}

fn units(entries: &[FileEntry], method: Method) -> Vec<Unit> {
    let mut v = Vec::new();
    for (i, e) in entries.iter().enumerate() {
        match method {
            Method::Files => v.push(Unit {
                file: i,
                start: 0,
                end: e.size,
                name: e.name.clone(),
            }),
            Method::Shards { shard_size } => {
                // Zero-byte files produce no shard (spec §6.3.2).
                let mut start = 0u64;
                while start < e.size {
                    let end = e.size.min(start.saturating_add(shard_size));
                    v.push(Unit {
                        file: i,
                        start,
                        end,
                        name: shard_name(&e.name, start, end),
                    });
                    start = end;
                }
            }
        }
    }
    v
}

/// `path:start:end`.
pub fn shard_name(path: &str, start: u64, end: u64) -> String {
    format!("{path}:{start}:{end}")
}

/// Split `path:start:end` on the *last two* colons (names may contain `:`).
pub fn parse_shard_name(name: &str) -> Option<(&str, u64, u64)> {
    let (rest, end) = name.rsplit_once(':')?;
    let (path, start) = rest.rsplit_once(':')?;
    let start: u64 = start.parse().ok()?;
    let end: u64 = end.parse().ok()?;
    if path.is_empty() || end < start {
        return None;
    }
    Some((path, start, end))
}

/// Hash `[start, end)` of a file with positional reads.
///
/// Reads (not mmap) so that a file truncated under us yields an error, not
/// a SIGBUS that would kill a long-running caller such as the registry.
/// The read buffer is small ([`READ_CHUNK`]) so that each copy out of the
/// page cache is still in L2 when the hash reads it: measured on the bench
/// model this costs the same CPU time as b3sum's mmap.
///
/// SHA-256 is sequential by construction. BLAKE3 is a tree: ranges longer
/// than [`B3_LEAF`] are split along the tree's own boundaries into
/// subtrees that are read and hashed on every core, then merged (see
/// [`blake3_subtree`]).
pub fn hash_range(path: &Path, start: u64, end: u64, alg: HashAlgorithm) -> Result<Vec<u8>> {
    let f = File::open(path).map_err(|e| Error::io(path, e))?;
    let src = Source {
        file: &f,
        path,
        base: start,
    };
    let len = end.checked_sub(start).ok_or_else(|| {
        Error::Model(format!(
            "{}: invalid byte range {start}..{end}",
            path.display()
        ))
    })?;
    Ok(match alg {
        HashAlgorithm::Sha256 => {
            let mut sha = sha2::Sha256::new();
            src.read(0, len, |d| sha.update(d))?;
            sha.finalize().to_vec()
        }
        HashAlgorithm::Blake3 => match blake3_subtree(&src, 0, len, true, B3_LEAF)? {
            Subtree::Root(h) => h.as_bytes().to_vec(),
            Subtree::Cv(_) => unreachable!("a root subtree yields a root hash"),
        },
    })
}

/// Read buffer for hashing; see [`hash_range`].
const READ_CHUNK: usize = 64 << 10;

/// Largest BLAKE3 subtree hashed by one task: big enough that a task
/// amortises its scheduling, small enough (1 GB → ~60 tasks) that the
/// cores stay balanced to the end.
const B3_LEAF: u64 = 16 << 20;

/// One byte range of an open file, hashed with positional reads.
struct Source<'a> {
    file: &'a File,
    path: &'a Path,
    /// File offset of the hashed input's byte 0 (a shard's start).
    base: u64,
}

impl Source<'_> {
    /// Feed input bytes `[off, off + len)` to `sink`, in [`READ_CHUNK`]
    /// pieces, through this thread's reusable buffer. `sink` must not
    /// enter rayon (no `join`, no `update_rayon`): a task stolen while it
    /// waits could run `read` on this thread and find the buffer borrowed.
    fn read(&self, mut off: u64, len: u64, mut sink: impl FnMut(&[u8])) -> Result<()> {
        use std::os::unix::fs::FileExt;
        thread_local! {
            static BUF: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
        }
        BUF.with(|b| {
            let mut buf = b.borrow_mut();
            if buf.len() < READ_CHUNK {
                buf.resize(READ_CHUNK, 0);
            }
            let end = off + len;
            while off < end {
                let want = ((end - off) as usize).min(READ_CHUNK);
                let n = self
                    .file
                    .read_at(&mut buf[..want], self.base + off)
                    .map_err(|e| Error::io(self.path, e))?;
                if n == 0 {
                    return Err(Error::Model(format!(
                        "{}: file shrank while being hashed",
                        self.path.display()
                    )));
                }
                sink(&buf[..n]);
                off += n as u64;
            }
            Ok(())
        })
    }
}

/// A hashed BLAKE3 subtree: the root hash when it is the whole input,
/// otherwise its chaining value.
enum Subtree {
    Root(blake3::Hash),
    Cv(blake3::hazmat::ChainingValue),
}

/// Hash the BLAKE3 subtree covering input bytes `[off, off + len)`.
///
/// The caller guarantees that this range is a subtree of the input's tree
/// (true of the whole input, and kept by splitting at
/// [`blake3::hazmat::left_subtree_len`], which is how BLAKE3 itself shapes
/// the tree). Halves are hashed with `rayon::join`, so one large file uses
/// every core; the result equals `blake3::hash` of the range (tested below
/// on sizes around every boundary).
/// `leaf` (at least one 1024-byte chunk) is the size below which a subtree
/// is hashed by one task.
fn blake3_subtree(src: &Source<'_>, off: u64, len: u64, root: bool, leaf: u64) -> Result<Subtree> {
    use blake3::hazmat::{HasherExt, Mode, left_subtree_len};
    if len <= leaf.max(blake3::CHUNK_LEN as u64) {
        let mut h = blake3::Hasher::new();
        h.set_input_offset(off);
        src.read(off, len, |d| {
            h.update(d);
        })?;
        return Ok(if root {
            Subtree::Root(h.finalize())
        } else {
            Subtree::Cv(h.finalize_non_root())
        });
    }
    let left = left_subtree_len(len);
    let (l, r) = rayon::join(
        || blake3_subtree(src, off, left, false, leaf),
        || blake3_subtree(src, off + left, len - left, false, leaf),
    );
    let (Subtree::Cv(l), Subtree::Cv(r)) = (l?, r?) else {
        unreachable!("non-root subtrees yield chaining values")
    };
    Ok(if root {
        Subtree::Root(blake3::hazmat::merge_subtrees_root(&l, &r, Mode::Hash))
    } else {
        Subtree::Cv(blake3::hazmat::merge_subtrees_non_root(&l, &r, Mode::Hash))
    })
}

/// Hash a model: enumerate, then hash every unit in parallel (largest
/// first, so one big file does not end up last on a single core).
pub fn hash_model(model: &Path, ser: &Serialization) -> Result<Manifest> {
    hash_model_cached(model, ser, None)
}

/// [`hash_model`] with an optional digest cache. Only signing should pass a
/// cache: a cached digest is a claim about bytes we did not read.
pub fn hash_model_cached(
    model: &Path,
    ser: &Serialization,
    cache: Option<&DigestCache>,
) -> Result<Manifest> {
    if let Method::Shards { shard_size: 0 } = ser.method {
        return Err(Error::Options("shard size must be positive".into()));
    }
    let entries = enumerate(model, ser)?;
    let single_file = std::fs::metadata(model)
        .map(|m| m.is_file())
        .unwrap_or(false);
    let mut work = units(&entries, ser.method);
    work.sort_by_key(|u| std::cmp::Reverse(u.end - u.start));
    let hash_unit = |u: &Unit| -> Result<(String, Vec<u8>)> {
        let e = &entries[u.file];
        let key = cache.and_then(|c| c.key_for(e, ser, u.start, u.end));
        if let (Some(c), Some(k)) = (cache, key.as_ref())
            && let Some(d) = c.get(k)
        {
            return Ok((u.name.clone(), d));
        }
        let d = hash_range(&e.path, u.start, u.end, ser.hash)?;
        if let (Some(c), Some(k)) = (cache, key) {
            c.put(k, d.clone());
        }
        Ok((u.name.clone(), d))
    };
    // A shared queue in largest-first order (greedy LPT scheduling): each
    // worker takes the next unit when it is free. A plain `par_iter` would
    // split the sorted list in halves, so the second core starts on a
    // middle-sized unit rather than the next largest. BLAKE3 units also
    // split themselves across cores (`blake3_subtree`).
    let next = std::sync::atomic::AtomicUsize::new(0);
    let workers = rayon::current_num_threads().clamp(1, work.len().max(1));
    let per_worker: Vec<Vec<(String, Vec<u8>)>> = (0..workers)
        .into_par_iter()
        .map(|_| {
            let mut out = Vec::new();
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let Some(u) = work.get(i) else { break };
                match hash_unit(u) {
                    Ok(d) => out.push(d),
                    Err(e) => {
                        // Stop the other workers at their next unit.
                        next.store(work.len(), std::sync::atomic::Ordering::Relaxed);
                        return Err(e);
                    }
                }
            }
            Ok(out)
        })
        .collect::<Result<_>>()?;
    let digests = per_worker.into_iter().flatten();
    let sorted: BTreeMap<String, Vec<u8>> = digests.into_iter().collect();
    let resources = sorted
        .into_iter()
        .map(|(name, digest)| Resource { name, digest })
        .collect();
    Ok(Manifest {
        model_name: model_name(model),
        single_file,
        serialization: ser.clone(),
        resources,
    })
}

/// Digest cache for re-signing, keyed by (path, size, mtime, inode) plus
/// the hashing parameters and byte range. Persisted as JSON.
///
/// Never used for verification: an attacker who can write the model can
/// also restore its mtime, so only a fresh read proves the bytes.
#[derive(Debug, Default)]
pub struct DigestCache {
    entries: std::sync::Mutex<BTreeMap<String, String>>,
}

impl DigestCache {
    /// Load a cache file; a missing or unreadable file yields an empty cache
    /// (the cache is an optimisation, never a source of truth).
    pub fn load(path: &Path) -> Self {
        let entries = std::fs::read(path)
            .ok()
            .and_then(|b| serde_json::from_slice::<BTreeMap<String, String>>(&b).ok())
            .unwrap_or_default();
        DigestCache {
            entries: std::sync::Mutex::new(entries),
        }
    }

    /// Write the cache file.
    pub fn save(&self, path: &Path) -> Result<()> {
        let map = self
            .entries
            .lock()
            .map_err(|_| Error::Model("digest cache lock poisoned".into()))?;
        let json =
            serde_json::to_vec(&*map).map_err(|e| Error::Model(format!("digest cache: {e}")))?;
        std::fs::write(path, json).map_err(|e| Error::io(path, e))
    }

    /// Number of cached digests.
    pub fn len(&self) -> usize {
        self.entries.lock().map(|m| m.len()).unwrap_or(0)
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn key_for(&self, e: &FileEntry, ser: &Serialization, start: u64, end: u64) -> Option<String> {
        use std::os::unix::fs::MetadataExt;
        let m = std::fs::metadata(&e.path).ok()?;
        let abs = std::fs::canonicalize(&e.path).ok()?;
        let method = match ser.method {
            Method::Files => "files".to_string(),
            Method::Shards { shard_size } => format!("shards-{shard_size}"),
        };
        Some(format!(
            "{}|{}|{}|{}|{}.{}|{}|{}|{}-{}",
            ser.hash.label(),
            method,
            abs.display(),
            m.size(),
            m.mtime(),
            m.mtime_nsec(),
            m.ino(),
            m.dev(),
            start,
            end
        ))
    }

    fn get(&self, key: &str) -> Option<Vec<u8>> {
        let map = self.entries.lock().ok()?;
        hex::decode(map.get(key)?).ok()
    }

    fn put(&self, key: String, digest: Vec<u8>) {
        if let Ok(mut map) = self.entries.lock() {
            map.insert(key, hex::encode(digest));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonicalize_rules() {
        assert_eq!(canonicalize_name("./a//b/./c").unwrap(), "a/b/c");
        assert!(canonicalize_name("../x").is_err());
        assert!(canonicalize_name("/abs").is_err());
        assert!(canonicalize_name(".").is_err());
    }

    #[test]
    fn ignore_matches_subtree_only() {
        let ig = vec![".git".to_string(), "cache".to_string()];
        assert!(is_ignored(".git/config", &ig));
        assert!(is_ignored("cache", &ig));
        assert!(!is_ignored("cachex", &ig));
        assert!(!is_ignored("sub/cache", &ig));
    }

    /// Deterministic, non-repeating bytes, so that a subtree read from the
    /// wrong offset cannot hash equal by accident.
    fn pseudo_random(n: usize) -> Vec<u8> {
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect()
    }

    #[test]
    fn blake3_subtrees_match_the_plain_hash() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let data = pseudo_random(70_000);
        std::fs::write(&path, &data).unwrap();
        let f = File::open(&path).unwrap();
        let c = blake3::CHUNK_LEN;
        let mut lens = vec![0, 1, 1023, 1024, 1025, 2048, 3 * c + 7, 65_536, 70_000];
        for k in 1..=6 {
            let p = c << k;
            lens.extend([p - 1, p, p + 1, p + c, p + c + 1]);
        }
        for base in [0u64, 1, 1024, 4097] {
            let src = Source {
                file: &f,
                path: &path,
                base,
            };
            for &len in &lens {
                let len = len.min(data.len() - base as usize) as u64;
                let want = blake3::hash(&data[base as usize..(base + len) as usize]);
                for leaf in [1, 1024, 2048, 4096, 5000, 1 << 20] {
                    let Subtree::Root(got) = blake3_subtree(&src, 0, len, true, leaf).unwrap()
                    else {
                        panic!("no root")
                    };
                    assert_eq!(got, want, "base {base} len {len} leaf {leaf}");
                }
            }
        }
        // And through the public entry point, with a shard range.
        let got = hash_range(&path, 1000, 60_000, HashAlgorithm::Blake3).unwrap();
        assert_eq!(got, blake3::hash(&data[1000..60_000]).as_bytes().to_vec());
        let got = hash_range(&path, 1000, 60_000, HashAlgorithm::Sha256).unwrap();
        assert_eq!(got, sha2::Sha256::digest(&data[1000..60_000]).to_vec());
    }

    #[test]
    fn truncated_file_is_an_error_not_a_crash() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, pseudo_random(5000)).unwrap();
        for alg in [HashAlgorithm::Sha256, HashAlgorithm::Blake3] {
            let e = hash_range(&path, 0, 9000, alg).unwrap_err();
            assert!(e.to_string().contains("shrank"), "{e}");
        }
    }

    #[test]
    fn shard_names_parse_from_the_right() {
        assert_eq!(parse_shard_name("a:b.bin:0:10"), Some(("a:b.bin", 0, 10)));
        assert_eq!(parse_shard_name("x:10:0"), None);
        assert_eq!(parse_shard_name("x:1"), None);
    }
}
