//! Fuzz target: the IDX reader of the probe lab (Fashion-MNIST files come from outside).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = pedigree_probe::data::parse_idx(data);
});
