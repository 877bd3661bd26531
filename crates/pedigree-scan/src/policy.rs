//! Policy: the allow and deny lists of pickle globals, severity overrides and the failure
//! threshold, loaded from `pedigree.toml`.
//!
//! The verdict on a global depends only on its name and these lists, never on which Python
//! packages happen to be installed on the scanning machine.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

use crate::lists::{DEFAULT_ALLOW, DEFAULT_DENY, DEFAULT_DENY_EXCEPTIONS};
use crate::severity::Severity;

/// One list entry, a dotted path matched component by component.
///
/// `*` matches inside one component (`torch.*Storage`), `**` matches any number of components,
/// `<Class>` matches one component that starts with an upper-case ASCII letter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pattern {
    text: String,
    parts: Vec<String>,
}

impl Pattern {
    pub fn new(text: &str) -> Pattern {
        let text = text.trim().to_string();
        let parts = text.split('.').map(str::to_string).collect();
        Pattern { text, parts }
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Does the pattern match the whole path?
    pub fn matches(&self, path: &[&str]) -> bool {
        match_parts(&self.parts, path, false)
    }

    /// Does the pattern match the path or one of its ancestors (so `os` covers `os.system`)?
    pub fn covers(&self, path: &[&str]) -> bool {
        match_parts(&self.parts, path, true)
    }
}

fn match_parts(pat: &[String], path: &[&str], prefix_ok: bool) -> bool {
    match pat.split_first() {
        None => path.is_empty() || prefix_ok,
        Some((p, rest)) if p == "**" => {
            (0..=path.len()).any(|skip| match_parts(rest, &path[skip..], prefix_ok))
        }
        Some((p, rest)) => match path.split_first() {
            Some((c, tail)) => component_matches(p, c) && match_parts(rest, tail, prefix_ok),
            None => false,
        },
    }
}

fn component_matches(pat: &str, comp: &str) -> bool {
    if pat == "<Class>" {
        return comp.chars().next().is_some_and(|c| c.is_ascii_uppercase());
    }
    match pat.split_once('*') {
        None => pat == comp,
        Some((pre, post)) => {
            comp.len() >= pre.len() + post.len() && comp.starts_with(pre) && comp.ends_with(post)
        }
    }
}

/// What the lists say about one global.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// On the deny list; `matched` is the entry and `reached` the dotted path it matched.
    Dangerous {
        matched: String,
        reached: String,
    },
    Safe,
    Unknown,
}

/// The pickle global lists in force.
#[derive(Debug, Clone)]
pub struct GlobalPolicy {
    pub allow: Vec<Pattern>,
    pub deny: Vec<Pattern>,
    /// Exact names carved out of a denied module because they are known to be inert.
    pub deny_exceptions: Vec<Pattern>,
}

impl Default for GlobalPolicy {
    fn default() -> Self {
        GlobalPolicy {
            allow: DEFAULT_ALLOW.iter().map(|s| Pattern::new(s)).collect(),
            deny: DEFAULT_DENY.iter().map(|s| Pattern::new(s)).collect(),
            deny_exceptions: DEFAULT_DENY_EXCEPTIONS
                .iter()
                .map(|s| Pattern::new(s))
                .collect(),
        }
    }
}

/// Module spellings that CPython treats as the same module (beyond `_compat_pickle`, which the
/// pickle reader has already applied): `__builtins__` is how builtins appear inside frames.
fn canonical_module(module: &str) -> &str {
    match module {
        "__builtin__" | "__builtins__" => "builtins",
        "copy_reg" => "copyreg",
        other => other,
    }
}

impl GlobalPolicy {
    /// Judges `module` + `name` (a possibly dotted attribute path, walked by getattr under
    /// protocol >= 4).
    ///
    /// Deny is checked first and in two ways: the full path or any ancestor is listed
    /// (`os` covers `os.system`); and, because a dotted name walks attributes from the module,
    /// every tail of the dotted name is judged too (`pathlib` + `os.system` reaches `os.system`
    /// through pathlib's own import of os).
    pub fn judge(&self, module: &str, name: &str) -> Verdict {
        let module = canonical_module(module);
        let mut path: Vec<&str> = module.split('.').collect();
        let module_len = path.len();
        path.extend(name.split('.'));
        if self.deny_exceptions.iter().any(|p| p.matches(&path)) {
            return Verdict::Safe;
        }
        if let Some(v) = self.denied(&path) {
            return v;
        }
        // Tails of a dotted name, from its first component on, each at least two components
        // long (`os.system`): a bare last component (`mypkg` + `socket`) is just an attribute
        // that happens to share a module's name.
        for start in module_len..path.len().saturating_sub(1) {
            if let Some(v) = self.denied(&path[start..]) {
                return v;
            }
            // A tail that starts with a builtins name (`x.__builtins__.eval`) reaches builtins.
            if path[start] == "__builtins__" || path[start] == "__builtin__" {
                let mut tail = vec!["builtins"];
                tail.extend(&path[start + 1..]);
                if let Some(v) = self.denied(&tail) {
                    return v;
                }
            }
        }
        // Dunder attributes reached through a dotted name are how sandbox escapes walk to
        // globals (`__globals__`, `__subclasses__`, `__class__`): never safe.
        if path[module_len..]
            .iter()
            .skip(1)
            .any(|c| c.starts_with("__") && c.ends_with("__"))
        {
            return Verdict::Dangerous {
                matched: "dunder attribute in a dotted name".into(),
                reached: path.join("."),
            };
        }
        if self.allow.iter().any(|p| p.matches(&path)) {
            return Verdict::Safe;
        }
        Verdict::Unknown
    }

    fn denied(&self, path: &[&str]) -> Option<Verdict> {
        self.deny
            .iter()
            .find(|p| p.covers(path))
            .map(|p| Verdict::Dangerous {
                matched: p.as_str().to_string(),
                reached: path.join("."),
            })
    }
}

/// The whole scan policy.
#[derive(Debug, Clone)]
pub struct Policy {
    pub globals: GlobalPolicy,
    /// Per-rule severity overrides (`PDG102 = "high"`).
    pub severity: BTreeMap<String, Severity>,
    /// Rules switched off entirely.
    pub disabled: Vec<String>,
    /// Findings at or above this make `pedigree scan` exit 1.
    pub fail_on: Severity,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            globals: GlobalPolicy::default(),
            severity: BTreeMap::new(),
            disabled: Vec::new(),
            fail_on: Severity::Medium,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error("cannot read policy file {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid policy file {path}: {message}")]
    Invalid { path: String, message: String },
}

/// The shape of `pedigree.toml`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigFile {
    #[serde(default)]
    scan: ScanSection,
    #[serde(default)]
    pickle: PickleSection,
    #[serde(default)]
    severity: BTreeMap<String, String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ScanSection {
    fail_on: Option<String>,
    #[serde(default)]
    disable: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct PickleSection {
    #[serde(default)]
    allow: Vec<String>,
    #[serde(default)]
    deny: Vec<String>,
}

impl Policy {
    /// Reads `pedigree.toml`; user entries are added to the defaults (deny still wins).
    pub fn from_file(path: &Path) -> Result<Policy, PolicyError> {
        let text = std::fs::read_to_string(path).map_err(|source| PolicyError::Io {
            path: path.display().to_string(),
            source,
        })?;
        Policy::from_toml(&text).map_err(|message| PolicyError::Invalid {
            path: path.display().to_string(),
            message,
        })
    }

    pub fn from_toml(text: &str) -> Result<Policy, String> {
        let cfg: ConfigFile = toml::from_str(text).map_err(|e| e.to_string())?;
        let mut policy = Policy::default();
        if let Some(f) = cfg.scan.fail_on {
            policy.fail_on = f
                .parse()
                .map_err(|e: crate::severity::UnknownSeverity| e.to_string())?;
        }
        for id in &cfg.scan.disable {
            let rule = crate::rules::find(id)
                .ok_or_else(|| format!("unknown rule '{id}' in [scan] disable"))?;
            policy.disabled.push(rule.id.to_string());
        }
        for (id, sev) in cfg.severity {
            let rule = crate::rules::find(&id)
                .ok_or_else(|| format!("unknown rule '{id}' in [severity]"))?;
            let sev: Severity = sev
                .parse()
                .map_err(|e: crate::severity::UnknownSeverity| e.to_string())?;
            policy.severity.insert(rule.id.to_string(), sev);
        }
        policy
            .globals
            .allow
            .extend(cfg.pickle.allow.iter().map(|s| Pattern::new(s)));
        policy
            .globals
            .deny
            .extend(cfg.pickle.deny.iter().map(|s| Pattern::new(s)));
        Ok(policy)
    }

    /// The severity of a rule under this policy.
    pub fn severity_of(&self, rule_id: &str) -> Severity {
        self.severity
            .get(rule_id)
            .copied()
            .unwrap_or_else(|| crate::rules::get(rule_id).severity)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn judge(m: &str, n: &str) -> Verdict {
        GlobalPolicy::default().judge(m, n)
    }

    fn dangerous(v: &Verdict) -> bool {
        matches!(v, Verdict::Dangerous { .. })
    }

    #[test]
    fn plain_dangerous_names() {
        assert!(dangerous(&judge("os", "system")));
        assert!(dangerous(&judge("posix", "system")));
        assert!(dangerous(&judge("builtins", "eval")));
        assert!(dangerous(&judge("__builtin__", "exec")));
        assert!(dangerous(&judge("subprocess", "Popen")));
        assert!(dangerous(&judge("torch.storage", "_load_from_bytes")));
        assert!(dangerous(&judge("marshal", "loads")));
        assert!(dangerous(&judge("types", "FunctionType")));
        assert!(dangerous(&judge("pip", "main")));
        assert!(dangerous(&judge("torch.jit", "load")));
        // A carve-out is exact: it does not cover a dotted walk from the inert function.
        assert!(dangerous(&judge(
            "torch.jit._pickle",
            "build_intlist.__globals__"
        )));
    }

    #[test]
    fn children_of_a_listed_module_are_covered() {
        // CVE-2025-10157: exact matching missed submodules.
        assert!(dangerous(&judge(
            "asyncio.unix_events",
            "_UnixSubprocessTransport._start"
        )));
        assert!(dangerous(&judge("os.path", "join")));
    }

    #[test]
    fn dotted_names_are_judged_by_what_they_reach() {
        assert!(dangerous(&judge("pathlib", "os.system")));
        assert_eq!(
            judge("pathlib", "os.system"),
            Verdict::Dangerous {
                matched: "os".into(),
                reached: "os.system".into()
            }
        );
        assert!(dangerous(&judge("mypkg", "helpers.subprocess.getoutput")));
        assert!(dangerous(&judge("code", "InteractiveInterpreter.runcode")));
        assert!(dangerous(&judge(
            "collections",
            "OrderedDict.__init__.__globals__"
        )));
        // A dotted name that reaches nothing listed is unknown, not safe.
        assert_eq!(
            judge("collections", "OrderedDict.fromkeys"),
            Verdict::Unknown
        );
    }

    #[test]
    fn benign_ml_globals_are_safe() {
        for (m, n) in [
            ("collections", "OrderedDict"),
            ("torch._utils", "_rebuild_tensor_v2"),
            ("torch", "FloatStorage"),
            ("torch", "BFloat16Storage"),
            ("torch", "float16"),
            ("numpy._core.multiarray", "_reconstruct"),
            ("numpy", "dtype"),
            ("sklearn.linear_model._logistic", "LogisticRegression"),
            ("sklearn.tree._tree", "Tree"),
            ("sklearn.neighbors._kd_tree", "newObj"),
            ("joblib.numpy_pickle", "NumpyArrayWrapper"),
            ("torch.nn.modules.linear", "Linear"),
            ("__torch__.torch.nn.modules.linear", "Linear"),
            ("builtins", "set"),
            ("copyreg", "_reconstructor"),
            ("torch.jit._pickle", "build_intlist"),
        ] {
            assert_eq!(judge(m, n), Verdict::Safe, "{m}.{n}");
        }
    }

    #[test]
    fn unknown_is_unknown() {
        assert_eq!(judge("__main__", "Net"), Verdict::Unknown);
        assert_eq!(judge("sklearn.utils", "some_function"), Verdict::Unknown);
        assert_eq!(judge("torch.nn.modules.linear", "helper"), Verdict::Unknown);
        // An attribute that merely shares a module's name is not that module.
        assert_eq!(judge("mypkg", "socket"), Verdict::Unknown);
    }

    #[test]
    fn config_extends_the_lists_and_sets_thresholds() {
        let p = Policy::from_toml(
            "[scan]\nfail_on = \"high\"\n[pickle]\nallow = [\"__main__.Net\"]\ndeny = [\"evilpkg\"]\n[severity]\nPDG102 = \"critical\"\n",
        )
        .unwrap();
        assert_eq!(p.fail_on, Severity::High);
        assert_eq!(p.globals.judge("__main__", "Net"), Verdict::Safe);
        assert!(dangerous(&p.globals.judge("evilpkg.sub", "f")));
        assert_eq!(p.severity_of("PDG102"), Severity::Critical);
        assert_eq!(p.severity_of("PDG101"), Severity::Critical);
        // Deny still wins over a user allow entry.
        let p = Policy::from_toml("[pickle]\nallow = [\"os.system\"]\n").unwrap();
        assert!(dangerous(&p.globals.judge("os", "system")));
        assert!(Policy::from_toml("[severity]\nPDG999 = \"high\"\n").is_err());
        assert!(Policy::from_toml("[scan]\nfail_on = \"severe\"\n").is_err());
    }
}
