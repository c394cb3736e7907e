//! Settings as they are in force: identity providers, passkey policy, sessions, audit sinks
//! (webhooks among them), the SLA policy and the mesh. Read-only: they come from the
//! configuration file, which is where they are changed. No secret is kept here: client
//! secrets are left out and a webhook's URL is shown as its scheme and host only (chat
//! webhooks carry a secret in the path).
#![expect(
    clippy::indexing_slicing,
    reason = "reading serde_json::Value by key or position gives Null when absent; it never panics"
)]

use std::time::Duration;

use axum::extract::State;
use axum::response::Response;
use maud::html;
use serde_json::json;

use super::{Parts, Section, allowed, text};
use crate::Web;
use crate::config::{Config, SinkConfig};

/// What the settings page shows, taken from the configuration at start.
#[derive(Debug, Clone)]
pub struct Settings {
    providers: Vec<Provider>,
    authenticators: Vec<(String, String)>,
    session_lifetime: Duration,
    idle_timeout: Duration,
    sinks: Vec<(String, &'static str, String)>,
    mesh: (String, String),
}

#[derive(Debug, Clone)]
struct Provider {
    name: String,
    issuer: String,
    client_id: String,
    groups_claim: String,
    provisioning: &'static str,
    domains: Vec<String>,
}

/// `https://hooks.example.com/…`: enough to tell where it goes, nothing of a secret path.
fn origin_of(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(u) => format!("{}://{}/…", u.scheme(), u.host_str().unwrap_or("?")),
        Err(_) => "(invalid URL)".to_owned(),
    }
}

impl Settings {
    /// Whether an OpenID Connect provider is configured.
    pub fn has_identity_provider(&self) -> bool {
        !self.providers.is_empty()
    }

    /// What the settings page shows of `config`, without its secrets.
    pub fn new(config: &Config) -> Settings {
        let providers = config
            .identity
            .oidc
            .iter()
            .map(|p| Provider {
                name: p.name.clone(),
                issuer: p.issuer.clone(),
                client_id: p.client_id.clone(),
                groups_claim: p.groups_claim.clone(),
                provisioning: match p.provisioning {
                    warden_identity::oidc::Provisioning::JustInTime => "just in time",
                    warden_identity::oidc::Provisioning::ScimOnly => "SCIM only",
                },
                domains: p.allowed_email_domains.clone(),
            })
            .collect();
        let sinks = config
            .audit
            .sinks
            .iter()
            .map(|s| match s {
                SinkConfig::Jsonl { name, dir, .. } => {
                    (name.clone(), "JSON lines", dir.display().to_string())
                }
                SinkConfig::Syslog {
                    name, address, tls, ..
                } => (
                    name.clone(),
                    if *tls { "syslog over TLS" } else { "syslog" },
                    address.clone(),
                ),
                SinkConfig::Webhook {
                    name,
                    url,
                    format,
                    actions,
                } => (
                    name.clone(),
                    "webhook",
                    format!(
                        "{} ({format}; {})",
                        origin_of(url),
                        if actions.is_empty() {
                            "every action".to_owned()
                        } else {
                            actions.join(", ")
                        }
                    ),
                ),
                SinkConfig::Otlp { name, endpoint, .. } => {
                    (name.clone(), "OpenTelemetry", origin_of(endpoint))
                }
            })
            .collect();
        Settings {
            providers,
            authenticators: config
                .identity
                .authenticators
                .iter()
                .map(|a| (a.name.clone(), a.aaguid.clone()))
                .collect(),
            session_lifetime: config.identity.session_lifetime,
            idle_timeout: config.identity.idle_timeout,
            sinks,
            mesh: (
                config.mesh.ranges.ipv4().to_string(),
                config.mesh.ranges.ipv6().to_string(),
            ),
        }
    }
}

fn span(d: Duration) -> String {
    super::spoken(d)
}

/// `GET /console/settings`.
pub(crate) async fn show(State(app): State<Web>, parts: Parts) -> Response {
    // The SLA policy is shown to those who may read findings.
    let q = "query($vulns: Boolean!) { vulnSlaPolicy @include(if: $vulns) {
      restartClockOnRerate tiers { tier limits { severity seconds } } } }";
    let v = match allowed(&app, parts, Section::Settings).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let vulns = v.sections.contains(&Section::Vulns);
    let data = match v.graphql(&app, q, json!({ "vulns": vulns })).await {
        Ok(d) => d,
        Err(f) => return v.failed(Section::Settings, f),
    };
    let s = &app.settings;
    let empty = Vec::new();
    let body = html! {
        p.muted { "These come from the configuration file; change them there and restart." }
        h2 { "Identity providers" }
        @if s.providers.is_empty() { p.muted { "None: people sign in with passkeys on local accounts." } } @else {
            div.scroll { table #providers {
                thead { tr { th scope="col" { "Name" } th scope="col" { "Issuer" } th scope="col" { "Client id" } th scope="col" { "Groups claim" } th scope="col" { "Accounts" } th scope="col" { "Email domains" } } }
                tbody { @for p in &s.providers {
                    tr { td { (p.name) } td { code { (p.issuer) } } td { code { (p.client_id) } } td { code { (p.groups_claim) } }
                         td { (p.provisioning) } td { @if p.domains.is_empty() { "any" } @else { (p.domains.join(", ")) } } }
                } }
            } }
        }
        h2 { "Passkeys and sessions" }
        p { "Every person signs in with a passkey after the identity provider. "
            @if s.authenticators.is_empty() { "Any authenticator is accepted." }
            @else { "Only these authenticator models are accepted (attested): " @for (name, aaguid) in &s.authenticators { (name) " (" code { (aaguid) } ") " } } }
        p { "Sessions last " (span(s.session_lifetime)) " and end after " (span(s.idle_timeout)) " idle." }
        h2 { "Audit sinks and webhooks" }
        @if s.sinks.is_empty() { p.muted { "No sink: events stay in the database and its exports." } } @else {
            div.scroll { table #sinks {
                thead { tr { th scope="col" { "Name" } th scope="col" { "Kind" } th scope="col" { "Destination" } } }
                tbody { @for (name, kind, dest) in &s.sinks { tr { td { (name) } td { (kind) } td { (dest) } } } }
            } }
        }
        @if vulns {
        h2 { "Vulnerability SLAs" }
        @let policy = &data["vulnSlaPolicy"];
        div.scroll { table #sla {
            thead { tr { th scope="col" { "Tier" } @for sev in ["critical", "high", "medium", "low", "informational"] { th scope="col" { (sev) } } } }
            tbody { @for t in policy["tiers"].as_array().unwrap_or(&empty) {
                tr { td { (text(&t["tier"])) }
                    @for l in t["limits"].as_array().unwrap_or(&empty) {
                        td { @match l["seconds"].as_u64() { Some(secs) => (span(Duration::from_secs(secs))), None => span.muted { "none" } } }
                    } }
            } }
        } }
        p { "Re-rating a finding " @if policy["restartClockOnRerate"] == true { "restarts" } @else { "does not restart" } " its SLA clock." }
        }
        h2 { "WireGuard mesh" }
        p { "Addresses from " code { (s.mesh.0) } " and " code { (s.mesh.1) } "." }
    };
    v.ok(Section::Settings, "Settings", body)
}
