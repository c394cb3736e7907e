//! The agent's data plane: a userspace WireGuard device (gotatun) on a TUN interface, with
//! the stateful filter between the tunnel and the interface. Packets a peer sends are
//! decrypted by WireGuard (which binds each source address to the peer's key) and judged by
//! the filter before the kernel sees them; packets this node sends are recorded so their
//! replies come back. The standard UAPI socket in `/var/run/wireguard/IF.sock` lets the stock
//! `wg` tool read the interface.

use std::collections::BTreeMap;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::process::Command;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use gotatun::device::uapi::UapiServer;
use gotatun::device::{Device, DeviceBuilder, Peer};
use gotatun::packet::{Ip, Packet, PacketBufPool};
use gotatun::tun::tun_async_device::TunDevice;
use gotatun::tun::{IpRecv, IpSend, MtuWatcher};
use gotatun::udp::socket::UdpSocketFactory;
use gotatun::x25519::{PublicKey as WgPublicKey, StaticSecret};
use ipnetwork::IpNetwork;
use serde::Serialize;
use zerocopy::IntoBytes;

use crate::filter::{Filter, FilterStats, FlowKey, Origin};
use crate::key::PublicKey;
use crate::netmap::NodeMap;
use crate::range::MeshRanges;

/// The MTU of the mesh interface: 1500 less WireGuard's IPv6 overhead.
pub const MTU: u16 = 1420;

/// How often a peer with an endpoint is sent a keepalive, so a NAT on the way stays open.
pub const KEEPALIVE_SECONDS: u16 = 25;

/// What went wrong bringing the interface up or changing it.
#[derive(Debug, thiserror::Error)]
pub enum DataPlaneError {
    /// The TUN device could not be made.
    #[error(
        "cannot create the mesh interface `{0}`: {1} (the agent needs CAP_NET_ADMIN and /dev/net/tun)"
    )]
    Tun(String, String),
    /// The interface could not be configured.
    #[error("cannot configure the mesh interface: `{0}` failed: {1}")]
    Configure(String, String),
    /// The mesh range is already used here.
    #[error(transparent)]
    Range(#[from] crate::range::RangeError),
    /// The WireGuard device failed.
    #[error("the WireGuard device failed: {0}")]
    Device(String),
}

/// What to bring up.
#[derive(Debug, Clone)]
pub struct DataPlaneConfig {
    /// The interface name (unique on the machine: the UAPI socket is named after it).
    pub interface: String,
    /// The UDP port WireGuard listens on (0: any).
    pub listen_port: u16,
    /// The mesh's ranges (for the interface's prefix and the overlap check).
    pub ranges: MeshRanges,
    /// This node's overlay addresses.
    pub ipv4: Ipv4Addr,
    /// This node's overlay IPv6 address.
    pub ipv6: Ipv6Addr,
    /// Whether the filter runs (off only to measure its cost).
    pub filter: bool,
}

type Transports = (UdpSocketFactory, Inbound, Outbound);

/// A running interface.
pub struct DataPlane {
    device: Device<Transports>,
    filter: Arc<Mutex<Filter>>,
    clock: Instant,
    peers: tokio::sync::Mutex<BTreeMap<PublicKey, Vec<IpNetwork>>>,
    config: DataPlaneConfig,
}

impl std::fmt::Debug for DataPlane {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DataPlane")
            .field("interface", &self.config.interface)
            .finish()
    }
}

/// One peer as `mesh status` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct PeerStatus {
    /// Its key.
    pub key: PublicKey,
    /// Seconds since the last handshake, if there was one.
    pub handshake_seconds_ago: Option<u64>,
    /// Bytes received from it.
    pub rx_bytes: u64,
    /// Bytes sent to it.
    pub tx_bytes: u64,
    /// Where it was last seen.
    pub endpoint: Option<String>,
}

/// One tracked flow as `mesh status` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct FlowStatus {
    /// The flow.
    #[serde(flatten)]
    pub key: FlowKey,
    /// Who started it.
    pub origin: Origin,
}

/// The interface's state.
#[derive(Debug, Clone, Serialize)]
pub struct Status {
    /// The interface.
    pub interface: String,
    /// The UDP port WireGuard listens on.
    pub listen_port: u16,
    /// Peers.
    pub peers: Vec<PeerStatus>,
    /// Flows the filter tracks.
    pub flows: Vec<FlowStatus>,
    /// The filter's counters.
    pub filter: FilterStats,
}

/// What applying a map changed.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Applied {
    /// Peers added or changed.
    pub peers_set: usize,
    /// Peers removed.
    pub peers_removed: usize,
    /// Established flows dropped because the rules no longer permit them.
    pub flows_dropped: usize,
}

fn run(cmd: &str, args: &[&str]) -> Result<String, DataPlaneError> {
    let shown = format!("{cmd} {}", args.join(" "));
    let out = Command::new(cmd)
        .args(args)
        .output()
        .map_err(|e| DataPlaneError::Configure(shown.clone(), e.to_string()))?;
    if !out.status.success() {
        return Err(DataPlaneError::Configure(
            shown,
            String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Refuses a mesh range that a network on this machine already uses.
pub fn check_overlaps(ranges: &MeshRanges, interface: &str) -> Result<(), DataPlaneError> {
    let listing = run("ip", &["-o", "addr", "show"])?;
    for line in listing.lines() {
        let mut words = line.split_whitespace();
        let (Some(_), Some(dev), Some(family), Some(addr)) =
            (words.next(), words.next(), words.next(), words.next())
        else {
            continue;
        };
        if dev == interface || !(family == "inet" || family == "inet6") {
            continue;
        }
        let Ok(net) = addr.parse::<ipnet::IpNet>() else {
            continue;
        };
        if net.addr().is_loopback()
            || matches!(net, ipnet::IpNet::V6(n) if n.addr().segments()[0] == 0xfe80)
        {
            continue;
        }
        ranges.check_overlap(net.trunc(), dev)?;
    }
    Ok(())
}

impl DataPlane {
    /// Makes the interface with this node's key and addresses, with no peers yet. Callers run
    /// [`check_overlaps`] first, before enrolling, so a clash changes nothing.
    pub async fn start(
        config: DataPlaneConfig,
        private_key: [u8; 32],
    ) -> Result<DataPlane, DataPlaneError> {
        let name = config.interface.clone();
        let mut tun_config = gotatun::tun::tun::Configuration::default();
        tun_config.tun_name(&name).mtu(MTU);
        let tun = gotatun::tun::tun::create_as_async(&tun_config)
            .map_err(|e| DataPlaneError::Tun(name.clone(), e.to_string()))?;
        let tun = TunDevice::from_tun_device(tun)
            .map_err(|e| DataPlaneError::Tun(name.clone(), e.to_string()))?;
        let filter = Arc::new(Mutex::new(Filter::default()));
        let clock = Instant::now();
        let uapi = UapiServer::default_unix_socket(&name, None, None)
            .map_err(|e| DataPlaneError::Device(format!("the UAPI socket: {e}")))?;
        let device = DeviceBuilder::new()
            .with_default_udp()
            .with_ip_pair(
                Inbound {
                    inner: tun.clone(),
                    filter: Arc::clone(&filter),
                    clock,
                    on: config.filter,
                },
                Outbound {
                    inner: tun,
                    filter: Arc::clone(&filter),
                    clock,
                    on: config.filter,
                },
            )
            .with_listen_port(config.listen_port)
            .with_uapi(uapi)
            .build()
            .await
            .map_err(|e| DataPlaneError::Device(e.to_string()))?;
        // Setting the key after building binds the UDP socket even with no peers yet (the
        // builder binds only when it is given peers).
        device
            .set_private_key(StaticSecret::from(private_key))
            .await
            .map_err(|e| DataPlaneError::Device(e.to_string()))?;
        let v4 = format!("{}/{}", config.ipv4, config.ranges.ipv4().prefix_len());
        let v6 = format!("{}/{}", config.ipv6, config.ranges.ipv6().prefix_len());
        run("ip", &["addr", "add", &v4, "dev", &name])?;
        run("ip", &["-6", "addr", "add", &v6, "dev", &name, "nodad"])?;
        run("ip", &["link", "set", &name, "up"])?;
        Ok(DataPlane {
            device,
            filter,
            clock,
            peers: tokio::sync::Mutex::new(BTreeMap::new()),
            config,
        })
    }

    /// Brings the peers and the filter to `map`: peers that left are removed, new or changed
    /// ones set, others untouched (their sessions stay up); the new rules drop the flows they
    /// no longer permit.
    pub async fn apply(&self, map: &NodeMap) -> Result<Applied, DataPlaneError> {
        let mut applied = Applied {
            flows_dropped: self.lock_filter().set_rules(&map.inbound),
            ..Applied::default()
        };
        let mut have = self.peers.lock().await;
        let mut want: BTreeMap<PublicKey, (Vec<IpNetwork>, Option<std::net::SocketAddr>)> =
            BTreeMap::new();
        for p in &map.peers {
            let ips = vec![
                IpNetwork::new(IpAddr::V4(p.ipv4), 32)
                    .map_err(|e| DataPlaneError::Device(e.to_string()))?,
                IpNetwork::new(IpAddr::V6(p.ipv6), 128)
                    .map_err(|e| DataPlaneError::Device(e.to_string()))?,
            ];
            want.insert(p.key, (ips, p.endpoint));
        }
        let gone: Vec<PublicKey> = have
            .keys()
            .filter(|k| !want.contains_key(k))
            .copied()
            .collect();
        for key in gone {
            self.device
                .remove_peer(&WgPublicKey::from(*key.as_bytes()))
                .await
                .map_err(|e| DataPlaneError::Device(e.to_string()))?;
            have.remove(&key);
            applied.peers_removed += 1;
        }
        for (key, (ips, endpoint)) in want {
            if have.get(&key) == Some(&ips) {
                continue;
            }
            let mut peer =
                Peer::new(WgPublicKey::from(*key.as_bytes())).with_allowed_ips(ips.clone());
            if let Some(endpoint) = endpoint {
                peer = peer.with_endpoint(endpoint);
                peer.keepalive = Some(KEEPALIVE_SECONDS);
            }
            self.device
                .add_or_update_peer(peer)
                .await
                .map_err(|e| DataPlaneError::Device(e.to_string()))?;
            have.insert(key, ips);
            applied.peers_set += 1;
        }
        Ok(applied)
    }

    /// Replaces the interface's private key (a renewal); sessions re-handshake with it. The
    /// tunnel is suspended meanwhile: rebinding the same UDP port while the old socket is
    /// still closing would fail, so the bind is retried for up to two seconds.
    pub async fn set_private_key(&self, private_key: [u8; 32]) -> Result<(), DataPlaneError> {
        let failed = |e: gotatun::device::Error| DataPlaneError::Device(e.to_string());
        self.device.suspend().await;
        self.device
            .set_private_key(StaticSecret::from(private_key))
            .await
            .map_err(failed)?;
        let mut attempts = 0;
        loop {
            match self.device.resume().await {
                Ok(()) => break,
                Err(e) if attempts >= 40 => return Err(failed(e)),
                Err(_) => {
                    attempts += 1;
                    self.device.suspend().await;
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
            }
        }
        if self.peers.lock().await.is_empty() {
            // With no peers, resuming brings no connection up; a port change does.
            self.device
                .write(async |d| {
                    let port = d.listen_port();
                    d.set_listen_port(port.wrapping_add(1));
                    d.set_listen_port(port);
                })
                .await
                .map_err(failed)?;
        }
        Ok(())
    }

    /// Peers, flows and counters.
    pub async fn status(&self) -> Status {
        let listen_port = self.device.read(async |d| d.listen_port()).await;
        let mut peers: Vec<PeerStatus> = self
            .device
            .peers()
            .await
            .into_iter()
            .filter_map(|p| {
                Some(PeerStatus {
                    key: PublicKey::from_bytes(*p.peer.public_key.as_bytes()).ok()?,
                    handshake_seconds_ago: p.stats.last_handshake.map(|d| d.as_secs()),
                    rx_bytes: p.stats.rx_bytes as u64,
                    tx_bytes: p.stats.tx_bytes as u64,
                    endpoint: p.peer.endpoint.map(|e| e.to_string()),
                })
            })
            .collect();
        peers.sort_by_key(|p| p.key);
        let filter = self.lock_filter();
        Status {
            interface: self.config.interface.clone(),
            listen_port,
            peers,
            flows: filter
                .flows()
                .map(|(key, origin)| FlowStatus {
                    key: key.clone(),
                    origin,
                })
                .collect(),
            filter: filter.stats(),
        }
    }

    /// Forgets idle flows; call about once a second.
    pub fn expire_flows(&self) {
        let now = millis(self.clock);
        self.lock_filter().expire(now);
    }

    /// Stops the device and removes the interface.
    pub async fn stop(self) {
        self.device.stop().await;
    }

    fn lock_filter(&self) -> MutexGuard<'_, Filter> {
        lock(&self.filter)
    }
}

fn lock(filter: &Mutex<Filter>) -> MutexGuard<'_, Filter> {
    filter
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn millis(clock: Instant) -> u64 {
    u64::try_from(clock.elapsed().as_millis()).unwrap_or(u64::MAX)
}

/// Packets WireGuard decrypted, on their way to the interface: judged by the filter.
struct Inbound {
    inner: TunDevice,
    filter: Arc<Mutex<Filter>>,
    clock: Instant,
    on: bool,
}

impl IpSend for Inbound {
    async fn send(&mut self, packet: Packet<Ip>) -> io::Result<()> {
        if self.on {
            let verdict = lock(&self.filter).inbound((*packet).as_bytes(), millis(self.clock));
            if verdict != crate::filter::Verdict::Pass {
                return Ok(());
            }
        }
        self.inner.send(packet).await
    }
}

/// Packets from the interface, on their way into the tunnel: recorded by the filter.
struct Outbound {
    inner: TunDevice,
    filter: Arc<Mutex<Filter>>,
    clock: Instant,
    on: bool,
}

impl IpRecv for Outbound {
    async fn recv<'a>(
        &'a mut self,
        pool: &mut PacketBufPool,
    ) -> io::Result<impl Iterator<Item = Packet<Ip>> + Send + 'a> {
        let packets = self.inner.recv(pool).await?;
        let (filter, now, on) = (Arc::clone(&self.filter), millis(self.clock), self.on);
        Ok(packets.inspect(move |p| {
            if on {
                lock(&filter).outbound((**p).as_bytes(), now);
            }
        }))
    }

    fn mtu(&self) -> MtuWatcher {
        self.inner.mtu()
    }
}

/// A new private key (from the operating system's CSPRNG) and its public half.
pub fn generate_key() -> Result<([u8; 32], PublicKey), crate::key::KeyError> {
    use rand::RngCore;
    let mut private_key = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut private_key);
    Ok((private_key, public_of(private_key)?))
}

/// The public half of a private key.
pub fn public_of(private_key: [u8; 32]) -> Result<PublicKey, crate::key::KeyError> {
    let public = WgPublicKey::from(&StaticSecret::from(private_key));
    PublicKey::from_bytes(*public.as_bytes())
}
