//! Blobs in an S3-compatible object store (AWS S3, MinIO, Ceph RGW, R2, …), so several API
//! processes and workers on different machines share one blob store.
//!
//! Objects are named `<prefix>/sha256/<hex>`. The guarantee of [`crate::blob`] holds here too:
//! nothing unverified or half-written is ever visible under a digest. S3 makes an object
//! visible only when its single PUT or its multipart upload *completes*, and we complete only
//! after every part was accepted; a failed multipart upload is aborted so its parts do not
//! linger (and cost) on the server.
//!
//! Reads do not trust the store: every byte read back is hashed and checked against the digest
//! (a bucket can be tampered with by anyone holding its credentials), and never more bytes than
//! the object claims are read, whatever the store sends.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures::{StreamExt, TryStreamExt};
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::multipart::{MultipartStore, PartId};
use object_store::path::Path as ObjectPath;
use object_store::{
    BackoffConfig, ClientOptions, ObjectStore, PutPayload, RetryConfig, WriteMultipart,
};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::blob::{
    BlobError, BlobReader, BlobStore, ChunkSink, Staged, UploadTarget, parse_digest,
};

/// Files up to this size go up in one PUT (read whole into memory); larger ones in parts.
pub const SINGLE_PUT_MAX: u64 = 16 << 20;
/// Multipart part size: S3 wants at least 5 MiB per part (except the last) and at most 10,000
/// parts, so 8 MiB parts carry objects up to ~78 GiB.
pub const PART_SIZE: usize = 8 << 20;
/// Parts uploaded at once. Memory for one upload stays near `(PARTS_IN_FLIGHT + 1) * PART_SIZE`.
pub const PARTS_IN_FLIGHT: usize = 4;
/// Read size when feeding the uploader from the staged file.
const READ_CHUNK: usize = 1 << 20;

/// How to reach the bucket. Built from an `s3://` URL by [`S3Options::from_url`], or by hand.
#[derive(Clone, Debug)]
pub struct S3Options {
    pub bucket: String,
    /// Key prefix without leading or trailing `/`; may be empty.
    pub prefix: String,
    /// `http(s)://host:port` of an S3-compatible server; `None`: AWS itself.
    pub endpoint: Option<String>,
    pub region: Option<String>,
    pub allow_http: bool,
    /// Virtual-hosted-style addressing (`bucket.host`); path-style (`host/bucket`) otherwise,
    /// which is what most self-hosted servers want.
    pub virtual_hosted: bool,
    /// Credentials; `None` takes them from the standard `AWS_*` environment variables.
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<String>,
    /// Session token of temporary credentials (STS); `None`: `AWS_SESSION_TOKEN`, if set.
    pub session_token: Option<String>,
    /// Retries of one request on server errors (5xx, 429) and dropped connections.
    pub retries: usize,
    /// First back-off between retries; it doubles up to 15 s.
    pub retry_backoff: Duration,
    /// Limit on one request, body included (a blob download streams through one request).
    pub request_timeout: Duration,
}

impl S3Options {
    /// `s3://bucket[/prefix][?endpoint=URL&region=R&allow_http=true&virtual_hosted=false&retries=N&timeout_s=S]`.
    /// Unknown query keys are refused: a typo must not silently select another store.
    pub fn from_url(url: &str) -> Result<S3Options, BlobError> {
        let bad = |why: String| BlobError::Config(format!("blob store URL {url:?}: {why}"));
        let u = url::Url::parse(url).map_err(|e| bad(e.to_string()))?;
        if u.scheme() != "s3" {
            return Err(bad("the scheme must be s3://".into()));
        }
        let bucket = u
            .host_str()
            .filter(|b| !b.is_empty())
            .ok_or_else(|| bad("no bucket name".into()))?
            .to_string();
        if !u.username().is_empty() || u.password().is_some() {
            return Err(bad(
                "credentials do not belong in the URL (it gets logged); set AWS_ACCESS_KEY_ID \
                 and AWS_SECRET_ACCESS_KEY"
                    .into(),
            ));
        }
        let prefix = u.path().trim_matches('/').to_string();
        let mut o = S3Options {
            bucket,
            prefix,
            endpoint: None,
            region: None,
            allow_http: false,
            virtual_hosted: false,
            access_key_id: None,
            secret_access_key: None,
            session_token: None,
            retries: 5,
            retry_backoff: Duration::from_millis(100),
            request_timeout: Duration::from_secs(600),
        };
        let boolean = |k: &str, v: &str| match v {
            "true" | "1" | "yes" => Ok(true),
            "false" | "0" | "no" => Ok(false),
            _ => Err(bad(format!("{k}={v:?} is not true or false"))),
        };
        for (k, v) in u.query_pairs() {
            match &*k {
                "endpoint" => o.endpoint = Some(v.trim_end_matches('/').to_string()),
                "region" => o.region = Some(v.to_string()),
                "allow_http" => o.allow_http = boolean(&k, &v)?,
                "virtual_hosted" => o.virtual_hosted = boolean(&k, &v)?,
                "retries" => {
                    o.retries = v
                        .parse()
                        .ok()
                        .filter(|n| *n <= 100)
                        .ok_or_else(|| bad(format!("retries={v:?} is not a count up to 100")))?
                }
                "timeout_s" => {
                    o.request_timeout = v
                        .parse()
                        .ok()
                        .filter(|n| (1..=86_400).contains(n))
                        .map(Duration::from_secs)
                        .ok_or_else(|| bad(format!("timeout_s={v:?} is not 1..86400 seconds")))?
                }
                other => {
                    return Err(bad(format!(
                        "unknown option {other:?} (known: endpoint, region, allow_http, \
                         virtual_hosted, retries, timeout_s)"
                    )));
                }
            }
        }
        Ok(o)
    }

    /// The store named in messages: the URL without query (no secrets are ever in it).
    fn display_name(&self) -> String {
        let mut s = format!("s3://{}", self.bucket);
        if !self.prefix.is_empty() {
            s.push('/');
            s.push_str(&self.prefix);
        }
        if let Some(e) = &self.endpoint {
            s.push_str(&format!(" at {e}"));
        }
        s
    }
}

pub struct S3BlobStore {
    store: Arc<AmazonS3>,
    prefix: String,
    name: String,
}

impl S3BlobStore {
    /// Configure the client; makes no request (see [`S3BlobStore::check`]).
    pub fn new(o: &S3Options) -> Result<S3BlobStore, BlobError> {
        let name = o.display_name();
        // from_env: credentials (and a session token, if any) from the standard variables.
        let mut b = AmazonS3Builder::from_env()
            .with_bucket_name(&o.bucket)
            .with_allow_http(o.allow_http)
            .with_virtual_hosted_style_request(o.virtual_hosted)
            .with_retry(RetryConfig {
                backoff: BackoffConfig {
                    init_backoff: o.retry_backoff,
                    max_backoff: Duration::from_secs(15),
                    base: 2.0,
                },
                max_retries: o.retries,
                retry_timeout: Duration::from_secs(180),
            })
            .with_client_options(
                ClientOptions::new()
                    .with_allow_http(o.allow_http)
                    .with_connect_timeout(Duration::from_secs(10))
                    .with_timeout(o.request_timeout),
            );
        if let Some(e) = &o.endpoint {
            b = b.with_endpoint(e);
        }
        if let Some(r) = &o.region {
            b = b.with_region(r);
        }
        if let Some(k) = &o.access_key_id {
            b = b.with_access_key_id(k);
        }
        if let Some(k) = &o.secret_access_key {
            b = b.with_secret_access_key(k);
        }
        if let Some(t) = &o.session_token {
            b = b.with_token(t);
        }
        let store = b
            .build()
            .map_err(|e| BlobError::Config(format!("blob store {name}: {e}")))?;
        Ok(S3BlobStore {
            store: Arc::new(store),
            prefix: o.prefix.clone(),
            name,
        })
    }

    /// One listing request under the blob prefix, so a wrong endpoint, bucket or credentials
    /// fail at startup with the store named, not at the first upload. A listing rather than a
    /// HEAD: S3 answers a HEAD in a missing bucket with the same 404 as a missing key. Only the
    /// first page is fetched, however many blobs there are.
    pub async fn reach_bucket(&self) -> Result<(), BlobError> {
        let under = self.key_raw("sha256");
        match self.store.list(Some(&under)).next().await {
            None | Some(Ok(_)) => Ok(()),
            Some(Err(e)) => Err(self.remote("reaching the bucket", "(startup check)", e)),
        }
    }

    fn key_raw(&self, rest: &str) -> ObjectPath {
        if self.prefix.is_empty() {
            ObjectPath::from(rest)
        } else {
            ObjectPath::from(format!("{}/{rest}", self.prefix))
        }
    }

    fn key(&self, digest: &str) -> Result<ObjectPath, BlobError> {
        Ok(self.key_raw(&format!("sha256/{}", parse_digest(digest)?)))
    }

    /// A failed request as a [`BlobError`]: [`BlobError::Refused`] when the server turned the
    /// credentials down, [`BlobError::Remote`] otherwise.
    fn remote(&self, op: &str, digest: &str, e: impl Into<PutFail>) -> BlobError {
        let (store, op, digest) = (self.name.clone(), op.to_string(), digest.to_string());
        match e.into() {
            PutFail::Store(e) => match refusal(&e) {
                Some(why) => BlobError::Refused {
                    store,
                    op,
                    digest,
                    cause: format!(
                        "{why}; check AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and \
                         AWS_SESSION_TOKEN, and that they may use the bucket ({e})"
                    ),
                },
                None => BlobError::Remote {
                    store,
                    op,
                    digest,
                    cause: e.to_string(),
                },
            },
            PutFail::Local(cause) => BlobError::Remote {
                store,
                op,
                digest,
                cause,
            },
        }
    }

    async fn put_single(&self, key: &ObjectPath, staged: &Staged) -> Result<(), PutFail> {
        // Bounded: only files up to SINGLE_PUT_MAX come here.
        let data = tokio::fs::read(&staged.path)
            .await
            .map_err(|e| PutFail::Local(format!("reading {}: {e}", staged.path.display())))?;
        if data.len() as u64 != staged.size {
            return Err(PutFail::Local(format!(
                "staged file {} has {} bytes, {} were staged",
                staged.path.display(),
                data.len(),
                staged.size
            )));
        }
        self.store.put(key, PutPayload::from(data)).await?;
        Ok(())
    }

    async fn put_multipart(&self, key: &ObjectPath, staged: &Staged) -> Result<(), PutFail> {
        let upload = self.store.put_multipart(key).await?;
        let mut w = WriteMultipart::new_with_chunk_size(upload, PART_SIZE);
        match feed_parts(&mut w, staged).await {
            Ok(()) => {
                w.finish().await?;
                Ok(())
            }
            Err(e) => {
                // Parts already sent are not an object (never completed), but they would stay
                // on the server until a lifecycle rule removes them; abort drops them now.
                if let Err(a) = w.abort().await {
                    tracing::warn!("aborting the multipart upload of {key} failed too: {a}");
                }
                Err(e)
            }
        }
    }

    /// GET the blob and check the stream against `digest` as it is read.
    async fn get_verified(
        &self,
        digest: &str,
    ) -> Result<(tokio_util::io::StreamReader<ByteStream, bytes::Bytes>, u64), BlobError> {
        let key = self.key(digest)?;
        let got = match self.store.get(&key).await {
            Ok(g) => g,
            Err(object_store::Error::NotFound { .. }) => {
                return Err(BlobError::NotFound(digest.into()));
            }
            Err(e) => return Err(self.remote("downloading", digest, e)),
        };
        let size = got.meta.size;
        let name = self.name.clone();
        let stream = got
            .into_stream()
            .map_err(move |e| std::io::Error::other(format!("blob store {name}: {e}")));
        let verified = verifying_stream(Box::pin(stream), digest, size, self.name.clone());
        Ok((tokio_util::io::StreamReader::new(verified), size))
    }
}

/// Why an upload failed: the store's answer (kept whole, so a refusal can be told apart), or a
/// problem with the staged file on our side.
enum PutFail {
    Store(object_store::Error),
    Local(String),
}

impl From<object_store::Error> for PutFail {
    fn from(e: object_store::Error) -> PutFail {
        PutFail::Store(e)
    }
}

/// If the store refused the request's credentials, what it said, in words. S3 answers 403 (a
/// wrong signature, an unknown key, no permission) or, for a bad session token, 400
/// `InvalidToken`; it names the reason in the body's `<Code>` when there is a body (a HEAD
/// answer has none). object_store types most 401/403 answers as `Unauthenticated` or
/// `PermissionDenied` but wraps some (listing, starting a multipart upload) in `Generic`, where
/// the status and body are only in the message.
fn refusal(e: &object_store::Error) -> Option<String> {
    const AUTH_CODES: [&str; 7] = [
        "SignatureDoesNotMatch",
        "InvalidAccessKeyId",
        "InvalidToken",
        "ExpiredToken",
        "TokenRefreshRequired",
        "AccessDenied",
        "InvalidSecurity",
    ];
    let text = e.to_string();
    let code = text
        .split("<Code>")
        .nth(1)
        .and_then(|r| r.split('<').next());
    let status = text
        .split("status code: ")
        .nth(1)
        .and_then(|r| r.split(':').next())
        .map(str::trim);
    let typed = matches!(
        e,
        object_store::Error::PermissionDenied { .. } | object_store::Error::Unauthenticated { .. }
    );
    let auth_status = status.is_some_and(|s| s.starts_with("401") || s.starts_with("403"));
    if !typed && !auth_status && !code.is_some_and(|c| AUTH_CODES.contains(&c)) {
        return None;
    }
    let answer = match (status, code) {
        (Some(s), Some(c)) => format!("HTTP {s} {c}"),
        (Some(s), None) => format!("HTTP {s}"),
        (None, Some(c)) => format!("HTTP 403 {c}"),
        (None, None) => "HTTP 403".to_string(),
    };
    Some(match code {
        Some("SignatureDoesNotMatch") => format!(
            "the server refused the request signature ({answer}): the secret access key is not \
             the one for this access key"
        ),
        Some("InvalidAccessKeyId") => {
            format!("the server does not know the access key ({answer})")
        }
        Some("InvalidToken" | "ExpiredToken" | "TokenRefreshRequired") => {
            format!("the server refused the session token ({answer})")
        }
        _ => format!("the server refused these credentials ({answer})"),
    })
}

async fn feed_parts(w: &mut WriteMultipart, staged: &Staged) -> Result<(), PutFail> {
    let mut f = tokio::fs::File::open(&staged.path)
        .await
        .map_err(|e| PutFail::Local(format!("opening {}: {e}", staged.path.display())))?;
    let mut sent = 0u64;
    loop {
        // Back-pressure: never more than PARTS_IN_FLIGHT parts buffered and uploading.
        w.wait_for_capacity(PARTS_IN_FLIGHT).await?;
        let mut buf = vec![0u8; READ_CHUNK];
        let n = f
            .read(&mut buf)
            .await
            .map_err(|e| PutFail::Local(format!("reading {}: {e}", staged.path.display())))?;
        if n == 0 {
            break;
        }
        buf.truncate(n);
        sent += n as u64;
        w.put(bytes::Bytes::from(buf));
    }
    if sent != staged.size {
        return Err(PutFail::Local(format!(
            "staged file {} has {sent} bytes, {} were staged",
            staged.path.display(),
            staged.size
        )));
    }
    Ok(())
}

#[async_trait]
impl BlobStore for S3BlobStore {
    async fn exists(&self, digest: &str) -> Result<Option<u64>, BlobError> {
        match self.store.head(&self.key(digest)?).await {
            Ok(m) => Ok(Some(m.size)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(self.remote("checking", digest, e)),
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
        let key = self.key(digest)?;
        let r = if staged.size <= SINGLE_PUT_MAX {
            self.put_single(&key, &staged).await
        } else {
            self.put_multipart(&key, &staged).await
        };
        match r {
            Ok(()) => {
                // The store owns the bytes now; the staged copy is only disk space.
                let _ = tokio::fs::remove_file(&staged.path).await;
                Ok(())
            }
            // The staged file is kept: a resumable upload can be finished again.
            Err(e) => Err(self.remote("uploading", digest, e)),
        }
    }

    async fn local_path(&self, digest: &str, scratch: &Path) -> Result<PathBuf, BlobError> {
        let hex = parse_digest(digest)?.to_string();
        tokio::fs::create_dir_all(scratch).await?;
        let part = scratch.join(format!(".{hex}.{}.part", uuid::Uuid::new_v4().simple()));
        let dest = scratch.join(&hex);
        let r: Result<(), BlobError> = async {
            let (mut reader, _) = self.get_verified(digest).await?;
            let mut out =
                tokio::io::BufWriter::with_capacity(4 << 20, tokio::fs::File::create(&part).await?);
            // The verifying reader fails before EOF is reported when the bytes are wrong, so
            // a tampered blob never gets renamed to its digest's name.
            tokio::io::copy(&mut reader, &mut out)
                .await
                .map_err(|e| verify_error(e, &self.name, digest))?;
            out.flush().await?;
            Ok(())
        }
        .await;
        if let Err(e) = r {
            let _ = tokio::fs::remove_file(&part).await;
            return Err(e);
        }
        tokio::fs::rename(&part, &dest).await?;
        Ok(dest)
    }

    /// Readiness: the bucket answers (see [`S3BlobStore::reach_bucket`]).
    async fn check(&self) -> Result<(), BlobError> {
        self.reach_bucket().await
    }

    async fn open(&self, digest: &str) -> Result<(BlobReader, u64), BlobError> {
        let (r, size) = self.get_verified(digest).await?;
        Ok((Box::pin(r), size))
    }

    fn min_chunk(&self) -> u64 {
        S3_MIN_PART
    }

    fn max_chunks(&self) -> u32 {
        10_000
    }

    /// A multipart upload per resumable upload: each chunk is one part, uploaded by whichever
    /// API process receives it, its ETag kept in the metadata store. With the digest announced
    /// the upload targets the blob's own key (nothing is visible there until we complete it,
    /// after verifying the hash); without, a key under `uploads/`, copied at completion.
    async fn upload_begin(
        &self,
        id: &str,
        digest: Option<&str>,
    ) -> Result<UploadTarget, BlobError> {
        let key = match digest {
            Some(d) => self.key(d)?,
            None => self.key_raw(&format!("uploads/{id}")),
        };
        let upload_id = self
            .store
            .create_multipart(&key)
            .await
            .map_err(|e| self.remote("starting a multipart upload of", key.as_ref(), e))?;
        Ok(UploadTarget {
            id: id.into(),
            key: key.to_string(),
            upload_id: Some(upload_id),
        })
    }

    async fn upload_chunk(
        &self,
        t: &UploadTarget,
        seq: u32,
        _offset: u64,
    ) -> Result<Box<dyn ChunkSink>, BlobError> {
        let upload_id = t
            .upload_id
            .clone()
            .ok_or_else(|| BlobError::Config(format!("upload {} has no multipart id", t.id)))?;
        Ok(Box::new(S3Part {
            store: self.store.clone(),
            name: self.name.clone(),
            key: ObjectPath::from(t.key.as_str()),
            upload_id,
            seq,
            data: Vec::new(),
        }))
    }

    async fn upload_complete(
        &self,
        t: &UploadTarget,
        digest: &str,
        _size: u64,
        etags: Vec<Option<String>>,
    ) -> Result<(), BlobError> {
        let upload_id = t
            .upload_id
            .clone()
            .ok_or_else(|| BlobError::Config(format!("upload {} has no multipart id", t.id)))?;
        let parts = etags
            .into_iter()
            .map(|e| {
                e.map(|content_id| PartId { content_id }).ok_or_else(|| {
                    BlobError::Config(format!("upload {}: a part without ETag", t.id))
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let key = ObjectPath::from(t.key.as_str());
        // S3 checks each ETag against the part it holds: a part overwritten by a racing
        // request for the same chunk fails the completion instead of publishing other bytes.
        self.store
            .complete_multipart(&key, &upload_id, parts)
            .await
            .map_err(|e| self.remote("completing the multipart upload of", digest, e))?;
        let dest = self.key(digest)?;
        if key != dest {
            // CopyObject: up to 5 GiB on AWS. Clients that announce the digest at the start
            // (ours does) never come here.
            self.store
                .copy(&key, &dest)
                .await
                .map_err(|e| self.remote("copying the finished upload to", digest, e))?;
            if let Err(e) = self.store.delete(&key).await {
                tracing::warn!("deleting {key} after copying it to {dest}: {e}");
            }
        }
        Ok(())
    }

    async fn upload_abort(&self, t: &UploadTarget) -> Result<(), BlobError> {
        let Some(upload_id) = &t.upload_id else {
            return Ok(());
        };
        let key = ObjectPath::from(t.key.as_str());
        self.store
            .abort_multipart(&key, upload_id)
            .await
            .map_err(|e| self.remote("aborting the multipart upload of", &t.key, e))
    }
}

/// S3's smallest part but the last.
pub const S3_MIN_PART: u64 = 5 << 20;

/// One chunk of a resumable upload: gathered in memory (the server bounds a chunk's size)
/// because an S3 part needs its length up front, then sent as part `seq + 1`.
struct S3Part {
    store: Arc<AmazonS3>,
    name: String,
    key: ObjectPath,
    upload_id: String,
    seq: u32,
    data: Vec<bytes::Bytes>,
}

#[async_trait]
impl ChunkSink for S3Part {
    async fn write(&mut self, data: bytes::Bytes) -> Result<(), BlobError> {
        self.data.push(data);
        Ok(())
    }

    async fn finish(&mut self) -> Result<Option<String>, BlobError> {
        let payload: PutPayload = std::mem::take(&mut self.data).into_iter().collect();
        let part = self
            .store
            .put_part(&self.key, &self.upload_id, self.seq as usize, payload)
            .await
            .map_err(|e| BlobError::Remote {
                store: self.name.clone(),
                op: format!("uploading part {}", self.seq + 1),
                digest: self.key.to_string(),
                cause: e.to_string(),
            })?;
        Ok(Some(part.content_id))
    }
}

/// A verification failure travels through `io::Error` (that is what readers return); turn it
/// back into the typed error.
fn verify_error(e: std::io::Error, store: &str, digest: &str) -> BlobError {
    match e.get_ref().and_then(|i| i.downcast_ref::<Tampered>()) {
        Some(t) => BlobError::Mismatch {
            expected: digest.to_string(),
            actual: format!("{} (read back from {store})", t.0),
        },
        None => BlobError::Remote {
            store: store.to_string(),
            op: "downloading".into(),
            digest: digest.to_string(),
            cause: e.to_string(),
        },
    }
}

#[derive(Debug)]
struct Tampered(String);

impl std::fmt::Display for Tampered {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Tampered {}

type ByteStream = futures::stream::BoxStream<'static, std::io::Result<bytes::Bytes>>;

/// Passes the chunks through while hashing them; at the end of the stream it yields an error
/// instead of ending unless exactly `size` bytes with SHA-256 `digest` went by. It fails as soon
/// as the stream runs past `size`, so a server that sends too much cannot grow anything.
pub(crate) fn verifying_stream(
    inner: ByteStream,
    digest: &str,
    size: u64,
    store: String,
) -> ByteStream {
    struct St {
        inner: ByteStream,
        hasher: Sha256,
        expected_hex: String,
        size: u64,
        seen: u64,
        store: String,
        done: bool,
    }
    let fail = |store: &str, what: String| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            Tampered(format!("{what} (blob store {store})")),
        )
    };
    let st = St {
        inner,
        hasher: Sha256::new(),
        expected_hex: digest.strip_prefix("sha256:").unwrap_or(digest).to_string(),
        size,
        seen: 0,
        store,
        done: false,
    };
    Box::pin(futures::stream::unfold(st, move |mut st| async move {
        if st.done {
            return None;
        }
        match st.inner.next().await {
            Some(Ok(chunk)) => {
                st.seen += chunk.len() as u64;
                if st.seen > st.size {
                    st.done = true;
                    let e = fail(
                        &st.store,
                        format!("more bytes than the {} the object announced", st.size),
                    );
                    return Some((Err(e), st));
                }
                st.hasher.update(&chunk);
                Some((Ok(chunk), st))
            }
            Some(Err(e)) => {
                st.done = true;
                Some((Err(e), st))
            }
            None => {
                st.done = true;
                if st.seen != st.size {
                    let e = fail(
                        &st.store,
                        format!("got {} bytes, the object announced {}", st.seen, st.size),
                    );
                    return Some((Err(e), st));
                }
                let actual = hex::encode(std::mem::take(&mut st.hasher).finalize());
                if actual != st.expected_hex {
                    let e = fail(&st.store, format!("sha256:{actual}"));
                    return Some((Err(e), st));
                }
                None
            }
        }
    }))
}
