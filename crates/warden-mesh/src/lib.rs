//! Warden's WireGuard mesh.
//!
//! The core does no I/O and reads no clock: `rules` turns `connect` policies into network
//! rules, `netmap` compiles nodes and rules into each node's peers and inbound filter,
//! `filter` is the stateful packet filter a destination enforces (time passed in), `range`
//! hands out overlay addresses and `key` parses WireGuard keys. The `dataplane` feature adds
//! the agent's userspace WireGuard device (gotatun on a TUN interface) with the filter in
//! its packet path.
//!
//! Threat model: a node is trusted to hold its own private key and nothing else. Whatever a
//! source sends, its destination's filter decides: only flows a policy permits may start,
//! only replies to flows the destination tracks may follow, and a rule change drops the
//! flows it no longer permits. WireGuard itself binds each overlay address to one key, so
//! a source cannot claim another's address.

pub mod filter;
pub mod key;
pub mod netmap;
pub mod range;
pub mod rules;

#[cfg(feature = "dataplane")]
pub mod dataplane;

pub use key::{KeyError, PublicKey};
pub use netmap::{FilterRule, Netmap, Node, NodeKind, NodeMap, PeerEntry};
pub use range::{MeshRanges, RangeError};
pub use rules::{
    ConnectRule, Effect, Ports, Principal, Protocol, Resource, RuleError, connect_rules,
};
