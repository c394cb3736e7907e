//! The first bytes of a connection from a trusted proxy: a PROXY protocol header (v1 or v2),
//! or not. Parsing must never panic, and a header never claims more bytes than arrived.
#![no_main]

use libfuzzer_sys::fuzz_target;
use warden_model::proxy_protocol::{Header, parse};

fuzz_target!(|data: &[u8]| {
    if let Header::Present { len, .. } = parse(data) {
        assert!(len <= data.len());
    }
});
