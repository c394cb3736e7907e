//! A GraphQL client over the admin unix socket.

use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use anyhow::{Context, anyhow, bail};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::net::UnixStream;

/// Talks to the server that owns a data directory.
#[derive(Debug)]
pub struct AdminClient {
    data_dir: PathBuf,
    socket: PathBuf,
}

impl AdminClient {
    pub fn new(data_dir: &Path) -> Self {
        let data_dir = std::path::absolute(data_dir).unwrap_or_else(|_| data_dir.to_path_buf());
        let socket = warden_server::admin_socket_path(&data_dir);
        AdminClient { data_dir, socket }
    }

    /// Runs one GraphQL operation and returns its `data`, or the first error's message.
    pub async fn graphql(&self, query: &str, variables: Value) -> anyhow::Result<Value> {
        let stream = match UnixStream::connect(&self.socket).await {
            Ok(s) => s,
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
            Err(e) => {
                return Err(e).with_context(|| {
                    format!("cannot open admin socket {}", self.socket.display())
                });
            }
        };
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .context("admin socket handshake failed")?;
        tokio::spawn(conn);
        let body = serde_json::to_vec(&json!({ "query": query, "variables": variables }))?;
        let request = hyper::Request::post("/graphql")
            .header("host", "localhost")
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body)))?;
        let response = sender
            .send_request(request)
            .await
            .context("admin request failed")?;
        let status = response.status();
        let bytes = response
            .into_body()
            .collect()
            .await
            .context("admin response failed")?
            .to_bytes();
        let reply: Value = serde_json::from_slice(&bytes).with_context(|| {
            format!("the server answered {status} with a body that is not JSON")
        })?;
        if let Some(first) = reply
            .get("errors")
            .and_then(Value::as_array)
            .and_then(|e| e.first())
        {
            let message = first
                .get("message")
                .and_then(Value::as_str)
                .unwrap_or("unknown error");
            return Err(anyhow!("{message}"));
        }
        reply
            .get("data")
            .cloned()
            .ok_or_else(|| anyhow!("the server answered {status} without data"))
    }
}
