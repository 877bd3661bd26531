//! Arbitrary bytes into the OMS bundle parser, statement parser and
//! key-mode verifier: must never panic, whatever the input.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

fn key() -> &'static pedigree_sign::PrivateKey {
    static KEY: OnceLock<pedigree_sign::PrivateKey> = OnceLock::new();
    // A fixed test key (scalar 1..=32) so runs are reproducible.
    KEY.get_or_init(|| {
        let bytes: Vec<u8> = (1..=32).collect();
        let sk = p256_scalar_pem(&bytes);
        pedigree_sign::PrivateKey::from_pem(&sk).expect("fixed key parses")
    })
}

fn p256_scalar_pem(scalar: &[u8]) -> String {
    // SEC1 ECPrivateKey DER: SEQUENCE { INTEGER 1, OCTET STRING scalar, [0] OID prime256v1 }
    let mut der = vec![0x30, 0x31, 0x02, 0x01, 0x01, 0x04, 0x20];
    der.extend_from_slice(scalar);
    der.extend_from_slice(&[
        0xa0, 0x0a, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07,
    ]);
    use std::fmt::Write;
    let b64 = base64_encode(&der);
    let mut s = String::from("-----BEGIN EC PRIVATE KEY-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        let _ = writeln!(s, "{}", std::str::from_utf8(chunk).unwrap_or(""));
    }
    s.push_str("-----END EC PRIVATE KEY-----\n");
    s
}

fn base64_encode(data: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for c in data.chunks(3) {
        let n = (c[0] as u32) << 16
            | (*c.get(1).unwrap_or(&0) as u32) << 8
            | *c.get(2).unwrap_or(&0) as u32;
        for i in 0..4 {
            if i <= c.len() {
                out.push(T[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

fuzz_target!(|data: &[u8]| {
    if let Ok(b) = pedigree_sign::Bundle::parse(data) {
        let _ = b.statement();
        let trust = pedigree_sign::TrustStore {
            keys: vec![key().public_key()],
            ..Default::default()
        };
        let _ = pedigree_sign::verify_bundle(&b, &trust);
    }
    // Also treat the input as a statement payload directly.
    let _ = pedigree_sign::bundle::parse_statement(pedigree_sign::bundle::PAYLOAD_TYPE, data);
});
