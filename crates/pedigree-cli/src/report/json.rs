//! The JSON report: a documented, versioned schema (docs/scan-report.schema.json).
//!
//! `schema_version` changes only when a field is removed or changes meaning; new fields may be
//! added within a version.

use pedigree_scan::{FileReport, Severity};
use serde::Serialize;

pub const SCHEMA: &str = "https://pedigree.dev/schemas/scan-report/1";
pub const SCHEMA_VERSION: u32 = 1;

#[derive(Serialize)]
struct Report<'a> {
    schema: &'static str,
    schema_version: u32,
    tool: Tool,
    fail_on: Severity,
    summary: Summary,
    files: &'a [FileReport],
}

#[derive(Serialize)]
struct Tool {
    name: &'static str,
    version: &'static str,
}

#[derive(Serialize)]
struct Summary {
    files: usize,
    files_with_findings: usize,
    errors: usize,
    findings: usize,
    by_severity: std::collections::BTreeMap<&'static str, usize>,
    max_severity: Option<Severity>,
    failed: bool,
}

pub fn render(reports: &[FileReport], fail_on: Severity) -> anyhow::Result<String> {
    let mut by_severity = std::collections::BTreeMap::new();
    for s in Severity::ALL {
        by_severity.insert(s.as_str(), 0usize);
    }
    for f in reports.iter().flat_map(|r| &r.findings) {
        *by_severity.entry(f.severity.as_str()).or_default() += 1;
    }
    let max_severity = reports.iter().filter_map(|r| r.max_severity()).max();
    let report = Report {
        schema: SCHEMA,
        schema_version: SCHEMA_VERSION,
        tool: Tool {
            name: "pedigree",
            version: env!("CARGO_PKG_VERSION"),
        },
        fail_on,
        summary: Summary {
            files: reports.len(),
            files_with_findings: reports.iter().filter(|r| !r.findings.is_empty()).count(),
            errors: reports.iter().filter(|r| r.error.is_some()).count(),
            findings: reports.iter().map(|r| r.findings.len()).sum(),
            by_severity,
            max_severity,
            failed: max_severity.is_some_and(|m| m >= fail_on),
        },
        files: reports,
    };
    let mut s = serde_json::to_string_pretty(&report)?;
    s.push('\n');
    Ok(s)
}
