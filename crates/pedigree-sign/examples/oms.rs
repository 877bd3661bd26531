//! Minimal driver used by `bench/sign/run.sh` when the `pedigree` binary
//! does not (yet) have the sign/verify subcommands wired in.
//!
//! oms sign   MODEL SIG PRIVATE.pem HASH METHOD SHARD_SIZE
//! oms verify MODEL SIG PUBLIC.pem

use std::path::PathBuf;
use std::process::ExitCode;

use pedigree_sign::manifest::{HashAlgorithm, Method, Serialization};
use pedigree_sign::{PrivateKey, PublicKey, SignOptions, Signer, TrustStore, VerifyOptions};

fn run() -> Result<(), String> {
    let a: Vec<String> = std::env::args().collect();
    let arg = |i: usize| {
        a.get(i)
            .cloned()
            .ok_or_else(|| format!("missing argument {i}"))
    };
    match arg(1)?.as_str() {
        "sign" => {
            let key =
                PrivateKey::from_pem(&std::fs::read_to_string(arg(4)?).map_err(|e| e.to_string())?)
                    .map_err(|e| e.to_string())?;
            let hash = HashAlgorithm::parse(&arg(5)?).map_err(|e| e.to_string())?;
            let method = match arg(6)?.as_str() {
                "shards" => Method::Shards {
                    shard_size: arg(7)?.parse().map_err(|_| "bad shard size")?,
                },
                _ => Method::Files,
            };
            let sig = PathBuf::from(arg(3)?);
            let opts = SignOptions {
                serialization: Serialization {
                    method,
                    hash,
                    ..Default::default()
                },
                signature_path: Some(sig.clone()),
                ..Default::default()
            };
            let (_, bytes) =
                pedigree_sign::sign_model(&PathBuf::from(arg(2)?), &Signer::Key(key), &opts)
                    .map_err(|e| e.to_string())?;
            std::fs::write(sig, bytes).map_err(|e| e.to_string())
        }
        "verify" => {
            let key =
                PublicKey::from_pem(&std::fs::read_to_string(arg(4)?).map_err(|e| e.to_string())?)
                    .map_err(|e| e.to_string())?;
            let sig = PathBuf::from(arg(3)?);
            let trust = TrustStore {
                keys: vec![key],
                ..Default::default()
            };
            let opts = VerifyOptions {
                signature_path: Some(sig.clone()),
                ..Default::default()
            };
            let bytes = std::fs::read(&sig).map_err(|e| e.to_string())?;
            pedigree_sign::verify_model(&PathBuf::from(arg(2)?), &bytes, &trust, &opts)
                .map(|_| ())
                .map_err(|e| e.to_string())
        }
        other => Err(format!("unknown command {other}")),
    }
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}
