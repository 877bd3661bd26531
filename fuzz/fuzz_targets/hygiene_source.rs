//! Fuzz target: `pedigree hygiene` on arbitrary bytes, read as Python source and as a notebook
//! (JSON), with an allow-list so the approved-set paths run too.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pedigree_hygiene::{AllowList, Kind, Options, check_source};

fuzz_target!(|data: &[u8]| {
    if data.len() > 256 * 1024 {
        return;
    }
    let mut allow = AllowList::default();
    allow.add_publisher("google-bert");
    allow.add_model("acme/detector", Some("0123456789abcdef0123456789abcdef01234567"));
    let opts = Options { allow: Some(allow) };
    let _ = check_source("fuzz.py", Kind::Python, data, &opts);
    let _ = check_source("fuzz.ipynb", Kind::Notebook, data, &opts);
});
