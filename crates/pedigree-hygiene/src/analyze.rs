//! The Python walk: import aliases, constants in scope, and the judgement of each call.
//!
//! Data flow is deliberately simple and conservative: within one file, names bound by plain
//! assignments (module level, and inside the enclosing function) are followed to their values;
//! a name assigned more than one different value, a parameter, a loop or `with` target, an
//! import or the result of an arbitrary call is *unknown*, and findings say so instead of
//! guessing. Runs on a thread with a large stack (see `pedigree_formats::python`).

use std::collections::HashMap;

use pedigree_formats::python::Aliases;
use pedigree_scan::rules;
use rustpython_ast::Visitor;
use rustpython_parser::ast;

use crate::allow::{AllowList, Vetting};
use crate::names;

/// Deepest expression/statement nesting walked; deeper code makes the file "not analysed".
pub const MAX_DEPTH: usize = 1000;
/// Most findings kept per file.
pub const MAX_HITS: usize = 10_000;
/// How many names deep a value is followed (`a = b; b = c; …`).
const MAX_EVAL_DEPTH: usize = 32;

/// A statically known value, or why it is not known.
#[derive(Debug, Clone, PartialEq)]
pub enum Val {
    Str(String),
    Bool(bool),
    NoneV,
    Num,
    /// A dict with string keys (for `**kwargs`).
    Dict(Vec<(String, Val)>),
    /// A path built with os.path / pathlib: never a hub repository id.
    LocalPath,
    Unknown(String),
}

/// One finding before it is placed (byte range of the call in the analysed text).
#[derive(Debug, Clone)]
pub struct Hit {
    pub rule: &'static str,
    pub message: String,
    pub start: usize,
    pub end: usize,
}

#[derive(Debug, Clone)]
enum Binding {
    Exprs(Vec<ast::Expr>),
    Param,
    Opaque(&'static str),
}

#[derive(Debug, Default)]
struct Scope {
    vars: HashMap<String, Binding>,
}

impl Scope {
    fn assign(&mut self, name: &str, value: &ast::Expr) {
        let b = self
            .vars
            .entry(name.to_string())
            .or_insert_with(|| Binding::Exprs(Vec::new()));
        let full = match b {
            Binding::Exprs(v) if v.len() < 16 => {
                v.push(value.clone());
                false
            }
            Binding::Exprs(_) => true,
            _ => false,
        };
        if full {
            *b = Binding::Opaque("assigned many times");
        }
    }

    fn opaque(&mut self, name: &str, why: &'static str) {
        self.vars.insert(name.to_string(), Binding::Opaque(why));
    }

    /// `name[...] = …` / `name.update(…)`: the name's value is no longer the one assigned.
    fn mutated(&mut self, target: &ast::Expr, why: &'static str) {
        if let ast::Expr::Name(n) = target {
            self.opaque(n.id.as_str(), why);
        }
    }

    fn opaque_target(&mut self, t: &ast::Expr, why: &'static str) {
        match t {
            ast::Expr::Name(n) => self.opaque(n.id.as_str(), why),
            ast::Expr::Tuple(x) => x.elts.iter().for_each(|e| self.opaque_target(e, why)),
            ast::Expr::List(x) => x.elts.iter().for_each(|e| self.opaque_target(e, why)),
            ast::Expr::Starred(s) => self.opaque_target(&s.value, why),
            _ => {}
        }
    }

    /// Records the bindings made by `stmts` (not descending into nested functions/classes,
    /// whose bodies are scopes of their own). `depth` bounds the recursion on nested blocks.
    fn collect(&mut self, stmts: &[ast::Stmt], depth: usize) {
        if depth > MAX_DEPTH {
            return;
        }
        for s in stmts {
            match s {
                ast::Stmt::Assign(a) => {
                    for t in &a.targets {
                        match t {
                            ast::Expr::Name(n) => self.assign(n.id.as_str(), &a.value),
                            ast::Expr::Subscript(x) => {
                                self.mutated(&x.value, "changed by item assignment")
                            }
                            _ => self.opaque_target(t, "bound by unpacking"),
                        }
                    }
                }
                // `kw.update(...)`, `kw.setdefault(...)`: a dict built from literals and then
                // changed is no longer known.
                ast::Stmt::Expr(e) => {
                    if let ast::Expr::Call(c) = &*e.value
                        && let ast::Expr::Attribute(a) = &*c.func
                        && matches!(
                            a.attr.as_str(),
                            "update" | "setdefault" | "pop" | "popitem" | "clear" | "__setitem__"
                        )
                    {
                        self.mutated(&a.value, "changed by a method call");
                    }
                }
                ast::Stmt::AnnAssign(a) => {
                    if let (ast::Expr::Name(n), Some(v)) = (&*a.target, &a.value) {
                        self.assign(n.id.as_str(), v);
                    }
                }
                ast::Stmt::AugAssign(a) => match &*a.target {
                    ast::Expr::Subscript(x) => self.mutated(&x.value, "changed by item assignment"),
                    t => self.opaque_target(t, "changed in place"),
                },
                ast::Stmt::For(f) => {
                    self.opaque_target(&f.target, "a loop variable");
                    self.collect(&f.body, depth + 1);
                    self.collect(&f.orelse, depth + 1);
                }
                ast::Stmt::AsyncFor(f) => {
                    self.opaque_target(&f.target, "a loop variable");
                    self.collect(&f.body, depth + 1);
                    self.collect(&f.orelse, depth + 1);
                }
                ast::Stmt::While(w) => {
                    self.collect(&w.body, depth + 1);
                    self.collect(&w.orelse, depth + 1);
                }
                ast::Stmt::If(i) => {
                    self.collect(&i.body, depth + 1);
                    self.collect(&i.orelse, depth + 1);
                }
                ast::Stmt::With(w) => {
                    for it in &w.items {
                        if let Some(v) = &it.optional_vars {
                            self.opaque_target(v, "bound by `with`");
                        }
                    }
                    self.collect(&w.body, depth + 1);
                }
                ast::Stmt::AsyncWith(w) => {
                    for it in &w.items {
                        if let Some(v) = &it.optional_vars {
                            self.opaque_target(v, "bound by `with`");
                        }
                    }
                    self.collect(&w.body, depth + 1);
                }
                ast::Stmt::Try(t) => {
                    self.collect(&t.body, depth + 1);
                    for h in &t.handlers {
                        let ast::ExceptHandler::ExceptHandler(h) = h;
                        if let Some(n) = &h.name {
                            self.opaque(n.as_str(), "an exception");
                        }
                        self.collect(&h.body, depth + 1);
                    }
                    self.collect(&t.orelse, depth + 1);
                    self.collect(&t.finalbody, depth + 1);
                }
                ast::Stmt::TryStar(t) => {
                    self.collect(&t.body, depth + 1);
                    for h in &t.handlers {
                        let ast::ExceptHandler::ExceptHandler(h) = h;
                        self.collect(&h.body, depth + 1);
                    }
                    self.collect(&t.orelse, depth + 1);
                    self.collect(&t.finalbody, depth + 1);
                }
                ast::Stmt::Match(m) => {
                    for c in &m.cases {
                        self.collect(&c.body, depth + 1);
                    }
                }
                ast::Stmt::FunctionDef(f) => self.opaque(f.name.as_str(), "a function"),
                ast::Stmt::AsyncFunctionDef(f) => self.opaque(f.name.as_str(), "a function"),
                ast::Stmt::ClassDef(c) => self.opaque(c.name.as_str(), "a class"),
                ast::Stmt::Import(i) => {
                    for a in &i.names {
                        let local = a.asname.as_ref().unwrap_or(&a.name).as_str();
                        self.opaque(local.split('.').next().unwrap_or(local), "imported");
                    }
                }
                ast::Stmt::ImportFrom(i) => {
                    for a in &i.names {
                        let local = a.asname.as_ref().unwrap_or(&a.name).as_str();
                        self.opaque(local, "imported from another module");
                    }
                }
                _ => {}
            }
        }
    }

    fn params(args: &ast::Arguments) -> Scope {
        let mut s = Scope::default();
        for a in args
            .posonlyargs
            .iter()
            .chain(&args.args)
            .chain(&args.kwonlyargs)
        {
            s.vars
                .insert(a.def.arg.as_str().to_string(), Binding::Param);
        }
        for a in [&args.vararg, &args.kwarg].into_iter().flatten() {
            s.vars.insert(a.arg.as_str().to_string(), Binding::Param);
        }
        s
    }
}

pub struct Walker<'a> {
    aliases: Aliases,
    scopes: Vec<Scope>,
    allow: Option<&'a AllowList>,
    pub hits: Vec<Hit>,
    depth: usize,
    /// Set when nesting exceeded [`MAX_DEPTH`]: the rest of that subtree was not walked.
    pub too_deep: bool,
}

/// The call keywords, with `**dict` literals expanded.
struct Keywords {
    named: Vec<(String, Val)>,
    /// A `**x` whose contents are unknown (it may carry any keyword).
    opaque_splat: Option<String>,
}

impl Keywords {
    fn get(&self, name: &str) -> Option<&Val> {
        self.named
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v)
    }
}

const PICKLE_LOADERS: &[&str] = &[
    "pickle.load",
    "pickle.loads",
    "pickle.Unpickler",
    "cPickle.load",
    "cPickle.loads",
    "cPickle.Unpickler",
    "_pickle.load",
    "_pickle.loads",
    "_pickle.Unpickler",
    "dill.load",
    "dill.loads",
    "dill.Unpickler",
    "cloudpickle.load",
    "cloudpickle.loads",
    "joblib.load",
    "sklearn.externals.joblib.load",
    "pandas.read_pickle",
];

const KERAS_LOADERS: &[&str] = &[
    "keras.models.load_model",
    "keras.saving.load_model",
    "tensorflow.keras.models.load_model",
    "tensorflow.keras.saving.load_model",
    "tf_keras.models.load_model",
    "tf_keras.saving.load_model",
];

const SENTENCE_TRANSFORMERS: &[&str] = &[
    "sentence_transformers.SentenceTransformer",
    "sentence_transformers.SentenceTransformer.SentenceTransformer",
    "sentence_transformers.CrossEncoder",
    "sentence_transformers.cross_encoder.CrossEncoder",
    "sentence_transformers.cross_encoder.CrossEncoder.CrossEncoder",
    "sentence_transformers.SparseEncoder",
];

const PATH_BUILDERS: &[&str] = &[
    "os.path.join",
    "os.path.abspath",
    "os.path.expanduser",
    "os.path.realpath",
    "os.path.dirname",
    "os.path.normpath",
    "os.getcwd",
    "os.fspath",
    "pathlib.Path",
    "pathlib.PurePath",
    "pathlib.PosixPath",
    "pathlib.WindowsPath",
    "Path",
];

const PICKLE_EXTS: &[&str] = &[".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle", ".joblib"];

fn quoted(v: &Val) -> String {
    match v {
        Val::Str(s) => format!("{s:?}"),
        Val::Bool(b) => if *b { "True" } else { "False" }.to_string(),
        Val::NoneV => "None".into(),
        Val::Num => "a number".into(),
        Val::Dict(_) => "a dict".into(),
        Val::LocalPath => "a local path".into(),
        Val::Unknown(why) => format!("unknown ({why})"),
    }
}

impl<'a> Walker<'a> {
    /// A `def` or `async def`: decorators and defaults are evaluated outside; the body runs in a
    /// scope where the parameters shadow outer constants.
    fn visit_function(
        &mut self,
        args: ast::Arguments,
        body: Vec<ast::Stmt>,
        decorators: Vec<ast::Expr>,
    ) {
        let mut scope = Scope::params(&args);
        scope.collect(&body, 0);
        for d in decorators {
            self.visit_expr(d);
        }
        self.visit_arguments(args);
        self.scopes.push(scope);
        for s in body {
            self.visit_stmt(s);
        }
        self.scopes.pop();
    }

    pub fn new(allow: Option<&'a AllowList>, module: &[ast::Stmt]) -> Walker<'a> {
        let mut s = Scope::default();
        s.collect(module, 0);
        Walker {
            aliases: Aliases::default(),
            scopes: vec![s],
            allow,
            hits: Vec::new(),
            depth: 0,
            too_deep: false,
        }
    }

    fn hit(&mut self, rule: &'static str, call: &ast::ExprCall, message: String) {
        if self.hits.len() < MAX_HITS {
            self.hits.push(Hit {
                rule,
                message,
                start: usize::from(call.range.start()),
                end: usize::from(call.range.end()),
            });
        }
    }

    /// The value of `e` as seen from scope `at` (an index into `self.scopes`).
    fn eval_in(&self, e: &ast::Expr, at: usize, depth: usize) -> Val {
        if depth > MAX_EVAL_DEPTH {
            return Val::Unknown("too many indirections".into());
        }
        match e {
            ast::Expr::Constant(c) => match &c.value {
                ast::Constant::Str(s) => Val::Str(s.clone()),
                ast::Constant::Bool(b) => Val::Bool(*b),
                ast::Constant::None => Val::NoneV,
                ast::Constant::Int(_) | ast::Constant::Float(_) => Val::Num,
                _ => Val::Unknown("a constant of another type".into()),
            },
            ast::Expr::Name(n) => self.lookup(n.id.as_str(), at, depth),
            ast::Expr::BinOp(b) => {
                let l = self.eval_in(&b.left, at, depth + 1);
                let r = self.eval_in(&b.right, at, depth + 1);
                match (b.op, l, r) {
                    (ast::Operator::Add, Val::Str(x), Val::Str(y)) => Val::Str(x + &y),
                    (ast::Operator::Div, Val::LocalPath, _) => Val::LocalPath,
                    (_, Val::Unknown(w), _) | (_, _, Val::Unknown(w)) => Val::Unknown(w),
                    _ => Val::Unknown("an expression".into()),
                }
            }
            ast::Expr::JoinedStr(j) => {
                let mut s = String::new();
                for v in &j.values {
                    let inner = match v {
                        ast::Expr::FormattedValue(f) => self.eval_in(&f.value, at, depth + 1),
                        other => self.eval_in(other, at, depth + 1),
                    };
                    match inner {
                        Val::Str(t) => s.push_str(&t),
                        Val::Unknown(w) => return Val::Unknown(format!("an f-string: {w}")),
                        _ => return Val::Unknown("an f-string".into()),
                    }
                }
                Val::Str(s)
            }
            ast::Expr::Dict(d) => {
                let mut out = Vec::new();
                for (k, v) in d.keys.iter().zip(&d.values) {
                    match k {
                        Some(ast::Expr::Constant(c)) => match &c.value {
                            ast::Constant::Str(k) => {
                                out.push((k.clone(), self.eval_in(v, at, depth + 1)))
                            }
                            _ => return Val::Unknown("a dict with non-string keys".into()),
                        },
                        _ => return Val::Unknown("a dict built from other dicts".into()),
                    }
                }
                Val::Dict(out)
            }
            ast::Expr::Call(c) => {
                let target = self.aliases.dotted(&c.func);
                match target.as_deref() {
                    Some(t) if PATH_BUILDERS.contains(&t) => Val::LocalPath,
                    Some("dict") if c.args.is_empty() => {
                        let mut out = Vec::new();
                        for k in &c.keywords {
                            match &k.arg {
                                Some(a) => out.push((
                                    a.as_str().to_string(),
                                    self.eval_in(&k.value, at, depth + 1),
                                )),
                                None => {
                                    return Val::Unknown("a dict built from other dicts".into());
                                }
                            }
                        }
                        Val::Dict(out)
                    }
                    Some("str") if c.args.len() == 1 => self.eval_in(&c.args[0], at, depth + 1),
                    Some(t) => Val::Unknown(format!("the result of `{t}(…)`")),
                    None => Val::Unknown("the result of a call".into()),
                }
            }
            ast::Expr::Attribute(_) => match self.aliases.dotted(e) {
                Some(d) => Val::Unknown(format!("the attribute `{d}`")),
                None => Val::Unknown("an attribute".into()),
            },
            ast::Expr::Subscript(_) => Val::Unknown("a subscript".into()),
            _ => Val::Unknown("an expression".into()),
        }
    }

    fn lookup(&self, name: &str, at: usize, depth: usize) -> Val {
        let at = at.min(self.scopes.len().saturating_sub(1));
        for i in (0..=at).rev() {
            let Some(b) = self.scopes[i].vars.get(name) else {
                continue;
            };
            return match b {
                Binding::Param => Val::Unknown(format!("`{name}` is a parameter")),
                Binding::Opaque(why) => Val::Unknown(format!("`{name}` is {why}")),
                Binding::Exprs(v) => {
                    let mut vals = v.iter().map(|e| self.eval_in(e, i, depth + 1));
                    let first = vals.next().unwrap_or(Val::Unknown("unassigned".into()));
                    if vals.all(|x| x == first) {
                        first
                    } else {
                        Val::Unknown(format!("`{name}` is assigned different values"))
                    }
                }
            };
        }
        Val::Unknown(format!("`{name}` is not defined in this file"))
    }

    fn eval(&self, e: &ast::Expr) -> Val {
        self.eval_in(e, self.scopes.len() - 1, 0)
    }

    fn keywords(&self, call: &ast::ExprCall) -> Keywords {
        let mut k = Keywords {
            named: Vec::new(),
            opaque_splat: None,
        };
        for kw in &call.keywords {
            match &kw.arg {
                Some(a) => k.named.push((a.as_str().to_string(), self.eval(&kw.value))),
                None => match self.eval(&kw.value) {
                    Val::Dict(d) => k.named.extend(d),
                    Val::Unknown(why) => k.opaque_splat = Some(why),
                    other => k.opaque_splat = Some(quoted(&other)),
                },
            }
        }
        k
    }

    /// Positional argument `i`, unless a `*args` comes before it.
    fn arg(&self, call: &ast::ExprCall, i: usize) -> Option<Val> {
        for (j, a) in call.args.iter().enumerate() {
            if matches!(a, ast::Expr::Starred(_)) {
                return Some(Val::Unknown("passed through *args".into()));
            }
            if j == i {
                return Some(self.eval(a));
            }
        }
        None
    }

    fn arg_or_kw(
        &self,
        call: &ast::ExprCall,
        kw: &Keywords,
        i: usize,
        names: &[&str],
    ) -> Option<Val> {
        self.arg(call, i)
            .or_else(|| names.iter().find_map(|n| kw.get(n).cloned()))
    }

    /// Whether `e` is the output of a `*.dumps(...)` call in this process: the call itself, a
    /// method chain on it (`pickle.dumps(x).replace(...)`), or a local name every assignment of
    /// which is one of those.
    fn is_dumps_output(&self, e: &ast::Expr, seen: &mut Vec<String>, depth: usize) -> bool {
        if depth > MAX_EVAL_DEPTH {
            return false;
        }
        match e {
            ast::Expr::Call(c) => match &*c.func {
                ast::Expr::Attribute(a) if a.attr.as_str() == "dumps" => true,
                ast::Expr::Name(n) if n.id.as_str() == "dumps" => true,
                ast::Expr::Attribute(a) => self.is_dumps_output(&a.value, seen, depth + 1),
                _ => false,
            },
            ast::Expr::Name(n) => {
                let name = n.id.as_str();
                if seen.iter().any(|s| s == name) {
                    return true; // `x = x.replace(...)`: judged by x's other assignments
                }
                let Some(Binding::Exprs(v)) =
                    self.scopes.iter().rev().find_map(|s| s.vars.get(name))
                else {
                    return false;
                };
                seen.push(name.to_string());
                let all = v.iter().all(|x| self.is_dumps_output(x, seen, depth + 1));
                seen.pop();
                all
            }
            _ => false,
        }
    }

    /// Whether the local name `name` is bound, where this call is, by something other than an
    /// import (a local `def load`, a parameter `torch`): then the file's imports do not say what
    /// it is.
    fn shadowed(&self, name: &str) -> bool {
        for s in self.scopes.iter().rev() {
            if let Some(b) = s.vars.get(name) {
                return !matches!(b, Binding::Opaque(w) if w.starts_with("imported"));
            }
        }
        false
    }

    fn judge(&mut self, call: &ast::ExprCall) {
        let mut root = &*call.func;
        while let ast::Expr::Attribute(a) = root {
            root = &a.value;
        }
        let target = match root {
            ast::Expr::Name(n) if self.shadowed(n.id.as_str()) => None,
            _ => self.aliases.dotted(&call.func),
        };
        let attr = match &*call.func {
            ast::Expr::Attribute(a) => Some(a.attr.as_str()),
            _ => None,
        };
        let interesting = call.keywords.iter().any(|k| {
            k.arg.is_none()
                || k.arg
                    .as_ref()
                    .is_some_and(|a| matches!(a.as_str(), "trust_remote_code" | "use_safetensors"))
        }) || attr == Some("from_pretrained")
            || target.as_deref().is_some_and(|t| {
                let last = t.rsplit('.').next().unwrap_or(t);
                matches!(
                    last,
                    "load"
                        | "loads"
                        | "Unpickler"
                        | "read_pickle"
                        | "load_model"
                        | "pipeline"
                        | "SentenceTransformer"
                        | "CrossEncoder"
                        | "SparseEncoder"
                        | "hf_hub_download"
                        | "snapshot_download"
                )
            });
        if !interesting {
            return;
        }
        let kw = self.keywords(call);
        let t = target.as_deref().unwrap_or("");
        let shown = if t.is_empty() { "the call" } else { t };

        if kw.get("trust_remote_code") == Some(&Val::Bool(true)) {
            self.hit(
                rules::HYG_TRUST_REMOTE_CODE,
                call,
                format!("`{shown}` with trust_remote_code=True: the repository's own Python code is imported and run"),
            );
        }

        match t {
            "torch.load" | "torch.serialization.load" => self.torch_load(call, &kw, t),
            _ if PICKLE_LOADERS.contains(&t) => {
                // `pickle.loads(pickle.dumps(x))` (a deep copy, a pickling test) round-trips
                // data of this process: nothing from outside is read.
                let round_trip = t.ends_with(".loads")
                    && call
                        .args
                        .first()
                        .is_some_and(|a| self.is_dumps_output(a, &mut Vec::new(), 0));
                if !round_trip {
                    self.hit(
                        rules::HYG_PICKLE_LOAD,
                        call,
                        format!("`{t}` unpickles its input: a file from outside can run code when loaded"),
                    );
                }
            }
            "numpy.load" => match self.arg_or_kw(call, &kw, 2, &["allow_pickle"]) {
                Some(Val::Bool(true)) => self.hit(
                    rules::HYG_NUMPY_ALLOW_PICKLE,
                    call,
                    "`numpy.load` with allow_pickle=True: object arrays are unpickled".into(),
                ),
                Some(Val::Unknown(why)) => self.hit(
                    rules::HYG_NUMPY_ALLOW_PICKLE,
                    call,
                    format!("`numpy.load` with allow_pickle not provably False: {why}"),
                ),
                _ => {}
            },
            _ if KERAS_LOADERS.contains(&t) => match kw.get("safe_mode") {
                Some(Val::Bool(false)) => self.hit(
                    rules::HYG_KERAS_UNSAFE_MODE,
                    call,
                    format!("`{t}` with safe_mode=False: Lambda layers' bytecode is deserialized"),
                ),
                Some(Val::Unknown(why)) => self.hit(
                    rules::HYG_KERAS_UNSAFE_MODE,
                    call,
                    format!("`{t}` with safe_mode not provably True: {why}"),
                ),
                _ => {}
            },
            "torch.hub.load" => self.torch_hub(call, &kw),
            "transformers.pipeline" | "transformers.pipelines.pipeline" => {
                if let Some(id) = self.arg_or_kw(call, &kw, 1, &["model"]) {
                    self.hub_load(call, &kw, t, id);
                }
            }
            _ if SENTENCE_TRANSFORMERS.contains(&t) => {
                if let Some(id) =
                    self.arg_or_kw(call, &kw, 0, &["model_name_or_path", "model_name"])
                {
                    self.hub_load(call, &kw, t, id);
                }
            }
            "huggingface_hub.hf_hub_download" | "huggingface_hub.file_download.hf_hub_download" => {
                if let Some(id) = self.arg_or_kw(call, &kw, 0, &["repo_id"]) {
                    let file = self.arg_or_kw(call, &kw, 1, &["filename"]);
                    if self.hub_load(call, &kw, t, id.clone())
                        && let (Some(Val::Str(f)), Val::Str(id)) = (file, id)
                    {
                        let lower = f.to_ascii_lowercase();
                        if let Some(ext) = PICKLE_EXTS.iter().find(|e| lower.ends_with(*e)) {
                            self.hit(
                                    rules::HYG_PICKLE_WEIGHTS_DOWNLOAD,
                                    call,
                                    format!("downloads {f:?} ({ext}: a pickle) from {id:?}; fetch the safetensors variant instead"),
                                );
                        }
                    }
                }
            }
            "huggingface_hub.snapshot_download"
            | "huggingface_hub._snapshot_download.snapshot_download" => {
                if let Some(id) = self.arg_or_kw(call, &kw, 0, &["repo_id"]) {
                    self.hub_load(call, &kw, t, id);
                }
            }
            _ if attr == Some("from_pretrained") => {
                // PeftModel.from_pretrained(base_model, "adapter-id"): the id is second.
                let id = if t.starts_with("peft.") {
                    self.arg_or_kw(call, &kw, 1, &["model_id"])
                } else {
                    self.arg_or_kw(
                        call,
                        &kw,
                        0,
                        &[
                            "pretrained_model_name_or_path",
                            "model_id",
                            "repo_id",
                            "model_name_or_path",
                        ],
                    )
                };
                if let Some(id) = id {
                    let is_hub = self.hub_load(call, &kw, shown, id.clone());
                    if is_hub && kw.get("use_safetensors") == Some(&Val::Bool(false)) {
                        self.hit(
                            rules::HYG_PICKLE_WEIGHTS_DOWNLOAD,
                            call,
                            format!("`{shown}` with use_safetensors=False loads the pickle (.bin) weights of {}", quoted(&id)),
                        );
                    }
                }
            }
            _ => {}
        }
    }

    fn torch_load(&mut self, call: &ast::ExprCall, kw: &Keywords, t: &str) {
        let splat = kw
            .opaque_splat
            .as_ref()
            .map(|w| format!("; a **kwargs that could not be resolved ({w}) may set it"))
            .unwrap_or_default();
        match kw.get("weights_only") {
            Some(Val::Bool(true)) => {}
            Some(Val::Bool(false)) => self.hit(
                rules::HYG_TORCH_LOAD_UNSAFE,
                call,
                format!("`{t}` with weights_only=False: the checkpoint is fully unpickled"),
            ),
            None => self.hit(
                rules::HYG_TORCH_LOAD_DEFAULT,
                call,
                format!("`{t}` without weights_only: restricted by default only on PyTorch >= 2.6, a full unpickle before{splat}"),
            ),
            Some(v) => self.hit(
                rules::HYG_TORCH_LOAD_DEFAULT,
                call,
                format!("`{t}` with weights_only not provably True: {}", quoted(v)),
            ),
        }
    }

    fn torch_hub(&mut self, call: &ast::ExprCall, kw: &Keywords) {
        if let Some(Val::Str(src)) = kw.get("source")
            && src != "github"
        {
            return;
        }
        let Some(Val::Str(repo)) = self.arg_or_kw(call, kw, 0, &["repo_or_dir"]) else {
            return;
        };
        let (name, r#ref) = match repo.split_once(':') {
            Some((n, r)) => (n, Some(r)),
            None => (repo.as_str(), None),
        };
        if name.starts_with(['.', '/', '~']) || name.matches('/').count() != 1 {
            return;
        }
        match r#ref {
            Some(r) if names::is_commit(r) => {}
            Some(r) => self.hit(
                rules::HYG_TORCH_HUB_UNPINNED,
                call,
                format!("`torch.hub.load` of {name:?} at {r:?}, a branch or tag: its hubconf.py runs as whatever that ref points to"),
            ),
            None => self.hit(
                rules::HYG_TORCH_HUB_UNPINNED,
                call,
                format!("`torch.hub.load` of {name:?} without a ref: its hubconf.py runs from the default branch as it is at load time"),
            ),
        }
    }

    /// The hub rules for a load of `id`. Returns whether `id` is a hub repository id.
    fn hub_load(&mut self, call: &ast::ExprCall, kw: &Keywords, what: &str, id: Val) -> bool {
        let Val::Str(id) = id else {
            return false;
        };
        if !names::is_hub_id(&id) {
            return false;
        }
        if let Some(Val::Str(rt)) = kw.get("repo_type")
            && rt != "model"
        {
            return false;
        }
        let allow = self.allow;
        let vetting = allow.map(|a| a.lookup(&id));
        let status = match &vetting {
            None => String::new(),
            Some(Vetting::Model { .. }) => " (approved model)".into(),
            Some(Vetting::Publisher) => format!(
                " (approved publisher `{}`)",
                names::publisher(&id).unwrap_or_default()
            ),
            Some(Vetting::Unvetted) => " (unvetted)".into(),
        };
        let unpinned = |why: String| format!("`{what}` loads {id:?}{status} {why}");
        match kw.get("revision") {
            Some(Val::Str(r)) if names::is_commit(r) => {
                if let Some(Vetting::Model { revisions }) = &vetting
                    && !revisions.is_empty()
                    && !revisions.contains(&r.to_ascii_lowercase())
                {
                    let msg = format!(
                        "`{what}` loads {id:?} at commit {r}, which the allow-list does not approve (approved: {})",
                        revisions.join(", ")
                    );
                    self.hit(rules::HYG_REVISION_NOT_APPROVED, call, msg);
                }
            }
            Some(Val::Str(r)) => {
                let m = unpinned(format!(
                    "at revision {r:?}, a branch or tag that can move (pin a 40-hex commit)"
                ));
                self.hit(rules::HYG_UNPINNED_REVISION, call, m);
            }
            None | Some(Val::NoneV) => {
                let m = match &kw.opaque_splat {
                    Some(w) => unpinned(format!(
                        "without a revision (a **kwargs that could not be resolved, {w}, may carry one): not provably pinned"
                    )),
                    None => {
                        unpinned("without a revision: whatever `main` points to at run time".into())
                    }
                };
                self.hit(rules::HYG_UNPINNED_REVISION, call, m);
            }
            Some(v) => {
                let m = unpinned(format!(
                    "with a revision not provable as a pinned commit: {}",
                    quoted(v)
                ));
                self.hit(rules::HYG_UNPINNED_REVISION, call, m);
            }
        }
        if matches!(vetting, Some(Vetting::Unvetted)) {
            let sources = allow.map(|a| a.sources.join(", ")).unwrap_or_default();
            self.hit(
                rules::HYG_UNVETTED_MODEL,
                call,
                format!("`{what}` loads {id:?}: neither the model nor its publisher is approved by {sources}"),
            );
        }
        if !matches!(vetting, Some(Vetting::Model { .. })) {
            let extra = allow.map(|a| a.model_ids());
            let squat = match extra {
                Some(e) => names::typosquat(&id, e),
                None => names::typosquat(&id, std::iter::empty()),
            };
            if let Some(s) = squat {
                self.hit(
                    rules::HYG_TYPOSQUAT,
                    call,
                    format!(
                        "{id:?} resembles {:?} ({}): a typo or a squatted look-alike repository",
                        s.resembles, s.how
                    ),
                );
            }
        }
        true
    }

    fn enter(&mut self) -> bool {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            self.too_deep = true;
            return false;
        }
        true
    }
}

impl Visitor for Walker<'_> {
    fn visit_stmt(&mut self, node: ast::Stmt) {
        if self.enter() {
            self.generic_visit_stmt(node);
        }
        self.depth -= 1;
    }

    fn visit_expr(&mut self, node: ast::Expr) {
        if self.enter() {
            self.generic_visit_expr(node);
        }
        self.depth -= 1;
    }

    fn visit_stmt_import(&mut self, node: ast::StmtImport) {
        self.aliases.add_import(&node);
    }

    fn visit_stmt_import_from(&mut self, node: ast::StmtImportFrom) {
        self.aliases.add_import_from(&node);
    }

    fn visit_stmt_function_def(&mut self, node: ast::StmtFunctionDef) {
        self.visit_function(*node.args, node.body, node.decorator_list);
    }

    fn visit_stmt_async_function_def(&mut self, node: ast::StmtAsyncFunctionDef) {
        self.visit_function(*node.args, node.body, node.decorator_list);
    }

    fn visit_expr_lambda(&mut self, node: ast::ExprLambda) {
        // Lambda parameters shadow outer constants too.
        let scope = Scope::params(&node.args);
        self.visit_arguments(*node.args);
        self.scopes.push(scope);
        self.visit_expr(*node.body);
        self.scopes.pop();
    }

    fn visit_expr_call(&mut self, node: ast::ExprCall) {
        self.judge(&node);
        self.generic_visit_expr_call(node);
    }
}
