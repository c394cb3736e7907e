//! The host agent's API. `POST /v1/agent/join` on the public listener spends a one-time join
//! token; everything after that goes over the mutual-TLS listener, where the agent proves
//! itself with the client certificate it got at join (`spiffe://TRUST_DOMAIN/host/NAME`):
//! `POST /v1/agent/renew` and the CA and KRL downloads.
//!
//! The agent makes its keys itself and sends only public halves (an SSH public key and a
//! PKCS#10 CSR), so private keys never leave the host.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::SystemTime;

use axum::extract::{ConnectInfo, Extension, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::json;
use warden_model::{Actor, AuthMethod, HostName, KeyId, Timestamp};
use warden_pki::ssh::{Kind, parse_public_key};
use warden_pki::x509::{SpiffeId, SubjectKey, parse_csr};
use warden_store::{AuditContext, HoldsStore, Host};

use crate::ca::SshIssue;
use crate::edge::{PeerCertificate, RequestId};
use crate::request::{App, BodyRejected, JsonBody, deny, detached};

/// What an agent sends to join.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JoinRequest {
    /// The host's SSH public key (`ssh-ed25519 AAAA…`), to certify.
    pub ssh_host_key: String,
    /// A PKCS#10 CSR (PEM) for the agent's mutual-TLS key.
    pub csr: String,
    /// Where the host's sshd listens (`HOST:PORT`), for the proxy.
    pub sshd_addr: String,
}

/// What an agent sends to renew.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RenewRequest {
    /// The host's SSH public key.
    pub ssh_host_key: String,
    /// A CSR for the agent's mutual-TLS key.
    pub csr: String,
}

/// Everything an agent keeps: its certificates and what to trust.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AgentCredentials {
    /// The host's name.
    pub host: String,
    /// The agent's SPIFFE id.
    pub spiffe_id: String,
    /// The SSH host certificate (OpenSSH line).
    pub host_certificate: String,
    /// When it expires, seconds since the epoch.
    pub host_certificate_valid_before: u64,
    /// The mutual-TLS client certificate, PEM.
    pub client_certificate: String,
    /// When it expires, seconds since the epoch.
    pub client_certificate_not_after: u64,
    /// The issuing CA certificate, PEM.
    pub chain: String,
    /// The trusted X.509 roots, PEM.
    pub bundle: String,
    /// Trusted SSH user CA keys, one per line (for `TrustedUserCAKeys`).
    pub user_ca: String,
    /// Trusted SSH host CA keys, one per line, the signing key first.
    pub host_ca: String,
    /// Where the mutual-TLS listener is, `HOST:PORT`.
    pub mtls_address: String,
}

/// A refusal the agent reads: `{"error": message}` with `status`.
pub fn fail(status: StatusCode, message: &str) -> Response {
    (status, axum::Json(json!({ "error": message }))).into_response()
}

/// The audit context of an agent's request, now.
pub fn context(request_id: String, source: Option<SocketAddr>, actor: Actor) -> AuditContext {
    AuditContext {
        actor,
        request_id,
        source: source.map(|p| p.ip().to_string()),
        now: Timestamp::from_system(SystemTime::now()),
    }
}

/// The version an agent states in its `User-Agent` (`warden-agent/VERSION`): at most 64
/// characters of letters, digits and `.+-_`; anything else is not recorded.
pub fn agent_version(user_agent: &str) -> Option<&str> {
    let version = user_agent.strip_prefix("warden-agent/")?;
    (!version.is_empty()
        && version.len() <= 64
        && version
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '+' | '-' | '_')))
    .then_some(version)
}

/// The requests that mark an agent's contact: the KRL, which every refresh fetches first,
/// and a renewal. The refresh's other requests would only repeat the note.
const CONTACTS: [&str; 2] = ["/v1/ssh/krl", "/v1/agent/renew"];

/// Notes each refresh or renewal of a host's agent that Warden answers with success: the
/// host's last contact and the agent's version (host health on the Hosts page and in the
/// API). A request that fails, or a certificate naming no host, notes nothing.
pub async fn contact(
    State(app): State<App>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    if !CONTACTS.contains(&request.uri().path()) {
        return next.run(request).await;
    }
    let peer = request.extensions().get::<PeerCertificate>().cloned();
    let version = request
        .headers()
        .get(axum::http::header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .and_then(agent_version)
        .map(str::to_owned);
    let response = next.run(request).await;
    if response.status().is_success()
        && let Some(peer) = peer
        && let Ok((host, _)) = peer_host(&app, &peer)
    {
        let now = Timestamp::from_system(SystemTime::now());
        // Often enough that a host polling on time never looks offline; at most every 15 s.
        let every = (app.agent.offline_after / 4).min(std::time::Duration::from_secs(15));
        let every_ms = i64::try_from(every.as_millis()).unwrap_or(15_000);
        if let Err(e) = app
            .store()
            .host_contact(host.as_str(), now, version.as_deref(), every_ms)
            .await
        {
            tracing::warn!(error = %e, host = %host, "cannot note the agent's contact");
        }
    }
    response
}

/// Checks the public halves before anything is spent: a bad key or CSR is the caller's
/// mistake (400) and must not burn a join token.
fn check_keys(ssh_host_key: &str, csr: &str) -> Result<(), String> {
    parse_public_key(ssh_host_key).map_err(|e| e.to_string())?;
    parse_csr(csr).map_err(|e| e.to_string())?;
    Ok(())
}

/// `POST /v1/agent/join` with `Authorization: Bearer wjt_…`.
pub async fn join(
    State(app): State<App>,
    Extension(RequestId(request_id)): Extension<RequestId>,
    connect: Option<Extension<ConnectInfo<SocketAddr>>>,
    headers: HeaderMap,
    body: Result<JsonBody<JoinRequest>, BodyRejected>,
) -> Response {
    let source = connect.map(|Extension(ConnectInfo(p))| p);
    let ctx = context(request_id, source, Actor::Anonymous);
    let presented = crate::request::bearer(&headers);
    let token = match presented.map(warden_identity::parse_join_token) {
        Some(Ok(token)) => token,
        Some(Err(e)) => {
            deny(&app, &ctx, "host.join", "join-token", &e.to_string()).await;
            return fail(StatusCode::UNAUTHORIZED, &e.to_string());
        }
        None => {
            deny(&app, &ctx, "host.join", "join-token", "no join token").await;
            return fail(
                StatusCode::UNAUTHORIZED,
                "send the join token as `Authorization: Bearer wjt_…`",
            );
        }
    };
    let request = match body {
        Ok(JsonBody(request)) => request,
        Err(rejected) => return rejected.into_response(),
    };
    if let Err(message) = check_keys(&request.ssh_host_key, &request.csr) {
        return fail(StatusCode::BAD_REQUEST, &message);
    }
    if request.sshd_addr.parse::<SocketAddr>().is_err() {
        return fail(
            StatusCode::BAD_REQUEST,
            &format!(
                "invalid sshd_addr `{}`: use IP:PORT",
                request.sshd_addr.chars().take(64).collect::<String>()
            ),
        );
    }
    let (store, join_ctx, id, sshd_addr) = (
        app.store().clone(),
        ctx.clone(),
        token.id().to_owned(),
        request.sshd_addr.clone(),
    );
    let joined = detached(async move {
        store
            .join_host(&join_ctx, &id, &sshd_addr, |cred| {
                token.matches(&cred.secret_hash)
            })
            .await
    })
    .await;
    let host = match joined {
        Ok(host) => host,
        Err(e) if e.is_user_error() => return fail(StatusCode::FORBIDDEN, &e.to_string()),
        Err(e) => {
            tracing::error!(error = %e, "join failed");
            return fail(
                StatusCode::SERVICE_UNAVAILABLE,
                "service unavailable; try again",
            );
        }
    };
    credentials(&app, ctx, host, request.ssh_host_key, request.csr).await
}

/// The host a mutual-TLS client certificate names, if it is an agent's.
fn peer_host(app: &App, certificate: &PeerCertificate) -> Result<(HostName, u64), String> {
    let (_, cert) = x509_parser::parse_x509_certificate(certificate.0.as_ref())
        .map_err(|_| "unreadable client certificate".to_owned())?;
    let serial = u64::try_from(cert.tbs_certificate.serial.clone())
        .map_err(|_| "client certificate serial out of range".to_owned())?;
    let san = cert
        .subject_alternative_name()
        .ok()
        .flatten()
        .ok_or_else(|| "the client certificate names no SPIFFE id".to_owned())?;
    for name in &san.value.general_names {
        if let x509_parser::extensions::GeneralName::URI(uri) = name {
            let id: SpiffeId = uri
                .parse()
                .map_err(|e: warden_pki::x509::X509Error| e.to_string())?;
            if id.trust_domain() != app.authorities.trust_domain() {
                return Err(format!("`{id}` is outside this trust domain"));
            }
            let Some(host) = id.path().strip_prefix("/host/") else {
                return Err(format!("`{id}` is not a host agent's id"));
            };
            let host = HostName::new(host).map_err(|e| e.to_string())?;
            return Ok((host, serial));
        }
    }
    Err("the client certificate names no SPIFFE id".to_owned())
}

/// `POST /v1/agent/renew` over mutual TLS: fresh certificates for the same keys (or new ones).
pub async fn renew(
    State(app): State<App>,
    Extension(RequestId(request_id)): Extension<RequestId>,
    connect: Option<Extension<ConnectInfo<SocketAddr>>>,
    certificate: Option<Extension<PeerCertificate>>,
    body: Result<JsonBody<RenewRequest>, BodyRejected>,
) -> Response {
    let source = connect.map(|Extension(ConnectInfo(p))| p);
    let (ctx, host) = match verified_host(&app, request_id, source, certificate, "host.renew").await
    {
        Ok(verified) => verified,
        Err(response) => return response,
    };
    let request = match body {
        Ok(JsonBody(request)) => request,
        Err(rejected) => return rejected.into_response(),
    };
    if let Err(message) = check_keys(&request.ssh_host_key, &request.csr) {
        return fail(StatusCode::BAD_REQUEST, &message);
    }
    credentials(&app, ctx, host, request.ssh_host_key, request.csr).await
}

/// The joined host a mutual-TLS client certificate proves, with the request's audit context
/// acting as it, or the response refusing it (recorded as a denial of `action`): there must
/// be a certificate, naming a host of this trust domain, unrevoked, and the host must still
/// be joined.
pub async fn verified_host(
    app: &App,
    request_id: String,
    source: Option<SocketAddr>,
    certificate: Option<Extension<PeerCertificate>>,
    action: &'static str,
) -> Result<(AuditContext, Host), Response> {
    let ctx = &context(request_id, source, Actor::Anonymous);
    let Some(Extension(certificate)) = certificate else {
        deny(app, ctx, action, "agent", "no client certificate").await;
        return Err(fail(
            StatusCode::UNAUTHORIZED,
            "a client certificate is required",
        ));
    };
    let (name, serial) = match peer_host(app, &certificate) {
        Ok(pair) => pair,
        Err(reason) => {
            deny(app, ctx, action, "agent", &reason).await;
            return Err(fail(
                StatusCode::FORBIDDEN,
                &format!("permission denied: {reason}"),
            ));
        }
    };
    let target = format!("host:{name}");
    let ctx = AuditContext {
        actor: Actor::Host {
            name: name.clone(),
            method: AuthMethod::MutualTls,
        },
        ..ctx.clone()
    };
    match (
        app.store().x509_certificate_valid(serial).await,
        app.store().host(name.as_str()).await,
    ) {
        (Ok(true), Ok(Some(host))) => Ok((ctx, host)),
        (Ok(false), _) => {
            let reason = format!("client certificate {serial} is revoked or unknown");
            deny(app, &ctx, action, &target, &reason).await;
            Err(fail(
                StatusCode::FORBIDDEN,
                &format!("permission denied: {reason}"),
            ))
        }
        (_, Ok(None)) => {
            let reason = format!("host `{name}` has not joined");
            deny(app, &ctx, action, &target, &reason).await;
            Err(fail(
                StatusCode::FORBIDDEN,
                &format!("permission denied: {reason}"),
            ))
        }
        (Err(e), _) | (_, Err(e)) => {
            tracing::error!(error = %e, "agent lookup failed");
            Err(fail(
                StatusCode::SERVICE_UNAVAILABLE,
                "service unavailable; try again",
            ))
        }
    }
}

/// Issues the host certificate and the client certificate (each audited) and packs them with
/// what the agent must trust.
async fn credentials(
    app: &App,
    ctx: AuditContext,
    host: Host,
    ssh_host_key: String,
    csr: String,
) -> Response {
    let Ok(name) = HostName::new(host.name.clone()) else {
        return fail(
            StatusCode::INTERNAL_SERVER_ERROR,
            "stored host name is invalid",
        );
    };
    let ctx = AuditContext {
        actor: Actor::Host {
            name: name.clone(),
            method: match ctx.actor {
                Actor::Host { method, .. } => method,
                _ => AuthMethod::JoinToken,
            },
        },
        ..ctx
    };
    let agent = app.agent.clone();
    let authorities = app.authorities.clone();
    let mtls_address = app.mtls_address.clone();
    let work = async move {
        let mut principals = vec![host.name.clone()];
        principals.extend(host.addresses.iter().cloned());
        let (_, host_certificate) = authorities
            .issue(
                &ctx,
                SshIssue {
                    kind: Kind::Host,
                    public_key: &ssh_host_key,
                    key_id: KeyId::Host(name.clone()),
                    holder_user_id: None,
                    principals,
                    ttl: agent.host_cert_ttl,
                    port_forwarding: false,
                    policy: serde_json::Value::Null,
                },
            )
            .await?;
        let key = parse_csr(&csr)?;
        let id = SpiffeId::new(authorities.trust_domain(), &format!("/host/{}", host.name))?;
        let (_, client_certificate) = authorities
            .issue_x509(
                &ctx,
                SubjectKey::Request(&key),
                id.clone(),
                (Vec::new(), Vec::new()),
                agent.client_cert_ttl,
            )
            .await?;
        let now = u64::try_from(ctx.now.as_millis() / 1000).unwrap_or(0);
        let x509 = authorities.x509();
        Ok::<_, crate::ca::IssueError>(AgentCredentials {
            host: host.name,
            spiffe_id: id.to_string(),
            host_certificate,
            host_certificate_valid_before: now + agent.host_cert_ttl.as_secs(),
            client_certificate,
            client_certificate_not_after: now + agent.client_cert_ttl.as_secs(),
            chain: x509.ca.chain_pem().to_owned(),
            bundle: x509.bundle_pem.clone(),
            user_ca: authorities.user_ca_public(),
            host_ca: authorities.host_ca_public(),
            mtls_address: mtls_address.to_string(),
        })
    };
    match tokio::spawn(work).await {
        Ok(Ok(creds)) => axum::Json(creds).into_response(),
        Ok(Err(crate::ca::IssueError::Store(e))) if !e.is_user_error() => {
            tracing::error!(error = %e, "agent credentials failed");
            fail(
                StatusCode::SERVICE_UNAVAILABLE,
                "service unavailable; try again",
            )
        }
        Ok(Err(e)) => fail(StatusCode::BAD_REQUEST, &e.to_string()),
        Err(e) => {
            tracing::error!(error = %e, "agent credentials task failed");
            fail(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal error; see the server log",
            )
        }
    }
}

/// Where agents reach the mutual-TLS listener: its bound address, or the public URL's host
/// with its port when it listens on every interface.
pub fn mtls_address(bound: SocketAddr, public_host: Option<&str>) -> Arc<str> {
    if bound.ip().is_unspecified()
        && let Some(host) = public_host
    {
        return format!("{host}:{}", bound.port()).into();
    }
    bound.to_string().into()
}

/// `GET /v1/agent/break-glass` over mutual TLS: the CA keys of live break-glass credentials,
/// one per line. The agent keeps them and trusts them only while it cannot reach Warden.
pub async fn break_glass_keys(
    State(app): State<App>,
    Extension(RequestId(request_id)): Extension<RequestId>,
    connect: Option<Extension<ConnectInfo<SocketAddr>>>,
    certificate: Option<Extension<PeerCertificate>>,
) -> Response {
    let source = connect.map(|Extension(ConnectInfo(p))| p);
    let (ctx, _) =
        match verified_host(&app, request_id, source, certificate, "host.break_glass").await {
            Ok(verified) => verified,
            Err(response) => return response,
        };
    match app.store().live_break_glass_keys(ctx.now).await {
        Ok(keys) => {
            let mut text = keys.join("\n");
            if !text.is_empty() {
                text.push('\n');
            }
            (
                [(
                    axum::http::header::CONTENT_TYPE,
                    "text/plain; charset=utf-8",
                )],
                text,
            )
                .into_response()
        }
        Err(e) => {
            tracing::error!(error = %e, "break-glass keys");
            fail(
                StatusCode::SERVICE_UNAVAILABLE,
                "service unavailable; try again",
            )
        }
    }
}

/// One use of a break-glass credential, as the host's agent reports it once Warden is back.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BreakGlassReport {
    /// The agent's id for the use (a UUID): a use reported twice is recorded once.
    pub id: String,
    /// The credential (the certificate's key id without `break-glass:`).
    pub credential: String,
    /// The login.
    pub login: String,
    /// When the session started, RFC 3339, by the host's clock.
    pub started_at: String,
    /// When it ended.
    pub ended_at: Option<String>,
    /// The session as recorded on the host (asciicast v2).
    pub recording: Option<String>,
}

fn id_like(field: &str, value: &str) -> Result<(), String> {
    if value.is_empty()
        || value.len() > 64
        || !value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_'))
    {
        return Err(format!(
            "invalid `{field}`: 1 to 64 letters, digits, `-` or `_`"
        ));
    }
    Ok(())
}

/// The file a break-glass use's recording is kept in: asciicast, sealed under the KEK.
pub fn break_glass_recording(use_id: &str) -> String {
    format!("break-glass-{use_id}.cast.rec")
}

/// `POST /v1/agent/break-glass` over mutual TLS: a use of a break-glass credential on this
/// host. The recording is kept with the others and its hash recorded in `break_glass.use`
/// (which webhooks carry), which opens the use's after-action review.
pub async fn break_glass_use(
    State(app): State<App>,
    Extension(RequestId(request_id)): Extension<RequestId>,
    connect: Option<Extension<ConnectInfo<SocketAddr>>>,
    certificate: Option<Extension<PeerCertificate>>,
    body: Result<JsonBody<BreakGlassReport>, BodyRejected>,
) -> Response {
    let source = connect.map(|Extension(ConnectInfo(p))| p);
    let (ctx, host) =
        match verified_host(&app, request_id, source, certificate, "break_glass.use").await {
            Ok(verified) => verified,
            Err(response) => return response,
        };
    let report = match body {
        Ok(JsonBody(report)) => report,
        Err(rejected) => return rejected.into_response(),
    };
    let checked = (|| {
        id_like("id", &report.id)?;
        id_like("credential", &report.credential)?;
        warden_model::Login::new(&report.login).map_err(|e| format!("invalid `login`: {e}"))?;
        let started = crate::rfc3339("started_at", &report.started_at)?;
        let ended = report
            .ended_at
            .as_deref()
            .map(|t| crate::rfc3339("ended_at", t))
            .transpose()?;
        Ok::<_, String>((started, ended))
    })();
    let (started_at, ended_at) = match checked {
        Ok(times) => times,
        Err(message) => return fail(StatusCode::BAD_REQUEST, &message),
    };
    let (mut file, mut sha256) = (None, None);
    if let Some(recording) = report.recording.clone() {
        // Sealed under the KEK like the proxy's recordings; the hash is the stored file's.
        let name = break_glass_recording(&report.id);
        let kek = app.authorities.shared_kek();
        let path = app.recordings.local_dir().join(&name);
        let kept = tokio::task::spawn_blocking(move || {
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir)?;
            }
            let mut writer = warden_proxy::recording::sealed::SealedWriter::create(&path, &kek)?;
            writer.write(recording.as_bytes())?;
            writer.finish()
        })
        .await;
        match kept {
            Ok(Ok((_, _, hash))) => sha256 = Some(hash),
            Ok(Err(e)) => {
                tracing::error!(error = %e, "break-glass recording");
                return fail(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "cannot keep the recording; try again",
                );
            }
            Err(e) => {
                tracing::error!(error = %e, "break-glass recording");
                return fail(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "cannot keep the recording; try again",
                );
            }
        }
        if let Err(e) = app.recordings.publish(&name).await {
            tracing::warn!(error = %e, "break-glass recording kept in the spool");
        }
        file = Some(name);
    }
    let new = warden_store::NewBreakGlassUse {
        id: report.id,
        credential: report.credential,
        host: host.name,
        login: report.login,
        started_at,
        ended_at,
        recording: file,
        recording_sha256: sha256,
    };
    let store = app.store().clone();
    match detached(async move { store.record_break_glass_use(&ctx, new).await }).await {
        Ok(recorded) => axum::Json(json!({ "recorded": recorded })).into_response(),
        Err(warden_store::StoreError::NotFound { name, .. }) => fail(
            StatusCode::NOT_FOUND,
            &format!("unknown break-glass credential `{name}`"),
        ),
        Err(e) => {
            tracing::error!(error = %e, "break-glass use");
            fail(
                StatusCode::SERVICE_UNAVAILABLE,
                "service unavailable; try again",
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::agent_version;

    #[test]
    fn an_agents_version_is_read_from_its_user_agent() {
        assert_eq!(agent_version("warden-agent/0.1.0"), Some("0.1.0"));
        assert_eq!(
            agent_version("warden-agent/1.2.3-rc.1+g5"),
            Some("1.2.3-rc.1+g5")
        );
        for bad in [
            "warden-agent/",
            "curl/8.0",
            "warden-agent/1.0 (linux)",
            "warden-agent/<script>",
            "Warden-Agent/1.0",
        ] {
            assert_eq!(agent_version(bad), None, "{bad}");
        }
        assert_eq!(
            agent_version(&format!("warden-agent/{}", "1".repeat(65))),
            None
        );
    }

    proptest::proptest! {
        /// Whatever a client sends, what is kept is short and made only of the allowed
        /// characters.
        #[test]
        fn only_a_plain_version_is_kept(header in ".{0,100}") {
            if let Some(v) = agent_version(&header) {
                proptest::prop_assert!(!v.is_empty() && v.len() <= 64);
                proptest::prop_assert!(v.chars().all(|c| c.is_ascii_alphanumeric() || ".+-_".contains(c)));
            }
        }
    }
}
