//! Content-addressed blob storage. A blob's name is the SHA-256 of its bytes; the store accepts
//! bytes only through [`BlobStore::put_file`] with the digest already verified by the caller
//! (see [`Staged`]), so nothing unverified or half-written is ever visible under a digest.

use std::path::{Path, PathBuf};

use async_trait::async_trait;
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    #[error("blob digest {0:?} is not of the form sha256:<64 hex>")]
    BadDigest(String),
    #[error("content does not match its digest: expected {expected}, got {actual}")]
    Mismatch { expected: String, actual: String },
    #[error("blob {0} not found")]
    NotFound(String),
    #[error("blob storage I/O error: {0}")]
    Io(#[from] std::io::Error),
    /// Another request holds this upload (a chunk is being written to it right now).
    #[error("another request is writing to this upload; retry")]
    Busy,
    /// A blob store that cannot be set up as asked (bad URL, bad options).
    #[error("{0}")]
    Config(String),
    /// A remote store failed (after its retries): which store, doing what, for which blob.
    #[error("blob store {store}: {op} {digest} failed: {cause}")]
    Remote {
        store: String,
        op: String,
        digest: String,
        cause: String,
    },
}

/// A blob's bytes being read: a local file, or a verified download from a remote store.
pub type BlobReader = std::pin::Pin<Box<dyn tokio::io::AsyncRead + Send>>;

/// The blob store a URL names: `s3://bucket/prefix?endpoint=…` (see
/// [`crate::blob_s3::S3Options::from_url`]; credentials from the standard `AWS_*` variables),
/// `file:///dir` or a plain directory (relative ones are taken under `data_dir`, like the
/// default `blobs`). A remote store is checked once here so a wrong endpoint, bucket or
/// credentials stop the server at startup.
pub async fn open_blob_store(
    url: &str,
    data_dir: &Path,
) -> Result<std::sync::Arc<dyn BlobStore>, BlobError> {
    if url.starts_with("s3://") {
        let o = crate::blob_s3::S3Options::from_url(url)?;
        let s = crate::blob_s3::S3BlobStore::new(&o)?;
        s.reach_bucket().await?;
        return Ok(std::sync::Arc::new(s));
    }
    let dir = match url.strip_prefix("file://") {
        Some(p) => PathBuf::from(p),
        None if url.contains("://") => {
            return Err(BlobError::Config(format!(
                "blob store URL {url:?}: unknown scheme (known: s3://, file://, or a directory)"
            )));
        }
        None => PathBuf::from(url),
    };
    if dir.as_os_str().is_empty() {
        return Err(BlobError::Config("blob store: empty directory".into()));
    }
    let dir = if dir.is_absolute() {
        dir
    } else {
        data_dir.join(dir)
    };
    let s = LocalBlobStore::new(&dir)
        .map_err(|e| BlobError::Config(format!("blob store directory {}: {e}", dir.display())))?;
    Ok(std::sync::Arc::new(s))
}

/// `sha256:<64 lowercase hex>` → the hex part, or an error naming the bad value.
pub fn parse_digest(d: &str) -> Result<&str, BlobError> {
    let hex = d
        .strip_prefix("sha256:")
        .ok_or_else(|| BlobError::BadDigest(d.into()))?;
    if hex.len() != 64
        || !hex
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        return Err(BlobError::BadDigest(d.into()));
    }
    Ok(hex)
}

#[async_trait]
pub trait BlobStore: Send + Sync {
    async fn exists(&self, digest: &str) -> Result<Option<u64>, BlobError>;
    /// Move a verified staged file into the store under `digest`; durable when this returns.
    async fn put_file(&self, digest: &str, staged: Staged) -> Result<(), BlobError>;
    /// A local path to read the blob from (a local store returns the blob itself; a remote one
    /// would download into `scratch`).
    async fn local_path(&self, digest: &str, scratch: &Path) -> Result<PathBuf, BlobError>;
    /// Open for streaming to a client: the reader and the blob's size. A remote store's reader
    /// fails instead of ending if the bytes do not match the digest.
    async fn open(&self, digest: &str) -> Result<(BlobReader, u64), BlobError>;
    /// Readiness: the store is reachable and accepts writes (`/readyz`).
    async fn check(&self) -> Result<(), BlobError> {
        Ok(())
    }

    // --- resumable uploads. The bytes live in the store (a staging file inside a local store's
    // directory, an S3 multipart upload), the bookkeeping in the metadata store, so any API
    // process sharing both can take any chunk.

    /// The smallest chunk but the last (S3 refuses parts under 5 MiB but the last).
    fn min_chunk(&self) -> u64 {
        1
    }
    /// The most chunks one upload may have (S3: 10,000 parts).
    fn max_chunks(&self) -> u32 {
        u32::MAX
    }
    /// Set up storage for upload `id`; `digest`, when announced, lets a remote store write
    /// straight to the blob's final name (it still becomes visible only at completion).
    async fn upload_begin(&self, id: &str, digest: Option<&str>)
    -> Result<UploadTarget, BlobError>;
    /// Receive chunk `seq` starting at byte `offset`. A local store's sink holds the upload's
    /// lock until it is dropped, so the caller records the chunk before dropping it.
    async fn upload_chunk(
        &self,
        t: &UploadTarget,
        seq: u32,
        offset: u64,
    ) -> Result<Box<dyn ChunkSink>, BlobError>;
    /// Publish the upload's first `size` bytes (chunks with `etags`, in order) as `digest`,
    /// which the caller has verified. Durable when this returns.
    async fn upload_complete(
        &self,
        t: &UploadTarget,
        digest: &str,
        size: u64,
        etags: Vec<Option<String>>,
    ) -> Result<(), BlobError>;
    /// Drop an upload's bytes (expiry, or after completion where something is left).
    async fn upload_abort(&self, t: &UploadTarget) -> Result<(), BlobError>;
}

/// Where a resumable upload's bytes are kept, as recorded in the metadata store.
#[derive(Debug, Clone)]
pub struct UploadTarget {
    pub id: String,
    /// Local: the staging file's name; S3: the object key the multipart upload completes to.
    pub key: String,
    /// S3 multipart upload id.
    pub upload_id: Option<String>,
}

/// One chunk of a resumable upload on its way into the store.
#[async_trait]
pub trait ChunkSink: Send {
    async fn write(&mut self, data: bytes::Bytes) -> Result<(), BlobError>;
    /// Durable when this returns; the S3 part's ETag, if any.
    async fn finish(&mut self) -> Result<Option<String>, BlobError>;
}

/// An upload session id as [`UploadTarget::id`] holds it: 32 hex digits. Checked before it
/// names a file, though it comes from our own database.
fn upload_file_name(id: &str) -> Result<&str, BlobError> {
    if id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(id)
    } else {
        Err(BlobError::Config(format!("bad upload id {id:?}")))
    }
}

/// A local store's chunk: written at its offset in the upload's staging file under an
/// exclusive `flock` on that file, which every process sharing the directory takes, so two
/// processes never interleave writes to one upload; the lock is held until the sink is dropped,
/// i.e. until the caller has recorded the chunk (or given it up).
struct LocalChunk {
    file: Option<std::fs::File>,
    buf: Vec<u8>,
    path: PathBuf,
}

/// Large writes: each write_all moves megabytes per blocking call, not one network frame.
const CHUNK_WRITE_BUF: usize = 8 << 20;

impl LocalChunk {
    async fn flush_buf(&mut self) -> Result<(), BlobError> {
        let mut f = self.file.take().expect("file present");
        let buf = std::mem::take(&mut self.buf);
        let (f, buf, r) = tokio::task::spawn_blocking(move || {
            use std::io::Write;
            let r = f.write_all(&buf);
            (f, buf, r)
        })
        .await
        .map_err(|e| BlobError::Io(std::io::Error::other(e)))?;
        self.file = Some(f);
        self.buf = buf;
        self.buf.clear();
        r.map_err(|e| {
            BlobError::Io(std::io::Error::new(
                e.kind(),
                format!("writing {}: {e}", self.path.display()),
            ))
        })
    }
}

#[async_trait]
impl ChunkSink for LocalChunk {
    async fn write(&mut self, data: bytes::Bytes) -> Result<(), BlobError> {
        self.buf.extend_from_slice(&data);
        if self.buf.len() >= CHUNK_WRITE_BUF {
            self.flush_buf().await?;
        }
        Ok(())
    }

    async fn finish(&mut self) -> Result<Option<String>, BlobError> {
        self.flush_buf().await?;
        let f = self.file.take().expect("file present");
        let (f, r) = tokio::task::spawn_blocking(move || {
            let r = f.sync_data();
            (f, r)
        })
        .await
        .map_err(|e| BlobError::Io(std::io::Error::other(e)))?;
        self.file = Some(f);
        r?;
        Ok(None)
    }
}

/// An I/O error storing a blob, naming the blob and the directory (a full disk reads
/// "storing sha256:… in /blobs/sha256/ab: No space left on device").
fn store_error(digest: &str, dir: &Path, e: std::io::Error) -> BlobError {
    BlobError::Io(std::io::Error::new(
        e.kind(),
        format!("storing {digest} in {}: {e}", dir.display()),
    ))
}

/// A file written under the staging directory whose SHA-256 has been computed while writing.
#[derive(Debug)]
pub struct Staged {
    pub path: PathBuf,
    pub size: u64,
    pub digest: String,
}

/// Streams bytes to a staging file while hashing them; `finish` fsyncs and returns the digest.
///
/// Hashing runs on its own thread, fed the same reference-counted chunks the writer writes, so
/// SHA-256 and the disk work in parallel instead of one after the other; writes go through a
/// large buffer so each blocking-pool round trip moves megabytes, not one network chunk.
pub struct StagingWriter {
    file: tokio::io::BufWriter<tokio::fs::File>,
    path: PathBuf,
    size: u64,
    to_hasher: Option<tokio::sync::mpsc::Sender<bytes::Bytes>>,
    hasher: Option<std::thread::JoinHandle<[u8; 32]>>,
}

impl StagingWriter {
    pub async fn create(dir: &Path) -> Result<StagingWriter, BlobError> {
        tokio::fs::create_dir_all(dir).await?;
        let path = dir.join(format!("stage-{}", uuid::Uuid::new_v4()));
        let file = tokio::fs::File::create(&path).await?;
        let (tx, mut rx) = tokio::sync::mpsc::channel::<bytes::Bytes>(256);
        let hasher = std::thread::spawn(move || {
            let mut h = Sha256::new();
            while let Some(chunk) = rx.blocking_recv() {
                h.update(&chunk);
            }
            h.finalize().into()
        });
        Ok(StagingWriter {
            file: tokio::io::BufWriter::with_capacity(4 << 20, file),
            path,
            size: 0,
            to_hasher: Some(tx),
            hasher: Some(hasher),
        })
    }

    pub async fn write(&mut self, chunk: bytes::Bytes) -> Result<(), BlobError> {
        if let Some(tx) = &self.to_hasher {
            if tx.send(chunk.clone()).await.is_err() {
                return Err(BlobError::Io(std::io::Error::other(
                    "hashing thread stopped",
                )));
            }
        }
        self.file.write_all(&chunk).await?;
        self.size += chunk.len() as u64;
        Ok(())
    }

    pub async fn finish(mut self) -> Result<Staged, BlobError> {
        self.file.flush().await?;
        self.file.get_mut().sync_all().await?;
        drop(self.to_hasher.take());
        let handle = self
            .hasher
            .take()
            .expect("hasher thread present until finish");
        let digest = tokio::task::spawn_blocking(move || handle.join())
            .await
            .map_err(|e| BlobError::Io(std::io::Error::other(e)))?
            .map_err(|_| BlobError::Io(std::io::Error::other("hashing thread panicked")))?;
        Ok(Staged {
            path: self.path.clone(),
            size: self.size,
            digest: format!("sha256:{}", hex::encode(digest)),
        })
    }

    pub async fn abort(mut self) {
        drop(self.to_hasher.take());
        let _ = tokio::fs::remove_file(&self.path).await;
    }
}

/// Blobs as files on the local disk: `<root>/sha256/<first two hex>/<hex>`.
///
/// Written by hand rather than with `object_store`'s local backend because durability is the
/// point here: the file is fsynced before the rename and the directory after it, which that
/// backend does not do.
pub struct LocalBlobStore {
    root: PathBuf,
}

impl LocalBlobStore {
    pub fn new(root: impl Into<PathBuf>) -> std::io::Result<LocalBlobStore> {
        let root = root.into();
        std::fs::create_dir_all(root.join("sha256"))?;
        Ok(LocalBlobStore { root })
    }

    /// Resumable uploads in progress: inside the store's directory, so every process sharing
    /// the store shares them, and completion is a rename on the same filesystem.
    fn uploads_dir(&self) -> PathBuf {
        self.root.join("uploads")
    }

    fn path_of(&self, digest: &str) -> Result<PathBuf, BlobError> {
        let hex = parse_digest(digest)?;
        Ok(self.root.join("sha256").join(&hex[..2]).join(hex))
    }
}

pub(crate) async fn fsync_dir(dir: &Path) -> std::io::Result<()> {
    let d = tokio::fs::File::open(dir).await?;
    d.sync_all().await
}

#[async_trait]
impl BlobStore for LocalBlobStore {
    async fn exists(&self, digest: &str) -> Result<Option<u64>, BlobError> {
        match tokio::fs::metadata(self.path_of(digest)?).await {
            Ok(m) => Ok(Some(m.len())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    async fn put_file(&self, digest: &str, staged: Staged) -> Result<(), BlobError> {
        if staged.digest != digest {
            let _ = tokio::fs::remove_file(&staged.path).await;
            return Err(BlobError::Mismatch {
                expected: digest.into(),
                actual: staged.digest,
            });
        }
        let dest = self.path_of(digest)?;
        let dir = dest.parent().expect("blob path has a parent");
        tokio::fs::create_dir_all(dir).await?;
        // Rename is atomic: readers see either no blob or the whole verified blob.
        match tokio::fs::rename(&staged.path, &dest).await {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::CrossesDevices => {
                // The store is on another filesystem than the staging area (`--blob-store DIR`):
                // copy beside the destination under a temporary name, fsync, rename. A failure
                // (a full disk) removes the partial copy, so nothing half-written remains.
                let tmp = dir.join(format!(".incoming-{}", uuid::Uuid::new_v4()));
                let copied = async {
                    tokio::fs::copy(&staged.path, &tmp).await?;
                    tokio::fs::File::open(&tmp).await?.sync_all().await?;
                    tokio::fs::rename(&tmp, &dest).await
                }
                .await;
                if let Err(e) = copied {
                    let _ = tokio::fs::remove_file(&tmp).await;
                    return Err(store_error(digest, dir, e));
                }
                let _ = tokio::fs::remove_file(&staged.path).await;
            }
            Err(e) => return Err(store_error(digest, dir, e)),
        }
        fsync_dir(dir).await?;
        Ok(())
    }

    async fn local_path(&self, digest: &str, _scratch: &Path) -> Result<PathBuf, BlobError> {
        let p = self.path_of(digest)?;
        if tokio::fs::metadata(&p).await.is_err() {
            return Err(BlobError::NotFound(digest.into()));
        }
        Ok(p)
    }

    /// Writes and removes a probe file under `<root>/sha256` without creating directories, so
    /// a removed or read-only blob directory is reported rather than silently recreated.
    async fn check(&self) -> Result<(), BlobError> {
        let dir = self.root.join("sha256");
        let probe = dir.join(format!(".ready-{}", uuid::Uuid::new_v4()));
        let r = tokio::fs::write(&probe, b"ok").await;
        let _ = tokio::fs::remove_file(&probe).await;
        r.map_err(|e| {
            BlobError::Io(std::io::Error::new(
                e.kind(),
                format!("writing a probe file in {}: {e}", dir.display()),
            ))
        })
    }

    async fn open(&self, digest: &str) -> Result<(BlobReader, u64), BlobError> {
        let p = self.path_of(digest)?;
        let f = tokio::fs::File::open(&p)
            .await
            .map_err(|_| BlobError::NotFound(digest.into()))?;
        let len = f.metadata().await?.len();
        Ok((Box::pin(f), len))
    }

    async fn upload_begin(
        &self,
        id: &str,
        _digest: Option<&str>,
    ) -> Result<UploadTarget, BlobError> {
        let name = upload_file_name(id)?;
        let dir = self.uploads_dir();
        tokio::fs::create_dir_all(&dir).await?;
        tokio::fs::File::create(dir.join(name)).await?;
        // The empty file must survive a crash: chunks acknowledged later live in it.
        fsync_dir(&dir).await?;
        Ok(UploadTarget {
            id: id.into(),
            key: name.into(),
            upload_id: None,
        })
    }

    async fn upload_chunk(
        &self,
        t: &UploadTarget,
        _seq: u32,
        offset: u64,
    ) -> Result<Box<dyn ChunkSink>, BlobError> {
        let path = self.uploads_dir().join(upload_file_name(&t.key)?);
        let file = locked_upload_file(&path, offset).await?;
        Ok(Box::new(LocalChunk {
            file: Some(file),
            buf: Vec::with_capacity(CHUNK_WRITE_BUF),
            path,
        }))
    }

    async fn upload_complete(
        &self,
        t: &UploadTarget,
        digest: &str,
        size: u64,
        _etags: Vec<Option<String>>,
    ) -> Result<(), BlobError> {
        let path = self.uploads_dir().join(upload_file_name(&t.key)?);
        // Under the lock and cut to the acknowledged size: a writer that died mid-chunk may have
        // left bytes past it, which are no part of the verified content.
        let f = locked_upload_file(&path, size).await?;
        tokio::task::spawn_blocking(move || f.sync_all())
            .await
            .map_err(|e| BlobError::Io(std::io::Error::other(e)))??;
        let dest = self.path_of(digest)?;
        let dir = dest.parent().expect("blob path has a parent");
        tokio::fs::create_dir_all(dir).await?;
        // Same filesystem (the staging area is inside the store): an atomic rename, no copy.
        tokio::fs::rename(&path, &dest)
            .await
            .map_err(|e| store_error(digest, dir, e))?;
        fsync_dir(dir).await?;
        fsync_dir(&self.uploads_dir()).await?;
        Ok(())
    }

    async fn upload_abort(&self, t: &UploadTarget) -> Result<(), BlobError> {
        let path = self.uploads_dir().join(upload_file_name(&t.key)?);
        match tokio::fs::remove_file(&path).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
}

/// Open an upload's staging file (never creating it: a missing one is a finished or expired
/// upload), take its exclusive lock without waiting, and cut it to `len`, positioned there.
async fn locked_upload_file(path: &Path, len: u64) -> Result<std::fs::File, BlobError> {
    let path = path.to_path_buf();
    tokio::task::spawn_blocking(move || -> Result<std::fs::File, BlobError> {
        use std::io::Seek;
        let mut f = match std::fs::OpenOptions::new().write(true).open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(BlobError::NotFound(format!(
                    "upload staging file {}",
                    path.display()
                )));
            }
            Err(e) => return Err(e.into()),
        };
        match f.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => return Err(BlobError::Busy),
            Err(std::fs::TryLockError::Error(e)) => return Err(e.into()),
        }
        f.set_len(len)?;
        f.seek(std::io::SeekFrom::Start(len))?;
        Ok(f)
    })
    .await
    .map_err(|e| BlobError::Io(std::io::Error::other(e)))?
}
