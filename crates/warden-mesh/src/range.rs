//! The overlay's address ranges and how nodes get their addresses.
//!
//! A node's place in the mesh is one number, its offset: its IPv4 address is the IPv4
//! range's base plus the offset, and its IPv6 address the IPv6 range's base plus the same
//! offset. Two nodes never share an offset, so they never share either address.

use std::collections::BTreeSet;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use ipnet::{Ipv4Net, Ipv6Net};
use serde::{Deserialize, Serialize};

/// The mesh's IPv4 and IPv6 ranges.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct MeshRanges {
    ipv4: Ipv4Net,
    ipv6: Ipv6Net,
}

/// Why a range or an allocation was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RangeError {
    /// Not a CIDR block.
    #[error("`{0}` is not an address range: write it as a CIDR block such as `100.64.0.0/10`")]
    Malformed(String),
    /// The IPv4 range is outside the shared (CGNAT) and private blocks.
    #[error(
        "the mesh IPv4 range `{0}` must lie inside 100.64.0.0/10 (shared address space) or a private block (10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16)"
    )]
    NotPrivateV4(Ipv4Net),
    /// The IPv6 range is outside the unique local block.
    #[error("the mesh IPv6 range `{0}` must lie inside fc00::/7 (unique local addresses)")]
    NotPrivateV6(Ipv6Net),
    /// A range too small to hold a node besides its network and broadcast addresses.
    #[error("the mesh IPv4 range `{0}` is too small: use a /30 or larger")]
    TooSmall(Ipv4Net),
    /// The IPv6 range has fewer addresses than the IPv4 range.
    #[error("the mesh IPv6 range `{v6}` must hold at least as many addresses as `{v4}`")]
    V6SmallerThanV4 {
        /// The IPv4 range.
        v4: Ipv4Net,
        /// The IPv6 range.
        v6: Ipv6Net,
    },
    /// Every address is taken.
    #[error(
        "the mesh address range {0} is exhausted: every address is assigned; remove nodes or widen mesh.ipv4_range"
    )]
    Exhausted(Ipv4Net),
    /// A block the mesh range overlaps.
    #[error(
        "the mesh range {mesh} overlaps {other}{on}: choose a mesh range no local network uses"
    )]
    Overlaps {
        /// The mesh range.
        mesh: String,
        /// The overlapping network.
        other: String,
        /// Where it is, such as ` on eth0`.
        on: String,
    },
}

/// The shared address space of RFC 6598, Warden's default IPv4 range.
pub const DEFAULT_IPV4: &str = "100.64.0.0/10";
/// Warden's default unique local IPv6 range.
pub const DEFAULT_IPV6: &str = "fd7a:5744:4e00::/48";

impl Default for MeshRanges {
    fn default() -> MeshRanges {
        MeshRanges {
            ipv4: Ipv4Net::new(Ipv4Addr::new(100, 64, 0, 0), 10).unwrap_or_default(),
            ipv6: Ipv6Net::new(Ipv6Addr::new(0xfd7a, 0x5744, 0x4e00, 0, 0, 0, 0, 0), 48)
                .unwrap_or_default(),
        }
    }
}

fn parse_net<T: FromStr>(s: &str) -> Result<T, RangeError> {
    s.trim()
        .parse()
        .map_err(|_| RangeError::Malformed(s.chars().take(60).collect()))
}

impl MeshRanges {
    /// Checks and combines the two ranges (host bits are cleared).
    pub fn new(ipv4: &str, ipv6: &str) -> Result<MeshRanges, RangeError> {
        let v4: Ipv4Net = parse_net::<Ipv4Net>(ipv4)?.trunc();
        let v6: Ipv6Net = parse_net::<Ipv6Net>(ipv6)?.trunc();
        let private4 = [
            "100.64.0.0/10",
            "10.0.0.0/8",
            "172.16.0.0/12",
            "192.168.0.0/16",
        ];
        if !private4
            .iter()
            .filter_map(|p| p.parse::<Ipv4Net>().ok())
            .any(|p| p.contains(&v4))
        {
            return Err(RangeError::NotPrivateV4(v4));
        }
        let ula: Ipv6Net = "fc00::/7"
            .parse()
            .map_err(|_| RangeError::NotPrivateV6(v6))?;
        if !ula.contains(&v6) {
            return Err(RangeError::NotPrivateV6(v6));
        }
        if v4.prefix_len() > 30 {
            return Err(RangeError::TooSmall(v4));
        }
        if 128 - u32::from(v6.prefix_len()) < 32 - u32::from(v4.prefix_len()) {
            return Err(RangeError::V6SmallerThanV4 { v4, v6 });
        }
        Ok(MeshRanges { ipv4: v4, ipv6: v6 })
    }

    /// The IPv4 range.
    pub fn ipv4(&self) -> Ipv4Net {
        self.ipv4
    }

    /// The IPv6 range.
    pub fn ipv6(&self) -> Ipv6Net {
        self.ipv6
    }

    /// How many offsets there are (the network and broadcast addresses are never given).
    pub fn capacity(&self) -> u32 {
        let size = 1u64 << (32 - u32::from(self.ipv4.prefix_len()));
        u32::try_from(size.saturating_sub(2)).unwrap_or(u32::MAX)
    }

    /// The addresses of offset `offset` (1-based), if the range holds it.
    pub fn addresses(&self, offset: u32) -> Option<(Ipv4Addr, Ipv6Addr)> {
        if offset == 0 || offset > self.capacity() {
            return None;
        }
        let v4 = u32::from(self.ipv4.network()).checked_add(offset)?;
        let v6 = u128::from(self.ipv6.network()).checked_add(u128::from(offset))?;
        Some((Ipv4Addr::from(v4), Ipv6Addr::from(v6)))
    }

    /// The offset of `v4`, if it is a node address of this range.
    pub fn offset_of(&self, v4: Ipv4Addr) -> Option<u32> {
        let offset = u32::from(v4).checked_sub(u32::from(self.ipv4.network()))?;
        (offset >= 1 && offset <= self.capacity()).then_some(offset)
    }

    /// The lowest offset not in `used`.
    pub fn allocate(&self, used: &BTreeSet<u32>) -> Result<u32, RangeError> {
        let mut want = 1u32;
        for &taken in used.range(1..) {
            if taken > want {
                break;
            }
            if taken == want {
                want = want.saturating_add(1);
            }
        }
        if want > self.capacity() {
            return Err(RangeError::Exhausted(self.ipv4));
        }
        Ok(want)
    }

    /// Refuses a mesh range that overlaps `other`, a network already on the machine (`on`
    /// names where, such as an interface).
    pub fn check_overlap(&self, other: ipnet::IpNet, on: &str) -> Result<(), RangeError> {
        let overlaps = match other {
            ipnet::IpNet::V4(o) => {
                o.contains(&self.ipv4.network()) || self.ipv4.contains(&o.network())
            }
            ipnet::IpNet::V6(o) => {
                o.contains(&self.ipv6.network()) || self.ipv6.contains(&o.network())
            }
        };
        if !overlaps {
            return Ok(());
        }
        let mesh = match other {
            ipnet::IpNet::V4(_) => self.ipv4.to_string(),
            ipnet::IpNet::V6(_) => self.ipv6.to_string(),
        };
        Err(RangeError::Overlaps {
            mesh,
            other: other.to_string(),
            on: if on.is_empty() {
                String::new()
            } else {
                format!(" on {on}")
            },
        })
    }
}
