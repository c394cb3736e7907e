//! Scanner output (which an attacker who controls a scanned artifact may shape): format
//! detection and every parser must never panic, and what they keep stays bounded.
#![no_main]

use libfuzzer_sys::fuzz_target;
use warden_vuln::{Format, parse};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = Format::detect("fuzz.json", text);
    for format in [None]
        .into_iter()
        .chain(Format::ALL.into_iter().map(Some))
    {
        if let Ok((_, findings)) = parse(format, "fuzz.json", text) {
            for f in &findings {
                assert!(f.advisory.chars().count() <= 200);
                assert!(f.title.chars().count() <= warden_vuln::MAX_TITLE);
                assert!(!f.advisory.chars().any(char::is_control));
                let _ = (f.subject(), f.ids());
            }
        }
    }
});
