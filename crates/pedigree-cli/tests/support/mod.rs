//! Shared by the registry's end-to-end tests: `pedigree` child processes read line by line, a
//! real S3-compatible server (moto's standalone server from `.venv`, installed by
//! `bash scripts/setup.sh`; the launcher is `pedigree-registry/tests/common/moto.rs`) on a free
//! port, and one raw HTTP request to it.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// A child process whose stdout lines arrive on a channel; killed when dropped.
pub struct Proc {
    pub child: Child,
    pub lines: mpsc::Receiver<String>,
    log: PathBuf,
}

impl Proc {
    /// `pedigree ARGS` with stderr to `log` (and AWS test credentials, which only the S3
    /// tests' servers read).
    pub fn spawn<S: AsRef<std::ffi::OsStr>>(
        args: &[S],
        env: &[(&str, &str)],
        log: PathBuf,
    ) -> Proc {
        let mut c = Command::new(env!("CARGO_BIN_EXE_pedigree"));
        c.args(args)
            .env_remove("PEDIGREE_CONFIG")
            .env_remove("PEDIGREE_DATABASE_URL")
            .env("PEDIGREE_LOG", "info")
            .env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", "testing")
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).unwrap());
        for (k, v) in env {
            c.env(k, v);
        }
        let mut child = c.spawn().expect("start pedigree");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let _ = tx.send(line);
            }
        });
        Proc {
            child,
            lines: rx,
            log,
        }
    }

    /// Wait for a stdout line containing `needle`; the text after it.
    pub fn wait_line(&mut self, needle: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(l) => {
                    if let Some(rest) = l.split(needle).nth(1) {
                        return rest.trim().to_string();
                    }
                }
                Err(_) => panic!(
                    "no line with {needle:?} on stdout; stderr:\n{}",
                    self.log_text()
                ),
            }
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Send a signal directly (not through a `kill` binary a minimal image may lack).
    pub fn signal(&self, sig: libc::c_int) {
        let pid = self.pid() as libc::pid_t;
        // SAFETY: kill(2) takes plain integers; the pid is our own live child.
        let r = unsafe { libc::kill(pid, sig) };
        assert_eq!(
            r,
            0,
            "kill({pid}, {sig}): {}",
            std::io::Error::last_os_error()
        );
    }

    /// Wait for exit; the exit code and how long it took.
    pub fn wait_exit(&mut self, limit: Duration) -> (Option<i32>, Duration) {
        let t = Instant::now();
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                return (s.code(), t.elapsed());
            }
            if t.elapsed() > limit {
                let _ = self.child.kill();
                panic!(
                    "pid {} did not exit within {limit:?}; stderr:\n{}",
                    self.pid(),
                    self.log_text()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `pedigree serve` on a free port of 127.0.0.1 with its data in `data`, read until it has
/// printed its URL and the admin token of a first start; killed when dropped (it is a [`Proc`]).
pub struct Serve {
    pub proc: Proc,
    pub url: String,
    pub admin: String,
    pub data: PathBuf,
}

impl Serve {
    /// `pedigree serve --data-dir DATA --listen 127.0.0.1:0 EXTRA…` with `env` (logging at
    /// `warn` unless `env` says otherwise) and stderr to `log`.
    pub fn start(data: &Path, extra: &[&str], env: &[(&str, &str)], log: PathBuf) -> Serve {
        let mut args = vec![
            "serve",
            "--data-dir",
            data.to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
        ];
        args.extend_from_slice(extra);
        let mut env_all = vec![("PEDIGREE_LOG", "warn")];
        env_all.extend_from_slice(env);
        let mut proc = Proc::spawn(&args, &env_all, log);
        let admin = proc.wait_line("admin token (shown once, stored only as a hash): ");
        assert!(admin.starts_with("pdg_"), "{admin}");
        let url = proc.wait_line("listening on ");
        Serve {
            proc,
            url,
            admin,
            data: data.to_path_buf(),
        }
    }

    /// The last 4000 bytes of the server's log, for a failing test's output.
    pub fn log_tail(&self) -> String {
        let s = self.proc.log_text();
        let start = s.len().saturating_sub(4000);
        s[s.floor_char_boundary(start)..].to_string()
    }

    /// The CLI against this server with `token` (none: anonymous).
    pub fn cli(&self, token: Option<&str>, args: &[&str]) -> std::process::Output {
        let mut c = Command::new(env!("CARGO_BIN_EXE_pedigree"));
        c.args(args)
            .env("PEDIGREE_URL", &self.url)
            .env_remove("PEDIGREE_TOKEN")
            .env_remove("PEDIGREE_CONFIG");
        if let Some(t) = token {
            c.env("PEDIGREE_TOKEN", t);
        }
        c.output().expect("run pedigree")
    }
}

/// The repository's root (test inputs are named from it).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The CLI as a user runs it, from the repository root, with none of the caller's registry
/// settings (`PEDIGREE_URL`, `_TOKEN`, `_CONFIG`) or `CI`: exit code, stdout, stderr.
pub fn pedigree(args: &[&str]) -> (i32, String, String) {
    pedigree_env(args, &[])
}

/// [`pedigree`] with extra environment variables.
pub fn pedigree_env(args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let mut c = Command::new(env!("CARGO_BIN_EXE_pedigree"));
    c.args(args)
        .current_dir(repo_root())
        .env_remove("CI")
        .env_remove("PEDIGREE_URL")
        .env_remove("PEDIGREE_TOKEN")
        .env_remove("PEDIGREE_CONFIG");
    for (k, v) in env {
        c.env(k, v);
    }
    let o = c.output().expect("run pedigree");
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// A JSON-schema validator for a schema under `crates/pedigree-cli/tests/schemas`.
pub fn validator(schema_file: &str) -> jsonschema::Validator {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/schemas")
        .join(schema_file);
    let text = std::fs::read_to_string(&path).unwrap();
    let schema: serde_json::Value = serde_json::from_str(&text).unwrap();
    jsonschema::validator_for(&schema).expect("schema compiles")
}

/// Deterministic test weights: xorshift64 from `state` (made odd), mapped to [-0.1, 0.1).
pub fn xorshift_floats(state: u64, n: usize) -> Vec<f32> {
    let mut x = state | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            ((x >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 0.2
        })
        .collect()
}

/// A model directory as a user pushes it: `model.safetensors` with these F32 tensors (name,
/// shape, values), `README.md` = `card`, and `config.json` when given. Returns the safetensors
/// bytes.
pub fn write_model(
    dir: &Path,
    tensors: &[(&str, Vec<usize>, Vec<f32>)],
    card: &str,
    config: Option<&str>,
) -> Vec<u8> {
    std::fs::create_dir_all(dir).unwrap();
    let bytes: Vec<Vec<u8>> = tensors
        .iter()
        .map(|(_, _, v)| v.iter().flat_map(|x| x.to_le_bytes()).collect())
        .collect();
    let views: Vec<(&str, safetensors::tensor::TensorView)> = tensors
        .iter()
        .zip(&bytes)
        .map(|((n, shape, _), b)| {
            let view =
                safetensors::tensor::TensorView::new(safetensors::Dtype::F32, shape.clone(), b);
            (*n, view.unwrap())
        })
        .collect();
    let st = safetensors::tensor::serialize(views, None).unwrap();
    std::fs::write(dir.join("model.safetensors"), &st).unwrap();
    std::fs::write(dir.join("README.md"), card).unwrap();
    if let Some(c) = config {
        std::fs::write(dir.join("config.json"), c).unwrap();
    }
    st
}

// The one moto launcher, shared with the registry crate's S3 tests.
#[path = "../../../pedigree-registry/tests/common/moto.rs"]
mod moto;
#[allow(unused_imports)] // not every test binary starts moto
pub use moto::Moto;

/// One unsigned S3 request to moto (fine while it checks no signatures): status and body.
pub fn raw_http(
    addr: std::net::SocketAddr,
    method: &str,
    path: &str,
    body: &[u8],
) -> std::io::Result<(u16, Vec<u8>)> {
    moto::raw_http(addr, method, path, body).map(|(status, _, body)| (status, body))
}
