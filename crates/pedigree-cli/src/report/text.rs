//! Human-readable report. Colour only when writing to a terminal.

use pedigree_scan::{FileReport, Severity};

fn paint(colour: bool, sev: Severity, s: &str) -> String {
    if !colour {
        return s.to_string();
    }
    let code = match sev {
        Severity::Critical => "1;31",
        Severity::High => "31",
        Severity::Medium => "33",
        Severity::Low => "36",
        Severity::Info => "2",
    };
    format!("\x1b[{code}m{s}\x1b[0m")
}

pub fn render(reports: &[FileReport], fail_on: Severity, colour: bool, all: bool) -> String {
    let mut out = String::new();
    let mut counts = [0usize; 5];
    let mut errors = 0;
    for r in reports {
        if let Some(e) = &r.error {
            errors += 1;
            if e.starts_with("could not") {
                out.push_str(&format!("{}: {e}\n", r.path));
            } else {
                out.push_str(&format!("{}: could not scan: {e}\n", r.path));
            }
            continue;
        }
        if r.findings.is_empty() {
            if all {
                out.push_str(&format!("{} [{}]: clean\n", r.path, r.format));
            }
            continue;
        }
        out.push_str(&format!("{} [{}]\n", r.path, r.format));
        for f in &r.findings {
            counts[f.severity as usize] += 1;
            let tag = paint(colour, f.severity, &format!("{:<8}", f.severity.as_str()));
            let mut loc = String::new();
            for m in &f.location.members {
                loc.push_str(&format!(" in {m}"));
            }
            if let Some(o) = f.location.offset {
                loc.push_str(&format!(" at byte {o}"));
            }
            if let Some(c) = f.location.cell {
                loc.push_str(&format!(" in cell {c}"));
            }
            if let Some(l) = f.location.line {
                loc.push_str(&format!(" at line {l}"));
                if let Some(c) = f.location.column {
                    loc.push_str(&format!(", column {c}"));
                }
            }
            out.push_str(&format!(
                "  {tag} {} {}{}\n           {}\n",
                f.rule, f.name, loc, f.message
            ));
        }
    }
    let total: usize = counts.iter().sum();
    let failing: usize = Severity::ALL
        .iter()
        .filter(|s| **s >= fail_on)
        .map(|s| counts[*s as usize])
        .sum();
    let by_sev: Vec<String> = Severity::ALL
        .iter()
        .rev()
        .filter(|s| counts[**s as usize] > 0)
        .map(|s| format!("{} {}", counts[*s as usize], s))
        .collect();
    out.push_str(&format!(
        "\nscanned {} file(s): {} finding(s){}{}; {} at or above {}{}\n",
        reports.len(),
        total,
        if by_sev.is_empty() {
            String::new()
        } else {
            " (".to_string()
        },
        if by_sev.is_empty() {
            String::new()
        } else {
            format!("{})", by_sev.join(", "))
        },
        failing,
        fail_on,
        if errors > 0 {
            format!("; {errors} file(s) could not be scanned")
        } else {
            String::new()
        },
    ));
    out
}
