//! Shared by the registry's end-to-end tests: a real S3-compatible server (moto's standalone
//! server from `.venv`, installed by `bash scripts/setup.sh`) on a free port, and one raw HTTP
//! request to it.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub fn moto_binary() -> PathBuf {
    let bin = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.venv/bin/moto_server");
    assert!(
        bin.exists(),
        "{} is missing: the S3 tests need moto's S3 server; run `bash scripts/setup.sh` \
         (it runs scripts/setup-s3.sh)",
        bin.display()
    );
    bin
}

pub struct Moto {
    child: Child,
    pub addr: SocketAddr,
    _tmp: tempfile::TempDir,
}

impl Moto {
    pub fn start() -> Moto {
        let bin = moto_binary();
        let tmp = tempfile::tempdir().unwrap();
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let log = tmp.path().join("moto.log");
        let mut child = Command::new(&bin)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .current_dir(tmp.path())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", bin.display()));
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        while raw_http(addr, "GET", "/", &[]).is_err() {
            if let Ok(Some(st)) = child.try_wait() {
                panic!(
                    "moto_server exited ({st}): {}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                );
            }
            assert!(Instant::now() < deadline, "moto_server did not answer");
            std::thread::sleep(Duration::from_millis(100));
        }
        Moto {
            child,
            addr,
            _tmp: tmp,
        }
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// moto does not verify signatures, but it treats a request without any as anonymous (and
/// refuses reads of private objects): a well-formed header with a dummy signature will do.
const MOTO_AUTH: &str = "Authorization: AWS4-HMAC-SHA256 \
    Credential=testing/20260101/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=00";

/// One unsigned HTTP/1.1 request (moto does not check signatures): status and body.
pub fn raw_http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: &[u8],
) -> std::io::Result<(u16, Vec<u8>)> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    s.set_read_timeout(Some(Duration::from_secs(30)))?;
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: {}\r\n\
         Content-Type: application/octet-stream\r\n{MOTO_AUTH}\r\nConnection: close\r\n\r\n",
        body.len()
    )?;
    s.write_all(body)?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf)?;
    let split = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| std::io::Error::other("no header end"))?;
    let status = String::from_utf8_lossy(&buf[..split])
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    Ok((status, buf[split + 4..].to_vec()))
}
