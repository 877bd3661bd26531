//! Scans every sample of `tests/formats-corpus/expected.json` (made by
//! `tests/formats-corpus/make_samples.py`) and checks the exact set of rules each one raises, and
//! that clean samples (real Keras/onnx/gguf/safetensors output, the akiki-vad models, the chat
//! templates of popular model families) raise nothing.
//!
//! A sample that is a directory (a Hugging Face repository, an ONNX model with its external data)
//! is scanned as `scan_paths` walks it, and judged by the union of its files' findings.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use pedigree_formats::container::ReadOptions;
use pedigree_scan::{Policy, scan_paths};

#[derive(serde::Deserialize)]
struct Expected {
    path: String,
    clean: bool,
    rules: Vec<String>,
}

fn corpus() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/formats-corpus")
}

#[test]
fn every_sample_raises_exactly_its_rules() {
    let dir = corpus();
    let text = std::fs::read_to_string(dir.join("expected.json")).expect("expected.json");
    let expected: Vec<Expected> = serde_json::from_str(&text).expect("expected.json parses");
    assert!(expected.len() >= 40, "corpus too small: {}", expected.len());
    let policy = Policy::default();
    let opts = ReadOptions::default();
    let mut failures = Vec::new();
    for e in &expected {
        let path = dir.join(&e.path);
        assert!(path.exists(), "{} is missing: run make_samples.py", e.path);
        let reports = scan_paths(&[path.clone()], &policy, &opts, &|_| {});
        let mut got = BTreeSet::new();
        let mut detail = Vec::new();
        for r in &reports {
            if let Some(err) = &r.error {
                failures.push(format!("{}: could not scan {}: {err}", e.path, r.path));
            }
            for f in &r.findings {
                got.insert(f.rule.to_string());
                detail.push(format!(
                    "    {} {} {}",
                    f.rule,
                    f.location.display(),
                    f.message
                ));
            }
        }
        let want: BTreeSet<String> = e.rules.iter().cloned().collect();
        assert_eq!(
            e.clean,
            want.is_empty(),
            "{}: clean flag disagrees with its rules",
            e.path
        );
        if got != want {
            failures.push(format!(
                "{}: expected {want:?}, got {got:?}\n{}",
                e.path,
                detail.join("\n")
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} samples differ:\n{}",
        failures.len(),
        expected.len(),
        failures.join("\n")
    );
}

#[test]
fn formats_are_detected_by_content() {
    let dir = corpus().join("samples");
    let policy = Policy::default();
    let opts = ReadOptions::default();
    for (rel, format) in [
        ("gguf/clean_llama3.gguf", "gguf"),
        ("safetensors/clean.safetensors", "safetensors"),
        ("onnx/clean_add.onnx", "onnx"),
        ("keras/clean_functional.keras", "keras"),
        ("keras/clean_functional.h5", "hdf5"),
        ("tensorflow/clean_savedmodel/saved_model.pb", "tensorflow"),
        ("mismatch/gguf_named.h5", "gguf"),
    ] {
        let r = pedigree_scan::scan_file(&dir.join(rel), &policy, &opts);
        assert_eq!(r.format, format, "{rel}");
    }
}

#[test]
fn hf_repo_hook_reports_remote_code() {
    let dir = corpus().join("samples/hf/remote_code_subprocess");
    let f = pedigree_scan::analyze_formats::hf_repo_findings(&dir, &Policy::default());
    let rules: BTreeSet<&str> = f.iter().map(|f| f.rule).collect();
    assert_eq!(rules, BTreeSet::from(["PDG351", "PDG352"]));
    assert!(f.iter().any(|f| f.message.contains("subprocess.Popen")));
    assert!(f.iter().any(|f| f.message.contains("eval")));
}
