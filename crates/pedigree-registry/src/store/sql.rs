//! [`MetaStore`] over sqlx's `Any` driver. The SQL is written once for SQLite and PostgreSQL
//! (`ON CONFLICT`, `RETURNING`, `$n` parameters work in both); the few places where the engines
//! differ (locking) branch on [`Backend`].

use std::collections::{BTreeSet, HashMap, HashSet};

use async_trait::async_trait;
use serde_json::{Value, json};
use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::pool::PoolConnection;
use sqlx::{Any, AnyPool, Connection, Executor, Row, Transaction};
use tokio::sync::Mutex;

use super::*;
use crate::audit::{self, AuditEntry};
use crate::cascade::LineageGraph;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

pub struct SqlStore {
    pool: AnyPool,
    backend: Backend,
    /// SQLite has one writer; serialising our own write transactions here avoids the
    /// deferred-transaction upgrade failures SQLite reports instead of waiting. On PostgreSQL it
    /// only spares pool connections from queueing on the advisory lock: correctness across
    /// processes comes from that lock (see [`SqlStore::begin_write`]) and from single-statement
    /// writes being atomic on their own (see [`SqlStore::sqlite_writer`]).
    write_lock: Mutex<()>,
    /// The lineage graph, cached and grown by edge rowid. Only touched inside write transactions,
    /// after the advisory lock is held, so on PostgreSQL it catches up with edges that other
    /// processes sharing the database committed before it is used (see `refresh_graph`).
    graph: Mutex<LineageGraph>,
    /// Where the audit chain's head is checkpointed after every write (see [`audit::Anchor`]).
    anchor: Option<std::path::PathBuf>,
    /// The database in messages: the SQLite file, or the PostgreSQL URL without its password.
    name: String,
}

type Tx<'a> = Transaction<'a, Any>;

/// How long a claimed webhook delivery is not handed to another process (see `due_outbox`).
const OUTBOX_CLAIM_MS: i64 = 120_000;

fn row_version(r: &AnyRow) -> Result<VersionRow> {
    let decision: Option<String> = r.try_get("decision")?;
    Ok(VersionRow {
        id: r.try_get("id")?,
        model_id: r.try_get("model_id")?,
        namespace: r.try_get("namespace")?,
        name: r.try_get("name")?,
        version: r.try_get("version")?,
        state: r.try_get("state")?,
        identity: r.try_get("identity")?,
        publisher: r.try_get("publisher")?,
        created_at: r.try_get("created_at")?,
        decided_at: r.try_get("decided_at")?,
        decision: decision.and_then(|d| serde_json::from_str(&d).ok()),
    })
}

const VERSION_COLS: &str = "v.id AS id, v.model_id AS model_id, m.namespace AS namespace, \
    m.name AS name, v.version AS version, v.state AS state, v.identity AS identity, \
    v.publisher AS publisher, v.created_at AS created_at, v.decided_at AS decided_at, \
    v.decision AS decision";

fn row_edge(r: &AnyRow) -> Result<EdgeRow> {
    let ev: String = r.try_get("evidence")?;
    Ok(EdgeRow {
        rowid: r.try_get("rowid_")?,
        parent: r.try_get("parent")?,
        child: r.try_get("child")?,
        source: r.try_get("source")?,
        relation: r.try_get("relation")?,
        confidence: r.try_get("confidence")?,
        evidence: serde_json::from_str(&ev).unwrap_or(Value::Null),
    })
}

fn row_flag(r: &AnyRow) -> Result<FlagRow> {
    Ok(FlagRow {
        version_id: r.try_get("version_id")?,
        advisory_id: r.try_get("advisory_id")?,
        kind: r.try_get("kind")?,
        via: r.try_get("via")?,
        depth: r.try_get("depth")?,
    })
}

fn row_advisory(r: &AnyRow) -> Result<AdvisoryRecord> {
    let body: String = r.try_get("body")?;
    Ok(AdvisoryRecord {
        id: r.try_get("id")?,
        severity: r.try_get("severity")?,
        summary: r.try_get("summary")?,
        trigger: r.try_get("trigger_")?,
        source: r.try_get("source")?,
        body: serde_json::from_str(&body).unwrap_or(Value::Null),
        created_at: r.try_get("created_at")?,
        withdrawn_at: r.try_get("withdrawn_at")?,
        withdrawn_reason: r.try_get("withdrawn_reason")?,
    })
}

/// `url` with any password replaced by `***`, for error messages and logs.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let (auth, host) = match rest.rsplit_once('@') {
        Some(x) => x,
        None => return url.to_string(),
    };
    match auth.split_once(':') {
        Some((user, _)) => format!("{scheme}://{user}:***@{host}"),
        None => url.to_string(),
    }
}

const UPLOAD_COLS: &str = "id, token_id, size, declared_size, digest, store_key, \
     store_upload_id, created_at, updated_at";

fn row_chunk(r: &AnyRow) -> Result<UploadChunk> {
    Ok(UploadChunk {
        seq: r.try_get::<i64, _>("seq")? as u32,
        start: r.try_get::<i64, _>("start_offset")? as u64,
        size: r.try_get::<i64, _>("size")? as u64,
        hash_state: r.try_get("hash_state")?,
        etag: r.try_get("etag")?,
    })
}

fn row_upload(r: &AnyRow) -> Result<UploadRecord> {
    Ok(UploadRecord {
        id: r.try_get("id")?,
        token_id: r.try_get("token_id")?,
        size: r.try_get::<i64, _>("size")? as u64,
        declared_size: r
            .try_get::<Option<i64>, _>("declared_size")?
            .map(|n| n as u64),
        digest: r.try_get("digest")?,
        store_key: r.try_get("store_key")?,
        store_upload_id: r.try_get("store_upload_id")?,
        created_at: r.try_get("created_at")?,
        updated_at: r.try_get("updated_at")?,
    })
}

/// `$1, $2, …` for `n` values starting at `from`.
fn placeholders(from: usize, n: usize) -> String {
    (from..from + n)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

impl SqlStore {
    /// Open (creating if needed) and migrate. `url` is `sqlite://PATH` or `postgres://…`.
    pub async fn connect(url: &str) -> Result<SqlStore> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("postgres") {
            Backend::Postgres
        } else {
            Backend::Sqlite
        };
        let url = if backend == Backend::Sqlite && !url.contains("mode=") {
            format!("{url}?mode=rwc")
        } else {
            url.to_string()
        };
        let mut opts =
            AnyPoolOptions::new().max_connections(if backend == Backend::Sqlite { 4 } else { 16 });
        if backend == Backend::Sqlite {
            opts = opts.after_connect(|conn, _| {
                Box::pin(async move {
                    // WAL + synchronous=FULL: a commit is on disk when it returns.
                    conn.execute("PRAGMA journal_mode=WAL").await?;
                    conn.execute("PRAGMA synchronous=FULL").await?;
                    conn.execute("PRAGMA busy_timeout=30000").await?;
                    conn.execute("PRAGMA foreign_keys=ON").await?;
                    Ok(())
                })
            });
        }
        let pool = opts.connect(&url).await.map_err(|e| {
            StoreError::Other(format!(
                "cannot open the {} database at {}: {e}",
                match backend {
                    Backend::Sqlite => "SQLite",
                    Backend::Postgres => "PostgreSQL",
                },
                redact_url(&url)
            ))
        })?;
        match backend {
            Backend::Sqlite => sqlx::migrate!("./migrations/sqlite").run(&pool).await?,
            // sqlx's migrator takes its own advisory lock on PostgreSQL, so several API
            // processes starting at once against an empty database migrate it exactly once.
            Backend::Postgres => sqlx::migrate!("./migrations/postgres").run(&pool).await?,
        }
        Ok(SqlStore {
            pool,
            backend,
            write_lock: Mutex::new(()),
            graph: Mutex::new(LineageGraph::new()),
            anchor: None,
            name: match backend {
                Backend::Sqlite => {
                    let path = url
                        .strip_prefix("sqlite://")
                        .or_else(|| url.strip_prefix("sqlite:"))
                        .unwrap_or(&url);
                    path.split('?').next().unwrap_or(path).to_string()
                }
                Backend::Postgres => redact_url(&url),
            },
        })
    }

    /// Checkpoint the audit head to `path` after every write transaction.
    pub fn with_anchor(mut self, path: std::path::PathBuf) -> SqlStore {
        self.anchor = Some(path);
        self
    }

    /// Write the anchor file; a failure is logged, not fatal: the chain itself is intact, and a
    /// lagging anchor only weakens the truncation check until the next write.
    async fn save_anchor(&self) {
        let Some(path) = &self.anchor else { return };
        let head = sqlx::query("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1")
            .fetch_optional(&self.pool)
            .await;
        let anchor = match head {
            Ok(Some(r)) => match (r.try_get::<i64, _>("seq"), r.try_get::<String, _>("hash")) {
                (Ok(seq), Ok(hash)) => audit::Anchor { seq, hash },
                _ => return,
            },
            Ok(None) => audit::Anchor::genesis(),
            Err(e) => {
                tracing::error!("audit anchor: {e}");
                return;
            }
        };
        let path = path.clone();
        let r = tokio::task::spawn_blocking(move || anchor.save(&path)).await;
        if let Ok(Err(e)) = r {
            tracing::error!("audit anchor: {e}");
        }
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// A write's error, with a full disk told apart ([`StoreError::Full`], naming the
    /// database) from other database errors, so the API can answer 507 rather than 500.
    fn write_error(&self, e: impl Into<StoreError>) -> StoreError {
        let e = e.into();
        if let StoreError::Db(sqlx::Error::Database(d)) = &e {
            // SQLITE_FULL is 13; PostgreSQL's disk_full is SQLSTATE 53100.
            let full = match self.backend {
                Backend::Sqlite => {
                    d.code().as_deref() == Some("13")
                        || d.message().contains("database or disk is full")
                }
                Backend::Postgres => d.code().as_deref() == Some("53100"),
            };
            if full {
                return StoreError::Full {
                    db: self.name.clone(),
                    cause: d.message().to_string(),
                };
            }
        }
        e
    }

    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// For writes that are one atomic statement (`ON CONFLICT`, `UPDATE … WHERE id = …`, the job
    /// claim with `SKIP LOCKED`): PostgreSQL needs no lock for them, and taking the process
    /// mutex there would only serialise independent requests. SQLite gets its single writer.
    async fn sqlite_writer(&self) -> Option<tokio::sync::MutexGuard<'_, ()>> {
        match self.backend {
            Backend::Sqlite => Some(self.write_lock.lock().await),
            Backend::Postgres => None,
        }
    }

    /// Begin a write transaction on `conn`, a connection of this store's pool held by the
    /// caller (see `write_tx!`, which needs it back to discard it when a commit fails).
    async fn begin_write<'c>(&self, conn: &'c mut PoolConnection<Any>) -> Result<Tx<'c>> {
        // The write lock (taken by the caller) serialises this process only; other processes
        // (`pedigree worker`) write the same file. IMMEDIATE takes SQLite's write lock up
        // front, where busy_timeout waits for it, instead of failing at the first write after
        // a read.
        let mut tx = if self.backend == Backend::Sqlite {
            conn.begin_with("BEGIN IMMEDIATE").await?
        } else {
            conn.begin().await?
        };
        if self.backend == Backend::Postgres {
            // One writer of the audit chain, the lineage edges and the cascade at a time across
            // every process sharing the database: the audit append reads the head and writes
            // head+1, and the graph cache loads edges by id above its high-water mark, which is
            // only sound when edge ids are assigned and committed in the same order. Statements
            // after this one run under READ COMMITTED and so see every commit made before the
            // lock was granted.
            sqlx::query("SELECT pg_advisory_xact_lock(7207)")
                .execute(&mut *tx)
                .await?;
        }
        Ok(tx)
    }

    async fn append_audit(
        tx: &mut Tx<'_>,
        actor: &str,
        action: &str,
        subject: &str,
        details: &Value,
    ) -> Result<AuditEntry> {
        let last = sqlx::query("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1")
            .fetch_optional(&mut **tx)
            .await?;
        let (seq, prev) = match last {
            Some(r) => (
                r.try_get::<i64, _>("seq")? + 1,
                r.try_get::<String, _>("hash")?,
            ),
            None => (1, audit::GENESIS.to_string()),
        };
        let at = now_ms();
        let hash = audit::entry_hash(&prev, seq, at, actor, action, subject, details);
        sqlx::query(
            "INSERT INTO audit (seq, at_ms, actor, action, subject, details, prev, hash) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(seq)
        .bind(at)
        .bind(actor)
        .bind(action)
        .bind(subject)
        .bind(details.to_string())
        .bind(&prev)
        .bind(&hash)
        .execute(&mut **tx)
        .await?;
        Ok(AuditEntry {
            seq,
            at_ms: at,
            actor: actor.into(),
            action: action.into(),
            subject: subject.into(),
            details: details.clone(),
            prev,
            hash,
        })
    }

    async fn queue_event(tx: &mut Tx<'_>, event: &str, payload: &Value) -> Result<()> {
        let body = json!({"event": event, "at_ms": now_ms(), "data": payload}).to_string();
        sqlx::query(
            "INSERT INTO outbox (webhook_id, event, payload, next_at) \
             SELECT id, $1, $2, $3 FROM webhooks \
             WHERE events = '*' OR (',' || events || ',') LIKE ('%,' || $1 || ',%')",
        )
        .bind(event)
        .bind(body)
        .bind(now_ms())
        .execute(&mut **tx)
        .await?;
        Ok(())
    }

    /// Bring the cached graph up to date with every edge visible to `tx`.
    async fn refresh_graph(tx: &mut Tx<'_>, g: &mut LineageGraph) -> Result<()> {
        let rows = sqlx::query(
            "SELECT rowid_, parent, child, confidence FROM lineage_edges \
             WHERE rowid_ > $1 ORDER BY rowid_",
        )
        .bind(g.high_water())
        .fetch_all(&mut **tx)
        .await?;
        for r in rows {
            let rowid: i64 = r.try_get("rowid_")?;
            let c: f64 = r.try_get("confidence")?;
            g.add_edge(r.try_get("parent")?, r.try_get("child")?, c as f32);
            g.set_high_water(rowid);
        }
        Ok(())
    }

    async fn labels(tx: &mut Tx<'_>, ids: &[i64]) -> Result<Vec<String>> {
        let mut out = Vec::new();
        for chunk in ids.chunks(500) {
            let q = format!(
                "SELECT m.namespace AS ns, m.name AS name, v.version AS version FROM versions v \
                 JOIN models m ON m.id = v.model_id WHERE v.id IN ({})",
                placeholders(1, chunk.len())
            );
            let mut query = sqlx::query(&q);
            for id in chunk {
                query = query.bind(*id);
            }
            for r in query.fetch_all(&mut **tx).await? {
                out.push(format!(
                    "{}/{}:{}",
                    r.try_get::<String, _>("ns")?,
                    r.try_get::<String, _>("name")?,
                    r.try_get::<String, _>("version")?
                ));
            }
        }
        Ok(out)
    }

    /// Make the flags of `advisory_id` cover `roots` and everything reachable from them. Returns
    /// the roots newly flagged and the versions newly at risk.
    async fn apply_cascade(
        tx: &mut Tx<'_>,
        g: &mut LineageGraph,
        advisory_id: &str,
        roots: &[i64],
        min_confidence: f64,
    ) -> Result<(Vec<i64>, Vec<Affected>)> {
        Self::refresh_graph(tx, g).await?;
        let existing: HashMap<i64, String> =
            sqlx::query("SELECT version_id, kind FROM flags WHERE advisory_id = $1")
                .bind(advisory_id)
                .fetch_all(&mut **tx)
                .await?
                .iter()
                .map(|r| Ok((r.try_get("version_id")?, r.try_get("kind")?)))
                .collect::<Result<_>>()?;
        let mut all_roots: BTreeSet<i64> = roots.iter().copied().collect();
        all_roots.extend(
            existing
                .iter()
                .filter(|(_, k)| k.as_str() == "flagged")
                .map(|(v, _)| *v),
        );
        let all_roots: Vec<i64> = all_roots.into_iter().collect();
        let affected = g.affected(&all_roots, min_confidence as f32);
        let now = now_ms();
        let new_roots: Vec<i64> = roots
            .iter()
            .copied()
            .filter(|r| existing.get(r).map(|k| k != "flagged").unwrap_or(true))
            .collect();
        // A version at risk that is now named directly becomes `flagged`.
        for r in &new_roots {
            sqlx::query("DELETE FROM flags WHERE version_id = $1 AND advisory_id = $2")
                .bind(*r)
                .bind(advisory_id)
                .execute(&mut **tx)
                .await?;
        }
        let root_set: HashSet<i64> = all_roots.iter().copied().collect();
        let new_at_risk: Vec<Affected> = affected
            .into_iter()
            .filter(|a| !root_set.contains(&a.version) && !existing.contains_key(&a.version))
            .collect();
        let mut rows: Vec<(i64, &str, Option<i64>, i64)> =
            new_roots.iter().map(|&r| (r, "flagged", None, 0)).collect();
        rows.extend(
            new_at_risk
                .iter()
                .map(|a| (a.version, "at_risk", Some(a.via), a.depth as i64)),
        );
        // Multi-row inserts with the integers written into the statement (they are ours, not
        // user input; only the advisory id is bound): binding 400k parameters one by one through
        // the driver cost more than SQLite's own work.
        for chunk in rows.chunks(5000) {
            let mut q = String::with_capacity(chunk.len() * 40 + 128);
            q.push_str(
                "INSERT INTO flags (version_id, advisory_id, kind, via, depth, created_at) VALUES ",
            );
            for (i, (v, kind, via, depth)) in chunk.iter().enumerate() {
                if i > 0 {
                    q.push(',');
                }
                let via = via.map(|x| x.to_string()).unwrap_or_else(|| "NULL".into());
                q.push_str(&format!("({v},$1,'{kind}',{via},{depth},{now})"));
            }
            q.push_str(" ON CONFLICT (version_id, advisory_id) DO NOTHING");
            sqlx::query(&q).bind(advisory_id).execute(&mut **tx).await?;
        }
        Ok((new_roots, new_at_risk))
    }

    async fn fetch_versions(&self, where_: &str, binds: Vec<Value>) -> Result<Vec<VersionRow>> {
        let q = format!(
            "SELECT {VERSION_COLS} FROM versions v JOIN models m ON m.id = v.model_id {where_}"
        );
        let mut query = sqlx::query(&q);
        for b in binds {
            query = match b {
                Value::String(s) => query.bind(s),
                Value::Number(n) => query.bind(n.as_i64().unwrap_or(0)),
                _ => query.bind(Option::<String>::None),
            };
        }
        query
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(row_version)
            .collect()
    }
}

/// Run `f` on a write transaction; on any error, roll back and forget the cached graph
/// (it may hold edges the failed transaction had read). A full disk comes out as
/// [`StoreError::Full`].
///
/// A connection whose COMMIT (or ROLLBACK) failed is closed, never handed back to the pool:
/// SQLite may already have rolled the transaction back itself (it does on SQLITE_FULL), the
/// driver's ROLLBACK then fails too, and the driver would go on believing a transaction is
/// open on that connection, refusing every later `BEGIN` on it ("non-zero transaction depth").
macro_rules! write_tx {
    ($self:ident, |$tx:ident, $g:ident| $body:block) => {{
        let r: Result<_> = async {
            let _guard = $self.write_lock.lock().await;
            let mut conn = $self.pool.acquire().await?;
            let mut discard = false;
            let r: Result<_> = async {
                let mut $tx = $self.begin_write(&mut conn).await?;
                let mut graph_guard = $self.graph.lock().await;
                let $g: &mut LineageGraph = &mut graph_guard;
                let result: Result<_> = async { $body }.await;
                match result {
                    Ok(v) => match $tx.commit().await {
                        Ok(()) => Ok(v),
                        Err(e) => {
                            *graph_guard = LineageGraph::new();
                            discard = true;
                            Err(e.into())
                        }
                    },
                    Err(e) => {
                        *graph_guard = LineageGraph::new();
                        if $tx.rollback().await.is_err() {
                            discard = true;
                        }
                        Err(e)
                    }
                }
            }
            .await;
            if discard {
                // Closing also ends whatever transaction the server still holds open.
                let _ = conn.close().await;
            } else {
                drop(conn);
            }
            if r.is_ok() {
                $self.save_anchor().await;
            }
            r
        }
        .await;
        r.map_err(|e| $self.write_error(e))
    }};
}

#[async_trait]
impl MetaStore for SqlStore {
    async fn token_count(&self) -> Result<i64> {
        Ok(sqlx::query("SELECT COUNT(*) AS n FROM tokens")
            .fetch_one(&self.pool)
            .await?
            .try_get("n")?)
    }

    async fn create_token(&self, rec: &TokenRecord, actor: &str) -> Result<()> {
        write_tx!(self, |tx, _g| {
            sqlx::query("INSERT INTO tokens (id, name, hash, created_at) VALUES ($1, $2, $3, $4)")
                .bind(&rec.id)
                .bind(&rec.name)
                .bind(&rec.hash)
                .bind(now_ms())
                .execute(&mut *tx)
                .await?;
            for g in &rec.grants {
                sqlx::query("INSERT INTO grants (token_id, role, namespace) VALUES ($1, $2, $3)")
                    .bind(&rec.id)
                    .bind(g.role.as_str())
                    .bind(&g.namespace)
                    .execute(&mut *tx)
                    .await?;
            }
            Self::append_audit(
                &mut tx,
                actor,
                "token.create",
                &rec.id,
                &json!({"name": rec.name, "grants": rec.grants}),
            )
            .await?;
            Ok(())
        })
    }

    async fn get_token(&self, id: &str) -> Result<Option<TokenRecord>> {
        let Some(r) = sqlx::query("SELECT id, name, hash, revoked_at FROM tokens WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
        else {
            return Ok(None);
        };
        let grants = sqlx::query("SELECT role, namespace FROM grants WHERE token_id = $1")
            .bind(id)
            .fetch_all(&self.pool)
            .await?
            .iter()
            .filter_map(|g| {
                Some(Grant {
                    role: Role::parse(&g.try_get::<String, _>("role").ok()?)?,
                    namespace: g.try_get("namespace").ok()?,
                })
            })
            .collect();
        Ok(Some(TokenRecord {
            id: r.try_get("id")?,
            name: r.try_get("name")?,
            hash: r.try_get("hash")?,
            revoked: r.try_get::<Option<i64>, _>("revoked_at")?.is_some(),
            grants,
        }))
    }

    async fn revoke_token(&self, id: &str, actor: &str) -> Result<()> {
        write_tx!(self, |tx, _g| {
            let n = sqlx::query("UPDATE tokens SET revoked_at = $1 WHERE id = $2")
                .bind(now_ms())
                .bind(id)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            if n == 0 {
                return Err(StoreError::NotFound(format!("token {id}")));
            }
            Self::append_audit(&mut tx, actor, "token.revoke", id, &json!({})).await?;
            Ok(())
        })
    }

    async fn record_blob(&self, digest: &str, size: u64) -> Result<()> {
        let _g = self.sqlite_writer().await;
        sqlx::query(
            "INSERT INTO blobs (digest, size, created_at) VALUES ($1, $2, $3) \
             ON CONFLICT (digest) DO NOTHING",
        )
        .bind(digest)
        .bind(size as i64)
        .bind(now_ms())
        .execute(&self.pool)
        .await
        .map_err(|e| self.write_error(e))?;
        Ok(())
    }

    async fn create_upload(&self, u: &UploadRecord) -> Result<()> {
        let _g = self.sqlite_writer().await;
        sqlx::query(
            "INSERT INTO uploads (id, token_id, created_at, size, declared_size, digest, \
             store_key, store_upload_id, updated_at) VALUES ($1, $2, $3, 0, $4, $5, $6, $7, $3)",
        )
        .bind(&u.id)
        .bind(&u.token_id)
        .bind(u.created_at)
        .bind(u.declared_size.map(|n| n as i64))
        .bind(u.digest.clone())
        .bind(&u.store_key)
        .bind(u.store_upload_id.clone())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn get_upload(&self, id: &str) -> Result<Option<UploadRecord>> {
        sqlx::query(&format!("SELECT {UPLOAD_COLS} FROM uploads WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
            .map(|r| row_upload(&r))
            .transpose()
    }

    async fn upload_chunks(&self, id: &str) -> Result<Vec<UploadChunk>> {
        sqlx::query(
            "SELECT seq, start_offset, size, hash_state, etag FROM upload_chunks \
             WHERE upload_id = $1 ORDER BY seq",
        )
        .bind(id)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(row_chunk)
        .collect()
    }

    async fn upload_chunk_starting(&self, id: &str, offset: u64) -> Result<Option<UploadChunk>> {
        sqlx::query(
            "SELECT seq, start_offset, size, hash_state, etag FROM upload_chunks \
             WHERE upload_id = $1 AND start_offset = $2",
        )
        .bind(id)
        .bind(offset as i64)
        .fetch_optional(&self.pool)
        .await?
        .map(|r| row_chunk(&r))
        .transpose()
    }

    async fn upload_chunk_ending(&self, id: &str, offset: u64) -> Result<Option<UploadChunk>> {
        // An empty chunk ends where it starts; the latest chunk ending here is the one to
        // continue from.
        sqlx::query(
            "SELECT seq, start_offset, size, hash_state, etag FROM upload_chunks \
             WHERE upload_id = $1 AND start_offset + size = $2 ORDER BY seq DESC LIMIT 1",
        )
        .bind(id)
        .bind(offset as i64)
        .fetch_optional(&self.pool)
        .await?
        .map(|r| row_chunk(&r))
        .transpose()
    }

    async fn commit_upload_chunk(
        &self,
        id: &str,
        expected_size: u64,
        c: &UploadChunk,
    ) -> Result<bool> {
        let _g = self.sqlite_writer().await;
        let mut tx = if self.backend == Backend::Sqlite {
            self.pool.begin_with("BEGIN IMMEDIATE").await?
        } else {
            self.pool.begin().await?
        };
        // The size check is the compare-and-swap: PostgreSQL's row lock makes a concurrent
        // second UPDATE re-read the row and match nothing; SQLite has one writer anyway.
        let moved = sqlx::query(
            "UPDATE uploads SET size = $1, updated_at = $2 WHERE id = $3 AND size = $4",
        )
        .bind((c.start + c.size) as i64)
        .bind(now_ms())
        .bind(id)
        .bind(expected_size as i64)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if moved != 1 {
            tx.rollback().await?;
            return Ok(false);
        }
        let inserted = sqlx::query(
            "INSERT INTO upload_chunks (upload_id, seq, start_offset, size, hash_state, etag) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(id)
        .bind(c.seq as i64)
        .bind(c.start as i64)
        .bind(c.size as i64)
        .bind(&c.hash_state)
        .bind(c.etag.clone())
        .execute(&mut *tx)
        .await;
        match inserted {
            Ok(_) => {}
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
                tx.rollback().await?;
                return Ok(false);
            }
            Err(e) => return Err(e.into()),
        }
        tx.commit().await?;
        Ok(true)
    }

    async fn delete_upload(&self, id: &str) -> Result<()> {
        let _g = self.sqlite_writer().await;
        // Chunks go with it (ON DELETE CASCADE; SQLite's foreign_keys is on).
        sqlx::query("DELETE FROM uploads WHERE id = $1")
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn idle_uploads(&self, before_ms: i64, limit: i64) -> Result<Vec<UploadRecord>> {
        sqlx::query(&format!(
            "SELECT {UPLOAD_COLS} FROM uploads WHERE updated_at < $1 ORDER BY updated_at LIMIT $2"
        ))
        .bind(before_ms)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(row_upload)
        .collect()
    }

    async fn delete_upload_if_idle(&self, id: &str, before_ms: i64) -> Result<bool> {
        let _g = self.sqlite_writer().await;
        let n = sqlx::query("DELETE FROM uploads WHERE id = $1 AND updated_at < $2")
            .bind(id)
            .bind(before_ms)
            .execute(&self.pool)
            .await?
            .rows_affected();
        Ok(n == 1)
    }

    async fn create_version(
        &self,
        namespace: &str,
        name: &str,
        version: &str,
        publisher: &str,
        files: &[NewFile],
        actor: &str,
    ) -> Result<i64> {
        write_tx!(self, |tx, _g| {
            let now = now_ms();
            sqlx::query(
                "INSERT INTO models (namespace, name, created_at) VALUES ($1, $2, $3) \
                 ON CONFLICT (namespace, name) DO NOTHING",
            )
            .bind(namespace)
            .bind(name)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            let model_id: i64 =
                sqlx::query("SELECT id FROM models WHERE namespace = $1 AND name = $2")
                    .bind(namespace)
                    .bind(name)
                    .fetch_one(&mut *tx)
                    .await?
                    .try_get("id")?;
            let exists =
                sqlx::query("SELECT id FROM versions WHERE model_id = $1 AND version = $2")
                    .bind(model_id)
                    .bind(version)
                    .fetch_optional(&mut *tx)
                    .await?;
            if exists.is_some() {
                return Err(StoreError::Conflict(format!(
                    "{namespace}/{name}:{version} already exists; versions are immutable"
                )));
            }
            let vid: i64 = sqlx::query(
                "INSERT INTO versions (model_id, version, state, publisher, created_at) \
                 VALUES ($1, $2, 'quarantined', $3, $4) RETURNING id",
            )
            .bind(model_id)
            .bind(version)
            .bind(publisher)
            .bind(now)
            .fetch_one(&mut *tx)
            .await?
            .try_get("id")?;
            for f in files {
                sqlx::query(
                    "INSERT INTO version_files (version_id, path, digest, size) \
                     VALUES ($1, $2, $3, $4)",
                )
                .bind(vid)
                .bind(&f.path)
                .bind(&f.digest)
                .bind(f.size as i64)
                .execute(&mut *tx)
                .await?;
            }
            sqlx::query(
                "INSERT INTO jobs (kind, version_id, state, created_at, updated_at) \
                 VALUES ('ingest', $1, 'queued', $2, $2)",
            )
            .bind(vid)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            let label = format!("{namespace}/{name}:{version}");
            Self::append_audit(
                &mut tx,
                actor,
                "version.push",
                &label,
                &json!({"files": files.iter().map(|f| json!({"path": f.path, "digest": f.digest, "size": f.size})).collect::<Vec<_>>()}),
            )
            .await?;
            Self::queue_event(&mut tx, "version.quarantined", &json!({"version": label})).await?;
            Ok(vid)
        })
    }

    async fn find_version(
        &self,
        namespace: &str,
        name: &str,
        version: &str,
    ) -> Result<Option<VersionRow>> {
        Ok(self
            .fetch_versions(
                "WHERE m.namespace = $1 AND m.name = $2 AND v.version = $3",
                vec![json!(namespace), json!(name), json!(version)],
            )
            .await?
            .into_iter()
            .next())
    }

    async fn version_by_id(&self, id: i64) -> Result<Option<VersionRow>> {
        Ok(self
            .fetch_versions("WHERE v.id = $1", vec![json!(id)])
            .await?
            .into_iter()
            .next())
    }

    async fn versions_by_ids(&self, ids: &[i64]) -> Result<Vec<VersionRow>> {
        let mut out = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(500) {
            let w = format!("WHERE v.id IN ({})", placeholders(1, chunk.len()));
            out.extend(
                self.fetch_versions(&w, chunk.iter().map(|i| json!(i)).collect())
                    .await?,
            );
        }
        Ok(out)
    }

    async fn versions_of_model(&self, model_id: i64) -> Result<Vec<VersionRow>> {
        self.fetch_versions("WHERE v.model_id = $1 ORDER BY v.id", vec![json!(model_id)])
            .await
    }

    async fn versions_with_identity(&self, identity: &str) -> Result<Vec<VersionRow>> {
        self.fetch_versions("WHERE v.identity = $1 ORDER BY v.id", vec![json!(identity)])
            .await
    }

    async fn latest_version_of(&self, namespace: &str, name: &str) -> Result<Option<VersionRow>> {
        Ok(self
            .fetch_versions(
                "WHERE m.namespace = $1 AND m.name = $2 ORDER BY v.id DESC LIMIT 1",
                vec![json!(namespace), json!(name)],
            )
            .await?
            .into_iter()
            .next())
    }

    async fn list_versions(&self, f: &VersionFilter) -> Result<Vec<VersionRow>> {
        let mut conds = Vec::new();
        let mut binds = Vec::new();
        if let Some(ns) = &f.namespace {
            binds.push(json!(ns));
            conds.push(format!("m.namespace = ${}", binds.len()));
        }
        if let Some(st) = &f.state {
            binds.push(json!(st));
            conds.push(format!("v.state = ${}", binds.len()));
        }
        let w = if conds.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", conds.join(" AND "))
        };
        let limit = f.limit.unwrap_or(1000).clamp(1, 100_000);
        self.fetch_versions(&format!("{w} ORDER BY v.id LIMIT {limit}"), binds)
            .await
    }

    async fn version_files(&self, id: i64) -> Result<Vec<NewFile>> {
        sqlx::query(
            "SELECT path, digest, size FROM version_files WHERE version_id = $1 ORDER BY path",
        )
        .bind(id)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|r| {
            Ok(NewFile {
                path: r.try_get("path")?,
                digest: r.try_get("digest")?,
                size: r.try_get::<i64, _>("size")? as u64,
            })
        })
        .collect()
    }

    async fn report(&self, id: i64, kind: &str) -> Result<Option<String>> {
        Ok(
            sqlx::query("SELECT body FROM reports WHERE version_id = $1 AND kind = $2")
                .bind(id)
                .bind(kind)
                .fetch_optional(&self.pool)
                .await?
                .map(|r| r.try_get("body"))
                .transpose()?,
        )
    }

    async fn approved_names(&self) -> Result<Vec<(String, String)>> {
        sqlx::query(
            "SELECT DISTINCT m.namespace AS ns, m.name AS name FROM models m \
             JOIN versions v ON v.model_id = m.id WHERE v.state = 'approved'",
        )
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|r| Ok((r.try_get("ns")?, r.try_get("name")?)))
        .collect()
    }

    async fn fingerprints(&self) -> Result<Vec<(i64, String)>> {
        sqlx::query(
            "SELECT version_id, body FROM reports WHERE kind = 'fingerprint' ORDER BY version_id",
        )
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|r| Ok((r.try_get("version_id")?, r.try_get("body")?)))
        .collect()
    }

    async fn fingerprints_after(&self, after: i64) -> Result<Vec<(i64, String)>> {
        sqlx::query(
            "SELECT version_id, body FROM reports WHERE kind = 'fingerprint' AND version_id > $1 \
             ORDER BY version_id",
        )
        .bind(after)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|r| Ok((r.try_get("version_id")?, r.try_get("body")?)))
        .collect()
    }

    async fn fingerprint_low_water(&self) -> Result<i64> {
        // Two reads, newest version first: a job queued after it belongs to a newer version.
        let newest: i64 = sqlx::query("SELECT COALESCE(MAX(id), 0) AS n FROM versions")
            .fetch_one(&self.pool)
            .await?
            .try_get("n")?;
        let oldest_open: Option<i64> = sqlx::query(
            "SELECT MIN(version_id) AS n FROM jobs WHERE state IN ('queued', 'running')",
        )
        .fetch_one(&self.pool)
        .await?
        .try_get("n")?;
        Ok(match oldest_open {
            Some(v) => (v - 1).min(newest),
            None => newest,
        })
    }

    async fn decide(&self, id: i64, state: &str, decision: &Value, actor: &str) -> Result<()> {
        write_tx!(self, |tx, _g| {
            let n = sqlx::query(
                "UPDATE versions SET state = $1, decision = $2, decided_at = $3 WHERE id = $4",
            )
            .bind(state)
            .bind(decision.to_string())
            .bind(now_ms())
            .bind(id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if n == 0 {
                return Err(StoreError::NotFound(format!("version {id}")));
            }
            let label = Self::labels(&mut tx, &[id])
                .await?
                .pop()
                .unwrap_or_default();
            Self::append_audit(&mut tx, actor, "version.decide", &label, decision).await?;
            Self::queue_event(
                &mut tx,
                &format!("version.{state}"),
                &json!({"version": label, "decision": decision}),
            )
            .await?;
            Ok(())
        })
    }

    async fn claim_job(&self, owner: &str, lease_ms: i64) -> Result<Option<Job>> {
        let _g = self.sqlite_writer().await;
        let now = now_ms();
        // On PostgreSQL, workers in other processes claim at the same moment: SKIP LOCKED
        // makes each take a different row, and the outer condition re-checked on the row
        // actually updated means a job another worker just claimed is never taken twice.
        let skip = if self.backend == Backend::Postgres {
            " FOR UPDATE SKIP LOCKED"
        } else {
            ""
        };
        let q = format!(
            "UPDATE jobs SET state = 'running', lease_owner = $1, lease_until = $2, \
             attempts = attempts + 1, updated_at = $3 \
             WHERE id = (SELECT id FROM jobs WHERE state = 'queued' \
                 OR (state = 'running' AND lease_until < $3) ORDER BY id LIMIT 1{skip}) \
             AND (state = 'queued' OR (state = 'running' AND lease_until < $3)) \
             RETURNING id, kind, version_id, attempts"
        );
        let r = sqlx::query(&q)
            .bind(owner)
            .bind(now + lease_ms)
            .bind(now)
            .fetch_optional(&self.pool)
            .await
            .map_err(|e| self.write_error(e))?;
        r.map(|r| {
            Ok(Job {
                id: r.try_get("id")?,
                kind: r.try_get("kind")?,
                version_id: r.try_get("version_id")?,
                attempts: r.try_get("attempts")?,
            })
        })
        .transpose()
    }

    async fn finish_ingest(&self, c: &IngestCommit) -> Result<()> {
        write_tx!(self, |tx, g| {
            let state: Option<String> = sqlx::query("SELECT state FROM jobs WHERE id = $1")
                .bind(c.job_id)
                .fetch_optional(&mut *tx)
                .await?
                .map(|r| r.try_get("state"))
                .transpose()?;
            if state.as_deref() == Some("done") {
                return Ok(()); // another worker finished it first: nothing to do
            }
            for (kind, body) in &c.reports {
                sqlx::query(
                    "INSERT INTO reports (version_id, kind, body) VALUES ($1, $2, $3) \
                     ON CONFLICT (version_id, kind) DO UPDATE SET body = excluded.body",
                )
                .bind(c.version_id)
                .bind(kind)
                .bind(body)
                .execute(&mut *tx)
                .await?;
            }
            sqlx::query(
                "UPDATE versions SET identity = $1, state = $2, decision = $3, decided_at = $4 \
                 WHERE id = $5",
            )
            .bind(&c.identity)
            .bind(&c.state)
            .bind(c.decision.to_string())
            .bind(now_ms())
            .bind(c.version_id)
            .execute(&mut *tx)
            .await?;
            for e in &c.edges {
                sqlx::query(
                    "INSERT INTO lineage_edges (parent, child, source, relation, confidence, evidence) \
                     VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (parent, child, source) DO NOTHING",
                )
                .bind(e.parent)
                .bind(e.child)
                .bind(&e.source)
                .bind(&e.relation)
                .bind(e.confidence)
                .bind(e.evidence.to_string())
                .execute(&mut *tx)
                .await?;
            }
            sqlx::query("UPDATE jobs SET state = 'done', updated_at = $1 WHERE id = $2")
                .bind(now_ms())
                .bind(c.job_id)
                .execute(&mut *tx)
                .await?;
            let label = Self::labels(&mut tx, &[c.version_id])
                .await?
                .pop()
                .unwrap_or_default();
            Self::append_audit(&mut tx, "ingest", "version.decide", &label, &c.decision).await?;
            Self::queue_event(
                &mut tx,
                &format!("version.{}", c.state),
                &json!({"version": label, "identity": c.identity, "decision": c.decision}),
            )
            .await?;
            // A new edge may hang this version (or, if it is an ancestor uploaded late, others)
            // under a flagged model: extend every active advisory that touches the new edges.
            if !c.edges.is_empty() {
                let mut touched: Vec<i64> =
                    c.edges.iter().flat_map(|e| [e.parent, e.child]).collect();
                touched.sort_unstable();
                touched.dedup();
                let q = format!(
                    "SELECT DISTINCT f.advisory_id AS id FROM flags f JOIN advisories a ON a.id = f.advisory_id \
                     WHERE a.withdrawn_at IS NULL AND f.version_id IN ({})",
                    placeholders(1, touched.len())
                );
                let mut query = sqlx::query(&q);
                for t in &touched {
                    query = query.bind(*t);
                }
                let advisories: Vec<String> = query
                    .fetch_all(&mut *tx)
                    .await?
                    .iter()
                    .map(|r| r.try_get("id"))
                    .collect::<std::result::Result<_, _>>()?;
                for adv in advisories {
                    let (_, at_risk) =
                        Self::apply_cascade(&mut tx, g, &adv, &[], c.min_confidence).await?;
                    if !at_risk.is_empty() {
                        let ids: Vec<i64> = at_risk.iter().map(|a| a.version).collect();
                        let labels = Self::labels(&mut tx, &ids).await?;
                        let details = json!({"advisory": adv, "at_risk": labels});
                        Self::append_audit(&mut tx, "ingest", "advisory.cascade", &adv, &details)
                            .await?;
                        Self::queue_event(&mut tx, "advisory.cascade", &details).await?;
                    }
                }
            }
            Ok(())
        })
    }

    async fn fail_job(&self, job_id: i64, error: &str, retry: bool) -> Result<()> {
        let _g = self.sqlite_writer().await;
        sqlx::query(
            "UPDATE jobs SET state = $1, last_error = $2, lease_owner = NULL, lease_until = NULL, \
             updated_at = $3 WHERE id = $4",
        )
        .bind(if retry { "queued" } else { "failed" })
        .bind(error)
        .bind(now_ms())
        .bind(job_id)
        .execute(&self.pool)
        .await
        .map_err(|e| self.write_error(e))?;
        Ok(())
    }

    async fn job_counts(&self) -> Result<Vec<(String, i64)>> {
        sqlx::query("SELECT state, COUNT(*) AS n FROM jobs GROUP BY state ORDER BY state")
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(|r| Ok((r.try_get("state")?, r.try_get("n")?)))
            .collect()
    }

    async fn renew_lease(&self, job_id: i64, owner: &str, lease_ms: i64) -> Result<bool> {
        let _g = self.write_lock.lock().await;
        let now = now_ms();
        let r = sqlx::query(
            "UPDATE jobs SET lease_until = $1, updated_at = $2 \
             WHERE id = $3 AND state = 'running' AND lease_owner = $4",
        )
        .bind(now + lease_ms)
        .bind(now)
        .bind(job_id)
        .bind(owner)
        .execute(&self.pool)
        .await
        .map_err(|e| self.write_error(e))?;
        Ok(r.rows_affected() == 1)
    }

    async fn release_job(&self, job_id: i64, owner: &str) -> Result<bool> {
        let _g = self.write_lock.lock().await;
        let r = sqlx::query(
            "UPDATE jobs SET state = 'queued', lease_owner = NULL, lease_until = NULL, \
             attempts = CASE WHEN attempts > 0 THEN attempts - 1 ELSE 0 END, updated_at = $1 \
             WHERE id = $2 AND state = 'running' AND lease_owner = $3",
        )
        .bind(now_ms())
        .bind(job_id)
        .bind(owner)
        .execute(&self.pool)
        .await
        .map_err(|e| self.write_error(e))?;
        Ok(r.rows_affected() == 1)
    }

    async fn readiness(&self) -> Result<()> {
        let migrator = match self.backend {
            Backend::Sqlite => sqlx::migrate!("./migrations/sqlite"),
            Backend::Postgres => sqlx::migrate!("./migrations/postgres"),
        };
        let applied: Vec<i64> = sqlx::query("SELECT version FROM _sqlx_migrations WHERE success")
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(|r| r.try_get("version"))
            .collect::<std::result::Result<_, _>>()?;
        for m in migrator.iter() {
            if !applied.contains(&m.version) {
                return Err(StoreError::Other(format!(
                    "database migration {} ({}) is not applied",
                    m.version, m.description
                )));
            }
        }
        Ok(())
    }

    async fn edges_since(&self, rowid: i64) -> Result<Vec<EdgeRow>> {
        sqlx::query("SELECT * FROM lineage_edges WHERE rowid_ > $1 ORDER BY rowid_")
            .bind(rowid)
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(row_edge)
            .collect()
    }

    async fn edges_of(&self, version_id: i64) -> Result<Vec<EdgeRow>> {
        sqlx::query("SELECT * FROM lineage_edges WHERE parent = $1 OR child = $1 ORDER BY rowid_")
            .bind(version_id)
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(row_edge)
            .collect()
    }

    async fn flag(
        &self,
        adv: &AdvisoryRecord,
        roots: &[i64],
        min_confidence: f64,
        actor: &str,
    ) -> Result<FlagResult> {
        write_tx!(self, |tx, g| {
            let existing = sqlx::query("SELECT withdrawn_at FROM advisories WHERE id = $1")
                .bind(&adv.id)
                .fetch_optional(&mut *tx)
                .await?;
            let mut reactivated = false;
            match existing {
                None => {
                    sqlx::query(
                        "INSERT INTO advisories (id, severity, summary, trigger_, source, body, created_at) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7)",
                    )
                    .bind(&adv.id)
                    .bind(&adv.severity)
                    .bind(&adv.summary)
                    .bind(&adv.trigger)
                    .bind(&adv.source)
                    .bind(adv.body.to_string())
                    .bind(now_ms())
                    .execute(&mut *tx)
                    .await?;
                }
                Some(r) => {
                    if r.try_get::<Option<i64>, _>("withdrawn_at")?.is_some() {
                        sqlx::query(
                            "UPDATE advisories SET withdrawn_at = NULL, withdrawn_reason = NULL WHERE id = $1",
                        )
                        .bind(&adv.id)
                        .execute(&mut *tx)
                        .await?;
                        reactivated = true;
                    }
                }
            }
            let (new_roots, new_at_risk) =
                Self::apply_cascade(&mut tx, g, &adv.id, roots, min_confidence).await?;
            let changed = reactivated || !new_roots.is_empty() || !new_at_risk.is_empty();
            if changed {
                let root_labels = Self::labels(&mut tx, roots).await?;
                let details = json!({
                    "advisory": adv.id, "severity": adv.severity, "summary": adv.summary,
                    "flagged": root_labels, "new_at_risk": new_at_risk.len(),
                });
                Self::append_audit(&mut tx, actor, "advisory.flag", &adv.id, &details).await?;
                Self::queue_event(&mut tx, "advisory.flagged", &details).await?;
            }
            Ok(FlagResult {
                changed,
                flagged: new_roots,
                at_risk: new_at_risk,
            })
        })
    }

    async fn unflag(&self, advisory_id: &str, justification: &str, actor: &str) -> Result<usize> {
        if justification.trim().is_empty() {
            return Err(StoreError::Invalid(
                "unflagging needs a justification".into(),
            ));
        }
        write_tx!(self, |tx, _g| {
            let r = sqlx::query("SELECT withdrawn_at FROM advisories WHERE id = $1")
                .bind(advisory_id)
                .fetch_optional(&mut *tx)
                .await?
                .ok_or_else(|| StoreError::NotFound(format!("advisory {advisory_id}")))?;
            if r.try_get::<Option<i64>, _>("withdrawn_at")?.is_some() {
                return Ok(0);
            }
            let n = sqlx::query("DELETE FROM flags WHERE advisory_id = $1")
                .bind(advisory_id)
                .execute(&mut *tx)
                .await?
                .rows_affected() as usize;
            sqlx::query(
                "UPDATE advisories SET withdrawn_at = $1, withdrawn_reason = $2 WHERE id = $3",
            )
            .bind(now_ms())
            .bind(justification)
            .bind(advisory_id)
            .execute(&mut *tx)
            .await?;
            let details =
                json!({"advisory": advisory_id, "justification": justification, "cleared": n});
            Self::append_audit(&mut tx, actor, "advisory.unflag", advisory_id, &details).await?;
            Self::queue_event(&mut tx, "advisory.unflagged", &details).await?;
            Ok(n)
        })
    }

    async fn flags_of(&self, version_ids: &[i64]) -> Result<Vec<FlagRow>> {
        let mut out = Vec::new();
        for chunk in version_ids.chunks(500) {
            let q = format!(
                "SELECT * FROM flags WHERE version_id IN ({}) ORDER BY version_id, advisory_id",
                placeholders(1, chunk.len())
            );
            let mut query = sqlx::query(&q);
            for v in chunk {
                query = query.bind(*v);
            }
            for r in query.fetch_all(&self.pool).await? {
                out.push(row_flag(&r)?);
            }
        }
        Ok(out)
    }

    async fn flags_for_advisory(&self, advisory_id: &str) -> Result<Vec<FlagRow>> {
        sqlx::query("SELECT * FROM flags WHERE advisory_id = $1 ORDER BY depth, version_id")
            .bind(advisory_id)
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(row_flag)
            .collect()
    }

    async fn advisories(&self) -> Result<Vec<AdvisoryRecord>> {
        sqlx::query("SELECT * FROM advisories ORDER BY created_at, id")
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(row_advisory)
            .collect()
    }

    async fn advisory(&self, id: &str) -> Result<Option<AdvisoryRecord>> {
        sqlx::query("SELECT * FROM advisories WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(row_advisory)
            .transpose()
    }

    async fn deploy(
        &self,
        name: &str,
        environment: &str,
        version_id: i64,
        actor: &str,
    ) -> Result<()> {
        write_tx!(self, |tx, _g| {
            sqlx::query(
                "INSERT INTO deployments (name, environment, version_id, updated_at) \
                 VALUES ($1, $2, $3, $4) ON CONFLICT (name, environment) \
                 DO UPDATE SET version_id = excluded.version_id, updated_at = excluded.updated_at",
            )
            .bind(name)
            .bind(environment)
            .bind(version_id)
            .bind(now_ms())
            .execute(&mut *tx)
            .await?;
            let label = Self::labels(&mut tx, &[version_id])
                .await?
                .pop()
                .unwrap_or_default();
            Self::append_audit(
                &mut tx,
                actor,
                "deployment.set",
                &format!("{name}@{environment}"),
                &json!({"version": label}),
            )
            .await?;
            Ok(())
        })
    }

    async fn deployments_of(&self, version_ids: &[i64]) -> Result<Vec<DeploymentRow>> {
        let mut out = Vec::new();
        for chunk in version_ids.chunks(500) {
            let q = format!(
                "SELECT * FROM deployments WHERE version_id IN ({}) ORDER BY name, environment",
                placeholders(1, chunk.len())
            );
            let mut query = sqlx::query(&q);
            for v in chunk {
                query = query.bind(*v);
            }
            for r in query.fetch_all(&self.pool).await? {
                out.push(DeploymentRow {
                    name: r.try_get("name")?,
                    environment: r.try_get("environment")?,
                    version_id: r.try_get("version_id")?,
                    updated_at: r.try_get("updated_at")?,
                });
            }
        }
        Ok(out)
    }

    async fn deployments(&self) -> Result<Vec<DeploymentRow>> {
        sqlx::query("SELECT * FROM deployments ORDER BY name, environment")
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(|r| {
                Ok(DeploymentRow {
                    name: r.try_get("name")?,
                    environment: r.try_get("environment")?,
                    version_id: r.try_get("version_id")?,
                    updated_at: r.try_get("updated_at")?,
                })
            })
            .collect()
    }

    async fn add_webhook(&self, url: &str, secret: &str, events: &str, actor: &str) -> Result<i64> {
        write_tx!(self, |tx, _g| {
            let id: i64 = sqlx::query(
                "INSERT INTO webhooks (url, secret, events, created_at) VALUES ($1, $2, $3, $4) RETURNING id",
            )
            .bind(url)
            .bind(secret)
            .bind(events)
            .bind(now_ms())
            .fetch_one(&mut *tx)
            .await?
            .try_get("id")?;
            Self::append_audit(
                &mut tx,
                actor,
                "webhook.add",
                url,
                &json!({"id": id, "events": events}),
            )
            .await?;
            Ok(id)
        })
    }

    async fn due_outbox(&self, now: i64, limit: i64) -> Result<Vec<OutboxItem>> {
        // A claim, not a read: several API processes run the outbox, and each item must go to
        // one of them. Claimed items are not due again for OUTBOX_CLAIM_MS (longer than a
        // delivery's timeout), so a process that dies mid-delivery only delays the item.
        let _g = self.sqlite_writer().await;
        let skip = if self.backend == Backend::Postgres {
            " FOR UPDATE SKIP LOCKED"
        } else {
            ""
        };
        let q = format!(
            "UPDATE outbox SET next_at = $1 WHERE id IN (SELECT id FROM outbox \
             WHERE delivered_at IS NULL AND failed_at IS NULL AND next_at <= $2 \
             ORDER BY id LIMIT $3{skip}) \
             RETURNING id, webhook_id, event, payload, attempts"
        );
        let claimed = sqlx::query(&q)
            .bind(now.saturating_add(OUTBOX_CLAIM_MS))
            .bind(now)
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
        let mut hooks: HashMap<i64, (String, String)> = HashMap::new();
        let ids: BTreeSet<i64> = claimed
            .iter()
            .map(|r| r.try_get("webhook_id"))
            .collect::<std::result::Result<_, _>>()?;
        if !ids.is_empty() {
            // Integers read from the database, inlined: no placeholder list to build.
            let list = ids
                .iter()
                .map(i64::to_string)
                .collect::<Vec<_>>()
                .join(", ");
            for r in sqlx::query(&format!(
                "SELECT id, url, secret FROM webhooks WHERE id IN ({list})"
            ))
            .fetch_all(&self.pool)
            .await?
            {
                hooks.insert(r.try_get("id")?, (r.try_get("url")?, r.try_get("secret")?));
            }
        }
        let mut out = Vec::with_capacity(claimed.len());
        for r in &claimed {
            let webhook: i64 = r.try_get("webhook_id")?;
            let Some((url, secret)) = hooks.get(&webhook) else {
                continue; // foreign key: cannot happen
            };
            out.push(OutboxItem {
                id: r.try_get("id")?,
                url: url.clone(),
                secret: secret.clone(),
                event: r.try_get("event")?,
                payload: r.try_get("payload")?,
                attempts: r.try_get("attempts")?,
            });
        }
        out.sort_by_key(|o| o.id);
        Ok(out)
    }

    async fn outbox_delivered(&self, id: i64, now: i64) -> Result<()> {
        let _g = self.sqlite_writer().await;
        sqlx::query("UPDATE outbox SET delivered_at = $1, attempts = attempts + 1 WHERE id = $2")
            .bind(now)
            .bind(id)
            .execute(&self.pool)
            .await
            .map_err(|e| self.write_error(e))?;
        Ok(())
    }

    async fn outbox_retry(&self, id: i64, error: &str, next_at: i64, give_up: bool) -> Result<()> {
        let _g = self.sqlite_writer().await;
        sqlx::query(
            "UPDATE outbox SET attempts = attempts + 1, last_error = $1, next_at = $2, \
             failed_at = $3 WHERE id = $4",
        )
        .bind(error)
        .bind(next_at)
        .bind(if give_up { Some(now_ms()) } else { None })
        .bind(id)
        .execute(&self.pool)
        .await
        .map_err(|e| self.write_error(e))?;
        Ok(())
    }

    async fn audit_entries(&self, from_seq: i64, limit: i64) -> Result<Vec<AuditEntry>> {
        sqlx::query("SELECT * FROM audit WHERE seq >= $1 ORDER BY seq LIMIT $2")
            .bind(from_seq)
            .bind(limit)
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(|r| {
                let d: String = r.try_get("details")?;
                Ok(AuditEntry {
                    seq: r.try_get("seq")?,
                    at_ms: r.try_get("at_ms")?,
                    actor: r.try_get("actor")?,
                    action: r.try_get("action")?,
                    subject: r.try_get("subject")?,
                    details: serde_json::from_str(&d).unwrap_or(Value::String(d)),
                    prev: r.try_get("prev")?,
                    hash: r.try_get("hash")?,
                })
            })
            .collect()
    }

    async fn audit_append(
        &self,
        actor: &str,
        action: &str,
        subject: &str,
        details: &Value,
    ) -> Result<AuditEntry> {
        write_tx!(self, |tx, _g| {
            Self::append_audit(&mut tx, actor, action, subject, details).await
        })
    }
}
