//! Jinja chat templates (GGUF `tokenizer.chat_template*`, `tokenizer_config.json`) judged on their
//! syntax tree, never with regexes over the text (FORMATS-FACTS §6.4).
//!
//! The template is parsed with minijinja's parser (`unstable_machinery`; Jinja2's grammar, which
//! is what llama-cpp-python, vLLM and transformers render with) and the tree is walked for what a
//! sandbox escape needs and a chat template never does:
//! * attribute or item access to private names (`_x`, `__class__`, `__globals__`, `mro` ...), also
//!   when the name is assembled from constants (`'__cla' ~ 'ss__'`) or read through the `attr`
//!   filter;
//! * reaching Jinja's or Flask's globals (`lipsum`, `cycler`, `joiner`, `self`, `url_for` ...),
//!   attributes of template functions (`namespace.__init__`), or Python builtins and modules;
//! * calls of methods that run processes, import, read or write files (`popen`, `system`,
//!   `import_module`, `read`, `write` ...), and `str.format` with attribute lookups in the format
//!   string (the CVE-2024-56326 escape) or `%c` character assembly.
//!
//! Ordinary templates (Llama 3, Mistral, Qwen2, Gemma, Phi-3, ChatML ...) use none of these.

use std::collections::BTreeSet;

use minijinja::machinery::ast::{CallArg, Expr, Stmt};
use minijinja::machinery::{self};
use serde::Serialize;

/// Templates longer than this are not parsed (a chat template is a few KiB).
pub const MAX_TEMPLATE: usize = 1 << 20;
const MAX_DEPTH: usize = 200;

#[derive(Debug, Clone, Serialize)]
pub struct Escape {
    pub line: u32,
    pub what: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct TemplateReport {
    /// Where the template came from (a GGUF key, a JSON field).
    pub key: String,
    /// The template could not be parsed (the loader would fail too, or it uses syntax we lack).
    pub parse_error: Option<String>,
    pub escapes: Vec<Escape>,
}

const GLOBAL_VARS: &[&str] = &[
    "lipsum",
    "cycler",
    "joiner",
    "self",
    "url_for",
    "get_flashed_messages",
    "os",
    "sys",
    "subprocess",
    "builtins",
    "__builtins__",
    "importlib",
    "__import__",
    "eval",
    "exec",
    "getattr",
    "globals",
    "locals",
    "vars",
    "open",
    "compile",
    "config",
    "request",
];
/// Template functions that are legitimately called, but whose attributes are never read.
const TEMPLATE_FUNCTIONS: &[&str] = &[
    "namespace",
    "range",
    "dict",
    "raise_exception",
    "strftime_now",
];
const PY_INTERNAL_ATTRS: &[&str] = &[
    "mro",
    "func_globals",
    "func_code",
    "f_globals",
    "f_locals",
    "f_back",
    "f_builtins",
    "gi_frame",
    "gi_code",
    "cr_frame",
    "cr_code",
    "ag_frame",
    "tb_frame",
    "tb_next",
    "co_code",
    "im_func",
    "im_self",
    "environment",
];
const DANGER_METHODS: &[&str] = &[
    "popen",
    "system",
    "spawn",
    "spawnv",
    "spawnl",
    "execv",
    "execve",
    "check_output",
    "check_call",
    "Popen",
    "exec_module",
    "load_module",
    "import_module",
    "get_data",
    "read",
    "readlines",
    "write",
    "writelines",
    "eval",
    "exec",
    "compile",
    "getattr",
    "setattr",
    "delattr",
    "mro",
    "format_map",
    "remove",
    "unlink",
    "rmdir",
    "rmtree",
    "open",
    "fork",
    "kill",
    "listdir",
    "urlopen",
    "communicate",
    "load",
    "loads",
];

struct Walker {
    escapes: Vec<Escape>,
    seen: BTreeSet<(u32, String)>,
}

impl Walker {
    fn flag(&mut self, line: u16, what: String) {
        if self.escapes.len() < 64 && self.seen.insert((line as u32, what.clone())) {
            self.escapes.push(Escape {
                line: line as u32,
                what,
            });
        }
    }

    fn stmts(&mut self, stmts: &[Stmt], depth: usize) {
        for s in stmts {
            self.stmt(s, depth + 1);
        }
    }

    fn stmt(&mut self, s: &Stmt, depth: usize) {
        if depth > MAX_DEPTH {
            return;
        }
        match s {
            Stmt::Template(t) => self.stmts(&t.children, depth),
            Stmt::EmitExpr(e) => self.expr(&e.expr, depth),
            Stmt::EmitRaw(_) => {}
            Stmt::ForLoop(f) => {
                self.expr(&f.target, depth);
                self.expr(&f.iter, depth);
                if let Some(e) = &f.filter_expr {
                    self.expr(e, depth);
                }
                self.stmts(&f.body, depth);
                self.stmts(&f.else_body, depth);
            }
            Stmt::IfCond(i) => {
                self.expr(&i.expr, depth);
                self.stmts(&i.true_body, depth);
                self.stmts(&i.false_body, depth);
            }
            Stmt::WithBlock(w) => {
                for (a, b) in &w.assignments {
                    self.expr(a, depth);
                    self.expr(b, depth);
                }
                self.stmts(&w.body, depth);
            }
            Stmt::Set(s) => {
                self.expr(&s.target, depth);
                self.expr(&s.expr, depth);
            }
            Stmt::SetBlock(s) => {
                self.expr(&s.target, depth);
                if let Some(f) = &s.filter {
                    self.expr(f, depth);
                }
                self.stmts(&s.body, depth);
            }
            Stmt::AutoEscape(a) => {
                self.expr(&a.enabled, depth);
                self.stmts(&a.body, depth);
            }
            Stmt::FilterBlock(f) => {
                self.expr(&f.filter, depth);
                self.stmts(&f.body, depth);
            }
            Stmt::Block(b) => self.stmts(&b.body, depth),
            Stmt::Import(i) => {
                self.flag(i.span().start_line, "imports another template".into());
                self.expr(&i.expr, depth);
            }
            Stmt::FromImport(i) => {
                self.flag(i.span().start_line, "imports from another template".into());
                self.expr(&i.expr, depth);
            }
            Stmt::Extends(e) => {
                self.flag(e.span().start_line, "extends another template".into());
                self.expr(&e.name, depth);
            }
            Stmt::Include(i) => {
                self.flag(i.span().start_line, "includes another template".into());
                self.expr(&i.name, depth);
            }
            Stmt::Macro(m) => {
                for e in m.args.iter().chain(&m.defaults) {
                    self.expr(e, depth);
                }
                self.stmts(&m.body, depth);
            }
            Stmt::CallBlock(c) => {
                self.call(&c.call, c.call.span().start_line, depth);
                self.stmts(&c.macro_decl.body, depth);
            }
            Stmt::Continue(_) | Stmt::Break(_) => {}
            Stmt::Do(d) => self.call(&d.call, d.call.span().start_line, depth),
        }
    }

    fn args(&mut self, args: &[CallArg], depth: usize) {
        for a in args {
            match a {
                CallArg::Pos(e) | CallArg::PosSplat(e) | CallArg::KwargSplat(e) => {
                    self.expr(e, depth)
                }
                CallArg::Kwarg(_, e) => self.expr(e, depth),
            }
        }
    }

    fn call(&mut self, c: &minijinja::machinery::ast::Call, line: u16, depth: usize) {
        match &c.expr {
            Expr::GetAttr(g) => {
                let m = g.name;
                if DANGER_METHODS.contains(&m) {
                    self.flag(line, format!("calls .{m}(), which a chat template has no use for"));
                }
                if m == "format" {
                    match const_str(&g.expr) {
                        Some(s) if !format_is_plain(&s) => {
                            self.flag(line, format!("str.format with attribute or item lookups in {s:?}"))
                        }
                        Some(_) => {}
                        None => self.flag(line, "str.format on a computed format string".into()),
                    }
                }
            }
            Expr::Var(v) if GLOBAL_VARS.contains(&v.id) => {
                self.flag(line, format!("calls {}(), a Python builtin or module that templates cannot reach in a sandbox", v.id))
            }
            _ => {}
        }
        self.expr(&c.expr, depth);
        self.args(&c.args, depth);
    }

    fn expr(&mut self, e: &Expr, depth: usize) {
        if depth > MAX_DEPTH {
            return;
        }
        let depth = depth + 1;
        let line = e.span().start_line;
        // A constant that folds to a dunder name is only ever built to reach Python internals.
        if !matches!(e, Expr::Var(_)) {
            if let Some(s) = const_str(e) {
                if is_dunder(&s) {
                    self.flag(line, format!("builds the name {s:?}"));
                }
            }
        }
        match e {
            Expr::Var(v) => {
                if GLOBAL_VARS.contains(&v.id) {
                    self.flag(
                        line,
                        format!(
                            "reaches {:?}, a global that gives access to Python objects",
                            v.id
                        ),
                    );
                }
            }
            Expr::Const(_) => {}
            Expr::Slice(s) => {
                self.expr(&s.expr, depth);
                for x in [&s.start, &s.stop, &s.step].into_iter().flatten() {
                    self.expr(x, depth);
                }
            }
            Expr::UnaryOp(u) => self.expr(&u.expr, depth),
            Expr::BinOp(b) => {
                self.expr(&b.left, depth);
                self.expr(&b.right, depth);
            }
            Expr::Compare(c) => {
                self.expr(&c.expr, depth);
                for op in &c.ops {
                    self.expr(&op.expr, depth);
                }
            }
            Expr::IfExpr(i) => {
                self.expr(&i.test_expr, depth);
                self.expr(&i.true_expr, depth);
                if let Some(f) = &i.false_expr {
                    self.expr(f, depth);
                }
            }
            Expr::Filter(f) => {
                match f.name {
                    "attr" => match f.args.first() {
                        Some(CallArg::Pos(a)) => match const_str(a) {
                            Some(s) if s.starts_with('_') => self.flag(
                                line,
                                format!("reads the private attribute {s:?} through |attr"),
                            ),
                            Some(_) => {}
                            None => self.flag(
                                line,
                                "reads an attribute whose name is computed, through |attr".into(),
                            ),
                        },
                        _ => self.flag(
                            line,
                            "reads an attribute whose name is computed, through |attr".into(),
                        ),
                    },
                    "format" => {
                        if let Some(s) = f.expr.as_ref().and_then(const_str) {
                            if s.contains("%c") {
                                self.flag(line, format!("assembles characters with {s:?}|format"));
                            }
                        }
                    }
                    _ => {}
                }
                for a in &f.args {
                    if let CallArg::Kwarg("attribute", v) = a {
                        if const_str(v).is_some_and(|s| {
                            s.starts_with('_') || s.contains("._") || s.contains("__")
                        }) {
                            self.flag(line, format!("|{} over a private attribute", f.name));
                        }
                    }
                }
                if let Some(x) = &f.expr {
                    self.expr(x, depth);
                }
                self.args(&f.args, depth);
            }
            Expr::Test(t) => {
                self.expr(&t.expr, depth);
                self.args(&t.args, depth);
            }
            Expr::GetAttr(g) => {
                if g.name.starts_with('_') || PY_INTERNAL_ATTRS.contains(&g.name) {
                    self.flag(line, format!("reads the attribute {:?}", g.name));
                }
                if let Expr::Var(v) = &g.expr {
                    if TEMPLATE_FUNCTIONS.contains(&v.id) {
                        self.flag(
                            line,
                            format!(
                                "reads the attribute {:?} of the template function {:?}",
                                g.name, v.id
                            ),
                        );
                    }
                }
                self.expr(&g.expr, depth);
            }
            Expr::GetItem(g) => {
                if let Some(s) = const_str(&g.subscript_expr) {
                    if s.starts_with('_') || PY_INTERNAL_ATTRS.contains(&s.as_str()) {
                        self.flag(line, format!("reads the item {s:?}"));
                    }
                }
                self.expr(&g.expr, depth);
                self.expr(&g.subscript_expr, depth);
            }
            Expr::Call(c) => self.call(c, line, depth),
            Expr::List(l) => {
                for x in &l.items {
                    self.expr(x, depth);
                }
            }
            Expr::Tuple(l) => {
                for x in &l.items {
                    self.expr(x, depth);
                }
            }
            Expr::Map(m) => {
                for x in m.keys.iter().chain(&m.values) {
                    self.expr(x, depth);
                }
            }
        }
    }
}

fn const_str(e: &Expr) -> Option<String> {
    e.as_const().and_then(|v| v.as_str().map(str::to_string))
}

fn is_dunder(s: &str) -> bool {
    s.len() > 4
        && s.starts_with("__")
        && s.ends_with("__")
        && s[2..s.len() - 2]
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// A format string whose fields are plain (`{}`, `{0}`, `{name}`, with format specs).
fn format_is_plain(s: &str) -> bool {
    let mut rest = s;
    while let Some(i) = rest.find('{') {
        let after = &rest[i + 1..];
        if after.starts_with('{') {
            rest = &after[1..];
            continue;
        }
        let end = after.find('}').unwrap_or(after.len());
        let field = &after[..end];
        let name = field.split([':', '!']).next().unwrap_or("");
        if name.contains('.') || name.contains('[') {
            return false;
        }
        rest = &after[end.min(after.len())..];
    }
    true
}

/// Removes the `{% generation %}` / `{% endgeneration %}` tags that transformers adds to Jinja
/// (assistant-mask markers with no effect on rendering), which a plain Jinja parser rejects.
fn strip_hf_tags(src: &str) -> String {
    let mut out = String::with_capacity(src.len());
    let mut rest = src;
    while let Some(i) = rest.find("{%") {
        out.push_str(&rest[..i]);
        let tail = &rest[i..];
        let Some(end) = tail[2..].find("%}").map(|e| e + 2) else {
            out.push_str(tail);
            return out;
        };
        let inner = tail[2..end].trim_matches(|c: char| c == '-' || c == '+' || c.is_whitespace());
        if inner == "generation" || inner == "endgeneration" {
            // drop the tag
        } else {
            out.push_str(&tail[..end + 2]);
        }
        rest = &tail[end + 2..];
    }
    out.push_str(rest);
    out
}

/// Parses and judges one template.
pub fn check(key: &str, source: &str) -> TemplateReport {
    let mut report = TemplateReport {
        key: key.to_string(),
        parse_error: None,
        escapes: Vec::new(),
    };
    if source.len() > MAX_TEMPLATE {
        report.parse_error = Some(format!(
            "template of {} bytes is over the {MAX_TEMPLATE}-byte limit",
            source.len()
        ));
        return report;
    }
    let cleaned = strip_hf_tags(source);
    let parsed = std::panic::catch_unwind(|| {
        machinery::parse(&cleaned, "chat_template", Default::default()).map(|ast| {
            let mut w = Walker {
                escapes: Vec::new(),
                seen: BTreeSet::new(),
            };
            w.stmt(&ast, 0);
            w.escapes
        })
    });
    match parsed {
        Ok(Ok(escapes)) => report.escapes = escapes,
        Ok(Err(e)) => report.parse_error = Some(e.to_string()),
        Err(_) => report.parse_error = Some("the template parser failed on this input".into()),
    }
    report
}

#[cfg(test)]
mod tests {
    use super::*;

    fn escapes(t: &str) -> Vec<String> {
        let r = check("t", t);
        assert!(r.parse_error.is_none(), "{t}: {:?}", r.parse_error);
        r.escapes.into_iter().map(|e| e.what).collect()
    }

    #[test]
    fn classic_payloads_are_caught() {
        for t in [
            "{{ ''.__class__.__mro__[1].__subclasses__() }}",
            "{{ cycler.__init__.__globals__.os.popen('id').read() }}",
            "{{ lipsum['__globals__']['os'] }}",
            "{{ ''|attr('__cla' ~ 'ss__') }}",
            "{% set x = '__cla' + 'ss__' %}{{ ''|attr(x) }}",
            "{{ self._TemplateReference__context }}",
            "{{ namespace.__init__ }}",
            "{{ '{0.__class__}'.format(messages) }}",
            "{{ ('%c%c'|format(95, 95)) }}",
            "{% for m in messages %}{{ m.content.__class__ }}{% endfor %}",
            "{{ messages|map(attribute='__class__')|list }}",
        ] {
            assert!(!escapes(t).is_empty(), "{t} not caught");
        }
    }

    #[test]
    fn ordinary_templates_are_clean() {
        for t in [
            "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}",
            "{%- set ns = namespace(found=false) -%}{%- for m in messages -%}{%- if m.role == 'system' -%}{%- set ns.found = true -%}{%- endif -%}{%- endfor -%}{{ ns.found }}{{ messages[0]['content'] | trim }}{{ raise_exception('x') if false }}{{ '{}'.format(1) }}",
            "{% generation %}{{ x }}{% endgeneration %}",
        ] {
            assert!(escapes(t).is_empty(), "{t}: {:?}", escapes(t));
        }
    }

    #[test]
    fn random_inputs_never_panic() {
        let base =
            b"{{ ''.__class__ }}{% for m in messages %}{{ m['content'] | trim }}{% endfor %}";
        crate::fuzz_util::mutate_many(base, 3000, 0x77, |d| {
            let _ = check("t", &String::from_utf8_lossy(d));
        });
    }
}
