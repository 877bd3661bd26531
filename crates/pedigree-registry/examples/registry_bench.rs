//! Cascade benchmark on a synthetic registry the size of the Hugging Face model tree.
//!
//! Builds (once, cached in the data dir) a SQLite registry of `--models` versions (default 1M)
//! in lineage families: one family of `--family` descendants (default 100k) under one base,
//! shaped like the hub (a base with many fine-tunes, quantisations of those, apps on top), and
//! the rest in small families. Then times, over `--runs` runs (medians reported):
//!   * loading the lineage graph from the database (a server pays this once at start);
//!   * computing the affected set of the big family's base (the in-memory graph walk);
//!   * the same set with a recursive SQL query (what a naive design would do), for comparison;
//!   * committing the flag: `MetaStore::flag`, the whole cascade in one transaction;
//!   * withdrawing it again (so the next run starts clean).
//!
//! The registry lives in SQLite under DATA_DIR, or with `--pg URL` on a PostgreSQL server: URL
//! names the server (any database on it, e.g. `postgres://pedigree:pedigree@127.0.0.1/postgres`)
//! and the bench creates and reuses the database `pdg_bench_<models>_<family>` there.
//! The last line printed is `RESULT engine=… load=… affected=… sql=… commit=… withdraw=…`
//! (milliseconds), which `bench/registry/run.sh` collects to print both engines side by side.
//!
//! Usage: cargo run --release -p pedigree-registry --example registry_bench -- DATA_DIR [--models N] [--family N] [--runs N] [--pg URL]

use std::time::Instant;

use pedigree_registry::cascade::LineageGraph;
use pedigree_registry::store::sql::{Backend, SqlStore, redact_url};
use pedigree_registry::store::{AdvisoryRecord, MetaStore};
use serde_json::json;
use sqlx::Row;

fn arg(args: &[String], name: &str, default: usize) -> usize {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

/// Parent of each version id (1-based), `0` for roots. Deterministic.
fn synthetic_parents(models: usize, family: usize) -> Vec<i64> {
    let mut parent = vec![0i64; models + 1];
    // The big family: ids 1..=family+1, root 1. Level sizes grow like the hub: 200 fine-tunes
    // of the base, each with ~20 derivatives (quantised, merged, further tuned), each of those
    // with a few apps.
    let mut next = 2usize;
    let mut frontier = vec![1usize];
    let fanouts = [200usize, 20, 25, 1000];
    'outer: for &f in &fanouts {
        let mut new_frontier = Vec::new();
        for &p in &frontier {
            for _ in 0..f {
                if next > family + 1 {
                    break 'outer;
                }
                parent[next] = p as i64;
                new_frontier.push(next);
                next += 1;
            }
        }
        frontier = new_frontier;
    }
    // Everything else: small families of 1..=64 models, each a base with a chain/fan of children.
    let mut x: u64 = 0x9e3779b97f4a7c15;
    while next <= models {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let size = 1 + (x % 64) as usize;
        let root = next;
        next += 1;
        for k in 1..size {
            if next > models {
                break;
            }
            parent[next] = if k % 3 == 0 {
                (next - 1) as i64
            } else {
                root as i64
            };
            next += 1;
        }
    }
    parent
}

async fn build(store: &SqlStore, models: usize, family: usize) -> anyhow::Result<()> {
    let pool = store.pool();
    let n: i64 = sqlx::query("SELECT COUNT(*) AS n FROM versions")
        .fetch_one(pool)
        .await?
        .try_get("n")?;
    if n as usize == models {
        println!("registry already built: {n} versions");
        return Ok(());
    }
    anyhow::ensure!(
        n == 0,
        "data dir holds a different registry ({n} versions); use a fresh one"
    );
    let t = Instant::now();
    let parent = synthetic_parents(models, family);
    let pg = store.backend() == Backend::Postgres;
    let mut conn = pool.acquire().await?;
    if !pg {
        sqlx::query("PRAGMA synchronous=OFF")
            .execute(&mut *conn)
            .await?; // bulk load only
    }
    let mut tx = sqlx::Connection::begin(&mut *conn).await?;
    for chunk_start in (1..=models).step_by(5000) {
        let end = (chunk_start + 5000).min(models + 1);
        let mut q = String::from("INSERT INTO models (id, namespace, name, created_at) VALUES ");
        let mut qv = String::from(
            "INSERT INTO versions (id, model_id, version, state, publisher, created_at, identity) VALUES ",
        );
        for i in chunk_start..end {
            if i > chunk_start {
                q.push(',');
                qv.push(',');
            }
            q.push_str(&format!("({i}, 'ns{}', 'model-{i}', 0)", i % 5000));
            qv.push_str(&format!(
                "({i}, {i}, '1.0', 'approved', 'bench', {i}, 'sha256:{i:064x}')"
            ));
        }
        sqlx::query(&q).execute(&mut *tx).await?;
        sqlx::query(&qv).execute(&mut *tx).await?;
        let mut qe = String::from(
            "INSERT INTO lineage_edges (parent, child, source, relation, confidence, evidence) VALUES ",
        );
        let mut any = false;
        for i in chunk_start..end {
            if parent[i] != 0 {
                if any {
                    qe.push(',');
                }
                any = true;
                qe.push_str(&format!(
                    "({}, {i}, 'inferred', 'finetune', 0.9, '{{}}')",
                    parent[i]
                ));
            }
        }
        if any {
            sqlx::query(&qe).execute(&mut *tx).await?;
        }
    }
    // Deployments: one per 100 versions.
    for chunk_start in (1..=models).step_by(100 * 5000) {
        let mut q = String::from(
            "INSERT INTO deployments (name, environment, version_id, updated_at) VALUES ",
        );
        let mut first = true;
        for i in (chunk_start..(chunk_start + 100 * 5000).min(models + 1)).step_by(100) {
            if !first {
                q.push(',');
            }
            first = false;
            q.push_str(&format!("('svc-{i}', 'prod', {i}, 0)"));
        }
        sqlx::query(&q).execute(&mut *tx).await?;
    }
    if pg {
        // The ids above were written explicitly, past the sequences: move them on so later
        // inserts (the flag's audit entries do not need it, but the registry would) stay unique.
        for (table, col) in [
            ("models", "id"),
            ("versions", "id"),
            ("lineage_edges", "rowid_"),
        ] {
            sqlx::query(&format!(
                "SELECT setval(pg_get_serial_sequence('{table}', '{col}'), \
                 (SELECT MAX({col}) FROM {table}))"
            ))
            .execute(&mut *tx)
            .await?;
        }
    }
    tx.commit().await?;
    if pg {
        // Planner statistics now rather than whenever autovacuum gets to it: the recursive
        // query's plan depends on them.
        sqlx::query("ANALYZE").execute(&mut *conn).await?;
    } else {
        sqlx::query("PRAGMA synchronous=FULL")
            .execute(&mut *conn)
            .await?;
    }
    println!(
        "built {models} versions, family of {family} descendants, in {:.1} s",
        t.elapsed().as_secs_f64()
    );
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let dir = std::path::PathBuf::from(args.get(1).expect("DATA_DIR"));
    let models = arg(&args, "--models", 1_000_000);
    let family = arg(&args, "--family", 100_000);
    let runs = arg(&args, "--runs", 5);
    let pg = args
        .iter()
        .position(|a| a == "--pg")
        .and_then(|i| args.get(i + 1));
    std::fs::create_dir_all(&dir)?;
    let url = match pg {
        Some(server) => pg_bench_database(server, &format!("pdg_bench_{models}_{family}")).await?,
        None => format!("sqlite://{}", dir.join("registry.db").display()),
    };
    let store = SqlStore::connect(&url).await?;
    let engine = match store.backend() {
        Backend::Sqlite => "sqlite",
        Backend::Postgres => "postgres",
    };
    println!("engine: {engine} ({})", redact_url(&url));
    build(&store, models, family).await?;

    let (mut load, mut walk, mut cte, mut commit, mut withdraw) =
        (vec![], vec![], vec![], vec![], vec![]);
    let mut affected_n = 0;
    for run in 0..runs {
        // Graph load: what a server does at start (and then grows incrementally).
        let t = Instant::now();
        let mut g = LineageGraph::new();
        let rows = sqlx::query(
            "SELECT rowid_, parent, child, confidence FROM lineage_edges ORDER BY rowid_",
        )
        .fetch_all(store.pool())
        .await?;
        for r in &rows {
            let c: f64 = r.try_get("confidence")?;
            g.add_edge(r.try_get("parent")?, r.try_get("child")?, c as f32);
            g.set_high_water(r.try_get("rowid_")?);
        }
        load.push(t.elapsed().as_secs_f64() * 1e3);

        let t = Instant::now();
        let a = g.affected(&[1], 0.6);
        walk.push(t.elapsed().as_secs_f64() * 1e3);
        affected_n = a.len();

        let t = Instant::now();
        let n: i64 = sqlx::query(
            "WITH RECURSIVE d(v) AS (SELECT CAST(1 AS BIGINT) UNION SELECT e.child FROM lineage_edges e JOIN d ON e.parent = d.v \
             WHERE e.confidence >= 0.6) SELECT COUNT(*) - 1 AS n FROM d",
        )
        .fetch_one(store.pool())
        .await?
        .try_get("n")?;
        cte.push(t.elapsed().as_secs_f64() * 1e3);
        anyhow::ensure!(
            n as usize == affected_n,
            "SQL walk found {n}, graph walk {affected_n}"
        );

        let adv = AdvisoryRecord {
            id: format!("BENCH-{run}"),
            severity: "critical".into(),
            summary: "bench".into(),
            trigger: None,
            source: "local".into(),
            body: json!({}),
            created_at: 0,
            withdrawn_at: None,
            withdrawn_reason: None,
        };
        // The store's own cached graph is warm after the first run, as in a running server.
        let t = Instant::now();
        let r = store.flag(&adv, &[1], 0.6, "bench").await?;
        commit.push(t.elapsed().as_secs_f64() * 1e3);
        anyhow::ensure!(
            r.at_risk.len() == affected_n,
            "flag marked {} of {affected_n}",
            r.at_risk.len()
        );
        let t = Instant::now();
        store.unflag(&adv.id, "benchmark cleanup", "bench").await?;
        withdraw.push(t.elapsed().as_secs_f64() * 1e3);
        println!(
            "run {run}: load {:.0} ms, affected {:.1} ms, recursive SQL {:.0} ms, flag commit {:.0} ms, withdraw {:.0} ms",
            load[run], walk[run], cte[run], commit[run], withdraw[run]
        );
    }
    let (load, walk, cte, commit, withdraw) = (
        median(load),
        median(walk),
        median(cte),
        median(commit),
        median(withdraw),
    );
    println!(
        "\nmedians over {runs} runs ({models} versions, {affected_n} descendants affected, {engine}):\n  \
         graph load {load:.0} ms | affected set {walk:.1} ms (target < 50) | recursive SQL {cte:.0} ms | \
         flag commit {commit:.0} ms (target < 1000) | withdraw {withdraw:.0} ms"
    );
    println!(
        "RESULT engine={engine} load={load:.0} affected={walk:.1} sql={cte:.0} commit={commit:.0} withdraw={withdraw:.0}"
    );
    Ok(())
}

/// Create database `name` on the PostgreSQL server `server` unless it exists; its URL.
async fn pg_bench_database(server: &str, name: &str) -> anyhow::Result<String> {
    use sqlx::Connection;
    let mut c = sqlx::PgConnection::connect(server)
        .await
        .map_err(|e| anyhow::anyhow!("PostgreSQL at {}: {e}", redact_url(server)))?;
    let exists = sqlx::query("SELECT 1 FROM pg_database WHERE datname = $1")
        .bind(name)
        .fetch_optional(&mut c)
        .await?
        .is_some();
    if !exists {
        sqlx::raw_sql(&format!("CREATE DATABASE \"{name}\""))
            .execute(&mut c)
            .await?;
    }
    let (base, query) = match server.split_once('?') {
        Some((b, q)) => (b, format!("?{q}")),
        None => (server, String::new()),
    };
    let host_end = base
        .rfind('/')
        .filter(|&i| i > base.find("://").map_or(0, |j| j + 2));
    let base = host_end.map_or(base, |i| &base[..i]);
    Ok(format!("{base}/{name}{query}"))
}
