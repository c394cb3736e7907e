//! `warden agent`: joins once with a one-time token, then over mutual TLS keeps the host's
//! SSH certificate and its own client certificate fresh (renewed at two thirds of their life,
//! and when the host CA rotates), keeps the KRL and CA keys current, and writes `warden.conf`
//! for stock sshd to `Include`. Private keys are made here and never leave the data directory.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use anyhow::{Context, anyhow, bail};
use http_body_util::Full;
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use serde::{Deserialize, Serialize};
use ssh_key::{Algorithm, LineEnding, PrivateKey};
use warden_pki::x509::LocalKey;
use warden_server::{AgentCredentials, JoinRequest, RenewRequest};

use crate::cli::AgentArgs;
use crate::client::round_trip;
use crate::pki::{private_dir, write_file};

const HOST_KEY: &str = "ssh_host_ed25519_key";
const TLS_KEY: &str = "agent.key";
const STATE: &str = "credentials.json";

/// What the agent remembers between runs.
#[derive(Debug, Serialize, Deserialize)]
struct Saved {
    /// When the credentials were issued, seconds since the epoch.
    obtained_at: u64,
    credentials: AgentCredentials,
}

/// Warden's user CA as last fetched; `user_ca.pub` (what sshd reads) is it, plus the
/// break-glass CAs while Warden is unreachable.
const WARDEN_USER_CA: &str = "user_ca.warden.pub";
/// The CA keys of the live break-glass credentials, as last fetched.
const BREAK_GLASS_CA: &str = "break_glass_ca.pub";

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

pub(crate) fn shown_time(secs: u64) -> warden_model::Timestamp {
    warden_model::Timestamp::from_millis(i64::try_from(secs).unwrap_or(i64::MAX / 1000) * 1000)
}

/// When a certificate obtained at `obtained` and expiring at `expires` should be renewed.
fn renew_at(obtained: u64, expires: u64) -> u64 {
    obtained + expires.saturating_sub(obtained) * 2 / 3
}

struct Agent {
    args: AgentArgs,
    host_key: PrivateKey,
    tls_key: LocalKey,
}

pub async fn run(args: AgentArgs) -> anyhow::Result<()> {
    private_dir(&args.data_dir)?;
    let host_key = load_or_make_host_key(&args.data_dir.join(HOST_KEY))?;
    let tls_key = load_or_make_tls_key(&args.data_dir.join(TLS_KEY))?;
    let agent = Agent {
        args,
        host_key,
        tls_key,
    };
    let mut saved = agent.start().await?;
    if agent.args.once {
        if agent.refresh(&saved).await? {
            agent.renew(&saved).await?;
        }
        return Ok(());
    }
    // A host that starts while Warden is unreachable keeps going: break-glass may be needed.
    let mut last_contact = now_secs();
    let mut cut_off = false;
    match agent.refresh(&saved).await {
        Ok(true) => saved = agent.renew(&saved).await?,
        Ok(false) => agent.upload_break_glass(&saved).await,
        Err(err) => eprintln!("warning: refresh failed: {err:#}"),
    }
    let agent = Arc::new(agent);
    let (creds_tx, creds_rx) = tokio::sync::watch::channel(saved.credentials.clone());
    let _mesh = agent.args.mesh_interface.clone().map(|interface| {
        MeshTask(tokio::spawn(
            Arc::clone(&agent).run_mesh(interface, creds_rx),
        ))
    });
    loop {
        let creds = &saved.credentials;
        let due = renew_at(saved.obtained_at, creds.client_certificate_not_after).min(renew_at(
            saved.obtained_at,
            creds.host_certificate_valid_before,
        ));
        let wait = Duration::from_secs(due.saturating_sub(now_secs())).min(agent.args.refresh);
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            _ = tokio::signal::ctrl_c() => return Ok(()),
        }
        let host_ca_rotated = match agent.refresh(&saved).await {
            Ok(rotated) => {
                last_contact = now_secs();
                if cut_off {
                    cut_off = false;
                    eprintln!(
                        "Warden answers again: break-glass credentials are no longer trusted"
                    );
                }
                agent.upload_break_glass(&saved).await;
                rotated
            }
            Err(err) => {
                eprintln!("warning: refresh failed: {err:#}");
                let silent = now_secs().saturating_sub(last_contact);
                if !cut_off && silent >= agent.args.break_glass_after.as_secs() {
                    match agent.trust(true) {
                        Ok(()) => {
                            cut_off = true;
                            eprintln!(
                                "warning: Warden unreachable for {silent} s: break-glass credentials are trusted until it answers"
                            );
                        }
                        Err(err) => {
                            eprintln!("warning: cannot trust break-glass credentials: {err:#}")
                        }
                    }
                }
                false
            }
        };
        if now_secs() >= due || host_ca_rotated {
            match agent.renew(&saved).await {
                Ok(fresh) => {
                    saved = fresh;
                    creds_tx.send_replace(saved.credentials.clone());
                }
                Err(err) => eprintln!("warning: renewal failed (will retry): {err:#}"),
            }
        }
    }
}

/// The mesh task, stopped with the agent.
struct MeshTask(tokio::task::JoinHandle<()>);

impl Drop for MeshTask {
    fn drop(&mut self) {
        self.0.abort();
    }
}

fn load_or_make_host_key(path: &Path) -> anyhow::Result<PrivateKey> {
    if path.exists() {
        return PrivateKey::read_openssh_file(path)
            .with_context(|| format!("cannot read the host key {}", path.display()));
    }
    let key = PrivateKey::random(&mut rand::rngs::OsRng, Algorithm::Ed25519)
        .map_err(|e| anyhow!("cannot make a host key: {e}"))?;
    let text = key
        .to_openssh(LineEnding::LF)
        .map_err(|e| anyhow!("cannot encode the host key: {e}"))?;
    write_file(path, text.as_bytes(), 0o600)?;
    let public = key
        .public_key()
        .to_openssh()
        .map_err(|e| anyhow!("cannot encode the host key: {e}"))?;
    write_file(
        &path.with_extension("pub"),
        format!("{public}\n").as_bytes(),
        0o644,
    )?;
    Ok(key)
}

fn load_or_make_tls_key(path: &Path) -> anyhow::Result<LocalKey> {
    if path.exists() {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        return LocalKey::from_pem(&text)
            .with_context(|| format!("cannot read {}", path.display()));
    }
    let key = LocalKey::generate()?;
    write_file(path, key.to_pem().as_bytes(), 0o600)?;
    Ok(key)
}

impl Agent {
    fn path(&self, name: &str) -> PathBuf {
        self.args.data_dir.join(name)
    }

    fn public_halves(&self) -> anyhow::Result<(String, String)> {
        let ssh = self
            .host_key
            .public_key()
            .to_openssh()
            .map_err(|e| anyhow!("cannot encode the host key: {e}"))?;
        Ok((ssh, self.tls_key.csr_pem()?))
    }

    /// Uses saved credentials that still work (renewing them if due), or joins.
    async fn start(&self) -> anyhow::Result<Saved> {
        let saved: Option<Saved> = match std::fs::read(self.path(STATE)) {
            Ok(bytes) => Some(
                serde_json::from_slice(&bytes)
                    .with_context(|| format!("cannot read {}", self.path(STATE).display()))?,
            ),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(e).context("cannot read the agent's state"),
        };
        let now = now_secs();
        match saved {
            Some(saved) if now < saved.credentials.client_certificate_not_after => {
                let creds = &saved.credentials;
                if now >= renew_at(saved.obtained_at, creds.client_certificate_not_after)
                    || now >= renew_at(saved.obtained_at, creds.host_certificate_valid_before)
                {
                    self.renew(&saved).await
                } else {
                    self.write_files(&saved.credentials)?;
                    Ok(saved)
                }
            }
            expired => {
                let Some(token) = &self.args.join_token else {
                    if let Some(old) = expired {
                        bail!(
                            "the agent's certificate expired at {}: join again with a new --join-token from `warden admin join-token create`",
                            warden_model::Timestamp::from_millis(
                                i64::try_from(old.credentials.client_certificate_not_after)
                                    .unwrap_or(i64::MAX)
                                    .saturating_mul(1000)
                            )
                        );
                    }
                    bail!(
                        "this host has not joined: pass --join-token from `warden admin join-token create`"
                    );
                };
                self.join(token).await
            }
        }
    }

    async fn join(&self, token: &str) -> anyhow::Result<Saved> {
        let (ssh_host_key, csr) = self.public_halves()?;
        let body = serde_json::to_vec(&JoinRequest {
            ssh_host_key,
            csr,
            sshd_addr: self.args.sshd_addr.clone(),
        })?;
        let target = crate::http::Target::parse(&self.args.server)?;
        let request = hyper::Request::post("/v1/agent/join")
            .header("host", &target.authority)
            .header("content-type", "application/json")
            .header("authorization", format!("Bearer {}", token.trim()))
            .body(Full::new(Bytes::from(body)))?;
        let (status, bytes) = crate::http::send(&target, request).await?;
        let creds = answer(status, &bytes).context("join refused")?;
        self.keep(creds)
    }

    async fn renew(&self, saved: &Saved) -> anyhow::Result<Saved> {
        let (ssh_host_key, csr) = self.public_halves()?;
        let body = serde_json::to_vec(&RenewRequest { ssh_host_key, csr })?;
        let (status, bytes) = self
            .mtls(&saved.credentials, "POST", "/v1/agent/renew", body)
            .await?;
        let creds = answer(status, &bytes).context("renewal refused")?;
        self.keep(creds)
    }

    fn keep(&self, creds: AgentCredentials) -> anyhow::Result<Saved> {
        let saved = Saved {
            obtained_at: now_secs(),
            credentials: creds,
        };
        self.write_files(&saved.credentials)?;
        write_file(
            &self.path("bundle.pem"),
            saved.credentials.bundle.as_bytes(),
            0o644,
        )?;
        write_file(
            &self.path(STATE),
            &serde_json::to_vec_pretty(&saved)?,
            0o600,
        )?;
        eprintln!(
            "host {}: host certificate until {}, client certificate until {}",
            saved.credentials.host,
            shown_time(saved.credentials.host_certificate_valid_before),
            shown_time(saved.credentials.client_certificate_not_after)
        );
        Ok(saved)
    }

    fn write_files(&self, creds: &AgentCredentials) -> anyhow::Result<()> {
        write_file(
            &self.path(&format!("{HOST_KEY}-cert.pub")),
            format!("{}\n", creds.host_certificate.trim_end()).as_bytes(),
            0o644,
        )?;
        // The client certificate then the issuing CA: what TLS presents (curl --cert too).
        let full = format!("{}{}", creds.client_certificate, creds.chain);
        write_file(&self.path("agent.crt"), full.as_bytes(), 0o644)?;
        write_file(&self.path("chain.pem"), creds.chain.as_bytes(), 0o644)?;
        // A newer bundle (fetched after a rotation) is kept until the next issuance.
        if !self.path("bundle.pem").exists() {
            write_file(&self.path("bundle.pem"), creds.bundle.as_bytes(), 0o644)?;
        }
        write_file(&self.path(WARDEN_USER_CA), creds.user_ca.as_bytes(), 0o644)?;
        self.trust(false)?;
        write_file(&self.path("host_ca.pub"), creds.host_ca.as_bytes(), 0o644)?;
        if !self.path("revoked.krl").exists() {
            write_file(&self.path("revoked.krl"), b"", 0o644)?;
        }
        // Only the proxy's certificates for this host: a person's own certificate is refused,
        // so every session goes through the recording proxy. sshd reads an
        // `AuthorizedPrincipalsFile` with the rights of the user logging in, who cannot open
        // the agent's private directory; the principal comes from a command instead, run as
        // `nobody`, with no file for anyone to read or write.
        let principal = warden_model::proxy_principal(&creds.host);
        if principal.contains('%') || principal.chars().any(char::is_whitespace) {
            bail!(
                "host name `{}` cannot be written into sshd's configuration",
                creds.host
            );
        }
        let dir = std::path::absolute(&self.args.data_dir)?;
        // The principals come from this program, run as `nobody` with nothing to read: the
        // proxy's principal, and the break-glass one, whose sessions are forced through the
        // recorder. sshd trusts the CA of break-glass certificates only while this agent
        // cannot reach Warden (`trust`).
        let spool = std::path::absolute(&self.args.break_glass_spool)?;
        crate::break_glass::make_spool(&spool)?;
        let exe = std::env::current_exe().context("cannot find this program's path")?;
        for path in [&exe, &spool] {
            let shown = path.display().to_string();
            if shown.contains(['"', '%', '\\']) || shown.chars().any(char::is_whitespace) {
                bail!("path `{shown}` cannot be written into sshd's configuration");
            }
        }
        let conf = format!(
            "# Written by warden agent for host {host}; do not edit.\n\
             HostKey {dir}/{HOST_KEY}\n\
             HostCertificate {dir}/{HOST_KEY}-cert.pub\n\
             TrustedUserCAKeys {dir}/user_ca.pub\n\
             AuthorizedPrincipalsCommand {exe} break-glass principals --host-principal {principal} --spool {spool}\n\
             AuthorizedPrincipalsCommandUser nobody\n\
             ExposeAuthInfo yes\n\
             RevokedKeys {dir}/revoked.krl\n",
            host = creds.host,
            dir = dir.display(),
            exe = exe.display(),
            spool = spool.display(),
        );
        private_dir(&self.args.sshd_config_dir)?;
        write_file(
            &self.args.sshd_config_dir.join("warden.conf"),
            conf.as_bytes(),
            0o644,
        )?;
        Ok(())
    }

    /// Fetches the KRL and CA keys over mutual TLS. True when the host CA's signing key is not
    /// the one that signed our host certificate (a rotation: renew now).
    async fn refresh(&self, saved: &Saved) -> anyhow::Result<bool> {
        let creds = &saved.credentials;
        let (status, krl) = self.mtls(creds, "GET", "/v1/ssh/krl", Vec::new()).await?;
        if !status.is_success() {
            bail!("the server answered {status} for the KRL");
        }
        write_file(&self.path("revoked.krl"), &krl, 0o644)?;
        let (status, bundle) = self
            .mtls(creds, "GET", "/v1/x509/bundle.pem", Vec::new())
            .await?;
        if status.is_success() && !bundle.is_empty() {
            write_file(&self.path("bundle.pem"), &bundle, 0o644)?;
        }
        let (status, user_ca) = self
            .mtls(creds, "GET", "/v1/ssh/user_ca.pub", Vec::new())
            .await?;
        if status.is_success() {
            write_file(&self.path(WARDEN_USER_CA), &user_ca, 0o644)?;
        }
        let (status, keys) = self
            .mtls(creds, "GET", "/v1/agent/break-glass", Vec::new())
            .await?;
        if status.is_success() {
            write_file(&self.path(BREAK_GLASS_CA), &keys, 0o644)?;
        }
        // Warden answered: only its own user CA is trusted.
        self.trust(false)?;
        let (status, host_ca) = self
            .mtls(creds, "GET", "/v1/ssh/host_ca.pub", Vec::new())
            .await?;
        if !status.is_success() {
            return Ok(false);
        }
        write_file(&self.path("host_ca.pub"), &host_ca, 0o644)?;
        let signing = String::from_utf8_lossy(&host_ca)
            .lines()
            .next()
            .and_then(|l| ssh_key::PublicKey::from_openssh(l).ok());
        let ours = ssh_key::Certificate::from_openssh(creds.host_certificate.trim()).ok();
        Ok(match (signing, ours) {
            (Some(signing), Some(cert)) => signing.key_data() != cert.signature_key(),
            _ => false,
        })
    }

    /// Writes sshd's `TrustedUserCAKeys`: Warden's user CA, and with `break_glass` the CAs of
    /// the live break-glass credentials Warden last listed.
    fn trust(&self, break_glass: bool) -> anyhow::Result<()> {
        let mut keys = std::fs::read_to_string(self.path(WARDEN_USER_CA))
            .with_context(|| format!("cannot read {}", self.path(WARDEN_USER_CA).display()))?;
        if break_glass {
            if !keys.ends_with('\n') {
                keys.push('\n');
            }
            keys.push_str(&std::fs::read_to_string(self.path(BREAK_GLASS_CA)).unwrap_or_default());
        }
        // Every refresh asks for the same trust again: write only what changes.
        let path = self.path("user_ca.pub");
        if std::fs::read(&path).is_ok_and(|now| now == keys.as_bytes()) {
            return Ok(());
        }
        write_file(&path, keys.as_bytes(), 0o644)
    }

    /// Reports each finished break-glass session in the spool to Warden, with its recording;
    /// what Warden took is removed. Failures are retried at the next contact.
    async fn upload_break_glass(&self, saved: &Saved) {
        let spool = &self.args.break_glass_spool;
        let Ok(entries) = std::fs::read_dir(spool) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.extension().and_then(|e| e.to_str()) != Some("json") {
                continue;
            }
            // A session still running after a day is taken as abandoned (the host rebooted).
            let Some((body, files)) = crate::break_glass::spooled(spool, &path, 24 * 3600) else {
                continue;
            };
            let Ok(bytes) = serde_json::to_vec(&body) else {
                continue;
            };
            match self
                .mtls(&saved.credentials, "POST", "/v1/agent/break-glass", bytes)
                .await
            {
                Ok((status, _)) if status.is_success() => {
                    for file in files {
                        let _ = std::fs::remove_file(file);
                    }
                    eprintln!(
                        "reported break-glass session {} to Warden",
                        body.get("id").unwrap_or(&serde_json::Value::Null)
                    );
                }
                Ok((status, answer)) => eprintln!(
                    "warning: Warden refused break-glass session {} ({status}): {}",
                    body.get("id").unwrap_or(&serde_json::Value::Null),
                    String::from_utf8_lossy(&answer)
                ),
                Err(err) => eprintln!("warning: cannot report break-glass session: {err:#}"),
            }
        }
    }

    /// Enrolls the host's mesh key over mutual TLS (a new key at two thirds of its life),
    /// brings the interface up and follows the host's map. Failures are retried.
    async fn run_mesh(
        self: Arc<Self>,
        interface: String,
        creds: tokio::sync::watch::Receiver<AgentCredentials>,
    ) {
        loop {
            if let Err(e) = self.mesh_once(&interface, creds.clone()).await {
                eprintln!("warning: mesh: {e:#}");
            }
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
    }

    async fn mesh_once(
        &self,
        interface: &str,
        creds: tokio::sync::watch::Receiver<AgentCredentials>,
    ) -> anyhow::Result<()> {
        let dir = &self.args.data_dir;
        let enrolled_path = self.path("mesh.json");
        let previous: Option<crate::mesh::Enrolled> = std::fs::read(&enrolled_path)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok());
        let renew = previous.as_ref().is_some_and(|p| {
            let obtained = std::fs::metadata(dir.join("mesh.key"))
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok())
                .map_or(0, |d| d.as_secs());
            now_secs() >= renew_at(obtained, p.expires_at)
        });
        let current = creds.borrow().clone();
        let (status, bytes) = self
            .mtls(&current, "GET", "/v1/mesh/ranges", Vec::new())
            .await?;
        if !status.is_success() {
            bail!("{}", crate::client::failure(status, &bytes));
        }
        let ranges: crate::mesh::Ranges = serde_json::from_slice(&bytes)
            .context("the server's answer is not the mesh's ranges")?;
        crate::mesh::check_ranges(&ranges, interface)?;
        let private_key = crate::mesh::node_key(dir, renew)?;
        let enrolled = self.mesh_enroll(&current, private_key).await?;
        write_file(&enrolled_path, &serde_json::to_vec(&enrolled)?, 0o600)?;
        eprintln!(
            "mesh: host `{}` enrolled as {} and {}",
            enrolled.name, enrolled.ipv4, enrolled.ipv6
        );
        let plane = crate::mesh::bring_up(
            &enrolled,
            interface,
            self.args.mesh_listen_port,
            private_key,
        )
        .await?;
        let mut fetch = |after: u64| {
            let creds = creds.borrow().clone();
            async move {
                let (status, bytes) = self
                    .mtls(
                        &creds,
                        "GET",
                        &format!("/v1/mesh/map?after={after}"),
                        Vec::new(),
                    )
                    .await?;
                crate::mesh::map_answer(status, &bytes)
            }
        };
        let mut enrolled_at = now_secs();
        let mut expires_at = enrolled.expires_at;
        loop {
            // Serve until two thirds of the key's life, then make a new key, enroll it and
            // set it on the running interface (peers learn it from their maps).
            let renew_in = renew_at(enrolled_at, expires_at).saturating_sub(now_secs());
            let stop = tokio::time::sleep(Duration::from_secs(renew_in.max(1)));
            let renewed = match crate::mesh::serve(&plane, dir, &mut fetch, stop).await {
                Ok(()) => {
                    let current = creds.borrow().clone();
                    self.mesh_renew(&current).await
                }
                Err(e) => Err(e),
            };
            match renewed {
                Ok((private_key, renewed)) => {
                    plane.set_private_key(private_key).await?;
                    write_file(&enrolled_path, &serde_json::to_vec(&renewed)?, 0o600)?;
                    eprintln!(
                        "mesh: host key renewed; accepted until {}",
                        shown_time(renewed.expires_at)
                    );
                    enrolled_at = now_secs();
                    expires_at = renewed.expires_at;
                }
                Err(e) => {
                    plane.stop().await;
                    return Err(e);
                }
            }
        }
    }

    /// A new mesh key, enrolled (the key file is replaced only once the server took it).
    async fn mesh_renew(
        &self,
        creds: &AgentCredentials,
    ) -> anyhow::Result<([u8; 32], crate::mesh::Enrolled)> {
        let (private_key, _) = warden_mesh::dataplane::generate_key()?;
        let enrolled = self.mesh_enroll(creds, private_key).await?;
        crate::mesh::save_key(&self.args.data_dir, private_key)?;
        Ok((private_key, enrolled))
    }

    async fn mesh_enroll(
        &self,
        creds: &AgentCredentials,
        private_key: [u8; 32],
    ) -> anyhow::Result<crate::mesh::Enrolled> {
        let public = warden_mesh::dataplane::public_of(private_key)?;
        let body = serde_json::to_vec(&serde_json::json!({
            "public_key": public.to_string(),
            "endpoint": self.args.mesh_endpoint,
        }))?;
        let (status, bytes) = self.mtls(creds, "POST", "/v1/mesh/enroll", body).await?;
        if !status.is_success() {
            bail!("{}", crate::client::failure(status, &bytes));
        }
        serde_json::from_slice(&bytes).context("the server's answer is not an enrollment")
    }

    async fn mtls(
        &self,
        creds: &AgentCredentials,
        method: &str,
        path: &str,
        body: Vec<u8>,
    ) -> anyhow::Result<(hyper::StatusCode, Bytes)> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        // The bundle file, refreshed from the server, rather than the one from the last
        // issuance: after an X.509 rotation it holds the new root too.
        let bundle = std::fs::read(self.path("bundle.pem"))
            .unwrap_or_else(|_| creds.bundle.clone().into_bytes());
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(&bundle) {
            roots.add(cert.context("unreadable CA bundle")?)?;
        }
        let chain = vec![
            CertificateDer::from_pem_slice(creds.client_certificate.as_bytes())
                .context("unreadable client certificate")?,
            CertificateDer::from_pem_slice(creds.chain.as_bytes()).context("unreadable chain")?,
        ];
        let key = PrivateKeyDer::from_pem_slice(self.tls_key.to_pem().as_bytes())
            .context("unreadable agent key")?;
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_client_auth_cert(chain, key)?;
        let (host, _) = creds
            .mtls_address
            .rsplit_once(':')
            .ok_or_else(|| anyhow!("bad mTLS address `{}`", creds.mtls_address))?;
        let name = ServerName::try_from(host.trim_matches(|c| c == '[' || c == ']').to_owned())
            .map_err(|e| anyhow!("bad mTLS host `{host}`: {e}"))?;
        let tcp = tokio::net::TcpStream::connect(creds.mtls_address.as_str())
            .await
            .with_context(|| format!("cannot reach the mTLS listener at {}", creds.mtls_address))?;
        let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
            .connect(name, tcp)
            .await
            .with_context(|| format!("TLS with {} failed", creds.mtls_address))?;
        let request = hyper::Request::builder()
            .method(method)
            .uri(path)
            .header("host", creds.mtls_address.as_str())
            .header(
                "user-agent",
                concat!("warden-agent/", env!("CARGO_PKG_VERSION")),
            )
            .header("content-type", "application/json");
        round_trip(
            TokioIo::new(tls),
            request.body(Full::new(Bytes::from(body)))?,
        )
        .await
    }
}

fn answer(status: hyper::StatusCode, bytes: &[u8]) -> anyhow::Result<AgentCredentials> {
    if status.is_success() {
        return serde_json::from_slice(bytes).context("the server's answer is not credentials");
    }
    let message = serde_json::from_slice::<serde_json::Value>(bytes)
        .ok()
        .and_then(|v| v.get("error").and_then(|e| e.as_str()).map(str::to_owned))
        .unwrap_or_else(|| format!("the server answered {status}"));
    Err(anyhow!("{message}"))
}
