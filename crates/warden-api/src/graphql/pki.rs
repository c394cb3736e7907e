//! X.509 workload certificates, CA rotation and host join tokens over GraphQL.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_graphql::{Context, Object, SimpleObject};
use rand::rngs::OsRng;
use warden_model::{HostName, Timestamp};
use warden_pki::x509::{SpiffeId, SubjectKey, parse_csr};
use warden_store::{NewJoinToken, Store};

use super::Capability;
use super::authz::authorize;
use super::{Caller, api_error, bad_input, forbidden};
use crate::ca::{Authorities, CaKind, IssueError};
use crate::config::{AgentConfig, SshConfig, X509Config};

/// Workload certificates live this long unless asked otherwise.
pub const DEFAULT_X509_TTL: Duration = Duration::from_secs(24 * 3600);

/// An issued X.509 certificate.
#[derive(Debug, Clone, SimpleObject)]
pub struct X509Certificate {
    /// Serial, decimal.
    pub serial: String,
    /// The SPIFFE id in its URI SAN.
    pub spiffe_id: String,
    /// The certificate, PEM.
    pub certificate: String,
    /// The issuing CA's certificate, PEM: present it after your own.
    pub chain: String,
    /// The trusted roots, PEM (also at `/v1/x509/bundle.pem`).
    pub bundle: String,
    /// When it stops working, RFC 3339.
    pub not_after: String,
}

/// A join token, shown once.
#[derive(Debug, Clone, SimpleObject)]
pub struct JoinToken {
    /// The token for `warden agent --join-token`. It works once.
    pub token: String,
    /// The host it admits.
    pub host: String,
    /// When it stops working, RFC 3339.
    pub expires_at: String,
}

/// The result of a rotation.
#[derive(Debug, Clone, SimpleObject)]
pub struct Rotation {
    /// Which CA.
    pub kind: String,
    /// The new public keys (or, for x509, the new root and issuing certificates).
    pub new_keys: Vec<String>,
    /// Until when the old keys stay trusted, RFC 3339.
    pub old_keys_trusted_until: String,
}

/// Parses `k=v` labels: keys of letters, digits, '.', '_', '-' and '/' (up to 63 bytes),
/// values of letters, digits, '.', '_' and '-' (up to 63 bytes).
pub fn parse_labels(labels: &[String]) -> Result<BTreeMap<String, String>, String> {
    let mut out = BTreeMap::new();
    for label in labels {
        let (k, v) = label
            .split_once('=')
            .ok_or_else(|| format!("invalid label `{}`: use key=value", shown(label)))?;
        let key_ok = !k.is_empty()
            && k.len() <= 63
            && k.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'/'));
        let value_ok = v.len() <= 63
            && v.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
        if !key_ok || !value_ok {
            return Err(format!(
                "invalid label `{}`: keys use letters, digits, '.', '_', '-', '/'; values letters, digits, '.', '_', '-' (63 bytes each)",
                shown(label)
            ));
        }
        if out.insert(k.to_owned(), v.to_owned()).is_some() {
            return Err(format!("label `{k}` is given twice"));
        }
    }
    Ok(out)
}

/// Parses host addresses: IP addresses or DNS names clients use for the host.
pub fn parse_addresses(addresses: &[String]) -> Result<Vec<String>, String> {
    let mut out = Vec::with_capacity(addresses.len());
    for a in addresses {
        let ok = a.parse::<std::net::IpAddr>().is_ok()
            || (!a.is_empty()
                && a.len() <= 253
                && a.bytes().all(|b| {
                    b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'-')
                }));
        if !ok {
            return Err(format!(
                "invalid address `{}`: use an IP address or a lowercase DNS name",
                shown(a)
            ));
        }
        out.push(a.clone());
    }
    out.sort();
    out.dedup();
    Ok(out)
}

fn shown(s: &str) -> String {
    s.chars().take(64).flat_map(char::escape_debug).collect()
}

/// Parses a lifetime of at least a second (`30s`, `24h`).
fn lifetime(field: &str, value: &str) -> async_graphql::Result<Duration> {
    humantime::parse_duration(value.trim())
        .ok()
        .filter(|d| *d >= Duration::from_secs(1))
        .ok_or_else(|| {
            bad_input(format!(
                "invalid duration `{}` for `{field}`: use a number and a unit, like 90s, 12h or 7d",
                shown(value)
            ))
        })
}

fn issue_error(e: IssueError, caller: &Caller) -> async_graphql::Error {
    match e {
        IssueError::Request(e) => bad_input(e),
        IssueError::X509(e) => bad_input(e),
        IssueError::Store(e) => api_error(e, caller),
    }
}

/// A joined host.
#[derive(Debug, Clone, SimpleObject)]
pub struct HostInfo {
    /// Its name.
    pub name: String,
    /// Labels, `key=value`.
    pub labels: Vec<String>,
    /// Further names and addresses in its host certificate.
    pub addresses: Vec<String>,
    /// Where its sshd listens.
    pub sshd_addr: Option<String>,
    /// When it last joined, RFC 3339.
    pub joined_at: String,
    /// When its agent last reached Warden over mutual TLS (or it joined), RFC 3339.
    pub last_contact_at: String,
    /// Whether its agent was heard from within `agent.offline_after` (default 3m).
    pub online: bool,
    /// The agent's version, as it last said; null before it said.
    pub agent_version: Option<String>,
    /// When its newest unrevoked client certificate expires, RFC 3339; null when none is
    /// left (it must join again).
    pub certificate_expires_at: Option<String>,
}

/// Hosts.
#[derive(Debug, Default)]
pub struct HostQuery;

#[Object]
impl HostQuery {
    /// Every joined host, by name.
    async fn hosts(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<HostInfo>> {
        let caller = authorize(ctx, Capability::ReadDirectory, "hosts").await?;
        let store = ctx.data::<Arc<Store>>()?;
        let hosts = store.hosts().await.map_err(|e| api_error(e, caller))?;
        // Health costs a read per host: only when a health field is asked for.
        let look = ctx.look_ahead();
        let wants_health = [
            "lastContactAt",
            "online",
            "agentVersion",
            "certificateExpiresAt",
        ]
        .iter()
        .any(|f| look.field(f).exists());
        let health: BTreeMap<String, warden_store::HostHealth> = if wants_health {
            let prefix = format!(
                "spiffe://{}/host/",
                ctx.data::<Authorities>()?.trust_domain()
            );
            store
                .host_health(&prefix)
                .await
                .map_err(|e| api_error(e, caller))?
                .into_iter()
                .map(|h| (h.name.clone(), h))
                .collect()
        } else {
            BTreeMap::new()
        };
        let offline_after = ctx.data::<AgentConfig>()?.offline_after;
        let now = caller.audit.now;
        Ok(hosts
            .into_iter()
            .map(|h| {
                let health = health.get(&h.name);
                let last = health.map_or(h.joined_at, |x| x.last_contact);
                HostInfo {
                    labels: h.labels.iter().map(|(k, v)| format!("{k}={v}")).collect(),
                    addresses: h.addresses,
                    sshd_addr: h.sshd_addr,
                    joined_at: h.joined_at.to_string(),
                    last_contact_at: last.to_string(),
                    online: now.as_millis().saturating_sub(last.as_millis())
                        <= i64::try_from(offline_after.as_millis()).unwrap_or(i64::MAX),
                    agent_version: health.and_then(|x| x.agent_version.clone()),
                    certificate_expires_at: health
                        .and_then(|x| x.certificate_expires_at)
                        .map(|t| t.to_string()),
                    name: h.name,
                }
            })
            .collect())
    }
}

/// PKI changes.
#[derive(Debug, Default)]
pub struct PkiMutation;

#[Object]
impl PkiMutation {
    /// Signs a workload certificate for the key in `csr` (PEM), naming `spiffeId` in its URI
    /// SAN, for `ttl` (default 24h, at most `x509.max_ttl`). Only the CSR's public key is used.
    async fn issue_x509_certificate(
        &self,
        ctx: &Context<'_>,
        csr: String,
        spiffe_id: String,
        ttl: Option<String>,
    ) -> async_graphql::Result<X509Certificate> {
        let caller = authorize(ctx, Capability::IssueWorkloadCertificates, "x509-cert").await?;
        let config = ctx.data::<X509Config>()?;
        let ttl = match ttl {
            Some(t) => lifetime("ttl", &t)?,
            None => DEFAULT_X509_TTL.min(config.max_ttl),
        };
        if ttl > config.max_ttl {
            return Err(bad_input(format!(
                "ttl exceeds x509.max_ttl ({})",
                humantime::format_duration(config.max_ttl)
            )));
        }
        let id: SpiffeId = spiffe_id.parse().map_err(bad_input)?;
        let key = parse_csr(&csr).map_err(bad_input)?;
        let authorities = ctx.data::<Authorities>()?;
        if id.trust_domain() != authorities.trust_domain() {
            return Err(bad_input(format!(
                "SPIFFE id `{id}` is outside this server's trust domain `{}`",
                authorities.trust_domain()
            )));
        }
        if id.path().starts_with("/host/") || id.path().starts_with("/warden/") {
            let reason = format!(
                "SPIFFE id `{id}` is reserved: /host/ ids go to joined agents and /warden/ ids to Warden itself"
            );
            let store = ctx.data::<Arc<Store>>()?;
            store
                .record_denial(
                    &caller.audit,
                    "x509.issue",
                    &format!("spiffe:{id}"),
                    &reason,
                )
                .await
                .map_err(|e| api_error(e, caller))?;
            return Err(forbidden(reason));
        }
        let (serial, certificate) = authorities
            .issue_x509(
                &caller.audit,
                SubjectKey::Request(&key),
                id.clone(),
                (Vec::new(), Vec::new()),
                ttl,
            )
            .await
            .map_err(|e| issue_error(e, caller))?;
        let x509 = authorities.x509();
        Ok(X509Certificate {
            serial: serial.to_string(),
            spiffe_id: id.to_string(),
            certificate,
            chain: x509.ca.chain_pem().to_owned(),
            bundle: x509.bundle_pem.clone(),
            not_after: caller.audit.now.plus(ttl).to_string(),
        })
    }

    /// Replaces a CA (`ssh-user`, `ssh-host` or `x509`) with a new key. The old one stays
    /// trusted for `overlap` (default: the longest lifetime of what it signed).
    async fn rotate_certificate_authority(
        &self,
        ctx: &Context<'_>,
        kind: String,
        overlap: Option<String>,
    ) -> async_graphql::Result<Rotation> {
        let caller = authorize(
            ctx,
            Capability::ManageCertificateAuthorities,
            &format!("ca:{kind}"),
        )
        .await?;
        let kind: CaKind = kind.parse().map_err(bad_input)?;
        let overlap = match overlap {
            Some(o) => lifetime("overlap", &o)?,
            None => match kind {
                CaKind::SshUser => ctx.data::<SshConfig>()?.max_ttl,
                CaKind::SshHost => ctx.data::<AgentConfig>()?.host_cert_ttl,
                CaKind::X509 => ctx
                    .data::<X509Config>()?
                    .max_ttl
                    .max(ctx.data::<AgentConfig>()?.client_cert_ttl),
            },
        };
        let authorities = ctx.data::<Authorities>()?;
        let new_keys = authorities
            .rotate(&caller.audit, kind, overlap)
            .await
            .map_err(|e| issue_error(e, caller))?;
        Ok(Rotation {
            kind: kind.as_str().to_owned(),
            new_keys,
            old_keys_trusted_until: caller.audit.now.plus(overlap).to_string(),
        })
    }

    /// Removes a joined host: its agent can no longer renew (its client certificates are
    /// revoked) and it must join again with a new token.
    async fn remove_host(&self, ctx: &Context<'_>, name: String) -> async_graphql::Result<bool> {
        let caller = authorize(ctx, Capability::ManageHosts, &format!("host:{name}")).await?;
        let name = HostName::new(name).map_err(bad_input)?;
        let authorities = ctx.data::<Authorities>()?;
        let id = SpiffeId::new(authorities.trust_domain(), &format!("/host/{name}"))
            .map_err(bad_input)?;
        let store = ctx.data::<Arc<Store>>()?;
        store
            .remove_host(&caller.audit, name.as_str(), &id.to_string())
            .await
            .map_err(|e| api_error(e, caller))?;
        Ok(true)
    }

    /// A one-time token that admits the host `host` (with `labels` as `key=value` and the
    /// extra certificate principals `addresses`) through `warden agent`, for `ttl` (default 1h).
    async fn create_join_token(
        &self,
        ctx: &Context<'_>,
        host: String,
        #[graphql(default)] labels: Vec<String>,
        #[graphql(default)] addresses: Vec<String>,
        ttl: Option<String>,
    ) -> async_graphql::Result<JoinToken> {
        let caller = authorize(ctx, Capability::ManageHosts, &format!("host:{host}")).await?;
        let name = HostName::new(host).map_err(bad_input)?;
        let labels = parse_labels(&labels).map_err(bad_input)?;
        let addresses = parse_addresses(&addresses).map_err(bad_input)?;
        let ttl = match ttl {
            Some(t) => lifetime("ttl", &t)?,
            None => Duration::from_secs(3600),
        };
        let issued = warden_identity::issue_join_token(&mut OsRng);
        let expires_at: Timestamp = caller.audit.now.plus(ttl);
        let store = ctx.data::<Arc<Store>>()?;
        store
            .create_join_token(
                &caller.audit,
                &NewJoinToken {
                    id: issued.id.clone(),
                    secret_hash: issued.secret_hash,
                    host: name.to_string(),
                    labels,
                    addresses,
                    expires_at,
                },
            )
            .await
            .map_err(|e| api_error(e, caller))?;
        Ok(JoinToken {
            token: issued.token.expose().to_owned(),
            host: name.to_string(),
            expires_at: expires_at.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn labels_and_addresses() {
        let labels = parse_labels(&["env=prod".into(), "team/owner=ops".into()]).unwrap();
        assert_eq!(labels.get("env").map(String::as_str), Some("prod"));
        assert_eq!(
            parse_labels(&["env".into()]).unwrap_err(),
            "invalid label `env`: use key=value"
        );
        assert_eq!(
            parse_labels(&["a=1".into(), "a=2".into()]).unwrap_err(),
            "label `a` is given twice"
        );
        assert!(parse_labels(&["a=b c".into()]).is_err());
        assert_eq!(
            parse_addresses(&["10.0.0.5".into(), "db.internal".into(), "::1".into()]).unwrap(),
            ["10.0.0.5", "::1", "db.internal"]
        );
        assert_eq!(
            parse_addresses(&["Bad Name".into()]).unwrap_err(),
            "invalid address `Bad Name`: use an IP address or a lowercase DNS name"
        );
    }

    proptest! {
        #[test]
        fn label_and_address_parsers_never_panic(items in prop::collection::vec("\\PC{0,40}", 0..4)) {
            let _ = parse_labels(&items);
            let _ = parse_addresses(&items);
        }
    }
}
