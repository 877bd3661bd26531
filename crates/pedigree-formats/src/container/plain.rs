//! Bare pickle streams, joblib pickles, and pickle records of torch archives.

use super::walk::{Reader, pickle_stream};
use super::{Artifact, Format};
use crate::pickle::{Options, PickleReport, ReadMode};

/// joblib's array wrappers (current, and the pre-0.10 ones that kept arrays in side files /
/// zlib blobs) -- their presence makes a pickle a joblib file (FORMATS-FACTS §3.3).
const JOBLIB_WRAPPERS: &[&str] = &["NumpyArrayWrapper", "NDArrayWrapper", "ZNDArrayWrapper"];

fn joblib_opts(r: &Reader<'_>) -> Options {
    // joblib_arrays only changes anything after a NumpyArrayWrapper BUILD, so it is safe (and
    // needed, to skip the raw arrays joblib embeds) on every plain pickle.
    Options {
        joblib_arrays: true,
        ..r.opts.pickle.clone()
    }
}

pub(super) fn is_joblib(reports: &[PickleReport]) -> bool {
    reports.iter().flat_map(|p| &p.globals).any(|g| {
        g.module.starts_with("joblib.numpy_pickle") && JOBLIB_WRAPPERS.contains(&g.name.as_str())
    })
}

/// "Found nothing and broke at byte 0": the sniffer's guess was wrong; not a pickle.
pub(super) fn looks_empty(reports: &[PickleReport]) -> bool {
    reports.iter().all(|p| {
        p.end.is_none()
            && p.globals.is_empty()
            && p.calls.is_empty()
            && p.persistent_ids.is_empty()
            && (p.opcodes <= 1 || p.anomalies.first().is_some_and(|a| a.offset == p.start))
    })
}

/// A file or member that is a pickle stream: read as `pickle.loads` would (the stream analysis
/// adds the other read modes when frames make them differ, FORMATS-FACTS §1.2).
pub(super) fn read_plain(r: &mut Reader<'_>, loc: Vec<String>, data: &[u8]) -> Artifact {
    let opts = joblib_opts(r);
    let mut reports = pickle_stream(data, &opts, ReadMode::InMemory).pickles;
    if looks_empty(&reports) {
        return Artifact::new(loc, Format::Unknown, data.len() as u64);
    }
    let mut format = Format::Pickle;
    if is_joblib(&reports) {
        // joblib loads with the pure-Python unpickler, which raises on frame violations that the
        // C unpickler lets through (§1.2): its view is reported too.
        format = Format::Joblib;
        if !reports.iter().any(|p| p.mode == ReadMode::PurePython) {
            reports.extend(pickle_stream(data, &opts, ReadMode::PurePython).pickles);
        }
    }
    let mut a = Artifact::new(loc, format, data.len() as u64);
    a.pickles = reports;
    a
}

/// A pickle record that a loader unpickles whatever its first byte is (torch's `data.pkl`,
/// `constants.pkl`, `*.debug_pkl`): torch reads it through `BytesIO`, a file with no `peek`.
pub(super) fn read_record(
    r: &mut Reader<'_>,
    loc: Vec<String>,
    data: &[u8],
    mode: ReadMode,
) -> Artifact {
    let mut a = Artifact::new(loc, Format::Pickle, data.len() as u64);
    a.pickles = pickle_stream(data, &r.opts.pickle, mode).pickles;
    a
}
