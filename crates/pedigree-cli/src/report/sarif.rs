//! SARIF 2.1.0 output (checked against the official schema in the tests).

use pedigree_scan::{FileReport, Severity, rules};
use serde_json::{Value, json};

fn level(s: Severity) -> &'static str {
    match s {
        Severity::Critical | Severity::High => "error",
        Severity::Medium => "warning",
        Severity::Low | Severity::Info => "note",
    }
}

/// A SARIF "security-severity" score (0-10) as GitHub code scanning reads it.
fn score(s: Severity) -> &'static str {
    match s {
        Severity::Critical => "9.5",
        Severity::High => "8.0",
        Severity::Medium => "5.5",
        Severity::Low => "3.0",
        Severity::Info => "0.0",
    }
}

fn uri(path: &str) -> String {
    // SARIF wants a URI reference: relative paths stay relative, separators are '/', and
    // characters that are not allowed in a URI are percent-encoded.
    let mut out = String::new();
    for b in path.replace('\\', "/").bytes() {
        if b.is_ascii_alphanumeric() || b"-._~/!$&'()*+,;=:@".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

pub fn render(reports: &[FileReport]) -> anyhow::Result<String> {
    let rule_index = |id: &str| rules::RULES.iter().position(|r| r.id == id).unwrap_or(0);
    let driver_rules: Vec<Value> = rules::RULES
        .iter()
        .map(|r| {
            json!({
                "id": r.id,
                "name": r.name,
                "shortDescription": { "text": r.summary },
                "fullDescription": { "text": r.what.split_whitespace().collect::<Vec<_>>().join(" ") },
                "help": { "text": rules::render_one(r, false), "markdown": rules::render_one(r, true) },
                "defaultConfiguration": { "level": level(r.severity) },
                "properties": {
                    "security-severity": score(r.severity),
                    "tags": if r.id.starts_with("PDG6") { json!(["security", "ml-supply-chain", "python"]) } else { json!(["security", "ml-model"]) },
                    "references": r.references,
                },
            })
        })
        .collect();
    let mut results = Vec::new();
    let mut notifications = Vec::new();
    for report in reports {
        if let Some(e) = &report.error {
            notifications.push(json!({
                "level": "error",
                "message": { "text": if e.starts_with("could not") { format!("{}: {e}", report.path) } else { format!("could not scan {}: {e}", report.path) } },
                "locations": [{ "physicalLocation": { "artifactLocation": { "uri": uri(&report.path) } } }],
            }));
        }
        for f in &report.findings {
            let mut physical = json!({ "artifactLocation": { "uri": uri(&f.location.path) } });
            if f.location.members.is_empty() {
                if let Some(o) = f.location.offset {
                    physical["region"] = json!({ "byteOffset": o });
                }
            }
            // Source findings (`pedigree hygiene`): a region with 1-based line and column. In a
            // notebook the code's lines are not the lines of the .ipynb JSON, so no region is
            // given; the cell and the line/column in it go in the message, a logical location
            // and properties.
            let mut text = f.message.clone();
            match (f.location.cell, f.location.line) {
                (None, Some(line)) => {
                    let mut region = json!({ "startLine": line });
                    if let Some(c) = f.location.column {
                        region["startColumn"] = json!(c);
                    }
                    physical["region"] = region;
                }
                (Some(cell), Some(line)) => {
                    text = format!(
                        "cell {cell}, line {line}, column {}: {text}",
                        f.location.column.unwrap_or(1)
                    );
                }
                _ => {}
            }
            let mut result = json!({
                "ruleId": f.rule,
                "ruleIndex": rule_index(f.rule),
                "level": level(f.severity),
                "message": { "text": text },
                "locations": [{ "physicalLocation": physical }],
                "properties": { "severity": f.severity.as_str(), "format": report.format },
            });
            if !f.location.members.is_empty() {
                // A member inside an archive: SARIF has no nested-archive location, so the chain
                // goes in a logical location and in properties.
                result["locations"][0]["logicalLocations"] = json!([{
                    "fullyQualifiedName": f.location.members.join("!"),
                    "kind": "member",
                }]);
                result["properties"]["members"] = json!(f.location.members);
                if let Some(o) = f.location.offset {
                    result["properties"]["memberByteOffset"] = json!(o);
                }
            }
            if let (Some(cell), Some(line)) = (f.location.cell, f.location.line) {
                result["locations"][0]["logicalLocations"] = json!([{
                    "fullyQualifiedName": format!("cell[{cell}]"),
                    "kind": "module",
                }]);
                result["properties"]["notebookCell"] = json!(cell);
                result["properties"]["lineInCell"] = json!(line);
                result["properties"]["columnInCell"] = json!(f.location.column.unwrap_or(1));
            }
            if let Some(g) = &f.global {
                result["properties"]["global"] = json!(g);
            }
            results.push(result);
        }
    }
    let log = json!({
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [{
            "tool": { "driver": {
                "name": "pedigree",
                "version": env!("CARGO_PKG_VERSION"),
                "informationUri": "https://example.invalid/pedigree",
                "rules": driver_rules,
            }},
            "invocations": [{
                "executionSuccessful": notifications.is_empty(),
                "toolExecutionNotifications": notifications,
            }],
            "results": results,
        }],
    });
    let mut s = serde_json::to_string_pretty(&log)?;
    s.push('\n');
    Ok(s)
}
