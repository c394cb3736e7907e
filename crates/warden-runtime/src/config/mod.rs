//! Configuration: a TOML file, then `WARDEN_…` environment variables, then command-line
//! flags, each overriding the one before. Unknown keys and wrong types are refused with the
//! key, the file and the line, and the server does not start.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use url::Url;
use warden_model::Timestamp;
use warden_store::DatabaseLocation;

use self::file::{FileConfig, read_file};

mod file;
mod resolve;
#[cfg(test)]
mod tests;

/// Every setting, resolved and checked.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where Warden keeps its SQLite database, admin socket and lock.
    pub data_dir: PathBuf,
    /// The database.
    pub database: DatabaseLocation,
    /// The key-encryption key file that seals CA private keys; with `--dev` and no setting,
    /// `DATA_DIR/kek` (created on first start).
    pub kek_file: Option<PathBuf>,
    /// Whether this is a `--dev` server.
    pub dev: bool,
    /// What browsers and agents use to reach Warden.
    pub public_url: Url,
    /// HTTP listener (console, GraphQL, metrics, health).
    pub listen_http: SocketAddr,
    /// Edge protection.
    pub limits: Limits,
    /// Logging.
    pub log: LogConfig,
    /// The audit log.
    pub audit: AuditConfig,
    /// SSH certificates.
    pub ssh: SshConfig,
    /// The mutual-TLS listener for agents and workloads (`listen.agent_mtls`).
    pub listen_agent_mtls: SocketAddr,
    /// The recording SSH proxy (`listen.ssh_proxy`, default 127.0.0.1:3022).
    pub listen_ssh_proxy: SocketAddr,
    /// X.509 certificates.
    pub x509: X509Config,
    /// Host agents.
    pub agent: AgentConfig,
    /// The WireGuard mesh.
    pub mesh: MeshConfig,
    /// Sign-in.
    pub identity: IdentityConfig,
    /// The policy engine.
    pub policy: PolicyConfig,
    /// `[vuln]`: vulnerability SLAs and imports.
    pub vuln: VulnConfig,
    /// `[security_txt]`: what `/.well-known/security.txt` says; `None` serves no such file.
    pub security_txt: Option<SecurityTxt>,
    /// `trusted_proxies`: the peers whose `Forwarded`/`X-Forwarded-For` headers name the client.
    pub trusted_proxies: warden_model::forwarded::TrustedProxies,
    /// `[scim]`: what SCIM clients may take over.
    pub scim: ScimConfig,
    /// `[compliance]`: the limits the compliance tests hold the evidence to.
    pub compliance: warden_compliance::Parameters,
    /// How often the compliance monitor reruns every test (`compliance.monitor_every`,
    /// default 1h, at least 1s).
    pub compliance_monitor_every: Duration,
    /// `[[compliance.review_schedule]]`: access reviews opened by themselves.
    pub review_schedules: Vec<ReviewSchedule>,
}

/// A recurring access review: a campaign of `scope` opened every `every`, due `due` later.
#[derive(Debug, Clone)]
pub struct ReviewSchedule {
    /// What each campaign covers.
    pub scope: warden_store::ReviewScope,
    /// How often one opens.
    pub every: Duration,
    /// Who reviews.
    pub reviewer: warden_store::ReviewerRule,
    /// How long reviewers have (default 14 days).
    pub due: Duration,
    /// Whether undecided items are revoked at the due date (default no).
    pub auto_revoke: bool,
}

/// `[scim]` settings.
#[derive(Debug, Clone)]
pub struct ScimConfig {
    /// Existing Warden groups a SCIM client may adopt, and the only groups it may provision
    /// that the policy grants management rights to (`scim.adopt_groups`). Empty by default: a
    /// SCIM token can never take over `admins`.
    pub adopt_groups: std::collections::BTreeSet<warden_model::GroupName>,
    /// Sustained requests per second per SCIM token (an identity provider's full sync is one
    /// client sending hundreds a second); 0 turns it off. Unauthenticated SCIM traffic is held to
    /// the per-source budget.
    pub per_token_rps: u32,
    /// Requests a SCIM token may make at once before the sustained rate applies.
    pub per_token_burst: u32,
}

impl Default for ScimConfig {
    fn default() -> Self {
        ScimConfig {
            adopt_groups: std::collections::BTreeSet::new(),
            per_token_rps: 500,
            per_token_burst: 1000,
        }
    }
}

/// Vulnerability SLAs and imports.
#[derive(Debug, Clone)]
pub struct VulnConfig {
    /// Each asset tier's SLA policy, and whether re-rating restarts the clock.
    pub sla: warden_vuln::SlaTiers,
    /// The largest scan file an import accepts.
    pub max_import_bytes: usize,
    /// The longest the dashboard's kept figures go without being recomputed
    /// (`vuln.figures_every`, default 5m); a change to findings recomputes them sooner.
    pub figures_every: Duration,
}

impl Default for VulnConfig {
    fn default() -> Self {
        VulnConfig {
            sla: warden_vuln::SlaTiers::default(),
            max_import_bytes: 256 * 1024 * 1024,
            figures_every: Duration::from_secs(300),
        }
    }
}

/// RFC 9116 fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecurityTxt {
    /// `mailto:`, `https://` or `tel:` URIs, in order of preference.
    pub contact: Vec<String>,
    /// When the file stops being valid.
    pub expires: Timestamp,
    /// Where the disclosure policy is.
    pub policy: Option<String>,
    /// Where reporters are thanked.
    pub acknowledgments: Option<String>,
    /// Languages, like `en, de`.
    pub preferred_languages: Option<String>,
    /// Where an encryption key is.
    pub encryption: Option<String>,
}

/// Policy engine settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyConfig {
    /// Whether a server with no policy yet activates the shipped starter set at start
    /// (`policy.starter`, default true). Without it, every API call is denied until an
    /// operator applies a policy over the admin socket.
    pub starter: bool,
}

/// Sign-in settings.
#[derive(Debug, Clone)]
pub struct IdentityConfig {
    /// `[[identity.oidc]]` providers.
    pub oidc: Vec<warden_identity::oidc::OidcConfig>,
    /// A web session's absolute lifetime (`identity.session_lifetime`, default 12h).
    pub session_lifetime: Duration,
    /// A web session ends after this long without a request (`identity.idle_timeout`,
    /// default 30m: automatic logoff).
    pub idle_timeout: Duration,
    /// How long an enrollment link works (`identity.enrollment_link_ttl`, default 24h).
    pub enrollment_link_ttl: Duration,
    /// `[[identity.authenticator]]`: when any, only these authenticator models may register
    /// (their attestation checked); when none, attestation is not asked for.
    pub authenticators: Vec<warden_identity::passkey::AllowedAuthenticator>,
}

/// X.509 settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct X509Config {
    /// The SPIFFE trust domain (`x509.trust_domain`; default the public URL's host).
    pub trust_domain: String,
    /// Longest workload certificate lifetime (`x509.max_ttl`, default 7d; 24h when unasked).
    pub max_ttl: Duration,
}

/// Host agent settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentConfig {
    /// Host SSH certificate lifetime (`agent.host_cert_ttl`, default 30d).
    pub host_cert_ttl: Duration,
    /// The agent's mTLS client certificate lifetime (`agent.client_cert_ttl`, default 7d).
    pub client_cert_ttl: Duration,
    /// A host whose agent has not been heard from for this long shows as offline
    /// (`agent.offline_after`, default 3m: three of the agent's default refreshes).
    pub offline_after: Duration,
}

/// The WireGuard mesh (`[mesh]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MeshConfig {
    /// The overlay ranges (`mesh.ipv4_range`, default 100.64.0.0/10; `mesh.ipv6_range`,
    /// default fd7a:5744:4e00::/48).
    pub ranges: warden_mesh::MeshRanges,
    /// How long a device's key is accepted before its owner signs in again (default 7d).
    pub device_key_ttl: Duration,
    /// How long a host's key is accepted; its agent renews it at two thirds (default 30d).
    pub host_key_ttl: Duration,
    /// How recent the passkey sign-in behind a device enrollment must be (default 15m).
    pub signin_max_age: Duration,
}

/// SSH certificate settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SshConfig {
    /// Longest user certificate lifetime (default 8h).
    pub max_ttl: Duration,
    /// Extra logins granted by group membership (`[ssh.group_logins] ops = ["root"]`); every
    /// user may always log in as their own name.
    pub group_logins: std::collections::BTreeMap<String, Vec<String>>,
    /// Groups whose members' certificates carry `permit-port-forwarding`
    /// (`ssh.port_forwarding_groups`); nobody else's do.
    pub port_forwarding_groups: Vec<String>,
    /// A proxied session with no input or output for this long ends (`ssh.idle_timeout`,
    /// default 1h; `0s` for never).
    pub idle_timeout: Option<Duration>,
    /// How long a proxy's lease lasts (`ssh.proxy_lease`, default 30s): a proxy renews it
    /// while it serves, and when it runs out the sessions that proxy held end on the record.
    pub proxy_lease: Duration,
    /// A proxied session ends after this long whatever it does (`ssh.max_session`, default
    /// 24h; `0s` for never).
    pub max_session: Option<Duration>,
    /// Where session recordings are kept (`ssh.recordings`): a directory (default
    /// `<data_dir>/recordings`) or an S3-compatible bucket; servers and `warden proxy`
    /// processes share it.
    pub recordings: RecordingsLocation,
}

/// Where session recordings are kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordingsLocation {
    /// A directory.
    Dir(PathBuf),
    /// `s3://BUCKET[/PREFIX]`, with credentials, region and endpoint from the standard AWS_*
    /// variables; finished recordings are uploaded from `spool` and removed there.
    Bucket {
        /// The URL as configured.
        url: String,
        /// Where the proxy writes recordings before they are uploaded.
        spool: PathBuf,
    },
}

/// Audit log settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditConfig {
    /// The log's name in signed checkpoints; default `<public_url host>/audit`.
    pub origin: String,
    /// How often a checkpoint is signed while events flow.
    pub checkpoint_interval: Duration,
    /// Where the log is copied as it grows: `[[audit.sink]]` tables.
    pub sinks: Vec<SinkConfig>,
    /// Events older than this move from the database into archive files; `None` keeps
    /// everything in the database (the default).
    pub retention: Option<Duration>,
    /// Where archive files go.
    pub archive_dir: PathBuf,
    /// How often the retention task looks for events to archive.
    pub retention_check: Duration,
}

/// One export sink. Each keeps a durable cursor and catches up after an outage.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum SinkConfig {
    /// Rotating JSON-lines files, one canonical event per line.
    Jsonl {
        /// Unique sink name (the cursor's key).
        name: String,
        /// Directory for `audit-<first seq>.jsonl` files.
        dir: PathBuf,
        /// Start a new file past this size.
        #[serde(default = "default_max_bytes")]
        max_bytes: u64,
    },
    /// Syslog (RFC 5424) over TCP with octet-counting framing, optionally TLS (RFC 5425).
    Syslog {
        /// Unique sink name.
        name: String,
        /// Collector address, HOST:PORT.
        address: String,
        /// Use TLS.
        #[serde(default)]
        tls: bool,
        /// PEM CA certificates that sign the collector's certificate (required with TLS).
        ca_file: Option<PathBuf>,
        /// Name to verify in the collector's certificate; default the address's host.
        server_name: Option<String>,
        /// APP-NAME field.
        #[serde(default = "default_app_name")]
        app_name: String,
    },
    /// Chosen events POSTed to a URL, one per request: notifications.
    Webhook {
        /// Unique sink name.
        name: String,
        /// Where to POST; kept out of logs and errors (chat webhooks hold a secret in it).
        url: String,
        /// `json` (the canonical event) or `slack` (`{"text": …}`).
        #[serde(default = "default_webhook_format")]
        format: String,
        /// Actions to send, exactly or as a prefix ending in `*` (`access.*`); empty: all.
        #[serde(default)]
        actions: Vec<String>,
    },
    /// OpenTelemetry logs over OTLP/HTTP with protobuf (cargo feature `otlp`, on by default).
    Otlp {
        /// Unique sink name.
        name: String,
        /// The collector's logs endpoint, like `http://127.0.0.1:4318/v1/logs`.
        endpoint: String,
        /// The resource's `service.name`.
        #[serde(default = "default_app_name")]
        service_name: String,
    },
}

fn default_max_bytes() -> u64 {
    64 * 1024 * 1024
}

fn default_webhook_format() -> String {
    "json".to_owned()
}

fn default_app_name() -> String {
    "warden".to_owned()
}

impl SinkConfig {
    /// The sink's name.
    pub fn name(&self) -> &str {
        match self {
            SinkConfig::Jsonl { name, .. }
            | SinkConfig::Syslog { name, .. }
            | SinkConfig::Webhook { name, .. }
            | SinkConfig::Otlp { name, .. } => name,
        }
    }
}

/// Edge protection applied to every listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Sustained requests per second per source address; 0 turns rate limiting off.
    pub per_source_rps: u32,
    /// Requests a source may make at once before the sustained rate applies.
    pub per_source_burst: u32,
    /// Largest request body accepted.
    pub max_body_bytes: usize,
    /// Most connections open at once per listener.
    pub max_connections: usize,
    /// Time a client has to send a request's headers (slowloris).
    pub header_timeout: Duration,
    /// Time a request (body included) may take.
    pub request_timeout: Duration,
    /// Most connections one source may hold open at once per listener (IPv6 by /64).
    pub per_source_connections: usize,
    /// Sustained requests per second per API token (SCIM tokens included); 0 turns it off.
    pub per_token_rps: u32,
    /// Requests a token may make at once before the sustained rate applies.
    pub per_token_burst: u32,
    /// Scan uploads one source may have in progress at once.
    pub imports_per_source: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            per_source_rps: 50,
            per_source_burst: 100,
            max_body_bytes: 1024 * 1024,
            max_connections: 10_000,
            header_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
            per_source_connections: 256,
            per_token_rps: 50,
            per_token_burst: 100,
            imports_per_source: 2,
        }
    }
}

/// Log settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogConfig {
    /// A `tracing` filter: `info`, `warden=debug,info`.
    pub level: String,
    /// `json` (one object per line) or `text`.
    pub format: LogFormat,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// One JSON object per line.
    Json,
    /// Human-readable lines.
    Text,
}

/// A configuration problem, in one line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(String);

/// Values set on the command line; `None` leaves the file or environment value.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// `--config`.
    pub config_file: Option<PathBuf>,
    /// `--data-dir`.
    pub data_dir: Option<PathBuf>,
    /// `--listen`.
    pub listen: Option<String>,
    /// `--database-url`.
    pub database_url: Option<String>,
    /// `--dev`: defaults for one machine (`./.warden`).
    pub dev: bool,
}

/// Every key, as written in the file. The environment variable is `WARDEN_` and the key in
/// upper case with dots as underscores: `limits.per_source_rps` is `WARDEN_LIMITS_PER_SOURCE_RPS`.
pub const KEYS: [&str; 44] = [
    "data_dir",
    "database_url",
    "public_url",
    "kek_file",
    "listen.http",
    "limits.per_source_rps",
    "limits.per_source_burst",
    "limits.max_body_bytes",
    "limits.max_connections",
    "limits.header_timeout",
    "limits.request_timeout",
    "limits.per_source_connections",
    "limits.per_token_rps",
    "limits.per_token_burst",
    "limits.imports_per_source",
    "trusted_proxies",
    "forwarded_header",
    "log.level",
    "log.format",
    "audit.origin",
    "audit.checkpoint_interval",
    "audit.retention",
    "audit.archive_dir",
    "audit.retention_check",
    "listen.agent_mtls",
    "listen.ssh_proxy",
    "compliance.enrollment_window",
    "compliance.deprovision_within",
    "compliance.grant_grace",
    "compliance.review_every",
    "compliance.checkpoint_gap",
    "compliance.monitor_every",
    "ssh.max_ttl",
    "ssh.idle_timeout",
    "ssh.max_session",
    "ssh.proxy_lease",
    "ssh.recordings",
    "x509.trust_domain",
    "x509.max_ttl",
    "agent.host_cert_ttl",
    "agent.client_cert_ttl",
    "agent.offline_after",
    "vuln.figures_every",
    "policy.starter",
];

/// The environment variable that sets `key`.
pub fn env_var(key: &str) -> String {
    format!("WARDEN_{}", key.replace('.', "_").to_ascii_uppercase())
}

impl Config {
    /// Loads the file named by the overrides (or `WARDEN_CONFIG`), overlays the environment
    /// read through `env`, then the flags.
    pub fn load(
        overrides: &Overrides,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        let path = overrides
            .config_file
            .clone()
            .or_else(|| env("WARDEN_CONFIG").map(PathBuf::from));
        let mut file = match &path {
            Some(path) => read_file(path)?,
            None => FileConfig::default(),
        };
        for key in KEYS {
            let var = env_var(key);
            if let Some(value) = env(&var) {
                file.set(key, &value, &format!("environment variable {var}"))?;
            }
        }
        let flags = [
            (
                "data_dir",
                overrides.data_dir.as_ref().map(|p| p.display().to_string()),
                "--data-dir",
            ),
            ("listen.http", overrides.listen.clone(), "--listen"),
            (
                "database_url",
                overrides.database_url.clone(),
                "--database-url",
            ),
        ];
        for (key, value, flag) in flags {
            if let Some(value) = value {
                file.set(key, &value, &format!("flag {flag}"))?;
            }
        }
        file.resolve(overrides.dev)
    }
}

fn absolute(path: &Path) -> Result<PathBuf, ConfigError> {
    std::path::absolute(path).map_err(|e| {
        ConfigError(format!(
            "invalid data directory `{}`: {}",
            path.display(),
            io_cause(&e)
        ))
    })
}

/// An I/O error's message without the "(os error N)" suffix.
pub fn io_cause(e: &std::io::Error) -> String {
    let text = e.to_string();
    match text.find(" (os error") {
        Some(i) => text.get(..i).unwrap_or(&text).to_owned(),
        None => text,
    }
}
