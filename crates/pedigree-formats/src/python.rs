//! Python-source helpers shared by the remote-code analysis ([`crate::hf_repo`]) and
//! `pedigree-hygiene`: the parse guard (bracket nesting, a large stack for the recursive parser
//! and walks), line/column arithmetic, and import-alias resolution of dotted names.
//!
//! Nothing here imports or runs the analysed code.

use std::collections::HashMap;

use rustpython_parser::ast;

/// Deepest bracket nesting accepted before parsing (the parser and AST walks recurse on it).
pub const MAX_NESTING: usize = 200;
/// Stack for the thread that parses and walks one file: the parser recurses on the expression
/// tree, and long operator chains (`a+a+a+…`) are deep even without brackets.
pub const PARSE_STACK: usize = 256 << 20;

/// The deepest `([{` nesting in the text (strings and comments included: an over-estimate is
/// only a refusal, never a missed overflow).
pub fn max_nesting(src: &str) -> usize {
    let (mut d, mut m) = (0usize, 0usize);
    for c in src.bytes() {
        match c {
            b'(' | b'[' | b'{' => {
                d += 1;
                m = m.max(d);
            }
            b')' | b']' | b'}' => d = d.saturating_sub(1),
            _ => {}
        }
    }
    m
}

/// Runs `f` on a fresh thread with [`PARSE_STACK`] of stack; `Err` if the thread could not
/// start or `f` panicked.
pub fn on_big_stack<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, String> {
    std::thread::Builder::new()
        .stack_size(PARSE_STACK)
        .spawn(f)
        .map_err(|e| e.to_string())?
        .join()
        .map_err(|_| "parser failed".to_string())
}

/// Byte offsets where each line starts (line 1 at index 0).
pub fn line_starts(s: &str) -> Vec<usize> {
    std::iter::once(0)
        .chain(s.match_indices('\n').map(|(i, _)| i + 1))
        .collect()
}

/// 1-based line of a byte offset.
pub fn line_of(starts: &[usize], offset: usize) -> usize {
    starts.partition_point(|&s| s <= offset)
}

/// 1-based (line, column) of a byte offset; the column counts characters, not bytes.
pub fn line_col(src: &str, starts: &[usize], offset: usize) -> (usize, usize) {
    let line = line_of(starts, offset).max(1);
    let start = starts[line - 1];
    let end = offset.min(src.len()).max(start);
    let col = src
        .get(start..end)
        .map(|s| s.chars().count())
        .unwrap_or(end - start);
    (line, col + 1)
}

/// Local names bound by `import` / `from … import`, mapped to the dotted names they stand for
/// (`import subprocess as sp` binds `sp` → `subprocess`). Flow-insensitive: an import anywhere
/// in the file counts for the whole file.
#[derive(Debug, Default, Clone)]
pub struct Aliases {
    map: HashMap<String, String>,
}

impl Aliases {
    pub fn add_import(&mut self, node: &ast::StmtImport) {
        for a in &node.names {
            let full = a.name.as_str().to_string();
            match &a.asname {
                Some(as_) => {
                    self.map.insert(as_.as_str().to_string(), full);
                }
                None => {
                    let first = full.split('.').next().unwrap_or("").to_string();
                    self.map.insert(first.clone(), first);
                }
            }
        }
    }

    pub fn add_import_from(&mut self, node: &ast::StmtImportFrom) {
        let module = node
            .module
            .as_ref()
            .map(|m| m.as_str().to_string())
            .unwrap_or_default();
        for a in &node.names {
            let name = a.name.as_str();
            if name == "*" {
                continue;
            }
            let local = a
                .asname
                .as_ref()
                .map(|x| x.as_str())
                .unwrap_or(name)
                .to_string();
            let full = if module.is_empty() {
                name.to_string()
            } else {
                format!("{module}.{name}")
            };
            self.map.insert(local, full);
        }
    }

    /// What a local name was imported as, if it was.
    pub fn get(&self, local: &str) -> Option<&str> {
        self.map.get(local).map(String::as_str)
    }

    /// `a.b.c` for a name/attribute chain, with the first name resolved through the imports.
    /// Bounded by the expression's own depth (the callers run on a large stack).
    pub fn dotted(&self, e: &ast::Expr) -> Option<String> {
        match e {
            ast::Expr::Name(n) => {
                let id = n.id.as_str();
                Some(
                    self.get(id)
                        .map(str::to_string)
                        .unwrap_or_else(|| id.to_string()),
                )
            }
            ast::Expr::Attribute(a) => {
                Some(format!("{}.{}", self.dotted(&a.value)?, a.attr.as_str()))
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_count_characters() {
        let s = "ab\nцdx\n";
        let st = line_starts(s);
        assert_eq!(line_col(s, &st, 0), (1, 1));
        // 'x' is after a two-byte Cyrillic letter and 'd'.
        assert_eq!(line_col(s, &st, 6), (2, 3));
    }

    #[test]
    fn nesting() {
        assert_eq!(max_nesting("f([{x}])"), 3);
        assert_eq!(max_nesting("))(("), 2);
    }
}
