//! `warden ssh`: stock `ssh` through Warden's recording proxy. `--stdio HOST` is the
//! ProxyCommand: it names the target to the proxy, then relays bytes; the session itself is
//! between `ssh` and the proxy, which presents a Warden host certificate for HOST.

use std::path::PathBuf;

use anyhow::{Context, anyhow, bail};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

use crate::cli::SshArgs;
use crate::login::{Saved, config_dir};

/// The `warden login` credential and where its SSH files are.
struct Credential {
    saved: Saved,
    key: PathBuf,
    cert: PathBuf,
    known_hosts: PathBuf,
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
async fn write_known_hosts(credential: &Credential) -> anyhow::Result<()> {
    let client = crate::client::AdminClient::remote(
        &credential.saved.server,
        credential.saved.token.clone(),
    )?;
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
    crate::pki::write_file(&credential.known_hosts, lines.as_bytes(), 0o644)
}

/// ProxyCommand: name HOST to the proxy, then relay stdin/stdout.
async fn stdio(proxy: &str, host: &str) -> anyhow::Result<()> {
    let socket = tokio::net::TcpStream::connect(proxy)
        .await
        .with_context(|| format!("cannot reach the Warden SSH proxy at {proxy}"))?;
    let (read, mut write) = socket.into_split();
    write
        .write_all(format!("{}{host}\n", warden_proxy::PREAMBLE).as_bytes())
        .await?;
    let mut read = BufReader::new(read);
    let mut answer = String::new();
    read.read_line(&mut answer).await?;
    let answer = answer.trim_end();
    if let Some(error) = answer.strip_prefix("ERR ") {
        bail!("{error}");
    }
    if answer != "OK" {
        bail!("{proxy} is not a Warden SSH proxy");
    }
    let up = async {
        let _ = tokio::io::copy(&mut tokio::io::stdin(), &mut write).await;
        let _ = write.shutdown().await;
    };
    let down = async {
        let _ = tokio::io::copy(&mut read, &mut tokio::io::stdout()).await;
    };
    tokio::select! {
        () = down => {}
        () = async { up.await; std::future::pending::<()>().await } => {}
    }
    Ok(())
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
    let credential = credential()?;
    let proxy = proxy_addr(args.proxy, &credential.saved.server)?;
    let exe = std::env::current_exe().context("cannot find the warden binary")?;
    let proxy_command = format!("{} ssh --proxy {proxy} --stdio %h", exe.display());
    write_known_hosts(&credential).await?;
    if target == "config" {
        let patterns = if args.command.is_empty() {
            "*".to_owned()
        } else {
            args.command.join(" ")
        };
        println!(
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
    let (login, host) = match target.rsplit_once('@') {
        Some((login, host)) => (login.to_owned(), host.to_owned()),
        None => (credential.saved.user.clone(), target.clone()),
    };
    let status = std::process::Command::new("ssh")
        .args(["-o", &format!("ProxyCommand={proxy_command}")])
        .args([
            "-o",
            &format!("UserKnownHostsFile={}", credential.known_hosts.display()),
        ])
        .args([
            "-o",
            "StrictHostKeyChecking=yes",
            "-o",
            "IdentitiesOnly=yes",
        ])
        .arg("-i")
        .arg(&credential.key)
        .args([
            "-o",
            &format!("CertificateFile={}", credential.cert.display()),
        ])
        .args(["-l", &login, &host])
        .args(&args.command)
        .status()
        .context("cannot run ssh (install openssh-client)")?;
    std::process::exit(status.code().unwrap_or(255));
}
