//! Running the registry in production: the ingest worker pool both `pedigree serve` and
//! `pedigree worker` start, readiness (`/readyz`), Prometheus metrics (`/metrics`), HTTP
//! request accounting, structured logs, and graceful shutdown on SIGTERM / Ctrl-C.
//!
//! `/metrics` carries no authentication: it exposes only aggregate counts, durations and route
//! templates (`/v1/models/:ns/:name/versions`), never a model name, token or path. An operator
//! who does not want even those on the public address sets `metrics_listen` to a private one,
//! which also removes `/metrics` from the API listener. `/healthz` and `/readyz` are likewise
//! open, as load balancers and orchestrators probe them without credentials.
//!
//! Route labels use the `:param` form (`/v1/models/:ns/:name/versions`).
//!
//! Job gauges are read from the shared database at scrape time, so every process reports the
//! same registry-wide numbers: aggregate them with `max`, not `sum`. Counters and histograms
//! are per process: `sum` those.

use std::future::IntoFuture;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use anyhow::Context;
use axum::Router;
use axum::body::Body;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use futures::StreamExt;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use tokio::sync::{Notify, RwLock};
use tokio::task::JoinHandle;

use crate::blob::BlobStore;
use crate::config::LogFormat;
use crate::ingest::{Ingestor, Shutdown};
use crate::policy::Policy;
use crate::server::Config;
use crate::store::MetaStore;

// ------------------------------------------------------------------------------------ metrics

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HttpLabels {
    method: String,
    route: String,
    status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabels {
    state: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: String,
}

pub struct Metrics {
    registry: Registry,
    jobs: Family<StateLabels, Gauge>,
    advisories_active: Gauge,
    pub jobs_started: Counter,
    jobs_finished: Family<OutcomeLabels, Counter>,
    ingest_seconds: Histogram,
    scan_seconds: Histogram,
    uploads: Counter,
    upload_bytes: Counter,
    pushes: Counter,
    advisory_flags: Counter,
    http_requests: Family<HttpLabels, Counter>,
    http_seconds: Family<RouteLabels, Histogram>,
}

fn http_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 4.0, 9))
}

impl Metrics {
    fn new() -> Metrics {
        let mut r = Registry::default();
        let m = Metrics {
            jobs: Family::default(),
            advisories_active: Gauge::default(),
            jobs_started: Counter::default(),
            jobs_finished: Family::default(),
            // 50 ms .. ~7 min: a small card-only model to a multi-GB checkpoint.
            ingest_seconds: Histogram::new(exponential_buckets(0.05, 2.0, 14)),
            scan_seconds: Histogram::new(exponential_buckets(0.05, 2.0, 14)),
            uploads: Counter::default(),
            upload_bytes: Counter::default(),
            pushes: Counter::default(),
            advisory_flags: Counter::default(),
            http_requests: Family::default(),
            http_seconds: Family::new_with_constructor(http_histogram),
            registry: Registry::default(),
        };
        r.register(
            "pedigree_jobs",
            "Ingest jobs by state, registry-wide (read from the database at scrape time)",
            m.jobs.clone(),
        );
        r.register(
            "pedigree_advisories_active",
            "Advisories not withdrawn, registry-wide",
            m.advisories_active.clone(),
        );
        r.register(
            "pedigree_ingest_jobs_started",
            "Ingest jobs this process claimed",
            m.jobs_started.clone(),
        );
        r.register(
            "pedigree_ingest_jobs_finished",
            "Ingest jobs this process ended, by outcome (done, failed, released)",
            m.jobs_finished.clone(),
        );
        r.register(
            "pedigree_ingest_duration_seconds",
            "Wall time of an ingest job, claim to commit",
            m.ingest_seconds.clone(),
        );
        r.register(
            "pedigree_scan_duration_seconds",
            "Wall time of a version's analysis (scan, identity, fingerprint, BOM, signature)",
            m.scan_seconds.clone(),
        );
        r.register(
            "pedigree_uploads",
            "Blob uploads accepted (whole-blob PUTs and finished chunked uploads)",
            m.uploads.clone(),
        );
        r.register(
            "pedigree_upload_bytes",
            "Request body bytes of accepted blob uploads and upload chunks",
            m.upload_bytes.clone(),
        );
        r.register(
            "pedigree_pushes",
            "Versions created (pushes accepted into quarantine)",
            m.pushes.clone(),
        );
        r.register(
            "pedigree_advisory_flags",
            "Flag requests accepted (advisories raised or extended)",
            m.advisory_flags.clone(),
        );
        r.register(
            "pedigree_http_requests",
            "HTTP requests by method, route template and status",
            m.http_requests.clone(),
        );
        r.register(
            "pedigree_http_request_duration_seconds",
            "HTTP request handling time by route template",
            m.http_seconds.clone(),
        );
        Metrics { registry: r, ..m }
    }

    pub fn job_finished(&self, outcome: &str, took: Duration) {
        self.jobs_finished
            .get_or_create(&OutcomeLabels {
                outcome: outcome.into(),
            })
            .inc();
        self.ingest_seconds.observe(took.as_secs_f64());
    }

    /// Read the registry-wide gauges from the store, then render the text exposition format.
    pub async fn render(&self, store: &dyn MetaStore) -> String {
        match store.job_counts().await {
            Ok(counts) => {
                for state in ["queued", "running", "done", "failed"] {
                    let n = counts.iter().find(|(s, _)| s == state).map_or(0, |c| c.1);
                    self.jobs
                        .get_or_create(&StateLabels {
                            state: state.into(),
                        })
                        .set(n);
                }
            }
            Err(e) => tracing::warn!("metrics: reading job counts: {e}"),
        }
        match store.advisories().await {
            Ok(a) => {
                let n = a.iter().filter(|a| a.withdrawn_at.is_none()).count();
                self.advisories_active.set(n as i64);
            }
            Err(e) => tracing::warn!("metrics: reading advisories: {e}"),
        }
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

/// The process-wide metrics.
pub fn metrics() -> &'static Metrics {
    static M: OnceLock<Metrics> = OnceLock::new();
    M.get_or_init(Metrics::new)
}

/// Times one analysis into `pedigree_scan_duration_seconds` when dropped (also on error).
pub struct ScanTimer(Instant);

impl ScanTimer {
    pub fn start() -> ScanTimer {
        ScanTimer(Instant::now())
    }
}

impl Drop for ScanTimer {
    fn drop(&mut self) {
        metrics()
            .scan_seconds
            .observe(self.0.elapsed().as_secs_f64());
    }
}

/// Middleware: count and time every request by its route template (never the raw path, which
/// would carry model names and grow without bound), and account upload bytes as they stream.
pub async fn track_http(req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "unmatched".into());
    let label = route_label(&route);
    let method = req.method().clone();
    let is_upload_body = (method == Method::PUT && route == "/v1/blobs/{digest}")
        || (method == Method::PATCH && route == "/v1/uploads/{id}");
    let counted = Arc::new(AtomicU64::new(0));
    let req = if is_upload_body {
        let (parts, body) = req.into_parts();
        let c = counted.clone();
        let stream = body.into_data_stream().inspect(move |chunk| {
            if let Ok(b) = chunk {
                c.fetch_add(b.len() as u64, Ordering::Relaxed);
            }
        });
        Request::from_parts(parts, Body::from_stream(stream))
    } else {
        req
    };
    let started = Instant::now();
    let resp = next.run(req).await;
    let status = resp.status();
    let m = metrics();
    m.http_requests
        .get_or_create(&HttpLabels {
            method: method.to_string(),
            route: label.clone(),
            status: status.as_u16().to_string(),
        })
        .inc();
    m.http_seconds
        .get_or_create(&RouteLabels { route: label })
        .observe(started.elapsed().as_secs_f64());
    if status.is_success() {
        if is_upload_body {
            m.upload_bytes.inc_by(counted.load(Ordering::Relaxed));
        }
        match (&method, route.as_str()) {
            (&Method::PUT, "/v1/blobs/{digest}") | (&Method::PUT, "/v1/uploads/{id}") => {
                m.uploads.inc();
            }
            (&Method::POST, "/v1/models/{ns}/{name}/versions") => {
                m.pushes.inc();
            }
            (&Method::POST, "/v1/advisories") => {
                m.advisory_flags.inc();
            }
            _ => {}
        }
    }
    resp
}

/// A route template as a label value: `{ns}` becomes `:ns` (and `{*path}` `*path`). Braces
/// are legal inside a quoted label value, but common scrapers' and tools' parsers cut the
/// label set at the first `}`; the colon form reads the same and breaks none of them.
fn route_label(template: &str) -> String {
    template
        .replace("{*", "*")
        .replace('{', ":")
        .replace('}', "")
}

// ------------------------------------------------------------------------------------ readiness

/// What `/readyz` checks, shared by the API server and the worker.
#[derive(Clone)]
pub struct Probe {
    pub store: Arc<dyn MetaStore>,
    pub blobs: Arc<dyn BlobStore>,
    /// The SQLite file, when the store is one: pooled connections keep a deleted or replaced
    /// file open and go on answering, so the path itself is checked too.
    pub sqlite_file: Option<PathBuf>,
}

const CHECK_TIMEOUT: Duration = Duration::from_secs(5);

impl Probe {
    pub fn new(store: Arc<dyn MetaStore>, blobs: Arc<dyn BlobStore>, cfg: &Config) -> Probe {
        Probe {
            store,
            blobs,
            sqlite_file: sqlite_file(cfg),
        }
    }

    /// Ok, or the first reason this process cannot do its work.
    pub async fn check(&self) -> Result<(), String> {
        if let Some(p) = &self.sqlite_file {
            let p = p.clone();
            let r = tokio::task::spawn_blocking(move || {
                let m = std::fs::metadata(&p)
                    .map_err(|e| format!("database file {}: {e}", p.display()))?;
                if !m.is_file() {
                    return Err(format!("database file {} is not a file", p.display()));
                }
                std::fs::File::open(&p)
                    .map(|_| ())
                    .map_err(|e| format!("database file {}: {e}", p.display()))
            })
            .await
            .map_err(|e| format!("database file check: {e}"))?;
            r?;
        }
        match tokio::time::timeout(CHECK_TIMEOUT, self.store.readiness()).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(format!("metadata store: {e}")),
            Err(_) => {
                return Err(format!(
                    "metadata store: no answer within {CHECK_TIMEOUT:?}"
                ));
            }
        }
        match tokio::time::timeout(CHECK_TIMEOUT, self.blobs.check()).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(format!("blob store: {e}")),
            Err(_) => Err(format!("blob store: no answer within {CHECK_TIMEOUT:?}")),
        }
    }
}

/// The SQLite file a configuration uses, if it uses one.
pub fn sqlite_file(cfg: &Config) -> Option<PathBuf> {
    match &cfg.database_url {
        None => Some(cfg.data_dir.join("registry.db")),
        Some(u) => {
            let rest = u
                .strip_prefix("sqlite://")
                .or_else(|| u.strip_prefix("sqlite:"))?;
            let path = rest.split('?').next().unwrap_or(rest);
            (!path.is_empty() && path != ":memory:").then(|| PathBuf::from(path))
        }
    }
}

async fn readyz(State(p): State<Probe>) -> Response {
    match p.check().await {
        Ok(()) => (StatusCode::OK, "ready\n").into_response(),
        Err(reason) => {
            tracing::warn!("not ready: {reason}");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                format!("not ready: {reason}\n"),
            )
                .into_response()
        }
    }
}

async fn metrics_text(State(p): State<Probe>) -> Response {
    let body = metrics().render(&*p.store).await;
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        body,
    )
        .into_response()
}

/// `/readyz`, and `/metrics` when `with_metrics`.
pub fn probe_routes(p: Probe, with_metrics: bool) -> Router {
    let r = Router::new().route("/readyz", get(readyz));
    let r = if with_metrics {
        r.route("/metrics", get(metrics_text))
    } else {
        r
    };
    r.with_state(p)
}

/// `/healthz`, `/readyz` and `/metrics`: the worker's whole HTTP surface, and the separate
/// metrics listener's.
pub fn ops_routes(p: Probe) -> Router {
    probe_routes(p, true).route("/healthz", get(|| async { "ok" }))
}

// ------------------------------------------------------------------------------------ workers

/// The ingest tasks of one process, and how to stop them.
pub struct WorkerPool {
    handles: Vec<JoinHandle<()>>,
    shutdown: Shutdown,
}

/// Start `n` ingest tasks sharing one [`Ingestor`] (and so one lineage index). Lease owners
/// are `<pid>-<i>`, so a job row names the process holding it.
#[allow(clippy::too_many_arguments)]
pub fn spawn_workers(
    store: Arc<dyn MetaStore>,
    blobs: Arc<dyn BlobStore>,
    policy: Arc<RwLock<Policy>>,
    work_dir: PathBuf,
    notify: Arc<Notify>,
    n: usize,
    lease: Duration,
    shutdown: Shutdown,
) -> WorkerPool {
    let ing = Arc::new(Ingestor::new(store, blobs, policy, work_dir, notify).with_lease(lease));
    let handles = (0..n)
        .map(|i| {
            tokio::spawn(
                ing.clone()
                    .run(format!("{}-{i}", std::process::id()), shutdown.clone()),
            )
        })
        .collect();
    WorkerPool { handles, shutdown }
}

impl WorkerPool {
    /// Stop taking jobs; let running ones finish until `deadline`, then hand them back to the
    /// queue. Returns whether any job had to be handed back.
    pub async fn drain(self, deadline: tokio::time::Instant) -> bool {
        self.shutdown.stop.cancel();
        let mut all = futures::future::join_all(self.handles);
        if tokio::time::timeout_at(deadline, &mut all).await.is_ok() {
            return false;
        }
        tracing::warn!("shutdown grace over: returning running jobs to the queue");
        self.shutdown.abort.cancel();
        // Releasing is one UPDATE per job; bounded so a dead database cannot hold the exit.
        let _ = tokio::time::timeout(Duration::from_secs(10), all).await;
        true
    }
}

// ------------------------------------------------------------------------------------ shutdown

/// A future that resolves on SIGTERM or Ctrl-C (SIGINT). The handlers are installed when this
/// is called, not when the future is first polled: call it before announcing the process is up,
/// or a SIGTERM sent right after the announcement meets the default action and kills it.
pub fn shutdown_signal() -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) {
            (Ok(mut term), Ok(mut int)) => Box::pin(async move {
                tokio::select! {
                    _ = term.recv() => tracing::info!("SIGTERM: shutting down"),
                    _ = int.recv() => tracing::info!("interrupt: shutting down"),
                }
            }),
            (Err(e), _) | (_, Err(e)) => {
                tracing::warn!("cannot watch SIGTERM/SIGINT ({e}); only Ctrl-C stops this process");
                Box::pin(async {
                    let _ = tokio::signal::ctrl_c().await;
                })
            }
        }
    }
    #[cfg(not(unix))]
    {
        Box::pin(async {
            let _ = tokio::signal::ctrl_c().await;
        })
    }
}

/// Serve `app` on `listener` until shutdown, then the drain: the listener closes at once,
/// in-flight requests and running jobs get until the grace deadline.
pub async fn run_server(
    signal: impl std::future::Future<Output = ()>,
    app: Router,
    listener: tokio::net::TcpListener,
    metrics_listener: Option<tokio::net::TcpListener>,
    probe: Probe,
    pool: Option<WorkerPool>,
    grace: Duration,
) -> anyhow::Result<()> {
    let stop = tokio_util::sync::CancellationToken::new();
    let app = app.layer(axum::middleware::from_fn(track_http));
    let mut api = tokio::spawn(
        axum::serve(listener, app)
            .with_graceful_shutdown(stop.clone().cancelled_owned())
            .into_future(),
    );
    let mut side = metrics_listener.map(|l| {
        tokio::spawn(
            axum::serve(l, ops_routes(probe))
                .with_graceful_shutdown(stop.clone().cancelled_owned())
                .into_future(),
        )
    });
    tokio::select! {
        _ = signal => {}
        r = &mut api => {
            // The server stopped on its own: an error worth exiting non-zero for.
            return match r {
                Ok(Ok(())) => Err(anyhow::anyhow!("the HTTP server stopped unexpectedly")),
                Ok(Err(e)) => Err(anyhow::Error::from(e).context("HTTP server")),
                Err(e) => Err(anyhow::anyhow!("HTTP server task: {e}")),
            };
        }
    }
    let deadline = tokio::time::Instant::now() + grace;
    stop.cancel();
    let requeued = match pool {
        Some(p) => p.drain(deadline).await,
        None => false,
    };
    if tokio::time::timeout_at(deadline, &mut api).await.is_err() {
        tracing::warn!("shutdown grace over with HTTP requests still running; closing them");
        api.abort();
    }
    if let Some(s) = side.as_mut() {
        let _ = tokio::time::timeout_at(deadline, s).await;
    }
    tracing::info!(requeued, "stopped");
    Ok(())
}

/// `pedigree worker`: ingest workers only, against the configured stores, with `/healthz`,
/// `/readyz` and `/metrics` on `listen` when given.
pub async fn run_worker(cfg: Config, listen: Option<SocketAddr>) -> anyhow::Result<()> {
    let signal = shutdown_signal();
    let (store, blobs, policy) = crate::server::open_stores(&cfg).await?;
    let probe = Probe::new(store.clone(), blobs.clone(), &cfg);
    let n = cfg.workers.max(1);
    let pool = spawn_workers(
        store,
        blobs,
        Arc::new(RwLock::new(policy)),
        cfg.data_dir.join("work"),
        Arc::new(Notify::new()),
        n,
        cfg.lease,
        Shutdown::default(),
    );
    let stop = tokio_util::sync::CancellationToken::new();
    let http = match listen {
        Some(addr) => {
            let l = tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("binding {addr}"))?;
            println!("pedigree worker: listening on http://{}", l.local_addr()?);
            let app = ops_routes(probe).layer(axum::middleware::from_fn(track_http));
            Some(tokio::spawn(
                axum::serve(l, app)
                    .with_graceful_shutdown(stop.clone().cancelled_owned())
                    .into_future(),
            ))
        }
        None => None,
    };
    println!(
        "pedigree worker: {n} ingest worker(s), pid {}",
        std::process::id()
    );
    use std::io::Write;
    let _ = std::io::stdout().flush();
    signal.await;
    let deadline = tokio::time::Instant::now() + cfg.shutdown_grace;
    let requeued = pool.drain(deadline).await;
    stop.cancel();
    if let Some(h) = http {
        let _ = tokio::time::timeout(Duration::from_secs(2), h).await;
    }
    tracing::info!(requeued, "worker stopped");
    Ok(())
}

// ------------------------------------------------------------------------------------ logs

/// Install the global log subscriber: human-readable or one JSON object per line, on stderr.
/// `PEDIGREE_LOG` is an env-filter (`info`, `pedigree_registry=debug`); the default is `info`.
/// In JSON every line inside an ingest job carries the job's span (job id, version, worker).
pub fn init_logging(format: LogFormat) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_env("PEDIGREE_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let b = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    // try_init: a second call (tests) keeps the first subscriber instead of panicking.
    let _ = match format {
        LogFormat::Text => b.try_init(),
        LogFormat::Json => b
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .try_init(),
    };
}
