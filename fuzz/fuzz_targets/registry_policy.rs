//! Fuzz target: the registry policy file (TOML) and the name-confusion check over its strings.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let _ = pedigree_registry::policy::Policy::from_toml_str(
        &text,
        std::path::Path::new("/nonexistent"),
    );
    let (a, b) = text.split_at(text.len() / 2);
    let _ = pedigree_registry::names::too_close(a, b, 2);
});
