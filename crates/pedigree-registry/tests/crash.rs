//! Crash tests: the real server, killed with SIGKILL at random points while clients upload and
//! while an advisory cascades, then restarted. After every restart:
//! * nothing acknowledged is lost: every blob and version the server answered 2xx for is there,
//!   and a resumable upload cut off by the kill resumes from at least its acknowledged offset;
//! * nothing partial is visible: every stored blob hashes to its name, staging is empty, every
//!   version lists only blobs that exist;
//! * a flag is all or nothing: an advisory is either absent, or it covers its whole family.
//!
//! Every test runs twice: on SQLite, and on PostgreSQL (a fresh database per test, see
//! `store::testdb`; PostgreSQL missing is a failure naming `bash scripts/setup.sh`).
//!
//! The server runs as a child process: this test binary re-executes itself with
//! `PEDIGREE_CRASH_CHILD` set, which makes `server_child` serve instead of returning
//! (`PEDIGREE_CRASH_DB_URL`, when set, is its `--database-url`).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use pedigree_registry::server::{Config, serve};
use pedigree_registry::store::sql::SqlStore;
use pedigree_registry::store::testdb::{Engine, TestDb};
use pedigree_registry::store::{IngestCommit, MetaStore, NewEdge, NewFile};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

#[test]
fn server_child() {
    let Ok(dir) = std::env::var("PEDIGREE_CRASH_CHILD") else {
        return;
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(serve(Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        database_url: std::env::var("PEDIGREE_CRASH_DB_URL").ok(),
        workers: 1,
        ..Config::new(PathBuf::from(dir))
    }))
    .unwrap();
}

struct Server {
    child: Child,
    url: String,
    token: Option<String>,
}

fn start(dir: &Path, db: &TestDb) -> Server {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "server_child", "--nocapture", "--test-threads=1"])
        .env("PEDIGREE_CRASH_CHILD", dir)
        .env("PEDIGREE_CRASH_DB_URL", db.url())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let (mut url, mut token) = (None, None);
    let deadline = Instant::now() + Duration::from_secs(60);
    while url.is_none() && Instant::now() < deadline {
        let Some(Ok(l)) = lines.next() else { break };
        if let Some(t) = l.split("stored only as a hash): ").nth(1) {
            token = Some(t.trim().to_string());
        }
        if let Some(u) = l.split("listening on ").nth(1) {
            url = Some(u.trim().to_string());
        }
    }
    // Keep draining stdout so the child never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    Server {
        child,
        url: url.expect("server printed its URL"),
        token,
    }
}

fn kill(mut s: Server) {
    // SIGKILL: no destructor, no flush, no graceful shutdown.
    let _ = s.child.kill();
    let _ = s.child.wait();
}

fn rand_u64(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

fn digest(b: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(b)))
}

/// Every blob file hashes to its name; staging holds nothing after a restart. (Resumable
/// uploads in progress live in `blobs/uploads`, outside the content-addressed tree, and survive
/// restarts on purpose.)
fn check_blob_dir(dir: &Path) {
    for e in walkdir::WalkDir::new(dir.join("blobs/sha256")) {
        let e = e.unwrap();
        if e.file_type().is_file() {
            let name = e.file_name().to_str().unwrap().to_string();
            let bytes = std::fs::read(e.path()).unwrap();
            assert_eq!(
                hex::encode(Sha256::digest(&bytes)),
                name,
                "blob {} is corrupt",
                e.path().display()
            );
        }
    }
    let staged = std::fs::read_dir(dir.join("staging"))
        .map(|d| d.count())
        .unwrap_or(0);
    assert_eq!(staged, 0, "staging not cleared at start");
}

#[test]
fn kill9_during_uploads_loses_nothing_acknowledged_sqlite() {
    kill9_during_uploads_loses_nothing_acknowledged(Engine::Sqlite);
}

#[test]
fn kill9_during_uploads_loses_nothing_acknowledged_postgres() {
    kill9_during_uploads_loses_nothing_acknowledged(Engine::Postgres);
}

fn kill9_during_uploads_loses_nothing_acknowledged(engine: Engine) {
    if std::env::var("PEDIGREE_CRASH_CHILD").is_ok() {
        return;
    }
    let db = TestDb::new(engine);
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_path_buf();
    let first = start(&dir, &db);
    let token = first.token.clone().expect("admin token on first start");
    kill(first);
    let acked_blobs: Arc<Mutex<Vec<(String, u64)>>> = Arc::default();
    let acked_versions: Arc<Mutex<Vec<String>>> = Arc::default();
    // Resumable uploads cut off after a chunk was acknowledged: id, acknowledged offset, bytes.
    type CutUpload = (String, usize, Vec<u8>);
    let cut_uploads: Arc<Mutex<Vec<CutUpload>>> = Arc::default();
    let mut seed = 0x1234_5678_9abc_def1u64;
    let iterations = 25;
    let mut resumed = 0;
    for it in 0..iterations {
        let s = start(&dir, &db);
        let url = s.url.clone();
        let (tok, blobs, versions) = (token.clone(), acked_blobs.clone(), acked_versions.clone());
        let cut = cut_uploads.clone();
        let mut wseed = rand_u64(&mut seed);
        let worker = std::thread::spawn(move || {
            let c = reqwest::blocking::Client::builder()
                .timeout(Duration::from_secs(20))
                .build()
                .unwrap();
            for k in 0.. {
                let size = 1 + (rand_u64(&mut wseed) % (3 << 20)) as usize;
                let mut data = vec![0u8; size];
                for (i, b) in data.iter_mut().enumerate() {
                    *b = (i as u64 ^ wseed) as u8;
                }
                data[..8].copy_from_slice(&wseed.to_le_bytes());
                let d = digest(&data);
                let ok = if k % 2 == 0 {
                    c.put(format!("{url}/v1/blobs/{d}"))
                        .bearer_auth(&tok)
                        .body(data.clone())
                        .send()
                        .map(|r| r.status().is_success())
                        .unwrap_or(false)
                } else {
                    // Resumable: two chunks, then finish.
                    (|| -> Option<bool> {
                        let r: Value = c
                            .post(format!("{url}/v1/uploads"))
                            .bearer_auth(&tok)
                            .send()
                            .ok()?
                            .json()
                            .ok()?;
                        let id = r["id"].as_str()?.to_string();
                        let mid = size / 2;
                        for (off, part) in [(0, &data[..mid]), (mid, &data[mid..])] {
                            let r = c
                                .patch(format!("{url}/v1/uploads/{id}"))
                                .bearer_auth(&tok)
                                .header("upload-offset", off.to_string())
                                .body(part.to_vec())
                                .send();
                            if !r.is_ok_and(|r| r.status().is_success()) {
                                if off > 0 {
                                    cut.lock().unwrap().push((id, off, data.clone()));
                                }
                                return Some(false);
                            }
                        }
                        Some(
                            c.put(format!("{url}/v1/uploads/{id}?digest={d}"))
                                .bearer_auth(&tok)
                                .send()
                                .ok()?
                                .status()
                                .is_success(),
                        )
                    })()
                    .unwrap_or(false)
                };
                if !ok {
                    return; // the server is gone
                }
                blobs.lock().unwrap().push((d.clone(), size as u64));
                let ver = format!("{it}.{k}");
                let body = json!({"version": ver, "files": [{"path": "weights.bin", "digest": d, "size": size}]});
                match c
                    .post(format!("{url}/v1/models/crash/m/versions"))
                    .bearer_auth(&tok)
                    .json(&body)
                    .send()
                {
                    Ok(r) if r.status().is_success() => versions.lock().unwrap().push(ver),
                    _ => return,
                }
            }
        });
        std::thread::sleep(Duration::from_millis(50 + rand_u64(&mut seed) % 400));
        kill(s);
        worker.join().unwrap();

        // Restart and check.
        let s = start(&dir, &db);
        check_blob_dir(&dir);
        let c = reqwest::blocking::Client::new();
        for (d, size) in acked_blobs.lock().unwrap().iter() {
            let r = c
                .head(format!("{}/v1/blobs/{d}", s.url))
                .bearer_auth(&token)
                .send()
                .unwrap();
            assert_eq!(
                r.status(),
                200,
                "acknowledged blob {d} lost after kill -9 (iteration {it})"
            );
            assert_eq!(
                r.headers()["content-length"].to_str().unwrap(),
                size.to_string()
            );
        }
        for v in acked_versions.lock().unwrap().iter() {
            let r = c
                .get(format!("{}/v1/models/crash/m/versions/{v}", s.url))
                .bearer_auth(&token)
                .send()
                .unwrap();
            assert_eq!(
                r.status(),
                200,
                "acknowledged version {v} lost (iteration {it})"
            );
        }
        // Cut-off uploads resume from what was acknowledged (or past it, if the chunk in flight
        // was stored but its answer lost) and complete.
        for (id, acked, data) in cut_uploads.lock().unwrap().drain(..) {
            let r = c
                .head(format!("{}/v1/uploads/{id}", s.url))
                .bearer_auth(&token)
                .send()
                .unwrap();
            assert_eq!(
                r.status(),
                200,
                "upload {id} lost after kill -9 (iteration {it})"
            );
            let held: usize = r.headers()["upload-offset"]
                .to_str()
                .unwrap()
                .parse()
                .unwrap();
            assert!(
                held == acked || held == data.len(),
                "upload {id}: server holds {held} bytes, {acked} were acknowledged"
            );
            if held < data.len() {
                let r = c
                    .patch(format!("{}/v1/uploads/{id}", s.url))
                    .bearer_auth(&token)
                    .header("upload-offset", held.to_string())
                    .body(data[held..].to_vec())
                    .send()
                    .unwrap();
                assert_eq!(r.status(), 202, "resuming upload {id}");
            }
            let d = digest(&data);
            let r = c
                .put(format!("{}/v1/uploads/{id}?digest={d}", s.url))
                .bearer_auth(&token)
                .send()
                .unwrap();
            assert_eq!(r.status(), 201, "finishing resumed upload {id}");
            resumed += 1;
        }
        kill(s);
    }
    eprintln!("figure: {resumed} cut-off resumable uploads resumed after kill -9");
    assert!(
        acked_versions.lock().unwrap().len() >= iterations,
        "the test should acknowledge work to check"
    );
}

/// A family of `n` descendants under version 1, built through the store (as ingest would).
async fn seed_family(db: &TestDb, n: usize) -> i64 {
    let store = SqlStore::connect(db.url()).await.unwrap();
    let f = [NewFile {
        path: "w.bin".into(),
        digest: format!("sha256:{}", "0".repeat(64)),
        size: 1,
    }];
    let mut ids = Vec::new();
    for i in 0..=n {
        let id = store
            .create_version("fam", &format!("m{i}"), "1.0", "seed", &f, "seed")
            .await
            .unwrap();
        ids.push(id);
    }
    let jobs: Vec<(i64, i64)> =
        sqlx::query_as::<_, (i64, i64)>("SELECT id, version_id FROM jobs ORDER BY id")
            .fetch_all(store.pool())
            .await
            .unwrap();
    for (k, (job, vid)) in jobs.iter().enumerate() {
        let edges = if k == 0 {
            vec![]
        } else {
            // A tree: each version's parent is an earlier one.
            vec![NewEdge {
                parent: ids[(k - 1) / 4],
                child: *vid,
                source: "inferred".into(),
                relation: "finetune".into(),
                confidence: 0.9,
                evidence: json!({}),
            }]
        };
        store
            .finish_ingest(&IngestCommit {
                job_id: *job,
                version_id: *vid,
                identity: format!("sha256:{vid:064x}"),
                reports: vec![],
                edges,
                state: "approved".into(),
                decision: json!({}),
                min_confidence: 0.6,
            })
            .await
            .unwrap();
    }
    ids[0]
}

#[test]
fn kill9_during_flag_is_all_or_nothing_sqlite() {
    kill9_during_flag_is_all_or_nothing(Engine::Sqlite);
}

#[test]
fn kill9_during_flag_is_all_or_nothing_postgres() {
    kill9_during_flag_is_all_or_nothing(Engine::Postgres);
}

fn kill9_during_flag_is_all_or_nothing(engine: Engine) {
    if std::env::var("PEDIGREE_CRASH_CHILD").is_ok() {
        return;
    }
    let db = TestDb::new(engine);
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_path_buf();
    let first = start(&dir, &db);
    let token = first.token.clone().expect("admin token on first start");
    kill(first);
    let family = 3000;
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(seed_family(&db, family));
    // Calibrate: how long does a flag take end to end on this machine (fresh server, first
    // request pays the token check and the graph load)? Kills then land uniformly in twice that.
    let s = start(&dir, &db);
    let t0 = Instant::now();
    let body = json!({"id": "ADV-calibrate", "severity": "critical", "summary": "calibration", "versions": ["fam/m0:1.0"]});
    let r = reqwest::blocking::Client::new()
        .post(format!("{}/v1/advisories", s.url))
        .bearer_auth(&token)
        .json(&body)
        .send()
        .unwrap();
    assert!(
        r.status().is_success(),
        "calibration flag failed: {}",
        r.status()
    );
    let mut window_ms = (t0.elapsed().as_millis() as u64 * 2).max(20);
    kill(s);
    let mut seed = 0xfeed_beef_1234_5678u64;
    let (mut complete, mut absent) = (0, 0);
    // At least 25 kills; more (up to 80) until some land before and some after the commit. The
    // window adapts: the calibration flag can be slower than later ones (cold caches), and a
    // window far longer than a flag would put nearly every kill after the commit.
    for it in 0..80 {
        if it >= 25 && complete > 0 && absent > 0 {
            break;
        }
        if it > 0 && it % 8 == 0 {
            if absent == 0 {
                window_ms = (window_ms / 2).max(5);
            } else if complete == 0 {
                window_ms *= 2;
            }
        }
        let s = start(&dir, &db);
        let url = s.url.clone();
        let tok = token.clone();
        let id = format!("ADV-{it}");
        let id2 = id.clone();
        let t = std::thread::spawn(move || {
            let body = json!({"id": id2, "severity": "critical", "summary": "crash test", "versions": ["fam/m0:1.0"]});
            let _ = reqwest::blocking::Client::new()
                .post(format!("{url}/v1/advisories"))
                .bearer_auth(&tok)
                .json(&body)
                .send();
        });
        std::thread::sleep(Duration::from_millis(rand_u64(&mut seed) % window_ms));
        kill(s);
        t.join().unwrap();
        let (adv, flags) = rt.block_on(async {
            let store = SqlStore::connect(db.url()).await.unwrap();
            (
                store.advisory(&id).await.unwrap(),
                store.flags_for_advisory(&id).await.unwrap().len(),
            )
        });
        match adv {
            None => {
                assert_eq!(flags, 0, "flags without their advisory (iteration {it})");
                absent += 1
            }
            Some(_) => {
                assert_eq!(
                    flags,
                    family + 1,
                    "a half-done cascade is visible (iteration {it})"
                );
                complete += 1
            }
        }
    }
    eprintln!(
        "flag crash test: {complete} complete, {absent} absent (kills within {window_ms} ms)"
    );
    assert!(
        complete > 0 && absent > 0,
        "random kills should land both before and after the commit ({complete} complete, {absent} absent)"
    );
}
