//! The enrollment and map endpoints mesh agents and devices use, over the compiled mesh
//! ([`warden_runtime::mesh::Mesh`]).

use std::net::{SocketAddr, SocketAddr as Endpoint};

use axum::Json;
use axum::extract::{ConnectInfo, Extension, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use warden_mesh::PublicKey;
use warden_model::{Actor, Timestamp};
use warden_store::{AuditContext, HoldsStore, MeshNodeKind, NewMeshNode, Outcome, StoreError};

use crate::agent::{fail, verified_host};
use crate::edge::{PeerCertificate, RequestId};
use crate::request::{App, Bearer, BearerTarget, BodyRejected, JsonBody};

/// What a node sends to enroll (or renew its key).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnrollRequest {
    /// The device's name (devices only; a host is named by its certificate).
    #[serde(default)]
    pub name: Option<String>,
    /// Its WireGuard public key, base64.
    pub public_key: String,
    /// Where it receives WireGuard traffic, `IP:PORT`.
    #[serde(default)]
    pub endpoint: Option<String>,
}

/// What enrolling answers.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Enrolled {
    /// The node's name.
    pub name: String,
    /// Its overlay IPv4 address.
    pub ipv4: String,
    /// Its overlay IPv6 address.
    pub ipv6: String,
    /// The mesh's IPv4 range.
    pub ipv4_range: String,
    /// The mesh's IPv6 range.
    pub ipv6_range: String,
    /// When its key stops being accepted, seconds since the epoch.
    pub expires_at: u64,
}

fn unavailable(e: &dyn std::fmt::Display) -> Response {
    tracing::error!(error = %e, "mesh request failed");
    fail(
        StatusCode::SERVICE_UNAVAILABLE,
        "service unavailable; try again",
    )
}

fn secs(t: Timestamp) -> u64 {
    u64::try_from(t.as_millis() / 1000).unwrap_or(0)
}

/// An enrollment's body, or why it was refused.
type EnrollBody = Result<JsonBody<EnrollRequest>, BodyRejected>;

/// Checks an enrollment's key and endpoint.
fn parse_enroll(body: EnrollBody) -> Result<(EnrollRequest, PublicKey, Option<Endpoint>), String> {
    let JsonBody(request) = body.map_err(|rejected| rejected.message)?;
    let key: PublicKey = request
        .public_key
        .parse()
        .map_err(|e: warden_mesh::KeyError| e.to_string())?;
    let endpoint = match request.endpoint.as_deref() {
        None | Some("") => None,
        Some(e) => Some(e.parse::<Endpoint>().map_err(|_| {
            format!("`{e}` is not an endpoint: write it as IP:PORT, such as 192.0.2.7:51820")
        })?),
    };
    Ok((request, key, endpoint))
}

async fn enroll(app: &App, ctx: &AuditContext, node: NewMeshNode) -> Response {
    let ranges = *app.mesh.ranges();
    match app
        .store()
        .mesh_enroll(ctx, &node, |used| {
            ranges.allocate(used).map_err(|e| e.to_string())
        })
        .await
    {
        Ok(stored) => {
            let Some((ipv4, ipv6)) = ranges.addresses(stored.address_offset) else {
                return unavailable(&"the node's offset is outside the mesh range");
            };
            // Compile at once so the node's first map request finds it.
            if let Err(e) = app.mesh.refresh(app.store(), &app.policy).await {
                return unavailable(&e);
            }
            Json(Enrolled {
                name: stored.name,
                ipv4: ipv4.to_string(),
                ipv6: ipv6.to_string(),
                ipv4_range: ranges.ipv4().to_string(),
                ipv6_range: ranges.ipv6().to_string(),
                expires_at: stored.expires_at.map_or(0, secs),
            })
            .into_response()
        }
        Err(StoreError::Conflict(message)) => fail(StatusCode::CONFLICT, &message),
        Err(e) => unavailable(&e),
    }
}

async fn refuse(app: &App, ctx: &AuditContext, target: &str, reason: &str) -> Response {
    if let Err(e) = app
        .store()
        .record(
            ctx,
            "mesh.node.enroll",
            target,
            serde_json::Value::Null,
            Outcome::Failure,
            Some(reason),
        )
        .await
    {
        return unavailable(&e);
    }
    fail(StatusCode::BAD_REQUEST, reason)
}

/// `POST /v1/mesh/enroll` over mutual TLS: a host's agent enrolls its key.
pub async fn enroll_host(
    State(app): State<App>,
    Extension(RequestId(request_id)): Extension<RequestId>,
    connect: Option<Extension<ConnectInfo<SocketAddr>>>,
    certificate: Option<Extension<PeerCertificate>>,
    body: EnrollBody,
) -> Response {
    let source = connect.map(|Extension(ConnectInfo(p))| p);
    let (ctx, name) =
        match verified_host(&app, request_id, source, certificate, "mesh.node.enroll").await {
            Ok((ctx, host)) => (ctx, host.name),
            Err(response) => return response,
        };
    let (_, key, endpoint) = match parse_enroll(body) {
        Ok(parsed) => parsed,
        Err(reason) => return refuse(&app, &ctx, &format!("mesh-node:{name}"), &reason).await,
    };
    let node = NewMeshNode {
        name: name.clone(),
        kind: MeshNodeKind::Host,
        owner: name,
        public_key: key.to_string(),
        endpoint: endpoint.map(|e| e.to_string()),
        expires_at: Some(ctx.now.plus(app.mesh.config().host_key_ttl)),
    };
    enroll(&app, &ctx, node).await
}

/// Map query parameters.
#[derive(Debug, Deserialize)]
pub struct MapParams {
    #[serde(default)]
    after: u64,
    #[serde(default)]
    node: Option<String>,
}

async fn answer_map(app: &App, name: &str, after: u64) -> Response {
    match app.mesh.map(name, after).await {
        Some(map) => Json(map).into_response(),
        None => fail(
            StatusCode::NOT_FOUND,
            &format!(
                "`{name}` is not in the mesh: it was removed, its key expired or its owner was disabled; enroll again"
            ),
        ),
    }
}

/// `GET /v1/mesh/map?after=N` over mutual TLS: a host's map.
pub async fn host_map(
    State(app): State<App>,
    Extension(RequestId(request_id)): Extension<RequestId>,
    connect: Option<Extension<ConnectInfo<SocketAddr>>>,
    certificate: Option<Extension<PeerCertificate>>,
    Query(params): Query<MapParams>,
) -> Response {
    let source = connect.map(|Extension(ConnectInfo(p))| p);
    match verified_host(&app, request_id, source, certificate, "mesh.map").await {
        Ok((_, host)) => answer_map(&app, &host.name, params.after).await,
        Err(response) => response,
    }
}

/// Bearer refusals on the mesh's device routes, recorded against `mesh`.
#[derive(Debug)]
pub enum MeshCalls {}

impl BearerTarget for MeshCalls {
    const TARGET: &'static str = "mesh";
}

/// The person behind a bearer token, with how recently they signed in with a passkey.
async fn person_of(
    app: &App,
    ctx: AuditContext,
) -> Result<(AuditContext, String, Timestamp), Response> {
    let Actor::User { name, token_id, .. } = &ctx.actor else {
        crate::request::deny(
            app,
            &ctx,
            "mesh.node.enroll",
            "mesh",
            "only a person's devices join the mesh",
        )
        .await;
        return Err(fail(
            StatusCode::FORBIDDEN,
            "permission denied: only a person's devices join the mesh; hosts join through the agent",
        ));
    };
    let Some(credential) = app
        .store()
        .token_credential(token_id)
        .await
        .map_err(|e| unavailable(&e))?
    else {
        return Err(unavailable(&"token vanished"));
    };
    Ok((ctx.clone(), name.to_string(), credential.token.created_at))
}

/// `POST /v1/mesh/device` with a person's token: enrolls one of their devices. The token
/// must come from a passkey sign-in (`warden login`) no older than `mesh.signin_max_age`.
pub async fn enroll_device(
    State(app): State<App>,
    Bearer(ctx, _): Bearer<MeshCalls>,
    body: EnrollBody,
) -> Response {
    let (ctx, owner, signed_in) = match person_of(&app, ctx).await {
        Ok(p) => p,
        Err(response) => return response,
    };
    let (request, key, endpoint) = match parse_enroll(body) {
        Ok(parsed) => parsed,
        Err(reason) => return refuse(&app, &ctx, "mesh", &reason).await,
    };
    let Some(name) = request
        .name
        .filter(|n| warden_model::HostName::new(n.as_str()).is_ok())
    else {
        return refuse(
            &app,
            &ctx,
            "mesh",
            "a device needs a name: lowercase letters, digits, `-` and `.`, such as `alice-laptop`",
        )
        .await;
    };
    let max_age = app.mesh.config().signin_max_age;
    if signed_in.plus(max_age) < ctx.now {
        let reason = format!(
            "a device joins the mesh only within {} of a passkey sign-in: run `warden login` again",
            humantime::format_duration(max_age)
        );
        crate::request::deny(
            &app,
            &ctx,
            "mesh.node.enroll",
            &format!("mesh-node:{name}"),
            &reason,
        )
        .await;
        return fail(
            StatusCode::FORBIDDEN,
            &format!("permission denied: {reason}"),
        );
    }
    let node = NewMeshNode {
        name,
        kind: MeshNodeKind::Device,
        owner,
        public_key: key.to_string(),
        endpoint: endpoint.map(|e| e.to_string()),
        expires_at: Some(ctx.now.plus(app.mesh.config().device_key_ttl)),
    };
    enroll(&app, &ctx, node).await
}

/// `GET /v1/mesh/device/map?node=NAME&after=N` with the owner's token.
pub async fn device_map(
    State(app): State<App>,
    Query(params): Query<MapParams>,
    Bearer(ctx, _): Bearer<MeshCalls>,
) -> Response {
    let Some(name) = params.node else {
        return fail(StatusCode::BAD_REQUEST, "name the device: ?node=NAME");
    };
    let owner = match app.store().mesh_node(&name).await {
        Ok(node) => node
            .filter(|n| n.kind == MeshNodeKind::Device)
            .map(|n| n.owner),
        Err(e) => return unavailable(&e),
    };
    let mine = matches!(&ctx.actor, Actor::User { name: who, .. } if Some(who.as_str()) == owner.as_deref());
    if !mine {
        crate::request::deny(
            &app,
            &ctx,
            "mesh.map",
            &format!("mesh-node:{name}"),
            "not the device's owner",
        )
        .await;
        return fail(
            StatusCode::FORBIDDEN,
            &format!("permission denied: `{name}` is not one of your devices"),
        );
    }
    answer_map(&app, &name, params.after).await
}

/// The mesh's ranges, for a node to check against its own networks before enrolling.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Ranges {
    /// The IPv4 range.
    pub ipv4_range: String,
    /// The IPv6 range.
    pub ipv6_range: String,
}

fn ranges_of(app: &App) -> Response {
    let ranges = app.mesh.ranges();
    Json(Ranges {
        ipv4_range: ranges.ipv4().to_string(),
        ipv6_range: ranges.ipv6().to_string(),
    })
    .into_response()
}

/// `GET /v1/mesh/ranges` with a bearer token.
pub async fn device_ranges(State(app): State<App>, _: Bearer<MeshCalls>) -> Response {
    ranges_of(&app)
}

/// `GET /v1/mesh/ranges` over mutual TLS.
pub async fn host_ranges(
    State(app): State<App>,
    Extension(RequestId(request_id)): Extension<RequestId>,
    connect: Option<Extension<ConnectInfo<SocketAddr>>>,
    certificate: Option<Extension<PeerCertificate>>,
) -> Response {
    let source = connect.map(|Extension(ConnectInfo(p))| p);
    match verified_host(&app, request_id, source, certificate, "mesh.map").await {
        Ok(_) => ranges_of(&app),
        Err(response) => response,
    }
}
