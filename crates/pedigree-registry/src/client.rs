//! A blocking HTTP client for the registry API (see [`crate::server`] for the routes and
//! `openapi.json` for the document the server serves).
//!
//! * [`Client::push`] uploads a model directory: each file is hashed while it is read, blobs the
//!   server already has are skipped (`HEAD /v1/blobs/{digest}`), small files go up in one
//!   request, large ones through the resumable protocol (`POST /v1/uploads`, `PATCH` chunks at
//!   `Upload-Offset`, `PUT ?digest=`), resuming from the server's offset after a failure; then
//!   the version is created.
//! * [`Client::pull`] downloads every file of a version into a temporary directory beside the
//!   destination, checks each size and SHA-256, and renames the directory into place only when
//!   everything verified: a failed pull leaves nothing behind.
//!
//! Every error from the server carries its `error.message` (and code and details).

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use reqwest::Method;
use reqwest::StatusCode;
use reqwest::Url;
use reqwest::blocking::{RequestBuilder, Response};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::audit::AuditEntry;
use crate::store::{Grant, NewFile};

/// Files below this size go up in one `PUT /v1/blobs/{digest}`.
pub const SINGLE_REQUEST_LIMIT: u64 = 64 << 20;
/// Chunk size of resumable uploads.
pub const CHUNK_SIZE: u64 = 32 << 20;
/// Consecutive failed attempts of one chunk (or one small blob) before giving up.
const MAX_RETRIES: u32 = 5;
/// Time limit of an ordinary API request; transfers get [`TRANSFER_TIMEOUT`].
const API_TIMEOUT: Duration = Duration::from_secs(120);
const TRANSFER_TIMEOUT: Duration = Duration::from_secs(30 * 60);

// ---------------------------------------------------------------------------------- errors

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The server answered with an error document.
    #[error("{message} (HTTP {status}, {code})")]
    Api {
        status: u16,
        code: String,
        message: String,
        details: Option<Value>,
    },
    #[error("cannot reach the registry at {url}: {source}")]
    Http {
        url: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Downloaded bytes that do not match what the server promised.
    #[error("integrity check failed: {0}")]
    Integrity(String),
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Timeout(String),
}

impl ClientError {
    /// The HTTP status of an API error.
    pub fn status(&self) -> Option<u16> {
        match self {
            ClientError::Api { status, .. } => Some(*status),
            _ => None,
        }
    }
    /// The server's `error.code` of an API error.
    pub fn code(&self) -> Option<&str> {
        match self {
            ClientError::Api { code, .. } => Some(code),
            _ => None,
        }
    }
    pub fn details(&self) -> Option<&Value> {
        match self {
            ClientError::Api { details, .. } => details.as_ref(),
            _ => None,
        }
    }
    /// Worth retrying: the connection failed, or the server had a transient problem.
    fn transient(&self) -> bool {
        match self {
            ClientError::Http { .. } => true,
            ClientError::Api { status, .. } => matches!(status, 500 | 502 | 503 | 504),
            _ => false,
        }
    }
}

pub type Result<T> = std::result::Result<T, ClientError>;

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> ClientError + '_ {
    move |source| ClientError::Io {
        path: path.to_path_buf(),
        source,
    }
}

// ---------------------------------------------------------------------------------- refs

/// `ns/name:version`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ModelRef {
    pub namespace: String,
    pub name: String,
    pub version: String,
}

impl ModelRef {
    pub fn parse(s: &str) -> Result<ModelRef> {
        crate::server::parse_ref(s)
            .map(|(namespace, name, version)| ModelRef { namespace, name, version })
            .ok_or_else(|| {
                ClientError::Invalid(format!(
                    "{s:?} is not a model reference: write namespace/name:version using [A-Za-z0-9._-]"
                ))
            })
    }
}

impl std::fmt::Display for ModelRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}:{}", self.namespace, self.name, self.version)
    }
}

impl std::str::FromStr for ModelRef {
    type Err = ClientError;
    fn from_str(s: &str) -> Result<ModelRef> {
        ModelRef::parse(s)
    }
}

// ---------------------------------------------------------------------------------- responses

/// `GET /v1/models/{ns}/{name}/versions/{ver}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct VersionStatus {
    pub model: String,
    /// `quarantined`, `approved`, `held` or `rejected`.
    pub state: String,
    #[serde(default)]
    pub identity: Option<String>,
    /// The policy decision (`outcome`, `reasons` with their rule ids), and an approver's
    /// `override` when there was one.
    #[serde(default)]
    pub decision: Option<Value>,
    #[serde(default)]
    pub downloadable: bool,
    #[serde(default)]
    pub flags: Vec<Flag>,
    #[serde(default)]
    pub lineage: Vec<LineageEdge>,
    #[serde(default)]
    pub findings: Vec<Value>,
    #[serde(default)]
    pub signature: Option<Value>,
    #[serde(default)]
    pub card: Option<Value>,
    #[serde(default)]
    pub deployments: Vec<Value>,
}

impl VersionStatus {
    /// The ingest has finished (approved, held or rejected).
    pub fn decided(&self) -> bool {
        self.state != "quarantined"
    }
    /// Rule ids named by the decision's reasons, in order, without repeats.
    pub fn decision_rules(&self) -> Vec<String> {
        decision_rules(self.decision.as_ref())
    }
}

/// Rule ids of a decision document's `reasons`.
pub fn decision_rules(decision: Option<&Value>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    if let Some(reasons) = decision
        .and_then(|d| d.get("reasons"))
        .and_then(Value::as_array)
    {
        for r in reasons {
            if let Some(rule) = r.get("rule").and_then(Value::as_str)
                && !out.iter().any(|x| x == rule)
            {
                out.push(rule.to_string());
            }
        }
    }
    out
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Flag {
    pub version_id: i64,
    pub advisory_id: String,
    /// `flagged` or `at_risk`.
    pub kind: String,
    #[serde(default)]
    pub via: Option<i64>,
    #[serde(default)]
    pub depth: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LineageEdge {
    pub parent: Option<String>,
    pub child: Option<String>,
    pub source: String,
    pub relation: String,
    pub confidence: f64,
    #[serde(default)]
    pub evidence: Value,
}

/// What [`Client::push`] did.
#[derive(Debug, Clone, Serialize)]
pub struct PushReport {
    pub model: String,
    /// The version's id on the server.
    pub id: i64,
    /// The state the server answered (`quarantined`).
    pub state: String,
    pub files: Vec<NewFile>,
    /// Files whose bytes went up (the others the server already had).
    pub uploaded: usize,
    pub skipped: usize,
    pub bytes_uploaded: u64,
}

/// Tunables of [`Client::push`]; the defaults are the protocol's.
#[derive(Debug, Clone, Copy)]
pub struct PushOptions {
    /// Files of at least this size use the resumable protocol.
    pub single_request_limit: u64,
    pub chunk_size: u64,
}

impl Default for PushOptions {
    fn default() -> Self {
        PushOptions {
            single_request_limit: SINGLE_REQUEST_LIMIT,
            chunk_size: CHUNK_SIZE,
        }
    }
}

/// What [`Client::pull`] wrote.
#[derive(Debug, Clone, Serialize)]
pub struct PullReport {
    pub model: String,
    pub identity: Option<String>,
    pub dir: PathBuf,
    pub files: Vec<NewFile>,
    pub bytes: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CreatedToken {
    pub id: String,
    /// Shown once; the server keeps only its hash.
    pub token: String,
}

/// `POST /v1/advisories`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FlagRequest {
    pub id: String,
    /// low | medium | high | critical
    pub severity: String,
    pub summary: String,
    #[serde(default)]
    pub trigger: Option<String>,
    /// `ns/name:version` of each version the advisory names.
    pub versions: Vec<String>,
}

// ---------------------------------------------------------------------------------- client

pub struct Client {
    base: Url,
    token: Option<String>,
    http: reqwest::blocking::Client,
}

/// The local file of a model directory to push.
struct LocalFile {
    rel: String,
    path: PathBuf,
    size: u64,
}

impl Client {
    /// `base` is the server's URL (`http://127.0.0.1:8470`); `token` a `pdg_…` API token.
    pub fn new(base: &str, token: Option<String>) -> Result<Client> {
        let mut base = Url::parse(base)
            .map_err(|e| ClientError::Invalid(format!("bad registry URL {base:?}: {e}")))?;
        if !matches!(base.scheme(), "http" | "https") || base.cannot_be_a_base() {
            return Err(ClientError::Invalid(format!(
                "bad registry URL {base}: use http(s)://host[:port]"
            )));
        }
        base.set_query(None);
        base.set_fragment(None);
        let http = reqwest::blocking::Client::builder()
            .connect_timeout(Duration::from_secs(15))
            .timeout(None)
            .user_agent(concat!("pedigree/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| ClientError::Http {
                url: base.to_string(),
                source: e,
            })?;
        Ok(Client {
            base,
            token: token.filter(|t| !t.trim().is_empty()),
            http,
        })
    }

    pub fn base_url(&self) -> &Url {
        &self.base
    }

    /// The URL of `segments` (each one percent-encoded) below the base.
    pub fn url<S: AsRef<str>>(&self, segments: &[S]) -> Url {
        let mut u = self.base.clone();
        {
            let mut p = u.path_segments_mut().expect("checked in new()");
            p.pop_if_empty();
            for s in segments {
                p.push(s.as_ref());
            }
        }
        u
    }

    fn request(&self, method: Method, url: Url) -> RequestBuilder {
        let mut rb = self.http.request(method, url).timeout(API_TIMEOUT);
        if let Some(t) = &self.token {
            rb = rb.bearer_auth(t.trim());
        }
        rb
    }

    /// Send; an error status becomes [`ClientError::Api`] with the server's message.
    fn send(&self, rb: RequestBuilder) -> Result<Response> {
        let req = rb.build().map_err(|e| ClientError::Http {
            url: self.base.to_string(),
            source: e,
        })?;
        let url = req.url().clone();
        let resp = self.http.execute(req).map_err(|e| ClientError::Http {
            url: url.to_string(),
            source: e,
        })?;
        if resp.status().is_success() {
            return Ok(resp);
        }
        Err(api_error(resp))
    }

    fn json<T: DeserializeOwned>(&self, rb: RequestBuilder) -> Result<T> {
        let resp = self.send(rb)?;
        let url = resp.url().to_string();
        resp.json::<T>()
            .map_err(|e| ClientError::Http { url, source: e })
    }

    fn get_json<T: DeserializeOwned, S: AsRef<str>>(&self, segments: &[S]) -> Result<T> {
        self.json(self.request(Method::GET, self.url(segments)))
    }

    fn version_url(&self, r: &ModelRef, tail: &[&str]) -> Url {
        let mut segs: Vec<&str> = vec![
            "v1",
            "models",
            &r.namespace,
            &r.name,
            "versions",
            &r.version,
        ];
        segs.extend_from_slice(tail);
        self.url(&segs)
    }

    // ------------------------------------------------------------------ meta

    /// `GET /healthz`.
    pub fn health(&self) -> Result<()> {
        self.send(self.request(Method::GET, self.url(&["healthz"])))
            .map(|_| ())
    }

    /// `GET /v1/openapi.json`.
    pub fn openapi(&self) -> Result<Value> {
        self.get_json(&["v1", "openapi.json"])
    }

    /// `GET /v1/jobs` (admin): ingest job counts by state.
    pub fn jobs(&self) -> Result<Value> {
        self.get_json(&["v1", "jobs"])
    }

    // ------------------------------------------------------------------ tokens

    /// `POST /v1/tokens` (admin).
    pub fn create_token(&self, name: &str, grants: &[Grant]) -> Result<CreatedToken> {
        self.json(
            self.request(Method::POST, self.url(&["v1", "tokens"]))
                .json(&json!({"name": name, "grants": grants})),
        )
    }

    /// `DELETE /v1/tokens/{id}` (admin).
    pub fn revoke_token(&self, id: &str) -> Result<()> {
        self.send(self.request(Method::DELETE, self.url(&["v1", "tokens", id])))
            .map(|_| ())
    }

    // ------------------------------------------------------------------ blobs and uploads

    /// `HEAD /v1/blobs/{digest}`: the blob's size when the server has it.
    pub fn blob_size(&self, digest: &str) -> Result<Option<u64>> {
        let rb = self.request(Method::HEAD, self.url(&["v1", "blobs", digest]));
        let req = rb.build().map_err(|e| ClientError::Http {
            url: self.base.to_string(),
            source: e,
        })?;
        let url = req.url().to_string();
        let resp = self
            .http
            .execute(req)
            .map_err(|e| ClientError::Http { url, source: e })?;
        match resp.status() {
            StatusCode::NOT_FOUND => Ok(None),
            s if s.is_success() => Ok(Some(header_u64(&resp, "content-length").ok_or_else(
                || ClientError::Invalid("HEAD /v1/blobs answered without a Content-Length".into()),
            )?)),
            _ => Err(head_error(resp, "checking blobs needs a publisher role")),
        }
    }

    /// `PUT /v1/blobs/{digest}` with the whole body.
    pub fn put_blob(&self, digest: &str, bytes: Vec<u8>) -> Result<u64> {
        let v: Value = self.json(
            self.request(Method::PUT, self.url(&["v1", "blobs", digest]))
                .timeout(TRANSFER_TIMEOUT)
                .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
                .body(bytes),
        )?;
        Ok(v.get("size").and_then(Value::as_u64).unwrap_or(0))
    }

    /// `POST /v1/uploads`: a new resumable upload session; its id.
    pub fn start_upload(&self) -> Result<String> {
        let v: Value = self.json(self.request(Method::POST, self.url(&["v1", "uploads"])))?;
        v.get("id")
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| ClientError::Invalid("POST /v1/uploads answered without an id".into()))
    }

    /// `POST /v1/uploads` announcing the blob's digest and size: the server refuses chunks past
    /// the size and a completion under another digest, and an S3-backed server uploads straight
    /// to the blob's key.
    pub fn start_upload_for(&self, digest: &str, size: u64) -> Result<String> {
        let v: Value = self.json(
            self.request(Method::POST, self.url(&["v1", "uploads"]))
                .json(&json!({"digest": digest, "size": size})),
        )?;
        v.get("id")
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| ClientError::Invalid("POST /v1/uploads answered without an id".into()))
    }

    /// `HEAD /v1/uploads/{id}`: the bytes the server holds durably.
    pub fn upload_offset(&self, id: &str) -> Result<u64> {
        let rb = self.request(Method::HEAD, self.url(&["v1", "uploads", id]));
        let req = rb.build().map_err(|e| ClientError::Http {
            url: self.base.to_string(),
            source: e,
        })?;
        let url = req.url().to_string();
        let resp = self
            .http
            .execute(req)
            .map_err(|e| ClientError::Http { url, source: e })?;
        if !resp.status().is_success() {
            return Err(head_error(resp, "this upload belongs to another token"));
        }
        header_u64(&resp, "upload-offset").ok_or_else(|| {
            ClientError::Invalid("HEAD /v1/uploads answered without Upload-Offset".into())
        })
    }

    /// `PATCH /v1/uploads/{id}` with `Upload-Offset: offset`; the new offset.
    pub fn upload_chunk(&self, id: &str, offset: u64, chunk: Vec<u8>) -> Result<u64> {
        let resp = self.send(
            self.request(Method::PATCH, self.url(&["v1", "uploads", id]))
                .timeout(TRANSFER_TIMEOUT)
                .header("Upload-Offset", offset.to_string())
                .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
                .body(chunk),
        )?;
        header_u64(&resp, "upload-offset").ok_or_else(|| {
            ClientError::Invalid("PATCH /v1/uploads answered without Upload-Offset".into())
        })
    }

    /// `PUT /v1/uploads/{id}?digest=`: the server checks the digest and publishes the blob.
    pub fn finish_upload(&self, id: &str, digest: &str) -> Result<u64> {
        let mut url = self.url(&["v1", "uploads", id]);
        url.query_pairs_mut().append_pair("digest", digest);
        let v: Value = self.json(self.request(Method::PUT, url).timeout(TRANSFER_TIMEOUT))?;
        Ok(v.get("size").and_then(Value::as_u64).unwrap_or(0))
    }

    /// Upload `path` (of `size` bytes and SHA-256 `digest`) through the resumable protocol;
    /// `session` resumes an existing upload (from the offset the server reports).
    pub fn upload_resumable(
        &self,
        path: &Path,
        digest: &str,
        size: u64,
        chunk_size: u64,
        session: Option<&str>,
    ) -> Result<u64> {
        let chunk_size = chunk_size.max(1);
        let id = match session {
            Some(s) => s.to_string(),
            None => self.start_upload_for(digest, size)?,
        };
        let mut f = File::open(path).map_err(io_err(path))?;
        let mut offset = if session.is_some() {
            self.upload_offset(&id)?
        } else {
            0
        };
        let mut failures = 0u32;
        while offset < size {
            let n = chunk_size.min(size - offset) as usize;
            let mut buf = vec![0u8; n];
            f.seek(SeekFrom::Start(offset)).map_err(io_err(path))?;
            f.read_exact(&mut buf).map_err(io_err(path))?;
            match self.upload_chunk(&id, offset, buf) {
                Ok(new) => {
                    failures = 0;
                    if new <= offset || new > size {
                        return Err(ClientError::Invalid(format!(
                            "upload {id}: the server reports offset {new} after a chunk at {offset} of {size}"
                        )));
                    }
                    offset = new;
                }
                Err(e)
                    // upload_busy: another request (an earlier attempt of this chunk whose
                    // answer was lost) still holds the upload; it ends soon.
                    if (e.transient()
                        || e.code() == Some("offset_mismatch")
                        || e.code() == Some("upload_busy"))
                        && failures < MAX_RETRIES =>
                {
                    failures += 1;
                    tracing::warn!("upload {id}: chunk at {offset} failed ({e}); resuming");
                    std::thread::sleep(backoff(failures));
                    // Resume from what the server really holds.
                    offset = match self.upload_offset(&id) {
                        Ok(o) => o,
                        Err(e2) if e2.transient() => offset,
                        Err(e2) => return Err(e2),
                    };
                    if offset > size {
                        return Err(ClientError::Invalid(format!(
                            "upload {id}: the server holds {offset} bytes of a {size}-byte file"
                        )));
                    }
                }
                Err(e) => return Err(e),
            }
        }
        let mut failures = 0u32;
        loop {
            match self.finish_upload(&id, digest) {
                Ok(n) => return Ok(n),
                Err(e) if e.transient() && failures < MAX_RETRIES => {
                    failures += 1;
                    std::thread::sleep(backoff(failures));
                }
                Err(e) => return Err(e),
            }
        }
    }

    // ------------------------------------------------------------------ push

    /// Push a model directory as `model` with the default protocol sizes.
    pub fn push(&self, dir: &Path, model: &ModelRef) -> Result<PushReport> {
        self.push_with(dir, model, PushOptions::default())
    }

    pub fn push_with(&self, dir: &Path, model: &ModelRef, opts: PushOptions) -> Result<PushReport> {
        let local = walk_model_dir(dir)?;
        let mut files = Vec::with_capacity(local.len());
        let (mut uploaded, mut skipped, mut bytes_uploaded) = (0usize, 0usize, 0u64);
        for lf in &local {
            // Small files: read once, hash, and send the same bytes.
            let (digest, size, bytes) = if lf.size < opts.single_request_limit {
                let bytes = std::fs::read(&lf.path).map_err(io_err(&lf.path))?;
                let d = format!("sha256:{}", hex::encode(Sha256::digest(&bytes)));
                (d, bytes.len() as u64, Some(bytes))
            } else {
                let (d, n) = sha256_file(&lf.path)?;
                (d, n, None)
            };
            match self.blob_size(&digest)? {
                Some(n) if n == size => {
                    skipped += 1;
                    tracing::info!("{}: the server has {digest}", lf.rel);
                }
                _ => {
                    match bytes {
                        Some(b) => {
                            let mut failures = 0u32;
                            loop {
                                match self.put_blob(&digest, b.clone()) {
                                    Ok(_) => break,
                                    Err(e) if e.transient() && failures < MAX_RETRIES => {
                                        failures += 1;
                                        std::thread::sleep(backoff(failures));
                                    }
                                    Err(e) => return Err(e),
                                }
                            }
                        }
                        None => {
                            self.upload_resumable(&lf.path, &digest, size, opts.chunk_size, None)?;
                        }
                    }
                    uploaded += 1;
                    bytes_uploaded += size;
                    tracing::info!("{}: uploaded {size} bytes as {digest}", lf.rel);
                }
            }
            files.push(NewFile {
                path: lf.rel.clone(),
                digest,
                size,
            });
        }
        let v = self.create_version(model, &files)?;
        Ok(PushReport {
            model: model.to_string(),
            id: v.get("id").and_then(Value::as_i64).unwrap_or(-1),
            state: v
                .get("state")
                .and_then(Value::as_str)
                .unwrap_or("quarantined")
                .to_string(),
            files,
            uploaded,
            skipped,
            bytes_uploaded,
        })
    }

    /// `POST /v1/models/{ns}/{name}/versions` over blobs already uploaded.
    pub fn create_version(&self, model: &ModelRef, files: &[NewFile]) -> Result<Value> {
        self.json(
            self.request(
                Method::POST,
                self.url(&["v1", "models", &model.namespace, &model.name, "versions"]),
            )
            .json(&json!({"version": model.version, "files": files})),
        )
    }

    // ------------------------------------------------------------------ read

    /// `GET /v1/models/{ns}/{name}/versions/{ver}`.
    pub fn status(&self, model: &ModelRef) -> Result<VersionStatus> {
        self.json(self.request(Method::GET, self.version_url(model, &[])))
    }

    /// The same, as the server's JSON.
    pub fn status_json(&self, model: &ModelRef) -> Result<Value> {
        self.json(self.request(Method::GET, self.version_url(model, &[])))
    }

    /// Poll the status until the ingest has decided (or `timeout` passes).
    pub fn wait_decided(&self, model: &ModelRef, timeout: Duration) -> Result<VersionStatus> {
        let start = Instant::now();
        let mut pause = Duration::from_millis(50);
        loop {
            let s = self.status(model)?;
            if s.decided() {
                return Ok(s);
            }
            if start.elapsed() >= timeout {
                return Err(ClientError::Timeout(format!(
                    "{model} is still {} after {:.0?}",
                    s.state,
                    start.elapsed()
                )));
            }
            std::thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_secs(1));
        }
    }

    /// `GET /v1/models?namespace=&state=&limit=`.
    pub fn list_models(
        &self,
        namespace: Option<&str>,
        state: Option<&str>,
        limit: Option<i64>,
    ) -> Result<Value> {
        let mut url = self.url(&["v1", "models"]);
        {
            let mut q = url.query_pairs_mut();
            if let Some(n) = namespace {
                q.append_pair("namespace", n);
            }
            if let Some(s) = state {
                q.append_pair("state", s);
            }
            if let Some(l) = limit {
                q.append_pair("limit", &l.to_string());
            }
        }
        if url.query() == Some("") {
            url.set_query(None);
        }
        self.json(self.request(Method::GET, url))
    }

    /// `GET …/files`: the file list of a downloadable version.
    pub fn files(&self, model: &ModelRef) -> Result<(Option<String>, Vec<NewFile>)> {
        #[derive(Deserialize)]
        struct Files {
            identity: Option<String>,
            files: Vec<NewFile>,
        }
        let f: Files = self.json(self.request(Method::GET, self.version_url(model, &["files"])))?;
        Ok((f.identity, f.files))
    }

    /// `GET …/files/{path}`: the raw response (for streaming).
    pub fn download(&self, model: &ModelRef, path: &str) -> Result<Response> {
        let mut segs: Vec<&str> = vec![
            "v1",
            "models",
            &model.namespace,
            &model.name,
            "versions",
            &model.version,
            "files",
        ];
        segs.extend(path.split('/'));
        self.send(
            self.request(Method::GET, self.url(&segs))
                .timeout(TRANSFER_TIMEOUT),
        )
    }

    /// `GET …/reports/{kind}` (`analysis`, `fingerprint`, `bom`).
    pub fn report(&self, model: &ModelRef, kind: &str) -> Result<Value> {
        self.json(self.request(Method::GET, self.version_url(model, &["reports", kind])))
    }

    /// Download every file of `model` into `dest` (which must not exist, or be empty). Files
    /// land in a temporary directory beside `dest`; each is checked against its size and
    /// SHA-256; only then is the directory renamed into place.
    pub fn pull(&self, model: &ModelRef, dest: &Path) -> Result<PullReport> {
        if let Ok(mut rd) = std::fs::read_dir(dest) {
            if rd.next().is_some() {
                return Err(ClientError::Invalid(format!(
                    "{}: the destination exists and is not empty",
                    dest.display()
                )));
            }
        } else if dest.exists() {
            return Err(ClientError::Invalid(format!(
                "{}: exists and is not a directory",
                dest.display()
            )));
        }
        let (identity, files) = self.files(model)?;
        let parent = match dest.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        std::fs::create_dir_all(&parent).map_err(io_err(&parent))?;
        let tmp = tempfile::Builder::new()
            .prefix(".pedigree-pull-")
            .tempdir_in(&parent)
            .map_err(io_err(&parent))?;
        let mut bytes = 0u64;
        for f in &files {
            let rel = crate::server::safe_relative_path(&f.path).ok_or_else(|| {
                ClientError::Integrity(format!("the server lists an unsafe path {:?}", f.path))
            })?;
            crate::blob::parse_digest(&f.digest)
                .map_err(|e| ClientError::Integrity(format!("{}: {e}", f.path)))?;
            let target = tmp.path().join(&rel);
            if let Some(p) = target.parent() {
                std::fs::create_dir_all(p).map_err(io_err(p))?;
            }
            let mut resp = self.download(model, &f.path)?;
            if let Some(d) = resp
                .headers()
                .get("x-pedigree-digest")
                .and_then(|h| h.to_str().ok())
                && d != f.digest
            {
                return Err(ClientError::Integrity(format!(
                    "{}: listed as {} but served as {d}",
                    f.path, f.digest
                )));
            }
            let mut out = File::create(&target).map_err(io_err(&target))?;
            let mut h = Sha256::new();
            let mut n = 0u64;
            let mut buf = vec![0u8; 1 << 20];
            loop {
                let k = resp.read(&mut buf).map_err(io_err(&target))?;
                if k == 0 {
                    break;
                }
                n += k as u64;
                if n > f.size {
                    return Err(ClientError::Integrity(format!(
                        "{}: more than the {} bytes listed",
                        f.path, f.size
                    )));
                }
                h.update(&buf[..k]);
                out.write_all(&buf[..k]).map_err(io_err(&target))?;
            }
            let got = format!("sha256:{}", hex::encode(h.finalize()));
            if n != f.size {
                return Err(ClientError::Integrity(format!(
                    "{}: {n} bytes, expected {}",
                    f.path, f.size
                )));
            }
            if got != f.digest {
                return Err(ClientError::Integrity(format!(
                    "{}: SHA-256 {got}, expected {}",
                    f.path, f.digest
                )));
            }
            out.sync_all().map_err(io_err(&target))?;
            bytes += n;
        }
        // An empty destination directory is replaced; rename refuses to replace a non-empty one.
        if dest.is_dir() {
            std::fs::remove_dir(dest).map_err(io_err(dest))?;
        }
        let kept = tmp.keep();
        if let Err(e) = std::fs::rename(&kept, dest) {
            let _ = std::fs::remove_dir_all(&kept);
            return Err(ClientError::Io {
                path: dest.to_path_buf(),
                source: e,
            });
        }
        if let Ok(d) = File::open(&parent) {
            let _ = d.sync_all();
        }
        Ok(PullReport {
            model: model.to_string(),
            identity,
            dir: dest.to_path_buf(),
            files,
            bytes,
        })
    }

    // ------------------------------------------------------------------ decisions and policy

    /// `POST …/decision`: an approver approves or rejects a held (or decided) version.
    pub fn decide(&self, model: &ModelRef, approve: bool, reason: &str) -> Result<Value> {
        self.json(
            self.request(Method::POST, self.version_url(model, &["decision"]))
                .json(&json!({"state": if approve { "approved" } else { "rejected" }, "reason": reason})),
        )
    }

    /// `POST /v1/policy/test`: a dry run. `analysis` tests a model not in the registry (computed
    /// locally with [`crate::analysis::analyze`]); `policy` is TOML text to try instead of the
    /// server's.
    pub fn policy_test(
        &self,
        model: &ModelRef,
        analysis: Option<&crate::analysis::Analysis>,
        policy: Option<&str>,
    ) -> Result<Value> {
        self.json(
            self.request(Method::POST, self.url(&["v1", "policy", "test"]))
                .json(&json!({"model": model.to_string(), "analysis": analysis, "policy": policy})),
        )
    }

    // ------------------------------------------------------------------ advisories

    /// `POST /v1/advisories`: flag versions and cascade.
    pub fn flag(&self, req: &FlagRequest) -> Result<Value> {
        self.json(
            self.request(Method::POST, self.url(&["v1", "advisories"]))
                .json(req),
        )
    }

    /// `POST /v1/advisories/{id}/withdraw`.
    pub fn unflag(&self, advisory: &str, justification: &str) -> Result<Value> {
        if justification.trim().is_empty() {
            return Err(ClientError::Invalid(
                "unflagging needs a justification".into(),
            ));
        }
        self.json(
            self.request(
                Method::POST,
                self.url(&["v1", "advisories", advisory, "withdraw"]),
            )
            .json(&json!({"justification": justification})),
        )
    }

    /// `GET /v1/advisories`.
    pub fn advisories(&self) -> Result<Value> {
        self.get_json(&["v1", "advisories"])
    }

    /// `GET /v1/advisories/{id}/impact`.
    pub fn advisory_impact(&self, advisory: &str) -> Result<Value> {
        self.get_json(&["v1", "advisories", advisory, "impact"])
    }

    /// `GET /v1/impact/{ns}/{name}/versions/{ver}`: the impact of every advisory touching it.
    pub fn version_impact(&self, model: &ModelRef) -> Result<Value> {
        self.get_json(&[
            "v1",
            "impact",
            &model.namespace,
            &model.name,
            "versions",
            &model.version,
        ])
    }

    /// `GET /v1/advisories/feed`: the feed document, as served.
    pub fn export_advisories(&self) -> Result<String> {
        let resp = self.send(self.request(Method::GET, self.url(&["v1", "advisories", "feed"])))?;
        let url = resp.url().to_string();
        resp.text()
            .map_err(|e| ClientError::Http { url, source: e })
    }

    /// `POST /v1/advisories/feed` (admin).
    pub fn import_advisories(&self, feed: Vec<u8>) -> Result<Value> {
        self.json(
            self.request(Method::POST, self.url(&["v1", "advisories", "feed"]))
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(feed),
        )
    }

    // ------------------------------------------------------------------ deployments, webhooks

    /// `PUT /v1/deployments/{name}/{env}`.
    pub fn deploy(&self, name: &str, environment: &str, model: &ModelRef) -> Result<Value> {
        self.json(
            self.request(
                Method::PUT,
                self.url(&["v1", "deployments", name, environment]),
            )
            .json(&json!({"model": model.to_string()})),
        )
    }

    /// `GET /v1/deployments`.
    pub fn deployments(&self) -> Result<Value> {
        self.get_json(&["v1", "deployments"])
    }

    /// `POST /v1/webhooks` (admin); the webhook's id.
    pub fn add_webhook(&self, url: &str, secret: &str, events: Option<&str>) -> Result<i64> {
        let v: Value = self.json(
            self.request(Method::POST, self.url(&["v1", "webhooks"]))
                .json(&json!({"url": url, "secret": secret, "events": events})),
        )?;
        v.get("id")
            .and_then(Value::as_i64)
            .ok_or_else(|| ClientError::Invalid("POST /v1/webhooks answered without an id".into()))
    }

    // ------------------------------------------------------------------ audit

    /// `GET /v1/audit?from=&limit=` (admin): one page.
    pub fn audit_page(&self, from: i64, limit: i64) -> Result<Vec<AuditEntry>> {
        #[derive(Deserialize)]
        struct Page {
            entries: Vec<AuditEntry>,
        }
        let mut url = self.url(&["v1", "audit"]);
        url.query_pairs_mut()
            .append_pair("from", &from.to_string())
            .append_pair("limit", &limit.to_string());
        let p: Page = self.json(self.request(Method::GET, url))?;
        Ok(p.entries)
    }

    /// Every audit entry, fetched page by page.
    pub fn audit_all(&self) -> Result<Vec<AuditEntry>> {
        const PAGE: i64 = 1000;
        let mut out: Vec<AuditEntry> = Vec::new();
        let mut from = 1;
        loop {
            let page = self.audit_page(from, PAGE)?;
            let n = page.len() as i64;
            let last = page.last().map(|e| e.seq);
            out.extend(page);
            match last {
                Some(seq) if n == PAGE => {
                    if seq < from {
                        return Err(ClientError::Invalid(format!(
                            "the audit log went backwards: asked from {from}, got up to {seq}"
                        )));
                    }
                    from = seq + 1;
                }
                _ => return Ok(out),
            }
        }
    }
}

/// A HEAD answer has no body, so no server message: say what the status means there.
fn head_error(resp: Response, forbidden: &str) -> ClientError {
    let status = resp.status();
    let message = match status.as_u16() {
        401 => {
            "missing, invalid or revoked API token (pass --token or set PEDIGREE_TOKEN)".to_string()
        }
        403 => forbidden.to_string(),
        404 => "not found".to_string(),
        _ => status.canonical_reason().unwrap_or("error").to_string(),
    };
    let code = match status.as_u16() {
        401 => "unauthenticated",
        403 => "forbidden",
        404 => "not_found",
        _ => "error",
    };
    ClientError::Api {
        status: status.as_u16(),
        code: code.into(),
        message,
        details: None,
    }
}

fn api_error(resp: Response) -> ClientError {
    let status = resp.status();
    let text = resp.text().unwrap_or_default();
    let parsed: Option<Value> = serde_json::from_str(&text).ok();
    let err = parsed.as_ref().and_then(|v| v.get("error"));
    let message = err
        .and_then(|e| e.get("message"))
        .and_then(Value::as_str)
        .map(str::to_string)
        .unwrap_or_else(|| {
            let t = text.trim();
            if t.is_empty() {
                status.canonical_reason().unwrap_or("error").to_string()
            } else {
                t.chars().take(500).collect()
            }
        });
    ClientError::Api {
        status: status.as_u16(),
        code: err
            .and_then(|e| e.get("code"))
            .and_then(Value::as_str)
            .unwrap_or(status.canonical_reason().unwrap_or("error"))
            .to_string(),
        message,
        details: err.and_then(|e| e.get("details")).cloned(),
    }
}

fn header_u64(resp: &Response, name: &str) -> Option<u64> {
    resp.headers().get(name)?.to_str().ok()?.trim().parse().ok()
}

fn backoff(attempt: u32) -> Duration {
    Duration::from_millis(200u64 << attempt.min(5))
}

/// SHA-256 (`sha256:<hex>`) and size of a file, read once.
pub fn sha256_file(path: &Path) -> Result<(String, u64)> {
    let mut f = File::open(path).map_err(io_err(path))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut n = 0u64;
    loop {
        let k = f.read(&mut buf).map_err(io_err(path))?;
        if k == 0 {
            break;
        }
        h.update(&buf[..k]);
        n += k as u64;
    }
    Ok((format!("sha256:{}", hex::encode(h.finalize())), n))
}

/// The regular files of a model directory, by `/`-separated relative path, sorted; `.git` is
/// skipped; symbolic links are followed (a Hugging Face snapshot is made of them).
fn walk_model_dir(dir: &Path) -> Result<Vec<LocalFile>> {
    let meta = std::fs::metadata(dir).map_err(io_err(dir))?;
    if !meta.is_dir() {
        return Err(ClientError::Invalid(format!(
            "{}: not a directory",
            dir.display()
        )));
    }
    let mut out = Vec::new();
    let walker = walkdir::WalkDir::new(dir)
        .follow_links(true)
        .sort_by_file_name()
        .into_iter()
        .filter_entry(|e| !(e.depth() > 0 && e.file_type().is_dir() && e.file_name() == ".git"));
    for e in walker {
        let e = e.map_err(|e| {
            let path = e
                .path()
                .map(Path::to_path_buf)
                .unwrap_or_else(|| dir.to_path_buf());
            ClientError::Io {
                path,
                source: e.into(),
            }
        })?;
        if e.file_type().is_dir() {
            continue;
        }
        if !e.file_type().is_file() {
            return Err(ClientError::Invalid(format!(
                "{}: not a regular file (sockets, devices and fifos cannot be pushed)",
                e.path().display()
            )));
        }
        let rel = e
            .path()
            .strip_prefix(dir)
            .expect("walkdir stays under its root");
        let mut parts = Vec::new();
        for c in rel.components() {
            let s = c.as_os_str().to_str().ok_or_else(|| {
                ClientError::Invalid(format!("{}: file names must be UTF-8", e.path().display()))
            })?;
            parts.push(s);
        }
        let rel = parts.join("/");
        if crate::server::safe_relative_path(&rel).is_none() {
            return Err(ClientError::Invalid(format!(
                "{}: a path the registry refuses",
                e.path().display()
            )));
        }
        let size = e
            .metadata()
            .map_err(|er| ClientError::Io {
                path: e.path().into(),
                source: er.into(),
            })?
            .len();
        out.push(LocalFile {
            rel,
            path: e.path().to_path_buf(),
            size,
        });
    }
    if out.is_empty() {
        return Err(ClientError::Invalid(format!(
            "{}: no files to push",
            dir.display()
        )));
    }
    out.sort_by(|a, b| a.rel.cmp(&b.rel));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_refs() {
        let r = ModelRef::parse("acme/fraud-bert:1.2.0").unwrap();
        assert_eq!(
            (r.namespace.as_str(), r.name.as_str(), r.version.as_str()),
            ("acme", "fraud-bert", "1.2.0")
        );
        assert_eq!(r.to_string(), "acme/fraud-bert:1.2.0");
        for bad in [
            "acme/fraud-bert",
            "fraud-bert:1",
            "a/b/c:1",
            "acme/.x:1",
            "acme/x:",
            "/x:1",
        ] {
            assert!(ModelRef::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn urls_encode_segments_under_a_prefix() {
        let c = Client::new("http://h:1/reg/", None).unwrap();
        assert_eq!(
            c.url(&["v1", "models", "a b", "x?y"]).as_str(),
            "http://h:1/reg/v1/models/a%20b/x%3Fy"
        );
        let c = Client::new("http://h:1", None).unwrap();
        assert_eq!(c.url(&["healthz"]).as_str(), "http://h:1/healthz");
        assert!(Client::new("ftp://h", None).is_err());
    }

    #[test]
    fn walk_skips_git_and_sorts() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join(".git/objects")).unwrap();
        std::fs::write(d.path().join(".git/objects/x"), b"x").unwrap();
        std::fs::create_dir_all(d.path().join("sub")).unwrap();
        std::fs::write(d.path().join("sub/b.bin"), b"bb").unwrap();
        std::fs::write(d.path().join("a.txt"), b"a").unwrap();
        let files = walk_model_dir(d.path()).unwrap();
        let names: Vec<(&str, u64)> = files.iter().map(|f| (f.rel.as_str(), f.size)).collect();
        assert_eq!(names, vec![("a.txt", 1), ("sub/b.bin", 2)]);
    }

    #[test]
    fn decision_rules_in_order_without_repeats() {
        let d = json!({"outcome": "rejected", "reasons": [
            {"rule": "PDG101"}, {"rule": "POL001"}, {"rule": "PDG101"}, {"message": "no rule"}]});
        assert_eq!(decision_rules(Some(&d)), vec!["PDG101", "POL001"]);
        assert!(decision_rules(None).is_empty());
    }
}
