//! `pedigree sign`, `pedigree verify`, `pedigree id`: CLI glue over the
//! `pedigree-sign` library (OpenSSF Model Signing v1.0 bundles).
//!
//! Exit codes for `verify`: 0 verified, 1 verification failed (the message
//! names the file or the problem), 2 could not run (bad key file, unreadable
//! model...).

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use pedigree_sign::bundle::Flavor;
use pedigree_sign::manifest::{DEFAULT_SHARD_SIZE, HashAlgorithm, Method, Serialization};
use pedigree_sign::{
    Cert, Error, PrivateKey, PublicKey, SignOptions, Signer, SigstoreTrust, TrustStore,
    VerifyOptions,
};

/// Hash algorithm choice on the command line.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum HashArg {
    /// SHA-256 (default, required by OMS).
    Sha256,
    /// BLAKE3.
    Blake3,
}

/// Serialization method on the command line.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum MethodArg {
    /// One digest per file.
    Files,
    /// One digest per `--shard-size` byte range.
    Shards,
}

/// Spelling of points where the OMS spec and `model_signing` differ.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum FlavorArg {
    /// Follow the OMS v1.0 spec.
    Spec,
    /// Write what model_signing 1.1.x writes (single-file resource named
    /// ".", shard labels "<hash>-sharded-<size>") so it accepts the bundle.
    ModelSigning,
}

/// `pedigree sign`.
#[derive(clap::Args, Debug)]
pub struct SignArgs {
    /// Model directory or single file to sign.
    pub model: PathBuf,
    /// PEM private key (ECDSA P-256 / P-384 / P-521; PKCS#8 or SEC1).
    #[arg(long)]
    pub key: PathBuf,
    /// PEM signing (leaf) certificate: certificate method.
    #[arg(long, requires = "chain")]
    pub cert: Option<PathBuf>,
    /// PEM intermediate certificates to carry in the bundle.
    #[arg(long, requires = "cert")]
    pub chain: Option<PathBuf>,
    /// Output bundle [default: model.sig beside/inside the model].
    #[arg(long)]
    pub signature: Option<PathBuf>,
    /// Serialization method.
    #[arg(long, value_enum, default_value = "files")]
    pub method: MethodArg,
    /// Shard size in bytes for `--method shards`.
    #[arg(long, default_value_t = DEFAULT_SHARD_SIZE)]
    pub shard_size: u64,
    /// File hash.
    #[arg(long = "hash", value_enum, default_value = "sha256")]
    pub hash: HashArg,
    /// Extra paths to exclude (relative to the model root, or paths inside it).
    #[arg(long = "ignore-paths", num_args = 1..)]
    pub ignore_paths: Vec<PathBuf>,
    /// Follow symbolic links instead of refusing them.
    #[arg(long)]
    pub allow_symlinks: bool,
    /// Digest cache file, reused across re-signing runs (never by verify).
    #[arg(long)]
    pub digest_cache: Option<PathBuf>,
    /// Spelling of spec-vs-reference divergences.
    #[arg(long, value_enum, default_value = "spec")]
    pub flavor: FlavorArg,
}

/// `pedigree verify`.
#[derive(clap::Args, Debug)]
pub struct VerifyArgs {
    /// Model directory or single file to verify.
    pub model: PathBuf,
    /// The OMS bundle.
    #[arg(long)]
    pub signature: PathBuf,
    /// Trusted PEM public key (key method).
    #[arg(long, conflicts_with_all = ["cert_chain", "sigstore"])]
    pub key: Option<PathBuf>,
    /// Trusted PEM root (and optionally intermediate) certificates.
    #[arg(long, conflicts_with = "sigstore")]
    pub cert_chain: Option<PathBuf>,
    /// Sigstore keyless bundle, verified offline against the pinned root.
    #[arg(long, requires_all = ["identity", "issuer"])]
    pub sigstore: bool,
    /// Required certificate identity (email or URI SAN).
    #[arg(long)]
    pub identity: Option<String>,
    /// Required OIDC issuer URL.
    #[arg(long)]
    pub issuer: Option<String>,
    /// Custom Sigstore trusted_root.json [default: embedded public-good root].
    #[arg(long)]
    pub trust_root: Option<PathBuf>,
    /// Extra paths to exclude (needed for bundles older than model_signing 1.1).
    #[arg(long = "ignore-paths", num_args = 1..)]
    pub ignore_paths: Vec<PathBuf>,
    /// Do not fail on files the signature does not cover.
    #[arg(long)]
    pub ignore_unsigned_files: bool,
}

/// `pedigree id`.
#[derive(clap::Args, Debug)]
pub struct IdArgs {
    /// Model directory or single file.
    pub path: PathBuf,
    /// Also print each file's digest.
    #[arg(long)]
    pub files: bool,
    /// File hash (the root digest is always SHA-256).
    #[arg(long = "hash", value_enum, default_value = "sha256")]
    pub hash: HashArg,
    /// Extra paths to exclude.
    #[arg(long = "ignore-paths", num_args = 1..)]
    pub ignore_paths: Vec<PathBuf>,
    /// Follow symbolic links instead of refusing them.
    #[arg(long)]
    pub allow_symlinks: bool,
}

fn hash_of(h: HashArg) -> HashAlgorithm {
    match h {
        HashArg::Sha256 => HashAlgorithm::Sha256,
        HashArg::Blake3 => HashAlgorithm::Blake3,
    }
}

/// Turn a user ignore path into one relative to the model root: paths that
/// exist relative to the working directory and lie inside the model are
/// made relative; anything else is taken as already model-relative.
fn model_relative(model: &Path, p: &Path) -> String {
    if model.is_dir() && (p.is_absolute() || p.exists()) {
        if let Some(rel) = pedigree_sign::verify::relative_inside(model, p) {
            return rel;
        }
    }
    p.to_string_lossy().into_owned()
}

fn default_signature(model: &Path) -> PathBuf {
    if model.is_dir() {
        model.join("model.sig")
    } else {
        model.with_file_name("model.sig")
    }
}

fn read(p: &Path, what: &str) -> anyhow::Result<String> {
    std::fs::read_to_string(p).with_context(|| format!("reading {what} {}", p.display()))
}

/// `pedigree sign`: write an OMS bundle. Returns the exit code.
pub fn sign(args: &SignArgs) -> anyhow::Result<i32> {
    let key = PrivateKey::from_pem(&read(&args.key, "private key")?)
        .with_context(|| format!("{}", args.key.display()))?;
    let signer = match (&args.cert, &args.chain) {
        (Some(cert), chain) => {
            let mut certs = Cert::all_from_pem(&read(cert, "certificate")?)?;
            if let Some(c) = chain {
                certs.extend(Cert::all_from_pem(&read(c, "certificate chain")?)?);
            }
            Signer::certificate(key, certs)?
        }
        (None, _) => Signer::Key(key),
    };
    let method = match args.method {
        MethodArg::Files => Method::Files,
        MethodArg::Shards => Method::Shards {
            shard_size: args.shard_size,
        },
    };
    let serialization = Serialization {
        method,
        hash: hash_of(args.hash),
        allow_symlinks: args.allow_symlinks,
        ignore_paths: args
            .ignore_paths
            .iter()
            .map(|p| model_relative(&args.model, p))
            .collect(),
    };
    let sig_path = args
        .signature
        .clone()
        .unwrap_or_else(|| default_signature(&args.model));
    let opts = SignOptions {
        serialization,
        flavor: match args.flavor {
            FlavorArg::Spec => Flavor::Spec,
            FlavorArg::ModelSigning => Flavor::ModelSigning,
        },
        signature_path: Some(sig_path.clone()),
        digest_cache: args.digest_cache.clone(),
    };
    let (manifest, bytes) = pedigree_sign::sign_model(&args.model, &signer, &opts)?;
    std::fs::write(&sig_path, bytes).with_context(|| format!("writing {}", sig_path.display()))?;
    eprintln!(
        "signed {} ({} resources, {}) -> {}",
        args.model.display(),
        manifest.resources.len(),
        manifest.model_id(),
        sig_path.display()
    );
    Ok(0)
}

/// `pedigree verify`. Returns 0 (verified), 1 (failed) or 2 (could not run).
pub fn verify(args: &VerifyArgs) -> anyhow::Result<i32> {
    match verify_inner(args) {
        Ok(signer) => {
            println!("verified: {} signed by {signer}", args.model.display());
            Ok(0)
        }
        Err(e) => {
            // A library error already says everything in its Display; the
            // anyhow chain would repeat the wrapped VerifyFailure.
            let (code, msg) = match e.downcast_ref::<Error>() {
                Some(err) if err.is_verification_failure() => (1, err.to_string()),
                Some(err) => (2, err.to_string()),
                None => (2, format!("{e:#}")),
            };
            eprintln!("{}: {msg}", if code == 1 { "FAILED" } else { "error" });
            Ok(code)
        }
    }
}

fn verify_inner(args: &VerifyArgs) -> anyhow::Result<pedigree_sign::SignerIdentity> {
    let mut trust = TrustStore::default();
    if let Some(k) = &args.key {
        trust.keys.push(
            PublicKey::from_pem(&read(k, "public key")?)
                .with_context(|| format!("{}", k.display()))?,
        );
    } else if let Some(c) = &args.cert_chain {
        trust.roots = Cert::all_from_pem(&read(c, "certificate chain")?)
            .with_context(|| format!("{}", c.display()))?;
    } else if args.sigstore {
        let trusted_root_json = match &args.trust_root {
            Some(p) => Some(read(p, "trusted root")?),
            None => None,
        };
        trust.sigstore = Some(SigstoreTrust {
            trusted_root_json,
            identity: args.identity.clone(),
            issuer: args.issuer.clone(),
        });
    } else {
        anyhow::bail!("give one of --key, --cert-chain or --sigstore --identity ID --issuer URL");
    }
    let bundle = std::fs::read(&args.signature)
        .with_context(|| format!("reading signature {}", args.signature.display()))?;
    let opts = VerifyOptions {
        ignore_paths: args
            .ignore_paths
            .iter()
            .map(|p| model_relative(&args.model, p))
            .collect(),
        ignore_unsigned_files: args.ignore_unsigned_files,
        signature_path: Some(args.signature.clone()),
    };
    Ok(pedigree_sign::verify_model(&args.model, &bundle, &trust, &opts)?.signer)
}

/// `pedigree id`: print the model's root digest (`sha256:<hex>`).
pub fn id(args: &IdArgs) -> anyhow::Result<i32> {
    let ser = Serialization {
        method: Method::Files,
        hash: hash_of(args.hash),
        allow_symlinks: args.allow_symlinks,
        ignore_paths: args
            .ignore_paths
            .iter()
            .map(|p| model_relative(&args.path, p))
            .collect(),
    };
    let m = pedigree_sign::manifest::hash_model(&args.path, &ser)?;
    println!("{}", m.model_id());
    if args.files {
        for r in &m.resources {
            println!("{}:{}  {}", ser.hash.label(), r.digest_hex(), r.name);
        }
    }
    Ok(0)
}
