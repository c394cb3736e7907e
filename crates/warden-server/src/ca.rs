//! The certificate authorities as the server runs them: the key-encryption key, CA keys made
//! once and sealed in the database, SSH certificate issuance and the KRL.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use rand::RngCore;
use rand::rngs::OsRng;
use warden_model::{Actor, Timestamp};
use warden_pki::krl::{Revocations, build};
use warden_pki::seal::{Kek, open, seal};
use warden_pki::ssh::{CertRequest, Kind, SshCa, SshError, parse_public_key};
use warden_store::{AuditContext, NewSshCertificate, Store, StoreError};

use crate::StartError;
use crate::config::{Config, io_cause};

/// The SSH CA kinds Warden keeps.
pub const SSH_USER: &str = "ssh-user";
/// Host certificates.
pub const SSH_HOST: &str = "ssh-host";

/// Reads the key-encryption key: `kek_file`, or with `--dev` `DATA_DIR/kek` (made on first
/// start, with a warning). Anything else stops the server.
pub(crate) fn load_kek(config: &Config) -> Result<Kek, StartError> {
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

/// The SSH CAs in force.
#[derive(Debug, Clone)]
pub struct Authorities {
    store: Arc<Store>,
    user: Arc<(String, SshCa)>,
    host: Arc<(String, SshCa)>,
    user_public: Arc<Vec<String>>,
    host_public: Arc<Vec<String>>,
    serials: Arc<SerialClock>,
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
    /// The request was wrong.
    #[error(transparent)]
    Request(#[from] SshError),
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

async fn load_or_create(
    store: &Store,
    kek: &Kek,
    kind: &str,
    kek_file: &str,
) -> Result<(String, SshCa, Vec<String>), StartError> {
    let keys = store
        .ca_keys(kind)
        .await
        .map_err(|e| StartError(e.to_string()))?;
    let Some(newest) = keys.first() else {
        let ca = SshCa::generate(&mut OsRng).map_err(|e| StartError(e.to_string()))?;
        let private = ca.to_openssh().map_err(|e| StartError(e.to_string()))?;
        let sealed = seal(kek, kind, private.as_bytes(), &mut OsRng);
        let now = Timestamp::from_system(SystemTime::now());
        let public = ca.public_key_openssh();
        let row = store
            .create_ca_key(&system(now), kind, &public, &sealed)
            .await
            .map_err(|e| StartError(e.to_string()))?;
        tracing::info!(kind, public_key = %public, "created certificate authority");
        return Ok((row.id, ca, vec![public]));
    };
    let private = open(kek, kind, &newest.sealed_key).map_err(|_| {
        StartError(format!(
            "cannot open the {kind} CA key with the key-encryption key in {kek_file}: wrong key or tampered data; \
             Warden will not create new CAs over existing ones"
        ))
    })?;
    let text = std::str::from_utf8(&private)
        .map_err(|_| StartError(format!("the {kind} CA key is not valid text")))?;
    let ca = SshCa::from_openssh(text)
        .map_err(|e| StartError(format!("the {kind} CA key is unreadable: {e}")))?;
    Ok((
        newest.id.clone(),
        ca,
        keys.iter().map(|k| k.public_key.clone()).collect(),
    ))
}

impl Authorities {
    /// Opens the CA keys with the KEK, creating each CA the first time only.
    pub async fn start(store: Arc<Store>, kek: &Kek, kek_file: &str) -> Result<Self, StartError> {
        let (user_id, user, user_public) = load_or_create(&store, kek, SSH_USER, kek_file).await?;
        let (host_id, host, host_public) = load_or_create(&store, kek, SSH_HOST, kek_file).await?;
        Ok(Authorities {
            store,
            user: Arc::new((user_id, user)),
            host: Arc::new((host_id, host)),
            user_public: Arc::new(user_public),
            host_public: Arc::new(host_public),
            serials: Arc::new(SerialClock::new()),
        })
    }

    /// Public key lines of every active user CA key, for sshd's `TrustedUserCAKeys`.
    pub fn user_ca_public(&self) -> String {
        self.user_public.iter().map(|k| format!("{k}\n")).collect()
    }

    /// Public key lines of every active host CA key, for `@cert-authority`.
    pub fn host_ca_public(&self) -> String {
        self.host_public.iter().map(|k| format!("{k}\n")).collect()
    }

    /// Issues an SSH certificate for `public_key`, recorded and audited before it is returned.
    pub async fn issue(
        &self,
        ctx: &AuditContext,
        kind: Kind,
        public_key: &str,
        key_id: String,
        principals: Vec<String>,
        ttl: Duration,
    ) -> Result<(u64, String), IssueError> {
        let public_key = parse_public_key(public_key)?;
        let authority = match kind {
            Kind::User => self.user.clone(),
            Kind::Host => self.host.clone(),
        };
        let now = u64::try_from(ctx.now.as_millis() / 1000).unwrap_or(0);
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
            extensions: vec!["permit-pty".to_owned()],
        };
        let record = NewSshCertificate {
            serial,
            ca_key_id: authority.0.clone(),
            kind: match kind {
                Kind::User => "user",
                Kind::Host => "host",
            },
            key_id,
            principals,
            valid_after: request.valid_after,
            valid_before: request.valid_before,
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

    /// The KRL for the user CA and its ETag.
    pub async fn krl(&self) -> Result<(Vec<u8>, String), StoreError> {
        let (ca_id, ca) = &*self.user;
        let (serials, newest) = self.store.revoked_serials(ca_id).await?;
        let version = u64::try_from(newest).unwrap_or(0);
        // The newest revocation dates the list, so the same revocations give the same bytes.
        let generated = version / 1000;
        let bytes = build(
            ca.public_key(),
            &Revocations {
                serials,
                key_ids: Vec::new(),
            },
            version,
            generated,
        )
        .map_err(|e| StoreError::Corrupt(e.to_string()))?;
        Ok((bytes, format!("\"krl-{version}-{}\"", &ca_id)))
    }
}

/// Where a dev KEK would live, for messages.
pub(crate) fn kek_path(config: &Config) -> String {
    config
        .kek_file
        .clone()
        .unwrap_or_else(|| config.data_dir.join("kek"))
        .display()
        .to_string()
}
