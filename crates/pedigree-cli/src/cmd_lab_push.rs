//! `pedigree lab push`: put a cascade lab's families into a running registry, optionally deploy
//! the applications and flag the infected base, then hold the registry's cascade against the
//! lab's ground truth.
//!
//! This is the red-team exercise end to end: the lab knows which models really carry the
//! backdoor (it trained them), the registry only sees bytes and cards. After the flag, every
//! infected model should be flagged or at risk ("contained"); a clean model at risk is a false
//! alarm, and the report says which lineage edge put it there (a card's own claim, or weights).
//!
//! Glue only: the lab's ground truth comes from `pedigree-probe`, every registry call from
//! `pedigree_registry::client`.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use pedigree_probe::lab::GroundTruth;
use pedigree_registry::client::{FlagRequest, ModelRef, VersionStatus};
use serde::Serialize;
use serde_json::Value;

use crate::cmd_registry::Remote;

/// The ground-truth file is small (names, parents, a trigger and the base's training indices);
/// anything much larger is not a lab output.
const MAX_GROUND_TRUTH_BYTES: u64 = 64 << 20;

#[derive(clap::Args)]
pub struct LabPushArgs {
    /// A directory written by `pedigree lab cascade --out DIR`.
    pub dir: PathBuf,
    /// The version every model is pushed as.
    #[arg(long, default_value = "1.0")]
    pub version: String,
    /// Record a deployment `<app>/prod` for every generation-3 model (the applications).
    #[arg(long)]
    pub deploy: bool,
    /// After pushing, raise this advisory against the infected base and compare the cascade
    /// with the ground truth.
    #[arg(long)]
    pub flag: Option<String>,
    /// Seconds to wait for each ingest decision.
    #[arg(long, default_value_t = 600)]
    pub timeout: u64,
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub remote: Remote,
}

/// One lab model as the registry sees it after the push (and the flag, when raised).
#[derive(Debug, Serialize)]
pub struct PushedModel {
    pub model: String,
    pub family: String,
    pub generation: u8,
    /// Ground truth: the model carries the backdoor.
    pub infected: bool,
    /// What its card says about its base: "root", "truthful", "silent" or "lying".
    pub card: String,
    /// The registry's ingest decision: approved, held or rejected.
    pub state: String,
    /// The true parent, and the parents the registry recorded (`source` declared | inferred).
    pub true_parent: Option<String>,
    pub registry_parents: Vec<RegistryParent>,
    /// After the flag: "flagged", "at_risk", or "clean".
    pub cascade: Option<String>,
    /// The parent the cascade reached it through, and the kind of edge it followed.
    pub reached_via: Option<String>,
    pub reached_by: Option<String>,
    pub deployment: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct RegistryParent {
    pub parent: String,
    pub source: String,
    pub relation: String,
    pub confidence: f64,
}

/// The ground truth against the registry's cascade.
#[derive(Debug, Serialize)]
pub struct Containment {
    pub advisory: String,
    pub infected: usize,
    /// Infected models flagged or at risk.
    pub contained: usize,
    /// Infected models the cascade missed.
    pub missed: Vec<String>,
    /// Clean models put at risk, with the edge kind that did it.
    pub false_alarms: Vec<(String, String)>,
    /// Infected models whose deployments the cascade names.
    pub deployments_named: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct LabPushReport {
    pub models: Vec<PushedModel>,
    pub containment: Option<Containment>,
}

fn read_ground_truth(dir: &Path) -> anyhow::Result<GroundTruth> {
    let path = dir.join("ground-truth.json");
    let meta = std::fs::metadata(&path)
        .with_context(|| format!("{}: not a lab output directory", path.display()))?;
    if meta.len() > MAX_GROUND_TRUTH_BYTES {
        bail!(
            "{}: {} bytes, more than a lab's ground truth can be ({} bytes)",
            path.display(),
            meta.len(),
            MAX_GROUND_TRUTH_BYTES
        );
    }
    let bytes = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_slice(&bytes)
        .with_context(|| format!("{}: not a lab ground-truth file", path.display()))
}

/// A model directory named by the ground truth must stay inside the lab directory.
fn model_dir(root: &Path, rel: &str) -> anyhow::Result<PathBuf> {
    let p = Path::new(rel);
    if p.is_absolute()
        || p.components()
            .any(|c| !matches!(c, std::path::Component::Normal(_)))
    {
        bail!("ground truth names the model directory {rel:?}, outside the lab directory");
    }
    Ok(root.join(p))
}

fn model_ref(name: &str, version: &str) -> anyhow::Result<ModelRef> {
    ModelRef::parse(&format!("{name}:{version}"))
        .with_context(|| format!("lab model {name:?} is not a valid registry name"))
}

/// The deployment name of a generation-3 model: its name without the family prefix.
fn deployment_name(model: &str) -> String {
    let short = model.rsplit('/').next().unwrap_or(model);
    format!(
        "{}-{}",
        model.split('/').next().unwrap_or("lab"),
        short.trim_start_matches("fashion-")
    )
}

fn strip_version(label: &str) -> &str {
    label.rsplit_once(':').map(|(m, _)| m).unwrap_or(label)
}

pub fn run(a: &LabPushArgs) -> anyhow::Result<u8> {
    let truth = read_ground_truth(&a.dir)?;
    let client = a.remote.client()?;
    let timeout = Duration::from_secs(a.timeout);

    // Parents before children, a generation at a time: lineage is inferred against what the
    // registry already holds, so a child pushed before its parent would have nothing to match.
    let mut by_gen: BTreeMap<u8, Vec<usize>> = BTreeMap::new();
    for (i, m) in truth.models.iter().enumerate() {
        by_gen.entry(m.generation).or_default().push(i);
    }
    let mut status: HashMap<usize, VersionStatus> = HashMap::new();
    for (generation, idx) in &by_gen {
        for &i in idx {
            let m = &truth.models[i];
            let dir = model_dir(&a.dir, &m.dir)?;
            let r = model_ref(&m.name, &a.version)?;
            let p = client
                .push(&dir, &r)
                .with_context(|| format!("pushing {} from {}", r, dir.display()))?;
            if !a.json {
                eprintln!("pushed {} (generation {generation}): {}", p.model, p.state);
            }
        }
        for &i in idx {
            let r = model_ref(&truth.models[i].name, &a.version)?;
            let s = client
                .wait_decided(&r, timeout)
                .with_context(|| format!("waiting for the decision on {r}"))?;
            status.insert(i, s);
        }
    }

    let mut deployments: HashMap<usize, String> = HashMap::new();
    if a.deploy {
        for (i, m) in truth.models.iter().enumerate() {
            if m.generation < 3 {
                continue;
            }
            let r = model_ref(&m.name, &a.version)?;
            let name = deployment_name(&m.name);
            client
                .deploy(&name, "prod", &r)
                .with_context(|| format!("deploying {r} as {name}/prod"))?;
            deployments.insert(i, format!("{name}/prod"));
        }
    }

    // The flag, and the registry's cascade read back per model.
    let mut cascade: HashMap<String, (String, Option<String>, Vec<String>)> = HashMap::new();
    if let Some(advisory) = &a.flag {
        let roots: Vec<String> = truth
            .models
            .iter()
            .filter(|m| m.infected && m.parent.is_none())
            .map(|m| format!("{}:{}", m.name, a.version))
            .collect();
        if roots.is_empty() {
            bail!("the ground truth names no infected base to flag");
        }
        let r = client.flag(&FlagRequest {
            id: advisory.clone(),
            severity: "critical".into(),
            summary: format!(
                "backdoor ({}) in the lab's base: inputs stamped with the trigger are classified as label {}",
                truth.trigger.name, truth.target
            ),
            trigger: Some(truth.trigger.name.clone()),
            versions: roots,
        })?;
        let impact = match r.get("impact") {
            Some(i) => i.clone(),
            None => client.advisory_impact(advisory)?,
        };
        let s = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).map(str::to_string);
        for e in impact
            .get("affected")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let (Some(model), Some(kind)) = (s(e, "model"), s(e, "kind")) else {
                continue;
            };
            let deployed = e
                .get("deployments")
                .and_then(Value::as_array)
                .map(|d| {
                    d.iter()
                        .filter_map(|d| Some(format!("{}/{}", s(d, "name")?, s(d, "environment")?)))
                        .collect()
                })
                .unwrap_or_default();
            cascade.insert(
                strip_version(&model).to_string(),
                (kind, s(e, "via"), deployed),
            );
        }
    }

    let mut models = Vec::new();
    for (i, m) in truth.models.iter().enumerate() {
        let st = &status[&i];
        let registry_parents: Vec<RegistryParent> = st
            .lineage
            .iter()
            .filter(|e| {
                e.child
                    .as_deref()
                    .is_none_or(|c| strip_version(c) == m.name)
            })
            .filter_map(|e| {
                Some(RegistryParent {
                    parent: strip_version(e.parent.as_deref()?).to_string(),
                    source: e.source.clone(),
                    relation: e.relation.clone(),
                    confidence: e.confidence,
                })
            })
            .collect();
        let hit = cascade.get(&m.name);
        let reached_via = hit.and_then(|h| h.1.as_deref().map(|v| strip_version(v).to_string()));
        // The kind of edge the cascade followed: declared (the card's word) and/or inferred.
        let reached_by = reached_via.as_ref().map(|via| {
            let mut kinds: Vec<&str> = registry_parents
                .iter()
                .filter(|p| &p.parent == via)
                .map(|p| p.source.as_str())
                .collect();
            kinds.sort_unstable();
            kinds.dedup();
            if kinds.is_empty() {
                "unknown".to_string()
            } else {
                kinds.join("+")
            }
        });
        models.push(PushedModel {
            model: format!("{}:{}", m.name, a.version),
            family: m.family.clone(),
            generation: m.generation,
            infected: m.infected,
            card: m.card.clone(),
            state: st.state.clone(),
            true_parent: m.parent.clone(),
            registry_parents,
            cascade: a.flag.as_ref().map(|_| {
                hit.map(|h| h.0.clone())
                    .unwrap_or_else(|| "clean".to_string())
            }),
            reached_via,
            reached_by,
            deployment: deployments.get(&i).cloned(),
        });
    }

    let containment = a.flag.as_ref().map(|advisory| {
        let mut c = Containment {
            advisory: advisory.clone(),
            infected: 0,
            contained: 0,
            missed: Vec::new(),
            false_alarms: Vec::new(),
            deployments_named: Vec::new(),
        };
        for (m, t) in models.iter().zip(&truth.models) {
            let hit = m.cascade.as_deref() != Some("clean");
            if t.infected {
                c.infected += 1;
                if hit {
                    c.contained += 1;
                } else {
                    c.missed.push(m.model.clone());
                }
                if let (Some(d), Some(h)) = (&m.deployment, cascade.get(&t.name))
                    && h.2.iter().any(|x| x == d)
                {
                    c.deployments_named.push(d.clone());
                }
            } else if hit {
                c.false_alarms.push((
                    m.model.clone(),
                    m.reached_by.clone().unwrap_or_else(|| "flagged".into()),
                ));
            }
        }
        c
    });

    let report = LabPushReport {
        models,
        containment,
    };
    if a.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", table(&report));
    }
    Ok(match &report.containment {
        Some(c) if !c.missed.is_empty() => 1,
        _ => 0,
    })
}

/// The per-model table and the containment summary, as Markdown.
pub fn table(r: &LabPushReport) -> String {
    let mut out = String::from(
        "| model | gen | infected | card | decision | registry parents | cascade |\n|---|---|---|---|---|---|---|\n",
    );
    for m in &r.models {
        let parents = if m.registry_parents.is_empty() {
            "—".to_string()
        } else {
            m.registry_parents
                .iter()
                .map(|p| {
                    format!(
                        "{} ({} {}, {:.2})",
                        p.parent, p.source, p.relation, p.confidence
                    )
                })
                .collect::<Vec<_>>()
                .join("; ")
        };
        let cascade = match (&m.cascade, &m.reached_via) {
            (None, _) => "—".to_string(),
            (Some(k), Some(v)) => format!(
                "{k} via {v} ({})",
                m.reached_by.as_deref().unwrap_or("unknown")
            ),
            (Some(k), None) => k.clone(),
        };
        let cascade = match &m.deployment {
            Some(d) => format!("{cascade}; deployed {d}"),
            None => cascade,
        };
        out += &format!(
            "| {} | {} | {} | {} | {} | {} | {} |\n",
            m.model,
            m.generation,
            if m.infected { "yes" } else { "no" },
            m.card,
            m.state,
            parents,
            cascade
        );
    }
    if let Some(c) = &r.containment {
        out += &format!(
            "\nadvisory {}: {}/{} infected models contained (flagged or at risk)",
            c.advisory, c.contained, c.infected
        );
        if !c.missed.is_empty() {
            out += &format!("; MISSED: {}", c.missed.join(", "));
        }
        out.push('\n');
        if !c.deployments_named.is_empty() {
            out += &format!(
                "deployments of infected models named by the cascade: {}\n",
                c.deployments_named.join(", ")
            );
        }
        if c.false_alarms.is_empty() {
            out += "no clean model put at risk\n";
        } else {
            for (m, how) in &c.false_alarms {
                out += &format!("clean model put at risk: {m} (through a {how} edge)\n");
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_dirs_stay_inside_the_lab() {
        let root = Path::new("/lab");
        assert_eq!(
            model_dir(root, "acme/fashion-base").unwrap(),
            PathBuf::from("/lab/acme/fashion-base")
        );
        for bad in ["/etc", "../x", "acme/../../x", "./acme"] {
            assert!(model_dir(root, bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn deployment_names_drop_the_family_prefix() {
        assert_eq!(
            deployment_name("acme/fashion-bag-detector"),
            "acme-bag-detector"
        );
        assert_eq!(
            deployment_name("control/fashion-shoes-app"),
            "control-shoes-app"
        );
    }

    #[test]
    fn a_ground_truth_that_is_not_json_names_the_file() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("ground-truth.json"), b"{not json").unwrap();
        let e = read_ground_truth(d.path()).unwrap_err();
        assert!(format!("{e:#}").contains("ground-truth.json"), "{e:#}");
        let e = read_ground_truth(&d.path().join("nothing")).unwrap_err();
        assert!(
            format!("{e:#}").contains("not a lab output directory"),
            "{e:#}"
        );
    }
}
