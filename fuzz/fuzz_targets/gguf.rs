//! Fuzz target: the GGUF header, metadata and tensor-info reader (and the chat templates it finds).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = pedigree_formats::gguf::read(data);
});
