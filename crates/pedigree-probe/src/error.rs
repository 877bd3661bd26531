//! Errors of the probe crate.

use std::path::PathBuf;

/// Everything that can go wrong while loading data, models or running the lab.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error("I/O error on {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("malformed IDX file {path}: {reason}")]
    Idx { path: PathBuf, reason: String },
    #[error("malformed safetensors model {path}: {reason}")]
    Model { path: PathBuf, reason: String },
    #[error("malformed JSON in {path}: {source}")]
    Json {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("invalid argument: {0}")]
    Invalid(String),
    #[error("tensor runtime error: {0}")]
    Tensor(String),
}

pub type Result<T> = std::result::Result<T, ProbeError>;

impl ProbeError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            source,
        }
    }
}
