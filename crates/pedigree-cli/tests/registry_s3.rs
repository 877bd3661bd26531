//! `pedigree serve --blob-store s3://…` end to end, against a real S3-compatible server (moto's
//! standalone server from `.venv`, installed by `bash scripts/setup.sh`): push, ingest and pull
//! a small model with the CLI; the blobs live in the bucket and nowhere on the server's disk;
//! a blob store that cannot be reached stops `serve` at startup with the store named. One test
//! runs against moto in its IAM mode, which verifies request signatures (see
//! `pedigree-registry/tests/common/moto.rs`).

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::time::Duration;

use sha2::Digest;

mod support;
use support::{Moto, Proc, Serve, raw_http};

/// `pedigree serve` with one worker and `blob_store`, data under `tmp/data`.
fn serve(tmp: &Path, blob_store: &str, env: &[(&str, &str)]) -> Serve {
    Serve::start(
        &tmp.join("data"),
        &["--workers", "1", "--blob-store", blob_store],
        env,
        tmp.join("serve.log"),
    )
}

/// The CLI against `srv`, which must succeed: its stdout.
fn ok(srv: &Serve, token: &str, args: &[&str]) -> String {
    let o = srv.cli(Some(token), args);
    assert!(
        o.status.success(),
        "pedigree {args:?} failed: {}\n{}\nserver log:\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr),
        srv.log_tail()
    );
    String::from_utf8_lossy(&o.stdout).to_string()
}

/// `pedigree serve` with `blob_store` must exit non-zero at startup: its stderr.
fn refused_at_startup(tmp: &Path, blob_store: &str, env: &[(&str, &str)]) -> String {
    let data = tmp.join("refused");
    let log = tmp.join("refused.log");
    let args = [
        "serve",
        "--data-dir",
        data.to_str().unwrap(),
        "--listen",
        "127.0.0.1:0",
        "--workers",
        "1",
        "--blob-store",
        blob_store,
    ];
    let mut p = Proc::spawn(&args, env, log);
    let (code, _) = p.wait_exit(Duration::from_secs(60));
    let err = p.log_text();
    assert!(
        code.is_some_and(|c| c != 0),
        "serve with {blob_store} exited {code:?}: {err}"
    );
    err
}

/// A small safetensors model with a card and a config.
fn write_model(dir: &Path) {
    let all = support::xorshift_floats(0x2545_F491_4F6C_DD1D, 64 * 32 + 16 * 32);
    let (embed, head) = all.split_at(64 * 32);
    support::write_model(
        dir,
        &[
            ("embed.weight", vec![64, 32], embed.to_vec()),
            ("head.weight", vec![16, 32], head.to_vec()),
        ],
        "---\nlicense: apache-2.0\ndatasets:\n- acme/transactions-2024\n---\n# s3 toy\n\nA small model for the S3 blob store test.\n",
        Some(r#"{"model_type": "toy"}"#),
    );
}

#[test]
fn serve_with_s3_blob_store_push_ingest_pull() {
    let moto = Moto::start();
    let (status, body) = raw_http(moto.addr, "PUT", "/models", &[]).unwrap();
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let tmp = tempfile::tempdir().unwrap();
    let store = format!(
        "s3://models/registry?endpoint=http://{}&region=us-east-1&allow_http=true",
        moto.addr
    );
    let srv = serve(tmp.path(), &store, &[]);
    let publisher = ok(
        &srv,
        &srv.admin,
        &["token", "create", "acme-ci", "--role", "publisher:acme"],
    )
    .trim()
    .to_string();

    let model = tmp.path().join("model");
    write_model(&model);
    let out = ok(
        &srv,
        &publisher,
        &[
            "push",
            model.to_str().unwrap(),
            "acme/toy:1.0",
            "--wait",
            "--timeout",
            "120",
        ],
    );
    assert!(
        out.contains("3 file(s)") && out.contains("acme/toy:1.0: approved"),
        "{out}"
    );

    // Every file is an object in the bucket under its digest, byte for byte...
    for name in ["model.safetensors", "README.md", "config.json"] {
        let bytes = std::fs::read(model.join(name)).unwrap();
        let hex = hex::encode(sha2::Sha256::digest(&bytes));
        let (status, body) = raw_http(
            moto.addr,
            "GET",
            &format!("/models/registry/sha256/{hex}"),
            &[],
        )
        .unwrap();
        assert_eq!(status, 200, "{name} is not in the bucket");
        assert!(body == bytes, "{name} differs in the bucket");
    }
    // ... and no blob is kept on the server's disk.
    let local_blobs = walk_files(&srv.data.join("blobs"));
    assert!(
        local_blobs.is_empty(),
        "blobs on local disk: {local_blobs:?}"
    );
    let fetch_left: Vec<_> = walk_files(&srv.data.join("work"))
        .into_iter()
        .filter(|p| p.to_string_lossy().contains(".fetch"))
        .collect();
    assert!(
        fetch_left.is_empty(),
        "download scratch left: {fetch_left:?}"
    );

    let pulled = tmp.path().join("pulled");
    let out = ok(
        &srv,
        &srv.admin,
        &["pull", "acme/toy:1.0", pulled.to_str().unwrap()],
    );
    assert!(out.contains("every SHA-256 verified"), "{out}");
    for name in ["model.safetensors", "README.md", "config.json"] {
        assert_eq!(
            std::fs::read(model.join(name)).unwrap(),
            std::fs::read(pulled.join(name)).unwrap(),
            "{name} differs after the round trip through S3"
        );
    }

    // Tamper with the weights in the bucket: the registry refuses to serve them.
    let bytes = std::fs::read(model.join("model.safetensors")).unwrap();
    let hex = hex::encode(sha2::Sha256::digest(&bytes));
    let mut evil = bytes.clone();
    let last = evil.len() - 1;
    evil[last] ^= 0x40;
    let (status, _) = raw_http(
        moto.addr,
        "PUT",
        &format!("/models/registry/sha256/{hex}"),
        &evil,
    )
    .unwrap();
    assert_eq!(status, 200);
    let o = srv.cli(
        Some(&srv.admin),
        &[
            "pull",
            "acme/toy:1.0",
            tmp.path().join("pulled-evil").to_str().unwrap(),
        ],
    );
    assert!(
        !o.status.success(),
        "a tampered blob was pulled: {}",
        String::from_utf8_lossy(&o.stdout)
    );
}

#[test]
fn serve_refuses_a_blob_store_it_cannot_reach() {
    let moto = Moto::start();
    let tmp = tempfile::tempdir().unwrap();
    // No such bucket on a live server, then no server at all.
    let dead = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    for (store, why) in [
        (
            format!(
                "s3://no-such-bucket?endpoint=http://{}&allow_http=true&retries=1",
                moto.addr
            ),
            "s3://no-such-bucket",
        ),
        (
            format!("s3://models?endpoint=http://{dead}&allow_http=true&retries=1"),
            "s3://models",
        ),
        ("s3://models?endpiont=x".to_string(), "unknown option"),
    ] {
        let err = refused_at_startup(tmp.path(), &store, &[]);
        assert!(err.contains(why), "{store}: {err}");
    }
}

/// Against moto in its IAM mode, which verifies every request's signature: `serve` with the
/// right access key but a wrong secret stops at startup, naming the store and saying the
/// signature was refused; with the right credentials the same store serves a push, ingest and
/// pull, every request signed (listings, HEADs, single PUTs, GETs; multipart signing is covered
/// by the registry crate's `s3` tests).
#[test]
fn serve_with_signed_requests_and_a_wrong_secret() {
    let moto = Moto::start();
    moto.create_bucket("models");
    let creds = moto.create_user("registry");
    moto.require_signatures();
    let tmp = tempfile::tempdir().unwrap();
    let store = format!(
        "s3://models/signed?endpoint=http://{}&region=us-east-1&allow_http=true&retries=1",
        moto.addr
    );

    let wrong = format!("{}x", creds.secret_access_key);
    let err = refused_at_startup(
        tmp.path(),
        &store,
        &[
            ("AWS_ACCESS_KEY_ID", &creds.access_key_id),
            ("AWS_SECRET_ACCESS_KEY", &wrong),
        ],
    );
    for needle in [
        "s3://models/signed",
        "credentials refused",
        "SignatureDoesNotMatch",
        "AWS_SECRET_ACCESS_KEY",
    ] {
        assert!(
            err.contains(needle),
            "{needle:?} not in serve's error: {err}"
        );
    }
    assert!(!err.contains(&wrong), "the secret is never printed: {err}");

    let srv = serve(
        tmp.path(),
        &store,
        &[
            ("AWS_ACCESS_KEY_ID", &creds.access_key_id),
            ("AWS_SECRET_ACCESS_KEY", &creds.secret_access_key),
        ],
    );
    let model = tmp.path().join("model");
    write_model(&model);
    let out = ok(
        &srv,
        &srv.admin,
        &[
            "push",
            model.to_str().unwrap(),
            "acme/signed:1.0",
            "--wait",
            "--timeout",
            "120",
        ],
    );
    assert!(out.contains("acme/signed:1.0: approved"), "{out}");
    let pulled = tmp.path().join("pulled");
    ok(
        &srv,
        &srv.admin,
        &["pull", "acme/signed:1.0", pulled.to_str().unwrap()],
    );
    assert_eq!(
        std::fs::read(model.join("model.safetensors")).unwrap(),
        std::fs::read(pulled.join("model.safetensors")).unwrap()
    );
}

fn walk_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in rd.flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk_files(&p));
            // An empty download scratch dir counts as left behind too.
            if p.to_string_lossy().ends_with(".fetch") {
                out.push(p);
            }
        } else {
            out.push(p);
        }
    }
    out
}
