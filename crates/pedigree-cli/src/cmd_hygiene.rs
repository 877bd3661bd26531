//! `pedigree hygiene`: unsafe model loading in Python code and notebooks. Thin: read the
//! allow-list (file and/or registry), call `pedigree_hygiene`, render with the scan reporters.
//!
//! Exit codes as `pedigree scan`: 0 nothing at or above `--fail-on`, 1 findings at or above it,
//! 2 a file could not be analysed (read error, syntax error, limits) or bad usage.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;

use anyhow::{Context, bail};
use pedigree_hygiene::{AllowList, Options};
use pedigree_scan::Severity;
use serde_json::Value;

use crate::{OutputFormat, exit_code, parse_severity, report};

#[derive(clap::Args)]
pub struct HygieneArgs {
    /// Python files, notebooks (.ipynb) and directories (walked for .py and .ipynb, skipping
    /// .git, venv/.venv/env, node_modules, site-packages and caches unless named directly).
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    pub format: OutputFormat,
    /// Exit 1 when a finding is at or above this severity.
    #[arg(long, value_parser = parse_severity, default_value = "medium")]
    pub fail_on: Severity,
    /// Allow-list of approved publishers and models (TOML; see README, "Hygiene").
    #[arg(long)]
    pub allow: Option<PathBuf>,
    /// Also approve the models a pedigree registry has approved (`GET /v1/models?state=approved`;
    /// `ns/name` is read as the hub id `ns/name`, a 40-hex version label as its pinned commit).
    #[arg(long)]
    pub registry: Option<String>,
    /// API token for --registry.
    #[arg(long, env = "PEDIGREE_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Write the report here instead of standard output.
    #[arg(short, long)]
    pub output: Option<PathBuf>,
    /// Text output: also list files without findings.
    #[arg(long)]
    pub all: bool,
}

/// The approved versions of a registry, merged into `allow`. A registry model `ns/name` stands
/// for the hub repository `ns/name` (mirror models under their hub ids); a version whose label is
/// a 40-hex commit approves that commit, any other label approves the model at any pinned commit.
/// Flagged and at-risk versions are left out.
fn merge_registry(allow: &mut AllowList, url: &str, token: Option<String>) -> anyhow::Result<()> {
    let client = pedigree_registry::client::Client::new(url, token)
        .with_context(|| format!("--registry {url}"))?;
    let v = client
        .list_models(None, Some("approved"), Some(100_000))
        .with_context(|| format!("cannot read the approved models of {url}"))?;
    let Some(versions) = v.get("versions").and_then(Value::as_array) else {
        bail!("{url}: unexpected answer to GET /v1/models (no \"versions\" array)");
    };
    for ver in versions {
        if ver.get("state").and_then(Value::as_str) != Some("approved")
            || ver.get("flagged").and_then(Value::as_bool) == Some(true)
            || ver.get("at_risk").and_then(Value::as_bool) == Some(true)
        {
            continue;
        }
        let Some(label) = ver.get("model").and_then(Value::as_str) else {
            continue;
        };
        let Some((id, version)) = label.rsplit_once(':') else {
            continue;
        };
        if !pedigree_hygiene::names::is_hub_id(id) {
            continue;
        }
        if pedigree_hygiene::names::is_commit(version) {
            allow.add_model(id, Some(version));
        } else {
            allow.add_model(id, None);
        }
    }
    allow.sources.push(format!("registry {url}"));
    Ok(())
}

pub fn hygiene(args: &HygieneArgs) -> anyhow::Result<u8> {
    let mut allow: Option<AllowList> = None;
    if let Some(f) = &args.allow {
        allow = Some(AllowList::from_file(f)?);
    }
    if let Some(url) = &args.registry {
        let a = allow.get_or_insert_with(AllowList::default);
        merge_registry(a, url, args.token.clone())?;
    }
    let opts = Options { allow };
    let reports = pedigree_hygiene::check_paths(&args.paths, &opts);
    let rendered = match args.format {
        OutputFormat::Text => {
            let colour = args.output.is_none() && std::io::stdout().is_terminal();
            report::text::render(&reports, args.fail_on, colour, args.all)
        }
        OutputFormat::Json => report::json::render(&reports, args.fail_on)?,
        OutputFormat::Sarif => report::sarif::render(&reports)?,
    };
    match &args.output {
        Some(path) => std::fs::write(path, rendered)
            .with_context(|| format!("cannot write {}", path.display()))?,
        None => {
            let mut out = std::io::stdout().lock();
            out.write_all(rendered.as_bytes())?;
            out.flush()?;
        }
    }
    Ok(exit_code(&reports, args.fail_on))
}
