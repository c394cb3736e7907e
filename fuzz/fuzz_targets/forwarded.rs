//! `X-Forwarded-For` and `Forwarded` values from a trusted proxy (or anyone claiming to be
//! one): parsing must never panic, and the client found is the peer or an address one of the
//! header's elements names.
#![no_main]

use std::net::IpAddr;

use libfuzzer_sys::fuzz_target;
use warden_model::forwarded::{ForwardedHeader, TrustedProxies};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let values: Vec<&str> = text.split('\n').collect();
    for header in [ForwardedHeader::XForwardedFor, ForwardedHeader::Forwarded] {
        let Ok(trusted) =
            TrustedProxies::parse(&["127.0.0.0/8".to_owned(), "::1".to_owned()], header)
        else {
            return;
        };
        let peer = IpAddr::from([127, 0, 0, 1]);
        let client = trusted.client(peer, &values);
        if client != peer {
            let named = values
                .iter()
                .flat_map(|v| v.split(','))
                .any(|e| header.element(e) == Some(client));
            assert!(named, "{client} is not named in the header");
        }
        assert_eq!(trusted.client(IpAddr::from([192, 0, 2, 1]), &values), IpAddr::from([192, 0, 2, 1]));
    }
});
