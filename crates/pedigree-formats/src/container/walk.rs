//! The recursive reader: sniff, dispatch to the format reader, keep the running budgets.

use std::io::Read;

use super::sniff::{self, Sniffed};
use super::{Artifact, Format, Note, NoteKind, ReadOptions};
use crate::pickle::{Options, PickleReport, ReadMode, StreamReport};

/// The one place that calls into the pickle module (its contract: `pickle/mod.rs`).
pub(super) fn pickle_one(data: &[u8], start: u64, mode: ReadMode, opts: &Options) -> PickleReport {
    // An offset past the buffer (only possible on 32-bit hosts) is clamped to its end: the
    // analysis then reports a truncated pickle instead of panicking.
    let start = usize::try_from(start).unwrap_or(data.len()).min(data.len());
    crate::pickle::analyze_one(data, start, mode, opts)
}

/// Every pickle of a stream, as repeated `pickle.load(f)` calls would read them.
pub(super) fn pickle_stream(data: &[u8], opts: &Options, mode: ReadMode) -> StreamReport {
    crate::pickle::analyze_stream(data, opts, mode)
}

/// Where the host's next read starts after `rep` (`None` when the pickle broke): `next`, which
/// differs from `end` when a FRAME ran past STOP on a file without `peek` (FORMATS-FACTS §1.2).
pub(super) fn after(rep: &PickleReport) -> Option<u64> {
    rep.end.map(|e| rep.next.max(e))
}

/// How a bounded read ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum End {
    /// The source ended (the whole output is here).
    Eof,
    /// The size cap was reached: more output may follow.
    SizeCap,
    /// Output over `max_ratio` times the compressed size.
    Ratio,
    /// The decoder failed; the output before the failure is kept.
    Error(String),
}

/// Outputs below this are never called bombs on ratio alone: small runs of zeros compress
/// far better than 200:1 without harming anyone.
pub(super) const RATIO_FLOOR: u64 = 1 << 20;

/// Reads `r` to its end or to `cap` bytes, checking the ratio against `compressed_len` on the way
/// (so a bomb stops early, holding at most `cap` bytes).
pub(super) fn pull<R: Read>(
    mut r: R,
    cap: u64,
    compressed_len: u64,
    max_ratio: u64,
) -> (Vec<u8>, End) {
    let mut out: Vec<u8> = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let room = cap.saturating_sub(out.len() as u64);
        if room == 0 {
            // Probe one byte: a stream that ends exactly at the cap is complete.
            let mut one = [0u8; 1];
            return match r.read(&mut one) {
                Ok(0) => (out, End::Eof),
                Ok(_) => (out, End::SizeCap),
                Err(e) => (out, End::Error(e.to_string())),
            };
        }
        let want = buf.len().min(usize::try_from(room).unwrap_or(usize::MAX));
        match r.read(&mut buf[..want]) {
            Ok(0) => return (out, End::Eof),
            Ok(n) => {
                if out.try_reserve(n).is_err() {
                    return (out, End::Error("out of memory".into()));
                }
                out.extend_from_slice(&buf[..n]);
                let len = out.len() as u64;
                if len > RATIO_FLOOR && len / compressed_len.max(1) > max_ratio {
                    return (out, End::Ratio);
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return (out, End::Error(e.to_string())),
        }
    }
}

pub(super) struct Reader<'o> {
    pub opts: &'o ReadOptions,
    /// Bytes produced by decompression so far (limit: `max_total_decompressed`).
    pub decompressed: u64,
}

impl<'o> Reader<'o> {
    pub fn new(opts: &'o ReadOptions) -> Self {
        Reader {
            opts,
            decompressed: 0,
        }
    }

    /// Sniffs `data` and reads it as what it is.
    pub fn node(&mut self, loc: Vec<String>, data: &[u8], depth: usize) -> Artifact {
        let s = sniff::sniff(data);
        let mut a = self.node_as(loc, data, depth, s);
        crate::views::refine(&mut a);
        a
    }

    /// Reads `data` as `s`.
    pub fn node_as(&mut self, loc: Vec<String>, data: &[u8], depth: usize, s: Sniffed) -> Artifact {
        match s {
            Sniffed::Zip { start } => super::zip::read_zip(self, loc, data, depth, start),
            Sniffed::SevenZip => super::sevenz::read_7z(self, loc, data, depth),
            Sniffed::Tar => super::tarball::read_tar(self, loc, data, depth),
            Sniffed::Npy => super::npy::read_npy(self, loc, data),
            Sniffed::TorchLegacy => super::torch::read_legacy_stream(self, loc, data),
            Sniffed::Compressed(c) => super::compress::read_compressed(self, loc, data, depth, c),
            Sniffed::Pickle => super::plain::read_plain(self, loc, data),
            Sniffed::Unknown => match crate::views::read_unknown(loc.clone(), data) {
                Some(a) => a,
                None => Artifact::new(loc, Format::Unknown, data.len() as u64),
            },
        }
    }

    /// Whether a member of a container at `depth` may be read; if not, notes why on `parent`.
    pub fn may_descend(&self, parent: &mut Artifact, depth: usize, member: &str) -> bool {
        if depth + 1 > self.opts.limits.max_depth {
            parent.notes.push(Note::new(
                NoteKind::NestingTooDeep {
                    member: member.to_string(),
                },
                format!(
                    "member {member:?} is nested deeper than {} containers: not read",
                    self.opts.limits.max_depth
                ),
            ));
            return false;
        }
        true
    }

    /// The most a decompression may produce now (per-member cap and what is left of the total).
    pub fn decompress_cap(&self) -> u64 {
        let l = &self.opts.limits;
        l.max_member_size
            .min(l.max_total_decompressed.saturating_sub(self.decompressed))
    }

    /// Decompresses with every limit, counts the output, and notes a bomb on `parent`.
    /// Returns the output and whether it is complete.
    pub fn decompress<R: Read>(
        &mut self,
        parent: &mut Artifact,
        member: &str,
        r: R,
        compressed_len: u64,
    ) -> (Vec<u8>, End) {
        let cap = self.decompress_cap();
        let (out, end) = pull(r, cap, compressed_len, self.opts.limits.max_ratio);
        self.decompressed = self.decompressed.saturating_add(out.len() as u64);
        match &end {
            End::SizeCap => {
                let l = &self.opts.limits;
                let detail = if cap < l.max_member_size {
                    format!(
                        "total decompressed output over {} bytes",
                        l.max_total_decompressed
                    )
                } else {
                    format!("decompressed size over {} bytes", l.max_member_size)
                };
                parent.notes.push(bomb(member, detail));
            }
            End::Ratio => parent.notes.push(bomb(
                member,
                format!(
                    "over {}:1 ({} bytes from {compressed_len})",
                    self.opts.limits.max_ratio,
                    out.len()
                ),
            )),
            _ => {}
        }
        (out, end)
    }
}

fn bomb(member: &str, detail: String) -> Note {
    let message =
        format!("{member}: decompression stopped, {detail}; only the part read so far was scanned");
    Note::new(
        NoteKind::DecompressionBomb {
            member: member.to_string(),
            detail,
        },
        message,
    )
}

pub(super) fn malformed(detail: impl Into<String>) -> Note {
    let detail = detail.into();
    Note::new(
        NoteKind::Malformed {
            detail: detail.clone(),
        },
        detail,
    )
}
