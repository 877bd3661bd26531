//! Fuzz target: the Jinja chat-template judge.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = pedigree_formats::chat_template::check("fuzz", &String::from_utf8_lossy(data));
});
