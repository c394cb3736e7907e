//! The offline verifier must never panic, whatever the export file holds, and reading the
//! events as well changes nothing about whether it verifies.
#![no_main]

use libfuzzer_sys::fuzz_target;
use warden_audit::SigningKey;

fuzz_target!(|data: &[u8]| {
    if let Ok(key) = SigningKey::from_seed("fuzz/audit", &[5u8; 32]) {
        let verifier = key.verifier();
        let plain = warden_audit::verify(data, &verifier);
        let mut events = 0u64;
        let read = warden_audit::verify_events(data, &verifier, |_| events += 1);
        if let (Ok(plain), Ok(read)) = (&plain, &read) {
            assert_eq!(plain, read);
            assert_eq!(events, read.events);
        }
    }
});
