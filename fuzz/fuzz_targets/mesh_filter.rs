//! Packets from a peer (which an attacker on the mesh shapes at will), and keys and ranges
//! from enrollment and configuration: the filter never panics, never tracks more flows than
//! packets it saw, and passes an inbound packet only for a tracked flow or a permitted start.
#![no_main]

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr};

use libfuzzer_sys::fuzz_target;
use warden_mesh::filter::{Filter, Verdict};
use warden_mesh::{Effect, FilterRule, MeshRanges, Ports, Protocol, PublicKey};

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = text.parse::<PublicKey>();
        let (a, b) = text.split_once(' ').unwrap_or((text, "fd00::/64"));
        let _ = MeshRanges::new(a, b);
    }
    let rules = [FilterRule {
        policy: "fuzz".into(),
        effect: Effect::Permit,
        sources: vec![IpAddr::V4(Ipv4Addr::new(100, 64, 0, 2))],
        protocols: Some(BTreeSet::from([Protocol::Tcp, Protocol::Udp, Protocol::Icmp])),
        ports: Ports(vec![(0, 1024)]),
    }];
    let mut filter = Filter::new(&rules);
    let mut seen = 0usize;
    for (n, chunk) in data.split(|&b| b == 0xff).enumerate() {
        seen += 1;
        if n % 3 == 0 {
            filter.outbound(chunk, n as u64);
        } else {
            let before = filter.flows().count();
            if filter.inbound(chunk, n as u64) == Verdict::Pass {
                assert!(filter.flows().count() >= before);
            }
        }
        if n % 7 == 0 {
            filter.set_rules(&rules);
        }
    }
    assert!(filter.flows().count() <= seen);
});
