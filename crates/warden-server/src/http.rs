//! Routes: `/graphql`, `/healthz`, `/healthz/live`, `/metrics` on the HTTP listener, and
//! `/graphql` alone on the admin socket, where the caller is the operator.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::SystemTime;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, DefaultBodyLimit, Extension, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::json;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::timeout::TimeoutLayer;
use warden_identity::AuthError;
use warden_model::{Actor, Timestamp};
use warden_store::{AuditContext, Store};

use crate::audit::AuditLog;
use crate::config::Limits;
use crate::edge::{EdgeState, RequestId, observe, rate_limit};
use crate::graphql::{Caller, WardenSchema};
use crate::metrics::Metrics;

/// What handlers share.
#[derive(Clone)]
pub(crate) struct App {
    pub store: Arc<Store>,
    pub audit: AuditLog,
    pub authorities: crate::ca::Authorities,
    pub schema: WardenSchema,
    pub metrics: Arc<Metrics>,
    pub agent: crate::config::AgentConfig,
    pub web: Arc<crate::web::Web>,
    pub mtls_address: Arc<str>,
    pub policy: Arc<crate::policy::Engine>,
    /// The public URL without a trailing `/`, for links in responses.
    pub public_url: Arc<str>,
    /// Vulnerability SLAs and import limits.
    pub vuln: crate::config::VulnConfig,
    /// What `/.well-known/security.txt` says.
    pub security_txt: Option<Arc<crate::config::SecurityTxt>>,
    /// The compiled WireGuard mesh.
    pub mesh: Arc<crate::mesh::Mesh>,
    /// The settings the console shows.
    pub settings: Arc<crate::console::Settings>,
    /// The per-source budget (`None`: off), for checks made after the edge.
    pub source_budget: Option<Arc<crate::edge::SourceLimiter>>,
    /// Per-token budgets for API tokens, and for SCIM tokens (`None`: off).
    pub token_budget: Option<Arc<crate::edge::TokenLimiter>>,
    pub scim_budget: Option<Arc<crate::edge::TokenLimiter>>,
    /// Samples unauthenticated refusals into the audit log.
    pub anonymous: Arc<AnonymousSampler>,
    /// What SCIM clients may take over.
    pub scim: Arc<crate::config::ScimConfig>,
    /// Scan uploads in progress per source.
    pub imports: Arc<crate::edge::SourceSlots>,
}

impl std::fmt::Debug for App {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("App")
            .field("store", &self.store)
            .finish_non_exhaustive()
    }
}

/// The public HTTP listener's routes.
pub(crate) fn public_router(app: App, edge: EdgeState, limits: &Limits) -> Router {
    let imports = Router::new()
        .route("/v1/vuln/import", post(crate::vulns::import_bearer))
        .with_state(app.clone());
    let max_import = app.vuln.max_import_bytes;
    // What anyone may send before they are known: passkey ceremonies and sign-in steps, whose
    // bodies are a few kilobytes.
    let sign_in = Router::new()
        .route("/auth/logout", post(crate::web::logout))
        .route("/webauthn/register/start", post(crate::web::register_start))
        .route(
            "/webauthn/register/finish",
            post(crate::web::register_finish),
        )
        .route("/webauthn/assert/start", post(crate::web::assert_start))
        .route("/webauthn/assert/finish", post(crate::web::assert_finish))
        .route("/webauthn/remove/start", post(crate::web::remove_start))
        .route("/webauthn/remove/finish", post(crate::web::remove_finish))
        .route("/auth/passkey/start", post(crate::web::signin_start))
        .route("/auth/passkey/finish", post(crate::web::signin_finish))
        .route(
            "/auth/cli",
            get(crate::web::cli_consent).post(crate::web::cli_authorize),
        )
        .route("/auth/cli/token", post(crate::web::cli_token))
        .layer(RequestBodyLimitLayer::new(
            SIGN_IN_MAX_BODY.min(limits.max_body_bytes),
        ));
    let routes = Router::new()
        .route("/graphql", post(graphql_bearer))
        .route("/v1/audit/public_key", get(audit_public_key))
        .route("/v1/ssh/user_ca.pub", get(ssh_user_ca))
        .route("/v1/ssh/host_ca.pub", get(ssh_host_ca))
        .route("/v1/ssh/krl", get(ssh_krl))
        .route("/v1/x509/bundle.pem", get(x509_bundle))
        .route("/v1/agent/join", post(crate::agent_api::join))
        .route("/v1/mesh/device", post(crate::mesh::enroll_device))
        .route("/v1/mesh/device/map", get(crate::mesh::device_map))
        .route("/v1/mesh/ranges", get(crate::mesh::device_ranges))
        .route("/", get(crate::web::sign_in_page))
        .route("/account", get(crate::web::account))
        .route("/enroll/{token}", get(crate::web::enroll))
        .route("/static/passkey.js", get(crate::web::passkey_js))
        .merge(sign_in)
        .route("/auth/oidc/{name}/login", get(crate::web::oidc_login))
        .route("/auth/oidc/{name}/callback", get(crate::web::oidc_callback))
        .route("/v1/audit/export", get(audit_export_bearer))
        .route("/.well-known/security.txt", get(crate::vulns::security_txt))
        .route("/healthz", get(ready))
        .route("/healthz/live", get(live))
        .route("/metrics", get(metrics))
        .merge(crate::scim::routes())
        .merge(crate::console::routes())
        .fallback(not_found)
        .with_state(app);
    with_edge(routes, Some((imports, max_import)), edge, limits)
}

/// The admin socket's routes. Whoever can open the socket is the operator.
pub(crate) fn admin_router(app: App, edge: EdgeState, limits: &Limits) -> Router {
    let routes = Router::new()
        .route("/graphql", post(graphql_operator))
        .route("/v1/audit/public_key", get(audit_public_key))
        .route("/v1/ssh/user_ca.pub", get(ssh_user_ca))
        .route("/v1/ssh/host_ca.pub", get(ssh_host_ca))
        .route("/v1/ssh/krl", get(ssh_krl))
        .route("/v1/x509/bundle.pem", get(x509_bundle))
        .route("/v1/audit/export", get(audit_export_operator))
        .route("/healthz", get(ready))
        .fallback(not_found)
        .with_state(app.clone());
    let max_import = app.vuln.max_import_bytes;
    let imports = Router::new()
        .route("/v1/vuln/import", post(crate::vulns::import_operator))
        .with_state(app);
    with_edge(routes, Some((imports, max_import)), edge, limits)
}

/// The mutual-TLS listener's routes: every caller holds a certificate from Warden's CA.
pub(crate) fn mtls_router(app: App, edge: EdgeState, limits: &Limits) -> Router {
    let routes = Router::new()
        .route("/v1/agent/renew", post(crate::agent_api::renew))
        .route("/v1/mesh/enroll", post(crate::mesh::enroll_host))
        .route("/v1/mesh/map", get(crate::mesh::host_map))
        .route("/v1/mesh/ranges", get(crate::mesh::host_ranges))
        .route("/v1/ssh/user_ca.pub", get(ssh_user_ca))
        .route("/v1/ssh/host_ca.pub", get(ssh_host_ca))
        .route("/v1/ssh/krl", get(ssh_krl))
        .route("/v1/x509/bundle.pem", get(x509_bundle))
        .route("/healthz", get(ready))
        .route("/healthz/live", get(live))
        .fallback(not_found)
        .with_state(app);
    with_edge(routes, None, edge, limits)
}

/// The largest body the sign-in and passkey steps accept: they come before the caller is
/// known, and a ceremony's JSON is a few kilobytes.
pub(crate) const SIGN_IN_MAX_BODY: usize = 64 * 1024;

/// How long a scan import (upload, parse and write) may take.
const IMPORT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(600);

/// Puts the edge's layers around the routes: body limits and timeouts (scan imports, when
/// given, have their own), then rate limiting and observation for all.
fn with_edge(
    routes: Router,
    imports: Option<(Router, usize)>,
    edge: EdgeState,
    limits: &Limits,
) -> Router {
    // Layers run outside in: the last added sees the request first.
    let mut routes = routes
        .layer(DefaultBodyLimit::disable())
        .layer(RequestBodyLimitLayer::new(limits.max_body_bytes))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            limits.request_timeout,
        ));
    if let Some((imports, max_bytes)) = imports {
        routes = routes.merge(
            imports
                .layer(DefaultBodyLimit::disable())
                .layer(RequestBodyLimitLayer::new(max_bytes))
                .layer(TimeoutLayer::with_status_code(
                    StatusCode::REQUEST_TIMEOUT,
                    IMPORT_TIMEOUT,
                )),
        );
    }
    routes
        .layer(axum::middleware::from_fn_with_state(
            edge.clone(),
            rate_limit,
        ))
        .layer(axum::middleware::from_fn_with_state(edge, observe))
}

async fn not_found() -> Response {
    (
        StatusCode::NOT_FOUND,
        axum::Json(json!({ "error": "not found" })),
    )
        .into_response()
}

async fn live() -> Response {
    axum::Json(json!({ "status": "ok" })).into_response()
}

async fn ready(State(app): State<App>) -> Response {
    match app.store.ping().await {
        Ok(()) => axum::Json(json!({ "status": "ok", "database": "ok" })).into_response(),
        Err(err) => {
            tracing::warn!(error = %err, "readiness check failed");
            let body = json!({ "status": "unavailable", "database": "unreachable" });
            (StatusCode::SERVICE_UNAVAILABLE, axum::Json(body)).into_response()
        }
    }
}

async fn metrics(State(app): State<App>) -> Response {
    let text = app.metrics.render(app.store.pool_stats());
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
        .into_response()
}

/// Decides whether a bearer caller of a plain HTTP route may use `cap`; when not, the
/// response to send (403 with the reason, the denial recorded; 500 when the decision or its
/// record could not be made).
pub(crate) async fn require(
    app: &App,
    audit: &AuditContext,
    cap: crate::graphql::Capability,
    target: &str,
) -> Result<(), Response> {
    match crate::graphql::check(&app.policy, &app.store, audit, cap, target).await {
        Ok(()) => Ok(()),
        Err(crate::graphql::Refused::Denied(reason)) => Err(graphql_error(
            StatusCode::FORBIDDEN,
            &format!("permission denied: {reason}"),
        )),
        Err(crate::graphql::Refused::Store(e)) => {
            tracing::error!(error = %e, "cannot decide or record a denial");
            Err(graphql_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal error",
            ))
        }
    }
}

pub(crate) fn graphql_error(status: StatusCode, message: &str) -> Response {
    (
        status,
        axum::Json(json!({ "errors": [{ "message": message }] })),
    )
        .into_response()
}

/// Authenticates a bearer token; on failure, the response to send (401, or 503 when the
/// store fails), with the denial recorded.
pub(crate) async fn bearer_context(
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
pub(crate) fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    value
        .get(..7)
        .filter(|scheme| scheme.eq_ignore_ascii_case("bearer "))
        .and(value.get(7..))
        .map(str::trim)
}

/// The id of the token an actor acts through.
pub(crate) fn token_id(actor: &Actor) -> Option<&str> {
    match actor {
        Actor::User { token_id, .. } | Actor::Token { token_id, .. } => Some(token_id),
        _ => None,
    }
}

/// `/graphql` on the public listener: the caller proves itself with a bearer token before a
/// byte of the body is read.
async fn graphql_bearer(
    State(app): State<App>,
    Extension(RequestId(request_id)): Extension<RequestId>,
    connect: Option<Extension<ConnectInfo<SocketAddr>>>,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Response {
    let audit = match bearer_context(&app, request_id, connect, &headers, "graphql").await {
        Ok(audit) => audit,
        Err(response) => return response,
    };
    match read_body(body).await {
        Ok(bytes) => execute(&app, audit, &headers, &bytes).await,
        Err(response) => response,
    }
}

/// Whether a body failed for passing a length limit: its own (`http_body_util::Limited`) or
/// the edge's `RequestBodyLimitLayer`, which reports it as the source of its error.
pub(crate) fn over_length_limit(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cause = Some(e);
    while let Some(e) = cause {
        if e.is::<http_body_util::LengthLimitError>() {
            return true;
        }
        cause = e.source();
    }
    e.to_string().contains("length limit")
}

/// Reads a body the edge's limit layer already bounds (`limits.max_body_bytes`).
pub(crate) async fn read_body(body: axum::body::Body) -> Result<Bytes, Response> {
    use http_body_util::BodyExt;
    match body.collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) => Err(if over_length_limit(&e) {
            graphql_error(
                StatusCode::PAYLOAD_TOO_LARGE,
                "the request body is too large (limits.max_body_bytes)",
            )
        } else {
            graphql_error(StatusCode::BAD_REQUEST, "the request body was cut short")
        }),
    }
}

/// `/graphql` on the admin socket: the caller is the operator.
async fn graphql_operator(
    State(app): State<App>,
    Extension(RequestId(request_id)): Extension<RequestId>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let audit = operator_context(request_id);
    execute(&app, audit, &headers, &body).await
}

/// The context of a request on the admin socket: whoever opened it is the operator.
pub(crate) fn operator_context(request_id: String) -> AuditContext {
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
pub(crate) async fn detached<T: Send + 'static>(
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
pub(crate) const ANONYMOUS_RECORDS_PER_SECOND: u32 = 10;
const ANONYMOUS_RECORDS_BURST: u32 = 20;

/// Samples unauthenticated refusals into the audit log.
#[derive(Debug)]
pub(crate) struct AnonymousSampler {
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
    pub(crate) fn sample(&self) -> Option<u64> {
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
pub(crate) async fn deny(
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
pub(crate) async fn deny_unsampled(
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
pub(crate) async fn record_failure(
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

async fn execute(app: &App, audit: AuditContext, headers: &HeaderMap, body: &[u8]) -> Response {
    let json_body = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(';')
                .next()
                .is_some_and(|m| m.trim() == "application/json")
        });
    if !json_body {
        return graphql_error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "send the query as application/json",
        );
    }
    let request: async_graphql::Request = match serde_json::from_slice(body) {
        Ok(r) => r,
        Err(e) => {
            return graphql_error(StatusCode::BAD_REQUEST, &format!("invalid JSON body: {e}"));
        }
    };
    if let Err(message) =
        crate::graphql::fields::check(&request.query, crate::graphql::fields::MAX_FIELDS)
    {
        return graphql_error(StatusCode::BAD_REQUEST, &message);
    }
    let (schema, store) = (app.schema.clone(), app.store.clone());
    let caller = Caller::new(audit);
    let request = request.data(caller.clone());
    // The query and the record of its refusals run to completion in a task of their own: a
    // client that goes away or times out cannot leave a refusal unrecorded.
    let ran = tokio::spawn(async move {
        let response = schema.execute(request).await;
        let recorded = caller.refusals.record(&store, &caller.audit).await;
        (response, recorded)
    })
    .await;
    let mut response = match ran {
        Ok((response, Ok(()))) => response,
        Ok((_, Err(e))) => {
            tracing::error!(error = %e, "cannot record the request's refusals");
            return graphql_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal error; see the server log",
            );
        }
        Err(_) => {
            return graphql_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal error; see the server log",
            );
        }
    };
    // Errors without a path come from parsing or validation (syntax, unknown fields, depth
    // and complexity limits): nothing ran, and the request itself is at fault.
    let rejected = response.data == async_graphql::Value::Null
        && !response.errors.is_empty()
        && response.errors.iter().all(|e| e.path.is_empty());
    let status = if rejected {
        response.errors.iter_mut().for_each(one_line_syntax_error);
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    (status, axum::Json(response)).into_response()
}

/// The parser's message is a multi-line drawing of the query; keep its last line, with the
/// position in front: `syntax error at 1:17: expected selection_set, …`.
fn one_line_syntax_error(error: &mut async_graphql::ServerError) {
    if !error.message.contains('\n') {
        return;
    }
    let detail = error
        .message
        .lines()
        .rev()
        .find_map(|l| l.trim().strip_prefix("= "))
        .unwrap_or("invalid query")
        .to_owned();
    error.message = match error.locations.first() {
        Some(at) => format!("syntax error at {}:{}: {detail}", at.line, at.column),
        None => format!("syntax error: {detail}"),
    };
}

async fn audit_public_key(State(app): State<App>) -> Response {
    let key = format!("{}\n", app.audit.verifier());
    ([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], key).into_response()
}

/// Which events an export covers: sequence numbers, or times (RFC 3339).
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ExportQuery {
    since_seq: Option<u64>,
    until_seq: Option<u64>,
    since: Option<String>,
    until: Option<String>,
}

async fn audit_export_bearer(
    State(app): State<App>,
    Extension(RequestId(request_id)): Extension<RequestId>,
    connect: Option<Extension<ConnectInfo<SocketAddr>>>,
    headers: HeaderMap,
    query: Result<axum::extract::Query<ExportQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let audit = match bearer_context(&app, request_id, connect, &headers, "audit").await {
        Ok(audit) => audit,
        Err(response) => return response,
    };
    if let Err(refused) =
        require(&app, &audit, crate::graphql::Capability::ReadAudit, "audit").await
    {
        return refused;
    }
    export(app, audit, query).await
}

async fn audit_export_operator(
    State(app): State<App>,
    Extension(RequestId(request_id)): Extension<RequestId>,
    query: Result<axum::extract::Query<ExportQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let audit = operator_context(request_id);
    export(app, audit, query).await
}

fn parse_time(field: &str, value: &str) -> Result<Timestamp, String> {
    humantime::parse_rfc3339_weak(value)
        .map(Timestamp::from_system)
        .map_err(|_| {
            format!("invalid `{field}` time `{value}`: use RFC 3339, like 2026-11-29T10:00:00Z")
        })
}

async fn export(
    app: App,
    audit: AuditContext,
    query: Result<axum::extract::Query<ExportQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let bad = |m: String| graphql_error(StatusCode::BAD_REQUEST, &m);
    let q = match query {
        Ok(axum::extract::Query(q)) => q,
        Err(e) => return bad(format!("invalid export range: {}", e.body_text())),
    };
    let failed = |e: &dyn std::fmt::Display| {
        tracing::error!(error = %e, "audit export failed");
        graphql_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal error; see the server log",
        )
    };
    let size = match app.store.audit_size().await {
        Ok(size) => size,
        Err(e) => return failed(&e),
    };
    let oldest = match app.store.audit_first_seq().await {
        Ok(oldest) => oldest.unwrap_or(size + 1),
        Err(e) => return failed(&e),
    };
    if q.since_seq.is_some_and(|s| s < oldest) {
        return bad(format!(
            "events before {oldest} have been archived; verify them from the archive files (audit.archive_dir)"
        ));
    }
    let mut first = q.since_seq.unwrap_or(oldest).max(1);
    let mut last = q.until_seq.unwrap_or(size).min(size);
    for (field, value, is_since) in [("since", &q.since, true), ("until", &q.until, false)] {
        let Some(value) = value else { continue };
        let at = match parse_time(field, value) {
            Ok(at) => at,
            Err(m) => return bad(m),
        };
        match app.store.first_seq_at_or_after(at).await {
            Ok(seq) if is_since => first = first.max(seq.unwrap_or(size + 1)),
            Ok(seq) => last = last.min(seq.map_or(size, |s| s - 1)),
            Err(e) => return failed(&e),
        }
    }
    let last = last.max(first - 1);
    let details = serde_json::json!({ "first_seq": first, "last_seq": last });
    // Reading the log is itself recorded, before anything is sent.
    let (store, ctx) = (app.store.clone(), audit.clone());
    let recorded = detached(async move {
        let success = warden_store::Outcome::Success;
        store
            .record(&ctx, "audit.export", "audit", details, success, None)
            .await
    })
    .await;
    if let Err(e) = recorded {
        return failed(&e);
    }
    let head = match app.audit.export_head(first, last).await {
        Ok(head) => head,
        Err(e) => return failed(&e),
    };
    let stream = app.audit.clone().export_stream(head, first, last);
    (
        [(header::CONTENT_TYPE, "application/jsonl; charset=utf-8")],
        axum::body::Body::from_stream(stream),
    )
        .into_response()
}

async fn ssh_user_ca(State(app): State<App>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        app.authorities.user_ca_public(),
    )
        .into_response()
}

async fn x509_bundle(State(app): State<App>) -> Response {
    (
        [(header::CONTENT_TYPE, "application/x-pem-file")],
        app.authorities.x509().bundle_pem.clone(),
    )
        .into_response()
}

async fn ssh_host_ca(State(app): State<App>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        app.authorities.host_ca_public(),
    )
        .into_response()
}

/// The KRL for sshd's `RevokedKeys`, with an ETag so pollers fetch it only when it changed.
async fn ssh_krl(State(app): State<App>, headers: HeaderMap) -> Response {
    match app.authorities.krl().await {
        Ok((bytes, etag)) => {
            let unchanged = headers
                .get(header::IF_NONE_MATCH)
                .and_then(|v| v.to_str().ok())
                == Some(etag.as_str());
            if unchanged {
                return (StatusCode::NOT_MODIFIED, [(header::ETAG, etag)]).into_response();
            }
            (
                [
                    (header::CONTENT_TYPE, "application/octet-stream".to_owned()),
                    (header::ETAG, etag),
                ],
                bytes,
            )
                .into_response()
        }
        Err(err) => {
            tracing::error!(error = %err, "cannot build the KRL");
            graphql_error(
                StatusCode::SERVICE_UNAVAILABLE,
                "the KRL is unavailable; try again",
            )
        }
    }
}
