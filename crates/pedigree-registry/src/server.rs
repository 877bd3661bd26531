//! `pedigree serve`: the HTTP API over the stores, the ingest workers and the webhook outbox.
//! Zero configuration: a data directory holding `registry.db` (SQLite), `blobs/`, `staging/`
//! and `work/`; an admin token created and printed on first start.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::SocketAddr;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, Path as UrlPath, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use futures::StreamExt;
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::{Notify, RwLock};

use crate::advisory_feed;
use crate::auth::{self, Authenticator, Principal};
use crate::blob::{self, BlobStore, LocalBlobStore, Staged};
use crate::cascade::{self, VersionInfo};
use crate::ingest;
use crate::policy::Policy;
use crate::store::sql::SqlStore;
use crate::store::{
    AdvisoryRecord, Grant, MetaStore, NewFile, Role, StoreError, UploadChunk, UploadRecord,
    VersionFilter, VersionRow, now_ms,
};
use crate::upload_hash::ResumableSha256;
use crate::webhook;

pub struct Config {
    pub data_dir: PathBuf,
    pub listen: SocketAddr,
    pub policy: Option<PathBuf>,
    pub database_url: Option<String>,
    /// Ingest workers in this process; 0 serves the API only (`pedigree worker` ingests).
    pub workers: usize,
    /// Blob store URL; `None` is `DATA_DIR/blobs`.
    pub blob_store: Option<String>,
    /// Ingest job lease, renewed every third of it while a job runs.
    pub lease: Duration,
    /// On SIGTERM / Ctrl-C: how long in-flight requests and running jobs may take.
    pub shutdown_grace: Duration,
    /// Serve `/metrics` here instead of on `listen`.
    pub metrics_listen: Option<SocketAddr>,
    /// A resumable upload with no chunk for this long is deleted, its bytes with it.
    pub upload_ttl: Duration,
}

impl Config {
    /// Defaults for everything but the data directory.
    pub fn new(data_dir: PathBuf) -> Config {
        Config {
            data_dir,
            listen: SocketAddr::from(([127, 0, 0, 1], 8470)),
            policy: None,
            database_url: None,
            workers: 2,
            blob_store: None,
            lease: ingest::DEFAULT_LEASE,
            shutdown_grace: Duration::from_secs(30),
            metrics_listen: None,
            upload_ttl: Duration::from_secs(86_400),
        }
    }
}

pub struct AppState {
    pub store: Arc<dyn MetaStore>,
    pub blobs: Arc<dyn BlobStore>,
    pub policy: Arc<RwLock<Policy>>,
    pub auth: Authenticator,
    pub data_dir: PathBuf,
    pub notify: Arc<Notify>,
}

type St = State<Arc<AppState>>;

// ------------------------------------------------------------------------------------ errors

pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    details: Option<Value>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
            details: None,
        }
    }
    pub fn status(&self) -> StatusCode {
        self.status
    }
    pub fn message(&self) -> &str {
        &self.message
    }
    fn details(mut self, d: Value) -> ApiError {
        self.details = Some(d);
        self
    }
}

fn bad(msg: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, "bad_request", msg)
}
fn forbidden(msg: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::FORBIDDEN, "forbidden", msg)
}
fn not_found(msg: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "not_found", msg)
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = json!({"error": {"code": self.code, "message": self.message}});
        if let Some(d) = self.details {
            body["error"]["details"] = d;
        }
        (self.status, Json(body)).into_response()
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> ApiError {
        match e {
            StoreError::NotFound(m) => not_found(m),
            StoreError::Conflict(m) => ApiError::new(StatusCode::CONFLICT, "conflict", m),
            StoreError::Invalid(m) => bad(m),
            full @ StoreError::Full { .. } => {
                tracing::error!("store: {full}");
                ApiError::new(
                    StatusCode::INSUFFICIENT_STORAGE,
                    "storage",
                    full.to_string(),
                )
            }
            other => {
                tracing::error!("store: {other}");
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    other.to_string(),
                )
            }
        }
    }
}

impl From<blob::BlobError> for ApiError {
    fn from(e: blob::BlobError) -> ApiError {
        match e {
            blob::BlobError::BadDigest(_) | blob::BlobError::Mismatch { .. } => bad(e.to_string()),
            blob::BlobError::NotFound(_) => not_found(e.to_string()),
            blob::BlobError::Busy => {
                ApiError::new(StatusCode::CONFLICT, "upload_busy", e.to_string())
            }
            blob::BlobError::Io(_) | blob::BlobError::Config(_) => {
                ApiError::new(StatusCode::INSUFFICIENT_STORAGE, "storage", e.to_string())
            }
            blob::BlobError::Remote { .. } | blob::BlobError::Refused { .. } => {
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "blob_store", e.to_string())
            }
        }
    }
}

impl From<anyhow::Error> for ApiError {
    fn from(e: anyhow::Error) -> ApiError {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            format!("{e:#}"),
        )
    }
}

type ApiResult<T> = Result<T, ApiError>;

// ------------------------------------------------------------------------------------ helpers

/// A relative path with only normal components, `/`-separated; `None` for anything that could
/// escape the model directory or means something else on another OS.
pub fn safe_relative_path(p: &str) -> Option<PathBuf> {
    if p.is_empty() || p.len() > 1024 || p.contains('\\') || p.contains('\0') || p.starts_with('/')
    {
        return None;
    }
    let path = Path::new(p);
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::Normal(s) => out.push(s),
            _ => return None,
        }
    }
    (!out.as_os_str().is_empty()).then_some(out)
}

fn valid_segment(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 128
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        && !s.starts_with('.')
}

async fn principal(st: &AppState, headers: &HeaderMap) -> ApiResult<Principal> {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|h| h.to_str().ok())
        .and_then(|h| h.strip_prefix("Bearer "))
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::UNAUTHORIZED,
                "unauthenticated",
                "missing bearer token",
            )
        })?;
    st.auth
        .authenticate(&*st.store, token.trim())
        .await
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::UNAUTHORIZED,
                "unauthenticated",
                "invalid or revoked token",
            )
        })
}

async fn version_or_404(st: &AppState, ns: &str, name: &str, ver: &str) -> ApiResult<VersionRow> {
    st.store
        .find_version(ns, name, ver)
        .await?
        .ok_or_else(|| not_found(format!("{ns}/{name}:{ver} not found")))
}

/// Who may see a version at all: approved ones to every reader of the namespace; the others to
/// its publishers, approvers and admins.
pub fn can_see(p: &Principal, v: &VersionRow) -> bool {
    if v.state == "approved" {
        p.can_read(&v.namespace)
    } else {
        p.can_publish(&v.namespace) || p.can_approve(&v.namespace)
    }
}

/// Parse `ns/name:version`.
pub fn parse_ref(s: &str) -> Option<(String, String, String)> {
    let (model, ver) = s.rsplit_once(':')?;
    let (ns, name) = model.split_once('/')?;
    (valid_segment(ns) && valid_segment(name) && valid_segment(ver))
        .then(|| (ns.to_string(), name.to_string(), ver.to_string()))
}

// ------------------------------------------------------------------------------------ start

/// The metadata store, the blob store and the policy a configuration names: everything the
/// API server and `pedigree worker` share.
pub async fn open_stores(
    cfg: &Config,
) -> anyhow::Result<(Arc<dyn MetaStore>, Arc<dyn BlobStore>, Policy)> {
    std::fs::create_dir_all(&cfg.data_dir)
        .with_context(|| format!("creating data dir {}", cfg.data_dir.display()))?;
    let url = cfg
        .database_url
        .clone()
        .unwrap_or_else(|| format!("sqlite://{}", cfg.data_dir.join("registry.db").display()));
    let store: Arc<dyn MetaStore> = Arc::new(
        SqlStore::connect(&url)
            .await?
            .with_anchor(cfg.data_dir.join("audit.head")),
    );
    let blobs: Arc<dyn BlobStore> = match &cfg.blob_store {
        Some(url) => blob::open_blob_store(url, &cfg.data_dir).await?,
        None => Arc::new(LocalBlobStore::new(cfg.data_dir.join("blobs"))?),
    };
    let policy = match &cfg.policy {
        Some(p) => Policy::load(p).map_err(|e| anyhow::anyhow!("policy {}: {e}", p.display()))?,
        None => Policy::default_policy(),
    };
    Ok((store, blobs, policy))
}

pub async fn open_state(cfg: &Config) -> anyhow::Result<(Arc<AppState>, Option<String>)> {
    let (store, blobs, policy) = open_stores(cfg).await?;
    let mut admin_token = None;
    if store.token_count().await? == 0 {
        let (t, _) = auth::create_token(
            &*store,
            "admin",
            vec![Grant {
                role: Role::Admin,
                namespace: "*".into(),
            }],
            "system",
        )
        .await?;
        admin_token = Some(t);
    }
    // Staging files of requests that died with the process are garbage, never blobs.
    let _ = std::fs::remove_dir_all(cfg.data_dir.join("staging"));
    std::fs::create_dir_all(cfg.data_dir.join("staging"))?;
    // Resumable uploads used to live here, per process; they now live in the blob store
    // (see start_upload) and this directory is a leftover of older versions.
    let _ = std::fs::remove_dir_all(cfg.data_dir.join("uploads"));
    let st = Arc::new(AppState {
        store,
        blobs,
        policy: Arc::new(RwLock::new(policy)),
        auth: Authenticator::default(),
        data_dir: cfg.data_dir.clone(),
        notify: Arc::new(Notify::new()),
    });
    Ok((st, admin_token))
}

pub async fn serve(cfg: Config) -> anyhow::Result<()> {
    let signal = crate::ops::shutdown_signal();
    let (st, admin_token) = open_state(&cfg).await?;
    let listener = tokio::net::TcpListener::bind(cfg.listen)
        .await
        .with_context(|| format!("binding {}", cfg.listen))?;
    let addr = listener.local_addr()?;
    if let Some(t) = admin_token {
        println!("pedigree: admin token (shown once, stored only as a hash): {t}");
    }
    println!("pedigree: data in {}", cfg.data_dir.display());
    println!("pedigree: listening on http://{addr}");
    let metrics_listener = match cfg.metrics_listen {
        Some(a) => {
            let l = tokio::net::TcpListener::bind(a)
                .await
                .with_context(|| format!("binding the metrics address {a}"))?;
            println!("pedigree: metrics on http://{}/metrics", l.local_addr()?);
            Some(l)
        }
        None => None,
    };
    use std::io::Write;
    let _ = std::io::stdout().flush();
    // One Ingestor shared by every worker task (see ops::spawn_workers); none with
    // `--workers 0`, where separate `pedigree worker` processes ingest.
    let pool = (cfg.workers > 0).then(|| {
        crate::ops::spawn_workers(
            st.store.clone(),
            st.blobs.clone(),
            st.policy.clone(),
            cfg.data_dir.join("work"),
            st.notify.clone(),
            cfg.workers,
            cfg.lease,
            ingest::Shutdown::default(),
        )
    });
    tokio::spawn(outbox_loop(st.clone()));
    tokio::spawn(upload_expiry_loop(st.clone(), cfg.upload_ttl));
    let probe = crate::ops::Probe::new(st.store.clone(), st.blobs.clone(), &cfg);
    let app = router(st).merge(crate::ops::probe_routes(
        probe.clone(),
        cfg.metrics_listen.is_none(),
    ));
    crate::ops::run_server(
        signal,
        app,
        listener,
        metrics_listener,
        probe,
        pool,
        cfg.shutdown_grace,
    )
    .await
}

async fn outbox_loop(st: Arc<AppState>) {
    // No redirects (a receiver must not bounce signed events elsewhere), bounded timeout.
    let client = webhook::client();
    loop {
        let now = now_ms();
        match st.store.due_outbox(now, 50).await {
            Ok(items) => {
                for it in items {
                    let id = format!("{}", it.id);
                    let r = webhook::deliver(
                        &client,
                        &it.url,
                        it.secret.as_bytes(),
                        &it.event,
                        &id,
                        it.payload.as_bytes(),
                        now / 1000,
                    )
                    .await;
                    let res = match r {
                        Ok(_) => st.store.outbox_delivered(it.id, now_ms()).await,
                        Err(e) => {
                            let attempt = (it.attempts + 1) as u32;
                            let next = now_ms() + webhook::backoff(attempt).as_millis() as i64;
                            st.store
                                .outbox_retry(it.id, &e, next, attempt >= webhook::MAX_ATTEMPTS)
                                .await
                        }
                    };
                    if let Err(e) = res {
                        tracing::error!("outbox: {e}");
                    }
                }
            }
            Err(e) => tracing::error!("outbox: {e}"),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

// ------------------------------------------------------------------------------------ routes

pub fn router(st: Arc<AppState>) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/v1/openapi.json", get(openapi))
        .route("/v1/tokens", post(create_token))
        .route("/v1/tokens/{id}", axum::routing::delete(revoke_token))
        .route("/v1/blobs/{digest}", put(put_blob).head(head_blob))
        .route("/v1/uploads", post(start_upload))
        .route(
            "/v1/uploads/{id}",
            axum::routing::head(upload_offset)
                .patch(upload_chunk)
                .put(finish_upload),
        )
        .route("/v1/models", get(list_models))
        .route("/v1/models/{ns}/{name}/versions", post(create_version))
        .route("/v1/models/{ns}/{name}/versions/{ver}", get(version_status))
        .route(
            "/v1/models/{ns}/{name}/versions/{ver}/files",
            get(list_files),
        )
        .route(
            "/v1/models/{ns}/{name}/versions/{ver}/files/{*path}",
            get(download),
        )
        .route(
            "/v1/models/{ns}/{name}/versions/{ver}/reports/{kind}",
            get(get_report),
        )
        .route(
            "/v1/models/{ns}/{name}/versions/{ver}/decision",
            post(decide),
        )
        .route("/v1/policy/test", post(policy_test))
        .route("/v1/advisories", post(flag).get(list_advisories))
        .route("/v1/advisories/feed", get(export_feed).post(import_feed))
        .route("/v1/advisories/{id}/withdraw", post(unflag))
        .route("/v1/advisories/{id}/impact", get(advisory_impact))
        .route("/v1/impact/{ns}/{name}/versions/{ver}", get(version_impact))
        .route("/v1/deployments", get(list_deployments))
        .route("/v1/deployments/{name}/{env}", put(deploy))
        .route("/v1/webhooks", post(add_webhook))
        .route("/v1/audit", get(audit_log))
        .route("/v1/jobs", get(jobs))
        .layer(DefaultBodyLimit::max(32 << 20))
        .with_state(st.clone())
        .merge(crate::ui::router(st))
}

async fn openapi() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "application/json")],
        include_str!("openapi.json"),
    )
}

// ------------------------------------------------------------------------------------ tokens

#[derive(Deserialize)]
struct TokenReq {
    name: String,
    grants: Vec<Grant>,
}

async fn create_token(
    State(st): St,
    headers: HeaderMap,
    Json(req): Json<TokenReq>,
) -> ApiResult<Response> {
    let p = principal(&st, &headers).await?;
    if !p.is_admin() {
        return Err(forbidden("creating tokens needs the admin role"));
    }
    for g in &req.grants {
        if g.namespace != "*" && !valid_segment(&g.namespace) {
            return Err(bad(format!("bad namespace {:?}", g.namespace)));
        }
    }
    let (token, id) = auth::create_token(&*st.store, &req.name, req.grants, &p.token_id).await?;
    Ok((StatusCode::CREATED, Json(json!({"id": id, "token": token}))).into_response())
}

async fn revoke_token(
    State(st): St,
    headers: HeaderMap,
    UrlPath(id): UrlPath<String>,
) -> ApiResult<Response> {
    let p = principal(&st, &headers).await?;
    if !p.is_admin() {
        return Err(forbidden("revoking tokens needs the admin role"));
    }
    st.store.revoke_token(&id, &p.token_id).await?;
    st.auth.forget_all();
    Ok(StatusCode::NO_CONTENT.into_response())
}

// ------------------------------------------------------------------------------------ blobs

async fn head_blob(
    State(st): St,
    headers: HeaderMap,
    UrlPath(digest): UrlPath<String>,
) -> ApiResult<Response> {
    let p = principal(&st, &headers).await?;
    if !p.is_any_publisher() {
        return Err(forbidden("checking blobs needs a publisher role"));
    }
    match st.blobs.exists(&digest).await? {
        Some(n) => Ok((StatusCode::OK, [(header::CONTENT_LENGTH, n.to_string())]).into_response()),
        None => Ok(StatusCode::NOT_FOUND.into_response()),
    }
}

/// Stream a request body into a staging file, hashing as it goes.
async fn stage_body(st: &AppState, body: Body) -> ApiResult<Staged> {
    let mut w = blob::StagingWriter::create(&st.data_dir.join("staging")).await?;
    let mut stream = body.into_data_stream();
    while let Some(chunk) = stream.next().await {
        match chunk {
            Ok(c) => {
                if let Err(e) = w.write(c).await {
                    w.abort().await;
                    return Err(e.into());
                }
            }
            Err(e) => {
                w.abort().await;
                return Err(bad(format!("upload interrupted: {e}")));
            }
        }
    }
    Ok(w.finish().await?)
}

async fn put_blob(
    State(st): St,
    headers: HeaderMap,
    UrlPath(digest): UrlPath<String>,
    body: Body,
) -> ApiResult<Response> {
    let p = principal(&st, &headers).await?;
    if !p.is_any_publisher() {
        return Err(forbidden("uploading needs a publisher role"));
    }
    blob::parse_digest(&digest)?;
    let staged = stage_body(&st, body).await?;
    let size = staged.size;
    st.blobs.put_file(&digest, staged).await?;
    st.store.record_blob(&digest, size).await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({"digest": digest, "size": size})),
    )
        .into_response())
}

/// The largest chunk one `PATCH` may carry: a chunk bound for S3 is held in memory until it is
/// sent as one part, so this bounds the memory of a request whatever the client sends.
pub const MAX_CHUNK: u64 = 64 << 20;
/// The largest upload (declared or not).
pub const MAX_UPLOAD: u64 = 1 << 40;

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct StartUpload {
    /// The blob's digest, if the client knows it: an S3 store then uploads straight to the
    /// blob's key, and completion must name the same digest.
    digest: Option<String>,
    /// Total size, if known: chunks past it are refused.
    size: Option<u64>,
}

/// `POST /v1/uploads` with an optional JSON body `{"digest": …, "size": …}`.
async fn start_upload(
    State(st): St,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> ApiResult<Response> {
    let p = principal(&st, &headers).await?;
    if !p.is_any_publisher() {
        return Err(forbidden("uploading needs a publisher role"));
    }
    let req: StartUpload = if body.iter().all(u8::is_ascii_whitespace) {
        StartUpload::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| bad(format!("bad upload request: {e}")))?
    };
    if let Some(d) = &req.digest {
        blob::parse_digest(d)?;
    }
    if let Some(n) = req.size
        && n > MAX_UPLOAD
    {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
            format!("an upload may have at most {MAX_UPLOAD} bytes, not {n}"),
        ));
    }
    let id = uuid::Uuid::new_v4().simple().to_string();
    let t = st.blobs.upload_begin(&id, req.digest.as_deref()).await?;
    let now = now_ms();
    let rec = UploadRecord {
        id: id.clone(),
        token_id: p.token_id.clone(),
        size: 0,
        declared_size: req.size,
        digest: req.digest,
        store_key: t.key.clone(),
        store_upload_id: t.upload_id.clone(),
        created_at: now,
        updated_at: now,
    };
    if let Err(e) = st.store.create_upload(&rec).await {
        let _ = st.blobs.upload_abort(&t).await;
        return Err(e.into());
    }
    Ok((StatusCode::CREATED, Json(json!({"id": id, "offset": 0}))).into_response())
}

fn upload_target(u: &UploadRecord) -> blob::UploadTarget {
    blob::UploadTarget {
        id: u.id.clone(),
        key: u.store_key.clone(),
        upload_id: u.store_upload_id.clone(),
    }
}

async fn upload_owned(st: &AppState, p: &Principal, id: &str) -> ApiResult<UploadRecord> {
    if !id.bytes().all(|b| b.is_ascii_hexdigit()) || id.len() != 32 {
        return Err(bad("bad upload id"));
    }
    match st.store.get_upload(id).await? {
        Some(u) if u.token_id == p.token_id || p.is_admin() => Ok(u),
        Some(_) => Err(forbidden("this upload belongs to another token")),
        None => Err(not_found(format!("upload {id} not found"))),
    }
}

async fn upload_offset(
    State(st): St,
    headers: HeaderMap,
    UrlPath(id): UrlPath<String>,
) -> ApiResult<Response> {
    let p = principal(&st, &headers).await?;
    let u = upload_owned(&st, &p, &id).await?;
    Ok((StatusCode::OK, [("upload-offset", u.size.to_string())]).into_response())
}

fn offset_mismatch(offset: u64, expected: u64, why: &str) -> ApiError {
    ApiError::new(
        StatusCode::CONFLICT,
        "offset_mismatch",
        format!("Upload-Offset {offset} but the upload expects offset {expected}{why}"),
    )
    .details(json!({"offset": expected}))
}

fn too_large(msg: String) -> ApiError {
    ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "too_large", msg)
}

/// Hash a chunk's body from `hash`, handing every piece to `sink` (if any). At most `limit`
/// bytes are taken; past that the error names the limit. Errors are the client's (a cut-off
/// body) or the store's.
///
/// SHA-256 is the most expensive step (half the server's CPU in `perf` at 1 GiB/s), so it runs
/// on the blocking pool a batch of [`HASH_BATCH`] bytes at a time while the next batch arrives
/// and the sink writes, instead of in turn with them on this task.
async fn take_chunk(
    body: Body,
    hash: &mut ResumableSha256,
    mut sink: Option<&mut Box<dyn blob::ChunkSink>>,
    limit: u64,
    limit_msg: &(dyn Fn() -> String + Sync),
) -> ApiResult<u64> {
    let mut stream = body.into_data_stream();
    let mut n = 0u64;
    let mut state = Some(std::mem::take(hash));
    let mut pending: Option<tokio::task::JoinHandle<ResumableSha256>> = None;
    let mut batch: Vec<bytes::Bytes> = Vec::new();
    let mut batch_len = 0usize;
    let mut end = false;
    let result: ApiResult<()> = async {
        while !end {
            match stream.next().await {
                Some(piece) => {
                    let piece = piece.map_err(|e| bad(format!("chunk interrupted: {e}")))?;
                    n += piece.len() as u64;
                    if n > limit {
                        return Err(too_large(limit_msg()));
                    }
                    if let Some(s) = sink.as_mut() {
                        s.write(piece.clone()).await?;
                    }
                    batch_len += piece.len();
                    batch.push(piece);
                }
                None => end = true,
            }
            if batch_len >= HASH_BATCH || (end && !batch.is_empty()) {
                let mut h = match pending.take() {
                    Some(p) => p.await.map_err(|e| anyhow::anyhow!(e))?,
                    None => state.take().expect("hash state present"),
                };
                let b = std::mem::take(&mut batch);
                batch_len = 0;
                pending = Some(tokio::task::spawn_blocking(move || {
                    for piece in &b {
                        h.update(piece);
                    }
                    h
                }));
            }
        }
        Ok(())
    }
    .await;
    let h = match pending.take() {
        Some(p) => p.await.map_err(|e| anyhow::anyhow!(e))?,
        None => state.take().expect("hash state present"),
    };
    *hash = h;
    result.map(|()| n)
}

/// See [`take_chunk`].
const HASH_BATCH: usize = 8 << 20;

/// `PATCH /v1/uploads/{id}`: append a chunk at `Upload-Offset`, which must equal the bytes
/// acknowledged so far. Any API process may take any chunk: the bytes go to the shared blob
/// store, the chunk's record (size, the SHA-256 state after it, the S3 ETag) to the metadata
/// store, and the answer comes only after both are durable. A chunk repeated at an offset
/// already acknowledged (a retry after a lost answer) is accepted again without being stored
/// twice if its bytes are the same.
async fn upload_chunk(st: St, headers: HeaderMap, id: UrlPath<String>, body: Body) -> Response {
    match take_upload_chunk(st, headers, id, body).await {
        Ok(r) => r,
        Err(e) => {
            // Refused before its body was read (a wrong offset, too large): the rest of the body
            // is still on the wire, so the connection cannot carry another request. Say so,
            // rather than let the client reuse it and see its next request cut off.
            let mut r = e.into_response();
            r.headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
            r
        }
    }
}

async fn take_upload_chunk(
    State(st): St,
    headers: HeaderMap,
    UrlPath(id): UrlPath<String>,
    body: Body,
) -> ApiResult<Response> {
    let p = principal(&st, &headers).await?;
    let u = upload_owned(&st, &p, &id).await?;
    let offset: u64 = headers
        .get("upload-offset")
        .and_then(|h| h.to_str().ok())
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| bad("missing or bad Upload-Offset header"))?;
    let declared_len: Option<u64> = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|h| h.to_str().ok())
        .and_then(|s| s.parse().ok());
    let chunk_limit_msg = || format!("a chunk may have at most {MAX_CHUNK} bytes");
    if declared_len.is_some_and(|n| n > MAX_CHUNK) {
        return Err(too_large(chunk_limit_msg()));
    }
    if offset < u.size {
        return repeated_chunk(&st, &u, offset, body).await;
    }
    if offset > u.size {
        return Err(offset_mismatch(offset, u.size, ""));
    }
    let prev = st.store.upload_chunk_ending(&id, offset).await?;
    if offset > 0 && prev.is_none() {
        return Err(
            anyhow::anyhow!("upload {id}: no chunk record ends at its size {offset}").into(),
        );
    }
    let seq = prev.as_ref().map_or(0, |c| c.seq + 1);
    if seq >= st.blobs.max_chunks() {
        return Err(too_large(format!(
            "this blob store takes at most {} chunks per upload; use larger chunks",
            st.blobs.max_chunks()
        )));
    }
    if let Some(c) = &prev
        && c.size < st.blobs.min_chunk()
    {
        return Err(bad(format!(
            "chunk {} has {} bytes; on this blob store only the last chunk may be smaller \
             than {} bytes, so this upload can only be completed now",
            c.seq,
            c.size,
            st.blobs.min_chunk()
        )));
    }
    let mut hash = match &prev {
        Some(c) => ResumableSha256::from_hex(&c.hash_state).ok_or_else(|| {
            anyhow::anyhow!("upload {id}: chunk {} has a malformed hash state", c.seq)
        })?,
        None => ResumableSha256::new(),
    };
    let room = u.declared_size.unwrap_or(MAX_UPLOAD).saturating_sub(offset);
    let limit = MAX_CHUNK.min(room);
    let limit_msg = || {
        if room < MAX_CHUNK {
            format!(
                "the chunk goes past the upload's size of {} bytes",
                u.declared_size.unwrap_or(MAX_UPLOAD)
            )
        } else {
            chunk_limit_msg()
        }
    };
    if declared_len.is_some_and(|n| n > limit) {
        return Err(too_large(limit_msg()));
    }
    let t = upload_target(&u);
    // A local store's sink holds the upload's lock from here until it is dropped, after the
    // chunk is recorded; the offset is checked again under it.
    let mut sink = st.blobs.upload_chunk(&t, seq, offset).await?;
    match st.store.get_upload(&id).await? {
        Some(now) if now.size == offset => {}
        Some(now) => {
            return Err(offset_mismatch(
                offset,
                now.size,
                " (another request got there first)",
            ));
        }
        None => return Err(not_found(format!("upload {id} not found"))),
    }
    let n = take_chunk(body, &mut hash, Some(&mut sink), limit, &limit_msg).await?;
    if n == 0 {
        return Err(bad("an empty chunk"));
    }
    if let Some(total) = u.declared_size {
        // Refused now rather than at the next chunk: S3 would never complete the upload.
        if n < st.blobs.min_chunk() && offset + n < total {
            return Err(bad(format!(
                "a chunk of {n} bytes that is not the last; on this blob store chunks but the \
                 last need at least {} bytes",
                st.blobs.min_chunk()
            )));
        }
    }
    let etag = sink.finish().await?;
    let chunk = UploadChunk {
        seq,
        start: offset,
        size: n,
        hash_state: hash.to_hex(),
        etag,
    };
    if !st.store.commit_upload_chunk(&id, offset, &chunk).await? {
        let now = st.store.get_upload(&id).await?.map_or(offset, |u| u.size);
        return Err(offset_mismatch(
            offset,
            now,
            " (another request got there first)",
        ));
    }
    drop(sink);
    Ok((
        StatusCode::ACCEPTED,
        [("upload-offset", (offset + n).to_string())],
    )
        .into_response())
}

/// A chunk at an offset already acknowledged: if it is the very chunk recorded there (same
/// length, same bytes: the SHA-256 state after it matches), answer as the first time did;
/// anything else is a conflict naming the offset the upload expects.
async fn repeated_chunk(
    st: &AppState,
    u: &UploadRecord,
    offset: u64,
    body: Body,
) -> ApiResult<Response> {
    let Some(c) = st.store.upload_chunk_starting(&u.id, offset).await? else {
        return Err(offset_mismatch(offset, u.size, ""));
    };
    let mut hash = if c.seq == 0 {
        ResumableSha256::new()
    } else {
        st.store
            .upload_chunk_ending(&u.id, offset)
            .await?
            .and_then(|p| ResumableSha256::from_hex(&p.hash_state))
            .ok_or_else(|| anyhow::anyhow!("upload {}: no chunk record ends at {offset}", u.id))?
    };
    let same = take_chunk(body, &mut hash, None, c.size, &|| String::new())
        .await
        .is_ok_and(|n| n == c.size)
        && hash.to_hex() == c.hash_state;
    if !same {
        return Err(offset_mismatch(
            offset,
            u.size,
            &format!(
                " (a different chunk of {} bytes was already acknowledged at {offset})",
                c.size
            ),
        ));
    }
    Ok((
        StatusCode::ACCEPTED,
        [("upload-offset", u.size.to_string())],
    )
        .into_response())
}

#[derive(Deserialize)]
struct FinishQuery {
    digest: String,
}

/// `PUT /v1/uploads/{id}?digest=`: verify the digest against the SHA-256 carried through the
/// chunks (no byte is read back) and only then publish the blob.
async fn finish_upload(
    State(st): St,
    headers: HeaderMap,
    UrlPath(id): UrlPath<String>,
    Query(q): Query<FinishQuery>,
) -> ApiResult<Response> {
    let p = principal(&st, &headers).await?;
    let u = upload_owned(&st, &p, &id).await?;
    blob::parse_digest(&q.digest)?;
    if let Some(d) = &u.digest
        && *d != q.digest
    {
        return Err(bad(format!(
            "upload {id} was started for {d}, not {}",
            q.digest
        )));
    }
    if let Some(n) = u.declared_size
        && n != u.size
    {
        return Err(bad(format!("upload {id} has {} of its {n} bytes", u.size)));
    }
    let chunks = st.store.upload_chunks(&id).await?;
    let mut at = 0u64;
    for (i, c) in chunks.iter().enumerate() {
        if c.seq as usize != i || c.start != at {
            return Err(anyhow::anyhow!("upload {id}: chunk records out of order at {i}").into());
        }
        at += c.size;
    }
    if at != u.size {
        return Err(
            anyhow::anyhow!("upload {id}: chunks hold {at} bytes, the upload {}", u.size).into(),
        );
    }
    let hash = match chunks.last() {
        Some(c) => ResumableSha256::from_hex(&c.hash_state)
            .ok_or_else(|| anyhow::anyhow!("upload {id}: malformed hash state"))?,
        None => ResumableSha256::new(),
    };
    let actual = hash.digest_string();
    if actual != q.digest {
        return Err(bad(format!(
            "upload {id} does not match its digest: expected {}, got {actual}; the upload is kept, resume or restart it",
            q.digest
        )));
    }
    let t = upload_target(&u);
    if st.blobs.exists(&q.digest).await? == Some(u.size) {
        // Published already: by a completion whose answer was lost, or another upload of the
        // same bytes. What is left of this one is only storage.
        if let Err(e) = st.blobs.upload_abort(&t).await {
            tracing::debug!("upload {id}: dropping its leftovers: {e}");
        }
    } else {
        st.blobs
            .upload_complete(
                &t,
                &q.digest,
                u.size,
                chunks.into_iter().map(|c| c.etag).collect(),
            )
            .await?;
    }
    st.store.record_blob(&q.digest, u.size).await?;
    st.store.delete_upload(&id).await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({"digest": q.digest, "size": u.size})),
    )
        .into_response())
}

/// Delete uploads idle for `ttl` and their bytes (staging files, S3 multipart uploads, which
/// would otherwise be billed forever); every API process runs this, and the conditional delete
/// in the database makes each upload expire once. Returns how many expired.
pub async fn expire_uploads(st: &AppState, ttl: Duration) -> usize {
    let cutoff = now_ms() - ttl.as_millis() as i64;
    let idle = match st.store.idle_uploads(cutoff, 100).await {
        Ok(v) => v,
        Err(e) => {
            tracing::warn!("upload expiry: {e}");
            return 0;
        }
    };
    let mut n = 0;
    for u in idle {
        match st.store.delete_upload_if_idle(&u.id, cutoff).await {
            Ok(true) => {
                n += 1;
                if let Err(e) = st.blobs.upload_abort(&upload_target(&u)).await {
                    tracing::warn!("upload {} expired; dropping its bytes: {e}", u.id);
                } else {
                    tracing::info!("upload {} expired ({} bytes dropped)", u.id, u.size);
                }
            }
            Ok(false) => {}
            Err(e) => tracing::warn!("upload expiry: {e}"),
        }
    }
    n
}

async fn upload_expiry_loop(st: Arc<AppState>, ttl: Duration) {
    // Often enough that an upload outlives its TTL by at most a quarter of it (and 10 min).
    let every = (ttl / 4).clamp(Duration::from_millis(500), Duration::from_secs(600));
    loop {
        tokio::time::sleep(every).await;
        expire_uploads(&st, ttl).await;
    }
}

// ------------------------------------------------------------------------------------ versions

#[derive(Deserialize)]
struct CreateVersion {
    version: String,
    files: Vec<NewFile>,
}

async fn create_version(
    State(st): St,
    headers: HeaderMap,
    UrlPath((ns, name)): UrlPath<(String, String)>,
    Json(req): Json<CreateVersion>,
) -> ApiResult<Response> {
    let p = principal(&st, &headers).await?;
    if !valid_segment(&ns) || !valid_segment(&name) || !valid_segment(&req.version) {
        return Err(bad(
            "namespace, name and version use [A-Za-z0-9._-], at most 128 characters, not starting with '.'",
        ));
    }
    if !p.can_publish(&ns) {
        return Err(forbidden(format!(
            "publishing to namespace {ns} needs its publisher role"
        )));
    }
    if req.files.is_empty() || req.files.len() > 100_000 {
        return Err(bad("a version has between 1 and 100000 files"));
    }
    let mut seen = HashSet::new();
    for f in &req.files {
        if safe_relative_path(&f.path).is_none() {
            return Err(bad(format!("unsafe file path {:?}", f.path)));
        }
        if !seen.insert(f.path.as_str()) {
            return Err(bad(format!("duplicate file path {:?}", f.path)));
        }
        match st.blobs.exists(&f.digest).await? {
            Some(n) if n == f.size => {}
            Some(n) => {
                return Err(bad(format!(
                    "{}: size {} but blob {} has {n} bytes",
                    f.path, f.size, f.digest
                )));
            }
            None => {
                return Err(bad(format!(
                    "{}: blob {} was not uploaded",
                    f.path, f.digest
                )));
            }
        }
    }
    let id = st
        .store
        .create_version(
            &ns,
            &name,
            &req.version,
            &p.token_id,
            &req.files,
            &p.token_id,
        )
        .await?;
    st.notify.notify_waiters();
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({"id": id, "model": format!("{ns}/{name}:{}", req.version), "state": "quarantined"})),
    )
        .into_response())
}

#[derive(Deserialize)]
struct ListQuery {
    namespace: Option<String>,
    state: Option<String>,
    limit: Option<i64>,
}

async fn list_models(
    State(st): St,
    headers: HeaderMap,
    Query(q): Query<ListQuery>,
) -> ApiResult<Response> {
    let p = principal(&st, &headers).await?;
    let rows = st
        .store
        .list_versions(&VersionFilter {
            namespace: q.namespace,
            state: q.state,
            limit: q.limit,
        })
        .await?;
    let rows: Vec<VersionRow> = rows.into_iter().filter(|v| can_see(&p, v)).collect();
    let ids: Vec<i64> = rows.iter().map(|v| v.id).collect();
    let flags = st.store.flags_of(&ids).await?;
    let out: Vec<Value> = rows
        .iter()
        .map(|v| {
            let f: Vec<&str> = flags
                .iter()
                .filter(|f| f.version_id == v.id)
                .map(|f| f.kind.as_str())
                .collect();
            json!({"model": v.label(), "state": v.state, "identity": v.identity,
                   "flagged": f.contains(&"flagged"), "at_risk": f.contains(&"at_risk")})
        })
        .collect();
    Ok(Json(json!({"versions": out})).into_response())
}

async fn version_status(
    State(st): St,
    headers: HeaderMap,
    UrlPath((ns, name, ver)): UrlPath<(String, String, String)>,
) -> ApiResult<Response> {
    let p = principal(&st, &headers).await?;
    let v = version_or_404(&st, &ns, &name, &ver).await?;
    if !can_see(&p, &v) {
        return Err(not_found(format!("{ns}/{name}:{ver} not found")));
    }
    Ok(Json(status_json(&st, &v).await?).into_response())
}

pub async fn status_json(st: &AppState, v: &VersionRow) -> ApiResult<Value> {
    let flags = st.store.flags_of(&[v.id]).await?;
    let edges = st.store.edges_of(v.id).await?;
    let mut ids: Vec<i64> = edges.iter().flat_map(|e| [e.parent, e.child]).collect();
    ids.sort_unstable();
    ids.dedup();
    let labels: HashMap<i64, String> = st
        .store
        .versions_by_ids(&ids)
        .await?
        .into_iter()
        .map(|r| (r.id, r.label()))
        .collect();
    let lineage: Vec<Value> = edges
        .iter()
        .map(|e| {
            json!({"parent": labels.get(&e.parent), "child": labels.get(&e.child), "source": e.source,
                   "relation": e.relation, "confidence": e.confidence, "evidence": e.evidence})
        })
        .collect();
    let analysis: Option<Value> = st
        .store
        .report(v.id, "analysis")
        .await?
        .and_then(|s| serde_json::from_str(&s).ok());
    let deployments = st.store.deployments_of(&[v.id]).await?;
    let downloadable = v.state == "approved" && flags.is_empty();
    Ok(json!({
        "model": v.label(), "state": v.state, "identity": v.identity, "decision": v.decision,
        "downloadable": downloadable, "flags": flags, "lineage": lineage,
        "findings": analysis.as_ref().and_then(|a| a.get("findings")).cloned().unwrap_or(json!([])),
        "signature": analysis.as_ref().and_then(|a| a.get("signature")).cloned(),
        "card": analysis.as_ref().and_then(|a| a.get("card")).cloned(),
        "deployments": deployments,
    }))
}

async fn get_report(
    State(st): St,
    headers: HeaderMap,
    UrlPath((ns, name, ver, kind)): UrlPath<(String, String, String, String)>,
) -> ApiResult<Response> {
    let p = principal(&st, &headers).await?;
    let v = version_or_404(&st, &ns, &name, &ver).await?;
    if !can_see(&p, &v) {
        return Err(not_found(format!("{ns}/{name}:{ver} not found")));
    }
    let body = st
        .store
        .report(v.id, &kind)
        .await?
        .ok_or_else(|| not_found(format!("no {kind} report for {ns}/{name}:{ver}")))?;
    Ok(([(header::CONTENT_TYPE, "application/json")], body).into_response())
}

/// Why this version may not be downloaded, or `None` when it may.
async fn download_refusal(st: &AppState, v: &VersionRow) -> ApiResult<Option<ApiError>> {
    if v.state != "approved" {
        let why = match v.state.as_str() {
            "quarantined" => "is in quarantine: its ingest has not finished".to_string(),
            s => format!("is {s}, not approved"),
        };
        return Ok(Some(
            forbidden(format!("{} {why}", v.label()))
                .details(json!({"state": v.state, "decision": v.decision})),
        ));
    }
    let flags = st.store.flags_of(&[v.id]).await?;
    if let Some(f) = flags.first() {
        let adv = st.store.advisory(&f.advisory_id).await?;
        let why = if f.kind == "flagged" {
            format!("is flagged by advisory {}", f.advisory_id)
        } else {
            format!(
                "is at risk: it descends from a model flagged by advisory {}",
                f.advisory_id
            )
        };
        return Ok(Some(
            ApiError::new(StatusCode::FORBIDDEN, "blocked", format!("{} {why}", v.label()))
                .details(json!({"flags": flags, "advisory": adv.map(|a| json!({"id": a.id, "severity": a.severity, "summary": a.summary}))})),
        ));
    }
    Ok(None)
}

async fn list_files(
    State(st): St,
    headers: HeaderMap,
    UrlPath((ns, name, ver)): UrlPath<(String, String, String)>,
) -> ApiResult<Response> {
    let p = principal(&st, &headers).await?;
    let v = version_or_404(&st, &ns, &name, &ver).await?;
    if !can_see(&p, &v) {
        return Err(not_found(format!("{ns}/{name}:{ver} not found")));
    }
    if let Some(e) = download_refusal(&st, &v).await? {
        return Err(e);
    }
    Ok(Json(json!({"model": v.label(), "identity": v.identity, "files": st.store.version_files(v.id).await?})).into_response())
}

async fn download(
    State(st): St,
    headers: HeaderMap,
    UrlPath((ns, name, ver, path)): UrlPath<(String, String, String, String)>,
) -> ApiResult<Response> {
    let p = principal(&st, &headers).await?;
    let v = version_or_404(&st, &ns, &name, &ver).await?;
    if !can_see(&p, &v) {
        return Err(not_found(format!("{ns}/{name}:{ver} not found")));
    }
    if let Some(e) = download_refusal(&st, &v).await? {
        return Err(e);
    }
    let f = st
        .store
        .version_files(v.id)
        .await?
        .into_iter()
        .find(|f| f.path == path)
        .ok_or_else(|| not_found(format!("{path} is not in {}", v.label())))?;
    let (file, len) = st.blobs.open(&f.digest).await?;
    let stream = tokio_util::io::ReaderStream::with_capacity(file, 1 << 20);
    let mut resp = Response::new(Body::from_stream(stream));
    let h = resp.headers_mut();
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    if let Ok(d) = HeaderValue::from_str(&f.digest) {
        h.insert("x-pedigree-digest", d);
    }
    Ok(resp)
}

#[derive(Deserialize)]
struct DecideReq {
    state: String,
    reason: String,
}

async fn decide(
    State(st): St,
    headers: HeaderMap,
    UrlPath((ns, name, ver)): UrlPath<(String, String, String)>,
    Json(req): Json<DecideReq>,
) -> ApiResult<Response> {
    let p = principal(&st, &headers).await?;
    if !p.can_approve(&ns) {
        return Err(forbidden(format!(
            "deciding on {ns} models needs its approver role"
        )));
    }
    let v = version_or_404(&st, &ns, &name, &ver).await?;
    if !matches!(req.state.as_str(), "approved" | "rejected") || req.reason.trim().is_empty() {
        return Err(bad("state must be approved or rejected, with a reason"));
    }
    if v.state == "quarantined" {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "conflict",
            "the ingest has not finished",
        ));
    }
    let mut decision = v.decision.clone().unwrap_or(json!({}));
    decision["override"] =
        json!({"by": p.token_id, "state": req.state, "reason": req.reason, "previous": v.state});
    st.store
        .decide(v.id, &req.state, &decision, &p.token_id)
        .await?;
    Ok(Json(json!({"model": v.label(), "state": req.state})).into_response())
}

// ------------------------------------------------------------------------------------ policy

#[derive(Deserialize)]
struct PolicyTestReq {
    /// An existing version to re-evaluate, `ns/name:version` ...
    model: String,
    /// ... or a fresh analysis (what `pedigree policy test DIR` computes locally).
    analysis: Option<crate::analysis::Analysis>,
    /// A policy to try instead of the server's (TOML text).
    policy: Option<String>,
}

async fn policy_test(
    State(st): St,
    headers: HeaderMap,
    Json(req): Json<PolicyTestReq>,
) -> ApiResult<Response> {
    let p = principal(&st, &headers).await?;
    let (ns, name, ver) =
        parse_ref(&req.model).ok_or_else(|| bad("model must read ns/name:version"))?;
    if !p.can_publish(&ns) && !p.can_approve(&ns) {
        return Err(forbidden(format!(
            "a policy test on {ns} needs its publisher or approver role"
        )));
    }
    let policy = match &req.policy {
        Some(t) => {
            // A policy sent by a client must not make the server read its own files.
            if t.contains("public_key_file") {
                return Err(bad(
                    "a policy sent for a dry run must give keys inline (public_key), not public_key_file",
                ));
            }
            Policy::from_toml_str(t, Path::new("/nonexistent"))
                .map_err(|e| bad(format!("policy: {e}")))?
        }
        None => st.policy.read().await.clone(),
    };
    let existing = st.store.find_version(&ns, &name, &ver).await?;
    let (v, analysis, edges, findings) = match (&req.analysis, existing) {
        (Some(a), ex) => {
            let v = ex.unwrap_or(VersionRow {
                id: -1,
                model_id: -1,
                namespace: ns.clone(),
                name: name.clone(),
                version: ver.clone(),
                state: "quarantined".into(),
                identity: None,
                publisher: p.token_id.clone(),
                created_at: now_ms(),
                decided_at: None,
                decision: None,
            });
            // Declared bases resolved by name, as ingest would.
            let mut edges = Vec::new();
            for b in &a.card.base_model {
                if let Some((bns, bname)) = b.split_once('/') {
                    if let Some(pv) = st.store.latest_version_of(bns, bname).await? {
                        edges.push(crate::store::NewEdge {
                            parent: pv.id,
                            child: v.id,
                            source: "declared".into(),
                            relation: "declared".into(),
                            confidence: 1.0,
                            evidence: json!({}),
                        });
                    }
                }
            }
            (v, a.clone(), edges, Vec::new())
        }
        (None, Some(v)) => {
            if !can_see(&p, &v) {
                return Err(not_found(format!("{} not found", req.model)));
            }
            let body = st
                .store
                .report(v.id, "analysis")
                .await?
                .ok_or_else(|| bad(format!("{} has not been analysed yet", req.model)))?;
            let mut val: Value = serde_json::from_str(&body).map_err(|e| anyhow::anyhow!(e))?;
            let findings: Vec<String> = val
                .get("lineage_findings")
                .and_then(|f| serde_json::from_value(f.clone()).ok())
                .unwrap_or_default();
            if let Some(m) = val.as_object_mut() {
                m.insert("fingerprint".into(), Value::Null);
                m.insert("bom".into(), Value::Null);
            }
            let a: crate::analysis::Analysis =
                serde_json::from_value(val).map_err(|e| anyhow::anyhow!(e))?;
            let edges = st
                .store
                .edges_of(v.id)
                .await?
                .into_iter()
                .filter(|e| e.child == v.id)
                .map(|e| crate::store::NewEdge {
                    parent: e.parent,
                    child: e.child,
                    source: e.source,
                    relation: e.relation,
                    confidence: e.confidence,
                    evidence: e.evidence,
                })
                .collect::<Vec<_>>();
            (v, a, edges, findings)
        }
        (None, None) => {
            return Err(not_found(format!(
                "{} not found; send an analysis to test a new model",
                req.model
            )));
        }
    };
    let (candidate, decision) =
        ingest::evaluate(&*st.store, &policy, &v, &analysis, &edges, &findings).await?;
    Ok(Json(
        json!({"model": req.model, "dry_run": true, "decision": decision, "candidate": candidate}),
    )
    .into_response())
}

// ------------------------------------------------------------------------------------ advisories

#[derive(Deserialize)]
struct FlagReq {
    id: String,
    severity: String,
    summary: String,
    trigger: Option<String>,
    /// `ns/name:version` of each version named by the advisory.
    versions: Vec<String>,
}

async fn flag(State(st): St, headers: HeaderMap, Json(req): Json<FlagReq>) -> ApiResult<Response> {
    let p = principal(&st, &headers).await?;
    if !p.is_any_approver() {
        return Err(forbidden("flagging needs the approver or admin role"));
    }
    if req.id.is_empty()
        || req.id.len() > 128
        || !matches!(
            req.severity.as_str(),
            "low" | "medium" | "high" | "critical"
        )
    {
        return Err(bad(
            "advisory id (≤128 chars) and severity (low|medium|high|critical) required",
        ));
    }
    if req.versions.is_empty() {
        return Err(bad("an advisory names at least one version"));
    }
    let mut roots = Vec::new();
    for r in &req.versions {
        let (ns, name, ver) =
            parse_ref(r).ok_or_else(|| bad(format!("bad version reference {r:?}")))?;
        if !p.can_approve(&ns) {
            return Err(forbidden(format!(
                "flagging {ns} models needs its approver role"
            )));
        }
        roots.push(version_or_404(&st, &ns, &name, &ver).await?.id);
    }
    let body = json!({"id": req.id, "severity": req.severity, "summary": req.summary,
                      "trigger": req.trigger, "versions": req.versions});
    let adv = AdvisoryRecord {
        id: req.id.clone(),
        severity: req.severity,
        summary: req.summary,
        trigger: req.trigger,
        source: "local".into(),
        body,
        created_at: now_ms(),
        withdrawn_at: None,
        withdrawn_reason: None,
    };
    let min_conf = st.policy.read().await.min_confidence() as f64;
    let r = st.store.flag(&adv, &roots, min_conf, &p.token_id).await?;
    let impact = impact_of_advisory(&st, &req.id, &p).await?;
    Ok(Json(json!({"changed": r.changed, "newly_flagged": r.flagged.len(), "newly_at_risk": r.at_risk.len(), "impact": impact})).into_response())
}

#[derive(Deserialize)]
struct UnflagReq {
    justification: String,
}

async fn unflag(
    State(st): St,
    headers: HeaderMap,
    UrlPath(id): UrlPath<String>,
    Json(req): Json<UnflagReq>,
) -> ApiResult<Response> {
    let p = principal(&st, &headers).await?;
    if !p.is_any_approver() {
        return Err(forbidden("unflagging needs the approver or admin role"));
    }
    let n = st
        .store
        .unflag(&id, &req.justification, &p.token_id)
        .await?;
    Ok(Json(json!({"advisory": id, "cleared": n})).into_response())
}

async fn list_advisories(State(st): St, headers: HeaderMap) -> ApiResult<Response> {
    let p = principal(&st, &headers).await?;
    // Advisories are broadcast (id, severity, summary); which models they name is shown only to
    // admins here, and per visible version through the impact routes.
    let mut list = st.store.advisories().await?;
    if !p.is_admin() {
        for a in &mut list {
            a.body = Value::Null;
        }
    }
    Ok(Json(json!({"advisories": list})).into_response())
}

async fn advisory_impact(
    State(st): St,
    headers: HeaderMap,
    UrlPath(id): UrlPath<String>,
) -> ApiResult<Response> {
    let p = principal(&st, &headers).await?;
    st.store
        .advisory(&id)
        .await?
        .ok_or_else(|| not_found(format!("advisory {id} not found")))?;
    Ok(Json(impact_of_advisory(&st, &id, &p).await?).into_response())
}

async fn version_impact(
    State(st): St,
    headers: HeaderMap,
    UrlPath((ns, name, ver)): UrlPath<(String, String, String)>,
) -> ApiResult<Response> {
    let p = principal(&st, &headers).await?;
    let v = version_or_404(&st, &ns, &name, &ver).await?;
    if !can_see(&p, &v) {
        return Err(not_found(format!("{ns}/{name}:{ver} not found")));
    }
    let flags = st.store.flags_of(&[v.id]).await?;
    let mut out = Vec::new();
    for adv in flags
        .iter()
        .map(|f| f.advisory_id.clone())
        .collect::<std::collections::BTreeSet<_>>()
    {
        out.push(impact_of_advisory(&st, &adv, &p).await?);
    }
    Ok(Json(json!({"model": v.label(), "advisories": out})).into_response())
}

/// The cascade of one advisory: flagged versions, the at-risk tree under them, the deployments
/// that run any of them, and per affected model the last known-good version.
/// Only versions the caller may see are listed (with their deployments); `hidden` counts the rest,
/// so a publisher learns that the cascade reaches further without learning other teams' models.
pub async fn impact_of_advisory(st: &AppState, id: &str, p: &Principal) -> ApiResult<Value> {
    let adv = st
        .store
        .advisory(id)
        .await?
        .ok_or_else(|| not_found(format!("advisory {id} not found")))?;
    let all_flags = st.store.flags_for_advisory(id).await?;
    let all_ids: Vec<i64> = all_flags.iter().map(|f| f.version_id).collect();
    let rows: HashMap<i64, VersionRow> = st
        .store
        .versions_by_ids(&all_ids)
        .await?
        .into_iter()
        .filter(|v| can_see(p, v))
        .map(|v| (v.id, v))
        .collect();
    let flags: Vec<_> = all_flags
        .into_iter()
        .filter(|f| rows.contains_key(&f.version_id))
        .collect();
    let hidden = all_ids.len() - flags.len();
    let ids: Vec<i64> = flags.iter().map(|f| f.version_id).collect();
    let deployments = st.store.deployments_of(&ids).await?;
    let bad: HashSet<i64> = ids.iter().copied().collect();
    // Last known-good per affected model, over all versions of those models.
    let mut model_ids: Vec<i64> = rows.values().map(|v| v.model_id).collect();
    model_ids.sort_unstable();
    model_ids.dedup();
    let mut all_versions = Vec::new();
    let mut by_id: HashMap<i64, VersionRow> = HashMap::new();
    for m in &model_ids {
        for v in st.store.versions_of_model(*m).await? {
            all_versions.push(VersionInfo {
                id: v.id,
                model_id: v.model_id,
                label: v.label(),
                created_seq: v.id,
                approved: v.state == "approved",
            });
            by_id.insert(v.id, v);
        }
    }
    // Versions flagged by any other advisory are not "good" either.
    let all_ids: Vec<i64> = all_versions.iter().map(|v| v.id).collect();
    let mut bad_all = bad.clone();
    bad_all.extend(
        st.store
            .flags_of(&all_ids)
            .await?
            .into_iter()
            .map(|f| f.version_id),
    );
    let lkg = cascade::last_known_good(&all_versions, &bad_all);
    let label = |i: i64| {
        rows.get(&i)
            .or_else(|| by_id.get(&i))
            .map(|v| v.label())
            .unwrap_or_else(|| i.to_string())
    };
    let entries: Vec<Value> = flags
        .iter()
        .map(|f| {
            let v = &rows[&f.version_id];
            json!({"model": v.label(), "kind": f.kind, "via": f.via.map(label), "depth": f.depth,
                   "deployments": deployments.iter().filter(|d| d.version_id == f.version_id)
                        .map(|d| json!({"name": d.name, "environment": d.environment})).collect::<Vec<_>>()})
        })
        .collect();
    let mut lkg_out = BTreeMap::new();
    for (m, good) in &lkg {
        let model = by_id
            .values()
            .find(|v| v.model_id == *m)
            .map(|v| format!("{}/{}", v.namespace, v.name))
            .unwrap_or_default();
        lkg_out.insert(model, good.map(label));
    }
    Ok(json!({
        "advisory": {"id": adv.id, "severity": adv.severity, "summary": adv.summary, "trigger": adv.trigger,
                     "withdrawn_at": adv.withdrawn_at, "withdrawn_reason": adv.withdrawn_reason},
        "hidden": hidden,
        "affected": entries,
        "deployments": deployments.iter().map(|d| json!({"name": d.name, "environment": d.environment, "model": label(d.version_id)})).collect::<Vec<_>>(),
        "last_known_good": lkg_out,
    }))
}

async fn export_feed(State(st): St, headers: HeaderMap) -> ApiResult<Response> {
    let p = principal(&st, &headers).await?;
    let mut advisories = Vec::new();
    for a in st.store.advisories().await? {
        let flags = st.store.flags_for_advisory(&a.id).await?;
        let roots: Vec<i64> = flags
            .iter()
            .filter(|f| f.kind == "flagged")
            .map(|f| f.version_id)
            .collect();
        let versions: Vec<VersionRow> = st
            .store
            .versions_by_ids(&roots)
            .await?
            .into_iter()
            .filter(|v| can_see(&p, v))
            .collect();
        if versions.is_empty() {
            continue; // nothing this caller may see, and a feed entry needs an affected model
        }
        advisories.push(crate::advisories::advisory_from_record(&a, &versions));
    }
    Ok((
        [(header::CONTENT_TYPE, "application/json")],
        advisory_feed::to_feed(&advisories),
    )
        .into_response())
}

async fn import_feed(
    State(st): St,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> ApiResult<Response> {
    let p = principal(&st, &headers).await?;
    if !p.is_admin() {
        return Err(forbidden("importing advisories needs the admin role"));
    }
    let feed = advisory_feed::parse_feed(&body).map_err(|e| bad(format!("advisory feed: {e}")))?;
    let min_conf = st.policy.read().await.min_confidence() as f64;
    let mut results = Vec::new();
    for adv in &feed.advisories {
        let roots = crate::advisories::resolve_affected(&*st.store, adv).await?;
        if adv.withdrawn.is_some() {
            if st.store.advisory(&adv.id).await?.is_some() {
                let n = st
                    .store
                    .unflag(&adv.id, "withdrawn by the imported feed", &p.token_id)
                    .await?;
                results.push(json!({"id": adv.id, "withdrawn": true, "cleared": n}));
            }
            continue;
        }
        if roots.is_empty() {
            results.push(json!({"id": adv.id, "matched": 0}));
            continue;
        }
        let rec = crate::advisories::record_from_advisory(adv);
        let r = st.store.flag(&rec, &roots, min_conf, &p.token_id).await?;
        results.push(json!({"id": adv.id, "matched": roots.len(), "changed": r.changed, "newly_at_risk": r.at_risk.len()}));
    }
    Ok(Json(json!({"imported": results})).into_response())
}

// ------------------------------------------------------------------------------------ deployments, webhooks, audit, jobs

#[derive(Deserialize)]
struct DeployReq {
    model: String,
}

async fn deploy(
    State(st): St,
    headers: HeaderMap,
    UrlPath((name, env)): UrlPath<(String, String)>,
    Json(req): Json<DeployReq>,
) -> ApiResult<Response> {
    let p = principal(&st, &headers).await?;
    let (ns, mname, ver) =
        parse_ref(&req.model).ok_or_else(|| bad("model must read ns/name:version"))?;
    if !p.can_publish(&ns) {
        return Err(forbidden(format!(
            "recording a deployment of {ns} models needs its publisher role"
        )));
    }
    if !valid_segment(&name) || !valid_segment(&env) {
        return Err(bad("deployment name and environment use [A-Za-z0-9._-]"));
    }
    let v = version_or_404(&st, &ns, &mname, &ver).await?;
    st.store.deploy(&name, &env, v.id, &p.token_id).await?;
    let blocked = download_refusal(&st, &v).await?.map(|e| e.message);
    Ok(Json(
        json!({"deployment": name, "environment": env, "model": v.label(), "warning": blocked}),
    )
    .into_response())
}

async fn list_deployments(State(st): St, headers: HeaderMap) -> ApiResult<Response> {
    let p = principal(&st, &headers).await?;
    let d = st.store.deployments().await?;
    let ids: Vec<i64> = d.iter().map(|d| d.version_id).collect();
    let labels: HashMap<i64, String> = st
        .store
        .versions_by_ids(&ids)
        .await?
        .into_iter()
        .filter(|v| p.can_read(&v.namespace))
        .map(|v| (v.id, v.label()))
        .collect();
    let out: Vec<Value> = d.iter().filter(|d| labels.contains_key(&d.version_id)).map(|d| json!({"name": d.name, "environment": d.environment, "model": labels.get(&d.version_id), "updated_at": d.updated_at})).collect();
    Ok(Json(json!({"deployments": out})).into_response())
}

#[derive(Deserialize)]
struct WebhookReq {
    url: String,
    secret: String,
    events: Option<String>,
}

async fn add_webhook(
    State(st): St,
    headers: HeaderMap,
    Json(req): Json<WebhookReq>,
) -> ApiResult<Response> {
    let p = principal(&st, &headers).await?;
    if !p.is_admin() {
        return Err(forbidden("webhooks need the admin role"));
    }
    if !(req.url.starts_with("http://") || req.url.starts_with("https://")) || req.secret.len() < 16
    {
        return Err(bad(
            "webhook url must be http(s) and the secret at least 16 characters",
        ));
    }
    let id = st
        .store
        .add_webhook(
            &req.url,
            &req.secret,
            req.events.as_deref().unwrap_or("*"),
            &p.token_id,
        )
        .await?;
    Ok((StatusCode::CREATED, Json(json!({"id": id}))).into_response())
}

#[derive(Deserialize)]
struct AuditQuery {
    from: Option<i64>,
    limit: Option<i64>,
}

async fn audit_log(
    State(st): St,
    headers: HeaderMap,
    Query(q): Query<AuditQuery>,
) -> ApiResult<Response> {
    let p = principal(&st, &headers).await?;
    if !p.is_admin() {
        return Err(forbidden("the audit log needs the admin role"));
    }
    let entries = st
        .store
        .audit_entries(
            q.from.unwrap_or(1),
            q.limit.unwrap_or(1000).clamp(1, 10_000),
        )
        .await?;
    Ok(Json(json!({"entries": entries})).into_response())
}

async fn jobs(State(st): St, headers: HeaderMap) -> ApiResult<Response> {
    let p = principal(&st, &headers).await?;
    if !p.is_admin() {
        return Err(forbidden("job status needs the admin role"));
    }
    let counts: BTreeMap<String, i64> = st.store.job_counts().await?.into_iter().collect();
    Ok(Json(json!({"jobs": counts})).into_response())
}

#[allow(dead_code)]
fn _unused(_: Request) {}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every `.route(…)` call in this crate's source, as (path, methods): read from the files
    /// themselves, so a route added anywhere (the API router, the probe routes in `ops.rs`, the
    /// UI) is seen without a list to keep up to date. The needle is split so this function does
    /// not find itself.
    fn routes_in_source() -> Vec<(String, Vec<String>, String)> {
        const NEEDLE: &str = concat!(".rou", "te(");
        let mut files = Vec::new();
        let mut dirs = vec![std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("src")];
        while let Some(d) = dirs.pop() {
            for e in std::fs::read_dir(&d).unwrap() {
                let p = e.unwrap().path();
                if p.is_dir() {
                    dirs.push(p);
                } else if p.extension().is_some_and(|x| x == "rs") {
                    files.push(p);
                }
            }
        }
        let mut out = Vec::new();
        for f in files {
            let src = std::fs::read_to_string(&f).unwrap();
            let mut at = 0;
            while let Some(i) = src[at..].find(NEEDLE) {
                let open = at + i + NEEDLE.len();
                at = open;
                // Only calls whose first argument is a string literal (not prose in comments).
                let args = src[open..].trim_start();
                let Some(args) = args.strip_prefix('"') else {
                    continue;
                };
                let path = &args[..args.find('"').unwrap()];
                // The call's arguments: up to the parenthesis that closes `.route(`.
                let mut depth = 1;
                let end = args
                    .char_indices()
                    .find(|&(_, c)| {
                        match c {
                            '(' => depth += 1,
                            ')' => depth -= 1,
                            _ => {}
                        }
                        depth == 0
                    })
                    .map(|(j, _)| j)
                    .unwrap_or_else(|| panic!("unclosed route call for {path} in {}", f.display()));
                let handlers = &args[path.len() + 1..end];
                let mut methods = Vec::new();
                for m in ["get", "post", "put", "patch", "head", "delete"] {
                    let called = handlers.match_indices(&format!("{m}(")).any(|(k, _)| {
                        k == 0 || {
                            let b = handlers.as_bytes()[k - 1];
                            !(b.is_ascii_alphanumeric() || b == b'_')
                        }
                    });
                    if called {
                        methods.push(m.to_string());
                    }
                }
                assert!(
                    !methods.is_empty(),
                    "no method found for route {path} in {}",
                    f.display()
                );
                let file = f.file_name().unwrap().to_string_lossy().to_string();
                out.push((path.replace("{*path}", "{path}"), methods, file));
            }
        }
        out
    }

    /// The served OpenAPI document lists exactly the routes the server answers, with the same
    /// methods, wherever in the crate they are added. Only the web UI's HTML pages (`/`, `/ui…`)
    /// are left out: they are for browsers, not API clients.
    #[test]
    fn openapi_matches_router() {
        let doc: Value = serde_json::from_str(include_str!("openapi.json")).unwrap();
        let paths = doc["paths"].as_object().unwrap();
        let mut served: std::collections::BTreeMap<String, std::collections::BTreeSet<String>> =
            Default::default();
        for (path, methods, _) in routes_in_source() {
            if path == "/" || path == "/ui" || path.starts_with("/ui/") {
                continue;
            }
            served.entry(path).or_default().extend(methods);
        }
        // A parser that found nothing would pass everything below.
        for must in [
            "/healthz",
            "/readyz",
            "/metrics",
            "/v1/jobs",
            "/v1/blobs/{digest}",
        ] {
            assert!(served.contains_key(must), "{must} not found in the source");
        }
        for (path, methods) in &served {
            let entry = paths
                .get(path)
                .unwrap_or_else(|| panic!("{path} is served but missing from openapi.json"));
            for m in methods {
                assert!(
                    entry.get(m).is_some(),
                    "{} {path} is served but missing from openapi.json",
                    m.to_uppercase()
                );
            }
        }
        for (path, entry) in paths {
            let methods = served
                .get(path)
                .unwrap_or_else(|| panic!("openapi.json documents {path}, which is not served"));
            for m in entry.as_object().unwrap().keys() {
                assert!(
                    methods.contains(m),
                    "openapi.json documents {} {path}, which is not served",
                    m.to_uppercase()
                );
            }
        }
    }

    /// The route scan itself: it sees routes in every file, written on one line or several.
    #[test]
    fn route_scan_sees_every_file() {
        let routes = routes_in_source();
        let files: std::collections::BTreeSet<&str> =
            routes.iter().map(|(_, _, f)| f.as_str()).collect();
        for f in ["server.rs", "ops.rs", "mod.rs"] {
            assert!(files.contains(f), "no routes found in {f}: {files:?}");
        }
        let find = |path: &str| {
            routes
                .iter()
                .find(|(p, _, _)| p == path)
                .unwrap_or_else(|| panic!("{path} not found"))
                .1
                .clone()
        };
        assert_eq!(find("/v1/advisories"), ["get", "post"]);
        // Written across lines by rustfmt, with a `{*path}` wildcard.
        assert_eq!(
            find("/v1/models/{ns}/{name}/versions/{ver}/files/{path}"),
            ["get"]
        );
    }

    #[test]
    fn paths_and_refs() {
        assert!(safe_relative_path("a/b.safetensors").is_some());
        for bad in [
            "",
            "/etc/passwd",
            "../x",
            "a/../../x",
            "a\\b",
            "./",
            "a/./b/..",
        ] {
            assert!(safe_relative_path(bad).is_none(), "{bad}");
        }
        assert_eq!(
            parse_ref("acme/bert:1.0"),
            Some(("acme".into(), "bert".into(), "1.0".into()))
        );
        assert_eq!(parse_ref("acme/bert"), None);
        assert_eq!(parse_ref("acme/../x:1"), None);
    }
}
