//! What the recording SSH proxy asks of the server: which CAs to trust, a host certificate for
//! the proxy per target, whether a login may happen (certificate still valid, person enabled,
//! the `ssh` policy on the host's labels), a certificate for that one session, and the audit
//! records of sessions with their recordings' hashes.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serde_json::json;
use warden_model::{Actor, Holder, HostName, KeyId, Role, Timestamp};
use warden_pki::ssh::Kind;
use warden_proxy::{Admitted, Attempt, Finished, Gate};
use warden_store::{AuditContext, Outcome, SshSession, Store};

use crate::ca::{Authorities, SshIssue};
use crate::policy::{Engine, subject};
use crate::recordings::Recordings;

/// How long the certificate the proxy presents to a host lasts: sshd checks it at login only.
const SESSION_CERT_TTL: Duration = Duration::from_secs(300);

/// How long the proxy's host certificate for a target lasts (the proxy renews it hourly).
const PROXY_HOST_CERT_TTL: Duration = Duration::from_secs(2 * 3600);

/// The recording proxy, asking `store`, `authorities` and `engine`. `kind` says which
/// process runs it (`server`, `warden proxy`), for the name its lease is shown under.
pub fn proxy(
    store: &Arc<Store>,
    authorities: &Authorities,
    engine: &Arc<Engine>,
    recordings: &Recordings,
    ssh: &crate::config::SshConfig,
    kind: &str,
) -> Result<warden_proxy::Proxy, warden_proxy::ProxyError> {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    let gate = Arc::new(ServerGate {
        store: store.clone(),
        authorities: authorities.clone(),
        engine: engine.clone(),
        recordings: recordings.clone(),
        changes: tokio::sync::Mutex::new(store.subscribe()),
        lease: Lease {
            id: warden_store::write::new_id(),
            name: format!("{kind} on {} (pid {})", host.trim(), std::process::id()),
            length: ssh.proxy_lease,
            renewed: std::sync::Mutex::new(None),
        },
    });
    warden_proxy::Proxy::new(
        gate,
        warden_proxy::ProxyConfig {
            recordings: recordings.local_dir().to_path_buf(),
            kek: authorities.shared_kek(),
            idle_timeout: ssh.idle_timeout,
            max_session: ssh.max_session,
        },
    )
}

/// The server behind the proxy.
pub(crate) struct ServerGate {
    pub store: Arc<Store>,
    pub authorities: Authorities,
    pub engine: Arc<Engine>,
    pub recordings: Recordings,
    /// Committed changes, from every process on the database (see `Store::listen`).
    pub changes: tokio::sync::Mutex<tokio::sync::broadcast::Receiver<warden_store::Changes>>,
    /// This proxy's lease, which its sessions are stored under.
    pub lease: Lease,
}

/// A proxy's lease: renewed while it serves; when it runs out, the timers of any replica end
/// the sessions it held on the record (`Store::end_ssh_sessions_of_lost_proxies`).
pub(crate) struct Lease {
    /// The proxy's id for this run.
    pub id: String,
    /// What it is shown as: the process kind, the machine and the pid.
    pub name: String,
    /// How long a renewal lasts (`ssh.proxy_lease`).
    pub length: Duration,
    /// When it was last renewed; it is renewed when a third of it has gone.
    pub renewed: std::sync::Mutex<Option<std::time::Instant>>,
}

impl Lease {
    /// Whether a third of the lease has gone since it was last renewed (or it never was).
    fn due(&self) -> bool {
        self.renewed
            .lock()
            .map(|r| r.is_none_or(|at| at.elapsed() >= self.length / 3))
            .unwrap_or(true)
    }
}

fn now() -> Timestamp {
    Timestamp::from_system(SystemTime::now())
}

/// Who holds a Warden user certificate, from its key id ([`KeyId::Token`]): a person (or a
/// token acting as them), or a service token acting as itself. Any other key id (a session's,
/// a host's, text Warden did not write) holds nobody. The role is the one they had at issue;
/// [`ServerGate::check`] reads the token's current one.
fn holder_of(key_id: &str, role: Role) -> Option<Actor> {
    let Ok(KeyId::Token { holder, token_id }) = key_id.parse::<KeyId>() else {
        return None;
    };
    Some(match holder {
        Holder::User(name) => Actor::User {
            name,
            token_id,
            role: Some(role),
        },
        Holder::Service(name) => Actor::Token {
            token_id,
            name,
            role,
        },
    })
}

impl ServerGate {
    async fn refuse(
        &self,
        ctx: &AuditContext,
        target: &str,
        reason: String,
        details: serde_json::Value,
    ) -> String {
        if let Err(e) = self
            .store
            .record(
                ctx,
                "ssh.session.start",
                target,
                details,
                Outcome::Denied,
                Some(&reason),
            )
            .await
        {
            tracing::error!(error = %e, "cannot record a refused ssh session");
            return "internal error: the refusal could not be recorded".to_owned();
        }
        reason
    }
}

/// What a login attempt passed.
struct Checked {
    /// The person or service behind the certificate.
    holder: Holder,
    /// The person's user id, as their certificate was stored with it.
    holder_user_id: Option<String>,
    upstream: String,
    decision: crate::policy::Decision,
    /// The person or service as the policy sees them now, and the host.
    subject: warden_policy::Subject,
    object: warden_policy::Object,
}

/// The audit context and base details of an attempt, as the person behind its certificate.
fn context_of(a: &Attempt) -> (AuditContext, serde_json::Value) {
    let actor = holder_of(&a.key_id, Role::Member).unwrap_or(Actor::Anonymous);
    let ctx = AuditContext {
        actor,
        request_id: a.session.clone(),
        source: a.source.clone(),
        now: now(),
    };
    let details = json!({ "session": a.session, "login": a.login, "serial": a.serial.to_string() });
    (ctx, details)
}

impl ServerGate {
    /// Everything a session needs, now: a Warden user's certificate that is not revoked, the
    /// person enabled, the host in the inventory with an sshd address, and the policy's `ssh`.
    /// An error is the reason, with details for the audit record.
    async fn check(&self, a: &Attempt) -> Result<Checked, (String, serde_json::Value)> {
        let plain = |reason: String| (reason, serde_json::Value::Null);
        let internal = |e: warden_store::StoreError| {
            tracing::error!(error = %e, "ssh proxy: store error");
            plain(format!(
                "internal error; quote session {} to your operator",
                a.session
            ))
        };
        if let Err(e) = warden_model::Login::new(a.login.as_str()) {
            return Err(plain(e.to_string()));
        }
        let Some(holder) = holder_of(&a.key_id, Role::Member) else {
            return Err(plain(format!(
                "certificate `{}` is not a Warden user's",
                a.key_id
            )));
        };
        let (token_id, kind, name, typed) = match &holder {
            Actor::User { name, token_id, .. } => {
                (token_id, "user", name.as_str(), Holder::User(name.clone()))
            }
            Actor::Token { name, token_id, .. } => (
                token_id,
                "service",
                name.as_str(),
                Holder::Service(name.clone()),
            ),
            _ => return Err(plain("certificate holder unknown".to_owned())),
        };
        let token = self
            .store
            .token_credential(token_id)
            .await
            .map_err(internal)?;
        // The person first: a leaver's tokens and certificates are revoked with them, and
        // "disabled" is the reason worth reading. The policy sees the token's role.
        let mut actor = holder.clone();
        match (&mut actor, &token) {
            (Actor::User { role, .. }, Some(t)) => {
                *role = (!t.token.passkey).then_some(t.token.role);
            }
            (Actor::Token { role, .. }, Some(t)) => *role = t.token.role,
            _ => {}
        }
        let Some(who) = subject(&self.store, &actor).await.map_err(internal)? else {
            return Err(plain(format!("{kind} `{name}` is unknown or disabled")));
        };
        // The token the certificate was issued to must still work: signing out, revoking the
        // token or its expiry ends the access its certificates gave.
        if !token.is_some_and(|t| t.token.revoked_at.is_none() && t.token.expires_at > now()) {
            return Err(plain(format!(
                "the token behind certificate {} was revoked or has expired: sign in again",
                a.serial
            )));
        }
        let Some(live) = self
            .store
            .ssh_user_certificate_live(a.serial, &a.key_id)
            .await
            .map_err(internal)?
        else {
            return Err(plain(format!(
                "certificate {} is revoked or unknown: run `warden login` again",
                a.serial
            )));
        };
        let Some(host) = self.store.host(&a.host).await.map_err(internal)? else {
            return Err(plain(format!("unknown host `{}`", a.host)));
        };
        let Some(upstream) = host.sshd_addr.clone() else {
            return Err(plain(format!(
                "host `{}` has no sshd address: run its agent with --sshd-addr",
                a.host
            )));
        };
        let object = warden_policy::Object::Host {
            name: host.name.clone(),
            labels: host.labels.clone(),
        };
        let decision = self
            .engine
            .decide(&who, "ssh", &object, &json!({ "login": a.login }));
        if !decision.decided.allow {
            let reason = format!(
                "login `{}` on `{}`: {}",
                a.login,
                a.host,
                decision.reason("ssh")
            );
            return Err((reason, decision.details()));
        }
        Ok(Checked {
            holder: typed,
            holder_user_id: live.holder_user_id,
            upstream,
            decision,
            subject: who,
            object,
        })
    }
}

#[async_trait::async_trait]
impl Gate for ServerGate {
    fn user_cas(&self) -> Vec<String> {
        self.authorities
            .user_ca_public()
            .lines()
            .map(str::to_owned)
            .collect()
    }

    fn host_cas(&self) -> Vec<String> {
        self.authorities
            .host_ca_public()
            .lines()
            .map(str::to_owned)
            .collect()
    }

    async fn host_certificate(&self, host: &str, public_key: &str) -> Result<String, String> {
        let known = self
            .store
            .host(host)
            .await
            .map_err(|e| format!("internal error: {e}"))?;
        if known.is_none() {
            return Err(format!(
                "unknown host `{host}`: `warden admin host list` shows the hosts that joined"
            ));
        }
        let ctx = AuditContext {
            actor: Actor::System,
            request_id: format!("proxy-host-cert:{host}"),
            source: None,
            now: now(),
        };
        let (_, cert) = self
            .authorities
            .issue(
                &ctx,
                SshIssue {
                    kind: Kind::Host,
                    public_key,
                    key_id: KeyId::Proxy(
                        HostName::new(host).map_err(|e| format!("internal error: {e}"))?,
                    ),
                    holder_user_id: None,
                    principals: vec![host.to_owned()],
                    ttl: PROXY_HOST_CERT_TTL,
                    port_forwarding: false,
                    policy: serde_json::Value::Null,
                },
            )
            .await
            .map_err(|e| format!("cannot certify the proxy for `{host}`: {e}"))?;
        Ok(cert)
    }

    async fn admit(&self, a: &Attempt) -> Result<Admitted, String> {
        let target = format!("host:{}", a.host);
        let (ctx, details) = context_of(a);
        let checked = match self.check(a).await {
            Ok(checked) => checked,
            Err((reason, extra)) => {
                let mut details = details;
                if let (Some(d), Some(e)) = (details.as_object_mut(), extra.as_object()) {
                    d.extend(e.clone());
                }
                return Err(self.refuse(&ctx, &target, reason, details).await);
            }
        };
        let internal = |e: warden_store::StoreError| {
            tracing::error!(error = %e, "ssh proxy: store error");
            format!(
                "internal error; quote session {} to your operator",
                a.session
            )
        };
        // The session certificate names whom it acts for, and is stored with the id its
        // holder's own certificate carries, so disabling them revokes both by id.
        let key_id = KeyId::session(&a.session, checked.holder.clone())
            .map_err(|e| format!("internal error: {e}"))?;
        let (_, certificate) = self
            .authorities
            .issue(
                &ctx,
                SshIssue {
                    kind: Kind::User,
                    public_key: &a.session_key,
                    key_id,
                    holder_user_id: checked.holder_user_id.clone(),
                    // The host's sshd lets in only its proxy principal; the login is the
                    // policy's decision above.
                    principals: vec![a.login.clone(), warden_model::proxy_principal(&a.host)],
                    ttl: SESSION_CERT_TTL,
                    // The proxy opens a forward only after the policy's `connect` allowed it.
                    port_forwarding: true,
                    policy: json!({ a.login.clone(): checked.decision.details() }),
                },
            )
            .await
            .map_err(|e| format!("cannot certify the session: {e}"))?;
        let mut started = details;
        if let (Some(d), Some(p)) = (
            started.as_object_mut(),
            checked.decision.details().as_object(),
        ) {
            d.extend(p.clone());
            d.insert("upstream".into(), json!(checked.upstream));
        }
        let principal = checked.holder.to_string();
        let session = SshSession {
            id: a.session.clone(),
            principal: principal.clone(),
            login: a.login.clone(),
            host: a.host.clone(),
            source: a.source.clone(),
            started_at: ctx.now,
            ended_at: None,
            end_reason: None,
            recordings: json!([]),
            proxy: Some(self.lease.id.clone()),
        };
        // Stored under this proxy's lease: make sure it exists before the session does.
        self.alive().await;
        self.store
            .start_ssh_session(&ctx, &session, started)
            .await
            .map_err(internal)?;
        Ok(Admitted {
            principal,
            upstream: checked.upstream,
            certificate,
        })
    }

    async fn forward(&self, a: &Attempt, to: &str, port: u32) -> Result<(), String> {
        let (ctx, mut details) = context_of(a);
        if let Some(d) = details.as_object_mut() {
            d.insert("forward".into(), json!(format!("{to}:{port}")));
        }
        let decided = match self.check(a).await {
            Err((reason, _)) => Err(reason),
            Ok(_) if !matches!(to, "localhost" | "127.0.0.1" | "::1") => Err(format!(
                "forwarding to `{to}` through `{}`: only the host's own ports (localhost) may be forwarded",
                a.host
            )),
            Ok(_) if port == 0 || port > 65_535 => Err(format!("invalid port {port}")),
            Ok(checked) => {
                let decision = self.engine.decide(
                    &checked.subject,
                    "connect",
                    &checked.object,
                    &json!({ "protocol": "tcp", "port": port }),
                );
                if let (Some(d), Some(p)) =
                    (details.as_object_mut(), decision.details().as_object())
                {
                    d.extend(p.clone());
                }
                if decision.decided.allow {
                    Ok(())
                } else {
                    Err(format!(
                        "forwarding port {port} on `{}`: {}",
                        a.host,
                        decision.reason("connect")
                    ))
                }
            }
        };
        let (outcome, reason) = match &decided {
            Ok(()) => (Outcome::Success, None),
            Err(reason) => (Outcome::Denied, Some(reason.as_str())),
        };
        if let Err(e) = self
            .store
            .record(
                &ctx,
                "ssh.forward",
                &format!("host:{}", a.host),
                details,
                outcome,
                reason,
            )
            .await
        {
            tracing::error!(error = %e, "cannot record a port forward");
            return Err("internal error: the forward could not be recorded".to_owned());
        }
        decided
    }

    async fn alive(&self) {
        if !self.lease.due() {
            return;
        }
        let at = now();
        let until = at.plus(self.lease.length);
        match self
            .store
            .renew_ssh_proxy_lease(&self.lease.id, &self.lease.name, at, until)
            .await
        {
            Ok(()) => {
                if let Ok(mut renewed) = self.lease.renewed.lock() {
                    *renewed = Some(std::time::Instant::now());
                }
            }
            Err(e) => tracing::error!(error = %e, "cannot renew the ssh proxy's lease"),
        }
    }

    async fn changed(&self) {
        use tokio::sync::broadcast::error::RecvError;
        let mut changes = self.changes.lock().await;
        loop {
            match changes.recv().await {
                Ok(actions)
                    if actions
                        .iter()
                        .any(|a| warden_model::changes::ends_access(a)) =>
                {
                    return;
                }
                Ok(_) => {}
                // Some were missed: any of them may have mattered.
                Err(RecvError::Lagged(_)) => return,
                Err(RecvError::Closed) => std::future::pending::<()>().await,
            }
        }
    }

    async fn refused(&self, a: &Attempt, reason: String) -> String {
        let (ctx, details) = context_of(a);
        self.refuse(&ctx, &format!("host:{}", a.host), reason, details)
            .await
    }

    async fn recheck(&self, a: &Attempt) -> Result<(), String> {
        // An administrator's request, made through any Warden server.
        match self.store.ssh_session_end_requested(&a.session).await {
            Ok(Some(reason)) => return Err(reason),
            Ok(None) => {}
            Err(e) => tracing::error!(error = %e, "ssh proxy: cannot read end requests"),
        }
        self.check(a)
            .await
            .map(|_| ())
            .map_err(|(reason, _)| reason)
    }

    async fn finished(&self, f: &Finished) {
        let ctx = AuditContext {
            actor: Actor::System,
            request_id: f.session.clone(),
            source: None,
            now: now(),
        };
        let recordings: Vec<serde_json::Value> = f
            .recordings
            .iter()
            .map(|r| {
                json!({
                    "file": r.path.file_name().map(|n| n.to_string_lossy().into_owned()),
                    "sha256": r.sha256,
                    "bytes": r.bytes,
                    "kind": r.kind,
                    "command": r.command,
                    "input_bytes": r.input_bytes,
                    "redacted_entries": r.redactions,
                    "output_bytes": r.output_bytes,
                    "transcript": r.transcript.as_ref().map(|(path, sha256)| json!({
                        "file": path.file_name().map(|n| n.to_string_lossy().into_owned()),
                        "sha256": sha256,
                    })),
                })
            })
            .collect();
        let mut failures: Vec<String> = f.failures.clone();
        // Into the bucket, when recordings go to one; what fails stays local and is said.
        for r in &f.recordings {
            let files = std::iter::once(&r.path).chain(r.transcript.as_ref().map(|(p, _)| p));
            for path in files {
                let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
                    continue;
                };
                if let Err(e) = self.recordings.publish(name).await {
                    tracing::error!(error = %e, "a recording was not uploaded");
                    failures.push(e);
                }
            }
        }
        let reasons: Vec<&str> = f
            .reason
            .iter()
            .chain(&failures)
            .map(String::as_str)
            .collect();
        let reason = (!reasons.is_empty()).then(|| reasons.join("; "));
        if let Err(e) = self
            .store
            .end_ssh_session(
                &ctx,
                &f.session,
                json!(recordings),
                reason.as_deref(),
                &failures,
            )
            .await
        {
            tracing::error!(error = %e, session = %f.session, "cannot record the end of an ssh session");
        }
    }
}
