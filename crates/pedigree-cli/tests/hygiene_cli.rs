//! End-to-end tests of `pedigree hygiene` over the fixture code base (`tests/hygiene-fixtures`):
//! text, JSON (the scan report schema) and SARIF 2.1.0 (the official schema) output, `--fail-on`
//! exit codes, could-not-analyse errors, allow-list errors, and the approved set read from a
//! real `pedigree serve` process.

mod support;

use support::{pedigree, validator};

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

fn fx(rel: &str) -> String {
    support::repo_root()
        .join("tests/hygiene-fixtures")
        .join(rel)
        .to_str()
        .unwrap()
        .to_string()
}

#[test]
fn text_output_names_rule_line_and_column() {
    let (code, stdout, _) = pedigree(&["hygiene", &fx("vulnerable/torch_load.py")]);
    assert_eq!(code, 1, "{stdout}");
    assert!(stdout.contains("torch_load.py [python]"), "{stdout}");
    assert!(
        stdout.contains("PDG601 torch-load-weights-only-false at line 7, column 12"),
        "{stdout}"
    );
    assert!(stdout.contains("weights_only=False"), "{stdout}");
    assert!(stdout.contains("9 finding(s)"), "{stdout}");
    let (_, stdout, _) = pedigree(&["hygiene", &fx("vulnerable/notebook.ipynb")]);
    assert!(
        stdout.contains("PDG601 torch-load-weights-only-false in cell 3 at line 2, column 9"),
        "{stdout}"
    );
}

#[test]
fn json_output_follows_the_report_schema() {
    let (code, stdout, stderr) = pedigree(&[
        "hygiene",
        "--format",
        "json",
        "--allow",
        &fx("allow.toml"),
        &fx("vulnerable"),
    ]);
    assert_eq!(code, 1, "{stderr}");
    let v: Value = serde_json::from_str(&stdout).expect("JSON");
    if let Err(e) = validator("scan-report.schema.json").validate(&v) {
        panic!("report does not match the schema: {e}");
    }
    let files = v["files"].as_array().unwrap();
    assert_eq!(files.len(), 11);
    let nb = files
        .iter()
        .find(|f| f["path"].as_str().unwrap().ends_with("notebook.ipynb"))
        .unwrap();
    assert_eq!(nb["format"], "notebook");
    let f0 = &nb["findings"][0];
    assert_eq!(f0["rule"], "PDG601");
    assert_eq!(f0["severity"], "high");
    assert_eq!(f0["location"]["cell"], 3);
    assert_eq!(f0["location"]["line"], 2);
    assert_eq!(f0["location"]["column"], 9);
    let allow = files
        .iter()
        .find(|f| f["path"].as_str().unwrap().ends_with("allowlist.py"))
        .unwrap();
    let rules: Vec<&str> = allow["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["rule"].as_str().unwrap())
        .collect();
    assert_eq!(rules, ["PDG608", "PDG609", "PDG608", "PDG610"]);
    assert_eq!(v["summary"]["failed"], true);
}

#[test]
fn sarif_output_is_valid_with_regions() {
    let (code, stdout, _) = pedigree(&["hygiene", "--format", "sarif", &fx("vulnerable")]);
    assert_eq!(code, 1);
    let v: Value = serde_json::from_str(&stdout).unwrap();
    if let Err(e) = validator("sarif-2.1.0.json").validate(&v) {
        panic!("SARIF invalid: {e}");
    }
    let results = v["runs"][0]["results"].as_array().unwrap();
    let r = results
        .iter()
        .find(|r| {
            r["ruleId"] == "PDG601"
                && r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]
                    .as_str()
                    .unwrap()
                    .ends_with("torch_load.py")
        })
        .expect("a PDG601 result in torch_load.py");
    assert_eq!(r["level"], "error");
    let region = &r["locations"][0]["physicalLocation"]["region"];
    assert_eq!(region["startLine"], 7);
    assert_eq!(region["startColumn"], 12);
    // Notebook results: no region; cell and line in the message and properties.
    let nb = results
        .iter()
        .find(|r| {
            r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]
                .as_str()
                .unwrap()
                .ends_with("notebook.ipynb")
        })
        .unwrap();
    assert!(
        nb["locations"][0]["physicalLocation"]
            .get("region")
            .is_none()
    );
    assert_eq!(nb["properties"]["notebookCell"], 3);
    assert_eq!(nb["properties"]["lineInCell"], 2);
    assert!(
        nb["message"]["text"]
            .as_str()
            .unwrap()
            .starts_with("cell 3, line 2, column 9: ")
    );
    let declared: Vec<&str> = v["runs"][0]["tool"]["driver"]["rules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    for r in results {
        assert!(declared.contains(&r["ruleId"].as_str().unwrap()));
    }
}

#[test]
fn fail_on_and_clean_code_set_the_exit_code() {
    let tmp = tempfile::tempdir().unwrap();
    // Only a missing weights_only: low.
    let p = tmp.path().join("low.py");
    std::fs::write(&p, "import torch\nsd = torch.load('x.pt')\n").unwrap();
    let ps = p.to_str().unwrap();
    assert_eq!(
        pedigree(&["hygiene", ps]).0,
        0,
        "default threshold is medium"
    );
    assert_eq!(pedigree(&["hygiene", "--fail-on", "low", ps]).0, 1);
    // The fixed code base is clean.
    let (code, stdout, _) = pedigree(&[
        "hygiene",
        "--fail-on",
        "info",
        "--allow",
        &fx("allow.toml"),
        &fx("fixed/allowlist.py"),
        &fx("fixed/torch_load.py"),
        &fx("fixed/notebook.ipynb"),
    ]);
    assert_eq!(code, 0, "{stdout}");
    assert!(
        stdout.contains("scanned 3 file(s): 0 finding(s)"),
        "{stdout}"
    );
    // -o writes the report to a file.
    let out = tmp.path().join("r.json");
    let (code, stdout, _) = pedigree(&[
        "hygiene",
        "--format",
        "json",
        "-o",
        out.to_str().unwrap(),
        &fx("vulnerable/torch_hub.py"),
    ]);
    assert_eq!(code, 1);
    assert!(stdout.is_empty());
    assert!(std::fs::read_to_string(&out).unwrap().contains("PDG612"));
}

#[test]
fn could_not_analyse_is_exit_2_naming_file_and_line() {
    let tmp = tempfile::tempdir().unwrap();
    let p = tmp.path().join("broken.py");
    std::fs::write(&p, "import torch\n\ndef f(:\n    torch.load(p)\n").unwrap();
    let (code, stdout, _) = pedigree(&["hygiene", p.to_str().unwrap()]);
    assert_eq!(code, 2, "{stdout}");
    assert!(stdout.contains("broken.py: could not analyse"), "{stdout}");
    assert!(stdout.contains("line 3"), "{stdout}");
    // SARIF: a tool execution notification naming the file.
    let (code, stdout, _) = pedigree(&["hygiene", "--format", "sarif", p.to_str().unwrap()]);
    assert_eq!(code, 2);
    let v: Value = serde_json::from_str(&stdout).unwrap();
    let n = &v["runs"][0]["invocations"][0]["toolExecutionNotifications"][0];
    assert!(n["message"]["text"].as_str().unwrap().contains("broken.py"));
    assert_eq!(v["runs"][0]["invocations"][0]["executionSuccessful"], false);
    // A missing path.
    assert_eq!(pedigree(&["hygiene", "/nonexistent/x.py"]).0, 2);
}

#[test]
fn bad_allow_list_is_exit_2_naming_file_and_key() {
    let tmp = tempfile::tempdir().unwrap();
    let a = tmp.path().join("approved.toml");
    std::fs::write(&a, "[[models]]\nid = \"acme/x\"\nrevisions = [\"main\"]\n").unwrap();
    let (code, _, stderr) = pedigree(&[
        "hygiene",
        "--allow",
        a.to_str().unwrap(),
        &fx("fixed/torch_load.py"),
    ]);
    assert_eq!(code, 2);
    assert!(stderr.contains("approved.toml"), "{stderr}");
    assert!(stderr.contains("models[0].revisions[0]"), "{stderr}");
}

/// A tiny safetensors model directory that the registry approves (clean, with a card).
fn write_model(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    let header = br#"{"w":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]}}"#;
    let mut st = (header.len() as u64).to_le_bytes().to_vec();
    st.extend_from_slice(header);
    for x in [0.5f32, -0.25, 0.125, 1.0] {
        st.extend_from_slice(&x.to_le_bytes());
    }
    std::fs::write(dir.join("model.safetensors"), st).unwrap();
    std::fs::write(
        dir.join("README.md"),
        "---\nlicense: apache-2.0\ndatasets:\n- acme/transactions-2024\n---\n# fraud detector\n",
    )
    .unwrap();
    std::fs::write(dir.join("config.json"), br#"{"model_type": "toy"}"#).unwrap();
}

#[test]
fn approved_set_from_a_running_registry() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let srv = support::Proc::spawn(
        &[
            "serve",
            "--data-dir",
            data.to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
            "--workers",
            "1",
        ],
        &[],
        tmp.path().join("server.log"),
    );
    let (mut admin, mut url) = (None, None);
    while url.is_none() {
        let line = srv
            .lines
            .recv_timeout(Duration::from_secs(60))
            .expect("the server printed its URL");
        if let Some(t) = line.split("admin token").nth(1) {
            admin = t.rsplit(' ').next().map(|s| s.trim().to_string());
        }
        if let Some(u) = line.split("listening on ").nth(1) {
            url = Some(u.trim().to_string());
        }
    }
    let (admin, url) = (admin.expect("admin token"), url.unwrap());
    let cli = |token: &str, args: &[&str]| -> (i32, String, String) {
        let o = Command::new(env!("CARGO_BIN_EXE_pedigree"))
            .args(args)
            .env("PEDIGREE_URL", &url)
            .env("PEDIGREE_TOKEN", token)
            .output()
            .expect("run pedigree");
        (
            o.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&o.stdout).into_owned(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        )
    };
    let (code, tok, err) = cli(
        &admin,
        &["token", "create", "acme-ci", "--role", "publisher:acme"],
    );
    assert_eq!(code, 0, "{err}");
    let acme = tok.trim().to_string();
    let commit = "abcdefabcdefabcdefabcdefabcdefabcdefabcd";
    let model = tmp.path().join("m");
    write_model(&model);
    let (code, out, err) = cli(
        &acme,
        &[
            "push",
            model.to_str().unwrap(),
            &format!("acme/fraud-detector:{commit}"),
            "--wait",
            "--timeout",
            "120",
        ],
    );
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains("approved"), "{out}");

    let code_file = tmp.path().join("app.py");
    std::fs::write(
        &code_file,
        format!(
            "from transformers import AutoModel\n\
             a = AutoModel.from_pretrained(\"acme/fraud-detector\", revision=\"{commit}\")\n\
             b = AutoModel.from_pretrained(\"acme/fraud-detector\", revision=\"1111111111111111111111111111111111111111\")\n\
             c = AutoModel.from_pretrained(\"someone/fraud-detector\", revision=\"{commit}\")\n\
             d = AutoModel.from_pretrained(\"acrne/fraud-detector\", revision=\"{commit}\")\n"
        ),
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_pedigree"))
        .args([
            "hygiene",
            "--format",
            "json",
            "--registry",
            &url,
            code_file.to_str().unwrap(),
        ])
        .env("PEDIGREE_TOKEN", &acme)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_str(&stdout).unwrap();
    let got: Vec<(String, u64)> = v["files"][0]["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["rule"].as_str().unwrap().to_string(),
                f["location"]["line"].as_u64().unwrap(),
            )
        })
        .collect();
    let want: Vec<(String, u64)> = [("PDG609", 3), ("PDG608", 4), ("PDG608", 5), ("PDG610", 5)]
        .iter()
        .map(|(r, l)| (r.to_string(), *l))
        .collect();
    assert_eq!(got, want, "{stdout}");
    assert!(stdout.contains("registry http"), "{stdout}");
    // An unreachable registry is a usage error (2), named.
    let (code, _, stderr) = pedigree(&[
        "hygiene",
        "--registry",
        "http://127.0.0.1:9",
        code_file.to_str().unwrap(),
    ]);
    assert_eq!(code, 2);
    assert!(stderr.contains("127.0.0.1:9"), "{stderr}");
}
