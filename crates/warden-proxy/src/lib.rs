//! Warden's recording SSH proxy. Stock `ssh` reaches it through `warden ssh --stdio` (a
//! ProxyCommand that names the target host first); the proxy presents a host certificate for
//! that host, authenticates the user's Warden certificate, asks the [`Gate`] (the server: policy,
//! revocation, audit) whether the session may happen, then connects to the host's stock sshd
//! with a certificate minted for this session alone, verifying the host by its Warden host
//! certificate. Every session channel is relayed and recorded ([`recording`]); a recording that
//! cannot be written stops the session.
//!
//! # Threat model
//!
//! **What the crate trusts.** The [`Gate`] (the server: policy, revocation, audit) decides
//! every session and recheck; a gate that errs refuses. The user CAs the gate lists, and the
//! host CA that signs the target's host certificate. The key-encryption key in
//! [`ProxyConfig::kek`], held in this process's memory. The recordings directory is private to
//! the process (0700, files 0600).
//!
//! **What an attacker controls.**
//! - Anyone who can reach the listener: the target line (at most one line, parsed by
//!   [`parse_target`]), every SSH message, the certificate offered, pty sizes (the emulator
//!   clamps them to 400), and how fast input arrives (more than 64 MiB queued for a host ends
//!   the session).
//! - A certificate holder: which channels, commands, subsystems and forwards are asked for.
//!   Each is recorded or refused, and forwards pass the gate's `connect` check.
//! - A compromised host: every byte of output, escape sequences included (recorded raw), and
//!   its flow control (a stalled host ends at the idle timeout). It can print a fake password
//!   prompt so that the next line typed is kept out of the recording; each such entry is
//!   counted in the session's redactions.
//! - Someone who can read or write the recordings directory or bucket but does not hold the
//!   KEK: every file is sealed, so they read nothing. Altering, truncating, reordering,
//!   renaming or replacing a file is caught by its AEAD segments and by the SHA-256 the audit
//!   log holds. Deleting a file is caught the same way: it is missing when read.
//!
//! **What it promises.**
//! - No session opens without the gate's allow, made for this login on this host.
//! - Nothing on a terminal channel moves before its recording exists; a write that fails ends
//!   the channel.
//! - Open sessions are checked again on every committed change that can end access, and every
//!   second; they end at `idle_timeout` and `max_session`.
//! - A person's own certificate never reaches the host: the host sees a certificate minted for
//!   this one session.
//!
//! **What it does not promise.**
//! - The contents of a subsystem (sftp) or a forwarded port are not recorded, only their byte
//!   counts.
//! - Redaction follows what the host prints, not the remote terminal's echo state, which SSH
//!   does not carry. Inferring it from missing echo would let a fast typist hide commands.
//! - Whoever holds the KEK (the server, `warden proxy`) can read every recording.

pub mod recording;
mod relay;
mod session;

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use russh::keys::ssh_key::certificate::CertType;
use russh::keys::ssh_key::private::Ed25519Keypair;
use russh::keys::ssh_key::{Fingerprint, HashAlg, PublicKey};
use russh::keys::{Algorithm, Certificate, PrivateKey, PublicKeyOrCertificate};
use russh::{Disconnect, MethodKind, MethodSet, client, server};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use crate::recording::Recorded;
use crate::session::Downstream;

/// The line `warden ssh --stdio` sends before SSH starts: `WARDEN-TARGET <host>\n`. The proxy
/// answers `OK\n`, or `ERR <message>\n` and closes.
pub const PREAMBLE: &str = "WARDEN-TARGET ";

/// Longest preamble line.
const MAX_PREAMBLE: usize = 300;

/// How long a client has to name its target and to authenticate.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(30);

/// A login attempt the gate decides on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    /// This session's id (also the recordings' name prefix).
    pub session: String,
    /// The login asked for on the host.
    pub login: String,
    /// The target host.
    pub host: String,
    /// The user certificate's key id (`user:alice token:…`).
    pub key_id: String,
    /// Its serial.
    pub serial: u64,
    /// The client's address.
    pub source: Option<String>,
    /// The key the proxy made for the upstream connection: the gate certifies it.
    pub session_key: String,
}

/// What the gate allows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Admitted {
    /// Who (the Warden user or service).
    pub principal: String,
    /// Where the host's sshd listens.
    pub upstream: String,
    /// A user certificate (OpenSSH line) for `session_key`, good for this login only.
    pub certificate: String,
}

/// A finished session, for the audit log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finished {
    /// Its id.
    pub session: String,
    /// Who.
    pub principal: String,
    /// The login on the host.
    pub login: String,
    /// The host.
    pub host: String,
    /// Its channels' recordings.
    pub recordings: Vec<Recorded>,
    /// Recordings that failed (the session was stopped).
    pub failures: Vec<String>,
    /// Why Warden ended it, when it did (access ended, an admin).
    pub reason: Option<String>,
}

/// What the proxy asks of the rest of Warden.
#[async_trait::async_trait]
pub trait Gate: Send + Sync + 'static {
    /// Trusted SSH user CA keys (OpenSSH public key lines).
    fn user_cas(&self) -> Vec<String>;
    /// Trusted SSH host CA keys.
    fn host_cas(&self) -> Vec<String>;
    /// A host certificate (OpenSSH line) for the proxy's `public_key` naming `host`, so clients
    /// that trust Warden's host CA accept the proxy as that host. An unknown host is an error.
    async fn host_certificate(&self, host: &str, public_key: &str) -> Result<String, String>;
    /// Decides and records a login attempt; an error is the reason it was refused.
    async fn admit(&self, attempt: &Attempt) -> Result<Admitted, String>;
    /// Decides and records a port forward (`ssh -L`) in an admitted session to `to:port` as
    /// the host sees it; an error is the reason it was refused.
    async fn forward(&self, attempt: &Attempt, to: &str, port: u32) -> Result<(), String>;
    /// Records an attempt the proxy refused itself (a Warden certificate that has expired or
    /// does not name the login); returns the reason to show.
    async fn refused(&self, attempt: &Attempt, reason: String) -> String;
    /// Whether an open session may go on (certificate, person, policy as they are now); an
    /// error is why it must end.
    async fn recheck(&self, attempt: &Attempt) -> Result<(), String>;
    /// Records a finished session with its recordings.
    async fn finished(&self, finished: &Finished);
    /// Resolves when something that may end access has changed (a person disabled, a token
    /// or certificate revoked, the policy applied, an end requested), so open sessions are
    /// checked at once instead of at the next second.
    async fn changed(&self);
    /// Called at least every second while the proxy serves: a gate whose sessions other
    /// processes can see renews this proxy's lease here, so they end on the record if it dies.
    async fn alive(&self) {}
}

/// Where the proxy keeps recordings, and how long sessions may last.
#[derive(Debug, Clone)]
pub struct ProxyConfig {
    /// The recordings directory (created 0700 if missing).
    pub recordings: PathBuf,
    /// Seals each recording's data key.
    pub kek: Arc<warden_pki::seal::Kek>,
    /// A session with no input or output for this long ends.
    pub idle_timeout: Option<Duration>,
    /// A session ends after this long.
    pub max_session: Option<Duration>,
}

/// When a session last moved, in milliseconds since the proxy started.
type Activity = Arc<std::sync::atomic::AtomicU64>;

/// An open session as the recheck loop sees it.
struct Open {
    handle: server::Handle,
    attempt: Attempt,
    started: std::time::Instant,
    activity: Activity,
}

/// `90s` as `1m30s`, `3600s` as `1h`.
fn human(d: Duration) -> String {
    let s = d.as_secs();
    let mut out = String::new();
    for (n, unit) in [(s / 3600, "h"), (s / 60 % 60, "m"), (s % 60, "s")] {
        if n > 0 {
            out.push_str(&format!("{n}{unit}"));
        }
    }
    if out.is_empty() { "0s".into() } else { out }
}

/// Why the proxy could not start.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ProxyError(String);

fn parse_keys(lines: &[String]) -> Vec<Fingerprint> {
    lines
        .iter()
        .filter_map(|l| PublicKey::from_openssh(l.trim()).ok())
        .map(|k| k.fingerprint(HashAlg::Sha256))
        .collect()
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Most bytes of a user's input one channel holds while its host is not reading them.
const UPLINK_QUEUE_LIMIT: usize = 64 * 1024 * 1024;

/// Toward hosts, AES-GCM first: with AES instructions it costs the proxy and sshd less per
/// byte than ChaCha20-Poly1305 (users' clients keep their own order).
const UPSTREAM_CIPHERS: &[russh::cipher::Name] = &[
    russh::cipher::AES_256_GCM,
    russh::cipher::AES_128_GCM,
    russh::cipher::CHACHA20_POLY1305,
];

/// A fresh Ed25519 key from the operating system's RNG.
fn ed25519() -> PrivateKey {
    use rand::RngCore;
    let mut seed = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut seed);
    PrivateKey::from(Ed25519Keypair::from_seed(&seed))
}

/// Whether `cert` is a certificate of `kind` signed by one of `cas` (at some time in its
/// validity), with no critical options the proxy would have to enforce.
fn signed_by(cert: &Certificate, cas: &[Fingerprint], kind: CertType) -> bool {
    cert.validate_at(cert.valid_after(), cas).is_ok()
        && cert.cert_type() == kind
        && cert.critical_options().is_empty()
}

/// Whether `cert` is a currently valid certificate of `kind` from one of `cas` for `principal`,
/// with no critical options the proxy would have to enforce.
fn trusted(cert: &Certificate, cas: &[Fingerprint], kind: CertType, principal: &str) -> bool {
    signed_by(cert, cas, kind) && certificate_problem(cert, principal, now_secs()).is_none()
}

/// Why a certificate signed by a trusted CA cannot log in as `login` at `now`, if it cannot.
fn certificate_problem(cert: &Certificate, login: &str, now: u64) -> Option<String> {
    let shown = |secs: u64| {
        humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(secs)).to_string()
    };
    let serial = cert.serial();
    if now >= cert.valid_before() {
        return Some(format!(
            "certificate {serial} expired at {}: run `warden login` again",
            shown(cert.valid_before())
        ));
    }
    if now < cert.valid_after() {
        return Some(format!(
            "certificate {serial} is not valid before {}",
            shown(cert.valid_after())
        ));
    }
    if !cert.valid_principals().iter().any(|p| p == login) {
        return Some(format!(
            "certificate {serial} does not allow login `{login}`; it allows: {}",
            cert.valid_principals().join(", ")
        ));
    }
    None
}

/// A host name as the inventory has it: letters, digits, `.`, `-`, `_`.
fn valid_host(host: &str) -> bool {
    !host.is_empty()
        && host.len() <= 253
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
}

/// The proxy's shared state.
struct Shared {
    gate: Arc<dyn Gate>,
    config: ProxyConfig,
    host_key: PrivateKey,
    /// Host certificates minted for the proxy, by target, with when to mint again.
    host_certs: Mutex<BTreeMap<String, (Certificate, u64)>>,
    /// Open sessions, for cut-off.
    sessions: Mutex<BTreeMap<String, Open>>,
    /// What activity times count from.
    epoch: std::time::Instant,
    /// Why Warden ended a session, for its end record.
    ended: Mutex<BTreeMap<String, String>>,
}

impl Shared {
    /// Takes session `id` off the open list, keeping `reason` for its end record; the open
    /// session, if it was one, for the caller to disconnect.
    fn ending(&self, id: &str, reason: &str) -> Option<Open> {
        let open = self.sessions.lock().ok().and_then(|mut s| s.remove(id))?;
        if let Ok(mut ended) = self.ended.lock() {
            ended.insert(id.to_owned(), reason.to_owned());
        }
        Some(open)
    }
}

/// How often open sessions are checked against revocations, the person and the policy.
const RECHECK: Duration = Duration::from_secs(1);

/// A running proxy: what it listens on, and open sessions to end.
#[derive(Clone)]
pub struct Proxy {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Proxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Proxy").finish_non_exhaustive()
    }
}

impl Proxy {
    /// Prepares a proxy: its host key (made fresh at each start; clients trust it through the
    /// host certificates Warden gives it) and recordings directory.
    pub fn new(gate: Arc<dyn Gate>, config: ProxyConfig) -> Result<Proxy, ProxyError> {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&config.recordings)
            .map_err(|e| {
                ProxyError(format!(
                    "cannot create the recordings directory {}: {e}",
                    config.recordings.display()
                ))
            })?;
        Ok(Proxy {
            shared: Arc::new(Shared {
                gate,
                config,
                host_key: ed25519(),
                host_certs: Mutex::new(BTreeMap::new()),
                sessions: Mutex::new(BTreeMap::new()),
                ended: Mutex::new(BTreeMap::new()),
                epoch: std::time::Instant::now(),
            }),
        })
    }

    /// Accepts connections until `stop` turns true, and ends open sessions whose access ended.
    pub async fn serve(self, listener: TcpListener, mut stop: watch::Receiver<bool>) {
        let recheck = tokio::spawn(self.clone().recheck_loop());
        self.accept_loop(listener, &mut stop).await;
        recheck.abort();
    }

    async fn recheck_loop(self) {
        let mut every = tokio::time::interval(RECHECK);
        loop {
            tokio::select! {
                _ = every.tick() => {}
                () = self.shared.gate.changed() => {}
            }
            self.shared.gate.alive().await;
            let now = self.shared.epoch.elapsed();
            let config = &self.shared.config;
            let open: Vec<(String, Attempt, Duration, Duration)> = self
                .shared
                .sessions
                .lock()
                .map(|s| {
                    s.iter()
                        .map(|(id, o)| {
                            let last = Duration::from_millis(
                                o.activity.load(std::sync::atomic::Ordering::Relaxed),
                            );
                            let idle = now.saturating_sub(last);
                            (id.clone(), o.attempt.clone(), o.started.elapsed(), idle)
                        })
                        .collect()
                })
                .unwrap_or_default();
            for (id, attempt, age, idle) in open {
                let reason = if let Some(limit) = config.max_session.filter(|l| age > *l) {
                    Some(format!(
                        "the session reached its maximum length of {}",
                        human(limit)
                    ))
                } else if let Some(limit) = config.idle_timeout.filter(|l| idle > *l) {
                    Some(format!("idle for {}", human(limit)))
                } else {
                    self.shared
                        .gate
                        .recheck(&attempt)
                        .await
                        .err()
                        .map(|reason| format!("access ended: {reason}"))
                };
                if let Some(reason) = reason {
                    self.end_session(&id, &reason).await;
                }
            }
        }
    }

    async fn accept_loop(&self, listener: TcpListener, stop: &mut watch::Receiver<bool>) {
        loop {
            let accepted = tokio::select! {
                accepted = listener.accept() => accepted,
                _ = stop.changed() => return,
            };
            let (socket, peer) = match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    tracing::warn!(error = %e, "ssh proxy accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let session = format!("{:016x}", rand::random::<u64>());
            let shared = self.shared.clone();
            tokio::spawn(async move {
                if let Err(e) = connection(shared, socket, peer, session.clone()).await {
                    tracing::info!(session, error = %e, "ssh proxy connection ended");
                }
            });
        }
    }

    /// Ends session `id` at once, telling the user `warden: REASON`; false when it is not
    /// open here.
    pub async fn end_session(&self, id: &str, reason: &str) -> bool {
        match self.shared.ending(id, reason) {
            Some(Open { handle: h, .. }) => {
                let _ = h
                    .disconnect(
                        Disconnect::ByApplication,
                        format!("warden: {reason}"),
                        String::new(),
                    )
                    .await;
                true
            }
            None => false,
        }
    }
}

/// Reads the preamble one byte at a time (so no SSH bytes are consumed) and returns the host.
async fn read_target(socket: &mut TcpStream) -> Result<String, String> {
    let mut line = Vec::new();
    loop {
        let byte = socket.read_u8().await.map_err(|e| e.to_string())?;
        if byte == b'\n' {
            break;
        }
        line.push(byte);
        if line.len() > MAX_PREAMBLE {
            return Err("the target line is too long".into());
        }
    }
    parse_target(&line)
}

/// Reads the preamble line (without its `\n`): `WARDEN-TARGET host`. Returns the host, or
/// the one-line reason sent back to the client.
pub fn parse_target(line: &[u8]) -> Result<String, String> {
    if line.len() > MAX_PREAMBLE {
        return Err("the target line is too long".into());
    }
    let line = std::str::from_utf8(line).map_err(|_| "the target line is not UTF-8".to_owned())?;
    let host = line
        .trim_end_matches('\r')
        .strip_prefix(PREAMBLE)
        .ok_or_else(|| {
            "connect through `warden ssh` (or its ssh config from `warden ssh config`)".to_owned()
        })?
        .trim()
        .to_owned();
    if !valid_host(&host) {
        return Err(format!("invalid host name {host:?}"));
    }
    Ok(host)
}

async fn connection(
    shared: Arc<Shared>,
    mut socket: TcpStream,
    peer: std::net::SocketAddr,
    session: String,
) -> Result<(), String> {
    let _ = socket.set_nodelay(true);
    let target = tokio::time::timeout(HANDSHAKE_TIMEOUT, read_target(&mut socket))
        .await
        .map_err(|_| "no target named in time".to_owned())
        .and_then(|r| r);
    let host = match target {
        Ok(host) => host,
        Err(e) => {
            let _ = socket.write_all(format!("ERR {e}\n").as_bytes()).await;
            return Err(e);
        }
    };
    let certificate = match host_certificate(&shared, &host).await {
        Ok(c) => c,
        Err(e) => {
            let _ = socket.write_all(format!("ERR {e}\n").as_bytes()).await;
            return Err(e);
        }
    };
    socket.write_all(b"OK\n").await.map_err(|e| e.to_string())?;
    let mut config = server::Config {
        keys: vec![shared.host_key.clone()],
        certificates: vec![certificate],
        methods: MethodSet::from(&[MethodKind::PublicKey][..]),
        auth_rejection_time: Duration::from_millis(200),
        auth_rejection_time_initial: Some(Duration::ZERO),
        inactivity_timeout: None,
        ..Default::default()
    };
    config.preferred.key = Cow::Borrowed(&[Algorithm::Ed25519]);
    config.preferred.host_key_certificates = Cow::Borrowed(&[Algorithm::Ed25519]);
    let handler = Downstream {
        shared: shared.clone(),
        session: session.clone(),
        host,
        source: peer.ip().to_string(),
        login: String::new(),
        principal: String::new(),
        refused: None,
        admitted: None,
        activity: Arc::new(std::sync::atomic::AtomicU64::new(
            u64::try_from(shared.epoch.elapsed().as_millis()).unwrap_or(u64::MAX),
        )),
        upstream: None,
        channels: BTreeMap::new(),
        recorded: Arc::new(Mutex::new((Vec::new(), Vec::new(), 0))),
    };
    let running = server::run_stream(Arc::new(config), socket, handler)
        .await
        .map_err(|e| e.to_string())?;
    let result = running.await.map_err(|e| e.to_string());
    if let Ok(mut sessions) = shared.sessions.lock() {
        sessions.remove(&session);
    }
    result
}

/// The proxy's host certificate for `host`, minted by the gate and kept for an hour.
async fn host_certificate(shared: &Shared, host: &str) -> Result<Certificate, String> {
    let now = now_secs();
    if let Some((cert, until)) = shared
        .host_certs
        .lock()
        .ok()
        .and_then(|c| c.get(host).cloned())
        && until > now
    {
        return Ok(cert);
    }
    let public = shared
        .host_key
        .public_key()
        .to_openssh()
        .map_err(|e| e.to_string())?;
    let text = shared.gate.host_certificate(host, &public).await?;
    let cert = Certificate::from_openssh(text.trim()).map_err(|e| e.to_string())?;
    if let Ok(mut certs) = shared.host_certs.lock() {
        certs.insert(host.to_owned(), (cert.clone(), now + 3600));
    }
    Ok(cert)
}

/// Verifies the host's sshd by its Warden host certificate.
struct Upstream {
    host: String,
    cas: Vec<Fingerprint>,
}

impl client::Handler for Upstream {
    type Error = russh::Error;

    async fn check_server_key(
        &mut self,
        key: &PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        let ok = match key {
            PublicKeyOrCertificate::Certificate(cert) => {
                trusted(cert, &self.cas, CertType::Host, &self.host)
            }
            PublicKeyOrCertificate::PublicKey { .. } => false,
        };
        if !ok {
            tracing::warn!(host = %self.host, "the host did not present a valid Warden host certificate");
        }
        Ok(ok)
    }
}

/// Connects to the host's sshd as `login` with the session certificate.
async fn connect_upstream(
    shared: &Shared,
    host: &str,
    login: &str,
    key: PrivateKey,
    admitted: &Admitted,
) -> Result<client::Handle<Upstream>, String> {
    let mut config = client::Config::default();
    config.preferred.host_key_certificates = Cow::Borrowed(&[Algorithm::Ed25519]);
    config.preferred.cipher = Cow::Borrowed(UPSTREAM_CIPHERS);
    let handler = Upstream {
        host: host.to_owned(),
        cas: parse_keys(&shared.gate.host_cas()),
    };
    let mut handle = tokio::time::timeout(
        HANDSHAKE_TIMEOUT,
        client::connect(Arc::new(config), admitted.upstream.as_str(), handler),
    )
    .await
    .map_err(|_| format!("host `{host}` did not answer at {}", admitted.upstream))?
    .map_err(|e| match e {
        russh::Error::UnknownKey => format!(
            "host `{host}` at {} did not present a valid Warden host certificate",
            admitted.upstream
        ),
        e => format!("cannot reach host `{host}` at {}: {e}", admitted.upstream),
    })?;
    let cert = Certificate::from_openssh(admitted.certificate.trim()).map_err(|e| e.to_string())?;
    let auth = handle
        .authenticate_openssh_cert(login, Arc::new(key), cert)
        .await
        .map_err(|e| e.to_string())?;
    if !auth.success() {
        return Err(format!("host `{host}` refused login `{login}`"));
    }
    Ok(handle)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use russh::keys::ssh_key::certificate::Builder;

    /// A user certificate from `ca` for alice and root, valid over [after, before).
    fn user_cert(ca: &PrivateKey, after: u64, before: u64) -> Certificate {
        let mut b = Builder::new(
            [7u8; 16],
            ed25519().public_key().key_data().clone(),
            after,
            before,
        )
        .unwrap();
        b.serial(42).unwrap();
        b.cert_type(CertType::User).unwrap();
        b.key_id("user:alice token:t1").unwrap();
        b.valid_principal("alice").unwrap();
        b.valid_principal("root").unwrap();
        b.sign(ca).unwrap()
    }

    #[test]
    fn certificate_problems_are_named() {
        let ca = ed25519();
        let cas = [ca.public_key().fingerprint(HashAlg::Sha256)];
        let cert = user_cert(&ca, 1_000, 2_000);
        assert!(signed_by(&cert, &cas, CertType::User));
        assert!(!signed_by(&cert, &cas, CertType::Host));
        assert_eq!(certificate_problem(&cert, "root", 1_500), None);
        assert_eq!(
            certificate_problem(&cert, "root", 2_000).as_deref(),
            Some("certificate 42 expired at 1970-01-01T00:33:20Z: run `warden login` again")
        );
        assert_eq!(
            certificate_problem(&cert, "root", 999).as_deref(),
            Some("certificate 42 is not valid before 1970-01-01T00:16:40Z")
        );
        assert_eq!(
            certificate_problem(&cert, "bob", 1_500).as_deref(),
            Some("certificate 42 does not allow login `bob`; it allows: alice, root")
        );
        // Another CA's certificate is not Warden's at all: no reason is given away.
        let stranger = user_cert(&ed25519(), 1_000, 2_000);
        assert!(!signed_by(&stranger, &cas, CertType::User));
    }

    #[test]
    fn targets() {
        assert_eq!(parse_target(b"WARDEN-TARGET db-1"), Ok("db-1".into()));
        assert_eq!(
            parse_target(b"WARDEN-TARGET db-1.example.com\r"),
            Ok("db-1.example.com".into())
        );
        assert_eq!(
            parse_target(b"SSH-2.0-OpenSSH_9.2"),
            Err("connect through `warden ssh` (or its ssh config from `warden ssh config`)".into())
        );
        assert_eq!(
            parse_target(b"WARDEN-TARGET a b"),
            Err("invalid host name \"a b\"".into())
        );
        assert_eq!(
            parse_target(b"WARDEN-TARGET "),
            Err("invalid host name \"\"".into())
        );
        assert_eq!(
            parse_target(&[0xff, 0xfe]),
            Err("the target line is not UTF-8".into())
        );
        assert_eq!(
            parse_target(&[b'x'; 400]),
            Err("the target line is too long".into())
        );
    }

    proptest! {
        /// Whatever a client sends first, the proxy names a plain host or refuses in one line.
        #[test]
        fn any_preamble_is_a_host_or_one_line(line in prop::collection::vec(any::<u8>(), 0..400)) {
            match parse_target(&line) {
                Ok(host) => prop_assert!(valid_host(&host)),
                Err(reason) => prop_assert!(!reason.contains('\n') && !reason.contains('\r')),
            }
        }

        #[test]
        fn every_plain_host_name_round_trips(host in "[a-zA-Z0-9][a-zA-Z0-9._-]{0,60}") {
            let line = format!("{PREAMBLE}{host}");
            prop_assert_eq!(parse_target(line.as_bytes()), Ok(host));
        }
    }
}
