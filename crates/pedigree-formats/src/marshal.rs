//! A bounded reader for CPython `marshal` data holding a code object (Keras Lambda layers store
//! `marshal.dumps(func.__code__)`, FORMATS-FACTS §8.1). It lists what the code references, the
//! names (`co_names`: globals and attributes), string constants and nested code objects, and
//! never executes anything.
//!
//! The marshal format of code objects changed with CPython versions and the data does not say
//! which wrote it, so each known layout is tried and the first that decodes the whole input wins.

use serde::Serialize;

const MAX_DEPTH: usize = 64;
const MAX_OBJECTS: usize = 200_000;
const MAX_STRING: usize = 1 << 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Layout {
    /// CPython 3.11 and later.
    Py311,
    /// CPython 3.8 – 3.10 (`co_posonlyargcount` added, `co_nlocals` still there).
    Py38,
    /// CPython 3.0 – 3.7.
    Py30,
}

#[derive(Debug, Clone)]
enum Obj {
    Str(String),
    Tuple(Vec<Obj>),
    Code(Box<CodeSummary>),
    Other,
}

/// What a code object (and the code objects nested in it) references.
#[derive(Debug, Clone, Default, Serialize)]
pub struct CodeSummary {
    pub name: String,
    /// `co_names` of this code object and every nested one, in order, deduplicated.
    pub names: Vec<String>,
    /// String constants of this code object and every nested one.
    pub strings: Vec<String>,
    pub nested: usize,
}

struct R<'a> {
    d: &'a [u8],
    p: usize,
    refs: Vec<Obj>,
    budget: usize,
    layout: Layout,
}

type Res<T> = Result<T, String>;

impl<'a> R<'a> {
    fn take(&mut self, n: usize) -> Res<&'a [u8]> {
        if n > self.d.len() - self.p {
            return Err(format!("truncated at offset {}", self.p));
        }
        let s = &self.d[self.p..self.p + n];
        self.p += n;
        Ok(s)
    }
    fn u8(&mut self) -> Res<u8> {
        Ok(self.take(1)?[0])
    }
    fn i32(&mut self) -> Res<i32> {
        Ok(i32::from_le_bytes(
            self.take(4)?.try_into().map_err(|_| "short")?,
        ))
    }
    fn count(&mut self) -> Res<usize> {
        let n = self.i32()?;
        // every element takes at least one byte
        if n < 0 || n as usize > self.d.len() - self.p {
            return Err(format!("count {n} beyond the data at offset {}", self.p));
        }
        Ok(n as usize)
    }

    fn obj(&mut self, depth: usize) -> Res<Obj> {
        if depth > MAX_DEPTH {
            return Err("nesting too deep".into());
        }
        self.budget = self.budget.checked_sub(1).ok_or("too many objects")?;
        let at = self.p;
        let t = self.u8()?;
        let flag = t & 0x80 != 0;
        let code = t & 0x7f;
        // Containers reserve their ref slot before their contents (as CPython's r_ref_reserve).
        let slot = if flag {
            if self.refs.len() >= MAX_OBJECTS {
                return Err("too many references".into());
            }
            self.refs.push(Obj::Other);
            Some(self.refs.len() - 1)
        } else {
            None
        };
        let o = match code {
            b'0' | b'N' | b'F' | b'T' | b'S' | b'.' => Obj::Other,
            b'i' => {
                self.take(4)?;
                Obj::Other
            }
            b'I' => {
                self.take(8)?;
                Obj::Other
            }
            b'l' => {
                let n = self.i32()?;
                let digits = n.unsigned_abs() as usize;
                self.take(digits.checked_mul(2).ok_or("long too large")?)?;
                Obj::Other
            }
            b'g' => {
                self.take(8)?;
                Obj::Other
            }
            b'y' => {
                self.take(16)?;
                Obj::Other
            }
            b'f' => {
                let n = self.u8()? as usize;
                self.take(n)?;
                Obj::Other
            }
            b'x' => {
                for _ in 0..2 {
                    let n = self.u8()? as usize;
                    self.take(n)?;
                }
                Obj::Other
            }
            b's' => {
                let n = self.count()?;
                self.take(n)?;
                Obj::Other
            }
            b't' | b'u' | b'a' | b'A' => {
                let n = self.count()?;
                if n > MAX_STRING {
                    return Err(format!("string of {n} bytes"));
                }
                Obj::Str(String::from_utf8_lossy(self.take(n)?).into_owned())
            }
            b'z' | b'Z' => {
                let n = self.u8()? as usize;
                Obj::Str(String::from_utf8_lossy(self.take(n)?).into_owned())
            }
            b'(' | b'[' | b'<' | b'>' => {
                let n = self.count()?;
                let mut v = Vec::with_capacity(n.min(1024));
                for _ in 0..n {
                    v.push(self.obj(depth + 1)?);
                }
                Obj::Tuple(v)
            }
            b')' => {
                let n = self.u8()? as usize;
                let mut v = Vec::with_capacity(n);
                for _ in 0..n {
                    v.push(self.obj(depth + 1)?);
                }
                Obj::Tuple(v)
            }
            b'{' => {
                loop {
                    if self.d.get(self.p) == Some(&b'0') {
                        self.p += 1;
                        break;
                    }
                    self.obj(depth + 1)?;
                    self.obj(depth + 1)?;
                }
                Obj::Other
            }
            b':' => {
                // slice (3.14): start, stop, step
                for _ in 0..3 {
                    self.obj(depth + 1)?;
                }
                Obj::Other
            }
            b'r' => {
                let i = self.i32()?;
                let o = usize::try_from(i)
                    .ok()
                    .and_then(|i| self.refs.get(i))
                    .cloned()
                    .ok_or_else(|| format!("bad reference {i} at offset {at}"))?;
                // a reference re-uses an object: charge the budget for what it holds
                let weight = match &o {
                    Obj::Tuple(v) => v.len(),
                    _ => 1,
                };
                self.budget = self.budget.checked_sub(weight).ok_or("too many objects")?;
                o
            }
            b'c' => Obj::Code(Box::new(self.code(depth)?)),
            other => {
                return Err(format!(
                    "unknown marshal type {:?} at offset {at}",
                    other as char
                ));
            }
        };
        if let Some(s) = slot {
            self.refs[s] = o.clone();
        }
        Ok(o)
    }

    fn code(&mut self, depth: usize) -> Res<CodeSummary> {
        let ints = match self.layout {
            Layout::Py311 | Layout::Py30 => 5,
            Layout::Py38 => 6,
        };
        for _ in 0..ints {
            self.i32()?;
        }
        let mut s = CodeSummary::default();
        self.obj(depth + 1)?; // co_code
        let consts = self.obj(depth + 1)?;
        let names = self.obj(depth + 1)?;
        let (before_name, after_line) = match self.layout {
            // localsplusnames, localspluskinds, filename | linetable, exceptiontable
            Layout::Py311 => (3, 2),
            // varnames, freevars, cellvars, filename | lnotab
            Layout::Py38 | Layout::Py30 => (4, 1),
        };
        for _ in 0..before_name {
            self.obj(depth + 1)?;
        }
        if let Obj::Str(n) = self.obj(depth + 1)? {
            s.name = n;
        }
        if self.layout == Layout::Py311 {
            self.obj(depth + 1)?; // qualname
        }
        self.i32()?; // firstlineno
        for _ in 0..after_line {
            self.obj(depth + 1)?;
        }
        if let Obj::Tuple(v) = names {
            for n in v {
                if let Obj::Str(n) = n {
                    push_unique(&mut s.names, n);
                }
            }
        }
        if let Obj::Tuple(v) = consts {
            for c in v {
                match c {
                    Obj::Str(x) => push_unique(&mut s.strings, x),
                    Obj::Code(inner) => {
                        s.nested += 1 + inner.nested;
                        for n in inner.names {
                            push_unique(&mut s.names, n);
                        }
                        for x in inner.strings {
                            push_unique(&mut s.strings, x);
                        }
                    }
                    Obj::Tuple(t) => {
                        for x in t {
                            if let Obj::Str(x) = x {
                                push_unique(&mut s.strings, x);
                            }
                        }
                    }
                    Obj::Other => {}
                }
            }
        }
        Ok(s)
    }
}

fn push_unique(v: &mut Vec<String>, s: String) {
    if v.len() < 4096 && !v.contains(&s) {
        v.push(s);
    }
}

/// Decodes `marshal.dumps(code)` and summarises the code object.
pub fn read_code(data: &[u8]) -> Result<(Layout, CodeSummary), String> {
    let mut first_err = None;
    for layout in [Layout::Py311, Layout::Py38, Layout::Py30] {
        let mut r = R {
            d: data,
            p: 0,
            refs: Vec::new(),
            budget: MAX_OBJECTS,
            layout,
        };
        match r.obj(0) {
            Ok(Obj::Code(c)) if r.p == data.len() => return Ok((layout, *c)),
            Ok(Obj::Code(_)) => {
                first_err.get_or_insert_with(|| {
                    format!("{} bytes after the code object", data.len() - r.p)
                });
            }
            Ok(_) => return Err("marshal data is not a code object".into()),
            Err(e) => {
                first_err.get_or_insert(e);
            }
        }
    }
    Err(first_err.unwrap_or_else(|| "unreadable marshal data".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `marshal.dumps((lambda x: __import__('os').system('id')).__code__)` from CPython 3.11.7.
    const PY311: &str = "e30100000000000000000000000300000003000000f34600000097007401000000000000000000006401a6010000ab010000000000000000a00100000000000000000000000000000000000000006402a6010000ab010000000000000000530029034eda026f73da0269642902da0a5f5f696d706f72745f5fda0673797374656d2901da0178730100000020fa083c737472696e673efa083c6c616d6264613e720800000002000000731c0000008000ad7ab824d12f3fd42f3fd72f46d22f46c074d12f4cd42f4c8000f300000000";

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap_or(0))
            .collect()
    }

    #[test]
    fn decodes_cpython_311() {
        let (layout, c) = read_code(&hex(PY311)).expect("decodes");
        assert_eq!(layout, Layout::Py311);
        assert_eq!(c.name, "<lambda>");
        assert!(c.names.contains(&"__import__".to_string()), "{c:?}");
        assert!(c.names.contains(&"system".to_string()));
        assert!(c.strings.contains(&"os".to_string()));
    }

    #[test]
    fn random_inputs_never_panic() {
        crate::fuzz_util::mutate_many(&hex(PY311), 4000, 0x3a, |d| {
            let _ = read_code(d);
        });
    }
}
