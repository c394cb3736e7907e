//! The host's side: the agent, the mesh, and break-glass.

use std::path::PathBuf;

use clap::{Args, Subcommand};

#[derive(Debug, Args)]
pub struct BreakGlassArgs {
    #[command(subcommand)]
    pub command: BreakGlassCommand,
}

#[derive(Debug, Subcommand)]
pub enum BreakGlassCommand {
    /// Open a credential from its share files (at least its threshold), offline: writes
    /// `id_ed25519` (mode 0600) and `id_ed25519-cert.pub` into `--out`.
    Open {
        /// The share files.
        #[arg(required = true)]
        shares: Vec<PathBuf>,
        /// Where to write the key and certificate.
        #[arg(long, short = 'o', value_name = "DIR")]
        out: PathBuf,
    },
    /// For sshd's AuthorizedPrincipalsCommand (the agent writes it): prints the principals
    /// this host accepts, the break-glass one with its session forced through the recorder.
    #[command(hide = true)]
    Principals {
        /// The proxy's principal for this host.
        #[arg(long)]
        host_principal: String,
        /// Where break-glass sessions are recorded.
        #[arg(long)]
        spool: PathBuf,
    },
    /// The command sshd forces on a break-glass session: records it on the host (with
    /// util-linux `script`) for the agent to upload when Warden is back.
    #[command(hide = true)]
    Record {
        /// Where to record.
        #[arg(long)]
        spool: PathBuf,
    },
}

#[derive(Debug, Args)]
pub struct AgentArgs {
    /// The Warden server's URL (http://HOST:PORT or its public URL).
    #[arg(long, env = "WARDEN_SERVER", value_name = "URL")]
    pub server: String,
    /// The one-time join token from `warden admin join-token create`; needed only to join.
    #[arg(long, env = "WARDEN_JOIN_TOKEN", value_name = "TOKEN")]
    pub join_token: Option<String>,
    /// Where the agent keeps its keys and certificates.
    #[arg(long, value_name = "DIR")]
    pub data_dir: PathBuf,
    /// Where this host's sshd listens, as the proxy should reach it.
    #[arg(long, value_name = "HOST:PORT", default_value = "127.0.0.1:22")]
    pub sshd_addr: String,
    /// Write warden.conf here for sshd to Include.
    #[arg(long, value_name = "DIR", default_value = "/etc/ssh/sshd_config.d")]
    pub sshd_config_dir: PathBuf,
    /// How often to fetch the KRL and CA keys.
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    pub refresh: std::time::Duration,
    /// Join or renew once, write the files, and exit.
    #[arg(long)]
    pub once: bool,
    /// Join the WireGuard mesh on this interface (a userspace WireGuard device with the
    /// stateful filter; the name must be unique on the machine).
    #[arg(long, value_name = "NAME")]
    pub mesh_interface: Option<String>,
    /// Trust break-glass credentials after this long without reaching Warden (and stop as
    /// soon as it answers again).
    #[arg(long, default_value = "5m", value_parser = humantime::parse_duration)]
    pub break_glass_after: std::time::Duration,
    /// Where break-glass sessions are recorded until they are uploaded (made with mode 1733:
    /// any login may add, none may read another's).
    #[arg(
        long,
        value_name = "DIR",
        default_value = "/var/spool/warden/break-glass"
    )]
    pub break_glass_spool: PathBuf,
    /// The UDP port the mesh interface listens on.
    #[arg(long, value_name = "PORT", default_value_t = 51820)]
    pub mesh_listen_port: u16,
    /// Where other nodes reach this host's mesh interface, `IP:PORT`.
    #[arg(long, value_name = "IP:PORT")]
    pub mesh_endpoint: Option<String>,
}

#[derive(Debug, Args)]
pub struct MeshArgs {
    #[command(subcommand)]
    pub command: MeshCommand,
}

#[derive(Debug, Subcommand)]
pub enum MeshCommand {
    /// Join the mesh with this device and stay up: enrolls the device's key (made here; the
    /// private half never leaves `--data-dir`), brings up the interface and follows the map.
    /// Needs a recent `warden login` (a passkey sign-in).
    Up {
        /// The Warden server's URL.
        #[arg(long, env = "WARDEN_SERVER", value_name = "URL")]
        server: String,
        /// This device's name in the mesh, such as `alice-laptop`.
        #[arg(long)]
        name: String,
        /// The interface to create (unique on the machine).
        #[arg(long, default_value = "warden0")]
        interface: String,
        /// The UDP port to listen on (0: any).
        #[arg(long, default_value_t = 0)]
        listen_port: u16,
        /// Where other nodes can reach this device, `IP:PORT`, if they can.
        #[arg(long, value_name = "IP:PORT")]
        endpoint: Option<String>,
        /// Where the device's key and status live.
        #[arg(long, value_name = "DIR", default_value = "/var/lib/warden/mesh")]
        data_dir: PathBuf,
    },
    /// Enroll a device that runs the stock WireGuard apps and print its wg-quick file (with
    /// a private key made here, shown only in this output). Access is still enforced by the
    /// destinations' agents. Needs a recent `warden login`.
    Config {
        /// The Warden server's URL.
        #[arg(long, env = "WARDEN_SERVER", value_name = "URL")]
        server: String,
        /// The device's name in the mesh.
        #[arg(long)]
        device: String,
        /// Where other nodes can reach the device, `IP:PORT`, if they can.
        #[arg(long, value_name = "IP:PORT")]
        endpoint: Option<String>,
    },
    /// What a running node sees: peers with their handshakes and bytes, the flows its
    /// filter tracks, and its counters.
    Status {
        /// The node's data directory (the agent's, or `mesh up`'s).
        #[arg(long, value_name = "DIR", default_value = "/var/lib/warden/mesh")]
        data_dir: PathBuf,
        /// Print machine-readable JSON.
        #[arg(long)]
        json: bool,
    },
}
