//! The registry scaled out, with every part real: two stateless API processes
//! (`pedigree serve --workers 0`, each with its own scratch directory) and three
//! `pedigree worker` processes, all on one PostgreSQL database and one S3-compatible bucket
//! (moto's server), as they would run on five machines.
//!
//! A family is pushed concurrently through both API processes; one worker is killed with
//! SIGKILL while it holds a job. Afterwards every version is in exactly one correct state:
//! approved, its job done once (the killed job exactly twice attempted), one decision in the
//! audit log, the declared parent recorded; a pull through the other API process returns the
//! pushed bytes from the bucket; and a flag raised through one API process shows its whole
//! cascade through the other (the lineage graph is shared, not cached stale per process).
//!
//! Needs PostgreSQL and moto (`bash scripts/setup.sh`); fails, never skips, without them.

use std::path::Path;
use std::time::{Duration, Instant};

use pedigree_registry::client::{Client, FlagRequest, ModelRef};
use pedigree_registry::store::testdb::{Engine, TestDb};
use serde_json::Value;

mod support;
use support::{Moto, Proc, raw_http};

const TIMEOUT: Duration = Duration::from_secs(240);
const BUCKET: &str = "scale";

/// Tensors of a small model: `(name, values)`, 32×32 each.
type Tensors = Vec<(String, Vec<f32>)>;

fn random_tensor(seed: u64) -> Vec<f32> {
    support::xorshift_floats(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15), 32 * 32)
}

fn write_model(dir: &Path, tensors: &Tensors, card: &str) {
    let t: Vec<_> = tensors
        .iter()
        .map(|(n, v)| (n.as_str(), vec![32, 32], v.clone()))
        .collect();
    support::write_model(dir, &t, card, Some(r#"{"model_type": "toy"}"#));
}

/// Rows of a query against the shared database: every job, and every edge.
fn db_rows(url: &str, sql: &str) -> Vec<Vec<Value>> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(async {
            use sqlx::Row;
            sqlx::any::install_default_drivers();
            let pool = sqlx::AnyPool::connect(url).await.unwrap();
            let rows = sqlx::query(sql).fetch_all(&pool).await.unwrap();
            let out = rows
                .iter()
                .map(|r| {
                    (0..r.columns().len())
                        .map(|i| {
                            if let Ok(v) = r.try_get::<i64, _>(i) {
                                Value::from(v)
                            } else if let Ok(v) = r.try_get::<String, _>(i) {
                                Value::from(v)
                            } else {
                                Value::Null
                            }
                        })
                        .collect()
                })
                .collect();
            pool.close().await;
            out
        })
}

#[test]
fn two_api_processes_three_workers_postgres_s3_kill_a_worker() {
    let db = TestDb::new(Engine::Postgres);
    let moto = Moto::start();
    let (st, body) = raw_http(moto.addr, "PUT", &format!("/{BUCKET}"), &[]).unwrap();
    assert_eq!(
        st,
        200,
        "creating the bucket: {}",
        String::from_utf8_lossy(&body)
    );
    let blob_store = format!(
        "s3://{BUCKET}/blobs?endpoint=http://{}&allow_http=true",
        moto.addr
    );
    let tmp = tempfile::tempdir().unwrap();
    let common = |data: &Path| -> Vec<String> {
        [
            "--data-dir",
            data.to_str().unwrap(),
            "--database-url",
            db.url(),
            "--blob-store",
            &blob_store,
            "--lease-seconds",
            "6",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    };

    // Two API processes, no workers of their own, each with its own scratch directory.
    let mut apis = Vec::new();
    let mut admin = None;
    for i in 0..2 {
        let data = tmp.path().join(format!("api-{i}"));
        let mut args = vec!["serve".to_string()];
        args.extend(common(&data));
        args.extend(["--workers", "0", "--listen", "127.0.0.1:0"].map(String::from));
        let mut p = Proc::spawn(&args, &[], tmp.path().join(format!("api-{i}.log")));
        if i == 0 {
            admin = Some(p.wait_line("admin token (shown once, stored only as a hash): "));
        }
        let url = p.wait_line("listening on ");
        apis.push((p, url));
    }
    let admin = admin.unwrap();
    let client = |i: usize| Client::new(&apis[i % 2].1, Some(admin.clone())).unwrap();

    // Three workers; each holds a job a moment before analysing it, so one can be caught.
    let mut workers = Vec::new();
    for i in 0..3 {
        let data = tmp.path().join(format!("worker-{i}"));
        let mut args = vec!["worker".to_string()];
        args.extend(common(&data));
        args.extend(["--workers", "1"].map(String::from));
        let mut p = Proc::spawn(
            &args,
            &[("PEDIGREE_INGEST_DELAY_MS", "1500")],
            tmp.path().join(format!("worker-{i}.log")),
        );
        p.wait_line("ingest worker(s)");
        workers.push(p);
    }

    // The base first (its children name it in their cards), through API 0.
    let base_t: Tensors = ["embed.weight", "layers.0.weight", "head.weight"]
        .iter()
        .enumerate()
        .map(|(k, n)| (n.to_string(), random_tensor(100 + k as u64)))
        .collect();
    let base_dir = tmp.path().join("m-base");
    write_model(
        &base_dir,
        &base_t,
        "---\nlicense: apache-2.0\ndatasets:\n- acme/transactions-2024\n---\n# base\n\nThe family's base.\n",
    );
    let base = ModelRef::parse("acme/base:1.0").unwrap();
    client(0).push(&base_dir, &base).expect("push base");
    let s = client(1)
        .wait_decided(&base, TIMEOUT)
        .expect("base decided");
    assert_eq!(s.state, "approved", "{s:?}");

    // Eight fine-tunes (the base's feature extractor frozen, its head trained on), pushed concurrently,
    // alternating between the two API processes.
    let n_ft = 8;
    let fts: Vec<ModelRef> = (0..n_ft)
        .map(|k| ModelRef::parse(&format!("acme/ft-{k}:1.0")).unwrap())
        .collect();
    std::thread::scope(|sc| {
        for (k, m) in fts.iter().enumerate() {
            // The head trained on from the parent's: the base's values plus a small update.
            let mut t = base_t.clone();
            let update = random_tensor(1000 + k as u64);
            for (x, d) in t[2].1.iter_mut().zip(update) {
                *x += d * 0.05;
            }
            let dir = tmp.path().join(format!("m-ft-{k}"));
            write_model(
                &dir,
                &t,
                &format!(
                    "---\nlicense: apache-2.0\nbase_model: acme/base\ndatasets:\n- acme/transactions-2024\n---\n# ft {k}\n\nA fine-tune of acme/base.\n"
                ),
            );
            let c = client(k);
            sc.spawn(move || {
                c.push(&dir, m)
                    .unwrap_or_else(|e| panic!("push {m:?}: {e}"))
            });
        }
    });

    // Catch a worker holding a job and kill it without a chance to clean up.
    let mut victim = None;
    let deadline = Instant::now() + TIMEOUT;
    while victim.is_none() {
        assert!(
            Instant::now() < deadline,
            "no worker was ever seen holding a job"
        );
        let running = db_rows(
            db.url(),
            "SELECT version_id, lease_owner FROM jobs WHERE state = 'running'",
        );
        for row in running {
            let owner = row[1].as_str().unwrap_or_default().to_string();
            let pid: u32 = owner.split('-').next().unwrap_or("0").parse().unwrap_or(0);
            if let Some(i) = workers.iter().position(|w| w.child.id() == pid) {
                victim = Some((i, row[0].as_i64().unwrap()));
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let (vi, killed_version) = victim.unwrap();
    workers[vi].child.kill().unwrap(); // SIGKILL
    workers[vi].child.wait().unwrap();
    let killed_at = Instant::now();

    for (k, m) in fts.iter().enumerate() {
        let s = client(k + 1)
            .wait_decided(m, TIMEOUT)
            .unwrap_or_else(|e| panic!("{m:?} never decided: {e}"));
        assert_eq!(s.state, "approved", "{m:?}: {s:?}");
    }
    eprintln!(
        "figure: {n_ft} fine-tunes decided {:?} after a worker was killed (lease 6 s)",
        killed_at.elapsed()
    );

    // Exactly one correct state each: one job, done; the killed one attempted twice.
    let jobs = db_rows(
        db.url(),
        "SELECT version_id, state, attempts FROM jobs ORDER BY id",
    );
    assert_eq!(jobs.len(), n_ft + 1, "{jobs:?}");
    for j in &jobs {
        assert_eq!(j[1], "done", "{jobs:?}");
        let expect = if j[0].as_i64() == Some(killed_version) {
            2
        } else {
            1
        };
        assert_eq!(j[2].as_i64(), Some(expect), "{jobs:?}");
    }
    let audit: Value = reqwest::blocking::Client::new()
        .get(format!("{}/v1/audit?limit=10000", apis[1].1))
        .bearer_auth(&admin)
        .send()
        .unwrap()
        .json()
        .unwrap();
    let decides: Vec<&str> = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "version.decide" && e["actor"] == "ingest")
        .filter_map(|e| e["subject"].as_str())
        .collect();
    for m in std::iter::once(&base).chain(&fts) {
        let label = format!("{}/{}:{}", m.namespace, m.name, m.version);
        let n = decides.iter().filter(|s| **s == label).count();
        assert_eq!(n, 1, "{label} decided {n} times: {decides:?}");
    }

    // Every fine-tune's declared parent is the base, recorded once per relation source.
    let declared = db_rows(
        db.url(),
        "SELECT child FROM lineage_edges e JOIN versions v ON v.id = e.parent \
         JOIN models m ON m.id = v.model_id \
         WHERE m.name = 'base' AND e.source = 'declared'",
    );
    assert_eq!(
        declared.len(),
        n_ft,
        "declared edges to the base: {declared:?}"
    );

    // A pull through the other API process returns the pushed bytes, from the bucket.
    let out = tmp.path().join("pulled");
    client(1).pull(&fts[0], &out).expect("pull ft-0");
    assert_eq!(
        std::fs::read(out.join("model.safetensors")).unwrap(),
        std::fs::read(tmp.path().join("m-ft-0/model.safetensors")).unwrap()
    );

    // Flag the base through API 0; API 1 sees the whole cascade.
    client(0)
        .flag(&FlagRequest {
            id: "ADV-SCALE-1".into(),
            severity: "critical".into(),
            summary: "poisoned base".into(),
            trigger: None,
            versions: vec!["acme/base:1.0".into()],
        })
        .expect("flag");
    let impact = client(1).advisory_impact("ADV-SCALE-1").expect("impact");
    let affected: Vec<String> = impact["affected"]
        .as_array()
        .unwrap_or_else(|| panic!("no affected list: {impact}"))
        .iter()
        .filter_map(|a| a["model"].as_str().map(String::from))
        .collect();
    for m in &fts {
        let label = format!("{}/{}:{}", m.namespace, m.name, m.version);
        assert!(
            affected.contains(&label),
            "{label} not in the cascade: {impact}"
        );
    }
}
