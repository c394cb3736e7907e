//! Signed notes and verifier keys from outside must never panic the parser.
#![no_main]

use libfuzzer_sys::fuzz_target;
use warden_audit::{SigningKey, VerifierKey};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let _ = text.parse::<VerifierKey>();
    if let Ok(key) = SigningKey::from_seed("fuzz/audit", &[5u8; 32]) {
        let _ = key.verifier().open(text);
    }
});
