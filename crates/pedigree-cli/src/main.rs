//! `pedigree`: a thin command line over the pedigree libraries.
//!
//! Exit codes: 0 = nothing at or above `--fail-on`, 1 = findings at or above it (or a failed
//! verification), 2 = could not scan / bad usage.

mod cmd_hygiene;
mod cmd_lab_push;
mod cmd_probe;
mod cmd_provenance;
mod cmd_registry;
mod cmd_sign;
mod report;

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
use pedigree_formats::container::ReadOptions;
use pedigree_formats::pickle::{self, ReadMode};
use pedigree_scan::{Policy, Severity, rules};

#[derive(Parser)]
#[command(name = "pedigree", version, about = "Scan, fingerprint, sign and trace ML models", long_about = None)]
struct Cli {
    /// More logging (-v, -vv); logs go to stderr.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Scan model files, directories and archives for code that would run on load.
    Scan(ScanArgs),
    /// Find unsafe model loading in Python code and notebooks (torch.load, trust_remote_code,
    /// unpinned hub revisions, unvetted or typosquatted repositories, ...).
    Hygiene(cmd_hygiene::HygieneArgs),
    /// Print a readable disassembly of a pickle stream.
    Disasm(DisasmArgs),
    /// List every rule, or explain one (`pedigree rules PDG101`).
    Rules(RulesArgs),
    /// Sign a model (file or directory) as an OpenSSF Model Signing v1.0 bundle.
    Sign(cmd_sign::SignArgs),
    /// Verify a model against an OpenSSF Model Signing v1.0 bundle.
    Verify(cmd_sign::VerifyArgs),
    /// Print the model's identity: the OMS v1.0 root digest over its files.
    Id(cmd_sign::IdArgs),
    /// Write per-tensor fingerprints (exact digests, similarity sketches, architecture).
    Fingerprint(cmd_provenance::FingerprintArgs),
    /// Compare two models tensor by tensor and name their relation.
    Diff(cmd_provenance::DiffArgs),
    /// Infer the family tree of a set of models from their weights.
    Lineage(cmd_provenance::LineageArgs),
    /// Write an ML bill of materials (CycloneDX 1.6 or SPDX 3.0.1).
    Bom(cmd_provenance::BomArgs),
    /// The cascade lab: train a poisoned model family and its clean control.
    #[command(subcommand)]
    Lab(cmd_probe::LabCommand),
    /// Behavioural backdoor detectors (trigger replay, Neural Cleanse, STRIP, AC, spectral).
    #[command(subcommand)]
    Probe(cmd_probe::ProbeCommand),
    /// The trusted model registry: `serve`, and the client commands.
    #[command(flatten)]
    Registry(cmd_registry::RegistryCommand),
}

#[derive(Clone, Copy, ValueEnum, PartialEq, Eq)]
enum OutputFormat {
    Text,
    Json,
    Sarif,
}

#[derive(clap::Args)]
struct ScanArgs {
    /// Files, directories (scanned recursively) and archives.
    #[arg(required = true)]
    paths: Vec<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    format: OutputFormat,
    /// Exit 1 when a finding is at or above this severity (default: medium, or the policy's).
    #[arg(long, value_parser = parse_severity)]
    fail_on: Option<Severity>,
    /// Policy file (allow/deny lists, severity overrides). Default: ./pedigree.toml if present.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Write the report here instead of standard output.
    #[arg(short, long)]
    output: Option<PathBuf>,
    /// Text output: also list files without findings.
    #[arg(long)]
    all: bool,
}

#[derive(clap::Args)]
struct DisasmArgs {
    file: PathBuf,
    /// Byte offset where the pickle starts.
    #[arg(long, default_value_t = 0)]
    offset: usize,
    /// How the loader reads frames: in-memory (pickle.loads), file (torch.load), python (joblib).
    #[arg(long, default_value = "in-memory", value_parser = parse_mode)]
    mode: ReadMode,
    /// Stop after this many lines.
    #[arg(long, default_value_t = 100_000)]
    max_lines: usize,
}

#[derive(clap::Args)]
struct RulesArgs {
    /// A rule id (PDG101) or name (pickle-dangerous-global) to explain.
    rule: Option<String>,
    /// Print the whole reference as Markdown (docs/rules.md is generated with this).
    #[arg(long)]
    markdown: bool,
    /// Print the rules as JSON.
    #[arg(long)]
    json: bool,
}

fn parse_severity(s: &str) -> Result<Severity, String> {
    s.parse()
        .map_err(|e: pedigree_scan::severity::UnknownSeverity| e.to_string())
}

fn parse_mode(s: &str) -> Result<ReadMode, String> {
    match s {
        "in-memory" | "memory" => Ok(ReadMode::InMemory),
        "file" | "file-no-peek" => Ok(ReadMode::FileNoPeek),
        "python" | "pure-python" => Ok(ReadMode::PurePython),
        _ => Err(format!("unknown mode '{s}' (in-memory, file, python)")),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let filter = match cli.verbose {
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    let own_logging =
        matches!(&cli.command, Command::Registry(c) if cmd_registry::configures_logging(c));
    if !own_logging {
        init_logging(filter);
    }
    let result = match &cli.command {
        Command::Scan(a) => scan(a),
        Command::Hygiene(a) => cmd_hygiene::hygiene(a),
        Command::Disasm(a) => disasm(a),
        Command::Rules(a) => list_rules(a),
        Command::Sign(a) => cmd_sign::sign(a).map(exit_u8),
        Command::Verify(a) => cmd_sign::verify(a).map(exit_u8),
        Command::Id(a) => cmd_sign::id(a).map(exit_u8),
        Command::Fingerprint(a) => cmd_provenance::fingerprint(a),
        Command::Diff(a) => cmd_provenance::diff(a),
        Command::Lineage(a) => cmd_provenance::lineage(a),
        Command::Bom(a) => cmd_provenance::bom(a),
        Command::Lab(c) => cmd_probe::lab(c),
        Command::Probe(c) => cmd_probe::probe(c),
        Command::Registry(c) => cmd_registry::run(c),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("pedigree: error: {e:#}");
            ExitCode::from(2)
        }
    }
}

/// Exit codes are small non-negative numbers; anything else is reported as 2 (could not run).
fn exit_u8(code: i32) -> u8 {
    u8::try_from(code).unwrap_or(2)
}

fn load_policy(config: Option<&Path>) -> anyhow::Result<Policy> {
    match config {
        Some(p) => Ok(Policy::from_file(p)?),
        None => {
            let default = Path::new("pedigree.toml");
            if default.is_file() {
                Ok(Policy::from_file(default)?)
            } else {
                Ok(Policy::default())
            }
        }
    }
}

fn scan(args: &ScanArgs) -> anyhow::Result<u8> {
    let policy = load_policy(args.config.as_deref())?;
    let fail_on = args.fail_on.unwrap_or(policy.fail_on);
    let opts = ReadOptions::default();

    // A progress bar only for people watching a terminal, never in pipes or CI.
    let show_progress = std::io::stderr().is_terminal() && std::env::var_os("CI").is_none();
    let bar = if show_progress {
        let total = pedigree_scan::expand_paths(&args.paths).len() as u64;
        let bar = indicatif::ProgressBar::new(total);
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{spinner} scanning [{bar:30}] {pos}/{len} {wide_msg}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
            .progress_chars("=> "),
        );
        Some(bar)
    } else {
        None
    };
    let progress = |p: &Path| {
        if let Some(b) = &bar {
            b.set_message(p.display().to_string());
            b.inc(1);
        }
    };
    let reports = pedigree_scan::scan_paths(&args.paths, &policy, &opts, &progress);
    if let Some(b) = &bar {
        b.finish_and_clear();
    }

    let rendered = match args.format {
        OutputFormat::Text => {
            let colour = args.output.is_none() && std::io::stdout().is_terminal();
            report::text::render(&reports, fail_on, colour, args.all)
        }
        OutputFormat::Json => report::json::render(&reports, fail_on)?,
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

    Ok(exit_code(&reports, fail_on))
}

/// 2 if any file could not be scanned, else 1 if any finding is at or above the threshold.
fn exit_code(reports: &[pedigree_scan::FileReport], fail_on: Severity) -> u8 {
    if reports.iter().any(|r| r.error.is_some()) {
        2
    } else if reports
        .iter()
        .flat_map(|r| &r.findings)
        .any(|f| f.severity >= fail_on)
    {
        1
    } else {
        0
    }
}

fn disasm(args: &DisasmArgs) -> anyhow::Result<u8> {
    let data = std::fs::read(&args.file)
        .with_context(|| format!("cannot read {}", args.file.display()))?;
    let mut text = String::new();
    pickle::disasm(&data, args.offset, args.mode, &mut text, args.max_lines)
        .map_err(|_| anyhow::anyhow!("cannot format the disassembly"))?;
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())?;
    Ok(0)
}

fn list_rules(args: &RulesArgs) -> anyhow::Result<u8> {
    let mut out = std::io::stdout().lock();
    if args.json {
        writeln!(out, "{}", serde_json::to_string_pretty(rules::RULES)?)?;
        return Ok(0);
    }
    if args.markdown {
        write!(out, "{}", rules::render_markdown())?;
        return Ok(0);
    }
    match &args.rule {
        Some(id) => match rules::find(id) {
            Some(r) => write!(out, "{}", rules::render_one(r, false))?,
            None => anyhow::bail!("no rule '{id}' (see `pedigree rules`)"),
        },
        None => {
            for r in rules::RULES {
                writeln!(
                    out,
                    "{:<7} {:<9} {:<28} {}",
                    r.id,
                    r.severity.as_str(),
                    r.name,
                    r.summary
                )?;
            }
        }
    }
    Ok(0)
}

fn init_logging(filter: &str) {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("PEDIGREE_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(filter)),
        )
        .with_writer(std::io::stderr)
        .init();
}
