//! Fuzz target: audit-chain verification over arbitrary entries (as read back from a database
//! someone may have edited).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(entries) = serde_json::from_slice::<Vec<pedigree_registry::audit::AuditEntry>>(data) {
        let _ = pedigree_registry::audit::verify_chain(entries, None);
    }
});
