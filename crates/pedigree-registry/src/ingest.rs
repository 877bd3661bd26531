//! The ingest pipeline as durable jobs: a job row is queued in the same transaction that creates
//! the quarantined version, a worker leases it, analyses the files (scan, identity, fingerprint,
//! BOM, signature), resolves lineage (declared by the card, inferred from the weights against
//! every model already in the registry), applies the policy, and commits everything in one
//! transaction. A worker that dies leaves a lease that expires; the next worker redoes the job
//! from the start, and committing twice is harmless.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, anyhow};
use serde_json::{Value, json};
use tokio::sync::{Mutex, Notify, RwLock};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::analysis::{
    self, Analysis, AnalysisOptions, LineageIndex, PreparedModel, Relationship, SignatureFact,
    TrustedKey,
};
use crate::blob::BlobStore;
use crate::policy::{self, ApprovedName, BaseFact, Candidate, Decision, Policy};
use crate::store::{IngestCommit, Job, MetaStore, NewEdge, VersionRow};

/// Jobs are retried this many times before the version is rejected as unanalysable.
pub const MAX_ATTEMPTS: i64 = 3;
/// The default lease; a running job's lease is renewed every third of it, so only a dead or
/// stalled worker loses its job.
pub const DEFAULT_LEASE: Duration = Duration::from_secs(60);
/// Inferred-lineage candidates verified per upload (each costs one weight diff).
const CANDIDATES: usize = 8;

pub struct Ingestor {
    pub store: Arc<dyn MetaStore>,
    pub blobs: Arc<dyn BlobStore>,
    pub policy: Arc<RwLock<Policy>>,
    pub work_dir: PathBuf,
    pub notify: Arc<Notify>,
    lease: Duration,
    index: Mutex<IndexState>,
}

/// This process's lineage index and how far it has caught up with the store. Other processes
/// (`pedigree worker` on other machines) ingest too, so before each lineage step the index takes
/// in every fingerprint stored since the last look, not only the ones this process wrote.
struct IndexState {
    index: LineageIndex,
    have: std::collections::HashSet<i64>,
    /// Every fingerprint of a version at or below this id is already in `index`.
    low_water: i64,
}

/// How a worker stops: `stop` means take no new job; `abort` (the shutdown grace is over) means
/// give the running job back to the queue now.
#[derive(Clone, Default)]
pub struct Shutdown {
    pub stop: CancellationToken,
    pub abort: CancellationToken,
}

/// The materialised files of a version: hard links to the blobs (copies where links fail), laid
/// out under their upload paths so the readers see the directory the publisher pushed.
async fn materialize(
    store: &dyn MetaStore,
    blobs: &dyn BlobStore,
    version_id: i64,
    dest: &Path,
) -> Result<()> {
    if tokio::fs::metadata(dest.join(".complete")).await.is_ok() {
        return Ok(());
    }
    // Built beside the destination and renamed into place, because workers in other processes
    // share the work directory: one of them may be materialising the same lineage candidate,
    // and removing a directory another is reading would fail its job.
    let name = dest
        .file_name()
        .ok_or_else(|| anyhow!("work directory {} has no name", dest.display()))?;
    let tmp = dest.with_file_name(format!(
        ".{}.tmp-{}",
        name.to_string_lossy(),
        uuid::Uuid::new_v4()
    ));
    let built = build_tree(store, blobs, version_id, &tmp).await;
    if let Err(e) = built {
        let _ = tokio::fs::remove_dir_all(&tmp).await;
        return Err(e);
    }
    if tokio::fs::rename(&tmp, dest).await.is_err() {
        if tokio::fs::metadata(dest.join(".complete")).await.is_ok() {
            // Another worker finished the same tree first.
            let _ = tokio::fs::remove_dir_all(&tmp).await;
            return Ok(());
        }
        // A partial tree from an older build that died mid-copy: replace it.
        let _ = tokio::fs::remove_dir_all(dest).await;
        if let Err(e) = tokio::fs::rename(&tmp, dest).await {
            let _ = tokio::fs::remove_dir_all(&tmp).await;
            if tokio::fs::metadata(dest.join(".complete")).await.is_err() {
                return Err(anyhow!(
                    "materialising version {version_id} in {}: {e}",
                    dest.display()
                ));
            }
        }
    }
    Ok(())
}

async fn build_tree(
    store: &dyn MetaStore,
    blobs: &dyn BlobStore,
    version_id: i64,
    dest: &Path,
) -> Result<()> {
    if let Some(p) = dest.parent() {
        tokio::fs::create_dir_all(p).await?;
    }
    tokio::fs::create_dir_all(dest).await?;
    // Downloads from a remote blob store land beside `dest`, never in it: the readers must see
    // exactly the directory the publisher pushed. Linked into place, then the scratch goes.
    let scratch = dest.with_extension("fetch");
    let _ = tokio::fs::remove_dir_all(&scratch).await;
    for f in store.version_files(version_id).await? {
        let rel = crate::server::safe_relative_path(&f.path)
            .ok_or_else(|| anyhow!("unsafe path {:?} in version {version_id}", f.path))?;
        let target = dest.join(rel);
        if let Some(p) = target.parent() {
            tokio::fs::create_dir_all(p).await?;
        }
        let src = blobs.local_path(&f.digest, &scratch).await?;
        if tokio::fs::hard_link(&src, &target).await.is_err() {
            tokio::fs::copy(&src, &target).await?;
        }
    }
    let _ = tokio::fs::remove_dir_all(&scratch).await;
    tokio::fs::write(dest.join(".complete"), b"").await?;
    Ok(())
}

impl Ingestor {
    pub fn new(
        store: Arc<dyn MetaStore>,
        blobs: Arc<dyn BlobStore>,
        policy: Arc<RwLock<Policy>>,
        work_dir: PathBuf,
        notify: Arc<Notify>,
    ) -> Ingestor {
        Ingestor {
            store,
            blobs,
            policy,
            work_dir,
            notify,
            lease: DEFAULT_LEASE,
            index: Mutex::new(IndexState {
                index: LineageIndex::new(),
                have: Default::default(),
                low_water: 0,
            }),
        }
    }

    /// Lease length for the jobs this ingestor claims (renewed every third of it).
    pub fn with_lease(mut self, lease: Duration) -> Ingestor {
        self.lease = lease.max(Duration::from_secs(1));
        self
    }

    /// Work until `shutdown.stop`: take a job, run it, sleep when there is none (or until
    /// notified).
    pub async fn run(self: Arc<Self>, worker: String, shutdown: Shutdown) {
        while !shutdown.stop.is_cancelled() {
            match self.run_once(&worker, &shutdown.abort).await {
                Ok(true) => continue,
                Ok(false) => {}
                Err(e) => tracing::error!(worker = %worker, "ingest worker: {e:#}"),
            }
            tokio::select! {
                _ = shutdown.stop.cancelled() => {}
                _ = tokio::time::timeout(Duration::from_millis(500), self.notify.notified()) => {}
            }
        }
    }

    /// Take and run one job; false when the queue is empty. When `abort` fires first, the job
    /// goes back to the queue for another worker.
    pub async fn run_once(&self, worker: &str, abort: &CancellationToken) -> Result<bool> {
        let lease_ms = self.lease.as_millis() as i64;
        let Some(job) = self.store.claim_job(worker, lease_ms).await? else {
            return Ok(false);
        };
        let label = match self.store.version_by_id(job.version_id).await {
            Ok(Some(v)) => v.label(),
            _ => format!("#{}", job.version_id),
        };
        let span = tracing::info_span!("ingest", job = job.id, version = %label, worker = %worker);
        self.run_job(worker, &job, &label, abort)
            .instrument(span)
            .await?;
        Ok(true)
    }

    async fn run_job(
        &self,
        worker: &str,
        job: &Job,
        label: &str,
        abort: &CancellationToken,
    ) -> Result<()> {
        let started = std::time::Instant::now();
        tracing::info!(job = job.id, version = %label, attempt = job.attempts, "ingest started");
        crate::ops::metrics().jobs_started.inc();
        // Renew the lease while the job runs, so a slow scan is not taken by a second worker
        // while this one is alive; a worker that dies stops renewing and its lease expires.
        let renew = {
            let store = self.store.clone();
            let (id, owner) = (job.id, worker.to_string());
            let lease_ms = self.lease.as_millis() as i64;
            let every = self.lease / 3;
            let span = tracing::Span::current();
            tokio::spawn(
                async move {
                    loop {
                        tokio::time::sleep(every).await;
                        match store.renew_lease(id, &owner, lease_ms).await {
                            Ok(true) => {}
                            Ok(false) => {
                                tracing::warn!("lease lost: another worker has taken this job");
                                return;
                            }
                            Err(e) => tracing::warn!("renewing the lease failed: {e}"),
                        }
                    }
                }
                .instrument(span),
            )
        };
        let outcome = tokio::select! {
            r = self.process(job) => Some(r),
            _ = abort.cancelled() => None,
        };
        renew.abort();
        let Some(result) = outcome else {
            // The shutdown grace ran out: hand the job back now rather than leave it to a
            // lease expiry. Whatever the analysis wrote is redone; nothing was committed.
            let released = self.store.release_job(job.id, worker).await?;
            tracing::warn!(
                job = job.id,
                version = %label,
                released,
                "ingest interrupted by shutdown; job returned to the queue"
            );
            crate::ops::metrics().job_finished("released", started.elapsed());
            return Ok(());
        };
        if let Err(e) = result {
            let msg = format!("{e:#}");
            tracing::warn!(job = job.id, version = %label, "ingest failed: {msg}");
            crate::ops::metrics().job_finished("failed", started.elapsed());
            if job.attempts >= MAX_ATTEMPTS {
                self.store.fail_job(job.id, &msg, false).await?;
                let decision = json!({"outcome": "rejected", "reasons": [{
                    "rule": "ING001", "level": "reject",
                    "message": format!("analysis failed {} times: {msg}", job.attempts)}]});
                self.store
                    .decide(job.version_id, "rejected", &decision, "ingest")
                    .await?;
            } else {
                self.store.fail_job(job.id, &msg, true).await?;
            }
        } else {
            crate::ops::metrics().job_finished("done", started.elapsed());
            tracing::info!(
                job = job.id,
                version = %label,
                seconds = started.elapsed().as_secs_f64(),
                "ingest finished"
            );
        }
        Ok(())
    }

    fn version_dir(&self, id: i64) -> PathBuf {
        self.work_dir.join("versions").join(id.to_string())
    }

    /// Catch the index up with the store. The low-water mark is read before the fingerprints,
    /// so a version whose ingest finishes in between is read now or on the next call, never
    /// skipped; only versions still being ingested elsewhere are read again.
    async fn refresh_index(&self) -> Result<()> {
        let mut st = self.index.lock().await;
        let next_low = self.store.fingerprint_low_water().await?;
        for (id, body) in self.store.fingerprints_after(st.low_water).await? {
            if !st.have.insert(id) {
                continue;
            }
            if let Ok(v) = serde_json::from_str::<Value>(&body) {
                let _ = st.index.insert_json(id, &v);
            }
        }
        st.low_water = st.low_water.max(next_low);
        Ok(())
    }

    async fn process(&self, job: &Job) -> Result<()> {
        let v = self
            .store
            .version_by_id(job.version_id)
            .await?
            .ok_or_else(|| anyhow!("version {} vanished", job.version_id))?;
        let dir = self.version_dir(v.id);
        materialize(&*self.store, &*self.blobs, v.id, &dir).await?;
        if let Some(ms) = test_delay() {
            tokio::time::sleep(ms).await;
        }
        let policy = self.policy.read().await.clone();
        let trusted: Vec<TrustedKey> = policy
            .trusted_signers(&v.namespace)
            .iter()
            .map(|s| TrustedKey {
                name: s.name.clone(),
                public_key_pem: s.public_key_pem.clone(),
            })
            .collect();
        let model_name = format!("{}/{}", v.namespace, v.name);
        let (analysis, prepared) = {
            let dir = dir.clone();
            let model_name = model_name.clone();
            let version = v.version.clone();
            tokio::task::spawn_blocking(move || -> Result<(Analysis, Option<PreparedModel>)> {
                let _timer = crate::ops::ScanTimer::start();
                let sig = dir.join("model.sig");
                let opts = AnalysisOptions {
                    model_name: &model_name,
                    version: &version,
                    signature: Some(&sig),
                    trusted: &trusted,
                };
                let a = analysis::analyze(&dir, &opts)?;
                let p = PreparedModel::open(&dir, &model_name).ok();
                Ok((a, p))
            })
            .await??
        };
        let (edges, lineage_findings) = self.lineage(&v, &analysis, prepared).await?;
        let (_, decision) = evaluate(
            &*self.store,
            &policy,
            &v,
            &analysis,
            &edges,
            &lineage_findings,
        )
        .await?;
        let state = match decision.outcome {
            policy::Outcome::Approved => "approved",
            policy::Outcome::Held => "held",
            policy::Outcome::Rejected => "rejected",
        };
        let mut reports = Vec::new();
        let mut summary = serde_json::to_value(&analysis)?;
        if let Some(m) = summary.as_object_mut() {
            if let Some(fp) = m.remove("fingerprint") {
                if !fp.is_null() {
                    reports.push(("fingerprint".to_string(), fp.to_string()));
                }
            }
            if let Some(bom) = m.remove("bom") {
                reports.push(("bom".to_string(), bom.to_string()));
            }
            m.insert("lineage_findings".into(), json!(lineage_findings));
        }
        reports.push(("analysis".to_string(), summary.to_string()));
        self.store
            .finish_ingest(&IngestCommit {
                job_id: job.id,
                version_id: v.id,
                identity: analysis.identity.clone(),
                reports,
                edges,
                state: state.into(),
                decision: serde_json::to_value(&decision)?,
                min_confidence: policy.min_confidence() as f64,
            })
            .await?;
        if let Some(fp) = &analysis.fingerprint {
            let mut st = self.index.lock().await;
            if st.have.insert(v.id) {
                st.index.insert(v.id, fp);
            }
        }
        Ok(())
    }

    /// Declared parents (resolved by name in the registry, checked against the weights) and
    /// inferred parents or children (index candidates verified by the weight diff).
    async fn lineage(
        &self,
        v: &VersionRow,
        a: &Analysis,
        prepared: Option<PreparedModel>,
    ) -> Result<(Vec<NewEdge>, Vec<String>)> {
        self.refresh_index().await?;
        let mut edges = Vec::new();
        let mut findings = Vec::new();
        // Declared bases, resolved to the newest version of that model in the registry.
        let mut declared: Vec<VersionRow> = Vec::new();
        for b in &a.card.base_model {
            if let Some((ns, name)) = b.trim().split_once('/') {
                if let Some(p) = self.store.latest_version_of(ns, name).await? {
                    if p.id != v.id && !declared.iter().any(|d| d.id == p.id) {
                        declared.push(p);
                    }
                }
            }
        }
        let mut candidates: Vec<i64> = match &a.fingerprint {
            Some(fp) => self.index.lock().await.index.candidates(fp, CANDIDATES),
            None => Vec::new(),
        };
        candidates.retain(|c| *c != v.id);
        for d in &declared {
            if !candidates.contains(&d.id) {
                candidates.push(d.id);
            }
        }
        let prepared = prepared.map(Arc::new);
        let mut verified: Vec<(VersionRow, Option<Relationship>)> = Vec::new();
        for c in candidates {
            let Some(existing) = self.store.version_by_id(c).await? else {
                continue;
            };
            let rel = match &prepared {
                Some(p) => {
                    let dir = self.version_dir(c);
                    if materialize(&*self.store, &*self.blobs, c, &dir)
                        .await
                        .is_err()
                    {
                        continue;
                    }
                    let p = p.clone();
                    let ename = format!("{}/{}", existing.namespace, existing.name);
                    tokio::task::spawn_blocking(move || {
                        PreparedModel::open(&dir, &ename)
                            .ok()
                            .and_then(|e| analysis::relate_prepared(&p, &e))
                    })
                    .await?
                }
                None => None,
            };
            verified.push((existing, rel));
        }
        for d in &declared {
            let rel = verified
                .iter()
                .find(|(e, _)| e.id == d.id)
                .and_then(|(_, r)| r.clone());
            let ename = format!("{}/{}", d.namespace, d.name);
            if let Some(f) = analysis::declared_contradiction(&a.card, &ename, rel.as_ref()) {
                findings.push(f.message);
            }
            // The publisher's own claim: it propagates a flag even when the weights cannot
            // confirm it (a card naming a flagged base is at risk by its own word).
            edges.push(NewEdge {
                parent: d.id,
                child: v.id,
                source: "declared".into(),
                relation: rel
                    .as_ref()
                    .map(|r| r.relation.clone())
                    .or_else(|| a.card.base_model_relation.clone())
                    .unwrap_or_else(|| "declared".into()),
                confidence: 1.0,
                evidence: json!({"card": a.card.base_model_sources, "weights": rel.as_ref().map(|r| &r.evidence)}),
            });
        }
        // Inferred parent: the single best verified candidate (siblings share the frozen layers
        // of their common base as much as the base does; on a tie the older upload wins).
        let mut best: Option<&(VersionRow, Option<Relationship>)> = None;
        for cand in verified
            .iter()
            .filter(|(_, r)| matches!(r, Some(r) if !r.parent_is_new))
        {
            let c = cand.1.as_ref().map(|r| r.confidence).unwrap_or(0.0);
            match best {
                None => best = Some(cand),
                Some(b) => {
                    let bc = b.1.as_ref().map(|r| r.confidence).unwrap_or(0.0);
                    if c > bc + 0.02 || ((c - bc).abs() <= 0.02 && cand.0.id < b.0.id) {
                        best = Some(cand);
                    }
                }
            }
        }
        if let Some((p, Some(r))) = best {
            if a.card.base_model.is_empty() {
                findings.push(format!(
                    "the card declares no base model, but the weights show it derives from {}/{}:{} ({}, confidence {:.2})",
                    p.namespace, p.name, p.version, r.relation, r.confidence
                ));
            }
            edges.push(NewEdge {
                parent: p.id,
                child: v.id,
                source: "inferred".into(),
                relation: r.relation.clone(),
                confidence: r.confidence as f64,
                evidence: json!({"oriented_by": r.oriented_by, "diff": r.evidence}),
            });
        }
        // Models already in the registry that turn out to descend from this upload.
        for (e, r) in &verified {
            if let Some(r) = r {
                // Only for a model that has no parent yet: one that has one is more likely a
                // grandchild, and an edge to it would make this upload a false ancestor.
                let has_parent = self
                    .store
                    .edges_of(e.id)
                    .await?
                    .iter()
                    .any(|x| x.child == e.id);
                if r.parent_is_new && !has_parent {
                    edges.push(NewEdge {
                        parent: v.id,
                        child: e.id,
                        source: "inferred".into(),
                        relation: r.relation.clone(),
                        confidence: r.confidence as f64,
                        evidence: json!({"oriented_by": r.oriented_by, "diff": r.evidence}),
                    });
                }
            }
        }
        Ok((edges, findings))
    }
}

/// `PEDIGREE_INGEST_DELAY_MS`: hold every job this long before analysing it. Only for tests
/// that must catch a worker mid-job (kill it, stop it) on machines of any speed; it changes no
/// result, only when it arrives.
fn test_delay() -> Option<Duration> {
    std::env::var("PEDIGREE_INGEST_DELAY_MS")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .filter(|ms| *ms > 0)
        .map(|ms| Duration::from_millis(ms.min(600_000)))
}

/// Build the policy candidate for a version and evaluate it. Used by ingest and by the dry-run
/// endpoint, which must agree exactly.
pub async fn evaluate(
    store: &dyn MetaStore,
    policy: &Policy,
    v: &VersionRow,
    a: &Analysis,
    edges: &[NewEdge],
    lineage_findings: &[String],
) -> Result<(Candidate, Decision)> {
    let mut bases = Vec::new();
    for e in edges.iter().filter(|e| e.child == v.id) {
        let p = store
            .version_by_id(e.parent)
            .await?
            .context("parent version vanished")?;
        let flagged = !store.flags_of(&[p.id]).await?.is_empty();
        bases.push(BaseFact {
            reference: p.label(),
            state: p.state.clone(),
            flagged,
            source: e.source.clone(),
        });
    }
    let approved: Vec<ApprovedName> = store
        .approved_names()
        .await?
        .into_iter()
        .filter(|(ns, n)| !(ns == &v.namespace && n == &v.name))
        .map(|(namespace, name)| ApprovedName { namespace, name })
        .collect();
    let c = Candidate {
        namespace: v.namespace.clone(),
        name: v.name.clone(),
        version: v.version.clone(),
        formats: a.formats.clone(),
        findings: a
            .findings
            .iter()
            .map(|f| policy::FindingFact {
                rule: f.rule.clone(),
                severity: f.severity,
                message: format!("{}: {}", f.file, f.message),
            })
            // A file the scanner could not read is not proven safe: it counts as a medium
            // finding (held for review under the default policy), never as clean.
            .chain(a.scan_errors.iter().map(|e| policy::FindingFact {
                rule: "SCAN-ERROR".into(),
                severity: pedigree_scan::severity::Severity::Medium,
                message: e.clone(),
            }))
            .collect(),
        signature: match &a.signature {
            SignatureFact::Absent => policy::SignatureStatus::Absent,
            SignatureFact::Valid { signer, .. } => policy::SignatureStatus::Valid {
                signer: signer.clone(),
            },
            SignatureFact::Invalid { reason } => policy::SignatureStatus::Invalid {
                reason: reason.clone(),
            },
        },
        license: a.card.license.clone(),
        card: policy::CardFacts {
            present: a.card.present,
            base_model: a.card.base_model.clone(),
            training_data: a.card.training_data.clone(),
        },
        bases,
        lineage_findings: lineage_findings.to_vec(),
    };
    let d = policy::evaluate(policy, &c, &approved);
    Ok((c, d))
}
