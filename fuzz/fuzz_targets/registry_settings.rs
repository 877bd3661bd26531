//! Fuzz target: the registry's settings file (TOML) resolved to settings, and blob-store URLs.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Ok(layer) = pedigree_registry::config::Layer::from_toml(&text) {
        let _ = layer.resolve();
    }
    let _ = pedigree_registry::blob_s3::S3Options::from_url(&text);
});
