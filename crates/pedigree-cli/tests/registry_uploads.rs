//! Resumable uploads over stateless API processes, every part real: two `pedigree serve`
//! processes sharing one metadata store and one blob store, (a) PostgreSQL + an S3-compatible
//! bucket (moto's server), (b) one SQLite file + one local blob directory.
//!
//! One upload's chunks alternate between the processes; a chunk is retried (its answer "lost")
//! and accepted again without being stored twice; a chunk at a wrong offset is refused with the
//! offset the upload expects; a chunk is cut off mid-body by SIGKILL of the process receiving
//! it, and the upload carries on through the other process and completes there. The blob is then
//! pushed as a model's weights, approved, and pulled back byte-identical through a restarted
//! first process. Nothing of the upload is left behind (no staging file, no S3 multipart upload).
//! A second test lets an upload go idle past its TTL and checks both stores drop it.
//!
//! Needs PostgreSQL and moto (`bash scripts/setup.sh`); fails, never skips, without them.

use std::io::Write;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use pedigree_registry::client::{Client, ModelRef};
use pedigree_registry::store::testdb::{Engine, TestDb};
use sha2::{Digest, Sha256};

mod support;
use support::{Moto, Proc, raw_http};

const TIMEOUT: Duration = Duration::from_secs(240);
/// S3's smallest part but the last: the chunk size of these uploads.
const CHUNK: usize = 5 << 20;

#[derive(Clone, Copy, Debug, PartialEq)]
enum Backing {
    PostgresS3,
    SqliteLocal,
}

/// The shared stores and how to start an API process on them.
struct Cluster {
    _db: Option<TestDb>,
    moto: Option<Moto>,
    bucket: &'static str,
    tmp: tempfile::TempDir,
    args: Vec<String>,
    env: Vec<(String, String)>,
}

impl Cluster {
    fn new(backing: Backing, env: &[(&str, &str)]) -> Cluster {
        let tmp = tempfile::tempdir().unwrap();
        let bucket = "uploads";
        let (db, moto, args) = match backing {
            Backing::PostgresS3 => {
                let db = TestDb::new(Engine::Postgres);
                let moto = Moto::start();
                let (st, body) = raw_http(moto.addr, "PUT", &format!("/{bucket}"), &[]).unwrap();
                assert_eq!(
                    st,
                    200,
                    "creating the bucket: {}",
                    String::from_utf8_lossy(&body)
                );
                let args = vec![
                    "--database-url".to_string(),
                    db.url().to_string(),
                    "--blob-store".to_string(),
                    format!(
                        "s3://{bucket}/blobs?endpoint=http://{}&allow_http=true",
                        moto.addr
                    ),
                ];
                (Some(db), Some(moto), args)
            }
            Backing::SqliteLocal => {
                let shared = tmp.path().join("shared");
                std::fs::create_dir_all(&shared).unwrap();
                let args = vec![
                    "--database-url".to_string(),
                    format!("sqlite://{}", shared.join("registry.db").display()),
                    "--blob-store".to_string(),
                    shared.join("blobs").display().to_string(),
                ];
                (None, None, args)
            }
        };
        Cluster {
            _db: db,
            moto,
            bucket,
            tmp,
            args,
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    /// `pedigree serve` on the shared stores with its own scratch directory; the process, its
    /// URL and (from the first process only) the admin token.
    fn serve(&self, name: &str, workers: usize) -> (Proc, String, Option<String>) {
        let data = self.tmp.path().join(name);
        let mut args = vec![
            "serve".to_string(),
            "--data-dir".to_string(),
            data.display().to_string(),
            "--listen".to_string(),
            "127.0.0.1:0".to_string(),
            "--workers".to_string(),
            workers.to_string(),
        ];
        args.extend(self.args.iter().cloned());
        let env: Vec<(&str, &str)> = self
            .env
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let log = self.tmp.path().join(format!("{name}-{}.log", now_nanos()));
        let p = Proc::spawn(&args, &env, log);
        let mut admin = None;
        let mut url = None;
        let deadline = Instant::now() + Duration::from_secs(60);
        while url.is_none() {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = p
                .lines
                .recv_timeout(left)
                .unwrap_or_else(|_| panic!("{name} did not start:\n{}", p.log_text()));
            if let Some(t) = line.split("stored only as a hash): ").nth(1) {
                admin = Some(t.trim().to_string());
            }
            if let Some(u) = line.split("listening on ").nth(1) {
                url = Some(u.trim().to_string());
            }
        }
        (p, url.unwrap(), admin)
    }

    /// Where a local blob store keeps uploads in progress.
    fn staging_dir(&self) -> PathBuf {
        self.tmp.path().join("shared/blobs/uploads")
    }

    /// Multipart uploads the bucket holds (not yet completed or aborted).
    fn open_multipart_uploads(&self) -> usize {
        let moto = self.moto.as_ref().unwrap();
        let (st, body) =
            raw_http(moto.addr, "GET", &format!("/{}?uploads", self.bucket), &[]).unwrap();
        let body = String::from_utf8_lossy(&body);
        assert_eq!(st, 200, "listing multipart uploads: {body}");
        body.matches("<UploadId>").count()
    }

    /// What of unfinished uploads the blob store holds.
    fn leftovers(&self, backing: Backing) -> usize {
        match backing {
            Backing::PostgresS3 => self.open_multipart_uploads(),
            Backing::SqliteLocal => std::fs::read_dir(self.staging_dir())
                .map(|d| d.count())
                .unwrap_or(0),
        }
    }
}

fn now_nanos() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

/// A model whose weights are `weights` bytes of a safetensors file (one f32 tensor).
fn write_model(dir: &Path, floats: usize) -> Vec<u8> {
    let w = support::xorshift_floats(0x9E37_79B9_7F4A_7C15, floats);
    support::write_model(
        dir,
        &[("w.weight", vec![floats / 1024, 1024], w)],
        "---\nlicense: apache-2.0\ndatasets:\n- acme/transactions-2024\n---\n# big\n\nA model uploaded in chunks.\n",
        Some(r#"{"model_type": "toy"}"#),
    )
}

/// Send a chunk's headers and only `sent` of its `declared` bytes, then leave the connection
/// open: the server is in the middle of receiving it.
fn start_partial_chunk(
    url: &str,
    token: &str,
    id: &str,
    offset: u64,
    declared: usize,
    body: &[u8],
) -> TcpStream {
    let addr = url.trim_start_matches("http://").trim_end_matches('/');
    let mut s = TcpStream::connect(addr).unwrap();
    write!(
        s,
        "PATCH /v1/uploads/{id} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\n\
         Upload-Offset: {offset}\r\nContent-Type: application/octet-stream\r\n\
         Content-Length: {declared}\r\n\r\n"
    )
    .unwrap();
    s.write_all(body).unwrap();
    s.flush().unwrap();
    s
}

fn alternate_retry_kill_and_complete(backing: Backing) {
    let cl = Cluster::new(backing, &[]);
    let (mut a, url_a, admin) = cl.serve("api-a", 0);
    let admin = admin.expect("the first process prints the admin token");
    let (b, url_b, _) = cl.serve("api-b", 1);
    let ca = Client::new(&url_a, Some(admin.clone())).unwrap();
    let cb = Client::new(&url_b, Some(admin.clone())).unwrap();

    let dir = cl.tmp.path().join("model");
    // Two 5 MiB chunks and a 10 MiB third (plus the header): the third is larger than a local
    // store's write buffer, so the killed process below really leaves bytes on disk.
    let bytes = write_model(&dir, (2 * CHUNK + (10 << 20)) / 4);
    let digest = format!("sha256:{}", hex::encode(Sha256::digest(&bytes)));
    let size = bytes.len() as u64;
    let c0 = &bytes[..CHUNK];
    let c1 = &bytes[CHUNK..2 * CHUNK];
    let c2 = &bytes[2 * CHUNK..];

    let id = ca.start_upload_for(&digest, size).unwrap();
    // Chunk 0 through A, chunk 1 through B.
    assert_eq!(ca.upload_chunk(&id, 0, c0.to_vec()).unwrap(), CHUNK as u64);
    assert_eq!(
        cb.upload_offset(&id).unwrap(),
        CHUNK as u64,
        "B sees A's chunk"
    );
    assert_eq!(
        cb.upload_chunk(&id, CHUNK as u64, c1.to_vec()).unwrap(),
        2 * CHUNK as u64
    );
    // Chunk 1 again through A, as after a lost answer: accepted, stored once.
    assert_eq!(
        ca.upload_chunk(&id, CHUNK as u64, c1.to_vec()).unwrap(),
        2 * CHUNK as u64
    );
    assert_eq!(ca.upload_offset(&id).unwrap(), 2 * CHUNK as u64);
    // The same offset with other bytes is no retry: refused, naming the expected offset.
    let mut other = c1.to_vec();
    other[7] ^= 1;
    let e = ca.upload_chunk(&id, CHUNK as u64, other).unwrap_err();
    assert_eq!(
        (e.status(), e.code()),
        (Some(409), Some("offset_mismatch")),
        "{e}"
    );
    assert_eq!(
        e.details().and_then(|d| d["offset"].as_u64()),
        Some(2 * CHUNK as u64)
    );
    // A chunk at a wrong offset through B: refused, naming the expected offset.
    let e = cb
        .upload_chunk(&id, 3 * CHUNK as u64, c2.to_vec())
        .unwrap_err();
    assert_eq!(
        (e.status(), e.code()),
        (Some(409), Some("offset_mismatch")),
        "{e}"
    );
    assert!(
        e.to_string()
            .contains(&format!("expects offset {}", 2 * CHUNK)),
        "{e}"
    );
    assert_eq!(
        e.details().and_then(|d| d["offset"].as_u64()),
        Some(2 * CHUNK as u64)
    );
    assert_eq!(cb.upload_offset(&id).unwrap(), 2 * CHUNK as u64);

    // Chunk 2 is cut off: A receives 90% of it and is killed.
    let part = c2.len() * 9 / 10;
    let conn = start_partial_chunk(&url_a, &admin, &id, 2 * CHUNK as u64, c2.len(), &c2[..part]);
    let staged = cl.staging_dir().join(&id);
    if backing == Backing::SqliteLocal {
        // Wait until A has written some of it past the acknowledged offset.
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::fs::metadata(&staged).unwrap().len() <= 2 * CHUNK as u64 {
            assert!(Instant::now() < deadline, "A never wrote the partial chunk");
            std::thread::sleep(Duration::from_millis(50));
        }
    } else {
        std::thread::sleep(Duration::from_millis(500));
    }
    a.child.kill().unwrap(); // SIGKILL
    a.child.wait().unwrap();
    drop(conn);
    // Nothing acknowledged is lost, nothing unacknowledged counts.
    assert_eq!(cb.upload_offset(&id).unwrap(), 2 * CHUNK as u64);
    // Completing early fails on the digest and keeps the upload.
    let e = cb.finish_upload(&id, &digest).unwrap_err();
    assert!(
        e.to_string().contains("upload") && e.status() == Some(400),
        "{e}"
    );
    assert_eq!(
        cb.blob_size(&digest).unwrap(),
        None,
        "nothing visible before completion"
    );
    assert_eq!(
        cb.upload_chunk(&id, 2 * CHUNK as u64, c2.to_vec()).unwrap(),
        size
    );
    assert_eq!(
        cb.blob_size(&digest).unwrap(),
        None,
        "nothing visible before completion"
    );
    assert_eq!(cb.finish_upload(&id, &digest).unwrap(), size);
    assert_eq!(cb.blob_size(&digest).unwrap(), Some(size));
    assert_eq!(
        cl.leftovers(backing),
        0,
        "the finished upload left bytes behind"
    );
    let e = cb.upload_offset(&id).unwrap_err();
    assert_eq!(e.status(), Some(404), "{e}");

    // Push (the weights are already there), decide, pull through a restarted A.
    let m = ModelRef::parse("acme/big:1.0").unwrap();
    let r = cb.push(&dir, &m).unwrap();
    assert_eq!(r.skipped, 1, "the weights were uploaded already: {r:?}");
    let s = cb.wait_decided(&m, TIMEOUT).unwrap();
    assert_eq!(s.state, "approved", "{s:?}");
    let (_a2, url_a2, _) = cl.serve("api-a", 0);
    let out = cl.tmp.path().join("pulled");
    Client::new(&url_a2, Some(admin.clone()))
        .unwrap()
        .pull(&m, &out)
        .unwrap();
    let got = std::fs::read(out.join("model.safetensors")).unwrap();
    assert!(got == bytes, "pulled weights differ from those uploaded");
    drop(b);
}

#[test]
fn stateless_uploads_postgres_s3() {
    alternate_retry_kill_and_complete(Backing::PostgresS3);
}

#[test]
fn stateless_uploads_sqlite_shared_blob_dir() {
    alternate_retry_kill_and_complete(Backing::SqliteLocal);
}

/// An upload idle past `upload_ttl_seconds` is deleted, its bytes with it (S3: the multipart
/// upload aborted; local: the staging file removed), by whichever process's timer gets it.
fn idle_upload_expires(backing: Backing) {
    let cl = Cluster::new(backing, &[("PEDIGREE_UPLOAD_TTL_SECONDS", "2")]);
    let (_a, url, admin) = cl.serve("api-a", 0);
    let (_b, _, _) = cl.serve("api-b", 0);
    let c = Client::new(&url, admin).unwrap();
    let chunk = vec![7u8; CHUNK];
    let digest = format!("sha256:{}", hex::encode(Sha256::digest(&chunk)));
    let id = c.start_upload_for(&digest, 2 * CHUNK as u64).unwrap();
    c.upload_chunk(&id, 0, chunk).unwrap();
    assert_eq!(cl.leftovers(backing), 1);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match c.upload_offset(&id) {
            Err(e) if e.status() == Some(404) => break,
            Ok(_) => {}
            Err(e) => panic!("{e}"),
        }
        assert!(Instant::now() < deadline, "upload {id} never expired");
        std::thread::sleep(Duration::from_millis(200));
    }
    // The bytes go right after the record.
    let deadline = Instant::now() + Duration::from_secs(10);
    while cl.leftovers(backing) != 0 {
        assert!(
            Instant::now() < deadline,
            "the expired upload's bytes remain"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn idle_upload_expires_postgres_s3() {
    idle_upload_expires(Backing::PostgresS3);
}

#[test]
fn idle_upload_expires_sqlite_shared_blob_dir() {
    idle_upload_expires(Backing::SqliteLocal);
}
