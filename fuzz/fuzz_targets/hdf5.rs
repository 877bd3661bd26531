//! Fuzz target: the minimal HDF5 root-attribute reader.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = pedigree_formats::hdf5::read_root_attributes(data);
});
