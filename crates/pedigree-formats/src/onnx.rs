//! ONNX models (FORMATS-FACTS §9): a protobuf parse with our own minimal `prost` messages (only
//! the fields we judge; everything else is skipped by prost as unknown fields).
//!
//! Reported: external data whose `location` is absolute or climbs out with `..` (and, given the
//! model's directory, resolves through a symlink outside it: [`check_external_on_disk`]);
//! operator domains that need a custom-op library; tensors whose stored bytes disagree with
//! `dims` × the element size. Graphs nested in If/Loop/Scan attributes, model-local functions
//! and training graphs are walked too, to a bounded depth (prost's own recursion limit holds
//! for the decoding itself).

use std::collections::BTreeSet;
use std::path::{Component, Path};

use prost::Message;
use serde::Serialize;

#[derive(Clone, PartialEq, Message)]
pub struct ModelProto {
    #[prost(int64, tag = "1")]
    pub ir_version: i64,
    #[prost(string, tag = "2")]
    pub producer_name: String,
    #[prost(message, optional, tag = "7")]
    pub graph: Option<GraphProto>,
    #[prost(message, repeated, tag = "8")]
    pub opset_import: Vec<OperatorSetIdProto>,
    #[prost(message, repeated, tag = "20")]
    pub training_info: Vec<TrainingInfoProto>,
    #[prost(message, repeated, tag = "25")]
    pub functions: Vec<FunctionProto>,
}

#[derive(Clone, PartialEq, Message)]
pub struct OperatorSetIdProto {
    #[prost(string, tag = "1")]
    pub domain: String,
    #[prost(int64, tag = "2")]
    pub version: i64,
}

#[derive(Clone, PartialEq, Message)]
pub struct TrainingInfoProto {
    #[prost(message, optional, tag = "1")]
    pub initialization: Option<GraphProto>,
    #[prost(message, optional, tag = "2")]
    pub algorithm: Option<GraphProto>,
}

#[derive(Clone, PartialEq, Message)]
pub struct FunctionProto {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(message, repeated, tag = "3")]
    pub node: Vec<NodeProto>,
    #[prost(message, repeated, tag = "7")]
    pub opset_import: Vec<OperatorSetIdProto>,
    #[prost(string, tag = "10")]
    pub domain: String,
}

#[derive(Clone, PartialEq, Message)]
pub struct GraphProto {
    #[prost(message, repeated, tag = "1")]
    pub node: Vec<NodeProto>,
    #[prost(string, tag = "2")]
    pub name: String,
    #[prost(message, repeated, tag = "5")]
    pub initializer: Vec<TensorProto>,
    #[prost(message, repeated, tag = "15")]
    pub sparse_initializer: Vec<SparseTensorProto>,
}

#[derive(Clone, PartialEq, Message)]
pub struct NodeProto {
    #[prost(string, tag = "3")]
    pub name: String,
    #[prost(string, tag = "4")]
    pub op_type: String,
    #[prost(message, repeated, tag = "5")]
    pub attribute: Vec<AttributeProto>,
    #[prost(string, tag = "7")]
    pub domain: String,
}

#[derive(Clone, PartialEq, Message)]
pub struct AttributeProto {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(message, optional, tag = "5")]
    pub t: Option<TensorProto>,
    #[prost(message, optional, tag = "6")]
    pub g: Option<GraphProto>,
    #[prost(message, repeated, tag = "10")]
    pub tensors: Vec<TensorProto>,
    #[prost(message, repeated, tag = "11")]
    pub graphs: Vec<GraphProto>,
}

#[derive(Clone, PartialEq, Message)]
pub struct SparseTensorProto {
    #[prost(message, optional, tag = "1")]
    pub values: Option<TensorProto>,
    #[prost(message, optional, tag = "2")]
    pub indices: Option<TensorProto>,
}

#[derive(Clone, PartialEq, Message)]
pub struct StringStringEntryProto {
    #[prost(string, tag = "1")]
    pub key: String,
    #[prost(string, tag = "2")]
    pub value: String,
}

#[derive(Clone, PartialEq, Message)]
pub struct TensorProto {
    #[prost(int64, repeated, tag = "1")]
    pub dims: Vec<i64>,
    #[prost(int32, tag = "2")]
    pub data_type: i32,
    #[prost(float, repeated, tag = "4")]
    pub float_data: Vec<f32>,
    #[prost(int32, repeated, tag = "5")]
    pub int32_data: Vec<i32>,
    #[prost(bytes = "vec", repeated, tag = "6")]
    pub string_data: Vec<Vec<u8>>,
    #[prost(int64, repeated, tag = "7")]
    pub int64_data: Vec<i64>,
    #[prost(string, tag = "8")]
    pub name: String,
    #[prost(bytes = "vec", tag = "9")]
    pub raw_data: Vec<u8>,
    #[prost(double, repeated, tag = "10")]
    pub double_data: Vec<f64>,
    #[prost(uint64, repeated, tag = "11")]
    pub uint64_data: Vec<u64>,
    #[prost(message, repeated, tag = "13")]
    pub external_data: Vec<StringStringEntryProto>,
    #[prost(int32, tag = "14")]
    pub data_location: i32,
}

/// Domains that ship with onnx and onnxruntime (FORMATS-FACTS §9.3).
pub const KNOWN_DOMAINS: &[&str] = &[
    "",
    "ai.onnx",
    "ai.onnx.ml",
    "ai.onnx.preview.training",
    "ai.onnx.preview",
    "com.microsoft",
    "com.microsoft.nchwc",
    "com.ms.internal.nhwc",
    "com.microsoft.dml",
    "com.microsoft.experimental",
    "org.pytorch.aten",
    "com.intel.ai",
    "com.xilinx",
];

const MAX_GRAPH_DEPTH: usize = 32;
const MAX_ISSUES: usize = 256;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum IssueKind {
    /// External data `location` is absolute or climbs out of the model's directory.
    ExternalDataEscape,
    /// An operator domain that needs a custom-op (native) library.
    CustomDomain,
    /// A tensor's stored size disagrees with its dims and type.
    TensorSize,
    /// The protobuf does not decode.
    Malformed,
}

#[derive(Debug, Clone, Serialize)]
pub struct Issue {
    pub kind: IssueKind,
    pub message: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct ExternalRef {
    pub tensor: String,
    pub location: String,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct OnnxView {
    pub ir_version: i64,
    pub producer: String,
    pub nodes: usize,
    pub domains: Vec<String>,
    pub external: Vec<ExternalRef>,
    pub issues: Vec<Issue>,
}

impl OnnxView {
    fn issue(&mut self, kind: IssueKind, message: String) {
        if self.issues.len() < MAX_ISSUES {
            self.issues.push(Issue { kind, message });
        }
    }
}

/// Whether the bytes decode as a ModelProto that has a graph with nodes (ONNX has no magic).
pub fn looks_like(data: &[u8]) -> bool {
    if data.len() < 8 || data[0] != 0x08 {
        return false;
    }
    match ModelProto::decode(data) {
        Ok(m) => {
            (1..=64).contains(&m.ir_version) && m.graph.as_ref().is_some_and(|g| !g.node.is_empty())
        }
        Err(_) => false,
    }
}

/// Element size in bits of an ONNX `TensorProto.DataType`, `None` for STRING/unknown.
fn elem_bits(t: i32) -> Option<u64> {
    Some(match t {
        1 | 6 | 12 => 32,
        2 | 3 | 9 | 17..=20 | 24 => 8,
        4 | 5 | 10 | 16 => 16,
        7 | 11 | 13 | 14 => 64,
        15 => 128,
        21..=23 => 4,
        25 | 26 => 2,
        _ => return None,
    })
}

/// Reads a model. Never fails: problems are [`Issue`]s.
pub fn read(data: &[u8]) -> OnnxView {
    let mut v = OnnxView::default();
    let model = match ModelProto::decode(data) {
        Ok(m) => m,
        Err(e) => {
            v.issue(
                IssueKind::Malformed,
                format!("not a valid ONNX ModelProto: {e}"),
            );
            return v;
        }
    };
    v.ir_version = model.ir_version;
    v.producer = model.producer_name.clone();
    let local: BTreeSet<&str> = model.functions.iter().map(|f| f.domain.as_str()).collect();
    let mut domains = BTreeSet::new();
    for o in model
        .opset_import
        .iter()
        .chain(model.functions.iter().flat_map(|f| &f.opset_import))
    {
        domains.insert(o.domain.clone());
    }
    if let Some(g) = &model.graph {
        graph(&mut v, g, 0, &mut domains);
    }
    for t in &model.training_info {
        for g in [&t.initialization, &t.algorithm].into_iter().flatten() {
            graph(&mut v, g, 1, &mut domains);
        }
    }
    for f in &model.functions {
        for n in &f.node {
            node(&mut v, n, 1, &mut domains);
        }
    }
    for d in &domains {
        if !KNOWN_DOMAINS.contains(&d.as_str()) && !local.contains(d.as_str()) {
            v.issue(
                IssueKind::CustomDomain,
                format!("operator domain {d:?} is not built into onnx or onnxruntime: loading needs a custom-op (native) library"),
            );
        }
    }
    v.domains = domains.into_iter().collect();
    v
}

fn graph(v: &mut OnnxView, g: &GraphProto, depth: usize, domains: &mut BTreeSet<String>) {
    if depth > MAX_GRAPH_DEPTH {
        v.issue(
            IssueKind::Malformed,
            format!("subgraphs nested deeper than {MAX_GRAPH_DEPTH}"),
        );
        return;
    }
    for t in &g.initializer {
        tensor(v, t);
    }
    for s in &g.sparse_initializer {
        for t in [&s.values, &s.indices].into_iter().flatten() {
            tensor(v, t);
        }
    }
    for n in &g.node {
        node(v, n, depth, domains);
    }
}

fn node(v: &mut OnnxView, n: &NodeProto, depth: usize, domains: &mut BTreeSet<String>) {
    v.nodes += 1;
    domains.insert(n.domain.clone());
    for a in &n.attribute {
        for t in a.t.iter().chain(&a.tensors) {
            tensor(v, t);
        }
        for g in a.g.iter().chain(&a.graphs) {
            graph(v, g, depth + 1, domains);
        }
    }
}

fn tensor(v: &mut OnnxView, t: &TensorProto) {
    let name = &t.name;
    let n = t.dims.iter().try_fold(
        1u64,
        |a, &d| if d < 0 { None } else { a.checked_mul(d as u64) },
    );
    let Some(n) = n else {
        v.issue(
            IssueKind::TensorSize,
            format!(
                "tensor {name:?}: dims {:?} are negative or overflow",
                t.dims
            ),
        );
        return;
    };
    let expected_bytes = elem_bits(t.data_type)
        .and_then(|b| n.checked_mul(b))
        .map(|b| b.div_ceil(8));
    if t.data_location == 1 || !t.external_data.is_empty() {
        let get = |k: &str| {
            t.external_data
                .iter()
                .find(|e| e.key == k)
                .map(|e| e.value.as_str())
        };
        let location = get("location").unwrap_or("");
        v.external.push(ExternalRef {
            tensor: name.clone(),
            location: location.to_string(),
        });
        if let Some(why) = location_escapes(location) {
            v.issue(
                IssueKind::ExternalDataEscape,
                format!("tensor {name:?}: external data location {location:?} {why}"),
            );
        }
        if let (Some(len), Some(exp)) = (
            get("length").and_then(|l| l.trim().parse::<u64>().ok()),
            expected_bytes,
        ) {
            if len != exp {
                v.issue(
                    IssueKind::TensorSize,
                    format!(
                        "tensor {name:?}: external length {len} but dims {:?} need {exp} bytes",
                        t.dims
                    ),
                );
            }
        }
        return;
    }
    let (stored, unit) = if !t.raw_data.is_empty() {
        (t.raw_data.len() as u64, "bytes")
    } else {
        let count = [
            t.float_data.len(),
            t.int32_data.len(),
            t.string_data.len(),
            t.int64_data.len(),
            t.double_data.len(),
            t.uint64_data.len(),
        ]
        .into_iter()
        .max()
        .unwrap_or(0) as u64;
        if count == 0 {
            return; // no data at all (an initializer filled elsewhere, or an empty tensor)
        }
        (count, "elements")
    };
    let expected = if unit == "bytes" {
        match expected_bytes {
            Some(e) => e,
            None => return,
        }
    } else {
        // typed fields: complex numbers take two, sub-32-bit types are packed into int32_data
        match t.data_type {
            14 | 15 => n * 2,
            2..=5 | 9 | 10 | 16..=20 | 24 => n,
            21..=23 => n.div_ceil(2),
            25 | 26 => n.div_ceil(4),
            _ => n,
        }
    };
    if stored != expected {
        v.issue(
            IssueKind::TensorSize,
            format!(
                "tensor {name:?}: holds {stored} {unit} but dims {:?} of type {} need {expected}",
                t.dims, t.data_type
            ),
        );
    }
}

/// Why a location escapes the model directory, judged lexically: absolute (POSIX, Windows drive
/// or UNC), or `..` components that climb above the start.
pub fn location_escapes(location: &str) -> Option<&'static str> {
    if location.is_empty() {
        return Some("is empty");
    }
    let l = location.replace('\\', "/");
    if l.starts_with('/') || l.starts_with("//") || (l.len() >= 2 && l.as_bytes()[1] == b':') {
        return Some("is an absolute path: the loader reads whatever file it names");
    }
    let mut depth: i64 = 0;
    for c in Path::new(&l).components() {
        match c {
            Component::ParentDir => {
                depth -= 1;
                if depth < 0 {
                    return Some("climbs out of the model's directory with '..'");
                }
            }
            Component::Normal(_) => depth += 1,
            _ => {}
        }
    }
    None
}

/// Given the model's directory, whether a (lexically safe) location resolves through a symlink to
/// a file outside that directory. Returns a message for each such reference.
pub fn check_external_on_disk(view: &OnnxView, model_dir: &Path) -> Vec<String> {
    let Ok(root) = model_dir.canonicalize() else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for e in &view.external {
        if location_escapes(&e.location).is_some() {
            continue;
        }
        let p = model_dir.join(&e.location);
        if let Ok(real) = p.canonicalize() {
            if !real.starts_with(&root) {
                out.push(format!(
                    "tensor {:?}: external data location {:?} resolves through a symlink to {}, outside the model's directory",
                    e.tensor,
                    e.location,
                    real.display()
                ));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model(tensors: Vec<TensorProto>, domain: &str) -> Vec<u8> {
        ModelProto {
            ir_version: 8,
            producer_name: "t".into(),
            graph: Some(GraphProto {
                node: vec![NodeProto {
                    name: "n".into(),
                    op_type: "Relu".into(),
                    attribute: vec![],
                    domain: domain.into(),
                }],
                name: "g".into(),
                initializer: tensors,
                sparse_initializer: vec![],
            }),
            opset_import: vec![OperatorSetIdProto {
                domain: "".into(),
                version: 17,
            }],
            training_info: vec![],
            functions: vec![],
        }
        .encode_to_vec()
    }

    fn kinds(v: &OnnxView) -> Vec<IssueKind> {
        v.issues.iter().map(|i| i.kind).collect()
    }

    #[test]
    fn clean_and_bad() {
        let t = TensorProto {
            dims: vec![2, 2],
            data_type: 1,
            raw_data: vec![0; 16],
            name: "w".into(),
            ..Default::default()
        };
        let d = model(vec![t.clone()], "");
        assert!(looks_like(&d));
        assert!(read(&d).issues.is_empty());
        let mut bad = t.clone();
        bad.raw_data = vec![0; 12];
        assert_eq!(
            kinds(&read(&model(vec![bad], ""))),
            vec![IssueKind::TensorSize]
        );
        let ext = TensorProto {
            dims: vec![2],
            data_type: 1,
            name: "e".into(),
            data_location: 1,
            external_data: vec![StringStringEntryProto {
                key: "location".into(),
                value: "../../etc/passwd".into(),
            }],
            ..Default::default()
        };
        assert_eq!(
            kinds(&read(&model(vec![ext], ""))),
            vec![IssueKind::ExternalDataEscape]
        );
        assert_eq!(
            kinds(&read(&model(vec![], "evil.ops"))),
            vec![IssueKind::CustomDomain]
        );
        assert_eq!(location_escapes("sub/../w.bin"), None);
        assert!(location_escapes("/etc/passwd").is_some());
        assert!(location_escapes("a/../../x").is_some());
    }

    #[test]
    fn random_inputs_never_panic() {
        let t = TensorProto {
            dims: vec![2, 2],
            data_type: 1,
            raw_data: vec![0; 16],
            name: "w".into(),
            ..Default::default()
        };
        let d = model(vec![t], "");
        crate::fuzz_util::mutate_many(&d, 3000, 0x0e, |x| {
            let _ = read(x);
            let _ = looks_like(x);
        });
    }
}
