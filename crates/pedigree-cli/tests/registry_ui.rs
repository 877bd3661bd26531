//! The web UI in a real browser: `pedigree serve` started as a process, Debian's Chromium
//! driven headless over the DevTools protocol (the `headless_chrome` crate).
//!
//! A small family is pushed (acme/base 1.0 and 1.1, acme/ft-a 0.9 and 1.0 declaring
//! `base_model: acme/base`, apps/app 1.0 declaring `acme/ft-a` and deployed), the base 1.1 is
//! flagged, and the browser logs in with a token, reads the family graph's nodes (flagged / at
//! risk / clean) and edges out of the DOM, reads the advisory's cascade and last known-good
//! versions, and checks that a reader of `acme` alone sees neither `apps` nor `secret`.
//! Screenshots are saved under `<target>/ui-screenshots/` as artefacts.
//!
//! Chromium missing is a failure, never a skip: `bash scripts/setup.sh` installs it.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use headless_chrome::protocol::cdp::Network::CookieSameSite;
use headless_chrome::protocol::cdp::Page::CaptureScreenshotFormatOption;
use headless_chrome::{Browser, LaunchOptions, Tab};
use serde_json::Value;

// ------------------------------------------------------------------------------------ server

struct Server {
    child: Child,
    url: String,
    admin: String,
    log: PathBuf,
    _tmp: tempfile::TempDir,
}

impl Server {
    fn start() -> Server {
        let tmp = tempfile::tempdir().unwrap();
        let data = tmp.path().join("data");
        let log = tmp.path().join("server.log");
        let mut child = Command::new(env!("CARGO_BIN_EXE_pedigree"))
            .args(["serve", "--data-dir", data.to_str().unwrap()])
            .args(["--listen", "127.0.0.1:0", "--workers", "2"])
            .env("PEDIGREE_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("start pedigree serve");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel::<String>();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let _ = tx.send(line); // keep draining so the server never blocks
            }
        });
        let (mut admin, mut url) = (None, None);
        while url.is_none() {
            let line = rx.recv_timeout(Duration::from_secs(60)).unwrap_or_else(|_| {
                panic!(
                    "the server printed no URL; its log:\n{}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                )
            });
            if let Some(t) = line.split("admin token").nth(1) {
                admin = t.rsplit(' ').next().map(|s| s.trim().to_string());
            }
            if let Some(u) = line.split("listening on ").nth(1) {
                url = Some(u.trim().to_string());
            }
        }
        Server {
            child,
            url: url.unwrap(),
            admin: admin.expect("an admin token printed on first start"),
            log,
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
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            let s = std::fs::read_to_string(&self.log).unwrap_or_default();
            let tail = &s[s.floor_char_boundary(s.len().saturating_sub(4000))..];
            eprintln!("---- server log (tail) ----\n{tail}");
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
    std::fs::create_dir_all(dir).unwrap();
    let bytes: Vec<(String, Vec<usize>, Vec<u8>)> = t
        .iter()
        .map(|(n, (s, v))| {
            let b = v.iter().flat_map(|x| x.to_le_bytes()).collect();
            (n.clone(), s.clone(), b)
        })
        .collect();
    let views: Vec<(String, safetensors::tensor::TensorView)> = bytes
        .iter()
        .map(|(n, s, b)| {
            let v = safetensors::tensor::TensorView::new(safetensors::Dtype::F32, s.clone(), b);
            (n.clone(), v.unwrap())
        })
        .collect();
    let st = safetensors::tensor::serialize(views, None).unwrap();
    std::fs::write(dir.join("model.safetensors"), st).unwrap();
    let mut card = String::from("---\nlicense: apache-2.0\n");
    if let Some(b) = base {
        card += &format!("base_model: {b}\n");
    }
    card += "---\n# a model for the UI tests\n";
    std::fs::write(dir.join("README.md"), card).unwrap();
}

// ------------------------------------------------------------------------------------ browser

fn chromium_path() -> PathBuf {
    let p = std::env::var_os("PEDIGREE_CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"));
    assert!(
        p.exists(),
        "Chromium not found at {} (the web UI tests drive it): run `bash scripts/setup.sh` \
         (it runs scripts/setup-chromium.sh), or point PEDIGREE_CHROMIUM at a Chromium binary",
        p.display()
    );
    p
}

fn launch(profile: &Path) -> Browser {
    let args: Vec<&OsStr> = [
        "--disable-quic",
        "--disable-component-update",
        "--disable-background-networking",
        "--disable-sync",
        "--no-first-run",
        "--hide-scrollbars",
    ]
    .iter()
    .map(OsStr::new)
    .collect();
    let opts = LaunchOptions::default_builder()
        .path(Some(chromium_path()))
        .headless(true)
        .sandbox(false)
        .window_size(Some((1400, 1000)))
        .user_data_dir(Some(profile.to_path_buf()))
        .idle_browser_timeout(Duration::from_secs(300))
        .args(args)
        .build()
        .expect("launch options");
    Browser::new(opts).expect("start headless Chromium")
}

fn screenshots_dir() -> PathBuf {
    let d = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .unwrap()
        .join("ui-screenshots");
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn shot(tab: &Tab, name: &str) {
    let png = tab
        .capture_screenshot(CaptureScreenshotFormatOption::Png, None, None, true)
        .expect("screenshot");
    assert!(png.starts_with(b"\x89PNG"), "{name}: not a PNG");
    std::fs::write(screenshots_dir().join(format!("{name}.png")), png).unwrap();
}

/// Evaluate `expr` in the page and return its JSON value.
#[track_caller]
fn js(tab: &Tab, expr: &str) -> Value {
    let r = tab
        .evaluate(&format!("JSON.stringify({expr})"), false)
        .unwrap_or_else(|e| panic!("evaluating {expr}: {e}"));
    let s = r.value.and_then(|v| v.as_str().map(str::to_string));
    serde_json::from_str(s.as_deref().unwrap_or("null")).unwrap()
}

fn go(tab: &Tab, url: &str) {
    tab.navigate_to(url).unwrap().wait_until_navigated().unwrap();
}

fn log_in(tab: &Tab, base: &str, token: &str) {
    go(tab, &format!("{base}/ui/"));
    assert!(
        tab.get_url().ends_with("/ui/login"),
        "an anonymous visit lands on the login form, not {}",
        tab.get_url()
    );
    tab.wait_for_element("#token").unwrap().click().unwrap();
    tab.type_str(token).unwrap();
    tab.wait_for_element("#login").unwrap().click().unwrap();
    tab.wait_for_element("#models").expect("the model list after logging in");
}

/// `(model, risk, deployed)` of every node of the graph on the page.
fn graph_nodes(tab: &Tab) -> BTreeMap<String, (String, String, bool)> {
    let v = js(
        tab,
        "Array.from(document.querySelectorAll('svg.lineage g.node')).map(g => \
         [g.dataset.model, g.dataset.risk, g.dataset.review, g.classList.contains('deployed')])",
    );
    v.as_array()
        .unwrap()
        .iter()
        .map(|n| {
            (
                n[0].as_str().unwrap().to_string(),
                (
                    n[1].as_str().unwrap().to_string(),
                    n[2].as_str().unwrap().to_string(),
                    n[3].as_bool().unwrap(),
                ),
            )
        })
        .collect()
}

// ------------------------------------------------------------------------------------ the test

#[test]
fn web_ui_in_headless_chromium() {
    chromium_path(); // fail first, and plainly, when the browser is missing
    let srv = Server::start();
    let admin = srv.admin.clone();
    let work = tempfile::tempdir().unwrap();
    let d = |n: &str| work.path().join(n);

    // ---- the family, pushed through the CLI
    let base10 = base_model(10);
    let base11 = base_model(11);
    let fta09 = finetune(&base10, 20, &["layers.1.weight", "head.weight"], "adapter.weight");
    let fta10 = finetune(&base11, 21, &["layers.1.weight", "head.weight"], "adapter.weight");
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
        let args = ["push", p.to_str().unwrap(), model, "--wait", "--timeout", "120"];
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
    assert_eq!(r.headers()["location"], "/ui/login", "anonymous: to the login form");

    // ---- the browser
    let profile = tempfile::tempdir().unwrap();
    let browser = launch(profile.path());
    let tab = browser.new_tab().unwrap();
    tab.set_default_timeout(Duration::from_secs(30));
    let base = srv.url.as_str();

    // A wrong token is refused on the form.
    go(&tab, &format!("{base}/ui/login"));
    shot(&tab, "01-login");
    tab.wait_for_element("#token").unwrap().click().unwrap();
    tab.type_str("pdg_0000000000000000_wrong").unwrap();
    tab.wait_for_element("#login").unwrap().click().unwrap();
    let err = tab.wait_for_element("#login-error").unwrap();
    assert_eq!(err.get_inner_text().unwrap(), "invalid or revoked token");

    log_in(&tab, base, &admin);
    let cookies = tab.get_cookies().unwrap();
    let c = cookies
        .iter()
        .find(|c| c.name == "pedigree_token")
        .expect("the login cookie");
    assert!(c.http_only, "HttpOnly");
    assert_eq!(c.same_site, Some(CookieSameSite::Strict));
    assert_eq!(c.path, "/");
    assert_eq!(
        js(&tab, "document.cookie"),
        Value::String(String::new()),
        "page script cannot read the token"
    );

    // The model list: every version with its badges; the stylesheet applied under the CSP.
    let rows = js(
        &tab,
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
    assert_eq!(rows["acme/base:1.1"], ("approved".into(), "true".into(), "false".into()));
    assert_eq!(rows["acme/ft-a:1.0"], ("approved".into(), "false".into(), "true".into()));
    assert_eq!(rows["apps/app:1.0"], ("approved".into(), "false".into(), "true".into()));
    assert_eq!(rows["acme/base:1.0"], ("approved".into(), "false".into(), "false".into()));
    assert_eq!(
        js(
            &tab,
            "getComputedStyle(document.querySelector('tr.model .badge.flagged')).backgroundColor"
        ),
        "rgb(198, 40, 40)",
        "the stylesheet loads under the CSP"
    );
    shot(&tab, "02-models-admin");

    // Filters: state=at_risk shows exactly the two descendants; text narrows by name.
    go(&tab, &format!("{base}/ui/?state=at_risk"));
    let at_risk = js(
        &tab,
        "Array.from(document.querySelectorAll('tr.model')).map(r => r.dataset.model)",
    );
    assert_eq!(at_risk, serde_json::json!(["apps/app:1.0", "acme/ft-a:1.0"]));
    go(&tab, &format!("{base}/ui/?namespace=acme&q=ft-a"));
    let ft = js(
        &tab,
        "Array.from(document.querySelectorAll('tr.model')).map(r => r.dataset.model)",
    );
    assert_eq!(ft, serde_json::json!(["acme/ft-a:1.0", "acme/ft-a:0.9"]));

    // ---- the flagged family's graph
    go(&tab, &format!("{base}/ui/graph/apps/app/1.0"));
    tab.wait_for_element("svg.lineage").unwrap();
    let nodes = graph_nodes(&tab);
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
    let layers = js(
        &tab,
        "Object.fromEntries(Array.from(document.querySelectorAll('svg.lineage g.node')).map(g => \
         [g.dataset.model, Number(g.dataset.layer)]))",
    );
    assert_eq!(layers["acme/base:1.1"], 0);
    assert_eq!(layers["acme/ft-a:1.0"], 1);
    assert_eq!(layers["apps/app:1.0"], 2);
    // Declared edges from the cards, each drawn; the ones inside the cascade highlighted.
    let edges = js(
        &tab,
        "Array.from(document.querySelectorAll('svg.lineage path.edge')).map(e => \
         [e.dataset.parent, e.dataset.child, e.dataset.source, e.classList.contains('risky')])",
    );
    let edges = edges.as_array().unwrap();
    let has = |p: &str, c: &str, src: &str, risky: bool| {
        edges.iter().any(|e| {
            e[0] == p && e[1] == c && e[2] == src && e[3] == Value::Bool(risky)
        })
    };
    assert!(has("acme/base:1.1", "acme/ft-a:1.0", "declared", true), "{edges:?}");
    assert!(has("acme/ft-a:1.0", "apps/app:1.0", "declared", true), "{edges:?}");
    assert!(has("acme/base:1.0", "acme/ft-a:0.9", "declared", false), "{edges:?}");
    assert!(
        edges.iter().any(|e| e[2] == "inferred"),
        "the weights prove at least one edge: {edges:?}"
    );
    assert_eq!(
        js(
            &tab,
            "getComputedStyle(document.querySelector('g.node.flagged rect')).stroke"
        ),
        "rgb(198, 40, 40)"
    );
    let deployed_text = js(
        &tab,
        "document.querySelector('g.node[data-model=\"apps/app:1.0\"] text.deploy').textContent",
    );
    assert_eq!(deployed_text, "⚠ deployed: fraud-api/prod");
    shot(&tab, "03-graph-admin");

    // ---- the advisory: the cascade and the last known-good versions
    go(&tab, &format!("{base}/ui/advisories"));
    tab.wait_for_element("tr[data-advisory=\"ADV-UI-1\"] a")
        .unwrap()
        .click()
        .unwrap();
    tab.wait_for_element("#cascade").unwrap();
    let cascade = js(
        &tab,
        "Array.from(document.querySelectorAll('tr.affected')).map(r => \
         [r.dataset.model, r.dataset.kind, Number(r.dataset.depth), r.cells[3].textContent, \
          r.cells[4].textContent])",
    );
    assert_eq!(
        cascade,
        serde_json::json!([
            ["acme/base:1.1", "flagged", 0, "", ""],
            ["acme/ft-a:1.0", "at_risk", 1, "acme/base:1.1", ""],
            ["apps/app:1.0", "at_risk", 2, "acme/ft-a:1.0", "fraud-api/prod"],
        ])
    );
    let lkg = js(
        &tab,
        "Object.fromEntries(Array.from(document.querySelectorAll('tr.lkg')).map(r => \
         [r.dataset.model, r.dataset.good]))",
    );
    assert_eq!(
        lkg,
        serde_json::json!({"acme/base": "acme/base:1.0", "acme/ft-a": "acme/ft-a:0.9", "apps/app": ""})
    );
    shot(&tab, "04-advisory-admin");

    // ---- a version page: lineage split declared / proven, BOM, signature, deployments
    go(&tab, &format!("{base}/ui/m/apps/app/1.0"));
    tab.wait_for_element("#declared").unwrap();
    assert_eq!(
        js(&tab, "document.querySelector('#declared td a').textContent"),
        "acme/ft-a:1.0"
    );
    assert!(
        js(&tab, "document.querySelector('#bom').textContent")
            .as_str()
            .unwrap()
            .contains("CycloneDX"),
    );
    assert_eq!(
        js(&tab, "document.querySelector('#deployments li').textContent"),
        "fraud-api/prod"
    );
    assert!(js(&tab, "document.querySelector('#signature').textContent")
        .as_str()
        .unwrap()
        .contains("unsigned"));
    shot(&tab, "05-version-admin");

    // Card text from an upload is shown as text, never as markup.
    go(&tab, &format!("{base}/ui/m/secret/model/1.0"));
    tab.wait_for_element("#label").unwrap();
    assert_eq!(js(&tab, "document.querySelectorAll('main img').length"), 0);
    assert!(js(&tab, "document.querySelector('main').textContent")
        .as_str()
        .unwrap()
        .contains("<img src=x onerror=alert(1)>"));

    // ---- log out: the cookie is gone and the UI asks for a token again
    go(&tab, &format!("{base}/ui/"));
    tab.wait_for_element("#logout").unwrap().click().unwrap();
    tab.wait_for_element("#token").unwrap();
    assert!(tab.get_cookies().unwrap().iter().all(|c| c.name != "pedigree_token"));
    go(&tab, &format!("{base}/ui/advisories"));
    assert!(tab.get_url().ends_with("/ui/login"), "{}", tab.get_url());

    // ---- a reader of acme only
    log_in(&tab, base, &reader);
    let visible = js(
        &tab,
        "Array.from(document.querySelectorAll('tr.model')).map(r => r.dataset.model)",
    );
    assert_eq!(
        visible,
        serde_json::json!(["acme/ft-a:1.0", "acme/base:1.1", "acme/ft-a:0.9", "acme/base:1.0"]),
        "no apps/ or secret/ version for a reader of acme"
    );
    shot(&tab, "06-models-reader");
    go(&tab, &format!("{base}/ui/?namespace=apps"));
    assert_eq!(js(&tab, "document.querySelectorAll('tr.model').length"), 0);
    go(&tab, &format!("{base}/ui/m/apps/app/1.0"));
    assert_eq!(
        js(&tab, "document.querySelector('#error').textContent"),
        "apps/app:1.0 not found",
        "the same answer as for a version that does not exist"
    );
    go(&tab, &format!("{base}/ui/graph/apps/app/1.0"));
    assert_eq!(js(&tab, "document.querySelectorAll('svg.lineage').length"), 0);
    go(&tab, &format!("{base}/ui/graph/acme/ft-a/1.0"));
    tab.wait_for_element("svg.lineage").unwrap();
    let nodes = graph_nodes(&tab);
    assert!(!nodes.contains_key("apps/app:1.0"), "{nodes:?}");
    assert_eq!(nodes["acme/ft-a:1.0"].0, "at-risk");
    assert_eq!(nodes["acme/base:1.1"].0, "flagged");
    assert_eq!(
        js(&tab, "document.querySelector('#graph-hidden').textContent"),
        "1 version(s) you may not see are left out"
    );
    shot(&tab, "07-graph-reader");
    go(&tab, &format!("{base}/ui/advisories/ADV-UI-1"));
    tab.wait_for_element("#cascade").unwrap();
    let models = js(
        &tab,
        "Array.from(document.querySelectorAll('tr.affected')).map(r => r.dataset.model)",
    );
    assert_eq!(models, serde_json::json!(["acme/base:1.1", "acme/ft-a:1.0"]));
    assert!(js(&tab, "document.querySelector('#cascade-hidden').textContent")
        .as_str()
        .unwrap()
        .contains("1 more version"));
    let lkg = js(
        &tab,
        "Array.from(document.querySelectorAll('tr.lkg')).map(r => r.dataset.model)",
    );
    assert_eq!(lkg, serde_json::json!(["acme/base", "acme/ft-a"]));
    shot(&tab, "08-advisory-reader");

    // Revoking the token ends the browser's session too (no separate session store).
    let id = &reader["pdg_".len().."pdg_".len() + 16];
    srv.ok(&admin, &["token", "revoke", id]);
    go(&tab, &format!("{base}/ui/"));
    assert!(tab.get_url().ends_with("/ui/login"), "{}", tab.get_url());
}
