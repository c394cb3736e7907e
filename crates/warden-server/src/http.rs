//! Routes: `/graphql`, `/healthz`, `/healthz/live`, `/metrics` on the HTTP listener, and
//! `/graphql` alone on the admin socket, where the caller is the operator.

use axum::Router;
use axum::extract::{DefaultBodyLimit, Extension, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::json;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::timeout::TimeoutLayer;
use warden_store::{AuditContext, HoldsStore};

use warden_runtime::request::{
    App, Bearer, BearerTarget, BodyRejected, JsonBody, declares_json, detached, graphql_error,
    operator_context, require,
};
use warden_web::Web;

use crate::config::Limits;
use crate::edge::{EdgeState, RequestId, observe, rate_limit};
use crate::graphql::Caller;

/// The public HTTP listener's routes.
pub(crate) fn public_router(web: Web, edge: EdgeState, limits: &Limits) -> Router {
    let imports = Router::new()
        .route("/v1/vuln/import", post(warden_api::vulns::import_bearer))
        .with_state(web.app.clone());
    let max_import = web.vuln.max_import_bytes;
    // What anyone may send before they are known: passkey ceremonies and sign-in steps, whose
    // bodies are a few kilobytes.
    let sign_in = Router::new()
        .route("/auth/logout", post(warden_web::sign_in::logout))
        .route(
            "/webauthn/register/start",
            post(warden_web::sign_in::register_start),
        )
        .route(
            "/webauthn/register/finish",
            post(warden_web::sign_in::register_finish),
        )
        .route(
            "/webauthn/assert/start",
            post(warden_web::sign_in::assert_start),
        )
        .route(
            "/webauthn/assert/finish",
            post(warden_web::sign_in::assert_finish),
        )
        .route(
            "/webauthn/remove/start",
            post(warden_web::sign_in::remove_start),
        )
        .route(
            "/webauthn/remove/finish",
            post(warden_web::sign_in::remove_finish),
        )
        .route(
            "/auth/passkey/start",
            post(warden_web::sign_in::signin_start),
        )
        .route(
            "/auth/passkey/finish",
            post(warden_web::sign_in::signin_finish),
        )
        .route(
            "/auth/cli",
            get(warden_web::sign_in::cli_consent).post(warden_web::sign_in::cli_authorize),
        )
        .route("/auth/cli/token", post(warden_web::sign_in::cli_token))
        .route(
            "/.well-known/oauth-authorization-server",
            get(warden_web::sign_in::cli_metadata),
        )
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
        .route("/v1/agent/join", post(warden_api::agent::join))
        .route("/v1/mesh/device", post(warden_api::mesh::enroll_device))
        .route("/v1/mesh/device/map", get(warden_api::mesh::device_map))
        .route("/v1/mesh/ranges", get(warden_api::mesh::device_ranges))
        .route("/", get(warden_web::sign_in::sign_in_page))
        .route("/account", get(warden_web::sign_in::account))
        .route("/enroll/{token}", get(warden_web::sign_in::enroll))
        .route("/static/passkey.js", get(warden_web::sign_in::passkey_js))
        .merge(sign_in)
        .route(
            "/auth/oidc/{name}/login",
            get(warden_web::sign_in::oidc_login),
        )
        .route(
            "/auth/oidc/{name}/callback",
            get(warden_web::sign_in::oidc_callback),
        )
        .route("/v1/audit/export", get(audit_export_bearer))
        .route("/console/audit/export", get(audit_export_session))
        .route(
            "/v1/compliance/evidence",
            get(warden_api::compliance::evidence_bearer),
        )
        .route(
            "/.well-known/security.txt",
            get(warden_api::vulns::security_txt),
        )
        .route("/healthz", get(ready))
        .route("/healthz/live", get(live))
        .route("/metrics", get(metrics))
        .merge(warden_web::console::routes())
        .fallback(not_found)
        .layer(axum::middleware::from_fn(browser_errors))
        .with_state(web.clone())
        .merge(warden_api::scim::routes().with_state(web.app));
    with_edge(routes, Some((imports, max_import)), edge, limits)
}

/// The admin socket's routes. Whoever can open the socket is the operator.
pub(crate) fn admin_router(web: Web, edge: EdgeState, limits: &Limits) -> Router {
    let routes = Router::new()
        .route("/graphql", post(graphql_operator))
        .route("/v1/audit/public_key", get(audit_public_key))
        .route("/v1/ssh/user_ca.pub", get(ssh_user_ca))
        .route("/v1/ssh/host_ca.pub", get(ssh_host_ca))
        .route("/v1/ssh/krl", get(ssh_krl))
        .route("/v1/x509/bundle.pem", get(x509_bundle))
        .route("/v1/audit/export", get(audit_export_operator))
        .route(
            "/v1/compliance/evidence",
            get(warden_api::compliance::evidence_operator),
        )
        .route("/healthz", get(ready))
        .fallback(not_found)
        .with_state(web.clone());
    let max_import = web.vuln.max_import_bytes;
    let imports = Router::new()
        .route("/v1/vuln/import", post(warden_api::vulns::import_operator))
        .with_state(web.app);
    with_edge(routes, Some((imports, max_import)), edge, limits)
}

/// The mutual-TLS listener's routes: every caller holds a certificate from Warden's CA.
pub(crate) fn mtls_router(app: App, edge: EdgeState, limits: &Limits) -> Router {
    let routes = Router::new()
        .route("/v1/agent/renew", post(warden_api::agent::renew))
        .route(
            "/v1/agent/break-glass",
            get(warden_api::agent::break_glass_keys).post(warden_api::agent::break_glass_use),
        )
        .route("/v1/mesh/enroll", post(warden_api::mesh::enroll_host))
        .route("/v1/mesh/map", get(warden_api::mesh::host_map))
        .route("/v1/mesh/ranges", get(warden_api::mesh::host_ranges))
        .route("/v1/ssh/user_ca.pub", get(ssh_user_ca))
        .route("/v1/ssh/host_ca.pub", get(ssh_host_ca))
        .route("/v1/ssh/krl", get(ssh_krl))
        .route("/v1/x509/bundle.pem", get(x509_bundle))
        .route("/healthz", get(ready))
        .route("/healthz/live", get(live))
        .fallback(not_found)
        .layer(axum::middleware::from_fn_with_state(
            app.clone(),
            warden_api::agent::contact,
        ))
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

/// The largest JSON error body turned into a page (errors are one line).
const ERROR_BODY_LIMIT: usize = 16 * 1024;

/// A browser navigating (`GET` asking for `text/html`) that is answered with a JSON error
/// gets the message as a page instead, with the same status; API clients, scripts' fetches
/// and every success are passed through untouched.
async fn browser_errors(request: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let navigating = request.method() == axum::http::Method::GET
        && request
            .headers()
            .get(axum::http::header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|accept| accept.contains("text/html"));
    let response = next.run(request).await;
    let status = response.status();
    let json = response
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.starts_with("application/json"));
    if !navigating || !json || !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    let (parts, body) = response.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, ERROR_BODY_LIMIT).await else {
        return warden_web::console::error_page(status, "internal error");
    };
    // `{"error": …}`, or GraphQL's shape, `{"errors": [{"message": …}]}`.
    let message = serde_json::from_slice::<serde_json::Value>(&bytes)
        .ok()
        .and_then(|v| {
            v.get("error")
                .or_else(|| v.pointer("/errors/0/message"))
                .and_then(|e| e.as_str())
                .map(str::to_owned)
        })
        .unwrap_or_else(|| status.canonical_reason().unwrap_or("error").to_owned());
    let mut page = warden_web::console::error_page(status, &message);
    // What tells the client when to come back, or how to sign in, stays.
    for name in [
        axum::http::header::RETRY_AFTER,
        axum::http::header::WWW_AUTHENTICATE,
    ] {
        if let Some(value) = parts.headers.get(&name) {
            page.headers_mut().insert(name, value.clone());
        }
    }
    page
}

/// An address that leads nowhere: a page for a browser, JSON for anything else.
async fn not_found(headers: axum::http::HeaderMap) -> Response {
    let browser = headers
        .get(axum::http::header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|accept| accept.contains("text/html"));
    if browser {
        return warden_web::console::not_found_page();
    }
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
    match app.store().ping().await {
        Ok(()) => axum::Json(json!({ "status": "ok", "database": "ok" })).into_response(),
        Err(err) => {
            tracing::warn!(error = %err, "readiness check failed");
            let body = json!({ "status": "unavailable", "database": "unreachable" });
            (StatusCode::SERVICE_UNAVAILABLE, axum::Json(body)).into_response()
        }
    }
}

async fn metrics(State(app): State<App>) -> Response {
    let text = app.metrics.render(app.store().pool_stats());
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
        .into_response()
}

/// Bearer refusals on `/graphql`, recorded against `graphql`.
#[derive(Debug)]
enum GraphqlCalls {}

impl BearerTarget for GraphqlCalls {
    const TARGET: &'static str = "graphql";
}

/// Bearer refusals on `/v1/audit/export`, recorded against `audit`.
#[derive(Debug)]
enum AuditExports {}

impl BearerTarget for AuditExports {
    const TARGET: &'static str = "audit";
}

/// `/graphql` on the public listener: the caller proves itself with a bearer token before a
/// byte of the body is read.
async fn graphql_bearer(
    State(web): State<Web>,
    Bearer(audit, _): Bearer<GraphqlCalls>,
    headers: HeaderMap,
    body: Result<JsonBody<async_graphql::Request>, BodyRejected>,
) -> Response {
    execute(&web, audit, &headers, body).await
}

/// `/graphql` on the admin socket: the caller is the operator.
async fn graphql_operator(
    State(web): State<Web>,
    Extension(RequestId(request_id)): Extension<RequestId>,
    headers: HeaderMap,
    body: Result<JsonBody<async_graphql::Request>, BodyRejected>,
) -> Response {
    let audit = operator_context(request_id);
    execute(&web, audit, &headers, body).await
}

async fn execute(
    app: &Web,
    audit: AuditContext,
    headers: &HeaderMap,
    body: Result<JsonBody<async_graphql::Request>, BodyRejected>,
) -> Response {
    if !declares_json(headers) {
        return graphql_error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "send the query as application/json",
        );
    }
    let request = match body {
        Ok(JsonBody(request)) => request,
        Err(rejected) => return graphql_error(rejected.status, &rejected.message),
    };
    if let Err(message) =
        crate::graphql::fields::check(&request.query, crate::graphql::fields::MAX_FIELDS)
    {
        return graphql_error(StatusCode::BAD_REQUEST, &message);
    }
    // The query and the record of its refusals run to completion in a task of their own: a
    // client that goes away or times out cannot leave a refusal unrecorded.
    let mut response = match app.api.execute(Caller::new(audit), request).await {
        Ok(response) => response,
        Err(e) => {
            tracing::error!(error = %e, "the GraphQL request has no answer");
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

/// Which events an export covers: sequence numbers, or times (RFC 3339); and, for a
/// selection, the audit log's filters (each an exact value).
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ExportQuery {
    since_seq: Option<u64>,
    until_seq: Option<u64>,
    since: Option<String>,
    until: Option<String>,
    actor: Option<String>,
    action: Option<String>,
    target: Option<String>,
    outcome: Option<String>,
}

impl ExportQuery {
    /// The filter given, if any: a field left empty (a form's blank) is no filter.
    fn selection(&self) -> Result<Option<warden_audit::Selection>, String> {
        let given = |v: &Option<String>| {
            v.as_deref()
                .map(str::trim)
                .filter(|v| !v.is_empty())
                .map(str::to_owned)
        };
        let outcome = given(&self.outcome)
            .map(|o| o.parse::<warden_audit::Outcome>())
            .transpose()
            .map_err(|e| e.to_string())?;
        let selection = warden_audit::Selection {
            actor: given(&self.actor),
            action: given(&self.action),
            target: given(&self.target),
            outcome: outcome.map(|o| o.as_str().to_owned()),
        };
        Ok((!selection.is_empty()).then_some(selection))
    }
}

async fn audit_export_bearer(
    State(app): State<App>,
    query: Result<axum::extract::Query<ExportQuery>, axum::extract::rejection::QueryRejection>,
    Bearer(audit, _): Bearer<AuditExports>,
) -> Response {
    if let Err(refused) =
        require(&app, &audit, crate::graphql::Capability::ReadAudit, "audit").await
    {
        return refused;
    }
    export(app, audit, query).await
}

/// `GET /console/audit/export?since=&until=`: the same verifiable export, for a person signed
/// in to the console who may read the log, as a file to save.
async fn audit_export_session(
    State(web): State<Web>,
    query: Result<axum::extract::Query<ExportQuery>, axum::extract::rejection::QueryRejection>,
    anonymous: warden_runtime::request::Anonymous,
    headers: HeaderMap,
) -> Response {
    let audit = match warden_web::console::signed_in(&web, anonymous, headers).await {
        Ok(audit) => audit,
        Err(elsewhere) => return elsewhere,
    };
    if let Err(refused) = require(
        &web.app,
        &audit,
        crate::graphql::Capability::ReadAudit,
        "audit",
    )
    .await
    {
        return refused;
    }
    let mut response = export(web.app.clone(), audit, query).await;
    if response.status().is_success() {
        response.headers_mut().insert(
            header::CONTENT_DISPOSITION,
            axum::http::HeaderValue::from_static("attachment; filename=\"warden-audit.jsonl\""),
        );
    }
    response
}

async fn audit_export_operator(
    State(app): State<App>,
    Extension(RequestId(request_id)): Extension<RequestId>,
    query: Result<axum::extract::Query<ExportQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let audit = operator_context(request_id);
    export(app, audit, query).await
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
    let selection = match q.selection() {
        Ok(selection) => selection,
        Err(m) => return bad(m),
    };
    let failed = |e: &dyn std::fmt::Display| {
        tracing::error!(error = %e, "audit export failed");
        graphql_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal error; see the server log",
        )
    };
    let size = match app.store().audit_size().await {
        Ok(size) => size,
        Err(e) => return failed(&e),
    };
    let oldest = match app.store().audit_first_seq().await {
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
        // An empty field (a form left blank) is no bound.
        let Some(value) = value.as_deref().map(str::trim).filter(|v| !v.is_empty()) else {
            continue;
        };
        // What a browser's date and time fields send: a day, or a time without seconds.
        let value = match value.len() {
            10 => format!("{value}T00:00:00Z"),
            16 if value.get(10..11) == Some("T") => format!("{value}:00Z"),
            _ => value.to_owned(),
        };
        let at = match warden_api::rfc3339(field, &value) {
            Ok(at) => at,
            Err(m) => return bad(m),
        };
        match app.store().first_seq_at_or_after(at).await {
            Ok(seq) if is_since => first = first.max(seq.unwrap_or(size + 1)),
            Ok(seq) => last = last.min(seq.map_or(size, |s| s - 1)),
            Err(e) => return failed(&e),
        }
    }
    let last = last.max(first - 1);
    let details = match &selection {
        None => serde_json::json!({ "first_seq": first, "last_seq": last }),
        Some(filter) => {
            serde_json::json!({ "first_seq": first, "last_seq": last, "filter": filter })
        }
    };
    // Reading the log is itself recorded, before anything is sent.
    let (store, ctx) = (app.store().clone(), audit.clone());
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
    let jsonl = [(header::CONTENT_TYPE, "application/jsonl; charset=utf-8")];
    if let Some(filter) = selection {
        let head = match app
            .audit
            .selection_head((first, last), filter.clone())
            .await
        {
            Ok(head) => head,
            Err(e) => return failed(&e),
        };
        let stream = app
            .audit
            .clone()
            .selection_stream(head, (first, last), filter);
        return (jsonl, axum::body::Body::from_stream(stream)).into_response();
    }
    let head = match app.audit.export_head(first, last).await {
        Ok(head) => head,
        Err(e) => return failed(&e),
    };
    let stream = app.audit.clone().export_stream(head, first, last);
    (jsonl, axum::body::Body::from_stream(stream)).into_response()
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
