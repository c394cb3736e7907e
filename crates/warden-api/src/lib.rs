//! Warden's APIs over HTTP: GraphQL at `/graphql` (the schema and its resolvers, one module
//! per capability), and the machine-facing JSON endpoints beside it: the host agent's join and
//! renewal, mesh enrollment and maps, SCIM 2.0, and scan imports. [`accounts`] is the sign-in
//! pages' way to the accounts they act on, before there is an API caller.
//!
//! Every operation goes through [`warden_runtime::authz`] before it touches data.

pub mod accounts;
pub mod agent;
pub mod compliance;
pub mod graphql;
pub mod mesh;
pub mod scim;
pub mod vulns;

// The services, under the names the modules use.
use warden_runtime::{audit, ca, config, edge, policy, recordings, request};

/// A time given as an argument (`since`, `from`, …), in RFC 3339; the refusal names the
/// argument and shows the form. Every API and endpoint argument of a time is read here.
pub fn rfc3339(field: &str, value: &str) -> Result<warden_model::Timestamp, String> {
    humantime::parse_rfc3339_weak(value)
        .map(warden_model::Timestamp::from_system)
        .map_err(|_| {
            format!("invalid `{field}` time `{value}`: use RFC 3339, like 2026-11-29T10:00:00Z")
        })
}
