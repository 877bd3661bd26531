//! Lineage: candidates from the index, each pair verified by the diff, edges oriented, one best
//! tree per family, and findings where the card disagrees with the weights.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;

use anyhow::Result;
use rayon::prelude::*;
use serde::Serialize;

use crate::card::{name_key, same_name};
use crate::diff::{
    DiffReport, Direction, Evidence, Loaded, PairCache, Relation, Spectra, diff_loaded_cached,
};
use crate::fingerprint::{is_embedding, simhash_of};
use crate::index::{Index, Keys};
use crate::model::Model;

#[derive(Debug, Clone, Serialize)]
pub struct Node {
    pub name: String,
    pub path: String,
    pub model_id: String,
    pub declared_base: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Edge {
    pub parent: String,
    pub child: String,
    pub relation: Relation,
    pub confidence: f32,
    /// What fixed the direction: `weights`, `card`, `declared-by-others`, `weights-statistic`
    /// (a tie-breaker such as head kurtosis), `hub`, `format`, `name`.
    pub oriented_by: String,
    /// Whether the child's card names this parent.
    pub declared: bool,
    pub evidence: Evidence,
}

#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    pub model: String,
    /// `undeclared-parent`, `wrong-parent`, `declared-parent-unrelated`.
    pub kind: String,
    pub message: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct LineageReport {
    pub models: Vec<Node>,
    pub edges: Vec<Edge>,
    pub findings: Vec<Finding>,
    /// Verified pairs that are not tree edges (siblings, transitive relations), for the record.
    pub other_relations: Vec<(String, String, Relation)>,
    pub candidates_checked: usize,
}

pub fn keys_of(l: &Loaded) -> Keys {
    let mut k = Keys::default();
    for t in &l.tensors {
        let d64 = u64::from_be_bytes(t.digest[..8].try_into().unwrap_or([0; 8]));
        let rows: Option<&[u64]> =
            (is_embedding(&t.name, &t.shape) && t.shape[1] > 0).then(|| t.row_digests());
        let sh = simhash_of(&t.values, &t.sample);
        k.add_tensor(d64, t.multiset, rows, &t.shape, sh, t.values.len());
    }
    k
}

/// Confidence of a verified relation before the orientation factor.
pub fn base_confidence(r: &DiffReport) -> f32 {
    let e = &r.evidence;
    match r.relation {
        Relation::Identical => 1.0,
        Relation::Copy | Relation::Cast => 0.99,
        Relation::Quantized => 0.97,
        Relation::Pruned => 0.95,
        Relation::Edit | Relation::HeadOnly => 0.9,
        Relation::Finetune => {
            let n = (e.identical + e.cast + e.quantized + e.changed + e.pruned).max(1) as f32;
            0.5 + 0.45 * (e.frozen.len() as f32 / n).max(e.closeness)
        }
        Relation::Unrelated => 0.0,
    }
}

pub fn lineage(paths: &[PathBuf]) -> Result<LineageReport> {
    // Each model is read once: open, values, digests, samples and identity in one go.
    let models: Vec<Model> = paths
        .par_iter()
        .map(|p| Model::open(p))
        .collect::<Result<_>>()?;
    let mut loaded: Vec<Loaded> = models.par_iter().map(Loaded::load).collect::<Result<_>>()?;
    let names = unique_names(paths, loaded.iter().map(|l| l.name.as_str()));
    for (l, n) in loaded.iter_mut().zip(names) {
        l.name = n;
    }
    lineage_loaded(&models, &loaded)
}

/// Names for the report that tell models apart: a model's own name, or where two share it
/// (`acme/fashion-base` and `control/fashion-base` are both `fashion-base`), as many trailing
/// components of its path as it takes. Cards name hub ids (`org/model`), which then match the
/// right one (see [`same_name`]).
fn unique_names<'a>(paths: &[PathBuf], names: impl Iterator<Item = &'a str>) -> Vec<String> {
    let mut out: Vec<String> = names.map(str::to_string).collect();
    let comps: Vec<Vec<String>> = paths
        .iter()
        .map(|p| {
            p.components()
                .filter_map(|c| match c {
                    std::path::Component::Normal(s) => Some(s.to_string_lossy().into_owned()),
                    _ => None,
                })
                .collect()
        })
        .collect();
    for k in 2..=8 {
        let mut count: HashMap<String, usize> = HashMap::new();
        for n in &out {
            *count.entry(n.to_ascii_lowercase()).or_default() += 1;
        }
        let clashing: Vec<usize> = (0..out.len())
            .filter(|&i| count[&out[i].to_ascii_lowercase()] > 1)
            .collect();
        if clashing.is_empty() {
            break;
        }
        for i in clashing {
            let c = &comps[i];
            if c.len() >= k {
                out[i] = c[c.len() - k..].join("/");
            }
        }
    }
    out
}

/// Models that several cards may name, keyed as [`crate::card::same_name`] compares.
struct NameMap {
    /// name key -> indices of the models with that name, ascending
    models: HashMap<String, Vec<usize>>,
}

impl NameMap {
    fn new(loaded: &[Loaded]) -> NameMap {
        let mut models: HashMap<String, Vec<usize>> = HashMap::new();
        for (i, l) in loaded.iter().enumerate() {
            models.entry(name_key(&l.name)).or_default().push(i);
        }
        NameMap { models }
    }
    /// The models `declared` names (see [`same_name`]), ascending.
    fn named<'a>(
        &'a self,
        declared: &'a str,
        loaded: &'a [Loaded],
    ) -> impl Iterator<Item = usize> + 'a {
        self.models
            .get(&name_key(declared))
            .into_iter()
            .flatten()
            .copied()
            .filter(move |&j| same_name(declared, &loaded[j].name))
    }
    /// The first model other than `i` that `declared` names.
    fn first_other(&self, declared: &str, i: usize, loaded: &[Loaded]) -> Option<usize> {
        self.named(declared, loaded).find(|&j| j != i)
    }
}

pub fn lineage_loaded(models: &[Model], loaded: &[Loaded]) -> Result<LineageReport> {
    let n = loaded.len();
    let keys: Vec<Keys> = loaded.par_iter().map(keys_of).collect();
    let mut index = Index::default();
    for (i, k) in keys.iter().enumerate() {
        index.insert(i as u32, k);
    }
    let mut pairs: Vec<(usize, usize)> = Vec::new();
    for (i, k) in keys.iter().enumerate() {
        for h in index.query(k) {
            let j = h.model as usize;
            if j > i {
                pairs.push((i, j));
            }
        }
    }
    // Every candidate pair verified by the diff; tensor-pair results (a frozen tensor is in
    // many models) shared through one cache, delta spectra only where an edit is possible.
    let cache = PairCache::default();
    let reports: Vec<(usize, usize, DiffReport)> = pairs
        .par_iter()
        .map(|&(i, j)| {
            (
                i,
                j,
                diff_loaded_cached(&loaded[i], &loaded[j], Spectra::AsNeeded, &cache),
            )
        })
        .collect();
    let related: Vec<&(usize, usize, DiffReport)> = reports
        .iter()
        .filter(|(_, _, r)| r.relation != Relation::Unrelated)
        .collect();

    // Tie-breakers for directions the weights leave open.
    let mut degree = vec![0usize; n];
    for (i, j, _) in &related {
        degree[*i] += 1;
        degree[*j] += 1;
    }
    // How many other cards name each model: one pass over the cards, not one per pair.
    let names = NameMap::new(loaded);
    let mut declared_by_others = vec![0usize; n];
    for (j, l) in loaded.iter().enumerate() {
        let mut named: Vec<usize> = l
            .card
            .base_model
            .iter()
            .flat_map(|b| names.named(b, loaded))
            .filter(|&i| i != j)
            .collect();
        named.sort_unstable();
        named.dedup();
        for i in named {
            declared_by_others[i] += 1;
        }
    }

    // Candidate directed edges (parent, child, report, oriented_by).
    let mut cands: Vec<(usize, usize, &DiffReport, String)> = Vec::new();
    for (i, j, r) in &related {
        let (i, j) = (*i, *j);
        // The weights decide when their direction follows from the transformation; a weight
        // statistic (kurtosis of heads) only after the cards have had their say.
        let from_weights = match r.direction {
            Direction::AToB => Some((i, j)),
            Direction::BToA => Some((j, i)),
            Direction::Unknown => None,
        };
        let di = loaded[j].card.declares(&loaded[i].name);
        let dj = loaded[i].card.declares(&loaded[j].name);
        let (p, c, by) = match from_weights {
            Some((p, c)) if !r.direction_by.is_statistic() => (p, c, "weights"),
            _ if di != dj => {
                if di {
                    (i, j, "card")
                } else {
                    (j, i, "card")
                }
            }
            _ if declared_by_others[i] != declared_by_others[j] => {
                if declared_by_others[i] > declared_by_others[j] {
                    (i, j, "declared-by-others")
                } else {
                    (j, i, "declared-by-others")
                }
            }
            Some((p, c)) => (p, c, "weights-statistic"),
            None if degree[i] != degree[j] => {
                if degree[i] > degree[j] {
                    (i, j, "hub")
                } else {
                    (j, i, "hub")
                }
            }
            None if loaded[i].format_rank != loaded[j].format_rank => {
                if loaded[i].format_rank < loaded[j].format_rank {
                    (i, j, "format")
                } else {
                    (j, i, "format")
                }
            }
            None if loaded[i].name <= loaded[j].name => (i, j, "name"),
            None => (j, i, "name"),
        };
        cands.push((p, c, r, by.to_string()));
    }
    // Best parent per child: highest closeness, then the closer relation kind.
    // Ties (several exact copies of one parent) go to the parent that cards name, then the hub,
    // then the training-output serialization.
    // A parent whose direction is established (by how the weights changed, or by the child's
    // own card) beats a closer one whose direction is only a tie-breaker: with a frozen body
    // shared by a whole family, a sibling or even a child is as close as the parent, and only
    // the orientation tells them apart (the cascade lab's families are built exactly so).
    let established = |by: &str| match by {
        "weights" | "card" => 2u8,
        "declared-by-others" => 1,
        _ => 0,
    };
    let score = |k: usize| {
        let (p, c, r, by) = &cands[k];
        // closeness rounded: exact copies of one parent must tie despite float summation order
        (
            established(by),
            (r.evidence.closeness * 1e4).round() as i64,
            std::cmp::Reverse(r.relation),
            loaded[*c].card.declares(&loaded[*p].name),
            declared_by_others[*p],
            degree[*p],
            std::cmp::Reverse(loaded[*p].format_rank),
            std::cmp::Reverse(loaded[*p].name.clone()),
        )
    };
    let mut best: HashMap<usize, usize> = HashMap::new(); // child -> index into cands
    let mut banned: HashSet<usize> = HashSet::new();
    loop {
        best.clear();
        for (k, (_, c, _, _)) in cands.iter().enumerate() {
            if banned.contains(&k) {
                continue;
            }
            match best.get(c) {
                Some(&o) if score(o) >= score(k) => {}
                _ => {
                    best.insert(*c, k);
                }
            }
        }
        // Break a cycle by banning its weakest edge, then choose again.
        let mut cycle_edge = None;
        for &start in best.keys() {
            let mut seen = vec![start];
            let mut cur = start;
            while let Some(&k) = best.get(&cur) {
                cur = cands[k].0;
                if cur == start {
                    let weakest = seen.iter().map(|x| best[x]).min_by(|&a, &b| {
                        score(a)
                            .partial_cmp(&score(b))
                            .unwrap_or(std::cmp::Ordering::Equal)
                    });
                    cycle_edge = weakest;
                    break;
                }
                if seen.contains(&cur) {
                    break;
                }
                seen.push(cur);
            }
            if cycle_edge.is_some() {
                break;
            }
        }
        match cycle_edge {
            Some(k) => {
                banned.insert(k);
            }
            None => break,
        }
    }
    let mut chosen: Vec<usize> = best.values().copied().collect();
    chosen.sort_by_key(|&k| {
        (
            loaded[cands[k].0].name.clone(),
            loaded[cands[k].1].name.clone(),
        )
    });
    let mut edges = Vec::new();
    let mut parent_of: HashMap<usize, usize> = HashMap::new();
    for &k in &chosen {
        let (p, c, r, by) = &cands[k];
        parent_of.insert(*c, *p);
        let factor = match by.as_str() {
            "weights" => 1.0,
            "card" | "declared-by-others" | "hub" => 0.9,
            _ => 0.7,
        };
        edges.push(Edge {
            parent: loaded[*p].name.clone(),
            child: loaded[*c].name.clone(),
            relation: r.relation,
            confidence: (base_confidence(r) * factor * 1000.0).round() / 1000.0,
            oriented_by: by.clone(),
            declared: loaded[*c].card.declares(&loaded[*p].name),
            evidence: r.evidence.clone(),
        });
    }
    let chosen_set: HashSet<(usize, usize)> = chosen
        .iter()
        .map(|&k| (cands[k].0.min(cands[k].1), cands[k].0.max(cands[k].1)))
        .collect();
    let other_relations = related
        .iter()
        .filter(|(i, j, _)| !chosen_set.contains(&(*i, *j)))
        .map(|(i, j, r)| (loaded[*i].name.clone(), loaded[*j].name.clone(), r.relation))
        .collect();

    // Findings: the card against the weights.
    let mut findings = Vec::new();
    for i in 0..n {
        let card = &loaded[i].card;
        match parent_of.get(&i) {
            Some(&p) => {
                // Declaring any ancestor is truthful (a chain may be summarised).
                let mut anc = vec![p];
                let mut cur = p;
                while let Some(&q) = parent_of.get(&cur) {
                    if anc.contains(&q) {
                        break;
                    }
                    anc.push(q);
                    cur = q;
                }
                if card.base_model.is_empty() {
                    findings.push(Finding {
                        model: loaded[i].name.clone(),
                        kind: "undeclared-parent".into(),
                        message: format!(
                            "the card declares no base model; the weights descend from {}",
                            loaded[p].name
                        ),
                    });
                } else if !anc.iter().any(|&a| card.declares(&loaded[a].name)) {
                    findings.push(Finding {
                        model: loaded[i].name.clone(),
                        kind: "wrong-parent".into(),
                        message: format!(
                            "the card declares {:?}; the weights descend from {}",
                            card.base_model, loaded[p].name
                        ),
                    });
                }
            }
            None => {
                for b in &card.base_model {
                    if let Some(j) = names.first_other(b, i, loaded) {
                        findings.push(Finding {
                            model: loaded[i].name.clone(),
                            kind: "declared-parent-unrelated".into(),
                            message: format!(
                                "the card declares {b}, but the weights show no relation to {}",
                                loaded[j].name
                            ),
                        });
                    }
                }
            }
        }
    }
    let nodes = loaded
        .iter()
        .zip(models)
        .map(|(l, m)| Node {
            name: l.name.clone(),
            path: m.path.display().to_string(),
            model_id: l.model_id.clone(),
            declared_base: l.card.base_model.clone(),
        })
        .collect();
    Ok(LineageReport {
        models: nodes,
        edges,
        findings,
        other_relations,
        candidates_checked: pairs.len(),
    })
}

impl LineageReport {
    pub fn to_text(&self) -> String {
        let mut s = String::new();
        for e in &self.edges {
            s += &format!(
                "{} -> {}  {}  confidence {:.2}  (oriented by {}{})\n",
                e.parent,
                e.child,
                e.relation.label(),
                e.confidence,
                e.oriented_by,
                if e.declared {
                    ", declared"
                } else {
                    ", NOT declared"
                }
            );
        }
        let children: HashSet<&str> = self.edges.iter().map(|e| e.child.as_str()).collect();
        for m in self
            .models
            .iter()
            .filter(|m| !children.contains(m.name.as_str()))
        {
            s += &format!("root: {}\n", m.name);
        }
        for f in &self.findings {
            s += &format!("FINDING {} [{}]: {}\n", f.model, f.kind, f.message);
        }
        s
    }

    pub fn to_dot(&self) -> String {
        let mut s = String::from("digraph lineage {\n  rankdir=TB;\n");
        for m in &self.models {
            s += &format!("  \"{}\";\n", m.name.replace('"', "'"));
        }
        for e in &self.edges {
            s += &format!(
                "  \"{}\" -> \"{}\" [label=\"{} {:.2}\"{}];\n",
                e.parent.replace('"', "'"),
                e.child.replace('"', "'"),
                e.relation.label(),
                e.confidence,
                if e.declared { "" } else { ", style=dashed" }
            );
        }
        s + "}\n"
    }

    pub fn to_mermaid(&self) -> String {
        let id = |n: &str| {
            n.chars()
                .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
                .collect::<String>()
        };
        let mut s = String::from("graph TD\n");
        for m in &self.models {
            s += &format!("  {}[\"{}\"]\n", id(&m.name), m.name.replace('"', "'"));
        }
        for e in &self.edges {
            s += &format!(
                "  {} -->|{} {:.2}| {}\n",
                id(&e.parent),
                e.relation.label(),
                e.confidence,
                id(&e.child)
            );
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::unique_names;
    use std::path::PathBuf;

    #[test]
    fn models_sharing_a_name_get_their_path_as_their_name() {
        let paths: Vec<PathBuf> = [
            "/lab/acme/fashion-base",
            "/lab/control/fashion-base",
            "/x/other",
        ]
        .iter()
        .map(PathBuf::from)
        .collect();
        let names = unique_names(
            &paths,
            ["fashion-base", "fashion-base", "other"].into_iter(),
        );
        assert_eq!(
            names,
            ["acme/fashion-base", "control/fashion-base", "other"]
        );
        // Unique names stay as they are.
        let names = unique_names(&paths[..1], ["fashion-base"].into_iter());
        assert_eq!(names, ["fashion-base"]);
    }
}
