//! Between the advisory feed format ([`crate::advisory_feed`]) and the store: which registry
//! versions an imported advisory names, and the feed entry for a stored advisory.

use serde_json::json;

use crate::advisory_feed::{Advisory, AffectedModel};
use crate::store::{AdvisoryRecord, MetaStore, Result, VersionRow, now_ms};

/// Registry versions an advisory names: by model identity (the OMS root digest, which survives
/// renames and re-uploads under another name) or by `ns/name` and version.
pub async fn resolve_affected(store: &dyn MetaStore, adv: &Advisory) -> Result<Vec<i64>> {
    let mut out = Vec::new();
    for a in &adv.affected {
        if let Some((ns, name)) = a.model.split_once('/') {
            for ver in &a.versions {
                if let Some(v) = store.find_version(ns, name, ver).await? {
                    out.push(v.id);
                }
            }
        }
        for ident in &a.identities {
            out.extend(
                store
                    .versions_with_identity(ident)
                    .await?
                    .into_iter()
                    .map(|v| v.id),
            );
        }
    }
    out.sort_unstable();
    out.dedup();
    Ok(out)
}

pub fn record_from_advisory(a: &Advisory) -> AdvisoryRecord {
    AdvisoryRecord {
        id: a.id.clone(),
        severity: a.severity.as_str().to_string(),
        summary: a.summary.clone(),
        trigger: a.trigger.clone(),
        source: "imported".into(),
        body: serde_json::to_value(a).unwrap_or(json!({})),
        created_at: now_ms(),
        withdrawn_at: None,
        withdrawn_reason: None,
    }
}

/// The feed entry for a stored advisory; `roots` are the versions it flags directly.
pub fn advisory_from_record(r: &AdvisoryRecord, roots: &[VersionRow]) -> Advisory {
    let mut by_model: std::collections::BTreeMap<String, AffectedModel> = Default::default();
    for v in roots {
        let e = by_model
            .entry(format!("{}/{}", v.namespace, v.name))
            .or_insert_with(|| AffectedModel {
                model: format!("{}/{}", v.namespace, v.name),
                versions: Vec::new(),
                identities: Vec::new(),
            });
        e.versions.push(v.version.clone());
        if let Some(i) = &v.identity {
            e.identities.push(i.clone());
        }
    }
    Advisory::from_parts(
        &r.id,
        &r.severity,
        &r.summary,
        r.trigger.clone(),
        r.created_at,
        r.withdrawn_at,
        by_model.into_values().collect(),
    )
}
