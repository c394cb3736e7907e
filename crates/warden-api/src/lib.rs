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
