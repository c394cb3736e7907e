//! The client behind a proxy: `trusted_proxies` names the peers (addresses or CIDRs) whose
//! `Forwarded` (RFC 7239) or `X-Forwarded-For` headers say who the client is. From any other
//! peer both headers are ignored, so nobody can pick their own rate-limit bucket or the source
//! an audit event names by sending a header.
//!
//! The chain is read from the right, the hop nearest Warden first: addresses of trusted proxies
//! are skipped, and the first one that is not trusted is the client. A header from a trusted
//! proxy that does not parse is ignored whole (the proxy's own address stands), and so is a
//! chain longer than [`MAX_HOPS`].

use std::net::IpAddr;

use ipnet::IpNet;

/// The most hops read, from the right; hops further left are not looked at.
pub const MAX_HOPS: usize = 32;

/// Which header the trusted proxies write. Only that one is read: a proxy that appends to
/// `X-Forwarded-For` passes a client's own `Forwarded` header through untouched, so believing
/// both would let the client choose its address.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ForwardedHeader {
    /// `X-Forwarded-For: client, proxy1, …` (nginx, HAProxy, most load balancers).
    #[default]
    XForwardedFor,
    /// `Forwarded: for=client, for=proxy1` (RFC 7239).
    Forwarded,
}

impl ForwardedHeader {
    /// The header's name, lowercase.
    pub fn name(self) -> &'static str {
        match self {
            ForwardedHeader::XForwardedFor => "x-forwarded-for",
            ForwardedHeader::Forwarded => "forwarded",
        }
    }

    /// Parses `x-forwarded-for` or `forwarded` (any case).
    pub fn parse(text: &str) -> Result<ForwardedHeader, TrustedProxiesError> {
        match text.trim().to_ascii_lowercase().as_str() {
            "x-forwarded-for" => Ok(ForwardedHeader::XForwardedFor),
            "forwarded" => Ok(ForwardedHeader::Forwarded),
            other => Err(TrustedProxiesError(format!(
                "invalid `forwarded_header` `{}`: use x-forwarded-for or forwarded",
                other.chars().take(40).collect::<String>()
            ))),
        }
    }

    /// The address one element of the header names, if it names one.
    pub fn element(self, text: &str) -> Option<IpAddr> {
        match self {
            ForwardedHeader::XForwardedFor => node_address(text.trim()),
            ForwardedHeader::Forwarded => forwarded_for(text),
        }
    }
}

/// The proxies whose forwarding header is believed, and which header that is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies {
    nets: Vec<IpNet>,
    header: ForwardedHeader,
}

/// A `trusted_proxies` or `forwarded_header` setting that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct TrustedProxiesError(String);

impl TrustedProxies {
    /// Parses addresses (`10.0.0.7`, `::1`) and CIDRs (`10.0.0.0/8`); the proxies write
    /// `header`.
    pub fn parse(
        entries: &[String],
        header: ForwardedHeader,
    ) -> Result<TrustedProxies, TrustedProxiesError> {
        let nets = entries
            .iter()
            .map(|e| {
                let e = e.trim();
                e.parse::<IpNet>()
                    .or_else(|_| e.parse::<IpAddr>().map(IpNet::from))
                    .map_err(|_| {
                        TrustedProxiesError(format!(
                            "invalid entry `{}` in `trusted_proxies`: use an address or a CIDR, like 10.0.0.0/8 or ::1",
                            e.chars().take(60).collect::<String>()
                        ))
                    })
            })
            .collect::<Result<_, _>>()?;
        Ok(TrustedProxies { nets, header })
    }

    /// The header the proxies write.
    pub fn header(&self) -> ForwardedHeader {
        self.header
    }

    /// Whether none are configured.
    pub fn is_empty(&self) -> bool {
        self.nets.is_empty()
    }

    /// Whether `ip` is a trusted proxy.
    pub fn trusts(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        self.nets.iter().any(|n| n.contains(&ip))
    }

    /// The client's address for a request that came from `peer` with these values of the
    /// configured header, in the order they came (empty: no header). The hops are read from
    /// the right, the nearest first: a trusted proxy's hop is passed over, the first untrusted
    /// one is the client. An element that does not parse ends the walk where it is, so a
    /// client's garbage at the left cannot hide the address its proxy appended.
    pub fn client(&self, peer: IpAddr, values: &[&str]) -> IpAddr {
        if !self.trusts(peer) {
            return peer;
        }
        let mut client = peer;
        let hops = values.iter().rev().flat_map(|v| v.rsplit(','));
        for element in hops.take(MAX_HOPS) {
            let Some(hop) = self.header.element(element) else {
                break;
            };
            client = hop;
            if !self.trusts(hop) {
                break;
            }
        }
        client
    }
}

/// IPv4-mapped IPv6 addresses as the IPv4 address they are.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        IpAddr::V4(_) => ip,
    }
}

/// One `Forwarded` element's `for` parameter (`for=192.0.2.60;proto=http`,
/// `for="[2001:db8::1]:4711"`); `None` when it has none, two, or an obfuscated or `unknown`
/// one.
fn forwarded_for(element: &str) -> Option<IpAddr> {
    let mut found = None;
    for pair in element.split(';') {
        let (key, value) = pair.split_once('=')?;
        if key.trim().eq_ignore_ascii_case("for") {
            if found.is_some() {
                return None;
            }
            let value = value.trim();
            let value = match value.strip_prefix('"') {
                Some(rest) => rest.strip_suffix('"')?,
                None => value,
            };
            found = Some(node_address(value)?);
        }
    }
    found
}

/// A node as RFC 7239 and common proxies write it: `192.0.2.1`, `192.0.2.1:4711`,
/// `2001:db8::1`, `[2001:db8::1]`, `[2001:db8::1]:4711`.
fn node_address(text: &str) -> Option<IpAddr> {
    if let Some(rest) = text.strip_prefix('[') {
        let (inside, after) = rest.split_once(']')?;
        if !(after.is_empty() || after.strip_prefix(':').is_some_and(valid_port)) {
            return None;
        }
        return inside.parse::<std::net::Ipv6Addr>().ok().map(IpAddr::V6);
    }
    if let Ok(ip) = text.parse::<IpAddr>() {
        return Some(canonical(ip));
    }
    let (host, port) = text.rsplit_once(':')?;
    if !valid_port(port) {
        return None;
    }
    host.parse::<std::net::Ipv4Addr>().ok().map(IpAddr::V4)
}

fn valid_port(port: &str) -> bool {
    !port.is_empty() && port.len() <= 5 && port.parse::<u16>().is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn trusted(entries: &[&str], header: ForwardedHeader) -> TrustedProxies {
        let entries: Vec<String> = entries.iter().map(|e| (*e).to_owned()).collect();
        TrustedProxies::parse(&entries, header).unwrap()
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    const XFF: ForwardedHeader = ForwardedHeader::XForwardedFor;
    const FWD: ForwardedHeader = ForwardedHeader::Forwarded;

    #[test]
    fn headers_from_an_untrusted_peer_are_ignored() {
        let t = trusted(&["10.0.0.0/8"], XFF);
        assert_eq!(t.client(ip("192.0.2.1"), &["203.0.113.9"]), ip("192.0.2.1"));
        let none = TrustedProxies::default();
        assert_eq!(
            none.client(ip("10.0.0.1"), &["203.0.113.9"]),
            ip("10.0.0.1")
        );
    }

    #[test]
    fn the_first_untrusted_hop_from_the_right_is_the_client() {
        let t = trusted(&["10.0.0.0/8", "::1"], XFF);
        // A client that prepends its own idea of itself gets nowhere: 203.0.113.9 is what the
        // trusted proxy saw.
        let chain = ["198.51.100.7, 203.0.113.9, 10.0.0.2"];
        assert_eq!(t.client(ip("10.0.0.1"), &chain), ip("203.0.113.9"));
        assert_eq!(t.client(ip("::1"), &["10.0.0.3, 10.0.0.2"]), ip("10.0.0.3"));
        // Garbage at the left does not hide the address the proxy appended.
        assert_eq!(
            t.client(ip("10.0.0.1"), &["x", "203.0.113.9"]),
            ip("203.0.113.9")
        );
        assert_eq!(
            t.client(ip("10.0.0.1"), &["x, 203.0.113.9"]),
            ip("203.0.113.9")
        );
        // Garbage at the right (from the trusted proxy itself) leaves the proxy.
        assert_eq!(
            t.client(ip("10.0.0.1"), &["203.0.113.9, x"]),
            ip("10.0.0.1")
        );
        let two = ["198.51.100.7", "10.0.0.5"];
        assert_eq!(t.client(ip("10.0.0.1"), &two), ip("198.51.100.7"));
    }

    #[test]
    fn only_the_configured_header_is_read_in_its_forms() {
        let t = trusted(&["127.0.0.1"], FWD);
        let one = ["for=192.0.2.60;proto=http;by=203.0.113.43"];
        assert_eq!(t.client(ip("127.0.0.1"), &one), ip("192.0.2.60"));
        let v6 = ["for=\"[2001:db8:cafe::17]:4711\""];
        assert_eq!(t.client(ip("127.0.0.1"), &v6), ip("2001:db8:cafe::17"));
        let two = ["For=\"192.0.2.43:47011\", for=127.0.0.1"];
        assert_eq!(t.client(ip("127.0.0.1"), &two), ip("192.0.2.43"));
        for opaque in [
            "for=unknown",
            "for=_hidden",
            "proto=https",
            "for=1.2.3.4;for=5.6.7.8",
        ] {
            assert_eq!(
                t.client(ip("127.0.0.1"), &[opaque]),
                ip("127.0.0.1"),
                "{opaque}"
            );
        }
        // An X-Forwarded-For reading of a Forwarded element names nothing.
        let x = trusted(&["127.0.0.1"], XFF);
        assert_eq!(
            x.client(ip("127.0.0.1"), &["for=192.0.2.60"]),
            ip("127.0.0.1")
        );
        assert_eq!(ForwardedHeader::parse("Forwarded").unwrap(), FWD);
        assert_eq!(
            ForwardedHeader::parse("x-real-ip").unwrap_err().to_string(),
            "invalid `forwarded_header` `x-real-ip`: use x-forwarded-for or forwarded"
        );
    }

    #[test]
    fn mapped_addresses_and_long_chains() {
        let t = trusted(&["127.0.0.0/8"], XFF);
        assert_eq!(
            t.client(ip("::ffff:127.0.0.1"), &["::ffff:192.0.2.5"]),
            ip("192.0.2.5")
        );
        // Only the nearest MAX_HOPS hops are read.
        let mut long = vec!["192.0.2.1"];
        long.extend(std::iter::repeat_n("127.0.0.5", MAX_HOPS));
        let long = long.join(",");
        assert_eq!(t.client(ip("127.0.0.1"), &[long.as_str()]), ip("127.0.0.5"));
    }

    #[test]
    fn bad_entries_are_refused_with_their_text() {
        assert_eq!(
            TrustedProxies::parse(&["10.0.0.0/33".to_owned()], XFF)
                .unwrap_err()
                .to_string(),
            "invalid entry `10.0.0.0/33` in `trusted_proxies`: use an address or a CIDR, like 10.0.0.0/8 or ::1"
        );
        assert!(TrustedProxies::parse(&["proxy.example".to_owned()], XFF).is_err());
        assert!(trusted(&["10.1.2.3"], XFF).trusts(ip("10.1.2.3")));
    }

    proptest! {
        /// Whatever the header says, the answer is the peer or an address one of its elements
        /// names, and an untrusted peer is always itself.
        #[test]
        fn the_client_is_the_peer_or_named_in_the_header(
            value in "[0-9a-zA-Z:.,;=\" _\\[\\]]{0,80}",
            forwarded in any::<bool>(),
            trusted_peer in any::<bool>(),
        ) {
            let header = if forwarded { FWD } else { XFF };
            let t = trusted(&["127.0.0.0/8"], header);
            let peer = if trusted_peer { ip("127.0.0.1") } else { ip("192.0.2.1") };
            let client = t.client(peer, &[value.as_str()]);
            if !trusted_peer {
                prop_assert_eq!(client, peer);
            } else if client != peer {
                let named = value.split(',').any(|e| header.element(e) == Some(client));
                prop_assert!(named);
            }
        }
    }
}
