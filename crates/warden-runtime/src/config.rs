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
}

impl Default for VulnConfig {
    fn default() -> Self {
        VulnConfig {
            sla: warden_vuln::SlaTiers::default(),
            max_import_bytes: 256 * 1024 * 1024,
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

/// The file's shape. Every key is optional; the defaults fill the gaps.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct FileConfig {
    data_dir: Option<PathBuf>,
    database_url: Option<String>,
    public_url: Option<String>,
    kek_file: Option<PathBuf>,
    listen: ListenFile,
    limits: LimitsFile,
    log: LogFile,
    audit: AuditFile,
    ssh: SshFile,
    x509: X509File,
    agent: AgentFile,
    mesh: MeshFile,
    identity: IdentityFile,
    policy: PolicyFile,
    vuln: VulnFile,
    security_txt: Option<SecurityTxtFile>,
    trusted_proxies: Vec<String>,
    forwarded_header: Option<String>,
    scim: ScimFile,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct ScimFile {
    adopt_groups: Vec<String>,
    per_token_rps: Option<u32>,
    per_token_burst: Option<u32>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct VulnFile {
    restart_clock_on_rerate: Option<bool>,
    max_import_bytes: Option<u64>,
    /// Tier name → severity → duration or `none`.
    sla: std::collections::BTreeMap<String, std::collections::BTreeMap<String, String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SecurityTxtFile {
    contact: Vec<String>,
    expires: String,
    policy: Option<String>,
    acknowledgments: Option<String>,
    preferred_languages: Option<String>,
    encryption: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct PolicyFile {
    starter: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct IdentityFile {
    oidc: Vec<OidcFile>,
    session_lifetime: Option<String>,
    idle_timeout: Option<String>,
    enrollment_link_ttl: Option<String>,
    authenticator: Vec<AuthenticatorFile>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AuthenticatorFile {
    name: String,
    aaguid: String,
    ca_file: PathBuf,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct OidcFile {
    name: String,
    issuer: String,
    client_id: String,
    client_secret_file: Option<PathBuf>,
    client_secret_env: Option<String>,
    #[serde(default)]
    scopes: Option<Vec<String>>,
    #[serde(default)]
    groups_claim: Option<String>,
    #[serde(default)]
    allowed_email_domains: Vec<String>,
    #[serde(default)]
    provisioning: Option<String>,
    #[serde(default)]
    algorithms: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct X509File {
    trust_domain: Option<String>,
    max_ttl: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct AgentFile {
    host_cert_ttl: Option<String>,
    client_cert_ttl: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct MeshFile {
    ipv4_range: Option<String>,
    ipv6_range: Option<String>,
    device_key_ttl: Option<String>,
    host_key_ttl: Option<String>,
    signin_max_age: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct SshFile {
    max_ttl: Option<String>,
    group_logins: std::collections::BTreeMap<String, Vec<String>>,
    port_forwarding_groups: Vec<String>,
    idle_timeout: Option<String>,
    max_session: Option<String>,
    recordings: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct AuditFile {
    origin: Option<String>,
    checkpoint_interval: Option<String>,
    retention: Option<String>,
    archive_dir: Option<PathBuf>,
    retention_check: Option<String>,
    sink: Vec<SinkConfig>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct ListenFile {
    http: Option<String>,
    agent_mtls: Option<String>,
    ssh_proxy: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct LimitsFile {
    per_source_rps: Option<u32>,
    per_source_burst: Option<u32>,
    max_body_bytes: Option<u64>,
    max_connections: Option<u32>,
    header_timeout: Option<String>,
    request_timeout: Option<String>,
    per_source_connections: Option<u32>,
    per_token_rps: Option<u32>,
    per_token_burst: Option<u32>,
    imports_per_source: Option<u32>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct LogFile {
    level: Option<String>,
    format: Option<String>,
}

/// Every key, as written in the file. The environment variable is `WARDEN_` and the key in
/// upper case with dots as underscores: `limits.per_source_rps` is `WARDEN_LIMITS_PER_SOURCE_RPS`.
pub const KEYS: [&str; 35] = [
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
    "ssh.max_ttl",
    "ssh.idle_timeout",
    "ssh.max_session",
    "ssh.recordings",
    "x509.trust_domain",
    "x509.max_ttl",
    "agent.host_cert_ttl",
    "agent.client_cert_ttl",
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

fn read_file(path: &Path) -> Result<FileConfig, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        ConfigError(format!(
            "cannot read config file {}: {}",
            path.display(),
            io_cause(&e)
        ))
    })?;
    parse_file(path, &text)
}

fn parse_file(path: &Path, text: &str) -> Result<FileConfig, ConfigError> {
    let de = toml::Deserializer::new(text);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let key = e.path().to_string();
        let inner = e.into_inner();
        let line = inner
            .span()
            .map(|span| text.get(..span.start).unwrap_or(text).matches('\n').count() + 1);
        let message = inner.message().trim_end().to_owned();
        let what = match message.strip_prefix("unknown field `") {
            Some(rest) => {
                let field = rest.split('`').next().unwrap_or_default();
                // The path may or may not already end in the unknown field.
                let full = if key == "." || key.is_empty() || key == field {
                    field.to_owned()
                } else if key.ends_with(&format!(".{field}")) {
                    key.clone()
                } else {
                    format!("{key}.{field}")
                };
                format!("unknown key `{full}`")
            }
            None if key == "." || key.is_empty() => message,
            None => format!("key `{key}`: {message}"),
        };
        let at = line.map(|l| format!(" line {l}")).unwrap_or_default();
        ConfigError(format!("config file {}{at}: {what}", path.display()))
    })
}

impl FileConfig {
    /// Sets one key from a string (an environment variable or a flag).
    fn set(&mut self, key: &str, value: &str, origin: &str) -> Result<(), ConfigError> {
        let number = |v: &str| -> Result<u64, ConfigError> {
            v.trim().parse().map_err(|_| {
                ConfigError(format!(
                    "{origin}: expected a whole number for `{key}`, got `{v}`"
                ))
            })
        };
        let small = |v: &str| -> Result<u32, ConfigError> {
            u32::try_from(number(v)?)
                .map_err(|_| ConfigError(format!("{origin}: `{key}` is too large, got `{v}`")))
        };
        match key {
            "data_dir" => self.data_dir = Some(PathBuf::from(value)),
            "database_url" => self.database_url = Some(value.to_owned()),
            "public_url" => self.public_url = Some(value.to_owned()),
            "kek_file" => self.kek_file = Some(PathBuf::from(value)),
            "listen.http" => self.listen.http = Some(value.to_owned()),
            "limits.per_source_rps" => self.limits.per_source_rps = Some(small(value)?),
            "limits.per_source_burst" => self.limits.per_source_burst = Some(small(value)?),
            "limits.max_body_bytes" => self.limits.max_body_bytes = Some(number(value)?),
            "limits.max_connections" => self.limits.max_connections = Some(small(value)?),
            "limits.header_timeout" => self.limits.header_timeout = Some(value.to_owned()),
            "limits.request_timeout" => self.limits.request_timeout = Some(value.to_owned()),
            "limits.per_source_connections" => {
                self.limits.per_source_connections = Some(small(value)?);
            }
            "limits.per_token_rps" => self.limits.per_token_rps = Some(small(value)?),
            "limits.per_token_burst" => self.limits.per_token_burst = Some(small(value)?),
            "limits.imports_per_source" => self.limits.imports_per_source = Some(small(value)?),
            "forwarded_header" => self.forwarded_header = Some(value.to_owned()),
            "trusted_proxies" => {
                self.trusted_proxies = value
                    .split(',')
                    .map(str::trim)
                    .filter(|v| !v.is_empty())
                    .map(str::to_owned)
                    .collect();
            }
            "log.level" => self.log.level = Some(value.to_owned()),
            "log.format" => self.log.format = Some(value.to_owned()),
            "audit.origin" => self.audit.origin = Some(value.to_owned()),
            "audit.checkpoint_interval" => self.audit.checkpoint_interval = Some(value.to_owned()),
            "audit.retention" => self.audit.retention = Some(value.to_owned()),
            "audit.archive_dir" => self.audit.archive_dir = Some(PathBuf::from(value)),
            "audit.retention_check" => self.audit.retention_check = Some(value.to_owned()),
            "listen.agent_mtls" => self.listen.agent_mtls = Some(value.to_owned()),
            "listen.ssh_proxy" => self.listen.ssh_proxy = Some(value.to_owned()),
            "ssh.max_ttl" => self.ssh.max_ttl = Some(value.to_owned()),
            "ssh.idle_timeout" => self.ssh.idle_timeout = Some(value.to_owned()),
            "ssh.max_session" => self.ssh.max_session = Some(value.to_owned()),
            "ssh.recordings" => self.ssh.recordings = Some(value.to_owned()),
            "x509.trust_domain" => self.x509.trust_domain = Some(value.to_owned()),
            "x509.max_ttl" => self.x509.max_ttl = Some(value.to_owned()),
            "agent.host_cert_ttl" => self.agent.host_cert_ttl = Some(value.to_owned()),
            "agent.client_cert_ttl" => self.agent.client_cert_ttl = Some(value.to_owned()),
            "policy.starter" => {
                self.policy.starter = Some(match value.trim() {
                    "true" => true,
                    "false" => false,
                    _ => {
                        return Err(ConfigError(format!(
                            "{origin}: invalid value `{value}` for `policy.starter`: use true or false"
                        )));
                    }
                });
            }
            other => return Err(ConfigError(format!("{origin}: unknown key `{other}`"))),
        }
        Ok(())
    }

    fn resolve(self, dev: bool) -> Result<Config, ConfigError> {
        let data_dir = self
            .data_dir
            .unwrap_or_else(|| PathBuf::from(if dev { "./.warden" } else { "/var/lib/warden" }));
        let data_dir = absolute(&data_dir)?;
        let database = match &self.database_url {
            Some(url) => DatabaseLocation::parse(url).map_err(|e| ConfigError(e.to_string()))?,
            None => DatabaseLocation::in_data_dir(&data_dir),
        };
        let http = self.listen.http.as_deref().unwrap_or("127.0.0.1:8080");
        let listen_http: SocketAddr = http.parse().map_err(|_| {
            ConfigError(format!("invalid listen address `{http}` for `listen.http`: use HOST:PORT, like 127.0.0.1:8080"))
        })?;
        let public_url = match &self.public_url {
            Some(u) => Url::parse(u)
                .map_err(|e| ConfigError(format!("invalid URL `{u}` for `public_url`: {e}")))?,
            None => {
                let host = if listen_http.ip().is_unspecified() || listen_http.ip().is_loopback() {
                    "localhost".to_owned()
                } else {
                    listen_http.ip().to_string()
                };
                Url::parse(&format!("http://{host}:{}", listen_http.port()))
                    .map_err(|e| ConfigError(format!("cannot form the public URL: {e}")))?
            }
        };
        if !matches!(public_url.scheme(), "http" | "https") {
            return Err(ConfigError(format!(
                "invalid URL `{public_url}` for `public_url`: use http:// or https://"
            )));
        }
        let defaults = Limits::default();
        let l = self.limits;
        let duration = |key: &str,
                        v: Option<String>,
                        default: Duration|
         -> Result<Duration, ConfigError> {
            match v {
                None => Ok(default),
                Some(v) => humantime::parse_duration(v.trim())
                    .ok()
                    .filter(|d| !d.is_zero())
                    .ok_or_else(|| ConfigError(format!(
                        "invalid duration `{v}` for `limits.{key}`: use a number and a unit, like 10s or 1m"
                    ))),
            }
        };
        let limits = Limits {
            per_source_rps: l.per_source_rps.unwrap_or(defaults.per_source_rps),
            per_source_burst: l.per_source_burst.unwrap_or(defaults.per_source_burst),
            max_body_bytes: match l.max_body_bytes {
                Some(n) => usize::try_from(n).map_err(|_| {
                    ConfigError(format!("`limits.max_body_bytes` is too large: {n}"))
                })?,
                None => defaults.max_body_bytes,
            },
            max_connections: match l.max_connections {
                Some(0) => {
                    return Err(ConfigError(
                        "`limits.max_connections` must be at least 1".to_owned(),
                    ));
                }
                Some(n) => usize::try_from(n).unwrap_or(usize::MAX),
                None => defaults.max_connections,
            },
            header_timeout: duration("header_timeout", l.header_timeout, defaults.header_timeout)?,
            request_timeout: duration(
                "request_timeout",
                l.request_timeout,
                defaults.request_timeout,
            )?,
            per_source_connections: at_least_one(
                "limits.per_source_connections",
                l.per_source_connections,
                defaults.per_source_connections,
            )?,
            per_token_rps: l.per_token_rps.unwrap_or(defaults.per_token_rps),
            per_token_burst: l.per_token_burst.unwrap_or(defaults.per_token_burst),
            imports_per_source: at_least_one(
                "limits.imports_per_source",
                l.imports_per_source,
                defaults.imports_per_source,
            )?,
        };
        if limits.per_token_rps > 0 && limits.per_token_burst == 0 {
            return Err(ConfigError(
                "`limits.per_token_burst` must be at least 1 when per-token limits are on"
                    .to_owned(),
            ));
        }
        let header = match &self.forwarded_header {
            Some(h) => warden_model::forwarded::ForwardedHeader::parse(h)
                .map_err(|e| ConfigError(e.to_string()))?,
            None => warden_model::forwarded::ForwardedHeader::default(),
        };
        let trusted_proxies =
            warden_model::forwarded::TrustedProxies::parse(&self.trusted_proxies, header)
                .map_err(|e| ConfigError(e.to_string()))?;
        let scim = resolve_scim(self.scim)?;
        if limits.per_source_rps > 0 && limits.per_source_burst == 0 {
            return Err(ConfigError(
                "`limits.per_source_burst` must be at least 1 when rate limiting is on".to_owned(),
            ));
        }
        let format = match self.log.format.as_deref() {
            None | Some("json") => LogFormat::Json,
            Some("text") => LogFormat::Text,
            Some(other) => {
                return Err(ConfigError(format!(
                    "invalid value `{other}` for `log.format`: use json or text"
                )));
            }
        };
        let log = LogConfig {
            level: self.log.level.unwrap_or_else(|| "info".to_owned()),
            format,
        };
        let origin = match self.audit.origin {
            Some(o) => o,
            None => format!("{}/audit", public_url.host_str().unwrap_or("warden")),
        };
        if origin.is_empty()
            || origin
                .chars()
                .any(|c| c.is_whitespace() || c == '+' || c.is_control())
        {
            return Err(ConfigError(format!(
                "invalid value `{origin}` for `audit.origin`: no spaces or '+'"
            )));
        }
        let interval = match self.audit.checkpoint_interval {
            None => Duration::from_secs(10),
            Some(v) => humantime::parse_duration(v.trim())
                .ok()
                .filter(|d| !d.is_zero() && *d <= Duration::from_secs(10))
                .ok_or_else(|| {
                    ConfigError(format!(
                        "invalid duration `{v}` for `audit.checkpoint_interval`: use 100ms to 10s"
                    ))
                })?,
        };
        let mut names = std::collections::BTreeSet::new();
        for sink in &self.audit.sink {
            let name = sink.name();
            let ok = !name.is_empty()
                && name.len() <= 64
                && name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
            if !ok {
                return Err(ConfigError(format!(
                    "invalid audit sink name `{name}`: use letters, digits, '-' and '_'"
                )));
            }
            if !names.insert(name.to_owned()) {
                return Err(ConfigError(format!("two audit sinks are named `{name}`")));
            }
            if let SinkConfig::Syslog {
                address,
                tls,
                ca_file,
                ..
            } = sink
            {
                if address
                    .rsplit_once(':')
                    .and_then(|(_, p)| p.parse::<u16>().ok())
                    .is_none()
                {
                    return Err(ConfigError(format!(
                        "invalid address `{address}` for audit sink `{name}`: use HOST:PORT"
                    )));
                }
                if *tls && ca_file.is_none() {
                    return Err(ConfigError(format!(
                        "audit sink `{name}` uses TLS and needs `ca_file`"
                    )));
                }
            }
        }
        let positive = |key: &str, v: &str| {
            humantime::parse_duration(v.trim())
                .ok()
                .filter(|d| !d.is_zero())
                .ok_or_else(|| ConfigError(format!("invalid duration `{v}` for `{key}`: use a number and a unit, like 1s or 365d")))
        };
        let retention = self
            .audit
            .retention
            .as_deref()
            .map(|v| positive("audit.retention", v))
            .transpose()?;
        let retention_check = match self.audit.retention_check.as_deref() {
            Some(v) => positive("audit.retention_check", v)?,
            None => Duration::from_secs(3600),
        };
        let archive_dir = match self.audit.archive_dir {
            Some(dir) => absolute(&dir)?,
            None => data_dir.join("audit-archive"),
        };
        let audit = AuditConfig {
            retention,
            retention_check,
            archive_dir,
            sinks: self.audit.sink,
            origin,
            checkpoint_interval: interval,
        };
        let kek_file = self.kek_file.map(|file| absolute(&file)).transpose()?;
        let max_ttl = match self.ssh.max_ttl.as_deref() {
            None => Duration::from_secs(8 * 3600),
            Some(v) => humantime::parse_duration(v.trim())
                .ok()
                .filter(|d| *d >= Duration::from_secs(60))
                .ok_or_else(|| {
                    ConfigError(format!(
                        "invalid duration `{v}` for `ssh.max_ttl`: at least 1m, like 8h"
                    ))
                })?,
        };
        // `0s` turns a session limit off.
        let limit = |key: &str, v: Option<String>, default: u64| match v {
            None => Ok(Some(Duration::from_secs(default))),
            Some(v) => match humantime::parse_duration(v.trim()) {
                Ok(d) if d.is_zero() => Ok(None),
                Ok(d) => Ok(Some(d)),
                Err(_) => Err(ConfigError(format!(
                    "invalid duration `{v}` for `{key}`: like 30m or 12h, or 0s for no limit"
                ))),
            },
        };
        let ssh = SshConfig {
            idle_timeout: limit("ssh.idle_timeout", self.ssh.idle_timeout, 3600)?,
            max_session: limit("ssh.max_session", self.ssh.max_session, 24 * 3600)?,
            recordings: match self.ssh.recordings {
                Some(url) if url.contains("://") => {
                    if !url.starts_with("s3://") || url.len() <= "s3://".len() {
                        return Err(ConfigError(format!(
                            "invalid `ssh.recordings` `{url}`: a directory or s3://BUCKET[/PREFIX]"
                        )));
                    }
                    RecordingsLocation::Bucket {
                        url,
                        spool: data_dir.join("recordings-spool"),
                    }
                }
                Some(dir) => RecordingsLocation::Dir(absolute(Path::new(&dir))?),
                None => RecordingsLocation::Dir(data_dir.join("recordings")),
            },
            max_ttl,
            group_logins: self.ssh.group_logins,
            port_forwarding_groups: self.ssh.port_forwarding_groups,
        };
        let mtls = self
            .listen
            .agent_mtls
            .as_deref()
            .unwrap_or("127.0.0.1:8443");
        let listen_agent_mtls: SocketAddr = mtls.parse().map_err(|_| {
            ConfigError(format!("invalid listen address `{mtls}` for `listen.agent_mtls`: use HOST:PORT, like 127.0.0.1:8443"))
        })?;
        let proxy = self.listen.ssh_proxy.as_deref().unwrap_or("127.0.0.1:3022");
        let listen_ssh_proxy: SocketAddr = proxy.parse().map_err(|_| {
            ConfigError(format!("invalid listen address `{proxy}` for `listen.ssh_proxy`: use HOST:PORT, like 127.0.0.1:3022"))
        })?;
        let trust_domain = match self.x509.trust_domain {
            Some(td) => td,
            None => public_url
                .host_str()
                .unwrap_or("warden.local")
                .trim_matches(|c| c == '[' || c == ']')
                .replace(':', "-")
                .to_ascii_lowercase(),
        };
        if !warden_pki::x509::valid_trust_domain(&trust_domain) {
            return Err(ConfigError(format!(
                "invalid value `{trust_domain}` for `x509.trust_domain`: use lowercase letters, digits, '.', '-' and '_'"
            )));
        }
        let at_least_a_second = |key: &str, v: Option<String>, default: Duration| match v {
            None => Ok(default),
            Some(v) => humantime::parse_duration(v.trim())
                .ok()
                .filter(|d| *d >= Duration::from_secs(1))
                .ok_or_else(|| {
                    ConfigError(format!(
                        "invalid duration `{v}` for `{key}`: at least 1s, like 24h or 30d"
                    ))
                }),
        };
        let x509 = X509Config {
            trust_domain,
            max_ttl: at_least_a_second(
                "x509.max_ttl",
                self.x509.max_ttl,
                Duration::from_secs(7 * 86_400),
            )?,
        };
        let agent = AgentConfig {
            host_cert_ttl: at_least_a_second(
                "agent.host_cert_ttl",
                self.agent.host_cert_ttl,
                Duration::from_secs(30 * 86_400),
            )?,
            client_cert_ttl: at_least_a_second(
                "agent.client_cert_ttl",
                self.agent.client_cert_ttl,
                Duration::from_secs(7 * 86_400),
            )?,
        };
        let mesh = MeshConfig {
            ranges: warden_mesh::MeshRanges::new(
                self.mesh
                    .ipv4_range
                    .as_deref()
                    .unwrap_or(warden_mesh::range::DEFAULT_IPV4),
                self.mesh
                    .ipv6_range
                    .as_deref()
                    .unwrap_or(warden_mesh::range::DEFAULT_IPV6),
            )
            .map_err(|e| ConfigError(format!("mesh: {e}")))?,
            device_key_ttl: at_least_a_second(
                "mesh.device_key_ttl",
                self.mesh.device_key_ttl,
                Duration::from_secs(7 * 86_400),
            )?,
            host_key_ttl: at_least_a_second(
                "mesh.host_key_ttl",
                self.mesh.host_key_ttl,
                Duration::from_secs(30 * 86_400),
            )?,
            signin_max_age: at_least_a_second(
                "mesh.signin_max_age",
                self.mesh.signin_max_age,
                Duration::from_secs(15 * 60),
            )?,
        };
        let identity = resolve_identity(self.identity)?;
        let policy = PolicyConfig {
            starter: self.policy.starter.unwrap_or(true),
        };
        let vuln = resolve_vuln(self.vuln)?;
        let security_txt = self
            .security_txt
            .map(|f| resolve_security_txt(f, Timestamp::from_system(std::time::SystemTime::now())))
            .transpose()?;
        Ok(Config {
            trusted_proxies,
            scim,
            mesh,
            vuln,
            security_txt,
            policy,
            identity,
            listen_agent_mtls,
            listen_ssh_proxy,
            x509,
            agent,
            ssh,
            kek_file,
            dev,
            audit,
            data_dir,
            database,
            public_url,
            listen_http,
            limits,
            log,
        })
    }
}

fn at_least_one(key: &str, value: Option<u32>, default: usize) -> Result<usize, ConfigError> {
    match value {
        Some(0) => Err(ConfigError(format!("`{key}` must be at least 1"))),
        Some(n) => Ok(usize::try_from(n).unwrap_or(usize::MAX)),
        None => Ok(default),
    }
}

fn resolve_scim(file: ScimFile) -> Result<ScimConfig, ConfigError> {
    let adopt_groups = file
        .adopt_groups
        .into_iter()
        .map(|name| {
            warden_model::GroupName::new(name.clone()).map_err(|e| {
                ConfigError(format!(
                    "invalid group `{name}` in `scim.adopt_groups`: {e}"
                ))
            })
        })
        .collect::<Result<_, _>>()?;
    let defaults = ScimConfig::default();
    Ok(ScimConfig {
        adopt_groups,
        per_token_rps: file.per_token_rps.unwrap_or(defaults.per_token_rps),
        per_token_burst: file.per_token_burst.unwrap_or(defaults.per_token_burst),
    })
}

fn resolve_vuln(file: VulnFile) -> Result<VulnConfig, ConfigError> {
    use warden_vuln::{DEFAULT_TIER, Severity, SlaPolicy};
    let limits = |tier: &str,
                  entries: &std::collections::BTreeMap<String, String>,
                  base: &SlaPolicy|
     -> Result<SlaPolicy, ConfigError> {
        let mut out: std::collections::BTreeMap<Severity, Option<Duration>> =
            Severity::ALL.iter().map(|s| (*s, base.limit(*s))).collect();
        for (name, value) in entries {
            let severity = Severity::from_name(name)
                .map_err(|e| ConfigError(format!("vuln.sla.{tier}: {e}")))?;
            let limit = if value.trim() == "none" {
                None
            } else {
                Some(
                    humantime::parse_duration(value.trim())
                        .ok()
                        .filter(|d| *d >= Duration::from_secs(1))
                        .ok_or_else(|| {
                            ConfigError(format!(
                                "invalid duration `{value}` for `vuln.sla.{tier}.{name}`: at least 1s, like 24h or 30d, or `none`"
                            ))
                        })?,
                )
            };
            out.insert(severity, limit);
        }
        Ok(SlaPolicy::new(
            out.into_iter().filter_map(|(s, d)| Some((s, d?))),
        ))
    };
    let default = match file.sla.get(DEFAULT_TIER) {
        Some(entries) => limits(DEFAULT_TIER, entries, &SlaPolicy::default())?,
        None => SlaPolicy::default(),
    };
    let mut tiers = vec![(DEFAULT_TIER.to_owned(), default.clone())];
    for (tier, entries) in &file.sla {
        if tier == DEFAULT_TIER {
            continue;
        }
        if warden_model::GroupName::new(tier.clone()).is_err() {
            return Err(ConfigError(format!(
                "invalid SLA tier name `{tier}`: use lowercase letters, digits, '.', '_' and '-'"
            )));
        }
        tiers.push((tier.clone(), limits(tier, entries, &default)?));
    }
    let max_import_bytes = match file.max_import_bytes {
        None => VulnConfig::default().max_import_bytes,
        Some(n) if (1024..=4 * 1024 * 1024 * 1024).contains(&n) => {
            usize::try_from(n).unwrap_or(usize::MAX)
        }
        Some(n) => {
            return Err(ConfigError(format!(
                "invalid `vuln.max_import_bytes` {n}: between 1024 and 4 GiB"
            )));
        }
    };
    Ok(VulnConfig {
        sla: warden_vuln::SlaTiers::new(tiers, file.restart_clock_on_rerate.unwrap_or(false)),
        max_import_bytes,
    })
}

fn resolve_security_txt(file: SecurityTxtFile, now: Timestamp) -> Result<SecurityTxt, ConfigError> {
    if file.contact.is_empty() {
        return Err(ConfigError(
            "security_txt.contact needs at least one mailto:, https:// or tel: URI".to_owned(),
        ));
    }
    for c in &file.contact {
        let ok = (c.starts_with("mailto:") || c.starts_with("https://") || c.starts_with("tel:"))
            && !c.chars().any(|ch| ch.is_control() || ch.is_whitespace());
        if !ok {
            return Err(ConfigError(format!(
                "invalid security_txt.contact `{c}`: use a mailto:, https:// or tel: URI"
            )));
        }
    }
    for (key, value) in [
        ("policy", &file.policy),
        ("acknowledgments", &file.acknowledgments),
        ("encryption", &file.encryption),
    ] {
        if let Some(v) = value
            && (!v.starts_with("https://")
                || v.chars().any(|ch| ch.is_control() || ch.is_whitespace()))
        {
            return Err(ConfigError(format!(
                "invalid security_txt.{key} `{v}`: use an https:// URL"
            )));
        }
    }
    if let Some(l) = &file.preferred_languages
        && l.chars().any(char::is_control)
    {
        return Err(ConfigError(
            "invalid security_txt.preferred_languages: one line, like `en, de`".to_owned(),
        ));
    }
    let expires = humantime::parse_rfc3339_weak(file.expires.trim())
        .map(Timestamp::from_system)
        .map_err(|_| {
            ConfigError(format!(
                "invalid security_txt.expires `{}`: use an RFC 3339 time, like 2027-06-30T00:00:00Z",
                file.expires
            ))
        })?;
    if expires <= now {
        return Err(ConfigError(format!(
            "security_txt.expires {} has passed: readers ignore an expired security.txt (RFC 9116 2.5.5)",
            expires.rfc3339_millis()
        )));
    }
    Ok(SecurityTxt {
        contact: file.contact,
        expires,
        policy: file.policy,
        acknowledgments: file.acknowledgments,
        preferred_languages: file.preferred_languages,
        encryption: file.encryption,
    })
}

fn resolve_identity(file: IdentityFile) -> Result<IdentityConfig, ConfigError> {
    use warden_identity::oidc::{OidcConfig, Provisioning, parse_algorithm};
    let duration = |key: &str, v: Option<String>, default: Duration| match v {
        None => Ok(default),
        Some(v) => humantime::parse_duration(v.trim())
            .ok()
            .filter(|d| *d >= Duration::from_secs(1))
            .ok_or_else(|| {
                ConfigError(format!(
                    "invalid duration `{v}` for `{key}`: at least 1s, like 30m or 12h"
                ))
            }),
    };
    let mut oidc = Vec::with_capacity(file.oidc.len());
    for p in file.oidc {
        let name = &p.name;
        let what = format!("identity provider `{name}`");
        if warden_model::GroupName::new(name.clone()).is_err() {
            return Err(ConfigError(format!(
                "invalid name `{name}` for an identity provider: use lowercase letters, digits, '.', '_' and '-'"
            )));
        }
        if oidc.iter().any(|o: &OidcConfig| &o.name == name) {
            return Err(ConfigError(format!(
                "two identity providers are named `{name}`"
            )));
        }
        match Url::parse(&p.issuer) {
            Ok(u) if u.scheme() == "https" => {}
            // Plain http only on this machine (tests, a local IdP).
            Ok(u)
                if u.scheme() == "http"
                    && matches!(u.host_str(), Some("127.0.0.1" | "localhost" | "[::1]")) => {}
            _ => {
                return Err(ConfigError(format!(
                    "invalid issuer `{}` for {what}: use an https:// URL",
                    p.issuer
                )));
            }
        }
        let client_secret = match (&p.client_secret_file, &p.client_secret_env) {
            (Some(_), Some(_)) => {
                return Err(ConfigError(format!(
                    "{what}: set client_secret_file or client_secret_env, not both"
                )));
            }
            (Some(path), None) => {
                let text = std::fs::read_to_string(path).map_err(|e| {
                    ConfigError(format!(
                        "{what}: cannot read client_secret_file {}: {}",
                        path.display(),
                        io_cause(&e)
                    ))
                })?;
                Some(warden_model::SecretString::new(text.trim().to_owned()))
            }
            (None, Some(var)) => Some(warden_model::SecretString::new(
                std::env::var(var)
                    .map_err(|_| {
                        ConfigError(format!(
                            "{what}: environment variable {var} (client_secret_env) is not set"
                        ))
                    })?
                    .trim()
                    .to_owned(),
            )),
            (None, None) => None,
        };
        let provisioning = match p.provisioning.as_deref() {
            None | Some("jit") => Provisioning::JustInTime,
            Some("scim") => Provisioning::ScimOnly,
            Some(other) => {
                return Err(ConfigError(format!(
                    "invalid provisioning `{other}` for {what}: use jit or scim"
                )));
            }
        };
        let algorithm_names = p
            .algorithms
            .unwrap_or_else(|| vec!["RS256".to_owned(), "ES256".to_owned()]);
        let mut algorithms = Vec::with_capacity(algorithm_names.len());
        for a in &algorithm_names {
            algorithms.push(parse_algorithm(a).ok_or_else(|| {
                ConfigError(format!(
                    "algorithm `{a}` is not accepted for {what}: use RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384 or EdDSA (never none or HMAC)"
                ))
            })?);
        }
        let mut scopes = p
            .scopes
            .unwrap_or_else(|| vec!["openid".into(), "email".into(), "profile".into()]);
        if !scopes.iter().any(|s| s == "openid") {
            scopes.insert(0, "openid".into());
        }
        oidc.push(OidcConfig {
            name: name.clone(),
            issuer: p.issuer,
            client_id: p.client_id,
            client_secret,
            scopes,
            groups_claim: p.groups_claim.unwrap_or_else(|| "groups".to_owned()),
            allowed_email_domains: p
                .allowed_email_domains
                .iter()
                .map(|d| d.to_ascii_lowercase())
                .collect(),
            provisioning,
            algorithms,
        });
    }
    let mut authenticators = Vec::with_capacity(file.authenticator.len());
    for a in file.authenticator {
        let ca_pem = std::fs::read(&a.ca_file).map_err(|e| {
            ConfigError(format!(
                "authenticator `{}`: cannot read ca_file {}: {}",
                a.name,
                a.ca_file.display(),
                io_cause(&e)
            ))
        })?;
        authenticators.push(warden_identity::passkey::AllowedAuthenticator {
            name: a.name,
            aaguid: a.aaguid,
            ca_pem,
        });
    }
    Ok(IdentityConfig {
        authenticators,
        oidc,
        session_lifetime: duration(
            "identity.session_lifetime",
            file.session_lifetime,
            Duration::from_secs(12 * 3600),
        )?,
        idle_timeout: duration(
            "identity.idle_timeout",
            file.idle_timeout,
            Duration::from_secs(30 * 60),
        )?,
        enrollment_link_ttl: duration(
            "identity.enrollment_link_ttl",
            file.enrollment_link_ttl,
            Duration::from_secs(24 * 3600),
        )?,
    })
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn load(
        file: Option<&str>,
        env: &[(&str, &str)],
        flags: Overrides,
    ) -> Result<Config, ConfigError> {
        let dir = tempfile::tempdir().unwrap();
        let mut flags = flags;
        if let Some(text) = file {
            let path = dir.path().join("warden.toml");
            std::fs::write(&path, text).unwrap();
            flags.config_file = Some(path);
        }
        let env: BTreeMap<String, String> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::load(&flags, |k| env.get(k).cloned()).map_err(|e| {
            // Make the messages independent of the temporary directory.
            ConfigError(e.0.replace(&dir.path().display().to_string(), "DIR"))
        })
    }

    #[test]
    fn defaults_for_dev() {
        let c = load(
            None,
            &[],
            Overrides {
                dev: true,
                ..Default::default()
            },
        )
        .unwrap();
        assert!(c.data_dir.ends_with(".warden"));
        assert_eq!(c.listen_http, "127.0.0.1:8080".parse().unwrap());
        assert_eq!(c.public_url.as_str(), "http://localhost:8080/");
        assert_eq!(c.limits, Limits::default());
        assert_eq!(c.log.format, LogFormat::Json);
    }

    #[test]
    fn flags_override_env_which_overrides_file() {
        let file = "data_dir = \"/from/file\"\n[listen]\nhttp = \"127.0.0.1:1111\"\n[limits]\nper_source_rps = 5\n";
        let env = [
            ("WARDEN_LISTEN_HTTP", "127.0.0.1:2222"),
            ("WARDEN_DATA_DIR", "/from/env"),
        ];
        let c = load(Some(file), &env, Overrides::default()).unwrap();
        assert_eq!(c.data_dir, PathBuf::from("/from/env"));
        assert_eq!(c.listen_http.port(), 2222);
        assert_eq!(c.limits.per_source_rps, 5);
        let flags = Overrides {
            listen: Some("127.0.0.1:3333".into()),
            ..Default::default()
        };
        let c = load(Some(file), &env, flags).unwrap();
        assert_eq!(c.listen_http.port(), 3333);
    }

    #[test]
    fn unknown_key_names_key_file_and_line() {
        let err = load(
            Some("data_dir = \"/x\"\n\n[limits]\nper_source_rsp = 5\n"),
            &[],
            Overrides::default(),
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "config file DIR/warden.toml line 4: unknown key `limits.per_source_rsp`"
        );
        let err = load(Some("colour = 1\n"), &[], Overrides::default()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "config file DIR/warden.toml line 1: unknown key `colour`"
        );
    }

    #[test]
    fn vulnerability_slas_and_security_txt() {
        let c = load(
            Some("[vuln]\nrestart_clock_on_rerate = true\n[vuln.sla.default]\nhigh = \"5d\"\ninformational = \"180d\"\n[vuln.sla.internet]\ncritical = \"12h\"\nlow = \"none\"\n[security_txt]\ncontact = [\"mailto:s@example.com\"]\nexpires = \"2099-01-01T00:00:00Z\"\n"),
            &[],
            Overrides::default(),
        )
        .unwrap();
        use warden_vuln::Severity::{Critical, High, Informational, Low};
        let hours = |h: u64| Some(Duration::from_secs(h * 3600));
        assert!(c.vuln.sla.restart_clock_on_rerate);
        let default = c.vuln.sla.policy("default");
        assert_eq!(
            (
                default.limit(Critical),
                default.limit(High),
                default.limit(Informational)
            ),
            (hours(24), hours(120), hours(4320))
        );
        // A tier inherits the default tier's limits it does not set.
        let internet = c.vuln.sla.policy("internet");
        assert_eq!(
            (
                internet.limit(Critical),
                internet.limit(High),
                internet.limit(Low)
            ),
            (hours(12), hours(120), None)
        );
        assert_eq!(c.security_txt.unwrap().contact, ["mailto:s@example.com"]);
        let err = |text: &str| {
            load(Some(text), &[], Overrides::default())
                .unwrap_err()
                .to_string()
        };
        assert_eq!(
            err("[vuln.sla.default]\nsevere = \"1d\"\n"),
            "vuln.sla.default: unknown severity `severe`: expected critical, high, medium, low or informational"
        );
        assert_eq!(
            err("[vuln.sla.default]\nhigh = \"soon\"\n"),
            "invalid duration `soon` for `vuln.sla.default.high`: at least 1s, like 24h or 30d, or `none`"
        );
        assert_eq!(
            err("[vuln.sla.\"Internet Facing\"]\nhigh = \"1d\"\n"),
            "invalid SLA tier name `Internet Facing`: use lowercase letters, digits, '.', '_' and '-'"
        );
        assert_eq!(
            err("[vuln]\nmax_import_bytes = 10\n"),
            "invalid `vuln.max_import_bytes` 10: between 1024 and 4 GiB"
        );
        assert_eq!(
            err(
                "[security_txt]\ncontact = [\"security@example.com\"]\nexpires = \"2099-01-01T00:00:00Z\"\n"
            ),
            "invalid security_txt.contact `security@example.com`: use a mailto:, https:// or tel: URI"
        );
        assert_eq!(
            err("[security_txt]\ncontact = []\nexpires = \"2099-01-01T00:00:00Z\"\n"),
            "security_txt.contact needs at least one mailto:, https:// or tel: URI"
        );
        assert_eq!(
            err(
                "[security_txt]\ncontact = [\"mailto:s@example.com\"]\nexpires = \"2020-01-01T00:00:00Z\"\n"
            ),
            "security_txt.expires 2020-01-01T00:00:00.000Z has passed: readers ignore an expired security.txt (RFC 9116 2.5.5)"
        );
        assert_eq!(
            err("[security_txt]\ncontact = [\"mailto:s@example.com\"]\nexpires = \"next year\"\n"),
            "invalid security_txt.expires `next year`: use an RFC 3339 time, like 2027-06-30T00:00:00Z"
        );
        assert_eq!(
            err(
                "[security_txt]\ncontact = [\"mailto:s@example.com\"]\nexpires = \"2099-01-01T00:00:00Z\"\npolicy = \"http://example.com\"\n"
            ),
            "invalid security_txt.policy `http://example.com`: use an https:// URL"
        );
    }

    #[test]
    fn wrong_type_names_key_file_and_line() {
        let err = load(
            Some("[limits]\nmax_body_bytes = \"big\"\n"),
            &[],
            Overrides::default(),
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "config file DIR/warden.toml line 2: key `limits.max_body_bytes`: invalid type: string \"big\", expected u64"
        );
    }

    #[test]
    fn bad_environment_values_are_refused() {
        let err = load(
            None,
            &[("WARDEN_LIMITS_PER_SOURCE_RPS", "fast")],
            Overrides::default(),
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "environment variable WARDEN_LIMITS_PER_SOURCE_RPS: expected a whole number for `limits.per_source_rps`, got `fast`"
        );
        let err = load(
            None,
            &[("WARDEN_LISTEN_HTTP", "localhost")],
            Overrides::default(),
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid listen address `localhost` for `listen.http`: use HOST:PORT, like 127.0.0.1:8080"
        );
    }

    #[test]
    fn missing_file_and_syntax_errors() {
        let flags = Overrides {
            config_file: Some("/nonexistent/w.toml".into()),
            ..Default::default()
        };
        let err = Config::load(&flags, |_| None).unwrap_err();
        assert_eq!(
            err.to_string(),
            "cannot read config file /nonexistent/w.toml: No such file or directory"
        );
        let err = load(Some("[limits\n"), &[], Overrides::default()).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("config file DIR/warden.toml line 1: "),
            "{err}"
        );
    }

    #[test]
    fn recordings_go_to_a_directory_or_a_bucket() {
        let dev = Overrides {
            dev: true,
            ..Overrides::default()
        };
        let c = load(
            None,
            &[("WARDEN_SSH_RECORDINGS", "s3://rec/warden")],
            dev.clone(),
        )
        .unwrap();
        assert_eq!(
            c.ssh.recordings,
            RecordingsLocation::Bucket {
                url: "s3://rec/warden".into(),
                spool: c.data_dir.join("recordings-spool"),
            }
        );
        let c = load(Some("[ssh]\nrecordings = \"/srv/rec\"\n"), &[], dev.clone()).unwrap();
        assert_eq!(c.ssh.recordings, RecordingsLocation::Dir("/srv/rec".into()));
        for bad in ["ftp://host/x", "s3://"] {
            let err = load(None, &[("WARDEN_SSH_RECORDINGS", bad)], dev.clone()).unwrap_err();
            assert_eq!(
                err.to_string(),
                format!("invalid `ssh.recordings` `{bad}`: a directory or s3://BUCKET[/PREFIX]")
            );
        }
    }

    #[test]
    fn every_key_can_be_set_from_the_environment() {
        for key in KEYS {
            let mut f = FileConfig::default();
            let value = match key {
                k if k.starts_with("limits.") && k.ends_with("timeout") => "5s",
                k if k.starts_with("audit.") => "5s",
                k if k.starts_with("limits.") => "7",
                "policy.starter" => "false",
                "ssh.idle_timeout" | "ssh.max_session" => "5s",
                _ => "x",
            };
            f.set(key, value, "test").unwrap();
        }
        assert_eq!(
            env_var("limits.per_source_rps"),
            "WARDEN_LIMITS_PER_SOURCE_RPS"
        );
    }

    proptest::proptest! {
        #[test]
        fn any_file_text_parses_or_fails_with_one_line(text in "\\PC{0,200}") {
            if let Err(e) = parse_file(Path::new("w.toml"), &text) {
                proptest::prop_assert!(e.to_string().starts_with("config file w.toml"));
            }
        }

        #[test]
        fn any_environment_value_is_taken_or_refused_with_the_variable(value in "\\PC{0,40}") {
            for key in KEYS {
                let mut f = FileConfig::default();
                if let Err(e) = f.set(key, &value, "environment variable X") {
                    proptest::prop_assert!(e.to_string().starts_with("environment variable X: "));
                }
            }
        }
    }
}
