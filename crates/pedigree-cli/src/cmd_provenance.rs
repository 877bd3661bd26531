//! `pedigree fingerprint | diff | lineage | bom`: thin glue over `pedigree-provenance`.
//! (`pedigree id` lives in `cmd_sign.rs`: the OMS root digest is computed in one place.)
//!
//! Exit codes: 0 = done, 1 = `lineage` found a card that disagrees with the weights,
//! errors are returned (the caller maps them to 2).

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, ValueEnum};
use pedigree_provenance::{Fingerprint, Model, bom};
use pedigree_provenance::{diff as pdiff, fingerprint as pfp, lineage as plin};

fn emit(output: Option<&PathBuf>, text: &str) -> anyhow::Result<()> {
    match output {
        Some(p) => {
            std::fs::write(p, text).with_context(|| format!("{}: cannot write", p.display()))
        }
        None => {
            let mut o = std::io::stdout().lock();
            o.write_all(text.as_bytes())?;
            if !text.ends_with('\n') {
                o.write_all(b"\n")?;
            }
            Ok(())
        }
    }
}

#[derive(Args, Debug)]
pub struct FingerprintArgs {
    /// Model file or directory.
    pub path: PathBuf,
    /// Write the fingerprint file here (default: standard output).
    #[arg(short, long)]
    pub output: Option<PathBuf>,
}

/// `pedigree fingerprint PATH [-o FILE]`.
pub fn fingerprint(args: &FingerprintArgs) -> anyhow::Result<u8> {
    let fp = pfp::fingerprint(&args.path)?;
    emit(args.output.as_ref(), &serde_json::to_string(&fp)?)?;
    Ok(0)
}

#[derive(Clone, Copy, ValueEnum, Debug, PartialEq, Eq)]
pub enum DiffFormat {
    Text,
    Json,
}

#[derive(Args, Debug)]
pub struct DiffArgs {
    /// First model (file or directory).
    pub a: PathBuf,
    /// Second model.
    pub b: PathBuf,
    #[arg(long, value_enum, default_value = "text")]
    pub format: DiffFormat,
    #[arg(short, long)]
    pub output: Option<PathBuf>,
}

/// `pedigree diff A B [--format json]`: per-tensor verdicts and one `relation`.
pub fn diff(args: &DiffArgs) -> anyhow::Result<u8> {
    let r = pdiff::diff(&Model::open(&args.a)?, &Model::open(&args.b)?)?;
    let text = match args.format {
        DiffFormat::Json => serde_json::to_string_pretty(&r)?,
        DiffFormat::Text => {
            let mut s = format!("{} vs {}: {}\n", r.a, r.b, r.relation.label());
            for t in &r.tensors {
                s += &format!(
                    "  {:<40} {:<40} {}\n",
                    t.a.as_deref().unwrap_or("-"),
                    t.b.as_deref().unwrap_or("-"),
                    serde_json::to_string(&t.verdict)?
                );
            }
            if !r.evidence.frozen.is_empty() {
                s += &format!("frozen: {}\n", r.evidence.frozen.join(", "));
            }
            for n in &r.evidence.notes {
                s += &format!("note: {n}\n");
            }
            s
        }
    };
    emit(args.output.as_ref(), &text)?;
    Ok(0)
}

#[derive(Clone, Copy, ValueEnum, Debug, PartialEq, Eq)]
pub enum LineageFormat {
    Json,
    Text,
    Dot,
    Mermaid,
}

#[derive(Args, Debug)]
pub struct LineageArgs {
    /// Models (files or directories; a directory with a README.md / config.json card is one model).
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
    #[arg(long, value_enum, default_value = "text")]
    pub format: LineageFormat,
    #[arg(short, long)]
    pub output: Option<PathBuf>,
}

/// `pedigree lineage PATH... [--format json|text|dot|mermaid]`; exit 1 on card findings.
pub fn lineage(args: &LineageArgs) -> anyhow::Result<u8> {
    let r = plin::lineage(&args.paths)?;
    let text = match args.format {
        LineageFormat::Json => serde_json::to_string_pretty(&r)?,
        LineageFormat::Text => r.to_text(),
        LineageFormat::Dot => r.to_dot(),
        LineageFormat::Mermaid => r.to_mermaid(),
    };
    emit(args.output.as_ref(), &text)?;
    Ok(if r.findings.is_empty() { 0 } else { 1 })
}

#[derive(Clone, Copy, ValueEnum, Debug, PartialEq, Eq)]
pub enum BomFormat {
    Cyclonedx,
    Spdx,
}

#[derive(Args, Debug)]
pub struct BomArgs {
    /// The model to describe.
    pub path: PathBuf,
    #[arg(long, value_enum, default_value = "cyclonedx")]
    pub format: BomFormat,
    /// Candidate ancestors: proven lineage among these becomes `pedigree.ancestors`.
    #[arg(long, num_args = 1..)]
    pub against: Vec<PathBuf>,
    /// Fixed timestamp (RFC 3339) for reproducible documents; default: now.
    #[arg(long)]
    pub timestamp: Option<String>,
    #[arg(short, long)]
    pub output: Option<PathBuf>,
}

fn now_rfc3339() -> String {
    // UTC from the system clock without a date crate: days-to-civil (Howard Hinnant).
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0) as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + if m <= 2 { 1 } else { 0 };
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// `pedigree bom PATH --format cyclonedx|spdx [--against MODEL...]`.
pub fn bom(args: &BomArgs) -> anyhow::Result<u8> {
    let fp: Fingerprint = pfp::fingerprint(&args.path)?;
    let lin = if args.against.is_empty() {
        None
    } else {
        let mut all = vec![args.path.clone()];
        all.extend(args.against.iter().cloned());
        Some(plin::lineage(&all)?)
    };
    let ts = args.timestamp.clone().unwrap_or_else(now_rfc3339);
    let doc = match args.format {
        BomFormat::Cyclonedx => bom::cyclonedx(&fp, lin.as_ref(), &ts)?,
        BomFormat::Spdx => bom::spdx(&fp, lin.as_ref(), &ts)?,
    };
    emit(args.output.as_ref(), &serde_json::to_string_pretty(&doc)?)?;
    Ok(0)
}
