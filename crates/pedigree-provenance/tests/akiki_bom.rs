//! The real akiki VAD model (one model as .pt, .onnx and .safetensors; files copied from the
//! akiki 0.0.6 wheel, see tests/data/README.md): one identity across three serializations,
//! fingerprint round trip, and ML-BOMs valid against the official CycloneDX 1.6 / SPDX 3.0.1
//! schemas (copied into tests/data/schemas).

use std::path::PathBuf;

use pedigree_provenance::diff::Relation;
use pedigree_provenance::{Fingerprint, Model, bom, diff, fingerprint, lineage};

fn data(p: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(p)
}

fn akiki() -> Vec<PathBuf> {
    [
        "akiki/akiki-vad.pt",
        "akiki/akiki-vad.onnx",
        "akiki/akiki-vad-native.model.safetensors",
    ]
    .iter()
    .map(|p| data(p))
    .collect()
}

#[test]
fn three_serializations_one_model() {
    let m = akiki();
    let pt = Model::open(&m[0]).unwrap();
    assert_eq!(
        pt.weights().len(),
        15,
        "torch state_dict tensors read from data.pkl"
    );
    for (a, b) in [(0, 1), (0, 2), (1, 2)] {
        let d = diff(&Model::open(&m[a]).unwrap(), &Model::open(&m[b]).unwrap()).unwrap();
        assert_eq!(d.relation, Relation::Copy, "{a} vs {b}: {:?}", d.evidence);
    }
    let rep = lineage(&m).unwrap();
    assert_eq!(rep.edges.len(), 2, "{}", rep.to_text());
    assert!(rep.edges.iter().all(|e| e.relation == Relation::Copy));
}

#[test]
fn fingerprint_round_trip_and_identity() {
    let p = data("akiki/akiki-vad-native.model.safetensors");
    let fp = fingerprint(&p).unwrap();
    // The OMS root digest of a single file is sha256(sha256(file)).
    let m = pedigree_sign::manifest::hash_model(&p, &Default::default()).unwrap();
    assert_eq!(fp.model_id, m.model_id());
    assert_eq!(fp.tensors.len(), 15);
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("fp.json");
    fp.save(&f).unwrap();
    let back = Fingerprint::load(&f).unwrap();
    assert_eq!(back.tensors[3].digest, fp.tensors[3].digest);
    assert!(
        std::fs::metadata(&f).unwrap().len() < 64 * 1024,
        "fingerprint files stay small"
    );
    // The same weights in ONNX share the permutation-invariant multiset hashes.
    let fo = fingerprint(&data("akiki/akiki-vad.onnx")).unwrap();
    let shared = fo
        .tensors
        .iter()
        .filter(|t| fp.tensors.iter().any(|s| s.multiset == t.multiset))
        .count();
    assert!(shared >= 10, "{shared}");
}

fn load(f: &str) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(data(&format!("schemas/{f}"))).unwrap()).unwrap()
}

fn validator(schema: &str) -> jsonschema::Validator {
    // bom-1.6 refers to its neighbours by relative URI (resolved against its $id).
    let registry = jsonschema::Registry::new()
        .add(
            "http://cyclonedx.org/schema/spdx.schema.json",
            load("spdx.schema.json"),
        )
        .unwrap()
        .add(
            "http://cyclonedx.org/schema/jsf-0.82.schema.json",
            load("jsf-0.82.schema.json"),
        )
        .unwrap()
        .prepare()
        .unwrap();
    jsonschema::options()
        .with_registry(&registry)
        .build(&load(schema))
        .unwrap()
}

#[test]
fn boms_validate_against_official_schemas() {
    let fam = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/lineage/families");
    let rep = lineage(&[
        fam.join("base-a"),
        fam.join("a-finetune"),
        fam.join("a-finetune-bf16"),
    ])
    .unwrap();
    let fp = fingerprint(&fam.join("a-finetune-bf16")).unwrap();
    let ts = "2026-01-01T00:00:00Z";
    let cdx = bom::cyclonedx(&fp, Some(&rep), ts).unwrap();
    let v = validator("bom-1.6.schema.json");
    let errs: Vec<String> = v
        .iter_errors(&cdx)
        .map(|e| format!("{e} at {}", e.instance_path()))
        .collect();
    assert!(errs.is_empty(), "{errs:#?}");
    let anc = cdx["components"][0]["pedigree"]["ancestors"]
        .as_array()
        .unwrap();
    assert_eq!(anc.len(), 2);
    assert_eq!(anc[0]["name"], "a-finetune");
    assert_eq!(anc[1]["name"], "base-a");
    let sp = bom::spdx(&fp, Some(&rep), ts).unwrap();
    let v = validator("spdx-3.0.1.schema.json");
    let errs: Vec<String> = v
        .iter_errors(&sp)
        .map(|e| format!("{e} at {}", e.instance_path()))
        .collect();
    assert!(errs.is_empty(), "{errs:#?}");
}
