//! Fault test: the PostgreSQL server restarts while a worker is in the middle of an ingest.
//! The API and the worker keep running, their connection pools reconnect, the interrupted job
//! is redone once its lease runs out, and the version ends in exactly one correct state (one
//! `done` job, one decision in the audit log). `/readyz` reports the outage and then recovers.
//!
//! It restarts the local cluster that `scripts/setup-postgres.sh` set up (`pg_ctlcluster`, as
//! root or through `sudo -n`), so it lives alone in this test binary: cargo runs test binaries
//! one after another, and no other test shares the server while it restarts.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use pedigree_registry::client::{Client, ModelRef};
use pedigree_registry::store::testdb::{Engine, TestDb};

mod support;
use support::Proc;

fn write_model(dir: &Path) {
    let w = support::xorshift_floats(0x1234_5678_9abc_def1, 64 * 64);
    support::write_model(
        dir,
        &[("w", vec![64, 64], w)],
        "---\nlicense: apache-2.0\ndatasets:\n- acme/transactions-2024\n---\n# m\n\nFault test.\n",
        None,
    );
}

/// `pg_ctlcluster VERSION main restart`, as root or through `sudo -n`.
fn restart_postgres() -> Duration {
    let out = Command::new("pg_lsclusters")
        .arg("-h")
        .output()
        .expect("pg_lsclusters (PostgreSQL is set up by `bash scripts/setup.sh`)");
    let list = String::from_utf8_lossy(&out.stdout).to_string();
    let version = list
        .lines()
        .find(|l| l.split_whitespace().nth(1) == Some("main"))
        .and_then(|l| l.split_whitespace().next())
        .unwrap_or_else(|| panic!("no `main` cluster in pg_lsclusters: {list}"))
        .to_string();
    let root = unsafe { libc::geteuid() } == 0;
    let mut cmd = if root {
        Command::new("pg_ctlcluster")
    } else {
        let mut c = Command::new("sudo");
        c.args(["-n", "pg_ctlcluster"]);
        c
    };
    let t = Instant::now();
    let st = cmd
        .args([&version, "main", "restart", "-m", "fast"])
        .status()
        .expect("run pg_ctlcluster");
    assert!(
        st.success(),
        "restarting PostgreSQL {version}/main failed ({st}); this test needs root or sudo"
    );
    t.elapsed()
}

fn readyz(url: &str) -> u16 {
    reqwest::blocking::Client::new()
        .get(format!("{url}/readyz"))
        .timeout(Duration::from_secs(20))
        .send()
        .map(|r| r.status().as_u16())
        .unwrap_or(0)
}

fn db_jobs(url: &str) -> Vec<(String, i64)> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(async {
            use sqlx::Row;
            sqlx::any::install_default_drivers();
            let pool = sqlx::AnyPool::connect(url).await.unwrap();
            let rows = sqlx::query("SELECT state, attempts FROM jobs ORDER BY id")
                .fetch_all(&pool)
                .await
                .unwrap();
            let out = rows
                .iter()
                .map(|r| (r.get::<String, _>(0), r.get::<i64, _>(1)))
                .collect();
            pool.close().await;
            out
        })
}

#[test]
fn postgres_restart_mid_ingest_loses_nothing() {
    let db = TestDb::new(Engine::Postgres);
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let d = data.to_str().unwrap();
    let mut api = Proc::spawn(
        &[
            "serve",
            "--data-dir",
            d,
            "--database-url",
            db.url(),
            "--workers",
            "0",
            "--listen",
            "127.0.0.1:0",
        ],
        &[],
        tmp.path().join("api.log"),
    );
    let admin = api.wait_line("admin token (shown once, stored only as a hash): ");
    let url = api.wait_line("listening on ");
    let mut worker = Proc::spawn(
        &[
            "worker",
            "--data-dir",
            d,
            "--database-url",
            db.url(),
            "--workers",
            "1",
            "--lease-seconds",
            "5",
        ],
        &[("PEDIGREE_INGEST_DELAY_MS", "3000")],
        tmp.path().join("worker.log"),
    );
    worker.wait_line("ingest worker(s)");
    assert_eq!(readyz(&url), 200);

    let dir = tmp.path().join("model");
    write_model(&dir);
    let m = ModelRef::parse("acme/m:1.0").unwrap();
    let c = Client::new(&url, Some(admin.clone())).unwrap();
    c.push(&dir, &m).expect("push");
    let deadline = Instant::now() + Duration::from_secs(60);
    while db_jobs(db.url()).first().map(|j| j.0.as_str()) != Some("running") {
        assert!(Instant::now() < deadline, "the worker never took the job");
        std::thread::sleep(Duration::from_millis(50));
    }

    // The server goes away mid-job (the worker is holding it before its analysis).
    let took = restart_postgres();
    eprintln!("figure: PostgreSQL restarted in {took:?}");

    let s = c
        .wait_decided(&m, Duration::from_secs(180))
        .unwrap_or_else(|e| {
            panic!(
                "never decided after the restart: {e}\nworker log:\n{}",
                std::fs::read_to_string(tmp.path().join("worker.log")).unwrap_or_default()
            )
        });
    assert_eq!(s.state, "approved", "{s:?}");
    let jobs = db_jobs(db.url());
    assert_eq!(jobs.len(), 1, "{jobs:?}");
    assert_eq!(jobs[0].0, "done", "{jobs:?}");
    eprintln!("figure: the job ended done after {} attempt(s)", jobs[0].1);
    assert_eq!(readyz(&url), 200, "the API's pool reconnected");
    let audit: serde_json::Value = reqwest::blocking::Client::new()
        .get(format!("{url}/v1/audit?limit=1000"))
        .bearer_auth(&admin)
        .send()
        .unwrap()
        .json()
        .unwrap();
    let decides = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "version.decide" && e["subject"] == "acme/m:1.0")
        .count();
    assert_eq!(decides, 1, "{audit}");
    drop(worker);
    drop(api);
}
