//! The metadata store: models, versions, jobs, lineage, advisories and flags, deployments,
//! webhooks, tokens and the audit log. [`MetaStore`] is the seam other engines plug into;
//! [`sql::SqlStore`] implements it over sqlx's `Any` driver so one body of SQL serves SQLite
//! (the zero-configuration default) and PostgreSQL (several API processes sharing one database).
//!
//! Every state change is one transaction that also appends to the hash-chained audit log and
//! queues its webhook events in the outbox, so a crash leaves either all of it or none.

pub mod sql;
pub mod testdb;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::cascade::Affected;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("not found: {0}")]
    NotFound(String),
    #[error("conflict: {0}")]
    Conflict(String),
    #[error("invalid: {0}")]
    Invalid(String),
    #[error("database error: {0}")]
    Db(#[from] sqlx::Error),
    /// The database's disk is full (SQLite's SQLITE_FULL, PostgreSQL's `disk_full`). The write
    /// was rolled back whole; it can be retried once space is freed.
    #[error(
        "metadata database {db}: disk full ({cause}); nothing of this change was stored, free \
         space and retry"
    )]
    Full { db: String, cause: String },
    #[error("database migration error: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("{0}")]
    Other(String),
}

pub type Result<T> = std::result::Result<T, StoreError>;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, PartialOrd, Ord, Hash)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Reader,
    Publisher,
    Approver,
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Reader => "reader",
            Role::Publisher => "publisher",
            Role::Approver => "approver",
            Role::Admin => "admin",
        }
    }
    pub fn parse(s: &str) -> Option<Role> {
        Some(match s {
            "reader" => Role::Reader,
            "publisher" => Role::Publisher,
            "approver" => Role::Approver,
            "admin" => Role::Admin,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grant {
    pub role: Role,
    /// `*` for every namespace.
    pub namespace: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TokenRecord {
    pub id: String,
    pub name: String,
    pub hash: String,
    pub revoked: bool,
    pub grants: Vec<Grant>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NewFile {
    pub path: String,
    pub digest: String,
    pub size: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct VersionRow {
    pub id: i64,
    pub model_id: i64,
    pub namespace: String,
    pub name: String,
    pub version: String,
    pub state: String,
    pub identity: Option<String>,
    pub publisher: String,
    pub created_at: i64,
    pub decided_at: Option<i64>,
    pub decision: Option<Value>,
}

impl VersionRow {
    pub fn label(&self) -> String {
        format!("{}/{}:{}", self.namespace, self.name, self.version)
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FlagRow {
    pub version_id: i64,
    pub advisory_id: String,
    /// `flagged` (named by the advisory) or `at_risk` (inherited through lineage).
    pub kind: String,
    pub via: Option<i64>,
    pub depth: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EdgeRow {
    pub rowid: i64,
    pub parent: i64,
    pub child: i64,
    pub source: String,
    pub relation: String,
    pub confidence: f64,
    pub evidence: Value,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NewEdge {
    pub parent: i64,
    pub child: i64,
    pub source: String,
    pub relation: String,
    pub confidence: f64,
    pub evidence: Value,
}

#[derive(Debug, Clone)]
pub struct Job {
    pub id: i64,
    pub kind: String,
    pub version_id: i64,
    pub attempts: i64,
}

/// Everything an ingest job learned, committed in one transaction.
#[derive(Debug, Clone)]
pub struct IngestCommit {
    pub job_id: i64,
    pub version_id: i64,
    pub identity: String,
    pub reports: Vec<(String, String)>,
    pub edges: Vec<NewEdge>,
    /// `approved`, `held` or `rejected`.
    pub state: String,
    pub decision: Value,
    pub min_confidence: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AdvisoryRecord {
    pub id: String,
    pub severity: String,
    pub summary: String,
    pub trigger: Option<String>,
    pub source: String,
    pub body: Value,
    pub created_at: i64,
    pub withdrawn_at: Option<i64>,
    pub withdrawn_reason: Option<String>,
}

#[derive(Debug, Clone)]
pub struct FlagResult {
    /// False when the advisory already covered exactly these versions: nothing changed.
    pub changed: bool,
    pub flagged: Vec<i64>,
    pub at_risk: Vec<Affected>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DeploymentRow {
    pub name: String,
    pub environment: String,
    pub version_id: i64,
    pub updated_at: i64,
}

#[derive(Debug, Clone)]
pub struct OutboxItem {
    pub id: i64,
    pub url: String,
    pub secret: String,
    pub event: String,
    pub payload: String,
    pub attempts: i64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct VersionFilter {
    pub namespace: Option<String>,
    pub state: Option<String>,
    pub limit: Option<i64>,
}

/// A resumable upload session (see the `uploads` table).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadRecord {
    pub id: String,
    pub token_id: String,
    /// Bytes acknowledged so far.
    pub size: u64,
    pub declared_size: Option<u64>,
    pub digest: Option<String>,
    /// Where the blob store keeps the bytes (a staging file name, an S3 key).
    pub store_key: String,
    /// The S3 multipart upload id; `None` for a local store.
    pub store_upload_id: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

/// One acknowledged chunk of an upload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadChunk {
    pub seq: u32,
    pub start: u64,
    pub size: u64,
    /// [`crate::upload_hash::ResumableSha256`] after this chunk, as hex.
    pub hash_state: String,
    /// The S3 part's ETag.
    pub etag: Option<String>,
}

#[async_trait]
pub trait MetaStore: Send + Sync {
    // --- tokens
    async fn token_count(&self) -> Result<i64>;
    async fn create_token(&self, rec: &TokenRecord, actor: &str) -> Result<()>;
    async fn get_token(&self, id: &str) -> Result<Option<TokenRecord>>;
    async fn revoke_token(&self, id: &str, actor: &str) -> Result<()>;

    // --- blobs and upload sessions
    async fn record_blob(&self, digest: &str, size: u64) -> Result<()>;
    async fn create_upload(&self, u: &UploadRecord) -> Result<()>;
    async fn get_upload(&self, id: &str) -> Result<Option<UploadRecord>>;
    /// The acknowledged chunks of an upload, in order.
    async fn upload_chunks(&self, id: &str) -> Result<Vec<UploadChunk>>;
    /// The chunk of an upload that starts at `offset`, if any.
    async fn upload_chunk_starting(&self, id: &str, offset: u64) -> Result<Option<UploadChunk>>;
    /// The chunk of an upload that ends at `offset`, if any (the last one, for its size).
    async fn upload_chunk_ending(&self, id: &str, offset: u64) -> Result<Option<UploadChunk>>;
    /// Record `chunk` as acknowledged if the upload still holds `expected_size` bytes: a
    /// compare-and-swap, so of two processes writing the same offset at once exactly one wins.
    /// `false`: the upload moved on (or is gone) and the chunk is not recorded.
    async fn commit_upload_chunk(
        &self,
        id: &str,
        expected_size: u64,
        chunk: &UploadChunk,
    ) -> Result<bool>;
    async fn delete_upload(&self, id: &str) -> Result<()>;
    /// Uploads with no chunk since `before_ms` (at most `limit`), for expiry.
    async fn idle_uploads(&self, before_ms: i64, limit: i64) -> Result<Vec<UploadRecord>>;
    /// Delete an upload only if it is still idle since `before_ms`; whether it was deleted (a
    /// chunk that arrived meanwhile keeps it alive, and a second process expiring it loses).
    async fn delete_upload_if_idle(&self, id: &str, before_ms: i64) -> Result<bool>;

    // --- models and versions
    /// Create a quarantined version with its files and queue its ingest job.
    async fn create_version(
        &self,
        namespace: &str,
        name: &str,
        version: &str,
        publisher: &str,
        files: &[NewFile],
        actor: &str,
    ) -> Result<i64>;
    async fn find_version(
        &self,
        namespace: &str,
        name: &str,
        version: &str,
    ) -> Result<Option<VersionRow>>;
    async fn version_by_id(&self, id: i64) -> Result<Option<VersionRow>>;
    async fn versions_by_ids(&self, ids: &[i64]) -> Result<Vec<VersionRow>>;
    async fn versions_of_model(&self, model_id: i64) -> Result<Vec<VersionRow>>;
    async fn versions_with_identity(&self, identity: &str) -> Result<Vec<VersionRow>>;
    async fn latest_version_of(&self, namespace: &str, name: &str) -> Result<Option<VersionRow>>;
    async fn list_versions(&self, filter: &VersionFilter) -> Result<Vec<VersionRow>>;
    async fn version_files(&self, id: i64) -> Result<Vec<NewFile>>;
    async fn report(&self, id: i64, kind: &str) -> Result<Option<String>>;
    /// `(namespace, name)` of every model with an approved version.
    async fn approved_names(&self) -> Result<Vec<(String, String)>>;
    /// Stored fingerprints, for the lineage index.
    async fn fingerprints(&self) -> Result<Vec<(i64, String)>>;
    /// Stored fingerprints of versions with an id above `after`.
    async fn fingerprints_after(&self, after: i64) -> Result<Vec<(i64, String)>>;
    /// Below (or at) this version id, every fingerprint that will ever be stored already is:
    /// one less than the oldest version whose ingest job is still queued or running, or the
    /// newest version id when none is.
    async fn fingerprint_low_water(&self) -> Result<i64>;
    /// An approver's manual decision on a held version.
    async fn decide(&self, id: i64, state: &str, decision: &Value, actor: &str) -> Result<()>;

    // --- jobs
    async fn claim_job(&self, owner: &str, lease_ms: i64) -> Result<Option<Job>>;
    async fn finish_ingest(&self, commit: &IngestCommit) -> Result<()>;
    async fn fail_job(&self, job_id: i64, error: &str, retry: bool) -> Result<()>;
    async fn job_counts(&self) -> Result<Vec<(String, i64)>>;
    /// Extend a running job's lease; false when `owner` no longer holds it (it expired and
    /// another worker took the job, or the job is finished).
    async fn renew_lease(&self, job_id: i64, owner: &str, lease_ms: i64) -> Result<bool>;
    /// Give a running job back to the queue at once (a worker shutting down before it could
    /// finish); the attempt is not counted. False when `owner` no longer held it.
    async fn release_job(&self, job_id: i64, owner: &str) -> Result<bool>;
    /// Ready to serve: the database answers and every migration this build knows is applied.
    async fn readiness(&self) -> Result<()>;

    // --- lineage
    async fn edges_since(&self, rowid: i64) -> Result<Vec<EdgeRow>>;
    async fn edges_of(&self, version_id: i64) -> Result<Vec<EdgeRow>>;

    // --- advisories, flags, cascade
    async fn flag(
        &self,
        advisory: &AdvisoryRecord,
        roots: &[i64],
        min_confidence: f64,
        actor: &str,
    ) -> Result<FlagResult>;
    async fn unflag(&self, advisory_id: &str, justification: &str, actor: &str) -> Result<usize>;
    async fn flags_of(&self, version_ids: &[i64]) -> Result<Vec<FlagRow>>;
    async fn flags_for_advisory(&self, advisory_id: &str) -> Result<Vec<FlagRow>>;
    async fn advisories(&self) -> Result<Vec<AdvisoryRecord>>;
    async fn advisory(&self, id: &str) -> Result<Option<AdvisoryRecord>>;

    // --- deployments
    async fn deploy(
        &self,
        name: &str,
        environment: &str,
        version_id: i64,
        actor: &str,
    ) -> Result<()>;
    async fn deployments_of(&self, version_ids: &[i64]) -> Result<Vec<DeploymentRow>>;
    async fn deployments(&self) -> Result<Vec<DeploymentRow>>;

    // --- webhooks
    async fn add_webhook(&self, url: &str, secret: &str, events: &str, actor: &str) -> Result<i64>;
    /// Claim up to `limit` webhook deliveries due at `now`: each is handed to one caller, and
    /// is due again only if it is neither delivered nor retried before the claim runs out.
    async fn due_outbox(&self, now: i64, limit: i64) -> Result<Vec<OutboxItem>>;
    async fn outbox_delivered(&self, id: i64, now: i64) -> Result<()>;
    async fn outbox_retry(&self, id: i64, error: &str, next_at: i64, give_up: bool) -> Result<()>;

    // --- audit
    async fn audit_entries(
        &self,
        from_seq: i64,
        limit: i64,
    ) -> Result<Vec<crate::audit::AuditEntry>>;
    async fn audit_append(
        &self,
        actor: &str,
        action: &str,
        subject: &str,
        details: &Value,
    ) -> Result<crate::audit::AuditEntry>;
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
