//! Content-addressed blob storage. A blob's name is the SHA-256 of its bytes; the store accepts
//! bytes only through [`BlobStore::put_file`] with the digest already verified by the caller
//! (see [`Staged`]), so nothing unverified or half-written is ever visible under a digest.

use std::path::{Path, PathBuf};

use async_trait::async_trait;
use sha2::{Digest, Sha256};

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
    /// A remote store refused the credentials (HTTP 401/403: a wrong secret, an unknown key, a
    /// bad or expired session token, or no permission on the bucket). Not retried: only the
    /// operator can fix it, so it is told apart from a store that is merely failing.
    #[error("blob store {store}: {op} {digest}: credentials refused: {cause}")]
    Refused {
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
///
/// Double-buffered: while one block is written on the blocking pool, the next is received and
/// hashed, and writeback of each block starts at once (see [`StagingWriter`]).
struct LocalChunk {
    /// The file, when no write is in flight.
    file: Option<std::fs::File>,
    /// Pieces received and not yet handed to a write (batched, not copied).
    batch: Vec<bytes::Bytes>,
    batch_len: usize,
    pending: Option<tokio::task::JoinHandle<WriteDone>>,
    path: PathBuf,
}

type WriteDone = (std::fs::File, std::io::Result<()>);

/// Bytes per write batch: each blocking call moves megabytes, not one network frame.
const CHUNK_WRITE_BUF: usize = 8 << 20;

impl LocalChunk {
    /// Wait for the write in flight, if any.
    async fn settle(&mut self) -> Result<(), BlobError> {
        let Some(p) = self.pending.take() else {
            return Ok(());
        };
        let (f, r) = p
            .await
            .map_err(|e| BlobError::Io(std::io::Error::other(e)))?;
        self.file = Some(f);
        r.map_err(|e| {
            BlobError::Io(std::io::Error::new(
                e.kind(),
                format!("writing {}: {e}", self.path.display()),
            ))
        })
    }

    async fn write_buf(&mut self) -> Result<(), BlobError> {
        self.settle().await?;
        let batch = std::mem::take(&mut self.batch);
        let len = std::mem::take(&mut self.batch_len) as u64;
        let mut f = self
            .file
            .take()
            .expect("file present when no write is in flight");
        self.pending = Some(tokio::task::spawn_blocking(move || {
            use std::io::{Seek, Write};
            let r = (|| {
                let at = f.stream_position()?;
                for piece in &batch {
                    f.write_all(piece)?;
                }
                start_writeback(&f, at, len);
                Ok(())
            })();
            (f, r)
        }));
        Ok(())
    }
}

#[async_trait]
impl ChunkSink for LocalChunk {
    async fn write(&mut self, data: bytes::Bytes) -> Result<(), BlobError> {
        self.batch_len += data.len();
        self.batch.push(data);
        if self.batch_len >= CHUNK_WRITE_BUF {
            self.write_buf().await?;
        }
        Ok(())
    }

    async fn finish(&mut self) -> Result<Option<String>, BlobError> {
        if !self.batch.is_empty() {
            self.write_buf().await?;
        }
        self.settle().await?;
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
/// Where the time goes, and what this does about it (measured with `bench/registry/run.sh`):
/// * the network hands us pieces of 8-400 KiB; they are batched, not copied (a copy into a
///   block buffer cost ~7% of the server's CPU at 1 GiB/s in `perf`, plus page faults on each
///   fresh buffer), into [`STAGE_BLOCK`]-byte batches, so each thread wakes once per 8 MiB;
/// * SHA-256 and the writes run on two threads of their own, fed the same reference-counted
///   block, so hashing, writing and receiving overlap instead of taking turns; the writer uses
///   a plain `std::fs::File` (tokio's file would copy every write once more into its own
///   2 MiB buffer and bounce it through the blocking pool);
/// * the writer starts writeback of each [`WRITEBACK_EVERY`] bytes as soon as they are written
///   (`sync_file_range`), so the disk works while the body is still arriving and the closing
///   fsync has little left to do. Durability is unchanged: nothing counts until that fsync.
pub struct StagingWriter {
    path: PathBuf,
    size: u64,
    batch: Vec<bytes::Bytes>,
    batch_len: usize,
    to_writer: Option<tokio::sync::mpsc::Sender<Batch>>,
    to_hasher: Option<tokio::sync::mpsc::Sender<Batch>>,
    writer: Option<std::thread::JoinHandle<std::io::Result<()>>>,
    hasher: Option<std::thread::JoinHandle<[u8; 32]>>,
}

/// Pieces of the body, shared by the writer and the hasher.
type Batch = std::sync::Arc<Vec<bytes::Bytes>>;

/// Bytes per batch handed to the writer and hasher threads.
pub const STAGE_BLOCK: usize = 8 << 20;
/// Blocks queued to each thread at most: memory per upload stays near 4 × 8 MiB.
const STAGE_QUEUE: usize = 3;
/// Start writeback after this many bytes (see [`StagingWriter`]).
const WRITEBACK_EVERY: u64 = 32 << 20;

/// Ask the kernel to start writing `[from, from+len)` of `f` to disk now, without waiting.
/// Only a hint (an error is ignored): the fsync that follows is what makes the bytes durable.
#[cfg(target_os = "linux")]
fn start_writeback(f: &std::fs::File, from: u64, len: u64) {
    use std::os::fd::AsRawFd;
    // SAFETY: sync_file_range reads only integers; the descriptor is ours and open.
    unsafe {
        libc::sync_file_range(
            f.as_raw_fd(),
            from as libc::off64_t,
            len as libc::off64_t,
            libc::SYNC_FILE_RANGE_WRITE,
        );
    }
}

#[cfg(not(target_os = "linux"))]
fn start_writeback(_f: &std::fs::File, _from: u64, _len: u64) {}

impl StagingWriter {
    pub async fn create(dir: &Path) -> Result<StagingWriter, BlobError> {
        tokio::fs::create_dir_all(dir).await?;
        let path = dir.join(format!("stage-{}", uuid::Uuid::new_v4()));
        let mut file = tokio::fs::File::create(&path).await?.into_std().await;
        let (htx, mut hrx) = tokio::sync::mpsc::channel::<Batch>(STAGE_QUEUE);
        let hasher = std::thread::spawn(move || {
            let mut h = Sha256::new();
            while let Some(batch) = hrx.blocking_recv() {
                for piece in batch.iter() {
                    h.update(piece);
                }
            }
            h.finalize().into()
        });
        let (wtx, mut wrx) = tokio::sync::mpsc::channel::<Batch>(STAGE_QUEUE);
        let writer = std::thread::spawn(move || -> std::io::Result<()> {
            use std::io::Write;
            let (mut written, mut flushed) = (0u64, 0u64);
            while let Some(batch) = wrx.blocking_recv() {
                for piece in batch.iter() {
                    file.write_all(piece)?;
                    written += piece.len() as u64;
                }
                if written - flushed >= WRITEBACK_EVERY {
                    start_writeback(&file, flushed, written - flushed);
                    flushed = written;
                }
            }
            file.sync_all()
        });
        Ok(StagingWriter {
            path,
            size: 0,
            batch: Vec::new(),
            batch_len: 0,
            to_writer: Some(wtx),
            to_hasher: Some(htx),
            writer: Some(writer),
            hasher: Some(hasher),
        })
    }

    pub async fn write(&mut self, chunk: bytes::Bytes) -> Result<(), BlobError> {
        self.size += chunk.len() as u64;
        self.batch_len += chunk.len();
        self.batch.push(chunk);
        if self.batch_len >= STAGE_BLOCK {
            self.send_block().await?;
        }
        Ok(())
    }

    async fn send_block(&mut self) -> Result<(), BlobError> {
        let block: Batch = std::sync::Arc::new(std::mem::take(&mut self.batch));
        self.batch_len = 0;
        let (Some(w), Some(h)) = (&self.to_writer, &self.to_hasher) else {
            return Err(BlobError::Io(std::io::Error::other(
                "staging writer closed",
            )));
        };
        if h.send(block.clone()).await.is_err() {
            return Err(BlobError::Io(std::io::Error::other(
                "hashing thread stopped",
            )));
        }
        if w.send(block).await.is_err() {
            // The writer stopped on an error (a full disk): report that error.
            drop(self.to_writer.take());
            return Err(self.join_writer().await.err().unwrap_or_else(|| {
                BlobError::Io(std::io::Error::other("staging writer stopped"))
            }));
        }
        Ok(())
    }

    async fn join_writer(&mut self) -> Result<(), BlobError> {
        let Some(handle) = self.writer.take() else {
            return Ok(());
        };
        let r = tokio::task::spawn_blocking(move || handle.join())
            .await
            .map_err(|e| BlobError::Io(std::io::Error::other(e)))?
            .map_err(|_| BlobError::Io(std::io::Error::other("staging writer panicked")))?;
        r.map_err(|e| {
            BlobError::Io(std::io::Error::new(
                e.kind(),
                format!("writing the staging file: {e}"),
            ))
        })
    }

    pub async fn finish(mut self) -> Result<Staged, BlobError> {
        if !self.batch.is_empty()
            && let Err(e) = self.send_block().await
        {
            self.abort().await;
            return Err(e);
        }
        // Closing the channels ends both threads; the writer fsyncs before it returns.
        drop(self.to_writer.take());
        drop(self.to_hasher.take());
        if let Err(e) = self.join_writer().await {
            let _ = tokio::fs::remove_file(&self.path).await;
            return Err(e);
        }
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
        drop(self.to_writer.take());
        let _ = self.join_writer().await;
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

/// Create a blob's fan-out directory (`sha256/ab`) if missing, fsyncing its parent so the new
/// directory entry survives a crash along with the blob renamed into it.
async fn create_durable_dir(dir: &Path) -> std::io::Result<()> {
    if tokio::fs::metadata(dir).await.is_ok() {
        return Ok(());
    }
    tokio::fs::create_dir_all(dir).await?;
    if let Some(parent) = dir.parent() {
        fsync_dir(parent).await?;
    }
    Ok(())
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
        create_durable_dir(dir).await?;
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
            batch: Vec::new(),
            batch_len: 0,
            pending: None,
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
        let (f, r) = tokio::task::spawn_blocking(move || {
            let r = f.sync_all();
            (f, r)
        })
        .await
        .map_err(|e| BlobError::Io(std::io::Error::other(e)))?;
        r?;
        let dest = self.path_of(digest)?;
        let dir = dest.parent().expect("blob path has a parent");
        create_durable_dir(dir).await?;
        // Same filesystem (the staging area is inside the store): an atomic rename, no copy.
        // The lock is held across it: a chunk writer that opened the staging file before the
        // rename and gets the lock after it finds the path gone (see locked_upload_file) instead
        // of writing into what is now a published blob.
        tokio::fs::rename(&path, &dest)
            .await
            .map_err(|e| store_error(digest, dir, e))?;
        drop(f);
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
        // The lock is on the inode we opened; the path must still name it. Completion renames
        // the file into the store under the lock, expiry unlinks it: either way it is no longer
        // this upload's staging file and must not be written.
        {
            use std::os::unix::fs::MetadataExt;
            let held = f.metadata()?;
            match std::fs::metadata(&path) {
                Ok(m) if m.ino() == held.ino() && m.dev() == held.dev() => {}
                _ => {
                    return Err(BlobError::NotFound(format!(
                        "upload staging file {}",
                        path.display()
                    )));
                }
            }
        }
        f.set_len(len)?;
        f.seek(std::io::SeekFrom::Start(len))?;
        Ok(f)
    })
    .await
    .map_err(|e| BlobError::Io(std::io::Error::other(e)))?
}
