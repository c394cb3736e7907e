//! What every HTTP handler shares: the server's state ([`App`]) and the request's context,
//! from the bearer token to the audit context, with the one way each refusal is answered and
//! recorded.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::SystemTime;

use axum::body::Bytes;
use axum::extract::{ConnectInfo, Extension};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use warden_identity::AuthError;
use warden_model::{Actor, Timestamp};
pub use warden_store::AuditContext;
use warden_store::{HoldsStore, Store};

use crate::audit::AuditLog;
use crate::metrics::Metrics;

/// What handlers share: the database and the services, as one value each handler clones
/// cheaply.
///
/// The services are reached through [`Deref`](std::ops::Deref) (`app.policy`, `app.audit`, …).
/// The database is not a public field: it is lent through [`HoldsStore`], which only crates
/// that depend on `warden-store` can name. The web pages hold an `App` but go through the API.
#[derive(Clone)]
pub struct App {
    store: Arc<Store>,
    services: Arc<Services>,
}

impl App {
    /// The state over `store`, with `services`.
    pub fn new(store: Arc<Store>, services: Services) -> App {
        App {
            store,
            services: Arc::new(services),
        }
    }

    /// Decides whether `audit`'s actor may use `cap` on `target`; a refusal is recorded.
    pub async fn check(
        &self,
        audit: &AuditContext,
        cap: crate::authz::Capability,
        target: &str,
    ) -> Result<(), crate::authz::Refused> {
        crate::authz::check(&self.policy, &self.store, audit, cap, target).await
    }

    /// The policy subject `actor` stands for (`None`: unknown or disabled).
    pub async fn subject(
        &self,
        actor: &Actor,
    ) -> Result<Option<warden_policy::Subject>, warden_store::StoreError> {
        crate::policy::subject(&self.store, actor).await
    }
}

impl HoldsStore for App {
    fn store(&self) -> &Arc<Store> {
        &self.store
    }
}

impl std::ops::Deref for App {
    type Target = Services;

    fn deref(&self) -> &Services {
        &self.services
    }
}

/// The services every handler may use, beside the database.
pub struct Services {
    /// The running audit log.
    pub audit: AuditLog,
    /// The certificate authorities.
    pub authorities: crate::ca::Authorities,
    /// Prometheus metrics.
    pub metrics: Arc<Metrics>,
    /// What agents are told and allowed.
    pub agent: crate::config::AgentConfig,
    /// The mutual-TLS listener's address, as agents reach it.
    pub mtls_address: Arc<str>,
    /// The policy in force.
    pub policy: Arc<crate::policy::Engine>,
    /// The public URL without a trailing `/`, for links in responses.
    pub public_url: Arc<str>,
    /// Vulnerability SLAs and import limits.
    pub vuln: crate::config::VulnConfig,
    /// What `/.well-known/security.txt` says.
    pub security_txt: Option<Arc<crate::config::SecurityTxt>>,
    /// The compiled WireGuard mesh.
    pub mesh: Arc<crate::mesh::Mesh>,
    /// The per-source budget (`None`: off), for checks made after the edge.
    pub source_budget: Option<Arc<crate::edge::SourceLimiter>>,
    /// Per-token budgets for API tokens (`None`: off).
    pub token_budget: Option<Arc<crate::edge::TokenLimiter>>,
    /// Per-token budgets for SCIM tokens (`None`: off).
    pub scim_budget: Option<Arc<crate::edge::TokenLimiter>>,
    /// Samples unauthenticated refusals into the audit log.
    pub anonymous: Arc<AnonymousSampler>,
    /// What SCIM clients may take over.
    pub scim: Arc<crate::config::ScimConfig>,
    /// Scan uploads in progress per source.
    pub imports: Arc<crate::edge::SourceSlots>,
    /// Where session recordings are kept, for checking their hashes.
    pub recordings: crate::recordings::Recordings,
    /// The limits compliance tests hold the evidence to, and the session settings in force.
    pub compliance: crate::compliance::Limits,
}

impl std::fmt::Debug for App {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("App")
            .field("store", &self.store)
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for Services {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Services")
            .field("public_url", &self.public_url)
            .finish_non_exhaustive()
    }
}

/// Decides whether a bearer caller of a plain HTTP route may use `cap`; when not, the
/// response to send (403 with the reason, the denial recorded; 500 when the decision or its
/// record could not be made).
pub async fn require(
    app: &App,
    audit: &AuditContext,
    cap: crate::authz::Capability,
    target: &str,
) -> Result<(), Response> {
    match app.check(audit, cap, target).await {
        Ok(()) => Ok(()),
        Err(crate::authz::Refused::Denied(reason)) => Err(graphql_error(
            StatusCode::FORBIDDEN,
            &format!("permission denied: {reason}"),
        )),
        Err(crate::authz::Refused::Store(e)) => {
            tracing::error!(error = %e, "cannot decide or record a denial");
            Err(graphql_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal error",
            ))
        }
    }
}

/// A refusal as a GraphQL-shaped JSON body: `{"errors": [{"message": …}]}`.
pub fn graphql_error(status: StatusCode, message: &str) -> Response {
    (
        status,
        axum::Json(json!({ "errors": [{ "message": message }] })),
    )
        .into_response()
}

/// Names the audit target under which a route's bearer refusals are recorded, for [`Bearer`].
pub trait BearerTarget {
    /// The target (`graphql`, `mesh`, …).
    const TARGET: &'static str;
}

/// Who calls a plain HTTP route, proven by a bearer token: the request's audit context. As an
/// extractor it is the one way such a route learns its caller; a refusal is answered and
/// recorded as `bearer_context` does, under `T::TARGET`.
#[derive(Debug)]
pub struct Bearer<T>(pub AuditContext, pub std::marker::PhantomData<fn() -> T>);

impl<S, T> axum::extract::FromRequestParts<S> for Bearer<T>
where
    App: axum::extract::FromRef<S>,
    S: Send + Sync,
    T: BearerTarget,
{
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, Response> {
        let app = <App as axum::extract::FromRef<S>>::from_ref(state);
        let (request_id, connect) = origin(parts);
        bearer_context(&app, request_id, connect, &parts.headers, T::TARGET)
            .await
            .map(|ctx| Bearer(ctx, std::marker::PhantomData))
    }
}

/// The audit context of a request whose caller is not known yet: nobody
/// (`Actor::Anonymous`), with the request's id and the peer's address, now. The sign-in steps
/// and the console start from it, as [`Bearer`] routes start from the token.
#[derive(Debug)]
pub struct Anonymous(pub AuditContext);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for Anonymous {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _: &S,
    ) -> Result<Self, Self::Rejection> {
        let (request_id, connect) = origin(parts);
        Ok(Anonymous(AuditContext {
            actor: Actor::Anonymous,
            request_id,
            source: connect.map(|Extension(ConnectInfo(p))| p.ip().to_string()),
            now: Timestamp::from_system(SystemTime::now()),
        }))
    }
}

/// A request's id (set by the edge) and the peer's address.
fn origin(
    parts: &axum::http::request::Parts,
) -> (String, Option<Extension<ConnectInfo<SocketAddr>>>) {
    let request_id = parts
        .extensions
        .get::<crate::edge::RequestId>()
        .map(|r| r.0.clone())
        .unwrap_or_default();
    let connect = parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .cloned()
        .map(Extension);
    (request_id, connect)
}

/// Authenticates a bearer token; on failure, the response to send (401, or 503 when the
/// store fails), with the denial recorded.
async fn bearer_context(
    app: &App,
    request_id: String,
    connect: Option<Extension<ConnectInfo<SocketAddr>>>,
    headers: &HeaderMap,
    target: &str,
) -> Result<AuditContext, Response> {
    let now = Timestamp::from_system(SystemTime::now());
    let mut audit = AuditContext {
        actor: Actor::Anonymous,
        request_id,
        source: connect.map(|Extension(ConnectInfo(peer))| peer.ip().to_string()),
        now,
    };
    let Some(bearer) = bearer(headers) else {
        return Err(unauthorized(app, &audit, target, "no bearer token", false).await);
    };
    match warden_identity::authenticate(&app.store, bearer.trim(), now).await {
        Ok(actor) => audit.actor = actor,
        Err(AuthError::Store(err)) => {
            tracing::error!(error = %err, "token lookup failed");
            return Err(graphql_error(
                StatusCode::SERVICE_UNAVAILABLE,
                "service unavailable; try again",
            ));
        }
        Err(err) => {
            let reason = err.to_string();
            return Err(unauthorized(app, &audit, target, &reason, err.names_a_token()).await);
        }
    }
    if let (Some(budget), Some(token_id)) = (&app.token_budget, token_id(&audit.actor))
        && let Err(wait) = budget.check(token_id)
    {
        {
            app.metrics.reject("http", "per_token_rate_limit");
            let mut resp = graphql_error(
                StatusCode::TOO_MANY_REQUESTS,
                &format!("too many requests with this token: retry after {wait}s"),
            );
            resp.headers_mut()
                .insert(header::RETRY_AFTER, header::HeaderValue::from(wait));
            return Err(resp);
        }
    }
    if audit.actor.role() == Some(warden_model::Role::Scim) {
        let reason = "a scim token may only use /scim/v2";
        deny(app, &audit, "api.access", target, reason).await;
        return Err(graphql_error(
            StatusCode::FORBIDDEN,
            "permission denied: a scim token may only use /scim/v2",
        ));
    }
    Ok(audit)
}

/// The credential of `Authorization: Bearer …` (the scheme in any case, as RFC 7235 has it),
/// trimmed; the one reading of the header for every route.
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    value
        .get(..7)
        .filter(|scheme| scheme.eq_ignore_ascii_case("bearer "))
        .and(value.get(7..))
        .map(str::trim)
}

/// The id of the token an actor acts through.
pub fn token_id(actor: &Actor) -> Option<&str> {
    match actor {
        Actor::User { token_id, .. } | Actor::Token { token_id, .. } => Some(token_id),
        _ => None,
    }
}

/// Whether a body failed for passing a length limit: its own (`http_body_util::Limited`) or
/// the edge's `RequestBodyLimitLayer`, which reports it as the source of its error.
pub fn over_length_limit(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cause = Some(e);
    while let Some(e) = cause {
        if e.is::<http_body_util::LengthLimitError>() {
            return true;
        }
        cause = e.source();
    }
    e.to_string().contains("length limit")
}

/// Whether the request says its body is JSON (`Content-Type: application/json`, with or
/// without parameters). The routes a browser's cookie reaches require it: another site's HTML
/// form cannot send this type, so it cannot drive them.
pub fn declares_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|media| media.trim().eq_ignore_ascii_case("application/json"))
}

/// A request body read within the edge's size limit (`limits.max_body_bytes`) and parsed as
/// JSON into `T`: the one way Warden's JSON routes take a body.
///
/// As a handler's last argument, after its authentication extractor, the body is read only
/// once the caller is known. A refusal is one line: 413 for a body over the limit, 400 for one
/// cut short or not the JSON `T` expects (``invalid JSON body: missing field `csr` at line 1
/// column 2``). A route that records bad bodies, or answers in another shape, takes
/// `Result<JsonBody<T>, BodyRejected>`.
#[derive(Debug)]
pub struct JsonBody<T>(pub T);

/// Why a request body was refused, and the status to answer with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BodyRejected {
    /// 413 or 400.
    pub status: StatusCode,
    /// One line, for the caller.
    pub message: String,
}

impl IntoResponse for BodyRejected {
    fn into_response(self) -> Response {
        (self.status, axum::Json(json!({ "error": self.message }))).into_response()
    }
}

impl<S, T> axum::extract::FromRequest<S> for JsonBody<T>
where
    S: Send + Sync,
    T: serde::de::DeserializeOwned,
{
    type Rejection = BodyRejected;

    async fn from_request(request: axum::extract::Request, _: &S) -> Result<Self, BodyRejected> {
        let bytes = read_body(request.into_body()).await?;
        serde_json::from_slice(&bytes)
            .map(JsonBody)
            .map_err(|e| BodyRejected {
                status: StatusCode::BAD_REQUEST,
                message: format!("invalid JSON body: {e}"),
            })
    }
}

/// Reads a body the edge's limit layer already bounds (`limits.max_body_bytes`).
async fn read_body(body: axum::body::Body) -> Result<Bytes, BodyRejected> {
    use http_body_util::BodyExt;
    match body.collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if over_length_limit(&e) => Err(BodyRejected {
            status: StatusCode::PAYLOAD_TOO_LARGE,
            message: "the request body is too large (limits.max_body_bytes)".to_owned(),
        }),
        Err(_) => Err(BodyRejected {
            status: StatusCode::BAD_REQUEST,
            message: "the request body was cut short".to_owned(),
        }),
    }
}

/// The context of a request on the admin socket: whoever opened it is the operator.
pub fn operator_context(request_id: String) -> AuditContext {
    let now = Timestamp::from_system(SystemTime::now());
    AuditContext {
        actor: Actor::Operator,
        request_id,
        source: None,
        now,
    }
}

/// Runs a write to completion even if the client goes away. The write path holds the batch
/// while a change runs, so it must never be cancelled halfway; handlers hand their writes to a
/// task of their own.
pub async fn detached<T: Send + 'static>(
    work: impl Future<Output = Result<T, warden_store::StoreError>> + Send + 'static,
) -> Result<T, warden_store::StoreError> {
    tokio::spawn(work).await.unwrap_or_else(|e| {
        Err(warden_store::StoreError::Commit(format!(
            "the write task failed: {e}"
        )))
    })
}

/// How many unauthenticated refusals the audit log takes per second, and at once. Beyond
/// that they are counted (`warden_audit_unrecorded_refusals_total`) and the next one recorded
/// says how many were left out: anyone can send requests, and they must not grow the log
/// without bound.
pub const ANONYMOUS_RECORDS_PER_SECOND: u32 = 10;
const ANONYMOUS_RECORDS_BURST: u32 = 20;

/// Samples unauthenticated refusals into the audit log.
#[derive(Debug)]
pub struct AnonymousSampler {
    budget: governor::DefaultDirectRateLimiter,
    left_out: std::sync::atomic::AtomicU64,
}

impl Default for AnonymousSampler {
    fn default() -> Self {
        let rate = std::num::NonZeroU32::new(ANONYMOUS_RECORDS_PER_SECOND)
            .unwrap_or(std::num::NonZeroU32::MIN);
        let burst = std::num::NonZeroU32::new(ANONYMOUS_RECORDS_BURST).unwrap_or(rate);
        AnonymousSampler {
            budget: governor::RateLimiter::direct(
                governor::Quota::per_second(rate).allow_burst(burst),
            ),
            left_out: std::sync::atomic::AtomicU64::new(0),
        }
    }
}

impl AnonymousSampler {
    /// `Some(how many were left out since the last one recorded)` when this one is recorded.
    pub fn sample(&self) -> Option<u64> {
        use std::sync::atomic::Ordering;
        if self.budget.check().is_ok() {
            Some(self.left_out.swap(0, Ordering::Relaxed))
        } else {
            self.left_out.fetch_add(1, Ordering::Relaxed);
            None
        }
    }
}

/// The details of a refusal's record, or `None` when an unauthenticated refusal is left out
/// by sampling (it is counted either way). An authenticated caller's is always recorded.
fn anonymous_details(app: &App, audit: &AuditContext) -> Option<serde_json::Value> {
    if audit.actor != Actor::Anonymous {
        return Some(serde_json::Value::Null);
    }
    app.metrics.anonymous_refusals.inc();
    match app.anonymous.sample() {
        None => {
            app.metrics.unrecorded_refusals.inc();
            None
        }
        Some(0) => Some(serde_json::Value::Null),
        Some(left_out) => Some(json!({ "unrecorded_since_last": left_out })),
    }
}

/// Records a denial (logging, not failing, if it cannot be recorded). Unauthenticated
/// callers' denials are sampled ([`AnonymousSampler`]).
pub async fn deny(
    app: &App,
    audit: &AuditContext,
    action: &'static str,
    target: &str,
    reason: &str,
) {
    record_denial(app, audit, action, target, reason, true).await;
}

/// Records a denial whatever the caller: one that names a real token (a wrong secret, a
/// revoked token) is worth a record even from nobody, and a flood must not hide it.
pub async fn deny_unsampled(
    app: &App,
    audit: &AuditContext,
    action: &'static str,
    target: &str,
    reason: &str,
) {
    record_denial(app, audit, action, target, reason, false).await;
}

async fn record_denial(
    app: &App,
    audit: &AuditContext,
    action: &'static str,
    target: &str,
    reason: &str,
    sampled: bool,
) {
    let details = if sampled {
        match anonymous_details(app, audit) {
            Some(details) => details,
            None => return,
        }
    } else {
        serde_json::Value::Null
    };
    let (store, ctx, target, reason) = (
        app.store.clone(),
        audit.clone(),
        target.to_owned(),
        reason.to_owned(),
    );
    let denied = warden_store::Outcome::Denied;
    let recorded = detached(async move {
        store
            .record(&ctx, action, &target, details, denied, Some(&reason))
            .await
    })
    .await;
    if let Err(err) = recorded {
        tracing::error!(error = %err, "cannot record denial");
    }
}

/// Records a refused attempt as a failure of `action` (not a denial: the request itself was
/// wrong). Logs when it cannot be recorded; the caller decides whether to fail closed.
pub async fn record_failure(
    app: &App,
    audit: &AuditContext,
    action: &'static str,
    target: &str,
    reason: &str,
) -> Result<(), warden_store::StoreError> {
    // Anyone can make unauthenticated requests fail: their record is sampled as denials are.
    let Some(details) = anonymous_details(app, audit) else {
        return Ok(());
    };
    let (store, ctx, target, reason) = (
        app.store.clone(),
        audit.clone(),
        target.to_owned(),
        reason.to_owned(),
    );
    let failure = warden_store::Outcome::Failure;
    let recorded = detached(async move {
        store
            .record(&ctx, action, &target, details, failure, Some(&reason))
            .await
    })
    .await;
    if let Err(err) = &recorded {
        tracing::error!(error = %err, "cannot record a refused attempt");
    }
    recorded
}

/// Refuses with one generic message whatever the reason, and records the real reason (always
/// when it names a real token, sampled otherwise).
async fn unauthorized(
    app: &App,
    audit: &AuditContext,
    target: &str,
    reason: &str,
    names_a_token: bool,
) -> Response {
    tracing::info!(reason, "authentication failed");
    if names_a_token {
        deny_unsampled(app, audit, "auth.token", target, reason).await;
    } else {
        deny(app, audit, "auth.token", target, reason).await;
    }
    let mut resp = graphql_error(
        StatusCode::UNAUTHORIZED,
        "authentication required: send a valid API token as `Authorization: Bearer <token>`",
    );
    resp.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        header::HeaderValue::from_static("Bearer"),
    );
    resp
}

#[cfg(test)]
mod tests {
    use axum::extract::FromRequest;

    use super::*;

    fn typed(content_type: Option<&str>) -> HeaderMap {
        let mut headers = HeaderMap::new();
        if let Some(value) = content_type {
            headers.insert(header::CONTENT_TYPE, value.parse().unwrap());
        }
        headers
    }

    #[test]
    fn only_a_json_media_type_declares_json() {
        for yes in [
            "application/json",
            "application/json; charset=utf-8",
            "Application/JSON",
            " application/json ;charset=UTF-8",
        ] {
            assert!(declares_json(&typed(Some(yes))), "{yes}");
        }
        for no in [
            "application/jsonx",
            "application/x-www-form-urlencoded",
            "text/plain",
            "multipart/form-data; boundary=x",
            "application/scim+json",
            "",
        ] {
            assert!(!declares_json(&typed(Some(no))), "{no}");
        }
        assert!(!declares_json(&typed(None)));
    }

    #[derive(Debug, serde::Deserialize)]
    struct Join {
        csr: String,
    }

    async fn body(text: &'static str) -> Result<JsonBody<Join>, BodyRejected> {
        let request = axum::extract::Request::new(axum::body::Body::from(text));
        JsonBody::<Join>::from_request(request, &()).await
    }

    #[tokio::test]
    async fn a_json_body_is_parsed_or_refused_in_one_line() {
        let JsonBody(join) = body(r#"{"csr": "x"}"#).await.unwrap();
        assert_eq!(join.csr, "x");
        for (text, message) in [
            (
                "{}",
                "invalid JSON body: missing field `csr` at line 1 column 2",
            ),
            (
                "{not json",
                "invalid JSON body: key must be a string at line 1 column 2",
            ),
            (
                "",
                "invalid JSON body: EOF while parsing a value at line 1 column 0",
            ),
            (
                r#"{"csr": 7}"#,
                "invalid JSON body: invalid type: integer `7`, expected a string at line 1 column 9",
            ),
        ] {
            let rejected = body(text).await.unwrap_err();
            assert_eq!(rejected.status, StatusCode::BAD_REQUEST, "{text}");
            assert_eq!(rejected.message, message, "{text}");
        }
    }

    #[tokio::test]
    async fn a_body_over_the_limit_is_refused_with_413() {
        use http_body_util::BodyExt;
        let limited = http_body_util::Limited::new(axum::body::Body::from(vec![b' '; 64]), 16)
            .map_err(axum::Error::new);
        let request = axum::extract::Request::new(axum::body::Body::new(limited));
        let rejected = JsonBody::<Join>::from_request(request, &())
            .await
            .unwrap_err();
        assert_eq!(rejected.status, StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(
            rejected.message,
            "the request body is too large (limits.max_body_bytes)"
        );
    }

    proptest::proptest! {
        /// Whatever arrives, the answer is the parsed body or one line that says what is
        /// wrong with it, never a panic.
        #[test]
        fn any_body_is_parsed_or_refused_in_one_line(
            bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..256),
        ) {
            let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
            let request = axum::extract::Request::new(axum::body::Body::from(bytes));
            let parsed =
                runtime.block_on(JsonBody::<serde_json::Value>::from_request(request, &()));
            if let Err(rejected) = parsed {
                proptest::prop_assert_eq!(rejected.status, StatusCode::BAD_REQUEST);
                proptest::prop_assert!(rejected.message.starts_with("invalid JSON body: "));
                proptest::prop_assert!(!rejected.message.contains('\n'));
            }
        }
    }
}
