//! The fixture code base (`tests/hygiene-fixtures`): every vulnerable file yields exactly the
//! listed findings (rule, cell, line, column), every fixed file none. See the fixtures' README
//! for what each file shows.

use std::path::{Path, PathBuf};

use pedigree_hygiene::{AllowList, Options, check_paths};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/hygiene-fixtures")
}

fn allow() -> Options {
    Options {
        allow: Some(AllowList::from_file(&fixtures().join("allow.toml")).expect("allow.toml")),
    }
}

/// (rule, cell, line, column) of every finding of one file.
fn found(rel: &str, opts: &Options) -> Vec<(String, Option<u32>, u32, u32)> {
    let reports = check_paths(&[fixtures().join(rel)], opts);
    assert_eq!(reports.len(), 1, "{rel}");
    let r = &reports[0];
    assert!(r.error.is_none(), "{rel}: {:?}", r.error);
    r.findings
        .iter()
        .map(|f| {
            (
                f.rule.to_string(),
                f.location.cell,
                f.location.line.expect("line"),
                f.location.column.expect("column"),
            )
        })
        .collect()
}

fn expect(rel: &str, opts: &Options, want: &[(&str, u32, u32)]) {
    let got = found(rel, opts);
    let want: Vec<_> = want
        .iter()
        .map(|(r, l, c)| (r.to_string(), None, *l, *c))
        .collect();
    assert_eq!(got, want, "{rel}");
}

#[test]
fn vulnerable_files_give_exact_findings() {
    let none = Options::default();
    expect(
        "vulnerable/torch_load.py",
        &none,
        &[
            ("PDG601", 7, 12),  // weights_only=False
            ("PDG602", 11, 12), // weights_only missing
            ("PDG601", 15, 9),  // import torch as T
            ("PDG602", 16, 9),  // from torch import load
            ("PDG601", 22, 12), // wo = False; weights_only=wo
            ("PDG601", 28, 12), // **{"weights_only": False}
            ("PDG601", 28, 36), // **dict(weights_only=False)
            ("PDG602", 32, 12), // a parameter: not provably True
            ("PDG602", 38, 12), // a **dict changed by item assignment: unknown
        ],
    );
    expect(
        "vulnerable/pickle_loaders.py",
        &none,
        &[
            ("PDG603", 9, 9),
            ("PDG603", 10, 9),
            ("PDG603", 11, 9),
            ("PDG603", 12, 9),
            ("PDG603", 13, 9),
        ],
    );
    expect(
        "vulnerable/numpy_allow_pickle.py",
        &none,
        &[("PDG604", 7, 9), ("PDG604", 8, 9), ("PDG604", 9, 9)],
    );
    expect(
        "vulnerable/keras_safe_mode.py",
        &none,
        &[("PDG605", 6, 9), ("PDG605", 8, 9)],
    );
    expect(
        "vulnerable/trust_remote_code.py",
        &none,
        &[("PDG606", 8, 9), ("PDG606", 10, 9), ("PDG606", 12, 9)],
    );
    expect(
        "vulnerable/unpinned_revision.py",
        &none,
        &[
            ("PDG607", 11, 12), // repo id via a module constant, no revision
            ("PDG607", 15, 9),  // revision="main"
            ("PDG607", 16, 9),  // revision="v1.0" (SentenceTransformer)
            ("PDG607", 22, 9),  // local constant, diffusers
            ("PDG607", 23, 9),  // hf_hub_download
            ("PDG607", 24, 9),  // snapshot_download, revision from a parameter
            ("PDG607", 25, 9),  // pipeline(model=...)
        ],
    );
    expect(
        "vulnerable/typosquat.py",
        &none,
        &[
            ("PDG610", 5, 5),
            ("PDG610", 6, 5),
            ("PDG610", 7, 5),
            ("PDG610", 8, 5),
        ],
    );
    expect(
        "vulnerable/pickle_weights_download.py",
        &none,
        &[("PDG611", 7, 5), ("PDG611", 8, 5), ("PDG611", 9, 5)],
    );
    expect(
        "vulnerable/torch_hub.py",
        &none,
        &[("PDG612", 3, 5), ("PDG612", 4, 5)],
    );
    expect(
        "vulnerable/allowlist.py",
        &allow(),
        &[
            ("PDG608", 4, 5), // unvetted publisher
            ("PDG609", 5, 5), // approved model, other commit
            ("PDG608", 6, 5), // near an approved id: unvetted ...
            ("PDG610", 6, 5), // ... and a typosquat of it
        ],
    );
    // Without an allow-list the approved-set rules are silent; the near-miss of an approved
    // id is not near anything popular.
    expect("vulnerable/allowlist.py", &none, &[]);
}

#[test]
fn notebook_findings_name_cell_and_line_in_cell() {
    let got = found("vulnerable/notebook.ipynb", &Options::default());
    let want = vec![
        ("PDG601".to_string(), Some(3), 2, 9), // after a `!ls` line
        ("PDG606".to_string(), Some(5), 1, 9), // MODEL defined in cell 2
        ("PDG607".to_string(), Some(5), 1, 9),
    ];
    assert_eq!(got, want);
}

#[test]
fn messages_say_what_is_unknown() {
    let reports = check_paths(
        &[fixtures().join("vulnerable/unpinned_revision.py")],
        &Options::default(),
    );
    let m: Vec<&str> = reports[0]
        .findings
        .iter()
        .map(|f| f.message.as_str())
        .collect();
    assert!(
        m[5].contains("not provable") && m[5].contains("`rev` is a parameter"),
        "{}",
        m[5]
    );
    assert!(m[1].contains("\"main\""), "{}", m[1]);
    let reports = check_paths(
        &[fixtures().join("vulnerable/unpinned_revision.py")],
        &allow(),
    );
    let m: Vec<&str> = reports[0]
        .findings
        .iter()
        .map(|f| f.message.as_str())
        .collect();
    assert!(
        m[0].contains("(approved publisher `google-bert`)"),
        "{}",
        m[0]
    );
    assert!(m.iter().any(|x| x.contains("(unvetted)")), "{m:?}");
}

#[test]
fn changed_kwargs_dict_is_unknown_not_missing() {
    let reports = check_paths(
        &[fixtures().join("vulnerable/torch_load.py")],
        &Options::default(),
    );
    let last = reports[0].findings.last().unwrap();
    assert!(
        last.message
            .contains("`extra` is changed by item assignment")
            && last.message.contains("may set it"),
        "{}",
        last.message
    );
}

#[test]
fn fixed_files_are_clean() {
    let reports = check_paths(&[fixtures().join("fixed")], &Options::default());
    assert!(reports.len() >= 11, "{}", reports.len());
    for r in &reports {
        assert!(r.error.is_none(), "{}: {:?}", r.path, r.error);
        if r.path.ends_with("allowlist.py") {
            continue;
        }
        assert!(r.findings.is_empty(), "{}: {:#?}", r.path, r.findings);
    }
    assert_eq!(found("fixed/allowlist.py", &allow()), vec![]);
}

#[test]
fn suppression_comment_silences_only_its_rule() {
    let src = b"import pickle\nx = pickle.load(f)  # pedigree: ignore[PDG603]\ny = pickle.load(f)  # pedigree: ignore[PDG601]\nz = pickle.load(\n    f,  # pedigree: ignore\n)\n";
    let r = pedigree_hygiene::check_source(
        "s.py",
        pedigree_hygiene::Kind::Python,
        src,
        &Options::default(),
    );
    let lines: Vec<u32> = r
        .findings
        .iter()
        .map(|f| f.location.line.unwrap())
        .collect();
    assert_eq!(lines, vec![3]);
}

#[test]
fn directory_walk_skips_vendored_trees_unless_named() {
    let tmp = tempfile::tempdir().unwrap();
    let bad = b"import pickle\npickle.load(f)\n";
    for d in [
        "src",
        ".venv/lib",
        "node_modules/x",
        "lib/site-packages/pkg",
        ".git",
    ] {
        std::fs::create_dir_all(tmp.path().join(d)).unwrap();
        std::fs::write(tmp.path().join(d).join("m.py"), bad).unwrap();
    }
    std::fs::write(tmp.path().join("src/notes.txt"), bad).unwrap();
    let reports = check_paths(&[tmp.path().to_path_buf()], &Options::default());
    let paths: Vec<&str> = reports.iter().map(|r| r.path.as_str()).collect();
    assert_eq!(paths.len(), 1, "{paths:?}");
    assert!(paths[0].ends_with("src/m.py"));
    // Named explicitly, a skipped directory is analysed.
    let sp = tmp.path().join("lib/site-packages");
    assert_eq!(check_paths(&[sp], &Options::default()).len(), 1);
}

#[test]
fn syntax_errors_name_file_and_line() {
    let tmp = tempfile::tempdir().unwrap();
    let p = tmp.path().join("new_syntax.py");
    // PEP 701 (Python 3.12) nested quotes in an f-string: rustpython 0.4 does not read them.
    std::fs::write(&p, "import torch\n\nx = f\"{d[\"k\"]}\"\n").unwrap();
    let r = &check_paths(std::slice::from_ref(&p), &Options::default())[0];
    let e = r.error.as_deref().expect("error");
    assert!(r.path.ends_with("new_syntax.py"));
    assert!(e.contains("line 3"), "{e}");
}
