//! Hugging Face repositories on disk: `config.json` / `tokenizer_config.json` `auto_map` entries
//! (loading them needs `trust_remote_code=True`, which imports the repository's own Python) and
//! the Python files they point to, parsed with a real Python parser (`rustpython-parser`) and
//! walked for calls that start processes, use the network, run dynamic code or write files.
//! `tokenizer_config.json` chat templates are judged like GGUF ones.
//!
//! Nothing is imported or run. Names are resolved through the file's imports
//! (`import subprocess as sp; sp.run(...)` is `subprocess.run`).

use std::path::{Path, PathBuf};

use rustpython_ast::Visitor;
use rustpython_parser::{Parse, ast};
use serde::Serialize;
use serde_json::Value;

use crate::chat_template::{self, TemplateReport};
use crate::python::{Aliases, MAX_NESTING, line_of, line_starts, max_nesting, on_big_stack};

/// Largest config or Python file read.
pub const MAX_FILE: u64 = 2 << 20;
/// Most Python files followed from one config.
pub const MAX_MODULES: usize = 64;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum CallCategory {
    Process,
    Network,
    DynamicCode,
    FileWrite,
}

#[derive(Debug, Clone, Serialize)]
pub struct PyCall {
    pub line: usize,
    /// The call target as resolved through the imports, e.g. `subprocess.run`.
    pub target: String,
    pub category: CallCategory,
}

#[derive(Debug, Clone, Serialize)]
pub struct PyFile {
    /// Path of the file (as found beside the config).
    pub path: String,
    pub calls: Vec<PyCall>,
    /// Why it could not be read or parsed.
    pub error: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct AutoMapEntry {
    pub key: String,
    pub target: String,
    /// `org/repo--module.Class`: the code comes from another repository, fetched at load time.
    pub other_repo: Option<String>,
    /// The module file it needs, relative to the repository (`modeling_x.py`).
    pub module_file: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct HfConfigView {
    pub file: String,
    pub auto_map: Vec<AutoMapEntry>,
    pub python: Vec<PyFile>,
    pub templates: Vec<TemplateReport>,
}

/// The `auto_map` entries and chat templates of a config JSON (no file-system access).
pub fn read_config_json(name: &str, data: &[u8]) -> Option<HfConfigView> {
    let v: Value = serde_json::from_slice(data).ok()?;
    let o = v.as_object()?;
    let mut view = HfConfigView {
        file: name.to_string(),
        auto_map: Vec::new(),
        python: Vec::new(),
        templates: Vec::new(),
    };
    if let Some(m) = o.get("auto_map").and_then(Value::as_object) {
        for (k, val) in m.iter().take(256) {
            let targets: Vec<&str> = match val {
                Value::String(s) => vec![s.as_str()],
                Value::Array(a) => a.iter().filter_map(Value::as_str).collect(),
                _ => Vec::new(),
            };
            for t in targets {
                let (repo, rest) = match t.split_once("--") {
                    Some((r, rest)) => (Some(r.to_string()), rest),
                    None => (None, t),
                };
                let module = rest.rsplit_once('.').map(|(m, _)| m);
                let module_file = match (&repo, module) {
                    (None, Some(m))
                        if !m.is_empty() && m.split('.').all(|p| !p.is_empty() && p != "..") =>
                    {
                        Some(format!("{}.py", m.replace('.', "/")))
                    }
                    _ => None,
                };
                view.auto_map.push(AutoMapEntry {
                    key: k.clone(),
                    target: t.to_string(),
                    other_repo: repo,
                    module_file,
                });
            }
        }
    }
    match o.get("chat_template") {
        Some(Value::String(s)) => view
            .templates
            .push(chat_template::check("chat_template", s)),
        Some(Value::Array(a)) => {
            for t in a.iter().take(64) {
                if let (Some(n), Some(s)) = (
                    t.get("name").and_then(Value::as_str),
                    t.get("template").and_then(Value::as_str),
                ) {
                    view.templates
                        .push(chat_template::check(&format!("chat_template.{n}"), s));
                }
            }
        }
        _ => {}
    }
    if view.auto_map.is_empty() && view.templates.is_empty() {
        return None;
    }
    Some(view)
}

/// Whether a file name is one whose `auto_map` is honoured.
pub fn is_config_name(path: &Path) -> bool {
    matches!(
        path.file_name().and_then(|n| n.to_str()),
        Some(
            "config.json"
                | "tokenizer_config.json"
                | "processor_config.json"
                | "preprocessor_config.json"
                | "feature_extractor_config.json"
                | "image_processor_config.json"
        )
    )
}

/// Reads a config file on disk and the Python modules its `auto_map` names (beside it).
pub fn read_config_path(path: &Path, data: &[u8]) -> Option<HfConfigView> {
    let mut view = read_config_json(&path.display().to_string(), data)?;
    let dir = path
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."));
    let mut done: Vec<String> = Vec::new();
    for e in &view.auto_map {
        let Some(f) = &e.module_file else { continue };
        if done.contains(f) || done.len() >= MAX_MODULES {
            continue;
        }
        done.push(f.clone());
        let p = dir.join(f);
        view.python.push(read_py_path(&p));
    }
    Some(view)
}

pub fn read_py_path(p: &Path) -> PyFile {
    let path = p.display().to_string();
    match std::fs::metadata(p) {
        Ok(m) if m.len() > MAX_FILE => PyFile {
            path,
            calls: Vec::new(),
            error: Some(format!("{} bytes, over the {MAX_FILE}-byte limit", m.len())),
        },
        Ok(_) => match std::fs::read(p) {
            Ok(d) => read_py(&path, &d),
            Err(e) => PyFile {
                path,
                calls: Vec::new(),
                error: Some(format!("cannot read: {e}")),
            },
        },
        Err(e) => PyFile {
            path,
            calls: Vec::new(),
            error: Some(format!("missing: {e}")),
        },
    }
}

/// Parses Python source and lists the risky calls.
pub fn read_py(path: &str, data: &[u8]) -> PyFile {
    let mut out = PyFile {
        path: path.to_string(),
        calls: Vec::new(),
        error: None,
    };
    if data.len() as u64 > MAX_FILE {
        out.error = Some(format!(
            "{} bytes, over the {MAX_FILE}-byte limit",
            data.len()
        ));
        return out;
    }
    let src = String::from_utf8_lossy(data).into_owned();
    if max_nesting(&src) > MAX_NESTING {
        out.error = Some(format!("brackets nested deeper than {MAX_NESTING}"));
        return out;
    }
    // The parser and the walk recurse on the expression tree (long operator chains are deep
    // even without brackets): run them on a thread with a large stack.
    let path_s = path.to_string();
    match on_big_stack(move || {
        let suite = ast::Suite::parse(&src, &path_s).map_err(|e| e.to_string())?;
        let mut w = PyWalker {
            aliases: Aliases::default(),
            calls: Vec::new(),
            line_starts: line_starts(&src),
        };
        for s in suite {
            w.visit_stmt(s);
        }
        Ok::<_, String>(w.calls)
    }) {
        Ok(Ok(calls)) => out.calls = calls,
        Ok(Err(e)) => out.error = Some(format!("Python syntax error: {e}")),
        Err(e) => out.error = Some(e),
    }
    out
}

struct PyWalker {
    aliases: Aliases,
    calls: Vec<PyCall>,
    line_starts: Vec<usize>,
}

const PROCESS_MODULES: &[&str] = &["subprocess", "pty", "commands", "popen2"];
const PROCESS_FUNCS: &[&str] = &[
    "os.system",
    "os.popen",
    "os.fork",
    "os.forkpty",
    "os.execl",
    "os.execle",
    "os.execlp",
    "os.execlpe",
    "os.execv",
    "os.execve",
    "os.execvp",
    "os.execvpe",
    "os.spawnl",
    "os.spawnle",
    "os.spawnlp",
    "os.spawnlpe",
    "os.spawnv",
    "os.spawnve",
    "os.spawnvp",
    "os.spawnvpe",
    "os.posix_spawn",
    "os.posix_spawnp",
    "os.startfile",
    "os.kill",
    "posix.system",
    "nt.system",
    "asyncio.create_subprocess_shell",
    "asyncio.create_subprocess_exec",
];
const NETWORK_MODULES: &[&str] = &[
    "socket",
    "requests",
    "httpx",
    "aiohttp",
    "urllib3",
    "http.client",
    "ftplib",
    "smtplib",
    "telnetlib",
    "paramiko",
    "websocket",
    "websockets",
    "xmlrpc.client",
];
const NETWORK_FUNCS: &[&str] = &[
    "urllib.request.urlopen",
    "urllib.request.urlretrieve",
    "urllib.request.Request",
    "urllib.urlopen",
    "urllib2.urlopen",
];
const DYNAMIC_FUNCS: &[&str] = &[
    "eval",
    "exec",
    "compile",
    "__import__",
    "builtins.eval",
    "builtins.exec",
    "builtins.compile",
    "builtins.__import__",
    "importlib.import_module",
    "importlib.__import__",
    "runpy.run_path",
    "runpy.run_module",
    "marshal.loads",
    "pickle.loads",
    "pickle.load",
    "types.FunctionType",
    "types.CodeType",
    "ctypes.CDLL",
    "ctypes.cdll.LoadLibrary",
];
const FILE_WRITE_FUNCS: &[&str] = &[
    "os.remove",
    "os.unlink",
    "os.rmdir",
    "os.removedirs",
    "os.rename",
    "os.renames",
    "os.replace",
    "os.chmod",
    "os.chown",
    "os.truncate",
    "os.symlink",
    "os.link",
    "shutil.rmtree",
    "shutil.move",
    "shutil.copy",
    "shutil.copy2",
    "shutil.copyfile",
    "shutil.copytree",
    "os.write",
];
const FILE_WRITE_METHODS: &[&str] = &["write_text", "write_bytes"];
const DANGER_ATTRS: &[&str] = &[
    "system",
    "popen",
    "exec",
    "eval",
    "spawn",
    "check_output",
    "Popen",
    "__import__",
];

fn module_match(target: &str, modules: &[&str]) -> bool {
    modules
        .iter()
        .any(|m| target.starts_with(m) && target[m.len()..].starts_with('.'))
}

impl PyWalker {
    fn line(&self, offset: usize) -> usize {
        line_of(&self.line_starts, offset)
    }

    fn dotted(&self, e: &ast::Expr) -> Option<String> {
        self.aliases.dotted(e)
    }

    fn judge(&mut self, call: &ast::ExprCall) {
        let line = self.line(usize::from(call.range.start()));
        let Some(target) = self.dotted(&call.func) else {
            return;
        };
        let t = target.as_str();
        let category = if module_match(t, PROCESS_MODULES) || PROCESS_FUNCS.contains(&t) {
            Some(CallCategory::Process)
        } else if module_match(t, NETWORK_MODULES) || NETWORK_FUNCS.contains(&t) {
            Some(CallCategory::Network)
        } else if DYNAMIC_FUNCS.contains(&t) {
            Some(CallCategory::DynamicCode)
        } else if FILE_WRITE_FUNCS.contains(&t) {
            Some(CallCategory::FileWrite)
        } else if t == "open"
            || t == "io.open"
            || t == "builtins.open"
            || t == "os.open"
            || t == "codecs.open"
        {
            let mode = call.args.get(1).or_else(|| {
                call.keywords
                    .iter()
                    .find(|k| {
                        k.arg
                            .as_ref()
                            .is_some_and(|a| a.as_str() == "mode" || a.as_str() == "flags")
                    })
                    .map(|k| &k.value)
            });
            match mode {
                Some(ast::Expr::Constant(c)) => match &c.value {
                    ast::Constant::Str(m) if m.contains(['w', 'a', 'x', '+']) => {
                        Some(CallCategory::FileWrite)
                    }
                    _ => None,
                },
                Some(_) if t == "os.open" => Some(CallCategory::FileWrite),
                _ => None,
            }
        } else if t == "getattr" {
            match call.args.get(1) {
                Some(ast::Expr::Constant(c)) => match &c.value {
                    ast::Constant::Str(s) if DANGER_ATTRS.contains(&s.as_str()) => {
                        Some(CallCategory::DynamicCode)
                    }
                    _ => None,
                },
                _ => None,
            }
        } else {
            None
        };
        let category = category.or_else(|| match &*call.func {
            ast::Expr::Attribute(a) if FILE_WRITE_METHODS.contains(&a.attr.as_str()) => {
                Some(CallCategory::FileWrite)
            }
            _ => None,
        });
        if let Some(category) = category {
            if self.calls.len() < 1000 {
                self.calls.push(PyCall {
                    line,
                    target,
                    category,
                });
            }
        }
    }
}

impl Visitor for PyWalker {
    fn visit_stmt_import(&mut self, node: ast::StmtImport) {
        self.aliases.add_import(&node);
    }

    fn visit_stmt_import_from(&mut self, node: ast::StmtImportFrom) {
        self.aliases.add_import_from(&node);
    }

    fn visit_expr_call(&mut self, node: ast::ExprCall) {
        self.judge(&node);
        self.generic_visit_expr_call(node);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_calls_through_aliases() {
        let src = b"import subprocess as sp\nfrom os import system\nimport os\nimport torch\n\ndef f(x):\n    sp.run(['id'])\n    system('id')\n    os.path.join('a', 'b')\n    open('x', 'w').write('y')\n    open('r')\n    exec('1')\n    import requests\n    requests.get('http://x')\n    return torch.zeros(1)\n";
        let f = read_py("m.py", src);
        assert!(f.error.is_none(), "{:?}", f.error);
        let t: Vec<(usize, &str)> = f
            .calls
            .iter()
            .map(|c| (c.line, c.target.as_str()))
            .collect();
        assert_eq!(
            t,
            vec![
                (7, "subprocess.run"),
                (8, "os.system"),
                (10, "open"),
                (12, "exec"),
                (14, "requests.get")
            ]
        );
    }

    #[test]
    fn auto_map() {
        let j = br#"{"auto_map": {"AutoModel": "modeling_x.XModel", "AutoTokenizer": ["tokenization_x.T", null], "AutoConfig": "org/repo--configuration_x.C"}}"#;
        let v = read_config_json("config.json", j).expect("auto_map");
        assert_eq!(v.auto_map.len(), 3);
        let get = |k: &str| v.auto_map.iter().find(|e| e.key == k).expect("entry");
        assert_eq!(
            get("AutoModel").module_file.as_deref(),
            Some("modeling_x.py")
        );
        assert_eq!(get("AutoConfig").other_repo.as_deref(), Some("org/repo"));
        assert!(read_config_json("config.json", br#"{"model_type": "bert"}"#).is_none());
    }

    #[test]
    fn random_inputs_never_panic() {
        let src = b"import os\ndef f(x):\n    return os.system(x) + [1, (2, {3: 4})]\n";
        crate::fuzz_util::mutate_many(src, 500, 0x99, |d| {
            let _ = read_py("m.py", d);
        });
        let j = br#"{"auto_map": {"AutoModel": "modeling_x.XModel"}, "chat_template": "{{ x }}"}"#;
        crate::fuzz_util::mutate_many(j, 2000, 0x98, |d| {
            let _ = read_config_json("config.json", d);
        });
    }
}
