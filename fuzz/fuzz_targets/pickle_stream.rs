//! Fuzz the pickle reader: every read mode, with and without joblib array skipping, and the
//! disassembler. Any panic, overflow or runaway allocation is a bug.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pedigree_formats::pickle::{Options, ReadMode, analyze_stream, disasm};

fuzz_target!(|data: &[u8]| {
    let mut opts = Options::default();
    opts.limits.max_opcodes = 1_000_000;
    for joblib in [false, true] {
        opts.joblib_arrays = joblib;
        for mode in [
            ReadMode::InMemory,
            ReadMode::FileNoPeek,
            ReadMode::PurePython,
        ] {
            let _ = analyze_stream(data, &opts, mode);
        }
    }
    let mut out = String::new();
    let _ = disasm(data, 0, ReadMode::FileNoPeek, &mut out, 10_000);
});
