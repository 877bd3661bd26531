//! The allow-list of approved models and publishers (a TOML file, and/or the approved versions
//! of a running registry, merged in by the CLI).
//!
//! ```toml
//! # Every model of these publishers is approved (still subject to revision pinning).
//! publishers = ["google-bert", "sentence-transformers"]
//!
//! [[models]]
//! id = "meta-llama/Llama-3.1-8B-Instruct"
//! # Approved commits; empty or absent = any pinned commit of this repository.
//! revisions = ["0e9e39f249a16976918f6564b8830bc894c89659"]
//! ```
//!
//! Repository ids and publishers compare case-insensitively (as the hub resolves them).

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

use crate::names::{is_commit, is_hub_id};

#[derive(Debug, thiserror::Error)]
#[error("{file}: {message}")]
pub struct AllowError {
    pub file: String,
    pub message: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AllowFile {
    #[serde(default)]
    publishers: Vec<String>,
    #[serde(default)]
    models: Vec<ModelEntry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ModelEntry {
    id: String,
    #[serde(default)]
    revisions: Vec<String>,
}

/// How a repository id stands against the allow-list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Vetting<'a> {
    /// The model is listed; the approved commits (empty: any pinned commit).
    Model {
        revisions: &'a [String],
    },
    /// Its publisher is listed.
    Publisher,
    Unvetted,
}

#[derive(Debug, Clone, Default)]
pub struct AllowList {
    /// Lower-cased publisher names.
    publishers: Vec<String>,
    /// Lower-cased id → (id as written, approved commits).
    models: BTreeMap<String, (String, Vec<String>)>,
    /// Where the entries came from (files, registry URLs), for messages.
    pub sources: Vec<String>,
}

impl AllowList {
    pub fn from_file(path: &Path) -> Result<AllowList, AllowError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| AllowError {
            file: file.clone(),
            message: format!("cannot read: {e}"),
        })?;
        let mut a = AllowList::default();
        a.merge_toml(&file, &text)?;
        Ok(a)
    }

    /// Adds the entries of a TOML allow-list; `file` names it in errors.
    pub fn merge_toml(&mut self, file: &str, text: &str) -> Result<(), AllowError> {
        let err = |message: String| AllowError {
            file: file.to_string(),
            message,
        };
        let f: AllowFile =
            toml::from_str(text).map_err(|e| err(e.to_string().trim().to_string()))?;
        for (i, p) in f.publishers.iter().enumerate() {
            if p.is_empty() || p.contains('/') || !is_hub_id(p) {
                return Err(err(format!(
                    "publishers[{i}]: {p:?} is not a publisher name (a hub user or organisation)"
                )));
            }
        }
        for (i, m) in f.models.iter().enumerate() {
            if !is_hub_id(&m.id) {
                return Err(err(format!(
                    "models[{i}].id: {:?} is not a hub repository id (publisher/name)",
                    m.id
                )));
            }
            for (j, r) in m.revisions.iter().enumerate() {
                if !is_commit(r) {
                    return Err(err(format!(
                        "models[{i}].revisions[{j}]: {r:?} is not a 40-hex commit id (branches and tags can move)"
                    )));
                }
            }
        }
        for p in f.publishers {
            self.add_publisher(&p);
        }
        for m in f.models {
            if m.revisions.is_empty() {
                self.add_model(&m.id, None);
            }
            for r in m.revisions {
                self.add_model(&m.id, Some(&r));
            }
        }
        self.sources.push(file.to_string());
        Ok(())
    }

    pub fn add_publisher(&mut self, p: &str) {
        let p = p.to_lowercase();
        if !self.publishers.contains(&p) {
            self.publishers.push(p);
        }
    }

    /// Approves a model, at one commit (`Some`) or at any pinned commit (`None`: clears the
    /// restriction to listed commits).
    pub fn add_model(&mut self, id: &str, revision: Option<&str>) {
        let e = self
            .models
            .entry(id.to_lowercase())
            .or_insert_with(|| (id.to_string(), Vec::new()));
        match revision {
            Some(r) => {
                let r = r.to_ascii_lowercase();
                if !e.1.contains(&r) {
                    e.1.push(r);
                }
            }
            None => e.1.clear(),
        }
    }

    pub fn lookup(&self, id: &str) -> Vetting<'_> {
        if let Some((_, revs)) = self.models.get(&id.to_lowercase()) {
            return Vetting::Model { revisions: revs };
        }
        match crate::names::publisher(id) {
            Some(p) if self.publishers.contains(&p.to_lowercase()) => Vetting::Publisher,
            _ => Vetting::Unvetted,
        }
    }

    /// The approved model ids, as written (typosquat candidates).
    pub fn model_ids(&self) -> impl Iterator<Item = &str> + Clone {
        self.models.values().map(|(id, _)| id.as_str())
    }

    pub fn is_empty(&self) -> bool {
        self.publishers.is_empty() && self.models.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_looks_up() {
        let mut a = AllowList::default();
        a.merge_toml(
            "allow.toml",
            "publishers = [\"google-bert\"]\n[[models]]\nid = \"acme/Detector\"\nrevisions = [\"0123456789abcdef0123456789abcdef01234567\"]\n",
        )
        .unwrap();
        assert_eq!(
            a.lookup("Google-Bert/bert-base-uncased"),
            Vetting::Publisher
        );
        assert!(
            matches!(a.lookup("acme/detector"), Vetting::Model { revisions } if revisions.len() == 1)
        );
        assert_eq!(a.lookup("other/x"), Vetting::Unvetted);
        assert_eq!(a.lookup("gpt2"), Vetting::Unvetted);
    }

    #[test]
    fn errors_name_file_and_key() {
        let bad = [
            (
                "[[models]]\nid = \"a/b\"\nrevisions = [\"main\"]\n",
                "models[0].revisions[0]",
            ),
            ("[[models]]\nid = \"./local\"\n", "models[0].id"),
            ("publishers = [\"a/b\"]\n", "publishers[0]"),
            ("publisher = [\"a\"]\n", "publisher"),
            ("publishers = 3\n", "publishers"),
        ];
        for (text, key) in bad {
            let e = AllowList::default()
                .merge_toml("team-allow.toml", text)
                .expect_err(text)
                .to_string();
            assert!(e.starts_with("team-allow.toml: "), "{e}");
            assert!(e.contains(key), "{key} not in {e}");
        }
    }
}
