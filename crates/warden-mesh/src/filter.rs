//! The stateful packet filter a node runs on what comes out of and goes into its tunnel.
//!
//! Default drop, enforced at the destination: a packet from a peer may start a flow only if
//! the node's inbound rules permit its source, protocol and port (a TCP flow only with a bare
//! SYN), and may otherwise only continue a flow the filter tracks, in either direction.
//! Unlike filters that let any TCP segment without SYN through, a segment of an unknown
//! connection is dropped. Replacing the rules drops every tracked inbound flow they no longer
//! permit, so a revocation cuts established connections. Time is passed in (milliseconds).

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use serde::Serialize;

use crate::netmap::FilterRule;
use crate::rules::{Effect, Ports, Protocol};

/// What to do with a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Let it through.
    Pass,
    /// Drop it, and why.
    Drop(DropReason),
}

/// Why a packet was dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DropReason {
    /// Not an IPv4 or IPv6 packet the filter can read (fragments after the first, other
    /// protocols, truncated headers).
    Unreadable,
    /// No rule permits this flow.
    NotPermitted,
    /// A TCP segment of no tracked connection that is not a bare SYN.
    NoConnection,
    /// The flow table is full.
    TableFull,
}

/// How long idle flows are kept, in milliseconds.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    /// A TCP connection before both sides have sent SYN.
    pub tcp_opening: u64,
    /// An established TCP connection.
    pub tcp_established: u64,
    /// A TCP connection after FIN or RST.
    pub tcp_closing: u64,
    /// A UDP flow.
    pub udp: u64,
    /// An ICMP echo exchange.
    pub icmp: u64,
}

impl Default for Timeouts {
    fn default() -> Timeouts {
        Timeouts {
            tcp_opening: 60_000,
            tcp_established: 24 * 3_600_000,
            tcp_closing: 30_000,
            udp: 120_000,
            icmp: 30_000,
        }
    }
}

/// The most flows tracked at once; new flows beyond it are dropped.
pub const MAX_FLOWS: usize = 262_144;

/// Who started a flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Origin {
    /// This node.
    Local,
    /// A peer, let in by a rule.
    Remote,
}

/// A tracked flow, as `mesh status` shows it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct FlowKey {
    /// Its protocol.
    pub protocol: Protocol,
    /// This node's address.
    pub local: IpAddr,
    /// This node's port (an ICMP echo's identifier).
    pub local_port: u16,
    /// The peer's address.
    pub remote: IpAddr,
    /// The peer's port.
    pub remote_port: u16,
}

#[derive(Debug, Clone)]
struct Flow {
    origin: Origin,
    /// TCP: SYN seen from the starter and from the other side; FIN or RST seen.
    syn_out: bool,
    syn_in: bool,
    closing: bool,
    deadline: u64,
}

impl Flow {
    /// A flow started by `origin` with packet `p`.
    fn start(p: &Parsed, origin: Origin, timeouts: Timeouts, now: u64) -> Flow {
        let mut flow = Flow {
            origin,
            syn_out: p.flags & SYN != 0,
            syn_in: false,
            closing: false,
            deadline: 0,
        };
        touch(&mut flow, p, timeouts, now);
        flow
    }

    /// Notes a packet of this flow sent by `from`: a SYN from the side that started the flow
    /// or from the other, FIN or RST, and the new idle deadline.
    fn seen(&mut self, p: &Parsed, from: Origin, timeouts: Timeouts, now: u64) {
        if p.flags & SYN != 0 {
            if from == self.origin {
                self.syn_out = true;
            } else {
                self.syn_in = true;
            }
        }
        touch(self, p, timeouts, now);
    }
}

/// Counters.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct FilterStats {
    /// Packets passed.
    pub passed: u64,
    /// Packets dropped.
    pub dropped: u64,
    /// Flows dropped because new rules no longer permit them.
    pub revoked_flows: u64,
}

#[derive(Debug, Clone)]
struct Allow {
    effect: Effect,
    protocols: Option<BTreeSet<Protocol>>,
    ports: Ports,
}

/// The filter.
#[derive(Debug, Default)]
pub struct Filter {
    by_source: BTreeMap<IpAddr, Vec<Allow>>,
    flows: BTreeMap<FlowKey, Flow>,
    timeouts: Timeouts,
    stats: FilterStats,
}

/// The parts of a packet the filter reads.
struct Parsed {
    protocol: Protocol,
    src: IpAddr,
    dst: IpAddr,
    sport: u16,
    dport: u16,
    /// TCP flags; 0 otherwise.
    flags: u8,
    /// Whether it may start a flow: a bare TCP SYN, any UDP datagram, an ICMP echo request.
    opens: bool,
    /// An ICMP echo reply.
    reply: bool,
}

const SYN: u8 = 0x02;
const ACK: u8 = 0x10;
const FIN: u8 = 0x01;
const RST: u8 = 0x04;

impl Filter {
    /// A filter with `rules` (a node's inbound rules).
    pub fn new(rules: &[FilterRule]) -> Filter {
        let mut filter = Filter::default();
        filter.compile(rules);
        filter
    }

    /// The counters.
    pub fn stats(&self) -> FilterStats {
        self.stats
    }

    /// The tracked flows.
    pub fn flows(&self) -> impl Iterator<Item = (&FlowKey, Origin)> {
        self.flows.iter().map(|(k, f)| (k, f.origin))
    }

    /// Replaces the rules and drops the inbound flows they no longer permit; returns how
    /// many were dropped.
    pub fn set_rules(&mut self, rules: &[FilterRule]) -> usize {
        self.compile(rules);
        let before = self.flows.len();
        let by_source = &self.by_source;
        self.flows.retain(|k, f| {
            f.origin == Origin::Local
                || permits(
                    by_source,
                    k.remote,
                    k.protocol,
                    policy_port(k.protocol, k.local_port),
                )
        });
        let dropped = before - self.flows.len();
        self.stats.revoked_flows += dropped as u64;
        dropped
    }

    /// Forgets flows idle past their timeout.
    pub fn expire(&mut self, now: u64) {
        self.flows.retain(|_, f| f.deadline > now);
    }

    /// Judges a packet arriving from a peer, to be delivered to this node.
    pub fn inbound(&mut self, packet: &[u8], now: u64) -> Verdict {
        let verdict = self.judge_inbound(packet, now);
        match verdict {
            Verdict::Pass => self.stats.passed += 1,
            Verdict::Drop(_) => self.stats.dropped += 1,
        }
        verdict
    }

    /// Records a packet this node sends to a peer. Sending is never refused (the destination
    /// decides); what is sent opens the flow its replies belong to.
    pub fn outbound(&mut self, packet: &[u8], now: u64) {
        let Some(p) = parse(packet) else {
            return;
        };
        let key = FlowKey {
            protocol: p.protocol,
            local: p.src,
            local_port: p.sport,
            remote: p.dst,
            remote_port: p.dport,
        };
        let timeouts = self.timeouts;
        if let Some(flow) = self.flows.get_mut(&key) {
            flow.seen(&p, Origin::Local, timeouts, now);
            return;
        }
        if p.opens && self.flows.len() < MAX_FLOWS {
            self.flows
                .insert(key, Flow::start(&p, Origin::Local, timeouts, now));
        }
    }

    fn judge_inbound(&mut self, packet: &[u8], now: u64) -> Verdict {
        let Some(p) = parse(packet) else {
            return Verdict::Drop(DropReason::Unreadable);
        };
        let key = FlowKey {
            protocol: p.protocol,
            local: p.dst,
            local_port: p.dport,
            remote: p.src,
            remote_port: p.sport,
        };
        let timeouts = self.timeouts;
        if let Some(flow) = self.flows.get_mut(&key) {
            flow.seen(&p, Origin::Remote, timeouts, now);
            return Verdict::Pass;
        }
        if !p.opens || p.reply {
            return Verdict::Drop(if p.protocol == Protocol::Tcp {
                DropReason::NoConnection
            } else {
                DropReason::NotPermitted
            });
        }
        if !permits(
            &self.by_source,
            p.src,
            p.protocol,
            policy_port(p.protocol, p.dport),
        ) {
            return Verdict::Drop(DropReason::NotPermitted);
        }
        if self.flows.len() >= MAX_FLOWS {
            self.expire(now);
            if self.flows.len() >= MAX_FLOWS {
                return Verdict::Drop(DropReason::TableFull);
            }
        }
        self.flows
            .insert(key, Flow::start(&p, Origin::Remote, timeouts, now));
        Verdict::Pass
    }

    fn compile(&mut self, rules: &[FilterRule]) {
        self.by_source.clear();
        for rule in rules {
            for &source in &rule.sources {
                self.by_source.entry(source).or_default().push(Allow {
                    effect: rule.effect,
                    protocols: rule.protocols.clone(),
                    ports: rule.ports.clone(),
                });
            }
        }
    }
}

fn permits(
    by_source: &BTreeMap<IpAddr, Vec<Allow>>,
    source: IpAddr,
    protocol: Protocol,
    port: u16,
) -> bool {
    let Some(allows) = by_source.get(&source) else {
        return false;
    };
    let mut permitted = false;
    for a in allows {
        if a.protocols.as_ref().is_none_or(|p| p.contains(&protocol)) && a.ports.contains(port) {
            match a.effect {
                Effect::Forbid => return false,
                Effect::Permit => permitted = true,
            }
        }
    }
    permitted
}

/// The port a policy sees: an ICMP echo has none (0); its identifier only tells flows apart.
fn policy_port(protocol: Protocol, port: u16) -> u16 {
    if protocol == Protocol::Icmp { 0 } else { port }
}

fn touch(flow: &mut Flow, p: &Parsed, timeouts: Timeouts, now: u64) {
    if p.flags & (FIN | RST) != 0 {
        flow.closing = true;
    }
    let timeout = match p.protocol {
        Protocol::Tcp if flow.closing => timeouts.tcp_closing,
        Protocol::Tcp if flow.syn_out && flow.syn_in => timeouts.tcp_established,
        Protocol::Tcp => timeouts.tcp_opening,
        Protocol::Udp => timeouts.udp,
        Protocol::Icmp => timeouts.icmp,
    };
    flow.deadline = now.saturating_add(timeout);
}

fn be16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*b.get(at)?, *b.get(at + 1)?]))
}

fn parse(packet: &[u8]) -> Option<Parsed> {
    let version = packet.first()? >> 4;
    let (next, src, dst, l4) = match version {
        4 => {
            let ihl = usize::from(packet.first()? & 0x0f) * 4;
            if ihl < 20 || be16(packet, 6)? & 0x1fff != 0 {
                return None;
            }
            let src: [u8; 4] = packet.get(12..16)?.try_into().ok()?;
            let dst: [u8; 4] = packet.get(16..20)?.try_into().ok()?;
            (
                *packet.get(9)?,
                IpAddr::V4(Ipv4Addr::from(src)),
                IpAddr::V4(Ipv4Addr::from(dst)),
                packet.get(ihl..)?,
            )
        }
        6 => {
            let src: [u8; 16] = packet.get(8..24)?.try_into().ok()?;
            let dst: [u8; 16] = packet.get(24..40)?.try_into().ok()?;
            (
                *packet.get(6)?,
                IpAddr::V6(Ipv6Addr::from(src)),
                IpAddr::V6(Ipv6Addr::from(dst)),
                packet.get(40..)?,
            )
        }
        _ => return None,
    };
    let (protocol, sport, dport, flags, opens, reply) = match next {
        6 => {
            let flags = *l4.get(13)?;
            (
                Protocol::Tcp,
                be16(l4, 0)?,
                be16(l4, 2)?,
                flags,
                flags & (SYN | ACK | RST | FIN) == SYN,
                false,
            )
        }
        17 => (Protocol::Udp, be16(l4, 0)?, be16(l4, 2)?, 0, true, false),
        1 | 58 => {
            let kind = *l4.first()?;
            let (request, reply) = if next == 1 { (8, 0) } else { (128, 129) };
            if kind != request && kind != reply {
                return None;
            }
            let id = be16(l4, 4)?;
            (Protocol::Icmp, id, id, 0, kind == request, kind == reply)
        }
        _ => return None,
    };
    Some(Parsed {
        protocol,
        src,
        dst,
        sport,
        dport,
        flags,
        opens,
        reply,
    })
}
