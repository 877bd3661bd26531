//! The metadata store's contract, run on both engines: every test body runs on a fresh SQLite
//! file and on a fresh PostgreSQL database (`store::testdb`; PostgreSQL unreachable is a failure
//! naming `bash scripts/setup.sh`, never a skip).
//!
//! Besides the single-store behaviour (versions, jobs, cascade, webhooks, audit), the
//! `two_stores_*` tests open two `SqlStore`s on one database, as two API processes would: the
//! lineage graph each caches must never be stale, and writes from both must keep the audit
//! chain and the job queue correct without the in-process lock that only one of them holds.

use std::collections::{BTreeSet, HashSet};
use std::sync::Arc;

use pedigree_registry::audit;
use pedigree_registry::store::sql::SqlStore;
use pedigree_registry::store::testdb::{Engine, TestDb};
use pedigree_registry::store::{
    AdvisoryRecord, Grant, IngestCommit, MetaStore, NewEdge, NewFile, Role, StoreError,
    TokenRecord, UploadChunk, UploadRecord, VersionFilter,
};
use serde_json::json;

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .unwrap()
}

fn file(i: u64) -> NewFile {
    NewFile {
        path: "model.safetensors".into(),
        digest: format!("sha256:{i:064x}"),
        size: 1000 + i,
    }
}

fn edge(parent: i64, child: i64, confidence: f64) -> NewEdge {
    NewEdge {
        parent,
        child,
        source: "inferred".into(),
        relation: "finetune".into(),
        confidence,
        evidence: json!({"test": true}),
    }
}

fn advisory(id: &str) -> AdvisoryRecord {
    AdvisoryRecord {
        id: id.into(),
        severity: "critical".into(),
        summary: "poisoned".into(),
        trigger: None,
        source: "local".into(),
        body: json!({"id": id}),
        created_at: 0,
        withdrawn_at: None,
        withdrawn_reason: None,
    }
}

/// Push `ns/name:1.0` and run its ingest to completion with `edges` (as a worker would).
async fn push_ingested(store: &SqlStore, name: &str, edges: Vec<NewEdge>) -> i64 {
    let vid = store
        .create_version("fam", name, "1.0", "tok", &[file(name.len() as u64)], "tok")
        .await
        .unwrap();
    let job = store
        .claim_job("w", 60_000)
        .await
        .unwrap()
        .expect("the push queued a job");
    assert_eq!(job.version_id, vid, "jobs are claimed in order");
    let edges = edges
        .into_iter()
        .map(|mut e| {
            if e.child == 0 {
                e.child = vid;
            }
            e
        })
        .collect();
    store
        .finish_ingest(&IngestCommit {
            job_id: job.id,
            version_id: vid,
            identity: format!("sha256:{vid:064x}"),
            reports: vec![("fingerprint".into(), format!("{{\"v\":{vid}}}"))],
            edges,
            state: "approved".into(),
            decision: json!({"outcome": "approved"}),
            min_confidence: 0.5,
        })
        .await
        .unwrap();
    vid
}

async fn chain_ok(store: &SqlStore) -> i64 {
    let entries = store.audit_entries(1, 1_000_000).await.unwrap();
    audit::verify_chain(&entries, None).unwrap_or_else(|e| panic!("audit chain broken: {e}"));
    entries.len() as i64
}

/// Upload sessions: the chunk commit is a compare-and-swap on the acknowledged size, chunks
/// are found by where they start and end, expiry deletes only what is still idle, and deleting
/// an upload takes its chunks along.
async fn upload_records(s: &SqlStore) {
    let u = UploadRecord {
        id: "u1".into(),
        token_id: "abc".into(),
        size: 0,
        declared_size: Some(30),
        digest: Some("sha256:00".into()),
        store_key: "k".into(),
        store_upload_id: Some("mp".into()),
        created_at: 1,
        updated_at: 1,
    };
    s.create_upload(&u).await.unwrap();
    assert_eq!(s.get_upload("u1").await.unwrap().as_ref(), Some(&u));
    let chunk = |seq: u32, start: u64, size: u64| UploadChunk {
        seq,
        start,
        size,
        hash_state: format!("state-{seq}"),
        etag: Some(format!("etag-{seq}")),
    };
    assert!(
        s.commit_upload_chunk("u1", 0, &chunk(0, 0, 10))
            .await
            .unwrap()
    );
    // A second writer of the same offset loses, and records nothing.
    assert!(
        !s.commit_upload_chunk("u1", 0, &chunk(0, 0, 7))
            .await
            .unwrap()
    );
    assert!(
        !s.commit_upload_chunk("u1", 0, &chunk(1, 0, 7))
            .await
            .unwrap()
    );
    assert!(
        s.commit_upload_chunk("u1", 10, &chunk(1, 10, 20))
            .await
            .unwrap()
    );
    assert!(
        !s.commit_upload_chunk("nope", 0, &chunk(0, 0, 1))
            .await
            .unwrap()
    );
    let got = s.get_upload("u1").await.unwrap().unwrap();
    assert_eq!(got.size, 30);
    assert!(got.updated_at > 1, "a chunk refreshes updated_at");
    assert_eq!(
        s.upload_chunks("u1").await.unwrap(),
        vec![chunk(0, 0, 10), chunk(1, 10, 20)]
    );
    assert_eq!(
        s.upload_chunk_starting("u1", 10).await.unwrap(),
        Some(chunk(1, 10, 20))
    );
    assert_eq!(
        s.upload_chunk_ending("u1", 10).await.unwrap(),
        Some(chunk(0, 0, 10))
    );
    assert_eq!(s.upload_chunk_starting("u1", 5).await.unwrap(), None);
    // Expiry: not idle since 0, idle since far in the future; deleted once.
    assert!(s.idle_uploads(0, 10).await.unwrap().is_empty());
    assert!(!s.delete_upload_if_idle("u1", 0).await.unwrap());
    let idle = s.idle_uploads(i64::MAX, 10).await.unwrap();
    assert_eq!(
        idle.iter().map(|u| u.id.as_str()).collect::<Vec<_>>(),
        ["u1"]
    );
    assert!(s.delete_upload_if_idle("u1", i64::MAX).await.unwrap());
    assert!(!s.delete_upload_if_idle("u1", i64::MAX).await.unwrap());
    assert_eq!(s.get_upload("u1").await.unwrap(), None);
    assert!(
        s.upload_chunks("u1").await.unwrap().is_empty(),
        "chunks go with it"
    );
    s.create_upload(&UploadRecord {
        id: "u2".into(),
        ..u.clone()
    })
    .await
    .unwrap();
    s.delete_upload("u2").await.unwrap();
    assert_eq!(s.get_upload("u2").await.unwrap(), None);
}

fn each_engine(f: impl Fn(Engine)) {
    for e in Engine::ALL {
        eprintln!("-- engine {}", e.name());
        f(e);
    }
}

#[test]
fn versions_jobs_tokens_webhooks_and_audit() {
    each_engine(|engine| {
        let db = TestDb::new(engine);
        rt().block_on(async {
            let s = SqlStore::connect(db.url()).await.unwrap();
            assert_eq!(s.token_count().await.unwrap(), 0);
            let rec = TokenRecord {
                id: "abc".into(),
                name: "ci".into(),
                hash: "h".into(),
                revoked: false,
                grants: vec![Grant {
                    role: Role::Publisher,
                    namespace: "fam".into(),
                }],
            };
            s.create_token(&rec, "system").await.unwrap();
            let t = s.get_token("abc").await.unwrap().unwrap();
            assert_eq!(t.grants, rec.grants);
            assert!(!t.revoked);
            s.revoke_token("abc", "system").await.unwrap();
            assert!(s.get_token("abc").await.unwrap().unwrap().revoked);
            assert!(matches!(
                s.revoke_token("nope", "system").await,
                Err(StoreError::NotFound(_))
            ));

            let hook = s
                .add_webhook("http://h/", "sec", "version.approved", "admin")
                .await
                .unwrap();
            assert!(hook > 0);
            s.record_blob("sha256:00", 5).await.unwrap();
            s.record_blob("sha256:00", 5).await.unwrap(); // idempotent
            upload_records(&s).await;

            let a = push_ingested(&s, "base", vec![]).await;
            let b = push_ingested(&s, "ft", vec![edge(a, 0, 0.9)]).await;
            assert!(b > a, "ids increase: {a} then {b}");
            let dup = s
                .create_version("fam", "ft", "1.0", "tok", &[file(1)], "tok")
                .await;
            assert!(matches!(dup, Err(StoreError::Conflict(_))), "{dup:?}");
            let v = s.find_version("fam", "ft", "1.0").await.unwrap().unwrap();
            assert_eq!((v.id, v.state.as_str()), (b, "approved"));
            assert_eq!(v.decision.unwrap()["outcome"], "approved");
            assert_eq!(s.version_files(b).await.unwrap()[0].size, 1002);
            assert!(s.report(b, "fingerprint").await.unwrap().is_some());
            assert_eq!(s.fingerprints().await.unwrap().len(), 2);
            assert_eq!(
                s.latest_version_of("fam", "ft").await.unwrap().unwrap().id,
                b
            );
            let listed = s
                .list_versions(&VersionFilter {
                    namespace: Some("fam".into()),
                    state: Some("approved".into()),
                    limit: None,
                })
                .await
                .unwrap();
            assert_eq!(listed.iter().map(|v| v.id).collect::<Vec<_>>(), vec![a, b]);
            let edges = s.edges_of(b).await.unwrap();
            assert_eq!(edges.len(), 1);
            assert_eq!((edges[0].parent, edges[0].child), (a, b));
            assert!((edges[0].confidence - 0.9).abs() < 1e-9);
            assert_eq!(s.edges_since(0).await.unwrap().len(), 1);
            assert_eq!(s.edges_since(edges[0].rowid).await.unwrap().len(), 0);
            let counts = s.job_counts().await.unwrap();
            assert_eq!(counts, vec![("done".to_string(), 2)]);
            assert!(s.claim_job("w", 1000).await.unwrap().is_none());

            // An expired lease is claimed again; a failed job with retry goes back to the queue.
            let c = s
                .create_version("fam", "c", "1.0", "tok", &[file(3)], "tok")
                .await
                .unwrap();
            let j1 = s.claim_job("w1", -1).await.unwrap().unwrap();
            let j2 = s.claim_job("w2", 60_000).await.unwrap().unwrap();
            assert_eq!((j1.id, j2.id, j2.attempts), (j1.id, j1.id, 2));
            s.fail_job(j2.id, "boom", true).await.unwrap();
            let j3 = s.claim_job("w3", 60_000).await.unwrap().unwrap();
            assert_eq!((j3.version_id, j3.attempts), (c, 3));
            s.fail_job(j3.id, "boom", false).await.unwrap();
            assert!(s.claim_job("w4", 60_000).await.unwrap().is_none());

            s.deploy("svc", "prod", b, "admin").await.unwrap();
            s.deploy("svc", "prod", a, "admin").await.unwrap(); // upsert
            let d = s.deployments().await.unwrap();
            assert_eq!(d.len(), 1);
            assert_eq!(d[0].version_id, a);
            assert_eq!(s.deployments_of(&[a, b]).await.unwrap().len(), 1);

            // The webhook subscribed to version.approved only: two approvals queued.
            let due = s.due_outbox(i64::MAX, 100).await.unwrap();
            assert_eq!(
                due.len(),
                2,
                "{:?}",
                due.iter().map(|d| &d.event).collect::<Vec<_>>()
            );
            assert!(due.iter().all(|d| d.event == "version.approved"));
            s.outbox_delivered(due[0].id, 1).await.unwrap();
            s.outbox_retry(due[1].id, "503", i64::MAX - 1, true)
                .await
                .unwrap();
            assert!(s.due_outbox(i64::MAX, 100).await.unwrap().is_empty());

            let e = s
                .audit_append("admin", "policy.set", "policy", &json!({"x": 1}))
                .await
                .unwrap();
            let n = chain_ok(&s).await;
            assert_eq!(e.seq, n, "the appended entry is the head");
        });
    });
}

#[test]
fn cascade_flag_late_edges_and_unflag() {
    each_engine(|engine| {
        let db = TestDb::new(engine);
        rt().block_on(async {
            let s = SqlStore::connect(db.url()).await.unwrap();
            let root = push_ingested(&s, "root", vec![]).await;
            let c1 = push_ingested(&s, "c1", vec![edge(root, 0, 0.9)]).await;
            let c2 = push_ingested(&s, "c2", vec![edge(c1, 0, 0.9)]).await;
            // Below the confidence threshold: not reached.
            let weak = push_ingested(&s, "weak", vec![edge(root, 0, 0.1)]).await;
            let r = s
                .flag(&advisory("ADV-1"), &[root], 0.5, "admin")
                .await
                .unwrap();
            assert!(r.changed);
            assert_eq!(r.flagged, vec![root]);
            let at_risk: BTreeSet<i64> = r.at_risk.iter().map(|a| a.version).collect();
            assert_eq!(at_risk, BTreeSet::from([c1, c2]));
            let flags = s.flags_for_advisory("ADV-1").await.unwrap();
            assert_eq!(flags.len(), 3);
            let f2 = flags.iter().find(|f| f.version_id == c2).unwrap();
            assert_eq!(
                (f2.kind.as_str(), f2.via, f2.depth),
                ("at_risk", Some(c1), 2)
            );
            assert!(s.flags_of(&[weak]).await.unwrap().is_empty());

            // Same advisory again: nothing changes.
            let again = s
                .flag(&advisory("ADV-1"), &[root], 0.5, "admin")
                .await
                .unwrap();
            assert!(!again.changed);

            // A descendant ingested after the flag inherits it in the same commit.
            let late = push_ingested(&s, "late", vec![edge(c2, 0, 0.9)]).await;
            let lf = s.flags_of(&[late]).await.unwrap();
            assert_eq!(lf.len(), 1, "{lf:?}");
            assert_eq!((lf[0].via, lf[0].depth), (Some(c2), 3));

            let adv = s.advisory("ADV-1").await.unwrap().unwrap();
            assert!(adv.withdrawn_at.is_none());
            assert_eq!(s.advisories().await.unwrap().len(), 1);
            assert!(matches!(
                s.unflag("ADV-1", " ", "admin").await,
                Err(StoreError::Invalid(_))
            ));
            assert_eq!(
                s.unflag("ADV-1", "false positive", "admin").await.unwrap(),
                4
            );
            assert!(s.flags_for_advisory("ADV-1").await.unwrap().is_empty());
            assert!(
                s.advisory("ADV-1")
                    .await
                    .unwrap()
                    .unwrap()
                    .withdrawn_at
                    .is_some()
            );
            // Re-flagging a withdrawn advisory reactivates it.
            let re = s
                .flag(&advisory("ADV-1"), &[c1], 0.5, "admin")
                .await
                .unwrap();
            assert!(re.changed);
            assert_eq!(s.flags_for_advisory("ADV-1").await.unwrap().len(), 3);
            chain_ok(&s).await;
        });
    });
}

/// Two stores on one database, as two API processes: edges one of them commits are seen by the
/// other's cascade, although the other had already loaded (and cached) its lineage graph.
#[test]
fn two_stores_see_each_others_edges() {
    each_engine(|engine| {
        let db = TestDb::new(engine);
        rt().block_on(async {
            let a = SqlStore::connect(db.url()).await.unwrap();
            let b = SqlStore::connect(db.url()).await.unwrap();
            let root = push_ingested(&a, "root", vec![]).await;
            let c1 = push_ingested(&a, "c1", vec![edge(root, 0, 0.9)]).await;
            // A flags: A's graph cache now holds root -> c1.
            let r = a
                .flag(&advisory("ADV-A"), &[root], 0.5, "admin")
                .await
                .unwrap();
            assert_eq!(r.at_risk.len(), 1);
            // B adds c2 under c1. B's own ingest extends ADV-A (B loads the graph fresh).
            let c2 = push_ingested(&b, "c2", vec![edge(c1, 0, 0.9)]).await;
            assert_eq!(b.flags_of(&[c2]).await.unwrap().len(), 1);
            // B adds an edge from an unflagged version; A then flags that version's ancestor
            // with a new advisory: A must reach c3 through B's edge, not its stale cache.
            let other = push_ingested(&b, "other", vec![]).await;
            let c3 = push_ingested(&b, "c3", vec![edge(other, 0, 0.9)]).await;
            let r = a
                .flag(&advisory("ADV-B"), &[other], 0.5, "admin")
                .await
                .unwrap();
            let reached: Vec<i64> = r.at_risk.iter().map(|x| x.version).collect();
            assert_eq!(reached, vec![c3], "A's cascade missed an edge B committed");
            // And ADV-A, re-applied from A, covers c2 (added by B) already: unchanged.
            let again = a
                .flag(&advisory("ADV-A"), &[root], 0.5, "admin")
                .await
                .unwrap();
            assert!(!again.changed, "{:?}", again.at_risk);
            // B extends ADV-B from its side; A's next cascade sees that edge too.
            let c4 = push_ingested(&b, "c4", vec![edge(c3, 0, 0.9)]).await;
            let c5 = push_ingested(&a, "c5", vec![edge(c4, 0, 0.9)]).await;
            let f = a.flags_of(&[c4, c5]).await.unwrap();
            assert_eq!(
                f.iter()
                    .map(|f| (f.version_id, f.depth))
                    .collect::<Vec<_>>(),
                vec![(c4, 2), (c5, 3)],
                "A's ingest of c5 cascaded through c4, an edge B committed"
            );
            chain_ok(&a).await;
        });
    });
}

/// Two stores writing at once: every job claimed exactly once, the audit chain unbroken (its
/// append reads the head then writes head+1, which only a cross-process lock makes safe).
#[test]
fn two_stores_write_concurrently() {
    each_engine(|engine| {
        let db = TestDb::new(engine);
        rt().block_on(async {
            let a = Arc::new(SqlStore::connect(db.url()).await.unwrap());
            let b = Arc::new(SqlStore::connect(db.url()).await.unwrap());
            // Every new version queues one webhook event.
            a.add_webhook("http://h/", "sec", "version.quarantined", "admin")
                .await
                .unwrap();
            let n = 40;
            let mut tasks = Vec::new();
            for i in 0..n {
                let s = if i % 2 == 0 { a.clone() } else { b.clone() };
                tasks.push(tokio::spawn(async move {
                    s.create_version("fam", &format!("m{i}"), "1.0", "tok", &[file(i)], "tok")
                        .await
                        .unwrap()
                }));
            }
            let mut ids = HashSet::new();
            for t in tasks {
                assert!(ids.insert(t.await.unwrap()));
            }
            assert_eq!(ids.len() as u64, n);
            // Claim from both stores at once, several workers each.
            let mut tasks = Vec::new();
            for w in 0..8 {
                let s = if w % 2 == 0 { a.clone() } else { b.clone() };
                tasks.push(tokio::spawn(async move {
                    let mut got = Vec::new();
                    while let Some(j) = s.claim_job(&format!("w{w}"), 60_000).await.unwrap() {
                        got.push(j.version_id);
                    }
                    got
                }));
            }
            let mut claimed = Vec::new();
            for t in tasks {
                claimed.extend(t.await.unwrap());
            }
            claimed.sort_unstable();
            let mut expect: Vec<i64> = ids.into_iter().collect();
            expect.sort_unstable();
            assert_eq!(claimed, expect, "each job claimed exactly once");

            // Webhook deliveries too: both stores run the outbox; each event goes to one.
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_millis() as i64;
            let mut tasks = Vec::new();
            for w in 0..6 {
                let s = if w % 2 == 0 { a.clone() } else { b.clone() };
                tasks.push(tokio::spawn(async move {
                    let mut got = Vec::new();
                    loop {
                        let due = s.due_outbox(now, 3).await.unwrap();
                        if due.is_empty() {
                            break got;
                        }
                        got.extend(due.into_iter().map(|d| d.id));
                    }
                }));
            }
            let mut delivered = Vec::new();
            for t in tasks {
                delivered.extend(t.await.unwrap());
            }
            let unique: HashSet<i64> = delivered.iter().copied().collect();
            assert_eq!(delivered.len(), n as usize, "{delivered:?}");
            assert_eq!(unique.len(), n as usize, "an event was claimed twice");
            // Claimed events are not due again until the claim runs out (a dead process's
            // deliveries come back); then every one is.
            assert!(a.due_outbox(now + 1_000, 100).await.unwrap().is_empty());
            assert_eq!(
                b.due_outbox(now + 600_000, 100).await.unwrap().len(),
                n as usize
            );
            assert_eq!(chain_ok(&a).await, n as i64 + 1);
        });
    });
}

#[test]
fn postgres_unreachable_is_a_named_error() {
    let rt = rt();
    let err = match rt.block_on(SqlStore::connect(
        "postgres://pedigree:secret@127.0.0.1:1/none?connect_timeout=2",
    )) {
        Ok(_) => panic!("connected to a port nothing listens on"),
        Err(e) => e.to_string(),
    };
    assert!(
        err.contains("PostgreSQL") && err.contains("127.0.0.1:1"),
        "{err}"
    );
    assert!(!err.contains("secret"), "the password leaked: {err}");
}
