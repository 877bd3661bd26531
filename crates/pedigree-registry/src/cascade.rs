//! The cascade over the lineage graph: which versions a flag puts at risk, through which parent,
//! and which version of each affected model is the last known-good one to roll back to.
//!
//! Pure computation, no storage: the server keeps a [`LineageGraph`] in memory, feeds it the
//! `lineage_edges` table in rowid order ([`LineageGraph::add_edge`], then
//! [`LineageGraph::set_high_water`] with the last rowid read) and on later requests loads only
//! the rows above [`LineageGraph::high_water`].
//!
//! Representation: version ids are interned to dense `u32` slots (one hash lookup per id, with a
//! cheap integer mixer instead of SipHash), and each slot keeps its children and its parents as
//! small vectors of `(slot, confidence)`. The traversal then works on slots alone and marks
//! visited slots in a bitset, so a query costs one pass over the affected family plus one bit per
//! known version, independent of the registry's size otherwise. Measured on the synthetic
//! registry of [`synthetic_registry`] (1M versions, one family of 100k descendants): see the
//! ignored test `timing_affected_1m` (`cargo test -p pedigree-registry --release --lib
//! cascade::tests::timing_affected_1m -- --ignored --nocapture`).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};

/// A hasher for integer keys: the splitmix64 finaliser. Ids are not attacker-chosen hash-flood
/// material here (they are database rowids), and this is several times faster than SipHash.
#[derive(Default, Clone, Copy)]
struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(8)) ^ u64::from(b);
        }
    }
    fn write_i64(&mut self, n: i64) {
        self.0 = n as u64;
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

type IdMap<V> = HashMap<i64, V, BuildHasherDefault<IdHasher>>;

/// One version reached by the cascade.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct Affected {
    /// The version at risk.
    pub version: i64,
    /// The parent it was reached through on a shortest path from a root (a root itself at depth 1).
    pub via: i64,
    /// Number of edges from the nearest root: direct children of a root have depth 1.
    pub depth: u32,
}

/// The lineage graph, parent → child edges with a confidence in `[0, 1]`.
#[derive(Clone, Debug, Default)]
pub struct LineageGraph {
    /// version id → dense slot.
    slot_of: IdMap<u32>,
    /// dense slot → version id.
    ids: Vec<i64>,
    /// slot → children `(slot, confidence)`, in the order the edges were added.
    children: Vec<Vec<(u32, f32)>>,
    /// slot → parents `(slot, confidence)`, in the order the edges were added.
    parents: Vec<Vec<(u32, f32)>>,
    edges: usize,
    high_water: i64,
}

impl LineageGraph {
    /// An empty graph, high-water mark 0.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty graph with room for about `versions` versions and `edges` edges.
    pub fn with_capacity(versions: usize) -> Self {
        let mut slot_of = IdMap::default();
        slot_of.reserve(versions);
        LineageGraph {
            slot_of,
            ids: Vec::with_capacity(versions),
            children: Vec::with_capacity(versions),
            parents: Vec::with_capacity(versions),
            edges: 0,
            high_water: 0,
        }
    }

    fn intern(&mut self, id: i64) -> u32 {
        if let Some(&s) = self.slot_of.get(&id) {
            return s;
        }
        let s = u32::try_from(self.ids.len()).expect("more than 4G versions in a lineage graph");
        self.slot_of.insert(id, s);
        self.ids.push(id);
        self.children.push(Vec::new());
        self.parents.push(Vec::new());
        s
    }

    /// Add the edge `parent → child`. Idempotent: a repeated `(parent, child)` keeps one edge with
    /// the highest confidence seen. The confidence is clamped to `[0, 1]` (NaN counts as 0). A
    /// self-edge is stored (it is harmless to the traversal).
    ///
    /// Cost: one or two hash lookups, plus a scan of the shorter of the parent's child list and
    /// the child's parent list to detect the repeat (short in practice: versions have few parents).
    pub fn add_edge(&mut self, parent: i64, child: i64, confidence: f32) {
        let conf = if confidence.is_nan() {
            0.0
        } else {
            confidence.clamp(0.0, 1.0)
        };
        let p = self.intern(parent);
        let c = self.intern(child);
        let (pu, cu) = (p as usize, c as usize);
        let existing = if self.children[pu].len() <= self.parents[cu].len() {
            self.children[pu].iter().find(|e| e.0 == c).map(|e| e.1)
        } else {
            self.parents[cu].iter().find(|e| e.0 == p).map(|e| e.1)
        };
        match existing {
            None => {
                self.children[pu].push((c, conf));
                self.parents[cu].push((p, conf));
                self.edges += 1;
            }
            Some(old) if conf > old => {
                if let Some(e) = self.children[pu].iter_mut().find(|e| e.0 == c) {
                    e.1 = conf;
                }
                if let Some(e) = self.parents[cu].iter_mut().find(|e| e.0 == p) {
                    e.1 = conf;
                }
            }
            Some(_) => {}
        }
    }

    /// The highest storage rowid already loaded into this graph (0 when none).
    pub fn high_water(&self) -> i64 {
        self.high_water
    }

    /// Record that every stored edge up to `rowid` is loaded. Never moves backwards.
    pub fn set_high_water(&mut self, rowid: i64) {
        self.high_water = self.high_water.max(rowid);
    }

    /// Number of distinct `(parent, child)` edges.
    pub fn edge_count(&self) -> usize {
        self.edges
    }

    /// Number of versions that appear on at least one edge.
    pub fn version_count(&self) -> usize {
        self.ids.len()
    }

    /// Whether `version` appears on any edge.
    pub fn contains(&self, version: i64) -> bool {
        self.slot_of.contains_key(&version)
    }

    /// The direct parents of `child` with the edge confidence, in the order the edges were added
    /// (empty when the version has none). Answers "why is this at risk": the edges it inherits from.
    pub fn parents_of(&self, child: i64) -> impl Iterator<Item = (i64, f32)> + '_ {
        let list = match self.slot_of.get(&child) {
            Some(&s) => self.parents[s as usize].as_slice(),
            None => &[],
        };
        list.iter()
            .map(move |&(p, conf)| (self.ids[p as usize], conf))
    }

    /// The direct children of `parent` with the edge confidence, in the order the edges were added.
    pub fn children_of(&self, parent: i64) -> impl Iterator<Item = (i64, f32)> + '_ {
        let list = match self.slot_of.get(&parent) {
            Some(&s) => self.children[s as usize].as_slice(),
            None => &[],
        };
        list.iter()
            .map(move |&(c, conf)| (self.ids[c as usize], conf))
    }

    /// Every version reachable from `roots` through edges with `confidence >= min_confidence`,
    /// excluding the roots themselves, each with the parent it was reached through on a shortest
    /// path (fewest edges) from the nearest root and that path's length.
    ///
    /// Breadth-first: the result is ordered by depth, and within a depth by discovery order (roots
    /// in the order given, children in the order their edges were added), so it is deterministic
    /// for a graph loaded in rowid order. Ties between equally short paths go to the parent
    /// discovered first. Cycles and self-edges are safe (each version is visited once); roots
    /// unknown to the graph contribute nothing; a root reachable from another root is not reported.
    pub fn affected(&self, roots: &[i64], min_confidence: f32) -> Vec<Affected> {
        let n = self.ids.len();
        let mut seen = vec![0u64; n.div_ceil(64)];
        let mut mark = |s: u32| -> bool {
            let (w, b) = ((s >> 6) as usize, s & 63);
            let fresh = seen[w] & (1 << b) == 0;
            seen[w] |= 1 << b;
            fresh
        };
        let mut frontier: Vec<u32> = Vec::with_capacity(roots.len());
        for r in roots {
            if let Some(&s) = self.slot_of.get(r)
                && mark(s)
            {
                frontier.push(s);
            }
        }
        let mut out: Vec<Affected> = Vec::new();
        let mut next: Vec<u32> = Vec::new();
        let mut depth = 0u32;
        while !frontier.is_empty() {
            depth += 1;
            for &v in &frontier {
                let via = self.ids[v as usize];
                for &(c, conf) in &self.children[v as usize] {
                    if conf >= min_confidence && mark(c) {
                        next.push(c);
                        out.push(Affected {
                            version: self.ids[c as usize],
                            via,
                            depth,
                        });
                    }
                }
            }
            std::mem::swap(&mut frontier, &mut next);
            next.clear();
        }
        out
    }
}

/// The path from a root down to `version` as recorded in a cascade result (root first, `version`
/// last), following `via`. `None` when `version` is not in `affected`.
pub fn path_from_root(affected: &[Affected], version: i64) -> Option<Vec<i64>> {
    let by_version: HashMap<i64, &Affected> = affected.iter().map(|a| (a.version, a)).collect();
    let mut cur = by_version.get(&version)?;
    let mut path = vec![version];
    loop {
        path.push(cur.via);
        match by_version.get(&cur.via) {
            Some(a) if path.len() <= affected.len() + 1 => cur = a,
            _ => break,
        }
    }
    path.reverse();
    Some(path)
}

/// What the last-known-good computation needs to know about a version.
#[derive(Clone, Debug)]
pub struct VersionInfo {
    pub id: i64,
    pub model_id: i64,
    /// `"ns/name:version"`, for messages.
    pub label: String,
    /// Upload order (monotonic across the registry).
    pub created_seq: i64,
    /// The policy approved it.
    pub approved: bool,
}

/// The last known-good version of every affected model.
///
/// `bad` must hold every version that must not be rolled back to: the flagged versions **and**
/// everything the cascade put at risk ([`LineageGraph::affected`]), plus any version flagged or
/// at risk from an earlier advisory. A model is *affected* when at least one of its versions is in
/// `bad`; each affected model gets an entry, and no other model does.
///
/// The last known-good version of an affected model is, among the versions of that model, the one
/// with the highest `created_seq` that
/// 1. was created **before the oldest bad version of that model** (anything uploaded after the
///    model first took in the poisoned lineage may carry it through a path the lineage graph does
///    not show, e.g. an inferred edge below the confidence threshold, so it is not offered as
///    "known" good even when it is not itself in `bad`);
/// 2. is **not in `bad`** (neither flagged nor a descendant of a flagged version: its own lineage
///    is clean as far as the registry knows);
/// 3. is **approved** by policy (a rejected or still-quarantined version was never good).
///
/// `None` means there is no safe version to roll back to: the operator has to rebuild from a
/// clean base rather than roll back. Ids in `bad` that are not in `versions` are ignored (their
/// model is unknown).
pub fn last_known_good(versions: &[VersionInfo], bad: &HashSet<i64>) -> BTreeMap<i64, Option<i64>> {
    // Oldest bad created_seq per affected model.
    let mut first_bad: IdMap<i64> = IdMap::default();
    for v in versions.iter().filter(|v| bad.contains(&v.id)) {
        first_bad
            .entry(v.model_id)
            .and_modify(|s| *s = (*s).min(v.created_seq))
            .or_insert(v.created_seq);
    }
    let mut out: BTreeMap<i64, Option<i64>> = first_bad.keys().map(|&m| (m, None)).collect();
    let mut best_seq: IdMap<i64> = IdMap::default();
    for v in versions {
        let Some(&limit) = first_bad.get(&v.model_id) else {
            continue;
        };
        if v.created_seq >= limit || !v.approved || bad.contains(&v.id) {
            continue;
        }
        let better = best_seq.get(&v.model_id).is_none_or(|&s| v.created_seq > s);
        if better {
            best_seq.insert(v.model_id, v.created_seq);
            out.insert(v.model_id, Some(v.id));
        }
    }
    out
}

/// A deterministic synthetic registry for tests and benchmarks: `total` versions with ids
/// `1..=total`; version 1 is the root of a family of exactly `family` descendants (ids
/// `2..=family+1`) that grows as a random tree with extra merge edges (a second parent inside the
/// family), one back edge that closes a cycle, and low-confidence (0.2) edges from the family to
/// outside versions, which a cascade at a threshold above 0.2 must not follow. The remaining
/// versions form many small families (trees of up to 20 versions). Confidences on followed edges
/// are in `[0.5, 1.0]`. Returns the graph (high-water mark = number of edges) and the family's ids.
pub fn synthetic_registry(total: usize, family: usize, seed: u64) -> (LineageGraph, Vec<i64>) {
    assert!(total > family, "total must cover the root and its family");
    let mut rng = SplitMix(seed);
    let mut g = LineageGraph::with_capacity(total);
    let root = 1i64;
    let fam: Vec<i64> = (2..=(family as i64 + 1)).collect();
    // Family tree: each member's parent is a random earlier member (or the root).
    for (i, &v) in fam.iter().enumerate() {
        let parent = if i == 0 {
            root
        } else {
            fam[rng.below(i as u64) as usize]
        };
        let parent = if rng.below(50) == 0 { root } else { parent };
        g.add_edge(parent, v, rng.conf());
        if i > 10 && rng.below(20) == 0 {
            // A merge: a second parent among earlier members.
            g.add_edge(fam[rng.below(i as u64) as usize], v, rng.conf());
        }
    }
    // Background: small families over the rest.
    let first_bg = family as i64 + 2;
    let mut fam_start = first_bg;
    for v in first_bg..=(total as i64) {
        if v == fam_start {
            continue;
        }
        if (v - fam_start) >= 20 || rng.below(15) == 0 {
            fam_start = v;
            continue;
        }
        let parent = fam_start + rng.below((v - fam_start) as u64) as i64;
        g.add_edge(parent, v, rng.conf());
    }
    if total as i64 >= first_bg {
        // Weak edges out of the family: never followed at thresholds above 0.2.
        let bg = total as u64 - first_bg as u64 + 1;
        for _ in 0..(family / 100).max(1) {
            let from = fam[rng.below(fam.len() as u64) as usize];
            let to = first_bg + rng.below(bg) as i64;
            g.add_edge(from, to, 0.2);
        }
    }
    if let (Some(&last), true) = (fam.last(), !fam.is_empty()) {
        // A cycle: the newest member back to the root, and a self-edge.
        g.add_edge(last, root, 0.9);
        g.add_edge(last, last, 0.9);
    }
    g.set_high_water(g.edge_count() as i64);
    (g, fam)
}

/// splitmix64, for deterministic synthetic data without a dependency on a particular RNG crate.
struct SplitMix(u64);
impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        if n == 0 { 0 } else { self.next() % n }
    }
    fn conf(&mut self) -> f32 {
        0.5 + (self.below(501) as f32) / 1000.0
    }
}

/// Check, independently of [`LineageGraph::affected`]'s traversal, that `result` is a correct
/// cascade of `roots` at `min_confidence`: returns the first problem found.
#[cfg(test)]
fn check_cascade(
    g: &LineageGraph,
    roots: &[i64],
    min: f32,
    result: &[Affected],
) -> Result<(), String> {
    let roots_set: HashSet<i64> = roots.iter().copied().collect();
    let depth: HashMap<i64, u32> = result.iter().map(|a| (a.version, a.depth)).collect();
    if depth.len() != result.len() {
        return Err("a version is reported twice".into());
    }
    let d = |v: i64| -> Option<u32> {
        if roots_set.contains(&v) && g.contains(v) {
            Some(0)
        } else {
            depth.get(&v).copied()
        }
    };
    for a in result {
        if roots_set.contains(&a.version) {
            return Err(format!("root {} reported", a.version));
        }
        // The via edge exists and qualifies, and depth is consistent along it.
        let edge = g.parents_of(a.version).find(|&(p, _)| p == a.via);
        match edge {
            Some((_, c)) if c >= min => {}
            _ => return Err(format!("{} via {}: no qualifying edge", a.version, a.via)),
        }
        if d(a.via).map(|x| x + 1) != Some(a.depth) {
            return Err(format!(
                "{}: depth {} but via {} at {:?}",
                a.version,
                a.depth,
                a.via,
                d(a.via)
            ));
        }
        // Shortest: no qualifying parent is closer to a root.
        let best = g
            .parents_of(a.version)
            .filter(|&(_, c)| c >= min)
            .filter_map(|(p, _)| d(p))
            .min();
        if best.map(|b| b + 1) != Some(a.depth) {
            return Err(format!(
                "{}: depth {} but a parent gives {:?}",
                a.version, a.depth, best
            ));
        }
    }
    // Closed: every qualifying child of a reached version (or root) is reached.
    for v in result
        .iter()
        .map(|a| a.version)
        .chain(roots.iter().copied())
    {
        for (c, conf) in g.children_of(v) {
            if conf >= min && d(c).is_none() {
                return Err(format!("{c} is a qualifying child of {v} but missing"));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(a: &[Affected]) -> Vec<i64> {
        let mut v: Vec<i64> = a.iter().map(|x| x.version).collect();
        v.sort();
        v
    }

    #[test]
    fn add_edge_is_idempotent_and_keeps_max_confidence() {
        let mut g = LineageGraph::new();
        g.add_edge(1, 2, 0.4);
        g.add_edge(1, 2, 0.9);
        g.add_edge(1, 2, 0.6);
        g.add_edge(1, 3, f32::NAN);
        g.add_edge(1, 4, 7.0);
        assert_eq!(g.edge_count(), 3);
        assert_eq!(g.parents_of(2).collect::<Vec<_>>(), vec![(1, 0.9)]);
        assert_eq!(
            g.children_of(1).collect::<Vec<_>>(),
            vec![(2, 0.9), (3, 0.0), (4, 1.0)]
        );
        assert_eq!(g.parents_of(99).count(), 0);
        g.set_high_water(10);
        g.set_high_water(5);
        assert_eq!(g.high_water(), 10);
    }

    #[test]
    fn repeat_detected_whichever_list_is_shorter() {
        let mut g = LineageGraph::new();
        // Child 100 has many parents; parent 1 has one child: the scan takes the parent's list.
        for p in 1..50 {
            g.add_edge(p, 100, 0.5);
        }
        // Parent 1 now gets many children so its list is the longer one.
        for c in 200..260 {
            g.add_edge(1, c, 0.5);
        }
        g.add_edge(1, 100, 0.8);
        g.add_edge(1, 230, 0.7);
        assert_eq!(g.edge_count(), 49 + 60);
        assert_eq!(g.parents_of(100).find(|e| e.0 == 1), Some((1, 0.8)));
        assert_eq!(g.children_of(1).find(|e| e.0 == 100), Some((100, 0.8)));
        assert_eq!(g.parents_of(230).collect::<Vec<_>>(), vec![(1, 0.7)]);
    }

    #[test]
    fn affected_follows_threshold_shortest_path_and_survives_cycles() {
        let mut g = LineageGraph::new();
        // 1 → 2 → 3 → 4, 1 → 4 (short cut), 4 → 2 (cycle), 3 → 5 weak, 5 → 6, 7 unrelated.
        g.add_edge(1, 2, 0.9);
        g.add_edge(2, 3, 0.9);
        g.add_edge(3, 4, 0.9);
        g.add_edge(1, 4, 0.8);
        g.add_edge(4, 2, 0.9);
        g.add_edge(3, 5, 0.3);
        g.add_edge(5, 6, 0.9);
        g.add_edge(7, 8, 0.9);
        g.add_edge(4, 4, 1.0);
        let a = g.affected(&[1], 0.5);
        assert_eq!(ids(&a), vec![2, 3, 4]);
        let four = a.iter().find(|x| x.version == 4).unwrap();
        assert_eq!((four.via, four.depth), (1, 1));
        let three = a.iter().find(|x| x.version == 3).unwrap();
        assert_eq!((three.via, three.depth), (2, 2));
        check_cascade(&g, &[1], 0.5, &a).unwrap();
        // Lower threshold picks up the weak edge; the boundary is inclusive.
        let low = g.affected(&[1], 0.3);
        assert_eq!(ids(&low), vec![2, 3, 4, 5, 6]);
        check_cascade(&g, &[1], 0.3, &low).unwrap();
        // Roots are excluded even when reachable from another root; unknown roots are ignored.
        let two_roots = g.affected(&[1, 3, 12345], 0.5);
        assert_eq!(ids(&two_roots), vec![2, 4]);
        // A cycle through the root itself does not report the root.
        assert_eq!(ids(&g.affected(&[2], 0.5)), vec![3, 4]);
        assert!(g.affected(&[8], 0.0).is_empty());
        assert_eq!(path_from_root(&a, 3), Some(vec![1, 2, 3]));
        assert_eq!(path_from_root(&a, 7), None);
    }

    #[test]
    fn checker_rejects_wrong_answers() {
        let mut g = LineageGraph::new();
        g.add_edge(1, 2, 0.9);
        g.add_edge(2, 3, 0.9);
        g.add_edge(1, 3, 0.9);
        let mut a = g.affected(&[1], 0.5);
        check_cascade(&g, &[1], 0.5, &a).unwrap();
        let three = a.iter_mut().find(|x| x.version == 3).unwrap();
        *three = Affected {
            version: 3,
            via: 2,
            depth: 2,
        };
        assert!(
            check_cascade(&g, &[1], 0.5, &a).is_err(),
            "a longer path must be caught"
        );
        a.retain(|x| x.version != 3);
        assert!(
            check_cascade(&g, &[1], 0.5, &a).is_err(),
            "a missing child must be caught"
        );
    }

    #[test]
    fn incremental_growth_extends_the_cascade() {
        let mut g = LineageGraph::new();
        g.add_edge(1, 2, 0.9);
        g.set_high_water(1);
        assert_eq!(ids(&g.affected(&[1], 0.5)), vec![2]);
        g.add_edge(2, 3, 0.9);
        g.set_high_water(2);
        assert_eq!(ids(&g.affected(&[1], 0.5)), vec![2, 3]);
        assert_eq!(g.high_water(), 2);
    }

    #[test]
    fn family_of_100k_in_a_registry_of_200k() {
        let (g, fam) = synthetic_registry(200_000, 100_000, 7);
        let a = g.affected(&[1], 0.5);
        assert_eq!(a.len(), 100_000);
        let got: HashSet<i64> = a.iter().map(|x| x.version).collect();
        let want: HashSet<i64> = fam.iter().copied().collect();
        assert_eq!(
            got, want,
            "exactly the family, no background version through a weak edge"
        );
        assert!(
            a.windows(2).all(|w| w[0].depth <= w[1].depth),
            "ordered by depth"
        );
        check_cascade(&g, &[1], 0.5, &a).unwrap();
        // At a threshold that admits the weak edges the cascade leaks into background families.
        let leaky = g.affected(&[1], 0.1);
        assert!(leaky.len() > 100_000);
        check_cascade(&g, &[1], 0.1, &leaky).unwrap();
        // From a mid-family version: a subtree, still consistent.
        let mid = g.affected(&[fam[10]], 0.5);
        check_cascade(&g, &[fam[10]], 0.5, &mid).unwrap();
        assert!(mid.len() < 100_000);
    }

    #[test]
    fn last_known_good_picks_newest_clean_approved_before_first_bad() {
        let v = |id, model_id, seq, approved| VersionInfo {
            id,
            model_id,
            label: format!("acme/m{model_id}:{id}"),
            created_seq: seq,
            approved,
        };
        let versions = vec![
            // model 10: 1 ok, 2 ok (newest good), 3 bad, 4 clean but after the first bad one.
            v(1, 10, 1, true),
            v(2, 10, 2, true),
            v(3, 10, 3, true),
            v(4, 10, 4, true),
            // model 20: 5 ok, 6 not approved, 7 bad (in `bad`, e.g. inherited), 8 bad.
            v(5, 20, 5, true),
            v(6, 20, 6, false),
            v(7, 20, 9, true),
            v(8, 20, 7, true),
            // model 30: only bad or unapproved versions → None.
            v(9, 30, 10, false),
            v(11, 30, 11, true),
            // model 40: untouched → absent.
            v(12, 40, 12, true),
            // model 50: its older version is itself bad (a descendant), the newer too → None.
            v(13, 50, 13, true),
            v(14, 50, 14, true),
        ];
        let bad: HashSet<i64> = [3, 7, 8, 11, 13, 14, 999].into_iter().collect();
        let lkg = last_known_good(&versions, &bad);
        assert_eq!(lkg.get(&10), Some(&Some(2)));
        assert_eq!(
            lkg.get(&20),
            Some(&Some(5)),
            "6 is not approved, 7 and 8 are bad"
        );
        assert_eq!(lkg.get(&30), Some(&None));
        assert_eq!(lkg.get(&50), Some(&None));
        assert!(!lkg.contains_key(&40));
        assert_eq!(lkg.len(), 4);
    }

    #[test]
    fn cascade_then_last_known_good_end_to_end() {
        // base (model 1) v101 flagged; ft (model 2) has v201 from a clean base, v202 from 101;
        // app (model 3) v301 from 201, v302 from 202.
        let mut g = LineageGraph::new();
        g.add_edge(100, 201, 0.95);
        g.add_edge(101, 202, 0.95);
        g.add_edge(201, 301, 0.9);
        g.add_edge(202, 302, 0.9);
        let roots = [101];
        let mut bad: HashSet<i64> = g.affected(&roots, 0.5).iter().map(|a| a.version).collect();
        bad.extend(roots);
        assert_eq!(bad, [101, 202, 302].into_iter().collect());
        let vi = |id: i64, model_id, seq| VersionInfo {
            id,
            model_id,
            label: String::new(),
            created_seq: seq,
            approved: true,
        };
        let versions = [
            vi(100, 1, 1),
            vi(101, 1, 2),
            vi(201, 2, 3),
            vi(202, 2, 4),
            vi(301, 3, 5),
            vi(302, 3, 6),
        ];
        let lkg = last_known_good(&versions, &bad);
        assert_eq!(
            lkg,
            BTreeMap::from([(1, Some(100)), (2, Some(201)), (3, Some(301))])
        );
    }

    /// Timing for the bench author: 1M versions, a family of 100k descendants.
    /// `cargo test -p pedigree-registry --release --lib cascade::tests::timing_affected_1m -- --ignored --nocapture`
    #[test]
    #[ignore]
    fn timing_affected_1m() {
        let t = std::time::Instant::now();
        let (g, fam) = synthetic_registry(1_000_000, 100_000, 42);
        eprintln!(
            "build: {:?} ({} edges, {} versions)",
            t.elapsed(),
            g.edge_count(),
            g.version_count()
        );
        let mut best = std::time::Duration::MAX;
        for _ in 0..10 {
            let t = std::time::Instant::now();
            let a = g.affected(&[1], 0.5);
            best = best.min(t.elapsed());
            assert_eq!(a.len(), fam.len());
        }
        eprintln!("affected (100k of 1M): best of 10 = {best:?}");
        let t = std::time::Instant::now();
        let a = g.affected(&[1], 0.5);
        let mut bad: HashSet<i64> = a.iter().map(|x| x.version).collect();
        bad.insert(1);
        let versions: Vec<VersionInfo> = (1..=1_000_000i64)
            .map(|id| VersionInfo {
                id,
                model_id: id / 3,
                label: String::new(),
                created_seq: id,
                approved: true,
            })
            .collect();
        let lkg = last_known_good(&versions, &bad);
        eprintln!(
            "affected + last_known_good over 1M versions: {:?} ({} models)",
            t.elapsed(),
            lkg.len()
        );
    }
}
