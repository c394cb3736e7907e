//! From the file's shape to checked settings: every value parsed, defaulted and checked, one
//! section at a time, each refusal naming the key and the form it takes.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use url::Url;
use warden_model::Timestamp;
use warden_store::DatabaseLocation;

use super::file::{
    AgentFile, AuditFile, ComplianceFile, FileConfig, IdentityFile, LimitsFile, LogFile, MeshFile,
    ScimFile, SecurityTxtFile, SshFile, VulnFile, X509File,
};
use super::*;

impl FileConfig {
    /// Every setting, defaulted and checked, in the order the sections are listed.
    pub(super) fn resolve(self, dev: bool) -> Result<Config, ConfigError> {
        let data_dir = self
            .data_dir
            .unwrap_or_else(|| PathBuf::from(if dev { "./.warden" } else { "/var/lib/warden" }));
        let data_dir = absolute(&data_dir)?;
        let database = match &self.database_url {
            Some(url) => DatabaseLocation::parse(url).map_err(|e| ConfigError(e.to_string()))?,
            None => DatabaseLocation::in_data_dir(&data_dir),
        };
        let listen_http = address("listen.http", self.listen.http.as_deref(), "127.0.0.1:8080")?;
        let public_url = resolve_public_url(self.public_url.as_deref(), listen_http)?;
        let limits = resolve_limits(self.limits)?;
        let header = match &self.forwarded_header {
            Some(h) => warden_model::forwarded::ForwardedHeader::parse(h)
                .map_err(|e| ConfigError(e.to_string()))?,
            None => warden_model::forwarded::ForwardedHeader::default(),
        };
        let trusted_proxies =
            warden_model::forwarded::TrustedProxies::parse(&self.trusted_proxies, header)
                .map_err(|e| ConfigError(e.to_string()))?;
        let scim = resolve_scim(self.scim)?;
        let compliance_monitor_every = at_least_a_second(
            "compliance.monitor_every",
            self.compliance.monitor_every.clone(),
            Duration::from_secs(3600),
        )?;
        let review_schedules = resolve_review_schedules(&self.compliance.review_schedule)?;
        let compliance = resolve_compliance(self.compliance)?;
        let log = resolve_log(self.log)?;
        let audit = resolve_audit(self.audit, &public_url, &data_dir)?;
        let kek_file = self.kek_file.map(|file| absolute(&file)).transpose()?;
        let ssh = resolve_ssh(self.ssh, &data_dir)?;
        let listen_agent_mtls = address(
            "listen.agent_mtls",
            self.listen.agent_mtls.as_deref(),
            "127.0.0.1:8443",
        )?;
        let listen_ssh_proxy = address(
            "listen.ssh_proxy",
            self.listen.ssh_proxy.as_deref(),
            "127.0.0.1:3022",
        )?;
        let x509 = resolve_x509(self.x509, &public_url)?;
        let agent = resolve_agent(self.agent)?;
        let mesh = resolve_mesh(self.mesh)?;
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
            compliance,
            compliance_monitor_every,
            review_schedules,
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

/// A listen address, `HOST:PORT`.
fn address(key: &str, value: Option<&str>, default: &str) -> Result<SocketAddr, ConfigError> {
    let value = value.unwrap_or(default);
    value.parse().map_err(|_| {
        ConfigError(format!(
            "invalid listen address `{value}` for `{key}`: use HOST:PORT, like {default}"
        ))
    })
}

/// The public URL, or one made from the HTTP listener's address.
fn resolve_public_url(value: Option<&str>, listen_http: SocketAddr) -> Result<Url, ConfigError> {
    let public_url = match value {
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
    Ok(public_url)
}

/// `v` as a duration for `key` that `fits`; otherwise the one-line refusal, which says what
/// to write (`hint`). Every duration setting is read through here.
fn duration(
    key: &str,
    v: &str,
    fits: impl Fn(Duration) -> bool,
    hint: &str,
) -> Result<Duration, ConfigError> {
    humantime::parse_duration(v.trim())
        .ok()
        .filter(|d| fits(*d))
        .ok_or_else(|| ConfigError(format!("invalid duration `{v}` for `{key}`: {hint}")))
}

/// `value` as a duration for `key` of at least `min` (`default` when unset).
fn at_least(
    key: &str,
    value: Option<String>,
    (min, hint): (Duration, &str),
    default: Duration,
) -> Result<Duration, ConfigError> {
    match value {
        None => Ok(default),
        Some(v) => duration(key, &v, |d| d >= min, hint),
    }
}

/// The shortest duration that is not zero.
const NOT_ZERO: Duration = Duration::from_nanos(1);

/// A duration that is not zero, for `limits.KEY`.
fn limit_duration(
    key: &str,
    value: Option<String>,
    default: Duration,
) -> Result<Duration, ConfigError> {
    let hint = "use a number and a unit, like 10s or 1m";
    at_least(&format!("limits.{key}"), value, (NOT_ZERO, hint), default)
}

/// A duration that is not zero.
fn positive(key: &str, v: &str) -> Result<Duration, ConfigError> {
    duration(
        key,
        v,
        |d| d >= NOT_ZERO,
        "use a number and a unit, like 1s or 365d",
    )
}

/// A session limit: `0s` turns it off (`None`).
fn session_limit(
    key: &str,
    value: Option<String>,
    default: u64,
) -> Result<Option<Duration>, ConfigError> {
    let Some(v) = value else {
        return Ok(Some(Duration::from_secs(default)));
    };
    let limit = duration(key, &v, |_| true, "like 30m or 12h, or 0s for no limit")?;
    Ok((!limit.is_zero()).then_some(limit))
}

/// A lifetime of at least a second.
fn at_least_a_second(
    key: &str,
    value: Option<String>,
    default: Duration,
) -> Result<Duration, ConfigError> {
    let hint = "at least 1s, like 24h or 30d";
    at_least(key, value, (Duration::from_secs(1), hint), default)
}

fn resolve_limits(l: LimitsFile) -> Result<Limits, ConfigError> {
    let defaults = Limits::default();
    let limits = Limits {
        per_source_rps: l.per_source_rps.unwrap_or(defaults.per_source_rps),
        per_source_burst: l.per_source_burst.unwrap_or(defaults.per_source_burst),
        max_body_bytes: match l.max_body_bytes {
            Some(n) => usize::try_from(n)
                .map_err(|_| ConfigError(format!("`limits.max_body_bytes` is too large: {n}")))?,
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
        header_timeout: limit_duration(
            "header_timeout",
            l.header_timeout,
            defaults.header_timeout,
        )?,
        request_timeout: limit_duration(
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
            "`limits.per_token_burst` must be at least 1 when per-token limits are on".to_owned(),
        ));
    }
    if limits.per_source_rps > 0 && limits.per_source_burst == 0 {
        return Err(ConfigError(
            "`limits.per_source_burst` must be at least 1 when rate limiting is on".to_owned(),
        ));
    }
    Ok(limits)
}

fn resolve_log(file: LogFile) -> Result<LogConfig, ConfigError> {
    let format = match file.format.as_deref() {
        None | Some("json") => LogFormat::Json,
        Some("text") => LogFormat::Text,
        Some(other) => {
            return Err(ConfigError(format!(
                "invalid value `{other}` for `log.format`: use json or text"
            )));
        }
    };
    Ok(LogConfig {
        level: file.level.unwrap_or_else(|| "info".to_owned()),
        format,
    })
}

fn resolve_audit(
    file: AuditFile,
    public_url: &Url,
    data_dir: &Path,
) -> Result<AuditConfig, ConfigError> {
    let origin = match file.origin {
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
    let interval = match file.checkpoint_interval {
        None => Duration::from_secs(10),
        Some(v) => duration(
            "audit.checkpoint_interval",
            &v,
            |d| !d.is_zero() && d <= Duration::from_secs(10),
            "use 100ms to 10s",
        )?,
    };
    check_sinks(&file.sink)?;
    let retention = file
        .retention
        .as_deref()
        .map(|v| positive("audit.retention", v))
        .transpose()?;
    let retention_check = match file.retention_check.as_deref() {
        Some(v) => positive("audit.retention_check", v)?,
        None => Duration::from_secs(3600),
    };
    let archive_dir = match file.archive_dir {
        Some(dir) => absolute(&dir)?,
        None => data_dir.join("audit-archive"),
    };
    Ok(AuditConfig {
        retention,
        retention_check,
        archive_dir,
        sinks: file.sink,
        origin,
        checkpoint_interval: interval,
    })
}

/// Sink names are unique and plain; a syslog sink has `HOST:PORT`, and a CA when it uses TLS.
fn check_sinks(sinks: &[SinkConfig]) -> Result<(), ConfigError> {
    let mut names = std::collections::BTreeSet::new();
    for sink in sinks {
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
    Ok(())
}

fn resolve_ssh(file: SshFile, data_dir: &Path) -> Result<SshConfig, ConfigError> {
    let max_ttl = at_least(
        "ssh.max_ttl",
        file.max_ttl,
        (Duration::from_secs(60), "at least 1m, like 8h"),
        Duration::from_secs(8 * 3600),
    )?;
    Ok(SshConfig {
        idle_timeout: session_limit("ssh.idle_timeout", file.idle_timeout, 3600)?,
        max_session: session_limit("ssh.max_session", file.max_session, 24 * 3600)?,
        proxy_lease: at_least(
            "ssh.proxy_lease",
            file.proxy_lease,
            (Duration::from_secs(1), "at least 1s, like 30s or 1m"),
            Duration::from_secs(30),
        )?,
        recordings: match file.recordings {
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
        group_logins: file.group_logins,
        port_forwarding_groups: file.port_forwarding_groups,
    })
}

fn resolve_x509(file: X509File, public_url: &Url) -> Result<X509Config, ConfigError> {
    let trust_domain = match file.trust_domain {
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
    Ok(X509Config {
        trust_domain,
        max_ttl: at_least_a_second(
            "x509.max_ttl",
            file.max_ttl,
            Duration::from_secs(7 * 86_400),
        )?,
    })
}

fn resolve_agent(file: AgentFile) -> Result<AgentConfig, ConfigError> {
    Ok(AgentConfig {
        host_cert_ttl: at_least_a_second(
            "agent.host_cert_ttl",
            file.host_cert_ttl,
            Duration::from_secs(30 * 86_400),
        )?,
        client_cert_ttl: at_least_a_second(
            "agent.client_cert_ttl",
            file.client_cert_ttl,
            Duration::from_secs(7 * 86_400),
        )?,
        offline_after: at_least_a_second(
            "agent.offline_after",
            file.offline_after,
            Duration::from_secs(180),
        )?,
    })
}

fn resolve_mesh(file: MeshFile) -> Result<MeshConfig, ConfigError> {
    Ok(MeshConfig {
        ranges: warden_mesh::MeshRanges::new(
            file.ipv4_range
                .as_deref()
                .unwrap_or(warden_mesh::range::DEFAULT_IPV4),
            file.ipv6_range
                .as_deref()
                .unwrap_or(warden_mesh::range::DEFAULT_IPV6),
        )
        .map_err(|e| ConfigError(format!("mesh: {e}")))?,
        device_key_ttl: at_least_a_second(
            "mesh.device_key_ttl",
            file.device_key_ttl,
            Duration::from_secs(7 * 86_400),
        )?,
        host_key_ttl: at_least_a_second(
            "mesh.host_key_ttl",
            file.host_key_ttl,
            Duration::from_secs(30 * 86_400),
        )?,
        signin_max_age: at_least_a_second(
            "mesh.signin_max_age",
            file.signin_max_age,
            Duration::from_secs(15 * 60),
        )?,
    })
}

fn at_least_one(key: &str, value: Option<u32>, default: usize) -> Result<usize, ConfigError> {
    match value {
        Some(0) => Err(ConfigError(format!("`{key}` must be at least 1"))),
        Some(n) => Ok(usize::try_from(n).unwrap_or(usize::MAX)),
        None => Ok(default),
    }
}

fn resolve_review_schedules(
    files: &[super::file::ReviewScheduleFile],
) -> Result<Vec<ReviewSchedule>, ConfigError> {
    files
        .iter()
        .enumerate()
        .map(|(i, f)| {
            let at =
                |m: String| ConfigError(format!("`compliance.review_schedule` {}: {m}", i + 1));
            Ok(ReviewSchedule {
                scope: warden_store::ReviewScope::parse(&f.scope).map_err(at)?,
                every: positive("compliance.review_schedule.every", &f.every)?,
                reviewer: warden_store::ReviewerRule::parse(&f.reviewer).map_err(at)?,
                due: match &f.due {
                    Some(d) => positive("compliance.review_schedule.due", d)?,
                    None => Duration::from_secs(14 * 24 * 3600),
                },
                auto_revoke: f.auto_revoke.unwrap_or(false),
            })
        })
        .collect()
}

fn resolve_compliance(file: ComplianceFile) -> Result<warden_compliance::Parameters, ConfigError> {
    let defaults = warden_compliance::Parameters::default();
    let millis = |key: &str, value: Option<String>, default: i64| match value {
        None => Ok(default),
        Some(v) => positive(&format!("compliance.{key}"), &v)
            .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX)),
    };
    Ok(warden_compliance::Parameters {
        enrollment_window: millis(
            "enrollment_window",
            file.enrollment_window,
            defaults.enrollment_window,
        )?,
        deprovision_within: millis(
            "deprovision_within",
            file.deprovision_within,
            defaults.deprovision_within,
        )?,
        grant_grace: millis("grant_grace", file.grant_grace, defaults.grant_grace)?,
        review_every: millis("review_every", file.review_every, defaults.review_every)?,
        checkpoint_gap: millis(
            "checkpoint_gap",
            file.checkpoint_gap,
            defaults.checkpoint_gap,
        )?,
        ..defaults
    })
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
                Some(duration(
                    &format!("vuln.sla.{tier}.{name}"),
                    value,
                    |d| d >= Duration::from_secs(1),
                    "at least 1s, like 24h or 30d, or `none`",
                )?)
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
        figures_every: at_least_a_second(
            "vuln.figures_every",
            file.figures_every,
            VulnConfig::default().figures_every,
        )?,
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
    let duration = |key: &str, v: Option<String>, default: Duration| {
        let hint = "at least 1s, like 30m or 12h";
        at_least(key, v, (Duration::from_secs(1), hint), default)
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
