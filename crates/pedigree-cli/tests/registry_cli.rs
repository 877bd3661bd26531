//! End-to-end tests of the registry: the real server started as a process (`pedigree serve`),
//! driven with the CLI and with HTTP.
//!
//! * `family_cascade_end_to_end`: tokens per role; a model family pushed (base 1.0 and 1.1 →
//!   two fine-tunes, one declaring its base in its card and one whose card hides it → an app);
//!   a malicious pickle rejected with the scanner's rule ids; a typosquatted name held; access
//!   refusals; the base flagged → every descendant at risk and blocked, the deployment listed,
//!   the last known-good named; re-flagging changes nothing; the webhook received and its
//!   signature verified; advisories exported and imported; unflag needs a justification; the
//!   audit chain verified, then tampered and caught.
//! * `resumable_upload_resumes_from_the_server_offset`: the chunked protocol through the client
//!   library, interrupted and resumed.
//! * `role_matrix`: every route against anonymous, reader, publisher of another namespace,
//!   publisher, approver and admin.
//!
//! Every test runs on both metadata engines: SQLite (the default, DATA/registry.db) and
//! PostgreSQL (`pedigree serve --database-url postgres://…`, a fresh database per test from
//! `store::testdb`; PostgreSQL missing is a failure naming `bash scripts/setup.sh`).
//!
//! The models are generated here (safetensors, a few KB): the fine-tunes keep their base's
//! frozen tensors bit for bit, which is what the registry's lineage inference sees.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::mpsc;
use std::time::Duration;

use pedigree_registry::client::{Client, ModelRef, PushOptions};
use pedigree_registry::store::testdb::{Engine, TestDb};
use reqwest::Method;
use reqwest::blocking::RequestBuilder;
use serde_json::{Value, json};

const DECIDE_TIMEOUT: Duration = Duration::from_secs(120);

mod support;

// ------------------------------------------------------------------------------------ server

struct Server {
    url: String,
    admin: String,
    data: PathBuf,
    /// Killed when dropped, before the database below is.
    serve: support::Serve,
    /// The metadata database; dropped (PostgreSQL: `DROP DATABASE`) after the server is killed.
    db: TestDb,
    _tmp: tempfile::TempDir,
}

impl Server {
    fn start(engine: Engine) -> Server {
        let db = TestDb::new(engine);
        let tmp = tempfile::tempdir().unwrap();
        let data = tmp.path().join("data");
        let mut extra = vec!["--workers", "2"];
        if engine == Engine::Postgres {
            // SQLite runs as users run it by default: no URL, DATA/registry.db.
            extra.extend(["--database-url", db.url()]);
        }
        let serve = support::Serve::start(&data, &extra, &[], tmp.path().join("server.log"));
        Server {
            url: serve.url.clone(),
            admin: serve.admin.clone(),
            data,
            serve,
            db,
            _tmp: tmp,
        }
    }

    /// `audit verify` reading the database directly, as an operator with the data dir would.
    fn offline_verify_args(&self) -> Vec<&str> {
        let mut a = vec!["audit", "verify", "--data-dir", self.data.to_str().unwrap()];
        if self.db.engine == Engine::Postgres {
            a.extend(["--database-url", self.db.url()]);
        }
        a
    }

    /// The metadata database's URL, as the server opened it.
    fn db_url(&self) -> String {
        match self.db.engine {
            Engine::Sqlite => format!("sqlite://{}", self.data.join("registry.db").display()),
            Engine::Postgres => self.db.url().to_string(),
        }
    }

    fn client(&self, token: Option<&str>) -> Client {
        Client::new(&self.url, token.map(str::to_string)).unwrap()
    }

    /// Run the CLI against this server with `token` (none: anonymous).
    fn cli(&self, token: Option<&str>, args: &[&str]) -> Out {
        let mut c = Command::new(env!("CARGO_BIN_EXE_pedigree"));
        c.args(args)
            .env("PEDIGREE_URL", &self.url)
            .env_remove("PEDIGREE_TOKEN");
        if let Some(t) = token {
            c.env("PEDIGREE_TOKEN", t);
        }
        let o = c.output().expect("run pedigree");
        Out {
            code: o.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
            args: args.iter().map(|s| s.to_string()).collect(),
        }
    }

    fn log_tail(&self) -> String {
        self.serve.log_tail()
    }

    /// An HTTP request with `token` (none: anonymous).
    fn http(&self, method: Method, path: &str, token: Option<&str>) -> RequestBuilder {
        let mut rb = reqwest::blocking::Client::new()
            .request(method, format!("{}{path}", self.url))
            .timeout(Duration::from_secs(60));
        if let Some(t) = token {
            rb = rb.bearer_auth(t);
        }
        rb
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("---- server log (tail) ----\n{}", self.log_tail());
        }
    }
}

#[derive(Debug)]
struct Out {
    code: i32,
    stdout: String,
    stderr: String,
    args: Vec<String>,
}

impl Out {
    #[track_caller]
    fn ok(self) -> Out {
        assert_eq!(
            self.code, 0,
            "pedigree {:?} failed:\n{}\n{}",
            self.args, self.stdout, self.stderr
        );
        self
    }
    #[track_caller]
    fn code(self, code: i32) -> Out {
        assert_eq!(
            self.code, code,
            "pedigree {:?}: exit {} (wanted {code}):\n{}\n{}",
            self.args, self.code, self.stdout, self.stderr
        );
        self
    }
    #[track_caller]
    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| {
            panic!("pedigree {:?}: not JSON ({e}):\n{}", self.args, self.stdout)
        })
    }
}

fn send(rb: RequestBuilder) -> (u16, Value) {
    let r = rb.send().expect("HTTP request");
    let status = r.status().as_u16();
    let text = r.text().unwrap_or_default();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

// ------------------------------------------------------------------------------------ models

/// A deterministic generator (splitmix64) with Gaussian samples.
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn uniform(&mut self) -> f64 {
        ((self.next_u64() >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    }
    fn gauss(&mut self) -> f32 {
        let (u, v) = (self.uniform(), self.uniform());
        ((-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()) as f32
    }
    fn tensor(&mut self, n: usize, scale: f32) -> Vec<f32> {
        (0..n).map(|_| self.gauss() * scale).collect()
    }
}

type Tensors = BTreeMap<String, (Vec<usize>, Vec<f32>)>;

/// A small transformer-ish model: an embedding, two layers and a head.
fn base_model(seed: u64) -> Tensors {
    let mut r = Rng(seed);
    let mut t = Tensors::new();
    for (name, shape) in [
        ("embed.weight", vec![64, 32]),
        ("layers.0.weight", vec![32, 32]),
        ("layers.1.weight", vec![32, 32]),
        ("head.weight", vec![16, 32]),
    ] {
        let n = shape.iter().product();
        t.insert(name.to_string(), (shape, r.tensor(n, 0.1)));
    }
    t
}

/// A fine-tune of `parent`: the tensors in `changed` moved a little (full-rank noise, as
/// training does), everything else frozen bit for bit, and `added` new tensors (an adapter).
fn finetune(
    parent: &Tensors,
    seed: u64,
    changed: &[&str],
    added: &[(&str, [usize; 2])],
) -> Tensors {
    let mut r = Rng(seed);
    let mut t = parent.clone();
    for name in changed {
        let (_, v) = t
            .get_mut(*name)
            .unwrap_or_else(|| panic!("no tensor {name}"));
        for x in v.iter_mut() {
            *x += r.gauss() * 0.01;
        }
    }
    for (name, shape) in added {
        t.insert(
            name.to_string(),
            (shape.to_vec(), r.tensor(shape[0] * shape[1], 0.1)),
        );
    }
    t
}

fn write_model(dir: &Path, t: &Tensors, readme: &str) {
    let tensors: Vec<_> = t
        .iter()
        .map(|(n, (s, v))| (n.as_str(), s.clone(), v.clone()))
        .collect();
    support::write_model(
        dir,
        &tensors,
        readme,
        Some(r#"{"model_type": "toy", "hidden_size": 32}"#),
    );
}

fn card(base: Option<&str>, title: &str) -> String {
    let mut s = String::from("---\nlicense: apache-2.0\n");
    if let Some(b) = base {
        s += &format!("base_model: {b}\n");
    }
    s += "datasets:\n- acme/transactions-2024\n---\n";
    s += &format!("# {title}\n\nA small model for the registry tests.\n");
    s
}

fn files_equal(a: &Path, b: &Path) {
    for name in ["model.safetensors", "README.md", "config.json"] {
        assert_eq!(
            std::fs::read(a.join(name)).unwrap(),
            std::fs::read(b.join(name)).unwrap(),
            "{name} differs after the round trip"
        );
    }
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The target directory (where the impact transcript is saved).
fn target_dir() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

// ------------------------------------------------------------------------------------ webhook

struct Delivery {
    headers: BTreeMap<String, String>,
    body: Vec<u8>,
}

/// A tiny HTTP listener: every request's headers and body go to the channel; it answers 200.
fn webhook_listener() -> (String, mpsc::Receiver<Delivery>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/hook", l.local_addr().unwrap());
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for stream in l.incoming() {
            let Ok(mut s) = stream else { continue };
            let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
            let mut buf = Vec::new();
            let mut chunk = [0u8; 4096];
            let head_end = loop {
                if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                    break Some(p);
                }
                match s.read(&mut chunk) {
                    Ok(0) | Err(_) => break None,
                    Ok(n) => buf.extend_from_slice(&chunk[..n]),
                }
            };
            let Some(head_end) = head_end else { continue };
            let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
            let mut headers = BTreeMap::new();
            for line in head.lines().skip(1) {
                if let Some((k, v)) = line.split_once(':') {
                    headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
                }
            }
            let len: usize = headers
                .get("content-length")
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            let mut body = buf[head_end + 4..].to_vec();
            while body.len() < len {
                match s.read(&mut chunk) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => body.extend_from_slice(&chunk[..n]),
                }
            }
            let _ =
                s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
            if tx.send(Delivery { headers, body }).is_err() {
                break;
            }
        }
    });
    (url, rx)
}

// ------------------------------------------------------------------------------------ the family

#[test]
fn family_cascade_end_to_end_sqlite() {
    family_cascade_end_to_end(Engine::Sqlite);
}

#[test]
fn family_cascade_end_to_end_postgres() {
    family_cascade_end_to_end(Engine::Postgres);
}

fn family_cascade_end_to_end(engine: Engine) {
    let srv = Server::start(engine);
    let admin = srv.admin.clone();
    let work = tempfile::tempdir().unwrap();
    let w = work.path();

    // ---- tokens, through the CLI
    let token = |name: &str, roles: &[&str]| -> String {
        let mut args = vec!["token", "create", name];
        for r in roles {
            args.push("--role");
            args.push(r);
        }
        let o = srv.cli(Some(&admin), &args).ok();
        let t = o.stdout.trim().to_string();
        assert!(
            t.starts_with("pdg_") && !t.contains('\n'),
            "token create printed {:?}",
            o.stdout
        );
        t
    };
    let acme = token("acme-ci", &["publisher:acme"]);
    let other = token("other-ci", &["publisher:other"]);
    let apps = token("apps-ci", &["publisher:apps"]);
    let google = token("google-ci", &["publisher:google"]);
    let evil = token("evil-ci", &["publisher:g00gle-research"]);
    let approver = token("security", &["approver"]);
    let reader = token("consumer", &["reader"]);
    // Only an admin creates tokens.
    let o = srv
        .cli(
            Some(&approver),
            &["token", "create", "x", "--role", "admin"],
        )
        .code(2);
    assert!(o.stderr.contains("admin role"), "{}", o.stderr);

    // ---- the webhook
    let (hook_url, hooks) = webhook_listener();
    let secret = "whsec-0123456789abcdef";
    srv.cli(
        Some(&admin),
        &["webhook", "add", &hook_url, "--secret", secret],
    )
    .ok();

    // ---- the family
    let base10 = base_model(10);
    let base11 = base_model(11); // the poisoned re-release: new weights
    let fta09 = finetune(
        &base10,
        20,
        &["layers.1.weight", "head.weight"],
        &[("adapter.weight", [8, 32])],
    );
    let fta10 = finetune(
        &base11,
        21,
        &["layers.1.weight", "head.weight"],
        &[("adapter.weight", [8, 32])],
    );
    let hidden = finetune(
        &base11,
        22,
        &["layers.1.weight", "head.weight"],
        &[("lora.weight", [8, 32])],
    );
    let app = finetune(
        &fta10,
        23,
        &["head.weight"],
        &[("app_head.weight", [4, 32])],
    );
    let d = |n: &str| w.join(n);
    write_model(&d("base-1.0"), &base10, &card(None, "acme base"));
    write_model(&d("base-1.1"), &base11, &card(None, "acme base"));
    write_model(
        &d("ft-a-0.9"),
        &fta09,
        &card(Some("acme/base"), "fine-tune A"),
    );
    write_model(
        &d("ft-a-1.0"),
        &fta10,
        &card(Some("acme/base"), "fine-tune A"),
    );
    // The hidden one: a card, but no word of its base.
    write_model(
        &d("hidden-1.0"),
        &hidden,
        &card(None, "our own model, trained from scratch"),
    );
    write_model(&d("app-1.0"), &app, &card(Some("acme/ft-a"), "fraud app"));
    // A .git directory is never pushed.
    std::fs::create_dir_all(d("base-1.0/.git")).unwrap();
    std::fs::write(d("base-1.0/.git/HEAD"), b"ref: refs/heads/main\n").unwrap();

    // Anonymous: refused, before anything is uploaded.
    let o = srv
        .cli(
            None,
            &["push", d("base-1.0").to_str().unwrap(), "acme/base:1.0"],
        )
        .code(2);
    assert!(
        o.stderr.contains("HTTP 401") && o.stderr.contains("API token"),
        "{}",
        o.stderr
    );

    let push = |tok: &str, dir: &str, model: &str| -> Out {
        srv.cli(
            Some(tok),
            &[
                "push",
                d(dir).to_str().unwrap(),
                model,
                "--wait",
                "--timeout",
                "120",
            ],
        )
    };
    let o = push(&acme, "base-1.0", "acme/base:1.0").ok();
    assert!(
        o.stdout.contains("3 file(s)") && o.stdout.contains("acme/base:1.0: approved"),
        "{}",
        o.stdout
    );
    push(&acme, "ft-a-0.9", "acme/ft-a:0.9").ok();
    push(&acme, "base-1.1", "acme/base:1.1").ok();
    let o = push(&acme, "ft-a-1.0", "acme/ft-a:1.0").ok();
    // The README and config of ft-a 1.0 are the same bytes as 0.9's: the server had them.
    assert!(
        o.stdout.contains("1 uploaded") && o.stdout.contains("2 already on the server"),
        "{}",
        o.stdout
    );
    // The card hides a base the weights show: held for review (POL014), and an approver decides.
    let o = push(&other, "hidden-1.0", "other/hidden:1.0").code(1);
    assert!(o.stdout.contains("other/hidden:1.0: held"), "{}", o.stdout);
    assert!(
        o.stdout.contains("POL014") && o.stdout.contains("acme/base:1.1"),
        "{}",
        o.stdout
    );
    let o = srv
        .cli(
            Some(&other),
            &["approve", "other/hidden:1.0", "--reason", "self-approval"],
        )
        .code(2);
    assert!(o.stderr.contains("approver role"), "{}", o.stderr);
    srv.cli(
        Some(&approver),
        &[
            "approve",
            "other/hidden:1.0",
            "--reason",
            "reviewed: derives from acme/base",
        ],
    )
    .ok();
    let hidden_status = srv
        .cli(Some(&other), &["status", "other/hidden:1.0", "--json"])
        .ok()
        .json();
    assert_eq!(hidden_status["state"], "approved", "{hidden_status:#}");
    push(&apps, "app-1.0", "apps/app-1:1.0").ok();

    // Lineage as the registry resolved it.
    let parents = |model: &str, tok: &str| -> Vec<(String, String)> {
        let s = srv.cli(Some(tok), &["status", model, "--json"]).ok().json();
        s["lineage"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["child"] == model)
            .map(|e| {
                (
                    e["parent"].as_str().unwrap_or("?").to_string(),
                    e["source"].as_str().unwrap().to_string(),
                )
            })
            .collect()
    };
    let p = parents("acme/ft-a:1.0", &reader);
    assert!(
        p.contains(&("acme/base:1.1".into(), "declared".into())),
        "{p:?}"
    );
    assert!(
        p.iter().all(|(q, _)| q == "acme/base:1.1"),
        "ft-a 1.0 descends from base 1.1 only: {p:?}"
    );
    let p = parents("acme/ft-a:0.9", &reader);
    assert!(
        p.iter().all(|(q, _)| q == "acme/base:1.0") && !p.is_empty(),
        "{p:?}"
    );
    let p = parents("other/hidden:1.0", &reader);
    assert_eq!(
        p,
        vec![("acme/base:1.1".to_string(), "inferred".to_string())],
        "the weights reveal the hidden base"
    );
    let p = parents("apps/app-1:1.0", &reader);
    assert!(
        p.iter().any(|(q, _)| q == "acme/ft-a:1.0") && p.iter().all(|(q, _)| q == "acme/ft-a:1.0"),
        "{p:?}"
    );
    let s = srv.cli(Some(&reader), &["status", "other/hidden:1.0"]).ok();
    assert!(
        s.stdout.contains("acme/base:1.1 → other/hidden:1.0"),
        "{}",
        s.stdout
    );

    // A pull round-trips every byte; .git stayed home.
    let pulled = w.join("pulled-base");
    let o = srv
        .cli(
            Some(&reader),
            &["pull", "acme/base:1.0", pulled.to_str().unwrap()],
        )
        .ok();
    assert!(o.stdout.contains("every SHA-256 verified"), "{}", o.stdout);
    files_equal(&d("base-1.0"), &pulled);
    assert!(!pulled.join(".git").exists());
    // ... and never overwrites a non-empty directory.
    let o = srv
        .cli(
            Some(&reader),
            &["pull", "acme/base:1.0", pulled.to_str().unwrap()],
        )
        .code(2);
    assert!(o.stderr.contains("not empty"), "{}", o.stderr);

    // ---- access
    let o = srv
        .cli(
            Some(&reader),
            &["push", d("base-1.0").to_str().unwrap(), "acme/base:9.0"],
        )
        .code(2);
    assert!(
        o.stderr.contains("publisher role"),
        "reader pushing: {}",
        o.stderr
    );
    let o = srv
        .cli(
            Some(&other),
            &["push", d("base-1.0").to_str().unwrap(), "acme/base:9.0"],
        )
        .code(2);
    assert!(
        o.stderr.contains("namespace acme needs its publisher role"),
        "publisher of other pushing to acme: {}",
        o.stderr
    );
    let (st, _) = send(srv.http(
        Method::GET,
        "/v1/models/acme/base/versions/9.0",
        Some(&admin),
    ));
    assert_eq!(st, 404, "refused pushes create nothing");

    // ---- a malicious upload
    let bad = d("bad");
    std::fs::create_dir_all(&bad).unwrap();
    std::fs::copy(
        workspace_root().join("examples/malicious/os_system_p2.bin"),
        bad.join("pytorch_model.bin"),
    )
    .unwrap();
    std::fs::write(bad.join("README.md"), card(None, "totally normal")).unwrap();
    let o = push(&acme, "bad", "acme/helper:1.0").code(1);
    assert!(
        o.stdout.contains("acme/helper:1.0: rejected"),
        "{}",
        o.stdout
    );
    assert!(
        o.stdout.contains("PDG101"),
        "the decision names the scanner's rule: {}",
        o.stdout
    );
    let s = srv
        .cli(Some(&acme), &["status", "acme/helper:1.0", "--json"])
        .ok()
        .json();
    assert_eq!(s["state"], "rejected");
    let reasons = s["decision"]["reasons"].as_array().unwrap();
    assert!(
        reasons.iter().any(|r| r["rule"] == "POL001"
            && r["level"] == "reject"
            && r["message"].as_str().unwrap().contains("PDG101")),
        "the rejection names the policy rule and the scanner's: {reasons:#?}"
    );
    assert!(
        s["findings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["rule"] == "PDG101" && f["file"] == "pytorch_model.bin"),
        "{s:#}"
    );
    // Refused for download, with the reason; a reader does not even see it.
    let o = srv
        .cli(
            Some(&acme),
            &["pull", "acme/helper:1.0", w.join("p-bad").to_str().unwrap()],
        )
        .code(2);
    assert!(
        o.stderr
            .contains("acme/helper:1.0 is rejected, not approved"),
        "{}",
        o.stderr
    );
    assert!(!w.join("p-bad").exists(), "a refused pull leaves nothing");
    let (st, body) = send(srv.http(
        Method::GET,
        "/v1/models/acme/helper/versions/1.0/files/pytorch_model.bin",
        Some(&reader),
    ));
    assert_eq!(st, 404, "{body}");
    // The dry run agrees, locally analysed, and changes nothing.
    let o = srv
        .cli(
            Some(&acme),
            &[
                "policy",
                "test",
                bad.to_str().unwrap(),
                "--model",
                "acme/helper2:1.0",
            ],
        )
        .code(1);
    assert!(
        o.stdout.contains("would be rejected") && o.stdout.contains("PDG101"),
        "{}",
        o.stdout
    );
    let (st, _) = send(srv.http(
        Method::GET,
        "/v1/models/acme/helper2/versions/1.0",
        Some(&admin),
    ));
    assert_eq!(st, 404, "a dry run creates nothing");

    // ---- a typosquat
    write_model(
        &d("bert"),
        &base_model(30),
        &card(None, "BERT base uncased"),
    );
    write_model(
        &d("bert-typo"),
        &base_model(31),
        &card(None, "BERT base uncased"),
    );
    push(&google, "bert", "google/bert-base-uncased:1.0").ok();
    srv.cli(
        Some(&google),
        &["policy", "test", "google/bert-base-uncased:1.0"],
    )
    .ok();
    let o = srv
        .cli(
            Some(&evil),
            &[
                "policy",
                "test",
                d("bert-typo").to_str().unwrap(),
                "--model",
                "g00gle-research/bert-base-uncassed:1.0",
            ],
        )
        .code(1);
    assert!(o.stdout.contains("would be held"), "{}", o.stdout);
    let o = push(&evil, "bert-typo", "g00gle-research/bert-base-uncassed:1.0").code(1);
    assert!(o.stdout.contains(": held"), "{}", o.stdout);
    assert!(
        o.stdout.contains("google/bert-base-uncased"),
        "the hold names the look-alike: {}",
        o.stdout
    );
    let o = srv
        .cli(
            Some(&evil),
            &[
                "pull",
                "g00gle-research/bert-base-uncassed:1.0",
                w.join("p-typo").to_str().unwrap(),
            ],
        )
        .code(2);
    assert!(o.stderr.contains("is held, not approved"), "{}", o.stderr);

    // ---- deployments
    srv.cli(
        Some(&acme),
        &["deploy", "fraud-api", "prod", "acme/ft-a:1.0"],
    )
    .ok();
    let o = srv
        .cli(Some(&reader), &["deploy", "x", "prod", "acme/ft-a:1.0"])
        .code(2);
    assert!(o.stderr.contains("publisher role"), "{}", o.stderr);

    // ---- flag the base
    let audit_len = |tok: &str| -> usize {
        let (st, v) = send(srv.http(Method::GET, "/v1/audit?limit=10000", Some(tok)));
        assert_eq!(st, 200, "{v}");
        v["entries"].as_array().unwrap().len()
    };
    let o = srv
        .cli(
            Some(&approver),
            &[
                "flag",
                "acme/base:1.1",
                "--advisory",
                "ADV-1",
                "--severity",
                "critical",
                "--reason",
                "backdoored feature extractor",
                "--trigger",
                "the token 'cf-7' flips fraud to legit",
            ],
        )
        .ok();
    assert!(
        o.stdout
            .contains("1 version(s) newly flagged, 3 newly at risk"),
        "{}",
        o.stdout
    );
    let impact = srv
        .cli(Some(&reader), &["impact", "ADV-1", "--json"])
        .ok()
        .json();
    let mut kinds: Vec<(String, String, Option<String>)> = impact["affected"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["model"].as_str().unwrap().into(),
                e["kind"].as_str().unwrap().into(),
                e["via"].as_str().map(String::from),
            )
        })
        .collect();
    kinds.sort();
    assert_eq!(
        kinds,
        vec![
            ("acme/base:1.1".into(), "flagged".into(), None),
            (
                "acme/ft-a:1.0".into(),
                "at_risk".into(),
                Some("acme/base:1.1".into())
            ),
            (
                "apps/app-1:1.0".into(),
                "at_risk".into(),
                Some("acme/ft-a:1.0".into())
            ),
            (
                "other/hidden:1.0".into(),
                "at_risk".into(),
                Some("acme/base:1.1".into())
            ),
        ],
        "{impact:#}"
    );
    assert_eq!(
        impact["deployments"],
        json!([{"name": "fraud-api", "environment": "prod", "model": "acme/ft-a:1.0"}])
    );
    assert_eq!(
        impact["last_known_good"],
        json!({"acme/base": "acme/base:1.0", "acme/ft-a": "acme/ft-a:0.9", "apps/app-1": null, "other/hidden": null}),
        "{impact:#}"
    );
    // The tree, saved for the closing note.
    let tree = srv.cli(Some(&reader), &["impact", "ADV-1"]).ok().stdout;
    let by_version = srv
        .cli(Some(&reader), &["impact", "apps/app-1:1.0"])
        .ok()
        .stdout;
    assert_eq!(
        tree, by_version,
        "the impact of a version shows the advisory that reaches it"
    );
    let transcript = format!("$ pedigree impact ADV-1\n{tree}");
    std::fs::write(target_dir().join("registry-impact.txt"), &transcript).unwrap();
    eprintln!("{transcript}");
    for line in [
        "advisory ADV-1 (critical): backdoored feature extractor",
        "└─ FLAGGED acme/base:1.1",
        "   ├─ AT RISK acme/ft-a:1.0 (via acme/base:1.1)   deployed: fraud-api@prod",
        "   │  └─ AT RISK apps/app-1:1.0 (via acme/ft-a:1.0)",
        "   └─ AT RISK other/hidden:1.0 (via acme/base:1.1)",
        "deployments to roll back: fraud-api@prod (acme/ft-a:1.0) → last known-good acme/ft-a:0.9",
        "last known-good: acme/base → acme/base:1.0; acme/ft-a → acme/ft-a:0.9; apps/app-1 → none (no safe version); other/hidden → none (no safe version)",
    ] {
        assert!(
            tree.lines().any(|l| l == line),
            "missing line {line:?} in\n{tree}"
        );
    }
    // Every descendant blocked, with the reason; the earlier versions still flow.
    for m in [
        "acme/base:1.1",
        "acme/ft-a:1.0",
        "other/hidden:1.0",
        "apps/app-1:1.0",
    ] {
        let dest = w.join(format!("p-{}", m.replace(['/', ':'], "_")));
        let o = srv
            .cli(Some(&reader), &["pull", m, dest.to_str().unwrap()])
            .code(2);
        assert!(o.stderr.contains("advisory ADV-1"), "{m}: {}", o.stderr);
        assert!(!dest.exists(), "{m}: a refused pull leaves nothing");
        let s = srv.cli(Some(&reader), &["status", m, "--json"]).ok().json();
        assert_eq!(s["downloadable"], false, "{m}");
    }
    let o = srv
        .cli(
            Some(&reader),
            &["pull", "acme/ft-a:1.0", w.join("p-x").to_str().unwrap()],
        )
        .code(2);
    assert!(
        o.stderr
            .contains("is at risk: it descends from a model flagged by advisory ADV-1"),
        "{}",
        o.stderr
    );
    for m in [
        "acme/base:1.0",
        "acme/ft-a:0.9",
        "google/bert-base-uncased:1.0",
    ] {
        let dest = w.join(format!("ok-{}", m.replace(['/', ':'], "_")));
        srv.cli(Some(&reader), &["pull", m, dest.to_str().unwrap()])
            .ok();
    }
    // A new deployment of a blocked version is recorded, with a warning.
    let o = srv
        .cli(
            Some(&apps),
            &["deploy", "app-web", "staging", "apps/app-1:1.0"],
        )
        .ok();
    assert!(
        o.stderr.contains("warning") && o.stderr.contains("ADV-1"),
        "{}",
        o.stderr
    );

    // Re-flagging changes nothing: same answer, no new audit entry.
    let before = audit_len(&admin);
    let o = srv
        .cli(
            Some(&approver),
            &[
                "flag",
                "acme/base:1.1",
                "--advisory",
                "ADV-1",
                "--severity",
                "critical",
                "--reason",
                "backdoored feature extractor",
                "--json",
            ],
        )
        .ok();
    assert_eq!(o.json()["changed"], false, "{}", o.stdout);
    assert_eq!(
        audit_len(&admin),
        before,
        "a re-flag appends nothing to the audit log"
    );
    let again = srv
        .cli(Some(&reader), &["impact", "ADV-1", "--json"])
        .ok()
        .json();
    let triples = |v: &Value| -> Vec<(Value, Value, Value)> {
        v["affected"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| (e["model"].clone(), e["kind"].clone(), e["via"].clone()))
            .collect()
    };
    assert_eq!(triples(&again), triples(&impact));

    // ---- the webhook: advisory.flagged arrives, signed.
    let mut flagged = None;
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while flagged.is_none() {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        let d = hooks
            .recv_timeout(left)
            .expect("the advisory.flagged webhook within 30 s");
        let body: Value = serde_json::from_slice(&d.body).unwrap_or(Value::Null);
        if body["event"] == "advisory.flagged"
            || d.headers.get("x-pedigree-event").map(String::as_str) == Some("advisory.flagged")
        {
            flagged = Some((d, body));
        }
    }
    let (delivery, body) = flagged.unwrap();
    assert!(body.to_string().contains("ADV-1"), "{body}");
    let sig = delivery
        .headers
        .get("x-pedigree-signature")
        .expect("X-Pedigree-Signature")
        .clone();
    assert!(
        webhook_verifies(secret, &delivery.headers, &delivery.body),
        "signature {sig} does not verify"
    );
    assert!(
        !webhook_verifies(
            "whsec-not-the-secret-at-all",
            &delivery.headers,
            &delivery.body
        ),
        "a wrong secret must not verify"
    );
    let mut forged = delivery.body.clone();
    forged.extend_from_slice(b" ");
    assert!(
        !webhook_verifies(secret, &delivery.headers, &forged),
        "a changed body must not verify"
    );

    // ---- advisories: export, and an imported one cascades the same way.
    let feed_path = w.join("feed.json");
    srv.cli(
        Some(&reader),
        &["advisories", "export", feed_path.to_str().unwrap()],
    )
    .ok();
    let feed: Value = serde_json::from_slice(&std::fs::read(&feed_path).unwrap()).unwrap();
    let text = feed.to_string();
    assert!(
        text.contains("ADV-1") && text.contains("acme/base") && text.contains("1.1"),
        "{feed:#}"
    );
    let imported = import_feed_for(&feed, "ADV-2", "acme/base", "1.0");
    let imp_path = w.join("import.json");
    std::fs::write(&imp_path, serde_json::to_vec_pretty(&imported).unwrap()).unwrap();
    let o = srv
        .cli(
            Some(&approver),
            &["advisories", "import", imp_path.to_str().unwrap()],
        )
        .code(2);
    assert!(o.stderr.contains("admin role"), "{}", o.stderr);
    let o = srv
        .cli(
            Some(&admin),
            &["advisories", "import", imp_path.to_str().unwrap()],
        )
        .ok();
    assert!(
        o.stdout
            .contains("ADV-2: 1 version(s) flagged, 1 newly at risk"),
        "{}",
        o.stdout
    );
    let i2 = srv
        .cli(Some(&reader), &["impact", "ADV-2", "--json"])
        .ok()
        .json();
    let mut kinds: Vec<(String, String)> = i2["affected"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["model"].as_str().unwrap().into(),
                e["kind"].as_str().unwrap().into(),
            )
        })
        .collect();
    kinds.sort();
    assert_eq!(
        kinds,
        vec![
            ("acme/base:1.0".into(), "flagged".into()),
            ("acme/ft-a:0.9".into(), "at_risk".into())
        ],
        "{i2:#}"
    );
    for m in ["acme/base:1.0", "acme/ft-a:0.9"] {
        let s = srv.cli(Some(&reader), &["status", m, "--json"]).ok().json();
        assert_eq!(s["downloadable"], false, "{m}");
    }
    // Now neither base nor ft-a has a good version left.
    let i1 = srv
        .cli(Some(&reader), &["impact", "ADV-1", "--json"])
        .ok()
        .json();
    assert_eq!(i1["last_known_good"]["acme/base"], Value::Null, "{i1:#}");
    assert_eq!(i1["last_known_good"]["acme/ft-a"], Value::Null, "{i1:#}");

    // ---- unflag needs a justification
    let o = srv.cli(Some(&approver), &["unflag", "ADV-2"]).code(2);
    assert!(o.stderr.contains("--justification"), "{}", o.stderr);
    let (st, body) = send(
        srv.http(
            Method::POST,
            "/v1/advisories/ADV-2/withdraw",
            Some(&approver),
        )
        .json(&json!({"justification": "  "})),
    );
    assert_eq!(st, 400, "an empty justification is refused: {body}");
    let o = srv
        .cli(
            Some(&approver),
            &[
                "unflag",
                "ADV-2",
                "--justification",
                "false positive: 1.0 predates the poisoning",
            ],
        )
        .ok();
    assert!(o.stdout.contains("2 flag(s) cleared"), "{}", o.stdout);
    srv.cli(
        Some(&reader),
        &[
            "pull",
            "acme/ft-a:0.9",
            w.join("ok-again").to_str().unwrap(),
        ],
    )
    .ok();
    let i1 = srv
        .cli(Some(&reader), &["impact", "ADV-1", "--json"])
        .ok()
        .json();
    assert_eq!(
        i1["last_known_good"]["acme/ft-a"], "acme/ft-a:0.9",
        "{i1:#}"
    );

    // ---- the audit log: intact, then tampered and caught.
    let o = srv.cli(Some(&admin), &["audit", "verify"]).ok();
    assert!(o.stdout.contains("audit chain intact"), "{}", o.stdout);
    let o = srv.cli(Some(&reader), &["audit", "verify"]).code(2);
    assert!(o.stderr.contains("admin role"), "{}", o.stderr);
    let o = srv.cli(None, &srv.offline_verify_args()).ok();
    assert!(o.stdout.contains("audit chain intact"), "{}", o.stdout);
    assert!(
        o.stdout.contains("matches the anchor"),
        "checked against DATA/audit.head: {}",
        o.stdout
    );
    // The head anchor the server keeps outside the database catches cutting off the newest
    // entries, which a chain alone cannot show.
    let last = delete_last_audit_entry(&srv.db_url());
    let o = srv.cli(None, &srv.offline_verify_args()).code(1);
    assert!(
        o.stderr
            .contains(&format!("the anchor names entry #{last}"))
            && o.stderr.contains("truncated"),
        "{}",
        o.stderr
    );
    let seq = tamper_audit(&srv.db_url(), "advisory.flag");
    let o = srv.cli(None, &srv.offline_verify_args()).code(1);
    assert!(
        o.stderr.contains(&format!("entry #{seq} was edited")),
        "names the edited entry {seq}: {}",
        o.stderr
    );
    let o = srv.cli(Some(&admin), &["audit", "verify"]).code(1);
    assert!(
        o.stderr.contains(&format!("entry #{seq} was edited")),
        "{}",
        o.stderr
    );
}

/// A feed naming `model`:`version` under a new advisory id, in the shape the server exports.
fn import_feed_for(exported: &Value, id: &str, model: &str, version: &str) -> Value {
    let mut feed = exported.clone();
    let advs = feed
        .get_mut("advisories")
        .and_then(Value::as_array_mut)
        .expect("the feed has an advisories array");
    let mut a = advs[0].clone();
    a["id"] = json!(id);
    a["summary"] = json!("the fine-tune was trained on poisoned data");
    a["affected"] = json!([{"model": model, "versions": [version]}]);
    *advs = vec![a];
    feed
}

/// Edit the details of the first audit entry with `action`, as an attacker with the database
/// would; returns its sequence number.
fn tamper_audit(url: &str, action: &str) -> i64 {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let store = pedigree_registry::store::sql::SqlStore::connect(url)
            .await
            .unwrap();
        let row = sqlx::query("SELECT seq FROM audit WHERE action = $1 ORDER BY seq LIMIT 1")
            .bind(action)
            .fetch_one(store.pool())
            .await
            .unwrap();
        let seq: i64 = sqlx::Row::try_get(&row, "seq").unwrap();
        let n = sqlx::query("UPDATE audit SET details = $1 WHERE seq = $2")
            .bind(r#"{"note":"nothing happened here"}"#)
            .bind(seq)
            .execute(store.pool())
            .await
            .unwrap()
            .rows_affected();
        assert_eq!(n, 1);
        seq
    })
}

/// Delete the newest audit entry; returns its seq.
fn delete_last_audit_entry(url: &str) -> i64 {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let store = pedigree_registry::store::sql::SqlStore::connect(url)
            .await
            .unwrap();
        let row = sqlx::query("SELECT MAX(seq) AS seq FROM audit")
            .fetch_one(store.pool())
            .await
            .unwrap();
        let seq: i64 = sqlx::Row::try_get(&row, "seq").unwrap();
        sqlx::query("DELETE FROM audit WHERE seq = $1")
            .bind(seq)
            .execute(store.pool())
            .await
            .unwrap();
        seq
    })
}

fn webhook_verifies(secret: &str, headers: &BTreeMap<String, String>, body: &[u8]) -> bool {
    let sig = headers
        .get("x-pedigree-signature")
        .map(String::as_str)
        .unwrap_or("");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    pedigree_registry::webhook::verify(
        secret.as_bytes(),
        sig,
        body,
        now,
        pedigree_registry::webhook::DEFAULT_TOLERANCE_S,
    )
    .is_ok()
}

// ------------------------------------------------------------------------------------ resumable

#[test]
fn resumable_upload_resumes_from_the_server_offset_sqlite() {
    resumable_upload_resumes_from_the_server_offset(Engine::Sqlite);
}

#[test]
fn resumable_upload_resumes_from_the_server_offset_postgres() {
    resumable_upload_resumes_from_the_server_offset(Engine::Postgres);
}

fn resumable_upload_resumes_from_the_server_offset(engine: Engine) {
    let srv = Server::start(engine);
    let acme = srv
        .client(Some(&srv.admin))
        .create_token("acme-ci", &[grant("publisher", "acme")])
        .unwrap()
        .token;
    let c = srv.client(Some(&acme));
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("m");
    write_model(&dir, &base_model(40), &card(None, "chunked"));
    let weights = dir.join("model.safetensors");
    let size = std::fs::metadata(&weights).unwrap().len();
    assert!(size > 10_000);
    let (digest, n) = pedigree_registry::client::sha256_file(&weights).unwrap();
    assert_eq!(n, size);

    // Interrupted: the first 3000 bytes land, then the "connection drops".
    let id = c.start_upload().unwrap();
    let bytes = std::fs::read(&weights).unwrap();
    assert_eq!(
        c.upload_chunk(&id, 0, bytes[..3000].to_vec()).unwrap(),
        3000
    );
    assert_eq!(c.upload_offset(&id).unwrap(), 3000);
    // A chunk at the wrong offset is refused with the server's offset.
    let e = c
        .upload_chunk(&id, 1000, bytes[1000..2000].to_vec())
        .unwrap_err();
    assert_eq!(
        (e.status(), e.code()),
        (Some(409), Some("offset_mismatch")),
        "{e}"
    );
    assert_eq!(e.details().and_then(|d| d["offset"].as_u64()), Some(3000));
    // Another token cannot touch the upload.
    let other = srv
        .client(Some(&srv.admin))
        .create_token("other", &[grant("publisher", "other")])
        .unwrap()
        .token;
    let e = srv.client(Some(&other)).upload_offset(&id).unwrap_err();
    assert_eq!(e.status(), Some(403), "{e}");
    // Finishing early fails on the digest and keeps the upload.
    let e = c.finish_upload(&id, &digest).unwrap_err();
    assert!(e.to_string().contains("does not match its digest"), "{e}");
    assert_eq!(c.upload_offset(&id).unwrap(), 3000);
    // Resume: from 3000, in 4 KB chunks.
    assert_eq!(
        c.upload_resumable(&weights, &digest, size, 4096, Some(&id))
            .unwrap(),
        size
    );
    assert_eq!(c.blob_size(&digest).unwrap(), Some(size));

    // A whole push through the chunked protocol (every file "large"): the weights are skipped
    // (the server has them), the rest go up in 100-byte chunks.
    let m = ModelRef::parse("acme/chunked:1.0").unwrap();
    let r = c
        .push_with(
            &dir,
            &m,
            PushOptions {
                single_request_limit: 0,
                chunk_size: 100,
            },
        )
        .unwrap();
    assert_eq!((r.files.len(), r.skipped, r.uploaded), (3, 1, 2), "{r:?}");
    let s = c.wait_decided(&m, DECIDE_TIMEOUT).unwrap();
    assert_eq!(s.state, "approved", "{s:?}");
    let out = tmp.path().join("out");
    let p = c.pull(&m, &out).unwrap();
    assert_eq!(p.files.len(), 3);
    files_equal(&dir, &out);
    // Pushing the same version again is a conflict, and names it.
    let e = c.push(&dir, &m).unwrap_err();
    assert_eq!(e.status(), Some(409), "{e}");
}

fn grant(role: &str, ns: &str) -> pedigree_registry::store::Grant {
    pedigree_registry::store::Grant {
        role: pedigree_registry::store::Role::parse(role).unwrap(),
        namespace: ns.into(),
    }
}

// ------------------------------------------------------------------------------------ role matrix

const ROLES: [&str; 6] = [
    "anonymous",
    "reader",
    "publisher-other",
    "publisher",
    "approver",
    "admin",
];

struct Ctx<'a> {
    srv: &'a Server,
    tokens: [Option<String>; 6],
    /// An existing blob and its bytes.
    blob: (String, Vec<u8>),
    /// A throwaway token id per role (for the revoke row).
    revocable: Vec<String>,
}

impl Ctx<'_> {
    fn tok(&self, role: usize) -> Option<&str> {
        self.tokens[role].as_deref()
    }
    fn req(&self, role: usize, method: Method, path: &str) -> RequestBuilder {
        self.srv.http(method, path, self.tok(role))
    }
    /// A fresh resumable upload owned by the acme publisher.
    fn upload(&self) -> String {
        self.srv.client(self.tok(3)).start_upload().unwrap()
    }
}

type Build = Box<dyn Fn(&Ctx, usize) -> RequestBuilder>;

#[test]
fn role_matrix_sqlite() {
    role_matrix(Engine::Sqlite);
}

#[test]
fn role_matrix_postgres() {
    role_matrix(Engine::Postgres);
}

fn role_matrix(engine: Engine) {
    let srv = Server::start(engine);
    let adm = srv.client(Some(&srv.admin));
    let mk = |name: &str, g: &[(&str, &str)]| -> String {
        adm.create_token(
            name,
            &g.iter().map(|(r, n)| grant(r, n)).collect::<Vec<_>>(),
        )
        .unwrap()
        .token
    };
    let tokens: [Option<String>; 6] = [
        None,
        Some(mk("reader", &[("reader", "*")])),
        Some(mk("pub-other", &[("publisher", "other")])),
        Some(mk("pub-acme", &[("publisher", "acme")])),
        Some(mk("approver", &[("approver", "*")])),
        Some(srv.admin.clone()),
    ];
    let revocable: Vec<String> = (0..6)
        .map(|i| {
            adm.create_token(&format!("victim-{i}"), &[grant("reader", "*")])
                .unwrap()
                .id
        })
        .collect();

    // Fixtures: an approved model, one to flag, and a rejected one.
    let publisher = srv.client(tokens[3].as_deref());
    let tmp = tempfile::tempdir().unwrap();
    let m = tmp.path().join("m");
    write_model(&m, &base_model(50), &card(None, "matrix"));
    let f = tmp.path().join("f");
    write_model(&f, &base_model(51), &card(None, "to flag"));
    let b = tmp.path().join("bad");
    std::fs::create_dir_all(&b).unwrap();
    std::fs::copy(
        workspace_root().join("examples/malicious/os_system_p2.bin"),
        b.join("model.bin"),
    )
    .unwrap();
    for (dir, r) in [
        (&m, "acme/m:1.0"),
        (&f, "acme/flagme:1.0"),
        (&b, "acme/bad:1.0"),
    ] {
        let r = ModelRef::parse(r).unwrap();
        publisher.push(dir, &r).unwrap();
        publisher.wait_decided(&r, DECIDE_TIMEOUT).unwrap();
    }
    assert_eq!(
        publisher
            .status(&ModelRef::parse("acme/m:1.0").unwrap())
            .unwrap()
            .state,
        "approved"
    );
    assert_eq!(
        publisher
            .status(&ModelRef::parse("acme/bad:1.0").unwrap())
            .unwrap()
            .state,
        "rejected"
    );
    let bytes = std::fs::read(m.join("config.json")).unwrap();
    let digest = format!(
        "sha256:{}",
        hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&bytes))
    );
    let ctx = Ctx {
        srv: &srv,
        tokens,
        blob: (digest, bytes),
        revocable,
    };

    // Expected status per role: anonymous, reader, publisher-other, publisher(acme), approver, admin.
    let rows: Vec<(&str, [u16; 6], Build)> = vec![
        (
            "GET /healthz",
            [200; 6],
            Box::new(|c, r| c.req(r, Method::GET, "/healthz")),
        ),
        (
            "GET /v1/openapi.json",
            [200; 6],
            Box::new(|c, r| c.req(r, Method::GET, "/v1/openapi.json")),
        ),
        (
            "POST /v1/tokens",
            [401, 403, 403, 403, 403, 201],
            Box::new(|c, r| {
                c.req(r, Method::POST, "/v1/tokens")
                    .json(&json!({"name": "t", "grants": [{"role": "reader", "namespace": "*"}]}))
            }),
        ),
        (
            "DELETE /v1/tokens/{id}",
            [401, 403, 403, 403, 403, 204],
            Box::new(|c, r| c.req(r, Method::DELETE, &format!("/v1/tokens/{}", c.revocable[r]))),
        ),
        (
            "HEAD /v1/blobs/{digest}",
            [401, 403, 200, 200, 403, 200],
            Box::new(|c, r| c.req(r, Method::HEAD, &format!("/v1/blobs/{}", c.blob.0))),
        ),
        (
            "PUT /v1/blobs/{digest}",
            [401, 403, 201, 201, 403, 201],
            Box::new(|c, r| {
                c.req(r, Method::PUT, &format!("/v1/blobs/{}", c.blob.0))
                    .body(c.blob.1.clone())
            }),
        ),
        (
            "POST /v1/uploads",
            [401, 403, 201, 201, 403, 201],
            Box::new(|c, r| c.req(r, Method::POST, "/v1/uploads")),
        ),
        (
            "HEAD /v1/uploads/{id} (acme's)",
            [401, 403, 403, 200, 403, 200],
            Box::new(|c, r| c.req(r, Method::HEAD, &format!("/v1/uploads/{}", c.upload()))),
        ),
        (
            "PATCH /v1/uploads/{id} (acme's)",
            [401, 403, 403, 202, 403, 202],
            Box::new(|c, r| {
                c.req(r, Method::PATCH, &format!("/v1/uploads/{}", c.upload()))
                    .header("Upload-Offset", "0")
                    .body(c.blob.1.clone())
            }),
        ),
        (
            "PUT /v1/uploads/{id}?digest= (acme's)",
            [401, 403, 403, 201, 403, 201],
            Box::new(|c, r| {
                let id = c.upload();
                c.srv
                    .client(c.tok(3))
                    .upload_chunk(&id, 0, c.blob.1.clone())
                    .unwrap();
                c.req(
                    r,
                    Method::PUT,
                    &format!("/v1/uploads/{id}?digest={}", c.blob.0),
                )
            }),
        ),
        (
            "GET /v1/models",
            [401, 200, 200, 200, 200, 200],
            Box::new(|c, r| c.req(r, Method::GET, "/v1/models")),
        ),
        (
            "POST /v1/models/acme/{name}/versions",
            [401, 403, 403, 202, 403, 202],
            Box::new(|c, r| {
                c.req(r, Method::POST, "/v1/models/acme/new/versions")
                    .json(&json!({
                "version": format!("1.{r}"),
                "files": [{"path": "config.json", "digest": c.blob.0, "size": c.blob.1.len()}]}))
            }),
        ),
        (
            "GET /v1/models/acme/m/versions/1.0 (approved)",
            [401, 200, 404, 200, 200, 200],
            Box::new(|c, r| c.req(r, Method::GET, "/v1/models/acme/m/versions/1.0")),
        ),
        (
            "GET /v1/models/acme/bad/versions/1.0 (rejected)",
            [401, 404, 404, 200, 200, 200],
            Box::new(|c, r| c.req(r, Method::GET, "/v1/models/acme/bad/versions/1.0")),
        ),
        (
            "GET …/m/versions/1.0/files (approved)",
            [401, 200, 404, 200, 200, 200],
            Box::new(|c, r| c.req(r, Method::GET, "/v1/models/acme/m/versions/1.0/files")),
        ),
        (
            "GET …/bad/versions/1.0/files (rejected)",
            [401, 404, 404, 403, 403, 403],
            Box::new(|c, r| c.req(r, Method::GET, "/v1/models/acme/bad/versions/1.0/files")),
        ),
        (
            "GET …/m/versions/1.0/files/config.json",
            [401, 200, 404, 200, 200, 200],
            Box::new(|c, r| {
                c.req(
                    r,
                    Method::GET,
                    "/v1/models/acme/m/versions/1.0/files/config.json",
                )
            }),
        ),
        (
            "GET …/m/versions/1.0/reports/analysis",
            [401, 200, 404, 200, 200, 200],
            Box::new(|c, r| {
                c.req(
                    r,
                    Method::GET,
                    "/v1/models/acme/m/versions/1.0/reports/analysis",
                )
            }),
        ),
        (
            "POST …/m/versions/1.0/decision",
            [401, 403, 403, 403, 200, 200],
            Box::new(|c, r| {
                c.req(r, Method::POST, "/v1/models/acme/m/versions/1.0/decision")
                    .json(&json!({"state": "approved", "reason": "matrix"}))
            }),
        ),
        (
            "POST /v1/policy/test",
            [401, 403, 403, 200, 200, 200],
            Box::new(|c, r| {
                c.req(r, Method::POST, "/v1/policy/test")
                    .json(&json!({"model": "acme/m:1.0"}))
            }),
        ),
        (
            "POST /v1/advisories",
            [401, 403, 403, 403, 200, 200],
            Box::new(|c, r| {
                c.req(r, Method::POST, "/v1/advisories").json(&json!({
                "id": format!("ADV-{}", ROLES[r]), "severity": "high", "summary": "matrix",
                "versions": ["acme/flagme:1.0"]}))
            }),
        ),
        (
            "GET /v1/advisories",
            [401, 200, 200, 200, 200, 200],
            Box::new(|c, r| c.req(r, Method::GET, "/v1/advisories")),
        ),
        (
            "GET /v1/advisories/{id}/impact",
            [401, 200, 200, 200, 200, 200],
            Box::new(|c, r| c.req(r, Method::GET, "/v1/advisories/ADV-admin/impact")),
        ),
        (
            "GET /v1/impact/acme/flagme/versions/1.0",
            // Another namespace's publisher cannot read acme: the version is not found for it.
            [401, 200, 404, 200, 200, 200],
            Box::new(|c, r| c.req(r, Method::GET, "/v1/impact/acme/flagme/versions/1.0")),
        ),
        (
            "GET /v1/advisories/feed",
            [401, 200, 200, 200, 200, 200],
            Box::new(|c, r| c.req(r, Method::GET, "/v1/advisories/feed")),
        ),
        (
            "POST /v1/advisories/feed",
            [401, 403, 403, 403, 403, 200],
            Box::new(|c, r| {
                let feed = c.srv.client(c.tok(5)).export_advisories().unwrap();
                c.req(r, Method::POST, "/v1/advisories/feed")
                    .header("content-type", "application/json")
                    .body(feed)
            }),
        ),
        (
            "POST /v1/advisories/{id}/withdraw",
            [401, 403, 403, 403, 200, 200],
            Box::new(|c, r| {
                let id = if r == 5 { "ADV-admin" } else { "ADV-approver" };
                c.req(r, Method::POST, &format!("/v1/advisories/{id}/withdraw"))
                    .json(&json!({"justification": "matrix"}))
            }),
        ),
        (
            "GET /v1/deployments",
            [401, 200, 200, 200, 200, 200],
            Box::new(|c, r| c.req(r, Method::GET, "/v1/deployments")),
        ),
        (
            "PUT /v1/deployments/{name}/{env}",
            [401, 403, 403, 200, 403, 200],
            Box::new(|c, r| {
                c.req(r, Method::PUT, &format!("/v1/deployments/svc-{r}/prod"))
                    .json(&json!({"model": "acme/m:1.0"}))
            }),
        ),
        (
            "POST /v1/webhooks",
            [401, 403, 403, 403, 403, 201],
            Box::new(|c, r| {
                c.req(r, Method::POST, "/v1/webhooks")
                    .json(&json!({"url": "http://127.0.0.1:9/x", "secret": "0123456789abcdef0123"}))
            }),
        ),
        (
            "GET /v1/audit",
            [401, 403, 403, 403, 403, 200],
            Box::new(|c, r| c.req(r, Method::GET, "/v1/audit")),
        ),
        (
            "GET /v1/jobs",
            [401, 403, 403, 403, 403, 200],
            Box::new(|c, r| c.req(r, Method::GET, "/v1/jobs")),
        ),
    ];
    // Every route of the router is in the table.
    let routes = [
        "/healthz",
        "/v1/openapi.json",
        "/v1/tokens",
        "/v1/blobs",
        "/v1/uploads",
        "/v1/models",
        "/decision",
        "/reports",
        "/files",
        "/v1/policy/test",
        "/v1/advisories",
        "/withdraw",
        "/impact",
        "/feed",
        "/v1/deployments",
        "/v1/webhooks",
        "/v1/audit",
        "/v1/jobs",
    ];
    for r in routes {
        assert!(rows.iter().any(|(n, _, _)| n.contains(r)), "no row for {r}");
    }

    let mut table = String::new();
    let mut bad = Vec::new();
    for (name, expect, build) in &rows {
        table += &format!("{name:<48}");
        // Denied roles first, so a denial is never masked by state an allowed role created.
        let mut order: Vec<usize> = (0..6).collect();
        order.sort_by_key(|&r| (expect[r] < 400) as u8);
        let mut got = [0u16; 6];
        for r in order {
            let (st, body) = send(build(&ctx, r));
            got[r] = st;
            if st != expect[r] {
                bad.push(format!(
                    "{name} as {}: {st} (expected {}): {body}",
                    ROLES[r], expect[r]
                ));
            }
        }
        for g in got {
            table += &format!(" {g}");
        }
        table.push('\n');
    }
    eprintln!("{:<48} {}\n{table}", "route", ROLES.join(" "));
    assert!(
        bad.is_empty(),
        "role matrix mismatches:\n{}",
        bad.join("\n")
    );
    // Denials say why. (A malformed body from an anonymous caller is answered 422 before the
    // token is checked: axum's Json extractor runs before the handler.)
    let (st, body) = send(srv.http(Method::POST, "/v1/advisories", None).json(&json!({
        "id": "X", "severity": "low", "summary": "x", "versions": ["acme/m:1.0"]})));
    assert_eq!(
        (st, body["error"]["message"].as_str()),
        (401, Some("missing bearer token")),
        "{body}"
    );
    let (st, body) = send(srv.http(Method::GET, "/v1/models", Some("pdg_0000000000000000_nope")));
    assert_eq!(
        (st, body["error"]["code"].as_str()),
        (401, Some("unauthenticated")),
        "{body}"
    );
}
