//! HTTP(S) to a Warden server from the command line and the agent: `http://HOST:PORT` or
//! `https://HOST[:PORT]` (behind a TLS-terminating proxy, as in production). Server
//! certificates are checked against Mozilla's roots (webpki-roots) plus, when set, the PEM
//! bundle in `WARDEN_CA_FILE` (a private CA).

use std::sync::Arc;

use anyhow::{Context, anyhow, bail};
use http_body_util::Full;
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};

/// Where a server is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// `HOST:PORT`.
    pub authority: String,
    /// The host, for TLS server name checks and the Host header.
    pub host: String,
    /// Whether to speak TLS.
    pub tls: bool,
}

impl Target {
    /// Parses `http://HOST:PORT` or `https://HOST[:PORT]` (a trailing `/` is allowed).
    pub fn parse(url: &str) -> anyhow::Result<Target> {
        let parsed = url::Url::parse(url.trim_end_matches('/')).map_err(|_| {
            anyhow!("invalid server URL `{url}`: use https://HOST or http://HOST:PORT")
        })?;
        let tls = match parsed.scheme() {
            "https" => true,
            "http" => false,
            _ => bail!("unsupported server URL `{url}`: use https://HOST or http://HOST:PORT"),
        };
        let host = parsed
            .host_str()
            .ok_or_else(|| anyhow!("invalid server URL `{url}`: no host"))?
            .to_owned();
        let port = parsed
            .port_or_known_default()
            .ok_or_else(|| anyhow!("invalid server URL `{url}`: no port"))?;
        if parsed.path() != "/" && !parsed.path().is_empty() {
            bail!("invalid server URL `{url}`: give the server's base URL, without a path");
        }
        Ok(Target {
            authority: format!("{host}:{port}"),
            host,
            tls,
        })
    }
}

fn tls_config() -> anyhow::Result<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Ok(file) = std::env::var("WARDEN_CA_FILE") {
        let pem =
            std::fs::read(&file).with_context(|| format!("cannot read WARDEN_CA_FILE {file}"))?;
        for cert in CertificateDer::pem_slice_iter(&pem) {
            roots
                .add(cert.with_context(|| format!("WARDEN_CA_FILE {file} is not a PEM bundle"))?)
                .with_context(|| format!("WARDEN_CA_FILE {file}: unusable certificate"))?;
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

/// Sends one request and returns the status and body.
pub async fn send(
    target: &Target,
    request: hyper::Request<Full<Bytes>>,
) -> anyhow::Result<(hyper::StatusCode, Bytes)> {
    let scheme = if target.tls { "https" } else { "http" };
    let stream = tokio::net::TcpStream::connect(target.authority.as_str())
        .await
        .with_context(|| {
            format!(
                "cannot reach the Warden server at {scheme}://{}",
                target.authority
            )
        })?;
    if !target.tls {
        return crate::client::round_trip(TokioIo::new(stream), request).await;
    }
    let name = ServerName::try_from(
        target
            .host
            .trim_matches(|c| c == '[' || c == ']')
            .to_owned(),
    )
    .map_err(|e| anyhow!("invalid server name `{}`: {e}", target.host))?;
    let tls = tokio_rustls::TlsConnector::from(Arc::new(tls_config()?))
        .connect(name, stream)
        .await
        .with_context(|| format!("TLS with https://{} failed", target.authority))?;
    crate::client::round_trip(TokioIo::new(tls), request).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_urls() {
        let t = Target::parse("https://warden.example.com/").unwrap();
        assert_eq!(
            (t.authority.as_str(), t.tls),
            ("warden.example.com:443", true)
        );
        let t = Target::parse("http://127.0.0.1:8080").unwrap();
        assert_eq!((t.authority.as_str(), t.tls), ("127.0.0.1:8080", false));
        assert_eq!(
            Target::parse("ftp://x").unwrap_err().to_string(),
            "unsupported server URL `ftp://x`: use https://HOST or http://HOST:PORT"
        );
        assert!(Target::parse("https://warden.example.com/graphql").is_err());
    }
}
