//! ML-BOM: CycloneDX 1.6 (`machine-learning-model` component with `modelCard`, file hashes and
//! `pedigree.ancestors` from proven lineage) and SPDX 3.0.1 with the AI profile
//! (`ai_AIPackage`, `Relationship` `descendantOf`/`ancestorOf` with the evidence as comment).

use std::path::Path;

use anyhow::Result;
use serde_json::{Value, json};

use crate::fingerprint::Fingerprint;
use crate::lineage::{Edge, LineageReport};

/// Deterministic UUID-shaped serial from the model id (same model, same serial).
fn uuid_from(s: &str) -> String {
    let h = blake3::hash(s.as_bytes());
    let b = h.as_bytes();
    let x = hex::encode(&b[..16]);
    format!(
        "{}-{}-4{}-a{}-{}",
        &x[0..8],
        &x[8..12],
        &x[13..16],
        &x[17..20],
        &x[20..32]
    )
}

/// The chain of proven ancestors of `model`, nearest first.
pub fn ancestors<'a>(model: &str, lineage: Option<&'a LineageReport>) -> Vec<&'a Edge> {
    let mut out = Vec::new();
    let Some(l) = lineage else { return out };
    let mut cur = model.to_string();
    while let Some(e) = l.edges.iter().find(|e| e.child == cur) {
        if out.iter().any(|x: &&Edge| x.parent == e.parent) {
            break;
        }
        out.push(e);
        cur = e.parent.clone();
    }
    out
}

fn file_hashes(path: &Path) -> Result<Vec<(String, String)>> {
    let m = pedigree_sign::manifest::hash_model(
        path,
        &pedigree_sign::manifest::Serialization::default(),
    )
    .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    Ok(m.resources
        .iter()
        .map(|r| (r.name.clone(), r.digest_hex()))
        .collect())
}

fn edge_props(e: &Edge) -> Vec<Value> {
    vec![
        json!({"name": "pedigree:relation", "value": e.relation.label()}),
        json!({"name": "pedigree:confidence", "value": format!("{:.3}", e.confidence)}),
        json!({"name": "pedigree:oriented-by", "value": e.oriented_by}),
        json!({"name": "pedigree:declared-by-card", "value": e.declared.to_string()}),
        json!({"name": "pedigree:evidence", "value": serde_json::to_string(&e.evidence).unwrap_or_default()}),
    ]
}

pub fn cyclonedx(
    fp: &Fingerprint,
    lineage: Option<&LineageReport>,
    timestamp: &str,
) -> Result<Value> {
    let path = Path::new(&fp.path);
    let hashes = file_hashes(path)?;
    let root = fp.model_id.trim_start_matches("sha256:").to_string();
    let ancestors: Vec<Value> = ancestors(&fp.model, lineage)
        .iter()
        .map(|e| {
            let pid = lineage
                .and_then(|l| l.models.iter().find(|m| m.name == e.parent))
                .map(|m| m.model_id.clone())
                .unwrap_or_default();
            json!({
                "type": "machine-learning-model",
                "bom-ref": format!("model:{}", pid),
                "name": e.parent,
                "hashes": [{"alg": "SHA-256", "content": pid.trim_start_matches("sha256:")}],
                "properties": edge_props(e),
            })
        })
        .collect();
    let mut comp = json!({
        "type": "machine-learning-model",
        "bom-ref": format!("model:{}", fp.model_id),
        "name": fp.model,
        "hashes": [{"alg": "SHA-256", "content": root}],
        "modelCard": {
            "modelParameters": {
                "modelArchitecture": format!("arch-signature {}", fp.arch.signature),
            },
            "properties": [
                {"name": "pedigree:parameters", "value": fp.arch.parameters.to_string()},
                {"name": "pedigree:tensors", "value": fp.arch.tensors.to_string()},
                {"name": "pedigree:declared-base-model", "value": fp.card.base_model.join(", ")},
            ]
        },
        "properties": [
            {"name": "pedigree:model-id", "value": fp.model_id},
            {"name": "pedigree:oms-root-digest", "value": "sha256 over the per-file SHA-256 digests (OpenSSF Model Signing v1.0)"},
        ],
        "components": hashes.iter().map(|(n, d)| json!({
            "type": "file", "bom-ref": format!("file:{}:{}", fp.model_id, n), "name": n,
            "hashes": [{"alg": "SHA-256", "content": d}],
        })).collect::<Vec<_>>(),
    });
    if !ancestors.is_empty() {
        comp["pedigree"] = json!({"ancestors": ancestors, "notes": "ancestors proven from the weights by pedigree lineage; evidence in properties"});
    }
    Ok(json!({
        "bomFormat": "CycloneDX",
        "specVersion": "1.6",
        "serialNumber": format!("urn:uuid:{}", uuid_from(&fp.model_id)),
        "version": 1,
        "metadata": {
            "timestamp": timestamp,
            "tools": {"components": [{"type": "application", "name": "pedigree", "version": env!("CARGO_PKG_VERSION")}]},
            "component": {"type": "machine-learning-model", "bom-ref": format!("meta:{}", fp.model_id), "name": fp.model},
        },
        "components": [comp],
    }))
}

pub fn spdx(fp: &Fingerprint, lineage: Option<&LineageReport>, timestamp: &str) -> Result<Value> {
    let path = Path::new(&fp.path);
    let hashes = file_hashes(path)?;
    let ns = format!(
        "https://pedigree.invalid/spdx/{}",
        fp.model_id.trim_start_matches("sha256:")
    );
    let ci = "_:creationinfo";
    let tool = format!("{ns}#tool-pedigree");
    let agent = format!("{ns}#agent-pedigree");
    let pkg = format!("{ns}#model");
    let mut graph = vec![
        json!({"type": "CreationInfo", "@id": ci, "specVersion": "3.0.1", "created": timestamp, "createdBy": [agent], "createdUsing": [tool]}),
        json!({"type": "SoftwareAgent", "spdxId": agent, "creationInfo": ci, "name": "pedigree"}),
        json!({"type": "Tool", "spdxId": tool, "creationInfo": ci, "name": "pedigree"}),
    ];
    let mut elements = vec![agent.clone(), tool.clone(), pkg.clone()];
    graph.push(json!({
        "type": "ai_AIPackage",
        "spdxId": pkg,
        "creationInfo": ci,
        "name": fp.model,
        "software_primaryPurpose": "model",
        "software_downloadLocation": "NOASSERTION",
        "software_packageVersion": fp.model_id,
        "verifiedUsing": [{"type": "Hash", "algorithm": "sha256", "hashValue": fp.model_id.trim_start_matches("sha256:")}],
        "releaseTime": timestamp,
        "suppliedBy": agent,
        "ai_typeOfModel": ["neural network"],
        "comment": format!("model id {} (OMS v1.0 root digest over {} file(s)); architecture signature {}; {} parameters",
            fp.model_id, hashes.len(), fp.arch.signature, fp.arch.parameters),
    }));
    for (k, e) in ancestors(&fp.model, lineage).iter().enumerate() {
        let pid = lineage
            .and_then(|l| l.models.iter().find(|m| m.name == e.parent))
            .map(|m| m.model_id.clone())
            .unwrap_or_default();
        let aid = format!("{ns}#ancestor-{k}");
        graph.push(json!({
            "type": "ai_AIPackage", "spdxId": aid, "creationInfo": ci, "name": e.parent,
            "software_primaryPurpose": "model", "software_downloadLocation": "NOASSERTION",
            "verifiedUsing": [{"type": "Hash", "algorithm": "sha256", "hashValue": pid.trim_start_matches("sha256:")}],
            "releaseTime": timestamp, "suppliedBy": agent,
        }));
        let rid = format!("{ns}#rel-{k}");
        let child = if k == 0 {
            pkg.clone()
        } else {
            format!("{ns}#ancestor-{}", k - 1)
        };
        graph.push(json!({
            "type": "Relationship", "spdxId": rid, "creationInfo": ci,
            "from": child, "to": [aid], "relationshipType": "descendantOf",
            "comment": format!("{} (confidence {:.3}, oriented by {}, declared by card: {}); evidence {}",
                e.relation.label(), e.confidence, e.oriented_by, e.declared, serde_json::to_string(&e.evidence).unwrap_or_default()),
        }));
        elements.push(aid);
        elements.push(rid);
    }
    graph.push(json!({
        "type": "SpdxDocument", "spdxId": format!("{ns}#document"), "creationInfo": ci,
        "name": format!("ML-BOM for {}", fp.model), "dataLicense": "https://spdx.org/licenses/CC0-1.0",
        "profileConformance": ["core", "software", "ai"],
        "rootElement": [pkg], "element": elements,
    }));
    Ok(json!({"@context": "https://spdx.org/rdf/3.0.1/spdx-context.jsonld", "@graph": graph}))
}
