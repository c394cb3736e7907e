//! `warden login`: the RFC 8252 loopback flow. A listener on 127.0.0.1 receives a one-time
//! code after the person authorizes the CLI in their browser (signed in with their passkey);
//! the code and a PKCE verifier buy a 12-hour credential, saved with mode 0600. Then a fresh
//! SSH key is made here and certified.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http_body_util::Full;
use hyper::body::Bytes;
use rand::RngCore;
use serde::{Deserialize, Serialize};
use serde_json::json;
use sha2::Digest;
use ssh_key::{Algorithm, LineEnding, PrivateKey};

use crate::cli::LoginArgs;
use crate::client::{AdminClient, ApiError};
use crate::pki::{private_dir, write_file};

/// What `warden login` saves.
#[derive(Debug, Serialize, Deserialize)]
pub struct Saved {
    pub server: String,
    pub token: String,
    pub user: String,
    pub expires_at: String,
}

/// Where the CLI keeps its credential: `$WARDEN_CONFIG_DIR`, else `$XDG_CONFIG_HOME/warden`,
/// else `~/.config/warden`.
pub fn config_dir() -> anyhow::Result<PathBuf> {
    if let Ok(dir) = std::env::var("WARDEN_CONFIG_DIR") {
        return Ok(PathBuf::from(dir));
    }
    if let Ok(dir) = std::env::var("XDG_CONFIG_HOME") {
        return Ok(PathBuf::from(dir).join("warden"));
    }
    let home =
        std::env::var("HOME").map_err(|_| anyhow!("HOME is not set: set WARDEN_CONFIG_DIR"))?;
    Ok(PathBuf::from(home).join(".config/warden"))
}

/// A new Ed25519 key from the OS's RNG: the private key and the public key, OpenSSH text.
pub fn fresh_ssh_key() -> anyhow::Result<(zeroize::Zeroizing<String>, String)> {
    let key = PrivateKey::random(&mut rand::rngs::OsRng, Algorithm::Ed25519)
        .map_err(|e| anyhow!("cannot make an SSH key: {e}"))?;
    let private = key.to_openssh(LineEnding::LF).map_err(|e| anyhow!("{e}"))?;
    let public = key.public_key().to_openssh().map_err(|e| anyhow!("{e}"))?;
    Ok((private, public))
}

/// The credential saved for `server`, if any.
pub fn saved_token(server: &str) -> Option<String> {
    let text = std::fs::read(config_dir().ok()?.join("credentials.json")).ok()?;
    let saved: Saved = serde_json::from_slice(&text).ok()?;
    (saved.server.trim_end_matches('/') == server.trim_end_matches('/')).then_some(saved.token)
}

fn random_b64(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rand::rngs::OsRng.fill_bytes(&mut buf);
    URL_SAFE_NO_PAD.encode(buf)
}

/// Waits for the browser's one request to the loopback listener; returns its query.
async fn receive_code(listener: tokio::net::TcpListener) -> anyhow::Result<Vec<(String, String)>> {
    let (tx, mut rx) = tokio::sync::mpsc::channel(1);
    loop {
        let (stream, _) = listener.accept().await?;
        let tx = tx.clone();
        let service = hyper::service::service_fn(
            move |req: hyper::Request<hyper::body::Incoming>| {
                let tx = tx.clone();
                async move {
                    let pairs: Vec<(String, String)> =
                        url::form_urlencoded::parse(req.uri().query().unwrap_or("").as_bytes())
                            .into_owned()
                            .collect();
                    let _ = tx.send(pairs).await;
                    let page = "<!doctype html><title>Warden</title><p>The Warden CLI is signed in. You can close this window.</p>";
                    Ok::<_, std::convert::Infallible>(
                        hyper::Response::builder()
                            .header("content-type", "text/html; charset=utf-8")
                            .body(Full::new(Bytes::from(page)))
                            .unwrap_or_default(),
                    )
                }
            },
        );
        tokio::spawn(async move {
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                .await;
        });
        if let Some(pairs) = rx.recv().await {
            return Ok(pairs);
        }
    }
}

/// Where the browser authorizes this login: the server's `authorization_endpoint` (its RFC
/// 8414 metadata), at its public address, the one origin its passkeys work at. A server that
/// publishes no metadata is asked at the address given.
async fn authorization_endpoint(
    target: &crate::http::Target,
    server: &str,
) -> anyhow::Result<String> {
    let request = hyper::Request::get("/.well-known/oauth-authorization-server")
        .header("host", &target.authority)
        .body(Full::new(Bytes::new()))?;
    let (status, bytes) = crate::http::send(target, request).await?;
    if status == hyper::StatusCode::NOT_FOUND {
        return Ok(format!("{server}/auth/cli"));
    }
    let metadata: serde_json::Value = serde_json::from_slice(&bytes)
        .ok()
        .filter(|_| status.is_success())
        .ok_or_else(|| anyhow!("the server's login metadata is unreadable (HTTP {status})"))?;
    metadata
        .get("authorization_endpoint")
        .and_then(serde_json::Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| anyhow!("the server's login metadata names no authorization endpoint"))
}

pub async fn run(args: LoginArgs) -> anyhow::Result<()> {
    let server = args.server.trim_end_matches('/').to_owned();
    let target = crate::http::Target::parse(&server)?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .context("cannot listen on 127.0.0.1 for the browser's answer")?;
    let redirect = format!("http://{}/callback", listener.local_addr()?);
    let state = random_b64(16);
    let verifier = random_b64(32);
    let challenge = URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(verifier.as_bytes()));
    let endpoint = authorization_endpoint(&target, &server).await?;
    let mut url = url::Url::parse(&endpoint)
        .map_err(|_| anyhow!("the server's authorization endpoint `{endpoint}` is not a URL"))?;
    if !matches!(url.scheme(), "http" | "https") {
        bail!("the server's authorization endpoint `{endpoint}` is not an http(s) URL");
    }
    if !endpoint.starts_with(&format!("{server}/")) {
        outln!(
            "Passkeys work at this server's public address, {}: sign in there.",
            url.origin().ascii_serialization()
        );
    }
    url.query_pairs_mut()
        .append_pair("redirect_uri", &redirect)
        .append_pair("state", &state)
        .append_pair("code_challenge", &challenge)
        .append_pair("code_challenge_method", "S256");
    outln!("Open this address in the browser where you are signed in to Warden:\n{url}");
    if !args.no_browser {
        let _ = std::process::Command::new("xdg-open")
            .arg(url.as_str())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn();
    }
    let pairs = tokio::time::timeout(Duration::from_secs(300), receive_code(listener))
        .await
        .map_err(|_| anyhow!("no answer from the browser within 5 minutes"))??;
    let get = |k: &str| {
        pairs
            .iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.clone())
    };
    if get("state").as_deref() != Some(state.as_str()) {
        bail!("the browser's answer does not carry this login's state");
    }
    let code = get("code").ok_or_else(|| anyhow!("the browser's answer has no code"))?;

    let body =
        json!({ "code": code, "code_verifier": verifier, "redirect_uri": redirect }).to_string();
    let request = hyper::Request::post("/auth/cli/token")
        .header("host", &target.authority)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body)))?;
    let (status, bytes) = crate::http::send(&target, request).await?;
    let reply: serde_json::Value =
        serde_json::from_slice(&bytes).context("the server's answer is not JSON")?;
    if !status.is_success() {
        bail!(
            "login refused: {}",
            reply
                .get("error")
                .and_then(|e| e.as_str())
                .unwrap_or("unknown error")
        );
    }
    let field = |k: &str| {
        reply
            .get(k)
            .and_then(|v| v.as_str())
            .unwrap_or_default()
            .to_owned()
    };
    let saved = Saved {
        server: server.clone(),
        token: field("token"),
        user: field("user"),
        expires_at: field("expires_at"),
    };
    let dir = config_dir()?;
    private_dir(&dir)?;
    write_file(
        &dir.join("credentials.json"),
        &serde_json::to_vec_pretty(&saved)?,
        0o600,
    )?;
    outln!("signed in as {} until {}", saved.user, saved.expires_at);

    // A fresh SSH key, certified for this user.
    let ssh_dir = dir.join("ssh");
    private_dir(&ssh_dir)?;
    let (private, public) = fresh_ssh_key()?;
    write_file(&ssh_dir.join("id_ed25519"), private.as_bytes(), 0o600)?;
    write_file(
        &ssh_dir.join("id_ed25519.pub"),
        format!("{public}\n").as_bytes(),
        0o644,
    )?;
    let client = AdminClient::remote(&server, saved.token.clone())?;
    let cert_path = ssh_dir.join("id_ed25519-cert.pub");
    let answer = client
        .graphql(
            "mutation($k: String!) { issueSshUserCertificate(publicKey: $k) { certificate principals validBefore } }",
            json!({ "k": public }),
        )
        .await;
    let data = match answer {
        Ok(data) => data,
        // Signed in, but the policy gives this person no SSH login: say so, and leave no
        // certificate from an earlier sign-in beside the new key.
        Err(e)
            if e.downcast_ref::<ApiError>()
                .is_some_and(ApiError::is_forbidden) =>
        {
            let _ = std::fs::remove_file(&cert_path);
            outln!("no SSH certificate: {e}");
            return Ok(());
        }
        Err(e) => return Err(e.context("cannot get an SSH certificate")),
    };
    let cert = data
        .pointer("/issueSshUserCertificate/certificate")
        .and_then(|c| c.as_str())
        .ok_or_else(|| anyhow!("the server's answer has no certificate"))?;
    write_file(&cert_path, format!("{cert}\n").as_bytes(), 0o644)?;
    outln!("SSH certificate: {}", cert_path.display());
    Ok(())
}
