//! The mesh in the server: the compiled netmap, kept current from the store and the policy
//! in force, and the enrollment and map endpoints agents and devices use.
//!
//! Every committed change (and a one-second tick, for key expiry and other replicas) makes the
//! compiler read the nodes again; a node that differs is changed in the netmap alone, and a new
//! policy version recompiles everything. The nodes whose maps changed get a new version, and
//! their long-polls (`GET …/map?after=N`) answer at once; the others keep waiting.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{SocketAddr, SocketAddr as Endpoint};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum::Json;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, Extension, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use tokio::sync::{RwLock, watch};
use warden_mesh::{MeshRanges, Netmap, Node, NodeKind, NodeMap, PublicKey, connect_rules};
use warden_model::{Actor, Timestamp};
use warden_store::{
    AuditContext, MeshMember, MeshNodeKind, NewMeshNode, Outcome, Store, StoreError,
};

use crate::agent_api::{fail, verified_host};
use crate::config::MeshConfig;
use crate::edge::{PeerCertificate, RequestId};
use crate::http::App;

/// How long a map request waits for a change before answering with the same version.
const LONG_POLL: Duration = Duration::from_secs(25);

/// The compiled mesh of one server.
pub(crate) struct Mesh {
    config: MeshConfig,
    state: RwLock<Compiled>,
    generation: watch::Sender<u64>,
}

impl std::fmt::Debug for Mesh {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mesh").finish_non_exhaustive()
    }
}

#[derive(Default)]
struct Compiled {
    netmap: Netmap,
    /// The generation at which each node's map last changed.
    versions: BTreeMap<String, u64>,
    /// The policy version compiled, once compiled.
    policy: Option<Option<i64>>,
    generation: u64,
}

/// A node's map with its version, as agents receive it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MeshMap {
    /// Changes whenever the map does; send it back as `after`.
    pub version: u64,
    /// The map.
    pub map: NodeMap,
}

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

impl Mesh {
    pub(crate) fn new(config: MeshConfig) -> Arc<Mesh> {
        Arc::new(Mesh {
            config,
            state: RwLock::new(Compiled::default()),
            generation: watch::channel(0).0,
        })
    }

    pub(crate) fn ranges(&self) -> &MeshRanges {
        &self.config.ranges
    }

    /// Keeps the netmap current until the task is dropped.
    pub(crate) async fn run(
        self: Arc<Self>,
        store: Arc<Store>,
        policy: Arc<crate::policy::Engine>,
    ) {
        let mut changes = store.subscribe();
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            tokio::select! {
                changed = changes.recv() => match changed {
                    Ok(actions) if !actions.iter().any(|a| warden_model::changes::changes_mesh(a)) => continue,
                    _ => {}
                },
                _ = tick.tick() => {}
            }
            if let Err(e) = self.refresh(&store, &policy).await {
                tracing::error!(error = %e, "mesh refresh failed");
            }
        }
    }

    /// Reads the nodes and the policy again and changes what differs.
    pub(crate) async fn refresh(
        &self,
        store: &Store,
        policy: &crate::policy::Engine,
    ) -> Result<(), StoreError> {
        let now = Timestamp::from_system(SystemTime::now());
        let members = store.mesh_members(now).await?;
        let nodes: Vec<Node> = members.iter().filter_map(|m| self.node_of(m)).collect();
        let active = policy.active();
        let mut state = self.state.write().await;
        let mut touched: BTreeSet<String> = BTreeSet::new();
        if state.policy != Some(active.version) {
            let rules = active
                .policies
                .policies_json()
                .map_err(|e| e.to_string())
                .and_then(|json| connect_rules(&json).map_err(|e| e.to_string()));
            let rules = rules.unwrap_or_else(|reason| {
                tracing::error!(%reason, "the policy in force has connect policies the mesh cannot compile: nothing is allowed");
                Vec::new()
            });
            touched.extend(state.netmap.names().cloned());
            state.netmap = Netmap::new(rules, nodes);
            touched.extend(state.netmap.names().cloned());
            state.policy = Some(active.version);
        } else {
            let live: BTreeSet<&str> = nodes.iter().map(|n| n.name.as_str()).collect();
            let gone: Vec<String> = state
                .netmap
                .names()
                .filter(|n| !live.contains(n.as_str()))
                .cloned()
                .collect();
            for name in gone {
                touched.extend(state.netmap.remove(&name));
            }
            for node in nodes {
                touched.extend(state.netmap.upsert(node));
            }
        }
        if !touched.is_empty() {
            state.generation += 1;
            let generation = state.generation;
            for name in touched {
                state.versions.insert(name, generation);
            }
            self.generation.send_replace(generation);
        }
        Ok(())
    }

    fn node_of(&self, m: &MeshMember) -> Option<Node> {
        if !m.live {
            return None;
        }
        let (ipv4, ipv6) = self.config.ranges.addresses(m.node.address_offset)?;
        Some(Node {
            name: m.node.name.clone(),
            kind: match m.node.kind {
                MeshNodeKind::Host => NodeKind::Host {
                    labels: m.labels.clone(),
                },
                MeshNodeKind::Device => NodeKind::Device {
                    owner: m.node.owner.clone(),
                    groups: m.groups.clone(),
                },
            },
            key: m.node.public_key.parse().ok()?,
            ipv4,
            ipv6,
            endpoint: m.node.endpoint.as_deref().and_then(|e| e.parse().ok()),
        })
    }

    /// `name`'s map once its version passes `after` (at once when it already has), or its
    /// current map after the long-poll; `None` when the node is not in the mesh.
    pub(crate) async fn map(&self, name: &str, after: u64) -> Option<MeshMap> {
        let mut generation = self.generation.subscribe();
        let deadline = tokio::time::Instant::now() + LONG_POLL;
        loop {
            {
                let state = self.state.read().await;
                state.netmap.node(name)?;
                let version = state.versions.get(name).copied().unwrap_or(0);
                if version > after || after == 0 || tokio::time::Instant::now() >= deadline {
                    let map = state.netmap.render(name)?;
                    return Some(MeshMap { version, map });
                }
            }
            if tokio::time::timeout_at(deadline, generation.changed())
                .await
                .is_err()
            {
                continue;
            }
        }
    }
}

/// Checks that the `connect` policies of `policies` compile, and that every tag key they
/// test is a label some joined host carries (a misspelt label would silently match nothing).
pub(crate) fn check_policies(
    policies: &warden_policy::Policies,
    known_labels: &BTreeSet<String>,
) -> Result<(), String> {
    let json = policies.policies_json().map_err(|e| e.to_string())?;
    let rules = connect_rules(&json).map_err(|e| e.to_string())?;
    for (key, using) in warden_mesh::rules::tag_keys(&rules) {
        if !known_labels.contains(&key) {
            let policy = using.into_iter().next().unwrap_or_default();
            return Err(format!(
                "policy `{policy}` tests the label `{key}`, which no joined host carries: check its spelling, or join a host with `--label {key}=…` first"
            ));
        }
    }
    Ok(())
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

/// Checks an enrollment's key and endpoint.
fn parse_enroll(body: &[u8]) -> Result<(EnrollRequest, PublicKey, Option<Endpoint>), String> {
    let request: EnrollRequest =
        serde_json::from_slice(body).map_err(|e| format!("invalid request body: {e}"))?;
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
        .store
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
            if let Err(e) = app.mesh.refresh(&app.store, &app.policy).await {
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
        .store
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
pub(crate) async fn enroll_host(
    State(app): State<App>,
    Extension(RequestId(request_id)): Extension<RequestId>,
    connect: Option<Extension<ConnectInfo<SocketAddr>>>,
    certificate: Option<Extension<PeerCertificate>>,
    body: Bytes,
) -> Response {
    let source = connect.map(|Extension(ConnectInfo(p))| p);
    let (ctx, name) =
        match verified_host(&app, request_id, source, certificate, "mesh.node.enroll").await {
            Ok((ctx, host)) => (ctx, host.name),
            Err(response) => return response,
        };
    let (_, key, endpoint) = match parse_enroll(&body) {
        Ok(parsed) => parsed,
        Err(reason) => return refuse(&app, &ctx, &format!("mesh-node:{name}"), &reason).await,
    };
    let node = NewMeshNode {
        name: name.clone(),
        kind: MeshNodeKind::Host,
        owner: name,
        public_key: key.to_string(),
        endpoint: endpoint.map(|e| e.to_string()),
        expires_at: Some(ctx.now.plus(app.mesh.config.host_key_ttl)),
    };
    enroll(&app, &ctx, node).await
}

/// Map query parameters.
#[derive(Debug, Deserialize)]
pub(crate) struct MapParams {
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
pub(crate) async fn host_map(
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

/// The person behind a bearer token, with how recently they signed in with a passkey.
async fn person_of(
    app: &App,
    request_id: String,
    connect: Option<Extension<ConnectInfo<SocketAddr>>>,
    headers: &HeaderMap,
) -> Result<(AuditContext, String, Timestamp), Response> {
    let ctx = crate::http::bearer_context(app, request_id, connect, headers, "mesh").await?;
    let Actor::User { name, token_id, .. } = &ctx.actor else {
        crate::http::deny(
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
        .store
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
pub(crate) async fn enroll_device(
    State(app): State<App>,
    Extension(RequestId(request_id)): Extension<RequestId>,
    connect: Option<Extension<ConnectInfo<SocketAddr>>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (ctx, owner, signed_in) = match person_of(&app, request_id, connect, &headers).await {
        Ok(p) => p,
        Err(response) => return response,
    };
    let (request, key, endpoint) = match parse_enroll(&body) {
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
    let max_age = app.mesh.config.signin_max_age;
    if signed_in.plus(max_age) < ctx.now {
        let reason = format!(
            "a device joins the mesh only within {} of a passkey sign-in: run `warden login` again",
            humantime::format_duration(max_age)
        );
        crate::http::deny(
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
        expires_at: Some(ctx.now.plus(app.mesh.config.device_key_ttl)),
    };
    enroll(&app, &ctx, node).await
}

/// `GET /v1/mesh/device/map?node=NAME&after=N` with the owner's token.
pub(crate) async fn device_map(
    State(app): State<App>,
    Extension(RequestId(request_id)): Extension<RequestId>,
    connect: Option<Extension<ConnectInfo<SocketAddr>>>,
    headers: HeaderMap,
    Query(params): Query<MapParams>,
) -> Response {
    let ctx = match crate::http::bearer_context(&app, request_id, connect, &headers, "mesh").await {
        Ok(ctx) => ctx,
        Err(response) => return response,
    };
    let Some(name) = params.node else {
        return fail(StatusCode::BAD_REQUEST, "name the device: ?node=NAME");
    };
    let owner = match app.store.mesh_node(&name).await {
        Ok(node) => node
            .filter(|n| n.kind == MeshNodeKind::Device)
            .map(|n| n.owner),
        Err(e) => return unavailable(&e),
    };
    let mine = matches!(&ctx.actor, Actor::User { name: who, .. } if Some(who.as_str()) == owner.as_deref());
    if !mine {
        crate::http::deny(
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
pub(crate) async fn device_ranges(
    State(app): State<App>,
    Extension(RequestId(request_id)): Extension<RequestId>,
    connect: Option<Extension<ConnectInfo<SocketAddr>>>,
    headers: HeaderMap,
) -> Response {
    match crate::http::bearer_context(&app, request_id, connect, &headers, "mesh").await {
        Ok(_) => ranges_of(&app),
        Err(response) => response,
    }
}

/// `GET /v1/mesh/ranges` over mutual TLS.
pub(crate) async fn host_ranges(
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
