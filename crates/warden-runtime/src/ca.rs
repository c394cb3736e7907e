//! The certificate authorities as the server runs them: the key-encryption key, CA keys made
//! once and sealed in the database, SSH certificate issuance and the KRL.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use rand::RngCore;
use rand::rngs::OsRng;
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use ssh_key::PublicKey;
use warden_model::{Actor, Change, KeyId, Timestamp};
use warden_pki::krl::{Revocations, build_many};
use warden_pki::seal::{Kek, open, seal};
use warden_pki::ssh::{CertRequest, Kind, SshCa, SshError, parse_public_key};
use warden_pki::x509::{LocalKey, SpiffeId, SubjectKey, WorkloadRequest, X509Ca, X509Error};
use warden_store::{AuditContext, CaKey, NewSshCertificate, NewX509Certificate, Store, StoreError};

use crate::StartError;
use crate::config::{Config, io_cause};

/// The SSH CA kinds Warden keeps.
pub const SSH_USER: &str = "ssh-user";
/// Host certificates.
pub const SSH_HOST: &str = "ssh-host";
const X509_ROOT: &str = "x509-root";
const X509_ISSUING: &str = "x509-issuing";

/// Reads the key-encryption key: `kek_file`, or with `--dev` `DATA_DIR/kek` (made on first
/// start, with a warning). Anything else stops the server.
pub fn load_kek(config: &Config) -> Result<Kek, StartError> {
    let path = match (&config.kek_file, config.dev) {
        (Some(path), _) => path.clone(),
        (None, true) => {
            let path = config.data_dir.join("kek");
            if !path.exists() {
                let kek = Kek::generate(&mut OsRng);
                let mut file = std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(&path)
                    .map_err(|e| {
                        StartError(format!(
                            "cannot create {}: {}",
                            path.display(),
                            io_cause(&e)
                        ))
                    })?;
                file.write_all(kek.to_file_text().as_bytes())
                    .and_then(|()| file.sync_all())
                    .map_err(|e| {
                        StartError(format!("cannot write {}: {}", path.display(), io_cause(&e)))
                    })?;
                tracing::warn!(path = %path.display(), "created a development key-encryption key beside the data; production servers must set kek_file");
                eprintln!(
                    "warning: created a development key-encryption key at {}; production servers must set kek_file",
                    path.display()
                );
            }
            path
        }
        (None, false) => {
            return Err(StartError(
                "`kek_file` is required: name a file holding the key-encryption key (64 hex digits, e.g. from \
                 `openssl rand -hex 32`), or use --dev"
                    .to_owned(),
            ));
        }
    };
    let text = std::fs::read_to_string(&path).map_err(|e| {
        StartError(format!(
            "cannot read the key-encryption key file {}: {}",
            path.display(),
            io_cause(&e)
        ))
    })?;
    Kek::parse(&text).map_err(|e| StartError(format!("{e} (in {})", path.display())))
}

/// Certificate serials: `milliseconds << 22 | replica << 12 | counter`, increasing within a
/// process. Increasing keys append to the database's index instead of scattering inserts
/// across it (random serials ran at half the speed). The random 10-bit replica id keeps
/// several servers on one database apart; a collision (same replica id, same millisecond,
/// same counter) makes the batch's commit fail, so no certificate is handed out twice.
/// Serials stay below 2^63 until 2039 for the database's signed 64-bit column.
#[derive(Debug)]
struct SerialClock {
    replica: u64,
    last: std::sync::atomic::AtomicU64,
}

impl SerialClock {
    fn new() -> Self {
        SerialClock {
            replica: OsRng.next_u64() & 0x3ff,
            last: std::sync::atomic::AtomicU64::new(0),
        }
    }

    fn next(&self, now_ms: u64) -> u64 {
        use std::sync::atomic::Ordering;
        let floor = ((now_ms & ((1 << 41) - 1)) << 22) | (self.replica << 12);
        let mut last = self.last.load(Ordering::Relaxed);
        loop {
            let next = if last >= floor { last + 1 } else { floor };
            match self
                .last
                .compare_exchange_weak(last, next, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => return next,
                Err(seen) => last = seen,
            }
        }
    }
}

/// Why a certificate was not issued.
#[derive(Debug, thiserror::Error)]
pub enum IssueError {
    /// The SSH request was wrong.
    #[error(transparent)]
    Request(#[from] SshError),
    /// The X.509 request was wrong.
    #[error(transparent)]
    X509(#[from] X509Error),
    /// The store failed or refused.
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn system(now: Timestamp) -> AuditContext {
    AuditContext {
        actor: Actor::System,
        request_id: "startup".to_owned(),
        source: None,
        now,
    }
}

fn now() -> Timestamp {
    Timestamp::from_system(SystemTime::now())
}

fn seconds(t: Timestamp) -> u64 {
    u64::try_from(t.as_millis() / 1000).unwrap_or(0)
}

/// An SSH certificate to issue.
#[derive(Debug, Clone)]
pub struct SshIssue<'a> {
    /// User or host.
    pub kind: Kind,
    /// The key to certify, an OpenSSH public key line.
    pub public_key: &'a str,
    /// Names the holder and how they got it.
    pub key_id: KeyId,
    /// The person who holds it (their user id), for revocation when they leave; `None` for
    /// hosts, the proxy's host certificates and services.
    pub holder_user_id: Option<String>,
    /// Logins (user) or names and addresses (host).
    pub principals: Vec<String>,
    /// Lifetime.
    pub ttl: Duration,
    /// Whether a user certificate carries `permit-port-forwarding` (`permit-pty` always does).
    pub port_forwarding: bool,
    /// The policy decisions behind the principals, recorded with the issuance.
    pub policy: serde_json::Value,
}

/// Which CA `warden ca rotate` replaces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CaKind {
    /// The SSH user CA.
    SshUser,
    /// The SSH host CA.
    SshHost,
    /// The X.509 root and issuing CA.
    X509,
}

impl CaKind {
    /// The name in commands and audit events.
    pub fn as_str(self) -> &'static str {
        match self {
            CaKind::SshUser => SSH_USER,
            CaKind::SshHost => SSH_HOST,
            CaKind::X509 => "x509",
        }
    }
}

impl std::str::FromStr for CaKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            SSH_USER => Ok(CaKind::SshUser),
            SSH_HOST => Ok(CaKind::SshHost),
            "x509" => Ok(CaKind::X509),
            other => Err(format!(
                "unknown CA kind `{other}`: use ssh-user, ssh-host or x509"
            )),
        }
    }
}

/// The X.509 CA that signs, and the roots clients trust.
#[derive(Debug)]
pub struct X509Keys {
    /// The signing (issuing) key's id.
    pub ca_key_id: String,
    /// The issuing CA.
    pub ca: Arc<X509Ca>,
    /// The oldest issuing CA still trusted: it signs the server's own listener certificate,
    /// so clients that have not yet fetched a rotated bundle keep connecting until the
    /// overlap ends (they pick up the new root over the same connection meanwhile).
    pub server_ca: Arc<(String, Arc<X509Ca>)>,
    /// Every trusted root, PEM, newest first.
    pub bundle_pem: String,
    /// The same roots, DER, for the mTLS verifier.
    pub roots: Vec<CertificateDer<'static>>,
}

/// The keys in force at one moment: the newest of each kind signs; all are trusted.
#[derive(Debug)]
struct Keys {
    user: Arc<(String, SshCa)>,
    host: Arc<(String, SshCa)>,
    user_trusted: Vec<(String, PublicKey)>,
    user_public: String,
    host_public: String,
    x509: Arc<X509Keys>,
}

/// The CAs in force. Clones share the keys; a rotation (here or by another replica, picked up
/// by [`Authorities::reload`]) replaces them for every clone.
#[derive(Debug, Clone)]
pub struct Authorities {
    store: Arc<Store>,
    kek: Arc<Kek>,
    kek_file: Arc<str>,
    trust_domain: Arc<str>,
    keys: Arc<RwLock<Arc<Keys>>>,
    serials: Arc<SerialClock>,
    rotated: Arc<tokio::sync::Notify>,
}

fn lines(keys: &[CaKey]) -> String {
    keys.iter().map(|k| format!("{}\n", k.public_key)).collect()
}

impl Authorities {
    /// Opens the CA keys with the KEK, creating each CA the first time only.
    pub async fn start(
        store: Arc<Store>,
        kek: Kek,
        kek_file: &str,
        trust_domain: &str,
    ) -> Result<Self, StartError> {
        let serials = SerialClock::new();
        let at = now();
        for kind in [CaKind::SshUser, CaKind::SshHost, CaKind::X509] {
            let probe = match kind {
                CaKind::X509 => X509_ISSUING,
                other => other.as_str(),
            };
            let existing = store
                .ca_keys(probe, at)
                .await
                .map_err(|e| StartError(e.to_string()))?;
            if existing.is_empty() {
                let made = new_keys(&kek, trust_domain, &serials, kind, at)
                    .map_err(|e| StartError(e.to_string()))?;
                store
                    .add_ca_keys(&system(at), Change::CaCreate, kind.as_str(), &made, None)
                    .await
                    .map_err(|e| StartError(e.to_string()))?;
                tracing::info!(kind = kind.as_str(), "created certificate authority");
            }
        }
        let sealed = Sealed {
            store: &store,
            kek: &kek,
            kek_file,
        };
        let keys = sealed.load(now()).await?;
        Ok(Authorities {
            store,
            kek: Arc::new(kek),
            kek_file: kek_file.into(),
            trust_domain: trust_domain.into(),
            keys: Arc::new(RwLock::new(Arc::new(keys))),
            serials: Arc::new(serials),
            rotated: Arc::new(tokio::sync::Notify::new()),
        })
    }

    /// Re-reads the keys in force from the database: picks up rotations (also another
    /// replica's) and drops keys whose overlap window has ended.
    pub async fn reload(&self) -> Result<(), StartError> {
        let sealed = Sealed {
            store: &self.store,
            kek: &self.kek,
            kek_file: &self.kek_file,
        };
        let keys = sealed.load(now()).await?;
        *self
            .keys
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(keys);
        Ok(())
    }

    fn keys(&self) -> Arc<Keys> {
        self.keys
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Replaces the `kind` CA with a new key. The old keys stay trusted (listed and, for
    /// X.509, in the bundle) until `overlap` has passed, so what they signed keeps working.
    pub async fn rotate(
        &self,
        ctx: &AuditContext,
        kind: CaKind,
        overlap: Duration,
    ) -> Result<Vec<String>, IssueError> {
        let made = new_keys(&self.kek, &self.trust_domain, &self.serials, kind, ctx.now)?;
        let publics = made.iter().map(|(_, p, _)| p.clone()).collect();
        self.store
            .add_ca_keys(
                ctx,
                Change::CaRotate,
                kind.as_str(),
                &made,
                Some(ctx.now.plus(overlap)),
            )
            .await?;
        self.reload()
            .await
            .map_err(|e| StoreError::Corrupt(e.to_string()))?;
        self.rotated.notify_waiters();
        Ok(publics)
    }

    /// Completes after the next rotation on this server.
    pub async fn changed(&self) {
        self.rotated.notified().await;
    }

    /// Public key lines of every trusted user CA key, the signing key first, for sshd's
    /// `TrustedUserCAKeys`.
    pub fn user_ca_public(&self) -> String {
        self.keys().user_public.clone()
    }

    /// Public key lines of every trusted host CA key, the signing key first, for
    /// `@cert-authority`.
    pub fn host_ca_public(&self) -> String {
        self.keys().host_public.clone()
    }

    /// The X.509 CA in force.
    pub fn x509(&self) -> Arc<X509Keys> {
        self.keys().x509.clone()
    }

    /// The key-encryption key, for sealing other short-lived secrets (sign-in cookies).
    pub fn kek(&self) -> &Kek {
        &self.kek
    }

    /// The key-encryption key, for a holder that outlives this borrow (the SSH proxy seals
    /// each recording's data key).
    pub fn shared_kek(&self) -> Arc<Kek> {
        self.kek.clone()
    }

    /// The SPIFFE trust domain.
    pub fn trust_domain(&self) -> &str {
        &self.trust_domain
    }

    /// Issues an SSH certificate for `public_key`, recorded and audited before it is returned.
    pub async fn issue(
        &self,
        ctx: &AuditContext,
        request: SshIssue<'_>,
    ) -> Result<(u64, String), IssueError> {
        let SshIssue {
            kind,
            public_key,
            key_id,
            holder_user_id,
            principals,
            ttl,
            port_forwarding,
            policy,
        } = request;
        let key_id = key_id.to_string();
        let public_key = parse_public_key(public_key)?;
        let mut extensions = vec!["permit-pty".to_owned()];
        if port_forwarding {
            extensions.push("permit-port-forwarding".to_owned());
        }
        let keys = self.keys();
        let authority = match kind {
            Kind::User => keys.user.clone(),
            Kind::Host => keys.host.clone(),
        };
        let now = seconds(ctx.now);
        let serial = self
            .serials
            .next(u64::try_from(ctx.now.as_millis()).unwrap_or(0));
        let request = CertRequest {
            public_key,
            kind,
            key_id: key_id.clone(),
            serial,
            principals: principals.clone(),
            // A minute of slack for clocks behind ours.
            valid_after: now.saturating_sub(60),
            valid_before: now.saturating_add(ttl.as_secs()),
            extensions,
        };
        let record = NewSshCertificate {
            serial,
            ca_key_id: authority.0.clone(),
            kind: match kind {
                Kind::User => "user",
                Kind::Host => "host",
            },
            key_id,
            holder_user_id,
            principals,
            valid_after: request.valid_after,
            valid_before: request.valid_before,
            policy,
        };
        // Signing is CPU work: keep it off the async workers, which hand the write batch on.
        let text = tokio::task::spawn_blocking(move || -> Result<String, SshError> {
            let signed = authority.1.issue(&request, &mut OsRng)?;
            signed
                .to_openssh()
                .map_err(|e| SshError::Key(e.to_string()))
        })
        .await
        .map_err(|e| SshError::Key(format!("signing task failed: {e}")))??;
        let text = self
            .store
            .issue_ssh_certificate(ctx, &record, || Ok(text))
            .await?;
        Ok((serial, text))
    }

    /// Issues an X.509 certificate for `key` naming `spiffe_id`, valid for `ttl`, recorded and
    /// audited before it is returned. Returns the serial and the certificate, PEM.
    pub async fn issue_x509(
        &self,
        ctx: &AuditContext,
        key: SubjectKey<'_>,
        spiffe_id: SpiffeId,
        server_names: (Vec<String>, Vec<std::net::IpAddr>),
        ttl: Duration,
    ) -> Result<(u64, String), IssueError> {
        self.issue_x509_with(ctx, key, spiffe_id, server_names, ttl, false)
            .await
    }

    /// As [`Authorities::issue_x509`]; with `listener`, signed by the oldest trusted issuing
    /// CA (the server's own certificate).
    pub async fn issue_x509_with(
        &self,
        ctx: &AuditContext,
        key: SubjectKey<'_>,
        spiffe_id: SpiffeId,
        server_names: (Vec<String>, Vec<std::net::IpAddr>),
        ttl: Duration,
        listener: bool,
    ) -> Result<(u64, String), IssueError> {
        if spiffe_id.trust_domain() != &*self.trust_domain {
            return Err(X509Error::BadSpiffeId {
                id: spiffe_id.to_string(),
                reason: "it is not in this server's trust domain",
            }
            .into());
        }
        let x509 = self.x509();
        let now = seconds(ctx.now);
        let request = WorkloadRequest {
            spiffe_id,
            dns_names: server_names.0,
            ip_addresses: server_names.1,
            serial: self
                .serials
                .next(u64::try_from(ctx.now.as_millis()).unwrap_or(0)),
            not_before: now.saturating_sub(60),
            not_after: now.saturating_add(ttl.as_secs()),
        };
        let record = NewX509Certificate {
            serial: request.serial,
            ca_key_id: if listener {
                x509.server_ca.0.clone()
            } else {
                x509.ca_key_id.clone()
            },
            spiffe_id: request.spiffe_id.to_string(),
            not_before: request.not_before,
            not_after: request.not_after,
        };
        let signer = if listener {
            &x509.server_ca.1
        } else {
            &x509.ca
        };
        let pem = signer.issue(key, &request)?;
        let pem = self
            .store
            .issue_x509_certificate(ctx, &record, || Ok(pem))
            .await?;
        Ok((request.serial, pem))
    }

    /// The KRL for every trusted user CA key, and its ETag.
    pub async fn krl(&self) -> Result<(Vec<u8>, String), StoreError> {
        let keys = self.keys();
        let mut sections = Vec::with_capacity(keys.user_trusted.len());
        let (key_ids, newest) = self.store.revoked_key_ids().await?;
        let mut version = u64::try_from(newest).unwrap_or(0);
        for (id, public) in &keys.user_trusted {
            let (serials, newest) = self.store.revoked_serials(id).await?;
            version = version.max(u64::try_from(newest).unwrap_or(0));
            sections.push((
                public,
                Revocations {
                    serials,
                    key_ids: key_ids.clone(),
                },
            ));
        }
        let refs: Vec<_> = sections.iter().map(|(k, r)| (*k, r)).collect();
        // The newest revocation dates the list, so the same revocations give the same bytes.
        let bytes = build_many(&refs, version, version / 1000)
            .map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let signer = &keys.user.0;
        Ok((
            bytes,
            format!("\"krl-{version}-{}-{signer}\"", keys.user_trusted.len()),
        ))
    }
}

/// New key material for `kind`, sealed: `(kind, public part, sealed private part)`.
fn new_keys(
    kek: &Kek,
    trust_domain: &str,
    serials: &SerialClock,
    kind: CaKind,
    at: Timestamp,
) -> Result<Vec<(&'static str, String, String)>, IssueError> {
    match kind {
        CaKind::SshUser | CaKind::SshHost => {
            let ca = SshCa::generate(&mut OsRng)?;
            let private = ca.to_openssh()?;
            let sealed = seal(kek, kind.as_str(), private.as_bytes(), &mut OsRng);
            let label = if kind == CaKind::SshUser {
                SSH_USER
            } else {
                SSH_HOST
            };
            Ok(vec![(label, ca.public_key_openssh(), sealed)])
        }
        CaKind::X509 => {
            let serial = serials.next(u64::try_from(at.as_millis()).unwrap_or(0));
            let made = warden_pki::x509::generate(trust_domain, seconds(at), serial)?;
            let root = seal(
                kek,
                X509_ROOT,
                made.root_key.to_pem().as_bytes(),
                &mut OsRng,
            );
            let issuing = seal(
                kek,
                X509_ISSUING,
                made.issuing_key.to_pem().as_bytes(),
                &mut OsRng,
            );
            Ok(vec![
                (X509_ROOT, made.root_pem, root),
                (X509_ISSUING, made.issuing_pem, issuing),
            ])
        }
    }
}

/// What opens the sealed CA keys: the store, the KEK, and the KEK file's name for messages.
struct Sealed<'a> {
    store: &'a Store,
    kek: &'a Kek,
    kek_file: &'a str,
}

impl Sealed<'_> {
    fn open_newest(
        &self,
        kind: &str,
        keys: &[CaKey],
    ) -> Result<zeroize::Zeroizing<String>, StartError> {
        let newest = keys
            .first()
            .ok_or_else(|| StartError(format!("no {kind} CA key is in force")))?;
        let private = open(self.kek, kind, &newest.sealed_key).map_err(|_| {
            StartError(format!(
                "cannot open the {kind} CA key with the key-encryption key in {}: wrong key or tampered data; \
                 Warden will not create new CAs over existing ones",
                self.kek_file
            ))
        })?;
        String::from_utf8(private.to_vec())
            .map(zeroize::Zeroizing::new)
            .map_err(|_| StartError(format!("the {kind} CA key is not valid text")))
    }

    async fn ssh_keys(
        &self,
        kind: &str,
        at: Timestamp,
    ) -> Result<(Arc<(String, SshCa)>, Vec<CaKey>), StartError> {
        let keys = self
            .store
            .ca_keys(kind, at)
            .await
            .map_err(|e| StartError(e.to_string()))?;
        let text = self.open_newest(kind, &keys)?;
        let ca = SshCa::from_openssh(&text)
            .map_err(|e| StartError(format!("the {kind} CA key is unreadable: {e}")))?;
        let id = keys.first().map(|k| k.id.clone()).unwrap_or_default();
        Ok((Arc::new((id, ca)), keys))
    }

    fn x509_ca(&self, root_pem: &str, issuing: &[CaKey]) -> Result<X509Ca, StartError> {
        let key = self.open_newest(X509_ISSUING, issuing)?;
        let key = LocalKey::from_pem(&key)
            .map_err(|e| StartError(format!("the x509-issuing CA key is unreadable: {e}")))?;
        let cert = issuing
            .first()
            .map(|k| k.public_key.as_str())
            .unwrap_or_default();
        X509Ca::new(root_pem, cert, key)
            .map_err(|e| StartError(format!("the X.509 CA is unreadable: {e}")))
    }

    /// The keys in force at `at`, opened with the KEK.
    async fn load(&self, at: Timestamp) -> Result<Keys, StartError> {
        let (user, user_keys) = self.ssh_keys(SSH_USER, at).await?;
        let (host, host_keys) = self.ssh_keys(SSH_HOST, at).await?;
        let mut user_trusted = Vec::with_capacity(user_keys.len());
        for key in &user_keys {
            let public = parse_public_key(&key.public_key)
                .map_err(|e| StartError(format!("stored ssh-user CA key {}: {e}", key.id)))?;
            user_trusted.push((key.id.clone(), public));
        }
        let roots = self
            .store
            .ca_keys(X509_ROOT, at)
            .await
            .map_err(|e| StartError(e.to_string()))?;
        let issuing = self
            .store
            .ca_keys(X509_ISSUING, at)
            .await
            .map_err(|e| StartError(e.to_string()))?;
        let (Some(newest_root), Some(newest_issuing)) = (roots.first(), issuing.first()) else {
            return Err(StartError("no X.509 CA is in force".to_owned()));
        };
        let ca = Arc::new(self.x509_ca(
            &newest_root.public_key,
            std::slice::from_ref(newest_issuing),
        )?);
        // Outside a rotation the oldest trusted issuing CA is the newest: open it once.
        let server_ca = match (roots.last(), issuing.last()) {
            (Some(root), Some(oldest)) if oldest.id != newest_issuing.id => Arc::new((
                oldest.id.clone(),
                Arc::new(self.x509_ca(&root.public_key, std::slice::from_ref(oldest))?),
            )),
            _ => Arc::new((newest_issuing.id.clone(), ca.clone())),
        };
        let mut root_ders = Vec::with_capacity(roots.len());
        for root in &roots {
            let der = CertificateDer::from_pem_slice(root.public_key.as_bytes())
                .map_err(|e| StartError(format!("stored X.509 root {}: {e}", root.id)))?;
            root_ders.push(der);
        }
        let keys = Keys {
            user,
            host,
            user_trusted,
            user_public: lines(&user_keys),
            host_public: lines(&host_keys),
            x509: Arc::new(X509Keys {
                ca_key_id: newest_issuing.id.clone(),
                ca,
                server_ca,
                bundle_pem: lines(&roots),
                roots: root_ders,
            }),
        };
        Ok(keys)
    }
}

/// Where a dev KEK would live, for messages.
pub fn kek_path(config: &Config) -> String {
    config
        .kek_file
        .clone()
        .unwrap_or_else(|| config.data_dir.join("kek"))
        .display()
        .to_string()
}
