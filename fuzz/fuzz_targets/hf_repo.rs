//! Fuzz target: Hugging Face config auto_map parsing and the Python call finder.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = pedigree_formats::hf_repo::read_config_json("config.json", data);
    if data.len() < 64 * 1024 {
        let _ = pedigree_formats::hf_repo::read_py("m.py", data);
    }
});
