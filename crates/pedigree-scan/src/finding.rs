//! Findings and per-file reports.

use serde::Serialize;

use crate::severity::Severity;

/// Where a finding is: the file, the chain of archive members inside it, and a byte offset in
/// the innermost stream when there is one. Source-code findings (`pedigree hygiene`) carry a
/// 1-based line and column instead; in a notebook they are counted within the code cell
/// `cell` (1-based index among all the notebook's cells).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, PartialOrd, Ord)]
pub struct Location {
    pub path: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub members: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub offset: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cell: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub column: Option<u32>,
}

impl Location {
    /// `file.pt!archive/data.pkl@123`, `train.py:12:5`, `nb.ipynb[cell 3]:2:1`
    pub fn display(&self) -> String {
        let mut s = self.path.clone();
        if let Some(c) = self.cell {
            s.push_str(&format!("[cell {c}]"));
        }
        if let Some(l) = self.line {
            s.push_str(&format!(":{l}"));
            if let Some(c) = self.column {
                s.push_str(&format!(":{c}"));
            }
        }
        for m in &self.members {
            s.push('!');
            s.push_str(m);
        }
        if let Some(o) = self.offset {
            s.push_str(&format!("@{o}"));
        }
        s
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    pub rule: &'static str,
    pub name: &'static str,
    pub severity: Severity,
    pub message: String,
    pub location: Location,
    /// For pickle-global findings: the global as `module.name` (after name mapping).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub global: Option<String>,
}

/// The result of scanning one file given on the command line or found in a directory.
#[derive(Debug, Clone, Serialize)]
pub struct FileReport {
    pub path: String,
    /// The detected format (by content), e.g. `torch-zip`.
    pub format: String,
    pub size: u64,
    pub findings: Vec<Finding>,
    /// Set when the file could not be scanned at all (I/O error); exit code 2.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl FileReport {
    pub fn max_severity(&self) -> Option<Severity> {
        self.findings.iter().map(|f| f.severity).max()
    }
}
