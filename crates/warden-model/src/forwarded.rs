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

/// The longest chain read; anything longer is not believed.
pub const MAX_HOPS: usize = 32;

/// The proxies whose forwarding headers are believed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies {
    nets: Vec<IpNet>,
}

/// A `trusted_proxies` entry that is neither an address nor a CIDR.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid entry `{0}` in `trusted_proxies`: use an address or a CIDR, like 10.0.0.0/8 or ::1"
)]
pub struct TrustedProxiesError(String);

impl TrustedProxies {
    /// Parses addresses (`10.0.0.7`, `::1`) and CIDRs (`10.0.0.0/8`).
    pub fn parse(entries: &[String]) -> Result<TrustedProxies, TrustedProxiesError> {
        let nets = entries
            .iter()
            .map(|e| {
                let e = e.trim();
                e.parse::<IpNet>()
                    .or_else(|_| e.parse::<IpAddr>().map(IpNet::from))
                    .map_err(|_| TrustedProxiesError(e.chars().take(60).collect()))
            })
            .collect::<Result<_, _>>()?;
        Ok(TrustedProxies { nets })
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
    /// `Forwarded` and `X-Forwarded-For` headers, in the order they came (empty: no header).
    pub fn client(&self, peer: IpAddr, forwarded: &[&str], x_forwarded_for: &[&str]) -> IpAddr {
        if !self.trusts(peer) {
            return peer;
        }
        let chain = if forwarded.is_empty() {
            x_forwarded_for_chain(x_forwarded_for)
        } else {
            forwarded_chain(forwarded)
        };
        let Some(chain) = chain else {
            return peer;
        };
        let mut client = peer;
        for hop in chain.iter().rev() {
            client = *hop;
            if !self.trusts(*hop) {
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

/// Every value, in order, as one comma-separated list.
fn joined<'a>(values: &[&'a str]) -> Vec<&'a str> {
    values.iter().flat_map(|v| v.split(',')).collect()
}

/// `X-Forwarded-For: client, proxy1, proxy2`: every element must be an address.
pub fn x_forwarded_for_chain(values: &[&str]) -> Option<Vec<IpAddr>> {
    let items = joined(values);
    if items.is_empty() || items.len() > MAX_HOPS {
        return None;
    }
    items
        .into_iter()
        .map(|item| node_address(item.trim()))
        .collect()
}

/// `Forwarded: for=192.0.2.60;proto=http, for="[2001:db8::1]:4711"`: each element's `for`
/// parameter. An element without `for`, or whose `for` is obfuscated or `unknown`, ends the
/// chain's usefulness: nothing left of it can be believed, so the chain is refused.
pub fn forwarded_chain(values: &[&str]) -> Option<Vec<IpAddr>> {
    let items = joined(values);
    if items.is_empty() || items.len() > MAX_HOPS {
        return None;
    }
    let mut chain = Vec::with_capacity(items.len());
    for element in items {
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
        chain.push(found?);
    }
    Some(chain)
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

    /// The request's forwarding headers, as `client` takes them.
    struct Headers<'a> {
        forwarded: Vec<&'a str>,
        xff: Vec<&'a str>,
    }

    fn headers<'a>(pairs: &[(&str, &'a str)]) -> Headers<'a> {
        let pick = |name: &str| {
            pairs
                .iter()
                .filter(|(k, _)| *k == name)
                .map(|(_, v)| *v)
                .collect()
        };
        Headers {
            forwarded: pick("forwarded"),
            xff: pick("x-forwarded-for"),
        }
    }

    fn client(t: &TrustedProxies, peer: IpAddr, h: &Headers<'_>) -> IpAddr {
        t.client(peer, &h.forwarded, &h.xff)
    }

    fn trusted(entries: &[&str]) -> TrustedProxies {
        TrustedProxies::parse(&entries.iter().map(|e| (*e).to_owned()).collect::<Vec<_>>()).unwrap()
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn headers_from_an_untrusted_peer_are_ignored() {
        let t = trusted(&["10.0.0.0/8"]);
        let h = headers(&[("x-forwarded-for", "203.0.113.9")]);
        assert_eq!(client(&t, ip("192.0.2.1"), &h), ip("192.0.2.1"));
        assert_eq!(
            client(&TrustedProxies::default(), ip("10.0.0.1"), &h),
            ip("10.0.0.1")
        );
    }

    #[test]
    fn the_first_untrusted_hop_from_the_right_is_the_client() {
        let t = trusted(&["10.0.0.0/8", "::1"]);
        let h = headers(&[("x-forwarded-for", "198.51.100.7, 203.0.113.9, 10.0.0.2")]);
        // A client that prepends its own idea of itself gets nowhere: 203.0.113.9 is what the
        // trusted proxy saw.
        assert_eq!(client(&t, ip("10.0.0.1"), &h), ip("203.0.113.9"));
        let h = headers(&[("x-forwarded-for", "10.0.0.3, 10.0.0.2")]);
        assert_eq!(client(&t, ip("::1"), &h), ip("10.0.0.3"));
        let h = headers(&[("x-forwarded-for", "a"), ("x-forwarded-for", "203.0.113.9")]);
        assert_eq!(client(&t, ip("10.0.0.1"), &h), ip("10.0.0.1"));
        let h = headers(&[
            ("x-forwarded-for", "198.51.100.7"),
            ("x-forwarded-for", "10.0.0.5"),
        ]);
        assert_eq!(client(&t, ip("10.0.0.1"), &h), ip("198.51.100.7"));
    }

    #[test]
    fn forwarded_wins_over_x_forwarded_for_and_reads_its_forms() {
        let t = trusted(&["127.0.0.1"]);
        let h = headers(&[
            ("forwarded", "for=192.0.2.60;proto=http;by=203.0.113.43"),
            ("x-forwarded-for", "198.51.100.1"),
        ]);
        assert_eq!(client(&t, ip("127.0.0.1"), &h), ip("192.0.2.60"));
        let h = headers(&[("forwarded", "for=\"[2001:db8:cafe::17]:4711\"")]);
        assert_eq!(client(&t, ip("127.0.0.1"), &h), ip("2001:db8:cafe::17"));
        let h = headers(&[("forwarded", "For=\"192.0.2.43:47011\", for=127.0.0.1")]);
        assert_eq!(client(&t, ip("127.0.0.1"), &h), ip("192.0.2.43"));
        let h = headers(&[("forwarded", "for=unknown")]);
        assert_eq!(client(&t, ip("127.0.0.1"), &h), ip("127.0.0.1"));
        let h = headers(&[("forwarded", "for=_hidden, for=192.0.2.1")]);
        assert_eq!(client(&t, ip("127.0.0.1"), &h), ip("127.0.0.1"));
        let h = headers(&[("forwarded", "proto=https")]);
        assert_eq!(client(&t, ip("127.0.0.1"), &h), ip("127.0.0.1"));
    }

    #[test]
    fn mapped_addresses_and_long_chains() {
        let t = trusted(&["127.0.0.0/8"]);
        let h = headers(&[("x-forwarded-for", "::ffff:192.0.2.5")]);
        assert_eq!(client(&t, ip("::ffff:127.0.0.1"), &h), ip("192.0.2.5"));
        let long = vec!["192.0.2.1"; MAX_HOPS + 1].join(",");
        let h = headers(&[("x-forwarded-for", long.as_str())]);
        assert_eq!(client(&t, ip("127.0.0.1"), &h), ip("127.0.0.1"));
    }

    #[test]
    fn bad_entries_are_refused_with_their_text() {
        assert_eq!(
            TrustedProxies::parse(&["10.0.0.0/33".to_owned()])
                .unwrap_err()
                .to_string(),
            "invalid entry `10.0.0.0/33` in `trusted_proxies`: use an address or a CIDR, like 10.0.0.0/8 or ::1"
        );
        assert!(TrustedProxies::parse(&["proxy.example".to_owned()]).is_err());
        assert!(trusted(&["10.1.2.3"]).trusts(ip("10.1.2.3")));
    }

    proptest! {
        /// Whatever the headers say, the answer is the peer or an address that appears in them,
        /// and an untrusted peer is always itself.
        #[test]
        fn the_client_is_the_peer_or_named_in_the_headers(
            xff in "[0-9a-f:., \\[\\]]{0,80}",
            fwd in "[0-9a-zA-Z:.,;=\" _\\[\\]]{0,80}",
            trusted_peer in any::<bool>(),
        ) {
            let t = trusted(&["127.0.0.0/8"]);
            let (f, x) = ([fwd.as_str()], [xff.as_str()]);
            let peer = if trusted_peer { ip("127.0.0.1") } else { ip("192.0.2.1") };
            let client = t.client(peer, &f, &x);
            if !trusted_peer {
                prop_assert_eq!(client, peer);
            } else if client != peer {
                let named = forwarded_chain(&f)
                    .into_iter()
                    .chain(x_forwarded_for_chain(&x))
                    .flatten()
                    .any(|a| a == client);
                prop_assert!(named);
            }
        }
    }
}
