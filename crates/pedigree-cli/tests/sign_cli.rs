//! End-to-end tests of `pedigree sign`, `verify` and `id` (the library has the full interop and
//! vector suites; these check the command line: flags, exit codes and messages).

mod support;

use support::pedigree;

use std::path::{Path, PathBuf};

fn keys() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../pedigree-sign/tests/data/keys")
}

fn model_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("config.json"), b"{\"hidden\": 8}").unwrap();
    std::fs::create_dir(dir.path().join("weights")).unwrap();
    std::fs::write(
        dir.path().join("weights/model.safetensors"),
        vec![7u8; 100_000],
    )
    .unwrap();
    std::fs::create_dir(dir.path().join(".git")).unwrap();
    std::fs::write(dir.path().join(".git/HEAD"), b"ref: refs/heads/main").unwrap();
    dir
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn sign_then_verify_with_key_and_detect_tampering() {
    let model = model_dir();
    let sig = model.path().join("model.sig");
    let key = keys().join("p256.key.pem");
    let public = keys().join("p256.pub.pem");
    let (code, _, err) = pedigree(&[
        "sign",
        s(model.path()),
        "--key",
        s(&key),
        "--signature",
        s(&sig),
    ]);
    assert_eq!(code, 0, "{err}");
    let bundle: serde_json::Value = serde_json::from_slice(&std::fs::read(&sig).unwrap()).unwrap();
    assert_eq!(
        bundle["mediaType"],
        "application/vnd.dev.sigstore.bundle.v0.3+json"
    );

    let (code, _, err) = pedigree(&[
        "verify",
        s(model.path()),
        "--signature",
        s(&sig),
        "--key",
        s(&public),
    ]);
    assert_eq!(code, 0, "{err}");

    // The bundle's subject is the model identity that `pedigree id` prints.
    let (code, id, _) = pedigree(&["id", s(model.path()), "--ignore-paths", "model.sig"]);
    assert_eq!(code, 0);
    let payload = bundle["dsseEnvelope"]["payload"].as_str().unwrap();
    let statement = decode_b64(payload);
    let statement: serde_json::Value = serde_json::from_slice(&statement).unwrap();
    let digest = statement["subject"][0]["digest"]["sha256"]
        .as_str()
        .unwrap();
    assert_eq!(id.trim(), format!("sha256:{digest}"));

    // Changing an ignored path still verifies.
    std::fs::write(model.path().join(".git/HEAD"), b"ref: refs/heads/other").unwrap();
    assert_eq!(
        pedigree(&[
            "verify",
            s(model.path()),
            "--signature",
            s(&sig),
            "--key",
            s(&public)
        ])
        .0,
        0
    );

    // A flipped byte fails, naming the file.
    let w = model.path().join("weights/model.safetensors");
    let mut bytes = std::fs::read(&w).unwrap();
    bytes[5000] ^= 1;
    std::fs::write(&w, &bytes).unwrap();
    let (code, out, err) = pedigree(&[
        "verify",
        s(model.path()),
        "--signature",
        s(&sig),
        "--key",
        s(&public),
    ]);
    assert_eq!(code, 1);
    assert!(
        format!("{out}{err}").contains("weights/model.safetensors"),
        "{out}{err}"
    );
    bytes[5000] ^= 1;
    std::fs::write(&w, &bytes).unwrap();

    // An extra file fails, naming it.
    std::fs::write(model.path().join("extra.py"), b"import os").unwrap();
    let (code, out, err) = pedigree(&[
        "verify",
        s(model.path()),
        "--signature",
        s(&sig),
        "--key",
        s(&public),
    ]);
    assert_eq!(code, 1);
    assert!(format!("{out}{err}").contains("extra.py"), "{out}{err}");
    std::fs::remove_file(model.path().join("extra.py")).unwrap();

    // A different key fails.
    let other = keys().join("p384.pub.pem");
    assert_eq!(
        pedigree(&[
            "verify",
            s(model.path()),
            "--signature",
            s(&sig),
            "--key",
            s(&other)
        ])
        .0,
        1
    );
}

#[test]
fn certificate_chain_mode_and_blake3_shards() {
    let model = model_dir();
    let sig = model.path().join("model.sig");
    let (code, _, err) = pedigree(&[
        "sign",
        s(model.path()),
        "--key",
        s(&keys().join("p384.key.pem")),
        "--cert",
        s(&keys().join("p384-leaf.pem")),
        "--chain",
        s(&keys().join("p384-int.pem")),
        "--signature",
        s(&sig),
        "--method",
        "shards",
        "--shard-size",
        "30000",
        "--hash",
        "blake3",
    ]);
    assert_eq!(code, 0, "{err}");
    let root = keys().join("p384-root.pem");
    let (code, _, err) = pedigree(&[
        "verify",
        s(model.path()),
        "--signature",
        s(&sig),
        "--cert-chain",
        s(&root),
    ]);
    assert_eq!(code, 0, "{err}");
    let wrong = keys().join("p384-other-root.pem");
    assert_eq!(
        pedigree(&[
            "verify",
            s(model.path()),
            "--signature",
            s(&sig),
            "--cert-chain",
            s(&wrong)
        ])
        .0,
        1
    );
}

#[test]
fn unreadable_key_is_exit_2() {
    let model = model_dir();
    let (code, _, err) = pedigree(&["sign", s(model.path()), "--key", "/nonexistent/key.pem"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("/nonexistent/key.pem"), "{err}");
}

/// Standard base64 (the DSSE payload encoding), decoded here so the test does not trust the
/// code under test to read its own output.
fn decode_b64(s: &str) -> Vec<u8> {
    let table = |c: u8| -> u32 {
        match c {
            b'A'..=b'Z' => (c - b'A') as u32,
            b'a'..=b'z' => (c - b'a' + 26) as u32,
            b'0'..=b'9' => (c - b'0' + 52) as u32,
            b'+' | b'-' => 62,
            b'/' | b'_' => 63,
            _ => panic!("bad base64 byte {c}"),
        }
    };
    let bytes: Vec<u8> = s.bytes().filter(|c| *c != b'=').collect();
    let mut out = Vec::new();
    for chunk in bytes.chunks(4) {
        let mut acc = 0u32;
        for (i, c) in chunk.iter().enumerate() {
            acc |= table(*c) << (18 - 6 * i);
        }
        let n = chunk.len() * 6 / 8;
        for i in 0..n {
            out.push((acc >> (16 - 8 * i)) as u8);
        }
    }
    out
}
