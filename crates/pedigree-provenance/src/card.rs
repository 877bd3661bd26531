//! What the model card declares: `base_model` in `README.md` YAML front matter (a string or a
//! list) and in `config.json` (`base_model`, `base_model_name_or_path` as PEFT writes it).

use std::path::Path;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Card {
    /// Declared parents, as written.
    pub base_model: Vec<String>,
    /// Where the declaration was found (`README.md`, `config.json`), empty when none.
    pub sources: Vec<String>,
    /// Whether a card (README.md or config.json) exists at all.
    pub present: bool,
}

impl Card {
    pub fn read_dir(dir: &Path) -> Card {
        let mut c = Card::default();
        if let Ok(t) = std::fs::read_to_string(dir.join("README.md")) {
            c.present = true;
            let found = front_matter_base(&t);
            if !found.is_empty() {
                c.sources.push("README.md".into());
                c.base_model.extend(found);
            }
        }
        if let Ok(t) = std::fs::read_to_string(dir.join("config.json")) {
            c.present = true;
            if let Ok(v) = serde_json::from_str::<serde_json::Value>(&t) {
                for key in ["base_model", "base_model_name_or_path"] {
                    let vals: Vec<String> = match v.get(key) {
                        Some(serde_json::Value::String(s)) => vec![s.clone()],
                        Some(serde_json::Value::Array(a)) => a
                            .iter()
                            .filter_map(|x| x.as_str().map(String::from))
                            .collect(),
                        _ => vec![],
                    };
                    if !vals.is_empty() {
                        c.sources.push(format!("config.json:{key}"));
                        for s in vals {
                            if !c.base_model.contains(&s) {
                                c.base_model.push(s);
                            }
                        }
                    }
                }
            }
        }
        c
    }

    /// Does the card name `model` (compared by last path component, case-insensitively)?
    pub fn declares(&self, model: &str) -> bool {
        self.base_model.iter().any(|b| same_name(b, model))
    }
}

/// Whether a card's `declared` base names `model`. Names are compared on their trailing path
/// components, as many as the shorter of the two has: a hub id `org/model` matches a local
/// directory `model`, but `acme/model` does not match `control/model` (the same model name
/// published by two organisations is two models; a typosquat is often exactly that).
pub fn same_name(declared: &str, model: &str) -> bool {
    let parts = |s: &str| -> Vec<String> {
        s.trim()
            .trim_end_matches('/')
            .split('/')
            .filter(|c| !c.is_empty())
            .map(str::to_ascii_lowercase)
            .collect()
    };
    let (d, m) = (parts(declared), parts(model));
    let k = d.len().min(m.len());
    k > 0 && d[d.len() - k..] == m[m.len() - k..]
}

/// The last path component, lower-cased: the key under which [`same_name`] can match at all.
pub fn name_key(s: &str) -> String {
    s.trim()
        .trim_end_matches('/')
        .rsplit('/')
        .next()
        .unwrap_or("")
        .to_ascii_lowercase()
}

/// `base_model:` from the YAML front matter (`---` ... `---`): scalar or block list.
fn front_matter_base(text: &str) -> Vec<String> {
    let mut lines = text.lines();
    if lines.next().map(str::trim) != Some("---") {
        return vec![];
    }
    let mut out = Vec::new();
    let mut in_list = false;
    for l in lines {
        if l.trim() == "---" {
            break;
        }
        if in_list {
            if let Some(item) = l.trim_start().strip_prefix("- ") {
                out.push(unquote(item));
                continue;
            }
            in_list = false;
        }
        if let Some(v) = l.strip_prefix("base_model:") {
            let v = v.trim();
            if v.is_empty() {
                in_list = true;
            } else if v.starts_with('[') {
                out.extend(
                    v.trim_matches(['[', ']'])
                        .split(',')
                        .map(unquote)
                        .filter(|s| !s.is_empty()),
                );
            } else {
                out.push(unquote(v));
            }
        }
    }
    out
}

fn unquote(s: &str) -> String {
    s.trim().trim_matches(['"', '\'']).to_string()
}

#[cfg(test)]
mod tests {
    use super::same_name;

    #[test]
    fn names_match_on_the_components_both_have() {
        assert!(same_name("acme/fashion-base", "fashion-base"));
        assert!(same_name("fashion-base", "acme/fashion-base"));
        assert!(same_name("Acme/Fashion-Base/", "acme/fashion-base"));
        assert!(!same_name("control/fashion-base", "acme/fashion-base"));
        assert!(!same_name("acme/fashion-base", "acme/fashion-base-v2"));
        assert!(!same_name("", "acme/x"));
    }
}
