//! The configuration file's shape, as TOML gives it, and how one key is set from the
//! environment or a flag. Nothing here is checked beyond its type: `resolve` checks values.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::{ConfigError, SinkConfig, io_cause};

/// The file's shape. Every key is optional; the defaults fill the gaps.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct FileConfig {
    pub(super) data_dir: Option<PathBuf>,
    pub(super) database_url: Option<String>,
    pub(super) public_url: Option<String>,
    pub(super) kek_file: Option<PathBuf>,
    pub(super) listen: ListenFile,
    pub(super) limits: LimitsFile,
    pub(super) log: LogFile,
    pub(super) audit: AuditFile,
    pub(super) ssh: SshFile,
    pub(super) x509: X509File,
    pub(super) agent: AgentFile,
    pub(super) mesh: MeshFile,
    pub(super) identity: IdentityFile,
    pub(super) policy: PolicyFile,
    pub(super) vuln: VulnFile,
    pub(super) security_txt: Option<SecurityTxtFile>,
    pub(super) trusted_proxies: Vec<String>,
    pub(super) forwarded_header: Option<String>,
    pub(super) scim: ScimFile,
    pub(super) compliance: ComplianceFile,
}

/// `[compliance]`: the limits the compliance tests hold the evidence to.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct ComplianceFile {
    pub(super) enrollment_window: Option<String>,
    pub(super) deprovision_within: Option<String>,
    pub(super) grant_grace: Option<String>,
    pub(super) review_every: Option<String>,
    pub(super) checkpoint_gap: Option<String>,
    pub(super) monitor_every: Option<String>,
    pub(super) review_schedule: Vec<ReviewScheduleFile>,
}

/// `[[compliance.review_schedule]]`: a campaign opened by itself every so often.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ReviewScheduleFile {
    pub(super) scope: String,
    pub(super) every: String,
    pub(super) reviewer: String,
    pub(super) due: Option<String>,
    pub(super) auto_revoke: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct ScimFile {
    pub(super) adopt_groups: Vec<String>,
    pub(super) per_token_rps: Option<u32>,
    pub(super) per_token_burst: Option<u32>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct VulnFile {
    pub(super) restart_clock_on_rerate: Option<bool>,
    pub(super) max_import_bytes: Option<u64>,
    pub(super) figures_every: Option<String>,
    /// Tier name → severity → duration or `none`.
    pub(super) sla: std::collections::BTreeMap<String, std::collections::BTreeMap<String, String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct SecurityTxtFile {
    pub(super) contact: Vec<String>,
    pub(super) expires: String,
    pub(super) policy: Option<String>,
    pub(super) acknowledgments: Option<String>,
    pub(super) preferred_languages: Option<String>,
    pub(super) encryption: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct PolicyFile {
    pub(super) starter: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct IdentityFile {
    pub(super) oidc: Vec<OidcFile>,
    pub(super) session_lifetime: Option<String>,
    pub(super) idle_timeout: Option<String>,
    pub(super) enrollment_link_ttl: Option<String>,
    pub(super) authenticator: Vec<AuthenticatorFile>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct AuthenticatorFile {
    pub(super) name: String,
    pub(super) aaguid: String,
    pub(super) ca_file: PathBuf,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct OidcFile {
    pub(super) name: String,
    pub(super) issuer: String,
    pub(super) client_id: String,
    pub(super) client_secret_file: Option<PathBuf>,
    pub(super) client_secret_env: Option<String>,
    #[serde(default)]
    pub(super) scopes: Option<Vec<String>>,
    #[serde(default)]
    pub(super) groups_claim: Option<String>,
    #[serde(default)]
    pub(super) allowed_email_domains: Vec<String>,
    #[serde(default)]
    pub(super) provisioning: Option<String>,
    #[serde(default)]
    pub(super) algorithms: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct X509File {
    pub(super) trust_domain: Option<String>,
    pub(super) max_ttl: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct AgentFile {
    pub(super) host_cert_ttl: Option<String>,
    pub(super) client_cert_ttl: Option<String>,
    pub(super) offline_after: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct MeshFile {
    pub(super) ipv4_range: Option<String>,
    pub(super) ipv6_range: Option<String>,
    pub(super) device_key_ttl: Option<String>,
    pub(super) host_key_ttl: Option<String>,
    pub(super) signin_max_age: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct SshFile {
    pub(super) max_ttl: Option<String>,
    pub(super) group_logins: std::collections::BTreeMap<String, Vec<String>>,
    pub(super) port_forwarding_groups: Vec<String>,
    pub(super) idle_timeout: Option<String>,
    pub(super) max_session: Option<String>,
    pub(super) recordings: Option<String>,
    pub(super) proxy_lease: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct AuditFile {
    pub(super) origin: Option<String>,
    pub(super) checkpoint_interval: Option<String>,
    pub(super) retention: Option<String>,
    pub(super) archive_dir: Option<PathBuf>,
    pub(super) retention_check: Option<String>,
    pub(super) sink: Vec<SinkConfig>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct ListenFile {
    pub(super) http: Option<String>,
    pub(super) agent_mtls: Option<String>,
    pub(super) ssh_proxy: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct LimitsFile {
    pub(super) per_source_rps: Option<u32>,
    pub(super) per_source_burst: Option<u32>,
    pub(super) max_body_bytes: Option<u64>,
    pub(super) max_connections: Option<u32>,
    pub(super) header_timeout: Option<String>,
    pub(super) request_timeout: Option<String>,
    pub(super) per_source_connections: Option<u32>,
    pub(super) per_token_rps: Option<u32>,
    pub(super) per_token_burst: Option<u32>,
    pub(super) imports_per_source: Option<u32>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct LogFile {
    pub(super) level: Option<String>,
    pub(super) format: Option<String>,
}

pub(super) fn read_file(path: &Path) -> Result<FileConfig, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        ConfigError(format!(
            "cannot read config file {}: {}",
            path.display(),
            io_cause(&e)
        ))
    })?;
    parse_file(path, &text)
}

pub(super) fn parse_file(path: &Path, text: &str) -> Result<FileConfig, ConfigError> {
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
    pub(super) fn set(&mut self, key: &str, value: &str, origin: &str) -> Result<(), ConfigError> {
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
            "compliance.enrollment_window" => {
                self.compliance.enrollment_window = Some(value.to_owned());
            }
            "compliance.deprovision_within" => {
                self.compliance.deprovision_within = Some(value.to_owned());
            }
            "compliance.grant_grace" => self.compliance.grant_grace = Some(value.to_owned()),
            "compliance.review_every" => self.compliance.review_every = Some(value.to_owned()),
            "compliance.checkpoint_gap" => {
                self.compliance.checkpoint_gap = Some(value.to_owned());
            }
            "compliance.monitor_every" => {
                self.compliance.monitor_every = Some(value.to_owned());
            }
            "ssh.max_ttl" => self.ssh.max_ttl = Some(value.to_owned()),
            "ssh.idle_timeout" => self.ssh.idle_timeout = Some(value.to_owned()),
            "ssh.max_session" => self.ssh.max_session = Some(value.to_owned()),
            "ssh.proxy_lease" => self.ssh.proxy_lease = Some(value.to_owned()),
            "ssh.recordings" => self.ssh.recordings = Some(value.to_owned()),
            "x509.trust_domain" => self.x509.trust_domain = Some(value.to_owned()),
            "x509.max_ttl" => self.x509.max_ttl = Some(value.to_owned()),
            "agent.host_cert_ttl" => self.agent.host_cert_ttl = Some(value.to_owned()),
            "agent.client_cert_ttl" => self.agent.client_cert_ttl = Some(value.to_owned()),
            "agent.offline_after" => self.agent.offline_after = Some(value.to_owned()),
            "vuln.figures_every" => self.vuln.figures_every = Some(value.to_owned()),
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
}
