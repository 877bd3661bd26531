//! End-to-end tests of `pedigree scan`, `disasm` and `rules` over the committed corpus
//! (`tests/corpus`, made by `tests/corpus/make_corpus.py`; its `expected.json` is the
//! specification of what each sample must produce, written from how each sample was built).

mod support;

use support::{pedigree, validator};

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde_json::Value;

fn corpus() -> PathBuf {
    support::repo_root().join("tests/corpus")
}

fn scan_json(path: &Path) -> (i32, Value) {
    let p = path.to_str().unwrap();
    let (code, stdout, stderr) = pedigree(&["scan", "--format", "json", p]);
    let v: Value =
        serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("bad JSON for {p}: {e}\n{stderr}"));
    (code, v)
}

fn expected() -> Vec<Value> {
    let text = std::fs::read_to_string(corpus().join("expected.json"))
        .expect("tests/corpus/expected.json");
    let v: Value = serde_json::from_str(&text).expect("expected.json is JSON");
    match v {
        Value::Array(a) => a,
        Value::Object(mut o) => match o.remove("samples") {
            Some(Value::Array(a)) => a,
            _ => panic!("expected.json: no samples array"),
        },
        _ => panic!("expected.json: unexpected shape"),
    }
}

/// Every sample produces exactly the rules its specification lists, names the globals it lists,
/// is detected as the format it is, and every clean sample is clean.
#[test]
fn corpus_matches_its_specification() {
    let mut failures = Vec::new();
    let samples = expected();
    assert!(
        samples.len() >= 40,
        "the corpus should cover every bypass class, containers and clean files"
    );
    let schema = validator("scan-report.schema.json");
    for s in &samples {
        let rel = s["path"].as_str().unwrap();
        let path = corpus().join(rel);
        let (code, report) = scan_json(&path);
        if let Err(e) = schema.validate(&report) {
            failures.push(format!("{rel}: report does not match our JSON schema: {e}"));
        }
        let file = &report["files"][0];
        let got_rules: BTreeSet<String> = file["findings"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["rule"].as_str().unwrap().to_string())
            .collect();
        let want_rules: BTreeSet<String> = s["rules"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r.as_str().unwrap().to_string())
            .collect();
        if got_rules != want_rules {
            failures.push(format!(
                "{rel}: rules {:?}, expected {:?}\n    {}",
                got_rules,
                want_rules,
                file["findings"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|f| format!("{} {}", f["rule"], f["message"]))
                    .collect::<Vec<_>>()
                    .join("\n    ")
            ));
        }
        let named: BTreeSet<String> = file["findings"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|f| f["rule"] == "PDG101")
            .filter_map(|f| f["global"].as_str().map(str::to_string))
            .collect();
        for g in s["globals"].as_array().map(|a| a.as_slice()).unwrap_or(&[]) {
            let g = g.as_str().unwrap();
            if !named.contains(g) {
                failures.push(format!(
                    "{rel}: PDG101 does not name {g} (named: {named:?})"
                ));
            }
        }
        if let Some(fmt) = s["format"].as_str() {
            if file["format"] != fmt {
                failures.push(format!("{rel}: format {} expected {fmt}", file["format"]));
            }
        }
        let clean = s["clean"].as_bool().unwrap();
        if clean && code != 0 {
            failures.push(format!("{rel}: clean sample exited {code}"));
        }
        if !clean && want_rules.iter().any(|r| r == "PDG101") && code != 1 {
            failures.push(format!("{rel}: malicious sample exited {code}"));
        }
    }
    assert!(
        failures.is_empty(),
        "{} mismatches:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn directory_scan_covers_every_file_and_fails() {
    let dir = corpus().join("samples");
    let (code, report) = scan_json(&dir);
    assert_eq!(code, 1, "malicious samples present");
    let files = report["files"].as_array().unwrap();
    let on_disk = walk(&dir);
    assert_eq!(
        files.len(),
        on_disk,
        "every file under the directory is reported"
    );
    assert!(report["summary"]["failed"].as_bool().unwrap());
    validator("scan-report.schema.json")
        .validate(&report)
        .unwrap();
}

fn walk(dir: &Path) -> usize {
    let mut n = 0;
    for e in std::fs::read_dir(dir).unwrap() {
        let e = e.unwrap();
        let t = e.file_type().unwrap();
        if t.is_dir() {
            n += walk(&e.path());
        } else if t.is_file() {
            n += 1;
        }
    }
    n
}

#[test]
fn sarif_output_is_valid_sarif_2_1_0() {
    let dir = corpus().join("samples");
    let (code, stdout, _) = pedigree(&["scan", "--format", "sarif", dir.to_str().unwrap()]);
    assert_eq!(code, 1);
    let v: Value = serde_json::from_str(&stdout).unwrap();
    let schema = validator("sarif-2.1.0.json");
    if let Err(e) = schema.validate(&v) {
        panic!("SARIF invalid: {e}");
    }
    let results = v["runs"][0]["results"].as_array().unwrap();
    assert!(
        results
            .iter()
            .any(|r| r["ruleId"] == "PDG101" && r["level"] == "error")
    );
    // Every result points at a rule that the driver declares.
    let rules: BTreeSet<&str> = v["runs"][0]["tool"]["driver"]["rules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    for r in results {
        assert!(rules.contains(r["ruleId"].as_str().unwrap()));
    }
}

#[test]
fn fail_on_threshold_sets_the_exit_code() {
    let tmp = tempfile::tempdir().unwrap();
    // A pickle that imports an unknown global (medium) and nothing dangerous:
    // protocol 2, GLOBAL 'mypkg.models Thing', EMPTY_TUPLE, REDUCE, STOP.
    let p = tmp.path().join("unknown.pkl");
    std::fs::write(&p, b"\x80\x02cmypkg.models\nThing\n)R.").unwrap();
    let ps = p.to_str().unwrap();
    assert_eq!(pedigree(&["scan", ps]).0, 1, "default threshold is medium");
    assert_eq!(pedigree(&["scan", "--fail-on", "high", ps]).0, 0);
    assert_eq!(pedigree(&["scan", "--fail-on", "medium", ps]).0, 1);
    // A policy file can allow it.
    let cfg = tmp.path().join("pedigree.toml");
    std::fs::write(&cfg, "[pickle]\nallow = [\"mypkg.models.Thing\"]\n").unwrap();
    assert_eq!(
        pedigree(&["scan", "--config", cfg.to_str().unwrap(), ps]).0,
        0
    );
    // ... and a policy file can deny it.
    std::fs::write(&cfg, "[pickle]\ndeny = [\"mypkg\"]\n").unwrap();
    let (code, stdout, _) = pedigree(&[
        "scan",
        "--config",
        cfg.to_str().unwrap(),
        "--format",
        "json",
        ps,
    ]);
    assert_eq!(code, 1);
    assert!(stdout.contains("PDG101"));
    // A bad policy file is a usage error (2), named in the message.
    std::fs::write(&cfg, "[pickle]\nallow = 3\n").unwrap();
    let (code, _, stderr) = pedigree(&["scan", "--config", cfg.to_str().unwrap(), ps]);
    assert_eq!(code, 2);
    assert!(stderr.contains("pedigree.toml"), "{stderr}");
}

#[test]
fn missing_file_is_exit_2_with_its_name() {
    let (code, stdout, _) = pedigree(&["scan", "/nonexistent/model.pt"]);
    assert_eq!(code, 2);
    assert!(stdout.contains("/nonexistent/model.pt"));
}

#[test]
fn text_output_names_rule_member_and_offset() {
    let tmp = tempfile::tempdir().unwrap();
    let p = tmp.path().join("evil.bin");
    // protocol 0: GLOBAL 'os system', MARK, STRING 'echo hi', TUPLE, REDUCE, STOP.
    std::fs::write(&p, b"cos\nsystem\n(S'echo hi'\ntR.").unwrap();
    let (code, stdout, _) = pedigree(&["scan", p.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(stdout.contains("PDG101"), "{stdout}");
    assert!(stdout.contains("os.system"), "{stdout}");
    assert!(stdout.contains("at byte 0"), "{stdout}");
    assert!(stdout.contains("critical"), "{stdout}");
}

#[test]
fn rules_lists_and_explains() {
    let (code, stdout, _) = pedigree(&["rules"]);
    assert_eq!(code, 0);
    for r in ["PDG101", "PDG104", "PDG201", "PDG208"] {
        assert!(stdout.contains(r), "{r} missing");
    }
    let (code, stdout, _) = pedigree(&["rules", "PDG104"]);
    assert_eq!(code, 0);
    assert!(stdout.contains("What it finds") && stdout.contains("How to fix"));
    assert_eq!(pedigree(&["rules", "PDG999"]).0, 2);
}

#[test]
fn rules_reference_in_docs_is_current() {
    let (_, stdout, _) = pedigree(&["rules", "--markdown"]);
    let committed =
        std::fs::read_to_string(support::repo_root().join("docs/rules.md")).expect("docs/rules.md");
    assert_eq!(
        stdout, committed,
        "regenerate with: pedigree rules --markdown > docs/rules.md"
    );
}

#[test]
fn disasm_shows_imports_and_keeps_going_after_a_break() {
    let tmp = tempfile::tempdir().unwrap();
    let p = tmp.path().join("x.pkl");
    // GLOBAL os system; MARK; STRING; TUPLE; REDUCE; then garbage instead of STOP.
    std::fs::write(&p, b"cos\nsystem\n(S'id'\ntR\xff\xfe").unwrap();
    let (code, stdout, _) = pedigree(&["disasm", p.to_str().unwrap()]);
    assert_eq!(code, 0);
    assert!(stdout.contains("GLOBAL"), "{stdout}");
    assert!(
        stdout.contains("os") && stdout.contains("system"),
        "{stdout}"
    );
    assert!(stdout.contains("REDUCE"), "{stdout}");
    assert!(
        stdout.to_lowercase().contains("invalid") || stdout.to_lowercase().contains("error"),
        "{stdout}"
    );
}
