//! tar archives (the `tar` crate walks the headers; member data is taken as slices of the buffer,
//! never copied), including torch's legacy tar layout (FORMATS-FACTS §2.4).

use std::io::Cursor;

use super::walk::{Reader, malformed};
use super::{Artifact, Format, Note, NoteKind, torch};

struct Member {
    name: String,
    start: usize,
    len: usize,
}

pub(super) fn read_tar(r: &mut Reader<'_>, loc: Vec<String>, d: &[u8], depth: usize) -> Artifact {
    let mut a = Artifact::new(loc, Format::Tar, d.len() as u64);
    let mut members = Vec::new();
    let mut ar = tar::Archive::new(Cursor::new(d));
    let max = r.opts.limits.max_members;
    match ar.entries_with_seek() {
        Err(e) => a.notes.push(malformed(format!("tar: {e}"))),
        Ok(entries) => {
            let mut count: u64 = 0;
            for entry in entries {
                let entry = match entry {
                    Ok(e) => e,
                    Err(e) => {
                        a.notes.push(malformed(format!(
                            "tar: {e}; the rest of the archive was not read"
                        )));
                        break;
                    }
                };
                count += 1;
                if count > max {
                    a.notes.push(Note::new(
                        NoteKind::TooManyMembers { limit: max },
                        format!("more than {max} members: the rest were not read"),
                    ));
                    break;
                }
                let name = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
                let kind = entry.header().entry_type();
                let comps: Vec<&str> = name.split('/').collect();
                let why = if name.starts_with('/') {
                    Some("an absolute path")
                } else if comps.contains(&"..") {
                    Some("a `..` component")
                } else if kind.is_symlink() || kind.is_hard_link() {
                    Some("a link")
                } else {
                    None
                };
                if let Some(why) = why {
                    a.notes.push(Note::new(
                        NoteKind::UnsafeMemberPath { member: name.clone() },
                        format!("member {name:?} is {why}: extracting the archive could write outside its directory"),
                    ));
                }
                if !(kind.is_file()
                    || kind == tar::EntryType::Continuous
                    || kind == tar::EntryType::GNUSparse)
                {
                    continue;
                }
                let start = usize::try_from(entry.raw_file_position()).ok();
                let len = usize::try_from(entry.size()).ok();
                match (start, len) {
                    (Some(start), Some(len))
                        if start.checked_add(len).is_some_and(|e| e <= d.len()) =>
                    {
                        members.push(Member { name, start, len })
                    }
                    _ => a.notes.push(malformed(format!(
                        "tar: member {name:?} runs past the end of the archive"
                    ))),
                }
            }
        }
    }

    // torch's legacy layout: `pickle` with `storages`/`tensors` beside it (§2.4).
    let has = |n: &str| members.iter().any(|m| m.name.trim_start_matches("./") == n);
    let legacy = has("pickle") && (has("storages") || has("tensors"));
    if legacy {
        a.format = Format::TorchLegacyTar;
        a.notes.push(Note::new(
            NoteKind::LegacyTorch,
            "legacy PyTorch tar serialization (torch < 0.4 era; FORMATS-FACTS §2.4)",
        ));
    }
    for m in &members {
        if !r.may_descend(&mut a, depth, &m.name) {
            continue;
        }
        let Some(bytes) = d.get(m.start..m.start + m.len) else {
            continue;
        };
        let mut child_loc = a.location.clone();
        child_loc.push(m.name.clone());
        let child = match (legacy, m.name.trim_start_matches("./")) {
            (true, "pickle" | "sys_info") => torch::read_tar_pickle(r, child_loc, bytes),
            (true, "storages") => torch::read_tar_storages(r, child_loc, bytes),
            (true, "tensors") => torch::read_tar_tensors(r, child_loc, bytes),
            _ => r.node(child_loc, bytes, depth + 1),
        };
        a.children.push(child);
    }
    a
}
