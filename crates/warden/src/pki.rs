//! `warden ca rotate` and `warden cert issue`.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use anyhow::{Context, anyhow};
use serde_json::{Value, json};
use warden_pki::x509::LocalKey;

use crate::admin::default_data_dir;
use crate::cli::{CaArgs, CaCommand, CertArgs, CertCommand, ServerConnection};
use crate::client::AdminClient;
use crate::output::cell;

/// The admin socket, or `--server URL` with `WARDEN_TOKEN`.
pub fn connect(connection: &ServerConnection) -> anyhow::Result<AdminClient> {
    client_for(connection.server.as_deref(), connection.data_dir.as_deref())
}

/// The client for `--server URL` (with WARDEN_TOKEN or the `warden login` credential), or for
/// the admin socket of `--data-dir`.
pub fn client_for(server: Option<&str>, data_dir: Option<&Path>) -> anyhow::Result<AdminClient> {
    match server {
        Some(url) => {
            let token = std::env::var("WARDEN_TOKEN")
                .ok()
                .or_else(|| crate::login::saved_token(url))
                .ok_or_else(|| {
                    anyhow!("--server needs `warden login --server {url}` or an API token in WARDEN_TOKEN")
                })?;
            AdminClient::remote(url, token)
        }
        None => Ok(AdminClient::new(
            &data_dir.map_or_else(default_data_dir, Path::to_path_buf),
        )),
    }
}

pub async fn ca(args: CaArgs) -> anyhow::Result<()> {
    let client = connect(&args.connection)?;
    let CaCommand::Rotate { kind, overlap } = args.command;
    let q = "mutation($kind: String!, $overlap: String) { rotateCertificateAuthority(kind: $kind, overlap: $overlap) \
             { kind newKeys oldKeysTrustedUntil } }";
    let data = client
        .graphql(q, json!({ "kind": kind, "overlap": overlap }))
        .await?;
    let rotation = data
        .get("rotateCertificateAuthority")
        .ok_or_else(|| anyhow!("the server's answer has no rotation"))?;
    if let Some(keys) = rotation.get("newKeys").and_then(Value::as_array) {
        for key in keys.iter().filter_map(Value::as_str) {
            outln!("{}", key.trim_end());
        }
    }
    eprintln!(
        "rotated the {} CA; the old key stays trusted until {}",
        cell(rotation, "kind"),
        cell(rotation, "oldKeysTrustedUntil")
    );
    Ok(())
}

/// Writes `text` to `path` with `mode`, replacing it whole (through a temporary file).
pub fn write_file(path: &Path, text: &[u8], mode: u32) -> anyhow::Result<()> {
    let tmp = path.with_extension("tmp");
    let _ = std::fs::remove_file(&tmp);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&tmp)
        .with_context(|| format!("cannot create {}", tmp.display()))?;
    file.write_all(text)
        .and_then(|()| file.sync_all())
        .with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

/// Creates `dir` (mode 0700) if it does not exist.
pub fn private_dir(dir: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("cannot create directory {}", dir.display()))
}

pub async fn cert(args: CertArgs) -> anyhow::Result<()> {
    let client = connect(&args.connection)?;
    let CertCommand::Issue {
        spiffe_id,
        csr,
        out,
        ttl,
    } = args.command;
    let (csr, key) = match csr {
        Some(path) => (
            std::fs::read_to_string(&path)
                .with_context(|| format!("cannot read CSR {}", path.display()))?,
            None,
        ),
        None => {
            let key = LocalKey::generate()?;
            (key.csr_pem()?, Some(key))
        }
    };
    let q = "mutation($csr: String!, $id: String!, $ttl: String) { issueX509Certificate(csr: $csr, spiffeId: $id, ttl: $ttl) \
             { serial spiffeId certificate chain bundle notAfter } }";
    let data = client
        .graphql(q, json!({ "csr": csr, "id": spiffe_id, "ttl": ttl }))
        .await?;
    let issued = data
        .get("issueX509Certificate")
        .ok_or_else(|| anyhow!("the server's answer has no certificate"))?;
    private_dir(&out)?;
    let made_key = key.is_some();
    if let Some(key) = key {
        write_file(&out.join("key.pem"), key.to_pem().as_bytes(), 0o600)?;
    }
    write_file(
        &out.join("cert.pem"),
        cell(issued, "certificate").as_bytes(),
        0o644,
    )?;
    write_file(
        &out.join("chain.pem"),
        cell(issued, "chain").as_bytes(),
        0o644,
    )?;
    // What TLS clients and servers present: the certificate, then the issuing CA.
    let full = format!("{}{}", cell(issued, "certificate"), cell(issued, "chain"));
    write_file(&out.join("fullchain.pem"), full.as_bytes(), 0o644)?;
    write_file(
        &out.join("bundle.pem"),
        cell(issued, "bundle").as_bytes(),
        0o644,
    )?;
    outln!(
        "{} serial {} until {}: wrote {}/cert.pem, chain.pem, fullchain.pem, bundle.pem{}",
        cell(issued, "spiffeId"),
        cell(issued, "serial"),
        cell(issued, "notAfter"),
        out.display(),
        if made_key { ", key.pem" } else { "" }
    );
    Ok(())
}
