//! The mutual-TLS listener (`listen.agent_mtls`, default 127.0.0.1:8443): agents and workloads
//! present a certificate from Warden's X.509 CA; anything else fails the handshake. The
//! server's own certificate comes from the same CA and is renewed at two thirds of its life,
//! and after a rotation.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use rustls::RootCertStore;
use rustls::server::WebPkiClientVerifier;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use warden_model::{Actor, Timestamp};
use warden_pki::x509::{LocalKey, SpiffeId, SubjectKey};
use warden_store::AuditContext;

use crate::StartError;
use crate::ca::Authorities;
use crate::edge::{Accept, PeerCertificate};

/// The server certificate's life.
const SERVER_CERT_TTL: Duration = Duration::from_secs(24 * 3600);
/// Slow handshakes are cut off after this.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The TLS settings in force, swapped whole when the certificate or the roots change.
#[derive(Clone)]
pub(crate) struct Tls {
    acceptor: Arc<RwLock<(TlsAcceptor, Timestamp, String)>>,
    authorities: Authorities,
    names: Arc<(Vec<String>, Vec<IpAddr>)>,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tls").finish_non_exhaustive()
    }
}

/// The names a client may dial the listener by: `localhost`, loopback, the bound address and
/// the public URL's host.
pub(crate) fn server_names(
    listen: SocketAddr,
    public_host: Option<&str>,
) -> (Vec<String>, Vec<IpAddr>) {
    let mut dns = vec!["localhost".to_owned()];
    let mut ips: Vec<IpAddr> = vec![[127, 0, 0, 1].into(), std::net::Ipv6Addr::LOCALHOST.into()];
    if !listen.ip().is_unspecified() {
        ips.push(listen.ip());
    }
    if let Some(host) = public_host {
        match host
            .trim_matches(|c| c == '[' || c == ']')
            .parse::<IpAddr>()
        {
            Ok(ip) => ips.push(ip),
            Err(_) => dns.push(host.to_ascii_lowercase()),
        }
    }
    dns.sort();
    dns.dedup();
    ips.sort();
    ips.dedup();
    (dns, ips)
}

fn build(
    key: &LocalKey,
    certificate: &str,
    authorities: &Authorities,
) -> Result<TlsAcceptor, String> {
    let x509 = authorities.x509();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = RootCertStore::empty();
    for root in &x509.roots {
        roots.add(root.clone()).map_err(|e| e.to_string())?;
    }
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .map_err(|e| e.to_string())?;
    let mut chain =
        vec![CertificateDer::from_pem_slice(certificate.as_bytes()).map_err(|e| e.to_string())?];
    chain.push(
        CertificateDer::from_pem_slice(x509.server_ca.1.chain_pem().as_bytes())
            .map_err(|e| e.to_string())?,
    );
    let private = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.to_der().to_vec()));
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, private)
        .map_err(|e| e.to_string())?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// What the settings depend on: the signing CA and the trusted roots.
fn trust_state(authorities: &Authorities) -> String {
    let x509 = authorities.x509();
    format!("{}\n{}", x509.server_ca.0, x509.bundle_pem)
}

/// Issues a fresh server certificate (audited) and builds the settings around it: the
/// acceptor, when to renew, and which issuing CA signed it.
async fn issue_and_build(
    authorities: &Authorities,
    names: &(Vec<String>, Vec<IpAddr>),
) -> Result<(TlsAcceptor, Timestamp, String), String> {
    let now = Timestamp::from_system(SystemTime::now());
    let ctx = AuditContext {
        actor: Actor::System,
        request_id: "mtls-listener".to_owned(),
        source: None,
        now,
    };
    let key = LocalKey::generate().map_err(|e| e.to_string())?;
    let id =
        SpiffeId::new(authorities.trust_domain(), "/warden/server").map_err(|e| e.to_string())?;
    let (_, certificate) = authorities
        .issue_x509_with(
            &ctx,
            SubjectKey::Local(&key),
            id,
            names.clone(),
            SERVER_CERT_TTL,
            true,
        )
        .await
        .map_err(|e| format!("cannot issue the mTLS listener's certificate: {e}"))?;
    let acceptor = build(&key, &certificate, authorities)?;
    Ok((
        acceptor,
        now.plus(SERVER_CERT_TTL * 2 / 3),
        trust_state(authorities),
    ))
}

impl Tls {
    /// A fresh server certificate and the trusted roots.
    pub(crate) async fn new(
        authorities: Authorities,
        names: (Vec<String>, Vec<IpAddr>),
    ) -> Result<Tls, StartError> {
        let current = issue_and_build(&authorities, &names)
            .await
            .map_err(StartError)?;
        Ok(Tls {
            acceptor: Arc::new(RwLock::new(current)),
            authorities,
            names: Arc::new(names),
        })
    }

    async fn renew(&self) -> Result<(), String> {
        let current = issue_and_build(&self.authorities, &self.names).await?;
        *self
            .acceptor
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = current;
        Ok(())
    }

    /// Every minute: re-reads the CA keys (rotations here or on another replica, ended
    /// overlaps), and renews the certificate at two thirds of its life or when the CA changed.
    pub(crate) async fn run_refresh(self) {
        let mut every = tokio::time::interval(Duration::from_secs(60));
        every.tick().await;
        loop {
            tokio::select! {
                _ = every.tick() => {
                    if let Err(err) = self.authorities.reload().await {
                        tracing::error!(error = %err, "cannot reload the CA keys");
                        continue;
                    }
                }
                () = self.authorities.changed() => {}
            }
            self.refresh().await;
        }
    }

    /// Renews the certificate if it is at two thirds of its life or the CA changed.
    pub(crate) async fn refresh(&self) {
        let (renew_at, ca) = {
            let current = self
                .acceptor
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            (current.1, current.2.clone())
        };
        let now = Timestamp::from_system(SystemTime::now());
        if (now >= renew_at || trust_state(&self.authorities) != ca)
            && let Err(err) = self.renew().await
        {
            tracing::error!(error = %err, "cannot renew the mTLS listener's certificate");
        }
    }
}

/// A TCP listener whose connections must complete a mutual-TLS handshake.
#[derive(Debug)]
pub(crate) struct MtlsListener {
    pub listener: TcpListener,
    pub tls: Tls,
}

impl Accept for MtlsListener {
    type Raw = TcpStream;
    type Io = tokio_rustls::server::TlsStream<TcpStream>;

    async fn accept(&self) -> io::Result<(Self::Raw, Option<SocketAddr>)> {
        let (stream, peer) = self.listener.accept().await?;
        stream.set_nodelay(true)?;
        Ok((stream, Some(peer)))
    }

    fn establish(
        &self,
        mut raw: Self::Raw,
        proxied: bool,
    ) -> impl Future<Output = io::Result<crate::edge::Established<Self::Io>>> + Send + 'static {
        let acceptor = self
            .tls
            .acceptor
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .0
            .clone();
        async move {
            let named = if proxied {
                crate::edge::proxy_header(&mut raw).await?
            } else {
                None
            };
            let stream = tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(raw))
                .await
                .map_err(|_| {
                    io::Error::new(io::ErrorKind::TimedOut, "TLS handshake timed out")
                })??;
            let certificate = stream
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|chain| chain.first())
                .map(|leaf| PeerCertificate(Arc::new(leaf.clone().into_owned())));
            Ok((stream, certificate, named))
        }
    }
}
