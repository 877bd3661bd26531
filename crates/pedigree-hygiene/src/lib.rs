//! `pedigree-hygiene`: finds unsafe model loading in the Python code (files, directories and
//! Jupyter notebooks) that consumes models: unsafe deserialization, `trust_remote_code=True`,
//! hub loads without a pinned commit, unvetted publishers, typosquatted repository ids,
//! pickle-format weight downloads, unpinned `torch.hub.load`, Keras `safe_mode=False`.
//!
//! Code is parsed with `rustpython-parser` (the parser of the remote-code analysis in
//! `pedigree-formats`), never imported or run. Findings use the scanner's rule registry
//! (PDG6xx) and report types, so the CLI renders them like `pedigree scan`'s.
//!
//! * [`check_source`]: one Python file or notebook, given as bytes.
//! * [`check_paths`]: files and directories (walked, see [`SKIP_DIRS`]), in parallel.
//! * [`allow::AllowList`]: approved models and publishers.

pub mod allow;
pub mod analyze;
pub mod names;

use std::path::{Path, PathBuf};

use pedigree_formats::python::{
    MAX_NESTING, PARSE_STACK, line_col, line_starts, max_nesting, on_big_stack,
};
use pedigree_scan::{FileReport, Finding, Location, rules};
use rayon::prelude::*;
use rustpython_ast::Visitor;
use rustpython_parser::{Parse, ast};
use serde_json::Value;

pub use allow::AllowList;

/// Largest Python file analysed.
pub const MAX_SOURCE: u64 = 4 << 20;
/// Largest notebook read (outputs with images make them big; only code cells are analysed).
pub const MAX_NOTEBOOK: u64 = 32 << 20;
/// Most cells read from one notebook.
pub const MAX_CELLS: usize = 10_000;
/// Directories skipped while walking a directory given on the command line (a directory
/// given explicitly is always analysed, even if its name is here): version control, virtual
/// environments and installed packages (third-party code, not the project's), caches.
pub const SKIP_DIRS: &[&str] = &[
    ".git",
    ".hg",
    ".svn",
    "venv",
    ".venv",
    "env",
    ".env",
    "node_modules",
    "site-packages",
    "dist-packages",
    "__pycache__",
    ".tox",
    ".nox",
    ".mypy_cache",
    ".pytest_cache",
    ".ipynb_checkpoints",
    ".eggs",
];

/// What `check_*` is given besides the code.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Approved models and publishers; `None`: no allow-list (PDG608/PDG609 are silent).
    pub allow: Option<AllowList>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Python,
    Notebook,
}

impl Kind {
    /// `.ipynb` is a notebook; anything else is read as Python.
    pub fn of(path: &Path) -> Kind {
        match path.extension().and_then(|e| e.to_str()) {
            Some(e) if e.eq_ignore_ascii_case("ipynb") => Kind::Notebook,
            _ => Kind::Python,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Kind::Python => "python",
            Kind::Notebook => "notebook",
        }
    }
}

/// Analyses one file's bytes (on a thread of its own with a large stack).
pub fn check_source(path: &str, kind: Kind, data: &[u8], opts: &Options) -> FileReport {
    let (p, d, o) = (path.to_string(), data.to_vec(), opts.clone());
    on_big_stack(move || check_source_here(&p, kind, &d, &o)).unwrap_or_else(|e| {
        error_report(
            path,
            kind,
            data.len() as u64,
            format!("could not analyse: {e}"),
        )
    })
}

/// Reads and analyses one file. Must run on a thread with [`PARSE_STACK`] of stack.
fn check_file_here(path: &Path, opts: &Options) -> FileReport {
    let kind = Kind::of(path);
    let display = path.display().to_string();
    let limit = match kind {
        Kind::Python => MAX_SOURCE,
        Kind::Notebook => MAX_NOTEBOOK,
    };
    match std::fs::metadata(path) {
        Ok(m) if m.len() > limit => error_report(
            &display,
            kind,
            m.len(),
            format!(
                "could not analyse: {} bytes, over the {limit}-byte limit",
                m.len()
            ),
        ),
        Ok(_) => match std::fs::read(path) {
            Ok(d) => check_source_here(&display, kind, &d, opts),
            Err(e) => error_report(&display, kind, 0, format!("cannot read {display}: {e}")),
        },
        Err(e) => error_report(&display, kind, 0, format!("cannot read {display}: {e}")),
    }
}

fn error_report(path: &str, kind: Kind, size: u64, error: String) -> FileReport {
    FileReport {
        path: path.to_string(),
        format: kind.name().into(),
        size,
        findings: Vec::new(),
        error: Some(error),
    }
}

fn check_source_here(path: &str, kind: Kind, data: &[u8], opts: &Options) -> FileReport {
    let size = data.len() as u64;
    let (src, cells) = match kind {
        Kind::Python => {
            if size > MAX_SOURCE {
                return error_report(
                    path,
                    kind,
                    size,
                    format!("could not analyse: {size} bytes, over the {MAX_SOURCE}-byte limit"),
                );
            }
            (String::from_utf8_lossy(data).into_owned(), None)
        }
        Kind::Notebook => {
            if size > MAX_NOTEBOOK {
                return error_report(
                    path,
                    kind,
                    size,
                    format!("could not analyse: {size} bytes, over the {MAX_NOTEBOOK}-byte limit"),
                );
            }
            match notebook_source(data) {
                Ok((s, c)) => (s, Some(c)),
                Err(e) => return error_report(path, kind, size, format!("could not analyse: {e}")),
            }
        }
    };
    let mut report = FileReport {
        path: path.to_string(),
        format: kind.name().into(),
        size,
        findings: Vec::new(),
        error: None,
    };
    if max_nesting(&src) > MAX_NESTING {
        report.error = Some(format!(
            "could not analyse: brackets nested deeper than {MAX_NESTING}"
        ));
        return report;
    }
    let starts = line_starts(&src);
    let place = |offset: usize| -> (Option<u32>, u32, u32) {
        let (line, col) = line_col(&src, &starts, offset);
        match &cells {
            Some(c) => {
                let (cell, l) = c.locate(line);
                (Some(cell), l as u32, col as u32)
            }
            None => (None, line as u32, col as u32),
        }
    };
    let describe = |(cell, line, col): (Option<u32>, u32, u32)| match cell {
        Some(c) => format!("cell {c}, line {line}, column {col}"),
        None => format!("line {line}, column {col}"),
    };
    let suite = match ast::Suite::parse(&src, path) {
        Ok(s) => s,
        Err(e) => {
            let at = describe(place(usize::from(e.offset)));
            report.error = Some(format!(
                "could not analyse: Python syntax error at {at} (the parser reads Python up to 3.11): {}",
                e.error
            ));
            return report;
        }
    };
    let mut w = analyze::Walker::new(opts.allow.as_ref(), &suite);
    for s in suite {
        w.visit_stmt(s);
    }
    if w.too_deep {
        report.error = Some(format!(
            "could not analyse fully: code nested deeper than {} levels (findings so far are listed)",
            analyze::MAX_DEPTH
        ));
    }
    let lines: Vec<&str> = src.split('\n').collect();
    let mut findings = Vec::new();
    for h in w.hits {
        let first = pedigree_formats::python::line_of(&starts, h.start);
        let last = pedigree_formats::python::line_of(&starts, h.end.saturating_sub(1).max(h.start));
        if (first..=last).any(|l| suppressed(lines.get(l - 1).copied().unwrap_or(""), h.rule)) {
            continue;
        }
        let (cell, line, column) = place(h.start);
        let rule = rules::get(h.rule);
        findings.push(Finding {
            rule: rule.id,
            name: rule.name,
            severity: rule.severity,
            message: h.message,
            location: Location {
                path: path.to_string(),
                cell,
                line: Some(line),
                column: Some(column),
                ..Default::default()
            },
            global: None,
        });
    }
    findings.sort_by(|a, b| {
        (a.location.cell, a.location.line, a.location.column, a.rule).cmp(&(
            b.location.cell,
            b.location.line,
            b.location.column,
            b.rule,
        ))
    });
    report.findings = findings;
    report
}

/// `# pedigree: ignore` (every rule) or `# pedigree: ignore[PDG603, PDG607]` in a comment on a
/// line of the call.
fn suppressed(line: &str, rule: &str) -> bool {
    let Some(hash) = line.find('#') else {
        return false;
    };
    let mut rest = &line[hash..];
    while let Some(i) = rest.find("pedigree:") {
        let after = rest[i + "pedigree:".len()..].trim_start();
        if let Some(tail) = after.strip_prefix("ignore") {
            match tail.strip_prefix('[') {
                Some(list) => {
                    let list = list.split(']').next().unwrap_or("");
                    if list.split(',').any(|r| r.trim().eq_ignore_ascii_case(rule)) {
                        return true;
                    }
                }
                None => return true,
            }
        }
        rest = &rest[i + 1..];
    }
    false
}

/// Where each code cell starts in the concatenated notebook source.
struct CellMap {
    /// (1-based cell index among all cells, 1-based first line in the concatenation)
    starts: Vec<(u32, usize)>,
}

impl CellMap {
    fn locate(&self, line: usize) -> (u32, usize) {
        let i = self.starts.partition_point(|&(_, s)| s <= line);
        match i.checked_sub(1).and_then(|i| self.starts.get(i)) {
            Some(&(cell, s)) => (cell, line - s + 1),
            None => (0, line),
        }
    }
}

/// Cell magics whose body is still Python.
const PYTHON_CELL_MAGICS: &[&str] = &["time", "timeit", "capture", "prun", "debug"];

/// The code cells of a notebook (nbformat 4) as one Python text, so that constants defined in
/// one cell are seen in later ones. IPython lines (`%magic`, `!shell`) become `pass` (keeping
/// the line numbering); cells of non-Python cell magics (`%%bash`) are left out.
fn notebook_source(data: &[u8]) -> Result<(String, CellMap), String> {
    let v: Value =
        serde_json::from_slice(data).map_err(|e| format!("not a notebook (invalid JSON: {e})"))?;
    let cells = v
        .get("cells")
        .and_then(Value::as_array)
        .ok_or("not a notebook: no \"cells\" array (nbformat 4)")?;
    if cells.len() > MAX_CELLS {
        return Err(format!(
            "{} cells, over the {MAX_CELLS}-cell limit",
            cells.len()
        ));
    }
    let mut src = String::new();
    let mut map = CellMap { starts: Vec::new() };
    let mut next_line = 1usize;
    for (i, c) in cells.iter().enumerate() {
        if c.get("cell_type").and_then(Value::as_str) != Some("code") {
            continue;
        }
        let text = match c.get("source") {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).collect(),
            _ => String::new(),
        };
        let first = text.lines().next().unwrap_or("").trim_start();
        if let Some(m) = first.strip_prefix("%%") {
            let name = m.split_whitespace().next().unwrap_or("");
            if !PYTHON_CELL_MAGICS.contains(&name) {
                continue;
            }
        }
        let mut cell = String::new();
        for line in text.split('\n') {
            let t = line.trim_start();
            if t.starts_with('%') || t.starts_with('!') {
                cell.push_str(&line[..line.len() - t.len()]);
                cell.push_str("pass");
            } else {
                cell.push_str(line.trim_end_matches('\r'));
            }
            cell.push('\n');
        }
        map.starts.push((i as u32 + 1, next_line));
        next_line += cell.matches('\n').count();
        src.push_str(&cell);
    }
    Ok((src, map))
}

/// Expands the command-line paths: files as given (any extension; `.ipynb` is a notebook, the
/// rest Python), directories walked for `.py` and `.ipynb` files without following symlinks,
/// skipping [`SKIP_DIRS`] below the given directory, in a stable order.
pub fn expand_paths(paths: &[PathBuf]) -> Vec<Result<PathBuf, (PathBuf, String)>> {
    let mut out = Vec::new();
    for p in paths {
        match std::fs::metadata(p) {
            Ok(m) if m.is_dir() => {
                let walk = walkdir::WalkDir::new(p)
                    .follow_links(false)
                    .sort_by_file_name()
                    .into_iter()
                    .filter_entry(|e| {
                        e.depth() == 0
                            || !e.file_type().is_dir()
                            || !e
                                .file_name()
                                .to_str()
                                .is_some_and(|n| SKIP_DIRS.contains(&n))
                    });
                for e in walk {
                    match e {
                        Ok(e) if e.file_type().is_file() => {
                            let ext = e.path().extension().and_then(|x| x.to_str());
                            if matches!(ext, Some("py" | "ipynb")) {
                                out.push(Ok(e.into_path()));
                            }
                        }
                        Ok(_) => {}
                        Err(err) => {
                            let path = err
                                .path()
                                .map(Path::to_path_buf)
                                .unwrap_or_else(|| p.clone());
                            out.push(Err((path, err.to_string())));
                        }
                    }
                }
            }
            Ok(_) => out.push(Ok(p.clone())),
            Err(e) => out.push(Err((p.clone(), e.to_string()))),
        }
    }
    out
}

/// Analyses every path (files and directories) in parallel; reports in the order of
/// [`expand_paths`].
pub fn check_paths(paths: &[PathBuf], opts: &Options) -> Vec<FileReport> {
    let expanded = expand_paths(paths);
    let run = || -> Vec<FileReport> {
        expanded
            .par_iter()
            .map(|entry| match entry {
                Ok(path) => check_file_here(path, opts),
                Err((path, err)) => error_report(
                    &path.display().to_string(),
                    Kind::of(path),
                    0,
                    format!("cannot read {}: {err}", path.display()),
                ),
            })
            .collect()
    };
    // The parser and the walk recurse: the workers get the same large stack as `check_source`.
    match rayon::ThreadPoolBuilder::new()
        .stack_size(PARSE_STACK)
        .build()
    {
        Ok(pool) => pool.install(run),
        Err(_) => expanded
            .iter()
            .map(|entry| match entry {
                Ok(path) => {
                    let (p, o) = (path.clone(), opts.clone());
                    on_big_stack(move || check_file_here(&p, &o)).unwrap_or_else(|e| {
                        error_report(&path.display().to_string(), Kind::of(path), 0, e)
                    })
                }
                Err((path, err)) => error_report(
                    &path.display().to_string(),
                    Kind::of(path),
                    0,
                    format!("cannot read {}: {err}", path.display()),
                ),
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suppression_comments() {
        assert!(suppressed(
            "x = pickle.load(f)  # pedigree: ignore",
            "PDG603"
        ));
        assert!(suppressed(
            "x = f()  # pedigree: ignore[PDG601, pdg603]",
            "PDG603"
        ));
        assert!(!suppressed("x = f()  # pedigree: ignore[PDG601]", "PDG603"));
        assert!(!suppressed("x = f()  # noqa", "PDG603"));
        assert!(!suppressed("x = 'pedigree: ignore'", "PDG603"));
    }

    #[test]
    fn hostile_inputs_are_bounded_and_named() {
        let o = Options::default();
        let deep = format!("x = {}1{}\n", "(".repeat(5000), ")".repeat(5000));
        let r = check_source("deep.py", Kind::Python, deep.as_bytes(), &o);
        assert!(
            r.error.as_deref().unwrap().contains("nested deeper"),
            "{:?}",
            r.error
        );
        // A long operator chain is deep without brackets.
        let chain = format!("x = {}1\n", "1 + ".repeat(50_000));
        let r = check_source("chain.py", Kind::Python, chain.as_bytes(), &o);
        assert!(
            r.error
                .as_deref()
                .is_some_and(|e| e.contains("nested deeper")),
            "{:?}",
            r.error
        );
        let r = check_source("bad.ipynb", Kind::Notebook, b"{\"cells\": 3}", &o);
        assert!(r.error.unwrap().contains("no \"cells\""));
        let r = check_source("syntax.py", Kind::Python, b"import torch\ndef f(:\n", &o);
        let e = r.error.unwrap();
        assert!(e.contains("line 2"), "{e}");
        let seed = br#"{"cells":[{"cell_type":"code","source":["import torch\n","torch.load(p, weights_only=False)\n"]}]}"#;
        pedigree_formats::fuzz_util::mutate_many(seed, 300, 0x61, |d| {
            let _ = check_source("m.ipynb", Kind::Notebook, d, &o);
        });
        let py = b"import torch as T\nfrom transformers import AutoModel\nM='a/b'\ndef f(x, **kw):\n    T.load(x, weights_only=kw)\n    AutoModel.from_pretrained(M, revision=x, trust_remote_code=True)\n";
        pedigree_formats::fuzz_util::mutate_many(py, 300, 0x62, |d| {
            let _ = check_source("m.py", Kind::Python, d, &o);
        });
    }
}
