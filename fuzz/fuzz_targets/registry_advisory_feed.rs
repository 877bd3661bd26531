//! Fuzz target: the registry's advisory feed importer (untrusted JSON from other registries).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(feed) = pedigree_registry::advisory_feed::parse_feed(data) {
        // Whatever parses must export and parse again.
        let again = pedigree_registry::advisory_feed::to_feed(&feed.advisories);
        assert!(pedigree_registry::advisory_feed::parse_feed(&again).is_ok());
    }
});
