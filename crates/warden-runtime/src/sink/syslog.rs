//! Syslog (RFC 5424) over TCP with octet-counting framing (RFC 6587), optionally TLS
//! (RFC 5425). Each event is one message: MSGID is the action, structured data carries the
//! sequence number and outcome, and MSG is the canonical event JSON.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use warden_audit::{AuditEvent, Outcome};
use warden_model::Timestamp;

use super::{Sink, SinkError};
use crate::StartError;

/// authpriv (10): security and authorization messages.
const FACILITY: u8 = 10;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Private Enterprise Number 32473 is reserved for documentation (RFC 5612).
const SD_ID: &str = "warden@32473";

/// An open connection to the collector.
enum Conn {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

impl Conn {
    /// False when the collector has closed the connection. Collectors send nothing, so a
    /// read that completes at once means end of stream (or an error): writing then would go
    /// into a dead socket and the events would be lost.
    async fn alive(&mut self) -> bool {
        let mut byte = [0u8; 1];
        match self {
            Conn::Plain(tcp) => {
                matches!(tcp.try_read(&mut byte), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock)
            }
            Conn::Tls(tls) => tokio::time::timeout(Duration::ZERO, tls.read(&mut byte))
                .await
                .is_err(),
        }
    }

    async fn send(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        match self {
            Conn::Plain(tcp) => {
                tcp.write_all(bytes).await?;
                tcp.flush().await
            }
            Conn::Tls(tls) => {
                tls.write_all(bytes).await?;
                tls.flush().await
            }
        }
    }
}

pub(crate) struct SyslogSink {
    address: String,
    tls: Option<(tokio_rustls::TlsConnector, ServerName<'static>)>,
    app_name: String,
    hostname: String,
    conn: Option<Conn>,
}

impl SyslogSink {
    pub fn new(
        address: &str,
        tls: bool,
        ca_file: Option<&Path>,
        server_name: Option<&str>,
        app_name: &str,
    ) -> Result<Self, StartError> {
        let tls = match (tls, ca_file) {
            (false, _) => None,
            (true, None) => return Err(StartError("a TLS syslog sink needs `ca_file`".to_owned())),
            (true, Some(ca)) => {
                let mut roots = rustls::RootCertStore::empty();
                let certs = CertificateDer::pem_file_iter(ca).map_err(|e| {
                    StartError(format!("cannot read CA file {}: {e}", ca.display()))
                })?;
                for cert in certs {
                    let cert = cert.map_err(|e| {
                        StartError(format!("invalid CA file {}: {e}", ca.display()))
                    })?;
                    roots.add(cert).map_err(|e| {
                        StartError(format!("invalid CA certificate in {}: {e}", ca.display()))
                    })?;
                }
                if roots.is_empty() {
                    return Err(StartError(format!(
                        "CA file {} holds no certificate",
                        ca.display()
                    )));
                }
                let provider = Arc::new(rustls::crypto::ring::default_provider());
                let config = rustls::ClientConfig::builder_with_provider(provider)
                    .with_safe_default_protocol_versions()
                    .map_err(|e| StartError(format!("TLS setup failed: {e}")))?
                    .with_root_certificates(roots)
                    .with_no_client_auth();
                let host = server_name.map(str::to_owned).unwrap_or_else(|| {
                    address
                        .rsplit_once(':')
                        .map_or(address, |(h, _)| h)
                        .trim_matches(['[', ']'])
                        .to_owned()
                });
                let name = ServerName::try_from(host.clone())
                    .map_err(|_| StartError(format!("invalid TLS server name `{host}`")))?;
                Some((tokio_rustls::TlsConnector::from(Arc::new(config)), name))
            }
        };
        let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .ok()
            .map(|h| h.trim().to_owned())
            .filter(|h| !h.is_empty() && h.bytes().all(|b| b.is_ascii_graphic()))
            .unwrap_or_else(|| "-".to_owned());
        Ok(SyslogSink {
            address: address.to_owned(),
            tls,
            app_name: app_name.to_owned(),
            hostname,
            conn: None,
        })
    }

    async fn connect(&self) -> Result<Conn, SinkError> {
        let tcp = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(&self.address))
            .await
            .map_err(|_| SinkError(format!("connecting to {} timed out", self.address)))?
            .map_err(|e| SinkError(format!("cannot connect to {}: {e}", self.address)))?;
        tcp.set_nodelay(true)
            .map_err(|e| SinkError(e.to_string()))?;
        match &self.tls {
            None => Ok(Conn::Plain(tcp)),
            Some((connector, name)) => {
                let tls =
                    tokio::time::timeout(CONNECT_TIMEOUT, connector.connect(name.clone(), tcp))
                        .await
                        .map_err(|_| {
                            SinkError(format!("TLS handshake with {} timed out", self.address))
                        })?
                        .map_err(|e| {
                            SinkError(format!("TLS handshake with {} failed: {e}", self.address))
                        })?;
                Ok(Conn::Tls(Box::new(tls)))
            }
        }
    }

    /// One RFC 5424 message.
    fn message(&self, event: &AuditEvent) -> String {
        let severity = match event.outcome {
            Outcome::Success => 6,
            Outcome::Failure => 5,
            Outcome::Denied => 4,
        };
        let pri = u16::from(FACILITY) * 8 + severity;
        let time = Timestamp::from_millis(event.time).rfc3339_millis();
        let msgid: String = event
            .action
            .chars()
            .filter(char::is_ascii_graphic)
            .take(32)
            .collect();
        let msgid = if msgid.is_empty() {
            "-".to_owned()
        } else {
            msgid
        };
        format!(
            "<{pri}>1 {time} {} {} - {msgid} [{SD_ID} seq=\"{}\" outcome=\"{}\"] {}",
            self.hostname,
            self.app_name,
            event.seq,
            event.outcome.as_str(),
            event.canonical()
        )
    }
}

impl SyslogSink {
    /// A checkpoint as one message: MSGID `audit.checkpoint`, the note in JSON.
    fn checkpoint_message(&self, size: u64, note: &str) -> String {
        let pri = u16::from(FACILITY) * 8 + 6;
        let time = Timestamp::from_system(std::time::SystemTime::now()).rfc3339_millis();
        format!(
            "<{pri}>1 {time} {} {} - audit.checkpoint [{SD_ID} size=\"{size}\"] {}",
            self.hostname,
            self.app_name,
            serde_json::json!({ "size": size, "note": note })
        )
    }

    async fn send(&mut self, frames: Vec<u8>) -> Result<(), SinkError> {
        let reusable = match self.conn.take() {
            Some(mut conn) => conn.alive().await.then_some(conn),
            None => None,
        };
        let mut conn = match reusable {
            Some(conn) => conn,
            None => self.connect().await?,
        };
        match tokio::time::timeout(Duration::from_secs(30), conn.send(&frames)).await {
            Ok(Ok(())) => {
                self.conn = Some(conn);
                Ok(())
            }
            Ok(Err(e)) => Err(SinkError(format!(
                "sending to {} failed: {e}",
                self.address
            ))),
            Err(_) => Err(SinkError(format!("sending to {} timed out", self.address))),
        }
    }
}

impl Sink for SyslogSink {
    async fn deliver_checkpoint(&mut self, size: u64, note: &str) -> Result<(), SinkError> {
        let message = self.checkpoint_message(size, note);
        self.send(format!("{} {message}", message.len()).into_bytes())
            .await
    }

    async fn deliver(&mut self, events: &[AuditEvent]) -> Result<(), SinkError> {
        let mut frames = Vec::new();
        for event in events {
            let message = self.message(event);
            frames.extend_from_slice(format!("{} {message}", message.len()).as_bytes());
        }
        self.send(frames).await
    }
}
