//! Fuzz target: the safetensors header and layout reader.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = pedigree_formats::safetensors::read(data);
    let _ = pedigree_formats::safetensors::looks_like(data);
});
