//! The GraphQL API at `/graphql`: the schema, its types and resolvers.
//!
//! Every resolver that touches data first asks [`authz::authorize`], which denies by default
//! and records each denial in the audit trail.

mod access;
mod audit;
mod authz;
pub mod fields;
mod mesh;
mod mutation;
mod pki;
mod policy;
mod query;
mod reviews;
mod sessions;
mod ssh;
mod ssh_sessions;
mod types;
mod vulns;

use std::sync::Arc;

use async_graphql::{EmptySubscription, Schema};
use warden_store::{AuditContext, Store, StoreError};

pub use authz::Refusals;
pub use mutation::Mutation;
pub use query::Query;
pub use warden_runtime::authz::{Capability, Refused, check};

/// What browsers and agents use to reach this server.
#[derive(Debug, Clone)]
pub struct PublicUrl(pub url::Url);

/// The whole API.
pub type WardenSchema = Schema<Query, Mutation, EmptySubscription>;

/// Deepest selection accepted.
pub const MAX_DEPTH: usize = 10;
/// Most fields (each counted once) one request may select.
pub const MAX_COMPLEXITY: usize = 500;

/// Builds the schema around a store.
pub fn schema(
    store: Arc<Store>,
    audit: crate::audit::AuditLog,
    authorities: crate::ca::Authorities,
    policy: Arc<crate::policy::Engine>,
    proxy: Option<warden_proxy::Proxy>,
    recordings: crate::recordings::Recordings,
    config: &crate::config::Config,
) -> WardenSchema {
    Schema::build(Query::default(), Mutation::default(), EmptySubscription)
        .data(ssh_sessions::Proxy(proxy))
        .data(recordings)
        .data(store)
        .data(audit)
        .data(authorities)
        .data(policy)
        .data(config.ssh.clone())
        .data(config.x509.clone())
        .data(config.agent.clone())
        .data(config.identity.clone())
        .data(config.vuln.clone())
        .data(config.mesh.clone())
        .data(PublicUrl(config.public_url.clone()))
        .limit_depth(MAX_DEPTH)
        .limit_complexity(MAX_COMPLEXITY)
        .finish()
}

/// Turns an audit read error into what the caller may see.
pub fn audit_error(err: crate::audit::AuditError, caller: &Caller) -> async_graphql::Error {
    match err {
        crate::audit::AuditError::Store(e) => api_error(e, caller),
        crate::audit::AuditError::Proof(e) => bad_input(e),
        crate::audit::AuditError::Io(e) => api_error(StoreError::Corrupt(e), caller),
    }
}

/// The schema in SDL, for `warden api schema`.
pub fn sdl() -> String {
    Schema::build(Query::default(), Mutation::default(), EmptySubscription)
        .finish()
        .sdl()
}

/// Per-request data: who calls, through which request.
#[derive(Debug, Clone)]
pub struct Caller {
    /// The audit context every change and denial of this request is recorded under.
    pub audit: AuditContext,
    /// The request's refusals, recorded as one event when it ends.
    pub refusals: Arc<Refusals>,
}

impl Caller {
    /// A caller with no refusals yet.
    pub fn new(audit: AuditContext) -> Caller {
        Caller {
            audit,
            refusals: Arc::default(),
        }
    }
}

/// Turns a store error into what the caller may see: their own mistakes in full, ours as an
/// opaque message naming the request id (the cause goes to the log).
pub fn api_error(err: StoreError, caller: &Caller) -> async_graphql::Error {
    use async_graphql::ErrorExtensions;
    let code = match &err {
        StoreError::NotFound { .. } => "NOT_FOUND",
        StoreError::AlreadyExists { .. } | StoreError::Conflict(_) => "CONFLICT",
        _ => {
            tracing::error!(error = %err, "store error");
            return async_graphql::Error::new(format!(
                "internal error; quote request id {} to your operator",
                caller.audit.request_id
            ))
            .extend_with(|_, e| e.set("code", "INTERNAL"));
        }
    };
    async_graphql::Error::new(err.to_string()).extend_with(|_, e| e.set("code", code))
}

/// A refusal of the caller's input, with the parser's message.
pub fn forbidden(message: impl std::fmt::Display) -> async_graphql::Error {
    use async_graphql::ErrorExtensions;
    async_graphql::Error::new(format!("permission denied: {message}"))
        .extend_with(|_, e| e.set("code", "FORBIDDEN"))
}

/// A mistake in the request, in one line.
pub fn bad_input(message: impl std::fmt::Display) -> async_graphql::Error {
    use async_graphql::ErrorExtensions;
    async_graphql::Error::new(message.to_string())
        .extend_with(|_, e| e.set("code", "BAD_USER_INPUT"))
}
