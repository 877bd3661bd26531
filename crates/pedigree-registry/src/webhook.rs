//! Signed webhook delivery.
//!
//! Every delivery is an HTTP `POST` of a JSON body with three headers:
//!
//! * [`SIGNATURE_HEADER`] `X-Pedigree-Signature: t=<unix seconds>,v1=<hex>` where `<hex>` is
//!   `HMAC-SHA256(secret, "<t>.<body>")` in lowercase hex. Receivers recompute it over the raw
//!   body bytes, compare in constant time and reject a `t` outside their tolerance (five minutes
//!   is usual), which stops a captured request from being replayed later. Several `v1=` values
//!   may appear (for instance while a secret is rotated); one match suffices.
//! * [`EVENT_HEADER`] `X-Pedigree-Event`: the event name (`advisory.flag`, ...).
//! * [`DELIVERY_HEADER`] `X-Pedigree-Delivery`: a unique id per delivery, the same on every
//!   retry of it, so receivers can drop duplicates.
//!
//! A delivery succeeds on any 2xx answer within 10 s ([`TIMEOUT`]); anything else is retried by
//! the outbox after [`backoff`] until [`MAX_ATTEMPTS`] attempts have been made.

use std::time::Duration;

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// `t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`.
pub const SIGNATURE_HEADER: &str = "X-Pedigree-Signature";
/// The event name.
pub const EVENT_HEADER: &str = "X-Pedigree-Event";
/// The delivery id, stable across retries.
pub const DELIVERY_HEADER: &str = "X-Pedigree-Delivery";
/// How long one attempt may take, connection included.
pub const TIMEOUT: Duration = Duration::from_secs(10);
/// Attempts in all (the first one included) before a delivery is given up. With [`backoff`] the
/// last attempt happens about 6.4 hours after the first.
pub const MAX_ATTEMPTS: u32 = 15;
/// Tolerance receivers should allow between `t` and their clock, in seconds.
pub const DEFAULT_TOLERANCE_S: i64 = 300;

const BACKOFF_BASE_S: u64 = 10;
const BACKOFF_CAP_S: u64 = 3600;

type HmacSha256 = Hmac<Sha256>;

/// Why a signature was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WebhookError {
    /// The header is not `t=<digits>,v1=<hex>[,v1=<hex>...]`.
    #[error("malformed signature header: {0}")]
    Malformed(String),
    /// `t` is further than the tolerance from now: stale (a replay) or from the future.
    #[error(
        "signature timestamp {timestamp} is outside the tolerance of {tolerance_s} s around {now}"
    )]
    Stale {
        timestamp: i64,
        now: i64,
        tolerance_s: i64,
    },
    /// No `v1` value matches the body under this secret.
    #[error("signature does not match the body")]
    Mismatch,
}

fn mac(secret: &[u8], timestamp: i64, body: &[u8]) -> HmacSha256 {
    let mut m = HmacSha256::new_from_slice(secret).expect("HMAC takes keys of any length");
    m.update(timestamp.to_string().as_bytes());
    m.update(b".");
    m.update(body);
    m
}

/// The [`SIGNATURE_HEADER`] value for `body` sent at `timestamp` (Unix seconds).
pub fn sign(secret: &[u8], timestamp: i64, body: &[u8]) -> String {
    let tag = mac(secret, timestamp, body).finalize().into_bytes();
    format!("t={timestamp},v1={}", hex::encode(tag))
}

/// Check a [`SIGNATURE_HEADER`] value against the raw `body`: the timestamp must be within
/// `tolerance_s` seconds of `now` (either side) and one of the `v1` values must be the HMAC,
/// compared in constant time. Unknown `key=value` parts are ignored (room for a future `v2`).
pub fn verify(
    secret: &[u8],
    header: &str,
    body: &[u8],
    now: i64,
    tolerance_s: i64,
) -> Result<(), WebhookError> {
    if header.len() > 4096 {
        return Err(WebhookError::Malformed("header too long".into()));
    }
    let mut timestamp: Option<i64> = None;
    let mut sigs: Vec<Vec<u8>> = Vec::new();
    for part in header.split(',') {
        let (k, v) = part.trim().split_once('=').ok_or_else(|| {
            WebhookError::Malformed(format!("`{}` is not key=value", part.trim()))
        })?;
        match k {
            "t" => {
                if timestamp.is_some() {
                    return Err(WebhookError::Malformed("two timestamps".into()));
                }
                if v.is_empty() || v.len() > 18 || !v.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(WebhookError::Malformed(format!(
                        "timestamp `{v}` is not a number of seconds"
                    )));
                }
                timestamp = Some(
                    v.parse()
                        .map_err(|_| WebhookError::Malformed("timestamp".into()))?,
                );
            }
            "v1" => match hex::decode(v) {
                Ok(bytes) if bytes.len() == 32 => sigs.push(bytes),
                _ => return Err(WebhookError::Malformed("v1 is not 64 hex digits".into())),
            },
            _ => {}
        }
    }
    let t = timestamp.ok_or_else(|| WebhookError::Malformed("no t= timestamp".into()))?;
    if sigs.is_empty() {
        return Err(WebhookError::Malformed("no v1= signature".into()));
    }
    if (now - t).abs() > tolerance_s.max(0) {
        return Err(WebhookError::Stale {
            timestamp: t,
            now,
            tolerance_s,
        });
    }
    let expected = mac(secret, t, body);
    if sigs
        .iter()
        .any(|s| expected.clone().verify_slice(s).is_ok())
    {
        Ok(())
    } else {
        Err(WebhookError::Mismatch)
    }
}

/// How long to wait after the `attempt`-th failed attempt (1-based) before the next one:
/// 10 s doubling each time, capped at one hour, no jitter —
/// 10 s, 20 s, 40 s, 80 s, 160 s, 320 s, 640 s, 1280 s, 2560 s, then 3600 s.
/// `backoff(0)` is zero (the first attempt is immediate).
pub fn backoff(attempt: u32) -> Duration {
    if attempt == 0 {
        return Duration::ZERO;
    }
    let shift = (attempt - 1).min(20);
    Duration::from_secs((BACKOFF_BASE_S << shift).min(BACKOFF_CAP_S))
}

/// A client suited to webhook delivery: no redirects (a redirect would turn the POST into a GET
/// and could point anywhere), the [`TIMEOUT`], a `pedigree-webhook` user agent.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(TIMEOUT)
        .user_agent(concat!("pedigree-webhook/", env!("CARGO_PKG_VERSION")))
        .build()
        .unwrap_or_else(|_| reqwest::Client::new())
}

/// POST `body` to `url`, signed with `secret` at `now` (Unix seconds), with the event and
/// delivery id headers. `Ok(status)` on a 2xx answer; otherwise `Err` with a short reason
/// (`"HTTP 500"`, `"timed out"`, `"connection failed: ..."`) for the outbox to record. One
/// attempt, at most [`TIMEOUT`]; retrying is the caller's job.
pub async fn deliver(
    client: &reqwest::Client,
    url: &str,
    secret: &[u8],
    event: &str,
    delivery_id: &str,
    body: &[u8],
    now: i64,
) -> Result<u16, String> {
    let resp = client
        .post(url)
        .timeout(TIMEOUT)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .header(SIGNATURE_HEADER, sign(secret, now, body))
        .header(EVENT_HEADER, event)
        .header(DELIVERY_HEADER, delivery_id)
        .body(body.to_vec())
        .send()
        .await
        .map_err(|e| short_reason(&e))?;
    let status = resp.status();
    if status.is_success() {
        Ok(status.as_u16())
    } else {
        Err(format!("HTTP {}", status.as_u16()))
    }
}

fn short_reason(e: &reqwest::Error) -> String {
    let mut msg = if e.is_timeout() {
        "timed out".to_string()
    } else if e.is_connect() {
        "connection failed".to_string()
    } else if e.is_builder() {
        "bad request (url or header)".to_string()
    } else {
        "request failed".to_string()
    };
    // The innermost cause is the informative part ("Connection refused", "invalid URL").
    let mut src: Option<&dyn std::error::Error> = std::error::Error::source(e);
    let mut last = None;
    while let Some(s) = src {
        last = Some(s.to_string());
        src = s.source();
    }
    if let Some(l) = last {
        msg.push_str(": ");
        msg.extend(l.chars().take(160));
    }
    msg
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    const SECRET: &[u8] = b"whsec_test";

    #[test]
    fn sign_then_verify_and_every_tamper_is_refused() {
        let body = br#"{"event":"advisory.flag","data":{"id":"ADV-1"}}"#;
        let h = sign(SECRET, 1_700_000_000, body);
        assert!(h.starts_with("t=1700000000,v1="), "{h}");
        assert_eq!(h.len(), "t=1700000000,v1=".len() + 64);
        assert_eq!(verify(SECRET, &h, body, 1_700_000_000, 300), Ok(()));
        assert_eq!(verify(SECRET, &h, body, 1_700_000_299, 300), Ok(()));
        // Tampered body, wrong secret.
        let mut other = body.to_vec();
        other[5] ^= 1;
        assert_eq!(
            verify(SECRET, &h, &other, 1_700_000_000, 300),
            Err(WebhookError::Mismatch)
        );
        assert_eq!(
            verify(b"whsec_other", &h, body, 1_700_000_000, 300),
            Err(WebhookError::Mismatch)
        );
        // Stale (replayed) and from the future.
        assert!(matches!(
            verify(SECRET, &h, body, 1_700_000_301, 300),
            Err(WebhookError::Stale { .. })
        ));
        assert!(matches!(
            verify(SECRET, &h, body, 1_699_999_000, 300),
            Err(WebhookError::Stale { .. })
        ));
        // Moving the timestamp forward invalidates the signature.
        let moved = h.replace("t=1700000000", "t=1700000100");
        assert_eq!(
            verify(SECRET, &moved, body, 1_700_000_100, 300),
            Err(WebhookError::Mismatch)
        );
        // Rotation: a second v1 that matches is enough; extra unknown parts are ignored.
        let rotated = format!(
            "t=1700000000,v1={},{},v2=zz",
            "0".repeat(64),
            &h["t=1700000000,".len()..]
        );
        assert_eq!(verify(SECRET, &rotated, body, 1_700_000_000, 300), Ok(()));
    }

    #[test]
    fn malformed_headers_are_refused() {
        let body = b"{}";
        for h in [
            "",
            "t=1",
            "v1=00",
            "t=abc,v1=00",
            "t=1,v1=zz",
            "t=1,t=1,v1=00",
            "nonsense",
            "t=-5,v1=00",
        ] {
            assert!(
                matches!(
                    verify(SECRET, h, body, 1, 300),
                    Err(WebhookError::Malformed(_))
                ),
                "{h:?}"
            );
        }
    }

    #[test]
    fn backoff_schedule_doubles_and_caps() {
        assert_eq!(backoff(0), Duration::ZERO);
        assert_eq!(backoff(1), Duration::from_secs(10));
        assert_eq!(backoff(2), Duration::from_secs(20));
        assert_eq!(backoff(9), Duration::from_secs(2560));
        assert_eq!(backoff(10), Duration::from_secs(3600));
        assert_eq!(backoff(u32::MAX), Duration::from_secs(3600));
        let total: u64 = (1..MAX_ATTEMPTS).map(|a| backoff(a).as_secs()).sum();
        assert_eq!(
            total,
            10 + 20 + 40 + 80 + 160 + 320 + 640 + 1280 + 2560 + 5 * 3600
        );
        assert!(
            (6 * 3600..7 * 3600).contains(&total),
            "documented as about 6.4 h: {total}"
        );
    }

    /// What the test listener saw.
    #[derive(Default, Debug)]
    struct Seen {
        verified: Vec<Result<(), WebhookError>>,
        event: Option<String>,
        delivery: Option<String>,
    }

    /// A minimal HTTP/1.1 server: reads one request per connection, checks its signature with
    /// [`verify`] and answers `status` (or 401 when the signature is wrong and `status` is 2xx).
    async fn serve(status: u16, seen: Arc<Mutex<Seen>>) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            loop {
                let Ok((mut sock, _)) = listener.accept().await else {
                    return;
                };
                let seen = seen.clone();
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 4096];
                    let head_end = loop {
                        let n = sock.read(&mut chunk).await.unwrap_or(0);
                        if n == 0 {
                            return;
                        }
                        buf.extend_from_slice(&chunk[..n]);
                        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                            break i + 4;
                        }
                    };
                    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
                    let header = |name: &str| {
                        head.lines().find_map(|l| {
                            let (k, v) = l.split_once(':')?;
                            k.trim()
                                .eq_ignore_ascii_case(name)
                                .then(|| v.trim().to_string())
                        })
                    };
                    let len: usize = header("content-length")
                        .and_then(|v| v.parse().ok())
                        .unwrap_or(0);
                    while buf.len() < head_end + len {
                        let n = sock.read(&mut chunk).await.unwrap_or(0);
                        if n == 0 {
                            break;
                        }
                        buf.extend_from_slice(&chunk[..n]);
                    }
                    let body = &buf[head_end..(head_end + len).min(buf.len())];
                    let sig = header(SIGNATURE_HEADER).unwrap_or_default();
                    let now = std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .unwrap()
                        .as_secs() as i64;
                    let ok = verify(SECRET, &sig, body, now, DEFAULT_TOLERANCE_S);
                    let code = if ok.is_err() && (200..300).contains(&status) {
                        401
                    } else {
                        status
                    };
                    {
                        let mut s = seen.lock().unwrap();
                        s.verified.push(ok);
                        s.event = header(EVENT_HEADER);
                        s.delivery = header(DELIVERY_HEADER);
                    }
                    let resp = format!(
                        "HTTP/1.1 {code} X\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                    );
                    let _ = sock.write_all(resp.as_bytes()).await;
                    let _ = sock.shutdown().await;
                });
            }
        });
        format!("http://{addr}/hook")
    }

    fn now() -> i64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64
    }

    #[tokio::test]
    async fn deliver_is_signed_and_checked_by_a_real_listener() {
        let seen = Arc::new(Mutex::new(Seen::default()));
        let url = serve(204, seen.clone()).await;
        let body = br#"{"event":"advisory.flag","data":{"flagged":[1,2]}}"#;
        let r = deliver(
            &client(),
            &url,
            SECRET,
            "advisory.flag",
            "d-42",
            body,
            now(),
        )
        .await;
        assert_eq!(r, Ok(204));
        {
            let s = seen.lock().unwrap();
            assert_eq!(s.verified, vec![Ok(())]);
            assert_eq!(s.event.as_deref(), Some("advisory.flag"));
            assert_eq!(s.delivery.as_deref(), Some("d-42"));
        }
        // Signed with another secret: the listener refuses, deliver reports it.
        let r = deliver(
            &client(),
            &url,
            b"wrong",
            "advisory.flag",
            "d-43",
            body,
            now(),
        )
        .await;
        assert_eq!(r, Err("HTTP 401".to_string()));
        // Signed with an old timestamp: refused as stale.
        let r = deliver(
            &client(),
            &url,
            SECRET,
            "advisory.flag",
            "d-44",
            body,
            now() - 3600,
        )
        .await;
        assert_eq!(r, Err("HTTP 401".to_string()));
        let s = seen.lock().unwrap();
        assert_eq!(s.verified[1], Err(WebhookError::Mismatch));
        assert!(matches!(s.verified[2], Err(WebhookError::Stale { .. })));
    }

    #[tokio::test]
    async fn a_500_answer_and_a_dead_endpoint_are_errors() {
        let seen = Arc::new(Mutex::new(Seen::default()));
        let url = serve(500, seen.clone()).await;
        let r = deliver(
            &reqwest::Client::new(),
            &url,
            SECRET,
            "advisory.flag",
            "d-1",
            b"{}",
            now(),
        )
        .await;
        assert_eq!(r, Err("HTTP 500".to_string()));
        assert_eq!(
            seen.lock().unwrap().verified,
            vec![Ok(())],
            "the request itself was well signed"
        );
        // Nothing listens on this port any more.
        let dead = {
            let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
            l.local_addr().unwrap()
        };
        let r = deliver(
            &client(),
            &format!("http://{dead}/"),
            SECRET,
            "e",
            "d",
            b"{}",
            now(),
        )
        .await;
        let e = r.unwrap_err();
        assert!(e.starts_with("connection failed"), "{e}");
        // A header value that cannot be sent.
        let r = deliver(&client(), &url, SECRET, "bad\nevent", "d", b"{}", now()).await;
        assert!(r.is_err());
    }
}
