//! `warden mesh`: a person's device in the mesh (`up`), a wg-quick file for the stock
//! WireGuard apps (`config`), and what a running node sees (`status`). The host agent runs
//! the same node loop (`serve`) over mutual TLS.

use std::future::Future;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, anyhow};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use warden_mesh::dataplane::{DataPlane, DataPlaneConfig};
use warden_mesh::{MeshRanges, NodeMap};
pub use warden_server::{Enrolled, MeshMap, Ranges};

use crate::cli::{MeshArgs, MeshCommand};
use crate::pki::{private_dir, write_file};

const KEY_FILE: &str = "mesh.key";
const STATUS_FILE: &str = "mesh-status.json";

/// The node's private key in `dir`, made (from the OS's CSPRNG) when missing or when `fresh`.
pub fn node_key(dir: &Path, fresh: bool) -> anyhow::Result<[u8; 32]> {
    let path = dir.join(KEY_FILE);
    if !fresh && let Ok(text) = std::fs::read_to_string(&path) {
        let bytes = STANDARD
            .decode(text.trim())
            .ok()
            .and_then(|b| <[u8; 32]>::try_from(b).ok())
            .ok_or_else(|| anyhow!("{} is not a WireGuard private key", path.display()))?;
        return Ok(bytes);
    }
    let (private_key, _) = warden_mesh::dataplane::generate_key()?;
    save_key(dir, private_key)?;
    Ok(private_key)
}

/// Keeps the node's private key in `dir` (mode 0600).
pub fn save_key(dir: &Path, private_key: [u8; 32]) -> anyhow::Result<()> {
    write_file(
        &dir.join(KEY_FILE),
        format!("{}\n", STANDARD.encode(private_key)).as_bytes(),
        0o600,
    )
}

/// Refuses ranges a network on this machine (other than `interface`) already uses.
pub fn check_ranges(ranges: &Ranges, interface: &str) -> anyhow::Result<()> {
    let ranges = MeshRanges::new(&ranges.ipv4_range, &ranges.ipv6_range)?;
    warden_mesh::dataplane::check_overlaps(&ranges, interface)?;
    Ok(())
}

/// Brings up the interface for an enrolled node.
pub async fn bring_up(
    enrolled: &Enrolled,
    interface: &str,
    listen_port: u16,
    private_key: [u8; 32],
) -> anyhow::Result<DataPlane> {
    let ranges = MeshRanges::new(&enrolled.ipv4_range, &enrolled.ipv6_range)?;
    let config = DataPlaneConfig {
        interface: interface.to_owned(),
        listen_port,
        ranges,
        ipv4: enrolled
            .ipv4
            .parse()
            .context("the server sent a bad address")?,
        ipv6: enrolled
            .ipv6
            .parse()
            .context("the server sent a bad address")?,
        filter: true,
    };
    Ok(DataPlane::start(config, private_key).await?)
}

/// Follows the node's map until `stop` resolves: applies each new version, writes the
/// status file every second, and empties the interface when the node leaves the mesh.
pub async fn serve<F, Fut>(
    plane: &DataPlane,
    dir: &Path,
    mut fetch: F,
    stop: impl Future<Output = ()>,
) -> anyhow::Result<()>
where
    F: FnMut(u64) -> Fut,
    Fut: Future<Output = anyhow::Result<Option<MeshMap>>>,
{
    let status_path = dir.join(STATUS_FILE);
    let mut version = 0u64;
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tokio::pin!(stop);
    let mut pending = Box::pin(fetch(version));
    loop {
        tokio::select! {
            () = &mut stop => return Ok(()),
            _ = tick.tick() => {
                plane.expire_flows();
                let status = plane.status().await;
                let text = serde_json::to_vec_pretty(&status)?;
                let tmp = status_path.with_extension("tmp");
                std::fs::write(&tmp, text)?;
                std::fs::rename(&tmp, &status_path)?;
            }
            answer = &mut pending => {
                match answer {
                    Ok(Some(map)) => {
                        if map.version != version || version == 0 {
                            let applied = plane.apply(&map.map).await?;
                            eprintln!(
                                "mesh: map {} applied: {} peers set, {} removed, {} flows dropped",
                                map.version, applied.peers_set, applied.peers_removed, applied.flows_dropped
                            );
                            version = map.version.max(1);
                        }
                    }
                    Ok(None) => {
                        let empty = NodeMap { name: String::new(), ipv4: std::net::Ipv4Addr::UNSPECIFIED, ipv6: std::net::Ipv6Addr::UNSPECIFIED, peers: Vec::new(), inbound: Vec::new() };
                        plane.apply(&empty).await?;
                        eprintln!("mesh: this node is no longer in the mesh; its peers and rules are cleared");
                        version = 0;
                        tokio::time::sleep(Duration::from_secs(5)).await;
                    }
                    Err(e) => {
                        eprintln!("warning: mesh map: {e:#}");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                }
                pending = Box::pin(fetch(version));
            }
        }
    }
}

/// A map answer: the map, `None` when the server says the node is gone (404).
pub fn map_answer(status: hyper::StatusCode, bytes: &[u8]) -> anyhow::Result<Option<MeshMap>> {
    if status == hyper::StatusCode::NOT_FOUND {
        return Ok(None);
    }
    if status.is_success() {
        return Ok(Some(
            serde_json::from_slice(bytes).context("the server's answer is not a mesh map")?,
        ));
    }
    Err(anyhow!("{}", crate::client::failure(status, bytes)))
}

pub async fn run(args: MeshArgs) -> anyhow::Result<()> {
    match args.command {
        MeshCommand::Up {
            server,
            name,
            interface,
            listen_port,
            endpoint,
            data_dir,
        } => {
            let client = crate::pki::client_for(Some(&server), None)?;
            private_dir(&data_dir)?;
            // Refuse a range this machine already uses before enrolling anything.
            let ranges: Ranges = serde_json::from_slice(&client.get("/v1/mesh/ranges").await?)
                .context("the server's answer is not the mesh's ranges")?;
            check_ranges(&ranges, &interface)?;
            let private_key = node_key(&data_dir, false)?;
            let public = warden_mesh::dataplane::public_of(private_key)?;
            let enrolled =
                enroll_device(&client, &name, &public.to_string(), endpoint.as_deref()).await?;
            eprintln!(
                "mesh: `{}` enrolled as {} and {} until {}",
                enrolled.name,
                enrolled.ipv4,
                enrolled.ipv6,
                crate::agent::shown_time(enrolled.expires_at)
            );
            let plane = bring_up(&enrolled, &interface, listen_port, private_key).await?;
            let path = |after: u64| format!("/v1/mesh/device/map?node={name}&after={after}");
            let fetch = |after: u64| {
                let path = path(after);
                let client = &client;
                async move {
                    let (status, bytes) = client.request("GET", &path, Vec::new()).await?;
                    map_answer(status, &bytes)
                }
            };
            let stop = async {
                let _ = tokio::signal::ctrl_c().await;
            };
            let result = serve(&plane, &data_dir, fetch, stop).await;
            plane.stop().await;
            result
        }
        MeshCommand::Config {
            server,
            device,
            endpoint,
        } => {
            let client = crate::pki::client_for(Some(&server), None)?;
            let (private_key, public) = warden_mesh::dataplane::generate_key()?;
            let enrolled =
                enroll_device(&client, &device, &public.to_string(), endpoint.as_deref()).await?;
            let (status, bytes) = client
                .request(
                    "GET",
                    &format!("/v1/mesh/device/map?node={device}&after=0"),
                    Vec::new(),
                )
                .await?;
            let map = map_answer(status, &bytes)?
                .ok_or_else(|| anyhow!("`{device}` left the mesh at once"))?;
            out!("{}", wg_quick(&enrolled, &map, private_key));
            Ok(())
        }
        MeshCommand::Status { data_dir, json } => {
            let path = data_dir.join(STATUS_FILE);
            let text = std::fs::read_to_string(&path).with_context(|| {
                format!(
                    "no mesh node is running with data dir {} (no {STATUS_FILE})",
                    data_dir.display()
                )
            })?;
            if json {
                outln!("{text}");
                return Ok(());
            }
            let status: serde_json::Value = serde_json::from_str(&text)?;
            print_status(&status);
            Ok(())
        }
    }
}

async fn enroll_device(
    client: &crate::client::AdminClient,
    name: &str,
    public_key: &str,
    endpoint: Option<&str>,
) -> anyhow::Result<Enrolled> {
    let body = serde_json::to_vec(
        &serde_json::json!({ "name": name, "public_key": public_key, "endpoint": endpoint }),
    )?;
    let answer = client.post("/v1/mesh/device", body).await?;
    serde_json::from_value(answer).context("the server's answer is not an enrollment")
}

/// A wg-quick file for the stock WireGuard apps: the node's key and addresses, its peers.
pub fn wg_quick(enrolled: &Enrolled, map: &MeshMap, private_key: [u8; 32]) -> String {
    let prefix = |range: &str| range.rsplit_once('/').map_or("32", |(_, p)| p).to_owned();
    let mut out = format!(
        "# Warden mesh node `{}`; its key is accepted until {}.\n[Interface]\nPrivateKey = {}\nAddress = {}/{}, {}/{}\nMTU = {}\n",
        enrolled.name,
        crate::agent::shown_time(enrolled.expires_at),
        STANDARD.encode(private_key),
        enrolled.ipv4,
        prefix(&enrolled.ipv4_range),
        enrolled.ipv6,
        prefix(&enrolled.ipv6_range),
        warden_mesh::dataplane::MTU,
    );
    for peer in &map.map.peers {
        out.push_str(&format!(
            "\n[Peer]\n# {}\nPublicKey = {}\nAllowedIPs = {}/32, {}/128\n",
            peer.name, peer.key, peer.ipv4, peer.ipv6
        ));
        if let Some(endpoint) = peer.endpoint {
            out.push_str(&format!(
                "Endpoint = {endpoint}\nPersistentKeepalive = {}\n",
                warden_mesh::dataplane::KEEPALIVE_SECONDS
            ));
        }
    }
    out
}

fn print_status(status: &serde_json::Value) {
    let s = |v: &serde_json::Value| v.as_str().map_or_else(|| v.to_string(), str::to_owned);
    outln!(
        "interface {}  listening on UDP {}",
        s(&status["interface"]),
        status["listen_port"]
    );
    let filter = &status["filter"];
    outln!(
        "filter: {} passed, {} dropped, {} flows cut by revocation",
        filter["passed"],
        filter["dropped"],
        filter["revoked_flows"]
    );
    outln!(
        "\nPEER                                          HANDSHAKE  RX        TX        ENDPOINT"
    );
    for p in status["peers"].as_array().into_iter().flatten() {
        let handshake = p["handshake_seconds_ago"]
            .as_u64()
            .map_or_else(|| "never".to_owned(), |s| format!("{s}s ago"));
        outln!(
            "{:<45} {:<10} {:<9} {:<9} {}",
            s(&p["key"]),
            handshake,
            p["rx_bytes"],
            p["tx_bytes"],
            p["endpoint"].as_str().unwrap_or("-")
        );
    }
    outln!("\nFLOW                                                          STARTED BY");
    for f in status["flows"].as_array().into_iter().flatten() {
        outln!(
            "{} {}:{} ↔ {}:{}  {}",
            s(&f["protocol"]),
            s(&f["local"]),
            f["local_port"],
            s(&f["remote"]),
            f["remote_port"],
            s(&f["origin"])
        );
    }
}
