//! Settings for `pedigree serve` and `pedigree worker`, from four layers: command-line flags,
//! `PEDIGREE_*` environment variables, a TOML file (`--config`), and built-in defaults, in that
//! order of precedence, field by field.
//!
//! The file is strict: a key this version does not know is an error naming the key, because a
//! misspelt `shutdown_grace_secs` silently ignored is a registry that drops jobs on deploy.
//!
//! | file key                 | environment                        | default                 |
//! |--------------------------|------------------------------------|-------------------------|
//! | `listen`                 | `PEDIGREE_LISTEN`                  | `127.0.0.1:8470`        |
//! | `worker_listen`          | `PEDIGREE_WORKER_LISTEN`           | none (worker: no HTTP)  |
//! | `metrics_listen`         | `PEDIGREE_METRICS_LISTEN`          | none (`/metrics` on `listen`) |
//! | `data_dir`               | `PEDIGREE_DATA_DIR`                | `./pedigree-data`       |
//! | `database_url`           | `PEDIGREE_DATABASE_URL`            | `sqlite://DATA_DIR/registry.db` |
//! | `blob_store`             | `PEDIGREE_BLOB_STORE`              | `DATA_DIR/blobs`        |
//! | `policy`                 | `PEDIGREE_POLICY`                  | the built-in policy     |
//! | `workers`                | `PEDIGREE_WORKERS`                 | 2                       |
//! | `log_format`             | `PEDIGREE_LOG_FORMAT`              | `text`                  |
//! | `lease_seconds`          | `PEDIGREE_LEASE_SECONDS`           | 60                      |
//! | `shutdown_grace_seconds` | `PEDIGREE_SHUTDOWN_GRACE_SECONDS`  | 30                      |
//! | `upload_ttl_seconds`     | `PEDIGREE_UPLOAD_TTL_SECONDS`      | 86400 (a resumable upload idle this long is deleted) |

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

/// A config file larger than this is refused unread: settings are a few hundred bytes, and a
/// path pointed at a model by mistake must not be slurped into memory.
const MAX_FILE_BYTES: u64 = 1 << 20;
/// More ingest tasks than this in one process is a typo, not a deployment (each one holds a
/// model's analysis in memory).
pub const MAX_WORKERS: usize = 256;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

impl std::str::FromStr for LogFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<LogFormat, String> {
        match s {
            "text" => Ok(LogFormat::Text),
            "json" => Ok(LogFormat::Json),
            _ => Err(format!("log format {s:?} is not one of: text, json")),
        }
    }
}

/// One layer of settings: every field optional, so a layer says only what it sets.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Layer {
    pub listen: Option<String>,
    pub worker_listen: Option<String>,
    pub metrics_listen: Option<String>,
    pub data_dir: Option<PathBuf>,
    pub database_url: Option<String>,
    pub blob_store: Option<String>,
    pub policy: Option<PathBuf>,
    pub workers: Option<usize>,
    pub log_format: Option<String>,
    pub lease_seconds: Option<u64>,
    pub shutdown_grace_seconds: Option<u64>,
    pub upload_ttl_seconds: Option<u64>,
}

/// Settings after the layers are merged, defaults filled in and every value checked.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    pub listen: SocketAddr,
    pub worker_listen: Option<SocketAddr>,
    pub metrics_listen: Option<SocketAddr>,
    pub data_dir: PathBuf,
    pub database_url: Option<String>,
    pub blob_store: Option<String>,
    pub policy: Option<PathBuf>,
    pub workers: usize,
    pub log_format: LogFormat,
    pub lease: Duration,
    pub shutdown_grace: Duration,
    pub upload_ttl: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("config file {path}: {message}")]
    File { path: PathBuf, message: String },
    #[error("setting {name}: {message}")]
    Value { name: String, message: String },
}

fn bad(name: &str, message: impl Into<String>) -> ConfigError {
    ConfigError::Value {
        name: name.into(),
        message: message.into(),
    }
}

impl Layer {
    /// Parse a TOML config file; unknown keys and wrong types are errors naming the key.
    pub fn from_file(path: &Path) -> Result<Layer, ConfigError> {
        let err = |message: String| ConfigError::File {
            path: path.to_path_buf(),
            message,
        };
        let meta = std::fs::metadata(path).map_err(|e| err(e.to_string()))?;
        if meta.len() > MAX_FILE_BYTES {
            return Err(err(format!(
                "{} bytes is more than the {MAX_FILE_BYTES} a config file may have",
                meta.len()
            )));
        }
        let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
        Layer::from_toml(&text).map_err(|e| match e {
            ConfigError::File { message, .. } => err(message),
            other => other,
        })
    }

    pub fn from_toml(text: &str) -> Result<Layer, ConfigError> {
        // toml's message for an unknown field names it ("unknown field `x`, expected one of …").
        toml::from_str(text).map_err(|e| ConfigError::File {
            path: PathBuf::from("<toml>"),
            message: e.to_string().trim().to_string(),
        })
    }

    /// Read `PEDIGREE_*` variables through `get` (the process environment in production, a map
    /// in tests). Empty values count as unset, as a shell's `VAR=` usually means.
    pub fn from_env(get: impl Fn(&str) -> Option<String>) -> Result<Layer, ConfigError> {
        let s = |k: &str| get(k).filter(|v| !v.is_empty());
        let num = |k: &str| -> Result<Option<u64>, ConfigError> {
            s(k).map(|v| {
                v.trim()
                    .parse::<u64>()
                    .map_err(|_| bad(k, format!("{v:?} is not a whole number")))
            })
            .transpose()
        };
        Ok(Layer {
            listen: s("PEDIGREE_LISTEN"),
            worker_listen: s("PEDIGREE_WORKER_LISTEN"),
            metrics_listen: s("PEDIGREE_METRICS_LISTEN"),
            data_dir: s("PEDIGREE_DATA_DIR").map(PathBuf::from),
            database_url: s("PEDIGREE_DATABASE_URL"),
            blob_store: s("PEDIGREE_BLOB_STORE"),
            policy: s("PEDIGREE_POLICY").map(PathBuf::from),
            workers: num("PEDIGREE_WORKERS")?.map(|n| n as usize),
            log_format: s("PEDIGREE_LOG_FORMAT"),
            lease_seconds: num("PEDIGREE_LEASE_SECONDS")?,
            shutdown_grace_seconds: num("PEDIGREE_SHUTDOWN_GRACE_SECONDS")?,
            upload_ttl_seconds: num("PEDIGREE_UPLOAD_TTL_SECONDS")?,
        })
    }

    /// `self` where it says something, `lower` elsewhere.
    pub fn over(self, lower: Layer) -> Layer {
        Layer {
            listen: self.listen.or(lower.listen),
            worker_listen: self.worker_listen.or(lower.worker_listen),
            metrics_listen: self.metrics_listen.or(lower.metrics_listen),
            data_dir: self.data_dir.or(lower.data_dir),
            database_url: self.database_url.or(lower.database_url),
            blob_store: self.blob_store.or(lower.blob_store),
            policy: self.policy.or(lower.policy),
            workers: self.workers.or(lower.workers),
            log_format: self.log_format.or(lower.log_format),
            lease_seconds: self.lease_seconds.or(lower.lease_seconds),
            shutdown_grace_seconds: self.shutdown_grace_seconds.or(lower.shutdown_grace_seconds),
            upload_ttl_seconds: self.upload_ttl_seconds.or(lower.upload_ttl_seconds),
        }
    }

    /// Fill in defaults and check every value.
    pub fn resolve(self) -> Result<Settings, ConfigError> {
        let addr = |name: &str, v: Option<String>| -> Result<Option<SocketAddr>, ConfigError> {
            v.map(|s| {
                s.trim()
                    .parse::<SocketAddr>()
                    .map_err(|_| bad(name, format!("{s:?} is not an address like 127.0.0.1:8470")))
            })
            .transpose()
        };
        let workers = self.workers.unwrap_or(2);
        if workers > MAX_WORKERS {
            return Err(bad(
                "workers",
                format!("{workers} is more than the {MAX_WORKERS} allowed"),
            ));
        }
        let lease = self.lease_seconds.unwrap_or(60);
        // The lease is renewed every third of it; under 3 s renewals would hammer the database.
        if !(3..=86_400).contains(&lease) {
            return Err(bad(
                "lease_seconds",
                format!("{lease} is outside 3..=86400"),
            ));
        }
        let grace = self.shutdown_grace_seconds.unwrap_or(30);
        if grace > 3_600 {
            return Err(bad(
                "shutdown_grace_seconds",
                format!("{grace} is more than an hour"),
            ));
        }
        let upload_ttl = self.upload_ttl_seconds.unwrap_or(86_400);
        if !(1..=30 * 86_400).contains(&upload_ttl) {
            return Err(bad(
                "upload_ttl_seconds",
                format!("{upload_ttl} is outside 1..=2592000 (30 days)"),
            ));
        }
        let log_format = match self.log_format {
            Some(f) => f.trim().parse().map_err(|e: String| bad("log_format", e))?,
            None => LogFormat::Text,
        };
        Ok(Settings {
            listen: addr("listen", self.listen)?
                .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 8470))),
            worker_listen: addr("worker_listen", self.worker_listen)?,
            metrics_listen: addr("metrics_listen", self.metrics_listen)?,
            data_dir: self
                .data_dir
                .unwrap_or_else(|| PathBuf::from("./pedigree-data")),
            database_url: self.database_url,
            blob_store: self.blob_store,
            policy: self.policy,
            workers,
            log_format,
            lease: Duration::from_secs(lease),
            shutdown_grace: Duration::from_secs(grace),
            upload_ttl: Duration::from_secs(upload_ttl),
        })
    }
}

/// Merge flags over the environment over the file (if any) over defaults.
pub fn load(
    flags: Layer,
    config_file: Option<&Path>,
    env: impl Fn(&str) -> Option<String>,
) -> Result<Settings, ConfigError> {
    let file = match config_file {
        Some(p) => Layer::from_file(p)?,
        None => Layer::default(),
    };
    flags.over(Layer::from_env(env)?.over(file)).resolve()
}

impl Settings {
    /// The server's configuration (the worker uses the same stores).
    pub fn server_config(&self) -> crate::server::Config {
        crate::server::Config {
            data_dir: self.data_dir.clone(),
            listen: self.listen,
            policy: self.policy.clone(),
            database_url: self.database_url.clone(),
            workers: self.workers,
            blob_store: self.blob_store.clone(),
            lease: self.lease,
            shutdown_grace: self.shutdown_grace,
            metrics_listen: self.metrics_listen,
            upload_ttl: self.upload_ttl,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let m: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| m.get(k).cloned()
    }

    fn file(text: &str) -> (tempfile::TempDir, PathBuf) {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("registry.toml");
        std::fs::write(&p, text).unwrap();
        (d, p)
    }

    #[test]
    fn defaults_when_nothing_is_set() {
        let s = load(Layer::default(), None, env(&[])).unwrap();
        assert_eq!(s.listen, "127.0.0.1:8470".parse().unwrap());
        assert_eq!(s.data_dir, PathBuf::from("./pedigree-data"));
        assert_eq!(s.workers, 2);
        assert_eq!(s.log_format, LogFormat::Text);
        assert_eq!(s.lease, Duration::from_secs(60));
        assert_eq!(s.shutdown_grace, Duration::from_secs(30));
        assert_eq!(s.blob_store, None);
        assert_eq!(s.worker_listen, None);
    }

    #[test]
    fn flag_beats_env_beats_file_beats_default() {
        let (_d, p) = file(
            "listen = \"127.0.0.1:1001\"\nworkers = 7\nlog_format = \"json\"\n\
             data_dir = \"/from/file\"\nlease_seconds = 11\nblob_store = \"file:///b\"\n",
        );
        let e = env(&[
            ("PEDIGREE_LISTEN", "127.0.0.1:2002"),
            ("PEDIGREE_WORKERS", "5"),
            ("PEDIGREE_LEASE_SECONDS", "22"),
        ]);
        let flags = Layer {
            listen: Some("127.0.0.1:3003".into()),
            ..Layer::default()
        };
        let s = load(flags, Some(&p), e).unwrap();
        assert_eq!(s.listen, "127.0.0.1:3003".parse().unwrap(), "flag wins");
        assert_eq!(s.workers, 5, "env beats file");
        assert_eq!(s.lease, Duration::from_secs(22), "env beats file");
        assert_eq!(s.log_format, LogFormat::Json, "file beats default");
        assert_eq!(s.data_dir, PathBuf::from("/from/file"));
        assert_eq!(s.blob_store.as_deref(), Some("file:///b"));
        assert_eq!(s.shutdown_grace, Duration::from_secs(30), "default");
        // Zero workers is a legal choice: an API-only server.
        let s = load(
            Layer {
                workers: Some(0),
                ..Layer::default()
            },
            Some(&p),
            env(&[("PEDIGREE_WORKERS", "5")]),
        )
        .unwrap();
        assert_eq!(s.workers, 0);
    }

    #[test]
    fn unknown_key_is_an_error_naming_it() {
        let (_d, p) = file("listen = \"127.0.0.1:1\"\nshutdown_grace_secs = 5\n");
        let e = load(Layer::default(), Some(&p), env(&[]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("shutdown_grace_secs"), "{e}");
        assert!(e.contains("registry.toml"), "{e}");
    }

    #[test]
    fn bad_values_name_the_setting() {
        let (_d, p) = file("workers = \"many\"\n");
        let e = load(Layer::default(), Some(&p), env(&[]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("workers"), "{e}");
        let e = load(Layer::default(), None, env(&[("PEDIGREE_WORKERS", "x")]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("PEDIGREE_WORKERS"), "{e}");
        let e = load(
            Layer::default(),
            None,
            env(&[("PEDIGREE_LOG_FORMAT", "xml")]),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("log_format") && e.contains("xml"), "{e}");
        let e = load(
            Layer::default(),
            None,
            env(&[("PEDIGREE_LISTEN", "nowhere")]),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("listen"), "{e}");
        let e = load(
            Layer::default(),
            None,
            env(&[("PEDIGREE_LEASE_SECONDS", "1")]),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("lease_seconds"), "{e}");
        let e = load(
            Layer::default(),
            None,
            env(&[("PEDIGREE_WORKERS", "100000")]),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("workers"), "{e}");
        let missing = PathBuf::from("/nonexistent/registry.toml");
        let e = load(Layer::default(), Some(&missing), env(&[]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("/nonexistent/registry.toml"), "{e}");
    }

    #[test]
    fn oversized_file_is_refused_unread() {
        let (_d, p) = file(&"# x\n".repeat(300_000));
        let e = load(Layer::default(), Some(&p), env(&[]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("bytes"), "{e}");
    }

    #[test]
    fn empty_env_value_is_unset() {
        let (_d, p) = file("workers = 3\n");
        let s = load(Layer::default(), Some(&p), env(&[("PEDIGREE_WORKERS", "")])).unwrap();
        assert_eq!(s.workers, 3);
    }
}
