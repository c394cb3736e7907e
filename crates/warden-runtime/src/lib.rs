//! Warden's capability services as the server runs them, below any route: configuration, the
//! certificate authorities, the running audit log and its sinks, the policy engine and the
//! authorization every caller passes, the compiled mesh, the SSH gate the proxy asks,
//! recordings, timers, metrics, the edge that guards every listener, and the request context
//! every handler starts from ([`request::App`]).
//!
//! The API (`warden-api`), the browser pages (`warden-web`) and the composition root
//! (`warden-server`) stand on this crate; it names none of them.

pub mod audit;
pub mod authz;
pub mod ca;
pub mod compliance;
pub mod config;
pub mod edge;
pub mod integrity;
pub mod logging;
pub mod mesh;
pub mod metrics;
pub mod policy;
pub mod recordings;
pub mod request;
pub mod sink;
pub mod ssh_gate;
pub mod timers;

/// Why the server could not start, in one line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct StartError(pub String);
