//! SCIM 2.0 at `/scim/v2` (RFC 7644): Users and Groups, discovery, filters, PATCH, ETags.
//! Only API tokens with the `scim` role may call it; every change is audited (the store
//! writes the event in the change's transaction) and every refusal too.
//!
//! The protocol logic is in `warden-scim` (no I/O); the state in `warden-store`. Here are the
//! HTTP details: content types, `If-Match`/`If-None-Match`, `Location`, paging parameters,
//! `attributes`/`excludedAttributes`, and errors in the RFC's format.
//!
//! Decisions a client may need to know:
//! - Group members are named by the SCIM `id` Warden gave the user. A member whose id is
//!   shaped like Warden's ids but names no provisioned user yet is held, not refused (see
//!   `warden_store`'s `scim_groups`): the change succeeds, the member is made a member when the
//!   user with that id is provisioned, and until then it is a member nowhere: `GET
//!   /Groups/{id}`, every response and every filter show real members only. At most 10,000
//!   are held per group; beyond that the change is refused (400 `invalidValue`).
//! - `POST /.search` at the root searches Users, then Groups, paged as one list in that
//!   order, each resource with its own `schemas`. The filter is resolved against each type:
//!   a type whose schema lacks an attribute the filter names is left out (none of its
//!   resources match), so `userName eq "x"` searches Users only and `members[value eq "x"]`
//!   Groups only; `meta.resourceType eq "Group"` picks a type. A filter that fits neither type
//!   is refused as `/Users` refuses it.
//! - Removing `active` (PATCH `remove` with `path: "active"`) leaves the user as they are,
//!   enabled or disabled: see [`user_change`].

mod render;
mod search;

use std::net::SocketAddr;
use std::time::SystemTime;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, Extension, Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Value, json};
use warden_identity::AuthError;
use warden_model::{Actor, GroupName, Role, Timestamp, UserName, derive_name};
use warden_scim::schema::{GROUPS, USERS};
use warden_scim::{Filter, Patch, ScimError, canonical};
use warden_store::{AuditContext, HoldsStore, ScimGroupChange, ScimUserChange, StoreError};

use crate::edge::{RequestId, scim_error as error, scim_json, scim_too_many as too_many};
use crate::request::{App, deny, detached};
use render::{Projection, group_json, user_json};

/// The media type SCIM answers with.
/// The most resources one list page returns.
const MAX_COUNT: u64 = 1000;
/// A list page's size when the client names none.
const DEFAULT_COUNT: u64 = 100;

/// The routes under `/scim/v2`.
pub fn routes() -> Router<App> {
    Router::new()
        .route(
            "/scim/v2/ServiceProviderConfig",
            get(service_provider_config),
        )
        .route("/scim/v2/ResourceTypes", get(resource_types))
        .route("/scim/v2/ResourceTypes/{id}", get(resource_type))
        .route("/scim/v2/Schemas", get(schemas))
        .route("/scim/v2/Schemas/{id}", get(schema))
        .route("/scim/v2/.search", axum::routing::post(search::search_all))
        .route("/scim/v2/Users", get(list_users).post(create_user))
        .route("/scim/v2/Users/.search", axum::routing::post(search_users))
        .route(
            "/scim/v2/Users/{id}",
            get(read_user)
                .put(replace_user)
                .patch(patch_user)
                .delete(delete_user),
        )
        .route("/scim/v2/Groups", get(list_groups).post(create_group))
        .route(
            "/scim/v2/Groups/.search",
            axum::routing::post(search_groups),
        )
        .route(
            "/scim/v2/Groups/{id}",
            get(read_group)
                .put(replace_group)
                .patch(patch_group)
                .delete(delete_group),
        )
        .route("/scim/v2/{*rest}", axum::routing::any(unknown_endpoint))
}

/// A SCIM response: JSON with the SCIM media type.
/// A store error as the client sees it: theirs in full, ours opaque (the cause is logged).
fn store_error(e: StoreError, ctx: &AuditContext) -> Response {
    let scim = match e {
        StoreError::Scim(e) => e,
        StoreError::NotFound { .. } => ScimError::not_found(e.to_string()),
        StoreError::AlreadyExists { .. } => ScimError::uniqueness(e.to_string()),
        StoreError::Conflict(why) => ScimError {
            status: 409,
            scim_type: None,
            detail: why,
        },
        other => {
            tracing::error!(error = %other, "scim request failed");
            ScimError {
                status: 500,
                scim_type: None,
                detail: format!(
                    "internal error; quote request id {} to your operator",
                    ctx.request_id
                ),
            }
        }
    };
    error(&scim)
}

/// Who is calling: a valid API token with the `scim` role, or the response refusing them
/// (recorded as a denial).
async fn caller(
    app: &App,
    request_id: String,
    connect: Option<Extension<ConnectInfo<SocketAddr>>>,
    headers: &HeaderMap,
) -> Result<AuditContext, Response> {
    let now = Timestamp::from_system(SystemTime::now());
    let source = connect
        .as_ref()
        .map(|Extension(ConnectInfo(peer))| peer.ip());
    let mut ctx = AuditContext {
        actor: Actor::Anonymous,
        request_id,
        source: source.map(|ip| ip.to_string()),
        now,
    };
    let bearer = crate::request::bearer(headers);
    let refuse_unrecorded = || {
        let mut resp = error(&ScimError {
            status: 401,
            scim_type: None,
            detail: "authentication required: send a SCIM token as `Authorization: Bearer <token>`"
                .into(),
        });
        resp.headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        resp
    };
    let refuse = async |ctx: &AuditContext, reason: &str| {
        deny(app, ctx, "auth.token", "scim", reason).await;
        refuse_unrecorded()
    };
    // A request with something shaped like a token skipped the per-source budget at the edge
    // (an identity provider's sync is one source sending hundreds a second): a failure is
    // charged to the source here, a success to the token.
    let over_source_budget = || -> Option<Response> {
        let (limiter, source) = (app.source_budget.as_ref()?, source?);
        let wait = limiter.check(source).err()?;
        app.metrics.reject("http", "rate_limit");
        Some(too_many(
            format!("too many requests from {source}: retry after {wait}s"),
            wait,
        ))
    };
    let Some(bearer) = bearer else {
        return Err(refuse(&ctx, "no bearer token").await);
    };
    match warden_identity::authenticate(app.store(), bearer.trim(), now).await {
        Ok(actor) => ctx.actor = actor,
        Err(AuthError::Store(e)) => return Err(store_error(e, &ctx)),
        Err(e) => {
            if let Some(refused) = over_source_budget() {
                return Err(refused);
            }
            if e.names_a_token() {
                crate::request::deny_unsampled(app, &ctx, "auth.token", "scim", &e.to_string())
                    .await;
                return Err(refuse_unrecorded());
            }
            return Err(refuse(&ctx, &e.to_string()).await);
        }
    }
    if let (Some(budget), Some(token_id)) = (&app.scim_budget, crate::request::token_id(&ctx.actor))
        && let Err(wait) = budget.check(token_id)
    {
        app.metrics.reject("http", "per_token_rate_limit");
        return Err(too_many(
            format!(
                "too many requests with this SCIM token: retry after {wait}s (scim.per_token_rps)"
            ),
            wait,
        ));
    }
    if ctx.actor.role() != Some(Role::Scim) {
        let reason = "only a token with the scim role may use /scim/v2";
        deny(app, &ctx, "api.access", "scim", reason).await;
        return Err(error(&ScimError {
            status: 403,
            scim_type: None,
            detail: format!("permission denied: {reason}"),
        }));
    }
    Ok(ctx)
}

/// The request body as JSON, refusing other media types and malformed JSON.
fn body_json(headers: &HeaderMap, body: &[u8]) -> Result<Value, ScimError> {
    let media = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|m| m.trim().to_ascii_lowercase());
    if !matches!(
        media.as_deref(),
        Some("application/scim+json" | "application/json")
    ) {
        return Err(ScimError {
            status: 415,
            scim_type: None,
            detail: "send the body as application/scim+json or application/json".into(),
        });
    }
    serde_json::from_slice(body).map_err(|e| {
        ScimError::syntax(format!(
            "the body is not valid JSON: {} at line {} column {}",
            match e.classify() {
                serde_json::error::Category::Eof => "it ends early",
                serde_json::error::Category::Syntax => "syntax error",
                _ => "invalid data",
            },
            e.line(),
            e.column()
        ))
    })
}

/// `If-Match`: the version the client holds (`W/"3"`), `None` for absent or `*`. Text that is
/// not one of our ETags can never match: 412.
fn if_match(headers: &HeaderMap) -> Result<Option<i64>, ScimError> {
    let Some(value) = headers.get(header::IF_MATCH) else {
        return Ok(None);
    };
    let text = value.to_str().unwrap_or_default().trim();
    if text == "*" {
        return Ok(None);
    }
    parse_etag(text).map(Some).ok_or_else(|| {
        ScimError::precondition(format!(
            "If-Match `{}` is not a current ETag",
            text.chars().take(40).collect::<String>()
        ))
    })
}

fn parse_etag(text: &str) -> Option<i64> {
    let text = text.strip_prefix("W/").unwrap_or(text);
    text.strip_prefix('"')?.strip_suffix('"')?.parse().ok()
}

fn etag(version: i64) -> HeaderValue {
    HeaderValue::from_str(&format!("W/\"{version}\""))
        .unwrap_or(HeaderValue::from_static("W/\"0\""))
}

/// A resource response with its ETag (and `Location` when created).
fn resource(status: StatusCode, body: &Value, version: i64) -> Response {
    let mut resp = scim_json(status, body);
    resp.headers_mut().insert(header::ETAG, etag(version));
    if status == StatusCode::CREATED
        && let Some(location) = body.pointer("/meta/location").and_then(Value::as_str)
        && let Ok(v) = HeaderValue::from_str(location)
    {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    resp
}

/// 304 with the current ETag.
fn unchanged(version: i64) -> Response {
    let mut resp = StatusCode::NOT_MODIFIED.into_response();
    resp.headers_mut().insert(header::ETAG, etag(version));
    resp
}

/// `If-None-Match` naming the current version: 304.
fn not_modified(headers: &HeaderMap, version: i64) -> bool {
    headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| parse_etag(t.trim()) == Some(version)))
}

/// A query parameter by name, in any case.
fn param<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// `attributes` and `excludedAttributes`.
fn projection(pairs: &[(String, String)]) -> Projection {
    Projection::parse(
        param(pairs, "attributes"),
        param(pairs, "excludedAttributes"),
    )
}

/// A list request's parameters.
struct ListQuery {
    filter: Option<Filter>,
    start: u64,
    count: u64,
    projection: Projection,
}

impl ListQuery {
    fn parse(
        pairs: &[(String, String)],
        schema: &warden_scim::schema::ResourceSchema,
    ) -> Result<ListQuery, ScimError> {
        let mut q = ListQuery::unresolved(pairs)?;
        q.filter = q.filter.map(|f| f.resolve(schema)).transpose()?;
        Ok(q)
    }

    /// The parameters with the filter parsed but not yet resolved against a schema.
    fn unresolved(pairs: &[(String, String)]) -> Result<ListQuery, ScimError> {
        let number = |name: &str, default: i64| -> Result<i64, ScimError> {
            match param(pairs, name) {
                None => Ok(default),
                Some(v) => v.trim().parse().map_err(|_| {
                    ScimError::value(format!(
                        "`{name}` must be a whole number, not `{}`",
                        v.chars().take(40).collect::<String>()
                    ))
                }),
            }
        };
        let filter = match param(pairs, "filter") {
            Some(text) if !text.trim().is_empty() => Some(Filter::parse(text)?),
            _ => None,
        };
        let start = u64::try_from(number("startIndex", 1)?.max(1)).unwrap_or(1);
        let count = u64::try_from(
            number("count", i64::try_from(DEFAULT_COUNT).unwrap_or(i64::MAX))?.max(0),
        )
        .unwrap_or(0)
        .min(MAX_COUNT);
        Ok(ListQuery {
            filter,
            start,
            count,
            projection: projection(pairs),
        })
    }

    /// The parameters of a `POST …/.search` body.
    fn from_search(body: &Value) -> Vec<(String, String)> {
        let mut pairs = Vec::new();
        if let Some(object) = body.as_object() {
            for (k, v) in object {
                let text = match v {
                    Value::String(s) => s.clone(),
                    Value::Array(list) => list
                        .iter()
                        .filter_map(Value::as_str)
                        .collect::<Vec<_>>()
                        .join(","),
                    Value::Number(n) => n.to_string(),
                    _ => continue,
                };
                pairs.push((k.clone(), text));
            }
        }
        pairs
    }
}

fn query_pairs(raw: Option<String>) -> Vec<(String, String)> {
    url::form_urlencoded::parse(raw.unwrap_or_default().as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

fn list_response(total: u64, start: u64, items: Vec<Value>) -> Response {
    scim_json(
        StatusCode::OK,
        &json!({
            "schemas": [warden_scim::LIST_SCHEMA],
            "totalResults": total,
            "startIndex": start,
            "itemsPerPage": items.len(),
            "Resources": items,
        }),
    )
}

fn base(app: &App) -> String {
    format!("{}/scim/v2", app.public_url)
}

async fn service_provider_config(State(app): State<App>) -> Response {
    scim_json(
        StatusCode::OK,
        &json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"],
            "documentationUri": "https://github.com/warden/warden#scim",
            "patch": { "supported": true },
            "bulk": { "supported": false, "maxOperations": 0, "maxPayloadSize": 0 },
            "filter": { "supported": true, "maxResults": MAX_COUNT },
            "changePassword": { "supported": false },
            "sort": { "supported": false },
            "etag": { "supported": true },
            "authenticationSchemes": [{
                "type": "oauthbearertoken",
                "name": "OAuth Bearer Token",
                "description": "An API token with the scim role, made with `warden admin token create --role scim`",
                "primary": true,
            }],
            "meta": {
                "resourceType": "ServiceProviderConfig",
                "location": format!("{}/ServiceProviderConfig", base(&app)),
            },
        }),
    )
}

async fn resource_types(State(app): State<App>) -> Response {
    let items = vec![
        USERS.resource_type(&base(&app)),
        GROUPS.resource_type(&base(&app)),
    ];
    list_response(2, 1, items)
}

async fn resource_type(State(app): State<App>, Path(id): Path<String>) -> Response {
    match [&USERS, &GROUPS].into_iter().find(|s| s.name == id) {
        Some(s) => scim_json(StatusCode::OK, &s.resource_type(&base(&app))),
        None => error(&ScimError::not_found(format!(
            "resource type `{}` not found",
            id.chars().take(80).collect::<String>()
        ))),
    }
}

async fn schemas() -> Response {
    let items: Vec<Value> = USERS
        .definitions()
        .into_iter()
        .chain(GROUPS.definitions())
        .collect();
    list_response(items.len() as u64, 1, items)
}

async fn schema(Path(id): Path<String>) -> Response {
    let found = USERS
        .definitions()
        .into_iter()
        .chain(GROUPS.definitions())
        .find(|d| d.get("id").and_then(Value::as_str) == Some(id.as_str()));
    match found {
        Some(d) => scim_json(StatusCode::OK, &d),
        None => error(&ScimError::not_found(format!(
            "schema `{}` not found",
            id.chars().take(80).collect::<String>()
        ))),
    }
}

async fn unknown_endpoint() -> Response {
    error(&ScimError::not_found(
        "no such SCIM endpoint: use /Users, /Groups, /Schemas, /ResourceTypes or /ServiceProviderConfig",
    ))
}

/// A SCIM caller, authenticated (a `scim` token) before the handler runs.
struct Scim(AuditContext);

impl axum::extract::FromRequestParts<App> for Scim {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        app: &App,
    ) -> Result<Self, Self::Rejection> {
        let rid = parts
            .extensions
            .get::<RequestId>()
            .map(|RequestId(id)| id.clone())
            .unwrap_or_default();
        let connect = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| Extension(*c));
        caller(app, rid, connect, &parts.headers).await.map(Scim)
    }
}

async fn list_users(State(app): State<App>, Scim(ctx): Scim, RawQuery(raw): RawQuery) -> Response {
    users_page(&app, &ctx, &query_pairs(raw)).await
}

async fn search_users(
    State(app): State<App>,
    Scim(ctx): Scim,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    match body_json(&headers, &body) {
        Ok(body) => users_page(&app, &ctx, &ListQuery::from_search(&body)).await,
        Err(e) => error(&e),
    }
}

async fn users_page(app: &App, ctx: &AuditContext, pairs: &[(String, String)]) -> Response {
    let q = match ListQuery::parse(pairs, &USERS) {
        Ok(q) => q,
        Err(e) => return error(&e),
    };
    match app
        .store()
        .scim_users(q.filter.as_ref(), q.start, q.count)
        .await
    {
        Ok(list) => {
            let base = base(app);
            let items = list
                .items
                .iter()
                .map(|u| q.projection.apply(user_json(&base, u)))
                .collect();
            list_response(list.total, q.start, items)
        }
        Err(e) => store_error(e, ctx),
    }
}

async fn read_user(
    State(app): State<App>,
    Scim(ctx): Scim,
    headers: HeaderMap,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> Response {
    let projection = projection(&query_pairs(raw));
    match app.store().scim_user(&id).await {
        Ok(Some(u)) if not_modified(&headers, u.version) => unchanged(u.version),
        Ok(Some(u)) => resource(
            StatusCode::OK,
            &projection.apply(user_json(&base(&app), &u)),
            u.version,
        ),
        Ok(None) => error(&ScimError::not_found(format!(
            "user `{}` not found",
            id.chars().take(80).collect::<String>()
        ))),
        Err(e) => store_error(e, &ctx),
    }
}

/// A user body's canonical document and `active`, which Warden keeps as the user's state.
///
/// A body without `active` (a PUT that leaves it out, a PATCH that removes it) leaves the
/// user enabled or disabled as they are: RFC 7643 §4.1.1 leaves the meaning of `active` to
/// the service provider, and an attribute being unassigned must not change access. Enabling
/// a disabled person, or cutting off an enabled one, takes an explicit `active` value, so a
/// client tidying attributes never re-enables someone it deactivated. A new user without
/// `active` is enabled, as RFC 7643's examples assume.
fn user_change(body: &Value) -> Result<ScimUserChange, ScimError> {
    let mut document = canonical(&USERS, body)?;
    let active = document.remove("active").and_then(|v| v.as_bool());
    Ok(ScimUserChange { document, active })
}

async fn create_user(
    State(app): State<App>,
    Scim(ctx): Scim,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let prepared = body_json(&headers, &body).and_then(|b| {
        let change = user_change(&b)?;
        let user_name = change
            .document
            .get("userName")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let name = UserName::new(derive_name(user_name)).map_err(|_| {
            ScimError::value(format!(
                "userName `{}` gives no usable Warden user name: use letters or digits",
                user_name.chars().take(80).collect::<String>()
            ))
        })?;
        Ok((name, change))
    });
    let (name, change) = match prepared {
        Ok(p) => p,
        Err(e) => return refused(&app, &ctx, "user.create", "scim:user", e).await,
    };
    let (store, ctx2) = (app.store().clone(), ctx.clone());
    match detached(async move { store.scim_create_user(&ctx2, name, change).await }).await {
        Ok(u) => resource(StatusCode::CREATED, &user_json(&base(&app), &u), u.version),
        Err(e) => store_error(e, &ctx),
    }
}

/// Records a refused write whose body could not be read, and answers with its error.
async fn refused(
    app: &App,
    ctx: &AuditContext,
    action: &'static str,
    target: &str,
    e: ScimError,
) -> Response {
    let _ = crate::request::record_failure(app, ctx, action, target, &e.detail).await;
    error(&e)
}

async fn replace_user(
    State(app): State<App>,
    Scim(ctx): Scim,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let prepared =
        body_json(&headers, &body).and_then(|b| Ok((user_change(&b)?, if_match(&headers)?)));
    let (change, version) = match prepared {
        Ok(p) => p,
        Err(e) => return refused(&app, &ctx, "user.update", &format!("scim:user:{id}"), e).await,
    };
    let (store, ctx2, id2) = (app.store().clone(), ctx.clone(), id.clone());
    let done = detached(async move {
        store
            .scim_update_user(&ctx2, &id2, version, |_| Ok(change.clone()))
            .await
    })
    .await;
    match done {
        Ok(u) => resource(StatusCode::OK, &user_json(&base(&app), &u), u.version),
        Err(e) => store_error(e, &ctx),
    }
}

async fn patch_user(
    State(app): State<App>,
    Scim(ctx): Scim,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let prepared = body_json(&headers, &body)
        .and_then(|b| Ok((Patch::parse(&USERS, &b)?, if_match(&headers)?)));
    let (patch, version) = match prepared {
        Ok(p) => p,
        Err(e) => return refused(&app, &ctx, "user.update", &format!("scim:user:{id}"), e).await,
    };
    let (store, ctx2, id2) = (app.store().clone(), ctx.clone(), id.clone());
    let done = detached(async move {
        store
            .scim_update_user(&ctx2, &id2, version, |current| {
                let mut doc = Value::Object(current.document.clone());
                if let Some(map) = doc.as_object_mut() {
                    map.insert("active".into(), Value::Bool(current.active));
                }
                patch.apply(&USERS, &mut doc)?;
                user_change(&doc)
            })
            .await
    })
    .await;
    match done {
        Ok(u) => resource(StatusCode::OK, &user_json(&base(&app), &u), u.version),
        Err(e) => store_error(e, &ctx),
    }
}

async fn delete_user(
    State(app): State<App>,
    Scim(ctx): Scim,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let version = match if_match(&headers) {
        Ok(v) => v,
        Err(e) => return refused(&app, &ctx, "user.delete", &format!("scim:user:{id}"), e).await,
    };
    let (store, ctx2) = (app.store().clone(), ctx.clone());
    match detached(async move { store.scim_delete_user(&ctx2, &id, version).await }).await {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => store_error(e, &ctx),
    }
}

async fn list_groups(State(app): State<App>, Scim(ctx): Scim, RawQuery(raw): RawQuery) -> Response {
    groups_page(&app, &ctx, &query_pairs(raw)).await
}

async fn search_groups(
    State(app): State<App>,
    Scim(ctx): Scim,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    match body_json(&headers, &body) {
        Ok(body) => groups_page(&app, &ctx, &ListQuery::from_search(&body)).await,
        Err(e) => error(&e),
    }
}

async fn groups_page(app: &App, ctx: &AuditContext, pairs: &[(String, String)]) -> Response {
    let q = match ListQuery::parse(pairs, &GROUPS) {
        Ok(q) => q,
        Err(e) => return error(&e),
    };
    let members = q.projection.wants("members");
    match app
        .store()
        .scim_groups(q.filter.as_ref(), q.start, q.count, members)
        .await
    {
        Ok(list) => {
            let base = base(app);
            let items = list
                .items
                .iter()
                .map(|g| q.projection.apply(group_json(&base, g, members)))
                .collect();
            list_response(list.total, q.start, items)
        }
        Err(e) => store_error(e, ctx),
    }
}

async fn read_group(
    State(app): State<App>,
    Scim(ctx): Scim,
    headers: HeaderMap,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> Response {
    let projection = projection(&query_pairs(raw));
    let members = projection.wants("members");
    match app.store().scim_group(&id, members).await {
        Ok(Some(g)) if not_modified(&headers, g.version) => unchanged(g.version),
        Ok(Some(g)) => resource(
            StatusCode::OK,
            &projection.apply(group_json(&base(&app), &g, members)),
            g.version,
        ),
        Ok(None) => error(&ScimError::not_found(format!(
            "group `{}` not found",
            id.chars().take(80).collect::<String>()
        ))),
        Err(e) => store_error(e, &ctx),
    }
}

/// A group body's display name, external id and members.
fn group_change(body: &Value) -> Result<ScimGroupChange, ScimError> {
    let doc = canonical(&GROUPS, body)?;
    let display_name = doc
        .get("displayName")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let external_id = doc
        .get("externalId")
        .and_then(Value::as_str)
        .map(str::to_owned);
    let mut members = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for m in doc
        .get("members")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        if m.get("type")
            .and_then(Value::as_str)
            .is_some_and(|t| t.eq_ignore_ascii_case("group"))
        {
            return Err(ScimError::value(
                "nested groups are not supported: members must be users",
            ));
        }
        let Some(id) = m.get("value").and_then(Value::as_str) else {
            return Err(ScimError::value(
                "each member needs a `value`: the user's id",
            ));
        };
        if seen.insert(id) {
            members.push(id.to_owned());
        }
    }
    Ok(ScimGroupChange {
        display_name,
        external_id,
        members: Some(members),
    })
}

async fn create_group(
    State(app): State<App>,
    Scim(ctx): Scim,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let prepared = body_json(&headers, &body).and_then(|b| {
        let change = group_change(&b)?;
        let name = GroupName::new(derive_name(&change.display_name)).map_err(|_| {
            ScimError::value(format!(
                "displayName `{}` gives no usable Warden group name: use letters or digits",
                change.display_name.chars().take(80).collect::<String>()
            ))
        })?;
        Ok((name, change))
    });
    let (name, change) = match prepared {
        Ok(p) => p,
        Err(e) => return refused(&app, &ctx, "group.create", "scim:group", e).await,
    };
    let adoptable = app.scim.adopt_groups.contains(&name);
    if !adoptable && grants_management(&app.policy, &name) {
        let e = ScimError {
            status: 403,
            scim_type: None,
            detail: format!(
                "group `{name}` is given management rights by the policy in force: a SCIM client may provision it only if an operator lists it in scim.adopt_groups"
            ),
        };
        return refused(&app, &ctx, "group.create", &format!("group:{name}"), e).await;
    }
    let (store, ctx2) = (app.store().clone(), ctx.clone());
    let done = detached(async move {
        let g = store
            .scim_create_group(&ctx2, name, change, adoptable)
            .await?;
        store
            .scim_group(&g.id, true)
            .await
            .map(|found| found.unwrap_or(g))
    })
    .await;
    match done {
        Ok(g) => resource(
            StatusCode::CREATED,
            &group_json(&base(&app), &g, true),
            g.version,
        ),
        Err(e) => store_error(e, &ctx),
    }
}

/// Whether the policy in force gives the members of `group` a right over Warden's API that
/// someone outside every group lacks: such a group is not a SCIM client's to make.
fn grants_management(engine: &crate::policy::Engine, group: &GroupName) -> bool {
    // Not a valid user name, so no policy naming a real person matches it.
    let probe = |groups: Vec<String>| warden_policy::Subject::User {
        name: "scim:probe".to_owned(),
        groups,
        role: None,
    };
    let (member, outsider) = (probe(vec![group.as_str().to_owned()]), probe(Vec::new()));
    warden_runtime::authz::Capability::ALL
        .iter()
        .filter_map(|cap| cap.cedar())
        .any(|(action, api)| {
            let object = warden_policy::Object::Api(api.to_owned());
            let allowed = |who: &warden_policy::Subject| {
                engine
                    .decide(who, action, &object, &serde_json::json!({}))
                    .decided
                    .allow
            };
            allowed(&member) && !allowed(&outsider)
        })
}

async fn replace_group(
    State(app): State<App>,
    Scim(ctx): Scim,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let prepared =
        body_json(&headers, &body).and_then(|b| Ok((group_change(&b)?, if_match(&headers)?)));
    let (change, version) = match prepared {
        Ok(p) => p,
        Err(e) => return refused(&app, &ctx, "group.update", &format!("scim:group:{id}"), e).await,
    };
    let (store, ctx2, id2) = (app.store().clone(), ctx.clone(), id.clone());
    let done = detached(async move {
        store
            .scim_update_group(&ctx2, &id2, version, |_| Ok(change.clone()))
            .await
    })
    .await;
    match done {
        Ok(g) => resource(
            StatusCode::OK,
            &group_json(&base(&app), &g, true),
            g.version,
        ),
        Err(e) => store_error(e, &ctx),
    }
}

async fn patch_group(
    State(app): State<App>,
    Scim(ctx): Scim,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let prepared = body_json(&headers, &body)
        .and_then(|b| Ok((Patch::parse(&GROUPS, &b)?, if_match(&headers)?)));
    let (patch, version) = match prepared {
        Ok(p) => p,
        Err(e) => return refused(&app, &ctx, "group.update", &format!("scim:group:{id}"), e).await,
    };
    let (store, ctx2, id2) = (app.store().clone(), ctx.clone(), id.clone());
    let done = detached(async move {
        store
            .scim_update_group(&ctx2, &id2, version, |current| {
                // Held members are members to a PATCH: it can remove them, and a change that
                // does not name them keeps them.
                let members: Vec<Value> = current
                    .members
                    .iter()
                    .map(|m| m.id.as_str())
                    .chain(current.pending.iter().map(String::as_str))
                    .map(|id| json!({ "value": id }))
                    .collect();
                let mut doc = json!({
                    "displayName": current.display_name,
                    "externalId": current.external_id,
                    "members": members,
                });
                patch.apply(&GROUPS, &mut doc)?;
                group_change(&doc)
            })
            .await
    })
    .await;
    match done {
        Ok(g) => resource(
            StatusCode::OK,
            &group_json(&base(&app), &g, true),
            g.version,
        ),
        Err(e) => store_error(e, &ctx),
    }
}

async fn delete_group(
    State(app): State<App>,
    Scim(ctx): Scim,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let version = match if_match(&headers) {
        Ok(v) => v,
        Err(e) => return refused(&app, &ctx, "group.delete", &format!("scim:group:{id}"), e).await,
    };
    let (store, ctx2) = (app.store().clone(), ctx.clone());
    match detached(async move { store.scim_delete_group(&ctx2, &id, version).await }).await {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => store_error(e, &ctx),
    }
}
