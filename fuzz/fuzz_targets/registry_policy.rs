//! Fuzz target: the registry policy file (TOML) and the name-confusion check over its strings.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let _ = pedigree_registry::policy::Policy::from_toml_str(
        &text,
        std::path::Path::new("/nonexistent"),
    );
    // Split on a character boundary: `str::split_at` panics inside a multi-byte character
    // (the lossy decoding turns any invalid byte into the 3-byte U+FFFD).
    let mut mid = text.len() / 2;
    while !text.is_char_boundary(mid) {
        mid -= 1;
    }
    let (a, b) = text.split_at(mid);
    let _ = pedigree_registry::names::too_close(a, b, 2);
});
