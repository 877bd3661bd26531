//! Fuzz target: the CPython marshal code-object reader (Keras Lambda bytecode).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = pedigree_formats::marshal::read_code(data);
});
