//! The web UI in a real browser: `pedigree serve` started as a process, Debian's Chromium
//! driven headless through Debian's ChromeDriver (W3C WebDriver over HTTP).
//!
//! A small family is pushed (acme/base 1.0 and 1.1, acme/ft-a 0.9 and 1.0 declaring
//! `base_model: acme/base`, apps/app 1.0 declaring `acme/ft-a` and deployed), the base 1.1 is
//! flagged, and the browser logs in with a token, reads the family graph's nodes (flagged / at
//! risk / clean) and edges out of the DOM, reads the advisory's cascade and last known-good
//! versions, and checks that a reader of `acme` alone sees neither `apps` nor `secret`.
//! Screenshots are saved under `<target>/ui-screenshots/` as artefacts.
//!
//! Chromium or ChromeDriver missing is a failure, never a skip: `bash scripts/setup.sh` installs
//! them.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};

// ------------------------------------------------------------------------------------ server

mod support;

struct Server {
    url: String,
    admin: String,
    serve: support::Serve,
    _tmp: tempfile::TempDir,
}

impl Server {
    fn start() -> Server {
        let tmp = tempfile::tempdir().unwrap();
        let serve = support::Serve::start(
            &tmp.path().join("data"),
            &["--workers", "2"],
            &[],
            tmp.path().join("server.log"),
        );
        Server {
            url: serve.url.clone(),
            admin: serve.admin.clone(),
            serve,
            _tmp: tmp,
        }
    }

    fn cli(&self, token: &str, args: &[&str]) -> (i32, String, String) {
        let o = Command::new(env!("CARGO_BIN_EXE_pedigree"))
            .args(args)
            .env("PEDIGREE_URL", &self.url)
            .env("PEDIGREE_TOKEN", token)
            .output()
            .expect("run pedigree");
        (
            o.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&o.stdout).into_owned(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        )
    }

    #[track_caller]
    fn ok(&self, token: &str, args: &[&str]) -> String {
        let (code, out, err) = self.cli(token, args);
        assert_eq!(code, 0, "pedigree {args:?} failed:\n{out}\n{err}");
        out
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("---- server log (tail) ----\n{}", self.serve.log_tail());
        }
    }
}

// ------------------------------------------------------------------------------------ models

/// splitmix64 with Gaussian samples: the same small models on every run.
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn gauss(&mut self) -> f32 {
        let u = ((self.next_u64() >> 11) as f64 + 0.5) / (1u64 << 53) as f64;
        let v = ((self.next_u64() >> 11) as f64 + 0.5) / (1u64 << 53) as f64;
        ((-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()) as f32
    }
}

type Tensors = BTreeMap<String, (Vec<usize>, Vec<f32>)>;

fn base_model(seed: u64) -> Tensors {
    let mut r = Rng(seed);
    let mut t = Tensors::new();
    for (name, shape) in [
        ("embed.weight", vec![64, 32]),
        ("layers.0.weight", vec![32, 32]),
        ("layers.1.weight", vec![32, 32]),
        ("head.weight", vec![16, 32]),
    ] {
        let n: usize = shape.iter().product();
        t.insert(
            name.into(),
            (shape, (0..n).map(|_| r.gauss() * 0.1).collect()),
        );
    }
    t
}

/// A fine-tune: `changed` tensors nudged, the rest frozen bit for bit, `added` new ones.
fn finetune(parent: &Tensors, seed: u64, changed: &[&str], added: &str) -> Tensors {
    let mut r = Rng(seed);
    let mut t = parent.clone();
    for name in changed {
        for x in t.get_mut(*name).unwrap().1.iter_mut() {
            *x += r.gauss() * 0.01;
        }
    }
    t.insert(
        added.into(),
        (vec![8, 32], (0..256).map(|_| r.gauss() * 0.1).collect()),
    );
    t
}

fn write_model(dir: &Path, t: &Tensors, base: Option<&str>) {
    let tensors: Vec<_> = t
        .iter()
        .map(|(n, (s, v))| (n.as_str(), s.clone(), v.clone()))
        .collect();
    let mut card = String::from("---\nlicense: apache-2.0\n");
    if let Some(b) = base {
        card += &format!("base_model: {b}\n");
    }
    card += "---\n# a model for the UI tests\n";
    support::write_model(dir, &tensors, &card, None);
}

// ------------------------------------------------------------------------------------ browser

/// A fail-don't-skip check for a tool the test needs.
fn tool(env: &str, default: &str) -> PathBuf {
    let p = std::env::var_os(env)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(default));
    assert!(
        p.exists(),
        "{} not found (the web UI test drives Chromium through ChromeDriver): run \
         `bash scripts/setup.sh` (it runs scripts/setup-chromium.sh), or set {env}",
        p.display()
    );
    p
}

/// Headless Chromium driven over WebDriver (W3C protocol, spoken by Debian's chromedriver):
/// a few JSON requests, so the test needs no client library beyond reqwest.
struct Browser {
    driver: Child,
    base: String,
    http: reqwest::blocking::Client,
    _profile: tempfile::TempDir,
}

impl Browser {
    fn start() -> Browser {
        let chromium = tool("PEDIGREE_CHROMIUM", "/usr/bin/chromium");
        let chromedriver = tool("PEDIGREE_CHROMEDRIVER", "/usr/bin/chromedriver");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let driver = Command::new(chromedriver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let http = reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(120))
            .build()
            .unwrap();
        let profile = tempfile::tempdir().unwrap();
        let mut b = Browser {
            driver,
            base: format!("http://127.0.0.1:{port}"),
            http,
            _profile: profile,
        };
        let t0 = std::time::Instant::now();
        loop {
            let ready = b
                .http
                .get(format!("{}/status", b.base))
                .send()
                .ok()
                .and_then(|r| r.json::<Value>().ok())
                .is_some_and(|v| v["value"]["ready"] == true);
            if ready {
                break;
            }
            assert!(
                t0.elapsed() < Duration::from_secs(30),
                "chromedriver never became ready"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        let args = [
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
            "--window-size=1400,1000",
            &format!("--user-data-dir={}", b._profile.path().display()),
        ];
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": chromium, "args": args},
        }}});
        let v = b.call(reqwest::Method::POST, "/session", Some(caps));
        let id = v["sessionId"].as_str().expect("a session id").to_string();
        b.base = format!("{}/session/{id}", b.base);
        // Elements are waited for (pages load after form posts and redirects).
        b.call(
            reqwest::Method::POST,
            "/timeouts",
            Some(json!({"implicit": 15000, "pageLoad": 60000, "script": 30000})),
        );
        b
    }

    /// One WebDriver command; a WebDriver error fails the test with its message.
    #[track_caller]
    fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let mut rb = self.http.request(method, format!("{}{path}", self.base));
        if let Some(b) = &body {
            rb = rb.json(b);
        }
        let r = rb
            .send()
            .unwrap_or_else(|e| panic!("WebDriver {path}: {e}"));
        let status = r.status();
        let v: Value = r.json().unwrap_or(Value::Null);
        assert!(
            status.is_success(),
            "WebDriver {path} {body:?}: HTTP {status}: {}",
            v["value"]
        );
        v["value"].clone()
    }

    fn go(&self, url: &str) {
        self.call(reqwest::Method::POST, "/url", Some(json!({"url": url})));
    }

    fn url(&self) -> String {
        self.call(reqwest::Method::GET, "/url", None)
            .as_str()
            .unwrap()
            .to_string()
    }

    /// The element matching a CSS selector (waited for up to the implicit timeout).
    #[track_caller]
    fn find(&self, css: &str) -> String {
        let v = self.call(
            reqwest::Method::POST,
            "/element",
            Some(json!({"using": "css selector", "value": css})),
        );
        v.as_object()
            .and_then(|o| o.values().next())
            .and_then(Value::as_str)
            .unwrap_or_else(|| panic!("no element id for {css}: {v}"))
            .to_string()
    }

    fn click(&self, css: &str) {
        let e = self.find(css);
        self.call(
            reqwest::Method::POST,
            &format!("/element/{e}/click"),
            Some(json!({})),
        );
    }

    fn type_into(&self, css: &str, text: &str) {
        let e = self.find(css);
        self.call(
            reqwest::Method::POST,
            &format!("/element/{e}/value"),
            Some(json!({"text": text})),
        );
    }

    /// Evaluate `expr` in the page; its value comes back as JSON.
    #[track_caller]
    fn js(&self, expr: &str) -> Value {
        self.call(
            reqwest::Method::POST,
            "/execute/sync",
            Some(json!({"script": format!("return ({expr});"), "args": []})),
        )
    }

    fn cookies(&self) -> Vec<Value> {
        self.call(reqwest::Method::GET, "/cookie", None)
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// Save a PNG of the viewport under `<target>/ui-screenshots/`.
    fn shot(&self, name: &str) {
        use base64::Engine;
        let b64 = self.call(reqwest::Method::GET, "/screenshot", None);
        let png = base64::engine::general_purpose::STANDARD
            .decode(b64.as_str().expect("base64 screenshot"))
            .expect("a base64 screenshot");
        assert!(png.starts_with(b"\x89PNG"), "{name}: not a PNG");
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
            .parent()
            .unwrap()
            .join("ui-screenshots");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(format!("{name}.png")), png).unwrap();
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.http.delete(&self.base).send();
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

fn log_in(b: &Browser, base: &str, token: &str) {
    b.go(&format!("{base}/ui/"));
    assert!(
        b.url().ends_with("/ui/login"),
        "an anonymous visit lands on the login form, not {}",
        b.url()
    );
    b.type_into("#token", token);
    b.click("#login");
    b.find("#models");
}

/// `(model, (risk, review, deployed))` of every node of the graph on the page.
fn graph_nodes(b: &Browser) -> BTreeMap<String, (String, String, bool)> {
    let v = b.js(
        "Array.from(document.querySelectorAll('svg.lineage g.node')).map(g => \
         [g.dataset.model, g.dataset.risk, g.dataset.review, g.classList.contains('deployed')])",
    );
    v.as_array()
        .unwrap()
        .iter()
        .map(|n| {
            let s = |i: usize| n[i].as_str().unwrap().to_string();
            (s(0), (s(1), s(2), n[3].as_bool().unwrap()))
        })
        .collect()
}

fn models_listed(b: &Browser) -> Value {
    b.js("Array.from(document.querySelectorAll('tr.model')).map(r => r.dataset.model)")
}

// ------------------------------------------------------------------------------------ the test

#[test]
fn web_ui_in_headless_chromium() {
    // Fail first, and plainly, when the browser or its driver is missing.
    tool("PEDIGREE_CHROMIUM", "/usr/bin/chromium");
    tool("PEDIGREE_CHROMEDRIVER", "/usr/bin/chromedriver");
    let srv = Server::start();
    let admin = srv.admin.clone();
    let work = tempfile::tempdir().unwrap();
    let d = |n: &str| work.path().join(n);

    // ---- the family, pushed through the CLI
    let base10 = base_model(10);
    let base11 = base_model(11);
    let fta09 = finetune(
        &base10,
        20,
        &["layers.1.weight", "head.weight"],
        "adapter.weight",
    );
    let fta10 = finetune(
        &base11,
        21,
        &["layers.1.weight", "head.weight"],
        "adapter.weight",
    );
    let app = finetune(&fta10, 23, &["head.weight"], "app_head.weight");
    write_model(&d("base-1.0"), &base10, None);
    write_model(&d("base-1.1"), &base11, None);
    write_model(&d("ft-a-0.9"), &fta09, Some("acme/base"));
    write_model(&d("ft-a-1.0"), &fta10, Some("acme/base"));
    write_model(&d("app-1.0"), &app, Some("acme/ft-a"));
    // Attacker-controlled card text, shown on its version page.
    write_model(
        &d("secret"),
        &base_model(40),
        Some("<img src=x onerror=alert(1)>"),
    );
    let push = |dir: &str, model: &str| -> i32 {
        let p = d(dir);
        let args = [
            "push",
            p.to_str().unwrap(),
            model,
            "--wait",
            "--timeout",
            "120",
        ];
        let (code, out, err) = srv.cli(&admin, &args);
        assert!(code == 0 || code == 1, "push {model}: {code}\n{out}\n{err}");
        code
    };
    for (dir, model) in [
        ("base-1.0", "acme/base:1.0"),
        ("ft-a-0.9", "acme/ft-a:0.9"),
        ("base-1.1", "acme/base:1.1"),
        ("ft-a-1.0", "acme/ft-a:1.0"),
        ("app-1.0", "apps/app:1.0"),
    ] {
        assert_eq!(push(dir, model), 0, "{model} approved");
    }
    push("secret", "secret/model:1.0");
    srv.ok(&admin, &["deploy", "fraud-api", "prod", "apps/app:1.0"]);
    srv.ok(&admin, &["deploy", "scoring", "staging", "acme/ft-a:0.9"]);
    srv.ok(
        &admin,
        &[
            "flag",
            "acme/base:1.1",
            "--advisory",
            "ADV-UI-1",
            "--severity",
            "critical",
            "--reason",
            "backdoored feature extractor",
        ],
    );
    let reader = srv
        .ok(
            &admin,
            &["token", "create", "acme-reader", "--role", "reader:acme"],
        )
        .trim()
        .to_string();

    // ---- plain HTTP: the headers every UI page carries, and `/` sends browsers to the UI
    let http = reqwest::blocking::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let r = http.get(format!("{}/ui/login", srv.url)).send().unwrap();
    assert_eq!(r.status(), 200);
    let csp = r.headers()["content-security-policy"].to_str().unwrap();
    assert!(
        csp.contains("default-src 'none'") && !csp.contains("unsafe-inline"),
        "{csp}"
    );
    let r = http.get(format!("{}/", srv.url)).send().unwrap();
    assert!(r.status().is_redirection());
    assert_eq!(r.headers()["location"], "/ui/");
    let r = http.get(format!("{}/ui/", srv.url)).send().unwrap();
    assert_eq!(
        r.headers()["location"],
        "/ui/login",
        "anonymous: to the login form"
    );

    // ---- the browser
    let b = Browser::start();
    let base = srv.url.as_str();

    // A wrong token is refused on the form.
    b.go(&format!("{base}/ui/login"));
    b.shot("01-login");
    b.type_into("#token", "pdg_0000000000000000_wrong");
    b.click("#login");
    b.find("#login-error");
    assert_eq!(
        b.js("document.querySelector('#login-error').textContent"),
        "invalid or revoked token"
    );

    log_in(&b, base, &admin);
    let cookies = b.cookies();
    let c = cookies
        .iter()
        .find(|c| c["name"] == "pedigree_token")
        .unwrap_or_else(|| panic!("the login cookie, in {cookies:?}"));
    assert_eq!(c["httpOnly"], true, "{c}");
    assert_eq!(c["sameSite"], "Strict", "{c}");
    assert_eq!(c["path"], "/", "{c}");
    assert_eq!(c["value"], admin.as_str(), "{c}");
    assert_eq!(
        b.js("document.cookie"),
        Value::String(String::new()),
        "page script cannot read the token"
    );

    // The model list: every version with its badges; the stylesheet applied under the CSP.
    let rows = b.js(
        "Array.from(document.querySelectorAll('tr.model')).map(r => \
         [r.dataset.model, r.dataset.state, r.dataset.flagged, r.dataset.atRisk])",
    );
    let rows: BTreeMap<String, (String, String, String)> = rows
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let s = |i: usize| r[i].as_str().unwrap().to_string();
            (s(0), (s(1), s(2), s(3)))
        })
        .collect();
    assert_eq!(rows.len(), 6, "{rows:?}");
    assert_eq!(
        rows["acme/base:1.1"],
        ("approved".into(), "true".into(), "false".into())
    );
    assert_eq!(
        rows["acme/ft-a:1.0"],
        ("approved".into(), "false".into(), "true".into())
    );
    assert_eq!(
        rows["apps/app:1.0"],
        ("approved".into(), "false".into(), "true".into())
    );
    assert_eq!(
        rows["acme/base:1.0"],
        ("approved".into(), "false".into(), "false".into())
    );
    assert_eq!(
        b.js("getComputedStyle(document.querySelector('tr.model .badge.flagged')).backgroundColor"),
        "rgb(198, 40, 40)",
        "the stylesheet loads under the CSP"
    );
    b.shot("02-models-admin");

    // Filters: state=at_risk shows exactly the two descendants; text narrows by name.
    b.go(&format!("{base}/ui/?state=at_risk"));
    let at_risk = models_listed(&b);
    assert_eq!(
        at_risk,
        serde_json::json!(["apps/app:1.0", "acme/ft-a:1.0"])
    );
    b.go(&format!("{base}/ui/?namespace=acme&q=ft-a"));
    let ft = models_listed(&b);
    assert_eq!(ft, serde_json::json!(["acme/ft-a:1.0", "acme/ft-a:0.9"]));

    // ---- the flagged family's graph
    b.go(&format!("{base}/ui/graph/apps/app/1.0"));
    b.find("svg.lineage");
    let nodes = graph_nodes(&b);
    let want: BTreeMap<String, (String, String, bool)> = [
        ("acme/base:1.0", "clean", false),
        ("acme/base:1.1", "flagged", false),
        ("acme/ft-a:0.9", "clean", true),
        ("acme/ft-a:1.0", "at-risk", false),
        ("apps/app:1.0", "at-risk", true),
    ]
    .into_iter()
    .map(|(m, r, dep)| (m.to_string(), (r.to_string(), "approved".to_string(), dep)))
    .collect();
    assert_eq!(nodes, want);
    // Generations as layers: bases on top, the app two rows down.
    let layers = b.js(
        "Object.fromEntries(Array.from(document.querySelectorAll('svg.lineage g.node')).map(g => \
         [g.dataset.model, Number(g.dataset.layer)]))",
    );
    assert_eq!(layers["acme/base:1.1"], 0);
    assert_eq!(layers["acme/ft-a:1.0"], 1);
    assert_eq!(layers["apps/app:1.0"], 2);
    // Declared edges from the cards, each drawn; the ones inside the cascade highlighted.
    let edges = b.js(
        "Array.from(document.querySelectorAll('svg.lineage path.edge')).map(e => \
         [e.dataset.parent, e.dataset.child, e.dataset.source, e.classList.contains('risky')])",
    );
    let edges = edges.as_array().unwrap();
    let has = |p: &str, c: &str, src: &str, risky: bool| {
        edges
            .iter()
            .any(|e| e[0] == p && e[1] == c && e[2] == src && e[3] == Value::Bool(risky))
    };
    assert!(
        has("acme/base:1.1", "acme/ft-a:1.0", "declared", true),
        "{edges:?}"
    );
    assert!(
        has("acme/ft-a:1.0", "apps/app:1.0", "declared", true),
        "{edges:?}"
    );
    assert!(
        has("acme/base:1.0", "acme/ft-a:0.9", "declared", false),
        "{edges:?}"
    );
    assert!(
        edges.iter().any(|e| e[2] == "inferred"),
        "the weights prove at least one edge: {edges:?}"
    );
    assert_eq!(
        b.js("getComputedStyle(document.querySelector('g.node.flagged rect')).stroke"),
        "rgb(198, 40, 40)"
    );
    let deployed_text = b.js(
        "document.querySelector('g.node[data-model=\"apps/app:1.0\"] text.deploy').textContent",
    );
    assert_eq!(deployed_text, "⚠ deployed: fraud-api/prod");
    b.shot("03-graph-admin");

    // ---- the advisory: the cascade and the last known-good versions
    b.go(&format!("{base}/ui/advisories"));
    b.click("tr[data-advisory=\"ADV-UI-1\"] a");
    b.find("#cascade");
    let cascade = b.js(
        "Array.from(document.querySelectorAll('tr.affected')).map(r => \
         [r.dataset.model, r.dataset.kind, Number(r.dataset.depth), r.cells[3].textContent, \
          r.cells[4].textContent])",
    );
    assert_eq!(
        cascade,
        serde_json::json!([
            ["acme/base:1.1", "flagged", 0, "", ""],
            ["acme/ft-a:1.0", "at_risk", 1, "acme/base:1.1", ""],
            [
                "apps/app:1.0",
                "at_risk",
                2,
                "acme/ft-a:1.0",
                "fraud-api/prod"
            ],
        ])
    );
    let lkg = b.js(
        "Object.fromEntries(Array.from(document.querySelectorAll('tr.lkg')).map(r => \
         [r.dataset.model, r.dataset.good]))",
    );
    assert_eq!(
        lkg,
        serde_json::json!({"acme/base": "acme/base:1.0", "acme/ft-a": "acme/ft-a:0.9", "apps/app": ""})
    );
    b.shot("04-advisory-admin");

    // ---- a version page: lineage split declared / proven, BOM, signature, deployments
    b.go(&format!("{base}/ui/m/apps/app/1.0"));
    b.find("#declared");
    assert_eq!(
        b.js("document.querySelector('#declared td a').textContent"),
        "acme/ft-a:1.0"
    );
    assert!(
        b.js("document.querySelector('#bom').textContent")
            .as_str()
            .unwrap()
            .contains("CycloneDX"),
    );
    assert_eq!(
        b.js("document.querySelector('#deployments li').textContent"),
        "fraud-api/prod"
    );
    assert!(
        b.js("document.querySelector('#signature').textContent")
            .as_str()
            .unwrap()
            .contains("unsigned")
    );
    b.shot("05-version-admin");

    // Card text from an upload is shown as text, never as markup.
    b.go(&format!("{base}/ui/m/secret/model/1.0"));
    b.find("#label");
    assert_eq!(b.js("document.querySelectorAll('main img').length"), 0);
    assert!(
        b.js("document.querySelector('main').textContent")
            .as_str()
            .unwrap()
            .contains("<img src=x onerror=alert(1)>")
    );

    // ---- log out: the cookie is gone and the UI asks for a token again
    b.go(&format!("{base}/ui/"));
    b.click("#logout");
    b.find("#token");
    assert!(b.cookies().iter().all(|c| c["name"] != "pedigree_token"));
    b.go(&format!("{base}/ui/advisories"));
    assert!(b.url().ends_with("/ui/login"), "{}", b.url());

    // ---- a reader of acme only
    log_in(&b, base, &reader);
    let visible = models_listed(&b);
    assert_eq!(
        visible,
        serde_json::json!([
            "acme/ft-a:1.0",
            "acme/base:1.1",
            "acme/ft-a:0.9",
            "acme/base:1.0"
        ]),
        "no apps/ or secret/ version for a reader of acme"
    );
    b.shot("06-models-reader");
    b.go(&format!("{base}/ui/?namespace=apps"));
    assert_eq!(b.js("document.querySelectorAll('tr.model').length"), 0);
    b.go(&format!("{base}/ui/m/apps/app/1.0"));
    assert_eq!(
        b.js("document.querySelector('#error').textContent"),
        "apps/app:1.0 not found",
        "the same answer as for a version that does not exist"
    );
    b.go(&format!("{base}/ui/graph/apps/app/1.0"));
    assert_eq!(b.js("document.querySelectorAll('svg.lineage').length"), 0);
    b.go(&format!("{base}/ui/graph/acme/ft-a/1.0"));
    b.find("svg.lineage");
    let nodes = graph_nodes(&b);
    assert!(!nodes.contains_key("apps/app:1.0"), "{nodes:?}");
    assert_eq!(nodes["acme/ft-a:1.0"].0, "at-risk");
    assert_eq!(nodes["acme/base:1.1"].0, "flagged");
    assert_eq!(
        b.js("document.querySelector('#graph-hidden').textContent"),
        "1 version(s) you may not see are left out"
    );
    b.shot("07-graph-reader");
    b.go(&format!("{base}/ui/advisories/ADV-UI-1"));
    b.find("#cascade");
    let models =
        b.js("Array.from(document.querySelectorAll('tr.affected')).map(r => r.dataset.model)");
    assert_eq!(
        models,
        serde_json::json!(["acme/base:1.1", "acme/ft-a:1.0"])
    );
    assert!(
        b.js("document.querySelector('#cascade-hidden').textContent")
            .as_str()
            .unwrap()
            .contains("1 more version")
    );
    let lkg = b.js("Array.from(document.querySelectorAll('tr.lkg')).map(r => r.dataset.model)");
    assert_eq!(lkg, serde_json::json!(["acme/base", "acme/ft-a"]));
    b.shot("08-advisory-reader");

    // Revoking the token ends the browser's session too (no separate session store).
    let id = &reader["pdg_".len().."pdg_".len() + 16];
    srv.ok(&admin, &["token", "revoke", id]);
    b.go(&format!("{base}/ui/"));
    assert!(b.url().ends_with("/ui/login"), "{}", b.url());
}
