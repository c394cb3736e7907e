//! The stateful filter: default drop, flows only from permitted sources, replies only to
//! tracked flows, TCP segments of unknown connections dropped, revocation cutting flows.

#![expect(clippy::indexing_slicing, reason = "packet builders with fixed sizes")]

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr};

use proptest::prelude::*;
use warden_mesh::filter::{DropReason, Filter, Verdict};
use warden_mesh::{Effect, FilterRule, Ports, Protocol};

const ME: [u8; 4] = [100, 64, 0, 1];
const PEER: [u8; 4] = [100, 64, 0, 2];
const OTHER: [u8; 4] = [100, 64, 0, 3];

const SYN: u8 = 0x02;
const ACK: u8 = 0x10;
const RST: u8 = 0x04;

fn ipv4(src: [u8; 4], dst: [u8; 4], proto: u8, l4: &[u8]) -> Vec<u8> {
    let mut p = vec![0x45, 0, 0, 0, 0, 0, 0x40, 0, 64, proto, 0, 0];
    p.extend_from_slice(&src);
    p.extend_from_slice(&dst);
    p.extend_from_slice(l4);
    let len = u16::try_from(p.len()).unwrap_or(u16::MAX).to_be_bytes();
    p[2] = len[0];
    p[3] = len[1];
    p
}

fn tcp(src: [u8; 4], sport: u16, dst: [u8; 4], dport: u16, flags: u8) -> Vec<u8> {
    let mut l4 = vec![0u8; 20];
    l4[..2].copy_from_slice(&sport.to_be_bytes());
    l4[2..4].copy_from_slice(&dport.to_be_bytes());
    l4[12] = 0x50;
    l4[13] = flags;
    ipv4(src, dst, 6, &l4)
}

fn udp(src: [u8; 4], sport: u16, dst: [u8; 4], dport: u16) -> Vec<u8> {
    let mut l4 = vec![0u8; 8];
    l4[..2].copy_from_slice(&sport.to_be_bytes());
    l4[2..4].copy_from_slice(&dport.to_be_bytes());
    ipv4(src, dst, 17, &l4)
}

fn echo(src: [u8; 4], dst: [u8; 4], kind: u8, id: u16) -> Vec<u8> {
    let mut l4 = vec![kind, 0, 0, 0, 0, 0, 0, 1];
    l4[4..6].copy_from_slice(&id.to_be_bytes());
    ipv4(src, dst, 1, &l4)
}

fn rule(effect: Effect, source: [u8; 4], protocol: Protocol, ports: &[(u16, u16)]) -> FilterRule {
    FilterRule {
        policy: "p".into(),
        effect,
        sources: vec![IpAddr::V4(Ipv4Addr::from(source))],
        protocols: Some(BTreeSet::from([protocol])),
        ports: Ports(ports.to_vec()),
    }
}

fn web() -> Vec<FilterRule> {
    vec![
        rule(Effect::Permit, PEER, Protocol::Tcp, &[(80, 80), (443, 443)]),
        rule(Effect::Permit, PEER, Protocol::Icmp, &[(0, 0)]),
    ]
}

const PASS: Verdict = Verdict::Pass;
const NOT_PERMITTED: Verdict = Verdict::Drop(DropReason::NotPermitted);
const NO_CONNECTION: Verdict = Verdict::Drop(DropReason::NoConnection);

#[test]
fn permitted_flows_start_and_continue() {
    let mut f = Filter::new(&web());
    assert_eq!(f.inbound(&tcp(PEER, 40000, ME, 80, SYN), 0), PASS);
    f.outbound(&tcp(ME, 80, PEER, 40000, SYN | ACK), 1);
    assert_eq!(f.inbound(&tcp(PEER, 40000, ME, 80, ACK), 2), PASS);
    // The same source on another port, another source on the same port: dropped.
    assert_eq!(f.inbound(&tcp(PEER, 40001, ME, 22, SYN), 3), NOT_PERMITTED);
    assert_eq!(f.inbound(&tcp(OTHER, 40000, ME, 80, SYN), 3), NOT_PERMITTED);
    assert_eq!(f.stats().passed, 2);
    assert_eq!(f.stats().dropped, 2);
}

#[test]
fn tcp_without_a_connection_is_dropped() {
    let mut f = Filter::new(&web());
    // Unlike a filter that passes any non-SYN segment, an ACK, a SYN-ACK or a RST of no
    // tracked connection is dropped even on a permitted port.
    for flags in [ACK, SYN | ACK, RST, 0] {
        assert_eq!(
            f.inbound(&tcp(PEER, 40000, ME, 80, flags), 0),
            NO_CONNECTION,
            "flags {flags:#x}"
        );
    }
}

#[test]
fn replies_to_local_flows_pass_and_others_do_not() {
    let mut f = Filter::new(&[]);
    f.outbound(&tcp(ME, 50000, PEER, 5432, SYN), 0);
    assert_eq!(f.inbound(&tcp(PEER, 5432, ME, 50000, SYN | ACK), 1), PASS);
    assert_eq!(
        f.inbound(&tcp(PEER, 5432, ME, 50001, SYN | ACK), 1),
        NO_CONNECTION
    );
    f.outbound(&udp(ME, 5353, PEER, 53), 0);
    assert_eq!(f.inbound(&udp(PEER, 53, ME, 5353), 1), PASS);
    assert_eq!(f.inbound(&udp(PEER, 54, ME, 5353), 1), NOT_PERMITTED);
    f.outbound(&echo(ME, PEER, 8, 7), 0);
    assert_eq!(f.inbound(&echo(PEER, ME, 0, 7), 1), PASS);
    // An echo reply nobody asked for.
    assert_eq!(f.inbound(&echo(PEER, ME, 0, 8), 1), NOT_PERMITTED);
}

#[test]
fn icmp_echo_requests_follow_the_rules() {
    let mut f = Filter::new(&web());
    assert_eq!(f.inbound(&echo(PEER, ME, 8, 1), 0), PASS);
    assert_eq!(f.inbound(&echo(OTHER, ME, 8, 1), 0), NOT_PERMITTED);
}

#[test]
fn forbid_wins() {
    let mut rules = web();
    rules.push(rule(Effect::Forbid, PEER, Protocol::Tcp, &[(443, 443)]));
    let mut f = Filter::new(&rules);
    assert_eq!(f.inbound(&tcp(PEER, 1, ME, 80, SYN), 0), PASS);
    assert_eq!(f.inbound(&tcp(PEER, 1, ME, 443, SYN), 0), NOT_PERMITTED);
}

#[test]
fn new_rules_cut_flows_they_no_longer_permit() {
    let mut f = Filter::new(&web());
    assert_eq!(f.inbound(&tcp(PEER, 40000, ME, 80, SYN), 0), PASS);
    assert_eq!(f.inbound(&tcp(PEER, 40001, ME, 443, SYN), 0), PASS);
    f.outbound(&tcp(ME, 9, PEER, 9, SYN), 0);
    // Port 443 stays; port 80 goes; the flow this node started stays.
    let dropped = f.set_rules(&[rule(Effect::Permit, PEER, Protocol::Tcp, &[(443, 443)])]);
    assert_eq!(dropped, 1);
    assert_eq!(f.inbound(&tcp(PEER, 40000, ME, 80, ACK), 1), NO_CONNECTION);
    assert_eq!(f.inbound(&tcp(PEER, 40001, ME, 443, ACK), 1), PASS);
    assert_eq!(f.inbound(&tcp(PEER, 9, ME, 9, ACK), 1), PASS);
    assert_eq!(f.stats().revoked_flows, 1);
}

#[test]
fn idle_flows_expire() {
    let mut f = Filter::new(&[]);
    f.outbound(&udp(ME, 5353, PEER, 53), 0);
    f.expire(119_999);
    assert_eq!(f.flows().count(), 1);
    f.expire(120_000);
    assert_eq!(f.flows().count(), 0);
    assert_eq!(f.inbound(&udp(PEER, 53, ME, 5353), 120_001), NOT_PERMITTED);
}

#[test]
fn unreadable_packets_are_dropped() {
    let mut f = Filter::new(&web());
    let mut fragment = tcp(PEER, 1, ME, 80, SYN);
    fragment[7] = 8; // a fragment offset: no transport header to judge
    for packet in [
        vec![],
        vec![0x45],
        vec![0x60; 10],
        fragment,
        ipv4(PEER, ME, 47, &[0; 8]),
    ] {
        assert_eq!(f.inbound(&packet, 0), Verdict::Drop(DropReason::Unreadable));
    }
}

proptest! {
    /// Any bytes: the filter answers without panicking, and never passes what it cannot read
    /// as a flow it knows or a permitted start.
    #[test]
    fn arbitrary_packets(packets in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..80), 0..50)) {
        let mut f = Filter::new(&web());
        for (n, p) in packets.iter().enumerate() {
            if n % 2 == 0 {
                f.outbound(p, n as u64);
            } else {
                let _ = f.inbound(p, n as u64);
            }
        }
        prop_assert!(f.flows().count() <= packets.len());
    }

    /// Inbound starts from a source the rules do not name never pass.
    #[test]
    fn unnamed_sources_never_start_flows(sport in any::<u16>(), dport in any::<u16>(), flags in any::<u8>()) {
        let mut f = Filter::new(&web());
        prop_assert_ne!(f.inbound(&tcp(OTHER, sport, ME, dport, flags), 0), PASS);
        prop_assert_ne!(f.inbound(&udp(OTHER, sport, ME, dport), 0), PASS);
    }
}
