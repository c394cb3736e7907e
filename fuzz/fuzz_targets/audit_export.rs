//! The offline verifier must never panic, whatever the export file holds.
#![no_main]

use libfuzzer_sys::fuzz_target;
use warden_audit::SigningKey;

fuzz_target!(|data: &[u8]| {
    if let Ok(key) = SigningKey::from_seed("fuzz/audit", &[5u8; 32]) {
        let _ = warden_audit::verify(data, &key.verifier());
    }
});
