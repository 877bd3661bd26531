//! The registry commands: `pedigree serve` and the client commands (`push`, `pull`, `status`,
//! `policy test`, `flag`, `unflag`, `impact`, `deploy`, `approve`, `reject`, `token`,
//! `webhook`, `advisories`, `audit verify`). Thin: parse, call `pedigree_registry`, print.
//!
//! Exit codes: 0 done (and, where a verdict is asked for, a good one: approved, chain intact);
//! 1 a bad verdict (held or rejected, a broken audit chain); 2 could not run (bad arguments, the
//! server refused or could not be reached; the server's message is printed).

use std::collections::{BTreeMap, HashMap};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context as _, anyhow, bail};
use pedigree_registry::client::{Client, FlagRequest, ModelRef, VersionStatus};
use pedigree_registry::store::{Grant, Role};
use serde_json::Value;

// ------------------------------------------------------------------------------------ args

/// Where the registry is and who is asking.
#[derive(clap::Args, Debug, Clone)]
pub struct Remote {
    /// Registry URL.
    #[arg(long, env = "PEDIGREE_URL", default_value = "http://127.0.0.1:8470")]
    pub server: String,
    /// API token (`pdg_…`).
    #[arg(long, env = "PEDIGREE_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
}

impl Remote {
    pub(crate) fn client(&self) -> anyhow::Result<Client> {
        Ok(Client::new(&self.server, self.token.clone())?)
    }
}

#[derive(clap::Subcommand)]
pub enum RegistryCommand {
    /// Run the registry server (SQLite and a blob directory under --data-dir; an admin token is
    /// printed on first start).
    Serve(ServeArgs),
    /// Run ingest workers only (no API) against the configured database and blob store; with
    /// --listen, serve /healthz, /readyz and /metrics there.
    Worker(WorkerArgs),
    /// Upload a model directory as a new version; it lands in quarantine until ingest decides.
    Push(PushArgs),
    /// Download an approved, unflagged version, every file verified against its SHA-256.
    Pull(PullArgs),
    /// A version's state, decision, lineage, flags and deployments.
    Status(StatusArgs),
    /// Dry-run the policy.
    #[command(subcommand)]
    Policy(PolicyCommand),
    /// Flag versions with an advisory; the cascade marks every descendant at risk.
    Flag(FlagArgs),
    /// Withdraw an advisory (needs a justification).
    Unflag(UnflagArgs),
    /// The cascade of an advisory, or of the advisories touching a version, as a tree.
    Impact(ImpactArgs),
    /// Record that a deployment runs a version.
    Deploy(DeployArgs),
    /// Approve a held version (approver).
    Approve(DecideArgs),
    /// Reject a version (approver).
    Reject(DecideArgs),
    /// API tokens (admin).
    #[command(subcommand)]
    Token(TokenCommand),
    /// Webhooks (admin).
    #[command(subcommand)]
    Webhook(WebhookCommand),
    /// Advisory feeds (OSV-like JSON).
    #[command(subcommand)]
    Advisories(AdvisoriesCommand),
    /// The hash-chained audit log.
    #[command(subcommand)]
    Audit(AuditCommand),
}

/// Settings `serve` and `worker` share. Each is also read from `PEDIGREE_<NAME>` and from the
/// --config file; a flag beats the environment, which beats the file (see
/// `pedigree_registry::config`).
#[derive(clap::Args)]
pub struct StoreArgs {
    /// Settings file (TOML); unknown keys are an error.
    #[arg(long, env = "PEDIGREE_CONFIG")]
    pub config: Option<PathBuf>,
    /// Data directory (registry.db, blobs/, staging/, work/) [default: ./pedigree-data].
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Metadata database URL instead of DATA_DIR/registry.db.
    #[arg(long)]
    pub database_url: Option<String>,
    /// Blob store instead of DATA_DIR/blobs: `s3://BUCKET/PREFIX?endpoint=URL&region=R&allow_http=true`
    /// (credentials from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY) or a directory.
    #[arg(long)]
    pub blob_store: Option<String>,
    /// Policy file (TOML); default: the built-in policy.
    #[arg(long)]
    pub policy: Option<PathBuf>,
    /// Ingest workers in this process [default: 2; `serve --workers 0`: API only].
    #[arg(long)]
    pub workers: Option<usize>,
    /// Log format: text or json [default: text].
    #[arg(long)]
    pub log_format: Option<String>,
    /// Ingest job lease in seconds, renewed while a job runs [default: 60].
    #[arg(long)]
    pub lease_seconds: Option<u64>,
    /// On SIGTERM / Ctrl-C, seconds for running requests and jobs to finish before their jobs
    /// go back to the queue [default: 30].
    #[arg(long)]
    pub shutdown_grace_seconds: Option<u64>,
}

impl StoreArgs {
    fn layer(&self) -> pedigree_registry::config::Layer {
        pedigree_registry::config::Layer {
            data_dir: self.data_dir.clone(),
            database_url: self.database_url.clone(),
            blob_store: self.blob_store.clone(),
            policy: self.policy.clone(),
            workers: self.workers,
            log_format: self.log_format.clone(),
            lease_seconds: self.lease_seconds,
            shutdown_grace_seconds: self.shutdown_grace_seconds,
            ..Default::default()
        }
    }
}

#[derive(clap::Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub store: StoreArgs,
    /// Address to listen on (port 0 picks a free one; the URL is printed) [default: 127.0.0.1:8470].
    #[arg(long)]
    pub listen: Option<String>,
    /// Serve /metrics on this address instead of on --listen.
    #[arg(long)]
    pub metrics_listen: Option<String>,
}

#[derive(clap::Args)]
pub struct WorkerArgs {
    #[command(flatten)]
    pub store: StoreArgs,
    /// Serve /healthz, /readyz and /metrics on this address (`worker_listen` in the file).
    #[arg(long)]
    pub listen: Option<String>,
}

#[derive(clap::Args)]
pub struct PushArgs {
    /// Model directory (`.git` is skipped).
    pub dir: PathBuf,
    /// namespace/name:version
    pub model: ModelRef,
    /// Wait for the ingest decision; exit 1 unless approved.
    #[arg(long)]
    pub wait: bool,
    /// With --wait: give up after this many seconds.
    #[arg(long, default_value_t = 600)]
    pub timeout: u64,
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub remote: Remote,
}

#[derive(clap::Args)]
pub struct PullArgs {
    /// namespace/name:version
    pub model: ModelRef,
    /// Destination directory (must not exist, or be empty).
    pub dir: PathBuf,
    #[command(flatten)]
    pub remote: Remote,
}

#[derive(clap::Args)]
pub struct StatusArgs {
    /// namespace/name:version
    pub model: ModelRef,
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub remote: Remote,
}

#[derive(clap::Subcommand)]
pub enum PolicyCommand {
    /// Evaluate a version in the registry, or a local directory (analysed here), against the
    /// server's policy or --policy FILE, changing nothing. Exit 1 unless it would be approved.
    Test(PolicyTestArgs),
}

#[derive(clap::Args)]
pub struct PolicyTestArgs {
    /// namespace/name:version in the registry, or a model directory (then --model names it).
    pub target: String,
    /// For a directory: the name it would be pushed as.
    #[arg(long)]
    pub model: Option<ModelRef>,
    /// A policy file to try instead of the server's.
    #[arg(long)]
    pub policy: Option<PathBuf>,
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub remote: Remote,
}

#[derive(clap::Args)]
pub struct FlagArgs {
    /// The versions the advisory names (namespace/name:version …).
    #[arg(required = true)]
    pub models: Vec<ModelRef>,
    #[arg(long)]
    pub advisory: String,
    /// low | medium | high | critical
    #[arg(long, value_parser = ["low", "medium", "high", "critical"])]
    pub severity: String,
    /// What is wrong (the advisory's summary).
    #[arg(long)]
    pub reason: String,
    /// How the backdoor is triggered, when known.
    #[arg(long)]
    pub trigger: Option<String>,
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub remote: Remote,
}

#[derive(clap::Args)]
pub struct UnflagArgs {
    pub advisory: String,
    /// Why the advisory no longer holds (recorded in the audit log).
    #[arg(long)]
    pub justification: String,
    #[command(flatten)]
    pub remote: Remote,
}

#[derive(clap::Args)]
pub struct ImpactArgs {
    /// namespace/name:version, or an advisory id.
    pub target: String,
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub remote: Remote,
}

#[derive(clap::Args)]
pub struct DeployArgs {
    /// Deployment name (e.g. fraud-api).
    pub name: String,
    /// Environment (e.g. prod).
    pub environment: String,
    pub model: ModelRef,
    #[command(flatten)]
    pub remote: Remote,
}

#[derive(clap::Args)]
pub struct DecideArgs {
    pub model: ModelRef,
    #[arg(long)]
    pub reason: String,
    #[command(flatten)]
    pub remote: Remote,
}

#[derive(clap::Subcommand)]
pub enum TokenCommand {
    /// Create a token; prints it (once) on standard output.
    Create(TokenCreateArgs),
    /// Revoke a token by id.
    Revoke {
        id: String,
        #[command(flatten)]
        remote: Remote,
    },
}

#[derive(clap::Args)]
pub struct TokenCreateArgs {
    pub name: String,
    /// ROLE or ROLE:NAMESPACE (reader, publisher, approver, admin); repeatable.
    #[arg(long = "role", required = true, value_parser = parse_grant)]
    pub roles: Vec<Grant>,
    #[command(flatten)]
    pub remote: Remote,
}

#[derive(clap::Subcommand)]
pub enum WebhookCommand {
    /// Register a URL for events (HMAC-SHA256 signed with the secret).
    Add(WebhookAddArgs),
}

#[derive(clap::Args)]
pub struct WebhookAddArgs {
    pub url: String,
    /// Shared secret (at least 16 characters).
    #[arg(long)]
    pub secret: String,
    /// Comma-separated event names, or `*` (default).
    #[arg(long)]
    pub events: Option<String>,
    #[command(flatten)]
    pub remote: Remote,
}

#[derive(clap::Subcommand)]
pub enum AdvisoriesCommand {
    /// Write the advisory feed to FILE (default: standard output).
    Export {
        file: Option<PathBuf>,
        #[command(flatten)]
        remote: Remote,
    },
    /// Import a feed (FILE, or - for standard input); imported advisories cascade.
    Import {
        file: PathBuf,
        #[command(flatten)]
        remote: Remote,
    },
    /// List the advisories.
    List {
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        remote: Remote,
    },
}

#[derive(clap::Subcommand)]
pub enum AuditCommand {
    /// Check the audit log's hash chain; exit 1 naming the first bad entry.
    Verify(AuditVerifyArgs),
}

#[derive(clap::Args)]
pub struct AuditVerifyArgs {
    /// Read the data directory's database directly (offline), instead of asking the server.
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// With --data-dir: the metadata database the server uses, when it is not
    /// DATA_DIR/registry.db (e.g. `postgres://…`); the anchor is still read from DATA_DIR.
    #[arg(long, requires = "data_dir")]
    pub database_url: Option<String>,
    #[command(flatten)]
    pub remote: Remote,
}

fn parse_grant(s: &str) -> Result<Grant, String> {
    let (role, ns) = match s.split_once(':') {
        Some((r, n)) => (r, n),
        None => (s, "*"),
    };
    let role = Role::parse(role)
        .ok_or_else(|| format!("unknown role {role:?} (reader, publisher, approver, admin)"))?;
    if ns.is_empty() {
        return Err("empty namespace after ':'".into());
    }
    Ok(Grant {
        role,
        namespace: ns.to_string(),
    })
}

// ------------------------------------------------------------------------------------ run

pub fn run(cmd: &RegistryCommand) -> anyhow::Result<u8> {
    match cmd {
        RegistryCommand::Serve(a) => serve(a),
        RegistryCommand::Worker(a) => worker(a),
        RegistryCommand::Push(a) => push(a),
        RegistryCommand::Pull(a) => pull(a),
        RegistryCommand::Status(a) => status(a),
        RegistryCommand::Policy(PolicyCommand::Test(a)) => policy_test(a),
        RegistryCommand::Flag(a) => flag(a),
        RegistryCommand::Unflag(a) => unflag(a),
        RegistryCommand::Impact(a) => impact(a),
        RegistryCommand::Deploy(a) => deploy(a),
        RegistryCommand::Approve(a) => decide(a, true),
        RegistryCommand::Reject(a) => decide(a, false),
        RegistryCommand::Token(t) => token(t),
        RegistryCommand::Webhook(WebhookCommand::Add(a)) => webhook_add(a),
        RegistryCommand::Advisories(c) => advisories(c),
        RegistryCommand::Audit(AuditCommand::Verify(a)) => audit_verify(a),
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}

/// `serve` and `worker` install their own log subscriber (the format is a setting).
pub fn configures_logging(cmd: &RegistryCommand) -> bool {
    matches!(cmd, RegistryCommand::Serve(_) | RegistryCommand::Worker(_))
}

fn settings(
    store: &StoreArgs,
    extra: pedigree_registry::config::Layer,
) -> anyhow::Result<pedigree_registry::config::Settings> {
    let s =
        pedigree_registry::config::load(extra.over(store.layer()), store.config.as_deref(), |k| {
            std::env::var(k).ok()
        })?;
    pedigree_registry::ops::init_logging(s.log_format);
    Ok(s)
}

/// Run to completion, then drop the runtime without waiting for analyses a shutdown abandoned
/// (their jobs are already back in the queue).
fn run_service(fut: impl std::future::Future<Output = anyhow::Result<()>>) -> anyhow::Result<u8> {
    let rt = runtime()?;
    let r = rt.block_on(fut);
    rt.shutdown_timeout(Duration::from_secs(1));
    r?;
    Ok(0)
}

fn serve(a: &ServeArgs) -> anyhow::Result<u8> {
    let s = settings(
        &a.store,
        pedigree_registry::config::Layer {
            listen: a.listen.clone(),
            metrics_listen: a.metrics_listen.clone(),
            ..Default::default()
        },
    )?;
    run_service(pedigree_registry::server::serve(s.server_config()))
}

fn worker(a: &WorkerArgs) -> anyhow::Result<u8> {
    let s = settings(
        &a.store,
        pedigree_registry::config::Layer {
            worker_listen: a.listen.clone(),
            ..Default::default()
        },
    )?;
    run_service(pedigree_registry::ops::run_worker(
        s.server_config(),
        s.worker_listen,
    ))
}

fn human_bytes(n: u64) -> String {
    const U: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut i = 0;
    while v >= 1024.0 && i + 1 < U.len() {
        v /= 1024.0;
        i += 1;
    }
    if i == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", U[i])
    }
}

fn print_json(v: &impl serde::Serialize) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    serde_json::to_writer_pretty(&mut out, v)?;
    writeln!(out)?;
    Ok(())
}

fn push(a: &PushArgs) -> anyhow::Result<u8> {
    let c = a.remote.client()?;
    let r = c.push(&a.dir, &a.model)?;
    if !a.json {
        println!(
            "pushed {}: {} file(s), {} uploaded ({}), {} already on the server; {}",
            r.model,
            r.files.len(),
            r.uploaded,
            human_bytes(r.bytes_uploaded),
            r.skipped,
            r.state
        );
    }
    if !a.wait {
        if a.json {
            print_json(&r)?;
        }
        return Ok(0);
    }
    let s = c.wait_decided(&a.model, Duration::from_secs(a.timeout))?;
    if a.json {
        print_json(&serde_json::json!({"push": r, "status": s}))?;
    } else {
        print_status(&s);
    }
    Ok(if s.state == "approved" { 0 } else { 1 })
}

fn pull(a: &PullArgs) -> anyhow::Result<u8> {
    let c = a.remote.client()?;
    let r = c.pull(&a.model, &a.dir)?;
    println!(
        "pulled {} into {}: {} file(s), {}, every SHA-256 verified{}",
        r.model,
        r.dir.display(),
        r.files.len(),
        human_bytes(r.bytes),
        r.identity
            .map(|i| format!("; identity {i}"))
            .unwrap_or_default()
    );
    Ok(0)
}

fn status(a: &StatusArgs) -> anyhow::Result<u8> {
    let c = a.remote.client()?;
    if a.json {
        print_json(&c.status_json(&a.model)?)?;
    } else {
        print_status(&c.status(&a.model)?);
    }
    Ok(0)
}

/// The reasons of a decision document, one line each.
fn decision_lines(d: &Value) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(reasons) = d.get("reasons").and_then(Value::as_array) {
        for r in reasons {
            let level = r.get("level").and_then(Value::as_str).unwrap_or("");
            let rule = r.get("rule").and_then(Value::as_str).unwrap_or("-");
            let msg = r.get("message").and_then(Value::as_str).unwrap_or("");
            out.push(if level.is_empty() {
                format!("{rule}: {msg}")
            } else {
                format!("[{level}] {rule}: {msg}")
            });
        }
    }
    if let Some(o) = d.get("override") {
        out.push(format!(
            "override: {} by {} ({}; was {})",
            o.get("state").and_then(Value::as_str).unwrap_or("?"),
            o.get("by").and_then(Value::as_str).unwrap_or("?"),
            o.get("reason").and_then(Value::as_str).unwrap_or(""),
            o.get("previous").and_then(Value::as_str).unwrap_or("?"),
        ));
    }
    out
}

fn print_status(s: &VersionStatus) {
    let dl = if s.downloadable {
        "downloadable"
    } else {
        "not downloadable"
    };
    println!("{}: {} ({dl})", s.model, s.state);
    if let Some(i) = &s.identity {
        println!("identity: {i}");
    }
    if let Some(d) = &s.decision {
        let lines = decision_lines(d);
        if !lines.is_empty() {
            println!("decision:");
            for l in lines {
                println!("  {l}");
            }
        }
    }
    for f in &s.flags {
        match f.kind.as_str() {
            "flagged" => println!("FLAGGED by advisory {}", f.advisory_id),
            _ => println!(
                "AT RISK through advisory {} (depth {})",
                f.advisory_id, f.depth
            ),
        }
    }
    if !s.lineage.is_empty() {
        println!("lineage:");
        for e in &s.lineage {
            println!(
                "  {} → {}  {} ({}, confidence {:.2})",
                e.parent.as_deref().unwrap_or("?"),
                e.child.as_deref().unwrap_or("?"),
                e.relation,
                e.source,
                e.confidence
            );
        }
    }
    if !s.findings.is_empty() {
        println!("findings: {}", s.findings.len());
        for f in s.findings.iter().take(20) {
            println!(
                "  {} {} {}: {}",
                f.get("rule").and_then(Value::as_str).unwrap_or("?"),
                f.get("severity").and_then(Value::as_str).unwrap_or("?"),
                f.get("file").and_then(Value::as_str).unwrap_or("?"),
                f.get("message").and_then(Value::as_str).unwrap_or("")
            );
        }
    }
    for d in &s.deployments {
        println!(
            "deployed: {}@{}",
            d.get("name").and_then(Value::as_str).unwrap_or("?"),
            d.get("environment").and_then(Value::as_str).unwrap_or("?")
        );
    }
}

fn policy_test(a: &PolicyTestArgs) -> anyhow::Result<u8> {
    let c = a.remote.client()?;
    let policy_text = match &a.policy {
        Some(p) => {
            Some(std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?)
        }
        None => None,
    };
    let dir = Path::new(&a.target);
    let (model, analysis) = if dir.is_dir() {
        let model = a
            .model
            .clone()
            .ok_or_else(|| anyhow!("testing a directory needs --model namespace/name:version"))?;
        let trusted = match &a.policy {
            Some(p) => local_trusted(p, &model.namespace)?,
            None => Vec::new(),
        };
        let sig = dir.join("model.sig");
        if sig.exists() && trusted.is_empty() {
            eprintln!(
                "pedigree: note: {} is checked here against no trusted signer; pass --policy with the namespace's signers to test the signature",
                sig.display()
            );
        }
        let name = format!("{}/{}", model.namespace, model.name);
        let opts = pedigree_registry::analysis::AnalysisOptions {
            model_name: &name,
            version: &model.version,
            signature: Some(&sig),
            trusted: &trusted,
        };
        let an = pedigree_registry::analysis::analyze(dir, &opts)
            .with_context(|| format!("analysing {}", dir.display()))?;
        (model, Some(an))
    } else {
        if a.model.is_some() {
            bail!("--model is for a directory; {:?} is not one", a.target);
        }
        (ModelRef::parse(&a.target)?, None)
    };
    let r = c.policy_test(&model, analysis.as_ref(), policy_text.as_deref())?;
    let outcome = r
        .pointer("/decision/outcome")
        .and_then(Value::as_str)
        .unwrap_or("unknown")
        .to_string();
    if a.json {
        print_json(&r)?;
    } else {
        println!("{model}: would be {outcome} (dry run, nothing changed)");
        if let Some(d) = r.get("decision") {
            for l in decision_lines(d) {
                println!("  {l}");
            }
        }
    }
    Ok(if outcome == "approved" { 0 } else { 1 })
}

/// The trusted signers a policy file names for a namespace, for a local analysis.
fn local_trusted(
    policy: &Path,
    namespace: &str,
) -> anyhow::Result<Vec<pedigree_registry::analysis::TrustedKey>> {
    let p = pedigree_registry::policy::Policy::load(policy)
        .map_err(|e| anyhow!("policy {}: {e}", policy.display()))?;
    Ok(p.trusted_signers(namespace)
        .iter()
        .map(|s| pedigree_registry::analysis::TrustedKey {
            name: s.name.clone(),
            public_key_pem: s.public_key_pem.clone(),
        })
        .collect())
}

fn flag(a: &FlagArgs) -> anyhow::Result<u8> {
    let c = a.remote.client()?;
    let r = c.flag(&FlagRequest {
        id: a.advisory.clone(),
        severity: a.severity.clone(),
        summary: a.reason.clone(),
        trigger: a.trigger.clone(),
        versions: a.models.iter().map(|m| m.to_string()).collect(),
    })?;
    if a.json {
        print_json(&r)?;
        return Ok(0);
    }
    let changed = r.get("changed").and_then(Value::as_bool).unwrap_or(false);
    if changed {
        println!(
            "advisory {}: {} version(s) newly flagged, {} newly at risk",
            a.advisory,
            r.get("newly_flagged").and_then(Value::as_u64).unwrap_or(0),
            r.get("newly_at_risk").and_then(Value::as_u64).unwrap_or(0)
        );
    } else {
        println!(
            "advisory {} already covers these versions: nothing changed",
            a.advisory
        );
    }
    if let Some(i) = r.get("impact") {
        print!("{}", impact_tree(i));
    }
    Ok(0)
}

fn unflag(a: &UnflagArgs) -> anyhow::Result<u8> {
    let c = a.remote.client()?;
    let r = c.unflag(&a.advisory, &a.justification)?;
    println!(
        "advisory {} withdrawn: {} flag(s) cleared",
        a.advisory,
        r.get("cleared").and_then(Value::as_u64).unwrap_or(0)
    );
    Ok(0)
}

fn impact(a: &ImpactArgs) -> anyhow::Result<u8> {
    let c = a.remote.client()?;
    if a.target.contains('/') {
        let m = ModelRef::parse(&a.target)?;
        let r = c.version_impact(&m)?;
        if a.json {
            print_json(&r)?;
            return Ok(0);
        }
        let advs = r
            .get("advisories")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        if advs.is_empty() {
            println!("{m}: no advisory flags it or any of its ancestors");
        }
        for (i, adv) in advs.iter().enumerate() {
            if i > 0 {
                println!();
            }
            print!("{}", impact_tree(adv));
        }
    } else {
        let r = c.advisory_impact(&a.target)?;
        if a.json {
            print_json(&r)?;
        } else {
            print!("{}", impact_tree(&r));
        }
    }
    Ok(0)
}

fn model_of(label: &str) -> &str {
    label.rsplit_once(':').map(|(m, _)| m).unwrap_or(label)
}

/// The impact document of one advisory as a tree: flagged versions, the at-risk versions under
/// them (by their `via`), deployments, the deployments to roll back and the last known-good
/// version of each affected model.
pub fn impact_tree(v: &Value) -> String {
    let s = |x: Option<&Value>| x.and_then(Value::as_str).unwrap_or("").to_string();
    let adv = v.get("advisory").cloned().unwrap_or(Value::Null);
    let mut out = String::new();
    out += &format!(
        "advisory {} ({}): {}",
        s(adv.get("id")),
        s(adv.get("severity")),
        s(adv.get("summary"))
    );
    if adv.get("withdrawn_at").is_some_and(|w| !w.is_null()) {
        out += &format!("  [WITHDRAWN: {}]", s(adv.get("withdrawn_reason")));
    }
    out.push('\n');
    if let Some(t) = adv.get("trigger").and_then(Value::as_str) {
        out += &format!("trigger: {t}\n");
    }
    let affected = v
        .get("affected")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    struct Node {
        model: String,
        flagged: bool,
        via: Option<String>,
        deployed: Vec<String>,
    }
    let nodes: Vec<Node> = affected
        .iter()
        .map(|e| Node {
            model: s(e.get("model")),
            flagged: e.get("kind").and_then(Value::as_str) == Some("flagged"),
            via: e.get("via").and_then(Value::as_str).map(str::to_string),
            deployed: e
                .get("deployments")
                .and_then(Value::as_array)
                .map(|d| {
                    d.iter()
                        .map(|d| format!("{}@{}", s(d.get("name")), s(d.get("environment"))))
                        .collect()
                })
                .unwrap_or_default(),
        })
        .collect();
    let mut children: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    let present: HashMap<&str, usize> = nodes
        .iter()
        .enumerate()
        .map(|(i, n)| (n.model.as_str(), i))
        .collect();
    let mut roots: Vec<usize> = Vec::new();
    for (i, n) in nodes.iter().enumerate() {
        match &n.via {
            Some(p) if !n.flagged && present.contains_key(p.as_str()) => {
                children.entry(p.as_str()).or_default().push(i)
            }
            _ => roots.push(i),
        }
    }
    for c in children.values_mut() {
        c.sort_by(|a, b| nodes[*a].model.cmp(&nodes[*b].model));
    }
    // Flagged versions first, then anything whose parent is not listed.
    roots.sort_by(|a, b| {
        (!nodes[*a].flagged, &nodes[*a].model).cmp(&(!nodes[*b].flagged, &nodes[*b].model))
    });
    let mut printed = vec![false; nodes.len()];
    fn walk(
        i: usize,
        prefix: &str,
        last: bool,
        nodes: &[Node],
        children: &BTreeMap<&str, Vec<usize>>,
        printed: &mut [bool],
        out: &mut String,
    ) {
        let n = &nodes[i];
        let branch = if last { "└─ " } else { "├─ " };
        let mut line = if n.flagged {
            format!("{prefix}{branch}FLAGGED {}", n.model)
        } else {
            format!(
                "{prefix}{branch}AT RISK {} (via {})",
                n.model,
                n.via.as_deref().unwrap_or("?")
            )
        };
        if !n.deployed.is_empty() {
            line += &format!("   deployed: {}", n.deployed.join(", "));
        }
        out.push_str(&line);
        out.push('\n');
        if printed[i] {
            return;
        }
        printed[i] = true;
        let kids = children.get(n.model.as_str()).cloned().unwrap_or_default();
        let next = format!("{prefix}{}", if last { "   " } else { "│  " });
        for (k, c) in kids.iter().enumerate() {
            if !printed[*c] {
                walk(
                    *c,
                    &next,
                    k + 1 == kids.len(),
                    nodes,
                    children,
                    printed,
                    out,
                );
            }
        }
    }
    for (k, r) in roots.iter().enumerate() {
        walk(
            *r,
            "",
            k + 1 == roots.len(),
            &nodes,
            &children,
            &mut printed,
            &mut out,
        );
    }
    // Anything on a cycle of `via` (never expected) is still shown.
    for i in 0..nodes.len() {
        if !printed[i] {
            walk(i, "", true, &nodes, &children, &mut printed, &mut out);
        }
    }
    if nodes.is_empty() {
        out += "(no version is flagged)\n";
    }
    let lkg: BTreeMap<String, Option<String>> = v
        .get("last_known_good")
        .and_then(Value::as_object)
        .map(|o| {
            o.iter()
                .map(|(k, v)| (k.clone(), v.as_str().map(str::to_string)))
                .collect()
        })
        .unwrap_or_default();
    let deps = v
        .get("deployments")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if deps.is_empty() {
        out += "deployments to roll back: none\n";
    } else {
        let items: Vec<String> = deps
            .iter()
            .map(|d| {
                let model = s(d.get("model"));
                let to = match lkg.get(model_of(&model)) {
                    Some(Some(g)) => format!("last known-good {g}"),
                    _ => "no known-good version: take it down".to_string(),
                };
                format!(
                    "{}@{} ({model}) → {to}",
                    s(d.get("name")),
                    s(d.get("environment"))
                )
            })
            .collect();
        out += &format!("deployments to roll back: {}\n", items.join("; "));
    }
    if !lkg.is_empty() {
        let items: Vec<String> = lkg
            .iter()
            .map(|(m, g)| match g {
                Some(g) => format!("{m} → {g}"),
                None => format!("{m} → none (no safe version)"),
            })
            .collect();
        out += &format!("last known-good: {}\n", items.join("; "));
    }
    out
}

fn deploy(a: &DeployArgs) -> anyhow::Result<u8> {
    let c = a.remote.client()?;
    let r = c.deploy(&a.name, &a.environment, &a.model)?;
    println!("recorded: {}@{} runs {}", a.name, a.environment, a.model);
    if let Some(w) = r.get("warning").and_then(Value::as_str) {
        eprintln!("pedigree: warning: {w}");
    }
    Ok(0)
}

fn decide(a: &DecideArgs, approve: bool) -> anyhow::Result<u8> {
    let c = a.remote.client()?;
    let r = c.decide(&a.model, approve, &a.reason)?;
    println!(
        "{}: {}",
        a.model,
        r.get("state")
            .and_then(Value::as_str)
            .unwrap_or(if approve { "approved" } else { "rejected" })
    );
    Ok(0)
}

fn token(t: &TokenCommand) -> anyhow::Result<u8> {
    match t {
        TokenCommand::Create(a) => {
            let c = a.remote.client()?;
            let r = c.create_token(&a.name, &a.roles)?;
            eprintln!(
                "pedigree: created token {:?} (id {}); it is shown only this once",
                a.name, r.id
            );
            println!("{}", r.token);
        }
        TokenCommand::Revoke { id, remote } => {
            remote.client()?.revoke_token(id)?;
            println!("token {id} revoked");
        }
    }
    Ok(0)
}

fn webhook_add(a: &WebhookAddArgs) -> anyhow::Result<u8> {
    let c = a.remote.client()?;
    let id = c.add_webhook(&a.url, &a.secret, a.events.as_deref())?;
    println!(
        "webhook {id}: {} ({})",
        a.url,
        a.events.as_deref().unwrap_or("*")
    );
    Ok(0)
}

fn advisories(c: &AdvisoriesCommand) -> anyhow::Result<u8> {
    match c {
        AdvisoriesCommand::Export { file, remote } => {
            let feed = remote.client()?.export_advisories()?;
            match file {
                Some(f) => {
                    std::fs::write(f, feed.as_bytes())
                        .with_context(|| format!("writing {}", f.display()))?;
                    eprintln!("pedigree: advisory feed written to {}", f.display());
                }
                None => {
                    let mut out = std::io::stdout().lock();
                    out.write_all(feed.as_bytes())?;
                    if !feed.ends_with('\n') {
                        writeln!(out)?;
                    }
                }
            }
        }
        AdvisoriesCommand::Import { file, remote } => {
            let body = if file.as_os_str() == "-" {
                let mut b = Vec::new();
                std::io::Read::read_to_end(&mut std::io::stdin(), &mut b)?;
                b
            } else {
                std::fs::read(file).with_context(|| format!("reading {}", file.display()))?
            };
            let r = remote.client()?.import_advisories(body)?;
            let items = r
                .get("imported")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            for i in &items {
                let id = i.get("id").and_then(Value::as_str).unwrap_or("?");
                if i.get("withdrawn").and_then(Value::as_bool) == Some(true) {
                    println!(
                        "{id}: withdrawn, {} flag(s) cleared",
                        i.get("cleared").and_then(Value::as_u64).unwrap_or(0)
                    );
                } else {
                    let matched = i.get("matched").and_then(Value::as_u64).unwrap_or(0);
                    if matched == 0 {
                        println!("{id}: names no version in this registry");
                    } else {
                        println!(
                            "{id}: {matched} version(s) flagged{}, {} newly at risk",
                            if i.get("changed").and_then(Value::as_bool) == Some(false) {
                                " (no change)"
                            } else {
                                ""
                            },
                            i.get("newly_at_risk").and_then(Value::as_u64).unwrap_or(0)
                        );
                    }
                }
            }
            if items.is_empty() {
                println!("the feed holds no advisory");
            }
        }
        AdvisoriesCommand::List { json, remote } => {
            let r = remote.client()?.advisories()?;
            if *json {
                print_json(&r)?;
            } else {
                for a in r
                    .get("advisories")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    let s = |k: &str| a.get(k).and_then(Value::as_str).unwrap_or("").to_string();
                    let w = if a.get("withdrawn_at").is_some_and(|w| !w.is_null()) {
                        "  [withdrawn]"
                    } else {
                        ""
                    };
                    println!(
                        "{} ({}, {}): {}{w}",
                        s("id"),
                        s("severity"),
                        s("source"),
                        s("summary")
                    );
                }
            }
        }
    }
    Ok(0)
}

// ------------------------------------------------------------------------------------ audit

fn audit_verify(a: &AuditVerifyArgs) -> anyhow::Result<u8> {
    use pedigree_registry::audit;
    let (entries, anchor, source) = match &a.data_dir {
        Some(dir) => {
            let db = dir.join("registry.db");
            let url = match &a.database_url {
                Some(u) => u.clone(),
                None => {
                    if !db.is_file() {
                        bail!("{}: no registry database here", db.display());
                    }
                    format!("sqlite://{}", db.display())
                }
            };
            let entries = runtime()?.block_on(async {
                use pedigree_registry::store::MetaStore as _;
                let store = pedigree_registry::store::sql::SqlStore::connect(&url).await?;
                let mut all = Vec::new();
                let mut from = 1;
                loop {
                    let page = store.audit_entries(from, 10_000).await?;
                    let n = page.len();
                    let last = page.last().map(|e| e.seq);
                    all.extend(page);
                    match last {
                        Some(seq) if n == 10_000 && seq >= from => from = seq + 1,
                        _ => break,
                    }
                }
                anyhow::Ok(all)
            })?;
            let anchor_path = dir.join("audit.head");
            let anchor = if anchor_path.is_file() {
                Some(
                    audit::Anchor::load(&anchor_path)
                        .map_err(|e| anyhow!("{}: {e}", anchor_path.display()))?,
                )
            } else {
                None
            };
            let source = match &a.database_url {
                Some(u) => pedigree_registry::store::sql::redact_url(u),
                None => db.display().to_string(),
            };
            (entries, anchor, source)
        }
        None => {
            let c = a.remote.client()?;
            (c.audit_all()?, None, a.remote.server.clone())
        }
    };
    match audit::verify_chain(&entries, anchor.as_ref()) {
        Ok(summary) => {
            println!(
                "audit chain intact: {} entries from {source}{}",
                entries.len(),
                summary
            );
            Ok(0)
        }
        Err(e) => {
            eprintln!("pedigree: audit chain BROKEN ({source}): {e}");
            Ok(1)
        }
    }
}
