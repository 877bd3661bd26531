//! Fuzz target: the ONNX protobuf reader.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = pedigree_formats::onnx::read(data);
    let _ = pedigree_formats::onnx::looks_like(data);
});
