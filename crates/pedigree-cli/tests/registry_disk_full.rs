//! Fault test: the blob store's disk is full. The server's blob directory is a 2 MiB tmpfs
//! (mounted in a private mount namespace with `unshare -m`, so nothing outside the test sees
//! it); the staging area stays on the ordinary disk, so blobs cross filesystems on their way in.
//!
//! A push with a file that does not fit fails with 507 and an error naming the blob and "No
//! space left on device"; nothing of it is visible afterwards (no blob, no version); the
//! space the failed copy took is given back, so a model that fits is then pushed, approved and
//! pulled intact.
//!
//! Needs `unshare` (util-linux) and the right to mount in a new namespace (root, or
//! unprivileged user namespaces); fails, never skips, without them.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use pedigree_registry::client::{Client, ModelRef};

fn write_model(dir: &Path, floats: usize, seed: u64) {
    std::fs::create_dir_all(dir).unwrap();
    let mut x = seed | 1;
    let data: Vec<u8> = (0..floats)
        .flat_map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (((x >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 0.2).to_le_bytes()
        })
        .collect();
    let view =
        safetensors::tensor::TensorView::new(safetensors::Dtype::F32, vec![floats / 64, 64], &data)
            .unwrap();
    std::fs::write(
        dir.join("model.safetensors"),
        safetensors::tensor::serialize([("w", view)], None).unwrap(),
    )
    .unwrap();
    std::fs::write(
        dir.join("README.md"),
        format!(
            "---\nlicense: apache-2.0\ndatasets:\n- acme/transactions-2024\n---\n# m{seed}\n\nDisk-full test.\n"
        ),
    )
    .unwrap();
}

fn sha256_file(p: &Path) -> String {
    use sha2::Digest;
    format!(
        "sha256:{}",
        hex::encode(sha2::Sha256::digest(std::fs::read(p).unwrap()))
    )
}

#[test]
fn a_full_blob_disk_fails_cleanly_and_recovers() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let blobs = tmp.path().join("blobs");
    std::fs::create_dir_all(&blobs).unwrap();
    let log = tmp.path().join("serve.log");
    // sh: mount the tmpfs in this namespace, then become `pedigree serve`.
    let mut child = Command::new("unshare")
        .args(["-m", "sh", "-c"])
        .arg("mount -t tmpfs -o size=2m tmpfs \"$1\" || exit 97; shift; exec \"$@\"")
        .arg("sh")
        .arg(&blobs)
        .arg(env!("CARGO_BIN_EXE_pedigree"))
        .args(["serve", "--data-dir", data.to_str().unwrap()])
        .args(["--blob-store", blobs.to_str().unwrap()])
        .args(["--listen", "127.0.0.1:0", "--workers", "1"])
        .env_remove("PEDIGREE_CONFIG")
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .expect("run `unshare` (util-linux): this test mounts a small tmpfs");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let (mut admin, mut url) = (None, None);
    while url.is_none() {
        let Some(Ok(line)) = lines.next() else {
            let st = child.wait().unwrap();
            panic!(
                "the server did not start ({st}; exit 97: the tmpfs could not be mounted — this \
                 test needs root or unprivileged user namespaces):\n{}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
        };
        if let Some(t) = line.split("stored only as a hash): ").nth(1) {
            admin = Some(t.trim().to_string());
        }
        if let Some(u) = line.split("listening on ").nth(1) {
            url = Some(u.trim().to_string());
        }
    }
    let (admin, url) = (admin.unwrap(), url.unwrap());
    let c = Client::new(&url, Some(admin.clone())).unwrap();

    // 3 MiB of weights into a 2 MiB disk.
    let big = tmp.path().join("big");
    write_model(&big, 3 << 18, 7);
    let big_ref = ModelRef::parse("acme/big:1.0").unwrap();
    let err = c
        .push(&big, &big_ref)
        .expect_err("a 3 MiB file cannot fit a 2 MiB blob disk")
        .to_string();
    let digest = sha256_file(&big.join("model.safetensors"));
    assert!(
        err.contains("No space left on device") && err.contains(&digest),
        "the error should name the blob and the full disk: {err}"
    );
    assert_eq!(
        c.blob_size(&digest).unwrap(),
        None,
        "no part of the blob is visible"
    );
    let e = c.status(&big_ref).expect_err("no version was created");
    assert_eq!(e.status(), Some(404), "{e}");

    // The failed copy gave its space back: a model that fits goes through.
    let small = tmp.path().join("small");
    write_model(&small, 64 * 1024, 11);
    let small_ref = ModelRef::parse("acme/small:1.0").unwrap();
    c.push(&small, &small_ref).expect("a 256 KiB model fits");
    let s = c
        .wait_decided(&small_ref, Duration::from_secs(120))
        .unwrap();
    assert_eq!(s.state, "approved", "{s:?}");
    let out = tmp.path().join("pulled");
    c.pull(&small_ref, &out).expect("pull");
    assert_eq!(
        std::fs::read(out.join("model.safetensors")).unwrap(),
        std::fs::read(small.join("model.safetensors")).unwrap()
    );
    let _ = child.kill();
    let _ = child.wait();
}
