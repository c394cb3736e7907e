//! The GraphQL API at `/graphql`: the schema, its types and resolvers.
//!
//! Every resolver that touches data first asks [`authz::authorize`], which denies by default
//! and records each denial in the audit trail.

mod access;
mod audit;
mod authz;
mod break_glass;
mod compliance;
pub mod fields;
mod groups;
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

/// The API as its callers run it: the schema, and the store each request's refusals are
/// recorded in. The HTTP endpoint and the console's pages run every operation through
/// [`Api::execute`].
#[derive(Clone)]
pub struct Api {
    schema: WardenSchema,
    store: Arc<Store>,
}

impl std::fmt::Debug for Api {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Api").finish_non_exhaustive()
    }
}

/// Why an operation has no answer to send.
#[derive(Debug, thiserror::Error)]
pub enum Unanswered {
    /// The task running it failed.
    #[error("the operation's task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
    /// Its refusals could not be recorded: no audit record, no answer.
    #[error("cannot record the operation's refusals: {0}")]
    Unrecorded(#[from] StoreError),
}

impl Api {
    /// `schema`, with `store` to record refusals in.
    pub fn new(schema: WardenSchema, store: Arc<Store>) -> Api {
        Api { schema, store }
    }

    /// Runs `request` as `caller`, then records its refusals as one event. Both run to
    /// completion in a task of their own: a client that goes away or times out cannot cut a
    /// change short or leave a refusal unrecorded.
    pub async fn execute(
        &self,
        caller: Caller,
        request: async_graphql::Request,
    ) -> Result<async_graphql::Response, Unanswered> {
        let (schema, store) = (self.schema.clone(), self.store.clone());
        let request = request.data(caller.clone());
        let (response, recorded) = tokio::spawn(async move {
            let response = schema.execute(request).await;
            let recorded = caller.refusals.record(&store, &caller.audit).await;
            (response, recorded)
        })
        .await?;
        recorded?;
        Ok(response)
    }
}

/// Deepest selection accepted.
pub const MAX_DEPTH: usize = 10;
/// Most fields (each counted once) one request may select.
pub const MAX_COMPLEXITY: usize = 500;

/// Builds the schema around a store.
#[expect(
    clippy::too_many_arguments,
    reason = "the schema's data: each argument a handle the resolvers read"
)]
pub fn schema(
    store: Arc<Store>,
    audit: crate::audit::AuditLog,
    authorities: crate::ca::Authorities,
    policy: Arc<crate::policy::Engine>,
    proxy: Option<warden_proxy::Proxy>,
    recordings: crate::recordings::Recordings,
    kept: warden_runtime::compliance::Kept,
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
        .data(warden_runtime::compliance::Limits::of(config))
        .data(kept)
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
        StoreError::Stale(_) => "STALE",
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
