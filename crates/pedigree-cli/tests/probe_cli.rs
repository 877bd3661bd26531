//! `pedigree lab population` and `pedigree probe neural-cleanse --reference`, end to end on the
//! committed Fashion-MNIST subset: a small population is trained and scored, its files are
//! complete, and Neural Cleanse calibrated against the population leaves each model out of its
//! own reference and refuses a reference too small to mean anything.

mod support;

use support::pedigree;

use std::path::{Path, PathBuf};

use serde_json::Value;

fn subset() -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../pedigree-probe/tests/data")
        .to_str()
        .unwrap()
        .to_string()
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn a_population_is_scored_and_neural_cleanse_calibrates_against_it() {
    let tmp = tempfile::tempdir().unwrap();
    let pop = tmp.path().join("pop");
    let (code, stdout, stderr) = pedigree(&[
        "lab",
        "population",
        "--n",
        "4",
        "--train-size",
        "2000",
        "--steps",
        "96",
        "--restarts",
        "1",
        "--data",
        &subset(),
        "--out",
        s(&pop),
        "--format",
        "json",
    ]);
    assert_eq!(code, 0, "population failed:\n{stdout}\n{stderr}");

    // The outcome on stdout and in population.json agree, and every detector is scored.
    let out: Value = serde_json::from_str(&stdout).expect("population JSON on stdout");
    let file: Value =
        serde_json::from_slice(&std::fs::read(pop.join("population.json")).unwrap()).unwrap();
    assert_eq!(out["members"], file["members"]);
    let members = out["members"].as_array().unwrap();
    assert_eq!(members.len(), 4);
    assert_eq!(
        members.iter().filter(|m| m["infected"] == true).count(),
        2,
        "half the population is infected"
    );
    let detectors: Vec<&str> = out["scores"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["detector"].as_str().unwrap())
        .collect();
    assert!(detectors.contains(&"neural-cleanse-ref"), "{detectors:?}");
    for m in members {
        let scores = m["scores"].as_array().unwrap();
        assert_eq!(scores.len(), detectors.len());
        // Four members: each is calibrated against the other three (the minimum).
        assert!(
            scores
                .iter()
                .all(|v| v.as_f64().is_some_and(f64::is_finite)),
            "{} has a missing score: {scores:?}",
            m["name"]
        );
        assert!(m["nc_ref_label"].as_u64().is_some_and(|l| l < 10));
        assert_eq!(m["nc_l1"].as_array().unwrap().len(), 10);
        assert!(
            pop.join(m["name"].as_str().unwrap())
                .join("model.safetensors")
                .is_file()
        );
    }
    let md = std::fs::read_to_string(pop.join("population.md")).unwrap();
    assert!(md.contains("| neural-cleanse-ref |"), "{md}");

    // Calibrated Neural Cleanse over the population, with the population as its reference:
    // each model is judged against the three others, never against itself.
    let (code, stdout, stderr) = pedigree(&[
        "probe",
        "neural-cleanse",
        s(&pop),
        "--reference",
        s(&pop),
        "--steps",
        "96",
        "--restarts",
        "1",
        "--data",
        &subset(),
        "--format",
        "json",
    ]);
    assert!(code == 0 || code == 1, "probe failed:\n{stdout}\n{stderr}");
    let reports: Vec<Value> = serde_json::from_str(&stdout).expect("reports JSON");
    assert_eq!(reports.len(), 4);
    let mut flagged = 0;
    for r in &reports {
        let cal = &r["evidence"]["calibration"];
        assert_eq!(cal["models"], 3, "left out of its own reference: {r}");
        assert_eq!(r["score"], cal["score"]);
        let label = cal["most_anomalous_label"].as_u64().unwrap();
        // The score is the median log ratio minus the smallest, recomputed here.
        let ratios: Vec<f64> = cal["log_ratio"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap())
            .collect();
        let mut sorted = ratios.clone();
        sorted.sort_by(|a, b| a.total_cmp(b));
        let median = (sorted[4] + sorted[5]) / 2.0;
        assert!((cal["score"].as_f64().unwrap() - (median - sorted[0])).abs() < 1e-9);
        assert_eq!(ratios[label as usize], sorted[0]);
        // The uncalibrated result is kept beside it.
        assert!(r["evidence"]["uncalibrated"]["anomaly_index_log"].is_number());
        if r["verdict"] == "backdoored" {
            flagged += 1;
            assert_eq!(r["evidence"]["flagged_label"], label);
        } else {
            assert!(r["evidence"]["flagged_label"].is_null());
        }
    }
    assert_eq!(
        code,
        i32::from(flagged > 0),
        "exit code follows the verdicts"
    );

    // Two reference models are too few for a median: a clear error, naming the model.
    let two = tmp.path().join("two");
    std::fs::create_dir(&two).unwrap();
    for m in ["pop-000", "pop-001"] {
        std::os::unix::fs::symlink(pop.join(m), two.join(m)).unwrap();
    }
    let (code, stdout, stderr) = pedigree(&[
        "probe",
        "neural-cleanse",
        s(&pop.join("pop-002")),
        "--reference",
        s(&two),
        "--steps",
        "24",
        "--restarts",
        "1",
        "--data",
        &subset(),
    ]);
    assert_eq!(code, 2, "{stdout}\n{stderr}");
    assert!(
        stderr.contains("pop-002") && stderr.contains("at least 3 reference models"),
        "{stderr}"
    );
}
