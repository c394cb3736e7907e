//! `warden ssh`: stock `ssh` through Warden's recording proxy. `--stdio HOST` is the
//! ProxyCommand: it names the target to the proxy, then relays bytes; the session itself is
//! between `ssh` and the proxy, which presents a Warden host certificate for HOST.
//!
//! With WARDEN_TOKEN (a service, or a person's API token) instead of `warden login`, a fresh
//! key is certified for the one login asked, for five minutes, in a private temporary
//! directory that is removed when ssh exits.

use std::path::PathBuf;

use anyhow::{Context, anyhow, bail};

use crate::cli::SshArgs;
use crate::login::{Saved, config_dir};

/// The `warden login` credential and where its SSH files are.
struct Credential {
    saved: Saved,
    key: PathBuf,
    cert: PathBuf,
    known_hosts: PathBuf,
}

/// What ssh is given: a key, its certificate and the host CA, for one login.
struct Files {
    key: PathBuf,
    cert: PathBuf,
    known_hosts: PathBuf,
    login: String,
    /// The temporary directory holding a token's ephemeral files, removed when dropped.
    _scratch: Option<tempfile::TempDir>,
}

/// How long the certificate for a WARDEN_TOKEN session lasts: it is needed at login only.
const TOKEN_CERT_TTL: &str = "5m";

/// A fresh key certified for `login` (or the token's user) with WARDEN_TOKEN.
async fn token_files(server: &str, token: String, login: Option<&str>) -> anyhow::Result<Files> {
    let client = crate::client::AdminClient::remote(server, token)?;
    let login = match login {
        Some(login) => login.to_owned(),
        None => {
            let viewer = client
                .graphql("{ viewer { kind name } }", serde_json::json!({}))
                .await?;
            match (
                viewer.pointer("/viewer/kind").and_then(|k| k.as_str()),
                viewer.pointer("/viewer/name").and_then(|k| k.as_str()),
            ) {
                (Some("USER"), Some(name)) => name.to_owned(),
                _ => bail!(
                    "a service token has no login of its own: name it, `warden ssh LOGIN@HOST`"
                ),
            }
        }
    };
    let scratch = tempfile::Builder::new()
        .prefix("warden-ssh-")
        .tempdir()
        .context("cannot make a temporary directory")?;
    let (private, public) = crate::login::fresh_ssh_key()?;
    let dir = scratch.path().to_path_buf();
    let files = Files {
        key: dir.join("id_ed25519"),
        cert: dir.join("id_ed25519-cert.pub"),
        known_hosts: dir.join("known_hosts"),
        login,
        _scratch: Some(scratch),
    };
    crate::pki::write_file(&files.key, private.as_bytes(), 0o600)?;
    let answer = client
        .graphql(
            "mutation($k: String!, $ttl: String!, $p: [String!]!) { issueSshUserCertificate(publicKey: $k, ttl: $ttl, principals: $p) { certificate } }",
            serde_json::json!({ "k": public, "ttl": TOKEN_CERT_TTL, "p": [files.login] }),
        )
        .await?;
    let cert = answer
        .pointer("/issueSshUserCertificate/certificate")
        .and_then(|c| c.as_str())
        .ok_or_else(|| anyhow!("the server's answer has no certificate"))?;
    crate::pki::write_file(&files.cert, format!("{cert}\n").as_bytes(), 0o644)?;
    write_known_hosts(&client, &files.known_hosts).await?;
    Ok(files)
}

fn credential() -> anyhow::Result<Credential> {
    let dir = config_dir()?;
    let text = std::fs::read(dir.join("credentials.json"))
        .map_err(|_| anyhow!("not signed in: run `warden login --server URL` first"))?;
    let saved: Saved = serde_json::from_slice(&text)
        .map_err(|e| anyhow!("the saved credential is damaged ({e}): run `warden login` again"))?;
    let ssh = dir.join("ssh");
    let cert = ssh.join("id_ed25519-cert.pub");
    if !cert.exists() {
        bail!(
            "no SSH certificate: the policy gives you no login, or `warden login` did not finish"
        );
    }
    Ok(Credential {
        saved,
        key: ssh.join("id_ed25519"),
        cert,
        known_hosts: ssh.join("known_hosts"),
    })
}

/// The proxy's address: the flag, else the signed-in server's host on port 3022.
fn proxy_addr(flag: Option<String>, server: &str) -> anyhow::Result<String> {
    if let Some(addr) = flag {
        return Ok(addr);
    }
    let url = url::Url::parse(server).map_err(|e| anyhow!("invalid server URL `{server}`: {e}"))?;
    let host = url
        .host_str()
        .ok_or_else(|| anyhow!("the server URL `{server}` has no host: pass --proxy"))?;
    Ok(format!("{host}:3022"))
}

/// The `@cert-authority` lines for Warden's host CA, fetched from the server.
async fn write_known_hosts(
    client: &crate::client::AdminClient,
    path: &std::path::Path,
) -> anyhow::Result<()> {
    let keys = client
        .get("/v1/ssh/host_ca.pub")
        .await
        .context("cannot fetch Warden's host CA")?;
    let keys = String::from_utf8_lossy(&keys);
    let lines: String = keys
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| format!("@cert-authority * {}\n", l.trim()))
        .collect();
    crate::pki::write_file(path, lines.as_bytes(), 0o644)
}

/// ProxyCommand: name HOST to the proxy, then relay stdin/stdout. Two plain threads with
/// blocking reads and writes of up to 256 KiB: bulk output runs at the speed of the pipes,
/// not of an async runtime's hand-offs to its blocking pool.
async fn stdio(proxy: &str, host: &str) -> anyhow::Result<()> {
    let (proxy, host) = (proxy.to_owned(), host.to_owned());
    tokio::task::spawn_blocking(move || relay(&proxy, &host))
        .await
        .context("the relay stopped")?
}

fn relay(proxy: &str, host: &str) -> anyhow::Result<()> {
    use std::io::{Read, Write};
    use std::os::fd::AsFd;
    let mut socket = std::net::TcpStream::connect(proxy)
        .with_context(|| format!("cannot reach the Warden SSH proxy at {proxy}"))?;
    let _ = socket.set_nodelay(true);
    socket.write_all(format!("{}{host}\n", warden_proxy::PREAMBLE).as_bytes())?;
    // The answer, a byte at a time: what follows it is the SSH stream, for ssh to read.
    let mut answer = Vec::new();
    let mut byte = [0u8; 1];
    while answer.len() < 1024 {
        if socket.read(&mut byte)? == 0 {
            break;
        }
        if byte == *b"\n" {
            break;
        }
        answer.extend_from_slice(&byte);
    }
    let answer = String::from_utf8_lossy(&answer);
    let answer = answer.trim_end();
    if let Some(error) = answer.strip_prefix("ERR ") {
        bail!("{error}");
    }
    if answer != "OK" {
        bail!("{proxy} is not a Warden SSH proxy");
    }
    let up = socket.try_clone()?;
    let stdin = std::fs::File::from(std::io::stdin().as_fd().try_clone_to_owned()?);
    let stdout = std::fs::File::from(std::io::stdout().as_fd().try_clone_to_owned()?);
    // The user's side: when ssh closes its end, the proxy is told no more is coming.
    std::thread::spawn(move || {
        let _ = pump(stdin, &up);
        let _ = up.shutdown(std::net::Shutdown::Write);
    });
    // The host's side: when the proxy closes, ssh has everything.
    let _ = pump(&socket, stdout);
    Ok(())
}

/// Copies until `from` ends, each read written whole at once (no buffering in between: the
/// SSH stream must not wait in a buffer for more to come).
fn pump(mut from: impl std::io::Read, mut to: impl std::io::Write) -> std::io::Result<()> {
    let mut buffer = vec![0u8; 256 * 1024];
    loop {
        let n = match from.read(&mut buffer) {
            Ok(0) => return Ok(()),
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        to.write_all(buffer.get(..n).unwrap_or_default())?;
    }
}

pub async fn run(args: SshArgs) -> anyhow::Result<()> {
    if let Some(host) = &args.stdio {
        let proxy = match args.proxy {
            Some(p) => p,
            None => proxy_addr(None, &credential()?.saved.server)?,
        };
        return stdio(&proxy, host).await;
    }
    let target = args.target.ok_or_else(|| {
        anyhow!("usage: warden ssh [LOGIN@]HOST [COMMAND] (or `warden ssh config`)")
    })?;
    let exe = std::env::current_exe().context("cannot find the warden binary")?;
    let (login, host) = match target.rsplit_once('@') {
        Some((login, host)) => (Some(login.to_owned()), host.to_owned()),
        None => (None, target.clone()),
    };
    if let Ok(token) = std::env::var("WARDEN_TOKEN") {
        if target == "config" {
            bail!(
                "`warden ssh config` needs `warden login`: WARDEN_TOKEN certificates last minutes"
            );
        }
        let server = args.server.ok_or_else(|| {
            anyhow!("WARDEN_TOKEN needs the server: --server URL or WARDEN_SERVER")
        })?;
        let proxy = proxy_addr(args.proxy, &server)?;
        let files = token_files(&server, token, login.as_deref()).await?;
        let code = run_ssh(&exe, &proxy, &files, &host, &args.command)?;
        drop(files);
        std::process::exit(code);
    }
    let credential = credential()?;
    let proxy = proxy_addr(args.proxy, &credential.saved.server)?;
    let proxy_command = format!("{} ssh --proxy {proxy} --stdio %h", exe.display());
    let client = crate::client::AdminClient::remote(
        &credential.saved.server,
        credential.saved.token.clone(),
    )?;
    write_known_hosts(&client, &credential.known_hosts).await?;
    if target == "config" {
        let patterns = if args.command.is_empty() {
            "*".to_owned()
        } else {
            args.command.join(" ")
        };
        outln!(
            "# Warden: these hosts go through the recording proxy at {proxy}\n\
             Host {patterns}\n\
             \x20   ProxyCommand {proxy_command}\n\
             \x20   User {}\n\
             \x20   IdentityFile {}\n\
             \x20   CertificateFile {}\n\
             \x20   IdentitiesOnly yes\n\
             \x20   UserKnownHostsFile {}\n\
             \x20   StrictHostKeyChecking yes",
            credential.saved.user,
            credential.key.display(),
            credential.cert.display(),
            credential.known_hosts.display()
        );
        return Ok(());
    }
    let files = Files {
        key: credential.key,
        cert: credential.cert,
        known_hosts: credential.known_hosts,
        login: login.unwrap_or(credential.saved.user),
        _scratch: None,
    };
    let code = run_ssh(&exe, &proxy, &files, &host, &args.command)?;
    std::process::exit(code);
}

/// Runs stock ssh through the proxy with `files`; its exit code.
fn run_ssh(
    exe: &std::path::Path,
    proxy: &str,
    files: &Files,
    host: &str,
    command: &[String],
) -> anyhow::Result<i32> {
    let proxy_command = format!("{} ssh --proxy {proxy} --stdio %h", exe.display());
    let status = std::process::Command::new("ssh")
        .args(["-o", &format!("ProxyCommand={proxy_command}")])
        .args([
            "-o",
            &format!("UserKnownHostsFile={}", files.known_hosts.display()),
        ])
        .args([
            "-o",
            "StrictHostKeyChecking=yes",
            "-o",
            "IdentitiesOnly=yes",
        ])
        .arg("-i")
        .arg(&files.key)
        .args(["-o", &format!("CertificateFile={}", files.cert.display())])
        .args(["-l", &files.login, host])
        .args(command)
        .status()
        .context("cannot run ssh (install openssh-client)")?;
    Ok(status.code().unwrap_or(255))
}
