//! `pedigree-scan`: rules over `pedigree-formats` views.
//!
//! * [`rules`]: the rule registry (ids, severities, documentation).
//! * [`policy`]: allow/deny lists of pickle globals and severity overrides (`pedigree.toml`).
//! * [`scan_file`] / [`scan_paths`]: read files (recursing into directories) and turn what the
//!   readers saw into [`Finding`]s.

pub mod analyze;
pub mod analyze_formats;
pub mod finding;
pub mod lists;
pub mod policy;
pub mod rules;
pub mod severity;

use std::path::{Path, PathBuf};

use pedigree_formats::container::{self, ReadOptions};
use rayon::prelude::*;

pub use finding::{FileReport, Finding, Location};
pub use policy::Policy;
pub use severity::Severity;

/// Scans one file.
pub fn scan_file(path: &Path, policy: &Policy, opts: &ReadOptions) -> FileReport {
    let display = path.display().to_string();
    match container::read_path(path, opts) {
        Ok(artifact) => FileReport {
            path: display,
            format: format_name(artifact.format),
            size: artifact.size,
            findings: analyze::findings_for(&artifact, policy),
            error: None,
        },
        Err(e) => FileReport {
            path: display,
            format: "unknown".into(),
            size: 0,
            findings: Vec::new(),
            error: Some(e.to_string()),
        },
    }
}

/// The kebab-case name of a format, as in the JSON report.
pub fn format_name(format: container::Format) -> String {
    serde_json::to_value(format)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_else(|| "unknown".into())
}

/// Expands the command-line paths: files as given, directories walked recursively (symlinks
/// not followed, so a link cannot make the walk escape or loop), in a stable order.
pub fn expand_paths(paths: &[PathBuf]) -> Vec<Result<PathBuf, (PathBuf, String)>> {
    let mut out = Vec::new();
    for p in paths {
        match std::fs::metadata(p) {
            Ok(m) if m.is_dir() => {
                let mut files: Vec<_> = walkdir::WalkDir::new(p)
                    .follow_links(false)
                    .sort_by_file_name()
                    .into_iter()
                    .filter_map(|e| match e {
                        Ok(e) if e.file_type().is_file() => Some(Ok(e.into_path())),
                        Ok(_) => None,
                        Err(err) => {
                            let path = err
                                .path()
                                .map(Path::to_path_buf)
                                .unwrap_or_else(|| p.clone());
                            Some(Err((path, err.to_string())))
                        }
                    })
                    .collect();
                out.append(&mut files);
            }
            Ok(_) => out.push(Ok(p.clone())),
            Err(e) => out.push(Err((p.clone(), e.to_string()))),
        }
    }
    out
}

/// Scans every path (files and directories), in parallel, calling `progress` after each file.
/// Reports come back in the order of the expanded paths.
pub fn scan_paths(
    paths: &[PathBuf],
    policy: &Policy,
    opts: &ReadOptions,
    progress: &(dyn Fn(&Path) + Sync),
) -> Vec<FileReport> {
    let expanded = expand_paths(paths);
    expanded
        .par_iter()
        .map(|entry| match entry {
            Ok(path) => {
                let r = scan_file(path, policy, opts);
                progress(path);
                r
            }
            Err((path, err)) => FileReport {
                path: path.display().to_string(),
                format: "unknown".into(),
                size: 0,
                findings: Vec::new(),
                error: Some(format!("cannot read {}: {err}", path.display())),
            },
        })
        .collect()
}
