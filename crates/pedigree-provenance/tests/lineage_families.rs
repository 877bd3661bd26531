//! The lineage families of `tests/lineage/` (built by `make_families.py` from models trained on
//! digits): every expected relation found, oriented, and no false edge.

use std::path::PathBuf;

use pedigree_provenance::diff::Relation;
use pedigree_provenance::{Model, diff, lineage};

fn families() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/lineage")
}

fn expected() -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(families().join("expected.json")).unwrap()).unwrap()
}

fn all_models() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(families().join("families"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    v.sort();
    v
}

fn rel(s: &str) -> Relation {
    serde_json::from_value(serde_json::Value::String(s.into())).unwrap_or(Relation::Unrelated)
}

#[test]
fn pairwise_diff_relations() {
    let exp = expected();
    let fam = families().join("families");
    let mut table = String::new();
    let mut bad = Vec::new();
    for e in exp["edges"].as_array().unwrap() {
        let (p, c, r) = (
            e["parent"].as_str().unwrap(),
            e["child"].as_str().unwrap(),
            e["relation"].as_str().unwrap(),
        );
        let d = diff(
            &Model::open(&fam.join(p)).unwrap(),
            &Model::open(&fam.join(c)).unwrap(),
        )
        .unwrap();
        let found = serde_json::to_value(d.relation).unwrap();
        table += &format!(
            "{p} -> {c}: expected {r}, found {} ({:?}) frozen={:?}\n",
            found, d.direction, d.evidence.frozen
        );
        if d.relation != rel(r) {
            bad.push(format!("{p}->{c}: {r} vs {found}: {:?}", d.evidence));
        }
        if let Some(frozen) = e.get("frozen").and_then(|f| f.as_array()) {
            let mut want: Vec<&str> = frozen.iter().map(|x| x.as_str().unwrap()).collect();
            let mut got: Vec<&str> = d.evidence.frozen.iter().map(String::as_str).collect();
            want.sort();
            got.sort();
            if want != got {
                bad.push(format!("{p}->{c}: frozen {want:?} vs {got:?}"));
            }
        }
    }
    for u in exp["unrelated"].as_array().unwrap() {
        let (a, b) = (u[0].as_str().unwrap(), u[1].as_str().unwrap());
        let d = diff(
            &Model::open(&fam.join(a)).unwrap(),
            &Model::open(&fam.join(b)).unwrap(),
        )
        .unwrap();
        table += &format!("{a} vs {b}: expected unrelated, found {:?}\n", d.relation);
        if d.relation != Relation::Unrelated {
            bad.push(format!("{a} vs {b}: {:?}", d.relation));
        }
    }
    eprintln!("{table}");
    assert!(bad.is_empty(), "{bad:#?}");
}

#[test]
fn lineage_tree_matches_truth() {
    let exp = expected();
    let rep = lineage(&all_models()).unwrap();
    eprintln!("{}", rep.to_text());
    let mut want: Vec<(String, String, String)> = exp["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["parent"].as_str().unwrap().into(),
                e["child"].as_str().unwrap().into(),
                e["relation"].as_str().unwrap().into(),
            )
        })
        .collect();
    let mut got: Vec<(String, String, String)> = rep
        .edges
        .iter()
        .map(|e| {
            (
                e.parent.clone(),
                e.child.clone(),
                e.relation.label().to_string(),
            )
        })
        .collect();
    want.sort();
    got.sort();
    assert_eq!(got, want, "tree edges differ");
    let mut wf: Vec<(String, String)> = exp["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["model"].as_str().unwrap().into(),
                f["kind"].as_str().unwrap().into(),
            )
        })
        .collect();
    let mut gf: Vec<(String, String)> = rep
        .findings
        .iter()
        .map(|f| (f.model.clone(), f.kind.clone()))
        .collect();
    wf.sort();
    gf.sort();
    assert_eq!(gf, wf, "findings differ");
}
