//! Fuzz target: the TensorFlow SavedModel / GraphDef / keras_metadata.pb reader.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    for name in ["saved_model.pb", "keras_metadata.pb", "frozen.pb"] {
        let _ = pedigree_formats::tensorflow::read(name, data);
    }
});
