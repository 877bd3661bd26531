//! Sign with pedigree, verify with pedigree: every key type, method and
//! hash; tampering rejected with a message naming the file; our bundles
//! validate against the four OMS JSON schemas.

use std::path::{Path, PathBuf};

use base64::Engine as _;
use pedigree_sign::bundle::Flavor;
use pedigree_sign::manifest::{HashAlgorithm, Method, Serialization};
use pedigree_sign::{
    Cert, Error, PrivateKey, SignOptions, Signer, SignerIdentity, TrustStore, VerifyFailure,
    VerifyOptions, sign_model, verify_model,
};

fn keys() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/keys")
}

fn read(p: &str) -> String {
    std::fs::read_to_string(keys().join(p)).unwrap()
}

fn private(curve: &str) -> PrivateKey {
    PrivateKey::from_pem(&read(&format!("{curve}.key.pem"))).unwrap()
}

/// A model with nested dirs, a name that sorts differently by code point
/// and by path component (`a-c` vs `a/b`), git noise, and a file larger
/// than the shard size used below.
fn make_model(root: &Path) -> PathBuf {
    let m = root.join("my-model");
    std::fs::create_dir_all(m.join("a")).unwrap();
    std::fs::create_dir_all(m.join(".git")).unwrap();
    std::fs::write(m.join("a/b"), b"nested").unwrap();
    std::fs::write(m.join("a-c"), b"dash").unwrap();
    std::fs::write(m.join(".git/HEAD"), b"ref: main").unwrap();
    std::fs::write(m.join(".gitattributes"), b"*.bin lfs").unwrap();
    let big: Vec<u8> = (0..10_000u32).map(|i| (i * 31 % 251) as u8).collect();
    std::fs::write(m.join("weights.bin"), big).unwrap();
    std::fs::write(m.join("empty"), b"").unwrap();
    m
}

fn key_trust(curve: &str) -> TrustStore {
    TrustStore {
        keys: vec![private(curve).public_key()],
        ..Default::default()
    }
}

fn sign(m: &Path, signer: &Signer, ser: Serialization) -> (PathBuf, Vec<u8>) {
    let sig = m.join("model.sig");
    let opts = SignOptions {
        serialization: ser,
        flavor: Flavor::Spec,
        signature_path: Some(sig.clone()),
        digest_cache: None,
    };
    let (_, bytes) = sign_model(m, signer, &opts).unwrap();
    std::fs::write(&sig, &bytes).unwrap();
    (sig, bytes)
}

fn verify(m: &Path, sig: &Path, trust: &TrustStore) -> Result<pedigree_sign::Verified, Error> {
    let opts = VerifyOptions {
        signature_path: Some(sig.to_path_buf()),
        ..Default::default()
    };
    verify_model(m, &std::fs::read(sig).unwrap(), trust, &opts)
}

fn sers() -> Vec<Serialization> {
    let mut v = Vec::new();
    for hash in [HashAlgorithm::Sha256, HashAlgorithm::Blake3] {
        for method in [Method::Files, Method::Shards { shard_size: 4096 }] {
            v.push(Serialization {
                method,
                hash,
                ..Default::default()
            });
        }
    }
    v
}

#[test]
fn key_roundtrip_all_curves_methods_hashes() {
    for curve in ["p256", "p384"] {
        for ser in sers() {
            let t = tempfile::tempdir().unwrap();
            let m = make_model(t.path());
            let (sig, _) = sign(&m, &Signer::Key(private(curve)), ser.clone());
            let v = verify(&m, &sig, &key_trust(curve))
                .unwrap_or_else(|e| panic!("{curve} {ser:?}: {e}"));
            assert!(matches!(v.signer, SignerIdentity::Key { .. }));
            // Ignored paths and the signature itself are not resources.
            assert!(
                v.manifest
                    .resources
                    .iter()
                    .all(|r| !r.name.starts_with(".git") && r.name != "model.sig")
            );
            // The other curve's key must not verify it.
            let other = if curve == "p256" { "p384" } else { "p256" };
            let e = verify(&m, &sig, &key_trust(other)).unwrap_err();
            assert!(
                matches!(e, Error::Verification(VerifyFailure::BadSignature(_))),
                "{e}"
            );
        }
    }
}

#[test]
fn shards_split_large_file_and_order_by_code_point() {
    let t = tempfile::tempdir().unwrap();
    let m = make_model(t.path());
    let (_, bytes) = sign(
        &m,
        &Signer::Key(private("p256")),
        Serialization {
            method: Method::Shards { shard_size: 4096 },
            ..Default::default()
        },
    );
    let st = statement(&bytes);
    let names: Vec<&str> = st["predicate"]["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "a-c:0:4",
            "a/b:0:6",
            "weights.bin:0:4096",
            "weights.bin:4096:8192",
            "weights.bin:8192:10000"
        ]
    );
    assert_eq!(st["predicate"]["serialization"]["shard_size"], 4096);
    assert_eq!(st["predicate"]["resources"][0]["algorithm"], "sha256");
}

#[test]
fn certificate_roundtrip_and_identity() {
    for curve in ["p256", "p384"] {
        let t = tempfile::tempdir().unwrap();
        let m = make_model(t.path());
        let chain: Vec<Cert> = [format!("{curve}-leaf.pem"), format!("{curve}-int.pem")]
            .iter()
            .flat_map(|f| Cert::all_from_pem(&read(f)).unwrap())
            .collect();
        let signer = Signer::certificate(private(curve), chain).unwrap();
        let (sig, _) = sign(&m, &signer, Serialization::default());
        let trust = TrustStore {
            roots: Cert::all_from_pem(&read(&format!("{curve}-root.pem"))).unwrap(),
            ..Default::default()
        };
        let v = verify(&m, &sig, &trust).unwrap_or_else(|e| panic!("{curve}: {e}"));
        match v.signer {
            SignerIdentity::Certificate { subject, sans, .. } => {
                assert!(
                    subject.contains(&format!("pedigree test signer {curve}")),
                    "{subject}"
                );
                assert_eq!(sans, vec!["signer@example.com".to_string()]);
            }
            other => panic!("{other:?}"),
        }
        let wrong = TrustStore {
            roots: Cert::all_from_pem(&read(&format!("{curve}-other-root.pem"))).unwrap(),
            ..Default::default()
        };
        let e = verify(&m, &sig, &wrong).unwrap_err();
        assert!(
            matches!(e, Error::Verification(VerifyFailure::Chain(_))),
            "{e}"
        );
    }
}

#[test]
fn certificate_signer_refuses_mismatched_key() {
    let chain = Cert::all_from_pem(&read("p256-leaf.pem")).unwrap();
    assert!(matches!(
        Signer::certificate(private("p384"), chain),
        Err(Error::Key(_))
    ));
}

fn tamper_case(f: impl FnOnce(&Path)) -> Result<pedigree_sign::Verified, Error> {
    let t = tempfile::tempdir().unwrap();
    let m = make_model(t.path());
    let (sig, _) = sign(&m, &Signer::Key(private("p256")), Serialization::default());
    verify(&m, &sig, &key_trust("p256")).expect("untampered model verifies");
    f(&m);
    verify(&m, &sig, &key_trust("p256"))
}

#[test]
fn tamper_flip_a_byte() {
    let e = tamper_case(|m| {
        let p = m.join("weights.bin");
        let mut b = std::fs::read(&p).unwrap();
        b[5000] ^= 1;
        std::fs::write(&p, b).unwrap();
    })
    .unwrap_err();
    assert!(
        matches!(&e, Error::Verification(VerifyFailure::DigestMismatch { name, .. }) if name == "weights.bin"),
        "{e}"
    );
    assert!(e.to_string().contains("'weights.bin' has been modified"));
}

#[test]
fn tamper_add_a_file() {
    let e = tamper_case(|m| std::fs::write(m.join("a/evil.py"), b"x").unwrap()).unwrap_err();
    assert_eq!(
        e.to_string(),
        "verification failed: file 'a/evil.py' is not covered by the signature (extra file)"
    );
}

#[test]
fn tamper_remove_a_file() {
    let e = tamper_case(|m| std::fs::remove_file(m.join("a-c")).unwrap()).unwrap_err();
    assert_eq!(
        e.to_string(),
        "verification failed: file 'a-c' is signed but missing from the model"
    );
}

#[test]
fn tamper_rename_a_file() {
    let e =
        tamper_case(|m| std::fs::rename(m.join("a/b"), m.join("a/renamed")).unwrap()).unwrap_err();
    assert!(e.to_string().contains("'a/b'"), "{e}");
}

#[test]
fn tamper_ignored_path_still_verifies() {
    let v = tamper_case(|m| {
        std::fs::write(m.join(".git/HEAD"), b"changed").unwrap();
        std::fs::write(m.join(".gitattributes"), b"changed").unwrap();
        std::fs::write(m.join(".gitignore"), b"new").unwrap();
    });
    assert!(v.is_ok(), "{:?}", v.err());
}

#[test]
fn tamper_empty_file_in_files_mode_is_signed() {
    let e =
        tamper_case(|m| std::fs::write(m.join("empty"), b"now not empty").unwrap()).unwrap_err();
    assert!(e.to_string().contains("'empty'"), "{e}");
}

#[test]
fn user_ignore_paths_are_recorded_and_honoured() {
    let t = tempfile::tempdir().unwrap();
    let m = make_model(t.path());
    std::fs::create_dir_all(m.join("cache")).unwrap();
    std::fs::write(m.join("cache/x"), b"1").unwrap();
    let ser = Serialization {
        ignore_paths: vec!["cache".into()],
        ..Default::default()
    };
    let (sig, bytes) = sign(&m, &Signer::Key(private("p256")), ser);
    let ig = statement(&bytes)["predicate"]["serialization"]["ignore_paths"].clone();
    assert!(ig.as_array().unwrap().iter().any(|v| v == "cache"), "{ig}");
    assert!(
        ig.as_array().unwrap().iter().any(|v| v == "model.sig"),
        "{ig}"
    );
    std::fs::write(m.join("cache/x"), b"2").unwrap();
    verify(&m, &sig, &key_trust("p256")).unwrap();
}

#[test]
fn symlinks_refused_unless_allowed() {
    let t = tempfile::tempdir().unwrap();
    let m = make_model(t.path());
    std::os::unix::fs::symlink(m.join("a-c"), m.join("link")).unwrap();
    let opts = SignOptions {
        serialization: Serialization::default(),
        ..Default::default()
    };
    let e = sign_model(&m, &Signer::Key(private("p256")), &opts).unwrap_err();
    assert!(e.to_string().contains("'link' is a symbolic link"), "{e}");
    let opts = SignOptions {
        serialization: Serialization {
            allow_symlinks: true,
            ..Default::default()
        },
        ..Default::default()
    };
    let (man, _) = sign_model(&m, &Signer::Key(private("p256")), &opts).unwrap();
    let a = man.resources.iter().find(|r| r.name == "a-c").unwrap();
    let l = man.resources.iter().find(|r| r.name == "link").unwrap();
    assert_eq!(a.digest, l.digest);
}

#[test]
fn single_file_model_uses_basename_and_verifies() {
    let t = tempfile::tempdir().unwrap();
    let f = t.path().join("model.safetensors");
    std::fs::write(&f, b"weights").unwrap();
    let opts = SignOptions::default();
    let (_, bytes) = sign_model(&f, &Signer::Key(private("p384")), &opts).unwrap();
    let st = statement(&bytes);
    assert_eq!(st["predicate"]["resources"][0]["name"], "model.safetensors");
    assert_eq!(st["subject"][0]["name"], "model.safetensors");
    let v = verify_model(&f, &bytes, &key_trust("p384"), &VerifyOptions::default()).unwrap();
    assert_eq!(v.manifest.resources.len(), 1);
    std::fs::write(&f, b"weightz").unwrap();
    let e = verify_model(&f, &bytes, &key_trust("p384"), &VerifyOptions::default()).unwrap_err();
    assert!(
        e.to_string()
            .contains("'model.safetensors' has been modified"),
        "{e}"
    );
}

#[test]
fn digest_cache_speeds_resign_but_is_keyed_on_metadata() {
    let t = tempfile::tempdir().unwrap();
    let m = make_model(t.path());
    let cache = t.path().join("cache.json");
    let opts = SignOptions {
        digest_cache: Some(cache.clone()),
        ..Default::default()
    };
    let (m1, _) = sign_model(&m, &Signer::Key(private("p256")), &opts).unwrap();
    assert!(
        std::fs::read_to_string(&cache)
            .unwrap()
            .contains("weights.bin")
    );
    // Changing the content changes size => new key => fresh digest.
    std::fs::write(m.join("a-c"), b"dash-changed").unwrap();
    let (m2, _) = sign_model(&m, &Signer::Key(private("p256")), &opts).unwrap();
    let d = |man: &pedigree_sign::Manifest| {
        man.resources
            .iter()
            .find(|r| r.name == "a-c")
            .unwrap()
            .digest
            .clone()
    };
    assert_ne!(d(&m1), d(&m2));
}

fn statement(bundle: &[u8]) -> serde_json::Value {
    let b: serde_json::Value = serde_json::from_slice(bundle).unwrap();
    let p = base64::engine::general_purpose::STANDARD
        .decode(b["dsseEnvelope"]["payload"].as_str().unwrap())
        .unwrap();
    serde_json::from_slice(&p).unwrap()
}

#[test]
fn our_bundles_validate_against_oms_schemas() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/oms-schemas");
    let load = |n: &str| -> serde_json::Value {
        serde_json::from_str(&std::fs::read_to_string(dir.join(n)).unwrap()).unwrap()
    };
    let (bundle_s, env_s, stmt_s, pred_s) = (
        load("bundle.schema.json"),
        load("envelope.schema.json"),
        load("statement.schema.json"),
        load("predicate.schema.json"),
    );
    let registry = jsonschema::Registry::new()
        .add("https://model_signing/envelope/v1.0/schema", env_s.clone())
        .unwrap()
        .add(
            "https://model_signing/predicate/v1.0/schema",
            pred_s.clone(),
        )
        .unwrap()
        .add(
            "https://model_signing/statement/v1.0/schema",
            stmt_s.clone(),
        )
        .unwrap()
        .prepare()
        .unwrap();
    let v = |s: &serde_json::Value| {
        jsonschema::options()
            .with_registry(&registry)
            .build(s)
            .unwrap()
    };
    let (vb, ve, vs, vp) = (v(&bundle_s), v(&env_s), v(&stmt_s), v(&pred_s));
    // Sanity: the schemas reject a broken statement.
    assert!(!vs.is_valid(&serde_json::json!({"_type": "x"})));
    let t = tempfile::tempdir().unwrap();
    let m = make_model(t.path());
    let chain = Cert::all_from_pem(&(read("p256-leaf.pem") + &read("p256-int.pem"))).unwrap();
    let signers = [
        Signer::Key(private("p256")),
        Signer::Key(private("p384")),
        Signer::certificate(private("p256"), chain).unwrap(),
    ];
    for signer in &signers {
        for ser in sers() {
            let (_, bytes) = sign(&m, signer, ser);
            let b: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
            let st = statement(&bytes);
            for (name, val, inst) in [
                ("bundle", &vb, &b),
                ("envelope", &ve, &b["dsseEnvelope"]),
                ("statement", &vs, &st),
                ("predicate", &vp, &st["predicate"]),
            ] {
                let errs: Vec<String> = val.iter_errors(inst).map(|e| e.to_string()).collect();
                assert!(errs.is_empty(), "{name}: {errs:?}");
            }
        }
    }
}
