//! The shared OMS and reference-tool vectors: every valid one verifies,
//! every invalid one is rejected with a reason naming what is wrong.

use std::path::{Path, PathBuf};

use pedigree_sign::{
    Cert, Error, PublicKey, SignerIdentity, SigstoreTrust, TrustStore, VerifyFailure,
    VerifyOptions, verify_model,
};

fn data() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data")
}

fn ms(dir: &str) -> PathBuf {
    data().join("model-signing-vectors").join(dir)
}

fn vector_key() -> TrustStore {
    let pem = std::fs::read_to_string(ms("keys/certificate/signing-key-pub.pem")).unwrap();
    TrustStore {
        keys: vec![PublicKey::from_pem(&pem).unwrap()],
        ..Default::default()
    }
}

fn vector_roots(files: &[&str]) -> TrustStore {
    let mut roots = Vec::new();
    for f in files {
        roots.extend(
            Cert::all_from_pem(
                &std::fs::read_to_string(ms(&format!("keys/certificate/{f}"))).unwrap(),
            )
            .unwrap(),
        );
    }
    TrustStore {
        roots,
        ..Default::default()
    }
}

fn vector_sigstore() -> TrustStore {
    TrustStore {
        sigstore: Some(SigstoreTrust {
            trusted_root_json: None,
            identity: Some("stefanb@us.ibm.com".into()),
            issuer: Some("https://sigstore.verify.ibm.com/oauth2".into()),
        }),
        ..Default::default()
    }
}

fn opts(sig: &Path, extra: &[&str]) -> VerifyOptions {
    VerifyOptions {
        ignore_paths: extra.iter().map(|s| s.to_string()).collect(),
        ignore_unsigned_files: false,
        signature_path: Some(sig.to_path_buf()),
    }
}

fn check_dir(dir: &str, trust: &TrustStore) -> SignerIdentity {
    let d = ms(dir);
    let sig = d.join("model.sig");
    // Pre-1.1 bundles do not record their ignore list; the reference test
    // suite passes `--ignore-paths ignore-me` for them, so do we.
    let model = if dir == "v1.0.0-elliptic-key" {
        d.join("signme-1")
    } else {
        d.clone()
    };
    let r = verify_model(
        &model,
        &std::fs::read(&sig).unwrap(),
        trust,
        &opts(&sig, &["ignore-me"]),
    );
    match r {
        Ok(v) => {
            assert!(!v.manifest.resources.is_empty());
            v.signer
        }
        Err(e) => panic!("{dir}: {e}"),
    }
}

#[test]
fn reference_elliptic_key_vectors_verify() {
    for v in ["v1.0.0", "v1.0.1", "v1.1.0"] {
        let id = check_dir(&format!("{v}-elliptic-key"), &vector_key());
        assert!(
            matches!(id, SignerIdentity::Key { curve: "P-384", .. }),
            "{v}: {id:?}"
        );
    }
}

#[test]
fn reference_certificate_vectors_verify() {
    for v in ["v1.0.0", "v1.0.1", "v1.1.0"] {
        let id = check_dir(&format!("{v}-certificate"), &vector_roots(&["ca-cert.pem"]));
        match id {
            SignerIdentity::Certificate { root, .. } => {
                assert!(root.contains("root-ca"), "{v}: {root}")
            }
            other => panic!("{v}: {other:?}"),
        }
    }
}

#[test]
fn reference_sigstore_vectors_verify_offline() {
    for v in ["v1.0.0", "v1.0.1", "v1.1.0"] {
        let id = check_dir(&format!("{v}-sigstore"), &vector_sigstore());
        match id {
            SignerIdentity::Sigstore(s) => {
                assert_eq!(s.identity.as_deref(), Some("stefanb@us.ibm.com"));
                assert!(s.integrated_time.is_some());
            }
            other => panic!("{v}: {other:?}"),
        }
    }
}

#[test]
fn sigstore_vector_rejected_for_wrong_identity() {
    let mut t = vector_sigstore();
    t.sigstore.as_mut().unwrap().identity = Some("mallory@example.com".into());
    let d = ms("v1.1.0-sigstore");
    let sig = d.join("model.sig");
    let e = verify_model(&d, &std::fs::read(&sig).unwrap(), &t, &opts(&sig, &[])).unwrap_err();
    assert!(
        matches!(e, Error::Verification(VerifyFailure::Sigstore(_))),
        "{e}"
    );
}

#[test]
fn certificate_vector_rejected_by_other_root() {
    let keys = data().join("keys/p384-root.pem");
    let t = TrustStore {
        roots: Cert::all_from_pem(&std::fs::read_to_string(keys).unwrap()).unwrap(),
        ..Default::default()
    };
    let d = ms("v1.1.0-certificate");
    let sig = d.join("model.sig");
    let e = verify_model(&d, &std::fs::read(&sig).unwrap(), &t, &opts(&sig, &[])).unwrap_err();
    assert!(
        matches!(e, Error::Verification(VerifyFailure::Chain(_))),
        "{e}"
    );
}

#[test]
fn certificate_vector_rejected_after_validity_period() {
    let mut t = vector_roots(&["ca-cert.pem"]);
    t.at_unix = Some(4_102_444_800); // 2100-01-01
    let d = ms("v1.1.0-certificate");
    let sig = d.join("model.sig");
    let e = verify_model(&d, &std::fs::read(&sig).unwrap(), &t, &opts(&sig, &[])).unwrap_err();
    assert!(e.to_string().contains("validity"), "{e}");
}

#[test]
fn pre_1_1_vector_without_ignore_list_rejects_unlisted_file() {
    // v1.0.1 did not record ignore_paths: without the caller naming
    // `ignore-me`, the file is an extra, unsigned file.
    let d = ms("v1.0.1-elliptic-key");
    let sig = d.join("model.sig");
    let e = verify_model(
        &d,
        &std::fs::read(&sig).unwrap(),
        &vector_key(),
        &opts(&sig, &[]),
    )
    .unwrap_err();
    assert_eq!(
        e.to_string(),
        "verification failed: file 'ignore-me' is not covered by the signature (extra file)"
    );
}

fn oms(p: &str) -> Vec<u8> {
    std::fs::read(data().join("oms-vectors").join(p)).unwrap()
}

#[test]
fn oms_valid_vectors_verify() {
    // key.bundle.json and certificate.bundle.json sign the files of the
    // reference v1.1.0 elliptic-key vector; sigstore.bundle.json those of
    // the v1.1.0 sigstore vector. The reference `model.sig` beside them is
    // excluded as the signature file would be.
    let key_dir = ms("v1.1.0-elliptic-key");
    let o = opts(&key_dir.join("model.sig"), &[]);
    let v = verify_model(&key_dir, &oms("valid/key.bundle.json"), &vector_key(), &o).unwrap();
    assert_eq!(v.manifest.resources.len(), 2);
    let v = verify_model(
        &key_dir,
        &oms("valid/certificate.bundle.json"),
        &vector_roots(&["ca-cert.pem"]),
        &o,
    )
    .unwrap();
    assert!(matches!(v.signer, SignerIdentity::Certificate { .. }));
    let ss_dir = ms("v1.1.0-sigstore");
    let v = verify_model(
        &ss_dir,
        &oms("valid/sigstore.bundle.json"),
        &vector_sigstore(),
        &opts(&ss_dir.join("model.sig"), &[]),
    )
    .unwrap();
    assert!(matches!(v.signer, SignerIdentity::Sigstore(_)));
}

#[test]
fn oms_invalid_vectors_are_rejected_with_reason() {
    let dir = ms("v1.1.0-elliptic-key");
    let o = opts(&dir.join("model.sig"), &[]);
    let cases: [(&str, &TrustStore, &str); 5] = [
        (
            "invalid/empty.bundle.json",
            &vector_key(),
            "bundle is empty",
        ),
        (
            "invalid/missing-envelope.bundle.json",
            &vector_key(),
            "missing dsseEnvelope",
        ),
        (
            "invalid/missing-verification-material.bundle.json",
            &vector_key(),
            "missing verificationMaterial",
        ),
        (
            "invalid/missing-tlog-entries.bundle.json",
            &vector_sigstore(),
            "no tlogEntries",
        ),
        (
            "invalid-payload/wrong-predicate.bundle.json",
            &vector_key(),
            "signature does not verify",
        ),
    ];
    for (file, trust, reason) in cases {
        let e = verify_model(&dir, &oms(file), trust, &o).unwrap_err();
        assert!(
            e.to_string().contains(reason),
            "{file}: got '{e}', wanted '{reason}'"
        );
        assert!(e.is_verification_failure(), "{file}: {e:?}");
    }
}

#[test]
fn wrong_predicate_is_rejected_even_if_signed() {
    // Re-sign the wrong-predicate payload with our own key: the signature
    // is then valid and the statement check must catch it.
    let b =
        pedigree_sign::Bundle::parse(&oms("invalid-payload/wrong-predicate.bundle.json")).unwrap();
    let key = pedigree_sign::PrivateKey::from_pem(
        &std::fs::read_to_string(data().join("keys/p256.key.pem")).unwrap(),
    )
    .unwrap();
    let sig = key.sign_der(&b.pae());
    let doc = pedigree_sign::bundle::bundle_json(
        pedigree_sign::bundle::key_material(&key.public_key().hint()),
        &b.payload,
        &sig,
    );
    let trust = TrustStore {
        keys: vec![key.public_key()],
        ..Default::default()
    };
    let e = pedigree_sign::verify_bundle(
        &pedigree_sign::Bundle::parse(doc.to_string().as_bytes()).unwrap(),
        &trust,
    )
    .unwrap_err();
    assert!(
        e.to_string()
            .contains("predicateType 'https://example.com/wrong-predicate/v1.0'"),
        "{e}"
    );
}
