//! `Forwarded` and `X-Forwarded-For` values from a trusted proxy (or anyone claiming to be
//! one): parsing must never panic, and the client found is the peer or an address named in
//! the headers.
#![no_main]

use std::net::IpAddr;

use libfuzzer_sys::fuzz_target;
use warden_model::forwarded::{TrustedProxies, forwarded_chain, x_forwarded_for_chain};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (forwarded, xff) = text.split_once('\n').unwrap_or((text, ""));
    let (f, x) = ([forwarded], [xff]);
    let Ok(trusted) = TrustedProxies::parse(&["127.0.0.0/8".to_owned(), "::1".to_owned()]) else {
        return;
    };
    let peer = IpAddr::from([127, 0, 0, 1]);
    let client = trusted.client(peer, &f, &x);
    if client != peer {
        let named = forwarded_chain(&f)
            .into_iter()
            .chain(x_forwarded_for_chain(&x))
            .flatten()
            .any(|a| a == client);
        assert!(named, "{client} is not named in the headers");
    }
    let _ = trusted.client(IpAddr::from([192, 0, 2, 1]), &f, &x);
});
