//! The PROXY protocol (HAProxy's, versions 1 and 2): the header a TCP proxy writes before the
//! connection's own bytes, naming the client. Read only from `trusted_proxies`; parsed here
//! without I/O from whatever bytes have arrived.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Version 2's signature.
const V2: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";
/// Version 1's start.
const V1: &[u8] = b"PROXY ";
/// A version 1 header is at most this long, `\r\n` included.
const V1_MAX: usize = 107;
/// The longest version 2 header read (addresses and TLVs); longer ones are refused.
pub const V2_MAX: usize = 16 + 512;

/// What the first bytes of a connection are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Header {
    /// Not a PROXY header: the connection's own bytes begin at once.
    Absent,
    /// Could still be one: read more.
    Incomplete,
    /// A header of `len` bytes naming `client` (`None`: `LOCAL`, `UNKNOWN` or a family without
    /// an address, such as a health check from the proxy itself).
    Present {
        /// Bytes to consume.
        len: usize,
        /// The client's address.
        client: Option<IpAddr>,
    },
    /// Starts like a header but is not a valid one: the connection is refused.
    Invalid,
}

/// Reads a header from the start of `buf`.
pub fn parse(buf: &[u8]) -> Header {
    let v2_prefix = buf.len().min(V2.len());
    if buf.get(..v2_prefix) == V2.get(..v2_prefix) && !buf.is_empty() {
        return parse_v2(buf);
    }
    let v1_prefix = buf.len().min(V1.len());
    if buf.get(..v1_prefix) == V1.get(..v1_prefix) && !buf.is_empty() {
        return parse_v1(buf);
    }
    if buf.is_empty() {
        Header::Incomplete
    } else {
        Header::Absent
    }
}

fn parse_v1(buf: &[u8]) -> Header {
    let Some(end) = buf.windows(2).position(|w| w == b"\r\n") else {
        return if buf.len() >= V1_MAX {
            Header::Invalid
        } else {
            Header::Incomplete
        };
    };
    if end + 2 > V1_MAX {
        return Header::Invalid;
    }
    let Some(line) = buf
        .get(V1.len()..end)
        .and_then(|l| std::str::from_utf8(l).ok())
    else {
        return Header::Invalid;
    };
    let parts: Vec<&str> = line.split(' ').collect();
    let client = match parts.as_slice() {
        ["UNKNOWN", ..] => None,
        ["TCP4", src, dst, sport, dport] => {
            match (
                src.parse::<Ipv4Addr>(),
                dst.parse::<Ipv4Addr>(),
                port(sport),
                port(dport),
            ) {
                (Ok(src), Ok(_), true, true) => Some(IpAddr::V4(src)),
                _ => return Header::Invalid,
            }
        }
        ["TCP6", src, dst, sport, dport] => {
            match (
                src.parse::<Ipv6Addr>(),
                dst.parse::<Ipv6Addr>(),
                port(sport),
                port(dport),
            ) {
                (Ok(src), Ok(_), true, true) => Some(IpAddr::V6(src)),
                _ => return Header::Invalid,
            }
        }
        _ => return Header::Invalid,
    };
    Header::Present {
        len: end + 2,
        client,
    }
}

fn port(text: &str) -> bool {
    !text.is_empty()
        && text.len() <= 5
        && text.bytes().all(|b| b.is_ascii_digit())
        && text.parse::<u16>().is_ok()
}

fn parse_v2(buf: &[u8]) -> Header {
    let (Some(&version_command), Some(&family), Some(len)) = (
        buf.get(12),
        buf.get(13),
        buf.get(14..16)
            .and_then(|b| <[u8; 2]>::try_from(b).ok())
            .map(|b| usize::from(u16::from_be_bytes(b))),
    ) else {
        return Header::Incomplete;
    };
    if version_command >> 4 != 2 || 16 + len > V2_MAX {
        return Header::Invalid;
    }
    let Some(body) = buf.get(16..16 + len) else {
        return Header::Incomplete;
    };
    let client = match (version_command & 0x0f, family >> 4) {
        // LOCAL: the proxy speaking for itself.
        (0, _) => None,
        (1, 1) => match body.get(..4).and_then(|a| <[u8; 4]>::try_from(a).ok()) {
            Some(a) => Some(IpAddr::from(a)),
            None => return Header::Invalid,
        },
        (1, 2) => match body.get(..16).and_then(|a| <[u8; 16]>::try_from(a).ok()) {
            Some(a) => Some(IpAddr::from(a)),
            None => return Header::Invalid,
        },
        // UNSPEC or a unix socket: no address to name.
        (1, 0 | 3) => None,
        _ => return Header::Invalid,
    };
    Header::Present {
        len: 16 + len,
        client,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn version_one() {
        let h = b"PROXY TCP4 192.0.2.7 10.0.0.1 56324 443\r\nGET / HTTP/1.1\r\n";
        assert_eq!(
            parse(h),
            Header::Present {
                len: 41,
                client: Some("192.0.2.7".parse().unwrap())
            }
        );
        let h = b"PROXY TCP6 2001:db8::1 2001:db8::2 1 2\r\n";
        assert_eq!(
            parse(h),
            Header::Present {
                len: h.len(),
                client: Some("2001:db8::1".parse().unwrap())
            }
        );
        assert_eq!(
            parse(b"PROXY UNKNOWN\r\n"),
            Header::Present {
                len: 15,
                client: None
            }
        );
        assert_eq!(parse(b"PROXY TCP4 192.0.2.7"), Header::Incomplete);
        assert_eq!(parse(b"PRO"), Header::Incomplete);
        assert_eq!(parse(b"PROXY TCP4 nope 10.0.0.1 1 2\r\n"), Header::Invalid);
        assert_eq!(
            parse(b"PROXY TCP4 192.0.2.7 10.0.0.1 99999 2\r\n"),
            Header::Invalid
        );
        assert_eq!(parse(&[b'P'; 200]), Header::Absent);
        let long: Vec<u8> = b"PROXY ".iter().copied().chain([b'x'; 200]).collect();
        assert_eq!(parse(&long), Header::Invalid);
        assert_eq!(parse(b"POST /graphql HTTP/1.1\r\n"), Header::Absent);
        assert_eq!(parse(b"GET / HTTP/1.1\r\n"), Header::Absent);
    }

    #[test]
    fn version_two() {
        let mut h = V2.to_vec();
        h.extend([
            0x21, 0x11, 0, 12, 192, 0, 2, 9, 10, 0, 0, 1, 0xdc, 0x04, 0x01, 0xbb,
        ]);
        h.extend(b"GET /");
        assert_eq!(
            parse(&h),
            Header::Present {
                len: 28,
                client: Some("192.0.2.9".parse().unwrap())
            }
        );
        assert_eq!(parse(h.get(..20).unwrap()), Header::Incomplete);
        let mut local = V2.to_vec();
        local.extend([0x20, 0x00, 0, 0]);
        assert_eq!(
            parse(&local),
            Header::Present {
                len: 16,
                client: None
            }
        );
        let mut bad = V2.to_vec();
        bad.extend([0x11, 0x11, 0, 12]);
        assert_eq!(parse(&bad), Header::Invalid, "version 1 in a v2 header");
        let mut huge = V2.to_vec();
        huge.extend([0x21, 0x11, 0xff, 0xff]);
        assert_eq!(parse(&huge), Header::Invalid);
    }

    proptest! {
        /// Any bytes: never a panic, and a header's length never passes what was read.
        #[test]
        fn any_bytes_parse(bytes in proptest::collection::vec(any::<u8>(), 0..300), v2 in any::<bool>()) {
            let mut input = if v2 { V2.to_vec() } else { b"PROXY ".to_vec() };
            input.extend(&bytes);
            for buf in [&bytes[..], &input[..]] {
                if let Header::Present { len, .. } = parse(buf) {
                    prop_assert!(len <= buf.len());
                }
            }
        }
    }
}
