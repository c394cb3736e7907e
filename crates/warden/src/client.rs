//! A GraphQL client over the admin unix socket.

use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use anyhow::{Context, anyhow, bail};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::net::UnixStream;

/// Talks to a server: the one owning a data directory, over its admin socket, or one at a URL
/// with an API token.
#[derive(Debug)]
pub struct AdminClient {
    data_dir: PathBuf,
    socket: PathBuf,
    http: Option<(crate::http::Target, String)>,
}

/// A GraphQL error as the server sent it: its message (what the user reads) and its code
/// (`FORBIDDEN`, `NOT_FOUND`, `BAD_USER_INPUT`, …), which callers branch on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// `extensions.code`, when the server gave one.
    pub code: Option<String>,
    /// The message.
    pub message: String,
}

/// The first error of a GraphQL answer, if it has one.
fn first_error(reply: &Value) -> Option<ApiError> {
    let first = reply.get("errors")?.as_array()?.first()?;
    let message = first
        .get("message")
        .and_then(Value::as_str)
        .unwrap_or("unknown error");
    let code = first
        .pointer("/extensions/code")
        .and_then(Value::as_str)
        .map(str::to_owned);
    Some(ApiError {
        code,
        message: message.to_owned(),
    })
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ApiError {}

impl ApiError {
    /// Whether the server refused the caller (`FORBIDDEN`).
    pub fn is_forbidden(&self) -> bool {
        self.code.as_deref() == Some("FORBIDDEN")
    }
}

impl AdminClient {
    pub fn new(data_dir: &Path) -> Self {
        let data_dir = std::path::absolute(data_dir).unwrap_or_else(|_| data_dir.to_path_buf());
        let socket = warden_server::admin_socket_path(&data_dir);
        AdminClient {
            data_dir,
            socket,
            http: None,
        }
    }

    /// A client for `https://HOST` or `http://HOST:PORT` with a bearer token.
    pub fn remote(url: &str, token: String) -> anyhow::Result<Self> {
        Ok(AdminClient {
            data_dir: PathBuf::new(),
            socket: PathBuf::new(),
            http: Some((crate::http::Target::parse(url)?, token)),
        })
    }

    /// Runs one GraphQL operation and returns its `data`, or the first error's message.
    pub async fn graphql(&self, query: &str, variables: Value) -> anyhow::Result<Value> {
        let body = serde_json::to_vec(&json!({ "query": query, "variables": variables }))?;
        let (status, bytes) = self.send("POST", "/graphql", body).await?;
        let reply: Value = serde_json::from_slice(&bytes).with_context(|| {
            format!("the server answered {status} with a body that is not JSON")
        })?;
        if let Some(error) = first_error(&reply) {
            return Err(error.into());
        }
        reply
            .get("data")
            .cloned()
            .ok_or_else(|| anyhow!("the server answered {status} without data"))
    }

    /// POSTs a body to a path; the JSON answer on success, the server's message on failure.
    pub async fn post(&self, path: &str, body: Vec<u8>) -> anyhow::Result<Value> {
        let (status, bytes) = self.send("POST", path, body).await?;
        if status.is_success() {
            return serde_json::from_slice(&bytes).with_context(|| {
                format!("the server answered {status} with a body that is not JSON")
            });
        }
        Err(anyhow!("{}", failure(status, &bytes)))
    }

    /// GETs a path; the body on success, the server's message on failure.
    pub async fn get(&self, path: &str) -> anyhow::Result<Bytes> {
        let (status, bytes) = self.send("GET", path, Vec::new()).await?;
        if status.is_success() {
            return Ok(bytes);
        }
        Err(anyhow!("{}", failure(status, &bytes)))
    }

    /// Sends a request; the status and body, whatever the status.
    pub async fn request(
        &self,
        method: &str,
        path: &str,
        body: Vec<u8>,
    ) -> anyhow::Result<(hyper::StatusCode, Bytes)> {
        self.send(method, path, body).await
    }

    async fn send(
        &self,
        method: &str,
        path: &str,
        body: Vec<u8>,
    ) -> anyhow::Result<(hyper::StatusCode, Bytes)> {
        let host = match &self.http {
            Some((target, _)) => target.authority.clone(),
            None => "localhost".to_owned(),
        };
        let mut request = hyper::Request::builder()
            .method(method)
            .uri(path)
            .header("host", host)
            .header("content-type", "application/json");
        if let Some((_, token)) = &self.http {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        let request = request.body(Full::new(Bytes::from(body)))?;
        match &self.http {
            Some((target, _)) => crate::http::send(target, request).await,
            None => round_trip(TokioIo::new(self.connect_socket().await?), request).await,
        }
    }

    async fn connect_socket(&self) -> anyhow::Result<UnixStream> {
        match UnixStream::connect(&self.socket).await {
            Ok(s) => Ok(s),
            Err(e) if matches!(e.kind(), ErrorKind::NotFound | ErrorKind::ConnectionRefused) => {
                bail!(
                    "no Warden server is running with data dir {}",
                    self.data_dir.display()
                )
            }
            Err(e) if e.kind() == ErrorKind::PermissionDenied => bail!(
                "cannot open admin socket {}: permission denied (run as the user that runs the server)",
                self.socket.display()
            ),
            Err(e) => Err(e)
                .with_context(|| format!("cannot open admin socket {}", self.socket.display())),
        }
    }
}

/// The server's message in a failed answer, or its status.
pub(crate) fn failure(status: hyper::StatusCode, bytes: &[u8]) -> String {
    serde_json::from_slice::<Value>(bytes)
        .ok()
        .and_then(|v| {
            v.pointer("/errors/0/message")
                .and_then(Value::as_str)
                .map(str::to_owned)
        })
        .unwrap_or_else(|| match status {
            hyper::StatusCode::PAYLOAD_TOO_LARGE => {
                "the server refused the file: larger than its vuln.max_import_bytes".to_owned()
            }
            _ => format!("the server answered {status}"),
        })
}

pub async fn round_trip<T>(
    io: T,
    request: hyper::Request<Full<Bytes>>,
) -> anyhow::Result<(hyper::StatusCode, Bytes)>
where
    T: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(io)
        .await
        .context("handshake with the server failed")?;
    tokio::spawn(conn);
    let response = sender
        .send_request(request)
        .await
        .context("request to the server failed")?;
    let status = response.status();
    let bytes = response
        .into_body()
        .collect()
        .await
        .context("reading the server's answer failed")?
        .to_bytes();
    Ok((status, bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refusal_is_told_by_its_code_not_its_words() {
        let reply = json!({ "errors": [{
            "message": "permission denied: policy v1: no policy permits `ssh` (default deny)",
            "extensions": { "code": "FORBIDDEN" },
        }], "data": null });
        let error = first_error(&reply).unwrap();
        assert!(error.is_forbidden());
        assert_eq!(
            error.to_string(),
            "permission denied: policy v1: no policy permits `ssh` (default deny)"
        );
        let not_found = json!({ "errors": [{
            "message": "user `bob` not found",
            "extensions": { "code": "NOT_FOUND" },
        }] });
        assert!(!first_error(&not_found).unwrap().is_forbidden());
        let bare = json!({ "errors": [{ "message": "permission denied: but no code" }] });
        assert!(!first_error(&bare).unwrap().is_forbidden());
        assert_eq!(first_error(&json!({ "data": {} })), None);
    }
}
