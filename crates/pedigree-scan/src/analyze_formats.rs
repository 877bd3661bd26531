//! Rules over the model formats beyond pickle (`pedigree_formats::views::FormatView`): Keras,
//! TensorFlow, ONNX, GGUF and chat templates, safetensors, Hugging Face remote code (PDG3xx).
//!
//! The readers report what is there; the judgement (which modules are Keras's own, which names
//! in Lambda bytecode are dangerous) is made here.
//!
//! Entry points:
//! * [`visit`]: called by `analyze::visit` for each artifact (one line there).
//! * [`hf_repo_findings`]: a Hugging Face repository directory (`config.json` with `auto_map`)
//!   judged as a whole, for callers that walk directories themselves. `scan_paths` needs no extra
//!   call: walking a directory scans its `config.json` as a file, and reading that file follows
//!   its `auto_map` into the Python modules beside it.

use std::path::Path;

use pedigree_formats::container::Artifact;
use pedigree_formats::views::FormatView;
use pedigree_formats::{gguf, hf_repo, keras, onnx, safetensors, tensorflow};

use crate::finding::{Finding, Location};
use crate::policy::Policy;
use crate::rules;

/// Modules whose classes and functions a Keras config may name without being a custom object.
pub const KERAS_MODULE_ROOTS: &[&str] = &[
    "keras",
    "keras_hub",
    "keras_cv",
    "keras_nlp",
    "tf_keras",
    "tensorflow",
];

/// Module roots that no model config has a reason to name.
pub const DANGEROUS_MODULE_ROOTS: &[&str] = &[
    "os",
    "posix",
    "nt",
    "subprocess",
    "sys",
    "importlib",
    "runpy",
    "pty",
    "shutil",
    "socket",
    "urllib",
    "urllib2",
    "requests",
    "http",
    "httpx",
    "ctypes",
    "pickle",
    "marshal",
    "code",
    "codeop",
    "webbrowser",
    "commands",
    "pip",
    "multiprocessing",
    "asyncio",
    "dill",
    "cloudpickle",
    "_posixsubprocess",
    "signal",
];
/// `builtins` names that run code or touch files.
pub const DANGEROUS_BUILTINS: &[&str] = &[
    "eval",
    "exec",
    "compile",
    "__import__",
    "open",
    "getattr",
    "setattr",
    "delattr",
    "globals",
    "locals",
    "vars",
    "breakpoint",
    "input",
    "exit",
    "quit",
];
/// Names in Lambda bytecode (`co_names`) that a tensor function never needs.
pub const LAMBDA_DANGEROUS_NAMES: &[&str] = &[
    "os",
    "posix",
    "nt",
    "subprocess",
    "system",
    "popen",
    "Popen",
    "spawnv",
    "spawnl",
    "spawnve",
    "execv",
    "execve",
    "execl",
    "eval",
    "exec",
    "compile",
    "__import__",
    "__builtins__",
    "builtins",
    "importlib",
    "import_module",
    "socket",
    "urllib",
    "urlopen",
    "urlretrieve",
    "requests",
    "pty",
    "shutil",
    "rmtree",
    "pickle",
    "marshal",
    "ctypes",
    "webbrowser",
    "globals",
    "breakpoint",
    "getattr",
    "open",
    "check_output",
    "check_call",
    "getoutput",
    "run_path",
    "write_file",
    "read_file",
    "remove",
    "unlink",
    "sys",
];
/// String constants in Lambda bytecode that name a dangerous module (`__import__('os')`).
pub const LAMBDA_DANGEROUS_STRINGS: &[&str] = &[
    "os",
    "posix",
    "nt",
    "subprocess",
    "builtins",
    "importlib",
    "socket",
    "pty",
    "shutil",
    "ctypes",
    "requests",
    "urllib",
    "urllib.request",
    "sys",
    "runpy",
    "marshal",
    "pickle",
];

fn location(artifact: &Artifact) -> Location {
    let mut it = artifact.location.iter();
    Location {
        path: it.next().cloned().unwrap_or_default(),
        members: it.cloned().collect(),
        offset: None,
        ..Default::default()
    }
}

fn file_location(path: &str) -> Location {
    Location {
        path: path.to_string(),
        members: Vec::new(),
        offset: None,
        ..Default::default()
    }
}

fn file_name(path: &str) -> &str {
    path.rsplit(['/', '\\']).next().unwrap_or(path)
}

type Push<'a> = dyn FnMut(&'static str, Location, String) + 'a;

/// Findings for one artifact's format views (its children are visited by the caller).
pub fn visit(artifact: &Artifact, push: &mut Push) {
    for v in &artifact.views {
        let loc = location(artifact);
        match v {
            FormatView::Safetensors(s) => safetensors_findings(s, loc, push),
            FormatView::Gguf(g) => gguf_findings(g, loc, push),
            FormatView::Onnx(o) => onnx_findings(o, loc, push),
            FormatView::Keras(k) => keras_findings(k, loc, push),
            FormatView::TensorFlow(t) => tf_findings(t, loc, push),
            FormatView::HfConfig(h) => hf_findings(h, loc, push),
        }
    }
}

fn safetensors_findings(s: &safetensors::SafetensorsView, loc: Location, push: &mut Push) {
    use safetensors::IssueKind as K;
    for i in &s.issues {
        let rule = match i.kind {
            K::HeaderLength | K::HeaderInvalid | K::MetadataNotStrings => rules::SAFETENSORS_HEADER,
            _ => rules::SAFETENSORS_LAYOUT,
        };
        push(rule, loc.clone(), i.message.clone());
    }
}

fn template_findings(
    t: &pedigree_formats::chat_template::TemplateReport,
    where_: &str,
    loc: &Location,
    push: &mut Push,
) {
    if let Some(e) = &t.parse_error {
        push(
            rules::CHAT_TEMPLATE_UNPARSABLE,
            loc.clone(),
            format!("{where_} {:?} could not be parsed as Jinja: {e}", t.key),
        );
    }
    if !t.escapes.is_empty() {
        let list: Vec<String> = t
            .escapes
            .iter()
            .take(6)
            .map(|e| format!("line {}: {}", e.line, e.what))
            .collect();
        let more = if t.escapes.len() > 6 {
            format!(" (and {} more)", t.escapes.len() - 6)
        } else {
            String::new()
        };
        push(
            rules::CHAT_TEMPLATE_ESCAPE,
            loc.clone(),
            format!(
                "{where_} {:?} reaches Python internals: {}{more}",
                t.key,
                list.join("; ")
            ),
        );
    }
}

fn gguf_findings(g: &gguf::GgufView, loc: Location, push: &mut Push) {
    for i in &g.issues {
        push(
            rules::MODEL_FORMAT_MALFORMED,
            loc.clone(),
            format!("GGUF: {}", i.message),
        );
    }
    for t in &g.templates {
        template_findings(t, "GGUF chat template", &loc, push);
    }
}

fn onnx_findings(o: &onnx::OnnxView, loc: Location, push: &mut Push) {
    use onnx::IssueKind as K;
    for i in &o.issues {
        let rule = match i.kind {
            K::ExternalDataEscape => rules::ONNX_EXTERNAL_DATA_ESCAPE,
            K::CustomDomain => rules::ONNX_CUSTOM_DOMAIN,
            K::TensorSize => rules::ONNX_TENSOR_SIZE,
            K::Malformed => rules::MODEL_FORMAT_MALFORMED,
        };
        push(rule, loc.clone(), i.message.clone());
    }
}

fn root(module: &str) -> &str {
    module.split('.').next().unwrap_or(module)
}

/// How a (module, name) reference in a Keras config is judged.
pub fn judge_keras_reference(module: &str, name: &str) -> Option<&'static str> {
    let r = root(module);
    if DANGEROUS_MODULE_ROOTS.contains(&r)
        || (r == "builtins" && DANGEROUS_BUILTINS.contains(&name))
    {
        return Some(rules::KERAS_DANGEROUS_REFERENCE);
    }
    if KERAS_MODULE_ROOTS.contains(&r) {
        return None;
    }
    Some(rules::KERAS_CUSTOM_OBJECT)
}

fn keras_findings(k: &keras::KerasView, loc: Location, push: &mut Push) {
    let src = match k.source {
        keras::Source::KerasV3Config => "Keras config.json",
        keras::Source::Hdf5ModelConfig => "Keras HDF5 model_config",
        keras::Source::SavedModelMetadata => "Keras keras_metadata.pb",
    };
    if let Some(e) = &k.error {
        push(
            rules::MODEL_FORMAT_MALFORMED,
            loc.clone(),
            format!("{src}: {e}"),
        );
    }
    for l in &k.lambdas {
        let at = if l.path.is_empty() {
            String::new()
        } else {
            format!(" in layer {:?}", l.path)
        };
        match &l.code {
            Some(c) => {
                let names = if c.names.is_empty() {
                    "no global or attribute names".to_string()
                } else {
                    format!("names {}", c.names.join(", "))
                };
                let strings = if c.strings.is_empty() {
                    String::new()
                } else {
                    let s: Vec<String> =
                        c.strings.iter().take(8).map(|s| format!("{s:?}")).collect();
                    format!("; strings {}", s.join(", "))
                };
                push(
                    rules::KERAS_LAMBDA,
                    loc.clone(),
                    format!(
                        "{src}: Lambda {}{at} is marshalled Python bytecode ({:?} layout) referencing {names}{strings}",
                        l.field,
                        l.layout.map(|x| format!("{x:?}")).unwrap_or_default()
                    ),
                );
                let bad: Vec<&str> = c
                    .names
                    .iter()
                    .filter(|n| LAMBDA_DANGEROUS_NAMES.contains(&n.as_str()))
                    .chain(
                        c.strings
                            .iter()
                            .filter(|s| LAMBDA_DANGEROUS_STRINGS.contains(&s.as_str())),
                    )
                    .map(String::as_str)
                    .collect();
                if !bad.is_empty() {
                    push(
                        rules::KERAS_LAMBDA_DANGEROUS,
                        loc.clone(),
                        format!(
                            "{src}: Lambda {}{at} bytecode references {}",
                            l.field,
                            bad.join(", ")
                        ),
                    );
                }
            }
            None => push(
                rules::KERAS_LAMBDA,
                loc.clone(),
                format!(
                    "{src}: Lambda {}{at} holds bytecode that could not be decoded ({}); the loader would still run it",
                    l.field,
                    l.error.as_deref().unwrap_or("unknown")
                ),
            ),
        }
    }
    for r in &k.references {
        if let Some(rule) = judge_keras_reference(&r.module, &r.name) {
            let at = if r.path.is_empty() {
                String::new()
            } else {
                format!(" (at {:?})", r.path)
            };
            let what = if rule == rules::KERAS_DANGEROUS_REFERENCE {
                "a dangerous callable"
            } else {
                "a custom object from outside Keras"
            };
            push(
                rule,
                loc.clone(),
                format!("{src}: {} {}.{}{at} is {what}", r.kind, r.module, r.name),
            );
        }
    }
}

fn tf_findings(t: &tensorflow::TfView, loc: Location, push: &mut Push) {
    if let Some(e) = &t.error {
        push(
            rules::MODEL_FORMAT_MALFORMED,
            loc.clone(),
            format!("TensorFlow: {e}"),
        );
    }
    for r in &t.risky {
        let rule = match r.category {
            tensorflow::OpCategory::Python => rules::TF_PYTHON_OP,
            tensorflow::OpCategory::File => rules::TF_FILE_OP,
            tensorflow::OpCategory::Network => rules::TF_NETWORK_OP,
        };
        let inside = match &r.function {
            Some(f) => format!(" in library function {f:?}"),
            None => String::new(),
        };
        push(
            rule,
            loc.clone(),
            format!("node {:?}{inside} runs {}: {}", r.node, r.op, r.detail),
        );
    }
}

fn hf_findings(h: &hf_repo::HfConfigView, loc: Location, push: &mut Push) {
    if !h.auto_map.is_empty() {
        let list: Vec<String> = h
            .auto_map
            .iter()
            .take(8)
            .map(|e| match &e.other_repo {
                Some(r) => format!("{} -> {} (code from repository {r})", e.key, e.target),
                None => format!("{} -> {}", e.key, e.target),
            })
            .collect();
        push(
            rules::HF_REMOTE_CODE,
            loc.clone(),
            format!(
                "auto_map makes transformers import the repository's own Python (trust_remote_code=True): {}",
                list.join(", ")
            ),
        );
    }
    for f in &h.python {
        let floc = file_location(&f.path);
        if let Some(e) = &f.error {
            push(
                rules::HF_REMOTE_CODE_UNREADABLE,
                floc.clone(),
                format!(
                    "remote-code module {} could not be checked: {e}",
                    file_name(&f.path)
                ),
            );
        }
        for c in &f.calls {
            let what = match c.category {
                hf_repo::CallCategory::Process => "starts a process",
                hf_repo::CallCategory::Network => "uses the network",
                hf_repo::CallCategory::DynamicCode => "runs dynamic code",
                hf_repo::CallCategory::FileWrite => "writes or deletes files",
            };
            push(
                rules::HF_REMOTE_CODE_DANGEROUS_CALL,
                floc.clone(),
                format!(
                    "{} line {}: {}() {what}; it runs when the model is loaded with trust_remote_code",
                    file_name(&f.path),
                    c.line,
                    c.target
                ),
            );
        }
    }
    for t in &h.templates {
        template_findings(t, "chat template", &loc, push);
    }
}

/// A Hugging Face repository directory judged as a whole: every config file in it that carries
/// `auto_map` or a chat template, with the Python modules it names. For callers that handle
/// directories themselves (`scan_paths` reaches the same findings file by file).
pub fn hf_repo_findings(dir: &Path, policy: &Policy) -> Vec<Finding> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    let mut files: Vec<_> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| hf_repo::is_config_name(p))
        .collect();
    files.sort();
    for p in files {
        let Ok(meta) = std::fs::metadata(&p) else {
            continue;
        };
        if meta.len() > hf_repo::MAX_FILE {
            continue;
        }
        let Ok(data) = std::fs::read(&p) else {
            continue;
        };
        if let Some(h) = hf_repo::read_config_path(&p, &data) {
            let loc = file_location(&p.display().to_string());
            hf_findings(&h, loc, &mut |rule, location, message| {
                if policy.disabled.iter().any(|d| d == rule) {
                    return;
                }
                let r = rules::get(rule);
                out.push(Finding {
                    rule: r.id,
                    name: r.name,
                    severity: policy.severity_of(r.id),
                    message,
                    location,
                    global: None,
                });
            });
        }
    }
    out
}
