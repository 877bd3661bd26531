//! Fuzz target: the Keras config walker and the legacy .h5 path.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = pedigree_formats::keras::read_config(
        &String::from_utf8_lossy(data),
        pedigree_formats::keras::Source::KerasV3Config,
    );
    let _ = pedigree_formats::keras::read_h5(data);
});
