//! Fault test: the blob store's disk is full. The server's blob directory is a 2 MiB tmpfs
//! (mounted in a private mount namespace with `unshare -m`, so nothing outside the test sees
//! it); the staging area stays on the ordinary disk, so blobs cross filesystems on their way in.
//!
//! A push with a file that does not fit fails with 507 and an error naming the blob and "No
//! space left on device"; nothing of it is visible afterwards (no blob, no version); the
//! space the failed copy took is given back, so a model that fits is then pushed, approved and
//! pulled intact.
//!
//! The second test puts the data directory itself (SQLite database, its WAL, the audit anchor,
//! staging) on a tmpfs and fills it, with blobs on the ordinary disk: a push whose blobs are
//! already stored then fails in the database's commit. It must fail with 507 naming the database
//! and the full disk, leave nothing half-visible, keep reads working, and work again once space
//! is freed.
//!
//! Needs `unshare` (util-linux) and the right to mount in a new namespace (root, or
//! unprivileged user namespaces); fails, never skips, without them.

mod support;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use pedigree_registry::client::{Client, ModelRef};

fn write_model(dir: &Path, floats: usize, seed: u64) {
    let w = support::xorshift_floats(seed, floats);
    let card = format!(
        "---\nlicense: apache-2.0\ndatasets:\n- acme/transactions-2024\n---\n# m{seed}\n\nDisk-full test.\n"
    );
    support::write_model(dir, &[("w", vec![floats / 64, 64], w)], &card, None);
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
    let (mut child, url, admin) = serve_on_tmpfs(
        &blobs,
        "2m",
        &[
            "--data-dir",
            data.to_str().unwrap(),
            "--blob-store",
            blobs.to_str().unwrap(),
        ],
        &log,
    );
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

/// `pedigree serve` with `mount_dir` on a tmpfs of `size` in a private mount namespace: the
/// child, its URL and the admin token. The test reaches into that namespace through
/// `/proc/<pid>/root`, which resolves paths in the process's own mount namespace.
fn serve_on_tmpfs(
    mount_dir: &Path,
    size: &str,
    args: &[&str],
    log: &Path,
) -> (std::process::Child, String, String) {
    let mut child = Command::new("unshare")
        .args(["-m", "sh", "-c"])
        .arg("mount -t tmpfs -o size=\"$1\" tmpfs \"$2\" || exit 97; shift 2; exec \"$@\"")
        .arg("sh")
        .arg(size)
        .arg(mount_dir)
        .arg(env!("CARGO_BIN_EXE_pedigree"))
        .arg("serve")
        .args(args)
        .args(["--listen", "127.0.0.1:0", "--workers", "1"])
        .env_remove("PEDIGREE_CONFIG")
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(log).unwrap())
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
                std::fs::read_to_string(log).unwrap_or_default()
            );
        };
        if let Some(t) = line.split("stored only as a hash): ").nth(1) {
            admin = Some(t.trim().to_string());
        }
        if let Some(u) = line.split("listening on ").nth(1) {
            url = Some(u.trim().to_string());
        }
    }
    // Keep draining stdout so the server never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    (child, url.unwrap(), admin.unwrap())
}

/// Write zeros to `path` until the filesystem is full; the bytes written.
fn fill(path: &Path) -> u64 {
    use std::io::Write;
    let mut f = std::fs::File::create(path).unwrap();
    let chunk = vec![0u8; 64 << 10];
    let mut n = 0u64;
    loop {
        match f.write(&chunk) {
            Ok(0) => break,
            Ok(k) => n += k as u64,
            Err(e) if e.raw_os_error() == Some(libc::ENOSPC) => break,
            Err(e) => panic!("filling {}: {e}", path.display()),
        }
    }
    // Single bytes, for the last partial page.
    while let Ok(1) = f.write(&[0]) {
        n += 1;
    }
    n
}

fn versions_and_jobs(c: &Client) -> (usize, i64) {
    let list = c.list_models(None, None, None).unwrap();
    let versions = list["versions"]
        .as_array()
        .or(list.as_array())
        .unwrap_or_else(|| panic!("{list}"))
        .len();
    let jobs = c.jobs().unwrap();
    let total = jobs["jobs"]
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_i64().unwrap())
        .sum();
    (versions, total)
}

#[test]
fn a_full_database_disk_fails_cleanly_and_recovers() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let blobs = tmp.path().join("blobs");
    std::fs::create_dir_all(&data).unwrap();
    let log = tmp.path().join("serve.log");
    let (mut child, url, admin) = serve_on_tmpfs(
        &data,
        "16m",
        &[
            "--data-dir",
            data.to_str().unwrap(),
            "--blob-store",
            blobs.to_str().unwrap(),
        ],
        &log,
    );
    // The data dir as the server sees it (inside its mount namespace).
    let inside = Path::new("/proc")
        .join(child.id().to_string())
        .join("root")
        .join(data.strip_prefix("/").unwrap());
    assert!(
        inside.join("registry.db").is_file(),
        "{} not visible",
        inside.display()
    );
    let c = Client::new(&url, Some(admin.clone())).unwrap();

    // A first version, approved while there is space.
    let first = tmp.path().join("first");
    write_model(&first, 4096, 3);
    let first_ref = ModelRef::parse("acme/m:1.0").unwrap();
    c.push(&first, &first_ref)
        .expect("push while there is space");
    assert_eq!(
        c.wait_decided(&first_ref, Duration::from_secs(120))
            .unwrap()
            .state,
        "approved"
    );
    // A second model whose blobs go up now, so that pushing it later needs no staging space,
    // only the database: one note many times over under long names makes its transaction far
    // larger than any before it (SQLite reuses its WAL file's space, so only a transaction
    // bigger than the WAL has held needs new disk).
    let second = tmp.path().join("second");
    write_model(&second, 4096, 5);
    let notes = second.join("notes");
    std::fs::create_dir_all(&notes).unwrap();
    for i in 0..1500 {
        std::fs::write(
            notes.join(format!("{i:05}-{}.txt", "n".repeat(150))),
            "shared note\n",
        )
        .unwrap();
    }
    for f in [
        second.join("model.safetensors"),
        second.join("README.md"),
        notes.join(format!("{:05}-{}.txt", 0, "n".repeat(150))),
    ] {
        c.put_blob(&sha256_file(&f), std::fs::read(&f).unwrap())
            .unwrap();
    }
    let second_ref = ModelRef::parse("acme/other:1.0").unwrap();
    let before = versions_and_jobs(&c);
    let audit_before = c.audit_all().unwrap().len();

    let filler = inside.join("filler");
    let filled = fill(&filler);
    assert!(
        filled > 1 << 20,
        "only {filled} bytes of filler: the tmpfs was already full"
    );

    let err = c
        .push(&second, &second_ref)
        .expect_err("a version the database has no room for");
    let msg = err.to_string();
    eprintln!("push on a full database disk: {msg}");
    assert_eq!(err.status(), Some(507), "{msg}");
    assert!(
        msg.contains("registry.db") && (msg.contains("disk full") || msg.contains("No space left")),
        "the error names the database and the full disk: {msg}"
    );

    // Nothing of the failed version: no version, no job, no audit entry; the chain verifies.
    let e = c.status(&second_ref).expect_err("no version was created");
    assert_eq!(e.status(), Some(404), "{e}");
    assert_eq!(versions_and_jobs(&c), before);
    assert_eq!(c.audit_all().unwrap().len(), audit_before);
    let verify = |extra: &[&str]| {
        let o = Command::new(env!("CARGO_BIN_EXE_pedigree"))
            .args(["audit", "verify"])
            .args(extra)
            .env("PEDIGREE_URL", &url)
            .env("PEDIGREE_TOKEN", &admin)
            .env_remove("PEDIGREE_CONFIG")
            .output()
            .unwrap();
        let out =
            String::from_utf8_lossy(&o.stdout).to_string() + &String::from_utf8_lossy(&o.stderr);
        assert!(o.status.success(), "audit verify {extra:?}: {out}");
        assert!(out.contains("audit chain intact"), "{out}");
    };
    verify(&[]);

    // Reads go on: status, listing, a pull of the approved version.
    assert_eq!(c.status(&first_ref).unwrap().state, "approved");
    let out = tmp.path().join("pulled-full");
    c.pull(&first_ref, &out)
        .expect("pull while the disk is full");
    assert_eq!(
        std::fs::read(out.join("model.safetensors")).unwrap(),
        std::fs::read(first.join("model.safetensors")).unwrap()
    );

    // Space back. Every pooled database connection works again, including the one whose
    // COMMIT failed: writes in a row (token creations) go round the pool.
    std::fs::remove_file(&filler).unwrap();
    for i in 0..8 {
        c.create_token(
            &format!("after-full-{i}"),
            &[pedigree_registry::store::Grant {
                role: pedigree_registry::store::Role::Reader,
                namespace: "acme".into(),
            }],
        )
        .unwrap_or_else(|e| panic!("write {i} after space was freed: {e}"));
    }
    // The same push goes through and the version is approved.
    c.push(&second, &second_ref)
        .expect("push after space was freed");
    let s = c
        .wait_decided(&second_ref, Duration::from_secs(180))
        .unwrap();
    assert_eq!(s.state, "approved", "{s:?}");
    // The whole chain again, now with the anchor the server checkpoints into the data dir
    // after every write: it names the chain's last entry. (Read through /proc/PID/root; an
    // offline `audit verify --data-dir` cannot be pointed there, as SQLite resolves that magic
    // link to this namespace's empty directory.)
    verify(&[]);
    let anchor = pedigree_registry::audit::Anchor::load(&inside.join("audit.head")).unwrap();
    let entries = c.audit_all().unwrap();
    pedigree_registry::audit::verify_chain(&entries, Some(&anchor)).unwrap();
    assert_eq!(anchor.seq, entries.last().unwrap().seq);
    let _ = child.kill();
    let _ = child.wait();
}
