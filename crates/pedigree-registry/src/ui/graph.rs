//! The lineage graph as SVG, laid out on the server so the page needs no script.
//!
//! Layout: layers by generation (a version's layer is the longest chain of visible parents above
//! it), each layer ordered by the mean position of its parents (fewer crossings), ties broken by
//! label so the same graph always draws the same picture whatever order the store returned it in.
//! Nodes are fixed-size boxes on a grid, so no two can overlap; every edge is one `<path>`.
//!
//! Everything written into the SVG passes through [`esc`]: labels, deployment names and edge
//! relations come from uploads and are attacker-controlled.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write;

pub const NODE_W: i64 = 250;
pub const NODE_H: i64 = 64;
const H_GAP: i64 = 40;
const V_GAP: i64 = 80;
const MARGIN: i64 = 20;
/// Longest label drawn in a box; the full text is in the node's `<title>`.
const LABEL_CHARS: usize = 32;

/// What the cascade says about a node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Risk {
    Flagged,
    AtRisk,
    Clean,
}

impl Risk {
    pub fn as_str(self) -> &'static str {
        match self {
            Risk::Flagged => "flagged",
            Risk::AtRisk => "at-risk",
            Risk::Clean => "clean",
        }
    }
}

#[derive(Clone, Debug)]
pub struct GNode {
    pub id: i64,
    /// `ns/name:version`.
    pub label: String,
    /// The review state: approved, held, rejected, quarantined.
    pub review: String,
    pub risk: Risk,
    /// `name/environment` of each deployment running this version.
    pub deployments: Vec<String>,
}

#[derive(Clone, Debug)]
pub struct GEdge {
    pub parent: i64,
    pub child: i64,
    /// `declared` (the card says so) or `inferred` (the weights prove it), or another source.
    pub source: String,
    pub relation: String,
    pub confidence: f64,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Placed {
    pub id: i64,
    pub layer: usize,
    pub x: i64,
    pub y: i64,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Layout {
    pub width: i64,
    pub height: i64,
    /// In label order.
    pub nodes: Vec<Placed>,
}

/// Place the nodes. Edges naming a node not in `nodes` are ignored (they point at versions the
/// viewer may not see).
pub fn layout(nodes: &[GNode], edges: &[GEdge]) -> Layout {
    let mut order: Vec<&GNode> = nodes.iter().collect();
    order.sort_by(|a, b| a.label.cmp(&b.label).then(a.id.cmp(&b.id)));
    order.dedup_by_key(|n| n.id);
    let slot: HashMap<i64, usize> = order.iter().enumerate().map(|(i, n)| (n.id, i)).collect();
    let n = order.len();
    let mut parents: Vec<Vec<usize>> = vec![Vec::new(); n];
    let mut children: Vec<Vec<usize>> = vec![Vec::new(); n];
    for e in edges {
        if let (Some(&p), Some(&c)) = (slot.get(&e.parent), slot.get(&e.child))
            && p != c
            && !parents[c].contains(&p)
        {
            parents[c].push(p);
            children[p].push(c);
        }
    }
    // Longest path from the roots (Kahn's order). Nodes on a cycle, which lineage should never
    // have but a hostile store could, are placed after their placed parents instead of looping.
    let mut layer: Vec<Option<usize>> = vec![None; n];
    let mut indeg: Vec<usize> = parents.iter().map(Vec::len).collect();
    let mut ready: Vec<usize> = (0..n).filter(|&i| indeg[i] == 0).collect();
    ready.reverse();
    let mut done = 0;
    loop {
        while let Some(i) = ready.pop() {
            done += 1;
            let l = parents[i]
                .iter()
                .filter_map(|&p| layer[p])
                .max()
                .map_or(0, |m| m + 1);
            layer[i] = Some(l);
            for &c in &children[i] {
                // A node forced onto the layout to break a cycle is already placed (or queued).
                if indeg[c] > 0 {
                    indeg[c] -= 1;
                    if indeg[c] == 0 {
                        ready.push(c);
                    }
                }
            }
        }
        if done == n {
            break;
        }
        // Break a cycle at its first unplaced node in label order.
        let i = (0..n).find(|&i| layer[i].is_none()).expect("done < n");
        indeg[i] = 0;
        ready.push(i);
    }
    let layer: Vec<usize> = layer.into_iter().map(|l| l.unwrap_or(0)).collect();
    let mut layers: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    for (i, &l) in layer.iter().enumerate() {
        layers.entry(l).or_default().push(i);
    }
    // Order each layer by the mean position of its parents in the layers above.
    let mut pos: Vec<f64> = vec![0.0; n];
    for members in layers.values_mut() {
        let key = |i: usize| -> f64 {
            let ps: Vec<f64> = parents[i]
                .iter()
                .filter(|&&p| layer[p] < layer[i])
                .map(|&p| pos[p])
                .collect();
            if ps.is_empty() {
                f64::MAX
            } else {
                ps.iter().sum::<f64>() / ps.len() as f64
            }
        };
        let mut keyed: Vec<(f64, usize)> = members.iter().map(|&i| (key(i), i)).collect();
        // Slots are in label order, so the index breaks ties deterministically.
        keyed.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        *members = keyed.into_iter().map(|(_, i)| i).collect();
        for (k, &i) in members.iter().enumerate() {
            pos[i] = k as f64;
        }
    }
    let widest = layers.values().map(Vec::len).max().unwrap_or(0) as i64;
    let row_w = |k: i64| k * NODE_W + (k - 1).max(0) * H_GAP;
    let width = row_w(widest) + 2 * MARGIN;
    let mut placed = vec![None; n];
    for (row, (l, members)) in layers.iter().enumerate() {
        let offset = (row_w(widest) - row_w(members.len() as i64)) / 2;
        for (k, &i) in members.iter().enumerate() {
            placed[i] = Some(Placed {
                id: order[i].id,
                layer: *l,
                x: MARGIN + offset + k as i64 * (NODE_W + H_GAP),
                y: MARGIN + row as i64 * (NODE_H + V_GAP),
            });
        }
    }
    let rows = layers.len() as i64;
    Layout {
        width: width.max(2 * MARGIN + NODE_W),
        height: (rows * NODE_H + (rows - 1).max(0) * V_GAP + 2 * MARGIN).max(2 * MARGIN + NODE_H),
        nodes: placed.into_iter().flatten().collect(),
    }
}

/// Escape text for SVG/XML content and attribute values.
pub fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            // Control characters are not allowed in XML 1.0; they carry nothing worth showing.
            c if (c as u32) < 0x20 && c != '\t' && c != '\n' => o.push('\u{fffd}'),
            c => o.push(c),
        }
    }
    o
}

fn short(s: &str) -> String {
    if s.chars().count() <= LABEL_CHARS {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(LABEL_CHARS - 1).collect();
        t.push('…');
        t
    }
}

/// The graph as an inline `<svg>` element. Styling is by class (the page's stylesheet), never
/// `style` attributes, so the Content-Security-Policy needs no `unsafe-inline`.
pub fn render_svg(nodes: &[GNode], edges: &[GEdge]) -> String {
    let lay = layout(nodes, edges);
    let by_id: HashMap<i64, &Placed> = lay.nodes.iter().map(|p| (p.id, p)).collect();
    let node_of: HashMap<i64, &GNode> = nodes.iter().map(|n| (n.id, n)).collect();
    let mut s = String::new();
    let _ = write!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" class="lineage" width="{w}" height="{h}" viewBox="0 0 {w} {h}" role="img" aria-label="lineage graph">"#,
        w = lay.width,
        h = lay.height
    );
    s.push_str(
        r#"<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="8" markerHeight="8" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" class="arrowhead"/></marker></defs>"#,
    );
    // Edges first, so boxes sit on top of them. Sorted for a deterministic document.
    let mut es: Vec<&GEdge> = edges
        .iter()
        .filter(|e| by_id.contains_key(&e.parent) && by_id.contains_key(&e.child))
        .collect();
    es.sort_by(|a, b| {
        (a.parent, a.child, &a.source, &a.relation).cmp(&(
            b.parent,
            b.child,
            &b.source,
            &b.relation,
        ))
    });
    // Parallel edges (a declared and an inferred edge between the same pair) are fanned out
    // side by side so neither hides the other.
    let mut fan: HashMap<(i64, i64), (i64, i64)> = HashMap::new();
    for e in &es {
        fan.entry((e.parent, e.child)).or_insert((0, 0)).1 += 1;
    }
    for e in es {
        let (p, c) = (by_id[&e.parent], by_id[&e.child]);
        let slot = fan.get_mut(&(e.parent, e.child)).expect("counted above");
        let dx = slot.0 * 12 - (slot.1 - 1) * 6;
        slot.0 += 1;
        let kind = if e.source == "declared" {
            "declared"
        } else {
            "inferred"
        };
        let risky = node_of
            .get(&e.parent)
            .is_some_and(|n| n.risk != Risk::Clean)
            && node_of.get(&e.child).is_some_and(|n| n.risk != Risk::Clean);
        let (x1, y1) = (p.x + NODE_W / 2 + dx, p.y + NODE_H);
        let (x2, y2) = (c.x + NODE_W / 2 + dx, c.y);
        let d = if y2 > y1 {
            let my = (y1 + y2) / 2;
            format!("M{x1},{y1} C{x1},{my} {x2},{my} {x2},{y2}")
        } else {
            // Same layer or upwards (only on a cycle): loop around the side.
            let (sx, sy) = (p.x + NODE_W, p.y + NODE_H / 2 + dx / 2);
            let (tx, ty) = (c.x + NODE_W, c.y + NODE_H / 2 + dx / 2);
            let bulge = sx.max(tx) + 60;
            format!("M{sx},{sy} C{bulge},{sy} {bulge},{ty} {tx},{ty}")
        };
        let from = node_of.get(&e.parent).map_or("", |n| n.label.as_str());
        let to = node_of.get(&e.child).map_or("", |n| n.label.as_str());
        let _ = write!(
            s,
            r#"<path class="edge {kind}{r}" data-parent="{pl}" data-child="{cl}" data-source="{src}" d="{d}" marker-end="url(#arrow)"><title>{pl} → {cl}: {src}, {rel}, confidence {conf:.2}</title></path>"#,
            r = if risky { " risky" } else { "" },
            pl = esc(from),
            cl = esc(to),
            src = esc(&e.source),
            rel = esc(&e.relation),
            conf = e.confidence,
        );
    }
    for p in &lay.nodes {
        let Some(n) = node_of.get(&p.id) else {
            continue;
        };
        let deployed = !n.deployments.is_empty();
        let _ = write!(
            s,
            r#"<g class="node {risk} review-{review}{dep}" data-model="{label}" data-risk="{risk}" data-review="{review}" data-layer="{layer}" transform="translate({x},{y})"><title>{label} ({review}, {risk})</title><a href="/ui/m/{path}"><rect width="{w}" height="{h}" rx="6"/><text x="10" y="22" class="label">{short}</text><text x="10" y="40" class="sub">{review} · {risk}</text>"#,
            risk = n.risk.as_str(),
            review = esc(&n.review),
            dep = if deployed { " deployed" } else { "" },
            label = esc(&n.label),
            layer = p.layer,
            x = p.x,
            y = p.y,
            path = esc(&version_path(&n.label)),
            w = NODE_W,
            h = NODE_H,
            short = esc(&short(&n.label)),
        );
        if deployed {
            let list = n.deployments.join(", ");
            let warn = if n.risk == Risk::Clean { "" } else { "⚠ " };
            let _ = write!(
                s,
                r#"<text x="10" y="57" class="deploy">{warn}deployed: {}</text>"#,
                esc(&short(&list))
            );
        }
        s.push_str("</a></g>");
    }
    s.push_str("</svg>");
    s
}

/// `ns/name:ver` → `ns/name/ver`, the UI's path for a version.
pub fn version_path(label: &str) -> String {
    match label.rsplit_once(':') {
        Some((m, v)) => format!("{m}/{v}"),
        None => label.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(id: i64, label: &str, risk: Risk) -> GNode {
        GNode {
            id,
            label: label.into(),
            review: "approved".into(),
            risk,
            deployments: Vec::new(),
        }
    }
    fn edge(p: i64, c: i64, source: &str) -> GEdge {
        GEdge {
            parent: p,
            child: c,
            source: source.into(),
            relation: "finetune".into(),
            confidence: 0.9,
        }
    }

    /// A family with a diamond, a second root, a wide layer and an edge to a hidden node.
    fn family() -> (Vec<GNode>, Vec<GEdge>) {
        let mut nodes = vec![
            node(1, "acme/base:1.0", Risk::Clean),
            node(2, "acme/base:1.1", Risk::Flagged),
            node(3, "acme/ft-a:0.9", Risk::Clean),
            node(4, "acme/ft-a:1.0", Risk::AtRisk),
            node(5, "apps/app:1.0", Risk::AtRisk),
            node(6, "other/hidden:1.0", Risk::AtRisk),
            node(7, "apps/merge:1.0", Risk::AtRisk),
        ];
        for i in 0..5 {
            nodes.push(node(10 + i, &format!("wide/w{i}:1"), Risk::Clean));
        }
        let mut edges = vec![
            edge(1, 3, "declared"),
            edge(2, 4, "declared"),
            edge(2, 4, "inferred"),
            edge(4, 5, "declared"),
            edge(2, 6, "inferred"),
            edge(5, 7, "inferred"),
            edge(6, 7, "inferred"),
            edge(99, 7, "inferred"), // parent not visible
        ];
        for i in 0..5 {
            edges.push(edge(1, 10 + i, "inferred"));
        }
        (nodes, edges)
    }

    #[test]
    fn generations_become_layers() {
        let (nodes, edges) = family();
        let lay = layout(&nodes, &edges);
        let layer: HashMap<i64, usize> = lay.nodes.iter().map(|p| (p.id, p.layer)).collect();
        assert_eq!(layer.len(), nodes.len());
        assert_eq!((layer[&1], layer[&2]), (0, 0));
        assert_eq!((layer[&3], layer[&4], layer[&6]), (1, 1, 1));
        assert_eq!(layer[&5], 2);
        // The longest chain decides: merge sits under app (layer 2), not under hidden.
        assert_eq!(layer[&7], 3);
        // Every parent is drawn above its child.
        let y: HashMap<i64, i64> = lay.nodes.iter().map(|p| (p.id, p.y)).collect();
        for e in &edges {
            if let (Some(p), Some(c)) = (y.get(&e.parent), y.get(&e.child)) {
                assert!(p < c, "{} above {}", e.parent, e.child);
            }
        }
    }

    #[test]
    fn no_two_nodes_overlap_and_all_fit() {
        let (nodes, edges) = family();
        let lay = layout(&nodes, &edges);
        for (i, a) in lay.nodes.iter().enumerate() {
            assert!(a.x >= 0 && a.y >= 0);
            assert!(a.x + NODE_W <= lay.width && a.y + NODE_H <= lay.height);
            for b in &lay.nodes[i + 1..] {
                let apart = a.x + NODE_W <= b.x
                    || b.x + NODE_W <= a.x
                    || a.y + NODE_H <= b.y
                    || b.y + NODE_H <= a.y;
                assert!(apart, "{a:?} overlaps {b:?}");
            }
        }
    }

    #[test]
    fn deterministic_whatever_the_input_order() {
        let (nodes, edges) = family();
        let a = render_svg(&nodes, &edges);
        let mut n2 = nodes.clone();
        n2.reverse();
        n2.rotate_left(3);
        let mut e2 = edges.clone();
        e2.reverse();
        assert_eq!(a, render_svg(&n2, &e2));
        assert_eq!(a, render_svg(&nodes, &edges));
    }

    #[test]
    fn every_visible_edge_is_drawn_once_and_styled_by_source() {
        let (nodes, edges) = family();
        let svg = render_svg(&nodes, &edges);
        let visible = edges.iter().filter(|e| e.parent != 99).count();
        assert_eq!(svg.matches(r#"<path class="edge "#).count(), visible);
        assert_eq!(
            svg.matches(r#"<path class="edge declared"#).count(),
            edges.iter().filter(|e| e.source == "declared").count()
        );
        for e in edges.iter().filter(|e| e.parent != 99) {
            let p = &nodes.iter().find(|n| n.id == e.parent).unwrap().label;
            let c = &nodes.iter().find(|n| n.id == e.child).unwrap().label;
            let needle = format!(
                r#"data-parent="{p}" data-child="{c}" data-source="{}""#,
                e.source
            );
            assert!(svg.contains(&needle), "missing edge {needle}");
        }
        // Both ends at risk: the edge is highlighted.
        assert!(svg.contains(
            r#"class="edge declared risky" data-parent="acme/base:1.1" data-child="acme/ft-a:1.0""#
        ));
        assert_eq!(svg.matches(r#"<g class="node "#).count(), nodes.len());
    }

    #[test]
    fn parallel_edges_do_not_hide_each_other() {
        let (nodes, edges) = family();
        let svg = render_svg(&nodes, &edges);
        let d_of = |src: &str| {
            let needle = format!(
                r#"data-parent="acme/base:1.1" data-child="acme/ft-a:1.0" data-source="{src}" d=""#
            );
            let at = svg.find(&needle).unwrap() + needle.len();
            svg[at..at + svg[at..].find('"').unwrap()].to_string()
        };
        assert_ne!(d_of("declared"), d_of("inferred"));
    }

    #[test]
    fn cycles_and_self_loops_terminate_and_draw() {
        let nodes = vec![
            node(1, "a/a:1", Risk::Clean),
            node(2, "a/b:1", Risk::Clean),
            node(3, "a/c:1", Risk::Clean),
        ];
        let edges = vec![
            edge(1, 2, "inferred"),
            edge(2, 3, "inferred"),
            edge(3, 1, "inferred"),
            edge(2, 2, "inferred"),
        ];
        let lay = layout(&nodes, &edges);
        assert_eq!(lay.nodes.len(), 3);
        let svg = render_svg(&nodes, &edges);
        assert_eq!(svg.matches(r#"<path class="edge "#).count(), 4);
    }

    #[test]
    fn empty_graph() {
        let lay = layout(&[], &[]);
        assert!(lay.nodes.is_empty() && lay.width > 0 && lay.height > 0);
        assert!(render_svg(&[], &[]).starts_with("<svg"));
    }

    #[test]
    fn svg_text_is_escaped() {
        let mut n = node(1, "x/<script>alert(1)</script>:1", Risk::Flagged);
        n.deployments = vec!["\"><img src=x onerror=alert(2)>/prod".into()];
        let mut e = edge(1, 2, "inferred");
        e.relation = "</title><script>alert(3)</script>".into();
        let svg = render_svg(&[n, node(2, "y/'q':1", Risk::AtRisk)], &[e]);
        assert!(!svg.contains("<script"), "{svg}");
        assert!(!svg.contains("<img"), "{svg}");
        assert!(svg.contains("&lt;script&gt;alert(1)"));
        assert!(svg.contains("&quot;&gt;&lt;img"));
        assert!(svg.contains("&#39;q&#39;"));
        assert_eq!(esc("a\u{1}b&"), "a\u{fffd}b&amp;");
    }
}
