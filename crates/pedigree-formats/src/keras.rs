//! Keras model configurations (FORMATS-FACTS §8): Keras 3 `.keras` zips (`config.json`), legacy
//! HDF5 `.h5` (root attribute `model_config`) and SavedModel `keras_metadata.pb` (per-node JSON).
//!
//! The configuration tree is walked to any depth (nested models, wrappers such as
//! `TimeDistributed`/`Bidirectional`, functions used as activations), and reports:
//! * every Lambda-style function stored as marshalled bytecode (Keras 3 `__lambda__` dicts, and
//!   tf.keras `function_type: "lambda"` with `[code, defaults, closure]`), with the names and
//!   strings the bytecode references (decoded by [`crate::marshal`], never executed);
//! * every object or function the loader resolves by module and name (`module` + `class_name`,
//!   named functions), for the scanner to judge (Keras's own packages are expected; anything else
//!   is a custom object, and some modules are plainly dangerous).

use base64::Engine;
use serde::Serialize;
use serde_json::Value;

use crate::marshal::{self, CodeSummary, Layout};

const MAX_DEPTH: usize = 100;
const MAX_ITEMS: usize = 10_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Source {
    /// `config.json` of a `.keras` zip (or a directory).
    KerasV3Config,
    /// `model_config` attribute of a legacy HDF5 file.
    Hdf5ModelConfig,
    /// `keras_metadata.pb` of a SavedModel.
    SavedModelMetadata,
}

#[derive(Debug, Clone, Serialize)]
pub struct LambdaCode {
    /// Layer path, e.g. `outer/inner/lambda` (the `name`s of the enclosing objects).
    pub path: String,
    /// Which field held it: `function`, `output_shape`, `mask` ...
    pub field: String,
    pub layout: Option<Layout>,
    pub code: Option<CodeSummary>,
    /// Why the bytecode could not be decoded (still a Lambda: the loader would run it).
    pub error: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ObjRef {
    pub path: String,
    pub module: String,
    pub name: String,
    /// `class` (a layer or object class) or `function` (a named function).
    pub kind: &'static str,
}

#[derive(Debug, Clone, Serialize)]
pub struct KerasView {
    pub source: Source,
    pub keras_version: Option<String>,
    pub lambdas: Vec<LambdaCode>,
    pub references: Vec<ObjRef>,
    pub error: Option<String>,
    #[serde(skip)]
    seen_code: Vec<(String, Option<String>)>,
}

impl KerasView {
    pub fn new(source: Source) -> Self {
        KerasView {
            source,
            keras_version: None,
            lambdas: Vec::new(),
            references: Vec::new(),
            error: None,
            seen_code: Vec::new(),
        }
    }
}

/// Whether a JSON value is a Keras object config (`{"class_name", "config", ...}` at the top,
/// with Keras's `module` or a `layers` list inside).
pub fn is_keras_config(v: &Value) -> bool {
    let Some(o) = v.as_object() else { return false };
    o.get("class_name").is_some_and(Value::is_string)
        && o.get("config").is_some_and(Value::is_object)
        && (o.get("module").is_some_and(Value::is_string)
            || o.get("keras_version").is_some()
            || o["config"].get("layers").is_some()
            || o["config"].get("layer").is_some())
}

/// Parses and walks a JSON model config.
pub fn read_config(json: &str, source: Source) -> KerasView {
    let mut view = KerasView::new(source);
    match serde_json::from_str::<Value>(json) {
        Ok(v) => {
            if let Some(k) = v.get("keras_version").and_then(Value::as_str) {
                view.keras_version = Some(k.to_string());
            }
            walk(&mut view, &v, &mut Vec::new(), 0);
        }
        Err(e) => view.error = Some(format!("model config is not JSON: {e}")),
    }
    view
}

/// Reads the `model_config` root attribute of a legacy Keras HDF5 file; `None` when the file has
/// none (e.g. a weights-only `.h5`).
pub fn read_h5(data: &[u8]) -> Option<KerasView> {
    let attrs = match crate::hdf5::read_root_attributes(data) {
        Ok(a) => a,
        Err(e) => {
            let mut v = KerasView::new(Source::Hdf5ModelConfig);
            v.error = Some(format!("HDF5 root attributes unreadable: {e}"));
            return Some(v);
        }
    };
    let get = |k: &str| {
        attrs
            .attributes
            .iter()
            .find(|(n, _)| n == k)
            .and_then(|(_, v)| match v {
                crate::hdf5::AttrValue::Str(s) => Some(s.clone()),
                _ => None,
            })
    };
    let config = get("model_config")?;
    let mut v = read_config(&config, Source::Hdf5ModelConfig);
    v.keras_version = get("keras_version");
    Some(v)
}

/// Walks the per-node metadata JSON of a `keras_metadata.pb`.
pub fn read_saved_metadata(nodes: &[(String, String)]) -> KerasView {
    let mut view = KerasView::new(Source::SavedModelMetadata);
    for (path, json) in nodes.iter().take(MAX_ITEMS) {
        if let Ok(v) = serde_json::from_str::<Value>(json) {
            let mut p: Vec<String> = if path.is_empty() {
                Vec::new()
            } else {
                vec![path.clone()]
            };
            walk(&mut view, &v, &mut p, 0);
        }
    }
    view
}

fn decode_b64(s: &str) -> Result<Vec<u8>, String> {
    let cleaned: String = s.chars().filter(|c| !c.is_whitespace()).collect();
    base64::engine::general_purpose::STANDARD
        .decode(cleaned.as_bytes())
        .map_err(|e| format!("bytecode is not base64: {e}"))
}

fn lambda(view: &mut KerasView, path: &[String], field: &str, code_b64: Option<&str>) {
    if view.lambdas.len() >= MAX_ITEMS {
        return;
    }
    // The same function reached twice (keras_metadata.pb repeats each layer's config in its
    // parent's) is one Lambda.
    let key = (
        field.to_string(),
        code_b64.map(|s| s.chars().filter(|c| !c.is_whitespace()).collect::<String>()),
    );
    if view.seen_code.contains(&key) {
        return;
    }
    view.seen_code.push(key);
    let mut l = LambdaCode {
        path: path.join("/"),
        field: field.to_string(),
        layout: None,
        code: None,
        error: None,
    };
    match code_b64 {
        None => l.error = Some("the code field is missing or not a string".into()),
        Some(s) => match decode_b64(s).and_then(|b| marshal::read_code(&b)) {
            Ok((layout, code)) => {
                l.layout = Some(layout);
                l.code = Some(code);
            }
            Err(e) => l.error = Some(e),
        },
    }
    view.lambdas.push(l);
}

fn reference(view: &mut KerasView, path: &[String], module: &str, name: &str, kind: &'static str) {
    if view.references.len() >= MAX_ITEMS || module.is_empty() {
        return;
    }
    if view
        .references
        .iter()
        .any(|r| r.module == module && r.name == name && r.kind == kind)
    {
        return;
    }
    view.references.push(ObjRef {
        path: path.join("/"),
        module: module.into(),
        name: name.into(),
        kind,
    });
}

fn walk(view: &mut KerasView, v: &Value, path: &mut Vec<String>, depth: usize) {
    if depth > MAX_DEPTH {
        view.error
            .get_or_insert_with(|| format!("config nested deeper than {MAX_DEPTH}"));
        return;
    }
    match v {
        Value::Array(a) => {
            for x in a.iter().take(MAX_ITEMS) {
                walk(view, x, path, depth + 1);
            }
        }
        Value::Object(o) => {
            let class = o.get("class_name").and_then(Value::as_str);
            let config = o.get("config");
            let name = config
                .and_then(|c| c.get("name"))
                .and_then(Value::as_str)
                .or_else(|| o.get("name").and_then(Value::as_str));
            let pushed = match (class, name) {
                (Some(_), Some(n)) if path.last().map(String::as_str) != Some(n) => {
                    path.push(n.to_string());
                    true
                }
                _ => false,
            };
            // Keras 3: {"class_name": "__lambda__", "config": {"code": ...}}
            if class == Some("__lambda__") {
                let code = config.and_then(|c| c.get("code")).and_then(Value::as_str);
                lambda(view, path, "function", code);
            }
            // Keras 3 named function: {"class_name": "function", "config": "<name>", "module": ...}
            if class == Some("function") {
                if let (Some(m), Some(n)) = (
                    o.get("module").and_then(Value::as_str),
                    config.and_then(Value::as_str),
                ) {
                    reference(view, path, m, n, "function");
                }
            } else if let (Some(c), Some(m)) = (class, o.get("module").and_then(Value::as_str)) {
                if !c.starts_with("__") {
                    reference(view, path, m, c, "class");
                }
            }
            // tf.keras Lambda: config.function_type == "lambda" with function [code, defaults, closure]
            if let Some(cfg) = config.and_then(Value::as_object) {
                for field in ["function", "output_shape", "mask"] {
                    let ty = cfg.get(&format!("{field}_type")).and_then(Value::as_str);
                    let val = cfg.get(field);
                    match (ty, val) {
                        (Some("lambda"), Some(Value::Array(a))) => {
                            lambda(view, path, field, a.first().and_then(Value::as_str))
                        }
                        (Some("lambda"), Some(Value::String(s))) => {
                            lambda(view, path, field, Some(s))
                        }
                        (Some("lambda"), _) => lambda(view, path, field, None),
                        (Some("function"), Some(Value::String(s))) => {
                            let mkey = if field == "function" {
                                "module".to_string()
                            } else {
                                format!("{field}_module")
                            };
                            let m = cfg.get(&mkey).and_then(Value::as_str).unwrap_or("");
                            reference(view, path, m, s, "function");
                        }
                        _ => {}
                    }
                }
            }
            for (k, x) in o.iter().take(MAX_ITEMS) {
                if k == "inbound_nodes" {
                    continue; // tensors' history, no objects
                }
                walk(view, x, path, depth + 1);
            }
            if pushed {
                path.pop();
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CODE: &str = "4wEAAAAAAAAAAAAAAAIAAAADAAAA8wwAAACXAHwAZAF6BQAAUwApAk7pAgAAAKkAKQHaAXRzAQAA\nACD6CDxzdHJpbmc++gg8bGFtYmRhPnIGAAAABQAAAHMKAAAAgACgIaBBoSOAAPMAAAAA\n";

    #[test]
    fn nested_lambda_found() {
        let j = format!(
            r#"{{"module":"keras.src.models.functional","class_name":"Functional","config":{{"name":"outer","layers":[
            {{"module":"keras.src.models.sequential","class_name":"Sequential","config":{{"name":"mid","layers":[
              {{"module":"keras.layers","class_name":"TimeDistributed","config":{{"name":"td","layer":
                {{"module":"keras.layers","class_name":"Lambda","config":{{"name":"lam","function":{{"class_name":"__lambda__","config":{{"code":{code:?}}}}}}}}}}}}}]}}}}]}}}}"#,
            code = CODE
        );
        let v = read_config(&j, Source::KerasV3Config);
        assert!(v.error.is_none(), "{:?}", v.error);
        assert_eq!(v.lambdas.len(), 1, "{v:?}");
        assert_eq!(v.lambdas[0].path, "outer/mid/td/lam");
        assert!(v.lambdas[0].code.is_some(), "{:?}", v.lambdas[0].error);
        assert!(v.references.iter().all(|r| r.module.starts_with("keras")));
    }

    #[test]
    fn legacy_lambda_and_function() {
        let j = format!(
            r#"{{"class_name":"Sequential","config":{{"name":"s","layers":[{{"class_name":"Lambda","config":{{"name":"l","function":[{CODE:?},null,null],"function_type":"lambda","module":"__main__"}}}},{{"class_name":"Lambda","config":{{"name":"f","function":"system","function_type":"function","module":"os"}}}}]}}}}"#
        );
        let v = read_config(&j, Source::Hdf5ModelConfig);
        assert_eq!(v.lambdas.len(), 1);
        assert_eq!(v.references.len(), 1);
        assert_eq!(v.references[0].module, "os");
    }

    #[test]
    fn random_inputs_never_panic() {
        let j = format!(
            r#"{{"class_name":"Lambda","config":{{"function":{{"class_name":"__lambda__","config":{{"code":{CODE:?}}}}}}}}}"#
        );
        crate::fuzz_util::mutate_many(j.as_bytes(), 2000, 0x6b, |d| {
            let _ = read_config(&String::from_utf8_lossy(d), Source::KerasV3Config);
        });
        let code = decode_b64(CODE).unwrap_or_default();
        crate::fuzz_util::mutate_many(&code, 2000, 0x6c, |d| {
            let _ = crate::marshal::read_code(d);
        });
    }
}
