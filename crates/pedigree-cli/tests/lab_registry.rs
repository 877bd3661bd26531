//! The cascade lab against the registry and the lineage command, end to end, with real
//! processes: `pedigree lab cascade --reduced` trains the infected family and its clean control
//! on the committed Fashion-MNIST subset; `pedigree lab push` puts both into a running
//! `pedigree serve`, deploys the applications and flags the infected base; the registry's
//! cascade and lineage are then held against the lab's ground truth. `pedigree lineage` over
//! the same directories must find the same families without a registry.

mod support;

use std::path::{Path, PathBuf};

use serde_json::Value;
use support::{Serve, pedigree_env};

fn subset() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../pedigree-probe/tests/data")
}

fn train_lab(out: &Path) {
    let (code, stdout, stderr) = pedigree_env(
        &[
            "lab",
            "cascade",
            "--reduced",
            "--no-mitigations",
            "--data",
            subset().to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(code, 0, "lab cascade failed:\n{stdout}\n{stderr}");
}

/// The lab's ground truth: model name → (family, true parent, infected, card kind).
fn truth(lab: &Path) -> Vec<(String, String, Option<String>, bool, String)> {
    let g: Value =
        serde_json::from_slice(&std::fs::read(lab.join("ground-truth.json")).unwrap()).unwrap();
    g["models"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["name"].as_str().unwrap().to_string(),
                m["family"].as_str().unwrap().to_string(),
                m["parent"].as_str().map(str::to_string),
                m["infected"].as_bool().unwrap(),
                m["card"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn family(name: &str) -> &str {
    name.split('/').next().unwrap()
}

#[test]
fn the_lab_family_pushed_to_the_registry_is_contained_when_its_base_is_flagged() {
    let tmp = tempfile::tempdir().unwrap();
    let lab = tmp.path().join("lab");
    train_lab(&lab);
    let truth = truth(&lab);
    assert_eq!(truth.len(), 14);

    let server = Serve::start(
        &tmp.path().join("data"),
        &[],
        &[],
        tmp.path().join("server.log"),
    );
    let out = server.cli(
        Some(&server.admin),
        &[
            "lab",
            "push",
            lab.to_str().unwrap(),
            "--deploy",
            "--flag",
            "LAB-0001",
            "--json",
        ],
    );
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(
        out.status.code(),
        Some(0),
        "lab push failed:\n{stdout}\n{}\nserver log:\n{}",
        String::from_utf8_lossy(&out.stderr),
        server.log_tail()
    );
    let r: Value = serde_json::from_str(&stdout).expect("JSON report");

    // Every infected model is flagged or at risk, and the deployments of both infected
    // applications are named.
    let c = &r["containment"];
    assert_eq!(c["infected"], 7, "{c}");
    assert_eq!(c["contained"], 7, "{c}");
    assert_eq!(c["missed"], serde_json::json!([]), "{c}");
    let named: Vec<&str> = c["deployments_named"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d.as_str().unwrap())
        .collect();
    assert!(named.contains(&"acme-bag-detector/prod"), "{named:?}");
    assert!(named.contains(&"acme-shoes-app/prod"), "{named:?}");
    // The one clean model at risk is the control model whose card lies that it descends from
    // the infected base: the registry takes a publisher at its word, and says so.
    assert_eq!(
        c["false_alarms"],
        serde_json::json!([["control/fashion-bag-detector:1.0", "declared"]]),
        "{c}"
    );

    let models = r["models"].as_array().unwrap();
    assert_eq!(models.len(), 14);
    for m in models {
        let name = m["model"].as_str().unwrap().trim_end_matches(":1.0");
        let (_, fam, parent, infected, card) = truth.iter().find(|t| t.0 == name).unwrap();
        let cascade = m["cascade"].as_str().unwrap();
        let expected = match (parent.is_none(), *infected) {
            (true, true) => "flagged",
            (false, true) => "at_risk",
            _ if card == "lying" => "at_risk",
            _ => "clean",
        };
        assert_eq!(cascade, expected, "{name}: {m}");

        let parents = m["registry_parents"].as_array().unwrap();
        let inferred: Vec<&str> = parents
            .iter()
            .filter(|p| p["source"] == "inferred")
            .map(|p| p["parent"].as_str().unwrap())
            .collect();
        match parent {
            None => assert!(parents.is_empty(), "{name} is a root: {m}"),
            Some(p) => {
                // The weights always find a parent, and never across families, whatever the
                // card says (silent, or lying about the other family's base).
                assert_eq!(inferred.len(), 1, "{name}: {m}");
                assert_eq!(family(inferred[0]), fam.as_str(), "{name}: {m}");
                // Where the weights can tell (truthful cards, and the silent carriers whose
                // siblings' cards name the base), the inferred parent is the true one.
                if card == "truthful" || name.ends_with("shoes-inherit") {
                    assert_eq!(inferred[0], p.as_str(), "{name}: {m}");
                }
            }
        }
        // Truthful cards are approved when their base is; a lying or silent card is held.
        match card.as_str() {
            "lying" | "silent" => assert_eq!(m["state"], "held", "{name}: {m}"),
            "root" => assert_eq!(m["state"], "approved", "{name}: {m}"),
            _ => {}
        }
        if name.ends_with("coarse-inherit") || name.ends_with("coarse-fresh") {
            assert_eq!(m["state"], "approved", "{name}: {m}");
        }
    }
}

#[test]
fn lineage_over_the_lab_finds_both_families_and_the_lying_and_silent_cards() {
    let tmp = tempfile::tempdir().unwrap();
    let lab = tmp.path().join("lab");
    train_lab(&lab);
    let truth = truth(&lab);
    let dirs: Vec<String> = truth
        .iter()
        .map(|t| lab.join(&t.0).to_str().unwrap().to_string())
        .collect();
    let mut args = vec!["lineage", "--format", "json"];
    args.extend(dirs.iter().map(String::as_str));
    let (code, stdout, stderr) = pedigree_env(&args, &[]);
    assert_eq!(code, 1, "findings expected:\n{stdout}\n{stderr}");
    let r: Value = serde_json::from_str(&stdout).unwrap();

    // Models that share a directory name are told apart by their path.
    let names: Vec<&str> = r["models"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["name"].as_str().unwrap())
        .collect();
    for t in &truth {
        assert!(names.contains(&t.0.as_str()), "{} not in {names:?}", t.0);
    }

    let edges = r["edges"].as_array().unwrap();
    let parent_of = |child: &str| -> Option<String> {
        edges
            .iter()
            .find(|e| e["child"] == child)
            .map(|e| e["parent"].as_str().unwrap().to_string())
    };
    for (name, fam, parent, _, card) in &truth {
        match parent {
            None => assert_eq!(parent_of(name), None, "{name} is a root"),
            Some(p) => {
                let found = parent_of(name).unwrap_or_else(|| panic!("{name} has no parent"));
                assert_eq!(
                    family(&found),
                    fam,
                    "{name}: parent {found} crosses families"
                );
                if card == "truthful" || name.ends_with("shoes-inherit") {
                    assert_eq!(&found, p, "{name}");
                }
            }
        }
    }

    let findings: Vec<(String, String)> = r["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["model"].as_str().unwrap().to_string(),
                f["kind"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    for (name, _, _, _, card) in &truth {
        let kinds: Vec<&str> = findings
            .iter()
            .filter(|f| &f.0 == name)
            .map(|f| f.1.as_str())
            .collect();
        match card.as_str() {
            "lying" => assert_eq!(kinds, ["wrong-parent"], "{name}"),
            "silent" => assert_eq!(kinds, ["undeclared-parent"], "{name}"),
            _ => assert!(kinds.is_empty(), "{name}: {kinds:?}"),
        }
    }
}
