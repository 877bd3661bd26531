//! TensorFlow graphs: SavedModel `saved_model.pb`, frozen `GraphDef`s, and Keras's
//! `keras_metadata.pb`, parsed as protobuf with our own minimal `prost` messages (field numbers
//! from `tensorflow/core/protobuf/{saved_model,meta_graph}.proto` and
//! `tensorflow/core/framework/{graph,node_def,function,op_def,attr_value}.proto`).
//!
//! Every node of the graph and of every function in the function library is listed with the op
//! it runs, and ops that reach the file system, the network or Python are reported. The
//! checkpoint ops every SavedModel carries (`SaveV2`, `RestoreV2`, `MergeV2Checkpoints`) are not:
//! they are how the loader reads the variables, and reporting them would flag every clean model.
//! No TensorFlow is needed, and nothing is executed.

use std::collections::HashMap;

use prost::Message;
use serde::Serialize;

#[derive(Clone, PartialEq, Message)]
pub struct SavedModel {
    #[prost(int64, tag = "1")]
    pub saved_model_schema_version: i64,
    #[prost(message, repeated, tag = "2")]
    pub meta_graphs: Vec<MetaGraphDef>,
}

#[derive(Clone, PartialEq, Message)]
pub struct MetaGraphDef {
    #[prost(message, optional, tag = "2")]
    pub graph_def: Option<GraphDef>,
}

#[derive(Clone, PartialEq, Message)]
pub struct GraphDef {
    #[prost(message, repeated, tag = "1")]
    pub node: Vec<NodeDef>,
    #[prost(message, optional, tag = "2")]
    pub library: Option<FunctionDefLibrary>,
}

#[derive(Clone, PartialEq, Message)]
pub struct FunctionDefLibrary {
    #[prost(message, repeated, tag = "1")]
    pub function: Vec<FunctionDef>,
}

#[derive(Clone, PartialEq, Message)]
pub struct FunctionDef {
    #[prost(message, optional, tag = "1")]
    pub signature: Option<OpDef>,
    #[prost(message, repeated, tag = "3")]
    pub node_def: Vec<NodeDef>,
}

#[derive(Clone, PartialEq, Message)]
pub struct OpDef {
    #[prost(string, tag = "1")]
    pub name: String,
}

#[derive(Clone, PartialEq, Message)]
pub struct NodeDef {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(string, tag = "2")]
    pub op: String,
    #[prost(map = "string, message", tag = "5")]
    pub attr: HashMap<String, AttrValue>,
}

/// `AttrValue` (a oneof in the real proto; only the string forms matter here).
#[derive(Clone, PartialEq, Message)]
pub struct AttrValue {
    #[prost(message, optional, tag = "1")]
    pub list: Option<AttrList>,
    #[prost(bytes = "vec", tag = "2")]
    pub s: Vec<u8>,
}

#[derive(Clone, PartialEq, Message)]
pub struct AttrList {
    #[prost(bytes = "vec", repeated, tag = "2")]
    pub s: Vec<Vec<u8>>,
}

/// Keras `keras_metadata.pb` (`keras/protobuf/saved_metadata.proto`).
#[derive(Clone, PartialEq, Message)]
pub struct SavedMetadata {
    #[prost(message, repeated, tag = "1")]
    pub nodes: Vec<SavedObject>,
}

#[derive(Clone, PartialEq, Message)]
pub struct SavedObject {
    #[prost(int32, tag = "2")]
    pub node_id: i32,
    #[prost(string, tag = "3")]
    pub node_path: String,
    #[prost(string, tag = "4")]
    pub identifier: String,
    #[prost(string, tag = "5")]
    pub metadata: String,
}

/// Ops that call back into the Python interpreter of the loading process.
pub const PYTHON_OPS: &[&str] = &["PyFunc", "PyFuncStateless", "EagerPyFunc"];
/// Ops that read or write files named by their inputs or attributes.
pub const FILE_OPS: &[&str] = &[
    "ReadFile",
    "WriteFile",
    "MatchingFiles",
    "MatchingFilesDataset",
    "WholeFileReader",
    "WholeFileReaderV2",
    "TextLineReader",
    "TextLineReaderV2",
    "FixedLengthRecordReader",
    "FixedLengthRecordReaderV2",
    "TFRecordReader",
    "TFRecordReaderV2",
    "LMDBReader",
    "TextLineDataset",
    "TFRecordDataset",
    "TFRecordDatasetV2",
    "FixedLengthRecordDataset",
    "FixedLengthRecordDatasetV2",
    "ImmutableConst",
    "CreateSummaryFileWriter",
    "CreateSummaryDbWriter",
    "WriteRawProtoSummary",
    "SaveDataset",
    "SaveDatasetV2",
    "LoadDataset",
    "DatasetToTFRecord",
    "ExperimentalDatasetToTFRecord",
];
/// Ops that talk to the network (RPC, debugger streams).
pub const NETWORK_OPS: &[&str] = &[
    "Rpc",
    "TryRpc",
    "RpcClient",
    "RpcCall",
    "RpcServer",
    "RpcServerStart",
    "RpcServerRegister",
    "DebugIdentity",
    "DebugIdentityV2",
    "DebugIdentityV3",
    "DebugNanCount",
    "DebugNumericSummary",
    "DebugNumericSummaryV2",
];

pub const MAX_NODES: usize = 10_000_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    SavedModel,
    GraphDef,
    KerasMetadata,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum OpCategory {
    Python,
    File,
    Network,
}

#[derive(Debug, Clone, Serialize)]
pub struct RiskyOp {
    pub op: String,
    pub node: String,
    /// The library function holding the node (None: the top-level graph).
    pub function: Option<String>,
    pub category: OpCategory,
    pub detail: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct TfView {
    pub kind: Kind,
    pub nodes: usize,
    pub functions: usize,
    pub risky: Vec<RiskyOp>,
    /// `keras_metadata.pb`: each node's metadata JSON (Keras layer configs), for the Keras rules.
    pub keras_metadata: Vec<(String, String)>,
    pub error: Option<String>,
}

fn category(n: &NodeDef) -> Option<(OpCategory, String)> {
    let op = n.op.as_str();
    if PYTHON_OPS.contains(&op) {
        let token = n
            .attr
            .get("token")
            .map(|a| String::from_utf8_lossy(&a.s).into_owned())
            .unwrap_or_default();
        return Some((
            OpCategory::Python,
            format!("calls a Python function registered in the loading process (token {token:?})"),
        ));
    }
    if FILE_OPS.contains(&op) {
        let extra = n
            .attr
            .get("region_name")
            .map(|a| format!(" (region {:?})", String::from_utf8_lossy(&a.s)))
            .unwrap_or_default();
        return Some((OpCategory::File, format!("reads or writes files{extra}")));
    }
    if NETWORK_OPS.contains(&op) {
        let urls: Vec<String> = n
            .attr
            .get("debug_urls")
            .and_then(|a| a.list.as_ref())
            .map(|l| {
                l.s.iter()
                    .map(|s| String::from_utf8_lossy(s).into_owned())
                    .collect()
            })
            .unwrap_or_default();
        let extra = if urls.is_empty() {
            String::new()
        } else {
            format!(" to {urls:?}")
        };
        return Some((
            OpCategory::Network,
            format!("sends tensors over the network or to a debugger stream{extra}"),
        ));
    }
    if op == "PrintV2" {
        if let Some(a) = n.attr.get("output_stream") {
            let s = String::from_utf8_lossy(&a.s);
            if s.starts_with("file://") {
                return Some((OpCategory::File, format!("prints into the file {s:?}")));
            }
        }
    }
    None
}

fn walk_graph(v: &mut TfView, g: &GraphDef) {
    for n in &g.node {
        v.nodes += 1;
        if let Some((category, detail)) = category(n) {
            v.risky.push(RiskyOp {
                op: n.op.clone(),
                node: n.name.clone(),
                function: None,
                category,
                detail,
            });
        }
    }
    if let Some(lib) = &g.library {
        for f in &lib.function {
            v.functions += 1;
            let fname = f
                .signature
                .as_ref()
                .map(|s| s.name.clone())
                .unwrap_or_default();
            for n in &f.node_def {
                v.nodes += 1;
                if let Some((category, detail)) = category(n) {
                    v.risky.push(RiskyOp {
                        op: n.op.clone(),
                        node: n.name.clone(),
                        function: Some(fname.clone()),
                        category,
                        detail,
                    });
                }
            }
        }
    }
}

/// Reads a `.pb`: `name` picks the first message type to try (`saved_model.pb`,
/// `keras_metadata.pb`, anything else a GraphDef), and the other is tried if that fails.
pub fn read(name: &str, data: &[u8]) -> TfView {
    let base = name.rsplit(['/', '\\']).next().unwrap_or(name);
    let mut v = TfView {
        kind: Kind::GraphDef,
        nodes: 0,
        functions: 0,
        risky: Vec::new(),
        keras_metadata: Vec::new(),
        error: None,
    };
    if base == "keras_metadata.pb" {
        v.kind = Kind::KerasMetadata;
        match SavedMetadata::decode(data) {
            Ok(m) => {
                for n in m.nodes {
                    if !n.metadata.is_empty() {
                        v.keras_metadata.push((n.node_path, n.metadata));
                    }
                }
            }
            Err(e) => v.error = Some(format!("not a Keras SavedMetadata protobuf: {e}")),
        }
        return v;
    }
    let saved_first = base == "saved_model.pb";
    let as_saved = |v: &mut TfView| -> Result<(), prost::DecodeError> {
        let m = SavedModel::decode(data)?;
        v.kind = Kind::SavedModel;
        for mg in &m.meta_graphs {
            if let Some(g) = &mg.graph_def {
                walk_graph(v, g);
            }
        }
        Ok(())
    };
    let as_graph = |v: &mut TfView| -> Result<(), prost::DecodeError> {
        let g = GraphDef::decode(data)?;
        v.kind = Kind::GraphDef;
        walk_graph(v, &g);
        Ok(())
    };
    let (first, second): (&dyn Fn(&mut TfView) -> _, &dyn Fn(&mut TfView) -> _) = if saved_first {
        (&as_saved, &as_graph)
    } else {
        (&as_graph, &as_saved)
    };
    if let Err(e1) = first(&mut v) {
        v.nodes = 0;
        v.risky.clear();
        if let Err(_e2) = second(&mut v) {
            v.error = Some(format!(
                "not a TensorFlow SavedModel or GraphDef protobuf: {e1}"
            ));
        }
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(name: &str, op: &str) -> NodeDef {
        NodeDef {
            name: name.into(),
            op: op.into(),
            attr: HashMap::new(),
        }
    }

    #[test]
    fn finds_ops_in_functions() {
        let g = GraphDef {
            node: vec![node("a", "Const"), node("r", "ReadFile")],
            library: Some(FunctionDefLibrary {
                function: vec![FunctionDef {
                    signature: Some(OpDef {
                        name: "__inference_f".into(),
                    }),
                    node_def: vec![node("p", "EagerPyFunc"), node("s", "SaveV2")],
                }],
            }),
        };
        let sm = SavedModel {
            saved_model_schema_version: 1,
            meta_graphs: vec![MetaGraphDef {
                graph_def: Some(g.clone()),
            }],
        };
        let v = read("x/saved_model.pb", &sm.encode_to_vec());
        assert_eq!(v.kind, Kind::SavedModel);
        assert_eq!(v.risky.len(), 2);
        assert_eq!(v.risky[1].function.as_deref(), Some("__inference_f"));
        let v = read("frozen.pb", &g.encode_to_vec());
        assert_eq!(v.kind, Kind::GraphDef);
        assert_eq!(v.risky.len(), 2);
        assert!(v.error.is_none());
    }

    #[test]
    fn random_inputs_never_panic() {
        let g = GraphDef {
            node: vec![node("r", "ReadFile")],
            library: None,
        };
        let sm = SavedModel {
            saved_model_schema_version: 1,
            meta_graphs: vec![MetaGraphDef { graph_def: Some(g) }],
        };
        crate::fuzz_util::mutate_many(&sm.encode_to_vec(), 3000, 0x7f, |d| {
            let _ = read("saved_model.pb", d);
            let _ = read("keras_metadata.pb", d);
            let _ = read("g.pb", d);
        });
    }
}
