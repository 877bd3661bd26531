//! Fuzz the uniform tensor view (`pedigree_formats::tensors`), torch reader first: any bytes,
//! opened and every tensor decoded (values and quantization steps). Must never panic; limits
//! keep each run bounded (shapes must fit the data before anything is allocated).
#![no_main]

use libfuzzer_sys::fuzz_target;
use pedigree_formats::tensors::TensorFile;

fuzz_target!(|data: &[u8]| {
    if let Ok(f) = TensorFile::from_bytes("fuzz-torch", data.to_vec()) {
        for i in 0..f.tensors.len().min(64) {
            if f.tensors[i].numel() <= 1 << 22 {
                let _ = f.values(i);
                let _ = f.quant_steps(i);
            }
        }
    }
});
