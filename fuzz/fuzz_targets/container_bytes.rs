//! Fuzz the container readers: any bytes, read as a file would be (sniffing, zip/tar/7z/npy,
//! torch legacy, every decompressor), with small limits so each run stays fast. Must never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pedigree_formats::container::{ContainerLimits, ReadOptions, read_bytes};

fuzz_target!(|data: &[u8]| {
    let opts = ReadOptions {
        limits: ContainerLimits {
            max_member_size: 4 << 20,
            max_total_decompressed: 16 << 20,
            max_members: 256,
            ..ContainerLimits::default()
        },
        ..ReadOptions::default()
    };
    let _ = read_bytes("fuzz", data, &opts);
});
