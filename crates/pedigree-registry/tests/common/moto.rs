//! moto's standalone S3-compatible server for the S3 tests of both the registry crate and the CLI
//! (included with `#[path]` by `tests/s3.rs` and `pedigree-cli/tests/support/mod.rs`, so there
//! is one launcher). Installed into `<repo>/.venv` by `scripts/setup-s3.sh`, which
//! `bash scripts/setup.sh` runs; a missing server fails the test, naming that script.
//!
//! By default moto checks no signatures at all, so a broken signing path would pass against it.
//! [`Moto::require_signatures`] switches on its IAM mode: from then on every request must carry
//! a SigV4 signature by credentials moto itself issued (made with [`Moto::create_user`] and
//! [`Moto::assume_role`] before the switch, while it still takes anything), and a wrong secret is
//! answered `403 SignatureDoesNotMatch`.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub fn moto_binary() -> PathBuf {
    // Both crates sit at crates/<name>, so the repository root is two levels up.
    let bin = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.venv/bin/moto_server");
    assert!(
        bin.exists(),
        "{} is missing: the S3 tests need moto's S3 server; run `bash scripts/setup.sh` \
         (it runs scripts/setup-s3.sh)",
        bin.display()
    );
    bin
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Credentials moto issued.
#[derive(Clone, Debug)]
pub struct Creds {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: Option<String>,
}

/// A running moto server on a free port; killed when dropped.
pub struct Moto {
    child: Child,
    pub addr: SocketAddr,
    log: PathBuf,
    _tmp: tempfile::TempDir,
}

impl Moto {
    pub fn start() -> Moto {
        let bin = moto_binary();
        let tmp = tempfile::tempdir().unwrap();
        let log = tmp.path().join("moto.log");
        let port = free_port();
        let child = Command::new(&bin)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .current_dir(tmp.path())
            // moto reads this at startup; unset (unlimited) until require_signatures.
            .env_remove("INITIAL_NO_AUTH_ACTION_COUNT")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", bin.display()));
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let mut m = Moto {
            child,
            addr,
            log,
            _tmp: tmp,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok((status, _, _)) = raw_http(addr, "GET", "/", &[])
                && status > 0
            {
                break;
            }
            if let Ok(Some(st)) = m.child.try_wait() {
                panic!("moto_server exited ({st}): {}", m.log_text());
            }
            assert!(
                Instant::now() < deadline,
                "moto_server did not answer within 60 s: {}",
                m.log_text()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        m
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Before [`Moto::require_signatures`] only.
    pub fn create_bucket(&self, bucket: &str) {
        let (status, head, body) = raw_http(self.addr, "PUT", &format!("/{bucket}"), &[]).unwrap();
        assert_eq!(
            status,
            200,
            "creating bucket {bucket}: {head}\n{}",
            String::from_utf8_lossy(&body)
        );
    }

    /// One query-API call (IAM, STS) with a dummy signature; the response body.
    fn query(&self, service: &str, params: &[(&str, &str)]) -> String {
        let body: String = params
            .iter()
            .map(|(k, v)| format!("{k}={}", form_encode(v)))
            .collect::<Vec<_>>()
            .join("&");
        let (status, head, resp) = request(
            self.addr,
            "POST",
            "/",
            "application/x-www-form-urlencoded",
            service,
            body.as_bytes(),
        )
        .unwrap();
        let resp = String::from_utf8_lossy(&resp).to_string();
        assert_eq!(status, 200, "{service} {params:?}: {head}\n{resp}");
        resp
    }

    /// An IAM user allowed every S3 action, and an access key for it. Before
    /// [`Moto::require_signatures`] only.
    pub fn create_user(&self, name: &str) -> Creds {
        let v = ("Version", "2010-05-08");
        self.query("iam", &[("Action", "CreateUser"), ("UserName", name), v]);
        self.query(
            "iam",
            &[
                ("Action", "PutUserPolicy"),
                ("UserName", name),
                ("PolicyName", "s3-all"),
                ("PolicyDocument", S3_ALL),
                v,
            ],
        );
        let r = self.query(
            "iam",
            &[("Action", "CreateAccessKey"), ("UserName", name), v],
        );
        Creds {
            access_key_id: xml_text(&r, "AccessKeyId"),
            secret_access_key: xml_text(&r, "SecretAccessKey"),
            session_token: None,
        }
    }

    /// Temporary credentials with a session token: a role allowed every S3 action, assumed
    /// through STS. Before [`Moto::require_signatures`] only.
    pub fn assume_role(&self, role: &str) -> Creds {
        let v = ("Version", "2010-05-08");
        let r = self.query(
            "iam",
            &[
                ("Action", "CreateRole"),
                ("RoleName", role),
                ("AssumeRolePolicyDocument", TRUST_ANYONE),
                v,
            ],
        );
        let arn = xml_text(&r, "Arn");
        self.query(
            "iam",
            &[
                ("Action", "PutRolePolicy"),
                ("RoleName", role),
                ("PolicyName", "s3-all"),
                ("PolicyDocument", S3_ALL),
                v,
            ],
        );
        let r = self.query(
            "sts",
            &[
                ("Action", "AssumeRole"),
                ("RoleArn", &arn),
                ("RoleSessionName", "pedigree-test"),
                ("Version", "2011-06-15"),
            ],
        );
        Creds {
            access_key_id: xml_text(&r, "AccessKeyId"),
            secret_access_key: xml_text(&r, "SecretAccessKey"),
            session_token: Some(xml_text(&r, "SessionToken")),
        }
    }

    /// From now on moto checks every request's signature against the credentials it issued
    /// (its IAM mode: `INITIAL_NO_AUTH_ACTION_COUNT` set to 0 at run time), and the unsigned
    /// [`raw_http`] helpers are refused.
    pub fn require_signatures(&self) {
        let (status, head, body) = request(
            self.addr,
            "POST",
            "/moto-api/reset-auth",
            "text/plain",
            "s3",
            b"0",
        )
        .unwrap();
        assert_eq!(
            status,
            200,
            "enabling moto's authentication: {head}\n{}",
            String::from_utf8_lossy(&body)
        );
        // Prove it: a request with a dummy signature is now refused.
        let (status, _, body) = raw_http(self.addr, "GET", "/", &[]).unwrap();
        assert_eq!(
            status,
            403,
            "moto still accepts unsigned requests: {}",
            String::from_utf8_lossy(&body)
        );
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

const S3_ALL: &str =
    r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:*","Resource":"*"}]}"#;
const TRUST_ANYONE: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"*"},"Action":"sts:AssumeRole"}]}"#;

/// The text of the first `<tag>…</tag>` in `xml`.
fn xml_text(xml: &str, tag: &str) -> String {
    let open = format!("<{tag}>");
    let start = xml
        .find(&open)
        .unwrap_or_else(|| panic!("no <{tag}> in {xml}"))
        + open.len();
    let end = start + xml[start..].find('<').unwrap();
    xml[start..end].to_string()
}

fn form_encode(v: &str) -> String {
    v.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// One HTTP/1.1 request with a well-formed but dummy SigV4 header for `service` (moto routes by
/// the credential scope's service; without auth it checks nothing else, and a request with no
/// Authorization at all is anonymous and may not read private objects): status, head, body.
fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    content_type: &str,
    service: &str,
    body: &[u8],
) -> std::io::Result<(u16, String, Vec<u8>)> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    s.set_read_timeout(Some(Duration::from_secs(30)))?;
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: {}\r\n\
         Content-Type: {content_type}\r\nAuthorization: AWS4-HMAC-SHA256 \
         Credential=testing/20260101/us-east-1/{service}/aws4_request, SignedHeaders=host, \
         Signature=00\r\nConnection: close\r\n\r\n",
        body.len()
    )?;
    s.write_all(body)?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf)?;
    let split = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| std::io::Error::other("no header end"))?;
    let head = String::from_utf8_lossy(&buf[..split]).to_string();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    Ok((status, head, buf[split + 4..].to_vec()))
}

/// One unsigned S3 request (fine while moto checks no signatures): status, head, body.
pub fn raw_http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: &[u8],
) -> std::io::Result<(u16, String, Vec<u8>)> {
    request(addr, method, path, "application/octet-stream", "s3", body)
}
