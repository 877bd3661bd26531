//! The registry in operation, with real processes: `pedigree serve --workers 0` (API only) and
//! separate `pedigree worker` processes sharing one SQLite database and data directory.
//!
//! * `workers_share_the_queue_and_survive_kill_9`: two workers ingest several pushes; one is
//!   killed with SIGKILL mid-job; its job is redone by the other once the lease expires; every
//!   version ends decided exactly once (one `version.decide` audit entry, one `done` job).
//! * `sigterm_finishes_or_requeues_the_running_job`: a worker stopped with SIGTERM mid-job
//!   exits 0 within its grace period, leaving the job done (short job) or back in the queue
//!   (job longer than the grace), where another worker finishes it.
//! * `readiness_and_metrics`: `/readyz` is 200, then 503 naming the cause when the blob
//!   directory or the database file goes away, and 200 again when they return; `/metrics`
//!   parses as Prometheus text and counts the pushes; the worker serves the same on --listen.
//!
//! `PEDIGREE_INGEST_DELAY_MS` holds each job for a while before its analysis, so the tests can
//! catch a worker mid-job however fast the machine is; it changes no result.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use pedigree_registry::client::{Client, ModelRef};

mod support;
use serde_json::Value;
use support::Proc;

const TIMEOUT: Duration = Duration::from_secs(180);

// ------------------------------------------------------------------------------------ processes

struct Registry {
    server: Proc,
    url: String,
    admin: String,
    data: PathBuf,
    tmp: tempfile::TempDir,
}

impl Registry {
    fn start(extra: &[&str]) -> Registry {
        let tmp = tempfile::tempdir().unwrap();
        let data = tmp.path().join("data");
        let mut args = vec![
            "serve",
            "--data-dir",
            data.to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
        ];
        args.extend_from_slice(extra);
        let mut server = Proc::spawn(&args, &[], tmp.path().join("serve.log"));
        let admin = server.wait_line("admin token (shown once, stored only as a hash): ");
        let url = server.wait_line("listening on ");
        Registry {
            server,
            url,
            admin,
            data,
            tmp,
        }
    }

    fn worker(&self, name: &str, extra: &[&str], env: &[(&str, &str)]) -> Proc {
        self.worker_with_url(name, extra, env).0
    }

    /// Start a worker; with `--listen`, also the URL it printed.
    fn worker_with_url(
        &self,
        name: &str,
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> (Proc, Option<String>) {
        let mut args = vec!["worker", "--data-dir", self.data.to_str().unwrap()];
        args.extend_from_slice(extra);
        let p = Proc::spawn(&args, env, self.tmp.path().join(format!("{name}.log")));
        let mut url = None;
        loop {
            match p.lines.recv_timeout(Duration::from_secs(60)) {
                Ok(l) if l.contains("ingest worker(s)") => return (p, url),
                Ok(l) => {
                    if let Some(u) = l.split("listening on ").nth(1) {
                        url = Some(u.trim().to_string());
                    }
                }
                Err(_) => panic!("worker {name} did not start:\n{}", p.log_text()),
            }
        }
    }

    fn client(&self) -> Client {
        Client::new(&self.url, Some(self.admin.clone())).unwrap()
    }

    fn push(&self, i: u64) -> ModelRef {
        let dir = self.tmp.path().join(format!("model-{i}"));
        write_model(&dir, i);
        let m = ModelRef::parse(&format!("acme/model-{i}:1.0")).unwrap();
        self.client().push(&dir, &m).expect("push");
        m
    }

    /// `(version_id, state, attempts, lease_owner)` of every job, straight from the database.
    fn jobs(&self) -> Vec<(i64, String, i64, Option<String>)> {
        let url = format!(
            "sqlite://{}?mode=ro",
            self.data.join("registry.db").display()
        );
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(async {
                use sqlx::Row;
                sqlx::any::install_default_drivers();
                let pool = sqlx::AnyPool::connect(&url).await.unwrap();
                let rows = sqlx::query(
                    "SELECT version_id, state, attempts, lease_owner FROM jobs ORDER BY id",
                )
                .fetch_all(&pool)
                .await
                .unwrap();
                let out = rows
                    .iter()
                    .map(|r| {
                        (
                            r.get::<i64, _>(0),
                            r.get::<String, _>(1),
                            r.get::<i64, _>(2),
                            r.get::<Option<String>, _>(3),
                        )
                    })
                    .collect();
                pool.close().await;
                out
            })
    }

    /// Wait until the worker process `w` (its first ingest slot) holds a running job.
    fn wait_holding(&self, w: &Proc) {
        let owner = format!("{}-0", w.pid());
        wait_until(&format!("worker {owner} to hold a job"), TIMEOUT, || {
            self.jobs()
                .iter()
                .any(|j| j.1 == "running" && j.3.as_deref() == Some(&owner))
        });
    }

    fn audit(&self) -> Vec<Value> {
        let r = reqwest::blocking::Client::new()
            .get(format!("{}/v1/audit?limit=10000", self.url))
            .bearer_auth(&self.admin)
            .send()
            .unwrap();
        assert_eq!(r.status(), 200);
        let v: Value = r.json().unwrap();
        v["entries"].as_array().unwrap().clone()
    }
}

fn get(url: &str) -> (u16, String) {
    let r = reqwest::blocking::Client::new()
        .get(url)
        .timeout(Duration::from_secs(30))
        .send()
        .unwrap_or_else(|e| panic!("GET {url}: {e}"));
    (r.status().as_u16(), r.text().unwrap())
}

/// A small safetensors model with a card, unrelated to every other seed (its own random
/// weights), so lineage links none of them and the default policy approves each.
fn write_model(dir: &Path, seed: u64) {
    // One generator across the three tensors, as the tests' digests were made.
    let all = support::xorshift_floats(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15), 3 * 32 * 32);
    let tensors: Vec<_> = ["embed.weight", "layers.0.weight", "head.weight"]
        .into_iter()
        .zip(all.chunks(32 * 32))
        .map(|(n, v)| (n, vec![32, 32], v.to_vec()))
        .collect();
    let card = format!(
        "---\nlicense: apache-2.0\ndatasets:\n- acme/transactions-2024\n---\n# Model {seed}\n\nFor the ops tests.\n"
    );
    support::write_model(
        dir,
        &tensors,
        &card,
        Some(r#"{"model_type": "toy", "hidden_size": 32}"#),
    );
}

fn wait_until(what: &str, limit: Duration, mut f: impl FnMut() -> bool) {
    let t = Instant::now();
    while !f() {
        assert!(t.elapsed() < limit, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

// ------------------------------------------------------------------------------------ tests

#[test]
fn workers_share_the_queue_and_survive_kill_9() {
    // A short lease so the dead worker's job comes back quickly, long enough that a renewal
    // (every third of it) delayed by a loaded machine does not lose a live worker's job.
    let reg = Registry::start(&["--workers", "0", "--lease-seconds", "5"]);
    let env = [("PEDIGREE_INGEST_DELAY_MS", "1500")];
    let common = [
        "--workers",
        "1",
        "--lease-seconds",
        "5",
        "--log-format",
        "json",
    ];
    let mut a = reg.worker("worker-a", &common, &env);
    let b = reg.worker("worker-b", &common, &env);
    let models: Vec<ModelRef> = (1..=6).map(|i| reg.push(i)).collect();

    // Catch worker A holding a job, then kill it without a chance to clean up.
    let a_owner = format!("{}-0", a.pid());
    let mut a_job = None;
    wait_until("worker A to hold a job", TIMEOUT, || {
        a_job = reg
            .jobs()
            .into_iter()
            .find(|j| j.1 == "running" && j.3.as_deref() == Some(&a_owner));
        a_job.is_some()
    });
    let a_version = a_job.unwrap().0;
    a.signal(libc::SIGKILL);
    let killed_at = Instant::now();
    let (code, _) = a.wait_exit(Duration::from_secs(10));
    assert_eq!(code, None, "SIGKILL leaves no exit code");

    let c = reg.client();
    for m in &models {
        let s = c
            .wait_decided(m, TIMEOUT)
            .unwrap_or_else(|e| panic!("{m:?}: {e}; worker B:\n{}", b.log_text()));
        assert_eq!(s.state, "approved", "{m:?}: {s:?}");
    }
    eprintln!(
        "figure: all {} versions decided {:?} after worker A was killed (lease 5 s)",
        models.len(),
        killed_at.elapsed()
    );

    // Every job done exactly once; the killed one took a second attempt, by worker B.
    let jobs = reg.jobs();
    assert_eq!(jobs.len(), models.len(), "{jobs:?}");
    for (version, state, attempts, _) in &jobs {
        assert_eq!(state, "done", "{jobs:?}");
        let expect = if *version == a_version { 2 } else { 1 };
        assert_eq!(*attempts, expect, "version {version}: {jobs:?}");
    }
    let decides: Vec<String> = reg
        .audit()
        .iter()
        .filter(|e| e["action"] == "version.decide" && e["actor"] == "ingest")
        .map(|e| e["subject"].as_str().unwrap().to_string())
        .collect();
    for m in &models {
        let label = format!("acme/{}:1.0", m.name);
        let n = decides.iter().filter(|s| **s == label).count();
        assert_eq!(n, 1, "{label} decided {n} times: {decides:?}");
    }

    // Worker B's ingest log lines are JSON and each carries the job id and version.
    let log = b.log_text();
    let mut ingest_lines = 0;
    for line in log.lines().filter(|l| l.contains("ingest")) {
        let v: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        let job = v["fields"]["job"].as_i64().or(v["span"]["job"].as_i64());
        let version = v["fields"]["version"]
            .as_str()
            .or(v["span"]["version"].as_str());
        assert!(job.is_some() && version.is_some(), "{line}");
        ingest_lines += 1;
    }
    assert!(
        ingest_lines >= 2,
        "no ingest lines in worker B's log:\n{log}"
    );
}

#[test]
fn sigterm_finishes_or_requeues_the_running_job() {
    let mut reg = Registry::start(&["--workers", "0"]);
    let c = reg.client();

    // A job shorter than the grace period is finished before the worker exits.
    let mut w = reg.worker(
        "short",
        &["--workers", "1", "--shutdown-grace-seconds", "30"],
        &[("PEDIGREE_INGEST_DELAY_MS", "2000")],
    );
    let m1 = reg.push(1);
    reg.wait_holding(&w);
    w.signal(libc::SIGTERM);
    let (code, took) = w.wait_exit(Duration::from_secs(30));
    assert_eq!(code, Some(0), "{}", w.log_text());
    assert!(took < Duration::from_secs(30), "{took:?}");
    eprintln!("figure: SIGTERM mid-job (2 s hold, 30 s grace): exited 0 after {took:?}");
    let jobs = reg.jobs();
    assert_eq!(jobs[0].1, "done", "{jobs:?}");
    assert_eq!(c.status(&m1).unwrap().state, "approved");

    // A job longer than the grace period goes back to the queue, its attempt not counted.
    let mut w = reg.worker(
        "long",
        &["--workers", "1", "--shutdown-grace-seconds", "1"],
        &[("PEDIGREE_INGEST_DELAY_MS", "60000")],
    );
    let m2 = reg.push(2);
    reg.wait_holding(&w);
    w.signal(libc::SIGTERM);
    let (code, took) = w.wait_exit(Duration::from_secs(15));
    assert_eq!(code, Some(0), "{}", w.log_text());
    // The grace (1 s) plus the release and the runtime's own 1 s shutdown bound.
    assert!(took < Duration::from_secs(5), "took {took:?}");
    eprintln!(
        "figure: SIGTERM mid-job (60 s hold, 1 s grace): job requeued, exited 0 after {took:?}"
    );
    let jobs = reg.jobs();
    assert_eq!(
        (jobs[1].1.as_str(), jobs[1].2, jobs[1].3.clone()),
        ("queued", 0, None),
        "{jobs:?}"
    );
    assert_eq!(c.status(&m2).unwrap().state, "quarantined");

    // Another worker takes it at once (no lease to wait out) and finishes it.
    let _w = reg.worker("next", &["--workers", "1"], &[]);
    let s = c.wait_decided(&m2, TIMEOUT).unwrap();
    assert_eq!(s.state, "approved");
    assert_eq!(reg.jobs()[1].2, 1, "one counted attempt");

    // The API server also stops cleanly on SIGTERM.
    reg.server.signal(libc::SIGTERM);
    let (code, _) = reg.server.wait_exit(Duration::from_secs(40));
    assert_eq!(code, Some(0), "{}", reg.server.log_text());
}

/// A card-less fine-tune of `parent_dir`'s model: its tensors, the head nudged.
fn write_fine_tune(parent_dir: &Path, dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    let bytes = std::fs::read(parent_dir.join("model.safetensors")).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let mut owned: Vec<(String, Vec<usize>, Vec<u8>)> = Vec::new();
    for (name, view) in st.tensors() {
        let mut data = view.data().to_vec();
        if name == "head.weight" {
            for (i, c) in data.chunks_exact_mut(4).enumerate() {
                let v = f32::from_le_bytes(c.try_into().unwrap());
                let nudge = ((i * 7919 % 101) as f32 / 101.0 - 0.5) * 0.01;
                c.copy_from_slice(&(v + nudge).to_le_bytes());
            }
        }
        owned.push((name, view.shape().to_vec(), data));
    }
    let views: Vec<(String, safetensors::tensor::TensorView)> = owned
        .iter()
        .map(|(n, shape, b)| {
            (
                n.clone(),
                safetensors::tensor::TensorView::new(safetensors::Dtype::F32, shape.clone(), b)
                    .unwrap(),
            )
        })
        .collect();
    std::fs::write(
        dir.join("model.safetensors"),
        safetensors::tensor::serialize(views, None).unwrap(),
    )
    .unwrap();
    std::fs::write(
        dir.join("README.md"),
        "---\nlicense: apache-2.0\ndatasets:\n- acme/transactions-2024\n---\n# A model\n\nNo base declared.\n",
    )
    .unwrap();
}

#[test]
fn a_worker_infers_lineage_from_models_other_workers_ingested() {
    let reg = Registry::start(&["--workers", "0"]);
    let c = reg.client();
    // Worker B (slow: each job held 6 s) ingests a first model, which builds its lineage index.
    let b = reg.worker(
        "b",
        &["--workers", "1"],
        &[("PEDIGREE_INGEST_DELAY_MS", "6000")],
    );
    let b_owner = format!("{}-0", b.pid());
    let x = reg.push(1);
    assert_eq!(c.wait_decided(&x, TIMEOUT).unwrap().state, "approved");
    // While B is busy with another job, worker A ingests the future parent, then stops.
    let _y = reg.push(3);
    reg.wait_holding(&b);
    let mut a = reg.worker("a", &["--workers", "1"], &[]);
    let parent = reg.push(2);
    assert_eq!(c.wait_decided(&parent, TIMEOUT).unwrap().state, "approved");
    let jobs = reg.jobs();
    assert_eq!(
        (jobs[1].1.as_str(), jobs[1].3.as_deref()),
        ("running", Some(b_owner.as_str())),
        "worker B must still be busy while A ingests the parent (else B saw it itself): {jobs:?}"
    );
    a.signal(libc::SIGTERM);
    assert_eq!(a.wait_exit(Duration::from_secs(30)).0, Some(0));
    // B, the only worker left, ingests a card-less fine-tune of that parent: the weights must
    // find it, though B's index was built before the parent existed.
    let child_dir = reg.tmp.path().join("child");
    write_fine_tune(&reg.tmp.path().join("model-2"), &child_dir);
    let child = ModelRef::parse("acme/child:1.0").unwrap();
    c.push(&child_dir, &child).expect("push child");
    let s = c.wait_decided(&child, TIMEOUT).unwrap();
    let parents: Vec<&str> = s
        .lineage
        .iter()
        .filter(|e| e.child.as_deref() == Some("acme/child:1.0") && e.source == "inferred")
        .filter_map(|e| e.parent.as_deref())
        .collect();
    assert_eq!(
        parents,
        ["acme/model-2:1.0"],
        "worker B must see the parent worker A ingested: {:?}\n{}",
        s.lineage,
        b.log_text()
    );
}

#[test]
fn readiness_and_metrics() {
    let reg = Registry::start(&["--workers", "1"]);
    let (s, body) = get(&format!("{}/readyz", reg.url));
    assert_eq!((s, body.as_str()), (200, "ready\n"));
    let models: Vec<ModelRef> = (1..=3).map(|i| reg.push(i)).collect();
    for m in &models {
        assert_eq!(
            reg.client().wait_decided(m, TIMEOUT).unwrap().state,
            "approved"
        );
    }

    // The worker counts a job just after committing it, so a client can see the decision a
    // moment before the counter moves: scrape until it has.
    let (mut text, mut m);
    let t = Instant::now();
    loop {
        let (s, body) = get(&format!("{}/metrics", reg.url));
        assert_eq!(s, 200);
        text = body;
        m = parse_metrics(&text);
        let finished = m.samples.iter().any(|s| {
            s.metric == "pedigree_ingest_jobs_finished_total"
                && matches!(s.value, prometheus_parse::Value::Counter(v) | prometheus_parse::Value::Untyped(v) if v == 3.0)
        });
        if finished || t.elapsed() > Duration::from_secs(10) {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(value(&m, "pedigree_pushes_total", &[]), 3.0, "{text}");
    // Each distinct file is uploaded once: three weights, three cards, and one config.json
    // (the same bytes in every model, so the second and third push find it on the server).
    let mut distinct = std::collections::BTreeMap::new();
    for i in 1..=3 {
        for e in std::fs::read_dir(reg.tmp.path().join(format!("model-{i}"))).unwrap() {
            let bytes = std::fs::read(e.unwrap().path()).unwrap();
            distinct.insert(bytes.clone(), bytes.len() as u64);
        }
    }
    assert_eq!(distinct.len(), 7);
    assert_eq!(value(&m, "pedigree_uploads_total", &[]), 7.0, "{text}");
    assert_eq!(
        value(&m, "pedigree_upload_bytes_total", &[]),
        distinct.values().sum::<u64>() as f64,
        "{text}"
    );
    assert_eq!(value(&m, "pedigree_jobs", &[("state", "done")]), 3.0);
    assert_eq!(value(&m, "pedigree_jobs", &[("state", "queued")]), 0.0);
    assert_eq!(
        value(
            &m,
            "pedigree_ingest_jobs_finished_total",
            &[("outcome", "done")]
        ),
        3.0
    );
    // Requests are counted by route template, never by the path that names the model.
    let creates: f64 = m
        .samples
        .iter()
        .filter(|s| {
            s.metric == "pedigree_http_requests_total"
                && s.labels.get("method") == Some("POST")
                && s.labels.get("route") == Some("/v1/models/:ns/:name/versions")
                && s.labels.get("status").is_some_and(|c| c.starts_with('2'))
        })
        .map(|s| match s.value {
            prometheus_parse::Value::Counter(v) | prometheus_parse::Value::Untyped(v) => v,
            _ => 0.0,
        })
        .sum();
    assert_eq!(creates, 3.0, "{text}");
    assert!(
        !text.contains("model-1"),
        "a model name leaked into the metrics: {text}"
    );
    assert!(
        text.contains("pedigree_ingest_duration_seconds_count 3"),
        "{text}"
    );
    assert!(
        text.contains("pedigree_scan_duration_seconds_count 3"),
        "{text}"
    );

    // A worker serves the same probes on its own address.
    let (_w, wurl) = reg.worker_with_url("w", &["--listen", "127.0.0.1:0"], &[]);
    let wurl = wurl.expect("the worker printed its address");
    assert_eq!(get(&format!("{wurl}/healthz")), (200, "ok".to_string()));
    assert_eq!(get(&format!("{wurl}/readyz")).0, 200);
    let (s, wtext) = get(&format!("{wurl}/metrics"));
    assert_eq!(s, 200);
    let wm = parse_metrics(&wtext);
    // Registry-wide gauges agree; this process pushed nothing.
    assert_eq!(
        value(&wm, "pedigree_jobs", &[("state", "done")]),
        3.0,
        "{wtext}"
    );
    assert_eq!(value(&wm, "pedigree_pushes_total", &[]), 0.0, "{wtext}");

    // The blob directory removed: not ready, naming the blob store; back: ready.
    let blobs = reg.data.join("blobs");
    let moved = reg.data.join("blobs.away");
    std::fs::rename(&blobs, &moved).unwrap();
    let (s, body) = get(&format!("{}/readyz", reg.url));
    assert_eq!(s, 503, "{body}");
    assert!(body.contains("blob store"), "{body}");
    std::fs::rename(&moved, &blobs).unwrap();
    assert_eq!(get(&format!("{}/readyz", reg.url)).0, 200);

    // The database file gone from its path: not ready, naming it.
    let db = reg.data.join("registry.db");
    let moved = reg.data.join("registry.db.away");
    std::fs::rename(&db, &moved).unwrap();
    let (s, body) = get(&format!("{}/readyz", reg.url));
    assert_eq!(s, 503, "{body}");
    assert!(body.contains("database file"), "{body}");
    std::fs::rename(&moved, &db).unwrap();
    assert_eq!(get(&format!("{}/readyz", reg.url)).0, 200);
}

fn parse_metrics(text: &str) -> prometheus_parse::Scrape {
    prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_string())))
        .unwrap_or_else(|e| panic!("/metrics is not Prometheus text: {e}\n{text}"))
}

/// The value of the sample `name` whose labels include `labels`; panics if there is none.
fn value(m: &prometheus_parse::Scrape, name: &str, labels: &[(&str, &str)]) -> f64 {
    let s = m
        .samples
        .iter()
        .find(|s| s.metric == name && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
        .unwrap_or_else(|| panic!("no sample {name} {labels:?}"));
    match s.value {
        prometheus_parse::Value::Counter(v)
        | prometheus_parse::Value::Gauge(v)
        | prometheus_parse::Value::Untyped(v) => v,
        ref other => panic!("{name} is not a plain value: {other:?}"),
    }
}

/// The command line reaches the settings: a flag beats `PEDIGREE_*`, which beats the file; an
/// unknown key in the file stops the server with a message naming it.
#[test]
fn config_file_environment_and_flags() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = tmp.path().join("registry.toml");
    let dir = |n: &str| tmp.path().join(n).to_str().unwrap().to_string();
    std::fs::write(
        &cfg,
        format!(
            "data_dir = {:?}\nlisten = \"127.0.0.1:0\"\nworkers = 0\n",
            dir("from-file")
        ),
    )
    .unwrap();
    let data_dir_of = |args: &[&str], env: &[(&str, &str)], name: &str| -> String {
        let mut a = vec!["serve", "--config", cfg.to_str().unwrap()];
        a.extend_from_slice(args);
        let mut p = Proc::spawn(&a, env, tmp.path().join(format!("{name}.log")));
        let d = p.wait_line("data in ");
        p.wait_line("listening on ");
        p.signal(libc::SIGTERM);
        assert_eq!(p.wait_exit(Duration::from_secs(40)).0, Some(0));
        d
    };
    assert_eq!(data_dir_of(&[], &[], "file"), dir("from-file"));
    let from_env = dir("from-env");
    let env = [("PEDIGREE_DATA_DIR", from_env.as_str())];
    assert_eq!(data_dir_of(&[], &env, "env"), from_env);
    let flag = dir("from-flag");
    assert_eq!(data_dir_of(&["--data-dir", &flag], &env, "flag"), flag);

    std::fs::write(&cfg, "listen = \"127.0.0.1:0\"\nworker_count = 3\n").unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_pedigree"))
        .args(["serve", "--config", cfg.to_str().unwrap()])
        .env_remove("PEDIGREE_DATA_DIR")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_ne!(o.status.code(), Some(0), "{err}");
    assert!(
        err.contains("worker_count") && err.contains("registry.toml"),
        "{err}"
    );
}
