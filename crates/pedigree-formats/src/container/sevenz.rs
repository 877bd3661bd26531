//! 7z archives through `sevenz-rust2`: each entry is extracted within the limits and sniffed.

use std::io::{Cursor, Read};

use sevenz_rust2::{ArchiveReader, Error as SzError, Password};

use super::walk::{End, Reader, malformed, pull};
use super::{Artifact, Format, Note, NoteKind};

fn encrypted(member: &str) -> Note {
    Note::new(
        NoteKind::EncryptedMember {
            member: member.to_string(),
        },
        format!("{member}: 7z content is encrypted and could not be scanned"),
    )
}

pub(super) fn read_7z(r: &mut Reader<'_>, loc: Vec<String>, d: &[u8], depth: usize) -> Artifact {
    let mut a = Artifact::new(loc, Format::SevenZip, d.len() as u64);
    let mut ar = match ArchiveReader::new(Cursor::new(d), Password::empty()) {
        Ok(ar) => ar,
        Err(SzError::PasswordRequired | SzError::MaybeBadPassword(_)) => {
            a.notes.push(encrypted("<7z headers>"));
            return a;
        }
        Err(e) => {
            a.notes.push(malformed(format!("7z: {e}")));
            return a;
        }
    };
    ar.set_thread_count(1);
    let max = r.opts.limits.max_members;
    let n_files = ar.archive().files.len() as u64;
    if n_files > max {
        a.notes.push(Note::new(
            NoteKind::TooManyMembers { limit: max },
            format!("{n_files} entries, more than {max}: the rest were not read"),
        ));
    }
    let compressed_total = d.len() as u64;
    let max_ratio = r.opts.limits.max_ratio;
    let max_member = r.opts.limits.max_member_size;
    let max_total = r.opts.limits.max_total_decompressed;
    let may_descend = depth < r.opts.limits.max_depth;

    // Each entry is extracted, read as a child and dropped inside the callback (the crate decodes
    // solid blocks in order), so at most one member is held at a time.
    let mut children: Vec<Artifact> = Vec::new();
    let mut notes: Vec<Note> = Vec::new();
    let mut seen: u64 = 0;
    let parent_loc = a.location.clone();
    let result = ar.for_each_entries(|entry, rd: &mut dyn Read| {
        if entry.is_directory || !entry.has_stream {
            return Ok(true);
        }
        seen += 1;
        if seen > max {
            return Ok(false);
        }
        if !may_descend {
            notes.push(Note::new(
                NoteKind::NestingTooDeep {
                    member: entry.name.clone(),
                },
                format!("member {:?} is nested too deep: not read", entry.name),
            ));
            return Ok(true);
        }
        let left = max_total.saturating_sub(r.decompressed);
        let cap = max_member.min(left);
        let base = compressed_total.max(1);
        let (out, end) = pull(rd, cap, base, max_ratio);
        r.decompressed = r.decompressed.saturating_add(out.len() as u64);
        let stop = match end {
            End::Eof => false,
            End::SizeCap | End::Ratio => {
                let detail = if end == End::Ratio {
                    format!("over {max_ratio}:1 against the archive size")
                } else {
                    format!("over {cap} bytes")
                };
                notes.push(Note::new(
                    NoteKind::DecompressionBomb {
                        member: entry.name.clone(),
                        detail: detail.clone(),
                    },
                    format!(
                        "{}: extraction stopped, {detail}; the rest of the archive was not read",
                        entry.name
                    ),
                ));
                true
            }
            End::Error(e) => {
                notes.push(malformed(format!("7z: {}: {e}", entry.name)));
                true
            }
        };
        let mut child_loc = parent_loc.clone();
        child_loc.push(entry.name.clone());
        children.push(r.node(child_loc, &out, depth + 1));
        Ok(!stop)
    });
    a.notes.append(&mut notes);
    a.children.append(&mut children);
    if let Err(e) = result {
        match e {
            SzError::PasswordRequired | SzError::MaybeBadPassword(_) => {
                a.notes.push(encrypted("<7z entries>"))
            }
            e => a.notes.push(malformed(format!("7z: {e}"))),
        }
    }
    a
}
