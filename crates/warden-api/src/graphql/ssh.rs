//! SSH certificates over GraphQL: a user gets one for their own key; an admin revokes.

use std::sync::Arc;

use async_graphql::{Context, Object, SimpleObject};
use warden_model::{Actor, Holder, KeyId, Timestamp, Ttl};
use warden_pki::ssh::Kind;
use warden_store::Store;

use super::Capability;
use super::authz::authorize;
use super::{api_error, bad_input, forbidden};
use crate::ca::{Authorities, IssueError, SshIssue};
use crate::config::SshConfig;

/// An issued SSH certificate.
#[derive(Debug, Clone, SimpleObject)]
pub struct SshCertificate {
    /// Serial, decimal (what a revocation names).
    pub serial: String,
    /// The certificate, one OpenSSH line: save it as `KEY-cert.pub`.
    pub certificate: String,
    /// The logins it allows.
    pub principals: Vec<String>,
    /// When it stops working, RFC 3339.
    pub valid_before: String,
}

/// The logins a person may ask for (their own name and their groups' `ssh.group_logins`),
/// and whether their groups allow port forwarding.
fn person_logins<'a>(
    config: &SshConfig,
    name: &str,
    groups: impl IntoIterator<Item = &'a str>,
) -> (Vec<String>, bool) {
    let mut candidates = vec![name.to_owned()];
    let mut port_forwarding = false;
    for group in groups {
        if let Some(logins) = config.group_logins.get(group) {
            candidates.extend(logins.iter().cloned());
        }
        port_forwarding |= config.port_forwarding_groups.iter().any(|g| g == group);
    }
    (candidates, port_forwarding)
}

/// The principals asked for, sorted and without repeats; `None` when none were named.
fn principals_asked(asked: Option<Vec<String>>) -> Option<Vec<String>> {
    let mut asked = asked?;
    asked.sort();
    asked.dedup();
    (!asked.is_empty()).then_some(asked)
}

/// SSH certificate changes.
#[derive(Debug, Default)]
pub struct SshMutation;

#[Object]
impl SshMutation {
    /// Signs the caller's public key: a user certificate for their own login and the logins
    /// their groups grant (`[ssh.group_logins]`), for `ttl` (at most `ssh.max_ttl`).
    async fn issue_ssh_user_certificate(
        &self,
        ctx: &Context<'_>,
        public_key: String,
        ttl: Option<String>,
        #[graphql(desc = "The logins to certify; default all the caller may use.")]
        principals: Option<Vec<String>>,
    ) -> async_graphql::Result<SshCertificate> {
        let principals_arg = principals;
        let caller = authorize(ctx, Capability::OwnSshCertificate, "ssh-cert:user").await?;
        let config = ctx.data::<SshConfig>()?;
        let ttl = match ttl {
            Some(t) => t.parse::<Ttl>().map_err(bad_input)?.as_duration(),
            None => config.max_ttl,
        };
        if ttl > config.max_ttl {
            return Err(bad_input(format!(
                "ttl exceeds ssh.max_ttl ({})",
                humantime::format_duration(config.max_ttl)
            )));
        }
        warden_pki::ssh::parse_public_key(&public_key).map_err(bad_input)?;
        let store = ctx.data::<Arc<Store>>()?;
        let mut candidates = Vec::new();
        let mut port_forwarding = false;
        // The key id names the holder and the token, for the proxy and for revocation.
        let (who, key_id, holder_user_id) = match &caller.audit.actor {
            Actor::User { name, token_id, .. } => {
                let user = store
                    .user(name)
                    .await
                    .map_err(|e| api_error(e, caller))?
                    .ok_or_else(|| bad_input(format!("user `{name}` not found")))?;
                let groups = store
                    .user_groups(&user.id, caller.audit.now)
                    .await
                    .map_err(|e| api_error(e, caller))?;
                (candidates, port_forwarding) =
                    person_logins(config, name.as_str(), groups.iter().map(|g| g.as_str()));
                (
                    format!("user `{name}`"),
                    KeyId::token(Holder::User(name.clone()), token_id).map_err(bad_input)?,
                    Some(user.id),
                )
            }
            // A service names the logins it needs (`warden ssh LOGIN@HOST` does).
            Actor::Token { name, token_id, .. } => {
                if principals_arg.as_ref().is_none_or(Vec::is_empty) {
                    return Err(bad_input(format!(
                        "service `{name}` must name the logins it needs (principals)"
                    )));
                }
                (
                    format!("service `{name}`"),
                    KeyId::token(Holder::Service(name.clone()), token_id).map_err(bad_input)?,
                    None,
                )
            }
            _ => {
                return Err(bad_input(
                    "only an API token's holder can get a user certificate",
                ));
            }
        };
        candidates.sort();
        candidates.dedup();
        let asked = principals_asked(principals_arg);
        let explicit = asked.is_some();
        if let Some(asked) = asked {
            // Only Unix logins: never the proxy's own principal, which lets a host in.
            for login in &asked {
                warden_model::Login::new(login.as_str()).map_err(bad_input)?;
            }
            candidates = asked;
        }
        // The policy chooses: a login goes into the certificate when the `ssh` action allows
        // it on at least one host (each host's sshd and the proxy decide per host).
        let subject = crate::policy::subject(store, &caller.audit.actor)
            .await
            .map_err(|e| api_error(e, caller))?;
        let hosts = store.hosts().await.map_err(|e| api_error(e, caller))?;
        let engine = ctx.data::<Arc<crate::policy::Engine>>()?;
        let mut principals = Vec::new();
        let mut decisions = serde_json::Map::new();
        let mut refused = Vec::new();
        let objects: Vec<warden_policy::Object> = hosts
            .iter()
            .map(|h| warden_policy::Object::Host {
                name: h.name.clone(),
                labels: h.labels.clone(),
            })
            .collect();
        for login in &candidates {
            let context = serde_json::json!({ "login": login });
            let mut permitted = None;
            let mut last = None;
            // No subject (an unknown or disabled person): no host permits anything.
            for (host, object) in hosts.iter().zip(&objects) {
                let Some(subject) = &subject else { break };
                let decision = engine.decide(subject, "ssh", object, &context);
                if decision.decided.allow {
                    permitted = Some((host.name.clone(), decision));
                    break;
                }
                last = Some(decision);
            }
            match permitted {
                Some((host, decision)) => {
                    decisions.insert(
                        login.clone(),
                        serde_json::json!({
                            "host": host,
                            "policy_version": decision.version,
                            "determining_policies": decision.decided.reasons,
                        }),
                    );
                    principals.push(login.clone());
                }
                None => refused.push((login.clone(), last)),
            }
        }
        if (explicit && !refused.is_empty()) || principals.is_empty() {
            let (login, decision) = refused.into_iter().next().unwrap_or_default();
            let why = match decision {
                Some(d) if !d.decided.reasons.is_empty() => {
                    format!("forbidden by {}", d.decided.reasons.join(", "))
                }
                _ if hosts.is_empty() => "no host has joined yet".to_owned(),
                _ => "no policy permits it on any host".to_owned(),
            };
            let reason = format!("login `{login}` is not allowed for {who}: {why}");
            store
                .record(
                    &caller.audit,
                    "ssh.issue",
                    "ssh-cert:user",
                    serde_json::json!({ "candidates": candidates }),
                    warden_store::Outcome::Denied,
                    Some(&reason),
                )
                .await
                .map_err(|e| api_error(e, caller))?;
            return Err(forbidden(reason));
        }
        let authorities = ctx.data::<Authorities>()?;
        let (serial, certificate) = authorities
            .issue(
                &caller.audit,
                SshIssue {
                    kind: Kind::User,
                    public_key: &public_key,
                    key_id,
                    holder_user_id,
                    principals: principals.clone(),
                    ttl,
                    port_forwarding,
                    policy: serde_json::Value::Object(decisions),
                },
            )
            .await
            .map_err(|e| match e {
                IssueError::Request(e) => bad_input(e),
                IssueError::X509(e) => bad_input(e),
                IssueError::Store(e) => api_error(e, caller),
            })?;
        let valid_before = Timestamp::from_millis(caller.audit.now.as_millis())
            .plus(ttl)
            .to_string();
        Ok(SshCertificate {
            serial: serial.to_string(),
            certificate,
            principals,
            valid_before,
        })
    }

    /// Revokes every SSH certificate carrying `keyId` (for example all of one token's,
    /// `user:alice token:ID`); it appears in `/v1/ssh/krl` at once.
    async fn revoke_ssh_key_id(
        &self,
        ctx: &Context<'_>,
        key_id: String,
    ) -> async_graphql::Result<bool> {
        let caller = authorize(
            ctx,
            Capability::RevokeCertificates,
            &format!("ssh-key-id:{key_id}"),
        )
        .await?;
        if key_id.is_empty() || key_id.len() > 255 || key_id.chars().any(char::is_control) {
            return Err(bad_input(
                "invalid key id: 1-255 characters, no control characters",
            ));
        }
        let store = ctx.data::<Arc<Store>>()?;
        store
            .revoke_ssh_key_id(&caller.audit, &key_id)
            .await
            .map_err(|e| api_error(e, caller))?;
        Ok(true)
    }

    /// Revokes an SSH certificate by serial; it appears in `/v1/ssh/krl` at once.
    async fn revoke_ssh_certificate(
        &self,
        ctx: &Context<'_>,
        serial: String,
    ) -> async_graphql::Result<bool> {
        let caller = authorize(
            ctx,
            Capability::RevokeCertificates,
            &format!("ssh-cert:{serial}"),
        )
        .await?;
        let serial: u64 = serial
            .trim()
            .parse()
            .map_err(|_| bad_input(format!("invalid serial `{serial}`: a decimal number")))?;
        let store = ctx.data::<Arc<Store>>()?;
        store
            .revoke_ssh_certificate(&caller.audit, serial)
            .await
            .map_err(|e| api_error(e, caller))?;
        Ok(true)
    }
}

/// A host the caller may log in to, and as whom.
#[derive(Debug, Clone, SimpleObject)]
pub struct ReachableHost {
    /// The host.
    pub name: String,
    /// Its labels, `key=value`.
    pub labels: Vec<String>,
    /// The logins the `ssh` action allows the caller there, sorted.
    pub logins: Vec<String>,
}

/// SSH reads.
#[derive(Debug, Default)]
pub struct SshQuery;

#[Object]
impl SshQuery {
    /// The hosts the calling person may log in to and the logins each allows, as the policy
    /// in force decides for them now (their own name and their groups' `ssh.group_logins`).
    async fn reachable_hosts(
        &self,
        ctx: &Context<'_>,
    ) -> async_graphql::Result<Vec<ReachableHost>> {
        let caller = authorize(ctx, Capability::Viewer, "reachable-hosts").await?;
        let Actor::User { name, .. } = &caller.audit.actor else {
            return Err(bad_input(format!(
                "only a person has hosts to reach; {} is not one",
                caller.audit.actor
            )));
        };
        let store = ctx.data::<Arc<Store>>()?;
        let config = ctx.data::<SshConfig>()?;
        let engine = ctx.data::<Arc<crate::policy::Engine>>()?;
        // One read of the person and their groups: the policy's subject, whose groups also
        // name the candidate logins. An unknown or disabled person reaches nothing.
        let Some(subject) = crate::policy::subject(store, &caller.audit.actor)
            .await
            .map_err(|e| api_error(e, caller))?
        else {
            return Ok(Vec::new());
        };
        let warden_policy::Subject::User { groups, .. } = &subject else {
            return Ok(Vec::new());
        };
        let (mut logins, _) =
            person_logins(config, name.as_str(), groups.iter().map(String::as_str));
        logins.sort();
        logins.dedup();
        let hosts = store.hosts().await.map_err(|e| api_error(e, caller))?;
        let mut reachable = Vec::new();
        for host in hosts {
            let object = warden_policy::Object::Host {
                name: host.name.clone(),
                labels: host.labels.clone(),
            };
            let allowed: Vec<String> = logins
                .iter()
                .filter(|login| {
                    engine
                        .decide(
                            &subject,
                            "ssh",
                            &object,
                            &serde_json::json!({ "login": login }),
                        )
                        .decided
                        .allow
                })
                .cloned()
                .collect();
            if !allowed.is_empty() {
                reachable.push(ReachableHost {
                    labels: host
                        .labels
                        .iter()
                        .map(|(k, v)| format!("{k}={v}"))
                        .collect(),
                    name: host.name,
                    logins: allowed,
                });
            }
        }
        Ok(reachable)
    }
}
